//! Resident ID numbers, phone numbers and address lines are never stored in clear —
//! not in the database file, its write-ahead log or a PostgreSQL dump — yet exact
//! identifier and phone searches find the patient, and key rotation keeps working
//! while the server runs.

use std::process::Command;

use lianyi_security::Caller;
use lianyi_services::demo;
use serde_json::Value;

use crate::helpers::{TestApp, spawn_app};

const BIN: &str = env!("CARGO_BIN_EXE_lianyi");

/// Everything the database holds, as bytes: the SQLite file and its WAL, or a
/// `pg_dump` of the PostgreSQL database.
fn raw_database(app: &TestApp) -> String {
    String::from_utf8_lossy(&raw_bytes(app)).into_owned()
}

fn raw_bytes(app: &TestApp) -> Vec<u8> {
    if let Some(path) = app.database_url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap();
        let mut bytes = std::fs::read(path).unwrap();
        if let Ok(wal) = std::fs::read(format!("{path}-wal")) {
            bytes.extend(wal);
        }
        bytes
    } else {
        let bin = std::env::var("PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
        let out = Command::new(format!("{bin}/pg_dump")).arg("--data-only").arg(&app.database_url).output().unwrap();
        assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }
}

fn contains(hay: &str, needle: &str) -> bool {
    hay.contains(needle)
}

/// (resident id, mobile, first address line) of every demo patient.
fn secrets() -> Vec<(String, String, String)> {
    demo::generate()
        .into_iter()
        .filter(|r| r.resource["resourceType"] == "Patient")
        .map(|r| {
            let p = r.resource;
            (
                p["identifier"][0]["value"].as_str().unwrap().to_string(),
                p["telecom"][0]["value"].as_str().unwrap().to_string(),
                p["address"][0]["line"][0].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Every run of 11 or more digits in the raw data: any resident ID or phone number
/// stored in clear would be inside one.
fn digit_runs(raw: &str) -> Vec<&str> {
    raw.split(|c: char| !c.is_ascii_digit()).filter(|r| r.len() >= 11).collect()
}

fn assert_no_plaintext(raw: &str, secrets: &[(String, String, String)]) {
    let runs = digit_runs(raw);
    for (id, phone, _) in secrets {
        let id_digits = id.trim_end_matches('X');
        assert!(!runs.iter().any(|r| r.contains(id_digits)), "resident ID {id} found in clear");
        assert!(!runs.iter().any(|r| r.contains(phone.as_str())), "phone {phone} found in clear");
    }
    for (_, _, line) in secrets.iter().take(25) {
        assert!(!contains(raw, line), "address line {line} found in clear");
    }
}

#[tokio::test]
async fn protected_fields_are_ciphertext_at_rest_and_still_searchable() {
    let app = spawn_app().await;
    // The demo's patients (the resources that hold these fields) and its directory.
    let batch: Vec<(Value, Option<String>)> = demo::generate()
        .into_iter()
        .filter(|r| matches!(r.resource["resourceType"].as_str(), Some("Patient" | "Organization")))
        .map(|r| (r.resource, Some(r.campus)))
        .collect();
    let report =
        app.fhir.load_batch(&Caller::task(lianyi_security::SystemTask::Operator("test".into())), batch).await.unwrap();
    assert!(report.rejected.is_empty());
    let secrets = secrets();
    assert_eq!(secrets.len(), demo::PATIENTS);
    // Control: an identifier that is not protected is found by the same scan.
    app.create(&serde_json::json!({"resourceType": "Patient",
        "identifier": [{"system": "urn:other", "value": "555555555555555555"}]}))
        .await;
    let raw = raw_database(&app);
    assert!(digit_runs(&raw).iter().any(|r| r.contains("555555555555555555")), "the scan sees clear text");
    assert_no_plaintext(&raw, &secrets);

    let (id, phone, line) = &secrets[7];
    let b: Value =
        app.get(&format!("/fhir/Patient?identifier=urn:lianyi:sid:resident-id%7C{id}")).await.json().await.unwrap();
    assert_eq!(b["total"], 1, "{b}");
    let p = &b["entry"][0]["resource"];
    assert_eq!(p["id"], "pat-0008");
    assert_eq!(p["identifier"][0]["value"], id.as_str(), "returned decrypted");
    assert_eq!(p["address"][0]["line"][0], line.as_str());
    let b: Value = app.get(&format!("/fhir/Patient?phone={phone}")).await.json().await.unwrap();
    assert_eq!(b["entry"][0]["resource"]["id"], "pat-0008");
    let b: Value = app.get(&format!("/fhir/Patient?telecom=phone%7C{phone}")).await.json().await.unwrap();
    assert_eq!(b["total"], 1);
    // The MRN is not a protected field and searches as before.
    let b: Value = app.get("/fhir/Patient?identifier=W1000259").await.json().await.unwrap();
    assert_eq!(b["entry"][0]["resource"]["id"], "pat-0008");

    // Writes through the API are protected too.
    let created = app
        .create(&serde_json::json!({"resourceType": "Patient",
            "identifier": [{"system": "urn:lianyi:sid:resident-id", "value": "990101199001011230"}],
            "telecom": [{"system": "phone", "value": "13712345678"}]}))
        .await;
    let raw = raw_database(&app);
    assert!(!contains(&raw, "990101199001011230") && !contains(&raw, "13712345678"));
    let back: Value = app.get(&format!("/fhir/Patient/{created}")).await.json().await.unwrap();
    assert_eq!(back["telecom"][0]["value"], "13712345678");

    // Rotate the key while the server runs: everything is re-encrypted, still readable.
    let out = Command::new(BIN)
        .args(["keys", "rotate", "--cipher", "aes-256-gcm", "--data-dir"])
        .arg(&app.keys_dir)
        .args(["--database", &app.database_url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(&format!("{} stored versions re-encrypted", demo::PATIENTS + 2)), "{text}");
    let key_id = text.split_whitespace().nth(3).unwrap().to_string();
    let raw = raw_database(&app);
    assert!(contains(&raw, &format!("enc:{key_id}:")), "bodies use the new key");
    assert_no_plaintext(&raw, &secrets);
    let p: Value = app.get("/fhir/Patient/pat-0008").await.json().await.unwrap();
    assert_eq!(p["identifier"][0]["value"], id.as_str());
    let b: Value =
        app.get(&format!("/fhir/Patient?identifier=urn:lianyi:sid:resident-id%7C{id}")).await.json().await.unwrap();
    assert_eq!(b["total"], 1);
}
