//! Authentication and authorization on every FHIR path: tokens, scopes, campuses,
//! patient compartments; every denial is audited.

use lianyi_store::Store;
use lianyi_store::audit::AuditQuery;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, outcome, spawn_app, token};

async fn create_with(app: &TestApp, client: &Client, body: Value) -> String {
    let t = body["resourceType"].as_str().unwrap().to_string();
    let r = client
        .post(app.url(&format!("/fhir/{t}")))
        .header("content-type", "application/fhir+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
}

async fn status(client: &Client, url: String) -> StatusCode {
    client.get(url).send().await.unwrap().status()
}

async fn ids(client: &Client, url: String) -> Vec<String> {
    let r = client.get(url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let b: Value = r.json().await.unwrap();
    let mut ids: Vec<String> = b["entry"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

async fn denied_count(app: &TestApp) -> usize {
    let store = Store::connect(&app.database_url).await.unwrap();
    let r = store.audit_records(&AuditQuery { limit: 10_000, ..Default::default() }).await.unwrap();
    store.close().await;
    r.iter().filter(|r| r.entry.outcome == "denied").count()
}

#[tokio::test]
async fn tokens_are_required_and_checked() {
    let app = spawn_app().await;
    let anon = crate::helpers::http().build().unwrap();
    let r = anon.get(app.url("/fhir/Patient")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    assert_eq!(outcome(r).await.0, "security");
    assert_eq!(status(&anon, app.url("/fhir/metadata")).await, StatusCode::OK, "the CapabilityStatement is public");
    let before = denied_count(&app).await;
    let r = anon.get(app.url("/fhir/Patient")).bearer_auth("forged").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(denied_count(&app).await, before + 1, "a bad token is a security event");

    // Token endpoint errors follow RFC 6749.
    let c = app
        .clients
        .add(
            &lianyi_security::Caller::task(lianyi_security::SystemTask::Operator("t".into())),
            "narrow",
            "system/Patient.rs system/Observation.rs",
            "*",
            None,
        )
        .await
        .unwrap();
    let post = |form: Vec<(&'static str, String)>| {
        let url = app.url("/oauth/token");
        async move { anon_post(url, form).await }
    };
    let (s, v) = post(vec![
        ("grant_type", "client_credentials".into()),
        ("client_id", c.client_id.clone()),
        ("client_secret", "wrong".into()),
    ])
    .await;
    assert_eq!((s, v["error"].as_str().unwrap()), (StatusCode::UNAUTHORIZED, "invalid_client"));
    let (s, v) = post(vec![
        ("grant_type", "password".into()),
        ("client_id", c.client_id.clone()),
        ("client_secret", c.client_secret.clone()),
    ])
    .await;
    assert_eq!((s, v["error"].as_str().unwrap()), (StatusCode::BAD_REQUEST, "unsupported_grant_type"));
    let (s, v) = post(vec![
        ("grant_type", "client_credentials".into()),
        ("client_id", c.client_id.clone()),
        ("client_secret", c.client_secret.clone()),
        ("scope", "system/Patient.cruds".into()),
    ])
    .await;
    assert_eq!((s, v["error"].as_str().unwrap()), (StatusCode::BAD_REQUEST, "invalid_scope"));
    let (s, v) = post(vec![
        ("grant_type", "client_credentials".into()),
        ("client_id", c.client_id.clone()),
        ("client_secret", c.client_secret.clone()),
        ("scope", "system/Patient.r".into()),
    ])
    .await;
    assert_eq!(
        (s, v["scope"].as_str().unwrap(), v["token_type"].as_str().unwrap()),
        (StatusCode::OK, "system/Patient.r", "Bearer")
    );
    assert_eq!(v["expires_in"], 900);

    // Expired and revoked tokens are refused.
    let t = token(&app.base, &c.client_id, &c.client_secret).await;
    assert_eq!(anon.get(app.url("/fhir/Patient")).bearer_auth(&t).send().await.unwrap().status(), StatusCode::OK);
    lianyi_store::testing::raw_execute(&app.database_url, "UPDATE access_tokens SET expires_at = 1").await;
    assert_eq!(
        anon.get(app.url("/fhir/Patient")).bearer_auth(&t).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let t = token(&app.base, &c.client_id, &c.client_secret).await;
    app.clients
        .disable(&lianyi_security::Caller::task(lianyi_security::SystemTask::Operator("t".into())), "narrow")
        .await
        .unwrap();
    assert_eq!(
        anon.get(app.url("/fhir/Patient")).bearer_auth(&t).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn anon_post(url: String, form: Vec<(&'static str, String)>) -> (StatusCode, Value) {
    let r = crate::helpers::http().build().unwrap().post(url).form(&form).send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn scopes_limit_types_and_interactions() {
    let app = spawn_app().await;
    let pid = app.create(&json!({"resourceType": "Patient", "name": [{"family": "Scoped"}]})).await;
    let oid = app
        .create(&json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": format!("Patient/{pid}")}}))
        .await;
    let reader = app.client_with("system/Patient.rs", "*", None).await;
    assert_eq!(status(&reader, app.url(&format!("/fhir/Patient/{pid}"))).await, StatusCode::OK);
    assert_eq!(status(&reader, app.url("/fhir/Patient?family=scoped")).await, StatusCode::OK);
    let before = denied_count(&app).await;
    let r = reader.get(app.url(&format!("/fhir/Observation/{oid}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (code, _, diag) = outcome(r).await;
    assert_eq!(code, "forbidden");
    assert!(diag.contains("Observation"), "{diag}");
    let r = reader
        .post(app.url("/fhir/Patient"))
        .header("content-type", "application/fhir+json")
        .body(json!({"resourceType": "Patient"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(status(&reader, app.url("/fhir/_history")).await, StatusCode::FORBIDDEN);
    assert_eq!(denied_count(&app).await, before + 3, "each denial is audited");
}

#[tokio::test]
async fn campus_a_never_sees_campus_b() {
    let app = spawn_app().await;
    let west = app.client_with("system/*.cruds", "campus-west", None).await;
    let east_writer = app.client_with("system/*.cruds", "campus-east", None).await;
    let east = app.client_with("system/*.rs", "campus-east", None).await;
    let pe = create_with(&app, &east_writer, json!({"resourceType": "Patient", "name": [{"family": "Dong"}]})).await;
    let pw = create_with(&app, &west, json!({"resourceType": "Patient", "name": [{"family": "Xi"}]})).await;
    let ow = create_with(
        &app,
        &west,
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": format!("Patient/{pw}")}}),
    )
    .await;
    let org = create_with(&app, &west, json!({"resourceType": "Organization", "name": "West campus lab"})).await;

    assert_eq!(ids(&east, app.url("/fhir/Patient")).await, vec![pe.clone()]);
    assert_eq!(ids(&east, app.url("/fhir/Observation")).await, Vec::<String>::new());
    let b: Value = east.get(app.url("/fhir/Patient?_count=0")).send().await.unwrap().json().await.unwrap();
    assert_eq!(b["total"], 1, "totals do not leak other campuses' rows");
    let before = denied_count(&app).await;
    assert_eq!(status(&east, app.url(&format!("/fhir/Patient/{pw}"))).await, StatusCode::FORBIDDEN);
    assert_eq!(status(&east, app.url(&format!("/fhir/Patient/{pw}/_history/1"))).await, StatusCode::FORBIDDEN);
    assert_eq!(status(&east, app.url(&format!("/fhir/Patient/{pw}/_history"))).await, StatusCode::FORBIDDEN);
    assert_eq!(status(&east, app.url(&format!("/fhir/Observation/{ow}"))).await, StatusCode::FORBIDDEN);
    assert_eq!(denied_count(&app).await, before + 4, "each denial is audited");
    let h: Value = east.get(app.url("/fhir/Patient/_history")).send().await.unwrap().json().await.unwrap();
    assert_eq!(h["total"], 1);
    let h: Value = east.get(app.url("/fhir/_history")).send().await.unwrap().json().await.unwrap();
    let hist_ids: Vec<&str> =
        h["entry"].as_array().unwrap().iter().map(|e| e["resource"]["id"].as_str().unwrap()).collect();
    assert!(!hist_ids.contains(&pw.as_str()) && !hist_ids.contains(&ow.as_str()), "{hist_ids:?}");
    // Directory data is shared between campuses.
    assert_eq!(status(&east, app.url(&format!("/fhir/Organization/{org}"))).await, StatusCode::OK);
    // Writes into another campus's record are refused too.
    let r = east_writer
        .put(app.url(&format!("/fhir/Patient/{pw}")))
        .header("content-type", "application/fhir+json")
        .body(json!({"resourceType": "Patient", "id": pw, "active": false}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        east_writer.delete(app.url(&format!("/fhir/Patient/{pw}"))).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_patient_token_sees_only_its_own_compartment() {
    let app = spawn_app().await;
    let p1 = app.create(&json!({"resourceType": "Patient", "name": [{"family": "One"}]})).await;
    let p2 = app.create(&json!({"resourceType": "Patient", "name": [{"family": "Two"}]})).await;
    let mut own = Vec::new();
    let mut other = Vec::new();
    for (p, list) in [(&p1, &mut own), (&p2, &mut other)] {
        let r = format!("Patient/{p}");
        list.push(("Observation", app.create(&json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": r}})).await));
        list.push(("Encounter", app.create(&json!({"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"}, "subject": {"reference": r}})).await));
        list.push((
            "Condition",
            app.create(&json!({"resourceType": "Condition", "subject": {"reference": r}, "code": {"text": "x"}})).await,
        ));
        list.push(("MedicationRequest", app.create(&json!({"resourceType": "MedicationRequest", "status": "active", "intent": "order", "medicationCodeableConcept": {"text": "x"}, "subject": {"reference": r}})).await));
        list.push((
            "AllergyIntolerance",
            app.create(&json!({"resourceType": "AllergyIntolerance", "patient": {"reference": r}})).await,
        ));
    }
    let org = app.create(&json!({"resourceType": "Organization", "name": "Hospital"})).await;
    let unbound = app
        .clients
        .add(
            &lianyi_security::Caller::task(lianyi_security::SystemTask::Operator("t".into())),
            "unbound",
            "patient/*.rs",
            "*",
            None,
        )
        .await;
    assert!(unbound.is_err(), "patient/ scopes need a patient context");
    let me = app.client_with("patient/*.rs", "*", Some(&p1)).await;
    assert_eq!(status(&me, app.url(&format!("/fhir/Patient/{p1}"))).await, StatusCode::OK);
    assert_eq!(status(&me, app.url(&format!("/fhir/Patient/{p2}"))).await, StatusCode::FORBIDDEN);
    for ((t, mine), (_, theirs)) in own.iter().zip(&other) {
        assert_eq!(status(&me, app.url(&format!("/fhir/{t}/{mine}"))).await, StatusCode::OK, "{t}");
        assert_eq!(status(&me, app.url(&format!("/fhir/{t}/{theirs}"))).await, StatusCode::FORBIDDEN, "{t}");
        assert_eq!(status(&me, app.url(&format!("/fhir/{t}/{theirs}/_history/1"))).await, StatusCode::FORBIDDEN, "{t}");
        assert_eq!(ids(&me, app.url(&format!("/fhir/{t}"))).await, vec![mine.clone()], "{t}");
    }
    assert_eq!(ids(&me, app.url("/fhir/Patient")).await, vec![p1.clone()]);
    assert_eq!(status(&me, app.url(&format!("/fhir/Organization/{org}"))).await, StatusCode::OK);
}

#[tokio::test]
async fn password_and_token_endpoints_are_rate_limited_per_address() {
    let app = spawn_app().await;
    let mut statuses = Vec::new();
    for _ in 0..32 {
        let (s, _) = anon_post(
            app.url("/oauth/token"),
            vec![("grant_type", "client_credentials".into()), ("client_id", "x".into()), ("client_secret", "y".into())],
        )
        .await;
        statuses.push(s);
    }
    // The admin client's token was the first request from this address.
    assert!(statuses[..29].iter().all(|s| *s == StatusCode::UNAUTHORIZED), "{statuses:?}");
    assert_eq!(statuses[31], StatusCode::TOO_MANY_REQUESTS);
    let r =
        crate::helpers::http().build().unwrap().post(app.url("/login")).form(&[("csrf", "x")]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    // Other routes are not limited.
    assert_eq!(app.get("/fhir/metadata").await.status(), StatusCode::OK);
}
