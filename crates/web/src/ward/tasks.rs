//! A nurse's task list (`/ward/tasks?ward=…&date=…`): every dose due on the ward that
//! day, by round and bed, with what became of it — and the record of each (`POST
//! /ward/tasks`): the wristband and the drug scanned or typed, given, refused or held.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use lianyi_inpatient::administration::{DoseForm, DoseState};
use lianyi_inpatient::stays::{Inpatient, InpatientError};
use serde::Deserialize;

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, form_value, local_time, page, see_other};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, shell};

use super::worded;
use crate::ui::render::urlencode;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/ward/tasks", get(tasks_page).post(record))
        .route("/ward/round", axum::routing::post(send_round))
}

#[derive(Deserialize, Default)]
struct Shown {
    ward: Option<String>,
    date: Option<String>,
    done: Option<String>,
}

struct Row {
    time: String,
    due_ms: i64,
    stay: String,
    bed: String,
    patient: String,
    what: String,
    order: String,
    state: String,
    state_code: &'static str,
    recorded: String,
    open: bool,
}

#[derive(Template)]
#[template(path = "ward/tasks.html")]
struct TasksPage<'a> {
    t: Tr,
    shell: &'a Shell,
    wards: Vec<(String, String)>,
    ward: String,
    date: String,
    rows: Vec<Row>,
    may_record: bool,
    /// The day's round as sent to the pharmacy: (drug, units, waiting or dispensed).
    round: Vec<(String, String, String)>,
    errors: Vec<String>,
    done: Option<String>,
}

async fn render(state: &AppState, s: &Signed, q: Shown, errors: Vec<String>) -> Response {
    let t = s.t;
    let caller = &s.info.caller;
    let mut errors = errors;
    let (wards, ward) = super::ward_choice(state, caller, t, q.ward).await;
    let now = state.inpatient.now_ms();
    let date = q
        .date
        .filter(|d| lianyi_clinical::scheduling::local_midnight(d).is_some())
        .unwrap_or_else(|| lianyi_clinical::scheduling::local_date(now));
    let day_ms = lianyi_clinical::scheduling::local_midnight(&date).unwrap_or(now);
    let mut rows = Vec::new();
    let mut round = Vec::new();
    if let Some(w) = &ward
        && Inpatient::may_keep_ward(caller)
    {
        match state.inpatient.round(caller, w, day_ms).await {
            Ok(lines) => {
                round = lines
                    .into_iter()
                    .map(|l| {
                        let state = if l.status == "completed" { "dispensed" } else { "waiting" };
                        (l.what, format!("{} {}", l.units, t.named("ward-unit", &l.unit)), t.named("ward-round", state))
                    })
                    .collect();
            }
            Err(InpatientError::Forbidden(_)) => {}
            Err(e) => errors.extend(worded(t, &e)),
        }
    }
    if let Some(w) = &ward {
        match state.inpatient.doses(caller, w, day_ms).await {
            Ok(doses) => {
                for d in doses {
                    let open = matches!(d.state, DoseState::Due | DoseState::Overdue);
                    rows.push(Row {
                        time: local_time(d.due_ms).get(11..16).unwrap_or_default().to_string(),
                        due_ms: d.due_ms,
                        stay: d.stay,
                        bed: super::bed_number(&d.bed),
                        patient: t.pick(&d.patient.names.zh, &d.patient.names.en).clone(),
                        what: format!(
                            "{} {} {} {}",
                            d.order.what,
                            d.order.dose,
                            d.order.route,
                            t.named("ward-freq", &d.order.frequency)
                        ),
                        order: d.order.reference,
                        state: t.named("ward-dose", d.state.code()),
                        state_code: d.state.code(),
                        recorded: d.recorded.map(|(by, at)| format!("{by} {}", local_time(at))).unwrap_or_default(),
                        open,
                    });
                }
            }
            Err(InpatientError::Forbidden(_)) => return forbidden(t),
            Err(e) => errors.extend(worded(t, &e)),
        }
    }
    let shell = shell(state, &s.info, t, &s.headers).await;
    page(
        TasksPage {
            t,
            shell: &shell,
            wards,
            ward: ward.unwrap_or_default(),
            date,
            rows,
            may_record: Inpatient::may_keep_ward(caller),
            round,
            errors,
            done: q.done.and_then(|d| t.try_get(&format!("ward-done-{d}"))).map(str::to_string),
        }
        .render(),
    )
}

async fn tasks_page(State(state): State<AppState>, s: Signed, Query(q): Query<Shown>) -> Response {
    let caller = &s.info.caller;
    if !(Inpatient::may_keep_ward(caller) || Inpatient::may_order(caller)) {
        return forbidden(s.t);
    }
    render(&state, &s, q, Vec::new()).await
}

async fn record(
    State(state): State<AppState>,
    s: Signed,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !Inpatient::may_keep_ward(&s.info.caller) || !s.csrf_ok(&form_value(&form, "csrf")) {
        return forbidden(s.t);
    }
    let v = |k: &str| form_value(&form, k);
    let f = DoseForm {
        stay: v("stay"),
        order: v("order"),
        due_ms: v("due").parse().unwrap_or_default(),
        patient_code: v("patient_code"),
        drug_code: v("drug_code"),
        outcome: v("outcome"),
        reason: v("reason"),
    };
    let (ward, date) = (v("ward"), v("date"));
    match state.inpatient.record_dose(&s.info.caller, &f).await {
        Ok(_) => see_other(&format!(
            "/ward/tasks?ward={}&date={}&done=dose-{}",
            urlencode(&ward),
            urlencode(&date),
            f.outcome
        )),
        Err(InpatientError::Forbidden(_)) => forbidden(s.t),
        Err(e) => {
            let errors = worded(s.t, &e);
            render(&state, &s, Shown { ward: Some(ward), date: Some(date), done: None }, errors).await
        }
    }
}

/// Sends the day's round to the inpatient pharmacy (病区摆药).
async fn send_round(
    State(state): State<AppState>,
    s: Signed,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !Inpatient::may_keep_ward(&s.info.caller) || !s.csrf_ok(&form_value(&form, "csrf")) {
        return forbidden(s.t);
    }
    let (ward, date) = (form_value(&form, "ward"), form_value(&form, "date"));
    let Some(day_ms) = lianyi_clinical::scheduling::local_midnight(&date) else {
        let errors = vec![format!("{}: {}", s.t.get("ward-field-date"), s.t.get("ward-rule-date"))];
        return render(&state, &s, Shown { ward: Some(ward), date: None, done: None }, errors).await;
    };
    match state.inpatient.send_round(&s.info.caller, &ward, day_ms).await {
        Ok(_) => see_other(&format!("/ward/tasks?ward={}&date={}&done=round", urlencode(&ward), urlencode(&date))),
        Err(InpatientError::Forbidden(_)) => forbidden(s.t),
        Err(e) => {
            let errors = worded(s.t, &e);
            render(&state, &s, Shown { ward: Some(ward), date: Some(date), done: None }, errors).await
        }
    }
}
