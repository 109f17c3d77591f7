//! The signed-in session behind every page: the `__Host-` session cookie, the login
//! stage a session is at, the page language, and the one extractor page handlers
//! start with ([`Signed`]: the session, its language and the request's headers).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use lianyi_security::Caller;
use lianyi_security::users::{SessionInfo, Stage, UserError};

use crate::AppState;
use crate::ui::auth::client_addr;
use crate::ui::i18n::{Lang, Tr};
use crate::ui::render::{forbidden, see_other};

pub(crate) const SESSION_COOKIE: &str = "__Host-lianyi_session";
pub(crate) const LOGIN_CSRF_COOKIE: &str = "__Host-lianyi_csrf";
pub(crate) const LANG_COOKIE: &str = "lianyi_lang";

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

pub(crate) fn set_cookie(resp: &mut Response, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// A page shown before login (the login and account-opening forms), with a fresh
/// CSRF token handed to `render` and set in its cookie.
pub(crate) fn with_login_csrf(render: impl FnOnce(&str) -> Result<String, askama::Error>) -> Response {
    let csrf = lianyi_security::secrets::random_hex(16).unwrap_or_default();
    let mut resp = crate::ui::render::page(render(&csrf));
    set_cookie(&mut resp, format!("{LOGIN_CSRF_COOKIE}={csrf}; Path=/; HttpOnly; Secure; SameSite=Strict"));
    resp
}

/// Whether a form sent before login carries the token of its page's cookie.
pub(crate) fn login_csrf_ok(headers: &HeaderMap, given: &str) -> bool {
    let expected = cookie(headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    !expected.is_empty() && lianyi_security::secrets::constant_time_eq(expected, given)
}

pub(crate) fn session_cookie(token: &str) -> String {
    format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; Secure; SameSite=Strict")
}

pub(crate) fn clear_session_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0")
}

pub(crate) fn stage_path(stage: Stage) -> &'static str {
    match stage {
        Stage::PasswordChange => "/login/password",
        Stage::MfaEnrol => "/login/enrol",
        Stage::Mfa => "/login/mfa",
        Stage::Active => "/",
    }
}

/// The session of a request, or where to send the browser instead.
pub(crate) async fn session_of(
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
            // Not a sign-out: the page says what went wrong (503 while the database
            // does not answer) and the session goes on afterwards.
            tracing::error!(error = %e, "session lookup failed");
            Err(crate::ui::render::server_error(Some(crate::ui::i18n::Tr::new(lang(headers)))))
        }
    }
}

/// The session, which must be at `stage` (else a redirect to where it belongs).
pub(crate) async fn at_stage(
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

/// What every page handler starts with: a session past every login stage (else the
/// browser is sent where it belongs), the page language, and the request headers
/// (campus choice, where the user came from). Handlers then check the permission
/// their page needs, e.g. `if !may_book(&info.caller) { return s.forbidden(); }`.
pub(crate) struct Signed {
    pub info: SessionInfo,
    pub t: Tr,
    pub headers: HeaderMap,
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Active(info) = Active::from_request_parts(parts, state).await?;
        Ok(Signed { info, t: Tr::new(lang(&parts.headers)), headers: parts.headers.clone() })
    }
}

impl Signed {
    pub fn caller(&self) -> &Caller {
        &self.info.caller
    }

    /// Whether a form's CSRF token is this session's.
    pub fn csrf_ok(&self, token: &str) -> bool {
        lianyi_security::secrets::constant_time_eq(&self.info.csrf, token)
    }

    pub fn forbidden(&self) -> Response {
        forbidden(self.t)
    }
}
