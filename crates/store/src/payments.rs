//! The cashier's payments (not health data): one row per invoice, numbered per
//! campus without gaps. The row is written in the same transaction as the FHIR
//! Invoice and the charges it settles ([`crate::messages::SideWrite::Payment`]).

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::sql::{Arg, Sql, multi_insert};
use crate::{Backend, Result, Store, StoreError};

/// A payment to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPayment {
    pub campus: String,
    pub invoice_no: i64,
    pub invoice_id: String,
    pub patient: String,
    /// `cash`, `card`, `wechat` or `alipay`.
    pub method: String,
    pub amount_fen: i64,
    /// Cash handed over (the amount itself for other methods).
    pub tendered_fen: i64,
    /// The card slip's or the mobile payment's transaction reference.
    pub reference: Option<String>,
    pub cashier: String,
    pub paid_at: i64,
    /// For a refund (a red-letter invoice): the invoice number it refunds, and why.
    pub refund_of: Option<i64>,
    pub reason: Option<String>,
    /// What it paid, charge by charge (written with it; not read back with it).
    pub lines: Vec<PaymentLine>,
}

/// One charge of a payment, for the revenue reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentLine {
    pub charge: String,
    pub category: String,
    /// The department (Organization id) the charge counts for.
    pub department: Option<String>,
    /// Negative on a red-letter invoice.
    pub amount_fen: i64,
    /// `YYYY-MM-DD` of the payment (Beijing).
    pub day: String,
}

/// A revenue figure: a key (day, department, category, campus or method), its total
/// and how many charges made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revenue {
    pub key: String,
    pub amount_fen: i64,
    pub lines: i64,
}

/// What a revenue report groups by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevenueBy {
    Day,
    Department,
    Category,
    Campus,
    Method,
}

impl RevenueBy {
    fn column(self) -> &'static str {
        match self {
            RevenueBy::Day => "day",
            RevenueBy::Department => "COALESCE(department, '')",
            RevenueBy::Category => "category",
            RevenueBy::Campus => "campus",
            RevenueBy::Method => "method",
        }
    }
}

/// Writes payments inside `tx` (a group commit brings several), each only after its
/// predecessor: numbers are taken in order, so a payment that failed cannot leave a
/// gap behind later ones (they fail and take new numbers too). A number taken
/// already fails the whole transaction with [`StoreError::AlreadyExists`].
pub(crate) async fn insert_all(
    backend: Backend,
    tx: &mut Transaction<'static, Any>,
    all: &[&NewPayment],
) -> Result<()> {
    if all.is_empty() {
        return Ok(());
    }
    let taken = |p: &NewPayment| StoreError::AlreadyExists {
        resource_type: "payment".into(),
        id: format!("{}/{}", p.campus, p.invoice_no),
    };
    // Per campus, the numbers follow the last one written, in the order given.
    let mut campuses: Vec<&str> = all.iter().map(|p| p.campus.as_str()).collect();
    campuses.sort_unstable();
    campuses.dedup();
    let mut sql = Sql::new("SELECT campus, MAX(invoice_no) FROM payments WHERE ");
    sql.push_in("campus", &campuses);
    sql.push(" GROUP BY campus");
    let mut last: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    for row in sql.query(backend).fetch_all(&mut **tx).await? {
        last.insert(row.try_get(0)?, row.try_get(1)?);
    }
    for p in all {
        let prev = last.entry(p.campus.clone()).or_insert(0);
        if *prev != p.invoice_no - 1 {
            return Err(taken(p));
        }
        *prev = p.invoice_no;
    }
    let rows = all
        .iter()
        .map(|p| {
            vec![
                Arg::Text(p.campus.clone()),
                Arg::Int(p.invoice_no),
                Arg::Text(p.invoice_id.clone()),
                Arg::Text(p.patient.clone()),
                Arg::Text(p.method.clone()),
                Arg::Int(p.amount_fen),
                Arg::Int(p.tendered_fen),
                Arg::OptText(p.reference.clone()),
                Arg::Text(p.cashier.clone()),
                Arg::Int(p.paid_at),
                Arg::OptInt(p.refund_of),
                Arg::OptText(p.reason.clone()),
            ]
        })
        .collect();
    let cols = [
        "campus",
        "invoice_no",
        "invoice_id",
        "patient",
        "method",
        "amount_fen",
        "tendered_fen",
        "reference",
        "cashier",
        "paid_at",
        "refund_of",
        "reason",
    ];
    let mut statements = multi_insert("payments", &cols, rows, backend.max_params());
    let lines = all
        .iter()
        .flat_map(|p| {
            p.lines.iter().map(|l| {
                vec![
                    Arg::Text(p.campus.clone()),
                    Arg::Int(p.invoice_no),
                    Arg::Text(l.charge.clone()),
                    Arg::Text(l.category.clone()),
                    Arg::OptText(l.department.clone()),
                    Arg::Int(l.amount_fen),
                    Arg::Text(l.day.clone()),
                    Arg::Text(p.method.clone()),
                    Arg::Text(p.cashier.clone()),
                ]
            })
        })
        .collect();
    let cols = ["campus", "invoice_no", "charge", "category", "department", "amount_fen", "day", "method", "cashier"];
    statements.extend(multi_insert("payment_lines", &cols, lines, backend.max_params()));
    for s in crate::sql::joined(backend, statements) {
        match s.query(backend).execute(&mut **tx).await {
            Ok(_) => {}
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => return Err(taken(all[0])),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn payment_from_row(r: &AnyRow) -> Result<NewPayment> {
    Ok(NewPayment {
        campus: r.try_get("campus")?,
        invoice_no: r.try_get("invoice_no")?,
        invoice_id: r.try_get("invoice_id")?,
        patient: r.try_get("patient")?,
        method: r.try_get("method")?,
        amount_fen: r.try_get("amount_fen")?,
        tendered_fen: r.try_get("tendered_fen")?,
        reference: r.try_get("reference")?,
        cashier: r.try_get("cashier")?,
        paid_at: r.try_get("paid_at")?,
        refund_of: r.try_get("refund_of")?,
        reason: r.try_get("reason")?,
        lines: Vec::new(),
    })
}

impl Store {
    /// The highest invoice number of a campus (0 before the first).
    pub(crate) async fn last_invoice_no(&self, campus: &str) -> Result<i64> {
        let row = sqlx::query("SELECT COALESCE(MAX(invoice_no), 0) FROM payments WHERE campus = $1")
            .bind(campus.to_string())
            .fetch_one(&self.read_pool())
            .await?;
        Ok(row.try_get(0)?)
    }

    /// The lines the payments of these FHIR Invoices (by id) paid or refunded:
    /// (invoice id, campus, line).
    pub(crate) async fn invoice_lines(&self, invoices: &[String]) -> Result<Vec<(String, String, PaymentLine)>> {
        let mut out = Vec::new();
        for chunk in invoices.chunks(500) {
            let mut sql = Sql::new(
                "SELECT p.invoice_id, l.campus, l.charge, l.category, l.department, l.amount_fen, l.day \
                 FROM payments p JOIN payment_lines l ON l.campus = p.campus AND l.invoice_no = p.invoice_no WHERE ",
            );
            sql.push_in("p.invoice_id", chunk);
            for r in sql.query(self.backend).fetch_all(&self.read_pool()).await? {
                let line = PaymentLine {
                    charge: r.try_get(2)?,
                    category: r.try_get(3)?,
                    department: r.try_get(4)?,
                    amount_fen: r.try_get(5)?,
                    day: r.try_get(6)?,
                };
                out.push((r.try_get(0)?, r.try_get(1)?, line));
            }
        }
        Ok(out)
    }

    /// One payment by its campus and invoice number.
    pub(crate) async fn payment(&self, campus: &str, invoice_no: i64) -> Result<Option<NewPayment>> {
        let row = sqlx::query("SELECT * FROM payments WHERE campus = $1 AND invoice_no = $2")
            .bind(campus.to_string())
            .bind(invoice_no)
            .fetch_optional(&self.read_pool())
            .await?;
        row.as_ref().map(payment_from_row).transpose()
    }

    /// A cashier's payments at a campus between two instants, by method:
    /// (method, total fen, payments), methods in name order.
    pub(crate) async fn payment_totals(
        &self,
        campus: &str,
        cashier: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<(String, i64, i64)>> {
        let rows = sqlx::query(
            "SELECT method, CAST(SUM(amount_fen) AS BIGINT), COUNT(*) FROM payments WHERE campus = $1 AND cashier = $2 \
             AND paid_at >= $3 AND paid_at < $4 GROUP BY method ORDER BY method",
        )
        .bind(campus.to_string())
        .bind(cashier.to_string())
        .bind(from)
        .bind(to)
        .fetch_all(&self.read_pool())
        .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).collect()
    }

    /// Records a settled day; false when the day was settled already.
    pub(crate) async fn settle_day(
        &self,
        campus: &str,
        cashier: &str,
        day: &str,
        totals: &str,
        payments: i64,
        at: i64,
    ) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO settlements (campus, cashier, day, totals, payments, settled_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (campus, cashier, day) DO NOTHING",
        )
        .bind(campus.to_string())
        .bind(cashier.to_string())
        .bind(day.to_string())
        .bind(totals.to_string())
        .bind(payments)
        .bind(at)
        .execute(&self.write_pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// When a cashier's day at a campus was settled, if it was.
    pub(crate) async fn settled_at(&self, campus: &str, cashier: &str, day: &str) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT settled_at FROM settlements WHERE campus = $1 AND cashier = $2 AND day = $3")
            .bind(campus.to_string())
            .bind(cashier.to_string())
            .bind(day.to_string())
            .fetch_optional(&self.read_pool())
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }

    /// Revenue between two days (inclusive, `YYYY-MM-DD`) at the campuses given (all
    /// when `None`), grouped `by` one dimension, by key.
    pub(crate) async fn revenue(
        &self,
        by: RevenueBy,
        from: &str,
        to: &str,
        campuses: Option<&[String]>,
    ) -> Result<Vec<Revenue>> {
        let col = by.column();
        let mut sql = crate::sql::Sql::new(&format!(
            "SELECT {col} AS k, CAST(SUM(amount_fen) AS BIGINT) AS total, COUNT(*) AS n FROM payment_lines WHERE day >= "
        ));
        sql.push_bind(crate::sql::Arg::Text(from.to_string()));
        sql.push(" AND day <= ");
        sql.push_bind(crate::sql::Arg::Text(to.to_string()));
        if let Some(c) = campuses {
            if c.is_empty() {
                return Ok(Vec::new());
            }
            sql.push(" AND ");
            sql.push_in("campus", c);
        }
        sql.push(&format!(" GROUP BY {col} ORDER BY {col}"));
        let rows = sql.query(self.backend).fetch_all(&self.read_pool()).await?;
        rows.iter()
            .map(|r| Ok(Revenue { key: r.try_get("k")?, amount_fen: r.try_get("total")?, lines: r.try_get("n")? }))
            .collect()
    }

    /// A campus's invoice numbers in order (for checking the sequence).
    pub(crate) async fn invoice_numbers(&self, campus: &str) -> Result<Vec<i64>> {
        let rows = sqlx::query("SELECT invoice_no FROM payments WHERE campus = $1 ORDER BY invoice_no")
            .bind(campus.to_string())
            .fetch_all(&self.read_pool())
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }
}
