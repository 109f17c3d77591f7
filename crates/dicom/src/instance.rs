//! Reading a received instance: the data set exactly as it came over the wire, in its
//! negotiated transfer syntax, checked whole (a truncated or malformed data set is
//! refused, never indexed), with the attributes the index keeps and its DICOM JSON
//! (PS3.18 §F) without the bulk data, so metadata requests never reopen the file.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_encoding::text::SpecificCharacterSet;
use dicom_object::InMemDicomObject;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use serde_json::Value;

use crate::DicomError;

/// Our implementation class UID (PS3.7 §D.3.3.2), under the UUID-derived root 2.25.
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.153346125384425467396447136375286046803";
/// Our implementation version name (16 characters at most).
pub const IMPLEMENTATION_VERSION: &str = "LIANYI_01";

/// Binary values longer than this are left out of the kept DICOM JSON (pixel data,
/// overlays, waveforms); DICOMweb serves them from the file as bulk data.
const INLINE_BINARY_MAX: usize = 1024;

/// The attributes the index keeps, read from one instance.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Instance {
    pub sop_class: String,
    pub sop_instance: String,
    pub study_uid: String,
    pub series_uid: String,
    pub transfer_syntax: String,
    pub patient_id: String,
    /// The name as the modality wrote it (`^`-separated components; `=`-separated
    /// alphabetic, ideographic and phonetic groups), decoded from its character set.
    pub patient_name: String,
    pub accession_number: String,
    pub study_date: String,
    pub study_time: String,
    pub study_description: String,
    pub modality: String,
    pub series_number: Option<i64>,
    pub series_description: String,
    pub body_part: String,
    pub instance_number: Option<i64>,
    pub number_of_frames: i64,
    /// Specific Character Set (0008,0005) as sent.
    pub character_set: String,
    /// The DICOM JSON of the data set, bulk data left out.
    pub json: Value,
}

fn text(o: &InMemDicomObject, tag: Tag) -> String {
    o.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' ').to_string())
        .unwrap_or_default()
}

fn int(o: &InMemDicomObject, tag: Tag) -> Option<i64> {
    o.get(tag).and_then(|e| e.to_int::<i64>().ok())
}

/// A UID as PS3.5 §9.1 has it: digits and dots, 64 characters at most, no empty or
/// zero-led component. (Also what keeps a UID safe as a file name.)
pub fn valid_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 64
        && uid
            .split('.')
            .all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()) && (c == "0" || !c.starts_with('0')))
}

/// Why a data set is refused, with the DIMSE status that says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// 0xA900 (does not match its SOP class) or 0xC000 (cannot understand).
    pub status: u16,
    pub reason: String,
}

impl Refusal {
    fn mismatch(reason: impl Into<String>) -> Self {
        Refusal { status: 0xA900, reason: reason.into() }
    }
}

/// Reads a data set in transfer syntax `ts` as the network hands it over: every
/// declared length checked against the bytes first, a deflated one inflated within a cap
/// and read as the Explicit VR Little Endian it holds (see [`crate::lengths`]). The one
/// way data sets, identifiers and command sets from a peer are read.
pub fn decode(bytes: &[u8], ts: &str, cs: SpecificCharacterSet) -> Result<InMemDicomObject, String> {
    decode_until(bytes, ts, cs, false).map(|(o, _)| o)
}

/// [`decode`]; with `header_only`, the data set's own Pixel Data element is left unread
/// (the index needs its length, not its hundreds of kilobytes copied).
fn decode_until(
    bytes: &[u8],
    ts: &str,
    cs: SpecificCharacterSet,
    header_only: bool,
) -> Result<(InMemDicomObject, Option<crate::lengths::PixelData>), String> {
    let syntax = TransferSyntaxRegistry
        .get(ts)
        .filter(|t| !t.is_unsupported())
        .ok_or_else(|| format!("transfer syntax {ts} cannot be read"))?;
    let inflated;
    let (bytes, syntax, enc) = match crate::lengths::Encoding::of(ts) {
        Some(enc) => (bytes, syntax, enc),
        None => {
            inflated = crate::lengths::inflate(bytes).map_err(|why| format!("deflated data set: {why}"))?;
            let explicit = TransferSyntaxRegistry.get("1.2.840.10008.1.2.1").unwrap_or(syntax);
            (&inflated[..], explicit, crate::lengths::Encoding::ExplicitLittle)
        }
    };
    let pixels =
        crate::lengths::walk(bytes, enc, None).map_err(|why| format!("truncated or malformed data set: {why}"))?;
    let read = match pixels {
        Some(p) if header_only => &bytes[..p.offset],
        _ => bytes,
    };
    let o = InMemDicomObject::read_dataset_with_ts_cs(read, syntax, cs)
        .map_err(|e| format!("data set cannot be read (truncated or malformed): {e}"))?;
    Ok((o, pixels))
}

/// Reads a received data set (`bytes` in transfer syntax `ts`). `default_charset` is
/// the character set assumed when the data set names none (a per-sender setting: some
/// modalities write GB18030 without saying so).
pub fn read(bytes: &[u8], ts: &str, default_charset: Option<&str>) -> Result<Instance, Refusal> {
    let cs = default_charset.and_then(SpecificCharacterSet::from_code).unwrap_or_default();
    let (mut o, pixels) = decode_until(bytes, ts, cs, true).map_err(|reason| Refusal { status: 0xC000, reason })?;
    let mut i = Instance {
        sop_class: text(&o, tags::SOP_CLASS_UID),
        sop_instance: text(&o, tags::SOP_INSTANCE_UID),
        study_uid: text(&o, tags::STUDY_INSTANCE_UID),
        series_uid: text(&o, tags::SERIES_INSTANCE_UID),
        transfer_syntax: ts.to_string(),
        patient_id: text(&o, tags::PATIENT_ID),
        patient_name: text(&o, tags::PATIENT_NAME),
        accession_number: text(&o, tags::ACCESSION_NUMBER),
        study_date: text(&o, tags::STUDY_DATE),
        study_time: text(&o, tags::STUDY_TIME),
        study_description: text(&o, tags::STUDY_DESCRIPTION),
        modality: text(&o, tags::MODALITY),
        series_number: int(&o, tags::SERIES_NUMBER),
        series_description: text(&o, tags::SERIES_DESCRIPTION),
        body_part: text(&o, tags::BODY_PART_EXAMINED),
        instance_number: int(&o, tags::INSTANCE_NUMBER),
        number_of_frames: int(&o, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1),
        character_set: o
            .get(tags::SPECIFIC_CHARACTER_SET)
            .and_then(|e| e.to_multi_str().ok())
            .map(|v| v.iter().map(|s| s.trim()).collect::<Vec<_>>().join("\\"))
            .unwrap_or_default(),
        json: Value::Null,
    };
    for (name, tag, uid) in [
        ("SOP Class UID (0008,0016)", tags::SOP_CLASS_UID, &i.sop_class),
        ("SOP Instance UID (0008,0018)", tags::SOP_INSTANCE_UID, &i.sop_instance),
        ("Study Instance UID (0020,000D)", tags::STUDY_INSTANCE_UID, &i.study_uid),
        ("Series Instance UID (0020,000E)", tags::SERIES_INSTANCE_UID, &i.series_uid),
    ] {
        let _ = tag;
        if uid.is_empty() {
            return Err(Refusal::mismatch(format!("{name} is missing")));
        }
        if !valid_uid(uid) {
            return Err(Refusal::mismatch(format!("{name} is not a valid UID")));
        }
    }
    check_pixel_length(&o, pixels)?;
    // Keep the header, not the bulk data.
    let bulky: Vec<Tag> = o
        .iter()
        .filter(|e| {
            e.value().primitive().is_some_and(|p| {
                matches!(
                    e.vr(),
                    dicom_core::VR::OB
                        | dicom_core::VR::OW
                        | dicom_core::VR::OF
                        | dicom_core::VR::OD
                        | dicom_core::VR::UN
                ) && p.calculate_byte_len() > INLINE_BINARY_MAX
            }) || e.header().tag == tags::PIXEL_DATA
        })
        .map(|e| e.header().tag)
        .collect();
    for tag in bulky {
        o.remove_element(tag);
    }
    i.json = dicom_json::to_value(&o)
        .map_err(|e| Refusal { status: 0xC000, reason: format!("data set cannot be written as DICOM JSON: {e}") })?;
    Ok(i)
}

/// Native (uncompressed) pixel data must hold every frame the header describes: a
/// shorter value is an instance cut short on its way, refused rather than kept broken.
fn check_pixel_length(o: &InMemDicomObject, pixels: Option<crate::lengths::PixelData>) -> Result<(), Refusal> {
    let Some(pixels) = pixels else { return Ok(()) };
    let Some(have) = pixels.length.map(u64::from) else {
        return Ok(()); // encapsulated: the fragments carry their own lengths
    };
    let dim = |tag| int(o, tag).filter(|v| *v > 0).map(|v| v as u64);
    let (Some(rows), Some(cols), Some(bits)) = (dim(tags::ROWS), dim(tags::COLUMNS), dim(tags::BITS_ALLOCATED)) else {
        return Ok(());
    };
    let samples = dim(tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    let frames = dim(tags::NUMBER_OF_FRAMES).unwrap_or(1);
    let need = (rows * cols * samples * frames * bits).div_ceil(8);
    if have < need {
        // Error Comment holds 64 characters: the point first.
        return Err(Refusal::mismatch(format!(
            "truncated Pixel Data (7FE0,0010): {have} of {need} bytes for its frames"
        )));
    }
    Ok(())
}

/// The Part 10 file header (preamble, `DICM`, file meta group) for an instance whose
/// data set bytes follow it unchanged.
pub fn file_header(sop_class: &str, sop_instance: &str, ts: &str, source_ae: &str) -> Result<Vec<u8>, DicomError> {
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(sop_class)
        .media_storage_sop_instance_uid(sop_instance)
        .transfer_syntax(ts)
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(IMPLEMENTATION_VERSION)
        .source_application_entity_title(source_ae)
        .build()
        .map_err(|e| DicomError::Malformed(format!("file meta: {e}")))?;
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    meta.write(&mut out).map_err(|e| DicomError::Malformed(format!("file meta: {e}")))?;
    Ok(out)
}

/// Splits a Part 10 file into its transfer syntax and the offset of its data set
/// (for STOW-RS bodies and files read back).
pub fn split_file(bytes: &[u8]) -> Result<(String, String, String, usize), Refusal> {
    let bad = |why: &str| Refusal { status: 0xC000, reason: why.to_string() };
    if bytes.len() < 132 || &bytes[128..132] != b"DICM" {
        return Err(bad("not a DICOM file: no DICM prefix after the 128-byte preamble"));
    }
    crate::lengths::check(&bytes[132..], crate::lengths::Encoding::ExplicitLittle, Some(0x0002))
        .map_err(|why| Refusal { status: 0xC000, reason: format!("file meta information cannot be read: {why}") })?;
    let mut cursor = std::io::Cursor::new(&bytes[128..]);
    let meta = dicom_object::meta::FileMetaTable::from_reader(&mut cursor)
        .map_err(|e| Refusal { status: 0xC000, reason: format!("file meta information cannot be read: {e}") })?;
    let start = 128 + cursor.position() as usize;
    let ts = meta.transfer_syntax().trim_end_matches(['\0', ' ']).to_string();
    Ok((
        meta.media_storage_sop_class_uid().trim_end_matches(['\0', ' ']).to_string(),
        meta.media_storage_sop_instance_uid().trim_end_matches(['\0', ' ']).to_string(),
        ts,
        start,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN;

    fn data_set(charset: Option<&str>, name: &str, pixels: usize) -> Vec<u8> {
        let mut e = vec![
            DataElement::new(tags::SOP_CLASS_UID, VR::UI, PrimitiveValue::from("1.2.840.10008.5.1.4.1.1.7")),
            DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, PrimitiveValue::from("1.2.3.4.5")),
            DataElement::new(tags::STUDY_INSTANCE_UID, VR::UI, PrimitiveValue::from("1.2.3.4")),
            DataElement::new(tags::SERIES_INSTANCE_UID, VR::UI, PrimitiveValue::from("1.2.3.4.1")),
            DataElement::new(tags::PATIENT_NAME, VR::PN, PrimitiveValue::from(name)),
            DataElement::new(tags::PATIENT_ID, VR::LO, PrimitiveValue::from("E1000001")),
            DataElement::new(tags::MODALITY, VR::CS, PrimitiveValue::from("OT")),
            DataElement::new(tags::INSTANCE_NUMBER, VR::IS, PrimitiveValue::from("3")),
            DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::from(vec![7u8; pixels])),
        ];
        if let Some(cs) = charset {
            e.push(DataElement::new(tags::SPECIFIC_CHARACTER_SET, VR::CS, PrimitiveValue::from(cs)));
        }
        let o = InMemDicomObject::from_element_iter(e);
        let cs = charset.and_then(SpecificCharacterSet::from_code).unwrap_or_default();
        let mut out = Vec::new();
        o.write_dataset_with_ts_cs(&mut out, &EXPLICIT_VR_LITTLE_ENDIAN.erased(), cs).expect("writes");
        out
    }

    #[test]
    fn a_gb18030_name_is_decoded_and_bulk_data_left_out_of_the_json() {
        let bytes = data_set(Some("GB18030"), "Zhang^San=张^三", 4096);
        assert!(bytes.windows(2).any(|w| w == [0xD5, 0xC5]), "张 is written in GB18030");
        let i = read(&bytes, "1.2.840.10008.1.2.1", None).expect("reads");
        assert_eq!(i.patient_name, "Zhang^San=张^三");
        assert_eq!(i.character_set, "GB18030");
        assert_eq!((i.instance_number, i.number_of_frames), (Some(3), 1));
        assert!(i.json.get("7FE00010").is_none(), "pixel data is bulk data");
        assert_eq!(i.json["00100020"]["Value"][0], "E1000001");
    }

    #[test]
    fn a_sender_default_character_set_applies_when_the_data_set_names_none() {
        let mut bytes = data_set(Some("GBK"), "李^四", 16);
        // Drop the (0008,0005) element: it is the first element, 8 + 4 bytes.
        let len = u16::from_le_bytes([bytes[6], bytes[7]]) as usize;
        bytes.drain(..8 + len);
        let i = read(&bytes, "1.2.840.10008.1.2.1", Some("GBK")).expect("reads");
        assert_eq!(i.patient_name, "李^四");
    }

    #[test]
    fn a_deflated_data_set_reads_and_a_bomb_is_refused() {
        use std::io::Write;
        let deflate = |b: &[u8]| {
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(b).expect("deflates");
            e.finish().expect("deflates")
        };
        let i = read(&deflate(&data_set(None, "Doe^John", 64)), "1.2.840.10008.1.2.1.99", None).expect("reads");
        assert_eq!(i.patient_name, "Doe^John");
        assert_eq!(i.transfer_syntax, "1.2.840.10008.1.2.1.99", "kept as received");
        let bomb = deflate(&vec![0u8; 64 << 20]);
        let r = read(&bomb, "1.2.840.10008.1.2.1.99", None).expect_err("inflates too far");
        assert!(r.reason.contains("inflates to more than"), "{}", r.reason);
    }

    #[test]
    fn a_truncated_data_set_is_refused() {
        let bytes = data_set(None, "Doe^John", 4096);
        let r = read(&bytes[..bytes.len() - 100], "1.2.840.10008.1.2.1", None).expect_err("truncated");
        assert_eq!(r.status, 0xC000);
        assert!(r.reason.contains("truncated"), "{}", r.reason);
    }

    #[test]
    fn pixel_data_shorter_than_its_frames_is_refused() {
        let mut o = InMemDicomObject::read_dataset_with_ts(
            &data_set(None, "Doe^John", 100)[..],
            &EXPLICIT_VR_LITTLE_ENDIAN.erased(),
        )
        .expect("reads");
        for (tag, v) in [(tags::ROWS, 8_u16), (tags::COLUMNS, 8), (tags::BITS_ALLOCATED, 16)] {
            o.put(DataElement::new(tag, VR::US, PrimitiveValue::from(v)));
        }
        let mut out = Vec::new();
        o.write_dataset_with_ts(&mut out, &EXPLICIT_VR_LITTLE_ENDIAN.erased()).expect("writes");
        let r = read(&out, "1.2.840.10008.1.2.1", None).expect_err("100 of 128 bytes");
        assert_eq!(r.status, 0xA900);
        assert!(r.reason.starts_with("truncated Pixel Data (7FE0,0010): 100 of 128 bytes"), "{}", r.reason);
        o.put(DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::from(vec![0u8; 128])));
        let mut out = Vec::new();
        o.write_dataset_with_ts(&mut out, &EXPLICIT_VR_LITTLE_ENDIAN.erased()).expect("writes");
        assert!(read(&out, "1.2.840.10008.1.2.1", None).is_ok());
    }

    #[test]
    fn a_bad_uid_is_refused_by_name() {
        let bytes = data_set(None, "Doe^John", 16);
        let mut o =
            InMemDicomObject::read_dataset_with_ts(&bytes[..], &EXPLICIT_VR_LITTLE_ENDIAN.erased()).expect("reads");
        o.put(DataElement::new(tags::SERIES_INSTANCE_UID, VR::UI, PrimitiveValue::from("../../etc")));
        let mut out = Vec::new();
        o.write_dataset_with_ts(&mut out, &EXPLICIT_VR_LITTLE_ENDIAN.erased()).expect("writes");
        let r = read(&out, "1.2.840.10008.1.2.1", None).expect_err("bad uid");
        assert_eq!(r.status, 0xA900);
        assert!(r.reason.contains("Series Instance UID"), "{}", r.reason);
    }

    #[test]
    fn uids_follow_part_5() {
        assert!(valid_uid("1.2.840.10008.5.1.4.1.1.2"));
        assert!(valid_uid("2.25.0"));
        for bad in ["", "1..2", "1.02", "1.2.a", "../x", &"1.".repeat(40)] {
            assert!(!valid_uid(bad), "{bad}");
        }
    }

    #[test]
    fn a_file_header_splits_back() {
        let mut file =
            file_header("1.2.840.10008.5.1.4.1.1.7", "1.2.3.4.5", "1.2.840.10008.1.2.1", "DEMO-CT").expect("header");
        let at = file.len();
        file.extend_from_slice(&data_set(None, "Doe^John", 16));
        let (class, inst, ts, start) = split_file(&file).expect("splits");
        assert_eq!(
            (class.as_str(), inst.as_str(), ts.as_str(), start),
            ("1.2.840.10008.5.1.4.1.1.7", "1.2.3.4.5", "1.2.840.10008.1.2.1", at)
        );
        assert!(split_file(&file[..100]).is_err());
    }
}
