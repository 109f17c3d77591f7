//! How each campus's wards work (病区规则): the medication round times and whether an
//! order needs a second nurse's check. Written through
//! [`crate::messages::SideWrite::WardRules`], in the transaction of its audit record.

use sqlx::{Any, Row, Transaction};

use crate::{Result, Store};

/// A campus's ward rules as set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WardRules {
    pub campus: String,
    /// `qd=08:00;bid=08:00,16:00;…`, read by the inpatient service.
    pub rounds: String,
    pub second_check: bool,
    pub updated_by: String,
    pub updated_at: i64,
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct WardRulesTable(pub(crate) Store);

impl WardRulesTable {
    /// The rules `campus` set, if it set any.
    pub async fn get(&self, campus: &str) -> Result<Option<WardRules>> {
        let row = sqlx::query(
            "SELECT campus, rounds, second_check, updated_by, updated_at FROM ward_rules WHERE campus = $1",
        )
        .bind(campus.to_string())
        .fetch_optional(&self.0.read_pool())
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(WardRules {
            campus: r.try_get(0)?,
            rounds: r.try_get(1)?,
            second_check: r.try_get::<i64, _>(2)? != 0,
            updated_by: r.try_get(3)?,
            updated_at: r.try_get(4)?,
        }))
    }
}

/// Writes `w` inside `tx`, replacing the campus's rules.
pub(crate) async fn apply(tx: &mut Transaction<'static, Any>, w: &WardRules) -> Result<()> {
    sqlx::query(
        "INSERT INTO ward_rules (campus, rounds, second_check, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (campus) DO UPDATE SET rounds = excluded.rounds, second_check = excluded.second_check, \
         updated_by = excluded.updated_by, updated_at = excluded.updated_at",
    )
    .bind(w.campus.clone())
    .bind(w.rounds.clone())
    .bind(i64::from(w.second_check))
    .bind(w.updated_by.clone())
    .bind(w.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
