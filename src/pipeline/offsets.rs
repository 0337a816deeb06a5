//! Commit epochs: which input offsets may be committed, and when.
//!
//! # The guarantee
//!
//! An input record is *done* when every output derived from it has been acknowledged by the
//! broker: its `processed_data` record or its dead letter, **and** the insight delta that counts
//! it. The consumer thread hands records out in batches and groups them into *commit epochs*:
//! every `--commit-interval` (default 1 s) it closes the open epoch and starts the next. The
//! producer thread reports an epoch *complete* once every record handed out in it and every
//! worker's insight delta for it are delivered (at-least-once), or once the transaction that
//! carries them has committed (exactly-once). Epochs complete in any order; the tracker commits
//! only over the contiguous prefix of complete epochs, and per partition it stores the position
//! at the end of the newest epoch of that prefix: the *next offset to read* (the last offset
//! handed out + 1), with every record below it done. So:
//!
//! - **a committed offset never passes a record that is not done**: a record whose delivery
//!   fails, or is still in flight, keeps its epoch incomplete, and with it every later epoch's
//!   positions;
//! - no record waits for its insight window to close: commits trail the input by about one
//!   interval, and after a crash about one or two intervals of input are processed again
//!   (at-least-once: duplicates are possible, losses are not);
//! - offsets need not be contiguous (compaction and transaction markers leave gaps): the
//!   tracker only keeps the last offset handed out per partition;
//! - each assignment of a partition has a *generation*; records are handed out under it, and an
//!   epoch that completes after the partition was revoked (or revoked and assigned again)
//!   commits nothing for it. Exactly-once commits in the producer's transaction, which checks
//!   the same thing at commit time ([`ClosedEpoch::positions`] carry the generation): a
//!   transaction holding records of a partition lost meanwhile is aborted, not committed;
//! - a [`OffsetTracker::rewind`] (exactly-once, after an aborted transaction) forgets every
//!   epoch that is not complete and starts new generations at the committable positions.
//!
//! The tracker is a pure state machine: no clock, no Kafka; it keeps a few numbers per
//! partition and per open epoch, never one entry per record. The consumer thread owns it.

use std::collections::BTreeMap;

pub use crate::pipeline::messages::{Epoch, Generation};

/// Per-partition state.
#[derive(Debug, Default)]
struct PartitionState {
    generation: Generation,
    /// Next offset after the last one handed out.
    handed_out: Option<i64>,
    /// Position at the end of the newest complete epoch.
    committable: Option<i64>,
    /// The last position reported by [`OffsetTracker::take_committable`].
    reported: Option<i64>,
    /// Records handed out and not yet in a complete epoch.
    in_flight: u64,
    /// The first offset handed out under this generation (where a rewind resumes when nothing
    /// is complete yet).
    first: Option<i64>,
}

/// What one epoch handed out, per partition: generation, position at its end, records.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct EpochRecord {
    records: u64,
    partitions: Vec<(i32, Generation, i64, u64)>,
    complete: bool,
}

/// Why a hand-out was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackError {
    /// The partition is not assigned.
    NotAssigned,
    /// The records were read under an earlier assignment of the partition.
    StaleGeneration,
    /// Offsets were handed out that are not above the previous ones.
    NotIncreasing {
        /// The next offset expected at least.
        next: i64,
        /// The offending (last) offset.
        offset: i64,
    },
}

/// A closed epoch, as the consumer reports it to the producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedEpoch {
    /// The epoch.
    pub epoch: Epoch,
    /// Records handed out in it.
    pub records: u64,
    /// Each partition handed out in it: partition, the generation its records were read
    /// under, and the next offset to read (exactly-once commits a position only while that
    /// generation is still the partition's).
    pub positions: Vec<(i32, Generation, i64)>,
}

/// See the module doc.
#[derive(Debug)]
pub struct OffsetTracker {
    partitions: BTreeMap<i32, PartitionState>,
    next_generation: Generation,
    open_epoch: Epoch,
    open: EpochRecord,
    /// Closed epochs not yet passed by the complete prefix.
    closed: BTreeMap<Epoch, EpochRecord>,
}

impl Default for OffsetTracker {
    fn default() -> Self {
        OffsetTracker {
            partitions: BTreeMap::new(),
            next_generation: 0,
            open_epoch: 1,
            open: EpochRecord::default(),
            closed: BTreeMap::new(),
        }
    }
}

impl OffsetTracker {
    /// An empty tracker; the first epoch is 1.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts tracking `partition` under a new generation, which it returns. A partition that
    /// was already assigned starts over.
    pub fn assign(&mut self, partition: i32) -> Generation {
        self.next_generation += 1;
        let generation = self.next_generation;
        self.partitions.insert(
            partition,
            PartitionState {
                generation,
                ..Default::default()
            },
        );
        generation
    }

    /// The current generation of `partition`, if assigned.
    pub fn generation(&self, partition: i32) -> Option<Generation> {
        self.partitions.get(&partition).map(|p| p.generation)
    }

    /// The open epoch: records handed out now belong to it.
    pub fn open_epoch(&self) -> Epoch {
        self.open_epoch
    }

    /// Records that `count` records of `partition` up to `last_offset`, read under
    /// `generation`, were handed out in the open epoch. Offsets of a partition must be handed
    /// out in increasing order.
    pub fn hand_out(
        &mut self,
        partition: i32,
        generation: Generation,
        last_offset: i64,
        count: u64,
    ) -> Result<(), TrackError> {
        self.hand_out_from(partition, generation, last_offset, last_offset, count)
    }

    /// [`OffsetTracker::hand_out`] of records from `first_offset` to `last_offset`.
    pub fn hand_out_from(
        &mut self,
        partition: i32,
        generation: Generation,
        first_offset: i64,
        last_offset: i64,
        count: u64,
    ) -> Result<(), TrackError> {
        self.check_hand_out(partition, generation, last_offset)?;
        let state = self
            .partitions
            .get_mut(&partition)
            .ok_or(TrackError::NotAssigned)?;
        state.handed_out = Some(last_offset + 1);
        state.in_flight += count;
        state.first.get_or_insert(first_offset);
        self.open.records += count;
        match self
            .open
            .partitions
            .iter_mut()
            .find(|(p, g, _, _)| *p == partition && *g == generation)
        {
            Some(entry) => {
                entry.2 = last_offset + 1;
                entry.3 += count;
            }
            None => self
                .open
                .partitions
                .push((partition, generation, last_offset + 1, count)),
        }
        Ok(())
    }

    /// Whether records of `partition` up to `last_offset`, read under `generation`, may be
    /// handed out now (the consumer asks before it sends them, so that what the workers get is
    /// always tracked).
    pub fn check_hand_out(
        &self,
        partition: i32,
        generation: Generation,
        last_offset: i64,
    ) -> Result<(), TrackError> {
        let state = self
            .partitions
            .get(&partition)
            .ok_or(TrackError::NotAssigned)?;
        if state.generation != generation {
            return Err(TrackError::StaleGeneration);
        }
        match state.handed_out {
            Some(next) if last_offset < next => Err(TrackError::NotIncreasing {
                next,
                offset: last_offset,
            }),
            _ => Ok(()),
        }
    }

    /// Closes the open epoch (also when it is empty) and opens the next.
    pub fn close_epoch(&mut self) -> ClosedEpoch {
        let epoch = self.open_epoch;
        let record = std::mem::take(&mut self.open);
        let closed = ClosedEpoch {
            epoch,
            records: record.records,
            positions: record
                .partitions
                .iter()
                .map(|&(p, g, position, _)| (p, g, position))
                .collect(),
        };
        self.closed.insert(epoch, record);
        self.open_epoch += 1;
        closed
    }

    /// Epoch `epoch` is complete. Returns false (and changes nothing) for an epoch that is not
    /// closed or already complete. Positions move once every earlier epoch is complete too.
    pub fn complete(&mut self, epoch: Epoch) -> bool {
        match self.closed.get_mut(&epoch) {
            Some(record) if !record.complete => record.complete = true,
            _ => return false,
        }
        while let Some(entry) = self.closed.first_entry() {
            if !entry.get().complete {
                break;
            }
            for (partition, generation, position, count) in entry.remove().partitions {
                if let Some(state) = self.partitions.get_mut(&partition) {
                    if state.generation == generation {
                        state.committable = Some(position);
                        state.in_flight -= count;
                    }
                }
            }
        }
        true
    }

    /// Whether every epoch up to `epoch` is closed and complete.
    pub fn complete_through(&self, epoch: Epoch) -> bool {
        epoch < self.open_epoch
            && self
                .closed
                .first_key_value()
                .is_none_or(|(&e, _)| e > epoch)
    }

    /// The newest closed epoch, if any was closed.
    pub fn last_closed(&self) -> Option<Epoch> {
        self.open_epoch.checked_sub(1).filter(|&e| e > 0)
    }

    /// The position that may be committed for `partition`: the next offset to read, with every
    /// record below it done. `None` when nothing has completed since the assignment.
    pub fn committable(&self, partition: i32) -> Option<i64> {
        self.partitions.get(&partition).and_then(|s| s.committable)
    }

    /// The committable position of every assigned partition, ascending by partition.
    pub fn positions(&self) -> Vec<(i32, Option<i64>)> {
        self.partitions
            .iter()
            .map(|(&p, s)| (p, s.committable))
            .collect()
    }

    /// Positions that moved since the last call, to be committed.
    pub fn take_committable(&mut self) -> Vec<(i32, i64)> {
        let mut moved = Vec::new();
        for (&partition, state) in &mut self.partitions {
            if let Some(position) = state.committable {
                if state.reported != Some(position) {
                    state.reported = Some(position);
                    moved.push((partition, position));
                }
            }
        }
        moved
    }

    /// The commit of `positions` (from [`OffsetTracker::take_committable`]) failed: they are
    /// reported again by the next call, so a failed commit is retried even when no new epoch
    /// completes (an idle input).
    pub fn commit_failed(&mut self, positions: &[(i32, i64)]) {
        for &(partition, position) in positions {
            if let Some(state) = self.partitions.get_mut(&partition) {
                if state.reported == Some(position) {
                    state.reported = None;
                }
            }
        }
    }

    /// Stops tracking `partition`; returns its final committable position. Epochs that
    /// complete later commit nothing for it.
    pub fn revoke(&mut self, partition: i32) -> Option<i64> {
        self.partitions
            .remove(&partition)
            .and_then(|s| s.committable)
    }

    /// Forgets everything handed out since the last complete epoch (exactly-once: its
    /// transaction was aborted): every partition starts a new generation at its committable
    /// position (so records of the old one that are still in flight commit nothing), no epoch
    /// is open or closed, and epoch numbers go on. Returns where each partition's reading
    /// resumes: its committable position, else the first offset handed out since the
    /// assignment (`None`: nothing handed out).
    pub fn rewind(&mut self) -> Vec<(i32, Option<i64>)> {
        self.open = EpochRecord::default();
        self.closed.clear();
        let mut positions = Vec::new();
        for (&partition, state) in &mut self.partitions {
            self.next_generation += 1;
            let resume = state.committable.or(state.first);
            *state = PartitionState {
                generation: self.next_generation,
                committable: state.committable,
                reported: state.reported,
                first: resume,
                ..Default::default()
            };
            positions.push((partition, resume));
        }
        positions
    }

    /// Records of `partition` handed out and not yet in a complete epoch.
    pub fn in_flight(&self, partition: i32) -> u64 {
        self.partitions.get(&partition).map_or(0, |s| s.in_flight)
    }

    /// Records handed out and not yet in a complete epoch, over the assigned partitions.
    pub fn total_in_flight(&self) -> u64 {
        self.partitions.values().map(|s| s.in_flight).sum()
    }

    /// Closed epochs not yet passed by the complete prefix.
    pub fn pending_epochs(&self) -> usize {
        self.closed.len()
    }

    /// The assigned partitions, ascending.
    pub fn partitions(&self) -> impl Iterator<Item = i32> + '_ {
        self.partitions.keys().copied()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn nothing_complete_means_nothing_to_commit() {
        let mut t = OffsetTracker::new();
        let g = t.assign(0);
        t.hand_out(0, g, 9, 10).unwrap();
        assert_eq!(t.committable(0), None);
        assert!(t.take_committable().is_empty());
        assert_eq!(t.in_flight(0), 10);
        let closed = t.close_epoch();
        assert_eq!(
            closed,
            ClosedEpoch {
                epoch: 1,
                records: 10,
                positions: vec![(0, 1, 10)]
            }
        );
        assert_eq!(t.committable(0), None, "closed is not complete");
    }

    #[test]
    fn a_rewind_forgets_what_is_not_complete_and_starts_new_generations() {
        let mut t = OffsetTracker::new();
        let g0 = t.assign(0);
        let g1 = t.assign(1);
        t.hand_out(0, g0, 9, 10).unwrap();
        let first = t.close_epoch().epoch;
        assert!(t.complete(first));
        t.hand_out(0, g0, 19, 10).unwrap();
        t.hand_out(1, g1, 4, 5).unwrap();
        let second = t.close_epoch().epoch;
        t.hand_out(0, g0, 29, 10).unwrap();
        assert_eq!(t.rewind(), vec![(0, Some(10)), (1, Some(4))]);
        assert_eq!(t.total_in_flight(), 0);
        assert_ne!(t.generation(0), Some(g0), "a new generation");
        assert!(!t.complete(second), "the closed epoch is forgotten");
        assert!(t.complete_through(second));
        assert_eq!(t.open_epoch(), second + 1, "epoch numbers go on");
        assert_eq!(
            t.hand_out(0, g0, 39, 10),
            Err(TrackError::StaleGeneration),
            "records read before the rewind are refused"
        );
        let g = t.generation(0).unwrap();
        t.hand_out(0, g, 19, 10).unwrap();
        let third = t.close_epoch().epoch;
        assert!(t.complete(third));
        assert_eq!(t.committable(0), Some(20));
    }

    #[test]
    fn a_failed_commit_is_reported_again() {
        let mut t = OffsetTracker::new();
        let g = t.assign(0);
        t.hand_out(0, g, 9, 10).unwrap();
        let e = t.close_epoch().epoch;
        t.complete(e);
        let moved = t.take_committable();
        assert_eq!(moved, vec![(0, 10)]);
        assert!(t.take_committable().is_empty(), "reported once");
        t.commit_failed(&moved);
        assert_eq!(
            t.take_committable(),
            vec![(0, 10)],
            "retried with no new epoch"
        );
    }

    #[test]
    fn a_complete_epoch_commits_the_next_offset_after_its_last_record() {
        let mut t = OffsetTracker::new();
        let g = t.assign(0);
        t.hand_out(0, g, 4, 5).unwrap();
        t.hand_out(0, g, 9, 5).unwrap();
        let e = t.close_epoch().epoch;
        assert!(t.complete(e));
        assert_eq!(t.committable(0), Some(10));
        assert_eq!(t.take_committable(), vec![(0, 10)]);
        assert!(t.take_committable().is_empty(), "reported once");
        assert_eq!(t.in_flight(0), 0);
        assert!(!t.complete(e), "twice changes nothing");
    }

    #[test]
    fn a_later_epoch_waits_for_every_earlier_one() {
        let mut t = OffsetTracker::new();
        let g0 = t.assign(0);
        let g1 = t.assign(1);
        t.hand_out(0, g0, 99, 100).unwrap();
        let e1 = t.close_epoch().epoch;
        t.hand_out(0, g0, 199, 100).unwrap();
        t.hand_out(1, g1, 49, 50).unwrap();
        let e2 = t.close_epoch().epoch;
        assert!(t.complete(e2));
        assert_eq!(
            t.positions(),
            vec![(0, None), (1, None)],
            "epoch 1 holds both back"
        );
        assert!(!t.complete_through(e2));
        assert!(t.complete(e1));
        assert_eq!(t.positions(), vec![(0, Some(200)), (1, Some(50))]);
        assert!(t.complete_through(e2));
        assert_eq!(t.total_in_flight(), 0);
    }

    #[test]
    fn an_epoch_that_never_completes_holds_every_position_back() {
        let mut t = OffsetTracker::new();
        let g = t.assign(3);
        let mut epochs = Vec::new();
        for i in 0..5 {
            t.hand_out(3, g, i * 10 + 9, 10).unwrap();
            epochs.push(t.close_epoch().epoch);
        }
        for &e in &epochs[1..] {
            t.complete(e);
        }
        assert_eq!(t.committable(3), None);
        assert_eq!(t.in_flight(3), 50);
        assert_eq!(t.pending_epochs(), 5);
    }

    #[test]
    fn gaps_in_offsets_are_fine_and_offsets_must_increase() {
        let mut t = OffsetTracker::new();
        let g = t.assign(0);
        t.hand_out(0, g, 5, 1).unwrap();
        t.hand_out(0, g, 20, 2).unwrap();
        assert_eq!(
            t.hand_out(0, g, 20, 1),
            Err(TrackError::NotIncreasing {
                next: 21,
                offset: 20
            })
        );
        assert_eq!(t.hand_out(1, g, 3, 1), Err(TrackError::NotAssigned));
        assert_eq!(
            t.hand_out(0, g + 1, 30, 1),
            Err(TrackError::StaleGeneration)
        );
        let e = t.close_epoch().epoch;
        t.complete(e);
        assert_eq!(t.committable(0), Some(21));
    }

    #[test]
    fn an_epoch_completing_after_a_revoke_commits_nothing_for_the_partition() {
        let mut t = OffsetTracker::new();
        let old = t.assign(0);
        t.hand_out(0, old, 9, 10).unwrap();
        let e1 = t.close_epoch().epoch;
        assert_eq!(t.revoke(0), None);
        let new = t.assign(0);
        assert_ne!(old, new);
        assert_eq!(t.hand_out(0, old, 19, 10), Err(TrackError::StaleGeneration));
        t.hand_out(0, new, 4, 5).unwrap();
        let e2 = t.close_epoch().epoch;
        assert!(t.complete(e1));
        assert_eq!(t.committable(0), None, "epoch 1 was the old assignment's");
        assert_eq!(t.in_flight(0), 5, "only the new assignment's records count");
        assert!(t.complete(e2));
        assert_eq!(t.committable(0), Some(5));
    }

    #[test]
    fn empty_epochs_close_and_complete() {
        let mut t = OffsetTracker::new();
        assert_eq!(t.last_closed(), None);
        let c = t.close_epoch();
        assert_eq!((c.epoch, c.records), (1, 0));
        assert_eq!(t.last_closed(), Some(1));
        assert!(!t.complete_through(1));
        assert!(t.complete(1));
        assert!(t.complete_through(1));
        assert!(!t.complete_through(2), "epoch 2 is open");
    }

    proptest! {
        /// Whatever order epochs complete in, and whichever never complete, the committed
        /// position of each partition is the end of the newest epoch of the complete prefix,
        /// and never passes a record of an incomplete epoch.
        #[test]
        fn committable_is_the_end_of_the_complete_prefix(
            sizes in proptest::collection::vec((0i64..3, 0u64..50), 1..40),
            seed in any::<u64>(),
            completed_fraction in 0.0f64..=1.0,
        ) {
            let mut t = OffsetTracker::new();
            let gens = [t.assign(0), t.assign(1), t.assign(2)];
            let mut next = [0i64; 3];
            // (epoch, partition, first offset, end) of every hand-out.
            let mut handed = Vec::new();
            for (partition, count) in &sizes {
                let p = *partition as usize;
                if *count > 0 {
                    let first = next[p];
                    next[p] += *count as i64 + 1; // gaps of one offset
                    t.hand_out(p as i32, gens[p], next[p] - 1, *count).unwrap();
                    handed.push((t.open_epoch(), p, first, next[p]));
                }
                if seed % 3 != 0 || *count % 2 == 0 {
                    t.close_epoch();
                }
            }
            let last = t.close_epoch().epoch;
            let mut order: Vec<Epoch> = (1..=last).collect();
            let mut state = seed | 1;
            for i in (1..order.len()).rev() {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                order.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let done_count = (order.len() as f64 * completed_fraction) as usize;
            let mut done = std::collections::BTreeSet::new();
            for &e in &order[..done_count] {
                prop_assert!(t.complete(e));
                done.insert(e);
                let prefix = (1..=last).take_while(|e| done.contains(e)).last().unwrap_or(0);
                for p in 0..3 {
                    let expected = handed.iter().filter(|h| h.1 == p && h.0 <= prefix).map(|h| h.3).max();
                    prop_assert_eq!(t.committable(p as i32), expected);
                    if let Some(position) = expected {
                        // Every record below it belongs to a complete epoch.
                        prop_assert!(handed.iter().filter(|h| h.1 == p && h.2 < position).all(|h| done.contains(&h.0)));
                    }
                }
            }
        }
    }
}
