//! The equipment tables (设备; staff data): the asset register, each asset's events,
//! and the repair requests. A step of an asset's life is one conditional update from
//! the states it may follow (so an asset is scrapped once, whoever clicks twice), with
//! its event in the same transaction; a refused step fails with
//! [`StoreError::Refused`] (`field: why`) and writes nothing.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::{Result, Store, StoreError};

/// One asset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Asset {
    pub id: i64,
    /// The asset tag (资产编号), unique in the group.
    pub tag: String,
    pub campus: String,
    /// The owning department (Organization id).
    pub department: String,
    pub name_zh: String,
    pub name_en: String,
    pub category: String,
    pub model: Option<String>,
    pub maker: Option<String>,
    pub serial: Option<String>,
    pub cost_fen: i64,
    /// `YYYY-MM-DD`.
    pub purchased_on: String,
    /// `purchased`, `in-service`, `under-repair`, `scrap-requested`, `scrapped`.
    pub state: String,
    /// The CMDB item of a networked device.
    pub ci: Option<String>,
    /// The DICOM AE title of an imaging device.
    pub ae_title: Option<String>,
    /// An analyser's identity in its results (HL7 OBX-18).
    pub equipment_id: Option<String>,
    pub pm_days: Option<i64>,
    pub pm_due: Option<String>,
    pub calibration_days: Option<i64>,
    pub calibration_due: Option<String>,
    pub changed_at: i64,
}

/// One event of an asset's life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub id: i64,
    pub asset: i64,
    pub kind: String,
    pub note: Option<String>,
    pub actor: String,
    pub at: i64,
}

/// A repair request (报修).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Repair {
    pub id: i64,
    pub asset: i64,
    pub campus: String,
    pub department: String,
    pub fault: String,
    /// `reported`, `in-progress`, `repaired`.
    pub status: String,
    pub reported_by: String,
    pub reported_at: i64,
    pub taken_by: Option<String>,
    pub taken_at: Option<i64>,
    pub repaired_by: Option<String>,
    pub repaired_at: Option<i64>,
    pub work: Option<String>,
    pub cost_fen: Option<i64>,
}

fn refused(what: impl Into<String>) -> StoreError {
    StoreError::Refused(what.into())
}

const ASSET_COLUMNS: &str = "id, tag, campus, department, name_zh, name_en, category, model, maker, serial, \
     cost_fen, purchased_on, state, ci, ae_title, pm_days, pm_due, calibration_days, calibration_due, changed_at, \
     equipment_id";

fn asset_of(r: &AnyRow) -> Result<Asset> {
    Ok(Asset {
        id: r.try_get(0)?,
        tag: r.try_get(1)?,
        campus: r.try_get(2)?,
        department: r.try_get(3)?,
        name_zh: r.try_get(4)?,
        name_en: r.try_get(5)?,
        category: r.try_get(6)?,
        model: r.try_get(7)?,
        maker: r.try_get(8)?,
        serial: r.try_get(9)?,
        cost_fen: r.try_get(10)?,
        purchased_on: r.try_get(11)?,
        state: r.try_get(12)?,
        ci: r.try_get(13)?,
        ae_title: r.try_get(14)?,
        pm_days: r.try_get(15)?,
        pm_due: r.try_get(16)?,
        calibration_days: r.try_get(17)?,
        calibration_due: r.try_get(18)?,
        changed_at: r.try_get(19)?,
        equipment_id: r.try_get(20)?,
    })
}

const REPAIR_COLUMNS: &str = "id, asset, campus, department, fault, status, reported_by, reported_at, taken_by, \
     taken_at, repaired_by, repaired_at, work, cost_fen";

fn repair_of(r: &AnyRow) -> Result<Repair> {
    Ok(Repair {
        id: r.try_get(0)?,
        asset: r.try_get(1)?,
        campus: r.try_get(2)?,
        department: r.try_get(3)?,
        fault: r.try_get(4)?,
        status: r.try_get(5)?,
        reported_by: r.try_get(6)?,
        reported_at: r.try_get(7)?,
        taken_by: r.try_get(8)?,
        taken_at: r.try_get(9)?,
        repaired_by: r.try_get(10)?,
        repaired_at: r.try_get(11)?,
        work: r.try_get(12)?,
        cost_fen: r.try_get(13)?,
    })
}

/// Who did a step, when, with what note.
#[derive(Clone, Debug)]
pub struct Done {
    pub actor: String,
    pub at: i64,
    pub note: Option<String>,
}

async fn event(tx: &mut Transaction<'static, Any>, asset: i64, kind: &str, done: &Done) -> Result<()> {
    sqlx::query("INSERT INTO equipment_events (asset, kind, note, actor, at) VALUES ($1, $2, $3, $4, $5)")
        .bind(asset)
        .bind(kind.to_string())
        .bind(done.note.clone())
        .bind(done.actor.clone())
        .bind(done.at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Moves asset `id` to state `to` inside `tx` if it is in one of `from`, else refuses
/// naming `state`.
async fn move_state(tx: &mut Transaction<'static, Any>, id: i64, from: &[&str], to: &str, at: i64) -> Result<()> {
    let list = (0..from.len()).map(|i| format!("${}", i + 4)).collect::<Vec<_>>().join(", ");
    let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE equipment_assets SET state = $1, changed_at = $2 WHERE id = $3 AND state IN ({list})"
    )))
    .bind(to.to_string())
    .bind(at)
    .bind(id);
    for f in from {
        q = q.bind(f.to_string());
    }
    if q.execute(&mut **tx).await?.rows_affected() == 0 {
        let row =
            sqlx::query("SELECT state FROM equipment_assets WHERE id = $1").bind(id).fetch_optional(&mut **tx).await?;
        return Err(match row {
            None => refused(format!("asset: no asset {id}")),
            Some(r) => refused(format!("state: the asset is {}", r.try_get::<String, _>(0)?)),
        });
    }
    Ok(())
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Equipment(pub(crate) Store);

impl Equipment {
    async fn begin(&self) -> Result<Transaction<'static, Any>> {
        Ok(self.0.write_pool().begin_with(self.0.backend.begin_write()).await?)
    }

    /// Registers an asset (its `purchase` event); a tag in use is refused.
    pub async fn add(&self, a: &Asset, done: &Done) -> Result<i64> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "INSERT INTO equipment_assets (tag, campus, department, name_zh, name_en, category, model, maker, serial, \
             cost_fen, purchased_on, state, ci, ae_title, pm_days, pm_due, calibration_days, calibration_due, \
             changed_at, equipment_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
             $17, $18, $19, $20) ON CONFLICT (tag) DO NOTHING RETURNING id",
        )
        .bind(a.tag.clone())
        .bind(a.campus.clone())
        .bind(a.department.clone())
        .bind(a.name_zh.clone())
        .bind(a.name_en.clone())
        .bind(a.category.clone())
        .bind(a.model.clone())
        .bind(a.maker.clone())
        .bind(a.serial.clone())
        .bind(a.cost_fen)
        .bind(a.purchased_on.clone())
        .bind(a.state.clone())
        .bind(a.ci.clone())
        .bind(a.ae_title.clone())
        .bind(a.pm_days)
        .bind(a.pm_due.clone())
        .bind(a.calibration_days)
        .bind(a.calibration_due.clone())
        .bind(done.at)
        .bind(a.equipment_id.clone())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(refused(format!("tag: asset tag {} is in use", a.tag)));
        };
        let id: i64 = row.try_get(0)?;
        event(&mut tx, id, "purchase", done).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// A campus's assets (every campus's with `None`), by department and tag.
    pub async fn assets(&self, campus: Option<&str>) -> Result<Vec<Asset>> {
        let of = if campus.is_some() { "WHERE campus = $1" } else { "" };
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ASSET_COLUMNS} FROM equipment_assets {of} ORDER BY campus, department, tag"
        )));
        if let Some(c) = campus {
            q = q.bind(c.to_string());
        }
        let rows = q.fetch_all(&self.0.read_pool()).await?;
        rows.iter().map(asset_of).collect()
    }

    pub async fn asset(&self, id: i64) -> Result<Option<Asset>> {
        let row =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {ASSET_COLUMNS} FROM equipment_assets WHERE id = $1")))
                .bind(id)
                .fetch_optional(&self.0.read_pool())
                .await?;
        row.as_ref().map(asset_of).transpose()
    }

    /// Takes a lifecycle step: from one of `from` to `to`, recorded as event `kind`;
    /// `dues` (maintenance, calibration) replace the due dates when given.
    pub async fn step(
        &self,
        id: i64,
        from: &[&str],
        to: &str,
        kind: &str,
        dues: (Option<String>, Option<String>),
        done: &Done,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        move_state(&mut tx, id, from, to, done.at).await?;
        if let Some(pm) = &dues.0 {
            sqlx::query("UPDATE equipment_assets SET pm_due = $1 WHERE id = $2")
                .bind(pm.clone())
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(c) = &dues.1 {
            sqlx::query("UPDATE equipment_assets SET calibration_due = $1 WHERE id = $2")
                .bind(c.clone())
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        event(&mut tx, id, kind, done).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a preventive maintenance (`pm`) or a calibration (`calibration`) done,
    /// with the next due date; refused for an asset not in service or under repair.
    pub async fn serviced(&self, id: i64, kind: &str, next_due: &str, done: &Done) -> Result<()> {
        let column = if kind == "calibration" { "calibration_due" } else { "pm_due" };
        let mut tx = self.begin().await?;
        let changed = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE equipment_assets SET {column} = $1, changed_at = $2 WHERE id = $3 \
             AND state IN ('in-service', 'under-repair')"
        )))
        .bind(next_due.to_string())
        .bind(done.at)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if changed.rows_affected() == 0 {
            return Err(refused("state: only an asset in service is maintained or calibrated"));
        }
        event(&mut tx, id, kind, done).await?;
        tx.commit().await?;
        Ok(())
    }

    /// An asset's events, oldest first.
    pub async fn events(&self, asset: i64) -> Result<Vec<Event>> {
        let rows =
            sqlx::query("SELECT id, asset, kind, note, actor, at FROM equipment_events WHERE asset = $1 ORDER BY id")
                .bind(asset)
                .fetch_all(&self.0.read_pool())
                .await?;
        rows.iter()
            .map(|r| {
                Ok(Event {
                    id: r.try_get(0)?,
                    asset: r.try_get(1)?,
                    kind: r.try_get(2)?,
                    note: r.try_get(3)?,
                    actor: r.try_get(4)?,
                    at: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// A department reports a fault (报修): refused for an asset out of service, or
    /// one with a repair open already.
    pub async fn report(&self, r: &Repair) -> Result<i64> {
        let mut tx = self.begin().await?;
        let state = sqlx::query("SELECT state FROM equipment_assets WHERE id = $1")
            .bind(r.asset)
            .fetch_optional(&mut *tx)
            .await?;
        let state: Option<String> = state.map(|s| s.try_get(0)).transpose()?;
        match state.as_deref() {
            None => return Err(refused(format!("asset: no asset {}", r.asset))),
            Some("in-service" | "under-repair") => {}
            Some(other) => return Err(refused(format!("state: the asset is {other}"))),
        }
        let row = sqlx::query(
            "INSERT INTO equipment_repairs (asset, campus, department, fault, status, reported_by, reported_at) \
             VALUES ($1, $2, $3, $4, 'reported', $5, $6) ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(r.asset)
        .bind(r.campus.clone())
        .bind(r.department.clone())
        .bind(r.fault.clone())
        .bind(r.reported_by.clone())
        .bind(r.reported_at)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(refused("asset: a repair of this asset is open already"));
        };
        let id: i64 = row.try_get(0)?;
        event(
            &mut tx,
            r.asset,
            "repair-report",
            &Done { actor: r.reported_by.clone(), at: r.reported_at, note: Some(r.fault.clone()) },
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// An engineer takes a reported repair: the asset goes under repair.
    pub async fn take(&self, id: i64, done: &Done) -> Result<Repair> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "UPDATE equipment_repairs SET status = 'in-progress', taken_by = $1, taken_at = $2 \
             WHERE id = $3 AND status = 'reported' RETURNING asset",
        )
        .bind(done.actor.clone())
        .bind(done.at)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Err(refused("repair: the repair is not waiting to be taken")) };
        let asset: i64 = row.try_get(0)?;
        move_state(&mut tx, asset, &["in-service", "under-repair"], "under-repair", done.at).await?;
        event(&mut tx, asset, "repair-take", done).await?;
        tx.commit().await?;
        self.repair(id).await?.ok_or_else(|| refused("repair: the repair is gone"))
    }

    /// The engineer finishes a repair: the asset is back in service.
    pub async fn finish(&self, id: i64, work: &str, cost_fen: Option<i64>, done: &Done) -> Result<Repair> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "UPDATE equipment_repairs SET status = 'repaired', repaired_by = $1, repaired_at = $2, work = $3, \
             cost_fen = $4 WHERE id = $5 AND status = 'in-progress' RETURNING asset",
        )
        .bind(done.actor.clone())
        .bind(done.at)
        .bind(work.to_string())
        .bind(cost_fen)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Err(refused("repair: the repair is not in progress")) };
        let asset: i64 = row.try_get(0)?;
        move_state(&mut tx, asset, &["under-repair"], "in-service", done.at).await?;
        event(&mut tx, asset, "repair-done", done).await?;
        tx.commit().await?;
        self.repair(id).await?.ok_or_else(|| refused("repair: the repair is gone"))
    }

    pub async fn repair(&self, id: i64) -> Result<Option<Repair>> {
        let row =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {REPAIR_COLUMNS} FROM equipment_repairs WHERE id = $1")))
                .bind(id)
                .fetch_optional(&self.0.read_pool())
                .await?;
        row.as_ref().map(repair_of).transpose()
    }

    /// A campus's repairs, open ones first, then newest first.
    pub async fn repairs(&self, campus: &str, limit: i64) -> Result<Vec<Repair>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {REPAIR_COLUMNS} FROM equipment_repairs WHERE campus = $1 \
             ORDER BY CASE WHEN status = 'repaired' THEN 1 ELSE 0 END, id DESC LIMIT $2"
        )))
        .bind(campus.to_string())
        .bind(limit)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(repair_of).collect()
    }
}
