//! Out-of-order completion tracking: which input offsets may be committed.
//!
//! # The guarantee
//!
//! An input record is *done* when every output derived from it has been acknowledged by the
//! broker: its `processed_data` record or its dead letter. Workers and the producer finish
//! records out of order, so per partition the tracker keeps the offsets that have been handed
//! to the workers, in the order they were handed out, and marks them done as delivery reports
//! arrive. The committable position of a partition is the offset of the first record that is
//! *not* done (or, when every handed-out record is done, the last one + 1): Kafka's "next offset
//! to read". That is the only value the consumer stores, so:
//!
//! - **a stored (and so committed) offset never passes a record that is not done** — a record
//!   whose delivery failed, or is still in flight, holds the position of its partition back,
//!   however many later records are done;
//! - offsets need not be contiguous (compaction and transaction markers leave gaps): the
//!   tracker only orders the offsets it was given;
//! - after a crash, the records from the last committed position onward are read again
//!   (at-least-once: duplicates are possible, losses are not);
//! - each assignment of a partition has an *epoch*; completions carry the epoch of the
//!   assignment they were read under, and a completion for a revoked partition, or for an
//!   earlier assignment of it, changes nothing.
//!
//! The tracker is a pure state machine: no clock, no Kafka. The consumer thread owns it.

use std::collections::{BTreeMap, VecDeque};

/// Identifies one assignment of a partition to this consumer.
pub type Epoch = u64;

/// Per-partition completion state.
#[derive(Debug, Default)]
struct PartitionState {
    epoch: Epoch,
    /// Offsets handed out and not yet passed by the committable position, ascending, with their
    /// done flag. The front is never done (done fronts are popped at once).
    pending: VecDeque<(i64, bool)>,
    /// Position when `pending` is empty: the last handed-out offset + 1.
    next: Option<i64>,
    /// The last position reported by [`OffsetTracker::take_committable`].
    reported: Option<i64>,
}

impl PartitionState {
    fn committable(&self) -> Option<i64> {
        self.pending
            .front()
            .map(|&(offset, _)| offset)
            .or(self.next)
    }
}

/// Why a call to the tracker was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackError {
    /// The partition is not assigned.
    NotAssigned,
    /// The record was read under an earlier assignment of the partition.
    StaleEpoch,
    /// An offset was handed out that is not above the previous one.
    NotIncreasing {
        /// The previous offset.
        previous: i64,
        /// The offending offset.
        offset: i64,
    },
}

/// Tracks done offsets per partition of the input topic; see the module doc for the guarantee.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: BTreeMap<i32, PartitionState>,
    next_epoch: Epoch,
}

impl OffsetTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts tracking `partition` under a new epoch, which it returns. A partition that was
    /// already assigned starts over (its old in-flight records no longer count).
    pub fn assign(&mut self, partition: i32) -> Epoch {
        self.next_epoch += 1;
        let epoch = self.next_epoch;
        self.partitions.insert(
            partition,
            PartitionState {
                epoch,
                ..Default::default()
            },
        );
        epoch
    }

    /// The current epoch of `partition`, if assigned.
    pub fn epoch(&self, partition: i32) -> Option<Epoch> {
        self.partitions.get(&partition).map(|p| p.epoch)
    }

    /// Checks that [`OffsetTracker::track`] would accept `offset` of `partition`, read under
    /// `epoch`, without tracking it.
    pub fn check(&self, partition: i32, epoch: Epoch, offset: i64) -> Result<(), TrackError> {
        let state = self
            .partitions
            .get(&partition)
            .ok_or(TrackError::NotAssigned)?;
        if state.epoch != epoch {
            return Err(TrackError::StaleEpoch);
        }
        let previous = state
            .pending
            .back()
            .map(|&(o, _)| o)
            .or(state.next.map(|n| n - 1));
        match previous {
            Some(previous) if offset <= previous => {
                Err(TrackError::NotIncreasing { previous, offset })
            }
            _ => Ok(()),
        }
    }

    /// Records that `offset` of `partition` was handed to the workers. Offsets of a partition
    /// must be handed out in increasing order.
    pub fn track(&mut self, partition: i32, offset: i64) -> Result<Epoch, TrackError> {
        let epoch = self.epoch(partition).ok_or(TrackError::NotAssigned)?;
        self.track_read(partition, epoch, offset)?;
        Ok(epoch)
    }

    /// [`OffsetTracker::track`] for a record read under `epoch`: refused with
    /// [`TrackError::StaleEpoch`] when the partition has been reassigned since.
    pub fn track_read(
        &mut self,
        partition: i32,
        epoch: Epoch,
        offset: i64,
    ) -> Result<(), TrackError> {
        self.check(partition, epoch, offset)?;
        let state = self
            .partitions
            .get_mut(&partition)
            .ok_or(TrackError::NotAssigned)?;
        state.pending.push_back((offset, false));
        Ok(())
    }

    /// Takes back the most recent [`OffsetTracker::track`] of `partition` if it was `offset`
    /// (the record could not be handed out after all). Returns whether it did.
    pub fn untrack(&mut self, partition: i32, offset: i64) -> bool {
        let Some(state) = self.partitions.get_mut(&partition) else {
            return false;
        };
        if state.pending.back() == Some(&(offset, false)) {
            state.pending.pop_back();
            true
        } else {
            false
        }
    }

    /// Marks `offset` done. Returns false (and changes nothing) when the partition is not
    /// assigned, the epoch is not the current one, or the offset is not in flight.
    pub fn mark_done(&mut self, partition: i32, epoch: Epoch, offset: i64) -> bool {
        let Some(state) = self.partitions.get_mut(&partition) else {
            return false;
        };
        if state.epoch != epoch {
            return false;
        }
        let Ok(index) = state.pending.binary_search_by_key(&offset, |&(o, _)| o) else {
            return false;
        };
        if state.pending[index].1 {
            return false;
        }
        state.pending[index].1 = true;
        while let Some(&(front, true)) = state.pending.front() {
            state.pending.pop_front();
            state.next = Some(front + 1);
        }
        true
    }

    /// The position that may be committed for `partition`: the next offset to read, with every
    /// record below it done. `None` when nothing has been handed out since the assignment.
    pub fn committable(&self, partition: i32) -> Option<i64> {
        self.partitions
            .get(&partition)
            .and_then(PartitionState::committable)
    }

    /// The committable position of every assigned partition, ascending by partition.
    pub fn positions(&self) -> Vec<(i32, Option<i64>)> {
        self.partitions
            .iter()
            .map(|(&p, s)| (p, s.committable()))
            .collect()
    }

    /// Positions that moved since the last call, to be stored in the consumer.
    pub fn take_committable(&mut self) -> Vec<(i32, i64)> {
        let mut moved = Vec::new();
        for (&partition, state) in &mut self.partitions {
            if let Some(position) = state.committable() {
                if state.reported != Some(position) {
                    state.reported = Some(position);
                    moved.push((partition, position));
                }
            }
        }
        moved
    }

    /// Stops tracking `partition`; returns its final committable position. Later completions
    /// for it are ignored.
    pub fn revoke(&mut self, partition: i32) -> Option<i64> {
        self.partitions
            .remove(&partition)
            .and_then(|s| s.committable())
    }

    /// Records of `partition` handed out and not yet done.
    pub fn in_flight(&self, partition: i32) -> usize {
        self.partitions
            .get(&partition)
            .map_or(0, |s| s.pending.iter().filter(|&&(_, done)| !done).count())
    }

    /// Records handed out and not yet done, over all partitions.
    pub fn total_in_flight(&self) -> usize {
        self.partitions.keys().map(|&p| self.in_flight(p)).sum()
    }

    /// The assigned partitions, ascending.
    pub fn partitions(&self) -> impl Iterator<Item = i32> + '_ {
        self.partitions.keys().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nothing_handed_out_means_nothing_to_commit() {
        let mut t = OffsetTracker::new();
        t.assign(0);
        assert_eq!(t.committable(0), None);
        assert!(t.take_committable().is_empty());
    }

    #[test]
    fn position_advances_only_over_the_done_prefix() {
        let mut t = OffsetTracker::new();
        let e = t.assign(0);
        for o in 10..15 {
            t.track(0, o).unwrap();
        }
        assert_eq!(t.committable(0), Some(10));
        assert!(t.mark_done(0, e, 12));
        assert!(t.mark_done(0, e, 11));
        assert_eq!(
            t.committable(0),
            Some(10),
            "10 is not done, nothing may pass it"
        );
        assert!(t.mark_done(0, e, 10));
        assert_eq!(t.committable(0), Some(13));
        assert!(t.mark_done(0, e, 14));
        assert!(t.mark_done(0, e, 13));
        assert_eq!(
            t.committable(0),
            Some(15),
            "next offset to read = last done + 1"
        );
        assert_eq!(t.in_flight(0), 0);
    }

    #[test]
    fn a_failed_record_holds_the_position_back() {
        let mut t = OffsetTracker::new();
        let e = t.assign(3);
        for o in 0..100 {
            t.track(3, o).unwrap();
        }
        for o in (0..100).filter(|&o| o != 42) {
            t.mark_done(3, e, o);
        }
        assert_eq!(t.committable(3), Some(42));
        assert_eq!(t.in_flight(3), 1);
    }

    #[test]
    fn gaps_in_offsets_are_fine() {
        let mut t = OffsetTracker::new();
        let e = t.assign(0);
        for o in [5, 9, 20] {
            t.track(0, o).unwrap();
        }
        t.mark_done(0, e, 5);
        assert_eq!(t.committable(0), Some(9));
        t.mark_done(0, e, 20);
        t.mark_done(0, e, 9);
        assert_eq!(t.committable(0), Some(21));
    }

    #[test]
    fn offsets_must_increase() {
        let mut t = OffsetTracker::new();
        let e = t.assign(0);
        t.track(0, 7).unwrap();
        assert_eq!(
            t.track(0, 7),
            Err(TrackError::NotIncreasing {
                previous: 7,
                offset: 7
            })
        );
        t.mark_done(0, e, 7);
        assert_eq!(
            t.track(0, 3),
            Err(TrackError::NotIncreasing {
                previous: 7,
                offset: 3
            })
        );
        assert_eq!(t.track(1, 3), Err(TrackError::NotAssigned));
        assert_eq!(t.check(0, e, 8), Ok(()));
        assert_eq!(t.check(0, e + 1, 8), Err(TrackError::StaleEpoch));
    }

    #[test]
    fn a_read_is_tracked_under_its_epoch_and_can_be_taken_back() {
        let mut t = OffsetTracker::new();
        let old = t.assign(0);
        t.revoke(0);
        let e = t.assign(0);
        assert_eq!(t.track_read(0, old, 5), Err(TrackError::StaleEpoch));
        assert_eq!(t.track_read(0, e, 5), Ok(()));
        assert_eq!(t.in_flight(0), 1);
        // Only the most recent tracking, and only for that offset, is taken back.
        assert!(!t.untrack(0, 4));
        assert!(t.untrack(0, 5));
        assert!(!t.untrack(0, 5));
        assert_eq!(t.in_flight(0), 0);
        assert_eq!(
            t.track_read(0, e, 5),
            Ok(()),
            "the same offset can be tracked again"
        );
        t.mark_done(0, e, 5);
        assert!(!t.untrack(0, 5), "a done record is not taken back");
        assert_eq!(t.committable(0), Some(6));
    }

    #[test]
    fn revoked_partition_ignores_late_completions() {
        let mut t = OffsetTracker::new();
        let old = t.assign(0);
        t.track(0, 0).unwrap();
        t.track(0, 1).unwrap();
        t.mark_done(0, old, 0);
        assert_eq!(t.revoke(0), Some(1));
        assert!(!t.mark_done(0, old, 1), "partition is gone");
        let new = t.assign(0);
        assert_ne!(old, new);
        t.track(0, 1).unwrap();
        assert!(
            !t.mark_done(0, old, 1),
            "completion from the earlier assignment"
        );
        assert_eq!(t.committable(0), Some(1));
        assert!(t.mark_done(0, new, 1));
        assert_eq!(t.committable(0), Some(2));
    }

    #[test]
    fn double_completion_is_ignored() {
        let mut t = OffsetTracker::new();
        let e = t.assign(0);
        t.track(0, 0).unwrap();
        t.track(0, 1).unwrap();
        assert!(t.mark_done(0, e, 1));
        assert!(!t.mark_done(0, e, 1));
        assert!(!t.mark_done(0, e, 99));
        assert_eq!(t.committable(0), Some(0));
    }

    #[test]
    fn take_committable_reports_each_move_once() {
        let mut t = OffsetTracker::new();
        let e0 = t.assign(0);
        let e1 = t.assign(1);
        t.track(0, 0).unwrap();
        t.track(1, 0).unwrap();
        assert_eq!(t.take_committable(), vec![(0, 0), (1, 0)]);
        assert!(t.take_committable().is_empty());
        t.mark_done(1, e1, 0);
        assert_eq!(t.take_committable(), vec![(1, 1)]);
        t.mark_done(0, e0, 0);
        assert_eq!(t.take_committable(), vec![(0, 1)]);
        assert!(t.take_committable().is_empty());
    }

    proptest! {
        /// Whatever order records complete in, and whichever never complete, the committable
        /// position is exactly the first offset that is not done, and never passes one.
        #[test]
        fn committable_is_first_not_done_for_any_completion_order(
            gaps in proptest::collection::vec(1i64..4, 1..200),
            order in any::<proptest::sample::Index>(),
            completed_fraction in 0.0f64..=1.0,
            seed in any::<u64>(),
        ) {
            let mut t = OffsetTracker::new();
            let epoch = t.assign(0);
            let mut offsets = Vec::new();
            let mut o = order.index(1000) as i64;
            for g in &gaps {
                o += g;
                offsets.push(o);
                t.track(0, o).unwrap();
            }
            // A seeded shuffle of the completion order; a prefix of it completes.
            let mut completion = offsets.clone();
            let mut state = seed | 1;
            for i in (1..completion.len()).rev() {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                completion.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let done_count = (completion.len() as f64 * completed_fraction) as usize;
            let mut done = std::collections::BTreeSet::new();
            for &d in &completion[..done_count] {
                prop_assert!(t.mark_done(0, epoch, d));
                done.insert(d);
                let expected = offsets.iter().find(|o| !done.contains(o)).copied()
                    .unwrap_or(offsets.last().unwrap() + 1);
                prop_assert_eq!(t.committable(0), Some(expected));
                // Never past a record that is not done.
                prop_assert!(offsets.iter().filter(|&&o| o < expected).all(|o| done.contains(o)));
            }
            prop_assert_eq!(t.in_flight(0), offsets.len() - done_count);
        }
    }
}
