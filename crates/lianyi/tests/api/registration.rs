//! Registration over the pages: field rules with messages naming the field, the
//! campus MRN, the duplicate warning with scores and reasons for a near-duplicate,
//! the confirmation to register someone new anyway, one record per resident ID, and
//! the role check — in both languages.

use lianyi_security::ManualClock;
use lianyi_services::identifiers::ResidentId;
use reqwest::StatusCode;

use crate::helpers::spawn_app_clocked;
use crate::pages::{between, csrf, logged_in};

#[tokio::test]
async fn registration_checks_fields_warns_of_duplicates_and_assigns_campus_mrns() {
    let clock = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    let (mut registrar, _) = logged_in(&app, &clock, "reg.east", "registrar", "campus-east", None).await;

    let (status, _, form) = registrar.get("/registration").await;
    assert_eq!(status, StatusCode::OK);
    let token = csrf(&form);

    // Broken rules: each named with its field, nothing stored.
    let (_, _, page) = registrar
        .post(
            "/registration",
            &[("csrf", &token), ("name", ""), ("resident_id", "110105194912310021"), ("phone", "12345")],
        )
        .await;
    let errors = between(&page, "id=\"form-errors\"", "</div>");
    // The summary at the top links each error to its field; the field says it too.
    assert!(errors.contains("data-field=\"name\"><a href=\"#name\">姓名: 必填"), "{errors}");
    assert!(errors.contains("data-field=\"resident_id\"><a href=\"#resident_id\">身份证号: 校验码不符"), "{errors}");
    assert!(errors.contains("data-field=\"phone\"><a href=\"#phone\">电话: 11 位手机号"), "{errors}");
    assert!(page.contains("class=\"error error-summary\" id=\"form-errors\""), "focus goes to the summary");
    let at_field = between(&page, "id=\"phone-error\">", "<");
    assert!(at_field.starts_with("11 位手机号"), "{at_field}");
    assert!(page.contains("id=\"phone\" value=\"12345\""), "what was typed is kept");
    assert_eq!(app.total("/fhir/Patient").await, 0);

    // A new patient: birth date and sex from the ID, the east campus's first MRN.
    let id_number = ResidentId::build(990_101, "19900101", 2).unwrap();
    let (status, location, _) = registrar
        .post(
            "/registration",
            &[
                ("csrf", &token),
                ("name", "张珊"),
                ("resident_id", id_number.as_str()),
                ("phone", "138 0013 8000"),
                ("address", "北京市朝阳区幸福路 1 号"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let first = between(&location, "/patients/", "?").to_string();
    let (_, _, patient_page) = registrar.get(&location).await;
    assert!(patient_page.contains("登记成功"), "{patient_page}");
    assert!(patient_page.contains("Zhang Shan") && patient_page.contains("病案号 E2000000"), "{patient_page}");
    assert!(patient_page.contains("1990-01-01") && patient_page.contains("女"), "{patient_page}");
    assert!(patient_page.contains("990101********"), "the ID is masked: {patient_page}");
    let stored = app.get(&format!("/fhir/Patient/{first}")).await.json::<serde_json::Value>().await.unwrap();
    assert_eq!(stored["gender"], "female");
    assert_eq!(stored["identifier"][1]["value"], "E2000000");
    assert_eq!(stored["name"][1]["text"], "Zhang Shan");

    // The same person again without the ID card, a homophone character, the same
    // phone: warned, with the score and the reasons; nothing created.
    let near = [
        ("csrf", token.as_str()),
        ("name", "张山"),
        ("birth_date", "1990-01-01"),
        ("gender", "female"),
        ("phone", "13800138000"),
    ];
    let (status, _, page) = registrar.post("/registration", &near).await;
    assert_eq!(status, StatusCode::OK);
    let dup = between(&page, "id=\"duplicates\"", "</table>");
    assert!(dup.contains(&format!("data-patient=\"{first}\"")), "{dup}");
    assert!(dup.contains("姓名同音") && dup.contains("出生日期相同") && dup.contains("电话相同"), "{dup}");
    let score: u32 = between(dup, "class=\"score\">", "<").parse().unwrap();
    assert!(score >= 75, "{score}");
    assert_eq!(app.total("/fhir/Patient").await, 1);

    // In English too.
    registrar.lang = "en";
    let (_, _, page) = registrar.post("/registration", &near).await;
    assert!(page.contains("Possible duplicates") && page.contains("name sounds the same"), "{page}");
    registrar.lang = "zh-CN";

    // The registrar checked: someone else. Registered with the next MRN.
    let mut confirmed = near.to_vec();
    confirmed.push(("confirmed", "1"));
    let (status, location, _) = registrar.post("/registration", &confirmed).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    let (_, _, second_page) = registrar.get(&location).await;
    assert!(second_page.contains("病案号 E2000001"), "{second_page}");

    // The same resident ID never makes a second record.
    let (_, _, page) = registrar
        .post("/registration", &[("csrf", &token), ("name", "张三丰"), ("resident_id", id_number.as_str())])
        .await;
    assert!(between(&page, "id=\"same-id\"", "</div>").contains(&format!("/patients/{first}")), "{page}");
    assert_eq!(app.total("/fhir/Patient").await, 2);

    // Registration is the registrar's: a doctor gets 403, a forged form too.
    let (mut doctor, _) = logged_in(&app, &clock, "dr.east", "doctor", "campus-east", None).await;
    assert_eq!(doctor.get("/registration").await.0, StatusCode::FORBIDDEN);
    let (status, _, _) = registrar.post("/registration", &[("csrf", "forged"), ("name", "李四")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Every registration is audited as the registrar's.
    let query = lianyi_store::audit::AuditQuery { action: Some("create".into()), limit: 1000, ..Default::default() };
    let audit = app.store.audit_records(&query).await.unwrap();
    let created: Vec<_> =
        audit.iter().map(|r| &r.entry).filter(|e| e.resource_type.as_deref() == Some("Patient")).collect();
    assert_eq!(created.len(), 2);
    assert!(created.iter().all(|e| e.actor == "user:reg.east" && e.campus.as_deref() == Some("campus-east")));
}

/// `POST /fhir/Patient/$match`: scored matches with their grade and reasons, only the
/// caller's campuses, `onlyCertainMatches`, and errors that name the parameter.
#[tokio::test]
async fn patient_match_scores_grades_and_respects_campuses() {
    use serde_json::{Value, json};
    let app = crate::helpers::spawn_app().await;
    let id_number = ResidentId::build(990_101, "19850312", 11).unwrap();
    let patient = |name: &str, pinyin: (&str, &str), birth: &str, rid: Option<&str>, phone: &str| {
        let mut p = json!({"resourceType": "Patient", "gender": "male", "birthDate": birth,
            "name": [{"text": name, "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation", "valueCode": "IDE"}]},
                     {"text": format!("{} {}", pinyin.0, pinyin.1), "family": pinyin.0, "given": [pinyin.1],
                      "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation", "valueCode": "ABC"}]}],
            "telecom": [{"system": "phone", "value": phone}]});
        if let Some(r) = rid {
            p["identifier"] = json!([{"system": "urn:lianyi:sid:resident-id", "value": r}]);
        }
        p
    };
    let east = app.client_with("system/*.cruds", "campus-east", None).await;
    let west = app.client_with("system/*.cruds", "campus-west", None).await;
    let create = |c: &reqwest::Client, p: Value| {
        let c = c.clone();
        let url = app.url("/fhir/Patient");
        async move {
            let r =
                c.post(url).header("content-type", "application/fhir+json").body(p.to_string()).send().await.unwrap();
            assert_eq!(r.status(), 201);
            r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
        }
    };
    let same =
        create(&east, patient("王小明", ("Wang", "Xiaoming"), "1985-03-12", Some(id_number.as_str()), "13900000001"))
            .await;
    let sound = create(&east, patient("王晓明", ("Wang", "Xiaoming"), "1985-03-12", None, "13900000002")).await;
    let _other = create(&east, patient("赵六", ("Zhao", "Liu"), "1970-02-02", None, "13900000003")).await;
    let west_twin = create(&west, patient("王小明", ("Wang", "Xiaoming"), "1985-03-12", None, "13900000004")).await;

    let query = |p: Value, extra: Vec<Value>| {
        let mut params = vec![json!({"name": "resource", "resource": p})];
        params.extend(extra);
        json!({"resourceType": "Parameters", "parameter": params}).to_string()
    };
    let run = |c: &reqwest::Client, body: String| {
        let c = c.clone();
        let url = app.url("/fhir/Patient/$match");
        async move {
            let r = c.post(url).header("content-type", "application/fhir+json").body(body).send().await.unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let typed =
        json!({"resourceType": "Patient", "name": [{"text": "王小明"}], "birthDate": "1985-03-12", "gender": "male"});

    let (status, bundle) = run(&east, query(typed.clone(), vec![])).await;
    assert_eq!(status, 200, "{bundle}");
    assert_eq!(bundle["type"], "searchset");
    let ids: Vec<&str> =
        bundle["entry"].as_array().unwrap().iter().map(|e| e["resource"]["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        vec![same.as_str(), sound.as_str()],
        "best first; the west record is not the east client's; 赵六 is no match"
    );
    assert!(!ids.contains(&west_twin.as_str()));
    let first = &bundle["entry"][0]["search"];
    assert_eq!(first["mode"], "match");
    assert_eq!(first["score"], 0.7);
    assert_eq!(first["extension"][0]["valueCode"], "possible");
    let reasons: Vec<&str> =
        first["extension"].as_array().unwrap()[1..].iter().map(|e| e["valueCode"].as_str().unwrap()).collect();
    assert_eq!(reasons, vec!["same-name", "same-birth-date", "same-gender"]);
    assert_eq!(bundle["entry"][1]["search"]["extension"][1]["valueCode"], "same-name-sound");

    // With the resident ID: certain, and alone when only certain matches are asked for.
    let mut with_id = typed.clone();
    with_id["identifier"] = json!([{"system": "urn:lianyi:sid:resident-id", "value": id_number.as_str()}]);
    let (_, bundle) =
        run(&east, query(with_id, vec![json!({"name": "onlyCertainMatches", "valueBoolean": true})])).await;
    assert_eq!(bundle["total"], 1);
    assert_eq!(bundle["entry"][0]["resource"]["id"], same.as_str());
    assert_eq!(bundle["entry"][0]["search"]["score"], 1.0);
    assert_eq!(bundle["entry"][0]["search"]["extension"][0]["valueCode"], "certain");

    // The west client finds its own twin only.
    let (_, bundle) = run(&west, query(typed.clone(), vec![json!({"name": "count", "valueInteger": 5})])).await;
    assert_eq!(bundle["total"], 1);
    assert_eq!(bundle["entry"][0]["resource"]["id"], west_twin.as_str());

    // Errors name the parameter and the rule.
    let (status, oo) = run(&east, json!({"resourceType": "Parameters", "parameter": []}).to_string()).await;
    assert_eq!(status, 400);
    assert_eq!(oo["issue"][0]["expression"][0], "Parameters.parameter[resource]", "{oo}");
    let (status, oo) = run(&east, query(typed.clone(), vec![json!({"name": "count", "valueInteger": 0})])).await;
    assert_eq!(status, 400);
    assert!(oo["issue"][0]["diagnostics"].as_str().unwrap().contains("1 to 100"), "{oo}");
    let (status, oo) = run(&east, query(json!({"resourceType": "Observation"}), vec![])).await;
    assert_eq!(status, 400);
    assert!(oo["issue"][0]["diagnostics"].as_str().unwrap().contains("must be a Patient"), "{oo}");
    // No Patient search, no $match.
    let lab = app.client_with("system/Observation.rs", "campus-east", None).await;
    assert_eq!(run(&lab, query(typed, vec![])).await.0, 403);
}

/// Merge from the patient page: every resource of the retired record, at every
/// campus, points at the survivor afterwards (history keeps the earlier versions);
/// unmerge puts everything back; link keeps both records. Audited as the registrar's.
#[tokio::test]
async fn merge_repoints_every_campus_and_unmerge_restores() {
    use serde_json::{Value, json};
    let clock = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    let east = app.client_with("system/*.cruds", "campus-east", None).await;
    let west = app.client_with("system/*.cruds", "campus-west", None).await;
    let post = |c: &reqwest::Client, v: Value| {
        let (c, url) = (c.clone(), app.url(&format!("/fhir/{}", v["resourceType"].as_str().unwrap())));
        async move {
            let r =
                c.post(url).header("content-type", "application/fhir+json").body(v.to_string()).send().await.unwrap();
            assert_eq!(r.status(), 201);
            r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
        }
    };
    let patient = |name: &str, mrn: &str| {
        json!({"resourceType": "Patient", "active": true, "gender": "female", "birthDate": "1990-01-01",
               "name": [{"text": name}], "telecom": [{"system": "phone", "value": "13800138000"}],
               "identifier": [{"system": "urn:lianyi:sid:mrn:campus-east", "value": mrn}]})
    };
    let keep = post(&east, patient("张珊", "E1000001")).await;
    let dup = post(&east, patient("张山", "E1000002")).await;
    let obs = post(&west, json!({"resourceType": "Observation", "status": "final", "code": {"text": "K"},
                                 "subject": {"reference": format!("Patient/{dup}")}, "valueQuantity": {"value": 4.1, "unit": "mmol/L"}}))
    .await;
    let enc = post(
        &east,
        json!({"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"},
                                 "subject": {"reference": format!("Patient/{dup}")}}),
    )
    .await;

    let (mut registrar, _) = logged_in(&app, &clock, "reg.east", "registrar", "campus-east", None).await;
    // Looking at a record reads no other records; the index is searched on request.
    let (_, _, page) = registrar.get(&format!("/patients/{keep}")).await;
    assert!(!page.contains("id=\"index-duplicates\"") && page.contains("id=\"find-duplicates\""), "{page}");
    let (_, _, page) = registrar.get(&format!("/patients/{keep}?duplicates=1")).await;
    let table = between(&page, "id=\"index-duplicates\"", "</table>");
    assert!(table.contains(&format!("data-patient=\"{dup}\"")) && table.contains("姓名同音"), "{table}");
    let token = csrf(&page);

    // A doctor may not merge; a record does not merge with itself.
    let (mut doctor, doctor_token) = logged_in(&app, &clock, "dr.east", "doctor", "campus-east", None).await;
    let (s, _, _) = doctor.post(&format!("/patients/{keep}/merge"), &[("csrf", &doctor_token), ("other", &dup)]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, loc, _) = registrar.post(&format!("/patients/{keep}/merge"), &[("csrf", &token), ("other", &keep)]).await;
    assert!(loc.ends_with("?error=same-record"), "{loc}");

    let (s, loc, _) = registrar.post(&format!("/patients/{keep}/merge"), &[("csrf", &token), ("other", &dup)]).await;
    assert_eq!((s, loc.as_str()), (StatusCode::SEE_OTHER, format!("/patients/{keep}?done=merged").as_str()));
    let app = &app;
    let read = |path: String| async move { app.get(&path).await.json::<Value>().await.unwrap() };
    let o = read(format!("/fhir/Observation/{obs}")).await;
    assert_eq!(o["subject"]["reference"], format!("Patient/{keep}"), "the west campus's result moved too");
    assert_eq!(o["meta"]["versionId"], "2");
    let o1 = read(format!("/fhir/Observation/{obs}/_history/1")).await;
    assert_eq!(o1["subject"]["reference"], format!("Patient/{dup}"), "history keeps the earlier version");
    assert_eq!(read(format!("/fhir/Encounter/{enc}")).await["subject"]["reference"], format!("Patient/{keep}"));
    let retired = read(format!("/fhir/Patient/{dup}")).await;
    assert_eq!(retired["active"], false);
    assert_eq!(retired["link"][0], json!({"other": {"reference": format!("Patient/{keep}")}, "type": "replaced-by"}));
    let survivor = read(format!("/fhir/Patient/{keep}")).await;
    assert_eq!(survivor["link"][0]["type"], "replaces");
    assert!(survivor["identifier"].as_array().unwrap().iter().any(|i| i["value"] == "E1000002" && i["use"] == "old"));
    assert_eq!(app.total(&format!("/fhir/Provenance?entity=Patient/{dup}")).await, 1);
    assert_eq!(app.total(&format!("/fhir/Observation?subject=Patient/{keep}")).await, 1);
    let (_, _, page) = registrar.get(&format!("/patients/{dup}")).await;
    assert!(between(&page, "id=\"merged-into\"", "</div>").contains(&format!("/patients/{keep}")), "{page}");
    let (_, loc, _) = registrar.post(&format!("/patients/{keep}/merge"), &[("csrf", &token), ("other", &dup)]).await;
    assert!(loc.ends_with("?error=already-merged"), "{loc}");

    // Unmerge: everything back where it was.
    let (_, loc, _) = registrar.post(&format!("/patients/{dup}/unmerge"), &[("csrf", &token)]).await;
    assert!(loc.ends_with("?done=unmerged"), "{loc}");
    let o = read(format!("/fhir/Observation/{obs}")).await;
    assert_eq!(
        (o["subject"]["reference"].as_str(), o["meta"]["versionId"].as_str()),
        (Some(format!("Patient/{dup}").as_str()), Some("3"))
    );
    assert_eq!(read(format!("/fhir/Encounter/{enc}")).await["subject"]["reference"], format!("Patient/{dup}"));
    let retired = read(format!("/fhir/Patient/{dup}")).await;
    assert_eq!((retired["active"].clone(), retired.get("link").is_none()), (json!(true), true));
    let survivor = read(format!("/fhir/Patient/{keep}")).await;
    assert!(survivor.get("link").is_none());
    assert!(!survivor["identifier"].as_array().unwrap().iter().any(|i| i["value"] == "E1000002"));

    // Link: both kept, pointing at each other.
    let (_, loc, _) = registrar.post(&format!("/patients/{keep}/link"), &[("csrf", &token), ("other", &dup)]).await;
    assert!(loc.ends_with("?done=linked"), "{loc}");
    assert_eq!(read(format!("/fhir/Patient/{keep}")).await["link"][0]["type"], "seealso");
    assert_eq!(read(format!("/fhir/Patient/{dup}")).await["link"][0]["other"]["reference"], format!("Patient/{keep}"));

    let query =
        lianyi_store::audit::AuditQuery { actor: Some("user:reg.east".into()), limit: 1000, ..Default::default() };
    let actions: Vec<String> =
        app.store.audit_records(&query).await.unwrap().into_iter().map(|r| r.entry.action).collect();
    for a in ["patient-merge", "patient-unmerge", "patient-link"] {
        assert!(actions.iter().any(|x| x == a), "{a} not audited: {actions:?}");
    }
}

/// One rule per door: a resident ID number whose check character is wrong is refused
/// by the FHIR API (422 naming the identifier), a transaction, `$import` (the line is
/// rejected) and the HL7 listener (AE with ERR at PID-3), and nothing is stored.
#[tokio::test]
async fn a_bad_resident_id_is_refused_on_every_door() {
    use serde_json::json;
    let app = crate::helpers::spawn_app().await;
    let bad = "110105194912310021"; // the GB 11643 example with its last character changed
    let patient = json!({"resourceType": "Patient", "identifier": [
        {"system": "urn:lianyi:sid:mrn:campus-east", "value": "E-RULE"},
        {"system": "urn:lianyi:sid:resident-id", "value": bad}]});
    let r = app.post("/fhir/Patient", &patient).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (code, at, text) = crate::helpers::outcome(r).await;
    assert_eq!((code.as_str(), at.as_str()), ("business-rule", "Patient.identifier[1]"));
    assert!(text.contains("check character") && text.contains("ISO 7064"), "{text}");
    let bundle = json!({"resourceType": "Bundle", "type": "transaction",
        "entry": [{"resource": patient, "request": {"method": "POST", "url": "Patient"}}]});
    let r = app.post("/fhir", &bundle).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (_, at, _) = crate::helpers::outcome(r).await;
    assert!(at.ends_with("Patient.identifier[1]"), "{at}");
    // A birth date that disagrees with a valid number is refused the same way.
    let mismatch = json!({"resourceType": "Patient", "birthDate": "1950-01-01",
        "identifier": [{"system": "urn:lianyi:sid:resident-id", "value": "11010519491231002X"}]});
    let (_, at, _) = crate::helpers::outcome(app.post("/fhir/Patient", &mismatch).await).await;
    assert_eq!(at, "Patient.birthDate");

    let ndjson = format!(
        "{}\n{{\"resourceType\":\"Patient\",\"id\":\"rule-ok\"}}\n",
        json!({"resourceType": "Patient", "id": "rule-bad", "identifier": [{"system": "urn:lianyi:sid:resident-id", "value": bad}]})
    );
    let r = app
        .client
        .post(app.url("/fhir/$import"))
        .header("content-type", "application/fhir+ndjson")
        .body(ndjson)
        .send()
        .await
        .unwrap();
    let oo: serde_json::Value = r.json().await.unwrap();
    assert!(oo["issue"][0]["diagnostics"].as_str().unwrap().contains("rejected 1"), "{oo}");
    assert_eq!(oo["issue"][1]["expression"][0], "line 1");
    assert!(oo["issue"][1]["diagnostics"].as_str().unwrap().contains("Patient.identifier[0]"), "{oo}");

    let inbound = lianyi_interop::Inbound::new(app.fhir.clone(), "rule-test", "campus-east", "+08:00");
    let a04 = format!(
        "MSH|^~\\&|HIS|EAST|LIANYI|GROUP|20261122||ADT^A04|RULE1|P|2.5.1\rPID|1||E-RULE^^^EAST^MR~{bad}^^^CHN^NNCHN||王^五||19491231|F\r"
    );
    let (ack, outcome) = inbound.receive(a04.as_bytes(), None).await;
    let ack = String::from_utf8(ack).unwrap();
    assert_eq!(outcome, lianyi_interop::inbound::Outcome::Error, "{ack}");
    assert!(ack.contains("\rERR|PID^1^3^102&") && ack.contains("|PID^1^3^2|"), "ERR names PID-3 repetition 2: {ack}");
    assert!(ack.contains("ISO 7064"), "{ack}");
    assert_eq!(app.total("/fhir/Patient?identifier=E-RULE").await, 0, "nothing stored");
    assert_eq!(app.total("/fhir/Patient?_id=rule-bad").await, 0);
}

/// The scheduling and prescribing rules the pages keep hold on the FHIR API too: a new
/// Appointment on a busy Slot, and a prescription with a blocking drug-safety finding
/// and no documented override, are refused with 422 naming the element and the rule.
#[tokio::test]
async fn booking_and_prescribing_rules_hold_on_the_api_too() {
    use serde_json::json;
    let app = crate::helpers::spawn_app().await;
    let patient = app.create(&json!({"resourceType": "Patient", "name": [{"text": "规则 测试"}]})).await;
    let subject = json!({"reference": format!("Patient/{patient}")});
    let schedule = app
        .create(&json!({"resourceType": "Schedule", "active": true, "actor": [{"reference": "Practitioner/dr-rule"}]}))
        .await;
    let slot = |status: &str| {
        json!({"resourceType": "Slot", "schedule": {"reference": format!("Schedule/{schedule}")}, "status": status,
               "start": "2026-12-07T09:00:00+08:00", "end": "2026-12-07T09:10:00+08:00"})
    };
    let busy = app.create(&slot("busy")).await;
    let free = app.create(&slot("free")).await;
    let appointment = |slot: &str| {
        json!({"resourceType": "Appointment", "status": "booked", "slot": [{"reference": format!("Slot/{slot}")}],
               "participant": [{"actor": subject.clone(), "status": "accepted"}]})
    };
    let r = app.post("/fhir/Appointment", &appointment(&busy)).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (code, at, text) = crate::helpers::outcome(r).await;
    assert_eq!((code.as_str(), at.as_str()), ("business-rule", "Appointment.slot[0]"));
    assert!(text.contains(&format!("Slot/{busy} is busy")) && text.contains("free slot"), "{text}");
    // In a transaction too, at the entry that breaks it.
    let bundle = json!({"resourceType": "Bundle", "type": "transaction",
        "entry": [{"resource": appointment(&busy), "request": {"method": "POST", "url": "Appointment"}}]});
    let (_, at, _) = crate::helpers::outcome(app.post("/fhir", &bundle).await).await;
    assert_eq!(at, "Bundle.entry[0].resource: Appointment.slot[0]");
    assert_eq!(app.total("/fhir/Appointment").await, 0, "nothing stored");
    // A free slot is booked, and marked busy in the same transaction as the pages do.
    let mut taken = slot("busy");
    taken["id"] = json!(free);
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": taken, "request": {"method": "PUT", "url": format!("Slot/{free}")}},
        {"resource": appointment(&free), "request": {"method": "POST", "url": "Appointment"}}]});
    assert_eq!(app.post("/fhir", &bundle).await.status(), StatusCode::OK);
    assert_eq!(app.post("/fhir/Appointment", &appointment(&free)).await.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Penicillin allergy, then amoxicillin (a penicillin) through the API.
    app.create(&json!({"resourceType": "AllergyIntolerance", "patient": subject.clone(),
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
        "code": {"text": "青霉素"}}))
        .await;
    let prescription = json!({"resourceType": "MedicationRequest", "status": "active", "intent": "order",
        "subject": subject.clone(),
        "medicationCodeableConcept": {"coding": [{"system": "urn:lianyi:drug", "code": "AMOX500"}]},
        "dosageInstruction": [{"timing": {"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}},
                               "doseAndRate": [{"doseQuantity": {"value": 500, "unit": "mg"}}]}]});
    let r = app.post("/fhir/MedicationRequest", &prescription).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (code, at, text) = crate::helpers::outcome(r).await;
    assert_eq!((code.as_str(), at.as_str()), ("business-rule", "MedicationRequest.medicationCodeableConcept"));
    assert!(text.contains("allergic") && text.contains("override"), "{text}");
    assert_eq!(app.total("/fhir/MedicationRequest").await, 0);
    // With the override documented (a DetectedIssue with its reason), it is written.
    let issue = app
        .create(&json!({"resourceType": "DetectedIssue", "status": "final", "patient": subject.clone(),
            "mitigation": [{"action": {"text": "override: skin test negative, observed 30 min"}}]}))
        .await;
    let mut overridden = prescription.clone();
    overridden["detectedIssue"] = json!([{"reference": format!("DetectedIssue/{issue}")}]);
    assert_eq!(app.post("/fhir/MedicationRequest", &overridden).await.status(), StatusCode::CREATED);
    // A drug with no finding needs nothing.
    let mut safe = prescription.clone();
    safe["medicationCodeableConcept"]["coding"][0]["code"] = json!("AZIT250");
    safe["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = json!(500);
    safe["dosageInstruction"][0]["timing"]["repeat"]["frequency"] = json!(1);
    assert_eq!(app.post("/fhir/MedicationRequest", &safe).await.status(), StatusCode::CREATED);
}

/// Finding a patient from the header: by name in characters or pinyin, MRN and
/// phone; a registrar sees only the records of their campuses, a doctor who may
/// break the glass also sees the others, marked, with break-the-glass prefilled.
#[tokio::test]
async fn staff_find_patients_by_name_pinyin_mrn_and_phone_within_their_campuses() {
    use serde_json::json;
    let clock = lianyi_security::ManualClock::new(1_800_000_000_000);
    let app = crate::helpers::spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    for (campus, mrn, phone) in [("campus-east", "E1000001", "13800138000"), ("campus-west", "W1000001", "13900139000")]
    {
        let client = app.client_with("system/*.cruds", campus, None).await;
        let patient = json!({"resourceType": "Patient", "gender": "male", "birthDate": "1980-03-01",
            "name": [{"text": "王伟", "family": "王", "given": ["伟"]},
                     {"text": "Wang Wei", "family": "Wang", "given": ["Wei"],
                      "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation", "valueCode": "ABC"}]}],
            "telecom": [{"system": "phone", "value": phone}],
            "identifier": [{"system": format!("urn:lianyi:sid:mrn:{campus}"), "value": mrn}]});
        let r = client
            .post(app.url("/fhir/Patient"))
            .header("content-type", "application/fhir+json")
            .body(patient.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    }
    let (mut registrar, _) = crate::pages::logged_in(&app, &clock, "reg.find", "registrar", "campus-east", None).await;
    let (_, _, page) = registrar.get("/registration").await;
    assert!(page.contains("id=\"header-find\""), "the header carries the patient search");
    for q in ["王伟", "wang", "Wang%20Wei", "ww", "wangw", "wei", "E1000001", "138-0013-8000"] {
        let (status, _, html) = registrar.get(&format!("/patients?q={q}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(html.matches("data-patient=").count(), 1, "{q}: one record of the east campus\n{html}");
        assert!(html.contains("E1000001") && !html.contains("W1000001"), "{q}");
    }
    let (_, _, none) = registrar.get("/patients?q=W1000001").await;
    assert!(none.contains("id=\"find-none\""), "a record of another campus is not shown to a registrar");

    let (mut doctor, _) = crate::pages::logged_in(&app, &clock, "dr.find", "doctor", "campus-east", None).await;
    let (_, _, html) = doctor.get("/patients?q=%E7%8E%8B%E4%BC%9F").await;
    assert_eq!(html.matches("data-patient=").count(), 2, "{html}");
    let west = html.split("class=\"elsewhere\"").count() - 1;
    assert_eq!(west, 1, "the west record is marked as outside the doctor's campuses");
    let id = html.split("/break-glass?patient=").nth(1).and_then(|s| s.split('"').next()).unwrap().to_string();
    let (_, _, form) = doctor.get(&format!("/break-glass?patient={id}")).await;
    assert!(form.contains(&format!("value=\"{id}\"")), "break-the-glass starts from the search");
    // Each search is an audited read of what it showed.
    let audit = app
        .fhir
        .audit_review(
            &lianyi_security::Caller::task(lianyi_security::SystemTask::Operator("test".into())),
            &lianyi_store::audit::AuditQuery { actor: Some("user:reg.find".into()), limit: 100, ..Default::default() },
        )
        .await
        .unwrap();
    assert!(audit.iter().any(|r| r.entry.action == "search" && r.entry.patient.is_some()), "searches are audited");
}
