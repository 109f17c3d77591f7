//! How a campus's wards work (`/ward/rules?campus=…`): its managers set the medication
//! round times of each frequency and whether orders need a second nurse's check.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use lianyi_clinical::prescribing::Frequency;
use lianyi_inpatient::rules::{RulesForm, WardRules};
use lianyi_inpatient::stays::{Inpatient, InpatientError};
use serde::Deserialize;

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, form_value, local_time, page, see_other, urlencode};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, campus_name, shell};

use super::worded;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/ward/rules", get(rules_page).post(set_rules))
}

/// Whether `caller` sets the ward rules of some campus (the link in the bar).
pub(super) fn may_set_some(caller: &lianyi_security::Caller) -> bool {
    caller.can(lianyi_security::roles::Capability::SetWardRules) && caller.access().patient().is_none()
}

#[derive(Deserialize, Default)]
struct Shown {
    campus: Option<String>,
    done: Option<String>,
}

#[derive(Template)]
#[template(path = "ward/rules.html")]
struct RulesPage<'a> {
    t: Tr,
    shell: &'a Shell,
    campuses: Vec<(String, String)>,
    campus: String,
    /// (frequency code, its round times `08:00,16:00`).
    rounds: Vec<(&'static str, String)>,
    second_check: bool,
    set: String,
    errors: Vec<String>,
    done: bool,
}

/// The round times of every scheduled frequency, as the form shows them.
fn round_fields(rules: &WardRules) -> Vec<(&'static str, String)> {
    Frequency::EVERY
        .iter()
        .filter(|f| **f != Frequency::St)
        .map(|f| {
            let times: Vec<String> =
                rules.rounds.of(*f).iter().map(|m| format!("{:02}:{:02}", m / 60, m % 60)).collect();
            (f.code(), times.join(","))
        })
        .collect()
}

async fn render(
    state: &AppState,
    s: &Signed,
    campus: Option<String>,
    draft: Option<(Vec<(&'static str, String)>, bool)>,
    errors: Vec<String>,
    done: bool,
) -> Response {
    let t = s.t;
    let caller = &s.info.caller;
    let mut campuses = Vec::new();
    for id in state.fhir.campuses().await.unwrap_or_default() {
        if Inpatient::may_set_rules(caller, &id) {
            let name = campus_name(state, &id, t).await;
            campuses.push((id, name));
        }
    }
    let Some(campus) = campus
        .filter(|c| campuses.iter().any(|(id, _)| id == c))
        .or_else(|| campuses.first().map(|(id, _)| id.clone()))
    else {
        return forbidden(t);
    };
    let rules = match state.inpatient.rules(&campus).await {
        Ok(r) => r,
        Err(e) => {
            let shell = shell(state, &s.info, t, &s.headers).await;
            let errors = worded(t, &e);
            return page(
                RulesPage {
                    t,
                    shell: &shell,
                    campuses,
                    campus,
                    rounds: Vec::new(),
                    second_check: false,
                    set: String::new(),
                    errors,
                    done,
                }
                .render(),
            );
        }
    };
    let set = rules.set.as_ref().map(|(by, at)| format!("{by} {}", local_time(*at))).unwrap_or_default();
    let (rounds, second_check) = draft.unwrap_or_else(|| (round_fields(&rules), rules.second_check));
    let shell = shell(state, &s.info, t, &s.headers).await;
    page(RulesPage { t, shell: &shell, campuses, campus, rounds, second_check, set, errors, done }.render())
}

async fn rules_page(State(state): State<AppState>, s: Signed, Query(q): Query<Shown>) -> Response {
    if !may_set_some(&s.info.caller) {
        return forbidden(s.t);
    }
    render(&state, &s, q.campus, None, Vec::new(), q.done.is_some()).await
}

async fn set_rules(
    State(state): State<AppState>,
    s: Signed,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !may_set_some(&s.info.caller) || !s.csrf_ok(&form_value(&form, "csrf")) {
        return forbidden(s.t);
    }
    let campus = form_value(&form, "campus");
    let rounds: Vec<(&'static str, String)> = Frequency::EVERY
        .iter()
        .filter(|f| **f != Frequency::St)
        .map(|f| (f.code(), form_value(&form, &format!("round_{}", f.code())).trim().to_string()))
        .collect();
    let text = rounds
        .iter()
        .filter(|(_, times)| !times.is_empty())
        .map(|(code, times)| format!("{code}={times}"))
        .collect::<Vec<_>>()
        .join(";");
    let second_check = form_value(&form, "second_check") == "on";
    let f = RulesForm { rounds: text, second_check };
    match state.inpatient.set_rules(&s.info.caller, &campus, &f).await {
        Ok(_) => see_other(&format!("/ward/rules?campus={}&done=1", urlencode(&campus))),
        Err(InpatientError::Forbidden(_)) => forbidden(s.t),
        Err(e) => {
            let errors = worded(s.t, &e);
            render(&state, &s, Some(campus), Some((rounds, second_check)), errors, false).await
        }
    }
}
