//! Results entered on the laboratory's page (flags, one transaction, the critical-value
//! loop), trend charts, SOAP notes, and the patient's record across campuses.

use lianyi_security::ManualClock;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::spawn_app_clocked;
use crate::pages::{between, logged_in};

const MONDAY_0830: i64 = 1_795_393_800_000;

#[tokio::test]
async fn results_flags_trends_notes_and_the_record_across_campuses() {
    let clock = ManualClock::new(MONDAY_0830);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    let east = app.client_with("system/*.cruds", "campus-east", None).await;
    let west = app.client_with("system/*.cruds", "campus-west", None).await;
    let put = |c: &reqwest::Client, v: Value| {
        let c = c.clone();
        let url = app.url(&format!("/fhir/{}/{}", v["resourceType"].as_str().unwrap(), v["id"].as_str().unwrap()));
        async move {
            let r =
                c.put(url).header("content-type", "application/fhir+json").body(v.to_string()).send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        }
    };
    put(
        &east,
        json!({"resourceType": "Organization", "id": "campus-east", "name": "东院区", "alias": ["East Campus"]}),
    )
    .await;
    put(
        &east,
        json!({"resourceType": "Organization", "id": "campus-west", "name": "西院区", "alias": ["West Campus"]}),
    )
    .await;
    // p1 was registered at the east campus and later at the west one; p3 only at the east.
    put(
        &east,
        json!({"resourceType": "Patient", "id": "p1", "name": [{"text": "王芳"}], "gender": "female",
               "identifier": [{"system": "urn:lianyi:sid:mrn:campus-east", "value": "E100001"},
                              {"system": "urn:lianyi:sid:mrn:campus-west", "value": "W100001"}]}),
    )
    .await;
    put(
        &east,
        json!({"resourceType": "Patient", "id": "p3", "name": [{"text": "赵六"}], "gender": "male",
               "identifier": [{"system": "urn:lianyi:sid:mrn:campus-east", "value": "E100003"}]}),
    )
    .await;
    // Last month's visit at the west campus, with its diagnosis.
    put(
        &west,
        json!({"resourceType": "Encounter", "id": "e-west", "status": "finished", "class": {"code": "AMB"},
               "type": [{"text": "门诊"}], "subject": {"reference": "Patient/p1"},
               "period": {"start": "2026-10-12T09:00:00+08:00"}}),
    )
    .await;
    put(
        &west,
        json!({"resourceType": "Condition", "id": "c-west", "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"}], "text": "2型糖尿病"},
               "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e-west"},
               "recordedDate": "2026-10-12T09:20:00+08:00"}),
    )
    .await;
    put(
        &east,
        json!({"resourceType": "Encounter", "id": "e1", "status": "in-progress", "class": {"code": "AMB"},
               "subject": {"reference": "Patient/p1"}, "period": {"start": "2026-11-23T08:30:00+08:00"}}),
    )
    .await;

    // htmx is the vendored file: what is served hashes to the integrity every page names.
    let (mut doctor, token) = logged_in(&app, &clock, "dr.li", "doctor", "campus-east", None).await;
    let js = doctor.http.get(format!("{}/static/htmx.min.js", app.base)).send().await.unwrap().bytes().await.unwrap();
    use base64::Engine as _;
    use sha2::Digest as _;
    let served = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&js));
    assert_eq!(served, "1v3HXyBOa976mbab8ebUrGm4o2T3eSn0XBNHa0AA9xc=", "static/vendor/README.md names this hash");
    let (_, _, page) = doctor.get("/encounters/e1").await;
    assert!(page.contains(&format!("src=\"/static/htmx.min.js\" integrity=\"sha256-{served}\"")), "{page}");
    // The ICD-10 matches as the doctor types: a fragment, not a page.
    let (status, _, fragment) = doctor.get("/encounters/e1/icd?icd=%E9%AB%98%E8%A1%80%E5%8E%8B").await;
    assert_eq!(status, StatusCode::OK);
    assert!(fragment.contains("data-code=\"I10\"") && !fragment.contains("<html"), "{fragment}");

    // The doctor requests a basic metabolic panel (stat) and a potassium (routine).
    for (item, priority) in [("LAB-K", "routine"), ("LAB-BMP", "stat")] {
        let (_, back, _) = doctor
            .post("/encounters/e1/orders", &[("csrf", token.as_str()), ("item", item), ("priority", priority)])
            .await;
        assert_eq!(back, "/encounters/e1?done=ordered");
    }

    // The laboratory's worklist: stat first, with the patient's name.
    let (mut lab, lab_token) = logged_in(&app, &clock, "lab.wu", "lab-technician", "campus-east", None).await;
    let (status, _, page) = lab.get("/results").await;
    assert_eq!(status, StatusCode::OK);
    let list = between(&page, "id=\"worklist\"", "</table>");
    assert!(list.find("LY00000002").unwrap() < list.find("LY00000001").unwrap(), "stat first: {list}");
    assert!(list.contains("王芳") && list.contains("基础代谢组合"), "{list}");
    assert!(page.contains("href=\"/results\""), "the navigation offers the worklist");
    let bmp = between(between(list, "data-placer=\"LY00000002\"", "</tr>"), "href=\"/results/", "\"").to_string();
    let (_, _, form) = lab.get(&format!("/results/{bmp}")).await;
    assert!(form.contains("name=\"v-2823-3\"") && form.contains("name=\"v-14682-9\""), "{form}");
    assert!(form.contains("<td>41–73</td>"), "the creatinine interval for women: {form}");

    // A value that is not a number: refused with the item named; nothing stored.
    let (status, _, page) = lab
        .post(&format!("/results/{bmp}"), &[("csrf", lab_token.as_str()), ("v-2951-2", "139"), ("v-2823-3", "6,2x")])
        .await;
    assert_eq!(status, StatusCode::OK);
    let errors = between(&page, "id=\"result-errors\"", "</div>");
    assert!(errors.contains("结果必须是数字（0 或以上）: 血钾 — “6,2x”"), "{errors}");
    assert!(page.contains("value=\"139\""), "what was typed is kept");
    let reports = app.get("/fhir/DiagnosticReport?_summary=count").await.json::<Value>().await.unwrap();
    assert_eq!(reports["total"], 0, "nothing half-written");

    // The results: sodium normal, potassium critical, creatinine high for a woman.
    let (status, loc, _) = lab
        .post(
            &format!("/results/{bmp}"),
            &[
                ("csrf", lab_token.as_str()),
                ("v-2951-2", "139"),
                ("v-2823-3", "6.2"),
                ("v-14682-9", "80"),
                ("v-2345-7", ""),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let report_id = loc.strip_prefix("/results?done=").expect("back to the worklist").to_string();
    let report = app.get(&format!("/fhir/DiagnosticReport/{report_id}")).await.json::<Value>().await.unwrap();
    assert_eq!((report["status"].as_str(), report["result"].as_array().unwrap().len()), (Some("final"), 3));
    assert_eq!(report["basedOn"][0]["reference"], format!("ServiceRequest/{bmp}"));
    let sr = app.get(&format!("/fhir/ServiceRequest/{bmp}")).await.json::<Value>().await.unwrap();
    assert_eq!(sr["status"], "completed");
    let obs = app.get("/fhir/Observation?patient=Patient/p1&_count=20").await.json::<Value>().await.unwrap();
    let flags: Vec<(String, String)> = obs["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let o = &e["resource"];
            (
                o["code"]["coding"][0]["code"].as_str().unwrap().to_string(),
                o["interpretation"][0]["coding"][0]["code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for expected in [("2951-2", "N"), ("2823-3", "HH"), ("14682-9", "H")] {
        assert!(flags.contains(&(expected.0.to_string(), expected.1.to_string())), "{flags:?}");
    }
    let (_, _, page) = lab.get("/results").await;
    assert!(!page.contains("LY00000002"), "reported: off the worklist");
    // Reporting twice is refused.
    let (_, _, page) = lab.post(&format!("/results/{bmp}"), &[("csrf", lab_token.as_str()), ("v-2951-2", "140")]).await;
    assert!(page.contains("该申请已不在待处理状态"), "{page}");

    // The critical potassium entered on the page reaches the ordering doctor.
    let started = std::time::Instant::now();
    loop {
        let (_, _, bar) = doctor.get("/alerts").await;
        if bar.contains("血钾 6.2 mmol/L") {
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "no alert: {bar}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // Ten minutes later the routine potassium (a repeat): back to normal.
    clock.advance(10 * 60_000);
    let (_, _, page) = lab.get("/results").await;
    let k = between(between(&page, "data-placer=\"LY00000001\"", "</tr>"), "href=\"/results/", "\"").to_string();
    lab.post(&format!("/results/{k}"), &[("csrf", lab_token.as_str()), ("v-2823-3", "4.1")]).await;

    // The doctor's workspace: newest result per test with flags, linking to the trend.
    let (_, _, page) = doctor.get("/encounters/e1").await;
    let latest = between(&page, "id=\"latest-results\"", "</table>");
    let k_row = between(latest, "data-loinc=\"2823-3\"", "</tr>");
    assert!(k_row.contains("4.1 mmol/L") && !k_row.contains("flag-"), "{k_row}");
    let cr_row = between(latest, "data-loinc=\"14682-9\"", "</tr>");
    assert!(cr_row.contains("80 umol/L") && cr_row.contains("flag-H") && cr_row.contains("偏高"), "{cr_row}");
    let (status, _, trend) = doctor.get("/patients/p1/trends/2823-3").await;
    assert_eq!(status, StatusCode::OK);
    let svg = between(&trend, "<svg", "</svg>");
    assert_eq!(svg.matches("<circle").count(), 2, "{svg}");
    assert!(svg.contains("flag-HH") && svg.contains("ref-band") && svg.contains("critical-limit"), "{svg}");
    let values = between(&trend, "id=\"trend-values\"", "</table>");
    assert!(values.find("4.1 mmol/L").unwrap() < values.find("6.2 mmol/L").unwrap(), "newest first: {values}");
    assert!(values.contains("危急高值"), "{values}");

    // The record across campuses: the west visit and its diagnosis are on the east
    // doctor's page, named with their campus.
    let timeline = between(&page, "id=\"timeline\"", "</table>");
    assert!(timeline.contains("2026-10-12 09:00") && timeline.contains("E11.9 2型糖尿病"), "{timeline}");
    assert!(timeline.contains("西院区") && timeline.contains("东院区"), "{timeline}");
    assert!(!timeline.contains("href=\"/encounters/e-west\""), "no link to pages of a campus not the doctor's");
    assert!(timeline.contains("href=\"/encounters/e1\""), "{timeline}");
    // Each of those reads is the doctor's, in the audit log.
    let query = lianyi_store::audit::AuditQuery { actor: Some("user:dr.li".into()), limit: 500, ..Default::default() };
    let reads = app.store.audit_records(&query).await.unwrap();
    assert!(
        reads.iter().any(|r| r.entry.action == "search" && r.entry.resource_type.as_deref() == Some("Encounter")),
        "the timeline's searches are audited as the doctor's"
    );
    // A patient with no MRN at the west campus stays closed to a west doctor.
    let (mut west_doctor, _) = logged_in(&app, &clock, "dr.xi", "doctor", "campus-west", None).await;
    let (status, _, _) = west_doctor.get("/patients/p3/trends/2823-3").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The west registrar finds p3 in the group's index and registers them here too:
    // a west MRN on the one record, which opens it to the west doctor.
    let (mut west_registrar, west_token) = logged_in(&app, &clock, "reg.xi", "registrar", "campus-west", None).await;
    let (status, _, page) = west_registrar.get("/patients/p3").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"elsewhere\"") && page.contains("赵六"), "{page}");
    assert!(!page.contains("id=\"book-appointment\"") && !page.contains("id=\"timeline\""), "only who it is");
    let (_, loc, _) = west_registrar.post("/patients/p3/register-here", &[("csrf", west_token.as_str())]).await;
    assert_eq!(loc, "/patients/p3?done=registered-here");
    let p3 = app.get("/fhir/Patient/p3").await.json::<Value>().await.unwrap();
    let mrns: Vec<&str> = p3["identifier"].as_array().unwrap().iter().map(|i| i["value"].as_str().unwrap()).collect();
    assert_eq!(mrns, ["E100003", "W2000000"], "one record, an MRN per campus");
    let (_, _, page) = west_registrar.get(&loc).await;
    assert!(!page.contains("id=\"elsewhere\"") && page.contains("W2000000"), "{page}");
    let (status, _, _) = west_doctor.get("/patients/p3/trends/2823-3").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, page) = west_doctor.get("/patients/p1/trends/2823-3").await;
    assert_eq!(status, StatusCode::OK, "p1 is a west patient too");
    assert!(page.contains("6.2 mmol/L"), "results from the east campus");

    // Notes: an empty note comes back with the rule; a SOAP note is stored as a
    // Composition with LOINC-coded sections and shown escaped.
    let (status, _, page) = doctor.post("/encounters/e1/notes", &[("csrf", token.as_str()), ("text", "  ")]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("请填写 SOAP 各项或自由文本记录"), "{page}");
    let (_, loc, _) = doctor
        .post(
            "/encounters/e1/notes",
            &[
                ("csrf", token.as_str()),
                ("subjective", "乏力 3 天 <b>"),
                ("objective", "BP 150/95 mmHg"),
                ("assessment", "高钾血症，已复查正常"),
                ("plan", "两周后复查肾功能"),
            ],
        )
        .await;
    assert_eq!(loc, "/encounters/e1?done=note");
    let (_, _, page) = doctor.get(&loc).await;
    let notes = between(&page, "id=\"notes\"", "</div>");
    assert!(notes.contains("乏力 3 天 &#60;b&#62;") && notes.contains("两周后复查肾功能"), "{notes}");
    let c = app.get("/fhir/Composition?encounter=Encounter/e1").await.json::<Value>().await.unwrap();
    let note = &c["entry"][0]["resource"];
    let codes: Vec<&str> =
        note["section"].as_array().unwrap().iter().map(|s| s["code"]["coding"][0]["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["61150-9", "61149-1", "51848-0", "18776-5"]);
    assert_eq!(note["author"][0]["identifier"]["value"], "dr.li");
    assert!(note["section"][0]["text"]["div"].as_str().unwrap().contains("&lt;b&gt;"));
}
