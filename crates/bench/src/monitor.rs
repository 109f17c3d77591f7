//! `lianyi-bench monitor [--cis N] [--probes N] [--minutes M] [--days D]
//! [--history-step S] [--requests N] [--database URL] [--out FILE]`: monitoring at a
//! large group's scale.
//!
//! 1. The CMDB of `--cis` configuration items (2,000 by default, the group the CMDB
//!    benchmark generates) and `--probes` probes on them (10,000, each every 60 s: TCP
//!    connects and HTTP checks against listeners this benchmark runs; the probes of
//!    one printer in twenty point at a closed port, so alerts and incidents are open).
//! 2. `--days` of history (30) written straight into the database while the server is
//!    stopped, for the first probe of each CI, one run every `--history-step` seconds
//!    (300): the last 7 days raw (runs and samples), the older days as the rollups the
//!    server's retention would have left (5-minute and hourly buckets).
//! 3. The server started again on that database: after a minute (the restart's backlog)
//!    `--minutes` of sustained checking (3), with the checks done per minute, how late
//!    the probes ran (the gap between a probe's runs against its interval), the
//!    server's CPU share and memory; meanwhile the status wall (`/ops/monitor`,
//!    signed in as an IT engineer) requested `--requests` times one at a time.
//! 4. Failure to incident: three probes every 30 s on their own listeners; each
//!    listener closed at a different moment of its interval (0, 10 and 20 s after a
//!    successful check: the worst case first), and the time until its incident is
//!    open measured, against two intervals.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Row;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::cmdb::load_group;
use crate::mllp::cpu_seconds;
use crate::pages::Session;
use crate::{percentile, rss_kb};

struct Opts {
    cis: usize,
    probes: usize,
    minutes: u64,
    days: i64,
    history_step_s: i64,
    requests: usize,
    database: Option<String>,
    out: String,
}

fn opts(raw: Vec<String>) -> Opts {
    let mut o = Opts {
        cis: 2_000,
        probes: 10_000,
        minutes: 3,
        days: 30,
        history_step_s: 300,
        requests: 200,
        database: None,
        out: "bench-monitor.json".into(),
    };
    let mut it = raw.into_iter();
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--cis" => o.cis = v().parse().expect("--cis N"),
            "--probes" => o.probes = v().parse().expect("--probes N"),
            "--minutes" => o.minutes = v().parse().expect("--minutes M"),
            "--days" => o.days = v().parse().expect("--days D"),
            "--history-step" => o.history_step_s = v().parse().expect("--history-step SECONDS"),
            "--requests" => o.requests = v().parse().expect("--requests N"),
            "--database" => o.database = Some(v()),
            "--out" => o.out = v(),
            other => panic!("unknown option {other}"),
        }
    }
    o
}

/// A TCP listener that accepts and closes; the task's handle closes the port.
async fn tcp_target() -> (String, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            drop(s);
        }
    });
    (addr, task)
}

/// A minimal HTTP server: every request gets `200 ok`.
async fn http_target() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/health", l.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                    .await;
            });
        }
    });
    url
}

/// A port nothing listens on.
async fn closed_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().to_string()
}

/// POSTs probes, eight at a time; returns their ids.
async fn create_probes(http: &reqwest::Client, base: &str, bodies: Vec<Value>) -> Vec<i64> {
    let mut ids = vec![0; bodies.len()];
    let mut set = tokio::task::JoinSet::new();
    let mut pending = bodies.into_iter().enumerate();
    loop {
        while set.len() < 8 {
            let Some((i, body)) = pending.next() else { break };
            let (http, url) = (http.clone(), format!("{base}/api/ops/probes"));
            set.spawn(async move {
                let r = http.post(url).json(&body).send().await.unwrap();
                let status = r.status();
                let v: Value = r.json().await.unwrap();
                assert!(status.is_success(), "probe {body}: {status} {v}");
                (i, v["id"].as_i64().unwrap())
            });
        }
        let Some(done) = set.join_next().await else { break };
        let (i, id) = done.unwrap();
        ids[i] = id;
    }
    ids
}

/// Writes `days` of history for `probes` (TCP-like: `up` and `latency_ms`): raw runs
/// and samples for the last 7 days, 5-minute and hourly rollups before that, as
/// retention leaves them. The rows are generated by the database itself (a recursive
/// series of instants crossed with the probes), a hundred probes per transaction.
/// Returns the rows written.
async fn seed_history(database: &str, probes: &[i64], now: i64, days: i64, step_s: i64) -> u64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(database).await.unwrap();
    let (step, hour, day) = (step_s.max(60) * 1_000, 3_600_000_i64, 86_400_000_i64);
    let start = now - days * day;
    let raw_from = now - 7 * day;
    let (start, raw_from) = (start - start.rem_euclid(hour), raw_from - raw_from.rem_euclid(hour));
    // Latency: a daily wave, a little noise, and a bad hour now and then.
    let latency = "(2.0 + ((t.at / 3600000 + p.id) % 24) * 0.125 + ((t.at / 300000 + p.id * 7) % 13) / 10.0 \
                   + CASE WHEN (t.at / 3600000 + p.id) % 500 = 0 THEN 40.0 ELSE 0.0 END)";
    let series = |from: i64, to: i64, step: i64| {
        format!("WITH RECURSIVE t(at) AS (SELECT {from} UNION ALL SELECT at + {step} FROM t WHERE at + {step} < {to}) ")
    };
    let per_hour = hour / step;
    let mut rows = 0u64;
    for chunk in probes.chunks(100) {
        let ids = chunk.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let probes = format!("(SELECT id FROM ops_probes WHERE id IN ({ids})) p");
        let statements = [
            format!(
                "INSERT INTO ops_probe_runs (probe, at, up, source) {} SELECT p.id, t.at, 1, 'central' FROM t, {probes}",
                series(raw_from, now, step)
            ),
            format!(
                "INSERT INTO ops_samples (probe, metric, at, value) {} SELECT p.id, 'up', t.at, 1.0 FROM t, {probes}",
                series(raw_from, now, step)
            ),
            format!(
                "INSERT INTO ops_samples (probe, metric, at, value) {} SELECT p.id, 'latency_ms', t.at, {latency} FROM t, {probes}",
                series(raw_from, now, step)
            ),
            format!(
                "INSERT INTO ops_rollups (probe, metric, span, bucket, n, lo, total, hi) {} \
                 SELECT p.id, m.metric, 300000, t.at, 1, m.up + (1 - m.up) * {latency}, m.up + (1 - m.up) * {latency}, \
                 m.up + (1 - m.up) * {latency} FROM t, {probes}, (SELECT 'up' AS metric, 1 AS up UNION ALL SELECT 'latency_ms', 0) m",
                series(start, raw_from, step.max(300_000))
            ),
            format!(
                "INSERT INTO ops_rollups (probe, metric, span, bucket, n, lo, total, hi) {} \
                 SELECT p.id, m.metric, 3600000, t.at, {per_hour}, m.up + (1 - m.up) * ({latency} - 0.4), \
                 m.up * {per_hour} + (1 - m.up) * {latency} * {per_hour}, m.up + (1 - m.up) * ({latency} + 1.1) \
                 FROM t, {probes}, (SELECT 'up' AS metric, 1 AS up UNION ALL SELECT 'latency_ms', 0) m",
                series(start, raw_from, hour)
            ),
        ];
        let mut tx = pool.begin().await.unwrap();
        for sql in statements {
            rows += sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *tx).await.unwrap().rows_affected();
        }
        tx.commit().await.unwrap();
    }
    let _ = sqlx::raw_sql("ANALYZE").execute(&pool).await;
    pool.close().await;
    rows
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

pub async fn run(raw: Vec<String>) {
    let o = opts(raw);
    let dir = std::env::temp_dir().join(format!("lianyi-bench-monitor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let database = o.database.clone().unwrap_or_else(|| format!("sqlite://{}", dir.join("lianyi.db").display()));
    let backend = if database.starts_with("postgres") { "PostgreSQL" } else { "SQLite" };
    println!(
        "Monitoring benchmark on {backend}: {} CIs, {} probes every 60 s, {} days of history",
        o.cis, o.probes, o.days
    );

    // 1. The group and its probes.
    let mut tcp = Vec::new();
    for _ in 0..4 {
        tcp.push(tcp_target().await);
    }
    let http_url = http_target().await;
    let dead = closed_port().await;
    let server = crate::start_server(&database, &dir).await;
    let (base, http) = (server.base.clone(), server.http.clone());
    let (group, _) = load_group(&http, &base, o.cis).await;
    let codes: Vec<String> =
        group.csv.lines().skip(1).map(|l| l.split(',').next().unwrap_or_default().to_string()).collect();
    let mut bodies = Vec::with_capacity(o.probes);
    let mut down_cis = std::collections::BTreeSet::new();
    for i in 0..o.probes {
        let c = i % codes.len();
        // One printer in twenty is switched off (a device alone, nothing depends on it).
        let down = codes[c].starts_with("PRN-") && c.is_multiple_of(20);
        if down {
            down_cis.insert(c);
        }
        let body = if down {
            json!({"ci": codes[c], "kind": "tcp", "target": dead, "interval": 60, "timeout": 2000})
        } else if i % 10 < 7 {
            json!({"ci": codes[c], "kind": "tcp", "target": tcp[i % tcp.len()].0, "interval": 60, "timeout": 2000})
        } else {
            json!({"ci": codes[c], "kind": "http", "target": http_url, "interval": 60, "timeout": 2000, "expectText": "ok"})
        };
        bodies.push(body);
    }
    let t = Instant::now();
    let ids = create_probes(&http, &base, bodies).await;
    let create_s = t.elapsed().as_secs_f64();
    println!(
        "  {} CIs imported; {} probes created in {create_s:.1} s ({:.0}/s); {} CIs have a probe on a closed port",
        codes.len(),
        ids.len(),
        ids.len() as f64 / create_s,
        down_cis.len()
    );
    drop(server);

    // 2. History, with the server stopped.
    let t = Instant::now();
    let first_of_each: Vec<i64> = ids.iter().take(codes.len()).copied().collect();
    let rows = seed_history(&database, &first_of_each, now_ms(), o.days, o.history_step_s).await;
    let seed_s = t.elapsed().as_secs_f64();
    let disk_mb = if backend == "SQLite" { crate::dir_size(&dir) as f64 / 1e6 } else { 0.0 };
    println!(
        "  history: {rows} rows ({} probes, one run per {} s over {} days) written in {seed_s:.0} s{}",
        first_of_each.len(),
        o.history_step_s,
        o.days,
        if disk_mb > 0.0 { format!("; database {disk_mb:.0} MB") } else { String::new() }
    );

    // 3. Sustained checking.
    let server = crate::start_server(&database, &dir).await;
    let (base, http) = (server.base.clone(), server.http.clone());
    let pid = server.child.id();
    let (mut wall, _) = Session::log_in(&base, crate::BENCH_IT_USER, crate::BENCH_IT_PASSWORD).await;
    println!("  server restarted; a minute for the restart's backlog …");
    tokio::time::sleep(Duration::from_secs(65)).await;
    let (t0, cpu0, wall_clock) = (now_ms(), cpu_seconds(pid), Instant::now());
    let window = Duration::from_secs(o.minutes * 60);
    let mut peak_rss = rss_kb(pid);
    let mut times = Vec::new();
    let mut tiles = 0;
    while wall_clock.elapsed() < window {
        if times.len() < o.requests {
            let t = Instant::now();
            let (status, _, page) = wall.get("/ops/monitor").await;
            times.push(t.elapsed().as_secs_f64() * 1_000.0);
            assert_eq!(status, 200, "the status wall");
            tiles = page.matches("class=\"tile ").count();
        }
        peak_rss = peak_rss.max(rss_kb(pid));
        let spread = window.as_millis() as u64 / o.requests.max(1) as u64;
        tokio::time::sleep(Duration::from_millis(spread.clamp(50, 1_000))).await;
    }
    let (t1, cpu1) = (now_ms(), cpu_seconds(pid));
    let secs = (t1 - t0) as f64 / 1_000.0;
    let cpu_share = (cpu1 - cpu0) / secs;
    // The checks started before the window closed are recorded before they are counted.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&database).await.unwrap();
    let done: i64 = sqlx::query("SELECT COUNT(*) FROM ops_probe_runs WHERE at >= $1 AND at < $2")
        .bind(t0)
        .bind(t1)
        .fetch_one(&pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    let per_min = done as f64 / secs * 60.0;
    // How regularly each probe ran: the gaps between its consecutive runs in the window.
    let runs = sqlx::query("SELECT probe, at FROM ops_probe_runs WHERE at >= $1 AND at < $2 ORDER BY probe, at")
        .bind(t0 - 120_000)
        .bind(t1)
        .fetch_all(&pool)
        .await
        .unwrap();
    let mut gaps = Vec::new();
    let mut last: Option<(i64, i64)> = None;
    for r in &runs {
        let (p, at): (i64, i64) = (r.try_get(0).unwrap(), r.try_get(1).unwrap());
        if let Some((lp, la)) = last
            && lp == p
            && at >= t0
        {
            gaps.push((at - la) as f64 / 1_000.0);
        }
        last = Some((p, at));
    }
    pool.close().await;
    gaps.sort_by(f64::total_cmp);
    times.sort_by(f64::total_cmp);
    let (w50, w95, w99) = (percentile(&times, 0.5), percentile(&times, 0.95), percentile(&times, 0.99));
    println!(
        "  sustained {secs:.0} s: {done} checks = {per_min:.0} per minute; gap between a probe's runs p50 {:.1} s, p95 {:.1} s, max {:.1} s (interval 60 s)",
        percentile(&gaps, 0.5),
        percentile(&gaps, 0.95),
        gaps.last().copied().unwrap_or(0.0)
    );
    println!(
        "  server CPU {:.0} % of one core ({:.2} ms per check); RSS peak {} MB",
        cpu_share * 100.0,
        (cpu1 - cpu0) * 1_000.0 / done.max(1) as f64,
        peak_rss / 1_024
    );
    println!(
        "  status wall /ops/monitor ({tiles} systems, under that load), {} requests: p50 {w50:.1} ms  p95 {w95:.1} ms  p99 {w99:.1} ms",
        times.len()
    );

    // 4. Failure to an open incident.
    let mut watched = Vec::new();
    for (n, code) in ["SYS-1", "SYS-2", "SYS-3"].iter().enumerate() {
        let (addr, task) = tcp_target().await;
        let r = http
            .post(format!("{base}/api/ops/probes"))
            .json(&json!({"ci": code, "kind": "tcp", "target": addr, "interval": 30, "timeout": 2000}))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert!(status.is_success(), "probe on {code}: {v}");
        watched.push((n, v["id"].as_i64().unwrap(), task));
    }
    // Each up once, then its port closed.
    for (_, id, _) in &watched {
        let started = Instant::now();
        loop {
            let v: Value = http.get(format!("{base}/api/ops/probes/{id}")).send().await.unwrap().json().await.unwrap();
            if v["lastUp"] == json!(true) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(120), "probe {id} never ran");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Each port closed at a different moment of its probe's interval (0, 10 and 20 s
    // after a successful check): detection waits for the next check, then for the
    // second failed one.
    let mut failed_at = Vec::new();
    let first = Instant::now();
    for (n, _, task) in &watched {
        tokio::time::sleep_until((first + Duration::from_secs(10 * *n as u64)).into()).await;
        task.abort();
        failed_at.push(Instant::now());
    }
    let mut to_incident = vec![None; watched.len()];
    let started = Instant::now();
    while to_incident.iter().any(Option::is_none) && started.elapsed() < Duration::from_secs(180) {
        let v: Value = http.get(format!("{base}/api/ops/alerts?open=true")).send().await.unwrap().json().await.unwrap();
        for (k, (_, id, _)) in watched.iter().enumerate() {
            let open = v["alerts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| a["probe"] == json!(id) && a["metric"] == "up" && a["incident"].is_i64());
            if open && to_incident[k].is_none() {
                to_incident[k] = Some(failed_at[k].elapsed().as_secs_f64());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if to_incident.iter().any(Option::is_none) {
        let v: Value = http
            .get(format!("{base}/api/ops/alerts?open=true"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .parse()
            .unwrap();
        panic!("no incident within three minutes; the open alerts: {v}");
    }
    let incident_s: Vec<f64> = to_incident.iter().flatten().copied().collect();
    println!(
        "  failure to open incident (interval 30 s; the port closed 0, 10, 20 s after a check): {}",
        incident_s.iter().map(|s| format!("{s:.1} s ({:.2} intervals)", s / 30.0)).collect::<Vec<_>>().join(", ")
    );
    let report = json!({
        "backend": backend, "cis": codes.len(), "probes": ids.len(), "probe_create_s": create_s,
        "history": {"days": o.days, "step_s": o.history_step_s, "probes": first_of_each.len(), "rows": rows, "seed_s": seed_s, "sqlite_mb": disk_mb},
        "sustained": {"seconds": secs, "checks": done, "checks_per_minute": per_min,
            "gap_p50_s": percentile(&gaps, 0.5), "gap_p95_s": percentile(&gaps, 0.95), "gap_max_s": gaps.last(),
            "server_cpu_share": cpu_share, "server_cpu_ms_per_check": (cpu1 - cpu0) * 1_000.0 / done.max(1) as f64,
            "rss_peak_mb": peak_rss / 1_024},
        "status_wall": {"tiles": tiles, "requests": times.len(), "p50_ms": w50, "p95_ms": w95, "p99_ms": w99},
        "failure_to_incident_s": incident_s,
    });
    std::fs::write(&o.out, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("  JSON: {}", o.out);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
