//! Nursing on the ward (护理): risk assessments by their standard scales — falls by the
//! Morse Fall Scale, pressure injuries by the Braden Scale — each an Observation of the
//! stay (category `survey`) with its items as components and its total; a high risk
//! raises the patient's Flag (shown on the bed board and in the handover list) and a
//! later assessment below it ends that flag, in the same transaction. Nursing notes
//! (护理记录) and intake and output (出入量, millilitres) are Observations of the stay too.
//! The scales are coded in Lianyi's own system (`urn:lianyi:nursing-scale`), their
//! items by name.

use lianyi_clinical::scheduling::local_instant;
use lianyi_security::Caller;
use serde_json::{Value, json};

use crate::beds::{arriving, current};
use crate::stays::{Inpatient, InpatientError, invalid, reference_id};

/// The scales' code system.
pub const SCALE_SYSTEM: &str = "urn:lianyi:nursing-scale";
/// The flags a high risk raises: `fall-risk`, `pressure-risk`.
pub const FLAG_SYSTEM: &str = "urn:lianyi:nursing-flag";
/// Nursing notes and intake/output entries.
pub const NURSING_SYSTEM: &str = "urn:lianyi:nursing";
const CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const UCUM: &str = "http://unitsofmeasure.org";

/// A standard risk scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Morse Fall Scale: 0–125, a higher total a higher risk.
    Morse,
    /// Braden Scale for pressure-injury risk: 6–23, a lower total a higher risk.
    Braden,
}

/// How high a risk a total says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Risk {
    Low,
    Moderate,
    High,
}

impl Risk {
    pub fn code(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Moderate => "moderate",
            Risk::High => "high",
        }
    }
}

impl Scale {
    pub const ALL: [Scale; 2] = [Scale::Morse, Scale::Braden];

    pub fn code(self) -> &'static str {
        match self {
            Scale::Morse => "morse",
            Scale::Braden => "braden",
        }
    }

    pub fn parse(s: &str) -> Option<Scale> {
        Scale::ALL.into_iter().find(|x| x.code() == s)
    }

    /// Each item and the scores it may take, in the scale's order.
    pub fn items(self) -> &'static [(&'static str, &'static [i64])] {
        match self {
            Scale::Morse => &[
                ("history", &[0, 25]),
                ("secondary", &[0, 15]),
                ("aid", &[0, 15, 30]),
                ("iv", &[0, 20]),
                ("gait", &[0, 10, 20]),
                ("mental", &[0, 15]),
            ],
            Scale::Braden => &[
                ("sensory", &[1, 2, 3, 4]),
                ("moisture", &[1, 2, 3, 4]),
                ("activity", &[1, 2, 3, 4]),
                ("mobility", &[1, 2, 3, 4]),
                ("nutrition", &[1, 2, 3, 4]),
                ("friction", &[1, 2, 3]),
            ],
        }
    }

    /// The risk of a total: Morse ≥ 45 high, 25–44 moderate; Braden ≤ 12 high, 13–14
    /// moderate (15–18 is "at risk", below the ward's flag).
    pub fn risk(self, total: i64) -> Risk {
        match self {
            Scale::Morse if total >= 45 => Risk::High,
            Scale::Morse if total >= 25 => Risk::Moderate,
            Scale::Braden if total <= 12 => Risk::High,
            Scale::Braden if total <= 14 => Risk::Moderate,
            _ => Risk::Low,
        }
    }

    /// The flag a high risk raises.
    pub fn flag(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Scale::Morse => ("fall-risk", "跌倒高风险", "High fall risk"),
            Scale::Braden => ("pressure-risk", "压力性损伤高风险", "High pressure-injury risk"),
        }
    }
}

/// Scores a filled scale: the total, or every item missing or out of its scores.
pub fn score(scale: Scale, answers: &[(String, String)]) -> Result<i64, Vec<&'static str>> {
    let mut total = 0;
    let mut wrong = Vec::new();
    for (item, allowed) in scale.items() {
        let given = answers.iter().find(|(k, _)| k == item).and_then(|(_, v)| v.trim().parse::<i64>().ok());
        match given {
            Some(v) if allowed.contains(&v) => total += v,
            _ => wrong.push(*item),
        }
    }
    if wrong.is_empty() { Ok(total) } else { Err(wrong) }
}

/// An assessment as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessment {
    pub scale: Scale,
    pub total: i64,
    pub risk: Risk,
    pub at: i64,
    pub by: String,
}

/// A nursing note or an intake/output entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `note`, `intake` or `output`.
    pub kind: String,
    pub text: String,
    /// Millilitres, for intake and output.
    pub ml: Option<i64>,
    pub at: i64,
    pub by: String,
}

fn ms(v: &Value) -> i64 {
    v.as_str().and_then(lianyi_fhir::datetime::parse_range).map_or(0, |r| r.low)
}

impl Inpatient {
    /// The stay on its ward, and the ward's nurse writing at its campus.
    async fn nursing_writer(&self, caller: &Caller, stay: &str) -> Result<(Value, Caller, String), InpatientError> {
        if !Self::may_keep_ward(caller) {
            return Err(InpatientError::Forbidden("nursing records are kept by the ward's nurses".into()));
        }
        let (_, v, care) = self.stay_for(caller, stay).await?;
        let Some((ward, _)) = current(&v, "wa").filter(|_| v["status"] == "in-progress" && !arriving(&v)) else {
            return Err(invalid("stay", "not-on-ward", "the patient is not on a ward"));
        };
        let ward = self.ward(&care, &ward).await?;
        if !Self::nurse_at(caller, &ward.campus) {
            return Err(InpatientError::Forbidden(format!("the wards of {} are not among your campuses", ward.campus)));
        }
        let campus = lianyi_security::CampusId::parse(&ward.campus).map_err(|_| invalid("ward", "ward", "a ward"))?;
        let writer = care.at_campus(&campus).ok_or_else(|| {
            InpatientError::Forbidden(format!("the wards of {} are not among your campuses", ward.campus))
        })?;
        let patient = reference_id(&v["subject"], "Patient").unwrap_or_default().to_string();
        Ok((v, writer, patient))
    }

    /// Records an assessment by `scale` (its items' scores by name); a high risk raises
    /// the patient's flag, a lower one ends it — one transaction. Returns the total and
    /// its risk.
    pub async fn record_assessment(
        &self,
        caller: &Caller,
        stay: &str,
        scale: &str,
        answers: &[(String, String)],
    ) -> Result<(i64, Risk), InpatientError> {
        let Some(scale) = Scale::parse(scale) else {
            return Err(invalid("scale", "scale", "the Morse Fall Scale or the Braden Scale"));
        };
        // The items missing or out of their scores, named `{scale}-{item}`.
        let total = score(scale, answers).map_err(|items| {
            let named: Vec<String> = items.iter().map(|i| format!("{}-{i}", scale.code())).collect();
            invalid("item", "item", named.join(","))
        })?;
        let (_, writer, patient) = self.nursing_writer(caller, stay).await?;
        let risk = scale.risk(total);
        let now = self.fhir.now_ms();
        let components: Vec<Value> = scale
            .items()
            .iter()
            .filter_map(|(item, _)| {
                let v: i64 = answers.iter().find(|(k, _)| k == item)?.1.trim().parse().ok()?;
                Some(json!({"code": {"coding": [{"system": SCALE_SYSTEM, "code": format!("{}-{item}", scale.code())}]}, "valueInteger": v}))
            })
            .collect();
        let observation = json!({"resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": CATEGORY, "code": "survey"}]}],
            "code": {"coding": [{"system": SCALE_SYSTEM, "code": scale.code()}], "text": scale.code()},
            "subject": {"reference": format!("Patient/{patient}")},
            "encounter": {"reference": format!("Encounter/{stay}")},
            "effectiveDateTime": local_instant(now),
            "performer": [{"display": caller.actor()}],
            "valueInteger": total,
            "interpretation": [{"coding": [{"system": SCALE_SYSTEM, "code": risk.code()}]}],
            "component": components});
        let mut entries = vec![json!({"resource": observation, "request": {"method": "POST", "url": "Observation"}})];
        // The patient's flag of this scale: raised on a high risk, ended below it.
        let (code, zh, en) = scale.flag();
        let flags = self
            .search(&writer, "Flag", &[("patient", format!("Patient/{patient}")), ("_count", "1000".into())])
            .await?;
        let open: Vec<&Value> = flags
            .iter()
            .filter(|f| {
                f["status"] == "active"
                    && f["code"]["coding"][0]["system"] == FLAG_SYSTEM
                    && f["code"]["coding"][0]["code"] == code
            })
            .collect();
        if risk == Risk::High && open.is_empty() {
            entries.push(json!({"resource": {"resourceType": "Flag", "status": "active",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/flag-category", "code": "clinical"}]}],
                "code": {"coding": [{"system": FLAG_SYSTEM, "code": code, "display": en}], "text": zh},
                "subject": {"reference": format!("Patient/{patient}")},
                "encounter": {"reference": format!("Encounter/{stay}")},
                "period": {"start": local_instant(now)},
                "author": {"display": caller.actor()}},
                "request": {"method": "POST", "url": "Flag"}}));
        } else if risk != Risk::High {
            for f in open {
                let mut f = f.clone();
                f["status"] = json!("inactive");
                f["period"]["end"] = json!(local_instant(now));
                if let Some(o) = f.as_object_mut() {
                    o.remove("meta");
                }
                let id = f["id"].as_str().unwrap_or_default().to_string();
                entries.push(json!({"resource": f, "request": {"method": "PUT", "url": format!("Flag/{id}")}}));
            }
        }
        self.fhir
            .process_bundle(&writer, json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}), true)
            .await?;
        Ok((total, risk))
    }

    /// Records a nursing note, or an intake or output in millilitres (with what it was:
    /// oral, infusion, urine, drainage …).
    pub async fn record_entry(
        &self,
        caller: &Caller,
        stay: &str,
        kind: &str,
        text: &str,
        ml: &str,
    ) -> Result<(), InpatientError> {
        let text = text.trim();
        let mut errors = Vec::new();
        let field =
            |field, code, detail: &str| lianyi_clinical::registry::FieldError { field, code, detail: detail.into() };
        let ml = match kind {
            "note" => {
                if !(2..=2000).contains(&text.chars().count()) {
                    errors.push(field("entry_text", "nursing-note", "the note (2 to 2000 characters)"));
                }
                None
            }
            "intake" | "output" => {
                if !(1..=100).contains(&text.chars().count()) {
                    errors.push(field("entry_text", "what", "what it was (oral, infusion, urine …)"));
                }
                match ml.trim().parse::<i64>() {
                    Ok(v) if (1..=20_000).contains(&v) => Some(v),
                    _ => {
                        errors.push(field("ml", "ml", "whole millilitres, 1 to 20000"));
                        None
                    }
                }
            }
            _ => {
                errors.push(field("entry_kind", "entry-kind", "a note, an intake or an output"));
                None
            }
        };
        if !errors.is_empty() {
            return Err(InpatientError::Invalid(errors));
        }
        let (_, writer, patient) = self.nursing_writer(caller, stay).await?;
        let mut o = json!({"resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": CATEGORY, "code": if kind == "note" { "survey" } else { "exam" }}]}],
            "code": {"coding": [{"system": NURSING_SYSTEM, "code": kind}]},
            "subject": {"reference": format!("Patient/{patient}")},
            "encounter": {"reference": format!("Encounter/{stay}")},
            "effectiveDateTime": local_instant(self.fhir.now_ms()),
            "performer": [{"display": caller.actor()}]});
        match ml {
            None => o["valueString"] = json!(text),
            Some(v) => {
                o["valueQuantity"] = json!({"value": v, "unit": "mL", "system": UCUM, "code": "mL"});
                o["note"] = json!([{"text": text}]);
            }
        }
        self.fhir
            .process_bundle(
                &writer,
                json!({"resourceType": "Bundle", "type": "transaction",
                       "entry": [{"resource": o, "request": {"method": "POST", "url": "Observation"}}]}),
                true,
            )
            .await?;
        Ok(())
    }

    /// A stay's assessments, notes and intake/output, newest first.
    pub async fn nursing(&self, caller: &Caller, stay: &str) -> Result<(Vec<Assessment>, Vec<Entry>), InpatientError> {
        let (_, _, care) = self.stay_for(caller, stay).await?;
        let rows = self
            .search(&care, "Observation", &[("encounter", format!("Encounter/{stay}")), ("_count", "1000".into())])
            .await?;
        let mut assessments = Vec::new();
        let mut entries = Vec::new();
        for o in &rows {
            let coding = &o["code"]["coding"][0];
            let at = ms(&o["effectiveDateTime"]);
            let by = o["performer"][0]["display"].as_str().unwrap_or_default().to_string();
            if coding["system"] == SCALE_SYSTEM {
                let Some(scale) = coding["code"].as_str().and_then(Scale::parse) else { continue };
                let total = o["valueInteger"].as_i64().unwrap_or_default();
                assessments.push(Assessment { scale, total, risk: scale.risk(total), at, by });
            } else if coding["system"] == NURSING_SYSTEM {
                let kind = coding["code"].as_str().unwrap_or_default().to_string();
                let text = o["valueString"].as_str().or_else(|| o["note"][0]["text"].as_str()).unwrap_or_default();
                entries.push(Entry { kind, text: text.to_string(), ml: o["valueQuantity"]["value"].as_i64(), at, by });
            }
        }
        assessments.sort_by_key(|a| std::cmp::Reverse(a.at));
        entries.sort_by_key(|e| std::cmp::Reverse(e.at));
        Ok((assessments, entries))
    }
}

/// Intake, output and their balance (mL) of the entries on the Beijing day of `day_ms`.
pub fn balance(entries: &[Entry], day_ms: i64) -> (i64, i64, i64) {
    let from = crate::schedule::local_midnight(day_ms);
    let on_day = |e: &&Entry| e.at >= from && e.at < from + 86_400_000;
    let sum = |kind: &str| entries.iter().filter(on_day).filter(|e| e.kind == kind).filter_map(|e| e.ml).sum::<i64>();
    let (i, o) = (sum("intake"), sum("output"));
    (i, o, i - o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(pairs: &[(&str, i64)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_scales_score_and_grade_as_published() {
        // Morse: a fall before (25), a walker (15), an infusion (20), weak gait (10).
        let morse = answers(&[("history", 25), ("secondary", 0), ("aid", 15), ("iv", 20), ("gait", 10), ("mental", 0)]);
        assert_eq!(score(Scale::Morse, &morse), Ok(70));
        assert_eq!(Scale::Morse.risk(70), Risk::High);
        assert_eq!(Scale::Morse.risk(44), Risk::Moderate);
        assert_eq!(Scale::Morse.risk(24), Risk::Low);
        // Braden: 2+2+1+2+3+1 = 11, high; 6 is the floor, 23 the top.
        let braden = answers(&[
            ("sensory", 2),
            ("moisture", 2),
            ("activity", 1),
            ("mobility", 2),
            ("nutrition", 3),
            ("friction", 1),
        ]);
        assert_eq!(score(Scale::Braden, &braden), Ok(11));
        assert_eq!(Scale::Braden.risk(11), Risk::High);
        assert_eq!(Scale::Braden.risk(14), Risk::Moderate);
        assert_eq!(Scale::Braden.risk(19), Risk::Low);
        // A score an item cannot take, or an item left out, is named.
        let bad = answers(&[("history", 20), ("secondary", 0), ("aid", 15), ("iv", 20), ("gait", 10)]);
        assert_eq!(score(Scale::Morse, &bad), Err(vec!["history", "mental"]));
        let friction4 = answers(&[
            ("sensory", 4),
            ("moisture", 4),
            ("activity", 4),
            ("mobility", 4),
            ("nutrition", 4),
            ("friction", 4),
        ]);
        assert_eq!(score(Scale::Braden, &friction4), Err(vec!["friction"]));
    }

    #[test]
    fn a_day_s_intake_and_output_balance() {
        let day = 1_796_572_800_000; // 2026-12-07 00:00 Beijing
        let e = |kind: &str, ml: i64, at: i64| Entry {
            kind: kind.into(),
            text: String::new(),
            ml: Some(ml),
            at,
            by: String::new(),
        };
        let entries = [
            e("intake", 500, day + 3_600_000),
            e("intake", 1000, day + 10 * 3_600_000),
            e("output", 800, day + 12 * 3_600_000),
            e("output", 300, day - 1),
            e("intake", 200, day + 86_400_000),
        ];
        assert_eq!(balance(&entries, day + 5), (1500, 800, 700));
    }
}

/// A patient on the shift's handover list (交班).
#[derive(Clone, Debug, PartialEq)]
pub struct HandoverLine {
    /// The bed's Location id.
    pub bed: String,
    pub card: crate::stays::StayCard,
    /// The latest readings: (temperature, pulse, respiration, blood pressure) as charted.
    pub vitals: Option<crate::vitals::Reading>,
    /// Today's doses not given as ordered: (what, state code).
    pub doses: Vec<(String, &'static str)>,
    /// The latest risk of each scale assessed.
    pub risks: Vec<(Scale, i64, Risk)>,
    /// The latest nursing note.
    pub note: Option<Entry>,
    /// Today's intake, output and balance (mL), when any was recorded.
    pub io: Option<(i64, i64, i64)>,
}

impl Inpatient {
    /// The ward's handover list: every patient on it with what the next shift needs —
    /// alerts, the latest readings, today's doses not given, the latest risks, the
    /// latest note and today's intake and output.
    pub async fn handover(&self, caller: &Caller, ward: &str) -> Result<Vec<HandoverLine>, InpatientError> {
        if !Self::may_keep_ward(caller) {
            return Err(InpatientError::Forbidden("the handover list is the ward's nurses'".into()));
        }
        let now = self.fhir.now_ms();
        let board = self.board(caller, ward).await?;
        let doses = self.doses(caller, ward, now).await?;
        let mut out = Vec::new();
        for b in &board.beds {
            let Some(card) = &b.stay else { continue };
            if card.arriving {
                continue;
            }
            let (assessments, entries) = self.nursing(caller, &card.id).await?;
            let (_, readings) = self.vitals(caller, &card.id).await?;
            let mut risks: Vec<(Scale, i64, Risk)> = Vec::new();
            for a in &assessments {
                if !risks.iter().any(|(s, _, _)| *s == a.scale) {
                    risks.push((a.scale, a.total, a.risk));
                }
            }
            let day = crate::schedule::local_midnight(now);
            let io = entries.iter().any(|e| e.ml.is_some() && e.at >= day).then(|| balance(&entries, now));
            out.push(HandoverLine {
                bed: b.bed.id.clone(),
                card: card.clone(),
                vitals: readings.last().cloned(),
                doses: doses
                    .iter()
                    .filter(|d| d.stay == card.id)
                    .filter(|d| {
                        use crate::administration::DoseState::*;
                        matches!(d.state, Overdue | Refused | Held)
                    })
                    .map(|d| (d.order.what.clone(), d.state.code()))
                    .collect(),
                risks,
                note: entries.iter().find(|e| e.kind == "note").cloned(),
                io,
            });
        }
        Ok(out)
    }
}
