//! Merging the workers' windows into one insight record per window, and deciding when an input
//! record is done. Pure state machine, owned by the producer thread.
//!
//! # Completion
//!
//! An input record is *done* when its output (processed record or dead letter) is delivered
//! **and** the insight window it was counted in has been published and delivered; only then does
//! its offset become committable (see [`crate::offsets`]). So a crash never loses a record from
//! the insights (it may count it twice, like any output).
//!
//! A window can be published more than once (in *parts*): when a partition is revoked or the
//! pipeline stops, the workers flush their open windows early (marked partial) so the records
//! in them can be committed, and later events for the same window form a new part. A reader
//! adds up all records with the same window start.
//!
//! Each record is tagged, when the producer thread receives it, with the part of its window that
//! will include it: the number of parts already published. That is sound because a worker sends
//! a record before the report that closes (or flushes) its window, on the same channel, so the
//! report with the record's stats is always processed after the record was tagged.
//!
//! # When a window is published
//!
//! Every worker reports, with each batch of windows it closed, the time before which all its
//! windows are closed (`closed_before`). A window is ready when every worker's `closed_before`
//! is past its start, or when every worker has flushed for the latest flush request.

use std::collections::{BTreeMap, BTreeSet};

use crate::insights::window::WindowStats;
use crate::offsets::Epoch;
use crate::record::Source;

/// One publication of a window: what to send to the insights topic.
#[derive(Debug)]
pub struct Publication {
    /// Window start (the record key).
    pub window: u64,
    /// Which part of this window this is (0 for the first).
    pub part: u32,
    /// The merged stats of every worker.
    pub stats: WindowStats,
    /// Input partitions of the records counted in it.
    pub partitions: Vec<i32>,
}

#[derive(Debug, Default)]
struct WindowState {
    /// Parts published so far; records received now belong to part `started`.
    started: u32,
    /// Parts whose insight record has been delivered.
    delivered: BTreeSet<u32>,
    /// Stats reported for part `started`, not yet published.
    pending: Option<WindowStats>,
    /// Partitions of the records of part `started`.
    partitions: BTreeSet<i32>,
    /// Records whose output is delivered, waiting for their part: their offsets by part, input
    /// partition and assignment epoch. Eight bytes per held record (a list of `Source`s took
    /// 32): a busy stream holds every record of `--window` + `--allowed-lateness` here.
    held: BTreeMap<(u32, i32, Epoch), Vec<i64>>,
    /// Records in `held`.
    held_count: u64,
    /// Records tagged and not yet released.
    outstanding: u64,
}

impl WindowState {
    fn finished(&self) -> bool {
        self.outstanding == 0
            && self.pending.is_none()
            && self.delivered.len() as u32 == self.started
    }
}

/// See the module doc.
#[derive(Debug)]
pub struct WindowMerger {
    closed_before: Vec<u64>,
    flushed: Vec<u64>,
    /// The latest flush request whose windows have been published.
    applied_flush: u64,
    windows: BTreeMap<u64, WindowState>,
}

impl WindowMerger {
    /// A merger for `workers` workers.
    pub fn new(workers: usize) -> Self {
        WindowMerger {
            closed_before: vec![0; workers],
            flushed: vec![0; workers],
            applied_flush: 0,
            windows: BTreeMap::new(),
        }
    }

    /// A record counted in `window`, read from `partition`, arrived from a worker; returns the
    /// part that will include it.
    pub fn record_received(&mut self, window: u64, partition: i32) -> u32 {
        let state = self.windows.entry(window).or_default();
        state.outstanding += 1;
        state.partitions.insert(partition);
        state.started
    }

    /// A worker's report: the windows it closed, the time before which all its windows are
    /// closed, and the latest flush request it has carried out.
    pub fn report(
        &mut self,
        worker: usize,
        closed: Vec<WindowStats>,
        closed_before: u64,
        flushed: u64,
    ) {
        self.closed_before[worker] = closed_before;
        self.flushed[worker] = self.flushed[worker].max(flushed);
        for stats in closed {
            let state = self.windows.entry(stats.start).or_default();
            match &mut state.pending {
                Some(pending) => pending.merge(&stats),
                None => state.pending = Some(stats),
            }
        }
    }

    /// The windows that are ready, given the latest flush request (0: none yet).
    pub fn ready(&mut self, flush_request: u64) -> Vec<Publication> {
        let closed_before = self.closed_before.iter().copied().min().unwrap_or(0);
        let all_flushed =
            flush_request > self.applied_flush && self.flushed.iter().all(|&f| f >= flush_request);
        if all_flushed {
            self.applied_flush = flush_request;
        }
        let mut out = Vec::new();
        for (&window, state) in self.windows.iter_mut() {
            if !(all_flushed || window < closed_before) {
                continue;
            }
            if let Some(stats) = state.pending.take() {
                out.push(Publication {
                    window,
                    part: state.started,
                    stats,
                    partitions: std::mem::take(&mut state.partitions).into_iter().collect(),
                });
                state.started += 1;
            }
        }
        out
    }

    /// A record's output was delivered. Returns the source if the record is done now; otherwise
    /// it is held until its window part is delivered.
    pub fn output_delivered(&mut self, window: u64, part: u32, source: Source) -> Option<Source> {
        let Some(state) = self.windows.get_mut(&window) else {
            // Unknown window: it was never tagged here (cannot happen), so do not hold it.
            return Some(source);
        };
        if state.delivered.contains(&part) {
            state.outstanding -= 1;
            self.forget_if_finished(window);
            Some(source)
        } else {
            state
                .held
                .entry((part, source.partition, source.epoch))
                .or_default()
                .push(source.offset);
            state.held_count += 1;
            None
        }
    }

    /// The insight record of `window`'s `part` was delivered: returns the records now done.
    pub fn insight_delivered(&mut self, window: u64, part: u32) -> Vec<Source> {
        let Some(state) = self.windows.get_mut(&window) else {
            return Vec::new();
        };
        state.delivered.insert(part);
        let mut done = Vec::new();
        let keys: Vec<_> = state
            .held
            .range((part, i32::MIN, 0)..)
            .map(|(&k, _)| k)
            .collect();
        for key @ (p, partition, epoch) in keys {
            if !state.delivered.contains(&p) {
                continue;
            }
            let offsets = state.held.remove(&key).unwrap_or_default();
            done.extend(offsets.into_iter().map(|offset| Source {
                partition,
                offset,
                epoch,
            }));
        }
        state.held_count -= done.len() as u64;
        state.outstanding -= done.len() as u64;
        self.forget_if_finished(window);
        done
    }

    fn forget_if_finished(&mut self, window: u64) {
        if self.windows.get(&window).is_some_and(WindowState::finished) {
            self.windows.remove(&window);
        }
    }

    /// Records whose output is delivered but whose window is not yet.
    pub fn held(&self) -> usize {
        self.windows.values().map(|w| w.held_count as usize).sum()
    }

    /// Windows with stats waiting to be published.
    pub fn pending_windows(&self) -> usize {
        self.windows
            .values()
            .filter(|w| w.pending.is_some())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(offset: i64) -> Source {
        Source {
            partition: 0,
            offset,
            epoch: 1,
        }
    }

    fn stats(start: u64, received: u64) -> WindowStats {
        let mut s = WindowStats::new(start, start + 10);
        s.received = received;
        s
    }

    #[test]
    fn a_window_is_published_when_every_worker_has_closed_it() {
        let mut m = WindowMerger::new(2);
        assert_eq!(m.record_received(100, 0), 0);
        assert_eq!(m.record_received(100, 1), 0);
        m.report(0, vec![stats(100, 1)], 110, 0);
        assert!(m.ready(0).is_empty(), "worker 1 has not closed window 100");
        m.report(1, vec![stats(100, 1)], 120, 0);
        let published = m.ready(0);
        assert_eq!(published.len(), 1);
        assert_eq!(
            (
                published[0].window,
                published[0].part,
                published[0].stats.received
            ),
            (100, 0, 2)
        );
        assert_eq!(published[0].partitions, vec![0, 1]);
        assert!(m.ready(0).is_empty(), "published once");
    }

    #[test]
    fn a_record_is_done_only_when_output_and_window_are_delivered() {
        let mut m = WindowMerger::new(1);
        let part = m.record_received(100, 0);
        assert_eq!(
            m.output_delivered(100, part, src(7)),
            None,
            "window not published yet"
        );
        m.report(0, vec![stats(100, 1)], 110, 0);
        let p = m.ready(0).pop().unwrap();
        assert_eq!(m.held(), 1);
        assert_eq!(m.insight_delivered(p.window, p.part), vec![src(7)]);
        assert_eq!(m.held(), 0);
        assert!(m.windows.is_empty(), "finished window forgotten");
    }

    #[test]
    fn held_records_are_released_by_their_own_part_across_partitions_and_epochs() {
        let mut m = WindowMerger::new(1);
        let at = |partition, offset, epoch| Source {
            partition,
            offset,
            epoch,
        };
        // Part 0: three records from two partitions and two epochs; flushed and published.
        for p in [0, 1, 1] {
            assert_eq!(m.record_received(100, p), 0);
        }
        m.report(0, vec![stats(100, 3)], 0, 1);
        let p0 = m.ready(1).pop().unwrap();
        // Part 1: one record, published after a second flush.
        assert_eq!(m.record_received(100, 0), 1);
        m.report(0, vec![stats(100, 1)], 0, 2);
        let p1 = m.ready(2).pop().unwrap();
        assert_eq!((p0.part, p1.part), (0, 1));
        for (part, s) in [
            (0, at(1, 9, 2)),
            (0, at(0, 4, 1)),
            (1, at(0, 5, 1)),
            (0, at(1, 3, 1)),
        ] {
            assert_eq!(m.output_delivered(100, part, s), None);
        }
        assert_eq!(m.held(), 4);
        // Part 1's insight record is delivered first: only its record is done.
        assert_eq!(m.insight_delivered(100, 1), vec![at(0, 5, 1)]);
        assert_eq!(m.held(), 3);
        let mut done = m.insight_delivered(100, 0);
        done.sort_by_key(|s| (s.partition, s.offset));
        assert_eq!(done, vec![at(0, 4, 1), at(1, 3, 1), at(1, 9, 2)]);
        assert_eq!(m.held(), 0);
        assert!(m.windows.is_empty(), "finished window forgotten");
    }

    #[test]
    fn output_delivered_after_its_window_is_done_at_once() {
        let mut m = WindowMerger::new(1);
        let part = m.record_received(100, 0);
        m.report(0, vec![stats(100, 1)], 110, 0);
        let p = m.ready(0).pop().unwrap();
        assert!(m.insight_delivered(p.window, p.part).is_empty());
        assert_eq!(m.output_delivered(100, part, src(3)), Some(src(3)));
    }

    #[test]
    fn a_flush_publishes_open_windows_and_later_records_form_a_new_part() {
        let mut m = WindowMerger::new(2);
        let first = m.record_received(100, 0);
        m.report(0, vec![stats(100, 1)], 0, 1);
        assert!(m.ready(1).is_empty(), "worker 1 has not flushed yet");
        m.report(1, vec![], 0, 1);
        let p0 = m.ready(1).pop().unwrap();
        assert_eq!((p0.window, p0.part), (100, 0));
        // A record for the same window after the flush belongs to part 1.
        let second = m.record_received(100, 0);
        assert_eq!((first, second), (0, 1));
        assert_eq!(m.output_delivered(100, second, src(2)), None);
        assert_eq!(m.output_delivered(100, first, src(1)), None);
        assert_eq!(
            m.insight_delivered(100, 0),
            vec![src(1)],
            "part 0 releases only its record"
        );
        m.report(0, vec![stats(100, 1)], 110, 1);
        assert!(
            m.ready(1).is_empty(),
            "the flush was applied; worker 1 has not closed 100"
        );
        m.report(1, vec![], 110, 1);
        let p1 = m.ready(1).pop().unwrap();
        assert_eq!((p1.window, p1.part), (100, 1));
        assert_eq!(m.insight_delivered(100, 1), vec![src(2)]);
        assert!(m.windows.is_empty());
    }

    #[test]
    fn parts_delivered_out_of_order_release_only_their_records() {
        let mut m = WindowMerger::new(1);
        let a = m.record_received(100, 0);
        m.report(0, vec![stats(100, 1)], 0, 1);
        m.ready(1);
        let b = m.record_received(100, 0);
        m.report(0, vec![stats(100, 1)], 0, 2);
        m.ready(2);
        m.output_delivered(100, a, src(1));
        m.output_delivered(100, b, src(2));
        assert_eq!(m.insight_delivered(100, 1), vec![src(2)]);
        assert_eq!(m.insight_delivered(100, 0), vec![src(1)]);
    }

    #[test]
    fn windows_close_in_start_order_by_the_slowest_worker() {
        let mut m = WindowMerger::new(2);
        for w in [100, 110, 120] {
            m.record_received(w, 0);
        }
        m.report(0, vec![stats(100, 1), stats(110, 1), stats(120, 1)], 130, 0);
        m.report(1, vec![], 115, 0);
        let ready: Vec<u64> = m.ready(0).iter().map(|p| p.window).collect();
        assert_eq!(ready, vec![100, 110]);
        assert_eq!(m.pending_windows(), 1);
    }
}
