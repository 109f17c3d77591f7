//! Safe prescribing: a prescription (MedicationRequest) from the drug catalogue is
//! checked before it is signed against the patient's recorded allergies (and
//! cross-reactive classes), the patient's active prescriptions (drug–drug
//! interactions, duplicate therapy) and the drug's dose limits. Each finding
//! blocks or warns; a blocked prescription is signed only with an override reason,
//! which is audited. Every finding is kept as a DetectedIssue the prescription
//! refers to (with the override as its mitigation).
//!
//! The tables (`data/drugs.tsv`, `data/interactions.tsv`, `data/allergy-classes.tsv`)
//! are compiled in; their sources are named in their headers.

use std::sync::LazyLock;

use lianyi_security::Caller;
use lianyi_services::FhirService;
use serde_json::{Value, json};

use crate::common::{invalid, rtype};
use crate::names::Names;
use crate::registry::RegistryError;

/// The catalogue's code system.
pub const DRUG_SYSTEM: &str = "urn:lianyi:drug";
const ATC_SYSTEM: &str = "http://www.whocc.no/atc";

/// One drug of the catalogue.
#[derive(Clone, Debug, PartialEq)]
pub struct Drug {
    pub code: &'static str,
    pub zh: &'static str,
    pub en: &'static str,
    pub atc: &'static str,
    pub form: &'static str,
    pub strength: &'static str,
    /// The unit doses are given in (`mg`, `tablet`).
    pub unit: &'static str,
    pub min_single: f64,
    pub max_single: f64,
    pub max_daily: f64,
    pub allergy_classes: Vec<&'static str>,
    /// ATC level 4 group, for duplicate therapy.
    pub class: &'static str,
}

fn rows(text: &'static str) -> impl Iterator<Item = Vec<&'static str>> {
    text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).map(|l| l.split('\t').collect())
}

static DRUGS: LazyLock<Vec<Drug>> = LazyLock::new(|| {
    rows(include_str!("../data/drugs.tsv"))
        .filter(|c| c.len() >= 12)
        .map(|c| Drug {
            code: c[0],
            zh: c[1],
            en: c[2],
            atc: c[3],
            form: c[4],
            strength: c[5],
            unit: c[6],
            min_single: c[7].parse().unwrap_or(0.0),
            max_single: c[8].parse().unwrap_or(f64::MAX),
            max_daily: c[9].parse().unwrap_or(f64::MAX),
            allergy_classes: c[10].split(',').map(str::trim).filter(|s| !s.is_empty()).collect(),
            class: c[11],
        })
        .collect()
});

/// An interaction rule: two drugs (codes or ATC prefixes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interaction {
    pub left: &'static str,
    pub right: &'static str,
    pub contraindicated: bool,
    pub zh: &'static str,
    pub en: &'static str,
    pub source: &'static str,
}

static INTERACTIONS: LazyLock<Vec<Interaction>> = LazyLock::new(|| {
    rows(include_str!("../data/interactions.tsv"))
        .filter(|c| c.len() >= 6)
        .map(|c| Interaction {
            left: c[0],
            right: c[1],
            contraindicated: c[2] == "contraindicated",
            zh: c[3],
            en: c[4],
            source: c[5],
        })
        .collect()
});

/// An allergy class: its name, the words naming it, classes cross-reacting with it.
type AllergyClass = (&'static str, Vec<&'static str>, Vec<&'static str>);

static ALLERGY_CLASSES: LazyLock<Vec<AllergyClass>> = LazyLock::new(|| {
    rows(include_str!("../data/allergy-classes.tsv"))
        .filter(|c| c.len() >= 2)
        .map(|c| {
            let list = |s: Option<&&'static str>| -> Vec<&'static str> {
                s.map(|s| s.split(',').map(str::trim).filter(|x| !x.is_empty()).collect()).unwrap_or_default()
            };
            (c[0], list(c.get(1)), list(c.get(2)))
        })
        .collect()
});

pub fn catalogue() -> &'static [Drug] {
    &DRUGS
}

pub fn drug(code: &str) -> Option<&'static Drug> {
    DRUGS.iter().find(|d| d.code == code)
}

/// Drugs whose code, Chinese or English name contains `q` (case-insensitive).
pub fn search_drugs(q: &str) -> Vec<&'static Drug> {
    let q = q.trim().to_lowercase();
    if q.is_empty() {
        return Vec::new();
    }
    DRUGS
        .iter()
        .filter(|d| d.code.to_lowercase().contains(&q) || d.zh.contains(&q) || d.en.to_lowercase().contains(&q))
        .collect()
}

/// How often a dose is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frequency {
    /// Once a day.
    Qd,
    Bid,
    Tid,
    Qid,
    /// Once at night.
    Qn,
    /// Every 6, 8 or 12 hours (ward orders).
    Q6h,
    Q8h,
    Q12h,
    /// Once, at once (a one-time ward order, 临时医嘱).
    St,
}

impl Frequency {
    /// The frequencies of outpatient prescriptions.
    pub const ALL: [Frequency; 5] = [Frequency::Qd, Frequency::Bid, Frequency::Tid, Frequency::Qid, Frequency::Qn];
    /// Every frequency, the ward's included.
    pub const EVERY: [Frequency; 9] = [
        Frequency::Qd,
        Frequency::Bid,
        Frequency::Tid,
        Frequency::Qid,
        Frequency::Qn,
        Frequency::Q6h,
        Frequency::Q8h,
        Frequency::Q12h,
        Frequency::St,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Frequency::Qd => "qd",
            Frequency::Bid => "bid",
            Frequency::Tid => "tid",
            Frequency::Qid => "qid",
            Frequency::Qn => "qn",
            Frequency::Q6h => "q6h",
            Frequency::Q8h => "q8h",
            Frequency::Q12h => "q12h",
            Frequency::St => "st",
        }
    }

    pub fn parse(s: &str) -> Option<Frequency> {
        Frequency::EVERY.into_iter().find(|f| f.code() == s)
    }

    pub fn per_day(self) -> u32 {
        match self {
            Frequency::Qd | Frequency::Qn | Frequency::St => 1,
            Frequency::Bid | Frequency::Q12h => 2,
            Frequency::Tid | Frequency::Q8h => 3,
            Frequency::Qid | Frequency::Q6h => 4,
        }
    }
}

/// What the doctor orders.
#[derive(Clone, Debug, PartialEq)]
pub struct Order {
    pub drug: String,
    /// In the drug's dose unit.
    pub dose: f64,
    pub frequency: Frequency,
    pub days: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Allergy,
    CrossAllergy,
    Interaction,
    DoseHigh,
    DoseLow,
    Duplicate,
}

impl Kind {
    pub fn code(self) -> &'static str {
        match self {
            Kind::Allergy => "allergy",
            Kind::CrossAllergy => "cross-allergy",
            Kind::Interaction => "interaction",
            Kind::DoseHigh => "dose-high",
            Kind::DoseLow => "dose-low",
            Kind::Duplicate => "duplicate",
        }
    }

    /// The HL7 v3 ActCode of the alert (DetectedIssue.code).
    fn act_code(self) -> &'static str {
        match self {
            Kind::Allergy | Kind::CrossAllergy => "ALGY",
            Kind::Interaction => "DRG",
            Kind::DoseHigh => "DOSEH",
            Kind::DoseLow => "DOSEL",
            Kind::Duplicate => "DUPTHPY",
        }
    }
}

/// One check's finding.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub kind: Kind,
    /// Blocks signing unless overridden with a reason (else it warns).
    pub blocking: bool,
    pub zh: String,
    pub en: String,
}

/// The substance of a recorded AllergyIntolerance, as the checks compare it.
pub fn allergy_substance(a: &Value) -> Option<String> {
    a["code"]["text"].as_str().or_else(|| a["code"]["coding"][0]["display"].as_str()).map(str::to_string)
}

/// The catalogue drug a MedicationRequest prescribes, if it is one of the catalogue's.
pub fn prescribed_drug(m: &Value) -> Option<&'static Drug> {
    let codings = m["medicationCodeableConcept"]["coding"].as_array()?;
    codings.iter().filter(|c| c["system"] == DRUG_SYSTEM).find_map(|c| drug(c["code"].as_str()?))
}

fn matches_rule(pattern: &str, d: &Drug) -> bool {
    pattern == d.code || d.atc.starts_with(pattern)
}

/// The classes a recorded allergy's text names.
fn allergy_classes_of(substance: &str) -> Vec<&'static str> {
    let s = substance.to_lowercase();
    ALLERGY_CLASSES
        .iter()
        .filter(|(_, words, _)| words.iter().any(|w| s.contains(&w.to_lowercase())))
        .map(|(c, _, _)| *c)
        .collect()
}

/// Checks an order against the patient's allergies (recorded substances, free
/// text), the drugs of the patient's active prescriptions and the dose limits.
pub fn check(order: &Order, d: &Drug, allergies: &[String], active: &[&Drug]) -> Vec<Finding> {
    let mut out = Vec::new();
    for a in allergies {
        let classes = allergy_classes_of(a);
        if let Some(c) = d.allergy_classes.iter().find(|c| classes.contains(c)) {
            out.push(Finding {
                kind: Kind::Allergy,
                blocking: true,
                zh: format!("患者对“{a}”过敏：{}属于同一类（{c}）", d.zh),
                en: format!("The patient is allergic to '{a}': {} is of the same class ({c})", d.en),
            });
            continue;
        }
        let cross = ALLERGY_CLASSES
            .iter()
            .filter(|(c, _, _)| classes.contains(c))
            .flat_map(|(_, _, x)| x.iter())
            .find(|x| d.allergy_classes.contains(x));
        if let Some(x) = cross {
            out.push(Finding {
                kind: Kind::CrossAllergy,
                blocking: false,
                zh: format!("患者对“{a}”过敏，{}（{x}）可能发生交叉过敏", d.zh),
                en: format!("The patient is allergic to '{a}'; {} ({x}) may cross-react", d.en),
            });
        }
    }
    for other in active {
        for r in INTERACTIONS.iter() {
            let hit = (matches_rule(r.left, d) && matches_rule(r.right, other))
                || (matches_rule(r.right, d) && matches_rule(r.left, other));
            if hit {
                out.push(Finding {
                    kind: Kind::Interaction,
                    blocking: r.contraindicated,
                    zh: format!("与正在使用的{}相互作用：{}（来源：{}）", other.zh, r.zh, r.source),
                    en: format!("Interacts with {} (active): {} (source: {})", other.en, r.en, r.source),
                });
            }
        }
        if other.class == d.class && other.code != d.code {
            out.push(Finding {
                kind: Kind::Duplicate,
                blocking: false,
                zh: format!("重复用药：正在使用同类药物{}（{}）", other.zh, d.class),
                en: format!("Duplicate therapy: {} of the same class ({}) is active", other.en, d.class),
            });
        } else if other.code == d.code {
            out.push(Finding {
                kind: Kind::Duplicate,
                blocking: false,
                zh: format!("重复用药：{}已有有效处方", d.zh),
                en: format!("Duplicate therapy: {} is already prescribed", d.en),
            });
        }
    }
    let daily = order.dose * f64::from(order.frequency.per_day());
    if order.dose > d.max_single || daily > d.max_daily {
        out.push(Finding {
            kind: Kind::DoseHigh,
            blocking: true,
            zh: format!(
                "剂量超出范围：单次 {} {}（上限 {}），每日 {} {}（上限 {}）",
                order.dose, d.unit, d.max_single, daily, d.unit, d.max_daily
            ),
            en: format!(
                "Dose above range: {} {} a dose (at most {}), {} {} a day (at most {})",
                order.dose, d.unit, d.max_single, daily, d.unit, d.max_daily
            ),
        });
    } else if order.dose < d.min_single {
        out.push(Finding {
            kind: Kind::DoseLow,
            blocking: false,
            zh: format!("剂量低于常用量：单次 {} {}（常用至少 {}）", order.dose, d.unit, d.min_single),
            en: format!(
                "Dose below the usual range: {} {} a dose (usually at least {})",
                order.dose, d.unit, d.min_single
            ),
        });
    }
    out
}

/// The outcome of signing.
#[derive(Clone, Debug, PartialEq)]
pub enum Signed {
    /// The MedicationRequest's id, with the findings that were accepted.
    Done { id: String, findings: Vec<Finding> },
    /// Blocking findings and no override reason: nothing was written.
    Blocked(Vec<Finding>),
}

#[derive(Clone, Debug)]
pub struct Prescribing {
    fhir: FhirService,
}

/// A prescription as the workspace lists it and the slip prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prescription {
    /// The catalogue code (empty for a drug outside the catalogue).
    pub code: String,
    /// Drug and strength.
    pub names: Names,
    /// The dosage as signed (`500 mg tid × 5 d`), for prescriptions without the
    /// structured parts below (written by other systems).
    pub dosage: String,
    /// The prescription number (处方编号, `RX00000001`), empty when it has none.
    pub number: String,
    /// The structured dosage, when the prescription carries it.
    pub dose: Option<Dose>,
}

/// A prescription's dosage in parts, for pages to say in their language.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dose {
    /// The single dose as written (`500`, `0.5`).
    pub amount: String,
    /// Its unit (`mg`, `tablet`).
    pub unit: String,
    /// `qd`, `bid`, `tid`, `qid` or `qn`.
    pub frequency: String,
    pub days: u32,
    /// `oral` (the catalogue's tablets and capsules), empty when unknown.
    pub route: String,
    /// The quantity to dispense, in the drug's form (`15`, `capsule`).
    pub quantity: Option<(u32, String)>,
}

/// The prescription numbers' identifier system.
pub const NUMBER_SYSTEM: &str = "urn:lianyi:sid:prescription";
const SNOMED: &str = "http://snomed.info/sct";

/// How many units of the drug's form (tablets, capsules) one prescription takes:
/// a dose in the strength's unit divided by the strength (rounded up to whole
/// units), or a dose counted in the form itself; times doses a day, times days.
pub fn quantity(d: &Drug, order: &Order) -> Option<u32> {
    let mut strength = d.strength.split_whitespace();
    let per_dose = if d.unit == d.form {
        order.dose
    } else {
        let value: f64 = strength.next()?.parse().ok()?;
        (strength.next()? == d.unit && value > 0.0).then_some(order.dose / value)?
    };
    let total = (per_dose - 1e-9).ceil().max(1.0) * f64::from(order.frequency.per_day()) * f64::from(order.days);
    (total.is_finite() && total <= 100_000.0).then_some(total as u32)
}

/// The shortest override reason accepted.
pub const MIN_REASON: usize = 4;

impl Prescribing {
    pub fn new(fhir: FhirService) -> Prescribing {
        Prescribing { fhir }
    }

    async fn search(&self, caller: &Caller, t: &str, params: &[(&str, String)]) -> Result<Vec<Value>, RegistryError> {
        Ok(crate::common::search(&self.fhir, caller, t, params).await?.into_iter().map(|(_, v)| v).collect())
    }

    /// The encounter's active prescriptions, for the workspace and the printed slip.
    pub async fn active_in(&self, caller: &Caller, encounter: &str) -> Result<Vec<Prescription>, RegistryError> {
        let found = self
            .search(
                caller,
                "MedicationRequest",
                &[("encounter", format!("Encounter/{encounter}")), ("status", "active".into())],
            )
            .await?;
        Ok(found
            .iter()
            .map(|m| {
                let code = m["medicationCodeableConcept"]["coding"][0]["code"].as_str().unwrap_or_default();
                let names = match drug(code) {
                    Some(d) => Names { zh: format!("{} {}", d.zh, d.strength), en: format!("{} {}", d.en, d.strength) },
                    None => {
                        let text = m["medicationCodeableConcept"]["text"].as_str().unwrap_or_default().to_string();
                        Names { zh: text.clone(), en: text }
                    }
                };
                let di = &m["dosageInstruction"][0];
                let dq = &di["doseAndRate"][0]["doseQuantity"];
                let frequency = di["timing"]["code"]["text"].as_str().filter(|f| Frequency::parse(f).is_some());
                let days = m["dispenseRequest"]["expectedSupplyDuration"]["value"].as_u64();
                let dose = match (dq["value"].as_f64(), dq["unit"].as_str(), frequency, days) {
                    (Some(amount), Some(unit), Some(frequency), Some(days)) => Some(Dose {
                        amount: amount.to_string(),
                        unit: unit.to_string(),
                        frequency: frequency.to_string(),
                        days: u32::try_from(days).unwrap_or(u32::MAX),
                        route: di["route"]["text"].as_str().unwrap_or_default().to_string(),
                        quantity: m["dispenseRequest"]["quantity"]["value"].as_u64().map(|n| {
                            let unit = m["dispenseRequest"]["quantity"]["unit"].as_str().unwrap_or_default();
                            (u32::try_from(n).unwrap_or(u32::MAX), unit.to_string())
                        }),
                    }),
                    _ => None,
                };
                Prescription {
                    code: code.to_string(),
                    names,
                    dosage: di["text"].as_str().unwrap_or_default().to_string(),
                    number: m["identifier"]
                        .as_array()
                        .and_then(|ids| ids.iter().find(|i| i["system"] == NUMBER_SYSTEM))
                        .and_then(|i| i["value"].as_str())
                        .unwrap_or_default()
                        .to_string(),
                    dose,
                }
            })
            .collect())
    }

    fn checked_order(order: &Order) -> Result<&'static Drug, RegistryError> {
        let d = drug(&order.drug).ok_or_else(|| invalid("drug", "drug-unknown", "not a drug of the catalogue"))?;
        if !(order.dose.is_finite() && order.dose > 0.0) {
            return Err(invalid("dose", "dose", "a dose above 0"));
        }
        if !(1..=90).contains(&order.days) {
            return Err(invalid("days", "days", "1 to 90 days"));
        }
        Ok(d)
    }

    /// The findings for `order` in an encounter (its patient's allergies and
    /// active prescriptions, as far as the caller may read them).
    pub async fn review(&self, caller: &Caller, encounter: &str, order: &Order) -> Result<Vec<Finding>, RegistryError> {
        let d = Self::checked_order(order)?;
        let patient = self.patient_of(caller, encounter).await?;
        self.review_for(caller, &patient, order, d).await
    }

    async fn patient_of(&self, caller: &Caller, encounter: &str) -> Result<String, RegistryError> {
        let e = self.fhir.reader(caller, rtype("Encounter")?).await?.read(encounter).await?;
        let e: Value = serde_json::from_str(&e.body).map_err(|x| invalid("encounter", "stored", x.to_string()))?;
        e["subject"]["reference"]
            .as_str()
            .and_then(|r| r.strip_prefix("Patient/"))
            .map(str::to_string)
            .ok_or_else(|| invalid("encounter", "no-patient", "the encounter names no patient"))
    }

    async fn review_for(
        &self,
        caller: &Caller,
        patient: &str,
        order: &Order,
        d: &Drug,
    ) -> Result<Vec<Finding>, RegistryError> {
        let allergies: Vec<String> = self
            .search(
                caller,
                "AllergyIntolerance",
                &[("patient", format!("Patient/{patient}")), ("clinical-status", "active".into())],
            )
            .await?
            .iter()
            .filter_map(allergy_substance)
            .collect();
        let active: Vec<&Drug> = self
            .search(
                caller,
                "MedicationRequest",
                &[("patient", format!("Patient/{patient}")), ("status", "active".into())],
            )
            .await?
            .iter()
            .filter_map(prescribed_drug)
            .collect();
        Ok(check(order, d, &allergies, &active))
    }

    /// Signs a prescription in an encounter. With blocking findings it is written
    /// only when `override_reason` is given (at least [`MIN_REASON`] characters);
    /// the override is audited. Findings become DetectedIssues the MedicationRequest
    /// refers to, all in one transaction.
    pub async fn sign(
        &self,
        caller: &Caller,
        encounter: &str,
        order: &Order,
        override_reason: Option<&str>,
    ) -> Result<Signed, RegistryError> {
        let d = Self::checked_order(order)?;
        let patient = self.patient_of(caller, encounter).await?;
        let findings = self.review_for(caller, &patient, order, d).await?;
        let reason = override_reason.map(str::trim).filter(|r| r.chars().count() >= MIN_REASON);
        let blocked = findings.iter().any(|f| f.blocking);
        if blocked && reason.is_none() {
            return Ok(Signed::Blocked(findings));
        }
        let now = crate::scheduling::local_instant(self.fhir.now_ms());
        let request_url = "urn:uuid:00000000-0000-4000-8000-000000000001";
        let mut entries = Vec::new();
        let mut issue_refs = Vec::new();
        for (i, f) in findings.iter().enumerate() {
            let url = format!("urn:uuid:00000000-0000-4000-8000-{:012x}", i + 2);
            let mut issue = json!({"resourceType": "DetectedIssue", "status": "final",
                "code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": f.kind.act_code()}], "text": f.kind.code()},
                "severity": if f.blocking { "high" } else { "moderate" },
                "patient": {"reference": format!("Patient/{patient}")},
                "identifiedDateTime": now,
                "implicated": [{"reference": request_url}],
                "detail": format!("{} / {}", f.zh, f.en)});
            if f.blocking
                && let Some(r) = reason
            {
                issue["mitigation"] = json!([{"action": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMAUTH"}],
                                                          "text": format!("override: {r}")},
                                              "date": now, "author": {"display": caller.actor().to_string()}}]);
            }
            issue_refs.push(json!({"reference": url}));
            entries.push(
                json!({"fullUrl": url, "resource": issue, "request": {"method": "POST", "url": "DetectedIssue"}}),
            );
        }
        let per_day = order.frequency.per_day();
        let number = format!("RX{:08}", self.fhir.operations().next_counter("prescription", 1).await?);
        let request = json!({"resourceType": "MedicationRequest", "status": "active", "intent": "order",
            "identifier": [{"system": NUMBER_SYSTEM, "value": number}],
            "medicationCodeableConcept": {"coding": [{"system": DRUG_SYSTEM, "code": d.code, "display": d.en},
                                                     {"system": ATC_SYSTEM, "code": d.atc}],
                                          "text": format!("{} {}", d.zh, d.strength)},
            "subject": {"reference": format!("Patient/{patient}")},
            "encounter": {"reference": format!("Encounter/{encounter}")},
            "authoredOn": now,
            "requester": {"display": caller.actor().to_string()},
            "dosageInstruction": [{"text": format!("{} {} {} × {} d", order.dose, d.unit, order.frequency.code(), order.days),
                                   "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"},
                                              "code": {"text": order.frequency.code()}},
                                   "doseAndRate": [{"doseQuantity": {"value": order.dose, "unit": d.unit}}]}],
            "dispenseRequest": {"expectedSupplyDuration": {"value": order.days, "unit": "d", "system": "http://unitsofmeasure.org", "code": "d"}}});
        let mut request = request;
        // The catalogue's tablets and capsules are taken by mouth.
        if matches!(d.form, "tablet" | "capsule") {
            request["dosageInstruction"][0]["route"] =
                json!({"coding": [{"system": SNOMED, "code": "26643006", "display": "Oral route"}], "text": "oral"});
        }
        if let Some(n) = quantity(d, order) {
            request["dispenseRequest"]["quantity"] = json!({"value": n, "unit": d.form});
        }
        if !issue_refs.is_empty() {
            request["detectedIssue"] = json!(issue_refs);
        }
        entries.insert(0, json!({"fullUrl": request_url, "resource": request, "request": {"method": "POST", "url": "MedicationRequest"}}));
        let response = self
            .fhir
            .process_bundle(caller, json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}), true)
            .await?;
        let id = response["entry"][0]["response"]["location"]
            .as_str()
            .and_then(|l| l.split('/').nth(1))
            .map(str::to_string)
            .ok_or_else(|| invalid("drug", "sign", "the prescription was not created"))?;
        if blocked && let Some(r) = reason {
            let mut e = caller.entry(self.fhir.now_ms(), "prescribing-override", "success");
            e.resource_type = Some("MedicationRequest".into());
            e.resource_id = Some(id.clone());
            e.patient = Some(patient.clone());
            let kinds: Vec<&str> = findings.iter().filter(|f| f.blocking).map(|f| f.kind.code()).collect();
            e.detail = Some(format!("{} overridden ({}): {r}", d.code, kinds.join(", ")));
            self.fhir.audit_log().record(vec![e]).await.map_err(lianyi_services::ServiceError::from)?;
        }
        Ok(Signed::Done { id, findings })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(code: &str, dose: f64, f: Frequency) -> Order {
        Order { drug: code.into(), dose, frequency: f, days: 7 }
    }

    #[test]
    fn the_quantity_counts_whole_tablets_and_capsules() {
        let q = |code: &str, dose: f64, f: Frequency, days: u32| {
            quantity(drug(code).unwrap(), &Order { drug: code.into(), dose, frequency: f, days })
        };
        // 500 mg capsules, 500 mg three times a day for 5 days.
        assert_eq!(q("AMOX500", 500.0, Frequency::Tid, 5), Some(15));
        // Half a tablet is a whole tablet to dispense; 1,000 mg of a 500 mg tablet is two.
        assert_eq!(q("PARA500", 250.0, Frequency::Qd, 3), Some(3));
        assert_eq!(q("PARA500", 1000.0, Frequency::Bid, 2), Some(8));
        // A dose counted in tablets.
        assert_eq!(q("SMZ400", 2.0, Frequency::Bid, 7), Some(28));
    }

    fn run(code: &str, dose: f64, f: Frequency, allergies: &[&str], active: &[&str]) -> Vec<(Kind, bool)> {
        let d = drug(code).unwrap();
        let allergies: Vec<String> = allergies.iter().map(|s| s.to_string()).collect();
        let active: Vec<&Drug> = active.iter().map(|c| drug(c).unwrap()).collect();
        check(&order(code, dose, f), d, &allergies, &active).into_iter().map(|x| (x.kind, x.blocking)).collect()
    }

    #[test]
    fn the_tables_load() {
        assert!(catalogue().len() >= 35);
        assert!(INTERACTIONS.len() >= 14);
        assert_eq!(drug("AMOX500").unwrap().allergy_classes, vec!["penicillin"]);
        assert_eq!(search_drugs("阿莫西林")[0].code, "AMOX500");
        assert_eq!(search_drugs("amox")[0].code, "AMOX500");
    }

    #[test]
    fn allergies_block_and_cross_reactions_warn() {
        assert_eq!(run("AMOX500", 500.0, Frequency::Tid, &["青霉素"], &[]), vec![(Kind::Allergy, true)]);
        assert_eq!(run("AMOX500", 500.0, Frequency::Tid, &["Penicillin G"], &[]), vec![(Kind::Allergy, true)]);
        assert_eq!(run("CEFU250", 250.0, Frequency::Bid, &["青霉素"], &[]), vec![(Kind::CrossAllergy, false)]);
        assert!(run("AZIT250", 500.0, Frequency::Qd, &["青霉素"], &[]).is_empty());
        assert!(run("AMOX500", 500.0, Frequency::Tid, &["花粉"], &[]).is_empty());
    }

    #[test]
    fn interactions_block_when_contraindicated_and_warn_otherwise() {
        assert_eq!(run("CLAR250", 250.0, Frequency::Bid, &[], &["SIMV20"]), vec![(Kind::Interaction, true)]);
        assert_eq!(
            run("SIMV20", 20.0, Frequency::Qn, &[], &["CLAR250"]),
            vec![(Kind::Interaction, true)],
            "either order"
        );
        assert_eq!(run("IBU200", 400.0, Frequency::Tid, &[], &["WARF3"]), vec![(Kind::Interaction, false)]);
        assert_eq!(run("SILD50", 50.0, Frequency::Qd, &[], &["ISMN20"]), vec![(Kind::Interaction, true)]);
        assert!(run("PARA500", 500.0, Frequency::Tid, &[], &["WARF3"]).is_empty());
    }

    #[test]
    fn doses_outside_the_range() {
        assert_eq!(run("PARA500", 1500.0, Frequency::Tid, &[], &[]), vec![(Kind::DoseHigh, true)], "single dose");
        assert_eq!(run("PARA500", 1000.0, Frequency::Qid, &[], &[]), vec![], "4 g a day is the limit");
        assert_eq!(run("IBU200", 800.0, Frequency::Qid, &[], &[]), vec![(Kind::DoseHigh, true)], "3.2 g a day");
        assert_eq!(run("AMLO5", 1.0, Frequency::Qd, &[], &[]), vec![(Kind::DoseLow, false)]);
    }

    #[test]
    fn duplicate_therapy_warns() {
        assert_eq!(run("LOSA50", 50.0, Frequency::Qd, &[], &["VALS80"]), vec![(Kind::Duplicate, false)]);
        assert_eq!(run("AMLO5", 5.0, Frequency::Qd, &[], &["AMLO5"]), vec![(Kind::Duplicate, false)]);
        // An ACE inhibitor with spironolactone: an interaction, not a duplicate.
        assert_eq!(run("ENAL10", 10.0, Frequency::Bid, &[], &["SPIR20"]), vec![(Kind::Interaction, false)]);
    }
}
