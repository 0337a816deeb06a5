//! `dlq summary`: the dead letters counted by error code and field, with when each group was
//! first and last seen, its rate, and one shortened example.
//!
//! [`Summary`] is pure: fed dead letters, it keeps one [`GroupStats`] per group (counts, times
//! and the first letter's value, cut to [`EXAMPLE_CHARS`]), never the letters themselves, so a
//! DLQ of any size is summarized in little memory. The rate of a group is the number of
//! intervals between its letters over the time from its first to its last letter (none for a
//! single letter).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde_json::{json, Value};

use super::letter::DeadLetter;
use super::render::{rate, time_ms, value_line};
use crate::cli::dlq::GroupBy;
use crate::cli::dlq::NONE_LABEL;

/// Characters of the example value kept per group.
pub const EXAMPLE_CHARS: usize = 60;

/// A group: the code and field it stands for (`None` inside: the letters have none; the outer
/// `None`: not grouped by it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    /// Error code, when grouped by code.
    pub code: Option<Option<String>>,
    /// Field, when grouped by field.
    pub field: Option<Option<String>>,
}

/// What is known about one group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupStats {
    /// Dead letters in the group.
    pub count: u64,
    /// Earliest DLQ timestamp, ms.
    pub first_ms: Option<i64>,
    /// Latest DLQ timestamp, ms.
    pub last_ms: Option<i64>,
    /// Letters that had been replayed before and failed again.
    pub replayed: u64,
    /// The first letter's position and value, shortened.
    pub example: (i32, i64, String),
}

impl GroupStats {
    /// Letters per second between the first and the last (the intervals between them over
    /// the span); `None` for one letter or no span.
    pub fn rate_per_s(&self) -> Option<f64> {
        let span_ms = self.last_ms? - self.first_ms?;
        (self.count > 1 && span_ms > 0).then(|| (self.count - 1) as f64 * 1000.0 / span_ms as f64)
    }
}

/// The summary being built.
#[derive(Debug, Default)]
pub struct Summary {
    by: GroupBy,
    total: u64,
    by_code: BTreeMap<String, u64>,
    groups: HashMap<GroupKey, GroupStats>,
}

impl Summary {
    /// An empty summary grouped `by`.
    pub fn new(by: GroupBy) -> Summary {
        Summary {
            by,
            ..Summary::default()
        }
    }

    /// Counts one letter.
    pub fn add(&mut self, letter: &DeadLetter<'_>) {
        self.total += 1;
        let code = letter.code();
        *self
            .by_code
            .entry(code.clone().unwrap_or_else(|| NONE_LABEL.to_owned()))
            .or_insert(0) += 1;
        let key = GroupKey {
            code: self.by.code.then_some(code),
            field: self.by.field.then(|| letter.field()),
        };
        let ts = letter.timestamp_ms;
        let replayed = u64::from(letter.replay_count() > 0);
        self.groups
            .entry(key)
            .and_modify(|g| {
                g.count += 1;
                g.first_ms = min_opt(g.first_ms, ts);
                g.last_ms = g.last_ms.max(ts);
                g.replayed += replayed;
            })
            .or_insert_with(|| GroupStats {
                count: 1,
                first_ms: ts,
                last_ms: ts,
                replayed,
                example: (
                    letter.partition,
                    letter.offset,
                    value_line(letter.value, EXAMPLE_CHARS),
                ),
            });
    }

    /// The groups, largest first (ties by code, then field).
    pub fn groups(&self) -> Vec<(&GroupKey, &GroupStats)> {
        let mut groups: Vec<_> = self.groups.iter().collect();
        groups.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(b.0)));
        groups
    }

    /// The summary as one JSON object: `topic`, `total`, `by_code` (code → count, `(none)` for
    /// foreign records) and `groups` (`code` and `field` are null where the letters have none,
    /// and absent when not grouped by them).
    pub fn to_json(&self, topic: &str) -> Value {
        let groups: Vec<Value> = self
            .groups()
            .into_iter()
            .map(|(key, g)| {
                let mut o = serde_json::Map::new();
                if let Some(code) = &key.code {
                    o.insert("code".into(), json!(code));
                }
                if let Some(field) = &key.field {
                    o.insert("field".into(), json!(field));
                }
                o.insert("count".into(), json!(g.count));
                o.insert(
                    "first_seen".into(),
                    json!(g.first_ms.map(|t| time_ms(Some(t)))),
                );
                o.insert(
                    "last_seen".into(),
                    json!(g.last_ms.map(|t| time_ms(Some(t)))),
                );
                o.insert("first_seen_ms".into(), json!(g.first_ms));
                o.insert("last_seen_ms".into(), json!(g.last_ms));
                o.insert("rate_per_s".into(), json!(g.rate_per_s()));
                o.insert("replayed_before".into(), json!(g.replayed));
                o.insert(
                    "example".into(),
                    json!({"partition": g.example.0, "offset": g.example.1, "value": g.example.2}),
                );
                Value::Object(o)
            })
            .collect();
        json!({
            "topic": topic,
            "total": self.total,
            "by_code": self.by_code,
            "groups": groups,
        })
    }

    /// The summary as a table with a closing total line.
    pub fn to_table(&self, topic: &str) -> String {
        let mut header = Vec::new();
        if self.by.code {
            header.push("code");
        }
        if self.by.field {
            header.push("field");
        }
        header.extend(["count", "first seen", "last seen", "rate", "example"]);
        let label = |v: &Option<String>, none: &str| v.clone().unwrap_or_else(|| none.to_owned());
        let rows: Vec<Vec<String>> = self
            .groups()
            .into_iter()
            .map(|(key, g)| {
                let mut row = Vec::new();
                if let Some(code) = &key.code {
                    row.push(label(code, NONE_LABEL));
                }
                if let Some(field) = &key.field {
                    row.push(label(field, "-"));
                }
                row.push(g.count.to_string());
                row.push(time_ms(g.first_ms));
                row.push(time_ms(g.last_ms));
                row.push(g.rate_per_s().map_or_else(|| "-".to_owned(), rate));
                row.push(g.example.2.clone());
                row
            })
            .collect();
        let mut out = table(&header, &rows);
        let _ = writeln!(
            out,
            "{} dead letters in {topic}{}",
            self.total,
            match self.by_code.len() {
                0 => String::new(),
                1 => " (1 code)".to_owned(),
                n => format!(" ({n} codes)"),
            }
        );
        out
    }
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Columns padded to their widest cell; the count column is right-aligned, the last column is
/// not padded.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([header[i].chars().count()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let w = widths[i];
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else if header[i] == "count" {
                let _ = write!(s, "{cell:>w$}  ");
            } else {
                let _ = write!(s, "{cell:<w$}  ");
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::letter::tests::letter;
    use super::*;
    use crate::cli::dlq::parse_group_by;
    use crate::transform::headers::{HEADER_ERROR_CODE, HEADER_ERROR_FIELD};

    fn with_code<'a>(
        offset: i64,
        code: &'a [u8],
        field: Option<&'a [u8]>,
        value: &'a [u8],
    ) -> DeadLetter<'a> {
        let mut l = letter(offset, &[]);
        l.value = Some(value);
        l.headers.retain(|(k, _)| *k != HEADER_ERROR_FIELD);
        for h in &mut l.headers {
            if h.0 == HEADER_ERROR_CODE {
                h.1 = Some(code);
            }
        }
        if let Some(f) = field {
            l.headers.push((HEADER_ERROR_FIELD, Some(f)));
        }
        l
    }

    fn sample() -> Vec<DeadLetter<'static>> {
        let mut letters = Vec::new();
        for i in 0..3 {
            letters.push(with_code(
                i,
                b"missing_field",
                Some(b"device_type"),
                br#"{"user_id": "u", "note": "a rather long value that will be cut somewhere"}"#,
            ));
        }
        letters.push(with_code(3, b"missing_field", Some(b"ip"), b"{}"));
        letters.push(with_code(4, b"invalid_json", None, b"not json\n"));
        letters.push(DeadLetter {
            partition: 1,
            offset: 0,
            timestamp_ms: None,
            key: None,
            value: None,
            headers: vec![],
        });
        letters
    }

    #[test]
    fn by_group_by_parses() {
        assert_eq!(parse_group_by("code,field"), Ok(GroupBy::default()));
        assert_eq!(
            parse_group_by("field"),
            Ok(GroupBy {
                code: false,
                field: true
            })
        );
        assert_eq!(parse_group_by(" field , code"), Ok(GroupBy::default()));
        assert!(parse_group_by("code,code").is_err());
        assert!(parse_group_by("partition").is_err());
        assert!(parse_group_by("").is_err());
    }

    #[test]
    fn counts_by_code_and_field() {
        let mut s = Summary::new(GroupBy::default());
        for l in &sample() {
            s.add(l);
        }
        let j = s.to_json("dlq");
        assert_eq!(j["total"], 6);
        assert_eq!(
            j["by_code"],
            json!({"(none)": 1, "invalid_json": 1, "missing_field": 4})
        );
        let groups = j["groups"].as_array().unwrap();
        assert_eq!(groups.len(), 4);
        assert_eq!(groups[0]["code"], "missing_field");
        assert_eq!(groups[0]["field"], "device_type");
        assert_eq!(groups[0]["count"], 3);
        assert_eq!(groups[0]["first_seen_ms"], 1_720_589_700_000i64);
        assert_eq!(groups[0]["last_seen_ms"], 1_720_589_700_002i64);
        assert_eq!(groups[0]["rate_per_s"], 1000.0);
        assert_eq!(groups[0]["example"]["offset"], 0);
        let example = groups[0]["example"]["value"].as_str().unwrap();
        assert_eq!(example.chars().count(), EXAMPLE_CHARS + 1, "{example}");
        assert!(example.ends_with('…'));
        // Single letters: no rate; absent field and foreign code are null.
        let foreign = groups.iter().find(|g| g["code"].is_null()).unwrap();
        assert_eq!(foreign["field"], Value::Null);
        assert_eq!(foreign["rate_per_s"], Value::Null);
        assert_eq!(foreign["first_seen"], Value::Null);
        assert_eq!(foreign["example"]["value"], "(null)");
        let invalid = groups.iter().find(|g| g["code"] == "invalid_json").unwrap();
        assert_eq!(invalid["field"], Value::Null);
        assert_eq!(invalid["example"]["value"], "not json\\n");
    }

    #[test]
    fn groups_by_code_only_merge_fields() {
        let mut s = Summary::new(parse_group_by("code").unwrap());
        for l in &sample() {
            s.add(l);
        }
        let j = s.to_json("dlq");
        let groups = j["groups"].as_array().unwrap();
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0]["count"], 4);
        assert!(groups[0].get("field").is_none(), "{}", groups[0]);
    }

    #[test]
    fn table_lists_groups_largest_first() {
        let mut s = Summary::new(GroupBy::default());
        for l in &sample() {
            s.add(l);
        }
        let table = s.to_table("dlq");
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 6, "{table}");
        assert!(lines[0].starts_with("code "), "{table}");
        assert!(
            lines[1].starts_with("missing_field  device_type      3  2024-07-10T05:35:00Z"),
            "{table}"
        );
        assert!(lines[1].contains("1000.0/s"), "{table}");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("(none) ") && l.contains("(null)")),
            "{table}"
        );
        assert_eq!(lines[5], "6 dead letters in dlq (3 codes)");
        let empty = Summary::new(GroupBy::default()).to_table("dlq");
        assert_eq!(empty.lines().last(), Some("0 dead letters in dlq"));
    }
}
