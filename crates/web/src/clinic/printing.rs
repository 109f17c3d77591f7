//! Printing: the prescription slip (处方笺), the visit summary and the lab report,
//! as print-ready pages of what the record holds.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use lianyi_security::{Caller, Perm};
use serde_json::Value;

use super::encounter::prescriptions;
use super::reads::*;
use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{not_found, page};
use crate::ui::session::Signed;

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
struct PrintPage {
    t: Tr,
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
    prescriptions: Vec<(String, String)>,
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
                super::registration::age(person.birth_date.as_deref().unwrap_or_default(), today)
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
    Signed { info, t, .. }: Signed,
    Path((id, what)): Path<(String, String)>,
) -> Response {
    if !matches!(what.as_str(), "prescription" | "summary") {
        return not_found(t);
    }
    let caller = &info.caller;
    let Some(e) = read(&state, caller, "Encounter", &id).await else { return not_found(t) };
    let lang_code = t.code();
    let today = state.scheduling.today();
    let patient = e["subject"]["reference"].as_str().unwrap_or_default().trim_start_matches("Patient/").to_string();
    let (patient_name, gender_key, age, mrns) = print_patient(&state, caller, &patient, &today).await;
    let dept_id =
        e["serviceProvider"]["reference"].as_str().unwrap_or_default().trim_start_matches("Organization/").to_string();
    let dept = read(&state, caller, "Organization", &dept_id).await;
    let department = dept.as_ref().map(|o| display_name(o, t)).unwrap_or_default();
    let hospital = match dept
        .as_ref()
        .and_then(|o| o["partOf"]["reference"].as_str())
        .map(|r| r.trim_start_matches("Organization/").to_string())
    {
        Some(campus) => state.fhir.campus_name(&campus, lang_code).await.unwrap_or(campus),
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
    let diagnoses = state
        .workspace
        .diagnoses(caller, &id)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|d| format!("{} {}", d.code, t.pick(d.title_zh.as_deref().unwrap_or(&d.title_en), &d.title_en)))
        .collect();
    let prescriptions = prescriptions(&state, caller, &id, lang_code).await;
    let orders = state
        .ordering
        .requested(caller, &id)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let name = lianyi_clinical::orders::item(&r.code).map_or(r.code.clone(), |i| i.name(lang_code).to_string());
            format!("{name} ({})", r.placer)
        })
        .collect();
    let started = e["period"]["start"].as_str().unwrap_or_default();
    page(
        PrintPage {
            t,
            what,
            hospital,
            department,
            patient_name,
            gender_key,
            age,
            mrns,
            date: started.get(..10).unwrap_or_default().to_string(),
            doctor: info.user.display_name.clone(),
            allergies,
            diagnoses,
            prescriptions,
            orders,
            results: Vec::new(),
            report_title: String::new(),
        }
        .render(),
    )
}

/// `/reports/lab/{id}`: a DiagnosticReport with its results (values, units, reference
/// ranges, abnormal flags) as a print-ready lab report.
async fn lab_report(State(state): State<AppState>, Signed { info, t, .. }: Signed, Path(id): Path<String>) -> Response {
    let caller = &info.caller;
    let Some(r) = read(&state, caller, "DiagnosticReport", &id).await else { return not_found(t) };
    let today = state.scheduling.today();
    let patient = r["subject"]["reference"].as_str().unwrap_or_default().trim_start_matches("Patient/").to_string();
    let (patient_name, gender_key, age, mrns) = print_patient(&state, caller, &patient, &today).await;
    let mut results = Vec::new();
    for reference in r["result"].as_array().cloned().unwrap_or_default() {
        let Some(obs_id) = reference["reference"].as_str().and_then(|x| x.strip_prefix("Observation/")) else {
            continue;
        };
        let Some(o) = read(&state, caller, "Observation", obs_id).await else { continue };
        let q = &o["valueQuantity"];
        let range = &o["referenceRange"][0];
        let bound = |b: &Value| b["value"].as_f64().map(|v| v.to_string()).unwrap_or_default();
        results.push(ResultLine {
            name: o["code"]["coding"][0]["display"]
                .as_str()
                .or_else(|| o["code"]["text"].as_str())
                .unwrap_or_default()
                .to_string(),
            value: lianyi_clinical::results::value_text(&o),
            unit: q["unit"].as_str().unwrap_or_default().to_string(),
            range: if range.is_object() {
                format!("{}–{}", bound(&range["low"]), bound(&range["high"]))
            } else {
                String::new()
            },
            flag: o["interpretation"][0]["coding"][0]["code"].as_str().unwrap_or_default().to_string(),
        });
    }
    page(
        PrintPage {
            t,
            what: "lab".into(),
            hospital: String::new(),
            department: String::new(),
            patient_name,
            gender_key,
            age,
            mrns,
            date: r["effectiveDateTime"]
                .as_str()
                .or_else(|| r["issued"].as_str())
                .unwrap_or_default()
                .get(..10)
                .unwrap_or_default()
                .to_string(),
            doctor: String::new(),
            allergies: Vec::new(),
            diagnoses: Vec::new(),
            prescriptions: Vec::new(),
            orders: Vec::new(),
            results,
            report_title: r["code"]["coding"][0]["display"]
                .as_str()
                .or_else(|| r["code"]["text"].as_str())
                .unwrap_or_default()
                .to_string(),
        }
        .render(),
    )
}

/// The patient's lab reports the caller may read, newest first: (id, title, date).
pub(super) async fn lab_reports(state: &AppState, caller: &Caller, patient: &str) -> Vec<(String, String, String)> {
    if !caller.access().allows("DiagnosticReport", Perm::Search) {
        return Vec::new();
    }
    let mut out: Vec<(String, String, String)> = search(
        state,
        caller,
        "DiagnosticReport",
        &[("patient", format!("Patient/{patient}")), ("_count", "20".into())],
    )
    .await
    .iter()
    .map(|r| {
        (
            r["id"].as_str().unwrap_or_default().to_string(),
            r["code"]["coding"][0]["display"]
                .as_str()
                .or_else(|| r["code"]["text"].as_str())
                .unwrap_or_default()
                .to_string(),
            r["effectiveDateTime"].as_str().unwrap_or_default().get(..10).unwrap_or_default().to_string(),
        )
    })
    .collect();
    out.sort_by(|a, b| b.2.cmp(&a.2));
    out
}
