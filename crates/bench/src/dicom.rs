//! `lianyi-bench dicom [--files N] [--instances N] [--out FILE]`: C-STORE throughput of the DICOM node against DCMTK's
//! `storescp` and Orthanc, in the same run, with the same files and the same client
//! (DCMTK's `storescu`, one association), TCP_NODELAY on every end. The files are CT
//! slices of 512×512 16-bit pixels (≈ 525 KB each, what a CT scanner sends) in one study
//! of series of 100. Then the DICOMweb reads on an archive of `--instances` indexed
//! instances ([`crate::dicom_query`]). `0` skips either part.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN;

const CT: &str = "1.2.840.10008.5.1.4.1.1.2";

/// A peer process, killed when dropped.
use crate::pages::Demo as Killed;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for(port: u16, what: &str) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(120), "{what} did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const STUDY: &str = "1.2.826.0.1.3680043.2.1125.900";
const SERIES: &str = "1.2.826.0.1.3680043.2.1125.900.1";

/// `n` CT files under `dir`: one thin-slice series of the patient with `patient_id`.
fn make_files(dir: &Path, n: usize, patient_id: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let (study, series) = (STUDY, SERIES);
    let pixels: Vec<u8> = (0..512 * 512 * 2).map(|i| (i % 251) as u8).collect();
    for k in 0..n {
        let sop = format!("{series}.{}", k + 1);
        let o = InMemDicomObject::from_element_iter([
            DataElement::new(tags::SOP_CLASS_UID, VR::UI, PrimitiveValue::from(CT)),
            DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, PrimitiveValue::from(sop.as_str())),
            DataElement::new(tags::STUDY_DATE, VR::DA, PrimitiveValue::from("20261206")),
            DataElement::new(tags::STUDY_TIME, VR::TM, PrimitiveValue::from("090000")),
            DataElement::new(tags::ACCESSION_NUMBER, VR::SH, PrimitiveValue::from("BENCH0001")),
            DataElement::new(tags::MODALITY, VR::CS, PrimitiveValue::from("CT")),
            DataElement::new(tags::PATIENT_NAME, VR::PN, PrimitiveValue::from("Bench^Patient")),
            DataElement::new(tags::PATIENT_ID, VR::LO, PrimitiveValue::from(patient_id)),
            DataElement::new(tags::STUDY_INSTANCE_UID, VR::UI, PrimitiveValue::from(study)),
            DataElement::new(tags::SERIES_INSTANCE_UID, VR::UI, PrimitiveValue::from(series)),
            DataElement::new(tags::SERIES_NUMBER, VR::IS, PrimitiveValue::from("1")),
            DataElement::new(tags::INSTANCE_NUMBER, VR::IS, PrimitiveValue::from((k + 1).to_string())),
            DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1_u16)),
            DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, PrimitiveValue::from("MONOCHROME2")),
            DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(512_u16)),
            DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(512_u16)),
            DataElement::new(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16_u16)),
            DataElement::new(tags::BITS_STORED, VR::US, PrimitiveValue::from(12_u16)),
            DataElement::new(tags::HIGH_BIT, VR::US, PrimitiveValue::from(11_u16)),
            DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, PrimitiveValue::from(0_u16)),
            DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::from(pixels.clone())),
        ]);
        let mut file = lianyi_dicom::instance::file_header(CT, &sop, "1.2.840.10008.1.2.1", "BENCH").unwrap();
        o.write_dataset_with_ts(&mut file, &EXPLICIT_VR_LITTLE_ENDIAN.erased()).unwrap();
        std::fs::write(dir.join(format!("ct{k:06}.dcm")), file).unwrap();
    }
}

/// Sends the folder with storescu (one association); files per second.
fn send(dir: &Path, calling: &str, called: &str, port: u16, n: usize) -> f64 {
    let started = Instant::now();
    let out = Command::new("storescu")
        .args(["-R", "-aet", calling, "-aec", called, "+sd", "127.0.0.1", &port.to_string()])
        .arg(dir)
        .env("TCP_NODELAY", "1")
        .output()
        .expect("storescu (Debian dcmtk) runs");
    let secs = started.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("Store Failed"), "storescu to {called}: {err}");
    n as f64 / secs
}

fn orthanc(dir: &Path, dicom: u16, http: u16) -> Killed {
    std::fs::create_dir_all(dir).unwrap();
    let config = serde_json::json!({
        "Name": "bench", "StorageDirectory": dir.join("storage"), "IndexDirectory": dir.join("index"),
        "DicomAet": "ORTHANC", "DicomPort": dicom, "HttpPort": http, "RemoteAccessAllowed": false,
        "DicomCheckCalledAet": false, "StorageCompression": false, "AuthenticationEnabled": false,
        "Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"],
        "DicomWeb": {"Enable": true, "Root": "/dicom-web/"},
        "DicomModalities": {}, "DicomAlwaysAllowStore": true, "SaveJobs": false,
    });
    let path = dir.join("orthanc.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let child = Command::new("Orthanc")
        .arg(&path)
        .env("TCP_NODELAY", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("Orthanc (Debian orthanc) runs");
    wait_for(dicom, "Orthanc");
    Killed(child)
}

pub async fn run(args: Vec<String>) {
    let number = |flag: &str, default: usize| -> usize {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (n, instances) = (number("--files", 1000), number("--instances", 100_000));
    let mut report = serde_json::Map::new();
    if n > 0 {
        report.insert("c_store".into(), c_store(n).await);
    }
    if instances > 0 {
        report.insert("dicomweb".into(), crate::dicom_query::run(instances).await);
    }
    println!("{}", serde_json::Value::Object(report.clone()));
    if let Some(out) = args.iter().position(|a| a == "--out").and_then(|i| args.get(i + 1)) {
        std::fs::write(out, serde_json::Value::Object(report).to_string()).unwrap();
    }
}

/// C-STORE of `n` CT files to each peer in turn.
async fn c_store(n: usize) -> serde_json::Value {
    let root = std::env::temp_dir().join(format!("lianyi-bench-dicom-files-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let files = root.join("files");

    // Lianyi: the demo (AE DEMO-CT admitted from 127.0.0.1), the node on its own port;
    // the files are an East Campus patient's (their MRN is the PatientID), so they are
    // filed under them and DICOMweb answers for them.
    let port = free_port();
    let dicom_arg = format!("127.0.0.1:{port}");
    let (demo, base, demo_dir) = crate::pages::start_demo(
        "dicom",
        &["--history-days", "0", "--dicom-listen", &dicom_arg],
        Duration::from_secs(300),
    )
    .await;
    wait_for(port, "the Lianyi DICOM node");
    let (bearer, mrn) = crate::dicom_query::east_client(&base, &demo_dir).await;
    let t = Instant::now();
    make_files(&files, n, &mrn);
    let bytes: u64 = std::fs::read_dir(&files).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    println!("{n} CT files, {:.0} MB, made in {:.1} s", bytes as f64 / 1e6, t.elapsed().as_secs_f64());
    // The demo's own studies are there before.
    let before = walk(&demo_dir.join("imaging"));
    let lianyi = send(&files, "DEMO-CT", "LIANYI", port, n);
    let stored = walk(&demo_dir.join("imaging")) - before;
    assert_eq!(stored, n, "Lianyi kept every file");
    let client = crate::http_client();
    let metadata = format!("{base}/dicomweb/studies/{STUDY}/series/{SERIES}/metadata");
    let lianyi_metadata = metadata_times(&client, &metadata, Some(&bearer), 20, n).await;
    drop(demo);

    // DCMTK's storescp.
    let port = free_port();
    let out = root.join("storescp");
    std::fs::create_dir_all(&out).unwrap();
    let scp = Killed(
        Command::new("storescp")
            .args(["-aet", "STORESCP", "-od"])
            .arg(&out)
            .arg(port.to_string())
            .env("TCP_NODELAY", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("storescp (Debian dcmtk) runs"),
    );
    wait_for(port, "storescp");
    let storescp = send(&files, "DEMO-CT", "STORESCP", port, n);
    drop(scp);

    // Orthanc, with its DICOMweb plugin.
    let (port, http) = (free_port(), free_port());
    let peer = orthanc(&root.join("orthanc"), port, http);
    let orthanc = send(&files, "DEMO-CT", "ORTHANC", port, n);
    let metadata = format!("http://127.0.0.1:{http}/dicom-web/studies/{STUDY}/series/{SERIES}/metadata");
    let orthanc_metadata = metadata_times(&client, &metadata, None, 5, n).await;
    drop(peer);

    println!();
    println!("C-STORE, {n} files, one association (storescu -R +sd), TCP_NODELAY=1");
    println!("  {:<10} {:>10}", "peer", "files/s");
    for (name, rate) in [("Lianyi", lianyi), ("storescp", storescp), ("Orthanc", orthanc)] {
        println!("  {name:<10} {rate:>10.1}");
    }
    println!("  Lianyi = {:.2}x Orthanc, {:.0} % of storescp", lianyi / orthanc, 100.0 * lianyi / storescp);
    println!();
    println!("WADO-RS metadata of the {n}-instance series just stored (ms; p50, p95, max)");
    for (name, t) in [("Lianyi", &lianyi_metadata), ("Orthanc", &orthanc_metadata)] {
        println!("  {name:<10} {:>9.1} {:>9.1} {:>9.1}", t[0], t[1], t[2]);
    }
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&demo_dir);
    serde_json::json!({"files": n, "lianyi_files_per_s": lianyi, "storescp_files_per_s": storescp,
        "orthanc_files_per_s": orthanc,
        "series_metadata_ms": {"lianyi": {"p50": lianyi_metadata[0], "p95": lianyi_metadata[1], "max": lianyi_metadata[2]},
                               "orthanc": {"p50": orthanc_metadata[0], "p95": orthanc_metadata[1], "max": orthanc_metadata[2]}}})
}

/// `runs` GETs of a series' metadata, each checked to list `instances` instances:
/// [p50, p95, max] in ms.
async fn metadata_times(
    client: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    runs: usize,
    instances: usize,
) -> [f64; 3] {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let mut req = client.get(url).header("accept", "application/dicom+json");
        if let Some(b) = bearer {
            req = req.header("authorization", b);
        }
        let r = req.send().await.unwrap();
        assert!(r.status().is_success(), "{url}: {}", r.status());
        let body: serde_json::Value = r.json().await.unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(body.as_array().map(Vec::len), Some(instances), "{url} lists every instance");
    }
    times.sort_by(f64::total_cmp);
    [crate::percentile(&times, 0.5), crate::percentile(&times, 0.95), times.last().copied().unwrap_or(0.0)]
}

fn walk(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "dcm") {
                n += 1;
            }
        }
    }
    n
}
