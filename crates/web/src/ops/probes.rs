//! Monitoring's pages beside the status wall: every probe with its state
//! (`/ops/monitor/probes`), a new probe on a CI (`/ops/monitor/probes/new?ci=CODE`),
//! and a probe's page — its definition, a chart of each metric over the last day,
//! week or month, its rules with a form to add one, its alerts and its latest runs.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use lianyi_monitor::probe::{Kind, SNMP_AUTH, SNMP_PRIVACY};
use lianyi_ops::desk::Desk;
use lianyi_ops::monitor::{MonitorError, NewProbe, RuleForm};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{campus_choices, failed};
use crate::AppState;
use crate::ui::chart::{self, Point};
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, form_value, local_time, not_found, page, see_other};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, shell};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/ops/monitor/probes", get(list_page).post(create))
        .route("/ops/monitor/probes/new", get(new_page))
        .route("/ops/monitor/probes/{id}", get(probe_page))
        .route("/ops/monitor/probes/{id}/rules", post(add_rule))
}

/// One metric of a probe between `from` and `to` drawn as a chart (a pause of more
/// than two intervals, or two buckets, breaks the line), with its points.
pub(super) async fn metric_chart(
    state: &AppState,
    caller: &lianyi_security::Caller,
    probe: &lianyi_store::monitor::Probe,
    metric: &str,
    from: i64,
    to: i64,
) -> Result<(String, Vec<Point>), MonitorError> {
    let (width, points) = state.monitor.series(caller, probe.id, metric, from, to).await?;
    let points: Vec<Point> = points.into_iter().map(|(at, avg, lo, hi)| Point { at, avg, lo, hi }).collect();
    let gap = 2 * (probe.interval_s * 1_000).max(width) + 1_000;
    Ok((chart::line(metric, &points, from, to, gap), points))
}

/// Charts on one probe's page at most (an SNMP switch measures many interfaces).
const CHARTS: usize = 12;

/// The form's broken rules: (field, text).
fn error_rows(t: Tr, e: &MonitorError) -> Vec<(String, String)> {
    match e {
        MonitorError::Invalid(errors) => super::error_rows(t, errors),
        other => vec![("probe".into(), other.to_string())],
    }
}

struct ProbeRow {
    id: i64,
    ci: String,
    kind: String,
    target: String,
    interval: i64,
    runner: String,
    state: &'static str,
    last: String,
    error: String,
}

#[derive(Template)]
#[template(path = "ops/probes.html")]
struct ListPage<'a> {
    t: Tr,
    shell: &'a Shell,
    probes: Vec<ProbeRow>,
}

async fn list_page(State(state): State<AppState>, s: Signed) -> Response {
    let (info, t) = (&s.info, s.t);
    if !Desk::may_work(&info.caller) {
        return forbidden(t);
    }
    let probes = match state.monitor.probes(&info.caller, None).await {
        Ok(p) => p,
        Err(MonitorError::Forbidden(_)) => return forbidden(t),
        Err(e) => return failed(t, "probes", e),
    };
    let cis = match state.cmdb.many(&info.caller, &probes.iter().map(|p| p.ci).collect::<Vec<_>>()).await {
        Ok(c) => c,
        Err(e) => return failed(t, "probes' CIs", e),
    };
    let mut campuses: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for c in probes.iter().filter_map(|p| p.campus.clone()).collect::<std::collections::BTreeSet<_>>() {
        let name = crate::ui::shell::campus_name(&state, &c, t).await;
        campuses.insert(c, name);
    }
    let rows = probes
        .iter()
        .map(|p| ProbeRow {
            id: p.id,
            ci: cis.iter().find(|c| c.id == p.ci).map(|c| format!("{} ({})", c.name, c.code)).unwrap_or_default(),
            kind: p.kind.clone(),
            target: p.target.clone(),
            interval: p.interval_s,
            runner: p.campus.as_ref().map(|c| t.fmt("mon-runner-collector", &campuses[c])).unwrap_or_default(),
            state: p.state(),
            last: p.last_at.map(local_time).unwrap_or_default(),
            error: p.last_error.clone().unwrap_or_default(),
        })
        .collect();
    let shell = shell(&state, info, t, &s.headers).await;
    page(ListPage { t, shell: &shell, probes: rows }.render())
}

/// The new-probe form's values, as posted (kept when it is shown again).
#[derive(Default)]
struct ProbeForm {
    ci: String,
    kind: String,
    target: String,
    interval: String,
    timeout: String,
    runner: String,
    expect_status: String,
    expect_text: String,
    insecure: bool,
    metrics: String,
    snmp_version: String,
    community: String,
    user: String,
    auth: String,
    auth_key: String,
    privacy: String,
    privacy_key: String,
    oids: String,
}

impl ProbeForm {
    fn of(f: &[(String, String)]) -> ProbeForm {
        let v = |k: &str| form_value(f, k).trim().to_string();
        ProbeForm {
            ci: v("ci"),
            kind: v("kind"),
            target: v("target"),
            interval: v("interval"),
            timeout: v("timeout"),
            runner: v("runner"),
            expect_status: v("expect_status"),
            expect_text: v("expect_text"),
            insecure: v("insecure") == "1",
            metrics: v("metrics"),
            snmp_version: v("snmp_version"),
            community: v("community"),
            user: v("user"),
            auth: v("auth"),
            auth_key: form_value(f, "auth_key"),
            privacy: v("privacy"),
            privacy_key: form_value(f, "privacy_key"),
            oids: v("oids"),
        }
    }

    /// The probe as the API takes it (one reading of a definition, the API's).
    fn json(&self) -> Value {
        let number = |s: &str| if s.is_empty() { Value::Null } else { s.parse::<u64>().map_or(json!(s), |n| json!(n)) };
        let list = |s: &str| -> Vec<String> {
            s.split([',', '\n', ' ', '\r']).map(str::trim).filter(|x| !x.is_empty()).map(String::from).collect()
        };
        let mut v = json!({
            "kind": self.kind, "target": self.target, "interval": number(&self.interval),
            "timeout": number(&self.timeout), "expectStatus": number(&self.expect_status),
            "expectText": self.expect_text, "insecure": self.insecure, "metrics": list(&self.metrics),
        });
        if self.kind == "snmp" {
            v["snmp"] = json!({
                "version": self.snmp_version, "community": self.community, "user": self.user, "auth": self.auth,
                "authKey": self.auth_key, "privacy": self.privacy, "privacyKey": self.privacy_key,
                "oids": list(&self.oids),
            });
        }
        v
    }
}

#[derive(Template)]
#[template(path = "ops/probe_new.html")]
struct NewPage<'a> {
    t: Tr,
    shell: &'a Shell,
    form: ProbeForm,
    kinds: Vec<&'static str>,
    auths: Vec<&'static str>,
    privacies: Vec<&'static str>,
    /// (campus id, name, selected); the central server first as "".
    runners: Vec<(String, String, bool)>,
    errors: Vec<(String, String)>,
}

async fn render_new(state: &AppState, s: &Signed, form: ProbeForm, errors: Vec<(String, String)>) -> Response {
    let t = s.t;
    let mut runners = campus_choices(state, t, &form.runner).await;
    if let Some(central) = runners.first_mut() {
        central.1 = t.get("mon-runner-central").to_string();
    }
    let shell = shell(state, &s.info, t, &s.headers).await;
    page(
        NewPage {
            t,
            shell: &shell,
            form,
            kinds: Kind::ALL.iter().map(|k| k.as_str()).collect(),
            auths: SNMP_AUTH.to_vec(),
            privacies: SNMP_PRIVACY.to_vec(),
            runners,
            errors,
        }
        .render(),
    )
}

#[derive(Deserialize, Default)]
struct NewQuery {
    ci: Option<String>,
}

async fn new_page(State(state): State<AppState>, s: Signed, Query(q): Query<NewQuery>) -> Response {
    if !Desk::may_work(&s.info.caller) {
        return forbidden(s.t);
    }
    let form = ProbeForm {
        ci: q.ci.unwrap_or_default(),
        kind: "tcp".into(),
        interval: "60".into(),
        snmp_version: "2c".into(),
        ..ProbeForm::default()
    };
    render_new(&state, &s, form, Vec::new()).await
}

async fn create(State(state): State<AppState>, s: Signed, Form(f): Form<Vec<(String, String)>>) -> Response {
    if !s.csrf_ok(&form_value(&f, "csrf")) || !Desk::may_work(&s.info.caller) {
        return forbidden(s.t);
    }
    let form = ProbeForm::of(&f);
    let spec = match super::monitor_api::spec_of(&form.json()) {
        Ok(spec) => spec,
        Err(e) => {
            let errors = error_rows(s.t, &e);
            return render_new(&state, &s, form, errors).await;
        }
    };
    let new = NewProbe { ci: form.ci.clone(), runner: form.runner.clone(), spec };
    match state.monitor.create(&s.info.caller, &new).await {
        Ok(id) => see_other(&format!("/ops/monitor/probes/{id}")),
        Err(MonitorError::Forbidden(_)) => forbidden(s.t),
        Err(e @ MonitorError::Invalid(_)) => {
            let errors = error_rows(s.t, &e);
            render_new(&state, &s, form, errors).await
        }
        Err(e) => failed(s.t, "new probe", e),
    }
}

struct ChartView {
    metric: String,
    svg: String,
    /// The latest value, and the range's lowest and highest.
    last: String,
    lo: String,
    hi: String,
}

struct RuleView {
    metric: String,
    condition: String,
    severity: String,
}

struct AlertRow {
    metric: String,
    severity: String,
    status: String,
    opened: String,
    resolved: String,
    value: String,
    incident: Option<i64>,
}

struct RunRow {
    at: String,
    up: bool,
    source: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "ops/probe.html")]
struct ProbePage<'a> {
    t: Tr,
    shell: &'a Shell,
    id: i64,
    ci_id: i64,
    ci: String,
    kind: String,
    target: String,
    interval: i64,
    runner: String,
    state: &'static str,
    last: String,
    error: String,
    /// (key, label, selected) for 1d, 7d, 30d.
    ranges: Vec<(&'static str, String, bool)>,
    charts: Vec<ChartView>,
    more: usize,
    rules: Vec<RuleView>,
    alerts: Vec<AlertRow>,
    runs: Vec<RunRow>,
    rule_form: (String, String, String, String, String, String),
    errors: Vec<(String, String)>,
}

#[derive(Deserialize, Default)]
struct ProbeQuery {
    range: Option<String>,
}

fn value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{v:.0}") } else { format!("{v:.2}") }
}

async fn render_probe(
    state: &AppState,
    s: &Signed,
    id: i64,
    range: &str,
    rule_form: (String, String, String, String, String, String),
    errors: Vec<(String, String)>,
) -> Response {
    let (info, t) = (&s.info, s.t);
    let card = match state.monitor.card(&info.caller, id, 20).await {
        Ok(c) => c,
        Err(MonitorError::Forbidden(_)) => return forbidden(t),
        Err(MonitorError::NotFound) => return not_found(t),
        Err(e) => return failed(t, "probe", e),
    };
    let days = match range {
        "7d" => 7,
        "30d" => 30,
        _ => 1,
    };
    let to = state.fhir.now_ms();
    let from = to - days * 86_400_000;
    let metrics = match state.monitor.metrics(&info.caller, id).await {
        Ok(m) => m,
        Err(e) => return failed(t, "probe metrics", e),
    };
    let more = metrics.len().saturating_sub(CHARTS);
    let mut charts = Vec::new();
    for metric in metrics.into_iter().take(CHARTS) {
        let (svg, points) = match metric_chart(state, &info.caller, &card.probe, &metric, from, to).await {
            Ok(c) => c,
            Err(e) => return failed(t, "probe series", e),
        };
        let (lo, hi) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| (l.min(p.lo), h.max(p.hi)));
        charts.push(ChartView {
            svg,
            last: points.last().map(|p| value(p.avg)).unwrap_or_default(),
            lo: if lo.is_finite() { value(lo) } else { String::new() },
            hi: if hi.is_finite() { value(hi) } else { String::new() },
            metric,
        });
    }
    let rules = card
        .rules
        .iter()
        .map(|r| {
            let mut condition = format!("{} {}", t.named("mon-op", &r.op), value(r.threshold));
            if let Some(c) = r.clear {
                condition.push_str(&format!(" · {} {}", t.get("mon-rule-clear"), value(c)));
            }
            if r.for_ms > 0 {
                condition.push_str(&format!(" · {}", t.fmt("mon-rule-for", &(r.for_ms / 1_000).to_string())));
            }
            RuleView { metric: r.metric.clone(), condition, severity: t.named("mon-severity", &r.severity) }
        })
        .collect();
    let alerts = card
        .alerts
        .iter()
        .take(20)
        .map(|a| AlertRow {
            metric: a.metric.clone(),
            severity: t.named("mon-severity", &a.severity),
            status: t.named("mon-alert-status", &a.status),
            opened: local_time(a.opened_at),
            resolved: a.resolved_at.map(local_time).unwrap_or_default(),
            value: value(a.value),
            incident: a.ticket,
        })
        .collect();
    let runs = card
        .runs
        .iter()
        .map(|r| RunRow {
            at: local_time(r.at),
            up: r.up,
            source: match r.source.strip_prefix("collector:") {
                Some(client) => t.fmt("mon-source-collector", client),
                None => t.get("mon-runner-central").to_string(),
            },
            detail: r.error.clone().or_else(|| r.note.clone()).unwrap_or_default(),
        })
        .collect();
    let p = &card.probe;
    let ranges = [("1d", "mon-range-1d"), ("7d", "mon-range-7d"), ("30d", "mon-range-30d")]
        .into_iter()
        .map(|(k, label)| (k, t.get(label).to_string(), k == range || (k == "1d" && days == 1)))
        .collect();
    let runner = match &p.campus {
        Some(c) => t.fmt("mon-runner-collector", &crate::ui::shell::campus_name(state, c, t).await),
        None => t.get("mon-runner-central").to_string(),
    };
    let shell = shell(state, info, t, &s.headers).await;
    page(
        ProbePage {
            t,
            shell: &shell,
            id,
            ci_id: card.ci.id,
            ci: format!("{} ({})", card.ci.name, card.ci.code),
            kind: p.kind.clone(),
            target: p.target.clone(),
            interval: p.interval_s,
            runner,
            state: p.state(),
            last: p.last_at.map(local_time).unwrap_or_default(),
            error: p.last_error.clone().unwrap_or_default(),
            ranges,
            charts,
            more,
            rules,
            alerts,
            runs,
            rule_form,
            errors,
        }
        .render(),
    )
}

async fn probe_page(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<i64>,
    Query(q): Query<ProbeQuery>,
) -> Response {
    if !Desk::may_work(&s.info.caller) {
        return forbidden(s.t);
    }
    let blank = (String::new(), "above".into(), String::new(), String::new(), String::new(), "warning".into());
    render_probe(&state, &s, id, q.range.as_deref().unwrap_or("1d"), blank, Vec::new()).await
}

async fn add_rule(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<i64>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    if !s.csrf_ok(&form_value(&f, "csrf")) || !Desk::may_work(&s.info.caller) {
        return forbidden(s.t);
    }
    let v = |k: &str| form_value(&f, k).trim().to_string();
    let form = RuleForm {
        metric: v("metric"),
        op: v("op"),
        threshold: v("threshold"),
        clear: v("clear"),
        for_s: v("for_s"),
        severity: v("severity"),
    };
    match state.monitor.add_rule(&s.info.caller, id, &form).await {
        Ok(_) => see_other(&format!("/ops/monitor/probes/{id}#mon-rules")),
        Err(MonitorError::Forbidden(_)) => forbidden(s.t),
        Err(MonitorError::NotFound) => not_found(s.t),
        Err(e @ MonitorError::Invalid(_)) => {
            let errors = error_rows(s.t, &e);
            let kept = (form.metric, form.op, form.threshold, form.clear, form.for_s, form.severity);
            render_probe(&state, &s, id, "1d", kept, errors).await
        }
        Err(e) => failed(s.t, "new rule", e),
    }
}
