//! Messages between staff over the pages: a doctor at East writes to a doctor at West
//! and to West's surgery (bad input named, nothing kept); each reader's mailbox holds
//! what came to them and to their departments, unread until they open it; the live
//! feed an open page listens to gives the unread count at once and a new message as it
//! is sent; the body is sealed in the database and the audit names who wrote to whom,
//! not what; a patient has no mailbox.

use std::time::Duration;

use lianyi_security::ManualClock;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, put_resource as put, spawn_app_clocked};
use crate::pages::{Browser, between, logged_in};

/// Monday 7 December 2026, 09:00 in Beijing.
const MONDAY_0900: i64 = 1_796_605_200_000;

async fn directory(app: &TestApp) {
    for (campus, zh, en, dept, dzh, den) in [
        ("campus-east", "东院区", "East Campus", "east-im", "东院内科", "East Internal Medicine"),
        ("campus-west", "西院区", "West Campus", "west-sur", "西院外科", "West Surgery"),
    ] {
        let c = app.client_with("system/*.cruds", campus, None).await;
        put(&c, app, json!({"resourceType": "Organization", "id": campus, "name": zh, "alias": [en]})).await;
        put(
            &c,
            app,
            json!({"resourceType": "Organization", "id": dept, "name": dzh, "alias": [den],
                   "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "dept"}]}],
                   "partOf": {"reference": format!("Organization/{campus}")}}),
        )
        .await;
    }
    for (id, name, user, dept, campus) in [
        ("li", "李明", "dr.li", "east-im", "campus-east"),
        ("wang", "王芳", "dr.wang", "west-sur", "campus-west"),
        ("zhao", "赵静", "nurse.zhao", "west-sur", "campus-west"),
    ] {
        let c = app.client_with("system/*.cruds", campus, None).await;
        put(
            &c,
            app,
            json!({"resourceType": "Practitioner", "id": id, "name": [{"text": name}],
                   "identifier": [{"system": lianyi_clinical::orders::USER_SYSTEM, "value": user}]}),
        )
        .await;
        put(
            &c,
            app,
            json!({"resourceType": "PractitionerRole", "id": format!("role-{id}"), "active": true,
                   "practitioner": {"reference": format!("Practitioner/{id}")},
                   "organization": {"reference": format!("Organization/{dept}")}}),
        )
        .await;
    }
}

async fn send(
    b: &mut Browser,
    token: &str,
    person: &str,
    department: &str,
    body: &str,
) -> (StatusCode, String, String) {
    b.post(
        "/manage/messages",
        &[("csrf", token), ("to_practitioner", person), ("to_department", department), ("body", body)],
    )
    .await
}

/// The next event of a live feed: (its name, its data).
async fn next_event(feed: &mut reqwest::Response, buffer: &mut String) -> (String, String) {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let field = |name: &str| {
                block.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim_start().to_string()).unwrap_or_default()
            };
            let (event, data) = (field("event:"), field("data:"));
            if event.is_empty() {
                continue; // a keep-alive comment
            }
            return (event, data);
        }
        let chunk = tokio::time::timeout(Duration::from_secs(15), feed.chunk()).await.expect("an event in time");
        buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap().expect("the feed stays open")));
    }
}

#[tokio::test]
async fn staff_write_to_a_person_and_a_department_and_open_pages_hear_at_once() {
    let clock = ManualClock::new(MONDAY_0900);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    directory(&app).await;
    let (mut li, li_token) = logged_in(&app, &clock, "dr.li", "doctor", "campus-east", None).await;
    let (mut wang, _) = logged_in(&app, &clock, "dr.wang", "doctor", "campus-west", None).await;
    let (mut zhao, _) = logged_in(&app, &clock, "nurse.zhao", "nurse", "campus-west", None).await;

    // The form offers every campus's departments and people.
    let (status, _, page) = li.get("/manage/messages").await;
    assert_eq!(status, StatusCode::OK);
    assert!(between(&page, "id=\"msg-department\"", "</select>").contains("西院区 · 西院外科"), "{page}");
    assert!(between(&page, "id=\"msg-person\"", "</select>").contains(">王芳<"));

    // Bad input is named; nothing is kept.
    for (person, department, body, said) in [
        ("", "", "会诊", "收件人: 必填"),
        ("wang", "west-sur", "会诊", "收件人: 请选择个人或科室之一，不能同时选择"),
        ("wang", "", "  ", "内容: 必填"),
        ("nobody", "", "会诊", "收件人: 通讯录中没有该收件人"),
    ] {
        let (status, _, page) = send(&mut li, &li_token, person, department, body).await;
        assert_eq!(status, StatusCode::OK);
        assert!(between(&page, "id=\"msg-errors\"", "</div>").contains(said), "{said}: {page}");
    }
    let long = "长".repeat(2_001);
    let (_, _, page) = send(&mut li, &li_token, "wang", "", &long).await;
    assert!(page.contains("内容: 最多 2000 字"));
    let (_, _, page) = li.get("/manage/messages").await;
    assert!(page.contains("id=\"msg-none\""), "nothing was kept");

    // Zhao's page is open before anything is sent: the feed says 0 unread.
    let mut feed = zhao
        .http
        .get(format!("{}/manage/messages/stream", app.base))
        .header("cookie", zhao.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(feed.headers()["content-type"], "text/event-stream");
    let mut buffer = String::new();
    assert_eq!(next_event(&mut feed, &mut buffer).await, ("unread".into(), "0".into()));

    // Li writes to Wang, then to West's surgery.
    let (status, location, _) = send(&mut li, &li_token, "wang", "", "12床患者血钾 6.8，请会诊").await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/manage/messages?done=sent"));
    send(&mut li, &li_token, "", "west-sur", "明早八点外科会诊，请准备病历").await;
    // Zhao's open page hears the department's message (not Wang's) at once.
    let (event, data) = next_event(&mut feed, &mut buffer).await;
    assert_eq!(event, "message");
    let m: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!(m["body"], "明早八点外科会诊，请准备病历");
    assert_eq!((m["from"].as_str(), m["unread"].as_i64()), (Some("李明"), Some(1)), "{m}");
    assert!(m["to"].as_str().unwrap().contains("西院外科"));
    drop(feed);

    // Wang's mailbox: both, unread; opening it reads them.
    let (_, _, page) = wang.get("/manage/messages").await;
    let list = between(&page, "id=\"msg-list\"", "</ol>");
    assert!(list.contains("12床患者血钾 6.8，请会诊") && list.contains("明早八点外科会诊"), "{list}");
    assert_eq!(list.matches("class=\" unread\"").count(), 2, "{list}");
    assert!(page.contains("2 条未读"));
    let (_, _, page) = wang.get("/manage/messages").await;
    assert!(!page.contains("条未读"), "read once opened");
    // Zhao sees the department's only; Li sees both as sent.
    let (_, _, page) = zhao.get("/manage/messages").await;
    let list = between(&page, "id=\"msg-list\"", "</ol>");
    assert!(list.contains("明早八点外科会诊") && !list.contains("血钾"), "{list}");
    let (_, _, page) = li.get("/manage/messages").await;
    assert_eq!(between(&page, "id=\"msg-list\"", "</ol>").matches("class=\"mine\"").count(), 2);

    // Sealed in the database; the audit names who wrote to whom, never what.
    let mailbox = lianyi_store::staff_messages::Mailbox { sender: "user:dr.li".into(), ..Default::default() };
    let stored = app.fhir.operations().staff_messages().list(&mailbox, 0, 10).await.unwrap();
    assert_eq!(stored.len(), 2);
    assert!(stored.iter().all(|m| !m.body.contains("会诊")), "{stored:?}");
    let query =
        lianyi_store::audit::AuditQuery { action: Some("message-send".into()), limit: 10, ..Default::default() };
    let audit = app.store.audit_records(&query).await.unwrap();
    assert_eq!(audit.len(), 2);
    assert!(audit.iter().any(|r| r.entry.detail.as_deref().is_some_and(|d| d.ends_with("to Practitioner/wang"))));
    assert!(audit.iter().all(|r| !r.entry.detail.as_deref().unwrap_or_default().contains("会诊")));

    // A patient has no mailbox.
    let east = app.client_with("system/*.cruds", "campus-east", None).await;
    put(&east, &app, json!({"resourceType": "Patient", "id": "pm1", "name": [{"text": "消息患者"}]})).await;
    let (mut patient, _) = logged_in(&app, &clock, "pat.msg", "patient", "campus-east", Some("pm1")).await;
    assert_eq!(patient.get("/manage/messages").await.0, StatusCode::FORBIDDEN);
    assert_eq!(patient.get("/manage/messages/stream").await.0, StatusCode::FORBIDDEN);
}

/// The walk in a real Chromium, in Chinese then English: the nurse has her mailbox
/// open, and the home page in a second tab; a doctor at the other campus writes to
/// her department; the message, its notice and the unread count appear on her
/// mailbox without reloading it, and the count on the other tab too (one tab holds the
/// feed and tells the other).
#[tokio::test]
async fn chromium_a_message_to_a_department_appears_on_an_open_page() {
    let clock = ManualClock::new(MONDAY_0900);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    directory(&app).await;
    crate::helpers::account(&app, "nurse.zhao", "nurse", "campus-west").await;
    let (mut li, li_token) = logged_in(&app, &clock, "dr.li", "doctor", "campus-east", None).await;
    let d = crate::browser::Driver::start().await;
    let mut secrets = Vec::new();
    for (lang, heading, body, notice) in [
        ("zh", "站内消息", "明早八点外科会诊，请准备病历", "新消息，来自 李明"),
        ("en", "Messages", "Consultation at eight tomorrow", "New message from 李明"),
    ] {
        d.walk_log_in(&app.base, "nurse.zhao", &mut secrets, &clock).await;
        d.open_menu().await;
        d.click("a[href='/manage/messages']").await;
        d.wait_url("/manage/messages").await;
        d.in_language(lang, heading).await;
        d.find("#msg-list").await;
        d.check(true).await;
        let mailbox = d.cmd(reqwest::Method::GET, "/window", json!({})).await;
        let home = d.cmd(reqwest::Method::POST, "/window/new", json!({"type": "tab"})).await;
        d.cmd(reqwest::Method::POST, "/window", json!({"handle": home["handle"]})).await;
        d.goto(&format!("{}/", app.base)).await;
        d.find("#msg-badge").await;
        d.cmd(reqwest::Method::POST, "/window", json!({"handle": mailbox})).await;
        let (status, _, _) = send(&mut li, &li_token, "", "west-sur", body).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        d.wait_text(body, 15).await;
        assert!(d.text("#msg-notice").await.contains(notice));
        assert!(d.text("#msg-list li").await.contains(body), "the newest first");
        assert_eq!(d.text("#msg-badge").await.trim(), "1");
        d.check(true).await;
        d.screenshot("manage", &format!("message-live-{lang}")).await;
        d.cmd(reqwest::Method::POST, "/window", json!({"handle": home["handle"]})).await;
        d.wait_text(body, 15).await;
        assert_eq!(d.text("#msg-badge").await.trim(), "1", "the other tab heard it too");
        d.cmd(reqwest::Method::DELETE, "/window", json!({})).await;
        d.cmd(reqwest::Method::POST, "/window", json!({"handle": mailbox})).await;
        d.log_out().await;
    }
}
