//! A PostgreSQL standby for reads, on two real PostgreSQL 15 clusters of this machine:
//! a primary with synchronous replication and a hot standby made with
//! `pg_basebackup`. Searches are served by the standby (its own statistics show the
//! scans); a session reads its own writes at once even while the standby applies
//! changes a second late; the standby stopped, reads fall back to the primary with a
//! warning in `/healthz` and an alert in monitoring, and come back when it does; the
//! primary killed while writes go on and the standby promoted, the server writes to
//! it by itself and every write it acknowledged is there.
//! And the database unreachable for 30 s: the API answers 503 with an
//! OperationOutcome, pages say so, MLLP senders get no ACK; all of it resumes by
//! itself with nothing lost or half-written.
//! Runs in the PostgreSQL pass of the suite (it makes its own clusters).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::process::{cli_client, mllp_exchange, mllp_roundtrip, msa, serve_args, serve_with_mllp};

fn pg_bin(tool: &str) -> PathBuf {
    PathBuf::from(std::env::var("PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into())).join(tool)
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a PostgreSQL program as the `postgres` user when the suite runs as root.
fn as_postgres(tool: &str, args: &[&str]) -> Output {
    let out = if is_root() {
        Command::new("runuser").args(["-u", "postgres", "--"]).arg(pg_bin(tool)).args(args).output()
    } else {
        Command::new(pg_bin(tool)).args(args).output()
    }
    .expect("run a PostgreSQL program");
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One PostgreSQL cluster in its own folder, stopped (immediately) when dropped.
struct Cluster {
    dir: PathBuf,
    port: u16,
}

impl Cluster {
    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    fn start(&self) {
        let log = self.dir.join("log").display().to_string();
        as_postgres("pg_ctl", &["-D", &self.data(), "-l", &log, "-w", "-t", "60", "start"]);
    }

    fn stop(&self, mode: &str) {
        as_postgres("pg_ctl", &["-D", &self.data(), "-m", mode, "-w", "stop"]);
    }

    fn sql(&self, db: &str, query: &str) -> String {
        let port = self.port.to_string();
        let out = as_postgres("psql", &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-d", db, "-Atc", query]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn folder(root: &Path, name: &str) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            assert!(Command::new("chown").args(["-R", "postgres"]).arg(root).status().unwrap().success());
        }
        dir
    }

    /// A primary; with `sync`, it waits for `standby1` to flush every commit.
    fn primary(root: &Path, sync: bool) -> Cluster {
        let c = Cluster { dir: Self::folder(root, "primary"), port: free_port() };
        as_postgres("initdb", &["-D", &c.data(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8"]);
        let conf = format!(
            "port = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nwal_level = replica\n\
             max_wal_senders = 4\nsynchronous_standby_names = '{}'\nsynchronous_commit = on\n",
            c.port,
            c.dir.display(),
            if sync { "standby1" } else { "" }
        );
        append(&c.dir.join("data/postgresql.conf"), &conf);
        c.start();
        c
    }

    /// A hot standby of `primary`, copied with pg_basebackup and streaming from it
    /// (once promoted, it commits without a standby of its own).
    fn standby_of(primary: &Cluster, root: &Path) -> Cluster {
        let c = Cluster { dir: Self::folder(root, "standby"), port: free_port() };
        let port = primary.port.to_string();
        as_postgres(
            "pg_basebackup",
            &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-D", &c.data(), "-R", "-X", "stream"],
        );
        let conf = format!(
            "port = {}\nunix_socket_directories = '{}'\nhot_standby = on\nsynchronous_standby_names = ''\n\
             primary_conninfo = 'host=127.0.0.1 port={} user=postgres application_name=standby1'\n",
            c.port,
            c.dir.display(),
            primary.port
        );
        append(&c.dir.join("data/postgresql.auto.conf"), &conf);
        c.start();
        c
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let stop = ["-D", &self.data(), "-m", "immediate", "-w", "stop"];
        let _ = if is_root() {
            Command::new("runuser").args(["-u", "postgres", "--"]).arg(pg_bin("pg_ctl")).args(stop).output()
        } else {
            Command::new(pg_bin("pg_ctl")).args(stop).output()
        };
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn append(file: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(file).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Scans (sequential and index) on the standby's tables of database `lianyi`.
fn standby_scans(standby: &Cluster) -> i64 {
    standby
        .sql("lianyi", "SELECT COALESCE(SUM(seq_scan + COALESCE(idx_scan, 0)), 0) FROM pg_stat_user_tables")
        .parse()
        .unwrap()
}

async fn health(base: &str) -> Value {
    reqwest::get(format!("{base}/healthz")).await.unwrap().json().await.unwrap()
}

/// Waits (up to a minute) until `/healthz` says reads go to `to`.
async fn reads_go_to(base: &str, to: &str) -> Value {
    let started = Instant::now();
    loop {
        let h = health(base).await;
        if h["readDatabase"]["status"] == to {
            return h;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "reads never went to the {to}: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A create that may fail (the database lost): the new id once acknowledged.
async fn try_create(client: &reqwest::Client, base: &str, family: &str) -> Option<String> {
    let create = crate::backup::create_patient(client, base, family);
    tokio::time::timeout(Duration::from_secs(40), create).await.ok().flatten()
}

async fn create_patient(client: &reqwest::Client, base: &str, family: &str) -> String {
    crate::backup::create_patient(client, base, family).await.expect("201 Created")
}

#[tokio::test]
async fn searches_go_to_the_standby_a_session_reads_its_own_writes_and_a_stopped_standby_falls_back() {
    if lianyi_store::testing::backend_under_test() != "postgres" {
        eprintln!("the standby test runs in the PostgreSQL pass (it makes its own two clusters)");
        return;
    }
    let root = std::env::temp_dir().join(format!("lianyi-standby-{}", std::process::id()));
    let primary = Cluster::primary(&root, true);
    let standby = Cluster::standby_of(&primary, &root);
    primary.sql("postgres", "CREATE DATABASE lianyi");
    assert_eq!(primary.sql("postgres", "SELECT sync_state FROM pg_stat_replication"), "sync");
    assert_eq!(standby.sql("postgres", "SELECT pg_is_in_recovery()"), "t");

    let work = tempfile::tempdir().unwrap();
    let (url, read_url) = (primary.url("lianyi"), standby.url("lianyi"));
    let (id, secret) = cli_client(work.path(), &url);
    let (mut server, base) =
        serve_args(work.path(), &url, &["--read-database", &read_url, "--failover-database", &read_url]);
    let client = crate::helpers::authorized(&base, &id, &secret).await;
    let h = reads_go_to(&base, "standby").await;
    assert_eq!(h["status"], "ok", "{h}");

    // Searches are served by the standby: its own statistics count the scans.
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(create_patient(&client, &base, &format!("Standby{i}")).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = standby_scans(&standby);
    let served = health(&base).await["readDatabase"]["standbyReads"].as_u64().unwrap();
    for _ in 0..20 {
        let r = client.get(format!("{base}/fhir/Patient?name=Standby&_count=50")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let started = Instant::now();
    while standby_scans(&standby) <= before {
        assert!(started.elapsed() < Duration::from_secs(20), "the standby's statistics show no scan");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(health(&base).await["readDatabase"]["standbyReads"].as_u64().unwrap() >= served + 20);

    // The standby now applies each change a second late (within the allowed lag):
    // another reader may see the page before a change, the writer never does.
    standby.sql("postgres", "ALTER SYSTEM SET recovery_min_apply_delay = '1s'");
    standby.sql("postgres", "SELECT pg_reload_conf()");
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..15 {
        let id = create_patient(&client, &base, &format!("Own{i}")).await;
        let r = client.get(format!("{base}/fhir/Patient/{id}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "a session reads its own new patient at once");
        let b: Value =
            client.get(format!("{base}/fhir/Patient?name=Own{i}")).send().await.unwrap().json().await.unwrap();
        assert_eq!(b["total"], 1, "and finds it at once: {b}");
    }
    let other = crate::helpers::authorized(&base, &id, &secret).await;
    assert_eq!(other.get(format!("{base}/fhir/Patient/{}", ids[0])).send().await.unwrap().status(), StatusCode::OK);
    standby.sql("postgres", "ALTER SYSTEM SET recovery_min_apply_delay = 0");
    standby.sql("postgres", "SELECT pg_reload_conf()");

    // The standby stopped: reads go to the primary, /healthz warns, monitoring alerts.
    let (ops_id, ops_secret) = crate::process::cli_client_scoped(work.path(), &url, "ops-test", "lianyi:ops");
    let ops = crate::helpers::authorized(&base, &ops_id, &ops_secret).await;
    let r = ops
        .post(format!("{base}/api/ops/probes"))
        .json(&json!({"ci": "LIANYI-DB", "kind": "database", "interval": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    let probe = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    // With its one synchronous standby down the primary would hold every commit, as
    // synchronous replication promises: the DBA lets it commit alone meanwhile.
    primary.sql("postgres", "ALTER SYSTEM SET synchronous_standby_names = ''");
    primary.sql("postgres", "SELECT pg_reload_conf()");
    standby.stop("fast");
    let h = reads_go_to(&base, "primary").await;
    assert_eq!(h["status"], "warning", "{h}");
    assert!(h["readDatabase"]["problem"].as_str().is_some_and(|p| !p.is_empty()), "{h}");
    for _ in 0..5 {
        let r = client.get(format!("{base}/fhir/Patient?name=Standby&_count=50")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "reads go on on the primary");
        assert_eq!(r.json::<Value>().await.unwrap()["total"], 20);
    }
    let started = Instant::now();
    loop {
        let card: Value = ops.get(format!("{base}/api/ops/probes/{probe}")).send().await.unwrap().json().await.unwrap();
        let open = card["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["metric"] == "standby.down" && a["status"] == "open" && a["severity"] == "warning");
        if open {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no standby alert: {card}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Back: reads go to the standby again, and commits wait for it again.
    standby.start();
    primary.sql("postgres", "ALTER SYSTEM RESET synchronous_standby_names");
    primary.sql("postgres", "SELECT pg_reload_conf()");
    let h = reads_go_to(&base, "standby").await;
    assert_eq!(h["status"], "ok", "{h}");

    // The primary lost while writes go on; the DBA promotes the standby; the server
    // writes there by itself, and every write it acknowledged is on it.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let (client, base, stop, acked) = (client.clone(), base.clone(), stop.clone(), acked.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                if let Some(id) = try_create(&client, &base, &format!("Failover{n}")).await {
                    acked.lock().unwrap().push(id);
                } else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    primary.stop("immediate");
    let before_promotion = acked.lock().unwrap().len();
    assert!(before_promotion > 0, "writes were acknowledged before the primary was lost");
    as_postgres("pg_ctl", &["-D", &standby.data(), "-w", "promote"]);
    let started = Instant::now();
    while acked.lock().unwrap().len() < before_promotion + 5 {
        assert!(started.elapsed() < Duration::from_secs(90), "writes never resumed on the promoted standby");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    for id in &acked {
        let r = client.get(format!("{base}/fhir/Patient/{id}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "acknowledged Patient/{id} is on the promoted standby");
    }
    let on_standby: i64 = standby
        .sql("lianyi", "SELECT COUNT(*) FROM resources WHERE res_type = 'Patient' AND deleted = 0")
        .parse()
        .unwrap();
    assert!(on_standby >= 20 + 15 + acked.len() as i64, "{on_standby} patients on the promoted standby");
    assert_eq!(health(&base).await["database"]["status"], "ok");
    server.kill().unwrap();
    server.wait().unwrap();
    drop(standby);
    drop(primary);
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn the_database_unreachable_for_30_s_gets_503_and_no_ack_and_everything_resumes_with_nothing_lost() {
    if lianyi_store::testing::backend_under_test() != "postgres" {
        eprintln!("the outage test runs in the PostgreSQL pass (it stops its own cluster)");
        return;
    }
    let root = std::env::temp_dir().join(format!("lianyi-outage-{}", std::process::id()));
    let db = Cluster::primary(&root, false);
    db.sql("postgres", "CREATE DATABASE lianyi");
    let work = tempfile::tempdir().unwrap();
    let url = db.url("lianyi");
    let (id, secret) = cli_client(work.path(), &url);
    let (mut server, base, mllp) = serve_with_mllp(work.path(), &url);
    let client = crate::helpers::authorized(&base, &id, &secret).await;
    let before = create_patient(&client, &base, "Outage").await;
    let out = Command::new(env!("CARGO_BIN_EXE_lianyi"))
        .args(["user", "add", "doctor.outage", "--name", "医生", "--role", "doctor@campus-east", "--data-dir"])
        .arg(work.path())
        .args(["--database", &url])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    let initial = said.split("initial password: ").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let (mut doctor, _) = crate::process::cli_user_signed_in(&base, "doctor.outage", &initial).await;
    let hl7 = |f: &str| std::fs::read(format!("{}/../../tests/hl7/{f}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    assert_eq!(msa(&mllp_exchange(&mllp, &[hl7("adt_a01.hl7")])[0]).0, "AA");

    // Down: the API answers 503 with an OperationOutcome, MLLP sends no ACK.
    db.stop("fast");
    let down = Instant::now();
    let r = client.get(format!("{base}/fhir/Patient/{before}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"));
    let o: Value = r.json().await.unwrap();
    assert_eq!(o["resourceType"], "OperationOutcome");
    assert_eq!(o["issue"][0]["code"], "transient", "{o}");
    let r = client
        .post(format!("{base}/fhir/Patient"))
        .header("content-type", "application/fhir+json")
        .body(json!({"resourceType": "Patient", "name": [{"family": "Lost"}]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let h = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(h.status(), StatusCode::SERVICE_UNAVAILABLE);
    let (status, _, page) = doctor.get("/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{page}");
    assert!(page.contains("数据库暂时无法连接"), "a page says the database does not answer: {page}");
    let mut sock = std::net::TcpStream::connect(&mllp).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
    let e = mllp_roundtrip(&mut sock, &hl7("oru_r01.hl7")).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "the connection closes without an ACK");

    // Back after 30 s: everything resumes by itself; the resent message is applied.
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(down.elapsed())).await;
    db.start();
    let started = Instant::now();
    loop {
        let r = client.get(format!("{base}/fhir/Patient/{before}")).send().await.unwrap();
        if r.status() == StatusCode::OK {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the API did not come back: {}", r.status());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    create_patient(&client, &base, "AfterOutage").await;
    let (status, _, _) = doctor.get("/").await;
    assert_eq!(status, StatusCode::OK, "the doctor's session goes on");
    assert_eq!(msa(&mllp_exchange(&mllp, &[hl7("oru_r01.hl7")])[0]).0, "AA");
    let b: Value = client.get(format!("{base}/fhir/Patient?name=Lost")).send().await.unwrap().json().await.unwrap();
    assert_eq!(b["total"], 0, "the refused create left nothing: {b}");
    assert_eq!(reqwest::get(format!("{base}/healthz")).await.unwrap().status(), StatusCode::OK);
    server.kill().unwrap();
    server.wait().unwrap();
    drop(db);
    let _ = std::fs::remove_dir_all(&root);
}
