//! Issue 18's figures.
//!
//! `lianyi-bench backup [--resources N] [--database URL] [--verify]`: loads N
//! generated resources through the API (the same patients as the main benchmark),
//! stops the server, then times the real `lianyi backup` (next to this binary) and
//! `lianyi restore` into an empty target (a new data folder on SQLite, a new database
//! beside the source on PostgreSQL), and with `--verify` `lianyi backup verify`.
//! Reports the database's size, the backup file's size and each step's time.
//!
//! `lianyi-bench standby --primary URL --standby URL [--resources N] [--clients C]
//! [--seconds S]`: a PostgreSQL primary and its streaming standby (made beforehand,
//! see BENCHMARKS.md). Loads N resources into the primary, waits until the standby has
//! replayed them, then runs the same search mix with C clients for S seconds twice:
//! a server on the primary alone, then one with `--read-database` on the standby. The
//! standby's own statistics (index and sequential scans) show that it served.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::Row;

use crate::{Server, dir_size, ingest, percentile, pg_database_size, start_server, start_server_with};

fn lianyi() -> PathBuf {
    let path = std::env::current_exe().unwrap().with_file_name("lianyi");
    assert!(path.exists(), "{} is missing: cargo build --release -p lianyi first", path.display());
    path
}

/// Runs `lianyi args…`, panicking with its stderr if it fails; (stdout, seconds).
fn timed(args: &[&str]) -> (String, f64) {
    let t = Instant::now();
    let out = Command::new(lianyi()).args(args).env("LIANYI_LOG", "warn").output().unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(out.status.success(), "lianyi {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    (String::from_utf8_lossy(&out.stdout).to_string(), secs)
}

/// Runs `sql` on the database `url` names (outside a transaction: CREATE DATABASE).
async fn pg_execute(url: &str, sql: &str) {
    let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).execute(&pool).await.unwrap();
    pool.close().await;
}

/// `postgres://…/name` → (`postgres://…/postgres`, `name`).
fn pg_split(url: &str) -> (String, String) {
    let (base, name) = url.rsplit_once('/').unwrap();
    (format!("{base}/postgres"), name.split('?').next().unwrap().to_string())
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

pub async fn backup(raw: Vec<String>) {
    let (mut resources, mut database, mut verify, mut out) =
        (1_000_000usize, None::<String>, false, "bench-backup.json".to_string());
    let mut it = raw.into_iter();
    while let Some(k) = it.next() {
        match k.as_str() {
            "--resources" => resources = it.next().and_then(|v| v.parse().ok()).expect("--resources N"),
            "--database" => database = it.next(),
            "--verify" => verify = true,
            "--out" => out = it.next().expect("--out FILE"),
            _ => {
                println!("lianyi-bench backup [--resources N] [--database postgres://…/DB] [--verify] [--out FILE]");
                return;
            }
        }
    }
    sqlx::any::install_default_drivers();
    let dir = std::env::temp_dir().join(format!("lianyi-bench-backup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = database.clone().unwrap_or_else(|| format!("sqlite://{}", dir.join("lianyi.db").display()));
    let backend = if url.starts_with("postgres") { "PostgreSQL" } else { "SQLite" };
    println!("Backup and restore benchmark on {backend}: {resources} resources");

    let server = start_server(&url, &dir).await;
    let t = Instant::now();
    let peak = Arc::new(AtomicUsize::new(0));
    let (loaded, _) = ingest(&server, resources, 500, 4, &peak, |_| {}).await;
    println!("  loaded {loaded} resources in {:.0} s", t.elapsed().as_secs_f64());
    drop(server);
    let db_bytes = if database.is_some() { pg_database_size(&url).await } else { dir_size(&dir) };

    let d = dir.to_str().unwrap();
    let to = dir.join("backups");
    let (said, backup_secs) = timed(&["backup", "--to", to.to_str().unwrap(), "--data-dir", d, "--database", &url]);
    let file = said.lines().last().unwrap().trim().to_string();
    let file_bytes = std::fs::metadata(&file).unwrap().len();
    println!("  backup   {backup_secs:>7.1} s   {:.0} MB database -> {:.0} MB file", mb(db_bytes), mb(file_bytes));

    let verify_secs = verify.then(|| {
        let (_, secs) = timed(&["backup", "verify", &file, "--data-dir", d, "--database", &url]);
        println!("  verify   {secs:>7.1} s");
        secs
    });

    let restored_dir = dir.join("restored");
    let (restored_url, drop_after) = match &database {
        None => (format!("sqlite://{}", restored_dir.join("lianyi.db").display()), None),
        Some(u) => {
            let (admin, name) = pg_split(u);
            let target = format!("{name}_restored");
            pg_execute(&admin, &format!("DROP DATABASE IF EXISTS {target}")).await;
            pg_execute(&admin, &format!("CREATE DATABASE {target}")).await;
            (format!("{}/{target}", admin.rsplit_once('/').unwrap().0), Some((admin, target)))
        }
    };
    std::fs::create_dir_all(&restored_dir).unwrap();
    // The operator brings the backup key (kept away from the machine) to the target.
    std::fs::copy(dir.join("backup.key"), restored_dir.join("backup.key")).unwrap();
    let (_, restore_secs) =
        timed(&["restore", &file, "--data-dir", restored_dir.to_str().unwrap(), "--database", &restored_url]);
    let restored_bytes =
        if database.is_some() { pg_database_size(&restored_url).await } else { dir_size(&restored_dir) };
    println!("  restore  {restore_secs:>7.1} s   -> {:.0} MB database", mb(restored_bytes));

    let report = json!({
        "backend": backend, "resources": loaded, "database_bytes": db_bytes,
        "backup_seconds": backup_secs, "backup_file_bytes": file_bytes,
        "verify_seconds": verify_secs, "restore_seconds": restore_secs, "restored_database_bytes": restored_bytes,
    });
    std::fs::write(&out, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("  JSON: {out}");
    if let Some((admin, target)) = drop_after {
        pg_execute(&admin, &format!("DROP DATABASE IF EXISTS {target}")).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The search mix: a patient's recent labs (chained identifier, category, sort) and
/// a patient by identifier, over the loaded patients.
fn query(n: usize, patients: usize) -> String {
    let p = n * 7919 % patients.max(1);
    if n.is_multiple_of(2) {
        format!(
            "Observation?subject:Patient.identifier=urn:lianyi:sid:mrn:bench%7CB{p:08}&category=laboratory&_sort=-date&_count=10"
        )
    } else {
        format!("Patient?identifier=urn:lianyi:sid:mrn:bench%7CB{p:08}")
    }
}

/// `clients` clients searching for `seconds`: (searches a second, p50 ms, p95 ms).
async fn searches(server: &Server, patients: usize, clients: usize, seconds: u64) -> (f64, f64, f64) {
    let until = Instant::now() + Duration::from_secs(seconds);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, base, next) = (server.http.clone(), server.base.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::new();
            while Instant::now() < until {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                let r = http.get(format!("{base}/fhir/{}", query(n, patients))).send().await.unwrap();
                assert!(r.status().is_success(), "search: {}", r.status());
                r.bytes().await.unwrap();
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            times
        }));
    }
    let mut times = Vec::new();
    for t in tasks {
        times.extend(t.await.unwrap());
    }
    times.sort_by(|a, b| a.total_cmp(b));
    (times.len() as f64 / seconds as f64, percentile(&times, 0.5), percentile(&times, 0.95))
}

/// Index and sequential scans the database at `url` has made of Lianyi's tables.
async fn scans(url: &str) -> i64 {
    let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(url).await.unwrap();
    let row = sqlx::query(
        "SELECT (COALESCE(sum(idx_scan), 0) + COALESCE(sum(seq_scan), 0))::BIGINT FROM pg_stat_user_tables",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    row.try_get::<i64, _>(0).unwrap()
}

/// Waits until the standby has replayed everything the primary has written.
async fn caught_up(primary: &str, standby: &str) -> f64 {
    let t = Instant::now();
    let p = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(primary).await.unwrap();
    let s = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(standby).await.unwrap();
    let target: String =
        sqlx::query("SELECT pg_current_wal_lsn()::TEXT").fetch_one(&p).await.unwrap().try_get(0).unwrap();
    loop {
        let behind: bool =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT pg_last_wal_replay_lsn() < '{target}'::pg_lsn")))
                .fetch_one(&s)
                .await
                .unwrap()
                .try_get(0)
                .unwrap();
        if !behind {
            return t.elapsed().as_secs_f64();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn standby(raw: Vec<String>) {
    let (mut primary, mut standby) = (None::<String>, None::<String>);
    let (mut resources, mut clients, mut seconds, mut out) =
        (100_000usize, 8usize, 30u64, "bench-standby.json".to_string());
    let mut it = raw.into_iter();
    while let Some(k) = it.next() {
        match k.as_str() {
            "--primary" => primary = it.next(),
            "--standby" => standby = it.next(),
            "--resources" => resources = it.next().and_then(|v| v.parse().ok()).expect("--resources N"),
            "--clients" => clients = it.next().and_then(|v| v.parse().ok()).expect("--clients N"),
            "--seconds" => seconds = it.next().and_then(|v| v.parse().ok()).expect("--seconds S"),
            "--out" => out = it.next().expect("--out FILE"),
            _ => {
                println!(
                    "lianyi-bench standby --primary postgres://…/DB --standby postgres://…/DB [--resources N] [--clients C] [--seconds S] [--out FILE]"
                );
                return;
            }
        }
    }
    let (primary, standby) = (primary.expect("--primary URL"), standby.expect("--standby URL"));
    sqlx::any::install_default_drivers();
    let dir = std::env::temp_dir().join(format!("lianyi-bench-standby-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!("Standby read benchmark: {resources} resources, {clients} clients, {seconds} s per run");

    let server = start_server(&primary, &dir).await;
    let peak = Arc::new(AtomicUsize::new(0));
    let (loaded, patients) = ingest(&server, resources, 500, 4, &peak, |_| {}).await;
    drop(server);
    lianyi_store::Store::connect(&primary).await.unwrap().refresh_statistics().await.unwrap();
    let lag = caught_up(&primary, &standby).await;
    println!("  loaded {loaded} resources ({patients} patients); the standby caught up {lag:.1} s later");

    let runs = [("primary only", None), ("with --read-database", Some(standby.as_str()))];
    let mut report = Vec::new();
    for (name, read) in runs {
        let env: Vec<(&str, &str)> = read.map(|u| ("LIANYI_BENCH_READ_DATABASE", u)).into_iter().collect();
        let server = start_server_with(&primary, &dir, &env).await;
        // Warm-up: statement caches, the standby's watch.
        searches(&server, patients, clients, 3).await;
        let (p0, s0) = (scans(&primary).await, scans(&standby).await);
        let (rate, p50, p95) = searches(&server, patients, clients, seconds).await;
        let (p1, s1) = (scans(&primary).await, scans(&standby).await);
        println!(
            "  {name:<22} {rate:>7.0} searches/s   p50 {p50:>6.2} ms   p95 {p95:>6.2} ms   scans: primary {} standby {}",
            p1 - p0,
            s1 - s0
        );
        report.push(json!({"run": name, "searches_per_s": rate, "p50_ms": p50, "p95_ms": p95,
                           "primary_scans": p1 - p0, "standby_scans": s1 - s0}));
        drop(server);
    }
    let report =
        json!({"resources": loaded, "patients": patients, "clients": clients, "seconds": seconds, "runs": report});
    std::fs::write(&out, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("  JSON: {out}");
    let _ = std::fs::remove_dir_all(&dir);
}
