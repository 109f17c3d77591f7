//! A stay's charges (住院费用), posted automatically after each Beijing midnight: a bed
//! day and a nursing day for every day in hospital — the day of admission counts,
//! the day of discharge does not (算入不算出) — and each dose given, by the drug's
//! units. Prices are the campus's price list's (settings of the campus, not code):
//! the bed day is the service item `bed-day`, the nursing day `nursing-special`,
//! `nursing-1`, `nursing-2` or `nursing-3` by the stay's level, a dose the drug's
//! item; a day at the price in force as it closes (a dose as it was given) at the
//! campus of the ward the patient was on. Without a price, nothing is charged (and the run says which items).
//!
//! Every charge is a ChargeItem of the stay (its `context`), kept at the campus that
//! holds the stay, so the final settlement settles the whole stay in one place;
//! its identifier names what it is for (`stay/{id}/bed/{date}`,
//! `MedicationAdministration/{id}`), and a posting writes only what has none yet —
//! each stay's new charges in one transaction, conditional on that identifier — so
//! running twice, or after a missed night, charges each day and dose once. A stay
//! discharged is posted at discharge (its last doses) and by the next runs.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use lianyi_billing::charges::{CHARGE_SYSTEM, NewCharge, charge_body};
use lianyi_billing::prices::PriceBook;
use lianyi_clinical::prescribing::{DRUG_SYSTEM, Frequency, Order, quantity};
use lianyi_clinical::scheduling::{local_date, local_instant};
use lianyi_security::{Caller, CampusId, SystemTask};
use serde_json::{Value, json};

use crate::beds::NursingLevel;
use crate::schedule::local_midnight;
use crate::stays::{Inpatient, InpatientError, invalid, reference_id};

const DAY_MS: i64 = 86_400_000;
const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
/// The price list's service item of a bed day.
pub const BED_DAY: &str = "bed-day";

/// The price list's service item of a day at a nursing level.
pub fn nursing_item(level: NursingLevel) -> String {
    format!("nursing-{}", level.code())
}

/// What a posting did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Posted {
    /// Stays looked at.
    pub stays: usize,
    /// Charges written.
    pub charges: usize,
    /// `campus kind reference` of what had no price (not charged).
    pub unpriced: BTreeSet<String>,
}

/// A charge a stay is due.
struct Due {
    key: String,
    campus: CampusId,
    /// The price list's kind and reference of the item.
    kind: &'static str,
    reference: String,
    units: i64,
    at: i64,
    /// The drug given, for a dose.
    drug: Option<&'static str>,
    /// The ward's department (the cost centre).
    department: String,
}

/// One posting at a time (the nightly run and a discharge may meet).
#[derive(Clone, Debug, Default)]
pub(crate) struct Turn(Arc<tokio::sync::Mutex<()>>);

/// The instant of a FHIR dateTime.
fn ms(v: &Value) -> Option<i64> {
    Some(lianyi_fhir::datetime::parse_range(v.as_str()?)?.low)
}

/// The ward a stay was on at `at`: the ward entry whose period covers it (the
/// current ward when none records it).
fn ward_at(stay: &Value, at: i64) -> Option<String> {
    let entries = stay["location"].as_array()?;
    let wards = || entries.iter().filter(|l| l["physicalType"]["coding"][0]["code"] == "wa");
    let covering = wards()
        .find(|l| ms(&l["period"]["start"]).is_some_and(|s| s <= at) && ms(&l["period"]["end"]).is_none_or(|e| e > at));
    covering
        .or_else(|| wards().find(|l| l["status"] != "completed"))
        .or_else(|| wards().next_back())
        .and_then(|l| reference_id(&l["location"], "Location"))
        .map(str::to_string)
}

/// The units of the drug one dose of a medication order takes (1 when unknown).
fn units_per_dose(order: &Value) -> i64 {
    let Some(d) = lianyi_clinical::prescribing::prescribed_drug(order) else { return 1 };
    let dose = order["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"].as_f64();
    dose.map_or(1, |dose| units_of(d, dose))
}

/// The units of drug `d` (vials, tablets …) a dose of `dose` (in the drug's dose
/// unit) takes: whole units, at least one.
pub fn units_of(d: &lianyi_clinical::prescribing::Drug, dose: f64) -> i64 {
    let once = Order { drug: d.code.to_string(), dose, frequency: Frequency::St, days: 1 };
    quantity(d, &once).map_or(1, i64::from)
}

impl Inpatient {
    /// Posts the charges not yet posted of every stay in hospital, and of those
    /// discharged in the last three days, up to `until` (the nightly run passes the
    /// moment it runs: days before today, doses given before now).
    pub async fn post_charges(&self, until: i64) -> Result<Posted, InpatientError> {
        let _turn = self.posting.0.lock().await;
        let task = Caller::task(SystemTask::Billing);
        let class = format!("{ACT_CODE}|IMP");
        let mut stays = self
            .search(
                &task,
                "Encounter",
                &[("class", class.clone()), ("status", "arrived,in-progress".into()), ("_count", "1000".into())],
            )
            .await?;
        stays.extend(
            self.search(
                &task,
                "Encounter",
                &[
                    ("class", class),
                    ("status", "finished".into()),
                    ("date", format!("ge{}", local_instant(until - 3 * DAY_MS))),
                    ("_count", "1000".into()),
                ],
            )
            .await?,
        );
        let mut posted = Posted::default();
        for stay in &stays {
            self.post_one(stay, until, &mut posted).await?;
            posted.stays += 1;
        }
        Ok(posted)
    }

    /// Posts one stay's charges not yet posted (a discharge posts its last doses).
    pub async fn post_stay(&self, stay: &str, until: i64) -> Result<Posted, InpatientError> {
        let _turn = self.posting.0.lock().await;
        let task = Caller::task(SystemTask::Billing);
        let v: Value = serde_json::from_str(&self.read(&task, "Encounter", stay).await?.body)
            .map_err(|e| invalid("stay", "stored", e.to_string()))?;
        let mut posted = Posted { stays: 1, ..Posted::default() };
        self.post_one(&v, until, &mut posted).await?;
        Ok(posted)
    }

    async fn post_one(&self, stay: &Value, until: i64, posted: &mut Posted) -> Result<(), InpatientError> {
        let task = Caller::task(SystemTask::Billing);
        let (Some(id), Some(patient), Some(admitted)) =
            (stay["id"].as_str(), stay["subject"]["reference"].as_str(), ms(&stay["period"]["start"]))
        else {
            return Ok(());
        };
        let context = format!("Encounter/{id}");
        let existing =
            self.search(&task, "ChargeItem", &[("context", context.clone()), ("_count", "1000".into())]).await?;
        let charged: HashSet<&str> = existing
            .iter()
            .flat_map(|c| c["identifier"].as_array().into_iter().flatten())
            .filter(|i| i["system"] == CHARGE_SYSTEM)
            .filter_map(|i| i["value"].as_str())
            .collect();
        // Whole days: from the day of admission to the day before the discharge (or
        // before `until`'s day).
        let end = ms(&stay["period"]["end"]).map_or(until, |e| e.min(until));
        let last_day = local_midnight(end);
        let mut wanted: Vec<Due> = Vec::new();
        let level = NursingLevel::of(stay).unwrap_or(NursingLevel::Second);
        let mut day = local_midnight(admitted);
        while day < last_day {
            let at = day + DAY_MS - 1;
            if let Some(ward) = ward_at(stay, at) {
                let ward = self.ward(&task, &ward).await?;
                let campus = CampusId::stored(&ward.campus);
                let date = local_date(day);
                for (what, reference) in [("bed", BED_DAY.to_string()), ("nursing", nursing_item(level))] {
                    let key = format!("stay/{id}/{what}/{date}");
                    if !charged.contains(key.as_str()) {
                        wanted.push(Due {
                            key,
                            campus: campus.clone(),
                            kind: "service",
                            reference,
                            units: 1,
                            // Priced as the day closes.
                            at,
                            drug: None,
                            department: ward.department.clone(),
                        });
                    }
                }
            }
            day += DAY_MS;
        }
        // Doses given before `until`.
        let given = self
            .search(
                &task,
                "MedicationAdministration",
                &[("context", context.clone()), ("status", "completed".into()), ("_count", "1000".into())],
            )
            .await?;
        for a in &given {
            let (Some(ma), Some(at)) = (a["id"].as_str(), ms(&a["effectiveDateTime"])) else { continue };
            let key = format!("MedicationAdministration/{ma}");
            if at > until || charged.contains(key.as_str()) {
                continue;
            }
            let Some(order) = reference_id(&a["request"], "MedicationRequest") else { continue };
            let order: Value = serde_json::from_str(&self.read(&task, "MedicationRequest", order).await?.body)
                .map_err(|e| invalid("order", "stored", e.to_string()))?;
            let Some(drug) = lianyi_clinical::prescribing::prescribed_drug(&order) else { continue };
            let Some(ward) = ward_at(stay, at) else { continue };
            let ward = self.ward(&task, &ward).await?;
            wanted.push(Due {
                key,
                campus: CampusId::stored(&ward.campus),
                kind: "drug",
                reference: drug.code.to_string(),
                units: units_per_dose(&order),
                at,
                drug: Some(drug.code),
                department: ward.department.clone(),
            });
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let prices = PriceBook::new(self.fhir.clone());
        let mut entries = Vec::new();
        for d in &wanted {
            let priced_at = Caller::task_at(SystemTask::Billing, d.campus.clone());
            let Some((item, unit_price)) =
                prices.price_of(&priced_at, d.campus.as_str(), d.kind, &d.reference, d.at).await?
            else {
                posted.unpriced.insert(format!("{} {} {}", d.campus.as_str(), d.kind, d.reference));
                continue;
            };
            let key = &d.key;
            let body = charge_body(&NewCharge {
                key,
                item: &item,
                unit_price,
                quantity: d.units,
                patient,
                at: d.at,
                encounter: Some(&context),
                cost_center: Some(&d.department),
                product: d.drug.map(|c| (DRUG_SYSTEM, c)),
            });
            entries.push(json!({"resource": body, "request": {"method": "POST", "url": "ChargeItem",
                                "ifNoneExist": format!("identifier={CHARGE_SYSTEM}|{key}")}}));
        }
        if entries.is_empty() {
            return Ok(());
        }
        // The stay's campus holds its charges: one account, settled in one place.
        let holder = self.read(&task, "Encounter", id).await?.campus.unwrap_or_default();
        let writer = Caller::task_at(SystemTask::Billing, CampusId::stored(&holder));
        let n = entries.len();
        self.fhir
            .process_bundle(&writer, json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}), true)
            .await?;
        posted.charges += n;
        Ok(())
    }

    /// Posts the charges after each Beijing midnight (and once at start, catching up
    /// a night the server was down), for ever; started with the server.
    pub async fn run_postings(self) {
        loop {
            let now = self.fhir.now_ms();
            match self.post_charges(now).await {
                Ok(p) if !p.unpriced.is_empty() => {
                    tracing::warn!(charges = p.charges, unpriced = ?p.unpriced, "inpatient charges: items without a price")
                }
                Ok(p) => tracing::info!(stays = p.stays, charges = p.charges, "inpatient charges posted"),
                Err(e) => tracing::warn!(error = %e, "inpatient charges not posted"),
            }
            // Five minutes after the next midnight.
            let next = local_midnight(now) + DAY_MS + 5 * 60_000;
            let wait = u64::try_from((next - now).max(60_000)).unwrap_or(60_000);
            tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
        }
    }
}
