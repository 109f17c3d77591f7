//! Storage of the tamper-evident audit log. Records are numbered without gaps and
//! each carries `hash = H(encoding of its fields ‖ previous hash)`; the chain head
//! row is locked by every append so numbering and linking are serialized. The hash
//! function comes from the caller ([`ChainHasher`]), so SHA-256 or SM3 is a policy
//! decision of the security layer, not of the store.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::sql::{Arg, Sql, multi_insert};
use crate::{Backend, Result, Store};

/// The hash of "no predecessor".
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A hash function for the chain, named so records say which one made them.
pub trait ChainHasher: Send + Sync {
    fn name(&self) -> &'static str;
    /// Lower-case hex digest of `data`.
    fn hex_digest(&self, data: &[u8]) -> String;
    /// The hasher for a stored algorithm name (records made before a switch of
    /// algorithm keep verifying).
    fn for_name(&self, name: &str) -> Option<&dyn ChainHasher>;
}

/// What happened, by whom, to what; written once and never updated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditEntry {
    pub recorded_at: i64,
    pub actor: String,
    pub actor_kind: String,
    pub role: Option<String>,
    pub campus: Option<String>,
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub patient: Option<String>,
    pub outcome: String,
    pub client_addr: Option<String>,
    pub detail: Option<String>,
}

/// A stored record with its place in the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    pub seq: i64,
    pub entry: AuditEntry,
    pub alg: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The bytes hashed for one record: every field length-prefixed, so no two
/// different records encode the same.
pub fn encode(seq: i64, e: &AuditEntry, alg: &str, prev_hash: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let mut field = |s: Option<&str>| match s {
        None => out.extend_from_slice(b"-;"),
        Some(s) => {
            out.extend_from_slice(s.len().to_string().as_bytes());
            out.push(b':');
            out.extend_from_slice(s.as_bytes());
            out.push(b';');
        }
    };
    field(Some(&seq.to_string()));
    field(Some(&e.recorded_at.to_string()));
    field(Some(&e.actor));
    field(Some(&e.actor_kind));
    field(e.role.as_deref());
    field(e.campus.as_deref());
    field(Some(&e.action));
    field(e.resource_type.as_deref());
    field(e.resource_id.as_deref());
    field(e.patient.as_deref());
    field(Some(&e.outcome));
    field(e.client_addr.as_deref());
    field(e.detail.as_deref());
    field(Some(alg));
    field(Some(prev_hash));
    out
}

/// How `verify_audit` found the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainStatus {
    Intact {
        records: i64,
    },
    /// The first bad record and what is wrong with it.
    Broken {
        seq: i64,
        reason: String,
    },
}

fn record_from_row(row: &AnyRow) -> Result<AuditRecord> {
    Ok(AuditRecord {
        seq: row.try_get("seq")?,
        entry: AuditEntry {
            recorded_at: row.try_get("recorded_at")?,
            actor: row.try_get("actor")?,
            actor_kind: row.try_get("actor_kind")?,
            role: row.try_get("role")?,
            campus: row.try_get("campus")?,
            action: row.try_get("action")?,
            resource_type: row.try_get("resource_type")?,
            resource_id: row.try_get("resource_id")?,
            patient: row.try_get("patient")?,
            outcome: row.try_get("outcome")?,
            client_addr: row.try_get("client_addr")?,
            detail: row.try_get("detail")?,
        },
        alg: row.try_get("alg")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

const COLUMNS: &[&str] = &[
    "seq",
    "recorded_at",
    "actor",
    "actor_kind",
    "role",
    "campus",
    "action",
    "resource_type",
    "resource_id",
    "patient",
    "outcome",
    "client_addr",
    "detail",
    "alg",
    "prev_hash",
    "hash",
];

/// Filters for reading the log (admin page, "who has seen my record").
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    pub patient: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// One record by number.
    pub seq: Option<i64>,
    pub limit: usize,
    pub offset: usize,
}

impl Store {
    /// Appends entries to the chain inside an open write transaction.
    pub(crate) async fn append_audit_in(
        backend: Backend,
        tx: &mut Transaction<'static, Any>,
        entries: &[AuditEntry],
        hasher: &dyn ChainHasher,
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let lock = match backend {
            Backend::Postgres => "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE",
            Backend::Sqlite => "SELECT seq, hash FROM audit_head WHERE id = 1",
        };
        let head = sqlx::query(lock).fetch_one(&mut **tx).await?;
        let mut seq: i64 = head.try_get(0)?;
        let mut prev: String = head.try_get(1)?;
        let alg = hasher.name();
        let mut rows = Vec::with_capacity(entries.len());
        for e in entries {
            seq += 1;
            let hash = hasher.hex_digest(&encode(seq, e, alg, &prev));
            rows.push(vec![
                Arg::Int(seq),
                Arg::Int(e.recorded_at),
                Arg::Text(e.actor.clone()),
                Arg::Text(e.actor_kind.clone()),
                Arg::OptText(e.role.clone()),
                Arg::OptText(e.campus.clone()),
                Arg::Text(e.action.clone()),
                Arg::OptText(e.resource_type.clone()),
                Arg::OptText(e.resource_id.clone()),
                Arg::OptText(e.patient.clone()),
                Arg::Text(e.outcome.clone()),
                Arg::OptText(e.client_addr.clone()),
                Arg::OptText(e.detail.clone()),
                Arg::Text(alg.to_string()),
                Arg::Text(std::mem::replace(&mut prev, hash.clone())),
                Arg::Text(hash),
            ]);
        }
        let mut statements = multi_insert("audit_log", COLUMNS, rows, backend.max_params());
        let mut head = Sql::new("UPDATE audit_head SET seq = ");
        head.push_bind(Arg::Int(seq));
        head.push(", hash = ");
        head.push_bind(Arg::Text(prev));
        head.push(" WHERE id = 1");
        statements.push(head);
        for s in crate::sql::joined(backend, statements) {
            s.query(backend).execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Appends entries in their own transaction; returns once they are durable.
    pub async fn append_audit(&self, entries: &[AuditEntry], hasher: &dyn ChainHasher) -> Result<()> {
        let mut tx = self.write_pool().begin_with(self.backend.begin_write()).await?;
        Store::append_audit_in(self.backend, &mut tx, entries, hasher).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Re-computes the whole chain and reports the first record that does not fit:
    /// a changed field, a missing or re-numbered record, a broken link, or a head
    /// that does not match the last record.
    pub async fn verify_audit(&self, hasher: &dyn ChainHasher) -> Result<ChainStatus> {
        let (head_seq, head_hash) = self.audit_head().await?;
        let mut expected_seq = 1i64;
        let mut prev = GENESIS.to_string();
        let mut after = 0i64;
        loop {
            let mut sql = Sql::new(&format!("SELECT {} FROM audit_log WHERE seq > ", COLUMNS.join(", ")));
            sql.push_bind(Arg::Int(after));
            sql.push(" ORDER BY seq LIMIT 5000");
            let rows = sql.query(self.backend).fetch_all(&self.read_pool()).await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let r = record_from_row(row)?;
                if r.seq != expected_seq {
                    return Ok(ChainStatus::Broken {
                        seq: expected_seq,
                        reason: format!("record {expected_seq} is missing (the next record is {})", r.seq),
                    });
                }
                let Some(h) = hasher.for_name(&r.alg) else {
                    return Ok(ChainStatus::Broken {
                        seq: r.seq,
                        reason: format!("unknown hash algorithm '{}'", r.alg),
                    });
                };
                if r.prev_hash != prev {
                    return Ok(ChainStatus::Broken {
                        seq: r.seq,
                        reason: "its link to the previous record does not match (a record before it was removed or replaced)"
                            .into(),
                    });
                }
                if h.hex_digest(&encode(r.seq, &r.entry, &r.alg, &r.prev_hash)) != r.hash {
                    return Ok(ChainStatus::Broken {
                        seq: r.seq,
                        reason: "its content does not match its hash (altered)".into(),
                    });
                }
                prev = r.hash;
                after = r.seq;
                expected_seq += 1;
            }
        }
        let last = expected_seq - 1;
        if head_seq != last {
            return Ok(ChainStatus::Broken {
                seq: last + 1,
                reason: format!(
                    "the chain head says {head_seq} records but {last} were found (records at the end were removed)"
                ),
            });
        }
        if head_hash != prev {
            return Ok(ChainStatus::Broken {
                seq: last,
                reason: "the chain head does not match the last record".into(),
            });
        }
        Ok(ChainStatus::Intact { records: last })
    }

    fn audit_filter(sql: &mut Sql, q: &AuditQuery) {
        for (col, v) in [("patient", &q.patient), ("actor", &q.actor), ("action", &q.action)] {
            if let Some(v) = v {
                sql.push(&format!(" AND {col} = "));
                sql.push_bind(Arg::Text(v.clone()));
            }
        }
        if let Some(s) = q.since {
            sql.push(" AND recorded_at >= ");
            sql.push_bind(Arg::Int(s));
        }
        if let Some(u) = q.until {
            sql.push(" AND recorded_at < ");
            sql.push_bind(Arg::Int(u));
        }
        if let Some(seq) = q.seq {
            sql.push(" AND seq = ");
            sql.push_bind(Arg::Int(seq));
        }
    }

    /// Reads records newest first.
    pub async fn audit_records(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let mut sql = Sql::new(&format!("SELECT {} FROM audit_log WHERE 1 = 1", COLUMNS.join(", ")));
        Store::audit_filter(&mut sql, q);
        sql.push(" ORDER BY seq DESC LIMIT ");
        sql.push_bind(Arg::Int(q.limit.max(1) as i64));
        sql.push(" OFFSET ");
        sql.push_bind(Arg::Int(q.offset as i64));
        let rows = sql.query(self.backend).fetch_all(&self.read_pool()).await?;
        rows.iter().map(record_from_row).collect()
    }

    /// Number of records matching a query (limit and offset ignored).
    pub async fn audit_matching(&self, q: &AuditQuery) -> Result<i64> {
        let mut sql = Sql::new("SELECT COUNT(*) FROM audit_log WHERE 1 = 1");
        Store::audit_filter(&mut sql, q);
        Ok(sql.query(self.backend).fetch_one(&self.read_pool()).await?.try_get(0)?)
    }

    /// Users who opened the records of at least `min_patients` different patients since
    /// `since` (epoch ms), most first, at most `limit`: (actor, patients).
    pub async fn audit_wide_readers(&self, since: i64, min_patients: i64, limit: usize) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT actor, COUNT(DISTINCT patient) AS patients FROM audit_log \
             WHERE recorded_at >= $1 AND actor_kind = 'user' AND outcome = 'success' AND patient IS NOT NULL \
             GROUP BY actor HAVING COUNT(DISTINCT patient) >= $2 ORDER BY patients DESC, actor LIMIT $3",
        )
        .bind(since)
        .bind(min_patients)
        .bind(limit as i64)
        .fetch_all(&self.read_pool())
        .await?;
        rows.iter().map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?))).collect()
    }

    /// Number of audit records.
    pub async fn audit_count(&self) -> Result<i64> {
        Ok(self.audit_head().await?.0)
    }

    /// The audit chain's head: (last sequence number, its hash).
    pub async fn audit_head(&self) -> Result<(i64, String)> {
        let mut conn = self.read_pool().acquire().await?;
        head_on(&mut conn).await
    }
}

/// The head of the chain as `conn` sees it (in a backup, its snapshot).
pub(crate) async fn head_on(conn: &mut sqlx::AnyConnection) -> Result<(i64, String)> {
    let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_one(&mut *conn).await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}
