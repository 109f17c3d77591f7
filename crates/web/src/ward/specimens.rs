//! Specimen collection on a ward (`/ward/specimens?ward=…`, 标本采集): the lab orders in
//! force not collected yet, each with its bedside form — the wristband scanned or
//! typed, the specimen's type — and the number to label the tube with once collected.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use lianyi_inpatient::specimens::TYPES;
use lianyi_inpatient::stays::{Inpatient, InpatientError};
use serde::Deserialize;

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, form_value, page, see_other, urlencode};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, shell};

use super::worded;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/ward/specimens", get(specimens_page).post(collect))
}

#[derive(Deserialize, Default)]
struct Shown {
    ward: Option<String>,
    number: Option<String>,
}

struct Row {
    stay: String,
    order: String,
    bed: String,
    patient: String,
    what: String,
}

#[derive(Template)]
#[template(path = "ward/specimens.html")]
struct SpecimensPage<'a> {
    t: Tr,
    shell: &'a Shell,
    wards: Vec<(String, String)>,
    ward: String,
    rows: Vec<Row>,
    types: Vec<(&'static str, String)>,
    number: Option<String>,
    errors: Vec<String>,
}

async fn render(state: &AppState, s: &Signed, q: Shown, errors: Vec<String>) -> Response {
    let (t, caller) = (s.t, &s.info.caller);
    let mut errors = errors;
    let (wards, ward) = super::ward_choice(state, caller, t, q.ward).await;
    let mut rows = Vec::new();
    if let Some(w) = &ward {
        match state.inpatient.to_collect(caller, w).await {
            Ok(found) => {
                rows = found
                    .into_iter()
                    .map(|(stay, order, what, patient, bed)| Row {
                        stay,
                        order,
                        bed: super::bed_number(&bed),
                        patient: t.pick(&patient.names.zh, &patient.names.en).clone(),
                        what,
                    })
                    .collect();
            }
            Err(InpatientError::Forbidden(_)) => return forbidden(t),
            Err(e) => errors.extend(worded(t, &e)),
        }
    }
    let shell = shell(state, &s.info, t, &s.headers).await;
    page(
        SpecimensPage {
            t,
            shell: &shell,
            wards,
            ward: ward.unwrap_or_default(),
            rows,
            types: TYPES.iter().map(|(code, _, zh, en)| (*code, t.pick(zh, en).to_string())).collect(),
            number: q.number.filter(|n| n.len() < 20),
            errors,
        }
        .render(),
    )
}

async fn specimens_page(State(state): State<AppState>, s: Signed, Query(q): Query<Shown>) -> Response {
    if !Inpatient::may_keep_ward(&s.info.caller) {
        return forbidden(s.t);
    }
    render(&state, &s, q, Vec::new()).await
}

async fn collect(
    State(state): State<AppState>,
    s: Signed,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !Inpatient::may_keep_ward(&s.info.caller) || !s.csrf_ok(&form_value(&form, "csrf")) {
        return forbidden(s.t);
    }
    let v = |k: &str| form_value(&form, k);
    let ward = v("ward");
    match state
        .inpatient
        .collect_specimen(&s.info.caller, &v("stay"), &v("order"), &v("specimen"), &v("patient_code"))
        .await
    {
        Ok(number) => see_other(&format!("/ward/specimens?ward={}&number={}", urlencode(&ward), urlencode(&number))),
        Err(InpatientError::Forbidden(_)) => forbidden(s.t),
        Err(e) => {
            let errors = worded(s.t, &e);
            render(&state, &s, Shown { ward: Some(ward), number: None }, errors).await
        }
    }
}
