//! FHIR date, dateTime and instant values as ranges of epoch milliseconds.
//!
//! Search compares ranges (a date "2024-03" covers the whole month), so every
//! indexed value and every search value becomes an inclusive `[low, high]` pair.
//! Values without a time zone are read as UTC. Own code, no date crate: the formats
//! are fixed by the FHIR spec and this keeps the hot path allocation-free.

/// An inclusive range of instants in epoch milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateRange {
    pub low: i64,
    pub high: i64,
}

/// Lowest and highest bound used for open-ended periods.
pub const MIN_MS: i64 = -62_135_596_800_000; // 0001-01-01T00:00:00Z
pub const MAX_MS: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) for days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn num(s: &str, range: std::ops::Range<usize>) -> Option<u32> {
    let part = s.get(range)?;
    if part.bytes().all(|b| b.is_ascii_digit()) { part.parse().ok() } else { None }
}

/// Parses a FHIR date, dateTime or instant (any precision) into the range it covers.
pub fn parse_range(s: &str) -> Option<DateRange> {
    let year = i64::from(num(s, 0..4)?);
    let rest = &s[4..];
    if rest.is_empty() {
        let low = days_from_civil(year, 1, 1) * 86_400_000;
        let high = days_from_civil(year + 1, 1, 1) * 86_400_000 - 1;
        return Some(DateRange { low, high });
    }
    if !rest.starts_with('-') {
        return None;
    }
    let month = num(s, 5..7)?;
    if !(1..=12).contains(&month) {
        return None;
    }
    if s.len() == 7 {
        let low = days_from_civil(year, month, 1) * 86_400_000;
        let high = low + i64::from(days_in_month(year, month)) * 86_400_000 - 1;
        return Some(DateRange { low, high });
    }
    if s.as_bytes().get(7) != Some(&b'-') {
        return None;
    }
    let day = num(s, 8..10)?;
    if day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let day_start = days_from_civil(year, month, day) * 86_400_000;
    if s.len() == 10 {
        return Some(DateRange { low: day_start, high: day_start + 86_400_000 - 1 });
    }
    if s.as_bytes().get(10) != Some(&b'T') {
        return None;
    }
    let hh = num(s, 11..13)?;
    if s.as_bytes().get(13) != Some(&b':') {
        return None;
    }
    let mi = num(s, 14..16)?;
    let (ss, mut pos, has_seconds) =
        if s.as_bytes().get(16) == Some(&b':') { (num(s, 17..19)?, 19, true) } else { (0, 16, false) };
    if hh > 24 || mi > 59 || ss > 60 {
        return None;
    }
    let mut millis = 0i64;
    let mut precision_ms: i64 = if has_seconds { 1000 } else { 60_000 };
    if has_seconds && s.as_bytes().get(pos) == Some(&b'.') {
        let start = pos + 1;
        let mut end = start;
        while end < s.len() && s.as_bytes()[end].is_ascii_digit() {
            end += 1;
        }
        if end == start {
            return None;
        }
        let frac = &s[start..end];
        let digits: String = frac.chars().chain("000".chars()).take(3).collect();
        millis = digits.parse().ok()?;
        precision_ms = if frac.len() >= 3 { 1 } else { 10i64.pow(3 - frac.len() as u32) };
        pos = end;
    }
    let tz = &s[pos..];
    let offset_ms: i64 = if tz == "Z" || tz.is_empty() {
        0
    } else {
        let sign = match tz.as_bytes()[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        if tz.len() != 6 || tz.as_bytes()[3] != b':' {
            return None;
        }
        let oh = num(tz, 1..3)?;
        let om = num(tz, 4..6)?;
        sign * (i64::from(oh) * 3_600_000 + i64::from(om) * 60_000)
    };
    let low =
        day_start + i64::from(hh) * 3_600_000 + i64::from(mi) * 60_000 + i64::from(ss) * 1000 + millis - offset_ms;
    Some(DateRange { low, high: low + precision_ms - 1 })
}

/// Formats epoch milliseconds as a FHIR instant (`2024-03-01T08:30:00.123Z`).
pub fn format_instant(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let h = rem / 3_600_000;
    let mi = (rem / 60_000) % 60;
    let s = (rem / 1000) % 60;
    let milli = rem % 1000;
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

/// Formats epoch milliseconds as a FHIR date (`2024-03-01`).
pub fn format_date(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(86_400_000));
    format!("{y:04}-{m:02}-{d:02}")
}

/// HL7 DTM and DICOM DT (`YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]`) as a FHIR date or
/// dateTime; local times without an offset get `offset` (the channel's, the campus's).
pub fn from_dtm(raw: &str, offset: &str) -> Option<String> {
    let raw = raw.trim();
    let (body, zone) = match raw.find(['+', '-']) {
        Some(i) if i >= 4 => (&raw[..i], Some(&raw[i..])),
        _ => (raw, None),
    };
    let (digits, fraction) = match body.split_once('.') {
        Some((d, f)) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => (d, Some(f)),
        Some(_) => return None,
        None => (body, None),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) || ![4, 6, 8, 10, 12, 14].contains(&digits.len()) {
        return None;
    }
    let d = |a: usize, b: usize| &digits[a..b];
    let month_ok = |m: &str| (1..=12).contains(&m.parse::<u32>().unwrap_or(0));
    let day_ok = |x: &str| (1..=31).contains(&x.parse::<u32>().unwrap_or(0));
    match digits.len() {
        4 => return Some(digits.to_string()),
        6 if month_ok(d(4, 6)) => return Some(format!("{}-{}", d(0, 4), d(4, 6))),
        8 if month_ok(d(4, 6)) && day_ok(d(6, 8)) => {
            return Some(format!("{}-{}-{}", d(0, 4), d(4, 6), d(6, 8)));
        }
        6 | 8 => return None,
        _ => {}
    }
    if !month_ok(d(4, 6)) || !day_ok(d(6, 8)) {
        return None;
    }
    let hh = d(8, 10);
    let mm = if digits.len() >= 12 { d(10, 12) } else { "00" };
    let ss = if digits.len() >= 14 { d(12, 14) } else { "00" };
    if hh.parse::<u32>().unwrap_or(99) > 23
        || mm.parse::<u32>().unwrap_or(99) > 59
        || ss.parse::<u32>().unwrap_or(99) > 59
    {
        return None;
    }
    let zone = match zone {
        Some(z) if z.len() == 5 && z[1..].bytes().all(|b| b.is_ascii_digit()) => format!("{}:{}", &z[..3], &z[3..]),
        Some(_) => return None,
        None => offset.to_string(),
    };
    let frac = fraction.map(|f| format!(".{f}")).unwrap_or_default();
    Some(format!("{}-{}-{}T{hh}:{mm}:{ss}{frac}{zone}", d(0, 4), d(4, 6), d(6, 8)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_dates_cover_their_whole_period() {
        let y = parse_range("2024").unwrap();
        assert_eq!(format_instant(y.low), "2024-01-01T00:00:00.000Z");
        assert_eq!(format_instant(y.high), "2024-12-31T23:59:59.999Z");
        let m = parse_range("2024-02").unwrap();
        assert_eq!(format_instant(m.high), "2024-02-29T23:59:59.999Z");
        let d = parse_range("2023-02-28").unwrap();
        assert_eq!(format_instant(d.low), "2023-02-28T00:00:00.000Z");
        assert_eq!(d.high - d.low, 86_400_000 - 1);
    }

    #[test]
    fn date_times_respect_time_zones_and_precision() {
        let t = parse_range("1989-10-04T02:25:16-04:00").unwrap();
        assert_eq!(format_instant(t.low), "1989-10-04T06:25:16.000Z");
        assert_eq!(t.high - t.low, 999);
        let t = parse_range("2024-03-01T08:00:00.5+08:00").unwrap();
        assert_eq!(format_instant(t.low), "2024-03-01T00:00:00.500Z");
        assert_eq!(t.high - t.low, 99);
    }

    #[test]
    fn invalid_dates_are_rejected() {
        for bad in ["not-a-date", "2023-02-29", "2024-13", "2024-1-01", "20240101", "2024-01-01T25:00:00Z", ""] {
            assert!(parse_range(bad).is_none(), "{bad} should be rejected");
        }
    }

    #[test]
    fn civil_round_trip() {
        for days in [-800_000i64, -1, 0, 1, 19_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(format_instant(MAX_MS), "9999-12-31T23:59:59.999Z");
        assert_eq!(format_instant(MIN_MS), "0001-01-01T00:00:00.000Z");
    }
}
