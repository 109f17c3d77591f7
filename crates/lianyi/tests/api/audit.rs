//! Every access is audited before its result leaves the server; the chain verifies,
//! and tampering is found by `lianyi audit verify`.

use std::process::Command;

use lianyi_store::Store;
use lianyi_store::audit::{AuditQuery, AuditRecord};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

const BIN: &str = env!("CARGO_BIN_EXE_lianyi");

async fn records(url: &str) -> Vec<AuditRecord> {
    let store = Store::connect(url).await.unwrap();
    let mut r = store.audit_records(&AuditQuery { limit: 1000, ..Default::default() }).await.unwrap();
    store.close().await;
    r.reverse();
    r
}

fn summary(r: &AuditRecord) -> (String, String, Option<String>, String) {
    (
        r.entry.action.clone(),
        r.entry.resource_type.clone().unwrap_or_default(),
        r.entry.patient.clone(),
        r.entry.outcome.clone(),
    )
}

#[tokio::test]
async fn every_access_leaves_an_audit_record() {
    let app = spawn_app().await;
    let pid = app.create(&json!({"resourceType": "Patient", "name": [{"family": "Audited"}]})).await;
    let oid = app
        .create(&json!({"resourceType": "Observation", "status": "final", "code": {"text": "BP"},
                        "subject": {"reference": format!("Patient/{pid}")}}))
        .await;
    assert_eq!(app.get(&format!("/fhir/Observation/{oid}")).await.status(), StatusCode::OK);
    assert_eq!(app.get(&format!("/fhir/Observation?patient={pid}")).await.status(), StatusCode::OK);
    assert_eq!(app.get("/fhir/Observation/nope").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.post("/fhir/Patient", &json!({"resourceType": "Patient", "gender": "x"})).await.status(),
        StatusCode::BAD_REQUEST
    );

    let log: Vec<AuditRecord> = records(&app.database_url)
        .await
        .into_iter()
        .filter(|r| !["client-add", "token"].contains(&r.entry.action.as_str()) && r.entry.actor_kind != "system")
        .collect();
    let got: Vec<_> = log.iter().map(summary).collect();
    assert_eq!(
        got,
        vec![
            ("create".into(), "Patient".into(), Some(pid.clone()), "success".into()),
            ("create".into(), "Observation".into(), Some(pid.clone()), "success".into()),
            ("read".into(), "Observation".into(), Some(pid.clone()), "success".into()),
            ("search".into(), "Observation".into(), Some(pid.clone()), "success".into()),
            ("read".into(), "Observation".into(), None, "not-found".into()),
            ("create".into(), "Patient".into(), None, "invalid".into()),
        ]
    );
    assert!(log.iter().all(|r| r.entry.client_addr.as_deref() == Some("127.0.0.1")));
    assert!(log.iter().all(|r| r.alg == "sm3"));
    assert!(log.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(log.iter().all(|r| r.entry.actor == "client:test-admin" && r.entry.actor_kind == "client"));
    // The critical-value watcher read the new Observation too: audited under its
    // purpose, as a platform task.
    let mut watcher = None;
    for _ in 0..100 {
        watcher = records(&app.database_url).await.into_iter().find(|r| r.entry.actor == "critical-values");
        if watcher.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let watcher = watcher.expect("the watcher's read is audited");
    assert_eq!((watcher.entry.actor_kind.as_str(), watcher.entry.action.as_str()), ("system", "read"));
    assert_eq!(watcher.entry.patient.as_deref(), Some(pid.as_str()));
    assert!(
        log.iter().all(|r| !r.entry.detail.as_deref().unwrap_or_default().contains("Audited")),
        "no names in audit details"
    );
}

#[tokio::test]
async fn audit_verify_names_the_tampered_record() {
    let app = spawn_app().await;
    for i in 0..4 {
        app.create(&json!({"resourceType": "Patient", "name": [{"family": format!("V{i}")}]})).await;
    }
    let verify = || Command::new(BIN).args(["audit", "verify", "--database", &app.database_url]).output().unwrap();
    let ok = verify();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stdout));
    // 4 creates, the admin client's registration and its token (and, when it has
    // been written by then, the platform registering itself in the CMDB at start).
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(text.contains("intact: 6 records") || text.contains("intact: 7 records"), "{text}");

    lianyi_store::testing::raw_execute(&app.database_url, "UPDATE audit_log SET outcome = 'successX' WHERE seq = 3")
        .await;
    let bad = verify();
    let out = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{out}");
    assert!(out.contains("record 3"), "{out}");

    lianyi_store::testing::raw_execute(
        &app.database_url,
        "UPDATE audit_log SET outcome = 'success' WHERE seq = 3; DELETE FROM audit_log WHERE seq = 2",
    )
    .await;
    let bad = verify();
    let out = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{out}");
    assert!(out.contains("record 2"), "{out}");
}

#[tokio::test]
async fn the_audit_log_reads_as_fhir_audit_events_and_cannot_be_written() {
    let app = spawn_app().await;
    let pid = app.create(&json!({"resourceType": "Patient", "name": [{"family": "Watched"}]})).await;
    assert_eq!(app.get(&format!("/fhir/Patient/{pid}")).await.status(), StatusCode::OK);

    // A wildcard scope does not reach the audit log.
    let r = app.get("/fhir/AuditEvent").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let auditor = app.client_with("system/AuditEvent.rs", "*", None).await;
    let b: serde_json::Value = auditor
        .get(app.url(&format!("/fhir/AuditEvent?patient=Patient/{pid}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(b["type"], "searchset");
    let entries = b["entry"].as_array().unwrap();
    let subtypes: Vec<&str> = entries.iter().map(|e| e["resource"]["subtype"][0]["code"].as_str().unwrap()).collect();
    assert_eq!(subtypes, vec!["read", "create"], "newest first");
    assert_eq!(b["total"], 2);
    for e in entries {
        lianyi_fhir::validate_resource(&e["resource"]).unwrap();
        assert!(
            e["resource"]["entity"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["what"]["reference"] == format!("Patient/{pid}"))
        );
    }
    let id = entries[0]["resource"]["id"].as_str().unwrap();
    let one: serde_json::Value =
        auditor.get(app.url(&format!("/fhir/AuditEvent/{id}"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(one["action"], "R");
    assert_eq!(one["agent"][0]["altId"], "client:test-admin");
    let by_action: serde_json::Value = auditor
        .get(app.url("/fhir/AuditEvent?subtype=create&date=ge2000-01-01"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_action["total"], 1);

    // Written only by the server.
    let r = auditor
        .post(app.url("/fhir/AuditEvent"))
        .header("content-type", "application/fhir+json")
        .body(one.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        app.client.delete(app.url(&format!("/fhir/AuditEvent/{id}"))).send().await.unwrap().status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        auditor.get(app.url("/fhir/AuditEvent?agent=x")).send().await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
}
