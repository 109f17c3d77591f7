//! A walk over a data set's element headers before dicom-rs reads it: every defined
//! length must fit in the bytes that are left. dicom-rs reserves and zero-fills a
//! value's declared length before reading it, so a 500-byte data set declaring a 3 GB
//! element would make the server fill 3 GB of memory (found by the `dicom_network`
//! fuzz target). Sequences and items are stepped into, so nested lengths are checked
//! too.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::{Tag, VR};

const UNDEFINED: u32 = 0xFFFF_FFFF;

/// How the data set is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    ImplicitLittle,
    ExplicitLittle,
    ExplicitBig,
}

impl Encoding {
    /// The encoding of a transfer syntax whose data set is read as it is (`None` for
    /// the deflated ones: their bytes are compressed).
    pub fn of(ts: &str) -> Option<Encoding> {
        match ts {
            "1.2.840.10008.1.2" => Some(Encoding::ImplicitLittle),
            "1.2.840.10008.1.2.2" => Some(Encoding::ExplicitBig),
            t if t.starts_with("1.2.840.10008.1.2.1.99") || t == "1.2.840.10008.1.2.4.95" => None,
            _ => Some(Encoding::ExplicitLittle),
        }
    }
}

/// The most a deflated data set may inflate to: 200 times its size, and 512 MiB.
const INFLATE_RATIO: usize = 200;
const INFLATE_MAX: usize = 512 << 20;

/// Inflates a deflated data set (RFC 1951, PS3.5 §A.5) within the cap.
pub fn inflate(bytes: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let cap = bytes.len().saturating_mul(INFLATE_RATIO).clamp(64 << 10, INFLATE_MAX);
    let mut out = Vec::new();
    let read = flate2::read::DeflateDecoder::new(bytes)
        .take(cap as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("it does not inflate: {e}"))?;
    if read > cap {
        return Err(format!("it inflates to more than {cap} bytes"));
    }
    Ok(out)
}

/// The value representations of PS3.5 §6.2; dicom-rs reads any other code with a
/// 4-byte length, which a walk with the 2-byte one would not see.
fn known_vr(vr: &[u8]) -> bool {
    const ALL: [&[u8; 2]; 34] = [
        b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"OB", b"OD", b"OF", b"OL",
        b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM", b"UC", b"UI", b"UL", b"UN", b"UR", b"US",
        b"UT", b"UV",
    ];
    ALL.iter().any(|v| &v[..] == vr)
}

fn long_header(vr: &[u8]) -> bool {
    matches!(vr, b"OB" | b"OW" | b"OF" | b"OD" | b"OL" | b"OV" | b"SQ" | b"UT" | b"UN" | b"UC" | b"UR" | b"SV" | b"UV")
}

/// Checks every element header of `bytes`; with `only_group`, stops at the first
/// element of another group (a file meta group followed by a data set).
pub fn check(bytes: &[u8], enc: Encoding, only_group: Option<u16>) -> Result<(), String> {
    walk(bytes, enc, only_group).map(|_| ())
}

/// Where the data set's own Pixel Data (7FE0,0010) element starts (not one inside a
/// sequence, such as an icon's), and its declared length (`None`: encapsulated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelData {
    pub offset: usize,
    pub length: Option<u32>,
}

/// [`check`], also finding the top-level Pixel Data element.
pub fn walk(bytes: &[u8], enc: Encoding, only_group: Option<u16>) -> Result<Option<PixelData>, String> {
    let dict = dicom_dictionary_std::StandardDataDictionary;
    let u16_at = |p: usize| -> u16 {
        let b = [bytes[p], bytes[p + 1]];
        if enc == Encoding::ExplicitBig { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) }
    };
    let u32_at = |p: usize, big: bool| -> u32 {
        let b = [bytes[p], bytes[p + 1], bytes[p + 2], bytes[p + 3]];
        if big { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) }
    };
    let mut pos = 0usize;
    // Inside encapsulated pixel data, items are fragments of bytes, not elements.
    let mut in_fragments = false;
    // The sequences and items the walk is inside: where each ends (`usize::MAX`: at
    // its delimiter).
    let mut open: Vec<usize> = Vec::new();
    let mut pixel_data = None;
    while pos < bytes.len() {
        while open.last().is_some_and(|&end| end != usize::MAX && pos >= end) {
            open.pop();
        }
        if bytes.len() - pos < 8 {
            return Ok(pixel_data); // a short tail is the reader's to refuse
        }
        let group = u16_at(pos);
        if only_group.is_some_and(|g| g != group) {
            return Ok(pixel_data);
        }
        let element = u16_at(pos + 2);
        let tag = Tag(group, element);
        // Items and delimiters are little endian even in big-endian data sets only in
        // theory; read them as the data set reads.
        if group == 0xFFFE {
            let len = u32_at(pos + 4, enc == Encoding::ExplicitBig);
            pos += 8;
            if element == 0xE000 && len != UNDEFINED {
                if len as usize > bytes.len() - pos {
                    return Err(format!("an item declares {len} bytes where {} remain", bytes.len() - pos));
                }
                if in_fragments {
                    pos += len as usize;
                } else {
                    open.push(pos + len as usize);
                }
            } else if element == 0xE000 && !in_fragments {
                open.push(usize::MAX);
            } else if element == 0xE0DD && in_fragments {
                in_fragments = false;
            } else if element == 0xE00D || element == 0xE0DD {
                open.pop();
            }
            continue; // step into sequence items; delimiters have no value
        }
        let (len, header, sequence) = match enc {
            Encoding::ImplicitLittle => {
                let len = u32_at(pos + 4, false);
                let sq = dict.by_tag(tag).is_some_and(|e| e.vr().relaxed() == VR::SQ);
                (len, 8, sq)
            }
            Encoding::ExplicitLittle | Encoding::ExplicitBig => {
                let vr = &bytes[pos + 4..pos + 6];
                if !known_vr(vr) {
                    return Err(format!("element ({group:04X},{element:04X}) has no valid VR"));
                }
                if long_header(vr) {
                    if bytes.len() - pos < 12 {
                        return Ok(pixel_data);
                    }
                    (u32_at(pos + 8, enc == Encoding::ExplicitBig), 12, vr == b"SQ")
                } else {
                    (u32::from(u16_at(pos + 6)), 8, false)
                }
            }
        };
        if tag == Tag(0x7FE0, 0x0010) && open.is_empty() && pixel_data.is_none() {
            pixel_data = Some(PixelData { offset: pos, length: (len != UNDEFINED).then_some(len) });
        }
        pos += header;
        if len == UNDEFINED {
            in_fragments = !sequence;
            if sequence {
                open.push(usize::MAX);
            }
            continue; // its items follow inline
        }
        let left = bytes.len() - pos;
        if len as usize > left {
            return Err(format!(
                "element ({group:04X},{element:04X}) declares {len} bytes where {left} remain (truncated or malformed)"
            ));
        }
        if sequence {
            open.push(pos + len as usize);
        } else {
            pos += len as usize;
        }
    }
    Ok(pixel_data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_length_past_the_end_is_refused_before_anything_is_reserved() {
        // (0010,0010) PN, 4 bytes; then (7FE0,0010) OB declaring 3 GB.
        let mut b = vec![0x10, 0x00, 0x10, 0x00, b'P', b'N', 4, 0, b'D', b'o', b'e', b' '];
        b.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0]);
        b.extend_from_slice(&3_000_000_000u32.to_le_bytes());
        b.extend_from_slice(&[0; 16]);
        let e = check(&b, Encoding::ExplicitLittle, None).unwrap_err();
        assert!(e.starts_with("element (7FE0,0010) declares 3000000000 bytes"), "{e}");
        assert!(check(&b[..12], Encoding::ExplicitLittle, None).is_ok());
    }

    #[test]
    fn nested_lengths_inside_an_undefined_sequence_are_checked() {
        // (0008,1115) SQ undefined, item undefined, (0008,1150) UI declaring 1 GB.
        let mut b = vec![0x08, 0x00, 0x15, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF];
        b.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        b.extend_from_slice(&[0x08, 0x00, 0x50, 0x11, b'U', b'N', 0, 0]);
        b.extend_from_slice(&1_000_000_000u32.to_le_bytes());
        assert!(check(&b, Encoding::ExplicitLittle, None).unwrap_err().contains("(0008,1150)"));
    }

    #[test]
    fn an_unknown_vr_is_refused() {
        // A VR of two NUL bytes: dicom-rs would read the next four bytes as a length.
        let b = [0x00, 0x00, 0x00, 0x00, 0, 0, 0, 0, 0xFC, 0xFF, 0xFC, 0xFF, b'O', b'B'];
        assert!(check(&b, Encoding::ExplicitLittle, None).unwrap_err().contains("no valid VR"));
    }

    #[test]
    fn encapsulated_fragments_are_bytes_not_elements() {
        // (7FE0,0010) OB undefined: an empty offset table, a 6-byte fragment whose bytes
        // would read as a huge element, the delimiter.
        let mut b = vec![0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF];
        b.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0]);
        b.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 8, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0x7F]);
        b.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        assert!(check(&b, Encoding::ExplicitLittle, None).is_ok());
        // A fragment longer than what is left is still refused.
        b[24] = 200;
        assert!(check(&b, Encoding::ExplicitLittle, None).is_err());
    }

    #[test]
    fn the_data_sets_own_pixel_data_is_found_not_an_icons() {
        // (0088,0200) IconImageSequence SQ of 24: an item of 16 holding (7FE0,0010) OW
        // of 4 bytes (an icon's pixels); then (0028,0010) US; then the data set's own
        // (7FE0,0010) OW of 8.
        let mut b = vec![0x88, 0x00, 0x00, 0x02, b'S', b'Q', 0, 0, 24, 0, 0, 0];
        b.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 16, 0, 0, 0]);
        b.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0, 4, 0, 0, 0, 1, 2, 3, 4]);
        b.extend_from_slice(&[0x28, 0x00, 0x10, 0x00, b'U', b'S', 2, 0, 8, 0]);
        let own = b.len();
        b.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let found = walk(&b, Encoding::ExplicitLittle, None).unwrap();
        assert_eq!(found, Some(PixelData { offset: own, length: Some(8) }));
        // The same with undefined lengths and delimiters; and encapsulated pixel data.
        let mut u = vec![0x88, 0x00, 0x00, 0x02, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF];
        u.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        u.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0, 4, 0, 0, 0, 1, 2, 3, 4]);
        u.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        let own = u.len();
        u.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
        u.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        assert_eq!(walk(&u, Encoding::ExplicitLittle, None).unwrap(), Some(PixelData { offset: own, length: None }));
        assert_eq!(walk(&u[..own], Encoding::ExplicitLittle, None).unwrap(), None);
    }

    #[test]
    fn implicit_sequences_are_stepped_into() {
        // (0008,1115) ReferencedSeriesSequence, implicit, defined length 16, holding an
        // item of 8 whose element declares 100 bytes.
        let mut b = vec![0x08, 0x00, 0x15, 0x11, 16, 0, 0, 0];
        b.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 8, 0, 0, 0]);
        b.extend_from_slice(&[0x08, 0x00, 0x50, 0x11, 100, 0, 0, 0]);
        assert!(check(&b, Encoding::ImplicitLittle, None).is_err());
    }
}
