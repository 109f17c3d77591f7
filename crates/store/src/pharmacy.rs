//! Pharmacy stock (药品库存, not health data): each campus's stores, stock by batch,
//! every change of a batch as a move with the balance after it, reorder levels,
//! purchase orders received against, transfers between stores and campuses, and the
//! pharmacist's queue of paid prescriptions.
//!
//! Stock never goes below zero: a decrement is one conditional statement
//! (`quantity + delta >= 0`), so of two dispensers of the last box exactly one
//! succeeds, and the table's CHECK constraint stands behind it. A refused rule fails
//! the whole transaction with [`StoreError::Refused`]: nothing is half-written.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::sql::{Arg, multi_insert};
use crate::{Backend, Result, Store, StoreError};

/// A store of a campus (药库, 门诊药房 …).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StockStore {
    pub campus: String,
    pub code: String,
    /// `central`, `outpatient` or `inpatient`.
    pub kind: String,
    pub name_zh: String,
    pub name_en: String,
}

/// One batch of a drug in a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub id: i64,
    pub campus: String,
    pub store: String,
    /// The drug catalogue's code.
    pub drug: String,
    pub lot: String,
    /// `YYYY-MM-DD`.
    pub expiry: String,
    /// In the drug's dispensing unit.
    pub quantity: i64,
    pub purchase_fen: i64,
    pub retail_fen: i64,
    pub supplier: Option<String>,
    pub received_at: i64,
}

/// A batch arriving in a store (received or transferred in).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBatch {
    pub campus: String,
    pub store: String,
    pub drug: String,
    pub lot: String,
    pub expiry: String,
    pub quantity: i64,
    pub purchase_fen: i64,
    pub retail_fen: i64,
    pub supplier: Option<String>,
}

/// A change of one batch's quantity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StockMove {
    pub batch: i64,
    /// Negative takes stock out; refused if the batch would fall below zero.
    pub delta: i64,
    /// `receive`, `dispense`, `return`, `transfer-out`, `transfer-in`, `stocktake`.
    pub kind: String,
    /// What moved it (`MedicationDispense/12`, `PO-3`, `T-7`).
    pub reference: Option<String>,
    pub reason: Option<String>,
    pub actor: String,
    pub at: i64,
}

/// A recorded move, with the balance after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MoveRow {
    pub id: i64,
    pub batch: i64,
    pub store: String,
    pub drug: String,
    pub delta: i64,
    pub balance: i64,
    pub kind: String,
    pub reference: Option<String>,
    pub reason: Option<String>,
    pub actor: String,
    pub at: i64,
}

/// A purchase order (采购单) and its lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurchaseOrder {
    pub campus: String,
    pub po_no: i64,
    pub store: String,
    pub supplier: String,
    /// `open`, `partial` or `received`.
    pub status: String,
    pub created_by: String,
    pub created_at: i64,
    pub lines: Vec<PurchaseLine>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurchaseLine {
    pub drug: String,
    pub ordered: i64,
    pub received: i64,
    pub purchase_fen: i64,
}

/// A transfer (调拨) of part of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub id: i64,
    pub from_campus: String,
    pub from_store: String,
    pub to_campus: String,
    pub to_store: String,
    pub drug: String,
    pub lot: String,
    pub expiry: String,
    pub shipped: i64,
    pub received: Option<i64>,
    /// `in-transit` or `received`.
    pub status: String,
    pub note: Option<String>,
    pub shipped_by: String,
    pub shipped_at: i64,
    pub received_by: Option<String>,
    pub received_at: Option<i64>,
}

/// Part of a batch sent to another store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shipment {
    pub batch: i64,
    pub quantity: i64,
    pub to_campus: String,
    pub to_store: String,
    pub note: Option<String>,
}

/// A paid prescription in the pharmacist's queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dispensing {
    /// The MedicationRequest id.
    pub request: String,
    pub campus: String,
    pub patient: String,
    pub drug: String,
    pub quantity: i64,
    pub invoice_no: i64,
    pub paid_at: i64,
    /// `waiting`, `dispensed`, `returned` or `refunded`.
    pub status: String,
    /// The MedicationDispense id, once dispensed.
    pub dispense: Option<String>,
    pub changed_by: Option<String>,
    pub changed_at: Option<i64>,
}

/// A change of the pharmacist's queue, written with the payment, the dispense or the
/// refund it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueChange {
    /// A paid prescription joins the queue.
    Add(Dispensing),
    /// Its status moves `from` → `to`; refused if it is not `from` any more.
    Status { request: String, from: String, to: String, dispense: Option<String>, by: String, at: i64 },
}

/// One line of a stocktake (盘点): the batch, the quantity the count started from,
/// and the quantity counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Count {
    pub batch: i64,
    pub book: i64,
    pub counted: i64,
}

/// A reorder level (请领线) of a drug in a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StockLevel {
    pub campus: String,
    pub store: String,
    pub drug: String,
    pub reorder_level: i64,
}

fn refused(what: impl Into<String>) -> StoreError {
    StoreError::Refused(what.into())
}

fn batch_from_row(r: &AnyRow) -> Result<Batch> {
    Ok(Batch {
        id: r.try_get("id")?,
        campus: r.try_get("campus")?,
        store: r.try_get("store")?,
        drug: r.try_get("drug")?,
        lot: r.try_get("lot")?,
        expiry: r.try_get("expiry")?,
        quantity: r.try_get("quantity")?,
        purchase_fen: r.try_get("purchase_fen")?,
        retail_fen: r.try_get("retail_fen")?,
        supplier: r.try_get("supplier")?,
        received_at: r.try_get("received_at")?,
    })
}

fn move_from_row(r: &AnyRow) -> Result<MoveRow> {
    Ok(MoveRow {
        id: r.try_get("id")?,
        batch: r.try_get("batch")?,
        store: r.try_get("store")?,
        drug: r.try_get("drug")?,
        delta: r.try_get("delta")?,
        balance: r.try_get("balance")?,
        kind: r.try_get("kind")?,
        reference: r.try_get("ref")?,
        reason: r.try_get("reason")?,
        actor: r.try_get("actor")?,
        at: r.try_get("at")?,
    })
}

fn transfer_from_row(r: &AnyRow) -> Result<Transfer> {
    Ok(Transfer {
        id: r.try_get("id")?,
        from_campus: r.try_get("from_campus")?,
        from_store: r.try_get("from_store")?,
        to_campus: r.try_get("to_campus")?,
        to_store: r.try_get("to_store")?,
        drug: r.try_get("drug")?,
        lot: r.try_get("lot")?,
        expiry: r.try_get("expiry")?,
        shipped: r.try_get("shipped")?,
        received: r.try_get("received")?,
        status: r.try_get("status")?,
        note: r.try_get("note")?,
        shipped_by: r.try_get("shipped_by")?,
        shipped_at: r.try_get("shipped_at")?,
        received_by: r.try_get("received_by")?,
        received_at: r.try_get("received_at")?,
    })
}

fn dispensing_from_row(r: &AnyRow) -> Result<Dispensing> {
    Ok(Dispensing {
        request: r.try_get("request")?,
        campus: r.try_get("campus")?,
        patient: r.try_get("patient")?,
        drug: r.try_get("drug")?,
        quantity: r.try_get("quantity")?,
        invoice_no: r.try_get("invoice_no")?,
        paid_at: r.try_get("paid_at")?,
        status: r.try_get("status")?,
        dispense: r.try_get("dispense")?,
        changed_by: r.try_get("changed_by")?,
        changed_at: r.try_get("changed_at")?,
    })
}

/// Applies one move inside `tx`: the batch's quantity changes only if it stays at or
/// above zero (else the transaction fails with [`StoreError::Refused`]); the move is
/// recorded with the balance after it.
pub(crate) async fn apply_move(tx: &mut Transaction<'static, Any>, m: &StockMove) -> Result<i64> {
    let row = sqlx::query(
        "UPDATE batches SET quantity = quantity + $1 WHERE id = $2 AND quantity + $1 >= 0 \
         RETURNING quantity, campus, store, drug",
    )
    .bind(m.delta)
    .bind(m.batch)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Err(refused(format!("quantity: batch {} has fewer than {} left", m.batch, -m.delta)));
    };
    let balance: i64 = row.try_get(0)?;
    sqlx::query(
        "INSERT INTO stock_moves (batch, campus, store, drug, delta, balance, kind, ref, reason, actor, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(m.batch)
    .bind(row.try_get::<String, _>(1)?)
    .bind(row.try_get::<String, _>(2)?)
    .bind(row.try_get::<String, _>(3)?)
    .bind(m.delta)
    .bind(balance)
    .bind(m.kind.clone())
    .bind(m.reference.clone())
    .bind(m.reason.clone())
    .bind(m.actor.clone())
    .bind(m.at)
    .execute(&mut **tx)
    .await?;
    Ok(balance)
}

/// Applies a change of the pharmacist's queue inside `tx`.
/// Adds paid prescriptions to the pharmacist's queue inside `tx`, in one statement
/// (one already queued fails the whole transaction).
pub(crate) async fn add_to_queue(
    backend: Backend,
    tx: &mut Transaction<'static, Any>,
    adds: &[&Dispensing],
) -> Result<()> {
    let rows = adds
        .iter()
        .map(|d| {
            vec![
                Arg::Text(d.request.clone()),
                Arg::Text(d.campus.clone()),
                Arg::Text(d.patient.clone()),
                Arg::Text(d.drug.clone()),
                Arg::Int(d.quantity),
                Arg::Int(d.invoice_no),
                Arg::Int(d.paid_at),
                Arg::Text(d.status.clone()),
            ]
        })
        .collect();
    let cols = ["request", "campus", "patient", "drug", "quantity", "invoice_no", "paid_at", "status"];
    for s in multi_insert("dispensing", &cols, rows, backend.max_params()) {
        match s.query(backend).execute(&mut **tx).await {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                let which =
                    if adds.len() == 1 { format!("MedicationRequest/{}", adds[0].request) } else { "one".into() };
                return Err(refused(format!("prescription: {which} is paid already")));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Changes a queued prescription's status inside `tx` (adds go through [`add_to_queue`]).
pub(crate) async fn apply_queue(tx: &mut Transaction<'static, Any>, c: &QueueChange) -> Result<()> {
    match c {
        QueueChange::Add(_) => Err(StoreError::Corrupt("queue additions are written together".into())),
        QueueChange::Status { request, from, to, dispense, by, at } => {
            let n = sqlx::query(
                "UPDATE dispensing SET status = $1, dispense = COALESCE($2, dispense), changed_by = $3, \
                 changed_at = $4 WHERE request = $5 AND status = $6",
            )
            .bind(to.clone())
            .bind(dispense.clone())
            .bind(by.clone())
            .bind(*at)
            .bind(request.clone())
            .bind(from.clone())
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if n != 1 {
                return Err(refused(format!("prescription: MedicationRequest/{request} is no longer {from}")));
            }
            Ok(())
        }
    }
}

/// Adds a batch to a store inside `tx` (or the quantity to the batch of the same lot,
/// which must have the same expiry) and records the move; returns the batch id.
async fn add_batch(
    tx: &mut Transaction<'static, Any>,
    b: &NewBatch,
    kind: &str,
    reference: &str,
    actor: &str,
    at: i64,
) -> Result<i64> {
    let existing =
        sqlx::query("SELECT id, expiry FROM batches WHERE campus = $1 AND store = $2 AND drug = $3 AND lot = $4")
            .bind(b.campus.clone())
            .bind(b.store.clone())
            .bind(b.drug.clone())
            .bind(b.lot.clone())
            .fetch_optional(&mut **tx)
            .await?;
    let id: i64 = match existing {
        Some(r) => {
            if r.try_get::<String, _>(1)? != b.expiry {
                return Err(refused(format!("lot: lot {} of {} is in stock with another expiry", b.lot, b.drug)));
            }
            r.try_get(0)?
        }
        None => sqlx::query(
            "INSERT INTO batches (campus, store, drug, lot, expiry, quantity, purchase_fen, retail_fen, supplier, \
             received_at) VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, $9) RETURNING id",
        )
        .bind(b.campus.clone())
        .bind(b.store.clone())
        .bind(b.drug.clone())
        .bind(b.lot.clone())
        .bind(b.expiry.clone())
        .bind(b.purchase_fen)
        .bind(b.retail_fen)
        .bind(b.supplier.clone())
        .bind(at)
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?,
    };
    let m = StockMove {
        batch: id,
        delta: b.quantity,
        kind: kind.into(),
        reference: Some(reference.into()),
        reason: None,
        actor: actor.into(),
        at,
    };
    apply_move(tx, &m).await?;
    Ok(id)
}

/// The pharmacy tables; from [`crate::Operations::pharmacy`].
#[derive(Clone, Debug)]
pub struct Pharmacy(pub(crate) Store);

impl Pharmacy {
    async fn begin(&self) -> Result<Transaction<'static, Any>> {
        Ok(self.0.write_pool().begin_with(self.0.backend.begin_write()).await?)
    }

    /// Adds a store or renames it.
    pub async fn put_store(&self, s: &StockStore) -> Result<()> {
        sqlx::query(
            "INSERT INTO stores (campus, code, kind, name_zh, name_en) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (campus, code) DO UPDATE SET kind = excluded.kind, name_zh = excluded.name_zh, \
             name_en = excluded.name_en",
        )
        .bind(s.campus.clone())
        .bind(s.code.clone())
        .bind(s.kind.clone())
        .bind(s.name_zh.clone())
        .bind(s.name_en.clone())
        .execute(&self.0.write_pool())
        .await?;
        Ok(())
    }

    /// Every campus's stores, by campus and code.
    pub async fn stores(&self) -> Result<Vec<StockStore>> {
        let rows = sqlx::query("SELECT campus, code, kind, name_zh, name_en FROM stores ORDER BY campus, code")
            .fetch_all(&self.0.read_pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(StockStore {
                    campus: r.try_get(0)?,
                    code: r.try_get(1)?,
                    kind: r.try_get(2)?,
                    name_zh: r.try_get(3)?,
                    name_en: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// A store's batches (those with stock unless `all`), by drug and expiry.
    pub async fn batches(&self, campus: &str, store: &str, drug: Option<&str>, all: bool) -> Result<Vec<Batch>> {
        let rows = sqlx::query(
            "SELECT * FROM batches WHERE campus = $1 AND store = $2 AND ($3 = '' OR drug = $3) \
             AND ($4 = 1 OR quantity > 0) ORDER BY drug, expiry, id",
        )
        .bind(campus.to_string())
        .bind(store.to_string())
        .bind(drug.unwrap_or_default().to_string())
        .bind(i64::from(all))
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(batch_from_row).collect()
    }

    /// The batches of a drug in a store that may be dispensed on `today`
    /// (`YYYY-MM-DD`): in stock and not expired, first expiry first.
    pub async fn dispensable(&self, campus: &str, store: &str, drug: &str, today: &str) -> Result<Vec<Batch>> {
        let rows = sqlx::query(
            "SELECT * FROM batches WHERE campus = $1 AND store = $2 AND drug = $3 AND quantity > 0 AND expiry >= $4 \
             ORDER BY expiry, id",
        )
        .bind(campus.to_string())
        .bind(store.to_string())
        .bind(drug.to_string())
        .bind(today.to_string())
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(batch_from_row).collect()
    }

    pub async fn batch(&self, id: i64) -> Result<Option<Batch>> {
        let row =
            sqlx::query("SELECT * FROM batches WHERE id = $1").bind(id).fetch_optional(&self.0.read_pool()).await?;
        row.as_ref().map(batch_from_row).transpose()
    }

    /// A batch's moves, oldest first.
    pub async fn moves(&self, batch: i64) -> Result<Vec<MoveRow>> {
        let rows = sqlx::query("SELECT * FROM stock_moves WHERE batch = $1 ORDER BY id")
            .bind(batch)
            .fetch_all(&self.0.read_pool())
            .await?;
        rows.iter().map(move_from_row).collect()
    }

    pub async fn set_level(&self, l: &StockLevel) -> Result<()> {
        sqlx::query(
            "INSERT INTO stock_levels (campus, store, drug, reorder_level) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (campus, store, drug) DO UPDATE SET reorder_level = excluded.reorder_level",
        )
        .bind(l.campus.clone())
        .bind(l.store.clone())
        .bind(l.drug.clone())
        .bind(l.reorder_level)
        .execute(&self.0.write_pool())
        .await?;
        Ok(())
    }

    /// A store's reorder levels, by drug.
    pub async fn levels(&self, campus: &str, store: &str) -> Result<Vec<StockLevel>> {
        let rows = sqlx::query(
            "SELECT campus, store, drug, reorder_level FROM stock_levels WHERE campus = $1 AND store = $2 ORDER BY drug",
        )
        .bind(campus.to_string())
        .bind(store.to_string())
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StockLevel {
                    campus: r.try_get(0)?,
                    store: r.try_get(1)?,
                    drug: r.try_get(2)?,
                    reorder_level: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Opens a purchase order under the campus's next number.
    pub async fn create_order(&self, po: &PurchaseOrder) -> Result<i64> {
        let no = self.0.next_counter(&format!("purchase-order:{}", po.campus), 1).await?;
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO purchase_orders (campus, po_no, store, supplier, status, created_by, created_at) \
             VALUES ($1, $2, $3, $4, 'open', $5, $6)",
        )
        .bind(po.campus.clone())
        .bind(no)
        .bind(po.store.clone())
        .bind(po.supplier.clone())
        .bind(po.created_by.clone())
        .bind(po.created_at)
        .execute(&mut *tx)
        .await?;
        for l in &po.lines {
            sqlx::query(
                "INSERT INTO purchase_lines (campus, po_no, drug, ordered, received, purchase_fen) \
                 VALUES ($1, $2, $3, $4, 0, $5)",
            )
            .bind(po.campus.clone())
            .bind(no)
            .bind(l.drug.clone())
            .bind(l.ordered)
            .bind(l.purchase_fen)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(no)
    }

    /// A campus's purchase orders, newest first (`open` and `partial` only unless `all`).
    pub async fn orders(&self, campus: &str, all: bool, limit: i64) -> Result<Vec<PurchaseOrder>> {
        let rows = sqlx::query(
            "SELECT po_no FROM purchase_orders WHERE campus = $1 AND ($2 = 1 OR status <> 'received') \
             ORDER BY po_no DESC LIMIT $3",
        )
        .bind(campus.to_string())
        .bind(i64::from(all))
        .bind(limit)
        .fetch_all(&self.0.read_pool())
        .await?;
        let mut out = Vec::new();
        for r in rows {
            if let Some(po) = self.order(campus, r.try_get(0)?).await? {
                out.push(po);
            }
        }
        Ok(out)
    }

    pub async fn order(&self, campus: &str, no: i64) -> Result<Option<PurchaseOrder>> {
        let Some(r) = sqlx::query("SELECT * FROM purchase_orders WHERE campus = $1 AND po_no = $2")
            .bind(campus.to_string())
            .bind(no)
            .fetch_optional(&self.0.read_pool())
            .await?
        else {
            return Ok(None);
        };
        let lines = sqlx::query(
            "SELECT drug, ordered, received, purchase_fen FROM purchase_lines WHERE campus = $1 AND po_no = $2 \
             ORDER BY drug",
        )
        .bind(campus.to_string())
        .bind(no)
        .fetch_all(&self.0.read_pool())
        .await?
        .iter()
        .map(|l| {
            Ok(PurchaseLine {
                drug: l.try_get(0)?,
                ordered: l.try_get(1)?,
                received: l.try_get(2)?,
                purchase_fen: l.try_get(3)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        Ok(Some(PurchaseOrder {
            campus: r.try_get("campus")?,
            po_no: r.try_get("po_no")?,
            store: r.try_get("store")?,
            supplier: r.try_get("supplier")?,
            status: r.try_get("status")?,
            created_by: r.try_get("created_by")?,
            created_at: r.try_get("created_at")?,
            lines,
        }))
    }

    /// Receives batches (入库) against purchase order `no` of the campus, into the
    /// order's store, in one transaction: a line may not receive more than is still
    /// open on it. Returns the batch ids.
    pub async fn receive(&self, campus: &str, no: i64, batches: &[NewBatch], actor: &str, at: i64) -> Result<Vec<i64>> {
        let mut tx = self.begin().await?;
        let reference = format!("PO-{no}");
        let mut ids = Vec::new();
        for b in batches {
            let n = sqlx::query(
                "UPDATE purchase_lines SET received = received + $1 WHERE campus = $2 AND po_no = $3 AND drug = $4 \
                 AND received + $1 <= ordered",
            )
            .bind(b.quantity)
            .bind(campus.to_string())
            .bind(no)
            .bind(b.drug.clone())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n != 1 {
                return Err(refused(format!("quantity: more of {} than is still open on order {no}", b.drug)));
            }
            ids.push(add_batch(&mut tx, b, "receive", &reference, actor, at).await?);
        }
        sqlx::query(
            "UPDATE purchase_orders SET status = CASE WHEN (SELECT COUNT(*) FROM purchase_lines l WHERE \
             l.campus = $1 AND l.po_no = $2 AND l.received < l.ordered) = 0 THEN 'received' ELSE 'partial' END \
             WHERE campus = $1 AND po_no = $2",
        )
        .bind(campus.to_string())
        .bind(no)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ids)
    }

    /// Ships `quantity` of a batch to another store (调拨出库): the stock leaves the
    /// source now and is in transit until received. Returns the transfer id.
    pub async fn ship(&self, s: &Shipment, actor: &str, at: i64) -> Result<i64> {
        let Shipment { batch, quantity, to_campus, to_store, note } = s;
        let (batch, quantity) = (*batch, *quantity);
        let mut tx = self.begin().await?;
        let Some(b) = sqlx::query("SELECT * FROM batches WHERE id = $1")
            .bind(batch)
            .fetch_optional(&mut *tx)
            .await?
            .as_ref()
            .map(batch_from_row)
            .transpose()?
        else {
            return Err(refused("batch: no such batch"));
        };
        let id: i64 = sqlx::query(
            "INSERT INTO transfers (from_campus, from_store, to_campus, to_store, drug, lot, expiry, purchase_fen, \
             retail_fen, shipped, status, note, shipped_by, shipped_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'in-transit', $11, $12, $13) RETURNING id",
        )
        .bind(b.campus.clone())
        .bind(b.store.clone())
        .bind(to_campus.clone())
        .bind(to_store.clone())
        .bind(b.drug.clone())
        .bind(b.lot.clone())
        .bind(b.expiry.clone())
        .bind(b.purchase_fen)
        .bind(b.retail_fen)
        .bind(quantity)
        .bind(note.clone())
        .bind(actor.to_string())
        .bind(at)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        let m = StockMove {
            batch,
            delta: -quantity,
            kind: "transfer-out".into(),
            reference: Some(format!("T-{id}")),
            reason: None,
            actor: actor.into(),
            at,
        };
        apply_move(&mut tx, &m).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Receives a transfer in transit with the quantity counted on arrival (at most
    /// the quantity shipped; a shortfall stays recorded on the transfer).
    pub async fn receive_transfer(&self, id: i64, counted: i64, actor: &str, at: i64) -> Result<Transfer> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "UPDATE transfers SET status = 'received', received = $1, received_by = $2, received_at = $3 \
             WHERE id = $4 AND status = 'in-transit' AND $1 <= shipped RETURNING *",
        )
        .bind(counted)
        .bind(actor.to_string())
        .bind(at)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(refused(format!("transfer: T-{id} is not in transit, or fewer were shipped")));
        };
        let t = transfer_from_row(&row)?;
        if counted > 0 {
            let prices: (i64, i64) = (row.try_get("purchase_fen")?, row.try_get("retail_fen")?);
            let b = NewBatch {
                campus: t.to_campus.clone(),
                store: t.to_store.clone(),
                drug: t.drug.clone(),
                lot: t.lot.clone(),
                expiry: t.expiry.clone(),
                quantity: counted,
                purchase_fen: prices.0,
                retail_fen: prices.1,
                supplier: None,
            };
            add_batch(&mut tx, &b, "transfer-in", &format!("T-{id}"), actor, at).await?;
        }
        tx.commit().await?;
        Ok(t)
    }

    /// Transfers from or to a campus, newest first (in transit first).
    pub async fn transfers(&self, campus: &str, limit: i64) -> Result<Vec<Transfer>> {
        let rows = sqlx::query(
            "SELECT * FROM transfers WHERE from_campus = $1 OR to_campus = $1 \
             ORDER BY CASE WHEN status = 'in-transit' THEN 0 ELSE 1 END, id DESC LIMIT $2",
        )
        .bind(campus.to_string())
        .bind(limit)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(transfer_from_row).collect()
    }

    pub async fn transfer(&self, id: i64) -> Result<Option<Transfer>> {
        let row =
            sqlx::query("SELECT * FROM transfers WHERE id = $1").bind(id).fetch_optional(&self.0.read_pool()).await?;
        row.as_ref().map(transfer_from_row).transpose()
    }

    /// Posts a stocktake (盘点): every counted batch takes its counted quantity, each
    /// variance a move with the reason, in one transaction; refused if a batch moved
    /// since the count began (its quantity is no longer the book quantity).
    pub async fn post_count(&self, counts: &[Count], reason: &str, actor: &str, at: i64) -> Result<usize> {
        let mut tx = self.begin().await?;
        let mut variances = 0;
        for c in counts.iter().filter(|c| c.counted != c.book) {
            let m = StockMove {
                batch: c.batch,
                delta: c.counted - c.book,
                kind: "stocktake".into(),
                reference: None,
                reason: Some(reason.to_string()),
                actor: actor.into(),
                at,
            };
            let n = sqlx::query("SELECT quantity FROM batches WHERE id = $1")
                .bind(c.batch)
                .fetch_optional(&mut *tx)
                .await?;
            let current: Option<i64> = n.map(|r| r.try_get(0)).transpose()?;
            if current != Some(c.book) {
                return Err(refused(format!("counted: batch {} moved since the count began", c.batch)));
            }
            apply_move(&mut tx, &m).await?;
            variances += 1;
        }
        tx.commit().await?;
        Ok(variances)
    }

    /// The pharmacist's queue of a campus with `status`, oldest payment first.
    pub async fn queue(&self, campus: &str, status: &str, limit: i64) -> Result<Vec<Dispensing>> {
        let order = if status == "waiting" { "paid_at, request" } else { "changed_at DESC, request" };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT * FROM dispensing WHERE campus = $1 AND status = $2 ORDER BY {order} LIMIT $3"
        )))
        .bind(campus.to_string())
        .bind(status.to_string())
        .bind(limit)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(dispensing_from_row).collect()
    }

    /// How many of the campus's queue have `status`.
    pub async fn queue_count(&self, campus: &str, status: &str) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM dispensing WHERE campus = $1 AND status = $2")
            .bind(campus.to_string())
            .bind(status.to_string())
            .fetch_one(&self.0.read_pool())
            .await?;
        Ok(row.try_get(0)?)
    }

    /// A prescription's place in the queue, if it was paid.
    pub async fn dispensing(&self, request: &str) -> Result<Option<Dispensing>> {
        let row = sqlx::query("SELECT * FROM dispensing WHERE request = $1")
            .bind(request.to_string())
            .fetch_optional(&self.0.read_pool())
            .await?;
        row.as_ref().map(dispensing_from_row).transpose()
    }
}
