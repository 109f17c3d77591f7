//! The announcements' tables (staff data): what was published to which audience, and
//! who read it. A read is recorded once per reader (the first time counts).

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, Store};

/// One announcement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Announcement {
    pub id: i64,
    /// `announcement`, `news` or `policy`.
    pub kind: String,
    pub title: String,
    pub body: String,
    /// `group`, `campus`, `department` or `role`.
    pub audience: String,
    /// The campus of a campus or department audience (a role's, when limited).
    pub campus: Option<String>,
    pub department: Option<String>,
    pub role: Option<String>,
    pub published_by: String,
    pub published_at: i64,
    /// The last day it is shown (`YYYY-MM-DD`), if it ends.
    pub until: Option<String>,
}

const COLUMNS: &str = "id, kind, title, body, audience, campus, department, role, published_by, published_at, until";

fn of(r: &AnyRow) -> Result<Announcement> {
    Ok(Announcement {
        id: r.try_get(0)?,
        kind: r.try_get(1)?,
        title: r.try_get(2)?,
        body: r.try_get(3)?,
        audience: r.try_get(4)?,
        campus: r.try_get(5)?,
        department: r.try_get(6)?,
        role: r.try_get(7)?,
        published_by: r.try_get(8)?,
        published_at: r.try_get(9)?,
        until: r.try_get(10)?,
    })
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Announcements(pub(crate) Store);

impl Announcements {
    /// Publishes an announcement; returns its id.
    pub async fn publish(&self, a: &Announcement) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO announcements (kind, title, body, audience, campus, department, role, published_by, \
             published_at, until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(a.kind.clone())
        .bind(a.title.clone())
        .bind(a.body.clone())
        .bind(a.audience.clone())
        .bind(a.campus.clone())
        .bind(a.department.clone())
        .bind(a.role.clone())
        .bind(a.published_by.clone())
        .bind(a.published_at)
        .bind(a.until.clone())
        .fetch_one(&self.0.write_pool())
        .await?;
        Ok(row.try_get(0)?)
    }

    /// The latest announcements still shown on `today` (`YYYY-MM-DD`), newest first.
    pub async fn current(&self, today: &str, limit: i64) -> Result<Vec<Announcement>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM announcements WHERE until IS NULL OR until >= $1 ORDER BY published_at DESC, id DESC \
             LIMIT $2"
        )))
        .bind(today.to_string())
        .bind(limit)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(of).collect()
    }

    pub async fn get(&self, id: i64) -> Result<Option<Announcement>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM announcements WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.0.read_pool())
            .await?;
        row.as_ref().map(of).transpose()
    }

    /// Records that `reader` read it (the first read stands); whether this was the
    /// first.
    pub async fn read(&self, id: i64, reader: &str, at: i64) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO announcement_reads (announcement, reader, read_at) VALUES ($1, $2, $3) \
             ON CONFLICT (announcement, reader) DO NOTHING",
        )
        .bind(id)
        .bind(reader.to_string())
        .bind(at)
        .execute(&self.0.write_pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Who read it and when, first reader first.
    pub async fn readers(&self, id: i64) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT reader, read_at FROM announcement_reads WHERE announcement = $1 ORDER BY read_at, reader",
        )
        .bind(id)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// Which of `ids` `reader` has read.
    pub async fn read_by(&self, reader: &str, ids: &[i64]) -> Result<Vec<i64>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (low, high) = (ids.iter().min().copied().unwrap_or(0), ids.iter().max().copied().unwrap_or(0));
        let rows = sqlx::query(
            "SELECT announcement FROM announcement_reads WHERE reader = $1 AND announcement >= $2 AND announcement <= $3",
        )
        .bind(reader.to_string())
        .bind(low)
        .bind(high)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }
}
