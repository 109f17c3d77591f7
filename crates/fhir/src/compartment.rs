//! The Patient compartment (from the official CompartmentDefinition): which search
//! parameters tie a resource to a patient. Used to name the patient in audit
//! records and, for patient users, to limit what they may see.

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::search_params::IndexRows;

const COMPARTMENT_JSON: &str = include_str!("generated/compartment.json");

#[allow(clippy::expect_used)] // generated and compiled in; unit tests load it
static PATIENT_COMPARTMENT: LazyLock<HashMap<String, Vec<String>>> =
    LazyLock::new(|| serde_json::from_str(COMPARTMENT_JSON).expect("generated compartment.json parses"));

/// The parameters linking `resource_type` to the Patient compartment (empty if none).
pub fn patient_params(resource_type: &str) -> &'static [String] {
    let map: &'static HashMap<String, Vec<String>> = &PATIENT_COMPARTMENT;
    map.get(resource_type).map_or(&[], Vec::as_slice)
}

/// The patients a resource belongs to, from its own id (a Patient) or its index rows.
pub fn patients_of(resource_type: &str, id: &str, rows: &IndexRows) -> Vec<String> {
    if resource_type == "Patient" {
        return vec![id.to_string()];
    }
    let params = patient_params(resource_type);
    let mut out: Vec<String> = rows
        .references
        .iter()
        .filter(|r| r.target_type.as_deref() == Some("Patient") && params.iter().any(|p| p == r.param))
        .map(|r| r.target_id.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract_index;
    use serde_json::json;

    #[test]
    fn finds_the_patient_of_clinical_resources() {
        let o = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                       "subject": {"reference": "Patient/p1"}, "performer": [{"reference": "Practitioner/d1"}]});
        assert_eq!(patients_of("Observation", "o1", &extract_index("Observation", &o)), vec!["p1"]);
        assert_eq!(patients_of("Patient", "p9", &IndexRows::default()), vec!["p9"]);
        let org = json!({"resourceType": "Organization", "name": "x"});
        assert!(patients_of("Organization", "x", &extract_index("Organization", &org)).is_empty());
        assert_eq!(patient_params("Encounter"), ["subject".to_string()]);
    }
}
