//! The SLA settings page: the priority matrix, each priority's targets, the business
//! hours and the calendar (the built-in State Council schedule, with the days the IT
//! manager set over it). IT staff read it; the IT manager changes it. The rules live
//! in [`lianyi_ops::settings`].

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use lianyi_ops::desk::DeskError;
use lianyi_ops::settings::{SlaSettings, format_hours, parse_hours};
use lianyi_ops::sla::{CHINA, Turn};
use lianyi_security::roles::Capability;

use super::desk::{error_rows, may_work};
use super::failed;
use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, form_value, local_time, page, see_other};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, shell};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/ops/sla", get(sla_page).post(set_sla)).route("/ops/sla/days", post(set_day))
}

#[derive(Template)]
#[template(path = "ops/sla.html")]
struct SlaPage<'a> {
    t: Tr,
    shell: &'a Shell,
    s: SlaSettings,
    hours: String,
    /// The built-in schedule of this year and the next: (first, last, off, festival).
    schedule: Vec<(&'static str, &'static str, bool, String)>,
    may_manage: bool,
    errors: Vec<(String, String)>,
}

async fn render(state: &AppState, s: &Signed, shown: Option<SlaSettings>, errors: Vec<(String, String)>) -> Response {
    let (info, t) = (&s.info, s.t);
    let current = match state.desk.sla().await {
        Ok(x) => (*x.settings).clone(),
        Err(e) => return failed(t, "SLA settings", e),
    };
    let shown = shown.map(|x| SlaSettings { days: current.days.clone(), ..x }).unwrap_or(current);
    let year: i32 = local_time(state.fhir.now_ms())[..4].parse().unwrap_or(2026);
    let schedule = CHINA
        .iter()
        .filter(|(first, ..)| first[..4].parse::<i32>().is_ok_and(|y| y == year || y == year + 1))
        .map(|&(first, last, turn, festival)| {
            // The schedule names its festivals in Chinese; each has its English name.
            let name = festival.split('、').map(|f| t.named("sla-festival", f)).collect::<Vec<_>>().join(" / ");
            (first, last, turn == Turn::Off, name)
        })
        .collect();
    let shell = shell(state, info, t, &s.headers).await;
    page(
        SlaPage {
            t,
            shell: &shell,
            hours: format_hours(&shown.hours),
            s: shown,
            schedule,
            may_manage: info.caller.can(Capability::ManageIt),
            errors,
        }
        .render(),
    )
}

async fn sla_page(State(state): State<AppState>, s: Signed) -> Response {
    if !may_work(&s.info.caller) {
        return forbidden(s.t);
    }
    render(&state, &s, None, Vec::new()).await
}

async fn set_sla(State(state): State<AppState>, s: Signed, Form(f): Form<Vec<(String, String)>>) -> Response {
    let value = |k: &str| form_value(&f, k);
    if !s.csrf_ok(&value("csrf")) || !may_work(&s.info.caller) {
        return forbidden(s.t);
    }
    let number = |k: &str| value(k).trim().parse::<i64>().unwrap_or(0);
    let mut new = SlaSettings::default();
    for i in 0..3 {
        for j in 0..3 {
            new.matrix[i][j] = number(&format!("matrix-{}-{}", i + 1, j + 1));
        }
    }
    for (p, target) in new.targets.iter_mut().enumerate() {
        *target = (number(&format!("response-{}", p + 1)), number(&format!("resolution-{}", p + 1)));
    }
    let hours = match parse_hours(&value("hours")) {
        Ok(h) => h,
        Err(e) => {
            let errors = error_rows(s.t, &DeskError::Invalid(vec![e]));
            return render(&state, &s, Some(new), errors).await;
        }
    };
    new.hours = hours;
    match state.desk.set_sla(&s.info.caller, &new).await {
        Ok(()) => see_other("/ops/sla"),
        Err(DeskError::Forbidden(_)) => forbidden(s.t),
        Err(e @ DeskError::Invalid(_)) => {
            let errors = error_rows(s.t, &e);
            render(&state, &s, Some(new), errors).await
        }
        Err(e) => failed(s.t, "SLA settings", e),
    }
}

async fn set_day(State(state): State<AppState>, s: Signed, Form(f): Form<Vec<(String, String)>>) -> Response {
    let value = |k: &str| form_value(&f, k);
    if !s.csrf_ok(&value("csrf")) || !may_work(&s.info.caller) {
        return forbidden(s.t);
    }
    let note = value("note");
    let turn = match value("turn").as_str() {
        "off" => Some((false, note.as_str())),
        "on" => Some((true, note.as_str())),
        _ => None,
    };
    match state.desk.set_day(&s.info.caller, &value("day"), turn).await {
        Ok(()) => see_other("/ops/sla"),
        Err(DeskError::Forbidden(_)) => forbidden(s.t),
        Err(e @ DeskError::Invalid(_)) => {
            let errors = error_rows(s.t, &e);
            render(&state, &s, None, errors).await
        }
        Err(e) => failed(s.t, "SLA calendar", e),
    }
}
