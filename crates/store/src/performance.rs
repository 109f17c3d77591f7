//! Each campus's performance formula (绩效方案), as the manager set it. The figures
//! the sheets score are the dashboards' (see [`crate::figures`]).

use sqlx::Row;

use crate::{Result, Store};

/// A campus's formula as stored: the method (`relative` or `target`), the target
/// method's cap, and `indicator:number` lists for the weights and targets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FormulaRow {
    pub campus: String,
    pub method: String,
    pub cap_percent: i64,
    pub weights: String,
    pub targets: String,
    pub updated_at: i64,
    pub updated_by: String,
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Formulas(pub(crate) Store);

impl Formulas {
    /// The campus's formula, if its manager set one.
    pub async fn get(&self, campus: &str) -> Result<Option<FormulaRow>> {
        let row = sqlx::query(
            "SELECT campus, method, cap_percent, weights, targets, updated_at, updated_by \
             FROM performance_formulas WHERE campus = $1",
        )
        .bind(campus.to_string())
        .fetch_optional(&self.0.read_pool())
        .await?;
        row.map(|r| {
            Ok(FormulaRow {
                campus: r.try_get(0)?,
                method: r.try_get(1)?,
                cap_percent: r.try_get(2)?,
                weights: r.try_get(3)?,
                targets: r.try_get(4)?,
                updated_at: r.try_get(5)?,
                updated_by: r.try_get(6)?,
            })
        })
        .transpose()
    }

    /// Sets the campus's formula (replacing the one before).
    pub async fn set(&self, f: &FormulaRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO performance_formulas (campus, method, cap_percent, weights, targets, updated_at, updated_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (campus) DO UPDATE SET method = excluded.method, \
             cap_percent = excluded.cap_percent, weights = excluded.weights, targets = excluded.targets, \
             updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        )
        .bind(f.campus.clone())
        .bind(f.method.clone())
        .bind(f.cap_percent)
        .bind(f.weights.clone())
        .bind(f.targets.clone())
        .bind(f.updated_at)
        .bind(f.updated_by.clone())
        .execute(&self.0.write_pool())
        .await?;
        Ok(())
    }
}
