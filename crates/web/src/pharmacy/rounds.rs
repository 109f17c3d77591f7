//! The wards' rounds at the inpatient pharmacy (`/pharmacy/rounds`, 病区摆药): the
//! lines each ward of the active campus sent, waiting, and one button per ward
//! dispensing its round from the inpatient pharmacy. The rules live in
//! [`lianyi_billing::rounds`].

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use lianyi_billing::dispensing::DispenseError;
use serde::Deserialize;

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, form_value, page, see_other};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, shell};

use super::{drug_name, may_dispense};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/pharmacy/rounds", get(rounds_page).post(dispense_round))
}

struct WardRound {
    ward: String,
    name: String,
    /// (date, patient id, drug, units).
    lines: Vec<(String, String, String, String)>,
}

#[derive(Template)]
#[template(path = "pharmacy/rounds.html")]
struct RoundsPage<'a> {
    t: Tr,
    shell: &'a Shell,
    wards: Vec<WardRound>,
    no_campus: bool,
    errors: Vec<String>,
    done: Option<String>,
}

#[derive(Deserialize, Default)]
struct Shown {
    done: Option<String>,
}

async fn render(state: &AppState, s: &Signed, errors: Vec<String>, done: Option<String>) -> Response {
    let t = s.t;
    let caller = &s.info.caller;
    let shell = shell(state, &s.info, t, &s.headers).await;
    let Some(campus) = shell.campus.as_ref().map(|c| c.as_str().to_string()) else {
        return page(RoundsPage { t, shell: &shell, wards: Vec::new(), no_campus: true, errors, done }.render());
    };
    let mut errors = errors;
    let lines = match state.dispensary.waiting_rounds(caller, &campus).await {
        Ok(l) => l,
        Err(DispenseError::Forbidden(_)) => return forbidden(t),
        Err(e) => {
            errors.push(worded(t, &e));
            Vec::new()
        }
    };
    let names = state.inpatient.all_wards(caller).await.unwrap_or_default();
    let mut wards: Vec<WardRound> = Vec::new();
    for l in lines {
        let row = (
            l.date.clone(),
            l.patient.clone(),
            drug_name(t, &l.drug),
            format!("{} {}", l.units, super::unit(t, &l.drug)),
        );
        match wards.iter_mut().find(|w| w.ward == l.ward) {
            Some(w) => w.lines.push(row),
            None => {
                let name = names
                    .iter()
                    .find(|w| w.id == l.ward)
                    .map_or_else(|| l.ward.clone(), |w| t.pick(&w.names.zh, &w.names.en).clone());
                wards.push(WardRound { ward: l.ward.clone(), name, lines: vec![row] });
            }
        }
    }
    page(RoundsPage { t, shell: &shell, wards, no_campus: false, errors, done }.render())
}

/// An error in the page's language, naming the rule (and the drugs short).
fn worded(t: Tr, e: &DispenseError) -> String {
    match e {
        DispenseError::Invalid(fs) => fs
            .iter()
            .map(|f| match t.try_get(&format!("round-rule-{}", f.rule)) {
                Some(rule) if f.rule == "round-short" => format!("{rule}: {}", f.detail),
                Some(rule) => rule.to_string(),
                None => f.detail.clone(),
            })
            .collect::<Vec<_>>()
            .join("; "),
        other => {
            tracing::error!(error = %other, "ward round");
            t.get("round-failed").to_string()
        }
    }
}

async fn rounds_page(State(state): State<AppState>, s: Signed, Query(q): Query<Shown>) -> Response {
    if !may_dispense(&s.info.caller) {
        return forbidden(s.t);
    }
    let done = q.done.map(|n| s.t.fmt("round-done", &n));
    render(&state, &s, Vec::new(), done).await
}

async fn dispense_round(State(state): State<AppState>, s: Signed, Form(form): Form<Vec<(String, String)>>) -> Response {
    if !may_dispense(&s.info.caller) || !s.csrf_ok(&form_value(&form, "csrf")) {
        return forbidden(s.t);
    }
    let shell_campus = s.info.caller.campus().map(|c| c.as_str().to_string());
    let campus = form_value(&form, "campus");
    let campus = if campus.is_empty() { shell_campus.unwrap_or_default() } else { campus };
    match state.dispensary.dispense_round(&s.info.caller, &campus, &form_value(&form, "ward")).await {
        Ok(n) => see_other(&format!("/pharmacy/rounds?done={n}")),
        Err(DispenseError::Forbidden(_)) => forbidden(s.t),
        Err(e) => {
            let errors = vec![worded(s.t, &e)];
            render(&state, &s, errors, None).await
        }
    }
}
