//! SIU: appointments booked, moved, cancelled or missed in another system.

use super::patient::{Demographics, Pid};
use super::*;

/// SIU^S12 (booked), S13 (rescheduled), S14 (changed), S15 (cancelled), S26 (no-show)
/// → one Appointment keyed by the filler's appointment id (SCH-2), else the placer's
/// (SCH-1).
pub(super) fn map_schedule(m: &Message, ch: &Channel, event: &str) -> Result<Mapped, MapError> {
    let Some(sch) = m.segment("SCH") else {
        return Err(MapError::Invalid(vec![err(
            ErrorCode::SegmentSequence,
            Location { segment: "SCH".into(), sequence: 1, ..Default::default() },
            format!("SIU^{event} needs an SCH segment"),
        )]));
    };
    let pid = required_pid(m)?;
    let Pid { resource: patient, system: psys, value: pval, warnings } =
        patient(pid, ch, Demographics::Lenient).map_err(|e| MapError::Invalid(vec![e]))?;
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
        warnings,
        cleared: Vec::new(),
    })
}
