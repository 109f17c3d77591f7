//! `/api/integration`: the hub's status, message log and replay as JSON, for a
//! bearer token with the `lianyi:integration` scope word.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lianyi_interop::OutboundError;
use lianyi_interop::outbound::ChannelStatus;
use lianyi_store::messages::LoggedMessage;
use serde_json::{Value, json};

use super::LogQuery;
use crate::AppState;
use crate::ui::auth::RemoteCaller;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/integration/channels", get(api_channels))
        .route("/api/integration/messages", get(api_messages))
        .route("/api/integration/messages/{id}", get(api_message))
        .route("/api/integration/messages/{id}/replay", post(api_replay))
        .route("/api/integration/channels/{id}/replay-dead", post(api_replay_dead))
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
        "id": c.id, "name": c.name, "kind": c.kind.as_str(), "endpoint": c.endpoint, "criteria": c.criteria,
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
