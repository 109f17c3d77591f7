//! The service desk's notifications (not health data): each recipient's inbox, the
//! mail still to send (with its retries) and where each user wants that mail. New
//! notifications are written by [`crate::desk::Desk`] in the transaction of the ticket
//! change they tell of.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::sql::{Arg, Sql};
use crate::{Result, Store};

/// One notification.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notice {
    pub id: i64,
    /// Who it is for (a user name).
    pub username: String,
    pub at: i64,
    /// What happened: `new-ticket`, `reassigned`, `taken`, `resolved`, `reopened`,
    /// `sla-warning`, `sla-breach`.
    pub kind: String,
    pub ticket: Option<i64>,
    /// The ticket's title.
    pub subject: String,
    /// The page it points to (`/ops/tickets/12`).
    pub link: String,
    pub read_at: Option<i64>,
    /// Where its mail goes (none: the inbox only), and in which language.
    pub email: Option<String>,
    pub language: Option<String>,
    /// Mail attempts so far.
    pub mail_tries: i64,
}

const COLUMNS: &str = "id, username, at, kind, ticket, subject, link, read_at, email, language, mail_tries";

fn from_row(r: &AnyRow) -> Result<Notice> {
    Ok(Notice {
        id: r.try_get("id")?,
        username: r.try_get("username")?,
        at: r.try_get("at")?,
        kind: r.try_get("kind")?,
        ticket: r.try_get("ticket")?,
        subject: r.try_get("subject")?,
        link: r.try_get("link")?,
        read_at: r.try_get("read_at")?,
        email: r.try_get("email")?,
        language: r.try_get("language")?,
        mail_tries: r.try_get("mail_tries")?,
    })
}

/// Writes notifications inside a transaction (their mail due at once).
pub(crate) async fn add(tx: &mut Transaction<'static, Any>, notices: &[Notice]) -> Result<()> {
    for n in notices {
        sqlx::query(
            "INSERT INTO ops_notifications (username, at, kind, ticket, subject, link, email, language, mail_next, \
             mail_tries) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0)",
        )
        .bind(n.username.clone())
        .bind(n.at)
        .bind(n.kind.clone())
        .bind(n.ticket)
        .bind(n.subject.clone())
        .bind(n.link.clone())
        .bind(n.email.clone())
        .bind(n.language.clone())
        .bind(n.email.as_ref().map(|_| n.at))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Notices(pub(crate) Store);

impl Notices {
    /// Writes notifications that belong to no ticket change (reminders).
    pub async fn add(&self, notices: &[Notice]) -> Result<()> {
        let mut tx = self.0.write.begin_with(self.0.backend.begin_write()).await?;
        add(&mut tx, notices).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether a notification of `kind` about `link` with `subject` was ever written
    /// (a reminder is sent once).
    pub async fn sent_before(&self, kind: &str, link: &str, subject: &str) -> Result<bool> {
        Ok(sqlx::query("SELECT 1 FROM ops_notifications WHERE kind = $1 AND link = $2 AND subject = $3 LIMIT 1")
            .bind(kind.to_string())
            .bind(link.to_string())
            .bind(subject.to_string())
            .fetch_optional(&self.0.read)
            .await?
            .is_some())
    }

    /// A user's newest notifications.
    pub async fn inbox(&self, username: &str, limit: i64) -> Result<Vec<Notice>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM ops_notifications WHERE username = $1 ORDER BY id DESC LIMIT $2"
        )))
        .bind(username.to_string())
        .bind(limit.clamp(1, 500))
        .fetch_all(&self.0.read)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// How many of a user's notifications are unread.
    pub async fn unread(&self, username: &str) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) FROM ops_notifications WHERE username = $1 AND read_at IS NULL")
            .bind(username.to_string())
            .fetch_one(&self.0.read)
            .await?
            .try_get(0)?)
    }

    /// Marks every notification of a user read.
    pub async fn mark_read(&self, username: &str, at: i64) -> Result<u64> {
        let done = sqlx::query("UPDATE ops_notifications SET read_at = $1 WHERE username = $2 AND read_at IS NULL")
            .bind(at)
            .bind(username.to_string())
            .execute(&self.0.write)
            .await?;
        Ok(done.rows_affected())
    }

    /// Where each of `usernames` wants mail: (username, email, language).
    pub async fn contacts(&self, usernames: &[String]) -> Result<Vec<(String, String, String)>> {
        if usernames.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::new("SELECT username, email, language FROM ops_contacts WHERE ");
        sql.push_in("username", usernames);
        let rows = sql.query(self.0.backend).fetch_all(&self.0.read).await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).collect()
    }

    /// Sets (or with `None` removes) where a user wants mail.
    pub async fn set_contact(&self, username: &str, contact: Option<(&str, &str)>, at: i64) -> Result<()> {
        let mut tx = self.0.write.begin_with(self.0.backend.begin_write()).await?;
        sqlx::query("DELETE FROM ops_contacts WHERE username = $1")
            .bind(username.to_string())
            .execute(&mut *tx)
            .await?;
        if let Some((email, language)) = contact {
            sqlx::query("INSERT INTO ops_contacts (username, email, language, updated_at) VALUES ($1, $2, $3, $4)")
                .bind(username.to_string())
                .bind(email.to_string())
                .bind(language.to_string())
                .bind(at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Mail due by `now`, oldest first.
    pub async fn due_mail(&self, now: i64, limit: i64) -> Result<Vec<Notice>> {
        let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM ops_notifications WHERE mail_next <= "));
        sql.push_bind(Arg::Int(now));
        sql.push(" ORDER BY mail_next, id LIMIT ");
        sql.push_bind(Arg::Int(limit.clamp(1, 500)));
        let rows = sql.query(self.0.backend).fetch_all(&self.0.read).await?;
        rows.iter().map(from_row).collect()
    }

    /// The mail was taken by the SMTP server.
    pub async fn mail_sent(&self, id: i64, at: i64) -> Result<()> {
        sqlx::query("UPDATE ops_notifications SET mail_next = NULL, mail_sent = $1, mail_error = NULL WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&self.0.write)
            .await?;
        Ok(())
    }

    /// The mail failed: tried again at `next` (or, with `None`, given up).
    pub async fn mail_failed(&self, id: i64, next: Option<i64>, error: &str) -> Result<()> {
        sqlx::query(
            "UPDATE ops_notifications SET mail_next = $1, mail_tries = mail_tries + 1, mail_error = $2 WHERE id = $3",
        )
        .bind(next)
        .bind(error.chars().take(500).collect::<String>())
        .bind(id)
        .execute(&self.0.write)
        .await?;
        Ok(())
    }
}
