//! Who is calling a service, and from where. Every service call takes one, and
//! every audit record is made from one.

use lianyi_store::audit::AuditEntry;

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

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub actor: String,
    pub kind: ActorKind,
    pub role: Option<String>,
    pub campus: Option<String>,
    pub client_addr: Option<String>,
}

impl Caller {
    pub fn anonymous(client_addr: Option<String>) -> Self {
        Caller { actor: "anonymous".into(), kind: ActorKind::Anonymous, role: None, campus: None, client_addr }
    }

    /// An operator command or internal job, named for the audit log (`lianyi import`).
    pub fn system(name: &str) -> Self {
        Caller { actor: name.into(), kind: ActorKind::System, role: None, campus: None, client_addr: None }
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
