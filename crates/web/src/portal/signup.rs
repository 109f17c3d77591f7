//! Opening an account online (`/portal/signup`, offered only when an SMS gateway or a
//! mail server is configured): a certain match gets its code by SMS or mail at once,
//! the rest wait for the desk. The desk's list of waiting sign-ups
//! (`/portal/signups`, in the staff shell) shows each with the index's candidates;
//! the registrar picks the record (a code goes to the contact given) or declines.
//! The desk can also send a patient's code to the phone or mail their record holds
//! (`/portal/desk/{patient}/send`) instead of printing it.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use lianyi_clinical::registry::Candidate;
use lianyi_portal::PortalError;
use lianyi_portal::courier::Channel;
use lianyi_portal::signup::{Letter, SENT_CODE_MINUTES, SignupForm, WaitingSignup};
use lianyi_security::Caller;

use super::{Problem, portal_lang, problems};
use crate::AppState;
use crate::ui::auth::ClientAddr;
use crate::ui::i18n::{Lang, Tr};
use crate::ui::render::{form_value, local_time, not_found, page, see_other};
use crate::ui::session::{Signed, login_csrf_ok, with_login_csrf};
use crate::ui::shell::{Shell, shell};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/portal/signup", get(signup_form).post(signup_submit))
        .route("/portal/signups", get(waiting))
        .route("/portal/signups/{id}/send", post(send))
        .route("/portal/signups/{id}/decline", post(decline))
        .route("/portal/desk/{patient}/send", post(super::desk::send_code))
}

/// Who sees the desk's list: staff who print codes.
pub(crate) fn may_handle(caller: &Caller) -> bool {
    lianyi_portal::accounts::may_issue(caller)
}

/// The message a code goes out in, in `t`'s language, saying how long it is `valid`.
fn letter(t: Tr, valid: &str) -> Letter {
    let body = t.get("portal-code-text").replace("{1}", valid).replace("{0}", "{code}");
    Letter { subject: t.get("portal-code-subject").to_string(), body }
}

/// The refusal shown when the gateway or mail server did not take a code (the
/// reason is logged, not shown: it may name the provider's answer).
pub(super) fn not_sent(t: Tr, e: &lianyi_portal::courier::CourierError) -> Vec<Problem> {
    tracing::warn!(error = %e, "a portal code was not sent");
    vec![Problem { field: "channel", label: t.get("pf-channel").into(), text: t.get("portal-not-sent").into() }]
}

/// The message of a code the desk sends (good for the slip's days), in the portal's
/// own language, Chinese: the patient's is not known.
pub(super) fn desk_letter() -> Letter {
    let zh = Tr::new(Lang::ZhCn);
    letter(zh, &zh.fmt("portal-days", &lianyi_portal::accounts::CODE_DAYS.to_string()))
}

#[derive(Template)]
#[template(path = "portal/signup.html")]
struct SignupPage<'a> {
    t: Tr,
    csrf: &'a str,
    form: &'a SignupForm,
    channels: Vec<&'static str>,
    problems: Vec<Problem>,
}

impl SignupPage<'_> {
    fn wrong(&self, field: &str) -> bool {
        self.problems.iter().any(|p| p.field == field)
    }
}

#[derive(Template)]
#[template(path = "portal/signup_done.html")]
struct DonePage {
    t: Tr,
    minutes: i64,
}

/// The ways a code can be sent here (`sms`, `email`); none: no online sign-up.
pub(super) fn channel_codes(state: &AppState) -> Vec<&'static str> {
    state.portal_accounts.channels().into_iter().map(Channel::code).collect()
}

async fn signup_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let t = portal_lang(&headers);
    let channels = channel_codes(&state);
    if channels.is_empty() {
        return not_found(t);
    }
    let form = SignupForm { channel: channels[0].to_string(), ..Default::default() };
    with_login_csrf(|csrf| SignupPage { t, csrf, form: &form, channels, problems: Vec::new() }.render())
}

async fn signup_submit(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let t = portal_lang(&headers);
    let channels = channel_codes(&state);
    if channels.is_empty() {
        return not_found(t);
    }
    let v = |k: &str| form_value(&form, k);
    let f = SignupForm {
        name: v("name"),
        resident_id: v("resident_id"),
        phone: v("phone"),
        email: v("email"),
        channel: v("channel"),
    };
    let outcome = if login_csrf_ok(&headers, &v("csrf")) {
        let valid = t.fmt("portal-minutes", &SENT_CODE_MINUTES.to_string());
        state.portal_accounts.sign_up(&f, &letter(t, &valid), addr).await
    } else {
        Err(super::expired_form())
    };
    let again = |status: StatusCode, problems: Vec<Problem>| {
        let mut r =
            with_login_csrf(|csrf| SignupPage { t, csrf, form: &f, channels: channels.clone(), problems }.render());
        *r.status_mut() = status;
        r
    };
    match outcome {
        // The same page whatever was found: it tells no one whether a person is a
        // patient here.
        Ok(()) => page(DonePage { t, minutes: SENT_CODE_MINUTES }.render()),
        Err(PortalError::Invalid(errors)) => again(StatusCode::UNPROCESSABLE_ENTITY, problems(t, &errors)),
        Err(e) => super::failure(t, &e),
    }
}

struct Row {
    s: WaitingSignup,
    made: String,
    /// Each candidate with its MRNs as text, for the radio list.
    candidates: Vec<(Candidate, String)>,
}

#[derive(Template)]
#[template(path = "portal/signups.html")]
struct WaitingPage<'a> {
    t: Tr,
    shell: &'a Shell,
    configured: bool,
    rows: Vec<Row>,
    problems: Vec<Problem>,
    sent_to: Option<String>,
}

async fn render_waiting(state: &AppState, s: &Signed, problems: Vec<Problem>, sent_to: Option<String>) -> Response {
    let t = s.t;
    let list = match state.portal_accounts.waiting_signups(s.caller()).await {
        Ok(x) => x,
        Err(PortalError::Forbidden(_)) => return s.forbidden(),
        Err(e) => return super::failure(t, &e),
    };
    let rows = list
        .into_iter()
        .map(|w| {
            let candidates = w
                .candidates
                .iter()
                .map(|c| {
                    let mrns =
                        c.mrns.iter().map(|m| format!("{} {}", m.campus, m.number)).collect::<Vec<_>>().join(", ");
                    (c.clone(), mrns)
                })
                .collect();
            Row { made: local_time(w.made_at), s: w, candidates }
        })
        .collect();
    let shell = shell(state, &s.info, t, &s.headers).await;
    let configured = !channel_codes(state).is_empty();
    page(WaitingPage { t, shell: &shell, configured, rows, problems, sent_to }.render())
}

/// The list again with what the desk's action broke, under `status`.
async fn refused(state: &AppState, s: &Signed, status: StatusCode, problems: Vec<Problem>) -> Response {
    let mut r = render_waiting(state, s, problems, None).await;
    if r.status() == StatusCode::OK {
        *r.status_mut() = status;
    }
    r
}

async fn waiting(State(state): State<AppState>, s: Signed) -> Response {
    if !may_handle(s.caller()) {
        return s.forbidden();
    }
    render_waiting(&state, &s, Vec::new(), None).await
}

async fn send(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if !s.csrf_ok(&form_value(&form, "csrf")) || !may_handle(s.caller()) {
        return s.forbidden();
    }
    match state.portal_accounts.send_signup_code(s.caller(), &id, &form_value(&form, "patient"), &desk_letter()).await {
        Ok(to) => render_waiting(&state, &s, Vec::new(), Some(to)).await,
        Err(PortalError::Invalid(errors)) => {
            refused(&state, &s, StatusCode::UNPROCESSABLE_ENTITY, problems(s.t, &errors)).await
        }
        Err(PortalError::Delivery(e)) => refused(&state, &s, StatusCode::BAD_GATEWAY, not_sent(s.t, &e)).await,
        Err(e) => super::failure(s.t, &e),
    }
}

async fn decline(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if !s.csrf_ok(&form_value(&form, "csrf")) || !may_handle(s.caller()) {
        return s.forbidden();
    }
    match state.portal_accounts.decline_signup(s.caller(), &id, &form_value(&form, "note")).await {
        Ok(()) => see_other("/portal/signups"),
        Err(PortalError::Invalid(errors)) => {
            refused(&state, &s, StatusCode::UNPROCESSABLE_ENTITY, problems(s.t, &errors)).await
        }
        Err(e) => super::failure(s.t, &e),
    }
}
