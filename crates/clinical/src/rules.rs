//! The clinical rules that need stored data, which the FHIR service checks on every
//! door (the FHIR API and its bundles, HL7, the pages): the platform is wired with
//! [`all`] (`FhirService::with_rules`). The pages check the same rules earlier to
//! answer in a form; these are what hold when a client writes the resources itself.
//!
//! - **A booking takes a free slot**: a new Appointment (booked, arrived, pending …)
//!   may name only Slots that are stored as `free`; the booking marks its Slot busy in
//!   the same transaction, as the scheduling pages do.
//! - **A prescription passes the drug-safety checks**: a new MedicationRequest
//!   (active, draft or on hold) for a drug of the catalogue is checked against the
//!   patient's active allergies and prescriptions and the dose limits
//!   ([`crate::prescribing::check`]); a blocking finding needs an override documented
//!   as a DetectedIssue the request names (`MedicationRequest.detectedIssue`), as the
//!   prescribing page writes it.
//!
//! `$import` loads what already happened (a migration's bookings and prescriptions),
//! so these rules about the moment of an action do not apply there; the content rules
//! (resident ID, dates) do.

use std::sync::Arc;

use lianyi_fhir::ResourceType;
use lianyi_services::rules::{Proposed, RuleFuture, StoredData, StoredRule, broken_rule};
use serde_json::Value;

use crate::prescribing::{Frequency, Kind, Order, allergy_substance, check, prescribed_drug};

/// Every clinical rule on stored data.
pub fn all() -> Vec<Arc<dyn StoredRule>> {
    vec![Arc::new(FreeSlot), Arc::new(DrugSafety)]
}

/// A new Appointment takes only free Slots.
#[derive(Debug)]
pub struct FreeSlot;

impl StoredRule for FreeSlot {
    fn applies_to(&self, rtype: &str) -> bool {
        rtype == "Appointment"
    }

    fn check<'a>(&'a self, data: &'a StoredData<'a>, write: &'a Proposed<'a>) -> RuleFuture<'a> {
        Box::pin(async move {
            let status = write.resource["status"].as_str().unwrap_or_default();
            let takes_time = !matches!(status, "proposed" | "cancelled" | "noshow" | "entered-in-error" | "waitlist");
            if !write.creating || !takes_time {
                return Ok(());
            }
            let slots = write.resource["slot"].as_array().map(Vec::as_slice).unwrap_or_default();
            for (n, s) in slots.iter().enumerate() {
                let Some(id) = s["reference"].as_str().and_then(|r| r.strip_prefix("Slot/")) else { continue };
                let at = format!("Appointment.slot[{n}]");
                match data.read("Slot", id).await? {
                    Some(slot) if slot["status"] == "free" => {}
                    Some(slot) => {
                        let now = slot["status"].as_str().unwrap_or("not free");
                        return Err(broken_rule(
                            &at,
                            format!("Slot/{id} is {now} (rule: a new appointment takes a free slot)"),
                        ));
                    }
                    None => {
                        return Err(broken_rule(
                            &at,
                            format!("Slot/{id} is not known (rule: a booking names a stored slot)"),
                        ));
                    }
                }
            }
            Ok(())
        })
    }
}

/// A new prescription of a catalogue drug passes the drug-safety checks, or documents
/// its override.
#[derive(Debug)]
pub struct DrugSafety;

/// The order a MedicationRequest carries: dose (if given), frequency, days.
fn order_of(m: &Value, code: &str) -> (Order, bool) {
    let dosage = &m["dosageInstruction"][0];
    let dose = dosage["doseAndRate"][0]["doseQuantity"]["value"].as_f64();
    let per_day = dosage["timing"]["repeat"]["frequency"].as_u64().unwrap_or(1);
    let frequency = dosage["timing"]["code"]["text"].as_str().and_then(Frequency::parse).unwrap_or_else(|| {
        Frequency::ALL.into_iter().find(|f| u64::from(f.per_day()) == per_day).unwrap_or(Frequency::Qd)
    });
    let days = m["dispenseRequest"]["expectedSupplyDuration"]["value"].as_u64().unwrap_or(1).clamp(1, 365) as u32;
    let order = Order { drug: code.to_string(), dose: dose.unwrap_or(0.0), frequency, days };
    (order, dose.is_some_and(|d| d.is_finite() && d > 0.0))
}

impl StoredRule for DrugSafety {
    fn applies_to(&self, rtype: &str) -> bool {
        rtype == "MedicationRequest"
    }

    fn check<'a>(&'a self, data: &'a StoredData<'a>, write: &'a Proposed<'a>) -> RuleFuture<'a> {
        Box::pin(async move {
            let m = write.resource;
            let in_force = matches!(m["status"].as_str(), Some("active" | "draft" | "on-hold"));
            if !write.creating || !in_force {
                return Ok(());
            }
            let Some(d) = prescribed_drug(m) else { return Ok(()) };
            let Some(patient) = m["subject"]["reference"].as_str().and_then(|r| r.strip_prefix("Patient/")) else {
                return Ok(());
            };
            let of_patient = |extra: (&str, &str)| {
                vec![("patient".to_string(), format!("Patient/{patient}")), (extra.0.to_string(), extra.1.to_string())]
            };
            let (Some(allergy_type), Some(request_type)) =
                (ResourceType::parse("AllergyIntolerance"), ResourceType::parse("MedicationRequest"))
            else {
                return Ok(());
            };
            let allergies: Vec<String> = data
                .search(allergy_type, &of_patient(("clinical-status", "active")))
                .await?
                .iter()
                .filter_map(allergy_substance)
                .collect();
            let active: Vec<_> = data
                .search(request_type, &of_patient(("status", "active")))
                .await?
                .iter()
                .filter(|r| r["id"].as_str() != Some(write.id))
                .filter_map(prescribed_drug)
                .collect();
            let (order, dosed) = order_of(m, d.code);
            let findings = check(&order, d, &allergies, &active);
            let overridden = m["detectedIssue"].as_array().is_some_and(|a| !a.is_empty());
            let blocking = findings
                .iter()
                .filter(|f| f.blocking)
                // Without a dose there is no dose to judge.
                .find(|f| dosed || !matches!(f.kind, Kind::DoseHigh | Kind::DoseLow));
            match blocking {
                Some(f) if !overridden => Err(broken_rule(
                    "MedicationRequest.medicationCodeableConcept",
                    format!(
                        "{} (rule: a prescription with a blocking drug-safety finding is signed only with an \
                         override, a DetectedIssue with the reason in MedicationRequest.detectedIssue)",
                        f.en
                    ),
                )),
                _ => Ok(()),
            }
        })
    }
}
