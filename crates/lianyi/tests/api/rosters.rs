//! Rosters over the pages: a campus manager sets the shift types and rest rule; a
//! department head builds next month's roster — a day shift too soon after a night is
//! refused with the rule named, a clinic session makes the doctor's Slots, a person
//! already on shift in another department cannot be put in two places at once, a
//! clinic session with a booked Slot is not taken off; each change audited. Two
//! rosterings of one person at once: exactly one stands (both backends). A swap
//! request checked when asked and again when approved by the head.

use lianyi_clinical::scheduling::Scheduling;
use lianyi_manage::rosters::{RosterError, Rosters};
use lianyi_security::{Caller, ManualClock};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, pairs, put_resource as put, spawn_app_clocked};
use crate::pages::{between, csrf, logged_in};

/// Monday 23 November 2026, 08:30 in Beijing.
const MONDAY_0830: i64 = 1_795_393_800_000;

/// Puts `role` on `shift` on `day` from the roster page of `department`.
async fn assign(
    b: &mut crate::pages::Browser,
    token: &str,
    department: &str,
    role: &str,
    day: &str,
    shift: &str,
) -> (StatusCode, String, String) {
    let form = [
        ("csrf", token),
        ("department", department),
        ("month", "2026-12"),
        ("role", role),
        ("day", day),
        ("shift", shift),
    ];
    b.post("/manage/rosters/assign", &form).await
}

/// East: internal medicine (its head Zhou, doctors Li and Wang) and the emergency
/// department (Wang works there too); West: its own internal medicine.
async fn directory(app: &TestApp) {
    let east = app.client_with("system/*.cruds", "campus-east", None).await;
    let west = app.client_with("system/*.cruds", "campus-west", None).await;
    put(
        &east,
        app,
        json!({"resourceType": "Organization", "id": "campus-east", "name": "东院区", "alias": ["East Campus"]}),
    )
    .await;
    put(
        &west,
        app,
        json!({"resourceType": "Organization", "id": "campus-west", "name": "西院区", "alias": ["West Campus"]}),
    )
    .await;
    for (id, zh, en, campus, client) in [
        ("east-im", "内科", "Internal Medicine", "campus-east", &east),
        ("east-er", "急诊科", "Emergency", "campus-east", &east),
        ("west-im", "西院内科", "West Internal Medicine", "campus-west", &west),
    ] {
        put(
            client,
            app,
            json!({"resourceType": "Organization", "id": id, "name": zh, "alias": [en],
                                "partOf": {"reference": format!("Organization/{campus}")}}),
        )
        .await;
    }
    for (id, text, no, user) in [
        ("dr-zhou", "周主任", "LY001", Some("head.im")),
        ("dr-li", "李明", "LY002", None),
        ("dr-wang", "王芳", "LY003", None),
    ] {
        let mut p = json!({"resourceType": "Practitioner", "id": id, "name": [{"text": text}],
                           "identifier": [{"system": "urn:lianyi:sid:staff-no", "value": no}]});
        if let Some(u) = user {
            p["identifier"]
                .as_array_mut()
                .unwrap()
                .push(json!({"system": lianyi_clinical::orders::USER_SYSTEM, "value": u}));
        }
        put(&east, app, p).await;
    }
    for (id, who, dept, client) in [
        ("role-zhou-im", "dr-zhou", "east-im", &east),
        ("role-li-im", "dr-li", "east-im", &east),
        ("role-wang-im", "dr-wang", "east-im", &east),
        ("role-wang-er", "dr-wang", "east-er", &east),
        ("role-wang-west", "dr-wang", "west-im", &west),
    ] {
        put(
            client,
            app,
            json!({"resourceType": "PractitionerRole", "id": id, "active": true,
                                "practitioner": {"reference": format!("Practitioner/{who}")},
                                "organization": {"reference": format!("Organization/{dept}")}}),
        )
        .await;
    }
}

#[tokio::test]
async fn a_department_head_builds_next_months_roster_within_the_campus_rules() {
    let clock = ManualClock::new(MONDAY_0830);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    directory(&app).await;

    // The campus's shift types and rest rule, by its manager.
    let (mut manager, token) = logged_in(&app, &clock, "mgr.east", "manager", "campus-east", None).await;
    let (status, _, page) = manager.get("/manage/shift-types?campus=campus-east").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"types-empty\""), "{page}");
    for (code, zh, en, kind, start, end, slot) in [
        ("D", "白班", "Day", "day", "08:00", "17:30", ""),
        ("N", "夜班", "Night", "night", "17:30", "08:00", ""),
        ("C", "上午门诊", "Morning clinic", "clinic", "08:00", "11:30", "30"),
    ] {
        let form = [
            ("csrf", token.as_str()),
            ("campus", "campus-east"),
            ("code", code),
            ("name_zh", zh),
            ("name_en", en),
            ("kind", kind),
            ("start", start),
            ("end", end),
            ("slot_minutes", slot),
        ];
        let (_, loc, _) = manager.post("/manage/shift-types", &form).await;
        assert_eq!(loc, format!("/manage/shift-types?campus=campus-east&done={code}"));
    }
    // A clinic session without a Slot length: refused, naming the field.
    let bad = [
        ("csrf", token.as_str()),
        ("campus", "campus-east"),
        ("code", "A"),
        ("name_zh", "下午门诊"),
        ("name_en", "Afternoon clinic"),
        ("kind", "clinic"),
        ("start", "14:00"),
        ("end", "17:00"),
        ("slot_minutes", ""),
    ];
    let (status, _, page) = manager.post("/manage/shift-types", &bad).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("号源时长（分钟）: 门诊号源时长为 5 至 240 分钟"), "{page}");
    let (_, loc, _) = manager
        .post(
            "/manage/shift-types/rest",
            &[("csrf", &token), ("campus", "campus-east"), ("rest_after_night_hours", "12")],
        )
        .await;
    assert_eq!(loc, "/manage/shift-types?campus=campus-east&done=rest");
    let (_, _, page) = manager.get("/manage/shift-types?campus=campus-east").await;
    assert!(page.contains("data-code=\"C\"") && !page.contains("data-code=\"A\""), "{page}");

    // The head of internal medicine opens next month.
    let (mut head, token) = logged_in(&app, &clock, "head.im", "department-head", "campus-east", None).await;
    let (status, _, _) = head.get("/manage/shift-types").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "shift types are the managers'");
    let (status, _, page) = head.get("/manage/rosters?department=east-im&month=2026-12").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("data-role=\"role-wang-im\"") && page.contains("王芳"), "{page}");
    assert!(page.contains("data-day=\"2026-12-31\"") && page.contains("至少休息 12 小时"), "{page}");
    let (_, loc, _) = assign(&mut head, &token, "east-im", "role-wang-im", "2026-12-07", "N").await;
    assert_eq!(loc, "/manage/rosters?department=east-im&month=2026-12&done=0");
    // The next morning's day shift: no rest after the night.
    let (status, _, page) = assign(&mut head, &token, "east-im", "role-wang-im", "2026-12-08", "D").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("休息不足：距 2026-12-07 的 N 班结束只有 0 小时 0 分，本院区要求至少 12 小时"), "{page}");
    let grid = between(&page, "id=\"roster-grid\"", "</table>");
    assert_eq!(grid.matches("data-shift=").count(), 1, "nothing saved: {grid}");
    // A clinic session two days later makes Wang's Slots (08:00–11:30, 30 minutes each).
    let (_, loc, page) = assign(&mut head, &token, "east-im", "role-wang-im", "2026-12-09", "C").await;
    assert_eq!(
        loc,
        "/manage/rosters?department=east-im&month=2026-12&done=7",
        "{}",
        between(&page, "<main", "</main>")
    );
    let (_, _, page) = head.get(&loc).await;
    assert!(page.contains("已按门诊时段生成 7 个号源"), "{page}");
    let slots = |app: &TestApp| {
        let c = app.client.clone();
        let url = app
            .url("/fhir/Slot?start=ge2026-12-09T00:00:00%2B08:00&start=lt2026-12-10T00:00:00%2B08:00&_total=accurate");
        async move { c.get(url).send().await.unwrap().json::<Value>().await.unwrap()["total"].as_i64().unwrap() }
    };
    assert_eq!(slots(&app).await, 7);
    // Another department's roster is not this head's.
    let (status, _, _) = assign(&mut head, &token, "east-im", "role-wang-er", "2026-12-10", "D").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The manager puts Wang on the emergency department's day shift during that
    // clinic session: one person, two places.
    let (_, _, home) = manager.get("/").await;
    let (status, _, page) = assign(&mut manager, &csrf(&home), "east-er", "role-wang-er", "2026-12-09", "D").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("时间冲突：此人在 2026-12-09 已排 内科 的 C 班"), "{page}");

    // A patient books one of the session's Slots: the session stays on the roster.
    let system = Caller::task(lianyi_security::SystemTask::Operator("test".into()));
    put(&app.client, &app, json!({"resourceType": "Patient", "id": "p1", "name": [{"text": "张三"}]})).await;
    let scheduling = Scheduling::new(app.fhir.clone());
    let schedule = scheduling.schedule_of_role(&system, "role-wang-im").await.unwrap();
    let free = scheduling.free_slots(&system, &[schedule], "2026-12-09").await.unwrap();
    assert_eq!(free.len(), 7);
    scheduling.book(&system, &free[0].id, "p1").await.unwrap();
    let (_, _, page) = head.get("/manage/rosters?department=east-im&month=2026-12").await;
    let clinic = between(&page, "class=\"shift shift-clinic\"", "</span>");
    let id = between(clinic, "data-shift=\"", "\"").to_string();
    let removal = [("csrf", token.as_str()), ("department", "east-im"), ("month", "2026-12")];
    let (status, _, page) = head.post(&format!("/manage/rosters/{id}/remove"), &removal).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("该门诊时段已有 1 个号源被预约"), "{page}");
    assert_eq!(slots(&app).await, 7, "nothing withdrawn");
    // The night shift goes.
    let night = between(&page, "class=\"shift shift-night\"", "</span>");
    let id = between(night, "data-shift=\"", "\"").to_string();
    let (_, loc, _) = head.post(&format!("/manage/rosters/{id}/remove"), &removal).await;
    assert_eq!(loc, "/manage/rosters?department=east-im&month=2026-12");
    let (_, _, page) = head.get(&loc).await;
    assert!(!page.contains("shift-night"), "{page}");

    // Every change is in the audit chain, as its author's.
    let query =
        lianyi_store::audit::AuditQuery { action: Some("roster-assign".into()), limit: 10, ..Default::default() };
    let assigned = app.store.audit_records(&query).await.unwrap();
    assert_eq!(assigned.len(), 2, "the night and the clinic session");
    assert!(assigned.iter().all(|r| r.entry.actor == "user:head.im"));
    let query =
        lianyi_store::audit::AuditQuery { action: Some("roster-shift-type".into()), limit: 10, ..Default::default() };
    assert_eq!(app.store.audit_records(&query).await.unwrap().len(), 3);

    // In English, the same month reads in English.
    let mut english = crate::pages::Browser::new(&app.base, "en");
    english.cookies = head.cookies.clone();
    let (_, _, page) = english.get("/manage/rosters?department=east-im&month=2026-12").await;
    assert!(page.contains("Department roster") && page.contains("Internal Medicine"), "{page}");
}

#[tokio::test]
async fn two_rosterings_of_one_person_at_once_leave_exactly_one() {
    let clock = ManualClock::new(MONDAY_0830);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    directory(&app).await;
    let system = Caller::task(lianyi_security::SystemTask::Operator("test".into()));
    let rosters = Rosters::new(app.fhir.clone());
    for (code, kind, start, end) in [("D", "day", "08:00", "17:30"), ("E", "day", "12:00", "20:00")] {
        let form = lianyi_manage::rosters::ShiftTypeForm {
            campus: "campus-east".into(),
            code: code.into(),
            name_zh: "班".into(),
            name_en: "Shift".into(),
            kind: kind.into(),
            start: start.into(),
            end: end.into(),
            slot_minutes: String::new(),
        };
        rosters.put_type(&system, &form).await.unwrap();
    }
    // Wang in two departments at overlapping hours, rostered at the same moment.
    for round in 0..5 {
        let day = format!("2026-12-{:02}", 10 + round);
        let (a, b) = tokio::join!(
            rosters.assign(&system, "role-wang-im", &day, "D"),
            rosters.assign(&system, "role-wang-er", &day, "E"),
        );
        let refused = [&a, &b].iter().filter(|r| matches!(r, Err(RosterError::Conflicts(_)))).count();
        assert_eq!((a.is_ok() as u8 + b.is_ok() as u8, refused), (1, 1), "{day}: {a:?} {b:?}");
    }
    let month = rosters.month(&system, "east-im", "2026-12").await.unwrap();
    let er = rosters.month(&system, "east-er", "2026-12").await.unwrap();
    assert_eq!(month.shifts.len() + er.shifts.len(), 5);
}

/// The walk in a real Chromium, in Chinese then English: the head of internal
/// medicine opens next month's roster, puts Wang on a night, is refused the next
/// morning's day shift with the rest rule named, puts the day shift a day later, then
/// a clinic session whose Slots appear for booking.
#[tokio::test]
async fn chromium_a_department_head_builds_next_months_roster() {
    let clock = ManualClock::new(MONDAY_0830);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    directory(&app).await;
    let system = Caller::task(lianyi_security::SystemTask::Operator("test".into()));
    let rosters = Rosters::new(app.fhir.clone());
    for (code, zh, en, kind, start, end, slot) in [
        ("D", "白班", "Day", "day", "08:00", "17:30", ""),
        ("N", "夜班", "Night", "night", "17:30", "08:00", ""),
        ("C", "上午门诊", "Morning clinic", "clinic", "08:00", "11:30", "30"),
    ] {
        let form = lianyi_manage::rosters::ShiftTypeForm {
            campus: "campus-east".into(),
            code: code.into(),
            name_zh: zh.into(),
            name_en: en.into(),
            kind: kind.into(),
            start: start.into(),
            end: end.into(),
            slot_minutes: slot.into(),
        };
        rosters.put_type(&system, &form).await.unwrap();
    }
    let head = lianyi_security::users::NewUser {
        username: "head.im".into(),
        display_name: "周主任".into(),
        password: "initial-Pass-2026".into(),
        grants: vec![("department-head".into(), "campus-east".into())],
        patient: None,
        must_change_password: false,
    };
    app.users.add_user(&system, head).await.unwrap();

    let d = crate::browser::Driver::start().await;
    d.log_in(&app.base, "head.im", "initial-Pass-2026", &clock).await;
    for (lang, night, day, next_day, clinic, refused) in [
        ("zh", "2026-12-07", "2026-12-08", "2026-12-09", "2026-12-10", "休息不足"),
        ("en", "2026-12-14", "2026-12-15", "2026-12-16", "2026-12-17", "Too little rest"),
    ] {
        d.goto(&app.url("/")).await;
        d.open_menu().await;
        d.click("a[href='/manage/rosters']").await;
        d.wait_url("/manage/rosters").await;
        d.click("#roster-next").await;
        d.wait_url("month=2026-12").await;
        d.check(true).await;
        let put = |day: &'static str, shift: &'static str| {
            let d = &d;
            async move {
                d.set_value("#roster-role", "role-wang-im").await;
                d.set_value("#roster-day", day).await;
                d.set_value("#roster-shift", shift).await;
                d.click("#roster-submit").await;
            }
        };
        put(night, "N").await;
        d.wait_url("done=0").await;
        put(day, "D").await;
        assert!(d.text("#roster-errors").await.contains(refused));
        d.check(true).await;
        d.screenshot("manage", &format!("roster-conflict-{lang}")).await;
        put(next_day, "D").await;
        d.wait_url("done=0").await;
        put(clinic, "C").await;
        d.wait_url("done=7").await;
        assert!(d.text("#roster-done").await.contains('7'), "seven Slots from the session");
        d.check(true).await;
        d.screenshot("manage", &format!("roster-{lang}")).await;
        if lang == "zh" {
            d.click("#lang-switch").await;
            d.wait_text("Department roster", 5).await;
        }
    }
    drop(d);
    // The sessions' Slots are offered for booking.
    let scheduling = Scheduling::new(app.fhir.clone());
    let schedule = scheduling.schedule_of_role(&system, "role-wang-im").await.unwrap();
    for day in ["2026-12-10", "2026-12-17"] {
        assert_eq!(scheduling.free_slots(&system, std::slice::from_ref(&schedule), day).await.unwrap().len(), 7);
    }
}

/// A clock machine's file against the roster: a bad row refuses the file whole, naming
/// the line; the punches then read as on time, late, one clock only or absent.
#[tokio::test]
async fn clock_machine_punches_are_read_against_the_roster() {
    let clock = ManualClock::new(MONDAY_0830);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    directory(&app).await;
    let system = Caller::task(lianyi_security::SystemTask::Operator("test".into()));
    let rosters = Rosters::new(app.fhir.clone());
    let form = lianyi_manage::rosters::ShiftTypeForm {
        campus: "campus-east".into(),
        code: "D".into(),
        name_zh: "白班".into(),
        name_en: "Day".into(),
        kind: "day".into(),
        start: "08:00".into(),
        end: "17:30".into(),
        slot_minutes: String::new(),
    };
    rosters.put_type(&system, &form).await.unwrap();
    // Today is Monday the 23rd: three shifts of last week, and one still to come.
    for (role, day) in [
        ("role-li-im", "2026-11-16"),
        ("role-wang-im", "2026-11-16"),
        ("role-li-im", "2026-11-17"),
        ("role-wang-im", "2026-11-18"),
        ("role-li-im", "2026-11-24"),
    ] {
        rosters.assign(&system, role, day, "D").await.unwrap();
    }
    let (mut manager, token) = logged_in(&app, &clock, "mgr.att", "manager", "campus-east", None).await;
    let import = |csv: &str| {
        vec![
            ("csrf".to_string(), token.clone()),
            ("campus".to_string(), "campus-east".to_string()),
            ("department".to_string(), "east-im".to_string()),
            ("month".to_string(), "2026-11".to_string()),
            ("csv".to_string(), csv.to_string()),
        ]
    };
    let bad = import("工号,打卡时间\nLY002,2026-11-16 07:55\nLY999,2026-11-16 08:01\nLY003,yesterday\n");
    let bad: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (status, _, page) = manager.post("/manage/attendance", &bad).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("第 3 行：没有此工号的员工（LY999）"), "{page}");
    assert!(page.contains("第 4 行：打卡时间须为“年-月-日 时:分”（yesterday）"), "{page}");
    let good = import(
        "工号,打卡时间\nLY002,2026-11-16 07:55\nLY002,2026-11-16 17:40\nLY003,2026-11-16 08:25\nLY003,2026-11-16 17:31\nLY002,2026-11-17 07:59\n",
    );
    let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (_, loc, _) = manager.post("/manage/attendance", &good).await;
    assert_eq!(loc, "/manage/attendance?department=east-im&month=2026-11&done=5");
    let (_, loc, _) = manager.post("/manage/attendance", &good).await;
    assert!(loc.ends_with("&done=0"), "the same file twice adds nothing: {loc}");
    let (_, _, page) = manager.get("/manage/attendance?department=east-im&month=2026-11").await;
    let table = between(&page, "id=\"att-table\"", "</table>");
    let rows: Vec<&str> = table.split("<tr class=").skip(1).collect();
    assert_eq!(rows.len(), 5, "{table}");
    let row = |day: &str, who: &str| rows.iter().find(|r| r.contains(day) && r.contains(who)).copied().unwrap();
    assert!(row("2026-11-16", "李明").contains("正常"));
    assert!(row("2026-11-16", "王芳").contains("迟到 25 分钟"));
    assert!(row("2026-11-17", "李明").contains("缺下班卡"));
    assert!(row("2026-11-18", "王芳").contains("缺勤"));
    assert!(row("2026-11-24", "李明").contains("未到"));
    let query =
        lianyi_store::audit::AuditQuery { action: Some("attendance-import".into()), limit: 10, ..Default::default() };
    assert_eq!(app.store.audit_records(&query).await.unwrap().len(), 2);
    // A department head reads the page, and imports nothing.
    let (mut head, head_token) = logged_in(&app, &clock, "head.im", "department-head", "campus-east", None).await;
    let (status, _, page) = head.get("/manage/attendance?department=east-im&month=2026-11").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!page.contains("id=\"att-form\""));
    let form = [("csrf", head_token.as_str()), ("campus", "campus-east"), ("csv", "LY002,2026-11-18 08:00")];
    assert_eq!(head.post("/manage/attendance", &form).await.0, StatusCode::FORBIDDEN);
}

fn swap_form(token: &str, mine: &str, theirs: &str) -> Vec<(&'static str, String)> {
    vec![
        ("csrf", token.to_string()),
        ("department", "east-im".to_string()),
        ("month", "2026-12".to_string()),
        ("mine", mine.to_string()),
        ("theirs", theirs.to_string()),
        ("reason", "家中有事".to_string()),
    ]
}

/// Swap requests (换班): Dr Li asks from the roster page to exchange his day shift
/// with Dr Wang's — one that would leave him no rest after a night is refused naming
/// the rule, a clinic session and a second request of a waiting shift too; the head
/// approves a good one, but not while Wang is on shift elsewhere that day (the
/// approval is checked again), then does once that shift is off; a refused request
/// changes nothing. Each step audited.
#[tokio::test]
async fn a_shift_swap_is_requested_checked_and_approved_by_the_head() {
    let clock = ManualClock::new(MONDAY_0830);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    directory(&app).await;
    let east = app.client_with("system/*.cruds", "campus-east", None).await;
    put(
        &east,
        &app,
        json!({"resourceType": "Practitioner", "id": "dr-li", "name": [{"text": "李明"}],
               "identifier": [{"system": lianyi_clinical::orders::USER_SYSTEM, "value": "dr.li"}]}),
    )
    .await;
    let rosters = Rosters::new(app.fhir.clone());
    let system = Caller::task(lianyi_security::SystemTask::Operator("test".into()));
    for (code, kind, start, end, slot) in [
        ("D", "day", "08:00", "17:30", ""),
        ("N", "night", "17:30", "08:00", ""),
        ("C", "clinic", "08:00", "11:30", "30"),
    ] {
        let form = lianyi_manage::rosters::ShiftTypeForm {
            campus: "campus-east".into(),
            code: code.into(),
            name_zh: code.into(),
            name_en: code.into(),
            kind: kind.into(),
            start: start.into(),
            end: end.into(),
            slot_minutes: slot.into(),
        };
        rosters.put_type(&system, &form).await.unwrap();
    }
    rosters.set_rest(&system, "campus-east", "24").await.unwrap();
    let mut ids = std::collections::HashMap::new();
    for (key, role, day, shift) in [
        ("li-02", "role-li-im", "2026-12-02", "D"),
        ("li-03", "role-li-im", "2026-12-03", "D"),
        ("li-04", "role-li-im", "2026-12-04", "D"),
        ("li-07", "role-li-im", "2026-12-07", "C"),
        ("wang-02", "role-wang-im", "2026-12-02", "N"),
        ("wang-05", "role-wang-im", "2026-12-05", "D"),
        ("wang-08", "role-wang-im", "2026-12-08", "D"),
        ("li-09", "role-li-im", "2026-12-09", "D"),
        ("wang-10", "role-wang-im", "2026-12-10", "D"),
    ] {
        ids.insert(key, rosters.assign(&system, role, day, shift).await.unwrap().id);
    }
    let id = |k: &str| ids[k].to_string();
    let (mut li, token) = logged_in(&app, &clock, "dr.li", "doctor", "campus-east", None).await;
    let page_of = "/manage/rosters?department=east-im&month=2026-12";
    let (_, _, page) = li.get(page_of).await;
    let offered = between(&page, "id=\"roster-swap-mine\"", "</select>");
    assert!(
        offered.contains(&format!("value=\"{}\"", id("li-04")))
            && !offered.contains(&format!("value=\"{}\"", id("li-07"))),
        "{offered}"
    );
    // Li's day on the 2nd for Wang's night on the 2nd: the night ends at 08:00 on the
    // 3rd, where Li's day starts — no rest. Refused naming the rule; nothing recorded.
    let f = swap_form(&token, &id("li-02"), &id("wang-02"));
    let (status, _, page) = li.post("/manage/rosters/swaps", &pairs(&f)).await;
    assert_eq!(status, StatusCode::OK);
    let errors = between(&page, "id=\"roster-errors\"", "</div>");
    assert!(errors.contains("2026-12-03") && errors.contains("24"), "{errors}");
    assert!(app.fhir.operations().rosters().swaps("east-im", 10).await.unwrap().is_empty());
    // A clinic session is not swapped.
    let f = swap_form(&token, &id("li-07"), &id("wang-08"));
    let (_, _, page) = li.post("/manage/rosters/swaps", &pairs(&f)).await;
    assert!(between(&page, "id=\"roster-errors\"", "</div>").contains("门诊班次已有患者预约"), "{page}");

    // Li's day on the 4th for Wang's on the 5th: requested.
    let f = swap_form(&token, &id("li-04"), &id("wang-05"));
    let (_, loc, _) = li.post("/manage/rosters/swaps", &pairs(&f)).await;
    assert_eq!(loc, format!("{page_of}&swap=requested"));
    // Asked again while it waits: refused.
    let f = swap_form(&token, &id("li-04"), &id("wang-08"));
    let (_, _, page) = li.post("/manage/rosters/swaps", &pairs(&f)).await;
    assert!(between(&page, "id=\"roster-errors\"", "</div>").contains("待审批的换班申请"), "{page}");
    let (_, _, page) = li.get(page_of).await;
    assert!(!page.contains("class=\"swap-approve\""), "Li does not decide");

    // Meanwhile Wang is put on a day in emergency on the 4th: taking Li's day on the
    // 4th would put him in two places, so the approval is refused; once that day is
    // off, approved.
    let night = rosters.assign(&system, "role-wang-er", "2026-12-04", "D").await.unwrap().id;
    let swap = app.fhir.operations().rosters().swaps("east-im", 10).await.unwrap()[0].id;
    let (mut head, head_token) = logged_in(&app, &clock, "head.im", "department-head", "campus-east", None).await;
    let decide = [("csrf", head_token.as_str()), ("department", "east-im"), ("month", "2026-12")];
    let (_, _, page) = head.get(page_of).await;
    assert!(between(&page, "id=\"roster-swaps\"", "</table>").contains("待审批"), "{page}");
    let (status, _, page) = head.post(&format!("/manage/rosters/swaps/{swap}/approve"), &decide).await;
    assert_eq!(status, StatusCode::OK);
    assert!(between(&page, "id=\"roster-errors\"", "</div>").contains("急诊科"), "{page}");
    let ops = app.fhir.operations();
    assert_eq!(ops.rosters().shift(ids["li-04"]).await.unwrap().unwrap().practitioner, "dr-li", "nothing changed");
    rosters.remove(&system, night).await.unwrap();
    let (_, loc, _) = head.post(&format!("/manage/rosters/swaps/{swap}/approve"), &decide).await;
    assert!(loc.ends_with("&swap=approved"), "{loc}");
    let moved = ops.rosters().shift(ids["li-04"]).await.unwrap().unwrap();
    assert_eq!((moved.practitioner.as_str(), moved.role.as_str()), ("dr-wang", "role-wang-im"));
    assert_eq!(ops.rosters().shift(ids["wang-05"]).await.unwrap().unwrap().practitioner, "dr-li");
    // Decided already: a second approval is refused.
    let (_, _, page) = head.post(&format!("/manage/rosters/swaps/{swap}/approve"), &decide).await;
    assert!(page.contains("id=\"roster-errors\""));

    // A refused request changes nothing.
    let f = swap_form(&token, &id("li-09"), &id("wang-10"));
    li.post("/manage/rosters/swaps", &pairs(&f)).await;
    let waiting = ops.rosters().swaps("east-im", 10).await.unwrap();
    let second = waiting.iter().find(|s| s.status == "requested").unwrap().id;
    let (_, loc, _) = head.post(&format!("/manage/rosters/swaps/{second}/refuse"), &decide).await;
    assert!(loc.ends_with("&swap=refused"), "{loc}");
    assert_eq!(ops.rosters().shift(ids["li-09"]).await.unwrap().unwrap().practitioner, "dr-li");
    let query = lianyi_store::audit::AuditQuery { limit: 50, ..Default::default() };
    let actions: Vec<String> =
        app.store.audit_records(&query).await.unwrap().into_iter().map(|r| r.entry.action).collect();
    for a in ["roster-swap-request", "roster-swap-approve", "roster-swap-refuse"] {
        assert!(actions.iter().any(|x| x == a), "{a} audited");
    }
}
