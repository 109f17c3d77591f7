//! Announcements over the pages: a manager publishes to East Campus (without an
//! audience: refused naming it, nothing published); an East nurse sees it unread,
//! opens it (read once, however often opened), a West nurse never sees it nor opens
//! it by its address; the manager's read receipts count the reader against the
//! campus's accounts. A department head publishes only to their own department. A
//! Chromium walk in both languages.

use lianyi_security::ManualClock;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, put_resource as put, spawn_app_clocked};
use crate::pages::{between, logged_in};

/// Monday 7 December 2026, 09:00 in Beijing.
const MONDAY_0900: i64 = 1_796_605_200_000;

async fn directory(app: &TestApp) {
    for (campus, zh, en) in [("campus-east", "东院区", "East Campus"), ("campus-west", "西院区", "West Campus")] {
        let c = app.client_with("system/*.cruds", campus, None).await;
        put(&c, app, json!({"resourceType": "Organization", "id": campus, "name": zh, "alias": [en]})).await;
        put(
            &c,
            app,
            json!({"resourceType": "Organization", "id": format!("{campus}-im"), "name": "内科", "alias": ["Internal Medicine"],
                   "partOf": {"reference": format!("Organization/{campus}")}}),
        )
        .await;
    }
}

fn notice(audience: &str, campus: &str, title: &str) -> Vec<(&'static str, String)> {
    vec![
        ("kind", "announcement".into()),
        ("audience", audience.into()),
        ("campus", campus.into()),
        ("title", title.into()),
        ("body", "12月10日 22:00–23:00 东院区信息系统升级，期间请使用应急预案。".into()),
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
async fn an_announcement_to_one_campus_is_read_there_and_its_receipts_counted() {
    let clock = ManualClock::new(MONDAY_0900);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    directory(&app).await;
    let (mut manager, token) = logged_in(&app, &clock, "mgr", "manager", "*", None).await;
    let (mut east, _) = logged_in(&app, &clock, "nurse.e", "nurse", "campus-east", None).await;
    let (mut west, _) = logged_in(&app, &clock, "nurse.w", "nurse", "campus-west", None).await;

    // Without an audience: refused, naming it; nothing is published.
    let (status, _, page) = post(&mut manager, "/manage/notices", &token, &notice("", "", "系统升级通知")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(between(&page, "id=\"notice-errors\"", "</div>").contains("发送对象: 必填"), "{page}");
    assert!(app.fhir.operations().announcements().current("2026-12-07", 10).await.unwrap().is_empty());
    // A campus audience without its campus: refused, naming the campus.
    let (_, _, page) = post(&mut manager, "/manage/notices", &token, &notice("campus", "", "系统升级通知")).await;
    assert!(between(&page, "id=\"notice-errors\"", "</div>").contains("院区: 必填"));

    let (_, loc, _) =
        post(&mut manager, "/manage/notices", &token, &notice("campus", "campus-east", "系统升级通知")).await;
    let id: i64 = between(&format!("{loc}?"), "/manage/notices/", "?").parse().unwrap();

    // The East nurse sees it unread and reads it (twice: one receipt).
    let (_, _, page) = east.get("/manage/notices").await;
    assert!(page.contains("系统升级通知") && page.contains("id=\"notice-unread\""), "{page}");
    for _ in 0..2 {
        let (status, _, page) = east.get(&format!("/manage/notices/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("应急预案"));
        assert!(!page.contains("notice-read-count"), "readers do not see the receipts");
    }
    let (_, _, page) = east.get("/manage/notices").await;
    assert!(!page.contains("id=\"notice-unread\""));
    // The West nurse neither sees nor opens it.
    let (_, _, page) = west.get("/manage/notices").await;
    assert!(!page.contains("系统升级通知"));
    let (status, _, _) = west.get(&format!("/manage/notices/{id}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The receipts: one reader of the campus's accounts (the East nurse and the
    // manager, who serves every campus).
    let (_, _, page) = manager.get(&format!("/manage/notices/{id}")).await;
    assert!(between(&page, "id=\"notice-read-count\">", "</p>").contains("已读 1 / 2 人"), "{page}");
    assert!(between(&page, "id=\"notice-readers\"", "</table>").contains("user:nurse.e"));

    // A department head publishes to their own department only.
    let east_client = app.client_with("system/*.cruds", "campus-east", None).await;
    put(
        &east_client,
        &app,
        json!({"resourceType": "Practitioner", "id": "dr-zhou", "name": [{"text": "周主任"}],
               "identifier": [{"system": lianyi_clinical::orders::USER_SYSTEM, "value": "head.e"}]}),
    )
    .await;
    put(
        &east_client,
        &app,
        json!({"resourceType": "PractitionerRole", "id": "role-zhou", "active": true,
               "practitioner": {"reference": "Practitioner/dr-zhou"},
               "organization": {"reference": "Organization/campus-east-im"}}),
    )
    .await;
    let (mut head, head_token) = logged_in(&app, &clock, "head.e", "department-head", "campus-east", None).await;
    let (_, _, page) =
        post(&mut head, "/manage/notices", &head_token, &notice("campus", "campus-east", "科室会议")).await;
    assert!(page.contains("id=\"notice-errors\""), "a head does not publish to the campus");
    let mut own = notice("department", "", "科室会议");
    own.push(("department", "campus-west-im".into()));
    let (_, _, page) = post(&mut head, "/manage/notices", &head_token, &own).await;
    assert!(between(&page, "id=\"notice-errors\"", "</div>").contains("科室: 超出您管理的范围"));
    own.pop();
    own.push(("department", "campus-east-im".into()));
    let (_, loc, _) = post(&mut head, "/manage/notices", &head_token, &own).await;
    assert!(loc.starts_with("/manage/notices/"), "{loc}");
    let query = lianyi_store::audit::AuditQuery {
        action: Some("announcement-publish".into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(app.store.audit_records(&query).await.unwrap().len(), 2);
}

/// The walk in a real Chromium, in Chinese then English: the manager publishes to East
/// Campus (first forgetting the audience), the East nurse reads it, and the manager's
/// read receipt counts her.
#[tokio::test]
async fn chromium_an_announcement_to_one_campus_is_read_and_counted() {
    let clock = ManualClock::new(MONDAY_0900);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    directory(&app).await;
    for (name, role, campus) in [("mgr", "manager", "*"), ("nurse.e", "nurse", "campus-east")] {
        crate::helpers::account(&app, name, role, campus).await;
    }
    let d = crate::browser::Driver::start().await;
    let mut secrets = Vec::new();
    for (lang, title, missing, counted) in [
        ("zh", "东院区系统升级通知", "发送对象: 必填", "已读 1 / 2 人"),
        ("en", "East Campus upgrade", "For: required", "Read by 1 of 2"),
    ] {
        for (n, user) in ["mgr", "nurse.e", "mgr"].into_iter().enumerate() {
            d.walk_log_in(&app.base, user, &mut secrets, &clock).await;
            d.open_menu().await;
            d.click("a[href='/manage/notices']").await;
            d.wait_url("/manage/notices").await;
            d.in_language(lang, "Announcements").await;
            d.check(true).await;
            match n {
                0 => {
                    d.fill("#notice-title-input", title).await;
                    d.fill("#notice-body", "22:00–23:00").await;
                    d.click("#notice-submit").await;
                    assert!(d.text("#notice-errors").await.contains(missing));
                    d.check(true).await;
                    d.set_value("#notice-audience", "campus").await;
                    d.set_value("#notice-campus", "campus-east").await;
                    d.click("#notice-submit").await;
                    d.wait_url("done=published").await;
                }
                1 => {
                    d.find("#notice-unread").await;
                    d.click("li.unread a.notice-link").await;
                    d.wait_url("/manage/notices/").await;
                    assert!(d.text("#notice-heading").await.contains(title));
                    d.check(true).await;
                }
                _ => {
                    d.click("a.notice-link").await;
                    d.wait_url("/manage/notices/").await;
                    let count = d.text("#notice-read-count").await;
                    assert!(count.contains(counted), "{count}");
                    d.check(true).await;
                    d.screenshot("manage", &format!("notice-receipts-{lang}")).await;
                }
            }
            d.log_out().await;
        }
    }
}
