//! The dashboards over the pages: records written through the FHIR API at two
//! campuses (visits with their waits, appointments kept and missed, a critical value
//! acknowledged, a prescription) reach the daily figures through the follower; the
//! group's page shows both campuses and drills down to a department and a day; a
//! changed record replaces what it counted; the follower counting again from the
//! start changes nothing; the CSV holds the same lines; a bad period is named; a
//! nurse and another campus's head are refused. A Chromium walk in both languages.

use std::time::Duration;

use lianyi_security::ManualClock;
use lianyi_store::figures::{Scope, SumBy};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, put_resource as put, spawn_app_clocked};
use crate::pages::{between, logged_in};

/// Monday 7 December 2026, 09:00 in Beijing.
const MONDAY_0900: i64 = 1_796_605_200_000;

async fn records(app: &TestApp) {
    let east = app.client_with("system/*.cruds", "campus-east", None).await;
    let west = app.client_with("system/*.cruds", "campus-west", None).await;
    for (c, campus, zh, en) in
        [(&east, "campus-east", "东院区", "East Campus"), (&west, "campus-west", "西院区", "West Campus")]
    {
        put(c, app, json!({"resourceType": "Organization", "id": campus, "name": zh, "alias": [en]})).await;
    }
    for (c, id, zh, en, campus) in [
        (&east, "east-im", "东院内科", "East Internal Medicine", "campus-east"),
        (&east, "east-surg", "东院外科", "East Surgery", "campus-east"),
        (&west, "west-im", "西院内科", "West Internal Medicine", "campus-west"),
    ] {
        put(
            c,
            app,
            json!({"resourceType": "Organization", "id": id, "name": zh, "alias": [en], "partOf": {"reference": format!("Organization/{campus}")}}),
        )
        .await;
    }
    put(&east, app, json!({"resourceType": "Patient", "id": "dp1", "name": [{"text": "看板甲"}]})).await;
    put(&west, app, json!({"resourceType": "Patient", "id": "dp2", "name": [{"text": "看板乙"}]})).await;
    put(&east, app, json!({"resourceType": "PractitionerRole", "id": "role-e", "organization": {"reference": "Organization/east-im"}})).await;
    let visit = |id: &str, class: &str, status: &str, dept: &str, start: &str, called: Option<&str>, patient: &str| {
        let mut e = json!({"resourceType": "Encounter", "id": id, "status": status, "class": {"code": class},
            "subject": {"reference": format!("Patient/{patient}")}, "period": {"start": start},
            "serviceProvider": {"reference": format!("Organization/{dept}")}});
        if let Some(c) = called {
            e["statusHistory"] = json!([{"status": "arrived", "period": {"start": start, "end": c}}]);
        }
        e
    };
    // East: two visits (waits of 30 and 10 minutes), an admission (not a visit).
    put(
        &east,
        app,
        visit(
            "e1",
            "AMB",
            "finished",
            "east-im",
            "2026-12-05T08:00:00+08:00",
            Some("2026-12-05T08:30:00+08:00"),
            "dp1",
        ),
    )
    .await;
    put(
        &east,
        app,
        visit(
            "e2",
            "AMB",
            "in-progress",
            "east-surg",
            "2026-12-07T08:10:00+08:00",
            Some("2026-12-07T08:20:00+08:00"),
            "dp1",
        ),
    )
    .await;
    put(&east, app, visit("e3", "IMP", "in-progress", "east-im", "2026-12-06T10:00:00+08:00", None, "dp1")).await;
    // West: one visit not yet called.
    put(&west, app, visit("w1", "AMB", "arrived", "west-im", "2026-12-06T09:00:00+08:00", None, "dp2")).await;
    let appointment = |id: &str, status: &str, start: &str| {
        json!({"resourceType": "Appointment", "id": id, "status": status, "start": start,
            "participant": [{"actor": {"reference": "Patient/dp1"}, "status": "accepted"},
                            {"actor": {"reference": "PractitionerRole/role-e"}, "status": "accepted"}]})
    };
    // Kept and missed on Saturday; booked for today (not yet missed); cancelled.
    put(&east, app, appointment("a1", "fulfilled", "2026-12-05T08:00:00+08:00")).await;
    put(&east, app, appointment("a2", "noshow", "2026-12-05T09:00:00+08:00")).await;
    put(&east, app, appointment("a3", "booked", "2026-12-07T15:00:00+08:00")).await;
    put(&east, app, appointment("a4", "cancelled", "2026-12-05T10:00:00+08:00")).await;
    // A critical value of the first visit acknowledged after 6 minutes.
    put(
        &east,
        app,
        json!({"resourceType": "Task", "id": "t1", "status": "completed", "intent": "order",
            "code": {"coding": [{"system": "urn:lianyi:task", "code": "critical-value"}]},
            "for": {"reference": "Patient/dp1"}, "encounter": {"reference": "Encounter/e1"},
            "authoredOn": "2026-12-05T10:00:00+08:00",
            "executionPeriod": {"start": "2026-12-05T10:00:00+08:00", "end": "2026-12-05T10:06:00+08:00"}}),
    )
    .await;
    put(
        &east,
        app,
        json!({"resourceType": "MedicationRequest", "id": "m1", "status": "active", "intent": "order",
            "medicationCodeableConcept": {"text": "阿莫西林"}, "subject": {"reference": "Patient/dp1"},
            "encounter": {"reference": "Encounter/e1"}, "authoredOn": "2026-12-05T08:25:00+08:00"}),
    )
    .await;
}

/// The group's visits over the first week of December, once the follower has them.
async fn group_visits(app: &TestApp, expected: i64) {
    let scope = Scope { from: "2026-12-01", to: "2026-12-07", ..Scope::default() };
    let mut seen = 0;
    for _ in 0..150 {
        let sums = app.fhir.operations().figures().sums(&scope, SumBy::Campus).await.unwrap();
        seen = sums.iter().filter(|s| s.measure == "visits").map(|s| s.total).sum::<i64>();
        if seen == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the follower counted {seen} visits, not {expected}");
}

/// The cells of the row of `label` in table `id`.
fn row(page: &str, id: &str, label: &str) -> Vec<String> {
    let table = between(page, &format!("id=\"{id}\""), "</table>");
    let tr = table
        .split("<tr>")
        .find(|r| r.contains(&format!(">{label}<")))
        .unwrap_or_else(|| panic!("{label} not in {table}"));
    tr.split("<td class=\"num\">").skip(1).map(|c| c.split('<').next().unwrap_or_default().to_string()).collect()
}

#[tokio::test]
async fn dashboards_follow_the_records_and_drill_down() {
    let clock = ManualClock::new(MONDAY_0900);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    records(&app).await;
    group_visits(&app, 3).await;
    let (mut manager, _) = logged_in(&app, &clock, "mgr", "manager", "*", None).await;
    let week = "from=2026-12-01&to=2026-12-07";
    // East's HIS, watched by monitoring (no fault this month).
    let ops = app.client_with("lianyi:ops", "*", None).await;
    let his = json!({"code": "HIS-E", "name": "东院区 HIS", "class": "business-system", "campus": "campus-east",
                     "supportGroup": "system", "attributes": {"availability": "99.9"}});
    let r = ops.post(app.url("/api/ops/cis")).json(&his).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());

    // The group: both campuses. Columns: visits, appointments, no-show rate, wait,
    // revenue, drug share, critical response, studies, tests, prescriptions.
    let (status, _, page) = manager.get(&format!("/manage/dashboard?{week}")).await;
    assert_eq!(status, StatusCode::OK);
    let east = row(&page, "dash-lines", "东院区");
    assert_eq!(east, ["2", "3", "50.0%", "20", "0.00", "—", "6", "0", "0", "1"], "{page}");
    let west = row(&page, "dash-lines", "西院区");
    assert_eq!(west[..4], ["1", "0", "—", "—"]);
    assert!(between(&page, "id=\"dash-bars\"", "</figure>").contains(
        "href=\"/manage/dashboard?from=2026-12-01&amp;to=2026-12-07&amp;measure=visits&amp;campus=campus-east\""
    ));
    assert!(between(&page, "id=\"dash-total\"", "</div></div>").contains("<strong>3</strong>"));
    // IT availability this month: each campus's least available system (the
    // platform itself serves both; no fault this month).
    let it = between(&page, "id=\"dash-it\"", "</table>");
    assert!(it.contains("<tr><td>东院区</td><td>") && it.contains("<tr><td>西院区</td><td>"), "{it}");
    assert!(!it.contains("due-bad") && it.matches("<td class=\"num\">100%</td>").count() == 2, "{it}");

    // East Campus: its departments.
    let (_, _, page) = manager.get(&format!("/manage/dashboard?{week}&campus=campus-east")).await;
    assert!(between(&page, "id=\"dash-crumbs\"", "</nav>").contains("东院区"));
    assert_eq!(row(&page, "dash-lines", "东院内科"), ["1", "3", "50.0%", "30", "0.00", "—", "6", "0", "0", "1"]);
    assert_eq!(row(&page, "dash-lines", "东院外科")[..4], ["1", "0", "—", "10"]);
    assert!(!page.contains("西院内科"));
    let it = between(&page, "id=\"dash-it\"", "</table>");
    assert!(it.contains("<td>东院区 HIS</td><td class=\"num\">100%</td><td class=\"num\">99.9%</td>"), "{it}");
    // A department: its days; a day: that day's departments.
    let (_, _, page) = manager.get(&format!("/manage/dashboard?{week}&campus=campus-east&department=east-im")).await;
    assert!(between(&page, "id=\"dash-crumbs\"", "</nav>").contains("东院内科"));
    // Each person's workload: the department's performance sheet for the month.
    assert!(page.contains("href=\"/manage/performance?campus=campus-east&#38;department=east-im&#38;month=2026-12\""));
    assert_eq!(row(&page, "dash-days", "2026-12-05")[..4], ["1", "2", "50.0%", "30"]);
    let (_, _, page) = manager.get("/manage/dashboard?from=2026-12-07&to=2026-12-07&campus=campus-east").await;
    assert_eq!(row(&page, "dash-lines", "东院外科")[0], "1");
    assert_eq!(row(&page, "dash-lines", "东院内科")[..3], ["0", "1", "—"], "booked for this afternoon: not missed yet");

    // A changed record replaces what it counted: the surgery visit was entered in error.
    let c = app.client_with("system/*.cruds", "campus-east", None).await;
    let mut e2: Value = c.get(app.url("/fhir/Encounter/e2")).send().await.unwrap().json().await.unwrap();
    e2["status"] = json!("entered-in-error");
    put(&c, &app, e2).await;
    group_visits(&app, 2).await;
    // Counting again from the start changes nothing.
    let ops = app.fhir.operations();
    let scope = Scope { from: "2026-12-01", to: "2026-12-07", ..Scope::default() };
    let before = ops.figures().sums(&scope, SumBy::Department).await.unwrap();
    lianyi_store::testing::raw_execute(
        &app.database_url,
        "UPDATE counters SET value = 0 WHERE name = 'cursor:dashboards'",
    )
    .await;
    assert_eq!(ops.cursor("dashboards").await.unwrap(), Some(0));
    lianyi_manage::dashboards::Dashboards::new(app.fhir.clone()).catch_up().await.unwrap();
    assert_eq!(ops.figures().sums(&scope, SumBy::Department).await.unwrap(), before);
    assert_eq!(ops.figures().of_source("Encounter/e3").await.unwrap(), [], "an admission is not a visit");

    // The CSV: the same lines.
    let r = manager
        .http
        .get(format!("{}/manage/dashboard.csv?{week}", app.base))
        .header("cookie", manager.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    let text = r.text().await.unwrap();
    assert!(text.contains("campus-east,东院区,1,3,50.0%,30,0.00,—,6,0,0,1\r\n"), "{text}");

    // A bad period is named; the page still answers.
    let (status, _, page) = manager.get("/manage/dashboard?from=2026-13-01&to=2026-12-07").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("开始日期: 请按 年-月-日 填写日期"), "{page}");
    let (_, _, page) = manager.get("/manage/dashboard?from=2026-12-07&to=2026-12-01").await;
    assert!(page.contains("结束日期: 结束日期不得早于开始日期"), "{page}");

    // A nurse sees no dashboard; a head of East sees East, not West.
    let (mut nurse, _) = logged_in(&app, &clock, "nurse.d", "nurse", "campus-east", None).await;
    assert_eq!(nurse.get("/manage/dashboard").await.0, StatusCode::FORBIDDEN);
    let (mut head, _) = logged_in(&app, &clock, "head.d", "department-head", "campus-east", None).await;
    let (_, _, page) = head.get(&format!("/manage/dashboard?{week}")).await;
    assert!(page.contains(">东院区<") && !page.contains(">西院区<"), "{page}");
    assert_eq!(head.get("/manage/dashboard?campus=campus-west").await.0, StatusCode::FORBIDDEN);
}

/// The walk in a real Chromium, in Chinese then English: the manager opens the
/// dashboards from the menu, sees every campus, drills down to East Campus and its
/// internal medicine, and back to the group.
#[tokio::test]
async fn chromium_the_group_dashboard_shows_every_campus_and_drills_down() {
    let clock = ManualClock::new(MONDAY_0900);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    records(&app).await;
    group_visits(&app, 3).await;
    crate::helpers::account(&app, "mgr", "manager", "*").await;
    let d = crate::browser::Driver::start().await;
    let mut secrets = Vec::new();
    for (lang, heading, east, west, im, group) in [
        ("zh", "运营决策看板", "东院区", "西院区", "东院内科", "集团"),
        ("en", "Operations dashboard", "East Campus", "West Campus", "East Internal Medicine", "Group"),
    ] {
        d.walk_log_in(&app.base, "mgr", &mut secrets, &clock).await;
        d.open_menu().await;
        d.click("a[href='/manage/dashboard']").await;
        d.wait_url("/manage/dashboard").await;
        d.in_language(lang, heading).await;
        let lines = d.text("#dash-lines").await;
        assert!(lines.contains(east) && lines.contains(west), "{lines}");
        d.check(true).await;
        d.click("#dash-lines a[href*='campus=campus-east']").await;
        d.wait_url("campus=campus-east").await;
        assert!(d.text("#dash-level").await.contains(east));
        let lines = d.text("#dash-lines").await;
        assert!(lines.contains(im) && !lines.contains(west), "{lines}");
        d.check(true).await;
        d.click("#dash-lines a[href*='department=east-im']").await;
        d.wait_url("department=east-im").await;
        assert!(d.text("#dash-level").await.contains(im));
        assert!(d.text("#dash-days").await.contains("2026-12-05"));
        d.check(true).await;
        d.screenshot("manage", &format!("dashboard-department-{lang}")).await;
        d.click("#dash-crumbs a").await;
        d.wait_text(west, 5).await;
        assert!(d.text("#dash-level").await.contains(group));
        d.log_out().await;
    }
}
