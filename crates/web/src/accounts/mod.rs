//! Account administration in the browser, for administrators: the accounts with their
//! roles per campus, second factor and lock state; create an account (its one-time
//! initial password is shown once), grant and remove roles, disable, reset the second
//! factor or the password. Every action is checked and audited in
//! [`lianyi_security::users::UserService`]; the `lianyi user` commands keep working.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use lianyi_security::Caller;
use lianyi_security::roles::{Capability, Role};
use lianyi_security::users::{NewUser, UserError};
use serde::Deserialize;

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, local_time, page, see_other};
use crate::ui::session::Signed;
use crate::ui::shell::{NavLink, Place, Shell, shell};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/accounts", get(accounts_page).post(create))
        .route("/admin/accounts/{username}/{action}", post(act))
}

fn may_administer(c: &Caller) -> bool {
    c.can(Capability::AdministerUsers)
}

pub(crate) const NAV: &[NavLink] =
    &[NavLink { href: "/admin/accounts", text: "nav-accounts", place: Place::Bar, shown: may_administer }];

struct AccountRow {
    username: String,
    display_name: String,
    /// (role code, role text key, campus)
    grants: Vec<(String, String, String)>,
    mfa: bool,
    disabled: bool,
    locked_until: String,
    created: String,
    /// `YYYY-MM-DD HH:MM` of the last completed login, empty if never.
    last_login: String,
}

#[derive(Template)]
#[template(path = "accounts/accounts.html")]
struct AccountsPage<'a> {
    t: Tr,
    shell: &'a Shell,
    rows: Vec<AccountRow>,
    /// Role codes an administrator may grant (not the patient role: patient accounts
    /// are tied to a record).
    roles: Vec<&'static str>,
    q: String,
    /// A one-time password to hand over: (user name, password).
    handover: Option<(String, String)>,
    notice: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
struct PageQuery {
    #[serde(default)]
    q: String,
    done: Option<String>,
    error: Option<String>,
}

async fn render(
    state: &AppState,
    s: &Signed,
    q: &str,
    handover: Option<(String, String)>,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    let t = s.t;
    let shell = shell(state, &s.info, t, &s.headers).await;
    let list = match state.users.accounts(s.caller()).await {
        Ok(list) => list,
        Err(UserError::Forbidden) => return forbidden(t),
        Err(e) => {
            tracing::error!(error = %e, "account list failed");
            return crate::ui::render::server_error(Some(t));
        }
    };
    let now = state.fhir.now_ms();
    let needle = q.trim().to_lowercase();
    let rows = list
        .into_iter()
        .filter(|(u, _)| {
            needle.is_empty()
                || u.username.to_lowercase().contains(&needle)
                || u.display_name.to_lowercase().contains(&needle)
        })
        .map(|(u, grants)| AccountRow {
            grants: grants.into_iter().map(|g| (g.role.clone(), format!("role-{}", g.role), g.campus)).collect(),
            mfa: u.totp_enabled,
            disabled: u.disabled,
            locked_until: if u.locked_until > now { local_time(u.locked_until) } else { String::new() },
            created: local_time(u.created_at)[..10].to_string(),
            last_login: u.last_login_at.map(local_time).unwrap_or_default(),
            username: u.username,
            display_name: u.display_name,
        })
        .collect();
    let roles = Role::ALL.iter().filter(|r| **r != Role::Patient).map(|r| r.code()).collect();
    page(AccountsPage { t, shell: &shell, rows, roles, q: q.to_string(), handover, notice, error }.render())
}

async fn accounts_page(State(state): State<AppState>, s: Signed, Query(q): Query<PageQuery>) -> Response {
    let notice = q.done.as_deref().map(|d| s.t.get(&format!("accounts-done-{d}")).to_string());
    let error = q.error.as_deref().map(|e| s.t.get(&format!("accounts-error-{e}")).to_string());
    render(&state, &s, &q.q, None, notice, error).await
}

#[derive(Deserialize)]
struct CreateForm {
    csrf: String,
    username: String,
    display_name: String,
    role: String,
    campus: String,
}

/// A one-time initial password: 16 hex characters, replaced at first login.
fn one_time_password() -> Option<String> {
    lianyi_security::secrets::random_hex(8).ok()
}

/// The message of a refused account action, in the page's language.
fn refusal(t: Tr, e: &UserError) -> String {
    let key = match e {
        UserError::Name => "accounts-error-name",
        UserError::Role(_) => "accounts-error-role",
        UserError::Campus(_) => "accounts-error-campus",
        UserError::Exists(_) => "accounts-error-exists",
        UserError::NoSuchUser(_) => "accounts-error-unknown",
        _ => "accounts-error-failed",
    };
    t.get(key).to_string()
}

async fn create(State(state): State<AppState>, s: Signed, Form(f): Form<CreateForm>) -> Response {
    if !s.csrf_ok(&f.csrf) || !may_administer(s.caller()) {
        return s.forbidden();
    }
    let Some(password) = one_time_password() else {
        return crate::ui::render::server_error(Some(s.t));
    };
    let display_name = if f.display_name.trim().is_empty() { f.username.trim() } else { f.display_name.trim() };
    let new = NewUser {
        username: f.username.trim().to_string(),
        display_name: display_name.to_string(),
        password: password.clone(),
        grants: vec![(f.role.trim().to_string(), f.campus.trim().to_string())],
        patient: None,
        must_change_password: true,
    };
    match state.users.add_user(s.caller(), new).await {
        Ok(u) => render(&state, &s, "", Some((u.username, password)), None, None).await,
        Err(UserError::Forbidden) => s.forbidden(),
        Err(e) => {
            let message = refusal(s.t, &e);
            render(&state, &s, "", None, None, Some(message)).await
        }
    }
}

#[derive(Deserialize)]
struct ActForm {
    csrf: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    campus: String,
}

async fn act(
    State(state): State<AppState>,
    s: Signed,
    Path((username, action)): Path<(String, String)>,
    Form(f): Form<ActForm>,
) -> Response {
    if !s.csrf_ok(&f.csrf) || !may_administer(s.caller()) {
        return s.forbidden();
    }
    let admin = s.caller();
    let users = &state.users;
    let (role, campus) = (f.role.trim(), f.campus.trim());
    let done = match action.as_str() {
        "grant" => users.grant_role(admin, &username, role, campus).await.map(|()| "granted"),
        "revoke" => users.revoke_role(admin, &username, role, campus).await.map(|()| "revoked"),
        "disable" => users.disable_user(admin, &username).await.map(|()| "disabled"),
        "reset-mfa" => users.reset_mfa(admin, &username).await.map(|()| "mfa-reset"),
        "reset-password" => {
            let Some(password) = one_time_password() else {
                return crate::ui::render::server_error(Some(s.t));
            };
            return match users.set_password(admin, &username, &password, true).await {
                Ok(()) => render(&state, &s, "", Some((username, password)), None, None).await,
                Err(e) => {
                    let message = refusal(s.t, &e);
                    render(&state, &s, "", None, None, Some(message)).await
                }
            };
        }
        _ => return crate::ui::render::not_found(s.t),
    };
    match done {
        Ok(what) => see_other(&format!("/admin/accounts?done={what}")),
        Err(UserError::Forbidden) => s.forbidden(),
        Err(e) => {
            let message = refusal(s.t, &e);
            render(&state, &s, "", None, None, Some(message)).await
        }
    }
}
