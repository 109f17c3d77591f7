//! Medical equipment over the pages: the equipment engineer registers an ultrasound
//! (bad fields named), accepts it into service so its maintenance and calibration are
//! planned; the ward reports it broken, the engineer takes and finishes the repair,
//! and the response and repair times are recorded; a second report while one is open
//! is refused; scrapping is asked by the engineer and approved by a manager, once — a
//! second approval names the state. Calibration reminders follow the injected clock.
//! A Chromium walk in both languages.

use lianyi_manage::assets::{AssetForm, Equipment};
use lianyi_manage::equipment::Due;
use lianyi_security::{Caller, ManualClock};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, put_resource as put, spawn_app_clocked};
use crate::pages::{between, logged_in};

/// Monday 7 December 2026, 09:00 in Beijing.
const MONDAY_0900: i64 = 1_796_605_200_000;
const MINUTE: i64 = 60_000;
const DAY: i64 = 86_400_000;

/// East Campus, its ultrasound department and a sonographer of it (user `sono.east`).
async fn directory(app: &TestApp) {
    let east = app.client_with("system/*.cruds", "campus-east", None).await;
    put(
        &east,
        app,
        json!({"resourceType": "Organization", "id": "campus-east", "name": "东院区", "alias": ["East Campus"]}),
    )
    .await;
    put(
        &east,
        app,
        json!({"resourceType": "Organization", "id": "east-us", "name": "超声科", "alias": ["Ultrasound"],
               "partOf": {"reference": "Organization/campus-east"}}),
    )
    .await;
    put(
        &east,
        app,
        json!({"resourceType": "Practitioner", "id": "dr-sun", "name": [{"text": "孙医生"}],
               "identifier": [{"system": lianyi_clinical::orders::USER_SYSTEM, "value": "sono.east"}]}),
    )
    .await;
    put(
        &east,
        app,
        json!({"resourceType": "PractitionerRole", "id": "role-sun-us", "active": true,
               "practitioner": {"reference": "Practitioner/dr-sun"},
               "organization": {"reference": "Organization/east-us"}}),
    )
    .await;
}

fn ultrasound(tag: &str) -> Vec<(&'static str, String)> {
    vec![
        ("campus", "campus-east".into()),
        ("department", "east-us".into()),
        ("tag", tag.into()),
        ("name_zh", "彩色多普勒超声诊断仪".into()),
        ("name_en", "Colour Doppler ultrasound".into()),
        ("category", "ultrasound".into()),
        ("model", "LOGIQ E10".into()),
        ("maker", "GE".into()),
        ("cost", "1280000.00".into()),
        ("purchased_on", "2026-11-20".into()),
        ("pm_days", "90".into()),
        ("calibration_days", "365".into()),
    ]
}

async fn post(
    b: &mut crate::pages::Browser,
    path: &str,
    token: &str,
    fields: &[(&str, String)],
) -> (StatusCode, String, String) {
    let mut form: Vec<(&str, &str)> = vec![("csrf", token)];
    form.extend(fields.iter().map(|(k, v)| (*k, v.as_str())));
    b.post(path, &form).await
}

#[tokio::test]
async fn a_broken_ultrasound_is_reported_repaired_and_its_times_recorded() {
    let clock = ManualClock::new(MONDAY_0900);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    directory(&app).await;
    let (mut engineer, token) = logged_in(&app, &clock, "eng.east", "equipment-engineer", "campus-east", None).await;
    let (mut sono, sono_token) = logged_in(&app, &clock, "sono.east", "doctor", "campus-east", None).await;
    let (mut manager, mgr_token) = logged_in(&app, &clock, "mgr.east", "manager", "campus-east", None).await;

    // Bad fields are named; nothing is registered.
    let mut bad = ultrasound("US 01");
    bad.retain(|(k, _)| !matches!(*k, "cost" | "pm_days"));
    bad.push(("cost", "12.345".into()));
    bad.push(("pm_days", "0".into()));
    let (status, _, page) = post(&mut engineer, "/manage/equipment", &token, &bad).await;
    assert_eq!(status, StatusCode::OK);
    let errors = between(&page, "id=\"eq-errors\"", "</div>");
    for field in ["资产编号", "原值（元）", "保养周期（天）"] {
        assert!(errors.contains(field), "{field}: {errors}");
    }
    // Only engineers register.
    let (status, _, _) = post(&mut sono, "/manage/equipment", &sono_token, &ultrasound("US-01")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, loc, _) = post(&mut engineer, "/manage/equipment", &token, &ultrasound("US-01")).await;
    let id: i64 = between(&format!("{loc}?"), "/manage/equipment/", "?").parse().unwrap();
    let (_, _, page) = post(&mut engineer, "/manage/equipment", &token, &ultrasound("US-01")).await;
    assert!(page.contains("该资产编号已被使用"), "a tag in use is refused");
    // Not in service yet: no fault can be reported.
    let (_, _, page) = sono.get("/manage/repairs?campus=campus-east").await;
    assert!(!page.contains("id=\"rep-form\""), "nothing to report before acceptance");
    let (_, loc, _) = post(&mut engineer, &format!("/manage/equipment/{id}/accept"), &token, &[]).await;
    assert_eq!(loc, format!("/manage/equipment/{id}?done=accept"));
    let system = Caller::task(lianyi_security::SystemTask::Operator("test".into()));
    let equipment = Equipment::new(app.fhir.clone());
    let (asset, _) = equipment.asset(&system, id).await.unwrap();
    assert_eq!(asset.state, "in-service");
    assert_eq!(asset.pm_due.as_deref(), Some("2027-03-07"));
    assert_eq!(asset.calibration_due.as_deref(), Some("2027-12-07"));

    // The sonographer reports it broken at 09:00; a second report is refused.
    let fault = [("campus", "campus-east".to_string()), ("asset", id.to_string()), ("fault", "探头无图像".to_string())];
    let (_, loc, _) = post(&mut sono, "/manage/repairs", &sono_token, &fault).await;
    let repair: i64 = loc.rsplit("reported-").next().unwrap().parse().unwrap();
    let (_, _, page) = post(&mut sono, "/manage/repairs", &sono_token, &fault).await;
    assert!(page.contains("已有未完成的维修单"), "{}", between(&page, "<main", "</main>"));
    // The sonographer may not take it; the engineer takes it 12 minutes later.
    let campus = [("campus", "campus-east".to_string())];
    let (status, _, _) = post(&mut sono, &format!("/manage/repairs/{repair}/take"), &sono_token, &campus).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    clock.advance(12 * MINUTE);
    post(&mut engineer, &format!("/manage/repairs/{repair}/take"), &token, &campus).await;
    assert_eq!(equipment.asset(&system, id).await.unwrap().0.state, "under-repair");
    // Finishing without saying what was done is refused; then repaired 2 h 5 min
    // after the report.
    let (_, _, page) = post(&mut engineer, &format!("/manage/repairs/{repair}/finish"), &token, &campus).await;
    assert!(page.contains("维修内容: 必填"), "{}", between(&page, "<main", "</main>"));
    // Two hours pass (each page kept open: a session ends after 15 idle minutes).
    for step in [14, 14, 14, 14, 14, 14, 14, 14, 1] {
        engineer.get("/manage/repairs").await;
        sono.get("/manage/repairs").await;
        manager.get("/manage/equipment").await;
        clock.advance(step * MINUTE);
    }
    let finish =
        [("campus", "campus-east".to_string()), ("work", "更换探头线缆".to_string()), ("cost", "3200".to_string())];
    let (_, loc, _) = post(&mut engineer, &format!("/manage/repairs/{repair}/finish"), &token, &finish).await;
    assert_eq!(loc, format!("/manage/repairs?campus=campus-east&done=repaired-{repair}"));
    let (_, _, page) = sono.get("/manage/repairs?campus=campus-east").await;
    assert!(page.contains("响应时间 0 小时 12 分钟"), "{}", between(&page, "<main", "</main>"));
    assert!(page.contains("修复时间 2 小时 5 分钟"));
    let views = equipment.repairs(&system, "campus-east").await.unwrap();
    assert_eq!((views[0].response_minutes, views[0].repair_minutes), (Some(12), Some(125)));
    assert_eq!(equipment.asset(&system, id).await.unwrap().0.state, "in-service");

    // Scrapping: the engineer asks (with a reason), the manager approves; a second
    // approval, or a second request, is refused naming the state; nothing changes.
    let (_, _, page) = post(&mut engineer, &format!("/manage/equipment/{id}/scrap-request"), &token, &[]).await;
    assert!(page.contains("原因: 必填"));
    let reason = [("note", "主板老化，维修费用超过残值".to_string())];
    post(&mut engineer, &format!("/manage/equipment/{id}/scrap-request"), &token, &reason).await;
    let (status, _, _) = post(&mut engineer, &format!("/manage/equipment/{id}/scrap-approve"), &token, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "engineers do not approve their own scrapping");
    let (_, loc, _) = post(&mut manager, &format!("/manage/equipment/{id}/scrap-approve"), &mgr_token, &[]).await;
    assert_eq!(loc, format!("/manage/equipment/{id}?done=scrap-approve"));
    let events_before = equipment.asset(&system, id).await.unwrap().1.len();
    let (_, _, page) = post(&mut manager, &format!("/manage/equipment/{id}/scrap-approve"), &mgr_token, &[]).await;
    assert!(page.contains("状态: 不可操作：设备状态为“已报废”"), "{}", between(&page, "<main", "</main>"));
    let (_, _, page) = post(&mut engineer, &format!("/manage/equipment/{id}/scrap-request"), &token, &reason).await;
    assert!(page.contains("已报废"));
    let (asset, events) = equipment.asset(&system, id).await.unwrap();
    assert_eq!(asset.state, "scrapped");
    assert_eq!(events.len(), events_before, "nothing half-written");
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["purchase", "accept", "repair-report", "repair-take", "repair-done", "scrap-request", "scrap-approve"]
    );

    // Scrapped equipment takes no fault reports.
    let (_, _, page) = post(&mut sono, "/manage/repairs", &sono_token, &fault).await;
    assert!(between(&page, "id=\"rep-errors\"", "</div>").contains("已报废"), "{page}");

    // Reminders follow the clock, on a second ultrasound accepted today: 20 days
    // before its maintenance date it is due soon, after it overdue; maintenance done
    // plans the next. A scrapped asset reminds of nothing.
    let second = AssetForm {
        department: "east-us".into(),
        tag: "US-02".into(),
        name_zh: "便携超声".into(),
        name_en: "Portable ultrasound".into(),
        category: "ultrasound".into(),
        cost: "300000".into(),
        purchased_on: "2026-12-01".into(),
        pm_days: "90".into(),
        ..Default::default()
    };
    let us2 = equipment.register(&system, &second).await.unwrap();
    equipment.accept(&system, us2, "").await.unwrap();
    let pm_of = |list: &[lianyi_manage::assets::AssetView], id: i64| list.iter().find(|v| v.asset.id == id).unwrap().pm;
    clock.set(MONDAY_0900 + 70 * DAY);
    let register = equipment.register_of(&system, "campus-east").await.unwrap();
    assert_eq!(pm_of(&register, us2), Some(Due::Soon(20)));
    assert_eq!(pm_of(&register, id), None, "scrapped");
    clock.set(MONDAY_0900 + 93 * DAY);
    assert_eq!(pm_of(&equipment.register_of(&system, "campus-east").await.unwrap(), us2), Some(Due::Overdue(3)));
    let (mut fresh, fresh_token) =
        logged_in(&app, &clock, "eng2.east", "equipment-engineer", "campus-east", None).await;
    let (_, _, page) = fresh.get("/manage/equipment?campus=campus-east").await;
    assert!(page.contains("id=\"eq-reminders\""));
    post(&mut fresh, &format!("/manage/equipment/{us2}/pm"), &fresh_token, &[]).await;
    assert_eq!(equipment.asset(&system, us2).await.unwrap().0.pm_due.as_deref(), Some("2027-06-08"));

    for action in [
        "equipment-register",
        "equipment-accept",
        "equipment-repair-report",
        "equipment-repair-take",
        "equipment-repair-done",
        "equipment-scrap-approve",
    ] {
        let query = lianyi_store::audit::AuditQuery { action: Some(action.into()), limit: 10, ..Default::default() };
        assert!(!app.store.audit_records(&query).await.unwrap().is_empty(), "{action} audited");
    }
}

/// The ultrasound as an imaging device and a networked one: DCMTK's `storescu` sends
/// two studies under its AE title, and its CMDB item's probe finds its port closed.
/// The register shows its use (studies in 30 and 365 days), its cost per study over
/// the year and its monitoring (down); so does its page. A nurse's register shows
/// none of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_register_shows_a_devices_use_its_cost_per_study_and_its_monitoring() {
    use std::process::Command;

    let app = crate::helpers::spawn_app().await;
    // The app keeps real time (the probes run); the login's code is computed at it.
    let clock = ManualClock::new(lianyi_security::Clock::now_ms(&lianyi_security::SystemClock::default()));
    directory(&app).await;
    let system = Caller::task(lianyi_security::SystemTask::Operator("test setup".into()));
    let draft = lianyi_imaging::aes::AeDraft {
        ae_title: "US-EAST".into(),
        campus: "campus-east".into(),
        host: "127.0.0.1".into(),
        ..Default::default()
    };
    app.imaging.put_ae(&system, &draft).await.unwrap();
    let ops = app.client_with("lianyi:ops", "*", None).await;
    let ci = json!({"code": "US-E1-NET", "name": "东院超声网络接口", "class": "medical-device", "campus": "campus-east",
                    "supportGroup": "system"});
    let r = ops.post(app.url("/api/ops/cis")).json(&ci).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    let probe = json!({"ci": "US-E1-NET", "kind": "tcp", "target": crate::monitor::closed_port(), "interval": 1,
                       "timeout": 500});
    let r = ops.post(app.url("/api/ops/probes")).json(&probe).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    let equipment = Equipment::new(app.fhir.clone());
    let form = AssetForm {
        department: "east-us".into(),
        tag: "US-01".into(),
        name_zh: "彩色多普勒超声诊断仪".into(),
        name_en: "Colour Doppler ultrasound".into(),
        category: "ultrasound".into(),
        cost: "1280000.00".into(),
        purchased_on: "2026-11-20".into(),
        ci: "US-E1-NET".into(),
        ae_title: "US-EAST".into(),
        ..Default::default()
    };
    let id = equipment.register(&system, &form).await.unwrap();
    equipment.accept(&system, id, "").await.unwrap();
    // A chemistry analyser, named CHEM-T1 in its results (OBX-18), with one result
    // today and one last year.
    let analyser = AssetForm {
        tag: "CHEM-01".into(),
        name_zh: "全自动生化分析仪".into(),
        name_en: "Chemistry analyser".into(),
        category: "analyser".into(),
        cost: "1650000".into(),
        ci: String::new(),
        ae_title: String::new(),
        equipment_id: "CHEM-T1".into(),
        ..form.clone()
    };
    let chem = equipment.register(&system, &analyser).await.unwrap();
    equipment.accept(&system, chem, "").await.unwrap();
    let east = app.client_with("system/*.cruds", "campus-east", None).await;
    let now = lianyi_security::Clock::now_ms(&lianyi_security::SystemClock::default());
    for (n, at) in [(1, now - 60_000), (2, now - 400 * DAY)] {
        put(
            &east,
            &app,
            json!({"resourceType": "Observation", "id": format!("chem-{n}"), "status": "final",
                   "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}]},
                   "effectiveDateTime": lianyi_clinical::scheduling::local_instant(at),
                   "valueQuantity": {"value": 4.1, "unit": "mmol/L"},
                   "device": {"identifier": {"value": "CHEM-T1"}, "display": "CHEM-T1"}}),
        )
        .await;
    }

    // Two studies from the ultrasound.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(lianyi_web::serve_dicom(listener, app.imaging.clone(), lianyi_dicom::node::NodeConfig::default()));
    let dir = tempfile::tempdir().unwrap();
    for n in 1..=2 {
        let study = format!("1.2.826.0.1.3680043.2.1125.77{n}");
        let sop = format!("{study}.1.1");
        let body = crate::dicom::data_set(&study, &format!("{study}.1"), &sop, "E1000001", "", 1);
        crate::dicom::write_file(dir.path(), &format!("us{n}.dcm"), &sop, &body);
    }
    let store = Command::new("storescu")
        .args(["-aet", "US-EAST", "-aec", "LIANYI", "+sd", &addr.ip().to_string(), &addr.port().to_string()])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(store.status.success(), "{}", String::from_utf8_lossy(&store.stderr));

    let (mut engineer, _) = logged_in(&app, &clock, "eng.use", "equipment-engineer", "campus-east", None).await;
    let mut cells = Vec::new();
    for _ in 0..100 {
        let (_, _, page) = engineer.get("/manage/equipment?campus=campus-east").await;
        let table = between(&page, "id=\"eq-use\"", "</table>");
        let row = between(table, "data-tag=\"US-01\">", "</tr>");
        cells = row
            .split("<td")
            .skip(3)
            .map(|c| c.split('>').nth(1).unwrap_or_default().split('<').next().unwrap_or_default().to_string())
            .collect();
        if cells.last().is_some_and(|c| c == "故障") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // AE title, 30 days, 365 days, cost, cost per study over the year, monitoring.
    assert_eq!(cells, ["US-EAST", "2", "2", "1280000.00", "640000.00", "故障"]);
    // The analyser: its one result of the year (not networked).
    let (_, _, page) = engineer.get("/manage/equipment?campus=campus-east").await;
    let row = between(between(&page, "id=\"eq-use\"", "</table>"), "data-tag=\"CHEM-01\">", "</tr>");
    for cell in [
        "<td>CHEM-T1</td>",
        "<td class=\"num\">1</td><td class=\"num\">1</td>",
        "1650000.00</td><td class=\"num\">1650000.00",
    ] {
        assert!(row.contains(cell), "{cell}: {row}");
    }
    let (_, _, page) = engineer.get(&format!("/manage/equipment/{id}")).await;
    assert!(page.contains("640000.00") && page.contains("故障"), "{page}");
    // A nurse sees the register (to report faults), not the devices' use.
    let (mut nurse, _) = logged_in(&app, &clock, "nurse.use", "nurse", "campus-east", None).await;
    let (status, _, page) = nurse.get("/manage/equipment?campus=campus-east").await;
    if status == StatusCode::OK {
        assert!(!page.contains("id=\"eq-use\""), "{page}");
    }
}

/// The walk in a real Chromium, in Chinese then English: the sonographer reports the
/// ultrasound broken; the equipment engineer takes the repair and finishes it; the
/// response time shows.
#[tokio::test]
async fn chromium_a_department_reports_a_broken_ultrasound_and_the_engineer_repairs_it() {
    let clock = ManualClock::new(MONDAY_0900);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    directory(&app).await;
    let system = Caller::task(lianyi_security::SystemTask::Operator("test".into()));
    let equipment = Equipment::new(app.fhir.clone());
    let form = AssetForm {
        department: "east-us".into(),
        tag: "US-01".into(),
        name_zh: "彩色多普勒超声诊断仪".into(),
        name_en: "Colour Doppler ultrasound".into(),
        category: "ultrasound".into(),
        cost: "1280000".into(),
        purchased_on: "2026-11-20".into(),
        ..Default::default()
    };
    let id = equipment.register(&system, &form).await.unwrap();
    equipment.accept(&system, id, "").await.unwrap();
    for (name, role) in [("sono.east", "doctor"), ("eng.east", "equipment-engineer")] {
        crate::helpers::account(&app, name, role, "campus-east").await;
    }
    let d = crate::browser::Driver::start().await;
    let mut secrets = Vec::new();
    for (lang, fault, response) in
        [("zh", "探头无图像", "响应时间 0 小时 7 分钟"), ("en", "No image from the probe", "response time 0 h 7 min")]
    {
        for user in ["sono.east", "eng.east"] {
            d.walk_log_in(&app.base, user, &mut secrets, &clock).await;
            d.open_menu().await;
            d.click("a[href='/manage/repairs']").await;
            d.wait_url("/manage/repairs").await;
            d.in_language(lang, "Equipment repairs").await;
            d.check(true).await;
            if user == "sono.east" {
                d.fill("#rep-fault", fault).await;
                d.click("#rep-submit").await;
                d.wait_url("done=reported").await;
                d.check(true).await;
            } else {
                clock.advance(7 * 60_000 - 31_000);
                d.click("article.status-reported button.take").await;
                d.wait_url("done=taken").await;
                d.fill("article.status-in-progress input.work", "更换探头线缆").await;
                d.click("article.status-in-progress button.finish-go").await;
                d.wait_url("done=repaired").await;
                let text = d.text("article.status-repaired").await;
                assert!(text.contains(response), "{text}");
                d.check(true).await;
                d.screenshot("manage", &format!("repair-{lang}")).await;
            }
            d.log_out().await;
        }
    }
}
