//! The IT service desk's tickets (not health data): each ticket's current state and
//! its events in order (opened, assigned, paused, resumed, resolved, reopened, closed,
//! comments and work logged), written together in one transaction under the ticket's
//! version, so two engineers cannot both take a ticket and no event is lost.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::notices::Notice;
use crate::sql::{Arg, Sql};
use crate::{Backend, Result, Store, StoreError};

/// Indexes a ticket's words (replacing what was indexed).
async fn index(tx: &mut Transaction<'static, Any>, backend: Backend, ticket: i64, tokens: &str) -> Result<()> {
    match backend {
        Backend::Sqlite => {
            sqlx::query("DELETE FROM ops_ticket_search WHERE rowid = $1").bind(ticket).execute(&mut **tx).await?;
            sqlx::query("INSERT INTO ops_ticket_search (rowid, tokens) VALUES ($1, $2)")
                .bind(ticket)
                .bind(tokens.to_string())
                .execute(&mut **tx)
                .await?;
        }
        Backend::Postgres => {
            sqlx::query(
                "INSERT INTO ops_ticket_search (ticket, tokens) VALUES ($1, to_tsvector('simple', $2)) \
                 ON CONFLICT (ticket) DO UPDATE SET tokens = EXCLUDED.tokens",
            )
            .bind(ticket)
            .bind(tokens.to_string())
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

/// A ticket as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ticket {
    pub id: i64,
    pub title: String,
    pub description: String,
    pub category: String,
    pub campus: Option<String>,
    pub location: Option<String>,
    /// The configuration item affected.
    pub ci: Option<i64>,
    /// The actor who reported it (`user:nurse.west`), and their name.
    pub reporter: String,
    pub reporter_name: String,
    /// `self` (reported in the shell) or `phone` (logged by the desk).
    pub channel: String,
    /// 1 (high) to 3 (low).
    pub impact: i64,
    pub urgency: i64,
    /// 1 (critical) to 4 (low), from the matrix.
    pub priority: i64,
    /// `business` or `7x24`.
    pub calendar: String,
    /// `new`, `assigned`, `pending`, `resolved` or `closed`.
    pub status: String,
    pub support_group: String,
    /// The engineer (`user:…`) who owns it.
    pub assignee: Option<String>,
    pub opened_at: i64,
    pub responded_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub closed_at: Option<i64>,
    pub resolution: Option<String>,
    /// 1 to 5, given by the reporter on closing.
    pub satisfaction: Option<i64>,
    pub version: i64,
    pub updated_at: i64,
}

/// One event of a ticket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TicketEvent {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    /// `opened`, `assigned`, `paused`, `resumed`, `resolved`, `reopened`, `closed`,
    /// `priority`, `comment`, `work`.
    pub kind: String,
    pub detail: Option<String>,
    /// Work logged, in minutes.
    pub minutes: Option<i64>,
}

/// Which tickets a list shows, newest first (`before`: the last id of the previous
/// page).
#[derive(Clone, Debug, Default)]
pub struct TicketQuery {
    pub groups: Option<Vec<String>>,
    pub assignee: Option<String>,
    pub reporter: Option<String>,
    /// `None`: every status; else one of these.
    pub statuses: Option<Vec<String>>,
    /// Words (cut as the service cuts them) every ticket shown has.
    pub words: Vec<String>,
    pub before: Option<i64>,
    pub limit: i64,
}

const COLUMNS: &str = "id, title, description, category, campus, location, ci, reporter, reporter_name, channel, \
                       impact, urgency, priority, calendar, status, support_group, assignee, opened_at, responded_at, \
                       resolved_at, closed_at, resolution, satisfaction, version, updated_at";

fn ticket_from_row(r: &AnyRow) -> Result<Ticket> {
    Ok(Ticket {
        id: r.try_get("id")?,
        title: r.try_get("title")?,
        description: r.try_get("description")?,
        category: r.try_get("category")?,
        campus: r.try_get("campus")?,
        location: r.try_get("location")?,
        ci: r.try_get("ci")?,
        reporter: r.try_get("reporter")?,
        reporter_name: r.try_get("reporter_name")?,
        channel: r.try_get("channel")?,
        impact: r.try_get("impact")?,
        urgency: r.try_get("urgency")?,
        priority: r.try_get("priority")?,
        calendar: r.try_get("calendar")?,
        status: r.try_get("status")?,
        support_group: r.try_get("support_group")?,
        assignee: r.try_get("assignee")?,
        opened_at: r.try_get("opened_at")?,
        responded_at: r.try_get("responded_at")?,
        resolved_at: r.try_get("resolved_at")?,
        closed_at: r.try_get("closed_at")?,
        resolution: r.try_get("resolution")?,
        satisfaction: r.try_get("satisfaction")?,
        version: r.try_get("version")?,
        updated_at: r.try_get("updated_at")?,
    })
}

async fn add_events(tx: &mut Transaction<'static, Any>, ticket: i64, events: &[TicketEvent]) -> Result<()> {
    let last: i64 = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM ops_ticket_events WHERE ticket = $1")
        .bind(ticket)
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
    for (i, e) in events.iter().enumerate() {
        sqlx::query(
            "INSERT INTO ops_ticket_events (ticket, seq, at, actor, kind, detail, minutes) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(ticket)
        .bind(last + 1 + i as i64)
        .bind(e.at)
        .bind(e.actor.clone())
        .bind(e.kind.clone())
        .bind(e.detail.clone())
        .bind(e.minutes)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The service desk's tables; see the module documentation.
#[derive(Clone, Debug)]
pub struct Desk(pub(crate) Store);

impl Desk {
    /// Opens a ticket with its first events, its words for the search and the
    /// notifications it sends (their `ticket` and `link` are filled in here); returns
    /// its id.
    pub async fn open(&self, t: &Ticket, events: &[TicketEvent], tokens: &str, notices: &[Notice]) -> Result<i64> {
        let mut tx = self.0.write_pool().begin_with(self.0.backend.begin_write()).await?;
        let row = sqlx::query(
            "INSERT INTO ops_tickets (title, description, category, campus, location, ci, reporter, reporter_name, \
             channel, impact, urgency, priority, calendar, status, support_group, assignee, opened_at, version, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, 1, $17) \
             RETURNING id",
        )
        .bind(t.title.clone())
        .bind(t.description.clone())
        .bind(t.category.clone())
        .bind(t.campus.clone())
        .bind(t.location.clone())
        .bind(t.ci)
        .bind(t.reporter.clone())
        .bind(t.reporter_name.clone())
        .bind(t.channel.clone())
        .bind(t.impact)
        .bind(t.urgency)
        .bind(t.priority)
        .bind(t.calendar.clone())
        .bind(t.status.clone())
        .bind(t.support_group.clone())
        .bind(t.assignee.clone())
        .bind(t.opened_at)
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get(0)?;
        add_events(&mut tx, id, events).await?;
        index(&mut tx, self.0.backend, id, tokens).await?;
        let notices: Vec<Notice> = notices
            .iter()
            .map(|n| Notice { ticket: Some(id), link: format!("/ops/tickets/{id}"), ..n.clone() })
            .collect();
        crate::notices::add(&mut tx, &notices).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Writes a ticket's new state if it is still at `t.version`, with its events, its
    /// words if they changed, and the notifications it sends; returns the new version.
    pub async fn change(
        &self,
        t: &Ticket,
        events: &[TicketEvent],
        tokens: Option<&str>,
        notices: &[Notice],
    ) -> Result<i64> {
        let mut tx = self.0.write_pool().begin_with(self.0.backend.begin_write()).await?;
        let done = sqlx::query(
            "UPDATE ops_tickets SET category = $1, ci = $2, impact = $3, urgency = $4, priority = $5, calendar = $6, \
             status = $7, support_group = $8, assignee = $9, responded_at = $10, resolved_at = $11, closed_at = $12, \
             resolution = $13, satisfaction = $14, version = version + 1, updated_at = $15 \
             WHERE id = $16 AND version = $17",
        )
        .bind(t.category.clone())
        .bind(t.ci)
        .bind(t.impact)
        .bind(t.urgency)
        .bind(t.priority)
        .bind(t.calendar.clone())
        .bind(t.status.clone())
        .bind(t.support_group.clone())
        .bind(t.assignee.clone())
        .bind(t.responded_at)
        .bind(t.resolved_at)
        .bind(t.closed_at)
        .bind(t.resolution.clone())
        .bind(t.satisfaction)
        .bind(t.updated_at)
        .bind(t.id)
        .bind(t.version)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::VersionConflict {
                resource_type: "ticket".into(),
                id: t.id.to_string(),
                expected: t.version,
                current: 0,
            });
        }
        add_events(&mut tx, t.id, events).await?;
        if let Some(tokens) = tokens {
            index(&mut tx, self.0.backend, t.id, tokens).await?;
        }
        crate::notices::add(&mut tx, notices).await?;
        tx.commit().await?;
        Ok(t.version + 1)
    }

    /// Adds events and notifications to a ticket without changing it (its version
    /// stays: an engineer's open form is not invalidated by the SLA watch).
    pub async fn note(&self, ticket: i64, events: &[TicketEvent], notices: &[Notice]) -> Result<()> {
        let mut tx = self.0.write_pool().begin_with(self.0.backend.begin_write()).await?;
        add_events(&mut tx, ticket, events).await?;
        crate::notices::add(&mut tx, notices).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn get(&self, id: i64) -> Result<Option<Ticket>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM ops_tickets WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.0.read_pool())
            .await?;
        row.as_ref().map(ticket_from_row).transpose()
    }

    /// A ticket's events in order.
    pub async fn events(&self, id: i64) -> Result<Vec<TicketEvent>> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, kind, detail, minutes FROM ops_ticket_events WHERE ticket = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TicketEvent {
                    seq: r.try_get(0)?,
                    at: r.try_get(1)?,
                    actor: r.try_get(2)?,
                    kind: r.try_get(3)?,
                    detail: r.try_get(4)?,
                    minutes: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// The events of many tickets, each ticket's in order.
    pub async fn events_of(&self, ids: &[i64]) -> Result<std::collections::HashMap<i64, Vec<TicketEvent>>> {
        let mut out: std::collections::HashMap<i64, Vec<TicketEvent>> = std::collections::HashMap::new();
        for chunk in ids.chunks(500) {
            let mut sql =
                Sql::new("SELECT ticket, seq, at, actor, kind, detail, minutes FROM ops_ticket_events WHERE ");
            sql.push_in_ints("ticket", chunk);
            sql.push(" ORDER BY ticket, seq");
            for r in sql.query(self.0.backend).fetch_all(&self.0.read_pool()).await? {
                out.entry(r.try_get(0)?).or_default().push(TicketEvent {
                    seq: r.try_get(1)?,
                    at: r.try_get(2)?,
                    actor: r.try_get(3)?,
                    kind: r.try_get(4)?,
                    detail: r.try_get(5)?,
                    minutes: r.try_get(6)?,
                });
            }
        }
        Ok(out)
    }

    /// A page of tickets, newest first.
    pub async fn list(&self, q: &TicketQuery) -> Result<Vec<Ticket>> {
        let words: Vec<&str> = q.words.iter().map(String::as_str).filter(|w| !w.is_empty()).collect();
        let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM ops_tickets WHERE 1 = 1"));
        if !words.is_empty() {
            // The tickets with every word, by the search index (the words hold letters
            // and digits only; quotes are doubled all the same).
            match self.0.backend {
                Backend::Sqlite => {
                    let expr: Vec<String> = words.iter().map(|w| format!("\"{}\"", w.replace('"', "\"\""))).collect();
                    sql.push(" AND id IN (SELECT rowid FROM ops_ticket_search WHERE ops_ticket_search MATCH ");
                    sql.push_bind(Arg::Text(expr.join(" AND ")));
                    sql.push(")");
                }
                Backend::Postgres => {
                    sql.push(
                        " AND id IN (SELECT ticket FROM ops_ticket_search WHERE tokens @@ plainto_tsquery('simple', ",
                    );
                    sql.push_bind(Arg::Text(words.join(" ")));
                    sql.push("))");
                }
            }
        }
        if let Some(groups) = &q.groups {
            sql.push(" AND ");
            sql.push_in("support_group", groups);
        }
        if let Some(a) = &q.assignee {
            sql.push(" AND assignee = ");
            sql.push_bind(Arg::Text(a.clone()));
        }
        if let Some(r) = &q.reporter {
            sql.push(" AND reporter = ");
            sql.push_bind(Arg::Text(r.clone()));
        }
        if let Some(s) = &q.statuses {
            sql.push(" AND ");
            sql.push_in("status", s);
        }
        if let Some(b) = q.before {
            sql.push(" AND id < ");
            sql.push_bind(Arg::Int(b));
        }
        sql.push(" ORDER BY id DESC LIMIT ");
        sql.push_bind(Arg::Int(q.limit.clamp(1, 500)));
        let rows = sql.query(self.0.backend).fetch_all(&self.0.read_pool()).await?;
        rows.iter().map(ticket_from_row).collect()
    }

    /// Every ticket opened in `[from, to)`, oldest first (for the statistics).
    pub async fn opened_between(&self, from: i64, to: i64) -> Result<Vec<Ticket>> {
        let mut out = Vec::new();
        let mut after = (from, 0i64);
        loop {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM ops_tickets WHERE opened_at < $1 AND (opened_at > $2 OR (opened_at = $2 AND id > $3)) \
                 ORDER BY opened_at, id LIMIT 5000"
            )))
            .bind(to)
            .bind(after.0)
            .bind(after.1)
            .fetch_all(&self.0.read_pool())
            .await?;
            let done = rows.len() < 5000;
            for r in &rows {
                out.push(ticket_from_row(r)?);
            }
            match out.last() {
                Some(t) if !done => after = (t.opened_at, t.id),
                _ => return Ok(out),
            }
        }
    }

    /// Tickets not yet in the search index (written before it existed), oldest first.
    pub async fn unindexed(&self, limit: i64) -> Result<Vec<Ticket>> {
        let sql = match self.0.backend {
            Backend::Sqlite => "NOT IN (SELECT rowid FROM ops_ticket_search)",
            Backend::Postgres => "NOT IN (SELECT ticket FROM ops_ticket_search)",
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM ops_tickets WHERE id {sql} ORDER BY id LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(ticket_from_row).collect()
    }

    /// Indexes the words of tickets: (id, words).
    pub async fn index(&self, tickets: &[(i64, String)]) -> Result<()> {
        let mut tx = self.0.write_pool().begin_with(self.0.backend.begin_write()).await?;
        for (id, tokens) in tickets {
            index(&mut tx, self.0.backend, *id, tokens).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The SLA settings the IT manager changed: (name, JSON value).
    pub async fn sla_settings(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT name, value FROM ops_sla_settings ORDER BY name")
            .fetch_all(&self.0.read_pool())
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    pub async fn set_sla_setting(&self, name: &str, value: &str, by: &str, at: i64) -> Result<()> {
        let mut tx = self.0.write_pool().begin_with(self.0.backend.begin_write()).await?;
        sqlx::query("DELETE FROM ops_sla_settings WHERE name = $1").bind(name.to_string()).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO ops_sla_settings (name, value, updated_by, updated_at) VALUES ($1, $2, $3, $4)")
            .bind(name.to_string())
            .bind(value.to_string())
            .bind(by.to_string())
            .bind(at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The calendar days set by the IT manager: (`YYYY-MM-DD`, `off`/`on`, note).
    pub async fn calendar_days(&self) -> Result<Vec<(String, String, String)>> {
        let rows = sqlx::query("SELECT day, turn, note FROM ops_calendar_days ORDER BY day")
            .fetch_all(&self.0.read_pool())
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).collect()
    }

    /// Sets (or with `None` removes) a calendar day.
    pub async fn set_calendar_day(&self, day: &str, turn: Option<(&str, &str)>, by: &str, at: i64) -> Result<()> {
        let mut tx = self.0.write_pool().begin_with(self.0.backend.begin_write()).await?;
        sqlx::query("DELETE FROM ops_calendar_days WHERE day = $1").bind(day.to_string()).execute(&mut *tx).await?;
        if let Some((turn, note)) = turn {
            sqlx::query(
                "INSERT INTO ops_calendar_days (day, turn, note, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(day.to_string())
            .bind(turn.to_string())
            .bind(note.to_string())
            .bind(by.to_string())
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The support groups of an engineer (`username`), with whether they lead it.
    pub async fn groups_of(&self, username: &str) -> Result<Vec<(String, bool)>> {
        let rows =
            sqlx::query("SELECT support_group, lead FROM ops_group_members WHERE username = $1 ORDER BY support_group")
                .bind(username.to_string())
                .fetch_all(&self.0.read_pool())
                .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get::<i64, _>(1)? != 0))).collect()
    }

    /// Every group's members: (group, username, lead).
    pub async fn members(&self) -> Result<Vec<(String, String, bool)>> {
        let rows =
            sqlx::query("SELECT support_group, username, lead FROM ops_group_members ORDER BY support_group, username")
                .fetch_all(&self.0.read_pool())
                .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get::<i64, _>(2)? != 0))).collect()
    }

    /// Puts an engineer in a group (or changes whether they lead it).
    pub async fn set_member(&self, group: &str, username: &str, lead: bool) -> Result<()> {
        let mut tx = self.0.write_pool().begin_with(self.0.backend.begin_write()).await?;
        sqlx::query("DELETE FROM ops_group_members WHERE support_group = $1 AND username = $2")
            .bind(group.to_string())
            .bind(username.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO ops_group_members (support_group, username, lead) VALUES ($1, $2, $3)")
            .bind(group.to_string())
            .bind(username.to_string())
            .bind(i64::from(lead))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes an engineer out of a group; whether they were in it.
    pub async fn remove_member(&self, group: &str, username: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM ops_group_members WHERE support_group = $1 AND username = $2")
            .bind(group.to_string())
            .bind(username.to_string())
            .execute(&self.0.write_pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
