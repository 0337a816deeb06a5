//! Tests of the reader without a broker: merging and de-duplication in the window table, the
//! number formats, the table's rows, and the flags.

use super::*;
use crate::insights::record::merge_records;
use crate::insights::window::{Observation, ObservationKind, WindowAggregator, WindowConfig};
use crate::transform::{ErrorCode, IpClass};

/// `n` events in the window at `start` (10 s), `ios`/`android` alternating, a few locales,
/// users `u0..`, one dead letter in ten.
fn stats(start: u64, n: u64, first_user: u64) -> WindowStats {
    let users: Vec<String> = (first_user..first_user + n)
        .map(|i| format!("u{i}"))
        .collect();
    let mut agg = WindowAggregator::new(WindowConfig::default());
    for (i, user) in users.iter().enumerate() {
        let kind = if i % 10 == 9 {
            ObservationKind::Invalid {
                code: ErrorCode::InvalidJson,
                field: None,
            }
        } else {
            ObservationKind::Valid {
                user_id: user,
                device_id: user,
                device_type: ["ios", "android"][i % 2],
                app_version: "2.3.0",
                locale: ["CA", "TX", "CA", "FL", "NY"][i % 5],
                ip_class: IpClass::Public,
                device_type_filled: false,
            }
        };
        agg.observe(&Observation {
            event_time: start + i as u64 % 10,
            lag_ms: 1_000 + 100 * i as i64,
            kind,
        });
    }
    agg.advance(u64::MAX).remove(0)
}

fn record(
    start: u64,
    n: u64,
    first_user: u64,
    instance: &str,
    partitions: &[i32],
) -> InsightRecord {
    InsightRecord::from_stats(
        stats(start, n, first_user),
        instance,
        partitions,
        1_720_589_722_000,
    )
}

const T0: u64 = 1_720_589_690; // 2024-07-10T05:34:50Z

#[test]
fn records_of_one_window_are_added_up_across_instances() {
    let mut table = WindowTable::new(None);
    assert_eq!(table.add(record(T0, 20, 0, "a", &[0])), Added::New);
    assert_eq!(table.add(record(T0, 30, 10, "b", &[1, 2])), Added::Updated);
    assert_eq!(table.add(record(T0 + 10, 5, 0, "a", &[0])), Added::New);
    let merged = table.merged(T0).unwrap();
    assert_eq!(merged.received, 50);
    assert_eq!(merged.dead_lettered, 5);
    assert_eq!(merged.instance, "a,b");
    assert_eq!(merged.partitions, [0, 1, 2]);
    // u10..u19 were seen by both instances: 40 distinct users among the valid events.
    let valid_users: std::collections::HashSet<String> = (0..20)
        .filter(|i| i % 10 != 9)
        .chain((0..30).filter(|i| i % 10 != 9).map(|i| i + 10))
        .map(|i| format!("u{i}"))
        .collect();
    assert!(merged.distinct_users.abs_diff(valid_users.len() as u64) <= 1);
    assert_eq!(
        merged,
        merge_records([
            &record(T0, 20, 0, "a", &[0]),
            &record(T0, 30, 10, "b", &[1, 2])
        ])
        .unwrap()
    );
    assert_eq!(table.len(), 2);
    assert_eq!(table.counts().merged, 3);
}

#[test]
fn exact_resends_are_dropped_but_later_parts_are_added() {
    let mut table = WindowTable::new(None);
    let first = record(T0, 20, 0, "a", &[0]);
    assert_eq!(table.add(first.clone()), Added::New);
    // The same record again (a re-send), even re-serialized differently: dropped.
    let mut resent = serde_json::to_value(&first).unwrap();
    resent["some_future_field"] = serde_json::json!(true);
    assert_eq!(
        table.add_json(Some(resent.to_string().as_bytes())).unwrap(),
        Added::Duplicate
    );
    // A second part of the same window from the same instance (after a partial flush): added.
    let mut second = record(T0, 4, 100, "a", &[0]);
    second.published_at_ms += 5_000;
    assert_eq!(table.add(second), Added::Updated);
    assert_eq!(table.merged(T0).unwrap().received, 24);
    assert_eq!(table.counts().duplicates, 1);
}

#[test]
fn invalid_payloads_are_counted_not_merged() {
    let mut table = WindowTable::new(None);
    assert!(table.add_json(None).is_err());
    assert!(table.add_json(Some(b"not json")).is_err());
    assert!(table.add_json(Some(b"{\"format\":1}")).is_err());
    assert!(table.is_empty());
    assert_eq!(table.counts().invalid, 3);
}

#[test]
fn last_n_keeps_the_newest_windows() {
    let mut table = WindowTable::new(Some(2));
    for k in [3u64, 1, 4, 2] {
        table.add(record(T0 + 10 * k, 5, 0, "a", &[0]));
    }
    // 1 was evicted by 4; 2 arrived when 3 and 4 were kept: too old.
    let starts: Vec<u64> = table.all().iter().map(|r| r.window_start).collect();
    assert_eq!(starts, [T0 + 30, T0 + 40]);
    assert_eq!(table.counts().too_old, 1);
    assert_eq!(table.add(record(T0 + 30, 5, 50, "b", &[1])), Added::Updated);
    assert_eq!(table.merged(T0 + 30).unwrap().received, 10);
}

#[test]
fn changed_windows_are_reported_once() {
    let mut table = WindowTable::new(None);
    table.add(record(T0 + 10, 5, 0, "a", &[0]));
    table.add(record(T0, 5, 0, "a", &[0]));
    let changed: Vec<u64> = table
        .take_changed()
        .iter()
        .map(|r| r.window_start)
        .collect();
    assert_eq!(changed, [T0, T0 + 10]);
    assert!(table.take_changed().is_empty());
    table.add(record(T0, 5, 9, "b", &[1]));
    assert_eq!(table.take_changed()[0].received, 10);
}

#[test]
fn number_formats() {
    assert_eq!(format_count(0), "0");
    assert_eq!(format_count(99_999), "99999");
    assert_eq!(format_count(123_456), "123.5k");
    assert_eq!(format_count(12_345_678), "12.3M");
    assert_eq!(format_count(u64::MAX), "18446744073.7G");
    assert_eq!(format_rate(2.14), "2.1");
    assert_eq!(format_rate(99.94), "99.9");
    assert_eq!(format_rate(1234.4), "1234");
    assert_eq!(format_rate(250_000.0), "250.0k");
    assert_eq!(format_ms(0), "0ms");
    assert_eq!(format_ms(850), "850ms");
    assert_eq!(format_ms(1_234), "1.2s");
    assert_eq!(format_ms(42_000), "42s");
    assert_eq!(format_ms(210_000), "3.5m");
    assert_eq!(format_ms(7_560_000), "2.1h");
    assert_eq!(format_ms(345_600_000), "4.0d");
}

#[test]
fn a_row_shows_the_window_at_a_glance() {
    // 90 valid events: 50 ios, 40 android; CA 40, FL 20, TX 20, NY 10 (ties by key); 90 users
    // (estimated 89); lag p99 = the largest of 1,000 + 100·i = 10.8 s.
    let r = record(T0, 100, 0, "a", &[0]);
    let row = format_row(&r);
    assert_eq!(
        format_header(),
        "window     events   rate/s invalid  devices                 top locales            users lag p99   late"
    );
    assert_eq!(
        row,
        "05:34:50      100     10.0   10.0%  ios 56% android 44%     CA 44% FL 22% TX 22%      89     11s      0"
    );
    assert_eq!(row.chars().count(), format_header().chars().count());
    assert!(row.len() <= 110);
    let mut partial = r.clone();
    partial.partial = true;
    assert_eq!(format_row(&partial), format!("{row} *"));
}

#[test]
fn rows_without_valid_events_or_with_odd_values() {
    let mut s = WindowStats::new(T0, T0 + 10);
    s.add(
        &ObservationKind::Invalid {
            code: ErrorCode::Tombstone,
            field: None,
        },
        0,
    );
    let row = format_row(&InsightRecord::from_stats(s, "a", &[], 0));
    assert_eq!(
        row,
        "05:34:50        1      0.1  100.0%  -                       -                          0       -      0"
    );

    let mut s = WindowStats::new(T0, T0 + 10);
    let long = "a-very-long-device-type-name";
    for (i, device_type) in [long, long, "x", "y"].into_iter().enumerate() {
        s.add(
            &ObservationKind::Valid {
                user_id: "u",
                device_id: "d",
                device_type,
                app_version: "1",
                locale: "CA",
                ip_class: IpClass::Public,
                device_type_filled: false,
            },
            i as i64,
        );
    }
    let row = format_row(&InsightRecord::from_stats(s, "a", &[], 0));
    // Keys cut to nine characters, and the number of values not shown.
    assert!(row.contains("  a-very-l… 50% x 25% +1  "), "{row}");
    assert_eq!(row.chars().count(), format_header().chars().count());
}

#[test]
fn printer_writes_the_header_and_a_date_line_per_day() {
    let day1 = record(T0, 10, 0, "a", &[0]);
    let day1_later = record(T0 + 10, 10, 0, "a", &[0]);
    let day2 = record(T0 + 86_400, 10, 0, "a", &[0]);
    let mut printer = Printer {
        out: Vec::new(),
        json: false,
        last_day: None,
        rows_since_header: 0,
    };
    printer.print(&[day1.clone(), day1_later, day2]).unwrap();
    let text = String::from_utf8(printer.out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[0], format_header());
    assert_eq!(lines[1], "── 2024-07-10");
    assert!(lines[2].starts_with("05:34:50"));
    assert!(lines[3].starts_with("05:35:00"));
    assert_eq!(lines[4], "── 2024-07-11");

    let mut json = Printer {
        out: Vec::new(),
        json: true,
        last_day: None,
        rows_since_header: 0,
    };
    json.print(std::slice::from_ref(&day1)).unwrap();
    let line = String::from_utf8(json.out).unwrap();
    assert_eq!(line.lines().count(), 1);
    assert_eq!(
        InsightRecord::from_json(line.trim_end().as_bytes()).unwrap(),
        day1
    );
}
