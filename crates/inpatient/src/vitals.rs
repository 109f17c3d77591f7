//! Vital signs on the ward and the temperature chart (体温单). A nurse records a set of
//! readings — temperature, pulse, respiration, blood pressure — as vital-signs
//! Observations of the stay (LOINC 8310-5, 8867-4, 9279-1, 85354-9), each checked
//! against a plausible range. The chart's scales are here, without drawing: a week a
//! page from the day of admission, each day six columns of four hours (02, 06, 10,
//! 14, 18, 22), temperature 35–42 °C and pulse 40–180 /min on one grid (one degree
//! is 20 beats, five rows of 0.2 °C).

use lianyi_clinical::scheduling::local_instant;
use lianyi_security::Caller;
use serde_json::{Value, json};

use crate::beds::{arriving, current};
use crate::schedule::local_midnight;
use crate::stays::{Inpatient, InpatientError, reference_id};

const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";
const CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const DAY_MS: i64 = 86_400_000;
const BLOCK_MS: i64 = 4 * 3_600_000;

/// Days on one page of the chart.
pub const DAYS_PER_PAGE: i64 = 7;
/// Columns of a day (four hours each).
pub const COLUMNS_PER_DAY: i64 = 6;
/// The temperature scale, °C (top, bottom).
pub const TEMP_RANGE: (f64, f64) = (42.0, 35.0);
/// The pulse scale, /min (top, bottom): 20 beats to a degree.
pub const PULSE_RANGE: (f64, f64) = (180.0, 40.0);
/// Grid rows to a degree (0.2 °C each).
pub const ROWS_PER_DEGREE: f64 = 5.0;

/// The geometry of a chart page.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scale {
    /// Left edge and top edge of the grid.
    pub left: f64,
    pub top: f64,
    /// Width of a four-hour column, height of a 0.2 °C row.
    pub column: f64,
    pub row: f64,
}

impl Scale {
    /// The grid's height: 35 rows.
    pub fn height(&self) -> f64 {
        (TEMP_RANGE.0 - TEMP_RANGE.1) * ROWS_PER_DEGREE * self.row
    }

    pub fn width(&self) -> f64 {
        (DAYS_PER_PAGE * COLUMNS_PER_DAY) as f64 * self.column
    }

    /// The y of a temperature, kept within the grid.
    pub fn temperature_y(&self, celsius: f64) -> f64 {
        let c = celsius.clamp(TEMP_RANGE.1, TEMP_RANGE.0);
        self.top + (TEMP_RANGE.0 - c) * ROWS_PER_DEGREE * self.row
    }

    /// The y of a pulse, kept within the grid.
    pub fn pulse_y(&self, per_minute: f64) -> f64 {
        let p = per_minute.clamp(PULSE_RANGE.1, PULSE_RANGE.0);
        self.top + (PULSE_RANGE.0 - p) / 20.0 * ROWS_PER_DEGREE * self.row
    }

    /// The x of the middle of column `c` (0 is the first day's 02 column).
    pub fn column_x(&self, c: i64) -> f64 {
        self.left + (c as f64 + 0.5) * self.column
    }
}

/// The page (0 first) and column of a reading at `at` on a chart starting at the day
/// of `admitted`: the four-hour block of its Beijing day.
pub fn place(admitted: i64, at: i64) -> Option<(i64, i64)> {
    let first = local_midnight(admitted);
    if at < first {
        return None;
    }
    let day = (at - first) / DAY_MS;
    let block = (at - local_midnight(at)) / BLOCK_MS;
    Some((day / DAYS_PER_PAGE, (day % DAYS_PER_PAGE) * COLUMNS_PER_DAY + block))
}

/// One set of readings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reading {
    pub at: i64,
    pub temperature: Option<f64>,
    pub pulse: Option<f64>,
    pub respiration: Option<f64>,
    /// Systolic and diastolic, mm Hg.
    pub pressure: Option<(f64, f64)>,
    pub by: String,
}

/// A set of readings as the nurse's form gives them (empty: not taken).
#[derive(Clone, Debug, Default)]
pub struct VitalsForm {
    pub temperature: String,
    pub pulse: String,
    pub respiration: String,
    pub systolic: String,
    pub diastolic: String,
}

/// A reading of the form: `None` when empty, else its value in `range`.
fn reading(
    text: &str,
    field: &'static str,
    range: (f64, f64),
    errors: &mut Vec<lianyi_clinical::registry::FieldError>,
) -> Option<f64> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= range.0 && v <= range.1 => Some(v),
        _ => {
            errors.push(lianyi_clinical::registry::FieldError {
                field,
                code: "range",
                detail: format!("a number from {} to {}", range.0, range.1),
            });
            None
        }
    }
}

fn quantity(value: f64, unit: &str, code: &str) -> Value {
    json!({"value": value, "unit": unit, "system": UCUM, "code": code})
}

impl Inpatient {
    /// Records a set of readings of a stay on the ward (at least one); one
    /// transaction.
    pub async fn record_vitals(&self, caller: &Caller, stay: &str, form: &VitalsForm) -> Result<(), InpatientError> {
        if !Self::may_keep_ward(caller) {
            return Err(InpatientError::Forbidden("charting vital signs is not among your roles".into()));
        }
        let (_, v, care) = self.stay_for(caller, stay).await?;
        let Some((ward, _)) = current(&v, "wa").filter(|_| v["status"] == "in-progress" && !arriving(&v)) else {
            return Err(crate::stays::invalid("stay", "not-on-ward", "the patient is not on a ward"));
        };
        let ward = self.ward(&care, &ward).await?;
        let mut errors = Vec::new();
        let temperature = reading(&form.temperature, "temperature", (30.0, 45.0), &mut errors);
        let pulse = reading(&form.pulse, "pulse", (20.0, 300.0), &mut errors);
        let respiration = reading(&form.respiration, "respiration", (4.0, 80.0), &mut errors);
        let systolic = reading(&form.systolic, "systolic", (40.0, 300.0), &mut errors);
        let diastolic = reading(&form.diastolic, "diastolic", (20.0, 200.0), &mut errors);
        if systolic.is_some() != diastolic.is_some() {
            errors.push(lianyi_clinical::registry::FieldError {
                field: "diastolic",
                code: "pair",
                detail: "both systolic and diastolic".into(),
            });
        }
        if errors.is_empty() && [temperature, pulse, respiration, systolic].iter().all(Option::is_none) {
            errors.push(lianyi_clinical::registry::FieldError {
                field: "temperature",
                code: "none",
                detail: "at least one reading".into(),
            });
        }
        if !errors.is_empty() {
            return Err(InpatientError::Invalid(errors));
        }
        let patient = reference_id(&v["subject"], "Patient").unwrap_or_default();
        let at = local_instant(self.fhir.now_ms());
        let observation = |code: &str, display: &str| {
            json!({"resourceType": "Observation", "status": "final",
                "category": [{"coding": [{"system": CATEGORY, "code": "vital-signs"}]}],
                "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
                "subject": {"reference": format!("Patient/{patient}")},
                "encounter": {"reference": format!("Encounter/{stay}")},
                "effectiveDateTime": at,
                "performer": [{"display": caller.actor()}]})
        };
        let mut entries = Vec::new();
        let mut push = |mut o: Value, value: Value| {
            if value.get("component").is_some() {
                o["component"] = value["component"].clone();
            } else {
                o["valueQuantity"] = value;
            }
            entries.push(json!({"resource": o, "request": {"method": "POST", "url": "Observation"}}));
        };
        if let Some(t) = temperature {
            push(observation("8310-5", "Body temperature"), quantity(t, "°C", "Cel"));
        }
        if let Some(p) = pulse {
            push(observation("8867-4", "Heart rate"), quantity(p, "/min", "/min"));
        }
        if let Some(r) = respiration {
            push(observation("9279-1", "Respiratory rate"), quantity(r, "/min", "/min"));
        }
        if let (Some(s), Some(d)) = (systolic, diastolic) {
            push(
                observation("85354-9", "Blood pressure panel"),
                json!({"component": [
                    {"code": {"coding": [{"system": LOINC, "code": "8480-6", "display": "Systolic blood pressure"}]}, "valueQuantity": quantity(s, "mmHg", "mm[Hg]")},
                    {"code": {"coding": [{"system": LOINC, "code": "8462-4", "display": "Diastolic blood pressure"}]}, "valueQuantity": quantity(d, "mmHg", "mm[Hg]")}]}),
            );
        }
        let campus = lianyi_security::CampusId::parse(&ward.campus)
            .map_err(|_| crate::stays::invalid("ward", "ward", "a ward"))?;
        let writer = care.at_campus(&campus).ok_or_else(|| {
            InpatientError::Forbidden(format!("the wards of {} are not among your campuses", ward.campus))
        })?;
        self.fhir
            .process_bundle(&writer, json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}), true)
            .await?;
        Ok(())
    }

    /// A stay's readings, oldest first (one per recorded set), and the admission time.
    pub async fn vitals(&self, caller: &Caller, stay: &str) -> Result<(i64, Vec<Reading>), InpatientError> {
        let (_, v, care) = self.stay_for(caller, stay).await?;
        let admitted =
            lianyi_fhir::datetime::parse_range(v["period"]["start"].as_str().unwrap_or_default()).map_or(0, |r| r.low);
        let rows = self
            .search(
                &care,
                "Observation",
                &[
                    ("encounter", format!("Encounter/{stay}")),
                    ("category", format!("{CATEGORY}|vital-signs")),
                    ("_count", "1000".into()),
                ],
            )
            .await?;
        let mut sets: Vec<Reading> = Vec::new();
        for o in &rows {
            let Some(at) = o["effectiveDateTime"].as_str().and_then(lianyi_fhir::datetime::parse_range).map(|r| r.low)
            else {
                continue;
            };
            let i = match sets.iter().position(|s| s.at == at) {
                Some(i) => i,
                None => {
                    sets.push(Reading {
                        at,
                        by: o["performer"][0]["display"].as_str().unwrap_or_default().to_string(),
                        ..Reading::default()
                    });
                    sets.len() - 1
                }
            };
            let value = o["valueQuantity"]["value"].as_f64();
            match o["code"]["coding"][0]["code"].as_str() {
                Some("8310-5") => sets[i].temperature = value,
                Some("8867-4") => sets[i].pulse = value,
                Some("9279-1") => sets[i].respiration = value,
                Some("85354-9") => {
                    let part = |k: usize| o["component"][k]["valueQuantity"]["value"].as_f64();
                    if let (Some(s), Some(d)) = (part(0), part(1)) {
                        sets[i].pressure = Some((s, d));
                    }
                }
                _ => {}
            }
        }
        sets.sort_by_key(|s| s.at);
        Ok((admitted, sets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCALE: Scale = Scale { left: 40.0, top: 20.0, column: 12.0, row: 6.0 };

    #[test]
    fn temperature_and_pulse_share_one_grid_twenty_beats_to_a_degree() {
        assert_eq!(SCALE.height(), 35.0 * 6.0, "35 rows of 0.2 °C from 42 down to 35");
        assert_eq!(SCALE.temperature_y(42.0), 20.0);
        assert_eq!(SCALE.temperature_y(35.0), 20.0 + 210.0);
        assert_eq!(SCALE.temperature_y(37.0), SCALE.pulse_y(80.0), "37 °C is level with 80 /min");
        assert_eq!(SCALE.temperature_y(39.0), SCALE.pulse_y(120.0));
        assert_eq!(SCALE.pulse_y(180.0), SCALE.top);
        assert!((SCALE.temperature_y(38.2) - (20.0 + 19.0 * 6.0)).abs() < 1e-9, "0.2 °C a row");
        // Off the scale: drawn on its edge, never off the chart.
        assert_eq!(SCALE.temperature_y(43.5), SCALE.top);
        assert_eq!(SCALE.temperature_y(33.0), SCALE.top + SCALE.height());
        assert_eq!(SCALE.pulse_y(20.0), SCALE.top + SCALE.height());
        assert_eq!(SCALE.width(), 42.0 * 12.0, "a week of six columns");
    }

    #[test]
    fn a_reading_falls_in_its_day_and_four_hour_column() {
        // Admitted 2026-12-07 23:00 Beijing (15:00 UTC).
        let admitted = 1_796_655_600_000;
        let h = 3_600_000;
        let dec7 = local_midnight(admitted);
        assert_eq!(place(admitted, admitted), Some((0, 5)), "23:00 is in 20:00–24:00, the sixth column (22)");
        assert_eq!(place(admitted, dec7 + DAY_MS + 2 * h), Some((0, 6)), "next day 02:00: day 2, first column");
        assert_eq!(place(admitted, dec7 + DAY_MS + 9 * h + 59 * 60_000), Some((0, 8)), "09:59 is the 10 column");
        assert_eq!(place(admitted, dec7 + 7 * DAY_MS + 14 * h), Some((1, 3)), "day 8 starts the second page");
        assert_eq!(place(admitted, dec7 - 1), None, "before the day of admission");
        assert_eq!(SCALE.column_x(0), 40.0 + 6.0);
    }
}
