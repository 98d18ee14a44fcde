//! UTC timestamps as RFC 3339 text and back, without a calendar crate: the store prints them,
//! `--since` reads them, alert payloads carry them.

/// Days from 1970-01-01 to the civil date (proleptic Gregorian; H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `2026-11-23T12:03:22.123Z` for milliseconds since the Unix epoch.
pub fn rfc3339_ms(unix_ms: u64) -> String {
    let secs = (unix_ms / 1000) as i64;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        unix_ms % 1000
    )
}

/// A moment as the command line takes it: Unix seconds (`1764000000`) or RFC 3339
/// (`2026-11-23T12:03:22Z`, `2026-11-23T14:03:22.5+02:00`, or a bare date `2026-11-23`).
/// Returns milliseconds since the Unix epoch.
pub fn parse_time(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .ok()
            .and_then(|secs| secs.checked_mul(1000))
            .ok_or_else(|| format!("`{s}` is too large for Unix seconds"));
    }
    let bad = || format!("`{s}` is neither Unix seconds nor RFC 3339 (2026-11-23T12:03:22Z)");
    let num = |t: &str| -> Result<u32, String> {
        if t.is_empty() || !t.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        t.parse::<u32>().map_err(|_| bad())
    };
    let (date, rest) = match s.find(['T', 't', ' ']) {
        Some(at) => (&s[..at], &s[at + 1..]),
        None => (s, ""),
    };
    let mut parts = date.split('-');
    let (Some(y), Some(mo), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if y.len() != 4 {
        return Err(bad());
    }
    let (y, mo, d) = (num(y)?, num(mo)?, num(d)?);
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(i64::from(y), mo) {
        return Err(format!("`{s}`: no such date"));
    }
    let mut secs = days_from_civil(i64::from(y), mo, d) * 86_400;
    let mut millis = 0i64;
    if !rest.is_empty() {
        // The offset starts at `Z`, or at a sign after the time of day.
        let (clock, offset) = match rest.find(['Z', 'z', '+', '-']) {
            Some(at) => (&rest[..at], &rest[at..]),
            None => return Err(format!("`{s}`: a time of day needs `Z` or an offset")),
        };
        let (hms, frac) = match clock.split_once('.') {
            Some((hms, frac)) => (hms, Some(frac)),
            None => (clock, None),
        };
        let mut hms = hms.split(':');
        let (Some(h), Some(mi), Some(sec), None) = (hms.next(), hms.next(), hms.next(), hms.next())
        else {
            return Err(bad());
        };
        let (h, mi, sec) = (num(h)?, num(mi)?, num(sec)?);
        if h > 23 || mi > 59 || sec > 60 {
            return Err(format!("`{s}`: no such time of day"));
        }
        secs += i64::from(h * 3600 + mi * 60 + sec);
        if let Some(frac) = frac {
            num(frac)?;
            let ms: String = frac.chars().chain("000".chars()).take(3).collect();
            millis = i64::from(num(&ms)?);
        }
        secs -= match offset {
            "Z" | "z" => 0,
            o => {
                let sign = if o.starts_with('-') { -1 } else { 1 };
                let (oh, om) = o[1..].split_once(':').ok_or_else(bad)?;
                let (oh, om) = (num(oh)?, num(om)?);
                if oh > 23 || om > 59 {
                    return Err(format!("`{s}`: no such offset"));
                }
                sign * i64::from(oh * 3600 + om * 60)
            }
        };
    }
    let ms = secs * 1000 + millis;
    u64::try_from(ms).map_err(|_| format!("`{s}` is before 1970"))
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        // 2024-02-29 (a leap day) 23:59:59.999 UTC.
        assert_eq!(rfc3339_ms(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(rfc3339_ms(1_764_000_000_000), "2025-11-24T16:00:00.000Z");
    }

    #[test]
    fn parses_what_it_formats_and_unix_seconds() {
        for ms in [0, 1_709_251_199_999, 1_764_000_000_123, 4_102_444_800_000] {
            assert_eq!(parse_time(&rfc3339_ms(ms)), Ok(ms));
        }
        assert_eq!(parse_time("1764000000"), Ok(1_764_000_000_000));
        assert_eq!(parse_time("2025-11-24"), Ok(1_763_942_400_000));
        assert_eq!(parse_time("2025-11-24T18:00:00+02:00"), Ok(1_764_000_000_000));
        assert_eq!(parse_time("2025-11-24T15:30:00-00:30"), Ok(1_764_000_000_000));
        assert_eq!(parse_time("2025-11-24T16:00:00.5Z"), Ok(1_764_000_000_500));
    }

    #[test]
    fn refuses_what_is_not_a_time_and_says_why() {
        for bad in ["", "yesterday", "2025-13-01", "2025-02-30", "2025-11-24T16:00:00", "25-1-1"] {
            let e = parse_time(bad).expect_err(bad);
            assert!(e.contains(bad), "{bad}: {e}");
        }
        assert!(parse_time("1969-12-31T23:59:59Z").expect_err("before").contains("before 1970"));
        assert!(parse_time("99999999999999999999").is_err());
    }
}
