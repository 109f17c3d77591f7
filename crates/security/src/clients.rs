//! API clients: registration (`lianyi client add`), the OAuth2 client-credentials
//! grant that issues short-lived bearer tokens, and authentication of those tokens.
//! Every step is audited.

use std::sync::Arc;

use lianyi_store::clients::ClientRecord;
use lianyi_store::{Store, StoreError};

use crate::audit::{AuditError, AuditLog};
use crate::caller::{Access, ActorKind, Caller, Campuses};
use crate::clock::Clock;
use crate::scope::{ScopeError, ScopeSet};
use crate::secrets::{RandomError, constant_time_eq, random_hex, secret_hash};

/// Lifetime of an access token.
pub const TOKEN_TTL_MS: i64 = 15 * 60 * 1000;

/// A scope word (not a SMART scope) that lets an API client use the integration
/// API: the message log, its replay, and channel status.
pub const INTEGRATION_SCOPE: &str = "lianyi:integration";
/// The scope word of API clients of IT operations (`/api/ops`).
pub const OPS_SCOPE: &str = "lianyi:ops";

/// The platform's own scope words (beside SMART's) and the capability each grants.
const PLATFORM_SCOPES: [(&str, crate::roles::Capability); 2] = [
    (INTEGRATION_SCOPE, crate::roles::Capability::ManageIntegration),
    (OPS_SCOPE, crate::roles::Capability::OperateIt),
];

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Scope(#[from] ScopeError),
    #[error("a client needs at least one resource scope such as system/*.rs")]
    NoScope,
    #[error("client name must be 1-64 letters, digits, '-', '_' or '.'")]
    Name,
    #[error("patient/ scopes need a patient: give the client one (--patient)")]
    PatientContext,
    #[error("a client named '{0}' already exists")]
    Exists(String),
    #[error(transparent)]
    Campus(#[from] crate::caller::InvalidCampus),
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ClientError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::AlreadyExists { id, .. } => ClientError::Exists(id),
            other => ClientError::Store(other),
        }
    }
}

/// RFC 6749 §5.2 error codes.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    #[error("invalid_client: unknown client, wrong secret or disabled client")]
    InvalidClient,
    #[error("unsupported_grant_type: only client_credentials is supported")]
    UnsupportedGrantType,
    #[error("invalid_scope: {0}")]
    InvalidScope(String),
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TokenError {
    /// The `error` field of the JSON response.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::InvalidRequest(_) => "invalid_request",
            TokenError::InvalidClient => "invalid_client",
            TokenError::UnsupportedGrantType => "unsupported_grant_type",
            TokenError::InvalidScope(_) => "invalid_scope",
            _ => "server_error",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the access token is unknown, expired or revoked")]
    InvalidToken,
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A newly registered client; the secret is shown once and stored only hashed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewClient {
    pub name: String,
    pub client_id: String,
    pub client_secret: String,
    pub scopes: String,
    pub campuses: String,
    pub patient: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: i64,
    pub scope: String,
}

#[derive(Clone, Debug)]
pub struct ClientService {
    store: Store,
    audit: AuditLog,
    clock: Arc<dyn Clock>,
}

fn valid_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 64 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

impl ClientService {
    pub fn new(store: Store, audit: AuditLog, clock: Arc<dyn Clock>) -> Self {
        ClientService { store, audit, clock }
    }

    fn caller_for(client: &ClientRecord, scopes: ScopeSet, client_addr: Option<String>) -> Caller {
        // Checked when the client was added; a record that no longer parses grants nothing.
        let campuses = Campuses::parse(&client.campuses).unwrap_or(Campuses::Only(Vec::new()));
        let campus = match &campuses {
            Campuses::Only(l) => l.first().cloned(),
            Campuses::All => None,
        };
        Caller::new(
            format!("client:{}", client.name),
            ActorKind::Client,
            None,
            campus,
            client_addr,
            Access::single(scopes, campuses, client.patient.clone()),
            PLATFORM_SCOPES
                .iter()
                .filter(|(word, _)| client.scopes.split_whitespace().any(|w| w == *word))
                .map(|(_, c)| *c)
                .collect(),
        )
    }

    /// Registers a client. `campuses` is `*` or space-separated campus ids.
    pub async fn add(
        &self,
        admin: &Caller,
        name: &str,
        scopes: &str,
        campuses: &str,
        patient: Option<String>,
    ) -> Result<NewClient, ClientError> {
        if !valid_name(name) {
            return Err(ClientError::Name);
        }
        let parsed = ScopeSet::parse(scopes)?;
        let platform: Vec<&str> = PLATFORM_SCOPES
            .iter()
            .map(|(word, _)| *word)
            .filter(|word| scopes.split_whitespace().any(|w| w == *word))
            .collect();
        if parsed.is_empty() && platform.is_empty() {
            return Err(ClientError::NoScope);
        }
        if patient.is_none() && parsed.0.iter().any(|s| s.context == crate::scope::Context::Patient) {
            return Err(ClientError::PatientContext);
        }
        let campuses = Campuses::parse(campuses)?.to_string();
        let client_id = uuid::Uuid::new_v4().to_string();
        let client_secret = random_hex(32)?;
        let record = ClientRecord {
            id: client_id.clone(),
            name: name.to_string(),
            secret_hash: secret_hash(&client_secret),
            scopes: format!("{parsed} {}", platform.join(" ")).trim().to_string(),
            campuses: campuses.clone(),
            patient: patient.clone(),
            disabled: false,
            created_at: self.clock.now_ms(),
        };
        let mut entry = admin.entry(self.clock.now_ms(), "client-add", "success");
        entry.detail = Some(format!("client {name}: scopes {} campuses {campuses}", record.scopes));
        match self.store.insert_client(&record).await {
            Ok(()) => self.audit.record(vec![entry]).await?,
            Err(e) => {
                entry.outcome = "failure".into();
                self.audit.record(vec![entry]).await?;
                return Err(e.into());
            }
        }
        Ok(NewClient { name: name.into(), client_id, client_secret, scopes: record.scopes, campuses, patient })
    }

    pub async fn list(&self) -> Result<Vec<ClientRecord>, ClientError> {
        Ok(self.store.list_clients().await?)
    }

    /// Disables a client and revokes its tokens; false if there is no such client.
    pub async fn disable(&self, admin: &Caller, name: &str) -> Result<bool, ClientError> {
        let done = self.store.disable_client(name).await?;
        let mut entry = admin.entry(self.clock.now_ms(), "client-disable", if done { "success" } else { "not-found" });
        entry.detail = Some(format!("client {name}"));
        self.audit.record(vec![entry]).await?;
        Ok(done)
    }

    /// The client-credentials grant. `scope`, when given, narrows the client's scopes.
    pub async fn issue_token(
        &self,
        grant_type: Option<&str>,
        client_id: Option<&str>,
        client_secret: Option<&str>,
        scope: Option<&str>,
        client_addr: Option<String>,
    ) -> Result<IssuedToken, TokenError> {
        let now = self.clock.now_ms();
        let fail = |actor: String, why: &str| {
            let mut c = Caller::anonymous(client_addr.clone());
            c.actor = actor;
            let mut e = c.entry(now, "token", "denied");
            e.detail = Some(why.to_string());
            e
        };
        match grant_type {
            Some("client_credentials") => {}
            Some(_) => return Err(TokenError::UnsupportedGrantType),
            None => return Err(TokenError::InvalidRequest("grant_type is required".into())),
        }
        let (Some(id), Some(secret)) = (client_id, client_secret) else {
            return Err(TokenError::InvalidRequest("client_id and client_secret are required".into()));
        };
        let client = self.store.client_by_id(id).await?;
        let Some(client) = client.filter(|c| !c.disabled && constant_time_eq(&c.secret_hash, &secret_hash(secret)))
        else {
            self.audit
                .record(vec![fail(
                    format!("client-id:{}", id.chars().take(64).collect::<String>()),
                    "invalid client credentials",
                )])
                .await?;
            return Err(TokenError::InvalidClient);
        };
        let granted = ScopeSet::parse(&client.scopes).map_err(|e| TokenError::InvalidScope(e.to_string()))?;
        let scopes = match scope.filter(|s| !s.trim().is_empty()) {
            None => granted,
            Some(requested) => {
                let wanted = ScopeSet::parse(requested).map_err(|e| TokenError::InvalidScope(e.to_string()))?;
                if wanted.is_empty() || !granted.covers(&wanted) {
                    self.audit
                        .record(vec![fail(format!("client:{}", client.name), "requested scope beyond the client's")])
                        .await?;
                    return Err(TokenError::InvalidScope(format!(
                        "'{requested}' is not within the client's scopes '{}'",
                        client.scopes
                    )));
                }
                wanted
            }
        };
        let token = random_hex(32)?;
        let scope_text = scopes.to_string();
        self.store.insert_token(&secret_hash(&token), &client.id, &scope_text, now, now + TOKEN_TTL_MS).await?;
        let caller = Self::caller_for(&client, scopes, client_addr);
        let mut e = caller.entry(now, "token", "success");
        e.detail = Some(format!("scopes {scope_text}"));
        self.audit.record(vec![e]).await?;
        Ok(IssuedToken { access_token: token, expires_in: TOKEN_TTL_MS / 1000, scope: scope_text })
    }

    /// The caller a bearer token stands for. Failures are audited.
    pub async fn authenticate(&self, token: &str, client_addr: Option<String>) -> Result<Caller, AuthError> {
        let now = self.clock.now_ms();
        match self.store.live_token(&secret_hash(token), now).await? {
            Some(t) => {
                let scopes = ScopeSet::parse(&t.scopes).unwrap_or_default();
                Ok(Self::caller_for(&t.client, scopes, client_addr))
            }
            None => {
                let mut e = Caller::anonymous(client_addr).entry(now, "authenticate", "denied");
                e.detail = Some("unknown, expired or revoked bearer token".into());
                self.audit.record(vec![e]).await?;
                Err(AuthError::InvalidToken)
            }
        }
    }
}
