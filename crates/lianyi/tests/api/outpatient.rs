//! The outpatient day over the pages: a doctor's weekly template makes slots, the
//! registrar books one for a patient (a second booking of the same slot is refused),
//! checks the patient in (queue numbers in arrival order), cancels another booking
//! (its slot is free again); the doctor calls the queue in order.

use lianyi_clinical::scheduling::{Scheduling, Session};
use lianyi_security::{Caller, ManualClock};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::spawn_app_clocked;
use crate::pages::{between, csrf, logged_in};

/// Monday 23 November 2026, 08:30 in Beijing.
const MONDAY_0830: i64 = 1_795_393_800_000;

#[tokio::test]
async fn book_check_in_queue_and_call_next() {
    let clock = ManualClock::new(MONDAY_0830);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    let east = app.client_with("system/*.cruds", "campus-east", None).await;
    let put = |v: Value| {
        let c = east.clone();
        let url = app.url(&format!("/fhir/{}/{}", v["resourceType"].as_str().unwrap(), v["id"].as_str().unwrap()));
        async move {
            let r =
                c.put(url).header("content-type", "application/fhir+json").body(v.to_string()).send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        }
    };
    put(json!({"resourceType": "Organization", "id": "campus-east", "name": "东院区", "alias": ["East Campus"]})).await;
    put(json!({"resourceType": "Organization", "id": "east-im", "name": "内科", "alias": ["Internal Medicine"],
               "partOf": {"reference": "Organization/campus-east"}}))
    .await;
    put(json!({"resourceType": "Practitioner", "id": "dr-li", "name": [{"text": "李明", "family": "李", "given": ["明"]}]})).await;
    put(
        json!({"resourceType": "PractitionerRole", "id": "role-li", "practitioner": {"reference": "Practitioner/dr-li"},
               "organization": {"reference": "Organization/east-im"}}),
    )
    .await;
    for (id, name) in [("p1", "张三"), ("p2", "李四")] {
        put(json!({"resourceType": "Patient", "id": id, "name": [{"text": name}], "gender": "male", "birthDate": "1980-01-01"}))
            .await;
    }
    let scheduling = Scheduling::new(app.fhir.clone());
    let system = Caller::task(lianyi_security::SystemTask::Operator("test setup".into()));
    let schedule = scheduling
        .set_template(
            &system,
            "role-li",
            &[Session { weekday: 1, start: "08:00".into(), end: "10:00".into(), slot_minutes: 30 }],
        )
        .await
        .unwrap();
    assert_eq!(scheduling.generate_slots(&system, &schedule, "2026-11-23", 7).await.unwrap(), 4, "Monday only");
    assert_eq!(scheduling.generate_slots(&system, &schedule, "2026-11-23", 7).await.unwrap(), 0, "kept, not doubled");

    let (mut registrar, _) = logged_in(&app, &clock, "reg.east", "registrar", "campus-east", None).await;
    let (status, _, page) = registrar.get("/scheduling?patient=p1&dept=east-im&date=2026-11-23").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("李明") && page.contains(">08:00<") && page.contains(">09:30<"), "{page}");
    let token = csrf(&page);
    let first_slot = between(&page, "data-slot=\"", "\"").to_string();
    let back = "dept=east-im&date=2026-11-23&patient=p1";
    let (_, loc, _) = registrar
        .post("/scheduling/book", &[("csrf", &token), ("slot", &first_slot), ("patient", "p1"), ("back", back)])
        .await;
    assert_eq!(loc, "/patients/p1?done=booked");
    // The same slot again: refused, nothing booked twice.
    let (_, loc, _) = registrar
        .post("/scheduling/book", &[("csrf", &token), ("slot", &first_slot), ("patient", "p2"), ("back", back)])
        .await;
    assert!(loc.ends_with("&error=taken"), "{loc}");
    let (_, _, page) = registrar.get(&loc).await;
    assert!(!page.contains(&format!("data-slot=\"{first_slot}\"")), "the booked slot is no longer offered");
    let second_slot = between(&page, "data-slot=\"", "\"").to_string();
    registrar
        .post("/scheduling/book", &[("csrf", &token), ("slot", &second_slot), ("patient", "p2"), ("back", back)])
        .await;

    // Check-in is on the day: a booking for next Monday is refused today.
    assert_eq!(scheduling.generate_slots(&system, &schedule, "2026-11-30", 1).await.unwrap(), 4);
    let next_week = scheduling.free_slots(&system, std::slice::from_ref(&schedule), "2026-11-30").await.unwrap();
    let later = scheduling.book(&system, &next_week[0].id, "p1").await.unwrap();
    let (_, loc, _) =
        registrar.post(&format!("/appointments/{later}/check-in"), &[("csrf", &token), ("patient", "p1")]).await;
    assert_eq!(loc, "/patients/p1?error=not-today");
    let (_, _, page) = registrar.get(&loc).await;
    assert!(page.contains("仅可在预约当天签到"), "{page}");
    scheduling.cancel(&system, &later, "test").await.unwrap();

    // p2 arrives first: number 1; then p1: number 2.
    for (patient, number) in [("p2", "1"), ("p1", "2")] {
        let (_, _, page) = registrar.get(&format!("/patients/{patient}")).await;
        let appointment =
            between(between(&page, "id=\"appointments\"", "</table>"), "data-appointment=\"", "\"").to_string();
        let (_, loc, _) = registrar
            .post(&format!("/appointments/{appointment}/check-in"), &[("csrf", &token), ("patient", patient)])
            .await;
        assert_eq!(loc, format!("/patients/{patient}?done=checked-in&queue={number}"));
        let (_, _, page) = registrar.get(&loc).await;
        assert!(page.contains(&format!("候诊序号：{number}")) && page.contains("已签到"), "{page}");
    }

    // A booking cancelled frees its slot.
    let (_, _, page) = registrar.get("/scheduling?patient=p1&dept=east-im&date=2026-11-23").await;
    let third = between(&page, "data-slot=\"", "\"").to_string();
    registrar.post("/scheduling/book", &[("csrf", &token), ("slot", &third), ("patient", "p1"), ("back", back)]).await;
    let (_, _, page) = registrar.get("/patients/p1").await;
    let rows = between(&page, "id=\"appointments\"", "</table>");
    let booked = between(rows.split("已签到").last().unwrap(), "data-appointment=\"", "\"").to_string();
    // Moved to the last free time: the earlier slot is free again.
    let (_, _, page) =
        registrar.get(&format!("/scheduling?patient=p1&reschedule={booked}&dept=east-im&date=2026-11-23")).await;
    assert!(page.contains("为以下患者改约"), "{page}");
    let slots: Vec<String> =
        page.split("data-slot=\"").skip(1).map(|s| s[..s.find('"').unwrap()].to_string()).collect();
    assert_eq!(slots.len(), 1, "one free time left: {slots:?}");
    let (_, loc, _) = registrar
        .post(
            "/scheduling/book",
            &[("csrf", &token), ("slot", &slots[0]), ("patient", "p1"), ("back", back), ("reschedule", &booked)],
        )
        .await;
    assert_eq!(loc, "/patients/p1?done=rescheduled");
    let free = scheduling.free_slots(&system, std::slice::from_ref(&schedule), "2026-11-23").await.unwrap();
    assert_eq!(free.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), vec![third.as_str()]);
    let (_, _, page) = registrar.get("/patients/p1").await;
    let rows = between(&page, "id=\"appointments\"", "</table>");
    let booked = between(rows.split("已签到").last().unwrap(), "data-appointment=\"", "\"").to_string();
    let (_, loc, _) =
        registrar.post(&format!("/appointments/{booked}/cancel"), &[("csrf", &token), ("patient", "p1")]).await;
    assert_eq!(loc, "/patients/p1?done=cancelled");
    let free = scheduling.free_slots(&system, std::slice::from_ref(&schedule), "2026-11-23").await.unwrap();
    assert_eq!(free.len(), 2, "four slots, two booked and checked in, the cancelled one free again");
    assert!(free.iter().any(|s| s.id == third) && free.iter().any(|s| s.id == slots[0]));

    // The doctor calls the queue in order.
    let (mut doctor, _) = logged_in(&app, &clock, "dr.li", "doctor", "campus-east", None).await;
    let (_, _, page) = doctor.get("/queue?dept=east-im").await;
    let queue = between(&page, "id=\"queue\"", "</table>");
    assert!(queue.find("李四").unwrap() < queue.find("张三").unwrap(), "{queue}");
    assert!(!queue.contains("已叫号"));
    let token = csrf(&page);
    let (_, loc, _) = doctor.post("/queue/call", &[("csrf", &token), ("dept", "east-im")]).await;
    assert!(loc.starts_with("/encounters/"), "{loc}");
    let (_, _, page) = doctor.get(&loc).await;
    assert!(page.contains("李四") && page.contains("就诊中") && page.contains("id=\"queue-number\">1<"), "{page}");
    assert!(page.contains("<span id=\"visit-campus\">东院区</span>"), "the banner names the campus");
    // The workspace: an ICD-10 diagnosis found by its Chinese name, an allergy.
    let encounter = loc.trim_start_matches("/encounters/").to_string();
    // The call keeps the wait since check-in (for the dashboards).
    let called: Value =
        east.get(app.url(&format!("/fhir/Encounter/{encounter}"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(called["statusHistory"][0]["status"], "arrived", "{called}");
    assert_eq!(called["statusHistory"][0]["period"]["start"], called["period"]["start"]);
    assert!(called["statusHistory"][0]["period"]["end"].is_string());
    assert!(page.contains("未记录过敏史"), "{page}");
    let (_, _, page) = doctor.get(&format!("{loc}?icd=%E9%AB%98%E8%A1%80%E5%8E%8B")).await;
    let results = between(&page, "id=\"icd-results\"", "</table>");
    assert!(results.contains("data-code=\"I10\"") && results.contains("原发性高血压"), "{results}");
    let (_, back, _) = doctor.post(&format!("{loc}/diagnoses"), &[("csrf", &token), ("code", "I10")]).await;
    assert_eq!(back, format!("{loc}?done=diagnosis"));
    let (_, back, _) = doctor.post(&format!("{loc}/diagnoses"), &[("csrf", &token), ("code", "X99.99")]).await;
    assert_eq!(back, format!("{loc}?error=icd10-unknown"));
    let (_, back, _) = doctor
        .post(
            &format!("{loc}/allergies"),
            &[
                ("csrf", &token),
                ("patient", "p2"),
                ("substance", "青霉素"),
                ("criticality", "high"),
                ("reaction", "皮疹"),
            ],
        )
        .await;
    assert_eq!(back, format!("{loc}?done=allergy"));
    let (_, _, page) = doctor.get(&loc).await;
    assert!(between(&page, "id=\"diagnoses\"", "</ul>").contains("I10</code> 原发性高血压"), "{page}");
    assert!(between(&page, "id=\"allergies\"", "</p>").contains("青霉素 (高危) — 皮疹"), "{page}");
    doctor.lang = "en";
    let (_, _, page) = doctor.get(&loc).await;
    assert!(page.contains("Essential (primary) hypertension") && page.contains("high risk"), "{page}");
    doctor.lang = "zh-CN";
    // A dose that is not a number: the form comes back as typed, the field named at the top.
    let rx = format!("{loc}/prescriptions");
    let bad = [("csrf", token.as_str()), ("drug", "PARA500"), ("dose", "5OO"), ("frequency", "bid"), ("days", "4")];
    let (status, _, page) = doctor.post(&rx, &bad).await;
    assert_eq!(status, StatusCode::OK);
    assert!(between(&page, "id=\"rx-error\"", "</div>").contains("剂量须为大于 0 的数字"), "{page}");
    assert!(page.find("id=\"rx-error\"") < page.find("id=\"banner\""), "the error is at the top");
    let form = between(&page, "id=\"rx-form\"", "</form>");
    assert!(
        form.contains("value=\"PARA500\" selected") && form.contains("value=\"5OO\" aria-invalid=\"true\""),
        "{form}"
    );
    assert!(form.contains("value=\"bid\" selected") && form.contains("value=\"4\""), "{form}");
    // Safe prescribing: amoxicillin is blocked by the penicillin allergy.
    let amox = [("csrf", token.as_str()), ("drug", "AMOX500"), ("dose", "500"), ("frequency", "tid"), ("days", "7")];
    let (status, _, page) = doctor.post(&rx, &amox).await;
    assert_eq!(status, StatusCode::OK);
    let review = between(&page, "id=\"rx-review\"", "</form>");
    assert!(review.contains("处方被拦截") && review.contains("患者对“青霉素”过敏"), "{review}");
    assert!(page.contains("id=\"no-prescriptions\""), "nothing signed yet");
    let mut confirm = amox.to_vec();
    confirm.push(("confirm", "1"));
    let (_, _, page) = doctor.post(&rx, &confirm).await;
    assert!(page.contains("id=\"reason-missing\""), "no reason, no override: {page}");
    confirm.push(("reason", "皮试阴性，既往多次使用无反应"));
    let (_, back, _) = doctor.post(&rx, &confirm).await;
    assert_eq!(back, format!("{loc}?done=prescribed"));
    // Paracetamol: nothing to check, signed at once; again: a duplicate, signed after seeing it.
    let para = [("csrf", token.as_str()), ("drug", "PARA500"), ("dose", "500"), ("frequency", "tid"), ("days", "3")];
    let (_, back, _) = doctor.post(&rx, &para).await;
    assert_eq!(back, format!("{loc}?done=prescribed"));
    let (_, _, page) = doctor.post(&rx, &para).await;
    let review = between(&page, "id=\"rx-review\"", "</form>");
    assert!(review.contains("重复用药") && review.contains("id=\"sign-anyway\""), "{review}");
    let (_, _, page) = doctor.get(&loc).await;
    let list = between(&page, "id=\"prescriptions\"", "</ul>");
    assert!(list.contains("阿莫西林胶囊 500 mg") && list.contains("对乙酰氨基酚片"), "{list}");
    let (_, _, sheet) = doctor.get(&format!("{loc}/print/prescription")).await;
    let rp = between(&sheet, "id=\"print-prescriptions\"", "</ol>");
    assert!(sheet.contains("处方笺") && rp.contains("阿莫西林胶囊 500 mg") && sheet.contains("青霉素"), "{sheet}");
    let issues = app.get("/fhir/DetectedIssue?patient=Patient/p2").await.json::<Value>().await.unwrap();
    let entries = issues["entry"].as_array().unwrap();
    let allergy_issue = entries.iter().find(|e| e["resource"]["code"]["coding"][0]["code"] == "ALGY").unwrap();
    assert!(allergy_issue["resource"]["mitigation"][0]["action"]["text"].as_str().unwrap().contains("皮试阴性"));
    let query = lianyi_store::audit::AuditQuery {
        action: Some("prescribing-override".into()),
        limit: 10,
        ..Default::default()
    };
    let overrides = app.store.audit_records(&query).await.unwrap();
    assert_eq!(overrides.len(), 1);
    assert_eq!(overrides[0].entry.actor, "user:dr.li");
    assert_eq!(overrides[0].entry.patient.as_deref(), Some("p2"));
    assert!(overrides[0].entry.detail.as_deref().unwrap().contains("AMOX500 overridden (allergy)"));

    // A stat potassium: the request carries the platform's placer number.
    let (_, back, _) = doctor
        .post(&format!("{loc}/orders"), &[("csrf", token.as_str()), ("item", "LAB-K"), ("priority", "stat")])
        .await;
    assert_eq!(back, format!("{loc}?done=ordered"));
    let (_, _, page) = doctor.get(&loc).await;
    assert!(between(&page, "id=\"orders\"", "</ul>").contains("血钾 · 急诊 · <code>LY00000001</code>"), "{page}");
    let sr = app
        .get("/fhir/ServiceRequest?identifier=urn:lianyi:sid:placer|LY00000001")
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(sr["entry"][0]["resource"]["requester"]["identifier"]["value"], "dr.li");
    assert_eq!(sr["entry"][0]["resource"]["code"]["coding"][0]["code"], "2823-3");

    let conditions =
        app.get(&format!("/fhir/Condition?encounter=Encounter/{encounter}")).await.json::<Value>().await.unwrap();
    assert_eq!(conditions["entry"][0]["resource"]["code"]["coding"][0]["system"], "http://hl7.org/fhir/sid/icd-10-cm");
    assert_eq!(conditions["entry"][0]["resource"]["subject"]["reference"], "Patient/p2");

    let (_, loc, _) = doctor.post("/queue/call", &[("csrf", &token), ("dept", "east-im")]).await;
    let (_, _, page) = doctor.get(&loc).await;
    assert!(page.contains("张三"), "{page}");
    // The doctor ends this visit and is back at the queue.
    assert!(page.contains("id=\"end-visit\""), "a visit in progress can be ended");
    let (_, back, _) = doctor.post(&format!("{loc}/finish"), &[("csrf", &token)]).await;
    assert_eq!(back, "/queue?dept=east-im&done=finished");
    let (_, _, queue) = doctor.get(&back).await;
    assert!(queue.contains("id=\"queue-finished\""), "{queue}");
    let (_, _, page) = doctor.get(&loc).await;
    assert!(page.contains("id=\"status\">已结束"), "{page}");
    assert!(!page.contains("id=\"end-visit\""), "a finished visit is not ended again");
    let (_, again, _) = doctor.post(&format!("{loc}/finish"), &[("csrf", &token)]).await;
    assert!(again.ends_with("?error=not-in-progress"), "{again}");
    let (_, loc, _) = doctor.post("/queue/call", &[("csrf", &token), ("dept", "east-im")]).await;
    assert_eq!(loc, "/queue?dept=east-im&empty=1");

    // Registration-side pages are not the doctor's; a patient account sees no queue.
    assert_eq!(doctor.get("/scheduling").await.0, StatusCode::FORBIDDEN);
    let (_, _, page) = registrar.get("/queue?dept=east-im").await;
    assert!(!page.contains("id=\"call-next\""), "registrars see the queue but do not call");
}

/// The critical-value loop: a stat potassium is ordered, the lab's ORU with K 6.8
/// arrives over the HL7 inbound path, the ordering doctor's pages show the alert, the
/// doctor acknowledges it with the action taken (audited, on the response-time
/// report). A critical value nobody acknowledges is escalated to the department head
/// after the configured time (the clock is the test's).
#[tokio::test]
async fn critical_values_reach_the_ordering_doctor_and_escalate() {
    let clock = ManualClock::new(MONDAY_0830);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    let east = app.client_with("system/*.cruds", "campus-east", None).await;
    let put = |v: Value| {
        let c = east.clone();
        let url = app.url(&format!("/fhir/{}/{}", v["resourceType"].as_str().unwrap(), v["id"].as_str().unwrap()));
        async move {
            let r =
                c.put(url).header("content-type", "application/fhir+json").body(v.to_string()).send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        }
    };
    for (id, mrn) in [("p1", "E100001"), ("p2", "E100002")] {
        put(json!({"resourceType": "Patient", "id": id, "name": [{"text": format!("患者{id}")}],
                   "identifier": [{"system": "urn:lianyi:sid:mrn:campus-east", "value": mrn}]}))
        .await;
    }
    put(json!({"resourceType": "Encounter", "id": "e1", "status": "in-progress", "class": {"code": "AMB"},
               "subject": {"reference": "Patient/p1"}}))
    .await;
    let (mut doctor, token) = logged_in(&app, &clock, "dr.li", "doctor", "campus-east", None).await;
    let (_, back, _) = doctor
        .post("/encounters/e1/orders", &[("csrf", token.as_str()), ("item", "LAB-K"), ("priority", "stat")])
        .await;
    assert_eq!(back, "/encounters/e1?done=ordered");

    let inbound = lianyi_interop::Inbound::new(app.fhir.clone(), "mllp:test", "campus-east", "+08:00");
    let oru = |control: &str, mrn: &str, placer: &str, value: &str, flag: &str| {
        format!(
            "MSH|^~\\&|LIS|EAST|LIANYI|GROUP|20261123083500||ORU^R01^ORU_R01|{control}|P|2.5.1\rPID|1||{mrn}^^^EAST^MR\r\
             OBR|1|{placer}|F{control}|2823-3^Potassium^LN|||20261123083000|||||||||||||||||F\r\
             OBX|1|NM|2823-3^Potassium [Moles/volume] in Serum or Plasma^LN||{value}|mmol/L^mmol/L^UCUM|3.5-5.3|{flag}|||F\r"
        )
    };
    let (ack, _) = inbound.receive(oru("C1", "E100001", "LY00000001", "6.8", "HH").as_bytes(), None).await;
    assert!(String::from_utf8_lossy(&ack).contains("MSA|AA|C1"), "{}", String::from_utf8_lossy(&ack));

    // Within a moment the doctor's pages carry the alert.
    let started = std::time::Instant::now();
    let bar = loop {
        let (_, _, page) = doctor.get("/alerts").await;
        if page.contains("critical-item") {
            break page;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "no alert: {page}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(bar.contains("血钾 6.8 mmol/L (危急值 ≥ 6)") && bar.contains("/patients/p1"), "{bar}");
    let (_, _, page) = doctor.get("/encounters/e1").await;
    assert!(page.contains("id=\"critical-alerts\"") && page.contains("血钾 6.8"), "every page shows it");
    let task = between(&bar, "data-task=\"", "\"").to_string();

    // Another doctor may not acknowledge it; the owner does, with the action taken.
    let (mut other, other_token) = logged_in(&app, &clock, "dr.wang", "doctor", "campus-east", None).await;
    let (_, _, page) = other.get("/alerts").await;
    assert!(!page.contains("critical-item"), "not the other doctor's");
    let (s, _, _) = other.post(&format!("/alerts/{task}/ack"), &[("csrf", &other_token), ("action", "看到了")]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    clock.advance(3 * 60_000);
    let (s, _, _) =
        doctor.post(&format!("/alerts/{task}/ack"), &[("csrf", &token), ("action", "已电话通知患者返院复查")]).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (_, _, page) = doctor.get("/alerts").await;
    assert!(!page.contains("critical-item"), "acknowledged: gone");
    let t = app.get(&format!("/fhir/Task/{task}")).await.json::<Value>().await.unwrap();
    assert_eq!(t["status"], "completed");
    assert_eq!(t["owner"]["identifier"]["value"], "dr.li");
    assert_eq!(t["output"][0]["valueString"], "已电话通知患者返院复查");
    assert_eq!(t["focus"]["reference"].as_str().unwrap().split('/').next(), Some("Observation"));
    let (_, _, report) = doctor.get("/reports/critical-values").await;
    let table = between(&report, "id=\"cv-report\"", "</table>");
    assert!(table.contains("已电话通知患者返院复查") && table.contains("<td>3</td>"), "{table}");
    // Print-ready pages: the visit summary names the request; the lab report the result.
    let (_, _, summary) = doctor.get("/encounters/e1/print/summary").await;
    assert!(summary.contains("血钾 (LY00000001)") && summary.contains("门诊病历摘要"), "{summary}");
    let (_, _, patient_page) = doctor.get("/patients/p1").await;
    let report_link = between(between(&patient_page, "id=\"lab-reports\"", "</ul>"), "href=\"", "\"").to_string();
    let (_, _, report) = doctor.get(&report_link).await;
    let rows = between(&report, "id=\"print-results\"", "</table>");
    assert!(
        rows.contains("<td>6.8</td><td>mmol/L</td><td>3.5–5.3</td><td>HH</td>") && rows.contains("abnormal"),
        "{rows}"
    );
    let query =
        lianyi_store::audit::AuditQuery { action: Some("critical-value-ack".into()), limit: 10, ..Default::default() };
    let acks = app.store.audit_records(&query).await.unwrap();
    assert_eq!((acks.len(), acks[0].entry.actor.as_str()), (1, "user:dr.li"));

    // A critical value of a result without an order of ours: nobody owns it; after
    // ten minutes it goes to the department head.
    let (ack, _) = inbound.receive(oru("C2", "E100002", "", "2.3", "LL").as_bytes(), None).await;
    assert!(String::from_utf8_lossy(&ack).contains("MSA|AA|C2"));
    let (mut head, _) = logged_in(&app, &clock, "head.im", "department-head", "campus-east", None).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (_, _, page) = head.get("/alerts").await;
    assert!(!page.contains("critical-item"), "not yet escalated: {page}");
    clock.advance(11 * 60_000);
    let started = std::time::Instant::now();
    let bar = loop {
        let (_, _, page) = head.get("/alerts").await;
        if page.contains("critical-item") {
            break page;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "not escalated: {page}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(bar.contains("血钾 2.3 mmol/L (危急值 ≤ 2.5)") && bar.contains("已上报科室主任"), "{bar}");
}
