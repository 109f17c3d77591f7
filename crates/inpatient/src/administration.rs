//! Giving medications on the ward: each nurse's task list for a day — every dose of
//! the ward's orders in force, due at the medication rounds, with what became of it
//! (given, given late, refused, held, due, overdue) — and the record of one dose
//! (MedicationAdministration) against its due time, once the patient's wristband (the
//! stay number or the MRN) and the drug's code were scanned or typed and match. A
//! dose is recorded once (its identifier is the order and the due time); a stopped or
//! unverified order is not given.

use std::collections::HashMap;

use lianyi_clinical::prescribing::Frequency;
use lianyi_clinical::scheduling::local_instant;
use lianyi_security::Caller;
use serde_json::{Value, json};

use crate::beds::current;
use crate::orders::{Kind, WardOrder, ward_order};
use crate::schedule::{due_times, local_midnight};
use crate::stays::{Inpatient, InpatientError, invalid, reference_id};

/// The identifier system of a dose's record: `{order id}/{due ms}`.
pub const DOSE_SYSTEM: &str = "urn:lianyi:dose";
/// The last dose recorded of an order (`{order id}/{due ms}`), written with each dose
/// so that two records of one dose cannot both commit.
pub const LAST_DOSE_URL: &str = "urn:lianyi:last-dose";
/// A dose given more than this after its due time is late.
pub const LATE_MS: i64 = 30 * 60_000;
const DAY_MS: i64 = 86_400_000;

/// What became of a dose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DoseState {
    /// Not yet due, or within the half hour of its round.
    Due,
    /// Past its round by more than half an hour, not recorded.
    Overdue,
    Given,
    GivenLate,
    /// The patient refused it.
    Refused,
    /// Not given for a clinical reason (held: the patient away, fasting …).
    Held,
}

impl DoseState {
    pub fn code(self) -> &'static str {
        match self {
            DoseState::Due => "due",
            DoseState::Overdue => "overdue",
            DoseState::Given => "given",
            DoseState::GivenLate => "given-late",
            DoseState::Refused => "refused",
            DoseState::Held => "held",
        }
    }
}

/// The state of a dose due at `due`, `now`, from its record if any: (status,
/// `statusReason` code, when given).
pub fn dose_state(due: i64, now: i64, record: Option<(&str, &str, i64)>) -> DoseState {
    match record {
        Some(("completed", _, at)) if at > due + LATE_MS => DoseState::GivenLate,
        Some(("completed", _, _)) => DoseState::Given,
        Some((_, "refused", _)) => DoseState::Refused,
        Some(_) => DoseState::Held,
        None if now > due + LATE_MS => DoseState::Overdue,
        None => DoseState::Due,
    }
}

/// One dose on a nurse's list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoseTask {
    pub stay: String,
    pub bed: String,
    pub patient: crate::stays::PatientLine,
    pub order: WardOrder,
    pub due_ms: i64,
    pub state: DoseState,
    /// Who recorded it, when.
    pub recorded: Option<(String, i64)>,
}

/// A dose to record.
#[derive(Clone, Debug, Default)]
pub struct DoseForm {
    pub stay: String,
    /// `MedicationRequest/…`.
    pub order: String,
    pub due_ms: i64,
    /// Scanned or typed: the wristband (stay number, or an MRN of the patient).
    pub patient_code: String,
    /// Scanned or typed: the drug's catalogue code.
    pub drug_code: String,
    /// `given`, `refused` or `held`.
    pub outcome: String,
    pub reason: String,
}

impl Inpatient {
    /// The doses due on `ward` on the Beijing day of `day_ms`, by due time and bed.
    pub async fn doses(&self, caller: &Caller, ward: &str, day_ms: i64) -> Result<Vec<DoseTask>, InpatientError> {
        if !Self::may_keep_ward(caller) && !Self::may_order(caller) {
            return Err(InpatientError::Forbidden("the ward's task lists are not among your roles".into()));
        }
        // The ward's stays first: the board, the orders, the records and the rules are
        // then read at once (each read waits for its audit record; together they
        // share the writes).
        let (ward_v, reader) = self.board_reader(caller, ward).await?;
        let campus = ward_v.campus.clone();
        let stay_rows = self.ward_stays(&reader, &ward_v.id).await?;
        let mut care = caller.group_wide();
        for s in &stay_rows {
            if let Some(p) = reference_id(&s["subject"], "Patient")
                && let Some(open) = care.open_record(p, &[campus.as_str()])
            {
                care = open;
            }
        }
        let list: Vec<String> =
            stay_rows.iter().filter_map(|s| Some(format!("Encounter/{}", s["id"].as_str()?))).collect();
        if list.is_empty() {
            return Ok(Vec::new());
        }
        let from = local_midnight(day_ms);
        let to = from + DAY_MS;
        let order_params = [("encounter", list.join(",")), ("_count", "1000".into())];
        let given_params = [
            ("context", list.join(",")),
            ("effective-time", format!("ge{}", local_instant(from - DAY_MS))),
            ("_count", "1000".into()),
        ];
        let (board, orders, given, rules) = tokio::join!(
            self.board_of(&reader, ward_v, &stay_rows),
            self.search(&care, "MedicationRequest", &order_params),
            self.search(&care, "MedicationAdministration", &given_params),
            self.rules(&campus),
        );
        let (board, orders, given, rules) = (board?, orders?, given?, rules?);
        let stays: Vec<(&str, &crate::stays::StayCard)> =
            board.beds.iter().filter_map(|b| Some((b.bed.id.as_str(), b.stay.as_ref()?))).collect();
        if stays.is_empty() {
            return Ok(Vec::new());
        }
        let mut records: HashMap<String, (String, String, i64, String)> = HashMap::new();
        for a in &given {
            let Some(key) = a["identifier"]
                .as_array()
                .and_then(|ids| ids.iter().find(|i| i["system"] == DOSE_SYSTEM))
                .and_then(|i| i["value"].as_str())
            else {
                continue;
            };
            let at = a["effectiveDateTime"].as_str().and_then(lianyi_fhir::datetime::parse_range).map_or(0, |r| r.low);
            records.insert(
                key.to_string(),
                (
                    a["status"].as_str().unwrap_or_default().to_string(),
                    a["statusReason"][0]["coding"][0]["code"].as_str().unwrap_or_default().to_string(),
                    at,
                    a["performer"][0]["actor"]["display"].as_str().unwrap_or_default().to_string(),
                ),
            );
        }
        let rounds = rules.rounds;
        let now = self.fhir.now_ms();
        let mut out = Vec::new();
        for v in &orders {
            let Some(o) = ward_order("MedicationRequest", v) else { continue };
            if o.kind != Kind::Medication || o.verified.is_none() {
                continue;
            }
            let Some(stay) = reference_id(&v["encounter"], "Encounter") else { continue };
            let Some((bed, card)) = stays.iter().find(|(_, s)| s.id == stay) else { continue };
            let Some(f) = Frequency::parse(&o.frequency) else { continue };
            let stop = o.stopped.as_ref().map(|(_, at)| *at);
            let id = o.reference.trim_start_matches("MedicationRequest/").to_string();
            for due in due_times(&rounds, f, o.start_ms, stop, from, to) {
                let r = records.get(&format!("{id}/{due}"));
                out.push(DoseTask {
                    stay: stay.to_string(),
                    bed: (*bed).to_string(),
                    patient: card.patient.clone(),
                    order: o.clone(),
                    due_ms: due,
                    state: dose_state(due, now, r.map(|(s, why, at, _)| (s.as_str(), why.as_str(), *at))),
                    recorded: r.map(|(_, _, at, by)| (by.clone(), *at)),
                });
            }
        }
        let bed_order: Vec<&str> = board.beds.iter().map(|b| b.bed.id.as_str()).collect();
        out.sort_by_key(|d| (d.due_ms, bed_order.iter().position(|b| *b == d.bed), d.order.reference.clone()));
        Ok(out)
    }

    /// Records one dose: the wristband and the drug checked against the order, then a
    /// MedicationAdministration (given, or not given with the reason) under the dose's
    /// identifier, so a dose is never recorded twice.
    pub async fn record_dose(&self, caller: &Caller, form: &DoseForm) -> Result<String, InpatientError> {
        if !Self::may_keep_ward(caller) {
            return Err(InpatientError::Forbidden("giving medications is not among your roles".into()));
        }
        let (_, stay_v, care) = self.stay_for(caller, &form.stay).await?;
        let Some((ward, _)) = current(&stay_v, "wa").filter(|_| !crate::beds::arriving(&stay_v)) else {
            return Err(invalid("stay", "not-on-ward", "the patient is not on a ward (receive them first)"));
        };
        let ward = self.ward(&care, &ward).await?;
        let Some(id) = form.order.strip_prefix("MedicationRequest/") else {
            return Err(invalid("order", "stay-order", "a medication order of the stay"));
        };
        let stored = match self.read(&care, "MedicationRequest", id).await {
            Ok(s) => s,
            Err(InpatientError::NotFound(_)) => {
                return Err(invalid("order", "stay-order", "a medication order of the stay"));
            }
            Err(e) => return Err(e),
        };
        let v: Value = serde_json::from_str(&stored.body).map_err(|e| invalid("order", "stored", e.to_string()))?;
        let Some(o) = ward_order("MedicationRequest", &v)
            .filter(|_| v["encounter"]["reference"].as_str() == Some(&format!("Encounter/{}", form.stay)))
        else {
            return Err(invalid("order", "stay-order", "a medication order of the stay"));
        };
        let key = format!("{id}/{}", form.due_ms);
        let existing =
            self.search(&care, "MedicationAdministration", &[("identifier", format!("{DOSE_SYSTEM}|{key}"))]).await?;
        if !existing.is_empty() {
            return Err(invalid("due", "recorded", "this dose was recorded already"));
        }
        if o.stopped.is_some() || o.status != "active" {
            return Err(invalid("order", "stopped", "the order was stopped"));
        }
        if o.verified.is_none() {
            return Err(invalid("order", "unverified", "the order is not verified yet"));
        }
        let f =
            Frequency::parse(&o.frequency).ok_or_else(|| invalid("order", "stay-order", "an order with a schedule"))?;
        let due_days =
            due_times(&self.rules(&ward.campus).await?.rounds, f, o.start_ms, None, form.due_ms, form.due_ms + 1);
        if due_days.is_empty() {
            return Err(invalid("due", "due", "a due time of the order"));
        }
        let mut errors = Vec::new();
        // A dose is not given ahead of its round (a future one may be held or refused).
        if form.outcome == "given" && form.due_ms > self.fhir.now_ms() + LATE_MS {
            errors.push(lianyi_clinical::registry::FieldError {
                field: "due",
                code: "early",
                detail: "not yet due: a dose is given at its round".into(),
            });
        }
        // The wristband: the stay number, or one of the patient's MRNs.
        let patient = reference_id(&stay_v["subject"], "Patient").unwrap_or_default().to_string();
        errors.extend(self.check_wristband(&care, &stay_v, &form.patient_code).await?);
        let given = form.outcome.as_str();
        if given == "given" && o.drug.as_deref() != Some(form.drug_code.trim()) {
            errors.push(lianyi_clinical::registry::FieldError {
                field: "drug_code",
                code: "wrong-drug",
                detail: "not the drug of the order".into(),
            });
        }
        if !matches!(given, "given" | "refused" | "held") {
            errors.push(lianyi_clinical::registry::FieldError {
                field: "outcome",
                code: "outcome",
                detail: "given, refused or held".into(),
            });
        } else if given != "given" && form.reason.trim().chars().count() < 2 {
            errors.push(lianyi_clinical::registry::FieldError {
                field: "dose_reason",
                code: "dose-reason",
                detail: "why the dose was not given (2 to 200 characters)".into(),
            });
        }
        if !errors.is_empty() {
            return Err(InpatientError::Invalid(errors));
        }
        let now = self.fhir.now_ms();
        let mut ma = json!({"resourceType": "MedicationAdministration",
            "identifier": [{"system": DOSE_SYSTEM, "value": key}],
            "status": if given == "given" { "completed" } else { "not-done" },
            "medicationCodeableConcept": v["medicationCodeableConcept"].clone(),
            "subject": {"reference": format!("Patient/{patient}")},
            "context": {"reference": format!("Encounter/{}", form.stay)},
            "effectiveDateTime": local_instant(now),
            "performer": [{"actor": {"display": caller.actor()}}],
            "request": {"reference": form.order},
            "dosage": {"route": v["dosageInstruction"][0]["route"].clone(),
                       "dose": v["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"].clone()},
            "note": [{"text": format!("due {}", local_instant(form.due_ms))}]});
        if given != "given" {
            ma["statusReason"] = json!([{"coding": [{"system": "urn:lianyi:dose-not-given", "code": given}], "text": form.reason.trim()}]);
        }
        if !Self::nurse_at(caller, &ward.campus) {
            return Err(InpatientError::Forbidden("giving medications here is not among your roles".into()));
        }
        let campus = lianyi_security::CampusId::parse(&ward.campus).map_err(|_| invalid("ward", "ward", "a ward"))?;
        let here = care
            .at_campus(&campus)
            .ok_or_else(|| InpatientError::Forbidden("giving medications here is not among your roles".into()))?
            .checking_orders(&campus);
        // Written on the order's version read: two nurses recording the same dose at
        // once, one of them is refused. A one-time order is done with its dose.
        let mut order_v = crate::stays::editable(&stored)?;
        if f == Frequency::St {
            order_v["status"] = json!("completed");
        }
        let mut ext: Vec<Value> = order_v["extension"].as_array().cloned().unwrap_or_default();
        ext.retain(|x| x["url"] != LAST_DOSE_URL);
        ext.push(json!({"url": LAST_DOSE_URL, "valueString": key}));
        order_v["extension"] = json!(ext);
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": ma, "request": {"method": "POST", "url": "MedicationAdministration", "ifNoneExist": format!("identifier={DOSE_SYSTEM}|{key}")}},
            crate::stays::put(order_v, &stored)]});
        match self.fhir.process_bundle(&here, bundle, true).await {
            Ok(done) => Ok(done["entry"][0]["response"]["location"].as_str().unwrap_or_default().to_string()),
            Err(e) if e.is_conflict() => {
                Err(invalid("due", "recorded", "the order changed meanwhile (another dose recorded): look again"))
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dose_is_due_overdue_given_late_refused_or_held() {
        let due = 1_796_605_200_000;
        assert_eq!(dose_state(due, due - 60_000, None), DoseState::Due);
        assert_eq!(dose_state(due, due + LATE_MS, None), DoseState::Due, "within the half hour");
        assert_eq!(dose_state(due, due + LATE_MS + 1, None), DoseState::Overdue);
        assert_eq!(dose_state(due, due + 3_600_000, Some(("completed", "", due + 10 * 60_000))), DoseState::Given);
        assert_eq!(dose_state(due, due + 3_600_000, Some(("completed", "", due + 45 * 60_000))), DoseState::GivenLate);
        assert_eq!(dose_state(due, due, Some(("not-done", "refused", due))), DoseState::Refused);
        assert_eq!(dose_state(due, due, Some(("not-done", "held", due))), DoseState::Held);
    }
}
