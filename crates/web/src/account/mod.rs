//! Signing in and out, and the home page: login with password, forced password
//! change, authenticator enrolment with a QR code drawn on the server, the
//! second-factor check, logout and the language switch. Every form carries a CSRF
//! token; the session lives server-side behind a `__Host-` cookie ([`crate::ui::session`]).

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use lianyi_security::users::{Stage, UserError};
use serde::Deserialize;

use crate::AppState;
use crate::ui::auth::ClientAddr;
use crate::ui::i18n::{Lang, Tr};
use crate::ui::render::{page, qr_svg, referer_path, see_other};
use crate::ui::session::{
    LANG_COOKIE, SESSION_COOKIE, Signed, at_stage, clear_session_cookie, cookie, lang, login_csrf_ok, session_cookie,
    session_of, set_cookie, stage_path, with_login_csrf,
};
use crate::ui::shell::{Place, Shell, campus_name, nav_links, shell};

mod worklist;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_form).post(login_submit))
        .route("/login/password", get(password_form).post(password_submit))
        .route("/login/enrol", get(enrol_form).post(enrol_submit))
        .route("/login/mfa", get(mfa_form).post(mfa_submit))
        .route("/logout", post(logout))
        .route("/lang/{code}", get(set_lang))
}

#[derive(Template)]
#[template(path = "account/login.html")]
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
        Some("error") => Some("login-error"),
        _ => None,
    };
    login_page(Tr::new(lang(&headers)), message, "")
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
    let t = Tr::new(lang(&headers));
    if !login_csrf_ok(&headers, &f.csrf) {
        return login_page(t, Some("login-error"), &f.username);
    }
    match state.users.login(f.username.trim(), &f.password, addr).await {
        Ok(issued) => {
            let mut r = see_other(stage_path(issued.stage));
            set_cookie(&mut r, session_cookie(&issued.token));
            // The language the user chose before, on whichever device.
            if let Some(l) = issued.language.as_deref().and_then(Lang::parse) {
                set_cookie(&mut r, lang_cookie(l));
            }
            r
        }
        Err(UserError::Locked { .. }) => login_page(t, Some("login-locked"), &f.username),
        Err(UserError::InvalidCredentials) => login_page(t, Some("login-failed"), &f.username),
        Err(e) => {
            tracing::error!(error = %e, "login failed");
            login_page(t, Some("login-error"), &f.username)
        }
    }
}

#[derive(Template)]
#[template(path = "account/password.html")]
struct PasswordPage<'a> {
    t: Tr,
    message: Option<&'a str>,
    csrf: &'a str,
}

async fn password_form(State(state): State<AppState>, ClientAddr(addr): ClientAddr, headers: HeaderMap) -> Response {
    match at_stage(&state, &headers, addr, Stage::PasswordChange).await {
        Ok((_, info)) => page(PasswordPage { t: Tr::new(lang(&headers)), message: None, csrf: &info.csrf }.render()),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct PasswordForm {
    csrf: String,
    current: String,
    new: String,
    confirm: String,
}

async fn password_submit(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Form(f): Form<PasswordForm>,
) -> Response {
    let (token, info) = match at_stage(&state, &headers, addr.clone(), Stage::PasswordChange).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let t = Tr::new(lang(&headers));
    let again = |m: &str| page(PasswordPage { t, message: Some(m), csrf: &info.csrf }.render());
    if !lianyi_security::secrets::constant_time_eq(&info.csrf, &f.csrf) {
        return again("login-error");
    }
    if f.new != f.confirm {
        return again("password-mismatch");
    }
    match state.users.change_password(&token, &f.current, &f.new, addr).await {
        Ok(next) => see_other(stage_path(next)),
        Err(UserError::Policy(p)) => again(p.key()),
        Err(UserError::InvalidCredentials) => again("password-wrong-current"),
        Err(UserError::Locked { .. }) => {
            let mut r = see_other("/login");
            set_cookie(&mut r, clear_session_cookie());
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "password change failed");
            again("login-error")
        }
    }
}

#[derive(Template)]
#[template(path = "account/enrol.html")]
struct EnrolPage<'a> {
    t: Tr,
    message: Option<&'a str>,
    csrf: &'a str,
    qr_svg: &'a str,
    secret: &'a str,
}

async fn enrol_page(state: &AppState, headers: &HeaderMap, addr: Option<String>, message: Option<&str>) -> Response {
    let (token, info) = match at_stage(state, headers, addr.clone(), Stage::MfaEnrol).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match state.users.begin_enrolment(&token, addr).await {
        Ok((uri, secret)) => page(
            EnrolPage { t: Tr::new(lang(headers)), message, csrf: &info.csrf, qr_svg: &qr_svg(&uri), secret: &secret }
                .render(),
        ),
        Err(e) => {
            tracing::error!(error = %e, "enrolment failed");
            see_other("/login?m=error")
        }
    }
}

async fn enrol_form(State(state): State<AppState>, ClientAddr(addr): ClientAddr, headers: HeaderMap) -> Response {
    enrol_page(&state, &headers, addr, None).await
}

#[derive(Deserialize)]
struct CodeForm {
    csrf: String,
    code: String,
}

async fn enrol_submit(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> Response {
    let (token, info) = match at_stage(&state, &headers, addr.clone(), Stage::MfaEnrol).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !lianyi_security::secrets::constant_time_eq(&info.csrf, &f.csrf) {
        return enrol_page(&state, &headers, addr, Some("login-error")).await;
    }
    match state.users.confirm_enrolment(&token, &f.code, addr.clone()).await {
        Ok(next) => see_other(stage_path(next)),
        Err(UserError::Locked { .. }) => locked_out(),
        Err(_) => enrol_page(&state, &headers, addr, Some("mfa-failed")).await,
    }
}

fn locked_out() -> Response {
    let mut r = see_other("/login?m=error");
    set_cookie(&mut r, clear_session_cookie());
    r
}

#[derive(Template)]
#[template(path = "account/mfa.html")]
struct MfaPage<'a> {
    t: Tr,
    message: Option<&'a str>,
    csrf: &'a str,
}

async fn mfa_form(State(state): State<AppState>, ClientAddr(addr): ClientAddr, headers: HeaderMap) -> Response {
    match at_stage(&state, &headers, addr, Stage::Mfa).await {
        Ok((_, info)) => page(MfaPage { t: Tr::new(lang(&headers)), message: None, csrf: &info.csrf }.render()),
        Err(r) => r,
    }
}

async fn mfa_submit(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> Response {
    let (token, info) = match at_stage(&state, &headers, addr.clone(), Stage::Mfa).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let t = Tr::new(lang(&headers));
    if !lianyi_security::secrets::constant_time_eq(&info.csrf, &f.csrf) {
        return page(MfaPage { t, message: Some("login-error"), csrf: &info.csrf }.render());
    }
    match state.users.verify_code(&token, &f.code, addr).await {
        Ok(next) => see_other(stage_path(next)),
        Err(UserError::Locked { .. }) => locked_out(),
        Err(_) => page(MfaPage { t, message: Some("mfa-failed"), csrf: &info.csrf }.render()),
    }
}

#[derive(Template)]
#[template(path = "account/home.html")]
struct HomePage<'a> {
    t: Tr,
    shell: &'a Shell,
    display_name: &'a str,
    /// (href, text key) of the pages this user may open.
    links: Vec<(&'static str, &'static str)>,
    /// (role text key, campus id, campus name)
    grants: Vec<(String, String, String)>,
    idle_minutes: String,
    /// The worklists of the user's roles.
    panels: Vec<worklist::Panel>,
}

async fn home(State(state): State<AppState>, Signed { info, t, headers }: Signed) -> Response {
    // Patients have their own pages.
    if info.caller.access().patient().is_some() {
        return see_other("/portal");
    }
    let shell = shell(&state, &info, t, &headers).await;
    let mut grants = Vec::new();
    match state.users.grants(&info.user.id).await {
        Ok(list) => {
            for g in list {
                let name = campus_name(&state, &g.campus, t).await;
                grants.push((format!("role-{}", g.role), g.campus, name));
            }
        }
        Err(e) => tracing::error!(error = %e, "grants lookup failed"),
    }
    let idle_minutes = format!("{}", (state.users.policy().idle_timeout_ms as f64 / 6_000.0).round() / 10.0);
    let mut links: Vec<_> =
        nav_links(&state, &info.caller, Place::Bar).into_iter().filter(|(href, _)| *href != "/").collect();
    links.extend(nav_links(&state, &info.caller, Place::Home));
    let panels = worklist::panels(&state, &info.caller, t, &shell.alerts).await;
    page(
        HomePage { t, shell: &shell, display_name: &info.user.display_name, links, grants, idle_minutes, panels }
            .render(),
    )
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
        && lianyi_security::secrets::constant_time_eq(&info.csrf, &f.csrf)
        && let Err(e) = state.users.logout(&token, addr).await
    {
        tracing::error!(error = %e, "logout failed");
    }
    let mut r = see_other("/login?m=logged-out");
    set_cookie(&mut r, clear_session_cookie());
    r
}

fn lang_cookie(lang: Lang) -> String {
    format!("{LANG_COOKIE}={}; Path=/; SameSite=Lax; Max-Age=31536000", lang.code())
}

/// Switches the page language and returns to the page the switch was clicked on. A
/// signed-in user's choice is kept with their account for their next login.
async fn set_lang(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Path(code): Path<String>,
    headers: HeaderMap,
) -> Response {
    let lang = Lang::parse(&code).unwrap_or(Lang::ZhCn);
    if let Some(token) = cookie(&headers, SESSION_COOKIE)
        && let Err(e) = state.users.set_language(token, lang.code(), addr).await
        && !matches!(e, UserError::SessionExpired)
    {
        tracing::warn!(error = %e, "keeping the language choice failed");
    }
    let mut r = see_other(&referer_path(&headers));
    set_cookie(&mut r, lang_cookie(lang));
    r
}
