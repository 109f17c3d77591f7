//! Backups through the real binary, on the suite's database (SQLite, or PostgreSQL
//! with `LIANYI_TEST_PG_URL`): FHIR writes and HL7 traffic, then `lianyi backup` while
//! writes go on, `backup verify`, `restore` into an empty target that then serves
//! what was acknowledged before the backup, `audit verify` on it; a flipped byte and
//! another key are refused, each with its reason, and a restore never overwrites; a
//! restore drill times each step; a backup killed mid-way leaves nothing that passes
//! for a backup, and the next one clears its debris and records it as interrupted.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::process::{cli_client, cli_client_with, mllp_exchange, msa, serve, serve_with_mllp};

const BIN: &str = env!("CARGO_BIN_EXE_lianyi");

fn lianyi(args: &[&str], data_dir: &Path, url: &str, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args).arg("--data-dir").arg(data_dir).args(["--database", url]).env("LIANYI_LOG", "warn");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run lianyi")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The files in `dir`, but for the folder's lock.
fn listed(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".lianyi-backup.lock")
        .collect();
    names.sort();
    names
}

/// Creates a patient; its id once acknowledged (none when the server refused or failed).
pub(crate) async fn create_patient(client: &reqwest::Client, base: &str, family: &str) -> Option<String> {
    let r = client
        .post(format!("{base}/fhir/Patient"))
        .header("content-type", "application/fhir+json")
        .body(json!({"resourceType": "Patient", "name": [{"family": family}]}).to_string())
        .send()
        .await
        .ok()?;
    if r.status() != StatusCode::CREATED {
        return None;
    }
    r.json::<Value>().await.ok()?["id"].as_str().map(str::to_string)
}

#[tokio::test]
async fn a_backup_made_while_writes_go_on_verifies_restores_into_an_empty_target_and_refuses_damage() {
    let (url, dir) = lianyi_store::testing::fresh_database().await;
    let work = tempfile::tempdir().unwrap();
    let data_dir = dir.clone().unwrap_or_else(|| work.path().join("data"));
    std::fs::create_dir_all(&data_dir).unwrap();
    let (id, secret) = cli_client(&data_dir, &url);
    let (mut child, base, mllp) = serve_with_mllp(&data_dir, &url);
    let client = crate::helpers::authorized(&base, &id, &secret).await;

    // Records from the API and from HL7, and reads (each audited).
    let mut before = Vec::new();
    for i in 0..20 {
        before.push(create_patient(&client, &base, &format!("Backup{i}")).await.unwrap());
    }
    let hl7 = |f: &str| std::fs::read(format!("{}/../../tests/hl7/{f}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let acks = mllp_exchange(&mllp, &[hl7("adt_a01.hl7"), hl7("oru_r01.hl7")]);
    assert!(acks.iter().all(|a| msa(a).0 == "AA"), "{acks:?}");
    for id in before.iter().take(5) {
        assert_eq!(client.get(format!("{base}/fhir/Patient/{id}")).send().await.unwrap().status(), StatusCode::OK);
    }
    // Three CT instances in the imaging folder (STOW-RS by an East Campus client).
    let east = cli_client_with(&data_dir, &url, "east-pacs", "system/*.cruds", Some("campus-east"));
    let (east_id, east_secret) = east.split_once(':').unwrap();
    let pacs = crate::helpers::authorized(&base, east_id, east_secret).await;
    let r = pacs
        .post(format!("{base}/fhir/Patient"))
        .header("content-type", "application/fhir+json")
        .body(
            json!({"resourceType": "Patient", "name": [{"family": "Imaged"}],
                   "identifier": [{"system": "urn:lianyi:sid:mrn:campus-east", "value": "E-BACKUP-1"}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    let (study, series) = ("1.2.826.0.1.3680043.10.1001.1", "1.2.826.0.1.3680043.10.1001.1.1");
    let instances: Vec<(String, Vec<u8>)> = (1..=3)
        .map(|n| {
            let sop = format!("{series}.{n}");
            let data_set = crate::dicom::slice(study, series, &sop, "E-BACKUP-1", "ACC-BK-1", n, 16);
            (sop, data_set)
        })
        .collect();
    crate::dicom::stow_at(&pacs, &format!("{base}/dicomweb/studies"), &instances).await;
    let stored = |root: &Path, sop: &str| root.join("imaging").join(study).join(series).join(format!("{sop}.dcm"));
    let originals: Vec<Vec<u8>> =
        instances.iter().map(|(sop, _)| std::fs::read(stored(&data_dir, sop)).unwrap()).collect();

    // Writes go on while the backup runs.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (client, base, stop) = (client.clone(), base.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                if create_patient(&client, &base, &format!("During{n}")).await.is_some() {
                    n += 1;
                }
            }
            n
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let to = work.path().join("backups");
    let (d, u, t) = (data_dir.clone(), url.clone(), to.clone());
    let out = tokio::task::spawn_blocking(move || lianyi(&["backup", "--to", t.to_str().unwrap()], &d, &u, &[]))
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let during = writer.await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let file = PathBuf::from(stdout.lines().last().unwrap().trim());
    assert!(file.exists() && file.extension().is_some_and(|e| e == "lyb"), "{stdout}");
    assert_eq!(listed(&to), [file.file_name().unwrap().to_string_lossy()], "no partial file or scratch left behind");
    assert!(during > 0, "writes went on during the backup");
    let key = std::fs::read_to_string(data_dir.join("backup.key")).unwrap();
    assert!(!std::fs::read(&file).unwrap().windows(8).any(|w| w == b"Backup19"), "the file is encrypted");

    // Verify: every table against the manifest, and the audit chain.
    let out = lianyi(&["backup", "verify", file.to_str().unwrap()], &data_dir, &url, &[]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("backup verified") && said.contains("audit chain intact"), "{said}");
    assert!(said.contains("3 instance files"), "the imaging folder's files against the index: {said}");
    assert!(!said.contains("MISMATCH"), "{said}");
    child.kill().unwrap();
    child.wait().unwrap();

    // Restore into an empty target, with nothing but the backup key.
    let (url2, dir2) = lianyi_store::testing::fresh_database().await;
    let data2 = dir2.clone().unwrap_or_else(|| work.path().join("restored"));
    std::fs::create_dir_all(&data2).unwrap();
    if url2.starts_with("sqlite") {
        std::fs::remove_file(url2.trim_start_matches("sqlite://")).ok();
    }
    let restore = |env: &[(&str, &str)]| lianyi(&["restore", file.to_str().unwrap()], &data2, &url2, env);
    // Not over instance files already in the target's imaging folder.
    std::fs::create_dir_all(data2.join("imaging")).unwrap();
    std::fs::write(data2.join("imaging").join("stray.dcm"), b"DICM").unwrap();
    let out = restore(&[("LIANYI_BACKUP_KEY", key.trim())]);
    assert!(!out.status.success() && text(&out).contains("only into an empty folder"), "{}", text(&out));
    if let Some(f) = url2.strip_prefix("sqlite://") {
        assert!(!Path::new(f).exists(), "nothing written");
    }
    std::fs::remove_dir_all(data2.join("imaging")).unwrap();
    let out = restore(&[("LIANYI_BACKUP_KEY", key.trim())]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("restored a ") && said.contains("audit chain intact"), "{said}");
    assert!(said.contains("3 instance files") && !said.contains("MISMATCH"), "{said}");
    for ((sop, _), original) in instances.iter().zip(&originals) {
        assert_eq!(&std::fs::read(stored(&data2, sop)).unwrap(), original, "{sop} restored byte for byte");
    }
    let out = lianyi(&["audit", "verify"], &data2, &url2, &[]);
    assert!(out.status.success() && text(&out).contains("audit chain intact"), "{}", text(&out));
    // What was acknowledged before the backup began is there, readable with the
    // restored keys and clients.
    let (mut restored, base2) = serve(&data2, &url2);
    let client2 = crate::helpers::authorized(&base2, &id, &secret).await;
    for id in &before {
        let r = client2.get(format!("{base2}/fhir/Patient/{id}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{id} is in the backup");
    }
    let b: Value =
        client2.get(format!("{base2}/fhir/Patient?family=Zhang")).send().await.unwrap().json().await.unwrap();
    assert!(b["total"].as_i64().unwrap_or(0) >= 1, "the HL7 admission's patient: {b}");
    // The restored installation serves the restored instance files.
    let pacs2 = crate::helpers::authorized(&base2, east_id, east_secret).await;
    let (sop, _) = &instances[1];
    let r = pacs2
        .get(format!("{base2}/dicomweb/studies/{study}/series/{series}/instances/{sop}"))
        .header("accept", "multipart/related; type=\"application/dicom\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.bytes().await.unwrap();
    assert!(body.windows(originals[1].len()).any(|w| w == &originals[1][..]), "the instance as stored");
    restored.kill().unwrap();
    restored.wait().unwrap();
    // Never over an existing installation.
    let out = restore(&[("LIANYI_BACKUP_KEY", key.trim())]);
    assert!(!out.status.success() && text(&out).contains("only into an empty"), "{}", text(&out));

    // A flipped byte is found and named; another key is told apart from damage.
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    let damaged = work.path().join("damaged.lyb");
    std::fs::write(&damaged, &bytes).unwrap();
    let out = lianyi(&["backup", "verify", damaged.to_str().unwrap()], &data_dir, &url, &[]);
    let said = text(&out);
    // (`database.zst` on SQLite: the file compressed; `database`: pg_dump's archive.)
    let part = if url.starts_with("sqlite") { "database.zst" } else { "database" };
    assert!(!out.status.success() && said.contains(&format!("damaged: part {part}, chunk")), "{said}");
    // Restoring it stops at the damage and leaves no half-written database.
    let (url3, dir3) = lianyi_store::testing::fresh_database().await;
    let data3 = dir3.clone().unwrap_or_else(|| work.path().join("restored-damaged"));
    std::fs::create_dir_all(&data3).unwrap();
    let sqlite3 = url3.strip_prefix("sqlite://").map(PathBuf::from);
    if let Some(f) = &sqlite3 {
        std::fs::remove_file(f).ok();
    }
    let out = lianyi(&["restore", damaged.to_str().unwrap()], &data3, &url3, &[("LIANYI_BACKUP_KEY", key.trim())]);
    let said = text(&out);
    assert!(!out.status.success() && said.contains("damaged: part database"), "{said}");
    match &sqlite3 {
        Some(f) => assert!(!f.exists(), "no half-written database file"),
        None => assert!(said.contains("drop it and create it again"), "{said}"),
    }
    let other = format!("aes-256-gcm:{}", "ab".repeat(32));
    let out = lianyi(&["backup", "verify", file.to_str().unwrap()], &data_dir, &url, &[("LIANYI_BACKUP_KEY", &other)]);
    let said = text(&out);
    assert!(!out.status.success() && said.contains("another backup key"), "{said}");

    // A restore drill times each step and leaves only its backup behind.
    let out = lianyi(&["backup", "drill", "--to", to.to_str().unwrap()], &data_dir, &url, &[]);
    let said = text(&out);
    assert!(out.status.success() && said.contains("drill passed"), "{said}");
    for step in ["backup ", "verify ", "restore ", "compare ", "recovery time"] {
        assert!(said.contains(step), "{step}: {said}");
    }
    assert_eq!(listed(&to).len(), 2, "two backups, no scratch");
}

#[tokio::test]
async fn a_backup_killed_mid_way_leaves_nothing_that_passes_for_a_backup_and_the_next_one_clears_it() {
    let (url, dir) = lianyi_store::testing::fresh_database().await;
    let work = tempfile::tempdir().unwrap();
    let data_dir = dir.clone().unwrap_or_else(|| work.path().join("data"));
    std::fs::create_dir_all(&data_dir).unwrap();
    let out = lianyi(&["migrate"], &data_dir, &url, &[]);
    assert!(out.status.success(), "{}", text(&out));
    if !data_dir.join("keys").exists() {
        std::fs::write(data_dir.join("keys"), "").unwrap();
    }
    // Enough data (about 40 MB) that the backup is still running when it is killed.
    let filler = if url.starts_with("sqlite") {
        "CREATE TABLE filler (id INTEGER PRIMARY KEY, v TEXT NOT NULL); \
         INSERT INTO filler (v) SELECT hex(randomblob(2000)) FROM \
         (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000) SELECT x FROM c)"
    } else {
        "CREATE TABLE filler (id BIGINT PRIMARY KEY, v TEXT NOT NULL); \
         INSERT INTO filler SELECT g, (SELECT string_agg(md5(random()::text || x::text), '') \
         FROM generate_series(1, 125) x WHERE g > 0) FROM generate_series(1, 10000) g"
    };
    lianyi_store::testing::raw_execute(&url, filler).await;
    let to = work.path().join("backups");
    let mut child = Command::new(BIN)
        .args(["backup", "--to", to.to_str().unwrap(), "--data-dir"])
        .arg(&data_dir)
        .args(["--database", &url])
        .env("LIANYI_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !listed_if_any(&to).iter().any(|n| n.ends_with(".partial")) {
        assert!(started.elapsed().as_secs() < 30, "the backup never started writing");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(child.try_wait().unwrap().is_none(), "the backup is still running when killed");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let left = listed(&to);
    assert!(left.iter().all(|n| !n.ends_with(".lyb")), "no file passes for a backup: {left:?}");
    let partial = left.iter().find(|n| n.ends_with(".partial")).unwrap();
    let out = lianyi(&["backup", "verify", to.join(partial).to_str().unwrap()], &data_dir, &url, &[]);
    let said = text(&out);
    assert!(!out.status.success() && (said.contains("incomplete") || said.contains("not a Lianyi backup")), "{said}");

    // The next backup clears the debris and records the killed run as interrupted.
    let out = lianyi(&["backup", "--to", to.to_str().unwrap()], &data_dir, &url, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let left = listed(&to);
    assert!(left.len() == 1 && left[0].ends_with(".lyb"), "{left:?}");
    let store = lianyi_store::Store::connect(&url).await.unwrap();
    let runs = store.backup_runs(10).await.unwrap();
    let statuses: Vec<&str> = runs.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(statuses, ["ok", "interrupted"], "{runs:?}");
    store.close().await;
}

fn listed_if_any(dir: &Path) -> Vec<String> {
    if dir.exists() { listed(dir) } else { Vec::new() }
}
