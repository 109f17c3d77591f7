//! The service desk's pages: the short fault report any staff member fills in (campus
//! and location prefilled, the affected item chosen from the CMDB), the queues (mine,
//! my groups', all, the ones I reported), a ticket with its SLA clocks, history and
//! the actions its state allows, and the support groups' members. The rules live in
//! [`lianyi_ops::desk`].

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use lianyi_ops::desk::{CATEGORIES, Clock, Desk, DeskError, Report, View};
use lianyi_ops::sla::SlaState;
use lianyi_security::Caller;
use serde::Deserialize;

use super::failed;
use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, form_value, local_time, not_found, page, see_other};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, campus_name, shell};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/ops/report", get(report_page).post(report))
        .route("/ops/tickets", get(tickets_page))
        .route("/ops/tickets/{id}", get(ticket_page))
        .route("/ops/tickets/{id}/{action}", post(act))
        .route("/ops/groups", get(groups_page).post(set_member))
        .route("/ops/groups/hook", post(set_hook))
}

pub(super) fn may_report(c: &Caller) -> bool {
    Desk::may_report(c)
}

pub(super) fn may_work(c: &Caller) -> bool {
    Desk::may_work(c) && c.is_authenticated()
}

pub(super) fn error_rows(t: Tr, e: &DeskError) -> Vec<(String, String)> {
    match e {
        DeskError::Invalid(errors) => errors
            .iter()
            .map(|e| {
                let rule = t.try_get(&format!("desk-rule-{}", e.rule)).map_or(e.detail.clone(), str::to_string);
                (e.field.clone(), rule)
            })
            .collect(),
        DeskError::Changed => vec![("version".into(), t.get("desk-changed").to_string())],
        other => vec![("ticket".into(), other.to_string())],
    }
}

/// A clock for a page: (state code, due time, used percent).
fn clock(c: &Clock) -> (&'static str, String, i64) {
    let state = match c.state {
        SlaState::Running => "running",
        SlaState::Warning => "warning",
        SlaState::Breached => "breached",
        SlaState::Paused => "paused",
        SlaState::Met => "met",
    };
    let used = if c.target_ms > 0 { c.elapsed_ms * 100 / c.target_ms } else { 0 };
    (state, c.due.map(local_time).unwrap_or_default(), used)
}

// ---- Reporting a fault ---------------------------------------------------------------

#[derive(Template)]
#[template(path = "ops/report.html")]
struct ReportPage<'a> {
    t: Tr,
    shell: &'a Shell,
    form: Report,
    phone: bool,
    categories: Vec<(String, bool)>,
    /// (code, name) of in-service CIs, the caller's campus first.
    cis: Vec<(String, String)>,
    errors: Vec<(String, String)>,
    /// Articles matching the title and details typed so far (htmx refreshes them).
    suggested: super::kb::Suggested,
}

async fn render_report(state: &AppState, s: &Signed, form: Report, errors: Vec<(String, String)>) -> Response {
    let (info, t) = (&s.info, s.t);
    let shell = shell(state, info, t, &s.headers).await;
    let cis = state.cmdb.pick(&info.caller, "", 200).await.unwrap_or_default();
    let mut form = form;
    if form.campus.is_empty() {
        form.campus = shell.campus.as_ref().map(|c| c.as_str().to_string()).unwrap_or_default();
    }
    if form.location.is_empty() && form.title.is_empty() {
        form.location = shell.campus_name.clone();
    }
    let suggested = if form.title.trim().is_empty() {
        Vec::new()
    } else {
        super::kb::suggested_for(state, &info.caller, &format!("{} {}", form.title, form.description)).await
    };
    page(
        ReportPage {
            t,
            shell: &shell,
            phone: may_work(&info.caller),
            categories: CATEGORIES.iter().map(|(c, _)| (c.to_string(), *c == form.category)).collect(),
            cis: cis.into_iter().map(|c| (c.code, c.name)).collect(),
            form,
            errors,
            suggested,
        }
        .render(),
    )
}

async fn report_page(State(state): State<AppState>, s: Signed) -> Response {
    if !may_report(&s.info.caller) {
        return forbidden(s.t);
    }
    render_report(&state, &s, Report { impact: "2".into(), urgency: "2".into(), ..Default::default() }, Vec::new())
        .await
}

async fn report(State(state): State<AppState>, s: Signed, Form(f): Form<Vec<(String, String)>>) -> Response {
    let value = |k: &str| form_value(&f, k);
    if !s.csrf_ok(&value("csrf")) || !may_report(&s.info.caller) {
        return forbidden(s.t);
    }
    let form = Report {
        title: value("title"),
        description: value("description"),
        category: value("category"),
        ci: value("ci"),
        campus: value("campus"),
        location: value("location"),
        impact: value("impact"),
        urgency: value("urgency"),
        caller_name: value("caller_name"),
    };
    match state.desk.report(&s.info.caller, &form).await {
        Ok(id) => see_other(&format!("/ops/tickets/{id}?done=reported")),
        Err(DeskError::Forbidden(_)) => forbidden(s.t),
        Err(e @ DeskError::Invalid(_)) => {
            let errors = error_rows(s.t, &e);
            render_report(&state, &s, form, errors).await
        }
        Err(e) => failed(s.t, "report", e),
    }
}

// ---- Queues ----------------------------------------------------------------------------

struct Row {
    id: i64,
    title: String,
    priority: i64,
    status: String,
    group: String,
    assignee: String,
    reporter: String,
    opened: String,
    clock: (&'static str, String, i64),
}

#[derive(Template)]
#[template(path = "ops/tickets.html")]
struct TicketsPage<'a> {
    t: Tr,
    shell: &'a Shell,
    view: &'static str,
    views: Vec<&'static str>,
    /// The words searched for ("" for none), and as a query value.
    search: String,
    search_encoded: String,
    rows: Vec<Row>,
    next: Option<i64>,
}

#[derive(Deserialize, Default)]
struct ListQuery {
    view: Option<String>,
    q: Option<String>,
    before: Option<i64>,
}

const PAGE: i64 = 50;

async fn tickets_page(State(state): State<AppState>, s: Signed, Query(q): Query<ListQuery>) -> Response {
    let (info, t) = (&s.info, s.t);
    if !may_report(&info.caller) {
        return forbidden(t);
    }
    let worker = may_work(&info.caller);
    let view = match (q.view.as_deref(), worker) {
        (Some("mine"), true) => View::Mine,
        (Some("all"), true) => View::All,
        (Some("reported"), _) | (_, false) => View::Reported,
        _ => View::Groups,
    };
    let search = q.q.clone().unwrap_or_default();
    let rows = match state.desk.list(&info.caller, view, &search, q.before, PAGE).await {
        Ok(r) => r,
        Err(DeskError::Forbidden(_)) => return forbidden(t),
        Err(e) => return failed(t, "tickets", e),
    };
    let shell = shell(&state, info, t, &s.headers).await;
    let next = (rows.len() as i64 == PAGE).then(|| rows.last().map(|(t, _)| t.id)).flatten();
    page(
        TicketsPage {
            t,
            shell: &shell,
            view: match view {
                View::Mine => "mine",
                View::Groups => "groups",
                View::All => "all",
                View::Reported => "reported",
            },
            views: if worker { vec!["groups", "mine", "all", "reported"] } else { vec!["reported"] },
            rows: rows
                .into_iter()
                .map(|(tk, c)| Row {
                    id: tk.id,
                    title: tk.title,
                    priority: tk.priority,
                    status: tk.status,
                    group: t.named("cmdb-group", &tk.support_group),
                    assignee: tk.assignee.map(|a| a.trim_start_matches("user:").to_string()).unwrap_or_default(),
                    reporter: tk.reporter_name,
                    opened: local_time(tk.opened_at),
                    clock: clock(&c),
                })
                .collect(),
            next,
            search_encoded: form_urlencoded::byte_serialize(search.as_bytes()).collect(),
            search,
        }
        .render(),
    )
}

// ---- A ticket ----------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "ops/ticket.html")]
struct TicketPage<'a> {
    t: Tr,
    shell: &'a Shell,
    tk: lianyi_store::desk::Ticket,
    campus: String,
    ci: Option<(String, String)>,
    group: String,
    opened: String,
    response: (&'static str, String, i64),
    resolution: (&'static str, String, i64),
    /// (when, who, kind, detail)
    events: Vec<(String, String, String, String)>,
    can_take: bool,
    can_work: bool,
    can_reassign: bool,
    is_reporter: bool,
    /// IT staff (they reopen, and close a phoned-in fault).
    is_it: bool,
    groups: Vec<(String, String)>,
    /// The problems it is linked to: (id, title, status).
    problems: Vec<(i64, String, String)>,
    errors: Vec<(String, String)>,
    notice: Option<String>,
    /// The IT team may write an article from a resolved or closed ticket.
    can_write_article: bool,
    /// Articles written from this ticket: (id, title).
    articles: Vec<(i64, String)>,
    /// For the IT team working it: articles matching the ticket (and, as htmx
    /// refreshes them, the resolution being typed).
    suggested: super::kb::Suggested,
}

#[derive(Deserialize, Default)]
struct DoneQuery {
    done: Option<String>,
}

async fn render_ticket(
    state: &AppState,
    s: &Signed,
    id: i64,
    errors: Vec<(String, String)>,
    notice: Option<String>,
) -> Response {
    let (info, t) = (&s.info, s.t);
    let card = match state.desk.card(&info.caller, id).await {
        Ok(c) => c,
        Err(DeskError::Forbidden(_)) => return forbidden(t),
        Err(DeskError::NotFound) => return not_found(t),
        Err(e) => return failed(t, "ticket", e),
    };
    let problems = if may_work(&info.caller) {
        match state.problems.of_incident(&info.caller, id).await {
            Ok(p) => p.into_iter().map(|p| (p.id, p.title, p.status)).collect(),
            Err(e) => return failed(t, "ticket problems", e),
        }
    } else {
        Vec::new()
    };
    let shell = shell(state, info, t, &s.headers).await;
    let tk = card.ticket;
    let open = matches!(tk.status.as_str(), "new" | "assigned" | "pending");
    let mine = tk.assignee.as_deref() == Some(info.caller.actor());
    let manager = info.caller.can(lianyi_security::roles::Capability::ManageIt);
    let campus = match &tk.campus {
        Some(c) => campus_name(state, c, t).await,
        None => String::new(),
    };
    let it = may_work(&info.caller);
    let articles = if it {
        let source = lianyi_ops::kb::Source::Incident(tk.id);
        state.kb.written_from(&info.caller, source).await.unwrap_or_default()
    } else {
        Vec::new()
    };
    // Resolved too: an article it suggests may be improved from the ticket.
    let suggested = if it {
        super::kb::suggested_for(state, &info.caller, &format!("{} {}", tk.title, tk.description)).await
    } else {
        Vec::new()
    };
    page(
        TicketPage {
            t,
            shell: &shell,
            campus,
            ci: card.ci,
            group: t.named("cmdb-group", &tk.support_group),
            opened: local_time(tk.opened_at),
            response: clock(&card.response),
            resolution: clock(&card.resolution),
            events: card
                .events
                .iter()
                .map(|e| {
                    (
                        local_time(e.at),
                        e.actor.trim_start_matches("user:").to_string(),
                        e.kind.clone(),
                        match (e.minutes, &e.detail) {
                            (Some(m), Some(d)) => format!("{m} min · {d}"),
                            (Some(m), None) => format!("{m} min"),
                            (None, d) => d.clone().unwrap_or_default(),
                        },
                    )
                })
                .collect(),
            can_take: may_work(&info.caller) && open && !mine,
            can_work: may_work(&info.caller) && open && (mine || manager),
            can_reassign: may_work(&info.caller) && open,
            is_reporter: tk.reporter == info.caller.actor(),
            is_it: may_work(&info.caller),
            groups: lianyi_ops::cmdb::GROUPS.iter().map(|g| (g.to_string(), t.named("cmdb-group", g))).collect(),
            problems,
            can_write_article: it && matches!(tk.status.as_str(), "resolved" | "closed"),
            articles: articles.into_iter().map(|a| (a.id, a.title)).collect(),
            suggested,
            tk,
            errors,
            notice,
        }
        .render(),
    )
}

async fn ticket_page(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<i64>,
    Query(q): Query<DoneQuery>,
) -> Response {
    let notice = q.done.map(|d| format!("desk-done-{d}")).filter(|k| s.t.try_get(k).is_some());
    render_ticket(&state, &s, id, Vec::new(), notice).await
}

async fn act(
    State(state): State<AppState>,
    s: Signed,
    Path((id, action)): Path<(i64, String)>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let value = |k: &str| form_value(&f, k);
    if !s.csrf_ok(&value("csrf")) {
        return forbidden(s.t);
    }
    let (caller, desk) = (&s.info.caller, &state.desk);
    let version = value("version").parse().unwrap_or(0);
    let done = match action.as_str() {
        "take" => desk.take(caller, id, version).await,
        "reassign" => desk.reassign(caller, id, version, &value("support_group"), &value("engineer")).await,
        "pause" => desk.pause(caller, id, version, &value("reason")).await,
        "resume" => desk.resume(caller, id, version).await,
        "resolve" => desk.resolve(caller, id, version, &value("resolution"), &value("minutes")).await,
        "work" => desk.log_work(caller, id, version, &value("minutes"), &value("note")).await,
        "reopen" => desk.reopen(caller, id, version, &value("reason")).await,
        "close" => desk.close(caller, id, version, &value("satisfaction")).await,
        _ => return not_found(s.t),
    };
    match done {
        Ok(()) => see_other(&format!("/ops/tickets/{id}?done={action}")),
        Err(DeskError::Forbidden(_)) => forbidden(s.t),
        Err(DeskError::NotFound) => not_found(s.t),
        Err(e @ (DeskError::Invalid(_) | DeskError::Changed)) => {
            let errors = error_rows(s.t, &e);
            render_ticket(&state, &s, id, errors, None).await
        }
        Err(e) => failed(s.t, "ticket action", e),
    }
}

// ---- Support groups ----------------------------------------------------------------------

/// A group's members: (username, lead).
type Members = Vec<(String, bool)>;

/// (group code, group name, members) per group.
#[derive(Template)]
#[template(path = "ops/groups.html")]
struct GroupsPage<'a> {
    t: Tr,
    shell: &'a Shell,
    groups: Vec<(String, String, Members)>,
    /// The change board: (class, approvers) for the classes that have one.
    board: Vec<(String, Vec<String>)>,
    may_manage: bool,
    errors: Vec<(String, String)>,
    /// Each group's webhook: (group code, group name, URL, set when, its latest post
    /// as (status, when, error)).
    hooks: Vec<HookRow>,
}

struct HookRow {
    code: String,
    name: String,
    url: String,
    updated: String,
    last: Option<(String, String, String)>,
}

pub(super) async fn render_groups(state: &AppState, s: &Signed, errors: Vec<(String, String)>) -> Response {
    let (info, t) = (&s.info, s.t);
    let members = match state.desk.members(&info.caller).await {
        Ok(m) => m,
        Err(DeskError::Forbidden(_)) => return forbidden(t),
        Err(e) => return failed(t, "groups", e),
    };
    let named = match state.changes.board(&info.caller).await {
        Ok(b) => b,
        Err(e) => return failed(t, "change board", e),
    };
    let board = lianyi_ops::changes::CLASSES[1..]
        .iter()
        .map(|c| (c.to_string(), named.iter().filter(|(k, _)| k == c).map(|(_, u)| u.clone()).collect()))
        .collect();
    let shell = shell(state, info, t, &s.headers).await;
    let groups = lianyi_ops::cmdb::GROUPS
        .iter()
        .map(|g| {
            let list = members.iter().filter(|(mg, _, _)| mg == g).map(|(_, u, l)| (u.clone(), *l)).collect();
            (g.to_string(), t.named("cmdb-group", g), list)
        })
        .collect();
    let may_manage = info.caller.can(lianyi_security::roles::Capability::ManageIt);
    let hooks = match state.hooks.list(&info.caller).await {
        Ok(h) => h
            .into_iter()
            .map(|h| HookRow {
                name: t.named("cmdb-group", &h.support_group),
                code: h.support_group,
                url: h.url,
                updated: local_time(h.updated_at),
                last: h.recent.first().map(|d| {
                    let when = local_time(d.sent_at.unwrap_or(d.at));
                    (t.named("hook-status", &d.status), when, d.last_error.clone().unwrap_or_default())
                }),
            })
            .collect(),
        Err(e) => return failed(t, "group webhooks", e),
    };
    page(GroupsPage { t, shell: &shell, groups, board, may_manage, errors, hooks }.render())
}

async fn groups_page(State(state): State<AppState>, s: Signed) -> Response {
    if !may_work(&s.info.caller) {
        return forbidden(s.t);
    }
    render_groups(&state, &s, Vec::new()).await
}

/// Sets or removes a support group's webhook (the IT manager).
async fn set_hook(State(state): State<AppState>, s: Signed, Form(f): Form<Vec<(String, String)>>) -> Response {
    let value = |k: &str| form_value(&f, k);
    if !s.csrf_ok(&value("csrf")) || !may_work(&s.info.caller) {
        return forbidden(s.t);
    }
    let group = value("support_group");
    let done = if value("remove") == "1" {
        state.hooks.remove(&s.info.caller, &group).await
    } else {
        state.hooks.set(&s.info.caller, &group, &value("url"), &value("secret")).await
    };
    groups_answer(&state, &s, done, "group webhook").await
}

async fn set_member(State(state): State<AppState>, s: Signed, Form(f): Form<Vec<(String, String)>>) -> Response {
    let value = |k: &str| form_value(&f, k);
    if !s.csrf_ok(&value("csrf")) || !may_work(&s.info.caller) {
        return forbidden(s.t);
    }
    let (group, user) = (value("support_group"), value("username"));
    let done = if value("remove") == "1" {
        state.desk.remove_member(&s.info.caller, &group, &user).await
    } else {
        state.desk.set_member(&s.info.caller, &group, &user, value("lead") == "1").await
    };
    groups_answer(&state, &s, done, "group member").await
}

/// After a change on the groups page: back to it, or the page again with the broken
/// rules named.
async fn groups_answer(state: &AppState, s: &Signed, done: Result<(), DeskError>, what: &str) -> Response {
    match done {
        Ok(()) => see_other("/ops/groups"),
        Err(DeskError::Forbidden(_)) => forbidden(s.t),
        Err(e @ DeskError::Invalid(_)) => {
            let errors = error_rows(s.t, &e);
            render_groups(state, s, errors).await
        }
        Err(DeskError::NotFound) => not_found(s.t),
        Err(e) => failed(s.t, what, e),
    }
}
