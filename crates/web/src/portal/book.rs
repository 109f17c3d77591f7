//! Booking and the patient's appointments: the portal's home (`/portal`: the next
//! visit and the ways on), every campus's departments and a search by name
//! (`/portal/book`), a department's doctors with their title and specialty, a
//! doctor's open slots day by day, booking or moving to a slot, and the
//! appointments (`/portal/visits`) with the queue on the day and cancelling.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use lianyi_portal::PortalError;
use lianyi_portal::booking::{Day, Department, Doctor, MyAppointment};
use serde::Deserialize;

use super::{Frame, Patient, Problem, failure, form_page, problems};
use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{form_value, page, see_other};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/portal", get(home))
        .route("/portal/book", get(departments).post(book))
        .route("/portal/book/dept/{id}", get(doctors))
        .route("/portal/book/doctor/{role}", get(doctor))
        .route("/portal/visits", get(visits))
        .route("/portal/visits/{id}/cancel", post(cancel))
}

#[derive(Template)]
#[template(path = "portal/home.html")]
struct HomePage<'a> {
    t: Tr,
    frame: &'a Frame,
    next: Vec<MyAppointment>,
    family: Vec<super::family::Member>,
    message: Option<&'static str>,
}

#[derive(Deserialize, Default)]
struct HomeQuery {
    m: Option<String>,
}

async fn home(State(state): State<AppState>, p: Patient, Query(q): Query<HomeQuery>) -> Response {
    let t = p.t;
    let message = (q.m.as_deref() == Some("proxy-ended")).then_some("portal-proxy-ended-now");
    let family = super::family::family(&state, &p).await;
    let next = match state.booking.appointments(p.caller()).await {
        Ok(list) => list.into_iter().filter(|a| a.status == "booked" || a.status == "arrived").take(3).collect(),
        Err(e) => return failure(t, &e),
    };
    page(HomePage { t, frame: &Frame::named(&state, &p, "home").await, next, family, message }.render())
}

#[derive(Template)]
#[template(path = "portal/departments.html")]
struct DepartmentsPage<'a> {
    t: Tr,
    frame: &'a Frame,
    q: &'a str,
    /// (campus name, its departments)
    campuses: Vec<(String, Vec<Department>)>,
    doctors: Vec<Doctor>,
    searched: bool,
}

#[derive(Deserialize, Default)]
struct FindQuery {
    q: Option<String>,
}

async fn departments(State(state): State<AppState>, p: Patient, Query(f): Query<FindQuery>) -> Response {
    let t = p.t;
    let q = f.q.unwrap_or_default();
    let q = q.trim();
    let (list, doctors) = if q.is_empty() {
        (state.booking.departments(p.caller()).await, Ok(Vec::new()))
    } else {
        match state.booking.find(p.caller(), q).await {
            Ok((d, docs)) => (Ok(d), Ok(docs)),
            Err(e) => (Err(e), Ok(Vec::new())),
        }
    };
    let (list, doctors): (Vec<Department>, Vec<Doctor>) = match (list, doctors) {
        (Ok(l), Ok(d)) => (l, d),
        (Err(e), _) | (_, Err(e)) => return failure(t, &e),
    };
    let mut campuses: Vec<(String, Vec<Department>)> = Vec::new();
    for d in list {
        let name = t.pick(d.campus_names.zh.clone(), d.campus_names.en.clone());
        match campuses.last_mut() {
            Some((n, ds)) if *n == name => ds.push(d),
            _ => campuses.push((name, vec![d])),
        }
    }
    let frame = Frame::named(&state, &p, "book").await;
    page(DepartmentsPage { t, frame: &frame, q, campuses, doctors, searched: !q.is_empty() }.render())
}

#[derive(Template)]
#[template(path = "portal/doctors.html")]
struct DoctorsPage<'a> {
    t: Tr,
    frame: &'a Frame,
    department: String,
    campus: String,
    doctors: Vec<Doctor>,
}

async fn doctors(State(state): State<AppState>, p: Patient, Path(id): Path<String>) -> Response {
    let t = p.t;
    let doctors = match state.booking.doctors(p.caller(), &id).await {
        Ok(d) => d,
        Err(e) => return failure(t, &e),
    };
    let (department, campus) = doctors
        .first()
        .map(|d| {
            (
                t.pick(d.department_names.zh.clone(), d.department_names.en.clone()),
                t.pick(d.campus_names.zh.clone(), d.campus_names.en.clone()),
            )
        })
        .unwrap_or_default();
    page(DoctorsPage { t, frame: &Frame::named(&state, &p, "book").await, department, campus, doctors }.render())
}

#[derive(Template)]
#[template(path = "portal/doctor.html")]
struct DoctorPage<'a> {
    t: Tr,
    frame: &'a Frame,
    doctor: Doctor,
    days: Vec<Day>,
    /// The appointment being moved, if any.
    moving: &'a str,
    problems: Vec<Problem>,
    rules: lianyi_clinical::scheduling::BookingRules,
}

#[derive(Deserialize, Default)]
struct DoctorQuery {
    #[serde(rename = "move")]
    moving: Option<String>,
}

async fn doctor_page(state: &AppState, p: &Patient, role: &str, moving: &str, problems: Vec<Problem>) -> Response {
    let t = p.t;
    let (doctor, days) = match state.booking.doctor(p.caller(), role).await {
        Ok(x) => x,
        Err(e) => return failure(t, &e),
    };
    let rules = state.booking.rules();
    let bad = !problems.is_empty();
    let frame = Frame::named(state, p, "book").await;
    form_page(DoctorPage { t, frame: &frame, doctor, days, moving, problems, rules }.render(), bad)
}

async fn doctor(
    State(state): State<AppState>,
    p: Patient,
    Path(role): Path<String>,
    Query(q): Query<DoctorQuery>,
) -> Response {
    let moving = q.moving.unwrap_or_default();
    doctor_page(&state, &p, &role, &moving, Vec::new()).await
}

/// Books a slot (or moves an appointment to it).
async fn book(State(state): State<AppState>, p: Patient, Form(form): Form<Vec<(String, String)>>) -> Response {
    let t = p.t;
    if !p.csrf_ok(&form_value(&form, "csrf")) {
        return crate::ui::render::forbidden(t);
    }
    let (slot, role, moving) = (form_value(&form, "slot"), form_value(&form, "role"), form_value(&form, "move"));
    let done = if moving.is_empty() {
        state.booking.book(p.caller(), &slot).await.map(|_| "booked")
    } else {
        state.booking.reschedule(p.caller(), &moving, &slot).await.map(|_| "moved")
    };
    match done {
        Ok(what) => see_other(&format!("/portal/visits?done={what}")),
        Err(PortalError::Invalid(errors)) => doctor_page(&state, &p, &role, &moving, problems(t, &errors)).await,
        Err(PortalError::Taken) => {
            let taken = lianyi_portal::FieldError { field: "slot", code: "taken", detail: "just taken".into() };
            doctor_page(&state, &p, &role, &moving, problems(t, &[taken])).await
        }
        Err(e) => failure(t, &e),
    }
}

#[derive(Template)]
#[template(path = "portal/visits.html")]
struct VisitsPage<'a> {
    t: Tr,
    frame: &'a Frame,
    visits: Vec<MyAppointment>,
    done: Option<&'static str>,
    problems: Vec<Problem>,
}

#[derive(Deserialize, Default)]
struct Done {
    done: Option<String>,
}

async fn visits_page(state: &AppState, p: &Patient, done: Option<&'static str>, problems: Vec<Problem>) -> Response {
    let t = p.t;
    let visits = match state.booking.appointments(p.caller()).await {
        Ok(v) => v,
        Err(e) => return failure(t, &e),
    };
    let frame = Frame::named(state, p, "visits").await;
    let bad = !problems.is_empty();
    form_page(VisitsPage { t, frame: &frame, visits, done, problems }.render(), bad)
}

async fn visits(State(state): State<AppState>, p: Patient, Query(d): Query<Done>) -> Response {
    let done = match d.done.as_deref() {
        Some("booked") => Some("portal-done-booked"),
        Some("moved") => Some("portal-done-moved"),
        Some("cancelled") => Some("portal-done-cancelled"),
        _ => None,
    };
    visits_page(&state, &p, done, Vec::new()).await
}

async fn cancel(
    State(state): State<AppState>,
    p: Patient,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let t = p.t;
    if !p.csrf_ok(&form_value(&form, "csrf")) {
        return crate::ui::render::forbidden(t);
    }
    match state.booking.cancel(p.caller(), &id).await {
        Ok(()) => see_other("/portal/visits?done=cancelled"),
        Err(PortalError::Invalid(errors)) => visits_page(&state, &p, None, problems(t, &errors)).await,
        Err(e) => failure(t, &e),
    }
}
