//! The doctor's encounter workspace: diagnoses coded with ICD-10 (a Condition of
//! category `encounter-diagnosis` linked to the Encounter) and the patient's
//! allergies (AllergyIntolerance), written through the FHIR service as the doctor.

use lianyi_security::Caller;
use lianyi_services::FhirService;
use serde_json::{Value, json};

use crate::common::{invalid, rtype};
use crate::icd10;
use crate::names::Names;
use crate::registry::RegistryError;

/// A diagnosis as the workspace lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnosis {
    pub id: String,
    pub code: String,
    pub title_en: String,
    pub title_zh: Option<String>,
}

/// An allergy as the banner and the workspace show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allergy {
    pub id: String,
    pub substance: String,
    pub criticality: String,
    pub reaction: String,
}

/// An outpatient visit as the encounter workspace shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncounterView {
    pub id: String,
    /// The Patient id.
    pub patient: String,
    /// FHIR Encounter.status (`arrived`, `in-progress`, `finished` …).
    pub status: String,
    /// `YYYY-MM-DD HH:MM` as stored (the hospital's local time).
    pub started: String,
    /// The number called in the department's queue (empty if none).
    pub queue_number: String,
    /// The department (Organization id) and its names.
    pub department: String,
    pub department_names: Names,
    /// The campus the department belongs to.
    pub campus: Option<String>,
}

/// The encounter workspace: diagnoses and allergies of a visit.
#[derive(Clone, Debug)]
pub struct Workspace {
    fhir: FhirService,
}

impl Workspace {
    pub fn new(fhir: FhirService) -> Workspace {
        Workspace { fhir }
    }

    async fn encounter(&self, caller: &Caller, id: &str) -> Result<Value, RegistryError> {
        let r = self.fhir.reader(caller, rtype("Encounter")?).await?.read(id).await?;
        serde_json::from_str(&r.body).map_err(|e| invalid("encounter", "stored", e.to_string()))
    }

    /// The visit as the workspace's banner shows it: patient, department (with its
    /// names and campus), status, start and queue number.
    pub async fn view(&self, caller: &Caller, id: &str) -> Result<EncounterView, RegistryError> {
        let e = self.encounter(caller, id).await?;
        let reference = |v: &Value, prefix: &str| {
            v["reference"].as_str().unwrap_or_default().trim_start_matches(prefix).to_string()
        };
        let department = reference(&e["serviceProvider"], "Organization/");
        let organization = match department.as_str() {
            "" => None,
            dept => match self.fhir.reader(caller, rtype("Organization")?).await?.read(dept).await {
                Ok(r) => serde_json::from_str::<Value>(&r.body).ok(),
                Err(_) => None,
            },
        };
        let started = e["period"]["start"].as_str().unwrap_or_default();
        let queue_number = e["identifier"]
            .as_array()
            .and_then(|ids| {
                ids.iter().find(|i| i["system"].as_str().is_some_and(|s| s.starts_with("urn:lianyi:sid:queue:")))
            })
            .and_then(|i| i["value"].as_str())
            .unwrap_or_default()
            .to_string();
        Ok(EncounterView {
            id: id.to_string(),
            patient: reference(&e["subject"], "Patient/"),
            status: e["status"].as_str().unwrap_or_default().to_string(),
            started: format!("{} {}", started.get(..10).unwrap_or_default(), started.get(11..16).unwrap_or_default()),
            queue_number,
            department_names: organization
                .as_ref()
                .map(lianyi_services::fhir::organization_names)
                .unwrap_or_else(|| Names { zh: department.clone(), en: department.clone() }),
            campus: organization.as_ref().map(|o| reference(&o["partOf"], "Organization/")).filter(|c| !c.is_empty()),
            department,
        })
    }

    async fn search(&self, caller: &Caller, t: &str, params: &[(&str, String)]) -> Result<Vec<Value>, RegistryError> {
        Ok(crate::common::search(&self.fhir, caller, t, params).await?.into_iter().map(|(_, v)| v).collect())
    }

    /// Records an ICD-10 diagnosis for the encounter; returns the Condition's id.
    pub async fn add_diagnosis(&self, caller: &Caller, encounter: &str, code: &str) -> Result<String, RegistryError> {
        let Some(c) = icd10::lookup(code) else {
            return Err(invalid("code", "icd10-unknown", format!("'{code}' is not an ICD-10 code of the table")));
        };
        let e = self.encounter(caller, encounter).await?;
        let mut text = c.en.to_string();
        if let Some(zh) = c.zh {
            text = format!("{zh} ({})", c.en);
        }
        let condition = json!({"resourceType": "Condition",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "encounter-diagnosis"}]}],
            "code": {"coding": [{"system": icd10::SYSTEM, "code": c.code, "display": c.en}], "text": text},
            "subject": e["subject"],
            "encounter": {"reference": format!("Encounter/{encounter}")},
            "recordedDate": crate::scheduling::local_instant(self.fhir.now_ms())});
        let w = self.fhir.create(&self.fhir.permit(caller, rtype("Condition")?).await?, condition).await?;
        Ok(w.id)
    }

    /// The encounter's diagnoses, in the order they were recorded.
    pub async fn diagnoses(&self, caller: &Caller, encounter: &str) -> Result<Vec<Diagnosis>, RegistryError> {
        let rows = self
            .search(
                caller,
                "Condition",
                &[("encounter", format!("Encounter/{encounter}")), ("_sort", "_lastUpdated".into())],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|c| {
                let coding = &c["code"]["coding"][0];
                let code = coding["code"].as_str().unwrap_or_default().to_string();
                let known = icd10::lookup(&code);
                Diagnosis {
                    id: c["id"].as_str().unwrap_or_default().to_string(),
                    title_en: coding["display"].as_str().unwrap_or_default().to_string(),
                    title_zh: known.and_then(|k| k.zh.map(str::to_string)),
                    code,
                }
            })
            .collect())
    }

    /// Records an allergy of the patient (substance as text, criticality high, low
    /// or unable-to-assess, the reaction seen); returns the AllergyIntolerance's id.
    pub async fn add_allergy(
        &self,
        caller: &Caller,
        patient: &str,
        substance: &str,
        criticality: &str,
        reaction: &str,
    ) -> Result<String, RegistryError> {
        let substance = substance.trim();
        if substance.is_empty() || substance.chars().count() > 100 {
            return Err(invalid("substance", "substance", "the substance is required (at most 100 characters)"));
        }
        if !matches!(criticality, "high" | "low" | "unable-to-assess") {
            return Err(invalid("criticality", "criticality", "one of high, low, unable-to-assess"));
        }
        let mut allergy = json!({"resourceType": "AllergyIntolerance",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "code": "confirmed"}]},
            "type": "allergy", "category": ["medication"], "criticality": criticality,
            "code": {"text": substance},
            "patient": {"reference": format!("Patient/{patient}")},
            "recordedDate": crate::scheduling::local_instant(self.fhir.now_ms())});
        if !reaction.trim().is_empty() {
            allergy["reaction"] = json!([{"manifestation": [{"text": reaction.trim()}]}]);
        }
        let w = self.fhir.create(&self.fhir.permit(caller, rtype("AllergyIntolerance")?).await?, allergy).await?;
        Ok(w.id)
    }

    /// The patient's active allergies.
    pub async fn allergies(&self, caller: &Caller, patient: &str) -> Result<Vec<Allergy>, RegistryError> {
        let rows = self
            .search(
                caller,
                "AllergyIntolerance",
                &[("patient", format!("Patient/{patient}")), ("clinical-status", "active".into())],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|a| Allergy {
                id: a["id"].as_str().unwrap_or_default().to_string(),
                substance: a["code"]["text"]
                    .as_str()
                    .or_else(|| a["code"]["coding"][0]["display"].as_str())
                    .unwrap_or_default()
                    .to_string(),
                criticality: a["criticality"].as_str().unwrap_or("unable-to-assess").to_string(),
                reaction: a["reaction"][0]["manifestation"][0]["text"].as_str().unwrap_or_default().to_string(),
            })
            .collect())
    }
}
