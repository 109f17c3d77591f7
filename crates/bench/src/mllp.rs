//! `lianyi-bench mllp`: ORU^R01 ingest over MLLP with durable ACKs (AA only after the
//! observations, report, audit records and log outcome are committed), N senders each
//! on its own connection; then the same senders against a peer that only parses and
//! acknowledges (python-hl7's asyncio MLLP server, `tools/mllp_peer.py`). Reports
//! messages/s and ACK latency for both, and their ratio.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Args {
    messages: usize,
    senders: usize,
    database: Option<String>,
    python: String,
    out: String,
    /// `applied` (AA once the data is written) or `journaled` (AA once the checked
    /// message is in the message log; the data follows).
    ack: String,
    /// Messages per second in all (a steady feed), or as fast as ACKs come (`None`).
    rate: Option<f64>,
}

fn args(raw: Vec<String>) -> Args {
    let mut a = Args {
        messages: 20_000,
        senders: 8,
        database: None,
        python: ".venv/bin/python".into(),
        out: "bench-mllp.json".into(),
        ack: "applied".into(),
        rate: None,
    };
    let mut it = raw.into_iter();
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--messages" => a.messages = v().parse().expect("--messages N"),
            "--senders" => a.senders = v().parse().expect("--senders N"),
            "--database" => a.database = Some(v()),
            "--python" => a.python = v(),
            "--out" => a.out = v(),
            "--rate" => a.rate = Some(v().parse().expect("--rate MESSAGES_PER_SECOND")),
            "--ack" => {
                a.ack = v();
                assert!(matches!(a.ack.as_str(), "applied" | "journaled"), "--ack applied|journaled");
            }
            "--help" | "-h" => {
                println!(
                    "lianyi-bench mllp [--messages N] [--senders N] [--ack applied|journaled] [--rate PER_SECOND] [--database URL] [--python PATH] [--out FILE]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// A lab result as a LIS sends it: one OBR, three OBX with units, ranges and flags.
fn oru(sender: usize, i: usize) -> Vec<u8> {
    let k = 3.0 + (i % 40) as f64 / 10.0;
    let flag = if k > 5.3 { "H" } else { "N" };
    format!(
        "MSH|^~\\&|LIS{sender}|EAST|LIANYI|GROUP|20261122100000||ORU^R01^ORU_R01|B{sender}-{i}|P|2.5.1\r\
         PID|1||M{sender}{:06}^^^EAST^MR||王^{i}||19800101|F\r\
         OBR|1|P{sender}-{i}|F{sender}-{i}|24320-4^Basic metabolic panel^LN|||202611221000\r\
         OBX|1|NM|2823-3^Potassium [Moles/volume] in Serum or Plasma^LN||{k:.1}|mmol/L^mmol/L^UCUM|3.5-5.3|{flag}|||F\r\
         OBX|2|NM|2951-2^Sodium [Moles/volume] in Serum or Plasma^LN||140|mmol/L^mmol/L^UCUM|137-147|N|||F\r\
         OBX|3|NM|2345-7^Glucose [Mass/volume] in Serum or Plasma^LN||{}|mg/dL^mg/dL^UCUM|70-99|N|||F\r",
        i % 5000,
        80 + i % 30
    )
    .into_bytes()
}

/// The warm-up's first message number (its control ids differ from the run's).
const WARM_UP: usize = 10_000_000;

struct Stats {
    rate: f64,
    p50: f64,
    p99: f64,
    accepted: usize,
}

/// `senders` connections, `total` messages between them (numbered from `first`, so
/// each run's control ids are new), at `rate` messages/s in all if given; every ACK
/// must be AA.
async fn drive(addr: &str, total: usize, senders: usize, first: usize, rate: Option<f64>) -> Stats {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..senders {
        let addr = addr.to_string();
        let share = total / senders + usize::from(s < total % senders);
        tasks.push(tokio::spawn(async move {
            let mut sock = tokio::net::TcpStream::connect(&addr).await.expect("connect");
            sock.set_nodelay(true).ok();
            let mut latencies = Vec::with_capacity(share);
            let mut buf = Vec::with_capacity(1024);
            let mut chunk = [0u8; 4096];
            let mut accepted = 0;
            // Each sender's share of a steady feed: its k-th message is due k intervals in.
            let interval = rate.map(|r| Duration::from_secs_f64(senders as f64 / r));
            let begun = Instant::now();
            for (k, i) in (first..first + share).enumerate() {
                if let Some(every) = interval {
                    tokio::time::sleep_until((begun + every * k as u32).into()).await;
                }
                let mut frame = vec![0x0b];
                frame.extend_from_slice(&oru(s, i));
                frame.extend_from_slice(&[0x1c, 0x0d]);
                let t = Instant::now();
                sock.write_all(&frame).await.expect("send");
                buf.clear();
                while !buf.ends_with(&[0x1c, 0x0d]) {
                    let n = tokio::time::timeout(Duration::from_secs(30), sock.read(&mut chunk))
                        .await
                        .expect("an ACK within 30 s")
                        .expect("read ACK");
                    assert!(n > 0, "connection closed before the ACK");
                    buf.extend_from_slice(&chunk[..n]);
                }
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                let text = String::from_utf8_lossy(&buf);
                if text.contains("MSA|AA|") {
                    accepted += 1;
                }
            }
            (latencies, accepted)
        }));
    }
    let mut all = Vec::with_capacity(total);
    let mut accepted = 0;
    for t in tasks {
        let (l, a) = t.await.expect("sender");
        all.extend(l);
        accepted += a;
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    Stats {
        rate: total as f64 / secs,
        p50: crate::percentile(&all, 0.50),
        p99: crate::percentile(&all, 0.99),
        accepted,
    }
}

/// User + system CPU seconds a process has used so far (Linux `/proc`, 100 ticks/s).
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

pub async fn run(raw: Vec<String>) {
    let a = args(raw);
    let dir = std::env::temp_dir().join(format!("lianyi-bench-mllp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let database = a.database.clone().unwrap_or_else(|| format!("sqlite://{}", dir.join("lianyi.db").display()));
    let backend = if database.starts_with("postgres") { "postgres" } else { "sqlite" };
    println!(
        "MLLP benchmark on {backend}: {} ORU^R01 messages (3 results each), {} senders, AA when {}{}",
        a.messages,
        a.senders,
        a.ack,
        a.rate.map(|r| format!(", a steady {r} messages/s")).unwrap_or_default()
    );

    let server = if a.ack == "journaled" {
        crate::start_server_with(&database, &dir, &[("LIANYI_BENCH_MLLP_ACK", "journaled")]).await
    } else {
        crate::start_server(&database, &dir).await
    };
    // A short warm-up (first connections, prepared statements).
    drive(&server.mllp, a.senders * 10, a.senders, WARM_UP, None).await;
    let cpu_before = cpu_seconds(server.child.id());
    let lianyi = drive(&server.mllp, a.messages, a.senders, 0, a.rate).await;
    let cpu_ms = (cpu_seconds(server.child.id()) - cpu_before) * 1000.0 / a.messages as f64;
    assert_eq!(lianyi.accepted, a.messages, "every message must be answered AA");
    let what = if a.ack == "journaled" { "journaled, durable ACK" } else { "stored, durable ACK" };
    println!(
        "  lianyi ({what})    {:>8.0} messages/s   ACK p50 {:>6.2} ms  p99 {:>6.2} ms   server CPU {:.2} ms/message",
        lianyi.rate, lianyi.p50, lianyi.p99, cpu_ms
    );
    // Journaled: how long until every acknowledged message's report is readable.
    let mut applied_after = None;
    if a.ack == "journaled" {
        let ingest_end = Instant::now();
        let expected = (a.messages + a.senders * 10) as u64;
        loop {
            let v: serde_json::Value = server
                .http
                .get(format!("{}/fhir/DiagnosticReport?_summary=count", server.base))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if v["total"].as_u64().unwrap_or(0) >= expected {
                break;
            }
            assert!(ingest_end.elapsed() < Duration::from_secs(900), "the queue was not applied: {v}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let secs = ingest_end.elapsed().as_secs_f64();
        let whole = secs + a.messages as f64 / lianyi.rate;
        println!(
            "  every report readable {secs:.1} s after the last ACK; ingest to applied: {:.0} messages/s",
            a.messages as f64 / whole
        );
        applied_after = Some((secs, a.messages as f64 / whole));
    }
    drop(server);

    let port_file = dir.join("peer-port");
    let peer = std::process::Command::new(&a.python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tools/mllp_peer.py"))
        .arg(&port_file)
        .spawn();
    let peer_stats = match peer {
        Ok(mut child) => {
            let started = Instant::now();
            let port = loop {
                if let Ok(p) = std::fs::read_to_string(&port_file)
                    && !p.is_empty()
                {
                    break p;
                }
                assert!(started.elapsed() < Duration::from_secs(30), "the MLLP peer did not start");
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            let addr = format!("127.0.0.1:{port}");
            drive(&addr, a.senders * 10, a.senders, WARM_UP, None).await;
            let s = drive(&addr, a.messages, a.senders, 0, a.rate).await;
            let _ = child.kill();
            let _ = child.wait();
            println!(
                "  python-hl7 asyncio peer (parse + ACK only) {:>8.0} messages/s   ACK p50 {:>6.2} ms  p99 {:>6.2} ms",
                s.rate, s.p50, s.p99
            );
            println!("  lianyi / peer: {:.2}", lianyi.rate / s.rate);
            Some(s)
        }
        Err(e) => {
            println!("  peer not run: {} ({e}); scripts/test creates the venv with python-hl7", a.python);
            None
        }
    };
    let report = json!({
        "backend": backend, "messages": a.messages, "senders": a.senders, "results_per_message": 3,
        "ack": a.ack, "rate": a.rate,
        "lianyi": {"messages_per_s": lianyi.rate, "ack_p50_ms": lianyi.p50, "ack_p99_ms": lianyi.p99, "server_cpu_ms_per_message": cpu_ms,
                   "applied_after_last_ack_s": applied_after.map(|x| x.0), "applied_messages_per_s": applied_after.map(|x| x.1)},
        "peer": peer_stats.as_ref().map(|s| json!({"messages_per_s": s.rate, "ack_p50_ms": s.p50, "ack_p99_ms": s.p99})),
        "ratio": peer_stats.as_ref().map(|s| lianyi.rate / s.rate),
    });
    std::fs::write(&a.out, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("  JSON: {}", a.out);
    let _ = std::fs::remove_dir_all(&dir);
}
