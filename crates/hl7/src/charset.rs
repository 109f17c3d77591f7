//! Character sets by MSH-18 (HL7 table 0211): bytes on the wire to text and back.
//!
//! Chinese hospital systems often send GBK without filling MSH-18; text that is not
//! valid UTF-8 and has no MSH-18 is therefore read as GB18030 (a superset of GBK and
//! GB2312) when it decodes without errors.

use encoding_rs::{Encoding, GB18030, UTF_8, WINDOWS_1252};

use crate::message::ParseError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charset {
    /// ASCII, UNICODE UTF-8, or nothing declared.
    Utf8,
    /// GB 18030-2000, GBK, GB2312.
    Gb18030,
    /// 8859/1.
    Latin1,
}

impl Charset {
    /// Reads an MSH-18 value; `None` for a set this server does not handle.
    pub fn from_msh18(value: &str) -> Option<Charset> {
        let norm: String =
            value.chars().filter(|c| !matches!(c, ' ' | '-' | '_')).collect::<String>().to_ascii_uppercase();
        match norm.as_str() {
            "" | "ASCII" | "UNICODE" | "UNICODEUTF8" | "UTF8" | "ISOIR192" => Some(Charset::Utf8),
            "GB180302000" | "GB18030" | "GBK" | "GB2312" | "CHINESE" | "CP936" => Some(Charset::Gb18030),
            "8859/1" | "8859" | "ISO88591" | "ISO8859/1" | "LATIN1" | "ISOIR100" => Some(Charset::Latin1),
            _ => None,
        }
    }

    fn encoding(self) -> &'static Encoding {
        match self {
            Charset::Utf8 => UTF_8,
            Charset::Gb18030 => GB18030,
            Charset::Latin1 => WINDOWS_1252,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Charset::Utf8 => "UTF-8",
            Charset::Gb18030 => "GB18030",
            Charset::Latin1 => "ISO 8859-1",
        }
    }
}

/// MSH-18's first repetition, read from the raw bytes of the first segment (MSH-1 to
/// MSH-18 are ASCII in practice, whatever the message's character set).
fn declared(bytes: &[u8]) -> Option<String> {
    if bytes.len() < 8 || &bytes[..3] != b"MSH" {
        return None;
    }
    let field = bytes[3];
    let repetition = bytes[5];
    let end = bytes.iter().position(|b| *b == b'\r' || *b == b'\n').unwrap_or(bytes.len());
    let raw = bytes[..end].split(|b| *b == field).nth(17)?;
    let first = raw.split(|b| *b == repetition).next()?;
    Some(String::from_utf8_lossy(first).trim().to_string())
}

/// Decodes a message's bytes by its MSH-18 and returns the text and the set used. A
/// set this server does not know is read as if none were declared (UTF-8, else
/// GB18030); the listener warns the sender.
pub fn decode(bytes: &[u8]) -> Result<(String, Charset), ParseError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let named = declared(bytes);
    let known = named.as_deref().filter(|n| !n.is_empty()).and_then(Charset::from_msh18);
    let charset = match known {
        Some(c) => c,
        None => {
            if let Ok(s) = std::str::from_utf8(bytes) {
                return Ok((s.to_string(), Charset::Utf8));
            }
            Charset::Gb18030
        }
    };
    match charset.encoding().decode_without_bom_handling_and_without_replacement(bytes) {
        Some(text) => Ok((text.into_owned(), charset)),
        None => Err(ParseError::InvalidText(charset.name())),
    }
}

/// Encodes text (an ACK, an outbound message) in `charset`; characters the set cannot
/// hold become numeric character references, as encoding_rs does.
pub fn encode_text(text: &str, charset: Charset) -> Vec<u8> {
    let (bytes, _, _) = charset.encoding().encode(text);
    bytes.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gb18030_by_msh18_and_by_default() {
        let text = "MSH|^~\\&|HIS|东院|LIANYI|GROUP|20261122||ADT^A01|1|P|2.4||||||GB 18030-2000\rPID|1||1||张三\r";
        let bytes = encode_text(text, Charset::Gb18030);
        assert!(std::str::from_utf8(&bytes).is_err());
        assert_eq!(decode(&bytes).unwrap(), (text.to_string(), Charset::Gb18030));
        let undeclared = text.replace("GB 18030-2000", "");
        let bytes = encode_text(&undeclared, Charset::Gb18030);
        assert_eq!(decode(&bytes).unwrap(), (undeclared.clone(), Charset::Gb18030));
        assert_eq!(decode(undeclared.as_bytes()).unwrap(), (undeclared, Charset::Utf8));
    }

    #[test]
    fn declared_utf8_must_be_utf8_and_unknown_sets_are_read_as_undeclared() {
        let text = "MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5||||||UNICODE UTF-8\rPID|1||1||张三\r";
        let gb = encode_text(text, Charset::Gb18030);
        assert_eq!(decode(&gb), Err(ParseError::InvalidText("UTF-8")));
        let odd = text.replace("UNICODE UTF-8", "ISO IR87");
        assert_eq!(decode(odd.as_bytes()).unwrap(), (odd.clone(), Charset::Utf8));
        let odd_gb = encode_text(&odd, Charset::Gb18030);
        assert_eq!(decode(&odd_gb).unwrap(), (odd, Charset::Gb18030));
        assert_eq!(Charset::from_msh18("8859"), Some(Charset::Latin1));
        assert_eq!(Charset::from_msh18("gbk"), Some(Charset::Gb18030));
    }
}
