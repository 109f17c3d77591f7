//! The clinic: registration and the patient page, scheduling and the queue, the
//! encounter workspace, results, printing, and the critical-value loop. Handlers
//! parse forms, call one service and render; the rules live in [`lianyi_clinical`].

mod critical;
mod encounter;
mod printing;
mod reads;
mod registration;
mod results;
mod scheduling;
mod search;

use axum::Router;
use lianyi_security::{Caller, Perm};

use crate::AppState;
use crate::ui::shell::{NavLink, Place, staff_may};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .merge(search::router())
        .merge(registration::router())
        .merge(scheduling::router())
        .merge(encounter::router())
        .merge(results::router())
        .merge(printing::router())
        .merge(critical::router())
}

/// The clinic's pages in the navigation.
pub(crate) const NAV: &[NavLink] = &[
    NavLink { href: "/patients", text: "nav-find", place: Place::Home, shown: search::may_find },
    NavLink {
        href: "/registration",
        text: "nav-registration",
        place: Place::Bar,
        shown: |c: &Caller| staff_may(c, "Patient", Perm::Create),
    },
    NavLink {
        href: "/scheduling",
        text: "nav-scheduling",
        place: Place::Bar,
        shown: |c: &Caller| staff_may(c, "Appointment", Perm::Create),
    },
    NavLink {
        href: "/queue",
        text: "nav-queue",
        place: Place::Bar,
        shown: |c: &Caller| staff_may(c, "Encounter", Perm::Search),
    },
    NavLink { href: "/results", text: "nav-results", place: Place::Bar, shown: results::may_report },
    NavLink {
        href: "/reports/critical-values",
        text: "nav-critical-report",
        place: Place::Bar,
        shown: |c: &Caller| staff_may(c, "Task", Perm::Search),
    },
];
