//! Outbound channels against real receivers on local ports: a webhook receiver that
//! was down while changes were made (and the server killed), FHIR Subscription
//! rest-hooks with criteria, dead letters and replay, and an HL7 v2 feed over MLLP.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::helpers::spawn_app;

const BIN: &str = env!("CARGO_BIN_EXE_lianyi");

/// One HTTP request as a receiver saw it.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) headers: HashMap<String, String>,
    pub(crate) body: String,
}

/// A minimal HTTP/1.1 receiver (keep-alive, Content-Length bodies) that records every
/// request and answers with the status `answer` holds at the time.
pub(crate) fn http_receiver(listener: TcpListener, answer: Arc<Mutex<u16>>) -> Arc<Mutex<Vec<Received>>> {
    let log: Arc<Mutex<Vec<Received>>> = Arc::default();
    let seen = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let (seen, answer) = (seen.clone(), answer.clone());
            tokio::spawn(async move {
                let mut buf: Vec<u8> = Vec::new();
                loop {
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i;
                        }
                        let mut chunk = [0u8; 8192];
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let mut lines = head.split("\r\n");
                    let mut first = lines.next().unwrap_or_default().split(' ');
                    let (method, path) =
                        (first.next().unwrap_or_default().to_string(), first.next().unwrap_or_default().to_string());
                    let headers: HashMap<String, String> = lines
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                        .collect();
                    let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                    while buf.len() < head_end + 4 + len {
                        let mut chunk = [0u8; 8192];
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = String::from_utf8_lossy(&buf[head_end + 4..head_end + 4 + len]).to_string();
                    buf.drain(..head_end + 4 + len);
                    let status = *answer.lock().unwrap();
                    seen.lock().unwrap().push(Received { method, path, headers, body });
                    let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\n\r\nok");
                    if sock.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    log
}

/// HMAC-SHA-256 (RFC 2104), hex: what a webhook receiver computes to check the signature.
pub(crate) fn hmac_sha256_hex(key: &[u8], data: &[u8]) -> String {
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).chain(data.iter().copied()).collect();
    let inner_hash = sha2::Sha256::digest(&inner);
    let outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).chain(inner_hash.iter().copied()).collect();
    hex::encode(sha2::Sha256::digest(&outer))
}

fn cli(data_dir: &Path, database_url: &str, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--database", database_url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "lianyi {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Sends a FHIR write as an API client with the integration scope word (only the
/// integration role may write Subscriptions).
async fn as_integration(
    app: &crate::helpers::TestApp,
    method: reqwest::Method,
    path: &str,
    body: &Value,
) -> reqwest::Response {
    let client = app.client_with("system/*.cruds lianyi:integration", "*", None).await;
    client
        .request(method, app.url(path))
        .header("content-type", "application/fhir+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

pub(crate) async fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn receiver_down_1000_changes_and_a_kill_9_then_every_event_arrives_in_order_once() {
    let (url, dir) = lianyi_store::testing::fresh_database().await;
    let work = tempfile::tempdir().unwrap();
    let data_dir = dir.clone().unwrap_or_else(|| work.path().to_path_buf());
    // The receiver's port, reserved now and not listened on until the end.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("http://127.0.0.1:{port}/hook");
    let added = cli(
        &data_dir,
        &url,
        &[
            "channel",
            "add",
            "audit-feed",
            "--kind",
            "webhook",
            "--endpoint",
            &endpoint,
            "--criteria",
            "Patient,Observation",
            "--backoff-ms",
            "50",
            "--max-backoff-ms",
            "400",
            "--max-attempts",
            "1000",
        ],
    );
    let secret = added.lines().last().unwrap().trim().to_string();
    assert_eq!(secret.len(), 64, "{added}");
    let (id, client_secret) = crate::process::cli_client(&data_dir, &url);
    let (mut child, base) = crate::process::serve(&data_dir, &url);
    let client = crate::helpers::authorized(&base, &id, &client_secret).await;

    // 20 patients × (1 create + 24 updates + 25 observations) = 1,000 changes, from 4
    // writers at once; each patient's changes are made in a known order.
    let mut expected: Vec<(String, String, String)> = Vec::new();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move {
                let mut made = Vec::new();
                for p in 0..5 {
                    let r = client
                        .post(format!("{base}/fhir/Patient"))
                        .header("content-type", "application/fhir+json")
                        .body(json!({"resourceType": "Patient", "name": [{"family": format!("Feed{w}-{p}")}]}).to_string())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 201);
                    let pid = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
                    made.push(("Patient".to_string(), pid.clone(), "1".to_string()));
                    for i in 0..49 {
                        if i % 2 == 0 {
                            let body = json!({"resourceType": "Patient", "id": pid, "name": [{"family": format!("Feed{w}-{p}"), "given": [format!("v{i}")]}]});
                            let r = client
                                .put(format!("{base}/fhir/Patient/{pid}"))
                                .header("content-type", "application/fhir+json")
                                .body(body.to_string())
                                .send()
                                .await
                                .unwrap();
                            assert_eq!(r.status(), 200);
                            let v: Value = r.json().await.unwrap();
                            made.push(("Patient".into(), pid.clone(), v["meta"]["versionId"].as_str().unwrap().to_string()));
                        } else {
                            let body = json!({"resourceType": "Observation", "status": "final",
                                "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}]},
                                "subject": {"reference": format!("Patient/{pid}")},
                                "valueQuantity": {"value": i, "unit": "mmol/L"}});
                            let r = client
                                .post(format!("{base}/fhir/Observation"))
                                .header("content-type", "application/fhir+json")
                                .body(body.to_string())
                                .send()
                                .await
                                .unwrap();
                            assert_eq!(r.status(), 201);
                            let v: Value = r.json().await.unwrap();
                            made.push(("Observation".into(), v["id"].as_str().unwrap().to_string(), "1".into()));
                        }
                    }
                }
                made
            })
        })
        .collect();
    for w in writers {
        expected.extend(w.await.unwrap());
    }
    assert_eq!(expected.len(), 1000);

    // The server dies with everything queued and nothing delivered (the receiver is down).
    child.kill().unwrap();
    child.wait().unwrap();
    let (mut child, base) = crate::process::serve(&data_dir, &url);

    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let log = http_receiver(listener, Arc::new(Mutex::new(200)));
    let applied = |log: &Arc<Mutex<Vec<Received>>>| {
        let keys: HashSet<String> =
            log.lock().unwrap().iter().filter_map(|r| r.headers.get("idempotency-key").cloned()).collect();
        keys.len()
    };
    wait_for("1,000 deliveries", 180, || applied(&log) >= 1000).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Apply as a receiver would: once per idempotency key, in arrival order.
    let received = log.lock().unwrap().clone();
    let mut keys = HashSet::new();
    let mut last_seq_of_patient: HashMap<String, i64> = HashMap::new();
    let mut got: Vec<(String, String, String)> = Vec::new();
    for r in &received {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/hook");
        assert_eq!(r.headers["content-type"], "application/json");
        let sig = r.headers["x-lianyi-signature"].clone();
        assert_eq!(
            sig,
            format!("sha256={}", hmac_sha256_hex(secret.as_bytes(), r.body.as_bytes())),
            "signed with the channel secret"
        );
        let key = r.headers["idempotency-key"].clone();
        if !keys.insert(key.clone()) {
            continue; // a redelivery: already applied
        }
        let e: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(e["id"], key.as_str());
        let patient = e["patient"].as_str().unwrap().to_string();
        let seq = e["seq"].as_i64().unwrap();
        if let Some(prev) = last_seq_of_patient.insert(patient.clone(), seq) {
            assert!(seq > prev, "{patient}: event {seq} arrived after {prev}");
        }
        let (rtype, rid, version) = (
            e["resourceType"].as_str().unwrap().to_string(),
            e["resourceId"].as_str().unwrap().to_string(),
            e["versionId"].as_str().unwrap().to_string(),
        );
        assert_eq!(e["resource"]["meta"]["versionId"], version.as_str(), "the event carries that version");
        got.push((rtype, rid, version));
    }
    let mut want = expected.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want, "every change delivered, each applied once");
    assert_eq!(last_seq_of_patient.len(), 20);

    let listed = cli(&data_dir, &url, &["channel", "list"]);
    let row = listed.lines().find(|l| l.starts_with("audit-feed")).unwrap().split_whitespace().collect::<Vec<_>>();
    assert_eq!(&row[1..6], &["webhook", "active", "0", "0", "1000"], "{listed}");
    let _ = base;
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn subscription_rest_hook_delivers_matching_resources_and_dead_letters_replay() {
    let app = spawn_app().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = Arc::new(Mutex::new(200u16));
    let log = http_receiver(listener, answer.clone());

    let subscription = json!({"resourceType": "Subscription", "status": "requested", "reason": "potassium results to the ICU board",
        "criteria": "Observation?code=http://loinc.org|2823-3",
        "channel": {"type": "rest-hook", "endpoint": format!("http://{addr}/fhir"), "payload": "application/fhir+json",
                    "header": ["Authorization: Bearer icu-board"]}});
    // A client without the integration role may not point the server at an endpoint.
    assert_eq!(app.post("/fhir/Subscription", &subscription).await.status(), 403);
    let sub = as_integration(&app, reqwest::Method::POST, "/fhir/Subscription", &subscription).await;
    assert_eq!(sub.status(), 201);
    let sub_id = sub.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let status = || async {
        let v: Value = app.get(&format!("/fhir/Subscription/{sub_id}")).await.json().await.unwrap();
        v["status"].as_str().unwrap().to_string()
    };
    let until = Instant::now() + Duration::from_secs(10);
    while status().await != "active" {
        assert!(Instant::now() < until, "the server activates a requested subscription");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let patient = app.create(&json!({"resourceType": "Patient", "name": [{"family": "Sub"}]})).await;
    let obs = |code: &str, v: f64| {
        json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": format!("Patient/{patient}")},
            "valueQuantity": {"value": v, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"}})
    };
    let k1 = app.create(&obs("2823-3", 6.9)).await;
    let _sodium = app.create(&obs("2951-2", 140.0)).await;
    let k2 = app.create(&obs("2823-3", 3.1)).await;
    wait_for("two notifications", 20, || log.lock().unwrap().len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = log.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "only the potassium results match: {got:?}");
    assert_eq!(got[0].method, "PUT");
    assert_eq!(got[0].path, format!("/fhir/Observation/{k1}"));
    assert_eq!(got[1].path, format!("/fhir/Observation/{k2}"));
    assert_eq!(got[0].headers["content-type"], "application/fhir+json");
    assert_eq!(got[0].headers["authorization"], "Bearer icu-board");
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["valueQuantity"]["value"], 6.9);

    // The receiver refuses (400): no retry helps, so the delivery is a dead letter at
    // once; after the receiver is fixed, replaying the dead letters delivers it.
    *answer.lock().unwrap() = 400;
    let k3 = app.create(&obs("2823-3", 7.2)).await;
    let outbound = lianyi_interop::Outbound::new(app.fhir.clone(), "campus-east");
    let it = lianyi_security::Caller::task(lianyi_security::SystemTask::Operator("test operator".into()));
    let channel = format!("sub-{sub_id}");
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let dead = app.fhir.operations().dead_letters(&channel).await.unwrap();
        if dead.len() == 1 {
            let (m, payload, ack) = outbound.message(&it, dead[0]).await.unwrap();
            assert_eq!(m.status, "dead");
            assert!(m.error.as_deref().unwrap().contains("HTTP 400"), "{m:?}");
            assert!(payload.starts_with(&format!("PUT Observation/{k3}\n")));
            assert!(ack.unwrap().starts_with("HTTP 400"));
            break;
        }
        assert!(Instant::now() < until, "the refused delivery becomes a dead letter");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    *answer.lock().unwrap() = 200;
    assert_eq!(outbound.replay_dead(&it, &channel).await.unwrap(), 1);
    wait_for("the replayed delivery", 20, || {
        log.lock().unwrap().iter().filter(|r| r.path.ends_with(&k3) && r.method == "PUT").count() == 2
    })
    .await;
    // The receiver has answered; the dispatcher records the delivery a moment later.
    let until = Instant::now() + Duration::from_secs(10);
    let s = loop {
        let stats = app.fhir.operations().queue_stats().await.unwrap();
        let s = stats.into_iter().find(|s| s.channel == channel).unwrap();
        if s.pending == 0 || Instant::now() > until {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((s.pending, s.dead, s.delivered), (0, 0, 3));

    // Someone without the integration role may not read the message log or replay.
    let nurse =
        lianyi_security::Caller::task(lianyi_security::SystemTask::Operator("not it".into())).without_capabilities();
    assert!(matches!(outbound.replay_dead(&nurse, &channel).await, Err(lianyi_interop::OutboundError::Forbidden(_))));

    // Turned off: no more notifications.
    let mut v: Value = app.get(&format!("/fhir/Subscription/{sub_id}")).await.json().await.unwrap();
    v["status"] = json!("off");
    assert_eq!(
        as_integration(&app, reqwest::Method::PUT, &format!("/fhir/Subscription/{sub_id}"), &v).await.status(),
        200
    );
    let until = Instant::now() + Duration::from_secs(10);
    while app.fhir.operations().channel(&channel).await.unwrap().unwrap().enabled {
        assert!(Instant::now() < until, "the channel of an 'off' subscription stops");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = log.lock().unwrap().len();
    let while_off = app.create(&obs("2823-3", 4.0)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(log.lock().unwrap().len(), before);

    // Switched on again: what changed while it was off is not sent, new changes are.
    let mut v: Value = app.get(&format!("/fhir/Subscription/{sub_id}")).await.json().await.unwrap();
    v["status"] = json!("requested");
    assert_eq!(
        as_integration(&app, reqwest::Method::PUT, &format!("/fhir/Subscription/{sub_id}"), &v).await.status(),
        200
    );
    let until = Instant::now() + Duration::from_secs(10);
    while !app.fhir.operations().channel(&channel).await.unwrap().unwrap().enabled {
        assert!(Instant::now() < until, "the channel resumes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = app.create(&obs("2823-3", 4.1)).await;
    wait_for("the next notification", 20, || log.lock().unwrap().len() > before).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let paths: Vec<String> = log.lock().unwrap()[before..].iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, [format!("/fhir/Observation/{after}")], "not /fhir/Observation/{while_off}");
}

#[tokio::test]
async fn unsupported_subscription_channel_is_set_to_error_with_the_reason() {
    let app = spawn_app().await;
    let sub = as_integration(
        &app,
        reqwest::Method::POST,
        "/fhir/Subscription",
        &json!({"resourceType": "Subscription", "status": "requested", "reason": "x", "criteria": "Observation",
            "channel": {"type": "email", "endpoint": "mailto:ward@example.org"}}),
    )
    .await;
    let id = sub.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let v: Value = app.get(&format!("/fhir/Subscription/{id}")).await.json().await.unwrap();
        if v["status"] == "error" {
            assert!(v["error"].as_str().unwrap().contains("channel.type 'email'"), "{v}");
            break;
        }
        assert!(Instant::now() < until, "an unsupported channel is refused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An MLLP receiver that answers AA, or AE for messages containing `refuse`, and
/// records the messages.
pub(crate) fn mllp_receiver(listener: TcpListener, refuse: &'static str) -> Arc<Mutex<Vec<String>>> {
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut chunk = [0u8; 8192];
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    while let Some(end) = buf.windows(2).position(|w| w == [0x1c, 0x0d]) {
                        let text = String::from_utf8_lossy(&buf[1..end]).to_string();
                        buf.drain(..end + 2);
                        let m = lianyi_hl7::Message::parse(&text).unwrap();
                        let id = m.control_id();
                        let code = if text.contains(refuse) { "AE" } else { "AA" };
                        seen.lock().unwrap().push(text);
                        let ack = format!(
                            "MSH|^~\\&|LIS|LAB|LIANYI||20261122||ACK^R01|A{id}|P|2.5.1\rMSA|{code}|{id}|checked\r"
                        );
                        let mut frame = vec![0x0b];
                        frame.extend_from_slice(ack.as_bytes());
                        frame.extend_from_slice(&[0x1c, 0x0d]);
                        if sock.write_all(&frame).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    log
}

#[tokio::test]
async fn hl7_feed_sends_adt_and_oru_over_mllp_and_an_ae_is_a_dead_letter() {
    let app = spawn_app().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let outbound = lianyi_interop::Outbound::new(app.fhir.clone(), "campus-east");
    let it = lianyi_security::Caller::task(lianyi_security::SystemTask::Operator("test operator".into()));
    let spec = |kind: &str, criteria: &str| lianyi_interop::ChannelSpec {
        id: "lab-feed".into(),
        name: "LIS".into(),
        kind: kind.into(),
        endpoint: addr.to_string(),
        criteria: criteria.into(),
        campus: None,
        headers: None,
        max_attempts: 5,
        backoff_ms: 50,
        max_backoff_ms: 200,
    };
    // Bad input is refused with the field and the rule.
    let err = outbound.add_channel(&it, spec("mllp", "Procedure")).await.unwrap_err().to_string();
    assert!(err.starts_with("criteria: Procedure has no HL7 v2 rendering"), "{err}");
    let err = outbound.add_channel(&it, spec("fax", "Patient")).await.unwrap_err().to_string();
    assert!(err.starts_with("kind: 'fax' is not a channel kind"), "{err}");
    let (ch, secret) = outbound.add_channel(&it, spec("mllp", "Patient,Observation")).await.unwrap();
    assert!(secret.is_none());

    let log = mllp_receiver(listener, "REFUSEME");
    let patient = app
        .create(&json!({"resourceType": "Patient", "identifier": [{"system": "urn:lianyi:sid:mrn:campus-east", "value": "E-77"}],
            "name": [{"family": "李", "given": ["雷"]}], "gender": "female", "birthDate": "1990-05-06"}))
        .await;
    let obs = app
        .create(&json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3", "display": "Potassium"}]},
            "subject": {"reference": format!("Patient/{patient}")}, "effectiveDateTime": "2026-11-22T09:00:00+08:00",
            "valueQuantity": {"value": 6.1, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"},
            "referenceRange": [{"low": {"value": 3.5}, "high": {"value": 5.3}}],
            "interpretation": [{"coding": [{"code": "H"}]}]}))
        .await;
    wait_for("ADT and ORU", 20, || log.lock().unwrap().len() >= 2).await;
    let got = log.lock().unwrap().clone();
    let adt = lianyi_hl7::Message::parse(&got[0]).unwrap();
    assert_eq!((adt.message_code().as_str(), adt.trigger().as_str()), ("ADT", "A04"));
    let pid = adt.segment("PID").unwrap();
    assert_eq!(
        (pid.component(3, 1).as_str(), pid.component(5, 1).as_str(), pid.first(8).as_str()),
        ("E-77", "李", "F")
    );
    let oru = lianyi_hl7::Message::parse(&got[1]).unwrap();
    assert_eq!(oru.message_code(), "ORU");
    assert_eq!(oru.segment("PID").unwrap().component(3, 1), "E-77");
    let obx = oru.segment("OBX").unwrap();
    assert_eq!((obx.first(5).as_str(), obx.component(6, 1).as_str(), obx.first(8).as_str()), ("6.1", "mmol/L", "H"));
    assert_eq!(oru.segment("OBR").unwrap().component(3, 1), obs);

    // The log shows both delivered with the receiver's ACK (the receiver logs a message
    // before the platform has read its ACK and marked it: give it the moment).
    let filter =
        lianyi_store::messages::MessageFilter { channel: Some(ch.id.clone()), limit: 10, ..Default::default() };
    let until = Instant::now() + Duration::from_secs(20);
    let msgs = loop {
        let msgs = outbound.messages(&it, &filter).await.unwrap();
        if msgs.iter().all(|m| m.status == "delivered") || Instant::now() > until {
            break msgs;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(msgs.iter().map(|m| m.status.as_str()).collect::<Vec<_>>(), ["delivered", "delivered"]);
    let (_, payload, ack) = outbound.message(&it, msgs[0].id).await.unwrap();
    assert!(payload.starts_with("MSH|^~\\&|LIANYI|campus-east|LIS||"), "{payload}");
    assert!(ack.unwrap().contains("MSA|AA|"));

    // An AE (the receiver refuses the content) is a dead letter at once, and the
    // feed goes on with the next change.
    app.create(&json!({"resourceType": "Patient", "name": [{"family": "REFUSEME"}]})).await;
    app.create(&json!({"resourceType": "Patient", "name": [{"family": "Next"}]})).await;
    wait_for("two more messages", 20, || log.lock().unwrap().len() >= 4).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let msgs = outbound.messages(&it, &filter).await.unwrap();
    let statuses: Vec<&str> = msgs.iter().map(|m| m.status.as_str()).collect();
    assert_eq!(statuses, ["delivered", "dead", "delivered", "delivered"]);
    assert_eq!(msgs[1].attempts, 1, "no retry after AE");
    assert_eq!(msgs[1].error.as_deref(), Some("the receiver answered AE: checked"));
    assert_eq!(log.lock().unwrap().len(), 4);
}
