//! Who is on the other end of a request. Every FHIR route needs a bearer token
//! issued by `/oauth/token`; the token stands for an API client with its scopes and
//! campuses. Missing or bad credentials get 401 before any service is called.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lianyi_fhir::IssueType;
use lianyi_security::Caller;
use lianyi_security::clients::AuthError;

use crate::AppState;
use crate::ui::error::FhirError;

/// The authenticated caller of a FHIR request.
pub struct RemoteCaller(pub Caller);

pub fn client_addr(parts: &Parts) -> Option<String> {
    parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string())
}

fn unauthorized(msg: &str) -> Response {
    let mut resp = FhirError::new(StatusCode::UNAUTHORIZED, IssueType::Security, msg).into_response();
    resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"lianyi\""));
    resp
}

impl FromRequestParts<AppState> for RemoteCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let addr = client_addr(parts);
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(unauthorized("a bearer token is required (POST /oauth/token with client credentials)"));
        };
        let token = value.to_str().ok().and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Err(unauthorized("the Authorization header must be 'Bearer <token>'"));
        };
        match state.clients.authenticate(token, addr).await {
            Ok(caller) => Ok(RemoteCaller(caller)),
            Err(AuthError::InvalidToken) => Err(unauthorized("the bearer token is unknown, expired or revoked")),
            Err(e) => {
                tracing::error!(error = %e, "authentication failed");
                Err(FhirError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    IssueType::Exception,
                    "authentication is unavailable",
                )
                .into_response())
            }
        }
    }
}

/// The peer's IP address, when the server runs with connection info.
pub struct ClientAddr(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(client_addr(parts)))
    }
}
