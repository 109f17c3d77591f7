//! Questions to the care team. The patient's side (`/portal/messages`): their
//! questions with the answers, and a form to ask about one of their visits with a
//! photo; the care team's side (`/portal/inbox`, in the staff shell): the questions
//! to them or their departments, the longest waiting first, each answered once.

use askama::Template;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use lianyi_portal::PortalError;
use lianyi_portal::messages::{Attachment, MAX_ATTACHMENT, MAX_CHARS, Question, Thread, Visit, may_answer};

use super::{Frame, Patient, Problem, failure, form_page, problems};
use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{form_value, local_time, not_found, see_other};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, shell};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        // The form's body: the photo's limit and room for the text.
        .route(
            "/portal/messages",
            get(threads).post(ask).layer(axum::extract::DefaultBodyLimit::max(MAX_ATTACHMENT + 64 * 1024)),
        )
        .route("/portal/photos/{id}", get(own_photo))
        .route("/portal/inbox", get(inbox))
        .route("/portal/inbox/{id}/answer", post(answer))
        .route("/portal/inbox/photos/{id}", get(staff_photo))
}

/// A thread as the pages show it.
pub(super) struct Row {
    id: String,
    patient: String,
    patient_name: String,
    visit_date: String,
    to: String,
    asked: String,
    text: String,
    photo: Option<String>,
    answer: Option<(String, String, String)>,
    /// How long it took (answered) or has waited, in words.
    waited: String,
    late: bool,
}

/// Minutes as `3 小时 5 分` / `3 h 5 min`.
fn duration(t: Tr, ms: i64) -> String {
    let minutes = (ms / 60_000).max(0);
    let (d, h, m) = (minutes / 1_440, minutes % 1_440 / 60, minutes % 60);
    let mut out = Vec::new();
    if d > 0 {
        out.push(t.fmt("portal-days", &d.to_string()));
    }
    if h > 0 {
        out.push(t.fmt("portal-hours", &h.to_string()));
    }
    if m > 0 || out.is_empty() {
        out.push(t.fmt("portal-minutes", &m.to_string()));
    }
    out.join(" ")
}

/// A question unanswered this long is marked.
const LATE_MS: i64 = 24 * 3_600_000;

fn rows(t: Tr, threads: Vec<Thread>, now: i64) -> Vec<Row> {
    threads
        .into_iter()
        .map(|x| {
            let waited_ms = x.waited_ms(now);
            Row {
                waited: duration(t, waited_ms),
                late: x.answer.is_none() && waited_ms > LATE_MS,
                id: x.id,
                patient: x.patient,
                patient_name: x.patient_name,
                visit_date: x.visit_date,
                to: t.pick(x.to.zh, x.to.en),
                asked: local_time(x.asked_at),
                text: x.text,
                photo: x.attachment,
                answer: x.answer.map(|a| (local_time(a.at), a.text, t.pick(a.by.zh, a.by.en))),
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "portal/messages.html")]
struct ThreadsPage<'a> {
    t: Tr,
    frame: &'a Frame,
    threads: Vec<Row>,
    visits: Vec<Visit>,
    problems: Vec<Problem>,
    text: String,
    sent: bool,
    max_chars: usize,
    max_mb: usize,
}

async fn threads_page(state: &AppState, p: &Patient, problems: Vec<Problem>, text: String, sent: bool) -> Response {
    let t = p.t;
    let (threads, visits) = match (state.care.threads(p.caller()).await, state.care.visits(p.caller()).await) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return failure(t, &e),
    };
    let frame = Frame::named(state, p, "messages").await;
    let bad = !problems.is_empty();
    let threads = rows(t, threads, state.fhir.now_ms());
    form_page(
        ThreadsPage {
            t,
            frame: &frame,
            threads,
            visits,
            problems,
            text,
            sent,
            max_chars: MAX_CHARS,
            max_mb: MAX_ATTACHMENT / (1024 * 1024),
        }
        .render(),
        bad,
    )
}

#[derive(serde::Deserialize, Default)]
struct Sent {
    sent: Option<String>,
}

async fn threads(
    State(state): State<AppState>,
    p: Patient,
    axum::extract::Query(s): axum::extract::Query<Sent>,
) -> Response {
    threads_page(&state, &p, Vec::new(), String::new(), s.sent.is_some()).await
}

/// The question form: multipart, with an optional photo. A body over the size limit
/// is refused by the edge before it is read; a photo over [`MAX_ATTACHMENT`] here.
async fn ask(State(state): State<AppState>, p: Patient, mut form: Multipart) -> Response {
    let t = p.t;
    let (mut csrf, mut q) = (String::new(), Question::default());
    let mut too_large = false;
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(_) => {
                too_large = true;
                break;
            }
        };
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "photo" => {
                let content_type = field.content_type().unwrap_or_default().to_string();
                let file = field.file_name().unwrap_or_default().to_string();
                match field.bytes().await {
                    Ok(b) if !b.is_empty() => {
                        q.attachment = Some(Attachment { content_type, name: file, data: b.to_vec() })
                    }
                    Ok(_) => {}
                    Err(_) => too_large = true,
                }
            }
            other => {
                let value = field.text().await.unwrap_or_default();
                match other {
                    "csrf" => csrf = value,
                    "visit" => q.visit = value,
                    "text" => q.text = value,
                    _ => {}
                }
            }
        }
    }
    if !p.csrf_ok(&csrf) {
        return crate::ui::render::forbidden(t);
    }
    if too_large {
        let e = lianyi_portal::FieldError { field: "attachment", code: "too-large", detail: String::new() };
        return threads_page(&state, &p, problems(t, &[e]), q.text, false).await;
    }
    match state.care.ask(p.caller(), &q).await {
        Ok(_) => see_other("/portal/messages?sent=1"),
        Err(PortalError::Invalid(errors)) => threads_page(&state, &p, problems(t, &errors), q.text, false).await,
        Err(e) => failure(t, &e),
    }
}

fn photo_response(kind: String, data: Vec<u8>) -> Response {
    let mut r = data.into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&kind) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("inline"));
    r
}

async fn own_photo(State(state): State<AppState>, p: Patient, Path(id): Path<String>) -> Response {
    match state.care.photo(p.caller(), &id).await {
        Ok((kind, data)) => photo_response(kind, data),
        Err(e) => failure(p.t, &e),
    }
}

#[derive(Template)]
#[template(path = "portal/inbox.html")]
struct InboxPage<'a> {
    t: Tr,
    shell: &'a Shell,
    threads: Vec<Row>,
    problems: Vec<Problem>,
    max_chars: usize,
}

async fn inbox_page(state: &AppState, s: &Signed, problems: Vec<Problem>) -> Response {
    let t = s.t;
    let threads = match state.care.inbox(s.caller()).await {
        Ok(x) => x,
        Err(PortalError::Forbidden(_)) => return s.forbidden(),
        Err(e) => return failure(t, &e),
    };
    let shell = shell(state, &s.info, t, &s.headers).await;
    let bad = !problems.is_empty();
    let threads = rows(t, threads, state.fhir.now_ms());
    form_page(InboxPage { t, shell: &shell, threads, problems, max_chars: MAX_CHARS }.render(), bad)
}

async fn inbox(State(state): State<AppState>, s: Signed) -> Response {
    if !may_answer(s.caller()) {
        return s.forbidden();
    }
    inbox_page(&state, &s, Vec::new()).await
}

async fn answer(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if !s.csrf_ok(&form_value(&form, "csrf")) || !may_answer(s.caller()) {
        return s.forbidden();
    }
    match state.care.answer(s.caller(), &id, &form_value(&form, "text")).await {
        Ok(()) => see_other("/portal/inbox"),
        Err(PortalError::Invalid(errors)) => inbox_page(&state, &s, problems(s.t, &errors)).await,
        Err(PortalError::NotFound) => not_found(s.t),
        Err(e) => failure(s.t, &e),
    }
}

async fn staff_photo(State(state): State<AppState>, s: Signed, Path(id): Path<String>) -> Response {
    if !may_answer(s.caller()) {
        return s.forbidden();
    }
    match state.care.photo(s.caller(), &id).await {
        Ok((kind, data)) => photo_response(kind, data),
        Err(e) => failure(s.t, &e),
    }
}
