//! Discharge (出院): the doctor writes the discharge summary (出院小结, a Composition
//! of LOINC 18842-5: admitting diagnosis, course in hospital, discharge diagnosis,
//! condition at discharge, advice) and discharges the stay — refused while an order
//! waits for a nurse's check — in one transaction with the stay finished, its long-term
//! orders stopped, and its bed turned to cleaning. The ADT feed sends A03.

use lianyi_clinical::record::narrative;
use lianyi_clinical::scheduling::local_instant;
use lianyi_security::Caller;
use serde_json::{Value, json};

use crate::beds::{BedState, BedStep, SNOMED, TRANSFER_CODE, arriving, current, next};
use crate::orders::STOPPED_URL;
use crate::stays::{Inpatient, InpatientError, bed_taken, editable, invalid, put, reference_id};
use crate::transfers::leave_current;

const LOINC: &str = "http://loinc.org";
const DISPOSITION: &str = "http://terminology.hl7.org/CodeSystem/discharge-disposition";
/// Where a patient goes: home, another hospital, against advice, died.
pub const DISPOSITIONS: [&str; 4] = ["home", "other-hcf", "aadvice", "exp"];

/// The discharge summary as the doctor writes it.
#[derive(Clone, Debug, Default)]
pub struct DischargeForm {
    /// 诊疗经过.
    pub course: String,
    /// 出院诊断.
    pub diagnosis: String,
    /// 出院情况.
    pub condition: String,
    /// 出院医嘱.
    pub advice: String,
    pub disposition: String,
}

impl Inpatient {
    /// Discharges a stay with its summary; returns the Composition's id.
    pub async fn discharge(
        &self,
        caller: &Caller,
        stay: &str,
        form: &DischargeForm,
        doctor_name: &str,
    ) -> Result<String, InpatientError> {
        if !Self::may_order(caller) {
            return Err(InpatientError::Forbidden("discharging patients is not among your roles".into()));
        }
        let (stored, mut v, care) = self.stay_for(caller, stay).await?;
        if v["status"] != "in-progress" || arriving(&v) {
            return Err(invalid(
                "stay",
                "not-on-ward",
                "the patient is not on a ward (received first, not discharged)",
            ));
        }
        let field = |field: &'static str, code: &'static str, detail: &str| lianyi_clinical::registry::FieldError {
            field,
            code,
            detail: detail.to_string(),
        };
        let mut errors = Vec::new();
        for (name, text, max) in [
            ("course", &form.course, 4000),
            ("diagnosis", &form.diagnosis, 500),
            ("condition", &form.condition, 1000),
            ("advice", &form.advice, 2000),
        ] {
            let n = text.trim().chars().count();
            if n < 2 || n > max {
                errors.push(field(name, "summary", "required, 2 characters or more (within its limit)"));
            }
        }
        if !DISPOSITIONS.contains(&form.disposition.as_str()) {
            errors.push(field("disposition", "disposition", "home, other-hcf, aadvice or exp"));
        }
        let orders = self.orders_as(&care, stay).await?;
        let unverified =
            orders.iter().filter(|o| o.status == "active" && o.stopped.is_none() && o.verified.is_none()).count();
        if unverified > 0 {
            errors.push(lianyi_clinical::registry::FieldError {
                field: "orders",
                code: "orders-unverified",
                detail: format!(
                    "{unverified} orders wait for a nurse's check (rule: every order verified before discharge)"
                ),
            });
        }
        if !errors.is_empty() {
            return Err(InpatientError::Invalid(errors));
        }
        let (Some((ward, _)), Some((bed, _))) = (current(&v, "wa"), current(&v, "bd")) else {
            return Err(invalid("stay", "not-on-ward", "the stay is on no ward"));
        };
        let ward = self.ward(&care, &ward).await?;
        let bed_stored = self.read(&care, "Location", &bed).await?;
        let mut bed_v = editable(&bed_stored)?;
        let state = BedState::of(&bed_v);
        bed_v["operationalStatus"] = next(state, BedStep::Vacate).ok_or_else(|| bed_taken(state))?.coding();
        let now = self.fhir.now_ms();
        let at = local_instant(now);
        let by = if doctor_name.is_empty() { caller.actor().to_string() } else { doctor_name.to_string() };
        let author = crate::stays::requester(caller, &by);
        let section = |title: &str, code: &str, text: &str| {
            json!({"title": title, "code": {"coding": [{"system": LOINC, "code": code}]},
                   "text": {"status": "generated", "div": narrative(text)}})
        };
        let admitted_for = v["reasonCode"][0]["text"].as_str().unwrap_or_default().to_string();
        let summary = json!({"resourceType": "Composition", "status": "final",
            "type": {"coding": [{"system": LOINC, "code": "18842-5", "display": "Discharge summary"}]},
            "subject": v["subject"].clone(),
            "encounter": {"reference": format!("Encounter/{stay}")},
            "date": at,
            "author": [author],
            "title": "出院小结 / Discharge summary",
            "section": [
                section("入院诊断 / Admitting diagnosis", "46241-6", if admitted_for.is_empty() { "—" } else { &admitted_for }),
                section("诊疗经过 / Hospital course", "8648-8", form.course.trim()),
                section("出院诊断 / Discharge diagnosis", "11535-2", form.diagnosis.trim()),
                section("出院情况 / Condition at discharge", "8651-2", form.condition.trim()),
                section("出院医嘱 / Discharge instructions", "8653-8", form.advice.trim())]});
        v["status"] = json!("finished");
        v["period"]["end"] = json!(at);
        v["hospitalization"]["dischargeDisposition"] =
            json!({"coding": [{"system": DISPOSITION, "code": form.disposition}]});
        leave_current(&mut v, &at);
        let mut entries = vec![
            json!({"fullUrl": "urn:uuid:3c9e1f2a-7b4d-4e8a-9f10-000000000001", "resource": summary,
                   "request": {"method": "POST", "url": "Composition"}}),
            put(v.clone(), &stored),
            put(bed_v, &bed_stored),
        ];
        // Every order still active ends with the stay: long-term ones stopped (so they
        // are no one's current medication), one-time ones completed.
        for o in orders.iter().filter(|o| o.status == "active" && o.stopped.is_none()) {
            let (t, id) = o.reference.split_once('/').unwrap_or_default();
            let r = self.read(&care, t, id).await?;
            let mut ov: Value = editable(&r)?;
            if o.long_term {
                let mut ext = ov["extension"].as_array().cloned().unwrap_or_default();
                ext.push(json!({"url": STOPPED_URL, "extension": [{"url": "by", "valueString": by}, {"url": "at", "valueDateTime": at}]}));
                ov["extension"] = json!(ext);
                ov["status"] = json!(if t == "MedicationRequest" { "stopped" } else { "revoked" });
            } else {
                ov["status"] = json!("completed");
            }
            entries.push(put(ov, &r));
        }
        // A transfer still waiting for a bed goes with the stay.
        let waiting = self
            .search(
                &care.group_wide(),
                "ServiceRequest",
                &[
                    ("encounter", format!("Encounter/{stay}")),
                    ("code", format!("{SNOMED}|{TRANSFER_CODE}")),
                    ("status", "active".into()),
                ],
            )
            .await?;
        for w in waiting {
            let id = w["id"].as_str().unwrap_or_default().to_string();
            let r = self.read(&care.group_wide(), "ServiceRequest", &id).await?;
            let mut rv: Value = editable(&r)?;
            rv["status"] = json!("revoked");
            entries.push(put(rv, &r));
        }
        let campus = lianyi_security::CampusId::parse(&ward.campus).map_err(|_| invalid("ward", "ward", "a ward"))?;
        let writer = care
            .at_campus(&campus)
            .ok_or_else(|| {
                InpatientError::Forbidden(format!("discharging at {} is not among your roles", ward.campus))
            })?
            .keeping_beds(&campus);
        let patient = reference_id(&v["subject"], "Patient").unwrap_or_default().to_string();
        match self
            .fhir
            .process_bundle(&writer, json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}), true)
            .await
        {
            Ok(done) => {
                let id = done["entry"][0]["response"]["location"]
                    .as_str()
                    .and_then(|l| l.split('/').nth(1))
                    .unwrap_or_default();
                let mut e = caller.entry(now, "discharge", "success");
                e.resource_type = Some("Encounter".into());
                e.resource_id = Some(stay.to_string());
                e.patient = Some(patient);
                e.detail = Some(format!("discharged ({})", form.disposition));
                self.fhir.audit_log().record(vec![e]).await.map_err(lianyi_services::ServiceError::from)?;
                // Its last doses charged now, for the settlement (the nightly run
                // catches up whatever fails here).
                if let Err(e) = self.post_stay(stay, now + 1).await {
                    tracing::warn!(error = %e, "charges of a discharged stay not posted yet");
                }
                Ok(id.to_string())
            }
            Err(e) if e.is_conflict() => Err(invalid(
                "stay",
                "changed",
                "the stay, its bed or an order changed meanwhile: nothing was written; look again",
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// A stay's discharge summary, if written: (date, author, [(title, text)]).
    pub async fn discharge_summary(
        &self,
        caller: &Caller,
        stay: &str,
    ) -> Result<Option<(String, String, Vec<(String, String)>)>, InpatientError> {
        let (_, _, care) = self.stay_for(caller, stay).await?;
        let rows = self
            .search(
                &care,
                "Composition",
                &[("encounter", format!("Encounter/{stay}")), ("type", format!("{LOINC}|18842-5"))],
            )
            .await?;
        Ok(rows.first().map(|c| {
            let sections = c["section"]
                .as_array()
                .map(|ss| {
                    ss.iter()
                        .map(|s| {
                            let div = s["text"]["div"].as_str().unwrap_or_default();
                            (s["title"].as_str().unwrap_or_default().to_string(), lianyi_clinical::record::plain(div))
                        })
                        .collect()
                })
                .unwrap_or_default();
            (
                c["date"].as_str().unwrap_or_default().to_string(),
                c["author"][0]["display"].as_str().unwrap_or_default().to_string(),
                sections,
            )
        }))
    }
}
