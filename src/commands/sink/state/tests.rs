//! Tests of the sink's pure part: replays, skips and merges, on the documented example record.

use super::*;

const EXAMPLE: &str = include_str!("../../../insights/record/example.json");

/// The example record as published by `instance` at `published_at_ms`, for window `start`.
fn record_json(instance: &str, start: u64, published_at_ms: u64) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
    v["instance"] = instance.into();
    v["window_start"] = start.into();
    v["window_end"] = (start + 10).into();
    v["published_at_ms"] = published_at_ms.into();
    serde_json::to_vec(&v).unwrap()
}

fn batch(records: &[(i32, i64, Option<Vec<u8>>)]) -> Batch {
    let mut b = Batch::default();
    for (p, o, v) in records {
        b.insert(*p, *o, v.as_deref());
    }
    b
}

#[test]
fn records_below_the_stored_offset_are_replays() {
    let b = batch(&[
        (0, 4, Some(record_json("a", 100, 1))),
        (0, 5, Some(record_json("a", 100, 2))),
        (1, 9, Some(record_json("b", 100, 3))),
    ]);
    let stored = BTreeMap::from([(0, 5), (1, 2)]);
    let plan = plan(&b, &stored, &BTreeMap::new());
    assert_eq!(plan.replayed, 1);
    assert_eq!(plan.fresh.len(), 2);
    assert_eq!(plan.offsets, BTreeMap::from([(0, 6), (1, 10)]));
}

#[test]
fn a_second_copy_of_an_offset_is_held_once() {
    let b = batch(&[
        (0, 7, Some(record_json("a", 100, 1))),
        (0, 7, Some(record_json("other", 100, 1))),
    ]);
    assert_eq!(b.len(), 1);
    let plan = plan(&b, &BTreeMap::new(), &BTreeMap::new());
    assert_eq!(plan.fresh[0].instance, "a");
}

#[test]
fn bad_records_are_skipped_with_a_reason_and_advance_the_offset() {
    let mut huge = serde_json::from_str::<serde_json::Value>(EXAMPLE).unwrap();
    huge["received"] = (MAX_COUNT + 2).into();
    huge["valid"] = (MAX_COUNT).into();
    let mut future = serde_json::from_str::<serde_json::Value>(EXAMPLE).unwrap();
    future["window_start"] = 400_000_000_000u64.into();
    future["window_end"] = 400_000_000_010u64.into();
    let mut bad_sketch = serde_json::from_str::<serde_json::Value>(EXAMPLE).unwrap();
    bad_sketch["users_sketch"] = "AgwB".into();
    let b = batch(&[
        (0, 0, None),
        (0, 1, Some(b"not json".to_vec())),
        (0, 2, Some(b"[1,2,3]".to_vec())),
        (0, 3, Some(serde_json::to_vec(&bad_sketch).unwrap())),
        (0, 4, Some(serde_json::to_vec(&huge).unwrap())),
        (0, 5, Some(serde_json::to_vec(&future).unwrap())),
        (0, 6, Some(record_json("a", 100, 1))),
        (0, 7, Some(record_json("a", 110, 1))),
    ]);
    let reject = BTreeMap::from([((0, 7), "refused by PostgreSQL".to_owned())]);
    let plan = plan(&b, &BTreeMap::new(), &reject);
    assert_eq!(plan.fresh.len(), 1);
    let reasons: Vec<(i64, &str)> = plan
        .skipped
        .iter()
        .map(|s| (s.offset, s.reason.as_str()))
        .collect();
    assert_eq!(reasons.len(), 7, "{reasons:?}");
    assert!(reasons[0].1.contains("null"));
    assert!(reasons[1].1.contains("not an insight record"));
    assert!(reasons[3].1.contains("sketch"), "{}", reasons[3].1);
    assert!(reasons[4].1.contains("count is above"));
    assert!(reasons[5].1.contains("year 9999"));
    assert_eq!(reasons[6], (7, "refused by PostgreSQL"));
    assert_eq!(plan.offsets, BTreeMap::from([(0, 8)]));
}

#[test]
fn records_of_a_window_add_up_and_exact_resends_are_dropped() {
    let parse = |v: Vec<u8>| InsightRecord::from_json(&v).unwrap();
    let mut windows = BTreeMap::new();
    let fresh = vec![
        parse(record_json("a", 100, 1)),
        parse(record_json("b", 100, 2)),
        parse(record_json("a", 100, 1)), // an exact re-send
        parse(record_json("a", 110, 1)),
    ];
    let (changed, duplicates) = merge_into(&mut windows, fresh);
    assert_eq!(changed, BTreeSet::from([100, 110]));
    assert_eq!(duplicates, 1);
    let w = &windows[&100];
    assert_eq!(w.records(), 2);
    assert_eq!((w.record.received, w.record.valid), (42, 38));
    assert_eq!(w.record.instance, "a,b");
    assert_eq!(w.record.published_at_ms, 2);
    // Same users in both: the sketch union counts them once.
    assert_eq!(w.record.distinct_users, 14);

    // Stored and re-read (as the store does), the state still drops the re-send.
    let stored = InsightRecord::from_json(w.record.to_json().as_bytes()).unwrap();
    let mut again = BTreeMap::from([(
        100,
        WindowState {
            record: stored,
            digests: w.digests.clone(),
        },
    )]);
    let (changed, duplicates) = merge_into(&mut again, vec![parse(record_json("b", 100, 2))]);
    assert!(changed.is_empty());
    assert_eq!(duplicates, 1);
    assert_eq!(again[&100], windows[&100]);
}
