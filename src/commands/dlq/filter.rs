//! Which dead letters a `dlq` command looks at: `--code`, `--field`, `--since`, `--until`.
//!
//! Codes and fields are checked at parse time against the pipeline's own lists (a typo in
//! `dlq replay --code` would otherwise replay nothing, silently); `none` selects the records
//! without one (foreign records have no code; many codes name no field). Times are a duration
//! back from now (`90s`, `15m`, `2h`, `7d`) or an RFC 3339 time (`2024-07-10T05:34:57Z`,
//! `2024-07-10T07:34:57+02:00`, or a date, `2024-07-10`, meaning its midnight UTC), compared
//! with the DLQ record's timestamp, i.e. when the record was dead-lettered.

use super::letter::DeadLetter;
use crate::cli::dlq::FilterArgs;
use crate::cli::dlq::NONE_LABEL;

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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::letter::tests::letter;
    use super::*;
    use crate::cli::dlq::{TimeBound, NONE_LABEL};

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
