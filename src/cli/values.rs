//! Value parsers of flags that clap has no parser for: `key=value` pairs and durations.

use std::time::Duration;

use jiff::SignedDuration;

/// Parses `key=value` (the value may itself contain `=`).
pub fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// Parses a duration: a number and a unit (`30s`, `500ms`, `2m`, `1h`, `1.5s`), several of
/// them (`1m30s`, `1h 30m`), or a bare number of seconds (`7`, `0.5`).
///
/// Jiff's "friendly" format (`jiff::SignedDuration`'s parser), so long unit names (`2 hours`,
/// `90 secs`), `us` and `ns`, and ISO 8601 (`PT30S`) are accepted too. Units stop at hours: a
/// day is not always 24 hours, so `5d` is an error (`dlq --since 7d` reads days itself).
/// Negative durations (`-5s`, `5s ago`) are errors.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let bare_seconds = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let parsed = if bare_seconds {
        format!("{s}s").parse()
    } else {
        s.parse()
    };
    let signed: SignedDuration = parsed.map_err(|_| {
        format!("expected a duration such as 30s, 500ms, 2m, 1h or 1m30s (units up to hours), got {s:?}")
    })?;
    Duration::try_from(signed).map_err(|_| format!("expected a duration of 0 or more, got {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Result<Duration, String> {
        Ok(Duration::from_millis(n))
    }

    #[test]
    fn the_forms_of_the_flags_and_their_defaults() {
        assert_eq!(parse_duration("30s"), ms(30_000));
        assert_eq!(parse_duration("500ms"), ms(500));
        assert_eq!(parse_duration("2m"), ms(120_000));
        assert_eq!(parse_duration("1h"), ms(3_600_000));
        assert_eq!(parse_duration("0s"), ms(0));
        assert_eq!(parse_duration(" 10s "), ms(10_000));
    }

    #[test]
    fn a_bare_number_is_seconds() {
        assert_eq!(parse_duration("7"), ms(7_000));
        assert_eq!(parse_duration("0"), ms(0));
        assert_eq!(parse_duration("0.5"), ms(500));
        assert_eq!(parse_duration("0.001"), ms(1));
    }

    /// Decimals on any unit up to hours, exact to the nanosecond.
    #[test]
    fn decimals() {
        assert_eq!(parse_duration("1.5s"), ms(1_500));
        assert_eq!(parse_duration("0.5m"), ms(30_000));
        assert_eq!(parse_duration("1.5h"), ms(5_400_000));
        assert_eq!(parse_duration("1.1h"), ms(3_960_000));
        assert_eq!(parse_duration("10.0s"), ms(10_000));
        assert_eq!(parse_duration("2.5ms"), Ok(Duration::from_micros(2_500)));
        assert_eq!(
            parse_duration("0.1s"),
            Ok(Duration::from_nanos(100_000_000))
        );
    }

    /// What jiff's format adds to the number-and-unit forms above.
    #[test]
    fn compound_and_long_forms() {
        assert_eq!(parse_duration("1m30s"), ms(90_000));
        assert_eq!(parse_duration("1h 30m"), ms(5_400_000));
        assert_eq!(parse_duration("30 s"), ms(30_000));
        assert_eq!(parse_duration("2 hours"), ms(7_200_000));
        assert_eq!(parse_duration("90 secs"), ms(90_000));
        assert_eq!(parse_duration("1 hour, 30 minutes"), ms(5_400_000));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("5ns"), Ok(Duration::from_nanos(5)));
        assert_eq!(parse_duration("PT30S"), ms(30_000));
    }

    #[test]
    fn rejected_forms_say_what_is_expected() {
        let expected =
            "expected a duration such as 30s, 500ms, 2m, 1h or 1m30s (units up to hours)";
        // Days and longer, unknown or upper-case units, exponents, no number, a number without
        // a digit on one side of the point.
        for s in [
            "5d", "1w", "1y", "30S", "1e3s", "soon", "", "s", ".5s", "1.s", "1.2.3",
        ] {
            let error = parse_duration(s).unwrap_err();
            assert_eq!(error, format!("{expected}, got {s:?}"));
        }
        for s in ["-5s", "5s ago"] {
            let error = parse_duration(s).unwrap_err();
            assert_eq!(
                error,
                format!("expected a duration of 0 or more, got {s:?}")
            );
        }
    }
}
