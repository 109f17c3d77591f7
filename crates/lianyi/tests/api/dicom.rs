//! The DICOM node with real DCMTK clients (`echoscu`, `storescu`) and a raw DIMSE
//! client for the bad inputs DCMTK would not send: instances kept as received, indexed,
//! filed under the patient whose MRN at the sending AE's campus is the PatientID, and
//! shown as an ImagingStudy linked to the patient, the order (accession number) and the
//! campus; unmatched studies wait on the reconciliation list; refusals name why and
//! leave nothing behind.

use std::path::Path;
use std::process::Command;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN;
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu};
use lianyi_dicom::node::NodeConfig;
use lianyi_imaging::aes::AeDraft;
use lianyi_security::{Caller, SystemTask};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

const CT: &str = "1.2.840.10008.5.1.4.1.1.2";

/// An instance's data set (Explicit VR Little Endian), GB18030 names, an 8×8 slice.
pub(crate) fn data_set(
    study: &str,
    series: &str,
    sop: &str,
    patient_id: &str,
    accession: &str,
    number: i64,
) -> Vec<u8> {
    slice(study, series, sop, patient_id, accession, number, 8)
}

/// An instance's data set with a `size`×`size` CT slice.
pub(crate) fn slice(
    study: &str,
    series: &str,
    sop: &str,
    patient_id: &str,
    accession: &str,
    number: i64,
    size: u16,
) -> Vec<u8> {
    let o = InMemDicomObject::from_element_iter([
        DataElement::new(tags::SPECIFIC_CHARACTER_SET, VR::CS, PrimitiveValue::from("GB18030")),
        DataElement::new(tags::SOP_CLASS_UID, VR::UI, PrimitiveValue::from(CT)),
        DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, PrimitiveValue::from(sop)),
        DataElement::new(tags::STUDY_DATE, VR::DA, PrimitiveValue::from("20261206")),
        DataElement::new(tags::STUDY_TIME, VR::TM, PrimitiveValue::from("093000")),
        DataElement::new(tags::ACCESSION_NUMBER, VR::SH, PrimitiveValue::from(accession)),
        DataElement::new(tags::MODALITY, VR::CS, PrimitiveValue::from("CT")),
        DataElement::new(tags::STUDY_DESCRIPTION, VR::LO, PrimitiveValue::from("胸部CT平扫")),
        DataElement::new(tags::PATIENT_NAME, VR::PN, PrimitiveValue::from("Zhang^San=张^三")),
        DataElement::new(tags::PATIENT_ID, VR::LO, PrimitiveValue::from(patient_id)),
        DataElement::new(tags::PATIENT_BIRTH_DATE, VR::DA, PrimitiveValue::from("19800101")),
        DataElement::new(tags::PATIENT_SEX, VR::CS, PrimitiveValue::from("M")),
        DataElement::new(tags::STUDY_INSTANCE_UID, VR::UI, PrimitiveValue::from(study)),
        DataElement::new(tags::SERIES_INSTANCE_UID, VR::UI, PrimitiveValue::from(series)),
        DataElement::new(
            tags::SERIES_NUMBER,
            VR::IS,
            PrimitiveValue::from(if series.ends_with(".1") { "1" } else { "2" }),
        ),
        DataElement::new(tags::INSTANCE_NUMBER, VR::IS, PrimitiveValue::from(number.to_string())),
        DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1_u16)),
        DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, PrimitiveValue::from("MONOCHROME2")),
        DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(size)),
        DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(size)),
        DataElement::new(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16_u16)),
        DataElement::new(tags::BITS_STORED, VR::US, PrimitiveValue::from(12_u16)),
        DataElement::new(tags::HIGH_BIT, VR::US, PrimitiveValue::from(11_u16)),
        DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, PrimitiveValue::from(0_u16)),
        DataElement::new(tags::RESCALE_INTERCEPT, VR::DS, PrimitiveValue::from("-1024")),
        DataElement::new(tags::RESCALE_SLOPE, VR::DS, PrimitiveValue::from("1")),
        DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::from(phantom(size, number))),
    ]);
    let cs = dicom_encoding::text::SpecificCharacterSet::from_code("GB18030").unwrap();
    let mut out = Vec::new();
    o.write_dataset_with_ts_cs(&mut out, &EXPLICIT_VR_LITTLE_ENDIAN.erased(), cs).unwrap();
    out
}

/// A `size`×`size` CT slice (12 bits stored, rescaled by −1024 to Hounsfield units):
/// air around a soft-tissue disc (40 HU) holding two lungs (−800 HU) and a spine
/// (700 HU) whose size grows with the slice `number`.
pub(crate) fn phantom(size: u16, number: i64) -> Vec<u8> {
    let n = f64::from(size);
    let mut out = Vec::with_capacity(usize::from(size) * usize::from(size) * 2);
    for y in 0..size {
        for x in 0..size {
            let (fx, fy) = ((f64::from(x) + 0.5) / n - 0.5, (f64::from(y) + 0.5) / n - 0.5);
            let inside = |cx: f64, cy: f64, r: f64| (fx - cx).powi(2) + (fy - cy).powi(2) < r * r;
            let hu: i32 = if inside(0.0, 0.3, 0.05 + 0.01 * number as f64) {
                700
            } else if inside(-0.2, 0.0, 0.15) || inside(0.2, 0.0, 0.15) {
                -800
            } else if inside(0.0, 0.0, 0.45) {
                40
            } else {
                -1000
            };
            out.extend_from_slice(&((hu + 1024) as u16).to_le_bytes());
        }
    }
    out
}

pub(crate) fn write_file(dir: &Path, name: &str, sop: &str, body: &[u8]) {
    let mut file = lianyi_dicom::instance::file_header(CT, sop, "1.2.840.10008.1.2.1", "TEST").unwrap();
    file.extend_from_slice(body);
    std::fs::write(dir.join(name), file).unwrap();
}

async fn put(app: &TestApp, client: &reqwest::Client, v: Value) {
    let url = app.url(&format!("/fhir/{}/{}", v["resourceType"].as_str().unwrap(), v["id"].as_str().unwrap()));
    let r = client.put(url).header("content-type", "application/fhir+json").body(v.to_string()).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

/// A C-STORE of raw bytes through our own association, for what DCMTK will not send:
/// returns the response's status and error comment.
fn raw_store(
    addr: std::net::SocketAddr,
    calling: &str,
    command_class: &str,
    sop: &str,
    body: Vec<u8>,
) -> (u16, String) {
    let mut assoc = dicom_ul::ClientAssociationOptions::new()
        .calling_ae_title(calling)
        .called_ae_title("LIANYI")
        .with_presentation_context(CT, vec!["1.2.840.10008.1.2.1"])
        .establish(addr)
        .expect("association");
    let pc = assoc.presentation_contexts()[0].id;
    let command = lianyi_dicom::command::store_request(1, command_class, sop, None);
    assoc
        .send(&Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: pc,
                value_type: PDataValueType::Command,
                is_last: true,
                data: command,
            }],
        })
        .unwrap();
    assoc
        .send(&Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: pc,
                value_type: PDataValueType::Data,
                is_last: true,
                data: body,
            }],
        })
        .unwrap();
    let Pdu::PData { data } = assoc.receive().unwrap() else { panic!("no response") };
    let o = InMemDicomObject::read_dataset_with_ts(
        &data[0].data[..],
        &dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN.erased(),
    )
    .unwrap();
    let status = o.get(tags::STATUS).unwrap().to_int::<u16>().unwrap();
    let comment = o.get(tags::ERROR_COMMENT).map(|e| e.to_str().unwrap().trim().to_string()).unwrap_or_default();
    let _ = assoc.release();
    (status, comment)
}

async fn imaging_studies(client: &reqwest::Client, url: String) -> Vec<Value> {
    let b: Value = client.get(url).send().await.unwrap().json().await.unwrap();
    b["entry"].as_array().cloned().unwrap_or_default().into_iter().map(|e| e["resource"].clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dcmtk_stores_into_the_record_and_bad_input_is_refused_by_name() {
    let app = spawn_app().await;
    let east = app.client_with("system/*.cruds", "campus-east", None).await;
    let west = app.client_with("system/*.cruds", "campus-west", None).await;
    put(
        &app,
        &east,
        json!({"resourceType": "Organization", "id": "campus-east", "name": "东院区", "alias": ["East Campus"]}),
    )
    .await;
    put(
        &app,
        &west,
        json!({"resourceType": "Organization", "id": "campus-west", "name": "西院区", "alias": ["West Campus"]}),
    )
    .await;
    // Registered at the West Campus (and so holding a West MRN); ordered a chest CT there.
    put(
        &app,
        &west,
        json!({"resourceType": "Patient", "id": "p-zhang", "name": [{"text": "张三"}], "gender": "male",
        "identifier": [{"system": "urn:lianyi:sid:mrn:campus-west", "value": "W2000001"}]}),
    )
    .await;
    put(
        &app,
        &west,
        json!({"resourceType": "ServiceRequest", "id": "sr-ct", "status": "active", "intent": "order",
        "identifier": [{"system": "urn:lianyi:sid:placer", "value": "LY00000042"}],
        "code": {"text": "胸部CT"}, "subject": {"reference": "Patient/p-zhang"}}),
    )
    .await;
    let admin = Caller::task(SystemTask::Operator("test setup".into()));
    for (title, campus) in [("CT-WEST", "campus-west"), ("CT-EAST", "campus-east")] {
        let d =
            AeDraft { ae_title: title.into(), campus: campus.into(), host: "127.0.0.1".into(), ..Default::default() };
        app.imaging.put_ae(&admin, &d).await.unwrap();
    }
    // The table's rules name the field.
    let bad = AeDraft { ae_title: "A\\B".into(), campus: "campus-east".into(), ..Default::default() };
    assert!(app.imaging.put_ae(&admin, &bad).await.unwrap_err().to_string().starts_with("ae_title:"));
    let nowhere = AeDraft { ae_title: "MR-X".into(), campus: "campus-moon".into(), ..Default::default() };
    assert!(app.imaging.put_ae(&admin, &nowhere).await.unwrap_err().to_string().starts_with("campus:"));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(lianyi_web::serve_dicom(listener, app.imaging.clone(), NodeConfig::default()));
    let (host, port) = (addr.ip().to_string(), addr.port().to_string());

    // C-ECHO from a known AE; an unknown one is refused at association.
    let echo = Command::new("echoscu").args(["-aet", "CT-WEST", "-aec", "LIANYI", &host, &port]).output().unwrap();
    assert!(echo.status.success(), "{}", String::from_utf8_lossy(&echo.stderr));
    let stranger = Command::new("echoscu").args(["-aet", "STRANGER", "-aec", "LIANYI", &host, &port]).output().unwrap();
    assert!(!stranger.status.success());
    assert!(String::from_utf8_lossy(&stranger.stderr).contains("Calling AE Title Not Recognized"));

    // A folder of three instances (two series) for the West patient, and one study
    // whose PatientID is no West MRN.
    let dir = tempfile::tempdir().unwrap();
    let (study, other) = ("1.2.826.0.1.3680043.2.1125.1", "1.2.826.0.1.3680043.2.1125.2");
    for (n, series) in [(1, "1"), (2, "1"), (3, "2")] {
        let sop = format!("{study}.{series}.{n}");
        let body = data_set(study, &format!("{study}.{series}"), &sop, "W2000001", "LY00000042", n);
        write_file(dir.path(), &format!("ct{n}.dcm"), &sop, &body);
    }
    let stray = format!("{other}.1.1");
    write_file(dir.path(), "stray.dcm", &stray, &data_set(other, &format!("{other}.1"), &stray, "E1000001", "", 1));
    let store = Command::new("storescu")
        .args(["-aet", "CT-WEST", "-aec", "LIANYI", "+sd", "+r", &host, &port])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(store.status.success(), "{}", String::from_utf8_lossy(&store.stderr));
    // Kept as received, under the imaging folder by UID.
    let kept = app.imaging.folder().join(study).join(format!("{study}.1")).join(format!("{study}.1.1.dcm"));
    let file = std::fs::read(&kept).unwrap();
    assert_eq!(&file[128..132], b"DICM");
    assert!(file.ends_with(&data_set(
        study,
        &format!("{study}.1"),
        &format!("{study}.1.1"),
        "W2000001",
        "LY00000042",
        1
    )));

    app.imaging.settle().await.unwrap();
    let found = imaging_studies(&west, app.url("/fhir/ImagingStudy?subject=Patient/p-zhang")).await;
    assert_eq!(found.len(), 1, "{found:?}");
    let s = &found[0];
    assert_eq!(s["identifier"][0]["value"], format!("urn:oid:{study}"));
    assert_eq!(s["identifier"][1]["value"], "LY00000042");
    assert_eq!(s["basedOn"][0]["reference"], "ServiceRequest/sr-ct");
    assert_eq!((s["numberOfSeries"].as_i64(), s["numberOfInstances"].as_i64()), (Some(2), Some(3)));
    assert_eq!(s["started"], "2026-12-06T09:30:00+08:00");
    assert_eq!(s["description"], "胸部CT平扫", "GB18030 decoded");
    assert_eq!(s["series"][0]["instance"].as_array().unwrap().len(), 2);
    lianyi_fhir::validate_resource(s).unwrap();
    // The study belongs to the West Campus: an East-only client does not see it.
    assert!(imaging_studies(&east, app.url("/fhir/ImagingStudy?subject=Patient/p-zhang")).await.is_empty());
    let r = east.get(app.url(&format!("/fhir/ImagingStudy/{}", s["id"].as_str().unwrap()))).send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::FORBIDDEN);

    // E1000001 is no West MRN: the study waits for the registrar, in no one's record.
    let waiting = app.imaging.unmatched(&admin).await.unwrap();
    assert_eq!(waiting.iter().map(|s| s.study_uid.as_str()).collect::<Vec<_>>(), [other]);
    assert!(waiting[0].json.contains("张^三"), "the kept DICOM JSON has the decoded name");
    assert_eq!(app.total("/fhir/ImagingStudy").await, 1);
    app.imaging.reconcile(&admin, other, "p-zhang").await.unwrap();
    app.imaging.settle().await.unwrap();
    assert_eq!(imaging_studies(&west, app.url("/fhir/ImagingStudy?subject=Patient/p-zhang")).await.len(), 2);
    assert!(app.imaging.unmatched(&admin).await.unwrap().is_empty());

    // C-FIND with DCMTK's findscu at every level, both models.
    let find = |aet: &str, model: &str, keys: &[&str]| {
        let mut c = Command::new("findscu");
        c.args(["-v", "-aet", aet, "-aec", "LIANYI", model]);
        for k in keys {
            c.args(["-k", k]);
        }
        let out = c.args([&host, &port]).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{text}");
        let pending = text.matches("(Pending)").count();
        (pending, text)
    };
    let (n, text) = find(
        "CT-WEST",
        "-S",
        &[
            "QueryRetrieveLevel=STUDY",
            "PatientID=W2000001",
            "StudyInstanceUID",
            "ModalitiesInStudy",
            "NumberOfStudyRelatedInstances",
        ],
    );
    assert_eq!(n, 2, "the patient's studies, the reconciled one too: {text}");
    assert!(text.contains(study) && text.contains("[3 ]") || text.contains("[3]"), "{text}");
    let (n, text) = find(
        "CT-WEST",
        "-S",
        &["QueryRetrieveLevel=STUDY", "PatientName=zhang*", "StudyDate=20261201-20261231", "StudyInstanceUID"],
    );
    assert_eq!(n, 2, "{text}");
    let (n, _) = find("CT-WEST", "-S", &["QueryRetrieveLevel=STUDY", "StudyDate=20270101-"]);
    assert_eq!(n, 0, "date range");
    let (n, text) = find(
        "CT-WEST",
        "-S",
        &["QueryRetrieveLevel=SERIES", &format!("StudyInstanceUID={study}"), "SeriesInstanceUID", "Modality"],
    );
    assert_eq!(n, 2, "{text}");
    let (n, text) = find(
        "CT-WEST",
        "-S",
        &[
            "QueryRetrieveLevel=IMAGE",
            &format!("StudyInstanceUID={study}"),
            &format!("SeriesInstanceUID={study}.1"),
            "SOPInstanceUID",
            "InstanceNumber",
        ],
    );
    assert_eq!(n, 2, "{text}");
    assert!(text.contains(&format!("{study}.1.2")), "{text}");
    let (n, text) = find(
        "CT-WEST",
        "-P",
        &["QueryRetrieveLevel=PATIENT", "PatientID=W2000001", "PatientName", "NumberOfPatientRelatedStudies"],
    );
    assert_eq!(n, 1, "{text}");
    assert!(text.contains("张^三"), "names answered in UTF-8: {text}");
    // An East modality sees no West study, until it names a patient holding an East MRN.
    let (n, _) = find("CT-EAST", "-S", &["QueryRetrieveLevel=STUDY", "StudyInstanceUID"]);
    assert_eq!(n, 0);
    let (n, _) = find("CT-EAST", "-S", &["QueryRetrieveLevel=STUDY", "PatientID=W2000001"]);
    assert_eq!(n, 0, "W2000001 is no East MRN");
    // An East radiologist (an East-only client) over DICOMweb: refused, and audited.
    let metadata = app.url(&format!("/dicomweb/studies/{study}/metadata"));
    let r = east.get(&metadata).send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::NOT_FOUND);
    let auditor = app.client_with("system/AuditEvent.rs", "*", None).await;
    let events: Value =
        auditor.get(app.url("/fhir/AuditEvent?subtype=read&_count=200")).send().await.unwrap().json().await.unwrap();
    let refused = events["entry"].as_array().unwrap().iter().any(|e| {
        e["resource"]["outcome"] != "0"
            && e["resource"]["entity"]
                .as_array()
                .is_some_and(|x| x.iter().any(|x| x["what"]["reference"] == format!("ImagingStudy/{study}")))
    });
    assert!(refused, "the refused read is audited: {events}");
    // Once the patient is registered at the East Campus too, the East Campus reads the
    // patient's West studies (the record across campuses), found by the East MRN.
    put(
        &app,
        &west,
        json!({"resourceType": "Patient", "id": "p-zhang", "name": [{"text": "张三"}], "gender": "male",
        "identifier": [{"system": "urn:lianyi:sid:mrn:campus-west", "value": "W2000001"},
                       {"system": "urn:lianyi:sid:mrn:campus-east", "value": "E3000003"}]}),
    )
    .await;
    let r = east.get(&metadata).send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let instances: Vec<Value> = r.json().await.unwrap();
    assert_eq!(instances.len(), 3);
    assert!(instances.iter().all(|i| i.get("7FE00010").is_none()), "no bulk data in the metadata");
    // Its pixels: a frame rendered in the window asked, the native samples, and
    // requests that cannot be answered refused by name.
    let instance = app.url(&format!("/dicomweb/studies/{study}/series/{study}.1/instances/{study}.1.1"));
    let r = east.get(format!("{instance}/rendered?window=40,400")).header("accept", "image/png").send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/png");
    let png = r.bytes().await.unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 8, "8 columns wide");
    let r = east.get(format!("{instance}/frames/1/rendered?viewport=4,4")).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    assert_eq!(&r.bytes().await.unwrap()[..2], [0xFF, 0xD8]);
    let r = east.get(format!("{instance}/frames/1")).send().await.unwrap();
    let ctype = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("multipart/related; type=\"application/octet-stream\""), "{ctype}");
    let body = r.bytes().await.unwrap();
    let samples = phantom(8, 1);
    assert!(body.windows(samples.len()).any(|w| w == samples), "the frame's samples as stored");
    for (path, accept, status, why) in [
        ("frames/2", "*/*", 404, "frame 2 does not exist: the instance has 1 frame(s)"),
        ("frames/0", "*/*", 400, "frame numbers from 1"),
        ("rendered?window=wide", "image/jpeg", 400, "window must be two numbers"),
        ("rendered?quality=0", "image/jpeg", 400, "quality must be a whole number from 1 to 100"),
        ("rendered", "image/gif", 406, "image/jpeg or image/png"),
    ] {
        let r = east.get(format!("{instance}/{path}")).header("accept", accept).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{path}");
        let text = r.text().await.unwrap();
        assert!(text.contains(why), "{path}: {text}");
    }
    let found: Vec<Value> =
        east.get(app.url("/dicomweb/studies?PatientID=E3000003")).send().await.unwrap().json().await.unwrap();
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found.iter().all(|s| s["00100020"]["Value"][0] == "E3000003"), "answered with the East MRN");
    let (n, text) = find("CT-EAST", "-S", &["QueryRetrieveLevel=STUDY", "PatientID=E3000003", "StudyInstanceUID"]);
    assert_eq!(n, 2, "the East modality finds them by the East MRN: {text}");
    assert!(text.contains("E3000003"), "{text}");
    let (n, _) = find("CT-EAST", "-S", &["QueryRetrieveLevel=STUDY", "StudyInstanceUID"]);
    assert_eq!(n, 0, "without naming the patient, still only the East Campus's own studies");
    // The worklist: active imaging requests of the AE's campus, with the MRN there.
    put(
        &app,
        &west,
        json!({"resourceType": "ServiceRequest", "id": "sr-head", "status": "active", "intent": "order",
        "identifier": [{"system": "urn:lianyi:sid:placer", "value": "LY00000043"}],
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "363679005"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "24725-4", "display": "CT Head"}], "text": "头颅CT"},
        "authoredOn": "2026-12-06T10:15:00+08:00",
        "subject": {"reference": "Patient/p-zhang"}}),
    )
    .await;
    let (n, text) = find(
        "CT-WEST",
        "-W",
        &[
            "(0040,0100)[0].Modality=CT",
            "(0040,0100)[0].ScheduledStationAETitle",
            "(0040,0100)[0].ScheduledProcedureStepStartDate=20261206",
            "PatientID",
            "PatientName",
            "AccessionNumber",
            "RequestedProcedureDescription",
            "StudyInstanceUID",
        ],
    );
    assert_eq!(n, 1, "{text}");
    assert!(text.contains("LY00000043") && text.contains("W2000001") && text.contains("头颅CT"), "{text}");
    let (n, _) = find("CT-WEST", "-W", &["(0040,0100)[0].Modality=MR", "AccessionNumber"]);
    assert_eq!(n, 0, "no MR scheduled");
    let (n, _) = find("CT-EAST", "-W", &["AccessionNumber"]);
    assert_eq!(n, 0, "the request is the West Campus's");
    // A malformed query is refused, saying why.
    let (n, text) = find("CT-WEST", "-S", &["QueryRetrieveLevel=WARD"]);
    assert_eq!(n, 0);
    assert!(text.contains("WARD") || text.contains("0xa900") || text.contains("a900"), "{text}");

    // C-GET back on the association (getscu), C-MOVE to a third AE (DCMTK's storescp).
    let got = tempfile::tempdir().unwrap();
    let get = Command::new("getscu")
        .args(["-aet", "CT-WEST", "-aec", "LIANYI", "-S", "-k", "QueryRetrieveLevel=STUDY"])
        .args(["-k", &format!("StudyInstanceUID={study}"), "-od"])
        .arg(got.path())
        .args([&host, &port])
        .output()
        .unwrap();
    assert!(get.status.success(), "{}", String::from_utf8_lossy(&get.stderr));
    let mut files: Vec<String> =
        std::fs::read_dir(got.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    files.sort();
    assert_eq!(files.len(), 3, "{files:?} {}", String::from_utf8_lossy(&get.stderr));
    assert!(files.iter().all(|f| f.contains(study)), "{files:?}");
    // An East AE cannot retrieve the West study it cannot see.
    let none = tempfile::tempdir().unwrap();
    let refused = Command::new("getscu")
        .args(["-aet", "CT-EAST", "-aec", "LIANYI", "-S", "-k", "QueryRetrieveLevel=STUDY"])
        .args(["-k", &format!("StudyInstanceUID={study}"), "-od"])
        .arg(none.path())
        .args([&host, &port])
        .output()
        .unwrap();
    assert!(refused.status.success());
    assert_eq!(std::fs::read_dir(none.path()).unwrap().count(), 0);

    let archive_dir = tempfile::tempdir().unwrap();
    let archive_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut archive = Command::new("storescp")
        .args(["-aet", "ARCHIVE", "-od"])
        .arg(archive_dir.path())
        .arg(archive_port.to_string())
        .spawn()
        .unwrap();
    let d = AeDraft {
        ae_title: "ARCHIVE".into(),
        campus: "campus-west".into(),
        host: "127.0.0.1".into(),
        port: archive_port.to_string(),
        ..Default::default()
    };
    app.imaging.put_ae(&admin, &d).await.unwrap();
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", archive_port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let moved = Command::new("movescu")
        .args(["-aet", "CT-WEST", "-aec", "LIANYI", "-aem", "ARCHIVE", "-S", "-k", "QueryRetrieveLevel=SERIES"])
        .args(["-k", &format!("StudyInstanceUID={study}"), "-k", &format!("SeriesInstanceUID={study}.1")])
        .args([&host, &port])
        .output()
        .unwrap();
    let _ = archive.kill();
    let _ = archive.wait();
    assert!(moved.status.success(), "{}", String::from_utf8_lossy(&moved.stderr));
    assert_eq!(std::fs::read_dir(archive_dir.path()).unwrap().count(), 2, "the series' two instances");
    let nowhere = Command::new("movescu")
        .args(["-v", "-aet", "CT-WEST", "-aec", "LIANYI", "-aem", "NOWHERE", "-S", "-k", "QueryRetrieveLevel=STUDY"])
        .args(["-k", &format!("StudyInstanceUID={study}")])
        .args([&host, &port])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&nowhere.stderr).to_lowercase();
    assert!(said.contains("refused: movedestinationunknown"), "{said}");

    // Bad input, through a raw association: each refused with a status that says why,
    // and nothing kept.
    let bad_study = "1.2.826.0.1.3680043.2.1125.9";
    let whole = data_set(bad_study, &format!("{bad_study}.1"), &format!("{bad_study}.1.1"), "W2000001", "", 1);
    let cases = [
        ("truncated", CT, whole[..whole.len() - 60].to_vec(), 0xC000, "truncated"),
        ("unknown SOP class", "1.2.3.4.5.6", whole.clone(), 0x0122, "not stored here"),
        ("UIDs differ", CT, data_set(bad_study, "1.9", "1.9.9", "W2000001", "", 1), 0xA900, "differs"),
    ];
    for (what, class, body, status, says) in cases {
        let sop = format!("{bad_study}.1.1");
        let (got, comment) =
            tokio::task::spawn_blocking(move || raw_store(addr, "CT-WEST", class, &sop, body)).await.unwrap();
        assert_eq!(got, status, "{what}: {comment}");
        assert!(comment.contains(says), "{what}: {comment}");
    }
    assert!(!app.imaging.folder().join(bad_study).exists(), "nothing written for refused instances");
    let totals = app.imaging.totals().await.unwrap();
    assert_eq!((totals.studies, totals.instances, totals.unmatched), (2, 4, 0));
    // Monitoring sees the archive: its size, what was stored, what was refused.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for line in ["lianyi_imaging_instances 4", "lianyi_imaging_studies 2", "lianyi_imaging_unmatched_studies 0"] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    for name in ["lianyi_imaging_bytes", "lianyi_imaging_disk_free_bytes", "lianyi_dicom_associations_refused_total"] {
        assert!(metrics.contains(name), "{name}");
    }
}

/// Stores (SOP instance UID, data set) pairs as Part 10 files by STOW-RS.
async fn stow(app: &TestApp, client: &reqwest::Client, data_sets: &[(String, Vec<u8>)]) {
    stow_at(client, &app.url("/dicomweb/studies"), data_sets).await
}

/// Stores `data_sets` (SOP instance UID, data set) by STOW-RS at `url`.
pub(crate) async fn stow_at(client: &reqwest::Client, url: &str, data_sets: &[(String, Vec<u8>)]) {
    let boundary = "lianyi-test";
    let mut body = Vec::new();
    for (sop, data_set) in data_sets {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes());
        body.extend(lianyi_dicom::instance::file_header(CT, sop, "1.2.840.10008.1.2.1", "TEST").unwrap());
        body.extend_from_slice(data_set);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let r = client
        .post(url)
        .header("content-type", format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK, "{}", r.text().await.unwrap());
}

/// The viewer in a real Chromium, in Chinese then English: an East radiologist opens a
/// study stored by STOW-RS from the patient's page, scrolls to the next slice, picks
/// the lung window and zooms, and signs the report in the form beside the images; the
/// ordering doctor then finds the report in the record and the images from the
/// encounter's order. Every page passes the walk's checks (axe-core among them);
/// screenshots under target/screenshots/imaging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_reads_a_study_in_the_viewer_and_reports_beside_it() {
    use lianyi_security::ManualClock;
    use lianyi_security::users::NewUser;

    let clock = ManualClock::new(1_795_393_800_000);
    let app = crate::helpers::spawn_app_clocked(1 << 24, Some(clock.clone())).await;
    let east = app.client_with("system/*.cruds", "campus-east", None).await;
    for v in [
        json!({"resourceType": "Organization", "id": "campus-east", "name": "东院区", "alias": ["East Campus"]}),
        json!({"resourceType": "Patient", "id": "p-li", "name": [{"text": "李四"}], "gender": "female",
               "birthDate": "1975-03-02",
               "identifier": [{"system": "urn:lianyi:sid:mrn:campus-east", "value": "E4000004"}]}),
        json!({"resourceType": "Encounter", "id": "enc-li", "status": "in-progress",
               "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
               "subject": {"reference": "Patient/p-li"}}),
        json!({"resourceType": "ServiceRequest", "id": "sr-cth", "status": "active", "intent": "order",
               "identifier": [{"system": "urn:lianyi:sid:placer", "value": "LY00000077"}],
               "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "363679005"}]}],
               "code": {"coding": [{"system": "http://loinc.org", "code": "24725-4", "display": "CT Head"},
                                   {"system": "urn:lianyi:order", "code": "IMG-CTH"}], "text": "头颅CT"},
               "subject": {"reference": "Patient/p-li"}, "encounter": {"reference": "Encounter/enc-li"}}),
    ] {
        put(&app, &east, v).await;
    }
    // Three slices and a second series of one, stored by STOW-RS at the East Campus.
    let study = "1.2.826.0.1.3680043.2.1125.77";
    let slices = [(1, 1), (1, 2), (1, 3), (2, 1)].map(|(series, n)| {
        let sop = format!("{study}.{series}.{n}");
        (sop.clone(), slice(study, &format!("{study}.{series}"), &sop, "E4000004", "LY00000077", n, 256))
    });
    stow(&app, &east, &slices).await;
    let system = Caller::task(SystemTask::Operator("test setup".into()));
    for (name, role) in [("radiologist.v", "radiologist"), ("doctor.v", "doctor")] {
        let user = NewUser {
            username: name.into(),
            display_name: format!("{role} walk"),
            password: "initial-Pass-2026".into(),
            grants: vec![(role.into(), "campus-east".into())],
            patient: None,
            must_change_password: false,
        };
        app.users.add_user(&system, user).await.unwrap();
    }

    let d = crate::browser::Driver::start().await;
    d.log_in(&app.base, "radiologist.v", "initial-Pass-2026", &clock).await;
    let loaded = "const i = document.getElementById('viewer-image'); \
        return i && i.complete ? [i.naturalWidth, i.getAttribute('src')] : [0, ''];";
    let image = || async {
        let started = std::time::Instant::now();
        loop {
            let v = d.cmd(reqwest::Method::POST, "/execute/sync", json!({"script": loaded, "args": []})).await;
            if v[0].as_i64().unwrap_or(0) > 0 {
                return v[1].as_str().unwrap_or_default().to_string();
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(10), "the image never loaded: {v}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    for (lang, findings, impression, heading) in
        [("zh", "脑实质密度均匀，中线结构居中。", "头颅CT平扫未见明显异常。", "诊断意见"), ("en", "", "", "Impression")]
    {
        d.goto(&app.url("/patients/p-li")).await;
        d.click("#imaging-studies a").await;
        d.wait_url(&format!("/imaging/studies/{study}")).await;
        d.check(true).await;
        assert!(image().await.contains(&format!("/series/{study}.1/instances/{study}.1.1/frames/1/rendered")));
        assert_eq!(d.text("#frame-position").await, "1 / 3");
        // The next slice (arrow key on the image), the lung window, one step of zoom.
        d.type_into("#viewer-stage", "\u{E015}").await;
        d.click("#viewer-presets button[data-window='-600,1500']").await;
        d.click("#zoom-in").await;
        let src = image().await;
        assert!(src.contains(&format!("{study}.1.2/frames/1/rendered?window=-600%2C1500")), "{src}");
        assert_eq!(d.text("#frame-position").await, "2 / 3");
        assert_eq!(d.text("#zoom-level").await, "125%");
        d.screenshot("imaging", &format!("viewer-{lang}")).await;
        if lang == "zh" {
            // The report, signed beside the images; the page comes back with it.
            d.type_into("#findings", findings).await;
            d.type_into("#conclusion", impression).await;
            d.click("#report-submit").await;
            assert_eq!(d.text("#report-conclusion").await, impression);
            d.check(true).await;
            d.screenshot("imaging", "viewer-reported-zh").await;
            d.click("#lang-switch").await;
        } else {
            d.wait_text(heading, 5).await;
        }
    }
    d.log_out().await;
    // The ordering doctor: the report in the record, the images from the order.
    d.log_in(&app.base, "doctor.v", "initial-Pass-2026", &clock).await;
    d.goto(&app.url("/patients/p-li")).await;
    d.check(true).await;
    assert!(d.text("#lab-reports").await.contains("头颅CT") || d.text("#lab-reports").await.contains("CT Head"));
    d.goto(&app.url("/encounters/enc-li")).await;
    d.click("#orders a.open-study").await;
    d.wait_url(&format!("/imaging/studies/{study}")).await;
    d.find("#report-conclusion").await;
    let form = d
        .cmd(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": "return !!document.getElementById('report-form');", "args": []}),
        )
        .await;
    assert_eq!(form, false, "reported: no form, and a doctor writes no report");
    drop(d);

    // A study whose PatientID is no East MRN waits on the registrar's list; the
    // registrar finds the patient and files it under them.
    let stray = "1.2.826.0.1.3680043.2.1125.78";
    let sop = format!("{stray}.1.1");
    stow(&app, &east, &[(sop.clone(), slice(stray, &format!("{stray}.1"), &sop, "OUTSIDE-9", "", 1, 8))]).await;
    let (mut b, csrf) = crate::pages::logged_in(&app, &clock, "registrar.v", "registrar", "campus-east", None).await;
    let (status, _, html) = b.get("/imaging/reconcile").await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert!(html.contains(&format!("data-study=\"{stray}\"")) && html.contains("OUTSIDE-9"), "{html}");
    assert!(!html.contains(&format!("data-study=\"{study}\"")), "a matched study is not waiting");
    assert!(html.contains("href=\"/imaging/reconcile\""), "in the registrar's navigation");
    let (_, _, html) = b.get(&format!("/imaging/reconcile?study={stray}&q=E4000004")).await;
    assert!(html.contains("data-patient=\"p-li\"") && html.contains("李四"), "{html}");
    let (status, _, _) = b.post(&format!("/imaging/reconcile/{stray}"), &[("patient", "p-li")]).await;
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN, "no CSRF token");
    let (status, _, html) =
        b.post("/imaging/reconcile/1.2.3.4.5", &[("csrf", &csrf), ("patient", "p-li"), ("q", "E4000004")]).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert!(html.contains("id=\"reconcile-error\""), "an unknown study is refused by name: {html}");
    let (status, location, _) = b
        .post(&format!("/imaging/reconcile/{stray}"), &[("csrf", &csrf), ("patient", "p-li"), ("q", "E4000004")])
        .await;
    assert_eq!((status, location.as_str()), (reqwest::StatusCode::SEE_OTHER, "/imaging/reconcile?done=1"));
    let (_, _, html) = b.get("/imaging/reconcile?done=1").await;
    assert!(html.contains("id=\"reconcile-done\"") && html.contains("id=\"reconcile-empty\""), "{html}");
    let filed = app.imaging.studies_of(&system, "p-li").await.unwrap();
    assert_eq!(filed.len(), 2, "the stray study is the patient's now");
    // The study list is no one else's: a doctor of the West Campus sees nothing waiting.
    let (mut w, _) = crate::pages::logged_in(&app, &clock, "doctor.w", "doctor", "campus-west", None).await;
    let (status, _, _) = w.get("/imaging/reconcile").await;
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN, "doctors do not file studies");
    let (status, _, _) = w.get("/imaging/aes").await;
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN, "nor keep the AE table");

    // The AE table page: an IT engineer adds a modality (a bad port named by field and
    // rule first), the running node admits it at once, the change is audited, and it
    // is removed again.
    let (mut it, csrf) = crate::pages::logged_in(&app, &clock, "it.v", "it-engineer", "campus-east", None).await;
    let (status, _, html) = it.get("/imaging/aes").await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert!(html.contains("id=\"ae-empty\"") && html.contains("href=\"/imaging/aes\""), "{html}");
    let form = |port: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("ae_title", "MR-EAST-2".into()),
            ("campus", "campus-east".into()),
            ("host", "10.1.2.3".into()),
            ("port", port.into()),
            ("description", "东院区 MR 2".into()),
            ("charset", "GB18030".into()),
        ]
    };
    let bad = form("99999");
    let (status, _, html) =
        it.post("/imaging/aes", &bad.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert!(html.contains("端口（用于 C-MOVE）: 应为 1 至 65535 的 TCP 端口"), "{html}");
    assert!(app.imaging.aes().is_empty(), "nothing saved");
    let good = form("104");
    let (status, location, _) =
        it.post("/imaging/aes", &good.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()).await;
    assert_eq!((status, location.as_str()), (reqwest::StatusCode::SEE_OTHER, "/imaging/aes?done=MR-EAST-2"));
    let (_, _, html) = it.get("/imaging/aes?done=MR-EAST-2").await;
    assert!(html.contains("data-ae=\"MR-EAST-2\"") && html.contains("10.1.2.3"), "{html}");
    let ip = "10.1.2.3".parse().unwrap();
    assert!(app.imaging.admit("LIANYI", "MR-EAST-2", "LIANYI", ip).is_ok(), "admitted at once");
    let auditor = app.client_with("system/AuditEvent.rs", "*", None).await;
    let events = auditor.get(app.url("/fhir/AuditEvent?_count=200")).send().await.unwrap().text().await.unwrap();
    assert!(events.contains("dicom-ae-put") && events.contains("MR-EAST-2 at campus-east from 10.1.2.3"), "{events}");
    let (status, _, _) = it.post("/imaging/aes/MR-EAST-2/remove", &[("csrf", &csrf)]).await;
    assert_eq!(status, reqwest::StatusCode::SEE_OTHER);
    assert!(app.imaging.aes().is_empty());
}
