//! The service desk's SLA settings, kept by the IT manager: the priority matrix
//! (impact × urgency → P1 … P4), each priority's response and resolution targets, the
//! business hours, and the calendar days that differ from the built-in State Council
//! schedule ([`crate::sla::CHINA`]) — a year not yet in it, a hospital's own day off.
//! A ticket's clock is always counted anew from its events, so a changed target or
//! calendar applies to open tickets at once and loses no paused time.

use serde_json::{Value, json};

use crate::cmdb::FieldError;
use crate::sla::{CHINA, Calendar, SlaError, Turn, WorkingHours, parse_day};

/// The defaults: the matrix, the targets in working minutes, and the hours in minutes
/// of the day (08:00–12:00, 13:30–17:30, Beijing time).
pub const MATRIX: [[i64; 3]; 3] = [[1, 2, 3], [2, 3, 4], [3, 4, 4]];
pub const TARGETS: [(i64, i64); 4] = [(15, 240), (30, 480), (120, 1440), (480, 2880)];
pub const BUSINESS_HOURS: [(u32, u32); 2] = [(480, 720), (810, 1050)];

/// The settings in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlaSettings {
    pub matrix: [[i64; 3]; 3],
    /// (response, resolution) in working minutes, P1 first.
    pub targets: [(i64, i64); 4],
    pub hours: Vec<(u32, u32)>,
    /// Days set by the IT manager: (`YYYY-MM-DD`, off (a holiday) or on (a working
    /// day), note).
    pub days: Vec<(String, bool, String)>,
}

impl Default for SlaSettings {
    fn default() -> Self {
        SlaSettings { matrix: MATRIX, targets: TARGETS, hours: BUSINESS_HOURS.to_vec(), days: Vec::new() }
    }
}

fn field(name: &str, rule: &'static str, detail: impl Into<String>) -> FieldError {
    FieldError { row: None, field: name.into(), rule, detail: detail.into() }
}

/// `HH:MM` → minutes of the day.
fn minutes(v: &str) -> Option<u32> {
    let (h, m) = v.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 1440).then_some(h * 60 + m)
}

/// `08:00-12:00, 13:30-17:30` → periods, or the rule broken.
pub fn parse_hours(text: &str) -> Result<Vec<(u32, u32)>, FieldError> {
    let bad = || field("hours", "hours", "periods like 08:00-12:00, 13:30-17:30, in order, not overlapping");
    let mut out = Vec::new();
    for part in text.split([',', '，', ';']).map(str::trim).filter(|p| !p.is_empty()) {
        let (s, e) = part.split_once(['-', '–', '~']).ok_or_else(bad)?;
        out.push((minutes(s).ok_or_else(bad)?, minutes(e).ok_or_else(bad)?));
    }
    WorkingHours::new(out.clone()).map_err(|_| bad())?;
    Ok(out)
}

/// Periods as `08:00-12:00, 13:30-17:30`.
pub fn format_hours(hours: &[(u32, u32)]) -> String {
    hours
        .iter()
        .map(|(s, e)| format!("{:02}:{:02}-{:02}:{:02}", s / 60, s % 60, e / 60, e % 60))
        .collect::<Vec<_>>()
        .join(", ")
}

impl SlaSettings {
    /// The priority of an impact and an urgency (each 1 … 3).
    pub fn priority(&self, impact: i64, urgency: i64) -> i64 {
        self.matrix[(impact.clamp(1, 3) - 1) as usize][(urgency.clamp(1, 3) - 1) as usize]
    }

    /// The (response, resolution) targets of a priority, in milliseconds.
    pub fn targets(&self, priority: i64) -> (i64, i64) {
        let (r, f) = self.targets[(priority.clamp(1, 4) - 1) as usize];
        (r * 60_000, f * 60_000)
    }

    /// Reads the stored values over the defaults (a value that does not read keeps its
    /// default: the settings are only ever written checked).
    pub fn from_stored(values: &[(String, String)], days: Vec<(String, String, String)>) -> SlaSettings {
        let mut s = SlaSettings::default();
        for (name, value) in values {
            let Ok(v) = serde_json::from_str::<Value>(value) else { continue };
            let ints = |v: &Value| v.as_array().map(|a| a.iter().filter_map(Value::as_i64).collect::<Vec<_>>());
            match name.as_str() {
                "matrix" => {
                    let rows: Vec<Vec<i64>> = v.as_array().into_iter().flatten().filter_map(ints).collect();
                    if rows.len() == 3 && rows.iter().all(|r| r.len() == 3 && r.iter().all(|p| (1..=4).contains(p))) {
                        for (i, r) in rows.iter().enumerate() {
                            s.matrix[i] = [r[0], r[1], r[2]];
                        }
                    }
                }
                "targets" => {
                    let rows: Vec<Vec<i64>> = v.as_array().into_iter().flatten().filter_map(ints).collect();
                    if rows.len() == 4 && rows.iter().all(|r| r.len() == 2 && r[0] > 0 && r[1] > 0) {
                        for (i, r) in rows.iter().enumerate() {
                            s.targets[i] = (r[0], r[1]);
                        }
                    }
                }
                "hours" => {
                    let periods: Vec<(u32, u32)> = v
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(ints)
                        .filter(|p| p.len() == 2)
                        .map(|p| (p[0] as u32, p[1] as u32))
                        .collect();
                    if WorkingHours::new(periods.clone()).is_ok() {
                        s.hours = periods;
                    }
                }
                _ => {}
            }
        }
        s.days = days.into_iter().map(|(d, turn, note)| (d, turn == "on", note)).collect();
        s
    }

    /// The stored form of the matrix, the targets and the hours.
    pub fn to_stored(&self) -> [(&'static str, String); 3] {
        [
            ("matrix", json!(self.matrix).to_string()),
            ("targets", json!(self.targets.iter().map(|(r, f)| [r, f]).collect::<Vec<_>>()).to_string()),
            ("hours", json!(self.hours.iter().map(|(s, e)| [s, e]).collect::<Vec<_>>()).to_string()),
        ]
    }

    /// Checks the matrix and targets an IT manager entered.
    pub fn check(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        for (i, row) in self.matrix.iter().enumerate() {
            for (j, p) in row.iter().enumerate() {
                if !(1..=4).contains(p) {
                    errors.push(field(&format!("matrix-{}-{}", i + 1, j + 1), "choice", "P1 to P4"));
                }
            }
        }
        for (i, (r, f)) in self.targets.iter().enumerate() {
            if !(1..=100_000).contains(r) || !(1..=100_000).contains(f) {
                errors.push(field(&format!("target-{}", i + 1), "minutes", "whole minutes above 0"));
            } else if r > f {
                errors.push(field(
                    &format!("target-{}", i + 1),
                    "response-first",
                    "the response comes before the resolution",
                ));
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    /// The business calendar: the State Council's schedule with the IT manager's days
    /// over it (a day set here wins).
    pub fn business_calendar(&self) -> Result<Calendar, SlaError> {
        let mut off = std::collections::BTreeSet::new();
        let mut on = std::collections::BTreeSet::new();
        for &(first, last, turn, _) in CHINA {
            let set = if turn == Turn::Off { &mut off } else { &mut on };
            set.extend(parse_day(first)?..=parse_day(last)?);
        }
        for (day, working, _) in &self.days {
            let d = parse_day(day)?;
            off.remove(&d);
            on.remove(&d);
            if *working {
                on.insert(d)
            } else {
                off.insert(d)
            };
        }
        Calendar::business(WorkingHours::new(self.hours.clone())?, off, on)
    }
}

#[cfg(test)]
mod tests {
    use super::{SlaSettings, format_hours, parse_hours};

    #[test]
    fn hours_read_and_write_and_bad_periods_are_named() {
        let h = parse_hours("08:00-12:00， 13:30-17:30").unwrap();
        assert_eq!(h, vec![(480, 720), (810, 1050)]);
        assert_eq!(format_hours(&h), "08:00-12:00, 13:30-17:30");
        assert_eq!(parse_hours("12:00-08:00").unwrap_err().field, "hours");
        assert_eq!(parse_hours("08:00-12:00, 11:00-13:00").unwrap_err().field, "hours");
    }

    #[test]
    fn stored_settings_round_trip_and_a_day_set_wins_over_the_schedule() {
        let mut s = SlaSettings::default();
        s.matrix[2][2] = 3;
        s.targets[0] = (10, 120);
        let stored: Vec<(String, String)> = s.to_stored().iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        // 2026-10-01 is a National Day holiday in the schedule; the hospital works it.
        let back = SlaSettings::from_stored(&stored, vec![("2026-10-01".into(), "on".into(), "值班".into())]);
        assert_eq!((back.matrix, back.targets), (s.matrix, s.targets));
        let day = crate::sla::parse_day("2026-10-01").unwrap();
        assert!(back.business_calendar().unwrap().is_working_day(day));
        assert!(!SlaSettings::default().business_calendar().unwrap().is_working_day(day));
        let mut bad = SlaSettings::default();
        bad.targets[1] = (600, 60);
        assert_eq!(bad.check().unwrap_err()[0].field, "target-2");
    }
}
