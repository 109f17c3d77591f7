//! Printing: the prescription slip (处方笺), the visit summary and the lab report,
//! as print-ready pages of what the record holds.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use lianyi_security::{Caller, Perm};

use super::encounter::{RxLine, prescriptions};
use super::reads::*;
use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{not_found, page};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, campus_name, shell};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/encounters/{id}/print/{what}", get(print_page)).route("/reports/lab/{id}", get(lab_report))
}

/// One result line of a printed lab report.
struct ResultLine {
    name: String,
    value: String,
    unit: String,
    range: String,
    flag: String,
}

#[derive(Template)]
#[template(path = "clinic/print.html")]
struct PrintPage<'a> {
    t: Tr,
    shell: &'a Shell,
    /// The visit, for the way back (empty for a lab report).
    encounter: String,
    /// `prescription`, `summary` or `lab`.
    what: String,
    hospital: String,
    department: String,
    patient_name: String,
    gender_key: String,
    age: String,
    mrns: String,
    date: String,
    doctor: String,
    allergies: Vec<String>,
    diagnoses: Vec<String>,
    prescriptions: Vec<RxLine>,
    notes: Vec<lianyi_clinical::record::Note>,
    orders: Vec<String>,
    results: Vec<ResultLine>,
    report_title: String,
}

/// The printed header's patient facts.
async fn print_patient(
    state: &AppState,
    caller: &Caller,
    patient: &str,
    today: &str,
) -> (String, String, String, String) {
    match read(state, caller, "Patient", patient).await {
        Some(p) => {
            let person = lianyi_clinical::registry::person_of(&p);
            let mrns =
                lianyi_clinical::registry::mrns_of(&p).iter().map(|m| m.number.as_str()).collect::<Vec<_>>().join(", ");
            let gender = format!("gender-{}", person.gender.as_deref().unwrap_or("unknown"));
            (
                person.name,
                gender,
                lianyi_clinical::registry::age(person.birth_date.as_deref().unwrap_or_default(), today)
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                mrns,
            )
        }
        None => Default::default(),
    }
}

/// `/encounters/{id}/print/prescription` (处方笺) and `/print/summary` (visit summary):
/// print-ready pages of what the visit recorded.
async fn print_page(
    State(state): State<AppState>,
    Signed { info, t, headers }: Signed,
    Path((id, what)): Path<(String, String)>,
) -> Response {
    if !matches!(what.as_str(), "prescription" | "summary") {
        return not_found(t);
    }
    let shell = shell(&state, &info, t, &headers).await;
    let caller = &info.caller;
    let Ok(e) = state.workspace.view(caller, &id).await else { return not_found(t) };
    let today = state.scheduling.today();
    let patient = e.patient.clone();
    let (patient_name, gender_key, age, mrns) = print_patient(&state, caller, &patient, &today).await;
    let department = t.pick(&e.department_names.zh, &e.department_names.en).clone();
    let hospital = match &e.campus {
        Some(campus) => campus_name(&state, campus, t).await,
        None => String::new(),
    };
    let allergies = state
        .workspace
        .allergies(caller, &patient)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|a| a.substance)
        .collect();
    let diagnoses =
        diagnoses(&state, caller, &id, t).await.into_iter().map(|(code, title)| format!("{code} {title}")).collect();
    let prescriptions = prescriptions(&state, caller, &id, t).await;
    let notes = if what == "summary" { state.record.notes(caller, &id).await } else { Vec::new() };
    let orders = requested(&state, caller, &id, t)
        .await
        .into_iter()
        .map(|(placer, name, _)| format!("{name} ({placer})"))
        .collect();
    page(
        PrintPage {
            t,
            shell: &shell,
            encounter: id.clone(),
            what,
            hospital,
            department,
            patient_name,
            gender_key,
            age,
            mrns,
            date: e.started.get(..10).unwrap_or_default().to_string(),
            doctor: info.user.display_name.clone(),
            allergies,
            diagnoses,
            prescriptions,
            notes,
            orders,
            results: Vec::new(),
            report_title: String::new(),
        }
        .render(),
    )
}

/// `/reports/lab/{id}`: a DiagnosticReport with its results (values, units, reference
/// ranges, abnormal flags) as a print-ready lab report.
async fn lab_report(
    State(state): State<AppState>,
    Signed { info, t, headers }: Signed,
    Path(id): Path<String>,
) -> Response {
    let caller = &info.caller;
    let Ok(r) = state.results.report(caller, &id).await else { return not_found(t) };
    let shell = shell(&state, &info, t, &headers).await;
    let today = state.scheduling.today();
    let (patient_name, gender_key, age, mrns) = print_patient(&state, caller, &r.patient, &today).await;
    let results = r
        .lines
        .into_iter()
        .map(|l| ResultLine {
            name: t.pick(l.names.zh, l.names.en),
            value: l.value,
            unit: l.unit,
            range: l.range,
            flag: l.flag,
        })
        .collect();
    page(
        PrintPage {
            t,
            shell: &shell,
            encounter: String::new(),
            what: "lab".into(),
            hospital: String::new(),
            department: t.pick(r.department.zh, r.department.en),
            patient_name,
            gender_key,
            age,
            mrns,
            date: r.date,
            doctor: String::new(),
            allergies: Vec::new(),
            diagnoses: Vec::new(),
            prescriptions: Vec::new(),
            notes: Vec::new(),
            orders: Vec::new(),
            results,
            report_title: r.title,
        }
        .render(),
    )
}

/// The patient's lab reports the caller may read, newest first: (id, title, date).
pub(super) async fn lab_reports(state: &AppState, caller: &Caller, patient: &str) -> Vec<(String, String, String)> {
    if !caller.access().allows("DiagnosticReport", Perm::Search) {
        return Vec::new();
    }
    match state.results.reports_of(caller, patient).await {
        Ok(list) => list.into_iter().map(|r| (r.id, r.title, r.date)).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "lab reports of a patient");
            Vec::new()
        }
    }
}
