//! `lianyi-bench dicom [--files N]`: C-STORE throughput of the DICOM node against DCMTK's
//! `storescp` and Orthanc, in the same run, with the same files and the same client
//! (DCMTK's `storescu`, one association), TCP_NODELAY on every end. The files are CT
//! slices of 512×512 16-bit pixels (≈ 525 KB each, what a CT scanner sends) in one study
//! of series of 100.

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

/// `n` CT files under `dir`.
fn make_files(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let study = "1.2.826.0.1.3680043.2.1125.900";
    let pixels: Vec<u8> = (0..512 * 512 * 2).map(|i| (i % 251) as u8).collect();
    for k in 0..n {
        let series = format!("{study}.{}", k / 100 + 1);
        let sop = format!("{series}.{}", k + 1);
        let o = InMemDicomObject::from_element_iter([
            DataElement::new(tags::SOP_CLASS_UID, VR::UI, PrimitiveValue::from(CT)),
            DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, PrimitiveValue::from(sop.as_str())),
            DataElement::new(tags::STUDY_DATE, VR::DA, PrimitiveValue::from("20261206")),
            DataElement::new(tags::STUDY_TIME, VR::TM, PrimitiveValue::from("090000")),
            DataElement::new(tags::ACCESSION_NUMBER, VR::SH, PrimitiveValue::from("BENCH0001")),
            DataElement::new(tags::MODALITY, VR::CS, PrimitiveValue::from("CT")),
            DataElement::new(tags::PATIENT_NAME, VR::PN, PrimitiveValue::from("Bench^Patient")),
            DataElement::new(tags::PATIENT_ID, VR::LO, PrimitiveValue::from("BENCH-1")),
            DataElement::new(tags::STUDY_INSTANCE_UID, VR::UI, PrimitiveValue::from(study)),
            DataElement::new(tags::SERIES_INSTANCE_UID, VR::UI, PrimitiveValue::from(series.as_str())),
            DataElement::new(tags::SERIES_NUMBER, VR::IS, PrimitiveValue::from((k / 100 + 1).to_string())),
            DataElement::new(tags::INSTANCE_NUMBER, VR::IS, PrimitiveValue::from((k % 100 + 1).to_string())),
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
        "DicomCheckCalledAet": false, "StorageCompression": false, "Plugins": [],
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
    let n: usize = args
        .iter()
        .position(|a| a == "--files")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let root = std::env::temp_dir().join(format!("lianyi-bench-dicom-files-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let files = root.join("files");
    let t = Instant::now();
    make_files(&files, n);
    let bytes: u64 = std::fs::read_dir(&files).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    println!("{n} CT files, {:.0} MB, made in {:.1} s", bytes as f64 / 1e6, t.elapsed().as_secs_f64());

    // Lianyi: the demo (AE DEMO-CT admitted from 127.0.0.1), the node on its own port.
    let port = free_port();
    let dicom_arg = format!("127.0.0.1:{port}");
    let (demo, _base, demo_dir) = crate::pages::start_demo(
        "dicom",
        &["--history-days", "0", "--dicom-listen", &dicom_arg],
        Duration::from_secs(300),
    )
    .await;
    wait_for(port, "the Lianyi DICOM node");
    let lianyi = send(&files, "DEMO-CT", "LIANYI", port, n);
    let stored = walk(&demo_dir.join("imaging"));
    drop(demo);
    assert_eq!(stored, n, "Lianyi kept every file");

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

    // Orthanc.
    let port = free_port();
    let peer = orthanc(&root.join("orthanc"), port, free_port());
    let orthanc = send(&files, "DEMO-CT", "ORTHANC", port, n);
    drop(peer);

    println!();
    println!("C-STORE, {n} files, one association (storescu -R +sd), TCP_NODELAY=1");
    println!("  {:<10} {:>10}", "peer", "files/s");
    for (name, rate) in [("Lianyi", lianyi), ("storescp", storescp), ("Orthanc", orthanc)] {
        println!("  {name:<10} {rate:>10.1}");
    }
    println!("  Lianyi = {:.2}x Orthanc, {:.0} % of storescp", lianyi / orthanc, 100.0 * lianyi / storescp);
    println!(
        "{}",
        serde_json::json!({"files": n, "lianyi_files_per_s": lianyi, "storescp_files_per_s": storescp, "orthanc_files_per_s": orthanc})
    );
    if let Some(out) = args.iter().position(|a| a == "--out").and_then(|i| args.get(i + 1)) {
        let report = serde_json::json!({"files": n, "lianyi_files_per_s": lianyi, "storescp_files_per_s": storescp,
            "orthanc_files_per_s": orthanc});
        std::fs::write(out, report.to_string()).unwrap();
    }
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&demo_dir);
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
