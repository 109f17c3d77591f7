//! The IT knowledge base: articles in Chinese and English found by two-character
//! Chinese words and by English words (and not found by unrelated ones), an article
//! written in one step from a resolved ticket, versions, suggestions while a fault
//! is typed, an article improved from an incident, and the API's door.

use std::sync::Arc;

use lianyi_security::ManualClock;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_clocked};
use crate::pages::{between, logged_in};

async fn post(c: &reqwest::Client, app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    let r = c.post(app.url(path)).json(&body).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn search(c: &reqwest::Client, app: &TestApp, q: &str) -> (StatusCode, Value) {
    let r = c.get(app.url(&format!("/api/ops/kb?q={}", enc(q)))).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn ids(v: &Value) -> Vec<i64> {
    let mut ids: Vec<i64> = v["items"].as_array().unwrap().iter().map(|a| a["id"].as_i64().unwrap()).collect();
    ids.sort_unstable();
    ids
}

fn enc(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// The ticket id a report redirected to.
fn ticket_of(to: &str) -> i64 {
    to.trim_start_matches("/ops/tickets/").split('?').next().unwrap().parse().unwrap()
}

fn version(page: &str) -> String {
    between(page, "name=\"version\" value=\"", "\"").to_string()
}

#[tokio::test]
async fn articles_are_found_by_two_character_words_written_from_a_ticket_versioned_and_suggested() {
    let clock: Arc<ManualClock> = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    let ops = app.client_with("lianyi:ops", "*", None).await;
    let r = ops
        .post(app.url("/api/ops/cis/import"))
        .body("code,name,class,support_group\r\nPRN-W3,西院区三楼护士站打印机,printer,desktop\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    // Articles in Chinese and English through the API.
    let mut id = std::collections::HashMap::new();
    for (key, title, symptom, solution, class) in [
        (
            "printer-zh",
            "打印机无法打印",
            "护士站打印机无法打印医嘱单，任务一直排队",
            "清空打印队列，重启 Print Spooler 服务",
            "printer",
        ),
        (
            "follow-up",
            "高血压随访表打不开",
            "慢病门诊打开高血压患者随访表时报错",
            "重新安装表单插件后再打开",
            "business-system",
        ),
        (
            "meter",
            "血压计数据上传失败",
            "病房血压计测量后数据没有进入护理记录",
            "检查血压计的网络连接并重新配对",
            "medical-device",
        ),
        ("his", "HIS 登录缓慢", "早高峰登录 HIS 要等一分钟", "清理浏览器缓存并检查域控", ""),
        (
            "printer-en",
            "Printer offline after an update",
            "The ward printer shows offline",
            "Reinstall the printer driver and set the port again",
            "printer",
        ),
    ] {
        let body = json!({"title": title, "symptom": symptom, "solution": solution, "ciClass": class});
        let (status, v) = post(&ops, &app, "/api/ops/kb", body).await;
        assert_eq!(status, StatusCode::CREATED, "{title}: {v}");
        assert_eq!((v["latest"].clone(), v["text"]["title"].clone()), (json!(1), json!(title)));
        id.insert(key, v["id"].as_i64().unwrap());
    }

    // Two-character Chinese words find what holds them and nothing else; an English
    // word is found as typed, not stemmed (the Chinese article's "Print" is not "printer").
    let (status, v) = search(&ops, &app, "打印").await;
    assert_eq!((status, ids(&v)), (StatusCode::OK, vec![id["printer-zh"]]), "{v}");
    let (_, v) = search(&ops, &app, "高血压").await;
    assert_eq!(ids(&v), [id["follow-up"]], "the blood pressure meter has 血压 but not 高血压: {v}");
    let (_, v) = search(&ops, &app, "血压").await;
    assert_eq!(ids(&v), [id["follow-up"], id["meter"]]);
    let (_, v) = search(&ops, &app, "Printer").await;
    assert_eq!(ids(&v), [id["printer-en"]], "{v}");
    let (_, v) = search(&ops, &app, "登录").await;
    assert_eq!(ids(&v), [id["his"]]);
    let (_, v) = search(&ops, &app, "打印 driver").await;
    assert_eq!((ids(&v), v["partial"].clone()), (vec![id["printer-zh"], id["printer-en"]], json!(true)), "{v}");
    let (_, v) = search(&ops, &app, "手术麻醉").await;
    assert_eq!(ids(&v), Vec::<i64>::new(), "a miss finds nothing: {v}");
    let v = ops.get(app.url("/api/ops/kb?limit=2")).send().await.unwrap().json::<Value>().await.unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 2, "without words: the newest");

    // Bad input names the field; only the IT team's clients come in.
    let (status, v) =
        post(&ops, &app, "/api/ops/kb", json!({"title": "", "solution": "x", "ciClass": "toaster"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let fields: Vec<&str> = v["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["title", "ci_class"], "{v}");
    let (status, v) = post(&ops, &app, "/api/ops/kb", json!({"title": "没有办法", "solution": ""})).await;
    assert_eq!((status, v["errors"][0]["field"].clone()), (StatusCode::BAD_REQUEST, json!("solution")));
    let clinician = app.client_with("system/Patient.rs", "*", None).await;
    let (status, _) = search(&clinician, &app, "打印").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = post(&clinician, &app, "/api/ops/kb", json!({"title": "x", "solution": "y"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A nurse reports a fault; the desktop group's engineer resolves it.
    let (mut lead, lead_csrf) = logged_in(&app, &clock, "it-lead", "it-manager", "*", None).await;
    let (status, _, _) =
        lead.post("/ops/groups", &[("csrf", &lead_csrf), ("username", "it-desk"), ("support_group", "desktop")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (mut nurse, ncsrf) = logged_in(&app, &clock, "nurse-w", "nurse", "campus-west", None).await;
    let (_, _, form) = nurse.get("/ops/report").await;
    assert!(form.contains("hx-get=\"/ops/kb/suggest\"") && form.contains("id=\"kb-suggest\""), "{form}");
    // What the form fetches while the nurse types the title.
    let (status, _, fragment) = nurse.get(&format!("/ops/kb/suggest?title={}", enc("打印机卡纸无法打印"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(fragment.contains(&format!("data-article=\"{}\"", id["printer-zh"])), "{fragment}");
    assert!(!fragment.contains("<html"), "a fragment, not a page: {fragment}");
    let (_, _, none) = nurse.get(&format!("/ops/kb/suggest?title={}", enc("手术麻醉系统"))).await;
    assert_eq!(none.trim(), "", "nothing matches: an empty fragment");
    // Staff read published articles, but do not write them.
    let (status, _, page) = nurse.get(&format!("/ops/kb/{}", id["printer-zh"])).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("清空打印队列") && !page.contains("id=\"kb-edit\""), "{page}");
    assert_eq!(nurse.get("/ops/kb/new").await.0, StatusCode::FORBIDDEN);

    let report = [
        ("csrf", ncsrf.as_str()),
        ("title", "打印机卡纸无法打印"),
        ("description", "三楼护士站，打印医嘱单时卡纸"),
        ("category", "printer"),
        ("ci", "PRN-W3"),
        ("impact", "2"),
        ("urgency", "2"),
    ];
    let (status, to, _) = nurse.post("/ops/report", &report).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let ticket = ticket_of(&to);
    let (mut desk, dcsrf) = logged_in(&app, &clock, "it-desk", "it-engineer", "*", None).await;
    let (_, _, seen) = desk.get(&format!("/ops/tickets/{ticket}")).await;
    assert!(
        between(&seen, "id=\"kb-suggest\"", "</div>").contains(&format!("data-article=\"{}\"", id["printer-zh"])),
        "the engineer is shown the article while working the ticket: {seen}"
    );
    assert!(!seen.contains("id=\"kb-from-ticket\""), "not before it is resolved");
    // Not resolved yet: no article from it.
    let (status, v) = post(&ops, &app, "/api/ops/kb", json!({"source": format!("incident:{ticket}")})).await;
    assert_eq!((status, v["errors"][0]["field"].clone()), (StatusCode::BAD_REQUEST, json!("source")), "{v}");
    desk.post(&format!("/ops/tickets/{ticket}/take"), &[("csrf", &dcsrf), ("version", &version(&seen))]).await;
    let (_, _, seen) = desk.get(&format!("/ops/tickets/{ticket}")).await;
    let (status, _, _) = desk
        .post(
            &format!("/ops/tickets/{ticket}/resolve"),
            &[("csrf", &dcsrf), ("version", &version(&seen)), ("resolution", "取出卡纸，清洁搓纸轮后打印正常")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    // One step from the resolved ticket: the form comes prefilled.
    let (_, _, seen) = desk.get(&format!("/ops/tickets/{ticket}")).await;
    assert!(seen.contains(&format!("href=\"/ops/kb/new?ticket={ticket}\"")), "{seen}");
    let (status, _, draft) = desk.get(&format!("/ops/kb/new?ticket={ticket}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(draft.contains("id=\"kb-title\" name=\"title\" value=\"打印机卡纸无法打印\""), "{draft}");
    assert!(between(&draft, "id=\"kb-symptom\"", "</textarea>").contains("三楼护士站，打印医嘱单时卡纸"), "{draft}");
    assert!(between(&draft, "id=\"kb-solution\"", "</textarea>").contains("取出卡纸，清洁搓纸轮后打印正常"));
    assert!(draft.contains("<option value=\"printer\" selected>"), "the CI's class: {draft}");
    assert!(draft.contains(&format!("name=\"source\" value=\"incident:{ticket}\"")));
    let csrf = crate::pages::csrf(&draft);
    let field = |name: &str| {
        between(&draft, &format!("id=\"kb-{name}\""), "</textarea>").split('>').nth(1).unwrap().to_string()
    };
    let (symptom, solution) = (field("symptom"), field("solution"));
    let source = format!("incident:{ticket}");
    let written = [
        ("csrf", csrf.as_str()),
        ("version", "0"),
        ("source", source.as_str()),
        ("title", "打印机卡纸无法打印"),
        ("ci_class", "printer"),
        ("symptom", symptom.as_str()),
        ("cause", "搓纸轮积灰打滑"),
        ("solution", solution.as_str()),
        ("note", ""),
    ];
    let (status, to, _) = desk.post("/ops/kb", &written).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(to.ends_with("?done=created"), "{to}");
    let article: i64 = to.trim_start_matches("/ops/kb/").split('?').next().unwrap().parse().unwrap();
    let (_, _, page) = desk.get(&to).await;
    assert!(page.contains(&format!("href=\"/ops/tickets/{ticket}\"")), "the source is linked: {page}");
    assert!(page.contains("搓纸轮积灰打滑") && page.contains("data-class=\"printer\""), "{page}");
    let (_, _, seen) = desk.get(&format!("/ops/tickets/{ticket}")).await;
    assert!(seen.contains(&format!("data-article=\"{article}\"")), "the ticket lists its article: {seen}");
    // Through the API in one step too: the ticket fills in what is not given.
    let (status, v) = post(&ops, &app, "/api/ops/kb", json!({"source": format!("incident:{ticket}")})).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(
        (v["text"]["title"].clone(), v["text"]["solution"].clone(), v["text"]["ciClass"].clone()),
        (json!("打印机卡纸无法打印"), json!("取出卡纸，清洁搓纸轮后打印正常"), json!("printer"))
    );
    assert!(v["text"]["symptom"].as_str().unwrap().contains("打印医嘱单时卡纸"), "{v}");
    // A bad title on the page names the field.
    let mut bad = written;
    bad[3] = ("title", "");
    let (_, _, refused) = desk.post("/ops/kb", &bad).await;
    assert!(between(&refused, "id=\"form-errors\"", "</div>").contains("data-field=\"title\""), "{refused}");

    // An edit is version 2; version 1 is still readable; a stale form is refused.
    let (_, _, edit) = desk.get(&format!("/ops/kb/{article}/edit")).await;
    let mut changed = written;
    let v1 = version(&edit);
    changed[1] = ("version", v1.as_str());
    changed[6] = ("cause", "搓纸轮老化，需更换");
    changed[8] = ("note", "原因更正");
    let (status, to, _) = desk.post(&format!("/ops/kb/{article}"), &changed).await;
    assert_eq!((status, to), (StatusCode::SEE_OTHER, format!("/ops/kb/{article}?done=saved")));
    let (_, _, now) = desk.get(&format!("/ops/kb/{article}")).await;
    assert!(now.contains("data-version=\"2\"") && now.contains("搓纸轮老化，需更换"), "{now}");
    assert!(now.contains(&format!("href=\"/ops/kb/{article}?v=1\"")), "the history links version 1: {now}");
    let (_, _, old) = desk.get(&format!("/ops/kb/{article}?v=1")).await;
    assert!(old.contains("id=\"kb-old-version\"") && old.contains("搓纸轮积灰打滑"), "{old}");
    let (_, _, stale) = desk.post(&format!("/ops/kb/{article}"), &changed).await;
    assert!(between(&stale, "id=\"form-errors\"", "</div>").contains("data-field=\"version\""), "{stale}");
    let r = ops.get(app.url(&format!("/api/ops/kb/{article}?version=1"))).send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["latest"].clone(), v["text"]["cause"].clone()), (json!(2), json!("搓纸轮积灰打滑")), "{v}");
    assert_eq!(v["versions"].as_array().unwrap().len(), 2);
    // Only the current text is searched.
    let (_, v) = search(&ops, &app, "老化").await;
    assert_eq!(ids(&v), [article]);
    let (_, v) = search(&ops, &app, "积灰").await;
    assert_eq!(ids(&v), Vec::<i64>::new(), "{v}");

    // Improved from an incident: a resolved ticket links each article it suggests to
    // that article's next version, prefilled with what the ticket taught; saved, that
    // version names the ticket as its source.
    let printer = id["printer-zh"];
    let body = json!({"title": "打印机无法打印", "category": "printer", "ci": "PRN-W3", "callerName": "护士 刘敏"});
    let (status, v) = post(&ops, &app, "/api/ops/incidents", body).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let ticket = v["id"].as_i64().unwrap();
    let (_, _, seen) = desk.get(&format!("/ops/tickets/{ticket}")).await;
    assert!(!seen.contains("id=\"kb-improve\""), "not before it is resolved");
    desk.post(&format!("/ops/tickets/{ticket}/take"), &[("csrf", &dcsrf), ("version", &version(&seen))]).await;
    let (_, _, seen) = desk.get(&format!("/ops/tickets/{ticket}")).await;
    let resolution =
        [("csrf", dcsrf.as_str()), ("version", &version(&seen)), ("resolution", "更换打印机数据线后恢复打印")];
    let (status, _, _) = desk.post(&format!("/ops/tickets/{ticket}/resolve"), &resolution).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, seen) = desk.get(&format!("/ops/tickets/{ticket}")).await;
    let improve = format!("href=\"/ops/kb/{printer}/edit?ticket={ticket}\"");
    assert!(between(&seen, "id=\"kb-improve\"", "</ul>").contains(&improve), "{seen}");
    let (status, _, draft) = desk.get(&format!("/ops/kb/{printer}/edit?ticket={ticket}")).await;
    assert_eq!(status, StatusCode::OK);
    let field = |name: &str| {
        between(&draft, &format!("id=\"kb-{name}\""), "</textarea>").split('>').nth(1).unwrap().to_string()
    };
    let (symptom, solution) = (field("symptom"), field("solution"));
    assert_eq!(solution, "清空打印队列，重启 Print Spooler 服务\n更换打印机数据线后恢复打印", "{draft}");
    assert_eq!(symptom, "护士站打印机无法打印医嘱单，任务一直排队", "the ticket's title is no news to it");
    assert!(draft.contains(&format!("name=\"source\" value=\"incident:{ticket}\"")), "{draft}");
    assert!(draft.contains(&format!("name=\"note\" value=\"根据工单 #{ticket} 完善\"")), "{draft}");
    let source = format!("incident:{ticket}");
    let v = version(&draft);
    let improved = [
        ("csrf", csrf.as_str()),
        ("version", v.as_str()),
        ("source", source.as_str()),
        ("title", "打印机无法打印"),
        ("ci_class", "printer"),
        ("symptom", symptom.as_str()),
        ("cause", "数据线接触不良"),
        ("solution", solution.as_str()),
        ("note", "根据工单完善"),
    ];
    let (status, to, _) = desk.post(&format!("/ops/kb/{printer}"), &improved).await;
    assert_eq!((status, to), (StatusCode::SEE_OTHER, format!("/ops/kb/{printer}?done=saved")));
    let (_, _, now) = desk.get(&format!("/ops/kb/{printer}")).await;
    let row = between(&now, "<tr data-version=\"2\"", "</tr>");
    assert!(row.contains(&format!("href=\"/ops/tickets/{ticket}\"")), "version 2 names its ticket: {now}");
    assert!(!between(&now, "<tr data-version=\"1\"", "</tr>").contains("/ops/tickets/"), "{now}");
    let r = ops.get(app.url(&format!("/api/ops/kb/{printer}"))).send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["latest"].clone(), v["versions"][1]["source"].clone()), (json!(2), json!(source)), "{v}");
    assert_eq!(v["source"], Value::Null, "the article's own source is unchanged: {v}");
    // Not from a ticket that is not there.
    let (_, _, refused) = desk.get(&format!("/ops/kb/{printer}/edit?ticket=999")).await;
    assert!(between(&refused, "id=\"form-errors\"", "</div>").contains("data-field=\"source\""), "{refused}");

    // The search page, in Chinese.
    let (status, _, list) = desk.get(&format!("/ops/kb?q={}", enc("打印"))).await;
    assert_eq!(status, StatusCode::OK);
    let rows = between(&list, "id=\"kb-list\"", "</table>");
    assert!(rows.contains(&format!("data-article=\"{}\"", id["printer-zh"])), "{list}");
    assert!(!rows.contains(&format!("data-article=\"{}\"", id["his"])), "{list}");

    // Retired: no longer found, suggested or shown to the staff.
    let (_, _, page) = desk.get(&format!("/ops/kb/{}", id["printer-zh"])).await;
    let (status, _, _) = desk
        .post(
            &format!("/ops/kb/{}/status", id["printer-zh"]),
            &[("csrf", &dcsrf), ("version", &version(&page)), ("retired", "1")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, v) = search(&ops, &app, "打印队列").await;
    assert!(!ids(&v).contains(&id["printer-zh"]), "{v}");
    let (_, _, fragment) = nurse.get(&format!("/ops/kb/suggest?title={}", enc("打印队列"))).await;
    assert!(!fragment.contains(&format!("data-article=\"{}\"", id["printer-zh"])), "{fragment}");
    assert_eq!(nurse.get(&format!("/ops/kb/{}", id["printer-zh"])).await.0, StatusCode::NOT_FOUND);
    let (_, _, mine) = desk.get(&format!("/ops/kb?q={}&retired=1", enc("打印队列"))).await;
    assert!(mine.contains(&format!("data-article=\"{}\" data-status=\"retired\"", id["printer-zh"])), "{mine}");

    // Every change is in the audit log.
    let auditor = app.client_with("system/AuditEvent.rs", "*", None).await;
    for (action, at_least) in [("kb-create", 7), ("kb-edit", 2), ("kb-retire", 1)] {
        let r = auditor.get(app.url(&format!("/fhir/AuditEvent?subtype={action}&_count=1"))).send().await.unwrap();
        let v: Value = r.json().await.unwrap();
        assert!(v["total"].as_i64().unwrap() >= at_least, "{action}: {v}");
    }
}
