//! The feedback pages (患者意见与投诉): what the caller follows, open first by deadline,
//! overdue marked (`/manage/feedback`), with the desk's form to record what a patient
//! said; one piece (`/manage/feedback/{id}`) with its owner (named by the campus's
//! managers and department heads) and its answer (written once).

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use lianyi_manage::feedback::{CHANNELS, FeedbackError, FeedbackForm, FeedbackView, Feedbacks, KINDS};
use lianyi_security::Caller;
use serde::Deserialize;

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, form_value, local_time, not_found, page, see_other};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, campus_name, shell};

use super::rosters::{campus_choice, csrf_ok, done_text, may_open, pick};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/manage/feedback", get(list).post(record))
        .route("/manage/feedback/{id}", get(one))
        .route("/manage/feedback/{id}/{step}", post(step))
}

pub(super) fn may_follow(c: &Caller) -> bool {
    may_open(c) && Feedbacks::may_record(c)
}

#[derive(Deserialize, Default)]
struct Shown {
    open: Option<String>,
    done: Option<String>,
}

struct Row {
    id: i64,
    kind: String,
    subject: String,
    campus: String,
    due: String,
    state: (String, &'static str),
    owner: String,
}

fn state_of(t: Tr, v: &FeedbackView) -> (String, &'static str) {
    if v.feedback.status == "answered" {
        (t.get("fb-answered").to_string(), "")
    } else if v.overdue {
        (t.get("fb-overdue").to_string(), "bad")
    } else {
        (t.get("fb-open").to_string(), "warn")
    }
}

fn worded(t: Tr, e: &FeedbackError) -> Vec<String> {
    match e {
        FeedbackError::Invalid(fs) => fs
            .iter()
            .map(|f| format!("{}: {}", t.get(&format!("fb-field-{}", f.field)), t.get(&format!("fb-rule-{}", f.code))))
            .collect(),
        FeedbackError::NotFound(_) => vec![t.get("fb-not-found").to_string()],
        other => {
            tracing::error!(error = %other, "feedback");
            vec![t.get("fb-failed").to_string()]
        }
    }
}

#[derive(Template)]
#[template(path = "manage/feedback.html")]
struct ListPage<'a> {
    t: Tr,
    shell: &'a Shell,
    rows: Vec<Row>,
    overdue: usize,
    open_only: bool,
    kinds: Vec<(&'static str, String)>,
    channels: Vec<(&'static str, String)>,
    campuses: Vec<(String, String)>,
    departments: Vec<(String, String)>,
    /// (Practitioner id, name): whom the feedback may be about.
    people: Vec<(String, String)>,
    form: FeedbackForm,
    errors: Vec<String>,
    done: Option<String>,
}

async fn render_list(
    state: &AppState,
    s: &Signed,
    open_only: bool,
    form: FeedbackForm,
    errors: Vec<String>,
    done: Option<String>,
) -> Response {
    let t = s.t;
    let caller = &s.info.caller;
    let views = match state.feedback.list(caller, open_only).await {
        Ok(v) => v,
        Err(FeedbackError::Forbidden(_)) => return forbidden(t),
        Err(e) => {
            tracing::error!(error = %e, "feedback");
            Vec::new()
        }
    };
    let mut rows = Vec::new();
    for v in &views {
        rows.push(Row {
            id: v.feedback.id,
            kind: t.get(&format!("fb-kind-{}", v.feedback.kind)).to_string(),
            subject: v.feedback.subject.clone(),
            campus: campus_name(state, &v.feedback.campus, t).await,
            due: v.feedback.due_on.clone(),
            state: state_of(t, v),
            owner: v.feedback.owner.clone().unwrap_or_default(),
        });
    }
    let overdue = views.iter().filter(|v| v.overdue).count();
    let departments = state.rosters.departments(caller).await.unwrap_or_default();
    let all: Vec<&lianyi_manage::rosters::Department> = departments.iter().collect();
    let (campuses, _) = campus_choice(state, t, &all, None, None).await;
    let departments = departments.iter().map(|d| (d.id.clone(), pick(t, &d.names))).collect();
    let (_, people) = state.staff.directory(caller).await.unwrap_or_default();
    let people = people.into_iter().map(|(id, n)| (id, pick(t, &n))).collect();
    let shell = shell(state, &s.info, t, &s.headers).await;
    page(
        ListPage {
            t,
            shell: &shell,
            rows,
            overdue,
            open_only,
            kinds: KINDS.iter().map(|k| (*k, t.get(&format!("fb-kind-{k}")).to_string())).collect(),
            channels: CHANNELS.iter().map(|k| (*k, t.get(&format!("fb-channel-{k}")).to_string())).collect(),
            campuses,
            departments,
            people,
            form,
            errors,
            done: done.map(|d| done_text(t, "fb-done-", &d)),
        }
        .render(),
    )
}

async fn list(State(state): State<AppState>, s: Signed, Query(q): Query<Shown>) -> Response {
    if !may_follow(&s.info.caller) {
        return forbidden(s.t);
    }
    let form = FeedbackForm { kind: "complaint".into(), channel: "desk".into(), ..Default::default() };
    render_list(&state, &s, q.open.is_some(), form, Vec::new(), q.done).await
}

async fn record(
    State(state): State<AppState>,
    s: Signed,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !may_follow(&s.info.caller) || !csrf_ok(&s, &form) {
        return forbidden(s.t);
    }
    let v = |k: &str| form_value(&form, k);
    let f = FeedbackForm {
        campus: v("campus"),
        department: v("department"),
        kind: v("kind"),
        channel: v("channel"),
        patient: v("patient"),
        subject: v("subject"),
        body: v("body"),
        practitioner: v("practitioner"),
    };
    match state.feedback.record(&s.info.caller, &f).await {
        Ok(id) => see_other(&format!("/manage/feedback/{id}?done=recorded")),
        Err(FeedbackError::Forbidden(_)) => forbidden(s.t),
        Err(e) => {
            let errors = worded(s.t, &e);
            render_list(&state, &s, false, f, errors, None).await
        }
    }
}

#[derive(Template)]
#[template(path = "manage/feedback_one.html")]
struct OnePage<'a> {
    t: Tr,
    shell: &'a Shell,
    id: i64,
    kind: String,
    channel: String,
    subject: String,
    body: String,
    campus: String,
    department: String,
    patient: String,
    /// The member of staff it is about.
    about: String,
    received: String,
    by: String,
    due: String,
    state: (String, &'static str),
    owner: String,
    reply: String,
    replied: String,
    may_assign: bool,
    may_answer: bool,
    errors: Vec<String>,
    done: Option<String>,
}

async fn render_one(state: &AppState, s: &Signed, id: i64, errors: Vec<String>, done: Option<String>) -> Response {
    let t = s.t;
    let v = match state.feedback.get(&s.info.caller, id).await {
        Ok(v) => v,
        Err(FeedbackError::Forbidden(_)) => return forbidden(t),
        Err(_) => return not_found(t),
    };
    let department = match &v.feedback.department {
        Some(d) => state
            .rosters
            .departments(&s.info.caller)
            .await
            .unwrap_or_default()
            .into_iter()
            .find(|x| x.id == *d)
            .map_or_else(|| d.clone(), |x| pick(t, &x.names)),
        None => String::new(),
    };
    let f = &v.feedback;
    let shell = shell(state, &s.info, t, &s.headers).await;
    page(
        OnePage {
            t,
            shell: &shell,
            id,
            kind: t.get(&format!("fb-kind-{}", f.kind)).to_string(),
            channel: t.get(&format!("fb-channel-{}", f.channel)).to_string(),
            subject: f.subject.clone(),
            body: f.body.clone(),
            campus: campus_name(state, &f.campus, t).await,
            department,
            patient: f.patient.clone().unwrap_or_default(),
            about: v.about.as_ref().map(|n| pick(t, n)).unwrap_or_default(),
            received: local_time(f.received_at),
            by: f.received_by.clone(),
            due: f.due_on.clone(),
            state: state_of(t, &v),
            owner: f.owner.clone().unwrap_or_default(),
            reply: f.reply.clone().unwrap_or_default(),
            replied: match (&f.replied_by, f.replied_at) {
                (Some(by), Some(at)) => format!("{by} · {}", local_time(at)),
                _ => String::new(),
            },
            may_assign: v.may_assign,
            may_answer: v.may_answer,
            errors,
            done: done.map(|d| done_text(t, "fb-done-", &d)),
        }
        .render(),
    )
}

async fn one(State(state): State<AppState>, s: Signed, Path(id): Path<i64>, Query(q): Query<Shown>) -> Response {
    if !may_follow(&s.info.caller) {
        return forbidden(s.t);
    }
    render_one(&state, &s, id, Vec::new(), q.done).await
}

/// Names the owner (`owner`) or answers (`reply`): step `owner` or `answer`.
async fn step(
    State(state): State<AppState>,
    s: Signed,
    Path((id, step)): Path<(i64, String)>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !may_follow(&s.info.caller) || !csrf_ok(&s, &form) {
        return forbidden(s.t);
    }
    let caller = &s.info.caller;
    let (done, result) = match step.as_str() {
        "owner" => ("assigned", state.feedback.assign(caller, id, &form_value(&form, "owner")).await),
        "answer" => ("answered", state.feedback.answer(caller, id, &form_value(&form, "reply")).await),
        _ => return not_found(s.t),
    };
    match result {
        Ok(()) => see_other(&format!("/manage/feedback/{id}?done={done}")),
        Err(FeedbackError::Forbidden(_)) => forbidden(s.t),
        Err(e) => render_one(&state, &s, id, worded(s.t, &e), None).await,
    }
}
