//! `/api/ops/probes`, `/api/ops/alerts` and the collectors' two calls, for a bearer
//! token with the `lianyi:ops` scope word. A campus's collector is an API client
//! bound to that campus: it fetches its probes (`GET /api/ops/collector/probes`) and
//! sends results in batches (`POST /api/ops/collector/results`); a result sent again
//! is answered as a duplicate and counted once.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lianyi_monitor::check::Outcome;
use lianyi_monitor::probe::{Kind, Snmp, Spec};
use lianyi_ops::cmdb::FieldError;
use lianyi_ops::monitor::{MonitorError, NewProbe, RuleForm};
use lianyi_store::monitor::{Alert, Probe, Rule, Run};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{refusal, time};
use crate::AppState;
use crate::ui::auth::RemoteCaller;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/ops/probes", get(list).post(create))
        .route("/api/ops/probes/{id}", get(read))
        .route("/api/ops/probes/{id}/rules", post(add_rule))
        .route("/api/ops/alerts", get(alerts))
        .route("/api/ops/availability", get(availability))
        .route("/api/ops/collector/probes", get(assignments))
        .route("/api/ops/collector/results", post(results))
}

pub(super) fn error(e: MonitorError) -> Response {
    let (status, body) = error_body(e);
    (status, Json(body)).into_response()
}

fn error_body(e: MonitorError) -> (StatusCode, Value) {
    let status = match &e {
        MonitorError::Forbidden(_) => StatusCode::FORBIDDEN,
        MonitorError::NotFound => StatusCode::NOT_FOUND,
        MonitorError::Invalid(_) => StatusCode::BAD_REQUEST,
        _ => {
            tracing::error!(error = %e, "monitoring API failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, json!({"error": "internal error"}));
        }
    };
    let errors = if let MonitorError::Invalid(errors) = &e { errors.as_slice() } else { &[] };
    (status, refusal(e.to_string(), errors))
}

fn invalid(field: &str, rule: &'static str, detail: &str) -> MonitorError {
    MonitorError::Invalid(vec![FieldError::new(field, rule, detail)])
}

fn field_error(field: &str, rule: &'static str, detail: &str) -> Response {
    error(invalid(field, rule, detail))
}

pub(super) fn probe_json(p: &Probe) -> Value {
    json!({
        "id": p.id, "ci": p.ci, "kind": p.kind, "target": p.target, "interval": p.interval_s,
        "runner": p.campus, "enabled": p.enabled,
        "lastRun": p.last_at.map(time), "lastUp": p.last_up, "lastError": p.last_error,
    })
}

fn rule_json(r: &Rule) -> Value {
    json!({
        "id": r.id, "metric": r.metric, "op": r.op, "threshold": r.threshold, "clear": r.clear,
        "forSeconds": r.for_ms / 1_000, "severity": r.severity,
    })
}

pub(super) fn alert_json(a: &Alert) -> Value {
    json!({
        "id": a.id, "probe": a.probe, "ci": a.ci, "rule": a.rule, "metric": a.metric, "severity": a.severity,
        "status": a.status, "opened": time(a.opened_at), "resolved": a.resolved_at.map(time), "value": a.value,
        "flapping": a.flapping, "suppressedBy": a.suppressed_by, "maintenance": a.maintenance, "incident": a.ticket,
        "detail": a.detail,
    })
}

fn run_json(r: &Run) -> Value {
    json!({"at": time(r.at), "up": r.up, "error": r.error, "note": r.note, "source": r.source})
}

/// A probe's definition from JSON: `kind`, `target`, `interval` (seconds, default
/// 60), `timeout` (ms, default 5000) and the kind's own fields.
pub(super) fn spec_of(v: &Value) -> Result<Spec, MonitorError> {
    let kind = v["kind"].as_str().unwrap_or_default();
    let Some(kind) = Kind::parse(kind) else {
        let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        return Err(invalid("kind", "choice", &format!("one of {}", kinds.join(", "))));
    };
    let whole = |name: &str, default: u32| match &v[name] {
        Value::Null => Ok(default),
        n => n.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| invalid(name, "integer", "a whole number")),
    };
    let text = |name: &str| v[name].as_str().unwrap_or_default().to_string();
    let snmp = match &v["snmp"] {
        Value::Null => None,
        s => Some(Snmp {
            version: s["version"].as_str().unwrap_or_default().into(),
            community: s["community"].as_str().unwrap_or_default().into(),
            user: s["user"].as_str().unwrap_or_default().into(),
            auth: s["auth"].as_str().unwrap_or_default().into(),
            auth_key: s["authKey"].as_str().unwrap_or_default().into(),
            privacy: s["privacy"].as_str().unwrap_or_default().into(),
            privacy_key: s["privacyKey"].as_str().unwrap_or_default().into(),
            oids: s["oids"]
                .as_array()
                .map(|a| a.iter().filter_map(|o| o.as_str().map(String::from)).collect())
                .unwrap_or_default(),
        }),
    };
    let interval_s = whole("interval", 60)?;
    // Without a timeout: 5 s, or the interval if that is shorter.
    let timeout_ms = whole("timeout", interval_s.saturating_mul(1_000).clamp(100, 5_000))?;
    Ok(Spec {
        kind,
        target: text("target"),
        interval_s,
        timeout_ms,
        expect_status: match &v["expectStatus"] {
            Value::Null => None,
            n => Some(
                n.as_u64()
                    .and_then(|n| u16::try_from(n).ok())
                    .ok_or_else(|| invalid("expect_status", "range", "an HTTP status, 100 to 599"))?,
            ),
        },
        expect_text: text("expectText"),
        insecure: v["insecure"].as_bool().unwrap_or(false),
        metrics: v["metrics"]
            .as_array()
            .map(|a| a.iter().filter_map(|m| m.as_str().map(String::from)).collect())
            .unwrap_or_default(),
        snmp,
    })
}

#[derive(Deserialize, Default)]
struct ListQuery {
    ci: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Query(q): Query<ListQuery>,
) -> Response {
    match state.monitor.probes(&caller, q.ci).await {
        Ok(p) => Json(json!({"probes": p.iter().map(probe_json).collect::<Vec<_>>()})).into_response(),
        Err(e) => error(e),
    }
}

async fn create(State(state): State<AppState>, RemoteCaller(caller): RemoteCaller, Json(v): Json<Value>) -> Response {
    let spec = match spec_of(&v) {
        Ok(s) => s,
        Err(e) => return error(e),
    };
    let new = NewProbe {
        ci: v["ci"].as_str().unwrap_or_default().into(),
        runner: v["runner"].as_str().unwrap_or_default().into(),
        spec,
    };
    match state.monitor.create(&caller, &new).await {
        Ok(id) => match state.monitor.card(&caller, id, 20).await {
            Ok(c) => (StatusCode::CREATED, [("location", format!("/api/ops/probes/{id}"))], Json(card_json(&c)))
                .into_response(),
            Err(e) => error(e),
        },
        Err(e) => error(e),
    }
}

fn card_json(c: &lianyi_ops::monitor::ProbeCard) -> Value {
    let mut v = probe_json(&c.probe);
    v["ci"] = json!({"id": c.ci.id, "code": c.ci.code, "name": c.ci.name, "class": c.ci.class, "campus": c.ci.campus});
    v["rules"] = json!(c.rules.iter().map(rule_json).collect::<Vec<_>>());
    v["runs"] = json!(c.runs.iter().map(run_json).collect::<Vec<_>>());
    v["alerts"] = json!(c.alerts.iter().map(alert_json).collect::<Vec<_>>());
    v
}

#[derive(Deserialize, Default)]
struct CardQuery {
    /// How many of the last runs (default 20, at most 10,000).
    runs: Option<i64>,
}

async fn read(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Path(id): Path<i64>,
    Query(q): Query<CardQuery>,
) -> Response {
    match state.monitor.card(&caller, id, q.runs.unwrap_or(20)).await {
        Ok(c) => Json(card_json(&c)).into_response(),
        Err(e) => error(e),
    }
}

async fn add_rule(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Path(id): Path<i64>,
    Json(v): Json<Value>,
) -> Response {
    let text = |name: &str| match &v[name] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let form = RuleForm {
        metric: text("metric"),
        op: text("op"),
        threshold: text("threshold"),
        clear: text("clear"),
        for_s: text("forSeconds"),
        severity: text("severity"),
    };
    match state.monitor.add_rule(&caller, id, &form).await {
        Ok(rule) => (StatusCode::CREATED, Json(json!({"id": rule}))).into_response(),
        Err(e) => error(e),
    }
}

#[derive(Deserialize, Default)]
struct AlertQuery {
    /// `true`: open alerts only.
    open: Option<bool>,
    limit: Option<i64>,
}

async fn alerts(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Query(q): Query<AlertQuery>,
) -> Response {
    match state.monitor.alerts(&caller, q.open.unwrap_or(false), q.limit.unwrap_or(100)).await {
        Ok(a) => Json(json!({"alerts": a.iter().map(alert_json).collect::<Vec<_>>()})).into_response(),
        Err(e) => error(e),
    }
}

#[derive(Deserialize, Default)]
struct AvailabilityQuery {
    /// `YYYY-MM` (default: this month).
    month: Option<String>,
    campus: Option<String>,
}

/// Each business system's availability in a month against its target.
async fn availability(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Query(q): Query<AvailabilityQuery>,
) -> Response {
    let now = state.fhir.now_ms();
    let month = q.month.unwrap_or_else(|| lianyi_ops::monitor::month_of(now));
    match state.monitor.availability(&caller, q.campus.as_deref().filter(|c| !c.is_empty()), &month, now).await {
        Ok(list) => Json(json!({
            "month": month,
            "systems": list.iter().map(|a| json!({
                "ci": a.ci.code, "name": a.ci.name, "class": a.ci.class, "campus": a.ci.campus,
                "target": a.target, "availability": crate::ui::render::milli_percent(a.milli_percent()),
                "downSeconds": a.down_ms / 1_000, "outages": a.outages, "missed": a.missed(),
            })).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => error(e),
    }
}

async fn assignments(State(state): State<AppState>, RemoteCaller(caller): RemoteCaller) -> Response {
    match state.monitor.assignments(&caller).await {
        Ok(list) => Json(json!({
            "probes": list.iter().map(|(id, spec)| json!({"id": id, "spec": spec})).collect::<Vec<_>>()
        }))
        .into_response(),
        Err(e) => error(e),
    }
}

/// One result as a collector sends it.
#[derive(Deserialize)]
struct Sent {
    probe: i64,
    /// Epoch milliseconds of the run.
    at: i64,
    outcome: Outcome,
}

#[derive(Deserialize)]
struct Batch {
    results: Vec<Sent>,
}

/// Stores a batch of results in order; answers how many were new and how many had
/// arrived before. A result that is refused stops the batch there (what came before
/// it is stored) and the answer names it.
async fn results(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    body: axum::body::Bytes,
) -> Response {
    let batch: Batch = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return field_error("results", "format", &format!("{{\"results\": [{{probe, at, outcome}}]}}: {e}")),
    };
    if batch.results.len() > 5_000 {
        return field_error("results", "length", "at most 5,000 results per batch");
    }
    let (mut stored, mut duplicates) = (0, 0);
    for (i, r) in batch.results.iter().enumerate() {
        match state.monitor.record(&caller, r.probe, r.at, &r.outcome).await {
            Ok(true) => stored += 1,
            Ok(false) => duplicates += 1,
            Err(e) => {
                let (status, mut body) = error_body(e);
                body["refused"] = json!({"index": i, "probe": r.probe});
                body["stored"] = json!(stored);
                body["duplicates"] = json!(duplicates);
                return (status, Json(body)).into_response();
            }
        }
    }
    Json(json!({"stored": stored, "duplicates": duplicates})).into_response()
}
