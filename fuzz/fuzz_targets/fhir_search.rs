//! The query string of `GET /fhir/{type}?…` (or a `_search` form body): decoding it as
//! the API does and parsing the search must never panic for any resource type, and
//! the parameters a request reports as applied (which become its Bundle's self and
//! paging links) must parse again to the same search.
#![no_main]

use lianyi_fhir::ResourceType;
use lianyi_fhir::search::parse_search;
use libfuzzer_sys::fuzz_target;

const TYPES: &[&str] = &["Patient", "Observation", "Encounter", "DiagnosticReport", "MedicationRequest"];

fuzz_target!(|data: &[u8]| {
    let params: Vec<(String, String)> = form_urlencoded::parse(data).into_owned().collect();
    for name in TYPES {
        let Some(rtype) = ResourceType::parse(name) else { continue };
        let Ok(req) = parse_search(rtype, &params) else { continue };
        let again = parse_search(rtype, &req.applied).expect("the applied parameters parse again");
        assert_eq!(again.criteria, req.criteria);
        assert_eq!(again.sort, req.sort);
        assert_eq!(again.includes, req.includes);
        assert_eq!(again.revincludes, req.revincludes);
        assert_eq!(again.total, req.total);
        assert_eq!(again.elements, req.elements);
        assert_eq!(again.applied, req.applied);
    }
});
