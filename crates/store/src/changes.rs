//! The IT service desk's changes (not health data): the request with its class, risk
//! and back-out plan, the window it is planned for, the configuration items it
//! touches, each board member's decision, and the change board itself (who approves
//! the changes of each class). A decision and the change's new state are written in
//! one transaction under the change's version.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::sql::{Arg, Sql};
use crate::{Result, Store, StoreError};

/// A change as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Change {
    pub id: i64,
    pub title: String,
    pub description: String,
    /// `standard`, `normal` or `emergency`.
    pub class: String,
    /// `low`, `medium` or `high`.
    pub risk: String,
    pub backout_plan: String,
    /// `requested`, `approved`, `rejected`, `scheduled`, `implemented`, `failed`,
    /// `reviewed` or `cancelled`.
    pub status: String,
    /// The actor who asked for it.
    pub requester: String,
    pub window_start: i64,
    pub window_end: i64,
    /// What the implementer reported.
    pub outcome: Option<String>,
    /// The post-implementation review.
    pub review: Option<String>,
    pub created_at: i64,
    pub version: i64,
    pub updated_at: i64,
}

/// One board member's decision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Approval {
    pub approver: String,
    /// `approved` or `rejected`.
    pub decision: String,
    pub comment: Option<String>,
    pub at: i64,
}

/// Which changes a list shows: newest first with `before`, or those whose window
/// overlaps `[from, to)` in window order.
#[derive(Clone, Debug, Default)]
pub struct ChangeQuery {
    pub statuses: Option<Vec<String>>,
    pub overlapping: Option<(i64, i64)>,
    pub before: Option<i64>,
    pub limit: i64,
}

const COLUMNS: &str = "id, title, description, change_class, risk, backout_plan, status, requester, window_start, \
                       window_end, outcome, review, created_at, version, updated_at";

fn from_row(r: &AnyRow) -> Result<Change> {
    Ok(Change {
        id: r.try_get("id")?,
        title: r.try_get("title")?,
        description: r.try_get("description")?,
        class: r.try_get("change_class")?,
        risk: r.try_get("risk")?,
        backout_plan: r.try_get("backout_plan")?,
        status: r.try_get("status")?,
        requester: r.try_get("requester")?,
        window_start: r.try_get("window_start")?,
        window_end: r.try_get("window_end")?,
        outcome: r.try_get("outcome")?,
        review: r.try_get("review")?,
        created_at: r.try_get("created_at")?,
        version: r.try_get("version")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// The changes' tables; see the module documentation.
#[derive(Clone, Debug)]
pub struct Changes(pub(crate) Store);

impl Changes {
    /// Records a change request touching `cis`; returns its id.
    pub async fn create(&self, c: &Change, cis: &[i64]) -> Result<i64> {
        let mut tx = self.0.write_pool().begin_with(self.0.backend.begin_write()).await?;
        let id: i64 = sqlx::query(
            "INSERT INTO ops_changes (title, description, change_class, risk, backout_plan, status, requester, \
             window_start, window_end, created_at, version, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1, $10) RETURNING id",
        )
        .bind(c.title.clone())
        .bind(c.description.clone())
        .bind(c.class.clone())
        .bind(c.risk.clone())
        .bind(c.backout_plan.clone())
        .bind(c.status.clone())
        .bind(c.requester.clone())
        .bind(c.window_start)
        .bind(c.window_end)
        .bind(c.created_at)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        for ci in cis {
            sqlx::query("INSERT INTO ops_change_cis (change, ci) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(id)
                .bind(*ci)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Writes a change's new state if it is still at `c.version`, with a board
    /// member's decision if one is given; returns the new version. A second decision
    /// by the same member is refused by the table's key.
    pub async fn change(&self, c: &Change, decision: Option<&Approval>) -> Result<i64> {
        let mut tx = self.0.write_pool().begin_with(self.0.backend.begin_write()).await?;
        let done = sqlx::query(
            "UPDATE ops_changes SET status = $1, window_start = $2, window_end = $3, outcome = $4, review = $5, \
             version = version + 1, updated_at = $6 WHERE id = $7 AND version = $8",
        )
        .bind(c.status.clone())
        .bind(c.window_start)
        .bind(c.window_end)
        .bind(c.outcome.clone())
        .bind(c.review.clone())
        .bind(c.updated_at)
        .bind(c.id)
        .bind(c.version)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::VersionConflict {
                resource_type: "change".into(),
                id: c.id.to_string(),
                expected: c.version,
                current: 0,
            });
        }
        if let Some(a) = decision {
            sqlx::query(
                "INSERT INTO ops_change_approvals (change, approver, decision, comment, at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(c.id)
            .bind(a.approver.clone())
            .bind(a.decision.clone())
            .bind(a.comment.clone())
            .bind(a.at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(c.version + 1)
    }

    pub async fn get(&self, id: i64) -> Result<Option<Change>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM ops_changes WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.0.read_pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// A page of changes; see [`ChangeQuery`].
    pub async fn list(&self, q: &ChangeQuery) -> Result<Vec<Change>> {
        let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM ops_changes WHERE 1 = 1"));
        if let Some(s) = &q.statuses {
            sql.push(" AND ");
            sql.push_in("status", s);
        }
        if let Some((from, to)) = q.overlapping {
            sql.push(" AND window_start < ");
            sql.push_bind(Arg::Int(to));
            sql.push(" AND window_end > ");
            sql.push_bind(Arg::Int(from));
        }
        if let Some(b) = q.before {
            sql.push(" AND id < ");
            sql.push_bind(Arg::Int(b));
        }
        sql.push(if q.overlapping.is_some() { " ORDER BY window_start, id" } else { " ORDER BY id DESC" });
        sql.push(" LIMIT ");
        sql.push_bind(Arg::Int(q.limit.clamp(1, 1000)));
        let rows = sql.query(self.0.backend).fetch_all(&self.0.read_pool()).await?;
        rows.iter().map(from_row).collect()
    }

    /// The CIs of many changes: (change, ci).
    pub async fn cis_of(&self, changes: &[i64]) -> Result<Vec<(i64, i64)>> {
        let mut out = Vec::new();
        for chunk in changes.chunks(500) {
            let mut sql = Sql::new("SELECT change, ci FROM ops_change_cis WHERE ");
            sql.push_in_ints("change", chunk);
            sql.push(" ORDER BY change, ci");
            for r in sql.query(self.0.backend).fetch_all(&self.0.read_pool()).await? {
                out.push((r.try_get(0)?, r.try_get(1)?));
            }
        }
        Ok(out)
    }

    /// A change's decisions, in the order given.
    pub async fn approvals(&self, change: i64) -> Result<Vec<Approval>> {
        let rows = sqlx::query(
            "SELECT approver, decision, comment, at FROM ops_change_approvals WHERE change = $1 ORDER BY at, approver",
        )
        .bind(change)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Approval {
                    approver: r.try_get(0)?,
                    decision: r.try_get(1)?,
                    comment: r.try_get(2)?,
                    at: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// The change board: (class, username), by class.
    pub async fn board(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT change_class, username FROM ops_change_board ORDER BY change_class, username")
            .fetch_all(&self.0.read_pool())
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// Names (or, with `member` false, removes) an approver of a class; whether
    /// anything changed.
    pub async fn set_board(&self, class: &str, username: &str, member: bool) -> Result<bool> {
        let sql = if member {
            "INSERT INTO ops_change_board (change_class, username) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM ops_change_board WHERE change_class = $1 AND username = $2"
        };
        let done =
            sqlx::query(sql).bind(class.to_string()).bind(username.to_string()).execute(&self.0.write_pool()).await?;
        Ok(done.rows_affected() == 1)
    }
}
