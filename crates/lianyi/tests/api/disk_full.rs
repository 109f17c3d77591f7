//! The disk under the database fills up while the server writes (issue 18): the
//! server's data folder is on a small tmpfs mounted for the test (so it runs as root,
//! as `scripts/test` does), filled to the last byte by a file beside the database.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::process::{cli_client, mllp_exchange, mllp_roundtrip, msa, serve_with_mllp};

/// A tmpfs of `mib` MiB mounted on a fresh folder, unmounted when dropped.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(mib: u32) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(dir))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

/// The server, killed however the test ends (a failed assertion included: the
/// tmpfs under it is then unmounted).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes zeros into `path` until the file system has no byte left.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 << 10];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(28), "filling stops at ENOSPC: {e}");
                break;
            }
        }
    }
    // The last partial block: byte by byte.
    while f.write(&[0u8]).is_ok_and(|n| n == 1) {
        written += 1;
    }
    let _ = f.sync_all();
    written
}

async fn create(client: &reqwest::Client, base: &str, family: &str) -> reqwest::Response {
    client
        .post(format!("{base}/fhir/Patient"))
        .header("content-type", "application/fhir+json")
        .body(
            json!({"resourceType": "Patient", "name": [{"family": family, "given": ["满盘"]}],
                   "identifier": [{"system": "urn:lianyi:sid:mrn:disk", "value": family}],
                   "text": {"status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{}</div>", "磁".repeat(2000))}})
            .to_string(),
        )
        .send()
        .await
        .unwrap()
}

async fn total(client: &reqwest::Client, base: &str, family: &str) -> u64 {
    let b: Value = client
        .get(format!("{base}/fhir/Patient?identifier=urn:lianyi:sid:mrn:disk|{family}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    b["total"].as_u64().unwrap()
}

/// Disk full during writes: the write that does not fit gets 507 and an
/// OperationOutcome saying so (a page says it in the user's language), an HL7 message
/// gets no ACK (its sender keeps it), reads go on, nothing is half-written; once
/// space returns writes resume by themselves, the resent message is stored, and the
/// database's integrity check and the audit chain pass. SQLite pass (the server's
/// data folder and database are on the tmpfs).
#[tokio::test]
async fn a_full_disk_refuses_writes_whole_and_writing_resumes_when_space_returns() {
    if lianyi_store::testing::backend_under_test() != "sqlite" {
        eprintln!("the disk-full test runs in the SQLite pass (its database is on a tmpfs of its own)");
        return;
    }
    let Some(disk) = Tmpfs::mount(48) else {
        eprintln!("skipped: mounting a tmpfs needs root (scripts/test runs as root)");
        return;
    };
    let data: PathBuf = disk.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let url = format!("sqlite://{}", data.join("lianyi.db").display());
    let (id, secret) = cli_client(&data, &url);
    let out = Command::new(env!("CARGO_BIN_EXE_lianyi"))
        .args(["user", "add", "doctor.disk", "--name", "医生", "--role", "doctor@campus-east", "--data-dir"])
        .arg(&data)
        .args(["--database", &url])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    let initial = said.split("initial password: ").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let (server, base, mllp) = serve_with_mllp(&data, &url);
    let server = Killed(server);
    let client = crate::helpers::authorized(&base, &id, &secret).await;
    let (mut doctor, _) = crate::process::cli_user_signed_in(&base, "doctor.disk", &initial).await;
    let before = create(&client, &base, "Before").await;
    assert_eq!(before.status(), StatusCode::CREATED);
    let before: Value = before.json().await.unwrap();
    let hl7 = |f: &str| std::fs::read(format!("{}/../../tests/hl7/{f}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    assert_eq!(msa(&mllp_exchange(&mllp, &[hl7("adt_a01.hl7")])[0]).0, "AA");

    // The chart of the patient the HL7 registration made (East Campus, the doctor's).
    let (_, _, found) = doctor.get("/patients?q=E100234").await;
    let chart = format!("/patients/{}", crate::pages::between(&found, "href=\"/patients/", "\""));
    assert_eq!(doctor.get(&chart).await.0, StatusCode::OK, "{chart}");

    // Full: writes go on while SQLite's WAL has room, then the one that does not fit
    // is refused whole.
    let filler = disk.path().join("filler");
    fill(&filler);
    let mut stored = Vec::new();
    let refused = loop {
        let family = format!("Fill{}", stored.len());
        let r = create(&client, &base, &family).await;
        if r.status() != StatusCode::CREATED {
            break (family, r);
        }
        stored.push(family);
        assert!(stored.len() < 5_000, "the disk never filled");
    };
    let (refused, r) = refused;
    assert_eq!(r.status(), StatusCode::INSUFFICIENT_STORAGE, "after {} writes", stored.len());
    assert!(r.headers().contains_key("retry-after"));
    let o: Value = r.json().await.unwrap();
    assert_eq!(o["resourceType"], "OperationOutcome");
    assert_eq!(o["issue"][0]["code"], "transient", "{o}");
    assert!(o["issue"][0]["diagnostics"].as_str().unwrap().contains("disk is full"), "{o}");
    let again = create(&client, &base, &refused).await;
    assert_eq!(again.status(), StatusCode::INSUFFICIENT_STORAGE, "still full");

    // An HL7 message that cannot be stored gets no ACK: the connection closes.
    let mut sock = std::net::TcpStream::connect(&mllp).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
    let e = mllp_roundtrip(&mut sock, &hl7("oru_r01.hl7")).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "the connection closes without an ACK");

    // A read of patient data is refused too: its audit record cannot be written, and
    // no access goes unaudited. A page that shows none still opens; a patient's chart
    // says the disk is full, in the user's language.
    let r = client.get(format!("{base}/fhir/Patient/{}", before["id"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::INSUFFICIENT_STORAGE);
    let (status, _, _) = doctor.get("/patients").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, page) = doctor.get(&chart).await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{page}");
    assert!(page.contains("磁盘已满"), "{page}");

    // Space returns: writing resumes by itself.
    std::fs::remove_file(&filler).unwrap();
    let after = create(&client, &base, "After").await;
    assert_eq!(after.status(), StatusCode::CREATED, "writes resume once space returns");
    assert_eq!(msa(&mllp_exchange(&mllp, &[hl7("oru_r01.hl7")])[0]).0, "AA", "the resent message is stored");
    assert_eq!(total(&client, &base, &refused).await, 0, "the refused write left nothing");
    stored.push("After".into());
    for family in &stored {
        assert_eq!(total(&client, &base, family).await, 1, "{family} was stored once");
    }
    let (status, _, _) = doctor.get("/").await;
    assert_eq!(status, StatusCode::OK, "the doctor's session goes on");
    drop(server);

    let out = Command::new(env!("CARGO_BIN_EXE_lianyi"))
        .args(["audit", "verify", "--data-dir"])
        .arg(&data)
        .args(["--database", &url])
        .output()
        .unwrap();
    assert!(out.status.success(), "audit verify: {}", String::from_utf8_lossy(&out.stderr));
    let store = lianyi_store::Store::connect(&url).await.unwrap();
    assert_eq!(store.integrity_check().await.unwrap().as_deref(), Some("ok"));
}
