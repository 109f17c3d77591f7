//! The message log of the integration hub. A message is logged (durably) before it is
//! processed; its outcome is recorded either in the same transaction as the data it
//! produced ([`SideWrite::FinishMessage`] through [`Store::write_audited_with`]) or,
//! when nothing is applied, on its own.

use sqlx::Row;

use crate::sql::{Arg, Sql, multi_insert};
use crate::{Result, Store};

/// A message as it arrived (payload and ACK already encrypted by the caller).
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub direction: String,
    pub channel: String,
    pub peer: Option<String>,
    pub sender: String,
    pub control_id: String,
    pub message_type: String,
    pub received_at: i64,
    pub payload: String,
    /// The SHA-256 (hex) of the message text: a resend has the same; `None` for rows
    /// that need no duplicate check (outbound, unreadable).
    pub digest: Option<String>,
    /// Acknowledged from the journal: the message waits with status `queued` until
    /// its mapping is applied.
    pub queued: Option<Queued>,
    /// The campus the listener maps messages for (queued messages are applied by an
    /// applier of the same campus).
    pub campus: Option<String>,
}

/// What a message acknowledged from the journal keeps until it is applied.
#[derive(Clone, Debug)]
pub struct Queued {
    /// The AA sent (encrypted).
    pub ack: String,
    /// The checked FHIR transaction it mapped to (encrypted).
    pub mapped: String,
    /// What it holds, for the log (as a finished message's summary).
    pub summary: String,
    /// What the sender should fix although it was accepted (the ACK's W-severity ERRs).
    pub warnings: Option<String>,
}

/// A queued message as the applier reads it.
#[derive(Clone, Debug)]
pub struct QueuedMessage {
    pub message: LoggedMessage,
    /// [`Queued::mapped`]; absent for messages queued before it was kept.
    pub mapped: Option<String>,
}

/// A message's outcome.
#[derive(Clone, Debug)]
pub struct Finish {
    pub id: i64,
    /// `accepted`, `error`, `rejected` or `failed` (an internal failure: a resend is
    /// processed again).
    pub status: String,
    pub finished_at: i64,
    pub ack: Option<String>,
    pub error: Option<String>,
    pub summary: Option<String>,
    /// Accepted with warnings: what was skipped or left out (kept when `None`).
    pub warnings: Option<String>,
}

/// Extra rows written in the same transaction as a batch of resource writes.
#[derive(Clone, Debug)]
pub enum SideWrite {
    FinishMessage(Finish),
    /// The outcome of a queued message, only if it is still queued (else the whole
    /// transaction fails with [`crate::StoreError::NotQueued`]).
    FinishQueued(Finish),
    /// A payment at the cashier (its invoice number taken by another payment meanwhile:
    /// the whole transaction fails with [`crate::StoreError::AlreadyExists`]).
    Payment(crate::payments::NewPayment),
    /// An amount of a stay's deposit (refused below a zero balance:
    /// [`crate::StoreError::Refused`]; a receipt number taken:
    /// [`crate::StoreError::AlreadyExists`]).
    Deposit(crate::deposits::NewDeposit),
    /// A campus's ward rules, replacing those it had.
    WardRules(crate::ward_rules::WardRules),
    /// A change of a batch's stock (refused below zero: [`crate::StoreError::Refused`]).
    Stock(crate::pharmacy::StockMove),
    /// A change of the pharmacist's queue (refused from an unexpected state).
    Queue(crate::pharmacy::QueueChange),
    /// Queues the write only after `after` was woken (the previous write in turn is
    /// queued, or gave up), then wakes `queued`: writes queued in turn commit in that
    /// order or together (the cashier numbers invoices by this). Writes nothing.
    InTurn {
        after: Option<std::sync::Arc<tokio::sync::Notify>>,
        queued: std::sync::Arc<tokio::sync::Notify>,
    },
}

/// One row of the log, for the log page and API.
#[derive(Clone, Debug)]
pub struct LoggedMessage {
    pub id: i64,
    pub direction: String,
    pub channel: String,
    pub peer: Option<String>,
    pub sender: String,
    pub control_id: String,
    pub message_type: String,
    pub status: String,
    pub received_at: i64,
    pub finished_at: Option<i64>,
    pub attempts: i64,
    pub error: Option<String>,
    pub summary: Option<String>,
    pub payload: String,
    pub ack: Option<String>,
    /// What the sender should fix although the message was accepted.
    pub warnings: Option<String>,
}

pub(crate) fn finish_sql(f: &Finish) -> Sql {
    let mut sql = Sql::new("UPDATE message_log SET status = ");
    sql.push_bind(Arg::Text(f.status.clone()));
    sql.push(", finished_at = ");
    sql.push_bind(Arg::Int(f.finished_at));
    sql.push(", ack = ");
    sql.push_bind(Arg::OptText(f.ack.clone()));
    sql.push(", error = ");
    sql.push_bind(Arg::OptText(f.error.clone()));
    sql.push(", summary = ");
    sql.push_bind(Arg::OptText(f.summary.clone()));
    if let Some(w) = &f.warnings {
        sql.push(", warnings = ");
        sql.push_bind(Arg::Text(w.clone()));
    }
    // A queued message's kept mapping is no longer needed once it is finished (its data
    // is written, or it failed and a replay maps the payload again).
    sql.push(", mapped = NULL");
    sql.push(" WHERE id = ");
    sql.push_bind(Arg::Int(f.id));
    sql
}

impl Store {
    /// Logs a message before it is processed; returns its id once durable. Messages
    /// logged while a log transaction commits are committed together in the next one
    /// (one fsync for many senders).
    pub async fn log_message(&self, m: NewMessage) -> Result<i64> {
        match self.enqueue_log(m, false).await? {
            Logged::New(id) | Logged::Duplicate { id, .. } => Ok(id),
        }
    }

    /// Logs a message acknowledged from the journal (`queued` set), unless the
    /// same sender's control id was answered before (accepted, queued, or refused
    /// for its content): then it is logged as a `duplicate` and the original ACK is
    /// returned. The check runs in the log writer's transaction, so a retry racing
    /// its original (even in the same group commit) is found too.
    pub async fn journal_message(&self, m: NewMessage) -> Result<Logged> {
        self.enqueue_log(m, true).await
    }

    async fn enqueue_log(&self, message: NewMessage, dedupe: bool) -> Result<Logged> {
        let queue = self.log_group.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::channel::<PendingLog>(1024);
            tokio::spawn(log_writer(self.clone(), rx));
            tx
        });
        let (done, result) = tokio::sync::oneshot::channel();
        if queue.send(PendingLog { message, dedupe, done }).await.is_err() {
            return Err(crate::StoreError::Corrupt("the log writer has stopped".into()));
        }
        result.await.map_err(|_| crate::StoreError::Corrupt("the log writer has stopped".into()))?
    }

    /// Inserts `batch` in one transaction (one multi-row statement per 100 rows);
    /// for the rows to deduplicate, finds earlier answers first (in the database and
    /// earlier in the batch). The outcome of each, in order.
    async fn log_messages(&self, batch: &[(&NewMessage, bool)]) -> Result<Vec<Logged>> {
        let mut tx = self.write_pool().begin_with(self.backend.begin_write()).await?;
        // Earlier answers of the control ids to check: (sender, control id) → (digest, ACK).
        let mut answered: std::collections::HashMap<(String, String), (Option<String>, String)> = Default::default();
        // By sender, so the lookup uses the (direction, sender, control_id) index.
        let mut by_sender: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for (m, _) in batch.iter().filter(|(_, d)| *d) {
            by_sender.entry(m.sender.as_str()).or_default().push(m.control_id.as_str());
        }
        if !by_sender.is_empty() {
            // One indexed search per sender, joined: an OR across senders makes
            // SQLite search the index by direction alone, scanning every inbound row.
            let mut sql = Sql::new("");
            for (i, (sender, controls)) in by_sender.iter().enumerate() {
                if i > 0 {
                    sql.push(" UNION ALL ");
                }
                sql.push(
                    "SELECT id, sender, control_id, ack, digest FROM message_log WHERE direction = 'in' \
                     AND status IN ('accepted', 'queued', 'error', 'rejected') AND ack IS NOT NULL AND sender = ",
                );
                sql.push_bind(Arg::Text(sender.to_string()));
                sql.push(" AND ");
                sql.push_in("control_id", controls);
            }
            sql.push(" ORDER BY 1 DESC");
            for r in sql.query(self.backend).fetch_all(&mut *tx).await? {
                // Newest first, so the oldest answer is the one kept.
                answered.insert((r.try_get(1)?, r.try_get(2)?), (r.try_get(4)?, r.try_get(3)?));
            }
        }
        // Each row's status, and for a duplicate the original's ACK.
        let mut outcomes: Vec<(&'static str, Option<String>)> = Vec::with_capacity(batch.len());
        for (m, dedupe) in batch {
            let original = if *dedupe {
                let key = (m.sender.clone(), m.control_id.clone());
                // A resend: the same content (rows logged before digests were kept match
                // on the control id alone).
                let found = answered
                    .get(&key)
                    .filter(|(digest, _)| digest.is_none() || m.digest.is_none() || *digest == m.digest)
                    .map(|(_, ack)| ack.clone());
                if found.is_none()
                    && let Some(q) = &m.queued
                {
                    answered.insert(key, (m.digest.clone(), q.ack.clone()));
                }
                found
            } else {
                None
            };
            let status = match (&original, &m.queued) {
                (Some(_), _) => "duplicate",
                (None, Some(_)) => "queued",
                (None, None) => "received",
            };
            outcomes.push((status, original));
        }
        let rows: Vec<Vec<Arg>> = batch
            .iter()
            .zip(&outcomes)
            .map(|((m, _), (status, _))| {
                let queued = m.queued.as_ref().filter(|_| *status != "duplicate");
                vec![
                    Arg::Text(m.direction.clone()),
                    Arg::Text(m.channel.clone()),
                    Arg::OptText(m.peer.clone()),
                    Arg::Text(m.sender.clone()),
                    Arg::Text(m.control_id.clone()),
                    Arg::Text(m.message_type.clone()),
                    Arg::Text((*status).into()),
                    Arg::Int(m.received_at),
                    Arg::Text(m.payload.clone()),
                    Arg::OptText(queued.map(|q| q.ack.clone())),
                    Arg::OptText(m.campus.clone()),
                    Arg::OptText(queued.map(|q| q.mapped.clone())),
                    Arg::OptText(queued.map(|q| q.summary.clone())),
                    Arg::OptText(queued.and_then(|q| q.warnings.clone())),
                    Arg::OptText(m.digest.clone()),
                ]
            })
            .collect();
        const COLUMNS: [&str; 15] = [
            "direction",
            "channel",
            "peer",
            "sender",
            "control_id",
            "message_type",
            "status",
            "received_at",
            "payload",
            "ack",
            "campus",
            "mapped",
            "summary",
            "warnings",
            "digest",
        ];
        let mut out = Vec::with_capacity(batch.len());
        let mut outcomes = outcomes.into_iter();
        // 100 rows per statement.
        for mut sql in multi_insert("message_log", &COLUMNS, rows, 100 * COLUMNS.len()) {
            sql.push(" RETURNING id");
            let got = sql.query(self.backend).fetch_all(&mut *tx).await?;
            // One statement's rows get increasing ids in the order of its VALUES.
            let mut ids: Vec<i64> = got.iter().map(|r| r.try_get(0)).collect::<std::result::Result<_, _>>()?;
            ids.sort_unstable();
            for (id, (_, original)) in ids.into_iter().zip(outcomes.by_ref()) {
                out.push(match original {
                    Some(ack) => Logged::Duplicate { id, ack },
                    None => Logged::New(id),
                });
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Records an outcome on its own (nothing else was written).
    pub async fn finish_message(&self, f: &Finish) -> Result<()> {
        finish_sql(f).query(self.backend).execute(&self.write_pool()).await?;
        Ok(())
    }

    /// The stored ACK of an earlier message with this sender, control id and content
    /// (`digest`; rows without one match on the control id) that was answered for good
    /// (accepted, or rejected or in error for its content), if any.
    pub async fn answered(
        &self,
        direction: &str,
        sender: &str,
        control_id: &str,
        digest: &str,
    ) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT ack FROM message_log WHERE direction = $1 AND sender = $2 AND control_id = $3 \
             AND status IN ('accepted', 'queued', 'error', 'rejected') AND ack IS NOT NULL \
             AND (digest IS NULL OR digest = $4) ORDER BY id LIMIT 1",
        )
        .bind(direction.to_string())
        .bind(sender.to_string())
        .bind(control_id.to_string())
        .bind(digest.to_string())
        .fetch_optional(&self.read_pool())
        .await?;
        Ok(match row {
            Some(r) => r.try_get(0)?,
            None => None,
        })
    }

    /// The newest messages first that pass `filter`.
    pub async fn find_messages(&self, filter: &MessageFilter) -> Result<Vec<LoggedMessage>> {
        let mut sql = Sql::new(&format!("SELECT {MESSAGE_COLUMNS} FROM message_log WHERE 1 = 1"));
        let mut eq = |col: &str, v: &Option<String>| {
            if let Some(v) = v {
                sql.push(&format!(" AND {col} = "));
                sql.push_bind(Arg::Text(v.clone()));
            }
        };
        eq("direction", &filter.direction);
        eq("status", &filter.status);
        eq("channel", &filter.channel);
        eq("message_type", &filter.message_type);
        eq("control_id", &filter.control_id);
        if let Some(t) = filter.since {
            sql.push(" AND received_at >= ");
            sql.push_bind(Arg::Int(t));
        }
        if let Some(t) = filter.until {
            sql.push(" AND received_at < ");
            sql.push_bind(Arg::Int(t));
        }
        if let Some(b) = filter.before_id {
            sql.push(" AND id < ");
            sql.push_bind(Arg::Int(b));
        }
        sql.push(" ORDER BY id DESC LIMIT ");
        sql.push_bind(Arg::Int(filter.limit.clamp(1, 1000) as i64));
        let rows = sql.query(self.backend).fetch_all(&self.read_pool()).await?;
        rows.iter().map(message_row).collect()
    }

    /// The newest messages first, optionally only one status.
    pub async fn recent_messages(&self, status: Option<&str>, limit: usize) -> Result<Vec<LoggedMessage>> {
        self.find_messages(&MessageFilter { status: status.map(str::to_string), limit, ..Default::default() }).await
    }

    /// The oldest queued messages of `campus`, in arrival order.
    pub async fn queued_messages(&self, campus: &str, limit: usize) -> Result<Vec<QueuedMessage>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS}, mapped FROM message_log WHERE campus = $1 AND status = 'queued' \
             ORDER BY id LIMIT $2"
        )))
        .bind(campus.to_string())
        .bind(limit as i64)
        .fetch_all(&self.read_pool())
        .await?;
        rows.iter().map(|r| Ok(QueuedMessage { message: message_row(r)?, mapped: r.try_get(16)? })).collect()
    }

    /// Per inbound channel (listener), the messages received since `since` and how
    /// many of them failed or were refused: (channel, received, failed).
    pub async fn inbound_counts(&self, since: i64) -> Result<Vec<(String, i64, i64)>> {
        let rows = sqlx::query(
            "SELECT channel, COUNT(*), SUM(CASE WHEN status IN ('failed', 'rejected', 'error') THEN 1 ELSE 0 END) \
             FROM message_log WHERE received_at >= $1 AND direction = 'in' GROUP BY channel ORDER BY channel",
        )
        .bind(since)
        .fetch_all(&self.read_pool())
        .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get::<Option<i64>, _>(2)?.unwrap_or(0)))).collect()
    }

    /// How many messages of `campus` wait to be applied.
    pub async fn queued_count(&self, campus: &str) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM message_log WHERE campus = $1 AND status = 'queued'")
            .bind(campus.to_string())
            .fetch_one(&self.read_pool())
            .await?;
        Ok(row.try_get(0)?)
    }

    pub async fn message(&self, id: i64) -> Result<Option<LoggedMessage>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {MESSAGE_COLUMNS} FROM message_log WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.read_pool())
            .await?;
        row.as_ref().map(message_row).transpose()
    }
}

const MESSAGE_COLUMNS: &str = "id, direction, channel, peer, sender, control_id, message_type, status, received_at, \
     finished_at, attempts, error, summary, payload, ack, warnings";

fn message_row(r: &sqlx::any::AnyRow) -> Result<LoggedMessage> {
    Ok(LoggedMessage {
        id: r.try_get(0)?,
        direction: r.try_get(1)?,
        channel: r.try_get(2)?,
        peer: r.try_get(3)?,
        sender: r.try_get(4)?,
        control_id: r.try_get(5)?,
        message_type: r.try_get(6)?,
        status: r.try_get(7)?,
        received_at: r.try_get(8)?,
        finished_at: r.try_get(9)?,
        attempts: r.try_get(10)?,
        error: r.try_get(11)?,
        summary: r.try_get(12)?,
        payload: r.try_get(13)?,
        ack: r.try_get(14)?,
        warnings: r.try_get(15)?,
    })
}

/// What to look for in the message log (all conditions optional).
#[derive(Clone, Debug, Default)]
pub struct MessageFilter {
    pub direction: Option<String>,
    pub status: Option<String>,
    pub channel: Option<String>,
    pub message_type: Option<String>,
    pub control_id: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Paging: only rows older than this id.
    pub before_id: Option<i64>,
    pub limit: usize,
}

/// What logging a message did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Logged {
    /// Logged (queued, when acknowledged from the journal).
    New(i64),
    /// Logged as a `duplicate` of an earlier answered message; its ACK (encrypted).
    Duplicate { id: i64, ack: String },
}

/// One message waiting to be logged.
pub(crate) struct PendingLog {
    message: NewMessage,
    dedupe: bool,
    done: tokio::sync::oneshot::Sender<Result<Logged>>,
}

async fn log_writer(store: Store, mut rx: tokio::sync::mpsc::Receiver<PendingLog>) {
    let mut batch: Vec<PendingLog> = Vec::with_capacity(64);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let messages: Vec<(&NewMessage, bool)> = batch.iter().map(|p| (&p.message, p.dedupe)).collect();
        match store.log_messages(&messages).await {
            Ok(logged) => {
                for (p, l) in batch.drain(..).zip(logged) {
                    let _ = p.done.send(Ok(l));
                }
            }
            Err(_) => {
                // One bad row must not fail the others: each alone.
                for p in batch.drain(..) {
                    let r = store
                        .log_messages(&[(&p.message, p.dedupe)])
                        .await
                        .and_then(|mut l| l.pop().ok_or_else(|| crate::StoreError::Corrupt("nothing logged".into())));
                    let _ = p.done.send(r);
                }
            }
        }
    }
}
