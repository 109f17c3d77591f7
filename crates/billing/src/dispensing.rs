//! Dispensing (发药): a prescription joins its campus's queue when the cashier's
//! payment commits (unpaid prescriptions are never in it). The pharmacist reviews it
//! (审方) with the drug-safety findings recorded when it was signed, then dispenses
//! from the campus's outpatient pharmacy: batches first-expiry-first-out, expired
//! ones never, a MedicationDispense written and the stock decremented in one
//! transaction. Stock never goes negative: of two pharmacists taking the last box,
//! one succeeds and the other is told so, with nothing written. A return (退药) puts
//! the quantities back into their batches and makes the prescription refundable.

use lianyi_clinical::prescribing::{DRUG_SYSTEM, Drug, drug};
use lianyi_fhir::ResourceType;
use lianyi_security::{Caller, Perm};
use lianyi_services::{FhirService, ServiceError};
use lianyi_store::StoreError;
use lianyi_store::messages::SideWrite;
use lianyi_store::pharmacy::{Batch, Dispensing, QueueChange, StockMove};
use serde_json::{Value, json};

use crate::prices::FieldError;
use crate::stock::refused_field;

/// A dispense's batches: one complex extension per batch taken.
pub const BATCH_URL: &str = "urn:lianyi:fhir:dispensed-batch";

#[derive(Debug, thiserror::Error)]
pub enum DispenseError {
    #[error("{}", crate::prices::joined(.0))]
    Invalid(Vec<FieldError>),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error(transparent)]
    Service(ServiceError),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Search(crate::charges::ChargeError),
}

impl From<StoreError> for DispenseError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Refused(msg) => DispenseError::Invalid(vec![refused_field(&msg)]),
            other => DispenseError::Store(other),
        }
    }
}

impl From<ServiceError> for DispenseError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Store(s) => s.into(),
            other => DispenseError::Service(other),
        }
    }
}

fn invalid(field: &'static str, rule: &'static str, detail: impl Into<String>) -> DispenseError {
    DispenseError::Invalid(vec![FieldError { field, rule, detail: detail.into() }])
}

/// A queue entry with what the pharmacist needs to see in the list.
#[derive(Clone, Debug)]
pub struct QueueLine {
    pub entry: Dispensing,
    pub drug: Option<&'static Drug>,
    pub patient_name: String,
}

/// A drug-safety finding recorded when the prescription was signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// `high` (blocking, overridden by the doctor) or `moderate`.
    pub severity: String,
    pub detail: String,
    /// The doctor's override reason, if any.
    pub mitigation: Option<String>,
}

/// What the pharmacist reviews (审方) before dispensing.
#[derive(Clone, Debug)]
pub struct Review {
    pub entry: Dispensing,
    pub drug: Option<&'static Drug>,
    pub patient_name: String,
    /// The prescription number (`RX00000001`).
    pub number: String,
    pub dosage: String,
    pub prescriber: String,
    pub findings: Vec<Finding>,
    /// The store dispensed from and the batches first-expiry-first-out would take.
    pub store: Option<String>,
    pub picks: Vec<(Batch, i64)>,
    /// How much the store lacks (0 when it has enough).
    pub short: i64,
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Dispensary {
    fhir: FhirService,
}

/// The batches to take `quantity` from, first expiry first (`batches` sorted so), and
/// what is left uncovered.
pub fn pick_fefo(batches: &[Batch], quantity: i64) -> (Vec<(Batch, i64)>, i64) {
    let mut left = quantity;
    let mut picks = Vec::new();
    for b in batches {
        if left == 0 {
            break;
        }
        let take = b.quantity.min(left);
        if take > 0 {
            picks.push((b.clone(), take));
            left -= take;
        }
    }
    (picks, left)
}

fn rtype(t: &str) -> ResourceType {
    ResourceType::parse(t).expect("a supported type")
}

impl Dispensary {
    pub fn new(fhir: FhirService) -> Dispensary {
        Dispensary { fhir }
    }

    /// Pharmacists of the campus dispense.
    pub fn may_dispense(caller: &Caller, campus: &str) -> bool {
        let a = caller.access();
        a.allows("MedicationDispense", Perm::Create) && a.all_campuses().contains(campus)
    }

    pub(crate) fn fhir(&self) -> &FhirService {
        &self.fhir
    }

    pub(crate) fn check(caller: &Caller, campus: &str) -> Result<(), DispenseError> {
        if Self::may_dispense(caller, campus) {
            Ok(())
        } else {
            Err(DispenseError::Forbidden("prescriptions are dispensed by the campus's pharmacists"))
        }
    }

    /// The campus's outpatient pharmacy (the first of its outpatient stores).
    pub async fn pharmacy_store(&self, campus: &str) -> Result<Option<String>, DispenseError> {
        let stores = self.fhir.operations().pharmacy().stores().await?;
        Ok(stores.into_iter().find(|s| s.campus == campus && s.kind == "outpatient").map(|s| s.code))
    }

    /// Patients' names by id, read as the caller (one audited search).
    async fn names(&self, caller: &Caller, ids: &[&str]) -> Result<Vec<(String, String)>, DispenseError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut unique: Vec<&str> = ids.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let params = [("_id", unique.join(",")), ("_count", "1000".into())];
        let found = crate::charges::search(&self.fhir, caller, "Patient", &params).await.map_err(|e| match e {
            crate::charges::ChargeError::Service(s) => s.into(),
            other => DispenseError::Search(other),
        })?;
        Ok(found
            .iter()
            .filter_map(|r| {
                let v: Value = serde_json::from_str(&r.body).ok()?;
                Some((r.id.clone(), lianyi_clinical::registry::person_of(&v).name))
            })
            .collect())
    }

    /// The first `limit` of the campus's queue with `status` (`waiting`, oldest payment
    /// first, or `dispensed`, latest first), and how many there are in all.
    pub async fn queue(
        &self,
        caller: &Caller,
        campus: &str,
        status: &str,
        limit: i64,
    ) -> Result<(Vec<QueueLine>, i64), DispenseError> {
        Self::check(caller, campus)?;
        let pharmacy = self.fhir.operations().pharmacy();
        let total = pharmacy.queue_count(campus, status).await?;
        let entries = pharmacy.queue(campus, status, limit).await?;
        let ids: Vec<&str> = entries.iter().map(|e| e.patient.as_str()).collect();
        let names = self.names(caller, &ids).await?;
        let lines = entries
            .into_iter()
            .map(|entry| QueueLine {
                drug: drug(&entry.drug),
                patient_name: names
                    .iter()
                    .find(|(id, _)| *id == entry.patient)
                    .map(|(_, n)| n.clone())
                    .unwrap_or_default(),
                entry,
            })
            .collect();
        Ok((lines, total))
    }

    /// A prescription for review: its findings, and the batches dispensing would take.
    pub async fn review(&self, caller: &Caller, request: &str) -> Result<Option<Review>, DispenseError> {
        let Some(entry) = self.fhir.operations().pharmacy().dispensing(request).await? else { return Ok(None) };
        Self::check(caller, &entry.campus)?;
        let mr = self.fhir.reader(caller, rtype("MedicationRequest")).await?.read(request).await?;
        let mr: Value = serde_json::from_str(&mr.body).map_err(|e| invalid("prescription", "data", e.to_string()))?;
        let reader = self.fhir.reader(caller, rtype("DetectedIssue")).await?;
        let mut findings = Vec::new();
        for r in mr["detectedIssue"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let Some(id) = r["reference"].as_str().and_then(|x| x.strip_prefix("DetectedIssue/")) else { continue };
            let Ok(issue) = reader.read(id).await else { continue };
            let Ok(v) = serde_json::from_str::<Value>(&issue.body) else { continue };
            findings.push(Finding {
                severity: v["severity"].as_str().unwrap_or("moderate").to_string(),
                detail: v["detail"].as_str().unwrap_or_default().to_string(),
                mitigation: v["mitigation"][0]["action"]["text"].as_str().map(str::to_string),
            });
        }
        let store = self.pharmacy_store(&entry.campus).await?;
        let (picks, short) = match &store {
            Some(s) => {
                let today = lianyi_clinical::scheduling::local_date(self.fhir.now_ms());
                let batches =
                    self.fhir.operations().pharmacy().dispensable(&entry.campus, s, &entry.drug, &today).await?;
                pick_fefo(&batches, entry.quantity)
            }
            None => (Vec::new(), entry.quantity),
        };
        let names = self.names(caller, &[entry.patient.as_str()]).await?;
        Ok(Some(Review {
            drug: drug(&entry.drug),
            patient_name: names.into_iter().next().map(|(_, n)| n).unwrap_or_default(),
            number: mr["identifier"]
                .as_array()
                .and_then(|ids| ids.iter().find(|i| i["system"] == lianyi_clinical::prescribing::NUMBER_SYSTEM))
                .and_then(|i| i["value"].as_str())
                .unwrap_or_default()
                .to_string(),
            dosage: mr["dosageInstruction"][0]["text"].as_str().unwrap_or_default().to_string(),
            prescriber: mr["requester"]["display"].as_str().unwrap_or_default().to_string(),
            findings,
            store,
            picks,
            short,
            entry,
        }))
    }

    /// Dispenses a paid prescription: batches first-expiry-first-out from the
    /// campus's outpatient pharmacy, a MedicationDispense and the stock moves in one
    /// transaction. Returns the MedicationDispense id.
    pub async fn dispense(&self, caller: &Caller, request: &str) -> Result<String, DispenseError> {
        let ops = self.fhir.operations();
        let Some(entry) = ops.pharmacy().dispensing(request).await? else {
            return Err(invalid("prescription", "unpaid", "a paid prescription (unpaid ones are not dispensed)"));
        };
        Self::check(caller, &entry.campus)?;
        if entry.status != "waiting" {
            return Err(invalid("prescription", "not-waiting", format!("this prescription is {}", entry.status)));
        }
        let Some(store) = self.pharmacy_store(&entry.campus).await? else {
            return Err(invalid("store", "none", "the campus has no outpatient pharmacy"));
        };
        let mr = self.fhir.reader(caller, rtype("MedicationRequest")).await?.read(request).await?;
        let mr: Value = serde_json::from_str(&mr.body).map_err(|e| invalid("prescription", "data", e.to_string()))?;
        let id = format!("md-{request}");
        // Another pharmacist may take the batches picked meanwhile: pick again then.
        for attempt in 0..3 {
            let now = self.fhir.now_ms();
            let today = lianyi_clinical::scheduling::local_date(now);
            let batches = ops.pharmacy().dispensable(&entry.campus, &store, &entry.drug, &today).await?;
            let (picks, short) = pick_fefo(&batches, entry.quantity);
            if short > 0 {
                return Err(invalid(
                    "quantity",
                    "in-stock",
                    format!(
                        "only {} of {} in unexpired stock at the pharmacy: nothing was dispensed",
                        entry.quantity - short,
                        entry.quantity
                    ),
                ));
            }
            let unit = drug(&entry.drug).map(|d| d.form).unwrap_or("unit");
            let dispense = json!({"resourceType": "MedicationDispense", "id": id, "status": "completed",
                "medicationCodeableConcept": mr["medicationCodeableConcept"].clone(),
                "subject": mr["subject"].clone(),
                "authorizingPrescription": [{"reference": format!("MedicationRequest/{request}")}],
                "quantity": {"value": entry.quantity, "unit": unit},
                "whenPrepared": lianyi_clinical::scheduling::local_instant(now),
                "whenHandedOver": lianyi_clinical::scheduling::local_instant(now),
                "performer": [{"actor": {"display": caller.actor()}}],
                "extension": picks.iter().map(|(b, n)| json!({"url": BATCH_URL, "extension": [
                    {"url": "batch", "valueInteger": b.id}, {"url": "lot", "valueString": b.lot},
                    {"url": "expiry", "valueDate": b.expiry}, {"url": "quantity", "valueInteger": n}]})).collect::<Vec<_>>()});
            let mut dispense = dispense;
            if mr["encounter"].is_object() {
                dispense["context"] = mr["encounter"].clone();
            }
            if mr["dosageInstruction"].is_array() {
                dispense["dosageInstruction"] = mr["dosageInstruction"].clone();
            }
            let mut side: Vec<SideWrite> = picks
                .iter()
                .map(|(b, n)| {
                    SideWrite::Stock(StockMove {
                        batch: b.id,
                        delta: -n,
                        kind: "dispense".into(),
                        reference: Some(format!("MedicationDispense/{id}")),
                        reason: None,
                        actor: caller.actor().into(),
                        at: now,
                    })
                })
                .collect();
            side.push(SideWrite::Queue(QueueChange::Status {
                request: request.into(),
                from: "waiting".into(),
                to: "dispensed".into(),
                dispense: Some(id.clone()),
                by: caller.actor().into(),
                at: now,
            }));
            let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
                {"resource": dispense, "request": {"method": "PUT", "url": format!("MedicationDispense/{id}")}}]});
            match self.fhir.process_bundle_with(caller, bundle, true, &side).await {
                Ok(_) => return Ok(id),
                Err(ServiceError::Store(StoreError::Refused(msg))) if msg.starts_with("quantity") && attempt < 2 => {
                    continue;
                }
                Err(ServiceError::Store(StoreError::Refused(msg))) if msg.starts_with("prescription") => {
                    return Err(invalid(
                        "prescription",
                        "not-waiting",
                        "someone else dispensed or refunded this prescription meanwhile: nothing was written",
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(invalid("quantity", "in-stock", "the stock was taken meanwhile: nothing was dispensed"))
    }

    /// Returns a dispensed prescription (退药): every batch gets its quantity back, the
    /// MedicationDispense is stopped with the reason, and the prescription may be
    /// refunded; one transaction, audited.
    pub async fn return_dispense(&self, caller: &Caller, request: &str, reason: &str) -> Result<(), DispenseError> {
        let ops = self.fhir.operations();
        let Some(entry) = ops.pharmacy().dispensing(request).await? else {
            return Err(invalid("prescription", "unknown", "a dispensed prescription"));
        };
        Self::check(caller, &entry.campus)?;
        let reason = reason.trim();
        if reason.chars().count() < 2 || reason.chars().count() > 200 {
            return Err(invalid("reason", "required", "why the drug comes back (2 to 200 characters)"));
        }
        let (Some(id), "dispensed") = (entry.dispense.clone(), entry.status.as_str()) else {
            return Err(invalid("prescription", "not-dispensed", format!("this prescription is {}", entry.status)));
        };
        let stored = self.fhir.reader(caller, rtype("MedicationDispense")).await?.read(&id).await?;
        let mut md: Value =
            serde_json::from_str(&stored.body).map_err(|e| invalid("prescription", "data", e.to_string()))?;
        let now = self.fhir.now_ms();
        let mut side = Vec::new();
        for x in md["extension"].as_array().map(Vec::as_slice).unwrap_or_default() {
            if x["url"] != BATCH_URL {
                continue;
            }
            let part = |name: &str| x["extension"].as_array()?.iter().find(|p| p["url"] == name).cloned();
            let (Some(batch), Some(n)) = (
                part("batch").and_then(|p| p["valueInteger"].as_i64()),
                part("quantity").and_then(|p| p["valueInteger"].as_i64()),
            ) else {
                continue;
            };
            side.push(SideWrite::Stock(StockMove {
                batch,
                delta: n,
                kind: "return".into(),
                reference: Some(format!("MedicationDispense/{id}")),
                reason: Some(reason.into()),
                actor: caller.actor().into(),
                at: now,
            }));
        }
        side.push(SideWrite::Queue(QueueChange::Status {
            request: request.into(),
            from: "dispensed".into(),
            to: "returned".into(),
            dispense: None,
            by: caller.actor().into(),
            at: now,
        }));
        md["status"] = json!("stopped");
        md["note"] = json!([{"text": format!("退药 / returned: {reason}")}]);
        if let Some(o) = md.as_object_mut() {
            o.remove("meta");
        }
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": md, "request": {"method": "PUT", "url": format!("MedicationDispense/{id}"),
                                         "ifMatch": format!("W/\"{}\"", stored.version)}}]});
        self.fhir.process_bundle_with(caller, bundle, true, &side).await?;
        let mut e = caller.entry(now, "dispense-return", "success");
        e.resource_type = Some("MedicationDispense".into());
        e.resource_id = Some(id);
        e.patient = Some(entry.patient.clone());
        e.detail = Some(format!("{} × {} returned: {reason}", entry.drug, entry.quantity));
        self.fhir.audit_log().record(vec![e]).await.map_err(|x| DispenseError::Service(x.into()))?;
        Ok(())
    }
}

/// The queue entry a paid drug charge adds (its invoice number filled in when the
/// payment takes one), if the charge is for a catalogue drug's prescription.
pub(crate) fn queue_entry(charge: &Value, campus: &str, patient: &str, paid_at: i64) -> Option<Dispensing> {
    let request = charge["service"][0]["reference"].as_str()?.strip_prefix("MedicationRequest/")?;
    let drug =
        charge["productCodeableConcept"]["coding"].as_array()?.iter().find(|c| c["system"] == DRUG_SYSTEM)?["code"]
            .as_str()?;
    Some(Dispensing {
        request: request.into(),
        campus: campus.into(),
        patient: patient.into(),
        drug: drug.into(),
        quantity: charge["quantity"]["value"].as_i64().unwrap_or(1),
        invoice_no: 0,
        paid_at,
        status: "waiting".into(),
        dispense: None,
        changed_by: None,
        changed_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(id: i64, expiry: &str, quantity: i64) -> Batch {
        Batch {
            id,
            campus: "campus-east".into(),
            store: "op".into(),
            drug: "AMOX500".into(),
            lot: format!("L{id}"),
            expiry: expiry.into(),
            quantity,
            purchase_fen: 10,
            retail_fen: 20,
            supplier: None,
            received_at: 0,
        }
    }

    #[test]
    fn first_expiry_first_out() {
        let batches = [batch(1, "2027-01-01", 5), batch(2, "2027-06-01", 10), batch(3, "2028-01-01", 10)];
        let (picks, short) = pick_fefo(&batches, 12);
        let taken: Vec<(i64, i64)> = picks.iter().map(|(b, n)| (b.id, *n)).collect();
        assert_eq!((taken, short), (vec![(1, 5), (2, 7)], 0));
        let (picks, short) = pick_fefo(&batches, 30);
        assert_eq!((picks.len(), short), (3, 5));
    }
}
