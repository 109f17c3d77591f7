//! The staff tables (人事; staff data): each person's position, title and practising
//! campuses, keyed by their Practitioner, and their licences. A licence number is
//! unique within its kind (a second registration of it is refused naming `number`).

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, Store, StoreError};

/// A person's staff record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StaffRecord {
    pub practitioner: String,
    pub position: Option<String>,
    /// A professional title code (`resident`, `attending`, `associate-chief`, `chief`,
    /// nursing and technical titles).
    pub title: Option<String>,
    /// `YYYY-MM-DD`.
    pub title_since: Option<String>,
    /// The campuses the person is registered to practise at.
    pub campuses: Vec<String>,
    pub changed_at: i64,
    pub changed_by: String,
}

/// A licence or practising certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Licence {
    pub id: i64,
    pub practitioner: String,
    pub kind: String,
    pub number: String,
    pub issuer: Option<String>,
    pub issued_on: String,
    pub expires_on: Option<String>,
    pub added_at: i64,
    pub added_by: String,
}

fn record_of(r: &AnyRow) -> Result<StaffRecord> {
    let campuses: String = r.try_get(4)?;
    Ok(StaffRecord {
        practitioner: r.try_get(0)?,
        position: r.try_get(1)?,
        title: r.try_get(2)?,
        title_since: r.try_get(3)?,
        campuses: campuses.split(' ').filter(|c| !c.is_empty()).map(str::to_string).collect(),
        changed_at: r.try_get(5)?,
        changed_by: r.try_get(6)?,
    })
}

const LICENCE_COLUMNS: &str = "id, practitioner, kind, number, issuer, issued_on, expires_on, added_at, added_by";

fn licence_of(r: &AnyRow) -> Result<Licence> {
    Ok(Licence {
        id: r.try_get(0)?,
        practitioner: r.try_get(1)?,
        kind: r.try_get(2)?,
        number: r.try_get(3)?,
        issuer: r.try_get(4)?,
        issued_on: r.try_get(5)?,
        expires_on: r.try_get(6)?,
        added_at: r.try_get(7)?,
        added_by: r.try_get(8)?,
    })
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Staff(pub(crate) Store);

impl Staff {
    /// Saves a person's record (whole).
    pub async fn put(&self, s: &StaffRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO staff_records (practitioner, position, title, title_since, campuses, changed_at, changed_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (practitioner) DO UPDATE SET position = excluded.position, \
             title = excluded.title, title_since = excluded.title_since, campuses = excluded.campuses, \
             changed_at = excluded.changed_at, changed_by = excluded.changed_by",
        )
        .bind(s.practitioner.clone())
        .bind(s.position.clone())
        .bind(s.title.clone())
        .bind(s.title_since.clone())
        .bind(s.campuses.join(" "))
        .bind(s.changed_at)
        .bind(s.changed_by.clone())
        .execute(&self.0.write_pool())
        .await?;
        Ok(())
    }

    pub async fn record(&self, practitioner: &str) -> Result<Option<StaffRecord>> {
        let row = sqlx::query(
            "SELECT practitioner, position, title, title_since, campuses, changed_at, changed_by FROM staff_records \
             WHERE practitioner = $1",
        )
        .bind(practitioner.to_string())
        .fetch_optional(&self.0.read_pool())
        .await?;
        row.as_ref().map(record_of).transpose()
    }

    /// Every record (a few thousand people at most).
    pub async fn records(&self) -> Result<Vec<StaffRecord>> {
        let rows = sqlx::query(
            "SELECT practitioner, position, title, title_since, campuses, changed_at, changed_by FROM staff_records \
             ORDER BY practitioner",
        )
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(record_of).collect()
    }

    /// Adds a licence; its number already registered for its kind is refused.
    pub async fn add_licence(&self, l: &Licence) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO staff_licences (practitioner, kind, number, issuer, issued_on, expires_on, added_at, added_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (kind, number) DO NOTHING RETURNING id",
        )
        .bind(l.practitioner.clone())
        .bind(l.kind.clone())
        .bind(l.number.clone())
        .bind(l.issuer.clone())
        .bind(l.issued_on.clone())
        .bind(l.expires_on.clone())
        .bind(l.added_at)
        .bind(l.added_by.clone())
        .fetch_optional(&self.0.write_pool())
        .await?;
        match row {
            Some(r) => Ok(r.try_get(0)?),
            None => Err(StoreError::Refused(format!("number: licence {} is registered already", l.number))),
        }
    }

    /// A person's licences, by expiry.
    pub async fn licences(&self, practitioner: &str) -> Result<Vec<Licence>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LICENCE_COLUMNS} FROM staff_licences WHERE practitioner = $1 \
             ORDER BY COALESCE(expires_on, '9999-12-31'), id"
        )))
        .bind(practitioner.to_string())
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(licence_of).collect()
    }

    /// Every licence expiring on or before `until` (`YYYY-MM-DD`), soonest first.
    pub async fn expiring(&self, until: &str) -> Result<Vec<Licence>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LICENCE_COLUMNS} FROM staff_licences WHERE expires_on IS NOT NULL AND expires_on <= $1 \
             ORDER BY expires_on, id"
        )))
        .bind(until.to_string())
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(licence_of).collect()
    }

    /// Removes a licence; whether it was there.
    pub async fn remove_licence(&self, id: i64) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM staff_licences WHERE id = $1").bind(id).execute(&self.0.write_pool()).await?;
        Ok(done.rows_affected() == 1)
    }
}
