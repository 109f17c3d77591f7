//! `lianyi-bench kb [--articles N] [--requests N] [--database URL] [--out FILE]`: the
//! IT knowledge base at N articles (10,000 by default), generated from the faults a
//! hospital's desk sees — seven in ten in Chinese with the English names engineers
//! use, three in ten in English — loaded through `POST /api/ops/kb` by eight clients
//! at once, then searched through `GET /api/ops/kb?q=` one request at a time (HTTP
//! and the JSON answer included): two-character Chinese words, longer Chinese
//! questions, English words, and words no article has.

use std::fmt::Write as _;
use std::time::Instant;

use serde_json::{Value, json};

struct Opts {
    articles: usize,
    requests: usize,
    database: Option<String>,
    out: String,
}

fn opts(raw: Vec<String>) -> Opts {
    let mut o = Opts { articles: 10_000, requests: 200, database: None, out: "bench-kb.json".into() };
    let mut it = raw.into_iter();
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--articles" => o.articles = v().parse().expect("--articles N"),
            "--requests" => o.requests = v().parse().expect("--requests N"),
            "--database" => o.database = Some(v()),
            "--out" => o.out = v(),
            other => panic!("unknown option {other}"),
        }
    }
    o
}

/// (thing, CI class) the Chinese articles are about.
const ZH_THINGS: &[(&str, &str)] = &[
    ("打印机", "printer"),
    ("腕带打印机", "printer"),
    ("票据打印机", "printer"),
    ("标签打印机", "printer"),
    ("HIS", "business-system"),
    ("LIS", "business-system"),
    ("PACS", "business-system"),
    ("电子病历", "business-system"),
    ("医保接口", "interface"),
    ("检验仪器接口", "interface"),
    ("交换机", "network"),
    ("无线 AP", "network"),
    ("工作站", "host"),
    ("自助机", "host"),
    ("数据库", "database"),
    ("监护仪", "medical-device"),
    ("叫号屏", "host"),
    ("扫码枪", "host"),
];

/// (symptom, cause, solution) fragments of the Chinese articles.
const ZH_FAULTS: &[(&str, &str, &str)] = &[
    ("无法打印", "打印队列卡住", "重启打印服务并清空队列"),
    ("登录慢", "域控认证排队", "检查终端 DNS 与连接池"),
    ("连接超时", "专线拥塞", "联系运营商检查链路"),
    ("卡纸", "搓纸轮老化", "更换搓纸轮并清洁纸道"),
    ("打不开", "插件版本不对", "重新安装插件"),
    ("报错退出", "本地缓存损坏", "清理缓存后重新登录"),
    ("断网", "端口被环路保护关闭", "排除环路后恢复端口"),
    ("显示乱码", "字符集设置错误", "改为 GB18030 后重启服务"),
    ("数据不上传", "接口服务停止", "重启接口服务并补传"),
    ("响应很慢", "磁盘空间不足", "清理日志并扩容"),
    ("蓝屏重启", "驱动冲突", "回退驱动版本"),
    ("扫码无反应", "串口模式不对", "切换为 USB 键盘模式"),
    ("高血压随访表打不开", "表单模板丢失", "重新发布随访表模板"),
    ("血压数据缺失", "设备时钟不准", "同步设备时间"),
];

/// (thing, CI class) and (symptom, cause, solution) of the English articles.
const EN_THINGS: &[(&str, &str)] = &[
    ("printer", "printer"),
    ("label printer", "printer"),
    ("HIS client", "business-system"),
    ("PACS viewer", "business-system"),
    ("insurance gateway", "interface"),
    ("core switch", "network"),
    ("workstation", "host"),
    ("database server", "database"),
];
const EN_FAULTS: &[(&str, &str, &str)] = &[
    ("does not print", "the spooler is stuck", "restart the spooler and clear the queue"),
    ("is slow to log in", "DNS points at a retired server", "fix the DNS servers of the terminal"),
    ("times out", "the leased line is congested", "ask the carrier to check the line"),
    ("shows offline", "the driver was replaced", "reinstall the vendor driver"),
    ("crashes on start", "the local cache is corrupt", "clear the cache and sign in again"),
    ("loses network", "loop protection shut the port", "remove the loop and enable the port"),
];

/// One generated article as the API takes it.
fn article(rng: &mut crate::Rng, i: usize) -> Value {
    let mut pick = |n: usize| rng.below(n as u64) as usize;
    let floor = 1 + pick(12);
    if pick(10) < 7 {
        let (thing, class) = ZH_THINGS[pick(ZH_THINGS.len())];
        let (symptom, cause, solution) = ZH_FAULTS[pick(ZH_FAULTS.len())];
        let campus = ["东院区", "西院区", "南院区", "北院区"][pick(4)];
        let mut detail = String::new();
        let _ = write!(detail, "{campus}{floor} 楼{thing}{symptom}，科室反映已影响工作（记录 {i}）。");
        json!({
            "title": format!("{campus}{thing}{symptom}（{i}）"),
            "symptom": detail,
            "cause": format!("{cause}。"),
            "solution": format!("{solution}；处理后请科室确认。"),
            "ciClass": class,
        })
    } else {
        let (thing, class) = EN_THINGS[pick(EN_THINGS.len())];
        let (symptom, cause, solution) = EN_FAULTS[pick(EN_FAULTS.len())];
        json!({
            "title": format!("The {thing} {symptom} (case {i})"),
            "symptom": format!("On floor {floor} the {thing} {symptom}."),
            "cause": format!("Usually {cause}."),
            "solution": format!("{solution}, then ask the ward to confirm."),
            "ciClass": class,
        })
    }
}

/// The questions asked, by kind.
const QUERIES: &[(&str, &str)] = &[
    ("two-character Chinese word", "打印"),
    ("two-character Chinese word", "登录"),
    ("two-character Chinese word", "超时"),
    ("two-character Chinese word", "卡纸"),
    ("three-character Chinese word", "高血压"),
    ("Chinese question", "打印机无法打印"),
    ("Chinese question", "HIS 登录慢"),
    ("Chinese question", "西院区 交换机 断网"),
    ("English word", "printer"),
    ("English word", "spooler"),
    ("English question", "insurance gateway times out"),
    ("no article has it", "手术麻醉"),
    ("no article has it", "xylophone"),
];

fn enc(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

pub async fn run(raw: Vec<String>) {
    let o = opts(raw);
    let dir = std::env::temp_dir().join(format!("lianyi-bench-kb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let database = o.database.clone().unwrap_or_else(|| format!("sqlite://{}", dir.join("lianyi.db").display()));
    let backend = if database.starts_with("postgres") { "PostgreSQL" } else { "SQLite" };
    let server = crate::start_server(&database, &dir).await;
    let (base, http) = (server.base.clone(), server.http.clone());

    let mut rng = crate::Rng(16);
    let bodies: Vec<Value> = (0..o.articles).map(|i| article(&mut rng, i)).collect();
    let t = Instant::now();
    let queue = std::sync::Arc::new(std::sync::Mutex::new(bodies));
    let mut loaders = Vec::new();
    for _ in 0..8 {
        let (queue, http, url) = (queue.clone(), http.clone(), format!("{base}/api/ops/kb"));
        loaders.push(tokio::spawn(async move {
            loop {
                let Some(body) = queue.lock().unwrap().pop() else { break };
                let r = http.post(&url).json(&body).send().await.unwrap();
                assert!(r.status().is_success(), "create: {}", r.status());
                r.bytes().await.unwrap();
            }
        }));
    }
    for l in loaders {
        l.await.unwrap();
    }
    let load_s = t.elapsed().as_secs_f64();
    println!(
        "Knowledge base benchmark on {backend}: {} articles loaded in {load_s:.1} s ({:.0} /s, 8 clients)",
        o.articles,
        o.articles as f64 / load_s
    );

    // Every question asked in turn until each has been asked `requests / questions` times.
    let rounds = o.requests.div_ceil(QUERIES.len()).max(1);
    let mut all = Vec::new();
    let mut by_kind: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    let mut found: Vec<(&str, usize, bool)> = Vec::new();
    for round in 0..rounds {
        for (kind, q) in QUERIES {
            let url = format!("{base}/api/ops/kb?limit=20&q={}", enc(q));
            let t = Instant::now();
            let r = http.get(&url).send().await.unwrap();
            assert!(r.status().is_success(), "{url}: {}", r.status());
            let bytes = r.bytes().await.unwrap();
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            all.push(ms);
            by_kind.entry(kind).or_default().push(ms);
            if round == 0 {
                let v: Value = serde_json::from_slice(&bytes).unwrap();
                found.push((q, v["items"].as_array().map_or(0, Vec::len), v["partial"] == json!(true)));
            }
        }
    }
    for (q, n, partial) in &found {
        println!("  {q:<32} {n:>3} shown{}", if *partial { " (some words)" } else { "" });
    }
    let mut cases = Vec::new();
    for (kind, mut times) in by_kind {
        times.sort_by(f64::total_cmp);
        let (p50, p95, p99) =
            (crate::percentile(&times, 0.5), crate::percentile(&times, 0.95), crate::percentile(&times, 0.99));
        println!("  {kind:<30} p50 {p50:>6.2} ms   p95 {p95:>6.2} ms   p99 {p99:>6.2} ms");
        cases.push(json!({"kind": kind, "p50_ms": p50, "p95_ms": p95, "p99_ms": p99}));
    }
    all.sort_by(f64::total_cmp);
    let (p50, p95, p99) = (crate::percentile(&all, 0.5), crate::percentile(&all, 0.95), crate::percentile(&all, 0.99));
    println!("  every search ({} requests)       p50 {p50:>6.2} ms   p95 {p95:>6.2} ms   p99 {p99:>6.2} ms", all.len());
    let report = json!({
        "backend": backend, "articles": o.articles, "load_s": load_s, "requests": all.len(),
        "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "cases": cases,
        "found": found.iter().map(|(q, n, partial)| json!({"q": q, "shown": n, "partial": partial})).collect::<Vec<_>>(),
    });
    std::fs::write(&o.out, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("  JSON: {}", o.out);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
