//! The SOP classes and transfer syntaxes the node speaks.
//!
//! Storage: what the modalities of a general hospital send (CT, MR, CR/DX, MG, US,
//! XA/RF, NM/PET, endoscopy and photography, secondary capture, structured reports and
//! presentation states, segmentations, encapsulated PDF, radiotherapy). An instance of any other SOP
//! class is refused at association time ("abstract syntax not supported") and again at
//! C-STORE (status 0x0122), never stored half-understood. Transfer syntaxes: every
//! one a modality commonly proposes is accepted and the instance kept exactly as it
//! arrived (compressed ones stay compressed).

/// Verification (C-ECHO).
pub const VERIFICATION: &str = "1.2.840.10008.1.1";

/// The storage SOP classes accepted, with a short name for logs and pages.
pub const STORAGE: &[(&str, &str)] = &[
    ("1.2.840.10008.5.1.4.1.1.1", "CR"),
    ("1.2.840.10008.5.1.4.1.1.1.1", "DX"),
    ("1.2.840.10008.5.1.4.1.1.1.1.1", "DX (processing)"),
    ("1.2.840.10008.5.1.4.1.1.1.2", "MG"),
    ("1.2.840.10008.5.1.4.1.1.1.2.1", "MG (processing)"),
    ("1.2.840.10008.5.1.4.1.1.1.3", "IO"),
    ("1.2.840.10008.5.1.4.1.1.1.3.1", "IO (processing)"),
    ("1.2.840.10008.5.1.4.1.1.13.1.3", "Breast tomosynthesis"),
    ("1.2.840.10008.5.1.4.1.1.2", "CT"),
    ("1.2.840.10008.5.1.4.1.1.2.1", "Enhanced CT"),
    ("1.2.840.10008.5.1.4.1.1.3.1", "US multi-frame"),
    ("1.2.840.10008.5.1.4.1.1.4", "MR"),
    ("1.2.840.10008.5.1.4.1.1.4.1", "Enhanced MR"),
    ("1.2.840.10008.5.1.4.1.1.4.2", "MR spectroscopy"),
    ("1.2.840.10008.5.1.4.1.1.6.1", "US"),
    ("1.2.840.10008.5.1.4.1.1.6.2", "Enhanced US volume"),
    ("1.2.840.10008.5.1.4.1.1.7", "Secondary capture"),
    ("1.2.840.10008.5.1.4.1.1.7.1", "Multi-frame single bit SC"),
    ("1.2.840.10008.5.1.4.1.1.7.2", "Multi-frame grayscale byte SC"),
    ("1.2.840.10008.5.1.4.1.1.7.3", "Multi-frame grayscale word SC"),
    ("1.2.840.10008.5.1.4.1.1.7.4", "Multi-frame true color SC"),
    ("1.2.840.10008.5.1.4.1.1.11.1", "Grayscale presentation state"),
    ("1.2.840.10008.5.1.4.1.1.12.1", "XA"),
    ("1.2.840.10008.5.1.4.1.1.12.1.1", "Enhanced XA"),
    ("1.2.840.10008.5.1.4.1.1.12.2", "RF"),
    ("1.2.840.10008.5.1.4.1.1.20", "NM"),
    ("1.2.840.10008.5.1.4.1.1.128", "PET"),
    ("1.2.840.10008.5.1.4.1.1.130", "Enhanced PET"),
    ("1.2.840.10008.5.1.4.1.1.66.4", "Segmentation"),
    ("1.2.840.10008.5.1.4.1.1.77.1.1", "VL endoscopic"),
    ("1.2.840.10008.5.1.4.1.1.77.1.1.1", "Video endoscopic"),
    ("1.2.840.10008.5.1.4.1.1.77.1.2", "VL microscopic"),
    ("1.2.840.10008.5.1.4.1.1.77.1.4", "VL photographic"),
    ("1.2.840.10008.5.1.4.1.1.77.1.5.1", "Ophthalmic photography 8 bit"),
    ("1.2.840.10008.5.1.4.1.1.88.11", "Basic text SR"),
    ("1.2.840.10008.5.1.4.1.1.88.22", "Enhanced SR"),
    ("1.2.840.10008.5.1.4.1.1.88.33", "Comprehensive SR"),
    ("1.2.840.10008.5.1.4.1.1.88.34", "Comprehensive 3D SR"),
    ("1.2.840.10008.5.1.4.1.1.88.50", "Mammography CAD SR"),
    ("1.2.840.10008.5.1.4.1.1.88.59", "Key object selection"),
    ("1.2.840.10008.5.1.4.1.1.88.67", "X-ray radiation dose SR"),
    ("1.2.840.10008.5.1.4.1.1.104.1", "Encapsulated PDF"),
    ("1.2.840.10008.5.1.4.1.1.481.1", "RT image"),
    ("1.2.840.10008.5.1.4.1.1.481.2", "RT dose"),
    ("1.2.840.10008.5.1.4.1.1.481.3", "RT structure set"),
    ("1.2.840.10008.5.1.4.1.1.481.5", "RT plan"),
];

/// The short name of an accepted storage SOP class.
pub fn storage_name(sop_class: &str) -> Option<&'static str> {
    STORAGE.iter().find(|(uid, _)| *uid == sop_class).map(|(_, name)| *name)
}

/// The transfer syntaxes accepted, in the order the node prefers them when a
/// presentation context offers several: uncompressed first (any peer can read them
/// back), then the compressed ones a modality may insist on.
pub const TRANSFER_SYNTAXES: &[&str] = &[
    "1.2.840.10008.1.2.1",     // Explicit VR Little Endian
    "1.2.840.10008.1.2",       // Implicit VR Little Endian
    "1.2.840.10008.1.2.1.99",  // Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.2",     // Explicit VR Big Endian (retired, still sent by old modalities)
    "1.2.840.10008.1.2.4.50",  // JPEG Baseline
    "1.2.840.10008.1.2.4.51",  // JPEG Extended
    "1.2.840.10008.1.2.4.57",  // JPEG Lossless
    "1.2.840.10008.1.2.4.70",  // JPEG Lossless, first-order prediction
    "1.2.840.10008.1.2.4.80",  // JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  // JPEG-LS Near-lossless
    "1.2.840.10008.1.2.4.90",  // JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  // JPEG 2000
    "1.2.840.10008.1.2.5",     // RLE Lossless
    "1.2.840.10008.1.2.4.100", // MPEG2 Main Profile
    "1.2.840.10008.1.2.4.102", // MPEG-4 AVC/H.264
];

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_encoding::TransferSyntaxIndex;

    #[test]
    fn every_transfer_syntax_is_readable_by_the_registry() {
        for ts in TRANSFER_SYNTAXES {
            let found = dicom_transfer_syntax_registry::TransferSyntaxRegistry.get(ts);
            assert!(found.is_some_and(|t| !t.is_unsupported()), "{ts} cannot be read");
        }
    }

    #[test]
    fn storage_classes_are_unique() {
        let mut uids: Vec<&str> = STORAGE.iter().map(|(u, _)| *u).collect();
        uids.sort_unstable();
        uids.dedup();
        assert_eq!(uids.len(), STORAGE.len());
        assert_eq!(storage_name("1.2.840.10008.5.1.4.1.1.6.1"), Some("US"));
        assert_eq!(storage_name("1.2.3"), None);
    }
}
