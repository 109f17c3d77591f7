//! The announcements pages (通知公告): what is addressed to the caller, unread first
//! marked (`/manage/notices`), with the publishing form for managers and department
//! heads; one announcement (`/manage/notices/{id}`), which records the read and shows
//! its publisher the read receipts — how many of the audience read it, who and when.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use lianyi_manage::announcements::{AUDIENCES, KINDS, NoticeError, NoticeForm, Notices, grant_in_audience};
use lianyi_security::Caller;
use lianyi_security::roles::Role;
use serde::Deserialize;

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, form_value, local_time, not_found, page, see_other};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, shell};

use super::rosters::{campus_choice, csrf_ok, may_open, pick};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/manage/notices", get(list).post(publish)).route("/manage/notices/{id}", get(open))
}

pub(super) fn may_read(c: &Caller) -> bool {
    may_open(c)
}

#[derive(Deserialize, Default)]
struct Shown {
    done: Option<String>,
}

struct Row {
    id: i64,
    kind: String,
    title: String,
    audience: String,
    when: String,
    read: bool,
    own: bool,
}

#[derive(Template)]
#[template(path = "manage/notices.html")]
struct ListPage<'a> {
    t: Tr,
    shell: &'a Shell,
    rows: Vec<Row>,
    unread: usize,
    may_publish: bool,
    kinds: Vec<(&'static str, String)>,
    audiences: Vec<(&'static str, String)>,
    campuses: Vec<(String, String)>,
    departments: Vec<(String, String)>,
    roles: Vec<(&'static str, String)>,
    form: NoticeForm,
    errors: Vec<String>,
    done: Option<String>,
}

/// Who an announcement is for, in the page's words.
async fn audience_text(
    state: &AppState,
    t: Tr,
    a: &lianyi_store::announcements::Announcement,
    departments: &[lianyi_manage::rosters::Department],
) -> String {
    let campus = match &a.campus {
        Some(c) => crate::ui::shell::campus_name(state, c, t).await,
        None => String::new(),
    };
    match a.audience.as_str() {
        "group" => t.get("notice-to-group").to_string(),
        "campus" => campus,
        "department" => {
            let d = a.department.as_deref().unwrap_or_default();
            departments
                .iter()
                .find(|x| x.id == d)
                .map_or_else(|| d.to_string(), |x| format!("{} · {campus}", pick(t, &x.names)))
        }
        _ => {
            let role = t.get(&format!("role-{}", a.role.as_deref().unwrap_or_default())).to_string();
            if campus.is_empty() { role } else { format!("{role} · {campus}") }
        }
    }
}

fn worded(t: Tr, e: &NoticeError) -> Vec<String> {
    match e {
        NoticeError::Invalid(fs) => fs
            .iter()
            .map(|f| {
                format!(
                    "{}: {}",
                    t.get(&format!("notice-field-{}", f.field)),
                    t.get(&format!("notice-rule-{}", f.code))
                )
            })
            .collect(),
        other => {
            tracing::error!(error = %other, "announcements");
            vec![t.get("notice-failed").to_string()]
        }
    }
}

async fn render_list(
    state: &AppState,
    s: &Signed,
    form: NoticeForm,
    errors: Vec<String>,
    done: Option<String>,
) -> Response {
    let t = s.t;
    let caller = &s.info.caller;
    let departments = state.rosters.departments(caller).await.unwrap_or_default();
    let notices = match state.notices.visible(caller).await {
        Ok(n) => n,
        Err(NoticeError::Forbidden(_)) => return forbidden(t),
        Err(e) => {
            tracing::error!(error = %e, "announcements");
            Vec::new()
        }
    };
    let mut rows = Vec::new();
    for n in &notices {
        rows.push(Row {
            id: n.notice.id,
            kind: t.get(&format!("notice-kind-{}", n.notice.kind)).to_string(),
            title: n.notice.title.clone(),
            audience: audience_text(state, t, &n.notice, &departments).await,
            when: local_time(n.notice.published_at),
            read: n.read,
            own: n.own,
        });
    }
    let unread = rows.iter().filter(|r| !r.read && !r.own).count();
    let all: Vec<&lianyi_manage::rosters::Department> = departments.iter().collect();
    let (campuses, _) = campus_choice(state, t, &all, None, None).await;
    let own = state.notices.own_departments(caller).await;
    let head = caller.role() == Some("department-head");
    let departments = departments
        .iter()
        .filter(|d| !head || own.contains(&d.id))
        .map(|d| (d.id.clone(), pick(t, &d.names)))
        .collect();
    let shell = shell(state, &s.info, t, &s.headers).await;
    page(
        ListPage {
            t,
            shell: &shell,
            rows,
            unread,
            may_publish: Notices::may_publish(caller),
            kinds: KINDS.iter().map(|k| (*k, t.get(&format!("notice-kind-{k}")).to_string())).collect(),
            audiences: AUDIENCES
                .iter()
                .filter(|a| !head || **a == "department")
                .map(|a| (*a, t.get(&format!("notice-audience-{a}")).to_string()))
                .collect(),
            campuses,
            departments,
            roles: Role::ALL
                .iter()
                .filter(|r| **r != Role::Patient)
                .map(|r| (r.code(), t.get(&format!("role-{}", r.code())).to_string()))
                .collect(),
            form,
            errors,
            done: done.map(|_| t.get("notice-published").to_string()),
        }
        .render(),
    )
}

async fn list(State(state): State<AppState>, s: Signed, Query(q): Query<Shown>) -> Response {
    if !may_read(&s.info.caller) {
        return forbidden(s.t);
    }
    render_list(&state, &s, NoticeForm { kind: "announcement".into(), ..Default::default() }, Vec::new(), q.done).await
}

async fn publish(
    State(state): State<AppState>,
    s: Signed,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !Notices::may_publish(&s.info.caller) || !csrf_ok(&s, &form) {
        return forbidden(s.t);
    }
    let v = |k: &str| form_value(&form, k);
    let f = NoticeForm {
        kind: v("kind"),
        title: v("title"),
        body: v("body"),
        audience: v("audience"),
        campus: v("campus"),
        department: v("department"),
        role: v("role"),
        until: v("until"),
    };
    match state.notices.publish(&s.info.caller, &f).await {
        Ok(id) => see_other(&format!("/manage/notices/{id}?done=published")),
        Err(NoticeError::Forbidden(_)) => forbidden(s.t),
        Err(e) => {
            let errors = worded(s.t, &e);
            render_list(&state, &s, f, errors, None).await
        }
    }
}

#[derive(Template)]
#[template(path = "manage/notice.html")]
struct NoticePage<'a> {
    t: Tr,
    shell: &'a Shell,
    kind: String,
    title: String,
    body: String,
    audience: String,
    when: String,
    by: String,
    /// For its publisher: (reader, when).
    receipts: Option<Vec<(String, String)>>,
    /// How many accounts the audience holds, where it can be counted.
    audience_size: Option<usize>,
    done: Option<String>,
}

async fn open(State(state): State<AppState>, s: Signed, Path(id): Path<i64>, Query(q): Query<Shown>) -> Response {
    let t = s.t;
    if !may_read(&s.info.caller) {
        return forbidden(t);
    }
    let (n, receipts) = match state.notices.open(&s.info.caller, id).await {
        Ok(found) => found,
        Err(NoticeError::Forbidden(_)) => return forbidden(t),
        Err(NoticeError::NotFound(_)) => return not_found(t),
        Err(e) => {
            tracing::error!(error = %e, "announcement");
            return not_found(t);
        }
    };
    let a = n.notice;
    // The audience's accounts, counted from their grants (a department's audience is
    // its people's roles, not grants: not counted).
    let audience_size = if receipts.is_some() && a.audience != "department" {
        state.users.list_users().await.ok().map(|users| {
            users
                .iter()
                .filter(|(u, grants)| !u.disabled && grants.iter().any(|g| grant_in_audience(&a, &g.role, &g.campus)))
                .count()
        })
    } else {
        None
    };
    let departments = state.rosters.departments(&s.info.caller).await.unwrap_or_default();
    let shell = shell(&state, &s.info, t, &s.headers).await;
    page(
        NoticePage {
            t,
            shell: &shell,
            kind: t.get(&format!("notice-kind-{}", a.kind)).to_string(),
            audience: audience_text(&state, t, &a, &departments).await,
            when: local_time(a.published_at),
            by: a.published_by.clone(),
            title: a.title,
            body: a.body,
            receipts: receipts.map(|r| r.into_iter().map(|(who, at)| (who, local_time(at))).collect()),
            audience_size,
            done: q.done.map(|_| t.get("notice-published").to_string()),
        }
        .render(),
    )
}
