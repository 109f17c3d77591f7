//! Monitoring bound to the configuration database: probes on CIs, run by the central
//! server or a campus's collector; each run's readings go through the probe's rules
//! ([`lianyi_monitor::rules`]); an alert that is a root cause opens an incident on its
//! CI (or joins the one already open there), and resolves it when every alert of
//! that incident has recovered. An alert on a CI whose dependencies are down is
//! suppressed and names its root; an alert on a CI that a scheduled change touches
//! during its window is held (maintenance). Every call checks the caller here and is
//! audited; the engine itself reads no clock.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use lianyi_monitor::check::{Checker, Outcome};
use lianyi_monitor::probe::{Kind, Spec};
use lianyi_monitor::rules::{self, Change, Damping, Op, Severity, Track};
use lianyi_security::roles::Capability;
use lianyi_security::{ActorKind, Caller, SystemTask};
use lianyi_services::FhirService;
use lianyi_store::StoreError;
use lianyi_store::cmdb::{Ci, Walk};
use lianyi_store::monitor::{Alert, Probe, ProbeQuery, Rule, Run};

use crate::cmdb::FieldError;
use crate::desk::{Desk, DeskError, Report};

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{}", crate::cmdb::joined(.0))]
    Invalid(Vec<FieldError>),
    #[error("no such probe")]
    NotFound,
    #[error("the audit record could not be written: {0}")]
    Audit(String),
    #[error(transparent)]
    Desk(#[from] DeskError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: &str, rule: &'static str, detail: impl Into<String>) -> MonitorError {
    MonitorError::Invalid(vec![FieldError::new(field, rule, detail)])
}

/// A probe to add: the CI (by code), where it runs (empty: the central server; a
/// campus: that campus's collector) and its definition.
#[derive(Clone, Debug)]
pub struct NewProbe {
    pub ci: String,
    pub runner: String,
    pub spec: Spec,
}

/// A rule to add, as the form or the API gives it.
#[derive(Clone, Debug, Default)]
pub struct RuleForm {
    pub metric: String,
    pub op: String,
    pub threshold: String,
    pub clear: String,
    /// Seconds.
    pub for_s: String,
    pub severity: String,
}

/// A probe with what it knows.
#[derive(Clone, Debug)]
pub struct ProbeCard {
    pub probe: Probe,
    pub spec: Spec,
    pub ci: Ci,
    pub rules: Vec<Rule>,
    pub runs: Vec<Run>,
    pub alerts: Vec<Alert>,
}

/// A business system's or clinical service's state on the status wall.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    Green,
    /// Something it needs is held by a scheduled change.
    Maintenance,
    /// A warning on something it needs.
    Amber,
    /// Something it needs is down, or a major or critical alert.
    Red,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Green => "green",
            Health::Maintenance => "maintenance",
            Health::Amber => "amber",
            Health::Red => "red",
        }
    }
}

/// How a CI stands on the topology, worst first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Standing {
    /// Not answering, or a major or critical alert of its own.
    Down,
    /// A warning of its own.
    Warning,
    /// Held by a scheduled change.
    Maintenance,
    /// Suppressed under a root cause, or something it needs is down or warns.
    Affected,
    /// Watched by a probe, and fine.
    Up,
    /// No probe watches it.
    Unmonitored,
}

impl Standing {
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::Down => "down",
            Standing::Warning => "warning",
            Standing::Maintenance => "maintenance",
            Standing::Affected => "affected",
            Standing::Up => "up",
            Standing::Unmonitored => "unmonitored",
        }
    }
}

/// A business system's or clinical service's availability over a period.
#[derive(Clone, Debug)]
pub struct Availability {
    pub ci: Ci,
    /// Its target in percent as set on the CI (`99.9`), if any.
    pub target: Option<String>,
    /// The period counted (up to now).
    pub span_ms: i64,
    pub down_ms: i64,
    /// Separate outages.
    pub outages: usize,
}

impl Availability {
    /// Available time in thousandths of a percent (99.95 % is 99,950), exact.
    pub fn milli_percent(&self) -> i64 {
        if self.span_ms == 0 {
            return 100_000;
        }
        let up = i128::from(self.span_ms - self.down_ms);
        (up * 100_000 / i128::from(self.span_ms)) as i64
    }

    /// The target in thousandths of a percent.
    pub fn target_milli(&self) -> Option<i64> {
        crate::cmdb::percent_milli(self.target.as_deref()?)
    }

    /// Whether it fell short of its target (`false` without one).
    pub fn missed(&self) -> bool {
        self.target_milli().is_some_and(|t| self.milli_percent() < t)
    }
}

/// What an alert makes of the CIs it touches: maintenance when a change holds it, red
/// when its CI is down or it is major or critical, else amber.
fn health(a: &Alert) -> Health {
    if a.maintenance.is_some() {
        Health::Maintenance
    } else if a.metric == "up" || a.severity != "warning" {
        Health::Red
    } else {
        Health::Amber
    }
}

use crate::stats::OFFSET_MS as BEIJING_MS;

/// The month `YYYY-MM` as `[from, to)` in milliseconds (Beijing time).
pub fn month_span(month: &str) -> Option<(i64, i64)> {
    let (y, m) = month.trim().split_once('-')?;
    let (y, m): (i64, u32) = (y.parse().ok()?, m.parse().ok()?);
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || month.trim().len() != 7 {
        return None;
    }
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let start = |y, m| lianyi_fhir::datetime::days_from_civil(y, m, 1) * DAY_MS - BEIJING_MS;
    Some((start(y, m), start(ny, nm)))
}

/// The month (`YYYY-MM`, Beijing time) `ms` falls in.
pub fn month_of(ms: i64) -> String {
    let (y, m, _) = lianyi_fhir::datetime::civil_from_days((ms + BEIJING_MS).div_euclid(DAY_MS));
    format!("{y:04}-{m:02}")
}

/// Sorted spans merged where they overlap or touch.
fn merge(spans: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for (a, b) in spans {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// A CI's worst health, since when, and the causes.
type Worst = (Health, i64, Vec<(Health, String)>);

/// One tile of the status wall.
#[derive(Clone, Debug)]
pub struct Tile {
    pub ci: Ci,
    pub health: Health,
    /// Since when it is not green.
    pub since: Option<i64>,
    /// The CIs whose alerts make it so (codes), worst first.
    pub causes: Vec<String>,
}

/// The status wall of the group or one campus: every business system and clinical
/// service, worst first, and the alerts open now with their CIs.
#[derive(Clone, Debug)]
pub struct Wall {
    pub tiles: Vec<Tile>,
    pub alerts: Vec<(Alert, Ci)>,
}

/// Whether `metric` matches a rule's `pattern` (one `*` matches any text).
pub fn matches(pattern: &str, metric: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == metric,
        Some((head, tail)) => {
            metric.len() >= head.len() + tail.len() && metric.starts_with(head) && metric.ends_with(tail)
        }
    }
}

/// Days raw samples are kept before they are rolled up (the default).
pub const DEFAULT_RAW_DAYS: i64 = 7;
/// Days the 5-minute and the hourly rollups are kept.
pub const ROLLUP_DAYS: [(i64, i64); 2] = [(300_000, 90), (3_600_000, 730)];
const DAY_MS: i64 = 86_400_000;

/// What a sealed SNMP secret in a stored definition starts with, and the associated
/// data it is sealed with.
const SEALED: &str = "sealed:";
const SNMP_AAD: &str = "ops.probe.snmp";

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Monitor {
    fhir: FhirService,
    desk: Desk,
    raw_days: i64,
    /// One run is processed at a time: a rule's track is read, advanced and written
    /// back without another run of the same probe in between.
    gate: std::sync::Arc<tokio::sync::Mutex<()>>,
    damping: Damping,
    phrases: std::sync::Arc<Phrases>,
    /// How old the newest good backup may be (the schedule's longest gap and an hour
    /// to make it); `None`: backups are not scheduled.
    backup_allowance: Option<i64>,
    /// When this server started (no backup is overdue before the first one is due).
    started_at: i64,
}

/// The texts monitoring writes into the incidents it opens, notes and resolves, in
/// the installation's language: templates whose holes (`{ci}`, `{metric}`,
/// `{value}`, `{since}`, `{at}`, `{severity}`, `{cis}`, `{n}`) are filled here. The
/// web layer gives them from its locale files, so every word is translated there.
#[derive(Clone, Debug)]
pub struct Phrases {
    /// A CI not answering: `{ci}`.
    pub down_title: String,
    /// A metric past its threshold: `{ci}`, `{metric}`, `{value}`.
    pub metric_title: String,
    /// The alert: `{severity}`, `{metric}`, `{value}`, `{since}`.
    pub alert: String,
    /// Appended (after a space) to a flapping alert.
    pub flapping: String,
    /// The resolution when every alert of the incident has recovered: `{metric}`,
    /// `{value}`, `{at}`.
    pub recovered: String,
    /// A note when one of several has: `{metric}`, `{at}`.
    pub recovered_note: String,
    /// The root's note naming what it suppresses: `{cis}`.
    pub also_down: String,
    /// Appended (after a space) when there are more than shown: `{n}`.
    pub in_all: String,
    /// The severities' names: warning, major, critical.
    pub severities: [String; 3],
}

impl Phrases {
    fn fill(template: &str, holes: &[(&str, &str)]) -> String {
        holes.iter().fold(template.to_string(), |s, (k, v)| s.replace(&format!("{{{k}}}"), v))
    }

    fn severity<'a>(&'a self, code: &'a str) -> &'a str {
        match Severity::parse(code) {
            Some(Severity::Warning) => &self.severities[0],
            Some(Severity::Major) => &self.severities[1],
            Some(Severity::Critical) => &self.severities[2],
            None => code,
        }
    }

    fn describe(&self, a: &Alert) -> String {
        let value = a.value.to_string();
        let mut s = Self::fill(
            &self.alert,
            &[
                ("severity", self.severity(&a.severity)),
                ("metric", &a.metric),
                ("value", &value),
                ("since", &time(a.opened_at)),
            ],
        );
        if a.flapping {
            s.push(' ');
            s.push_str(&self.flapping);
        }
        if let Some(d) = &a.detail {
            s.push_str(": ");
            s.push_str(d);
        }
        s
    }
}

impl Monitor {
    pub fn new(fhir: FhirService, desk: Desk, phrases: Phrases) -> Monitor {
        Monitor {
            desk,
            raw_days: DEFAULT_RAW_DAYS,
            gate: Default::default(),
            damping: Damping::default(),
            phrases: std::sync::Arc::new(phrases),
            backup_allowance: None,
            started_at: fhir.now_ms(),
            fhir,
        }
    }

    /// Watches the backups against `schedule`: overdue once the newest good backup is
    /// older than its longest gap and an hour.
    pub fn with_backup_schedule(mut self, schedule: Option<&crate::cron::Cron>) -> Monitor {
        self.backup_allowance = schedule.and_then(|c| c.longest_gap(self.started_at)).map(|gap| gap + 3_600_000);
        self
    }

    /// The backup check: `backup.overdue` (1 when the newest good backup, or the
    /// server's start when there is none, is older than the schedule allows),
    /// `backup.age_hours` of the newest good one, `backup.last_failed`.
    async fn backups(&self, now: i64) -> Outcome {
        let ops = self.fhir.operations();
        let (good, last) = match (ops.last_good_backup().await, ops.backup_runs(1).await) {
            (Ok(g), Ok(l)) => (g, l),
            (Err(e), _) | (_, Err(e)) => {
                return Outcome {
                    readings: vec![reading("up", 0.0)],
                    error: Some(format!("the backup runs: {e}")),
                    note: None,
                };
            }
        };
        let mut readings = vec![reading("up", 1.0)];
        let since = good.as_ref().and_then(|g| g.finished_at).unwrap_or(self.started_at);
        if let Some(g) = &good {
            let at = g.finished_at.unwrap_or(g.started_at);
            readings.push(reading("backup.age_hours", ((now - at) as f64 / 3_600_000.0 * 10.0).round() / 10.0));
        }
        let overdue = self.backup_allowance.is_some_and(|allowed| now - since > allowed);
        readings.push(reading("backup.overdue", if overdue { 1.0 } else { 0.0 }));
        let failed = last.first().is_some_and(|r| r.status == "failed");
        readings.push(reading("backup.last_failed", if failed { 1.0 } else { 0.0 }));
        let note = last.first().filter(|_| failed).and_then(|r| r.error.clone());
        Outcome { readings, error: None, note }
    }

    /// Gives the platform's backup job (the CMDB's `LIANYI-BACKUP`) its probe, run by
    /// the central server every five minutes, when it has none. Acts as the
    /// operations task.
    pub async fn watch_backups(&self) -> Result<(), MonitorError> {
        let task = Caller::task(SystemTask::Operations);
        let cmdb = self.fhir.operations().cmdb();
        let Some(ci) = cmdb.by_code(crate::platform::BACKUP_CI).await? else { return Ok(()) };
        let q = ProbeQuery { ci: Some(ci.id), runner: None, limit: 100 };
        if self.tables().probes(&q).await?.iter().any(|p| p.kind == Kind::Backup.as_str()) {
            return Ok(());
        }
        let spec = Spec { kind: Kind::Backup, interval_s: 300, timeout_ms: 10_000, ..Spec::default() };
        self.create(&task, &NewProbe { ci: ci.code, runner: String::new(), spec }).await?;
        Ok(())
    }

    /// Keeps raw samples `days` days (at least 1) before rolling them up.
    pub fn with_raw_days(mut self, days: i64) -> Monitor {
        self.raw_days = days.max(1);
        self
    }

    /// Housekeeping: raw samples (and runs) past their retention are rolled up into
    /// 5-minute and hourly buckets and deleted, five minutes of samples per step with
    /// a pause between steps so other writers get their turns; rollups past theirs
    /// are deleted a day at a time. At most `steps` steps of each; returns how many
    /// samples went.
    pub async fn housekeep(&self, now: i64, steps: usize) -> Result<u64, MonitorError> {
        let before = now - self.raw_days * DAY_MS;
        let mut gone = 0;
        for _ in 0..steps {
            match self.tables().roll_up_oldest(before, 300_000).await? {
                Some(n) => gone += n,
                None => break,
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        for (span, days) in ROLLUP_DAYS {
            for _ in 0..steps {
                if !self.tables().prune_rollups(span, now - days * DAY_MS).await? {
                    break;
                }
            }
        }
        Ok(gone)
    }

    fn tables(&self) -> lianyi_store::monitor::Monitor {
        self.fhir.operations().monitor()
    }

    fn operate(caller: &Caller) -> Result<(), MonitorError> {
        if caller.can(Capability::OperateIt) {
            Ok(())
        } else {
            Err(MonitorError::Forbidden("monitoring is for the IT team"))
        }
    }

    fn system() -> Caller {
        Caller::task(SystemTask::Monitoring)
    }

    async fn audit(&self, caller: &Caller, action: &str, detail: String) -> Result<(), MonitorError> {
        let mut e = caller.entry(self.fhir.now_ms(), action, "success");
        e.detail = Some(detail);
        self.fhir.audit_log().record(vec![e]).await.map_err(|e| MonitorError::Audit(e.to_string()))
    }

    /// Seals an SNMP probe's community and keys with the field cipher before the
    /// definition is stored (the database holds no device credential in clear).
    fn seal(&self, mut spec: Spec) -> Result<Spec, MonitorError> {
        if let Some(snmp) = spec.snmp.as_mut() {
            let cipher = self.fhir.protector().cipher();
            for secret in [&mut snmp.community, &mut snmp.auth_key, &mut snmp.privacy_key] {
                if !secret.is_empty() {
                    let sealed = cipher.encrypt(secret, SNMP_AAD).map_err(|e| MonitorError::Audit(e.to_string()))?;
                    *secret = format!("{SEALED}{sealed}");
                }
            }
        }
        Ok(spec)
    }

    /// Opens what [`Monitor::seal`] sealed, to run the probe (here or at a collector).
    fn unseal(&self, mut spec: Spec) -> Result<Spec, MonitorError> {
        if let Some(snmp) = spec.snmp.as_mut() {
            let cipher = self.fhir.protector().cipher();
            for secret in [&mut snmp.community, &mut snmp.auth_key, &mut snmp.privacy_key] {
                if let Some(sealed) = secret.strip_prefix(SEALED) {
                    *secret = cipher.decrypt(sealed, SNMP_AAD).map_err(|e| MonitorError::Audit(e.to_string()))?;
                }
            }
        }
        Ok(spec)
    }

    /// The rules every new probe starts with: down at two checks in a row opens an
    /// alert (held for half an interval: a probe that fails after being up is checked
    /// again half an interval later, so a failure becomes an incident within one and
    /// a half intervals), and the kind's own.
    fn default_rules(spec: &Spec, at: i64, by: &str) -> Vec<Rule> {
        let rule = |metric: &str, op: Op, threshold: f64, for_ms: i64, severity: Severity| Rule {
            metric: metric.into(),
            op: op.as_str().into(),
            threshold,
            clear: None,
            for_ms,
            severity: severity.as_str().into(),
            created_at: at,
            created_by: by.into(),
            ..Rule::default()
        };
        let interval_ms = i64::from(spec.interval_s) * 1_000;
        let mut out = vec![rule("up", Op::Below, 1.0, interval_ms / 2, Severity::Major)];
        match spec.kind {
            Kind::Tls => {
                out.push(rule("tls_days_left", Op::Below, 30.0, 0, Severity::Warning));
                out.push(rule("tls_days_left", Op::Below, 7.0, 0, Severity::Critical));
            }
            Kind::Platform => {
                out.push(rule("channel.*.queue_depth", Op::Above, 100.0, 2 * interval_ms, Severity::Major));
                out.push(rule("channel.*.dead_letters", Op::Above, 0.0, 0, Severity::Warning));
                out.push(rule("hl7.*.errors_per_min", Op::Above, 5.0, 2 * interval_ms, Severity::Warning));
            }
            Kind::Database => {
                // Only with a read standby: reads went to the primary for two checks.
                out.push(rule("standby.down", Op::Above, 0.0, 2 * interval_ms, Severity::Warning));
            }
            Kind::Backup => {
                out.push(rule("backup.overdue", Op::Above, 0.0, 0, Severity::Major));
                out.push(rule("backup.last_failed", Op::Above, 0.0, 0, Severity::Warning));
            }
            _ => {}
        }
        out
    }

    /// Adds a probe on a CI with its default rules.
    pub async fn create(&self, caller: &Caller, p: &NewProbe) -> Result<i64, MonitorError> {
        Self::operate(caller)?;
        let mut errors: Vec<FieldError> = p.spec.problems().into_iter().map(FieldError::from).collect();
        let ci = match p.ci.trim() {
            "" => {
                errors.push(FieldError::new("ci", "required", "the configuration item the probe checks"));
                None
            }
            code => {
                let found = self.fhir.operations().cmdb().by_code(code).await?;
                if found.is_none() {
                    errors.push(FieldError::new("ci", "unknown", format!("no configuration item {code}")));
                }
                found
            }
        };
        let runner = Some(p.runner.trim().to_string()).filter(|r| !r.is_empty());
        if let Some(campus) = &runner {
            if p.spec.kind.central_only() {
                let kind = p.spec.kind.as_str();
                errors.push(FieldError::new("runner", "central", format!("a {kind} probe runs in the central server")));
            } else if !self.fhir.campuses().await.map_err(|e| MonitorError::Audit(e.to_string()))?.contains(campus) {
                errors.push(FieldError::new("runner", "unknown", format!("no campus {campus}")));
            }
        }
        let Some(ci) = ci.filter(|_| errors.is_empty()) else {
            return Err(MonitorError::Invalid(errors));
        };
        if let Some(campus) = &ci.campus
            && !caller.can(Capability::ManageIt)
            && caller.campus().is_some_and(|c| c.as_str() != campus)
        {
            return Err(MonitorError::Forbidden("probes on another campus's items are added by its IT team"));
        }
        let now = self.fhir.now_ms();
        let spec_json =
            serde_json::to_string(&self.seal(p.spec.clone())?).map_err(|e| MonitorError::Audit(e.to_string()))?;
        let probe = Probe {
            ci: ci.id,
            kind: p.spec.kind.as_str().into(),
            target: p.spec.target.trim().to_string(),
            spec: spec_json,
            interval_s: i64::from(p.spec.interval_s),
            campus: runner,
            enabled: true,
            due_at: now,
            created_at: now,
            created_by: caller.actor().to_string(),
            ..Probe::default()
        };
        let rules = Self::default_rules(&p.spec, now, caller.actor());
        let id = self.tables().create(&probe, &rules).await?;
        self.audit(caller, "probe-create", format!("probe {id} {} on CI {}", probe.kind, ci.id)).await?;
        Ok(id)
    }

    /// Adds a rule to a probe.
    pub async fn add_rule(&self, caller: &Caller, probe: i64, f: &RuleForm) -> Result<i64, MonitorError> {
        Self::operate(caller)?;
        self.tables().probe(probe).await?.ok_or(MonitorError::NotFound)?;
        let mut errors = Vec::new();
        let mut num = |field: &str, v: &str, required: bool| match v.trim() {
            "" if !required => None,
            t => match t.parse::<f64>() {
                Ok(n) if n.is_finite() => Some(n),
                _ => {
                    errors.push(FieldError::new(field, "number", "a number"));
                    None
                }
            },
        };
        let threshold = num("threshold", &f.threshold, true);
        let clear = num("clear", &f.clear, false);
        let for_s = num("for", &f.for_s, false).unwrap_or(0.0);
        let op = Op::parse(f.op.trim());
        if op.is_none() {
            errors.push(FieldError::new("op", "choice", "above or below"));
        }
        let severity = Severity::parse(f.severity.trim());
        if severity.is_none() {
            errors.push(FieldError::new("severity", "choice", "warning, major or critical"));
        }
        if f.metric.matches('*').count() > 1 {
            errors.push(FieldError::new("metric", "pattern", "a metric name, or a pattern with one *"));
        }
        let (Some(threshold), Some(op), Some(severity), true) = (threshold, op, severity, errors.is_empty()) else {
            return Err(MonitorError::Invalid(errors));
        };
        let engine = rules::Rule {
            metric: f.metric.trim().into(),
            op,
            threshold,
            clear,
            for_ms: (for_s * 1_000.0) as i64,
            severity,
        };
        let problems: Vec<FieldError> = engine.problems().into_iter().map(FieldError::from).collect();
        if !problems.is_empty() {
            return Err(MonitorError::Invalid(problems));
        }
        let now = self.fhir.now_ms();
        let rule = Rule {
            probe,
            metric: engine.metric.clone(),
            op: op.as_str().into(),
            threshold,
            clear,
            for_ms: engine.for_ms,
            severity: severity.as_str().into(),
            created_at: now,
            created_by: caller.actor().to_string(),
            ..Rule::default()
        };
        let id = self.tables().add_rule(probe, &rule).await?;
        self.audit(
            caller,
            "probe-rule",
            format!("rule {id} on probe {probe}: {} {} {threshold}", rule.metric, rule.op),
        )
        .await?;
        Ok(id)
    }

    /// Probes, on one CI or all.
    pub async fn probes(&self, caller: &Caller, ci: Option<i64>) -> Result<Vec<Probe>, MonitorError> {
        Self::operate(caller)?;
        Ok(self.tables().probes(&ProbeQuery { ci, runner: None, limit: 1_000 }).await?)
    }

    /// A probe with its CI, rules, last `runs` runs (at most 10,000) and alerts.
    pub async fn card(&self, caller: &Caller, id: i64, runs: i64) -> Result<ProbeCard, MonitorError> {
        Self::operate(caller)?;
        let probe = self.tables().probe(id).await?.ok_or(MonitorError::NotFound)?;
        // The card's definition keeps its secrets sealed: it is shown, not run.
        let spec: Spec = serde_json::from_str(&probe.spec)
            .map_err(|e| MonitorError::Store(StoreError::Corrupt(format!("probe {id}: {e}"))))?;
        let ci = self.fhir.operations().cmdb().get(probe.ci).await?.ok_or(MonitorError::NotFound)?;
        let rules = self.tables().rules(id).await?;
        let runs = self.tables().runs(id, runs.clamp(1, 10_000)).await?;
        let alerts = self.tables().alerts_of_probe(id, 200).await?;
        Ok(ProbeCard { probe, spec, ci, rules, runs, alerts })
    }

    /// The metrics a probe's latest run measured.
    pub async fn metrics(&self, caller: &Caller, probe: i64) -> Result<Vec<String>, MonitorError> {
        Self::operate(caller)?;
        Ok(self.tables().metrics(probe).await?)
    }

    /// One metric of a probe between `from` and `to`, for a chart: the raw samples
    /// for a day or less, else buckets of 5 minutes (a week or less) or an hour —
    /// the rollups where retention made them, the raw samples bucketed alike where
    /// it has not yet. Returns the bucket width (0 for raw) and (start, mean, min,
    /// max) per point, oldest first.
    pub async fn series(
        &self,
        caller: &Caller,
        probe: i64,
        metric: &str,
        from: i64,
        to: i64,
    ) -> Result<(i64, Vec<(i64, f64, f64, f64)>), MonitorError> {
        Self::operate(caller)?;
        if to <= from || to - from > 800 * 86_400_000 {
            return Err(invalid("range", "range", "a start before the end, at most 800 days apart"));
        }
        let raw = self.tables().samples(probe, metric, from, to).await?;
        let span = to - from;
        if span <= 86_400_000 {
            return Ok((0, raw.into_iter().map(|(at, v)| (at, v, v, v)).collect()));
        }
        let width = if span <= 7 * 86_400_000 { 300_000 } else { 3_600_000 };
        let mut buckets: BTreeMap<i64, (i64, f64, f64, f64)> = BTreeMap::new();
        for r in self.tables().rollups(probe, metric, width, from - from.rem_euclid(width), to).await? {
            buckets.insert(r.bucket, (r.n, r.mean * r.n as f64, r.min, r.max));
        }
        for (at, v) in raw {
            let e = buckets.entry(at - at.rem_euclid(width)).or_insert((0, 0.0, f64::INFINITY, f64::NEG_INFINITY));
            e.0 += 1;
            e.1 += v;
            e.2 = e.2.min(v);
            e.3 = e.3.max(v);
        }
        Ok((
            width,
            buckets
                .into_iter()
                .filter(|(_, (n, ..))| *n > 0)
                .map(|(b, (n, total, lo, hi))| (b, total / n as f64, lo, hi))
                .collect(),
        ))
    }

    /// The status wall: each business system and clinical service (of `campus` and
    /// the group-wide ones, or all) coloured by the open alerts on what it needs —
    /// red when something is down or a major or critical alert holds, amber for a
    /// warning, maintenance when a scheduled change holds it — with the cause and since
    /// when; and the open alerts. Suppressed alerts colour nothing their root does not.
    pub async fn wall(&self, caller: &Caller, campus: Option<&str>) -> Result<Wall, MonitorError> {
        Self::operate(caller)?;
        let systems = self.systems(campus).await?;
        let open = self.tables().open_alerts().await?;
        let (mut worst, alert_cis) = self.spread(&open).await?;
        let mut tiles: Vec<Tile> = systems
            .into_iter()
            .map(|ci| match worst.remove(&ci.id) {
                Some((health, since, mut causes)) => {
                    causes.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
                    Tile { ci, health, since: Some(since), causes: causes.into_iter().map(|(_, c)| c).collect() }
                }
                None => Tile { ci, health: Health::Green, since: None, causes: Vec::new() },
            })
            .collect();
        tiles.sort_by(|a, b| b.health.cmp(&a.health).then(a.ci.name.cmp(&b.ci.name)));
        let alerts = open.into_iter().filter_map(|a| alert_cis.get(&a.ci).cloned().map(|c| (a, c))).collect();
        Ok(Wall { tiles, alerts })
    }

    /// What the open alerts do: each CI's worst health from the unsuppressed alerts on
    /// it and on what it needs (red when down or major or critical, amber for a
    /// warning, maintenance when held), since when and the causes; and the CIs with
    /// alerts.
    async fn spread(&self, open: &[Alert]) -> Result<(HashMap<i64, Worst>, HashMap<i64, Ci>), MonitorError> {
        let cmdb = self.fhir.operations().cmdb();
        // CI → (worst health, earliest since, (health, cause) of each alert on it).
        let mut worst: HashMap<i64, Worst> = HashMap::new();
        let alert_cis: HashMap<i64, Ci> =
            cmdb.many(&open.iter().map(|a| a.ci).collect::<Vec<_>>()).await?.into_iter().map(|c| (c.id, c)).collect();
        // What each CI with an alert impacts (itself included), for all of them in one walk.
        let alerting: Vec<i64> = open
            .iter()
            .filter(|a| a.suppressed_by.is_none())
            .map(|a| a.ci)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut impacted = cmdb.reach(&alerting, Walk::Impacted).await?;
        for (ci, reached) in impacted.iter_mut() {
            reached.push(*ci);
        }
        for a in open.iter().filter(|a| a.suppressed_by.is_none()) {
            let health = health(a);
            let code = alert_cis.get(&a.ci).map(|c| c.code.clone()).unwrap_or_default();
            for &id in impacted.get(&a.ci).into_iter().flatten() {
                let e = worst.entry(id).or_insert((Health::Green, a.opened_at, Vec::new()));
                e.0 = e.0.max(health);
                e.1 = e.1.min(a.opened_at);
                if !e.2.iter().any(|(_, c)| *c == code) {
                    e.2.push((health, code.clone()));
                }
            }
        }
        Ok((worst, alert_cis))
    }

    /// How each of `cis` stands now, for the topology's colours: its own unsuppressed
    /// alerts first (down, warning, maintenance); then affected, when it is suppressed
    /// under a root cause or something it needs is down or warns; then up when a probe
    /// watches it, else unmonitored.
    pub async fn standing(&self, caller: &Caller, cis: &[i64]) -> Result<HashMap<i64, Standing>, MonitorError> {
        Self::operate(caller)?;
        self.standing_of(cis).await
    }

    /// How the networked devices with these CMDB codes stand now (see
    /// [`Monitor::standing`]), for the equipment's keepers and the managers as well as
    /// the IT team; a code the CMDB does not know is left out.
    pub async fn devices(&self, caller: &Caller, codes: &[String]) -> Result<HashMap<String, Standing>, MonitorError> {
        let reads = [Capability::OperateIt, Capability::KeepEquipment, Capability::ViewReports];
        if !reads.into_iter().any(|c| caller.can(c)) {
            return Err(MonitorError::Forbidden("a device's monitoring is read by IT, its keepers and managers"));
        }
        let cmdb = self.fhir.operations().cmdb();
        let mut ids = Vec::new();
        for code in codes {
            if let Some(ci) = cmdb.by_code(code).await? {
                ids.push((code.clone(), ci.id));
            }
        }
        let standing = self.standing_of(&ids.iter().map(|(_, id)| *id).collect::<Vec<_>>()).await?;
        Ok(ids.into_iter().filter_map(|(code, id)| Some((code, *standing.get(&id)?))).collect())
    }

    async fn standing_of(&self, cis: &[i64]) -> Result<HashMap<i64, Standing>, MonitorError> {
        let open = self.tables().open_alerts().await?;
        let (worst, _) = self.spread(&open).await?;
        let probed: BTreeSet<i64> = self.tables().probed(cis).await?.into_iter().collect();
        let mut own: HashMap<i64, Standing> = HashMap::new();
        for a in open.iter().filter(|a| cis.contains(&a.ci)) {
            let s = match (a.suppressed_by, health(a)) {
                (Some(_), _) => Standing::Affected,
                (None, Health::Red) => Standing::Down,
                (None, Health::Amber) => Standing::Warning,
                (None, _) => Standing::Maintenance,
            };
            let e = own.entry(a.ci).or_insert(s);
            *e = (*e).min(s);
        }
        Ok(cis
            .iter()
            .map(|&ci| {
                let s = own.get(&ci).copied().unwrap_or_else(|| match worst.get(&ci).map(|w| w.0) {
                    Some(Health::Red | Health::Amber) => Standing::Affected,
                    Some(Health::Maintenance) => Standing::Maintenance,
                    _ if probed.contains(&ci) => Standing::Up,
                    _ => Standing::Unmonitored,
                });
                (ci, s)
            })
            .collect())
    }

    /// Each business system's and clinical service's availability (of `campus` and the
    /// group-wide ones, or all) in `month` (`YYYY-MM`, Beijing time), counted up to
    /// `now`: the time no red alert held on it or on anything it needs, in the CMDB's
    /// topology of today. Downtime held by a scheduled change (maintenance) does not
    /// count against it, and an alert suppressed under a root cause counts through its
    /// root. Those that missed their target come first.
    pub async fn availability(
        &self,
        caller: &Caller,
        campus: Option<&str>,
        month: &str,
        now: i64,
    ) -> Result<Vec<Availability>, MonitorError> {
        // The IT team reads every campus's; managers (the dashboards) their campuses'.
        if Self::operate(caller).is_err() {
            let all = matches!(caller.access().all_campuses(), lianyi_security::Campuses::All);
            let theirs = campus.map_or(all, |c| caller.access().all_campuses().contains(c));
            if !caller.can(Capability::ViewReports) || !theirs {
                return Err(MonitorError::Forbidden("availability is read by IT and the campus's managers"));
            }
        }
        let (from, to) = month_span(month).ok_or_else(|| invalid("month", "format", "a month as YYYY-MM"))?;
        let end = to.min(now);
        let span = (end - from).max(0);
        let cmdb = self.fhir.operations().cmdb();
        let systems = self.systems(campus).await?;
        let ids: Vec<i64> = systems.iter().map(|c| c.id).collect();
        let needs = cmdb.reach(&ids, Walk::Needs).await?;
        // CI → its outages: (from, to) clipped to the period.
        let mut outages: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        if span > 0 {
            for a in self.tables().alerts_between(from, end).await? {
                if a.suppressed_by.is_none() && health(&a) == Health::Red {
                    let (start, stop) = (a.opened_at.max(from), a.resolved_at.unwrap_or(end).min(end));
                    if stop > start {
                        outages.entry(a.ci).or_default().push((start, stop));
                    }
                }
            }
        }
        let mut out: Vec<Availability> = systems
            .into_iter()
            .map(|ci| {
                let mut spans: Vec<(i64, i64)> = needs
                    .get(&ci.id)
                    .into_iter()
                    .flatten()
                    .chain([&ci.id])
                    .flat_map(|c| outages.get(c).into_iter().flatten().copied())
                    .collect();
                spans.sort_unstable();
                let merged = merge(spans);
                let down_ms: i64 = merged.iter().map(|(a, b)| b - a).sum();
                let target = serde_json::from_str::<serde_json::Value>(&ci.attrs)
                    .ok()
                    .and_then(|v| v.get("availability").and_then(|p| p.as_str()).map(str::to_string));
                Availability { ci, target, span_ms: span, down_ms, outages: merged.len() }
            })
            .collect();
        out.sort_by(|a, b| b.missed().cmp(&a.missed()).then(a.ci.name.cmp(&b.ci.name)));
        Ok(out)
    }

    /// The business systems and clinical services in service (of `campus` and the
    /// group-wide ones, or all).
    async fn systems(&self, campus: Option<&str>) -> Result<Vec<Ci>, MonitorError> {
        let cmdb = self.fhir.operations().cmdb();
        let mut systems = Vec::new();
        for class in ["business-system", "clinical-service"] {
            let q = lianyi_store::cmdb::CiQuery { class: Some(class.into()), limit: 10_000, ..Default::default() };
            systems.extend(
                cmdb.list(&q)
                    .await?
                    .into_iter()
                    .filter(|c| c.status != "retired")
                    .filter(|c| campus.is_none() || c.campus.is_none() || c.campus.as_deref() == campus),
            );
        }
        Ok(systems)
    }

    /// The backup runs, newest first.
    pub async fn backup_runs(
        &self,
        caller: &Caller,
        limit: i64,
    ) -> Result<Vec<lianyi_store::backup::BackupRun>, MonitorError> {
        Self::operate(caller)?;
        Ok(self.fhir.operations().backup_runs(limit.clamp(1, 1_000)).await?)
    }

    /// Alerts, newest first.
    pub async fn alerts(&self, caller: &Caller, open_only: bool, limit: i64) -> Result<Vec<Alert>, MonitorError> {
        Self::operate(caller)?;
        Ok(self.tables().alerts(open_only, limit.clamp(1, 1_000)).await?)
    }

    /// The probes a campus's collector runs (the caller is the collector's client,
    /// bound to its campus).
    pub async fn assignments(&self, caller: &Caller) -> Result<Vec<(i64, Spec)>, MonitorError> {
        Self::operate(caller)?;
        let Some(campus) = caller.campus() else {
            return Err(MonitorError::Forbidden("a collector's client belongs to one campus"));
        };
        let probes = self
            .tables()
            .probes(&ProbeQuery { ci: None, runner: Some(Some(campus.as_str().to_string())), limit: 10_000 })
            .await?;
        Ok(probes
            .into_iter()
            .filter(|p| p.enabled)
            .filter_map(|p| match serde_json::from_str::<Spec>(&p.spec).map(|s| self.unseal(s)) {
                Ok(Ok(s)) => Some((p.id, s)),
                _ => {
                    tracing::error!(probe = p.id, "a probe's definition does not read");
                    None
                }
            })
            .collect())
    }

    /// Records what a run saw — sent by a collector (its campus's probes only) or by
    /// the central server — and processes it. False when this run (probe, `at`) was
    /// recorded before: nothing is counted twice.
    pub async fn record(&self, caller: &Caller, probe: i64, at: i64, o: &Outcome) -> Result<bool, MonitorError> {
        Self::operate(caller)?;
        let p = self.tables().probe(probe).await?.ok_or(MonitorError::NotFound)?;
        let source = if caller.kind() == ActorKind::System {
            "central".to_string()
        } else {
            match (&p.campus, caller.campus()) {
                (Some(runner), Some(c)) if runner == c.as_str() => format!("collector:{}", caller.actor()),
                _ => return Err(MonitorError::Forbidden("a collector sends results of its own campus's probes")),
            }
        };
        if o.readings.len() > 10_000 {
            return Err(invalid("readings", "length", "at most 10,000 readings per run"));
        }
        let _turn = self.gate.lock().await;
        let run = Run {
            probe,
            at,
            up: o.is_up(),
            error: o.error.clone().map(|e| e.chars().take(500).collect()),
            note: o.note.clone().map(|e| e.chars().take(500).collect()),
            source,
        };
        let samples: Vec<(String, f64)> = o
            .readings
            .iter()
            .filter(|r| r.value.is_finite() && !r.metric.is_empty() && r.metric.len() <= 200)
            .map(|r| (r.metric.clone(), r.value))
            .collect();
        if !self.tables().record(&run, &samples).await? {
            return Ok(false);
        }
        // The first failure after being up is checked again after half an interval
        // (a collector does the same for its own probes).
        if caller.kind() == ActorKind::System && !run.up && p.last_up != Some(false) {
            let retry = lianyi_monitor::probe::retry_at(p.interval_s, at);
            if retry < p.due_at {
                self.tables().set_due(probe, retry).await?;
            }
        }
        self.process(&p, at, o).await?;
        Ok(true)
    }

    /// Claims up to `limit` of the central server's probes that are due: each one's
    /// next run is set first (a probe that hangs is not started twice), keeping its
    /// cadence (the scheduler's tick does not add to each interval) unless it is a
    /// whole interval behind. Returns (probe, definition) with the time they ran for.
    pub async fn claim_due(&self, limit: i64) -> Result<(i64, Vec<(i64, Spec)>), MonitorError> {
        let now = self.fhir.now_ms();
        let due = self.tables().due(None, now, limit).await?;
        let mut next = Vec::with_capacity(due.len());
        let mut work = Vec::with_capacity(due.len());
        for p in due {
            next.push((p.id, lianyi_monitor::probe::next_due(p.due_at, p.interval_s, now)));
            match serde_json::from_str::<Spec>(&p.spec).map(|s| self.unseal(s)) {
                Ok(Ok(spec)) => work.push((p.id, spec)),
                _ => tracing::error!(probe = p.id, "a probe's definition does not read"),
            }
        }
        self.tables().set_due_all(&next).await?;
        Ok((now, work))
    }

    /// Checks one probe as the central server: the database and platform probes
    /// here, the others through the checker.
    pub async fn check(&self, checker: &Checker, spec: &Spec, now: i64) -> Outcome {
        match spec.kind {
            Kind::Database => self.database().await,
            Kind::Platform => self.platform(now).await,
            Kind::Backup => self.backups(now).await,
            _ => checker.run(spec, now).await,
        }
    }

    /// Records a run of the central server's own (see [`Monitor::record`]).
    pub async fn record_central(&self, probe: i64, at: i64, o: &Outcome) -> Result<bool, MonitorError> {
        self.record(&Self::system(), probe, at, o).await
    }

    /// The database probe: the latency of a query on the platform's own database.
    async fn database(&self) -> Outcome {
        let started = std::time::Instant::now();
        match self.fhir.operations().ping().await {
            Ok(()) => {
                let mut o = up();
                o.readings.push(reading("latency_ms", started.elapsed().as_secs_f64() * 1_000.0));
                // With a read standby: whether it serves reads, and how far behind it is.
                if let Some(s) = self.fhir.operations().standby_status() {
                    o.readings.push(reading("standby.down", if s.in_use { 0.0 } else { 1.0 }));
                    if let Some(lag) = s.lag_ms {
                        o.readings.push(reading("standby.lag_s", lag as f64 / 1000.0));
                    }
                    if !s.in_use {
                        o.note = s.problem;
                    }
                }
                o
            }
            Err(e) => lianyi_monitor::check::Outcome {
                readings: vec![reading("up", 0.0)],
                error: Some(e.to_string()),
                note: None,
            },
        }
    }

    /// The platform's own health: memory, the database pools, each HL7 listener's
    /// messages and errors in the last minute, and each outbound channel's queue
    /// depth, dead letters and time since its last delivery.
    async fn platform(&self, now: i64) -> Outcome {
        let mut o = up();
        if let Some(kb) = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        }) {
            o.readings.push(reading("memory_rss_mb", (kb / 1_024.0 * 10.0).round() / 10.0));
        }
        let pools = self.fhir.operations().pool_stats();
        o.readings.push(reading("pool.read_size", f64::from(pools.read_size)));
        o.readings.push(reading("pool.read_idle", pools.read_idle as f64));
        // The HL7 listeners' traffic and errors over the last minute.
        match self.fhir.operations().inbound_counts(now - 60_000).await {
            Ok(counts) => {
                for (channel, received, failed) in counts {
                    o.readings.push(reading(&format!("hl7.{channel}.messages_per_min"), received as f64));
                    o.readings.push(reading(&format!("hl7.{channel}.errors_per_min"), failed as f64));
                }
            }
            Err(e) => o.note = Some(format!("the HL7 listeners' counts: {e}")),
        }
        match self.fhir.operations().queue_health().await {
            Ok(queues) => {
                for q in queues {
                    o.readings.push(reading(&format!("channel.{}.queue_depth", q.channel), q.pending as f64));
                    o.readings.push(reading(&format!("channel.{}.dead_letters", q.channel), q.dead as f64));
                    if let Some(last) = q.last_success {
                        o.readings.push(reading(
                            &format!("channel.{}.last_success_age_s", q.channel),
                            ((now - last) / 1_000) as f64,
                        ));
                    }
                }
            }
            Err(e) => o.note = Some(format!("the channels' queues: {e}")),
        }
        o
    }

    /// Advances the probe's rules with a run's readings; opens, flags and resolves
    /// alerts; then settles which alerts are root causes.
    async fn process(&self, p: &Probe, at: i64, o: &Outcome) -> Result<(), MonitorError> {
        let rules = self.tables().rules(p.id).await?;
        let mut tracks: HashMap<(i64, String), Track> = self
            .tables()
            .tracks(p.id)
            .await?
            .into_iter()
            .filter_map(|(rule, metric, state)| serde_json::from_str(&state).ok().map(|t| ((rule, metric), t)))
            .collect();
        let mut saved = Vec::new();
        let mut alerts = Vec::new();
        let mut recovered = Vec::new();
        for rule in &rules {
            let (Some(op), Some(severity)) = (Op::parse(&rule.op), Severity::parse(&rule.severity)) else {
                continue;
            };
            let engine = rules::Rule {
                metric: rule.metric.clone(),
                op,
                threshold: rule.threshold,
                clear: rule.clear,
                for_ms: rule.for_ms,
                severity,
            };
            for r in o.readings.iter().filter(|r| matches(&rule.metric, &r.metric)) {
                let track = tracks.entry((rule.id, r.metric.clone())).or_default();
                let change = track.observe(&engine, &self.damping, at, r.value);
                let state = serde_json::to_string(&*track).map_err(|e| MonitorError::Audit(e.to_string()))?;
                saved.push((rule.id, r.metric.clone(), state));
                match change {
                    Some(Change::Opened) => alerts.push(Alert {
                        rule: rule.id,
                        probe: p.id,
                        ci: p.ci,
                        metric: r.metric.clone(),
                        severity: rule.severity.clone(),
                        status: "open".into(),
                        opened_at: at,
                        value: r.value,
                        flapping: track.is_flapping(),
                        detail: o.error.clone(),
                        ..Alert::default()
                    }),
                    Some(Change::Flapping) => {
                        if let Some(mut a) = self.tables().open_alert(rule.id, &r.metric).await? {
                            a.flapping = true;
                            a.value = r.value;
                            alerts.push(a);
                        }
                    }
                    Some(Change::Resolved) => {
                        if let Some(mut a) = self.tables().open_alert(rule.id, &r.metric).await? {
                            a.status = "resolved".into();
                            a.resolved_at = Some(at);
                            a.value = r.value;
                            recovered.push(a.clone());
                            alerts.push(a);
                        }
                    }
                    None => {}
                }
            }
        }
        let changed = !alerts.is_empty();
        self.tables().save(&saved, &alerts).await?;
        let system = Self::system();
        for a in &recovered {
            let Some(ticket) = a.ticket else { continue };
            let (value, at) = (a.value.to_string(), time(at));
            let holes = [("metric", a.metric.as_str()), ("value", &value), ("at", &at)];
            if self.tables().open_alerts_of_ticket(ticket).await?.is_empty() {
                let text = Phrases::fill(&self.phrases.recovered, &holes);
                self.desk.monitor_resolve(&system, ticket, &text).await?;
            } else {
                let text = Phrases::fill(&self.phrases.recovered_note, &holes);
                self.desk.monitor_note(&system, ticket, &text).await?;
            }
        }
        if changed {
            self.settle(at).await?;
        }
        Ok(())
    }

    /// Settles every open alert: held by a scheduled change touching its CI in its
    /// window, suppressed by a down CI it depends on, or a root cause — which opens an
    /// incident on its CI, or joins the one already open there.
    pub async fn settle(&self, at: i64) -> Result<(), MonitorError> {
        let open = self.tables().open_alerts().await?;
        if open.is_empty() {
            return Ok(());
        }
        let ops = self.fhir.operations();
        // Maintenance: scheduled changes whose window holds `at`.
        let changes = ops
            .change_requests()
            .list(&lianyi_store::changes::ChangeQuery {
                statuses: Some(vec!["scheduled".into()]),
                overlapping: Some((at, at + 1)),
                before: None,
                limit: 500,
            })
            .await?;
        let ids: Vec<i64> = changes.iter().map(|c| c.id).collect();
        let held: HashMap<i64, i64> =
            ops.change_requests().cis_of(&ids).await?.into_iter().map(|(change, ci)| (ci, change)).collect();
        // Root causes among the CIs that are down.
        let down: BTreeSet<i64> = open.iter().filter(|a| a.metric == "up").map(|a| a.ci).collect();
        let closures: BTreeMap<i64, BTreeSet<i64>> = ops
            .cmdb()
            .reach(&down.iter().copied().collect::<Vec<_>>(), Walk::Needs)
            .await?
            .into_iter()
            .map(|(ci, needs)| (ci, needs.into_iter().collect()))
            .collect();
        let roots = rules::roots(&down, |ci| closures.get(&ci).cloned().unwrap_or_default());
        let system = Self::system();
        let mut tickets: HashMap<i64, i64> = open.iter().filter_map(|a| a.ticket.map(|t| (a.ci, t))).collect();
        let mut suppressed_under: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for mut a in open {
            let maintenance = held.get(&a.ci).copied();
            let suppressed_by = if a.metric == "up" { roots.get(&a.ci).and_then(|r| r.first().copied()) } else { None };
            let mut dirty = maintenance != a.maintenance || suppressed_by != a.suppressed_by;
            if suppressed_by.is_some() && a.suppressed_by.is_none() && a.ticket.is_none() {
                suppressed_under.entry(suppressed_by.unwrap_or_default()).or_default().push(a.ci);
            }
            a.maintenance = maintenance;
            a.suppressed_by = suppressed_by;
            if a.ticket.is_none() && maintenance.is_none() && suppressed_by.is_none() {
                let ticket = match tickets.get(&a.ci) {
                    Some(t) => {
                        self.desk.monitor_note(&system, *t, &self.phrases.describe(&a)).await?;
                        *t
                    }
                    None => {
                        let t = self.open_incident(&a).await?;
                        tickets.insert(a.ci, t);
                        t
                    }
                };
                a.ticket = Some(ticket);
                dirty = true;
            }
            if dirty {
                self.tables().update(&a).await?;
            }
        }
        // The root's incident says what else stopped with it.
        for (root, cis) in suppressed_under {
            if let Some(t) = tickets.get(&root) {
                let codes: Vec<String> = ops.cmdb().many(&cis).await?.into_iter().take(20).map(|c| c.code).collect();
                let mut text = Phrases::fill(&self.phrases.also_down, &[("cis", &codes.join(", "))]);
                if cis.len() > codes.len() {
                    text.push(' ');
                    text.push_str(&Phrases::fill(&self.phrases.in_all, &[("n", &cis.len().to_string())]));
                }
                self.desk.monitor_note(&system, *t, &text).await?;
            }
        }
        Ok(())
    }

    /// Opens the incident of a root-cause alert: impact from the alert's severity,
    /// urgency high when the CI is clinical-critical (7×24) or stops a business system.
    async fn open_incident(&self, a: &Alert) -> Result<i64, MonitorError> {
        let ops = self.fhir.operations();
        let ci = ops.cmdb().get(a.ci).await?.ok_or(MonitorError::NotFound)?;
        let round_the_clock = |c: &Ci| c.attrs.contains("\"7x24\"");
        let reached = ops.cmdb().walk(a.ci, Walk::Impacted, 100_000).await?;
        let stops_system = reached.cis.iter().any(|c| c.class == "business-system" || c.class == "clinical-service");
        let impact = match Severity::parse(&a.severity) {
            Some(Severity::Critical) => 1,
            Some(Severity::Major) => 2,
            _ => 3,
        };
        let urgency = if round_the_clock(&ci) || stops_system { 1 } else { 2 };
        let category = match ci.class.as_str() {
            "network" | "security" => "network",
            "printer" => "printer",
            "medical-device" => "medical-device",
            "interface" => "interface",
            "business-system" | "database" | "middleware" | "clinical-service" => "software",
            _ => "hardware",
        };
        let (named, value) = (format!("{} ({})", ci.name, ci.code), a.value.to_string());
        let title = if a.metric == "up" {
            Phrases::fill(&self.phrases.down_title, &[("ci", &named)])
        } else {
            Phrases::fill(&self.phrases.metric_title, &[("ci", &named), ("metric", &a.metric), ("value", &value)])
        };
        let report = Report {
            title: title.chars().take(200).collect(),
            description: self.phrases.describe(a),
            category: category.into(),
            ci: ci.code.clone(),
            campus: ci.campus.clone().unwrap_or_default(),
            impact: impact.to_string(),
            urgency: urgency.to_string(),
            ..Report::default()
        };
        Ok(self.desk.report(&Self::system(), &report).await?)
    }
}

/// Beijing time, to the minute, as the pages show it.
fn time(ms: i64) -> String {
    crate::stats::beijing(ms)
}

fn up() -> Outcome {
    Outcome { readings: vec![reading("up", 1.0)], error: None, note: None }
}

fn reading(metric: &str, value: f64) -> lianyi_monitor::check::Reading {
    lianyi_monitor::check::Reading { metric: metric.into(), value }
}

/// Runs probes at once (the database and platform probes in the server itself).
#[cfg(test)]
mod tests {
    use super::{Availability, matches, merge, month_of, month_span};

    #[test]
    fn a_month_is_counted_from_midnight_in_beijing() {
        let (from, to) = month_span("2026-11").unwrap();
        assert_eq!(lianyi_fhir::datetime::format_instant(from), "2026-10-31T16:00:00.000Z");
        assert_eq!(to - from, 30 * 86_400_000);
        assert_eq!(month_span("2026-12").unwrap().1 - month_span("2026-12").unwrap().0, 31 * 86_400_000);
        assert_eq!(
            (month_of(from), month_of(from - 1), month_of(to - 1)),
            ("2026-11".into(), "2026-10".into(), "2026-11".into())
        );
        for bad in ["2026-13", "2026-00", "2026-1", "26-11", "2026/11", "", "2026-11-01"] {
            assert!(month_span(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn outages_merge_where_they_overlap_and_availability_is_exact() {
        assert_eq!(merge(vec![(0, 10), (5, 20), (20, 25), (30, 40)]), [(0, 25), (30, 40)]);
        let ci = lianyi_store::cmdb::Ci::default();
        let month = 30 * 86_400_000;
        let a = |down_ms, target: Option<&str>| Availability {
            ci: ci.clone(),
            target: target.map(str::to_string),
            span_ms: month,
            down_ms,
            outages: 1,
        };
        // 43.2 minutes down in 30 days is exactly 99.9 %.
        assert_eq!(a(2_592_000, Some("99.9")).milli_percent(), 99_900);
        assert!(!a(2_592_000, Some("99.9")).missed());
        assert!(a(2_592_001, Some("99.9")).missed());
        assert_eq!(a(0, Some("99.95")).target_milli(), Some(99_950));
        assert_eq!(a(0, Some("100")).target_milli(), Some(100_000));
        assert!(!a(month, None).missed(), "no target, nothing missed");
        assert_eq!(a(month, None).milli_percent(), 0);
    }

    #[test]
    fn a_pattern_with_one_star_matches_any_middle() {
        assert!(matches("up", "up") && !matches("up", "upx"));
        assert!(matches("channel.*.queue_depth", "channel.lis-east.queue_depth"));
        assert!(!matches("channel.*.queue_depth", "channel.lis.dead_letters"));
        assert!(matches("if.*", "if.eth0.in_bps"));
        assert!(!matches("a*a", "a"));
    }
}
