//! The desk's part of the portal (`/portal/desk/{patient}`, in the staff shell):
//! whether a patient has a portal account, and printing a new activation code on a
//! slip to hand over (the registration slip's code, or one printed later).

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use lianyi_portal::PortalError;
use lianyi_portal::accounts::{ProxyView, RELATIONS, Slip, Standing, may_issue};

use super::{Problem, problems};
use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{form_value, local_time, not_found, page};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, shell};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/portal/desk/{patient}", get(standing).post(issue))
        .route("/portal/desk/{patient}/proxies", axum::routing::post(add_proxy))
        .route("/portal/desk/{patient}/proxies/{id}/revoke", axum::routing::post(revoke_proxy))
}

#[derive(Template)]
#[template(path = "portal/desk.html")]
struct DeskPage<'a> {
    t: Tr,
    shell: &'a Shell,
    patient: &'a str,
    standing: Standing,
    code_expires: String,
    code_spent: bool,
    slip: Option<Slip>,
    slip_expires: String,
    problems: Vec<Problem>,
    proxies: Vec<ProxyView>,
    relations: &'static [&'static str],
    /// The ways a code can be sent (`sms`, `email`), and where one just went.
    channels: Vec<&'static str>,
    sent_to: Option<String>,
}

fn failed(t: Tr, e: &PortalError) -> Response {
    match e {
        PortalError::Forbidden(_) => crate::ui::render::forbidden(t),
        other => super::failure(t, other),
    }
}

async fn render(state: &AppState, s: &Signed, patient: &str, slip: Option<Slip>, problems: Vec<Problem>) -> Response {
    render_sent(state, s, patient, slip, problems, None).await
}

async fn render_sent(
    state: &AppState,
    s: &Signed,
    patient: &str,
    slip: Option<Slip>,
    problems: Vec<Problem>,
    sent_to: Option<String>,
) -> Response {
    let t = s.t;
    let standing = match state.portal_accounts.standing(s.caller(), patient).await {
        Ok(x) => x,
        Err(PortalError::NotFound) => return not_found(t),
        Err(e) => return failed(t, &e),
    };
    let proxies = match state.portal_accounts.proxies_at_desk(s.caller(), patient).await {
        Ok(x) => x,
        Err(e) => return failed(t, &e),
    };
    let shell = shell(state, &s.info, t, &s.headers).await;
    let code_expires = standing.code.as_ref().map(|c| local_time(c.expires_at)).unwrap_or_default();
    let code_spent = standing.code.as_ref().is_some_and(|c| c.used_at.is_some());
    let slip_expires = slip.as_ref().map(|s| local_time(s.expires_at)).unwrap_or_default();
    page(
        DeskPage {
            t,
            shell: &shell,
            patient,
            standing,
            code_expires,
            code_spent,
            slip,
            slip_expires,
            problems,
            proxies,
            relations: &RELATIONS,
            channels: super::signup::channel_codes(state),
            sent_to,
        }
        .render(),
    )
}

async fn standing(State(state): State<AppState>, s: Signed, Path(patient): Path<String>) -> Response {
    if !may_issue(s.caller()) {
        return s.forbidden();
    }
    render(&state, &s, &patient, None, Vec::new()).await
}

async fn issue(
    State(state): State<AppState>,
    s: Signed,
    Path(patient): Path<String>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !s.csrf_ok(&form_value(&form, "csrf")) || !may_issue(s.caller()) {
        return s.forbidden();
    }
    match state.portal_accounts.issue(s.caller(), &patient).await {
        Ok(slip) => render(&state, &s, &patient, Some(slip), Vec::new()).await,
        Err(PortalError::Invalid(errors)) => render(&state, &s, &patient, None, problems(s.t, &errors)).await,
        Err(PortalError::NotFound) => not_found(s.t),
        Err(e) => failed(s.t, &e),
    }
}

async fn add_proxy(
    State(state): State<AppState>,
    s: Signed,
    Path(patient): Path<String>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !s.csrf_ok(&form_value(&form, "csrf")) || !may_issue(s.caller()) {
        return s.forbidden();
    }
    let v = |k: &str| form_value(&form, k);
    match state
        .portal_accounts
        .add_proxy_at_desk(s.caller(), &patient, &v("username"), &v("relation"), &v("consent"))
        .await
    {
        Ok(_) => crate::ui::render::see_other(&format!("/portal/desk/{patient}")),
        Err(PortalError::Invalid(errors)) => render(&state, &s, &patient, None, problems(s.t, &errors)).await,
        Err(PortalError::NotFound) => not_found(s.t),
        Err(e) => failed(s.t, &e),
    }
}

async fn revoke_proxy(
    State(state): State<AppState>,
    s: Signed,
    Path((patient, id)): Path<(String, String)>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !s.csrf_ok(&form_value(&form, "csrf")) || !may_issue(s.caller()) {
        return s.forbidden();
    }
    match state.portal_accounts.revoke_at_desk(s.caller(), &patient, &id).await {
        Ok(()) => crate::ui::render::see_other(&format!("/portal/desk/{patient}")),
        Err(PortalError::Invalid(errors)) => render(&state, &s, &patient, None, problems(s.t, &errors)).await,
        Err(PortalError::NotFound) => not_found(s.t),
        Err(e) => failed(s.t, &e),
    }
}

/// Sends the patient's code to the phone or mail their record holds.
pub(super) async fn send_code(
    State(state): State<AppState>,
    s: Signed,
    Path(patient): Path<String>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !s.csrf_ok(&form_value(&form, "csrf")) || !may_issue(s.caller()) {
        return s.forbidden();
    }
    let Some(channel) = lianyi_portal::courier::Channel::parse(&form_value(&form, "channel")) else {
        return render(
            &state,
            &s,
            &patient,
            None,
            problems(
                s.t,
                &[lianyi_portal::FieldError { field: "channel", code: "channel", detail: "sms or email".into() }],
            ),
        )
        .await;
    };
    match state.portal_accounts.send_code(s.caller(), &patient, channel, &super::signup::desk_letter()).await {
        Ok(to) => render_sent(&state, &s, &patient, None, Vec::new(), Some(to)).await,
        Err(PortalError::Invalid(errors)) => {
            let mut r = render(&state, &s, &patient, None, problems(s.t, &errors)).await;
            if r.status() == axum::http::StatusCode::OK {
                *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            }
            r
        }
        Err(PortalError::NotFound) => not_found(s.t),
        Err(PortalError::Delivery(e)) => {
            let mut r = render(&state, &s, &patient, None, super::signup::not_sent(s.t, &e)).await;
            *r.status_mut() = axum::http::StatusCode::BAD_GATEWAY;
            r
        }
        Err(e) => failed(s.t, &e),
    }
}
