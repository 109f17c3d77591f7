//! The patient portal over HTTP, one server: the desk prints the slip's code, the
//! patient opens their account (bad input named, wrong identity counted, nothing
//! half-made), logs in, finds a doctor of another campus by name, books under the
//! desk's rules (the window, the cut-off; refusals named, nothing written), the other
//! campus's registrar sees the booking on their day list, the patient moves and
//! cancels, sees their queue on the day, reads their report with each flag said in
//! plain words — and reaches nobody else's report or appointment by changing an id.

use lianyi_clinical::scheduling::{Scheduling, Session};
use lianyi_security::{Caller, Clock, ManualClock, SystemTask};
use lianyi_services::identifiers::{RESIDENT_ID_SYSTEM, ResidentId, mrn_system};
use lianyi_store::audit::AuditQuery;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_clocked};
use crate::pages::{Browser, between, csrf, logged_in};

/// Monday 23 November 2026, 08:30 in Beijing.
const MONDAY_0830: i64 = 1_795_393_800_000;
const PHONE: &str = "13800138000";

async fn put(app: &TestApp, client: &reqwest::Client, v: Value) {
    let url = app.url(&format!("/fhir/{}/{}", v["resourceType"].as_str().unwrap(), v["id"].as_str().unwrap()));
    let r = client.put(url).header("content-type", "application/fhir+json").body(v.to_string()).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

fn resident_id(seq: u32) -> String {
    ResidentId::build(110_101, "19800101", seq).unwrap().as_str().to_string()
}

/// Two campuses, a department and a doctor at each, two patients of East, and three
/// weeks of slots.
async fn group(app: &TestApp) {
    let east = app.client_with("system/*.cruds", "campus-east", None).await;
    let west = app.client_with("system/*.cruds", "campus-west", None).await;
    put(
        app,
        &east,
        json!({"resourceType": "Organization", "id": "campus-east", "name": "东院区", "alias": ["East Campus"]}),
    )
    .await;
    put(
        app,
        &west,
        json!({"resourceType": "Organization", "id": "campus-west", "name": "西院区", "alias": ["West Campus"]}),
    )
    .await;
    put(
        app,
        &east,
        json!({"resourceType": "Organization", "id": "east-im", "name": "内科", "alias": ["Internal Medicine"],
        "partOf": {"reference": "Organization/campus-east"}}),
    )
    .await;
    put(
        app,
        &west,
        json!({"resourceType": "Organization", "id": "west-sur", "name": "外科", "alias": ["Surgery"],
        "partOf": {"reference": "Organization/campus-west"}}),
    )
    .await;
    let title = |code: &str, zh: &str, en: &str| json!([{"code": {"coding": [{"system": "urn:lianyi:professional-title", "code": code, "display": en}], "text": zh}}]);
    put(app, &east, json!({"resourceType": "Practitioner", "id": "dr-li", "qualification": title("associate-chief", "副主任医师", "Associate chief physician"),
        "name": [{"text": "李明"}, {"text": "Li Ming", "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation", "valueCode": "ABC"}]}]})).await;
    put(app, &west, json!({"resourceType": "Practitioner", "id": "dr-chen", "qualification": title("chief", "主任医师", "Chief physician"),
        "identifier": [{"system": "urn:lianyi:sid:user", "value": "chen.west"}],
        "name": [{"text": "陈静"}, {"text": "Chen Jing", "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation", "valueCode": "ABC"}]}]})).await;
    put(
        app,
        &east,
        json!({"resourceType": "PractitionerRole", "id": "role-li", "active": true,
        "practitioner": {"reference": "Practitioner/dr-li"}, "organization": {"reference": "Organization/east-im"}}),
    )
    .await;
    put(app, &west, json!({"resourceType": "PractitionerRole", "id": "role-chen", "active": true,
        "practitioner": {"reference": "Practitioner/dr-chen"}, "organization": {"reference": "Organization/west-sur"},
        "specialty": [{"coding": [{"system": "urn:lianyi:specialty", "code": "ortho", "display": "Orthopaedics"}], "text": "骨科"}]})).await;
    for (id, name, seq, phone) in [("pa", "王芳", 124, PHONE), ("pb", "赵强", 456, "13900139000")] {
        put(app, &east, json!({"resourceType": "Patient", "id": id, "name": [{"text": name}], "gender": "female", "birthDate": "1980-01-01",
            "identifier": [{"system": RESIDENT_ID_SYSTEM, "value": resident_id(seq)},
                           {"system": mrn_system("campus-east"), "value": format!("E-{id}")}],
            "telecom": [{"system": "phone", "value": phone}]})).await;
    }
    let scheduling = Scheduling::new(app.fhir.clone());
    let system = Caller::task(SystemTask::Operator("test setup".into()));
    for (role, start) in [("role-li", "09:00"), ("role-chen", "10:00")] {
        let sessions: Vec<Session> = (1..=7)
            .map(|weekday| Session { weekday, start: start.into(), end: "12:00".into(), slot_minutes: 30 })
            .collect();
        let schedule = scheduling.set_template(&system, role, &sessions).await.unwrap();
        scheduling.generate_slots(&system, &schedule, "2026-11-22", 22).await.unwrap();
    }
}

/// A report of one potassium result for a patient.
async fn potassium(app: &TestApp, patient: &str, value: f64, flag: &str) -> String {
    let east = app.client_with("system/*.cruds", "campus-east", None).await;
    let obs = format!("obs-{patient}");
    put(app, &east, json!({"resourceType": "Observation", "id": obs, "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3", "display": "Potassium"}]},
        "subject": {"reference": format!("Patient/{patient}")}, "effectiveDateTime": "2026-11-20T09:00:00+08:00",
        "valueQuantity": {"value": value, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"},
        "referenceRange": [{"low": {"value": 3.5}, "high": {"value": 5.3}}],
        "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": flag}]}]})).await;
    let id = format!("rep-{patient}");
    put(
        app,
        &east,
        json!({"resourceType": "DiagnosticReport", "id": id, "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "24320-4", "display": "电解质 Electrolytes"}]},
        "subject": {"reference": format!("Patient/{patient}")}, "effectiveDateTime": "2026-11-20T09:00:00+08:00",
        "result": [{"reference": format!("Observation/{obs}")}]}),
    )
    .await;
    id
}

fn slot_of(page: &str, date: &str, time: &str) -> String {
    let day = between(page, &format!("data-date=\"{date}\""), "</section>");
    between(day, "data-slot=\"", &format!("\" aria-label=\"{date} {time}\"")).rsplit('"').next().unwrap().to_string()
}

/// Sends the activation form (a fresh page's token first).
async fn activate(
    b: &mut Browser,
    code: &str,
    id: &str,
    tel: &str,
    name: &str,
    pw: &str,
) -> (StatusCode, String, String) {
    let (_, _, page) = b.get("/portal/activate").await;
    let token = csrf(&page);
    let form = [
        ("csrf", token.as_str()),
        ("code", code),
        ("resident_id", id),
        ("phone", tel),
        ("username", name),
        ("password", pw),
        ("confirm", pw),
    ];
    b.post("/portal/activate", &form).await
}

/// Posts a multipart form (with a photo) as the browser would.
async fn multipart(
    b: &mut Browser,
    path: &str,
    fields: &[(&str, &str)],
    photo: Option<(&str, &str, Vec<u8>)>,
) -> (StatusCode, String, String) {
    let boundary = "lianyi-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes());
    }
    if let Some((name, kind, data)) = photo {
        body.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"{name}\"\r\nContent-Type: {kind}\r\n\r\n")
                .as_bytes(),
        );
        body.extend(data);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").as_bytes());
    let r = b
        .http
        .post(format!("{}{path}", b.base()))
        .header("cookie", b.cookie_header())
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let location = r.headers().get("location").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (status, location, r.text().await.unwrap())
}

/// Another patient's ids, as a curious patient would try them.
struct Theirs {
    patient: String,
    report: String,
    appointment: String,
    visit: String,
    photo: String,
    /// Their imaging study: (study, series, instance) UIDs.
    study: (String, String, String),
}

/// Every portal route that takes an id, tried with another patient's: each must
/// answer "not found" (or name the field, for a form), and change nothing. Returns
/// what went wrong.
async fn id_swaps(b: &mut Browser, token: &str, theirs: &Theirs) -> Vec<String> {
    let mut wrong = Vec::new();
    for path in [
        format!("/portal/reports/{}", theirs.report),
        format!("/portal/photos/{}", theirs.photo),
        format!("/portal/for/{}", theirs.patient),
        format!("/portal/book/doctor/role-li?move={}", theirs.appointment),
        format!("/portal/survey/{}", theirs.visit),
        format!("/portal/images/{}", theirs.study.0),
        format!("/portal/images/{}/series/{}/instances/{}/frames/1", theirs.study.0, theirs.study.1, theirs.study.2),
    ] {
        let (status, _, page) = b.get(&path).await;
        let ok = status == StatusCode::NOT_FOUND || (path.contains("move=") && status == StatusCode::OK);
        if !ok || page.contains(&theirs.report) || page.contains("赵强") {
            wrong.push(format!("GET {path}: {status}"));
        }
    }
    for (path, form) in [
        (format!("/portal/visits/{}/cancel", theirs.appointment), vec![("csrf", token.to_string())]),
        (format!("/portal/me/proxies/{}/revoke", "px-theirs"), vec![("csrf", token.to_string())]),
        ("/portal/me/access/1/ask".to_string(), vec![("csrf", token.to_string()), ("question", "whose?".into())]),
        (
            "/portal/book".to_string(),
            vec![
                ("csrf", token.to_string()),
                ("slot", "x".into()),
                ("role", "role-li".into()),
                ("move", theirs.appointment.clone()),
            ],
        ),
    ] {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, _, _) = b.post(&path, &form).await;
        if status != StatusCode::NOT_FOUND {
            wrong.push(format!("POST {path}: {status}"));
        }
    }
    let (status, _, page) =
        multipart(b, "/portal/messages", &[("csrf", token), ("visit", &theirs.visit), ("text", "whose visit?")], None)
            .await;
    if status != StatusCode::UNPROCESSABLE_ENTITY || !page.contains("data-field=\"visit\"") {
        wrong.push(format!("POST /portal/messages about their visit: {status}"));
    }
    wrong
}

async fn audited(app: &TestApp, action: &str, outcome: &str) -> usize {
    let q = AuditQuery { action: Some(action.into()), limit: 500, ..Default::default() };
    app.store.audit_records(&q).await.unwrap().iter().filter(|r| r.entry.outcome == outcome).count()
}

#[tokio::test]
async fn a_patient_opens_an_account_books_another_campus_and_reads_only_their_own_record() {
    let clock = ManualClock::new(MONDAY_0830);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    group(&app).await;

    // The desk prints the code; a nurse may not.
    let (mut desk, _) = logged_in(&app, &clock, "reg.portal", "registrar", "campus-east", None).await;
    let (status, _, page) = desk.get("/portal/desk/pa").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let (_, _, slip) = desk.post("/portal/desk/pa", &[("csrf", &csrf(&page))]).await;
    let code = between(&slip, "id=\"activation-code\">", "<").to_string();
    assert_eq!(code.len(), 9, "{slip}");
    assert!(slip.contains("E-pa"), "the slip names the MRN: {slip}");
    let (mut nurse, _) = logged_in(&app, &clock, "nurse.portal", "nurse", "campus-east", None).await;
    assert_eq!(nurse.get("/portal/desk/pa").await.0, StatusCode::FORBIDDEN);
    // No SMS gateway or mail server here: nothing is offered that cannot be sent.
    assert!(!page.contains("id=\"send-sms\"") && !page.contains("id=\"send-email\""), "{page}");
    let mut stranger = Browser::new(&app.base, "zh-CN");
    assert_eq!(stranger.get("/portal/signup").await.0, StatusCode::NOT_FOUND);
    assert!(!stranger.get("/portal/activate").await.2.contains("/portal/signup"));
    assert!(!desk.get("/").await.2.contains("/portal/signups"), "no sign-ups to handle");

    // Opening the account: every broken rule named, nothing made.
    let mut phone = Browser::new(&app.base, "zh-CN");
    let (_, loc, _) = phone.get("/portal").await;
    assert_eq!(loc, "/portal/login");
    let (status, _, page) = activate(&mut phone, "BAD", "1234", "", "wang fang", "short").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    for (field, text) in [
        ("code", "激活码为 8 位"),
        ("resident_id", "18 位身份证号"),
        ("phone", "登记时留的手机号"),
        ("username", "登录名只能用"),
        ("password", ""),
    ] {
        assert!(page.contains(&format!("data-field=\"{field}\"")) && page.contains(text), "{field}: {page}");
    }
    let pa_id = resident_id(124);
    let (status, _, page) = activate(&mut phone, &code, &pa_id, "13800138001", "wangfang", "a long passphrase 1").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("身份证号或手机号与登记信息不符"), "{page}");
    assert!(app.users.patient_accounts("pa").await.unwrap().is_empty(), "nothing made");
    let (_, loc, _) =
        activate(&mut phone, &code.to_lowercase(), &pa_id, PHONE, "wangfang", "a long passphrase 1").await;
    assert_eq!(loc, "/portal/login?m=activated");
    let (status, _, page) = activate(&mut phone, &code, &pa_id, PHONE, "wangfang2", "a long passphrase 1").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("此激活码已开通过账号"), "spent once: {page}");
    assert_eq!(app.users.patient_accounts("pa").await.unwrap().len(), 1);
    assert_eq!(audited(&app, "portal-activate", "failure").await, 3);
    assert_eq!(audited(&app, "portal-activate", "success").await, 1);
    assert_eq!(audited(&app, "portal-code-issue", "success").await, 1);

    // Logging in: no authenticator needed for a patient's account.
    let (_, _, page) = phone.get("/portal/login").await;
    assert!(page.contains("账号已开通") || page.contains("患者登录"), "{page}");
    let (_, loc, _) = phone
        .post("/portal/login", &[("csrf", &csrf(&page)), ("username", "wangfang"), ("password", "a long passphrase 1")])
        .await;
    assert_eq!(loc, "/portal");
    let (status, _, home) = phone.get("/portal").await;
    assert_eq!(status, StatusCode::OK);
    assert!(home.contains("王芳") && home.contains("id=\"no-visits\""), "{home}");
    let token = csrf(&home);
    // An optional second factor: enrolled from the account page, asked at every login
    // after.
    let (_, _, page) = phone.get("/portal/me/mfa").await;
    let secret = lianyi_security::totp::base32_decode(between(&page, "id=\"totp-secret\">", "<")).unwrap();
    let code = lianyi_security::totp::code_at(&secret, clock.now_ms());
    let (_, loc, _) = phone.post("/portal/me/mfa", &[("csrf", &token), ("code", &code)]).await;
    assert_eq!(loc, "/portal/me?done=mfa");
    phone.post("/portal/logout", &[("csrf", &token)]).await;
    let (_, _, page) = phone.get("/portal/login").await;
    let form = [("csrf", csrf(&page)), ("username", "wangfang".into()), ("password", "a long passphrase 1".into())];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, loc, _) = phone.post("/portal/login", &form).await;
    assert_eq!(loc, "/portal/login/mfa");
    clock.advance(31_000);
    let (_, _, page) = phone.get("/portal/login/mfa").await;
    let code = lianyi_security::totp::code_at(&secret, clock.now_ms());
    let (_, loc, _) = phone.post("/portal/login/mfa", &[("csrf", &csrf(&page)), ("code", &code)]).await;
    assert_eq!(loc, "/portal");
    let (_, _, home) = phone.get("/portal").await;
    let token = csrf(&home);
    // The staff home sends a patient to the portal; staff pages are closed to them.
    assert_eq!(phone.get("/").await.1, "/portal");
    assert_eq!(phone.get("/registration").await.0, StatusCode::FORBIDDEN);

    // Finding a doctor of the other campus, by name and by department.
    let (_, _, page) = phone.get("/portal/book").await;
    for text in ["东院区", "西院区", "内科", "外科", "data-department=\"west-sur\""] {
        assert!(page.contains(text), "{text}: {page}");
    }
    let (_, _, page) = phone.get("/portal/book?q=陈").await;
    assert!(page.contains("陈静") && page.contains("主任医师") && page.contains("骨科"), "{page}");
    let (_, _, page) = phone.get("/portal/book/dept/west-sur").await;
    assert!(page.contains("data-role=\"role-chen\"") && page.contains("主任医师"), "{page}");
    let (_, _, page) = phone.get("/portal/book/doctor/role-chen").await;
    assert!(page.contains("data-date=\"2026-11-23\"") && page.contains("data-date=\"2026-12-07\""), "{page}");
    assert!(!page.contains("data-date=\"2026-12-08\""), "14 days ahead at most: {page}");
    let ten = slot_of(&page, "2026-11-23", "10:00");
    let half_past_ten = slot_of(&page, "2026-11-23", "10:30");

    // Booking: the slot at West today.
    let (_, loc, page) =
        phone.post("/portal/book", &[("csrf", &token), ("slot", &ten), ("role", "role-chen"), ("move", "")]).await;
    assert_eq!(loc, "/portal/visits?done=booked", "{}", between(&page, "<main", "</main>"));
    let (_, _, visits) = phone.get(&loc).await;
    assert!(visits.contains("预约成功") && visits.contains("西院区") && visits.contains("陈静"), "{visits}");
    let booked = between(&visits, "data-appointment=\"", "\"").to_string();

    // West's registrar sees the booking on the day list, with the patient's name.
    let (mut west, _) = logged_in(&app, &clock, "reg.west", "registrar", "campus-west", None).await;
    let (_, _, home) = west.get("/").await;
    assert!(home.contains("10:00 王芳") && home.contains("/patients/pa"), "{home}");

    // The desk's rules, each refusal named, nothing written.
    let scheduling = Scheduling::new(app.fhir.clone());
    let system = Caller::task(SystemTask::Operator("test".into()));
    let chen = scheduling.schedule_of_role(&system, "role-chen").await.unwrap();
    let li = scheduling.schedule_of_role(&system, "role-li").await.unwrap();
    let far = scheduling.free_slots(&system, std::slice::from_ref(&chen), "2026-12-10").await.unwrap();
    let soon = scheduling.free_slots(&system, std::slice::from_ref(&li), "2026-11-23").await.unwrap();
    assert_eq!(soon[0].start, "2026-11-23T09:00:00+08:00");
    let yesterday = scheduling.free_slots(&system, std::slice::from_ref(&li), "2026-11-22").await.unwrap();
    for (slot, text) in [
        (&far[0].id, "超出可预约的天数范围"),
        (&soon[0].id, "已停止网上预约"),
        (&yesterday[0].id, "该号源已过时间"),
        (&ten, "刚被别人约走"),
    ] {
        let (status, _, page) =
            phone.post("/portal/book", &[("csrf", &token), ("slot", slot), ("role", "role-chen"), ("move", "")]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
        assert!(page.contains("data-field=\"slot\"") && page.contains(text), "{text}: {page}");
    }
    let (_, _, visits) = phone.get("/portal/visits").await;
    assert_eq!(visits.matches("class=\"p-visit\"").count(), 1, "nothing written: {visits}");

    // Today's 10:00 is too close to move or cancel online (two hours before).
    let (status, _, page) = phone.post(&format!("/portal/visits/{booked}/cancel"), &[("csrf", &token)]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("data-field=\"appointment\"") && page.contains("不能在网上取消或改约"), "{page}");

    // Tomorrow at West, moved to East at 11:00, then cancelled.
    let (_, _, page) = phone.get("/portal/book/doctor/role-chen").await;
    let tomorrow = slot_of(&page, "2026-11-24", "10:00");
    phone.post("/portal/book", &[("csrf", &token), ("slot", &tomorrow), ("role", "role-chen"), ("move", "")]).await;
    let (_, _, visits) = phone.get("/portal/visits").await;
    let appointment_at = |visits: &str, when: &str| {
        let i = visits.find(&format!("<strong>{when}</strong>")).unwrap_or_else(|| panic!("{when}: {visits}"));
        visits[..i].rsplit("data-appointment=\"").next().unwrap().split('"').next().unwrap().to_string()
    };
    let later = appointment_at(&visits, "2026-11-24 10:00");
    assert!(visits.contains(&format!("href=\"/portal/book/doctor/role-chen?move={later}\"")), "{visits}");
    let (_, _, page) = phone.get(&format!("/portal/book/doctor/role-li?move={later}")).await;
    assert!(page.contains("id=\"moving\""), "{page}");
    let eleven = slot_of(&page, "2026-11-24", "11:00");
    let (_, loc, page) =
        phone.post("/portal/book", &[("csrf", &token), ("slot", &eleven), ("role", "role-li"), ("move", &later)]).await;
    assert_eq!(loc, "/portal/visits?done=moved", "{}", between(&page, "<main", "</main>"));
    let (_, _, visits) = phone.get(&loc).await;
    assert!(visits.contains("改约成功") && visits.contains("东院区") && visits.contains("已取消"), "{visits}");
    let east_id = appointment_at(&visits, "2026-11-24 11:00");
    let (_, loc, _) = phone.post(&format!("/portal/visits/{east_id}/cancel"), &[("csrf", &token)]).await;
    assert_eq!(loc, "/portal/visits?done=cancelled");

    // Someone else's appointment, by changing the id: not found, and untouched.
    let their_appointment = scheduling.book(&system, &half_past_ten, "pb").await.unwrap();
    let theirs = their_appointment.clone();
    let (status, _, _) = phone.post(&format!("/portal/visits/{theirs}/cancel"), &[("csrf", &token)]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = phone
        .post("/portal/book", &[("csrf", &token), ("slot", &eleven), ("role", "role-li"), ("move", &theirs)])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let a = app.fhir.reader(&system, lianyi_fhir::ResourceType::parse("Appointment").unwrap()).await.unwrap();
    assert!(a.read(&theirs).await.unwrap().body.contains("\"booked\""), "untouched");

    // The queue on the day: pb checked in first, then pa; pa sees one before them.
    scheduling.check_in(&system, &theirs).await.unwrap();
    clock.advance(60_000);
    let (_, _, page) = west.get("/patients/pa").await;
    let (_, loc, _) =
        west.post(&format!("/appointments/{booked}/check-in"), &[("csrf", &csrf(&page)), ("patient", "pa")]).await;
    assert!(loc.contains("checked-in"), "{loc}");
    let (_, _, visits) = phone.get("/portal/visits").await;
    assert!(visits.contains("您的排队号：2") && visits.contains("前面还有 1 人"), "{visits}");

    // A question to the doctor of the West visit, with a photo; bad input named.
    let (_, _, page) = phone.get("/portal/messages").await;
    let visit = between(&page, "<option value=\"", "\"").to_string();
    let jpeg = |n: usize| [&[0xFF_u8, 0xD8, 0xFF, 0xE0][..], &vec![7_u8; n][..]].concat();
    let (status, _, page) = multipart(
        &mut phone,
        "/portal/messages",
        &[("csrf", &token), ("visit", "nobody's"), ("text", "")],
        Some(("x.gif", "image/jpeg", b"GIF89a\x01\x00".to_vec())),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    for (field, text) in
        [("text", "请填写内容"), ("attachment", "只能上传 JPEG 或 PNG"), ("visit", "请选择您的一次就诊")]
    {
        assert!(page.contains(&format!("data-field=\"{field}\"")) && page.contains(text), "{field}: {page}");
    }
    let (status, _, page) = multipart(
        &mut phone,
        "/portal/messages",
        &[("csrf", &token), ("visit", &visit), ("text", "伤口有点红肿")],
        Some(("big.jpg", "image/jpeg", jpeg(2_100_000))),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("照片太大"), "{page}");
    let question = "术后伤口有点红肿，需要复诊吗？";
    let (_, loc, _) = multipart(
        &mut phone,
        "/portal/messages",
        &[("csrf", &token), ("visit", &visit), ("text", question)],
        Some(("wound.jpg", "image/jpeg", jpeg(5_000))),
    )
    .await;
    assert_eq!(loc, "/portal/messages?sent=1");
    let (_, _, page) = phone.get(&loc).await;
    assert_eq!(page.matches("class=\"p-thread\"").count(), 1, "the refused ones left nothing: {page}");
    assert!(page.contains(question) && page.contains("等待医生回复"), "{page}");
    let photo = between(&page, "src=\"/portal/photos/", "\"").to_string();
    let r = phone
        .http
        .get(app.url(&format!("/portal/photos/{photo}")))
        .header("cookie", phone.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    assert_eq!(r.bytes().await.unwrap().len(), 5_004);

    // The doctor answers from the staff inbox; the response time is kept.
    let (mut chen, _) = logged_in(&app, &clock, "chen.west", "doctor", "campus-west", None).await;
    let (_, _, inbox) = chen.get("/portal/inbox").await;
    assert!(inbox.contains(question) && inbox.contains("王芳") && inbox.contains("已等待"), "{inbox}");
    let asked = between(&inbox, "<tr data-question=\"", "\"").to_string();
    clock.advance(10 * 60_000);
    let form = [("csrf", csrf(&inbox)), ("text", "请明天上午来外科门诊复查。".to_string())];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, loc, _) = chen.post(&format!("/portal/inbox/{asked}/answer"), &form).await;
    assert_eq!(loc, "/portal/inbox");
    let (_, _, inbox) = chen.get("/portal/inbox").await;
    // Answered, the question still belongs to the visit's campus.
    let q = app.store.read("Communication", &asked).await.unwrap().unwrap();
    assert_eq!(q.campus.as_deref(), Some("campus-west"));
    assert!(inbox.contains("10 分钟 内回复"), "{inbox}");
    let (status, _, page) = chen.post(&format!("/portal/inbox/{asked}/answer"), &form).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("已经回复过"), "once: {page}");
    let (_, _, page) = phone.get("/portal/messages").await;
    assert!(page.contains("请明天上午来外科门诊复查") && page.contains("陈静"), "{page}");
    // Another doctor's inbox does not hold it.
    let (mut doctor, token_d) = logged_in(&app, &clock, "dr.west", "doctor", "campus-west", None).await;
    let (_, _, other) = doctor.get("/portal/inbox").await;
    assert!(!other.contains(question), "{other}");

    // After the visit: the summary of the record, the survey (once, a low rating
    // needs its reason), which becomes praise of the doctor for the performance sheet.
    for _ in 0..2 {
        scheduling.call_next(&system, "west-sur").await.unwrap();
    }
    scheduling.finish(&system, &visit).await.unwrap();
    let (_, _, record) = phone.get("/portal/record").await;
    for text in ["外科", "陈静", &format!("data-visit=\"{visit}\""), "id=\"download-record\""] {
        assert!(record.contains(text), "{text}: {record}");
    }
    let (status, _, page) =
        phone.post(&format!("/portal/survey/{visit}"), &[("csrf", &token), ("rating", "1"), ("comment", "")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("data-field=\"comment\"") && page.contains("不满意时请写明原因"), "{page}");
    let (status, _, page) = phone
        .post(&format!("/portal/survey/{visit}"), &[("csrf", &token), ("rating", "5"), ("comment", "陈医生很耐心")])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("感谢您的评价"), "{page}");
    let (status, _, page) =
        phone.post(&format!("/portal/survey/{visit}"), &[("csrf", &token), ("rating", "4"), ("comment", "")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("这次就诊已经评价过了"), "once: {page}");
    let month = app
        .store
        .operations()
        .feedback()
        .by_person("campus-west", MONDAY_0830 - 86_400_000, MONDAY_0830 + 86_400_000)
        .await
        .unwrap();
    assert_eq!(month, vec![("dr-chen".to_string(), "praise".to_string(), 1)], "the doctor's satisfaction counts it");
    let r = phone
        .http
        .get(app.url("/portal/record/download"))
        .header("cookie", phone.cookie_header())
        .send()
        .await
        .unwrap();
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/fhir+json"));
    let bundle: Value = r.json().await.unwrap();
    let entries = bundle["entry"].as_array().unwrap();
    assert!(entries.iter().any(|e| e["resource"]["resourceType"] == "Patient" && e["resource"]["id"] == "pa"));
    assert!(entries.iter().all(|e| !e["resource"].to_string().contains("Patient/pb")), "nobody else's");

    let east = app.client_with("system/*.cruds", "campus-east", None).await;
    // The report: each value with its flag in plain words; someone else's is not found.
    let mine = potassium(&app, "pa", 6.1, "H").await;
    let theirs = potassium(&app, "pb", 3.0, "L").await;
    let (_, _, page) = phone.get("/portal/reports").await;
    assert!(page.contains(&format!("data-report=\"{mine}\"")) && !page.contains(&theirs), "{page}");
    let (status, _, page) = phone.get(&format!("/portal/reports/{mine}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    for text in ["血钾", "6.1", "data-flag=\"H\"", "偏高：高于参考范围", "参考范围 3.5–5.3", "id=\"range-note\""]
    {
        assert!(page.contains(text), "{text}: {page}");
    }
    assert_eq!(phone.get(&format!("/portal/reports/{theirs}")).await.0, StatusCode::NOT_FOUND);
    // Images: a CT slice each for pa and pb, stored by STOW-RS at East; pa sees theirs
    // from the reports page, drawn for a phone.
    let ct = |who: &str| {
        let study = format!("1.2.826.0.1.3680043.2.1125.9{}", if who == "pa" { 1 } else { 2 });
        let (series, sop) = (format!("{study}.1"), format!("{study}.1.1"));
        let data = crate::dicom::slice(&study, &series, &sop, &format!("E-{who}"), &format!("ACC-{who}"), 1, 64);
        ((study, series, sop.clone()), (sop, data))
    };
    let (my_study, my_slice) = ct("pa");
    let (their_study, their_slice) = ct("pb");
    crate::dicom::stow_at(&east, &app.url("/dicomweb/studies"), &[my_slice, their_slice]).await;
    let (_, _, page) = phone.get("/portal/reports").await;
    assert!(page.contains(&format!("data-study=\"{}\"", my_study.0)), "{page}");
    assert!(!page.contains(&their_study.0), "only their own studies: {page}");
    let (status, _, page) = phone.get(&format!("/portal/images/{}", my_study.0)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let src = format!("/portal/images/{}/series/{}/instances/{}/frames/1", my_study.0, my_study.1, my_study.2);
    assert!(page.contains(&format!("src=\"{src}\"")) && page.contains("胸部CT平扫"), "{page}");
    let r = phone.http.get(app.url(&src)).header("cookie", phone.cookie_header()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    assert!(r.bytes().await.unwrap().starts_with(&[0xFF, 0xD8]), "a JPEG");
    let their_visit = {
        let rt = lianyi_fhir::ResourceType::parse("Encounter").unwrap();
        let req = lianyi_fhir::search::parse_search(rt, &[("patient".into(), "Patient/pb".into())]).unwrap();
        let permit = app.fhir.permit(&system, rt).await.unwrap();
        app.fhir.search(&permit, &req).await.unwrap().resources[0].id.clone()
    };
    put(
        &app,
        &east,
        json!({"resourceType": "DocumentReference", "id": "doc-pb", "status": "current",
        "subject": {"reference": "Patient/pb"},
        "content": [{"attachment": {"contentType": "image/png", "data": "iVBORw0KGgo="}}]}),
    )
    .await;
    let others = Theirs {
        patient: "pb".into(),
        report: theirs.clone(),
        appointment: their_appointment.clone(),
        visit: their_visit,
        photo: "doc-pb".into(),
        study: their_study,
    };
    let (_, _, page) = phone.get("/portal/trend/2823-3").await;
    assert!(page.contains("<svg") && page.contains("6.1"), "{page}");

    // In English.
    phone.get("/lang/en").await;
    let (_, _, page) = phone.get(&format!("/portal/reports/{mine}")).await;
    assert!(page.contains("High: above the reference range") && page.contains("lang=\"en\""), "{page}");

    // Who read my record: the desk's reads, and a West doctor's break-the-glass with
    // its reason.
    let reason = "胸痛急诊，需要查看既往检验结果";
    doctor.post("/break-glass", &[("csrf", &token_d), ("patient", "pa"), ("reason", reason)]).await;
    doctor.get("/patients/pa").await;
    phone.get("/lang/zh-CN").await;
    let (_, _, me) = phone.get("/portal/me").await;
    for text in
        ["谁查看了我的病历", "挂号员 · 东院区", "您本人", &format!("理由：{reason}"), "医生 · 西院区", "开通账号"]
    {
        assert!(me.contains(text), "{text}: {}", between(&me, "id=\"access-log\"", "</section>"));
    }

    // A question about the break-the-glass goes to the privacy officer, who answers.
    let glass = between(between(&me, "p-access p-glass", "</li>"), "data-access=\"", "\"").to_string();
    let (status, _, page) =
        phone.post(&format!("/portal/me/access/{glass}/ask"), &[("csrf", &token), ("question", "")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("data-field=\"question\""), "{page}");
    let doubt = "我没有去过西院区，为什么西院区的医生查看了我的病历？";
    let (_, loc, _) =
        phone.post(&format!("/portal/me/access/{glass}/ask"), &[("csrf", &token), ("question", doubt)]).await;
    assert_eq!(loc, "/portal/me?done=asked");
    let (mut officer, officer_token) = logged_in(&app, &clock, "privacy.p", "privacy-officer", "*", None).await;
    let (_, _, list) = officer.get("/manage/feedback").await;
    assert!(list.contains("隐私疑问"), "{list}");
    let feedback = between(&list, "href=\"/manage/feedback/", "\"").to_string();
    let (_, _, one) = officer.get(&format!("/manage/feedback/{feedback}")).await;
    assert!(one.contains(doubt) && one.contains(&format!("#{glass}")), "{one}");
    officer
        .post(
            &format!("/manage/feedback/{feedback}/answer"),
            &[("csrf", &officer_token), ("reply", "该医生在急诊抢救时依规紧急授权查看，已核实。")],
        )
        .await;
    let (_, _, me) = phone.get("/portal/me").await;
    assert!(me.contains(doubt) && me.contains("已核实"), "{me}");

    // A parent acts for their child: the desk records it on the consent it saw.
    put(
        &app,
        &east,
        json!({"resourceType": "Patient", "id": "pc", "name": [{"text": "王小明"}], "gender": "male",
        "birthDate": "2020-05-01", "identifier": [{"system": mrn_system("campus-east"), "value": "E-pc"}]}),
    )
    .await;
    let (_, _, page) = desk.get("/portal/desk/pc").await;
    let token_desk = csrf(&page);
    for (name, consent, field) in [("nobody", "出示户口本", "username"), ("wangfang", "", "consent")] {
        let form = [("csrf", token_desk.as_str()), ("username", name), ("relation", "parent"), ("consent", consent)];
        let (status, _, page) = desk.post("/portal/desk/pc/proxies", &form).await;
        assert!(page.contains(&format!("data-field=\"{field}\"")), "{status} {field}: {page}");
    }
    let form = [
        ("csrf", token_desk.as_str()),
        ("username", "wangfang"),
        ("relation", "parent"),
        ("consent", "出示户口本，母亲"),
    ];
    let (_, loc, _) = desk.post("/portal/desk/pc/proxies", &form).await;
    assert_eq!(loc, "/portal/desk/pc");
    let (_, _, page) = desk.get("/portal/desk/pc").await;
    let proxy = between(&page, "data-proxy=\"", "\"").to_string();

    let (_, _, home) = phone.get("/portal").await;
    assert!(home.contains("data-for=\"pc\"") && home.contains("王小明"), "{home}");
    let (_, loc, _) = phone.get("/portal/for/pc").await;
    assert_eq!(loc, "/portal");
    let (_, _, home) = phone.get("/portal").await;
    assert!(home.contains("正在为 王小明 办理"), "{home}");
    let (_, _, page) = phone.get("/portal/book/doctor/role-li").await;
    let for_child = slot_of(&page, "2026-11-24", "09:30");
    let (_, loc, _) =
        phone.post("/portal/book", &[("csrf", &token), ("slot", &for_child), ("role", "role-li"), ("move", "")]).await;
    assert_eq!(loc, "/portal/visits?done=booked");
    let (_, _, visits) = phone.get("/portal/visits").await;
    let child_visit = between(&visits, "data-appointment=\"", "\"").to_string();
    let a = app.fhir.reader(&system, lianyi_fhir::ResourceType::parse("Appointment").unwrap()).await.unwrap();
    assert!(a.read(&child_visit).await.unwrap().body.contains("Patient/pc"), "booked for the child");
    let q = AuditQuery {
        actor: Some("user:wangfang".into()),
        patient: Some("pc".into()),
        limit: 100,
        ..Default::default()
    };
    let by_proxy = app.store.audit_records(&q).await.unwrap();
    assert!(
        by_proxy.iter().any(|r| r.entry.action == "create" && r.entry.role.as_deref() == Some("proxy")),
        "the proxy's booking is audited as theirs: {by_proxy:?}"
    );
    // As the child's proxy, and as themselves: nobody else's data by any id, in the
    // portal or through the FHIR API with a patient's token.
    let wrong = id_swaps(&mut phone, &token, &others).await;
    assert!(wrong.is_empty(), "as a proxy: {wrong:?}");

    let patients_token = app.client_with("patient/*.rs", "*", Some("pa")).await;
    for (t, id) in [
        ("Patient", "pb"),
        ("DiagnosticReport", others.report.as_str()),
        ("Appointment", others.appointment.as_str()),
        ("Encounter", others.visit.as_str()),
        ("DocumentReference", others.photo.as_str()),
        ("Observation", "obs-pb"),
    ] {
        let r = patients_token.get(app.url(&format!("/fhir/{t}/{id}"))).send().await.unwrap();
        assert!([StatusCode::FORBIDDEN, StatusCode::NOT_FOUND].contains(&r.status()), "{t}/{id}: {}", r.status());
    }
    let r = patients_token.get(app.url("/fhir/Observation?patient=Patient/pb")).send().await.unwrap();
    let bundle: Value = r.json().await.unwrap();
    assert!(bundle["entry"].as_array().is_none_or(|e| e.is_empty()), "{bundle}");
    let r = patients_token.get(app.url("/fhir/Patient/pb/$everything")).send().await.unwrap();
    assert!([StatusCode::FORBIDDEN, StatusCode::NOT_FOUND].contains(&r.status()), "$everything: {}", r.status());

    // The desk withdraws it: the next request is the parent's own pages again.
    desk.post(&format!("/portal/desk/pc/proxies/{proxy}/revoke"), &[("csrf", &token_desk)]).await;
    let (_, loc, _) = phone.get("/portal/visits").await;
    assert_eq!(loc, "/portal/for/me?ended=1");
    let (_, loc, _) = phone.get(&loc).await;
    let (_, _, home) = phone.get(&loc).await;
    assert!(home.contains("代办授权已结束") && !home.contains("正在为"), "{home}");
    assert!(audited(&app, "proxy-act", "denied").await >= 2, "the revoked request and the id swap");
    let wrong = id_swaps(&mut phone, &token, &others).await;
    assert!(wrong.is_empty(), "as themselves: {wrong:?}");

    // Guided triage: a danger sign sends to the emergency department first; the rest
    // is matched to the departments that take bookings; the sources and disclaimer show.
    let (_, _, page) = phone.get("/portal/triage").await;
    assert!(page.contains("id=\"disclaimer\"") && page.contains("value=\"chest-pain\""), "{page}");
    let (status, _, page) = phone.post("/portal/triage", &[("csrf", &token)]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("data-field=\"symptoms\"") && page.contains("请至少选择一个症状"), "{page}");
    let (_, _, page) =
        phone.post("/portal/triage", &[("csrf", &token), ("symptom", "cough"), ("symptom", "chest-pain")]).await;
    let advice = between(&page, "id=\"advice\"", "</section>");
    assert!(advice.contains("id=\"emergency\"") && advice.contains("拨打 120"), "{advice}");
    let first = between(advice, "data-kind=\"", "\"");
    assert_eq!(first, "ed");
    assert!(advice.contains("data-kind=\"resp\"") && advice.contains("本院暂无此科室的网上号源"), "{advice}");
    assert!(advice.contains("data-department=\"east-im\""), "internal medicine is bookable: {advice}");
    assert!(advice.contains("欧洲心脏病学会 2020"), "the sources: {advice}");

    // A code left a week and a day expires.
    let (_, _, page) = desk.get("/portal/desk/pb").await;
    let (_, _, slip) = desk.post("/portal/desk/pb", &[("csrf", &csrf(&page))]).await;
    let old = between(&slip, "id=\"activation-code\">", "<").to_string();
    clock.advance(8 * 86_400_000);
    let mut late = Browser::new(&app.base, "zh-CN");
    let (status, _, page) =
        activate(&mut late, &old, &resident_id(456), "13900139000", "zhaoqiang", "a long passphrase 2").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("data-field=\"code\"") && page.contains("激活码已过期"), "{page}");
    assert!(app.users.patient_accounts("pb").await.unwrap().is_empty());

    // A fresh code stops after five wrong identities, whatever comes after.
    let (mut desk, _) = logged_in(&app, &clock, "reg.portal2", "registrar", "campus-east", None).await;
    let (_, _, page) = desk.get("/portal/desk/pb").await;
    let (_, _, slip) = desk.post("/portal/desk/pb", &[("csrf", &csrf(&page))]).await;
    let fresh = between(&slip, "id=\"activation-code\">", "<").to_string();
    for _ in 0..5 {
        activate(&mut late, &fresh, &resident_id(456), "13900139999", "zhaoqiang", "a long passphrase 2").await;
    }
    let (_, _, page) =
        activate(&mut late, &fresh, &resident_id(456), "13900139000", "zhaoqiang", "a long passphrase 2").await;
    assert!(page.contains("错误次数过多"), "{page}");
    assert!(app.users.patient_accounts("pb").await.unwrap().is_empty());

    // Guessing is slowed down per address too (on top of each code's and account's limits).
    let mut statuses = Vec::new();
    for i in 0..40 {
        let code = format!("ABCD{:04}", 2222 + i);
        let form = [("csrf", "x"), ("code", code.as_str()), ("resident_id", "x"), ("phone", "1")];
        statuses.push(late.post("/portal/activate", &form).await.0);
    }
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    let (status, _, _) =
        late.post("/portal/login", &[("csrf", "x"), ("username", "wangfang"), ("password", "guess")]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

/// The acceptance walk in a real Chromium at a phone's size (390 × 844), in Chinese
/// then English, one patient each: open the account with the slip's code, book at
/// the other campus (whose registrar sees it), read the report with its flags after
/// the visit, ask the doctor with a photo (who answers from the staff inbox), see who
/// read the record, and, as a parent, book for their child.
/// The code in a message: `ABCD-EFGH`.
fn code_in(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    (0..chars.len().saturating_sub(8))
        .map(|i| chars[i..i + 9].iter().collect::<String>())
        .find(|w| {
            w.as_bytes()[4] == b'-'
                && w.chars().filter(|c| *c != '-').all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        })
        .unwrap_or_else(|| panic!("no code in {text}"))
}

async fn sign_up(b: &mut Browser, fields: &[(&str, &str)]) -> (StatusCode, String) {
    let (_, _, page) = b.get("/portal/signup").await;
    let token = csrf(&page);
    let mut form = vec![("csrf", token.as_str())];
    form.extend_from_slice(fields);
    let (status, _, page) = b.post("/portal/signup", &form).await;
    (status, page)
}

/// Online sign-up with the SMS gateway (a local receiver) and the mail server (a real
/// SMTP sink, aiosmtpd) configured: a certain match gets its code by SMS at once and
/// opens the account; a mail address the record does not hold waits for the desk,
/// which picks the record and the code goes by mail; an unknown person is declined
/// with a reason; a gateway that refuses leaves no code behind; the desk sends a
/// patient's code to their record's phone. Bad input is named, and nothing is sent.
#[tokio::test]
async fn a_patient_signs_up_online_and_codes_go_by_sms_and_by_real_smtp() {
    let sink = crate::helpers::SmtpSink::start();
    let sms = crate::helpers::SmsReceiver::start().await;
    let clock = ManualClock::new(MONDAY_0830);
    let (smtp_port, sms_port) = (sink.port, sms.port);
    let app = crate::helpers::spawn_app_adjusted(1 << 20, Some(clock.clone()), move |c| {
        c.mail = Some(lianyi_web::MailConfig {
            url: format!("smtp://127.0.0.1:{smtp_port}"),
            from: "desk <itdesk@hospital.test>".into(),
        });
        c.portal_mail_from = Some("联医患者服务 <portal@hospital.test>".into());
        c.sms_gateway = Some(lianyi_portal::courier::SmsGateway {
            url: format!("http://127.0.0.1:{sms_port}/sms/send"),
            method: "POST".into(),
            body: Some(r#"{"mobile":"{phone}","content":"{text}"}"#.into()),
            content_type: "application/json".into(),
            headers: vec![("X-Api-Key".into(), "test-key".into())],
        });
    })
    .await;
    group(&app).await;
    let east = app.client_with("system/*.cruds", "campus-east", None).await;
    put(&app, &east, json!({"resourceType": "Patient", "id": "pc", "name": [{"text": "孙丽"}], "gender": "female", "birthDate": "1980-01-01",
        "identifier": [{"system": RESIDENT_ID_SYSTEM, "value": resident_id(322)}, {"system": mrn_system("campus-east"), "value": "E-pc"}],
        "telecom": [{"system": "phone", "value": "13700137000"}, {"system": "email", "value": "sun@example.test"}]})).await;

    let mut phone = Browser::new(&app.base, "zh-CN");
    let (_, _, page) = phone.get("/portal/activate").await;
    assert!(page.contains("id=\"to-signup\""), "offered once a channel is configured: {page}");
    let (status, _, page) = phone.get("/portal/signup").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"channel-sms\"") && page.contains("id=\"channel-email\""), "{page}");

    // Bad input: each rule named, nothing sent or kept.
    let (status, page) = sign_up(
        &mut phone,
        &[("name", ""), ("resident_id", "123"), ("phone", "12"), ("email", "x@"), ("channel", "fax")],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    for field in ["name", "resident_id", "phone", "email", "channel"] {
        assert!(page.contains(&format!("data-field=\"{field}\"")), "{field}: {page}");
    }
    let pa_id = resident_id(124);
    let (status, page) =
        sign_up(&mut phone, &[("name", "王芳"), ("resident_id", &pa_id), ("phone", PHONE), ("channel", "email")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("选择邮件发送时请填写邮箱地址"), "{page}");
    assert!(sms.received().is_empty() && sink.messages().is_empty());

    // A certain match: the code goes by SMS, through the configured request, at once.
    let (status, page) = sign_up(
        &mut phone,
        &[("name", "王 芳"), ("resident_id", &pa_id), ("phone", "138-0013-8000"), ("channel", "sms")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("id=\"signup-done\""), "{page}");
    let done = page;
    let got = sms.received();
    assert_eq!(got.len(), 1);
    assert!(got[0].starts_with("POST /sms/send "), "{}", got[0]);
    assert!(got[0].to_ascii_lowercase().contains("x-api-key: test-key"), "{}", got[0]);
    let body: Value = serde_json::from_str(got[0].split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["mobile"], PHONE);
    let text = body["content"].as_str().unwrap();
    assert!(text.contains("30 分钟"), "{text}");
    let (_, loc, _) = activate(&mut phone, &code_in(text), &pa_id, PHONE, "wangfang", "a long passphrase 1").await;
    assert_eq!(loc, "/portal/login?m=activated");
    // Again for the same record: the account exists, nothing is sent, and the page
    // is the same as for anyone (it tells no one who is a patient here).
    let (status, page) =
        sign_up(&mut phone, &[("name", "王芳"), ("resident_id", &pa_id), ("phone", PHONE), ("channel", "sms")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(between(&page, "<main", "</main>"), between(&done, "<main", "</main>"));
    assert_eq!(sms.received().len(), 1);

    // A mail address the record does not hold: it waits for the desk, and the person
    // learns nothing of the record.
    let pb_id = resident_id(456);
    let mut other = Browser::new(&app.base, "en");
    let (status, page) = sign_up(
        &mut other,
        &[
            ("name", "赵强"),
            ("resident_id", &pb_id),
            ("phone", "13900139000"),
            ("email", "Zhao@Example.test"),
            ("channel", "email"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(between(&page, "<main", "</main>"), between(&done, "<main", "</main>"), "the same page");
    // An unknown person waits too.
    let (status, page) = sign_up(
        &mut other,
        &[("name", "钱多"), ("resident_id", &resident_id(789)), ("phone", "13600136000"), ("channel", "sms")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(between(&page, "<main", "</main>"), between(&done, "<main", "</main>"), "the same page");
    assert!(sink.messages().is_empty() && sms.received().len() == 1, "nothing sent for the waiting");

    // The desk: the waiting sign-ups with the index's candidates; a nurse may not.
    let (mut desk, _) = logged_in(&app, &clock, "reg.signup", "registrar", "campus-east", None).await;
    let (_, _, home) = desk.get("/").await;
    assert!(home.contains("href=\"/portal/signups\""), "the desk's home links the sign-ups");
    let (status, _, list) = desk.get("/portal/signups").await;
    assert_eq!(status, StatusCode::OK);
    let card = |name: &str| {
        let c = list.split("data-signup=\"").find(|c| c.contains(name)).unwrap_or_else(|| panic!("{name}: {list}"));
        (c.split('"').next().unwrap().to_string(), c.split("</article>").next().unwrap().to_string())
    };
    let (zhao, zhao_card) = card("赵强");
    assert!(zhao_card.contains("value=\"pb\""), "pb is a candidate: {zhao_card}");
    let (qian, qian_card) = card("钱多");
    assert!(qian_card.contains("索引中没有相似档案") && !qian_card.contains("name=\"patient\""), "{qian_card}");
    let (mut nurse, _) = logged_in(&app, &clock, "nurse.signup", "nurse", "campus-east", None).await;
    assert_eq!(nurse.get("/portal/signups").await.0, StatusCode::FORBIDDEN);
    // No record picked: named.
    let (status, _, page) = desk.post(&format!("/portal/signups/{zhao}/send"), &[("csrf", &csrf(&list))]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("请选择与申请人一致的档案"), "{page}");
    let (status, _, page) =
        desk.post(&format!("/portal/signups/{zhao}/send"), &[("csrf", &csrf(&list)), ("patient", "pb")]).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("z***@example.test") && !page.contains(&format!("data-signup=\"{zhao}\"")), "{page}");
    let mail = sink.messages();
    assert_eq!(mail.len(), 1);
    assert!(mail[0].0.contains("zhao@example.test") && mail[0].1.contains("联医患者服务开通码"), "{mail:?}");
    assert!(mail[0].2.contains("7 天"), "{mail:?}");
    let (_, loc, _) =
        activate(&mut other, &code_in(&mail[0].2), &pb_id, "13900139000", "zhaoqiang", "a long passphrase 2").await;
    assert_eq!(loc, "/portal/login?m=activated");
    // Declining needs a reason.
    let (status, _, page) = desk.post(&format!("/portal/signups/{qian}/decline"), &[("csrf", &csrf(&list))]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("data-field=\"note\""), "{page}");
    let (_, loc, _) = desk
        .post(&format!("/portal/signups/{qian}/decline"), &[("csrf", &csrf(&list)), ("note", "电话核实不是本院患者")])
        .await;
    assert_eq!(loc, "/portal/signups");
    let (_, _, list) = desk.get("/portal/signups").await;
    assert!(list.contains("id=\"no-signups\""), "{list}");

    // The desk sends pc's code to the phone the record holds.
    let (_, _, page) = desk.get("/portal/desk/pc").await;
    assert!(page.contains("id=\"send-sms\"") && page.contains("id=\"send-email\""), "{page}");
    let (status, _, page) = desk.post("/portal/desk/pc/send", &[("csrf", &csrf(&page)), ("channel", "sms")]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("137****7000"), "{page}");
    let got = sms.received();
    assert_eq!(got.len(), 2);
    assert!(got[1].contains("13700137000"), "{}", got[1]);

    // The gateway refuses: the desk's code (sent above) still stands, the new one is
    // withdrawn, and the sign-up waits for the desk.
    let desks_code = app.fhir.operations().portal().latest_of("pc").await.unwrap().unwrap();
    sms.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let pc_id = resident_id(322);
    let (status, page) =
        sign_up(&mut phone, &[("name", "孙丽"), ("resident_id", &pc_id), ("phone", "13700137000"), ("channel", "sms")])
            .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(between(&page, "<main", "</main>"), between(&done, "<main", "</main>"), "the same page");
    assert_eq!(sms.received().len(), 3, "tried");
    let latest = app.fhir.operations().portal().latest_of("pc").await.unwrap().unwrap();
    assert_eq!(latest.code_hash, desks_code.code_hash, "the unsent code is withdrawn, the sent one kept");
    let (_, _, list) = desk.get("/portal/signups").await;
    assert!(list.contains("孙丽"), "to the desk: {list}");
    // By mail, which the record holds: a certain match, sent at once.
    let (status, page) = sign_up(
        &mut phone,
        &[
            ("name", "孙丽"),
            ("resident_id", &pc_id),
            ("phone", "13700137000"),
            ("email", "sun@example.test"),
            ("channel", "email"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let mail = sink.messages();
    assert_eq!(mail.len(), 2);
    assert!(mail.iter().any(|m| m.0.contains("sun@example.test") && m.2.contains("30 分钟")), "{mail:?}");
    let latest = app.fhir.operations().portal().latest_of("pc").await.unwrap().unwrap();
    assert_ne!(latest.code_hash, desks_code.code_hash, "once sent, the new code replaces the older");
    // At once again: nothing more is sent to that record for a while (the same page).
    let (status, page) = sign_up(
        &mut other,
        &[
            ("name", "孙丽"),
            ("resident_id", &pc_id),
            ("phone", "13700137000"),
            ("email", "sun@example.test"),
            ("channel", "email"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(between(&page, "<main", "</main>"), between(&done, "<main", "</main>"), "the same page");
    assert_eq!(sink.messages().len(), 2, "no second code within {} minutes", lianyi_portal::signup::RESEND_MINUTES);
    // A slip printed before codes were keyed (its plain SHA-256 kept) still opens.
    put(&app, &east, json!({"resourceType": "Patient", "id": "pe", "name": [{"text": "周静"}], "gender": "female", "birthDate": "1980-01-01",
        "identifier": [{"system": RESIDENT_ID_SYSTEM, "value": resident_id(544)}], "telecom": [{"system": "phone", "value": "13500135000"}]})).await;
    let legacy = lianyi_store::portal::Activation {
        code_hash: lianyi_security::secrets::secret_hash("portal-activation:ABCDEFGH"),
        patient: "pe".into(),
        campus: "campus-east".into(),
        issued_by: "reg.before".into(),
        issued_at: MONDAY_0830,
        expires_at: MONDAY_0830 + 86_400_000,
        ..Default::default()
    };
    app.fhir.operations().portal().issue(&legacy).await.unwrap();
    let mut old_slip = Browser::new(&app.base, "zh-CN");
    let (_, loc, _) =
        activate(&mut old_slip, "ABCD-EFGH", &resident_id(544), "13500135000", "zhoujing", "a long passphrase 3").await;
    assert_eq!(loc, "/portal/login?m=activated");
    assert_eq!(audited(&app, "portal-signup", "success").await, 5);
    assert_eq!(audited(&app, "portal-signup", "failure").await, 3);
    assert_eq!(audited(&app, "portal-signup-match", "success").await, 2);
}

#[tokio::test]
async fn chromium_a_patient_on_a_phone_books_reads_asks_and_books_for_their_child() {
    let clock = ManualClock::new(MONDAY_0830);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    group(&app).await;
    let east = app.client_with("system/*.cruds", "campus-east", None).await;
    let (mut desk, _) = logged_in(&app, &clock, "reg.walk", "registrar", "campus-east", None).await;
    let (mut west, _) = logged_in(&app, &clock, "reg.walk.west", "registrar", "campus-west", None).await;
    let (mut chen, _) = logged_in(&app, &clock, "chen.west", "doctor", "campus-west", None).await;
    // localhost, so Chromium keeps the Secure __Host- cookies over plain http.
    let site = app.base.replace("127.0.0.1", "localhost");
    let photo = std::env::temp_dir().join(format!("lianyi-portal-walk-{}.png", std::process::id()));
    std::fs::write(&photo, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89").unwrap();
    let d = crate::browser::Driver::start_sized(390, 844).await;
    for (lang, patient, child, seq, phone_no, time, flag_text, asked, answered) in [
        ("zh", "pz", "cz", 202, "13600136000", "10:00", "偏高：高于参考范围", "伤口还疼，需要换药吗？", "明天来换药。"),
        (
            "en",
            "pe",
            "ce",
            204,
            "13700137000",
            "10:30",
            "High: above the reference range",
            "Does the wound need a new dressing?",
            "Come tomorrow for a new dressing.",
        ),
    ] {
        let name = if lang == "zh" { "孙丽" } else { "周红" };
        put(&app, &east, json!({"resourceType": "Patient", "id": patient, "name": [{"text": name}], "gender": "female", "birthDate": "1980-01-01",
            "identifier": [{"system": RESIDENT_ID_SYSTEM, "value": resident_id(seq)}, {"system": mrn_system("campus-east"), "value": format!("E-{patient}")}],
            "telecom": [{"system": "phone", "value": phone_no}]})).await;
        put(&app, &east, json!({"resourceType": "Patient", "id": child, "name": [{"text": format!("{name}的孩子")}], "gender": "male",
            "birthDate": "2021-03-01", "identifier": [{"system": mrn_system("campus-east"), "value": format!("E-{child}")}]})).await;
        let (_, _, page) = desk.get(&format!("/portal/desk/{patient}")).await;
        let (_, _, slip) = desk.post(&format!("/portal/desk/{patient}"), &[("csrf", &csrf(&page))]).await;
        let code = between(&slip, "id=\"activation-code\">", "<").to_string();

        // Opening the account on the phone.
        d.goto(&format!("{site}/portal/login")).await;
        if lang == "en" {
            d.click("#lang-switch").await;
            d.wait_text("Patient login", 5).await;
        }
        d.check_portal(false).await;
        d.click("#to-activate").await;
        d.wait_url("/portal/activate").await;
        d.check_portal(false).await;
        let username = format!("walk-{patient}");
        d.type_into("#code", &code).await;
        d.type_into("#resident_id", &resident_id(seq)).await;
        d.type_into("#phone", phone_no).await;
        d.type_into("#username", &username).await;
        d.type_into("#password", "a walking passphrase").await;
        d.type_into("#confirm", "a walking passphrase").await;
        d.click("#activate").await;
        d.wait_url("/portal/login?m=activated").await;
        d.type_into("#username", &username).await;
        d.type_into("#password", "a walking passphrase").await;
        d.click("#login").await;
        d.find("#go-book").await;
        d.check_portal(true).await;
        d.screenshot("portal", &format!("home-{lang}")).await;

        // Booking at West, the other campus.
        d.click("#go-book").await;
        d.wait_url("/portal/book").await;
        d.check_portal(true).await;
        d.click("a[data-department='west-sur']").await;
        d.wait_url("/portal/book/dept/west-sur").await;
        d.check_portal(true).await;
        d.click("a[data-role='role-chen']").await;
        d.wait_url("/portal/book/doctor/role-chen").await;
        d.check_portal(true).await;
        d.screenshot("portal", &format!("slots-{lang}")).await;
        d.click(&format!("button[aria-label='2026-11-23 {time}']")).await;
        d.wait_url("/portal/visits?done=booked").await;
        d.check_portal(true).await;
        let visits = d.body().await;
        assert!(visits.contains(if lang == "zh" { "西院区" } else { "West Campus" }), "{visits}");
        let (_, _, home) = west.get("/").await;
        assert!(home.contains(&format!("{time} {name}")), "West's desk sees it: {home}");

        // The visit, and the report after it.
        let appointment = {
            let system = Caller::task(SystemTask::Operator("test".into()));
            let rt = lianyi_fhir::ResourceType::parse("Appointment").unwrap();
            let params =
                [("patient".to_string(), format!("Patient/{patient}")), ("status".to_string(), "booked".to_string())];
            let req = lianyi_fhir::search::parse_search(rt, &params).unwrap();
            let permit = app.fhir.permit(&system, rt).await.unwrap();
            app.fhir.search(&permit, &req).await.unwrap().resources[0].id.clone()
        };
        let (_, _, page) = west.get(&format!("/patients/{patient}")).await;
        let (_, loc, _) = west
            .post(&format!("/appointments/{appointment}/check-in"), &[("csrf", &csrf(&page)), ("patient", patient)])
            .await;
        assert!(loc.contains("checked-in"), "{loc}");
        if lang == "zh" {
            // The queue line keeps itself current: the doctor calls, the page (not
            // reloaded) says so within its 20-second refresh.
            d.click("#tab-visits").await;
            d.wait_url("/portal/visits").await;
            d.wait_text("前面还有 0 人", 5).await;
            let system = Caller::task(SystemTask::Operator("test".into()));
            let called = Scheduling::new(app.fhir.clone()).call_next(&system, "west-sur").await.unwrap();
            assert!(called.is_some());
            d.wait_text("请到诊室就诊（排队号 1）", 30).await;
            d.check_portal(true).await;
        }
        let report = potassium(&app, patient, 6.1, "H").await;
        d.click("#tab-reports").await;
        d.wait_url("/portal/reports").await;
        d.check_portal(true).await;
        d.click(&format!("a[data-report='{report}']")).await;
        d.wait_url(&format!("/portal/reports/{report}")).await;
        d.check_portal(true).await;
        assert!(d.body().await.contains(flag_text));
        d.screenshot("portal", &format!("report-{lang}")).await;

        // A question with a photo; the doctor answers from the staff inbox.
        d.click("#tab-messages").await;
        d.wait_url("/portal/messages").await;
        d.check_portal(true).await;
        d.type_into("#text", asked).await;
        d.type_into("#photo", photo.to_str().unwrap()).await;
        d.click("#send-question").await;
        d.wait_text(if lang == "zh" { "问题已发送给医生" } else { "Your question has gone" }, 10).await;
        d.check_portal(true).await;
        let (_, _, inbox) = chen.get("/portal/inbox").await;
        let question = between(&inbox, "<tr data-question=\"", "\"").to_string();
        assert!(inbox.contains(asked), "{inbox}");
        chen.post(&format!("/portal/inbox/{question}/answer"), &[("csrf", &csrf(&inbox)), ("text", answered)]).await;
        d.goto(&format!("{site}/portal/messages")).await;
        d.wait_text(answered, 5).await;
        d.check_portal(true).await;
        d.screenshot("portal", &format!("messages-{lang}")).await;

        // Who read the record.
        d.click("#tab-me").await;
        d.wait_url("/portal/me").await;
        d.check_portal(true).await;
        let me = d.text("#access-log").await;
        assert!(me.contains(if lang == "zh" { "挂号员 · 西院区" } else { "Registrar · West Campus" }), "{me}");

        // The desk records the parent for the child; the parent books for the child.
        let (_, _, page) = desk.get(&format!("/portal/desk/{child}")).await;
        let form = [
            ("csrf", csrf(&page)),
            ("username", username.clone()),
            ("relation", "parent".into()),
            ("consent", "出示出生证明".into()),
        ];
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        desk.post(&format!("/portal/desk/{child}/proxies"), &form).await;
        d.click("#tab-home").await;
        d.wait_url("/portal").await;
        d.click(&format!("a[data-for='{child}']")).await;
        d.find("#acting-for").await;
        d.check_portal(true).await;
        d.goto(&format!("{site}/portal/book/doctor/role-li")).await;
        d.check_portal(true).await;
        let child_time = if lang == "zh" { "09:00" } else { "09:30" };
        d.click(&format!("button[aria-label='2026-11-24 {child_time}']")).await;
        d.wait_url("/portal/visits?done=booked").await;
        assert!(d.text("#acting-for").await.contains(&format!("{name}的孩子")));
        d.screenshot("portal", &format!("proxy-{lang}")).await;
        d.click("#portal-logout").await;
        d.wait_url("/portal/login").await;
    }
    let _ = std::fs::remove_file(&photo);
    d.cmd(reqwest::Method::DELETE, "", json!({})).await;
}
