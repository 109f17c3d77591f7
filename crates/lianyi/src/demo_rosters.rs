//! The demo's rosters: each campus's shift types and rest rule (the South Campus asks
//! a full day off after a night), and East internal medicine's roster for this month
//! and the next — day shifts, nights, on-call, and afternoon clinic sessions on
//! Saturdays that make their Slots — kept by its head (`head.east`), and the clock
//! machine's punches of the shifts already worked.

use lianyi_clinical::scheduling::{local_date, local_midnight};
use lianyi_manage::rosters::{Rosters, ShiftTypeForm};
use lianyi_security::{Caller, SystemTask};

use crate::CliError;

const DAY_MS: i64 = 86_400_000;

/// (code, Chinese, English, kind, start, end, Slot minutes).
const TYPES: [(&str, &str, &str, &str, &str, &str, &str); 5] = [
    ("D", "白班", "Day", "day", "08:00", "17:30", ""),
    ("N", "夜班", "Night", "night", "17:30", "08:00", ""),
    ("O", "值班", "On call", "on-call", "17:30", "08:00", ""),
    ("AM", "上午门诊", "Morning clinic", "clinic", "08:00", "12:00", "15"),
    ("SA", "周六下午门诊", "Saturday afternoon clinic", "clinic", "14:00", "17:00", "15"),
];

/// What the demo rostered.
pub(crate) struct Rostered {
    pub shifts: usize,
    pub slots: usize,
    pub punches: usize,
}

/// Shift types for every campus, and East internal medicine's roster from the first
/// of this month to the end of the next.
pub(crate) async fn load(rosters: &Rosters, campuses: &[&str], now: i64) -> Result<Rostered, CliError> {
    let failed = |e: lianyi_manage::rosters::RosterError| CliError::Usage(format!("demo rosters: {e}"));
    let system = Caller::task(SystemTask::Demo);
    for campus in campuses {
        for (code, zh, en, kind, start, end, slot) in TYPES {
            let form = ShiftTypeForm {
                campus: campus.to_string(),
                code: code.into(),
                name_zh: zh.into(),
                name_en: en.into(),
                kind: kind.into(),
                start: start.into(),
                end: end.into(),
                slot_minutes: slot.into(),
            };
            rosters.put_type(&system, &form).await.map_err(failed)?;
        }
    }
    rosters.set_rest(&system, "campus-south", "24").await.map_err(failed)?;
    rosters.set_rest(&system, "campus-east", "12").await.map_err(failed)?;
    // East internal medicine: its people take turns — day shifts on weekdays, one
    // night in four followed by a day off, on-call at weekends, and a Saturday
    // afternoon clinic for its doctors.
    let month = &local_date(now)[..7];
    let first = local_midnight(&format!("{month}-01")).unwrap_or(now);
    let members = rosters.month(&system, "campus-east-im", month).await.map_err(failed)?.members;
    let (mut shifts, mut slots) = (0, 0);
    for d in 0..61 {
        let day = local_date(first + d * DAY_MS);
        let weekday = lianyi_clinical::scheduling::weekday(&day).unwrap_or(1);
        for (i, m) in members.iter().enumerate() {
            let turn = (d as usize + i) % 4;
            let shift = match (weekday, turn) {
                (1..=5, 3) => Some("N"),
                (1..=5, 0) => None,
                (1..=5, _) => Some("D"),
                (6, 1) => Some("SA"),
                (6..=7, 2) => Some("O"),
                _ => None,
            };
            let Some(shift) = shift else { continue };
            // A shift the rules refuse (rest after a night) is left out, as a head would.
            if let Ok(p) = rosters.assign(&system, &m.role, &day, shift).await {
                shifts += 1;
                slots += p.slots;
            }
        }
    }
    // The clock machine's records of the shifts already worked this month: mostly on
    // time, now and then late, a forgotten clock-out, an absence.
    let mut csv = String::from("工号,打卡时间\n");
    let worked = rosters.month(&system, "campus-east-im", month).await.map_err(failed)?.shifts;
    let mut punches = 0;
    for (i, s) in worked.iter().enumerate().filter(|(_, s)| s.ends_at < now) {
        let Some(n) = s.practitioner.strip_prefix("prac-").and_then(|n| n.parse::<usize>().ok()) else { continue };
        let no = format!("LY{:05}", 10_000 + n - 1);
        if i % 13 == 5 {
            continue;
        }
        let arrival = s.starts_at + if i % 7 == 3 { 12 } else { -((i % 9) as i64) } * 60_000;
        csv.push_str(&format!(
            "{no},{}\n",
            &lianyi_clinical::scheduling::local_instant(arrival)[..16].replace('T', " ")
        ));
        punches += 1;
        if i % 11 != 4 {
            let leaving = s.ends_at + ((i % 6) as i64) * 60_000;
            csv.push_str(&format!(
                "{no},{}\n",
                &lianyi_clinical::scheduling::local_instant(leaving)[..16].replace('T', " ")
            ));
            punches += 1;
        }
    }
    if punches > 0 {
        rosters.import_attendance(&system, "campus-east", &csv, "demo clock machine").await.map_err(failed)?;
    }
    Ok(Rostered { shifts, slots, punches })
}
