//! Rosters (排班): each department's monthly grid of shifts per person, with the rules
//! a roster must keep before it is saved — one person is never in two places at once
//! (across departments and campuses, since a person may practise at several), and a
//! night shift is followed by the rest its campus requires. The rules are pure: the
//! service hands them the person's other shifts around the day.
//!
//! Times are Beijing time. A shift whose end is not after its start ends the next day
//! (a night shift 17:30–08:00).

use lianyi_clinical::scheduling::local_midnight;

const MINUTE_MS: i64 = 60_000;

/// What kind of shift: it decides the rest rule and whether clinic Slots follow it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShiftKind {
    /// 白班
    Day,
    /// 夜班: the campus's rest rule follows it.
    Night,
    /// 值班 (on call, often right after a day shift): rest follows it too.
    OnCall,
    /// 门诊 (an outpatient clinic session): Slots are made from it.
    Clinic,
}

impl ShiftKind {
    pub const ALL: [ShiftKind; 4] = [ShiftKind::Day, ShiftKind::Night, ShiftKind::OnCall, ShiftKind::Clinic];

    pub fn code(self) -> &'static str {
        match self {
            ShiftKind::Day => "day",
            ShiftKind::Night => "night",
            ShiftKind::OnCall => "on-call",
            ShiftKind::Clinic => "clinic",
        }
    }

    pub fn parse(code: &str) -> Option<ShiftKind> {
        ShiftKind::ALL.into_iter().find(|k| k.code() == code)
    }

    /// Whether the campus's rest rule follows a shift of this kind.
    pub fn needs_rest_after(self) -> bool {
        matches!(self, ShiftKind::Night | ShiftKind::OnCall)
    }
}

/// `HH:MM` as minutes after midnight.
pub fn minutes(hhmm: &str) -> Option<u32> {
    let (h, m) = hhmm.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// One shift of a person on a day, with where it is worked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub kind: ShiftKind,
    /// Minutes after midnight.
    pub start: u32,
    pub end: u32,
    /// The department (Organization id) and campus, for the messages.
    pub department: String,
    pub campus: String,
    /// The shift type's code, for the messages.
    pub shift: String,
}

impl Placed {
    /// Its start and end instants (ms); `None` when the date is not a real date.
    pub fn span(&self) -> Option<(i64, i64)> {
        let day = local_midnight(&self.date)?;
        let start = day + i64::from(self.start) * MINUTE_MS;
        let mut end = day + i64::from(self.end) * MINUTE_MS;
        if self.end <= self.start {
            end += 24 * 60 * MINUTE_MS;
        }
        Some((start, end))
    }
}

/// A campus's roster rules (its settings, not code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// The hours of rest after a night or on-call shift before the next shift starts.
    pub rest_after_night_hours: u32,
}

impl Default for Rules {
    fn default() -> Self {
        // Eleven hours of daily rest, as most working-time rules require.
        Rules { rest_after_night_hours: 11 }
    }
}

/// A rule a proposed shift would break.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conflict {
    /// The person already works then (another shift overlaps).
    Overlap(Placed),
    /// It starts too soon after a night or on-call shift (`minutes` of rest, fewer
    /// than the rule's `required` hours).
    Rest { after: Placed, minutes: i64, required: u32 },
    /// It is a night or on-call shift followed too soon by a shift already on the
    /// roster.
    RestBefore { next: Placed, minutes: i64, required: u32 },
}

/// What `proposed` would break, given the person's `others` shifts (any department and
/// campus; the ones near the day are enough) and the rules of the proposed shift's
/// campus.
pub fn conflicts(proposed: &Placed, others: &[Placed], rules: Rules) -> Vec<Conflict> {
    let Some((start, end)) = proposed.span() else { return Vec::new() };
    let required = rules.rest_after_night_hours;
    let rest_ms = i64::from(required) * 60 * MINUTE_MS;
    let rest = |ms: i64| ms / MINUTE_MS;
    let mut out = Vec::new();
    for other in others {
        let Some((o_start, o_end)) = other.span() else { continue };
        if o_start < end && start < o_end {
            out.push(Conflict::Overlap(other.clone()));
        } else if other.kind.needs_rest_after() && o_end <= start && start - o_end < rest_ms {
            out.push(Conflict::Rest { after: other.clone(), minutes: rest(start - o_end), required });
        } else if proposed.kind.needs_rest_after() && end <= o_start && o_start - end < rest_ms {
            out.push(Conflict::RestBefore { next: other.clone(), minutes: rest(o_start - end), required });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shift(date: &str, kind: ShiftKind, start: &str, end: &str, department: &str) -> Placed {
        Placed {
            date: date.into(),
            kind,
            start: minutes(start).unwrap(),
            end: minutes(end).unwrap(),
            department: department.into(),
            campus: "campus-east".into(),
            shift: kind.code().into(),
        }
    }

    #[test]
    fn one_person_is_never_in_two_places_at_once() {
        let day = shift("2027-01-04", ShiftKind::Day, "08:00", "17:30", "dept-a");
        let clinic_elsewhere = shift("2027-01-04", ShiftKind::Clinic, "14:00", "17:00", "dept-b");
        assert_eq!(
            conflicts(&clinic_elsewhere, std::slice::from_ref(&day), Rules::default()),
            [Conflict::Overlap(day.clone())]
        );
        // Back to back is no overlap.
        let on_call = shift("2027-01-04", ShiftKind::OnCall, "17:30", "08:00", "dept-a");
        assert!(conflicts(&on_call, std::slice::from_ref(&day), Rules::default()).is_empty());
        // A night shift reaches into the next morning.
        let night = shift("2027-01-04", ShiftKind::Night, "17:30", "08:00", "dept-a");
        let early = shift("2027-01-05", ShiftKind::Clinic, "07:30", "11:30", "dept-b");
        assert!(matches!(conflicts(&early, &[night], Rules::default())[..], [Conflict::Overlap(_)]));
    }

    #[test]
    fn a_night_is_followed_by_the_campus_rest() {
        let night = shift("2027-01-04", ShiftKind::Night, "17:30", "08:00", "dept-a");
        let next_morning = shift("2027-01-05", ShiftKind::Day, "08:00", "17:30", "dept-a");
        let c = conflicts(&next_morning, std::slice::from_ref(&night), Rules::default());
        assert_eq!(c, [Conflict::Rest { after: night.clone(), minutes: 0, required: 11 }]);
        // Evening of the same day: 10 hours, under 11; a campus asking 8 allows it.
        let evening = shift("2027-01-05", ShiftKind::Clinic, "18:00", "21:00", "dept-a");
        assert!(matches!(
            conflicts(&evening, std::slice::from_ref(&night), Rules::default())[..],
            [Conflict::Rest { .. }]
        ));
        assert!(conflicts(&evening, std::slice::from_ref(&night), Rules { rest_after_night_hours: 8 }).is_empty());
        // The day after next is fine.
        let later = shift("2027-01-06", ShiftKind::Day, "08:00", "17:30", "dept-a");
        assert!(conflicts(&later, std::slice::from_ref(&night), Rules::default()).is_empty());
        // Putting the night in before a morning shift already on the roster is caught too.
        let c = conflicts(&night, std::slice::from_ref(&next_morning), Rules::default());
        assert!(matches!(c[..], [Conflict::RestBefore { .. }]), "{c:?}");
        // A day shift needs no rest after it.
        let day = shift("2027-01-04", ShiftKind::Day, "08:00", "12:00", "dept-a");
        let afternoon = shift("2027-01-04", ShiftKind::Clinic, "13:00", "17:00", "dept-b");
        assert!(conflicts(&afternoon, &[day], Rules::default()).is_empty());
    }

    #[test]
    fn times_and_kinds_read_strictly() {
        assert_eq!(minutes("17:30"), Some(1050));
        assert_eq!(minutes("7:30"), None);
        assert_eq!(minutes("24:00"), None);
        assert_eq!(ShiftKind::parse("on-call"), Some(ShiftKind::OnCall));
        assert_eq!(ShiftKind::parse("evening"), None);
        let bad = shift("2027-02-30", ShiftKind::Day, "08:00", "12:00", "x");
        assert_eq!(bad.span(), None);
    }
}
