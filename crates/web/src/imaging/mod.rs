//! Imaging (影像): the DICOM node's edge and DICOMweb.

mod dicomweb;
pub mod node;

pub(crate) use dicomweb::router;
