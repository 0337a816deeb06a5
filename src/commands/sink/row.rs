//! A window's row in `insight_windows`, derived from its merged record.
//!
//! Maps come from the record's own JSON (so `dead_lettered_by_code` and `ip_classes` carry
//! the names the record uses, non-zero entries only), the breakdowns are their full `counts`
//! (`top` and `distinct` are derived and left to SQL). Text from the input (device types,
//! app versions, instance ids) may hold characters PostgreSQL's `text` and `jsonb` refuse (NUL):
//! those become U+FFFD, so a hostile value can never make the transaction fail.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::hll::to_postgresql_hll;
use super::state::WindowState;
use crate::insights::InsightRecord;

/// The columns of one `insight_windows` row.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowRow {
    /// Window start, Unix seconds.
    pub start: u64,
    /// Window end.
    pub end: u64,
    /// `received`, `valid`, `dead_lettered`, `missing_device_type`, `late_events`.
    pub totals: [i64; 5],
    /// `dead_lettered_by_code`, `by_device_type`, `by_app_version`, `by_locale`, `ip_classes`.
    pub maps: [Value; 5],
    /// `distinct_users`, `distinct_devices`.
    pub distinct: [i64; 2],
    /// `users_hll`, `devices_hll` in the extension's format.
    pub hll: [Vec<u8>; 2],
    /// `users_sketch`, `devices_sketch` in the pipeline's format.
    pub sketches: [Vec<u8>; 2],
    /// `lag_count`, `lag_max_ms`.
    pub lag: [i64; 2],
    /// `lag_p50_ms`, `lag_p95_ms`, `lag_p99_ms`.
    pub lag_quantiles: [Option<i64>; 3],
    /// Instance ids, sorted.
    pub instances: Vec<String>,
    /// Input partitions, sorted.
    pub partitions: Vec<i32>,
    /// Records merged.
    pub records: i64,
    /// Some part was closed early.
    pub partial: bool,
    /// The last delta of every instance has arrived, once records say so.
    pub final_: Option<bool>,
    /// Latest publication, Unix milliseconds.
    pub published_at_ms: u64,
}

/// A count as a bigint (counts are bounded on the way in, so this never saturates in practice).
fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Whether the window is final: every instance that counted in it has published its final
/// delta (the merged record's `final`, see [`crate::insights::record`]).
pub fn final_flag(record: &InsightRecord) -> Option<bool> {
    Some(record.is_final)
}

impl WindowRow {
    /// The row of a window's state.
    pub fn of(state: &WindowState) -> WindowRow {
        let r = &state.record;
        // An InsightRecord always serializes (integers and string keys only).
        let json = serde_json::to_value(r).unwrap_or(Value::Null);
        let map = |path: &[&str]| {
            let v = path.iter().fold(&json, |v, k| &v[*k]);
            clean(v.clone())
        };
        WindowRow {
            start: r.window_start,
            end: r.window_end,
            totals: [
                r.received,
                r.valid,
                r.dead_lettered,
                r.missing_device_type,
                r.late_events,
            ]
            .map(big),
            maps: [
                map(&["dead_lettered_by_code"]),
                map(&["by_device_type", "counts"]),
                map(&["by_app_version", "counts"]),
                map(&["by_locale", "counts"]),
                map(&["ip_classes"]),
            ],
            distinct: [r.distinct_users, r.distinct_devices].map(big),
            hll: [&r.users_sketch, &r.devices_sketch].map(to_postgresql_hll),
            sketches: [&r.users_sketch, &r.devices_sketch].map(|s| s.to_bytes()),
            lag: [r.lag_ms.count, r.lag_ms.max].map(big),
            lag_quantiles: [r.lag_ms.p50, r.lag_ms.p95, r.lag_ms.p99].map(|q| q.map(big)),
            instances: r
                .instance
                .split(',')
                .filter(|i| !i.is_empty())
                .map(clean_text)
                .collect(),
            partitions: r.partitions.clone(),
            records: state.records() as i64,
            partial: r.partial,
            final_: final_flag(r),
            published_at_ms: r.published_at_ms,
        }
    }

    /// `start` as a timestamp.
    pub fn start_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.start)
    }

    /// `end` as a timestamp.
    pub fn end_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.end)
    }

    /// `published_at_ms` as a timestamp.
    pub fn published_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.published_at_ms)
    }
}

/// Text PostgreSQL accepts: NUL becomes U+FFFD.
pub fn clean_text(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

/// A JSON value PostgreSQL's jsonb accepts: NUL in keys and strings becomes U+FFFD.
fn clean(v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(clean_text(&s)),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (clean_text(&k), clean(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(clean).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../insights/record/example.json");

    #[test]
    fn row_of_the_example_record() {
        let record = InsightRecord::from_json(EXAMPLE.as_bytes()).unwrap();
        let row = WindowRow::of(&WindowState::new(record));
        assert_eq!((row.start, row.end), (1_720_589_710, 1_720_589_720));
        assert_eq!(row.totals, [21, 19, 2, 2, 0]);
        assert_eq!(row.maps[0], serde_json::json!({"missing_field": 2}));
        assert_eq!(row.maps[1], serde_json::json!({"android": 12, "ios": 7}));
        assert_eq!(row.maps[3]["NC"], 5);
        assert_eq!(row.maps[4], serde_json::json!({"public": 18, "shared": 1}));
        assert_eq!(row.distinct, [14, 14]);
        assert_eq!(row.lag, [19, 4024]);
        assert_eq!(row.lag_quantiles, [Some(855), Some(4024), Some(4024)]);
        assert_eq!(row.instances, ["pipeline-a"]);
        assert_eq!(
            (row.records, row.partial, row.final_),
            (1, false, Some(true))
        );
        assert_eq!(row.hll[0][0], 0x13, "14 users: sparse");
    }

    #[test]
    fn nul_characters_never_reach_postgresql() {
        let mut v: Value = serde_json::from_str(EXAMPLE).unwrap();
        v["instance"] = "a\u{0}b".into();
        v["by_device_type"]["counts"] = serde_json::json!({"and\u{0}roid": 12, "ios": 7});
        let record = InsightRecord::from_json(&serde_json::to_vec(&v).unwrap()).unwrap();
        let row = WindowRow::of(&WindowState::new(record));
        assert_eq!(row.instances, ["a\u{FFFD}b"]);
        assert_eq!(row.maps[1]["and\u{FFFD}roid"], 12);
        assert!(!serde_json::to_string(&row.maps)
            .unwrap()
            .contains("\\u0000"));
    }
}
