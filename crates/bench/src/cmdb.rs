//! `lianyi-bench cmdb [--cis N] [--requests N] [--database URL] [--out FILE]`: the
//! configuration database of a large hospital group — N configuration items (10,000
//! by default) in four campuses: core, distribution and access switches, servers,
//! storage, databases, business systems, clinical services, interfaces, printers,
//! terminals and medical devices, related as a hospital's are — loaded through
//! `POST /api/ops/cis/import`, then impact analysis both ways and the CI list and
//! search, each measured one request at a time by the client (HTTP included).

use std::fmt::Write as _;
use std::time::Instant;

use serde_json::{Value, json};

const CAMPUSES: [&str; 4] = ["campus-east", "campus-west", "campus-south", "campus-north"];

struct Opts {
    cis: usize,
    requests: usize,
    database: Option<String>,
    out: String,
}

fn opts(raw: Vec<String>) -> Opts {
    let mut o = Opts { cis: 10_000, requests: 200, database: None, out: "bench-cmdb.json".into() };
    let mut it = raw.into_iter();
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--cis" => o.cis = v().parse().expect("--cis N"),
            "--requests" => o.requests = v().parse().expect("--requests N"),
            "--database" => o.database = Some(v()),
            "--out" => o.out = v(),
            other => panic!("unknown option {other}"),
        }
    }
    o
}

/// The generated group: CSV text, and codes worth measuring.
pub(crate) struct Group {
    pub(crate) csv: String,
    cis: usize,
    relations: usize,
}

fn generate(n: usize) -> Group {
    let mut rng = crate::Rng(7);
    let mut pick = move |n: usize| rng.below(n as u64) as usize;
    let mut csv = String::from("code,name,class,campus,attr:kind,relations\n");
    let (cis, relations) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    let row = |csv: &mut String, code: &str, name: &str, class: &str, campus: &str, kind: &str, rel: &[String]| {
        relations.set(relations.get() + rel.len());
        cis.set(cis.get() + 1);
        let _ = writeln!(csv, "{code},{name},{class},{campus},{kind},{}", rel.join("; "));
    };
    row(&mut csv, "FW-GROUP", "集团出口防火墙", "security", "", "firewall", &[]);
    // Per campus, in proportion to n: switches, servers, storage, databases.
    let per = |share: f64| ((n as f64 * share) / CAMPUSES.len() as f64).ceil().max(1.0) as usize;
    let (dist, access, servers, storage, dbs) = (per(0.008), per(0.024), per(0.16), per(0.004), per(0.04));
    let (terminals, printers, devices) = (per(0.36), per(0.27), per(0.06));
    let mut all_dbs = Vec::new();
    let mut all_servers = Vec::new();
    for (c, campus) in CAMPUSES.iter().enumerate() {
        let core = format!("SW-CORE-{c}");
        row(&mut csv, &core, &format!("核心交换机 {c}"), "network", campus, "switch", &["connects-to:FW-GROUP".into()]);
        for d in 0..dist {
            row(
                &mut csv,
                &format!("SW-D-{c}-{d}"),
                &format!("汇聚交换机 {c}-{d}"),
                "network",
                campus,
                "switch",
                &[format!("connects-to:{core}")],
            );
        }
        for a in 0..access {
            let up = format!("connects-to:SW-D-{c}-{}", a % dist);
            row(&mut csv, &format!("SW-A-{c}-{a}"), &format!("接入交换机 {c}-{a}"), "network", campus, "switch", &[up]);
        }
        for s in 0..storage {
            row(
                &mut csv,
                &format!("SAN-{c}-{s}"),
                &format!("存储 {c}-{s}"),
                "storage",
                campus,
                "san",
                &[format!("connects-to:{core}")],
            );
        }
        for s in 0..servers {
            let code = format!("SRV-{c}-{s}");
            let up = format!("connects-to:SW-D-{c}-{}", s % dist);
            row(&mut csv, &code, &format!("服务器 {c}-{s}"), "host", campus, "server", &[up]);
            all_servers.push(code);
        }
        for d in 0..dbs {
            let code = format!("DB-{c}-{d}");
            let rel = [format!("runs-on:SRV-{c}-{}", pick(servers)), format!("depends-on:SAN-{c}-{}", d % storage)];
            row(&mut csv, &code, &format!("数据库 {c}-{d}"), "database", campus, "", &rel);
            all_dbs.push(code);
        }
    }
    // Group-wide business systems on servers and databases of any campus; clinical
    // services on them; interfaces part of them.
    let systems = (n as f64 * 0.02).ceil() as usize;
    for s in 0..systems {
        let rel = [
            format!("runs-on:{}", all_servers[pick(all_servers.len())]),
            format!("runs-on:{}", all_servers[pick(all_servers.len())]),
            format!("depends-on:{}", all_dbs[pick(all_dbs.len())]),
        ];
        let campus = if s % 3 == 0 { CAMPUSES[s % CAMPUSES.len()] } else { "" };
        row(&mut csv, &format!("SYS-{s}"), &format!("业务系统 {s}"), "business-system", campus, "his", &rel);
    }
    for s in 0..(n as f64 * 0.03).ceil() as usize {
        let rel: Vec<String> = (0..1 + s % 3)
            .map(|_| format!("depends-on:SYS-{}", pick(systems)))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        row(
            &mut csv,
            &format!("SVC-{s}"),
            &format!("临床服务 {s}"),
            "clinical-service",
            CAMPUSES[s % CAMPUSES.len()],
            "",
            &rel,
        );
    }
    for i in 0..(n as f64 * 0.03).ceil() as usize {
        row(
            &mut csv,
            &format!("IF-{i}"),
            &format!("接口 {i}"),
            "interface",
            "",
            "",
            &[format!("part-of:SYS-{}", pick(systems))],
        );
    }
    // The edge of the network, until n.
    for (c, campus) in CAMPUSES.iter().enumerate() {
        for (prefix, name, class, kind, count) in [
            ("PC", "终端", "host", "terminal", terminals),
            ("PRN", "打印机", "printer", "", printers),
            ("DEV", "医疗设备", "medical-device", "", devices),
        ] {
            for i in 0..count {
                if cis.get() >= n {
                    break;
                }
                let up = format!("connects-to:SW-A-{c}-{}", i % access);
                row(&mut csv, &format!("{prefix}-{c}-{i}"), &format!("{name} {c}-{i}"), class, campus, kind, &[up]);
            }
        }
    }
    Group { csv, cis: cis.get(), relations: relations.get() }
}

/// The four campuses, then a generated group of `n` CIs imported in one CSV; the
/// group, and the import's seconds.
pub(crate) async fn load_group(http: &reqwest::Client, base: &str, n: usize) -> (Group, f64) {
    for c in CAMPUSES {
        let r = http
            .put(format!("{base}/fhir/Organization/{c}"))
            .header("content-type", "application/fhir+json")
            .body(json!({"resourceType": "Organization", "id": c, "name": c}).to_string())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    let group = generate(n);
    let t = Instant::now();
    let r = http.post(format!("{base}/api/ops/cis/import")).body(group.csv.clone()).send().await.unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert!(status.is_success(), "import: {status} {body}");
    (group, t.elapsed().as_secs_f64())
}

async fn timed(http: &reqwest::Client, url: &str, n: usize) -> (f64, f64, f64, Value) {
    let mut times = Vec::with_capacity(n);
    let mut last = Value::Null;
    for i in 0..n {
        let t = Instant::now();
        let r = http.get(url).send().await.unwrap();
        assert!(r.status().is_success(), "{url}: {}", r.status());
        // The whole answer is read; only the last is parsed (to count what it found).
        let bytes = r.bytes().await.unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        if i + 1 == n {
            last = serde_json::from_slice(&bytes).unwrap();
        }
    }
    times.sort_by(f64::total_cmp);
    (crate::percentile(&times, 0.5), crate::percentile(&times, 0.95), crate::percentile(&times, 0.99), last)
}

pub async fn run(raw: Vec<String>) {
    let o = opts(raw);
    let dir = std::env::temp_dir().join(format!("lianyi-bench-cmdb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let database = o.database.clone().unwrap_or_else(|| format!("sqlite://{}", dir.join("lianyi.db").display()));
    let backend = if database.starts_with("postgres") { "PostgreSQL" } else { "SQLite" };
    let server = crate::start_server(&database, &dir).await;
    let (base, http) = (server.base.clone(), server.http.clone());
    let (group, load_s) = load_group(&http, &base, o.cis).await;
    println!(
        "CMDB benchmark on {backend}: {} configuration items and {} relations imported in {load_s:.1} s",
        group.cis, group.relations
    );
    let id_of = |code: &str| {
        let http = http.clone();
        let url = format!("{base}/api/ops/cis?q={code}&limit=5");
        let code = code.to_string();
        async move {
            let v: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            v["items"].as_array().unwrap().iter().find(|c| c["code"] == code.as_str()).unwrap()["id"].as_i64().unwrap()
        }
    };
    let mut results = Vec::new();
    let cases = [
        ("impact of a core switch", format!("{base}/api/ops/cis/{}/impact", id_of("SW-CORE-0").await)),
        ("impact of the group firewall", format!("{base}/api/ops/cis/{}/impact", id_of("FW-GROUP").await)),
        ("impact of a distribution switch", format!("{base}/api/ops/cis/{}/impact", id_of("SW-D-1-0").await)),
        ("what a business system needs", format!("{base}/api/ops/cis/{}/impact?way=needs", id_of("SYS-0").await)),
        ("CI list, first 50 by name", format!("{base}/api/ops/cis?limit=50")),
        ("CI list, one class and campus", format!("{base}/api/ops/cis?limit=50&class=printer&campus=campus-west")),
        ("CI search 打印机 1-2", format!("{base}/api/ops/cis?limit=50&q=%E6%89%93%E5%8D%B0%E6%9C%BA%201-2")),
    ];
    for (name, url) in cases {
        let (p50, p95, p99, last) = timed(&http, &url, o.requests).await;
        let reached =
            last["reached"].as_array().map(Vec::len).or_else(|| last["items"].as_array().map(Vec::len)).unwrap_or(0);
        println!("  {name:<34} {reached:>6} found   p50 {p50:>6.2} ms   p95 {p95:>6.2} ms   p99 {p99:>6.2} ms");
        results.push(json!({"case": name, "found": reached, "p50_ms": p50, "p95_ms": p95, "p99_ms": p99}));
    }
    let report = json!({"backend": backend, "cis": group.cis, "relations": group.relations, "import_s": load_s, "requests": o.requests, "cases": results});
    std::fs::write(&o.out, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("  JSON: {}", o.out);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
