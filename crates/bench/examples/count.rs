//! The server's work per operation, for counting instructions with callgrind: a
//! measure that does not drift with the VM the way timings do (BENCHMARKS.md). Runs
//! in one process, on one thread, against a fresh SQLite database:
//!
//! ```text
//! cargo build --release -p lianyi-bench --example count
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p target/release/examples/count oru 200
//! ```
//!
//! `oru N` sends N ORU^R01 (the `mllp` benchmark's message: one OBR, three OBX) through
//! the HL7 intake, applied before the ACK; `create N` makes N Patients through the
//! HTTP router (`POST /fhir/Patient` with a bearer token, in process). Counting N and
//! 2N and subtracting leaves the cost of N operations without the start-up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};
use tower::ServiceExt;

fn oru(i: usize) -> Vec<u8> {
    let k = 3.0 + (i % 40) as f64 / 10.0;
    let flag = if k > 5.3 { "H" } else { "N" };
    format!(
        "MSH|^~\\&|LIS1|EAST|LIANYI|GROUP|20261122100000||ORU^R01^ORU_R01|C-{i}|P|2.5.1\r\
         PID|1||M{:06}^^^EAST^MR||王^{i}||19800101|F\r\
         OBR|1|P-{i}|F-{i}|24320-4^Basic metabolic panel^LN|||202611221000\r\
         OBX|1|NM|2823-3^Potassium [Moles/volume] in Serum or Plasma^LN||{k:.1}|mmol/L^mmol/L^UCUM|3.5-5.3|{flag}|||F\r\
         OBX|2|NM|2951-2^Sodium [Moles/volume] in Serum or Plasma^LN||140|mmol/L^mmol/L^UCUM|137-147|N|||F\r\
         OBX|3|NM|2345-7^Glucose [Mass/volume] in Serum or Plasma^LN||{}|mg/dL^mg/dL^UCUM|70-99|N|||F\r",
        i % 5000,
        80 + i % 30
    )
    .into_bytes()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mode, n) = (args[1].clone(), args[2].parse::<usize>().unwrap());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let database = format!("sqlite://{}", dir.path().join("count.db").display());
        let store = lianyi_store::Store::connect(&database).await.unwrap();
        store.migrate().await.unwrap();
        let config = lianyi_web::AppConfig {
            database_url: database,
            default_campus: Some("campus-east".into()),
            max_body_bytes: 64 << 20,
            public_url: None,
            audit_hash: lianyi_security::ChainAlg::Sha256,
            policy: Default::default(),
            keys_file: dir.path().join("keys"),
            cipher: lianyi_security::crypto::CipherAlg::Aes256Gcm,
            tls: None,
            login_rate_per_minute: 1000,
            message_retention_days: 90,
            monitor_raw_days: 7,
            language: "zh-CN".into(),
            backup_schedule: None,
            critical_escalation_minutes: 10,
            near_expiry_days: 90,
            portal_mail_from: None,
            sms_gateway: None,
            booking: Default::default(),
            mail: None,
            read_database: None,
            failover_databases: Vec::new(),
            export_dir: dir.path().join("exports"),
            imaging_dir: dir.path().join("imaging"),
        };
        let app = lianyi_web::App::with_store(store, config).unwrap();
        match mode.as_str() {
            "oru" => {
                let inbound =
                    lianyi_interop::Inbound::new(app.state().fhir.clone(), "mllp:count", "campus-east", "+08:00");
                for i in 0..n {
                    let (ack, _) = inbound.receive(&oru(i), None).await;
                    assert!(ack.windows(7).any(|w| w == b"MSA|AA|"), "{}", String::from_utf8_lossy(&ack));
                }
            }
            "create" => {
                let admin = lianyi_security::Caller::task(lianyi_security::SystemTask::Operator("count".into()));
                let c = app.state().clients.add(&admin, "count", "system/*.cruds", "*", None).await.unwrap();
                let router = app.router();
                let form = format!(
                    "grant_type=client_credentials&client_id={}&client_secret={}",
                    c.client_id, c.client_secret
                );
                let req = Request::post("/oauth/token")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(Body::from(form))
                    .unwrap();
                let r = router.clone().oneshot(req).await.unwrap();
                let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
                let token: Value = serde_json::from_slice(&body).unwrap();
                let bearer = format!("Bearer {}", token["access_token"].as_str().unwrap());
                for i in 0..n {
                    let patient = json!({"resourceType": "Patient", "gender": "female", "birthDate": "1980-01-01",
                        "name": [{"family": "王", "given": [format!("{i}")]}],
                        "identifier": [{"system": "urn:lianyi:sid:mrn:campus-east", "value": format!("E{i:07}")}]});
                    let req = Request::post("/fhir/Patient")
                        .header("content-type", "application/fhir+json")
                        .header("authorization", &bearer)
                        .body(Body::from(patient.to_string()))
                        .unwrap();
                    let r = router.clone().oneshot(req).await.unwrap();
                    assert_eq!(r.status(), 201);
                }
            }
            other => panic!("unknown mode {other} (oru or create)"),
        }
    });
}
