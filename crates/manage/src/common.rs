//! What the management services share: the audit record of a change, and who reads a
//! campus's management data (its staff; never a patient).

use lianyi_clinical::names::Names;
use lianyi_security::Caller;
use lianyi_services::{FhirService, ServiceError};

/// Records `action` by `caller` (a success, with `detail`) in the audit chain; the
/// error in words when it could not be written.
pub(crate) async fn audit(fhir: &FhirService, caller: &Caller, action: &str, detail: String) -> Result<(), String> {
    let mut e = caller.entry(fhir.now_ms(), action, "success");
    e.detail = Some(detail);
    fhir.audit_log().record(vec![e]).await.map_err(|e| e.to_string())
}

/// `caller` holds capability `c` at `campus`.
pub(crate) fn holds_at(caller: &Caller, c: lianyi_security::roles::Capability, campus: &str) -> bool {
    caller.can(c) && caller.access().all_campuses().contains(campus)
}

/// A signed-in member of staff of `campus`.
pub(crate) fn staff_at(caller: &Caller, campus: &str) -> bool {
    caller.is_authenticated() && caller.access().patient().is_none() && caller.access().all_campuses().contains(campus)
}

/// A directory resource's names (an Organization's or a person's) as `caller` reads
/// them; `None` when there is no such resource.
pub(crate) async fn names_of(
    fhir: &FhirService,
    caller: &Caller,
    rtype: &str,
    id: &str,
) -> Result<Option<Names>, ServiceError> {
    let Some(rt) = lianyi_fhir::ResourceType::parse(rtype) else { return Ok(None) };
    let found = match fhir.reader(caller, rt).await?.read(id).await {
        Ok(r) => r,
        Err(ServiceError::NotFound { .. } | ServiceError::Gone { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let v: serde_json::Value = serde_json::from_str(&found.body).unwrap_or_default();
    Ok(Some(if rtype == "Organization" {
        lianyi_services::fhir::organization_names(&v)
    } else {
        lianyi_clinical::names::of(&v)
    }))
}
