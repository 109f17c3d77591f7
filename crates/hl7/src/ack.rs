//! Original-mode acknowledgements: MSA with AA, AE or AR, and ERR segments that say
//! where and what (HL7 table 0357 codes), readable by v2.3 to v2.8 senders.

use crate::message::{Location, Message, Separators};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckCode {
    /// Accepted: the data is stored.
    Accept,
    /// Error in the content; nothing from the message was stored.
    Error,
    /// Rejected: type, version or processing id not handled, or the message is unreadable.
    Reject,
}

impl AckCode {
    pub fn as_str(self) -> &'static str {
        match self {
            AckCode::Accept => "AA",
            AckCode::Error => "AE",
            AckCode::Reject => "AR",
        }
    }
}

/// HL7 table 0357, message error condition codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    SegmentSequence,
    RequiredFieldMissing,
    DataType,
    TableValueNotFound,
    UnsupportedMessageType,
    UnsupportedEvent,
    UnsupportedProcessingId,
    UnsupportedVersion,
    UnknownKey,
    DuplicateKey,
    ApplicationInternal,
}

impl ErrorCode {
    pub fn code(self) -> u16 {
        match self {
            ErrorCode::SegmentSequence => 100,
            ErrorCode::RequiredFieldMissing => 101,
            ErrorCode::DataType => 102,
            ErrorCode::TableValueNotFound => 103,
            ErrorCode::UnsupportedMessageType => 200,
            ErrorCode::UnsupportedEvent => 201,
            ErrorCode::UnsupportedProcessingId => 202,
            ErrorCode::UnsupportedVersion => 203,
            ErrorCode::UnknownKey => 204,
            ErrorCode::DuplicateKey => 205,
            ErrorCode::ApplicationInternal => 207,
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            ErrorCode::SegmentSequence => "Segment sequence error",
            ErrorCode::RequiredFieldMissing => "Required field missing",
            ErrorCode::DataType => "Data type error",
            ErrorCode::TableValueNotFound => "Table value not found",
            ErrorCode::UnsupportedMessageType => "Unsupported message type",
            ErrorCode::UnsupportedEvent => "Unsupported event code",
            ErrorCode::UnsupportedProcessingId => "Unsupported processing id",
            ErrorCode::UnsupportedVersion => "Unsupported version id",
            ErrorCode::UnknownKey => "Unknown key identifier",
            ErrorCode::DuplicateKey => "Duplicate key identifier",
            ErrorCode::ApplicationInternal => "Application internal error",
        }
    }
}

/// One problem to report in an ERR segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hl7Error {
    pub code: ErrorCode,
    pub location: Option<Location>,
    /// For people: names the field and the rule.
    pub message: String,
}

/// The acknowledgement of `original` (which may be only partly readable: a message
/// that failed to parse is answered from a bare MSH). `now` is the DTM for MSH-7 and
/// `control_id` the ACK's own MSH-10.
pub fn ack(original: &Message, code: AckCode, control_id: &str, now: &str, errors: &[Hl7Error]) -> Message {
    let sep = original.separators;
    let mut m = Message::new(sep);
    let orig = original.msh();
    let get = |n: usize| orig.map(|s| s.raw(n).to_string()).unwrap_or_default();
    let trigger = original.trigger();
    if let Some(msh) = m.msh_mut() {
        msh.set_raw(3, &get(5))
            .set_raw(4, &get(6))
            .set_raw(5, &get(3))
            .set_raw(6, &get(4))
            .set_text(7, now)
            .set(9, 1, 1, 1, "ACK");
        if !trigger.is_empty() {
            msh.set(9, 1, 2, 1, &trigger).set(9, 1, 3, 1, "ACK");
        }
        msh.set_text(10, control_id);
        let processing = original.processing_id();
        msh.set_text(11, if processing.is_empty() { "P" } else { &processing });
        let version = original.version();
        msh.set_text(12, if version.is_empty() { "2.5.1" } else { &version });
        let charset = get(18);
        if !charset.is_empty() {
            msh.set_raw(18, &charset);
        }
    }
    let text = errors.first().map(|e| e.message.as_str()).unwrap_or_default();
    let msa = m.push("MSA");
    msa.set_text(1, code.as_str()).set_text(2, &original.control_id());
    if !text.is_empty() {
        msa.set_text(3, text);
    }
    for e in errors {
        let severity = if code == AckCode::Accept { "W" } else { "E" };
        let err = m.push("ERR");
        if let Some(loc) = &e.location {
            // ERR-1 (v2.3/2.4): segment^sequence^field^code&text&HL70357.
            err.set(1, 1, 1, 1, &loc.segment).set(1, 1, 2, 1, &nonzero(loc.sequence)).set(
                1,
                1,
                3,
                1,
                &nonzero(loc.field),
            );
            // ERR-2 (v2.5+): segment^sequence^field^repetition^component^sub-component.
            err.set(2, 1, 1, 1, &loc.segment)
                .set(2, 1, 2, 1, &nonzero(loc.sequence))
                .set(2, 1, 3, 1, &nonzero(loc.field))
                .set(2, 1, 4, 1, &nonzero(loc.repetition))
                .set(2, 1, 5, 1, &nonzero(loc.component))
                .set(2, 1, 6, 1, &nonzero(loc.subcomponent));
        }
        err.set(1, 1, 4, 1, &e.code.code().to_string())
            .set(1, 1, 4, 2, e.code.text())
            .set(1, 1, 4, 3, "HL70357")
            .set(3, 1, 1, 1, &e.code.code().to_string())
            .set(3, 1, 2, 1, e.code.text())
            .set(3, 1, 3, 1, "HL70357")
            .set_text(4, severity)
            .set_text(8, &e.message);
    }
    m
}

fn nonzero(n: usize) -> String {
    if n == 0 { String::new() } else { n.to_string() }
}

/// A bare message carrying only the delimiters, for answering unreadable input.
pub fn unreadable() -> Message {
    Message::new(Separators::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_and_error_acks() {
        let orig =
            Message::parse("MSH|^~\\&|LIS|EAST|LIANYI|GROUP|20261122083000||ORU^R01^ORU_R01|MSG7|P|2.5.1\rPID|1\r")
                .unwrap();
        let aa = ack(&orig, AckCode::Accept, "A1", "20261122083001", &[]);
        assert_eq!(
            aa.encode(),
            "MSH|^~\\&|LIANYI|GROUP|LIS|EAST|20261122083001||ACK^R01^ACK|A1|P|2.5.1\rMSA|AA|MSG7\r"
        );
        let err = Hl7Error {
            code: ErrorCode::RequiredFieldMissing,
            location: Some(Location::field("PID", 1, 3)),
            message: "PID-3 (patient identifier list) is required".into(),
        };
        let ae = ack(&orig, AckCode::Error, "A2", "20261122083001", &[err]);
        let text = ae.encode();
        assert!(text.contains("\rMSA|AE|MSG7|PID-3 (patient identifier list) is required\r"), "{text}");
        assert!(
            text.contains("\rERR|PID^1^3^101&Required field missing&HL70357|PID^1^3|101^Required field missing^HL70357|E||||PID-3 (patient identifier list) is required\r"),
            "{text}"
        );
        let back = Message::parse(&text).unwrap();
        assert_eq!(back.segment("ERR").unwrap().component(3, 1), "101");
    }
}
