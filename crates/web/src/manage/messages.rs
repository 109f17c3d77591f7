//! Messages between staff (站内消息): the mailbox and the form to write to a person or a
//! department of any campus (`/manage/messages`), and the live feed every open page
//! listens to (`/manage/messages/stream`, server-sent events): the unread count when it
//! opens, then each new message as it arrives. `static/messages.js` shows the count
//! beside the menu's link, a notice of each message, and on the mailbox the message
//! itself. The messages come from [`lianyi_manage::messages`].

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use lianyi_manage::messages::{MessageError, MessageForm, MessageView, Messages, Recipient};
use lianyi_security::Caller;
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, form_value, local_time, page, see_other, server_error};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, campus_name, shell};

use super::rosters::{csrf_ok, pick};

/// How long one live feed stays open: the browser opens it again, so the session is
/// checked again (an idle session expires).
const FEED_OPEN: Duration = Duration::from_secs(300);
/// How often the feed looks for messages sent through another server.
const FEED_LOOK: Duration = Duration::from_secs(5);

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/manage/messages", get(mailbox).post(send))
        .route("/manage/messages/stream", get(stream))
        .route("/static/messages.js", get(script))
}

pub(super) fn may_use(c: &Caller) -> bool {
    Messages::may_use(c)
}

fn worded(t: Tr, e: &MessageError) -> Vec<String> {
    match e {
        MessageError::Invalid(fs) => fs
            .iter()
            .map(|f| {
                format!("{}: {}", t.get(&format!("msg-field-{}", f.field)), t.get(&format!("msg-rule-{}", f.code)))
            })
            .collect(),
        other => {
            tracing::error!(error = %other, "messages");
            vec![t.get("msg-failed").to_string()]
        }
    }
}

struct Row {
    id: i64,
    from: String,
    to: String,
    body: String,
    at: String,
    mine: bool,
    unread: bool,
}

fn row(t: Tr, m: &MessageView) -> Row {
    let name = pick(t, &m.to_names);
    let to = match &m.to {
        Recipient::Person(_) => name,
        Recipient::Department(_) => t.get("msg-to-department").replace("{name}", &name),
    };
    Row {
        id: m.id,
        from: m.sender_name.clone(),
        to,
        body: m.body.clone(),
        at: local_time(m.sent_at),
        mine: m.mine,
        unread: m.unread,
    }
}

#[derive(Template)]
#[template(path = "manage/messages.html")]
struct MailboxPage<'a> {
    t: Tr,
    shell: &'a Shell,
    rows: Vec<Row>,
    unread: usize,
    newest: i64,
    /// (id, "campus · department").
    departments: Vec<(String, String)>,
    /// (id, name).
    people: Vec<(String, String)>,
    form: MessageForm,
    errors: Vec<String>,
    done: bool,
}

#[derive(Deserialize, Default)]
struct Shown {
    done: Option<String>,
}

async fn render(state: &AppState, s: &Signed, form: MessageForm, errors: Vec<String>, done: bool) -> Response {
    let t = s.t;
    let caller = &s.info.caller;
    let mut errors = errors;
    let (views, unread) = match state.messages.mailbox_of(caller).await {
        Ok(found) => found,
        Err(MessageError::Forbidden(_)) => return forbidden(t),
        Err(e) => {
            errors.extend(worded(t, &e));
            (Vec::new(), 0)
        }
    };
    let (departments, people) = state.messages.directory(caller).await.unwrap_or_default();
    let mut choices = Vec::with_capacity(departments.len());
    for (id, names, campus) in departments {
        choices.push((id, format!("{} · {}", campus_name(state, &campus, t).await, pick(t, &names))));
    }
    let newest = views.first().map_or(0, |m| m.id);
    // What the page shows is read now.
    if newest > 0
        && let Err(e) = state.messages.mark_seen(caller, newest).await
    {
        tracing::error!(error = %e, "messages seen");
    }
    let shell = shell(state, &s.info, t, &s.headers).await;
    page(
        MailboxPage {
            t,
            shell: &shell,
            rows: views.iter().map(|m| row(t, m)).collect(),
            unread,
            newest,
            departments: choices,
            people: people.into_iter().map(|(id, n)| (id, pick(t, &n))).collect(),
            form,
            errors,
            done,
        }
        .render(),
    )
}

async fn mailbox(State(state): State<AppState>, s: Signed, Query(q): Query<Shown>) -> Response {
    if !may_use(&s.info.caller) {
        return forbidden(s.t);
    }
    render(&state, &s, MessageForm::default(), Vec::new(), q.done.is_some()).await
}

async fn send(
    State(state): State<AppState>,
    s: Signed,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !may_use(&s.info.caller) || !csrf_ok(&s, &form) {
        return forbidden(s.t);
    }
    let f = MessageForm {
        to_practitioner: form_value(&form, "to_practitioner"),
        to_department: form_value(&form, "to_department"),
        body: form_value(&form, "body"),
    };
    match state.messages.send(&s.info.caller, &f).await {
        Ok(_) => see_other("/manage/messages?done=sent"),
        Err(MessageError::Forbidden(_)) => forbidden(s.t),
        Err(e) => {
            let errors = worded(s.t, &e);
            render(&state, &s, f, errors, false).await
        }
    }
}

/// A message as the feed sends it (the script shows it; the body is text, never HTML).
fn event(t: Tr, m: &MessageView, unread: usize) -> Event {
    let r = row(t, m);
    let data = json!({"id": r.id, "from": r.from, "to": r.to, "body": r.body, "at": r.at, "unread": unread,
                      "notice": t.get("msg-notice").replace("{from}", &r.from)});
    Event::default().event("message").data(data.to_string())
}

#[derive(Deserialize, Default)]
struct Feed {
    /// The newest message the page already shows.
    after: Option<i64>,
}

/// The live feed: `unread` with the count at once, then a `message` event per new
/// message (see the module documentation).
async fn stream(State(state): State<AppState>, s: Signed, Query(q): Query<Feed>) -> Response {
    let caller = s.info.caller.clone();
    if !may_use(&caller) {
        return forbidden(s.t);
    }
    let t = s.t;
    let messages = state.messages.clone();
    let mailbox = match messages.feed(&caller).await {
        Ok(m) => std::sync::Arc::new(m),
        Err(e) => {
            tracing::error!(error = %e, "message feed");
            return server_error(Some(t));
        }
    };
    let start = match q.after {
        Some(a) => a,
        None => messages.newest(&caller, &mailbox).await.unwrap_or(0),
    };
    let unread = messages.unread(&caller, &mailbox).await.unwrap_or(0);
    let first = Event::default().event("unread").data(unread.to_string());
    let mut wake = messages.subscribe();
    wake.borrow_and_update();
    let until = tokio::time::Instant::now() + FEED_OPEN;
    let closing = state.closing.clone();
    let state = (Some(first), Vec::<Event>::new(), start, wake);
    let feed = futures_util::stream::unfold(state, move |(first, mut queued, mut after, mut wake)| {
        let (messages, caller, mailbox, closing) = (messages.clone(), caller.clone(), mailbox.clone(), closing.clone());
        async move {
            if let Some(e) = first {
                return Some((Ok::<Event, Infallible>(e), (None, queued, after, wake)));
            }
            loop {
                if let Some(e) = queued.pop() {
                    return Some((Ok(e), (None, queued, after, wake)));
                }
                if tokio::time::Instant::now() >= until || closing.is_cancelled() {
                    return None;
                }
                // A message sent through this server wakes the feed at once; another
                // server's is found on the next look; a stopping server ends it.
                tokio::select! {
                    _ = tokio::time::timeout(FEED_LOOK, wake.changed()) => {}
                    () = closing.cancelled() => return None,
                }
                if let Ok((found, unread)) = messages.since(&caller, &mailbox, after).await {
                    if let Some(last) = found.last() {
                        after = last.id;
                    }
                    // Popped from the end: the oldest first.
                    queued = found.iter().rev().map(|m| event(t, m, unread)).collect();
                }
            }
        }
    });
    let mut r = Sse::new(feed).keep_alive(KeepAlive::default()).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The live feed's script (see the module documentation).
async fn script() -> Response {
    let mut r = include_str!("../../static/messages.js").into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    r
}
