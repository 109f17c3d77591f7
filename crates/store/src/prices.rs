//! The price list's tables (not health data): each campus's chargeable items and
//! their prices from a moment on. A price is never changed in place: a new row takes
//! over from its `effective_from`, so a charge keeps the price it was made at.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, Store};

/// One chargeable item of a campus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceItem {
    pub campus: String,
    /// The hospital's own code.
    pub code: String,
    /// The national or provincial code it maps to, when known.
    pub national_code: Option<String>,
    /// The charge category (`western-drug`, `lab` …).
    pub category: String,
    /// What it prices: `registration`, `drug`, `order` or `service`.
    pub kind: String,
    /// The catalogue code it prices (a drug, an order, a clinic type), if any.
    pub reference: Option<String>,
    pub name_zh: String,
    pub name_en: String,
    /// The unit a price is per (`次`, `粒` …).
    pub unit: String,
}

/// An item with its price at a moment (`None`: no price in force then).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PricedItem {
    pub item: PriceItem,
    pub amount_fen: Option<i64>,
    /// Since when that price holds.
    pub since: Option<i64>,
}

/// One price of an item, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceRow {
    pub effective_from: i64,
    pub amount_fen: i64,
    pub recorded_at: i64,
    pub recorded_by: String,
}

const ITEM_COLUMNS: &str = "i.campus, i.code, i.national_code, i.category, i.kind, i.ref, i.name_zh, i.name_en, i.unit";

fn item_from_row(r: &AnyRow) -> Result<PriceItem> {
    Ok(PriceItem {
        campus: r.try_get("campus")?,
        code: r.try_get("code")?,
        national_code: r.try_get("national_code")?,
        category: r.try_get("category")?,
        kind: r.try_get("kind")?,
        reference: r.try_get("ref")?,
        name_zh: r.try_get("name_zh")?,
        name_en: r.try_get("name_en")?,
        unit: r.try_get("unit")?,
    })
}

/// The price in force at `$at` for the item row `i` (a correlated subquery, the same
/// on both backends).
const PRICE_AT: &str = "(SELECT p.amount_fen FROM prices p WHERE p.campus = i.campus AND p.code = i.code \
     AND p.effective_from <= $AT ORDER BY p.effective_from DESC LIMIT 1) AS amount_fen, \
     (SELECT p.effective_from FROM prices p WHERE p.campus = i.campus AND p.code = i.code \
     AND p.effective_from <= $AT ORDER BY p.effective_from DESC LIMIT 1) AS since";

fn priced_from_row(r: &AnyRow) -> Result<PricedItem> {
    Ok(PricedItem { item: item_from_row(r)?, amount_fen: r.try_get("amount_fen")?, since: r.try_get("since")? })
}

impl Store {
    /// Adds an item, or replaces its names, codes, category and unit (its prices stay).
    pub(crate) async fn put_price_item(&self, i: &PriceItem) -> Result<()> {
        sqlx::query(
            "INSERT INTO price_items (campus, code, national_code, category, kind, ref, name_zh, name_en, unit) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (campus, code) DO UPDATE SET \
             national_code = excluded.national_code, category = excluded.category, kind = excluded.kind, \
             ref = excluded.ref, name_zh = excluded.name_zh, name_en = excluded.name_en, unit = excluded.unit",
        )
        .bind(i.campus.clone())
        .bind(i.code.clone())
        .bind(i.national_code.clone())
        .bind(i.category.clone())
        .bind(i.kind.clone())
        .bind(i.reference.clone())
        .bind(i.name_zh.clone())
        .bind(i.name_en.clone())
        .bind(i.unit.clone())
        .execute(&self.write_pool())
        .await?;
        Ok(())
    }

    /// Records a price from `effective_from` on. False when the item does not exist or
    /// a price from that same moment is already recorded (prices are not overwritten).
    pub(crate) async fn add_price(
        &self,
        campus: &str,
        code: &str,
        effective_from: i64,
        amount_fen: i64,
        recorded_at: i64,
        recorded_by: &str,
    ) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO prices (campus, code, effective_from, amount_fen, recorded_at, recorded_by) \
             SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM price_items WHERE campus = $1 AND code = $2) \
             ON CONFLICT (campus, code, effective_from) DO NOTHING",
        )
        .bind(campus.to_string())
        .bind(code.to_string())
        .bind(effective_from)
        .bind(amount_fen)
        .bind(recorded_at)
        .bind(recorded_by.to_string())
        .execute(&self.write_pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// A campus's items (all, or those whose code, names or national code contain
    /// `q`, or of category `category`) with the price in force at `at`, by code.
    pub(crate) async fn price_list(
        &self,
        campus: &str,
        at: i64,
        q: &str,
        category: Option<&str>,
        limit: usize,
    ) -> Result<Vec<PricedItem>> {
        let sql = format!(
            "SELECT {ITEM_COLUMNS}, {} FROM price_items i WHERE i.campus = $1 \
             AND ($3 = '' OR i.code LIKE $4 OR i.name_zh LIKE $4 OR LOWER(i.name_en) LIKE $4 OR i.national_code LIKE $4) \
             AND ($5 = '' OR i.category = $5) ORDER BY i.code LIMIT $6",
            PRICE_AT.replace("$AT", "$2")
        );
        let like = format!("%{}%", q.to_lowercase().replace(['%', '_'], ""));
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(campus.to_string())
            .bind(at)
            .bind(q.to_string())
            .bind(like)
            .bind(category.unwrap_or_default().to_string())
            .bind(limit as i64)
            .fetch_all(&self.read_pool())
            .await?;
        rows.iter().map(priced_from_row).collect()
    }

    /// One item with its price at `at`.
    pub(crate) async fn priced_item(&self, campus: &str, code: &str, at: i64) -> Result<Option<PricedItem>> {
        let sql = format!(
            "SELECT {ITEM_COLUMNS}, {} FROM price_items i WHERE i.campus = $1 AND i.code = $3",
            PRICE_AT.replace("$AT", "$2")
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(campus.to_string())
            .bind(at)
            .bind(code.to_string())
            .fetch_optional(&self.read_pool())
            .await?;
        row.as_ref().map(priced_from_row).transpose()
    }

    /// The item of a campus that prices catalogue entry `reference` of `kind`.
    pub(crate) async fn priced_ref(
        &self,
        campus: &str,
        kind: &str,
        reference: &str,
        at: i64,
    ) -> Result<Option<PricedItem>> {
        let sql = format!(
            "SELECT {ITEM_COLUMNS}, {} FROM price_items i WHERE i.campus = $1 AND i.kind = $3 AND i.ref = $4 \
             ORDER BY i.code LIMIT 1",
            PRICE_AT.replace("$AT", "$2")
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(campus.to_string())
            .bind(at)
            .bind(kind.to_string())
            .bind(reference.to_string())
            .fetch_optional(&self.read_pool())
            .await?;
        row.as_ref().map(priced_from_row).transpose()
    }

    /// The campuses that have a price list.
    pub(crate) async fn price_campuses(&self) -> Result<Vec<String>> {
        let rows =
            sqlx::query("SELECT DISTINCT campus FROM price_items ORDER BY campus").fetch_all(&self.read_pool()).await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Every price an item has had, newest first.
    pub(crate) async fn price_history(&self, campus: &str, code: &str) -> Result<Vec<PriceRow>> {
        let rows = sqlx::query(
            "SELECT effective_from, amount_fen, recorded_at, recorded_by FROM prices \
             WHERE campus = $1 AND code = $2 ORDER BY effective_from DESC",
        )
        .bind(campus.to_string())
        .bind(code.to_string())
        .fetch_all(&self.read_pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PriceRow {
                    effective_from: r.try_get(0)?,
                    amount_fen: r.try_get(1)?,
                    recorded_at: r.try_get(2)?,
                    recorded_by: r.try_get(3)?,
                })
            })
            .collect()
    }
}
