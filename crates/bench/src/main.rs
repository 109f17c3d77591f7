//! `lianyi-bench`: measures a real Lianyi server the way clients use it.
//!
//! It starts the server as a child process (this same binary in `serve` mode, so the
//! server's memory is measured alone), loads synthetic clinical data through
//! transaction bundles, then measures single-resource creates with N concurrent
//! clients, the latency of typical clinical searches, resident memory idle and under
//! load, and the database size. In the same run it inserts the same resource bodies
//! straight into the same database through the same driver, and reports Lianyi's
//! ingest as a fraction of that raw rate. Output: a table on stdout and a JSON file.
//!
//! `cargo run --release -p lianyi-bench -- --resources 100000 [--database postgres://…]`
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Benchmarks date their generated records by the wall clock (no service Clock here).
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// mimalloc: glibc's malloc took a third of the server's CPU under many small,
/// short-lived allocations across threads (measured: BENCHMARKS.md, MLLP ingest).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    resources: usize,
    clients: usize,
    creates: usize,
    database: Option<String>,
    out: PathBuf,
    bundle: usize,
    bundle_clients: usize,
    /// Keep the SQLite database for inspection (`EXPLAIN QUERY PLAN`).
    keep: bool,
}

fn args() -> Args {
    let mut a = Args {
        resources: 100_000,
        clients: 16,
        creates: 5_000,
        database: None,
        out: "bench.json".into(),
        bundle: 500,
        bundle_clients: 4,
        keep: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--resources" => a.resources = v().parse().expect("--resources N"),
            "--clients" => a.clients = v().parse().expect("--clients N"),
            "--creates" => a.creates = v().parse().expect("--creates N"),
            "--database" => a.database = Some(v()),
            "--out" => a.out = v().into(),
            "--bundle" => a.bundle = v().parse().expect("--bundle N"),
            "--bundle-clients" => a.bundle_clients = v().parse().expect("--bundle-clients N"),
            "--keep" => a.keep = true,
            "--help" | "-h" => {
                println!(
                    "lianyi-bench [--resources N] [--clients N] [--creates N] [--bundle N] [--bundle-clients N] [--keep] [--database URL] [--out FILE]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

mod billing;
mod cmdb;
mod dashboards;
mod desk;
mod dicom;
mod dicom_query;
mod kb;
mod mllp;
mod monitor;
mod pages;
mod resilience;
mod wards;

/// Deterministic pseudo-random numbers (SplitMix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let s: f64 = (0..6).map(|_| (self.next() >> 11) as f64 / (1u64 << 53) as f64).sum::<f64>() - 3.0;
        mean + s * sd / std::f64::consts::FRAC_1_SQRT_2
    }
}

const FAMILIES: [&str; 12] = ["Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu", "Sun"];
/// The same surnames in Hanzi (a patient's official name), and given-name characters.
const FAMILIES_ZH: [&str; 12] = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙"];
const GIVEN_ZH: [(&str, &str); 20] = [
    ("伟", "wei"),
    ("芳", "fang"),
    ("娜", "na"),
    ("敏", "min"),
    ("静", "jing"),
    ("丽", "li"),
    ("强", "qiang"),
    ("磊", "lei"),
    ("军", "jun"),
    ("洋", "yang"),
    ("勇", "yong"),
    ("艳", "yan"),
    ("杰", "jie"),
    ("娟", "juan"),
    ("涛", "tao"),
    ("明", "ming"),
    ("超", "chao"),
    ("秀", "xiu"),
    ("霞", "xia"),
    ("平", "ping"),
];

/// The n-th patient's name in Hanzi and in pinyin, and its initials (`王伟明`,
/// `wangweiming`, `wwm`), from the surname the generator chose.
fn chinese_name(family: usize, n: usize) -> (String, String, String) {
    let (g1, g2) = (GIVEN_ZH[(n * 7) % 20], GIVEN_ZH[(n / 20 * 13) % 20]);
    let py = FAMILIES[family].to_lowercase();
    (
        format!("{}{}{}", FAMILIES_ZH[family], g1.0, g2.0),
        format!("{py}{}{}", g1.1, g2.1),
        format!("{}{}{}", &py[..1], &g1.1[..1], &g2.1[..1]),
    )
}

/// The n-th patient's mobile number.
fn phone(n: usize) -> String {
    format!("139{n:08}")
}
const LABS: [(&str, &str, f64, f64); 5] = [
    ("2345-7", "mmol/L", 5.4, 1.6),
    ("718-7", "g/L", 138.0, 18.0),
    ("6690-2", "10*9/L", 6.8, 2.4),
    ("2160-0", "umol/L", 82.0, 22.0),
    ("2823-3", "mmol/L", 4.3, 0.5),
];
const CONDITIONS: [&str; 6] = ["I10", "E11.9", "J06.9", "K29.7", "E78.5", "M54.5"];

/// One patient's record: the patient, 1-4 encounters each with vital signs and labs,
/// conditions and prescriptions. References use urn:uuid so it goes in one transaction.
fn patient_bundle(rng: &mut Rng, n: usize) -> Vec<Value> {
    let pu = format!("urn:uuid:00000000-0000-4000-8000-{n:012}");
    let f = rng.below(FAMILIES.len() as u64) as usize;
    let family = FAMILIES[f];
    let (hanzi, _, _) = chinese_name(f, n);
    let year = 1940 + rng.below(80);
    let mut out = vec![json!({"fullUrl": pu, "request": {"method": "POST", "url": "Patient"}, "resource": {
        "resourceType": "Patient", "name": [{"use": "official", "text": hanzi, "family": FAMILIES_ZH[f], "given": [hanzi.chars().skip(1).collect::<String>()]},
                                          {"use": "usual", "family": family, "given": [format!("G{}", n % 1000)]}],
        "telecom": [{"system": "phone", "value": phone(n), "use": "mobile"}],
        "identifier": [{"system": "urn:lianyi:sid:mrn:bench", "value": format!("B{n:08}")}],
        "gender": if rng.below(2) == 0 { "male" } else { "female" },
        "birthDate": format!("{year}-{:02}-{:02}", 1 + rng.below(12), 1 + rng.below(28))}})];
    for e in 0..1 + rng.below(4) {
        let eu = format!("urn:uuid:00000000-0000-4000-9{e:03}-{n:012}");
        let day = format!("202{}-{:02}-{:02}", rng.below(6), 1 + rng.below(12), 1 + rng.below(28));
        out.push(json!({"fullUrl": eu, "request": {"method": "POST", "url": "Encounter"}, "resource": {
            "resourceType": "Encounter", "status": "finished", "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": pu}, "period": {"start": format!("{day}T09:00:00+08:00"), "end": format!("{day}T09:30:00+08:00")}}}));
        for (code, unit, mean, sd) in LABS.iter().take(2 + rng.below(3) as usize) {
            let v = (rng.normal(*mean, *sd).max(0.1) * 10.0).round() / 10.0;
            out.push(json!({"request": {"method": "POST", "url": "Observation"}, "resource": {
                "resourceType": "Observation", "status": "final",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
                "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "subject": {"reference": pu}, "encounter": {"reference": eu}, "effectiveDateTime": format!("{day}T10:00:00+08:00"),
                "valueQuantity": {"value": v, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}}}));
        }
        out.push(json!({"request": {"method": "POST", "url": "Observation"}, "resource": {
            "resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}, "subject": {"reference": pu}, "encounter": {"reference": eu},
            "effectiveDateTime": format!("{day}T09:05:00+08:00"),
            "valueQuantity": {"value": rng.normal(76.0, 9.0).round(), "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}}}));
    }
    for _ in 0..1 + rng.below(2) {
        let code = CONDITIONS[rng.below(CONDITIONS.len() as u64) as usize];
        out.push(json!({"request": {"method": "POST", "url": "Condition"}, "resource": {
            "resourceType": "Condition", "subject": {"reference": pu},
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": if rng.below(3) == 0 { "resolved" } else { "active" }}]},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": code}]}}}));
        out.push(json!({"request": {"method": "POST", "url": "MedicationRequest"}, "resource": {
            "resourceType": "MedicationRequest", "status": "active", "intent": "order", "subject": {"reference": pu},
            "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "C08CA01"}]},
            "requester": {"reference": "Practitioner/bench-doctor"}}}));
    }
    out
}

/// The account the finder benchmark signs in as.
const BENCH_USER: &str = "bench.registrar";
const BENCH_PASSWORD: &str = "Bench-Registrar-2026";
/// The account the status wall is measured as.
const BENCH_IT_USER: &str = "bench.it";
const BENCH_IT_PASSWORD: &str = "Bench-Engineer-2026";

/// The finder's text for the n-th patient (of the given surname).
type FinderQuery = fn(usize, usize) -> String;

/// A search for the n-th patient.
type QueryFor = Box<dyn Fn(usize) -> String>;

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4)
}

/// The size of the PostgreSQL database `url` names.
async fn pg_database_size(url: &str) -> u64 {
    use sqlx::Row;
    let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(url).await.unwrap();
    let row = sqlx::query("SELECT pg_database_size(current_database())").fetch_one(&pool).await.unwrap();
    row.try_get::<i64, _>(0).unwrap() as u64
}

fn dir_size(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|d| d.flatten().filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Server mode: the child process the benchmark measures.
async fn serve(database: String, dir: PathBuf, cred_file: PathBuf) {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("LIANYI_LOG") {
        tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).init();
    }
    // `lianyi-bench standby`: the server's `--read-database`.
    let read_database = std::env::var("LIANYI_BENCH_READ_DATABASE")
        .ok()
        .map(|url| lianyi_web::ReadDatabase { url, max_lag: Duration::from_secs(5) });
    let config = lianyi_web::AppConfig {
        database_url: database,
        default_campus: Some("campus-east".into()),
        max_body_bytes: 64 << 20,
        public_url: None,
        audit_hash: lianyi_security::ChainAlg::Sha256,
        policy: Default::default(),
        keys_file: dir.join("keys"),
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
        read_database,
        failover_databases: Vec::new(),
        export_dir: dir.join("exports"),
        imaging_dir: dir.join("imaging"),
    };
    // As `lianyi serve` does: connect, migrate, and the read database if there is one.
    let app = lianyi_web::App::build(config).await.expect("app");
    let c = app
        .state()
        .clients
        .add(
            &lianyi_security::Caller::task(lianyi_security::SystemTask::Operator("bench".into())),
            &format!("bench-{}", std::process::id()),
            "system/*.cruds lianyi:ops",
            "*",
            None,
        )
        .await
        .expect("client");
    // The registrar the patient finder is measured as, and the IT engineer the status
    // wall is (the login pages enrol their authenticators). A server started again on
    // the same database finds them there.
    for (username, display_name, password, role) in [
        (BENCH_USER, "基准 挂号员", BENCH_PASSWORD, "registrar"),
        (BENCH_IT_USER, "基准 工程师", BENCH_IT_PASSWORD, "it-engineer"),
    ] {
        let added = app
            .state()
            .users
            .add_user(
                &lianyi_security::Caller::task(lianyi_security::SystemTask::Operator("bench".into())),
                lianyi_security::users::NewUser {
                    username: username.into(),
                    display_name: display_name.into(),
                    password: password.into(),
                    grants: vec![(role.into(), "*".into())],
                    patient: None,
                    must_change_password: false,
                },
            )
            .await;
        if let Err(e) = added
            && !matches!(e, lianyi_security::users::UserError::Exists(_))
        {
            panic!("bench user {username}: {e}");
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mllp_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mllp_addr = mllp_listener.local_addr().unwrap();
    let mut inbound = lianyi_interop::Inbound::new(app.state().fhir.clone(), "mllp:bench", "campus-east", "+08:00");
    // `lianyi-bench mllp --ack journaled`: the server's `mllp_ack = "journaled"`.
    if std::env::var("LIANYI_BENCH_MLLP_ACK").as_deref() == Ok("journaled") {
        inbound = inbound.journaled();
        tokio::spawn(inbound.clone().run_applier());
    }
    tokio::spawn(lianyi_web::mllp::serve_mllp(mllp_listener, inbound, Default::default(), None));
    std::fs::write(
        &cred_file,
        json!({"base": format!("http://{addr}"), "id": c.client_id, "secret": c.client_secret, "mllp": mllp_addr.to_string()})
            .to_string(),
    )
    .unwrap();
    app.run(listener, std::future::pending()).await.unwrap();
}

struct Server {
    child: Child,
    base: String,
    http: reqwest::Client,
    /// The MLLP listener's address.
    mllp: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// reqwest is built with rustls and no crypto provider (the server uses ring, not
/// aws-lc): the provider is installed before any client is built.
fn reqwest_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

fn http_client() -> reqwest::Client {
    reqwest_builder().build().expect("HTTP client")
}

async fn start_server(database: &str, dir: &std::path::Path) -> Server {
    start_server_with(database, dir, &[]).await
}

/// `Bearer <token>` for a client's credentials (`POST /oauth/token`).
async fn bearer(base: &str, client_id: &str, secret: &str) -> String {
    let token: Value = http_client()
        .post(format!("{base}/oauth/token"))
        .form(&[("grant_type", "client_credentials"), ("client_id", client_id), ("client_secret", secret)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    format!("Bearer {}", token["access_token"].as_str().unwrap())
}

/// [`start_server`] with extra environment for the server process.
async fn start_server_with(database: &str, dir: &std::path::Path, env: &[(&str, &str)]) -> Server {
    let cred = dir.join("bench-credentials.json");
    let _ = std::fs::remove_file(&cred);
    let child = Command::new(std::env::current_exe().unwrap())
        .envs(env.iter().copied())
        .args(["__serve", database])
        .arg(dir)
        .arg(&cred)
        // LIANYI_BENCH_LOG sets the server's log filter; its log then goes to stderr.
        .env("LIANYI_LOG", std::env::var("LIANYI_BENCH_LOG").unwrap_or_else(|_| "warn".into()))
        .stdout(if std::env::var_os("LIANYI_BENCH_LOG").is_some() {
            Stdio::from(std::io::stderr())
        } else {
            Stdio::null()
        })
        .spawn()
        .unwrap();
    let started = Instant::now();
    let creds: Value = loop {
        if let Ok(text) = std::fs::read_to_string(&cred)
            && let Ok(v) = serde_json::from_str(&text)
        {
            break v;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let base = creds["base"].as_str().unwrap().to_string();
    let bearer = bearer(&base, creds["id"].as_str().unwrap(), creds["secret"].as_str().unwrap()).await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, bearer.parse().unwrap());
    let http = reqwest_builder().default_headers(headers).pool_max_idle_per_host(64).build().unwrap();
    let mllp = creds["mllp"].as_str().unwrap_or_default().to_string();
    Server { child, base, http, mllp }
}

/// Loads `resources` generated resources (whole patients, [`patient_bundle`]) through
/// transaction bundles of about `bundle` entries, `clients` bundles in flight (a bulk
/// loader keeps several so the server never waits for the next); `each` sees every
/// patient's entries. Samples the server's peak RSS into `peak`. (resources, patients).
pub(crate) async fn ingest(
    server: &Server,
    resources: usize,
    bundle: usize,
    clients: usize,
    peak: &Arc<AtomicUsize>,
    mut each: impl FnMut(&[Value]),
) -> (usize, usize) {
    let pid = server.child.id();
    let mut rng = Rng(42);
    let (mut loaded, mut patients) = (0usize, 0usize);
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(clients);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut senders = Vec::new();
    for _ in 0..clients {
        let (rx, http, url, peak) = (rx.clone(), server.http.clone(), format!("{}/fhir", server.base), peak.clone());
        senders.push(tokio::spawn(async move {
            loop {
                let Some(bundle) = rx.lock().await.recv().await else { break };
                let r = http
                    .post(&url)
                    .header("content-type", "application/fhir+json")
                    .header("prefer", "return=minimal")
                    .body(bundle)
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "bundle failed: {}", r.text().await.unwrap());
                peak.fetch_max(rss_kb(pid) as usize, Ordering::Relaxed);
            }
        }));
    }
    while loaded < resources {
        let mut entries = Vec::new();
        while entries.len() < bundle && loaded + entries.len() < resources {
            let one = patient_bundle(&mut rng, patients);
            each(&one);
            entries.extend(one);
            patients += 1;
        }
        loaded += entries.len();
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
        tx.send(bundle.to_string()).await.unwrap();
    }
    drop(tx);
    for s in senders {
        s.await.unwrap();
    }
    (loaded, patients)
}

#[tokio::main]
async fn main() {
    let raw: Vec<String> = std::env::args().collect();
    if raw.get(1).map(String::as_str) == Some("__serve") {
        serve(raw[2].clone(), raw[3].clone().into(), raw[4].clone().into()).await;
        return;
    }
    let rest = || raw.get(2..).unwrap_or_default().to_vec();
    match raw.get(1).map(String::as_str) {
        Some("mllp") => return mllp::run(rest()).await,
        Some("pages") => return pages::run(rest()).await,
        Some("cmdb") => return cmdb::run(rest()).await,
        Some("monitor") => return monitor::run(rest()).await,
        Some("desk") => return desk::run(rest()).await,
        Some("kb") => return kb::run(rest()).await,
        Some("backup") => return resilience::backup(rest()).await,
        Some("standby") => return resilience::standby(rest()).await,
        Some("billing") => return billing::run(rest()).await,
        Some("wards") => return wards::run(rest()).await,
        Some("dashboards") => return dashboards::run(rest()).await,
        Some("dicom") => return dicom::run(rest()).await,
        _ => {}
    }
    let a = args();
    let dir = std::env::temp_dir().join(format!("lianyi-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let database = a.database.clone().unwrap_or_else(|| format!("sqlite://{}", dir.join("lianyi.db").display()));
    let backend = if database.starts_with("postgres") { "postgres" } else { "sqlite" };
    let server = start_server(&database, &dir).await;
    let pid = server.child.id();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_idle = rss_kb(pid);
    println!("Lianyi benchmark on {backend}: {} resources, {} clients", a.resources, a.clients);

    // 1. Bulk ingest through transaction bundles, `--bundle-clients` at a time (a bulk
    // loader keeps several bundles in flight so the server never waits for the next).
    let mut family_of: Vec<usize> = Vec::new();
    let mut bodies: Vec<String> = Vec::new();
    let peak = Arc::new(AtomicUsize::new(rss_idle as usize));
    let t = Instant::now();
    let (loaded, patients) = ingest(&server, a.resources, a.bundle, a.bundle_clients, &peak, |bundle| {
        let family = &bundle[0]["resource"]["name"][0]["family"];
        family_of.push(FAMILIES_ZH.iter().position(|z| family == *z).unwrap_or(0));
        if bodies.len() < 200_000 {
            bodies.extend(bundle.iter().map(|e| e["resource"].to_string()));
        }
    })
    .await;
    let mut peak_rss = peak.load(Ordering::Relaxed) as u64;
    let ingest_secs = t.elapsed().as_secs_f64();
    let bundle_rate = loaded as f64 / ingest_secs;
    println!("  bundle ingest        {bundle_rate:>10.0} resources/s ({loaded} in {ingest_secs:.1} s)");
    // As an operator does after a bulk load (and `lianyi import` does itself): fresh
    // planner statistics. PostgreSQL plans prepared searches from them; without them
    // its first plans after a load can scan whole tables.
    lianyi_store::Store::connect(&database).await.unwrap().refresh_statistics().await.unwrap();

    // 2. Single creates with N concurrent clients.
    let counter = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..a.clients {
        let http = server.http.clone();
        let url = format!("{}/fhir/Observation", server.base);
        let counter = counter.clone();
        let total = a.creates;
        tasks.push(tokio::spawn(async move {
            while counter.fetch_add(1, Ordering::Relaxed) < total {
                let body = json!({"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                    "subject": {"reference": format!("Patient/x{c}")}, "valueQuantity": {"value": 70, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}});
                let r = http.post(&url).header("content-type", "application/fhir+json").body(body.to_string()).send().await.unwrap();
                assert_eq!(r.status(), reqwest::StatusCode::CREATED);
            }
        }));
    }
    let sampler = {
        let done = counter.clone();
        let total = a.creates;
        tokio::spawn(async move {
            let mut peak = 0;
            while done.load(Ordering::Relaxed) < total {
                peak = peak.max(rss_kb(pid));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            peak
        })
    };
    for t in tasks {
        t.await.unwrap();
    }
    peak_rss = peak_rss.max(sampler.await.unwrap());
    let create_rate = a.creates as f64 / t.elapsed().as_secs_f64();
    println!("  single create        {create_rate:>10.0} /s ({} clients)", a.clients);

    // 3. Search latency of typical clinical queries.
    let queries: Vec<(&str, QueryFor)> = vec![
        (
            "recent labs of a patient",
            Box::new(|p| {
                format!(
                    "Observation?subject:Patient.identifier=urn:lianyi:sid:mrn:bench%7CB{p:08}&category=laboratory&_sort=-date&_count=10"
                )
            }),
        ),
        (
            "active conditions",
            Box::new(|p| {
                format!("Condition?patient.identifier=urn:lianyi:sid:mrn:bench%7CB{p:08}&clinical-status=active")
            }),
        ),
        (
            "encounters in a date range",
            Box::new(|p| {
                format!(
                    "Encounter?patient.identifier=urn:lianyi:sid:mrn:bench%7CB{p:08}&date=ge2022-01-01&date=lt2024-01-01"
                )
            }),
        ),
        (
            "name search",
            Box::new(|p| format!("Patient?name={}&_count=10", FAMILIES[p % FAMILIES.len()].to_lowercase())),
        ),
        ("identifier search", Box::new(|p| format!("Patient?identifier=urn:lianyi:sid:mrn:bench%7CB{p:08}"))),
        (
            "_include",
            Box::new(|p| {
                format!("Encounter?patient.identifier=urn:lianyi:sid:mrn:bench%7CB{p:08}&_include=Encounter:subject")
            }),
        ),
    ];
    let mut searches = Vec::new();
    for (name, q) in &queries {
        let mut lat = Vec::new();
        for i in 0..200 {
            let p = (i * 7919) % patients.max(1);
            let t = Instant::now();
            let r = server.http.get(format!("{}/fhir/{}", server.base, q(p))).send().await.unwrap();
            assert!(r.status().is_success(), "{name}: {}", r.status());
            let _ = r.bytes().await.unwrap();
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        lat.sort_by(|x, y| x.partial_cmp(y).unwrap());
        let (p50, p95, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.95), percentile(&lat, 0.99));
        println!("  search {name:<28} p50 {p50:>6.1} ms  p95 {p95:>6.1} ms  p99 {p99:>6.1} ms");
        searches.push(json!({"query": name, "p50_ms": p50, "p95_ms": p95, "p99_ms": p99}));
    }
    // 4. The staff's patient finder (`/patients?q=`, what the header's search opens), as
    // a registrar signed in through the login pages: pinyin initials, whole pinyin,
    // MRN and phone. Each found record is an audited read, as in use.
    let mut finder = Vec::new();
    let (mut registrar, _) = pages::Session::log_in(&server.base, BENCH_USER, BENCH_PASSWORD).await;
    let kinds: [(&str, FinderQuery); 4] = [
        ("pinyin initials", |f, p| chinese_name(f, p).2),
        ("whole pinyin", |f, p| chinese_name(f, p).1),
        ("MRN", |_, p| format!("B{p:08}")),
        ("phone", |_, p| phone(p)),
    ];
    for (name, q) in kinds {
        let mut lat = Vec::new();
        for i in 0..200 {
            let p = (i * 7919) % patients.max(1);
            let f = family_of[p];
            let t = Instant::now();
            let (status, _, body) = registrar.get(&format!("/patients?q={}", q(f, p))).await;
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
            assert!(status == 200 && body.contains("data-patient") || name == "pinyin initials", "{name}: {status}");
        }
        lat.sort_by(|x, y| x.total_cmp(y));
        let (p50, p95, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.95), percentile(&lat, 0.99));
        println!("  finder {name:<28} p50 {p50:>6.1} ms  p95 {p95:>6.1} ms  p99 {p99:>6.1} ms");
        finder.push(json!({"query": name, "p50_ms": p50, "p95_ms": p95, "p99_ms": p99}));
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = rss_kb(pid);
    drop(server);

    // 4. Disk.
    let db_bytes = if backend == "sqlite" { dir_size(&dir) } else { pg_database_size(&database).await };

    // 5. The storage limit: the same bodies, straight into the same database.
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&database).await.unwrap();
    sqlx::query("CREATE TABLE IF NOT EXISTS bench_raw (id TEXT PRIMARY KEY, body TEXT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let t = Instant::now();
    let per = 500usize;
    for (chunk_no, chunk) in bodies.chunks(per).enumerate() {
        let mut sql = String::from("INSERT INTO bench_raw (id, body) VALUES ");
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            if backend == "sqlite" {
                sql.push_str("(?, ?)");
            } else {
                sql.push_str(&format!("(${}, ${})", 2 * i + 1, 2 * i + 2));
            }
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (i, b) in chunk.iter().enumerate() {
            q = q.bind(format!("r{}", chunk_no * per + i)).bind(b.clone());
        }
        q.execute(&pool).await.unwrap();
    }
    let raw_rate = bodies.len() as f64 / t.elapsed().as_secs_f64();
    let _ = sqlx::query("DROP TABLE bench_raw").execute(&pool).await;
    pool.close().await;
    let ratio = bundle_rate / raw_rate;
    println!(
        "  raw insert (same bodies, same driver, batches of {per}) {raw_rate:>10.0} rows/s; Lianyi ingest = {:.0}% of it",
        ratio * 100.0
    );
    println!(
        "  server RSS: idle {} MB, peak under load {} MB, after {} MB",
        rss_idle / 1024,
        peak_rss / 1024,
        rss_after / 1024
    );
    println!("  database size {} MB", db_bytes / (1 << 20));

    let report = json!({
        "backend": backend, "resources": loaded, "patients": patients, "clients": a.clients,
        "bundle_ingest_per_s": bundle_rate, "single_create_per_s": create_rate,
        "raw_insert_per_s": raw_rate, "ingest_fraction_of_raw": ratio,
        "search": searches,
        "finder": finder,
        "rss_idle_mb": rss_idle / 1024, "rss_peak_mb": peak_rss / 1024, "rss_after_mb": rss_after / 1024,
        "database_bytes": db_bytes,
    });
    std::fs::write(&a.out, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("  JSON: {}", a.out.display());
    if a.database.is_none() {
        if a.keep {
            println!("  database kept in {}", dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
