//! SLA clocks for the service desk: working time between two instants in the calendar
//! that applies to a ticket, and a ticket's clock built from its ledger of pauses.
//!
//! Why its own module, with its own calendar: a clock that counts the hours a ticket
//! waits for the reporter, or counts a Spring Festival week as working days, reports
//! breaches that did not happen (the common complaint about GLPI and iTop). So the
//! clock counts only (1) working time of the ticket's calendar — 7×24, or business
//! periods in Beijing time (UTC+8, no DST) less public holidays (法定节假日) plus
//! adjusted working days (调休) — and (2) while the ledger says it runs. The clock
//! keeps no target: changing the priority is asking the same ledger about another
//! target, so time already counted stays counted. Time is always a parameter (`now`).
//!
//! Instants are epoch milliseconds (UTC); days are day numbers since 1970-01-01 of the
//! Beijing calendar. Instants are clamped to years 0001–9999 ([`MIN_MS`], [`MAX_MS`]),
//! so no arithmetic here can overflow. Spans cost O(log n) in the number of calendar
//! exceptions, whatever their length: no walking day by day.

use std::collections::BTreeSet;

use lianyi_fhir::datetime::{MAX_MS, MIN_MS, civil_from_days, days_from_civil};

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;
/// Beijing time is UTC+8 all year.
const OFFSET_MS: i64 = 8 * 3_600_000;
const FIRST_DAY: i64 = (MIN_MS + OFFSET_MS).div_euclid(DAY_MS);
const LAST_DAY: i64 = (MAX_MS + OFFSET_MS).div_euclid(DAY_MS);

/// Why a calendar, a date or a clock ledger was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlaError {
    #[error("working period {index}: {rule}")]
    Period { index: usize, rule: &'static str },
    #[error("date {value:?}: expected YYYY-MM-DD naming a real calendar day")]
    Date { value: String },
    #[error("day {date} is listed both as a holiday and as an adjusted working day")]
    Conflict { date: String },
    #[error("clock event {index}: {rule}")]
    Ledger { index: usize, rule: &'static str },
}

/// The working periods of a working day, as minutes after local midnight (`(480, 720)`
/// is 08:00–12:00): sorted, non-overlapping, within 0..=1440, at least one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkingHours(Vec<(u32, u32)>);

impl WorkingHours {
    /// Checks the periods; the error names the first period that breaks a rule.
    pub fn new(periods: Vec<(u32, u32)>) -> Result<Self, SlaError> {
        if periods.is_empty() {
            return Err(SlaError::Period { index: 0, rule: "at least one working period is needed" });
        }
        let mut previous_end = 0;
        for (index, &(start, end)) in periods.iter().enumerate() {
            if end > 1440 {
                return Err(SlaError::Period { index, rule: "a period must end by minute 1440 (24:00)" });
            }
            if start >= end {
                return Err(SlaError::Period { index, rule: "a period must start before it ends" });
            }
            if start < previous_end {
                return Err(SlaError::Period { index, rule: "periods must be sorted and must not overlap" });
            }
            previous_end = end;
        }
        Ok(Self(periods))
    }

    /// The periods as given.
    pub fn periods(&self) -> &[(u32, u32)] {
        &self.0
    }
}

/// The calendar a ticket's clock counts in: every instant (7×24), or business hours
/// on working days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar(Option<Business>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Business {
    /// Working periods as milliseconds after local midnight.
    periods: Vec<(i64, i64)>,
    /// Working time of one working day.
    day_ms: i64,
    /// Days whose status differs from the Monday–Friday rule (a holiday on a weekday,
    /// a working Saturday or Sunday), sorted, each with the running sum of their effect
    /// on the count of working days (−1 or +1) up to and including it.
    exceptions: Vec<(i64, i64)>,
}

impl Calendar {
    /// Every instant is working time (clinical-critical systems).
    pub fn always() -> Self {
        Self(None)
    }

    /// Business hours on Monday–Friday, except `holidays`, plus the Saturdays and
    /// Sundays in `workdays`. A day in both lists is refused as ambiguous.
    pub fn business(
        hours: WorkingHours,
        holidays: impl IntoIterator<Item = i64>,
        workdays: impl IntoIterator<Item = i64>,
    ) -> Result<Self, SlaError> {
        // Days outside years 0001–9999 can never be reached (instants are clamped).
        let in_range = |day: &i64| (FIRST_DAY..=LAST_DAY).contains(day);
        let holidays: BTreeSet<i64> = holidays.into_iter().filter(in_range).collect();
        let workdays: BTreeSet<i64> = workdays.into_iter().filter(in_range).collect();
        if let Some(&day) = holidays.intersection(&workdays).next() {
            return Err(SlaError::Conflict { date: format_day(day) });
        }
        let flips = holidays.iter().filter(|&&d| is_weekday(d)).chain(workdays.iter().filter(|&&d| !is_weekday(d)));
        let mut days: Vec<i64> = flips.copied().collect();
        days.sort_unstable();
        let mut sum = 0;
        let exceptions = days
            .into_iter()
            .map(|day| {
                sum += if is_weekday(day) { -1 } else { 1 };
                (day, sum)
            })
            .collect();
        let periods: Vec<(i64, i64)> =
            hours.0.iter().map(|&(s, e)| (i64::from(s) * MINUTE_MS, i64::from(e) * MINUTE_MS)).collect();
        let day_ms = periods.iter().map(|(s, e)| e - s).sum();
        Ok(Self(Some(Business { periods, day_ms, exceptions })))
    }

    /// Business hours with the State Council's holidays and adjusted working days
    /// (see [`CHINA`]). Years the table does not hold follow the Monday–Friday rule.
    pub fn china_business(hours: WorkingHours) -> Result<Self, SlaError> {
        let (mut holidays, mut workdays) = (Vec::new(), Vec::new());
        for &(first, last, turn, _festival) in CHINA {
            let target = match turn {
                Turn::Off => &mut holidays,
                Turn::On => &mut workdays,
            };
            target.extend(parse_day(first)?..=parse_day(last)?);
        }
        Self::business(hours, holidays, workdays)
    }

    /// Whether `day` is a working day: always in 7×24; otherwise Monday–Friday unless a
    /// holiday, and Saturday or Sunday only when an adjusted working day.
    pub fn is_working_day(&self, day: i64) -> bool {
        self.0.as_ref().is_none_or(|b| b.is_working_day(day))
    }

    /// Whether the instant `at` lies in working time (periods are half-open).
    pub fn is_working_time(&self, at: i64) -> bool {
        let Some(b) = &self.0 else { return true };
        let (day, ms) = split(at);
        b.is_working_day(day) && b.periods.iter().any(|&(s, e)| s <= ms && ms < e)
    }

    /// Working milliseconds in `[from, to)`; 0 when `to <= from`.
    pub fn working_ms(&self, from: i64, to: i64) -> i64 {
        let (from, to) = (clamp(from), clamp(to));
        if to <= from {
            return 0;
        }
        let Some(b) = &self.0 else { return to - from };
        let ((first, from_ms), (last, to_ms)) = (split(from), split(to));
        if first == last {
            return b.within_day(first, from_ms, to_ms);
        }
        b.within_day(first, from_ms, DAY_MS) + b.working_days(first + 1, last) * b.day_ms + b.within_day(last, 0, to_ms)
    }

    /// The earliest instant by which `ms` of working time has elapsed since `from`.
    /// `ms <= 0` gives `from`; from outside working time the count waits for the next
    /// period, and a count that ends with a period ends at that period's end, not at the
    /// next one's start. An answer always exists (the exceptions are finite, so working
    /// days recur); one that would fall after year 9999 saturates to `i64::MAX`.
    pub fn add_working(&self, from: i64, ms: i64) -> i64 {
        if ms <= 0 {
            return from;
        }
        let from = clamp(from);
        let Some(b) = &self.0 else { return beyond_9999_is_never(from.saturating_add(ms)) };
        let (day, from_ms) = split(from);
        let mut ms = ms.min(MAX_MS - MIN_MS);
        if b.is_working_day(day) {
            if let Some(at) = b.offset_after(from_ms, ms) {
                return beyond_9999_is_never(join(day, at));
            }
            ms -= b.within_day(day, from_ms, DAY_MS);
        }
        // Whole working days first, then the rest (in (0, day_ms]) on the landing day.
        let whole = (ms - 1) / b.day_ms;
        let rest = ms - whole * b.day_ms;
        match (b.nth_working_day(day + 1, whole + 1), b.offset_after(0, rest)) {
            (Some(landing), Some(at)) => beyond_9999_is_never(join(landing, at)),
            _ => i64::MAX,
        }
    }
}

impl Business {
    fn is_working_day(&self, day: i64) -> bool {
        let flipped = self.exceptions.binary_search_by_key(&day, |&(d, _)| d).is_ok();
        is_weekday(day) != flipped
    }

    /// Working time of `day` within `[from_ms, to_ms)` after its local midnight.
    fn within_day(&self, day: i64, from_ms: i64, to_ms: i64) -> i64 {
        if !self.is_working_day(day) {
            return 0;
        }
        self.periods.iter().map(|&(s, e)| (e.min(to_ms) - s.max(from_ms)).max(0)).sum()
    }

    /// The offset after midnight where `ms` of working time after `from_ms` ends on a
    /// working day, or `None` if the day's remaining periods hold less.
    fn offset_after(&self, from_ms: i64, mut ms: i64) -> Option<i64> {
        for &(s, e) in &self.periods {
            let start = s.max(from_ms);
            if start >= e {
                continue;
            }
            if ms <= e - start {
                return Some(start + ms);
            }
            ms -= e - start;
        }
        None
    }

    /// Working days in `[first, end)` (negative if `end < first`).
    fn working_days(&self, first: i64, end: i64) -> i64 {
        weekdays_before(end) - weekdays_before(first) + self.exceptions_before(end) - self.exceptions_before(first)
    }

    /// The sum of the exceptions' effects on days before `day`.
    fn exceptions_before(&self, day: i64) -> i64 {
        match self.exceptions.partition_point(|&(d, _)| d < day) {
            0 => 0,
            i => self.exceptions[i - 1].1,
        }
    }

    /// The `n`-th working day (`n >= 1`) counting from `first`, by bisection over the
    /// monotone count of working days; `None` after year 9999.
    fn nth_working_day(&self, first: i64, n: i64) -> Option<i64> {
        if first > LAST_DAY || self.working_days(first, LAST_DAY + 1) < n {
            return None;
        }
        let (mut low, mut high) = (first, LAST_DAY);
        while low < high {
            let mid = low + (high - low) / 2;
            if self.working_days(first, mid + 1) >= n {
                high = mid;
            } else {
                low = mid + 1;
            }
        }
        Some(low)
    }
}

/// Parses a Beijing calendar date `YYYY-MM-DD` into its day number.
pub fn parse_day(value: &str) -> Result<i64, SlaError> {
    let refuse = || SlaError::Date { value: value.to_owned() };
    let bytes = value.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        let part = bytes.get(range).ok_or_else(refuse)?;
        if part.iter().all(u8::is_ascii_digit) {
            Ok(part.iter().fold(0u32, |n, b| n * 10 + u32::from(b - b'0')))
        } else {
            Err(refuse())
        }
    };
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return Err(refuse());
    }
    let (year, month, day) = (i64::from(digits(0..4)?), digits(5..7)?, digits(8..10)?);
    if year == 0 || !(1..=12).contains(&month) || day == 0 {
        return Err(refuse());
    }
    let number = days_from_civil(year, month, day);
    // A day past the month's end rolls into the next month: refuse it.
    if civil_from_days(number) != (year, month, day) {
        return Err(refuse());
    }
    Ok(number)
}

fn format_day(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

fn beyond_9999_is_never(at: i64) -> i64 {
    if at > MAX_MS { i64::MAX } else { at }
}

fn clamp(at: i64) -> i64 {
    at.clamp(MIN_MS, MAX_MS)
}

/// The local day and the milliseconds after its midnight.
fn split(at: i64) -> (i64, i64) {
    let local = at + OFFSET_MS;
    (local.div_euclid(DAY_MS), local.rem_euclid(DAY_MS))
}

fn join(day: i64, ms: i64) -> i64 {
    day * DAY_MS + ms - OFFSET_MS
}

/// Monday to Friday (day 0, 1970-01-01, was a Thursday).
fn is_weekday(day: i64) -> bool {
    (day.rem_euclid(7) + 3) % 7 < 5
}

/// Weekdays from Monday 1969-12-29 up to `day` (negative before it); differences of
/// two values count the weekdays between.
fn weekdays_before(day: i64) -> i64 {
    let since_monday = day + 3;
    5 * since_monday.div_euclid(7) + since_monday.rem_euclid(7).min(5)
}

/// Whether a row of the notice makes days off or working days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// 放假: not working, even on a weekday.
    Off,
    /// 调休上班: working, even on a Saturday or Sunday.
    On,
}

/// The State Council's holiday arrangements (国务院办公厅关于部分节假日安排的通知) as
/// `(first day, last day, turn, festival)`. Each year is added only once its notice is
/// published (each November); 2027 is not here yet.
pub const CHINA: &[(&str, &str, Turn, &str)] = &[
    // 2025, notice of 2024-11-12 (国办发明电〔2024〕12号), the first under the revised
    // 全国年节及纪念日放假办法 (New Year's Eve and 2 May became holidays).
    // 元旦: Wednesday 1 January only, no adjusted day.
    ("2025-01-01", "2025-01-01", Turn::Off, "元旦"),
    // 春节: Tuesday 28 January (除夕) to Tuesday 4 February; Sunday 26 January and
    // Saturday 8 February worked.
    ("2025-01-28", "2025-02-04", Turn::Off, "春节"),
    ("2025-01-26", "2025-01-26", Turn::On, "春节"),
    ("2025-02-08", "2025-02-08", Turn::On, "春节"),
    // 清明节: Friday 4 to Sunday 6 April.
    ("2025-04-04", "2025-04-06", Turn::Off, "清明节"),
    // 劳动节: Thursday 1 to Monday 5 May; Sunday 27 April worked.
    ("2025-05-01", "2025-05-05", Turn::Off, "劳动节"),
    ("2025-04-27", "2025-04-27", Turn::On, "劳动节"),
    // 端午节: Saturday 31 May to Monday 2 June.
    ("2025-05-31", "2025-06-02", Turn::Off, "端午节"),
    // 国庆节、中秋节 together: Wednesday 1 to Wednesday 8 October; Sunday 28 September
    // and Saturday 11 October worked.
    ("2025-10-01", "2025-10-08", Turn::Off, "国庆节、中秋节"),
    ("2025-09-28", "2025-09-28", Turn::On, "国庆节、中秋节"),
    ("2025-10-11", "2025-10-11", Turn::On, "国庆节、中秋节"),
    // 2026, notice of 2025-11-04.
    // 元旦: Thursday 1 to Saturday 3 January; Sunday 4 January worked.
    ("2026-01-01", "2026-01-03", Turn::Off, "元旦"),
    ("2026-01-04", "2026-01-04", Turn::On, "元旦"),
    // 春节: Sunday 15 (腊月二十八) to Monday 23 February (正月初七), nine days; Saturdays
    // 14 and 28 February worked.
    ("2026-02-15", "2026-02-23", Turn::Off, "春节"),
    ("2026-02-14", "2026-02-14", Turn::On, "春节"),
    ("2026-02-28", "2026-02-28", Turn::On, "春节"),
    // 清明节: Saturday 4 to Monday 6 April.
    ("2026-04-04", "2026-04-06", Turn::Off, "清明节"),
    // 劳动节: Friday 1 to Tuesday 5 May; Saturday 9 May worked.
    ("2026-05-01", "2026-05-05", Turn::Off, "劳动节"),
    ("2026-05-09", "2026-05-09", Turn::On, "劳动节"),
    // 端午节: Friday 19 to Sunday 21 June.
    ("2026-06-19", "2026-06-21", Turn::Off, "端午节"),
    // 中秋节: Friday 25 to Sunday 27 September.
    ("2026-09-25", "2026-09-27", Turn::Off, "中秋节"),
    // 国庆节: Thursday 1 to Wednesday 7 October; Sunday 20 September and Saturday
    // 10 October worked.
    ("2026-10-01", "2026-10-07", Turn::Off, "国庆节"),
    ("2026-09-20", "2026-09-20", Turn::On, "国庆节"),
    ("2026-10-10", "2026-10-10", Turn::On, "国庆节"),
];

/// One entry of a ticket's clock ledger, at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockEvent {
    /// The ticket was opened: the clock runs.
    Started(i64),
    /// Waiting for the reporter or a supplier: the clock stands still.
    Paused(i64),
    /// The wait is over: the clock runs again.
    Resumed(i64),
    /// Resolved: the clock stops (from running or paused).
    Stopped(i64),
    /// Reopened: the clock runs on from the value it stopped at.
    Restarted(i64),
}

impl ClockEvent {
    /// When it happened.
    pub fn at(&self) -> i64 {
        match *self {
            Self::Started(t) | Self::Paused(t) | Self::Resumed(t) | Self::Stopped(t) | Self::Restarted(t) => t,
        }
    }

    fn phase_after(&self) -> Phase {
        match self {
            Self::Started(_) | Self::Resumed(_) | Self::Restarted(_) => Phase::Running,
            Self::Paused(_) => Phase::Paused,
            Self::Stopped(_) => Phase::Stopped,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Paused,
    Stopped,
}

/// Where a ticket stands against one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaState {
    /// Running, below the warning threshold.
    Running,
    /// Running, at or above the warning share of the target, not past it.
    Warning,
    /// The clock ran on after reaching the target (whatever it does now, including a
    /// ticket resolved late). A clock paused or stopped exactly at the target is not.
    Breached,
    /// Paused before the target was reached.
    Paused,
    /// Resolved (stopped) by the target.
    Met,
}

/// A ticket's clock: a validated ledger of [`ClockEvent`]s. It holds no target and no
/// calendar, so a priority change or a calendar change reads the same ledger anew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaClock {
    events: Vec<ClockEvent>,
}

impl SlaClock {
    /// Checks the ledger: it starts with `Started` (once), events are in time order,
    /// and each event is allowed in the phase before it. The error names the event's
    /// index and the rule.
    pub fn from_events(events: impl IntoIterator<Item = ClockEvent>) -> Result<Self, SlaError> {
        let events: Vec<ClockEvent> = events.into_iter().collect();
        let mut phase = None;
        let mut previous = i64::MIN;
        for (index, event) in events.iter().enumerate() {
            let refuse = |rule| Err(SlaError::Ledger { index, rule });
            if event.at() < previous {
                return refuse("events must be in time order");
            }
            previous = event.at();
            let allowed = match (event, phase) {
                (ClockEvent::Started(_), None) => true,
                (ClockEvent::Started(_), Some(_)) => return refuse("Started may appear only once, first"),
                (_, None) => return refuse("the ledger must begin with Started"),
                (ClockEvent::Paused(_), Some(p)) => p == Phase::Running,
                (ClockEvent::Resumed(_), Some(p)) => p == Phase::Paused,
                (ClockEvent::Stopped(_), Some(p)) => p != Phase::Stopped,
                (ClockEvent::Restarted(_), Some(p)) => p == Phase::Stopped,
            };
            if !allowed {
                return refuse(match event {
                    ClockEvent::Paused(_) => "Paused only while running",
                    ClockEvent::Resumed(_) => "Resumed only while paused",
                    ClockEvent::Stopped(_) => "Stopped only while running or paused",
                    _ => "Restarted only while stopped",
                });
            }
            phase = Some(event.phase_after());
        }
        if events.is_empty() {
            return Err(SlaError::Ledger { index: 0, rule: "the ledger must begin with Started" });
        }
        Ok(Self { events })
    }

    /// Working milliseconds counted while running, up to `now` (events after `now` are
    /// not yet seen).
    pub fn elapsed(&self, cal: &Calendar, now: i64) -> i64 {
        self.runs(now).fold(0, |sum, (s, e)| sum.saturating_add(cal.working_ms(s, e)))
    }

    /// The instant the clock reaches `target_ms` (negative counts as 0). Once reached,
    /// that past instant, whatever the clock does now; before that, if running at
    /// `now`, the instant it will reach it by running on, and `None` while paused or
    /// stopped (it reaches nothing while standing still). Before the Started instant
    /// the clock reads as starting then.
    pub fn due(&self, cal: &Calendar, target_ms: i64, now: i64) -> Option<i64> {
        let target = target_ms.max(0);
        if let Some(reached) = self.reached(cal, target, now) {
            return Some(reached);
        }
        let start = self.events.first().map_or(now, ClockEvent::at);
        (self.phase(now) == Phase::Running).then(|| cal.add_working(now.max(start), target - self.elapsed(cal, now)))
    }

    /// Where the ticket stands at `now` against `target_ms`, warning from
    /// `warn_percent` of it (80 warns at 80 %).
    pub fn state(&self, cal: &Calendar, target_ms: i64, warn_percent: u32, now: i64) -> SlaState {
        let target = target_ms.max(0);
        if let Some(reached) = self.reached(cal, target, now)
            && self.runs(now).any(|(_, e)| e > reached)
        {
            return SlaState::Breached;
        }
        match self.phase(now) {
            Phase::Stopped => SlaState::Met,
            Phase::Paused => SlaState::Paused,
            Phase::Running => {
                let counted = i128::from(self.elapsed(cal, now)) * 100;
                if counted >= i128::from(target) * i128::from(warn_percent) {
                    SlaState::Warning
                } else {
                    SlaState::Running
                }
            }
        }
    }

    /// The phase after the last event at or before `now` (running before the start).
    fn phase(&self, now: i64) -> Phase {
        self.events.iter().take_while(|e| e.at() <= now).last().map_or(Phase::Running, ClockEvent::phase_after)
    }

    /// The running spans `[start, end)`, cut at `now`, empty ones left out.
    fn runs(&self, now: i64) -> impl Iterator<Item = (i64, i64)> + '_ {
        let mut open = None;
        let mut spans = Vec::new();
        for event in &self.events {
            match *event {
                ClockEvent::Started(t) | ClockEvent::Resumed(t) | ClockEvent::Restarted(t) => open = Some(t),
                ClockEvent::Paused(t) | ClockEvent::Stopped(t) => spans.extend(open.take().map(|s| (s, t))),
            }
        }
        spans.extend(open.map(|s| (s, i64::MAX)));
        spans.into_iter().filter_map(move |(s, e)| (s < e.min(now)).then_some((s, e.min(now))))
    }

    /// The instant the counted time first reached `target`, if it has by `now`.
    fn reached(&self, cal: &Calendar, target: i64, now: i64) -> Option<i64> {
        let mut counted: i64 = 0;
        for (s, e) in self.runs(now) {
            let here = cal.working_ms(s, e);
            if counted.saturating_add(here) >= target {
                return Some(cal.add_working(s, target - counted));
            }
            counted += here;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    /// A Beijing wall-clock instant.
    fn at(date: &str, hour: i64, minute: i64) -> i64 {
        join(parse_day(date).unwrap(), (hour * 60 + minute) * MINUTE_MS)
    }

    /// 08:00–12:00 and 13:30–17:30, the service desk's hours.
    fn desk_hours() -> WorkingHours {
        WorkingHours::new(vec![(480, 720), (810, 1050)]).unwrap()
    }

    fn china() -> Calendar {
        Calendar::china_business(desk_hours()).unwrap()
    }

    fn clock(events: &[ClockEvent]) -> SlaClock {
        SlaClock::from_events(events.iter().copied()).unwrap()
    }

    #[test]
    fn a_ticket_opened_friday_afternoon_is_due_monday_morning_and_nights_and_weekends_do_not_count() {
        let cal = china();
        let friday = at("2026-03-13", 16, 30);
        let ticket = clock(&[ClockEvent::Started(friday)]);
        assert_eq!(ticket.due(&cal, 4 * HOUR, friday), Some(at("2026-03-16", 11, 0)));
        assert_eq!(cal.working_ms(at("2026-03-13", 17, 30), at("2026-03-16", 8, 0)), 0);
        assert_eq!(ticket.elapsed(&cal, at("2026-03-16", 7, 59)), HOUR);
        // Five hours end at Monday noon, five and a half after the lunch break.
        assert_eq!(cal.add_working(friday, 5 * HOUR), at("2026-03-16", 12, 0));
        assert_eq!(cal.add_working(friday, 11 * HOUR / 2), at("2026-03-16", 14, 0));
        // Opened at night, the count starts with the next period.
        assert_eq!(cal.add_working(at("2026-03-16", 3, 0), HOUR), at("2026-03-16", 9, 0));
    }

    #[test]
    fn a_ticket_opened_before_national_day_is_due_after_the_break() {
        let cal = china();
        let opened = at("2026-09-30", 16, 30);
        let ticket = clock(&[ClockEvent::Started(opened)]);
        assert_eq!(ticket.due(&cal, 4 * HOUR, opened), Some(at("2026-10-08", 11, 0)));
        assert_eq!(ticket.elapsed(&cal, at("2026-10-07", 23, 0)), HOUR);
        assert!(!cal.is_working_day(parse_day("2026-10-05").unwrap()));
    }

    #[test]
    fn a_ticket_opened_on_the_working_saturday_before_spring_festival_is_due_after_the_break() {
        let cal = china();
        let saturday = at("2026-02-14", 16, 30);
        assert!(cal.is_working_day(parse_day("2026-02-14").unwrap()));
        assert_eq!(cal.add_working(saturday, 4 * HOUR), at("2026-02-24", 11, 0));
        // On Friday the 13th the same ticket falls due on that Saturday.
        assert_eq!(cal.add_working(at("2026-02-13", 16, 30), 4 * HOUR), at("2026-02-14", 11, 0));
    }

    #[test]
    fn an_adjusted_working_saturday_counts_and_a_plain_saturday_does_not() {
        let china = china();
        let plain = Calendar::business(desk_hours(), [], []).unwrap();
        let (friday, monday) = (at("2026-10-09", 8, 0), at("2026-10-12", 8, 0));
        assert_eq!(china.working_ms(friday, monday), 16 * HOUR);
        assert_eq!(plain.working_ms(friday, monday), 8 * HOUR);
        let ticket = clock(&[ClockEvent::Started(friday)]);
        assert_eq!(ticket.elapsed(&china, monday), 16 * HOUR);
    }

    #[test]
    fn a_pause_for_a_supplier_moves_the_due_time_by_the_paused_working_time() {
        let cal = china();
        let opened = at("2026-03-16", 9, 0);
        let unpaused = clock(&[ClockEvent::Started(opened)]);
        assert_eq!(unpaused.due(&cal, 8 * HOUR, opened), Some(at("2026-03-17", 9, 0)));

        let (paused, resumed) = (at("2026-03-16", 14, 0), at("2026-03-16", 16, 0));
        let waited = clock(&[ClockEvent::Started(opened), ClockEvent::Paused(paused), ClockEvent::Resumed(resumed)]);
        assert_eq!(waited.due(&cal, 8 * HOUR, resumed), Some(at("2026-03-17", 11, 0)));
        let evening = at("2026-03-16", 20, 0);
        assert_eq!(waited.elapsed(&cal, evening), unpaused.elapsed(&cal, evening) - 2 * HOUR);
        // While paused: no due time, and the count stands still.
        assert_eq!(waited.due(&cal, 8 * HOUR, at("2026-03-16", 15, 0)), None);
        assert_eq!(waited.elapsed(&cal, at("2026-03-16", 15, 59)), 7 * HOUR / 2);
    }

    #[test]
    fn a_pause_outside_working_hours_changes_nothing() {
        let cal = china();
        let opened = at("2026-03-16", 9, 0);
        let unpaused = clock(&[ClockEvent::Started(opened)]);
        let overnight = clock(&[
            ClockEvent::Started(opened),
            ClockEvent::Paused(at("2026-03-16", 18, 0)),
            ClockEvent::Resumed(at("2026-03-17", 7, 0)),
        ]);
        let now = at("2026-03-17", 7, 30);
        assert_eq!(overnight.due(&cal, 8 * HOUR, now), unpaused.due(&cal, 8 * HOUR, now));
        assert_eq!(overnight.elapsed(&cal, now), unpaused.elapsed(&cal, now));
    }

    #[test]
    fn a_paused_clock_does_not_breach_while_paused_and_breaches_once_it_runs_on() {
        let cal = china();
        let opened = at("2026-03-16", 9, 0);
        let paused_at_noon = [ClockEvent::Started(opened), ClockEvent::Paused(at("2026-03-16", 12, 0))];
        let wednesday = at("2026-03-18", 10, 0);
        assert_eq!(clock(&paused_at_noon).state(&cal, 4 * HOUR, 80, wednesday), SlaState::Paused);
        assert_eq!(clock(&[ClockEvent::Started(opened)]).state(&cal, 4 * HOUR, 80, wednesday), SlaState::Breached);
        // Paused exactly at the target: not breached until it runs on.
        assert_eq!(clock(&paused_at_noon).state(&cal, 3 * HOUR, 80, wednesday), SlaState::Paused);
        let resumed = [paused_at_noon.as_slice(), &[ClockEvent::Resumed(wednesday)]].concat();
        assert_eq!(clock(&resumed).state(&cal, 3 * HOUR, 80, wednesday), SlaState::Warning);
        assert_eq!(clock(&resumed).state(&cal, 3 * HOUR, 80, wednesday + 1), SlaState::Breached);
    }

    #[test]
    fn changing_the_target_mid_ticket_keeps_the_elapsed_time() {
        let cal = china();
        let ticket = clock(&[ClockEvent::Started(at("2026-03-16", 9, 0))]);
        let now = at("2026-03-16", 15, 0);
        assert_eq!(ticket.elapsed(&cal, now), 9 * HOUR / 2);
        // Priority 3, 8 hours: due tomorrow at 09:00.
        assert_eq!(ticket.due(&cal, 8 * HOUR, now), Some(at("2026-03-17", 9, 0)));
        assert_eq!(ticket.state(&cal, 8 * HOUR, 80, now), SlaState::Running);
        // Raised to 6 hours: due today at 16:30, already past 75 %.
        assert_eq!(ticket.due(&cal, 6 * HOUR, now), Some(at("2026-03-16", 16, 30)));
        assert_eq!(ticket.state(&cal, 6 * HOUR, 75, now), SlaState::Warning);
        // Raised to 4 hours: breached at 14:30, before the change.
        assert_eq!(ticket.due(&cal, 4 * HOUR, now), Some(at("2026-03-16", 14, 30)));
        assert_eq!(ticket.state(&cal, 4 * HOUR, 80, now), SlaState::Breached);
        assert_eq!(ticket.elapsed(&cal, now), 9 * HOUR / 2);
    }

    #[test]
    fn a_reopened_ticket_continues_from_its_resolved_value() {
        let cal = china();
        let ticket = clock(&[
            ClockEvent::Started(at("2026-03-16", 9, 0)),
            ClockEvent::Stopped(at("2026-03-16", 11, 0)),
            ClockEvent::Restarted(at("2026-03-19", 10, 0)),
        ]);
        assert_eq!(ticket.elapsed(&cal, at("2026-03-18", 10, 0)), 2 * HOUR);
        assert_eq!(ticket.state(&cal, 4 * HOUR, 80, at("2026-03-18", 10, 0)), SlaState::Met);
        assert_eq!(ticket.due(&cal, 4 * HOUR, at("2026-03-18", 10, 0)), None);
        let now = at("2026-03-19", 11, 0);
        assert_eq!(ticket.elapsed(&cal, now), 3 * HOUR);
        assert_eq!(ticket.due(&cal, 4 * HOUR, now), Some(at("2026-03-19", 12, 0)));
        assert_eq!(ticket.state(&cal, 4 * HOUR, 80, now), SlaState::Running);
    }

    #[test]
    fn a_ticket_resolved_after_its_due_time_is_breached_and_at_its_due_time_is_met() {
        let cal = china();
        let opened = at("2026-03-16", 9, 0);
        let on_time = clock(&[ClockEvent::Started(opened), ClockEvent::Stopped(at("2026-03-16", 12, 0))]);
        let on_saturday = clock(&[ClockEvent::Started(opened), ClockEvent::Stopped(at("2026-03-21", 10, 0))]);
        let later = at("2026-03-23", 9, 0);
        assert_eq!(on_time.state(&cal, 3 * HOUR, 80, later), SlaState::Met);
        assert_eq!(on_saturday.state(&cal, 3 * HOUR, 80, later), SlaState::Breached);
    }

    #[test]
    fn seven_by_twenty_four_counts_every_millisecond() {
        let cal = Calendar::always();
        let (from, to) = (at("2026-02-14", 16, 30), at("2026-02-24", 3, 0));
        assert_eq!(cal.working_ms(from, to), to - from);
        assert_eq!(cal.add_working(from, 9 * HOUR), from + 9 * HOUR);
        assert!(cal.is_working_day(parse_day("2026-10-01").unwrap()));
        assert_eq!(cal.working_ms(to, from), 0);
    }

    /// A small linear congruential generator: reproducible instants without a crate.
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: i64) -> i64 {
            self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((self.0 >> 33) % n.unsigned_abs()) as i64
        }
    }

    fn calendars() -> Vec<Calendar> {
        let around_midnight = WorkingHours::new(vec![(0, 120), (600, 601), (1380, 1440)]).unwrap();
        vec![Calendar::always(), china(), Calendar::china_business(around_midnight).unwrap()]
    }

    #[test]
    fn working_time_adds_up_and_add_working_inverts_it() {
        let mut random = Lcg(7);
        let base = at("2024-12-01", 0, 0);
        for cal in calendars() {
            for _ in 0..3000 {
                let span = [HOUR, 10 * 24 * HOUR, 800 * 24 * HOUR][random.below(3) as usize];
                let a = base + random.below(span);
                let b = a + random.below(span);
                let c = b + random.below(span);
                let (ab, bc, ac) = (cal.working_ms(a, b), cal.working_ms(b, c), cal.working_ms(a, c));
                assert_eq!(ab + bc, ac, "{a} {b} {c}");
                let back = cal.add_working(a, ac);
                assert!(back <= c, "{a} {c}");
                assert_eq!(cal.working_ms(a, back), ac);
                if ac > 0 && cal.is_working_time(c - 1) {
                    assert_eq!(back, c, "{a} {c}");
                }
            }
        }
    }

    #[test]
    fn working_time_agrees_with_counting_minute_by_minute() {
        let mut random = Lcg(11);
        let base = at("2024-12-20", 0, 0) / MINUTE_MS;
        for cal in calendars() {
            for _ in 0..40 {
                let from = base + random.below(2 * 366 * 1440);
                let to = from + random.below(30 * 1440);
                let counted = (from..to).filter(|m| cal.is_working_time(m * MINUTE_MS)).count() as i64;
                assert_eq!(cal.working_ms(from * MINUTE_MS, to * MINUTE_MS), counted * MINUTE_MS);
            }
        }
    }

    #[test]
    fn the_china_table_parses_and_its_adjusted_working_days_fall_on_weekends() {
        let (mut off, mut on) = (0, 0);
        for &(first, last, turn, _) in CHINA {
            let (first, last) = (parse_day(first).unwrap(), parse_day(last).unwrap());
            assert!(first <= last);
            match turn {
                Turn::Off => off += last - first + 1,
                Turn::On => {
                    assert_eq!(first, last);
                    assert!(!is_weekday(first), "{}", format_day(first));
                    on += 1;
                }
            }
        }
        // 2025: 1 + 8 + 3 + 5 + 3 + 8 days off; 2026: 3 + 9 + 3 + 5 + 3 + 3 + 7.
        assert_eq!((off, on), (28 + 33, 5 + 6));
        // Spot checks of the weekdays the notices print.
        assert!(is_weekday(parse_day("2025-01-28").unwrap()) && is_weekday(parse_day("2026-10-07").unwrap()));
        assert_eq!((parse_day("2026-02-15").unwrap() + 3).rem_euclid(7), 6, "15 February 2026 is a Sunday");
    }

    #[test]
    fn a_year_spanning_ticket_counts_every_working_day_of_2026() {
        let cal = china();
        // 2026 has 261 weekdays; 19 of them are holidays and 6 weekend days are worked (365 − 104 − 13 = 248).
        let year = cal.working_ms(at("2026-01-01", 0, 0), at("2027-01-01", 0, 0));
        assert_eq!(year, (261 - 19 + 6) * 8 * HOUR);
    }

    #[test]
    fn bad_periods_are_refused_with_the_rule_they_break() {
        let rule = |periods| match WorkingHours::new(periods) {
            Err(SlaError::Period { index, rule }) => (index, rule),
            other => panic!("{other:?}"),
        };
        assert_eq!(rule(vec![(480, 720), (700, 1050)]), (1, "periods must be sorted and must not overlap"));
        assert_eq!(rule(vec![(810, 1050), (480, 720)]), (1, "periods must be sorted and must not overlap"));
        assert_eq!(rule(vec![(480, 1441)]), (0, "a period must end by minute 1440 (24:00)"));
        assert_eq!(rule(vec![(720, 720)]), (0, "a period must start before it ends"));
        assert_eq!(rule(vec![]), (0, "at least one working period is needed"));
        assert!(WorkingHours::new(vec![(0, 720), (720, 1440)]).is_ok());
    }

    #[test]
    fn malformed_dates_and_conflicting_days_are_refused_naming_the_value() {
        for bad in ["2026-02-30", "2026-13-01", "2026-2-14", "2026/02/14", "26-02-14", "", "2026-02-1x", "0000-01-01"] {
            assert_eq!(parse_day(bad), Err(SlaError::Date { value: bad.to_owned() }), "{bad}");
        }
        assert_eq!(parse_day("1970-01-02"), Ok(1));
        let day = parse_day("2026-02-14").unwrap();
        let refused = Calendar::business(desk_hours(), [day], [day]).unwrap_err();
        assert_eq!(refused.to_string(), "day 2026-02-14 is listed both as a holiday and as an adjusted working day");
    }

    #[test]
    fn a_ledger_out_of_order_or_in_the_wrong_phase_is_refused_naming_the_event() {
        let rule = |events: &[ClockEvent]| match SlaClock::from_events(events.iter().copied()) {
            Err(SlaError::Ledger { index, rule }) => (index, rule),
            other => panic!("{other:?}"),
        };
        use ClockEvent::*;
        assert_eq!(rule(&[Started(10), Paused(5)]), (1, "events must be in time order"));
        assert_eq!(rule(&[Paused(1)]), (0, "the ledger must begin with Started"));
        assert_eq!(rule(&[]), (0, "the ledger must begin with Started"));
        assert_eq!(rule(&[Started(1), Started(2)]), (1, "Started may appear only once, first"));
        assert_eq!(rule(&[Started(1), Paused(2), Paused(3)]), (2, "Paused only while running"));
        assert_eq!(rule(&[Started(1), Resumed(2)]), (1, "Resumed only while paused"));
        assert_eq!(rule(&[Started(1), Stopped(2), Stopped(3)]), (2, "Stopped only while running or paused"));
        assert_eq!(rule(&[Started(1), Restarted(2)]), (1, "Restarted only while stopped"));
        assert!(SlaClock::from_events([Started(1), Paused(2), Stopped(3), Restarted(4)]).is_ok());
    }

    #[test]
    fn extreme_inputs_saturate_instead_of_overflowing() {
        let cal = china();
        assert_eq!(cal.add_working(0, i64::MAX), i64::MAX);
        assert_eq!(Calendar::always().add_working(i64::MAX - 1, 10), i64::MAX);
        assert!(cal.working_ms(i64::MIN, i64::MAX) > 0);
        assert_eq!(cal.is_working_day(i64::MAX), is_weekday(i64::MAX));
        assert!(Calendar::business(desk_hours(), [i64::MAX, i64::MIN], [i64::MAX - 1]).is_ok());
    }
}
