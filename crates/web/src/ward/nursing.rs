//! Nursing records of a stay (`/ward/stays/{id}/nursing`): fall and pressure-injury
//! risk by the Morse and Braden scales (a high risk flags the patient on the board),
//! nursing notes, intake and output with today's balance; and the ward's shift
//! handover list (`/ward/handover?ward=…`), printable.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use lianyi_inpatient::nursing::{Scale, balance};
use lianyi_inpatient::stays::{Alert, Inpatient, InpatientError};
use serde::Deserialize;

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, form_value, local_time, not_found, page, see_other, urlencode};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, shell};

use super::worded;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/ward/stays/{id}/nursing", get(nursing_page).post(record_entry))
        .route("/ward/stays/{id}/assess", post(assess))
        .route("/ward/handover", get(handover_page))
}

#[derive(Deserialize, Default)]
struct Shown {
    done: Option<String>,
}

/// A scale's form: (code, title, items: (code, label, options: (score, label))).
type ScaleForm = (&'static str, String, Vec<(&'static str, String, Vec<(i64, String)>)>);

fn scale_forms(t: Tr) -> Vec<ScaleForm> {
    Scale::ALL
        .iter()
        .map(|s| {
            let items = s
                .items()
                .iter()
                .map(|(item, scores)| {
                    let options = scores
                        .iter()
                        .map(|v| (*v, format!("{v} · {}", t.get(&format!("ward-opt-{}-{item}-{v}", s.code())))))
                        .collect();
                    (*item, t.get(&format!("ward-item-{}-{item}", s.code())).to_string(), options)
                })
                .collect();
            (s.code(), t.get(&format!("ward-scale-{}", s.code())).to_string(), items)
        })
        .collect()
}

#[derive(Template)]
#[template(path = "ward/nursing.html")]
struct NursingPage<'a> {
    t: Tr,
    shell: &'a Shell,
    stay: String,
    name: String,
    number: String,
    /// (when, scale, total, risk code, risk words, by).
    assessments: Vec<(String, String, i64, &'static str, String, String)>,
    /// (when, kind words, text, mL, by).
    entries: Vec<(String, String, String, String, String)>,
    /// Today's intake, output, balance.
    today: (i64, i64, i64),
    scales: Vec<ScaleForm>,
    may_record: bool,
    errors: Vec<String>,
    done: Option<String>,
}

async fn render(state: &AppState, s: &Signed, stay: &str, done: Option<String>, errors: Vec<String>) -> Response {
    let (t, caller) = (s.t, &s.info.caller);
    let (card, _, _) = match state.inpatient.stay_card(caller, stay).await {
        Ok(c) => c,
        Err(InpatientError::Forbidden(_)) => return forbidden(t),
        Err(_) => return not_found(t),
    };
    let (assessments, entries) = match state.inpatient.nursing(caller, stay).await {
        Ok(v) => v,
        Err(InpatientError::Forbidden(_)) => return forbidden(t),
        Err(_) => return not_found(t),
    };
    let today = balance(&entries, state.inpatient.now_ms());
    let shell = shell(state, &s.info, t, &s.headers).await;
    page(
        NursingPage {
            t,
            shell: &shell,
            stay: stay.to_string(),
            name: t.pick(&card.patient.names.zh, &card.patient.names.en).clone(),
            number: card.number.clone(),
            assessments: assessments
                .iter()
                .map(|a| {
                    (
                        local_time(a.at),
                        t.get(&format!("ward-scale-{}", a.scale.code())).to_string(),
                        a.total,
                        a.risk.code(),
                        t.named("ward-risk", a.risk.code()),
                        a.by.clone(),
                    )
                })
                .collect(),
            entries: entries
                .iter()
                .map(|e| {
                    (
                        local_time(e.at),
                        t.named("ward-entry", &e.kind),
                        e.text.clone(),
                        e.ml.map(|v| v.to_string()).unwrap_or_default(),
                        e.by.clone(),
                    )
                })
                .collect(),
            today,
            scales: scale_forms(t),
            may_record: Inpatient::may_keep_ward(caller),
            errors,
            done: done.and_then(|d| t.try_get(&format!("ward-done-{d}"))).map(str::to_string),
        }
        .render(),
    )
}

async fn nursing_page(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Query(q): Query<Shown>,
) -> Response {
    if !Inpatient::may_see_boards(&s.info.caller) {
        return forbidden(s.t);
    }
    render(&state, &s, &id, q.done, Vec::new()).await
}

async fn assess(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !Inpatient::may_keep_ward(&s.info.caller) || !s.csrf_ok(&form_value(&form, "csrf")) {
        return forbidden(s.t);
    }
    match state.inpatient.record_assessment(&s.info.caller, &id, &form_value(&form, "scale"), &form).await {
        Ok(_) => see_other(&format!("/ward/stays/{}/nursing?done=assessed", urlencode(&id))),
        Err(InpatientError::Forbidden(_)) => forbidden(s.t),
        Err(e) => {
            let errors = worded(s.t, &e);
            render(&state, &s, &id, None, errors).await
        }
    }
}

async fn record_entry(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !Inpatient::may_keep_ward(&s.info.caller) || !s.csrf_ok(&form_value(&form, "csrf")) {
        return forbidden(s.t);
    }
    let v = |k: &str| form_value(&form, k);
    match state.inpatient.record_entry(&s.info.caller, &id, &v("kind"), &v("text"), &v("ml")).await {
        Ok(()) => see_other(&format!("/ward/stays/{}/nursing?done=entry", urlencode(&id))),
        Err(InpatientError::Forbidden(_)) => forbidden(s.t),
        Err(e) => {
            let errors = worded(s.t, &e);
            render(&state, &s, &id, None, errors).await
        }
    }
}

#[derive(Deserialize, Default)]
struct Ward {
    ward: Option<String>,
}

struct Line {
    bed: String,
    stay: String,
    patient: String,
    number: String,
    day: i64,
    nursing: String,
    alerts: Vec<String>,
    vitals: String,
    doses: Vec<String>,
    risks: Vec<(String, bool)>,
    note: String,
    io: String,
}

#[derive(Template)]
#[template(path = "ward/handover.html")]
struct HandoverPage<'a> {
    t: Tr,
    shell: &'a Shell,
    wards: Vec<(String, String)>,
    ward: String,
    when: String,
    lines: Vec<Line>,
    errors: Vec<String>,
}

async fn handover_page(State(state): State<AppState>, s: Signed, Query(q): Query<Ward>) -> Response {
    let (t, caller) = (s.t, &s.info.caller);
    if !Inpatient::may_keep_ward(caller) {
        return forbidden(t);
    }
    let (wards, ward) = super::ward_choice(&state, caller, t, q.ward).await;
    let mut errors = Vec::new();
    let mut lines = Vec::new();
    if let Some(w) = &ward {
        match state.inpatient.handover(caller, w).await {
            Ok(found) => {
                for h in found {
                    let number = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_else(|| "–".into());
                    let vitals = h.vitals.as_ref().map_or_else(String::new, |r| {
                        format!(
                            "T {} · P {} · R {} · BP {} ({})",
                            number(r.temperature),
                            number(r.pulse),
                            number(r.respiration),
                            r.pressure.map_or_else(|| "–".into(), |(a, b)| format!("{a}/{b}")),
                            local_time(r.at).get(11..16).unwrap_or_default()
                        )
                    });
                    lines.push(Line {
                        bed: super::bed_number(&h.bed),
                        stay: h.card.id.clone(),
                        patient: t.pick(&h.card.patient.names.zh, &h.card.patient.names.en).clone(),
                        number: h.card.number.clone(),
                        day: h.card.day,
                        nursing: h.card.nursing.map(|n| t.named("ward-nursing", n.code())).unwrap_or_default(),
                        alerts: h
                            .card
                            .alerts
                            .iter()
                            .map(|a| match a {
                                Alert::Allergy { substance, .. } => {
                                    t.get("ward-alert-allergy").replace("{what}", substance)
                                }
                                Alert::Flag(text) => text.clone(),
                            })
                            .collect(),
                        vitals,
                        doses: h
                            .doses
                            .iter()
                            .map(|(what, state)| format!("{what} · {}", t.named("ward-dose", state)))
                            .collect(),
                        risks: h
                            .risks
                            .iter()
                            .map(|(scale, total, risk)| {
                                (
                                    format!(
                                        "{} {total} · {}",
                                        t.get(&format!("ward-scale-{}", scale.code())),
                                        t.named("ward-risk", risk.code())
                                    ),
                                    risk.code() == "high",
                                )
                            })
                            .collect(),
                        note: h.note.map(|n| format!("{} {}", local_time(n.at), n.text)).unwrap_or_default(),
                        io: h.io.map(|(i, o, b)| format!("{i} / {o} / {b} mL")).unwrap_or_default(),
                    });
                }
            }
            Err(InpatientError::Forbidden(_)) => return forbidden(t),
            Err(e) => errors.extend(worded(t, &e)),
        }
    }
    let shell = shell(&state, &s.info, t, &s.headers).await;
    page(
        HandoverPage {
            t,
            shell: &shell,
            wards,
            ward: ward.unwrap_or_default(),
            when: local_time(state.inpatient.now_ms()),
            lines,
            errors,
        }
        .render(),
    )
}
