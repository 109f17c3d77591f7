//! The message log of the integration hub. A message is logged (durably) before it is
//! processed; its outcome is recorded either in the same transaction as the data it
//! produced ([`SideWrite::FinishMessage`] through [`Store::write_audited_with`]) or,
//! when nothing is applied, on its own.

use sqlx::Row;

use crate::sql::{Arg, Sql};
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
}

/// Extra rows written in the same transaction as a batch of resource writes.
#[derive(Clone, Debug)]
pub enum SideWrite {
    FinishMessage(Finish),
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
    sql.push(" WHERE id = ");
    sql.push_bind(Arg::Int(f.id));
    sql
}

impl Store {
    /// Logs a message before it is processed; returns its id once durable.
    pub async fn log_message(&self, m: &NewMessage) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO message_log (direction, channel, peer, sender, control_id, message_type, status, received_at, payload) \
             VALUES ($1, $2, $3, $4, $5, $6, 'received', $7, $8) RETURNING id",
        )
        .bind(m.direction.clone())
        .bind(m.channel.clone())
        .bind(m.peer.clone())
        .bind(m.sender.clone())
        .bind(m.control_id.clone())
        .bind(m.message_type.clone())
        .bind(m.received_at)
        .bind(m.payload.clone())
        .fetch_one(&self.write)
        .await?;
        Ok(row.try_get(0)?)
    }

    /// Records an outcome on its own (nothing else was written).
    pub async fn finish_message(&self, f: &Finish) -> Result<()> {
        finish_sql(f).query(self.backend).execute(&self.write).await?;
        Ok(())
    }

    /// The stored ACK of an earlier message with this sender and control id that was
    /// answered for good (accepted, or rejected or in error for its content), if any.
    pub async fn answered(&self, direction: &str, sender: &str, control_id: &str) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT ack FROM message_log WHERE direction = $1 AND sender = $2 AND control_id = $3 \
             AND status IN ('accepted', 'error', 'rejected') AND ack IS NOT NULL ORDER BY id LIMIT 1",
        )
        .bind(direction.to_string())
        .bind(sender.to_string())
        .bind(control_id.to_string())
        .fetch_optional(&self.write)
        .await?;
        Ok(match row {
            Some(r) => r.try_get(0)?,
            None => None,
        })
    }

    /// The newest messages first, optionally only one status.
    pub async fn recent_messages(&self, status: Option<&str>, limit: usize) -> Result<Vec<LoggedMessage>> {
        let mut sql = Sql::new(
            "SELECT id, direction, channel, peer, sender, control_id, message_type, status, received_at, finished_at, \
             attempts, error, summary, payload, ack FROM message_log",
        );
        if let Some(s) = status {
            sql.push(" WHERE status = ");
            sql.push_bind(Arg::Text(s.to_string()));
        }
        sql.push(" ORDER BY id DESC LIMIT ");
        sql.push_bind(Arg::Int(limit as i64));
        let rows = sql.query(self.backend).fetch_all(&self.read).await?;
        rows.iter()
            .map(|r| {
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
                })
            })
            .collect()
    }
}
