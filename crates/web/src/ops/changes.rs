//! The service desk's problems and changes: a problem opened from an incident, the
//! incidents it explains, its root cause and workaround (a known error); a change
//! request with its risk and back-out plan, what it affects from the CMDB (business
//! systems and campuses), the board's decisions, scheduling once approved, the outcome
//! and the post-implementation review; the change calendar of a month with its
//! conflicts; and the change board (named per class by the IT manager). The rules live
//! in [`lianyi_ops::problems`] and [`lianyi_ops::changes`].

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use lianyi_ops::changes::{CLASSES, ChangeForm, OUTCOMES, RISKS, parse_local};
use lianyi_ops::desk::DeskError;
use lianyi_ops::problems::{Analysis, ProblemForm};
use lianyi_store::changes::Change;
use lianyi_store::problems::Problem;
use serde::Deserialize;

use super::desk::{error_rows, may_work};
use super::failed;
use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, form_value, form_values, local_time, not_found, page, see_other};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, campus_name, shell};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/ops/problems", get(problems_page).post(open_problem))
        .route("/ops/problems/{id}", get(problem_page))
        .route("/ops/problems/{id}/{action}", post(problem_act))
        .route("/ops/changes", get(changes_page).post(request_change))
        .route("/ops/changes/new", get(new_change_page))
        .route("/ops/changes/calendar", get(calendar_page))
        .route("/ops/changes/board", post(set_board))
        .route("/ops/changes/{id}", get(change_page))
        .route("/ops/changes/{id}/{action}", post(change_act))
}

/// Where a failed action goes: the forbidden and not-found pages, or the form again.
enum Failure {
    Page(Response),
    Form(Vec<(String, String)>),
}

fn failure(t: Tr, what: &str, e: DeskError) -> Failure {
    match e {
        DeskError::Forbidden(_) => Failure::Page(forbidden(t)),
        DeskError::NotFound => Failure::Page(not_found(t)),
        e @ (DeskError::Invalid(_) | DeskError::Changed) => Failure::Form(error_rows(t, &e)),
        e => Failure::Page(failed(t, what, e)),
    }
}

// ---- Problems -------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "ops/problems.html")]
struct ProblemsPage<'a> {
    t: Tr,
    shell: &'a Shell,
    open: bool,
    rows: Vec<Problem>,
    next: Option<i64>,
    form: ProblemForm,
    errors: Vec<(String, String)>,
}

#[derive(Deserialize, Default)]
struct ListQuery {
    all: Option<String>,
    before: Option<i64>,
}

const PAGE: i64 = 50;

async fn render_problems(
    state: &AppState,
    s: &Signed,
    q: ListQuery,
    form: ProblemForm,
    errors: Vec<(String, String)>,
) -> Response {
    let (info, t) = (&s.info, s.t);
    let open = q.all.is_none();
    let rows = match state.problems.list(&info.caller, open, q.before, PAGE).await {
        Ok(r) => r,
        Err(DeskError::Forbidden(_)) => return forbidden(t),
        Err(e) => return failed(t, "problems", e),
    };
    let shell = shell(state, info, t, &s.headers).await;
    let next = (rows.len() as i64 == PAGE).then(|| rows.last().map(|p| p.id)).flatten();
    page(ProblemsPage { t, shell: &shell, open, rows, next, form, errors }.render())
}

async fn problems_page(State(state): State<AppState>, s: Signed, Query(q): Query<ListQuery>) -> Response {
    if !may_work(&s.info.caller) {
        return forbidden(s.t);
    }
    render_problems(&state, &s, q, ProblemForm::default(), Vec::new()).await
}

async fn open_problem(State(state): State<AppState>, s: Signed, Form(f): Form<Vec<(String, String)>>) -> Response {
    let value = |k: &str| form_value(&f, k);
    if !s.csrf_ok(&value("csrf")) || !may_work(&s.info.caller) {
        return forbidden(s.t);
    }
    let form = ProblemForm {
        title: value("title"),
        description: value("description"),
        ticket: value("ticket"),
        priority: value("priority"),
        support_group: value("support_group"),
    };
    match state.problems.open(&s.info.caller, &form).await {
        Ok(id) => see_other(&format!("/ops/problems/{id}?done=opened")),
        Err(e) => match failure(s.t, "problem", e) {
            Failure::Page(r) => r,
            Failure::Form(errors) => render_problems(&state, &s, ListQuery::default(), form, errors).await,
        },
    }
}

#[derive(Template)]
#[template(path = "ops/problem.html")]
struct ProblemPage<'a> {
    t: Tr,
    shell: &'a Shell,
    p: Problem,
    ci: Option<(String, String)>,
    group: String,
    opened: String,
    /// (id, title, status, opened)
    incidents: Vec<(i64, String, String, String)>,
    errors: Vec<(String, String)>,
    notice: Option<String>,
}

#[derive(Deserialize, Default)]
struct DoneQuery {
    done: Option<String>,
}

fn notice(t: Tr, prefix: &str, done: Option<String>) -> Option<String> {
    done.map(|d| format!("{prefix}-done-{d}")).filter(|k| t.try_get(k).is_some())
}

async fn render_problem(
    state: &AppState,
    s: &Signed,
    id: i64,
    errors: Vec<(String, String)>,
    notice: Option<String>,
) -> Response {
    let (info, t) = (&s.info, s.t);
    let card = match state.problems.card(&info.caller, id).await {
        Ok(c) => c,
        Err(e) => {
            return match failure(t, "problem", e) {
                Failure::Page(r) => r,
                Failure::Form(_) => crate::ui::render::server_error(Some(t)),
            };
        }
    };
    let shell = shell(state, info, t, &s.headers).await;
    let p = card.problem;
    page(
        ProblemPage {
            t,
            shell: &shell,
            ci: card.ci,
            group: t.named("cmdb-group", &p.support_group),
            opened: local_time(p.opened_at),
            incidents: card.incidents.into_iter().map(|i| (i.id, i.title, i.status, local_time(i.opened_at))).collect(),
            p,
            errors,
            notice,
        }
        .render(),
    )
}

async fn problem_page(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<i64>,
    Query(q): Query<DoneQuery>,
) -> Response {
    let notice = notice(s.t, "prb", q.done);
    render_problem(&state, &s, id, Vec::new(), notice).await
}

async fn problem_act(
    State(state): State<AppState>,
    s: Signed,
    Path((id, action)): Path<(i64, String)>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let value = |k: &str| form_value(&f, k);
    if !s.csrf_ok(&value("csrf")) {
        return forbidden(s.t);
    }
    let (caller, problems) = (&s.info.caller, &state.problems);
    let version = value("version").parse().unwrap_or(0);
    let done = match action.as_str() {
        "link" => problems.link(caller, id, version, &value("ticket")).await,
        "analyse" => {
            let a = Analysis {
                root_cause: value("root_cause"),
                workaround: value("workaround"),
                known_error: value("known_error") == "1",
            };
            problems.analyse(caller, id, version, &a).await
        }
        "resolve" => problems.resolve(caller, id, version).await,
        "close" => problems.close(caller, id, version).await,
        _ => return not_found(s.t),
    };
    match done {
        Ok(()) => see_other(&format!("/ops/problems/{id}?done={action}")),
        Err(e) => match failure(s.t, "problem action", e) {
            Failure::Page(r) => r,
            Failure::Form(errors) => render_problem(&state, &s, id, errors, None).await,
        },
    }
}

// ---- Changes ---------------------------------------------------------------------------

struct ChangeRow {
    id: i64,
    title: String,
    class: String,
    risk: String,
    status: String,
    window: String,
    requester: String,
}

fn window(c: &Change) -> String {
    let (s, e) = (local_time(c.window_start), local_time(c.window_end));
    if s[..10] == e[..10] { format!("{s}–{}", &e[11..]) } else { format!("{s} – {e}") }
}

fn row(c: Change) -> ChangeRow {
    ChangeRow {
        window: window(&c),
        id: c.id,
        title: c.title,
        class: c.class,
        risk: c.risk,
        status: c.status,
        requester: c.requester.trim_start_matches("user:").to_string(),
    }
}

#[derive(Template)]
#[template(path = "ops/changes.html")]
struct ChangesPage<'a> {
    t: Tr,
    shell: &'a Shell,
    rows: Vec<ChangeRow>,
    next: Option<i64>,
}

async fn changes_page(State(state): State<AppState>, s: Signed, Query(q): Query<ListQuery>) -> Response {
    let (info, t) = (&s.info, s.t);
    if !may_work(&info.caller) {
        return forbidden(t);
    }
    let rows = match state.changes.list(&info.caller, q.before, PAGE).await {
        Ok(r) => r,
        Err(DeskError::Forbidden(_)) => return forbidden(t),
        Err(e) => return failed(t, "changes", e),
    };
    let shell = shell(&state, info, t, &s.headers).await;
    let next = (rows.len() as i64 == PAGE).then(|| rows.last().map(|c| c.id)).flatten();
    page(ChangesPage { t, shell: &shell, rows: rows.into_iter().map(row).collect(), next }.render())
}

#[derive(Template)]
#[template(path = "ops/change_new.html")]
struct NewChangePage<'a> {
    t: Tr,
    shell: &'a Shell,
    form: ChangeForm,
    classes: &'static [&'static str],
    risks: &'static [&'static str],
    /// (code, name) of CIs to choose from.
    cis: Vec<(String, String)>,
    errors: Vec<(String, String)>,
}

async fn render_new_change(state: &AppState, s: &Signed, form: ChangeForm, errors: Vec<(String, String)>) -> Response {
    let (info, t) = (&s.info, s.t);
    let shell = shell(state, info, t, &s.headers).await;
    let cis = state.cmdb.pick(&info.caller, "", 500).await.unwrap_or_default();
    page(
        NewChangePage {
            t,
            shell: &shell,
            form,
            classes: &CLASSES,
            risks: &RISKS,
            cis: cis.into_iter().map(|c| (c.code, c.name)).collect(),
            errors,
        }
        .render(),
    )
}

#[derive(Deserialize, Default)]
struct NewQuery {
    ci: Option<String>,
}

async fn new_change_page(State(state): State<AppState>, s: Signed, Query(q): Query<NewQuery>) -> Response {
    if !may_work(&s.info.caller) {
        return forbidden(s.t);
    }
    let form = ChangeForm {
        class: "normal".into(),
        risk: "medium".into(),
        cis: q.ci.into_iter().collect(),
        ..Default::default()
    };
    render_new_change(&state, &s, form, Vec::new()).await
}

async fn request_change(State(state): State<AppState>, s: Signed, Form(f): Form<Vec<(String, String)>>) -> Response {
    let value = |k: &str| form_value(&f, k);
    if !s.csrf_ok(&value("csrf")) || !may_work(&s.info.caller) {
        return forbidden(s.t);
    }
    // The items come one per field, or several in one field separated by commas.
    let cis = form_values(&f, "ci")
        .iter()
        .flat_map(|v| v.split([',', '，', ' ', ';']).map(str::to_string).collect::<Vec<_>>())
        .filter(|c| !c.trim().is_empty())
        .collect();
    let form = ChangeForm {
        title: value("title"),
        description: value("description"),
        class: value("class"),
        risk: value("risk"),
        backout_plan: value("backout_plan"),
        window_start: value("window_start"),
        window_end: value("window_end"),
        cis,
    };
    match state.changes.request(&s.info.caller, &form).await {
        Ok(id) => see_other(&format!("/ops/changes/{id}?done=requested")),
        Err(e) => match failure(s.t, "change", e) {
            Failure::Page(r) => r,
            Failure::Form(errors) => render_new_change(&state, &s, form, errors).await,
        },
    }
}

#[derive(Template)]
#[template(path = "ops/change.html")]
struct ChangePage<'a> {
    t: Tr,
    shell: &'a Shell,
    c: Change,
    window: String,
    /// The window as the form shows it.
    start: String,
    end: String,
    /// (id, code, name, class)
    cis: Vec<(i64, String, String, String)>,
    /// (id, name, class) of the business systems and clinical services affected.
    services: Vec<(i64, String, String)>,
    campuses: Vec<String>,
    /// (approver, decision, comment, when)
    approvals: Vec<(String, String, String, String)>,
    board: Vec<String>,
    waiting: Vec<String>,
    /// (id, title, window, shared items)
    conflicts: Vec<(i64, String, String, String)>,
    /// The caller sits on the board of its class and has not decided.
    may_decide: bool,
    outcomes: &'static [&'static str],
    errors: Vec<(String, String)>,
    notice: Option<String>,
}

/// `YYYY-MM-DDTHH:MM` in Beijing time, for a `datetime-local` field.
fn field_time(ms: i64) -> String {
    local_time(ms).replacen(' ', "T", 1)
}

async fn render_change(
    state: &AppState,
    s: &Signed,
    id: i64,
    errors: Vec<(String, String)>,
    notice: Option<String>,
) -> Response {
    let (info, t) = (&s.info, s.t);
    let card = match state.changes.card(&info.caller, id).await {
        Ok(c) => c,
        Err(e) => {
            return match failure(t, "change", e) {
                Failure::Page(r) => r,
                Failure::Form(_) => crate::ui::render::server_error(Some(t)),
            };
        }
    };
    let shell = shell(state, info, t, &s.headers).await;
    let mut campuses = Vec::new();
    for c in &card.affected.campuses {
        campuses.push(campus_name(state, c, t).await);
    }
    let me = info.caller.actor().trim_start_matches("user:");
    let may_decide = card.waiting.iter().any(|u| u == me);
    let c = card.change;
    page(
        ChangePage {
            t,
            shell: &shell,
            window: window(&c),
            start: field_time(c.window_start),
            end: field_time(c.window_end),
            cis: card.cis.into_iter().map(|ci| (ci.id, ci.code, ci.name, ci.class)).collect(),
            services: card.affected.services.into_iter().map(|ci| (ci.id, ci.name, ci.class)).collect(),
            campuses,
            approvals: card
                .approvals
                .into_iter()
                .map(|a| {
                    (
                        a.approver.trim_start_matches("user:").to_string(),
                        a.decision,
                        a.comment.unwrap_or_default(),
                        local_time(a.at),
                    )
                })
                .collect(),
            board: card.board,
            waiting: card.waiting,
            conflicts: card
                .conflicts
                .into_iter()
                .map(|x| (x.other.id, x.other.title.clone(), window(&x.other), x.shared.join("、")))
                .collect(),
            may_decide,
            outcomes: &OUTCOMES,
            c,
            errors,
            notice,
        }
        .render(),
    )
}

async fn change_page(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<i64>,
    Query(q): Query<DoneQuery>,
) -> Response {
    let notice = notice(s.t, "chg", q.done);
    render_change(&state, &s, id, Vec::new(), notice).await
}

async fn change_act(
    State(state): State<AppState>,
    s: Signed,
    Path((id, action)): Path<(i64, String)>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let value = |k: &str| form_value(&f, k);
    if !s.csrf_ok(&value("csrf")) {
        return forbidden(s.t);
    }
    let (caller, changes) = (&s.info.caller, &state.changes);
    let version = value("version").parse().unwrap_or(0);
    let done = match action.as_str() {
        "approve" => changes.decide(caller, id, version, true, &value("comment")).await,
        "reject" => changes.decide(caller, id, version, false, &value("comment")).await,
        "schedule" => changes.schedule(caller, id, version, &value("window_start"), &value("window_end")).await,
        "implement" => changes.implement(caller, id, version, &value("outcome"), &value("note")).await,
        "review" => changes.review(caller, id, version, &value("review")).await,
        "cancel" => changes.cancel(caller, id, version).await,
        _ => return not_found(s.t),
    };
    match done {
        Ok(()) => see_other(&format!("/ops/changes/{id}?done={action}")),
        Err(e) => match failure(s.t, "change action", e) {
            Failure::Page(r) => r,
            Failure::Form(errors) => render_change(&state, &s, id, errors, None).await,
        },
    }
}

// ---- The change calendar -----------------------------------------------------------------

struct Day {
    date: String,
    weekday: usize,
    /// (id, title, window, status, conflicting ids)
    changes: Vec<(i64, String, String, String, String)>,
}

#[derive(Template)]
#[template(path = "ops/calendar.html")]
struct CalendarPage<'a> {
    t: Tr,
    shell: &'a Shell,
    month: String,
    previous: String,
    following: String,
    days: Vec<Day>,
    empty: bool,
    conflicts: usize,
}

#[derive(Deserialize, Default)]
struct MonthQuery {
    month: Option<String>,
}

/// The month after (or before) `YYYY-MM`.
fn step(year: i64, month: i64, by: i64) -> (i64, i64) {
    let m = year * 12 + month - 1 + by;
    (m.div_euclid(12), m.rem_euclid(12) + 1)
}

async fn calendar_page(State(state): State<AppState>, s: Signed, Query(q): Query<MonthQuery>) -> Response {
    let (info, t) = (&s.info, s.t);
    if !may_work(&info.caller) {
        return forbidden(t);
    }
    let today = local_time(state.fhir.now_ms());
    let month = q.month.filter(|m| parse_local(&format!("{m}-01 00:00")).is_some()).unwrap_or(today[..7].to_string());
    let (year, mon): (i64, i64) = (month[..4].parse().unwrap_or(1970), month[5..7].parse().unwrap_or(1));
    let (ny, nm) = step(year, mon, 1);
    let (py, pm) = step(year, mon, -1);
    let first = parse_local(&format!("{month}-01 00:00")).unwrap_or_default();
    let end = parse_local(&format!("{ny:04}-{nm:02}-01 00:00")).unwrap_or(first);
    let changes = match state.changes.calendar(&info.caller, first, end).await {
        Ok(c) => c,
        Err(DeskError::Forbidden(_)) => return forbidden(t),
        Err(e) => return failed(t, "change calendar", e),
    };
    let conflicts = changes.iter().filter(|(_, with)| !with.is_empty()).count();
    let mut days = Vec::new();
    let mut at = first;
    while at < end {
        let next = at + 86_400_000;
        let date = local_time(at)[..10].to_string();
        // 1970-01-01 was a Thursday.
        let weekday = ((at + 8 * 3_600_000).div_euclid(86_400_000) + 3).rem_euclid(7) as usize;
        let on: Vec<_> = changes
            .iter()
            .filter(|(c, _)| c.window_start < next && c.window_end > at)
            .map(|(c, with)| {
                let with: Vec<String> = with.iter().map(|i| format!("#{i}")).collect();
                (c.id, c.title.clone(), window(c), c.status.clone(), with.join(" "))
            })
            .collect();
        days.push(Day { date, weekday, changes: on });
        at = next;
    }
    let shell = shell(&state, info, t, &s.headers).await;
    page(
        CalendarPage {
            t,
            shell: &shell,
            month,
            previous: format!("{py:04}-{pm:02}"),
            following: format!("{ny:04}-{nm:02}"),
            empty: changes.is_empty(),
            days,
            conflicts,
        }
        .render(),
    )
}

// ---- The change board (on the support groups page) ----------------------------------------

async fn set_board(State(state): State<AppState>, s: Signed, Form(f): Form<Vec<(String, String)>>) -> Response {
    let value = |k: &str| form_value(&f, k);
    if !s.csrf_ok(&value("csrf")) || !may_work(&s.info.caller) {
        return forbidden(s.t);
    }
    let member = value("remove") != "1";
    match state.changes.set_board(&s.info.caller, &value("class"), &value("username"), member).await {
        Ok(()) => see_other("/ops/groups"),
        Err(e) => match failure(s.t, "change board", e) {
            Failure::Page(r) => r,
            Failure::Form(errors) => super::desk::render_groups(&state, &s, errors).await,
        },
    }
}
