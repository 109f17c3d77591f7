//! Charges (费用): every signed order becomes a FHIR ChargeItem priced from its
//! campus's list at the moment it was ordered — a prescription by the drug's unit
//! price times the quantity to dispense, a laboratory or imaging request by its
//! order's price, a booked appointment by the registration fee — linked to the
//! order and the visit. A cancelled order takes its unpaid charge back (the charge
//! becomes not billable). A watcher follows the outbox as the billing task, so orders
//! from the pages, the API and HL7 are charged alike; each order has at most one
//! charge (found by its identifier before one is made).
//!
//! Amounts are exact: the total and the unit price in fen are extensions of the
//! ChargeItem (`urn:lianyi:fhir:amount-fen`, `urn:lianyi:fhir:unit-price-fen`); no
//! float is ever stored.

use std::time::Duration;

use lianyi_fhir::ResourceType;
use lianyi_fhir::search::parse_search;
use lianyi_security::{Caller, CampusId, SystemTask};
use lianyi_services::{FhirService, ServiceError};
use lianyi_store::StoredResource;
use lianyi_store::outbox::OutboxEvent;
use serde_json::{Value, json};

use crate::money::Fen;
use crate::prices::{PriceBook, PriceError};

/// A charge's identifier system; the value names the order (`MedicationRequest/123`).
pub const CHARGE_SYSTEM: &str = "urn:lianyi:sid:charge";
/// The price list item a charge was priced by.
pub const PRICE_ITEM_SYSTEM: &str = "urn:lianyi:price-item";
pub const AMOUNT_URL: &str = "urn:lianyi:fhir:amount-fen";
pub const UNIT_PRICE_URL: &str = "urn:lianyi:fhir:unit-price-fen";
pub const CATEGORY_URL: &str = "urn:lianyi:fhir:charge-category";
/// A high-value consumable's unique code (UDI) on its charge.
pub const UDI_SYSTEM: &str = "urn:lianyi:sid:udi";
/// The materials catalogue's codes.
pub const MATERIAL_SYSTEM: &str = "urn:lianyi:material";
const CURSOR: &str = "billing-charges";

#[derive(Debug, thiserror::Error)]
pub enum ChargeError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Price(#[from] PriceError),
    #[error(transparent)]
    Store(#[from] lianyi_store::StoreError),
    #[error("{0}")]
    Data(String),
}

/// A charge as the cashier's pages list it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChargeLine {
    pub id: String,
    /// `YYYY-MM-DD HH:MM` of the order.
    pub when: String,
    pub name_zh: String,
    pub name_en: String,
    pub category: String,
    pub quantity: i64,
    pub unit: String,
    pub unit_price: Fen,
    pub amount: Fen,
    /// The visit (Encounter id), if the order had one.
    pub encounter: Option<String>,
    /// `billable`, `billed` (paid), `aborted` (refunded) …
    pub status: String,
}

/// A charge to post: what its ChargeItem says.
#[derive(Clone, Debug)]
pub struct NewCharge<'a> {
    /// What it charges for, its identifier's value (an order `MedicationRequest/…`,
    /// a unit `material-unit/…`, a stay's day `stay/…/bed/2026-12-07` …): at most one
    /// charge each.
    pub key: &'a str,
    pub item: &'a lianyi_store::prices::PriceItem,
    pub unit_price: Fen,
    pub quantity: i64,
    /// `Patient/…`.
    pub patient: &'a str,
    pub at: i64,
    /// `Encounter/…`, the visit or stay.
    pub encounter: Option<&'a str>,
    /// The department it counts for (an Organization id).
    pub cost_center: Option<&'a str>,
    /// The product charged: (system, code) — a drug, a material.
    pub product: Option<(&'a str, &'a str)>,
}

/// The billable ChargeItem of `c`: its amount exact (unit price times quantity, in fen).
pub fn charge_body(c: &NewCharge) -> Value {
    let amount = c.unit_price.0.saturating_mul(c.quantity);
    let item = c.item;
    let mut charge = json!({"resourceType": "ChargeItem", "status": "billable",
        "identifier": [{"system": CHARGE_SYSTEM, "value": c.key}],
        "code": {"coding": [{"system": PRICE_ITEM_SYSTEM, "code": item.code, "display": item.name_en}], "text": item.name_zh},
        "subject": {"reference": c.patient},
        "occurrenceDateTime": lianyi_clinical::scheduling::local_instant(c.at),
        "quantity": {"value": c.quantity, "unit": item.unit},
        "extension": [{"url": AMOUNT_URL, "valueInteger": amount},
                      {"url": UNIT_PRICE_URL, "valueInteger": c.unit_price.0},
                      {"url": CATEGORY_URL, "valueCode": item.category}]});
    if let Some(e) = c.encounter {
        charge["context"] = json!({"reference": e});
    }
    if let Some(d) = c.cost_center {
        charge["costCenter"] = json!({"reference": format!("Organization/{d}")});
    }
    if let Some((system, code)) = c.product {
        charge["productCodeableConcept"] = json!({"coding": [{"system": system, "code": code}]});
    }
    charge
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Charger {
    fhir: FhirService,
    prices: PriceBook,
}

/// A search as `caller` (checked and audited by the FHIR service): the resources.
pub(crate) async fn search(
    fhir: &FhirService,
    caller: &Caller,
    t: &str,
    params: &[(&str, String)],
) -> Result<Vec<StoredResource>, ChargeError> {
    let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let req = parse_search(rtype(t)?, &params).map_err(|i| ChargeError::Data(i.diagnostics))?;
    Ok(fhir.search(&fhir.permit(caller, req.resource_type).await?, &req).await?.resources)
}

pub(crate) fn rtype(t: &str) -> Result<ResourceType, ChargeError> {
    ResourceType::parse(t).ok_or_else(|| ChargeError::Data(format!("{t} is not supported")))
}

fn ms_of(v: &Value) -> Option<i64> {
    lianyi_fhir::datetime::parse_range(v.as_str()?).map(|r| r.low)
}

/// The value of a resource's integer extension `url` (0 when it has none).
pub fn extension_i64(v: &Value, url: &str) -> i64 {
    v["extension"]
        .as_array()
        .and_then(|xs| xs.iter().find(|x| x["url"] == url))
        .and_then(|x| x["valueInteger"].as_i64())
        .unwrap_or_default()
}

impl Charger {
    pub fn new(fhir: FhirService) -> Charger {
        Charger { prices: PriceBook::new(fhir.clone()), fhir }
    }

    /// The billing task, at the order's campus (what it writes belongs there).
    fn task(campus: Option<&str>) -> Caller {
        match campus {
            Some(c) => Caller::task_at(SystemTask::Billing, CampusId::stored(c)),
            None => Caller::task(SystemTask::Billing),
        }
    }

    /// Follows the outbox for ever (started with the server).
    pub async fn run(self) {
        let mut cursor = None;
        let mut pause = lianyi_services::follow::Pause::new("billing");
        loop {
            let round = match self.scan(&mut cursor).await {
                Ok(n) => self.charge_used_units().await.map(|m| n + m),
                Err(e) => Err(e),
            };
            if let Err(e) = &round
                && !pause.paused()
            {
                tracing::warn!(error = %e, "billing scan failed");
            }
            let wait = pause.after(&self.fhir.operations(), round.is_ok(), Duration::from_millis(500)).await;
            tokio::time::sleep(wait).await;
        }
    }

    /// Charges the orders changed since the last scan (and takes back the charges of
    /// cancelled ones); returns how many charges were made or taken back.
    pub async fn scan(&self, known: &mut Option<i64>) -> Result<usize, ChargeError> {
        lianyi_services::follow::scan(&self.fhir.operations(), CURSOR, known, |e| async move { self.handle(&e).await })
            .await
    }

    async fn handle(&self, e: &OutboxEvent) -> Result<bool, ChargeError> {
        if e.method == "DELETE"
            || !matches!(e.resource_type.as_str(), "MedicationRequest" | "ServiceRequest" | "Appointment")
        {
            return Ok(false);
        }
        let task = Self::task(e.campus.as_deref());
        let stored = match self.fhir.reader(&task, rtype(&e.resource_type)?).await?.read(&e.id).await {
            Ok(r) => r,
            Err(ServiceError::NotFound { .. } | ServiceError::Gone { .. }) => return Ok(false),
            Err(other) => return Err(other.into()),
        };
        if stored.version != e.version {
            return Ok(false); // a later version follows in the outbox
        }
        let order: Value = serde_json::from_str(&stored.body).map_err(|x| ChargeError::Data(x.to_string()))?;
        if inpatient_order(&order) {
            return Ok(false); // charged to the stay as carried out, not at the cashier
        }
        let status = order["status"].as_str().unwrap_or_default();
        let (wanted, cancelled) = match e.resource_type.as_str() {
            "MedicationRequest" => (status == "active", matches!(status, "cancelled" | "stopped" | "entered-in-error")),
            "ServiceRequest" => (status == "active", matches!(status, "revoked" | "entered-in-error")),
            _ => {
                (matches!(status, "booked" | "arrived"), matches!(status, "cancelled" | "noshow" | "entered-in-error"))
            }
        };
        let key = format!("{}/{}", e.resource_type, e.id);
        let wide = Caller::task(SystemTask::Billing);
        let existing =
            search(&self.fhir, &wide, "ChargeItem", &[("identifier", format!("{CHARGE_SYSTEM}|{key}"))]).await?;
        if cancelled {
            for c in existing {
                let mut body: Value = serde_json::from_str(&c.body).map_err(|x| ChargeError::Data(x.to_string()))?;
                if body["status"] != "billable" {
                    continue;
                }
                body["status"] = json!("not-billable");
                if let Some(o) = body.as_object_mut() {
                    o.remove("meta");
                }
                let entry = json!({"resource": body, "request": {"method": "PUT", "url": format!("ChargeItem/{}", c.id),
                                                                  "ifMatch": format!("W/\"{}\"", c.version)}});
                let task = Self::task(c.campus.as_deref());
                self.fhir
                    .process_bundle(
                        &task,
                        json!({"resourceType": "Bundle", "type": "transaction", "entry": [entry]}),
                        true,
                    )
                    .await?;
                return Ok(true);
            }
            return Ok(false);
        }
        if !wanted || !existing.is_empty() {
            return Ok(false);
        }
        let Some(campus) = e.campus.as_deref() else { return Ok(false) };
        let Some(charge) = self.priced_charge(campus, &e.resource_type, &key, &order).await? else {
            tracing::debug!(order = %key, "no price for an order: not charged");
            return Ok(false);
        };
        self.fhir
            .process_bundle(
                &task,
                json!({"resourceType": "Bundle", "type": "transaction",
                       "entry": [{"resource": charge, "request": {"method": "POST", "url": "ChargeItem"}}]}),
                true,
            )
            .await?;
        Ok(true)
    }

    /// The ChargeItem for an order, priced at its campus at the time it was ordered;
    /// `None` when the campus's list has no price for it.
    async fn priced_charge(
        &self,
        campus: &str,
        t: &str,
        key: &str,
        order: &Value,
    ) -> Result<Option<Value>, ChargeError> {
        let task = Self::task(Some(campus));
        let (kind, reference, quantity, at, patient, encounter) = match t {
            "MedicationRequest" => {
                let code = order["medicationCodeableConcept"]["coding"]
                    .as_array()
                    .and_then(|cs| cs.iter().find(|c| c["system"] == lianyi_clinical::prescribing::DRUG_SYSTEM))
                    .and_then(|c| c["code"].as_str());
                let quantity = order["dispenseRequest"]["quantity"]["value"].as_i64().unwrap_or(1).max(1);
                (
                    "drug",
                    code.map(str::to_string),
                    quantity,
                    ms_of(&order["authoredOn"]),
                    order["subject"]["reference"].as_str(),
                    order["encounter"]["reference"].as_str(),
                )
            }
            "ServiceRequest" => (
                "order",
                lianyi_clinical::orders::order_code_of(order),
                1,
                ms_of(&order["authoredOn"]),
                order["subject"]["reference"].as_str(),
                order["encounter"]["reference"].as_str(),
            ),
            _ => {
                let patient = order["participant"].as_array().and_then(|ps| {
                    ps.iter().find_map(|p| p["actor"]["reference"].as_str().filter(|r| r.starts_with("Patient/")))
                });
                let at = ms_of(&order["created"]).or_else(|| ms_of(&order["start"]));
                let clinic = self.clinic_type(&task, order).await?;
                ("registration", Some(clinic.to_string()), 1, at, patient, None)
            }
        };
        let (Some(reference), Some(patient)) = (reference, patient) else { return Ok(None) };
        let at = at.unwrap_or_else(|| self.fhir.now_ms());
        let Some((item, unit_price)) = self.prices.price_of(&task, campus, kind, &reference, at).await? else {
            return Ok(None);
        };
        let department = self.department(&task, t, order, encounter).await?;
        let mut charge = charge_body(&NewCharge {
            key,
            item: &item,
            unit_price,
            quantity,
            patient,
            at,
            encounter,
            cost_center: department.as_deref(),
            // The drug itself, so the paid prescription reaches the pharmacist's queue.
            product: (kind == "drug").then_some((lianyi_clinical::prescribing::DRUG_SYSTEM, reference.as_str())),
        });
        charge["service"] = json!([{"reference": key}]);
        Ok(Some(charge))
    }

    /// Reads a resource as the billing task, `None` when it is not there.
    async fn read(&self, task: &Caller, reference: &str) -> Result<Option<Value>, ChargeError> {
        let Some((t, id)) = reference.split_once('/') else { return Ok(None) };
        match self.fhir.reader(task, rtype(t)?).await?.read(id).await {
            Ok(r) => Ok(serde_json::from_str(&r.body).ok()),
            Err(ServiceError::NotFound { .. } | ServiceError::Gone { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The clinic type an appointment is registered for: `expert` (专家门诊) with a
    /// doctor whose professional title is chief or associate chief physician (主任医师,
    /// 副主任医师), else `general` (普通门诊).
    async fn clinic_type(&self, task: &Caller, appointment: &Value) -> Result<&'static str, ChargeError> {
        let doctor = appointment["participant"].as_array().and_then(|ps| {
            ps.iter().find_map(|p| p["actor"]["reference"].as_str().filter(|r| r.starts_with("Practitioner/")))
        });
        let Some(doctor) = doctor else { return Ok("general") };
        let Some(p) = self.read(task, doctor).await? else { return Ok("general") };
        Ok(if lianyi_clinical::names::is_expert(&p) { "expert" } else { "general" })
    }

    /// The department a charge counts for (its cost centre): the visit's department
    /// for an order, the doctor's role's for a registration.
    async fn department(
        &self,
        task: &Caller,
        t: &str,
        order: &Value,
        encounter: Option<&str>,
    ) -> Result<Option<String>, ChargeError> {
        let org = if t == "Appointment" {
            let role = order["participant"].as_array().and_then(|ps| {
                ps.iter().find_map(|p| p["actor"]["reference"].as_str().filter(|r| r.starts_with("PractitionerRole/")))
            });
            match role {
                Some(r) => {
                    self.read(task, r).await?.and_then(|v| v["organization"]["reference"].as_str().map(str::to_string))
                }
                None => None,
            }
        } else {
            match encounter {
                Some(e) => self
                    .read(task, e)
                    .await?
                    .and_then(|v| v["serviceProvider"]["reference"].as_str().map(str::to_string)),
                None => None,
            }
        };
        Ok(org.and_then(|o| o.strip_prefix("Organization/").map(str::to_string)))
    }

    /// Charges the high-value units used on patients and not charged yet, each at
    /// the price of its campus's list when it was used (kind `material`, the item's
    /// code); a unit has at most one charge (found by its identifier before one is
    /// made). Returns how many were charged.
    pub async fn charge_used_units(&self) -> Result<usize, ChargeError> {
        let materials = self.fhir.operations().materials();
        let mut charged = 0;
        for unit in materials.uncharged(100).await? {
            if let Some(id) = self.charge_unit(&unit).await? {
                materials.set_charge(&unit.udi, &id).await?;
                charged += 1;
            }
        }
        Ok(charged)
    }

    async fn charge_unit(&self, u: &lianyi_store::materials::Unit) -> Result<Option<String>, ChargeError> {
        let key = format!("material-unit/{}", u.udi);
        let wide = Caller::task(SystemTask::Billing);
        let existing =
            search(&self.fhir, &wide, "ChargeItem", &[("identifier", format!("{CHARGE_SYSTEM}|{key}"))]).await?;
        if let Some(c) = existing.first() {
            return Ok(Some(c.id.clone()));
        }
        let (Some(patient), Some(at)) = (u.patient.as_deref(), u.used_at) else { return Ok(None) };
        let task = Self::task(Some(&u.campus));
        let Some((item, unit_price)) = self.prices.price_of(&task, &u.campus, "material", &u.item, at).await? else {
            tracing::debug!(item = %u.item, "no price for a high-value item: not charged");
            return Ok(None);
        };
        let patient = format!("Patient/{patient}");
        let mut charge = charge_body(&NewCharge {
            key: &key,
            item: &item,
            unit_price,
            quantity: 1,
            patient: &patient,
            at,
            encounter: None,
            cost_center: Some(&u.location),
            product: Some((MATERIAL_SYSTEM, &u.item)),
        });
        charge["identifier"] = json!([{"system": CHARGE_SYSTEM, "value": key}, {"system": UDI_SYSTEM, "value": u.udi}]);
        let response = self
            .fhir
            .process_bundle(
                &task,
                json!({"resourceType": "Bundle", "type": "transaction",
                       "entry": [{"resource": charge, "request": {"method": "POST", "url": "ChargeItem"}}]}),
                true,
            )
            .await?;
        Ok(response["entry"][0]["response"]["location"].as_str().and_then(|l| l.split('/').nth(1)).map(str::to_string))
    }

    /// A patient's charges not yet paid (billable), as `caller` may read them, oldest
    /// first.
    pub async fn open_charges(&self, caller: &Caller, patient: &str) -> Result<Vec<ChargeLine>, ChargeError> {
        let found = search(
            &self.fhir,
            caller,
            "ChargeItem",
            &[("subject", format!("Patient/{patient}")), ("_count", "1000".into())],
        )
        .await?;
        let mut out: Vec<ChargeLine> = found
            .iter()
            .filter_map(|r| {
                let c: Value = serde_json::from_str(&r.body).ok()?;
                // R4 has no search parameter for a charge's status.
                (c["status"] == "billable").then(|| line_of(&r.id, &c))
            })
            .collect();
        out.sort_by(|a, b| a.when.cmp(&b.when).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }
}

/// A ChargeItem as pages list it.
pub fn line_of(id: &str, c: &Value) -> ChargeLine {
    let category = c["extension"]
        .as_array()
        .and_then(|xs| xs.iter().find(|x| x["url"] == CATEGORY_URL))
        .and_then(|x| x["valueCode"].as_str())
        .unwrap_or("other");
    let when = c["occurrenceDateTime"].as_str().unwrap_or_default();
    ChargeLine {
        id: id.to_string(),
        when: format!("{} {}", when.get(..10).unwrap_or_default(), when.get(11..16).unwrap_or_default()),
        name_zh: c["code"]["text"].as_str().unwrap_or_default().to_string(),
        name_en: c["code"]["coding"][0]["display"].as_str().unwrap_or_default().to_string(),
        category: category.to_string(),
        quantity: c["quantity"]["value"].as_i64().unwrap_or(1),
        unit: c["quantity"]["unit"].as_str().unwrap_or_default().to_string(),
        unit_price: Fen(extension_i64(c, UNIT_PRICE_URL)),
        amount: Fen(extension_i64(c, AMOUNT_URL)),
        encounter: c["context"]["reference"].as_str().and_then(|e| e.strip_prefix("Encounter/")).map(str::to_string),
        status: c["status"].as_str().unwrap_or_default().to_string(),
    }
}

/// A ward's order (医嘱, category `inpatient`): charged to the stay as it is carried
/// out, not to the cashier when it is signed.
fn inpatient_order(order: &Value) -> bool {
    order["category"].as_array().is_some_and(|cs| {
        cs.iter().any(|c| c["coding"].as_array().is_some_and(|cd| cd.iter().any(|x| x["code"] == "inpatient")))
    })
}
