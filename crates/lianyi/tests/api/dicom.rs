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

/// An instance's data set (Explicit VR Little Endian), GB18030 names.
fn data_set(study: &str, series: &str, sop: &str, patient_id: &str, accession: &str, number: i64) -> Vec<u8> {
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
        DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(8_u16)),
        DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(8_u16)),
        DataElement::new(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16_u16)),
        DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::from(vec![1u8; 128])),
    ]);
    let cs = dicom_encoding::text::SpecificCharacterSet::from_code("GB18030").unwrap();
    let mut out = Vec::new();
    o.write_dataset_with_ts_cs(&mut out, &EXPLICIT_VR_LITTLE_ENDIAN.erased(), cs).unwrap();
    out
}

fn write_file(dir: &Path, name: &str, sop: &str, body: &[u8]) {
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
