//! Who is calling a service, from where, and what they may touch. Every service
//! call takes one; every audit record is made from one.

use lianyi_store::audit::AuditEntry;

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

/// What a caller may do: interactions per type (scopes), which campuses' data, and
/// whether only one patient's compartment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// `None`: not limited by scopes (the platform's own jobs).
    pub scopes: Option<ScopeSet>,
    pub campuses: Campuses,
    pub patient: Option<String>,
}

impl Access {
    pub fn unrestricted() -> Access {
        Access { scopes: None, campuses: Campuses::All, patient: None }
    }

    /// Nothing at all (anonymous callers).
    pub fn nothing() -> Access {
        Access { scopes: Some(ScopeSet::default()), campuses: Campuses::Only(Vec::new()), patient: None }
    }

    pub fn allows(&self, resource_type: &str, perm: Perm) -> bool {
        self.scopes.as_ref().is_none_or(|s| s.allows(resource_type, perm))
    }

    /// Whether data owned by `campus` is visible (unowned data always is).
    pub fn sees_campus(&self, campus: Option<&str>) -> bool {
        campus.is_none_or(|c| self.campuses.contains(c))
    }

    /// The campus new data of this caller belongs to: the first granted one.
    pub fn home_campus(&self) -> Option<&str> {
        match &self.campuses {
            Campuses::All => None,
            Campuses::Only(list) => list.first().map(String::as_str),
        }
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
        }
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
