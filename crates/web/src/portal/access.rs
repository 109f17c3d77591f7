//! Getting in: opening an account with the slip's code (`/portal/activate`),
//! logging in with the account's password (`/portal/login`) and, when the patient
//! enrolled one, the authenticator's code (`/portal/login/mfa`), and logging out.
//! Both forms are rate-limited per address at the edge ([`crate::ui::layers`]), and
//! the services count and audit every wrong try.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use lianyi_portal::PortalError;
use lianyi_portal::accounts::ActivationForm;
use lianyi_security::secrets::constant_time_eq;
use lianyi_security::users::{Stage, UserError};
use serde::Deserialize;

use super::{Problem, portal_lang, problems};
use crate::AppState;
use crate::ui::auth::ClientAddr;
use crate::ui::i18n::Tr;
use crate::ui::render::{form_value, page, see_other};
use crate::ui::session::{
    clear_session_cookie, login_csrf_ok, session_cookie, session_of, set_cookie, with_login_csrf,
};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/portal/login", get(login_form).post(login_submit))
        .route("/portal/login/mfa", get(mfa_form).post(mfa_submit))
        .route("/portal/activate", get(activate_form).post(activate_submit))
        .route("/portal/logout", post(logout))
}

#[derive(Template)]
#[template(path = "portal/login.html")]
struct LoginPage<'a> {
    t: Tr,
    message: Option<&'a str>,
    csrf: &'a str,
    username: &'a str,
}

#[derive(Deserialize)]
struct LoginQuery {
    m: Option<String>,
}

fn login_page(t: Tr, message: Option<&str>, username: &str) -> Response {
    with_login_csrf(|csrf| LoginPage { t, message, csrf, username }.render())
}

async fn login_form(headers: HeaderMap, Query(q): Query<LoginQuery>) -> Response {
    let message = match q.m.as_deref() {
        Some("expired") => Some("login-expired"),
        Some("logged-out") => Some("login-logged-out"),
        Some("activated") => Some("portal-activated"),
        _ => None,
    };
    login_page(portal_lang(&headers), message, "")
}

#[derive(Deserialize)]
struct LoginForm {
    csrf: String,
    username: String,
    password: String,
}

async fn login_submit(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let t = portal_lang(&headers);
    if !login_csrf_ok(&headers, &f.csrf) {
        return login_page(t, Some("login-error"), &f.username);
    }
    match state.users.login(f.username.trim(), &f.password, addr).await {
        Ok(issued) => {
            let to = match issued.stage {
                Stage::Active => "/portal",
                Stage::Mfa => "/portal/login/mfa",
                // Staff accounts finish their login on the staff pages.
                other => crate::ui::session::stage_path(other),
            };
            let mut r = see_other(to);
            set_cookie(&mut r, session_cookie(&issued.token));
            r
        }
        Err(UserError::Locked { .. }) => login_page(t, Some("login-locked"), &f.username),
        Err(UserError::InvalidCredentials) => login_page(t, Some("login-failed"), &f.username),
        Err(e) => {
            tracing::error!(error = %e, "portal login failed");
            login_page(t, Some("login-error"), &f.username)
        }
    }
}

#[derive(Template)]
#[template(path = "portal/mfa.html")]
struct MfaPage<'a> {
    t: Tr,
    message: Option<&'a str>,
    csrf: &'a str,
}

async fn mfa_form(State(state): State<AppState>, ClientAddr(addr): ClientAddr, headers: HeaderMap) -> Response {
    let t = portal_lang(&headers);
    match crate::ui::session::at_stage(&state, &headers, addr, Stage::Mfa).await {
        Ok((_, info)) => page(MfaPage { t, message: None, csrf: &info.csrf }.render()),
        Err(_) => see_other("/portal/login"),
    }
}

#[derive(Deserialize)]
struct CodeForm {
    csrf: String,
    code: String,
}

async fn mfa_submit(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> Response {
    let t = portal_lang(&headers);
    let Ok((token, info)) = crate::ui::session::at_stage(&state, &headers, addr.clone(), Stage::Mfa).await else {
        return see_other("/portal/login");
    };
    if !constant_time_eq(&info.csrf, &f.csrf) {
        return page(MfaPage { t, message: Some("login-error"), csrf: &info.csrf }.render());
    }
    match state.users.verify_code(&token, &f.code, addr).await {
        Ok(_) => see_other("/portal"),
        Err(UserError::Locked { .. }) => {
            let mut r = see_other("/portal/login");
            set_cookie(&mut r, clear_session_cookie());
            r
        }
        Err(_) => page(MfaPage { t, message: Some("mfa-failed"), csrf: &info.csrf }.render()),
    }
}

#[derive(Template)]
#[template(path = "portal/activate.html")]
struct ActivatePage<'a> {
    t: Tr,
    csrf: &'a str,
    form: &'a ActivationForm,
    problems: Vec<Problem>,
    /// Whether online sign-up is offered (a code can be sent).
    signup: bool,
}

impl ActivatePage<'_> {
    fn wrong(&self, field: &str) -> bool {
        self.problems.iter().any(|p| p.field == field)
    }
}

#[derive(Deserialize)]
struct ActivateQuery {
    code: Option<String>,
}

async fn activate_form(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<ActivateQuery>) -> Response {
    let t = portal_lang(&headers);
    let form = ActivationForm { code: q.code.unwrap_or_default(), ..Default::default() };
    let signup = !super::signup::channel_codes(&state).is_empty();
    with_login_csrf(|csrf| ActivatePage { t, csrf, form: &form, problems: Vec::new(), signup }.render())
}

async fn activate_submit(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let t = portal_lang(&headers);
    let v = |k: &str| form_value(&form, k);
    let mut f = ActivationForm {
        code: v("code"),
        resident_id: v("resident_id"),
        phone: v("phone"),
        username: v("username"),
        password: v("password"),
        confirm: v("confirm"),
    };
    let outcome = if login_csrf_ok(&headers, &v("csrf")) {
        state.portal_accounts.activate(&f, addr).await
    } else {
        Err(super::expired_form())
    };
    match outcome {
        Ok(_) => see_other("/portal/login?m=activated"),
        Err(PortalError::Invalid(errors)) => {
            f.password.clear();
            f.confirm.clear();
            let problems = problems(t, &errors);
            let signup = !super::signup::channel_codes(&state).is_empty();
            let mut r = with_login_csrf(|csrf| ActivatePage { t, csrf, form: &f, problems, signup }.render());
            *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            r
        }
        Err(e) => super::failure(t, &e),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Ok((token, info)) = session_of(&state, &headers, addr.clone()).await
        && constant_time_eq(&info.csrf, &f.csrf)
        && let Err(e) = state.users.logout(&token, addr).await
    {
        tracing::error!(error = %e, "portal logout failed");
    }
    let mut r = see_other("/portal/login?m=logged-out");
    set_cookie(&mut r, clear_session_cookie());
    r
}
