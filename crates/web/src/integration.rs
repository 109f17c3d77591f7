//! The integration hub's status page and API: channel health (queue depth, dead
//! letters, last success, error rate), the message log with filters, one message with
//! its payload and ACK, and replay. Pages need a signed-in user with the IT engineer
//! or administrator role; the JSON API at `/api/integration` needs a bearer token of a
//! client registered with the `lianyi:integration` scope word. Every call goes through
//! [`lianyi_interop::Outbound`], which checks the permission and audits.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use lianyi_interop::OutboundError;
use lianyi_interop::outbound::ChannelStatus;
use lianyi_store::messages::{LoggedMessage, MessageFilter};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::caller::RemoteCaller;
use crate::i18n::Tr;
use crate::pages::{Active, forbidden, lang, local_time, page, see_other};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/integration", get(status_page))
        .route("/admin/integration/messages/{id}", get(message_page))
        .route("/admin/integration/messages/{id}/replay", post(replay_form))
        .route("/admin/integration/channels/{id}/replay-dead", post(replay_dead_form))
        .route("/api/integration/channels", get(api_channels))
        .route("/api/integration/messages", get(api_messages))
        .route("/api/integration/messages/{id}", get(api_message))
        .route("/api/integration/messages/{id}/replay", post(api_replay))
        .route("/api/integration/channels/{id}/replay-dead", post(api_replay_dead))
}

/// Message-log filters, from the page's form or the API's query string.
#[derive(Deserialize, Default)]
struct LogQuery {
    direction: Option<String>,
    status: Option<String>,
    channel: Option<String>,
    #[serde(rename = "type")]
    message_type: Option<String>,
    control_id: Option<String>,
    /// Epoch milliseconds.
    since: Option<i64>,
    until: Option<i64>,
    /// Paging: messages older than this id.
    before: Option<i64>,
    limit: Option<usize>,
}

impl LogQuery {
    fn filter(&self) -> MessageFilter {
        let filled = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        MessageFilter {
            direction: filled(&self.direction),
            status: filled(&self.status),
            channel: filled(&self.channel),
            message_type: filled(&self.message_type),
            control_id: filled(&self.control_id),
            since: self.since,
            until: self.until,
            before_id: self.before,
            limit: self.limit.unwrap_or(100).clamp(1, 1000),
        }
    }
}

fn api_error(e: OutboundError) -> Response {
    let status = match &e {
        OutboundError::Forbidden(_) => StatusCode::FORBIDDEN,
        OutboundError::Invalid { .. } => StatusCode::BAD_REQUEST,
        OutboundError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => {
            tracing::error!(error = %e, "integration API failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": "internal error"}))).into_response();
        }
    };
    let mut body = json!({"error": e.to_string()});
    if let OutboundError::Invalid { field, .. } = &e {
        body["field"] = json!(field);
    }
    (status, Json(body)).into_response()
}

fn time(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |t| json!(lianyi_fhir::datetime::format_instant(t)))
}

fn message_json(m: &LoggedMessage) -> Value {
    json!({
        "id": m.id, "direction": m.direction, "channel": m.channel, "peer": m.peer, "sender": m.sender,
        "controlId": m.control_id, "type": m.message_type, "status": m.status, "attempts": m.attempts,
        "received": time(Some(m.received_at)), "finished": time(m.finished_at), "error": m.error, "summary": m.summary,
    })
}

fn channel_json(s: &ChannelStatus) -> Value {
    let c = &s.channel;
    json!({
        "id": c.id, "name": c.name, "kind": c.kind, "endpoint": c.endpoint, "criteria": c.criteria,
        "campus": c.campus, "enabled": c.enabled, "subscription": c.subscription,
        "maxAttempts": c.max_attempts, "backoffMs": c.backoff_ms, "maxBackoffMs": c.max_backoff_ms,
        "queueDepth": s.queue.pending, "deadLetters": s.queue.dead, "delivered": s.queue.delivered,
        "lastSuccess": time(s.queue.last_success), "lastError": s.queue.last_error,
        "attemptsSinceStart": s.health.attempts, "failuresSinceStart": s.health.failures,
        "errorRate": s.error_rate(),
    })
}

/// The JSON answer of an API call: `body` of the result, or the error.
fn answer<T>(r: Result<T, OutboundError>, body: impl FnOnce(T) -> Value) -> Response {
    match r {
        Ok(x) => Json(body(x)).into_response(),
        Err(e) => api_error(e),
    }
}

async fn api_channels(State(state): State<AppState>, RemoteCaller(caller): RemoteCaller) -> Response {
    answer(
        state.outbound.status(&caller).await,
        |list| json!({"channels": list.iter().map(channel_json).collect::<Vec<_>>()}),
    )
}

async fn api_messages(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Query(q): Query<LogQuery>,
) -> Response {
    let filter = q.filter();
    answer(state.outbound.messages(&caller, &filter).await, |list| {
        let next = (list.len() == filter.limit).then(|| list.last().map(|m| m.id)).flatten();
        json!({"messages": list.iter().map(message_json).collect::<Vec<_>>(), "nextBefore": next})
    })
}

async fn api_message(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Path(id): Path<i64>,
) -> Response {
    answer(state.outbound.message(&caller, id).await, |(m, payload, ack)| {
        let mut v = message_json(&m);
        v["payload"] = json!(payload);
        v["ack"] = json!(ack);
        v
    })
}

async fn api_replay(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Path(id): Path<i64>,
) -> Response {
    answer(state.outbound.replay(&caller, &[id]).await, |n| json!({"queued": n}))
}

async fn api_replay_dead(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Path(id): Path<String>,
) -> Response {
    answer(state.outbound.replay_dead(&caller, &id).await, |n| json!({"queued": n}))
}

/// One channel as a row of the status page.
struct ChannelRow {
    id: String,
    kind: String,
    endpoint: String,
    criteria: String,
    enabled: bool,
    pending: i64,
    dead: i64,
    delivered: i64,
    last_success: String,
    error_rate: String,
    last_error: String,
}

/// One message as a row of the log table.
struct MessageRow {
    id: i64,
    received: String,
    direction: String,
    channel: String,
    message_type: String,
    control_id: String,
    status: String,
    attempts: i64,
    error: String,
}

#[derive(Template)]
#[template(path = "integration.html")]
struct StatusPage<'a> {
    t: Tr,
    csrf: &'a str,
    channels: Vec<ChannelRow>,
    messages: Vec<MessageRow>,
    direction: String,
    status: String,
    channel: String,
    message_type: String,
    control_id: String,
    notice: Option<String>,
}

#[derive(Deserialize, Default)]
struct PageQuery {
    direction: Option<String>,
    status: Option<String>,
    channel: Option<String>,
    #[serde(rename = "type")]
    message_type: Option<String>,
    control_id: Option<String>,
    queued: Option<u64>,
}

async fn status_page(
    State(state): State<AppState>,
    Active(info): Active,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    let t = Tr::new(lang(&headers));
    let caller = &info.caller;
    let log = LogQuery {
        direction: q.direction.clone(),
        status: q.status.clone(),
        channel: q.channel.clone(),
        message_type: q.message_type.clone(),
        control_id: q.control_id.clone(),
        limit: Some(200),
        ..Default::default()
    };
    let (channels, messages) =
        match (state.outbound.status(caller).await, state.outbound.messages(caller, &log.filter()).await) {
            (Ok(c), Ok(m)) => (c, m),
            (Err(OutboundError::Forbidden(_)), _) | (_, Err(OutboundError::Forbidden(_))) => return forbidden(t),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "integration page failed");
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        };
    let channels = channels
        .iter()
        .map(|s| ChannelRow {
            id: s.channel.id.clone(),
            kind: s.channel.kind.clone(),
            endpoint: s.channel.endpoint.clone(),
            criteria: s.channel.criteria.clone(),
            enabled: s.channel.enabled,
            pending: s.queue.pending,
            dead: s.queue.dead,
            delivered: s.queue.delivered,
            last_success: s.queue.last_success.map(local_time).unwrap_or_default(),
            error_rate: format!("{:.1} %", s.error_rate() * 100.0),
            last_error: s.queue.last_error.clone().unwrap_or_default(),
        })
        .collect();
    let messages = messages
        .into_iter()
        .map(|m| MessageRow {
            id: m.id,
            received: local_time(m.received_at),
            direction: m.direction,
            channel: m.channel,
            message_type: m.message_type,
            control_id: m.control_id,
            status: m.status,
            attempts: m.attempts,
            error: m.error.unwrap_or_default(),
        })
        .collect();
    let field = |v: Option<String>| v.unwrap_or_default();
    page(
        StatusPage {
            t,
            csrf: &info.csrf,
            channels,
            messages,
            direction: field(q.direction),
            status: field(q.status),
            channel: field(q.channel),
            message_type: field(q.message_type),
            control_id: field(q.control_id),
            notice: q.queued.map(|n| t.fmt("integration-queued", &n.to_string())),
        }
        .render(),
    )
}

#[derive(Template)]
#[template(path = "integration_message.html")]
struct MessagePage<'a> {
    t: Tr,
    csrf: &'a str,
    id: i64,
    direction: String,
    channel: String,
    peer: String,
    message_type: String,
    control_id: String,
    status: String,
    attempts: i64,
    received: String,
    finished: String,
    error: String,
    summary: String,
    /// The payload one segment (or line) per entry.
    payload: Vec<String>,
    ack: Vec<String>,
    replayable: bool,
}

fn lines(text: &str) -> Vec<String> {
    text.split(['\r', '\n']).filter(|l| !l.is_empty()).map(str::to_string).collect()
}

async fn message_page(
    State(state): State<AppState>,
    Active(info): Active,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    let t = Tr::new(lang(&headers));
    match state.outbound.message(&info.caller, id).await {
        Ok((m, payload, ack)) => page(
            MessagePage {
                t,
                csrf: &info.csrf,
                id: m.id,
                replayable: match m.direction.as_str() {
                    "out" => m.status == "dead" || m.status == "delivered",
                    _ => matches!(m.status.as_str(), "error" | "rejected" | "failed"),
                },
                direction: m.direction,
                channel: m.channel,
                peer: m.peer.unwrap_or_default(),
                message_type: m.message_type,
                control_id: m.control_id,
                status: m.status,
                attempts: m.attempts,
                received: local_time(m.received_at),
                finished: m.finished_at.map(local_time).unwrap_or_default(),
                error: m.error.unwrap_or_default(),
                summary: m.summary.unwrap_or_default(),
                payload: lines(&payload),
                ack: ack.as_deref().map(lines).unwrap_or_default(),
            }
            .render(),
        ),
        Err(OutboundError::Forbidden(_)) => forbidden(t),
        Err(OutboundError::NotFound(_)) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "message page failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn replay_form(
    State(state): State<AppState>,
    Active(info): Active,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let replay = async { state.outbound.replay(&info.caller, &[id]).await };
    checked_replay(&info, &f, &headers, replay).await
}

async fn replay_dead_form(
    State(state): State<AppState>,
    Active(info): Active,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let replay = async { state.outbound.replay_dead(&info.caller, &id).await };
    checked_replay(&info, &f, &headers, replay).await
}

/// Runs `replay` only when the form carries the session's CSRF token.
async fn checked_replay(
    info: &lianyi_security::users::SessionInfo,
    f: &CsrfForm,
    headers: &HeaderMap,
    replay: impl Future<Output = Result<u64, OutboundError>>,
) -> Response {
    let t = Tr::new(lang(headers));
    if !lianyi_security::secrets::constant_time_eq(&info.csrf, &f.csrf) {
        return forbidden(t);
    }
    replayed(t, replay.await)
}

fn replayed(t: Tr, r: Result<u64, OutboundError>) -> Response {
    match r {
        Ok(n) => see_other(&format!("/admin/integration?queued={n}")),
        Err(OutboundError::Forbidden(_)) => forbidden(t),
        Err(e) => {
            tracing::error!(error = %e, "replay failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
