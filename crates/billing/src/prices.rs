//! The price list of each campus (收费项目): registration fees by clinic type, drugs by
//! unit, the order catalogue's tests and imaging, and services. Each item has the
//! hospital's own code, the national or provincial code it maps to, and a charge
//! category; its prices each hold from a moment on, so a price change never alters
//! what was charged before it. Staff of a campus read its list; managers (物价管理,
//! [`Capability::ManagePrices`]) keep it, and every change is audited.

use lianyi_security::roles::Capability;
use lianyi_security::{Caller, CampusId};
use lianyi_services::FhirService;
use lianyi_store::prices::{PriceItem, PriceRow, PricedItem};

use crate::money::Fen;

/// Charge categories, as a Chinese outpatient receipt groups them.
pub const CATEGORIES: [&str; 12] = [
    "registration", // 挂号费
    "western-drug", // 西药费
    "patent-drug",  // 中成药费
    "herbal-drug",  // 中草药费
    "exam",         // 检查费
    "lab",          // 化验费
    "treatment",    // 治疗费
    "material",     // 材料费
    "consultation", // 诊查费
    "bed",          // 床位费 (inpatient)
    "nursing",      // 护理费 (inpatient)
    "other",        // 其他
];

/// What an item prices: a registration (its `reference` the clinic type, `general` or
/// `expert`), a drug of the catalogue, an order of the catalogue, a service, or a
/// high-value consumable of the materials catalogue (charged per unit used).
pub const KINDS: [&str; 5] = ["registration", "drug", "order", "service", "material"];

/// A broken rule of the price list, naming the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    /// A short code of the rule (`required`, `format`, `past` …), for pages to word.
    pub rule: &'static str,
    pub detail: String,
}

/// Broken rules as one line (`field: detail; …`), for logs and errors.
pub fn joined(errors: &[FieldError]) -> String {
    errors.iter().map(|e| format!("{}: {}", e.field, e.detail)).collect::<Vec<_>>().join("; ")
}

#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    #[error("{}", crate::prices::joined(.0))]
    Invalid(Vec<FieldError>),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error(transparent)]
    Store(#[from] lianyi_store::StoreError),
    #[error("the audit record could not be written: {0}")]
    Audit(String),
}

fn invalid(field: &'static str, rule: &'static str, detail: impl Into<String>) -> PriceError {
    PriceError::Invalid(vec![FieldError { field, rule, detail: detail.into() }])
}

/// Midnight (Beijing) of a `YYYY-MM-DD` date: the scheduling's own reading of dates.
pub use lianyi_clinical::scheduling::local_midnight;

/// A new or changed item, as a form gives it.
#[derive(Clone, Debug, Default)]
pub struct ItemForm {
    pub campus: String,
    pub code: String,
    pub national_code: String,
    pub category: String,
    pub kind: String,
    pub reference: String,
    pub name_zh: String,
    pub name_en: String,
    pub unit: String,
}

impl ItemForm {
    /// The item, or every broken rule by field.
    pub fn check(&self) -> Result<PriceItem, PriceError> {
        let mut errors = Vec::new();
        let mut rule = |ok: bool, field: &'static str, rule: &'static str, detail: &str| {
            if !ok {
                errors.push(FieldError { field, rule, detail: detail.to_string() });
            }
        };
        let code_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 32
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        };
        rule(CampusId::parse(self.campus.trim()).is_ok(), "campus", "campus", "a campus id");
        rule(code_ok(self.code.trim()), "code", "code", "1 to 32 letters, digits, '-', '_' or '.'");
        let national = self.national_code.trim();
        rule(
            national.is_empty() || code_ok(national),
            "national_code",
            "code",
            "1 to 32 letters, digits, '-', '_' or '.'",
        );
        rule(CATEGORIES.contains(&self.category.as_str()), "category", "choice", "one of the charge categories");
        rule(KINDS.contains(&self.kind.as_str()), "kind", "choice", "registration, drug, order, service or material");
        let sized = |s: &str, max: usize| !s.trim().is_empty() && s.trim().chars().count() <= max;
        rule(sized(&self.name_zh, 100), "name_zh", "required", "1 to 100 characters");
        rule(sized(&self.name_en, 100), "name_en", "required", "1 to 100 characters");
        rule(sized(&self.unit, 10), "unit", "required", "1 to 10 characters");
        if !errors.is_empty() {
            return Err(PriceError::Invalid(errors));
        }
        let opt = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        Ok(PriceItem {
            campus: self.campus.trim().to_string(),
            code: self.code.trim().to_string(),
            national_code: opt(&self.national_code),
            category: self.category.clone(),
            kind: self.kind.clone(),
            reference: opt(&self.reference),
            name_zh: self.name_zh.trim().to_string(),
            name_en: self.name_en.trim().to_string(),
            unit: self.unit.trim().to_string(),
        })
    }
}

/// The price list service.
#[derive(Clone, Debug)]
pub struct PriceBook {
    fhir: FhirService,
}

impl PriceBook {
    pub fn new(fhir: FhirService) -> PriceBook {
        PriceBook { fhir }
    }

    /// Staff (and API clients) of the campus read its list; patients do not.
    fn may_read(caller: &Caller, campus: &str) -> Result<(), PriceError> {
        let staff = caller.is_authenticated() && caller.access().patient().is_none();
        if staff && caller.access().all_campuses().contains(campus) {
            Ok(())
        } else {
            Err(PriceError::Forbidden("the price list is read by the campus's staff"))
        }
    }

    fn may_manage(caller: &Caller, campus: &str) -> Result<(), PriceError> {
        if caller.can(Capability::ManagePrices) && caller.access().all_campuses().contains(campus) {
            Ok(())
        } else {
            Err(PriceError::Forbidden("the price list is kept by the price office (managers)"))
        }
    }

    async fn audit(&self, caller: &Caller, action: &str, detail: String) -> Result<(), PriceError> {
        let mut e = caller.entry(self.fhir.now_ms(), action, "success");
        e.detail = Some(detail);
        self.fhir.audit_log().record(vec![e]).await.map_err(|e| PriceError::Audit(e.to_string()))
    }

    /// Adds an item to a campus's list or changes its names, codes, category and unit.
    pub async fn put_item(&self, caller: &Caller, form: &ItemForm) -> Result<PriceItem, PriceError> {
        let item = form.check()?;
        Self::may_manage(caller, &item.campus)?;
        self.fhir.operations().put_price_item(&item).await?;
        self.audit(caller, "price-item", format!("{} {} ({})", item.campus, item.code, item.name_en)).await?;
        Ok(item)
    }

    /// Sets an item's price (yuan, `12.50`) from a date on (`YYYY-MM-DD`, Beijing time;
    /// today means from now). A price is never backdated: what was charged keeps its
    /// price, and the history stays what happened.
    pub async fn set_price(
        &self,
        caller: &Caller,
        campus: &str,
        code: &str,
        amount: &str,
        effective: &str,
    ) -> Result<(Fen, i64), PriceError> {
        Self::may_manage(caller, campus)?;
        let mut errors = Vec::new();
        let fen = Fen::parse_yuan(amount)
            .map_err(|e| errors.push(FieldError { field: "amount", rule: "amount", detail: e.to_string() }))
            .ok();
        let now = self.fhir.now_ms();
        let today = local_midnight(&lianyi_clinical::scheduling::local_date(now)).unwrap_or(now);
        let from = match effective.trim() {
            "" => {
                errors.push(FieldError {
                    field: "effective",
                    rule: "required",
                    detail: "the date it applies from".into(),
                });
                None
            }
            d => match local_midnight(d) {
                None => {
                    errors.push(FieldError {
                        field: "effective",
                        rule: "format",
                        detail: "a date as YYYY-MM-DD".into(),
                    });
                    None
                }
                Some(m) if m < today => {
                    errors.push(FieldError {
                        field: "effective",
                        rule: "past",
                        detail: "today or later: a price is not backdated".into(),
                    });
                    None
                }
                Some(m) => Some(m.max(now)),
            },
        };
        if self.fhir.operations().priced_item(campus, code, now).await?.is_none() {
            errors.push(FieldError {
                field: "code",
                rule: "unknown",
                detail: "not an item of this campus's list".into(),
            });
        }
        if !errors.is_empty() {
            return Err(PriceError::Invalid(errors));
        }
        let (Some(fen), Some(from)) = (fen, from) else { return Err(invalid("amount", "amount", "an amount")) };
        if !self.fhir.operations().add_price(campus, code, from, fen.0, now, caller.actor()).await? {
            return Err(invalid("effective", "duplicate", "this item already has a price from that moment"));
        }
        self.audit(caller, "price-set", format!("{campus} {code} {fen} from {from}")).await?;
        Ok((fen, from))
    }

    /// A campus's items matching `q` (code, names, national code) and `category`, with
    /// the price in force at `at`.
    pub async fn list(
        &self,
        caller: &Caller,
        campus: &str,
        q: &str,
        category: Option<&str>,
        at: i64,
    ) -> Result<Vec<PricedItem>, PriceError> {
        Self::may_read(caller, campus)?;
        Ok(self.fhir.operations().price_list(campus, at, q.trim(), category, 500).await?)
    }

    /// The campuses with a price list that the caller may read.
    pub async fn campuses(&self, caller: &Caller) -> Result<Vec<String>, PriceError> {
        let all = self.fhir.operations().price_campuses().await?;
        Ok(all.into_iter().filter(|c| Self::may_read(caller, c).is_ok()).collect())
    }

    /// An item with its price now and every price it has had, newest first.
    pub async fn item(
        &self,
        caller: &Caller,
        campus: &str,
        code: &str,
    ) -> Result<Option<(PricedItem, Vec<PriceRow>)>, PriceError> {
        Self::may_read(caller, campus)?;
        let ops = self.fhir.operations();
        let Some(item) = ops.priced_item(campus, code, self.fhir.now_ms()).await? else { return Ok(None) };
        Ok(Some((item, ops.price_history(campus, code).await?)))
    }

    /// The price at `at` of what prices catalogue entry `reference` of `kind` at a
    /// campus (a drug's code, an order's code, `general`/`expert` registration).
    pub async fn price_of(
        &self,
        caller: &Caller,
        campus: &str,
        kind: &str,
        reference: &str,
        at: i64,
    ) -> Result<Option<(PriceItem, Fen)>, PriceError> {
        Self::may_read(caller, campus)?;
        let found = self.fhir.operations().priced_ref(campus, kind, reference, at).await?;
        Ok(found.and_then(|p| Some((p.item, Fen(p.amount_fen?)))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: i64 = 86_400_000;
    const BEIJING_MS: i64 = 8 * 3_600_000;

    #[test]
    fn beijing_midnights() {
        // 2026-12-05 00:00 +08:00 is 8 hours before 2026-12-05T00:00:00Z.
        assert_eq!(local_midnight("2026-12-05"), Some(1_796_428_800_000 - BEIJING_MS));
        assert_eq!(local_midnight("2024-02-29").map(|m| (m + BEIJING_MS) % DAY_MS), Some(0));
        assert_eq!(local_midnight("2025-02-29"), None);
        assert_eq!(local_midnight("2026-13-01"), None);
        assert_eq!(local_midnight("26-1-1"), None);
    }

    #[test]
    fn an_item_names_each_broken_rule() {
        let form = ItemForm {
            campus: "campus-east".into(),
            code: "bad code!".into(),
            category: "food".into(),
            ..Default::default()
        };
        let Err(PriceError::Invalid(errors)) = form.check() else { panic!("accepted") };
        let fields: Vec<&str> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["code", "category", "kind", "name_zh", "name_en", "unit"]);
    }
}
