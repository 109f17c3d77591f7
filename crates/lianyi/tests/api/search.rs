//! Search over HTTP: each parameter type, GET and POST, paging links, errors.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{outcome, spawn_app};

async fn seed(app: &crate::helpers::TestApp) -> (String, String, Vec<String>) {
    let a = app
        .create(&json!({"resourceType": "Patient", "name": [{"family": "欧阳", "given": ["娜"], "text": "欧阳娜"}],
                        "identifier": [{"system": "urn:lianyi:sid:mrn:campus-east", "value": "E1"}],
                        "gender": "female", "birthDate": "1975-03-04"}))
        .await;
    let b = app
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Ouyang", "given": ["Na"]}],
                        "identifier": [{"system": "urn:lianyi:sid:mrn:campus-east", "value": "E2"}],
                        "gender": "male", "birthDate": "1988-12-30"}))
        .await;
    let mut encounters = Vec::new();
    for (i, day) in ["2024-01-05", "2024-02-10", "2024-03-15", "2024-04-20", "2024-05-25"].iter().enumerate() {
        let subject = if i < 4 { &a } else { &b };
        encounters.push(
            app.create(&json!({"resourceType": "Encounter", "status": "finished",
                                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                                "subject": {"reference": format!("Patient/{subject}")},
                                "period": {"start": format!("{day}T09:00:00+08:00"), "end": format!("{day}T09:30:00+08:00")}}))
                .await,
        );
    }
    (a, b, encounters)
}

#[tokio::test]
async fn each_parameter_type_returns_the_exact_set() {
    let app = spawn_app().await;
    let (a, b, e) = seed(&app).await;
    assert_eq!(app.search_ids("/fhir/Patient?name=%E6%AC%A7%E9%98%B3").await, vec![a.clone()]); // 欧阳
    assert_eq!(app.search_ids("/fhir/Patient?family=ouy").await, vec![b.clone()]);
    assert_eq!(app.search_ids("/fhir/Patient?gender=male").await, vec![b.clone()]);
    assert_eq!(app.search_ids("/fhir/Patient?identifier=urn:lianyi:sid:mrn:campus-east%7CE1").await, vec![a.clone()]);
    assert_eq!(app.search_ids("/fhir/Patient?birthdate=lt1980").await, vec![a.clone()]);
    assert_eq!(app.search_ids(&format!("/fhir/Patient?_id={b}")).await, vec![b.clone()]);
    assert_eq!(app.search_ids(&format!("/fhir/Encounter?patient=Patient/{a}")).await, e[..4].to_vec());
    assert_eq!(app.search_ids(&format!("/fhir/Encounter?subject={b}")).await, vec![e[4].clone()]);
    assert_eq!(app.search_ids("/fhir/Encounter?date=ge2024-02-10&date=lt2024-04").await, e[1..3].to_vec());
    assert_eq!(app.search_ids("/fhir/Encounter?date=2024-05").await, vec![e[4].clone()]);
    let later = app.search_ids("/fhir/Encounter?_lastUpdated=gt2000-01-01").await;
    assert_eq!(later, e);
}

#[tokio::test]
async fn paging_links_walk_every_result_once() {
    let app = spawn_app().await;
    let (a, _, e) = seed(&app).await;
    let first: Value = app.get(&format!("/fhir/Encounter?patient=Patient/{a}&_count=3")).await.json().await.unwrap();
    assert_eq!(first["total"], 4);
    let rel: Vec<&str> = first["link"].as_array().unwrap().iter().map(|l| l["relation"].as_str().unwrap()).collect();
    assert_eq!(rel, vec!["self", "next"]);
    let all = app.search_ids(&format!("/fhir/Encounter?patient=Patient/{a}&_count=3")).await;
    assert_eq!(all, e[..4].to_vec());
    let second: Value =
        app.get(&format!("/fhir/Encounter?patient=Patient/{a}&_count=3&_offset=3")).await.json().await.unwrap();
    let rel: Vec<&str> = second["link"].as_array().unwrap().iter().map(|l| l["relation"].as_str().unwrap()).collect();
    assert_eq!(rel, vec!["self", "previous"]);
    assert_eq!(second["entry"][0]["search"]["mode"], "match");
    assert_eq!(second["entry"][0]["fullUrl"], app.url(&format!("/fhir/Encounter/{}", e[3])));
}

#[tokio::test]
async fn post_search_matches_get_search() {
    let app = spawn_app().await;
    let (a, _, e) = seed(&app).await;
    let r = app
        .client
        .post(app.url("/fhir/Encounter/_search"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("patient=Patient%2F{a}&date=ge2024-03-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let b: Value = r.json().await.unwrap();
    let ids: Vec<&str> = b["entry"].as_array().unwrap().iter().map(|x| x["resource"]["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![e[2].as_str(), e[3].as_str()]);
    assert_eq!(b["total"], 2);
}

#[tokio::test]
async fn bad_search_parameters_are_named() {
    let app = spawn_app().await;
    let r = app.get("/fhir/Patient?shoe-size=42").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let (code, expr, _) = outcome(r).await;
    assert_eq!((code.as_str(), expr.as_str()), ("not-supported", "shoe-size"));
    let r = app.get("/fhir/Patient?birthdate=yesterday").await;
    assert_eq!(outcome(r).await.1, "birthdate");
    let r = app.get("/fhir/Patient?_count=5000").await;
    assert_eq!(outcome(r).await.1, "_count");
    let r = app.get("/fhir/Patient?name:contains=x").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}
