//! The layers around every route: request metrics and the log line (route
//! templates only: never the query string or body), the operation id each request
//! runs under, security headers, HSTS, and the rate limit on the endpoints that
//! take passwords and secrets.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::ui::error::{new_operation_id, with_operation};

/// Counts and times every request by route template, method and status.
pub async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_string();
    let route =
        req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let op = new_operation_id();
    let resp = with_operation(op.clone(), next.run(req)).await;
    let status = resp.status().as_u16().to_string();
    let elapsed = start.elapsed();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status.clone())
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method.clone(), "route" => route.clone(), "status" => status.clone())
        .record(elapsed.as_secs_f64());
    tracing::info!(target: "lianyi::http", %op, %method, %route, %status, micros = elapsed.as_micros() as u64, "request");
    resp
}

/// With a read standby: a signed-in session's or API token's GET requests may read
/// from it, and after any other request of theirs the primary's position is noted so
/// their next reads wait for the standby to replay it or go to the primary (no stale
/// read of one's own write). Anonymous requests read from the primary.
pub async fn read_routing(State(state): State<crate::AppState>, req: Request, next: Next) -> Response {
    let ops = state.fhir.operations();
    if !ops.has_standby() {
        return next.run(req).await;
    }
    let Some(key) = reader_key(&req) else { return next.run(req).await };
    if matches!(*req.method(), axum::http::Method::GET | axum::http::Method::HEAD) {
        return lianyi_store::standby::reading_as(key, next.run(req)).await;
    }
    let resp = next.run(req).await;
    if let Err(e) = ops.note_write(&key).await {
        tracing::warn!(error = %e, "noting the primary's position after a write");
    }
    resp
}

/// Who reads: a digest of the bearer token or the session cookie (never the secret
/// itself), or none for an anonymous request.
fn reader_key(req: &Request) -> Option<String> {
    use std::hash::BuildHasher;
    static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> = std::sync::OnceLock::new();
    let h = req.headers();
    let bearer = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let session = h.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|c| {
        c.split(';')
            .map(str::trim)
            .find_map(|kv| kv.strip_prefix(crate::ui::session::SESSION_COOKIE)?.strip_prefix('='))
    });
    let secret = bearer.or(session)?;
    Some(format!("{:016x}", KEYS.get_or_init(Default::default).hash_one(secret)))
}

/// A request that failed (500) because of the database says so. It does not
/// answer: 503 with `Retry-After`. Its disk is full: 507 (Insufficient Storage).
/// The APIs get an OperationOutcome (`transient`), people a message page. Nothing
/// was half-written: each write is one transaction.
pub async fn unavailable(State(state): State<crate::AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let api = ["/fhir", "/api/", "/oauth/"].iter().any(|p| path.starts_with(p));
    let lang = crate::ui::session::lang(req.headers());
    let resp = next.run(req).await;
    if resp.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return resp;
    }
    let (status, said, page, retry) = match state.fhir.operations().failing().await {
        None => return resp,
        Some(lianyi_store::Failing::Unreachable) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the database does not answer: nothing was written; try again in a moment",
            "db-unavailable",
            "5",
        ),
        Some(lianyi_store::Failing::StorageFull) => (
            StatusCode::INSUFFICIENT_STORAGE,
            "the database's disk is full: nothing was written; try again once the administrator has freed space",
            "db-disk-full",
            "60",
        ),
    };
    tracing::warn!(status = status.as_u16(), "{said}");
    let mut r = if api {
        crate::ui::error::FhirError::new(status, lianyi_fhir::outcome::IssueType::Transient, said).into_response()
    } else {
        crate::ui::render::unavailable(crate::ui::i18n::Tr::new(lang), status, page)
    };
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(retry));
    r
}

/// Headers every response carries: no sniffing, no framing, no referrers off-site,
/// and a strict Content-Security-Policy (no inline script or style anywhere).
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; \
             base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    resp
}

/// `Strict-Transport-Security` when the server speaks HTTPS.
pub async fn hsts(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    resp.headers_mut()
        .insert("strict-transport-security", HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    resp
}

/// A token bucket per client address for the endpoints that take passwords and
/// secrets (`POST /login`, `POST /oauth/token`): guessing is slowed down for
/// everyone, on top of the per-account lockout.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    buckets: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        RateLimiter { per_minute: per_minute.max(1), buckets: std::sync::Mutex::new(std::collections::HashMap::new()) }
    }

    /// Takes one token for `ip`; `Err(seconds)` to wait when the bucket is empty.
    pub fn take(&self, ip: std::net::IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        let cap = f64::from(self.per_minute);
        let rate = cap / 60.0;
        let Ok(mut buckets) = self.buckets.lock() else { return Ok(()) };
        if buckets.len() > 10_000 {
            buckets.retain(|_, (_, t)| now.duration_since(*t).as_secs() < 120);
        }
        let (tokens, last) = buckets.entry(ip).or_insert((cap, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(cap);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / rate).ceil() as u64)
        }
    }
}

pub async fn rate_limit(State(limiter): State<std::sync::Arc<RateLimiter>>, req: Request, next: Next) -> Response {
    let limited = req.method() == axum::http::Method::POST
        && matches!(
            req.uri().path(),
            "/login" | "/oauth/token" | "/portal/login" | "/portal/activate" | "/portal/signup"
        );
    if limited
        && let Some(ip) = req.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip())
        && let Err(wait) = limiter.take(ip)
    {
        metrics::counter!("rate_limited_total", "route" => req.uri().path().to_string()).increment(1);
        let mut resp = (StatusCode::TOO_MANY_REQUESTS, "too many attempts; try again later\n").into_response();
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return resp;
    }
    next.run(req).await
}
