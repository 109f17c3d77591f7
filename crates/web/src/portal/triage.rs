//! Guided triage (`/portal/triage`): where it troubles the patient and what they
//! feel, then the suggested departments with their reasons, the emergency department
//! first for a danger sign, links to book, the rules' sources and the disclaimer.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use lianyi_portal::PortalError;
use lianyi_portal::triage::{Advice, PARTS, disclaimer, symptoms};

use super::{Frame, Patient, Problem, failure, form_page, problems};
use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{form_value, form_values};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/portal/triage", get(form).post(advise))
}

/// A body part with its symptoms: (code, name), each (code, name, red flag).
struct Part {
    name: String,
    symptoms: Vec<(&'static str, String)>,
}

fn parts(t: Tr) -> Vec<Part> {
    PARTS
        .iter()
        .map(|(code, zh, en)| Part {
            name: t.pick(zh, en).to_string(),
            symptoms: symptoms()
                .iter()
                .filter(|s| s.part == *code)
                .map(|s| (s.code, t.pick(s.names.zh.clone(), s.names.en.clone())))
                .collect(),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "portal/triage.html")]
struct TriagePage<'a> {
    t: Tr,
    frame: &'a Frame,
    parts: Vec<Part>,
    chosen: Vec<String>,
    advice: Option<Advice>,
    problems: Vec<Problem>,
    disclaimer: String,
}

impl TriagePage<'_> {
    fn ticked(&self, code: &str) -> bool {
        self.chosen.iter().any(|c| c == code)
    }
}

async fn render(
    state: &AppState,
    p: &Patient,
    chosen: Vec<String>,
    advice: Option<Advice>,
    problems: Vec<Problem>,
) -> Response {
    let t = p.t;
    let frame = Frame::named(state, p, "book").await;
    let d = disclaimer();
    let bad = !problems.is_empty();
    form_page(
        TriagePage { t, frame: &frame, parts: parts(t), chosen, advice, problems, disclaimer: t.pick(d.zh, d.en) }
            .render(),
        bad,
    )
}

async fn form(State(state): State<AppState>, p: Patient) -> Response {
    render(&state, &p, Vec::new(), None, Vec::new()).await
}

async fn advise(State(state): State<AppState>, p: Patient, Form(form): Form<Vec<(String, String)>>) -> Response {
    let t = p.t;
    if !p.csrf_ok(&form_value(&form, "csrf")) {
        return crate::ui::render::forbidden(t);
    }
    let chosen = form_values(&form, "symptom");
    match state.triage.advise(p.caller(), &chosen).await {
        Ok(advice) => render(&state, &p, chosen, Some(advice), Vec::new()).await,
        Err(PortalError::Invalid(errors)) => render(&state, &p, chosen, None, problems(t, &errors)).await,
        Err(e) => failure(t, &e),
    }
}
