//! UTC wall-clock dates without a date crate: run ids, report timestamps, policy expiry dates.

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// (year, month, day) of a day count since 1970-01-01 (H. Hinnant's civil_from_days).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Day count since 1970-01-01 of a civil date (H. Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYYMMDD-HHMMSS` (run ids) and RFC 3339 `YYYY-MM-DDTHH:MM:SSZ` of a time.
pub fn stamps(secs: i64) -> (String, String) {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    let (hh, mm, ss) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    (
        format!("{y:04}{m:02}{d:02}-{hh:02}{mm:02}{ss:02}"),
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z"),
    )
}

/// RFC 3339 UTC timestamp of a time.
pub fn rfc3339(secs: i64) -> String {
    stamps(secs).1
}

fn number(s: &str, len: usize) -> Option<i64> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// A calendar date `YYYY-MM-DD` as seconds at its midnight UTC.
pub fn parse_date(s: &str) -> Result<i64, String> {
    let bad = || format!("`{s}` is not a date; expected YYYY-MM-DD, e.g. 2027-01-31");
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts[..] else {
        return Err(bad());
    };
    let (y, m, d) = (
        number(y, 4).ok_or_else(bad)?,
        number(m, 2).ok_or_else(bad)?,
        number(d, 2).ok_or_else(bad)?,
    );
    let days = days_from_civil(y, m, d);
    if !(1..=12).contains(&m) || civil_from_days(days) != (y, m, d) {
        return Err(format!("`{s}` is not a calendar date"));
    }
    Ok(days * 86_400)
}

/// `YYYY-MM-DDTHH:MM:SSZ` (what Aviary writes), or a plain date, as seconds.
pub fn parse_timestamp(s: &str) -> Result<i64, String> {
    let Some((date, time)) = s.split_once('T') else {
        return parse_date(s);
    };
    let bad = || format!("`{s}` is not a UTC timestamp; expected YYYY-MM-DDTHH:MM:SSZ");
    let time = time.strip_suffix('Z').ok_or_else(bad)?;
    let parts: Vec<&str> = time.split(':').collect();
    let [h, m, sec] = parts[..] else {
        return Err(bad());
    };
    let (h, m, sec) = (
        number(h, 2).ok_or_else(bad)?,
        number(m, 2).ok_or_else(bad)?,
        number(sec, 2).ok_or_else(bad)?,
    );
    if h > 23 || m > 59 || sec > 60 {
        return Err(bad());
    }
    Ok(parse_date(date)? + h * 3600 + m * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(stamps(1_796_169_600).0, "20261202-000000");
        assert_eq!(parse_date("2026-12-02").unwrap(), 1_796_169_600);
        assert_eq!(
            parse_timestamp("2026-12-02T01:02:03Z").unwrap(),
            1_796_173_323
        );
        assert_eq!(parse_date("2024-02-29").unwrap() % 86_400, 0);
    }

    #[test]
    fn rejects_what_is_not_a_date() {
        for bad in [
            "2026-13-01",
            "2026-02-30",
            "2026-2-01",
            "26-01-01",
            "x",
            "2026-01-01-",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
        for bad in [
            "2026-12-02T25:00:00Z",
            "2026-12-02T01:02:03",
            "2026-12-02T1:2:3Z",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn timestamps_round_trip(secs in 0i64..8_000_000_000) {
            prop_assert_eq!(parse_timestamp(&rfc3339(secs)).unwrap(), secs);
        }
    }
}
