//! Storage of break-the-glass grants (the rules live in the services).

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, Store};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakGlassRecord {
    pub id: String,
    pub actor: String,
    pub role: Option<String>,
    pub patient: String,
    pub reason: String,
    pub granted_at: i64,
    pub expires_at: i64,
    pub client_addr: Option<String>,
}

fn from_row(r: &AnyRow) -> Result<BreakGlassRecord> {
    Ok(BreakGlassRecord {
        id: r.try_get("id")?,
        actor: r.try_get("actor")?,
        role: r.try_get("role")?,
        patient: r.try_get("patient")?,
        reason: r.try_get("reason")?,
        granted_at: r.try_get("granted_at")?,
        expires_at: r.try_get("expires_at")?,
        client_addr: r.try_get("client_addr")?,
    })
}

const COLUMNS: &str = "id, actor, role, patient, reason, granted_at, expires_at, client_addr";

impl Store {
    pub async fn insert_break_glass(&self, g: &BreakGlassRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO break_glass (id, actor, role, patient, reason, granted_at, expires_at, client_addr) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(g.id.clone())
        .bind(g.actor.clone())
        .bind(g.role.clone())
        .bind(g.patient.clone())
        .bind(g.reason.clone())
        .bind(g.granted_at)
        .bind(g.expires_at)
        .bind(g.client_addr.clone())
        .execute(&self.write_pool())
        .await?;
        Ok(())
    }

    /// Patients `actor` holds an unexpired grant for at `now_ms`.
    pub async fn break_glass_patients(&self, actor: &str, now_ms: i64) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT DISTINCT patient FROM break_glass WHERE actor = $1 AND expires_at > $2")
            .bind(actor.to_string())
            .bind(now_ms)
            .fetch_all(&self.write_pool())
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Grants made in `[since, until)`, newest first.
    pub async fn break_glass_report(&self, since: i64, until: i64, limit: i64) -> Result<Vec<BreakGlassRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM break_glass WHERE granted_at >= $1 AND granted_at < $2 ORDER BY granted_at DESC LIMIT $3"
        )))
        .bind(since)
        .bind(until)
        .bind(limit)
        .fetch_all(&self.read_pool())
        .await?;
        rows.iter().map(from_row).collect()
    }
}
