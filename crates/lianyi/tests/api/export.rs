//! Bulk Data `$export`: kick-off, status, files; re-import gives identical resources;
//! a campus-bound client exports only its campus.

use std::collections::BTreeMap;
use std::time::Duration;

use lianyi_security::Caller;
use reqwest::{Client, StatusCode};
use serde_json::Value;
use sha2::Digest;

use crate::helpers::{TestApp, spawn_app};

/// Canonical JSON (sorted keys) without the server's version stamps.
fn canonical(v: &Value) -> String {
    fn walk(v: &Value) -> Value {
        match v {
            Value::Object(o) => {
                let sorted: BTreeMap<String, Value> = o.iter().map(|(k, x)| (k.clone(), walk(x))).collect();
                Value::Object(sorted.into_iter().collect())
            }
            Value::Array(a) => Value::Array(a.iter().map(walk).collect()),
            x => x.clone(),
        }
    }
    let mut v = v.clone();
    if let Some(meta) = v.get_mut("meta").and_then(Value::as_object_mut) {
        meta.remove("versionId");
        meta.remove("lastUpdated");
        if meta.is_empty() {
            v.as_object_mut().unwrap().remove("meta");
        }
    }
    walk(&v).to_string()
}

fn hash(v: &Value) -> String {
    hex::encode(sha2::Sha256::digest(canonical(v).as_bytes()))
}

/// Runs an export to the end and returns every exported resource by "Type/id".
async fn export(app: &TestApp, client: &Client, path: &str) -> BTreeMap<String, Value> {
    let r = client.get(app.url(path)).header("prefer", "respond-async").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED, "{}", r.text().await.unwrap());
    let status_url = r.headers()["content-location"].to_str().unwrap().to_string();
    let manifest: Value = loop {
        let r = client.get(&status_url).send().await.unwrap();
        match r.status() {
            StatusCode::ACCEPTED => tokio::time::sleep(Duration::from_millis(50)).await,
            StatusCode::OK => break r.json().await.unwrap(),
            other => panic!("status {other}: {}", r.text().await.unwrap()),
        }
    };
    assert_eq!(manifest["requiresAccessToken"], true);
    let mut out = BTreeMap::new();
    for f in manifest["output"].as_array().unwrap() {
        let r = client.get(f["url"].as_str().unwrap()).send().await.unwrap();
        assert_eq!(r.headers()["content-type"], "application/fhir+ndjson");
        let text = r.text().await.unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len() as u64, f["count"].as_u64().unwrap());
        for l in lines {
            let v: Value = serde_json::from_str(l).unwrap();
            out.insert(format!("{}/{}", v["resourceType"].as_str().unwrap(), v["id"].as_str().unwrap()), v);
        }
    }
    out
}

/// The Synthea fixture when present, else the demo data set.
fn source_resources() -> Vec<Value> {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/synthea-10-patients");
    if let Ok(entries) = std::fs::read_dir(&fixture) {
        let mut all = Vec::new();
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "ndjson") && !p.ends_with("log.ndjson") {
                for l in std::fs::read_to_string(&p).unwrap().lines() {
                    all.push(serde_json::from_str(l).unwrap());
                }
            }
        }
        eprintln!("exporting the Synthea fixture ({} resources)", all.len());
        return all;
    }
    lianyi_services::demo::generate().into_iter().map(|r| r.resource).collect()
}

#[tokio::test]
async fn export_then_reimport_gives_identical_resources() {
    let app = spawn_app().await;
    let source = source_resources();
    let n = source.len();
    for chunk in source.chunks(2000) {
        let report = app
            .fhir
            .load_batch(
                &Caller::task(lianyi_security::SystemTask::Operator("test".into())),
                chunk.iter().map(|v| (v.clone(), None)).collect(),
            )
            .await
            .unwrap();
        assert!(report.rejected.is_empty(), "{:?}", report.rejected.first());
    }
    let exported = export(&app, &app.client, "/fhir/$export").await;
    assert_eq!(exported.len(), n, "every resource exported once");

    let fresh = spawn_app().await;
    let values: Vec<(Value, Option<String>)> = exported.values().map(|v| (v.clone(), None)).collect();
    for chunk in values.chunks(2000) {
        let report = fresh
            .fhir
            .load_batch(&Caller::task(lianyi_security::SystemTask::Operator("test".into())), chunk.to_vec())
            .await
            .unwrap();
        assert!(report.rejected.is_empty());
    }
    let again = export(&fresh, &fresh.client, "/fhir/$export").await;
    assert_eq!(again.len(), n);
    let by_hash = |m: &BTreeMap<String, Value>| m.iter().map(|(k, v)| (k.clone(), hash(v))).collect::<BTreeMap<_, _>>();
    assert_eq!(by_hash(&exported), by_hash(&again), "identical content after export and re-import");
    // And identical to what was loaded in the first place.
    let original: BTreeMap<String, String> = source
        .iter()
        .map(|v| (format!("{}/{}", v["resourceType"].as_str().unwrap(), v["id"].as_str().unwrap()), hash(v)))
        .collect();
    assert_eq!(original, by_hash(&again));

    // _type limits the export.
    let only = export(&app, &app.client, "/fhir/$export?_type=Patient").await;
    assert!(!only.is_empty() && only.keys().all(|k| k.starts_with("Patient/")));
}

#[tokio::test]
async fn export_respects_campus_and_ownership() {
    let app = spawn_app().await;
    let west = app.client_with("system/*.cruds", "campus-west", None).await;
    let east = app.client_with("system/*.rs", "campus-east", None).await;
    let r = west
        .post(app.url("/fhir/Patient"))
        .header("content-type", "application/fhir+json")
        .body(r#"{"resourceType":"Patient","name":[{"family":"WestOnly"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let east_id = app.create(&serde_json::json!({"resourceType": "Patient", "name": [{"family": "EastOne"}]})).await;
    let got = export(&app, &east, "/fhir/Patient/$export").await;
    assert_eq!(got.keys().cloned().collect::<Vec<_>>(), vec![format!("Patient/{east_id}")]);

    // Kick-off needs Prefer: respond-async; another client cannot poll someone's job.
    assert_eq!(east.get(app.url("/fhir/$export")).send().await.unwrap().status(), StatusCode::BAD_REQUEST);
    let r = east.get(app.url("/fhir/$export")).header("prefer", "respond-async").send().await.unwrap();
    let status_url = r.headers()["content-location"].to_str().unwrap().to_string();
    assert_eq!(west.get(&status_url).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(east.delete(&status_url).send().await.unwrap().status(), StatusCode::ACCEPTED);
    assert_eq!(east.get(&status_url).send().await.unwrap().status(), StatusCode::NOT_FOUND);
}
