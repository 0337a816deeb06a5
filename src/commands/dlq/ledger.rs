//! The replay ledger: which dead letters have been replayed to which topic.
//!
//! The ledger is a Kafka topic (`--ledger-topic`, default `<dlq-topic>-replays`). Each replay
//! transaction appends, per DLQ partition it replayed from, one [`LedgerEntry`]: the DLQ topic,
//! the target topic, the partition and the replayed offsets as ranges. The record key is the
//! target topic. A later replay reads the ledger and skips every letter already replayed *to
//! the same target*; replaying to another topic is a separate history. Since an entry lists the
//! offsets actually replayed, a replay of code A records nothing about the code-B letters in
//! between, and a later replay of code B (or of everything) still finds them.
//!
//! The ledger is tied to the DLQ topic's offsets: delete the ledger topic along with the DLQ
//! topic if the DLQ topic is ever deleted and created again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A set of offsets kept as disjoint, non-adjacent inclusive ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetSet {
    /// first → last (inclusive).
    ranges: BTreeMap<i64, i64>,
}

impl OffsetSet {
    /// Adds `first..=last`, merging with overlapping or adjacent ranges.
    pub fn insert_range(&mut self, first: i64, last: i64) {
        if last < first {
            return;
        }
        let (mut first, mut last) = (first, last);
        // The range starting at or before `first` that reaches it (or touches it).
        if let Some((&s, &e)) = self.ranges.range(..=first).next_back() {
            if e.saturating_add(1) >= first {
                first = s;
                last = last.max(e);
                self.ranges.remove(&s);
            }
        }
        // Ranges starting inside or right after the new one.
        let overlapping: Vec<(i64, i64)> = self
            .ranges
            .range(first..=last.saturating_add(1))
            .map(|(&s, &e)| (s, e))
            .collect();
        for (s, e) in overlapping {
            last = last.max(e);
            self.ranges.remove(&s);
        }
        self.ranges.insert(first, last);
    }

    /// Adds one offset.
    pub fn insert(&mut self, offset: i64) {
        self.insert_range(offset, offset);
    }

    /// Whether `offset` is in the set.
    pub fn contains(&self, offset: i64) -> bool {
        self.ranges
            .range(..=offset)
            .next_back()
            .is_some_and(|(_, &last)| offset <= last)
    }

    /// The ranges, in order, as `[first, last]` pairs.
    pub fn ranges(&self) -> Vec<[i64; 2]> {
        self.ranges.iter().map(|(&s, &e)| [s, e]).collect()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Number of offsets in the set.
    pub fn len(&self) -> u64 {
        self.ranges.iter().map(|(&s, &e)| (e - s + 1) as u64).sum()
    }
}

/// One ledger record: offsets of one DLQ partition replayed to one target in one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The DLQ topic replayed from.
    pub dlq_topic: String,
    /// The topic replayed to.
    pub target: String,
    /// The DLQ partition.
    pub partition: i32,
    /// Replayed offsets, `[first, last]` inclusive ranges.
    pub offsets: Vec<[i64; 2]>,
    /// When the transaction was written, ms since the epoch.
    pub replayed_at_ms: i64,
    /// The selection of the replay (see [`super::filter::Filter::describe`]).
    pub selection: String,
}

/// What the ledger says was replayed from one DLQ topic to one target, by DLQ partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    replayed: BTreeMap<i32, OffsetSet>,
    entries: u64,
    skipped: u64,
}

impl Ledger {
    /// Adds a ledger record's value if it is an entry for `dlq_topic` → `target`; values that
    /// are not entries are counted and skipped.
    pub fn add_json(&mut self, value: Option<&[u8]>, dlq_topic: &str, target: &str) {
        match value.and_then(|v| serde_json::from_slice::<LedgerEntry>(v).ok()) {
            Some(e) if e.dlq_topic == dlq_topic && e.target == target => {
                self.entries += 1;
                let set = self.replayed.entry(e.partition).or_default();
                for [first, last] in e.offsets {
                    set.insert_range(first, last);
                }
            }
            Some(_) => {}
            None => self.skipped += 1,
        }
    }

    /// Whether the letter at `partition`/`offset` was replayed.
    pub fn contains(&self, partition: i32, offset: i64) -> bool {
        self.replayed
            .get(&partition)
            .is_some_and(|s| s.contains(offset))
    }

    /// Records a replayed letter (so a chunk's entries can be built from it, and so the same
    /// run does not replay it twice).
    pub fn insert(&mut self, partition: i32, offset: i64) {
        self.replayed.entry(partition).or_default().insert(offset);
    }

    /// One entry per partition, for the letters in this ledger.
    pub fn entries(
        &self,
        dlq_topic: &str,
        target: &str,
        replayed_at_ms: i64,
        selection: &str,
    ) -> Vec<LedgerEntry> {
        self.replayed
            .iter()
            .filter(|(_, set)| !set.is_empty())
            .map(|(&partition, set)| LedgerEntry {
                dlq_topic: dlq_topic.to_owned(),
                target: target.to_owned(),
                partition,
                offsets: set.ranges(),
                replayed_at_ms,
                selection: selection.to_owned(),
            })
            .collect()
    }

    /// Letters recorded.
    pub fn len(&self) -> u64 {
        self.replayed.values().map(OffsetSet::len).sum()
    }

    /// Ledger records that were not entries (skipped).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn ranges_merge_when_they_touch_or_overlap() {
        let mut s = OffsetSet::default();
        s.insert(5);
        s.insert(7);
        assert_eq!(s.ranges(), vec![[5, 5], [7, 7]]);
        s.insert(6);
        assert_eq!(s.ranges(), vec![[5, 7]]);
        s.insert_range(0, 3);
        s.insert_range(10, 12);
        assert_eq!(s.ranges(), vec![[0, 3], [5, 7], [10, 12]]);
        s.insert_range(2, 10);
        assert_eq!(s.ranges(), vec![[0, 12]]);
        s.insert_range(9, 3);
        assert_eq!(s.len(), 13);
        assert!(s.contains(0) && s.contains(12) && !s.contains(13) && !s.contains(-1));
    }

    proptest! {
        #[test]
        fn set_holds_exactly_what_was_inserted(
            ranges in prop::collection::vec((0i64..200, 0i64..8), 0..40)
        ) {
            let mut s = OffsetSet::default();
            let mut plain = std::collections::BTreeSet::new();
            for (first, len) in ranges {
                s.insert_range(first, first + len);
                plain.extend(first..=first + len);
            }
            for o in -1..220 {
                prop_assert_eq!(s.contains(o), plain.contains(&o), "offset {}", o);
            }
            prop_assert_eq!(s.len(), plain.len() as u64);
            // Disjoint and not adjacent.
            let r = s.ranges();
            for w in r.windows(2) {
                prop_assert!(w[0][1] + 1 < w[1][0], "{:?}", r);
            }
        }
    }

    #[test]
    fn ledger_keeps_only_its_own_dlq_and_target() {
        let entry = |dlq: &str, target: &str, partition, offsets: Vec<[i64; 2]>| {
            serde_json::to_vec(&LedgerEntry {
                dlq_topic: dlq.into(),
                target: target.into(),
                partition,
                offsets,
                replayed_at_ms: 1,
                selection: "--code missing_field".into(),
            })
            .unwrap()
        };
        let mut l = Ledger::default();
        l.add_json(
            Some(&entry("dlq", "in", 0, vec![[0, 4], [8, 8]])),
            "dlq",
            "in",
        );
        l.add_json(Some(&entry("dlq", "other", 0, vec![[5, 7]])), "dlq", "in");
        l.add_json(Some(&entry("dlq2", "in", 1, vec![[0, 9]])), "dlq", "in");
        l.add_json(Some(b"garbage"), "dlq", "in");
        l.add_json(None, "dlq", "in");
        assert!(l.contains(0, 4) && l.contains(0, 8));
        assert!(!l.contains(0, 5), "replayed to another target");
        assert!(!l.contains(1, 0), "another DLQ topic");
        assert_eq!(l.len(), 6);
        assert_eq!(l.skipped(), 2);
        let entries = l.entries("dlq", "in", 9, "all");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].offsets, vec![[0, 4], [8, 8]]);
        // An entry read back is the entry written.
        let bytes = serde_json::to_vec(&entries[0]).unwrap();
        let mut again = Ledger::default();
        again.add_json(Some(&bytes), "dlq", "in");
        assert_eq!(again.entries("dlq", "in", 9, "all"), entries);
    }
}
