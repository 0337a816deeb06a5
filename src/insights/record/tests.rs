//! Tests of the insight record: the JSON shape, round trips, validation, and merging records of
//! several instances back into the window of the whole.

use proptest::prelude::*;

use super::*;
use crate::insights::window::{Observation, ObservationKind, WindowAggregator, WindowConfig};

fn observation(t: u64, user: &'static str, device_type: &'static str) -> Observation<'static> {
    Observation {
        event_time: t,
        lag_ms: 1_500,
        kind: ObservationKind::Valid {
            user_id: user,
            device_id: user,
            device_type,
            app_version: "2.3.0",
            locale: "CA",
            ip_class: IpClass::Public,
            device_type_filled: false,
        },
    }
}

fn sample_stats() -> WindowStats {
    let mut agg = WindowAggregator::new(WindowConfig::default());
    for (i, user) in ["u1", "u2", "u3", "u1"].into_iter().enumerate() {
        agg.observe(&observation(1_720_589_690 + i as u64, user, "ios"));
    }
    agg.observe(&observation(1_720_589_695, "u4", "android"));
    agg.observe(&Observation {
        event_time: 1_720_589_699,
        lag_ms: 0,
        kind: ObservationKind::Invalid {
            code: ErrorCode::MissingField,
            field: Some("device_type"),
        },
    });
    let mut windows = agg.flush();
    assert_eq!(windows.len(), 1);
    windows.remove(0)
}

#[test]
fn record_fields_are_derived_from_the_stats() {
    let record =
        InsightRecord::from_stats(sample_stats(), "pipeline-a", &[2, 0, 2], 1_720_589_722_004);
    assert_eq!(record.key(), "1720589690");
    assert_eq!(record.window_start_time, "2024-07-10T05:34:50Z");
    assert_eq!(record.window_end_time, "2024-07-10T05:35:00Z");
    assert_eq!(record.published_at_time, "2024-07-10T05:35:22.004Z");
    assert_eq!(record.partitions, [0, 2]);
    assert!(record.partial, "flushed stats are partial");
    assert_eq!(
        (record.received, record.valid, record.dead_lettered),
        (6, 5, 1)
    );
    assert_eq!(record.missing_device_type, 1);
    assert_eq!(
        record.by_device_type.top,
        [
            KeyCount {
                key: "ios".into(),
                count: 4
            },
            KeyCount {
                key: "android".into(),
                count: 1
            }
        ]
    );
    assert_eq!(record.by_device_type.distinct, 2);
    assert_eq!((record.distinct_users, record.distinct_devices), (4, 4));
    assert_eq!(record.lag_ms.count, 5);
    assert_eq!(record.lag_ms.max, 1_500);

    let json: serde_json::Value = serde_json::from_str(&record.to_json()).unwrap();
    assert_eq!(
        json["dead_lettered_by_code"],
        serde_json::json!({"missing_field": 1})
    );
    assert_eq!(json["ip_classes"], serde_json::json!({"public": 5}));
    assert_eq!(json["by_locale"]["counts"], serde_json::json!({"CA": 5}));
    assert_eq!(
        json["by_locale"]["top"][0],
        serde_json::json!({"key": "CA", "count": 5})
    );
    assert!(json["users_sketch"].as_str().unwrap().starts_with("Agw"));
    assert!(json["lag_ms"]["p99"].is_u64());
    assert!(json["lag_ms"]["histogram"].is_string());
}

/// A record is partial exactly when its stats are (`from_stats` once took a `partial` flag that
/// could disagree).
#[test]
fn partial_comes_from_the_stats() {
    let mut stats = sample_stats();
    for partial in [false, true] {
        stats.partial = partial;
        let record = InsightRecord::from_stats(stats.clone(), "a", &[], 0);
        assert_eq!(record.partial, partial);
        assert_eq!(record.to_stats().partial, partial);
    }
}

#[test]
fn json_round_trips() {
    let record = InsightRecord::from_stats(sample_stats(), "a", &[1], 5);
    let back = InsightRecord::from_json(record.to_json().as_bytes()).unwrap();
    assert_eq!(back, record);
    assert_eq!(back.to_stats(), sample_stats());
}

#[test]
fn empty_lag_has_null_percentiles() {
    let mut stats = WindowStats::new(0, 10);
    stats.add(
        &ObservationKind::Invalid {
            code: ErrorCode::InvalidJson,
            field: None,
        },
        0,
    );
    let json: serde_json::Value =
        serde_json::from_str(&InsightRecord::from_stats(stats, "a", &[], 0).to_json()).unwrap();
    assert!(json["lag_ms"]["p50"].is_null());
    assert_eq!(json["lag_ms"]["count"], 0);
}

#[test]
fn unknown_fields_are_ignored_and_partitions_normalized() {
    let record = InsightRecord::from_stats(sample_stats(), "a", &[1], 5);
    let mut json: serde_json::Value = serde_json::from_str(&record.to_json()).unwrap();
    json["added_in_a_later_version"] = serde_json::json!([1, 2]);
    json["partitions"] = serde_json::json!([3, 1, 3]);
    let back = InsightRecord::from_json(json.to_string().as_bytes()).unwrap();
    assert_eq!(back.partitions, [1, 3]);
}

#[test]
fn bad_records_are_rejected_with_a_reason() {
    let good: serde_json::Value =
        serde_json::from_str(&InsightRecord::from_stats(sample_stats(), "a", &[1], 5).to_json())
            .unwrap();
    let with = |field: &str, value: serde_json::Value| {
        let mut json = good.clone();
        json[field] = value;
        InsightRecord::from_json(json.to_string().as_bytes())
            .unwrap_err()
            .to_string()
    };
    assert!(with("format", 2.into()).contains("format 2"));
    assert!(with("received", 7.into()).contains("received"));
    assert!(with("dead_lettered", 2.into()).contains("dead_lettered_by_code"));
    assert!(with("window_end", 1_720_589_690u64.into()).contains("window_end"));
    assert!(with("users_sketch", "!!".into()).contains("sketch"));
    assert!(with("valid", (-1).into()).contains("not an insight record"));
    let mut histogram = good.clone();
    histogram["lag_ms"]["histogram"] = "AQ==".into();
    assert!(InsightRecord::from_json(histogram.to_string().as_bytes()).is_err());
    assert!(InsightRecord::from_json(b"").is_err());
    assert!(InsightRecord::from_json(b"[1,2]").is_err());
    assert!(InsightRecord::from_json(b"{\"format\":1}").is_err());
}

#[test]
fn times_past_year_9999_do_not_garble_the_text() {
    assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59Z");
    assert_eq!(rfc3339_ms(999), "1970-01-01T00:00:00.999Z");
}

#[test]
fn merged_instances_partitions_and_partial_flag() {
    let a = InsightRecord::from_stats(sample_stats(), "b", &[2, 3], 10);
    let mut stats = sample_stats();
    stats.partial = false;
    let b = InsightRecord::from_stats(stats.clone(), "a", &[0, 2], 30);
    let merged = merge_records([&a, &b]).unwrap();
    assert_eq!(merged.instance, "a,b");
    assert_eq!(merged.partitions, [0, 2, 3]);
    assert_eq!(merged.published_at_ms, 30);
    assert!(merged.partial, "a is partial");
    assert_eq!(merged.received, 12);
    assert_eq!(merged.distinct_users, 4, "the same users in both");
    assert_eq!(merged.by_device_type.counts.get("ios"), 8);
    let c = InsightRecord::from_stats(stats, "a", &[0], 20);
    let not_partial = merge_records([&b, &c]).unwrap();
    assert!(!not_partial.partial);
    assert_eq!(not_partial.instance, "a");
    assert!(merge_records(std::iter::empty()).is_none());
    // Merging merged records keeps the instance list flat.
    assert_eq!(merge_records([&merged, &c]).unwrap().instance, "a,b");
}

/// A random event for the instance-split property.
fn arb_observation() -> impl Strategy<Value = (u64, u8, u8)> {
    (0u64..35, 0u8..40, 0u8..4)
}

fn observe_all(events: &[(u64, u8, u8)]) -> Vec<WindowStats> {
    const USERS: [&str; 40] = [
        "u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9", "u10", "u11", "u12", "u13",
        "u14", "u15", "u16", "u17", "u18", "u19", "u20", "u21", "u22", "u23", "u24", "u25", "u26",
        "u27", "u28", "u29", "u30", "u31", "u32", "u33", "u34", "u35", "u36", "u37", "u38", "u39",
    ];
    let mut agg = WindowAggregator::new(WindowConfig::default());
    for &(t, user, kind) in events {
        let obs = if kind == 3 {
            Observation {
                event_time: 100 + t,
                lag_ms: 0,
                kind: ObservationKind::Invalid {
                    code: ErrorCode::ALL[usize::from(user) % ErrorCode::ALL.len()],
                    field: None,
                },
            }
        } else {
            let mut obs = observation(
                100 + t,
                USERS[usize::from(user)],
                ["ios", "android", "web"][usize::from(kind)],
            );
            obs.lag_ms = i64::from(user) * 997 - 3_000;
            obs
        };
        agg.observe(&obs);
    }
    agg.flush()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Events split among three instances, published as JSON, read back and merged by window,
    /// give the records of one instance that saw everything (up to instance, partitions and
    /// publication time). No watermark advances here: which events are late depends on what
    /// each instance saw, so with lateness in play only the totals would agree.
    #[test]
    fn merged_instance_records_equal_the_record_of_the_whole(
        events in proptest::collection::vec(arb_observation(), 1..120),
        owners in proptest::collection::vec(0usize..3, 120),
    ) {
        let mut published = Vec::new();
        for instance in 0..3 {
            let part: Vec<_> = events
                .iter()
                .zip(&owners)
                .filter(|(_, &o)| o == instance)
                .map(|(e, _)| *e)
                .collect();
            for stats in observe_all(&part) {
                let record = InsightRecord::from_stats(stats, &format!("i{instance}"), &[instance as i32], 7);
                published.push(InsightRecord::from_json(record.to_json().as_bytes()).unwrap());
            }
        }
        let merged = merge_by_window(&published);
        let whole: Vec<InsightRecord> = observe_all(&events)
            .into_iter()
            .map(|stats| InsightRecord::from_stats(stats, "", &[], 7))
            .collect();
        prop_assert_eq!(merged.len(), whole.len());
        for (m, w) in merged.values().zip(&whole) {
            let mut m = m.clone();
            m.instance.clear();
            m.partitions.clear();
            prop_assert_eq!(&m, w);
        }
    }
}
/// The example in the module doc is a real record: it parses, and its derived fields are what
/// the record's own counts, sketches and histogram give.
#[test]
fn the_documented_example_is_consistent() {
    let example = include_str!("example.json");
    let r = InsightRecord::from_json(example.as_bytes()).unwrap();
    let mut rederived =
        InsightRecord::from_stats(r.to_stats(), &r.instance, &r.partitions, r.published_at_ms);
    rederived.epoch = r.epoch;
    assert_eq!(rederived, r);
    assert_eq!((r.received, r.valid, r.dead_lettered), (21, 19, 2));
    let compact: serde_json::Value = serde_json::from_str(example).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&r.to_json()).unwrap(),
        compact
    );
}
