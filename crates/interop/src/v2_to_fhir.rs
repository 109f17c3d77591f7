//! HL7 v2 → FHIR R4: ADT^A01/A04/A08 (Patient, Encounter) and ORU^R01 (Patient,
//! DiagnosticReport, Observation). Every write is conditional on a business
//! identifier (MRN, visit number, filler order number), so a message applied twice
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
    /// The UTC offset of local times that carry none (`+08:00`).
    pub utc_offset: String,
}

/// A message's meaning: one FHIR transaction.
#[derive(Clone, Debug)]
pub struct Mapped {
    pub bundle: Value,
    /// For the message log: `ORU^R01: 2 observations`.
    pub summary: String,
}

/// Why a message is not applied: rejected (AR: type, version, processing id) or in
/// error (AE: its content).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapError {
    Reject(Hl7Error),
    Invalid(Vec<Hl7Error>),
}

const ADT_EVENTS: &[&str] = &["A01", "A04", "A08"];
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
        ("ADT", e) if ADT_EVENTS.contains(&e) => map_adt(m, ch, e),
        ("ORU", "R01") => map_oru(m, ch),
        ("ADT", e) | ("ORU", e) => Err(MapError::Reject(err(
            ErrorCode::UnsupportedEvent,
            Location::component("MSH", 1, 9, 2),
            format!("MSH-9 event '{code}^{e}' is not supported (rule: ADT^A01, A04, A08 or ORU^R01)"),
        ))),
        _ => Err(MapError::Reject(err(
            ErrorCode::UnsupportedMessageType,
            Location::component("MSH", 1, 9, 1),
            format!("MSH-9 message type '{code}' is not supported (rule: ADT or ORU)"),
        ))),
    }
}

/// A transaction under construction; entries get `urn:uuid:` full URLs so later
/// entries can point at earlier ones.
struct Tx {
    entries: Vec<Value>,
}

impl Tx {
    fn next_url(&self) -> String {
        format!("urn:uuid:00000000-0000-4000-8000-{:012x}", self.entries.len() + 1)
    }

    /// Creates or replaces the resource whose identifier is `system|value`.
    fn upsert(&mut self, resource: Value, system: &str, value: &str) -> String {
        let url = self.next_url();
        let rtype = resource["resourceType"].as_str().unwrap_or_default().to_string();
        self.entries.push(json!({
            "fullUrl": url, "resource": resource,
            "request": {"method": "PUT", "url": format!("{rtype}?identifier={}", query_token(system, value))}
        }));
        url
    }

    /// Creates the resource unless one with identifier `system|value` exists.
    fn ensure(&mut self, resource: Value, system: &str, value: &str) -> String {
        let url = self.next_url();
        let rtype = resource["resourceType"].as_str().unwrap_or_default().to_string();
        self.entries.push(json!({
            "fullUrl": url, "resource": resource,
            "request": {"method": "POST", "url": rtype, "ifNoneExist": format!("identifier={}", query_token(system, value))}
        }));
        url
    }

    fn bundle(self) -> Value {
        json!({"resourceType": "Bundle", "type": "transaction", "entry": self.entries})
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
        cc.insert("coding".into(), json!([coding]));
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
    let mut p = json!({"resourceType": "Patient", "identifier": identifiers});
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
        p["name"] = json!(names);
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
        p["address"] = json!(addresses);
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
        p["telecom"] = json!(telecom);
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
    if let Some(pv1) = m.segment("PV1") {
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
        let mut enc = json!({
            "resourceType": "Encounter",
            "identifier": [{"system": ch.visit_system, "value": visit}],
            "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": class, "display": display},
            "subject": {"reference": subject},
        });
        let start = [pv1.first(44), m.segment("EVN").map(|e| e.first(2)).unwrap_or_default()]
            .into_iter()
            .find(|s| !s.is_empty());
        if let Some(s) = start {
            let at = date_time(&s, &ch.utc_offset).ok_or_else(|| {
                MapError::Invalid(vec![err(
                    ErrorCode::DataType,
                    Location::field("PV1", 1, 44),
                    format!("PV1-44 '{s}' is not a date/time (rule: YYYYMMDDHHMM[SS])"),
                )])
            })?;
            enc["period"] = json!({"start": at});
        }
        let place: Vec<String> = (1..=4).map(|c| pv1.component(3, c)).filter(|s| !s.is_empty()).collect();
        if !place.is_empty() {
            enc["location"] = json!([{"location": {"display": place.join(" ")}}]);
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
        summary.push_str(&format!(", visit {visit}"));
    }
    Ok(Mapped { bundle: tx.bundle(), summary })
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
        return json!({"low": q(lo), "high": q(hi)});
    }
    if let Some(v) = t.strip_prefix('<').and_then(|v| v.trim_start_matches('=').trim().parse::<f64>().ok()) {
        return json!({"high": q(v)});
    }
    if let Some(v) = t.strip_prefix('>').and_then(|v| v.trim_start_matches('=').trim().parse::<f64>().ok()) {
        return json!({"low": q(v)});
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
    let finish = |tx: &mut Tx, cur: Option<(Value, String, Vec<String>)>| {
        if let Some((mut report, filler, results)) = cur {
            report["result"] = json!(results.iter().map(|r| json!({"reference": r})).collect::<Vec<_>>());
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
                    "code": code,
                    "subject": {"reference": subject},
                });
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
                    "code": code,
                    "subject": {"reference": subject},
                });
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
                    obs["referenceRange"] = json!([reference_range(&range, &unit)]);
                }
                let flags: Vec<Value> = (1..=seg.repetitions(8).len())
                    .map(|r| seg.rep_component(8, r, 1))
                    .filter(|f| !f.is_empty())
                    .map(|f| json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": f}]}))
                    .collect();
                if !flags.is_empty() {
                    obs["interpretation"] = json!(flags);
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
                        obs["note"] = json!(notes);
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
    Ok(Mapped { bundle: tx.bundle(), summary: format!("ORU^R01: patient {pval}, {observations} observation(s)") })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel() -> Channel {
        Channel {
            mrn_system: "urn:lianyi:sid:mrn:campus-east".into(),
            visit_system: "urn:lianyi:sid:visit:campus-east".into(),
            order_system: "urn:lianyi:sid:order:lis".into(),
            utc_offset: "+08:00".into(),
        }
    }

    fn parse(text: &str) -> Message {
        Message::parse(text).unwrap()
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
        assert_eq!(code(map_message(&msg("SIU^S12", "2.5", "P"), &channel())), ErrorCode::UnsupportedMessageType);
        assert_eq!(code(map_message(&msg("ADT^A99", "2.5", "P"), &channel())), ErrorCode::UnsupportedEvent);
        assert_eq!(code(map_message(&msg("ADT^A01", "3.0", "P"), &channel())), ErrorCode::UnsupportedVersion);
        assert_eq!(code(map_message(&msg("ADT^A01", "2.5", "Q"), &channel())), ErrorCode::UnsupportedProcessingId);
    }
}
