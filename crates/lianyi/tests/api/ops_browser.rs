//! The IT service desk's acceptance walk (issue 16) in a real headless Chromium, in
//! Chinese and in English: a printer fault from a nurse to the statistics, the
//! knowledge base on the way, and a change to the core switch through its board.

use std::time::{Duration, Instant};

use lianyi_security::users::NewUser;
use lianyi_security::{Caller, ManualClock};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::browser::Driver;
use crate::helpers::spawn_app_clocked;

const PASSWORD: &str = "initial-Pass-2026";

/// What the walk types and expects to read, per language.
struct Expect {
    article_title: &'static str,
    article_symptom: &'static str,
    article_solution: &'static str,
    description: &'static str,
    location: &'static str,
    priority: &'static str,
    desktop_group: &'static str,
    reported: &'static str,
    resolution: &'static str,
    resolved: &'static str,
    closed: &'static str,
    cause: &'static str,
    improving: &'static str,
    note: &'static str,
    source: &'static str,
    saved: &'static str,
    printer_category: &'static str,
    change_title: &'static str,
    backout_plan: &'static str,
    east: &'static str,
    west: &'static str,
    not_approved: &'static str,
    requested: &'static str,
    comment: &'static str,
    scheduled: &'static str,
    down: &'static str,
}

const ZH: Expect = Expect {
    article_title: "打印机无法打印：清空打印队列",
    article_symptom: "护士站打印机无法打印，任务一直排队",
    article_solution: "清空打印队列，重启 Print Spooler 服务",
    description: "三楼护士站打印医嘱单没有反应",
    location: "西院区住院楼三楼护士站",
    priority: "P3 (影响 中（多人） × 紧急程度 一般)",
    desktop_group: "桌面组",
    reported: "已提交，信息科会尽快处理。",
    resolution: "重新安装打印机驱动后打印正常",
    resolved: "已解决",
    closed: "已关闭",
    cause: "系统更新后打印机驱动不兼容",
    improving: "据此完善：",
    note: "根据工单 #1 完善",
    source: "工单 #1",
    saved: "已保存为新版本。",
    printer_category: "打印",
    change_title: "更换核心交换机板卡",
    backout_plan: "装回原板卡，恢复配置",
    east: "东院区",
    west: "西院区",
    not_approved: "变更委员会尚未批准",
    requested: "待审批",
    comment: "同意，夜间窗口执行",
    scheduled: "已排期",
    down: "故障",
};

const EN: Expect = Expect {
    article_title: "Printer cannot print (打印机无法打印): clear the print queue",
    article_symptom: "The ward printer does not print (打印机无法打印); the jobs stay in the queue",
    article_solution: "Clear the print queue and restart the Print Spooler service",
    description: "Orders sent to the third-floor nurses' station printer never come out",
    location: "West campus, ward building, third-floor nurses' station",
    priority: "P3 (Impact Medium (several people) × Urgency Normal)",
    desktop_group: "Desktop",
    reported: "Reported: the IT team will handle it.",
    resolution: "Reinstalled the printer driver; printing works again",
    resolved: "Resolved",
    closed: "Closed",
    cause: "The printer driver no longer fits the system after an update",
    improving: "Improving it from",
    note: "Improved from ticket #1",
    source: "ticket #1",
    saved: "Saved as a new version.",
    printer_category: "Printing",
    change_title: "Replace a line card of the core switch",
    backout_plan: "Put the old card back and restore the configuration",
    east: "East Campus",
    west: "West Campus",
    not_approved: "the change board has not approved it yet",
    requested: "Awaiting approval",
    comment: "Agreed, in the night window",
    scheduled: "Scheduled",
    down: "Down",
};

/// Types a date and time into a `datetime-local` field as a person does, segment by
/// segment in the order the browser's own locale shows them (its default, from the
/// environment, not the page's language; read from `Intl`: en-US is month, day, year,
/// hour of 12, minute, AM/PM; zh-CN year, month, day…). A year takes up to six
/// digits, so a Tab ends it. Checks the value the form will send.
async fn type_datetime(d: &Driver, css: &str, value: &str) {
    let script = "const [y, mo, da, h, mi] = arguments[0].split(/[-T:]/).map(Number);\
         return new Intl.DateTimeFormat(undefined, {year: 'numeric', month: '2-digit', day: '2-digit', \
           hour: '2-digit', minute: '2-digit'}).formatToParts(new Date(y, mo - 1, da, h, mi))\
           .filter(p => p.type !== 'literal').map(p => [p.type, p.value]);";
    let parts = d.cmd(reqwest::Method::POST, "/execute/sync", json!({"script": script, "args": [value]})).await;
    let mut keys = String::new();
    for part in parts.as_array().unwrap_or_else(|| panic!("{parts}")) {
        let (kind, text) = (part[0].as_str().unwrap(), part[1].as_str().unwrap());
        match kind {
            "year" => keys.push_str(&format!("{text}\u{e004}")),
            "dayPeriod" => keys.extend(text.chars().next()),
            _ => keys.push_str(&format!("{:0>2}", text)),
        }
    }
    d.click(css).await;
    d.type_into(css, &keys).await;
    let script = format!("return document.querySelector('{css}').value;");
    let v = d.cmd(reqwest::Method::POST, "/execute/sync", json!({"script": script, "args": []})).await;
    assert_eq!(v, value, "{css} after typing {keys:?} ({parts})");
}

/// Waits for an htmx swap into `#kb-suggest` after `typing` ran: a listener is set
/// first, so the fragment fetched for what was typed is the one seen.
async fn typed_with_suggestions(d: &Driver, css: &str, text: &str) -> String {
    let listen = "window.kbSwaps = 0; document.body.addEventListener('htmx:afterSwap', \
                  e => { if (e.detail.target.id === 'kb-suggest') window.kbSwaps++; });";
    d.cmd(reqwest::Method::POST, "/execute/sync", json!({"script": listen, "args": []})).await;
    d.type_into(css, text).await;
    let started = Instant::now();
    loop {
        let n = d
            .cmd(reqwest::Method::POST, "/execute/sync", json!({"script": "return window.kbSwaps;", "args": []}))
            .await;
        if n.as_i64().unwrap_or(0) > 0 {
            return d.text("#kb-suggest").await;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no suggestions were fetched for {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The walk of issue 16's acceptance in one language (the ticket's title is typed in
/// Chinese in both, as the nurse would): the nurse reports "打印机无法打印" against the
/// west campus's printer from the shell — priority P3 by the matrix, the desktop
/// group; the desktop engineer finds it in the group's queue, takes it, is suggested
/// the printer article as they type the resolution, resolves it; the nurse closes it
/// with a score of 4; the engineer improves the suggested article from the ticket
/// (version 2, the ticket its source); the engineer asks for a change to the core
/// switch, which shows HIS and both campuses and cannot be scheduled unapproved; the
/// IT manager's statistics count the fault, the engineer's resolution and score, and
/// the manager approves the change, which is then scheduled. Every page passes
/// [`Driver::check`]; screenshots go to target/screenshots/it-desk-<lang>.
async fn it_desk_day(lang: &str, x: &Expect) {
    // Friday 2027-01-15, 16:00 in Beijing.
    let clock = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    crate::ops::campuses(&app).await;
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
    let body = json!({"title": x.article_title, "symptom": x.article_symptom, "solution": x.article_solution,
                      "ciClass": "printer"});
    let r = ops.post(app.url("/api/ops/kb")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let article = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let r = ops.get(app.url("/api/ops/kb?q=%E6%89%93%E5%8D%B0")).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["items"][0]["id"], article, "打印 finds it");
    let system = Caller::task(lianyi_security::SystemTask::Operator("test setup".into()));
    for (name, display, role, campus) in [
        ("nurse-w", "护士 刘敏", "nurse", "campus-west"),
        ("it-desk", "工程师 王强", "it-engineer", "*"),
        ("it-lead", "信息科 陈主任", "it-manager", "*"),
    ] {
        let user = NewUser {
            username: name.into(),
            display_name: display.into(),
            password: PASSWORD.into(),
            grants: vec![(role.into(), campus.into())],
            patient: None,
            must_change_password: false,
        };
        app.users.add_user(&system, user).await.unwrap();
    }
    // The IT manager's groups and board, as kept on /ops/groups.
    lianyi_ops::desk::Desk::new(app.fhir.clone())
        .unwrap()
        .set_member(&system, "desktop", "it-desk", false)
        .await
        .unwrap();
    lianyi_ops::changes::Changes::new(app.fhir.clone()).set_board(&system, "normal", "it-lead", true).await.unwrap();

    let shots = format!("it-desk-{lang}");
    let site = app.base.replace("127.0.0.1", "localhost");
    let d = Driver::start().await;
    d.goto(&format!("{site}/login")).await;
    if lang == "en" {
        d.open_menu().await;
        d.click("#lang-switch").await;
        d.wait_text("Log in", 10).await;
    }

    // The nurse reports the fault from the shell; the article shows while she types.
    let nurse = d.log_in(&site, "nurse-w", PASSWORD, &clock).await;
    d.click("#site-nav a[href='/ops/report']").await;
    d.wait_url("/ops/report").await;
    d.check(true).await;
    let suggested = typed_with_suggestions(&d, "#desk-title", "打印机无法打印").await;
    assert!(suggested.contains(x.article_title), "{suggested}");
    d.type_into("#desk-description", x.description).await;
    d.click("#desk-category option[value=printer]").await;
    d.type_into("#desk-ci", "PRN-W3").await;
    d.type_into("#desk-location", x.location).await;
    d.click("#desk-impact option[value='2']").await;
    d.click("#desk-urgency option[value='2']").await;
    d.check(true).await;
    d.screenshot(&shots, "01-report").await;
    d.click("#desk-report-go").await;
    let url = d.wait_url("done=reported").await;
    let ticket: i64 = url.split("/ops/tickets/").nth(1).unwrap().split('?').next().unwrap().parse().unwrap();
    assert_eq!(ticket, 1);
    assert_eq!(d.text("#notice").await, x.reported);
    assert_eq!(d.text("#desk-priority").await, x.priority, "medium × medium is P3 by the matrix");
    assert_eq!(d.text("#desk-group").await, x.desktop_group);
    assert!(d.text("#desk-ci-shown").await.starts_with("PRN-W3"));
    d.check(true).await;
    d.screenshot(&shots, "02-reported").await;
    d.log_out().await;

    // The desktop engineer takes it from the group's queue and, as the resolution is
    // typed, is suggested the article.
    clock.advance(5 * 60_000);
    let engineer = d.log_in(&site, "it-desk", PASSWORD, &clock).await;
    d.goto(&format!("{site}/ops/tickets")).await;
    d.click(&format!("tr[data-ticket='{ticket}'] a[href='/ops/tickets/{ticket}']")).await;
    d.wait_url(&format!("/ops/tickets/{ticket}")).await;
    d.check(true).await;
    d.click("#desk-take").await;
    d.wait_url("done=take").await;
    d.check(true).await;
    clock.advance(10 * 60_000);
    let suggested = typed_with_suggestions(&d, "#desk-resolution-input", x.resolution).await;
    assert!(suggested.contains(x.article_title), "{suggested}");
    d.find(&format!("#kb-suggest li[data-article='{article}']")).await;
    d.check(true).await;
    d.screenshot(&shots, "03-suggested").await;
    d.click("#desk-resolve").await;
    d.wait_url("done=resolve").await;
    assert_eq!(d.text("#desk-status").await, x.resolved);
    d.check(true).await;
    d.log_out().await;

    // The nurse closes it with a score.
    clock.advance(60_000);
    d.log_in_again(&site, "nurse-w", PASSWORD, &nurse, &clock).await;
    d.goto(&format!("{site}/ops/tickets/{ticket}")).await;
    assert!(d.text("#desk-resolution-text").await.contains(x.resolution));
    d.click("#desk-score option[value='4']").await;
    d.click("#desk-close").await;
    d.wait_url("done=close").await;
    assert_eq!(d.text("#desk-status").await, x.closed);
    assert_eq!(d.text("#desk-satisfaction").await, "4 / 5");
    d.check(true).await;
    d.screenshot(&shots, "04-closed").await;
    d.log_out().await;

    // The engineer improves the suggested article from the ticket: version 2, the
    // ticket its source.
    clock.advance(60_000);
    d.log_in_again(&site, "it-desk", PASSWORD, &engineer, &clock).await;
    d.goto(&format!("{site}/ops/tickets/{ticket}")).await;
    d.click(&format!("#kb-improve li[data-article='{article}'] a")).await;
    d.wait_url(&format!("/ops/kb/{article}/edit?ticket={ticket}")).await;
    assert!(d.text("#kb-from").await.contains(x.improving));
    let value = |css: &str| {
        let script = format!("return document.querySelector('{css}').value;");
        let d = &d;
        async move {
            let v = d.cmd(reqwest::Method::POST, "/execute/sync", json!({"script": script, "args": []})).await;
            v.as_str().unwrap_or_default().to_string()
        }
    };
    assert_eq!(value("#kb-solution").await, format!("{}\n{}", x.article_solution, x.resolution));
    assert!(value("#kb-symptom").await.ends_with(x.description), "the ticket's details are new to it");
    assert_eq!(value("#kb-note").await, x.note);
    d.type_into("#kb-cause", x.cause).await;
    d.check(true).await;
    d.screenshot(&shots, "05-improving").await;
    d.click("#kb-save").await;
    d.wait_url("done=saved").await;
    assert_eq!(d.text("#notice").await, x.saved);
    d.find("#kb-version[data-version='2']").await;
    assert_eq!(d.text("#kb-cause").await, x.cause);
    let row = d.text("#kb-versions tr[data-version='2']").await;
    assert!(row.contains(x.note) && row.contains(x.source), "{row}");
    d.find(&format!("#kb-versions tr[data-version='2'] a[href='/ops/tickets/{ticket}']")).await;
    d.check(true).await;
    d.screenshot(&shots, "06-improved").await;

    // A change to the core switch: what it stops, and no schedule before its board.
    d.goto(&format!("{site}/ops/changes/new")).await;
    d.check(true).await;
    d.type_into("#desk-title", x.change_title).await;
    d.type_into("#desk-cis", "SW-CORE").await;
    d.click("#desk-class option[value=normal]").await;
    d.click("#desk-risk option[value=high]").await;
    type_datetime(&d, "#desk-window_start", "2027-01-16T22:00").await;
    type_datetime(&d, "#desk-window_end", "2027-01-17T02:00").await;
    d.type_into("#desk-backout_plan", x.backout_plan).await;
    d.check(true).await;
    d.click("#chg-request").await;
    let url = d.wait_url("done=requested").await;
    let change = url.split("/ops/changes/").nth(1).unwrap().split('?').next().unwrap().to_string();
    let services = d.text("#chg-services").await;
    assert!(services.contains("医院信息系统 HIS") && services.contains("门诊挂号"), "{services}");
    let campuses = d.text("#chg-campuses").await;
    assert!(campuses.contains(x.east) && campuses.contains(x.west), "{campuses}");
    assert_eq!(d.text("#chg-status").await, x.requested);
    d.check(true).await;
    d.screenshot(&shots, "07-change").await;
    d.click("#chg-schedule").await;
    let refused = d.text("#form-errors li[data-field=status]").await;
    assert!(refused.contains(x.not_approved), "{refused}");
    assert_eq!(d.text("#chg-status").await, x.requested);
    d.check(true).await;
    d.screenshot(&shots, "08-not-approved").await;
    d.log_out().await;

    // The IT manager: the statistics count the fault, then the change is approved and
    // scheduled.
    clock.advance(60_000);
    d.log_in(&site, "it-lead", PASSWORD, &clock).await;
    d.goto(&format!("{site}/ops/stats")).await;
    assert_eq!(d.text("#stats-total").await, "1");
    assert_eq!(d.text("#stats-resolved").await, "1");
    let category = d.text("#stats-category").await;
    assert!(category.contains(x.printer_category) && category.contains('1'), "{category}");
    let row = d.text("#stats-engineers tr[data-engineer='it-desk']").await;
    assert!(row.contains("4.0 (1)"), "{row}");
    d.find("#stats-engineers tr[data-engineer='it-desk'][data-resolved='1']").await;
    d.check(true).await;
    d.screenshot(&shots, "09-statistics").await;
    d.goto(&format!("{site}/ops/changes/{change}")).await;
    d.type_into("#desk-comment", x.comment).await;
    d.click("#chg-approve").await;
    d.wait_url("done=approve").await;
    d.check(true).await;
    d.click("#chg-schedule").await;
    d.wait_url("done=schedule").await;
    assert_eq!(d.text("#chg-status").await, x.scheduled);
    assert!(d.text("#chg-approvals").await.contains(x.comment));
    d.check(true).await;
    d.screenshot(&shots, "10-scheduled").await;

    // Monitoring: the east campus's collector finds the HIS server down twice, a
    // minute apart (its interval); the alert opens an incident and HIS, which runs on
    // it, turns red on the status wall. (Fresh tokens: the clock has moved on.)
    let ops = app.client_with("lianyi:ops", "*", None).await;
    let r = ops
        .post(app.url("/api/ops/probes"))
        .json(&json!({"ci": "SRV-HIS", "kind": "tcp", "target": "10.1.0.20:443", "runner": "campus-east", "interval": 60}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let probe = r.json::<Value>().await.unwrap()["id"].clone();
    let collector = app.client_with("lianyi:ops", "campus-east", None).await;
    let down = |at: i64| {
        json!({"probe": probe, "at": at, "outcome": {"readings": [{"metric": "up", "value": 0}],
               "error": "connect to 10.1.0.20:443: no route to host"}})
    };
    let at = lianyi_security::Clock::now_ms(&*clock);
    let batch = json!({"results": [down(at), down(at + 60_000)]});
    let r = collector.post(app.url("/api/ops/collector/results")).json(&batch).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["stored"], 2);
    d.goto(&format!("{site}/ops/monitor")).await;
    d.find("#mon-wall li[data-code='HIS'][data-health='red']").await;
    let tile = d.text("#mon-wall li[data-code='HIS']").await;
    assert!(tile.contains(x.down) && tile.contains("SRV-HIS"), "{tile}");
    assert!(d.text("#mon-alerts").await.contains("SRV-HIS"));
    d.check(true).await;
    d.screenshot(&shots, "11-status-wall").await;
    // HIS's topology: the server it runs on red, HIS itself affected.
    d.click("#mon-wall li[data-code='HIS'] a.tile-topology").await;
    d.wait_url("way=needs").await;
    d.find("#impact-graph g.st-down").await;
    d.find("#impact-graph g.node-start.st-affected").await;
    d.find("#impact-legend").await;
    d.check(true).await;
    d.screenshot(&shots, "12-topology").await;
    // Ten minutes on, this month's availability counts the outage so far.
    clock.advance(10 * 60_000);
    d.goto(&format!("{site}/ops/monitor/availability")).await;
    let percent = d.text("#av-table tr[data-code='HIS'] .av-percent").await;
    assert!(percent.starts_with("99."), "nine minutes down this month: {percent}");
    d.check(true).await;
    d.screenshot(&shots, "13-availability").await;
    // The backups page: a good run and a failed one, as lianyi backup records them.
    let at = lianyi_security::Clock::now_ms(&*clock);
    for (status, error) in [("ok", None), ("failed", Some("backup: No space left on device (os error 28)"))] {
        let id = app.store.backup_started("manual", "cli:it-lead", at - 90_000).await.unwrap();
        let run = lianyi_store::backup::BackupRun {
            id,
            finished_at: Some(at - 30_000),
            status: status.into(),
            file: (status == "ok").then(|| "/var/backups/lianyi/lianyi-20270115-080000.lyb".into()),
            bytes: (status == "ok").then_some(32_197_804),
            tables: (status == "ok").then_some(63),
            row_count: (status == "ok").then_some(139_298),
            error: error.map(str::to_string),
            ..Default::default()
        };
        app.store.backup_finished(&run).await.unwrap();
    }
    d.goto(&format!("{site}/ops/backups")).await;
    d.find("#bk-runs tr[data-status='ok']").await;
    assert!(d.text("#bk-runs tr[data-status='failed']").await.contains("No space left"));
    d.check(true).await;
    d.screenshot(&shots, "14-backups").await;
    d.log_out().await;
    d.cmd(reqwest::Method::DELETE, "", json!({})).await;
}

#[tokio::test]
async fn chromium_walks_the_it_desk_in_chinese() {
    it_desk_day("zh-CN", &ZH).await;
}

#[tokio::test]
async fn chromium_walks_the_it_desk_in_english() {
    it_desk_day("en", &EN).await;
}
