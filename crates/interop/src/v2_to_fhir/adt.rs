//! ADT: registration, admission, transfer, discharge, updates and their cancels
//! (Patient, Encounter), and the merge of two patients (A40).

use super::patient::{Demographics, PID_ELEMENTS, Pid};
use super::*;

/// What an ADT event does to the visit: its status, and whether EVN-2 (the event
/// time) starts or ends it.
fn adt_effect(event: &str) -> (&'static str, Option<&'static str>) {
    match event {
        "A01" | "A04" => ("in-progress", Some("start")),
        // Pre-admit and pending admit: the visit is planned.
        "A05" | "A14" => ("planned", None),
        "A03" => ("finished", Some("end")),
        "A11" => ("cancelled", None),
        // A02 transfer, A06/A07 change of class, A08 update, A13 cancel discharge: the
        // visit goes on.
        _ => ("in-progress", None),
    }
}

/// Events that register or update the patient, with a visit only when the message
/// names one (PV1-19); without it the patient is still registered, with a warning.
const REGISTRATIONS: &[&str] = &["A01", "A04", "A05", "A06", "A07", "A08", "A14"];
/// Events about the person alone (add, update person information): any PV1 is a
/// placeholder and no visit is recorded.
const PERSON_ONLY: &[&str] = &["A28", "A31"];

pub(super) fn map_adt(m: &Message, ch: &Channel, event: &str, nulls: &[Location]) -> Result<Mapped, MapError> {
    let pid = required_pid(m)?;
    let Pid { resource: patient, system: psys, value: pval, mut warnings } =
        patient(pid, ch, Demographics::Strict).map_err(|e| MapError::Invalid(vec![e]))?;
    // HL7 nulls in these fields delete the element they fill.
    let mut cleared: Vec<&'static str> = PID_ELEMENTS
        .iter()
        .filter(|(field, _)| nulls.iter().any(|l| l.segment == "PID" && l.sequence == 1 && l.field == *field))
        .map(|(_, element)| *element)
        .filter(|e| patient.get(*e).is_none())
        .collect();
    cleared.dedup();
    if patient.get("name").is_none() && !cleared.contains(&"name") {
        warnings.push(err(
            ErrorCode::RequiredFieldMissing,
            Location::field("PID", 1, 5),
            "PID-5 (patient name) is empty: a stored name is kept, a new patient has none",
        ));
    }
    let mut tx = Tx { entries: Vec::new() };
    let subject = tx.upsert(patient, &psys, &pval);
    let mut summary = format!("ADT^{event}: patient {pval}");
    let registration = REGISTRATIONS.contains(&event);
    let pv1 = m.segment("PV1").filter(|_| !PERSON_ONLY.contains(&event));
    if pv1.is_none() && !PERSON_ONLY.contains(&event) {
        let skipped = if registration {
            "no visit was recorded".to_string()
        } else {
            format!("the visit change of ADT^{event} was not recorded")
        };
        warnings.push(err(
            ErrorCode::SegmentSequence,
            Location { segment: "PV1".into(), sequence: 1, ..Default::default() },
            format!("the message has no PV1 segment: {skipped}"),
        ));
    }
    let visit = pv1.map(|p| p.first(19)).unwrap_or_default();
    if visit.is_empty() && pv1.is_some() {
        let skipped = if registration {
            "the patient was registered, no visit was recorded".to_string()
        } else {
            format!("the patient was updated, the visit change of ADT^{event} was not recorded")
        };
        warnings.push(err(
            ErrorCode::RequiredFieldMissing,
            Location::field("PV1", 1, 19),
            format!("PV1-19 (visit number) is empty: {skipped}"),
        ));
    }
    if let Some(pv1) = pv1.filter(|_| !visit.is_empty()) {
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
        // A visit time that cannot be read is left out (the visit is still recorded).
        let mut time = |raw: &str, segment: &str, field: usize| match dtm_at(raw, &ch.utc_offset, segment, field) {
            Ok(t) => Some(t),
            Err(MapError::Invalid(mut e)) => {
                if let Some(mut w) = e.pop() {
                    w.message = format!(
                        "{segment}-{field} is not a date/time (rule: YYYYMMDDHHMM[SS][+ZZZZ]): it was left out"
                    );
                    warnings.push(w);
                }
                None
            }
            Err(MapError::Reject(_)) => None,
        };
        let start = if !admitted.is_empty() {
            time(&admitted, "PV1", 44)
        } else if evn_is == Some("start") && !evn.is_empty() {
            time(&evn, "EVN", 2)
        } else {
            None
        };
        if let Some(t) = start {
            period.insert("start".into(), json!(t));
        }
        // It ends at PV1-45, else at the event of a discharge; not when the discharge
        // (A13) or the admission (A11) is being cancelled.
        if event != "A13" && event != "A11" {
            let end = if !discharged.is_empty() {
                time(&discharged, "PV1", 45)
            } else if evn_is == Some("end") && !evn.is_empty() {
                time(&evn, "EVN", 2)
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
    Ok(Mapped { bundle: tx.bundle(), summary, merge: None, warnings, cleared })
}

/// ADT^A40: PID is the surviving patient, MRG-1 the one merged into it.
pub(super) fn map_merge(m: &Message, ch: &Channel) -> Result<Mapped, MapError> {
    let pid = required_pid(m)?;
    let Pid { resource: patient, system: psys, value: pval, warnings } =
        patient(pid, ch, Demographics::Strict).map_err(|e| MapError::Invalid(vec![e]))?;
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
        warnings,
        cleared: Vec::new(),
    })
}
