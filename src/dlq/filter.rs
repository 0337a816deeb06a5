//! Which dead letters a `dlq` command looks at: `--code`, `--field`, `--since`, `--until`.
//!
//! Codes and fields are checked at parse time against the pipeline's own lists (a typo in
//! `dlq replay --code` would otherwise replay nothing, silently); `none` selects the records
//! without one (foreign records have no code; many codes name no field). Times are a duration
//! back from now (`90s`, `15m`, `2h`, `7d`) or an RFC 3339 time (`2024-07-10T05:34:57Z`,
//! `2024-07-10T07:34:57+02:00`, or a date, `2024-07-10`, meaning its midnight UTC), compared
//! with the DLQ record's timestamp, i.e. when the record was dead-lettered.

use std::time::Duration;

use super::letter::{DeadLetter, NONE_LABEL};
use crate::config::parse_duration;
use crate::transform::{ErrorCode, Field};

/// Selection flags shared by `summary`, `show` and `replay`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FilterArgs {
    /// Only dead letters with this error code (repeatable or comma-separated; `none`: records
    /// without the pipeline's error headers).
    #[arg(long, value_name = "CODE", value_delimiter = ',', value_parser = parse_code)]
    pub code: Vec<String>,

    /// Only dead letters blaming this field (repeatable or comma-separated; `none`: no field).
    #[arg(long, value_name = "FIELD", value_delimiter = ',', value_parser = parse_field)]
    pub field: Vec<String>,

    /// Only dead letters written at or after this time: a duration back from now (15m, 2h, 7d)
    /// or an RFC 3339 time or date (2024-07-10T05:34:57Z, 2024-07-10).
    #[arg(long, value_name = "DURATION|TIME", value_parser = parse_time_bound)]
    pub since: Option<TimeBound>,

    /// Only dead letters written before this time (same forms as --since).
    #[arg(long, value_name = "DURATION|TIME", value_parser = parse_time_bound)]
    pub until: Option<TimeBound>,
}

/// A point in time as given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBound {
    /// That long before now.
    Ago(Duration),
    /// That time, ms since the epoch.
    At(i64),
}

impl TimeBound {
    /// The time in ms since the epoch, with `now_ms` for relative bounds.
    pub fn resolve(self, now_ms: i64) -> i64 {
        match self {
            TimeBound::Ago(d) => now_ms.saturating_sub(d.as_millis().min(i64::MAX as u128) as i64),
            TimeBound::At(ms) => ms,
        }
    }
}

/// The selection, resolved against one "now".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Code labels to keep (empty: all); [`NONE_LABEL`] for no code.
    pub codes: Vec<String>,
    /// Field labels to keep (empty: all); [`NONE_LABEL`] for no field.
    pub fields: Vec<String>,
    /// Earliest DLQ timestamp kept, ms.
    pub since_ms: Option<i64>,
    /// DLQ timestamps at or after this are dropped, ms.
    pub until_ms: Option<i64>,
}

impl Filter {
    /// Resolves the flags; relative times count back from `now_ms`.
    pub fn new(args: &FilterArgs, now_ms: i64) -> Filter {
        Filter {
            codes: args.code.clone(),
            fields: args.field.clone(),
            since_ms: args.since.map(|t| t.resolve(now_ms)),
            until_ms: args.until.map(|t| t.resolve(now_ms)),
        }
    }

    /// Whether `letter` is selected. With a time bound, a record without a timestamp is not.
    pub fn matches(&self, letter: &DeadLetter<'_>) -> bool {
        let label = |v: Option<String>| v.unwrap_or_else(|| NONE_LABEL.to_owned());
        if !self.codes.is_empty() && !self.codes.contains(&letter.code_label()) {
            return false;
        }
        if !self.fields.is_empty() && !self.fields.contains(&label(letter.field())) {
            return false;
        }
        if self.since_ms.is_none() && self.until_ms.is_none() {
            return true;
        }
        let Some(ts) = letter.timestamp_ms else {
            return false;
        };
        self.since_ms.is_none_or(|s| ts >= s) && self.until_ms.is_none_or(|u| ts < u)
    }

    /// The flags that make up this selection, for messages and the replay ledger: e.g.
    /// `--code missing_field --since 2024-07-10T05:00:00Z`, or `all` when nothing is filtered.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let label = |l: &String| {
            if l == NONE_LABEL {
                "none".to_owned()
            } else {
                l.clone()
            }
        };
        if !self.codes.is_empty() {
            let codes: Vec<String> = self.codes.iter().map(label).collect();
            parts.push(format!("--code {}", codes.join(",")));
        }
        if !self.fields.is_empty() {
            let fields: Vec<String> = self.fields.iter().map(label).collect();
            parts.push(format!("--field {}", fields.join(",")));
        }
        for (flag, ms) in [("--since", self.since_ms), ("--until", self.until_ms)] {
            if let Some(ms) = ms {
                parts.push(format!("{flag} {}", super::render::time_ms(Some(ms))));
            }
        }
        if parts.is_empty() {
            "all".to_owned()
        } else {
            parts.join(" ")
        }
    }
}

/// `--code`: one of the pipeline's error codes, or `none`.
pub fn parse_code(s: &str) -> Result<String, String> {
    let known: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    parse_label(s, &known, "error code")
}

/// `--field`: one of the schema's fields, or `none`.
pub fn parse_field(s: &str) -> Result<String, String> {
    let known: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
    parse_label(s, &known, "field")
}

/// `s` if it is one of `known`; [`NONE_LABEL`] for `none`.
fn parse_label(s: &str, known: &[&str], what: &str) -> Result<String, String> {
    let s = s.trim();
    if s == "none" || s == NONE_LABEL {
        Ok(NONE_LABEL.to_owned())
    } else if known.contains(&s) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "unknown {what} {s:?}; expected none or one of {}",
            known.join(", ")
        ))
    }
}

/// `--since`/`--until`: a duration back from now, or an RFC 3339 time or date.
pub fn parse_time_bound(s: &str) -> Result<TimeBound, String> {
    let s = s.trim();
    if let Some(days) = s.strip_suffix('d') {
        if let Ok(n) = days.parse::<u64>() {
            return Ok(TimeBound::Ago(Duration::from_secs(
                n.saturating_mul(86_400),
            )));
        }
    }
    if s.contains('-') {
        return parse_rfc3339_ms(s).map(TimeBound::At).ok_or_else(|| {
            format!("expected an RFC 3339 time such as 2024-07-10T05:34:57Z or a date such as 2024-07-10, got {s:?}")
        });
    }
    parse_duration(s)
        .map(TimeBound::Ago)
        .map_err(|_| format!("expected a duration back from now (15m, 2h, 7d) or an RFC 3339 time (2024-07-10T05:34:57Z), got {s:?}"))
}

/// Parses `YYYY-MM-DD` or `YYYY-MM-DDThh:mm:ss[.fff](Z|±hh:mm)` (`t` and a space also
/// separate date and time) into ms since the epoch.
fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let num = |t: &str| -> Option<i64> {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    let (date, time) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut d = date.splitn(3, '-');
    let (y, m, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    if date.len() != 10 || !(1..=12).contains(&m) || day < 1 || day > days_in_month(y, m) {
        return None;
    }
    let mut ms = days_from_civil(y, m, day) * 86_400_000;
    let Some(time) = time else {
        return Some(ms);
    };
    let (clock, offset_min) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else {
        let at = time.rfind(['+', '-'])?;
        let (c, off) = time.split_at(at);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':')?;
        if oh.len() != 2 || om.len() != 2 {
            return None;
        }
        let (oh, om) = (num(oh)?, num(om)?);
        if oh > 23 || om > 59 {
            return None;
        }
        (c, sign * (oh * 60 + om))
    };
    let (hms, frac) = match clock.split_once('.') {
        Some((hms, frac)) => (hms, Some(frac)),
        None => (clock, None),
    };
    let mut t = hms.split(':');
    let (h, mi, sec) = (num(t.next()?)?, num(t.next()?)?, num(t.next()?)?);
    if t.next().is_some() || hms.len() != 8 || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    ms += (h * 3600 + mi * 60 + sec) * 1000 - offset_min * 60_000;
    if let Some(frac) = frac {
        num(frac)?;
        let millis: String = frac.chars().chain("000".chars()).take(3).collect();
        ms += millis.parse::<i64>().ok()?;
    }
    Some(ms)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::super::letter::tests::letter;
    use super::*;

    #[test]
    fn codes_and_fields_are_checked() {
        assert_eq!(parse_code("missing_field").unwrap(), "missing_field");
        assert_eq!(parse_code("none").unwrap(), NONE_LABEL);
        let err = parse_code("missing_fields").unwrap_err();
        assert!(err.contains("invalid_json"), "{err}");
        assert_eq!(parse_field("device_type").unwrap(), "device_type");
        assert_eq!(parse_field("none").unwrap(), NONE_LABEL);
        assert!(parse_field("colour").is_err());
    }

    #[test]
    fn time_bounds_parse() {
        let at = |s| match parse_time_bound(s) {
            Ok(TimeBound::At(ms)) => ms,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(at("2024-07-10T05:34:57Z"), 1_720_589_697_000);
        assert_eq!(at("2024-07-10t05:34:57.25z"), 1_720_589_697_250);
        assert_eq!(at("2024-07-10 07:34:57+02:00"), 1_720_589_697_000);
        assert_eq!(at("2024-07-10T00:04:57-05:30"), 1_720_589_697_000);
        assert_eq!(at("1970-01-01"), 0);
        assert_eq!(at("2024-02-29"), 1_709_164_800_000);
        assert_eq!(
            parse_time_bound("15m"),
            Ok(TimeBound::Ago(Duration::from_secs(900)))
        );
        assert_eq!(
            parse_time_bound("7d"),
            Ok(TimeBound::Ago(Duration::from_secs(7 * 86_400)))
        );
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-7-10",
            "2024-07-10T25:00:00Z",
            "2024-07-10T05:34Z",
            "2024-07-10T05:34:57",
            "2024-07-10T05:34:57+2",
            "yesterday",
            "-5m",
        ] {
            assert!(parse_time_bound(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn relative_bounds_count_back_from_now() {
        assert_eq!(
            TimeBound::Ago(Duration::from_secs(60)).resolve(100_000),
            40_000
        );
        assert_eq!(TimeBound::At(5).resolve(100_000), 5);
    }

    #[test]
    fn filter_matches_codes_fields_and_times() {
        let l = letter(0, &[]); // missing_field, device_type, dead-lettered at 1_720_589_700_000
        let f = |codes: &[&str], fields: &[&str], since, until| Filter {
            codes: codes.iter().map(|s| s.to_string()).collect(),
            fields: fields.iter().map(|s| s.to_string()).collect(),
            since_ms: since,
            until_ms: until,
        };
        assert!(f(&[], &[], None, None).matches(&l));
        assert!(f(&["invalid_json", "missing_field"], &[], None, None).matches(&l));
        assert!(!f(&["invalid_json"], &[], None, None).matches(&l));
        assert!(f(&[], &["device_type"], None, None).matches(&l));
        assert!(!f(&[], &[NONE_LABEL], None, None).matches(&l));
        let ts = 1_720_589_700_000;
        assert!(f(&[], &[], Some(ts), Some(ts + 1)).matches(&l));
        assert!(!f(&[], &[], Some(ts + 1), None).matches(&l));
        assert!(
            !f(&[], &[], None, Some(ts)).matches(&l),
            "until is exclusive"
        );
        let foreign = DeadLetter {
            headers: vec![],
            timestamp_ms: None,
            ..l.clone()
        };
        assert!(f(&[NONE_LABEL], &[NONE_LABEL], None, None).matches(&foreign));
        assert!(!f(&["missing_field"], &[], None, None).matches(&foreign));
        assert!(
            !f(&[], &[], Some(0), None).matches(&foreign),
            "no timestamp, no match"
        );
    }

    #[test]
    fn describe_names_the_flags() {
        assert_eq!(Filter::default().describe(), "all");
        let f = Filter {
            codes: vec!["missing_field".into(), NONE_LABEL.into()],
            fields: vec![],
            since_ms: Some(1_720_589_697_000),
            until_ms: None,
        };
        assert_eq!(
            f.describe(),
            "--code missing_field,none --since 2024-07-10T05:34:57Z"
        );
    }
}
