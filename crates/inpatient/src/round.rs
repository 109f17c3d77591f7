//! The ward's medication round sent to the inpatient pharmacy (病区摆药): the doses of
//! a day still to give, by order — each order's units for the day in one
//! MedicationDispense in preparation, the ward its destination — for the pharmacist
//! to dispense from the campus's inpatient pharmacy
//! ([`lianyi_billing::rounds`]). Sending again adds only orders not sent yet for
//! the day (each line's identifier is the ward, the date and the order).

use lianyi_billing::rounds::{ROUND_SYSTEM, RoundLine, line_of};
use lianyi_clinical::prescribing::DRUG_SYSTEM;
use lianyi_clinical::prescribing::Drug;
use lianyi_clinical::scheduling::local_date;
use lianyi_security::{Caller, CampusId};
use serde_json::{Value, json};

use crate::administration::DoseState;
use crate::charging::units_of;
use crate::stays::{Inpatient, InpatientError, invalid};

/// An order's doses of the day still to give.
struct ToSend {
    order: String,
    stay: String,
    patient: String,
    drug: &'static Drug,
    what: String,
    doses: i64,
    /// One dose, in the drug's dose unit.
    dose: f64,
}

impl Inpatient {
    /// The writer of `ward`'s round: a nurse of its campus.
    async fn round_writer(&self, caller: &Caller, ward: &str) -> Result<(Caller, String), InpatientError> {
        if !Self::may_keep_ward(caller) {
            return Err(InpatientError::Forbidden("sending the round is not among your roles".into()));
        }
        let ward = self.ward(caller, ward).await?;
        if !Self::nurse_at(caller, &ward.campus) {
            return Err(InpatientError::Forbidden(format!("the wards of {} are not among your campuses", ward.campus)));
        }
        let campus = CampusId::parse(&ward.campus).map_err(|_| invalid("ward", "ward", "a ward of a campus"))?;
        let here = caller
            .at_campus(&campus)
            .ok_or_else(|| InpatientError::Forbidden("the ward's campus is not among your campuses".into()))?;
        Ok((here.sending_rounds(&campus), ward.id))
    }

    /// The lines of `ward`'s round of the day of `day_ms` as sent: waiting or dispensed.
    pub async fn round(&self, caller: &Caller, ward: &str, day_ms: i64) -> Result<Vec<RoundLine>, InpatientError> {
        let (writer, ward) = self.round_writer(caller, ward).await?;
        self.round_lines(&writer, &ward, &local_date(day_ms)).await
    }

    /// The lines of `ward`'s round of `date` (`YYYY-MM-DD`), read as `writer`.
    async fn round_lines(&self, writer: &Caller, ward: &str, date: &str) -> Result<Vec<RoundLine>, InpatientError> {
        let rows = self
            .search(
                writer,
                "MedicationDispense",
                &[("destination", format!("Location/{ward}")), ("_count", "1000".into())],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|v| line_of(v["id"].as_str()?, v))
            .filter(|l| l.ward == ward && l.date == date)
            .collect())
    }

    /// Sends `ward`'s round of the day of `day_ms`: every order with doses still to
    /// give that day and not sent yet, its units for them; returns how many lines
    /// were sent (none left to send: an error saying so).
    pub async fn send_round(&self, caller: &Caller, ward: &str, day_ms: i64) -> Result<usize, InpatientError> {
        let (writer, ward) = self.round_writer(caller, ward).await?;
        let date = local_date(day_ms);
        let sent: Vec<String> = self.round_lines(&writer, &ward, &date).await?.into_iter().map(|l| l.order).collect();
        let mut by_order: Vec<ToSend> = Vec::new();
        for d in self.doses(caller, &ward, day_ms).await? {
            if !matches!(d.state, DoseState::Due | DoseState::Overdue) {
                continue;
            }
            let Some(drug) = d.order.drug.as_deref().and_then(lianyi_clinical::prescribing::drug) else { continue };
            let dose: f64 = d.order.dose.split_whitespace().next().and_then(|x| x.parse().ok()).unwrap_or(0.0);
            match by_order.iter_mut().find(|o| o.order == d.order.reference) {
                Some(o) => o.doses += 1,
                None => by_order.push(ToSend {
                    order: d.order.reference.clone(),
                    stay: d.stay,
                    patient: d.patient.id.clone(),
                    drug,
                    what: d.order.what.clone(),
                    doses: 1,
                    dose,
                }),
            }
        }
        let mut entries: Vec<Value> = Vec::new();
        for ToSend { order, stay, patient, drug, what, doses, dose } in &by_order {
            let key = format!("{ward}/{date}/{}", order.trim_start_matches("MedicationRequest/"));
            if sent.contains(order) {
                continue;
            }
            let units = units_of(drug, *dose) * doses;
            let md = json!({"resourceType": "MedicationDispense", "status": "preparation",
                "identifier": [{"system": ROUND_SYSTEM, "value": key}],
                "medicationCodeableConcept": {"coding": [{"system": DRUG_SYSTEM, "code": drug.code}], "text": what},
                "subject": {"reference": format!("Patient/{patient}")},
                "context": {"reference": format!("Encounter/{stay}")},
                "authorizingPrescription": [{"reference": order}],
                "quantity": {"value": units, "unit": drug.form},
                "destination": {"reference": format!("Location/{ward}")},
                "note": [{"text": format!("{date}: {doses} doses")}]});
            entries.push(json!({"resource": md, "request": {"method": "POST", "url": "MedicationDispense",
                                "ifNoneExist": format!("identifier={ROUND_SYSTEM}|{key}")}}));
        }
        if entries.is_empty() {
            return Err(invalid("date", "round-empty", "no doses of the day left to send (sent already, or none due)"));
        }
        let n = entries.len();
        self.fhir
            .process_bundle(&writer, json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}), true)
            .await?;
        Ok(n)
    }
}
