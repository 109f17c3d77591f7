//! Tests that need the real `lianyi` binary: kill -9 durability, import then serve.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

const BIN: &str = env!("CARGO_BIN_EXE_lianyi");

/// Starts `lianyi serve` on port 0 and returns the child and its base URL.
pub(crate) fn serve(data_dir: &Path, database_url: &str) -> (Child, String) {
    serve_args(data_dir, database_url, &[])
}

/// [`serve`] with more options.
pub(crate) fn serve_args(data_dir: &Path, database_url: &str, more: &[&str]) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(["--database", database_url])
        .args(more)
        .env("LIANYI_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn lianyi");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url =
        line.split_whitespace().find(|w| w.starts_with("http://")).expect("serving line").trim_end_matches("/fhir");
    (child, url.to_string())
}

/// Registers an all-access client through the CLI and returns (id, secret).
pub(crate) fn cli_client(data_dir: &Path, database_url: &str) -> (String, String) {
    let out = Command::new(BIN)
        .args(["client", "add", "process-test", "--scope", "system/*.cruds", "--data-dir"])
        .arg(data_dir)
        .args(["--database", database_url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (v["client_id"].as_str().unwrap().to_string(), v["client_secret"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn acknowledged_create_survives_kill_9() {
    // A fresh database (SQLite file or PostgreSQL) that the child process will own.
    let (url, dir) = lianyi_store::testing::fresh_database().await;
    let data_dir = dir.clone().unwrap_or_else(std::env::temp_dir);
    let (id, secret) = cli_client(&data_dir, &url);
    let (mut child, base) = serve(&data_dir, &url);
    let client = crate::helpers::authorized(&base, &id, &secret).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let r = client
            .post(format!("{base}/fhir/Patient"))
            .header("content-type", "application/fhir+json")
            .body(json!({"resourceType": "Patient", "name": [{"family": format!("Durable{i}")}]}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let v: Value = r.json().await.unwrap();
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    child.kill().unwrap(); // SIGKILL, immediately after the last 201
    child.wait().unwrap();

    let (mut child, base) = serve(&data_dir, &url);
    let client = crate::helpers::authorized(&base, &id, &secret).await;
    for id in &ids {
        let r = client.get(format!("{base}/fhir/Patient/{id}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{id} lost after kill -9");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["meta"]["versionId"], "1");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn import_then_serve_the_same_data() {
    let (url, dir) = lianyi_store::testing::fresh_database().await;
    let work = tempfile::tempdir().unwrap();
    let data_dir = dir.clone().unwrap_or_else(|| work.path().to_path_buf());
    let ndjson = work.path().join("in");
    std::fs::create_dir_all(&ndjson).unwrap();
    std::fs::write(
        ndjson.join("Patient.ndjson"),
        "{\"resourceType\":\"Patient\",\"id\":\"imp-1\",\"name\":[{\"family\":\"Imported\"}]}\n\
         {\"resourceType\":\"Patient\",\"id\":\"imp-2\",\"birthDate\":\"not-a-date\"}\n",
    )
    .unwrap();
    std::fs::write(
        ndjson.join("Encounter.ndjson"),
        "{\"resourceType\":\"Encounter\",\"id\":\"imp-e1\",\"status\":\"finished\",\"class\":{\"code\":\"AMB\"},\"subject\":{\"reference\":\"Patient/imp-1\"}}\n",
    )
    .unwrap();
    std::fs::write(ndjson.join("log.ndjson"), "{\"eventId\":\"kickoff\"}\n").unwrap();
    let out = Command::new(BIN)
        .arg("import")
        .arg(&ndjson)
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--database", &url])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "one line was rejected: {stdout}");
    assert!(stdout.contains("Imported 2 resources"), "{stdout}");
    assert!(stdout.contains("Patient.ndjson:2: Patient.birthDate"), "{stdout}");
    assert!(stdout.contains("Skipped log.ndjson"), "{stdout}");

    let (id, secret) = cli_client(&data_dir, &url);
    let (mut child, base) = serve(&data_dir, &url);
    let client = crate::helpers::authorized(&base, &id, &secret).await;
    let b: Value =
        client.get(format!("{base}/fhir/Encounter?patient=Patient/imp-1")).send().await.unwrap().json().await.unwrap();
    assert_eq!(b["total"], 1);
    assert_eq!(b["entry"][0]["resource"]["id"], "imp-e1");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The Synthea fixture (outside the repository; skipped when absent): all 7,160
/// resources load and a patient's encounters are exactly those referencing them.
#[tokio::test]
async fn synthea_fixture_imports_completely() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/synthea-10-patients");
    if !fixture.exists() {
        eprintln!("skipping: {} not present", fixture.display());
        return;
    }
    let app = spawn_app().await;
    let out = Command::new(BIN).arg("import").arg(&fixture).args(["--database", &app.database_url]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("Imported 7160 resources"), "{stdout}");

    let encounters = std::fs::read_to_string(fixture.join("Encounter.000.ndjson")).unwrap();
    let patient_id = {
        let first: Value = serde_json::from_str(encounters.lines().next().unwrap()).unwrap();
        first["subject"]["reference"].as_str().unwrap().trim_start_matches("Patient/").to_string()
    };
    let mut expected: Vec<String> = encounters
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["subject"]["reference"] == format!("Patient/{patient_id}"))
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    expected.sort();
    let mut got = app.search_ids(&format!("/fhir/Encounter?patient=Patient/{patient_id}&_count=1000")).await;
    got.sort();
    assert!(!expected.is_empty());
    assert_eq!(got, expected);
    assert_eq!(app.total("/fhir/Encounter?_count=0").await, 1215);
}

#[tokio::test]
async fn user_cli_adds_lists_and_disables() {
    let (url, dir) = lianyi_store::testing::fresh_database().await;
    let work = tempfile::tempdir().unwrap();
    let data_dir = dir.clone().unwrap_or_else(|| work.path().to_path_buf());
    let run = |args: &[&str]| {
        Command::new(BIN).args(args).arg("--data-dir").arg(&data_dir).args(["--database", &url]).output().unwrap()
    };
    let out =
        run(&["user", "add", "dr.chen", "--name", "陈医生", "--role", "doctor@campus-east", "--role", "manager@*"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("initial password: Ly-"), "{text}");
    let out = run(&["user", "add", "dr.bad", "--name", "x", "--role", "wizard@campus-east"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown role 'wizard'"));
    let list = String::from_utf8_lossy(&run(&["user", "list"]).stdout).to_string();
    assert!(list.contains("dr.chen") && list.contains("doctor@campus-east manager@*"), "{list}");
    assert!(run(&["user", "disable", "dr.chen"]).status.success());
    let list = String::from_utf8_lossy(&run(&["user", "list"]).stdout).to_string();
    assert!(list.lines().any(|l| l.starts_with("dr.chen") && l.contains("disabled")), "{list}");
    assert!(!run(&["user", "reset-mfa", "nobody"]).status.success());
}

/// Starts `lianyi serve` with an MLLP listener on port 0; returns the child, the HTTP
/// base URL and the MLLP address.
pub(crate) fn serve_with_mllp(data_dir: &Path, database_url: &str) -> (Child, String, String) {
    serve_with_mllp_config(data_dir, database_url, None)
}

/// [`serve_with_mllp`] with a config file.
fn serve_with_mllp_config(data_dir: &Path, database_url: &str, config: Option<&Path>) -> (Child, String, String) {
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--mllp-listen", "127.0.0.1:0", "--mllp-campus", "campus-east"])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--database", database_url]);
    if let Some(c) = config {
        command.arg("--config").arg(c);
    }
    let mut child = command
        .env("LIANYI_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn lianyi");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (mut first, mut second) = (String::new(), String::new());
    out.read_line(&mut first).unwrap();
    out.read_line(&mut second).unwrap();
    let base = first.split_whitespace().find(|w| w.starts_with("http://")).unwrap().trim_end_matches("/fhir");
    let mllp = second.split_whitespace().nth(6).unwrap_or_default().to_string();
    assert!(second.starts_with("HL7 v2 (MLLP) is listening on"), "{second}");
    (child, base.to_string(), mllp)
}

/// Sends one message in an MLLP frame and reads the framed answer.
pub(crate) fn mllp_roundtrip(sock: &mut std::net::TcpStream, message: &[u8]) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut frame = vec![0x0b];
    frame.extend_from_slice(message);
    frame.extend_from_slice(&[0x1c, 0x0d]);
    sock.write_all(&frame)?;
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(&[0x1c, 0x0d]) {
        sock.read_exact(&mut byte)?;
        got.push(byte[0]);
    }
    assert_eq!(got[0], 0x0b);
    Ok(String::from_utf8_lossy(&got[1..got.len() - 2]).to_string())
}

/// Sends each message in one MLLP frame on one connection; returns the ACKs.
pub(crate) fn mllp_exchange(addr: &str, messages: &[Vec<u8>]) -> Vec<String> {
    let mut sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    messages.iter().map(|m| mllp_roundtrip(&mut sock, m).unwrap()).collect()
}

pub(crate) fn msa(ack: &str) -> (String, String) {
    let m = lianyi_hl7::Message::parse(ack).unwrap();
    let s = m.segment("MSA").unwrap();
    (s.first(1), s.first(2))
}

#[tokio::test]
async fn mllp_messages_are_acknowledged_after_they_are_stored() {
    let (url, dir) = lianyi_store::testing::fresh_database().await;
    let work = tempfile::tempdir().unwrap();
    let data_dir = dir.clone().unwrap_or_else(|| work.path().to_path_buf());
    let (id, secret) = cli_client(&data_dir, &url);
    let (mut child, base, mllp) = serve_with_mllp(&data_dir, &url);
    let hl7 = |f: &str| std::fs::read(format!("{}/../../tests/hl7/{f}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let bad = b"MSH|^~\\&|LIS|EAST|LIANYI|GROUP|20261122093000||ORU^R01|BAD1|P|2.5.1\rPID|1||^^^EAST^MR\rOBR|1||F9|2823-3^K^LN\rOBX|1|NM|2823-3^K^LN||7.1|mmol/L\r".to_vec();
    let unsupported = b"MSH|^~\\&|PAS|EAST|LIANYI|GROUP|20261122||MDM^T02|S1|P|2.5\rTXA|1\r".to_vec();
    let acks = mllp_exchange(&mllp, &[hl7("adt_a01.hl7"), hl7("oru_r01.hl7"), hl7("oru_r01.hl7"), bad, unsupported]);
    assert_eq!(msa(&acks[0]), ("AA".into(), "ADT0001".into()));
    assert_eq!(msa(&acks[1]), ("AA".into(), "ORU0001".into()));
    assert_eq!(acks[2], acks[1], "a resend gets the original ACK");
    assert_eq!(msa(&acks[3]), ("AE".into(), "BAD1".into()));
    assert!(acks[3].contains("\rERR|PID^1^3^101"), "{}", acks[3]);
    assert_eq!(msa(&acks[4]).0, "AR");
    assert!(acks[4].contains("|200^Unsupported message type^HL70357|"), "{}", acks[4]);

    let client = crate::helpers::authorized(&base, &id, &secret).await;
    let get = |q: &str| client.get(format!("{base}/fhir/{q}")).send();
    let b: Value =
        get("Observation?code-value-quantity=http://loinc.org%7C2823-3$gt6").await.unwrap().json().await.unwrap();
    assert_eq!(b["total"], 1, "the resend was not applied again, the AE message not at all");
    let o = &b["entry"][0]["resource"];
    assert_eq!(o["valueQuantity"]["value"], 6.8);
    assert_eq!(o["meta"]["versionId"], "1");
    let b: Value =
        get("Patient?identifier=urn:lianyi:sid:mrn:campus-east%7CE100234").await.unwrap().json().await.unwrap();
    assert_eq!(b["total"], 1);
    let b: Value = get("Observation?code-value-quantity=2823-3$gt7").await.unwrap().json().await.unwrap();
    assert_eq!(b["total"], 0);

    // The log: every message with its outcome; payloads encrypted at rest.
    let store = lianyi_store::Store::connect(&url).await.unwrap();
    let log = store.recent_messages(None, 10).await.unwrap();
    let statuses: Vec<&str> = log.iter().rev().map(|m| m.status.as_str()).collect();
    assert_eq!(statuses, ["accepted", "accepted", "duplicate", "error", "rejected"]);
    assert!(log.iter().all(|m| m.payload.starts_with("enc:")));
    assert_eq!(log[4].summary.as_deref(), Some("ADT^A01: patient E100234, visit V0001 in-progress"));
    store.close().await;
    child.kill().unwrap();
    child.wait().unwrap();
}

/// One sender on its own connection: sends `messages` in order until every one is
/// answered or the connection breaks; returns the indexes answered AA.
fn send_until_broken(addr: &str, messages: &[(usize, Vec<u8>)], acked: &std::sync::atomic::AtomicUsize) -> Vec<usize> {
    let mut done = Vec::new();
    let Ok(mut sock) = std::net::TcpStream::connect(addr) else { return done };
    sock.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    for (i, m) in messages {
        let Ok(ack) = mllp_roundtrip(&mut sock, m) else { break };
        assert_eq!(msa(&ack).0, "AA");
        done.push(*i);
        acked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    done
}

#[tokio::test]
async fn mllp_kill_9_loses_no_acknowledged_message_and_retries_do_not_duplicate() {
    kill_9_run(false).await;
}

/// The same with AA from the journal: what was acknowledged but not yet applied when
/// the server died is applied after the restart.
#[tokio::test]
async fn mllp_kill_9_with_journaled_acks_applies_every_acknowledged_message_after_restart() {
    kill_9_run(true).await;
}

async fn kill_9_run(journaled: bool) {
    let senders = 4;
    let per_sender: usize =
        std::env::var("LIANYI_KILL9_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000) / senders;
    let (url, dir) = lianyi_store::testing::fresh_database().await;
    let work = tempfile::tempdir().unwrap();
    let data_dir = dir.clone().unwrap_or_else(|| work.path().to_path_buf());
    let (id, secret) = cli_client(&data_dir, &url);
    let config = work.path().join("journaled.toml");
    std::fs::write(&config, "mllp_ack = \"journaled\"\n").unwrap();
    let config = journaled.then_some(config.as_path());
    let (mut child, _, mllp) = serve_with_mllp_config(&data_dir, &url, config);
    let message = |s: usize, i: usize| {
        format!(
            "MSH|^~\\&|LIS{s}|EAST|LIANYI|GROUP|20261122100000||ORU^R01|S{s}-{i}|P|2.5.1\r\
             PID|1||K{s}{:05}^^^EAST^MR\r\
             OBR|1||S{s}F{i}|2823-3^Potassium^LN|||202611221000\r\
             OBX|1|NM|2823-3^Potassium^LN||{}.{}|mmol/L^mmol/L^UCUM|3.5-5.3|N|||F\r",
            i % 50,
            3 + i % 3,
            i % 10
        )
        .into_bytes()
    };
    let all: Vec<Vec<(usize, Vec<u8>)>> =
        (0..senders).map(|s| (0..per_sender).map(|i| (i, message(s, i))).collect()).collect();
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));

    // Several senders stream; the server is killed (SIGKILL) part-way.
    let handles: Vec<_> = all
        .iter()
        .cloned()
        .map(|msgs| {
            let (addr, acked) = (mllp.clone(), acked.clone());
            std::thread::spawn(move || send_until_broken(&addr, &msgs, &acked))
        })
        .collect();
    let target = senders * per_sender / 3;
    while acked.load(std::sync::atomic::Ordering::Relaxed) < target {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let first: Vec<Vec<usize>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let acked_before: usize = first.iter().map(Vec::len).sum();
    assert!(acked_before >= target && acked_before < senders * per_sender, "killed part-way: {acked_before}");

    // Restart; every sender retries what was not acknowledged.
    let (mut child, base, mllp) = serve_with_mllp_config(&data_dir, &url, config);
    for (s, done) in first.iter().enumerate() {
        let rest: Vec<(usize, Vec<u8>)> = all[s].iter().filter(|(i, _)| !done.contains(i)).cloned().collect();
        let again = send_until_broken(&mllp, &rest, &acked);
        assert_eq!(again.len(), rest.len(), "sender {s}: every retry answered AA");
    }

    // Every acknowledged message is there, each once.
    let client = crate::helpers::authorized(&base, &id, &secret).await;
    let count = |q: String| {
        let client = client.clone();
        async move {
            let b: Value = client.get(q).send().await.unwrap().json().await.unwrap();
            b["total"].as_i64().unwrap()
        }
    };
    if journaled {
        // Acknowledged from the journal: applied moments later.
        let started = std::time::Instant::now();
        while count(format!("{base}/fhir/DiagnosticReport?_summary=count")).await < (senders * per_sender) as i64 {
            assert!(started.elapsed() < std::time::Duration::from_secs(600), "the queue was not applied");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    assert_eq!(count(format!("{base}/fhir/Observation?_summary=count")).await, (senders * per_sender) as i64);
    assert_eq!(count(format!("{base}/fhir/DiagnosticReport?_summary=count")).await, (senders * per_sender) as i64);
    assert_eq!(count(format!("{base}/fhir/Patient?_summary=count")).await, (senders * 50.min(per_sender)) as i64);
    for (s, done) in first.iter().enumerate() {
        for i in done.iter().step_by(97) {
            let n = count(format!("{base}/fhir/Observation?identifier=urn:lianyi:sid:order:lis{s}%7CS{s}F{i}-1")).await;
            assert_eq!(n, 1, "acknowledged S{s}-{i} present once after the restart");
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Logs a CLI-made account in through the pages on the system clock: the initial
/// password, a new one, the authenticator enrolment.
pub(crate) async fn cli_user_signed_in(base: &str, user: &str, initial: &str) -> (crate::pages::Browser, String) {
    use crate::pages::{Browser, between, csrf};
    use lianyi_security::totp;
    let mut b = Browser::new(base, "zh-CN");
    let (_, _, html) = b.get("/login").await;
    let (_, to, _) = b.post("/login", &[("csrf", &csrf(&html)), ("username", user), ("password", initial)]).await;
    assert_eq!(to, "/login/password", "{user}");
    let (_, _, html) = b.get("/login/password").await;
    let new = "a long new passphrase 2027";
    b.post("/login/password", &[("csrf", &csrf(&html)), ("current", initial), ("new", new), ("confirm", new)]).await;
    let (_, _, html) = b.get("/login/enrol").await;
    let secret = totp::base32_decode(between(&html, "id=\"totp-secret\">", "<")).unwrap();
    let now = lianyi_security::Clock::now_ms(&lianyi_security::SystemClock::default());
    let (_, to, _) = b.post("/login/enrol", &[("csrf", &csrf(&html)), ("code", &totp::code_at(&secret, now))]).await;
    assert_eq!(to, "/", "{user} enrolled");
    let (_, _, home) = b.get("/").await;
    (b, csrf(&home))
}

/// `kill -9` in the middle of a stream of payments from eight cashier desks: after a
/// restart every payment row has its Invoice and every Invoice its payment row, every
/// billed charge is on a paid invoice, every acknowledged payment (a receipt shown)
/// is there, and the invoice numbers still have no gap. Runs on SQLite, and on
/// PostgreSQL when `LIANYI_TEST_PG_URL` is set.
#[tokio::test]
async fn kill_9_during_a_payment_stream_leaves_no_charge_paid_without_its_invoice() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const PATIENTS: usize = 400;
    let (url, dir) = lianyi_store::testing::fresh_database().await;
    let work = tempfile::tempdir().unwrap();
    let data_dir = dir.clone().unwrap_or_else(|| work.path().to_path_buf());
    let run = |args: &[&str]| {
        Command::new(BIN).args(args).arg("--data-dir").arg(&data_dir).args(["--database", &url]).output().unwrap()
    };
    let out = run(&["client", "add", "kill-test", "--scope", "system/*.cruds", "--campus", "campus-east"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (id, secret) = (v["client_id"].as_str().unwrap().to_string(), v["client_secret"].as_str().unwrap().to_string());
    let out = run(&["user", "add", "cashier.kill", "--name", "收费员", "--role", "cashier@campus-east"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let initial = text.split("initial password: ").nth(1).unwrap().split_whitespace().next().unwrap().to_string();

    let (mut child, base) = serve(&data_dir, &url);
    let client = crate::helpers::authorized(&base, &id, &secret).await;
    let mut entries = Vec::new();
    for p in 0..PATIENTS {
        entries.push(json!({"resource": {"resourceType": "Patient", "id": format!("k-{p}"), "name": [{"text": format!("断电{p}")}]},
                            "request": {"method": "PUT", "url": format!("Patient/k-{p}")}}));
        for c in 0..2 {
            let cid = format!("k-{p}-{c}");
            entries.push(json!({"resource": {"resourceType": "ChargeItem", "id": cid, "status": "billable",
                "code": {"text": "项目"}, "subject": {"reference": format!("Patient/k-{p}")}, "quantity": {"value": 1},
                "extension": [{"url": lianyi_billing::charges::AMOUNT_URL, "valueInteger": 100 + p as i64},
                              {"url": lianyi_billing::charges::CATEGORY_URL, "valueCode": "lab"}]},
                "request": {"method": "PUT", "url": format!("ChargeItem/{cid}")}}));
        }
    }
    for chunk in entries.chunks(400) {
        let r = client
            .post(format!("{base}/fhir"))
            .header("content-type", "application/fhir+json")
            .body(json!({"resourceType": "Bundle", "type": "transaction", "entry": chunk}).to_string())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
    let (desk, token) = cli_user_signed_in(&base, "cashier.kill", &initial).await;

    // Eight desks pay patients one after another; the server dies part-way.
    let acked = Arc::new(std::sync::Mutex::new(Vec::<i64>::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for d in 0..8 {
        let (b, token, acked, count) = (desk.clone(), token.clone(), acked.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            for p in (d..PATIENTS).step_by(8) {
                let form = [
                    ("csrf", token.as_str()),
                    ("patient", &format!("k-{p}")),
                    ("charge", &format!("k-{p}-0")),
                    ("charge", &format!("k-{p}-1")),
                    ("method", "card"),
                    ("tendered", ""),
                    ("reference", &format!("POS{p:06}")),
                ];
                let r = b.http.post(format!("{}/billing/cashier", b.base())).header("cookie", b.cookie_header());
                let Ok(r) = r.form(&form).send().await else { return };
                let to = r.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or_default().to_string();
                if let Some(no) = to.strip_prefix("/billing/receipts/campus-east/") {
                    acked.lock().unwrap().push(no.split('?').next().unwrap().parse().unwrap());
                    count.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    let started = std::time::Instant::now();
    while count.load(Ordering::SeqCst) < 60 {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "payments too slow to test");
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    child.kill().unwrap(); // SIGKILL with payments in flight
    child.wait().unwrap();
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 60 && acked.len() < PATIENTS, "killed part-way: {}", acked.len());

    let (mut child, base) = serve(&data_dir, &url);
    let client = crate::helpers::authorized(&base, &id, &secret).await;
    let store = lianyi_store::Store::connect(&url).await.unwrap();
    let ops = store.operations();
    let numbers = ops.invoice_numbers("campus-east").await.unwrap();
    assert_eq!(numbers, (1..=numbers.len() as i64).collect::<Vec<_>>(), "gap-free after the kill");
    eprintln!("{} payments acknowledged before the kill, {} committed", acked.len(), numbers.len());
    for no in &acked {
        assert!(numbers.contains(no), "acknowledged invoice {no} lost");
    }
    // Every payment row has its Invoice, whose charges are billed.
    let mut on_invoices = std::collections::HashSet::new();
    for no in &numbers {
        let p = ops.payment("campus-east", *no).await.unwrap().unwrap();
        let r = client.get(format!("{base}/fhir/Invoice/{}", p.invoice_id)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "payment {no} without its invoice");
        let inv: Value = r.json().await.unwrap();
        for item in inv["lineItem"].as_array().unwrap() {
            on_invoices.insert(item["chargeItemReference"]["reference"].as_str().unwrap().to_string());
        }
    }
    // Every billed charge is on one of them; every Invoice has its payment row.
    for p in 0..PATIENTS {
        for c in 0..2 {
            let r = client.get(format!("{base}/fhir/ChargeItem/k-{p}-{c}")).send().await.unwrap();
            let v: Value = r.json().await.unwrap();
            let on = on_invoices.contains(&format!("ChargeItem/k-{p}-{c}"));
            assert_eq!(v["status"] == "billed", on, "k-{p}-{c}: {} but on a paid invoice: {on}", v["status"]);
        }
    }
    let r = client.get(format!("{base}/fhir/Invoice?_summary=count")).send().await.unwrap();
    let total: Value = r.json().await.unwrap();
    assert_eq!(total["total"].as_u64(), Some(numbers.len() as u64), "no invoice without its payment");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `lianyi serve` on a chosen port (the collector's server address stays the same
/// across a restart).
fn serve_on(data_dir: &Path, database_url: &str, port: u16) -> Child {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data_dir)
        .args(["--database", database_url])
        .env("LIANYI_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn lianyi");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    child
}

/// A client with `scope` registered through the CLI: (id, secret).
pub(crate) fn cli_client_scoped(data_dir: &Path, database_url: &str, name: &str, scope: &str) -> (String, String) {
    let both = cli_client_with(data_dir, database_url, name, scope, None);
    let (id, secret) = both.split_once(':').unwrap();
    (id.to_string(), secret.to_string())
}

pub(crate) fn cli_client_with(
    data_dir: &Path,
    database_url: &str,
    name: &str,
    scope: &str,
    campus: Option<&str>,
) -> String {
    let mut cmd = Command::new(BIN);
    cmd.args(["client", "add", name, "--scope", scope, "--data-dir"]).arg(data_dir).args(["--database", database_url]);
    if let Some(c) = campus {
        cmd.args(["--campus", c]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    format!("{}:{}", v["client_id"].as_str().unwrap(), v["client_secret"].as_str().unwrap())
}

async fn bearer(base: &str, token: &str) -> reqwest::Client {
    let (id, secret) = token.split_once(':').unwrap();
    let v: Value = reqwest::Client::new()
        .post(format!("{base}/oauth/token"))
        .form(&[("grant_type", "client_credentials"), ("client_id", id), ("client_secret", secret)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut h = reqwest::header::HeaderMap::new();
    h.insert("authorization", format!("Bearer {}", v["access_token"].as_str().unwrap()).parse().unwrap());
    reqwest::Client::builder().default_headers(h).build().unwrap()
}

fn collector(base: &str, token: &str, spool: &Path) -> Child {
    Command::new(BIN)
        .args(["collector", "--server", base, "--token", token, "--refresh", "1", "--spool"])
        .arg(spool)
        .env("LIANYI_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the collector")
}

/// The runs the server holds for a probe, oldest first (instants in ms).
async fn runs_of(ops: &reqwest::Client, base: &str, probe: &Value) -> Vec<i64> {
    let card: Value =
        ops.get(format!("{base}/api/ops/probes/{probe}?runs=10000")).send().await.unwrap().json().await.unwrap();
    let mut at: Vec<i64> = card["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert!(r["source"].as_str().unwrap().starts_with("collector:"), "{r}");
            lianyi_fhir::datetime::parse_range(r["at"].as_str().unwrap()).unwrap().low
        })
        .collect();
    at.sort();
    at
}

#[tokio::test]
async fn a_collector_killed_and_a_server_stopped_lose_no_result_and_count_none_twice() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("lianyi.db").display());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let admin = cli_client_with(dir.path(), &url, "setup", "system/Organization.cruds", Some("campus-west"));
    let ops_token = cli_client_with(dir.path(), &url, "it-desk", "lianyi:ops", None);
    let west = cli_client_with(dir.path(), &url, "west-collector", "lianyi:ops", Some("campus-west"));
    let mut server = serve_on(dir.path(), &url, port);
    let fhir = bearer(&base, &admin).await;
    let r = fhir
        .put(format!("{base}/fhir/Organization/campus-west"))
        .header("content-type", "application/fhir+json")
        .body(json!({"resourceType": "Organization", "id": "campus-west", "name": "西院区"}).to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let ops = bearer(&base, &ops_token).await;
    let r = ops
        .post(format!("{base}/api/ops/cis"))
        .json(&json!({"code": "SW-W-ACC", "name": "西院区接入交换机", "class": "network", "campus": "campus-west"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    // The device: a port on this machine, probed every second by the west collector.
    let device = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let probe: Value = ops
        .post(format!("{base}/api/ops/probes"))
        .json(&json!({"ci": "SW-W-ACC", "kind": "tcp", "target": device.local_addr().unwrap().to_string(),
                      "runner": "campus-west", "interval": 1, "timeout": 500}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(probe["id"].is_number(), "{probe}");
    let probe = probe["id"].clone();
    let spool = dir.path().join("spool");
    let mut c = collector(&base, &west, &spool);
    let wait_runs = |n: usize| {
        let (ops, base, probe) = (ops.clone(), base.clone(), probe.clone());
        async move {
            for _ in 0..200 {
                if runs_of(&ops, &base, &probe).await.len() >= n {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("fewer than {n} runs arrived");
        }
    };
    wait_runs(3).await;
    // The collector is killed and restarted with its spool.
    c.kill().unwrap();
    c.wait().unwrap();
    let mut c = collector(&base, &west, &spool);
    let before = runs_of(&ops, &base, &probe).await.len();
    wait_runs(before + 2).await;
    // The central server stops for a while (6 s here; LIANYI_COLLECTOR_OUTAGE_S=60 for
    // the full minute, a soak run kept out of CI); the collector probes into its spool.
    server.kill().unwrap();
    server.wait().unwrap();
    let stopped = lianyi_now();
    let outage = std::env::var("LIANYI_COLLECTOR_OUTAGE_S").ok().and_then(|s| s.parse().ok()).unwrap_or(6);
    tokio::time::sleep(std::time::Duration::from_secs(outage)).await;
    // What waits in the spool now is exactly what the server has not stored.
    let spooled: Vec<i64> = std::fs::read_to_string(spool.join("results.ndjson"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["at"].as_i64().unwrap())
        .collect();
    assert!(spooled.len() >= 3, "the collector spooled {spooled:?} while the server was down");
    let restarted = lianyi_now();
    let mut server = serve_on(dir.path(), &url, port);
    let ops = bearer(&base, &ops_token).await;
    // The backlog arrives, then the collector stops for good and its spool drains.
    for _ in 0..100 {
        if runs_of(&ops, &base, &probe).await.iter().any(|&at| at > restarted + 1_000) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    c.kill().unwrap();
    c.wait().unwrap();
    let runs = runs_of(&ops, &base, &probe).await;
    // Every result spooled while the server was down arrived: nothing lost.
    for at in &spooled {
        assert!(runs.contains(at), "the spooled run at {at} never arrived");
    }
    let during = runs.iter().filter(|&&at| at > stopped && at < restarted).count();
    assert!(during >= 3, "runs while the server was down: {during}");
    // Nothing twice: each instant once (the spool was resent in part at least once:
    // the kill left results the server had stored).
    let mut unique = runs.clone();
    unique.dedup();
    assert_eq!(unique.len(), runs.len());
    server.kill().unwrap();
    server.wait().unwrap();
    drop(device);
}

fn lianyi_now() -> i64 {
    lianyi_security::Clock::now_ms(&lianyi_security::SystemClock::default())
}

/// A server told to stop (SIGTERM) ends the live feeds its open pages listen to
/// (`/manage/messages/stream`, held up to 5 minutes otherwise), so its graceful
/// shutdown does not wait for them.
#[tokio::test]
async fn a_stopping_server_ends_the_open_pages_live_feeds() {
    let (url, dir) = lianyi_store::testing::fresh_database().await;
    let work = tempfile::tempdir().unwrap();
    let data_dir = dir.clone().unwrap_or_else(|| work.path().to_path_buf());
    let out = Command::new(BIN)
        .args(["user", "add", "dr.feed", "--name", "动态医生", "--role", "doctor@campus-east"])
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--database", &url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let initial = text.split("initial password: ").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let (mut child, base) = serve(&data_dir, &url);
    let (b, _) = cli_user_signed_in(&base, "dr.feed", &initial).await;
    let mut feed =
        b.http.get(format!("{base}/manage/messages/stream")).header("cookie", b.cookie_header()).send().await.unwrap();
    let first = feed.chunk().await.unwrap().expect("the unread count");
    assert!(String::from_utf8_lossy(&first).contains("event: unread"));
    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    // The feed ends (no more chunks) and the server exits: nothing holds it for the
    // feed's five minutes.
    while let Some(_keep_alive) = feed.chunk().await.unwrap_or(None) {}
    let mut exited = None;
    for _ in 0..600 {
        exited = child.try_wait().unwrap();
        if exited.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(exited.is_some_and(|s| s.success()), "the server stopped: {exited:?}");
}
