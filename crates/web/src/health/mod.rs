//! The server's own health: `/healthz` for load balancers and `/metrics` for
//! Prometheus (requests are counted by [`crate::ui::layers::track`]).

use std::sync::OnceLock;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
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
    let mut body = json!({
        "status": if db.is_ok() { "ok" } else { "degraded" },
        "process": {"uptime_seconds": uptime, "version": env!("CARGO_PKG_VERSION")},
        "database": {"status": db_status, "backend": backend},
    });
    // A standby that does not serve reads is a warning: the service goes on, on the
    // primary alone.
    if let Some(s) = state.fhir.operations().standby_status() {
        body["readDatabase"] = json!({
            "status": if s.in_use { "standby" } else { "primary" },
            "lagMs": s.lag_ms,
            "problem": s.problem,
            "standbyReads": s.reads,
            "primaryReads": s.fallbacks,
        });
        if db.is_ok() && !s.in_use {
            body["status"] = json!("warning");
        }
    }
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
    if let Some(s) = state.fhir.operations().standby_status() {
        metrics::gauge!("lianyi_read_standby_in_use").set(if s.in_use { 1.0 } else { 0.0 });
        if let Some(lag) = s.lag_ms {
            metrics::gauge!("lianyi_read_standby_lag_seconds").set(lag as f64 / 1000.0);
        }
        metrics::gauge!("lianyi_reads_total", "database" => "standby").set(s.reads as f64);
        metrics::gauge!("lianyi_reads_total", "database" => "primary").set(s.fallbacks as f64);
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
    // The imaging archive: what the index holds (C-STORE rate and failures are counted
    // as they happen: lianyi_dicom_instances_stored_total, lianyi_dicom_store_failures_total,
    // lianyi_dicom_associations_refused_total).
    match state.imaging.totals().await {
        Ok(t) => {
            metrics::gauge!("lianyi_imaging_studies").set(t.studies as f64);
            metrics::gauge!("lianyi_imaging_instances").set(t.instances as f64);
            metrics::gauge!("lianyi_imaging_bytes").set(t.bytes as f64);
            metrics::gauge!("lianyi_imaging_unmatched_studies").set(t.unmatched as f64);
        }
        Err(e) => tracing::warn!(error = %e, "imaging totals unavailable"),
    }
    // The dashboards' daily figures: how far behind the records they are.
    match state.dashboards.lag().await {
        Ok(lag) => metrics::gauge!("lianyi_dashboard_lag_events").set(lag as f64),
        Err(e) => tracing::warn!(error = %e, "dashboard lag unavailable"),
    }
    if let Ok(fs) = rustix::fs::statvfs(state.imaging.folder()) {
        metrics::gauge!("lianyi_imaging_disk_free_bytes").set((fs.f_bavail * fs.f_frsize) as f64);
    }
    let text = METRICS.get().and_then(|h| h.as_ref()).map(|h| h.render()).unwrap_or_default();
    let mut resp = text.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    resp
}
