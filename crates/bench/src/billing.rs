//! `lianyi-bench billing`: the cashier's and the pharmacist's throughput and pages
//! on a demo with a year of paid visits. Starts `lianyi demo --history-days N` (the
//! real binary), registers an API client for the East Campus (the CLI, as an
//! operator would), writes prescriptions for fresh patients through the FHIR API,
//! waits for the billing watcher to charge them, then:
//! 1. payment posting: `--cashiers` desks (concurrent sessions of the demo cashier)
//!    each pay their patients through the cashier page's form, one after another;
//! 2. dispensing: `--cashiers` pharmacist sessions dispense the paid prescriptions
//!    through the review page's form (first-expiry-first-out, stock decremented);
//! 3. the cashier's, pharmacist's and manager's pages, one request at a time.
//!
//! Times are measured by the client over loopback (HTTP included).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::pages::{DEMO_PASSWORD, Session, measure, start_demo};
use crate::percentile;

struct Options {
    days: i64,
    cashiers: usize,
    payments: usize,
    requests: usize,
    out: String,
}

fn options(raw: Vec<String>) -> Option<Options> {
    let mut o = Options { days: 365, cashiers: 16, payments: 4000, requests: 200, out: "bench-billing.json".into() };
    let mut it = raw.into_iter();
    while let Some(k) = it.next() {
        let mut num = || it.next().and_then(|v| v.parse::<i64>().ok());
        match k.as_str() {
            "--days" => o.days = num()?,
            "--cashiers" => o.cashiers = num()? as usize,
            "--payments" => o.payments = num()? as usize,
            "--requests" => o.requests = num()? as usize,
            "--out" => o.out = it.next()?,
            _ => return None,
        }
    }
    Some(o)
}

/// Runs `n` jobs over `workers` sessions; returns each job's latency (ms) and the wall time (s).
async fn drive<F, Fut>(sessions: Vec<Session>, n: usize, job: F) -> (Vec<f64>, f64)
where
    F: Fn(Session, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Session> + Send,
{
    let job = Arc::new(job);
    let workers = sessions.len();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (w, s) in sessions.into_iter().enumerate() {
        let job = job.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = s;
            let mut times = Vec::new();
            for i in (w..n).step_by(workers) {
                let t = Instant::now();
                s = job(s, i).await;
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            times
        }));
    }
    let mut times = Vec::new();
    for t in tasks {
        times.extend(t.await.unwrap());
    }
    let wall = started.elapsed().as_secs_f64();
    times.sort_by(|a, b| a.total_cmp(b));
    (times, wall)
}

pub async fn run(raw: Vec<String>) {
    let Some(o) = options(raw) else {
        println!("lianyi-bench billing [--days 365] [--cashiers 16] [--payments 4000] [--requests 200] [--out FILE]");
        return;
    };
    let t = Instant::now();
    let days = o.days.to_string();
    let (_demo, base, dir) = start_demo("billing", &["--history-days", &days], Duration::from_secs(1800)).await;
    let probe = crate::http_client();
    let demo_secs = t.elapsed().as_secs_f64();
    println!(
        "Billing and pharmacy benchmark on the demo (SQLite) with {} days of paid visits (ready in {demo_secs:.0} s)",
        o.days
    );

    // An East Campus client, registered through the CLI against the running demo's database.
    let bearer = crate::pages::client_bearer(&base, &dir, "bench-east", "campus-east").await;

    // Patients with one prescription each (a catalogue drug in stock, 1 or 2 units).
    let drugs = ["AMOX500", "IBU200", "PARA500", "METF500", "AMLO5", "OMEP20", "LORA10", "ATOR20"];
    let n = o.payments;
    for chunk in (0..n).collect::<Vec<_>>().chunks(250) {
        let mut entries = Vec::new();
        for &i in chunk {
            entries.push(json!({"resource": {"resourceType": "Patient", "id": format!("bp-{i}"), "name": [{"text": format!("压测{i}")}]},
                                "request": {"method": "PUT", "url": format!("Patient/bp-{i}")}}));
            entries.push(json!({"resource": {"resourceType": "MedicationRequest", "id": format!("bm-{i}"), "status": "active", "intent": "order",
                "medicationCodeableConcept": {"coding": [{"system": "urn:lianyi:drug", "code": drugs[i % drugs.len()]}]},
                "subject": {"reference": format!("Patient/bp-{i}")},
                "authoredOn": lianyi_fhir::datetime::format_instant(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64),
                "dispenseRequest": {"quantity": {"value": 1 + i % 2, "unit": "tablet"}}},
                "request": {"method": "PUT", "url": format!("MedicationRequest/bm-{i}")}}));
        }
        let r = probe
            .post(format!("{base}/fhir"))
            .header("authorization", &bearer)
            .header("content-type", "application/fhir+json")
            .header("prefer", "return=minimal")
            .body(json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}).to_string())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
    // The billing watcher charges them; their charge ids, found by the order.
    let t = Instant::now();
    let mut charge_of = vec![String::new(); n];
    for (i, slot) in charge_of.iter_mut().enumerate() {
        loop {
            let url = format!("{base}/fhir/ChargeItem?identifier=urn:lianyi:sid:charge%7CMedicationRequest/bm-{i}");
            let v: Value = probe.get(url).header("authorization", &bearer).send().await.unwrap().json().await.unwrap();
            if let Some(id) = v["entry"][0]["resource"]["id"].as_str() {
                *slot = id.to_string();
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(600), "bm-{i} was never charged");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    println!("  {n} prescriptions charged by the watcher in {:.1} s", t.elapsed().as_secs_f64());

    // 1. Payments: the cashier's desks (first the page with a patient's open charge).
    let (cashier, csrf) = Session::log_in(&base, "cashier.east", DEMO_PASSWORD).await;
    let mut pages = Vec::new();
    let mut measured = |name: &str, r: (f64, f64, f64)| {
        println!("  {name:<28} p50 {:>6.2} ms   p95 {:>6.2} ms   p99 {:>6.2} ms", r.0, r.1, r.2);
        pages.push(json!({"page": name, "p50_ms": r.0, "p95_ms": r.1, "p99_ms": r.2}));
    };
    let mut desk = cashier.clone();
    measured("/billing/cashier?patient=", measure(&mut desk, "/billing/cashier?patient=bp-0", o.requests).await);
    let charge_of = Arc::new(charge_of);
    let desks = vec![cashier.clone(); o.cashiers];
    let (token_c, charges) = (csrf.clone(), charge_of.clone());
    let (times, wall) = drive(desks, n, move |mut s, i| {
        let (csrf, charge) = (token_c.clone(), charges[i].clone());
        async move {
            let patient = format!("bp-{i}");
            let reference = format!("POS{i:08}");
            let form = [
                ("csrf", csrf.as_str()),
                ("patient", patient.as_str()),
                ("charge", charge.as_str()),
                ("method", "card"),
                ("tendered", ""),
                ("reference", reference.as_str()),
            ];
            let (status, loc, body) = s.post("/billing/cashier", &form).await;
            let why = body.find("error-summary").map(|at| &body[at..(at + 600).min(body.len())]).unwrap_or_default();
            assert!(status == 303 && loc.starts_with("/billing/receipts/"), "payment {i}: {status} {loc} {why}");
            s
        }
    })
    .await;
    let pay_rate = n as f64 / wall;
    let (p50, p95, p99) = (percentile(&times, 0.5), percentile(&times, 0.95), percentile(&times, 0.99));
    println!(
        "  payments, {} desks   {pay_rate:>8.0} /s   p50 {p50:.1} ms  p95 {p95:.1} ms  p99 {p99:.1} ms",
        o.cashiers
    );
    let payments =
        json!({"desks": o.cashiers, "payments": n, "per_s": pay_rate, "p50_ms": p50, "p95_ms": p95, "p99_ms": p99});

    // 2. Dispensing: the pharmacists.
    let (pharmacist, pcsrf) = Session::log_in(&base, "pharmacist.east", DEMO_PASSWORD).await;
    // The pages with a full queue, before it is worked off.
    let mut page_session = pharmacist.clone();
    measured("/pharmacy (4000 waiting)", measure(&mut page_session, "/pharmacy", o.requests).await);
    measured("/pharmacy/rx/{id}", measure(&mut page_session, "/pharmacy/rx/bm-0", o.requests).await);
    measured("/pharmacy/stock", measure(&mut page_session, "/pharmacy/stock", o.requests).await);
    let benches = vec![pharmacist.clone(); o.cashiers];
    let (times, wall) = drive(benches, n, move |mut s, i| {
        let csrf = pcsrf.clone();
        async move {
            let (status, loc, _) = s.post(&format!("/pharmacy/rx/bm-{i}/dispense"), &[("csrf", csrf.as_str())]).await;
            assert!(status == 303 && loc == "/pharmacy?done=dispensed", "dispense {i}: {status} {loc}");
            s
        }
    })
    .await;
    let dispense_rate = n as f64 / wall;
    let (p50, p95, p99) = (percentile(&times, 0.5), percentile(&times, 0.95), percentile(&times, 0.99));
    println!(
        "  dispensing, {} benches {dispense_rate:>8.0} /s   p50 {p50:.1} ms  p95 {p95:.1} ms  p99 {p99:.1} ms",
        o.cashiers
    );
    let dispensing = json!({"pharmacists": o.cashiers, "dispenses": n, "per_s": dispense_rate, "p50_ms": p50, "p95_ms": p95, "p99_ms": p99});

    // 3. The cashier's and the manager's pages.
    measured("/billing/receipts/{no}", measure(&mut desk, "/billing/receipts/campus-east/1", o.requests).await);
    measured("/billing/settlement", measure(&mut desk, "/billing/settlement", o.requests).await);
    let (mut manager, _) = Session::log_in(&base, "manager", DEMO_PASSWORD).await;
    measured("/billing/reports (30 days)", measure(&mut manager, "/billing/reports", o.requests).await);
    let year = format!(
        "/billing/reports?from={}&to={}",
        lianyi_fhir::datetime::format_instant(now_ms() - 364 * 86_400_000 + 8 * 3_600_000)[..10].to_owned(),
        lianyi_fhir::datetime::format_instant(now_ms() + 8 * 3_600_000)[..10].to_owned()
    );
    measured("/billing/reports (a year)", measure(&mut manager, &year, o.requests.min(50)).await);
    let report = json!({"history_days": o.days, "demo_ready_s": demo_secs, "payments": payments,
                        "dispensing": dispensing, "pages": pages});
    std::fs::write(&o.out, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("  JSON: {}", o.out);
    let _ = std::fs::remove_dir_all(&dir);
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}
