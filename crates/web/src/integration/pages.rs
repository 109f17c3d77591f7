//! The hub's pages under `/admin/integration`.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use lianyi_interop::OutboundError;
use serde::Deserialize;

use super::LogQuery;
use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, local_time, page, see_other};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, shell};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/integration", get(status_page))
        .route("/admin/integration/messages/{id}", get(message_page))
        .route("/admin/integration/messages/{id}/replay", post(replay_form))
        .route("/admin/integration/channels/{id}/replay-dead", post(replay_dead_form))
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
#[template(path = "integration/status.html")]
struct StatusPage<'a> {
    t: Tr,
    shell: &'a Shell,
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
    Signed { info, t, headers }: Signed,
    Query(q): Query<PageQuery>,
) -> Response {
    let caller = &info.caller;
    let shell = shell(&state, &info, t, &headers).await;
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
            kind: s.channel.kind.to_string(),
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
            shell: &shell,
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
#[template(path = "integration/message.html")]
struct MessagePage<'a> {
    t: Tr,
    shell: &'a Shell,
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
    Signed { info, t, headers }: Signed,
    Path(id): Path<i64>,
) -> Response {
    let shell = shell(&state, &info, t, &headers).await;
    match state.outbound.message(&info.caller, id).await {
        Ok((m, payload, ack)) => page(
            MessagePage {
                t,
                shell: &shell,
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
    s: Signed,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let replay = async { state.outbound.replay(s.caller(), &[id]).await };
    checked_replay(&s, &f, replay).await
}

async fn replay_dead_form(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let replay = async { state.outbound.replay_dead(s.caller(), &id).await };
    checked_replay(&s, &f, replay).await
}

/// Runs `replay` only when the form carries the session's CSRF token.
async fn checked_replay(
    s: &Signed,
    f: &CsrfForm,
    replay: impl Future<Output = Result<u64, OutboundError>>,
) -> Response {
    if !s.csrf_ok(&f.csrf) {
        return s.forbidden();
    }
    replayed(s.t, replay.await)
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
