//! ORM^O01 and OML^O21: orders from another system, as ServiceRequests.

use super::patient::{Demographics, Pid};
use super::*;

/// ORM^O01 and OML^O21: each ORC with its OBR → one ServiceRequest, keyed by the
/// placer order number (ORC-2, else OBR-2), else the filler's (ORC-3, else OBR-3).
pub(super) fn map_order(m: &Message, ch: &Channel, kind: &str) -> Result<Mapped, MapError> {
    let pid = required_pid(m)?;
    let Pid { resource: patient, system: psys, value: pval, mut warnings } =
        patient(pid, ch, Demographics::Lenient).map_err(|e| MapError::Invalid(vec![e]))?;
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
                // An OBR without its ORC (before v2.3 the ORC was optional): the order
                // is read from the OBR alone.
                let blank = Segment::new("ORC", m.separators);
                let o = match (orc, &current) {
                    (Some(o), Some((_, None))) => o,
                    // Another OBR under the same ORC: another order it controls.
                    (Some(o), Some((seq, Some(_)))) => {
                        let seq = *seq;
                        finish(&mut orders, current.take(), &mut errors);
                        current = Some((seq, None));
                        o
                    }
                    _ => {
                        finish(&mut orders, current.take(), &mut errors);
                        current = Some((orc_seq, None));
                        &blank
                    }
                };
                let Some((_, slot)) = current.as_mut() else { continue };
                let placer = [o.component(2, 1), seg.component(2, 1)].into_iter().find(|s| !s.is_empty());
                let filler = [o.component(3, 1), seg.component(3, 1)].into_iter().find(|s| !s.is_empty());
                let key = placer.clone().or(filler.clone()).unwrap_or_else(|| {
                    warnings.push(err(
                        ErrorCode::RequiredFieldMissing,
                        Location::field("ORC", orc_seq.max(1), 2),
                        "ORC-2/OBR-2 (placer order number) and ORC-3/OBR-3 (filler order number) are empty: the order \
                         is known by the message control id, so a later message cannot change it",
                    ));
                    format!("{}-{obr_seq}", message_key(m))
                });
                let code = concept(seg, 4, 1, ch);
                if code.is_none() {
                    warnings.push(err(
                        ErrorCode::RequiredFieldMissing,
                        Location::field("OBR", obr_seq, 4),
                        "OBR-4 (universal service identifier: what is ordered) is empty: the order was stored without it",
                    ));
                }
                let control = o.first(1);
                let order_status = o.first(5);
                let status = match (control.as_str(), order_status.as_str()) {
                    (_, "CM") => "completed",
                    (_, "CA" | "DC") | ("CA" | "OC" | "DC" | "OD" | "CR", _) => "revoked",
                    ("HD" | "OH", _) | (_, "HD") => "on-hold",
                    ("NW" | "XO" | "XR" | "RP" | "SC" | "SN" | "RO" | "" | "OK" | "RL" | "RE" | "SS", _) => "active",
                    _ => {
                        warnings.push(err(
                            ErrorCode::TableValueNotFound,
                            Location::field("ORC", orc_seq, 1),
                            format!(
                                "ORC-1 order control '{control}' is not one this hub maps (NW, XO, XR, RP, SC, CA, OC, \
                                 DC, HD, RL, RE): the order's status is unknown"
                            ),
                        ));
                        "unknown"
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
                if identifiers.is_empty() {
                    identifiers.push(json!({"system": ch.order_system, "value": key}));
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
                match code {
                    Some(c) => sr["code"] = c,
                    None => {
                        if let Some(o) = sr.as_object_mut() {
                            o.remove("code");
                        }
                    }
                }
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
        warnings,
        cleared: Vec::new(),
    })
}
