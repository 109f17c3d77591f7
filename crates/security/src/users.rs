//! People who log in: accounts with Argon2id passwords and a policy, mandatory TOTP
//! second factor with replay blocking, lockout after repeated failures, and
//! server-side sessions with idle and absolute timeouts. Every step is audited.
//!
//! A login moves a session through stages: `password-change` (first login or after
//! a reset) → `mfa-enrol` (no authenticator yet) → `mfa` (code needed) → `active`.
//! Only an `active` session stands for a caller with access.

use std::sync::Arc;

use lianyi_store::users::{RoleGrant, SessionRecord, UserRecord};
use lianyi_store::{Store, StoreError};

use crate::audit::{AuditError, AuditLog};
use crate::caller::{Access, ActorKind, Caller, CampusId, Campuses, Grant};
use crate::clock::Clock;
use crate::crypto::{FieldCipher, KeyProvider};
use crate::password::{self, PolicyError};
use crate::roles::Role;
use crate::secrets::{RandomError, random_hex, secret_hash};
use crate::totp;

/// Lockout and session limits (configurable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecurityPolicy {
    pub lockout_attempts: i64,
    pub lockout_ms: i64,
    pub idle_timeout_ms: i64,
    pub absolute_timeout_ms: i64,
}

impl Default for SecurityPolicy {
    fn default() -> Self {
        SecurityPolicy {
            lockout_attempts: 5,
            lockout_ms: 15 * 60_000,
            idle_timeout_ms: 15 * 60_000,
            absolute_timeout_ms: 12 * 3_600_000,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    PasswordChange,
    MfaEnrol,
    Mfa,
    Active,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::PasswordChange => "password-change",
            Stage::MfaEnrol => "mfa-enrol",
            Stage::Mfa => "mfa",
            Stage::Active => "active",
        }
    }

    fn parse(s: &str) -> Option<Stage> {
        [Stage::PasswordChange, Stage::MfaEnrol, Stage::Mfa, Stage::Active].into_iter().find(|x| x.as_str() == s)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("wrong user name or password")]
    InvalidCredentials,
    #[error("the account is locked after repeated failures; try again later")]
    Locked { until: i64 },
    #[error("the code is wrong or was already used")]
    InvalidCode,
    #[error("the session has expired; log in again")]
    SessionExpired,
    #[error("this step is not expected now")]
    WrongStage,
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("user name must be 1-64 letters, digits, '-', '_' or '.'")]
    Name,
    #[error("unknown role '{0}'")]
    Role(String),
    #[error(transparent)]
    Campus(#[from] crate::caller::InvalidCampus),
    #[error("a patient account needs its Patient id (--patient)")]
    PatientRole,
    #[error("a user named '{0}' already exists")]
    Exists(String),
    #[error("no user named '{0}'")]
    NoSuchUser(String),
    #[error("not allowed")]
    Forbidden,
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error("secret encryption: {0}")]
    Crypto(String),
    #[error(transparent)]
    Hash(#[from] password::HashError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for UserError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::AlreadyExists { id, .. } => UserError::Exists(id),
            other => UserError::Store(other),
        }
    }
}

pub type Result<T> = std::result::Result<T, UserError>;

/// What `add_user` needs.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub password: String,
    /// (role code, campus id or `*`).
    pub grants: Vec<(String, String)>,
    pub patient: Option<String>,
    /// Whether the password must be replaced at first login (true for every account
    /// an administrator creates; the demo's accounts skip it).
    pub must_change_password: bool,
}

/// A session handed to the browser: the token goes in the cookie, the CSRF token in
/// forms. Only hashes are stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedSession {
    pub token: String,
    pub stage: Stage,
    pub csrf: String,
    /// The page language the user chose last (`zh-CN`, `en`), if any.
    pub language: Option<String>,
}

/// A live session and whom it belongs to.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    pub stage: Stage,
    pub csrf: String,
    pub user: UserRecord,
    pub caller: Caller,
}

#[derive(Clone, Debug)]
pub struct UserService {
    store: Store,
    audit: AuditLog,
    clock: Arc<dyn Clock>,
    policy: SecurityPolicy,
    /// Encrypts TOTP secrets at rest.
    cipher: Option<Arc<FieldCipher<dyn KeyProvider>>>,
}

const TOTP_AAD: &str = "users.totp_secret";

fn valid_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 64 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// A PHC string no password matches, verified against for unknown users so a login
/// for a missing account takes as long as for an existing one.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3KBqFfBMm0cCxC8HpZqC4Zc2Gv9u2I2B3T0G8r0Gf0c";

impl UserService {
    pub fn new(store: Store, audit: AuditLog, clock: Arc<dyn Clock>, policy: SecurityPolicy) -> Self {
        UserService { store, audit, clock, policy, cipher: None }
    }

    /// Stores authenticator secrets encrypted with these keys.
    pub fn with_cipher(mut self, cipher: Arc<FieldCipher<dyn KeyProvider>>) -> Self {
        self.cipher = Some(cipher);
        self
    }

    fn seal_secret(&self, base32: String) -> Result<String> {
        match &self.cipher {
            Some(c) => c.encrypt(&base32, TOTP_AAD).map_err(|e| UserError::Crypto(e.to_string())),
            None => Ok(base32),
        }
    }

    /// The authenticator secret of a user, decrypted.
    fn secret_of(&self, user: &UserRecord) -> Option<Vec<u8>> {
        let stored = user.totp_secret.as_deref()?;
        let plain = match (&self.cipher, stored.starts_with(crate::crypto::PREFIX)) {
            (Some(c), true) => c.decrypt(stored, TOTP_AAD).ok()?,
            (None, true) => return None,
            (_, false) => stored.to_string(),
        };
        totp::base32_decode(&plain).filter(|s| s.len() == 20)
    }

    pub fn policy(&self) -> SecurityPolicy {
        self.policy
    }

    async fn log(&self, caller: &Caller, action: &str, outcome: &str, detail: Option<String>) -> Result<()> {
        let mut e = caller.entry(self.clock.now_ms(), action, outcome);
        e.detail = detail;
        self.audit.record(vec![e]).await?;
        Ok(())
    }

    fn user_caller(user: &UserRecord, grants: &[RoleGrant], client_addr: Option<String>) -> Caller {
        let mut access_grants = Vec::new();
        let mut capabilities = Vec::new();
        let mut roles: Vec<&str> = Vec::new();
        for g in grants {
            let Some(role) = Role::parse(&g.role) else { continue };
            roles.push(role.code());
            // Checked when granted; a stored grant that no longer parses grants nothing.
            let campuses = Campuses::parse(&g.campus).unwrap_or(Campuses::Only(Vec::new()));
            access_grants.push(Grant { scopes: role.scopes(), campuses });
            for c in role.capabilities() {
                if !capabilities.contains(c) {
                    capabilities.push(*c);
                }
            }
        }
        roles.dedup();
        Caller::new(
            format!("user:{}", user.username),
            ActorKind::User,
            if roles.is_empty() { None } else { Some(roles.join(",")) },
            grants.iter().find_map(|g| CampusId::parse(&g.campus).ok()),
            client_addr,
            Access::granted(access_grants, user.patient.clone()),
            capabilities,
        )
    }

    /// Creates an account that must change its password and enrol a second factor at
    /// first login.
    pub async fn add_user(&self, admin: &Caller, new: NewUser) -> Result<UserRecord> {
        self.administer(admin, "user-add").await?;
        if !valid_name(&new.username) {
            return Err(UserError::Name);
        }
        password::check_policy(&new.username, &new.password)?;
        let mut grants = Vec::new();
        for (role, campus) in &new.grants {
            match Role::parse(role) {
                None => return Err(UserError::Role(role.clone())),
                Some(Role::Patient) if new.patient.is_none() => return Err(UserError::PatientRole),
                Some(_) => {}
            }
            Campuses::parse(campus)?;
            grants.push(RoleGrant { role: role.clone(), campus: campus.clone() });
        }
        let now = self.clock.now_ms();
        let user = UserRecord {
            id: uuid::Uuid::new_v4().to_string(),
            username: new.username.clone(),
            display_name: new.display_name.clone(),
            password_hash: password::hash(&new.password)?,
            must_change_password: new.must_change_password,
            totp_secret: None,
            totp_enabled: false,
            totp_last_step: 0,
            failed_attempts: 0,
            locked_until: 0,
            disabled: false,
            patient: new.patient.clone(),
            language: None,
            created_at: now,
            password_changed_at: now,
            last_login_at: None,
        };
        let roles: Vec<String> = grants.iter().map(|g| format!("{}@{}", g.role, g.campus)).collect();
        match self.store.insert_user(&user, &grants).await {
            Ok(()) => {
                self.log(
                    admin,
                    "user-add",
                    "success",
                    Some(format!("user {} roles {}", user.username, roles.join(" "))),
                )
                .await?;
                Ok(user)
            }
            Err(e) => {
                self.log(admin, "user-add", "failure", Some(format!("user {}", new.username))).await?;
                Err(e.into())
            }
        }
    }

    /// Opens a patient's portal account (role `patient` at every campus, bound to
    /// `patient`) and spends the activation code (its hash) in the same transaction.
    /// `by` is the portal's activation task. `Exists` when the name is taken,
    /// `InvalidCode` when the code was spent meanwhile.
    pub async fn add_patient_account(
        &self,
        by: &Caller,
        username: &str,
        display_name: &str,
        new_password: &str,
        patient: &str,
        code_hash: &str,
    ) -> Result<UserRecord> {
        self.administer(by, "user-add").await?;
        if !valid_name(username) {
            return Err(UserError::Name);
        }
        password::check_policy(username, new_password)?;
        let now = self.clock.now_ms();
        let user = UserRecord {
            id: uuid::Uuid::new_v4().to_string(),
            username: username.to_string(),
            display_name: display_name.to_string(),
            password_hash: password::hash(new_password)?,
            must_change_password: false,
            totp_secret: None,
            totp_enabled: false,
            totp_last_step: 0,
            failed_attempts: 0,
            locked_until: 0,
            disabled: false,
            patient: Some(patient.to_string()),
            language: None,
            created_at: now,
            password_changed_at: now,
            last_login_at: None,
        };
        let grants = [RoleGrant { role: Role::Patient.code().into(), campus: "*".into() }];
        match self.store.insert_user_spending(&user, &grants, code_hash, now).await {
            Ok(true) => {
                self.log(by, "user-add", "success", Some(format!("user {username} roles patient@* (portal)"))).await?;
                Ok(user)
            }
            Ok(false) => Err(UserError::InvalidCode),
            Err(e) => Err(e.into()),
        }
    }

    /// The accounts bound to a patient.
    pub async fn patient_accounts(&self, patient: &str) -> Result<Vec<UserRecord>> {
        Ok(self.store.users_of_patient(patient).await?)
    }

    /// An account by its id.
    pub async fn account_by_id(&self, id: &str) -> Result<Option<UserRecord>> {
        Ok(self.store.user_by_id(id).await?)
    }

    /// A patient's portal account by its login name (`None` for staff accounts and
    /// disabled ones).
    pub async fn patient_account_named(&self, username: &str) -> Result<Option<UserRecord>> {
        Ok(self.store.user_by_name(username).await?.filter(|u| u.patient.is_some() && !u.disabled))
    }

    /// The caller of a signed-in portal account acting for `patient`: themselves, or
    /// a patient they are a live proxy for (a parent for a child, a carer). A proxy's
    /// caller is the account's own (their name in every audit record) in the role
    /// `proxy`, bound to the other patient's compartment. The proxy is read at every
    /// request, so a revoked one ends at once. `Forbidden` (audited) otherwise.
    pub async fn acting_for(&self, info: &SessionInfo, patient: &str) -> Result<Caller> {
        let own = info.caller.access().patient().map(str::to_string);
        if own.as_deref() == Some(patient) {
            return Ok(info.caller.clone());
        }
        if own.is_none() || self.store.operations().portal().active_proxy(&info.user.id, patient).await?.is_none() {
            let mut e = info.caller.entry(self.clock.now_ms(), "proxy-act", "denied");
            e.patient = Some(patient.to_string());
            e.detail = Some("no live proxy".into());
            self.audit.record(vec![e]).await?;
            return Err(UserError::Forbidden);
        }
        let mut caller = info.caller.clone();
        caller.role = Some("proxy".into());
        caller.access.patient = Some(patient.to_string());
        caller.access.open_patients = Vec::new();
        Ok(caller)
    }

    /// The role grants of a user.
    pub async fn grants(&self, user_id: &str) -> Result<Vec<RoleGrant>> {
        Ok(self.store.user_grants(user_id).await?)
    }

    pub async fn list_users(&self) -> Result<Vec<(UserRecord, Vec<RoleGrant>)>> {
        Ok(self.store.list_users().await?)
    }

    /// Accounts with their grants, for an administrator (the account page); audited.
    pub async fn accounts(&self, admin: &Caller) -> Result<Vec<(UserRecord, Vec<RoleGrant>)>> {
        self.administer(admin, "user-list").await?;
        let list = self.store.list_users().await?;
        self.log(admin, "user-list", "success", Some(format!("{} accounts", list.len()))).await?;
        Ok(list)
    }

    /// Only administrators manage accounts; a refusal is audited.
    async fn administer(&self, admin: &Caller, action: &str) -> Result<()> {
        if admin.can(crate::roles::Capability::AdministerUsers) {
            return Ok(());
        }
        self.log(admin, action, "failure", Some("not an administrator".into())).await?;
        Err(UserError::Forbidden)
    }

    /// Grants `role` at `campus` (or `*`) to a user; takes effect at their next request.
    pub async fn grant_role(&self, admin: &Caller, username: &str, role: &str, campus: &str) -> Result<()> {
        self.administer(admin, "role-grant").await?;
        let u = self.user_named(username).await?;
        match Role::parse(role) {
            None => return Err(UserError::Role(role.into())),
            Some(Role::Patient) => return Err(UserError::PatientRole),
            Some(_) => {}
        }
        Campuses::parse(campus)?;
        self.store.add_user_role(&u.id, role, campus).await?;
        self.log(admin, "role-grant", "success", Some(format!("user {username} role {role}@{campus}"))).await
    }

    /// Removes `role` at `campus` from a user; their sessions end so it takes effect now.
    pub async fn revoke_role(&self, admin: &Caller, username: &str, role: &str, campus: &str) -> Result<()> {
        self.administer(admin, "role-revoke").await?;
        let u = self.user_named(username).await?;
        if self.store.remove_user_role(&u.id, role, campus).await? {
            self.store.revoke_user_sessions(&u.id).await?;
        }
        self.log(admin, "role-revoke", "success", Some(format!("user {username} role {role}@{campus}"))).await
    }

    async fn user_named(&self, username: &str) -> Result<UserRecord> {
        self.store.user_by_name(username).await?.ok_or_else(|| UserError::NoSuchUser(username.into()))
    }

    /// Disables an account and ends its sessions.
    pub async fn disable_user(&self, admin: &Caller, username: &str) -> Result<()> {
        self.administer(admin, "user-disable").await?;
        let mut u = self.user_named(username).await?;
        u.disabled = true;
        self.store.update_user(&u).await?;
        self.store.revoke_user_sessions(&u.id).await?;
        self.log(admin, "user-disable", "success", Some(format!("user {username}"))).await
    }

    /// Sets a password for a user (administrator reset, or demo set-up); with
    /// `must_change` the user replaces it at next login.
    pub async fn set_password(&self, admin: &Caller, username: &str, new: &str, must_change: bool) -> Result<()> {
        self.administer(admin, "password-set").await?;
        let mut u = self.user_named(username).await?;
        password::check_policy(&u.username, new)?;
        u.password_hash = password::hash(new)?;
        u.must_change_password = must_change;
        u.password_changed_at = self.clock.now_ms();
        self.store.update_user(&u).await?;
        self.store.revoke_user_sessions(&u.id).await?;
        self.log(admin, "password-set", "success", Some(format!("user {username}"))).await
    }

    /// Removes the second factor: the user enrols again at next login.
    pub async fn reset_mfa(&self, admin: &Caller, username: &str) -> Result<()> {
        self.administer(admin, "mfa-reset").await?;
        let mut u = self.user_named(username).await?;
        u.totp_secret = None;
        u.totp_enabled = false;
        self.store.update_user(&u).await?;
        self.store.revoke_user_sessions(&u.id).await?;
        self.log(admin, "mfa-reset", "success", Some(format!("user {username}"))).await
    }

    /// Where a login goes after the password. Staff must enrol a second factor; a
    /// patient's portal account may (an optional second factor), and once enrolled
    /// it is asked for at every login.
    fn next_stage(user: &UserRecord) -> Stage {
        if user.must_change_password {
            Stage::PasswordChange
        } else if !user.totp_enabled && user.patient.is_some() {
            Stage::Active
        } else if !user.totp_enabled {
            Stage::MfaEnrol
        } else {
            Stage::Mfa
        }
    }

    /// Counts a failed attempt; locks the account at the limit. Returns the error to give.
    async fn fail(&self, user: &mut UserRecord, who: &Caller, action: &str) -> Result<UserError> {
        let now = self.clock.now_ms();
        user.failed_attempts += 1;
        if user.failed_attempts >= self.policy.lockout_attempts {
            user.locked_until = now + self.policy.lockout_ms;
            user.failed_attempts = 0;
            self.store.update_user(user).await?;
            self.store.revoke_user_sessions(&user.id).await?;
            self.log(who, action, "failure", None).await?;
            self.log(
                who,
                "lockout",
                "success",
                Some(format!("locked for {} minutes", self.policy.lockout_ms / 60_000)),
            )
            .await?;
            return Ok(UserError::Locked { until: user.locked_until });
        }
        self.store.update_user(user).await?;
        self.log(who, action, "failure", Some(format!("failed attempt {}", user.failed_attempts))).await?;
        Ok(if action == "login" { UserError::InvalidCredentials } else { UserError::InvalidCode })
    }

    /// First step of a login. Starts a session at the stage the account needs.
    pub async fn login(&self, username: &str, password: &str, client_addr: Option<String>) -> Result<IssuedSession> {
        let now = self.clock.now_ms();
        let mut who = Caller::anonymous(client_addr.clone());
        who.actor = format!("user:{}", username.chars().take(64).collect::<String>());
        who.kind = ActorKind::User;
        let Some(mut user) = self.store.user_by_name(username).await?.filter(|u| !u.disabled) else {
            let _ = password::verify(password, DUMMY_HASH);
            self.log(&who, "login", "failure", Some("unknown or disabled account".into())).await?;
            return Err(UserError::InvalidCredentials);
        };
        if user.locked_until > now {
            self.log(&who, "login", "locked", None).await?;
            return Err(UserError::Locked { until: user.locked_until });
        }
        if !password::verify(password, &user.password_hash) {
            return Err(self.fail(&mut user, &who, "login").await?);
        }
        user.failed_attempts = 0;
        self.store.update_user(&user).await?;
        let stage = Self::next_stage(&user);
        let issued = self.new_session(&user, stage, client_addr).await?;
        self.log(&who, "login-password", "success", Some(format!("next: {}", stage.as_str()))).await?;
        Ok(issued)
    }

    async fn new_session(&self, user: &UserRecord, stage: Stage, client_addr: Option<String>) -> Result<IssuedSession> {
        let now = self.clock.now_ms();
        let token = random_hex(32)?;
        let csrf = random_hex(16)?;
        self.store
            .insert_session(&SessionRecord {
                id_hash: secret_hash(&token),
                user_id: user.id.clone(),
                created_at: now,
                last_seen: now,
                stage: stage.as_str().into(),
                csrf: csrf.clone(),
                client_addr,
                revoked: false,
            })
            .await?;
        Ok(IssuedSession { token, stage, csrf, language: user.language.clone() })
    }

    /// The session behind a cookie value, if live; refreshes its idle timer. An
    /// expired session is revoked and refused (and audited).
    pub async fn session(&self, token: &str, client_addr: Option<String>) -> Result<SessionInfo> {
        let now = self.clock.now_ms();
        let hash = secret_hash(token);
        let Some(s) = self.store.session(&hash).await?.filter(|s| !s.revoked) else {
            return Err(UserError::SessionExpired);
        };
        let user = self.store.user_by_id(&s.user_id).await?.filter(|u| !u.disabled);
        let Some(user) = user else { return Err(UserError::SessionExpired) };
        let grants = self.store.user_grants(&user.id).await?;
        let mut caller = Self::user_caller(&user, &grants, client_addr);
        caller.access.open_patients = self.store.break_glass_patients(&caller.actor, now).await?;
        if now - s.last_seen > self.policy.idle_timeout_ms || now - s.created_at > self.policy.absolute_timeout_ms {
            self.store.revoke_session(&hash).await?;
            let why =
                if now - s.created_at > self.policy.absolute_timeout_ms { "absolute timeout" } else { "idle timeout" };
            self.log(&caller, "session-expired", "success", Some(why.into())).await?;
            return Err(UserError::SessionExpired);
        }
        let stage = Stage::parse(&s.stage).ok_or(UserError::SessionExpired)?;
        // The last activity is written when it moved by more than a sliver of the idle
        // timeout (at most 10 s): a busy desk's every request is not a database commit,
        // and the idle logout stays exact to within that sliver.
        let sliver = (self.policy.idle_timeout_ms / 60).clamp(0, 10_000);
        if now - s.last_seen > sliver {
            self.store.touch_session(&hash, now, stage.as_str()).await?;
        }
        Ok(SessionInfo { stage, csrf: s.csrf, user, caller })
    }

    async fn set_stage(&self, token: &str, stage: Stage) -> Result<()> {
        self.store.touch_session(&secret_hash(token), self.clock.now_ms(), stage.as_str()).await?;
        Ok(())
    }

    /// The forced password change (stage `password-change`, or any time when active).
    pub async fn change_password(
        &self,
        token: &str,
        current: &str,
        new: &str,
        client_addr: Option<String>,
    ) -> Result<Stage> {
        let info = self.session(token, client_addr).await?;
        if !matches!(info.stage, Stage::PasswordChange | Stage::Active) {
            return Err(UserError::WrongStage);
        }
        let mut user = info.user;
        if !password::verify(current, &user.password_hash) {
            return Err(self.fail(&mut user, &info.caller, "password-change").await.map(|e| match e {
                UserError::InvalidCode => UserError::InvalidCredentials,
                other => other,
            })?);
        }
        password::check_policy(&user.username, new)?;
        if password::verify(new, &user.password_hash) {
            return Err(UserError::Policy(PolicyError::Common));
        }
        user.password_hash = password::hash(new)?;
        user.must_change_password = false;
        user.password_changed_at = self.clock.now_ms();
        user.failed_attempts = 0;
        self.store.update_user(&user).await?;
        let next = if info.stage == Stage::Active { Stage::Active } else { Self::next_stage(&user) };
        self.set_stage(token, next).await?;
        self.log(&info.caller, "password-change", "success", None).await?;
        Ok(next)
    }

    /// Starts (or restarts) authenticator enrolment: a new secret, returned as the
    /// otpauth URI to show as a QR code and as text to type.
    pub async fn begin_enrolment(&self, token: &str, client_addr: Option<String>) -> Result<(String, String)> {
        let info = self.session(token, client_addr).await?;
        if info.stage != Stage::MfaEnrol && !Self::may_enrol_optionally(&info) {
            return Err(UserError::WrongStage);
        }
        let mut user = info.user;
        let secret = match self.secret_of(&user) {
            Some(s) => s,
            None => {
                let hex = random_hex(20)?;
                let bytes: Vec<u8> =
                    (0..20).filter_map(|i| u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).ok()).collect();
                user.totp_secret = Some(self.seal_secret(totp::base32_encode(&bytes))?);
                self.store.update_user(&user).await?;
                bytes
            }
        };
        Ok((totp::otpauth_uri("Lianyi", &user.username, &secret), totp::base32_encode(&secret)))
    }

    /// Confirms enrolment with a first code from the authenticator.
    pub async fn confirm_enrolment(&self, token: &str, code: &str, client_addr: Option<String>) -> Result<Stage> {
        let info = self.session(token, client_addr).await?;
        let optional = Self::may_enrol_optionally(&info);
        if info.stage != Stage::MfaEnrol && !optional {
            return Err(UserError::WrongStage);
        }
        let mut user = info.user;
        let secret = self.secret_of(&user).ok_or(UserError::WrongStage)?;
        match totp::matching_step(&secret, code, self.clock.now_ms()) {
            Some(step) if self.store.claim_totp_step(&user.id, step).await? => {
                user.totp_enabled = true;
                user.totp_last_step = step;
                user.failed_attempts = 0;
                user.last_login_at = Some(self.clock.now_ms());
                self.store.update_user(&user).await?;
                self.set_stage(token, Stage::Active).await?;
                self.log(&info.caller, "mfa-enrol", "success", None).await?;
                if !optional {
                    self.log(&info.caller, "login", "success", Some("second factor enrolled".into())).await?;
                }
                Ok(Stage::Active)
            }
            _ => Err(self.fail(&mut user, &info.caller, "mfa-enrol").await?),
        }
    }

    /// The second factor at login. A code is accepted once: a replayed code fails.
    pub async fn verify_code(&self, token: &str, code: &str, client_addr: Option<String>) -> Result<Stage> {
        let info = self.session(token, client_addr).await?;
        if info.stage != Stage::Mfa {
            return Err(UserError::WrongStage);
        }
        let mut user = info.user;
        if user.locked_until > self.clock.now_ms() {
            return Err(UserError::Locked { until: user.locked_until });
        }
        let secret = self.secret_of(&user).ok_or(UserError::WrongStage)?;
        match totp::matching_step(&secret, code, self.clock.now_ms()) {
            Some(step) if self.store.claim_totp_step(&user.id, step).await? => {
                user.totp_last_step = step;
                user.failed_attempts = 0;
                user.last_login_at = Some(self.clock.now_ms());
                self.store.update_user(&user).await?;
                self.set_stage(token, Stage::Active).await?;
                self.log(&info.caller, "login", "success", None).await?;
                Ok(Stage::Active)
            }
            Some(_) => {
                self.log(&info.caller, "mfa-replay", "denied", None).await?;
                Err(self.fail(&mut user, &info.caller, "mfa").await?)
            }
            None => Err(self.fail(&mut user, &info.caller, "mfa").await?),
        }
    }

    /// A patient signed in without a second factor may enrol one (it is optional
    /// for patients; once enrolled, every login asks for it).
    fn may_enrol_optionally(info: &SessionInfo) -> bool {
        info.stage == Stage::Active && info.user.patient.is_some() && !info.user.totp_enabled
    }

    /// Whether the account of a live session has a second factor.
    pub fn has_second_factor(info: &SessionInfo) -> bool {
        info.user.totp_enabled
    }

    /// Keeps the page language the user of a live session chose (`zh-CN` or `en`), so
    /// it follows them to their next login on any device.
    pub async fn set_language(&self, token: &str, language: &str, client_addr: Option<String>) -> Result<()> {
        let info = self.session(token, client_addr).await?;
        self.store.set_user_language(&info.user.id, language).await?;
        Ok(())
    }

    /// The caller of an active session (for pages and API calls made with it).
    pub async fn active_caller(&self, token: &str, client_addr: Option<String>) -> Result<SessionInfo> {
        let info = self.session(token, client_addr).await?;
        if info.stage != Stage::Active {
            return Err(UserError::WrongStage);
        }
        Ok(info)
    }

    pub async fn logout(&self, token: &str, client_addr: Option<String>) -> Result<()> {
        let hash = secret_hash(token);
        if let Ok(info) = self.session(token, client_addr).await {
            self.log(&info.caller, "logout", "success", None).await?;
        }
        self.store.revoke_session(&hash).await?;
        Ok(())
    }
}
