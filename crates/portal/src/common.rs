//! What the portal's services share: reads and searches as a caller (permission,
//! compartment, audit), and the audit record of a portal action.

use lianyi_fhir::ResourceType;
use lianyi_fhir::search::parse_search;
use lianyi_security::Caller;
use lianyi_services::{FhirService, ServiceError};
use lianyi_store::StoredResource;
use serde_json::Value;

use crate::{PortalError, invalid};

pub(crate) fn rtype(name: &str) -> Result<ResourceType, PortalError> {
    ResourceType::parse(name).ok_or_else(|| invalid("type", "type", format!("{name} is not supported")))
}

/// A resource as `caller` reads it; `None` when there is none (or it is gone).
pub(crate) async fn read(
    fhir: &FhirService,
    caller: &Caller,
    t: &str,
    id: &str,
) -> Result<Option<(StoredResource, Value)>, PortalError> {
    let r = match fhir.reader(caller, rtype(t)?).await?.read(id).await {
        Ok(r) => r,
        Err(ServiceError::NotFound { .. } | ServiceError::Gone { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let v = serde_json::from_str(&r.body).unwrap_or_default();
    Ok(Some((r, v)))
}

/// A search as `caller`: the matches, and the `_include`d resources, parsed.
pub(crate) async fn search(
    fhir: &FhirService,
    caller: &Caller,
    t: &str,
    params: &[(&str, String)],
) -> Result<(Vec<(StoredResource, Value)>, Vec<Value>), PortalError> {
    let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let req = parse_search(rtype(t)?, &params).map_err(|i| invalid("search", "search", i.diagnostics))?;
    let page = fhir.search(&fhir.permit(caller, req.resource_type).await?, &req).await?;
    let included = page.included.iter().filter_map(|r| serde_json::from_str(&r.body).ok()).collect();
    let found = page
        .resources
        .into_iter()
        .map(|r| {
            let v = serde_json::from_str(&r.body).unwrap_or_default();
            (r, v)
        })
        .collect();
    Ok((found, included))
}

/// How many resources match a search as `caller` (`_summary=count`: none is read).
pub(crate) async fn count(
    fhir: &FhirService,
    caller: &Caller,
    t: &str,
    params: &[(&str, String)],
) -> Result<u64, PortalError> {
    let mut params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    params.push(("_summary".into(), "count".into()));
    let req = parse_search(rtype(t)?, &params).map_err(|i| invalid("search", "search", i.diagnostics))?;
    let page = fhir.search(&fhir.permit(caller, req.resource_type).await?, &req).await?;
    Ok(page.total.unwrap_or_default().max(0) as u64)
}

/// Records a portal action by `caller` in the audit chain.
pub(crate) async fn audit(
    fhir: &FhirService,
    caller: &Caller,
    action: &str,
    outcome: &str,
    patient: Option<&str>,
    detail: String,
) -> Result<(), PortalError> {
    let mut e = caller.entry(fhir.now_ms(), action, outcome);
    e.patient = patient.map(str::to_string);
    e.detail = Some(detail);
    fhir.audit_log().record(vec![e]).await.map_err(|e| PortalError::Audit(e.to_string()))
}

/// The id in a reference `Type/id` of the given type.
pub(crate) fn ref_id<'a>(v: &'a Value, prefix: &str) -> Option<&'a str> {
    v["reference"].as_str()?.strip_prefix(prefix)?.strip_prefix('/')
}

/// The patient a patient-bound caller stands for.
pub(crate) fn patient_of(caller: &Caller) -> Result<&str, PortalError> {
    caller.access().patient().ok_or_else(|| PortalError::Forbidden("the portal is for patients' own accounts".into()))
}
