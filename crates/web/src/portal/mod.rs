//! The patient portal (`/portal`): a patient's own pages on a phone, with their own
//! simple navigation, apart from the staff pages. Opening an account with the
//! registration slip's code, logging in, booking any campus's doctor, the
//! appointments with the queue on the day, and the reports with each value said in
//! plain words. The desk's part (printing the slip's code) is here too, in the staff
//! shell. The rules live in [`lianyi_portal`]; these handlers parse, call and render.

mod access;
mod book;
mod desk;
mod family;
mod images;
mod messages;
mod record;
mod signup;
mod survey;
mod triage;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use lianyi_portal::{FieldError, PortalError};
use lianyi_security::Caller;
use lianyi_security::users::{SessionInfo, Stage};

use crate::AppState;
use crate::ui::auth::client_addr;
use crate::ui::i18n::{Lang, Tr};
use crate::ui::render::{not_found, see_other, server_error};
use crate::ui::session::{LANG_COOKIE, SESSION_COOKIE, cookie};
use crate::ui::shell::{NavLink, Place};

/// The care team's inbox of patients' questions, in the staff shell.
pub(crate) const NAV: &[NavLink] = &[NavLink {
    href: "/portal/inbox",
    text: "nav-care-inbox",
    place: Place::Bar,
    shown: lianyi_portal::messages::may_answer,
}];

/// The desk's list of online sign-ups, on the registrar's home: only where a code can
/// be sent (see [`crate::routes::nav`]).
pub(crate) const SIGNUP_NAV: &[NavLink] =
    &[NavLink { href: "/portal/signups", text: "nav-portal-signups", place: Place::Home, shown: signup::may_handle }];

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .merge(access::router())
        .merge(book::router())
        .merge(record::router())
        .merge(desk::router())
        .merge(family::router())
        .merge(messages::router())
        .merge(triage::router())
        .merge(survey::router())
        .merge(signup::router())
        .merge(images::router())
        .route("/portal/static/portal.css", get(css))
        .route("/portal/static/queue.js", get(queue_js))
}

/// The portal's language: the switch's choice, else Chinese (the browser's language
/// is not asked: the portal is in Chinese unless the patient switches).
pub(super) fn portal_lang(headers: &HeaderMap) -> Tr {
    Tr::new(cookie(headers, LANG_COOKIE).and_then(Lang::parse).unwrap_or(Lang::ZhCn))
}

/// The cookie naming the patient a proxy is acting for (checked at every request).
pub(super) const FOR_COOKIE: &str = "__Host-lianyi_portal_for";

/// A patient's (or a proxy's) session past every login stage; anyone else is sent to
/// the portal's login. A proxy acting for another patient (the cookie names them)
/// gets that patient's caller while their proxy is live; a revoked one is sent back
/// to their own pages.
pub(super) struct Patient {
    pub info: SessionInfo,
    pub t: Tr,
    caller: Caller,
    /// The patient acted for, when not the account's own.
    pub acting: Option<String>,
}

impl FromRequestParts<AppState> for Patient {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let t = portal_lang(&parts.headers);
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE).filter(|t| !t.is_empty()) else {
            return Err(see_other("/portal/login"));
        };
        match state.users.session(token, client_addr(parts)).await {
            Ok(info) if info.stage == Stage::Active && info.caller.access().patient().is_some() => {
                let own = info.caller.access().patient().unwrap_or_default().to_string();
                // Switching whom to act for is done as the account itself.
                let switching = parts.uri.path().starts_with("/portal/for/");
                let other = cookie(&parts.headers, FOR_COOKIE).filter(|p| !switching && !p.is_empty() && *p != own);
                match other {
                    None => Ok(Patient { caller: info.caller.clone(), info, t, acting: None }),
                    Some(other) => match state.users.acting_for(&info, other).await {
                        Ok(caller) => Ok(Patient { caller, acting: Some(other.to_string()), info, t }),
                        Err(lianyi_security::users::UserError::Forbidden) => Err(see_other("/portal/for/me?ended=1")),
                        Err(e) => {
                            tracing::error!(error = %e, "proxy lookup failed");
                            Err(server_error(Some(t)))
                        }
                    },
                }
            }
            Ok(info) if info.stage == Stage::Mfa => Err(see_other("/portal/login/mfa")),
            Ok(info) if info.stage == Stage::Active => Err(see_other("/")),
            Ok(_) => Err(see_other("/portal/login")),
            Err(lianyi_security::users::UserError::SessionExpired) => Err(see_other("/portal/login?m=expired")),
            Err(e) => {
                tracing::error!(error = %e, "portal session lookup failed");
                Err(server_error(Some(t)))
            }
        }
    }
}

impl Patient {
    /// The caller of the patient whose pages these are (a proxy's for the patient
    /// they act for).
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    pub fn csrf_ok(&self, token: &str) -> bool {
        lianyi_security::secrets::constant_time_eq(&self.info.csrf, token)
    }
}

/// What every portal page's frame shows: who is signed in, for whom, the tab open.
pub(super) struct Frame {
    pub name: String,
    pub csrf: String,
    /// `home`, `book`, `visits`, `reports`, `me`.
    pub tab: &'static str,
    /// The name of the patient a proxy is acting for.
    pub acting: Option<String>,
}

impl Frame {
    pub fn of(p: &Patient, tab: &'static str) -> Frame {
        Frame { name: p.info.user.display_name.clone(), csrf: p.info.csrf.clone(), tab, acting: None }
    }

    /// The frame, naming the patient acted for when the account is a proxy's.
    pub async fn named(state: &AppState, p: &Patient, tab: &'static str) -> Frame {
        let mut f = Frame::of(p, tab);
        if p.acting.is_some() {
            f.acting = Some(state.my_record.name(p.caller()).await.unwrap_or_default());
        }
        f
    }
}

/// One rule a form broke, in the page's language: the field's label and the rule.
pub(super) struct Problem {
    pub field: &'static str,
    pub label: String,
    pub text: String,
}

pub(super) fn problems(t: Tr, errors: &[FieldError]) -> Vec<Problem> {
    errors
        .iter()
        .map(|e| Problem {
            field: e.field,
            label: t.try_get(&format!("pf-{}", e.field)).unwrap_or(e.field).to_string(),
            text: t
                .try_get(&format!("pe-{}-{}", e.field, e.code))
                .or_else(|| t.try_get(e.code))
                .map_or_else(|| e.detail.clone(), str::to_string),
        })
        .collect()
}

/// The refusal of a sign-in form whose login token expired (or was not sent).
pub(super) fn expired_form() -> PortalError {
    PortalError::Invalid(vec![FieldError {
        field: "form",
        code: "expired",
        detail: "the form expired; try again".into(),
    }])
}

/// A rendered page; 422 when it shows a form's refusal (`refused`).
pub(super) fn form_page(html: Result<String, askama::Error>, refused: bool) -> Response {
    let mut r = crate::ui::render::page(html);
    if refused {
        *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    r
}

/// The page of a portal error that is not a form's: not found (also for anyone
/// else's record: a patient learns nothing of other ids), or a server error.
pub(super) fn failure(t: Tr, e: &PortalError) -> Response {
    tracing::debug!(error = %e, "a portal page's call was refused or found nothing");
    match e {
        PortalError::NotFound | PortalError::Forbidden(_) => not_found(t),
        PortalError::Service(
            lianyi_services::ServiceError::NotFound { .. }
            | lianyi_services::ServiceError::Gone { .. }
            | lianyi_services::ServiceError::Forbidden(_),
        ) => not_found(t),
        other => {
            tracing::error!(error = %other, "a portal page's service call failed");
            server_error(Some(t))
        }
    }
}

async fn queue_js() -> Response {
    let mut r = include_str!("../../static/portal-queue.js").into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    r
}

async fn css() -> Response {
    let mut r = include_str!("../../static/portal.css").into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    r
}
