//! Monitoring through the ops API against real sockets: a TCP port closed and opened
//! again opens an incident on its CI and resolves it; bad probe definitions are
//! refused naming the field; a collector's results are stored once however often
//! they are sent, and only for its own campus's probes.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};
use crate::ops::campuses;

async fn post(c: &reqwest::Client, app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    let r = c.post(app.url(path)).json(&body).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(c: &reqwest::Client, app: &TestApp, path: &str) -> Value {
    let r = c.get(app.url(path)).send().await.unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

/// Polls `path` until `done` holds (at most `secs` seconds).
async fn until(c: &reqwest::Client, app: &TestApp, path: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..secs * 10 {
        last = get(c, app, path).await;
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never got there: {last}");
}

async fn ci(ops: &reqwest::Client, app: &TestApp, code: &str, name: &str, class: &str, campus: &str) {
    let body = json!({"code": code, "name": name, "class": class, "campus": campus, "supportGroup": "system"});
    let (status, v) = post(ops, app, "/api/ops/cis", body).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
}

#[tokio::test]
async fn a_port_that_closes_opens_an_incident_on_its_ci_and_its_recovery_resolves_it() {
    let app = spawn_app().await;
    campuses(&app).await;
    let ops = app.client_with("lianyi:ops", "*", None).await;
    ci(&ops, &app, "SRV-PACS", "东院区 PACS 服务器", "host", "campus-east").await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (status, probe) = post(
        &ops,
        &app,
        "/api/ops/probes",
        json!({"ci": "SRV-PACS", "kind": "tcp", "target": addr.to_string(), "interval": 1, "timeout": 500}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{probe}");
    assert_eq!(probe["rules"][0]["metric"], "up");
    let path = format!("/api/ops/probes/{}", probe["id"]);
    until(&ops, &app, &path, 10, |p| p["lastUp"] == json!(true)).await;

    // The port closes: an alert, and an incident on the CI (how soon is measured by
    // lianyi-bench, not asserted here).
    drop(listener);
    let alerts = until(&ops, &app, "/api/ops/alerts?open=true", 20, |a| {
        a["alerts"].as_array().unwrap().iter().any(|a| a["incident"].is_number())
    })
    .await;
    let alert = &alerts["alerts"][0];
    assert_eq!((alert["metric"].as_str(), alert["severity"].as_str()), (Some("up"), Some("major")));
    assert!(alert["detail"].as_str().unwrap().contains("refused"), "{alert}");
    let ticket = get(&ops, &app, &format!("/api/ops/incidents/{}", alert["incident"])).await;
    assert_eq!(ticket["channel"], "monitor", "{ticket}");
    assert_eq!(ticket["status"], "new");
    // Written in the installation's language (zh-CN unless configured otherwise).
    let title = ticket["title"].as_str().unwrap();
    assert!(title.contains("SRV-PACS") && title.ends_with("无响应"), "{ticket}");
    let description = ticket["description"].as_str().unwrap();
    assert!(description.starts_with("严重告警：up = 0，开始于 20"), "{ticket}");
    assert_eq!(ticket["supportGroup"], "system");

    // Still down a few runs later: still one alert and one incident.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let open = get(&ops, &app, "/api/ops/alerts?open=true").await;
    assert_eq!(open["alerts"].as_array().unwrap().len(), 1, "{open}");

    // The port opens again: the alert resolves and so does the incident, with a note.
    let _back = std::net::TcpListener::bind(addr).unwrap();
    until(&ops, &app, "/api/ops/alerts?open=true", 10, |a| a["alerts"].as_array().unwrap().is_empty()).await;
    let ticket =
        until(&ops, &app, &format!("/api/ops/incidents/{}", alert["incident"]), 5, |t| t["status"] == "resolved").await;
    assert!(ticket["resolution"].as_str().unwrap().starts_with("up 已恢复（up = 1），恢复于 20"), "{ticket}");
    let all = get(&ops, &app, "/api/ops/alerts").await;
    assert_eq!(all["alerts"][0]["status"], "resolved");
    // Every run is kept, from the central server.
    let card = get(&ops, &app, &path).await;
    assert!(card["runs"].as_array().unwrap().iter().any(|r| r["up"] == json!(false)));
    assert_eq!(card["runs"][0]["source"], "central");
}

#[tokio::test]
async fn bad_probes_and_rules_are_refused_naming_the_field() {
    let app = spawn_app().await;
    campuses(&app).await;
    let ops = app.client_with("lianyi:ops", "*", None).await;
    ci(&ops, &app, "SW-E1", "东院区接入交换机", "network", "campus-east").await;
    for (body, field, rule) in [
        (json!({"ci": "SW-E1", "kind": "tcp", "interval": 60}), "target", "required"),
        (json!({"ci": "SW-E1", "kind": "tcp", "target": "10.0.0.1:22", "interval": 0}), "interval", "range"),
        (json!({"ci": "SW-E1", "kind": "carrier-pigeon", "target": "x"}), "kind", "choice"),
        (json!({"ci": "NOPE", "kind": "tcp", "target": "10.0.0.1:22"}), "ci", "unknown"),
        (
            json!({"ci": "SW-E1", "kind": "snmp", "target": "10.0.0.1",
                   "snmp": {"version": "2c", "community": "public", "oids": ["ifInOctets.1"]}}),
            "snmp.oids",
            "format",
        ),
        (json!({"ci": "SW-E1", "kind": "database", "runner": "campus-east"}), "runner", "central"),
        (json!({"ci": "SW-E1", "kind": "tcp", "target": "10.0.0.1:22", "runner": "campus-mars"}), "runner", "unknown"),
    ] {
        let (status, v) = post(&ops, &app, "/api/ops/probes", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert!(
            v["errors"].as_array().unwrap().iter().any(|e| e["field"] == field && e["rule"] == rule),
            "{body}: {v}"
        );
    }
    let (_, p) =
        post(&ops, &app, "/api/ops/probes", json!({"ci": "SW-E1", "kind": "tcp", "target": "10.0.0.1:22"})).await;
    let rules = format!("/api/ops/probes/{}/rules", p["id"]);
    let (status, v) = post(
        &ops,
        &app,
        &rules,
        json!({"metric": "latency_ms", "op": "above", "threshold": 500, "clear": 800, "severity": "warning"}),
    )
    .await;
    assert_eq!((status, v["errors"][0]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("clear")), "{v}");
    let (status, v) =
        post(&ops, &app, &rules, json!({"metric": "latency_ms", "op": "sideways", "threshold": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let fields: Vec<&str> = v["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["threshold", "op", "severity"]);
    let (status, _) = post(
        &ops,
        &app,
        &rules,
        json!({"metric": "latency_ms", "op": "above", "threshold": 500, "clear": 300, "forSeconds": 180, "severity": "warning"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    // Nurses do not define probes.
    let nurse = app.client_with("user/Patient.rs", "campus-east", None).await;
    let (status, _) =
        post(&nurse, &app, "/api/ops/probes", json!({"ci": "SW-E1", "kind": "tcp", "target": "10.0.0.1:22"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_collector_sends_its_campus_results_once_however_often_it_retries() {
    let app = spawn_app().await;
    campuses(&app).await;
    let ops = app.client_with("lianyi:ops", "*", None).await;
    ci(&ops, &app, "PRN-W3", "西院区三楼护士站打印机", "printer", "campus-west").await;
    ci(&ops, &app, "PRN-E1", "东院区门诊打印机", "printer", "campus-east").await;
    let (_, west) = post(
        &ops,
        &app,
        "/api/ops/probes",
        json!({"ci": "PRN-W3", "kind": "tcp", "target": "10.2.3.40:9100", "runner": "campus-west", "interval": 30}),
    )
    .await;
    let (_, east) = post(
        &ops,
        &app,
        "/api/ops/probes",
        json!({"ci": "PRN-E1", "kind": "tcp", "target": "10.1.0.9:9100", "runner": "campus-east", "interval": 30}),
    )
    .await;
    let collector = app.client_with("lianyi:ops", "campus-west", None).await;
    let mine = get(&collector, &app, "/api/ops/collector/probes").await;
    let ids: Vec<&Value> = mine["probes"].as_array().unwrap().iter().map(|p| &p["id"]).collect();
    assert_eq!(ids, [&west["id"]], "{mine}");
    assert_eq!(mine["probes"][0]["spec"]["target"], "10.2.3.40:9100");
    let result = |at: i64, up: f64| json!({"probe": west["id"], "at": at, "outcome": {"readings": [{"metric": "up", "value": up}, {"metric": "latency_ms", "value": 3.5}]}});
    let batch = json!({"results": [result(1_000, 1.0), result(31_000, 1.0)]});
    let (status, v) = post(&collector, &app, "/api/ops/collector/results", batch.clone()).await;
    assert_eq!((status, v), (StatusCode::OK, json!({"stored": 2, "duplicates": 0})));
    // The answer was lost; the collector sends the same batch again, and one more.
    let again = json!({"results": [result(1_000, 1.0), result(31_000, 1.0), result(61_000, 1.0)]});
    let (status, v) = post(&collector, &app, "/api/ops/collector/results", again).await;
    assert_eq!((status, v), (StatusCode::OK, json!({"stored": 1, "duplicates": 2})));
    let card = get(&ops, &app, &format!("/api/ops/probes/{}", west["id"])).await;
    assert_eq!(card["runs"].as_array().unwrap().len(), 3);
    assert!(card["runs"][0]["source"].as_str().unwrap().starts_with("collector:"));
    // Another campus's probe is refused, and the batch stops there.
    let theirs = json!({"results": [result(91_000, 1.0),
        {"probe": east["id"], "at": 1_000, "outcome": {"readings": [{"metric": "up", "value": 1.0}]}}]});
    let (status, v) = post(&collector, &app, "/api/ops/collector/results", theirs).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!((v["stored"].clone(), v["refused"]["index"].clone()), (json!(1), json!(1)), "{v}");
    // Garbage is a clear error.
    let (status, v) = post(&collector, &app, "/api/ops/collector/results", json!({"results": "x"})).await;
    assert_eq!((status, v["errors"][0]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("results")));
}

/// A port on this machine where nothing listens.
pub(crate) fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// "YYYY-MM-DD HH:MM" in Beijing time, `minutes` from now.
fn beijing(minutes: i64) -> String {
    let now = lianyi_security::Clock::now_ms(&lianyi_security::SystemClock::default());
    let s = lianyi_fhir::datetime::format_instant(now + minutes * 60_000 + 8 * 3_600_000);
    format!("{} {}", &s[..10], &s[11..16])
}

#[tokio::test]
async fn a_scheduled_change_holds_the_alerts_of_exactly_its_cis_and_no_incident_opens_for_them() {
    let app = spawn_app().await;
    campuses(&app).await;
    let ops = app.client_with("lianyi:ops", "*", None).await;
    ci(&ops, &app, "SW-MAINT", "东院区汇聚交换机（升级中）", "network", "campus-east").await;
    ci(&ops, &app, "SRV-OTHER", "东院区文件服务器", "host", "campus-east").await;
    // A standard change (pre-approved) on the switch, scheduled for the hour around now.
    let changes = lianyi_ops::changes::Changes::new(app.fhir.clone());
    let it = lianyi_security::Caller::task(lianyi_security::SystemTask::Operator("test operator".into()));
    let form = lianyi_ops::changes::ChangeForm {
        title: "汇聚交换机固件升级".into(),
        description: "升级到 V200R022".into(),
        class: "standard".into(),
        risk: "low".into(),
        backout_plan: "回退到原固件".into(),
        window_start: beijing(-60),
        window_end: beijing(60),
        cis: vec!["SW-MAINT".into()],
    };
    let change = changes.request(&it, &form).await.unwrap();
    let v = get(&ops, &app, &format!("/api/ops/changes/{change}")).await;
    changes.schedule(&it, change, v["version"].as_i64().unwrap(), &beijing(-60), &beijing(60)).await.unwrap();
    for code in ["SW-MAINT", "SRV-OTHER"] {
        let (status, v) = post(
            &ops,
            &app,
            "/api/ops/probes",
            json!({"ci": code, "kind": "tcp", "target": closed_port(), "interval": 1, "timeout": 500}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
    }
    let alerts = until(&ops, &app, "/api/ops/alerts?open=true", 10, |a| {
        let list = a["alerts"].as_array().unwrap();
        list.len() == 2 && list.iter().any(|a| a["incident"].is_number())
    })
    .await;
    let cis = get(&ops, &app, "/api/ops/cis?q=SW-MAINT").await;
    let maint_ci = &cis["items"][0]["id"];
    for a in alerts["alerts"].as_array().unwrap() {
        if &a["ci"] == maint_ci {
            assert_eq!((a["maintenance"].as_i64(), a["incident"].is_null()), (Some(change), true), "{a}");
        } else {
            assert!(a["maintenance"].is_null() && a["incident"].is_number(), "{a}");
        }
    }
}

#[tokio::test]
async fn an_outbound_channel_to_a_dead_receiver_raises_a_queue_alert_and_an_incident_and_hl7_listeners_are_counted() {
    let app = spawn_app().await;
    campuses(&app).await;
    let ops = app.client_with("lianyi:ops", "*", None).await;
    let outbound = lianyi_interop::Outbound::new(app.fhir.clone(), "campus-east");
    let it = lianyi_security::Caller::task(lianyi_security::SystemTask::Operator("test operator".into()));
    let spec = lianyi_interop::ChannelSpec {
        id: "lis-feed".into(),
        name: "LIS".into(),
        kind: "webhook".into(),
        endpoint: format!("http://{}/hook", closed_port()),
        criteria: "Patient".into(),
        campus: None,
        headers: None,
        max_attempts: 50,
        backoff_ms: 10_000,
        max_backoff_ms: 60_000,
    };
    outbound.add_channel(&it, spec).await.unwrap();
    // The platform registers itself while it runs; its health probe watches the queue.
    until(&ops, &app, "/api/ops/cis?q=LIANYI", 10, |v| v["items"].as_array().is_some_and(|i| !i.is_empty())).await;
    let (status, probe) =
        post(&ops, &app, "/api/ops/probes", json!({"ci": "LIANYI", "kind": "platform", "interval": 1})).await;
    assert_eq!(status, StatusCode::CREATED, "{probe}");
    let (status, _) = post(
        &ops,
        &app,
        &format!("/api/ops/probes/{}/rules", probe["id"]),
        json!({"metric": "channel.*.queue_depth", "op": "above", "threshold": 2, "severity": "major"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    for i in 0..5 {
        let r = app
            .client
            .post(app.url("/fhir/Patient"))
            .header("content-type", "application/fhir+json")
            .body(
                json!({"resourceType": "Patient", "name": [{"family": "王", "given": [format!("队列{i}")]}]})
                    .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    let alerts = until(&ops, &app, "/api/ops/alerts?open=true", 15, |a| {
        a["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["metric"] == "channel.lis-feed.queue_depth" && a["incident"].is_number())
    })
    .await;
    let alert =
        alerts["alerts"].as_array().unwrap().iter().find(|a| a["metric"] == "channel.lis-feed.queue_depth").unwrap();
    assert!(alert["value"].as_f64().unwrap() > 2.0);
    let ticket = get(&ops, &app, &format!("/api/ops/incidents/{}", alert["incident"])).await;
    assert_eq!(ticket["channel"], "monitor");
    assert!(ticket["title"].as_str().unwrap().contains("channel.lis-feed.queue_depth"), "{ticket}");

    // An HL7 listener takes a good message and a broken one: the platform probe counts
    // both over the last minute, and the error.
    let lis = lianyi_interop::Inbound::new(app.fhir.clone(), "mllp:lis-east", "campus-east", "+08:00");
    let good = "MSH|^~\\&|LIS|EAST|LIANYI|EAST|20261206083000||ADT^A04|MON-1|P|2.5\rEVN|A04|20261206083000\rPID|1||MON-0001^^^EAST^MR||王^监控||19800101|M\r";
    let (ack, _) = lis.receive(good.as_bytes(), None).await;
    assert!(String::from_utf8_lossy(&ack).contains("MSA|AA"), "{}", String::from_utf8_lossy(&ack));
    let (ack, _) =
        lis.receive(b"MSH|^~\\&|LIS|EAST|LIANYI|EAST|20261206083000||ADT^A04|MON-2|P|2.5\rPID|1", None).await;
    assert!(!String::from_utf8_lossy(&ack).contains("MSA|AA"), "{}", String::from_utf8_lossy(&ack));
    let monitor = app.store.operations().monitor();
    let id = probe["id"].as_i64().unwrap();
    let mut seen = (None, None);
    for _ in 0..100 {
        let last = |m: &'static str| {
            let monitor = monitor.clone();
            async move { monitor.samples(id, m, 0, i64::MAX).await.unwrap().last().map(|(_, v)| *v) }
        };
        seen = (last("hl7.mllp:lis-east.messages_per_min").await, last("hl7.mllp:lis-east.errors_per_min").await);
        if seen == (Some(2.0), Some(1.0)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen, (Some(2.0), Some(1.0)), "messages and errors of the last minute");
}

#[tokio::test]
async fn samples_past_their_retention_are_rolled_up_into_five_minute_and_hourly_buckets_and_deleted() {
    let app = spawn_app().await;
    campuses(&app).await;
    let ops = app.client_with("lianyi:ops", "*", None).await;
    ci(&ops, &app, "SRV-RIS", "东院区 RIS 服务器", "host", "campus-east").await;
    let (_, probe) = post(
        &ops,
        &app,
        "/api/ops/probes",
        json!({"ci": "SRV-RIS", "kind": "tcp", "target": "10.1.0.30:443", "runner": "campus-east", "interval": 60}),
    )
    .await;
    let now = lianyi_security::Clock::now_ms(&lianyi_security::SystemClock::default());
    let hour = 3_600_000;
    let old = (now - 8 * 86_400_000) / hour * hour;
    // Ten runs a minute apart eight days ago (latency 10, 20 … 100 ms), two yesterday.
    let run = |at: i64, latency: f64| json!({"probe": probe["id"], "at": at, "outcome": {"readings": [{"metric": "up", "value": 1}, {"metric": "latency_ms", "value": latency}]}});
    let mut results: Vec<Value> = (0..10).map(|i| run(old + i * 60_000, 10.0 * (i + 1) as f64)).collect();
    results.push(run(now - 86_400_000, 5.0));
    results.push(run(now - 86_400_000 + 60_000, 7.0));
    let collector = app.client_with("lianyi:ops", "campus-east", None).await;
    let (status, v) = post(&collector, &app, "/api/ops/collector/results", json!({"results": results})).await;
    assert_eq!((status, v["stored"].as_i64()), (StatusCode::OK, Some(12)), "{v}");

    let desk = lianyi_ops::desk::Desk::new(app.fhir.clone()).unwrap();
    let monitor = lianyi_ops::monitor::Monitor::new(app.fhir.clone(), desk, lianyi_web::monitor_phrases("zh-CN"));
    assert_eq!(monitor.housekeep(now, 100).await.unwrap(), 20, "ten runs of two metrics rolled up");
    assert_eq!(monitor.housekeep(now, 100).await.unwrap(), 0, "and only once");
    let id = probe["id"].as_i64().unwrap();
    let tables = app.store.operations().monitor();
    let raw = tables.samples(id, "latency_ms", 0, i64::MAX).await.unwrap();
    assert_eq!(raw.iter().map(|(_, v)| *v).collect::<Vec<_>>(), [5.0, 7.0], "the last week stays raw");
    let five = tables.rollups(id, "latency_ms", 300_000, 0, i64::MAX).await.unwrap();
    let got: Vec<(i64, i64, f64, f64, f64)> =
        five.iter().map(|r| (r.bucket - old, r.n, r.min, r.mean, r.max)).collect();
    assert_eq!(got, [(0, 5, 10.0, 30.0, 50.0), (300_000, 5, 60.0, 80.0, 100.0)]);
    let hourly = tables.rollups(id, "latency_ms", 3_600_000, 0, i64::MAX).await.unwrap();
    assert_eq!((hourly.len(), hourly[0].n, hourly[0].min, hourly[0].mean, hourly[0].max), (1, 10, 10.0, 55.0, 100.0));
    let up = tables.rollups(id, "up", 3_600_000, 0, i64::MAX).await.unwrap();
    assert_eq!((up[0].n, up[0].mean), (10, 1.0));
    // The old runs went with their samples.
    let card = get(&ops, &app, &format!("/api/ops/probes/{id}?runs=100")).await;
    assert_eq!(card["runs"].as_array().unwrap().len(), 2);
}

/// `openssl s_server` (Debian's openssl) with a self-signed certificate that ends in
/// `days`; killed and its folder removed on drop.
struct TlsServer {
    child: std::process::Child,
    dir: std::path::PathBuf,
    port: u16,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tls_server(days: u32) -> TlsServer {
    use std::process::{Command, Stdio};
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("lianyi-api-tls-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-subj", "/CN=his.east.example", "-days", &days.to_string()])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(made.success());
    let child = Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept", &port.to_string(), "-cert"])
        .arg(dir.join("cert.pem"))
        .arg("-key")
        .arg(dir.join("key.pem"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server starts");
    TlsServer { child, dir, port }
}

#[tokio::test]
async fn an_https_server_whose_certificate_ends_in_ten_days_raises_a_warning_not_a_critical_alert() {
    let app = spawn_app().await;
    campuses(&app).await;
    let ops = app.client_with("lianyi:ops", "*", None).await;
    ci(&ops, &app, "SRV-HIS-WEB", "东院区 HIS 网页服务器", "host", "campus-east").await;
    let server = tls_server(10);
    let (status, probe) = post(
        &ops,
        &app,
        "/api/ops/probes",
        json!({"ci": "SRV-HIS-WEB", "kind": "tls", "target": format!("127.0.0.1:{}", server.port), "interval": 2, "timeout": 1500}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{probe}");
    let id = probe["id"].clone();
    // Its rules: the certificate warns under 30 days, is critical under 7.
    let rules: Vec<(String, String, f64)> = probe["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metric"].as_str().unwrap().into(),
                r["severity"].as_str().unwrap().into(),
                r["threshold"].as_f64().unwrap(),
            )
        })
        .collect();
    assert!(rules.contains(&("tls_days_left".into(), "warning".into(), 30.0)), "{rules:?}");
    let alerts = until(&ops, &app, "/api/ops/alerts?open=true", 20, |a| {
        a["alerts"].as_array().unwrap().iter().any(|a| a["probe"] == id && a["metric"] == "tls_days_left")
    })
    .await;
    let mine: Vec<&Value> = alerts["alerts"].as_array().unwrap().iter().filter(|a| a["probe"] == id).collect();
    assert_eq!(mine.len(), 1, "one alert, the warning: {mine:?}");
    assert_eq!(mine[0]["severity"], "warning");
    let days = mine[0]["value"].as_f64().unwrap();
    assert!((9.9..=10.01).contains(&days), "{days}");
    // The server answered: the probe is up, and the certificate's days are sampled.
    let card = get(&ops, &app, &format!("/api/ops/probes/{id}")).await;
    assert_eq!(card["lastUp"], json!(true), "{card}");
    drop(server);
}

#[tokio::test]
async fn an_engineer_adds_a_probe_and_a_rule_on_the_pages_and_sees_its_chart_on_the_ci() {
    use std::sync::Arc;

    use lianyi_security::ManualClock;

    use crate::pages::{between, logged_in};

    let clock: Arc<ManualClock> = ManualClock::new(1_800_000_000_000);
    let app = crate::helpers::spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    campuses(&app).await;
    let ops = app.client_with("lianyi:ops", "*", None).await;
    ci(&ops, &app, "SRV-LIS", "东院区 LIS 服务器", "host", "campus-east").await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (mut eng, csrf) = logged_in(&app, &clock, "it-eng", "it-engineer", "*", None).await;

    // The CI's page offers a probe; the form names a bad field in Chinese and keeps the rest.
    let lis = get(&ops, &app, "/api/ops/cis?q=SRV-LIS").await["items"][0]["id"].clone();
    let (_, _, page) = eng.get(&format!("/ops/cis/{lis}")).await;
    assert!(page.contains("id=\"ci-no-probes\""), "{page}");
    let (_, _, form) = eng.get("/ops/monitor/probes/new?ci=SRV-LIS").await;
    assert!(form.contains("value=\"SRV-LIS\""), "{form}");
    let fields = |interval: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("ci", "SRV-LIS".to_string()),
            ("kind", "tcp".to_string()),
            ("target", addr.clone()),
            ("interval", interval.to_string()),
            ("timeout", "500".to_string()),
            ("runner", String::new()),
        ]
    };
    let as_refs = |f: &Vec<(&'static str, String)>| f.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>();
    let bad = as_refs(&fields("0"));
    let bad: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, page) = eng.post("/ops/monitor/probes", &bad).await;
    assert_eq!(status, StatusCode::OK);
    let errors = between(&page, "id=\"form-errors\"", "</div>");
    assert!(errors.contains("间隔（秒）") && errors.contains("data-field=\"interval\""), "{errors}");
    assert!(page.contains(&format!("value=\"{addr}\"")), "the target is kept: {page}");
    let good = as_refs(&fields("60"));
    let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, to, _) = eng.post("/ops/monitor/probes", &good).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(to.starts_with("/ops/monitor/probes/"), "{to}");

    // Three runs a minute apart (by the test's clock): a line of latency on its page.
    for n in 1..=3 {
        let path = format!("/api/ops/probes/{}", to.rsplit('/').next().unwrap());
        until(&ops, &app, &path, 20, |p| p["runs"].as_array().unwrap().len() >= n).await;
        clock.advance(60_000);
    }
    let (_, _, page) = eng.get(&to).await;
    assert!(page.contains("data-state=\"up\""), "{page}");
    let chart = between(&page, "data-metric=\"latency_ms\"", "</figure>");
    assert!(chart.contains("<svg class=\"chart\"") && chart.contains("<polyline class=\"line\""), "{chart}");
    // A week: the same samples, in 5-minute buckets.
    let (_, _, week) = eng.get(&format!("{to}?range=7d")).await;
    assert!(week.contains("data-range=\"7d\" aria-current=\"page\""), "{week}");
    // (Three minutes fall in one or two buckets: a dot or a short line.)
    let chart = between(&week, "data-metric=\"latency_ms\"", "</figure>");
    assert!(chart.contains("class=\"dot\"") || chart.contains("class=\"line\""), "{chart}");

    // A rule: a bad threshold is named; a good one is listed.
    let rules = format!("{to}/rules");
    let (_, _, page) = eng
        .post(
            &rules,
            &[
                ("csrf", &csrf),
                ("metric", "latency_ms"),
                ("op", "above"),
                ("threshold", "fast"),
                ("severity", "warning"),
            ],
        )
        .await;
    assert!(between(&page, "id=\"form-errors\"", "</div>").contains("阈值"), "{page}");
    let (status, _, _) = eng
        .post(
            &rules,
            &[
                ("csrf", &csrf),
                ("metric", "latency_ms"),
                ("op", "above"),
                ("threshold", "250"),
                ("for_s", "180"),
                ("severity", "warning"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, page) = eng.get(&to).await;
    let table = between(&page, "id=\"mon-rule-table\"", "</table>");
    assert!(table.contains("latency_ms") && table.contains("高于 250") && table.contains("持续 180 秒"), "{table}");

    // The CI's page shows the probe with its day of latency; the list has it.
    let (_, _, page) = eng.get(&format!("/ops/cis/{lis}")).await;
    let section = between(&page, "id=\"monitoring\"", "</section>");
    assert!(section.contains("TCP 端口") && section.contains("<polyline class=\"line\""), "{section}");
    let (_, _, list) = eng.get("/ops/monitor/probes").await;
    assert!(between(&list, "id=\"mon-probes\"", "</table>").contains("东院区 LIS 服务器 (SRV-LIS)"), "{list}");
    drop(listener);
}

#[tokio::test]
async fn an_snmp_probes_community_and_keys_are_sealed_at_rest_and_opened_for_its_collector_only() {
    let app = spawn_app().await;
    campuses(&app).await;
    let ops = app.client_with("lianyi:ops", "*", None).await;
    ci(&ops, &app, "SW-E-CORE", "东院区核心交换机", "network", "campus-east").await;
    let (status, probe) = post(
        &ops,
        &app,
        "/api/ops/probes",
        json!({"ci": "SW-E-CORE", "kind": "snmp", "target": "10.1.0.1", "runner": "campus-east", "interval": 60,
               "snmp": {"version": "3", "user": "lianyi-mon", "auth": "sha256", "authKey": "east-auth-key-2026",
                        "privacy": "aes128", "privacyKey": "east-priv-key-2026"}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{probe}");
    // Neither the API's card nor the database holds the keys in clear.
    assert!(!probe.to_string().contains("east-auth-key-2026"), "{probe}");
    let stored = app.store.operations().monitor().probe(probe["id"].as_i64().unwrap()).await.unwrap().unwrap();
    assert!(stored.spec.contains("lianyi-mon"), "{}", stored.spec);
    for key in ["east-auth-key-2026", "east-priv-key-2026"] {
        assert!(!stored.spec.contains(key), "{key} in clear: {}", stored.spec);
    }
    // The east collector gets them to probe with; the west one gets nothing of it.
    let east = app.client_with("lianyi:ops", "campus-east", None).await;
    let mine = get(&east, &app, "/api/ops/collector/probes").await;
    let snmp = &mine["probes"][0]["spec"]["snmp"];
    assert_eq!(
        (snmp["auth_key"].as_str(), snmp["privacy_key"].as_str()),
        (Some("east-auth-key-2026"), Some("east-priv-key-2026")),
        "{mine}"
    );
    let west = app.client_with("lianyi:ops", "campus-west", None).await;
    let theirs = get(&west, &app, "/api/ops/collector/probes").await;
    assert!(theirs["probes"].as_array().unwrap().is_empty(), "{theirs}");
}

#[tokio::test]
async fn a_months_availability_counts_what_each_system_needs_against_its_target_and_the_topology_shows_it() {
    use std::sync::Arc;

    use lianyi_security::ManualClock;

    use crate::pages::logged_in;

    // 2027-01-15 08:00 UTC: the month before is December 2026.
    let now = 1_800_000_000_000;
    let clock: Arc<ManualClock> = ManualClock::new(now);
    let app = crate::helpers::spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    campuses(&app).await;
    let ops = app.client_with("lianyi:ops", "*", None).await;
    let csv = "code,name,class,campus,support_group,attr:availability,relations\r\n\
               SRV-HIS,东院区 HIS 数据库服务器,host,campus-east,system,,\r\n\
               HIS,东院区 HIS,business-system,campus-east,system,99.9,runs-on:SRV-HIS\r\n\
               PACS,东院区 PACS,business-system,campus-east,system,99.99,runs-on:SRV-HIS\r\n\
               LIS,东院区 LIS,business-system,campus-east,system,,\r\n";
    let r = ops.post(app.url("/api/ops/cis/import")).body(csv).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    let bad = "code,name,class,attr:availability\r\nHIS-2,HIS 2,business-system,100.5\r\n";
    let r = ops.post(app.url("/api/ops/cis/import")).body(bad).send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errors"][0]["field"], "attr:availability", "{v}");
    let (status, probe) = post(
        &ops,
        &app,
        "/api/ops/probes",
        json!({"ci": "SRV-HIS", "kind": "tcp", "target": "10.1.0.10:1521", "runner": "campus-east", "interval": 60}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{probe}");

    // On 2026-12-10 the server stops answering for half an hour, as its collector saw it.
    let collector = app.client_with("lianyi:ops", "campus-east", None).await;
    let t0 = lianyi_ops::monitor::month_span("2026-12").unwrap().0 + 9 * 86_400_000;
    let run = |at: i64, up: bool| {
        json!({"probe": probe["id"], "at": at, "outcome": {"readings": [{"metric": "up", "value": if up { 1 } else { 0 }}],
               "error": if up { Value::Null } else { json!("connection refused") }}})
    };
    let mut results = vec![run(t0 - 60_000, true)];
    results.extend((0..=30).map(|i| run(t0 + i * 60_000, false)));
    results.extend([run(t0 + 31 * 60_000, true), run(t0 + 32 * 60_000, true)]);
    let (status, v) = post(&collector, &app, "/api/ops/collector/results", json!({"results": results})).await;
    assert_eq!(status, StatusCode::OK, "{v}");

    let december = get(&ops, &app, "/api/ops/availability?month=2026-12").await;
    let system = |code: &str| december["systems"].as_array().unwrap().iter().find(|s| s["ci"] == code).unwrap().clone();
    let his = system("HIS");
    let down = his["downSeconds"].as_i64().unwrap();
    assert!((29 * 60..=32 * 60).contains(&down), "about half an hour: {his}");
    assert_eq!(
        (his["outages"].as_i64(), his["missed"].as_bool(), his["target"].as_str()),
        (Some(1), Some(false), Some("99.9"))
    );
    let pacs = system("PACS");
    assert_eq!(
        (pacs["downSeconds"].as_i64(), pacs["missed"].as_bool()),
        (Some(down), Some(true)),
        "99.99 % allows 4.5 minutes"
    );
    assert!(pacs["availability"].as_str().unwrap().starts_with("99.9"), "{pacs}");
    let lis = system("LIS");
    assert_eq!(
        (lis["availability"].as_str(), lis["outages"].as_i64(), lis["target"].is_null()),
        (Some("100"), Some(0), true)
    );
    assert_eq!(december["systems"][0]["ci"], "PACS", "the missed first: {december}");
    let january = get(&ops, &app, "/api/ops/availability").await;
    assert_eq!(january["month"], "2027-01");
    assert!(january["systems"].as_array().unwrap().iter().all(|s| s["availability"] == "100"), "{january}");
    let r = ops.get(app.url("/api/ops/availability?month=2026-13")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["errors"][0]["field"], "month");

    // The page, in Chinese.
    let (mut eng, _) = logged_in(&app, &clock, "it-eng", "it-engineer", "*", None).await;
    let (status, _, page) = eng.get("/ops/monitor/availability?month=2026-12").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("data-code=\"PACS\" data-verdict=\"missed\"") && page.contains("未达标"), "{page}");
    assert!(page.contains("data-code=\"HIS\" data-verdict=\"met\"") && page.contains("data-missed=\"1\""), "{page}");
    assert!(page.contains("data-code=\"LIS\" data-verdict=\"none\""), "{page}");

    // Down now: the topology of what HIS needs shows the server down and HIS affected;
    // LIS, which no probe watches, is grey.
    let (status, v) = post(
        &collector,
        &app,
        "/api/ops/collector/results",
        json!({"results": [run(now - 60_000, false), run(now, false)]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let id = |code: &'static str| {
        let ops = ops.clone();
        let app = &app;
        async move { get(&ops, app, &format!("/api/ops/cis?q={code}")).await["items"][0]["id"].as_i64().unwrap() }
    };
    let (his, server, lis) = (id("HIS").await, id("SRV-HIS").await, id("LIS").await);
    let (_, _, page) = eng.get(&format!("/ops/cis/{his}/impact?way=needs")).await;
    assert!(page.contains(&format!("data-ci=\"{server}\" data-standing=\"down\"")), "{page}");
    assert!(page.contains(&format!("data-ci=\"{his}\" data-standing=\"affected\"")), "{page}");
    assert!(page.contains("id=\"impact-legend\"") && page.contains("未监控"), "{page}");
    let (_, _, page) = eng.get(&format!("/ops/cis/{lis}/impact")).await;
    assert!(page.contains(&format!("data-ci=\"{lis}\" data-standing=\"unmonitored\"")), "{page}");
    let (_, _, wall) = eng.get("/ops/monitor").await;
    assert!(
        wall.contains(&format!("href=\"/ops/cis/{his}/impact?way=needs\"")),
        "the wall links each system's topology"
    );
}

#[tokio::test]
async fn a_backup_older_than_its_schedule_allows_raises_an_incident_on_the_backup_job_and_a_good_one_resolves_it() {
    use std::sync::Arc;

    use lianyi_security::ManualClock;

    use crate::pages::logged_in;

    let now = 1_800_000_000_000;
    let clock: Arc<ManualClock> = ManualClock::new(now);
    let app = crate::helpers::spawn_app_adjusted(1 << 20, Some(clock.clone()), |c| {
        c.backup_schedule = Some("0 2 * * *".into());
    })
    .await;
    let ops = app.client_with("lianyi:ops", "*", None).await;
    // The backup job is a CI with its probe, which has run: nothing is overdue yet.
    let cis = until(&ops, &app, "/api/ops/cis?q=LIANYI-BACKUP", 10, |v| v["items"][0]["code"] == "LIANYI-BACKUP").await;
    assert_eq!(cis["items"][0]["class"], "middleware");
    let probes = until(&ops, &app, "/api/ops/probes", 10, |v| {
        v["probes"].as_array().unwrap().iter().any(|p| p["kind"] == "backup" && p["lastUp"] == json!(true))
    })
    .await;
    let probe = probes["probes"].as_array().unwrap().iter().find(|p| p["kind"] == "backup").unwrap().clone();
    let path = format!("/api/ops/probes/{}", probe["id"]);
    assert!(get(&ops, &app, "/api/ops/alerts?open=true").await["alerts"].as_array().unwrap().is_empty());

    // A day and two hours on without a backup (nightly allows 25 hours): an incident.
    clock.advance(26 * 3_600_000);
    let ops = app.client_with("lianyi:ops", "*", None).await;
    let alerts = until(&ops, &app, "/api/ops/alerts?open=true", 10, |a| {
        a["alerts"].as_array().unwrap().iter().any(|a| a["metric"] == "backup.overdue" && a["incident"].is_number())
    })
    .await;
    let alert = &alerts["alerts"][0];
    assert_eq!(alert["severity"], "major");
    let ticket = get(&ops, &app, &format!("/api/ops/incidents/{}", alert["incident"])).await;
    assert!(ticket["title"].as_str().unwrap().contains("LIANYI-BACKUP"), "{ticket}");

    // A good backup, as lianyi backup records it, and the next check clears it.
    let at = now + 26 * 3_600_000 + 60_000;
    let id = app.store.backup_started("manual", "cli:it-eng", at - 30_000).await.unwrap();
    let run = lianyi_store::backup::BackupRun {
        id,
        finished_at: Some(at),
        status: "ok".into(),
        file: Some("/var/backups/lianyi/lianyi-20270116-102100.lyb".into()),
        bytes: Some(32_000_000),
        tables: Some(63),
        row_count: Some(139_298),
        ..Default::default()
    };
    app.store.backup_finished(&run).await.unwrap();
    clock.advance(301_000);
    until(&ops, &app, "/api/ops/alerts?open=true", 10, |a| a["alerts"].as_array().unwrap().is_empty()).await;
    until(&ops, &app, &format!("/api/ops/incidents/{}", alert["incident"]), 5, |t| t["status"] == "resolved").await;
    let card = get(&ops, &app, &path).await;
    assert!(card["runs"].as_array().unwrap().len() >= 3, "{card}");

    // The backups page lists the run and the schedule.
    let (mut eng, _) = logged_in(&app, &clock, "it-eng", "it-engineer", "*", None).await;
    let (status, _, page) = eng.get("/ops/backups").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("<code>0 2 * * *</code>") && page.contains(&format!("data-run=\"{id}\" data-status=\"ok\"")),
        "{page}"
    );
    assert!(
        page.contains("手动备份") && page.contains("lianyi-20270116-102100.lyb") && page.contains("63 张表"),
        "{page}"
    );
}
