//! Specimen collection on the ward (标本采集): for a laboratory order in force, the
//! nurse confirms the patient's wristband at the bedside and records the specimen —
//! its type, who collected it and when — under the campus's next specimen number
//! (the tube's label), in one transaction with the order marked collected (on the
//! order's version: two nurses collecting one order, one of them is refused).

use lianyi_clinical::scheduling::{local_date, local_instant};
use lianyi_security::{Caller, CampusId};
use serde_json::{Value, json};

use crate::beds::current;
use crate::orders::{Kind, ward_order};
use crate::stays::{Inpatient, InpatientError, editable, invalid, put, reference_id};

/// The specimen numbers' identifier system (per campus).
pub const SPECIMEN_SYSTEM: &str = "urn:lianyi:sid:specimen";
/// On a lab order: the specimen collected for it (its number).
pub const COLLECTED_URL: &str = "urn:lianyi:specimen-collected";
const SNOMED: &str = "http://snomed.info/sct";

/// Specimen types a ward collects: (code, SNOMED CT, 中文, English).
pub const TYPES: [(&str, &str, &str, &str); 5] = [
    ("venous-blood", "122555007", "静脉血", "Venous blood"),
    ("arterial-blood", "122552005", "动脉血", "Arterial blood"),
    ("urine", "122575003", "尿液", "Urine"),
    ("stool", "119339001", "粪便", "Stool"),
    ("sputum", "119334006", "痰液", "Sputum"),
];

/// The specimen number of a lab order, if it was collected.
pub fn collected(order: &Value) -> Option<String> {
    order["extension"].as_array()?.iter().find(|x| x["url"] == COLLECTED_URL)?["valueString"]
        .as_str()
        .map(str::to_string)
}

impl Inpatient {
    /// Collects the specimen of lab order `order` (`ServiceRequest/…`) of `stay`: the
    /// wristband checked, a Specimen under the campus's next number; returns the number.
    pub async fn collect_specimen(
        &self,
        caller: &Caller,
        stay: &str,
        order: &str,
        kind: &str,
        patient_code: &str,
    ) -> Result<String, InpatientError> {
        if !Self::may_keep_ward(caller) {
            return Err(InpatientError::Forbidden("collecting specimens is not among your roles".into()));
        }
        let (_, stay_v, care) = self.stay_for(caller, stay).await?;
        let Some((ward, _)) = current(&stay_v, "wa").filter(|_| stay_v["status"] == "in-progress") else {
            return Err(invalid("stay", "not-on-ward", "the patient is not on a ward"));
        };
        let ward = self.ward(&care, &ward).await?;
        let Some(id) = order.strip_prefix("ServiceRequest/") else {
            return Err(invalid("lab_order", "stay-order", "a lab order of the stay"));
        };
        let stored = match self.read(&care, "ServiceRequest", id).await {
            Ok(s) => s,
            Err(InpatientError::NotFound(_)) => {
                return Err(invalid("lab_order", "stay-order", "a lab order of the stay"));
            }
            Err(e) => return Err(e),
        };
        let mut v = editable(&stored)?;
        let o = ward_order("ServiceRequest", &v)
            .filter(|o| o.kind == Kind::Lab)
            .filter(|_| v["encounter"]["reference"].as_str() == Some(&format!("Encounter/{stay}")))
            .ok_or_else(|| invalid("lab_order", "stay-order", "a lab order of the stay"))?;
        if let Some(number) = collected(&v) {
            return Err(invalid("lab_order", "collected", format!("collected already (specimen {number})")));
        }
        if !o.in_force() {
            return Err(invalid("lab_order", "unverified", "an order in force (verified, not stopped)"));
        }
        let Some(t) = TYPES.iter().find(|t| t.0 == kind.trim()) else {
            return Err(invalid("specimen", "specimen", "the specimen's type"));
        };
        let patient = reference_id(&stay_v["subject"], "Patient").unwrap_or_default().to_string();
        if let Some(wrong) = self.check_wristband(&care, &stay_v, patient_code).await? {
            return Err(InpatientError::Invalid(vec![wrong]));
        }
        if !Self::nurse_at(caller, &ward.campus) {
            return Err(InpatientError::Forbidden("collecting specimens here is not among your roles".into()));
        }
        let campus = CampusId::parse(&ward.campus).map_err(|_| invalid("ward", "ward", "a ward"))?;
        let writer = care
            .at_campus(&campus)
            .ok_or_else(|| InpatientError::Forbidden("collecting specimens here is not among your roles".into()))?
            .collecting_specimens(&campus);
        let now = self.fhir.now_ms();
        let n = self.fhir.operations().next_counter(&format!("specimen:{}", ward.campus), 1).await?;
        let number = format!("S{}{n:06}", local_date(now).replace('-', ""));
        let specimen = json!({"resourceType": "Specimen", "status": "available",
            "identifier": [{"system": format!("{SPECIMEN_SYSTEM}:{}", ward.campus), "value": number}],
            "accessionIdentifier": {"system": format!("{SPECIMEN_SYSTEM}:{}", ward.campus), "value": number},
            "type": {"coding": [{"system": SNOMED, "code": t.1, "display": t.3}], "text": t.2},
            "subject": {"reference": format!("Patient/{patient}")},
            "request": [{"reference": order}],
            "collection": {"collector": {"display": caller.actor()}, "collectedDateTime": local_instant(now)}});
        let mut ext = v["extension"].as_array().cloned().unwrap_or_default();
        ext.push(json!({"url": COLLECTED_URL, "valueString": number}));
        v["extension"] = json!(ext);
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": specimen, "request": {"method": "POST", "url": "Specimen"}},
            put(v, &stored)]});
        match self.fhir.process_bundle(&writer, bundle, true).await {
            Ok(_) => Ok(number),
            Err(e) if e.is_conflict() => Err(invalid(
                "order",
                "changed",
                "the order changed meanwhile (collected by another nurse?): look again",
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// The lab orders of the stays on `ward` in force and not collected yet: (stay,
    /// order reference, what, patient name in both languages, bed).
    pub async fn to_collect(
        &self,
        caller: &Caller,
        ward: &str,
    ) -> Result<Vec<(String, String, String, crate::stays::PatientLine, String)>, InpatientError> {
        let board = self.board(caller, ward).await?;
        let mut out = Vec::new();
        let mut care = caller.group_wide();
        for b in &board.beds {
            if let Some(s) = &b.stay
                && let Some(open) = care.open_record(&s.patient.id, &[board.ward.campus.as_str()])
            {
                care = open;
            }
        }
        let stays: Vec<(&str, &crate::stays::StayCard)> = board
            .beds
            .iter()
            .filter_map(|b| Some((b.bed.id.as_str(), b.stay.as_ref().filter(|s| !s.arriving)?)))
            .collect();
        if stays.is_empty() {
            return Ok(out);
        }
        let list: Vec<String> = stays.iter().map(|(_, s)| format!("Encounter/{}", s.id)).collect();
        let rows = self
            .search(
                &care,
                "ServiceRequest",
                &[("encounter", list.join(",")), ("status", "active".into()), ("_count", "1000".into())],
            )
            .await?;
        for v in &rows {
            let Some(o) = ward_order("ServiceRequest", v) else { continue };
            if o.kind != Kind::Lab || !o.in_force() || collected(v).is_some() {
                continue;
            }
            let Some(stay) = reference_id(&v["encounter"], "Encounter") else { continue };
            let Some((bed, card)) = stays.iter().find(|(_, s)| s.id == stay) else { continue };
            out.push((stay.to_string(), o.reference.clone(), o.what.clone(), card.patient.clone(), (*bed).to_string()));
        }
        Ok(out)
    }
}
