//! DICOM for Lianyi: the network node's protocol (associations through dicom-ul, our
//! own DIMSE service providers on top) and the reading of instances (dicom-object).
//! Knows nothing of patients, campuses or storage: the imaging service behind
//! [`node::Provider`] does.
#![forbid(unsafe_code)]

pub mod command;
pub mod instance;
pub mod lengths;
pub mod node;
pub mod pixels;
pub mod query;
pub mod sop;

/// A protocol error: the association cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum DicomError {
    #[error("malformed DICOM: {0}")]
    Malformed(String),
    #[error("association: {0}")]
    Association(String),
}
