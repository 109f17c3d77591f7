//! The outbox and outbound channels. Every committed change is an outbox event (written
//! in the change's own transaction, see `write.rs`). A channel turns the events after
//! its cursor into deliveries (outbound `message_log` rows) and advances the cursor in
//! one transaction, so an event becomes a delivery exactly once; deliveries are then
//! attempted until delivered or dead-lettered.

use sqlx::Row;

use crate::sql::{Arg, Sql};
use crate::{Result, Store, StoreError};

/// One committed change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEvent {
    pub seq: i64,
    pub resource_type: String,
    pub id: String,
    pub version: i64,
    /// `POST` (created), `PUT` (updated) or `DELETE`.
    pub method: String,
    pub campus: Option<String>,
    pub patient: Option<String>,
    pub at: i64,
}

/// How a channel delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// An HTTP POST of a JSON event, signed with the channel's secret.
    Webhook,
    /// HL7 v2 over MLLP.
    Mllp,
    /// A FHIR Subscription's rest-hook (the resource, PUT or POST).
    RestHook,
    /// A FHIR Subscription's WebSocket notification.
    Websocket,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 4] =
        [ChannelKind::Webhook, ChannelKind::Mllp, ChannelKind::RestHook, ChannelKind::Websocket];

    /// The name stored and shown (`rest-hook` as FHIR spells it).
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Mllp => "mllp",
            ChannelKind::RestHook => "rest-hook",
            ChannelKind::Websocket => "websocket",
        }
    }

    pub fn parse(s: &str) -> Option<ChannelKind> {
        ChannelKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An outbound channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelRow {
    pub id: String,
    pub name: String,
    pub kind: ChannelKind,
    pub endpoint: String,
    /// Resource types (`Patient,Observation`) or one FHIR search (`Observation?code=…`).
    pub criteria: String,
    /// Only changes owned by this campus (and shared directory data); `None`: all.
    pub campus: Option<String>,
    /// Subscription payload MIME type (`None`: notification without the resource).
    pub payload: Option<String>,
    /// Extra HTTP headers, one `Name: value` per line.
    pub headers: Option<String>,
    /// Webhook signing key, encrypted by the caller.
    pub secret: Option<String>,
    pub max_attempts: i64,
    pub backoff_ms: i64,
    pub max_backoff_ms: i64,
    pub enabled: bool,
    pub cursor: i64,
    pub created_at: i64,
    /// The Subscription resource this channel serves, if any.
    pub subscription: Option<String>,
}

/// A delivery about to be queued.
#[derive(Clone, Debug)]
pub struct NewDelivery {
    pub seq: i64,
    pub order_key: String,
    /// The idempotency key (MSH-10 for HL7, `Idempotency-Key` for HTTP).
    pub control_id: String,
    pub message_type: String,
    /// Encrypted by the caller.
    pub payload: String,
    pub summary: Option<String>,
}

/// A queued delivery.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub id: i64,
    pub seq: i64,
    pub order_key: String,
    pub control_id: String,
    pub message_type: String,
    pub payload: String,
    pub attempts: i64,
    pub next_at: i64,
}

/// How an attempt ended.
#[derive(Clone, Debug)]
pub enum Attempt {
    Delivered {
        response: Option<String>,
    },
    /// Failed; retried at `next_at`, or dead-lettered when `dead`.
    Failed {
        error: String,
        response: Option<String>,
        next_at: i64,
        dead: bool,
    },
}

/// One channel's queue, for `/metrics` and the status page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub channel: String,
    pub pending: i64,
    pub dead: i64,
    pub delivered: i64,
    pub last_success: Option<i64>,
    pub last_error: Option<String>,
}

const CHANNEL_COLUMNS: &str = "id, name, kind, endpoint, criteria, campus, payload, headers, secret, max_attempts, \
     backoff_ms, max_backoff_ms, enabled, cursor, created_at, subscription";

fn channel_row(r: &sqlx::any::AnyRow) -> Result<ChannelRow> {
    Ok(ChannelRow {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        kind: {
            let kind: String = r.try_get(2)?;
            ChannelKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("channel kind '{kind}'")))?
        },
        endpoint: r.try_get(3)?,
        criteria: r.try_get(4)?,
        campus: r.try_get(5)?,
        payload: r.try_get(6)?,
        headers: r.try_get(7)?,
        secret: r.try_get(8)?,
        max_attempts: r.try_get(9)?,
        backoff_ms: r.try_get(10)?,
        max_backoff_ms: r.try_get(11)?,
        enabled: r.try_get::<i64, _>(12)? != 0,
        cursor: r.try_get(13)?,
        created_at: r.try_get(14)?,
        subscription: r.try_get(15)?,
    })
}

impl Store {
    /// The newest outbox seq (0 when empty).
    pub async fn outbox_head(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetch_one(&self.read_pool()).await?;
        Ok(row.try_get(0)?)
    }

    /// The newest outbox seq of one resource (0 if none is kept).
    pub async fn outbox_seq_of(&self, resource_type: &str, id: &str) -> Result<i64> {
        let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM outbox WHERE res_type = $1 AND res_id = $2")
            .bind(resource_type.to_string())
            .bind(id.to_string())
            .fetch_one(&self.read_pool())
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Looks at the events after `cursor`: returns the newest seq among them (the new
    /// cursor; `cursor` itself when there are none) and whether any is a change to a
    /// resource of `resource_type`. Each call reads only the events since the last.
    pub async fn outbox_scan(&self, resource_type: &str, cursor: i64) -> Result<(i64, bool)> {
        let row = sqlx::query(
            "SELECT COALESCE(MAX(seq), $1), CAST(COALESCE(MAX(CASE WHEN res_type = $2 THEN 1 ELSE 0 END), 0) AS BIGINT) \
             FROM outbox WHERE seq > $1",
        )
        .bind(cursor)
        .bind(resource_type.to_string())
        .fetch_one(&self.read_pool())
        .await?;
        Ok((row.try_get(0)?, row.try_get::<i64, _>(1)? != 0))
    }

    /// Adds a channel; it sees changes committed from now on (`cursor` is ignored and
    /// set to the outbox head).
    pub async fn create_channel(&self, c: &ChannelRow) -> Result<ChannelRow> {
        let mut tx = self.write_pool().begin_with(self.backend.begin_write()).await?;
        let head: i64 =
            sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetch_one(&mut *tx).await?.try_get(0)?;
        let taken =
            sqlx::query("SELECT 1 FROM channels WHERE id = $1").bind(c.id.clone()).fetch_optional(&mut *tx).await?;
        if taken.is_some() {
            return Err(StoreError::AlreadyExists { resource_type: "channel".into(), id: c.id.clone() });
        }
        let row = ChannelRow { cursor: head, ..c.clone() };
        insert_channel(&row).query(self.backend).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Adds or updates the channel of a Subscription. A new one, or one switched back
    /// on, starts after the outbox event `from` (the Subscription's own write); an
    /// active one keeps its cursor and queue.
    pub async fn upsert_subscription_channel(&self, c: &ChannelRow, from: i64) -> Result<()> {
        let mut tx = self.write_pool().begin_with(self.backend.begin_write()).await?;
        let exists =
            sqlx::query("SELECT 1 FROM channels WHERE id = $1").bind(c.id.clone()).fetch_optional(&mut *tx).await?;
        if exists.is_some() {
            // A Subscription switched back on starts after its own write again: what
            // changed while it was off is not sent.
            sqlx::query(
                "UPDATE channels SET name = $1, endpoint = $2, criteria = $3, campus = $4, payload = $5, headers = $6, \
                 cursor = CASE WHEN enabled = 0 AND $7 = 1 AND $9 > cursor THEN $9 ELSE cursor END, enabled = $7, \
                 kind = $10 WHERE id = $8 AND subscription IS NOT NULL",
            )
            .bind(c.name.clone())
            .bind(c.endpoint.clone())
            .bind(c.criteria.clone())
            .bind(c.campus.clone())
            .bind(c.payload.clone())
            .bind(c.headers.clone())
            .bind(i64::from(c.enabled))
            .bind(c.id.clone())
            .bind(from)
            .bind(c.kind.as_str())
            .execute(&mut *tx)
            .await?;
        } else {
            insert_channel(&ChannelRow { cursor: from, ..c.clone() }).query(self.backend).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Takes or renews `holder`'s lease on a channel until `now + ttl_ms`; `true` when
    /// `holder` has it (it held it, or the previous holder's ran out).
    pub async fn lease_channel(&self, channel: &str, holder: &str, now: i64, ttl_ms: i64) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO channel_leases (channel, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (channel) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE channel_leases.holder = excluded.holder OR channel_leases.expires_at < $4",
        )
        .bind(channel.to_string())
        .bind(holder.to_string())
        .bind(now + ttl_ms)
        .bind(now)
        .execute(&self.write_pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn channels(&self) -> Result<Vec<ChannelRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {CHANNEL_COLUMNS} FROM channels ORDER BY id")))
            .fetch_all(&self.read_pool())
            .await?;
        rows.iter().map(channel_row).collect()
    }

    pub async fn channel(&self, id: &str) -> Result<Option<ChannelRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {CHANNEL_COLUMNS} FROM channels WHERE id = $1")))
            .bind(id.to_string())
            .fetch_optional(&self.read_pool())
            .await?;
        row.as_ref().map(channel_row).transpose()
    }

    /// Pauses or resumes a channel; a paused channel's events wait in the outbox.
    pub async fn set_channel_enabled(&self, id: &str, enabled: bool) -> Result<bool> {
        let done = sqlx::query("UPDATE channels SET enabled = $1 WHERE id = $2")
            .bind(i64::from(enabled))
            .bind(id.to_string())
            .execute(&self.write_pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The events after `cursor`, oldest first.
    pub async fn outbox_after(&self, cursor: i64, limit: usize) -> Result<Vec<OutboxEvent>> {
        let rows = sqlx::query(
            "SELECT seq, res_type, res_id, version, method, campus, patient, at FROM outbox WHERE seq > $1 \
             ORDER BY seq LIMIT $2",
        )
        .bind(cursor)
        .bind(limit as i64)
        .fetch_all(&self.read_pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OutboxEvent {
                    seq: r.try_get(0)?,
                    resource_type: r.try_get(1)?,
                    id: r.try_get(2)?,
                    version: r.try_get(3)?,
                    method: r.try_get(4)?,
                    campus: r.try_get(5)?,
                    patient: r.try_get(6)?,
                    at: r.try_get(7)?,
                })
            })
            .collect()
    }

    /// Queues `deliveries` on `channel` and moves its cursor from `from` to `to`, in
    /// one transaction. Returns false (and queues nothing) if the cursor was moved by
    /// someone else meanwhile.
    pub async fn enqueue(
        &self,
        channel: &ChannelRow,
        from: i64,
        to: i64,
        deliveries: &[NewDelivery],
        now_ms: i64,
    ) -> Result<bool> {
        let mut tx = self.write_pool().begin_with(self.backend.begin_write()).await?;
        let moved = sqlx::query("UPDATE channels SET cursor = $1 WHERE id = $2 AND cursor = $3")
            .bind(to)
            .bind(channel.id.clone())
            .bind(from)
            .execute(&mut *tx)
            .await?;
        if moved.rows_affected() == 0 {
            return Ok(false);
        }
        for d in deliveries {
            sqlx::query(
                "INSERT INTO message_log (direction, channel, peer, sender, control_id, message_type, status, \
                 received_at, attempts, summary, payload, order_key, next_at, seq) \
                 VALUES ('out', $1, $2, 'lianyi', $3, $4, 'pending', $5, 0, $6, $7, $8, $5, $9)",
            )
            .bind(channel.id.clone())
            .bind(channel.endpoint.clone())
            .bind(d.control_id.clone())
            .bind(d.message_type.clone())
            .bind(now_ms)
            .bind(d.summary.clone())
            .bind(d.payload.clone())
            .bind(d.order_key.clone())
            .bind(d.seq)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// The channel's pending deliveries, oldest first (due or not).
    pub async fn pending_deliveries(&self, channel: &str, limit: usize) -> Result<Vec<Delivery>> {
        let rows = sqlx::query(
            "SELECT id, seq, order_key, control_id, message_type, payload, attempts, next_at FROM message_log \
             WHERE channel = $1 AND status = 'pending' ORDER BY id LIMIT $2",
        )
        .bind(channel.to_string())
        .bind(limit as i64)
        .fetch_all(&self.read_pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Delivery {
                    id: r.try_get(0)?,
                    seq: r.try_get::<Option<i64>, _>(1)?.unwrap_or_default(),
                    order_key: r.try_get::<Option<String>, _>(2)?.unwrap_or_default(),
                    control_id: r.try_get(3)?,
                    message_type: r.try_get(4)?,
                    payload: r.try_get(5)?,
                    attempts: r.try_get(6)?,
                    next_at: r.try_get::<Option<i64>, _>(7)?.unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Records one attempt of delivery `id`.
    pub async fn record_attempt(&self, id: i64, now_ms: i64, attempt: &Attempt) -> Result<()> {
        let mut sql = Sql::new("UPDATE message_log SET attempts = attempts + 1, ");
        match attempt {
            Attempt::Delivered { response } => {
                sql.push("status = 'delivered', error = NULL, finished_at = ");
                sql.push_bind(Arg::Int(now_ms));
                sql.push(", ack = ");
                sql.push_bind(Arg::OptText(response.clone()));
            }
            Attempt::Failed { error, response, next_at, dead } => {
                sql.push("status = ");
                sql.push_bind(Arg::Text(if *dead { "dead" } else { "pending" }.into()));
                sql.push(", error = ");
                sql.push_bind(Arg::Text(error.clone()));
                sql.push(", ack = ");
                sql.push_bind(Arg::OptText(response.clone()));
                sql.push(", next_at = ");
                sql.push_bind(Arg::Int(*next_at));
                if *dead {
                    sql.push(", finished_at = ");
                    sql.push_bind(Arg::Int(now_ms));
                }
            }
        }
        sql.push(" WHERE id = ");
        sql.push_bind(Arg::Int(id));
        sql.push(" AND status = 'pending'");
        sql.query(self.backend).execute(&self.write_pool()).await?;
        Ok(())
    }

    /// Queues outbound messages again (a dead letter, or a delivered message sent once
    /// more with the same idempotency key). Returns how many were queued.
    pub async fn requeue(&self, ids: &[i64], now_ms: i64) -> Result<u64> {
        let mut n = 0;
        for chunk in ids.chunks(500) {
            let mut sql =
                Sql::new("UPDATE message_log SET status = 'pending', attempts = 0, finished_at = NULL, next_at = ");
            sql.push_bind(Arg::Int(now_ms));
            sql.push(" WHERE direction = 'out' AND status IN ('dead', 'delivered') AND id IN (");
            for (i, id) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.push_bind(Arg::Int(*id));
            }
            sql.push(")");
            n += sql.query(self.backend).execute(&self.write_pool()).await?.rows_affected();
        }
        Ok(n)
    }

    /// The ids of a channel's dead letters, oldest first.
    pub async fn dead_letters(&self, channel: &str) -> Result<Vec<i64>> {
        let rows = sqlx::query("SELECT id FROM message_log WHERE channel = $1 AND status = 'dead' ORDER BY id")
            .bind(channel.to_string())
            .fetch_all(&self.read_pool())
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Queue depth, dead letters, deliveries, the last success and the last error of
    /// every channel; each figure is an index range on (channel, status, id).
    pub async fn queue_stats(&self) -> Result<Vec<QueueStats>> {
        self.queue_stats_with(true).await
    }

    /// [`Store::queue_stats`] without the delivered count (which grows with the
    /// retention period), for frequent callers such as `/metrics`.
    pub async fn queue_health(&self) -> Result<Vec<QueueStats>> {
        self.queue_stats_with(false).await
    }

    async fn queue_stats_with(&self, delivered: bool) -> Result<Vec<QueueStats>> {
        let ids = sqlx::query("SELECT id FROM channels ORDER BY id").fetch_all(&self.read_pool()).await?;
        let mut out = Vec::with_capacity(ids.len());
        for r in &ids {
            let channel: String = r.try_get(0)?;
            let count = |status: &'static str| {
                let channel = channel.clone();
                async move {
                    let row = sqlx::query("SELECT COUNT(*) FROM message_log WHERE channel = $1 AND status = $2")
                        .bind(channel)
                        .bind(status)
                        .fetch_one(&self.read_pool())
                        .await?;
                    Ok::<i64, StoreError>(row.try_get(0)?)
                }
            };
            let (pending, dead) = (count("pending").await?, count("dead").await?);
            let delivered = if delivered { count("delivered").await? } else { 0 };
            let last_success = sqlx::query(
                "SELECT finished_at FROM message_log WHERE channel = $1 AND status = 'delivered' ORDER BY id DESC LIMIT 1",
            )
            .bind(channel.clone())
            .fetch_optional(&self.read_pool())
            .await?
            .map(|r| r.try_get::<Option<i64>, _>(0))
            .transpose()?
            .flatten();
            let last_error = sqlx::query(
                "SELECT error FROM message_log WHERE channel = $1 AND status IN ('pending', 'dead') \
                 AND error IS NOT NULL ORDER BY id DESC LIMIT 1",
            )
            .bind(channel.clone())
            .fetch_optional(&self.read_pool())
            .await?
            .map(|r| r.try_get::<String, _>(0))
            .transpose()?;
            out.push(QueueStats { channel, pending, dead, delivered, last_success, last_error });
        }
        Ok(out)
    }

    /// Retention: deletes finished log rows received before `messages_before` (pending
    /// outbound messages and dead letters stay until delivered or replayed away) and
    /// outbox events written before `events_before` that every channel has passed (a
    /// paused channel holds its events; a stopped Subscription's channel does not).
    /// Deletes in chunks so writers are never held up for long. Returns (messages,
    /// events) deleted.
    pub async fn prune_log(&self, messages_before: i64, events_before: i64) -> Result<(u64, u64)> {
        const CHUNK: i64 = 5_000;
        let mut messages = 0;
        loop {
            let n = sqlx::query(
                "DELETE FROM message_log WHERE id IN (SELECT id FROM message_log WHERE received_at < $1 \
                 AND status NOT IN ('pending', 'dead', 'received', 'queued') ORDER BY id LIMIT $2)",
            )
            .bind(messages_before)
            .bind(CHUNK)
            .execute(&self.write_pool())
            .await?
            .rows_affected();
            messages += n;
            if n < CHUNK as u64 {
                break;
            }
        }
        // Internal followers of the outbox (the critical-value watcher) keep their
        // cursors in `counters` as `cursor:<name>`: events they have not read stay.
        let floor: i64 = sqlx::query(
            "SELECT MIN(f) FROM (SELECT COALESCE((SELECT MIN(cursor) FROM channels WHERE enabled = 1 OR subscription IS NULL), \
             (SELECT COALESCE(MAX(seq), 0) FROM outbox)) AS f \
             UNION ALL SELECT value FROM counters WHERE name LIKE 'cursor:%') AS floors",
        )
        .fetch_one(&self.read_pool())
        .await?
        .try_get(0)?;
        let mut events = 0;
        loop {
            let n = sqlx::query(
                "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE seq <= $1 AND at < $2 ORDER BY seq LIMIT $3)",
            )
            .bind(floor)
            .bind(events_before)
            .bind(CHUNK)
            .execute(&self.write_pool())
            .await?
            .rows_affected();
            events += n;
            if n < CHUNK as u64 {
                break;
            }
        }
        Ok((messages, events))
    }
}

fn insert_channel(c: &ChannelRow) -> Sql {
    let mut sql = Sql::new(&format!("INSERT INTO channels ({CHANNEL_COLUMNS}) VALUES ("));
    let args = [
        Arg::Text(c.id.clone()),
        Arg::Text(c.name.clone()),
        Arg::Text(c.kind.as_str().to_string()),
        Arg::Text(c.endpoint.clone()),
        Arg::Text(c.criteria.clone()),
        Arg::OptText(c.campus.clone()),
        Arg::OptText(c.payload.clone()),
        Arg::OptText(c.headers.clone()),
        Arg::OptText(c.secret.clone()),
        Arg::Int(c.max_attempts),
        Arg::Int(c.backoff_ms),
        Arg::Int(c.max_backoff_ms),
        Arg::Int(i64::from(c.enabled)),
        Arg::Int(c.cursor),
        Arg::Int(c.created_at),
        Arg::OptText(c.subscription.clone()),
    ];
    for (i, a) in args.into_iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.push_bind(a);
    }
    sql.push(")");
    sql
}
