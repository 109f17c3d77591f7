//! `lianyi-bench dicom --instances N`: DICOMweb reads on an archive of N indexed
//! instances (default 100,000): QIDO-RS latency (a patient's studies by MRN, a day's
//! studies, a study's series, a series' instances) and the metadata of one
//! 1,000-instance series, over HTTP with an East Campus bearer token, one request at a
//! time. The index rows are written into the running demo's database through the
//! store's own index call (the files themselves are not needed for these reads), 2%
//! of them in one 1,000-instance series and the rest in studies of 2 series × 25;
//! the ImagingStudy resources are written by the server's settler before timing starts.

use std::process::Command;
use std::time::{Duration, Instant};

use lianyi_store::RowScope;
use lianyi_store::imaging::NewInstance;
use serde_json::{Map, Value, json};

const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
const ROOT: &str = "1.2.826.0.1.3680043.2.1125.7";

fn put(m: &mut Map<String, Value>, tag: &str, vr: &str, v: Value) {
    m.insert(tag.into(), json!({"vr": vr, "Value": [v]}));
}

/// The DICOM JSON a CT slice's header gives (about 2 KB, as kept at ingest).
fn instance_json(
    study: &str,
    series: &str,
    sop: &str,
    n: i64,
    patient: (&str, &str),
    date: &str,
) -> Map<String, Value> {
    let mut m = Map::new();
    put(&mut m, "00080005", "CS", json!("ISO_IR 192"));
    put(&mut m, "00080008", "CS", json!("ORIGINAL\\PRIMARY\\AXIAL"));
    put(&mut m, "00080016", "UI", json!(CT));
    put(&mut m, "00080018", "UI", json!(sop));
    put(&mut m, "00080020", "DA", json!(date));
    put(&mut m, "00080030", "TM", json!("093000"));
    put(&mut m, "00080050", "SH", json!(format!("BQ{}", &study[ROOT.len() + 1..])));
    put(&mut m, "00080060", "CS", json!("CT"));
    put(&mut m, "00080070", "LO", json!("Bench Medical Systems"));
    put(&mut m, "00080090", "PN", json!({"Alphabetic": "Li^Ming"}));
    put(&mut m, "00081030", "LO", json!("胸部CT平扫"));
    put(&mut m, "0008103E", "LO", json!("轴位 1mm"));
    put(&mut m, "00100010", "PN", json!({"Alphabetic": patient.1}));
    put(&mut m, "00100020", "LO", json!(patient.0));
    put(&mut m, "00100030", "DA", json!("19700101"));
    put(&mut m, "00100040", "CS", json!("F"));
    put(&mut m, "00180050", "DS", json!(1.0));
    put(&mut m, "00180060", "DS", json!(120));
    put(&mut m, "00181151", "IS", json!(200));
    put(&mut m, "0020000D", "UI", json!(study));
    put(&mut m, "0020000E", "UI", json!(series));
    put(&mut m, "00200011", "IS", json!(1));
    put(&mut m, "00200013", "IS", json!(n));
    m.insert("00200032".into(), json!({"vr": "DS", "Value": [-175.0, -175.0, -(n as f64)]}));
    m.insert("00200037".into(), json!({"vr": "DS", "Value": [1, 0, 0, 0, 1, 0]}));
    put(&mut m, "00201041", "DS", json!(-(n as f64)));
    put(&mut m, "00280002", "US", json!(1));
    put(&mut m, "00280004", "CS", json!("MONOCHROME2"));
    put(&mut m, "00280010", "US", json!(512));
    put(&mut m, "00280011", "US", json!(512));
    m.insert("00280030".into(), json!({"vr": "DS", "Value": [0.683, 0.683]}));
    put(&mut m, "00280100", "US", json!(16));
    put(&mut m, "00280101", "US", json!(12));
    put(&mut m, "00280102", "US", json!(11));
    put(&mut m, "00280103", "US", json!(0));
    put(&mut m, "00281050", "DS", json!(40));
    put(&mut m, "00281051", "DS", json!(400));
    put(&mut m, "00281052", "DS", json!(-1024));
    put(&mut m, "00281053", "DS", json!(1));
    m
}

fn subset(m: &Map<String, Value>, tags: &[&str]) -> String {
    Value::Object(tags.iter().filter_map(|t| Some(((*t).to_string(), m.get(*t)?.clone()))).collect()).to_string()
}

fn summary(name: &str, times: &mut [f64]) -> Value {
    times.sort_by(f64::total_cmp);
    let (p50, p95, max) =
        (crate::percentile(times, 0.5), crate::percentile(times, 0.95), times.last().copied().unwrap_or(0.0));
    println!("  {name:<44} {p50:>8.2} {p95:>8.2} {max:>8.2}");
    json!({"query": name, "p50_ms": p50, "p95_ms": p95, "max_ms": max, "requests": times.len()})
}

async fn get_json(client: &reqwest::Client, bearer: &str, url: &str) -> Value {
    client.get(url).header("authorization", bearer).send().await.unwrap().json().await.unwrap()
}

async fn timed(client: &reqwest::Client, bearer: &str, url: &str) -> (f64, usize) {
    let t = Instant::now();
    let r = client.get(url).header("authorization", bearer).send().await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    let body = r.bytes().await.unwrap();
    (t.elapsed().as_secs_f64() * 1000.0, body.len())
}

/// A bearer token of an East Campus client registered in the running demo at `dir`, and
/// the MRN of one of the campus's patients.
pub async fn east_client(base: &str, dir: &std::path::Path) -> (String, String) {
    let (bearer, patients) = east_patients(base, dir).await;
    (bearer, patients[0].1.clone())
}

/// The token and the East Campus's patients: (id, MRN).
async fn east_patients(base: &str, dir: &std::path::Path) -> (String, Vec<(String, String)>) {
    let lianyi = std::env::current_exe().unwrap().with_file_name("lianyi");
    let db = format!("sqlite://{}", dir.join("lianyi.db").display());
    let out = Command::new(&lianyi)
        .args(["client", "add", "bench-imaging", "--scope", "system/*.cruds", "--campus", "campus-east", "--data-dir"])
        .arg(dir)
        .args(["--database", &db])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let creds: Value = serde_json::from_slice(&out.stdout).unwrap();
    let bearer =
        crate::bearer(base, creds["client_id"].as_str().unwrap(), creds["client_secret"].as_str().unwrap()).await;
    // The East Campus's patients and their MRNs.
    let page = get_json(&crate::http_client(), &bearer, &format!("{base}/fhir/Patient?_count=500")).await;
    let patients: Vec<(String, String)> = page["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            let r = &e["resource"];
            let mrn = r["identifier"].as_array()?.iter().find(|i| i["system"] == "urn:lianyi:sid:mrn:campus-east")?;
            Some((r["id"].as_str()?.to_string(), mrn["value"].as_str()?.to_string()))
        })
        .collect();
    assert!(!patients.is_empty(), "the demo has East Campus patients");
    (bearer, patients)
}

pub async fn run(instances: usize) -> Value {
    let (_demo, base, dir) =
        crate::pages::start_demo("dicom-query", &["--history-days", "0"], Duration::from_secs(300)).await;
    let (bearer, patients) = east_patients(&base, &dir).await;
    let db = format!("sqlite://{}", dir.join("lianyi.db").display());
    let client = crate::http_client();

    // The index: one 1,000-instance series, then studies of 2 series × 25.
    let store = lianyi_store::Store::connect(&db).await.unwrap();
    let images = store.images(RowScope::unrestricted());
    let big_study = format!("{ROOT}.0");
    let big_series = format!("{big_study}.1");
    let mut layout: Vec<(String, String, i64)> =
        (1..=1000).map(|n| (big_study.clone(), big_series.clone(), n)).collect();
    let mut k = 1;
    while layout.len() < instances {
        for s in 1..=2 {
            for n in 1..=25 {
                layout.push((format!("{ROOT}.{k}"), format!("{ROOT}.{k}.{s}"), n));
            }
        }
        k += 1;
    }
    layout.truncate(instances);
    let started = Instant::now();
    let now = 1_796_000_000_000i64;
    for (i, (study, series, n)) in layout.iter().enumerate() {
        let k: usize = study[ROOT.len() + 1..].parse().unwrap();
        let (pid, mrn) = &patients[k % patients.len()];
        let date = format!("202611{:02}", 1 + k % 30);
        let sop = format!("{series}.{n}");
        let m = instance_json(study, series, &sop, *n, (mrn, "Bench^Patient"), &date);
        let row = NewInstance {
            study_uid: study.clone(),
            series_uid: series.clone(),
            sop_uid: sop.clone(),
            sop_class: CT.into(),
            transfer_syntax: "1.2.840.10008.1.2.1".into(),
            campus: "campus-east".into(),
            patient: Some(pid.clone()),
            patient_key: mrn.clone(),
            accession: format!("BQ{k}"),
            study_date: date.clone(),
            study_time: "093000".into(),
            study_description: "胸部CT平扫".into(),
            modality: "CT".into(),
            series_number: Some(1),
            series_description: "轴位 1mm".into(),
            body_part: "CHEST".into(),
            instance_number: Some(*n),
            frames: 1,
            file: format!("{study}/{series}/{sop}.dcm"),
            bytes: 525_000,
            source_ae: "DEMO-CT".into(),
            received_at: now + i as i64,
            study_json: subset(
                &m,
                &[
                    "00080005", "00080020", "00080030", "00080050", "00081030", "00100010", "00100020", "00100030",
                    "00100040", "0020000D",
                ],
            ),
            series_json: subset(&m, &["00080005", "00080060", "0008103E", "0020000E", "00200011"]),
            instance_json: Value::Object(m).to_string(),
        };
        images.index(&row).await.unwrap();
        if (i + 1) % 10_000 == 0 {
            println!("  {} instances indexed ({:.0} s)", i + 1, started.elapsed().as_secs_f64());
        }
    }
    // Studies 1 to k − 1, and the big one.
    let studies = k;
    println!("{instances} instances in {studies} studies indexed in {:.0} s", started.elapsed().as_secs_f64());
    // The settler writes each study's ImagingStudy (every minute, and at once after an
    // association); timing starts once it is done.
    let settle = Instant::now();
    loop {
        let b = get_json(&client, &bearer, &format!("{base}/fhir/ImagingStudy?_summary=count")).await;
        if b["total"].as_u64().unwrap_or(0) as usize >= studies {
            break;
        }
        assert!(settle.elapsed() < Duration::from_secs(900), "the settler did not finish: {b}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    println!("ImagingStudy resources written by the settler in {:.0} s", settle.elapsed().as_secs_f64());

    let d = format!("{base}/dicomweb");
    let runs = 300;
    println!();
    println!("DICOMweb on {instances} instances, one request at a time ({runs} requests each; ms)");
    println!("  {:<44} {:>8} {:>8} {:>8}", "request", "p50", "p95", "max");
    let mut report = Vec::new();
    let mut times = Vec::new();
    for r in 0..runs {
        // Patients of studies 1 to k − 1 (each study's patient is k modulo their count).
        let mrn = &patients[(1 + (r * 7919) % (k - 1)) % patients.len()].1;
        times.push(timed(&client, &bearer, &format!("{d}/studies?PatientID={mrn}")).await.0);
    }
    report.push(summary("QIDO studies?PatientID=<MRN>", &mut times));
    let mut times = Vec::new();
    for r in 0..runs {
        let url = format!("{d}/studies?StudyDate=202611{:02}&limit=50", 1 + r % 30);
        times.push(timed(&client, &bearer, &url).await.0);
    }
    report.push(summary("QIDO studies?StudyDate=<day>&limit=50", &mut times));
    let mut times = Vec::new();
    for r in 0..runs {
        let study = format!("{ROOT}.{}", 1 + (r * 31) % (k - 1));
        times.push(timed(&client, &bearer, &format!("{d}/studies/{study}/series")).await.0);
    }
    report.push(summary("QIDO studies/<uid>/series", &mut times));
    let mut times = Vec::new();
    for r in 0..runs {
        let s = 1 + (r * 31) % (k - 1);
        let url = format!("{d}/studies/{ROOT}.{s}/series/{ROOT}.{s}.1/instances");
        times.push(timed(&client, &bearer, &url).await.0);
    }
    report.push(summary("QIDO studies/<uid>/series/<uid>/instances", &mut times));
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..100 {
        let (ms, bytes) =
            timed(&client, &bearer, &format!("{d}/studies/{big_study}/series/{big_series}/metadata")).await;
        times.push(ms);
        size = bytes;
    }
    report.push(summary("WADO series metadata, 1,000 instances", &mut times));
    println!("  (the metadata answer is {:.1} MB)", size as f64 / 1e6);
    let _ = std::fs::remove_dir_all(&dir);
    json!({"instances": instances, "studies": studies, "requests": report})
}
