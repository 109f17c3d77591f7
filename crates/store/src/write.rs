//! Writes: create, update (also update-as-create) and delete, in batches that are one
//! database transaction each. Every write bumps the version, appends a history row
//! and replaces the resource's index rows, all or nothing.

use std::collections::HashMap;

use lianyi_fhir::datetime::format_instant;
use lianyi_fhir::search_params::{CompositeValue, IndexRows};
use serde_json::{Map, Value};
use sqlx::Row;

use crate::sql::{Arg, Sql, multi_insert};
use crate::{Result, Store, StoreError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteKind {
    /// A new resource; fails if the id is taken (even by a deleted resource).
    Create,
    /// Replace (or create with the client's id); `if_match` guards the current version.
    Update { if_match: Option<i64> },
    /// Logical delete; deleting a missing or deleted resource changes nothing.
    Delete { if_match: Option<i64> },
}

/// One write. The caller has validated the resource and extracted its index rows.
#[derive(Clone, Debug)]
pub struct WriteOp {
    pub resource_type: String,
    pub id: String,
    pub kind: WriteKind,
    /// The resource (required for create and update, ignored for delete).
    pub resource: Option<Value>,
    pub index: IndexRows,
    /// Owning campus; `None` keeps the current owner on update.
    pub campus: Option<String>,
    /// The patient whose compartment the resource is in, if any.
    pub patient: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteResult {
    pub resource_type: String,
    pub id: String,
    pub version: i64,
    pub last_updated: i64,
    /// True when this write created the resource (201 rather than 200).
    pub created: bool,
    /// False for a delete of something already absent.
    pub changed: bool,
    /// The stored JSON with `meta.versionId` and `meta.lastUpdated` set.
    pub body: Option<String>,
}

#[derive(Clone, Debug)]
struct Current {
    version: i64,
    deleted: bool,
    campus: Option<String>,
}

struct Planned {
    resource_type: String,
    id: String,
    version: i64,
    campus: Option<String>,
    patient: Option<String>,
    deleted: bool,
    method: &'static str,
    body: String,
    index: IndexRows,
    existed: bool,
}

/// Sets `id`, `meta.versionId` and `meta.lastUpdated` and serializes.
fn stamp(mut resource: Value, id: &str, version: i64, now_ms: i64) -> Result<String> {
    let obj = resource.as_object_mut().ok_or_else(|| StoreError::Corrupt("resource is not a JSON object".into()))?;
    obj.insert("id".into(), Value::String(id.to_string()));
    let meta = obj.entry("meta").or_insert_with(|| Value::Object(Map::new()));
    if let Some(m) = meta.as_object_mut() {
        m.insert("versionId".into(), Value::String(version.to_string()));
        m.insert("lastUpdated".into(), Value::String(format_instant(now_ms)));
    }
    serde_json::to_string(&resource).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl Store {
    /// Applies the operations in order as one transaction, stamped with `now_ms`.
    /// Any error rolls everything back.
    pub async fn write(&self, ops: Vec<WriteOp>, now_ms: i64) -> Result<Vec<WriteResult>> {
        self.write_audited(ops, now_ms, &[], None).await
    }

    /// Like [`Store::write_audited`] for one request among many concurrent ones:
    /// requests that arrive while a transaction is being committed are committed
    /// together in the next one (group commit), so N concurrent writers share one
    /// fsync. Each caller still gets its own result only after its data is durable;
    /// if the combined transaction fails, every request is retried alone, so one
    /// request's conflict never fails another.
    pub async fn write_grouped(
        &self,
        ops: Vec<WriteOp>,
        now_ms: i64,
        audit: Vec<crate::audit::AuditEntry>,
        hasher: &'static dyn crate::audit::ChainHasher,
    ) -> Result<Vec<WriteResult>> {
        self.write_grouped_with(ops, now_ms, audit, hasher, Vec::new()).await
    }

    /// [`Store::write_grouped`] with side rows committed in the same transaction.
    pub async fn write_grouped_with(
        &self,
        ops: Vec<WriteOp>,
        now_ms: i64,
        audit: Vec<crate::audit::AuditEntry>,
        hasher: &'static dyn crate::audit::ChainHasher,
        side: Vec<crate::messages::SideWrite>,
    ) -> Result<Vec<WriteResult>> {
        let queue = self.group.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::channel::<Pending>(1024);
            tokio::spawn(group_writer(self.clone(), rx));
            tx
        });
        let (done, result) = tokio::sync::oneshot::channel();
        let mut tickets = Vec::new();
        for s in &side {
            if let crate::messages::SideWrite::InTurn { after, queued } = s {
                if let Some(a) = after {
                    // Bounded: a predecessor that vanished must not stop the queue (the
                    // write's own rows still refuse an out-of-turn commit).
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), a.notified()).await;
                }
                tickets.push(queued.clone());
            }
        }
        if queue.send(Pending { ops, now_ms, audit, hasher, side, done }).await.is_err() {
            return Err(StoreError::Corrupt("the writer has stopped".into()));
        }
        // Queued: later writes commit after this one (or in the same transaction).
        for t in tickets {
            t.notify_one();
        }
        result.await.map_err(|_| StoreError::Corrupt("the writer has stopped".into()))?
    }

    /// Like [`Store::write`], appending `audit` to the audit chain in the same
    /// transaction: the change and its audit record are durable together or not at all.
    pub async fn write_audited(
        &self,
        ops: Vec<WriteOp>,
        now_ms: i64,
        audit: &[crate::audit::AuditEntry],
        hasher: Option<&dyn crate::audit::ChainHasher>,
    ) -> Result<Vec<WriteResult>> {
        self.write_audited_with(ops, now_ms, audit, hasher, &[]).await
    }

    /// Like [`Store::write_audited`], also writing `side` rows (a message's outcome)
    /// in the same transaction: they are durable exactly when the writes are.
    pub async fn write_audited_with(
        &self,
        ops: Vec<WriteOp>,
        now_ms: i64,
        audit: &[crate::audit::AuditEntry],
        hasher: Option<&dyn crate::audit::ChainHasher>,
        side: &[crate::messages::SideWrite],
    ) -> Result<Vec<WriteResult>> {
        if ops.is_empty() && side.is_empty() {
            return Ok(Vec::new());
        }
        let started = std::time::Instant::now();
        let mut tx = self.write_pool().begin_with(self.backend.begin_write()).await?;
        let begun_at = started.elapsed();

        // Current state of every touched resource, fetched per type in chunks.
        let mut by_type: HashMap<&str, Vec<&str>> = HashMap::new();
        for op in &ops {
            by_type.entry(op.resource_type.as_str()).or_default().push(op.id.as_str());
        }
        let mut current: HashMap<(String, String), Current> = HashMap::new();
        for (rtype, ids) in by_type {
            for chunk in ids.chunks(500) {
                let mut sql = Sql::new("SELECT id, version, deleted, campus FROM resources WHERE res_type = ");
                sql.push_bind(Arg::Text(rtype.to_string()));
                sql.push(" AND id IN (");
                for (i, id) in chunk.iter().enumerate() {
                    if i > 0 {
                        sql.push(", ");
                    }
                    sql.push_bind(Arg::Text((*id).to_string()));
                }
                sql.push(")");
                for row in sql.query(self.backend).fetch_all(&mut *tx).await? {
                    let id: String = row.try_get(0)?;
                    current.insert(
                        (rtype.to_string(), id),
                        Current {
                            version: row.try_get(1)?,
                            deleted: row.try_get::<i64, _>(2)? != 0,
                            campus: row.try_get(3)?,
                        },
                    );
                }
            }
        }
        let mut existed_at_start: HashMap<(String, String), bool> = current.keys().map(|k| (k.clone(), true)).collect();

        let mut planned: Vec<Planned> = Vec::with_capacity(ops.len());
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            let key = (op.resource_type.clone(), op.id.clone());
            let cur = current.get(&key).cloned();
            let check = |if_match: Option<i64>, cur: &Option<Current>| -> Result<()> {
                if let Some(expected) = if_match {
                    let actual = cur.as_ref().filter(|c| !c.deleted).map_or(0, |c| c.version);
                    if actual != expected {
                        return Err(StoreError::VersionConflict {
                            resource_type: op.resource_type.clone(),
                            id: op.id.clone(),
                            expected,
                            current: actual,
                        });
                    }
                }
                Ok(())
            };
            let (version, deleted, method, body, created) = match &op.kind {
                WriteKind::Create | WriteKind::Update { .. } => {
                    if op.kind == WriteKind::Create && cur.is_some() {
                        return Err(StoreError::AlreadyExists { resource_type: op.resource_type, id: op.id });
                    }
                    if let WriteKind::Update { if_match } = op.kind {
                        check(if_match, &cur)?;
                    }
                    let version = cur.as_ref().map_or(1, |c| c.version + 1);
                    let resource = op
                        .resource
                        .clone()
                        .ok_or_else(|| StoreError::Corrupt("create or update without a resource".into()))?;
                    let body = stamp(resource, &op.id, version, now_ms)?;
                    let created = cur.as_ref().is_none_or(|c| c.deleted);
                    (version, false, if cur.is_some() { "PUT" } else { "POST" }, body, created)
                }
                WriteKind::Delete { if_match } => {
                    check(*if_match, &cur)?;
                    match &cur {
                        Some(c) if !c.deleted => (c.version + 1, true, "DELETE", String::new(), false),
                        _ => {
                            results.push(WriteResult {
                                resource_type: op.resource_type,
                                id: op.id,
                                version: cur.as_ref().map_or(0, |c| c.version),
                                last_updated: now_ms,
                                created: false,
                                changed: false,
                                body: None,
                            });
                            continue;
                        }
                    }
                }
            };
            let campus = op.campus.clone().or_else(|| cur.as_ref().and_then(|c| c.campus.clone()));
            current.insert(key.clone(), Current { version, deleted, campus: campus.clone() });
            let existed = existed_at_start.insert(key, true).is_some();
            results.push(WriteResult {
                resource_type: op.resource_type.clone(),
                id: op.id.clone(),
                version,
                last_updated: now_ms,
                created,
                changed: true,
                body: if deleted { None } else { Some(body.clone()) },
            });
            planned.push(Planned {
                resource_type: op.resource_type,
                id: op.id,
                version,
                campus,
                patient: op.patient,
                deleted,
                method,
                body,
                index: if deleted { IndexRows::default() } else { op.index },
                existed,
            });
        }

        // Old index rows of resources that existed go; new ones come in.
        let mut stale: HashMap<&str, Vec<&str>> = HashMap::new();
        for p in planned.iter().filter(|p| p.existed) {
            stale.entry(p.resource_type.as_str()).or_default().push(p.id.as_str());
        }
        let mut statements: Vec<Sql> = Vec::new();
        for (rtype, ids) in &stale {
            statements.extend(index_deletes(rtype, ids));
        }

        // The last planned state of each resource is its current row.
        let mut last: HashMap<(&str, &str), usize> = HashMap::new();
        for (i, p) in planned.iter().enumerate() {
            last.insert((p.resource_type.as_str(), p.id.as_str()), i);
        }
        let mut finals: Vec<usize> = last.into_values().collect();
        finals.sort_unstable();

        let max = self.backend.max_params();
        let cur_rows: Vec<Vec<Arg>> = finals
            .iter()
            .map(|&i| {
                let p = &planned[i];
                vec![
                    Arg::Text(p.resource_type.clone()),
                    Arg::Text(p.id.clone()),
                    Arg::Int(p.version),
                    Arg::Int(now_ms),
                    Arg::OptText(p.campus.clone()),
                    Arg::OptText(p.patient.clone()),
                    Arg::Int(i64::from(p.deleted)),
                ]
            })
            .collect();
        // The body is stored once, in the history row of its version.
        for mut s in multi_insert(
            "resources",
            &["res_type", "id", "version", "last_updated", "campus", "patient", "deleted"],
            cur_rows,
            max,
        ) {
            s.push(
                " ON CONFLICT (res_type, id) DO UPDATE SET version = excluded.version, \
                 last_updated = excluded.last_updated, campus = excluded.campus, patient = excluded.patient, \
                 deleted = excluded.deleted",
            );
            statements.push(s);
        }
        let hist_rows: Vec<Vec<Arg>> = planned
            .iter()
            .map(|p| {
                vec![
                    Arg::Text(p.resource_type.clone()),
                    Arg::Text(p.id.clone()),
                    Arg::Int(p.version),
                    Arg::Int(now_ms),
                    Arg::OptText(p.campus.clone()),
                    Arg::OptText(p.patient.clone()),
                    Arg::Int(i64::from(p.deleted)),
                    Arg::Text(p.method.to_string()),
                    Arg::Text(p.body.clone()),
                ]
            })
            .collect();
        statements.extend(multi_insert(
            "resource_history",
            &["res_type", "id", "version", "last_updated", "campus", "patient", "deleted", "method", "body"],
            hist_rows,
            max,
        ));

        statements.extend(index_inserts(
            finals.iter().map(|&i| (planned[i].resource_type.as_str(), planned[i].id.as_str(), &planned[i].index)),
            max,
        ));

        let planned_at = started.elapsed();
        let count = statements.len();
        if !planned.is_empty() {
            // Every change is an outbox event in the same transaction. On PostgreSQL,
            // writers take the outbox lock for their last moments so events commit in
            // `seq` order (a reader never sees seq n+1 before n); SQLite has one writer.
            if self.backend == crate::Backend::Postgres {
                for s in std::mem::take(&mut statements) {
                    s.query(self.backend).execute(&mut *tx).await?;
                }
                sqlx::query("SELECT pg_advisory_xact_lock(7357)").execute(&mut *tx).await?;
            }
            let rows: Vec<Vec<Arg>> = planned
                .iter()
                .map(|p| {
                    vec![
                        Arg::Text(p.resource_type.clone()),
                        Arg::Text(p.id.clone()),
                        Arg::Int(p.version),
                        Arg::Text(p.method.to_string()),
                        Arg::OptText(p.campus.clone()),
                        Arg::OptText(p.patient.clone()),
                        Arg::Int(now_ms),
                    ]
                })
                .collect();
            statements.extend(multi_insert(
                "outbox",
                &["res_type", "res_id", "version", "method", "campus", "patient", "at"],
                rows,
                max,
            ));
        }
        for s in crate::sql::joined(self.backend, statements) {
            s.query(self.backend).execute(&mut *tx).await?;
        }
        if let Some(h) = hasher {
            Store::append_audit_in(self.backend, &mut tx, audit, h).await?;
        }
        // Payments and queue additions of a group are written together, payments in
        // their numbers' order; the other side writes one by one.
        let payments: Vec<&crate::payments::NewPayment> = side
            .iter()
            .filter_map(|w| match w {
                crate::messages::SideWrite::Payment(p) => Some(p),
                _ => None,
            })
            .collect();
        crate::payments::insert_all(self.backend, &mut tx, &payments).await?;
        let adds: Vec<&crate::pharmacy::Dispensing> = side
            .iter()
            .filter_map(|w| match w {
                crate::messages::SideWrite::Queue(crate::pharmacy::QueueChange::Add(d)) => Some(d),
                _ => None,
            })
            .collect();
        crate::pharmacy::add_to_queue(self.backend, &mut tx, &adds).await?;
        for w in side {
            match w {
                crate::messages::SideWrite::Payment(_)
                | crate::messages::SideWrite::Queue(crate::pharmacy::QueueChange::Add(_)) => {}
                crate::messages::SideWrite::FinishMessage(f) => {
                    crate::messages::finish_sql(f).query(self.backend).execute(&mut *tx).await?;
                }
                crate::messages::SideWrite::Stock(m) => {
                    crate::pharmacy::apply_move(&mut tx, m).await?;
                }
                crate::messages::SideWrite::Deposit(d) => {
                    crate::deposits::apply(&mut tx, d).await?;
                }
                crate::messages::SideWrite::WardRules(w) => {
                    crate::ward_rules::apply(&mut tx, w).await?;
                }
                crate::messages::SideWrite::Queue(c) => {
                    crate::pharmacy::apply_queue(&mut tx, c).await?;
                }
                crate::messages::SideWrite::InTurn { .. } => {}
                crate::messages::SideWrite::FinishQueued(f) => {
                    let mut sql = crate::messages::finish_sql(f);
                    sql.push(" AND status = 'queued'");
                    if sql.query(self.backend).execute(&mut *tx).await?.rows_affected() != 1 {
                        return Err(StoreError::NotQueued(f.id));
                    }
                }
            }
        }
        let inserted_at = started.elapsed();
        tx.commit().await?;
        crate::faults::clear();
        if !planned.is_empty() {
            self.changes.notify_one();
        }
        tracing::debug!(
            writes = results.len(),
            statements = count,
            begin_us = begun_at.as_micros() as u64,
            plan_us = planned_at.as_micros() as u64,
            insert_us = (inserted_at - planned_at).as_micros() as u64,
            commit_us = (started.elapsed() - inserted_at).as_micros() as u64,
            "write batch"
        );
        Ok(results)
    }
}

/// The index tables, one per parameter type.
const INDEX_TABLES: [&str; 8] =
    ["idx_token", "idx_string", "idx_reference", "idx_date", "idx_number", "idx_quantity", "idx_uri", "idx_composite"];

/// Statements deleting every index row of the resources `ids` of type `rtype`.
fn index_deletes(rtype: &str, ids: &[&str]) -> Vec<Sql> {
    let mut out = Vec::new();
    for chunk in ids.chunks(500) {
        for table in INDEX_TABLES {
            let mut sql = Sql::new(&format!("DELETE FROM {table} WHERE res_type = "));
            sql.push_bind(Arg::Text(rtype.to_string()));
            sql.push(" AND res_id IN (");
            for (i, id) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.push_bind(Arg::Text((*id).to_string()));
            }
            sql.push(")");
            out.push(sql);
        }
    }
    out
}

/// Multi-row inserts of the index rows of each (type, id, rows).
fn index_inserts<'a>(owners: impl Iterator<Item = (&'a str, &'a str, &'a IndexRows)>, max: usize) -> Vec<Sql> {
    let mut out = Vec::new();
    let (mut tokens, mut strings, mut refs, mut dates) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut numbers, mut quantities, mut uris, mut composites) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (rtype, id, index) in owners {
        let owner = || vec![Arg::Text(rtype.to_string()), Arg::Text(id.to_string())];
        for t in &index.tokens {
            let mut r = owner();
            r.extend([Arg::Text(t.param.to_string()), Arg::OptText(t.system.clone()), Arg::Text(t.code.clone())]);
            tokens.push(r);
        }
        for s in &index.strings {
            let mut r = owner();
            r.extend([Arg::Text(s.param.to_string()), Arg::Text(s.norm.clone()), Arg::Text(s.exact.clone())]);
            strings.push(r);
        }
        for x in &index.references {
            let mut r = owner();
            r.extend([
                Arg::Text(x.param.to_string()),
                Arg::OptText(x.target_type.clone()),
                Arg::Text(x.target_id.clone()),
            ]);
            refs.push(r);
        }
        for d in &index.dates {
            let mut r = owner();
            r.extend([Arg::Text(d.param.to_string()), Arg::Int(d.low), Arg::Int(d.high)]);
            dates.push(r);
        }
        for n in &index.numbers {
            let mut r = owner();
            r.extend([Arg::Text(n.param.to_string()), Arg::Float(n.value)]);
            numbers.push(r);
        }
        for q in &index.quantities {
            let mut r = owner();
            r.extend([
                Arg::Text(q.param.to_string()),
                Arg::Float(q.value),
                Arg::OptText(q.system.clone()),
                Arg::OptText(q.code.clone()),
            ]);
            quantities.push(r);
        }
        for u in &index.uris {
            let mut r = owner();
            r.extend([Arg::Text(u.param.to_string()), Arg::Text(u.uri.clone())]);
            uris.push(r);
        }
        for c in &index.composites {
            let mut r = owner();
            r.extend([Arg::Text(c.param.to_string()), Arg::OptText(c.system.clone()), Arg::Text(c.code.clone())]);
            let (vsystem, vcode, num, low, high) = match &c.value {
                CompositeValue::Code { system, code } => (system.clone(), Some(code.clone()), None, None, None),
                CompositeValue::Quantity { value, system, code } => {
                    (system.clone(), code.clone(), Some(*value), None, None)
                }
                CompositeValue::Date { low, high } => (None, None, None, Some(*low), Some(*high)),
            };
            r.extend([
                Arg::OptText(vsystem),
                Arg::OptText(vcode),
                Arg::OptFloat(num),
                Arg::OptInt(low),
                Arg::OptInt(high),
            ]);
            composites.push(r);
        }
    }
    out.extend(multi_insert("idx_token", &["res_type", "res_id", "param", "system", "code"], tokens, max));
    out.extend(multi_insert("idx_string", &["res_type", "res_id", "param", "norm", "exact"], strings, max));
    out.extend(multi_insert("idx_reference", &["res_type", "res_id", "param", "target_type", "target_id"], refs, max));
    out.extend(multi_insert("idx_date", &["res_type", "res_id", "param", "low", "high"], dates, max));
    out.extend(multi_insert("idx_number", &["res_type", "res_id", "param", "value"], numbers, max));
    out.extend(multi_insert(
        "idx_quantity",
        &["res_type", "res_id", "param", "value", "system", "code"],
        quantities,
        max,
    ));
    out.extend(multi_insert("idx_uri", &["res_type", "res_id", "param", "uri"], uris, max));
    out.extend(multi_insert(
        "idx_composite",
        &["res_type", "res_id", "param", "system", "code", "vsystem", "vcode", "num", "low", "high"],
        composites,
        max,
    ));

    out
}

/// One current resource's new index rows, for [`Store::replace_index`].
#[derive(Clone, Debug)]
pub struct Reindexed {
    pub resource_type: String,
    pub id: String,
    /// The version the rows were extracted from; skipped if it is no longer current.
    pub version: i64,
    pub index: IndexRows,
}

impl Store {
    /// Replaces the index rows of resources (after the extraction rules changed), in
    /// one transaction, leaving bodies and versions alone. A resource updated since it
    /// was read keeps the rows its update wrote. Returns how many were reindexed.
    pub async fn replace_index(&self, items: &[Reindexed]) -> Result<usize> {
        let mut tx = self.write_pool().begin_with(self.backend.begin_write()).await?;
        let mut current = Vec::new();
        for it in items {
            let mut sql = Sql::new("SELECT 1 FROM resources WHERE res_type = ");
            sql.push_bind(Arg::Text(it.resource_type.clone()));
            sql.push(" AND id = ");
            sql.push_bind(Arg::Text(it.id.clone()));
            sql.push(" AND version = ");
            sql.push_bind(Arg::Int(it.version));
            sql.push(" AND deleted = 0");
            if sql.query(self.backend).fetch_optional(&mut *tx).await?.is_some() {
                current.push(it);
            }
        }
        for it in &current {
            for sql in index_deletes(&it.resource_type, &[it.id.as_str()]) {
                sql.query(self.backend).execute(&mut *tx).await?;
            }
        }
        let inserts = index_inserts(
            current.iter().map(|it| (it.resource_type.as_str(), it.id.as_str(), &it.index)),
            self.backend.max_params(),
        );
        for sql in &inserts {
            sql.query(self.backend).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(current.len())
    }

    /// The version of the index-extraction rules the stored rows were built with
    /// (`None` before the first record).
    pub async fn index_version(&self) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT value FROM store_meta WHERE name = 'index_version'")
            .fetch_optional(&self.write_pool())
            .await?;
        Ok(match row {
            Some(r) => r.try_get::<String, _>(0)?.parse().ok(),
            None => None,
        })
    }

    pub async fn set_index_version(&self, version: i64) -> Result<()> {
        let mut tx = self.write_pool().begin_with(self.backend.begin_write()).await?;
        sqlx::query("DELETE FROM store_meta WHERE name = 'index_version'").execute(&mut *tx).await?;
        sqlx::query("INSERT INTO store_meta (name, value) VALUES ('index_version', $1)")
            .bind(version.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// One queued write request.
pub(crate) struct Pending {
    ops: Vec<WriteOp>,
    now_ms: i64,
    audit: Vec<crate::audit::AuditEntry>,
    hasher: &'static dyn crate::audit::ChainHasher,
    side: Vec<crate::messages::SideWrite>,
    done: tokio::sync::oneshot::Sender<Result<Vec<WriteResult>>>,
}

const MAX_GROUP: usize = 256;

async fn group_writer(store: Store, mut rx: tokio::sync::mpsc::Receiver<Pending>) {
    let mut batch: Vec<Pending> = Vec::with_capacity(64);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        if batch.len() == 1 {
            let p = batch.remove(0);
            let r = store.write_audited_with(p.ops, p.now_ms, &p.audit, Some(p.hasher), &p.side).await;
            let _ = p.done.send(r);
            continue;
        }
        let now = batch.iter().map(|p| p.now_ms).max().unwrap_or_default();
        let hasher = batch[0].hasher;
        let counts: Vec<usize> = batch.iter().map(|p| p.ops.len()).collect();
        let ops: Vec<WriteOp> = batch.iter().flat_map(|p| p.ops.iter().cloned()).collect();
        let audit: Vec<crate::audit::AuditEntry> = batch.iter().flat_map(|p| p.audit.iter().cloned()).collect();
        let side: Vec<crate::messages::SideWrite> = batch.iter().flat_map(|p| p.side.iter().cloned()).collect();
        match store.write_audited_with(ops, now, &audit, Some(hasher), &side).await {
            Ok(mut results) => {
                for (p, n) in batch.drain(..).zip(counts) {
                    let rest = results.split_off(n.min(results.len()));
                    let mine = std::mem::replace(&mut results, rest);
                    let _ = p.done.send(Ok(mine));
                }
            }
            Err(_) => {
                // Someone's request cannot commit: run each alone, in arrival order.
                for p in batch.drain(..) {
                    let r = store.write_audited_with(p.ops, p.now_ms, &p.audit, Some(p.hasher), &p.side).await;
                    let _ = p.done.send(r);
                }
            }
        }
    }
}
