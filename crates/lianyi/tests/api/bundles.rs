//! batch and transaction Bundles.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, outcome, spawn_app};

async fn post_bundle(app: &TestApp, b: &Value) -> reqwest::Response {
    app.post("/fhir", b).await
}

fn patient_entry(n: usize) -> Value {
    json!({"fullUrl": format!("urn:uuid:00000000-0000-0000-0000-{n:012}"),
           "resource": {"resourceType": "Patient", "name": [{"family": format!("Tx{n}")}]},
           "request": {"method": "POST", "url": "Patient"}})
}

#[tokio::test]
async fn a_transaction_with_one_invalid_entry_stores_nothing() {
    let app = spawn_app().await;
    let mut entries: Vec<Value> = (0..100).map(patient_entry).collect();
    entries[57]["resource"]["birthDate"] = json!("not-a-date");
    let r = post_bundle(&app, &json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let (_, expr, diag) = outcome(r).await;
    assert!(expr.starts_with("Bundle.entry[57]"), "{expr}: {diag}");
    assert!(expr.contains("birthDate"), "{expr}");
    assert_eq!(app.total("/fhir/Patient?_count=0").await, 0, "nothing stored");

    // A permission failure in one entry stops the whole transaction too.
    let reader = app.client_with("system/Patient.crs", "*", None).await;
    let entries = vec![
        patient_entry(1),
        json!({"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}, "request": {"method": "POST", "url": "Observation"}}),
    ];
    let r = reader
        .post(app.url("/fhir"))
        .header("content-type", "application/fhir+json")
        .body(json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.total("/fhir/Patient?_count=0").await, 0);
}

#[tokio::test]
async fn a_transaction_rewrites_uuid_references_and_commits_together() {
    let app = spawn_app().await;
    let existing = app
        .create(&json!({"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "M-1"}], "name": [{"family": "Known"}]}))
        .await;
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a",
         "resource": {"resourceType": "Patient", "name": [{"family": "New"}]},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "BP"},
                      "subject": {"reference": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"}},
         "request": {"method": "POST", "url": "Observation"}},
        {"resource": {"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "M-1"}]},
         "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=urn:mrn|M-1"}},
        {"request": {"method": "GET", "url": "Patient?family=new"}},
    ]});
    let r = post_bundle(&app, &bundle).await;
    assert_eq!(r.status(), StatusCode::OK);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["type"], "transaction-response");
    let e = b["entry"].as_array().unwrap();
    assert_eq!(e[0]["response"]["status"], "201 Created");
    let new_id = e[0]["response"]["location"].as_str().unwrap().split('/').nth(1).unwrap().to_string();
    assert_eq!(e[1]["resource"]["subject"]["reference"], format!("Patient/{new_id}"), "urn:uuid rewritten");
    assert_eq!(e[2]["response"]["status"], "200 OK", "ifNoneExist found the existing patient");
    assert_eq!(e[2]["response"]["location"], format!("Patient/{existing}"));
    assert_eq!(e[3]["resource"]["total"], 1, "GET runs after the writes");
    assert_eq!(app.total("/fhir/Patient?_count=0").await, 2);
    assert_eq!(app.search_ids(&format!("/fhir/Observation?subject=Patient/{new_id}")).await.len(), 1);
}

#[tokio::test]
async fn a_batch_reports_each_entry() {
    let app = spawn_app().await;
    let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        patient_entry(1),
        {"request": {"method": "GET", "url": "Patient/does-not-exist"}},
        {"resource": {"resourceType": "Patient", "id": "batch-1", "active": true}, "request": {"method": "PUT", "url": "Patient/batch-1"}},
        {"request": {"method": "DELETE", "url": "Patient/batch-1"}},
    ]});
    let b: Value = post_bundle(&app, &bundle).await.json().await.unwrap();
    assert_eq!(b["type"], "batch-response");
    let statuses: Vec<&str> =
        b["entry"].as_array().unwrap().iter().map(|e| e["response"]["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["201 Created", "404 Not Found", "201 Created", "200 OK"]);
    assert_eq!(b["entry"][1]["response"]["outcome"]["resourceType"], "OperationOutcome");
    let r = post_bundle(&app, &json!({"resourceType": "Bundle", "type": "collection"})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(outcome(r).await.1, "Bundle.type");
}

#[tokio::test]
async fn conditional_create_and_update_over_rest() {
    let app = spawn_app().await;
    let body = json!({"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "C-7"}]});
    let post = |b: Value| {
        app.client
            .post(app.url("/fhir/Patient"))
            .header("content-type", "application/fhir+json")
            .header("if-none-exist", "identifier=urn:mrn|C-7")
            .body(b.to_string())
            .send()
    };
    let first = post(body.clone()).await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let id = first.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let second = post(body.clone()).await.unwrap();
    assert_eq!(second.status(), StatusCode::OK, "the existing match is returned, nothing created");
    assert_eq!(second.json::<Value>().await.unwrap()["id"], id.as_str());
    assert_eq!(app.total("/fhir/Patient?_count=0").await, 1);

    let put = |b: Value| {
        app.client
            .put(app.url("/fhir/Patient?identifier=urn:mrn%7CC-7"))
            .header("content-type", "application/fhir+json")
            .body(b.to_string())
            .send()
    };
    let mut changed = body.clone();
    changed["active"] = json!(false);
    let r = put(changed).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["id"].as_str().unwrap(), v["meta"]["versionId"].as_str().unwrap()), (id.as_str(), "2"));
    // Two matches: refused.
    app.create(&json!({"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "C-7"}]})).await;
    assert_eq!(put(body).await.unwrap().status(), StatusCode::PRECONDITION_FAILED);
}

#[tokio::test]
async fn import_endpoint_takes_ndjson() {
    let app = spawn_app().await;
    let ndjson = "{\"resourceType\":\"Patient\",\"id\":\"nd-1\",\"name\":[{\"family\":\"Nd\"}]}\n\
                  {\"resourceType\":\"Patient\",\"id\":\"nd-2\",\"birthDate\":\"not-a-date\"}\n\
                  {\"resourceType\":\"Encounter\",\"id\":\"nd-e\",\"status\":\"finished\",\"class\":{\"code\":\"AMB\"},\"subject\":{\"reference\":\"Patient/nd-1\"}}\n";
    let post = |client: &reqwest::Client| {
        client.post(app.url("/fhir/$import")).header("content-type", "application/fhir+ndjson").body(ndjson).send()
    };
    let r = post(&app.client).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let oo: Value = r.json().await.unwrap();
    assert!(
        oo["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("stored 2 resources (Encounter 1, Patient 1); rejected 1"),
        "{oo}"
    );
    assert_eq!(oo["issue"][1]["expression"][0], "line 2");
    assert_eq!(app.search_ids("/fhir/Encounter?patient=Patient/nd-1").await, vec!["nd-e".to_string()]);
    let reader = app.client_with("system/*.rs", "*", None).await;
    let oo: Value = post(&reader).await.unwrap().json().await.unwrap();
    assert!(oo["issue"][0]["diagnostics"].as_str().unwrap().contains("stored 0"), "{oo}");
}

#[tokio::test]
async fn prefer_minimal_leaves_resources_out_of_the_response() {
    let app = spawn_app().await;
    let bundle =
        json!({"resourceType": "Bundle", "type": "transaction", "entry": [patient_entry(1), patient_entry(2)]});
    let r = app
        .client
        .post(app.url("/fhir"))
        .header("content-type", "application/fhir+json")
        .header("prefer", "return=minimal")
        .body(bundle.to_string())
        .send()
        .await
        .unwrap();
    let b: Value = r.json().await.unwrap();
    let e = b["entry"].as_array().unwrap();
    assert_eq!(e.len(), 2);
    assert!(e.iter().all(|x| x.get("resource").is_none() && x["response"]["status"] == "201 Created"));
    assert_eq!(app.total("/fhir/Patient?_count=0").await, 2);
}
