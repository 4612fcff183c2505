//! The time formats upstreams use in headers and token files: RFC 3339 timestamps and Go-style durations
//! (`6m0s`, `12ms`). Small enough to write here rather than pull a date-time crate into the core.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Parses `2025-08-21T12:40:59Z`, `2025-08-21T12:40:59.123+02:00` and the like.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let mut n: u64 = frac[..digits.min(9)].parse().ok()?;
        for _ in digits.min(9)..9 {
            n *= 10;
        }
        nanos = n as u32;
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) && &rest[3..4] == ":" => {
            let oh: i64 = rest[1..3].parse().ok()?;
            let om: i64 = rest[4..6].parse().ok()?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// Formats as `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds).
pub fn format_rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The first instant of the next calendar month, UTC (monthly quotas reset then).
pub fn start_of_next_month(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs() as i64;
    let (y, m, _) = civil_from_days(secs.div_euclid(86_400));
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    UNIX_EPOCH + Duration::from_secs((days_from_civil(ny, nm, 1) * 86_400) as u64)
}

/// The next midnight in US Pacific time (daily API quotas of Google's reset then), after `t`.
///
/// Pacific time is UTC−8, and UTC−7 from the second Sunday of March to the first Sunday of November (the
/// switches happen at 2:00 local, after midnight, so a day's midnight has the offset of the day before the
/// switch).
pub fn start_of_next_pacific_day(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs() as i64;
    // The local date of `t`: its offset is that of its own local day, give or take the 2:00 switch, which
    // only matters within an hour of it and never moves the next midnight by a day.
    let local_day = |offset_hours: i64| (secs - offset_hours * 3600).div_euclid(86_400);
    let offset = |day: i64| if pacific_summer_time(day) { 7 } else { 8 };
    let today = local_day(offset(local_day(8)));
    let next = today + 1;
    UNIX_EPOCH + Duration::from_secs((next * 86_400 + offset(next) * 3600) as u64)
}

/// Whether the midnight that starts local day `day` (days since 1970-01-01) is in Pacific daylight time.
fn pacific_summer_time(day: i64) -> bool {
    let (y, _, _) = civil_from_days(day);
    // Sundays: 1970-01-04 was one.
    let first_sunday_on_or_after = |d: i64| d + (3 - d).rem_euclid(7);
    let starts = first_sunday_on_or_after(days_from_civil(y, 3, 1)) + 7;
    let ends = first_sunday_on_or_after(days_from_civil(y, 11, 1));
    day > starts && day <= ends
}

/// Parses Go's `time.Duration` text: `1h2m3.5s`, `6m0s`, `12ms`, `500us`, `0s`.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest.bytes().take_while(|c| c.is_ascii_digit() || *c == b'.').count();
        if n == 0 {
            return None;
        }
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest.bytes().take_while(|c| c.is_ascii_alphabetic() || *c == 0xc2 || *c == 0xb5).count();
        let unit = match &rest[..u] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += value * unit;
        rest = &rest[u..];
    }
    duration_from_secs(total)
}

/// Seconds as a duration, for values an upstream sent: negative, non-finite and absurd values are not durations.
pub fn duration_from_secs(secs: f64) -> Option<Duration> {
    (secs.is_finite() && (0.0..1e9).contains(&secs)).then(|| Duration::from_secs_f64(secs))
}

/// How long from `now` until `at`; zero when `at` has passed.
pub fn until(now: SystemTime, at: SystemTime) -> Duration {
    at.duration_since(now).unwrap_or(Duration::ZERO)
}

/// `Retry-After` as delta-seconds (fractions allowed) or an HTTP date; also `retry-after-ms`.
pub fn parse_retry_after(headers: &http::HeaderMap, now: SystemTime) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
        return duration_from_secs(ms / 1000.0);
    }
    let v = get("retry-after")?.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return duration_from_secs(secs);
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(until(now, at))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let h = |k: &str, v: &str| {
            let mut m = http::HeaderMap::new();
            m.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
            m
        };
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after(&h("retry-after", "1.5"), now), Some(Duration::from_millis(1500)));
        assert_eq!(parse_retry_after(&h("retry-after-ms", "250"), now), Some(Duration::from_millis(250)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(parse_retry_after(&h("retry-after", &date), now), Some(Duration::from_secs(90)));
        assert_eq!(parse_retry_after(&h("retry-after", "soon"), now), None);
        assert_eq!(parse_retry_after(&h("retry-after", "-3"), now), None);
    }

    #[test]
    fn next_pacific_midnight_follows_daylight_saving() {
        let at = |s: &str| parse_rfc3339(s).unwrap();
        // Winter: UTC−8.
        assert_eq!(format_rfc3339(start_of_next_pacific_day(at("2025-01-15T12:00:00Z"))), "2025-01-16T08:00:00Z");
        // Still the 14th in California at 05:00 UTC on the 15th.
        assert_eq!(format_rfc3339(start_of_next_pacific_day(at("2025-01-15T05:00:00Z"))), "2025-01-15T08:00:00Z");
        // Summer: UTC−7.
        assert_eq!(format_rfc3339(start_of_next_pacific_day(at("2025-08-21T12:40:59Z"))), "2025-08-22T07:00:00Z");
        // 2025 switches: Sunday 9 March (the midnight starting the 9th is still winter time) and Sunday
        // 2 November (the midnight starting the 2nd is still summer time).
        assert_eq!(format_rfc3339(start_of_next_pacific_day(at("2025-03-08T20:00:00Z"))), "2025-03-09T08:00:00Z");
        assert_eq!(format_rfc3339(start_of_next_pacific_day(at("2025-03-09T20:00:00Z"))), "2025-03-10T07:00:00Z");
        assert_eq!(format_rfc3339(start_of_next_pacific_day(at("2025-11-01T20:00:00Z"))), "2025-11-02T07:00:00Z");
        assert_eq!(format_rfc3339(start_of_next_pacific_day(at("2025-11-02T20:00:00Z"))), "2025-11-03T08:00:00Z");
        // Exactly at midnight: the next one, a day later.
        assert_eq!(format_rfc3339(start_of_next_pacific_day(at("2025-01-16T08:00:00Z"))), "2025-01-17T08:00:00Z");
    }

    #[test]
    fn rfc3339_round_trip_and_offsets() {
        let t = parse_rfc3339("2025-08-21T12:40:59Z").unwrap();
        assert_eq!(t.duration_since(UNIX_EPOCH).unwrap().as_secs(), 1_755_780_059);
        assert_eq!(format_rfc3339(t), "2025-08-21T12:40:59Z");
        let t2 = parse_rfc3339("2025-08-21T14:40:59.5+02:00").unwrap();
        assert_eq!(t2.duration_since(t).unwrap(), Duration::from_millis(500));
        assert!(parse_rfc3339("2025-13-01T00:00:00Z").is_none());
        assert!(parse_rfc3339("yesterday").is_none());
        assert_eq!(format_rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(parse_rfc3339("2024-02-29T23:59:59Z").unwrap()), "2024-02-29T23:59:59Z");
    }

    #[test]
    fn next_month() {
        let t = parse_rfc3339("2025-12-15T10:00:00Z").unwrap();
        assert_eq!(format_rfc3339(start_of_next_month(t)), "2026-01-01T00:00:00Z");
        let t = parse_rfc3339("2025-02-01T00:00:00Z").unwrap();
        assert_eq!(format_rfc3339(start_of_next_month(t)), "2025-03-01T00:00:00Z");
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_go_duration("12ms"), Some(Duration::from_millis(12)));
        assert_eq!(parse_go_duration("1h2m3.5s"), Some(Duration::from_millis(3_723_500)));
        assert_eq!(parse_go_duration("0s"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("5 parsecs"), None);
        assert_eq!(parse_go_duration(""), None);
    }
}
