//! The IT service desk's problems (not health data): the cause behind one or more
//! incidents, with its root cause, workaround and whether it is a known error, and the
//! incidents linked to it.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::sql::{Arg, Sql};
use crate::{Result, Store, StoreError};

/// A problem as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Problem {
    pub id: i64,
    pub title: String,
    pub description: String,
    /// `open`, `known-error`, `resolved` or `closed`.
    pub status: String,
    /// 1 (critical) to 4 (low).
    pub priority: i64,
    pub ci: Option<i64>,
    pub support_group: String,
    pub assignee: Option<String>,
    pub root_cause: Option<String>,
    pub workaround: Option<String>,
    pub known_error: bool,
    pub opened_by: String,
    pub opened_at: i64,
    pub resolved_at: Option<i64>,
    pub version: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, title, description, status, priority, ci, support_group, assignee, root_cause, workaround, \
                       known_error, opened_by, opened_at, resolved_at, version, updated_at";

fn from_row(r: &AnyRow) -> Result<Problem> {
    Ok(Problem {
        id: r.try_get("id")?,
        title: r.try_get("title")?,
        description: r.try_get("description")?,
        status: r.try_get("status")?,
        priority: r.try_get("priority")?,
        ci: r.try_get("ci")?,
        support_group: r.try_get("support_group")?,
        assignee: r.try_get("assignee")?,
        root_cause: r.try_get("root_cause")?,
        workaround: r.try_get("workaround")?,
        known_error: r.try_get::<i64, _>("known_error")? != 0,
        opened_by: r.try_get("opened_by")?,
        opened_at: r.try_get("opened_at")?,
        resolved_at: r.try_get("resolved_at")?,
        version: r.try_get("version")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// The problems' tables; see the module documentation.
#[derive(Clone, Debug)]
pub struct Problems(pub(crate) Store);

impl Problems {
    /// Records a problem with the incidents it explains; returns its id.
    pub async fn open(&self, p: &Problem, incidents: &[i64]) -> Result<i64> {
        let mut tx = self.0.write_pool().begin_with(self.0.backend.begin_write()).await?;
        let id: i64 = sqlx::query(
            "INSERT INTO ops_problems (title, description, status, priority, ci, support_group, assignee, \
             root_cause, workaround, known_error, opened_by, opened_at, version, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 1, $12) RETURNING id",
        )
        .bind(p.title.clone())
        .bind(p.description.clone())
        .bind(p.status.clone())
        .bind(p.priority)
        .bind(p.ci)
        .bind(p.support_group.clone())
        .bind(p.assignee.clone())
        .bind(p.root_cause.clone())
        .bind(p.workaround.clone())
        .bind(i64::from(p.known_error))
        .bind(p.opened_by.clone())
        .bind(p.opened_at)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        for t in incidents {
            sqlx::query("INSERT INTO ops_problem_incidents (problem, ticket) VALUES ($1, $2)")
                .bind(id)
                .bind(*t)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Writes a problem's new state if it is still at `p.version`, linking the
    /// incidents in `link`; returns the new version.
    pub async fn change(&self, p: &Problem, link: &[i64]) -> Result<i64> {
        let mut tx = self.0.write_pool().begin_with(self.0.backend.begin_write()).await?;
        let done = sqlx::query(
            "UPDATE ops_problems SET title = $1, description = $2, status = $3, priority = $4, ci = $5, \
             support_group = $6, assignee = $7, root_cause = $8, workaround = $9, known_error = $10, \
             resolved_at = $11, version = version + 1, updated_at = $12 WHERE id = $13 AND version = $14",
        )
        .bind(p.title.clone())
        .bind(p.description.clone())
        .bind(p.status.clone())
        .bind(p.priority)
        .bind(p.ci)
        .bind(p.support_group.clone())
        .bind(p.assignee.clone())
        .bind(p.root_cause.clone())
        .bind(p.workaround.clone())
        .bind(i64::from(p.known_error))
        .bind(p.resolved_at)
        .bind(p.updated_at)
        .bind(p.id)
        .bind(p.version)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::VersionConflict {
                resource_type: "problem".into(),
                id: p.id.to_string(),
                expected: p.version,
                current: 0,
            });
        }
        for t in link {
            sqlx::query("INSERT INTO ops_problem_incidents (problem, ticket) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(p.id)
                .bind(*t)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(p.version + 1)
    }

    pub async fn get(&self, id: i64) -> Result<Option<Problem>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM ops_problems WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.0.read_pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// A page of problems, newest first (`before`: the last id of the previous page).
    pub async fn list(&self, statuses: Option<&[String]>, before: Option<i64>, limit: i64) -> Result<Vec<Problem>> {
        let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM ops_problems WHERE 1 = 1"));
        if let Some(s) = statuses {
            sql.push(" AND ");
            sql.push_in("status", s);
        }
        if let Some(b) = before {
            sql.push(" AND id < ");
            sql.push_bind(Arg::Int(b));
        }
        sql.push(" ORDER BY id DESC LIMIT ");
        sql.push_bind(Arg::Int(limit.clamp(1, 500)));
        let rows = sql.query(self.0.backend).fetch_all(&self.0.read_pool()).await?;
        rows.iter().map(from_row).collect()
    }

    /// The incidents a problem explains, oldest first.
    pub async fn incidents(&self, problem: i64) -> Result<Vec<i64>> {
        let rows = sqlx::query("SELECT ticket FROM ops_problem_incidents WHERE problem = $1 ORDER BY ticket")
            .bind(problem)
            .fetch_all(&self.0.read_pool())
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// The problems an incident is linked to.
    pub async fn of_incident(&self, ticket: i64) -> Result<Vec<i64>> {
        let rows = sqlx::query("SELECT problem FROM ops_problem_incidents WHERE ticket = $1 ORDER BY problem")
            .bind(ticket)
            .fetch_all(&self.0.read_pool())
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }
}
