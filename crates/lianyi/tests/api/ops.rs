//! IT operations: the configuration database through its API and its pages — impact
//! both ways, bad relations, CSV import all-or-nothing and export, the platform
//! registering itself, and who may see it.

use std::sync::Arc;

use lianyi_security::ManualClock;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_clocked};
use crate::pages::{between, logged_in};

/// Campus Organizations owned by themselves (as the demo loads them).
pub(crate) async fn campuses(app: &TestApp) {
    for (id, zh, en) in [("campus-east", "东院区", "East Campus"), ("campus-west", "西院区", "West Campus")] {
        let c = app.client_with("system/Organization.cruds", id, None).await;
        let r = c
            .put(app.url(&format!("/fhir/Organization/{id}")))
            .header("content-type", "application/fhir+json")
            .body(json!({"resourceType": "Organization", "id": id, "name": zh, "alias": [en]}).to_string())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
}

async fn post(c: &reqwest::Client, app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    let r = c.post(app.url(path)).json(&body).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(c: &reqwest::Client, app: &TestApp, path: &str) -> (StatusCode, Value) {
    let r = c.get(app.url(path)).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn codes(list: &Value) -> Vec<String> {
    let mut v: Vec<String> = list.as_array().unwrap().iter().map(|c| c["code"].as_str().unwrap().to_string()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_core_switch_failure_shows_the_business_systems_services_and_campuses_it_stops() {
    let clock: Arc<ManualClock> = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    campuses(&app).await;
    let ops = app.client_with("lianyi:ops", "*", None).await;
    let mut id = std::collections::HashMap::new();
    for (code, name, class, campus, attrs) in [
        ("SW-CORE", "核心交换机", "network", "campus-east", json!({"kind": "switch", "ip": "10.0.0.1"})),
        ("SW-WEST", "西院区汇聚交换机", "network", "campus-west", json!({"kind": "switch"})),
        ("SRV-HIS", "HIS 应用服务器", "host", "campus-east", json!({"kind": "server", "cpu-cores": "32"})),
        ("SRV-DB", "数据库服务器", "host", "campus-east", json!({"kind": "server"})),
        ("DB-HIS", "HIS 数据库", "database", "campus-east", json!({"engine": "postgresql"})),
        ("HIS", "医院信息系统 HIS", "business-system", "", json!({"kind": "his", "hours": "7x24"})),
        ("SVC-REG", "门诊挂号", "clinical-service", "campus-west", json!({"hours": "business"})),
        ("PRN-W3", "西院区三楼护士站打印机", "printer", "campus-west", json!({"ip": "10.2.3.40"})),
        ("NAS-BAK", "备份存储", "storage", "campus-east", json!({"kind": "nas"})),
    ] {
        let body = json!({"code": code, "name": name, "class": class, "campus": campus, "attributes": attrs,
                          "warrantyEnd": "2028-06-30"});
        let (status, v) = post(&ops, &app, "/api/ops/cis", body).await;
        assert_eq!(status, StatusCode::CREATED, "{code}: {v}");
        assert_eq!(
            v["attributes"],
            json!(attrs)
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, x)| {
                            (k.clone(), x.as_str().and_then(|s| s.parse::<u64>().ok()).map_or(x.clone(), Value::from))
                        })
                        .collect::<serde_json::Map<_, _>>()
                })
                .map(Value::Object)
                .unwrap()
        );
        id.insert(code, v["id"].as_i64().unwrap());
    }
    for (s, kind, t) in [
        ("SW-WEST", "connects-to", "SW-CORE"),
        ("SRV-HIS", "connects-to", "SW-CORE"),
        ("SRV-DB", "connects-to", "SW-CORE"),
        ("DB-HIS", "runs-on", "SRV-DB"),
        ("HIS", "runs-on", "SRV-HIS"),
        ("HIS", "depends-on", "DB-HIS"),
        ("SVC-REG", "depends-on", "HIS"),
        ("PRN-W3", "connects-to", "SW-WEST"),
        ("NAS-BAK", "backs-up", "DB-HIS"),
    ] {
        let (status, v) =
            post(&ops, &app, "/api/ops/relations", json!({"source": id[s], "kind": kind, "target": id[t]})).await;
        assert_eq!(status, StatusCode::CREATED, "{s} {kind} {t}: {v}");
    }

    // If the core switch fails: HIS and the registration service stop, at both campuses.
    let (status, v) = get(&ops, &app, &format!("/api/ops/cis/{}/impact", id["SW-CORE"])).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(codes(&v["businessSystems"]), ["HIS"]);
    assert_eq!(codes(&v["clinicalServices"]), ["SVC-REG"]);
    assert_eq!(v["campuses"], json!(["campus-east", "campus-west"]));
    assert_eq!(
        codes(&v["reached"]),
        ["DB-HIS", "HIS", "PRN-W3", "SRV-DB", "SRV-HIS", "SVC-REG", "SW-WEST"],
        "a backup spreads nothing: {v}"
    );
    let depth =
        |code: &str| v["reached"].as_array().unwrap().iter().find(|c| c["code"] == code).unwrap()["depth"].clone();
    assert_eq!((depth("SRV-HIS"), depth("HIS"), depth("SVC-REG")), (json!(1), json!(2), json!(3)));
    // What HIS needs.
    let (_, v) = get(&ops, &app, &format!("/api/ops/cis/{}/impact?way=needs", id["HIS"])).await;
    assert_eq!(codes(&v["reached"]), ["DB-HIS", "SRV-DB", "SRV-HIS", "SW-CORE"]);
    // The printer stops nothing else.
    let (_, v) = get(&ops, &app, &format!("/api/ops/cis/{}/impact", id["PRN-W3"])).await;
    assert_eq!(v["reached"], json!([]));

    // Bad input names the field and the rule, and writes nothing.
    let (status, v) =
        post(&ops, &app, "/api/ops/relations", json!({"source": id["HIS"], "kind": "part-of", "target": id["HIS"]}))
            .await;
    assert_eq!((status, v["errors"][0]["field"].clone()), (StatusCode::BAD_REQUEST, json!("target")), "{v}");
    let (status, _) = post(
        &ops,
        &app,
        "/api/ops/relations",
        json!({"source": id["SRV-HIS"], "kind": "part-of", "target": id["SW-CORE"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, v) = post(
        &ops,
        &app,
        "/api/ops/relations",
        json!({"source": id["SW-CORE"], "kind": "part-of", "target": id["SRV-HIS"]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a cycle of part-of: {v}");
    assert!(v["errors"][0]["detail"].as_str().unwrap().contains("part of itself"), "{v}");
    let (status, v) =
        post(&ops, &app, "/api/ops/relations", json!({"source": id["HIS"], "kind": "owns", "target": id["SW-CORE"]}))
            .await;
    assert_eq!((status, v["errors"][0]["field"].clone()), (StatusCode::BAD_REQUEST, json!("kind")));
    let (status, v) = post(
        &ops,
        &app,
        "/api/ops/cis",
        json!({"code": "X 1", "name": "", "class": "toaster", "campus": "campus-nowhere", "warrantyEnd": "2028-02-30"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let mut fields: Vec<&str> = v["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    fields.sort();
    assert_eq!(fields, ["campus", "class", "code", "name", "warranty_end"], "{v}");
    let (status, v) = post(
        &ops,
        &app,
        "/api/ops/cis",
        json!({"code": "SRV-X", "name": "x", "class": "host", "attributes": {"ip": "10.0.0.300", "color": "red"}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let fields: Vec<&str> = v["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["attr:ip", "attr:color"], "{v}");
    let (status, _) = post(&ops, &app, "/api/ops/cis", json!({"code": "HIS", "name": "again", "class": "host"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a code is unique");

    // The list: keyset pages, filters, a count on request.
    let (_, page1) = get(&ops, &app, "/api/ops/cis?limit=4&total=true&campus=campus-east").await;
    assert_eq!(page1["items"].as_array().unwrap().len(), 4);
    assert_eq!(page1["total"], 5, "{page1}");
    let next = page1["next"].as_str().unwrap();
    let (_, page2) =
        get(&ops, &app, &format!("/api/ops/cis?limit=4&campus=campus-east&after={}", urlencode(next))).await;
    assert_eq!(page2["items"].as_array().unwrap().len(), 1);
    assert_eq!(page2["next"], Value::Null);
    let (_, v) = get(&ops, &app, "/api/ops/cis?q=%E6%89%93%E5%8D%B0").await;
    assert_eq!(codes(&v["items"]), ["PRN-W3"], "打印 finds the printer");
    let (_, v) = get(&ops, &app, "/api/ops/cis?q=his&class=business-system").await;
    assert_eq!(codes(&v["items"]), ["HIS"], "a search ignores case on both databases");

    // An engineer of the west campus changes the west campus's items only.
    let west = app.client_with("lianyi:ops", "campus-west", None).await;
    let (status, v) = post(
        &west,
        &app,
        "/api/ops/cis",
        json!({"code": "PC-E1", "name": "东院区电脑", "class": "host", "campus": "campus-east"}),
    )
    .await;
    assert_eq!((status, v["errors"][0]["field"].clone()), (StatusCode::BAD_REQUEST, json!("campus")), "{v}");
    let (status, _) = post(
        &west,
        &app,
        "/api/ops/cis",
        json!({"code": "PC-W1", "name": "西院区电脑", "class": "host", "campus": "campus-west"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    // A retired switch stops nothing.
    let r = ops.post(app.url("/api/ops/cis/import")).body("code,name,class,campus,status,relations\r\nSW-OLD,旧交换机,network,campus-east,retired,connects-to:SW-CORE\r\n").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let (_, v) = get(&ops, &app, &format!("/api/ops/cis/{}/impact", id["SW-CORE"])).await;
    assert!(!codes(&v["reached"]).contains(&"SW-OLD".to_string()), "{v}");
    // An import of a code already stored names the row.
    let r = ops
        .post(app.url("/api/ops/cis/import"))
        .body("code,name,class\r\nNEW-1,新设备,printer\r\nHIS,again,host\r\n")
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["errors"][0]["row"].clone(), v["errors"][0]["field"].clone()), (json!(2), json!("code")), "{v}");

    // A call logged through the API: HIS is 7×24, so is its clock; the CI gives the group.
    let (status, v) = post(
        &ops,
        &app,
        "/api/ops/incidents",
        json!({"title": "HIS 登录缓慢", "category": "software", "ci": "HIS", "impact": 1, "urgency": 1, "callerName": "门诊部 张主任"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(
        (v["priority"].clone(), v["calendar"].clone(), v["supportGroup"].clone()),
        (json!(1), json!("7x24"), json!("application"))
    );
    let (_, one) = get(&ops, &app, &format!("/api/ops/incidents/{}", v["id"])).await;
    assert_eq!(
        (one["responseClock"]["state"].clone(), one["responseClock"]["targetMinutes"].clone()),
        (json!("running"), json!(15)),
        "{one}"
    );
    let (_, list) = get(&ops, &app, "/api/ops/incidents").await;
    assert_eq!(list["items"][0]["id"], v["id"]);
    let (status, v) = post(&ops, &app, "/api/ops/incidents", json!({"title": "", "category": "toaster"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let fields: Vec<&str> = v["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["title", "category"], "{v}");

    // Every change is in the audit log.
    let auditor = app.client_with("system/AuditEvent.rs", "*", None).await;
    let (_, v) = get(&auditor, &app, "/fhir/AuditEvent?subtype=ci-create&_count=1").await;
    assert!(v["total"].as_i64().unwrap() >= 10, "{v}");

    // The platform registered itself: the platform on its server and database, and
    // its web interface; the server's failure stops the platform.
    let started = std::time::Instant::now();
    let v = loop {
        let (_, v) = get(&ops, &app, "/api/ops/cis?q=LIANYI&limit=50").await;
        if codes(&v["items"]).contains(&"LIANYI-HTTP".to_string()) || started.elapsed().as_secs() > 10 {
            break v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let mine = codes(&v["items"]);
    assert!(mine.contains(&"LIANYI".to_string()) && mine.contains(&"LIANYI-DB".to_string()), "{v}");
    assert!(v["items"].as_array().unwrap().iter().all(|c| c["managedBy"] == "platform"));
    let db = v["items"].as_array().unwrap().iter().find(|c| c["code"] == "LIANYI-DB").unwrap()["id"].as_i64().unwrap();
    let (_, v) = get(&ops, &app, &format!("/api/ops/cis/{db}/impact")).await;
    assert!(codes(&v["businessSystems"]).contains(&"LIANYI".to_string()), "{v}");
    assert!(codes(&v["reached"]).contains(&"LIANYI-HTTP".to_string()), "{v}");

    // Only the IT team: a clinician's client is refused.
    let clinician = app.client_with("system/Patient.rs", "*", None).await;
    let (status, _) = get(&clinician, &app, "/api/ops/cis").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn the_it_engineer_imports_a_csv_all_or_nothing_edits_on_the_pages_and_exports() {
    let clock: Arc<ManualClock> = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    campuses(&app).await;
    let (mut it, csrf) = logged_in(&app, &clock, "it-chen", "it-engineer", "*", None).await;
    let (status, _, page) = it.get("/ops/cis").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"ci-list\"") || page.contains("id=\"ci-none\""), "{page}");

    // A file with a wrong row: nothing is written, each wrong row named.
    let bad = "code,name,class,campus,attr:ip,relations\r\n\
               SW-1,核心交换机,network,campus-east,10.0.0.1,\r\n\
               PRN-1,打印机,toaster,campus-west,,connects-to:SW-1\r\n\
               PRN-2,\"打印机, 二楼\",printer,campus-west,10.1.1.300,connects-to:SW-9\r\n";
    let (_, _, page) = it.post("/ops/cis/import", &[("csrf", &csrf), ("csv", bad)]).await;
    let errors = between(&page, "id=\"form-errors\"", "</div>");
    assert!(errors.contains("data-field=\"class\"") && errors.contains("2"), "{errors}");
    assert!(errors.contains("data-field=\"attr:ip\"") && errors.contains("data-field=\"relations\""), "{errors}");
    let (_, _, list) = it.get("/ops/cis?q=SW-1").await;
    assert!(list.contains("id=\"ci-none\""), "nothing was written: {list}");

    let good = "code,name,class,campus,attr:ip,relations\r\n\
                PRN-1,打印机,printer,campus-west,10.1.1.30,connects-to:SW-1\r\n\
                SW-1,核心交换机,network,campus-east,10.0.0.1,\r\n\
                PRN-2,\"打印机, 二楼\",printer,campus-west,10.1.1.31,connects-to:SW-1\r\n";
    let (status, to, _) = it.post("/ops/cis/import", &[("csrf", &csrf), ("csv", good)]).await;
    assert_eq!((status, to.as_str()), (StatusCode::SEE_OTHER, "/ops/cis?done=imported&n=3"));
    let (_, _, list) = it.get("/ops/cis?class=printer").await;
    assert_eq!(between(&list, "data-total=\"", "\""), "2", "{list}");
    let sw = between(&it.get("/ops/cis?q=SW-1").await.2, "data-ci=\"", "\"").to_string();

    // The switch's page: its relations, and the impact graph with both printers.
    let (_, _, card) = it.get(&format!("/ops/cis/{sw}")).await;
    assert_eq!(card.matches("data-kind=\"connects-to\"").count(), 2, "{card}");
    let (_, _, impact) = it.get(&format!("/ops/cis/{sw}/impact")).await;
    assert!(impact.contains("<svg id=\"impact-graph\""), "{impact}");
    assert_eq!(between(&impact, "id=\"impact-reached\"", "</table>").matches("data-ci=").count(), 2);
    assert!(between(&impact, "id=\"impact-campuses\"", "</ul>").contains("西院区"), "{impact}");

    // Edit on the page: a wrong date is named, a good one saved.
    let version = between(&card, "name=\"version\" value=\"", "\"").to_string();
    let form = |end: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("version", version.clone()),
            ("code", "SW-1".to_string()),
            ("name", "核心交换机".to_string()),
            ("class", "network".to_string()),
            ("campus", "campus-east".to_string()),
            ("status", "in-service".to_string()),
            ("support_group", "network".to_string()),
            ("warranty_end", end.to_string()),
            ("attr:kind", "switch".to_string()),
        ]
    };
    let refs = |f: &Vec<(&'static str, String)>| f.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>();
    let bad_form = refs(&form("2027-13-01"));
    let bad_refs: Vec<(&str, &str)> = bad_form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, _, page) = it.post(&format!("/ops/cis/{sw}"), &bad_refs).await;
    assert!(between(&page, "id=\"form-errors\"", "</div>").contains("data-field=\"warranty_end\""), "{page}");
    let good_form = refs(&form("2027-12-31"));
    let good_refs: Vec<(&str, &str)> = good_form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, to, _) = it.post(&format!("/ops/cis/{sw}"), &good_refs).await;
    assert_eq!((status, to), (StatusCode::SEE_OTHER, format!("/ops/cis/{sw}?done=saved")));
    // The same form again is a stale version: refused, not overwritten.
    let (_, _, page) = it.post(&format!("/ops/cis/{sw}"), &good_refs).await;
    assert!(between(&page, "id=\"form-errors\"", "</div>").contains("data-field=\"version\""), "{page}");
    // A relation that makes the switch part of itself is refused on the page.
    let (_, _, page) = it
        .post(
            &format!("/ops/cis/{sw}/relations"),
            &[("csrf", &csrf), ("way", "out"), ("kind", "part-of"), ("target", "SW-1")],
        )
        .await;
    assert!(between(&page, "id=\"form-errors\"", "</div>").contains("data-field=\"target\""), "{page}");

    // The export imports as it was: the same codes and relations.
    let (status, _, csv) = it.get("/ops/cis.csv").await;
    assert_eq!(status, StatusCode::OK);
    assert!(csv.contains("PRN-1,打印机,printer,campus-west") && csv.contains("connects-to:SW-1"), "{csv}");
    assert!(csv.contains("\"打印机, 二楼\""), "{csv}");

    // Not for clinicians.
    let (mut nurse, _) = logged_in(&app, &clock, "nurse-ops", "nurse", "campus-west", None).await;
    assert_eq!(nurse.get("/ops/cis").await.0, StatusCode::FORBIDDEN);
    assert_eq!(nurse.get(&format!("/ops/cis/{sw}/impact")).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_nurse_reports_a_printer_fault_the_desktop_group_takes_it_and_paused_time_does_not_count() {
    // Friday 2027-01-15, 16:00 in Beijing (business hours end at 17:30).
    let clock: Arc<ManualClock> = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    campuses(&app).await;
    let ops = app.client_with("lianyi:ops", "*", None).await;
    let csv = "code,name,class,campus,support_group\r\nPRN-W3,西院区三楼护士站打印机,printer,campus-west,desktop\r\n";
    let r = ops.post(app.url("/api/ops/cis/import")).body(csv).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let (mut lead, lead_csrf) = logged_in(&app, &clock, "it-lead", "it-manager", "*", None).await;
    for (user, group) in [("it-desk", "desktop"), ("it-net", "network")] {
        let (status, to, _) =
            lead.post("/ops/groups", &[("csrf", &lead_csrf), ("username", user), ("support_group", group)]).await;
        assert_eq!((status, to.as_str()), (StatusCode::SEE_OTHER, "/ops/groups"));
    }

    // The nurse reports it from the shell: campus prefilled, the printer chosen.
    let (mut nurse, ncsrf) = logged_in(&app, &clock, "nurse-w", "nurse", "campus-west", None).await;
    let (_, _, form) = nurse.get("/ops/report").await;
    assert!(form.contains("name=\"campus\" value=\"campus-west\""), "{form}");
    assert!(form.contains("<option value=\"PRN-W3\">"), "the printer is offered: {form}");
    let (_, _, bad) =
        nurse.post("/ops/report", &[("csrf", &ncsrf), ("title", ""), ("category", "printer"), ("ci", "PRN-9")]).await;
    let errors = between(&bad, "id=\"form-errors\"", "</div>");
    assert!(errors.contains("data-field=\"title\"") && errors.contains("data-field=\"ci\""), "{errors}");
    let report = [
        ("csrf", ncsrf.as_str()),
        ("title", "打印机无法打印"),
        ("category", "printer"),
        ("ci", "PRN-W3"),
        ("campus", "campus-west"),
        ("location", "西院区住院楼三楼护士站"),
        ("impact", "2"),
        ("urgency", "2"),
    ];
    let (status, to, _) = nurse.post("/ops/report", &report).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let id: i64 = to.trim_start_matches("/ops/tickets/").split('?').next().unwrap().parse().unwrap();
    let (_, _, page) = nurse.get(&to).await;
    assert!(page.contains("data-priority=\"3\""), "medium × medium is P3: {page}");
    assert!(page.contains("data-group=\"desktop\"") && page.contains("data-status=\"new\""), "{page}");
    assert!(!page.contains("id=\"desk-take\""), "a nurse does not take tickets");

    // Only the desktop group takes it.
    let (mut net, net_csrf) = logged_in(&app, &clock, "it-net", "it-engineer", "*", None).await;
    let version = |page: &str| between(page, "name=\"version\" value=\"", "\"").to_string();
    let (_, _, seen) = net.get(&format!("/ops/tickets/{id}")).await;
    let (_, _, refused) =
        net.post(&format!("/ops/tickets/{id}/take"), &[("csrf", &net_csrf), ("version", &version(&seen))]).await;
    assert!(between(&refused, "id=\"form-errors\"", "</div>").contains("data-field=\"assignee\""), "{refused}");
    let (mut desk, dcsrf) = logged_in(&app, &clock, "it-desk", "it-engineer", "*", None).await;
    let (_, _, queue) = desk.get("/ops/tickets").await;
    assert!(queue.contains(&format!("data-ticket=\"{id}\"")), "in the desktop group's queue: {queue}");
    let (_, _, home) = desk.get("/").await;
    assert!(between(&home, "id=\"work-tickets\"", "</section>").contains(&format!("/ops/tickets/{id}")), "{home}");
    let (_, _, net_home) = net.get("/").await;
    assert!(!between(&net_home, "id=\"work-tickets\"", "</section>").contains(&format!("/ops/tickets/{id}")));
    let (_, _, seen) = desk.get(&format!("/ops/tickets/{id}")).await;
    let (status, _, _) =
        desk.post(&format!("/ops/tickets/{id}/take"), &[("csrf", &dcsrf), ("version", &version(&seen))]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    // Ten minutes of work, then fifty minutes waiting for a toner delivery (the
    // sessions are kept alive meanwhile), twenty more minutes of work.
    clock.advance(10 * 60_000);
    nurse.get("/ops/tickets").await;
    let (_, _, seen) = desk.get(&format!("/ops/tickets/{id}")).await;
    assert!(seen.contains("id=\"desk-response\" data-sla=\"met\""), "{seen}");
    let (_, _, none) = desk
        .post(&format!("/ops/tickets/{id}/pause"), &[("csrf", &dcsrf), ("version", &version(&seen)), ("reason", "")])
        .await;
    assert!(between(&none, "id=\"form-errors\"", "</div>").contains("data-field=\"reason\""), "{none}");
    desk.post(
        &format!("/ops/tickets/{id}/pause"),
        &[("csrf", &dcsrf), ("version", &version(&seen)), ("reason", "等待硒鼓到货")],
    )
    .await;
    for _ in 0..5 {
        clock.advance(10 * 60_000);
        nurse.get("/ops/tickets").await;
        desk.get("/ops/tickets").await;
    }
    let (_, _, seen) = desk.get(&format!("/ops/tickets/{id}")).await;
    assert!(seen.contains("id=\"desk-resolution\" data-sla=\"paused\""), "{seen}");
    desk.post(&format!("/ops/tickets/{id}/resume"), &[("csrf", &dcsrf), ("version", &version(&seen))]).await;
    for _ in 0..2 {
        clock.advance(10 * 60_000);
        nurse.get("/ops/tickets").await;
        desk.get("/ops/tickets").await;
    }
    let (_, _, seen) = desk.get(&format!("/ops/tickets/{id}")).await;
    let (status, _, _) = desk
        .post(
            &format!("/ops/tickets/{id}/resolve"),
            &[("csrf", &dcsrf), ("version", &version(&seen)), ("resolution", "更换硒鼓，打印正常")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // 10 + 20 working minutes of the P3 target of 1,440: the wait does not count
    // (without the pause it would be 80 minutes, 5 %).
    let (_, _, done) = nurse.get(&format!("/ops/tickets/{id}")).await;
    assert!(done.contains("id=\"desk-resolution\" data-sla=\"met\" data-used=\"2\""), "{done}");
    assert!(done.contains("data-status=\"resolved\""));

    // The nurse closes it with a score; the stale form of the engineer is refused.
    let (status, _, _) = nurse
        .post(
            &format!("/ops/tickets/{id}/close"),
            &[("csrf", &ncsrf), ("version", &version(&done)), ("satisfaction", "5")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, closed) = nurse.get(&format!("/ops/tickets/{id}")).await;
    assert!(closed.contains("data-status=\"closed\"") && closed.contains("id=\"desk-satisfaction\">5 / 5"), "{closed}");
    let (_, _, stale) = desk
        .post(&format!("/ops/tickets/{id}/reopen"), &[("csrf", &dcsrf), ("version", &version(&done)), ("reason", "x")])
        .await;
    assert!(between(&stale, "id=\"form-errors\"", "</div>").contains("data-field=\"version\""), "{stale}");
    let (_, _, mine) = nurse.get("/ops/tickets").await;
    assert!(mine.contains(&format!("data-ticket=\"{id}\"")), "{mine}");

    // Another nurse sees neither the ticket nor the queues.
    let (mut other, _) = logged_in(&app, &clock, "nurse-e", "nurse", "campus-east", None).await;
    assert_eq!(other.get(&format!("/ops/tickets/{id}")).await.0, StatusCode::FORBIDDEN);
    let (_, _, theirs) = other.get("/ops/tickets?view=all").await;
    assert!(theirs.contains("id=\"desk-none\""), "{theirs}");
    assert_eq!(other.get("/ops/groups").await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_core_switch_change_shows_his_and_the_campuses_and_waits_for_its_board_before_scheduling() {
    // Friday 2027-01-15, 16:00 in Beijing; the window is the next night.
    let clock: Arc<ManualClock> = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    campuses(&app).await;
    let ops = app.client_with("lianyi:ops", "*", None).await;
    let csv = "code,name,class,campus,support_group,relations\r\n\
               SW-CORE,核心交换机,network,campus-east,network,\r\n\
               SW-WEST,西院区汇聚交换机,network,campus-west,network,connects-to:SW-CORE\r\n\
               SRV-HIS,HIS 应用服务器,host,campus-east,system,connects-to:SW-CORE\r\n\
               HIS,医院信息系统 HIS,business-system,,application,runs-on:SRV-HIS\r\n\
               SVC-REG,门诊挂号,clinical-service,campus-west,application,depends-on:HIS\r\n\
               PRN-W3,西院区三楼护士站打印机,printer,campus-west,desktop,connects-to:SW-WEST\r\n";
    let r = ops.post(app.url("/api/ops/cis/import")).body(csv).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    let (mut eng, ecsrf) = logged_in(&app, &clock, "it-eng", "it-engineer", "*", None).await;
    let request = |csrf: &str, cis: &str, class: &str, start: &str, end: &str| {
        vec![
            ("csrf".to_string(), csrf.to_string()),
            ("title".into(), "更换核心交换机板卡".into()),
            ("ci".into(), cis.into()),
            ("class".into(), class.into()),
            ("risk".into(), "high".into()),
            ("window_start".into(), start.into()),
            ("window_end".into(), end.into()),
            ("backout_plan".into(), "装回原板卡，恢复配置".into()),
        ]
    };
    let send = |form: &Vec<(String, String)>| form.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>();
    async fn post_owned(
        b: &mut crate::pages::Browser,
        path: &str,
        form: Vec<(String, String)>,
    ) -> (StatusCode, String, String) {
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        b.post(path, &pairs).await
    }
    let errors_of = |page: &str| between(page, "id=\"form-errors\"", "</div>").to_string();

    // No board is named for normal changes yet.
    let (_, _, page) = post_owned(
        &mut eng,
        "/ops/changes",
        send(&request(&ecsrf, "SW-CORE", "normal", "2027-01-16T22:00", "2027-01-17T02:00")),
    )
    .await;
    assert!(errors_of(&page).contains("data-field=\"class\""), "{page}");
    let (mut lead, lcsrf) = logged_in(&app, &clock, "it-lead", "it-manager", "*", None).await;
    let (mut sec, scsrf) = logged_in(&app, &clock, "it-sec", "it-engineer", "*", None).await;
    for user in ["it-lead", "it-sec"] {
        let (status, to, _) =
            lead.post("/ops/changes/board", &[("csrf", &lcsrf), ("class", "normal"), ("username", user)]).await;
        assert_eq!((status, to.as_str()), (StatusCode::SEE_OTHER, "/ops/groups"));
    }
    let (status, _, _) =
        eng.post("/ops/changes/board", &[("csrf", &ecsrf), ("class", "normal"), ("username", "it-eng")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the board is named by the IT manager");

    // A window that ends before it starts, and an unknown item, are named.
    let (_, _, page) = post_owned(
        &mut eng,
        "/ops/changes",
        send(&request(&ecsrf, "SW-CORE, SW-NONE", "normal", "2027-01-17T02:00", "2027-01-16T22:00")),
    )
    .await;
    let errors = errors_of(&page);
    assert!(errors.contains("data-field=\"window_end\"") && errors.contains("data-field=\"cis\""), "{errors}");
    let (status, to, _) = post_owned(
        &mut eng,
        "/ops/changes",
        send(&request(&ecsrf, "SW-CORE", "normal", "2027-01-16T22:00", "2027-01-17T02:00")),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let id: i64 = to.trim_start_matches("/ops/changes/").split('?').next().unwrap().parse().unwrap();

    // The change shows what it stops: HIS (group-wide, so every campus) and registration.
    let (_, _, page) = eng.get(&format!("/ops/changes/{id}")).await;
    let services = between(&page, "id=\"chg-services\"", "</p>");
    assert!(services.contains("data-service=\"医院信息系统 HIS\"") && services.contains("data-service=\"门诊挂号\""));
    assert!(!services.contains("打印机"), "a printer is not a business system: {services}");
    let campuses = between(&page, "id=\"chg-campuses\"", "</p>");
    assert!(campuses.contains("东院区") && campuses.contains("西院区"), "{campuses}");
    assert!(page.contains("data-status=\"requested\""), "{page}");
    assert!(between(&page, "id=\"chg-waiting\"", "</span>").contains("it-lead, it-sec"), "{page}");
    assert!(!page.contains("id=\"chg-approve\""), "the requester does not decide");
    let version = |page: &str| between(page, "name=\"version\" value=\"", "\"").to_string();

    // It cannot be scheduled before the board approves it, and not by half the board.
    let schedule = |csrf: &str, v: &str| {
        vec![
            ("csrf".to_string(), csrf.to_string()),
            ("version".into(), v.into()),
            ("window_start".into(), "2027-01-16T22:00".into()),
            ("window_end".into(), "2027-01-17T02:00".into()),
        ]
    };
    let (_, _, refused) =
        post_owned(&mut eng, &format!("/ops/changes/{id}/schedule"), schedule(&ecsrf, &version(&page))).await;
    assert!(errors_of(&refused).contains("data-field=\"status\""), "{refused}");
    let (status, _, _) =
        eng.post(&format!("/ops/changes/{id}/approve"), &[("csrf", &ecsrf), ("version", &version(&page))]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "not on the board");
    let (_, _, seen) = lead.get(&format!("/ops/changes/{id}")).await;
    assert!(seen.contains("id=\"chg-approve\""), "{seen}");
    let (status, _, _) = lead
        .post(
            &format!("/ops/changes/{id}/approve"),
            &[("csrf", &lcsrf), ("version", &version(&seen)), ("comment", "同意")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, page) = eng.get(&format!("/ops/changes/{id}")).await;
    assert!(page.contains("data-status=\"requested\""), "one of two approvals: {page}");
    let (_, _, refused) =
        post_owned(&mut eng, &format!("/ops/changes/{id}/schedule"), schedule(&ecsrf, &version(&page))).await;
    assert!(errors_of(&refused).contains("data-field=\"status\""), "{refused}");
    let (_, _, seen) = sec.get(&format!("/ops/changes/{id}")).await;
    sec.post(&format!("/ops/changes/{id}/approve"), &[("csrf", &scsrf), ("version", &version(&seen))]).await;
    let (_, _, page) = eng.get(&format!("/ops/changes/{id}")).await;
    assert!(page.contains("data-status=\"approved\""), "{page}");
    let (status, _, _) =
        post_owned(&mut eng, &format!("/ops/changes/{id}/schedule"), schedule(&ecsrf, &version(&page))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    // A standard change to the west switch in an overlapping window conflicts with it.
    let (status, to, _) = post_owned(
        &mut eng,
        "/ops/changes",
        send(&request(&ecsrf, "SW-WEST", "standard", "2027-01-16T23:00", "2027-01-16T23:30")),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let other: i64 = to.trim_start_matches("/ops/changes/").split('?').next().unwrap().parse().unwrap();
    let (_, _, page) = eng.get(&format!("/ops/changes/{other}")).await;
    assert!(page.contains("data-status=\"approved\""), "a standard change is pre-approved: {page}");
    assert!(between(&page, "id=\"chg-conflicts\"", "</div>").contains(&format!("data-change=\"{id}\"")), "{page}");
    let (_, _, cal) = eng.get("/ops/changes/calendar?month=2027-01").await;
    let day = between(&cal, "data-date=\"2027-01-16\"", "</tr>");
    assert!(day.contains(&format!("data-change=\"{id}\" class=\"conflict\"")), "{cal}");
    assert!(between(&cal, "data-date=\"2027-01-17\"", "</tr>").contains(&format!("data-change=\"{id}\"")));
    assert!(cal.contains("id=\"chg-calendar-conflicts\""));
    // Withdrawn, it no longer conflicts.
    eng.post(&format!("/ops/changes/{other}/cancel"), &[("csrf", &ecsrf), ("version", &version(&page))]).await;
    let (_, _, cal) = eng.get("/ops/changes/calendar?month=2027-01").await;
    assert!(!cal.contains("chg-calendar-conflicts"), "{cal}");

    // The outcome, then the post-implementation review.
    let (_, _, page) = eng.get(&format!("/ops/changes/{id}")).await;
    eng.post(
        &format!("/ops/changes/{id}/implement"),
        &[("csrf", &ecsrf), ("version", &version(&page)), ("outcome", "successful"), ("note", "板卡已更换")],
    )
    .await;
    let (_, _, page) = eng.get(&format!("/ops/changes/{id}")).await;
    assert!(page.contains("data-status=\"implemented\""), "{page}");
    let (_, _, none) = eng
        .post(&format!("/ops/changes/{id}/review"), &[("csrf", &ecsrf), ("version", &version(&page)), ("review", " ")])
        .await;
    assert!(errors_of(&none).contains("data-field=\"review\""), "{none}");
    eng.post(
        &format!("/ops/changes/{id}/review"),
        &[("csrf", &ecsrf), ("version", &version(&page)), ("review", "按计划完成，无业务中断")],
    )
    .await;
    let (_, _, page) = eng.get(&format!("/ops/changes/{id}")).await;
    assert!(page.contains("data-status=\"reviewed\"") && page.contains("按计划完成"), "{page}");

    // The API: what a change affects, who decided, and bad windows named.
    let (status, v) = get(&ops, &app, &format!("/api/ops/changes/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(codes(&v["affects"]["services"]), ["HIS", "SVC-REG"]);
    assert_eq!(v["affects"]["campuses"], json!(["campus-east", "campus-west"]));
    assert_eq!(v["approvals"].as_array().unwrap().len(), 2);
    let body = json!({"title": "x", "class": "normal", "risk": "low", "backoutPlan": "y", "cis": ["SW-CORE"],
                      "windowStart": "2027-01-20T10:00", "windowEnd": "2027-01-20T09:00"});
    let (status, v) = post(&ops, &app, "/api/ops/changes", body).await;
    assert_eq!((status, v["errors"][0]["field"].clone()), (StatusCode::BAD_REQUEST, json!("window_end")), "{v}");
    let (status, v) = get(&ops, &app, "/api/ops/changes").await;
    assert_eq!((status, v["items"].as_array().unwrap().len()), (StatusCode::OK, 2), "{v}");
    let nurse = app.client_with("system/Patient.rs", "*", None).await;
    let (status, _) = get(&nurse, &app, "/api/ops/changes").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn two_printer_faults_become_one_known_error_with_its_root_cause_and_workaround() {
    let clock: Arc<ManualClock> = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    campuses(&app).await;
    let ops = app.client_with("lianyi:ops", "*", None).await;
    let csv = "code,name,class,campus,support_group\r\nPRN-W3,西院区三楼护士站打印机,printer,campus-west,desktop\r\n";
    let r = ops.post(app.url("/api/ops/cis/import")).body(csv).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let mut tickets = Vec::new();
    for title in ["打印机无法打印", "打印机又卡纸了"] {
        let body = json!({"title": title, "category": "printer", "ci": "PRN-W3", "callerName": "护士 刘敏"});
        let (status, v) = post(&ops, &app, "/api/ops/incidents", body).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        tickets.push(v["id"].as_i64().unwrap());
    }
    let (mut eng, csrf) = logged_in(&app, &clock, "it-eng", "it-engineer", "*", None).await;
    let (_, _, ticket) = eng.get(&format!("/ops/tickets/{}", tickets[0])).await;
    assert!(ticket.contains("id=\"desk-open-problem\""), "{ticket}");
    let (status, to, _) = eng.post("/ops/problems", &[("csrf", &csrf), ("ticket", &tickets[0].to_string())]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let id: i64 = to.trim_start_matches("/ops/problems/").split('?').next().unwrap().parse().unwrap();
    let (_, _, page) = eng.get(&to).await;
    assert!(page.contains("打印机无法打印") && page.contains("PRN-W3"), "carried from the incident: {page}");
    let version = |page: &str| between(page, "name=\"version\" value=\"", "\"").to_string();
    let (_, _, bad) = eng
        .post(&format!("/ops/problems/{id}/link"), &[("csrf", &csrf), ("version", &version(&page)), ("ticket", "99")])
        .await;
    assert!(between(&bad, "id=\"form-errors\"", "</div>").contains("data-field=\"ticket\""), "{bad}");
    eng.post(
        &format!("/ops/problems/{id}/link"),
        &[("csrf", &csrf), ("version", &version(&page)), ("ticket", &tickets[1].to_string())],
    )
    .await;
    let (_, _, page) = eng.get(&to).await;
    for t in &tickets {
        assert!(between(&page, "id=\"prb-incidents\"", "</table>").contains(&format!("data-ticket=\"{t}\"")));
    }
    // A known error needs both its root cause and its workaround.
    let (_, _, bad) = eng
        .post(
            &format!("/ops/problems/{id}/analyse"),
            &[("csrf", &csrf), ("version", &version(&page)), ("root_cause", "驱动不兼容"), ("known_error", "1")],
        )
        .await;
    let errors = between(&bad, "id=\"form-errors\"", "</div>");
    assert!(errors.contains("data-field=\"workaround\"") && !errors.contains("data-field=\"root_cause\""), "{errors}");
    let (_, _, resolve_first) =
        eng.post(&format!("/ops/problems/{id}/resolve"), &[("csrf", &csrf), ("version", &version(&page))]).await;
    assert!(between(&resolve_first, "id=\"form-errors\"", "</div>").contains("data-field=\"root_cause\""));
    eng.post(
        &format!("/ops/problems/{id}/analyse"),
        &[
            ("csrf", &csrf),
            ("version", &version(&page)),
            ("root_cause", "驱动与系统更新不兼容"),
            ("workaround", "重启 Print Spooler"),
            ("known_error", "1"),
        ],
    )
    .await;
    let (_, _, page) = eng.get(&to).await;
    assert!(page.contains("data-status=\"known-error\"") && page.contains("重启 Print Spooler"), "{page}");
    let (_, _, ticket) = eng.get(&format!("/ops/tickets/{}", tickets[1])).await;
    assert!(between(&ticket, "id=\"desk-problems\"", "</p>").contains(&format!("data-problem=\"{id}\"")), "{ticket}");
    eng.post(&format!("/ops/problems/{id}/resolve"), &[("csrf", &csrf), ("version", &version(&page))]).await;
    let (status, v) = get(&ops, &app, &format!("/api/ops/problems/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((v["status"].clone(), v["knownError"].clone()), (json!("resolved"), json!(true)));
    assert_eq!(v["incidents"], json!(tickets));
    let (_, v) = get(&ops, &app, "/api/ops/problems?view=all").await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    let (_, v) = get(&ops, &app, "/api/ops/problems").await;
    assert_eq!(v["items"], json!([]), "the open list leaves the resolved one out");
}

#[tokio::test]
async fn the_statistics_count_faults_recurrence_sla_and_each_engineers_work_and_export_csv() {
    // Friday 2027-01-15, 16:00 in Beijing.
    let clock: Arc<ManualClock> = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    campuses(&app).await;
    let ops = app.client_with("lianyi:ops", "*", None).await;
    let csv = "code,name,class,campus,support_group\r\nPRN-W3,西院区三楼护士站打印机,printer,campus-west,desktop\r\n\
               SW-WEST,西院区汇聚交换机,network,campus-west,network\r\n";
    let r = ops.post(app.url("/api/ops/cis/import")).body(csv).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let (mut lead, lcsrf) = logged_in(&app, &clock, "it-lead", "it-manager", "*", None).await;
    for (user, group) in [("it-desk", "desktop"), ("it-net", "network")] {
        lead.post("/ops/groups", &[("csrf", &lcsrf), ("username", user), ("support_group", group)]).await;
    }
    let (mut desk, dcsrf) = logged_in(&app, &clock, "it-desk", "it-engineer", "*", None).await;
    let (mut net, ncsrf) = logged_in(&app, &clock, "it-net", "it-engineer", "*", None).await;
    let report = |title: &str, category: &str, ci: &str| json!({"title": title, "category": category, "ci": ci, "callerName": "护士 刘敏", "campus": "campus-west"});
    let mut ids = Vec::new();
    for (title, category, ci) in [
        ("打印机无法打印", "printer", "PRN-W3"),
        ("打印机又卡纸", "printer", "PRN-W3"),
        ("网络中断", "network", "SW-WEST"),
        ("软件报错", "software", ""),
    ] {
        let (status, v) = post(&ops, &app, "/api/ops/incidents", report(title, category, ci)).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        ids.push(v["id"].as_i64().unwrap());
    }
    async fn act(b: &mut crate::pages::Browser, csrf: &str, id: i64, action: &str, extra: &[(&str, &str)]) {
        let (_, _, page) = b.get(&format!("/ops/tickets/{id}")).await;
        let v = between(&page, "name=\"version\" value=\"", "\"").to_string();
        let mut form = vec![("csrf", csrf), ("version", v.as_str())];
        form.extend_from_slice(extra);
        let (status, _, body) = b.post(&format!("/ops/tickets/{id}/{action}"), &form).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{action}: {body}");
    }
    let step = |minutes: i64| {
        clock.advance(minutes * 60_000);
    };
    // The first printer fault: taken after five minutes, fixed in twenty, scored 4.
    step(5);
    act(&mut desk, &dcsrf, ids[0], "take", &[]).await;
    act(&mut net, &ncsrf, ids[2], "take", &[]).await;
    step(10);
    lead.get("/ops/stats").await;
    act(&mut desk, &dcsrf, ids[0], "resolve", &[("resolution", "清空打印队列"), ("minutes", "20")]).await;
    act(&mut desk, &dcsrf, ids[0], "close", &[("satisfaction", "4")]).await;
    act(&mut net, &ncsrf, ids[2], "work", &[("minutes", "15"), ("note", "排查光模块")]).await;
    act(&mut net, &ncsrf, ids[2], "resolve", &[("resolution", "更换光模块"), ("minutes", "10")]).await;
    // The second printer fault comes back once before it is fixed, scored 2.
    act(&mut desk, &dcsrf, ids[1], "take", &[]).await;
    step(5);
    act(&mut desk, &dcsrf, ids[1], "resolve", &[("resolution", "重启打印机")]).await;
    act(&mut desk, &dcsrf, ids[1], "reopen", &[("reason", "又卡纸")]).await;
    act(&mut desk, &dcsrf, ids[1], "resolve", &[("resolution", "更换搓纸轮")]).await;
    act(&mut desk, &dcsrf, ids[1], "close", &[("satisfaction", "2")]).await;
    let (_, _, bad) = desk
        .post(&format!("/ops/tickets/{}/work", ids[1]), &[("csrf", &dcsrf), ("version", "1"), ("minutes", "abc")])
        .await;
    assert!(bad.contains("form-errors"), "{bad}");

    // The manager's page: totals, recurrence, SLA, charts and every engineer's work.
    let (status, _, page) = lead.get("/ops/stats?from=2027-01-15&to=2027-01-15").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"stats-total\" data-n=\"4\"") && page.contains("id=\"stats-resolved\" data-n=\"3\""));
    let recurring = between(&page, "id=\"stats-recurring\"", "</table>");
    assert!(
        recurring.contains("data-ci=\"PRN-W3\" data-repeats=\"1\"") && !recurring.contains("SW-WEST"),
        "{recurring}"
    );
    assert!(between(&page, "id=\"stats-category\"", "</figure>").contains("data-n=\"2\""), "two printer faults");
    assert!(between(&page, "id=\"stats-days\"", "</svg>").contains("data-date=\"2027-01-15\" data-n=\"4\""));
    // Taken after 5, 5 and 15 minutes.
    assert!(between(&page, "id=\"stats-mtta\"", "</dd>").starts_with(">8 "), "{page}");
    let engineers = between(&page, "id=\"stats-engineers\"", "</table>");
    assert!(
        engineers.contains(
            "data-engineer=\"it-desk\" data-resolved=\"2\" data-minutes=\"20\" data-first-time=\"1\" data-reopened=\"1\""
        ),
        "{engineers}"
    );
    assert!(engineers.contains("data-satisfaction=\"30\""), "(4 + 2) / 2: {engineers}");
    assert!(
        engineers.contains("data-engineer=\"it-net\" data-resolved=\"1\" data-minutes=\"25\" data-first-time=\"1\"")
    );
    let (_, _, csv) = lead.get("/ops/stats.csv?from=2027-01-15&to=2027-01-15").await;
    let lines: Vec<&str> = csv.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(lines.len(), 5, "{csv}");
    assert!(lines[0].starts_with("id,opened,title,category,ci_class"));
    assert!(lines.iter().any(|l| l.contains("网络中断") && l.contains(",network,") && l.contains(",25,")), "{csv}");

    // An engineer sees the faults, not the others' figures; the API gives the same.
    let (_, _, page) = desk.get("/ops/stats?from=2027-01-15&to=2027-01-15").await;
    assert!(page.contains("id=\"stats-total\" data-n=\"4\"") && !page.contains("id=\"stats-engineers\""));
    let (status, _, _) = desk.get("/ops/stats.csv?what=engineers").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let ops = app.client_with("lianyi:ops", "*", None).await;
    let (status, v) = get(&ops, &app, "/api/ops/stats?from=2027-01-15&to=2027-01-15").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!((v["total"].clone(), v["resolved"].clone()), (json!(4), json!(3)));
    assert_eq!(v["recurring"][0]["code"], "PRN-W3");
    assert_eq!(v["engineers"], Value::Null, "an API client is not a team lead");
    assert_eq!(v["resolutionSla"], json!({"met": 3, "decided": 3}), "{v}");
    let (status, v) = get(&ops, &app, "/api/ops/stats?from=2027-01-16&to=2027-01-16").await;
    assert_eq!((status, v["total"].clone()), (StatusCode::OK, json!(0)));

    // The ticket search finds two-character words in titles and in resolutions.
    let found =
        |v: &Value| v["items"].as_array().unwrap().iter().map(|t| t["id"].as_i64().unwrap()).collect::<Vec<_>>();
    let (_, v) = get(&ops, &app, "/api/ops/incidents?q=%E6%89%93%E5%8D%B0").await; // 打印
    assert_eq!(found(&v), [ids[1], ids[0]], "newest first: {v}");
    let (_, v) = get(&ops, &app, "/api/ops/incidents?q=%E5%8D%A1%E7%BA%B8").await; // 卡纸
    assert_eq!(found(&v), [ids[1]]);
    let (_, v) = get(&ops, &app, "/api/ops/incidents?q=%E5%85%89%E6%A8%A1%E5%9D%97").await; // 光模块, a resolution
    assert_eq!(found(&v), [ids[2]]);
    let (_, v) = get(&ops, &app, "/api/ops/incidents?q=%E6%89%93%E5%8D%B0&limit=1").await;
    let (_, v) = get(&ops, &app, &format!("/api/ops/incidents?q=%E6%89%93%E5%8D%B0&before={}", v["nextBefore"])).await;
    assert_eq!(found(&v), [ids[0]], "the next page");
    let (_, _, page) = desk.get("/ops/tickets?view=all&q=%E7%BD%91%E7%BB%9C").await; // 网络
    let list = between(&page, "id=\"desk-list\"", "</table>");
    assert!(
        list.contains(&format!("data-ticket=\"{}\"", ids[2])) && !list.contains(&format!("data-ticket=\"{}\"", ids[0]))
    );
}

#[tokio::test]
async fn the_desk_notifies_in_the_shell_and_by_real_smtp_and_escalates_a_breach_to_the_group_lead() {
    let sink = crate::helpers::SmtpSink::start();
    // Friday 2027-01-15, 16:00 in Beijing.
    let clock: Arc<ManualClock> = ManualClock::new(1_800_000_000_000);
    let mail = lianyi_web::MailConfig {
        url: format!("smtp://127.0.0.1:{}", sink.port),
        from: "运维服务台 <itdesk@hospital.test>".into(),
    };
    let app = crate::helpers::spawn_app_mailing(1 << 20, Some(clock.clone()), Some(mail)).await;
    campuses(&app).await;
    let ops = app.client_with("lianyi:ops", "*", None).await;
    let csv = "code,name,class,campus,support_group\r\nPRN-W3,西院区三楼护士站打印机,printer,campus-west,desktop\r\n";
    let r = ops.post(app.url("/api/ops/cis/import")).body(csv).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let (mut lead, lcsrf) = logged_in(&app, &clock, "it-lead", "it-manager", "*", None).await;
    lead.post("/ops/groups", &[("csrf", &lcsrf), ("username", "it-desk"), ("support_group", "desktop")]).await;
    lead.post("/ops/groups", &[("csrf", &lcsrf), ("username", "it-lead"), ("support_group", "desktop"), ("lead", "1")])
        .await;
    let (mut desk, dcsrf) = logged_in(&app, &clock, "it-desk", "it-engineer", "*", None).await;
    let (mut nurse, ncsrf) = logged_in(&app, &clock, "nurse-w", "nurse", "campus-west", None).await;

    // Each leaves an address; the lead reads English.
    let (_, _, bad) = nurse.post("/ops/notifications/contact", &[("csrf", &ncsrf), ("email", "not an address")]).await;
    assert!(between(&bad, "id=\"form-errors\"", "</div>").contains("data-field=\"email\""), "{bad}");
    for (b, csrf, email) in [(&mut nurse, &ncsrf, "nurse@hospital.test"), (&mut desk, &dcsrf, "desk@hospital.test")] {
        let (status, _, _) = b.post("/ops/notifications/contact", &[("csrf", csrf), ("email", email)]).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
    }
    lead.lang = "en";
    lead.post("/ops/notifications/contact", &[("csrf", &lcsrf), ("email", "lead@hospital.test")]).await;

    // A printer fault (P3) and a critical one (P1, counted round the clock).
    let mut ids = Vec::new();
    for (title, level) in [("打印机无法打印", "2"), ("护士站打印机全部停机", "1")] {
        let form = [
            ("csrf", ncsrf.as_str()),
            ("title", title),
            ("category", "printer"),
            ("ci", "PRN-W3"),
            ("impact", level),
            ("urgency", level),
        ];
        let (status, to, _) = nurse.post("/ops/report", &form).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        ids.push(to.trim_start_matches("/ops/tickets/").split('?').next().unwrap().parse::<i64>().unwrap());
    }
    let (_, _, inbox) = desk.get("/ops/notifications").await;
    assert!(inbox.contains("id=\"ntf-unread\" data-n=\"2\""), "{inbox}");
    assert!(inbox.contains(&format!("data-kind=\"new-ticket\" class=\"unread\" data-ticket=\"{}\"", ids[1])));
    desk.post("/ops/notifications/read", &[("csrf", &dcsrf)]).await;
    let (_, _, inbox) = desk.get("/ops/notifications").await;
    assert!(!inbox.contains("ntf-unread"), "{inbox}");

    // Twelve minutes on: the P1's response clock (15 minutes) warns the group; five
    // more and it is breached, escalated to the lead; each is told once.
    let watch = lianyi_ops::desk::Desk::new(app.fhir.clone()).unwrap();
    clock.advance(12 * 60_000);
    for b in [&mut nurse, &mut desk, &mut lead] {
        b.get("/ops/notifications").await;
    }
    assert_eq!(watch.watch().await.unwrap(), 1);
    assert_eq!(watch.watch().await.unwrap(), 0, "told once");
    clock.advance(5 * 60_000);
    for b in [&mut nurse, &mut desk, &mut lead] {
        b.get("/ops/notifications").await;
    }
    assert_eq!(watch.watch().await.unwrap(), 1);
    let (_, _, inbox) = lead.get("/ops/notifications").await;
    assert!(
        inbox.contains(&format!("data-kind=\"sla-breach\" class=\"unread\" data-ticket=\"{}\"", ids[1])),
        "{inbox}"
    );
    let (_, _, inbox) = desk.get("/ops/notifications").await;
    assert!(!inbox.contains("sla-breach"), "the breach goes to the lead: {inbox}");
    let (_, _, page) = desk.get(&format!("/ops/tickets/{}", ids[1])).await;
    assert!(page.contains("data-kind=\"sla-breach\""), "recorded on the ticket: {page}");

    // The engineer takes the printer fault and resolves it: the nurse is told both.
    let version = |page: &str| between(page, "name=\"version\" value=\"", "\"").to_string();
    let (_, _, page) = desk.get(&format!("/ops/tickets/{}", ids[0])).await;
    desk.post(&format!("/ops/tickets/{}/take", ids[0]), &[("csrf", &dcsrf), ("version", &version(&page))]).await;
    let (_, _, page) = desk.get(&format!("/ops/tickets/{}", ids[0])).await;
    desk.post(
        &format!("/ops/tickets/{}/resolve", ids[0]),
        &[("csrf", &dcsrf), ("version", &version(&page)), ("resolution", "重启打印服务")],
    )
    .await;
    let (_, _, inbox) = nurse.get("/ops/notifications").await;
    for kind in ["taken", "resolved"] {
        assert!(
            inbox.contains(&format!("data-kind=\"{kind}\" class=\"unread\" data-ticket=\"{}\"", ids[0])),
            "{inbox}"
        );
    }

    // The SMTP server received every mail, each in its reader's language.
    let expected = 2 + 3 + 4; // nurse: taken, resolved; desk: 2 new, warning; lead: 2 new, warning, breach
    let mut got = Vec::new();
    for _ in 0..150 {
        got = sink.messages();
        if got.len() >= expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(got.len(), expected, "{got:#?}");
    let to = |who: &str| got.iter().filter(|(t, _, _)| t.contains(who)).collect::<Vec<_>>();
    assert_eq!((to("nurse@").len(), to("desk@").len(), to("lead@").len()), (2, 3, 4), "{got:#?}");
    let breach = to("lead@").into_iter().find(|(_, s, _)| s.contains("SLA breached")).expect("English for the lead");
    assert!(breach.1.contains(&format!("#{} 护士站打印机全部停机", ids[1])), "{breach:?}");
    assert!(breach.2.contains(&format!("/ops/tickets/{}", ids[1])), "{breach:?}");
    let resolved = to("nurse@").into_iter().find(|(_, s, _)| s.contains("已解决")).expect("Chinese for the nurse");
    assert!(resolved.1.contains("打印机无法打印") && resolved.2.contains("请确认并评分"), "{resolved:?}");
}

#[tokio::test]
async fn the_it_manager_changes_the_matrix_targets_hours_and_calendar_and_new_tickets_follow() {
    let clock: Arc<ManualClock> = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    campuses(&app).await;
    let (mut lead, lcsrf) = logged_in(&app, &clock, "it-lead", "it-manager", "*", None).await;
    let (mut eng, ecsrf) = logged_in(&app, &clock, "it-eng", "it-engineer", "*", None).await;
    let (_, _, page) = eng.get("/ops/sla").await;
    assert!(page.contains("id=\"sla-matrix\"") && !page.contains("id=\"sla-save\""), "read only: {page}");
    assert!(page.contains("id=\"sla-schedule-missing\""), "2027's schedule is not built in, and it says so: {page}");
    let mut form: Vec<(String, String)> = vec![("csrf".into(), lcsrf.clone())];
    for i in 1..=3 {
        for j in 1..=3 {
            // Medium impact and urgency becomes P2 (the default is P3).
            let p = if (i, j) == (2, 2) { 2 } else { [[1, 2, 3], [2, 3, 4], [3, 4, 4]][i - 1][j - 1] };
            form.push((format!("matrix-{i}-{j}"), p.to_string()));
        }
    }
    for (p, (r, f)) in [(15, 240), (30, 480), (120, 1440), (480, 2880)].iter().enumerate() {
        form.push((format!("response-{}", p + 1), r.to_string()));
        form.push((format!("resolution-{}", p + 1), f.to_string()));
    }
    let send = |form: &[(String, String)], hours: &str| {
        let mut v: Vec<(String, String)> = form.to_vec();
        v.push(("hours".into(), hours.into()));
        v
    };
    async fn post_owned(
        b: &mut crate::pages::Browser,
        path: &str,
        form: Vec<(String, String)>,
    ) -> (StatusCode, String) {
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (status, _, body) = b.post(path, &pairs).await;
        (status, body)
    }
    let (_, bad) = post_owned(&mut lead, "/ops/sla", send(&form, "12:00-08:00")).await;
    assert!(between(&bad, "id=\"form-errors\"", "</div>").contains("data-field=\"hours\""), "{bad}");
    let mut backwards = form.clone();
    backwards.retain(|(k, _)| k != "response-2");
    backwards.push(("response-2".into(), "600".into()));
    let (_, bad) = post_owned(&mut lead, "/ops/sla", send(&backwards, "08:00-12:00, 13:30-17:30")).await;
    assert!(between(&bad, "id=\"form-errors\"", "</div>").contains("data-field=\"target-2\""), "{bad}");
    let mut engineer_form = form.clone();
    engineer_form[0].1 = ecsrf.clone();
    let (status, _) = post_owned(&mut eng, "/ops/sla", send(&engineer_form, "08:00-12:00, 13:30-17:30")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = post_owned(&mut lead, "/ops/sla", send(&form, "08:00-12:00, 13:00-18:00")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // Friday 2027-01-15 becomes a day off for the hospital.
    let (_, _, bad) = lead.post("/ops/sla/days", &[("csrf", &lcsrf), ("day", "2027-02-30"), ("turn", "off")]).await;
    assert!(between(&bad, "id=\"form-errors\"", "</div>").contains("data-field=\"day\""), "{bad}");
    let (status, _, _) =
        lead.post("/ops/sla/days", &[("csrf", &lcsrf), ("day", "2027-01-15"), ("turn", "off"), ("note", "院庆")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, page) = lead.get("/ops/sla").await;
    assert!(page.contains("data-day=\"2027-01-15\" data-working=\"false\"") && page.contains("13:00-18:00"), "{page}");

    // A medium fault is now P2, and its clock does not run on the hospital's day off.
    let (status, to, _) = eng
        .post(
            "/ops/report",
            &[
                ("csrf", &ecsrf),
                ("title", "打印机无法打印"),
                ("category", "printer"),
                ("impact", "2"),
                ("urgency", "2"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    clock.advance(10 * 60_000);
    let (_, _, page) = eng.get(&to).await;
    assert!(page.contains("data-priority=\"2\""), "{page}");
    assert!(page.contains("id=\"desk-resolution\" data-sla=\"running\" data-used=\"0\""), "{page}");
}

#[tokio::test]
async fn a_warranty_ending_within_30_days_reminds_the_support_group_once() {
    // Friday 2027-01-15.
    let clock: Arc<ManualClock> = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    campuses(&app).await;
    let ops = app.client_with("lianyi:ops", "*", None).await;
    let csv = "code,name,class,campus,support_group,warranty_end,contract_end\r\n\
               SRV-PACS,PACS 服务器,host,campus-west,system,2027-02-01,2028-06-30\r\n\
               SRV-OLD,旧服务器,host,campus-west,system,2027-01-01,\r\n\
               SW-W3,接入交换机,network,campus-west,network,2029-01-01,2027-01-20\r\n";
    let r = ops.post(app.url("/api/ops/cis/import")).body(csv).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    let (mut lead, lcsrf) = logged_in(&app, &clock, "it-lead", "it-manager", "*", None).await;
    for (user, group) in [("it-sys", "system"), ("it-net", "network")] {
        lead.post("/ops/groups", &[("csrf", &lcsrf), ("username", user), ("support_group", group)]).await;
    }
    let desk = lianyi_ops::desk::Desk::new(app.fhir.clone()).unwrap();
    assert_eq!(desk.remind(30).await.unwrap(), 2, "the PACS server's warranty and the switch's contract");
    assert_eq!(desk.remind(30).await.unwrap(), 0, "once");
    let (mut sys, _) = logged_in(&app, &clock, "it-sys", "it-engineer", "*", None).await;
    let (_, _, inbox) = sys.get("/ops/notifications").await;
    assert!(inbox.contains("data-kind=\"warranty-ending\"") && inbox.contains("SRV-PACS PACS 服务器 · 2027-02-01"));
    assert!(!inbox.contains("SRV-OLD") && !inbox.contains("contract-ending"), "{inbox}");
    let (mut net, _) = logged_in(&app, &clock, "it-net", "it-engineer", "*", None).await;
    let (_, _, inbox) = net.get("/ops/notifications").await;
    assert!(inbox.contains("data-kind=\"contract-ending\"") && inbox.contains("SW-W3"), "{inbox}");
}

#[tokio::test]
async fn a_ticket_is_handed_to_a_named_engineer_of_a_group_who_is_told() {
    let clock: Arc<ManualClock> = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    campuses(&app).await;
    let (mut lead, lcsrf) = logged_in(&app, &clock, "it-lead", "it-manager", "*", None).await;
    for (user, group) in [("it-desk", "desktop"), ("it-net", "network")] {
        lead.post("/ops/groups", &[("csrf", &lcsrf), ("username", user), ("support_group", group)]).await;
    }
    let (status, to, _) = lead
        .post(
            "/ops/report",
            &[("csrf", &lcsrf), ("title", "病区网络时断时续"), ("category", "hardware"), ("caller_name", "护士 王")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let id = to.trim_start_matches("/ops/tickets/").split('?').next().unwrap().to_string();
    let version = |page: &str| between(page, "name=\"version\" value=\"", "\"").to_string();
    let (_, _, page) = lead.get(&format!("/ops/tickets/{id}")).await;
    assert!(page.contains("data-group=\"desktop\""), "{page}");
    let (_, _, bad) = lead
        .post(
            &format!("/ops/tickets/{id}/reassign"),
            &[("csrf", &lcsrf), ("version", &version(&page)), ("support_group", "network"), ("engineer", "it-desk")],
        )
        .await;
    assert!(between(&bad, "id=\"form-errors\"", "</div>").contains("data-field=\"assignee\""), "{bad}");
    let (status, _, _) = lead
        .post(
            &format!("/ops/tickets/{id}/reassign"),
            &[("csrf", &lcsrf), ("version", &version(&page)), ("support_group", "network"), ("engineer", "it-net")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, page) = lead.get(&format!("/ops/tickets/{id}")).await;
    assert!(page.contains("data-group=\"network\"") && page.contains("data-status=\"assigned\""), "{page}");
    assert!(between(&page, "id=\"desk-assignee\">", "</dd>").contains("it-net"), "{page}");
    assert!(page.contains("id=\"desk-response\" data-sla=\"met\""), "handing it over acknowledges it: {page}");
    let (mut net, _) = logged_in(&app, &clock, "it-net", "it-engineer", "*", None).await;
    let (_, _, inbox) = net.get("/ops/notifications").await;
    assert!(inbox.contains(&format!("data-kind=\"reassigned\" class=\"unread\" data-ticket=\"{id}\"")), "{inbox}");
    let (_, _, queue) = net.get("/ops/tickets?view=mine").await;
    assert!(queue.contains(&format!("data-ticket=\"{id}\"")), "{queue}");
}

#[tokio::test]
async fn a_groups_webhook_gets_each_notice_signed_and_a_refused_post_is_sent_again() {
    let clock: Arc<ManualClock> = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    campuses(&app).await;
    let ops = app.client_with("lianyi:ops", "*", None).await;
    let csv = "code,name,class,campus,support_group\r\nSW-E1,东院区核心交换机,network,campus-east,network\r\n";
    let r = ops.post(app.url("/api/ops/cis/import")).body(csv).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/robot/network", listener.local_addr().unwrap());
    let answer = Arc::new(std::sync::Mutex::new(503u16));
    let log = crate::outbound::http_receiver(listener, answer.clone());
    let secret = "network-robot-secret-2026";

    // The IT manager sets the network group's webhook; a bad address is named.
    let (mut lead, csrf) = logged_in(&app, &clock, "it-lead", "it-manager", "*", None).await;
    let (status, _, page) = lead
        .post(
            "/ops/groups/hook",
            &[("csrf", &csrf), ("support_group", "network"), ("url", "ftp://robot"), ("secret", secret)],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(between(&page, "id=\"form-errors\"", "</div>").contains("Webhook 地址"), "{page}");
    let (_, _, page) = lead
        .post("/ops/groups/hook", &[("csrf", &csrf), ("support_group", "network"), ("url", &url), ("secret", "short")])
        .await;
    assert!(between(&page, "id=\"form-errors\"", "</div>").contains("签名密钥"), "{page}");
    let (status, to, _) = lead
        .post("/ops/groups/hook", &[("csrf", &csrf), ("support_group", "network"), ("url", &url), ("secret", secret)])
        .await;
    assert_eq!((status, to.as_str()), (StatusCode::SEE_OTHER, "/ops/groups"));
    // The secret is sealed in the database, never shown.
    let (_, _, page) = lead.get("/ops/groups").await;
    assert!(page.contains(&url) && !page.contains(secret), "{page}");

    // An incident on the switch: its group's robot is told, signed; it refuses first.
    let (status, ticket) = post(
        &ops,
        &app,
        "/api/ops/incidents",
        json!({"title": "东院区核心交换机端口闪断", "category": "network", "ci": "SW-E1", "impact": 2, "urgency": 2, "callerName": "网络监控"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    let wait_for = |n: usize| {
        let log = log.clone();
        async move {
            for _ in 0..100 {
                if log.lock().unwrap().len() >= n {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("the robot got {} posts, not {n}", log.lock().unwrap().len());
        }
    };
    wait_for(1).await;
    let first = log.lock().unwrap()[0].clone();
    assert_eq!((first.method.as_str(), first.path.as_str()), ("POST", "/robot/network"));
    assert_eq!(first.headers["x-lianyi-event"], "new-ticket");
    assert_eq!(
        first.headers["x-lianyi-signature"],
        format!("sha256={}", crate::outbound::hmac_sha256_hex(secret.as_bytes(), first.body.as_bytes()))
    );
    let body: Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!((body["event"].as_str(), body["group"].as_str()), (Some("new-ticket"), Some("network")));
    assert_eq!(body["ticket"]["id"], ticket["id"]);
    assert_eq!(body["ticket"]["title"], "东院区核心交换机端口闪断");

    // Accepted the second time (after its pause), once; the page says so.
    *answer.lock().unwrap() = 200;
    clock.advance(20_000);
    wait_for(2).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let posts = log.lock().unwrap().clone();
    assert_eq!(posts.len(), 2, "sent again once, then no more");
    assert_eq!(posts[1].headers["idempotency-key"], first.headers["idempotency-key"]);
    assert_eq!(posts[1].body, first.body);
    let (_, _, page) = lead.get("/ops/groups").await;
    assert!(between(&page, "class=\"hook-last\">", "</td>").contains("已接收"), "{page}");
}
