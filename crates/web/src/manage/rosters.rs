//! The roster pages. `/manage/rosters`: a department's month as a grid (its people by
//! the days of the month), where its head or a manager of its campus puts a person on
//! a shift or takes a shift off; a shift that breaks the rules is refused with the
//! conflict named (who is already where, or how little rest after a night). Staff of
//! the campus read it. `/manage/shift-types`: a campus's shift types and its rest rule,
//! kept by its managers. The rules, the checks and the audit are the rosters
//! service's ([`lianyi_manage::rosters::Rosters`]).

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use lianyi_manage::roster::Conflict;
use lianyi_manage::rosters::{Department, FieldError, Month, RosterError, ShiftTypeForm};
use lianyi_security::Caller;
use lianyi_security::roles::Capability;
use serde::Deserialize;

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, form_value, page, see_other};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, campus_name, shell};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/manage/rosters", get(month_page))
        .route("/manage/rosters/assign", post(assign))
        .route("/manage/rosters/{id}/remove", post(remove))
        .route("/manage/rosters/swaps", post(request_swap))
        .route("/manage/rosters/swaps/{id}/{decision}", post(decide_swap))
        .route("/manage/shift-types", get(types_page).post(save_type))
        .route("/manage/shift-types/rest", post(save_rest))
}

/// Staff read rosters; patients do not.
pub(super) fn may_open(c: &Caller) -> bool {
    c.kind() == lianyi_security::ActorKind::User && c.access().patient().is_none()
}

/// Managers keep shift types and rules (department heads keep rosters only).
pub(super) fn may_keep_types(c: &Caller) -> bool {
    c.can(Capability::ManageRosters) && c.role() != Some("department-head")
}

pub(super) fn csrf_ok(s: &Signed, form: &[(String, String)]) -> bool {
    lianyi_security::secrets::constant_time_eq(&s.info.csrf, &form_value(form, "csrf"))
}

pub(super) use crate::ui::render::urlencode;

#[derive(Deserialize, Default)]
struct MonthQuery {
    department: Option<String>,
    month: Option<String>,
    done: Option<String>,
    /// What a swap request's step did: `requested`, `approved` or `refused`.
    swap: Option<String>,
}

impl MonthQuery {
    /// The page of `department`'s `month`, after a refused change.
    fn of(department: String, month: String) -> MonthQuery {
        MonthQuery { department: Some(department), month: Some(month), ..MonthQuery::default() }
    }
}

/// A swap request as the roster page lists it.
struct SwapRow {
    id: i64,
    mine: String,
    theirs: String,
    by: String,
    reason: String,
    state: String,
    waiting: bool,
}

/// One cell's shift.
struct Cell {
    id: i64,
    code: String,
    kind: String,
    title: String,
}

struct Line {
    name: String,
    role: String,
    cells: Vec<Vec<Cell>>,
}

struct Day {
    date: String,
    number: String,
    weekday: &'static str,
    weekend: bool,
}

#[derive(Template)]
#[template(path = "manage/rosters.html")]
struct RostersPage<'a> {
    t: Tr,
    shell: &'a Shell,
    departments: Vec<(String, String)>,
    department: String,
    month: String,
    previous: String,
    next: String,
    campus: String,
    may_keep: bool,
    days: Vec<Day>,
    lines: Vec<Line>,
    /// (code, name, hours) of the campus's shift types.
    types: Vec<(String, String, String)>,
    draft: Draft,
    errors: Vec<String>,
    done: Option<String>,
    rest_hours: u32,
    swaps: Vec<SwapRow>,
    /// The caller's coming shifts they may offer, and the colleagues' they may ask
    /// for: (shift id, label).
    own_shifts: Vec<(i64, String)>,
    their_shifts: Vec<(i64, String)>,
    swap_done: Option<String>,
}

#[derive(Default)]
struct Draft {
    role: String,
    day: String,
    shift: String,
}

/// The department and month a page shows: the one asked for when the caller may see
/// it, else the first the caller keeps, else the first listed (empty when none); the
/// month asked for when it is one, else this month.
pub(super) fn chosen(
    state: &AppState,
    departments: &[Department],
    department: Option<String>,
    month: Option<String>,
) -> (String, String) {
    let department = department
        .filter(|d| departments.iter().any(|x| &x.id == d))
        .or_else(|| departments.iter().find(|d| d.may_keep).or(departments.first()).map(|d| d.id.clone()))
        .unwrap_or_default();
    let month = month
        .filter(|m| m.len() == 7 && lianyi_clinical::scheduling::local_midnight(&format!("{m}-01")).is_some())
        .unwrap_or_else(|| month_of(state.fhir.now_ms()));
    (department, month)
}

fn month_of(ms: i64) -> String {
    lianyi_clinical::scheduling::local_date(ms)[..7].to_string()
}

/// The month before or after `month` (`YYYY-MM`).
/// What a change did, in the page's words: the `done` of the address (`received`,
/// `scrap-approve`, `issued-12`) under the area's locale prefix (`mat-done-`), the
/// number filling `{id}`; anything else reads as saved.
pub(super) fn done_text(t: Tr, prefix: &str, done: &str) -> String {
    let (what, id) = done.rsplit_once('-').filter(|(_, n)| n.parse::<i64>().is_ok()).unwrap_or((done, ""));
    let what = if what.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') { what } else { "saved" };
    t.get(&format!("{prefix}{what}")).replace("{id}", id)
}

/// The campuses of `departments` (in their order) with their names, and the one
/// shown: `chosen` when it is among them, else `prefer`, else the first.
pub(super) async fn campus_choice(
    state: &AppState,
    t: Tr,
    departments: &[&Department],
    chosen: Option<String>,
    prefer: Option<String>,
) -> (Vec<(String, String)>, String) {
    let mut out: Vec<(String, String)> = Vec::new();
    for d in departments {
        if !out.iter().any(|(id, _)| *id == d.campus) {
            out.push((d.campus.clone(), crate::ui::shell::campus_name(state, &d.campus, t).await));
        }
    }
    let campus = chosen
        .filter(|c| out.iter().any(|(id, _)| id == c))
        .or(prefer)
        .or_else(|| out.first().map(|(id, _)| id.clone()))
        .unwrap_or_default();
    (out, campus)
}

pub(super) fn step(month: &str, forward: bool) -> String {
    let (y, m) = month.split_once('-').unwrap_or(("2000", "01"));
    let (y, m): (i32, i32) = (y.parse().unwrap_or(2000), m.parse().unwrap_or(1));
    let n = y * 12 + (m - 1) + if forward { 1 } else { -1 };
    format!("{:04}-{:02}", n.div_euclid(12), n.rem_euclid(12) + 1)
}

pub(super) fn pick(t: Tr, names: &lianyi_clinical::names::Names) -> String {
    t.pick(&names.zh, &names.en).clone()
}

/// A length of rest, in the page's words.
fn duration(t: Tr, minutes: i64) -> String {
    t.get("roster-duration").replace("{h}", &(minutes / 60).to_string()).replace("{m}", &(minutes % 60).to_string())
}

fn hhmm(minute: i64) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

const WEEKDAYS: [&str; 7] = ["wd-1", "wd-2", "wd-3", "wd-4", "wd-5", "wd-6", "wd-7"];

fn name_of(t: Tr, departments: &[Department], id: &str) -> String {
    departments.iter().find(|d| d.id == id).map_or_else(|| id.to_string(), |d| pick(t, &d.names))
}

/// A broken rule or a conflict, worded.
fn worded(t: Tr, e: &RosterError, departments: &[Department]) -> Vec<String> {
    let field = |f: &FieldError| {
        format!("{}: {}", t.get(&format!("roster-field-{}", f.field)), t.get(&format!("roster-rule-{}", f.code)))
    };
    match e {
        RosterError::Invalid(fs) => fs.iter().map(field).collect(),
        RosterError::Conflicts(cs) => cs
            .iter()
            .map(|c| match c {
                Conflict::Overlap(o) => t
                    .get("roster-conflict-overlap")
                    .replace("{date}", &o.date)
                    .replace("{shift}", &o.shift)
                    .replace("{department}", &name_of(t, departments, &o.department)),
                Conflict::Rest { after, minutes, required } => t
                    .get("roster-conflict-rest")
                    .replace("{date}", &after.date)
                    .replace("{shift}", &after.shift)
                    .replace("{rest}", &duration(t, *minutes))
                    .replace("{required}", &required.to_string()),
                Conflict::RestBefore { next, minutes, required } => t
                    .get("roster-conflict-rest-before")
                    .replace("{date}", &next.date)
                    .replace("{shift}", &next.shift)
                    .replace("{rest}", &duration(t, *minutes))
                    .replace("{required}", &required.to_string()),
            })
            .collect(),
        RosterError::Booked(n) => vec![t.get("roster-booked").replace("{n}", &n.to_string())],
        RosterError::Forbidden(_) => vec![t.get("roster-forbidden").to_string()],
        other => {
            tracing::error!(error = %other, "roster");
            vec![t.get("roster-failed").to_string()]
        }
    }
}

async fn render_month(
    state: &AppState,
    s: &Signed,
    shown: MonthQuery,
    draft: Draft,
    refusal: Option<RosterError>,
) -> Response {
    let MonthQuery { department, month, done, swap: swap_done } = shown;
    let t = s.t;
    let caller = &s.info.caller;
    let departments = match state.rosters.departments(caller).await {
        Ok(d) => d,
        Err(RosterError::Forbidden(_)) => return forbidden(t),
        Err(e) => {
            tracing::error!(error = %e, "roster departments");
            Vec::new()
        }
    };
    let (department, month) = chosen(state, &departments, department, month);
    let department = Some(department).filter(|d| !d.is_empty());
    // A refusal is worded with the departments' names, read once for the page.
    let mut errors = refusal.map(|e| worded(t, &e, &departments)).unwrap_or_default();
    let mut grid: Option<Month> = None;
    if let Some(d) = &department {
        match state.rosters.month(caller, d, &month).await {
            Ok(m) => grid = Some(m),
            Err(e) => errors.extend(worded(t, &e, &departments)),
        }
    }
    let may_keep = department.as_ref().is_some_and(|d| departments.iter().any(|x| &x.id == d && x.may_keep));
    let (mut days, mut lines, mut types, mut campus, mut rest_hours) =
        (Vec::new(), Vec::new(), Vec::new(), String::new(), 0);
    let (mut swaps, mut own_shifts, mut their_shifts) = (Vec::new(), Vec::new(), Vec::new());
    if let Some(m) = &grid {
        days = m
            .days
            .iter()
            .map(|d| {
                let wd = lianyi_clinical::scheduling::weekday(d).unwrap_or(1);
                Day {
                    date: d.clone(),
                    number: d[8..].trim_start_matches('0').to_string(),
                    weekday: WEEKDAYS[usize::from(wd.clamp(1, 7) - 1)],
                    weekend: wd >= 6,
                }
            })
            .collect();
        let type_name = |code: &str| {
            m.types.iter().find(|x| x.code == code).map_or_else(
                || code.to_string(),
                |x| {
                    let names = lianyi_clinical::names::Names { zh: x.name_zh.clone(), en: x.name_en.clone() };
                    format!("{} {}–{}", pick(t, &names), hhmm(x.start_minute), hhmm(x.end_minute))
                },
            )
        };
        lines = m
            .members
            .iter()
            .map(|p| Line {
                name: pick(t, &p.names),
                role: p.role.clone(),
                cells: m
                    .days
                    .iter()
                    .map(|d| {
                        m.shifts
                            .iter()
                            .filter(|x| &x.day == d && x.role == p.role)
                            .map(|x| Cell {
                                id: x.id,
                                code: x.shift.clone(),
                                kind: x.kind.clone(),
                                title: type_name(&x.shift),
                            })
                            .collect()
                    })
                    .collect(),
            })
            .collect();
        types = m
            .types
            .iter()
            .map(|x| {
                let names = lianyi_clinical::names::Names { zh: x.name_zh.clone(), en: x.name_en.clone() };
                (x.code.clone(), pick(t, &names), format!("{}–{}", hhmm(x.start_minute), hhmm(x.end_minute)))
            })
            .collect();
        campus = campus_name(state, &m.campus, t).await;
        rest_hours = state.rosters.rules(&m.campus).await.map(|r| r.rest_after_night_hours).unwrap_or(0);
        // Swaps: each shift labelled with its day, shift and person.
        let person =
            |role: &str| m.members.iter().find(|p| p.role == role).map(|p| pick(t, &p.names)).unwrap_or_default();
        let label =
            |x: &lianyi_store::rosters::RosterShift| format!("{} {} {}", x.day, type_name(&x.shift), person(&x.role));
        let (mine, theirs) = state.rosters.swap_choices(caller, &m.shifts).await;
        for x in &m.shifts {
            if mine.contains(&x.id) {
                own_shifts.push((x.id, label(x)));
            } else if theirs.contains(&x.id) {
                their_shifts.push((x.id, label(x)));
            }
        }
        if let Ok(list) = state.rosters.swaps(caller, &m.department).await {
            let shown =
                |x: &Option<lianyi_store::rosters::RosterShift>| x.as_ref().map(label).unwrap_or_else(|| "—".into());
            swaps = list
                .into_iter()
                .map(|v| SwapRow {
                    id: v.swap.id,
                    mine: shown(&v.a),
                    theirs: shown(&v.b),
                    by: v.swap.requested_by.clone(),
                    reason: v.swap.reason.clone().unwrap_or_default(),
                    state: t.get(&format!("roster-swap-{}", v.swap.status)).to_string(),
                    waiting: v.swap.status == "requested",
                })
                .collect();
        }
    }
    let options = departments.iter().map(|d| (d.id.clone(), pick(t, &d.names))).collect();
    let shell = shell(state, &s.info, t, &s.headers).await;
    page(
        RostersPage {
            t,
            shell: &shell,
            departments: options,
            department: department.unwrap_or_default(),
            previous: step(&month, false),
            next: step(&month, true),
            month,
            campus,
            may_keep,
            days,
            lines,
            types,
            draft,
            errors,
            done,
            rest_hours,
            swaps,
            own_shifts,
            their_shifts,
            swap_done: swap_done.map(|d| {
                t.get(&format!(
                    "roster-swap-done-{}",
                    if ["requested", "approved", "refused"].contains(&d.as_str()) { d.as_str() } else { "requested" }
                ))
                .to_string()
            }),
        }
        .render(),
    )
}

async fn month_page(State(state): State<AppState>, s: Signed, Query(q): Query<MonthQuery>) -> Response {
    if !may_open(&s.info.caller) {
        return forbidden(s.t);
    }
    render_month(&state, &s, q, Draft::default(), None).await
}

/// Puts a person on a shift (`csrf`, `department`, `month`, `role`, `day`, `shift`).
async fn assign(
    State(state): State<AppState>,
    s: Signed,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !may_open(&s.info.caller) || !csrf_ok(&s, &form) {
        return forbidden(s.t);
    }
    let (department, month) = (form_value(&form, "department"), form_value(&form, "month"));
    let draft =
        Draft { role: form_value(&form, "role"), day: form_value(&form, "day"), shift: form_value(&form, "shift") };
    match state.rosters.assign(&s.info.caller, &draft.role, &draft.day, &draft.shift).await {
        Ok(p) => see_other(&format!(
            "/manage/rosters?department={}&month={}&done={}",
            urlencode(&department),
            urlencode(&month),
            p.slots
        )),
        Err(RosterError::Forbidden(_)) => forbidden(s.t),
        Err(e) => render_month(&state, &s, MonthQuery::of(department, month), draft, Some(e)).await,
    }
}

/// Takes a shift off the roster (`csrf`, `department`, `month`).
async fn remove(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !may_open(&s.info.caller) || !csrf_ok(&s, &form) {
        return forbidden(s.t);
    }
    let (department, month) = (form_value(&form, "department"), form_value(&form, "month"));
    match state.rosters.remove(&s.info.caller, id).await {
        Ok(()) => {
            see_other(&format!("/manage/rosters?department={}&month={}", urlencode(&department), urlencode(&month)))
        }
        Err(RosterError::Forbidden(_)) => forbidden(s.t),
        Err(e) => render_month(&state, &s, MonthQuery::of(department, month), Draft::default(), Some(e)).await,
    }
}

#[derive(Deserialize, Default)]
struct TypesQuery {
    campus: Option<String>,
    done: Option<String>,
}

struct TypeRow {
    code: String,
    name_zh: String,
    name_en: String,
    kind: String,
    hours: String,
    slot_minutes: String,
}

#[derive(Template)]
#[template(path = "manage/shift_types.html")]
struct TypesPage<'a> {
    t: Tr,
    shell: &'a Shell,
    campuses: Vec<(String, String)>,
    campus: String,
    rows: Vec<TypeRow>,
    kinds: [&'static str; 4],
    draft: ShiftTypeForm,
    rest_hours: String,
    errors: Vec<String>,
    done: Option<String>,
}

async fn render_types(
    state: &AppState,
    s: &Signed,
    campus: Option<String>,
    draft: Option<ShiftTypeForm>,
    errors: Vec<String>,
    done: Option<String>,
) -> Response {
    let t = s.t;
    let caller = &s.info.caller;
    let mut campuses = Vec::new();
    for id in state.fhir.campuses().await.unwrap_or_default() {
        if caller.access().all_campuses().contains(&id) {
            let name = campus_name(state, &id, t).await;
            campuses.push((id, name));
        }
    }
    let campus = campus.filter(|c| campuses.iter().any(|(id, _)| id == c)).or_else(|| {
        caller.access().home_campus().map(|c| c.as_str().to_string()).or(campuses.first().map(|(id, _)| id.clone()))
    });
    let campus = campus.unwrap_or_default();
    let rows = state
        .rosters
        .types(caller, &campus)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|x| TypeRow {
            hours: format!("{}–{}", hhmm(x.start_minute), hhmm(x.end_minute)),
            slot_minutes: x.slot_minutes.map(|n| n.to_string()).unwrap_or_default(),
            code: x.code,
            name_zh: x.name_zh,
            name_en: x.name_en,
            kind: x.kind,
        })
        .collect();
    let rest_hours =
        state.rosters.rules(&campus).await.map(|r| r.rest_after_night_hours.to_string()).unwrap_or_default();
    let draft =
        draft.unwrap_or_else(|| ShiftTypeForm { campus: campus.clone(), kind: "day".into(), ..Default::default() });
    let shell = shell(state, &s.info, t, &s.headers).await;
    let kinds = ["day", "night", "on-call", "clinic"];
    page(TypesPage { t, shell: &shell, campuses, campus, rows, kinds, draft, rest_hours, errors, done }.render())
}

async fn types_page(State(state): State<AppState>, s: Signed, Query(q): Query<TypesQuery>) -> Response {
    if !may_keep_types(&s.info.caller) {
        return forbidden(s.t);
    }
    render_types(&state, &s, q.campus, None, Vec::new(), q.done).await
}

/// Adds or changes a shift type (`csrf`, `campus`, `code`, `name_zh`, `name_en`,
/// `kind`, `start`, `end`, `slot_minutes`).
async fn save_type(
    State(state): State<AppState>,
    s: Signed,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !may_keep_types(&s.info.caller) || !csrf_ok(&s, &form) {
        return forbidden(s.t);
    }
    let draft = ShiftTypeForm {
        campus: form_value(&form, "campus"),
        code: form_value(&form, "code"),
        name_zh: form_value(&form, "name_zh"),
        name_en: form_value(&form, "name_en"),
        kind: form_value(&form, "kind"),
        start: form_value(&form, "start"),
        end: form_value(&form, "end"),
        slot_minutes: form_value(&form, "slot_minutes"),
    };
    match state.rosters.put_type(&s.info.caller, &draft).await {
        Ok(x) => see_other(&format!("/manage/shift-types?campus={}&done={}", urlencode(&x.campus), urlencode(&x.code))),
        Err(RosterError::Forbidden(_)) => forbidden(s.t),
        Err(e) => {
            let errors = worded(s.t, &e, &[]);
            render_types(&state, &s, Some(draft.campus.clone()), Some(draft), errors, None).await
        }
    }
}

/// Sets a campus's rest after a night (`csrf`, `campus`, `rest_after_night_hours`).
async fn save_rest(
    State(state): State<AppState>,
    s: Signed,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !may_keep_types(&s.info.caller) || !csrf_ok(&s, &form) {
        return forbidden(s.t);
    }
    let campus = form_value(&form, "campus");
    match state.rosters.set_rest(&s.info.caller, &campus, &form_value(&form, "rest_after_night_hours")).await {
        Ok(_) => see_other(&format!("/manage/shift-types?campus={}&done=rest", urlencode(&campus))),
        Err(RosterError::Forbidden(_)) => forbidden(s.t),
        Err(e) => {
            let errors = worded(s.t, &e, &[]);
            render_types(&state, &s, Some(campus), None, errors, None).await
        }
    }
}

/// Asks to swap one's shift with a colleague's (`csrf`, `department`, `month`, `mine`,
/// `theirs`, `reason`).
async fn request_swap(
    State(state): State<AppState>,
    s: Signed,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !may_open(&s.info.caller) || !csrf_ok(&s, &form) {
        return forbidden(s.t);
    }
    let (department, month) = (form_value(&form, "department"), form_value(&form, "month"));
    let id = |k: &str| form_value(&form, k).parse::<i64>().unwrap_or(0);
    match state.rosters.request_swap(&s.info.caller, id("mine"), id("theirs"), &form_value(&form, "reason")).await {
        Ok(_) => see_other(&format!(
            "/manage/rosters?department={}&month={}&swap=requested",
            urlencode(&department),
            urlencode(&month)
        )),
        Err(RosterError::Forbidden(_)) => forbidden(s.t),
        Err(e) => render_month(&state, &s, MonthQuery::of(department, month), Draft::default(), Some(e)).await,
    }
}

/// Approves or refuses a swap request (`csrf`, `department`, `month`, `note`).
async fn decide_swap(
    State(state): State<AppState>,
    s: Signed,
    Path((id, decision)): Path<(i64, String)>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !may_open(&s.info.caller) || !csrf_ok(&s, &form) || !["approve", "refuse"].contains(&decision.as_str()) {
        return forbidden(s.t);
    }
    let (department, month) = (form_value(&form, "department"), form_value(&form, "month"));
    let approve = decision == "approve";
    match state.rosters.decide_swap(&s.info.caller, id, approve, &form_value(&form, "note")).await {
        Ok(()) => see_other(&format!(
            "/manage/rosters?department={}&month={}&swap={}",
            urlencode(&department),
            urlencode(&month),
            if approve { "approved" } else { "refused" }
        )),
        Err(RosterError::Forbidden(_)) => forbidden(s.t),
        Err(e) => render_month(&state, &s, MonthQuery::of(department, month), Draft::default(), Some(e)).await,
    }
}

#[cfg(test)]
mod tests {
    use super::step;

    #[test]
    fn months_step_across_years() {
        assert_eq!(step("2027-01", false), "2026-12");
        assert_eq!(step("2026-12", true), "2027-01");
        assert_eq!(step("2027-06", true), "2027-07");
    }
}
