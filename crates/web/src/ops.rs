//! Operations endpoints: `/healthz` for load balancers and `/metrics` for Prometheus,
//! and the middleware that measures every request and logs it without patient data
//! (route templates only: never the query string or body).

use std::sync::OnceLock;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;

use crate::AppState;

static METRICS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Installs the process-wide Prometheus recorder (once; later calls reuse it).
pub fn install_metrics() {
    METRICS.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full("http_request_duration_seconds".into()), LATENCY_BUCKETS)
            .ok()?;
        match builder.install_recorder() {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(error = %e, "metrics recorder not installed");
                None
            }
        }
    });
}

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/metrics", get(metrics_text))
}

async fn healthz(State(state): State<AppState>) -> Response {
    let db = state.fhir.operations().ping().await;
    let backend = state.fhir.operations().backend().name();
    let uptime = state.started.elapsed().as_secs();
    let (status, db_status) = match &db {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(e) => {
            tracing::error!(error = %e, "health check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "unreachable")
        }
    };
    let body = json!({
        "status": if db.is_ok() { "ok" } else { "degraded" },
        "process": {"uptime_seconds": uptime, "version": env!("CARGO_PKG_VERSION")},
        "database": {"status": db_status, "backend": backend},
    });
    (status, axum::Json(body)).into_response()
}

/// Resident set size of this process, from /proc (Linux).
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    let stats = state.fhir.operations().pool_stats();
    let backend = state.fhir.operations().backend().name();
    for (pool, size, idle) in
        [("read", stats.read_size, stats.read_idle), ("write", stats.write_size, stats.write_idle)]
    {
        metrics::gauge!("db_pool_connections", "pool" => pool, "state" => "open", "backend" => backend)
            .set(f64::from(size));
        metrics::gauge!("db_pool_connections", "pool" => pool, "state" => "idle", "backend" => backend)
            .set(idle as f64);
    }
    if let Some(rss) = rss_bytes() {
        metrics::gauge!("process_resident_memory_bytes").set(rss as f64);
    }
    metrics::gauge!("process_uptime_seconds").set(state.started.elapsed().as_secs_f64());
    // Channel health: queue depth, dead letters and last success per outbound channel
    // (attempts by outcome are counted as they happen: lianyi_channel_attempts_total).
    match state.fhir.operations().queue_health().await {
        Ok(stats) => {
            for s in stats {
                let ch = s.channel;
                metrics::gauge!("lianyi_channel_queue_depth", "channel" => ch.clone()).set(s.pending as f64);
                metrics::gauge!("lianyi_channel_dead_letters", "channel" => ch.clone()).set(s.dead as f64);
                if let Some(t) = s.last_success {
                    metrics::gauge!("lianyi_channel_last_success_timestamp_seconds", "channel" => ch)
                        .set(t as f64 / 1000.0);
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "channel statistics unavailable"),
    }
    let text = METRICS.get().and_then(|h| h.as_ref()).map(|h| h.render()).unwrap_or_default();
    let mut resp = text.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    resp
}

/// Counts and times every request by route template, method and status.
pub async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_string();
    let route =
        req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    let elapsed = start.elapsed();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status.clone())
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method.clone(), "route" => route.clone(), "status" => status.clone())
        .record(elapsed.as_secs_f64());
    tracing::info!(target: "lianyi::http", %method, %route, %status, micros = elapsed.as_micros() as u64, "request");
    resp
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
    let limited = req.method() == axum::http::Method::POST && matches!(req.uri().path(), "/login" | "/oauth/token");
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
