//! Monitoring's tables (not health data): probes, each run and its samples, rules
//! with their engine state, and alerts. A run is keyed by (probe, instant), so a
//! result sent twice — a collector retrying after a lost answer — is stored once and
//! its second arrival says so.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, Store};

/// A probe as stored: the definition is `spec` (JSON of the monitor crate's `Spec`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Probe {
    pub id: i64,
    pub ci: i64,
    pub kind: String,
    pub target: String,
    pub spec: String,
    pub interval_s: i64,
    /// The campus whose collector runs it; `None`: the central server.
    pub campus: Option<String>,
    pub enabled: bool,
    pub due_at: i64,
    pub last_at: Option<i64>,
    pub last_up: Option<bool>,
    pub last_error: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub created_by: String,
    pub updated_at: i64,
}

impl Probe {
    /// What the pages show of it: `off`, `waiting` (not run yet), `up` or `down`.
    pub fn state(&self) -> &'static str {
        match (self.enabled, self.last_up) {
            (false, _) => "off",
            (true, None) => "waiting",
            (true, Some(true)) => "up",
            (true, Some(false)) => "down",
        }
    }
}

/// A threshold rule on a probe's metric (or metric pattern with one `*`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rule {
    pub id: i64,
    pub probe: i64,
    pub metric: String,
    pub op: String,
    pub threshold: f64,
    pub clear: Option<f64>,
    pub for_ms: i64,
    pub severity: String,
    pub created_at: i64,
    pub created_by: String,
}

/// An alert, open or resolved.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Alert {
    pub id: i64,
    pub rule: i64,
    pub probe: i64,
    pub ci: i64,
    pub metric: String,
    pub severity: String,
    /// `open` or `resolved`.
    pub status: String,
    pub opened_at: i64,
    pub resolved_at: Option<i64>,
    /// The last value seen while open.
    pub value: f64,
    pub flapping: bool,
    /// The down CI this alert's CI depends on (the root cause), when suppressed.
    pub suppressed_by: Option<i64>,
    /// The approved change whose window holds this CI.
    pub maintenance: Option<i64>,
    /// The incident it opened or joined.
    pub ticket: Option<i64>,
    pub detail: Option<String>,
}

/// One run of a probe.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Run {
    pub probe: i64,
    pub at: i64,
    pub up: bool,
    pub error: Option<String>,
    pub note: Option<String>,
    /// `central` or `collector:<client>`.
    pub source: String,
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Monitor(pub(crate) Store);

/// The rollup spans: 5 minutes and an hour.
pub const SPANS: [i64; 2] = [300_000, 3_600_000];

/// One rollup bucket of a metric.
#[derive(Clone, Debug, PartialEq)]
pub struct Rollup {
    pub bucket: i64,
    pub n: i64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
}

const PROBE_COLUMNS: &str = "id, ci, kind, target, spec, interval_s, campus, enabled, due_at, last_at, last_up, \
     last_error, version, created_at, created_by, updated_at";
const RULE_COLUMNS: &str = "id, probe, metric, op, threshold, clear, for_ms, severity, created_at, created_by";
const ALERT_COLUMNS: &str = "id, rule, probe, ci, metric, severity, status, opened_at, resolved_at, value, flapping, \
     suppressed_by, maintenance, ticket, detail";

fn probe_of(r: &AnyRow) -> Result<Probe> {
    Ok(Probe {
        id: r.try_get(0)?,
        ci: r.try_get(1)?,
        kind: r.try_get(2)?,
        target: r.try_get(3)?,
        spec: r.try_get(4)?,
        interval_s: r.try_get(5)?,
        campus: r.try_get(6)?,
        enabled: r.try_get::<i64, _>(7)? != 0,
        due_at: r.try_get(8)?,
        last_at: r.try_get(9)?,
        last_up: r.try_get::<Option<i64>, _>(10)?.map(|u| u != 0),
        last_error: r.try_get(11)?,
        version: r.try_get(12)?,
        created_at: r.try_get(13)?,
        created_by: r.try_get(14)?,
        updated_at: r.try_get(15)?,
    })
}

fn rule_of(r: &AnyRow) -> Result<Rule> {
    Ok(Rule {
        id: r.try_get(0)?,
        probe: r.try_get(1)?,
        metric: r.try_get(2)?,
        op: r.try_get(3)?,
        threshold: r.try_get(4)?,
        clear: r.try_get(5)?,
        for_ms: r.try_get(6)?,
        severity: r.try_get(7)?,
        created_at: r.try_get(8)?,
        created_by: r.try_get(9)?,
    })
}

fn alert_of(r: &AnyRow) -> Result<Alert> {
    Ok(Alert {
        id: r.try_get(0)?,
        rule: r.try_get(1)?,
        probe: r.try_get(2)?,
        ci: r.try_get(3)?,
        metric: r.try_get(4)?,
        severity: r.try_get(5)?,
        status: r.try_get(6)?,
        opened_at: r.try_get(7)?,
        resolved_at: r.try_get(8)?,
        value: r.try_get(9)?,
        flapping: r.try_get::<i64, _>(10)? != 0,
        suppressed_by: r.try_get(11)?,
        maintenance: r.try_get(12)?,
        ticket: r.try_get(13)?,
        detail: r.try_get(14)?,
    })
}

/// Which probes a list shows.
#[derive(Clone, Debug, Default)]
pub struct ProbeQuery {
    pub ci: Option<i64>,
    /// `Some(None)`: the central server's; `Some(Some(c))`: campus c's collector's.
    pub runner: Option<Option<String>>,
    pub limit: i64,
}

impl Monitor {
    /// Adds a probe and its rules in one transaction; returns the probe's id.
    pub async fn create(&self, p: &Probe, rules: &[Rule]) -> Result<i64> {
        let mut tx = self.0.write_pool().begin_with(self.0.backend.begin_write()).await?;
        let id: i64 = sqlx::query(
            "INSERT INTO ops_probes (ci, kind, target, spec, interval_s, campus, enabled, due_at, version, \
             created_at, created_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $10, $9) RETURNING id",
        )
        .bind(p.ci)
        .bind(&p.kind)
        .bind(&p.target)
        .bind(&p.spec)
        .bind(p.interval_s)
        .bind(&p.campus)
        .bind(i64::from(p.enabled))
        .bind(p.due_at)
        .bind(p.created_at)
        .bind(&p.created_by)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        for r in rules {
            insert_rule(&mut tx, id, r).await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    pub async fn probe(&self, id: i64) -> Result<Option<Probe>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {PROBE_COLUMNS} FROM ops_probes WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.0.read_pool())
            .await?;
        row.as_ref().map(probe_of).transpose()
    }

    pub async fn probes(&self, q: &ProbeQuery) -> Result<Vec<Probe>> {
        let mut sql = format!("SELECT {PROBE_COLUMNS} FROM ops_probes WHERE 1 = 1");
        if q.ci.is_some() {
            sql.push_str(" AND ci = $1");
        } else {
            sql.push_str(" AND $1 IS NULL");
        }
        match &q.runner {
            None => sql.push_str(" AND $2 IS NULL"),
            Some(None) => sql.push_str(" AND campus IS NULL AND $2 IS NULL"),
            Some(Some(_)) => sql.push_str(" AND campus = $2"),
        }
        sql.push_str(" ORDER BY id LIMIT $3");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(q.ci)
            .bind(q.runner.clone().flatten())
            .bind(if q.limit > 0 { q.limit } else { 1_000 })
            .fetch_all(&self.0.read_pool())
            .await?;
        rows.iter().map(probe_of).collect()
    }

    /// The enabled probes of one runner due at `now`, soonest first.
    pub async fn due(&self, campus: Option<&str>, now: i64, limit: i64) -> Result<Vec<Probe>> {
        let runner = if campus.is_some() { "campus = $1" } else { "campus IS NULL AND $1 IS NULL" };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PROBE_COLUMNS} FROM ops_probes WHERE enabled = 1 AND due_at <= $2 AND {runner} \
             ORDER BY due_at LIMIT $3"
        )))
        .bind(campus)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(probe_of).collect()
    }

    /// When a probe runs next.
    pub async fn set_due(&self, probe: i64, due_at: i64) -> Result<()> {
        sqlx::query("UPDATE ops_probes SET due_at = $2 WHERE id = $1")
            .bind(probe)
            .bind(due_at)
            .execute(&self.0.write_pool())
            .await?;
        Ok(())
    }

    /// When each of several probes runs next, in one transaction.
    pub async fn set_due_all(&self, next: &[(i64, i64)]) -> Result<()> {
        let mut tx = self.0.write_pool().begin_with(self.0.backend.begin_write()).await?;
        for &(probe, due_at) in next {
            sqlx::query("UPDATE ops_probes SET due_at = $2 WHERE id = $1")
                .bind(probe)
                .bind(due_at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Turns a probe on or off; false when there is no such probe.
    pub async fn set_enabled(&self, probe: i64, enabled: bool, at: i64) -> Result<bool> {
        let done =
            sqlx::query("UPDATE ops_probes SET enabled = $2, version = version + 1, updated_at = $3 WHERE id = $1")
                .bind(probe)
                .bind(i64::from(enabled))
                .bind(at)
                .execute(&self.0.write_pool())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores a run and its samples; false (nothing written) when this run was
    /// stored before.
    pub async fn record(&self, run: &Run, samples: &[(String, f64)]) -> Result<bool> {
        let mut tx = self.0.write_pool().begin_with(self.0.backend.begin_write()).await?;
        let done = sqlx::query(
            "INSERT INTO ops_probe_runs (probe, at, up, error, note, source) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (probe, at) DO NOTHING",
        )
        .bind(run.probe)
        .bind(run.at)
        .bind(i64::from(run.up))
        .bind(&run.error)
        .bind(&run.note)
        .bind(&run.source)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        for chunk in samples.chunks(200) {
            let mut sql = String::from("INSERT INTO ops_samples (probe, metric, at, value) VALUES ");
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("($1, ${}, $2, ${})", 3 + 2 * i, 4 + 2 * i));
            }
            sql.push_str(" ON CONFLICT (probe, metric, at) DO NOTHING");
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(run.probe).bind(run.at);
            for (metric, value) in chunk {
                q = q.bind(metric.as_str()).bind(*value);
            }
            q.execute(&mut *tx).await?;
        }
        sqlx::query(
            "UPDATE ops_probes SET last_at = $2, last_up = $3, last_error = $4 \
             WHERE id = $1 AND (last_at IS NULL OR last_at < $2)",
        )
        .bind(run.probe)
        .bind(run.at)
        .bind(i64::from(run.up))
        .bind(&run.error)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A probe's runs, newest first.
    pub async fn runs(&self, probe: i64, limit: i64) -> Result<Vec<Run>> {
        let rows = sqlx::query(
            "SELECT probe, at, up, error, note, source FROM ops_probe_runs WHERE probe = $1 ORDER BY at DESC LIMIT $2",
        )
        .bind(probe)
        .bind(limit)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Run {
                    probe: r.try_get(0)?,
                    at: r.try_get(1)?,
                    up: r.try_get::<i64, _>(2)? != 0,
                    error: r.try_get(3)?,
                    note: r.try_get(4)?,
                    source: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// One metric's samples of a probe between two instants, oldest first.
    pub async fn samples(&self, probe: i64, metric: &str, from: i64, to: i64) -> Result<Vec<(i64, f64)>> {
        let rows = sqlx::query(
            "SELECT at, value FROM ops_samples WHERE probe = $1 AND metric = $2 AND at >= $3 AND at < $4 ORDER BY at",
        )
        .bind(probe)
        .bind(metric)
        .bind(from)
        .bind(to)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// The metrics a probe's latest run measured, by name.
    pub async fn metrics(&self, probe: i64) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT metric FROM ops_samples WHERE probe = $1 \
             AND at = (SELECT MAX(at) FROM ops_probe_runs WHERE probe = $1) ORDER BY metric",
        )
        .bind(probe)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    pub async fn add_rule(&self, probe: i64, r: &Rule) -> Result<i64> {
        let mut tx = self.0.write_pool().begin_with(self.0.backend.begin_write()).await?;
        let id = insert_rule(&mut tx, probe, r).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn rules(&self, probe: i64) -> Result<Vec<Rule>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RULE_COLUMNS} FROM ops_rules WHERE probe = $1 ORDER BY id"
        )))
        .bind(probe)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(rule_of).collect()
    }

    /// The engine states of a probe's rules: (rule, metric) → state JSON.
    pub async fn tracks(&self, probe: i64) -> Result<Vec<(i64, String, String)>> {
        let rows = sqlx::query(
            "SELECT t.rule, t.metric, t.state FROM ops_rule_tracks t JOIN ops_rules r ON r.id = t.rule \
             WHERE r.probe = $1",
        )
        .bind(probe)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).collect()
    }

    /// Saves engine states and the alerts they opened or changed, in one transaction;
    /// returns the ids of the alerts (new ones get theirs here), in order.
    pub async fn save(&self, tracks: &[(i64, String, String)], alerts: &[Alert]) -> Result<Vec<i64>> {
        let mut tx = self.0.write_pool().begin_with(self.0.backend.begin_write()).await?;
        for (rule, metric, state) in tracks {
            sqlx::query(
                "INSERT INTO ops_rule_tracks (rule, metric, state) VALUES ($1, $2, $3) \
                 ON CONFLICT (rule, metric) DO UPDATE SET state = excluded.state",
            )
            .bind(rule)
            .bind(metric)
            .bind(state)
            .execute(&mut *tx)
            .await?;
        }
        let mut ids = Vec::with_capacity(alerts.len());
        for a in alerts {
            if a.id == 0 {
                let id: i64 = sqlx::query(
                    "INSERT INTO ops_alerts (rule, probe, ci, metric, severity, status, opened_at, resolved_at, value, \
                     flapping, suppressed_by, maintenance, ticket, detail) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
                )
                .bind(a.rule)
                .bind(a.probe)
                .bind(a.ci)
                .bind(&a.metric)
                .bind(&a.severity)
                .bind(&a.status)
                .bind(a.opened_at)
                .bind(a.resolved_at)
                .bind(a.value)
                .bind(i64::from(a.flapping))
                .bind(a.suppressed_by)
                .bind(a.maintenance)
                .bind(a.ticket)
                .bind(&a.detail)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
                ids.push(id);
            } else {
                update_alert(&mut tx, a).await?;
                ids.push(a.id);
            }
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// Changes an alert (its incident, suppression, hold).
    pub async fn update(&self, a: &Alert) -> Result<()> {
        let mut tx = self.0.write_pool().begin_with(self.0.backend.begin_write()).await?;
        update_alert(&mut tx, a).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The open alert of a rule on a metric, if any.
    pub async fn open_alert(&self, rule: i64, metric: &str) -> Result<Option<Alert>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ALERT_COLUMNS} FROM ops_alerts WHERE rule = $1 AND metric = $2 AND status = 'open' \
             ORDER BY id DESC LIMIT 1"
        )))
        .bind(rule)
        .bind(metric)
        .fetch_optional(&self.0.read_pool())
        .await?;
        row.as_ref().map(alert_of).transpose()
    }

    /// Every open alert, oldest first.
    pub async fn open_alerts(&self) -> Result<Vec<Alert>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ALERT_COLUMNS} FROM ops_alerts WHERE status = 'open' ORDER BY id"
        )))
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(alert_of).collect()
    }

    /// Of `cis`, those with an enabled probe.
    pub async fn probed(&self, cis: &[i64]) -> Result<Vec<i64>> {
        let mut out = Vec::new();
        for chunk in cis.chunks(500) {
            let mut sql = crate::sql::Sql::new("SELECT DISTINCT ci FROM ops_probes WHERE enabled = 1 AND ");
            sql.push_in_ints("ci", chunk);
            for row in sql.query(self.0.backend).fetch_all(&self.0.read_pool()).await? {
                out.push(row.try_get::<i64, _>(0)?);
            }
        }
        Ok(out)
    }

    /// The alerts open at any time in `[from, to)`: opened before `to` and not
    /// resolved by `from`, oldest first.
    pub async fn alerts_between(&self, from: i64, to: i64) -> Result<Vec<Alert>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ALERT_COLUMNS} FROM ops_alerts WHERE opened_at < $1 AND (resolved_at IS NULL OR resolved_at > $2) \
             ORDER BY opened_at, id"
        )))
        .bind(to)
        .bind(from)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(alert_of).collect()
    }

    /// A probe's alerts, newest first.
    pub async fn alerts_of_probe(&self, probe: i64, limit: i64) -> Result<Vec<Alert>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ALERT_COLUMNS} FROM ops_alerts WHERE probe = $1 ORDER BY id DESC LIMIT $2"
        )))
        .bind(probe)
        .bind(limit)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(alert_of).collect()
    }

    /// Alerts, newest first: open ones only, or all.
    pub async fn alerts(&self, open_only: bool, limit: i64) -> Result<Vec<Alert>> {
        let filter = if open_only { "WHERE status = 'open'" } else { "" };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ALERT_COLUMNS} FROM ops_alerts {filter} ORDER BY id DESC LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(alert_of).collect()
    }

    pub async fn alert(&self, id: i64) -> Result<Option<Alert>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {ALERT_COLUMNS} FROM ops_alerts WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.0.read_pool())
            .await?;
        row.as_ref().map(alert_of).transpose()
    }

    /// The open alerts that joined a ticket.
    pub async fn open_alerts_of_ticket(&self, ticket: i64) -> Result<Vec<Alert>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ALERT_COLUMNS} FROM ops_alerts WHERE ticket = $1 AND status = 'open' ORDER BY id"
        )))
        .bind(ticket)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(alert_of).collect()
    }
}

impl Monitor {
    /// Rolls the raw samples of the oldest `window_ms` before `before` up into the
    /// 5-minute and hourly buckets and deletes them and their runs, in one
    /// transaction; returns how many samples went, or `None` when none is that old.
    pub async fn roll_up_oldest(&self, before: i64, window_ms: i64) -> Result<Option<u64>> {
        let oldest: Option<i64> = sqlx::query("SELECT MIN(at) FROM ops_samples WHERE at < $1")
            .bind(before)
            .fetch_one(&self.0.read_pool())
            .await?
            .try_get(0)?;
        let runs_oldest: Option<i64> = sqlx::query("SELECT MIN(at) FROM ops_probe_runs WHERE at < $1")
            .bind(before)
            .fetch_one(&self.0.read_pool())
            .await?
            .try_get(0)?;
        let Some(oldest) = oldest.into_iter().chain(runs_oldest).min() else {
            return Ok(None);
        };
        let window = window_ms.max(60_000);
        let start = oldest - oldest.rem_euclid(window);
        let end = (start + window).min(before);
        let (least, greatest) = match self.0.backend {
            crate::Backend::Sqlite => ("min", "max"),
            crate::Backend::Postgres => ("LEAST", "GREATEST"),
        };
        let mut tx = self.0.write_pool().begin_with(self.0.backend.begin_write()).await?;
        for span in SPANS {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO ops_rollups (probe, metric, span, bucket, n, lo, total, hi) \
                 SELECT probe, metric, $3, at - (at % $3), COUNT(*), MIN(value), SUM(value), MAX(value) \
                 FROM ops_samples WHERE at >= $1 AND at < $2 GROUP BY probe, metric, at - (at % $3) \
                 ON CONFLICT (probe, metric, span, bucket) DO UPDATE SET n = ops_rollups.n + excluded.n, \
                 lo = {least}(ops_rollups.lo, excluded.lo), total = ops_rollups.total + excluded.total, \
                 hi = {greatest}(ops_rollups.hi, excluded.hi)"
            )))
            .bind(start)
            .bind(end)
            .bind(span)
            .execute(&mut *tx)
            .await?;
        }
        let gone = sqlx::query("DELETE FROM ops_samples WHERE at >= $1 AND at < $2")
            .bind(start)
            .bind(end)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM ops_probe_runs WHERE at >= $1 AND at < $2")
            .bind(start)
            .bind(end)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(gone))
    }

    /// Deletes the oldest day of `span` buckets before `before`; false when none is
    /// that old.
    pub async fn prune_rollups(&self, span: i64, before: i64) -> Result<bool> {
        let oldest: Option<i64> = sqlx::query("SELECT MIN(bucket) FROM ops_rollups WHERE span = $1 AND bucket < $2")
            .bind(span)
            .bind(before)
            .fetch_one(&self.0.read_pool())
            .await?
            .try_get(0)?;
        let Some(oldest) = oldest else { return Ok(false) };
        sqlx::query("DELETE FROM ops_rollups WHERE span = $1 AND bucket >= $2 AND bucket < $3")
            .bind(span)
            .bind(oldest)
            .bind((oldest + 86_400_000).min(before))
            .execute(&self.0.write_pool())
            .await?;
        Ok(true)
    }

    /// A metric's `span` buckets between two instants, oldest first.
    pub async fn rollups(&self, probe: i64, metric: &str, span: i64, from: i64, to: i64) -> Result<Vec<Rollup>> {
        let rows = sqlx::query(
            "SELECT bucket, n, lo, total, hi FROM ops_rollups WHERE probe = $1 AND metric = $2 AND span = $3 \
             AND bucket >= $4 AND bucket < $5 ORDER BY bucket",
        )
        .bind(probe)
        .bind(metric)
        .bind(span)
        .bind(from)
        .bind(to)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter()
            .map(|r| {
                let n: i64 = r.try_get(1)?;
                let total: f64 = r.try_get(3)?;
                Ok(Rollup {
                    bucket: r.try_get(0)?,
                    n,
                    min: r.try_get(2)?,
                    max: r.try_get(4)?,
                    mean: if n > 0 { total / n as f64 } else { 0.0 },
                })
            })
            .collect()
    }
}

async fn insert_rule(tx: &mut sqlx::Transaction<'static, sqlx::Any>, probe: i64, r: &Rule) -> Result<i64> {
    let q = sqlx::query(
        "INSERT INTO ops_rules (probe, metric, op, threshold, clear, for_ms, severity, created_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(probe)
    .bind(&r.metric)
    .bind(&r.op)
    .bind(r.threshold);
    // See `NULL_DOUBLE`: a float8 NULL, so the connection's prepared statement takes
    // the next rule's number.
    let q = match r.clear {
        Some(c) => q.bind(c),
        None => q.bind(crate::sql::NULL_DOUBLE),
    };
    Ok(q.bind(r.for_ms)
        .bind(&r.severity)
        .bind(r.created_at)
        .bind(&r.created_by)
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?)
}

async fn update_alert(tx: &mut sqlx::Transaction<'static, sqlx::Any>, a: &Alert) -> Result<()> {
    sqlx::query(
        "UPDATE ops_alerts SET status = $2, resolved_at = $3, value = $4, flapping = $5, suppressed_by = $6, \
         maintenance = $7, ticket = $8, detail = $9 WHERE id = $1",
    )
    .bind(a.id)
    .bind(&a.status)
    .bind(a.resolved_at)
    .bind(a.value)
    .bind(i64::from(a.flapping))
    .bind(a.suppressed_by)
    .bind(a.maintenance)
    .bind(a.ticket)
    .bind(&a.detail)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
