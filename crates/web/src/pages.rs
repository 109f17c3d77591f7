//! Server-rendered pages (askama templates compiled into the binary): login with
//! password, forced password change, authenticator enrolment with a QR code drawn
//! on the server, the second-factor check, the home page and logout. Every form
//! carries a CSRF token; the session lives server-side behind a `__Host-` cookie.

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use lianyi_security::roles::Capability;
use lianyi_security::secrets::random_hex;
use lianyi_security::users::{SessionInfo, Stage, UserError};
use lianyi_services::ServiceError;
use serde::Deserialize;

use crate::AppState;
use crate::caller::{ClientAddr, client_addr};
use crate::i18n::{Lang, Tr};

const SESSION_COOKIE: &str = "__Host-lianyi_session";
const LOGIN_CSRF_COOKIE: &str = "__Host-lianyi_csrf";
const LANG_COOKIE: &str = "lianyi_lang";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_form).post(login_submit))
        .route("/login/password", get(password_form).post(password_submit))
        .route("/login/enrol", get(enrol_form).post(enrol_submit))
        .route("/login/mfa", get(mfa_form).post(mfa_submit))
        .route("/logout", post(logout))
        .route("/lang/{code}", get(set_lang))
        .route("/break-glass", get(bg_form).post(bg_submit))
        .route("/admin/break-glass", get(bg_report))
        .route("/admin/audit", get(audit_page))
        .route("/me/access-log", get(access_log))
        .merge(crate::integration::router())
        .merge(crate::clinic::router())
        .route("/static/app.css", get(css))
        .route("/static/htmx.min.js", get(htmx))
}

pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The page language: the switch cookie, else the browser's preference, else zh-CN.
pub(crate) fn lang(headers: &HeaderMap) -> Lang {
    cookie(headers, LANG_COOKIE)
        .and_then(Lang::parse)
        .or_else(|| headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).and_then(Lang::from_accept))
        .unwrap_or(Lang::ZhCn)
}

fn set_cookie(resp: &mut Response, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn session_cookie(token: &str) -> String {
    format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; Secure; SameSite=Strict")
}

fn clear_session_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0")
}

pub(crate) fn page(html: Result<String, askama::Error>) -> Response {
    match html {
        Ok(body) => {
            let mut resp = Html(body).into_response();
            resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

fn stage_path(stage: Stage) -> &'static str {
    match stage {
        Stage::PasswordChange => "/login/password",
        Stage::MfaEnrol => "/login/enrol",
        Stage::Mfa => "/login/mfa",
        Stage::Active => "/",
    }
}

/// The session of a request, or where to send the browser instead.
async fn session_of(
    state: &AppState,
    headers: &HeaderMap,
    addr: Option<String>,
) -> Result<(String, SessionInfo), Response> {
    let Some(token) = cookie(headers, SESSION_COOKIE).filter(|t| !t.is_empty()) else {
        return Err(see_other("/login"));
    };
    match state.users.session(token, addr).await {
        Ok(info) => Ok((token.to_string(), info)),
        Err(UserError::SessionExpired) => {
            let mut r = see_other("/login?m=expired");
            set_cookie(&mut r, clear_session_cookie());
            Err(r)
        }
        Err(e) => {
            tracing::error!(error = %e, "session lookup failed");
            Err(see_other("/login?m=error"))
        }
    }
}

/// The session, which must be at `stage` (else a redirect to where it belongs).
async fn at_stage(
    state: &AppState,
    headers: &HeaderMap,
    addr: Option<String>,
    stage: Stage,
) -> Result<(String, SessionInfo), Response> {
    let (token, info) = session_of(state, headers, addr).await?;
    if info.stage != stage {
        return Err(see_other(stage_path(info.stage)));
    }
    Ok((token, info))
}

/// A signed-in session that has passed every login stage; any other request is
/// redirected to the page of the stage it is at (or to the login page).
pub(crate) struct Active(pub(crate) SessionInfo);

impl FromRequestParts<AppState> for Active {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let addr = client_addr(parts);
        at_stage(state, &parts.headers, addr, Stage::Active).await.map(|(_, info)| Active(info))
    }
}

#[derive(Template)]
#[template(path = "login.html")]
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
    let csrf = random_hex(16).unwrap_or_default();
    let mut resp = page(LoginPage { t, message, csrf: &csrf, username }.render());
    set_cookie(&mut resp, format!("{LOGIN_CSRF_COOKIE}={csrf}; Path=/; HttpOnly; Secure; SameSite=Strict"));
    resp
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
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !lianyi_security::secrets::constant_time_eq(expected, &f.csrf) {
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
#[template(path = "password.html")]
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
#[template(path = "enrol.html")]
struct EnrolPage<'a> {
    t: Tr,
    message: Option<&'a str>,
    csrf: &'a str,
    qr_svg: &'a str,
    secret: &'a str,
}

/// The otpauth URI as an SVG QR code (server-side, no script).
fn qr_svg(uri: &str) -> String {
    match qrcode::QrCode::new(uri.as_bytes()) {
        Ok(code) => code.render::<qrcode::render::svg::Color>().min_dimensions(200, 200).quiet_zone(true).build(),
        Err(_) => String::new(),
    }
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
#[template(path = "mfa.html")]
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
#[template(path = "home.html")]
struct HomePage<'a> {
    t: Tr,
    csrf: &'a str,
    display_name: &'a str,
    /// (href, text key) of the pages this user may open.
    links: Vec<(&'static str, &'static str)>,
    /// (role text key, campus id, campus name)
    grants: Vec<(String, String, String)>,
    idle_minutes: String,
}

async fn home(State(state): State<AppState>, Active(info): Active, headers: HeaderMap) -> Response {
    let t = Tr::new(lang(&headers));
    let mut grants = Vec::new();
    match state.users.grants(&info.user.id).await {
        Ok(list) => {
            for g in list {
                let name = state.fhir.campus_name(&g.campus, t.code()).await.unwrap_or_else(|| g.campus.clone());
                grants.push((format!("role-{}", g.role), g.campus, name));
            }
        }
        Err(e) => tracing::error!(error = %e, "grants lookup failed"),
    }
    let idle_minutes = format!("{}", (state.users.policy().idle_timeout_ms as f64 / 6_000.0).round() / 10.0);
    let c = &info.caller;
    let mut links: Vec<_> = crate::clinic::nav_links(c).into_iter().filter(|(href, _)| *href != "/").collect();
    if c.can(Capability::ReviewAudit) {
        links.push(("/admin/break-glass", "nav-break-glass-report"));
    }
    if c.access().patient().is_some() {
        links.push(("/me/access-log", "nav-access-log"));
    }
    page(HomePage { t, csrf: &info.csrf, display_name: &info.user.display_name, links, grants, idle_minutes }.render())
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

async fn css() -> Response {
    let mut r = include_str!("../static/app.css").into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    r
}

/// htmx 2.0.11, vendored unchanged (see `static/vendor/README.md`); pages load it
/// with this SHA-256 as their `integrity`, so a browser runs no other file.
async fn htmx() -> Response {
    let mut r = include_str!("../static/vendor/htmx-2.0.11.min.js").into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    r
}

#[derive(Template)]
#[template(path = "break_glass.html")]
struct BreakGlassPage<'a> {
    t: Tr,
    message: Option<&'a str>,
    csrf: &'a str,
    patient: &'a str,
    granted_until: Option<String>,
}

/// The path of the page a link was followed from (this site's only), else `/`.
pub(crate) fn referer_path(headers: &HeaderMap) -> String {
    headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.split_once("://").map(|(_, rest)| rest))
        .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
        .filter(|p| p.starts_with('/') && !p.starts_with("//"))
        .unwrap_or("/")
        .to_string()
}

pub(crate) fn not_found(t: Tr) -> Response {
    let mut r = page(Ok(format!(
        "<!DOCTYPE html><html lang=\"{}\"><head><meta charset=\"utf-8\"><link rel=\"stylesheet\" href=\"/static/app.css\"></head><body><main><section class=\"card narrow\"><p class=\"error\" id=\"message\">{}</p><a href=\"/\">{}</a></section></main></body></html>",
        t.code(),
        t.get("not-found"),
        t.get("nav-home")
    )));
    *r.status_mut() = StatusCode::NOT_FOUND;
    r
}

pub(crate) fn forbidden(t: Tr) -> Response {
    let mut r = page(Ok(format!(
        "<!DOCTYPE html><html lang=\"{}\"><head><meta charset=\"utf-8\"><link rel=\"stylesheet\" href=\"/static/app.css\"></head><body><main><section class=\"card narrow\"><p class=\"error\" id=\"message\">{}</p><a href=\"/\">{}</a></section></main></body></html>",
        t.code(),
        t.get("forbidden"),
        t.get("nav-home")
    )));
    *r.status_mut() = StatusCode::FORBIDDEN;
    r
}

/// `YYYY-MM-DD HH:MM` in Beijing time, for tables.
pub(crate) fn local_time(ms: i64) -> String {
    let s = lianyi_fhir::datetime::format_instant(ms + 8 * 3_600_000);
    format!("{} {}", &s[..10], &s[11..16])
}

async fn bg_form(Active(info): Active, headers: HeaderMap) -> Response {
    let t = Tr::new(lang(&headers));
    if !info.caller.can(Capability::BreakTheGlass) {
        return forbidden(t);
    }
    page(BreakGlassPage { t, message: None, csrf: &info.csrf, patient: "", granted_until: None }.render())
}

#[derive(Deserialize)]
struct BreakGlassForm {
    csrf: String,
    patient: String,
    reason: String,
}

async fn bg_submit(
    State(state): State<AppState>,
    Active(info): Active,
    headers: HeaderMap,
    Form(f): Form<BreakGlassForm>,
) -> Response {
    let t = Tr::new(lang(&headers));
    let answer = |message: Option<&str>, granted_until: Option<String>| {
        page(BreakGlassPage { t, message, csrf: &info.csrf, patient: f.patient.trim(), granted_until }.render())
    };
    if !lianyi_security::secrets::constant_time_eq(&info.csrf, &f.csrf) {
        return answer(Some("login-error"), None);
    }
    match state.fhir.break_glass(&info.caller, f.patient.trim(), &f.reason).await {
        Ok(g) => answer(None, Some(local_time(g.expires_at))),
        Err(ServiceError::Invalid(_)) => answer(Some("bg-reason-required"), None),
        Err(ServiceError::NotFound { .. }) => answer(Some("bg-no-patient"), None),
        Err(ServiceError::Forbidden(_)) => forbidden(t),
        Err(e) => {
            tracing::error!(error = %e, "break-the-glass failed");
            answer(Some("login-error"), None)
        }
    }
}

#[derive(Deserialize, Default)]
struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
    actor: Option<String>,
    patient: Option<String>,
    action: Option<String>,
}

/// `[from, to]` as epoch ms (whole days, Beijing time); default: the last 30 days.
fn range(state: &AppState, q: &RangeQuery) -> (i64, i64, String, String) {
    let now = state.fhir.now_ms();
    let day = |s: &Option<String>| s.as_deref().filter(|d| !d.is_empty()).and_then(lianyi_fhir::datetime::parse_range);
    let from = day(&q.from).map_or(now - 30 * 86_400_000, |r| r.low - 8 * 3_600_000);
    let to = day(&q.to).map_or(now + 60_000, |r| r.high + 1 - 8 * 3_600_000);
    (from, to, local_time(from)[..10].to_string(), local_time(to - 1)[..10].to_string())
}

#[derive(Template)]
#[template(path = "report.html")]
struct ReportPage {
    t: Tr,
    from: String,
    to: String,
    rows: Vec<(String, String, String, String, String, String)>,
}

async fn bg_report(
    State(state): State<AppState>,
    Active(info): Active,
    headers: HeaderMap,
    Query(q): Query<RangeQuery>,
) -> Response {
    let t = Tr::new(lang(&headers));
    let (since, until, from, to) = range(&state, &q);
    match state.fhir.break_glass_report(&info.caller, since, until).await {
        Ok(list) => {
            let rows = list
                .into_iter()
                .map(|g| {
                    (
                        local_time(g.granted_at),
                        g.actor,
                        g.role.unwrap_or_default(),
                        g.patient,
                        g.reason,
                        local_time(g.expires_at),
                    )
                })
                .collect();
            page(ReportPage { t, from, to, rows }.render())
        }
        Err(_) => forbidden(t),
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage<'a> {
    t: Tr,
    title: &'a str,
    intro: Option<&'a str>,
    show_filters: bool,
    actor: String,
    patient: String,
    action: String,
    from: String,
    to: String,
    rows: Vec<AuditRow>,
}

/// One audit record as a table row: seq, time, actor, role, action, resource,
/// patient, outcome, address.
type AuditRow = (i64, String, String, String, String, String, String, String, String);

fn audit_rows(records: Vec<lianyi_store::audit::AuditRecord>) -> Vec<AuditRow> {
    records
        .into_iter()
        .map(|r| {
            let e = r.entry;
            let resource = match (e.resource_type, e.resource_id) {
                (Some(t), Some(id)) => format!("{t}/{id}"),
                (Some(t), None) => t,
                _ => String::new(),
            };
            (
                r.seq,
                local_time(e.recorded_at),
                e.actor,
                e.role.unwrap_or_default(),
                e.action,
                resource,
                e.patient.unwrap_or_default(),
                e.outcome,
                e.client_addr.unwrap_or_default(),
            )
        })
        .collect()
}

async fn audit_page(
    State(state): State<AppState>,
    Active(info): Active,
    headers: HeaderMap,
    Query(q): Query<RangeQuery>,
) -> Response {
    let t = Tr::new(lang(&headers));
    let (since, until, from, to) = range(&state, &q);
    let filled = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let query = lianyi_store::audit::AuditQuery {
        actor: filled(&q.actor),
        patient: filled(&q.patient),
        action: filled(&q.action),
        since: Some(since),
        until: Some(until),
        seq: None,
        limit: 500,
        offset: 0,
    };
    match state.fhir.audit_review(&info.caller, &query).await {
        Ok(records) => page(
            AuditPage {
                t,
                title: t.get("audit-title"),
                intro: None,
                show_filters: true,
                actor: query.actor.unwrap_or_default(),
                patient: query.patient.unwrap_or_default(),
                action: query.action.unwrap_or_default(),
                from,
                to,
                rows: audit_rows(records),
            }
            .render(),
        ),
        Err(_) => forbidden(t),
    }
}

async fn access_log(State(state): State<AppState>, Active(info): Active, headers: HeaderMap) -> Response {
    let t = Tr::new(lang(&headers));
    match state.fhir.my_access_log(&info.caller).await {
        Ok(records) => page(
            AuditPage {
                t,
                title: t.get("access-title"),
                intro: Some(t.get("access-intro")),
                show_filters: false,
                actor: String::new(),
                patient: String::new(),
                action: String::new(),
                from: String::new(),
                to: String::new(),
                rows: audit_rows(records),
            }
            .render(),
        ),
        Err(_) => forbidden(t),
    }
}
