//! The encounter workspace: diagnoses with ICD-10 search, allergies, prescriptions
//! with their safety review, laboratory and imaging orders, and notes. The rules
//! live in [`lianyi_clinical`] (encounter, prescribing, orders, record).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use lianyi_clinical::record::Event;
use lianyi_clinical::results::Latest;
use lianyi_security::{Caller, Perm};
use serde::Deserialize;

use super::reads::*;
use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, not_found, page, see_other};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, campus_name, shell, staff_may};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/encounters/{id}", get(encounter_page))
        .route("/encounters/{id}/icd", get(icd_fragment))
        .route("/encounters/{id}/diagnoses", post(add_diagnosis))
        .route("/encounters/{id}/allergies", post(add_allergy))
        .route("/encounters/{id}/prescriptions", post(prescribe))
        .route("/encounters/{id}/orders", post(add_order))
        .route("/encounters/{id}/notes", post(add_note))
        .route("/encounters/{id}/finish", post(finish))
}

/// A diagnosis or search result as the workspace shows it.
struct CodeRow {
    code: String,
    title: String,
}

#[derive(Template)]
#[template(path = "clinic/encounter.html")]
struct EncounterPage<'a> {
    t: Tr,
    shell: &'a Shell,
    id: String,
    patient_id: String,
    patient_name: String,
    /// Locale key of the patient's sex, their age in years and MRNs.
    gender_key: String,
    age: String,
    mrns: Vec<String>,
    status: String,
    department: String,
    /// The visit's campus.
    campus: String,
    started: String,
    queue_number: String,
    allergies: Vec<lianyi_clinical::encounter::Allergy>,
    diagnoses: Vec<CodeRow>,
    icd_query: String,
    icd_results: Vec<CodeRow>,
    may_diagnose: bool,
    may_record_allergy: bool,
    done: Option<&'static str>,
    error: Option<&'static str>,
    may_prescribe: bool,
    prescriptions: Vec<RxLine>,
    /// (code, label) of the catalogue.
    drugs: Vec<(String, String)>,
    review: Option<Review>,
    /// The prescription form's values: as typed after a review or an error, else empty.
    rx: PrescriptionForm,
    may_order: bool,
    /// Whether the user may end the visit (update Encounters).
    may_finish: bool,
    /// (placer number, name, priority key) of the visit's requests.
    /// (placer number, item, priority key, the study made for it).
    orders: Vec<(String, String, String, Option<String>)>,
    /// (code, label) of the order catalogue.
    order_items: Vec<(String, String)>,
    may_write_notes: bool,
    notes: Vec<lianyi_clinical::record::Note>,
    note: lianyi_clinical::record::NoteDraft,
    results: Vec<Latest>,
    timeline: Vec<Event>,
}

#[derive(Deserialize, Default)]
struct EncounterQuery {
    icd: Option<String>,
    done: Option<String>,
    error: Option<String>,
    /// A note sent back to its author with an error (never from the URL).
    #[serde(skip)]
    note: Option<lianyi_clinical::record::NoteDraft>,
}

async fn encounter_page(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Query(q): Query<EncounterQuery>,
) -> Response {
    let (_info, _headers) = (&s.info, &s.headers);
    render_encounter(&state, &s, id, q, None).await
}

/// The CSRF token a fragment's forms carry.
struct FragmentShell {
    csrf: String,
}

#[derive(Template)]
#[template(path = "clinic/icd_results.html")]
struct IcdFragment {
    t: Tr,
    shell: FragmentShell,
    id: String,
    icd_query: String,
    icd_results: Vec<CodeRow>,
}

fn icd_rows(query: &str, t: Tr) -> Vec<CodeRow> {
    lianyi_clinical::icd10::search(query, 20)
        .into_iter()
        .map(|c| CodeRow { code: c.code.to_string(), title: t.pick(c.zh.unwrap_or(c.en), c.en).to_string() })
        .collect()
}

/// `GET /encounters/{id}/icd?icd=…`: the ICD-10 matches alone, swapped into the
/// workspace as the doctor types (htmx); the search form does the same without it.
async fn icd_fragment(
    Signed { info, t, .. }: Signed,
    Path(id): Path<String>,
    Query(q): Query<EncounterQuery>,
) -> Response {
    if !staff_may(&info.caller, "Condition", Perm::Create) {
        return forbidden(t);
    }
    let icd_query = q.icd.unwrap_or_default();
    let icd_results = icd_rows(&icd_query, t);
    page(IcdFragment { t, shell: FragmentShell { csrf: info.csrf.clone() }, id, icd_query, icd_results }.render())
}

/// The review of a prescription the doctor is about to sign, shown on the page.
struct Review {
    form: PrescriptionForm,
    /// A field the order got wrong: (field, locale key of the rule); no findings then.
    invalid: Option<(&'static str, &'static str)>,
    /// (blocking, text)
    findings: Vec<(bool, String)>,
    blocked: bool,
    reason_missing: bool,
}

async fn render_encounter(
    state: &AppState,
    s: &Signed,
    id: String,
    q: EncounterQuery,
    review: Option<Review>,
) -> Response {
    let (info, headers, t) = (&s.info, &s.headers, s.t);
    let (state, headers) = (state.clone(), headers.clone());
    let caller = &info.caller;
    let Ok(e) = state.workspace.view(caller, &id).await else { return not_found(t) };
    let shell = shell(&state, info, t, &headers).await;
    let patient_id = e.patient.clone();
    // The whole record of a patient of this campus, whichever campus made it (the
    // same read gives the banner's name).
    let (care, patient) = match state.record.open(caller, &patient_id).await {
        Ok((care, p)) => (care, p),
        Err(_) => (caller.clone(), serde_json::Value::Null),
    };
    let person = lianyi_clinical::registry::person_of(&patient);
    let gender_key = format!("gender-{}", person.gender.as_deref().unwrap_or("unknown"));
    let age =
        lianyi_clinical::registry::age(person.birth_date.as_deref().unwrap_or_default(), &state.scheduling.today())
            .map(|a| t.fmt("patient-age", &a.to_string()))
            .unwrap_or_default();
    let mrns = lianyi_clinical::registry::mrns_of(&patient).into_iter().map(|m| m.number).collect();
    let patient_name = person.name;
    let department = t.pick(&e.department_names.zh, &e.department_names.en).clone();
    // The campus of the visit, for the banner.
    let campus = match &e.campus {
        Some(id) => campus_name(&state, id, t).await,
        None => String::new(),
    };
    let (started, queue_number, status) = (e.started, e.queue_number, e.status);
    let allergies = state.workspace.allergies(&care, &patient_id).await.unwrap_or_default();
    let (results, timeline) = record_rows(&state, &care, &patient_id, t).await;
    let notes = state.record.notes(caller, &id).await;
    let may_write_notes = staff_may(caller, "Composition", Perm::Create);
    let diagnoses =
        diagnoses(&state, caller, &id, t).await.into_iter().map(|(code, title)| CodeRow { code, title }).collect();
    let icd_query = q.icd.unwrap_or_default();
    let icd_results = icd_rows(&icd_query, t);
    let may_diagnose = caller.access().allows("Condition", Perm::Create);
    let may_record_allergy = caller.access().allows("AllergyIntolerance", Perm::Create);
    let done = match q.done.as_deref() {
        Some("diagnosis") => Some("ws-done-diagnosis"),
        Some("allergy") => Some("ws-done-allergy"),
        Some("prescribed") => Some("rx-done"),
        Some("ordered") => Some("order-done"),
        Some("note") => Some("note-done"),
        _ => None,
    };
    let may_order = caller.access().allows("ServiceRequest", Perm::Create);
    let studies = super::reads::imaging_studies(&state, caller, &patient_id, t).await;
    let orders = requested(&state, caller, &id, t)
        .await
        .into_iter()
        .map(|(placer, name, priority)| {
            let study = studies.iter().find(|s| !placer.is_empty() && s.accession == placer).map(|s| s.uid.clone());
            (placer, name, format!("order-priority-{priority}"), study)
        })
        .collect();
    let order_items = lianyi_clinical::orders::catalogue()
        .iter()
        .map(|i| (i.code.to_string(), format!("{} ({})", t.pick(i.zh, i.en), i.loinc)))
        .collect();
    let may_prescribe = caller.access().allows("MedicationRequest", Perm::Create);
    let prescriptions = prescriptions(&state, caller, &id, t).await;
    let drugs = lianyi_clinical::prescribing::catalogue()
        .iter()
        .map(|d| (d.code.to_string(), format!("{} {} ({})", t.pick(d.zh, d.en), d.strength, t.named("unit", d.unit))))
        .collect();
    let error = q.error.as_deref().map(|e| match e {
        "icd10-unknown" => "ws-error-icd10",
        "substance" => "ws-error-substance",
        "dose" | "days" | "drug-unknown" => "rx-error-order",
        "order-unknown" | "priority" => "order-error",
        "note-empty" => "note-error-empty",
        "too-long" => "note-error-long",
        "not-in-progress" => "ws-error-not-in-progress",
        _ => "ws-error-failed",
    });
    page(
        EncounterPage {
            t,
            shell: &shell,
            id,
            patient_id,
            patient_name,
            gender_key,
            age,
            mrns,
            status,
            department,
            campus,
            started,
            queue_number,
            allergies,
            diagnoses,
            icd_query,
            icd_results,
            may_diagnose,
            may_record_allergy,
            done,
            error,
            may_prescribe,
            prescriptions,
            drugs,
            rx: review
                .as_ref()
                .map(|r| r.form.clone())
                .unwrap_or_else(|| PrescriptionForm { days: "7".into(), ..Default::default() }),
            review,
            may_order,
            may_finish: staff_may(caller, "Encounter", Perm::Update),
            orders,
            order_items,
            may_write_notes,
            notes,
            note: q.note.unwrap_or_default(),
            results,
            timeline,
        }
        .render(),
    )
}

/// One prescription in the page's language.
pub(super) struct RxLine {
    pub name: String,
    /// 处方编号, may be empty.
    pub number: String,
    /// Route, single dose, frequency and days (`口服，每次 500 mg，每日三次，共 5 天`).
    pub dosage: String,
    /// What to dispense (`15 粒`), may be empty.
    pub quantity: String,
}

/// The encounter's active prescriptions.
pub(super) async fn prescriptions(state: &AppState, caller: &Caller, encounter: &str, t: Tr) -> Vec<RxLine> {
    // Staff whose role does not read prescriptions (registrars, cashiers) see none.
    if !caller.access().allows("MedicationRequest", Perm::Search) {
        return Vec::new();
    }
    match state.prescribing.active_in(caller, encounter).await {
        Ok(list) => list.into_iter().map(|p| rx_line(p, t)).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "prescriptions of an encounter");
            Vec::new()
        }
    }
}

fn rx_line(p: lianyi_clinical::prescribing::Prescription, t: Tr) -> RxLine {
    let (dosage, quantity) = match &p.dose {
        Some(d) => (
            t.get("rx-dosage")
                .replace("{route}", &if d.route.is_empty() { String::new() } else { t.named("rx-route", &d.route) })
                .replace("{amount}", &d.amount)
                .replace("{unit}", &t.named("unit", &d.unit))
                .replace("{frequency}", &t.named("rx-freq", &d.frequency))
                .replace("{days}", &d.days.to_string())
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            d.quantity.as_ref().map(|(n, form)| format!("{n} {}", t.named("unit", form))).unwrap_or_default(),
        ),
        None => (p.dosage, String::new()),
    };
    RxLine { name: t.pick(p.names.zh, p.names.en), number: p.number, dosage, quantity }
}

#[derive(Deserialize)]
struct OrderForm {
    csrf: String,
    item: String,
    priority: String,
}

async fn add_order(
    State(state): State<AppState>,
    Signed { info, t, .. }: Signed,
    Path(id): Path<String>,
    Form(f): Form<OrderForm>,
) -> Response {
    if !lianyi_security::secrets::constant_time_eq(&info.csrf, &f.csrf) {
        return forbidden(t);
    }
    match state.ordering.order(&info.caller, &id, &f.item, &f.priority, &info.user.display_name).await {
        Ok(_) => see_other(&format!("/encounters/{id}?done=ordered")),
        Err(e) => workspace_error(&id, &e, t),
    }
}

#[derive(Deserialize)]
struct NoteForm {
    csrf: String,
    #[serde(default)]
    subjective: String,
    #[serde(default)]
    objective: String,
    #[serde(default)]
    assessment: String,
    #[serde(default)]
    plan: String,
    #[serde(default)]
    text: String,
}

/// `POST /encounters/{id}/notes`: a SOAP or free-text note; a refused note comes back
/// in the form with the rule it broke.
async fn add_note(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Form(f): Form<NoteForm>,
) -> Response {
    let (info, t, _headers) = (&s.info, s.t, &s.headers);
    if !lianyi_security::secrets::constant_time_eq(&info.csrf, &f.csrf) {
        return forbidden(t);
    }
    let draft = lianyi_clinical::record::NoteDraft {
        subjective: f.subjective,
        objective: f.objective,
        assessment: f.assessment,
        plan: f.plan,
        text: f.text,
    };
    match state.record.add_note(&info.caller, &id, &draft, &info.user.display_name).await {
        Ok(_) => see_other(&format!("/encounters/{id}?done=note")),
        Err(lianyi_clinical::registry::RegistryError::Invalid(errors)) => {
            let q = EncounterQuery {
                error: errors.first().map(|e| e.code.to_string()),
                note: Some(draft),
                ..EncounterQuery::default()
            };
            render_encounter(&state, &s, id, q, None).await
        }
        Err(e) => workspace_error(&id, &e, t),
    }
}

#[derive(Deserialize, Clone, Default)]
struct PrescriptionForm {
    csrf: String,
    drug: String,
    dose: String,
    frequency: String,
    days: String,
    /// Set by the second step, after the doctor has seen the findings.
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    reason: String,
}

async fn prescribe(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Form(f): Form<PrescriptionForm>,
) -> Response {
    let (info, t, _headers) = (&s.info, s.t, &s.headers);
    use lianyi_clinical::prescribing::{Frequency, Order, Signed};
    if !lianyi_security::secrets::constant_time_eq(&info.csrf, &f.csrf) {
        return forbidden(t);
    }
    let order = Order {
        drug: f.drug.clone(),
        dose: f.dose.trim().parse().unwrap_or(f64::NAN),
        frequency: Frequency::parse(&f.frequency).filter(|x| Frequency::ALL.contains(x)).unwrap_or(Frequency::Qd),
        days: f.days.trim().parse().unwrap_or(0),
    };
    let show = |findings: &[lianyi_clinical::prescribing::Finding], reason_missing: bool| Review {
        form: f.clone(),
        invalid: None,
        findings: findings.iter().map(|x| (x.blocking, t.pick(&x.zh, &x.en).clone())).collect(),
        blocked: findings.iter().any(|x| x.blocking),
        reason_missing,
    };
    if f.confirm != "1" {
        // First step: the checks; signed at once only when there is nothing to see.
        match state.prescribing.review(&info.caller, &id, &order).await {
            Ok(findings) if !findings.is_empty() => {
                let review = show(&findings, false);
                return render_encounter(&state, &s, id, EncounterQuery::default(), Some(review)).await;
            }
            Ok(_) => {}
            Err(lianyi_clinical::registry::RegistryError::Invalid(errors)) => {
                // The form comes back as typed, the field and its rule named at the top.
                let (field, key) = match errors.first().map(|e| e.field) {
                    Some("dose") => ("dose", "rx-error-dose"),
                    Some("days") => ("days", "rx-error-days"),
                    Some("drug") => ("drug", "rx-error-drug"),
                    _ => ("drug", "rx-error-order"),
                };
                let review = Review {
                    form: f.clone(),
                    invalid: Some((field, key)),
                    findings: Vec::new(),
                    blocked: false,
                    reason_missing: false,
                };
                return render_encounter(&state, &s, id, EncounterQuery::default(), Some(review)).await;
            }
            Err(e) => return workspace_error(&id, &e, t),
        }
    }
    let reason = Some(f.reason.as_str()).filter(|r| !r.trim().is_empty());
    match state.prescribing.sign(&info.caller, &id, &order, reason).await {
        Ok(Signed::Done { .. }) => see_other(&format!("/encounters/{id}?done=prescribed")),
        Ok(Signed::Blocked(findings)) => {
            let review = show(&findings, true);
            render_encounter(&state, &s, id, EncounterQuery::default(), Some(review)).await
        }
        Err(e) => workspace_error(&id, &e, t),
    }
}

#[derive(Deserialize)]
struct DiagnosisForm {
    csrf: String,
    code: String,
}

fn workspace_error(id: &str, e: &lianyi_clinical::registry::RegistryError, t: Tr) -> Response {
    use lianyi_clinical::registry::RegistryError;
    match e {
        RegistryError::Forbidden(_) | RegistryError::Service(lianyi_services::ServiceError::Forbidden(_)) => {
            forbidden(t)
        }
        RegistryError::Invalid(errors) => {
            see_other(&format!("/encounters/{id}?error={}", errors.first().map_or("failed", |e| e.code)))
        }
        other => {
            tracing::error!(error = %other, "encounter workspace write failed");
            see_other(&format!("/encounters/{id}?error=failed"))
        }
    }
}

async fn add_diagnosis(
    State(state): State<AppState>,
    Signed { info, t, .. }: Signed,
    Path(id): Path<String>,
    Form(f): Form<DiagnosisForm>,
) -> Response {
    if !lianyi_security::secrets::constant_time_eq(&info.csrf, &f.csrf) {
        return forbidden(t);
    }
    match state.workspace.add_diagnosis(&info.caller, &id, &f.code).await {
        Ok(_) => see_other(&format!("/encounters/{id}?done=diagnosis")),
        Err(e) => workspace_error(&id, &e, t),
    }
}

#[derive(Deserialize)]
struct AllergyForm {
    csrf: String,
    patient: String,
    substance: String,
    criticality: String,
    #[serde(default)]
    reaction: String,
}

async fn add_allergy(
    State(state): State<AppState>,
    Signed { info, t, .. }: Signed,
    Path(id): Path<String>,
    Form(f): Form<AllergyForm>,
) -> Response {
    if !lianyi_security::secrets::constant_time_eq(&info.csrf, &f.csrf) {
        return forbidden(t);
    }
    match state.workspace.add_allergy(&info.caller, &f.patient, &f.substance, &f.criticality, &f.reaction).await {
        Ok(_) => see_other(&format!("/encounters/{id}?done=allergy")),
        Err(e) => workspace_error(&id, &e, t),
    }
}

#[derive(Deserialize)]
struct FinishForm {
    csrf: String,
}

/// `POST /encounters/{id}/finish`: ends the visit and goes back to the department's queue.
async fn finish(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Form(f): Form<FinishForm>,
) -> Response {
    if !s.csrf_ok(&f.csrf) {
        return s.forbidden();
    }
    match state.scheduling.finish(s.caller(), &id).await {
        Ok(dept) => see_other(&format!("/queue?dept={dept}&done=finished")),
        Err(lianyi_clinical::scheduling::ScheduleError::Service(lianyi_services::ServiceError::Forbidden(_))) => {
            s.forbidden()
        }
        Err(lianyi_clinical::scheduling::ScheduleError::Invalid(_)) => {
            see_other(&format!("/encounters/{id}?error=not-in-progress"))
        }
        Err(e) => {
            tracing::error!(error = %e, "ending a visit failed");
            see_other(&format!("/encounters/{id}?error=failed"))
        }
    }
}
