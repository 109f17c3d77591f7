//! The service desk's notifications (not health data): each recipient's inbox, the
//! mail still to send (with its retries) and where each user wants that mail, and the
//! support groups' webhooks with the posts still to send. New notifications (and the
//! webhook posts of the ticket's group) are written by [`crate::desk::Desk`] in the
//! transaction of the ticket change they tell of.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::sql::{Arg, Sql};
use crate::{Result, Store};

/// One notification.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notice {
    pub id: i64,
    /// Who it is for (a user name); empty: no one's inbox, only the ticket's group's
    /// webhook is told.
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
    for n in notices.iter().filter(|n| !n.username.is_empty()) {
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
    // One post to the ticket's group's webhook per kind of news, when it has one.
    let mut told: Vec<(i64, &str)> = Vec::new();
    for n in notices {
        let Some(ticket) = n.ticket else { continue };
        if told.contains(&(ticket, n.kind.as_str())) {
            continue;
        }
        told.push((ticket, n.kind.as_str()));
        sqlx::query(
            "INSERT INTO ops_hook_deliveries (support_group, kind, ticket, at, status, due_at, tries) \
             SELECT h.support_group, $1, t.id, $3, 'pending', $3, 0 FROM ops_tickets t \
             JOIN ops_group_hooks h ON h.support_group = t.support_group WHERE t.id = $2",
        )
        .bind(n.kind.clone())
        .bind(ticket)
        .bind(n.at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// A support group's webhook.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Hook {
    pub support_group: String,
    pub url: String,
    /// The signing secret, sealed by the field cipher.
    pub secret: String,
    pub updated_at: i64,
    pub updated_by: String,
}

/// A post to a group's webhook, pending, sent or given up.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HookDelivery {
    pub id: i64,
    pub support_group: String,
    /// The notification's kind (`new-ticket`, `sla-breach` …).
    pub kind: String,
    pub ticket: i64,
    pub at: i64,
    /// `pending`, `sent` or `failed`.
    pub status: String,
    pub tries: i64,
    pub last_error: Option<String>,
    pub sent_at: Option<i64>,
}

const DELIVERY_COLUMNS: &str = "id, support_group, kind, ticket, at, status, tries, last_error, sent_at";

fn delivery_of(r: &AnyRow) -> Result<HookDelivery> {
    Ok(HookDelivery {
        id: r.try_get(0)?,
        support_group: r.try_get(1)?,
        kind: r.try_get(2)?,
        ticket: r.try_get(3)?,
        at: r.try_get(4)?,
        status: r.try_get(5)?,
        tries: r.try_get(6)?,
        last_error: r.try_get(7)?,
        sent_at: r.try_get(8)?,
    })
}

/// The support groups' webhooks and their deliveries: see the module documentation.
#[derive(Clone, Debug)]
pub struct Hooks(pub(crate) Store);

impl Hooks {
    /// Sets (or replaces) a group's webhook.
    pub async fn set(&self, h: &Hook) -> Result<()> {
        let mut tx = self.0.write_pool().begin_with(self.0.backend.begin_write()).await?;
        sqlx::query("DELETE FROM ops_group_hooks WHERE support_group = $1")
            .bind(h.support_group.clone())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO ops_group_hooks (support_group, url, secret, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(h.support_group.clone())
        .bind(h.url.clone())
        .bind(h.secret.clone())
        .bind(h.updated_at)
        .bind(h.updated_by.clone())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a group's webhook (its pending posts are given up); whether it had one.
    pub async fn remove(&self, group: &str) -> Result<bool> {
        let mut tx = self.0.write_pool().begin_with(self.0.backend.begin_write()).await?;
        let gone = sqlx::query("DELETE FROM ops_group_hooks WHERE support_group = $1")
            .bind(group.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(
            "UPDATE ops_hook_deliveries SET status = 'failed', due_at = NULL, last_error = 'the webhook was removed' \
             WHERE support_group = $1 AND status = 'pending'",
        )
        .bind(group.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(gone == 1)
    }

    /// Every group's webhook.
    pub async fn list(&self) -> Result<Vec<Hook>> {
        let rows = sqlx::query(
            "SELECT support_group, url, secret, updated_at, updated_by FROM ops_group_hooks ORDER BY support_group",
        )
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Hook {
                    support_group: r.try_get(0)?,
                    url: r.try_get(1)?,
                    secret: r.try_get(2)?,
                    updated_at: r.try_get(3)?,
                    updated_by: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// Posts due at `now`, oldest first.
    pub async fn due(&self, now: i64, limit: i64) -> Result<Vec<HookDelivery>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM ops_hook_deliveries WHERE due_at <= $1 ORDER BY due_at, id LIMIT $2"
        )))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(delivery_of).collect()
    }

    /// A group's newest posts.
    pub async fn recent(&self, group: &str, limit: i64) -> Result<Vec<HookDelivery>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM ops_hook_deliveries WHERE support_group = $1 ORDER BY id DESC LIMIT $2"
        )))
        .bind(group.to_string())
        .bind(limit)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(delivery_of).collect()
    }

    /// A post was accepted.
    pub async fn sent(&self, id: i64, at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE ops_hook_deliveries SET status = 'sent', due_at = NULL, sent_at = $2, tries = tries + 1 WHERE id = $1",
        )
        .bind(id)
        .bind(at)
        .execute(&self.0.write_pool())
        .await?;
        Ok(())
    }

    /// A post failed: tried again at `next`, or given up (`None`).
    pub async fn failed(&self, id: i64, next: Option<i64>, error: &str) -> Result<()> {
        sqlx::query(
            "UPDATE ops_hook_deliveries SET status = CASE WHEN $2 IS NULL THEN 'failed' ELSE 'pending' END, \
             due_at = $2, tries = tries + 1, last_error = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(next)
        .bind(error.chars().take(500).collect::<String>())
        .execute(&self.0.write_pool())
        .await?;
        Ok(())
    }
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Notices(pub(crate) Store);

impl Notices {
    /// Writes notifications that belong to no ticket change (reminders).
    pub async fn add(&self, notices: &[Notice]) -> Result<()> {
        let mut tx = self.0.write_pool().begin_with(self.0.backend.begin_write()).await?;
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
            .fetch_optional(&self.0.read_pool())
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
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// How many of a user's notifications are unread.
    pub async fn unread(&self, username: &str) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) FROM ops_notifications WHERE username = $1 AND read_at IS NULL")
            .bind(username.to_string())
            .fetch_one(&self.0.read_pool())
            .await?
            .try_get(0)?)
    }

    /// Marks every notification of a user read.
    pub async fn mark_read(&self, username: &str, at: i64) -> Result<u64> {
        let done = sqlx::query("UPDATE ops_notifications SET read_at = $1 WHERE username = $2 AND read_at IS NULL")
            .bind(at)
            .bind(username.to_string())
            .execute(&self.0.write_pool())
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
        let rows = sql.query(self.0.backend).fetch_all(&self.0.read_pool()).await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).collect()
    }

    /// Sets (or with `None` removes) where a user wants mail.
    pub async fn set_contact(&self, username: &str, contact: Option<(&str, &str)>, at: i64) -> Result<()> {
        let mut tx = self.0.write_pool().begin_with(self.0.backend.begin_write()).await?;
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
        let rows = sql.query(self.0.backend).fetch_all(&self.0.read_pool()).await?;
        rows.iter().map(from_row).collect()
    }

    /// The mail was taken by the SMTP server.
    pub async fn mail_sent(&self, id: i64, at: i64) -> Result<()> {
        sqlx::query("UPDATE ops_notifications SET mail_next = NULL, mail_sent = $1, mail_error = NULL WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&self.0.write_pool())
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
        .execute(&self.0.write_pool())
        .await?;
        Ok(())
    }
}
