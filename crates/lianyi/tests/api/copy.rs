//! `lianyi copy` through the real binary: the demo installation (every area's tables)
//! plus imported records (the Synthea fixture when present) moves from SQLite into
//! the suite's database (PostgreSQL with `LIANYI_TEST_PG_URL`) and back, each copy
//! checked against its source's manifest and audit chain; an interrupted copy
//! resumes, and nothing runs on the database until it is finished; a target that
//! holds anything is refused; the copy serves the same search results as the source.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use lianyi_store::Store;
use serde_json::Value;

use crate::process::serve;

const BIN: &str = env!("CARGO_BIN_EXE_lianyi");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).env("LIANYI_LOG", "warn").output().expect("run lianyi")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Runs the demo in `dir` until it has printed everything, then stops it; returns
/// what it printed.
fn demo(dir: &Path) -> String {
    let mut child = Command::new(BIN)
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--mllp-listen",
            "127.0.0.1:0",
            "--dicom-listen",
            "127.0.0.1:0",
            "--history-days",
            "2",
            "--data-dir",
        ])
        .arg(dir)
        .env("LIANYI_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the demo");
    let mut said = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        said.push_str(&line);
        said.push('\n');
        if line.contains("privacy.officer") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    said
}

/// The client id and secret the demo printed for `client`.
fn credentials(said: &str, client: &str) -> (String, String) {
    let after = said.split(client).nth(1).unwrap();
    let value = |key: &str| after.split(key).nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    (value("client_id"), value("client_secret"))
}

/// A search's total and the ids it found (a set: ties in the sort order may fall
/// differently on the two databases).
async fn found(client: &reqwest::Client, url: &str) -> (Option<u64>, BTreeSet<String>) {
    let r = client.get(url).send().await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    let v: Value = r.json().await.unwrap();
    let ids = match (v["entry"].as_array(), v["items"].as_array()) {
        (Some(entries), _) => {
            entries.iter().map(|e| e["resource"]["id"].as_str().unwrap_or_default().to_string()).collect()
        }
        (None, Some(items)) => items.iter().map(|i| i["id"].to_string()).collect(),
        _ => BTreeSet::new(),
    };
    (v["total"].as_u64(), ids)
}

#[tokio::test]
async fn copy_moves_an_installation_to_the_other_database_and_back_and_serves_the_same_searches() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let said = demo(&src);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/synthea-10-patients");
    if fixture.exists() {
        let out = run(&["import", fixture.to_str().unwrap(), "--data-dir", src.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let source_url = format!("sqlite://{}", src.join("lianyi.db").display());
    let (target_url, _target_dir) = lianyi_store::testing::fresh_database().await;

    // Interrupted after its first batch of resources: the target holds an
    // unfinished copy, which no command may use until the copy is run again.
    {
        let source = Store::connect(&source_url).await.unwrap();
        let target = Store::connect(&target_url).await.unwrap();
        let stop = tokio::sync::Notify::new();
        let told = |table: &str, rows: i64| {
            if table == "resources" && rows > 0 {
                stop.notify_one();
            }
        };
        let copying = target.copy_from(&source, &source_url, &told);
        tokio::select! {
            done = copying => panic!("the copy finished before it was stopped: {done:?}"),
            () = stop.notified() => {}
        }
        assert_eq!(target.unfinished_copy().await.unwrap().as_deref(), Some(source_url.as_str()));
        source.close().await;
        target.close().await;
    }
    let out = run(&["migrate", "--data-dir", src.to_str().unwrap(), "--database", &target_url]);
    assert!(!out.status.success() && text(&out).contains("unfinished copy"), "{}", text(&out));

    // Run again: it resumes, then checks every table and the audit chain.
    let out = run(&["copy", "--from", src.to_str().unwrap(), "--to", &target_url]);
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("(resumed)") && report.contains("copy passed"), "{report}");
    assert!(report.contains("audit chain intact") && !report.contains("MISMATCH"), "{report}");
    assert!(report.contains("tickets") && report.contains("knowledge-base articles"), "{report}");

    // A target that holds anything is refused.
    let out = run(&["copy", "--from", src.to_str().unwrap(), "--to", &target_url]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("a copy writes only into an empty database"), "{}", text(&out));

    // And back, into a SQLite file.
    let back = work.path().join("back");
    let out = run(&["copy", "--from", &target_url, "--to", back.to_str().unwrap()]);
    assert!(out.status.success() && text(&out).contains("copy passed"), "{}", text(&out));
    assert!(!text(&out).contains("(resumed)"), "{}", text(&out));

    // The source and its copy serve the same searches, the derived full-text ones too.
    let (mut old, old_base) = serve(&src, &source_url);
    let (mut new, new_base) = serve(&src, &target_url);
    let (admin, secret) = credentials(&said, "demo-admin");
    let (ops, ops_secret) = credentials(&said, "demo-ops");
    let clients = [
        (crate::helpers::authorized(&old_base, &admin, &secret).await, old_base.clone()),
        (crate::helpers::authorized(&new_base, &admin, &secret).await, new_base.clone()),
    ];
    let ops_clients = [
        (crate::helpers::authorized(&old_base, &ops, &ops_secret).await, old_base.clone()),
        (crate::helpers::authorized(&new_base, &ops, &ops_secret).await, new_base.clone()),
    ];
    let searches = [
        "/fhir/Patient?name=Zhang&_count=500",
        "/fhir/Patient?_summary=count",
        "/fhir/Patient?birthdate=ge1980-01-01&gender=female&_count=500",
        "/fhir/Observation?code=2823-3&_count=500",
        "/fhir/Observation?subject=Patient/pat-0001&_count=500",
        "/fhir/Encounter?patient=Patient/pat-0001&_count=500",
        "/fhir/Encounter?_summary=count",
        "/fhir/Condition?_summary=count",
        "/fhir/Slot?status=free&_summary=count",
        "/fhir/MedicationRequest?status=active&_count=500",
        "/fhir/Practitioner?_count=500",
    ];
    for path in searches {
        let (a, b) = (found(&clients[0].0, &format!("{}{path}", clients[0].1)).await, {
            found(&clients[1].0, &format!("{}{path}", clients[1].1)).await
        });
        assert_eq!(a, b, "{path}");
        assert!(a.0.unwrap_or(0) > 0 || !a.1.is_empty(), "{path} finds something");
    }
    for path in ["/api/ops/kb?q=打印", "/api/ops/kb?q=登录慢", "/api/ops/kb?q=PACS", "/api/ops/incidents?q=打印机"]
    {
        let a = found(&ops_clients[0].0, &format!("{}{path}", ops_clients[0].1)).await;
        let b = found(&ops_clients[1].0, &format!("{}{path}", ops_clients[1].1)).await;
        assert_eq!(a, b, "{path}");
        if path.starts_with("/api/ops/kb") {
            assert!(!a.1.is_empty(), "{path} finds an article");
        }
    }
    for child in [&mut old, &mut new] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
