//! The materials' tables (物资/耗材; staff data, but for the patient a high-value unit
//! was used on): the group's catalogue, stock by batch in each campus's warehouse and
//! departments, every change of a batch as a move with the balance after it, reorder
//! levels, department requisitions (申领), and the high-value units by unique code.
//!
//! Stock never goes below zero: a decrement is one conditional statement
//! (`quantity + delta >= 0`), so of two issues of the last box exactly one succeeds,
//! and the table's CHECK constraint stands behind it. A refused rule fails the whole
//! transaction with [`StoreError::Refused`] (`field: why`): nothing is half-written.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::{Result, Store, StoreError};

/// The location of a campus's warehouse (物资库); a department's stock is at its
/// Organization id.
pub const WAREHOUSE: &str = "warehouse";

/// One item of the catalogue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    /// The unit counted (个, 包, 盒).
    pub unit: String,
    /// `general`, `sterile` (batches carry an expiry) or `high-value` (each unit by
    /// its unique code, charged to the patient it is used on).
    pub kind: String,
    pub active: bool,
}

/// One batch at one place.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub id: i64,
    pub campus: String,
    /// [`WAREHOUSE`] or a department.
    pub location: String,
    pub item: String,
    pub lot: String,
    /// `YYYY-MM-DD`.
    pub expiry: Option<String>,
    pub quantity: i64,
    /// The unit's purchase cost.
    pub cost_fen: i64,
    pub supplier: Option<String>,
    pub received_at: i64,
}

/// One change of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    pub id: i64,
    pub batch: i64,
    pub campus: String,
    pub location: String,
    pub item: String,
    pub delta: i64,
    pub balance: i64,
    /// `receive`, `issue-out`, `issue-in`, `stocktake`, `use`.
    pub kind: String,
    pub reference: Option<String>,
    pub reason: Option<String>,
    pub actor: String,
    pub at: i64,
}

/// A department's requisition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requisition {
    pub id: i64,
    pub campus: String,
    pub department: String,
    /// `requested`, `approved`, `rejected`, `issued`.
    pub status: String,
    pub note: Option<String>,
    pub requested_by: String,
    pub requested_at: i64,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub reason: Option<String>,
    pub issued_by: Option<String>,
    pub issued_at: Option<i64>,
    pub lines: Vec<Line>,
}

/// One item of a requisition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub item: String,
    pub requested: i64,
    pub approved: Option<i64>,
    pub issued: Option<i64>,
}

/// One high-value unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    pub udi: String,
    pub item: String,
    /// The batch it is in now (the warehouse's, then a department's).
    pub batch: i64,
    pub campus: String,
    pub location: String,
    /// `in-stock` or `used`.
    pub status: String,
    pub patient: Option<String>,
    pub used_at: Option<i64>,
    pub used_by: Option<String>,
    /// The ChargeItem that charged it.
    pub charge: Option<String>,
}

fn refused(what: impl Into<String>) -> StoreError {
    StoreError::Refused(what.into())
}

fn item_of(r: &AnyRow) -> Result<Item> {
    Ok(Item {
        code: r.try_get(0)?,
        name_zh: r.try_get(1)?,
        name_en: r.try_get(2)?,
        unit: r.try_get(3)?,
        kind: r.try_get(4)?,
        active: r.try_get::<i64, _>(5)? != 0,
    })
}

const BATCH_COLUMNS: &str = "id, campus, location, item, lot, expiry, quantity, cost_fen, supplier, received_at";

fn batch_of(r: &AnyRow) -> Result<Batch> {
    Ok(Batch {
        id: r.try_get(0)?,
        campus: r.try_get(1)?,
        location: r.try_get(2)?,
        item: r.try_get(3)?,
        lot: r.try_get(4)?,
        expiry: r.try_get(5)?,
        quantity: r.try_get(6)?,
        cost_fen: r.try_get(7)?,
        supplier: r.try_get(8)?,
        received_at: r.try_get(9)?,
    })
}

const REQUISITION_COLUMNS: &str = "id, campus, department, status, note, requested_by, requested_at, decided_by, \
                                   decided_at, reason, issued_by, issued_at";

fn requisition_of(r: &AnyRow) -> Result<Requisition> {
    Ok(Requisition {
        id: r.try_get(0)?,
        campus: r.try_get(1)?,
        department: r.try_get(2)?,
        status: r.try_get(3)?,
        note: r.try_get(4)?,
        requested_by: r.try_get(5)?,
        requested_at: r.try_get(6)?,
        decided_by: r.try_get(7)?,
        decided_at: r.try_get(8)?,
        reason: r.try_get(9)?,
        issued_by: r.try_get(10)?,
        issued_at: r.try_get(11)?,
        lines: Vec::new(),
    })
}

const UNIT_COLUMNS: &str = "u.udi, u.item, u.batch, b.campus, b.location, u.status, u.patient, u.used_at, \
                            u.used_by, u.charge";

fn unit_of(r: &AnyRow) -> Result<Unit> {
    Ok(Unit {
        udi: r.try_get(0)?,
        item: r.try_get(1)?,
        batch: r.try_get(2)?,
        campus: r.try_get(3)?,
        location: r.try_get(4)?,
        status: r.try_get(5)?,
        patient: r.try_get(6)?,
        used_at: r.try_get(7)?,
        used_by: r.try_get(8)?,
        charge: r.try_get(9)?,
    })
}

/// Who changed stock, when, and why (a requisition, a stocktake's reason).
#[derive(Clone, Debug)]
pub struct Stamp {
    pub actor: String,
    pub at: i64,
    pub reference: Option<String>,
    pub reason: Option<String>,
}

/// Changes batch `batch` by `delta` inside `tx` unless that takes it below zero (then
/// the transaction is refused, naming `quantity`), and records the move; returns the
/// balance.
async fn apply(tx: &mut Transaction<'static, Any>, batch: i64, delta: i64, kind: &str, stamp: &Stamp) -> Result<i64> {
    let row = sqlx::query(
        "UPDATE material_batches SET quantity = quantity + $1 WHERE id = $2 AND quantity + $1 >= 0 \
         RETURNING quantity, campus, location, item",
    )
    .bind(delta)
    .bind(batch)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Err(refused(format!("quantity: batch {batch} has fewer than {} left", -delta)));
    };
    let balance: i64 = row.try_get(0)?;
    sqlx::query(
        "INSERT INTO material_moves (batch, campus, location, item, delta, balance, kind, ref, reason, actor, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(batch)
    .bind(row.try_get::<String, _>(1)?)
    .bind(row.try_get::<String, _>(2)?)
    .bind(row.try_get::<String, _>(3)?)
    .bind(delta)
    .bind(balance)
    .bind(kind.to_string())
    .bind(stamp.reference.clone())
    .bind(stamp.reason.clone())
    .bind(stamp.actor.clone())
    .bind(stamp.at)
    .execute(&mut **tx)
    .await?;
    Ok(balance)
}

/// The batch of `b`'s item and lot at `b`'s place, made (empty) when it is not there;
/// a lot already there with another expiry is refused.
async fn batch_at(tx: &mut Transaction<'static, Any>, b: &Batch) -> Result<i64> {
    sqlx::query(
        "INSERT INTO material_batches (campus, location, item, lot, expiry, quantity, cost_fen, supplier, \
         received_at) VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8) \
         ON CONFLICT (campus, location, item, lot) DO NOTHING",
    )
    .bind(b.campus.clone())
    .bind(b.location.clone())
    .bind(b.item.clone())
    .bind(b.lot.clone())
    .bind(b.expiry.clone())
    .bind(b.cost_fen)
    .bind(b.supplier.clone())
    .bind(b.received_at)
    .execute(&mut **tx)
    .await?;
    let row = sqlx::query(
        "SELECT id, expiry FROM material_batches WHERE campus = $1 AND location = $2 AND item = $3 AND lot = $4",
    )
    .bind(b.campus.clone())
    .bind(b.location.clone())
    .bind(b.item.clone())
    .bind(b.lot.clone())
    .fetch_one(&mut **tx)
    .await?;
    let expiry: Option<String> = row.try_get(1)?;
    if expiry != b.expiry {
        return Err(refused(format!(
            "lot: lot {} is here already with expiry {}",
            b.lot,
            expiry.as_deref().unwrap_or("none")
        )));
    }
    Ok(row.try_get(0)?)
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Materials(pub(crate) Store);

impl Materials {
    async fn begin(&self) -> Result<Transaction<'static, Any>> {
        Ok(self.0.write_pool().begin_with(self.0.backend.begin_write()).await?)
    }

    /// Adds an item to the catalogue or changes it.
    pub async fn put_item(&self, i: &Item) -> Result<()> {
        sqlx::query(
            "INSERT INTO material_items (code, name_zh, name_en, unit, kind, active) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (code) DO UPDATE SET name_zh = excluded.name_zh, name_en = excluded.name_en, \
             unit = excluded.unit, kind = excluded.kind, active = excluded.active",
        )
        .bind(i.code.clone())
        .bind(i.name_zh.clone())
        .bind(i.name_en.clone())
        .bind(i.unit.clone())
        .bind(i.kind.clone())
        .bind(i64::from(i.active))
        .execute(&self.0.write_pool())
        .await?;
        Ok(())
    }

    /// The catalogue, by code.
    pub async fn items(&self) -> Result<Vec<Item>> {
        let rows = sqlx::query("SELECT code, name_zh, name_en, unit, kind, active FROM material_items ORDER BY code")
            .fetch_all(&self.0.read_pool())
            .await?;
        rows.iter().map(item_of).collect()
    }

    /// Sets an item's reorder level at a campus's warehouse (0 removes it).
    pub async fn set_level(&self, campus: &str, item: &str, level: i64) -> Result<()> {
        if level == 0 {
            sqlx::query("DELETE FROM material_levels WHERE campus = $1 AND item = $2")
                .bind(campus.to_string())
                .bind(item.to_string())
                .execute(&self.0.write_pool())
                .await?;
        } else {
            sqlx::query(
                "INSERT INTO material_levels (campus, item, reorder_level) VALUES ($1, $2, $3) \
                 ON CONFLICT (campus, item) DO UPDATE SET reorder_level = excluded.reorder_level",
            )
            .bind(campus.to_string())
            .bind(item.to_string())
            .bind(level)
            .execute(&self.0.write_pool())
            .await?;
        }
        Ok(())
    }

    /// A campus's reorder levels: `(item, level)`.
    pub async fn levels(&self, campus: &str) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT item, reorder_level FROM material_levels WHERE campus = $1 ORDER BY item")
            .bind(campus.to_string())
            .fetch_all(&self.0.read_pool())
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// Receives `b.quantity` of a batch into `b`'s place (a new lot, or more of one
    /// already there with the same expiry), with the unique codes of its units for a
    /// high-value item (as many as the quantity); returns the batch.
    pub async fn receive(&self, b: &Batch, units: &[String], stamp: &Stamp) -> Result<i64> {
        let mut tx = self.begin().await?;
        let id = batch_at(&mut tx, b).await?;
        apply(&mut tx, id, b.quantity, "receive", stamp).await?;
        for udi in units {
            let added = sqlx::query(
                "INSERT INTO material_units (udi, item, batch, status) VALUES ($1, $2, $3, 'in-stock') \
                 ON CONFLICT (udi) DO NOTHING",
            )
            .bind(udi.clone())
            .bind(b.item.clone())
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if added.rows_affected() == 0 {
                return Err(refused(format!("units: unique code {udi} is registered already")));
            }
        }
        tx.commit().await?;
        Ok(id)
    }

    /// The batches of a campus (every place) still holding stock, by item and expiry.
    pub async fn batches(&self, campus: &str) -> Result<Vec<Batch>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {BATCH_COLUMNS} FROM material_batches WHERE campus = $1 AND quantity > 0 \
             ORDER BY location, item, COALESCE(expiry, '9999-12-31'), id"
        )))
        .bind(campus.to_string())
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(batch_of).collect()
    }

    /// One batch.
    pub async fn batch(&self, id: i64) -> Result<Option<Batch>> {
        let row =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {BATCH_COLUMNS} FROM material_batches WHERE id = $1")))
                .bind(id)
                .fetch_optional(&self.0.read_pool())
                .await?;
        row.as_ref().map(batch_of).transpose()
    }

    /// The latest moves at a place of a campus, newest first.
    pub async fn moves(&self, campus: &str, location: Option<&str>, limit: i64) -> Result<Vec<Move>> {
        let place = if location.is_some() { "AND location = $3" } else { "" };
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id, batch, campus, location, item, delta, balance, kind, ref, reason, actor, at \
             FROM material_moves WHERE campus = $1 {place} ORDER BY id DESC LIMIT $2"
        )))
        .bind(campus.to_string())
        .bind(limit);
        if let Some(l) = location {
            q = q.bind(l.to_string());
        }
        let rows = q.fetch_all(&self.0.read_pool()).await?;
        rows.iter()
            .map(|r| {
                Ok(Move {
                    id: r.try_get(0)?,
                    batch: r.try_get(1)?,
                    campus: r.try_get(2)?,
                    location: r.try_get(3)?,
                    item: r.try_get(4)?,
                    delta: r.try_get(5)?,
                    balance: r.try_get(6)?,
                    kind: r.try_get(7)?,
                    reference: r.try_get(8)?,
                    reason: r.try_get(9)?,
                    actor: r.try_get(10)?,
                    at: r.try_get(11)?,
                })
            })
            .collect()
    }

    /// Adds a requisition with its lines; returns its id.
    pub async fn request(&self, r: &Requisition) -> Result<i64> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "INSERT INTO material_requisitions (campus, department, status, note, requested_by, requested_at) \
             VALUES ($1, $2, 'requested', $3, $4, $5) RETURNING id",
        )
        .bind(r.campus.clone())
        .bind(r.department.clone())
        .bind(r.note.clone())
        .bind(r.requested_by.clone())
        .bind(r.requested_at)
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get(0)?;
        for l in &r.lines {
            sqlx::query("INSERT INTO material_requisition_lines (requisition, item, requested) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(l.item.clone())
                .bind(l.requested)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// A campus's requisitions (of one department, when given), newest first, with
    /// their lines.
    pub async fn requisitions(&self, campus: &str, department: Option<&str>, limit: i64) -> Result<Vec<Requisition>> {
        let of = if department.is_some() { "AND department = $3" } else { "" };
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {REQUISITION_COLUMNS} FROM material_requisitions WHERE campus = $1 {of} ORDER BY id DESC LIMIT $2"
        )))
        .bind(campus.to_string())
        .bind(limit);
        if let Some(d) = department {
            q = q.bind(d.to_string());
        }
        let rows = q.fetch_all(&self.0.read_pool()).await?;
        let mut out = rows.iter().map(requisition_of).collect::<Result<Vec<_>>>()?;
        if let (Some(first), Some(last)) = (out.last().map(|r| r.id), out.first().map(|r| r.id)) {
            let lines = sqlx::query(
                "SELECT requisition, item, requested, approved, issued FROM material_requisition_lines \
                 WHERE requisition >= $1 AND requisition <= $2 AND requisition IN \
                 (SELECT id FROM material_requisitions WHERE campus = $3) ORDER BY requisition, item",
            )
            .bind(first)
            .bind(last)
            .bind(campus.to_string())
            .fetch_all(&self.0.read_pool())
            .await?;
            for l in &lines {
                let id: i64 = l.try_get(0)?;
                if let Some(r) = out.iter_mut().find(|r| r.id == id) {
                    r.lines.push(line_of(l)?);
                }
            }
        }
        Ok(out)
    }

    /// One requisition with its lines.
    pub async fn requisition(&self, id: i64) -> Result<Option<Requisition>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {REQUISITION_COLUMNS} FROM material_requisitions WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.0.read_pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut r = requisition_of(&row)?;
        let lines = sqlx::query(
            "SELECT requisition, item, requested, approved, issued FROM material_requisition_lines \
             WHERE requisition = $1 ORDER BY item",
        )
        .bind(id)
        .fetch_all(&self.0.read_pool())
        .await?;
        r.lines = lines.iter().map(line_of).collect::<Result<_>>()?;
        Ok(Some(r))
    }

    /// Approves a waiting requisition with the quantities given per item (an item
    /// not given is approved as requested), or rejects it (`approved` `None`) with
    /// the reason.
    pub async fn decide(
        &self,
        id: i64,
        approved: Option<&[(String, i64)]>,
        reason: Option<&str>,
        actor: &str,
        at: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let status = if approved.is_some() { "approved" } else { "rejected" };
        let done = sqlx::query(
            "UPDATE material_requisitions SET status = $1, decided_by = $2, decided_at = $3, reason = $4 \
             WHERE id = $5 AND status = 'requested'",
        )
        .bind(status)
        .bind(actor.to_string())
        .bind(at)
        .bind(reason.map(str::to_string))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(refused(format!("requisition: requisition {id} is not waiting for a decision")));
        }
        if let Some(approved) = approved {
            sqlx::query("UPDATE material_requisition_lines SET approved = requested WHERE requisition = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            for (item, n) in approved {
                sqlx::query(
                    "UPDATE material_requisition_lines SET approved = $1 WHERE requisition = $2 AND item = $3 \
                     AND $1 <= requested",
                )
                .bind(*n)
                .bind(id)
                .bind(item.clone())
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Issues an approved requisition from its campus's warehouse to the department,
    /// first-expiring first and never an expired batch (`today`, `YYYY-MM-DD`): each
    /// batch taken moves out of the warehouse and into the department's batch of the
    /// same lot, with the units of a high-value item. Refused as a whole (naming
    /// `quantity`) when the warehouse holds less than approved.
    pub async fn issue(&self, id: i64, today: &str, stamp: &Stamp) -> Result<Requisition> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE material_requisitions SET status = 'issued', issued_by = $1, issued_at = $2 \
             WHERE id = $3 AND status = 'approved' RETURNING campus, department",
        )
        .bind(stamp.actor.clone())
        .bind(stamp.at)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(done) = done else {
            return Err(refused(format!("requisition: requisition {id} is not approved and waiting to be issued")));
        };
        let (campus, department): (String, String) = (done.try_get(0)?, done.try_get(1)?);
        let lines = sqlx::query(
            "SELECT requisition, item, requested, approved, issued FROM material_requisition_lines \
             WHERE requisition = $1 ORDER BY item",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        let lines = lines.iter().map(line_of).collect::<Result<Vec<_>>>()?;
        for line in &lines {
            let wanted = line.approved.unwrap_or(line.requested);
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {BATCH_COLUMNS} FROM material_batches WHERE campus = $1 AND location = $2 AND item = $3 \
                 AND quantity > 0 AND (expiry IS NULL OR expiry >= $4) ORDER BY COALESCE(expiry, '9999-12-31'), id"
            )))
            .bind(campus.clone())
            .bind(WAREHOUSE)
            .bind(line.item.clone())
            .bind(today.to_string())
            .fetch_all(&mut *tx)
            .await?;
            let batches = rows.iter().map(batch_of).collect::<Result<Vec<_>>>()?;
            let held: i64 = batches.iter().map(|b| b.quantity).sum();
            if held < wanted {
                return Err(refused(format!(
                    "quantity: {}: {wanted} approved, {held} usable in the warehouse",
                    line.item
                )));
            }
            let mut left = wanted;
            for b in batches {
                if left == 0 {
                    break;
                }
                let take = left.min(b.quantity);
                left -= take;
                apply(&mut tx, b.id, -take, "issue-out", stamp).await?;
                let here = Batch { location: department.clone(), received_at: stamp.at, ..b.clone() };
                let to = batch_at(&mut tx, &here).await?;
                apply(&mut tx, to, take, "issue-in", stamp).await?;
                sqlx::query(
                    "UPDATE material_units SET batch = $1 WHERE udi IN (SELECT udi FROM material_units \
                     WHERE batch = $2 AND status = 'in-stock' ORDER BY udi LIMIT $3)",
                )
                .bind(to)
                .bind(b.id)
                .bind(take)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("UPDATE material_requisition_lines SET issued = $1 WHERE requisition = $2 AND item = $3")
                .bind(wanted)
                .bind(id)
                .bind(line.item.clone())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.requisition(id).await?.ok_or_else(|| refused(format!("requisition: requisition {id} is gone")))
    }

    /// Posts a stocktake (盘点) at one place: each counted batch `(id, counted)` is
    /// set to its count by a move with the reason; a batch of another place is
    /// refused. Returns the moves' deltas, batch by batch.
    pub async fn stocktake(
        &self,
        campus: &str,
        location: &str,
        counts: &[(i64, i64)],
        stamp: &Stamp,
    ) -> Result<Vec<(i64, i64)>> {
        let mut tx = self.begin().await?;
        let mut out = Vec::new();
        for &(batch, counted) in counts {
            if counted < 0 {
                return Err(refused(format!("counted: batch {batch} counted below zero")));
            }
            let row =
                sqlx::query("SELECT quantity FROM material_batches WHERE id = $1 AND campus = $2 AND location = $3")
                    .bind(batch)
                    .bind(campus.to_string())
                    .bind(location.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(row) = row else {
                return Err(refused(format!("batch: batch {batch} is not held here")));
            };
            let book: i64 = row.try_get(0)?;
            if counted != book {
                apply(&mut tx, batch, counted - book, "stocktake", stamp).await?;
            }
            out.push((batch, counted - book));
        }
        tx.commit().await?;
        Ok(out)
    }

    /// One high-value unit.
    pub async fn unit(&self, udi: &str) -> Result<Option<Unit>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {UNIT_COLUMNS} FROM material_units u JOIN material_batches b ON b.id = u.batch WHERE u.udi = $1"
        )))
        .bind(udi.to_string())
        .fetch_optional(&self.0.read_pool())
        .await?;
        row.as_ref().map(unit_of).transpose()
    }

    /// The units used at a campus, newest first.
    pub async fn used_units(&self, campus: &str, limit: i64) -> Result<Vec<Unit>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {UNIT_COLUMNS} FROM material_units u JOIN material_batches b ON b.id = u.batch \
             WHERE b.campus = $1 AND u.status = 'used' ORDER BY u.used_at DESC, u.udi LIMIT $2"
        )))
        .bind(campus.to_string())
        .bind(limit)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(unit_of).collect()
    }

    /// The used units not charged yet (oldest first).
    pub async fn uncharged(&self, limit: i64) -> Result<Vec<Unit>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {UNIT_COLUMNS} FROM material_units u JOIN material_batches b ON b.id = u.batch \
             WHERE u.status = 'used' AND u.charge IS NULL ORDER BY u.used_at, u.udi LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(unit_of).collect()
    }

    /// Records that unit `udi`, in stock at department `location`, was used on
    /// `patient`: the unit leaves its batch by a `use` move. Refused (naming `udi`)
    /// when the unit is unknown, used already, or held elsewhere.
    pub async fn use_unit(&self, udi: &str, location: &str, patient: &str, stamp: &Stamp) -> Result<Unit> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "UPDATE material_units SET status = 'used', patient = $1, used_at = $2, used_by = $3 \
             WHERE udi = $4 AND status = 'in-stock' \
             AND batch IN (SELECT id FROM material_batches WHERE location = $5) RETURNING batch",
        )
        .bind(patient.to_string())
        .bind(stamp.at)
        .bind(stamp.actor.clone())
        .bind(udi.to_string())
        .bind(location.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            let why = match self.unit(udi).await? {
                None => format!("udi: no high-value unit has the code {udi}"),
                Some(u) if u.status == "used" => format!("udi: unit {udi} was used already"),
                Some(_) => format!("udi: unit {udi} is not in this department's stock"),
            };
            return Err(refused(why));
        };
        let batch: i64 = row.try_get(0)?;
        apply(&mut tx, batch, -1, "use", stamp).await?;
        tx.commit().await?;
        self.unit(udi).await?.ok_or_else(|| refused(format!("udi: unit {udi} is gone")))
    }

    /// Records the ChargeItem that charged a used unit.
    pub async fn set_charge(&self, udi: &str, charge: &str) -> Result<()> {
        sqlx::query("UPDATE material_units SET charge = $1 WHERE udi = $2 AND charge IS NULL")
            .bind(charge.to_string())
            .bind(udi.to_string())
            .execute(&self.0.write_pool())
            .await?;
        Ok(())
    }
}

fn line_of(r: &AnyRow) -> Result<Line> {
    Ok(Line { item: r.try_get(1)?, requested: r.try_get(2)?, approved: r.try_get(3)?, issued: r.try_get(4)? })
}
