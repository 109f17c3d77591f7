//! A FHIR JSON body as a client POSTs or PUTs it: parsing, validating, turning the
//! issues into an OperationOutcome and extracting the search index must never panic,
//! whatever the JSON holds (index extraction runs even on invalid resources, so a
//! check the validator misses cannot become a crash in the indexer).
#![no_main]

use lianyi_fhir::{extract_index, validate_resource};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(resource) = serde_json::from_slice::<Value>(data) else { return };
    if let Err(errors) = validate_resource(&resource) {
        let _ = errors.summary();
        let _ = errors.into_outcome().to_json().to_string();
    }
    if let Some(rtype) = resource.get("resourceType").and_then(Value::as_str) {
        let rows = extract_index(rtype, &resource);
        let _ = rows.len();
    }
});
