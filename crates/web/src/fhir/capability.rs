//! The CapabilityStatement: generated from the same tables the server runs on, so it
//! lists exactly what is supported and nothing more.

use lianyi_fhir::search_params::search_params_for;
use lianyi_fhir::types::SUPPORTED_TYPES;
use serde_json::{Value, json};

pub const SOFTWARE_VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn capability_statement(base: &str, date: &str) -> Value {
    let resources: Vec<Value> = SUPPORTED_TYPES
        .iter()
        .map(|t| {
            if *t == "AuditEvent" {
                return audit_event_capability();
            }
            let includes: Vec<String> = search_params_for(t)
                .into_iter()
                .filter(|p| p.kind == lianyi_fhir::ParamKind::Reference && p.base != "Resource")
                .map(|p| format!("{t}:{}", p.code))
                .collect();
            let revincludes: Vec<String> = SUPPORTED_TYPES
                .iter()
                .flat_map(|src| {
                    search_params_for(src)
                        .into_iter()
                        .filter(|p| p.kind == lianyi_fhir::ParamKind::Reference && p.targets.iter().any(|x| x == t))
                        .map(move |p| format!("{src}:{}", p.code))
                })
                .collect();
            let params: Vec<Value> = search_params_for(t)
                .into_iter()
                .map(|p| {
                    let mut v = json!({"name": p.code, "type": p.kind.as_str()});
                    if !p.description.is_empty() {
                        v["documentation"] = json!(p.description);
                    }
                    v
                })
                .collect();
            let mut r = json!({
                "type": t,
                "interaction": [
                    {"code": "read"}, {"code": "vread"}, {"code": "update"}, {"code": "patch"}, {"code": "delete"},
                    {"code": "history-instance"}, {"code": "history-type"}, {"code": "create"}, {"code": "search-type"}
                ],
                "versioning": "versioned",
                "readHistory": true,
                "updateCreate": true,
                "conditionalCreate": true,
                "conditionalRead": "not-supported",
                "conditionalUpdate": true,
                "conditionalDelete": "not-supported",
                "searchParam": params,
            });
            if !includes.is_empty() {
                r["searchInclude"] = json!(includes);
            }
            if *t == "Patient" {
                r["operation"] = json!([
                    {"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"},
                    {"name": "match", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-match"},
                    {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"},
                ]);
            }
            if *t == "Group" {
                r["operation"] = json!([{"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"}]);
            }
            if !revincludes.is_empty() {
                r["searchRevInclude"] = json!(revincludes);
            }
            r
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "Lianyi",
        "kind": "instance",
        "software": {"name": "Lianyi", "version": SOFTWARE_VERSION},
        "implementation": {"description": "Lianyi hospital information platform FHIR R4 server", "url": format!("{base}/fhir")},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{
            "mode": "server",
            // Where websocket Subscriptions bind (R4 capabilitystatement-websocket).
            "extension": [{
                "url": "http://hl7.org/fhir/StructureDefinition/capabilitystatement-websocket",
                "valueUri": format!("{}{}", base.replacen("http", "ws", 1), super::websocket::PATH),
            }],
            "security": {
                "cors": false,
                "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "OAuth"}]}],
                "description": "Bearer tokens from POST /oauth/token (OAuth2 client credentials) with SMART v2 scopes such as system/Patient.rs; every client is limited to its campuses. Without a token: 401; outside the token's scopes, campuses or patient compartment: 403.",
            },
            "documentation": "Search: parameters of type token, string, reference, date, number, quantity, uri and composite (token$value, both parts on the same element) with the prefixes eq, ne, lt, gt, le, ge (number and quantity with implicit precision); modifiers :above and :below (uri), :missing (all), :exact and :contains (string), :not and :text (token), :[type] and :identifier (reference); chained parameters (several levels) and _has (nestable); _id, _lastUpdated, _count, _sort (several keys, - for descending), _include and _revinclude (with :iterate), _total=none, _summary=count|data|false (true and text are refused: this server is built from the R4 JSON Schema, which does not carry the isSummary flags), _elements. Unknown parameters are rejected (400). Transactions and batches at the base URL.",
            "resource": resources,
            "interaction": [{"code": "transaction"}, {"code": "batch"}, {"code": "history-system"}],
            "operation": [
                {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"},
                {"name": "import", "definition": "urn:lianyi:operation:import", "documentation": "POST NDJSON (application/fhir+ndjson), one resource with its id per line; created or updated under the caller's grants; answers an OperationOutcome with counts and rejected lines"},
            ],
        }],
    })
}

/// AuditEvent is served from the audit log: read and search only.
fn audit_event_capability() -> Value {
    json!({
        "type": "AuditEvent",
        "documentation": "The tamper-evident audit log, read-only. Needs the privacy officer's role or a scope naming AuditEvent.",
        "interaction": [{"code": "read"}, {"code": "vread"}, {"code": "search-type"}],
        "versioning": "no-version",
        "readHistory": false,
        "updateCreate": false,
        "searchParam": [
            {"name": "date", "type": "date", "documentation": "When the event was recorded (prefixes eq, ge, gt, le, lt)"},
            {"name": "patient", "type": "reference", "documentation": "The patient whose data was accessed"},
            {"name": "subtype", "type": "token", "documentation": "The action: read, search, create, update, delete, login, break-glass, ..."},
            {"name": "altid", "type": "token", "documentation": "The actor, e.g. user:dr.li or client:lab"},
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_statement_is_valid_r4() {
        let cs = capability_statement("http://localhost:8080", "2026-01-01T00:00:00Z");
        lianyi_fhir::validate_resource(&cs).unwrap();
        let types: Vec<&str> =
            cs["rest"][0]["resource"].as_array().unwrap().iter().map(|r| r["type"].as_str().unwrap()).collect();
        assert_eq!(types, SUPPORTED_TYPES);
        let kinds: std::collections::HashSet<&str> = cs["rest"][0]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["searchParam"].as_array().unwrap().iter().map(|p| p["type"].as_str().unwrap()))
            .collect();
        assert_eq!(
            kinds,
            ["token", "string", "reference", "date", "number", "quantity", "uri", "composite"].into_iter().collect()
        );
        let audit = cs["rest"][0]["resource"].as_array().unwrap().iter().find(|r| r["type"] == "AuditEvent").unwrap();
        let interactions: Vec<&str> =
            audit["interaction"].as_array().unwrap().iter().map(|i| i["code"].as_str().unwrap()).collect();
        assert_eq!(interactions, vec!["read", "vread", "search-type"]);
    }
}
