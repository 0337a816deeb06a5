//! The sink's pure part: which records of a batch are new, and how they merge into the stored
//! windows. No Kafka, no PostgreSQL: the store hands in what it read inside its transaction.
//!
//! - A batch holds records by (partition, offset), so a record fetched twice (a seek back
//!   after a rebalance while PostgreSQL was down) is held once.
//! - [`plan`] drops records below the partition's stored next offset (applied before, by this
//!   or another sink run: the exactly-once rule), parses the rest with
//!   [`InsightRecord::from_json`], and turns anything that is not an insight record into a
//!   [`Skip`] with its reason. The new next offsets cover skipped records too: a bad record
//!   is applied as a skip, once.
//! - [`WindowState::add`] merges a record into its window with [`merge_records`], as
//!   `kafka-pipeline insights` does: every record is an increment, and an exact re-send (same
//!   digest of the whole record) is dropped.

use std::collections::{BTreeMap, BTreeSet};

use crate::insights::hash::xxh64;
use crate::insights::{merge_records, InsightRecord};
use crate::transform::MAX_TIMESTAMP;

/// Largest count a single record may carry: 2^48 events in one window is far beyond any real
/// feed, and sums of many such records still fit PostgreSQL's bigint.
pub const MAX_COUNT: u64 = 1 << 48;

/// Records read from the insights topic and not yet applied, by (partition, offset).
#[derive(Debug, Default)]
pub struct Batch {
    records: BTreeMap<(i32, i64), Option<Vec<u8>>>,
}

impl Batch {
    /// Holds a record (a second copy of the same offset is ignored).
    pub fn insert(&mut self, partition: i32, offset: i64, payload: Option<&[u8]>) {
        self.records
            .entry((partition, offset))
            .or_insert_with(|| payload.map(<[u8]>::to_vec));
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The records, in (partition, offset) order.
    pub fn iter(&self) -> impl Iterator<Item = ((i32, i64), Option<&[u8]>)> {
        self.records.iter().map(|(&at, v)| (at, v.as_deref()))
    }

    /// The batch as one batch per record, in order (to find a record PostgreSQL refuses).
    pub fn singles(&self) -> Vec<((i32, i64), Batch)> {
        self.records
            .iter()
            .map(|(&at, v)| {
                let one = Batch {
                    records: BTreeMap::from([(at, v.clone())]),
                };
                (at, one)
            })
            .collect()
    }

    /// Drops everything (after the batch is committed).
    pub fn clear(&mut self) {
        self.records.clear();
    }
}

/// A record that is not an insight record, where it was and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// Partition of the insights topic.
    pub partition: i32,
    /// Offset in it.
    pub offset: i64,
    /// Why it was skipped.
    pub reason: String,
}

/// What a batch does to the store.
#[derive(Debug, Default)]
pub struct Plan {
    /// Records to merge, in (partition, offset) order.
    pub fresh: Vec<InsightRecord>,
    /// Records to skip.
    pub skipped: Vec<Skip>,
    /// Records below the stored next offset: applied before, ignored.
    pub replayed: u64,
    /// Next offset per partition after the batch (never below the stored one).
    pub offsets: BTreeMap<i32, i64>,
}

/// Sorts a batch into fresh records, skips and replays against the `stored` next offsets.
/// `reject` names records to skip whatever they hold (PostgreSQL refused them alone).
pub fn plan(
    batch: &Batch,
    stored: &BTreeMap<i32, i64>,
    reject: &BTreeMap<(i32, i64), String>,
) -> Plan {
    let mut plan = Plan {
        offsets: stored.clone(),
        ..Plan::default()
    };
    for ((partition, offset), payload) in batch.iter() {
        if stored.get(&partition).is_some_and(|&next| offset < next) {
            plan.replayed += 1;
            continue;
        }
        let next = plan.offsets.entry(partition).or_insert(0);
        *next = (*next).max(offset + 1);
        let skip = |reason: String| Skip {
            partition,
            offset,
            reason,
        };
        if let Some(reason) = reject.get(&(partition, offset)) {
            plan.skipped.push(skip(reason.clone()));
            continue;
        }
        match parse(payload) {
            Ok(record) => plan.fresh.push(record),
            Err(reason) => plan.skipped.push(skip(reason)),
        }
    }
    plan
}

/// Parses a record value and checks that it fits the table (times PostgreSQL can store,
/// counts that fit a bigint once summed).
fn parse(payload: Option<&[u8]>) -> Result<InsightRecord, String> {
    let bytes = payload.ok_or("null record value (tombstone)")?;
    let record = InsightRecord::from_json(bytes).map_err(|e| e.to_string())?;
    if record.window_end > MAX_TIMESTAMP {
        return Err(format!(
            "window end {} is past the year 9999",
            record.window_end
        ));
    }
    let counts = [
        record.received,
        record.missing_device_type,
        record.late_events,
        record.lag_ms.count,
    ];
    if counts.iter().any(|&n| n > MAX_COUNT) {
        return Err(format!("a count is above {MAX_COUNT}"));
    }
    Ok(record)
}

/// One window as stored: the merged record and the digests of the records merged into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowState {
    /// Every record of the window merged ([`merge_records`]).
    pub record: InsightRecord,
    /// Digests of the merged records (XXH64 of their JSON), to drop exact re-sends.
    pub digests: BTreeSet<u64>,
}

impl WindowState {
    /// The state of a window whose first record is `record`.
    pub fn new(record: InsightRecord) -> Self {
        let digests = BTreeSet::from([digest(&record)]);
        WindowState { record, digests }
    }

    /// Merges `record` (same window) unless an identical record was merged already; returns
    /// whether it was merged.
    pub fn add(&mut self, record: &InsightRecord) -> bool {
        if !self.digests.insert(digest(record)) {
            return false;
        }
        if let Some(merged) = merge_records([&self.record, record]) {
            self.record = merged;
        }
        true
    }

    /// Number of records merged.
    pub fn records(&self) -> usize {
        self.digests.len()
    }
}

/// The digest `kafka-pipeline insights` uses to recognise an exact re-send.
pub fn digest(record: &InsightRecord) -> u64 {
    xxh64(record.to_json().as_bytes(), 0)
}

/// Merges `fresh` records into `windows` (the stored states of the windows they touch, plus
/// new ones); returns the windows changed and the number of exact re-sends dropped.
pub fn merge_into(
    windows: &mut BTreeMap<u64, WindowState>,
    fresh: Vec<InsightRecord>,
) -> (BTreeSet<u64>, u64) {
    let mut changed = BTreeSet::new();
    let mut duplicates = 0;
    for record in fresh {
        let start = record.window_start;
        match windows.get_mut(&start) {
            Some(state) => {
                if state.add(&record) {
                    changed.insert(start);
                } else {
                    duplicates += 1;
                }
            }
            None => {
                windows.insert(start, WindowState::new(record));
                changed.insert(start);
            }
        }
    }
    (changed, duplicates)
}

#[cfg(test)]
mod tests;
