//! The demo's imaging: a head CT ordered for an East Campus patient, registered at the
//! South Campus too (an MRN there), made by the East Campus's CT (a synthetic phantom: skull,
//! brain, ventricles) and stored through the imaging service as the modality would,
//! so the South Campus's radiologist reads it across campuses and reports it.

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN;
use lianyi_security::{Caller, CampusId, SystemTask};
use serde_json::{Value, json};

use crate::CliError;

const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
/// The study's UID root (a UUID-derived OID arc under 2.25 would do as well).
const ROOT: &str = "1.2.826.0.1.3680043.2.1125.2026";
pub const SLICES: u16 = 24;
const SIZE: u16 = 256;

/// What the demo made: the study's UID and the patient's id.
pub struct DemoStudy {
    pub study_uid: String,
    pub patient: String,
}

fn usage(e: impl std::fmt::Display) -> CliError {
    CliError::Usage(format!("demo imaging: {e}"))
}

/// Hounsfield units of the phantom at (x, y) in −0.5..0.5 on slice `z` in 0..1.
fn head(x: f64, y: f64, z: f64) -> i32 {
    // The head narrows towards the top; the ventricles show in the middle slices.
    let r = 0.42 * (1.0 - 0.5 * (z - 0.3).max(0.0));
    let d = (x * x / 0.8 + y * y).sqrt();
    if d > r {
        return -1000;
    }
    if d > r - 0.035 {
        return 1200;
    }
    let ventricle = |cx: f64| ((x - cx).powi(2) / 0.004 + (y + 0.02).powi(2) / 0.03) < 1.0;
    if (0.3..0.7).contains(&z) && (ventricle(-0.05) || ventricle(0.05)) {
        return 5;
    }
    // Grey and white matter, and a small bleed on the left in a few slices.
    if (0.45..0.6).contains(&z) && ((x + 0.18).powi(2) + (y - 0.1).powi(2)) < 0.0016 {
        return 70;
    }
    if d < r * 0.7 { 30 } else { 40 }
}

fn slice(study: &str, series: &str, n: u16, patient: (&str, &str), accession: &str) -> Result<Vec<u8>, CliError> {
    let z = f64::from(n) / f64::from(SLICES);
    let mut pixels = Vec::with_capacity(usize::from(SIZE) * usize::from(SIZE) * 2);
    for y in 0..SIZE {
        for x in 0..SIZE {
            let (fx, fy) = (f64::from(x) / f64::from(SIZE) - 0.5, f64::from(y) / f64::from(SIZE) - 0.5);
            pixels.extend_from_slice(&((head(fx, fy, z) + 1024).clamp(0, 4095) as u16).to_le_bytes());
        }
    }
    let sop = format!("{series}.{n}");
    let text = |tag, vr, v: &str| DataElement::new(tag, vr, PrimitiveValue::from(v));
    let short = |tag, v: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(v));
    let o = InMemDicomObject::from_element_iter([
        text(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192"),
        text(tags::SOP_CLASS_UID, VR::UI, CT),
        text(tags::SOP_INSTANCE_UID, VR::UI, &sop),
        text(tags::STUDY_DATE, VR::DA, "20261206"),
        text(tags::STUDY_TIME, VR::TM, "101500"),
        text(tags::ACCESSION_NUMBER, VR::SH, accession),
        text(tags::MODALITY, VR::CS, "CT"),
        text(tags::STATION_NAME, VR::SH, "DEMO-CT"),
        text(tags::STUDY_DESCRIPTION, VR::LO, "头颅CT平扫"),
        text(tags::SERIES_DESCRIPTION, VR::LO, "轴位 5mm"),
        text(tags::PATIENT_NAME, VR::PN, patient.1),
        text(tags::PATIENT_ID, VR::LO, patient.0),
        text(tags::BODY_PART_EXAMINED, VR::CS, "HEAD"),
        text(tags::SLICE_THICKNESS, VR::DS, "5"),
        text(tags::STUDY_INSTANCE_UID, VR::UI, study),
        text(tags::SERIES_INSTANCE_UID, VR::UI, series),
        text(tags::SERIES_NUMBER, VR::IS, "2"),
        text(tags::INSTANCE_NUMBER, VR::IS, &n.to_string()),
        text(tags::SLICE_LOCATION, VR::DS, &format!("{}", f64::from(n) * 5.0)),
        short(tags::SAMPLES_PER_PIXEL, 1),
        text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        short(tags::ROWS, SIZE),
        short(tags::COLUMNS, SIZE),
        text(tags::PIXEL_SPACING, VR::DS, "0.9\\0.9"),
        short(tags::BITS_ALLOCATED, 16),
        short(tags::BITS_STORED, 12),
        short(tags::HIGH_BIT, 11),
        short(tags::PIXEL_REPRESENTATION, 0),
        text(tags::WINDOW_CENTER, VR::DS, "40"),
        text(tags::WINDOW_WIDTH, VR::DS, "80"),
        text(tags::RESCALE_INTERCEPT, VR::DS, "-1024"),
        text(tags::RESCALE_SLOPE, VR::DS, "1"),
        DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::from(pixels)),
    ]);
    let mut file = lianyi_dicom::instance::file_header(CT, &sop, "1.2.840.10008.1.2.1", "DEMO-CT").map_err(usage)?;
    o.write_dataset_with_ts(&mut file, &EXPLICIT_VR_LITTLE_ENDIAN.erased()).map_err(usage)?;
    Ok(file)
}

/// The first patient of `patients` with an MRN at `home`: (id, that MRN, name).
fn patient_of(patients: &[Value], home: &str) -> Option<(String, String, String)> {
    let system = format!("urn:lianyi:sid:mrn:{home}");
    patients.iter().find_map(|p| {
        let mrn = p["identifier"].as_array()?.iter().find(|i| i["system"] == system.as_str())?["value"].as_str()?;
        let name = p["name"][0]["text"].as_str().unwrap_or_default();
        Some((p["id"].as_str()?.to_string(), mrn.to_string(), name.to_string()))
    })
}

/// Orders a head CT for a patient of `home` also registered at `reader` and stores
/// its images as `modality` at `home` would send them.
pub async fn load(
    fhir: &lianyi_services::FhirService,
    imaging: &lianyi_imaging::Imaging,
    patients: &[Value],
    (home, reader): (&str, &str),
    modality: &str,
) -> Result<Option<DemoStudy>, CliError> {
    let Some((patient, mrn, name)) = patient_of(patients, home) else { return Ok(None) };
    let campus = CampusId::parse(home).map_err(usage)?;
    let orderer = Caller::task_at(SystemTask::Demo, campus.clone());
    // Registered at the reading campus too (an MRN of its own there): the record
    // across campuses opens there.
    let pt = lianyi_fhir::ResourceType::parse("Patient").ok_or_else(|| usage("Patient"))?;
    let stored = fhir.reader(&orderer, pt).await.map_err(usage)?.read(&patient).await.map_err(usage)?;
    let mut p: Value = serde_json::from_str(&stored.body).map_err(usage)?;
    if let Some(ids) = p["identifier"].as_array_mut() {
        ids.push(json!({"use": "secondary", "system": format!("urn:lianyi:sid:mrn:{reader}"), "value": "S9000001",
                        "assigner": {"reference": format!("Organization/{reader}")}}));
    }
    if let Some(o) = p.as_object_mut() {
        o.remove("meta");
    }
    fhir.update(&fhir.permit(&orderer, pt).await.map_err(usage)?, &patient, p, None).await.map_err(usage)?;
    let accession = "LY90000001";
    let order = json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order", "priority": "routine",
        "identifier": [{"system": lianyi_services::identifiers::PLACER_SYSTEM, "value": accession}],
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "363679005", "display": "Imaging"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "24725-4", "display": "CT Head"},
                            {"system": "urn:lianyi:order", "code": "IMG-CTH"}], "text": "头颅CT"},
        "subject": {"reference": format!("Patient/{patient}")},
        "authoredOn": "2026-12-06T09:40:00+08:00"});
    let t = lianyi_fhir::ResourceType::parse("ServiceRequest").ok_or_else(|| usage("ServiceRequest"))?;
    fhir.create(&fhir.permit(&orderer, t).await.map_err(usage)?, order).await.map_err(usage)?;
    let study = format!("{ROOT}.1");
    let series = format!("{study}.2");
    // Alphabetic (pinyin) and ideographic groups, as Chinese modalities write names.
    let (family, given) = lianyi_clinical::names::pinyin_name(&name);
    let dicom_name = format!("{family}^{given}={name}");
    let mut parts = Vec::with_capacity(usize::from(SLICES));
    for n in 1..=SLICES {
        parts.push(slice(&study, &series, n, (&mrn, &dicom_name), accession)?);
    }
    // And one the radiographer sent with the patient's ID typed wrong (no MRN of the
    // campus): it waits on the registrars' reconciliation list.
    let stray = format!("{ROOT}.2");
    for n in 1..=4 {
        parts.push(slice(&stray, &format!("{stray}.2"), n, ("E100O037", &dicom_name), "")?);
    }
    let sender = Caller::task_at(SystemTask::DicomInbound(modality.into()), campus);
    let stowed = imaging.stow(&sender, parts).await.map_err(usage)?;
    if let Some(refused) = stowed.iter().find_map(|s| s.refused.as_ref()) {
        return Err(usage(format!("an instance was refused: {}", refused.1)));
    }
    imaging.settle().await.map_err(usage)?;
    Ok(Some(DemoStudy { study_uid: study, patient }))
}
