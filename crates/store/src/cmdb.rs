//! The configuration database of IT operations (CMDB, not health data): configuration
//! items and the relations between them, and the walk over that graph that answers
//! "if this fails, what stops?" and "what does this depend on?" in one recursive query
//! on either database.
//!
//! A broken rule (a code taken, a CI part of itself, a changed version) fails the
//! whole transaction with [`StoreError::Refused`] or [`StoreError::VersionConflict`]:
//! an import writes all of its rows or none.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::sql::{Arg, Sql};
use crate::{Result, Store, StoreError};

/// A configuration item.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ci {
    /// Assigned by the store (ignored on insert).
    pub id: i64,
    /// The hospital's own code (asset tag), unique.
    pub code: String,
    pub name: String,
    pub class: String,
    /// `None`: the whole group's.
    pub campus: Option<String>,
    pub location: Option<String>,
    /// The lifecycle status (`planned`, `in-service`, `maintenance`, `retired` …).
    pub status: String,
    /// The user responsible for it.
    pub owner: Option<String>,
    /// The support group its faults go to.
    pub support_group: String,
    pub supplier: Option<String>,
    /// `YYYY-MM-DD`.
    pub warranty_end: Option<String>,
    /// `YYYY-MM-DD`: the end of the maintenance contract.
    pub contract_end: Option<String>,
    /// The class's own attributes, a JSON object.
    pub attrs: String,
    /// `platform` for the CIs the server registers itself.
    pub managed_by: Option<String>,
    pub version: i64,
    pub updated_at: i64,
    pub updated_by: String,
}

/// A relation: `source` runs on, depends on, connects to, is part of or backs up
/// `target`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Relation {
    pub source: i64,
    pub kind: String,
    pub target: i64,
}

/// The relations along which a failure spreads (from target to source).
pub const SPREADING: [&str; 4] = ["runs-on", "depends-on", "connects-to", "part-of"];

/// Which way [`Cmdb::walk`] goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Walk {
    /// What stops when the CI stops (the sources of its spreading relations, and
    /// theirs).
    Impacted,
    /// What the CI needs (the targets of its spreading relations, and theirs).
    Needs,
}

/// The CIs a walk reached (the start among them) and the relations between them.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub cis: Vec<Ci>,
    pub relations: Vec<Relation>,
}

/// What a CI list asks for; `after` is the (name, id) of the last row seen.
#[derive(Clone, Debug, Default)]
pub struct CiQuery {
    pub class: Option<String>,
    /// `Some("")`: group-wide CIs only.
    pub campus: Option<String>,
    pub status: Option<String>,
    /// Part of the name or the code.
    pub text: Option<String>,
    pub after: Option<(String, i64)>,
    pub limit: i64,
}

const COLUMNS: &str = "id, code, name, class, campus, location, status, owner, support_group, supplier, \
                       warranty_end, contract_end, attrs, managed_by, version, updated_at, updated_by";

fn ci_from_row(r: &AnyRow) -> Result<Ci> {
    Ok(Ci {
        id: r.try_get("id")?,
        code: r.try_get("code")?,
        name: r.try_get("name")?,
        class: r.try_get("class")?,
        campus: r.try_get("campus")?,
        location: r.try_get("location")?,
        status: r.try_get("status")?,
        owner: r.try_get("owner")?,
        support_group: r.try_get("support_group")?,
        supplier: r.try_get("supplier")?,
        warranty_end: r.try_get("warranty_end")?,
        contract_end: r.try_get("contract_end")?,
        attrs: r.try_get("attrs")?,
        managed_by: r.try_get("managed_by")?,
        version: r.try_get("version")?,
        updated_at: r.try_get("updated_at")?,
        updated_by: r.try_get("updated_by")?,
    })
}

fn refused(msg: String) -> StoreError {
    StoreError::Refused(msg)
}

/// The CMDB's tables; see the module documentation.
#[derive(Clone, Debug)]
pub struct Cmdb(pub(crate) Store);

/// `kind IN ('runs-on', …)` of the spreading relations, as SQL text (constants only).
fn spreading_in() -> String {
    let kinds: Vec<String> = SPREADING.iter().map(|k| format!("'{k}'")).collect();
    format!("kind IN ({})", kinds.join(", "))
}

/// `q` with $1 … $15 bound to the CI's when and who, then its fields in column order
/// (code … managed_by), as inserts and updates write them.
fn bind_ci<'q>(
    q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
    ci: &Ci,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    q.bind(ci.updated_at)
        .bind(ci.updated_by.clone())
        .bind(ci.code.clone())
        .bind(ci.name.clone())
        .bind(ci.class.clone())
        .bind(ci.campus.clone())
        .bind(ci.location.clone())
        .bind(ci.status.clone())
        .bind(ci.owner.clone())
        .bind(ci.support_group.clone())
        .bind(ci.supplier.clone())
        .bind(ci.warranty_end.clone())
        .bind(ci.contract_end.clone())
        .bind(ci.attrs.clone())
        .bind(ci.managed_by.clone())
}

async fn insert_in(tx: &mut Transaction<'static, Any>, ci: &Ci) -> Result<i64> {
    let q = sqlx::query(
        "INSERT INTO ops_cis (code, name, class, campus, location, status, owner, support_group, supplier, \
         warranty_end, contract_end, attrs, managed_by, version, updated_at, updated_by) \
         VALUES ($3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 1, $1, $2) RETURNING id",
    );
    match bind_ci(q, ci).fetch_one(&mut **tx).await {
        Ok(row) => Ok(row.try_get(0)?),
        Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
            Err(refused(format!("code: {} is taken by another configuration item", ci.code)))
        }
        Err(e) => Err(e.into()),
    }
}

/// Adds a relation inside `tx`, refusing one that makes a CI part of itself.
async fn relate_in(
    backend: crate::Backend,
    tx: &mut Transaction<'static, Any>,
    r: &Relation,
    at: i64,
    by: &str,
) -> Result<()> {
    if r.source == r.target {
        return Err(refused(format!("target: a configuration item cannot {} itself", r.kind)));
    }
    if r.kind == "part-of" {
        // Two writers adding A part-of B and B part-of A at once: on PostgreSQL they
        // take turns here (SQLite has one writer).
        if backend == crate::Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7358)").execute(&mut **tx).await?;
        }
        // A cycle: the target is already (a part of a part of …) the source.
        let cycle = sqlx::query(
            "WITH RECURSIVE whole(id) AS (SELECT CAST($1 AS BIGINT) UNION SELECT r.target FROM ops_relations r \
             JOIN whole w ON r.source = w.id WHERE r.kind = 'part-of') \
             SELECT 1 FROM whole WHERE id = $2",
        )
        .bind(r.target)
        .bind(r.source)
        .fetch_optional(&mut **tx)
        .await?;
        if cycle.is_some() {
            return Err(refused("target: the relation would make a configuration item part of itself".into()));
        }
    }
    let found = sqlx::query("SELECT COUNT(*) FROM ops_cis WHERE id IN ($1, $2)")
        .bind(r.source)
        .bind(r.target)
        .fetch_one(&mut **tx)
        .await?
        .try_get::<i64, _>(0)?;
    if found != 2 {
        return Err(refused("target: no such configuration item".into()));
    }
    let done = sqlx::query(
        "INSERT INTO ops_relations (source, kind, target, created_at, created_by) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(r.source)
    .bind(r.kind.clone())
    .bind(r.target)
    .bind(at)
    .bind(by.to_string())
    .execute(&mut **tx)
    .await;
    match done {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
            Err(refused("target: the relation exists already".into()))
        }
        Err(e) => Err(e.into()),
    }
}

impl Cmdb {
    /// Adds a CI; returns its id.
    pub async fn insert(&self, ci: &Ci) -> Result<i64> {
        let mut tx = self.0.write_pool().begin_with(self.0.backend.begin_write()).await?;
        let id = insert_in(&mut tx, ci).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Adds many CIs and the relations between them (given by position in `cis` or by
    /// the id of a CI already stored) in one transaction: all or nothing. Returns the
    /// new ids in order.
    pub async fn import(
        &self,
        cis: &[Ci],
        relations: &[(Target, String, Target)],
        at: i64,
        by: &str,
    ) -> Result<Vec<i64>> {
        let mut tx = self.0.write_pool().begin_with(self.0.backend.begin_write()).await?;
        let mut ids = Vec::with_capacity(cis.len());
        for ci in cis {
            ids.push(insert_in(&mut tx, ci).await?);
        }
        let id_of = |t: &Target| match t {
            Target::New(i) => ids.get(*i).copied().unwrap_or(-1),
            Target::Stored(id) => *id,
        };
        for (s, kind, t) in relations {
            let r = Relation { source: id_of(s), kind: kind.clone(), target: id_of(t) };
            relate_in(self.0.backend, &mut tx, &r, at, by).await?;
        }
        tx.commit().await?;
        // A large import changes the tables' shape at once: PostgreSQL plans the
        // impact walks by sequential scans until autovacuum next samples them (twice
        // as slow), so they are sampled now.
        if self.0.backend == crate::Backend::Postgres && cis.len() + relations.len() >= 1_000 {
            sqlx::query("ANALYZE ops_cis, ops_relations").execute(&self.0.write_pool()).await?;
        }
        Ok(ids)
    }

    /// Changes a CI if it is still at `ci.version`; returns the new version.
    pub async fn update(&self, ci: &Ci) -> Result<i64> {
        let q = sqlx::query(
            "UPDATE ops_cis SET code = $3, name = $4, class = $5, campus = $6, location = $7, status = $8, \
             owner = $9, support_group = $10, supplier = $11, warranty_end = $12, contract_end = $13, attrs = $14, \
             managed_by = $15, version = version + 1, updated_at = $1, updated_by = $2 \
             WHERE id = $16 AND version = $17",
        );
        let r = bind_ci(q, ci).bind(ci.id).bind(ci.version).execute(&self.0.write_pool()).await;
        match r {
            Ok(done) if done.rows_affected() == 1 => Ok(ci.version + 1),
            Ok(_) => {
                let current = self.get(ci.id).await?.map_or(0, |c| c.version);
                Err(StoreError::VersionConflict {
                    resource_type: "ci".into(),
                    id: ci.id.to_string(),
                    expected: ci.version,
                    current,
                })
            }
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                Err(refused(format!("code: {} is taken by another configuration item", ci.code)))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get(&self, id: i64) -> Result<Option<Ci>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM ops_cis WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.0.read_pool())
            .await?;
        row.as_ref().map(ci_from_row).transpose()
    }

    pub async fn by_code(&self, code: &str) -> Result<Option<Ci>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM ops_cis WHERE code = $1")))
            .bind(code.to_string())
            .fetch_optional(&self.0.read_pool())
            .await?;
        row.as_ref().map(ci_from_row).transpose()
    }

    /// The CIs with these ids (in no particular order).
    /// CIs in service whose warranty or maintenance contract ends between two dates
    /// (`YYYY-MM-DD`, both included).
    pub async fn ending_between(&self, from: &str, to: &str) -> Result<Vec<Ci>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM ops_cis WHERE status <> 'retired' AND \
             ((warranty_end >= $1 AND warranty_end <= $2) OR (contract_end >= $1 AND contract_end <= $2)) ORDER BY id"
        )))
        .bind(from.to_string())
        .bind(to.to_string())
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(ci_from_row).collect()
    }

    pub async fn many(&self, ids: &[i64]) -> Result<Vec<Ci>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM ops_cis WHERE "));
            sql.push_in_ints("id", chunk);
            for row in sql.query(self.0.backend).fetch_all(&self.0.read_pool()).await? {
                out.push(ci_from_row(&row)?);
            }
        }
        Ok(out)
    }

    fn filtered(q: &CiQuery, select: &str) -> Sql {
        let mut sql = Sql::new(&format!("SELECT {select} FROM ops_cis WHERE 1 = 1"));
        if let Some(c) = &q.class {
            sql.push(" AND class = ");
            sql.push_bind(Arg::Text(c.clone()));
        }
        match q.campus.as_deref() {
            Some("") => sql.push(" AND campus IS NULL"),
            Some(c) => {
                sql.push(" AND campus = ");
                sql.push_bind(Arg::Text(c.to_string()));
            }
            None => {}
        }
        if let Some(s) = &q.status {
            sql.push(" AND status = ");
            sql.push_bind(Arg::Text(s.clone()));
        }
        if let Some(t) = q.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            // Case folded on both databases (SQLite's LIKE folds ASCII, PostgreSQL's does not).
            let t = t.to_lowercase();
            let pattern = format!("%{}%", t.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
            let p = sql.bind(Arg::Text(pattern));
            sql.push(&format!(" AND (LOWER(name) LIKE {p} ESCAPE '\\' OR LOWER(code) LIKE {p} ESCAPE '\\')"));
        }
        sql
    }

    /// A page of CIs by name (keyset: after the (name, id) given).
    pub async fn list(&self, q: &CiQuery) -> Result<Vec<Ci>> {
        let mut sql = Self::filtered(q, COLUMNS);
        if let Some((name, id)) = &q.after {
            let n = sql.bind(Arg::Text(name.clone()));
            let i = sql.bind(Arg::Int(*id));
            sql.push(&format!(" AND (name > {n} OR (name = {n} AND id > {i}))"));
        }
        sql.push(" ORDER BY name, id LIMIT ");
        sql.push_bind(Arg::Int(q.limit.clamp(1, 1000)));
        let rows = sql.query(self.0.backend).fetch_all(&self.0.read_pool()).await?;
        rows.iter().map(ci_from_row).collect()
    }

    /// How many CIs the query finds (paging aside).
    pub async fn count(&self, q: &CiQuery) -> Result<i64> {
        let sql = Self::filtered(q, "COUNT(*)");
        Ok(sql.query(self.0.backend).fetch_one(&self.0.read_pool()).await?.try_get(0)?)
    }

    /// Which of `codes` are taken already.
    pub async fn taken(&self, codes: &[String]) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for chunk in codes.chunks(500) {
            let mut sql = Sql::new("SELECT code FROM ops_cis WHERE ");
            sql.push_in("code", chunk);
            for row in sql.query(self.0.backend).fetch_all(&self.0.read_pool()).await? {
                out.push(row.try_get(0)?);
            }
        }
        Ok(out)
    }

    /// The CIs the server registered itself.
    pub async fn managed_by(&self, manager: &str) -> Result<Vec<Ci>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM ops_cis WHERE managed_by = $1 ORDER BY id"
        )))
        .bind(manager.to_string())
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(ci_from_row).collect()
    }

    /// Adds a relation (see the module documentation for what is refused).
    pub async fn relate(&self, r: &Relation, at: i64, by: &str) -> Result<()> {
        let mut tx = self.0.write_pool().begin_with(self.0.backend.begin_write()).await?;
        relate_in(self.0.backend, &mut tx, r, at, by).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a relation; whether it existed.
    pub async fn unrelate(&self, r: &Relation) -> Result<bool> {
        let done = sqlx::query("DELETE FROM ops_relations WHERE source = $1 AND kind = $2 AND target = $3")
            .bind(r.source)
            .bind(r.kind.clone())
            .bind(r.target)
            .execute(&self.0.write_pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every relation of a CI, both ways.
    pub async fn relations(&self, id: i64) -> Result<Vec<Relation>> {
        let rows = sqlx::query(
            "SELECT source, kind, target FROM ops_relations WHERE source = $1 \
             UNION ALL SELECT source, kind, target FROM ops_relations WHERE target = $1 ORDER BY 2, 1, 3",
        )
        .bind(id)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter()
            .map(|r| Ok(Relation { source: r.try_get(0)?, kind: r.try_get(1)?, target: r.try_get(2)? }))
            .collect()
    }

    /// Every relation (for the export).
    pub async fn all_relations(&self) -> Result<Vec<Relation>> {
        let rows = sqlx::query("SELECT source, kind, target FROM ops_relations ORDER BY source, kind, target")
            .fetch_all(&self.0.read_pool())
            .await?;
        rows.iter()
            .map(|r| Ok(Relation { source: r.try_get(0)?, kind: r.try_get(1)?, target: r.try_get(2)? }))
            .collect()
    }

    /// The CIs reached from `id` along spreading relations (see [`Walk`]), the start
    /// not among them, and the spreading relations between them; at most `max` CIs
    /// (the walk itself is complete). The CIs reached carry only their id, code, name,
    /// class, campus and status.
    pub async fn walk(&self, id: i64, way: Walk, max: i64) -> Result<Graph> {
        let (from, to) = match way {
            Walk::Impacted => ("target", "source"),
            Walk::Needs => ("source", "target"),
        };
        let walked = format!(
            "WITH RECURSIVE walk(id) AS (SELECT CAST($1 AS BIGINT) UNION SELECT r.{to} FROM ops_relations r \
             JOIN walk w ON r.{from} = w.id \
             WHERE r.{spreading} \
             AND NOT EXISTS (SELECT 1 FROM ops_cis x WHERE x.id = r.{to} AND x.status = 'retired'))",
            spreading = spreading_in()
        );
        // Every spreading relation out of a walked CI ends at a walked CI: the
        // relations, each with the CI it reaches (every CI reached but the start),
        // as one JSON array in one row — thousands of rows handed over one by one
        // cost more than the walk.
        let (open, close) = match self.0.backend {
            crate::Backend::Sqlite => ("json_group_array(json_array(", "))"),
            crate::Backend::Postgres => ("COALESCE(json_agg(json_build_array(", ")), '[]')::text"),
        };
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{walked} SELECT {open}r.source, r.kind, r.target, c.code, c.name, c.class, c.campus, c.status{close} \
             FROM walk w JOIN ops_relations r ON r.{from} = w.id JOIN ops_cis c ON c.id = r.{to} \
             WHERE r.{spreading} AND c.status <> 'retired'",
            spreading = spreading_in()
        )))
        .bind(id)
        .fetch_one(&self.0.read_pool())
        .await?;
        type Row = (i64, String, i64, String, String, String, Option<String>, String);
        let rows: Vec<Row> = serde_json::from_str(&row.try_get::<String, _>(0)?)
            .map_err(|e| crate::StoreError::Corrupt(format!("impact walk: {e}")))?;
        let mut cis: Vec<Ci> = Vec::new();
        let mut seen = std::collections::HashSet::from([id]);
        let mut relations = Vec::with_capacity(rows.len());
        for (source, kind, target, code, name, class, campus, status) in rows {
            let rel = Relation { source, kind, target };
            let reached = match way {
                Walk::Impacted => rel.source,
                Walk::Needs => rel.target,
            };
            if seen.insert(reached) && (cis.len() as i64) < max {
                cis.push(Ci { id: reached, code, name, class, campus, status, ..Ci::default() });
            }
            relations.push(rel);
        }
        Ok(Graph { cis, relations })
    }
}

impl Cmdb {
    /// What each of `ids` reaches along spreading relations (see [`Walk`]), in one
    /// query: start → the ids of the CIs reached (the start not among them). For the
    /// status wall and the alerts' root causes, which walk from every CI with an
    /// alert at once.
    pub async fn reach(&self, ids: &[i64], way: Walk) -> Result<std::collections::HashMap<i64, Vec<i64>>> {
        let mut out: std::collections::HashMap<i64, Vec<i64>> = ids.iter().map(|&i| (i, Vec::new())).collect();
        if ids.is_empty() {
            return Ok(out);
        }
        let (from, to) = match way {
            Walk::Impacted => ("target", "source"),
            Walk::Needs => ("source", "target"),
        };
        let (starts, open, close) = match self.0.backend {
            crate::Backend::Sqlite => ("SELECT value, value FROM json_each($1)", "json_group_array(json_array(", "))"),
            crate::Backend::Postgres => (
                "SELECT CAST(v AS BIGINT), CAST(v AS BIGINT) FROM json_array_elements_text(CAST($1 AS json)) v",
                "COALESCE(json_agg(json_build_array(",
                ")), '[]')::text",
            ),
        };
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "WITH RECURSIVE walk(origin, id) AS ({starts} UNION SELECT w.origin, r.{to} FROM ops_relations r \
             JOIN walk w ON r.{from} = w.id WHERE r.{spreading} \
             AND NOT EXISTS (SELECT 1 FROM ops_cis x WHERE x.id = r.{to} AND x.status = 'retired')) \
             SELECT {open}origin, id{close} FROM walk WHERE id <> origin",
            spreading = spreading_in()
        )))
        .bind(serde_json::to_string(ids).map_err(|e| crate::StoreError::Corrupt(e.to_string()))?)
        .fetch_one(&self.0.read_pool())
        .await?;
        let pairs: Vec<(i64, i64)> = serde_json::from_str(&row.try_get::<String, _>(0)?)
            .map_err(|e| crate::StoreError::Corrupt(format!("reach: {e}")))?;
        for (origin, id) in pairs {
            out.entry(origin).or_default().push(id);
        }
        Ok(out)
    }
}

/// An end of an imported relation: a CI of the same import (by position) or one
/// already stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    New(usize),
    Stored(i64),
}
