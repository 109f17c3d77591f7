//! A patient's insurance (医保, FHIR Coverage), recorded at registration: the kind
//! (basic medical insurance for employees or for residents, commercial health
//! insurance), the insurer or fund, the member number and the period. Billing is
//! self-pay today; the insurers' settlement interfaces come later and read these.

use lianyi_fhir::ResourceType;
use lianyi_fhir::search::parse_search;
use lianyi_security::{Caller, Perm};
use lianyi_services::{FhirService, ServiceError};
use serde_json::{Value, json};

use crate::prices::FieldError;

/// The coverage kinds' code system.
pub const COVERAGE_TYPE_SYSTEM: &str = "urn:lianyi:coverage-type";
/// (code, Chinese, English).
pub const KINDS: [(&str, &str, &str); 3] = [
    ("employee", "城镇职工基本医疗保险", "Basic medical insurance for employees"),
    ("resident", "城乡居民基本医疗保险", "Basic medical insurance for residents"),
    ("commercial", "商业健康保险", "Commercial health insurance"),
];

#[derive(Debug, thiserror::Error)]
pub enum CoverageError {
    #[error("{}", crate::prices::joined(.0))]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// A coverage as the patient page lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoverageView {
    pub id: String,
    pub kind: String,
    pub payor: String,
    pub member: String,
    pub start: String,
    pub end: String,
    pub status: String,
}

/// A coverage as the form gives it.
#[derive(Clone, Debug, Default)]
pub struct CoverageForm {
    pub kind: String,
    pub payor: String,
    pub member: String,
    /// `YYYY-MM-DD`, optional.
    pub start: String,
    pub end: String,
}

#[derive(Clone, Debug)]
pub struct Coverages {
    fhir: FhirService,
}

fn rtype() -> ResourceType {
    ResourceType::parse("Coverage").expect("Coverage is supported")
}

impl Coverages {
    pub fn new(fhir: FhirService) -> Coverages {
        Coverages { fhir }
    }

    pub fn may_record(caller: &Caller) -> bool {
        caller.access().allows("Coverage", Perm::Create) && caller.access().patient().is_none()
    }

    /// A patient's coverages, as the caller may read them (checked and audited).
    pub async fn list(&self, caller: &Caller, patient: &str) -> Result<Vec<CoverageView>, CoverageError> {
        let params = [("beneficiary".to_string(), format!("Patient/{patient}")), ("_count".into(), "50".into())];
        let req = parse_search(rtype(), &params).map_err(|i| {
            CoverageError::Invalid(vec![FieldError { field: "patient", rule: "format", detail: i.diagnostics }])
        })?;
        let found = self.fhir.search(&self.fhir.permit(caller, rtype()).await?, &req).await?;
        Ok(found
            .resources
            .iter()
            .filter_map(|r| {
                let v: Value = serde_json::from_str(&r.body).ok()?;
                Some(CoverageView {
                    id: r.id.clone(),
                    kind: v["type"]["coding"][0]["code"].as_str().unwrap_or_default().to_string(),
                    payor: v["payor"][0]["display"].as_str().unwrap_or_default().to_string(),
                    member: v["subscriberId"].as_str().unwrap_or_default().to_string(),
                    start: v["period"]["start"].as_str().unwrap_or_default().to_string(),
                    end: v["period"]["end"].as_str().unwrap_or_default().to_string(),
                    status: v["status"].as_str().unwrap_or_default().to_string(),
                })
            })
            .collect())
    }

    /// Records a coverage for a patient; every broken rule named by field.
    pub async fn record(&self, caller: &Caller, patient: &str, form: &CoverageForm) -> Result<String, CoverageError> {
        let mut errors = Vec::new();
        let mut rule = |ok: bool, field: &'static str, rule: &'static str, detail: &str| {
            if !ok {
                errors.push(FieldError { field, rule, detail: detail.into() });
            }
        };
        let kind = KINDS.iter().find(|k| k.0 == form.kind);
        rule(kind.is_some(), "kind", "choice", "employee, resident or commercial");
        let sized = |s: &str, max: usize| !s.trim().is_empty() && s.trim().chars().count() <= max;
        rule(sized(&form.payor, 100), "payor", "required", "the insurer or fund (1 to 100 characters)");
        let member_ok =
            sized(&form.member, 40) && form.member.trim().chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        rule(member_ok, "member", "member", "the member number (letters, digits and '-', up to 40)");
        let date = |s: &str| s.trim().is_empty() || lianyi_clinical::scheduling::local_midnight(s.trim()).is_some();
        rule(date(&form.start), "start", "format", "a date as YYYY-MM-DD");
        rule(date(&form.end), "end", "format", "a date as YYYY-MM-DD");
        let (start, end) = (form.start.trim(), form.end.trim());
        rule(start.is_empty() || end.is_empty() || end >= start, "end", "order", "on or after the start");
        if !errors.is_empty() {
            return Err(CoverageError::Invalid(errors));
        }
        let (code, zh, en) = kind.copied().unwrap_or(KINDS[0]);
        let mut coverage = json!({"resourceType": "Coverage", "status": "active",
            "type": {"coding": [{"system": COVERAGE_TYPE_SYSTEM, "code": code, "display": en}], "text": zh},
            "subscriberId": form.member.trim(),
            "beneficiary": {"reference": format!("Patient/{patient}")},
            "payor": [{"display": form.payor.trim()}]});
        let mut period = serde_json::Map::new();
        if !start.is_empty() {
            period.insert("start".into(), json!(start));
        }
        if !end.is_empty() {
            period.insert("end".into(), json!(end));
        }
        if !period.is_empty() {
            coverage["period"] = Value::Object(period);
        }
        let bundle = json!({"resourceType": "Bundle", "type": "transaction",
            "entry": [{"resource": coverage, "request": {"method": "POST", "url": "Coverage"}}]});
        let response = self.fhir.process_bundle(caller, bundle, true).await?;
        Ok(response["entry"][0]["response"]["location"]
            .as_str()
            .and_then(|l| l.split('/').nth(1))
            .unwrap_or_default()
            .to_string())
    }
}
