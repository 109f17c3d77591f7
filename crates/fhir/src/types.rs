//! The resource types this server stores and serves.
//!
//! The list is DESIGN.md §5 plus the clinical types that real bulk exports (Synthea)
//! carry, so an import of a hospital's or a generator's data does not drop records.
//! The validator knows every R4 type (for `contained` and bundles); the REST API and
//! the CapabilityStatement expose exactly this list.

use std::fmt;

/// Resource types served at `/fhir/{type}`, in CapabilityStatement order.
pub const SUPPORTED_TYPES: &[&str] = &[
    "Account",
    "AllergyIntolerance",
    "Appointment",
    "AuditEvent",
    "CarePlan",
    "CareTeam",
    "ChargeItem",
    "Claim",
    "Communication",
    "Composition",
    "Condition",
    "Coverage",
    "DetectedIssue",
    "Device",
    "DiagnosticReport",
    "DocumentReference",
    "Encounter",
    "ExplanationOfBenefit",
    "Flag",
    "Goal",
    "Group",
    "ImagingStudy",
    "Immunization",
    "Invoice",
    "Location",
    "Medication",
    "MedicationAdministration",
    "MedicationDispense",
    "MedicationRequest",
    "Observation",
    "Organization",
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "Provenance",
    "Schedule",
    "ServiceRequest",
    "Slot",
    "Specimen",
    "Subscription",
    "SupplyDelivery",
    "Task",
];

/// A resource type name that this server supports (parse, don't validate).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceType(&'static str);

impl ResourceType {
    /// Accepts exactly the names in [`SUPPORTED_TYPES`].
    pub fn parse(name: &str) -> Option<Self> {
        SUPPORTED_TYPES.binary_search(&name).ok().map(|i| ResourceType(SUPPORTED_TYPES[i]))
    }

    pub fn as_str(&self) -> &'static str {
        self.0
    }

    pub fn all() -> impl Iterator<Item = ResourceType> {
        SUPPORTED_TYPES.iter().map(|s| ResourceType(s))
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_sorted_so_binary_search_works() {
        let mut sorted = SUPPORTED_TYPES.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, SUPPORTED_TYPES);
    }

    #[test]
    fn parse_accepts_supported_and_rejects_others() {
        assert_eq!(ResourceType::parse("Patient").map(|t| t.as_str()), Some("Patient"));
        assert!(ResourceType::parse("patient").is_none());
        assert!(ResourceType::parse("StructureDefinition").is_none());
    }
}
