//! Helpers every workflow uses: errors naming a field, resource types, searches and
//! the transactions they write.

use lianyi_fhir::ResourceType;
use lianyi_fhir::search::parse_search;
use lianyi_security::Caller;
use lianyi_services::FhirService;
use lianyi_store::StoredResource;
use serde_json::{Value, json};

use crate::registry::{FieldError, RegistryError};

/// A request breaking one rule of one field.
pub(crate) fn invalid(field: &'static str, code: &'static str, detail: impl Into<String>) -> RegistryError {
    RegistryError::Invalid(vec![FieldError { field, code, detail: detail.into() }])
}

/// A resource type by name.
pub(crate) fn rtype(name: &str) -> Result<ResourceType, RegistryError> {
    ResourceType::parse(name).ok_or_else(|| invalid("type", "type", format!("{name} is not supported")))
}

/// A search as `caller` (permission, campus, audit): (id, resource) of each match.
pub(crate) async fn search(
    fhir: &FhirService,
    caller: &Caller,
    t: &str,
    params: &[(&str, String)],
) -> Result<Vec<(String, Value)>, RegistryError> {
    let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let req = parse_search(rtype(t)?, &params).map_err(|i| invalid("search", "search", i.diagnostics))?;
    let page = fhir.search(&fhir.permit(caller, req.resource_type).await?, &req).await?;
    Ok(page.resources.iter().filter_map(|r| Some((r.id.clone(), serde_json::from_str(&r.body).ok()?))).collect())
}

/// A stored resource's JSON, to change and write back (`meta` dropped: the store
/// sets it on the new version).
pub(crate) fn editable(r: &StoredResource) -> Result<Value, serde_json::Error> {
    let mut v: Value = serde_json::from_str(&r.body)?;
    if let Some(o) = v.as_object_mut() {
        o.remove("meta");
    }
    Ok(v)
}

/// A transaction entry writing `v` over `r`, only if `r` is still the current version.
pub(crate) fn put(v: Value, r: &StoredResource) -> Value {
    json!({"resource": v, "request": {"method": "PUT", "url": format!("{}/{}", r.resource_type, r.id),
                                      "ifMatch": format!("W/\"{}\"", r.version)}})
}

/// `YYYY-MM-DD HH:MM` of a FHIR dateTime (a date alone as it is): local times as the
/// platform writes them sort as text.
pub(crate) fn minute(v: &Value) -> String {
    let s = v.as_str().unwrap_or_default();
    match (s.get(..10), s.get(11..16)) {
        (Some(d), Some(t)) => format!("{d} {t}"),
        _ => s.to_string(),
    }
}
