//! HL7 v2 → FHIR R4: ADT^A01/A02/A03/A04/A05/A08/A11/A13 (Patient, Encounter: admit,
//! transfer, discharge, register, pre-admit, update, cancels), A28/A31 (person
//! information only), ADT^A40 (patient merge), ORU^R01
//! (DiagnosticReport, Observation), ORM^O01 and OML^O21 (ServiceRequest), SIU^S12 to
//! S15 and S26 (Appointment). Every write is conditional on a business identifier
//! (MRN, visit number, order number, appointment id), so a message applied twice
//! changes nothing new, and a corrected result (OBX-11 `C`) updates the same
//! Observation.
//!
//! Liberal in what it accepts, strict in what it stores: a registration without a
//! visit number registers the patient, an HL7 null (`""`) is "no value", a demographic
//! field a result message garbles is left out so its results are kept. Each such
//! tolerance is a warning ([`Mapped::warnings`]) the sender's interface team sees in
//! the ACK and the message log. Clinical content stays strict: a result that is not
//! what OBX-2 says is an error.

use lianyi_fhir::datetime::from_dtm as date_time;
use lianyi_hl7::{ErrorCode, Hl7Error, Location, Message, Segment};
use lianyi_services::identifiers::{RESIDENT_ID_SYSTEM, STAFF_ID_SYSTEM};
use serde_json::{Map, Value, json};

mod adt;
mod orders;
mod patient;
mod results;
mod schedule;

use adt::{map_adt, map_merge};
use orders::map_order;
use patient::patient;
pub use patient::pid_field_of;
use results::map_oru;
use schedule::map_schedule;

/// What a connection's messages mean locally.
#[derive(Clone, Debug)]
pub struct Channel {
    /// The system of PID-3 identifiers of type MR (or without a type): the campus MRN.
    pub mrn_system: String,
    /// The system of visit numbers (PV1-19).
    pub visit_system: String,
    /// The system of order numbers (OBR-2/OBR-3) from this sender.
    pub order_system: String,
    /// The system of appointment ids (SCH-1/SCH-2) from this sender.
    pub appointment_system: String,
    /// The UTC offset of local times that carry none (`+08:00`).
    pub utc_offset: String,
    /// How this sender fills PID-3.
    pub profile: Pid3Profile,
    /// Now, for the rules that compare with today (a birth date in the future).
    pub now_ms: i64,
}

/// How a sender fills PID-3 (the patient identifier list): which repetition is the
/// medical record number, and which campus an assigning authority (PID-3.4) stands
/// for. Senders differ: some type the MRN `MR`, some `PI` or `PT`, some send several
/// campuses' numbers. Without a profile the repetition typed `MR` is the MRN, else
/// the first (with a warning).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pid3Profile {
    /// The PID-3.5 identifier type of the MRN (`MR`, `PI`, `PT`).
    pub mrn_type: Option<String>,
    /// The PID-3.4 assigning authority of the MRN (`EAST`).
    pub mrn_authority: Option<String>,
    /// Assigning authority (upper case) → campus id: MRNs of these authorities are
    /// that campus's numbers.
    pub campuses: std::collections::BTreeMap<String, lianyi_security::CampusId>,
}

/// A message's meaning: one FHIR transaction.
#[derive(Clone, Debug)]
pub struct Mapped {
    pub bundle: Value,
    /// For the message log: `ORU^R01: 2 observations`.
    pub summary: String,
    /// ADT^A40: the identifier (system, value) of the patient merged into the
    /// message's PID patient. The caller marks that record inactive and links the two
    /// (it has to read the stored record to do so).
    pub merge: Option<(String, String)>,
    /// What was skipped or left out although the message is accepted: sent back as
    /// ERR segments of severity W with the AA, and kept in the message log.
    pub warnings: Vec<Hl7Error>,
    /// Patient elements the message deletes (their PID field held the HL7 null `""`):
    /// an update carries every other stored element over, but not these.
    pub cleared: Vec<&'static str>,
}

/// Why a message is not applied: rejected (AR: type, version, processing id) or in
/// error (AE: its content).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapError {
    Reject(Hl7Error),
    Invalid(Vec<Hl7Error>),
}

const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";

fn err(code: ErrorCode, loc: Location, message: impl Into<String>) -> Hl7Error {
    Hl7Error { code, location: Some(loc), message: message.into() }
}

/// ADT events mapped beyond the patient (the visit, a merge).
const ADT_EVENTS: &[&str] =
    &["A01", "A02", "A03", "A04", "A05", "A06", "A07", "A08", "A11", "A13", "A14", "A28", "A31", "A40"];
/// SIU events mapped to an Appointment; S16 to S25 (a service or resource added,
/// changed, cancelled or removed) change it as S14 does.
const SIU_EVENTS: &[&str] = &["S12", "S13", "S14", "S15", "S26"];
/// ORU events that carry results as R01 does (R21 before v2.4; R30 to R32 point of care).
const ORU_EVENTS: &[&str] = &["R01", "R21", "R30", "R31", "R32"];
/// OML events that carry orders as O21 does.
const OML_EVENTS: &[&str] = &["O21", "O33", "O35", "O39", "O59"];

/// Checks MSH, then maps by message type. Liberal where the meaning is clear: any
/// 2.x version, an unknown processing id, an ADT event that is not mapped beyond the
/// patient, a result message without its trigger event: each with a warning.
pub fn map_message(m: &Message, ch: &Channel) -> Result<Mapped, MapError> {
    let mut warnings = Vec::new();
    let version = m.version();
    let minor = version.strip_prefix("2.").and_then(|v| v.split('.').next()).and_then(|v| v.parse::<u8>().ok());
    if !minor.is_some_and(|n| (1..=9).contains(&n)) {
        return Err(MapError::Reject(err(
            ErrorCode::UnsupportedVersion,
            Location::field("MSH", 1, 12),
            format!("MSH-12 version '{version}' is not supported (rule: 2.1 to 2.9)"),
        )));
    }
    let processing = m.processing_id();
    if !["P", "T", "D"].contains(&processing.as_str()) {
        warnings.push(err(
            ErrorCode::UnsupportedProcessingId,
            Location::field("MSH", 1, 11),
            "MSH-11 is not a processing id (rule: P, T or D): the message was processed as P",
        ));
    }
    let (code, event) = (m.message_code(), m.trigger());
    // HL7 nulls (`""`) mean "no value": read as empty, and for the patient, remembered
    // as deletions.
    let cleaned;
    let (m, nulls) = if m.has_nulls() {
        let mut copy = m.clone();
        let nulls = copy.clear_nulls();
        cleaned = copy;
        (&cleaned, nulls)
    } else {
        (m, Vec::new())
    };
    let numbered = |prefix: char, low: u32, high: u32| {
        event.strip_prefix(prefix).and_then(|n| n.parse::<u32>().ok()).is_some_and(|n| (low..=high).contains(&n))
    };
    let event_as = |mapped_as: &str| {
        err(
            ErrorCode::UnsupportedEvent,
            Location::component("MSH", 1, 9, 2),
            format!("MSH-9 event '{code}^{event}' was processed as {code}^{mapped_as}"),
        )
    };
    let mapped = match (code.as_str(), event.as_str()) {
        ("ADT", "A40") => map_merge(m, ch),
        ("ADT", e) if ADT_EVENTS.contains(&e) => map_adt(m, ch, e, &nulls),
        // Any other ADT event (swap, link, merge of identifiers …) still says who the
        // patient is now.
        ("ADT", _) => map_adt(m, ch, "A31", &nulls).map(|mut x| {
            x.warnings.push(err(
                ErrorCode::UnsupportedEvent,
                Location::component("MSH", 1, 9, 2),
                format!("MSH-9 event 'ADT^{event}' is not mapped beyond the patient: the patient was updated, the event was not recorded"),
            ));
            x.summary = x.summary.replacen("ADT^A31", &format!("ADT^{event}"), 1);
            x
        }),
        ("ORU", e) if ORU_EVENTS.contains(&e) || e.is_empty() => {
            if e != "R01" {
                warnings.push(event_as("R01"));
            }
            map_oru(m, ch)
        }
        ("ORM", "O01") | ("OML", "O21") => map_order(m, ch, &format!("{code}^{event}")),
        ("OML", e) if OML_EVENTS.contains(&e) => map_order(m, ch, &format!("{code}^{event}")),
        ("SIU", e) if SIU_EVENTS.contains(&e) => map_schedule(m, ch, e),
        ("SIU", "S16") => {
            warnings.push(event_as("S15"));
            map_schedule(m, ch, "S15")
        }
        ("SIU", _) if numbered('S', 17, 25) => {
            warnings.push(event_as("S14"));
            map_schedule(m, ch, "S14")
        }
        ("ORU", e) | ("ORM", e) | ("OML", e) | ("SIU", e) => Err(MapError::Reject(err(
            ErrorCode::UnsupportedEvent,
            Location::component("MSH", 1, 9, 2),
            format!(
                "MSH-9 event '{code}^{e}' is not supported (rule: any ADT event, ORU^R01/R21/R30/R31/R32, \
                 ORM^O01, OML^O21/O33/O35/O39/O59, SIU^S12 to S26)"
            ),
        ))),
        _ => Err(MapError::Reject(err(
            ErrorCode::UnsupportedMessageType,
            Location::component("MSH", 1, 9, 1),
            format!("MSH-9 message type '{code}' is not supported (rule: ADT, ORU, ORM, OML or SIU)"),
        ))),
    };
    mapped.map(|mut x| {
        warnings.append(&mut x.warnings);
        x.warnings = warnings;
        x
    })
}

/// A name from a message (an application, an assigning authority) as one segment of
/// a URN: lower case, with anything but letters, digits, `.`, `-` and `_`
/// percent-encoded (`GHH LAB` → `ghh%20lab`), so every sender's system is a valid URI
/// and distinct names stay distinct.
pub fn urn_part(name: &str) -> String {
    percent_encoded(&name.trim().to_lowercase(), b"-._")
}

/// What a message is known by: its control id (MSH-10), else (a sender that leaves
/// MSH-10 empty) `#` and the start of its [`content_digest`]. The listener's duplicate
/// check and the mapping's order and report numbers of last resort both use it.
pub fn message_key(m: &Message) -> String {
    let id = m.control_id();
    if !id.is_empty() {
        return id;
    }
    format!("#{}", &content_digest(&m.encode())[..24])
}

/// The SHA-256 of a message's text (hex) but MSH-7, which some senders stamp anew
/// when they resend: a resend has the same one, another message reusing a control id
/// has not.
pub fn content_digest(text: &str) -> String {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    let (first, rest) = text.split_at(text.find(['\r', '\n']).unwrap_or(text.len()));
    match first.get(3..4) {
        Some(sep) if first.starts_with("MSH") => {
            for (i, field) in first.split(sep).enumerate() {
                if i != 6 {
                    hash.update(field.as_bytes());
                }
                hash.update(sep.as_bytes());
            }
        }
        _ => hash.update(first.as_bytes()),
    }
    hash.update(rest.as_bytes());
    const HEX: &[u8; 16] = b"0123456789abcdef";
    hash.finalize().iter().flat_map(|b| [HEX[usize::from(b >> 4)] as char, HEX[usize::from(b & 15)] as char]).collect()
}

/// A transaction under construction; entries get `urn:uuid:` full URLs so later
/// entries can point at earlier ones.
struct Tx {
    entries: Vec<Value>,
}

/// A JSON object of these members, moved in: `json!` would copy every `Value` it is
/// given through serde, which dominated the mapping's time.
fn obj<const N: usize>(members: [(&str, Value); N]) -> Value {
    Value::Object(members.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

impl Tx {
    fn next_url(&self) -> String {
        format!("urn:uuid:00000000-0000-4000-8000-{:012x}", self.entries.len() + 1)
    }

    /// Creates or replaces the resource whose identifier is `system|value`.
    fn upsert(&mut self, resource: Value, system: &str, value: &str) -> String {
        let url = self.next_url();
        let rtype = resource["resourceType"].as_str().unwrap_or_default().to_string();
        let request = json!({"method": "PUT", "url": format!("{rtype}?identifier={}", query_token(system, value))});
        self.entries.push(obj([("fullUrl", Value::String(url.clone())), ("resource", resource), ("request", request)]));
        url
    }

    /// Creates the resource unless one with identifier `system|value` exists.
    fn ensure(&mut self, resource: Value, system: &str, value: &str) -> String {
        let url = self.next_url();
        let rtype = resource["resourceType"].as_str().unwrap_or_default().to_string();
        let request = json!({"method": "POST", "url": rtype, "ifNoneExist": format!("identifier={}", query_token(system, value))});
        self.entries.push(obj([("fullUrl", Value::String(url.clone())), ("resource", resource), ("request", request)]));
        url
    }

    fn bundle(self) -> Value {
        obj([("resourceType", "Bundle".into()), ("type", "transaction".into()), ("entry", Value::Array(self.entries))])
    }
}

/// `system|value` as a URL query value (FHIR escapes, then percent-encoding).
fn query_token(system: &str, value: &str) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('|', "\\|").replace(',', "\\,").replace('$', "\\$");
    percent_encoded(&format!("{}|{}", esc(system), esc(value)), b"-._~:/|")
}

/// `raw` with every byte but ASCII letters, digits and `keep` percent-encoded.
fn percent_encoded(raw: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A coding system named in a CE/CWE's third component.
fn code_system(name: &str, order_system: &str) -> String {
    match name.to_ascii_uppercase().as_str() {
        "LN" | "LOINC" => LOINC.into(),
        "SCT" | "SNM" | "SNOMED" | "SNOMEDCT" => "http://snomed.info/sct".into(),
        "UCUM" => UCUM.into(),
        "I10" | "ICD10" | "I10C" => "http://hl7.org/fhir/sid/icd-10".into(),
        "" => format!("{order_system}:code"),
        other => format!("{order_system}:code:{}", urn_part(other)),
    }
}

/// A CE/CWE (code^text^system) in repetition `rep` of `field`, as a CodeableConcept.
fn concept(seg: &Segment, field: usize, rep: usize, ch: &Channel) -> Option<Value> {
    let code = seg.rep_component(field, rep, 1);
    let text = seg.rep_component(field, rep, 2);
    if code.is_empty() && text.is_empty() {
        return None;
    }
    let mut cc = Map::new();
    if !code.is_empty() {
        let mut coding =
            json!({"system": code_system(&seg.rep_component(field, rep, 3), &ch.order_system), "code": code});
        if !text.is_empty() {
            coding["display"] = json!(text);
        }
        cc.insert("coding".into(), Value::Array(vec![coding]));
    }
    if !text.is_empty() {
        cc.insert("text".into(), json!(text));
    }
    Some(Value::Object(cc))
}

fn is_cjk(s: &str) -> bool {
    s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

fn required_pid(m: &Message) -> Result<&Segment, MapError> {
    m.segment("PID").ok_or_else(|| {
        MapError::Invalid(vec![err(
            ErrorCode::SegmentSequence,
            Location { segment: "PID".into(), sequence: 1, ..Default::default() },
            "the message has no PID segment",
        )])
    })
}

/// A DTM field as a FHIR dateTime, or AE 102 naming `segment-field`.
fn dtm_at(raw: &str, offset: &str, segment: &str, field: usize) -> Result<String, MapError> {
    date_time(raw, offset).ok_or_else(|| {
        MapError::Invalid(vec![err(
            ErrorCode::DataType,
            Location::field(segment, 1, field),
            format!("{segment}-{field} '{raw}' is not a date/time (rule: YYYYMMDDHHMM[SS][+ZZZZ])"),
        )])
    })
}

fn pl_display(seg: &Segment, field: usize) -> Option<String> {
    let place: Vec<String> = (1..=4).map(|c| seg.component(field, c)).filter(|s| !s.is_empty()).collect();
    (!place.is_empty()).then(|| place.join(" "))
}

/// An XCN (id^family^given) as a Reference by staff number.
fn staff(seg: &Segment, field: usize) -> Option<Value> {
    let id = seg.component(field, 1);
    let name = format!("{}{}", seg.component(field, 2), seg.component(field, 3));
    if id.is_empty() && name.is_empty() {
        return None;
    }
    let mut r = json!({});
    if !id.is_empty() {
        r["identifier"] = json!({"system": STAFF_ID_SYSTEM, "value": id});
    }
    if !name.is_empty() {
        r["display"] = json!(name);
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel() -> Channel {
        Channel {
            mrn_system: "urn:lianyi:sid:mrn:campus-east".into(),
            visit_system: "urn:lianyi:sid:visit:campus-east".into(),
            order_system: "urn:lianyi:sid:order:lis".into(),
            appointment_system: "urn:lianyi:sid:appointment:his".into(),
            utc_offset: "+08:00".into(),
            profile: Pid3Profile::default(),
            now_ms: 1_795_000_000_000,
        }
    }

    fn parse(text: &str) -> Message {
        Message::parse(text).unwrap()
    }

    fn sample(file: &str) -> Mapped {
        let text = std::fs::read_to_string(format!("{}/../../tests/hl7/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        map_message(&parse(&text), &channel()).unwrap()
    }

    fn resource(m: &Mapped, i: usize) -> &Value {
        &m.bundle["entry"][i]["resource"]
    }

    #[test]
    fn adt_events_move_the_visit_through_transfer_discharge_and_cancels() {
        let a02 = sample("adt_a02.hl7");
        let e = resource(&a02, 1);
        assert_eq!(e["status"], "in-progress");
        assert_eq!(e["location"][0], json!({"location": {"display": "ICU 0102 03 EAST"}, "status": "active"}));
        assert_eq!(e["location"][1], json!({"location": {"display": "CARD 0301 01 EAST"}, "status": "completed"}));
        assert_eq!(e["period"], json!({"start": "2026-11-22T08:00:00+08:00"}), "a transfer does not restart the visit");
        let a03 = sample("adt_a03.hl7");
        let e = resource(&a03, 1);
        assert_eq!(e["status"], "finished");
        assert_eq!(e["period"]["end"], "2026-11-25T10:00:00+08:00", "EVN-2 of a discharge ends the visit");
        assert_eq!(e["location"][0]["status"], "completed");
        let a13 = sample("adt_a13.hl7");
        assert_eq!(resource(&a13, 1)["status"], "in-progress");
        assert!(resource(&a13, 1)["period"].get("end").is_none(), "a cancelled discharge reopens the visit");
        let a11 = sample("adt_a11.hl7");
        assert_eq!(resource(&a11, 1)["status"], "cancelled");
        assert_eq!(
            a11.bundle["entry"][1]["request"]["url"],
            "Encounter?identifier=urn:lianyi:sid:visit:campus-east|V0002"
        );
        assert_eq!(a11.summary, "ADT^A11: patient E100234, visit V0002 cancelled");
        let a40 = sample("adt_a40.hl7");
        assert_eq!(a40.merge, Some(("urn:lianyi:sid:mrn:campus-east".to_string(), "E100999".to_string())));
        assert_eq!(a40.summary, "ADT^A40: patient E100999 merged into E100234");
        let bad = "MSH|^~\\&|HIS|EAST|LIANYI|GROUP|20261122||ADT^A40|M1|P|2.5\rPID|1||E1^^^EAST^MR||A^B\r";
        let Err(MapError::Invalid(errs)) = map_message(&parse(bad), &channel()) else { panic!("expected AE") };
        assert_eq!(errs[0].location.as_ref().unwrap().segment, "MRG");
        let same = format!("{bad}MRG|E1^^^EAST^MR\r");
        let Err(MapError::Invalid(errs)) = map_message(&parse(&same), &channel()) else { panic!("expected AE") };
        assert_eq!(errs[0].location, Some(Location::field("MRG", 1, 1)));
    }

    #[test]
    fn orders_become_service_requests() {
        let orm = sample("orm_o01.hl7");
        assert_eq!(orm.bundle["entry"][0]["request"]["method"], "POST", "orders do not overwrite demographics");
        let sr = resource(&orm, 1);
        assert_eq!(
            orm.bundle["entry"][1]["request"]["url"],
            "ServiceRequest?identifier=urn:lianyi:sid:order:lis|ORD7001"
        );
        assert_eq!(
            (sr["status"].as_str(), sr["intent"].as_str(), sr["priority"].as_str()),
            (Some("active"), Some("order"), Some("stat"))
        );
        assert_eq!(sr["code"]["coding"][0], json!({"system": LOINC, "code": "2823-3", "display": "Potassium"}));
        assert_eq!(sr["identifier"][0]["type"]["coding"][0]["code"], "PLAC");
        assert_eq!(sr["authoredOn"], "2026-11-23T09:55:00+08:00");
        assert_eq!(
            sr["requester"],
            json!({"identifier": {"system": STAFF_ID_SYSTEM, "value": "D001"}, "display": "李明"})
        );
        assert_eq!(sr["reasonCode"][0]["coding"][0]["system"], "http://hl7.org/fhir/sid/icd-10");
        assert_eq!(sr["category"][0]["coding"][0]["code"], "LAB");
        assert_eq!(sr["note"][0]["text"], "Draw before the next dose");
        let oml = sample("oml_o21.hl7");
        assert_eq!(resource(&oml, 1)["status"], "active");
        assert_eq!(resource(&oml, 1)["priority"], "routine");
        assert_eq!(resource(&oml, 2)["status"], "revoked", "ORC-1 CA cancels ORD7001");
        assert_eq!(oml.summary, "OML^O21: patient E100234, 2 order(s) active, revoked");
        let bad = "MSH|^~\\&|HIS|EAST|LIANYI|GROUP|20261122||ORM^O01|M1|P|2.3\rPID|1||E1^^^EAST^MR\rORC|NW|X1\r";
        let Err(MapError::Invalid(errs)) = map_message(&parse(bad), &channel()) else { panic!("expected AE") };
        assert!(errs[0].message.contains("followed by its OBR"), "{errs:?}");
        // An order control this hub does not map: stored with status unknown, and a
        // warning; an OBR without its ORC and without order numbers still lands.
        let odd = "MSH|^~\\&|HIS|EAST|LIANYI|GROUP|20261122||ORM^O01|M1|P|2.3\rPID|1||E1^^^EAST^MR\rORC|ZZ|X1\rOBR|1|X1||A^B\r";
        let m = map_message(&parse(odd), &channel()).unwrap();
        assert_eq!(resource(&m, 1)["status"], "unknown");
        assert_eq!(m.warnings[0].location, Some(Location::field("ORC", 1, 1)));
        let bare = "MSH|^~\\&|HIS|EAST|LIANYI|GROUP|20261122||ORM^O01|M2|P|2.2\rPID|1||E1^^^EAST^MR\rOBR|1|||A^B\rOBR|2|P2||C^D\r";
        let m = map_message(&parse(bare), &channel()).unwrap();
        assert_eq!(resource(&m, 1)["identifier"][0]["value"], "M2-1", "known by the control id");
        assert_eq!(resource(&m, 2)["identifier"][0]["value"], "P2");
    }

    #[test]
    fn schedules_become_appointments() {
        let s12 = sample("siu_s12.hl7");
        let a = resource(&s12, 1);
        assert_eq!(
            s12.bundle["entry"][1]["request"]["url"],
            "Appointment?identifier=urn:lianyi:sid:appointment:his|APT-F-88"
        );
        assert_eq!(a["status"], "booked");
        assert_eq!(a["start"], "2026-12-01T09:00:00+08:00");
        assert_eq!(a["end"], "2026-12-01T09:30:00+08:00");
        assert_eq!(a["minutesDuration"], 30);
        assert_eq!(a["serviceType"][0]["text"], "Cardiology clinic");
        assert_eq!(a["participant"].as_array().unwrap().len(), 3);
        assert_eq!(a["participant"][1]["actor"]["display"], "李明");
        assert_eq!(a["participant"][2]["actor"]["display"], "CARD 0201 EAST");
        assert_eq!(a["comment"], "Bring previous ECG");
        // No end given: start + duration (R4 app-2), as an instant.
        let timed = "MSH|^~\\&|HIS|EAST|LIANYI|GROUP|20261122||SIU^S12|M2|P|2.5\rSCH|A2|F2||||||||||||||||||||||||Booked\rPID|1||E1^^^EAST^MR\rAIS|1||X^Clinic|202612010900|||45|min\r";
        let a = map_message(&parse(timed), &channel()).unwrap();
        assert_eq!(resource(&a, 1)["end"], "2026-12-01T01:45:00.000Z");
        let s15 = sample("siu_s15.hl7");
        assert_eq!(resource(&s15, 1)["status"], "cancelled");
        let bad = "MSH|^~\\&|HIS|EAST|LIANYI|GROUP|20261122||SIU^S12|M1|P|2.5\rSCH|A1|F1\rPID|1||E1^^^EAST^MR\r";
        let Err(MapError::Invalid(errs)) = map_message(&parse(bad), &channel()) else { panic!("expected AE") };
        assert_eq!(errs[0].location, Some(Location::component("SCH", 1, 11, 4)));
    }

    const MSH_A04: &str = "MSH|^~\\&|HIS|EAST|LIANYI|GROUP|20261122||ADT^A04^ADT_A01|R1|P|2.5.1\r";

    fn warned(m: &Mapped) -> Vec<(String, usize)> {
        m.warnings
            .iter()
            .map(|w| w.location.as_ref().map(|l| (l.segment.clone(), l.field)).unwrap_or_default())
            .collect()
    }

    #[test]
    fn a_registration_without_a_visit_number_registers_the_patient_with_a_warning() {
        for event in ["A01", "A04", "A05", "A08"] {
            let text = format!(
                "MSH|^~\\&|HIS|EAST|LIANYI|GROUP|20261122||ADT^{event}|R1|P|2.5.1\rPID|1||E7^^^EAST^MR||王^五||19800101|F\rPV1|1|O|CLINIC\r"
            );
            let m = map_message(&parse(&text), &channel()).unwrap();
            let types: Vec<&str> = m.bundle["entry"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["resource"]["resourceType"].as_str().unwrap())
                .collect();
            assert_eq!(types, ["Patient"], "{event}: the patient only");
            assert_eq!(warned(&m), [("PV1".to_string(), 19)], "{event}");
            assert!(m.warnings[0].message.contains("no visit was recorded"));
        }
        // Person-only events never record a visit, and say nothing of it.
        let a28 = "MSH|^~\\&|HIS|EAST|LIANYI|GROUP|20261122||ADT^A28|R2|P|2.5.1\rPID|1||E8^^^EAST^MR||赵^六\rPV1|1|N|||||||||||||||||V9\r";
        let m = map_message(&parse(a28), &channel()).unwrap();
        assert_eq!(m.bundle["entry"].as_array().unwrap().len(), 1);
        assert!(m.warnings.is_empty());
        // A discharge without its visit number updates the patient and says the
        // discharge was not recorded.
        let a03 = "MSH|^~\\&|HIS|EAST|LIANYI|GROUP|20261122||ADT^A03|R3|P|2.5.1\rPID|1||E7^^^EAST^MR||王^五\rPV1|1|I\r";
        let m = map_message(&parse(a03), &channel()).unwrap();
        assert_eq!(m.bundle["entry"].as_array().unwrap().len(), 1);
        assert!(m.warnings[0].message.contains("the visit change of ADT^A03 was not recorded"), "{:?}", m.warnings);
    }

    #[test]
    fn the_hl7_null_is_no_value_and_deletes_on_an_update() {
        let text = format!("{MSH_A04}PID|1||E7^^^EAST^MR||王^五||\"\"|\"\"|||\"\"\rPV1|1|O|||||||||||||||||\"\"\r");
        let m = map_message(&parse(&text), &channel()).unwrap();
        let p = resource(&m, 0);
        assert!(p.get("birthDate").is_none() && p.get("gender").is_none() && p.get("address").is_none());
        assert_eq!(m.cleared, ["birthDate", "gender", "address"]);
        assert_eq!(warned(&m), [("PV1".to_string(), 19)], "PV1-19 \"\" is no visit number");
        // A null component is empty too; an empty field is "not sent", not a deletion.
        let text = format!("{MSH_A04}PID|1||E7^^^EAST^MR||王^五||19800101||||^^\"\"^^100000\r");
        let m = map_message(&parse(&text), &channel()).unwrap();
        assert_eq!(resource(&m, 0)["address"][0], json!({"postalCode": "100000"}));
        assert!(m.cleared.is_empty());
    }

    #[test]
    fn pid3_without_an_mr_type_takes_the_first_repetition_or_what_the_profile_says() {
        let text = format!("{MSH_A04}PID|1||P123^^^EAST^PI~990101199001010019^^^CHN^NNCHN||王^五||19900101|M\r");
        let m = map_message(&parse(&text), &channel()).unwrap();
        assert_eq!(m.bundle["entry"][0]["request"]["url"], "Patient?identifier=urn:lianyi:sid:mrn:campus-east|P123");
        assert_eq!(warned(&m), [("PID".to_string(), 3), ("PV1".to_string(), 0)], "no MR; no PV1 at all");
        // A profile: the MRN is the PT of authority WEST, which means campus-west.
        let mut ch = channel();
        ch.profile = Pid3Profile {
            mrn_type: Some("PT".into()),
            mrn_authority: None,
            campuses: [("WEST".to_string(), lianyi_security::CampusId::parse("campus-west").unwrap())].into(),
        };
        let text = format!("{MSH_A04}PID|1||X9^^^LAB^PI~W55^^^WEST^PT||王^五\r");
        let m = map_message(&parse(&text), &ch).unwrap();
        assert_eq!(m.bundle["entry"][0]["request"]["url"], "Patient?identifier=urn:lianyi:sid:mrn:campus-west|W55");
        assert_eq!(warned(&m), [("PV1".to_string(), 0)], "no PID-3 warning with a profile");
        let text = format!("{MSH_A04}PID|1||X9^^^LAB^PI||王^五\r");
        let Err(MapError::Invalid(errs)) = map_message(&parse(&text), &ch) else { panic!("expected AE") };
        assert!(errs[0].message.contains("type PT"), "{}", errs[0].message);
    }

    #[test]
    fn a_result_keeps_its_values_when_a_demographic_field_cannot_be_read() {
        let text = "MSH|^~\\&|LIS|EAST|LIANYI|GROUP|20261122||ORU^R01|O1|P|2.5.1\r\
                    PID|1||E7^^^EAST^MR~990101199001010015^^^CHN^NNCHN||王^五||19901399|Q\r\
                    OBR|1||L1|2823-3^K^LN\rOBX|1|NM|2823-3^K^LN||4.2|mmol/L\r";
        let m = map_message(&parse(text), &channel()).unwrap();
        let p = resource(&m, 0);
        assert!(p.get("birthDate").is_none() && p.get("gender").is_none());
        assert_eq!(p["identifier"].as_array().unwrap().len(), 1, "the bad resident ID is left out");
        assert_eq!(resource(&m, 1)["valueQuantity"]["value"], 4.2);
        assert_eq!(warned(&m), [("PID".to_string(), 3), ("PID".to_string(), 7), ("PID".to_string(), 8)]);
        assert!(m.warnings.iter().all(|w| w.message.ends_with("it was left out")));
        assert!(!m.warnings.iter().any(|w| w.message.contains("19901399")), "no patient data in the log text");
        // Clinical content stays strict.
        let bad = text.replace("||4.2|", "||high|");
        let Err(MapError::Invalid(errs)) = map_message(&parse(&bad), &channel()) else { panic!("expected AE") };
        assert_eq!(errs[0].location, Some(Location::field("OBX", 1, 5)));
        // The same fields in a registration are errors: it is the record itself.
        let a04 = format!("{MSH_A04}PID|1||E7^^^EAST^MR~990101199001010015^^^CHN^NNCHN||王^五||19900101|M\r");
        let Err(MapError::Invalid(errs)) = map_message(&parse(&a04), &channel()) else { panic!("expected AE") };
        assert_eq!(errs[0].location, Some(Location { repetition: 2, ..Location::field("PID", 1, 3) }));
        assert!(errs[0].message.contains("ISO 7064"), "{}", errs[0].message);
    }

    #[test]
    fn a_birth_date_with_a_time_and_a_resident_id_that_disagrees() {
        let text = format!("{MSH_A04}PID|1||E7^^^EAST^MR||王^五||199001010830|M\r");
        let m = map_message(&parse(&text), &channel()).unwrap();
        assert_eq!(resource(&m, 0)["birthDate"], "1990-01-01", "PID-7 is a DTM: the time is dropped");
        let text = format!("{MSH_A04}PID|1||E7^^^EAST^MR~990101199001010019^^^CHN^NNCHN||王^五||19900102|M\r");
        let Err(MapError::Invalid(errs)) = map_message(&parse(&text), &channel()) else { panic!("expected AE") };
        assert_eq!(errs[0].location, Some(Location::field("PID", 1, 7)));
    }

    #[test]
    fn dates_and_times() {
        let o = "+08:00";
        assert_eq!(date_time("19900101", o).as_deref(), Some("1990-01-01"));
        assert_eq!(date_time("202611220830", o).as_deref(), Some("2026-11-22T08:30:00+08:00"));
        assert_eq!(date_time("20261122083015.25-0500", o).as_deref(), Some("2026-11-22T08:30:15.25-05:00"));
        assert_eq!(date_time("20261322", o), None);
        assert_eq!(date_time("2026112", o), None);
        assert_eq!(date_time("2026112225", o), None);
    }

    #[test]
    fn oru_becomes_report_and_observations() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/hl7/oru_r01.hl7")).unwrap();
        let mapped = map_message(&parse(&text), &channel()).unwrap();
        let entries = mapped.bundle["entry"].as_array().unwrap();
        let types: Vec<&str> = entries.iter().map(|e| e["resource"]["resourceType"].as_str().unwrap()).collect();
        assert_eq!(types, ["Patient", "Observation", "Observation", "DiagnosticReport"]);
        assert_eq!(entries[0]["request"]["ifNoneExist"], "identifier=urn:lianyi:sid:mrn:campus-east|E100234");
        let k = &entries[1]["resource"];
        assert_eq!(k["valueQuantity"], json!({"unit": "mmol/L", "system": UCUM, "code": "mmol/L", "value": 6.8}));
        assert_eq!(k["code"]["coding"][0]["system"], LOINC);
        assert_eq!(k["referenceRange"][0]["low"]["value"], 3.5);
        assert_eq!(k["referenceRange"][0]["high"]["value"], 5.3);
        assert_eq!(k["interpretation"][0]["coding"][0]["code"], "HH");
        assert_eq!(k["effectiveDateTime"], "2026-11-22T09:00:00+08:00");
        assert_eq!(k["device"], json!({"identifier": {"value": "CHEM-E1"}, "display": "CHEM-E1"}), "OBX-18");
        assert!(entries[2]["resource"].get("device").is_none());
        assert_eq!(k["subject"]["reference"], entries[0]["fullUrl"]);
        assert_eq!(entries[1]["request"]["url"], "Observation?identifier=urn:lianyi:sid:order:lis|LAB0001-1");
        assert_eq!(entries[2]["resource"]["note"][0]["text"], "Critical value & phoned to ward");
        let report = &entries[3]["resource"];
        assert_eq!(report["result"][1]["reference"], entries[2]["fullUrl"]);
        assert_eq!(report["status"], "final");
        assert_eq!(mapped.summary, "ORU^R01: patient E100234, 2 observation(s)");
    }

    #[test]
    fn adt_becomes_patient_and_encounter() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/hl7/adt_a01.hl7")).unwrap();
        let mapped = map_message(&parse(&text), &channel()).unwrap();
        let entries = mapped.bundle["entry"].as_array().unwrap();
        let p = &entries[0]["resource"];
        assert_eq!(entries[0]["request"]["url"], "Patient?identifier=urn:lianyi:sid:mrn:campus-east|E100234");
        assert_eq!(p["identifier"][1], json!({"system": RESIDENT_ID_SYSTEM, "value": "990101199001010019"}));
        assert_eq!(p["name"][0], json!({"family": "张", "given": ["三"], "text": "张三", "use": "official"}));
        assert_eq!(p["name"][1]["use"], "usual");
        assert_eq!((p["birthDate"].as_str(), p["gender"].as_str()), (Some("1990-01-01"), Some("male")));
        assert_eq!(p["address"][0]["city"], "北京");
        assert_eq!(p["telecom"][0], json!({"system": "phone", "value": "13800000000", "use": "home"}));
        let e = &entries[1]["resource"];
        assert_eq!(e["class"]["code"], "IMP");
        assert_eq!(e["period"]["start"], "2026-11-22T08:00:00+08:00");
        assert_eq!(e["location"][0]["location"]["display"], "CARD 0301 01 EAST");
        assert_eq!(e["participant"][0]["individual"]["display"], "李明");
        assert_eq!(entries[1]["request"]["url"], "Encounter?identifier=urn:lianyi:sid:visit:campus-east|V0001");
    }

    #[test]
    fn content_errors_name_the_field() {
        let bad = "MSH|^~\\&|LIS|EAST|LIANYI|GROUP|20261122||ORU^R01|X1|P|2.5.1\rPID|1||^^^EAST^MR\rOBR|1||F1|2823-3^K^LN\rOBX|1|NM|2823-3^K^LN||high|mmol/L\r";
        let Err(MapError::Invalid(errs)) = map_message(&parse(bad), &channel()) else { panic!("expected AE") };
        assert_eq!(errs[0].location, Some(Location::field("PID", 1, 3)));
        let bad = bad.replace("^^^EAST^MR", "E1^^^EAST^MR");
        let Err(MapError::Invalid(errs)) = map_message(&parse(&bad), &channel()) else { panic!("expected AE") };
        assert_eq!((errs[0].code, errs[0].location.clone()), (ErrorCode::DataType, Some(Location::field("OBX", 1, 5))));
        // A registration without a name is kept, with a warning (a stored name stays).
        let adt = "MSH|^~\\&|HIS|EAST|LIANYI|GROUP|20261122||ADT^A01|X2|P|2.5\rPID|1||E1^^^EAST^MR||^^\rPV1|1|I\r";
        let m = map_message(&parse(adt), &channel()).unwrap();
        assert_eq!(m.warnings[0].location, Some(Location::field("PID", 1, 5)));
    }

    #[test]
    fn unsupported_types_versions_and_processing_ids_are_rejected() {
        let msg = |t: &str, v: &str, p: &str| {
            parse(&format!("MSH|^~\\&|A|B|C|D|20261122||{t}|X|{p}|{v}\rPID|1||E1^^^EAST^MR||王^五\r"))
        };
        let code = |r: Result<Mapped, MapError>| match r {
            Err(MapError::Reject(e)) => e.code,
            other => panic!("expected AR, got {other:?}"),
        };
        assert_eq!(code(map_message(&msg("MDM^T02", "2.5", "P"), &channel())), ErrorCode::UnsupportedMessageType);
        assert_eq!(code(map_message(&msg("SIU^S99", "2.5", "P"), &channel())), ErrorCode::UnsupportedEvent);
        assert_eq!(code(map_message(&msg("ADT^A01", "3.0", "P"), &channel())), ErrorCode::UnsupportedVersion);
        assert_eq!(code(map_message(&msg("ADT^A01", "1.0", "P"), &channel())), ErrorCode::UnsupportedVersion);
        // Processed, with a warning: an unknown processing id, an old version, an ADT
        // event mapped only as far as the patient, a result without its event.
        let warned = |r: Result<Mapped, MapError>| r.unwrap().warnings.into_iter().map(|w| w.code).collect::<Vec<_>>();
        assert!(
            warned(map_message(&msg("ADT^A28", "2.5", "Q"), &channel())).contains(&ErrorCode::UnsupportedProcessingId)
        );
        assert!(!warned(map_message(&msg("ADT^A28", "2.2", "P"), &channel())).contains(&ErrorCode::UnsupportedVersion));
        assert!(warned(map_message(&msg("ADT^A17", "2.5", "P"), &channel())).contains(&ErrorCode::UnsupportedEvent));
    }
}
