//! The rules of medical equipment (设备), without storage: an asset's lifecycle —
//! purchased → accepted into service (验收) → under repair and back → scrapping
//! requested → scrapped (报废), each step allowed only from the states it follows — the
//! due dates of preventive maintenance and metrology (计量) with their reminders, and
//! a repair's response and repair times. Dates are Beijing calendar days
//! (`YYYY-MM-DD`); "today" is handed in, so the reminders are tested with any clock.

/// An asset's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Bought, not yet accepted into service.
    Purchased,
    InService,
    UnderRepair,
    /// Scrapping requested, waiting for approval.
    ScrapRequested,
    Scrapped,
}

impl State {
    pub const ALL: [State; 5] =
        [State::Purchased, State::InService, State::UnderRepair, State::ScrapRequested, State::Scrapped];

    pub fn code(self) -> &'static str {
        match self {
            State::Purchased => "purchased",
            State::InService => "in-service",
            State::UnderRepair => "under-repair",
            State::ScrapRequested => "scrap-requested",
            State::Scrapped => "scrapped",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|x| x.code() == s)
    }
}

/// What may be done to an asset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Acceptance (验收): into service.
    Accept,
    /// A repair request accepted by an engineer: under repair.
    Repair,
    /// The repair finished: back in service.
    Repaired,
    RequestScrap,
    ApproveScrap,
    /// Scrapping refused: back in service.
    RejectScrap,
}

impl Step {
    pub fn code(self) -> &'static str {
        match self {
            Step::Accept => "accept",
            Step::Repair => "repair",
            Step::Repaired => "repaired",
            Step::RequestScrap => "scrap-request",
            Step::ApproveScrap => "scrap-approve",
            Step::RejectScrap => "scrap-reject",
        }
    }
}

/// The state `step` leads to from `from`, or `None` when the step is not allowed
/// there (an asset scrapped already is never scrapped again).
pub fn next(from: State, step: Step) -> Option<State> {
    match (from, step) {
        (State::Purchased, Step::Accept) => Some(State::InService),
        (State::InService, Step::Repair) => Some(State::UnderRepair),
        (State::UnderRepair, Step::Repaired) => Some(State::InService),
        (State::InService | State::UnderRepair, Step::RequestScrap) => Some(State::ScrapRequested),
        (State::ScrapRequested, Step::ApproveScrap) => Some(State::Scrapped),
        (State::ScrapRequested, Step::RejectScrap) => Some(State::InService),
        _ => None,
    }
}

/// A due date against today.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// Past due by so many days.
    Overdue(i64),
    /// Due within the reminder window, in so many days (0: today).
    Soon(i64),
    Later,
}

/// Days from `from` to `to` (`YYYY-MM-DD`), `None` for a malformed date.
pub fn days_between(from: &str, to: &str) -> Option<i64> {
    Some(day_number(to)? - day_number(from)?)
}

/// The date `days` after `date`.
pub fn add_days(date: &str, days: i64) -> Option<String> {
    let n = day_number(date)? + days;
    Some(civil(n))
}

/// `due` against `today`, reminding `window` days ahead.
pub fn due(due: &str, today: &str, window: i64) -> Option<Due> {
    let left = days_between(today, due)?;
    Some(if left < 0 {
        Due::Overdue(-left)
    } else if left <= window {
        Due::Soon(left)
    } else {
        Due::Later
    })
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date (proleptic Gregorian).
fn day_number(date: &str) -> Option<i64> {
    let mut parts = date.splitn(3, '-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d): (i64, i64, i64) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&m) || d < 1 || d > days_in[(m - 1) as usize] {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

fn civil(n: i64) -> String {
    let z = n + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Minutes from `from` to `to` (epoch milliseconds), rounded down; `None` until `to`.
pub fn minutes(from: i64, to: Option<i64>) -> Option<i64> {
    to.map(|t| (t - from).max(0) / 60_000)
}

/// What one use of a device cost: its purchase cost over its uses in a period, in
/// fen rounded half up (`None` without a use) — the benefit view's measure, to weigh
/// a purchase against how much the device is used.
pub fn cost_per_use(cost_fen: i64, uses: i64) -> Option<i64> {
    (uses > 0).then(|| (cost_fen.saturating_mul(2) / uses + 1) / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_used_more_costs_less_per_use() {
        assert_eq!(cost_per_use(120_000_000, 0), None);
        assert_eq!(cost_per_use(120_000_000, 4_000), Some(30_000));
        assert_eq!(cost_per_use(100, 3), Some(33));
        assert_eq!(cost_per_use(101, 2), Some(51), "half a fen rounds up");
    }

    #[test]
    fn the_lifecycle_allows_each_step_only_where_it_follows() {
        assert_eq!(next(State::Purchased, Step::Accept), Some(State::InService));
        assert_eq!(next(State::Purchased, Step::Repair), None, "not in service yet");
        assert_eq!(next(State::InService, Step::Repair), Some(State::UnderRepair));
        assert_eq!(next(State::UnderRepair, Step::Repaired), Some(State::InService));
        assert_eq!(next(State::UnderRepair, Step::RequestScrap), Some(State::ScrapRequested));
        assert_eq!(next(State::ScrapRequested, Step::RejectScrap), Some(State::InService));
        assert_eq!(next(State::ScrapRequested, Step::ApproveScrap), Some(State::Scrapped));
        // Scrapped is the end: never scrapped twice, never repaired.
        for step in
            [Step::Accept, Step::Repair, Step::Repaired, Step::RequestScrap, Step::ApproveScrap, Step::RejectScrap]
        {
            assert_eq!(next(State::Scrapped, step), None, "{step:?}");
        }
        for s in State::ALL {
            assert_eq!(State::parse(s.code()), Some(s));
        }
    }

    #[test]
    fn calibration_and_maintenance_reminders_follow_the_injected_day() {
        // A calibration due on 2027-01-10, reminded 30 days ahead.
        assert_eq!(due("2027-01-10", "2026-12-01", 30), Some(Due::Later));
        assert_eq!(due("2027-01-10", "2026-12-11", 30), Some(Due::Soon(30)));
        assert_eq!(due("2027-01-10", "2027-01-10", 30), Some(Due::Soon(0)));
        assert_eq!(due("2027-01-10", "2027-01-12", 30), Some(Due::Overdue(2)));
        assert_eq!(due("2027-02-30", "2027-01-12", 30), None, "no such day");
        // Intervals cross month ends and leap days.
        assert_eq!(add_days("2027-12-31", 1).as_deref(), Some("2028-01-01"));
        assert_eq!(add_days("2028-02-28", 1).as_deref(), Some("2028-02-29"));
        assert_eq!(add_days("2026-12-07", 365).as_deref(), Some("2027-12-07"));
        assert_eq!(add_days("2100-02-28", 1).as_deref(), Some("2100-03-01"), "2100 is not a leap year");
        assert_eq!(days_between("2026-12-07", "2026-11-30"), Some(-7));
    }

    #[test]
    fn response_and_repair_times_are_whole_minutes() {
        let reported = 1_796_605_200_000;
        assert_eq!(minutes(reported, None), None);
        assert_eq!(minutes(reported, Some(reported + 17 * 60_000 + 59_000)), Some(17));
        assert_eq!(minutes(reported, Some(reported - 5)), Some(0), "clocks never run backwards here");
    }
}
