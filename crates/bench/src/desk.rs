//! `lianyi-bench desk [--tickets N] [--requests N] [--database URL] [--out FILE]`: the
//! service desk of a large hospital group at N tickets (100,000 by default) — faults
//! of printers, terminals, HIS, PACS, the network and the medical devices in four
//! campuses, phoned in through `POST /api/ops/incidents` by sixteen clients at once —
//! then the ticket list and the ticket search through `GET
//! /api/ops/incidents` one request at a time (HTTP, the SLA clocks of the page and the
//! JSON answer included): the newest page, a page deep in the list (keyset paging,
//! no count), and searches for common and rare two-character words, two words, and a
//! word no ticket has.

use std::time::Instant;

use serde_json::{Value, json};

struct Opts {
    tickets: usize,
    requests: usize,
    database: Option<String>,
    out: String,
}

fn opts(raw: Vec<String>) -> Opts {
    let mut o = Opts { tickets: 100_000, requests: 300, database: None, out: "bench-desk.json".into() };
    let mut it = raw.into_iter();
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--tickets" => o.tickets = v().parse().expect("--tickets N"),
            "--requests" => o.requests = v().parse().expect("--requests N"),
            "--database" => o.database = Some(v()),
            "--out" => o.out = v(),
            other => panic!("unknown option {other}"),
        }
    }
    o
}

/// (thing, category) the faults are about, and what goes wrong.
const THINGS: &[(&str, &str)] = &[
    ("打印机", "printer"),
    ("腕带打印机", "printer"),
    ("票据打印机", "printer"),
    ("电脑", "hardware"),
    ("扫码枪", "hardware"),
    ("HIS 客户端", "software"),
    ("PACS 工作站", "software"),
    ("医保接口", "interface"),
    ("网络", "network"),
    ("监护仪", "medical-device"),
    ("账号", "account"),
];
const FAULTS: &[&str] =
    &["无法打印", "卡纸", "登录很慢", "提示超时", "无法连接", "频繁死机", "显示离线", "断网", "报错退出", "密码锁定"];
const PLACES: &[&str] = &["门诊大厅", "护士站", "检验科", "放射科", "药房", "收费处", "病区", "手术室"];

/// The questions asked, by kind.
const QUERIES: &[(&str, &str)] = &[
    ("common two-character word", "打印"),
    ("common two-character word", "超时"),
    ("rare word", "扫码枪"),
    ("rare word", "监护仪"),
    ("two words", "护士站 卡纸"),
    ("two words", "PACS 死机"),
    ("no ticket has it", "手术麻醉"),
];

fn enc(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

fn ticket(rng: &mut crate::Rng, i: usize) -> Value {
    let mut pick = |n: usize| rng.below(n as u64) as usize;
    // Printers and the HIS are most of a desk's calls; medical devices few.
    let (thing, category) = THINGS[(pick(THINGS.len()) * pick(THINGS.len() + 1)) / THINGS.len()];
    let fault = FAULTS[pick(FAULTS.len())];
    let campus = ["campus-east", "campus-west", "campus-south", "campus-north"][pick(4)];
    let place = PLACES[pick(PLACES.len())];
    let level = || ["1", "2", "2", "3", "3"];
    json!({
        "title": format!("{place}{thing}{fault}"),
        "description": format!("{place} {} 号位{thing}{fault}，已重启无效（第 {i} 次来电）。", 1 + pick(20)),
        "category": category,
        "campus": campus,
        "location": place,
        "impact": level()[pick(5)],
        "urgency": level()[pick(5)],
        "callerName": format!("{place} 护士 {}", 1 + pick(400)),
    })
}

fn summary(times: &mut [f64]) -> (f64, f64, f64) {
    times.sort_by(f64::total_cmp);
    (crate::percentile(times, 0.5), crate::percentile(times, 0.95), crate::percentile(times, 0.99))
}

pub async fn run(raw: Vec<String>) {
    let o = opts(raw);
    let dir = std::env::temp_dir().join(format!("lianyi-bench-desk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let database = o.database.clone().unwrap_or_else(|| format!("sqlite://{}", dir.join("lianyi.db").display()));
    let backend = if database.starts_with("postgres") { "PostgreSQL" } else { "SQLite" };
    let server = crate::start_server(&database, &dir).await;
    let (base, http) = (server.base.clone(), server.http.clone());

    let mut rng = crate::Rng(23);
    let bodies: Vec<(usize, Value)> = (0..o.tickets).map(|i| (i, ticket(&mut rng, i))).rev().collect();
    let t = Instant::now();
    let queue = std::sync::Arc::new(std::sync::Mutex::new(bodies));
    let mut loaders = Vec::new();
    for _ in 0..16 {
        let (queue, http, url) = (queue.clone(), http.clone(), format!("{base}/api/ops/incidents"));
        loaders.push(tokio::spawn(async move {
            loop {
                let Some((_, body)) = queue.lock().unwrap().pop() else { break };
                let r = http.post(&url).json(&body).send().await.unwrap();
                assert!(r.status().is_success(), "report: {}", r.status());
                r.bytes().await.unwrap();
            }
        }));
    }
    for l in loaders {
        l.await.unwrap();
    }
    let load_s = t.elapsed().as_secs_f64();
    println!(
        "Service desk benchmark on {backend}: {} tickets phoned in in {load_s:.1} s ({:.0} /s, 16 clients)",
        o.tickets,
        o.tickets as f64 / load_s
    );

    // The newest ticket's id, for a page deep in the list.
    let newest: Value =
        http.get(format!("{base}/api/ops/incidents?limit=1")).send().await.unwrap().json().await.unwrap();
    let top = newest["items"][0]["id"].as_i64().unwrap_or(1);
    let mut cases: Vec<(&str, String)> = vec![
        ("newest page (50)", "limit=50".into()),
        ("a page in the middle (50)", format!("limit=50&before={}", top / 2)),
        ("the last page (50)", format!("limit=50&before={}", 60)),
    ];
    for (kind, q) in QUERIES {
        cases.push((kind, format!("limit=50&q={}", enc(q))));
    }
    let rounds = o.requests.div_ceil(cases.len()).max(1);
    let mut all = Vec::new();
    let mut by_kind: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    let mut shown: Vec<(String, usize)> = Vec::new();
    for round in 0..rounds {
        for (kind, query) in &cases {
            let url = format!("{base}/api/ops/incidents?{query}");
            let t = Instant::now();
            let r = http.get(&url).send().await.unwrap();
            assert!(r.status().is_success(), "{url}: {}", r.status());
            let bytes = r.bytes().await.unwrap();
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            all.push(ms);
            by_kind.entry(kind).or_default().push(ms);
            if round == 0 {
                let v: Value = serde_json::from_slice(&bytes).unwrap();
                shown.push((query.clone(), v["items"].as_array().map_or(0, Vec::len)));
            }
        }
    }
    for (q, n) in &shown {
        println!("  {q:<48} {n:>3} shown");
    }
    let mut report_cases = Vec::new();
    for (kind, mut times) in by_kind {
        let (p50, p95, p99) = summary(&mut times);
        println!("  {kind:<30} p50 {p50:>6.2} ms   p95 {p95:>6.2} ms   p99 {p99:>6.2} ms");
        report_cases.push(json!({"kind": kind, "p50_ms": p50, "p95_ms": p95, "p99_ms": p99}));
    }
    let (p50, p95, p99) = summary(&mut all);
    println!("  every request ({})              p50 {p50:>6.2} ms   p95 {p95:>6.2} ms   p99 {p99:>6.2} ms", all.len());
    let report = json!({
        "backend": backend, "tickets": o.tickets, "load_s": load_s, "requests": all.len(),
        "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "cases": report_cases,
    });
    std::fs::write(&o.out, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("  JSON: {}", o.out);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
