//! ORU^R01: results from the laboratory, as a DiagnosticReport and its Observations.

use super::patient::{Demographics, Pid};
use super::*;

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

pub(super) fn map_oru(m: &Message, ch: &Channel) -> Result<Mapped, MapError> {
    let pid = required_pid(m)?;
    let Pid { resource: patient, system: psys, value: pval, mut warnings } =
        patient(pid, ch, Demographics::Lenient).map_err(|e| MapError::Invalid(vec![e]))?;
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
        format!("urn:lianyi:sid:order:{}", urn_part(&receiver))
    };
    let mut based_on: Option<Value> = None;
    // Observations of the patient before any OBR (v2.5+ allows them) belong to no
    // report: their group has a null report.
    let finish = |tx: &mut Tx, cur: Option<(Value, String, Vec<String>)>| {
        if let Some((mut report, filler, results)) = cur
            && !report.is_null()
        {
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
                let filler = filler.unwrap_or_else(|| {
                    warnings.push(err(
                        ErrorCode::RequiredFieldMissing,
                        Location::field("OBR", obr_seq, 3),
                        "OBR-3 (filler order number) and OBR-2 (placer order number) are empty: the report is known \
                         by the message control id, so a correction in a later message cannot find it",
                    ));
                    format!("{}-{obr_seq}", message_key(m))
                });
                let code = concept(seg, 4, 1, ch).unwrap_or_else(|| {
                    warnings.push(err(
                        ErrorCode::RequiredFieldMissing,
                        Location::field("OBR", obr_seq, 4),
                        "OBR-4 (universal service identifier) is empty: the report is named by its observations only",
                    ));
                    json!({"text": "OBR-4 ?"})
                });
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
                let (report, filler, results) =
                    current.get_or_insert_with(|| (Value::Null, format!("{}-patient", message_key(m)), Vec::new()));
                // Without its own identifier, an observation is what its report is of.
                let code = match concept(seg, 3, 1, ch) {
                    Some(c) => c,
                    None if report.get("code").is_some_and(|c| c.get("coding").is_some()) => {
                        warnings.push(err(
                            ErrorCode::RequiredFieldMissing,
                            Location::field("OBX", obx_seq, 3),
                            "OBX-3 (observation identifier) is empty: the observation was named by its OBR-4",
                        ));
                        report["code"].clone()
                    }
                    // Nothing names it: it cannot be stored as an observation of anything.
                    None => {
                        warnings.push(err(
                            ErrorCode::RequiredFieldMissing,
                            Location::field("OBX", obx_seq, 3),
                            "OBX-3 (observation identifier) is empty and no OBR names the test: the observation was \
                             left out",
                        ));
                        continue;
                    }
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
                // OBX-18: the analyser (equipment instance) that made the result — its use,
                // counted for the equipment register.
                let equipment = seg.first(18);
                if !equipment.is_empty() {
                    obs["device"] = json!({"identifier": {"value": equipment}, "display": equipment});
                }
                let when = [seg.first(14), report["effectiveDateTime"].as_str().unwrap_or_default().to_string()]
                    .into_iter()
                    .find(|s| !s.is_empty());
                if let Some(w) = when {
                    // The report's time is already FHIR (`2026-11-22T…`); OBX-14 is a DTM.
                    let fhir = w.as_bytes().get(4) == Some(&b'-');
                    match if fhir { Some(w.clone()) } else { date_time(&w, &ch.utc_offset) } {
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
        warnings,
        cleared: Vec::new(),
    })
}
