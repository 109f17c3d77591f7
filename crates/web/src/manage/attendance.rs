//! The attendance page (`/manage/attendance`, 考勤): a department's rostered shifts of
//! a month beside the clock-machine punches — on time, late or early by so many
//! minutes, one clock only, absent — and, for the campus's managers, the import of a
//! clock machine's CSV file (staff number, time). A file with a bad row is refused
//! whole, each bad row named by its line.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use lianyi_manage::attendance::Standing;
use lianyi_manage::rosters::RosterError;
use serde::Deserialize;

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, form_value, page, see_other};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, shell};

use super::rosters::{chosen, csrf_ok, may_keep_types, may_open, pick, step, urlencode};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/manage/attendance", get(show).post(import))
}

#[derive(Deserialize, Default)]
struct Shown {
    department: Option<String>,
    month: Option<String>,
    done: Option<String>,
}

struct Row {
    day: String,
    person: String,
    shift: String,
    hours: String,
    punches: String,
    standing: String,
    /// `ok`, `off`, `absent` or `upcoming`, for the row's colour.
    class: &'static str,
}

#[derive(Template)]
#[template(path = "manage/attendance.html")]
struct AttendancePage<'a> {
    t: Tr,
    shell: &'a Shell,
    departments: Vec<(String, String)>,
    department: String,
    month: String,
    previous: String,
    next: String,
    rows: Vec<Row>,
    may_import: bool,
    /// (campus id, name) the import may be for.
    campus: String,
    csv: String,
    errors: Vec<String>,
    done: Option<String>,
}

fn clock(ms: i64) -> String {
    lianyi_clinical::scheduling::local_instant(ms).get(11..16).unwrap_or_default().to_string()
}

fn worded(t: Tr, s: Standing) -> (String, &'static str) {
    match s {
        Standing::Upcoming => (t.get("att-upcoming").to_string(), "upcoming"),
        Standing::Present => (t.get("att-present").to_string(), "ok"),
        Standing::Off { late, early } => {
            let key = match (late > 0, early > 0) {
                (true, true) => "att-late-early",
                (true, false) => "att-late",
                _ => "att-early",
            };
            (t.get(key).replace("{late}", &late.to_string()).replace("{early}", &early.to_string()), "off")
        }
        Standing::OneClock { arrived: true } => (t.get("att-no-out").to_string(), "off"),
        Standing::OneClock { arrived: false } => (t.get("att-no-in").to_string(), "off"),
        Standing::Absent => (t.get("att-absent").to_string(), "absent"),
    }
}

async fn render(
    state: &AppState,
    s: &Signed,
    department: Option<String>,
    month: Option<String>,
    csv: String,
    errors: Vec<String>,
    done: Option<String>,
) -> Response {
    let t = s.t;
    let caller = &s.info.caller;
    let departments = state.rosters.departments(caller).await.unwrap_or_default();
    let (department, month) = chosen(state, &departments, department, month);
    let campus = departments.iter().find(|d| d.id == department).map(|d| d.campus.clone()).unwrap_or_default();
    let mut errors = errors;
    let mut rows = Vec::new();
    if !department.is_empty() {
        match state.rosters.attendance(caller, &department, &month).await {
            Ok((m, worked)) => {
                let names: Vec<(String, String)> = m.members.into_iter().map(|p| (p.role, pick(t, &p.names))).collect();
                for w in worked {
                    let (standing, class) = worded(t, w.standing);
                    rows.push(Row {
                        day: w.shift.day.clone(),
                        person: names
                            .iter()
                            .find(|(r, _)| *r == w.shift.role)
                            .map_or_else(|| w.shift.role.clone(), |(_, n)| n.clone()),
                        shift: w.shift.shift.clone(),
                        hours: format!("{}–{}", clock(w.shift.starts_at), clock(w.shift.ends_at)),
                        punches: w.punches.iter().map(|p| clock(*p)).collect::<Vec<_>>().join(" "),
                        standing,
                        class,
                    });
                }
            }
            Err(RosterError::Forbidden(_)) => return forbidden(t),
            Err(e) => {
                tracing::error!(error = %e, "attendance");
                errors.push(t.get("roster-failed").to_string());
            }
        }
    }
    let may_import = may_keep_types(caller) && !campus.is_empty();
    let options = departments.iter().map(|d| (d.id.clone(), pick(t, &d.names))).collect();
    let shell = shell(state, &s.info, t, &s.headers).await;
    page(
        AttendancePage {
            t,
            shell: &shell,
            departments: options,
            department,
            previous: step(&month, false),
            next: step(&month, true),
            month,
            rows,
            may_import,
            campus,
            csv,
            errors,
            done,
        }
        .render(),
    )
}

async fn show(State(state): State<AppState>, s: Signed, Query(q): Query<Shown>) -> Response {
    if !may_open(&s.info.caller) {
        return forbidden(s.t);
    }
    render(&state, &s, q.department, q.month, String::new(), Vec::new(), q.done).await
}

/// Imports a clock machine's CSV (`csrf`, `campus`, `department`, `month`, `csv`).
async fn import(
    State(state): State<AppState>,
    s: Signed,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !may_keep_types(&s.info.caller) || !csrf_ok(&s, &form) {
        return forbidden(s.t);
    }
    let (department, month, csv) =
        (form_value(&form, "department"), form_value(&form, "month"), form_value(&form, "csv"));
    let campus = form_value(&form, "campus");
    let t = s.t;
    match state.rosters.import_attendance(&s.info.caller, &campus, &csv, "page").await {
        Ok(done) => see_other(&format!(
            "/manage/attendance?department={}&month={}&done={}",
            urlencode(&department),
            urlencode(&month),
            done.new
        )),
        Err(RosterError::Forbidden(_)) => forbidden(t),
        Err(RosterError::Invalid(fields)) => {
            let errors = fields
                .iter()
                .map(|f| {
                    let (line, what) = f.detail.split_once(": ").unwrap_or(("", f.detail.as_str()));
                    t.get("att-row-error")
                        .replace("{line}", line)
                        .replace("{rule}", t.get(&format!("att-rule-{}", f.code)))
                        .replace("{value}", what)
                })
                .collect();
            render(&state, &s, Some(department), Some(month), csv, errors, None).await
        }
        Err(e) => {
            tracing::error!(error = %e, "attendance import");
            render(&state, &s, Some(department), Some(month), csv, vec![t.get("roster-failed").to_string()], None).await
        }
    }
}
