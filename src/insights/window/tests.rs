//! Tests of the window state machine and of window stats: boundaries, closing, lateness,
//! out-of-order input, flush, the open-window limit, merging, and a differential test against
//! a naive reference on the load generator's realistic traffic.

use std::collections::BTreeMap;
use std::collections::{HashMap, HashSet};

use proptest::prelude::*;

use super::*;
use crate::loadgen::{GenOptions, Generator, Profile};
use crate::transform::{TransformOptions, Transformer};

fn valid(t: u64, user: &'static str) -> Observation<'static> {
    Observation {
        event_time: t,
        lag_ms: 1500,
        kind: ObservationKind::Valid {
            user_id: user,
            device_id: "d-1",
            device_type: "ios",
            app_version: "2.3.0",
            locale: "WA",
            ip_class: IpClass::Public,
            device_type_filled: false,
        },
    }
}

fn invalid(t: u64, code: ErrorCode, field: Option<&'static str>) -> Observation<'static> {
    Observation {
        event_time: t,
        lag_ms: 0,
        kind: ObservationKind::Invalid { code, field },
    }
}

fn aggregator(size: u64, lateness: u64) -> WindowAggregator {
    WindowAggregator::new(WindowConfig::new(size, lateness))
}

fn starts(windows: &[WindowStats]) -> Vec<u64> {
    windows.iter().map(|w| w.start).collect()
}

#[test]
fn ip_class_indexes_follow_the_all_order() {
    for (i, class) in IpClass::ALL.into_iter().enumerate() {
        assert_eq!(class as usize, i);
    }
    for (i, code) in ErrorCode::ALL.into_iter().enumerate() {
        assert_eq!(code.index(), i);
    }
}

#[test]
fn events_at_a_window_end_belong_to_the_next_window() {
    let mut agg = aggregator(10, 10);
    assert_eq!(agg.observe(&valid(1_000, "a")), 1_000);
    assert_eq!(agg.observe(&valid(1_009, "b")), 1_000);
    assert_eq!(agg.observe(&valid(1_010, "c")), 1_010);
    assert_eq!(agg.observe(&valid(1_019, "d")), 1_010);
    assert_eq!(agg.observe(&valid(1_020, "e")), 1_020);
    assert_eq!(agg.open_windows(), 3);
    let windows = agg.flush();
    assert_eq!(starts(&windows), [1_000, 1_010, 1_020]);
    assert_eq!(
        windows.iter().map(|w| w.received).collect::<Vec<_>>(),
        [2, 2, 1]
    );
    assert_eq!((windows[0].start, windows[0].end), (1_000, 1_010));
}

#[test]
fn a_window_closes_when_the_watermark_reaches_its_end_plus_lateness() {
    let mut agg = aggregator(10, 5);
    agg.observe(&valid(100, "a"));
    agg.observe(&valid(112, "b"));
    // Window [100, 110) closes at watermark 115, not before.
    assert!(agg.advance(114).is_empty());
    assert_eq!(agg.observe(&valid(109, "late but allowed")), 100);
    let closed = agg.advance(115);
    assert_eq!(starts(&closed), [100]);
    assert_eq!(closed[0].received, 2);
    assert!(!closed[0].partial);
    assert_eq!(agg.closed_before(), 110);
    assert_eq!(agg.open_windows(), 1);
    // Nothing closes twice, and a lower watermark changes nothing.
    assert!(agg.advance(115).is_empty());
    assert!(agg.advance(3).is_empty());
    assert_eq!(starts(&agg.advance(125)), [110]);
    assert_eq!(agg.open_windows(), 0);
}

#[test]
fn zero_lateness_closes_at_the_window_end() {
    let mut agg = aggregator(10, 0);
    agg.observe(&valid(5, "a"));
    assert!(agg.advance(9).is_empty());
    assert_eq!(starts(&agg.advance(10)), [0]);
}

#[test]
fn late_events_go_to_the_oldest_open_window_and_never_reopen_a_closed_one() {
    let mut agg = aggregator(10, 10);
    agg.observe(&valid(100, "a"));
    agg.observe(&valid(115, "b"));
    agg.observe(&valid(127, "c"));
    assert_eq!(starts(&agg.advance(120)), [100]);
    // [100, 110) is closed: an event for it is late, counted in the oldest open window.
    assert_eq!(agg.observe(&valid(105, "late")), 110);
    assert_eq!(agg.observe(&invalid(42, ErrorCode::InvalidJson, None)), 110);
    let windows = agg.flush();
    assert_eq!(starts(&windows), [110, 120]);
    assert_eq!((windows[0].received, windows[0].late_events), (1, 2));
    assert_eq!(windows[0].valid, 1, "late events are counted nowhere else");
    assert_eq!(windows[0].dead_lettered_total(), 0);
}

#[test]
fn a_late_event_with_no_open_window_opens_the_first_unclosed_one() {
    let mut agg = aggregator(10, 10);
    agg.observe(&valid(100, "a"));
    assert_eq!(starts(&agg.advance(500)), [100]);
    assert_eq!(agg.closed_before(), 490);
    assert_eq!(agg.observe(&valid(100, "late")), 490);
    let windows = agg.advance(510);
    assert_eq!(starts(&windows), [490]);
    assert_eq!((windows[0].received, windows[0].late_events), (0, 1));
    assert!(
        !windows[0].is_empty(),
        "a window with only late events is still published"
    );
}

#[test]
fn late_events_are_counted_by_cause() {
    let behind = LateCause::BehindWatermark.index();
    let closed = LateCause::WindowClosed.index();
    let mut agg = aggregator(10, 10);
    agg.observe(&valid(100, "a"));
    agg.observe(&valid(125, "b"));
    assert_eq!(starts(&agg.advance(125)), [100]);
    // Behind the watermark: [100, 110) closes at 120 and the watermark is 125.
    agg.observe(&valid(101, "late"));
    assert_eq!(agg.take_late(), [1, 0]);
    assert_eq!(agg.take_late(), [0, 0], "taken");
    // The watermark goes down (a partition enters behind the others): [100, 110) stays
    // closed, but an event for it is no longer behind the watermark: its window was closed.
    assert!(agg.advance(112).is_empty());
    agg.observe(&valid(102, "entered late"));
    let counts = agg.take_late();
    assert_eq!((counts[behind], counts[closed]), (0, 1));
    // Closed early by the open-window limit: window closed, too.
    let mut agg = WindowAggregator::new(WindowConfig {
        max_open_windows: 1,
        ..WindowConfig::new(10, 10)
    });
    agg.observe(&valid(100, "u"));
    agg.observe(&valid(200, "u"));
    agg.observe(&valid(105, "u"));
    assert_eq!(agg.take_late(), [0, 1]);
    assert_eq!(
        LateCause::ALL.map(LateCause::as_str),
        ["behind_watermark", "window_closed"]
    );
}

#[test]
fn flush_closes_everything_as_partial_and_later_events_are_late() {
    let mut agg = aggregator(10, 10);
    agg.observe(&valid(100, "a"));
    agg.observe(&valid(130, "b"));
    let windows = agg.flush();
    assert_eq!(starts(&windows), [100, 130]);
    assert!(windows.iter().all(|w| w.partial));
    assert_eq!(agg.open_windows(), 0);
    assert!(agg.flush().is_empty());
    assert_eq!(agg.observe(&valid(135, "after flush")), 140);
    assert_eq!(agg.flush()[0].late_events, 1);
}

#[test]
fn empty_windows_are_never_emitted() {
    let mut agg = aggregator(10, 10);
    assert!(agg.advance(1_000).is_empty());
    assert!(agg.flush().is_empty());
    agg.observe(&valid(2_000, "a"));
    agg.observe(&valid(2_500, "b"));
    // The 49 windows between the two events saw nothing and do not exist.
    assert_eq!(starts(&agg.advance(3_000)), [2_000, 2_500]);
}

#[test]
fn out_of_order_events_within_lateness_land_in_their_windows() {
    // Lateness 20: with the watermark at the largest event time seen (129 at most), window
    // [100, 110) stays open until 130, so every event below lands in its own window.
    let mut agg = aggregator(10, 20);
    let mut watermark = 0;
    let mut closed = Vec::new();
    for t in [125, 101, 118, 104, 129, 110, 100] {
        agg.observe(&valid(t, "u"));
        watermark = watermark.max(t);
        closed.extend(agg.advance(watermark));
    }
    assert!(closed.is_empty());
    // 95 is beyond the lateness: [90, 100) was never opened, but it is before the closed
    // boundary (watermark 129 − lateness 20 → 100), so the event is late.
    assert_eq!(agg.closed_before(), 100);
    assert_eq!(agg.observe(&valid(95, "u")), 100);
    let counts: Vec<(u64, u64, u64)> = agg
        .flush()
        .iter()
        .map(|w| (w.start, w.received, w.late_events))
        .collect();
    assert_eq!(counts, [(100, 3, 1), (110, 2, 0), (120, 2, 0)]);
}

#[test]
fn the_open_window_limit_closes_the_oldest_early() {
    let mut agg = WindowAggregator::new(WindowConfig {
        max_open_windows: 3,
        ..WindowConfig::new(10, 10)
    });
    for t in [100, 200, 300] {
        agg.observe(&valid(t, "u"));
    }
    assert_eq!(agg.observe(&valid(400, "u")), 400);
    assert_eq!(agg.open_windows(), 3);
    assert_eq!(agg.closed_before(), 110);
    // Older than every open window, with no room: late.
    assert_eq!(agg.observe(&valid(150, "u")), 200);
    // The evicted window comes out with the next advance, even if the watermark closes nothing.
    let closed = agg.advance(0);
    assert_eq!(starts(&closed), [100]);
    assert!(!closed[0].partial);
    let rest = agg.flush();
    assert_eq!(starts(&rest), [200, 300, 400]);
    assert_eq!(rest[0].late_events, 1);
    let total: u64 = closed
        .iter()
        .chain(&rest)
        .map(|w| w.received + w.late_events)
        .sum();
    assert_eq!(total, 5);
}

#[test]
fn a_flood_of_scattered_timestamps_stays_bounded() {
    let mut agg = aggregator(10, 10);
    let mut closed = 0;
    for i in 0..20_000u64 {
        let t = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % 253_402_300_799;
        agg.observe(&valid(t, "u"));
        assert!(agg.open_windows() <= DEFAULT_MAX_OPEN_WINDOWS);
        if i % 1000 == 999 {
            closed += agg.advance(0).len();
        }
    }
    let all: u64 = agg
        .flush()
        .iter()
        .map(|w| w.received + w.late_events)
        .sum::<u64>();
    assert!(closed > 0);
    assert!(all > 0);
}

#[test]
fn size_zero_is_taken_as_one_second() {
    let mut agg = aggregator(0, 0);
    assert_eq!(agg.config().size_secs, 1);
    assert_eq!(agg.observe(&valid(7, "u")), 7);
    assert_eq!(starts(&agg.advance(8)), [7]);
}

#[test]
fn stats_count_each_field() {
    let mut w = WindowStats::new(0, 10);
    w.add(&valid(1, "alice").kind, 1200);
    w.add(&valid(2, "bob").kind, -300);
    w.add(&valid(3, "alice").kind, 800);
    w.add(
        &ObservationKind::Valid {
            user_id: "carol",
            device_id: "d-9",
            device_type: "unknown",
            app_version: "2.4.0",
            locale: "CA",
            ip_class: IpClass::Private,
            device_type_filled: true,
        },
        100,
    );
    w.add(
        &invalid(4, ErrorCode::MissingField, Some("device_type")).kind,
        0,
    );
    w.add(
        &invalid(4, ErrorCode::MissingField, Some("user_id")).kind,
        0,
    );
    w.add(&invalid(4, ErrorCode::InvalidJson, None).kind, 0);
    assert_eq!((w.received, w.valid, w.dead_lettered_total()), (7, 4, 3));
    assert_eq!(w.dead_lettered[ErrorCode::MissingField.index()], 2);
    assert_eq!(w.dead_lettered[ErrorCode::InvalidJson.index()], 1);
    assert_eq!(w.missing_device_type, 2);
    assert_eq!(
        (w.device_types.get("ios"), w.device_types.get("unknown")),
        (3, 1)
    );
    assert_eq!(w.app_versions.get("2.3.0"), 3);
    assert_eq!(w.locales.get("CA"), 1);
    assert_eq!((w.users.estimate(), w.devices.estimate()), (3, 2));
    assert_eq!(w.ip_classes[IpClass::Public as usize], 3);
    assert_eq!(w.ip_classes[IpClass::Private as usize], 1);
    assert_eq!((w.lag.count(), w.lag.negative(), w.lag.max()), (4, 1, 1200));
}

#[test]
fn stats_serialize_with_labels_and_round_trip() {
    let mut w = WindowStats::new(0, 10);
    w.add(&valid(1, "alice").kind, 1200);
    w.add(&invalid(4, ErrorCode::TooLarge, None).kind, 0);
    let json = serde_json::to_value(&w).unwrap();
    assert_eq!(json["dead_lettered"], serde_json::json!({"too_large": 1}));
    assert_eq!(json["ip_classes"], serde_json::json!({"public": 1}));
    assert_eq!(json["device_types"], serde_json::json!({"ios": 1}));
    let back: WindowStats = serde_json::from_value(json).unwrap();
    assert_eq!(back, w);
    let mut bad = serde_json::to_value(&w).unwrap();
    bad["dead_lettered"] = serde_json::json!({"no_such_code": 1});
    assert!(serde_json::from_value::<WindowStats>(bad).is_err());
}

#[test]
fn lag_helper_saturates() {
    assert_eq!(lag_ms(1_720_589_698_500, 1_720_589_697), 1_500);
    assert_eq!(lag_ms(1_000, 2), -1_000);
    assert_eq!(lag_ms(0, u64::MAX), i64::MIN);
    assert_eq!(lag_ms(u64::MAX, 0), i64::MAX);
}

/// An event from the load generator's traffic, run through the real transformer.
#[derive(Clone, Debug)]
struct Event {
    time: u64,
    lag: i64,
    kind: OwnedKind,
}

#[derive(Clone, Debug)]
enum OwnedKind {
    Valid {
        user: String,
        device: String,
        device_type: String,
        version: String,
        locale: String,
        ip_class: IpClass,
        filled: bool,
    },
    Invalid(ErrorCode, Option<&'static str>),
}

impl Event {
    fn observation(&self) -> Observation<'_> {
        let kind = match &self.kind {
            OwnedKind::Valid {
                user,
                device,
                device_type,
                version,
                locale,
                ip_class,
                filled,
            } => ObservationKind::Valid {
                user_id: user,
                device_id: device,
                device_type,
                app_version: version,
                locale,
                ip_class: *ip_class,
                device_type_filled: *filled,
            },
            OwnedKind::Invalid(code, field) => ObservationKind::Invalid {
                code: *code,
                field: *field,
            },
        };
        Observation {
            event_time: self.time,
            lag_ms: self.lag,
            kind,
        }
    }
}

/// `n` realistic events (with a fill value for device_type when `fill`). Invalid records take
/// the time of the previous record, as the Kafka timestamp would be; lag is a deterministic
/// function of the index.
fn realistic_events(n: usize, seed: u64, fill: bool) -> Vec<Event> {
    let mut options = TransformOptions::default();
    if fill {
        options
            .set_fill(crate::transform::Field::DeviceType, "unknown")
            .unwrap();
    }
    let mut transformer = Transformer::new(options);
    let generator = Generator::new(
        Profile::Realistic,
        seed,
        GenOptions {
            users: 2_000,
            rate: 300.0,
            invalid_rate: 0.03,
            ..GenOptions::default()
        },
    );
    let mut last_time = GenOptions::default().base_time;
    generator
        .take(n)
        .enumerate()
        .map(|(i, record)| {
            let lag = (i as i64 * 7919) % 5_000 - 200;
            match transformer.process(record.value.as_deref()) {
                Ok(e) => {
                    last_time = e.timestamp;
                    Event {
                        time: e.timestamp,
                        lag,
                        kind: OwnedKind::Valid {
                            user: e.user_id.to_string(),
                            device: e.device_id.to_string(),
                            device_type: e.device_type.to_string(),
                            version: e.app_version.to_string(),
                            locale: e.locale.as_str().to_owned(),
                            ip_class: e.ip_class,
                            filled: e.filled.contains(&"device_type"),
                        },
                    }
                }
                Err(r) => Event {
                    time: last_time,
                    lag,
                    kind: OwnedKind::Invalid(r.code, r.field),
                },
            }
        })
        .collect()
}

/// The naive answer: per window start, exact counts and exact distinct sets.
#[derive(Default, Debug)]
struct Reference {
    received: u64,
    valid: u64,
    dead: HashMap<ErrorCode, u64>,
    missing_device_type: u64,
    device_types: HashMap<String, u64>,
    locales: HashMap<String, u64>,
    versions: HashMap<String, u64>,
    users: HashSet<String>,
    devices: HashSet<String>,
    ip: HashMap<IpClass, u64>,
}

fn reference(events: &[Event], size: u64) -> HashMap<u64, Reference> {
    let mut windows: HashMap<u64, Reference> = HashMap::new();
    for e in events {
        let w = windows.entry(e.time - e.time % size).or_default();
        w.received += 1;
        match &e.kind {
            OwnedKind::Valid {
                user,
                device,
                device_type,
                version,
                locale,
                ip_class,
                filled,
            } => {
                w.valid += 1;
                *w.device_types.entry(device_type.clone()).or_default() += 1;
                *w.versions.entry(version.clone()).or_default() += 1;
                *w.locales.entry(locale.clone()).or_default() += 1;
                w.users.insert(user.clone());
                w.devices.insert(device.clone());
                *w.ip.entry(*ip_class).or_default() += 1;
                w.missing_device_type += u64::from(*filled);
            }
            OwnedKind::Invalid(code, field) => {
                *w.dead.entry(*code).or_default() += 1;
                if *code == ErrorCode::MissingField && *field == Some("device_type") {
                    w.missing_device_type += 1;
                }
            }
        }
    }
    windows
}

fn assert_matches_reference(w: &WindowStats, r: &Reference) {
    assert_eq!(w.received, r.received, "window {}", w.start);
    assert_eq!(w.valid, r.valid);
    for code in ErrorCode::ALL {
        assert_eq!(
            w.dead_lettered[code.index()],
            r.dead.get(&code).copied().unwrap_or(0),
            "{code}"
        );
    }
    assert_eq!(w.missing_device_type, r.missing_device_type);
    for (map, counts) in [
        (&w.device_types, &r.device_types),
        (&w.app_versions, &r.versions),
        (&w.locales, &r.locales),
    ] {
        assert_eq!(map.distinct(), counts.len());
        for (key, &n) in counts {
            assert_eq!(map.get(key), n, "{key}");
        }
    }
    for class in IpClass::ALL {
        assert_eq!(
            w.ip_classes[class as usize],
            r.ip.get(&class).copied().unwrap_or(0)
        );
    }
    for (sketch, exact) in [(&w.users, r.users.len()), (&w.devices, r.devices.len())] {
        let error = sketch.estimate().abs_diff(exact as u64) as f64 / exact.max(1) as f64;
        assert!(
            error < 3.0 * 1.04 / 64.0,
            "{} vs {exact}",
            sketch.estimate()
        );
    }
    assert_eq!(w.lag.count(), r.valid);
}

#[test]
fn realistic_traffic_matches_a_naive_reference_per_window() {
    for fill in [false, true] {
        let events = realistic_events(12_000, 7, fill);
        let mut agg = aggregator(10, 10);
        // Generous lateness: advance only at the end, so nothing is late.
        for e in &events {
            agg.observe(&e.observation());
        }
        let windows = agg.advance(u64::MAX);
        let expected = reference(&events, 10);
        assert_eq!(windows.len(), expected.len());
        for w in &windows {
            assert_eq!(w.late_events, 0);
            assert_matches_reference(w, &expected[&w.start]);
        }
        let missing: u64 = windows.iter().map(|w| w.missing_device_type).sum();
        assert!(
            missing > 300,
            "about 5% of 12,000 lack device_type: {missing}"
        );
        if fill {
            let unknown: u64 = windows.iter().map(|w| w.device_types.get("unknown")).sum();
            assert_eq!(unknown, missing);
        }
    }
}

#[test]
fn realistic_traffic_with_a_live_watermark_loses_nothing() {
    // The realistic profile makes 1% of events 30–600 s late: with a watermark at the largest
    // event time seen, those are late; every event is still counted exactly once.
    let events = realistic_events(20_000, 11, false);
    let mut agg = aggregator(10, 10);
    let mut windows = Vec::new();
    let mut watermark = 0;
    for (i, e) in events.iter().enumerate() {
        agg.observe(&e.observation());
        watermark = watermark.max(e.time);
        if i % 50 == 0 {
            windows.extend(agg.advance(watermark));
        }
    }
    windows.extend(agg.flush());
    let received: u64 = windows.iter().map(|w| w.received).sum();
    let late: u64 = windows.iter().map(|w| w.late_events).sum();
    assert_eq!(received + late, events.len() as u64);
    assert!(late > 50, "{late} late events");
    assert!(late < 1_000, "{late} late events");
    let starts = starts(&windows);
    let mut sorted = starts.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(starts, sorted, "each window is emitted once, in order");
    assert!(windows.last().unwrap().partial);
}

#[test]
fn per_worker_windows_merge_into_the_single_aggregator_windows() {
    let events = realistic_events(6_000, 3, false);
    let mut single = aggregator(10, 10);
    let mut workers = [aggregator(10, 10), aggregator(10, 10), aggregator(10, 10)];
    for (i, e) in events.iter().enumerate() {
        single.observe(&e.observation());
        workers[i * 7 % 3].observe(&e.observation());
    }
    let mut merged: BTreeMap<u64, WindowStats> = BTreeMap::new();
    for w in workers.iter_mut().flat_map(|a| a.flush()) {
        match merged.get_mut(&w.start) {
            Some(m) => m.merge(&w),
            None => {
                merged.insert(w.start, w);
            }
        }
    }
    let whole = single.flush();
    assert_eq!(merged.into_values().collect::<Vec<_>>(), whole);
}

/// A compact random event for property tests.
fn arb_event() -> impl Strategy<Value = Event> {
    let valid = (
        0u64..40,
        0u8..30,
        0u8..20,
        0usize..3,
        0usize..4,
        0usize..IpClass::ALL.len(),
        any::<bool>(),
        -500i64..100_000,
    )
        .prop_map(|(t, user, device, dt, loc, ip, filled, lag)| Event {
            time: 1_000 + t,
            lag,
            kind: OwnedKind::Valid {
                user: format!("user-{user}"),
                device: format!("device-{device}"),
                device_type: ["ios", "android", "unknown"][dt].to_owned(),
                version: "2.3.0".to_owned(),
                locale: ["WA", "CA", "TX", "IN"][loc].to_owned(),
                ip_class: IpClass::ALL[ip],
                filled,
            },
        });
    let invalid = (0u64..40, 0usize..ErrorCode::ALL.len(), any::<bool>()).prop_map(
        |(t, code, device_type)| Event {
            time: 1_000 + t,
            lag: 0,
            kind: OwnedKind::Invalid(ErrorCode::ALL[code], device_type.then_some("device_type")),
        },
    );
    prop_oneof![3 => valid, 1 => invalid]
}

fn stats_of(events: &[Event]) -> BTreeMap<u64, WindowStats> {
    let mut agg = aggregator(10, 10);
    for e in events {
        agg.observe(&e.observation());
    }
    agg.flush().into_iter().map(|w| (w.start, w)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Splitting the events at random between aggregators and merging their windows, in any
    /// grouping and order, gives the windows of the whole.
    #[test]
    fn merge_of_a_random_split_equals_the_whole(
        events in proptest::collection::vec(arb_event(), 0..150),
        owners in proptest::collection::vec(0usize..3, 150),
    ) {
        let parts: Vec<Vec<Event>> = (0..3)
            .map(|p| events.iter().zip(&owners).filter(|(_, &o)| o == p).map(|(e, _)| e.clone()).collect())
            .collect();
        let [a, b, c] = [stats_of(&parts[0]), stats_of(&parts[1]), stats_of(&parts[2])];
        let whole = stats_of(&events);
        let merge = |x: &BTreeMap<u64, WindowStats>, y: &BTreeMap<u64, WindowStats>| {
            let mut out = x.clone();
            for (start, w) in y {
                out.entry(*start).and_modify(|m| m.merge(w)).or_insert_with(|| w.clone());
            }
            out
        };
        // (a + b) + c, a + (c + b), (c + a) + b: associative and commutative.
        prop_assert_eq!(&merge(&merge(&a, &b), &c), &whole);
        prop_assert_eq!(&merge(&a, &merge(&c, &b)), &whole);
        prop_assert_eq!(&merge(&merge(&c, &a), &b), &whole);
    }

    /// With the watermark held back by the lateness, any order of the same events gives the
    /// same windows.
    #[test]
    fn order_does_not_matter_within_the_allowed_lateness(
        events in proptest::collection::vec(arb_event(), 0..100),
        seed in any::<u64>(),
    ) {
        let mut shuffled = events.clone();
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        // All events lie within 40 s; 50 s of lateness covers any reordering.
        let run = |events: &[Event]| {
            let mut agg = aggregator(10, 50);
            let mut out = Vec::new();
            let mut watermark = 0;
            for e in events {
                agg.observe(&e.observation());
                watermark = watermark.max(e.time);
                out.extend(agg.advance(watermark));
            }
            out.extend(agg.advance(u64::MAX));
            out
        };
        prop_assert_eq!(run(&events), run(&shuffled));
    }
}

#[test]
fn deltas_add_up_to_what_the_window_counted_without_them() {
    let config = WindowConfig::new(10, 10);
    let mut with = WindowAggregator::new(config);
    let mut without = WindowAggregator::new(config);
    let mut summed: BTreeMap<u64, WindowStats> = BTreeMap::new();
    let add = |stats: Vec<WindowStats>, summed: &mut BTreeMap<u64, WindowStats>| {
        for s in stats {
            summed
                .entry(s.start)
                .or_insert_with(|| WindowStats::new(s.start, s.end))
                .merge(&s);
        }
    };
    let users = ["u1", "u2", "u3", "u4"];
    let mut closed_without = Vec::new();
    for i in 0..200u64 {
        let obs = valid(1_000 + i / 4, users[(i % 4) as usize]);
        with.observe(&obs);
        without.observe(&obs);
        if i % 37 == 0 {
            let deltas = with.take_deltas();
            assert!(deltas.iter().all(|d| !d.is_empty()), "no empty deltas");
            add(deltas, &mut summed);
        }
        if i % 50 == 49 {
            add(with.advance(1_000 + i / 4), &mut summed);
            closed_without.extend(without.advance(1_000 + i / 4));
        }
    }
    add(with.take_deltas(), &mut summed);
    add(with.flush(), &mut summed);
    let mut expected: BTreeMap<u64, WindowStats> = BTreeMap::new();
    let mut all = closed_without;
    all.extend(without.flush());
    for s in all {
        expected.insert(s.start, s);
    }
    // Only the partial flag differs (the flush marks what was still open).
    for (start, mut s) in summed {
        let e = expected.get(&start).expect("same windows");
        s.partial = e.partial;
        assert_eq!(&s, e, "window {start}");
    }
    assert!(with.take_deltas().is_empty(), "nothing new after the flush");
}
