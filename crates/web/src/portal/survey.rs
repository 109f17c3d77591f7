//! The satisfaction survey of a finished visit (`/portal/survey/{encounter}`): stars
//! and a comment, once per visit; it goes to the campus's feedback and the doctor's
//! patient satisfaction.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use lianyi_portal::PortalError;
use lianyi_portal::survey::Rateable;

use super::{Frame, Patient, Problem, failure, form_page, problems};
use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::form_value;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/portal/survey/{encounter}", get(form).post(rate))
}

#[derive(Template)]
#[template(path = "portal/survey.html")]
struct SurveyPage<'a> {
    t: Tr,
    frame: &'a Frame,
    visit: Option<Rateable>,
    encounter: &'a str,
    rating: String,
    comment: String,
    problems: Vec<Problem>,
    done: bool,
}

#[allow(clippy::too_many_arguments)]
async fn render(
    state: &AppState,
    p: &Patient,
    encounter: &str,
    rating: String,
    comment: String,
    problems: Vec<Problem>,
    done: bool,
) -> Response {
    let t = p.t;
    let visit = match state.surveys.visit(p.caller(), encounter).await {
        Ok((v, _)) => Some(v),
        Err(PortalError::Invalid(e)) if problems.is_empty() => {
            return render_page(state, p, encounter, None, rating, comment, super::problems(t, &e), done).await;
        }
        Err(PortalError::Invalid(_)) => None,
        Err(e) => return failure(t, &e),
    };
    render_page(state, p, encounter, visit, rating, comment, problems, done).await
}

#[allow(clippy::too_many_arguments)]
async fn render_page(
    state: &AppState,
    p: &Patient,
    encounter: &str,
    visit: Option<Rateable>,
    rating: String,
    comment: String,
    problems: Vec<Problem>,
    done: bool,
) -> Response {
    let frame = Frame::named(state, p, "reports").await;
    let bad = !problems.is_empty();
    form_page(SurveyPage { t: p.t, frame: &frame, visit, encounter, rating, comment, problems, done }.render(), bad)
}

async fn form(State(state): State<AppState>, p: Patient, Path(encounter): Path<String>) -> Response {
    render(&state, &p, &encounter, String::new(), String::new(), Vec::new(), false).await
}

async fn rate(
    State(state): State<AppState>,
    p: Patient,
    Path(encounter): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let t = p.t;
    if !p.csrf_ok(&form_value(&form, "csrf")) {
        return crate::ui::render::forbidden(t);
    }
    let (rating, comment) = (form_value(&form, "rating"), form_value(&form, "comment"));
    match state.surveys.rate(p.caller(), &encounter, &rating, &comment).await {
        Ok(_) => render(&state, &p, &encounter, rating, String::new(), Vec::new(), true).await,
        Err(PortalError::Invalid(errors)) => {
            render(&state, &p, &encounter, rating, comment, problems(t, &errors), false).await
        }
        Err(e) => failure(t, &e),
    }
}
