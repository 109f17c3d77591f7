//! Messages between staff (站内消息): to one person (a Practitioner id) or to a
//! department (an Organization id), the body sealed by the caller (the field cipher),
//! and each reader's place — the last message they have seen.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::sql::{Arg, Sql};
use crate::{Result, Store};

/// One message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StaffMessage {
    pub id: i64,
    /// The sender's account (`user:…` actor).
    pub sender: String,
    /// The sender's name as shown.
    pub sender_name: String,
    pub to_practitioner: Option<String>,
    pub to_department: Option<String>,
    /// As stored (sealed).
    pub body: String,
    pub sent_at: i64,
}

/// Whose messages: those to any of `practitioners` or `departments`, and those `sender`
/// sent.
#[derive(Clone, Debug, Default)]
pub struct Mailbox {
    pub sender: String,
    pub practitioners: Vec<String>,
    pub departments: Vec<String>,
}

const COLUMNS: &str = "id, sender, sender_name, to_practitioner, to_department, body, sent_at";

fn of(r: &AnyRow) -> Result<StaffMessage> {
    Ok(StaffMessage {
        id: r.try_get(0)?,
        sender: r.try_get(1)?,
        sender_name: r.try_get(2)?,
        to_practitioner: r.try_get(3)?,
        to_department: r.try_get(4)?,
        body: r.try_get(5)?,
        sent_at: r.try_get(6)?,
    })
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct StaffMessages(pub(crate) Store);

impl StaffMessages {
    /// Keeps a message; returns its id.
    pub async fn send(&self, m: &StaffMessage) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO staff_messages (sender, sender_name, to_practitioner, to_department, body, sent_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(m.sender.clone())
        .bind(m.sender_name.clone())
        .bind(m.to_practitioner.clone())
        .bind(m.to_department.clone())
        .bind(m.body.clone())
        .bind(m.sent_at)
        .fetch_one(&self.0.write_pool())
        .await?;
        Ok(row.try_get(0)?)
    }

    /// The mailbox's messages after `after` (received and sent), newest first, at most
    /// `limit`.
    pub async fn list(&self, b: &Mailbox, after: i64, limit: i64) -> Result<Vec<StaffMessage>> {
        let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM staff_messages WHERE id > "));
        sql.push_bind(Arg::Int(after));
        sql.push(" AND (sender = ");
        sql.push_bind(Arg::Text(b.sender.clone()));
        if !b.practitioners.is_empty() {
            sql.push(" OR ");
            sql.push_in("to_practitioner", &b.practitioners);
        }
        if !b.departments.is_empty() {
            sql.push(" OR ");
            sql.push_in("to_department", &b.departments);
        }
        sql.push(") ORDER BY id DESC LIMIT ");
        sql.push_bind(Arg::Int(limit));
        let rows = sql.query(self.0.backend).fetch_all(&self.0.read_pool()).await?;
        rows.iter().map(of).collect()
    }

    /// The last message `username` has seen (0: none).
    pub async fn seen(&self, username: &str) -> Result<i64> {
        let row = sqlx::query("SELECT last_id FROM staff_message_seen WHERE username = $1")
            .bind(username.to_string())
            .fetch_optional(&self.0.read_pool())
            .await?;
        Ok(match row {
            Some(r) => r.try_get(0)?,
            None => 0,
        })
    }

    /// Marks everything up to `id` seen by `username` (never moving back).
    pub async fn mark_seen(&self, username: &str, id: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO staff_message_seen (username, last_id) VALUES ($1, $2) ON CONFLICT (username) \
             DO UPDATE SET last_id = CASE WHEN excluded.last_id > staff_message_seen.last_id \
             THEN excluded.last_id ELSE staff_message_seen.last_id END",
        )
        .bind(username.to_string())
        .bind(id)
        .execute(&self.0.write_pool())
        .await?;
        Ok(())
    }
}
