//! DIMSE command sets (PS3.7 §9, §E): read from the wire's command fragments and
//! written for the responses. Commands are always Implicit VR Little Endian.

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;

use crate::DicomError;

/// The command fields the node serves or sends (PS3.7 §E.1).
pub mod field {
    pub const C_STORE_RQ: u16 = 0x0001;
    pub const C_STORE_RSP: u16 = 0x8001;
    pub const C_GET_RQ: u16 = 0x0010;
    pub const C_GET_RSP: u16 = 0x8010;
    pub const C_FIND_RQ: u16 = 0x0020;
    pub const C_FIND_RSP: u16 = 0x8020;
    pub const C_MOVE_RQ: u16 = 0x0021;
    pub const C_MOVE_RSP: u16 = 0x8021;
    pub const C_ECHO_RQ: u16 = 0x0030;
    pub const C_ECHO_RSP: u16 = 0x8030;
    pub const C_CANCEL_RQ: u16 = 0x0FFF;
}

/// Command Data Set Type: no data set follows the command.
pub const NO_DATA_SET: u16 = 0x0101;

/// A command as read from the wire: the attributes the node acts on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Command {
    pub field: u16,
    pub message_id: u16,
    pub affected_sop_class: String,
    pub affected_sop_instance: String,
    pub has_data_set: bool,
    pub priority: u16,
    pub move_destination: String,
    pub move_originator_ae: String,
    pub move_originator_id: Option<u16>,
    /// In a response: the request's message id, and its status.
    pub responding_to: Option<u16>,
    pub status: Option<u16>,
}

fn text(o: &InMemDicomObject, tag: Tag) -> String {
    o.get(tag).and_then(|e| e.to_str().ok()).map(|s| s.trim_end_matches(['\0', ' ']).to_string()).unwrap_or_default()
}

fn short(o: &InMemDicomObject, tag: Tag) -> Option<u16> {
    o.get(tag).and_then(|e| e.to_int::<u16>().ok())
}

impl Command {
    /// Reads a command set (its fragments joined).
    pub fn read(bytes: &[u8]) -> Result<Command, DicomError> {
        let o = crate::instance::decode(bytes, IMPLICIT_VR_LITTLE_ENDIAN.uid(), Default::default())
            .map_err(|why| DicomError::Malformed(format!("command set: {why}")))?;
        let field = short(&o, tags::COMMAND_FIELD)
            .ok_or_else(|| DicomError::Malformed("command set: no Command Field (0000,0100)".into()))?;
        Ok(Command {
            field,
            message_id: short(&o, tags::MESSAGE_ID).unwrap_or(0),
            affected_sop_class: text(&o, tags::AFFECTED_SOP_CLASS_UID),
            affected_sop_instance: text(&o, tags::AFFECTED_SOP_INSTANCE_UID),
            has_data_set: short(&o, tags::COMMAND_DATA_SET_TYPE).unwrap_or(NO_DATA_SET) != NO_DATA_SET,
            priority: short(&o, tags::PRIORITY).unwrap_or(0),
            move_destination: text(&o, tags::MOVE_DESTINATION),
            move_originator_ae: text(&o, tags::MOVE_ORIGINATOR_APPLICATION_ENTITY_TITLE),
            move_originator_id: short(&o, tags::MOVE_ORIGINATOR_MESSAGE_ID),
            responding_to: short(&o, tags::MESSAGE_ID_BEING_RESPONDED_TO),
            status: short(&o, tags::STATUS),
        })
    }
}

/// Counts of a C-MOVE or C-GET's sub-operations, for its responses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SubOperations {
    pub remaining: u16,
    pub completed: u16,
    pub failed: u16,
    pub warning: u16,
}

/// A response command (`field` is the response's command field).
#[derive(Clone, Debug, Default)]
pub struct Response<'a> {
    pub field: u16,
    pub responding_to: u16,
    pub sop_class: &'a str,
    pub sop_instance: Option<&'a str>,
    pub status: u16,
    pub has_data_set: bool,
    pub sub_operations: Option<SubOperations>,
    /// Error Comment (0000,0902): why, for a failure status (64 characters at most).
    pub comment: Option<String>,
}

fn uid_value(uid: &str) -> PrimitiveValue {
    // UIDs are padded with NUL to an even length.
    let mut s = uid.to_string();
    if s.len() % 2 == 1 {
        s.push('\0');
    }
    PrimitiveValue::from(s)
}

impl Response<'_> {
    /// The encoded command set.
    pub fn encode(&self) -> Vec<u8> {
        let mut elements = vec![
            DataElement::new(tags::AFFECTED_SOP_CLASS_UID, VR::UI, uid_value(self.sop_class)),
            DataElement::new(tags::COMMAND_FIELD, VR::US, PrimitiveValue::from(self.field)),
            DataElement::new(tags::MESSAGE_ID_BEING_RESPONDED_TO, VR::US, PrimitiveValue::from(self.responding_to)),
            DataElement::new(
                tags::COMMAND_DATA_SET_TYPE,
                VR::US,
                PrimitiveValue::from(if self.has_data_set { 0x0001_u16 } else { NO_DATA_SET }),
            ),
            DataElement::new(tags::STATUS, VR::US, PrimitiveValue::from(self.status)),
        ];
        if let Some(i) = self.sop_instance {
            elements.push(DataElement::new(tags::AFFECTED_SOP_INSTANCE_UID, VR::UI, uid_value(i)));
        }
        if let Some(c) = &self.comment {
            let mut c: String = c.chars().filter(|c| c.is_ascii() && !c.is_ascii_control()).take(64).collect();
            if c.len() % 2 == 1 {
                c.push(' ');
            }
            elements.push(DataElement::new(tags::ERROR_COMMENT, VR::LO, PrimitiveValue::from(c)));
        }
        if let Some(s) = self.sub_operations {
            for (tag, n) in [
                (tags::NUMBER_OF_REMAINING_SUBOPERATIONS, s.remaining),
                (tags::NUMBER_OF_COMPLETED_SUBOPERATIONS, s.completed),
                (tags::NUMBER_OF_FAILED_SUBOPERATIONS, s.failed),
                (tags::NUMBER_OF_WARNING_SUBOPERATIONS, s.warning),
            ] {
                elements.push(DataElement::new(tag, VR::US, PrimitiveValue::from(n)));
            }
        }
        encode_command(elements)
    }
}

/// A request command the node sends (C-STORE as a C-MOVE/C-GET sub-operation).
pub fn store_request(message_id: u16, sop_class: &str, sop_instance: &str, originator: Option<(&str, u16)>) -> Vec<u8> {
    let mut elements = vec![
        DataElement::new(tags::AFFECTED_SOP_CLASS_UID, VR::UI, uid_value(sop_class)),
        DataElement::new(tags::COMMAND_FIELD, VR::US, PrimitiveValue::from(field::C_STORE_RQ)),
        DataElement::new(tags::MESSAGE_ID, VR::US, PrimitiveValue::from(message_id)),
        DataElement::new(tags::PRIORITY, VR::US, PrimitiveValue::from(0_u16)),
        DataElement::new(tags::COMMAND_DATA_SET_TYPE, VR::US, PrimitiveValue::from(0x0001_u16)),
        DataElement::new(tags::AFFECTED_SOP_INSTANCE_UID, VR::UI, uid_value(sop_instance)),
    ];
    if let Some((ae, id)) = originator {
        let mut ae = ae.to_string();
        if ae.len() % 2 == 1 {
            ae.push(' ');
        }
        elements.push(DataElement::new(
            tags::MOVE_ORIGINATOR_APPLICATION_ENTITY_TITLE,
            VR::AE,
            PrimitiveValue::from(ae),
        ));
        elements.push(DataElement::new(tags::MOVE_ORIGINATOR_MESSAGE_ID, VR::US, PrimitiveValue::from(id)));
    }
    encode_command(elements)
}

fn encode_command(elements: Vec<DataElement<InMemDicomObject>>) -> Vec<u8> {
    let o = InMemDicomObject::command_from_element_iter(elements);
    let mut out = Vec::with_capacity(160);
    // Writing a command of well-formed elements to memory does not fail.
    if let Err(e) = o.write_dataset_with_ts(&mut out, &IMPLICIT_VR_LITTLE_ENDIAN.erased()) {
        tracing::error!(error = %e, "a DIMSE command could not be encoded");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_reads_back() {
        let bytes = Response {
            field: field::C_STORE_RSP,
            responding_to: 7,
            sop_class: "1.2.840.10008.5.1.4.1.1.2",
            sop_instance: Some("1.2.3.4"),
            status: 0xA900,
            comment: Some("SOP Class UID of the data set differs from the command's".into()),
            ..Default::default()
        }
        .encode();
        let c = Command::read(&bytes).expect("reads");
        assert_eq!(c.field, field::C_STORE_RSP);
        assert_eq!(c.responding_to, Some(7));
        assert_eq!(c.status, Some(0xA900));
        assert_eq!(c.affected_sop_class, "1.2.840.10008.5.1.4.1.1.2");
        assert_eq!(c.affected_sop_instance, "1.2.3.4");
        assert!(!c.has_data_set);
    }

    #[test]
    fn a_store_request_reads_back() {
        let c = Command::read(&store_request(3, "1.2.840.10008.5.1.4.1.1.4", "9.8.7", Some(("VIEWER", 11))))
            .expect("reads");
        assert_eq!((c.field, c.message_id, c.has_data_set), (field::C_STORE_RQ, 3, true));
        assert_eq!(c.move_originator_ae, "VIEWER");
        assert_eq!(c.move_originator_id, Some(11));
    }

    #[test]
    fn garbage_is_refused_not_panicked_on() {
        assert!(Command::read(&[0x00, 0x00, 0x00]).is_err());
        assert!(Command::read(&[]).is_err());
    }
}
