//! CRUD, versions, history, errors, health and metrics.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{outcome, spawn_app, spawn_app_with};

fn patient(family: &str) -> Value {
    json!({"resourceType": "Patient", "name": [{"family": family, "given": ["Test"]}], "gender": "female", "birthDate": "1990-01-01"})
}

#[tokio::test]
async fn metadata_lists_exactly_the_supported_types() {
    let app = spawn_app().await;
    let r = app.get("/fhir/metadata").await;
    assert_eq!(r.status(), StatusCode::OK);
    let cs: Value = r.json().await.unwrap();
    assert_eq!(cs["resourceType"], "CapabilityStatement");
    assert_eq!(cs["fhirVersion"], "4.0.1");
    let types: Vec<&str> =
        cs["rest"][0]["resource"].as_array().unwrap().iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(types, lianyi_fhir::SUPPORTED_TYPES);
    let patient = cs["rest"][0]["resource"].as_array().unwrap().iter().find(|r| r["type"] == "Patient").unwrap();
    let names: Vec<&str> =
        patient["searchParam"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    for expected in ["_id", "_lastUpdated", "name", "family", "identifier", "birthdate", "gender", "organization"] {
        assert!(names.contains(&expected), "{expected} missing");
    }
    assert!(names.contains(&"_profile"));
    let obs = cs["rest"][0]["resource"].as_array().unwrap().iter().find(|r| r["type"] == "Observation").unwrap();
    let obs_names: Vec<&str> =
        obs["searchParam"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert!(obs_names.contains(&"value-quantity"));
    let composite = obs["searchParam"].as_array().unwrap().iter().find(|p| p["name"] == "code-value-quantity").unwrap();
    assert_eq!(composite["type"], "composite");
    // Composites of shapes the server does not index are not advertised.
    let doc = cs["rest"][0]["resource"].as_array().unwrap().iter().find(|r| r["type"] == "DocumentReference").unwrap();
    assert!(!doc["searchParam"].as_array().unwrap().iter().any(|p| p["name"] == "relationship"));
}

#[tokio::test]
async fn create_read_vread_update_delete() {
    let app = spawn_app().await;
    let r = app
        .post("/fhir/Patient", &json!({"resourceType": "Patient", "id": "client-chosen", "name": [{"family": "Qian"}]}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["etag"], "W/\"1\"");
    assert!(r.headers().contains_key("last-modified"));
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    assert_ne!(id, "client-chosen", "create assigns the id");
    assert_eq!(location, app.url(&format!("/fhir/Patient/{id}/_history/1")));
    assert_eq!(created["meta"]["versionId"], "1");
    assert!(created["meta"]["lastUpdated"].as_str().unwrap().ends_with('Z'));

    let r = app.get(&format!("/fhir/Patient/{id}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/fhir+json; charset=utf-8");
    assert_eq!(r.json::<Value>().await.unwrap(), created);

    // Update with a stale If-Match is refused and changes nothing.
    let mut changed = created.clone();
    changed["name"][0]["family"] = json!("Qian2");
    let r = app
        .client
        .put(app.url(&format!("/fhir/Patient/{id}")))
        .header("content-type", "application/fhir+json")
        .header("if-match", "W/\"9\"")
        .body(changed.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(outcome(r).await.0, "conflict");
    let r = app
        .client
        .put(app.url(&format!("/fhir/Patient/{id}")))
        .header("content-type", "application/fhir+json")
        .header("if-match", "W/\"1\"")
        .body(changed.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["etag"], "W/\"2\"");
    let v1: Value = app.get(&format!("/fhir/Patient/{id}/_history/1")).await.json().await.unwrap();
    assert_eq!(v1["name"][0]["family"], "Qian");
    let v2: Value = app.get(&format!("/fhir/Patient/{id}/_history/2")).await.json().await.unwrap();
    assert_eq!(v2["name"][0]["family"], "Qian2");
    assert_eq!(app.get(&format!("/fhir/Patient/{id}/_history/3")).await.status(), StatusCode::NOT_FOUND);

    // Update-as-create with a client id.
    let r = app.put("/fhir/Patient/mine-1", &json!({"resourceType": "Patient", "id": "mine-1", "active": true})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["etag"], "W/\"1\"");
    // The id in the body must match the URL.
    let r = app.put("/fhir/Patient/mine-1", &json!({"resourceType": "Patient", "id": "other"})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(outcome(r).await.1, "Patient.id");

    // Delete, then read → 410; history shows all three versions newest first.
    let r = app.client.delete(app.url(&format!("/fhir/Patient/{id}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.get(&format!("/fhir/Patient/{id}")).await.status(), StatusCode::GONE);
    assert_eq!(app.get("/fhir/Patient/never-was").await.status(), StatusCode::NOT_FOUND);
    let h: Value = app.get(&format!("/fhir/Patient/{id}/_history")).await.json().await.unwrap();
    assert_eq!(h["type"], "history");
    assert_eq!(h["total"], 3);
    let methods: Vec<&str> =
        h["entry"].as_array().unwrap().iter().map(|e| e["request"]["method"].as_str().unwrap()).collect();
    assert_eq!(methods, vec!["DELETE", "PUT", "POST"]);
    assert!(h["entry"][0].get("resource").is_none());

    let th: Value = app.get("/fhir/Patient/_history?_count=2").await.json().await.unwrap();
    assert_eq!(th["total"], 4);
    assert_eq!(th["entry"].as_array().unwrap().len(), 2);
    assert!(th["link"].as_array().unwrap().iter().any(|l| l["relation"] == "next"));
    let sys: Value = app.get("/fhir/_history").await.json().await.unwrap();
    assert_eq!(sys["total"], 4);
}

#[tokio::test]
async fn invalid_input_is_rejected_with_the_path_and_nothing_is_stored() {
    let app = spawn_app_with(4096).await;
    app.create(&patient("Keep")).await;
    let before = app.total("/fhir/Patient?_count=0").await;

    let r = app.post("/fhir/Patient", &json!({"resourceType": "Patient", "birthDate": "not-a-date"})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let (code, expr, diag) = outcome(r).await;
    assert_eq!((code.as_str(), expr.as_str()), ("value", "Patient.birthDate"));
    assert!(diag.contains("date"), "{diag}");

    let r = app.post("/fhir/Patient", &json!({"resourceType": "Patient", "gender": "M"})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(outcome(r).await.1, "Patient.gender");

    let r = app.post("/fhir/Patient", &json!({"resourceType": "Patient", "nickname": "x"})).await;
    assert_eq!(outcome(r).await.1, "Patient.nickname");

    let r = app
        .post("/fhir/Patient", &json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}}))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(outcome(r).await.1, "resourceType");

    let r = app
        .client
        .post(app.url("/fhir/Patient"))
        .header("content-type", "application/fhir+json")
        .body("{\"resourceType\": \"Patient\",")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let (code, expr, diag) = outcome(r).await;
    assert_eq!(code, "structure");
    assert!(expr.starts_with("line 1"), "{expr}");
    assert!(diag.contains("malformed JSON"));

    let r = app.post("/fhir/Spaceship", &patient("x")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(outcome(r).await.2.contains("Spaceship"));
    let r = app.get("/fhir/StructureDefinition").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(outcome(r).await.2.contains("not supported"));

    let big = json!({"resourceType": "Patient", "name": [{"text": "x".repeat(5000)}]});
    let r = app.post("/fhir/Patient", &big).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(outcome(r).await.0, "too-long");

    let r = app
        .client
        .post(app.url("/fhir/Patient"))
        .header("content-type", "application/fhir+xml")
        .body("<Patient/>")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let r = app.get("/fhir/Patient?_format=xml").await;
    assert_eq!(r.status(), StatusCode::NOT_ACCEPTABLE);
    let r = app.client.get(app.url("/fhir/metadata")).header("accept", "application/fhir+xml").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_ACCEPTABLE);
    let r = app
        .client
        .get(app.url("/fhir/metadata"))
        .header("accept", "application/fhir+json, */*;q=0.1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .client
        .post(app.url("/fhir/Patient"))
        .header("content-type", "application/json")
        .body("[1]")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert!(v["issue"][0].get("expression").is_none(), "no empty expression: {v}");

    assert_eq!(app.total("/fhir/Patient?_count=0").await, before, "no error stored anything");
    let h: Value = app.get("/fhir/_history").await.json().await.unwrap();
    assert_eq!(h["total"], 1);
}

#[tokio::test]
async fn health_and_metrics() {
    let app = spawn_app().await;
    let r = app.get("/healthz").await;
    assert_eq!(r.status(), StatusCode::OK);
    let h: Value = r.json().await.unwrap();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["database"]["status"], "ok");
    assert_eq!(h["database"]["backend"], lianyi_store::testing::backend_under_test());

    app.create(&patient("Metric")).await;
    app.get("/fhir/Patient?family=Metric").await;
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("http_requests_total{")
            && l.contains("route=\"/fhir/{rtype}\"")
            && l.contains("status=\"201\"")),
        "{text}"
    );
    assert!(text.contains("http_request_duration_seconds_bucket{"));
    assert!(text.contains("db_pool_connections{"));
    assert!(!text.contains("Metric"), "no query values in metrics");
}

#[tokio::test]
async fn json_patch_makes_a_new_version() {
    let app = spawn_app().await;
    let id = app.create(&patient("Patchy")).await;
    let send = |body: &str, if_match: Option<&str>| {
        let mut r = app
            .client
            .patch(app.url(&format!("/fhir/Patient/{id}")))
            .header("content-type", "application/json-patch+json")
            .body(body.to_string());
        if let Some(m) = if_match {
            r = r.header("if-match", m);
        }
        r.send()
    };
    let r = send(
        r#"[{"op": "replace", "path": "/gender", "value": "male"}, {"op": "add", "path": "/active", "value": true}]"#,
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["gender"].as_str(), v["active"].as_bool(), v["meta"]["versionId"].as_str()),
        (Some("male"), Some(true), Some("2"))
    );
    // A patch that makes the resource invalid is refused and names the path.
    let r = send(r#"[{"op": "replace", "path": "/gender", "value": "robot"}]"#, None).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(outcome(r).await.1, "Patient.gender");
    let r = send(r#"[{"op": "remove", "path": "/telecom"}]"#, None).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(outcome(r).await.1, "Patch[0]");
    assert_eq!(
        send(r#"[{"op": "add", "path": "/active", "value": false}]"#, Some("W/\"1\"")).await.unwrap().status(),
        StatusCode::PRECONDITION_FAILED
    );
    let cur: Value = app.get(&format!("/fhir/Patient/{id}")).await.json().await.unwrap();
    assert_eq!(cur["meta"]["versionId"], "2", "failed patches store nothing");
}

#[tokio::test]
async fn everything_returns_the_compartment_within_reach() {
    let app = spawn_app().await;
    let pid = app.create(&patient("Every")).await;
    let other = app.create(&patient("Else")).await;
    let mut mine = vec![pid.clone()];
    for p in [&pid, &other] {
        let r = format!("Patient/{p}");
        let e = app.create(&json!({"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"}, "subject": {"reference": r}})).await;
        let o = app.create(&json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": r}})).await;
        if p == &pid {
            mine.extend([e, o]);
        }
    }
    let b: Value = app.get(&format!("/fhir/Patient/{pid}/$everything")).await.json().await.unwrap();
    let mut got: Vec<&str> =
        b["entry"].as_array().unwrap().iter().map(|e| e["resource"]["id"].as_str().unwrap()).collect();
    got.sort();
    let mut want: Vec<&str> = mine.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(b["total"], 3);
    let b: Value = app.get(&format!("/fhir/Patient/{pid}/$everything?_type=Observation")).await.json().await.unwrap();
    assert_eq!(b["total"], 1);
    // A client limited to Patient reads sees only the patient.
    let narrow = app.client_with("system/Patient.rs", "*", None).await;
    let b: Value =
        narrow.get(app.url(&format!("/fhir/Patient/{pid}/$everything"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(b["total"], 1);
    // Another campus: refused like a read.
    let west = app.client_with("system/*.rs", "campus-west", None).await;
    assert_eq!(
        west.get(app.url(&format!("/fhir/Patient/{pid}/$everything"))).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn concurrent_writes_commit_in_groups_without_mixing_outcomes() {
    let app = spawn_app().await;
    let id = app.create(&patient("Contended")).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let client = app.client.clone();
        let url = app.url("/fhir/Patient");
        tasks.push(tokio::spawn(async move {
            let body = json!({"resourceType": "Patient", "name": [{"family": format!("Many{i}")}]}).to_string();
            client.post(url).header("content-type", "application/fhir+json").body(body).send().await.unwrap().status()
        }));
    }
    // Ten updates that all expect version 1: exactly one may win.
    for i in 0..10 {
        let client = app.client.clone();
        let url = app.url(&format!("/fhir/Patient/{id}"));
        let body = json!({"resourceType": "Patient", "id": id, "name": [{"family": format!("Winner{i}")}]}).to_string();
        tasks.push(tokio::spawn(async move {
            client
                .put(url)
                .header("content-type", "application/fhir+json")
                .header("if-match", "W/\"1\"")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert!(statuses[..40].iter().all(|s| *s == StatusCode::CREATED));
    let wins = statuses[40..].iter().filter(|s| **s == StatusCode::OK).count();
    let conflicts = statuses[40..].iter().filter(|s| **s == StatusCode::PRECONDITION_FAILED).count();
    assert_eq!((wins, conflicts), (1, 9), "{statuses:?}");
    assert_eq!(app.total("/fhir/Patient?family=many&_count=0").await, 40);
    let cur: Value = app.get(&format!("/fhir/Patient/{id}")).await.json().await.unwrap();
    assert_eq!(cur["meta"]["versionId"], "2");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lianyi"))
        .args(["audit", "verify", "--database", &app.database_url, "--data-dir"])
        .arg(&app.keys_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}
