//! The performance sheets over the pages: records written through the FHIR API name
//! their people in each of the ways the platform writes them (a Practitioner, a
//! PractitionerRole, an account's identifier or display); the follower keeps each
//! person's figures; a department's month is scored by the campus's default formula,
//! then by the formula its manager sets (a broken one refused by field, nothing
//! saved); the CSV holds the same lines; a head reads their own department only, and
//! sets no formula; a nurse reads none.

use std::time::Duration;

use lianyi_security::ManualClock;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, put_resource as put, spawn_app_clocked};
use crate::pages::{between, csrf, logged_in};

/// Monday 7 December 2026, 09:00 in Beijing.
const MONDAY_0900: i64 = 1_796_605_200_000;

async fn records(app: &TestApp) {
    let east = app.client_with("system/*.cruds", "campus-east", None).await;
    put(
        &east,
        app,
        json!({"resourceType": "Organization", "id": "campus-east", "name": "东院区", "alias": ["East Campus"]}),
    )
    .await;
    for (id, zh, en) in [("east-im", "东院内科", "East Internal Medicine"), ("east-surg", "东院外科", "East Surgery")]
    {
        put(
            &east,
            app,
            json!({"resourceType": "Organization", "id": id, "name": zh, "alias": [en],
                   "partOf": {"reference": "Organization/campus-east"}}),
        )
        .await;
    }
    for (id, family, given, user) in
        [("li", "李", "明", "dr.li"), ("wang", "王", "芳", "dr.wang"), ("zhao", "赵", "强", "head.zhao")]
    {
        put(
            &east,
            app,
            json!({"resourceType": "Practitioner", "id": id, "name": [{"family": family, "given": [given], "text": format!("{family}{given}")}],
                   "identifier": [{"system": "urn:lianyi:sid:user", "value": user}]}),
        )
        .await;
        put(
            &east,
            app,
            json!({"resourceType": "PractitionerRole", "id": format!("role-{id}"), "active": true,
                   "practitioner": {"reference": format!("Practitioner/{id}")},
                   "organization": {"reference": "Organization/east-im"}, "code": [{"text": "医生"}]}),
        )
        .await;
    }
    put(&east, app, json!({"resourceType": "Patient", "id": "pp1", "name": [{"text": "绩效甲"}]})).await;
    let visit = |id: &str, who: &str, start: &str| {
        json!({"resourceType": "Encounter", "id": id, "status": "finished", "class": {"code": "AMB"},
               "subject": {"reference": "Patient/pp1"}, "period": {"start": start},
               "participant": [{"individual": {"reference": who}}],
               "serviceProvider": {"reference": "Organization/east-im"}})
    };
    // Li: three visits in December (one in November does not count); Wang: one, named
    // by his role.
    for (id, who, start) in [
        ("pv1", "Practitioner/li", "2026-12-01T08:00:00+08:00"),
        ("pv2", "Practitioner/li", "2026-12-02T08:00:00+08:00"),
        ("pv3", "Practitioner/li", "2026-12-07T08:00:00+08:00"),
        ("pv4", "Practitioner/li", "2026-11-30T08:00:00+08:00"),
        ("pv5", "PractitionerRole/role-wang", "2026-12-03T08:00:00+08:00"),
    ] {
        put(&east, app, visit(id, who, start)).await;
    }
    // Prescriptions: Li's by the display the prescribing page writes, Wang's two by
    // his account's identifier.
    for (id, requester) in [
        ("pm1", json!({"display": "user:dr.li"})),
        ("pm2", json!({"identifier": {"system": "urn:lianyi:sid:user", "value": "dr.wang"}})),
        ("pm3", json!({"identifier": {"system": "urn:lianyi:sid:user", "value": "dr.wang"}})),
    ] {
        put(
            &east,
            app,
            json!({"resourceType": "MedicationRequest", "id": id, "status": "active", "intent": "order",
                   "medicationCodeableConcept": {"text": "阿莫西林"}, "subject": {"reference": "Patient/pp1"},
                   "encounter": {"reference": "Encounter/pv1"}, "authoredOn": "2026-12-01T08:10:00+08:00",
                   "requester": requester}),
        )
        .await;
    }
    put(
        &east,
        app,
        json!({"resourceType": "ServiceRequest", "id": "ps1", "status": "active", "intent": "order",
               "code": {"text": "血常规"}, "subject": {"reference": "Patient/pp1"},
               "encounter": {"reference": "Encounter/pv1"}, "authoredOn": "2026-12-01T08:12:00+08:00",
               "requester": {"identifier": {"system": "urn:lianyi:sid:user", "value": "dr.li"}}}),
    )
    .await;
    put(
        &east,
        app,
        json!({"resourceType": "DiagnosticReport", "id": "pr1", "status": "final", "code": {"text": "血常规"},
               "category": [{"coding": [{"code": "LAB"}]}], "subject": {"reference": "Patient/pp1"},
               "issued": "2026-12-01T10:00:00+08:00",
               "performer": [{"identifier": {"system": "urn:lianyi:sid:user", "value": "dr.wang"}}]}),
    )
    .await;
    // Critical values: Li answered in 6 minutes, Wang in 12.
    for (id, owner, end) in [
        ("pt1", "Practitioner/li", "2026-12-01T11:06:00+08:00"),
        ("pt2", "Practitioner/wang", "2026-12-01T11:12:00+08:00"),
    ] {
        put(
            &east,
            app,
            json!({"resourceType": "Task", "id": id, "status": "completed", "intent": "order",
                   "code": {"coding": [{"system": "urn:lianyi:task", "code": "critical-value"}]},
                   "for": {"reference": "Patient/pp1"}, "encounter": {"reference": "Encounter/pv1"},
                   "owner": {"reference": owner}, "authoredOn": "2026-12-01T11:00:00+08:00",
                   "executionPeriod": {"start": "2026-12-01T11:00:00+08:00", "end": end}}),
        )
        .await;
    }
}

/// Waits until the follower has every person's December figures.
async fn followed(app: &TestApp) {
    let figures = app.fhir.operations().figures();
    for _ in 0..150 {
        let sums = figures.person_sums("campus-east", "2026-12-01", "2026-12-31").await.unwrap();
        if sums.iter().any(|s| s.key == "Practitioner/wang" && s.measure == "critical") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the follower did not count the people's figures");
}

/// The cells of the row of `practitioner` in the sheet.
fn row(page: &str, practitioner: &str) -> Vec<String> {
    let table = between(page, "id=\"perf-sheet\"", "</table>");
    let tr = between(table, &format!("data-practitioner=\"{practitioner}\">"), "</tr>");
    tr.split("<td class=\"num\">")
        .skip(1)
        .map(|c| c.trim_start_matches("<strong>").split('<').next().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn a_department_month_is_scored_by_its_campus_formula_and_exported() {
    let clock = ManualClock::new(MONDAY_0900);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    records(&app).await;
    followed(&app).await;
    let (mut manager, _) = logged_in(&app, &clock, "mgr.p", "manager", "campus-east", None).await;
    let sheet = "/manage/performance?campus=campus-east&department=east-im&month=2026-12";

    // The default formula: visits 35, prescriptions 20, requests 15, reports 15,
    // critical-value response 15, each against the department's best. Cells: each
    // figure and its score, then the total.
    let (status, _, page) = manager.get(sheet).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("默认方案"), "{page}");
    assert_eq!(
        row(&page, "li"),
        ["3", "100.00%", "1", "50.00%", "1", "100.00%", "0", "0.00%", "6 分钟", "100.00%", "75.00%"],
        "{page}"
    );
    // Wang: 1/3 of the best visits, the most prescriptions, no request, the only
    // report, half Li's speed: 0.35×33.33 + 20 + 0 + 15 + 7.5 = 54.17 %.
    assert_eq!(
        row(&page, "wang"),
        ["1", "33.33%", "2", "100.00%", "0", "0.00%", "1", "100.00%", "12 分钟", "50.00%", "54.17%"]
    );
    // Zhao had no critical value: scored on the rest (all zero).
    assert_eq!(row(&page, "zhao")[8..], ["—", "—", "0.00%"]);
    let sheet_table = between(&page, "id=\"perf-sheet\"", "</table>");
    assert!(sheet_table.find("\"li\"").unwrap() < sheet_table.find("\"wang\"").unwrap(), "best first");

    // A broken formula is refused by field; nothing is saved.
    let (_, _, form) = manager.get("/manage/performance/formula?campus=campus-east").await;
    let token = csrf(&form);
    let mut fields = vec![
        ("csrf", token.as_str()),
        ("campus", "campus-east"),
        ("method", "target"),
        ("cap", "120"),
        ("weight.visits", "60"),
        ("weight.prescriptions", "30"),
        ("target.visits", "2"),
    ];
    let (status, _, page) = manager.post("/manage/performance/formula", &fields).await;
    assert_eq!(status, StatusCode::OK);
    let errors = between(&page, "id=\"perf-errors\"", "</div>");
    assert!(errors.contains("权重: 权重合计须为 100"), "{errors}");
    assert!(errors.contains("目标值 · 处方数: 按目标值计分时必填"), "{errors}");
    assert!(!errors.contains("接诊人次"), "{errors}");
    assert!(page.contains("value=\"60\""), "the form keeps what was typed");
    let (_, _, page) = manager.get(sheet).await;
    assert!(page.contains("默认方案"));

    // Against targets (2 visits, 2 prescriptions a month), capped at 120 %.
    fields[5] = ("weight.prescriptions", "40");
    fields.push(("target.prescriptions", "2"));
    let (status, location, _) = manager.post("/manage/performance/formula", &fields).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.contains("done=saved"), "{location}");
    let (_, _, page) = manager.get(sheet).await;
    assert!(page.contains("mgr.p"), "who set it: {page}");
    // Li: 3/2 visits capped at 120 %, 1/2 prescriptions: 0.6×120 + 0.4×50 = 92 %.
    assert_eq!(row(&page, "li"), ["3", "120.00%", "1", "50.00%", "92.00%"]);
    assert_eq!(row(&page, "wang"), ["1", "50.00%", "2", "100.00%", "70.00%"]);

    // Patient satisfaction: praise of Li, a complaint about Wang (a suggestion does
    // not count); weighed half and half with the visits, against the best.
    let feedbacks = lianyi_manage::feedback::Feedbacks::new(app.fhir.clone());
    let desk = lianyi_security::Caller::task(lianyi_security::SystemTask::Operator("test desk".into()));
    for (kind, who) in [("praise", "li"), ("complaint", "wang"), ("suggestion", "wang")] {
        let form = lianyi_manage::feedback::FeedbackForm {
            campus: "campus-east".into(),
            kind: kind.into(),
            channel: "letter".into(),
            subject: "来信".into(),
            body: "来信内容".into(),
            practitioner: who.into(),
            ..Default::default()
        };
        feedbacks.record(&desk, &form).await.unwrap();
    }
    let (_, _, form) = manager.get("/manage/performance/formula?campus=campus-east").await;
    let token = csrf(&form);
    let halves = [
        ("csrf", token.as_str()),
        ("campus", "campus-east"),
        ("method", "relative"),
        ("weight.visits", "50"),
        ("weight.satisfaction", "50"),
    ];
    let (status, _, _) = manager.post("/manage/performance/formula", &halves).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, page) = manager.get(sheet).await;
    assert_eq!(row(&page, "li"), ["3", "100.00%", "100.0%", "100.00%", "100.00%"], "{page}");
    // Wang: 0.5×33.33 + 0.5×0 = 16.67 %; Zhao, with no feedback, on the visits alone.
    assert_eq!(row(&page, "wang"), ["1", "33.33%", "0.0%", "0.00%", "16.67%"]);
    assert_eq!(row(&page, "zhao"), ["0", "0.00%", "—", "—", "0.00%"]);
    // Back to the targets, for the rest.
    let (status, _, _) = manager.post("/manage/performance/formula", &fields).await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    // The CSV: the same lines.
    let r = manager
        .http
        .get(format!("{}/manage/performance.csv?campus=campus-east&department=east-im&month=2026-12", app.base))
        .header("cookie", manager.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    let text = r.text().await.unwrap();
    assert!(text.contains("li,李明,,3,120.00%,1,50.00%,92.00%\r\n"), "{text}");

    // A bad month is named; the page still answers.
    let (status, _, page) =
        manager.get("/manage/performance?campus=campus-east&department=east-im&month=2026-13").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("月份: 月份格式为 YYYY-MM"), "{page}");

    // Zhao heads internal medicine: its sheet, not surgery's; no formula.
    let (mut head, _) = logged_in(&app, &clock, "head.zhao", "department-head", "campus-east", None).await;
    let (status, _, page) = head.get(sheet).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(row(&page, "li").last().map(String::as_str), Some("92.00%"));
    assert!(!page.contains("perf-formula-edit"));
    let surgery = "/manage/performance?campus=campus-east&department=east-surg&month=2026-12";
    assert_eq!(head.get(surgery).await.0, StatusCode::FORBIDDEN);
    assert_eq!(head.get("/manage/performance/formula?campus=campus-east").await.0, StatusCode::FORBIDDEN);
    let (mut nurse, _) = logged_in(&app, &clock, "nurse.p", "nurse", "campus-east", None).await;
    assert_eq!(nurse.get(sheet).await.0, StatusCode::FORBIDDEN);

    // Reading a sheet is audited.
    for (action, actor) in [("performance-sheet", "user:head.zhao"), ("performance-formula", "user:mgr.p")] {
        let query = lianyi_store::audit::AuditQuery {
            action: Some(action.into()),
            actor: Some(actor.into()),
            limit: 10,
            ..Default::default()
        };
        assert!(!app.store.audit_records(&query).await.unwrap().is_empty(), "{action}");
    }
}
