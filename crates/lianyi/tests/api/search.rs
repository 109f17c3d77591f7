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
    let r = app.get("/fhir/Patient?name:above=x").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

async fn people(app: &crate::helpers::TestApp) -> Vec<String> {
    let mut ids = Vec::new();
    for (family, birth, gender, active) in [
        ("Li", Some("1990-05-01"), "female", Some(true)),
        ("Wang", Some("1970-01-01"), "male", None),
        ("Zhang", None, "female", Some(false)),
        ("Wangshu", Some("1985-03-03"), "male", Some(true)),
    ] {
        let mut p = json!({"resourceType": "Patient", "name": [{"family": family}], "gender": gender});
        if let Some(b) = birth {
            p["birthDate"] = json!(b);
        }
        if let Some(a) = active {
            p["active"] = json!(a);
        }
        ids.push(app.create(&p).await);
    }
    ids
}

#[tokio::test]
async fn sort_on_several_keys_both_directions() {
    let app = spawn_app().await;
    let ids = people(&app).await; // Li 1990, Wang 1970, Zhang -, Wangshu 1985
    let pick = |order: &[usize]| order.iter().map(|i| ids[*i].clone()).collect::<Vec<_>>();
    assert_eq!(app.search_ids("/fhir/Patient?_sort=birthdate").await, pick(&[1, 3, 0, 2]), "missing values last");
    assert_eq!(app.search_ids("/fhir/Patient?_sort=-birthdate").await, pick(&[0, 3, 1, 2]));
    assert_eq!(app.search_ids("/fhir/Patient?_sort=gender,-birthdate").await, pick(&[0, 2, 3, 1]));
    assert_eq!(
        app.search_ids("/fhir/Patient?_sort=-family&_count=2").await,
        pick(&[2, 3, 1, 0]),
        "pages follow the sort"
    );
    let mut by_id = ids.clone();
    by_id.sort();
    assert_eq!(app.search_ids("/fhir/Patient?_sort=_id").await, by_id);
}

#[tokio::test]
async fn missing_not_and_contains_modifiers() {
    let app = spawn_app().await;
    let ids = people(&app).await;
    assert_eq!(app.search_ids("/fhir/Patient?birthdate:missing=true").await, vec![ids[2].clone()]);
    assert_eq!(
        app.search_ids("/fhir/Patient?active:missing=false").await,
        vec![ids[0].clone(), ids[2].clone(), ids[3].clone()]
    );
    assert_eq!(app.search_ids("/fhir/Patient?gender:not=male").await, vec![ids[0].clone(), ids[2].clone()]);
    assert_eq!(
        app.search_ids("/fhir/Patient?active:not=true").await,
        vec![ids[1].clone(), ids[2].clone()],
        ":not includes resources without the element"
    );
    assert_eq!(
        app.search_ids("/fhir/Patient?family:contains=ang").await,
        vec![ids[1].clone(), ids[2].clone(), ids[3].clone()]
    );
    assert_eq!(app.search_ids("/fhir/Patient?family=wang").await, vec![ids[1].clone(), ids[3].clone()]);
}

#[tokio::test]
async fn include_and_revinclude_follow_references() {
    let app = spawn_app().await;
    let (a, b, e) = seed(&app).await;
    let obs = app
        .create(&json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                        "subject": {"reference": format!("Patient/{a}")}, "encounter": {"reference": format!("Encounter/{}", e[0])}}))
        .await;
    let bundle: Value = app
        .get(&format!("/fhir/Encounter?_id={},{}&_include=Encounter:subject", e[0], e[4]))
        .await
        .json()
        .await
        .unwrap();
    let got: Vec<(String, String)> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["resource"]["id"].as_str().unwrap().to_string(), x["search"]["mode"].as_str().unwrap().to_string()))
        .collect();
    // Matches in search order, then included resources by type and id.
    let mut inc = [a.clone(), b.clone()];
    inc.sort();
    assert_eq!(
        got,
        vec![
            (e[0].clone(), "match".into()),
            (e[4].clone(), "match".into()),
            (inc[0].clone(), "include".into()),
            (inc[1].clone(), "include".into())
        ]
    );
    assert_eq!(bundle["total"], 2, "included resources are not counted");
    let bundle: Value = app
        .get(&format!("/fhir/Patient?_id={a}&_revinclude=Observation:subject&_revinclude=Encounter:subject"))
        .await
        .json()
        .await
        .unwrap();
    let mut got: Vec<String> =
        bundle["entry"].as_array().unwrap().iter().map(|x| x["resource"]["id"].as_str().unwrap().to_string()).collect();
    got[1..].sort();
    let mut expected = vec![obs.clone(), e[0].clone(), e[1].clone(), e[2].clone(), e[3].clone()];
    expected.sort();
    assert_eq!(got[0], a);
    assert_eq!(got[1..].to_vec(), expected);
    // :iterate follows references of the included resources too.
    let bundle: Value = app
        .get(&format!("/fhir/Observation?_id={obs}&_include=Observation:encounter&_include:iterate=Encounter:subject"))
        .await
        .json()
        .await
        .unwrap();
    let got: Vec<&str> =
        bundle["entry"].as_array().unwrap().iter().map(|x| x["resource"]["id"].as_str().unwrap()).collect();
    assert_eq!(got, vec![obs.as_str(), e[0].as_str(), a.as_str()]);
}

#[tokio::test]
async fn includes_never_cross_campuses() {
    let app = spawn_app().await;
    let west = app.client_with("system/*.cruds", "campus-west", None).await;
    let east = app.client_with("system/*.cruds", "campus-east", None).await;
    let post = |c: &reqwest::Client, body: Value| {
        let c = c.clone();
        let url = app.url(&format!("/fhir/{}", body["resourceType"].as_str().unwrap()));
        async move {
            let r = c
                .post(url)
                .header("content-type", "application/fhir+json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
        }
    };
    let pw = post(&west, json!({"resourceType": "Patient", "name": [{"family": "West"}]})).await;
    let enc = post(&east, json!({"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"}, "subject": {"reference": format!("Patient/{pw}")}})).await;
    post(&west, json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": format!("Patient/{pw}")}})).await;
    let b: Value = east
        .get(app.url(&format!("/fhir/Encounter?_id={enc}&_include=Encounter:subject")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(b["entry"].as_array().unwrap().len(), 1, "the campus-west patient is not included: {b}");
    let b: Value = east
        .get(app.url(&format!("/fhir/Encounter?_id={enc}&_revinclude=Observation:encounter")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(b["entry"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn total_summary_and_elements() {
    let app = spawn_app().await;
    people(&app).await;
    let b: Value = app.get("/fhir/Patient?_total=none&_count=2").await.json().await.unwrap();
    assert!(b.get("total").is_none());
    assert!(b["link"].as_array().unwrap().iter().any(|l| l["relation"] == "next"));
    let b: Value = app.get("/fhir/Patient?_summary=count").await.json().await.unwrap();
    assert_eq!(b["total"], 4);
    assert!(b.get("entry").is_none());
    let b: Value = app.get("/fhir/Patient?_elements=gender&_sort=family").await.json().await.unwrap();
    let first = &b["entry"][0]["resource"];
    assert_eq!(first["gender"], "female");
    assert!(first.get("name").is_none() && first.get("birthDate").is_none());
    assert_eq!(first["meta"]["tag"][0]["code"], "SUBSETTED");
    lianyi_fhir::validate_resource(first).unwrap();
}

#[tokio::test]
async fn chained_and_reverse_chained_parameters() {
    let app = spawn_app().await;
    let org = app.create(&json!({"resourceType": "Organization", "name": "协和东院"})).await;
    let (a, b, e) = seed(&app).await;
    // Give patient b a managing organization.
    let mut pb: Value = app.get(&format!("/fhir/Patient/{b}")).await.json().await.unwrap();
    pb["managingOrganization"] = json!({"reference": format!("Organization/{org}")});
    assert_eq!(app.put(&format!("/fhir/Patient/{b}"), &pb).await.status(), StatusCode::OK);
    let obs = app
        .create(&json!({"resourceType": "Observation", "status": "final",
                        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
                        "subject": {"reference": format!("Patient/{a}")}}))
        .await;

    assert_eq!(app.search_ids("/fhir/Encounter?subject:Patient.name=ouyang").await, vec![e[4].clone()]);
    assert_eq!(app.search_ids("/fhir/Encounter?patient.family=%E6%AC%A7%E9%98%B3").await, e[..4].to_vec());
    assert_eq!(
        app.search_ids("/fhir/Encounter?patient.organization.name=%E5%8D%8F%E5%92%8C").await,
        vec![e[4].clone()],
        "two levels"
    );
    assert_eq!(
        app.search_ids("/fhir/Observation?subject:Patient.identifier=urn:lianyi:sid:mrn:campus-east%7CE1").await,
        vec![obs.clone()]
    );
    assert_eq!(app.search_ids("/fhir/Patient?_has:Observation:patient:code=2345-7").await, vec![a.clone()]);
    assert_eq!(app.search_ids("/fhir/Patient?_has:Encounter:patient:date=2024-05").await, vec![b.clone()]);
    assert_eq!(
        app.search_ids("/fhir/Organization?_has:Patient:organization:_has:Encounter:patient:date=2024-05").await,
        vec![org.clone()],
        "nested _has"
    );
    let r = app.get("/fhir/Encounter?subject.name=x").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "subject can point to several types");
    assert!(outcome(r).await.2.contains("subject:"));
}

#[tokio::test]
async fn chains_never_cross_campuses() {
    let app = spawn_app().await;
    let west = app.client_with("system/*.cruds", "campus-west", None).await;
    let east = app.client_with("system/*.cruds", "campus-east", None).await;
    let post = |c: &reqwest::Client, body: Value| {
        let c = c.clone();
        let url = app.url(&format!("/fhir/{}", body["resourceType"].as_str().unwrap()));
        async move {
            let r = c
                .post(url)
                .header("content-type", "application/fhir+json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
        }
    };
    let pw = post(&west, json!({"resourceType": "Patient", "name": [{"family": "Secret"}]})).await;
    post(&east, json!({"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"}, "subject": {"reference": format!("Patient/{pw}")}})).await;
    post(&west, json!({"resourceType": "Observation", "status": "final", "code": {"coding": [{"code": "x1"}]}, "subject": {"reference": format!("Patient/{pw}")}})).await;
    let b: Value =
        east.get(app.url("/fhir/Encounter?patient.family=secret")).send().await.unwrap().json().await.unwrap();
    assert_eq!(b["total"], 0, "a chain cannot test a campus-west patient's name");
    let b: Value =
        east.get(app.url("/fhir/Patient?_has:Observation:patient:code=x1")).send().await.unwrap().json().await.unwrap();
    assert_eq!(b["total"], 0);
}

#[tokio::test]
async fn quantity_number_and_uri_parameters() {
    let app = spawn_app().await;
    let mut obs = Vec::new();
    for (v, unit) in [(5.4, "mmol/L"), (7.95, "mmol/L"), (12.0, "mg/dL"), (100.0, "mmol/L")] {
        obs.push(
            app.create(&json!({"resourceType": "Observation", "status": "final", "code": {"text": "glucose"},
                "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/vitalsigns"]},
                "valueQuantity": {"value": v, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}}))
                .await,
        );
    }
    let ids = |idx: &[usize]| idx.iter().map(|i| obs[*i].clone()).collect::<Vec<_>>();
    assert_eq!(app.search_ids("/fhir/Observation?value-quantity=gt6").await, ids(&[1, 2, 3]));
    assert_eq!(
        app.search_ids("/fhir/Observation?value-quantity=gt6%7Chttp://unitsofmeasure.org%7Cmmol/L").await,
        ids(&[1, 3])
    );
    assert_eq!(app.search_ids("/fhir/Observation?value-quantity=5.4%7C%7Cmmol/L").await, ids(&[0]));
    assert_eq!(app.search_ids("/fhir/Observation?value-quantity=8").await, ids(&[1]), "8 means 7.5 <= x < 8.5");
    assert_eq!(app.search_ids("/fhir/Observation?value-quantity=8.0").await, ids(&[1]), "8.0 means 7.95 <= x < 8.05");
    assert_eq!(app.search_ids("/fhir/Observation?value-quantity=8.00").await, Vec::<String>::new());
    assert_eq!(app.search_ids("/fhir/Observation?value-quantity=le12&value-quantity=ge12").await, ids(&[2]));

    // uri: exact and :below (on _profile, which every type has).
    assert_eq!(
        app.search_ids("/fhir/Observation?_profile=http://hl7.org/fhir/StructureDefinition/vitalsigns").await.len(),
        4
    );
    assert_eq!(
        app.search_ids("/fhir/Observation?_profile:below=http://hl7.org/fhir/StructureDefinition/").await.len(),
        4
    );
    assert!(app.search_ids("/fhir/Observation?_profile=http://hl7.org/fhir/StructureDefinition").await.is_empty());

    // number.
    let mut charges = Vec::new();
    for f in [0.8, 1.25] {
        charges.push(
            app.create(&json!({"resourceType": "ChargeItem", "status": "billable", "code": {"text": "consult"},
                "subject": {"reference": "Patient/p1"}, "factorOverride": f}))
                .await,
        );
    }
    assert_eq!(app.search_ids("/fhir/ChargeItem?factor-override=gt1").await, vec![charges[1].clone()]);
    assert_eq!(app.search_ids("/fhir/ChargeItem?factor-override=0.8").await, vec![charges[0].clone()]);
    let r = app.get("/fhir/ChargeItem?factor-override=abc").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn composite_parameters_match_parts_on_the_same_element() {
    let app = spawn_app().await;
    let loinc = "http://loinc.org";
    let q = |v: f64| json!({"value": v, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"});
    // 0: potassium 6.8; 1: potassium 4.1; 2: sodium 6.8 (a code and a value that only
    // match across two different observations must not match one).
    let mut obs = Vec::new();
    for (code, v) in [("2823-3", 6.8), ("2823-3", 4.1), ("2951-2", 6.8)] {
        obs.push(
            app.create(&json!({"resourceType": "Observation", "status": "final",
                "code": {"coding": [{"system": loinc, "code": code, "display": "Potassium [Moles/volume] in Serum or Plasma"}]},
                "valueQuantity": q(v)}))
                .await,
        );
    }
    // 3: blood pressure with components: systolic 150, diastolic 85.
    obs.push(
        app.create(&json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": loinc, "code": "85354-9"}], "text": "Blood pressure panel"},
            "component": [
                {"code": {"coding": [{"system": loinc, "code": "8480-6"}]}, "valueQuantity": {"value": 150, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
                {"code": {"coding": [{"system": loinc, "code": "8462-4"}]}, "valueQuantity": {"value": 85, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}
            ]}))
            .await,
    );
    // 4: a coded value.
    obs.push(
        app.create(&json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": loinc, "code": "883-9"}]},
            "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "112144000"}]}}))
            .await,
    );
    let ids = |idx: &[usize]| idx.iter().map(|i| obs[*i].clone()).collect::<Vec<_>>();
    let none: Vec<String> = Vec::new();
    assert_eq!(app.search_ids("/fhir/Observation?code-value-quantity=http://loinc.org%7C2823-3$gt6").await, ids(&[0]));
    assert_eq!(app.search_ids("/fhir/Observation?code-value-quantity=2823-3$lt5").await, ids(&[1]));
    assert_eq!(app.search_ids("/fhir/Observation?code-value-quantity=2823-3$gt6,2951-2$gt6").await, ids(&[0, 2]));
    assert_eq!(
        app.search_ids("/fhir/Observation?code-value-quantity=2823-3$6.8%7Chttp://unitsofmeasure.org%7Cmmol/L").await,
        ids(&[0])
    );
    assert_eq!(app.search_ids("/fhir/Observation?code-value-quantity=2823-3$6.8%7C%7Cmg/dL").await, none);
    // Components: systolic > 140 matches; diastolic > 140 does not (85), although the
    // resource has both a diastolic code and a value above 140.
    assert_eq!(app.search_ids("/fhir/Observation?component-code-value-quantity=8480-6$gt140").await, ids(&[3]));
    assert_eq!(app.search_ids("/fhir/Observation?component-code-value-quantity=8462-4$gt140").await, none);
    assert_eq!(app.search_ids("/fhir/Observation?combo-code-value-quantity=8462-4$lt90").await, ids(&[3]));
    assert_eq!(app.search_ids("/fhir/Observation?combo-code-value-quantity=2823-3$gt6").await, ids(&[0]));
    assert_eq!(
        app.search_ids("/fhir/Observation?code-value-concept=883-9$http://snomed.info/sct%7C112144000").await,
        ids(&[4])
    );
    assert_eq!(app.search_ids("/fhir/Observation?code-value-concept=883-9$999").await, none);
    // Errors name the parameter and the rule.
    let r = app.get("/fhir/Observation?code-value-quantity=2823-3").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let (code, at, text) = outcome(r).await;
    assert_eq!((code.as_str(), at.as_str()), ("invalid", "code-value-quantity"));
    assert!(text.contains("$quantity"), "{text}");
    let r = app.get("/fhir/Observation?code-value-quantity=2823-3$abc").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // :text on a token searches displays and CodeableConcept.text (starts-with, any case).
    assert_eq!(app.search_ids("/fhir/Observation?code:text=potassium").await, ids(&[0, 1, 2]));
    assert_eq!(app.search_ids("/fhir/Observation?code:text=BLOOD%20press").await, ids(&[3]));
    assert_eq!(app.search_ids("/fhir/Observation?code:text=sodium").await, none);
}

#[tokio::test]
async fn identifier_above_and_summary_data() {
    let app = spawn_app().await;
    // :identifier on a reference parameter matches Reference.identifier.
    let mut enc = Vec::new();
    for v in ["E1", "E2"] {
        enc.push(
            app.create(&json!({"resourceType": "Encounter", "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                "subject": {"identifier": {"system": "urn:lianyi:sid:mrn:campus-east", "value": v}, "display": "x"}}))
                .await,
        );
    }
    assert_eq!(
        app.search_ids("/fhir/Encounter?subject:identifier=urn:lianyi:sid:mrn:campus-east%7CE2").await,
        vec![enc[1].clone()]
    );
    assert_eq!(app.search_ids("/fhir/Encounter?subject:identifier=E1").await, vec![enc[0].clone()]);
    assert!(app.search_ids("/fhir/Encounter?subject:identifier=urn:other%7CE1").await.is_empty());

    // :above on a uri: the stored uri is the value or a leading part of it.
    let mut obs = Vec::new();
    for profile in
        ["http://example.org/fhir/StructureDefinition/lab", "http://example.org/fhir/StructureDefinition/lab-chem"]
    {
        obs.push(
            app.create(&json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                "meta": {"profile": [profile]}, "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}}))
                .await,
        );
    }
    assert_eq!(
        app.search_ids("/fhir/Observation?_profile:above=http://example.org/fhir/StructureDefinition/lab-chem").await,
        obs.clone()
    );
    assert_eq!(
        app.search_ids("/fhir/Observation?_profile:above=http://example.org/fhir/StructureDefinition/lab").await,
        vec![obs[0].clone()]
    );
    assert!(app.search_ids("/fhir/Observation?_profile:above=http://example.org/fhir/").await.is_empty());

    // _summary=data leaves out the narrative; true and text are refused by name.
    let b: Value = app.get("/fhir/Observation?_summary=data&_sort=_id").await.json().await.unwrap();
    let first = &b["entry"][0]["resource"];
    assert!(first.get("text").is_none() && first.get("code").is_some());
    assert_eq!(first["meta"]["tag"][0]["code"], "SUBSETTED");
    lianyi_fhir::validate_resource(first).unwrap();
    let b: Value = app.get("/fhir/Observation?_sort=_id").await.json().await.unwrap();
    assert!(b["entry"][0]["resource"].get("text").is_some());
    for v in ["true", "text"] {
        let r = app.get(&format!("/fhir/Observation?_summary={v}")).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let (code, at, _) = outcome(r).await;
        assert_eq!((code.as_str(), at.as_str()), ("not-supported", "_summary"));
    }
}

#[tokio::test]
async fn paging_stays_consistent_while_writes_happen() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..9 {
        ids.push(app.create(&json!({"resourceType": "Patient", "name": [{"family": format!("Pager{i}")}]})).await);
    }
    let first: Value = app.get("/fhir/Patient?family=pager&_count=3").await.json().await.unwrap();
    let mut seen: Vec<String> =
        first["entry"].as_array().unwrap().iter().map(|e| e["resource"]["id"].as_str().unwrap().to_string()).collect();
    let mut next = first["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .map(|l| l["url"].as_str().unwrap().to_string());
    // Between pages: a seen resource is updated and new ones are created.
    let mut p0: Value = app.get(&format!("/fhir/Patient/{}", ids[0])).await.json().await.unwrap();
    p0["active"] = json!(true);
    app.put(&format!("/fhir/Patient/{}", ids[0]), &p0).await;
    app.create(&json!({"resourceType": "Patient", "name": [{"family": "PagerNew"}]})).await;
    while let Some(url) = next.take() {
        let b: Value = app.client.get(&url).send().await.unwrap().json().await.unwrap();
        for e in b["entry"].as_array().cloned().unwrap_or_default() {
            seen.push(e["resource"]["id"].as_str().unwrap().to_string());
        }
        next = b["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .map(|l| l["url"].as_str().unwrap().to_string());
    }
    // Every original resource exactly once (the updated one may come again as its new version).
    for id in &ids[1..] {
        assert_eq!(seen.iter().filter(|s| *s == id).count(), 1, "{id} in {seen:?}");
    }
    assert!(seen.iter().filter(|s| **s == ids[0]).count() >= 1);
}

#[tokio::test]
async fn reindex_rebuilds_rows_written_by_older_rules() {
    let app = spawn_app().await;
    let patient = app
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Reindex"}],
            "identifier": [{"system": "urn:lianyi:sid:resident-id", "value": "990101199001010019"}]}))
        .await;
    let obs = app
        .create(&json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3", "display": "Potassium"}]},
            "subject": {"reference": format!("Patient/{patient}")},
            // High but not critical: a critical value would add the watcher's Task to the count.
            "valueQuantity": {"value": 5.8, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"}}))
        .await;
    let composite = "/fhir/Observation?code-value-quantity=2823-3$gt5";
    assert_eq!(app.search_ids(composite).await, vec![obs.clone()]);
    assert!(!app.fhir.index_is_stale().await.unwrap());

    // A database indexed by the previous rules: no composite or text rows, no version.
    for sql in [
        "DELETE FROM idx_composite",
        "DELETE FROM idx_string WHERE param = 'code:text'",
        "DELETE FROM idx_token WHERE param = 'identifier'",
        "DELETE FROM store_meta",
    ] {
        lianyi_store::testing::raw_execute(&app.database_url, sql).await;
    }
    assert!(app.search_ids(composite).await.is_empty());
    assert!(app.fhir.index_is_stale().await.unwrap());

    // Only operators may reindex; the run rebuilds every row, blind indexes included.
    let clinician = lianyi_security::Caller::anonymous(None);
    assert!(app.fhir.reindex(&clinician, |_| {}).await.is_err());
    let n = app
        .fhir
        .reindex(&lianyi_security::Caller::task(lianyi_security::SystemTask::Operator("test".into())), |_| {})
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert!(!app.fhir.index_is_stale().await.unwrap());
    assert_eq!(app.search_ids(composite).await, vec![obs.clone()]);
    assert_eq!(app.search_ids("/fhir/Observation?code:text=potass").await, vec![obs]);
    assert_eq!(
        app.search_ids("/fhir/Patient?identifier=urn:lianyi:sid:resident-id%7C990101199001010019").await,
        vec![patient]
    );
}
