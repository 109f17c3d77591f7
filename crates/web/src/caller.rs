//! Who is on the other end of a request, as the services need it.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use lianyi_security::Caller;

/// The caller of a request. Until authentication lands every caller is anonymous,
/// identified in the audit log by its network address.
pub struct RemoteCaller(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for RemoteCaller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let addr = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string());
        Ok(RemoteCaller(Caller::anonymous(addr)))
    }
}
