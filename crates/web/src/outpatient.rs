//! Outpatient pages: free slots of a department's doctors on a day and booking for a
//! patient, check-in and cancel on the patient page, the department's queue with
//! call-next, and the encounter a call opens. The rules live in
//! [`lianyi_clinical::scheduling`]; every read and write goes through the FHIR
//! service as the signed-in user (permission, campus, audit).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use lianyi_clinical::record::Event;
use lianyi_clinical::results::Latest;
use lianyi_clinical::scheduling::{FreeSlot, QueueEntry, ScheduleError};
use lianyi_fhir::ResourceType;
use lianyi_fhir::search::parse_search;
use lianyi_security::{Caller, Perm};
use serde::Deserialize;
use serde_json::Value;

use crate::AppState;
use crate::clinic::{Shell, shell};
use crate::i18n::Tr;
use crate::pages::{Active, forbidden, lang, page, see_other};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/scheduling", get(scheduling_page))
        .route("/scheduling/book", post(book))
        .route("/appointments/{id}/{action}", post(appointment_action))
        .route("/queue", get(queue_page))
        .route("/queue/call", post(call_next))
        .route("/encounters/{id}", get(encounter_page))
        .route("/encounters/{id}/icd", get(icd_fragment))
        .route("/encounters/{id}/diagnoses", post(add_diagnosis))
        .route("/encounters/{id}/allergies", post(add_allergy))
        .route("/encounters/{id}/prescriptions", post(prescribe))
        .route("/encounters/{id}/orders", post(add_order))
        .route("/encounters/{id}/notes", post(add_note))
        .route("/encounters/{id}/print/{what}", get(print_page))
        .route("/reports/lab/{id}", get(lab_report))
}

async fn search(state: &AppState, caller: &Caller, t: &str, params: &[(&str, String)]) -> Vec<Value> {
    let Some(rt) = ResourceType::parse(t) else { return Vec::new() };
    let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let Ok(req) = parse_search(rt, &params) else { return Vec::new() };
    match state.fhir.search(caller, &req).await {
        Ok(page) => page
            .resources
            .iter()
            .chain(page.included.iter())
            .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, resource_type = t, "page search failed");
            Vec::new()
        }
    }
}

pub(crate) async fn read(state: &AppState, caller: &Caller, t: &str, id: &str) -> Option<Value> {
    let rt = ResourceType::parse(t)?;
    let r = state.fhir.reader(caller, rt).await.ok()?.read(id).await.ok()?;
    serde_json::from_str(&r.body).ok()
}

/// An Organization's or Practitioner's name in the page's language.
fn display_name(v: &Value, t: Tr) -> String {
    if v["resourceType"] == "Practitioner" {
        let names = v["name"].as_array().cloned().unwrap_or_default();
        let pick = |latin: bool| {
            names.iter().find(|n| (n["extension"][0]["valueCode"] == "ABC") == latin).and_then(|n| n["text"].as_str())
        };
        let name =
            if t.code() == "en" { pick(true).or_else(|| pick(false)) } else { pick(false).or_else(|| pick(true)) };
        return name.unwrap_or_default().to_string();
    }
    lianyi_services::fhir::organization_name(v, t.code()).unwrap_or_default()
}

/// (id, name) of the departments of a campus.
async fn departments(state: &AppState, caller: &Caller, t: Tr, campus: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = search(
        state,
        caller,
        "Organization",
        &[("partof", format!("Organization/{campus}")), ("_count", "100".into())],
    )
    .await
    .iter()
    .filter_map(|o| Some((o["id"].as_str()?.to_string(), display_name(o, t))))
    .collect();
    out.sort();
    out
}

/// The departments of the user's campus, and `chosen` if it is one of them (else "").
async fn department_choice(
    state: &AppState,
    caller: &Caller,
    t: Tr,
    shell: &Shell,
    chosen: Option<String>,
) -> (Vec<(String, String)>, String) {
    let departments = match &shell.campus {
        Some(c) => departments(state, caller, t, c).await,
        None => Vec::new(),
    };
    let dept = chosen.filter(|d| departments.iter().any(|(id, _)| id == d)).unwrap_or_default();
    (departments, dept)
}

/// One doctor's free slots on the chosen day.
struct DoctorSlots {
    name: String,
    /// (slot id, HH:MM)
    slots: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "scheduling.html")]
struct SchedulingPage<'a> {
    t: Tr,
    shell: &'a Shell,
    departments: Vec<(String, String)>,
    dept: String,
    date: String,
    patient: Option<(String, String)>,
    /// The appointment being moved to another time.
    reschedule: String,
    doctors: Vec<DoctorSlots>,
    error: Option<&'static str>,
}

#[derive(Deserialize, Default)]
struct SchedulingQuery {
    dept: Option<String>,
    date: Option<String>,
    patient: Option<String>,
    reschedule: Option<String>,
    error: Option<String>,
}

fn may_book(caller: &Caller) -> bool {
    crate::clinic::staff_may(caller, "Appointment", Perm::Create)
}

async fn scheduling_page(
    State(state): State<AppState>,
    Active(info): Active,
    Query(q): Query<SchedulingQuery>,
    headers: HeaderMap,
) -> Response {
    let t = Tr::new(lang(&headers));
    if !may_book(&info.caller) {
        return forbidden(t);
    }
    let shell = shell(&state, &info, t, &headers).await;
    let caller = &info.caller;
    let (departments, dept) = department_choice(&state, caller, t, &shell, q.dept).await;
    let date = q
        .date
        .filter(|d| lianyi_clinical::scheduling::weekday(d).is_some())
        .unwrap_or_else(|| state.scheduling.today());
    let patient = match q.patient.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => read(&state, caller, "Patient", p)
            .await
            .map(|v| (p.to_string(), lianyi_clinical::registry::person_of(&v).name)),
        None => None,
    };
    let mut doctors = Vec::new();
    if !dept.is_empty() {
        let roles = search(
            &state,
            caller,
            "PractitionerRole",
            &[
                ("organization", format!("Organization/{dept}")),
                ("_include", "PractitionerRole:practitioner".into()),
                ("_count", "100".into()),
            ],
        )
        .await;
        for role in roles.iter().filter(|r| r["resourceType"] == "PractitionerRole") {
            let Some(role_id) = role["id"].as_str() else { continue };
            let practitioner = role["practitioner"]["reference"].as_str().unwrap_or_default();
            let name = roles
                .iter()
                .find(|p| {
                    p["resourceType"] == "Practitioner"
                        && format!("Practitioner/{}", p["id"].as_str().unwrap_or_default()) == practitioner
                })
                .map(|p| display_name(p, t))
                .unwrap_or_default();
            let schedules: Vec<String> = search(
                &state,
                caller,
                "Schedule",
                &[("actor", format!("PractitionerRole/{role_id}")), ("active", "true".into())],
            )
            .await
            .iter()
            .filter_map(|s| s["id"].as_str().map(str::to_string))
            .collect();
            if schedules.is_empty() {
                continue;
            }
            let slots = state.scheduling.free_slots(caller, &schedules, &date).await.unwrap_or_default();
            doctors.push(DoctorSlots {
                name,
                slots: slots.iter().map(|s: &FreeSlot| (s.id.clone(), s.start[11..16].to_string())).collect(),
            });
        }
    }
    let error = match q.error.as_deref() {
        Some("taken") => Some("sched-error-taken"),
        Some(_) => Some("sched-error-failed"),
        None => None,
    };
    let reschedule = q.reschedule.unwrap_or_default();
    page(SchedulingPage { t, shell: &shell, departments, dept, date, patient, reschedule, doctors, error }.render())
}

#[derive(Deserialize)]
struct BookForm {
    csrf: String,
    slot: String,
    patient: String,
    #[serde(default)]
    back: String,
    /// Set when an existing appointment moves to this slot.
    #[serde(default)]
    reschedule: String,
}

async fn book(
    State(state): State<AppState>,
    Active(info): Active,
    headers: HeaderMap,
    Form(f): Form<BookForm>,
) -> Response {
    let t = Tr::new(lang(&headers));
    if !may_book(&info.caller) || !lianyi_security::secrets::constant_time_eq(&info.csrf, &f.csrf) {
        return forbidden(t);
    }
    let outcome = if f.reschedule.is_empty() {
        state.scheduling.book(&info.caller, &f.slot, &f.patient).await
    } else {
        state.scheduling.reschedule(&info.caller, &f.reschedule, &f.slot).await
    };
    let done = if f.reschedule.is_empty() { "booked" } else { "rescheduled" };
    match outcome {
        Ok(_) => see_other(&format!("/patients/{}?done={done}", f.patient)),
        Err(ScheduleError::Taken) => see_other(&format!("/scheduling?{}&error=taken", f.back)),
        Err(ScheduleError::Service(lianyi_services::ServiceError::Forbidden(_))) => forbidden(t),
        Err(e) => {
            tracing::error!(error = %e, "booking failed");
            see_other(&format!("/scheduling?{}&error=failed", f.back))
        }
    }
}

#[derive(Deserialize)]
struct ActionForm {
    csrf: String,
    patient: String,
    #[serde(default)]
    reason: String,
}

async fn appointment_action(
    State(state): State<AppState>,
    Active(info): Active,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    Form(f): Form<ActionForm>,
) -> Response {
    let t = Tr::new(lang(&headers));
    if !may_book(&info.caller) || !lianyi_security::secrets::constant_time_eq(&info.csrf, &f.csrf) {
        return forbidden(t);
    }
    let done = match action.as_str() {
        "check-in" => state.scheduling.check_in(&info.caller, &id).await.map(|(_, n)| format!("checked-in&queue={n}")),
        "cancel" => state.scheduling.cancel(&info.caller, &id, &f.reason).await.map(|()| "cancelled".to_string()),
        _ => return crate::pages::not_found(t),
    };
    match done {
        Ok(what) => see_other(&format!("/patients/{}?done={what}", f.patient)),
        Err(ScheduleError::Service(lianyi_services::ServiceError::Forbidden(_))) => forbidden(t),
        Err(ScheduleError::Invalid(errors)) => {
            let code = errors.first().map_or("failed", |e| e.code);
            see_other(&format!("/patients/{}?error={code}", f.patient))
        }
        Err(e) => {
            tracing::error!(error = %e, "appointment action failed");
            see_other(&format!("/patients/{}?error=failed", f.patient))
        }
    }
}

/// A patient's booked and arrived appointments, for the patient page.
pub(crate) struct AppointmentRow {
    pub id: String,
    pub start: String,
    pub status: String,
    pub doctor: String,
}

pub(crate) async fn appointments(state: &AppState, caller: &Caller, t: Tr, patient: &str) -> Vec<AppointmentRow> {
    let rows = search(
        state,
        caller,
        "Appointment",
        &[
            ("patient", format!("Patient/{patient}")),
            ("status", "booked,arrived".into()),
            ("_include", "Appointment:practitioner".into()),
            ("_count", "50".into()),
        ],
    )
    .await;
    let mut out: Vec<AppointmentRow> = rows
        .iter()
        .filter(|a| a["resourceType"] == "Appointment")
        .map(|a| {
            let doctor_ref = a["participant"]
                .as_array()
                .and_then(|ps| {
                    ps.iter().find_map(|p| p["actor"]["reference"].as_str().filter(|r| r.starts_with("Practitioner/")))
                })
                .unwrap_or_default();
            let doctor = rows
                .iter()
                .find(|p| {
                    p["resourceType"] == "Practitioner"
                        && format!("Practitioner/{}", p["id"].as_str().unwrap_or_default()) == doctor_ref
                })
                .map(|p| display_name(p, t))
                .unwrap_or_default();
            let start = a["start"].as_str().unwrap_or_default();
            AppointmentRow {
                id: a["id"].as_str().unwrap_or_default().to_string(),
                start: format!("{} {}", start.get(..10).unwrap_or_default(), start.get(11..16).unwrap_or_default()),
                status: a["status"].as_str().unwrap_or_default().to_string(),
                doctor,
            }
        })
        .collect();
    out.sort_by(|a, b| a.start.cmp(&b.start));
    out
}

struct QueueRow {
    number: u32,
    name: String,
    called: bool,
    encounter: String,
}

#[derive(Template)]
#[template(path = "queue.html")]
struct QueuePage<'a> {
    t: Tr,
    shell: &'a Shell,
    departments: Vec<(String, String)>,
    dept: String,
    rows: Vec<QueueRow>,
    may_call: bool,
    empty: bool,
}

#[derive(Deserialize, Default)]
struct QueueQuery {
    dept: Option<String>,
    empty: Option<String>,
}

fn may_see_queue(caller: &Caller) -> bool {
    crate::clinic::staff_may(caller, "Encounter", Perm::Search)
}

async fn queue_page(
    State(state): State<AppState>,
    Active(info): Active,
    Query(q): Query<QueueQuery>,
    headers: HeaderMap,
) -> Response {
    let t = Tr::new(lang(&headers));
    if !may_see_queue(&info.caller) {
        return forbidden(t);
    }
    let shell = shell(&state, &info, t, &headers).await;
    let (departments, dept) = department_choice(&state, &info.caller, t, &shell, q.dept).await;
    let mut rows = Vec::new();
    if !dept.is_empty() {
        let entries: Vec<QueueEntry> = state.scheduling.queue(&info.caller, &dept).await.unwrap_or_default();
        for e in entries {
            let name = read(&state, &info.caller, "Patient", &e.patient)
                .await
                .map(|p| lianyi_clinical::registry::person_of(&p).name)
                .unwrap_or_default();
            rows.push(QueueRow { number: e.number, name, called: e.status == "in-progress", encounter: e.encounter });
        }
    }
    let may_call = info.caller.access().allows("Encounter", Perm::Update)
        && info.caller.access().allows("Condition", Perm::Create);
    page(QueuePage { t, shell: &shell, departments, dept, rows, may_call, empty: q.empty.is_some() }.render())
}

#[derive(Deserialize)]
struct CallForm {
    csrf: String,
    dept: String,
}

async fn call_next(
    State(state): State<AppState>,
    Active(info): Active,
    headers: HeaderMap,
    Form(f): Form<CallForm>,
) -> Response {
    let t = Tr::new(lang(&headers));
    if !may_see_queue(&info.caller) || !lianyi_security::secrets::constant_time_eq(&info.csrf, &f.csrf) {
        return forbidden(t);
    }
    match state.scheduling.call_next(&info.caller, &f.dept).await {
        Ok(Some(next)) => see_other(&format!("/encounters/{}", next.encounter)),
        Ok(None) => see_other(&format!("/queue?dept={}&empty=1", f.dept)),
        Err(ScheduleError::Service(lianyi_services::ServiceError::Forbidden(_))) => forbidden(t),
        Err(e) => {
            tracing::error!(error = %e, "call-next failed");
            see_other(&format!("/queue?dept={}", f.dept))
        }
    }
}

/// A diagnosis or search result as the workspace shows it.
struct CodeRow {
    code: String,
    title: String,
}

#[derive(Template)]
#[template(path = "encounter.html")]
struct EncounterPage<'a> {
    t: Tr,
    shell: &'a Shell,
    id: String,
    patient_id: String,
    patient_name: String,
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
    prescriptions: Vec<(String, String)>,
    /// (code, label) of the catalogue.
    drugs: Vec<(String, String)>,
    review: Option<Review>,
    may_order: bool,
    /// (placer number, name, priority key) of the visit's requests.
    orders: Vec<(String, String, String)>,
    /// (code, label) of the order catalogue.
    order_items: Vec<(String, String)>,
    may_write_notes: bool,
    notes: Vec<lianyi_clinical::record::Note>,
    note: lianyi_clinical::record::NoteDraft,
    results: Vec<Latest>,
    timeline: Vec<Event>,
}

/// Campus names by id, looked up once per page.
pub(crate) struct CampusNames {
    lang: &'static str,
    known: Vec<(String, String)>,
}

impl CampusNames {
    pub(crate) fn new(t: Tr) -> CampusNames {
        CampusNames { lang: t.code(), known: Vec::new() }
    }

    pub(crate) async fn name(&mut self, state: &AppState, id: &str) -> String {
        if let Some((_, n)) = self.known.iter().find(|(k, _)| k == id) {
            return n.clone();
        }
        let n = state.fhir.campus_name(id, self.lang).await.unwrap_or_else(|| id.to_string());
        self.known.push((id.to_string(), n.clone()));
        n
    }
}

/// The patient's newest results and record across campuses, as `care` reads them,
/// with campus names (and a normal result's flag left blank).
pub(crate) async fn record_rows(state: &AppState, care: &Caller, patient: &str, t: Tr) -> (Vec<Latest>, Vec<Event>) {
    let mut names = CampusNames::new(t);
    let mut results = state.results.latest(care, patient, t.code()).await;
    for r in &mut results {
        r.campus = names.name(state, &r.campus).await;
        if r.flag == "N" {
            r.flag.clear();
        }
    }
    let own = care.access().all_campuses();
    let mut timeline = state.record.timeline(care, patient, 50).await;
    for e in &mut timeline {
        // Pages of another campus's visits are not the reader's to open.
        if !own.contains(&e.campus) {
            e.link = None;
        }
        e.campus = names.name(state, &e.campus).await;
    }
    (results, timeline)
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
    Active(info): Active,
    Path(id): Path<String>,
    Query(q): Query<EncounterQuery>,
    headers: HeaderMap,
) -> Response {
    render_encounter(&state, &info, &headers, id, q, None).await
}

/// The CSRF token a fragment's forms carry.
struct FragmentShell {
    csrf: String,
}

#[derive(Template)]
#[template(path = "icd_results.html")]
struct IcdFragment {
    t: Tr,
    shell: FragmentShell,
    id: String,
    icd_query: String,
    icd_results: Vec<CodeRow>,
}

fn icd_rows(query: &str, lang: &str) -> Vec<CodeRow> {
    lianyi_clinical::icd10::search(query, 20)
        .into_iter()
        .map(|c| CodeRow { code: c.code.to_string(), title: c.title(lang).to_string() })
        .collect()
}

/// `GET /encounters/{id}/icd?icd=…`: the ICD-10 matches alone, swapped into the
/// workspace as the doctor types (htmx); the search form does the same without it.
async fn icd_fragment(
    Active(info): Active,
    Path(id): Path<String>,
    Query(q): Query<EncounterQuery>,
    headers: HeaderMap,
) -> Response {
    let t = Tr::new(lang(&headers));
    if !crate::clinic::staff_may(&info.caller, "Condition", Perm::Create) {
        return forbidden(t);
    }
    let icd_query = q.icd.unwrap_or_default();
    let icd_results = icd_rows(&icd_query, t.code());
    page(IcdFragment { t, shell: FragmentShell { csrf: info.csrf.clone() }, id, icd_query, icd_results }.render())
}

/// The review of a prescription the doctor is about to sign, shown on the page.
struct Review {
    form: PrescriptionForm,
    /// (blocking, text)
    findings: Vec<(bool, String)>,
    blocked: bool,
    reason_missing: bool,
}

async fn render_encounter(
    state: &AppState,
    info: &lianyi_security::users::SessionInfo,
    headers: &HeaderMap,
    id: String,
    q: EncounterQuery,
    review: Option<Review>,
) -> Response {
    let t = Tr::new(lang(headers));
    let (state, headers) = (state.clone(), headers.clone());
    let caller = &info.caller;
    let Some(e) = read(&state, caller, "Encounter", &id).await else { return crate::pages::not_found(t) };
    let shell = shell(&state, info, t, &headers).await;
    let patient_id = e["subject"]["reference"].as_str().unwrap_or_default().trim_start_matches("Patient/").to_string();
    // The whole record of a patient of this campus, whichever campus made it (the
    // same read gives the banner's name).
    let (care, patient_name) = match state.record.open(caller, &patient_id).await {
        Ok((care, p)) => (care, lianyi_clinical::registry::person_of(&p).name),
        Err(_) => (caller.clone(), String::new()),
    };
    let dept_id =
        e["serviceProvider"]["reference"].as_str().unwrap_or_default().trim_start_matches("Organization/").to_string();
    let dept = read(&state, caller, "Organization", &dept_id).await;
    let department = dept.as_ref().map_or(dept_id, |o| display_name(o, t));
    // The campus of the visit, for the banner.
    let campus = match dept.as_ref().and_then(|o| o["partOf"]["reference"].as_str()) {
        Some(r) => {
            let id = r.trim_start_matches("Organization/");
            state.fhir.campus_name(id, t.code()).await.unwrap_or_else(|| id.to_string())
        }
        None => String::new(),
    };
    let started = e["period"]["start"].as_str().unwrap_or_default();
    let started = format!("{} {}", started.get(..10).unwrap_or_default(), started.get(11..16).unwrap_or_default());
    let queue_number = e["identifier"]
        .as_array()
        .and_then(|ids| {
            ids.iter().find(|i| i["system"].as_str().is_some_and(|s| s.starts_with("urn:lianyi:sid:queue:")))
        })
        .and_then(|i| i["value"].as_str())
        .unwrap_or_default()
        .to_string();
    let status = e["status"].as_str().unwrap_or_default().to_string();
    let allergies = state.workspace.allergies(&care, &patient_id).await.unwrap_or_default();
    let (results, timeline) = record_rows(&state, &care, &patient_id, t).await;
    let notes = state.record.notes(caller, &id).await;
    let may_write_notes = crate::clinic::staff_may(caller, "Composition", Perm::Create);
    let lang_code = t.code();
    let diagnoses = state
        .workspace
        .diagnoses(caller, &id)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|d| CodeRow {
            title: if lang_code == "en" {
                d.title_en.clone()
            } else {
                d.title_zh.clone().unwrap_or(d.title_en.clone())
            },
            code: d.code,
        })
        .collect();
    let icd_query = q.icd.unwrap_or_default();
    let icd_results = icd_rows(&icd_query, lang_code);
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
    let orders = state
        .ordering
        .requested(caller, &id)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let name = lianyi_clinical::orders::item(&r.code).map_or(r.code.clone(), |i| i.name(lang_code).to_string());
            (r.placer, name, format!("order-priority-{}", r.priority))
        })
        .collect();
    let order_items = lianyi_clinical::orders::catalogue()
        .iter()
        .map(|i| (i.code.to_string(), format!("{} ({})", i.name(lang_code), i.loinc)))
        .collect();
    let may_prescribe = caller.access().allows("MedicationRequest", Perm::Create);
    let prescriptions = prescriptions(&state, caller, &id, lang_code).await;
    let drugs = lianyi_clinical::prescribing::catalogue()
        .iter()
        .map(|d| (d.code.to_string(), format!("{} {} ({})", d.name(lang_code), d.strength, d.unit)))
        .collect();
    let error = q.error.as_deref().map(|e| match e {
        "icd10-unknown" => "ws-error-icd10",
        "substance" => "ws-error-substance",
        "dose" | "days" | "drug-unknown" => "rx-error-order",
        "order-unknown" | "priority" => "order-error",
        "note-empty" => "note-error-empty",
        "too-long" => "note-error-long",
        _ => "ws-error-failed",
    });
    page(
        EncounterPage {
            t,
            shell: &shell,
            id,
            patient_id,
            patient_name,
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
            review,
            may_order,
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

/// The encounter's active prescriptions: (text, dosage).
async fn prescriptions(state: &AppState, caller: &Caller, encounter: &str, lang: &str) -> Vec<(String, String)> {
    search(
        state,
        caller,
        "MedicationRequest",
        &[("encounter", format!("Encounter/{encounter}")), ("status", "active".into())],
    )
    .await
    .iter()
    .map(|m| {
        let code = m["medicationCodeableConcept"]["coding"][0]["code"].as_str().unwrap_or_default();
        let name = lianyi_clinical::prescribing::drug(code)
            .map(|d| format!("{} {}", d.name(lang), d.strength))
            .unwrap_or_else(|| m["medicationCodeableConcept"]["text"].as_str().unwrap_or_default().to_string());
        (name, m["dosageInstruction"][0]["text"].as_str().unwrap_or_default().to_string())
    })
    .collect()
}

#[derive(Deserialize)]
struct OrderForm {
    csrf: String,
    item: String,
    priority: String,
}

async fn add_order(
    State(state): State<AppState>,
    Active(info): Active,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<OrderForm>,
) -> Response {
    let t = Tr::new(lang(&headers));
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
    Active(info): Active,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<NoteForm>,
) -> Response {
    let t = Tr::new(lang(&headers));
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
            render_encounter(&state, &info, &headers, id, q, None).await
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
    Active(info): Active,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<PrescriptionForm>,
) -> Response {
    use lianyi_clinical::prescribing::{Frequency, Order, Signed};
    let t = Tr::new(lang(&headers));
    if !lianyi_security::secrets::constant_time_eq(&info.csrf, &f.csrf) {
        return forbidden(t);
    }
    let order = Order {
        drug: f.drug.clone(),
        dose: f.dose.trim().parse().unwrap_or(f64::NAN),
        frequency: Frequency::parse(&f.frequency).unwrap_or(Frequency::Qd),
        days: f.days.trim().parse().unwrap_or(0),
    };
    let show = |findings: &[lianyi_clinical::prescribing::Finding], reason_missing: bool| Review {
        form: f.clone(),
        findings: findings.iter().map(|x| (x.blocking, x.text(t.code()).to_string())).collect(),
        blocked: findings.iter().any(|x| x.blocking),
        reason_missing,
    };
    if f.confirm != "1" {
        // First step: the checks; signed at once only when there is nothing to see.
        match state.prescribing.review(&info.caller, &id, &order).await {
            Ok(findings) if !findings.is_empty() => {
                let review = show(&findings, false);
                return render_encounter(&state, &info, &headers, id, EncounterQuery::default(), Some(review)).await;
            }
            Ok(_) => {}
            Err(e) => return workspace_error(&id, &e, t),
        }
    }
    let reason = Some(f.reason.as_str()).filter(|r| !r.trim().is_empty());
    match state.prescribing.sign(&info.caller, &id, &order, reason).await {
        Ok(Signed::Done { .. }) => see_other(&format!("/encounters/{id}?done=prescribed")),
        Ok(Signed::Blocked(findings)) => {
            let review = show(&findings, true);
            render_encounter(&state, &info, &headers, id, EncounterQuery::default(), Some(review)).await
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
    Active(info): Active,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<DiagnosisForm>,
) -> Response {
    let t = Tr::new(lang(&headers));
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
    Active(info): Active,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<AllergyForm>,
) -> Response {
    let t = Tr::new(lang(&headers));
    if !lianyi_security::secrets::constant_time_eq(&info.csrf, &f.csrf) {
        return forbidden(t);
    }
    match state.workspace.add_allergy(&info.caller, &f.patient, &f.substance, &f.criticality, &f.reaction).await {
        Ok(_) => see_other(&format!("/encounters/{id}?done=allergy")),
        Err(e) => workspace_error(&id, &e, t),
    }
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
#[template(path = "print.html")]
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
                lianyi_clinical::registry::mrns_of(&p).into_iter().map(|(_, m)| m).collect::<Vec<_>>().join(", ");
            let gender = format!("gender-{}", person.gender.as_deref().unwrap_or("unknown"));
            (
                person.name,
                gender,
                crate::clinic::age(person.birth_date.as_deref().unwrap_or_default(), today)
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
    Active(info): Active,
    Path((id, what)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let t = Tr::new(lang(&headers));
    if !matches!(what.as_str(), "prescription" | "summary") {
        return crate::pages::not_found(t);
    }
    let caller = &info.caller;
    let Some(e) = read(&state, caller, "Encounter", &id).await else { return crate::pages::not_found(t) };
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
        .map(|d| {
            format!(
                "{} {}",
                d.code,
                if lang_code == "en" { d.title_en.clone() } else { d.title_zh.clone().unwrap_or(d.title_en) }
            )
        })
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
async fn lab_report(
    State(state): State<AppState>,
    Active(info): Active,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let t = Tr::new(lang(&headers));
    let caller = &info.caller;
    let Some(r) = read(&state, caller, "DiagnosticReport", &id).await else { return crate::pages::not_found(t) };
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
pub(crate) async fn lab_reports(state: &AppState, caller: &Caller, patient: &str) -> Vec<(String, String, String)> {
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
