//! `POST /oauth/token`: the OAuth2 client-credentials grant (RFC 6749 §4.4).
//! Client credentials come in the form body or as HTTP Basic; the answer is a
//! short-lived bearer token with SMART scopes.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use lianyi_security::clients::TokenError;
use serde_json::json;

use crate::AppState;
use crate::ui::auth::ClientAddr;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/oauth/token", post(token))
}

fn no_store(mut resp: Response) -> Response {
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

async fn token(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let get = |k: &str| form.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let (id, secret) = match basic_credentials(&headers) {
        Some((i, s)) => (Some(i), Some(s)),
        None => (get("client_id"), get("client_secret")),
    };
    let result = state
        .clients
        .issue_token(get("grant_type").as_deref(), id.as_deref(), secret.as_deref(), get("scope").as_deref(), addr)
        .await;
    let resp = match result {
        Ok(t) => (
            StatusCode::OK,
            axum::Json(json!({"access_token": t.access_token, "token_type": "Bearer", "expires_in": t.expires_in, "scope": t.scope})),
        )
            .into_response(),
        Err(e) => {
            let status = match &e {
                TokenError::InvalidClient => StatusCode::UNAUTHORIZED,
                TokenError::InvalidRequest(_) | TokenError::UnsupportedGrantType | TokenError::InvalidScope(_) => {
                    StatusCode::BAD_REQUEST
                }
                _ => {
                    tracing::error!(error = %e, "token endpoint failure");
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            };
            let description = match &e {
                TokenError::Store(_) | TokenError::Audit(_) | TokenError::Random(_) => "internal error".to_string(),
                other => other.to_string(),
            };
            (status, axum::Json(json!({"error": e.code(), "error_description": description}))).into_response()
        }
    };
    no_store(resp)
}
