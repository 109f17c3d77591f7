//! Pharmacy stock (药品管理): each campus's stores — the central store (药库) and the
//! outpatient pharmacy (门诊药房) — hold drugs by batch (lot, expiry, quantity in the
//! dispensing unit, purchase and retail price). The stock keeper (药库管理员) opens
//! purchase orders and receives batches against them (入库), ships part of a batch
//! to another store or campus and the other end receives what it counts (调拨), posts
//! stocktakes (盘点) whose variances are moves with a reason, and sets reorder levels.
//! Pharmacists see the stock of their campus. Expired batches are flagged (and never
//! dispensed), near-expiry ones too; every change is audited.

use lianyi_clinical::prescribing::{Drug, drug};
use lianyi_security::roles::Capability;
use lianyi_security::{Caller, Perm};
use lianyi_services::FhirService;
use lianyi_store::StoreError;
use lianyi_store::pharmacy::{Batch, Count, NewBatch, Pharmacy, PurchaseLine, PurchaseOrder, StockLevel, Transfer};

use crate::money::Fen;
use crate::prices::{FieldError, PriceBook};

/// Store kinds.
pub const STORE_KINDS: [&str; 3] = ["central", "outpatient", "inpatient"];
/// Days before expiry from which a batch is flagged, unless configured.
pub const NEAR_EXPIRY_DAYS: i64 = 90;

#[derive(Debug, thiserror::Error)]
pub enum StockError {
    #[error("{}", crate::prices::joined(.0))]
    Invalid(Vec<FieldError>),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error(transparent)]
    Store(StoreError),
    #[error("the audit record could not be written: {0}")]
    Audit(String),
    #[error(transparent)]
    Price(#[from] crate::prices::PriceError),
}

impl From<StoreError> for StockError {
    /// A refused rule of the stock tables (`field: why`) is a field error.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Refused(msg) => StockError::Invalid(vec![refused_field(&msg)]),
            other => StockError::Store(other),
        }
    }
}

/// The field a refusal of the stock tables names (`quantity: …`).
pub(crate) fn refused_field(msg: &str) -> FieldError {
    let (field, detail) = msg.split_once(": ").unwrap_or(("stock", msg));
    let (field, rule) = [
        ("quantity", "short"),
        ("lot", "lot-expiry"),
        ("batch", "unknown"),
        ("transfer", "not-in-transit"),
        ("counted", "moved"),
        ("prescription", "not-waiting"),
    ]
    .into_iter()
    .find(|(f, _)| *f == field)
    .unwrap_or(("stock", "stock"));
    FieldError { field, rule, detail: detail.to_string() }
}

fn invalid(field: &'static str, rule: &'static str, detail: impl Into<String>) -> FieldError {
    FieldError { field, rule, detail: detail.into() }
}

/// A batch's state on a day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shelf {
    Good,
    /// Expires within the near-expiry window.
    NearExpiry,
    /// Past its expiry date: never dispensed.
    Expired,
}

/// A batch's state on `today` (`YYYY-MM-DD`), with the window's end `near` (the
/// date `near_days` after today).
pub fn shelf(expiry: &str, today: &str, near: &str) -> Shelf {
    if expiry < today {
        Shelf::Expired
    } else if expiry <= near {
        Shelf::NearExpiry
    } else {
        Shelf::Good
    }
}

/// One drug of a store: its batches, what may be dispensed, and its reorder level.
#[derive(Clone, Debug)]
pub struct StockLine {
    pub drug: &'static Drug,
    pub batches: Vec<(Batch, Shelf)>,
    /// In stock and not expired.
    pub usable: i64,
    pub expired: i64,
    pub reorder_level: Option<i64>,
}

impl StockLine {
    /// Below its reorder level.
    pub fn low(&self) -> bool {
        self.reorder_level.is_some_and(|l| self.usable < l)
    }

    pub fn near_expiry(&self) -> bool {
        self.batches.iter().any(|(b, s)| *s == Shelf::NearExpiry && b.quantity > 0)
    }
}

/// A purchase order line as the form gives it.
#[derive(Clone, Debug, Default)]
pub struct OrderLineForm {
    pub drug: String,
    pub quantity: String,
    /// Purchase price per unit, in yuan.
    pub price: String,
}

/// A batch received against an order line.
#[derive(Clone, Debug, Default)]
pub struct ReceiveForm {
    pub drug: String,
    pub lot: String,
    /// `YYYY-MM-DD`.
    pub expiry: String,
    pub quantity: String,
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct StockRoom {
    fhir: FhirService,
    prices: PriceBook,
    near_days: i64,
}

/// A whole number above zero, else the field's error.
fn positive(field: &'static str, text: &str, errors: &mut Vec<FieldError>) -> i64 {
    match text.trim().parse::<i64>() {
        Ok(n) if (1..=10_000_000).contains(&n) => n,
        _ => {
            errors.push(invalid(field, "positive", "a whole number above zero"));
            0
        }
    }
}

impl StockRoom {
    pub fn new(fhir: FhirService) -> StockRoom {
        StockRoom { prices: PriceBook::new(fhir.clone()), fhir, near_days: NEAR_EXPIRY_DAYS }
    }

    /// Flags batches expiring within `days` (configurable; 90 unless set).
    pub fn with_near_expiry_days(mut self, days: i64) -> StockRoom {
        self.near_days = days.clamp(1, 3650);
        self
    }

    pub fn near_expiry_days(&self) -> i64 {
        self.near_days
    }

    fn pharmacy(&self) -> Pharmacy {
        self.fhir.operations().pharmacy()
    }

    /// Today (Beijing) and the end of the near-expiry window.
    pub fn today_and_near(&self) -> (String, String) {
        let now = self.fhir.now_ms();
        let today = lianyi_clinical::scheduling::local_date(now);
        let near = lianyi_clinical::scheduling::local_date(now + self.near_days * 86_400_000);
        (today, near)
    }

    /// Stock keepers and pharmacists of the campus (and managers) see its stock.
    pub fn may_view(caller: &Caller, campus: &str) -> bool {
        let a = caller.access();
        let role = caller.can(Capability::KeepStock)
            || caller.can(Capability::ViewReports)
            || a.allows("MedicationDispense", Perm::Create);
        role && a.all_campuses().contains(campus)
    }

    fn view(caller: &Caller, campus: &str) -> Result<(), StockError> {
        if Self::may_view(caller, campus) {
            Ok(())
        } else {
            Err(StockError::Forbidden("stock is seen by the campus's stock keepers, pharmacists and managers"))
        }
    }

    /// Only the campus's stock keepers change its stock.
    pub fn may_keep(caller: &Caller, campus: &str) -> bool {
        caller.can(Capability::KeepStock) && caller.access().all_campuses().contains(campus)
    }

    fn keep(caller: &Caller, campus: &str) -> Result<(), StockError> {
        if Self::may_keep(caller, campus) {
            Ok(())
        } else {
            Err(StockError::Forbidden("stock is kept by the campus's stock keepers (药库管理员)"))
        }
    }

    async fn audit(&self, caller: &Caller, action: &str, detail: String) -> Result<(), StockError> {
        let mut e = caller.entry(self.fhir.now_ms(), action, "success");
        e.detail = Some(detail);
        self.fhir.audit_log().record(vec![e]).await.map_err(|e| StockError::Audit(e.to_string()))
    }

    /// The stores the caller may see.
    pub async fn stores(&self, caller: &Caller) -> Result<Vec<lianyi_store::pharmacy::StockStore>, StockError> {
        let all = self.pharmacy().stores().await?;
        Ok(all.into_iter().filter(|s| Self::may_view(caller, &s.campus)).collect())
    }

    /// Adds a store to a campus (or renames it).
    pub async fn put_store(
        &self,
        caller: &Caller,
        store: &lianyi_store::pharmacy::StockStore,
    ) -> Result<(), StockError> {
        Self::keep(caller, &store.campus)?;
        let mut errors = Vec::new();
        let code_ok = !store.code.is_empty()
            && store.code.len() <= 32
            && store.code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !code_ok {
            errors.push(invalid("code", "code", "1 to 32 letters, digits or '-'"));
        }
        if !STORE_KINDS.contains(&store.kind.as_str()) {
            errors.push(invalid("kind", "choice", "central, outpatient or inpatient"));
        }
        if store.name_zh.trim().is_empty() || store.name_en.trim().is_empty() {
            errors.push(invalid("name", "required", "the store's name in both languages"));
        }
        if !errors.is_empty() {
            return Err(StockError::Invalid(errors));
        }
        self.pharmacy().put_store(store).await?;
        self.audit(caller, "stock-store", format!("{}/{} ({})", store.campus, store.code, store.kind)).await
    }

    async fn store_exists(&self, campus: &str, store: &str) -> Result<bool, StockError> {
        Ok(self.pharmacy().stores().await?.iter().any(|s| s.campus == campus && s.code == store))
    }

    /// A store's stock by drug: every batch (with stock, or all when `all`), its
    /// shelf state, what may be dispensed, and the reorder level; drugs below their
    /// level are listed even without stock.
    pub async fn stock(
        &self,
        caller: &Caller,
        campus: &str,
        store: &str,
        all: bool,
    ) -> Result<Vec<StockLine>, StockError> {
        Self::view(caller, campus)?;
        let (today, near) = self.today_and_near();
        let p = self.pharmacy();
        let batches = p.batches(campus, store, None, all).await?;
        let levels = p.levels(campus, store).await?;
        let mut lines: Vec<StockLine> = Vec::new();
        for b in batches {
            let Some(d) = drug(&b.drug) else { continue };
            let s = shelf(&b.expiry, &today, &near);
            if lines.last().is_none_or(|l| l.drug.code != d.code) {
                lines.push(StockLine { drug: d, batches: Vec::new(), usable: 0, expired: 0, reorder_level: None });
            }
            let line = lines.last_mut().expect("pushed above");
            if s == Shelf::Expired {
                line.expired += b.quantity;
            } else {
                line.usable += b.quantity;
            }
            line.batches.push((b, s));
        }
        for l in levels {
            match lines.iter_mut().find(|x| x.drug.code == l.drug) {
                Some(x) => x.reorder_level = Some(l.reorder_level),
                None => {
                    if let Some(d) = drug(&l.drug) {
                        lines.push(StockLine {
                            drug: d,
                            batches: Vec::new(),
                            usable: 0,
                            expired: 0,
                            reorder_level: Some(l.reorder_level),
                        });
                    }
                }
            }
        }
        lines.sort_by(|a, b| a.drug.code.cmp(b.drug.code));
        Ok(lines)
    }

    /// Sets a drug's reorder level in a store (0 removes it from the low-stock list).
    pub async fn set_level(
        &self,
        caller: &Caller,
        campus: &str,
        store: &str,
        drug_code: &str,
        level: &str,
    ) -> Result<(), StockError> {
        Self::keep(caller, campus)?;
        let mut errors = Vec::new();
        if drug(drug_code).is_none() {
            errors.push(invalid("drug", "unknown", "a drug of the catalogue"));
        }
        let level = match level.trim().parse::<i64>() {
            Ok(n) if (0..=10_000_000).contains(&n) => n,
            _ => {
                errors.push(invalid("level", "non-negative", "a whole number, zero or more"));
                0
            }
        };
        if !self.store_exists(campus, store).await? {
            errors.push(invalid("store", "unknown", "a store of the campus"));
        }
        if !errors.is_empty() {
            return Err(StockError::Invalid(errors));
        }
        let l = StockLevel { campus: campus.into(), store: store.into(), drug: drug_code.into(), reorder_level: level };
        self.pharmacy().set_level(&l).await?;
        self.audit(caller, "stock-level", format!("{campus}/{store} {drug_code} reorder at {level}")).await
    }

    /// Opens a purchase order for a store; returns its number.
    pub async fn create_order(
        &self,
        caller: &Caller,
        campus: &str,
        store: &str,
        supplier: &str,
        lines: &[OrderLineForm],
    ) -> Result<i64, StockError> {
        Self::keep(caller, campus)?;
        let mut errors = Vec::new();
        if !self.store_exists(campus, store).await? {
            errors.push(invalid("store", "unknown", "a store of the campus"));
        }
        let supplier = supplier.trim();
        if supplier.is_empty() || supplier.chars().count() > 100 {
            errors.push(invalid("supplier", "required", "the supplier's name (1 to 100 characters)"));
        }
        let mut out: Vec<PurchaseLine> = Vec::new();
        for l in lines.iter().filter(|l| !l.drug.trim().is_empty()) {
            if drug(l.drug.trim()).is_none() {
                errors.push(invalid("drug", "unknown", "a drug of the catalogue"));
                continue;
            }
            let quantity = positive("quantity", &l.quantity, &mut errors);
            let price = match Fen::parse_yuan(&l.price) {
                Ok(p) if p.0 > 0 => p,
                Ok(_) => {
                    errors.push(invalid("price", "positive", "a purchase price above zero"));
                    Fen(0)
                }
                Err(e) => {
                    errors.push(invalid("price", "amount", e.to_string()));
                    Fen(0)
                }
            };
            if out.iter().any(|x| x.drug == l.drug.trim()) {
                errors.push(invalid("drug", "duplicate", "each drug once per order"));
            }
            out.push(PurchaseLine {
                drug: l.drug.trim().into(),
                ordered: quantity,
                received: 0,
                purchase_fen: price.0,
            });
        }
        if out.is_empty() && errors.is_empty() {
            errors.push(invalid("drug", "required", "at least one drug to order"));
        }
        if !errors.is_empty() {
            return Err(StockError::Invalid(errors));
        }
        let po = PurchaseOrder {
            campus: campus.into(),
            po_no: 0,
            store: store.into(),
            supplier: supplier.into(),
            status: "open".into(),
            created_by: caller.actor().into(),
            created_at: self.fhir.now_ms(),
            lines: out,
        };
        let no = self.pharmacy().create_order(&po).await?;
        self.audit(caller, "stock-order", format!("{campus} PO-{no} to {supplier}, {} lines", po.lines.len())).await?;
        Ok(no)
    }

    pub async fn orders(&self, caller: &Caller, campus: &str, all: bool) -> Result<Vec<PurchaseOrder>, StockError> {
        Self::view(caller, campus)?;
        Ok(self.pharmacy().orders(campus, all, 200).await?)
    }

    pub async fn order(&self, caller: &Caller, campus: &str, no: i64) -> Result<Option<PurchaseOrder>, StockError> {
        Self::view(caller, campus)?;
        Ok(self.pharmacy().order(campus, no).await?)
    }

    /// Receives batches (入库) against a purchase order: lot, expiry and quantity per
    /// line; an expired batch (or one expiring today) is refused, as is more than the
    /// line has open. The retail price is the campus's list price of the drug now.
    pub async fn receive(
        &self,
        caller: &Caller,
        campus: &str,
        no: i64,
        forms: &[ReceiveForm],
    ) -> Result<Vec<i64>, StockError> {
        Self::keep(caller, campus)?;
        let Some(po) = self.pharmacy().order(campus, no).await? else {
            return Err(StockError::Invalid(vec![invalid("order", "unknown", "a purchase order of the campus")]));
        };
        let (today, _) = self.today_and_near();
        let now = self.fhir.now_ms();
        let mut errors = Vec::new();
        let mut batches = Vec::new();
        for f in forms.iter().filter(|f| !f.quantity.trim().is_empty() || !f.lot.trim().is_empty()) {
            let Some(line) = po.lines.iter().find(|l| l.drug == f.drug) else {
                errors.push(invalid("drug", "not-ordered", "a drug of this order"));
                continue;
            };
            let lot = f.lot.trim();
            if lot.is_empty() || lot.chars().count() > 40 {
                errors.push(invalid("lot", "required", "the lot number on the box (1 to 40 characters)"));
            }
            let expiry = f.expiry.trim();
            if lianyi_clinical::scheduling::local_midnight(expiry).is_none() {
                errors.push(invalid("expiry", "date", "a date (YYYY-MM-DD)"));
            } else if expiry <= today.as_str() {
                errors.push(invalid("expiry", "expired", "an expired batch is not received"));
            }
            let quantity = positive("quantity", &f.quantity, &mut errors);
            if quantity > line.ordered - line.received {
                errors.push(invalid(
                    "quantity",
                    "over-ordered",
                    format!("at most {} still open on the order", line.ordered - line.received),
                ));
            }
            let retail = self.prices.price_of(caller, campus, "drug", &f.drug, now).await?;
            let Some((_, retail)) = retail else {
                errors.push(invalid("drug", "unpriced", "a drug with a retail price in the campus's price list"));
                continue;
            };
            batches.push(NewBatch {
                campus: campus.into(),
                store: po.store.clone(),
                drug: f.drug.clone(),
                lot: lot.into(),
                expiry: expiry.into(),
                quantity,
                purchase_fen: line.purchase_fen,
                retail_fen: retail.0,
                supplier: Some(po.supplier.clone()),
            });
        }
        if batches.is_empty() && errors.is_empty() {
            errors.push(invalid("quantity", "required", "at least one batch received"));
        }
        if !errors.is_empty() {
            return Err(StockError::Invalid(errors));
        }
        let ids = self.pharmacy().receive(campus, no, &batches, caller.actor(), now).await?;
        let what: Vec<String> = batches.iter().map(|b| format!("{} lot {} × {}", b.drug, b.lot, b.quantity)).collect();
        self.audit(caller, "stock-receive", format!("{campus} PO-{no}: {}", what.join(", "))).await?;
        Ok(ids)
    }

    /// Ships part of a batch to another store (调拨): the quantity leaves now and is in
    /// transit until the other end counts it in.
    pub async fn ship(
        &self,
        caller: &Caller,
        batch: i64,
        quantity: &str,
        to_campus: &str,
        to_store: &str,
        note: &str,
    ) -> Result<i64, StockError> {
        let Some(b) = self.pharmacy().batch(batch).await? else {
            return Err(StockError::Invalid(vec![invalid("batch", "unknown", "a batch in stock")]));
        };
        Self::keep(caller, &b.campus)?;
        let (today, _) = self.today_and_near();
        let mut errors = Vec::new();
        let quantity = positive("quantity", quantity, &mut errors);
        if quantity > b.quantity {
            errors.push(invalid("quantity", "in-stock", format!("at most the {} in stock", b.quantity)));
        }
        if b.expiry < today {
            errors.push(invalid("batch", "expired", "an expired batch is not transferred"));
        }
        if !self.store_exists(to_campus, to_store).await? {
            errors.push(invalid("to_store", "unknown", "a store of the group"));
        } else if to_campus == b.campus && to_store == b.store {
            errors.push(invalid("to_store", "same", "another store than the batch's own"));
        }
        if !errors.is_empty() {
            return Err(StockError::Invalid(errors));
        }
        let shipment = lianyi_store::pharmacy::Shipment {
            batch,
            quantity,
            to_campus: to_campus.into(),
            to_store: to_store.into(),
            note: Some(note.trim().to_string()).filter(|n| !n.is_empty()),
        };
        let id = self.pharmacy().ship(&shipment, caller.actor(), self.fhir.now_ms()).await?;
        self.audit(
            caller,
            "stock-ship",
            format!(
                "T-{id}: {} lot {} × {quantity} from {}/{} to {to_campus}/{to_store}",
                b.drug, b.lot, b.campus, b.store
            ),
        )
        .await?;
        Ok(id)
    }

    /// Receives a transfer with the quantity counted on arrival.
    pub async fn receive_transfer(&self, caller: &Caller, id: i64, counted: &str) -> Result<Transfer, StockError> {
        let Some(t) = self.pharmacy().transfer(id).await? else {
            return Err(StockError::Invalid(vec![invalid("transfer", "unknown", "a transfer in transit")]));
        };
        Self::keep(caller, &t.to_campus)?;
        let counted = match counted.trim().parse::<i64>() {
            Ok(n) if (0..=t.shipped).contains(&n) => n,
            _ => {
                return Err(StockError::Invalid(vec![invalid(
                    "counted",
                    "range",
                    format!("the quantity counted in: 0 to the {} shipped", t.shipped),
                )]));
            }
        };
        let t = self.pharmacy().receive_transfer(id, counted, caller.actor(), self.fhir.now_ms()).await?;
        let short = t.shipped - counted;
        self.audit(
            caller,
            "stock-receive-transfer",
            format!("T-{id}: {} lot {} counted {counted} of {} shipped (short {short})", t.drug, t.lot, t.shipped),
        )
        .await?;
        Ok(t)
    }

    pub async fn transfers(&self, caller: &Caller, campus: &str) -> Result<Vec<Transfer>, StockError> {
        Self::view(caller, campus)?;
        Ok(self.pharmacy().transfers(campus, 200).await?)
    }

    /// Posts a stocktake (盘点) of a store: each batch's counted quantity against the
    /// quantity the count started from; a variance needs a reason and is audited.
    /// Returns how many batches changed.
    pub async fn count(
        &self,
        caller: &Caller,
        campus: &str,
        store: &str,
        counts: &[(i64, String, String)],
        reason: &str,
    ) -> Result<usize, StockError> {
        Self::keep(caller, campus)?;
        let mut errors = Vec::new();
        let mut out = Vec::new();
        let batches = self.pharmacy().batches(campus, store, None, true).await?;
        for (batch, book, counted) in counts {
            if counted.trim().is_empty() {
                continue;
            }
            if !batches.iter().any(|b| b.id == *batch) {
                errors.push(invalid("batch", "unknown", "a batch of this store"));
                continue;
            }
            let (Ok(book), Ok(counted)) = (book.trim().parse::<i64>(), counted.trim().parse::<i64>()) else {
                errors.push(invalid("counted", "non-negative", "a whole number, zero or more"));
                continue;
            };
            if counted < 0 {
                errors.push(invalid("counted", "non-negative", "a whole number, zero or more"));
                continue;
            }
            out.push(Count { batch: *batch, book, counted });
        }
        let reason = reason.trim();
        let variances: Vec<&Count> = out.iter().filter(|c| c.counted != c.book).collect();
        if !variances.is_empty() && (reason.chars().count() < 2 || reason.chars().count() > 200) {
            errors.push(invalid("reason", "required", "why the count differs (2 to 200 characters)"));
        }
        if !errors.is_empty() {
            return Err(StockError::Invalid(errors));
        }
        let detail: Vec<String> =
            variances.iter().map(|c| format!("batch {} {} → {}", c.batch, c.book, c.counted)).collect();
        let n = self.pharmacy().post_count(&out, reason, caller.actor(), self.fhir.now_ms()).await?;
        self.audit(
            caller,
            "stock-count",
            format!("{campus}/{store}: {} counted, {n} variances: {} ({reason})", out.len(), detail.join(", ")),
        )
        .await?;
        Ok(n)
    }

    /// A batch and its moves (the stock card, 库存卡).
    pub async fn card(
        &self,
        caller: &Caller,
        batch: i64,
    ) -> Result<Option<(Batch, Vec<lianyi_store::pharmacy::MoveRow>)>, StockError> {
        let Some(b) = self.pharmacy().batch(batch).await? else { return Ok(None) };
        Self::view(caller, &b.campus)?;
        let moves = self.pharmacy().moves(batch).await?;
        Ok(Some((b, moves)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shelf_states() {
        assert_eq!(shelf("2026-12-04", "2026-12-05", "2027-03-05"), Shelf::Expired);
        assert_eq!(shelf("2026-12-05", "2026-12-05", "2027-03-05"), Shelf::NearExpiry);
        assert_eq!(shelf("2027-03-05", "2026-12-05", "2027-03-05"), Shelf::NearExpiry);
        assert_eq!(shelf("2027-03-06", "2026-12-05", "2027-03-05"), Shelf::Good);
    }

    #[test]
    fn refusals_name_their_field() {
        let f = refused_field("quantity: batch 3 has fewer than 5 left");
        assert_eq!((f.field, f.rule, f.detail.as_str()), ("quantity", "short", "batch 3 has fewer than 5 left"));
        assert_eq!(refused_field("something odd").field, "stock");
    }
}
