//! The audit log read as FHIR `AuditEvent` (read-only): the records are written by
//! the server itself, so clients can read and search them but never create, change
//! or delete one.

use lianyi_fhir::datetime::format_instant;
use lianyi_store::audit::AuditRecord;
use serde_json::{Value, json};

const SECURITY_ACTIONS: &[&str] = &[
    "login",
    "login-password",
    "lockout",
    "logout",
    "mfa",
    "mfa-enrol",
    "mfa-replay",
    "mfa-reset",
    "password-change",
    "password-set",
    "session-expired",
    "token",
    "authenticate",
];

/// The R4 AuditEvent for one audit record; its id is the record's number.
pub fn to_audit_event(r: &AuditRecord) -> Value {
    let e = &r.entry;
    let (type_system, type_code, type_display) = if SECURITY_ACTIONS.contains(&e.action.as_str()) {
        ("http://dicom.nema.org/resources/ontology/DCM", "110114", "User Authentication")
    } else if e.action == "break-glass" || e.outcome == "denied" {
        ("http://dicom.nema.org/resources/ontology/DCM", "110113", "Security Alert")
    } else {
        ("http://terminology.hl7.org/CodeSystem/audit-event-type", "rest", "RESTful Operation")
    };
    let action = match e.action.as_str() {
        "create" | "import" => "C",
        "read" | "vread" | "history" => "R",
        "update" => "U",
        "delete" => "D",
        _ => "E",
    };
    let outcome = match e.outcome.as_str() {
        "success" => "0",
        "error" => "8",
        _ => "4",
    };
    let mut agent = json!({
        "who": {"display": e.actor},
        "altId": e.actor,
        "requestor": true,
        "type": {"text": e.actor_kind},
    });
    if let Some(role) = &e.role {
        agent["role"] = json!([{"text": role}]);
    }
    if let Some(addr) = &e.client_addr {
        agent["network"] = json!({"address": addr, "type": "2"});
    }
    let mut entities = Vec::new();
    if let (Some(t), Some(id)) = (&e.resource_type, &e.resource_id) {
        entities.push(json!({"what": {"reference": format!("{t}/{id}")}}));
    }
    if let Some(p) = &e.patient {
        entities.push(json!({
            "what": {"reference": format!("Patient/{p}")},
            "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"},
        }));
    }
    let mut ev = json!({
        "resourceType": "AuditEvent",
        "id": r.seq.to_string(),
        "meta": {"versionId": "1", "lastUpdated": format_instant(e.recorded_at)},
        "type": {"system": type_system, "code": type_code, "display": type_display},
        "subtype": [{"system": "urn:lianyi:audit-action", "code": e.action}],
        "action": action,
        "recorded": format_instant(e.recorded_at),
        "outcome": outcome,
        "outcomeDesc": e.outcome,
        "agent": [agent],
        "source": {"observer": {"display": "Lianyi"}},
    });
    if let Some(c) = &e.campus {
        ev["source"]["site"] = json!(c);
    }
    if !entities.is_empty() {
        ev["entity"] = Value::Array(entities);
    }
    if let Some(d) = &e.detail {
        ev["extension"] = json!([{"url": "urn:lianyi:audit-detail", "valueString": d}]);
    }
    ev
}

#[cfg(test)]
mod tests {
    use super::*;
    use lianyi_store::audit::AuditEntry;

    #[test]
    fn audit_events_are_valid_r4() {
        for (action, outcome, patient) in
            [("read", "success", Some("p1")), ("login", "failure", None), ("break-glass", "success", Some("p2"))]
        {
            let r = AuditRecord {
                seq: 7,
                entry: AuditEntry {
                    recorded_at: 1_800_000_000_000,
                    actor: "user:dr.li".into(),
                    actor_kind: "user".into(),
                    role: Some("doctor".into()),
                    campus: Some("campus-east".into()),
                    action: action.into(),
                    resource_type: Some("Observation".into()),
                    resource_id: Some("o1".into()),
                    patient: patient.map(str::to_string),
                    outcome: outcome.into(),
                    client_addr: Some("10.1.2.3".into()),
                    detail: Some("reason".into()),
                },
                alg: "sm3".into(),
                prev_hash: "0".into(),
                hash: "1".into(),
            };
            let ev = to_audit_event(&r);
            lianyi_fhir::validate_resource(&ev).unwrap_or_else(|e| panic!("{action}: {:?}", e.0));
        }
    }
}
