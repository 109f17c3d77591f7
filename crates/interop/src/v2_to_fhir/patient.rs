//! PID: the patient a message is about, and the identifier it is matched on.

use lianyi_services::identifiers::{ResidentId, mrn_system};

use super::*;

/// How the platform's rules on a patient (a valid resident ID number, a birth date
/// and sex that agree with it) apply. A registration (ADT) is the patient's record
/// itself: breaking them is an error (AE), as on every other door. Every other message
/// (results, orders, appointments) is about something else: the offending field is
/// left out with a warning, so the results are not lost. A field that cannot be read
/// at all (a birth date of month 13, an unknown sex code) is left out with a warning
/// in both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Demographics {
    Strict,
    Lenient,
}

/// The patient of a message (PID).
pub(super) struct Pid {
    pub resource: Value,
    /// The identifier it is matched on: (system, value).
    pub system: String,
    pub value: String,
    /// What was left out or assumed, for ERR segments of severity W.
    pub warnings: Vec<Hl7Error>,
}

/// The Patient element each PID field fills (PID-13 and PID-14 both fill `telecom`).
pub(super) const PID_ELEMENTS: &[(usize, &str)] = &[
    (3, "identifier"),
    (5, "name"),
    (7, "birthDate"),
    (8, "gender"),
    (11, "address"),
    (13, "telecom"),
    (14, "telecom"),
];

/// The PID field and Patient element an expression names (`Patient.birthDate`,
/// `Patient.identifier[1]`, also behind a bundle entry's prefix).
pub fn pid_field_of(expression: &str) -> Option<(usize, &'static str)> {
    let element = expression.rsplit(": ").next().unwrap_or_default().strip_prefix("Patient.")?;
    PID_ELEMENTS.iter().copied().find(|(_, name)| {
        element.strip_prefix(name).is_some_and(|rest| rest.is_empty() || rest.starts_with(['[', '.']))
    })
}

/// The type codes of a resident ID number in PID-3.5.
const RESIDENT_ID_TYPES: &[&str] = &["NNCHN", "NI", "RI", "CZ"];

/// Which repetition of PID-3 holds the MRN: the one the listener's profile names, else
/// the one typed `MR`, else the first. `None` when the profile names one that is
/// not there.
fn mrn_repetition(pid: &Segment, ch: &Channel) -> Option<usize> {
    let reps = pid.repetitions(3).len();
    let has = |rep: usize| !pid.rep_component(3, rep, 1).trim().is_empty();
    let p = &ch.profile;
    if p.mrn_type.is_some() || p.mrn_authority.is_some() {
        return (1..=reps).find(|&rep| {
            has(rep)
                && p.mrn_type.as_deref().is_none_or(|t| pid.rep_component(3, rep, 5).trim().eq_ignore_ascii_case(t))
                && p.mrn_authority.as_deref().is_none_or(|a| pid.value(3, rep, 4, 1).trim().eq_ignore_ascii_case(a))
        });
    }
    (1..=reps)
        .find(|&rep| has(rep) && pid.rep_component(3, rep, 5).trim() == "MR")
        .or_else(|| (1..=reps).find(|&r| has(r)))
}

/// The patient of a message (PID), and the identifier it is matched on.
pub(super) fn patient(pid: &Segment, ch: &Channel, strictness: Demographics) -> Result<Pid, Hl7Error> {
    let strict = strictness == Demographics::Strict;
    let mut warnings = Vec::new();
    // Senders of v2.3 and earlier may carry the number only in PID-2 (external id)
    // or PID-4 (alternate id): read it there when PID-3 is blank.
    let moved;
    let pid = if (1..=pid.repetitions(3).len()).all(|r| pid.rep_component(3, r, 1).trim().is_empty())
        && let Some(field) = [2usize, 4].into_iter().find(|f| !pid.component(*f, 1).trim().is_empty())
    {
        let mut copy = pid.clone();
        let raw = copy.raw(field).to_string();
        copy.set_raw(3, &raw);
        warnings.push(err(
            ErrorCode::RequiredFieldMissing,
            Location::field("PID", 1, 3),
            format!("PID-3 is empty: the patient identifier was read from PID-{field}"),
        ));
        moved = copy;
        &moved
    } else {
        pid
    };
    let Some(key_rep) = mrn_repetition(pid, ch) else {
        let rule = match (&ch.profile.mrn_type, &ch.profile.mrn_authority) {
            (Some(t), Some(a)) => format!("type {t} of authority {a}"),
            (Some(t), None) => format!("type {t}"),
            (None, Some(a)) => format!("of authority {a}"),
            (None, None) => "any".into(),
        };
        return Err(err(
            ErrorCode::RequiredFieldMissing,
            Location::field("PID", 1, 3),
            format!(
                "PID-3 must hold the patient's medical record number ({rule} identifier, as this listener's profile says)"
            ),
        ));
    };
    let profiled = ch.profile.mrn_type.is_some() || ch.profile.mrn_authority.is_some();
    let key_type = pid.rep_component(3, key_rep, 5).trim().to_string();
    if !profiled && key_type != "MR" {
        warnings.push(err(
            ErrorCode::RequiredFieldMissing,
            Location { repetition: key_rep, ..Location::field("PID", 1, 3) },
            format!(
                "PID-3 has no identifier of type MR: repetition {key_rep} (type '{key_type}') was taken as the medical \
                 record number (a listener profile can say which one is)"
            ),
        ));
    }
    let mut identifiers = Vec::new();
    let mut key = None;
    for rep in 1..=pid.repetitions(3).len() {
        let value = pid.rep_component(3, rep, 1).trim().to_string();
        if value.is_empty() {
            continue;
        }
        let authority = pid.value(3, rep, 4, 1).trim().to_string();
        let kind = pid.rep_component(3, rep, 5).trim().to_string();
        let campus_system = ch.profile.campuses.get(&authority.to_ascii_uppercase()).map(|c| mrn_system(c.as_str()));
        let is_mrn = rep == key_rep || (kind == "MR" && campus_system.is_some());
        let system = if is_mrn {
            campus_system.unwrap_or_else(|| ch.mrn_system.clone())
        } else if RESIDENT_ID_TYPES.contains(&kind.as_str()) {
            if let Err(e) = ResidentId::parse(&value) {
                let problem = err(
                    ErrorCode::DataType,
                    Location { repetition: rep, ..Location::field("PID", 1, 3) },
                    format!("PID-3 repetition {rep} (type {kind}) is not a valid resident ID number: {e}"),
                );
                demographic(strict, &mut warnings, problem)?;
                continue;
            }
            RESIDENT_ID_SYSTEM.to_string()
        } else {
            let authority = if authority.is_empty() { "unknown".to_string() } else { urn_part(&authority) };
            let kind = if kind.is_empty() { "id".to_string() } else { urn_part(&kind) };
            format!("urn:lianyi:sid:hl7:{authority}:{kind}")
        };
        let mut id = json!({"system": system, "value": value});
        if is_mrn {
            id["type"] = json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]});
        }
        if rep == key_rep {
            key = Some((system, value));
        }
        identifiers.push(id);
    }
    let Some((system, value)) = key else {
        return Err(err(
            ErrorCode::RequiredFieldMissing,
            Location::field("PID", 1, 3),
            "PID-3 must hold the patient's medical record number",
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
        // PID-7 is a DTM: a time after the date is allowed and ignored.
        match date_time(&birth, &ch.utc_offset).map(|d| d.chars().take(10).collect::<String>()) {
            Some(date) => p["birthDate"] = json!(date),
            None => demographic(
                false,
                &mut warnings,
                err(ErrorCode::DataType, Location::field("PID", 1, 7), "PID-7 is not a date (rule: YYYYMMDD)"),
            )?,
        }
    }
    let gender = match pid.first(8).as_str() {
        "M" => Some("male"),
        "F" => Some("female"),
        "O" | "A" | "X" => Some("other"),
        "U" | "N" => Some("unknown"),
        "" => None,
        _ => {
            demographic(
                false,
                &mut warnings,
                err(
                    ErrorCode::TableValueNotFound,
                    Location::field("PID", 1, 8),
                    "PID-8 is not a sex code (rule: HL7 table 0001: M, F, O, U, A, N, X)",
                ),
            )?;
            None
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
    // The platform's rules on a patient (resident ID number, birth date and sex agree,
    // no birth in the future), named by the PID field they concern.
    for _ in 0..3 {
        let Err(outcome) = lianyi_services::rules::check("Patient", &p, ch.now_ms) else { break };
        let Some(issue) = outcome.issues.into_iter().next() else { break };
        let (field, element) = issue.expression.as_deref().and_then(pid_field_of).unwrap_or((3, "identifier"));
        let problem = err(ErrorCode::DataType, Location::field("PID", 1, field), issue.diagnostics);
        demographic(strict, &mut warnings, problem)?;
        if let Some(o) = p.as_object_mut() {
            match element {
                "identifier" => {
                    if let Some(ids) = o.get_mut("identifier").and_then(Value::as_array_mut) {
                        ids.retain(|i| i["system"] != RESIDENT_ID_SYSTEM);
                    }
                }
                other => {
                    o.remove(other);
                }
            }
        }
    }
    Ok(Pid { resource: p, system, value, warnings })
}

/// A demographic field that cannot be read: an error when strict, else left out
/// with a warning.
fn demographic(strict: bool, warnings: &mut Vec<Hl7Error>, problem: Hl7Error) -> Result<(), Hl7Error> {
    if strict {
        return Err(problem);
    }
    warnings.push(Hl7Error { message: format!("{}; it was left out", problem.message), ..problem });
    Ok(())
}
