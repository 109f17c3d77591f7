//! Business rules on resource content that hold on every door into the data: the FHIR
//! API, transaction bundles, `$import`, the HL7 listener and the pages all write
//! through [`crate::FhirService`], which applies these after the R4 schema check. A
//! page may check the same rule earlier to name a form field, but this is the rule.
//! Its issues have the code `business-rule`, which the FHIR API answers with 422
//! (valid R4 that breaks a rule of the server's), not 400.

use std::future::Future;
use std::pin::Pin;

use lianyi_fhir::{Issue, IssueType, OperationOutcome};
use serde_json::Value;

use crate::identifiers::{RESIDENT_ID_SYSTEM, ResidentId};

/// The longest a date can be ahead of "now" in UTC and still be today somewhere
/// (UTC+14): a birth date starting later than this is in the future everywhere.
const LATEST_ZONE_MS: i64 = 14 * 3_600_000;

/// Checks `resource` (already valid R4) against the rules of its type; `now_ms` is the
/// current instant. The error names the element (`Patient.identifier[1]`) and the rule.
pub fn check(rtype: &str, resource: &Value, now_ms: i64) -> Result<(), OperationOutcome> {
    match rtype {
        "Patient" => patient(resource, now_ms),
        _ => Ok(()),
    }
}

fn broken(code: IssueType, at: String, msg: String) -> OperationOutcome {
    OperationOutcome::single(Issue::error(code, msg).at(&at))
}

/// A resident ID number must be valid (format, ISO 7064 check character, birth date);
/// the birth date and a male/female gender must agree with it; the birth date may not
/// be in the future.
fn patient(p: &Value, now_ms: i64) -> Result<(), OperationOutcome> {
    let mut resident = None;
    let identifiers = p.get("identifier").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    for (n, id) in identifiers.iter().enumerate() {
        if id.get("system").and_then(Value::as_str) != Some(RESIDENT_ID_SYSTEM) {
            continue;
        }
        let Some(value) = id.get("value").and_then(Value::as_str) else { continue };
        match ResidentId::parse(value) {
            Ok(r) => {
                resident.get_or_insert(r);
            }
            Err(e) => {
                return Err(broken(
                    IssueType::BusinessRule,
                    format!("Patient.identifier[{n}]"),
                    format!("Patient.identifier[{n}] is not a valid resident ID number: {e}"),
                ));
            }
        }
    }
    let birth = p.get("birthDate").and_then(Value::as_str);
    if let Some(b) = birth
        && lianyi_fhir::datetime::parse_range(b).is_some_and(|r| r.low > now_ms + LATEST_ZONE_MS)
    {
        return Err(broken(
            IssueType::BusinessRule,
            "Patient.birthDate".into(),
            format!("Patient.birthDate '{b}' is in the future (rule: a birth date is today or earlier)"),
        ));
    }
    let Some(r) = resident else { return Ok(()) };
    if let Some(b) = birth
        && b.len() == 10
        && b != r.birth_date()
    {
        return Err(broken(
            IssueType::BusinessRule,
            "Patient.birthDate".into(),
            format!(
                "Patient.birthDate '{b}' differs from the birth date in the resident ID number ({}) (rule: they agree)",
                r.birth_date()
            ),
        ));
    }
    if let Some(g) = p.get("gender").and_then(Value::as_str)
        && matches!(g, "male" | "female")
        && g != r.gender()
    {
        return Err(broken(
            IssueType::BusinessRule,
            "Patient.gender".into(),
            format!(
                "Patient.gender '{g}' differs from the sex in the resident ID number ({}) (rule: they agree)",
                r.gender()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_795_000_000_000; // 2026-11-18

    fn with_id(value: &str) -> Value {
        json!({"resourceType": "Patient", "identifier": [
            {"system": "urn:lianyi:sid:mrn:campus-east", "value": "E1"},
            {"system": RESIDENT_ID_SYSTEM, "value": value}]})
    }

    #[test]
    fn a_wrong_check_character_names_the_identifier_and_the_rule() {
        let e = check("Patient", &with_id("110105194912310021"), NOW).unwrap_err();
        let issue = &e.issues[0];
        assert_eq!(issue.expression.as_deref(), Some("Patient.identifier[1]"));
        assert!(issue.diagnostics.contains("ISO 7064"), "{}", issue.diagnostics);
        assert!(check("Patient", &with_id("11010519491231002X"), NOW).is_ok());
    }

    #[test]
    fn birth_date_and_sex_agree_with_the_resident_id() {
        let mut p = with_id("11010519491231002X");
        p["birthDate"] = json!("1949-12-31");
        p["gender"] = json!("female");
        assert!(check("Patient", &p, NOW).is_ok());
        p["gender"] = json!("male");
        assert_eq!(check("Patient", &p, NOW).unwrap_err().issues[0].expression.as_deref(), Some("Patient.gender"));
        p["gender"] = json!("unknown");
        assert!(check("Patient", &p, NOW).is_ok());
        p["birthDate"] = json!("1949-12-30");
        assert_eq!(check("Patient", &p, NOW).unwrap_err().issues[0].expression.as_deref(), Some("Patient.birthDate"));
    }

    #[test]
    fn a_birth_date_in_the_future_is_refused() {
        let p = json!({"resourceType": "Patient", "birthDate": "2027-01-01"});
        assert!(check("Patient", &p, NOW).is_err());
        let today = json!({"resourceType": "Patient", "birthDate": "2026-11-18"});
        assert!(check("Patient", &today, NOW).is_ok());
    }
}

/// A rule that needs stored data to decide (is the Slot still free? what is the
/// patient allergic to?), added by a layer above the services when the platform is
/// wired ([`crate::FhirService::with_rules`]: the clinical rules). The service runs it
/// on every write of its types, on every door (the API, bundles, `$import`, HL7, the
/// pages), after the content rules and before anything is stored; the error names the
/// element and the rule, with the code `business-rule`.
pub trait StoredRule: Send + Sync + std::fmt::Debug {
    /// Whether the rule looks at writes of `rtype`.
    fn applies_to(&self, rtype: &str) -> bool;

    /// Checks one write. `data` reads what is stored now (before this write).
    fn check<'a>(&'a self, data: &'a StoredData<'a>, write: &'a Proposed<'a>) -> RuleFuture<'a>;
}

/// What a [`StoredRule`] answers.
/// (A broken rule is [`crate::ServiceError::Invalid`] with a `business-rule` issue,
/// made by [`broken_rule`]; a store failure while looking is the store's error.)
pub type RuleFuture<'a> = Pin<Box<dyn Future<Output = Result<(), crate::ServiceError>> + Send + 'a>>;

/// One write a [`StoredRule`] is asked about.
#[derive(Debug)]
pub struct Proposed<'a> {
    pub rtype: &'a str,
    pub id: &'a str,
    pub resource: &'a Value,
    /// A new resource (not a new version of a stored one).
    pub creating: bool,
}

/// The stored data a rule may look at while it checks a write: every campus, read
/// only, not audited (nothing leaves the service but the rule's verdict, which goes to
/// the writer, whose write is audited). Made only by the service, for one check.
#[derive(Debug)]
pub struct StoredData<'a> {
    pub(crate) fhir: &'a crate::FhirService,
}

/// A broken business rule at `at` (a FHIRPath such as `Appointment.slot[0]`).
pub fn broken_rule(at: &str, msg: impl Into<String>) -> crate::ServiceError {
    crate::ServiceError::Invalid(broken(IssueType::BusinessRule, at.to_string(), msg.into()))
}
