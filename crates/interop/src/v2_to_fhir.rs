//! HL7 v2 → FHIR R4: ADT^A01/A02/A03/A04/A08/A11/A13 (Patient, Encounter: admit,
//! transfer, discharge, register, update, cancels), ADT^A40 (patient merge), ORU^R01
//! (DiagnosticReport, Observation), ORM^O01 and OML^O21 (ServiceRequest), SIU^S12 to
//! S15 and S26 (Appointment). Every write is conditional on a business identifier
//! (MRN, visit number, order number, appointment id), so a message applied twice
//! changes nothing new, and a corrected result (OBX-11 `C`) updates the same
//! Observation.

use lianyi_hl7::{ErrorCode, Hl7Error, Location, Message, Segment};
use lianyi_services::identifiers::{RESIDENT_ID_SYSTEM, STAFF_ID_SYSTEM};
use serde_json::{Map, Value, json};

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
}

/// Why a message is not applied: rejected (AR: type, version, processing id) or in
/// error (AE: its content).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapError {
    Reject(Hl7Error),
    Invalid(Vec<Hl7Error>),
}

const ADT_EVENTS: &[&str] = &["A01", "A02", "A03", "A04", "A08", "A11", "A13", "A40"];
const SIU_EVENTS: &[&str] = &["S12", "S13", "S14", "S15", "S26"];
const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";

fn err(code: ErrorCode, loc: Location, message: impl Into<String>) -> Hl7Error {
    Hl7Error { code, location: Some(loc), message: message.into() }
}

/// Checks MSH, then maps by message type.
pub fn map_message(m: &Message, ch: &Channel) -> Result<Mapped, MapError> {
    let version = m.version();
    let supported = ["2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2"];
    if !supported.contains(&version.as_str()) {
        return Err(MapError::Reject(err(
            ErrorCode::UnsupportedVersion,
            Location::field("MSH", 1, 12),
            format!("MSH-12 version '{version}' is not supported (rule: 2.3 to 2.8)"),
        )));
    }
    let processing = m.processing_id();
    if !["P", "T", "D"].contains(&processing.as_str()) {
        return Err(MapError::Reject(err(
            ErrorCode::UnsupportedProcessingId,
            Location::field("MSH", 1, 11),
            format!("MSH-11 processing id '{processing}' is not supported (rule: P, T or D)"),
        )));
    }
    let (code, event) = (m.message_code(), m.trigger());
    match (code.as_str(), event.as_str()) {
        ("ADT", "A40") => map_merge(m, ch),
        ("ADT", e) if ADT_EVENTS.contains(&e) => map_adt(m, ch, e),
        ("ORU", "R01") => map_oru(m, ch),
        ("ORM", "O01") | ("OML", "O21") => map_order(m, ch, &format!("{code}^{event}")),
        ("SIU", e) if SIU_EVENTS.contains(&e) => map_schedule(m, ch, e),
        ("ADT", e) | ("ORU", e) | ("ORM", e) | ("OML", e) | ("SIU", e) => Err(MapError::Reject(err(
            ErrorCode::UnsupportedEvent,
            Location::component("MSH", 1, 9, 2),
            format!(
                "MSH-9 event '{code}^{e}' is not supported (rule: ADT^A01/A02/A03/A04/A08/A11/A13/A40, ORU^R01, \
                 ORM^O01, OML^O21, SIU^S12/S13/S14/S15/S26)"
            ),
        ))),
        _ => Err(MapError::Reject(err(
            ErrorCode::UnsupportedMessageType,
            Location::component("MSH", 1, 9, 1),
            format!("MSH-9 message type '{code}' is not supported (rule: ADT, ORU, ORM, OML or SIU)"),
        ))),
    }
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
    let raw = format!("{}|{}", esc(system), esc(value));
    let mut out = String::new();
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/|".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// HL7 DTM (`YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]`) as a FHIR date or dateTime; local
/// times without an offset get the channel's.
fn date_time(raw: &str, offset: &str) -> Option<String> {
    let raw = raw.trim();
    let (body, zone) = match raw.find(['+', '-']) {
        Some(i) if i >= 4 => (&raw[..i], Some(&raw[i..])),
        _ => (raw, None),
    };
    let (digits, fraction) = match body.split_once('.') {
        Some((d, f)) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => (d, Some(f)),
        Some(_) => return None,
        None => (body, None),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) || ![4, 6, 8, 10, 12, 14].contains(&digits.len()) {
        return None;
    }
    let d = |a: usize, b: usize| &digits[a..b];
    let month_ok = |m: &str| (1..=12).contains(&m.parse::<u32>().unwrap_or(0));
    let day_ok = |x: &str| (1..=31).contains(&x.parse::<u32>().unwrap_or(0));
    match digits.len() {
        4 => return Some(digits.to_string()),
        6 if month_ok(d(4, 6)) => return Some(format!("{}-{}", d(0, 4), d(4, 6))),
        8 if month_ok(d(4, 6)) && day_ok(d(6, 8)) => {
            return Some(format!("{}-{}-{}", d(0, 4), d(4, 6), d(6, 8)));
        }
        6 | 8 => return None,
        _ => {}
    }
    if !month_ok(d(4, 6)) || !day_ok(d(6, 8)) {
        return None;
    }
    let hh = d(8, 10);
    let mm = if digits.len() >= 12 { d(10, 12) } else { "00" };
    let ss = if digits.len() >= 14 { d(12, 14) } else { "00" };
    if hh.parse::<u32>().unwrap_or(99) > 23
        || mm.parse::<u32>().unwrap_or(99) > 59
        || ss.parse::<u32>().unwrap_or(99) > 59
    {
        return None;
    }
    let zone = match zone {
        Some(z) if z.len() == 5 && z[1..].bytes().all(|b| b.is_ascii_digit()) => format!("{}:{}", &z[..3], &z[3..]),
        Some(_) => return None,
        None => offset.to_string(),
    };
    let frac = fraction.map(|f| format!(".{f}")).unwrap_or_default();
    Some(format!("{}-{}-{}T{hh}:{mm}:{ss}{frac}{zone}", d(0, 4), d(4, 6), d(6, 8)))
}

/// A coding system named in a CE/CWE's third component.
fn code_system(name: &str, order_system: &str) -> String {
    match name.to_ascii_uppercase().as_str() {
        "LN" | "LOINC" => LOINC.into(),
        "SCT" | "SNM" | "SNOMED" | "SNOMEDCT" => "http://snomed.info/sct".into(),
        "UCUM" => UCUM.into(),
        "I10" | "ICD10" | "I10C" => "http://hl7.org/fhir/sid/icd-10".into(),
        "" => format!("{order_system}:code"),
        other => format!("{order_system}:code:{}", other.to_ascii_lowercase()),
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

/// The patient of a message (PID), and the identifier it is matched on.
fn patient(pid: &Segment, ch: &Channel) -> Result<(Value, String, String), Hl7Error> {
    let mut identifiers = Vec::new();
    let mut key = None;
    for rep in 1..=pid.repetitions(3).len() {
        let value = pid.rep_component(3, rep, 1);
        if value.is_empty() {
            continue;
        }
        let authority = pid.value(3, rep, 4, 1);
        let kind = pid.rep_component(3, rep, 5);
        let system = match kind.as_str() {
            "MR" | "" => ch.mrn_system.clone(),
            "NNCHN" | "NI" | "RI" | "CZ" => RESIDENT_ID_SYSTEM.to_string(),
            other => format!("urn:lianyi:sid:hl7:{}:{}", authority.to_ascii_lowercase(), other.to_ascii_lowercase()),
        };
        let mut id = json!({"system": system, "value": value});
        if kind == "MR" || kind.is_empty() {
            id["type"] = json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]});
            key.get_or_insert((system.clone(), value.clone()));
        }
        identifiers.push(id);
    }
    let Some((system, value)) = key else {
        return Err(err(
            ErrorCode::RequiredFieldMissing,
            Location::field("PID", 1, 3),
            "PID-3 must hold the patient's medical record number (type MR)",
        ));
    };
    let mut p = obj([("resourceType", "Patient".into()), ("identifier", Value::Array(identifiers))]);
    let mut names = Vec::new();
    for rep in 1..=pid.repetitions(5).len() {
        let family = pid.value(5, rep, 1, 1);
        let given = pid.rep_component(5, rep, 2);
        if family.is_empty() && given.is_empty() {
            continue;
        }
        let mut n = Map::new();
        if !family.is_empty() {
            n.insert("family".into(), json!(family));
        }
        if !given.is_empty() {
            n.insert("given".into(), json!([given]));
        }
        if is_cjk(&family) || is_cjk(&given) {
            n.insert("text".into(), json!(format!("{family}{given}")));
        }
        let usage = match pid.rep_component(5, rep, 7).as_str() {
            "L" => Some("official"),
            "A" | "D" => Some("usual"),
            "M" => Some("maiden"),
            "N" => Some("nickname"),
            _ => None,
        };
        if let Some(u) = usage {
            n.insert("use".into(), json!(u));
        }
        names.push(Value::Object(n));
    }
    if !names.is_empty() {
        p["name"] = Value::Array(names);
    }
    let birth = pid.first(7);
    if !birth.is_empty() {
        let date = date_time(&birth, &ch.utc_offset).filter(|d| d.len() <= 10).ok_or_else(|| {
            err(
                ErrorCode::DataType,
                Location::field("PID", 1, 7),
                format!("PID-7 '{birth}' is not a date (rule: YYYYMMDD)"),
            )
        })?;
        p["birthDate"] = json!(date);
    }
    let gender = match pid.first(8).as_str() {
        "M" => Some("male"),
        "F" => Some("female"),
        "O" | "A" => Some("other"),
        "U" | "N" => Some("unknown"),
        "" => None,
        other => {
            return Err(err(
                ErrorCode::TableValueNotFound,
                Location::field("PID", 1, 8),
                format!("PID-8 '{other}' is not a sex (rule: HL7 table 0001: M, F, O, U, A, N)"),
            ));
        }
    };
    if let Some(g) = gender {
        p["gender"] = json!(g);
    }
    let mut addresses = Vec::new();
    for rep in 1..=pid.repetitions(11).len() {
        let mut a = Map::new();
        let line = pid.value(11, rep, 1, 1);
        if !line.is_empty() {
            a.insert("line".into(), json!([line]));
        }
        for (comp, key) in [(3, "city"), (4, "state"), (5, "postalCode"), (6, "country")] {
            let v = pid.rep_component(11, rep, comp);
            if !v.is_empty() {
                a.insert(key.into(), json!(v));
            }
        }
        if !a.is_empty() {
            addresses.push(Value::Object(a));
        }
    }
    if !addresses.is_empty() {
        p["address"] = Value::Array(addresses);
    }
    let mut telecom = Vec::new();
    for (field, default_use) in [(13, "home"), (14, "work")] {
        for rep in 1..=pid.repetitions(field).len() {
            let equipment = pid.rep_component(field, rep, 3);
            let email = pid.rep_component(field, rep, 4);
            // XTN-12 (unformatted), XTN-1 (before v2.5), or area code + local number.
            let local = format!("{}{}", pid.rep_component(field, rep, 6), pid.rep_component(field, rep, 7));
            let number = [pid.rep_component(field, rep, 12), pid.rep_component(field, rep, 1), local]
                .into_iter()
                .find(|v| !v.is_empty());
            let (system, value) = match (equipment.as_str(), number) {
                ("Internet" | "X.400", _) if !email.is_empty() => ("email", email),
                (_, Some(n)) => ("phone", n),
                _ => continue,
            };
            let usage = if equipment == "CP" { "mobile" } else { default_use };
            telecom.push(json!({"system": system, "value": value, "use": usage}));
        }
    }
    if !telecom.is_empty() {
        p["telecom"] = Value::Array(telecom);
    }
    Ok((p, system, value))
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

/// What an ADT event does to the visit: its status, and whether EVN-2 (the event
/// time) starts or ends it.
fn adt_effect(event: &str) -> (&'static str, Option<&'static str>) {
    match event {
        "A01" | "A04" => ("in-progress", Some("start")),
        "A03" => ("finished", Some("end")),
        "A11" => ("cancelled", None),
        // A02 transfer, A08 update, A13 cancel discharge: the visit goes on.
        _ => ("in-progress", None),
    }
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

fn map_adt(m: &Message, ch: &Channel, event: &str) -> Result<Mapped, MapError> {
    let pid = required_pid(m)?;
    let (patient, psys, pval) = patient(pid, ch).map_err(|e| MapError::Invalid(vec![e]))?;
    if patient.get("name").is_none() {
        return Err(MapError::Invalid(vec![err(
            ErrorCode::RequiredFieldMissing,
            Location::field("PID", 1, 5),
            "PID-5 (patient name) is required in ADT messages",
        )]));
    }
    let mut tx = Tx { entries: Vec::new() };
    let subject = tx.upsert(patient, &psys, &pval);
    let mut summary = format!("ADT^{event}: patient {pval}");
    let pv1 = m.segment("PV1");
    if pv1.is_none() && event != "A04" && event != "A08" {
        return Err(MapError::Invalid(vec![err(
            ErrorCode::SegmentSequence,
            Location { segment: "PV1".into(), sequence: 1, ..Default::default() },
            format!("ADT^{event} needs a PV1 segment (the visit it changes)"),
        )]));
    }
    if let Some(pv1) = pv1 {
        let visit = pv1.first(19);
        if visit.is_empty() {
            return Err(MapError::Invalid(vec![err(
                ErrorCode::RequiredFieldMissing,
                Location::field("PV1", 1, 19),
                "PV1-19 (visit number) is required to record the encounter",
            )]));
        }
        let (class, display) = match pv1.first(2).as_str() {
            "I" => ("IMP", "inpatient encounter"),
            "E" => ("EMER", "emergency"),
            "P" => ("PRENC", "pre-admission"),
            _ => ("AMB", "ambulatory"),
        };
        let (mut status, evn_is) = adt_effect(event);
        let evn = m.segment("EVN").map(|e| e.first(2)).unwrap_or_default();
        let admitted = pv1.first(44);
        let discharged = pv1.first(45);
        let mut period = Map::new();
        // The visit starts at PV1-44, else at the event (EVN-2) of an admit or register.
        if !admitted.is_empty() {
            period.insert("start".into(), json!(dtm_at(&admitted, &ch.utc_offset, "PV1", 44)?));
        } else if evn_is == Some("start") && !evn.is_empty() {
            period.insert("start".into(), json!(dtm_at(&evn, &ch.utc_offset, "EVN", 2)?));
        }
        // It ends at PV1-45, else at the event of a discharge; not when the discharge
        // (A13) or the admission (A11) is being cancelled.
        if event != "A13" && event != "A11" {
            let end = if !discharged.is_empty() {
                Some(dtm_at(&discharged, &ch.utc_offset, "PV1", 45)?)
            } else if evn_is == Some("end") && !evn.is_empty() {
                Some(dtm_at(&evn, &ch.utc_offset, "EVN", 2)?)
            } else {
                None
            };
            if let Some(at) = end {
                period.insert("end".into(), json!(at));
                status = "finished";
            }
        }
        let mut enc = json!({
            "resourceType": "Encounter",
            "identifier": [{"system": ch.visit_system, "value": visit}],
            "status": status,
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": class, "display": display},
            "subject": {"reference": subject},
        });
        if !period.is_empty() {
            enc["period"] = Value::Object(period);
        }
        let mut locations = Vec::new();
        if let Some(place) = pl_display(pv1, 3) {
            let state = if status == "in-progress" { "active" } else { "completed" };
            locations.push(json!({"location": {"display": place}, "status": state}));
        }
        // A transfer names where the patient was (PV1-6).
        if let Some(prior) = pl_display(pv1, 6).filter(|_| event == "A02") {
            locations.push(json!({"location": {"display": prior}, "status": "completed"}));
        }
        if !locations.is_empty() {
            enc["location"] = Value::Array(locations);
        }
        let doctor = pv1.component(7, 1);
        if !doctor.is_empty() {
            let name = format!("{}{}", pv1.component(7, 2), pv1.component(7, 3));
            enc["participant"] = json!([{
                "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "ATND"}]}],
                "individual": {"identifier": {"system": STAFF_ID_SYSTEM, "value": doctor}, "display": name}
            }]);
        }
        let service = pv1.first(10);
        if !service.is_empty() {
            enc["serviceType"] = json!({"text": service});
        }
        tx.upsert(enc, &ch.visit_system, &visit);
        summary.push_str(&format!(", visit {visit} {status}"));
    }
    Ok(Mapped { bundle: tx.bundle(), summary, merge: None })
}

/// ADT^A40: PID is the surviving patient, MRG-1 the one merged into it.
fn map_merge(m: &Message, ch: &Channel) -> Result<Mapped, MapError> {
    let pid = required_pid(m)?;
    let (patient, psys, pval) = patient(pid, ch).map_err(|e| MapError::Invalid(vec![e]))?;
    let Some(mrg) = m.segment("MRG") else {
        return Err(MapError::Invalid(vec![err(
            ErrorCode::SegmentSequence,
            Location { segment: "MRG".into(), sequence: 1, ..Default::default() },
            "ADT^A40 needs an MRG segment (the patient merged away)",
        )]));
    };
    let retired = (1..=mrg.repetitions(1).len()).find_map(|rep| {
        let value = mrg.rep_component(1, rep, 1);
        let kind = mrg.rep_component(1, rep, 5);
        (!value.is_empty() && (kind == "MR" || kind.is_empty())).then_some(value)
    });
    let Some(retired) = retired else {
        return Err(MapError::Invalid(vec![err(
            ErrorCode::RequiredFieldMissing,
            Location::field("MRG", 1, 1),
            "MRG-1 must hold the merged patient's medical record number (type MR)",
        )]));
    };
    if retired == pval {
        return Err(MapError::Invalid(vec![err(
            ErrorCode::DataType,
            Location::field("MRG", 1, 1),
            "MRG-1 names the surviving patient itself",
        )]));
    }
    let mut tx = Tx { entries: Vec::new() };
    tx.upsert(patient, &psys, &pval);
    Ok(Mapped {
        bundle: tx.bundle(),
        summary: format!("ADT^A40: patient {retired} merged into {pval}"),
        merge: Some((ch.mrn_system.clone(), retired)),
    })
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

/// ORM^O01 and OML^O21: each ORC with its OBR → one ServiceRequest, keyed by the
/// placer order number (ORC-2, else OBR-2), else the filler's (ORC-3, else OBR-3).
fn map_order(m: &Message, ch: &Channel, kind: &str) -> Result<Mapped, MapError> {
    let pid = required_pid(m)?;
    let (patient, psys, pval) = patient(pid, ch).map_err(|e| MapError::Invalid(vec![e]))?;
    let mut tx = Tx { entries: Vec::new() };
    let subject = tx.ensure(patient, &psys, &pval);
    let mut errors = Vec::new();
    let (mut orc_seq, mut obr_seq) = (0usize, 0usize);
    // (ORC segment index, its request under construction)
    let mut current: Option<(usize, Option<(Value, String)>)> = None;
    let mut orders = Vec::new();
    let finish = |orders: &mut Vec<(Value, String)>,
                  cur: Option<(usize, Option<(Value, String)>)>,
                  errors: &mut Vec<Hl7Error>| {
        if let Some((seq, built)) = cur {
            match built {
                Some(o) => orders.push(o),
                None => errors.push(err(
                    ErrorCode::SegmentSequence,
                    Location { segment: "ORC".into(), sequence: seq, ..Default::default() },
                    "each ORC must be followed by its OBR (what is ordered)",
                )),
            }
        }
    };
    let mut orc: Option<&Segment> = None;
    // The order's own timing (TQ1 after its ORC, v2.5+).
    let mut tq1: Option<&Segment> = None;
    for seg in &m.segments {
        match seg.id.as_str() {
            "ORC" => {
                orc_seq += 1;
                finish(&mut orders, current.take(), &mut errors);
                orc = Some(seg);
                tq1 = None;
                current = Some((orc_seq, None));
            }
            "TQ1" => tq1 = Some(seg),
            "OBR" => {
                obr_seq += 1;
                let (Some(o), Some((_, slot))) = (orc, current.as_mut()) else {
                    errors.push(err(
                        ErrorCode::SegmentSequence,
                        Location { segment: "OBR".into(), sequence: obr_seq, ..Default::default() },
                        "an OBR must follow an ORC",
                    ));
                    continue;
                };
                let placer = [o.component(2, 1), seg.component(2, 1)].into_iter().find(|s| !s.is_empty());
                let filler = [o.component(3, 1), seg.component(3, 1)].into_iter().find(|s| !s.is_empty());
                let Some(key) = placer.clone().or(filler.clone()) else {
                    errors.push(err(
                        ErrorCode::RequiredFieldMissing,
                        Location::field("ORC", orc_seq, 2),
                        "ORC-2 (placer order number) or ORC-3 (filler order number) is required",
                    ));
                    continue;
                };
                let Some(code) = concept(seg, 4, 1, ch) else {
                    errors.push(err(
                        ErrorCode::RequiredFieldMissing,
                        Location::field("OBR", obr_seq, 4),
                        "OBR-4 (universal service identifier: what is ordered) is required",
                    ));
                    continue;
                };
                let control = o.first(1);
                let order_status = o.first(5);
                let status = match (control.as_str(), order_status.as_str()) {
                    (_, "CM") => "completed",
                    (_, "CA" | "DC") | ("CA" | "OC" | "DC" | "OD" | "CR", _) => "revoked",
                    ("HD" | "OH", _) | (_, "HD") => "on-hold",
                    ("NW" | "XO" | "RP" | "SC" | "SN" | "RO" | "" | "OK" | "RL", _) => "active",
                    _ => {
                        errors.push(err(
                            ErrorCode::TableValueNotFound,
                            Location::field("ORC", orc_seq, 1),
                            format!("ORC-1 order control '{control}' is not supported (rule: NW, XO, RP, SC, CA, OC, DC, HD, RL)"),
                        ));
                        continue;
                    }
                };
                let mut identifiers = Vec::new();
                let typed = |value: &str, code: &str| {
                    json!({"system": ch.order_system, "value": value,
                           "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": code}]}})
                };
                if let Some(p) = &placer {
                    identifiers.push(typed(p, "PLAC"));
                }
                if let Some(f) = filler.as_ref().filter(|f| Some(*f) != placer.as_ref()) {
                    identifiers.push(typed(f, "FILL"));
                }
                let mut sr = json!({
                    "resourceType": "ServiceRequest",
                    "identifier": null,
                    "status": status,
                    "intent": "order",
                    "code": null,
                    "subject": {"reference": subject},
                });
                // Moved in, not copied through serde as `json!` would.
                sr["identifier"] = Value::Array(identifiers);
                sr["code"] = code;
                let authored = o.first(9);
                if !authored.is_empty() {
                    match date_time(&authored, &ch.utc_offset) {
                        Some(t) => sr["authoredOn"] = json!(t),
                        None => errors.push(err(
                            ErrorCode::DataType,
                            Location::field("ORC", orc_seq, 9),
                            format!("ORC-9 '{authored}' is not a date/time (rule: YYYYMMDDHHMM[SS][+ZZZZ])"),
                        )),
                    }
                }
                if let Some(r) = staff(o, 12).or_else(|| staff(seg, 16)) {
                    sr["requester"] = r;
                }
                let priority =
                    [o.component(7, 6), seg.component(27, 6), tq1.map(|t| t.component(9, 1)).unwrap_or_default()]
                        .into_iter()
                        .find(|p| !p.is_empty());
                if let Some(p) = priority {
                    sr["priority"] = json!(match p.as_str() {
                        "S" | "STAT" => "stat",
                        "A" | "ASAP" => "asap",
                        "U" => "urgent",
                        _ => "routine",
                    });
                }
                if let Some(reason) = concept(seg, 31, 1, ch) {
                    sr["reasonCode"] = Value::Array(vec![reason]);
                }
                let section = seg.first(24);
                if !section.is_empty() {
                    sr["category"] = json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": section}]}]);
                }
                *slot = Some((sr, key));
            }
            "NTE" => {
                if let Some((_, Some((sr, _)))) = current.as_mut() {
                    let text = seg.first(3);
                    if !text.is_empty() {
                        let mut list = sr.get("note").and_then(Value::as_array).cloned().unwrap_or_default();
                        list.push(json!({"text": text}));
                        sr["note"] = Value::Array(list);
                    }
                }
            }
            _ => {}
        }
    }
    finish(&mut orders, current.take(), &mut errors);
    if orders.is_empty() && errors.is_empty() {
        errors.push(err(
            ErrorCode::SegmentSequence,
            Location { segment: "ORC".into(), sequence: 1, ..Default::default() },
            format!("{kind} needs at least one ORC with its OBR"),
        ));
    }
    if !errors.is_empty() {
        return Err(MapError::Invalid(errors));
    }
    let n = orders.len();
    let statuses: Vec<String> = orders.iter().map(|(sr, _)| sr["status"].as_str().unwrap_or("").to_string()).collect();
    for (sr, key) in orders {
        tx.upsert(sr, &ch.order_system, &key);
    }
    Ok(Mapped {
        bundle: tx.bundle(),
        summary: format!("{kind}: patient {pval}, {n} order(s) {}", statuses.join(", ")),
        merge: None,
    })
}

/// SIU^S12 (booked), S13 (rescheduled), S14 (changed), S15 (cancelled), S26 (no-show)
/// → one Appointment keyed by the filler's appointment id (SCH-2), else the placer's
/// (SCH-1).
fn map_schedule(m: &Message, ch: &Channel, event: &str) -> Result<Mapped, MapError> {
    let Some(sch) = m.segment("SCH") else {
        return Err(MapError::Invalid(vec![err(
            ErrorCode::SegmentSequence,
            Location { segment: "SCH".into(), sequence: 1, ..Default::default() },
            format!("SIU^{event} needs an SCH segment"),
        )]));
    };
    let pid = required_pid(m)?;
    let (patient, psys, pval) = patient(pid, ch).map_err(|e| MapError::Invalid(vec![e]))?;
    let Some(key) = [sch.component(2, 1), sch.component(1, 1)].into_iter().find(|s| !s.is_empty()) else {
        return Err(MapError::Invalid(vec![err(
            ErrorCode::RequiredFieldMissing,
            Location::field("SCH", 1, 2),
            "SCH-2 (filler appointment id) or SCH-1 (placer appointment id) is required",
        )]));
    };
    let mut status = match event {
        "S15" => "cancelled",
        "S26" => "noshow",
        _ => "booked",
    };
    // SCH-25 (filler status, HL7 table 0278) wins where it says more.
    match sch.component(25, 1).to_ascii_lowercase().as_str() {
        "cancelled" | "deleted" => status = "cancelled",
        "noshow" => status = "noshow",
        "complete" => status = "fulfilled",
        "pending" | "waitlist" if status == "booked" => status = "pending",
        _ => {}
    }
    let mut errors = Vec::new();
    let tq1 = m.segment("TQ1");
    let ais = m.segment("AIS");
    let start_raw = [
        ais.map(|a| a.first(4)).unwrap_or_default(),
        sch.component(11, 4),
        tq1.map(|t| t.component(7, 1)).unwrap_or_default(),
    ]
    .into_iter()
    .find(|s| !s.is_empty());
    let mut appt = json!({"resourceType": "Appointment", "status": status});
    appt["identifier"] = json!([{"system": ch.appointment_system, "value": key}]);
    match start_raw.as_deref().map(|s| (s, date_time(s, &ch.utc_offset))) {
        Some((_, Some(t))) if t.contains('T') => appt["start"] = json!(t),
        Some((raw, _)) => errors.push(err(
            ErrorCode::DataType,
            Location::component("SCH", 1, 11, 4),
            format!("the appointment start '{raw}' is not a date and time (rule: YYYYMMDDHHMM[SS][+ZZZZ])"),
        )),
        None if status == "booked" => errors.push(err(
            ErrorCode::RequiredFieldMissing,
            Location::component("SCH", 1, 11, 4),
            "a booked appointment needs its start (AIS-4, SCH-11.4 or TQ1-7)",
        )),
        None => {}
    }
    let end_raw =
        [sch.component(11, 5), tq1.map(|t| t.component(8, 1)).unwrap_or_default()].into_iter().find(|s| !s.is_empty());
    if let Some(raw) = end_raw {
        match date_time(&raw, &ch.utc_offset) {
            Some(t) => appt["end"] = json!(t),
            None => errors.push(err(
                ErrorCode::DataType,
                Location::component("SCH", 1, 11, 5),
                format!("the appointment end '{raw}' is not a date and time"),
            )),
        }
    }
    let minutes = [ais.map(|a| (a.first(7), a.component(8, 1))), Some((sch.first(9), sch.component(10, 1)))]
        .into_iter()
        .flatten()
        .find(|(d, _)| !d.is_empty());
    if let Some((d, unit)) = minutes {
        match d.parse::<u32>() {
            Ok(n) => {
                let factor = match unit.to_ascii_lowercase().as_str() {
                    "h" | "hr" | "hour" => 60,
                    "s" | "sec" => 0,
                    _ => 1,
                };
                if factor > 0 {
                    appt["minutesDuration"] = json!(n * factor);
                }
            }
            Err(_) => errors.push(err(
                ErrorCode::DataType,
                Location::field("SCH", 1, 9),
                format!("the appointment duration '{d}' is not a whole number"),
            )),
        }
    }
    if let Some(reason) = concept(sch, 7, 1, ch) {
        appt["reasonCode"] = Value::Array(vec![reason]);
    }
    if let Some(kind) = concept(sch, 8, 1, ch) {
        appt["appointmentType"] = kind;
    }
    if let Some(service) = ais.and_then(|a| concept(a, 3, 1, ch)) {
        appt["serviceType"] = Value::Array(vec![service]);
    }
    let mut tx = Tx { entries: Vec::new() };
    let subject = tx.ensure(patient, &psys, &pval);
    let mut participants = vec![json!({"actor": {"reference": subject}, "required": "required", "status": "accepted"})];
    for aip in m.segments_named("AIP") {
        if let Some(who) = staff(aip, 3) {
            participants.push(obj([("actor", who), ("required", "required".into()), ("status", "accepted".into())]));
        }
    }
    for ail in m.segments_named("AIL") {
        if let Some(place) = pl_display(ail, 3) {
            participants.push(json!({"actor": {"display": place}, "required": "required", "status": "accepted"}));
        }
    }
    appt["participant"] = Value::Array(participants);
    let notes: Vec<Value> =
        m.segments_named("NTE").map(|n| n.first(3)).filter(|t| !t.is_empty()).map(|t| json!(t)).collect();
    if !notes.is_empty() {
        appt["comment"] = json!(notes.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("\n"));
    }
    // R4 app-2/app-3: a start needs an end, and only proposed or cancelled
    // appointments may lack them.
    if appt.get("start").is_some() && appt.get("end").is_none() {
        let start = appt["start"].as_str().and_then(lianyi_fhir::datetime::parse_range).map(|r| r.low);
        match (start, appt.get("minutesDuration").and_then(Value::as_i64)) {
            (Some(at), Some(minutes)) => {
                appt["end"] = json!(lianyi_fhir::datetime::format_instant(at + minutes * 60_000));
            }
            _ => errors.push(err(
                ErrorCode::RequiredFieldMissing,
                Location::component("SCH", 1, 11, 5),
                "the appointment needs its end (SCH-11.5 or TQ1-8) or its duration (AIS-7 or SCH-9)",
            )),
        }
    }
    if appt.get("start").is_none() && !matches!(status, "cancelled" | "proposed") && errors.is_empty() {
        errors.push(err(
            ErrorCode::RequiredFieldMissing,
            Location::component("SCH", 1, 11, 4),
            format!("a {status} appointment needs its start (AIS-4, SCH-11.4 or TQ1-7)"),
        ));
    }
    if !errors.is_empty() {
        return Err(MapError::Invalid(errors));
    }
    tx.upsert(appt, &ch.appointment_system, &key);
    Ok(Mapped {
        bundle: tx.bundle(),
        summary: format!("SIU^{event}: appointment {key} {status} for patient {pval}"),
        merge: None,
    })
}

fn observation_status(code: &str) -> &'static str {
    match code {
        "P" | "R" | "S" => "preliminary",
        "C" => "corrected",
        "X" | "D" | "W" => "cancelled",
        "I" => "registered",
        _ => "final",
    }
}

/// OBX-7 (`3.5-5.3`, `>5`, `<0.1`) as a reference range, or its text.
fn reference_range(raw: &str, unit: &Option<Value>) -> Value {
    let q = |v: f64| {
        let mut x = json!({"value": v});
        if let Some(Value::Object(u)) = unit {
            for (k, val) in u {
                if k != "value" {
                    x[k] = val.clone();
                }
            }
        }
        x
    };
    let t = raw.trim();
    if let Some((lo, hi)) = t.split_once('-').filter(|(lo, _)| !lo.is_empty())
        && let (Ok(lo), Ok(hi)) = (lo.trim().parse::<f64>(), hi.trim().parse::<f64>())
    {
        return obj([("low", q(lo)), ("high", q(hi))]);
    }
    if let Some(v) = t.strip_prefix('<').and_then(|v| v.trim_start_matches('=').trim().parse::<f64>().ok()) {
        return obj([("high", q(v))]);
    }
    if let Some(v) = t.strip_prefix('>').and_then(|v| v.trim_start_matches('=').trim().parse::<f64>().ok()) {
        return obj([("low", q(v))]);
    }
    json!({"text": t})
}

fn map_oru(m: &Message, ch: &Channel) -> Result<Mapped, MapError> {
    let pid = required_pid(m)?;
    let (patient, psys, pval) = patient(pid, ch).map_err(|e| MapError::Invalid(vec![e]))?;
    let mut tx = Tx { entries: Vec::new() };
    // Results do not overwrite the registration system's demographics.
    let subject = tx.ensure(patient, &psys, &pval);
    let mut errors = Vec::new();
    let (mut obr_seq, mut obx_seq) = (0usize, 0usize);
    let mut reports = 0usize;
    let mut observations = 0usize;
    // (report, its observations' urls) in progress.
    let mut current: Option<(Value, String, Vec<String>)> = None;
    let mut last_obs: Option<usize> = None;
    // OBR-2 is the placer's order number, and the placer is the receiver of the
    // results: Lianyi's own numbers, or those of the system named in MSH-5.
    let receiver = m.segment("MSH").map(|h| h.component(5, 1)).unwrap_or_default();
    let placer_system = if receiver.is_empty() || receiver.eq_ignore_ascii_case("LIANYI") {
        lianyi_services::identifiers::PLACER_SYSTEM.to_string()
    } else {
        format!("urn:lianyi:sid:order:{}", receiver.to_ascii_lowercase())
    };
    let mut based_on: Option<Value> = None;
    let finish = |tx: &mut Tx, cur: Option<(Value, String, Vec<String>)>| {
        if let Some((mut report, filler, results)) = cur {
            report["result"] = results.iter().map(|r| json!({"reference": r})).collect();
            tx.upsert(report, &ch.order_system, &filler);
        }
    };
    for seg in &m.segments {
        match seg.id.as_str() {
            "OBR" => {
                obr_seq += 1;
                finish(&mut tx, current.take());
                last_obs = None;
                let filler = [seg.first(3), seg.first(2)].into_iter().find(|s| !s.is_empty());
                let Some(filler) = filler else {
                    errors.push(err(
                        ErrorCode::RequiredFieldMissing,
                        Location::field("OBR", obr_seq, 3),
                        "OBR-3 (filler order number) or OBR-2 (placer order number) is required",
                    ));
                    continue;
                };
                let Some(code) = concept(seg, 4, 1, ch) else {
                    errors.push(err(
                        ErrorCode::RequiredFieldMissing,
                        Location::field("OBR", obr_seq, 4),
                        "OBR-4 (universal service identifier) is required",
                    ));
                    continue;
                };
                let mut report = json!({
                    "resourceType": "DiagnosticReport",
                    "identifier": [{"system": ch.order_system, "value": filler}],
                    "status": match seg.first(25).as_str() {
                        "P" | "I" | "S" | "R" => "preliminary",
                        "C" => "corrected",
                        "X" => "cancelled",
                        _ => "final",
                    },
                    "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "LAB"}]}],
                    "code": null,
                    "subject": {"reference": subject},
                });
                report["code"] = code;
                let placer = seg.first(2);
                based_on = (!placer.is_empty()).then(
                    || json!([{"identifier": {"system": placer_system, "value": placer}, "type": "ServiceRequest"}]),
                );
                if let Some(b) = &based_on {
                    report["basedOn"] = b.clone();
                }
                let when = seg.first(7);
                if !when.is_empty() {
                    match date_time(&when, &ch.utc_offset) {
                        Some(t) => report["effectiveDateTime"] = json!(t),
                        None => errors.push(err(
                            ErrorCode::DataType,
                            Location::field("OBR", obr_seq, 7),
                            format!("OBR-7 '{when}' is not a date/time (rule: YYYYMMDDHHMM[SS][+ZZZZ])"),
                        )),
                    }
                }
                current = Some((report, filler, Vec::new()));
                reports += 1;
            }
            "OBX" => {
                obx_seq += 1;
                let Some((report, filler, results)) = current.as_mut() else {
                    errors.push(err(
                        ErrorCode::SegmentSequence,
                        Location { segment: "OBX".into(), sequence: obx_seq, ..Default::default() },
                        "an OBX segment must follow an OBR",
                    ));
                    continue;
                };
                let Some(code) = concept(seg, 3, 1, ch) else {
                    errors.push(err(
                        ErrorCode::RequiredFieldMissing,
                        Location::field("OBX", obx_seq, 3),
                        "OBX-3 (observation identifier) is required",
                    ));
                    continue;
                };
                let set_id = match seg.first(1) {
                    s if s.is_empty() => (results.len() + 1).to_string(),
                    s => s,
                };
                let key = format!("{filler}-{set_id}");
                let mut obs = json!({
                    "resourceType": "Observation",
                    "identifier": [{"system": ch.order_system, "value": key}],
                    "status": observation_status(&seg.first(11)),
                    "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
                    "code": null,
                    "subject": {"reference": subject},
                });
                obs["code"] = code;
                if let Some(b) = &based_on {
                    obs["basedOn"] = b.clone();
                }
                let unit = {
                    let ucode = seg.component(6, 1);
                    let utext = seg.component(6, 2);
                    let usys = seg.component(6, 3);
                    if ucode.is_empty() && utext.is_empty() {
                        None
                    } else {
                        let mut u = json!({"unit": if utext.is_empty() { &ucode } else { &utext }});
                        if !ucode.is_empty() && (usys.eq_ignore_ascii_case("UCUM") || usys.is_empty()) {
                            u["system"] = json!(UCUM);
                            u["code"] = json!(ucode);
                        }
                        Some(u)
                    }
                };
                let raw = seg.first(5);
                let value_type = seg.first(2);
                match value_type.as_str() {
                    _ if raw.is_empty() => {}
                    "NM" | "SN" => {
                        let (comparator, number) = if value_type == "SN" {
                            (seg.component(5, 1), seg.component(5, 2))
                        } else {
                            (String::new(), raw.clone())
                        };
                        match number.trim().parse::<f64>() {
                            Ok(v) if v.is_finite() => {
                                let mut q = unit.clone().unwrap_or_else(|| json!({}));
                                q["value"] = json!(v);
                                if ["<", ">", "<=", ">="].contains(&comparator.as_str()) {
                                    q["comparator"] = json!(comparator);
                                }
                                obs["valueQuantity"] = q;
                            }
                            _ => errors.push(err(
                                ErrorCode::DataType,
                                Location::field("OBX", obx_seq, 5),
                                format!("OBX-5 '{raw}' is not a number, as OBX-2 '{value_type}' says"),
                            )),
                        }
                    }
                    "CE" | "CWE" | "CNE" => {
                        if let Some(c) = concept(seg, 5, 1, ch) {
                            obs["valueCodeableConcept"] = c;
                        }
                    }
                    "DT" | "TS" | "DTM" => match date_time(&raw, &ch.utc_offset) {
                        Some(t) => obs["valueDateTime"] = json!(t),
                        None => errors.push(err(
                            ErrorCode::DataType,
                            Location::field("OBX", obx_seq, 5),
                            format!("OBX-5 '{raw}' is not a date/time, as OBX-2 '{value_type}' says"),
                        )),
                    },
                    _ => {
                        obs["valueString"] = json!(
                            seg.repetitions(5)
                                .iter()
                                .enumerate()
                                .map(|(i, _)| seg.value(5, i + 1, 1, 1))
                                .collect::<Vec<_>>()
                                .join("\n")
                        )
                    }
                }
                let range = seg.first(7);
                if !range.is_empty() {
                    obs["referenceRange"] = Value::Array(vec![reference_range(&range, &unit)]);
                }
                let flags: Vec<Value> = (1..=seg.repetitions(8).len())
                    .map(|r| seg.rep_component(8, r, 1))
                    .filter(|f| !f.is_empty())
                    .map(|f| json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": f}]}))
                    .collect();
                if !flags.is_empty() {
                    obs["interpretation"] = Value::Array(flags);
                }
                let when = [seg.first(14), report["effectiveDateTime"].as_str().unwrap_or_default().to_string()]
                    .into_iter()
                    .find(|s| !s.is_empty());
                if let Some(w) = when {
                    match if w.contains('-') && w.len() > 8 { Some(w.clone()) } else { date_time(&w, &ch.utc_offset) } {
                        Some(t) => obs["effectiveDateTime"] = json!(t),
                        None => errors.push(err(
                            ErrorCode::DataType,
                            Location::field("OBX", obx_seq, 14),
                            format!("OBX-14 '{w}' is not a date/time (rule: YYYYMMDDHHMM[SS][+ZZZZ])"),
                        )),
                    }
                }
                let url = tx.upsert(obs, &ch.order_system, &key);
                last_obs = Some(tx.entries.len() - 1);
                results.push(url);
                observations += 1;
            }
            "NTE" => {
                if let Some(i) = last_obs {
                    let text = seg.first(3);
                    if !text.is_empty() {
                        let obs = &mut tx.entries[i]["resource"];
                        let mut notes = obs["note"].as_array().cloned().unwrap_or_default();
                        notes.push(json!({"text": text}));
                        obs["note"] = Value::Array(notes);
                    }
                }
            }
            _ => {}
        }
    }
    finish(&mut tx, current.take());
    if reports == 0 && errors.is_empty() {
        errors.push(err(
            ErrorCode::SegmentSequence,
            Location { segment: "OBR".into(), sequence: 1, ..Default::default() },
            "an ORU^R01 message needs at least one OBR segment",
        ));
    }
    if !errors.is_empty() {
        return Err(MapError::Invalid(errors));
    }
    Ok(Mapped {
        bundle: tx.bundle(),
        summary: format!("ORU^R01: patient {pval}, {observations} observation(s)"),
        merge: None,
    })
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
        let bad = "MSH|^~\\&|HIS|EAST|LIANYI|GROUP|20261122||ORM^O01|M1|P|2.3\rPID|1||E1^^^EAST^MR\rORC|ZZ|X1\rOBR|1|X1||A^B\r";
        let Err(MapError::Invalid(errs)) = map_message(&parse(bad), &channel()) else { panic!("expected AE") };
        assert_eq!(errs[0].location, Some(Location::field("ORC", 1, 1)));
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
        assert_eq!(p["identifier"][1], json!({"system": RESIDENT_ID_SYSTEM, "value": "990101199001010015"}));
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
        let adt = "MSH|^~\\&|HIS|EAST|LIANYI|GROUP|20261122||ADT^A01|X2|P|2.5\rPID|1||E1^^^EAST^MR||^^\rPV1|1|I\r";
        let Err(MapError::Invalid(errs)) = map_message(&parse(adt), &channel()) else { panic!("expected AE") };
        assert_eq!(errs[0].location, Some(Location::field("PID", 1, 5)));
    }

    #[test]
    fn unsupported_types_versions_and_processing_ids_are_rejected() {
        let msg = |t: &str, v: &str, p: &str| {
            parse(&format!("MSH|^~\\&|A|B|C|D|20261122||{t}|X|{p}|{v}\rPID|1||E1^^^EAST^MR\r"))
        };
        let code = |r: Result<Mapped, MapError>| match r {
            Err(MapError::Reject(e)) => e.code,
            other => panic!("expected AR, got {other:?}"),
        };
        assert_eq!(code(map_message(&msg("MDM^T02", "2.5", "P"), &channel())), ErrorCode::UnsupportedMessageType);
        assert_eq!(code(map_message(&msg("SIU^S99", "2.5", "P"), &channel())), ErrorCode::UnsupportedEvent);
        assert_eq!(code(map_message(&msg("ADT^A99", "2.5", "P"), &channel())), ErrorCode::UnsupportedEvent);
        assert_eq!(code(map_message(&msg("ADT^A01", "3.0", "P"), &channel())), ErrorCode::UnsupportedVersion);
        assert_eq!(code(map_message(&msg("ADT^A01", "2.5", "Q"), &channel())), ErrorCode::UnsupportedProcessingId);
    }
}
