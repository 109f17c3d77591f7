//! When an order's doses are due, without storage: the ward's medication round times
//! of each frequency (qd 08:00, bid 08:00 and 16:00, q8h 00:00, 08:00 and 16:00 …,
//! a campus may set its own), and the due times of an order between two instants —
//! from its start (the first round after it was signed) to its stop.
//!
//! Time zones: instants are UTC epoch milliseconds everywhere (the database, FHIR
//! `dateTime`s written with `+08:00`); the rounds are minutes after local midnight in
//! Beijing. China keeps UTC+8 all year with no daylight saving time, so a day is
//! always 86,400,000 ms and local midnight is UTC 16:00 of the day before: a due time
//! is `local midnight + minute`, never skipped or repeated by a clock change. A
//! campus abroad would need a zone table; none is configured.

use lianyi_clinical::prescribing::Frequency;

const DAY_MS: i64 = 86_400_000;
const MINUTE_MS: i64 = 60_000;
/// Beijing time, UTC+8 all year.
const OFFSET_MS: i64 = 8 * 3_600_000;

/// The rounds of each frequency: minutes after local midnight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rounds {
    pub qd: Vec<u32>,
    pub bid: Vec<u32>,
    pub tid: Vec<u32>,
    pub qid: Vec<u32>,
    pub q6h: Vec<u32>,
    pub q8h: Vec<u32>,
    pub q12h: Vec<u32>,
    pub qn: Vec<u32>,
}

impl Default for Rounds {
    /// The common schedule of Chinese wards.
    fn default() -> Rounds {
        let h = |hours: &[u32]| hours.iter().map(|h| h * 60).collect::<Vec<u32>>();
        Rounds {
            qd: h(&[8]),
            bid: h(&[8, 16]),
            tid: h(&[8, 12, 16]),
            qid: h(&[8, 12, 16, 20]),
            q6h: h(&[0, 6, 12, 18]),
            q8h: h(&[0, 8, 16]),
            q12h: h(&[8, 20]),
            qn: h(&[20]),
        }
    }
}

impl Rounds {
    /// The rounds of `f` (a one-time order, `st`, has none: it is due when signed).
    pub fn of(&self, f: Frequency) -> &[u32] {
        match f {
            Frequency::Qd => &self.qd,
            Frequency::Bid => &self.bid,
            Frequency::Tid => &self.tid,
            Frequency::Qid => &self.qid,
            Frequency::Q6h => &self.q6h,
            Frequency::Q8h => &self.q8h,
            Frequency::Q12h => &self.q12h,
            Frequency::Qn => &self.qn,
            Frequency::St => &[],
        }
    }

    /// Every frequency's rounds as [`Rounds::parse`] reads them.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        for f in Frequency::EVERY.iter().filter(|f| **f != Frequency::St) {
            let times: Vec<String> = self.of(*f).iter().map(|m| format!("{:02}:{:02}", m / 60, m % 60)).collect();
            let _ = write!(out, "{}{}={}", if out.is_empty() { "" } else { ";" }, f.code(), times.join(","));
        }
        out
    }

    /// Reads `qd=08:00;bid=08:00,16:00;…` (a campus's setting); every frequency not
    /// named keeps its default. The error names the part and the rule.
    pub fn parse(text: &str) -> Result<Rounds, String> {
        let mut r = Rounds::default();
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (code, times) = part.split_once('=').ok_or_else(|| format!("{part}: frequency=HH:MM,HH:MM"))?;
            let f = Frequency::parse(code.trim()).filter(|f| *f != Frequency::St);
            let Some(f) = f else { return Err(format!("{part}: an unknown frequency")) };
            let mut minutes = Vec::new();
            for t in times.split(',').map(str::trim) {
                let (h, m) = t.split_once(':').ok_or_else(|| format!("{part}: times as HH:MM"))?;
                let (h, m): (u32, u32) = (
                    h.parse().map_err(|_| format!("{part}: times as HH:MM"))?,
                    m.parse().map_err(|_| format!("{part}: times as HH:MM"))?,
                );
                if h > 23 || m > 59 {
                    return Err(format!("{part}: times between 00:00 and 23:59"));
                }
                minutes.push(h * 60 + m);
            }
            minutes.sort_unstable();
            minutes.dedup();
            if minutes.len() != f.per_day() as usize {
                return Err(format!("{part}: {} a day", f.per_day()));
            }
            let slot = match f {
                Frequency::Qd => &mut r.qd,
                Frequency::Bid => &mut r.bid,
                Frequency::Tid => &mut r.tid,
                Frequency::Qid => &mut r.qid,
                Frequency::Q6h => &mut r.q6h,
                Frequency::Q8h => &mut r.q8h,
                Frequency::Q12h => &mut r.q12h,
                Frequency::Qn => &mut r.qn,
                Frequency::St => unreachable!("refused above"),
            };
            *slot = minutes;
        }
        Ok(r)
    }
}

/// The UTC instant of local (Beijing) midnight starting the day `ms` falls on.
pub fn local_midnight(ms: i64) -> i64 {
    (ms + OFFSET_MS).div_euclid(DAY_MS) * DAY_MS - OFFSET_MS
}

/// The due times in `[from, to)` of an order of frequency `f` that started at
/// `start` and stops at `stop` (if it does): each round at or after the start, before
/// the stop. A one-time order (`st`) is due once, at its start.
pub fn due_times(rounds: &Rounds, f: Frequency, start: i64, stop: Option<i64>, from: i64, to: i64) -> Vec<i64> {
    let end = stop.map_or(to, |s| s.min(to));
    if f == Frequency::St {
        return if start >= from && start < end { vec![start] } else { Vec::new() };
    }
    let mut out = Vec::new();
    let mut day = local_midnight(from.max(start));
    while day < end {
        for m in rounds.of(f) {
            let at = day + i64::from(*m) * MINUTE_MS;
            if at >= start && at >= from && at < end {
                out.push(at);
            }
        }
        day += DAY_MS;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-07 00:00 in Beijing (UTC 2026-12-06 16:00).
    const DEC7: i64 = 1_796_572_800_000;
    const H: i64 = 3_600_000;

    fn beijing(ms: i64) -> String {
        lianyi_clinical::scheduling::local_instant(ms)[..16].to_string()
    }

    #[test]
    fn local_midnight_is_utc_four_pm_the_day_before() {
        assert_eq!(beijing(DEC7), "2026-12-07T00:00");
        assert_eq!(local_midnight(DEC7 + 23 * H + 59 * MINUTE_MS), DEC7);
        assert_eq!(local_midnight(DEC7 + 24 * H), DEC7 + DAY_MS);
        assert_eq!(local_midnight(DEC7 - 1), DEC7 - DAY_MS, "23:59:59.999 the day before");
    }

    #[test]
    fn an_order_is_due_at_each_round_from_its_start_across_days_until_it_stops() {
        let r = Rounds::default();
        // Signed at 10:30 on the 7th, q8h: 16:00, then 00:00, 08:00, 16:00 on the 8th …
        let start = DEC7 + 10 * H + 30 * MINUTE_MS;
        let due = due_times(&r, Frequency::Q8h, start, None, DEC7, DEC7 + 2 * DAY_MS);
        let shown: Vec<String> = due.iter().map(|d| beijing(*d)).collect();
        assert_eq!(shown, ["2026-12-07T16:00", "2026-12-08T00:00", "2026-12-08T08:00", "2026-12-08T16:00"],);
        // Stopped at 08:00 on the 8th: that round is not given.
        let stop = DEC7 + DAY_MS + 8 * H;
        let due = due_times(&r, Frequency::Q8h, start, Some(stop), DEC7, DEC7 + 2 * DAY_MS);
        assert_eq!(due.iter().map(|d| beijing(*d)).collect::<Vec<_>>(), ["2026-12-07T16:00", "2026-12-08T00:00"]);
        // A window in the middle of the stay: the 8th only, bid.
        let due = due_times(&r, Frequency::Bid, start, None, DEC7 + DAY_MS, DEC7 + 2 * DAY_MS);
        assert_eq!(due.iter().map(|d| beijing(*d)).collect::<Vec<_>>(), ["2026-12-08T08:00", "2026-12-08T16:00"]);
        // One-time (st): due once, when signed.
        assert_eq!(due_times(&r, Frequency::St, start, None, DEC7, DEC7 + DAY_MS), [start]);
        assert!(due_times(&r, Frequency::St, start, None, DEC7 + DAY_MS, DEC7 + 2 * DAY_MS).is_empty());
    }

    #[test]
    fn every_day_has_the_same_rounds_over_a_year_no_daylight_saving() {
        // Over the dates other countries change their clocks, each day has exactly its
        // rounds at the same local times: 365 days of qid give 1,460 doses, 6 hours
        // apart in the day and 12 hours overnight.
        let r = Rounds::default();
        let start = DEC7;
        let due = due_times(&r, Frequency::Qid, start, None, start, start + 365 * DAY_MS);
        assert_eq!(due.len(), 1460);
        for d in &due {
            assert!(["08:00", "12:00", "16:00", "20:00"].contains(&&beijing(*d)[11..]), "{}", beijing(*d));
        }
        assert!(due.windows(2).all(|w| w[1] - w[0] == 4 * H || w[1] - w[0] == 12 * H));
    }

    #[test]
    fn a_campus_sets_its_own_round_times() {
        let r = Rounds::parse("qd=09:00; bid=09:00,17:00").unwrap();
        assert_eq!(r.qd, [540]);
        assert_eq!(r.bid, [540, 1020]);
        assert_eq!(r.tid, Rounds::default().tid, "not named: the default");
        assert!(Rounds::parse("bid=09:00").unwrap_err().contains("2 a day"));
        assert!(Rounds::parse("qd=25:00").unwrap_err().contains("between 00:00 and 23:59"));
        assert!(Rounds::parse("q3h=08:00").unwrap_err().contains("unknown frequency"));
        assert!(Rounds::parse("st=08:00").unwrap_err().contains("unknown frequency"));
        let due = due_times(&r, Frequency::Qd, DEC7, None, DEC7, DEC7 + DAY_MS);
        assert_eq!(due.iter().map(|d| beijing(*d)).collect::<Vec<_>>(), ["2026-12-07T09:00"]);
        // Stored as text and read back unchanged.
        assert!(r.text().starts_with("qd=09:00;bid=09:00,17:00;tid=08:00,12:00,16:00;"), "{}", r.text());
        assert_eq!(Rounds::parse(&r.text()).unwrap(), r);
        assert_eq!(Rounds::parse(&Rounds::default().text()).unwrap(), Rounds::default());
    }
}
