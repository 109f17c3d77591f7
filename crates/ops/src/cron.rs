//! Five-field cron expressions (`minute hour day-of-month month day-of-week`) in
//! Beijing time, for the backup schedule: `*`, numbers, ranges `a-b`, lists `a,b` and
//! steps `*/n` or `a-b/n`; day of week 0–7 with 0 and 7 both Sunday. As in cron, when
//! both day fields are restricted a day matching either one fires.

const MINUTE_MS: i64 = 60_000;
use crate::stats::OFFSET_MS as BEIJING_MS;

/// A parsed schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    text: String,
    minutes: Vec<bool>,
    hours: Vec<bool>,
    days: Vec<bool>,
    months: Vec<bool>,
    weekdays: Vec<bool>,
    days_any: bool,
    weekdays_any: bool,
}

fn field(text: &str, name: &str, lo: u32, hi: u32) -> Result<(Vec<bool>, bool), String> {
    let bad = |why: &str| format!("{name} '{text}': {why} (rule: {lo}-{hi}, *, a-b, a,b, */n)");
    let mut set = vec![false; hi as usize + 1];
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0).ok_or_else(|| bad("a bad step"))?),
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (a.parse().map_err(|_| bad("not a number"))?, b.parse().map_err(|_| bad("not a number"))?)
        } else {
            let v: u32 = range.parse().map_err(|_| bad("not a number"))?;
            (v, if part.contains('/') { hi } else { v })
        };
        if a < lo || b > hi || a > b {
            return Err(bad("out of range"));
        }
        for v in (a..=b).step_by(step as usize) {
            set[v as usize] = true;
        }
    }
    Ok((set, text == "*"))
}

impl Cron {
    /// Parses `m h dom mon dow`; the error names the field and the rule.
    pub fn parse(text: &str) -> Result<Cron, String> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(format!(
                "'{text}' has {} fields (rule: minute hour day-of-month month day-of-week, e.g. 0 2 * * *)",
                parts.len()
            ));
        }
        let (minutes, _) = field(parts[0], "minute", 0, 59)?;
        let (hours, _) = field(parts[1], "hour", 0, 23)?;
        let (days, days_any) = field(parts[2], "day of month", 1, 31)?;
        let (months, _) = field(parts[3], "month", 1, 12)?;
        let (mut weekdays, weekdays_any) = field(parts[4], "day of week", 0, 7)?;
        if weekdays[7] {
            weekdays[0] = true;
        }
        Ok(Cron {
            text: text.split_whitespace().collect::<Vec<_>>().join(" "),
            minutes,
            hours,
            days,
            months,
            weekdays,
            days_any,
            weekdays_any,
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    fn fires_at(&self, minute_ms: i64) -> bool {
        let local = minute_ms + BEIJING_MS;
        let day = local.div_euclid(86_400_000);
        let of_day = local.rem_euclid(86_400_000) / MINUTE_MS;
        let (_, month, dom) = lianyi_fhir::datetime::civil_from_days(day);
        // 1970-01-01 was a Thursday.
        let weekday = (day + 4).rem_euclid(7) as usize;
        let day_ok = match (self.days_any, self.weekdays_any) {
            (true, true) => true,
            (false, true) => self.days[dom as usize],
            (true, false) => self.weekdays[weekday],
            (false, false) => self.days[dom as usize] || self.weekdays[weekday],
        };
        day_ok
            && self.months[month as usize]
            && self.hours[(of_day / 60) as usize]
            && self.minutes[(of_day % 60) as usize]
    }

    /// The first time after `ms` (to the minute) the schedule fires; `None` if it
    /// never does within four years (`0 0 31 2 *`).
    pub fn next_after(&self, ms: i64) -> Option<i64> {
        let mut m = ms.div_euclid(MINUTE_MS) * MINUTE_MS + MINUTE_MS;
        let end = m + 4 * 366 * 86_400_000;
        while m < end {
            if self.fires_at(m) {
                return Some(m);
            }
            m += MINUTE_MS;
        }
        None
    }

    /// The longest wait between two firings over the year after `ms`: how old the
    /// newest backup may be before one is missing.
    pub fn longest_gap(&self, ms: i64) -> Option<i64> {
        let mut at = self.next_after(ms)?;
        let end = at + 366 * 86_400_000;
        let mut longest = 0;
        while at < end {
            let next = self.next_after(at)?;
            longest = longest.max(next - at);
            at = next;
        }
        Some(longest)
    }
}

#[cfg(test)]
mod tests {
    use super::Cron;

    /// 2026-12-06 00:00 Beijing time (a Sunday).
    const SUNDAY: i64 = 1_796_515_200_000 - 8 * 3_600_000;
    const HOUR: i64 = 3_600_000;

    #[test]
    fn nightly_at_two_fires_at_two_beijing_time_every_day() {
        let c = Cron::parse("0 2 * * *").unwrap();
        assert_eq!(c.next_after(SUNDAY), Some(SUNDAY + 2 * HOUR));
        assert_eq!(c.next_after(SUNDAY + 2 * HOUR), Some(SUNDAY + 26 * HOUR), "strictly after");
        assert_eq!(c.longest_gap(SUNDAY), Some(24 * HOUR));
    }

    #[test]
    fn lists_ranges_steps_and_weekdays() {
        let c = Cron::parse("30 */6 * * 1-5").unwrap();
        // Sunday: none; Monday 00:30 first.
        assert_eq!(c.next_after(SUNDAY), Some(SUNDAY + 24 * HOUR + HOUR / 2));
        assert_eq!(c.longest_gap(SUNDAY), Some(2 * 24 * HOUR + 6 * HOUR), "Friday 18:30 to Monday 00:30");
        let sundays = Cron::parse("0 3 * * 7").unwrap();
        assert_eq!(sundays.next_after(SUNDAY), Some(SUNDAY + 3 * HOUR), "7 is Sunday too");
        let either = Cron::parse("0 0 1 * 1").unwrap();
        assert_eq!(either.next_after(SUNDAY), Some(SUNDAY + 24 * HOUR), "a Monday, though not the 1st");
    }

    #[test]
    fn a_bad_expression_names_its_field() {
        for (text, says) in [
            ("0 2 * *", "4 fields"),
            ("60 2 * * *", "minute '60'"),
            ("0 24 * * *", "hour '24'"),
            ("0 2 0 * *", "day of month '0'"),
            ("0 2 * 13 *", "month '13'"),
            ("0 2 * * 8", "day of week '8'"),
            ("0 2 * * x", "not a number"),
            ("*/0 2 * * *", "a bad step"),
        ] {
            let e = Cron::parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
        assert_eq!(Cron::parse("0 0 31 2 *").unwrap().next_after(SUNDAY), None);
    }
}
