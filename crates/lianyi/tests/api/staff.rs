//! Staff over the pages: human resources see every campus's departments as one tree
//! with their people; set a doctor's title (written to the Practitioner, so the
//! expert clinic follows) and practising campuses; add licences (a bad one refused by
//! field, a number twice refused); the reminders list what expires within 60 days, as
//! the injected clock moves. Others are refused.

use lianyi_security::ManualClock;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{put_resource as put, spawn_app_clocked};
use crate::pages::{between, logged_in};

/// Monday 7 December 2026, 09:00 in Beijing.
const MONDAY_0900: i64 = 1_796_605_200_000;
const DAY: i64 = 86_400_000;

async fn post(
    b: &mut crate::pages::Browser,
    path: &str,
    token: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, String, String) {
    let mut form: Vec<(&str, &str)> = vec![("csrf", token)];
    form.extend_from_slice(fields);
    b.post(path, &form).await
}

#[tokio::test]
async fn human_resources_keep_titles_and_licences_with_their_reminders() {
    let clock = ManualClock::new(MONDAY_0900);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    let east = app.client_with("system/*.cruds", "campus-east", None).await;
    put(
        &east,
        &app,
        json!({"resourceType": "Organization", "id": "campus-east", "name": "东院区", "alias": ["East Campus"]}),
    )
    .await;
    for (id, zh, en, parent) in
        [("east-im", "内科", "Internal Medicine", "campus-east"), ("east-cardio", "心内科", "Cardiology", "east-im")]
    {
        put(
            &east,
            &app,
            json!({"resourceType": "Organization", "id": id, "name": zh, "alias": [en],
                   "partOf": {"reference": format!("Organization/{parent}")}}),
        )
        .await;
    }
    put(&east, &app, json!({"resourceType": "Practitioner", "id": "dr-li", "name": [{"text": "李明"}]})).await;
    put(
        &east,
        &app,
        json!({"resourceType": "PractitionerRole", "id": "role-li", "active": true,
               "practitioner": {"reference": "Practitioner/dr-li"},
               "organization": {"reference": "Organization/east-cardio"}, "code": [{"text": "医生"}]}),
    )
    .await;
    let (mut hr, token) = logged_in(&app, &clock, "hr.group", "human-resources", "*", None).await;
    let (mut doctor, _) = logged_in(&app, &clock, "dr.east", "doctor", "campus-east", None).await;
    let (status, _, _) = doctor.get("/manage/staff").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The tree: the campus, internal medicine, and cardiology within it with one person.
    let (_, _, page) = hr.get("/manage/staff?department=east-cardio").await;
    let tree = between(&page, "<nav class=\"tree\"", "</nav>");
    assert!(tree.contains("内科") && tree.contains("class=\"depth-1\"") && tree.contains("1 人"), "{tree}");
    assert!(between(&page, "id=\"staff-people\"", "</table>").contains("李明"));

    // The title, and where he may practise: written to his Practitioner.
    let (_, loc, _) = post(
        &mut hr,
        "/manage/staff/dr-li/record",
        &token,
        &[
            ("position", "副主任"),
            ("title", "associate-chief"),
            ("title_since", "2024-01-01"),
            ("campus", "campus-east"),
        ],
    )
    .await;
    assert_eq!(loc, "/manage/staff/dr-li?done=record");
    let practitioner: Value = east.get(app.url("/fhir/Practitioner/dr-li")).send().await.unwrap().json().await.unwrap();
    assert!(lianyi_clinical::names::is_expert(&practitioner), "{practitioner}");
    let (_, _, page) = post(&mut hr, "/manage/staff/dr-li/record", &token, &[("title", "professor")]).await;
    assert!(between(&page, "id=\"staff-errors\"", "</div>").contains("职称: 请从列表中选择"));

    // Licences: a practising certificate without expiry is refused by field; then one
    // expiring on 20 January; its number twice is refused.
    let licence = |expires: &'static str| {
        [
            ("kind", "physician-practising"),
            ("number", "110110000012345"),
            ("issuer", "北京市卫生健康委员会"),
            ("issued_on", "2022-01-20"),
            ("expires_on", expires),
        ]
    };
    let (_, _, page) = post(&mut hr, "/manage/staff/dr-li/licences", &token, &licence("")).await;
    assert!(between(&page, "id=\"staff-errors\"", "</div>").contains("有效期至: 必填"));
    let (_, loc, _) = post(&mut hr, "/manage/staff/dr-li/licences", &token, &licence("2027-01-20")).await;
    assert_eq!(loc, "/manage/staff/dr-li?done=licence");
    let (_, _, page) = post(&mut hr, "/manage/staff/dr-li/licences", &token, &licence("2027-01-20")).await;
    assert!(page.contains("该证照编号已登记"));
    assert_eq!(app.fhir.operations().staff().licences("dr-li").await.unwrap().len(), 1, "nothing half-written");

    // Reminders: 44 days ahead on 7 December — listed; in the people list too.
    let (_, _, page) = hr.get("/manage/staff?department=east-cardio").await;
    assert!(between(&page, "id=\"staff-reminders\"", "</table>").contains("44 天后到期"), "{page}");
    assert!(between(&page, "id=\"staff-people\"", "</table>").contains("44 天后到期"));
    // A month and a half later it has expired (a fresh login: the clock moved).
    clock.set(MONDAY_0900 + 50 * DAY);
    let (mut later, _) = logged_in(&app, &clock, "hr.later", "human-resources", "*", None).await;
    let (_, _, page) = later.get("/manage/staff").await;
    assert!(between(&page, "id=\"staff-reminders\"", "</table>").contains("已过期 6 天"), "{page}");
    for action in ["staff-record", "staff-licence"] {
        let query = lianyi_store::audit::AuditQuery { action: Some(action.into()), limit: 10, ..Default::default() };
        assert_eq!(app.store.audit_records(&query).await.unwrap().len(), 1, "{action}");
    }
}
