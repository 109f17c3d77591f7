//! Outbound HL7 v2: committed FHIR changes rendered as v2.5.1 messages for feeds to
//! systems that only speak v2 (an ADT feed to a lab system, results to an external
//! EMR). Patient → ADT^A04 (registered) or ADT^A08 (updated); Observation → ORU^R01
//! with one OBR and one OBX. Other types have no v2 rendering and are not queued on
//! HL7 channels (a channel's criteria may only name these types).

use lianyi_hl7::{Message, Segment, Separators};
use serde_json::Value;

/// Types an HL7 v2 channel can carry.
pub const RENDERED_TYPES: &[&str] = &["Patient", "Observation"];

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

/// Renders one change. `method` is the outbox method (`POST`, `PUT`); `patient` is the
/// subject of an Observation. `None` when the type or change has no v2 rendering.
pub fn render(
    resource: &Value,
    method: &str,
    patient: Option<&Value>,
    header: &Header,
    control_id: &str,
    now: &str,
) -> Option<Message> {
    let mut m = Message::new(Separators::default());
    match resource.get("resourceType").and_then(Value::as_str)? {
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
        let m = render(&p, "POST", None, &header(), "O42", "20261122120000+0800").unwrap();
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
        let update = render(&p, "PUT", None, &header(), "O43", "x").unwrap();
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
        let m = render(&o, "POST", Some(&p), &header(), "O44", "x").unwrap();
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
        assert!(render(&o, "POST", None, &header(), "O45", "x").is_none(), "an Observation needs its patient");
        assert!(render(&json!({"resourceType": "Encounter"}), "POST", Some(&p), &header(), "O46", "x").is_none());
    }
}
