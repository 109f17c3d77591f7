//! Scheduling: free slots of a department's doctors on a day and booking for a
//! patient, check-in and cancel on the patient page, and the department's queue
//! with call-next, which opens the encounter. The rules live in
//! [`lianyi_clinical::scheduling`].

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use lianyi_clinical::scheduling::{FreeSlot, QueueEntry, ScheduleError};
use lianyi_security::{Caller, Perm};
use serde::Deserialize;

use super::reads::*;
use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, not_found, page, see_other};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, shell, staff_may};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/scheduling", get(scheduling_page))
        .route("/scheduling/book", post(book))
        .route("/appointments/{id}/{action}", post(appointment_action))
        .route("/queue", get(queue_page))
        .route("/queue/call", post(call_next))
}

/// One doctor's free slots on the chosen day.
struct DoctorSlots {
    name: String,
    /// (slot id, HH:MM)
    slots: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "clinic/scheduling.html")]
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
    staff_may(caller, "Appointment", Perm::Create)
}

async fn scheduling_page(
    State(state): State<AppState>,
    Signed { info, t, headers }: Signed,
    Query(q): Query<SchedulingQuery>,
) -> Response {
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
    let found = if dept.is_empty() { Ok(Vec::new()) } else { state.scheduling.doctors(caller, &dept).await };
    if let Err(e) = &found {
        tracing::warn!(error = %e, "doctors of a department");
    }
    for doctor in found.unwrap_or_default() {
        let slots = state.scheduling.free_slots(caller, &doctor.schedules, &date).await.unwrap_or_default();
        doctors.push(DoctorSlots {
            name: t.pick(&doctor.names.zh, &doctor.names.en).clone(),
            slots: slots.iter().map(|s: &FreeSlot| (s.id.clone(), s.start[11..16].to_string())).collect(),
        });
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

async fn book(State(state): State<AppState>, Signed { info, t, .. }: Signed, Form(f): Form<BookForm>) -> Response {
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
    Signed { info, t, .. }: Signed,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<ActionForm>,
) -> Response {
    if !may_book(&info.caller) || !lianyi_security::secrets::constant_time_eq(&info.csrf, &f.csrf) {
        return forbidden(t);
    }
    let done = match action.as_str() {
        "check-in" => state.scheduling.check_in(&info.caller, &id).await.map(|(_, n)| format!("checked-in&queue={n}")),
        "cancel" => state.scheduling.cancel(&info.caller, &id, &f.reason).await.map(|()| "cancelled".to_string()),
        _ => return not_found(t),
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
pub(super) struct AppointmentRow {
    pub id: String,
    pub start: String,
    pub status: String,
    pub doctor: String,
}

pub(super) async fn appointments(state: &AppState, caller: &Caller, t: Tr, patient: &str) -> Vec<AppointmentRow> {
    match state.scheduling.appointments_of(caller, patient).await {
        Ok(list) => list
            .into_iter()
            .map(|a| AppointmentRow {
                doctor: t.pick(&a.doctor.zh, &a.doctor.en).clone(),
                id: a.id,
                start: a.start,
                status: a.status,
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "appointments of a patient");
            Vec::new()
        }
    }
}

struct QueueRow {
    number: u32,
    name: String,
    /// Locale key of the sex.
    gender_key: String,
    age: String,
    doctor: String,
    called: bool,
    encounter: String,
}

#[derive(Template)]
#[template(path = "clinic/queue.html")]
struct QueuePage<'a> {
    t: Tr,
    shell: &'a Shell,
    departments: Vec<(String, String)>,
    dept: String,
    rows: Vec<QueueRow>,
    may_call: bool,
    empty: bool,
    /// A visit was just ended.
    finished: bool,
}

#[derive(Deserialize, Default)]
struct QueueQuery {
    dept: Option<String>,
    empty: Option<String>,
    done: Option<String>,
}

fn may_see_queue(caller: &Caller) -> bool {
    staff_may(caller, "Encounter", Perm::Search)
}

async fn queue_page(
    State(state): State<AppState>,
    Signed { info, t, headers }: Signed,
    Query(q): Query<QueueQuery>,
) -> Response {
    if !may_see_queue(&info.caller) {
        return forbidden(t);
    }
    let shell = shell(&state, &info, t, &headers).await;
    // Without a choice, the user's own department (of this campus).
    let chosen = match q.dept {
        Some(d) => Some(d),
        None => state.scheduling.own_departments(&info.caller).await.unwrap_or_default().into_iter().next(),
    };
    let (departments, dept) = department_choice(&state, &info.caller, t, &shell, chosen).await;
    let rows = if dept.is_empty() { Vec::new() } else { queue_rows(&state, &info.caller, t, &dept).await };
    let may_call = info.caller.access().allows("Encounter", Perm::Update)
        && info.caller.access().allows("Condition", Perm::Create);
    page(
        QueuePage {
            t,
            shell: &shell,
            departments,
            dept,
            rows,
            may_call,
            empty: q.empty.is_some(),
            finished: q.done.as_deref() == Some("finished"),
        }
        .render(),
    )
}

/// A department's queue today with each patient's sex and age and the doctor.
async fn queue_rows(state: &AppState, caller: &Caller, t: Tr, dept: &str) -> Vec<QueueRow> {
    let entries: Vec<QueueEntry> = state.scheduling.queue(caller, dept).await.unwrap_or_default();
    let today = state.scheduling.today();
    let mut doctors: Vec<(String, String)> = Vec::new();
    let mut rows = Vec::new();
    for e in entries {
        let person = read(state, caller, "Patient", &e.patient)
            .await
            .map(|p| lianyi_clinical::registry::person_of(&p))
            .unwrap_or_default();
        let doctor = match e.doctor {
            Some(id) => match doctors.iter().find(|(k, _)| *k == id) {
                Some((_, n)) => n.clone(),
                None => {
                    let n =
                        read(state, caller, "Practitioner", &id).await.map(|p| display_name(&p, t)).unwrap_or_default();
                    doctors.push((id, n.clone()));
                    n
                }
            },
            None => String::new(),
        };
        rows.push(QueueRow {
            number: e.number,
            gender_key: format!("gender-{}", person.gender.as_deref().unwrap_or("unknown")),
            age: lianyi_clinical::registry::age(person.birth_date.as_deref().unwrap_or_default(), &today)
                .map(|a| a.to_string())
                .unwrap_or_default(),
            name: person.name,
            doctor,
            called: e.status == "in-progress",
            encounter: e.encounter,
        });
    }
    rows
}

#[derive(Deserialize)]
struct CallForm {
    csrf: String,
    dept: String,
}

async fn call_next(State(state): State<AppState>, Signed { info, t, .. }: Signed, Form(f): Form<CallForm>) -> Response {
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
