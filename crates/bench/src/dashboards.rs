//! `lianyi-bench dashboards`: the management dashboards on a demo with a year of
//! activity at three campuses. Starts `lianyi demo --history-days N` (the real
//! binary), waits until the dashboards' follower has counted the replayed year (its
//! lag on `/metrics` is 0), then renders, one request at a time:
//! the group over the year, one campus over the year, one department over the year,
//! the group over the last 30 days, and the group's CSV over the year.
//!
//! Times are measured by the client over loopback (HTTP included).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::pages::{DEMO_PASSWORD, Session, between, measure, start_demo};

struct Options {
    days: i64,
    requests: usize,
    out: String,
}

fn options(raw: Vec<String>) -> Option<Options> {
    let mut o = Options { days: 365, requests: 200, out: "bench-dashboards.json".into() };
    let mut it = raw.into_iter();
    while let Some(k) = it.next() {
        match k.as_str() {
            "--days" => o.days = it.next()?.parse().ok()?,
            "--requests" => o.requests = it.next()?.parse().ok()?,
            "--out" => o.out = it.next()?,
            _ => return None,
        }
    }
    Some(o)
}

/// `YYYY-MM-DD` of Beijing, `days` before today.
fn beijing_day(days_ago: i64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    lianyi_fhir::datetime::format_instant(now + 8 * 3_600_000 - days_ago * 86_400_000)[..10].to_string()
}

pub async fn run(raw: Vec<String>) {
    let Some(o) = options(raw) else {
        println!("lianyi-bench dashboards [--days 365] [--requests 200] [--out FILE]");
        return;
    };
    let t = Instant::now();
    let days = o.days.to_string();
    let (_demo, base, dir) = start_demo("dashboards", &["--history-days", &days], Duration::from_secs(1800)).await;
    let demo_secs = t.elapsed().as_secs_f64();
    let (mut manager, _) = Session::log_in(&base, "manager", DEMO_PASSWORD).await;
    let (from, to) = (beijing_day(o.days - 1), beijing_day(0));
    let year = format!("from={from}&to={to}");

    // The follower counts the replayed year after the server starts: wait until it
    // has read every event (the server's own gauge), then read the year's visits.
    let t = Instant::now();
    let probe = crate::http_client();
    loop {
        let metrics = probe.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        let lag = metrics
            .lines()
            .find_map(|l| l.strip_prefix("lianyi_dashboard_lag_events "))
            .and_then(|v| v.trim().parse::<f64>().ok());
        if lag == Some(0.0) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(1800), "the dashboards did not catch up");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (status, _, page) = manager.get(&format!("/manage/dashboard?{year}")).await;
    assert_eq!(status, 200);
    let visits = between(between(&page, "id=\"dash-total\"", "</div></div>"), "<strong>", "</strong>").to_string();
    let catch_up = t.elapsed().as_secs_f64();
    println!(
        "Dashboards on the demo (SQLite) with {} days at three campuses: {visits} visits counted; demo ready in {demo_secs:.0} s, \
         figures current {catch_up:.0} s after it started serving; {} requests per page, one at a time",
        o.days, o.requests
    );
    let thirty = format!("from={}&to={to}", beijing_day(29));
    let mut results = Vec::new();
    for (name, path) in [
        ("group, a year", format!("/manage/dashboard?{year}")),
        ("campus, a year", format!("/manage/dashboard?{year}&campus=campus-east")),
        ("department, a year", format!("/manage/dashboard?{year}&campus=campus-east&department=campus-east-im")),
        ("group, 30 days", format!("/manage/dashboard?{thirty}")),
        ("group CSV, a year", format!("/manage/dashboard.csv?{year}")),
    ] {
        let (p50, p95, p99) = measure(&mut manager, &path, o.requests).await;
        println!("  {name:<20} p50 {p50:>6.2} ms   p95 {p95:>6.2} ms   p99 {p99:>6.2} ms");
        results.push(json!({"page": name, "path": path, "p50_ms": p50, "p95_ms": p95, "p99_ms": p99}));
    }
    let report = json!({"history_days": o.days, "visits": visits, "demo_ready_s": demo_secs,
                        "figures_current_s": catch_up, "requests_per_page": o.requests, "pages": results});
    std::fs::write(&o.out, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("  JSON: {}", o.out);
    let _ = std::fs::remove_dir_all(&dir);
}
