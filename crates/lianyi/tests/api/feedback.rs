//! Patients' feedback and complaints over the pages: a registrar records a complaint
//! at East Campus (first without a subject and at West Campus: refused naming each
//! field, nothing recorded); it is due in five days; East's department head names the
//! owner, who answers it once (a second answer is refused); a suggestion not answered
//! in ten days is overdue; West's head never sees East's feedback.

use lianyi_security::ManualClock;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{pairs, put_resource as put, spawn_app_clocked};
use crate::pages::{between, logged_in};

/// Monday 7 December 2026, 09:00 in Beijing.
const MONDAY_0900: i64 = 1_796_605_200_000;
const DAY_MS: i64 = 86_400_000;

fn complaint(campus: &str, subject: &str) -> Vec<(&'static str, String)> {
    vec![
        ("kind", "complaint".into()),
        ("channel", "desk".into()),
        ("campus", campus.into()),
        ("department", "east-im".into()),
        ("patient", "fb-p1".into()),
        ("subject", subject.into()),
        ("body", "候诊两个小时无人解释，态度生硬。".into()),
    ]
}

#[tokio::test]
async fn a_complaint_is_recorded_owned_answered_once_and_deadlines_followed() {
    let clock = ManualClock::new(MONDAY_0900);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    let east = app.client_with("system/*.cruds", "campus-east", None).await;
    put(
        &east,
        &app,
        json!({"resourceType": "Organization", "id": "campus-east", "name": "东院区", "alias": ["East Campus"]}),
    )
    .await;
    put(
        &east,
        &app,
        json!({"resourceType": "Organization", "id": "east-im", "name": "东院内科", "alias": ["East Internal Medicine"],
               "partOf": {"reference": "Organization/campus-east"}}),
    )
    .await;
    put(&east, &app, json!({"resourceType": "Patient", "id": "fb-p1", "name": [{"text": "投诉人甲"}]})).await;
    put(&east, &app, json!({"resourceType": "Practitioner", "id": "fb-dr", "name": [{"text": "周医生"}]})).await;
    let (mut desk, token) = logged_in(&app, &clock, "reg.fb", "registrar", "campus-east", None).await;
    let form = |fields: Vec<(&'static str, String)>| {
        let mut all = vec![("csrf", token.clone())];
        all.extend(fields);
        all
    };
    // No subject, a campus not the registrar's, a patient not on record: each named.
    // A member of staff not in the directory: named too.
    let mut bad = complaint("campus-west", "");
    bad[4] = ("patient", "nobody".into());
    bad.push(("practitioner", "nobody".into()));
    let (status, _, page) = desk.post("/manage/feedback", &pairs(&form(bad))).await;
    assert_eq!(status, StatusCode::OK);
    let errors = between(&page, "id=\"fb-errors\"", "</div>");
    for named in
        ["主题: 必填", "院区: 超出您所在的范围", "患者编号: 查无此患者", "涉及的医务人员（选填）: 人员通讯录中没有此人"]
    {
        assert!(errors.contains(named), "{named}: {errors}");
    }
    assert!(app.fhir.operations().feedback().list(None, false, 10).await.unwrap().is_empty(), "nothing recorded");

    // The complaint is about Dr Zhou.
    let mut about = complaint("campus-east", "候诊时间过长");
    about.push(("practitioner", "fb-dr".into()));
    let (_, loc, _) = desk.post("/manage/feedback", &pairs(&form(about))).await;
    let id: i64 = between(&format!("{loc}?"), "/manage/feedback/", "?").parse().unwrap();
    let (_, _, page) = desk.get(&loc).await;
    assert!(page.contains("2026-12-12") && page.contains("待答复"), "due in five days: {page}");
    assert!(page.contains("<dd id=\"fb-about\">周医生</dd>"), "{page}");
    // A suggestion, due in ten days.
    let mut s = complaint("campus-east", "增加自助机");
    s[0] = ("kind", "suggestion".into());
    s[3] = ("department", String::new());
    desk.post("/manage/feedback", &pairs(&form(s))).await;

    // East's head names the owner (a malformed name is refused), who answers once.
    let (mut head, head_token) = logged_in(&app, &clock, "head.fb", "department-head", "campus-east", None).await;
    let (_, _, page) = head.get("/manage/feedback").await;
    assert!(between(&page, "id=\"fb-list\"", "</table>").contains("候诊时间过长"));
    let (_, _, page) =
        head.post(&format!("/manage/feedback/{id}/owner"), &[("csrf", &head_token), ("owner", "张 医生")]).await;
    assert!(between(&page, "id=\"fb-errors\"", "</div>").contains("负责人用户名: 必填"), "{page}");
    let (_, loc, _) =
        head.post(&format!("/manage/feedback/{id}/owner"), &[("csrf", &head_token), ("owner", "dr.fb")]).await;
    assert_eq!(loc, format!("/manage/feedback/{id}?done=assigned"));
    let (mut owner, owner_token) = logged_in(&app, &clock, "dr.fb", "doctor", "campus-east", None).await;
    let (_, _, page) = owner.get("/manage/feedback").await;
    assert!(page.contains("候诊时间过长") && !page.contains("增加自助机"), "the owner sees what is theirs: {page}");
    let reply = "已向患者致歉，并调整叫号提示。";
    let (_, loc, _) =
        owner.post(&format!("/manage/feedback/{id}/answer"), &[("csrf", &owner_token), ("reply", reply)]).await;
    assert_eq!(loc, format!("/manage/feedback/{id}?done=answered"));
    let (_, _, page) = desk.get(&format!("/manage/feedback/{id}")).await;
    assert!(page.contains(reply) && page.contains("已答复") && page.contains("user:dr.fb"), "{page}");
    let (status, _, page) = owner.get(&format!("/manage/feedback/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!page.contains("id=\"fb-answer\""), "no second answer form");
    let (_, _, page) =
        owner.post(&format!("/manage/feedback/{id}/answer"), &[("csrf", &owner_token), ("reply", "再次答复")]).await;
    assert!(between(&page, "id=\"fb-errors\"", "</div>").contains("答复: 已答复，不能重复答复"), "{page}");
    assert!(!page.contains("再次答复"));

    // Eleven days later the suggestion is overdue.
    clock.advance(11 * DAY_MS);
    let (mut head, _) = logged_in(&app, &clock, "head2.fb", "department-head", "campus-east", None).await;
    let (_, _, page) = head.get("/manage/feedback?open=1").await;
    assert!(between(&page, "id=\"fb-overdue\"", "</p>").contains("1 件"), "{page}");
    assert!(!between(&page, "id=\"fb-list\"", "</table>").contains("候诊时间过长"), "answered: not open");

    // West's head sees none of it; a patient has no such page.
    let (mut west, _) = logged_in(&app, &clock, "head.w.fb", "department-head", "campus-west", None).await;
    let (_, _, page) = west.get("/manage/feedback").await;
    assert!(page.contains("id=\"fb-none\""), "{page}");
    assert_eq!(west.get(&format!("/manage/feedback/{id}")).await.0, StatusCode::FORBIDDEN);
    let query =
        lianyi_store::audit::AuditQuery { action: Some("feedback-record".into()), limit: 10, ..Default::default() };
    assert_eq!(app.store.audit_records(&query).await.unwrap().len(), 2);
}
