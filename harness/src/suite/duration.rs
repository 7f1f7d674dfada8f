//! Human durations as written in suites and policies: `30s`, `5m`, `1h30m`, `500ms`, `7d`.

use std::time::Duration;

/// Parses a duration such as `90s`, `5m`, `1h30m` or `250ms`.
/// A bare number is rejected: a unit is required so that `timeout: 5` is never ambiguous.
pub fn parse(text: &str) -> Result<Duration, String> {
    let total = parse_span(text)?;
    if total.is_zero() {
        return Err(format!("`{text}` is zero; a timeout must be positive"));
    }
    Ok(total)
}

/// Like [`parse`], but zero (`0s`) is allowed: a span such as a policy's minimum soak time.
pub fn parse_span(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration; expected e.g. 30s, 5m or 1h30m".into());
    }
    let bad =
        |why: String| format!("`{text}` is not a duration: {why}; expected e.g. 30s, 5m or 1h30m");
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad(format!("expected a number at `{rest}`")));
        }
        let value: u64 = rest[..digits]
            .parse()
            .map_err(|_| bad("number too large".into()))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value.saturating_mul(60)),
            "h" => Duration::from_secs(value.saturating_mul(3600)),
            "d" => Duration::from_secs(value.saturating_mul(86_400)),
            "" => return Err(bad(format!("`{value}` has no unit (ms, s, m, h or d)"))),
            other => {
                return Err(bad(format!(
                    "unknown unit `{}` (ms, s, m, h or d)",
                    other.trim()
                )))
            }
        };
        total = total.saturating_add(part);
    }
    Ok(total)
}

/// Formats a duration the way suites write them (used in messages).
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 != 0 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        let s = d.as_secs();
        if s >= 86_400 && s % 86_400 == 0 {
            return format!("{}d", s / 86_400);
        }
        match (s / 3600, (s % 3600) / 60, s % 60) {
            (0, 0, s) => format!("{s}s"),
            (0, m, 0) => format!("{m}m"),
            (0, m, s) => format!("{m}m{s}s"),
            (h, m, s) => format!("{h}h{m}m{s}s"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_units_and_compounds() {
        assert_eq!(parse("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse(" 2m10s ").unwrap(), Duration::from_secs(130));
        assert_eq!(parse("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(parse_span("0s").unwrap(), Duration::ZERO);
        assert_eq!(format(Duration::from_secs(2 * 86_400)), "2d");
    }

    #[test]
    fn rejects_bad_input_with_reason() {
        assert!(parse("5").unwrap_err().contains("no unit"));
        assert!(parse("5 minutes")
            .unwrap_err()
            .contains("unknown unit `minutes`"));
        assert!(parse("5w").unwrap_err().contains("unknown unit `w`"));
        assert!(parse("").unwrap_err().contains("empty"));
        assert!(parse("0s").unwrap_err().contains("zero"));
        assert!(parse("m5").unwrap_err().contains("not a duration"));
        assert!(parse("5 minutes").unwrap_err().contains("not a duration"));
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(secs in 1u64..200_000) {
            let d = Duration::from_secs(secs);
            prop_assert_eq!(parse(&format(d)).unwrap(), d);
        }

        #[test]
        fn never_panics(s in "\\PC{0,12}") {
            let _ = parse(&s);
        }
    }
}
