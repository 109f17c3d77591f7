//! Parsing of `Reference.reference` strings into a (type, id) pair.

/// A literal reference to a resource on this or another FHIR server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedRef<'a> {
    pub resource_type: &'a str,
    pub id: &'a str,
}

fn is_type_name(s: &str) -> bool {
    s.len() > 1 && s.as_bytes()[0].is_ascii_uppercase() && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn is_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Parses `Type/id`, `Type/id/_history/v` and absolute `http(s)://base/Type/id[...]`.
/// Returns `None` for fragments (`#x`), `urn:` references and conditional
/// references (`Type?identifier=...`), which name no stored id.
pub fn parse_reference(reference: &str) -> Option<ParsedRef<'_>> {
    if reference.starts_with('#') || reference.starts_with("urn:") || reference.contains('?') {
        return None;
    }
    let mut parts: Vec<&str> = reference.split('/').collect();
    if parts.len() >= 4 && parts[parts.len() - 2] == "_history" {
        parts.truncate(parts.len() - 2);
    }
    if parts.len() < 2 {
        return None;
    }
    let (t, id) = (parts[parts.len() - 2], parts[parts.len() - 1]);
    if is_type_name(t) && is_id(id) {
        if parts.len() > 2 && !(reference.starts_with("http://") || reference.starts_with("https://")) {
            return None;
        }
        Some(ParsedRef { resource_type: t, id })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_relative_versioned_and_absolute_references() {
        let r = parse_reference("Patient/123").unwrap();
        assert_eq!((r.resource_type, r.id), ("Patient", "123"));
        let r = parse_reference("Observation/a-1/_history/3").unwrap();
        assert_eq!((r.resource_type, r.id), ("Observation", "a-1"));
        let r = parse_reference("https://fhir.example.org/r4/Patient/p1").unwrap();
        assert_eq!((r.resource_type, r.id), ("Patient", "p1"));
    }

    #[test]
    fn rejects_references_that_name_no_stored_id() {
        for r in [
            "#contained",
            "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0",
            "Practitioner?identifier=x|1",
            "Patient",
            "patient/1",
            "a/b/Patient/1",
        ] {
            assert!(parse_reference(r).is_none(), "{r}");
        }
    }
}
