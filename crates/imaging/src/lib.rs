//! Imaging exchange (影像): the DICOM node's application entities per campus, the
//! instances it receives, kept on disk under the data folder and indexed, and each
//! study's ImagingStudy resource in the patient's record, so a study made at one
//! campus is read at another under the same grants, break-the-glass and audit as
//! every resource.
//!
//! Files are kept by UID (`<study>/<series>/<instance>.dcm` under the imaging folder),
//! not by content hash: a UID names one instance for ever (a re-sent instance replaces
//! its file, as DICOM means it to), a retrieve by UID needs no lookup table, and a
//! study is one folder to copy, back up or remove. UIDs are checked against PS3.5
//! before they become paths.
#![forbid(unsafe_code)]

pub mod aes;
pub mod ingest;
pub mod matching;
pub mod query;
pub mod study;
pub mod view;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use lianyi_services::{FhirService, ServiceError};
use lianyi_store::StoreError;
use lianyi_store::imaging::Ae;

/// A rule broken by a request, named by its field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub rule: &'static str,
    pub detail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ImagingError {
    #[error("{}", .0.iter().map(|e| format!("{}: {}", e.field, e.detail)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("imaging folder: {0}")]
    Io(#[from] std::io::Error),
}

pub(crate) fn invalid(field: &'static str, rule: &'static str, detail: impl Into<String>) -> ImagingError {
    ImagingError::Invalid(vec![FieldError { field, rule, detail: detail.into() }])
}

/// The imaging service: one per process, shared by the node, DICOMweb and the pages.
#[derive(Clone)]
pub struct Imaging {
    pub(crate) fhir: FhirService,
    /// The patient's record across campuses: whom a study of another campus opens to.
    pub(crate) record: lianyi_clinical::record::Record,
    pub(crate) folder: PathBuf,
    /// The node's AE table, as last loaded (the node admits callers from memory).
    pub(crate) aes: Arc<RwLock<Vec<Ae>>>,
    pub(crate) settling: Arc<tokio::sync::Mutex<()>>,
    pub(crate) settle_now: Arc<tokio::sync::Notify>,
    pub(crate) time_zone: String,
}

impl Imaging {
    /// The service keeping instances under `folder` (created when missing). The AE
    /// table is loaded by [`Imaging::reload_aes`] (the node does so before it serves).
    pub fn new(fhir: FhirService, folder: PathBuf) -> Result<Imaging, ImagingError> {
        std::fs::create_dir_all(&folder)?;
        Ok(Imaging {
            record: lianyi_clinical::record::Record::new(fhir.clone()),
            fhir,
            folder,
            aes: Arc::default(),
            settling: Arc::default(),
            settle_now: Arc::default(),
            time_zone: "+08:00".into(),
        })
    }

    /// Where instances are kept.
    pub fn folder(&self) -> &std::path::Path {
        &self.folder
    }
}
