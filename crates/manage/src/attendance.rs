//! Attendance (考勤): clock-machine punches imported from the machines' CSV files and
//! compared with the roster. A punch belongs to a shift when it falls from two hours
//! before its start to four hours after its end; the first is the arrival, the last
//! the departure. Five minutes' grace either way.

use lianyi_clinical::scheduling::local_midnight;
use lianyi_security::Caller;
use lianyi_services::identifiers::STAFF_ID_SYSTEM;
use lianyi_store::rosters::RosterShift;

use crate::rosters::{FieldError, Month, RosterError, Rosters};

const MINUTE_MS: i64 = 60_000;
/// Minutes of grace before a late arrival or an early departure counts.
pub const GRACE_MINUTES: i64 = 5;
const BEFORE_MS: i64 = 2 * 60 * MINUTE_MS;
const AFTER_MS: i64 = 4 * 60 * MINUTE_MS;

/// How a rostered shift was worked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Not over yet.
    Upcoming,
    /// Clocked in and out on time.
    Present,
    /// Arrived late and/or left early, by so many minutes.
    Off { late: i64, early: i64 },
    /// Clocked once only: in (no departure) or out (no arrival).
    OneClock { arrived: bool },
    /// No punch at all.
    Absent,
}

/// How the shift from `start` to `end` was worked, given the person's `punches`
/// (sorted instants; any outside the shift's window are ignored) at `now`.
pub fn standing(start: i64, end: i64, punches: &[i64], now: i64) -> Standing {
    if now < end {
        return Standing::Upcoming;
    }
    let near: Vec<i64> = punches.iter().copied().filter(|p| *p >= start - BEFORE_MS && *p <= end + AFTER_MS).collect();
    let grace = GRACE_MINUTES * MINUTE_MS;
    match near[..] {
        [] => Standing::Absent,
        [only] => Standing::OneClock { arrived: only < start + (end - start) / 2 },
        [first, .., last] => {
            let late = if first > start + grace { (first - start) / MINUTE_MS } else { 0 };
            let early = if last < end - grace { (end - last) / MINUTE_MS } else { 0 };
            if late == 0 && early == 0 { Standing::Present } else { Standing::Off { late, early } }
        }
    }
}

/// What an import did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    pub rows: usize,
    /// Punches not recorded before (a file imported twice adds nothing).
    pub new: u64,
    pub people: usize,
}

/// A rostered shift with how it was worked.
#[derive(Clone, Debug)]
pub struct Worked {
    pub shift: RosterShift,
    pub punches: Vec<i64>,
    pub standing: Standing,
}

fn row_error(line: usize, rule: &'static str, detail: String) -> FieldError {
    FieldError { field: "csv", code: rule, detail: format!("{line}: {detail}") }
}

/// `YYYY-MM-DD HH:MM[:SS]` (or with `/` or `T`), Beijing time, as an instant.
fn local_time(text: &str) -> Option<i64> {
    let t = text.trim().replace('/', "-").replace('T', " ");
    let (date, time) = t.split_once(' ')?;
    let day = local_midnight(date.trim())?;
    let mut parts = time.trim().split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let s: i64 = parts.next().map_or(Some(0), |s| s.parse().ok())?;
    if parts.next().is_some() || !(0..24).contains(&h) || !(0..60).contains(&m) || !(0..60).contains(&s) {
        return None;
    }
    Some(day + (h * 3600 + m * 60 + s) * 1000)
}

impl Rosters {
    /// Imports a clock machine's CSV (`staff number, time` per row, the time in
    /// Beijing time; a header row is skipped) for `campus`. Every row must read and
    /// every staff number be a person's, or nothing is recorded and each bad row is
    /// named. Managers of the campus import.
    pub async fn import_attendance(
        &self,
        caller: &Caller,
        campus: &str,
        csv: &str,
        source: &str,
    ) -> Result<Imported, RosterError> {
        Self::may_keep_campus(caller, campus)?;
        let rows = lianyi_services::csv::parse(csv)
            .map_err(|(row, detail)| RosterError::Invalid(vec![row_error(row + 1, "csv-format", detail)]))?;
        let mut errors = Vec::new();
        let mut read = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let line = i + 1;
            let cells: Vec<&str> = row.iter().map(|c| c.trim()).collect();
            if cells.iter().all(|c| c.is_empty()) {
                continue;
            }
            let (Some(no), Some(time)) = (cells.first(), cells.get(1)) else {
                errors.push(row_error(line, "csv-columns", "a staff number and a time".into()));
                continue;
            };
            match local_time(time) {
                Some(at) => read.push((line, no.to_string(), at)),
                // The machines' header row.
                None if i == 0 => {}
                None => errors.push(row_error(line, "csv-time", (*time).to_string())),
            }
        }
        let mut people: Vec<(String, Option<String>)> = Vec::new();
        for (_, no, _) in &read {
            if !people.iter().any(|(n, _)| n == no) {
                let found = self.practitioner_numbered(caller, no).await?;
                people.push((no.clone(), found));
            }
        }
        let mut punches = Vec::new();
        for (line, no, at) in &read {
            match people.iter().find(|(n, _)| n == no).and_then(|(_, p)| p.clone()) {
                Some(p) => punches.push((p, *at)),
                None => errors.push(row_error(*line, "csv-staff", no.clone())),
            }
        }
        if !errors.is_empty() {
            return Err(RosterError::Invalid(errors));
        }
        if punches.is_empty() {
            return Err(RosterError::Invalid(vec![row_error(1, "csv-empty", "no punches".into())]));
        }
        let now = self.fhir.now_ms();
        let new = self.fhir.operations().rosters().add_punches(&punches, source, now, caller.actor()).await?;
        self.audit(caller, "attendance-import", format!("{campus} {source}: {} rows, {new} new", punches.len()))
            .await?;
        Ok(Imported { rows: punches.len(), new, people: people.len() })
    }

    /// The Practitioner whose staff number (工号) is `no`.
    async fn practitioner_numbered(&self, caller: &Caller, no: &str) -> Result<Option<String>, RosterError> {
        let t = lianyi_fhir::ResourceType::parse("Practitioner").ok_or_else(|| RosterError::NotFound("type".into()))?;
        let params = vec![("identifier".to_string(), format!("{STAFF_ID_SYSTEM}|{no}"))];
        let req = lianyi_fhir::search::parse_search(t, &params)
            .map_err(|i| crate::rosters::invalid("csv", "csv-staff", i.diagnostics))?;
        let page = self.fhir.search(&self.fhir.permit(caller, t).await?, &req).await?;
        Ok(page.resources.first().map(|r| r.id.clone()))
    }

    /// A department's month (its people and shifts) with how each shift was worked.
    pub async fn attendance(
        &self,
        caller: &Caller,
        department: &str,
        month: &str,
    ) -> Result<(Month, Vec<Worked>), RosterError> {
        let m = self.month(caller, department, month).await?;
        let now = self.fhir.now_ms();
        let rosters = self.fhir.operations().rosters();
        // Each person's punches of the month once, not each shift's.
        let (Some(from), Some(to)) =
            (m.shifts.iter().map(|s| s.starts_at).min(), m.shifts.iter().map(|s| s.ends_at).max())
        else {
            return Ok((m, Vec::new()));
        };
        let mut people: Vec<(&str, Vec<i64>)> = Vec::new();
        for s in &m.shifts {
            if !people.iter().any(|(p, _)| *p == s.practitioner) {
                let punches = rosters.punches(&s.practitioner, from - BEFORE_MS, to + AFTER_MS).await?;
                people.push((&s.practitioner, punches));
            }
        }
        let worked = m
            .shifts
            .iter()
            .map(|shift| {
                let all = people.iter().find(|(p, _)| *p == shift.practitioner).map_or(&[][..], |(_, v)| &v[..]);
                let punches: Vec<i64> = all
                    .iter()
                    .copied()
                    .filter(|p| *p >= shift.starts_at - BEFORE_MS && *p <= shift.ends_at + AFTER_MS)
                    .collect();
                let standing = standing(shift.starts_at, shift.ends_at, &punches, now);
                Worked { shift: shift.clone(), punches, standing }
            })
            .collect();
        Ok((m, worked))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn punches_are_read_against_the_shift() {
        let (start, end) = (8 * H, 17 * H + 30 * MINUTE_MS);
        let after = end + H;
        assert_eq!(standing(start, end, &[7 * H + 50 * MINUTE_MS, end + 10 * MINUTE_MS], after), Standing::Present);
        assert_eq!(standing(start, end, &[start + 4 * MINUTE_MS, end - 4 * MINUTE_MS], after), Standing::Present);
        assert_eq!(
            standing(start, end, &[start + 20 * MINUTE_MS, end - 30 * MINUTE_MS], after),
            Standing::Off { late: 20, early: 30 }
        );
        assert_eq!(standing(start, end, &[start], after), Standing::OneClock { arrived: true });
        assert_eq!(standing(start, end, &[end], after), Standing::OneClock { arrived: false });
        // Punches of another day are not this shift's.
        assert_eq!(standing(start, end, &[start - 3 * H, end + 5 * H], after), Standing::Absent);
        assert_eq!(standing(start, end, &[], start + H), Standing::Upcoming);
    }

    #[test]
    fn machine_times_read_in_beijing_time() {
        let day = local_midnight("2026-12-07").unwrap();
        assert_eq!(local_time("2026-12-07 07:58"), Some(day + 7 * H + 58 * MINUTE_MS));
        assert_eq!(local_time("2026/12/07 07:58:30"), Some(day + 7 * H + 58 * MINUTE_MS + 30_000));
        assert_eq!(local_time("2026-12-07T17:31:00"), Some(day + 17 * H + 31 * MINUTE_MS));
        assert_eq!(local_time("打卡时间"), None);
        assert_eq!(local_time("2026-12-07 25:00"), None);
        assert_eq!(local_time("2026-02-30 08:00"), None);
    }
}
