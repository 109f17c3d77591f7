//! Outbound HL7 v2: committed FHIR changes rendered as v2.5.1 messages for feeds to
//! systems that only speak v2 (an ADT feed to a lab system, results to an external
//! EMR). Patient → ADT^A04 (registered) or ADT^A08 (updated); Encounter → the ADT
//! event of what changed: an inpatient stay admitted (A01), moved to another ward or
//! bed (A02), discharged (A03) or otherwise updated (A08), an outpatient visit
//! registered (A04) or updated (A08), with PV1 (class, ward and bed, the prior place
//! of a transfer, the department, the visit number, admission and discharge times);
//! Observation → ORU^R01 with one OBR and one OBX. Other types have no v2 rendering
//! and are not queued on HL7 channels (a channel's criteria may only name these types).

use lianyi_hl7::{Message, Segment, Separators};
use serde_json::Value;

/// Types an HL7 v2 channel can carry.
pub const RENDERED_TYPES: &[&str] = &["Patient", "Encounter", "Observation"];

/// Who the messages come from and go to (MSH-3/4/5/6).
#[derive(Clone, Debug)]
pub struct Header {
    pub sending_app: String,
    pub sending_facility: String,
    pub receiving_app: String,
    pub receiving_facility: String,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        cur = match cur.get(p) {
            Some(x) => x,
            None => return "",
        };
    }
    cur.as_str().unwrap_or("")
}

/// `2024-03-05T08:30:00+08:00` → `20240305083000+0800`; dates keep their precision.
fn dtm(iso: &str) -> String {
    let (main, zone) = match iso.find(['+', 'Z']).or_else(|| iso.get(10..).and_then(|t| t.find('-')).map(|i| i + 10)) {
        Some(i) if i >= 10 => (&iso[..i], &iso[i..]),
        _ => (iso, ""),
    };
    let main = main.split('.').next().unwrap_or(main);
    let mut out: String = main.chars().filter(char::is_ascii_digit).collect();
    match zone {
        "" => {}
        "Z" => out.push_str("+0000"),
        z => out.push_str(&z.replace(':', "")),
    }
    out
}

fn msh(m: &mut Message, h: &Header, now: &str, code: &str, trigger: &str, structure: &str, control_id: &str) {
    if let Some(msh) = m.msh_mut() {
        msh.set_text(3, &h.sending_app)
            .set_text(4, &h.sending_facility)
            .set_text(5, &h.receiving_app)
            .set_text(6, &h.receiving_facility)
            .set_text(7, now)
            .set(9, 1, 1, 1, code)
            .set(9, 1, 2, 1, trigger)
            .set(9, 1, 3, 1, structure)
            .set_text(10, control_id)
            .set_text(11, "P")
            .set_text(12, "2.5.1")
            .set_text(18, "UNICODE UTF-8");
    }
}

/// PID from a Patient resource (identifiers decrypted by the caller).
fn pid(seg: &mut Segment, patient: &Value) {
    seg.set_text(1, "1");
    let mut rep = 0;
    for id in patient.get("identifier").and_then(Value::as_array).into_iter().flatten() {
        let value = str_at(id, &["value"]);
        if value.is_empty() {
            continue;
        }
        rep += 1;
        let system = str_at(id, &["system"]);
        let kind = id
            .pointer("/type/coding/0/code")
            .and_then(Value::as_str)
            .unwrap_or(if lianyi_services::identifiers::mrn_campus(system).is_some() { "MR" } else { "" });
        seg.set(3, rep, 1, 1, value).set(3, rep, 4, 1, system).set(3, rep, 5, 1, kind);
    }
    if let Some(name) = patient.pointer("/name/0") {
        seg.set(5, 1, 1, 1, str_at(name, &["family"]));
        if let Some(given) = name.pointer("/given/0").and_then(Value::as_str) {
            seg.set(5, 1, 2, 1, given);
        }
        if let Some(text) = name.get("text").and_then(Value::as_str)
            && name.get("family").is_none()
        {
            seg.set(5, 1, 1, 1, text);
        }
    }
    seg.set_text(7, &dtm(str_at(patient, &["birthDate"])));
    let sex = match str_at(patient, &["gender"]) {
        "male" => "M",
        "female" => "F",
        "other" => "O",
        "unknown" => "U",
        _ => "",
    };
    seg.set_text(8, sex);
    if let Some(a) = patient.pointer("/address/0") {
        seg.set(11, 1, 1, 1, a.pointer("/line/0").and_then(Value::as_str).unwrap_or(""))
            .set(11, 1, 3, 1, str_at(a, &["city"]))
            .set(11, 1, 4, 1, str_at(a, &["state"]))
            .set(11, 1, 5, 1, str_at(a, &["postalCode"]))
            .set(11, 1, 6, 1, str_at(a, &["country"]));
    }
    let mut phones = 0;
    for t in patient.get("telecom").and_then(Value::as_array).into_iter().flatten() {
        if str_at(t, &["system"]) == "phone" {
            phones += 1;
            seg.set(13, phones, 1, 1, str_at(t, &["value"]));
        }
    }
}

fn coded(seg: &mut Segment, field: usize, concept: Option<&Value>) {
    let Some(c) = concept else { return };
    let coding = c.pointer("/coding/0");
    let code = coding.map(|x| str_at(x, &["code"])).unwrap_or("");
    let display = coding.map(|x| str_at(x, &["display"])).filter(|d| !d.is_empty()).unwrap_or(str_at(c, &["text"]));
    let system = match coding.map(|x| str_at(x, &["system"])).unwrap_or("") {
        "http://loinc.org" => "LN".to_string(),
        "http://unitsofmeasure.org" => "UCUM".to_string(),
        other => other.to_string(),
    };
    seg.set(field, 1, 1, 1, code).set(field, 1, 2, 1, display).set(field, 1, 3, 1, &system);
}

/// The ward and bed (Location ids) a stay is on or on its way to (its `location`
/// entries not completed, by their physical type; without one, the first entry not
/// completed counts as the ward).
fn place(encounter: &Value) -> (String, String) {
    let mut ward = String::new();
    let mut bed = String::new();
    // A finished stay: the last place it was.
    let left = str_at(encounter, &["status"]) == "finished";
    let entries: Vec<&Value> = encounter.get("location").and_then(Value::as_array).into_iter().flatten().collect();
    let entries: Vec<&Value> = if left { entries.into_iter().rev().collect() } else { entries };
    for l in entries {
        if str_at(l, &["status"]) == "completed" && !left {
            continue;
        }
        let id = str_at(l, &["location", "reference"]).trim_start_matches("Location/").to_string();
        match l.pointer("/physicalType/coding/0/code").and_then(Value::as_str) {
            Some("bd") if bed.is_empty() => bed = id,
            Some("bd") => {}
            _ if ward.is_empty() => ward = id,
            _ => {}
        }
    }
    (ward, bed)
}

/// The ADT event of an Encounter change: `previous` is the version before an update.
fn encounter_event(e: &Value, method: &str, previous: Option<&Value>) -> &'static str {
    let inpatient = str_at(e, &["class", "code"]) == "IMP";
    if method == "POST" {
        return if inpatient { "A01" } else { "A04" };
    }
    let Some(before) = previous else { return "A08" };
    if inpatient && str_at(e, &["status"]) == "finished" && str_at(before, &["status"]) != "finished" {
        return "A03";
    }
    if inpatient && place(e) != place(before) && !place(before).0.is_empty() {
        return "A02";
    }
    "A08"
}

/// PV1 of an Encounter: the class, the ward and bed (PV1-3), the prior place of a
/// transfer (PV1-6), the department (PV1-10), the visit number (PV1-19), the discharge
/// disposition (PV1-36) and the admission and discharge times (PV1-44/45).
fn pv1(seg: &mut Segment, e: &Value, prior: Option<&Value>) {
    let class = match str_at(e, &["class", "code"]) {
        "IMP" => "I",
        "EMER" => "E",
        "PRENC" => "P",
        _ => "O",
    };
    seg.set_text(1, "1").set_text(2, class);
    let (ward, bed) = place(e);
    seg.set(3, 1, 1, 1, &ward).set(3, 1, 3, 1, &bed);
    if let Some(before) = prior {
        let (ward, bed) = place(before);
        seg.set(6, 1, 1, 1, &ward).set(6, 1, 3, 1, &bed);
    }
    seg.set_text(10, str_at(e, &["serviceProvider", "reference"]).trim_start_matches("Organization/"));
    let visit = e
        .get("identifier")
        .and_then(Value::as_array)
        .and_then(|ids| ids.iter().find(|i| !str_at(i, &["value"]).is_empty()))
        .map(|i| (str_at(i, &["value"]), str_at(i, &["system"])))
        .unwrap_or((str_at(e, &["id"]), ""));
    seg.set(19, 1, 1, 1, visit.0).set(19, 1, 4, 1, visit.1);
    let disposition = e.pointer("/hospitalization/dischargeDisposition/coding/0/code").and_then(Value::as_str);
    seg.set_text(36, disposition.unwrap_or_default());
    seg.set_text(44, &dtm(str_at(e, &["period", "start"]))).set_text(45, &dtm(str_at(e, &["period", "end"])));
}

/// Renders one change. `method` is the outbox method (`POST`, `PUT`); `patient` is the
/// subject of an Observation or Encounter; `previous` the version an Encounter update
/// replaced (it tells a transfer or discharge from other updates). `None` when the
/// type or change has no v2 rendering.
pub fn render(
    resource: &Value,
    method: &str,
    patient: Option<&Value>,
    previous: Option<&Value>,
    header: &Header,
    (control_id, now): (&str, &str),
) -> Option<Message> {
    let mut m = Message::new(Separators::default());
    match resource.get("resourceType").and_then(Value::as_str)? {
        "Encounter" => {
            let patient = patient?;
            let event = encounter_event(resource, method, previous);
            let structure = match event {
                "A02" => "ADT_A02",
                "A03" => "ADT_A03",
                _ => "ADT_A01",
            };
            msh(&mut m, header, now, "ADT", event, structure, control_id);
            m.push("EVN").set_text(1, event).set_text(2, now);
            pid(m.push("PID"), patient);
            pv1(m.push("PV1"), resource, previous.filter(|_| event == "A02"));
        }
        "Patient" => {
            let trigger = if method == "POST" { "A04" } else { "A08" };
            msh(&mut m, header, now, "ADT", trigger, "ADT_A01", control_id);
            m.push("EVN").set_text(1, trigger).set_text(2, now);
            pid(m.push("PID"), resource);
            m.push("PV1").set_text(1, "1").set_text(2, "N");
        }
        "Observation" => {
            let patient = patient?;
            msh(&mut m, header, now, "ORU", "R01", "ORU_R01", control_id);
            pid(m.push("PID"), patient);
            let obr = m.push("OBR");
            obr.set_text(1, "1").set(3, 1, 1, 1, str_at(resource, &["id"])).set(3, 1, 2, 1, "LIANYI");
            coded(obr, 4, resource.get("code"));
            let effective = str_at(resource, &["effectiveDateTime"]);
            obr.set_text(7, &dtm(effective));
            obr.set_text(25, if str_at(resource, &["status"]) == "final" { "F" } else { "P" });
            let obx = m.push("OBX");
            obx.set_text(1, "1");
            coded(obx, 3, resource.get("code"));
            if let Some(q) = resource.get("valueQuantity") {
                let value = q.get("value").map(|v| v.to_string()).unwrap_or_default();
                obx.set_text(2, "NM").set_text(5, &value);
                obx.set(6, 1, 1, 1, str_at(q, &["code"])).set(6, 1, 2, 1, str_at(q, &["unit"])).set(
                    6,
                    1,
                    3,
                    1,
                    if q.get("system").is_some() { "UCUM" } else { "" },
                );
            } else if let Some(c) = resource.get("valueCodeableConcept") {
                obx.set_text(2, "CE");
                coded(obx, 5, Some(c));
            } else if let Some(s) = resource.get("valueString").and_then(Value::as_str) {
                obx.set_text(2, "ST").set_text(5, s);
            }
            if let Some(r) = resource.pointer("/referenceRange/0") {
                let low = r.pointer("/low/value").map(|v| v.to_string()).unwrap_or_default();
                let high = r.pointer("/high/value").map(|v| v.to_string()).unwrap_or_default();
                let range = match (low.is_empty(), high.is_empty()) {
                    (false, false) => format!("{low}-{high}"),
                    (false, true) => format!(">{low}"),
                    (true, false) => format!("<{high}"),
                    (true, true) => str_at(r, &["text"]).to_string(),
                };
                obx.set_text(7, &range);
            }
            if let Some(flag) = resource.pointer("/interpretation/0/coding/0/code").and_then(Value::as_str) {
                obx.set_text(8, flag);
            }
            let status = match str_at(resource, &["status"]) {
                "final" => "F",
                "amended" | "corrected" => "C",
                "cancelled" | "entered-in-error" => "X",
                _ => "P",
            };
            obx.set_text(11, status).set_text(14, &dtm(effective));
        }
        _ => return None,
    }
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn header() -> Header {
        Header {
            sending_app: "LIANYI".into(),
            sending_facility: "north".into(),
            receiving_app: "LIS".into(),
            receiving_facility: "LAB".into(),
        }
    }

    #[test]
    fn patient_becomes_adt_with_pid() {
        let p = json!({"resourceType": "Patient", "id": "p1",
            "identifier": [{"system": "urn:lianyi:sid:mrn:north", "value": "MRN|7"}],
            "name": [{"family": "王", "given": ["小明"]}], "gender": "male", "birthDate": "1980-02-03",
            "telecom": [{"system": "phone", "value": "13800000000"}]});
        let m = render(&p, "POST", None, None, &header(), ("O42", "20261122120000+0800")).unwrap();
        let text = m.encode();
        assert!(text.starts_with("MSH|^~\\&|LIANYI|north|LIS|LAB|20261122120000+0800||ADT^A04^ADT_A01|O42|P|2.5.1"));
        let parsed = Message::parse(&text).unwrap();
        let pid = parsed.segment("PID").unwrap();
        assert_eq!(pid.component(3, 1), "MRN|7");
        assert_eq!(pid.component(3, 5), "MR");
        assert_eq!(pid.component(5, 1), "王");
        assert_eq!(pid.component(5, 2), "小明");
        assert_eq!(pid.first(7), "19800203");
        assert_eq!(pid.first(8), "M");
        assert_eq!(pid.first(13), "13800000000");
        let update = render(&p, "PUT", None, None, &header(), ("O43", "x")).unwrap();
        assert_eq!(update.trigger(), "A08");
    }

    #[test]
    fn observation_becomes_oru_with_value_units_range_and_flag() {
        let p =
            json!({"resourceType": "Patient", "identifier": [{"system": "urn:lianyi:sid:mrn:north", "value": "M1"}]});
        let o = json!({"resourceType": "Observation", "id": "o1", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3", "display": "Potassium"}]},
            "effectiveDateTime": "2026-11-22T08:30:00+08:00",
            "valueQuantity": {"value": 6.8, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"},
            "referenceRange": [{"low": {"value": 3.5}, "high": {"value": 5.3}}],
            "interpretation": [{"coding": [{"code": "HH"}]}]});
        let m = render(&o, "POST", Some(&p), None, &header(), ("O44", "x")).unwrap();
        let parsed = Message::parse(&m.encode()).unwrap();
        assert_eq!(parsed.message_code(), "ORU");
        let obx = parsed.segment("OBX").unwrap();
        assert_eq!(obx.component(3, 1), "2823-3");
        assert_eq!(obx.component(3, 3), "LN");
        assert_eq!(obx.first(5), "6.8");
        assert_eq!(obx.component(6, 1), "mmol/L");
        assert_eq!(obx.first(7), "3.5-5.3");
        assert_eq!(obx.first(8), "HH");
        assert_eq!(obx.first(14), "20261122083000+0800");
        assert!(render(&o, "POST", None, None, &header(), ("O45", "x")).is_none(), "an Observation needs its patient");
        assert!(render(&json!({"resourceType": "Encounter"}), "POST", None, None, &header(), ("O46", "x")).is_none());
    }

    fn stay(places: &[(&str, &str, &str)], status: &str) -> Value {
        let location: Vec<Value> = places
            .iter()
            .map(|(id, kind, st)| {
                json!({"location": {"reference": format!("Location/{id}")}, "status": st,
                "physicalType": {"coding": [{"code": kind}]}})
            })
            .collect();
        json!({"resourceType": "Encounter", "id": "s1", "status": status,
            "identifier": [{"system": "urn:lianyi:sid:inpatient:campus-east", "value": "ZY0000007"}],
            "class": {"code": "IMP"}, "subject": {"reference": "Patient/p1"},
            "serviceProvider": {"reference": "Organization/campus-east-im"},
            "period": {"start": "2026-12-07T09:30:00+08:00"}, "location": location})
    }

    #[test]
    fn a_stay_becomes_a01_a02_a03_and_comes_back_in_through_the_inbound_mapping() {
        let p = json!({"resourceType": "Patient", "id": "p1",
            "identifier": [{"system": "urn:lianyi:sid:mrn:campus-east", "value": "E0000042"}],
            "name": [{"family": "林", "given": ["秀英"]}], "gender": "female", "birthDate": "1960-03-01"});
        let admitted = stay(&[("ward-east-im", "wa", "planned"), ("bed-e-1", "bd", "reserved")], "arrived");
        let a01 = render(&admitted, "POST", Some(&p), None, &header(), ("O50", "20261207093000+0800")).unwrap();
        assert_eq!((a01.message_code().as_str(), a01.trigger().as_str()), ("ADT", "A01"));
        let parsed = Message::parse(&a01.encode()).unwrap();
        let pv1 = parsed.segment("PV1").unwrap();
        assert_eq!(pv1.first(2), "I");
        assert_eq!((pv1.component(3, 1).as_str(), pv1.component(3, 3).as_str()), ("ward-east-im", "bed-e-1"));
        assert_eq!(pv1.first(10), "campus-east-im");
        assert_eq!(pv1.component(19, 1), "ZY0000007");
        assert_eq!(pv1.first(44), "20261207093000+0800");
        // Received on the ward (same places): an update, A08.
        let received = stay(&[("ward-east-im", "wa", "active"), ("bed-e-1", "bd", "active")], "in-progress");
        let a08 = render(&received, "PUT", Some(&p), Some(&admitted), &header(), ("O51", "x")).unwrap();
        assert_eq!(a08.trigger(), "A08");
        // Moved to another campus's ward: A02 with where the patient was (PV1-6).
        let moved = stay(
            &[
                ("ward-east-im", "wa", "completed"),
                ("bed-e-1", "bd", "completed"),
                ("ward-west-im", "wa", "planned"),
                ("bed-w-1", "bd", "reserved"),
            ],
            "in-progress",
        );
        let a02 = render(&moved, "PUT", Some(&p), Some(&received), &header(), ("O52", "x")).unwrap();
        assert_eq!(a02.trigger(), "A02");
        let parsed = Message::parse(&a02.encode()).unwrap();
        assert!(parsed.encode().contains("MSH|^~\\&|LIANYI|north|LIS|LAB|x||ADT^A02^ADT_A02|O52"));
        let pv1 = parsed.segment("PV1").unwrap();
        assert_eq!((pv1.component(3, 1).as_str(), pv1.component(3, 3).as_str()), ("ward-west-im", "bed-w-1"));
        assert_eq!((pv1.component(6, 1).as_str(), pv1.component(6, 3).as_str()), ("ward-east-im", "bed-e-1"));
        // Discharged: A03 with the discharge time.
        let mut left = moved.clone();
        left["status"] = json!("finished");
        left["period"]["end"] = json!("2026-12-12T10:00:00+08:00");
        left["hospitalization"] = json!({"dischargeDisposition": {"coding": [{"code": "home"}]}});
        let a03 = render(&left, "PUT", Some(&p), Some(&moved), &header(), ("O53", "20261212100000+0800")).unwrap();
        assert_eq!(a03.trigger(), "A03");
        let text = a03.encode();
        let pv1 = Message::parse(&text).unwrap().segment("PV1").unwrap().clone();
        assert_eq!((pv1.first(36).as_str(), pv1.first(45).as_str()), ("home", "20261212100000+0800"));
        assert_eq!(
            (pv1.component(3, 1).as_str(), pv1.component(3, 3).as_str()),
            ("ward-west-im", "bed-w-1"),
            "where the patient left from"
        );
        // A receiving system's view: Lianyi's own inbound mapping reads the stay back.
        let ch = crate::v2_to_fhir::Channel {
            mrn_system: "urn:lianyi:sid:mrn:campus-east".into(),
            visit_system: "urn:lianyi:sid:visit:peer".into(),
            order_system: "urn:o".into(),
            appointment_system: "urn:a".into(),
            utc_offset: "+08:00".into(),
            profile: Default::default(),
            now_ms: 1_796_605_200_000,
        };
        for (m, status) in [(a01.encode(), "in-progress"), (text, "finished")] {
            let mapped = crate::v2_to_fhir::map_message(&Message::parse(&m).unwrap(), &ch).unwrap();
            let enc = mapped.bundle["entry"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| &e["resource"])
                .find(|r| r["resourceType"] == "Encounter")
                .unwrap()
                .clone();
            assert_eq!(enc["class"]["code"], "IMP");
            assert_eq!(enc["identifier"][0]["value"], "ZY0000007");
            assert_eq!(enc["status"], status);
            assert_eq!(enc["period"]["start"], "2026-12-07T09:30:00+08:00");
        }
        // An outpatient visit is registered (A04).
        let visit = json!({"resourceType": "Encounter", "id": "v1", "status": "in-progress", "class": {"code": "AMB"},
            "subject": {"reference": "Patient/p1"}});
        let a04 = render(&visit, "POST", Some(&p), None, &header(), ("O54", "x")).unwrap();
        assert_eq!(a04.trigger(), "A04");
        assert_eq!(Message::parse(&a04.encode()).unwrap().segment("PV1").unwrap().first(2), "O");
    }
}
