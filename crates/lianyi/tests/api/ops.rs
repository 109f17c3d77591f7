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
async fn campuses(app: &TestApp) {
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
