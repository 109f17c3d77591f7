//! Keeping a received instance: its file made durable under the imaging folder, its
//! patient matched by the sending campus's MRN, its index row committed, then (and
//! only then) the node's success. A study whose PatientID is no MRN of the sending
//! campus is kept and indexed without a patient, on the registrar's reconciliation
//! list, instead of being filed under a wrong record.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use lianyi_dicom::instance::{self, Instance};
use lianyi_fhir::ResourceType;
use lianyi_fhir::search::parse_search;
use lianyi_security::{Caller, CampusId, SystemTask};
use lianyi_services::identifiers::mrn_system;
use lianyi_store::imaging::{Ae, NewInstance};
use serde_json::{Map, Value};

use crate::{Imaging, ImagingError};

/// One association's sender and what it learnt on the way (patients matched).
pub struct Sender {
    pub ae: Ae,
    patients: Mutex<HashMap<String, Option<String>>>,
    /// Who writes, when a person or an API client sends (STOW-RS), not an AE.
    acting: Option<Caller>,
}

impl Sender {
    pub fn new(ae: Ae) -> Sender {
        Sender { ae, patients: Mutex::default(), acting: None }
    }

    /// `caller` storing over DICOMweb at its home campus (`None` when it has none).
    pub fn web(caller: &Caller) -> Option<Sender> {
        let campus = caller.access().home_campus()?.as_str().to_string();
        // A caller acting for a modality (an in-process sender) stores under its title.
        let ae_title = caller.actor().strip_prefix("dicom:").filter(|t| crate::aes::valid_ae_title(t));
        let ae = Ae {
            ae_title: ae_title.unwrap_or("DICOMWEB").into(),
            campus,
            host: None,
            port: None,
            description: String::new(),
            charset: None,
            created_at: 0,
        };
        Some(Sender { ae, patients: Mutex::default(), acting: Some(caller.clone()) })
    }

    fn caller(&self) -> Caller {
        Caller::task(SystemTask::DicomInbound(self.ae.ae_title.clone()))
    }

    pub(crate) fn writer(&self) -> Result<Caller, ImagingError> {
        if let Some(c) = &self.acting {
            return Ok(c.clone());
        }
        let campus = CampusId::parse(&self.ae.campus)
            .map_err(|_| ImagingError::Forbidden(format!("AE {} names no valid campus", self.ae.ae_title)))?;
        Ok(Caller::task_at(SystemTask::DicomInbound(self.ae.ae_title.clone()), campus))
    }
}

/// Why an instance was not kept, for the node's status.
#[derive(Debug)]
pub enum NotKept {
    /// The disk or the database cannot take it now (0xA700: the sender retries).
    OutOfResources(String),
    /// Anything else (0xC000).
    Failed(String),
}

/// The tags of the study level (patient and study attributes) and the series level,
/// for the study's and series' DICOM JSON kept in the index (QIDO answers from them).
const STUDY_TAGS: &[&str] = &[
    "00080005", "00080020", "00080030", "00080050", "00080056", "00080061", "00080090", "00081030", "00100010",
    "00100020", "00100021", "00100030", "00100040", "00101010", "0020000D", "00200010",
];
const SERIES_TAGS: &[&str] =
    &["00080005", "00080021", "00080031", "00080060", "0008103E", "00180015", "0020000E", "00200011", "00400244"];

fn subset(json: &Value, tags: &[&str]) -> String {
    let mut m = Map::new();
    if let Some(all) = json.as_object() {
        for t in tags {
            if let Some(v) = all.get(*t) {
                m.insert((*t).to_string(), v.clone());
            }
        }
    }
    Value::Object(m).to_string()
}

impl Imaging {
    /// The file of an instance, relative to the imaging folder.
    pub fn relative_path(i: &Instance) -> PathBuf {
        Path::new(&i.study_uid).join(&i.series_uid).join(format!("{}.dcm", i.sop_instance))
    }

    /// Keeps `i` (its data set bytes as received) from `sender`.
    pub async fn keep(&self, sender: &Sender, i: &Instance, data_set: Vec<u8>) -> Result<(), NotKept> {
        let relative = Self::relative_path(i);
        let path = self.folder.join(&relative);
        let header = instance::file_header(&i.sop_class, &i.sop_instance, &i.transfer_syntax, &sender.ae.ae_title)
            .map_err(|e| NotKept::Failed(e.to_string()))?;
        let bytes = (header.len() + data_set.len()) as i64;
        tokio::task::spawn_blocking(move || write_durably(&path, &header, &data_set))
            .await
            .map_err(|e| NotKept::Failed(format!("file writer: {e}")))?
            .map_err(|e| match e.raw_os_error() {
                Some(28) => NotKept::OutOfResources("the imaging folder's disk is full".into()),
                _ => NotKept::Failed(format!("the instance could not be written: {}", e.kind())),
            })?;
        let patient = self.match_patient(sender, &i.patient_id).await.map_err(not_kept)?;
        let row = NewInstance {
            study_uid: i.study_uid.clone(),
            series_uid: i.series_uid.clone(),
            sop_uid: i.sop_instance.clone(),
            sop_class: i.sop_class.clone(),
            transfer_syntax: i.transfer_syntax.clone(),
            campus: sender.ae.campus.clone(),
            patient,
            patient_key: i.patient_id.clone(),
            accession: i.accession_number.clone(),
            study_date: i.study_date.clone(),
            study_time: i.study_time.clone(),
            study_description: i.study_description.clone(),
            modality: i.modality.clone(),
            series_number: i.series_number,
            series_description: i.series_description.clone(),
            body_part: i.body_part.clone(),
            instance_number: i.instance_number,
            frames: i.number_of_frames,
            file: relative.to_string_lossy().into_owned(),
            bytes,
            source_ae: sender.ae.ae_title.clone(),
            received_at: self.fhir.now_ms(),
            study_json: subset(&i.json, STUDY_TAGS),
            series_json: subset(&i.json, SERIES_TAGS),
            instance_json: i.json.to_string(),
        };
        let writer = sender.writer().map_err(not_kept)?;
        let permit = self
            .fhir
            .permit::<lianyi_security::permit::Create>(&writer, image_type())
            .await
            .map_err(|e| not_kept(e.into()))?;
        self.fhir.images(&permit).map_err(|e| not_kept(e.into()))?.index(&row).await.map_err(|e| not_kept(e.into()))?;
        metrics::counter!("lianyi_dicom_instances_stored_total").increment(1);
        metrics::counter!("lianyi_dicom_bytes_stored_total").increment(bytes as u64);
        Ok(())
    }

    /// The Patient whose MRN at the sender's campus is `patient_id` (remembered for the
    /// association).
    pub(crate) async fn match_patient(
        &self,
        sender: &Sender,
        patient_id: &str,
    ) -> Result<Option<String>, ImagingError> {
        if patient_id.is_empty() {
            return Ok(None);
        }
        if let Some(known) = sender.patients.lock().ok().and_then(|p| p.get(patient_id).cloned()) {
            return Ok(known);
        }
        let req = parse_search(
            patient_type(),
            &[
                ("identifier".into(), format!("{}|{patient_id}", mrn_system(&sender.ae.campus))),
                ("_count".into(), "2".into()),
            ],
        )
        .map_err(|i| crate::invalid("PatientID", "search", i.diagnostics))?;
        let caller = sender.caller();
        let page = self.fhir.search(&self.fhir.permit(&caller, patient_type()).await?, &req).await?;
        // Exactly one record, else the registrar decides.
        let found = match page.resources.as_slice() {
            [one] => Some(one.id.clone()),
            _ => None,
        };
        if let Ok(mut p) = sender.patients.lock() {
            p.insert(patient_id.to_string(), found.clone());
        }
        Ok(found)
    }
}

pub(crate) fn image_type() -> ResourceType {
    ResourceType::parse("ImagingStudy").unwrap_or_else(|| unreachable!("ImagingStudy is an R4 type"))
}

pub(crate) fn request_type() -> ResourceType {
    ResourceType::parse("ServiceRequest").unwrap_or_else(|| unreachable!("ServiceRequest is an R4 type"))
}

pub(crate) fn patient_type() -> ResourceType {
    ResourceType::parse("Patient").unwrap_or_else(|| unreachable!("Patient is an R4 type"))
}

fn not_kept(e: ImagingError) -> NotKept {
    if lianyi_store::faults::storage_full() {
        NotKept::OutOfResources("the database's disk is full".into())
    } else {
        NotKept::Failed(e.to_string())
    }
}

static TEMPORARY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Writes `header` + `body` to `path` through a temporary file, synced, renamed into
/// place, the folder synced: after this returns the file survives a crash.
fn write_durably(path: &Path, header: &[u8], body: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let n = TEMPORARY.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(header)?;
        f.write_all(body)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// What became of one part of a STOW-RS request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stowed {
    pub sop_class: String,
    pub sop_instance: String,
    /// The DICOM failure reason and why, when refused.
    pub refused: Option<(u16, String)>,
}

impl Imaging {
    /// STOW-RS: keeps each Part 10 file `caller` sends, at the caller's home campus
    /// (its PatientIDs are that campus's MRNs), each refused part saying why and leaving
    /// nothing behind.
    pub async fn stow(&self, caller: &Caller, parts: Vec<Vec<u8>>) -> Result<Vec<Stowed>, ImagingError> {
        self.fhir.permit::<lianyi_security::permit::Create>(caller, image_type()).await?;
        let sender = Sender::web(caller)
            .ok_or_else(|| ImagingError::Forbidden("storing images needs a campus to file them under".into()))?;
        let mut out = Vec::with_capacity(parts.len());
        for part in parts {
            let (sop_class, sop_instance, ts, start) = match instance::split_file(&part) {
                Ok(x) => x,
                Err(r) => {
                    out.push(Stowed {
                        sop_class: String::new(),
                        sop_instance: String::new(),
                        refused: Some((r.status, r.reason)),
                    });
                    continue;
                }
            };
            let refuse = |status: u16, why: String| Stowed {
                sop_class: sop_class.clone(),
                sop_instance: sop_instance.clone(),
                refused: Some((status, why)),
            };
            if lianyi_dicom::sop::storage_name(&sop_class).is_none() {
                out.push(refuse(0x0122, format!("SOP class {sop_class} is not stored here")));
                continue;
            }
            let data = part[start..].to_vec();
            let read = {
                let ts = ts.clone();
                tokio::task::spawn_blocking(move || instance::read(&data, &ts, None).map(|i| (i, data))).await
            };
            let (i, data) = match read {
                Ok(Ok(x)) => x,
                Ok(Err(r)) => {
                    out.push(refuse(r.status, r.reason));
                    continue;
                }
                Err(_) => {
                    out.push(refuse(0xC000, "the data set could not be read".into()));
                    continue;
                }
            };
            if i.sop_class != sop_class || i.sop_instance != sop_instance {
                out.push(refuse(0xA900, "the data set's SOP class or instance UID differs from its file meta".into()));
                continue;
            }
            match self.keep(&sender, &i, data).await {
                Ok(()) => out.push(Stowed { sop_class, sop_instance, refused: None }),
                Err(NotKept::OutOfResources(why)) => out.push(refuse(0xA700, why)),
                Err(NotKept::Failed(why)) => out.push(refuse(0x0110, why)),
            }
        }
        self.settle_soon();
        Ok(out)
    }
}
