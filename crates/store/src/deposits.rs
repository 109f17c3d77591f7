//! Deposits (预交金) of inpatient stays: one row per amount paid in, paid back or used
//! by the final settlement, numbered per campus without gaps as receipts, and each
//! stay's balance. Written through [`crate::messages::SideWrite::Deposit`], in the
//! transaction of its audit record (and, at settlement, of the invoice it pays): the
//! balance never goes below zero, a number taken meanwhile fails the whole
//! transaction (the caller takes the next one).

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::{Result, Store, StoreError};

/// An amount to record: positive paid in, negative paid back or used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDeposit {
    pub campus: String,
    /// The campus's next receipt number (see [`Deposits::last_receipt_no`]).
    pub receipt_no: i64,
    /// The stay (an Encounter id).
    pub stay: String,
    pub patient: String,
    /// `deposit`, `refund` or `settlement`.
    pub kind: String,
    pub amount_fen: i64,
    /// `cash`, `card`, `wechat`, `alipay` (a settlement: `deposit`).
    pub method: String,
    pub reference: Option<String>,
    pub cashier: String,
    pub at: i64,
    pub note: Option<String>,
}

/// A recorded amount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deposit {
    pub id: i64,
    pub entry: NewDeposit,
}

const COLUMNS: &str = "id, campus, receipt_no, stay, patient, kind, amount_fen, method, reference, cashier, at, note";

fn of(r: &AnyRow) -> Result<Deposit> {
    Ok(Deposit {
        id: r.try_get(0)?,
        entry: NewDeposit {
            campus: r.try_get(1)?,
            receipt_no: r.try_get(2)?,
            stay: r.try_get(3)?,
            patient: r.try_get(4)?,
            kind: r.try_get(5)?,
            amount_fen: r.try_get(6)?,
            method: r.try_get(7)?,
            reference: r.try_get(8)?,
            cashier: r.try_get(9)?,
            at: r.try_get(10)?,
            note: r.try_get(11)?,
        },
    })
}

/// Writes `d` inside `tx`: the stay's balance moved (refused below zero), then the row
/// under its receipt number (the campus's last one plus one, or the transaction fails
/// with [`StoreError::AlreadyExists`]).
pub(crate) async fn apply(tx: &mut Transaction<'static, Any>, d: &NewDeposit) -> Result<()> {
    sqlx::query("INSERT INTO deposit_balances (stay, balance_fen) VALUES ($1, 0) ON CONFLICT (stay) DO NOTHING")
        .bind(d.stay.clone())
        .execute(&mut **tx)
        .await?;
    // The row is locked until the transaction ends: concurrent amounts of one stay
    // are applied one after the other, each against the balance the last one left.
    let moved = sqlx::query(
        "UPDATE deposit_balances SET balance_fen = balance_fen + $1 WHERE stay = $2 AND balance_fen + $1 >= 0",
    )
    .bind(d.amount_fen)
    .bind(d.stay.clone())
    .execute(&mut **tx)
    .await?;
    if moved.rows_affected() != 1 {
        return Err(StoreError::Refused(format!(
            "amount: more than the deposit balance of the stay ({} fen asked)",
            -d.amount_fen
        )));
    }
    let taken =
        || StoreError::AlreadyExists { resource_type: "deposit".into(), id: format!("{}/{}", d.campus, d.receipt_no) };
    let last: Option<i64> = sqlx::query("SELECT MAX(receipt_no) FROM deposits WHERE campus = $1")
        .bind(d.campus.clone())
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
    if last.unwrap_or(0) != d.receipt_no - 1 {
        return Err(taken());
    }
    let inserted = sqlx::query(
        "INSERT INTO deposits (campus, receipt_no, stay, patient, kind, amount_fen, method, reference, cashier, at, note) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(d.campus.clone())
    .bind(d.receipt_no)
    .bind(d.stay.clone())
    .bind(d.patient.clone())
    .bind(d.kind.clone())
    .bind(d.amount_fen)
    .bind(d.method.clone())
    .bind(d.reference.clone())
    .bind(d.cashier.clone())
    .bind(d.at)
    .bind(d.note.clone())
    .execute(&mut **tx)
    .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(taken()),
        Err(e) => Err(e.into()),
    }
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Deposits(pub(crate) Store);

impl Deposits {
    /// The campus's last receipt number (0 before the first).
    pub async fn last_receipt_no(&self, campus: &str) -> Result<i64> {
        let last: Option<i64> = sqlx::query("SELECT MAX(receipt_no) FROM deposits WHERE campus = $1")
            .bind(campus.to_string())
            .fetch_one(&self.0.write_pool())
            .await?
            .try_get(0)?;
        Ok(last.unwrap_or(0))
    }

    /// A stay's amounts, oldest first.
    pub async fn of_stay(&self, stay: &str) -> Result<Vec<Deposit>> {
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM deposits WHERE stay = $1 ORDER BY id")))
                .bind(stay.to_string())
                .fetch_all(&self.0.read_pool())
                .await?;
        rows.iter().map(of).collect()
    }

    /// One receipt.
    pub async fn receipt(&self, campus: &str, no: i64) -> Result<Option<Deposit>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM deposits WHERE campus = $1 AND receipt_no = $2"
        )))
        .bind(campus.to_string())
        .bind(no)
        .fetch_optional(&self.0.read_pool())
        .await?;
        row.as_ref().map(of).transpose()
    }

    /// The balances of `stays` (a stay without deposits is left out).
    pub async fn balances(&self, stays: &[&str]) -> Result<std::collections::HashMap<String, i64>> {
        let mut out = std::collections::HashMap::new();
        for chunk in stays.chunks(500) {
            let mut sql = crate::sql::Sql::new("SELECT stay, balance_fen FROM deposit_balances WHERE ");
            sql.push_in("stay", chunk);
            for row in sql.query(self.0.backend).fetch_all(&self.0.read_pool()).await? {
                out.insert(row.try_get(0)?, row.try_get(1)?);
            }
        }
        Ok(out)
    }
}
