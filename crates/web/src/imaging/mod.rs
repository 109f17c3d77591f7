//! Imaging (影像): the DICOM node's edge.

pub mod node;
