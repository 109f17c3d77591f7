//! Inpatient orders (医嘱): long-term (长期, until stopped) and one-time (临时)
//! orders of a stay — medications from the catalogue with dose, route and schedule,
//! checked as outpatient prescriptions are (allergies and cross-allergies,
//! interactions, duplicates, dose limits; a blocking finding needs the doctor's
//! reason), nursing care, diet, laboratory, imaging, consultations and others as text.
//! The doctor signs; a ward nurse verifies (核对) before anything is carried out; the
//! doctor stops a long-term order. Medications are MedicationRequests (category
//! inpatient, course of therapy continuous or acute), the others ServiceRequests
//! (category inpatient); verification and stop are written on the order itself.

use lianyi_clinical::prescribing::{
    DRUG_SYSTEM, Finding, Frequency, Order, allergy_substance, check, drug, prescribed_drug,
};
use lianyi_clinical::scheduling::local_instant;
use lianyi_security::Caller;
use lianyi_store::StoredResource;
use serde_json::{Value, json};

use crate::beds::{ADMISSION_CODE, SNOMED, TRANSFER_CODE, arriving, current};
use crate::stays::{Inpatient, InpatientError, editable, invalid, put};

/// The category marking an order as a ward's (billing charges it as carried out).
pub const MR_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/medicationrequest-category";
pub const INPATIENT_CATEGORY: &str = "urn:lianyi:order-setting";
const COURSE: &str = "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy";
/// Who verified an order, and when (extension with `by` and `at`).
pub const VERIFIED_URL: &str = "urn:lianyi:order-verified";
/// Who stopped an order, and when.
pub const STOPPED_URL: &str = "urn:lianyi:order-stopped";
/// The first nurse's check of an order, where the campus asks for a second nurse's
/// (双人核对): the order is verified only by a different nurse after it.
pub const CHECKED_URL: &str = "urn:lianyi:order-checked";
const KIND_SYSTEM: &str = "urn:lianyi:order-kind";

/// The routes a ward gives drugs by: (code, Chinese, English, SNOMED CT).
pub const ROUTES: [(&str, &str, &str, &str); 6] = [
    ("po", "口服", "Oral", "26643006"),
    ("iv", "静脉注射", "Intravenous injection", "47625008"),
    ("ivgtt", "静脉滴注", "Intravenous infusion", "47625008"),
    ("im", "肌内注射", "Intramuscular", "78421000"),
    ("sc", "皮下注射", "Subcutaneous", "34206005"),
    ("inh", "吸入", "Inhalation", "447694001"),
];

/// What an order is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Medication,
    Nursing,
    Diet,
    Lab,
    Imaging,
    Consult,
    Other,
}

impl Kind {
    pub const ALL: [Kind; 7] =
        [Kind::Medication, Kind::Nursing, Kind::Diet, Kind::Lab, Kind::Imaging, Kind::Consult, Kind::Other];

    pub fn code(self) -> &'static str {
        match self {
            Kind::Medication => "medication",
            Kind::Nursing => "nursing",
            Kind::Diet => "diet",
            Kind::Lab => "lab",
            Kind::Imaging => "imaging",
            Kind::Consult => "consult",
            Kind::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.code() == s)
    }
}

/// An order as the doctor's form gives it.
#[derive(Clone, Debug, Default)]
pub struct OrderForm {
    pub kind: String,
    /// `long` (长期) or `once` (临时).
    pub term: String,
    /// A medication: the catalogue drug, the single dose (in its unit), the route.
    pub drug: String,
    pub dose: String,
    pub route: String,
    /// `qd`, `bid` … `st`; empty for an order without a schedule.
    pub frequency: String,
    /// Any other order: what is ordered (一级护理, 低盐低脂饮食 …); a medication: a note.
    pub text: String,
    /// Why a blocking finding is overridden.
    pub override_reason: String,
}

/// The outcome of signing.
#[derive(Clone, Debug, PartialEq)]
pub enum Signed {
    /// The order's reference (`MedicationRequest/…`), with the findings accepted.
    Done { order: String, findings: Vec<Finding> },
    /// Blocking findings and no override reason: nothing was written.
    Blocked(Vec<Finding>),
}

/// An order as the ward lists it and the order sheet prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WardOrder {
    /// `MedicationRequest/…` or `ServiceRequest/…`.
    pub reference: String,
    pub kind: Kind,
    pub long_term: bool,
    /// What is ordered: the drug and strength, or the text.
    pub what: String,
    /// A medication's dose (`1 g`), route code and frequency code.
    pub dose: String,
    pub route: String,
    pub frequency: String,
    /// The catalogue drug, if a medication.
    pub drug: Option<String>,
    pub note: String,
    pub start_ms: i64,
    pub doctor: String,
    pub verified: Option<(String, i64)>,
    /// The first nurse's check, where a second nurse verifies.
    pub checked: Option<(String, i64)>,
    pub stopped: Option<(String, i64)>,
    /// `active`, `stopped`, `completed` …
    pub status: String,
}

impl WardOrder {
    /// Signed and verified, not stopped: to be carried out.
    pub fn in_force(&self) -> bool {
        self.status == "active" && self.verified.is_some() && self.stopped.is_none()
    }
}

fn ms(v: &Value) -> Option<i64> {
    Some(lianyi_fhir::datetime::parse_range(v.as_str()?)?.low)
}

/// (who, when) of a verified or stopped extension.
fn mark(v: &Value, url: &str) -> Option<(String, i64)> {
    let x = v["extension"].as_array()?.iter().find(|x| x["url"] == url)?;
    let part = |name: &str| x["extension"].as_array()?.iter().find(|p| p["url"] == name).cloned();
    Some((part("by")?["valueString"].as_str()?.to_string(), ms(&part("at")?["valueDateTime"])?))
}

fn marked(by: &str, at: i64, url: &str) -> Value {
    json!({"url": url, "extension": [{"url": "by", "valueString": by}, {"url": "at", "valueDateTime": local_instant(at)}]})
}

/// A stored order of a stay, as the ward sees it (`None` for an admission or transfer
/// order, which are the admission office's).
pub fn ward_order(rtype: &str, v: &Value) -> Option<WardOrder> {
    let code = v["code"]["coding"][0]["code"].as_str();
    if rtype == "ServiceRequest" && matches!(code, Some(ADMISSION_CODE | TRANSFER_CODE)) {
        return None;
    }
    let dosage = &v["dosageInstruction"][0];
    let (kind, long_term) = if rtype == "MedicationRequest" {
        (Kind::Medication, v["courseOfTherapyType"]["coding"][0]["code"] == "continuous")
    } else {
        let kind = v["category"]
            .as_array()?
            .iter()
            .flat_map(|c| c["coding"].as_array().into_iter().flatten())
            .find(|c| c["system"] == KIND_SYSTEM)
            .and_then(|c| Kind::parse(c["code"].as_str()?))
            .unwrap_or(Kind::Other);
        (kind, v["occurrenceTiming"]["code"]["text"].as_str().is_some_and(|f| f != "st"))
    };
    let timing = if rtype == "MedicationRequest" { &dosage["timing"] } else { &v["occurrenceTiming"] };
    Some(WardOrder {
        reference: format!("{rtype}/{}", v["id"].as_str()?),
        kind,
        long_term,
        what: if rtype == "MedicationRequest" {
            v["medicationCodeableConcept"]["text"].as_str().unwrap_or_default().to_string()
        } else {
            v["code"]["text"].as_str().unwrap_or_default().to_string()
        },
        dose: dosage["doseAndRate"][0]["doseQuantity"]
            .as_object()
            .map(|q| {
                format!(
                    "{} {}",
                    q.get("value").and_then(Value::as_f64).map(|v| v.to_string()).unwrap_or_default(),
                    q.get("unit").and_then(Value::as_str).unwrap_or("")
                )
            })
            .unwrap_or_default(),
        route: dosage["route"]["text"].as_str().unwrap_or_default().to_string(),
        frequency: timing["code"]["text"].as_str().unwrap_or_default().to_string(),
        drug: prescribed_drug(v).map(|d| d.code.to_string()),
        note: v["note"][0]["text"].as_str().unwrap_or_default().to_string(),
        start_ms: ms(&v["authoredOn"]).unwrap_or_default(),
        doctor: v["requester"]["display"].as_str().unwrap_or_default().to_string(),
        verified: mark(v, VERIFIED_URL),
        checked: mark(v, CHECKED_URL),
        stopped: mark(v, STOPPED_URL),
        status: v["status"].as_str().unwrap_or_default().to_string(),
    })
}

impl Inpatient {
    /// A stay's orders, oldest first.
    pub async fn orders(&self, caller: &Caller, stay: &str) -> Result<Vec<WardOrder>, InpatientError> {
        let (_, _, care) = self.stay_for(caller, stay).await?;
        self.orders_as(&care, stay).await
    }

    pub(crate) async fn orders_as(&self, care: &Caller, stay: &str) -> Result<Vec<WardOrder>, InpatientError> {
        let mut out = Vec::new();
        for t in ["MedicationRequest", "ServiceRequest"] {
            let rows =
                self.search(care, t, &[("encounter", format!("Encounter/{stay}")), ("_count", "1000".into())]).await?;
            out.extend(rows.iter().filter_map(|v| ward_order(t, v)));
        }
        out.sort_by(|a, b| (a.start_ms, &a.reference).cmp(&(b.start_ms, &b.reference)));
        Ok(out)
    }

    /// The doctor signs an order for a stay on a ward. A medication is checked first;
    /// with blocking findings it is written only with an override reason, the findings
    /// kept as DetectedIssues with it, in one transaction.
    pub async fn sign_order(
        &self,
        caller: &Caller,
        stay: &str,
        form: &OrderForm,
        doctor_name: &str,
    ) -> Result<Signed, InpatientError> {
        if !Self::may_order(caller) {
            return Err(InpatientError::Forbidden("signing orders is not among your roles".into()));
        }
        let (_, v, care) = self.stay_for(caller, stay).await?;
        if !matches!(v["status"].as_str(), Some("arrived" | "in-progress")) {
            return Err(invalid("stay", "discharged", "a stay in hospital (not discharged)"));
        }
        let Some((ward, _)) = current(&v, "wa") else {
            return Err(invalid("stay", "not-on-ward", "the stay is on no ward"));
        };
        let ward = self.ward(&care, &ward).await?;
        let patient = crate::stays::reference_id(&v["subject"], "Patient").unwrap_or_default().to_string();
        let kind = Kind::parse(form.kind.trim());
        let long_term = match form.term.as_str() {
            "long" => Some(true),
            "once" => Some(false),
            _ => None,
        };
        let mut errors = Vec::new();
        let field = |field: &'static str, code: &'static str, detail: &str| lianyi_clinical::registry::FieldError {
            field,
            code,
            detail: detail.to_string(),
        };
        if kind.is_none() {
            errors.push(field("kind", "kind", "one of medication, nursing, diet, lab, imaging, consult, other"));
        }
        let Some(long_term) = long_term else {
            errors.push(field("term", "term", "long-term or one-time"));
            return Err(InpatientError::Invalid(errors));
        };
        let frequency = match form.frequency.trim() {
            "" if kind != Some(Kind::Medication) => None,
            f => match Frequency::parse(f) {
                Some(Frequency::St) if long_term => {
                    errors.push(field("frequency", "frequency-st", "st is for a one-time order"));
                    None
                }
                Some(f) if !long_term && f != Frequency::St && kind == Some(Kind::Medication) => {
                    errors.push(field("frequency", "frequency-once", "a one-time order is given once: st"));
                    None
                }
                Some(f) => Some(f),
                None => {
                    errors.push(field("frequency", "frequency", "qd, bid, tid, qid, q6h, q8h, q12h, qn or st"));
                    None
                }
            },
        };
        let now = self.fhir.now_ms();
        let requester = crate::stays::requester(caller, doctor_name);
        let term_code = if long_term { "continuous" } else { "acute" };
        let mut entries = Vec::new();
        let mut findings = Vec::new();
        let order_url = "urn:uuid:6b1f0d52-3f1e-4a7e-9d0c-000000000001";
        let note = form.text.trim();
        if note.chars().count() > 200 {
            errors.push(field("text", "text-long", "at most 200 characters"));
        }
        match kind {
            Some(Kind::Medication) => {
                let d = drug(form.drug.trim());
                if d.is_none() {
                    errors.push(field("drug", "drug", "a drug of the catalogue"));
                }
                let dose: Option<f64> = form.dose.trim().parse().ok().filter(|x: &f64| x.is_finite() && *x > 0.0);
                if dose.is_none() {
                    errors.push(field("dose", "dose", "a dose above 0, in the drug's unit"));
                }
                let route = ROUTES.iter().find(|r| r.0 == form.route.trim());
                if route.is_none() {
                    errors.push(field("route", "route", "po, iv, ivgtt, im, sc or inh"));
                }
                let (Some(d), Some(dose), Some(route), Some(f), true) = (d, dose, route, frequency, errors.is_empty())
                else {
                    return Err(InpatientError::Invalid(errors));
                };
                let order = Order { drug: d.code.into(), dose, frequency: f, days: 1 };
                let allergies: Vec<String> = self
                    .search(
                        &care,
                        "AllergyIntolerance",
                        &[("patient", format!("Patient/{patient}")), ("clinical-status", "active".into())],
                    )
                    .await?
                    .iter()
                    .filter_map(allergy_substance)
                    .collect();
                let active_rows = self
                    .search(
                        &care,
                        "MedicationRequest",
                        &[("patient", format!("Patient/{patient}")), ("status", "active".into())],
                    )
                    .await?;
                let active: Vec<_> =
                    active_rows.iter().filter(|m| mark(m, STOPPED_URL).is_none()).filter_map(prescribed_drug).collect();
                findings = check(&order, d, &allergies, &active);
                let reason = form.override_reason.trim();
                let blocked = findings.iter().any(|f| f.blocking);
                if blocked && reason.chars().count() < lianyi_clinical::prescribing::MIN_REASON {
                    return Ok(Signed::Blocked(findings));
                }
                let mut issues = Vec::new();
                for (i, f) in findings.iter().enumerate() {
                    let url = format!("urn:uuid:6b1f0d52-3f1e-4a7e-9d0c-{:012x}", i + 2);
                    let mut issue = json!({"resourceType": "DetectedIssue", "status": "final",
                        "code": {"text": f.kind.code()},
                        "severity": if f.blocking { "high" } else { "moderate" },
                        "patient": {"reference": format!("Patient/{patient}")},
                        "identifiedDateTime": local_instant(now),
                        "implicated": [{"reference": order_url}],
                        "detail": format!("{} / {}", f.zh, f.en)});
                    if f.blocking {
                        issue["mitigation"] = json!([{"action": {"text": format!("override: {reason}")},
                            "date": local_instant(now), "author": {"display": caller.actor().to_string()}}]);
                    }
                    issues.push(json!({"reference": url}));
                    entries.push(json!({"fullUrl": url, "resource": issue, "request": {"method": "POST", "url": "DetectedIssue"}}));
                }
                let text = format!("{dose} {} {} {}", d.unit, route.0, f.code());
                let mut mr = json!({"resourceType": "MedicationRequest", "status": "active", "intent": "order",
                    "category": [{"coding": [{"system": MR_CATEGORY, "code": "inpatient"}]}],
                    "courseOfTherapyType": {"coding": [{"system": COURSE, "code": term_code}]},
                    "medicationCodeableConcept": {"coding": [{"system": DRUG_SYSTEM, "code": d.code, "display": d.en}],
                                                  "text": format!("{} {}", d.zh, d.strength)},
                    "subject": {"reference": format!("Patient/{patient}")},
                    "encounter": {"reference": format!("Encounter/{stay}")},
                    "authoredOn": local_instant(now),
                    "requester": requester,
                    "dosageInstruction": [{"text": text,
                        "timing": {"repeat": {"frequency": f.per_day(), "period": 1, "periodUnit": "d"}, "code": {"text": f.code()}},
                        "route": {"coding": [{"system": SNOMED, "code": route.3, "display": route.2}], "text": route.0},
                        "doseAndRate": [{"doseQuantity": {"value": dose, "unit": d.unit}}]}]});
                if !issues.is_empty() {
                    mr["detectedIssue"] = json!(issues);
                }
                if !note.is_empty() {
                    mr["note"] = json!([{"text": note}]);
                }
                entries.insert(0, json!({"fullUrl": order_url, "resource": mr, "request": {"method": "POST", "url": "MedicationRequest"}}));
            }
            Some(k) => {
                if note.chars().count() < 2 {
                    errors.push(field("text", "text", "what is ordered (2 to 200 characters)"));
                }
                if !errors.is_empty() {
                    return Err(InpatientError::Invalid(errors));
                }
                // A one-time order is carried out once.
                let f = if long_term { frequency.unwrap_or(Frequency::Qd) } else { Frequency::St };
                let sr = json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                    "category": [{"coding": [{"system": INPATIENT_CATEGORY, "code": "inpatient"}, {"system": KIND_SYSTEM, "code": k.code()}]}],
                    "code": {"text": note},
                    "subject": {"reference": format!("Patient/{patient}")},
                    "encounter": {"reference": format!("Encounter/{stay}")},
                    "authoredOn": local_instant(now),
                    "occurrenceTiming": {"code": {"text": f.code()}},
                    "requester": requester});
                entries.push(json!({"fullUrl": order_url, "resource": sr, "request": {"method": "POST", "url": "ServiceRequest"}}));
            }
            None => return Err(InpatientError::Invalid(errors)),
        }
        // Written as the ward's campus, the patient's record open.
        let here = lianyi_security::CampusId::parse(&ward.campus)
            .ok()
            .and_then(|c| care.at_campus(&c))
            .ok_or_else(|| InpatientError::Forbidden(format!("ordering at {} is not among your roles", ward.campus)))?;
        let done = self
            .fhir
            .process_bundle(&here, json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}), true)
            .await?;
        let order = done["entry"][0]["response"]["location"]
            .as_str()
            .map(|l| l.split('/').take(2).collect::<Vec<_>>().join("/"))
            .unwrap_or_default();
        if findings.iter().any(|f| f.blocking) {
            let mut e = caller.entry(now, "prescribing-override", "success");
            e.resource_type = order.split('/').next().map(str::to_string);
            e.resource_id = order.split('/').nth(1).map(str::to_string);
            e.patient = Some(patient.clone());
            e.detail =
                Some(format!("{} overridden on a ward order: {}", form.drug.trim(), form.override_reason.trim()));
            self.fhir.audit_log().record(vec![e]).await.map_err(lianyi_services::ServiceError::from)?;
        }
        Ok(Signed::Done { order, findings })
    }

    /// One order of a stay, to change: (stored, JSON, the ward's campus caller).
    async fn order_of(
        &self,
        caller: &Caller,
        stay: &str,
        order: &str,
    ) -> Result<(StoredResource, Value, Caller, Value, String), InpatientError> {
        let (_, stay_v, care) = self.stay_for(caller, stay).await?;
        let (t, id) = order.split_once('/').ok_or_else(|| invalid("order", "stay-order", "an order of the stay"))?;
        if !matches!(t, "MedicationRequest" | "ServiceRequest") {
            return Err(invalid("order", "stay-order", "an order of the stay"));
        }
        let stored = match self.read(&care, t, id).await {
            Ok(s) => s,
            Err(InpatientError::NotFound(_)) => return Err(invalid("order", "stay-order", "an order of the stay")),
            Err(e) => return Err(e),
        };
        let v = editable(&stored)?;
        if v["encounter"]["reference"].as_str() != Some(&format!("Encounter/{stay}")) || ward_order(t, &v).is_none() {
            return Err(invalid("order", "stay-order", "an order of the stay"));
        }
        let Some((ward, _)) = current(&stay_v, "wa") else {
            return Err(invalid("stay", "not-on-ward", "the stay is on no ward"));
        };
        let ward = self.ward(&care, &ward).await?;
        Ok((stored, v, care, stay_v, ward.campus))
    }

    fn verifier(&self, care: &Caller, campus: &str) -> Result<Caller, InpatientError> {
        let id = lianyi_security::CampusId::parse(campus).map_err(|_| invalid("campus", "campus", "a campus"))?;
        if !Self::nurse_at(care, campus) {
            return Err(InpatientError::Forbidden(format!("the wards of {campus} are not among your campuses")));
        }
        let here = care
            .at_campus(&id)
            .ok_or_else(|| InpatientError::Forbidden(format!("the wards of {campus} are not among your campuses")))?;
        Ok(here.checking_orders(&id))
    }

    /// A ward nurse verifies (核对) a signed order: from now on it is carried out. Where
    /// the campus asks for a second nurse's check, the first nurse's verification is
    /// recorded as a check and a different nurse verifies after it.
    pub async fn verify_order(&self, caller: &Caller, stay: &str, order: &str) -> Result<(), InpatientError> {
        if !Self::may_keep_ward(caller) {
            return Err(InpatientError::Forbidden("verifying orders is not among your roles".into()));
        }
        let (stored, mut v, care, stay_v, campus) = self.order_of(caller, stay, order).await?;
        let writer = self.verifier(&care, &campus)?;
        if arriving(&stay_v) {
            return Err(invalid("stay", "not-on-ward", "the patient is not on the ward yet (receive them first)"));
        }
        if v["status"] != "active" || mark(&v, STOPPED_URL).is_some() {
            return Err(invalid("order", "stopped", "the order was stopped or cancelled"));
        }
        if mark(&v, VERIFIED_URL).is_some() {
            return Err(invalid("order", "verified", "the order was verified already"));
        }
        let url = match mark(&v, CHECKED_URL) {
            _ if !self.rules(&campus).await?.second_check => VERIFIED_URL,
            None => CHECKED_URL,
            Some((first, _)) if first == caller.actor() => {
                return Err(invalid(
                    "order",
                    "second-nurse",
                    "checked by you already: a second nurse verifies it (the campus's rule)",
                ));
            }
            Some(_) => VERIFIED_URL,
        };
        let mut ext = v["extension"].as_array().cloned().unwrap_or_default();
        ext.push(marked(caller.actor(), self.fhir.now_ms(), url));
        v["extension"] = json!(ext);
        self.write_order(&writer, v, &stored).await
    }

    /// The doctor stops a long-term order (停止医嘱): it is carried out no more.
    pub async fn stop_order(
        &self,
        caller: &Caller,
        stay: &str,
        order: &str,
        doctor_name: &str,
    ) -> Result<(), InpatientError> {
        if !Self::may_order(caller) {
            return Err(InpatientError::Forbidden("stopping orders is not among your roles".into()));
        }
        let (stored, mut v, care, _, campus) = self.order_of(caller, stay, order).await?;
        if v["status"] != "active" || mark(&v, STOPPED_URL).is_some() {
            return Err(invalid("order", "stopped", "the order was stopped or cancelled"));
        }
        let here = lianyi_security::CampusId::parse(&campus)
            .ok()
            .and_then(|c| care.at_campus(&c))
            .ok_or_else(|| InpatientError::Forbidden("stopping orders here is not among your roles".into()))?;
        let by = if doctor_name.is_empty() { caller.actor().to_string() } else { doctor_name.to_string() };
        let mut ext = v["extension"].as_array().cloned().unwrap_or_default();
        ext.push(marked(&by, self.fhir.now_ms(), STOPPED_URL));
        v["extension"] = json!(ext);
        v["status"] = json!(if stored.resource_type == "MedicationRequest" { "stopped" } else { "revoked" });
        self.write_order(&here, v, &stored).await
    }

    async fn write_order(&self, writer: &Caller, v: Value, stored: &StoredResource) -> Result<(), InpatientError> {
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [put(v, stored)]});
        match self.fhir.process_bundle(writer, bundle, true).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_conflict() => {
                Err(invalid("order", "changed", "the order was changed meanwhile: nothing was written; look again"))
            }
            Err(e) => Err(e.into()),
        }
    }
}
