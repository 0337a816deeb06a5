//! The producer thread's account of each commit epoch: merging the workers' insight deltas
//! into one insight record per window and epoch, and deciding when an epoch is complete. Pure
//! state machine, owned by the producer thread.
//!
//! # Completion
//!
//! Epoch `k` is *complete* when
//! 1. the consumer has closed it and said how many records it handed out in it
//!    ([`EpochMerger::closed`]);
//! 2. every one of those records' outputs (processed record or dead letter) is delivered
//!    ([`EpochMerger::delivered`]);
//! 3. every worker has reported that it can receive no more records of epoch `k` (its
//!    `finished_through` is at least `k`), so every delta that counts a record of `k` has
//!    arrived; the merged deltas of `k` have been published and every one of those insight
//!    records is delivered ([`EpochMerger::insights_delivered`]).
//!
//! Only then may the consumer commit `k`'s positions (see [`crate::pipeline::offsets`]). Nothing here
//! waits for a window to close: an epoch completes about one delivery round trip after the
//! workers have seen its end.
//!
//! # Deltas and final records
//!
//! A worker reports, per epoch, what each window gained ([`WorkerDelta`]). Epoch `k`'s
//! publication is one record per window with news in `k` (the merge over workers), published in
//! epoch order. A reader adds up every record of a window, across epochs and instances. A
//! window's record is marked *final* in the first publication after every worker has closed it
//! (each worker reports, with its delta, the time before which all its windows are closed, as
//! of that epoch); a window that was published before and has no news then gets an empty final
//! record. So every window ends with exactly one final record per instance (unless the instance
//! stops first: its last records then stay partial).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::insights::window::WindowStats;
use crate::pipeline::messages::{Epoch, WorkerDelta};

/// One insight record to publish for an epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// Window start (the record key).
    pub window: u64,
    /// What the epoch added to the window (merged over workers).
    pub stats: WindowStats,
    /// Input partitions of the records counted in it.
    pub partitions: Vec<i32>,
    /// The last record of this window from this instance.
    pub is_final: bool,
}

#[derive(Debug, Default)]
struct EpochState {
    /// Records handed out in the epoch, once the consumer has closed it.
    expected: Option<u64>,
    /// Outputs received from the workers.
    received: u64,
    /// Outputs delivered.
    delivered: u64,
    /// Merged deltas by window start.
    windows: BTreeMap<u64, WindowStats>,
    partitions: BTreeSet<i32>,
    published: bool,
    /// Insight records published and not yet delivered.
    insights_outstanding: u64,
}

/// A worker's `finished_through` reports, with the `closed_before` that holds from then on.
#[derive(Debug, Default)]
struct WorkerReports {
    finished_through: Epoch,
    /// (finished_through, closed_before) in report order.
    reports: VecDeque<(Epoch, u64)>,
}

impl WorkerReports {
    /// The time before which this worker's windows are closed as of its report covering
    /// `epoch` (it has reported up to at least `epoch`).
    fn closed_before_at(&self, epoch: Epoch) -> u64 {
        self.reports
            .iter()
            .find(|&&(through, _)| through >= epoch)
            .map_or(0, |&(_, closed)| closed)
    }

    fn forget_before(&mut self, epoch: Epoch) {
        // Keep the first report that still covers `epoch`.
        while self.reports.len() > 1 && self.reports[0].0 < epoch {
            self.reports.pop_front();
        }
    }
}

/// See the module doc.
#[derive(Debug)]
pub struct EpochMerger {
    workers: Vec<WorkerReports>,
    epochs: BTreeMap<Epoch, EpochState>,
    /// Every epoch up to this one has been published.
    published_through: Epoch,
    /// Windows published at least once and not final yet.
    unfinished: BTreeMap<u64, WindowStats>,
}

impl EpochMerger {
    /// A merger for `workers` workers.
    pub fn new(workers: usize) -> Self {
        EpochMerger {
            workers: (0..workers).map(|_| WorkerReports::default()).collect(),
            epochs: BTreeMap::new(),
            published_through: 0,
            unfinished: BTreeMap::new(),
        }
    }

    /// A merger whose first epoch is `first` (the stages started again after a rewind, with
    /// epoch numbers going on).
    pub fn starting_at(workers: usize, first: Epoch) -> Self {
        EpochMerger {
            published_through: first.saturating_sub(1),
            ..Self::new(workers)
        }
    }

    fn epoch(&mut self, epoch: Epoch) -> &mut EpochState {
        self.epochs.entry(epoch).or_default()
    }

    /// The consumer closed `epoch` after handing out `records` records in it.
    pub fn closed(&mut self, epoch: Epoch, records: u64) {
        self.epoch(epoch).expected = Some(records);
    }

    /// A worker sent `outputs` outputs of `epoch`.
    pub fn received(&mut self, epoch: Epoch, outputs: u64) {
        self.epoch(epoch).received += outputs;
    }

    /// `outputs` outputs of `epoch` were delivered (an epoch already forgotten is ignored).
    pub fn delivered(&mut self, epoch: Epoch, outputs: u64) {
        if let Some(state) = self.epochs.get_mut(&epoch) {
            state.delivered += outputs;
        }
    }

    /// `n` insight records of `epoch` were delivered.
    pub fn insights_delivered(&mut self, epoch: Epoch, n: u64) {
        if let Some(state) = self.epochs.get_mut(&epoch) {
            state.insights_outstanding = state.insights_outstanding.saturating_sub(n);
        }
    }

    /// Forgets `epoch` (exactly-once: its transaction committed, which is its completion).
    pub fn forget(&mut self, epoch: Epoch) {
        self.epochs.remove(&epoch);
    }

    /// A worker's delta.
    pub fn delta(&mut self, delta: WorkerDelta) {
        let reports = &mut self.workers[delta.worker];
        reports.finished_through = reports.finished_through.max(delta.finished_through);
        reports
            .reports
            .push_back((delta.finished_through, delta.closed_before));
        if delta.windows.is_empty() && delta.partitions.is_empty() {
            return;
        }
        let state = self.epoch(delta.epoch);
        state.partitions.extend(delta.partitions);
        for stats in delta.windows {
            match state.windows.get_mut(&stats.start) {
                Some(merged) => merged.merge(&stats),
                None => {
                    state.windows.insert(stats.start, stats);
                }
            }
        }
    }

    /// Whether every output of `epoch` has arrived from the workers (its transaction can end
    /// once it is also published).
    pub fn fully_received(&self, epoch: Epoch) -> bool {
        self.epochs
            .get(&epoch)
            .is_some_and(|s| s.expected == Some(s.received))
    }

    /// The next epoch that can be published: closed by the consumer, every worker finished
    /// with it, and every earlier epoch published.
    pub fn next_publishable(&self) -> Option<Epoch> {
        let next = self.published_through + 1;
        let closed = self.epochs.get(&next).is_some_and(|s| s.expected.is_some());
        let finished = self.workers.iter().all(|w| w.finished_through >= next);
        (closed && finished).then_some(next)
    }

    /// Publishes `epoch` (which must be [`EpochMerger::next_publishable`]): its insight records,
    /// final ones marked. The caller sends them and reports their delivery.
    pub fn publish(&mut self, epoch: Epoch) -> Vec<Publication> {
        debug_assert_eq!(self.next_publishable(), Some(epoch));
        let closed_before = self
            .workers
            .iter()
            .map(|w| w.closed_before_at(epoch))
            .min()
            .unwrap_or(0);
        for w in &mut self.workers {
            w.forget_before(epoch + 1);
        }
        self.published_through = epoch;
        let state = self.epochs.entry(epoch).or_default();
        let partitions: Vec<i32> = std::mem::take(&mut state.partitions).into_iter().collect();
        let mut out = Vec::new();
        for (window, stats) in std::mem::take(&mut state.windows) {
            let is_final = window < closed_before;
            if is_final {
                self.unfinished.remove(&window);
            } else {
                self.unfinished
                    .insert(window, WindowStats::new(stats.start, stats.end));
            }
            out.push(Publication {
                window,
                stats,
                partitions: partitions.clone(),
                is_final,
            });
        }
        // Windows with no news in this epoch that every worker has now closed.
        let done: Vec<u64> = self
            .unfinished
            .range(..closed_before)
            .map(|(&w, _)| w)
            .collect();
        for window in done {
            if let Some(empty) = self.unfinished.remove(&window) {
                out.push(Publication {
                    window,
                    stats: empty,
                    partitions: Vec::new(),
                    is_final: true,
                });
            }
        }
        out.sort_by_key(|p| p.window);
        let state = self.epochs.entry(epoch).or_default();
        state.published = true;
        state.insights_outstanding = out.len() as u64;
        out
    }

    /// Takes the epochs that are complete (see the module doc), ascending.
    pub fn take_complete(&mut self) -> Vec<Epoch> {
        let complete: Vec<Epoch> = self
            .epochs
            .iter()
            .filter(|(_, s)| {
                s.published && s.insights_outstanding == 0 && s.expected == Some(s.delivered)
            })
            .map(|(&e, _)| e)
            .collect();
        for e in &complete {
            self.epochs.remove(e);
        }
        complete
    }

    /// Every epoch up to this one has been published.
    pub fn published_through(&self) -> Epoch {
        self.published_through
    }

    /// Epochs not complete yet.
    pub fn open_epochs(&self) -> usize {
        self.epochs.len()
    }

    /// Windows published and not final yet.
    #[cfg(test)]
    pub fn unfinished_windows(&self) -> usize {
        self.unfinished.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(start: u64, received: u64) -> WindowStats {
        let mut s = WindowStats::new(start, start + 10);
        s.received = received;
        s.valid = received;
        s
    }

    fn delta(
        worker: usize,
        epoch: Epoch,
        through: Epoch,
        windows: Vec<WindowStats>,
        closed_before: u64,
    ) -> WorkerDelta {
        WorkerDelta {
            worker,
            epoch,
            finished_through: through,
            partitions: if windows.is_empty() { vec![] } else { vec![0] },
            windows,
            closed_before,
        }
    }

    #[test]
    fn an_epoch_completes_when_outputs_and_its_insights_are_delivered() {
        let mut m = EpochMerger::new(2);
        m.closed(1, 3);
        m.received(1, 3);
        assert!(m.fully_received(1));
        m.delta(delta(0, 1, 1, vec![stats(100, 2)], 0));
        assert_eq!(
            m.next_publishable(),
            None,
            "worker 1 may still count epoch 1"
        );
        m.delta(delta(1, 1, 1, vec![stats(100, 1)], 0));
        assert_eq!(m.next_publishable(), Some(1));
        let p = m.publish(1);
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].window, p[0].stats.received, p[0].is_final),
            (100, 3, false)
        );
        m.delivered(1, 2);
        m.insights_delivered(1, 1);
        assert!(m.take_complete().is_empty(), "one output still in flight");
        m.delivered(1, 1);
        assert_eq!(m.take_complete(), vec![1]);
        assert_eq!(m.open_epochs(), 0);
    }

    #[test]
    fn epochs_publish_in_order_and_an_idle_worker_covers_several() {
        let mut m = EpochMerger::new(2);
        for e in 1..=3 {
            m.closed(e, 0);
        }
        // Worker 0 saw nothing since epoch 1 began and now sees epoch 4's records.
        m.delta(delta(0, 1, 3, vec![], 0));
        m.delta(delta(1, 3, 3, vec![stats(100, 1)], 0));
        assert_eq!(m.next_publishable(), Some(1));
        assert!(m.publish(1).is_empty());
        assert_eq!(m.next_publishable(), Some(2));
        assert!(m.publish(2).is_empty());
        let p = m.publish(3);
        assert_eq!(p.len(), 1);
        assert_eq!(
            m.take_complete(),
            vec![1, 2],
            "epoch 3's insight is not delivered"
        );
    }

    #[test]
    fn a_window_is_final_once_every_worker_has_closed_it_as_of_that_epoch() {
        let mut m = EpochMerger::new(2);
        m.closed(1, 2);
        m.delta(delta(0, 1, 1, vec![stats(100, 1)], 110));
        m.delta(delta(1, 1, 1, vec![stats(100, 1)], 100));
        let p = m.publish(1);
        assert!(!p[0].is_final, "worker 1 still has window 100 open");
        assert_eq!(m.unfinished_windows(), 1);
        // Epoch 2: no news for window 100, worker 1 closes it: an empty final record.
        m.closed(2, 1);
        m.delta(delta(0, 2, 2, vec![stats(110, 1)], 110));
        m.delta(delta(1, 2, 2, vec![], 110));
        let p = m.publish(2);
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].window, p[0].is_final, p[0].stats.received),
            (100, true, 0)
        );
        assert_eq!((p[1].window, p[1].is_final), (110, false));
        assert_eq!(m.unfinished_windows(), 1);
    }

    #[test]
    fn a_later_report_of_closing_does_not_finalize_an_earlier_epoch() {
        let mut m = EpochMerger::new(2);
        m.closed(1, 1);
        m.closed(2, 1);
        m.delta(delta(0, 1, 1, vec![stats(100, 1)], 0));
        // Worker 1 reports epoch 1 (window still open) and epoch 2, which closes window 100
        // and still adds to it: epoch 1's record must not be final.
        m.delta(delta(1, 1, 1, vec![], 100));
        m.delta(delta(1, 2, 2, vec![stats(100, 1)], 110));
        m.delta(delta(0, 2, 2, vec![], 110));
        let p1 = m.publish(1);
        assert!(!p1[0].is_final);
        let p2 = m.publish(2);
        assert_eq!(p2.len(), 1);
        assert!(p2[0].is_final, "closed by both as of epoch 2");
        assert_eq!(p2[0].stats.received, 1);
    }

    #[test]
    fn an_epoch_not_closed_by_the_consumer_is_not_published() {
        let mut m = EpochMerger::new(1);
        m.delta(delta(0, 1, 1, vec![stats(100, 1)], 0));
        assert_eq!(m.next_publishable(), None);
        m.closed(1, 1);
        assert_eq!(m.next_publishable(), Some(1));
    }
}
