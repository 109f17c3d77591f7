//! FHIR R4 websocket subscriptions: a client connects to `/websocket` with its bearer
//! token, sends `bind <Subscription id>` (answered `bound <id>`, or `error <id> <why>`),
//! and then receives `ping <id>` whenever a change matches that Subscription's
//! criteria. The binding is checked (the caller must be able to read the
//! Subscription) and audited by the service; deliveries are queued like any channel's.

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use lianyi_security::Caller;

use crate::AppState;
use crate::ui::auth::RemoteCaller;

pub const PATH: &str = "/websocket";

pub(super) fn router() -> Router<AppState> {
    Router::new().route(PATH, get(upgrade))
}

async fn upgrade(State(state): State<AppState>, RemoteCaller(caller): RemoteCaller, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(64 << 10).on_upgrade(move |socket| session(state, caller, socket))
}

async fn session(state: AppState, caller: Caller, mut socket: WebSocket) {
    let outbound = state.outbound.clone();
    let (id, sender, mut queue) = outbound.open_socket();
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let text = match incoming {
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Binary(_))) => continue,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                };
                let answer = match text.trim().split_once(' ') {
                    Some(("bind", sub)) if !sub.trim().is_empty() => {
                        outbound.bind_socket(&caller, id, &sender, sub.trim()).await
                    }
                    _ => "error unknown command (rule: bind <Subscription id>)".to_string(),
                };
                if socket.send(Message::Text(answer.into())).await.is_err() {
                    break;
                }
            }
            Some(text) = queue.recv() => {
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
        }
    }
    outbound.close_socket(id);
}
