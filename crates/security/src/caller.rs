//! Who is calling a service, from where, and what they may touch. Every service
//! call takes one; every audit record is made from one.

use lianyi_store::audit::AuditEntry;

use crate::roles::Capability;
use crate::scope::{Perm, ScopeSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActorKind {
    /// No credentials were presented.
    Anonymous,
    /// A person with a login.
    User,
    /// An API client (OAuth2 client credentials).
    Client,
    /// The platform itself or an operator's command-line tool.
    System,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Anonymous => "anonymous",
            ActorKind::User => "user",
            ActorKind::Client => "client",
            ActorKind::System => "system",
        }
    }
}

/// The campuses a caller's grants cover.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Campuses {
    All,
    Only(Vec<String>),
}

impl Campuses {
    /// `*` or space-separated campus ids.
    pub fn parse(s: &str) -> Campuses {
        if s.trim() == "*" { Campuses::All } else { Campuses::Only(s.split_whitespace().map(str::to_string).collect()) }
    }

    pub fn contains(&self, campus: &str) -> bool {
        match self {
            Campuses::All => true,
            Campuses::Only(list) => list.iter().any(|c| c == campus),
        }
    }
}

impl std::fmt::Display for Campuses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Campuses::All => f.write_str("*"),
            Campuses::Only(list) => f.write_str(&list.join(" ")),
        }
    }
}

/// One grant: interactions per type (scopes) at a set of campuses. A user holds one
/// per role; an API client holds exactly one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub scopes: ScopeSet,
    pub campuses: Campuses,
}

/// What a caller may do: its grants, and whether only one patient's compartment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// `None`: unrestricted (the platform's own jobs).
    pub grants: Option<Vec<Grant>>,
    pub patient: Option<String>,
    /// Patients opened by break-the-glass: their records are visible regardless of
    /// campus (the role's interactions still apply) until the grant expires.
    pub open_patients: Vec<String>,
}

impl Campuses {
    fn union(items: impl Iterator<Item = Campuses>) -> Campuses {
        let mut out: Vec<String> = Vec::new();
        for c in items {
            match c {
                Campuses::All => return Campuses::All,
                Campuses::Only(list) => {
                    for x in list {
                        if !out.contains(&x) {
                            out.push(x);
                        }
                    }
                }
            }
        }
        Campuses::Only(out)
    }
}

impl Access {
    pub fn unrestricted() -> Access {
        Access { grants: None, patient: None, open_patients: Vec::new() }
    }

    /// Nothing at all (anonymous callers).
    pub fn nothing() -> Access {
        Access { grants: Some(Vec::new()), patient: None, open_patients: Vec::new() }
    }

    pub fn single(scopes: ScopeSet, campuses: Campuses, patient: Option<String>) -> Access {
        Access { grants: Some(vec![Grant { scopes, campuses }]), patient, open_patients: Vec::new() }
    }

    pub fn allows(&self, resource_type: &str, perm: Perm) -> bool {
        self.grants.as_ref().is_none_or(|gs| gs.iter().any(|g| g.scopes.allows(resource_type, perm)))
    }

    /// Whether a grant names `resource_type` explicitly with `perm` (wildcards excluded).
    pub fn names(&self, resource_type: &str, perm: Perm) -> bool {
        self.grants.as_ref().is_none_or(|gs| gs.iter().any(|g| g.scopes.names(resource_type, perm)))
    }

    /// The campuses at which the caller may do `perm` on `resource_type`.
    pub fn campuses_for(&self, resource_type: &str, perm: Perm) -> Campuses {
        match &self.grants {
            None => Campuses::All,
            Some(gs) => {
                Campuses::union(gs.iter().filter(|g| g.scopes.allows(resource_type, perm)).map(|g| g.campuses.clone()))
            }
        }
    }

    /// Every campus any grant covers.
    pub fn all_campuses(&self) -> Campuses {
        match &self.grants {
            None => Campuses::All,
            Some(gs) => Campuses::union(gs.iter().map(|g| g.campuses.clone())),
        }
    }

    /// Whether data owned by `campus` may be touched with `perm` (unowned data: if the
    /// type is allowed at all).
    pub fn sees(&self, resource_type: &str, perm: Perm, campus: Option<&str>) -> bool {
        match campus {
            None => self.allows(resource_type, perm),
            Some(c) => self.campuses_for(resource_type, perm).contains(c),
        }
    }

    /// The campus new data of this caller belongs to: the first granted one.
    pub fn home_campus(&self) -> Option<&str> {
        self.grants.as_ref()?.iter().find_map(|g| match &g.campuses {
            Campuses::Only(list) => list.first().map(String::as_str),
            Campuses::All => None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub actor: String,
    pub kind: ActorKind,
    pub role: Option<String>,
    pub campus: Option<String>,
    pub client_addr: Option<String>,
    pub access: Access,
    /// Platform capabilities beyond FHIR (from roles).
    pub capabilities: Vec<Capability>,
}

impl Caller {
    pub fn anonymous(client_addr: Option<String>) -> Self {
        Caller {
            actor: "anonymous".into(),
            kind: ActorKind::Anonymous,
            role: None,
            campus: None,
            client_addr,
            access: Access::nothing(),
            capabilities: Vec::new(),
        }
    }

    /// An operator command or internal job, named for the audit log (`lianyi import`).
    pub fn system(name: &str) -> Self {
        Caller {
            actor: name.into(),
            kind: ActorKind::System,
            role: None,
            campus: None,
            client_addr: None,
            access: Access::unrestricted(),
            capabilities: vec![Capability::AdministerUsers, Capability::ReviewAudit, Capability::ManageIntegration],
        }
    }

    pub fn can(&self, c: Capability) -> bool {
        self.capabilities.contains(&c)
    }

    pub fn is_authenticated(&self) -> bool {
        self.kind != ActorKind::Anonymous
    }

    /// An audit entry for this caller; the caller of this fills in the rest.
    pub fn entry(&self, now_ms: i64, action: &str, outcome: &str) -> AuditEntry {
        AuditEntry {
            recorded_at: now_ms,
            actor: self.actor.clone(),
            actor_kind: self.kind.as_str().into(),
            role: self.role.clone(),
            campus: self.campus.clone(),
            action: action.into(),
            outcome: outcome.into(),
            client_addr: self.client_addr.clone(),
            ..Default::default()
        }
    }
}
