//! The consumer's group side: the state the poll loop shares with librdkafka's rebalance
//! callbacks (which run inside `poll`, on the consumer thread), what happens on assign and
//! revoke, and the synchronous commits of complete epochs.
//!
//! On revoke the open epoch is closed, the callback waits (bounded by the shutdown timeout, at
//! most [`MAX_REVOKE_DRAIN`]) until every epoch up to it is complete, commits the revoked
//! partitions' final positions and forgets them. On assign the new partitions get a fresh
//! generation in the [`OffsetTracker`] (records of an earlier assignment commit nothing), and
//! stay paused while the workers are behind.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::messages::{Epoch, EpochClosed};
use super::offsets::OffsetTracker;
use super::watermark::EventClock;
use crate::kafka::client::ClientLog;
use crate::telemetry::metrics::{unix_ms, Metrics};

/// Longest wait for a revoked partition's epochs to complete.
pub const MAX_REVOKE_DRAIN: Duration = Duration::from_secs(10);

/// State shared between the poll loop and the rebalance callbacks, which librdkafka runs
/// inside `poll` on the same thread (so the lock is never contended; it is never held across
/// a poll).
pub struct RebalanceContext {
    pub(super) topic: String,
    pub(super) tracker: Mutex<OffsetTracker>,
    /// The channels to and from the producer of the current run of the stages (exactly-once
    /// starts the stages again around this consumer after an aborted transaction).
    pub(super) links: Mutex<Links>,
    /// Set when the stages stop for a rewind (exactly-once, an aborted transaction): a revoke
    /// no longer waits for epochs that will never complete.
    pub(super) rewinding: Arc<AtomicBool>,
    /// The open epoch, read by the workers.
    pub(super) epoch: Arc<AtomicU64>,
    /// The per-partition watermarks: a partition enters on assign, leaves on revoke.
    pub(super) clock: Arc<EventClock>,
    pub(super) exactly_once: bool,
    pub(super) drain_timeout: Duration,
    pub(super) paused: AtomicBool,
    /// Bumped on every assign and revoke, so the poll loop knows its cached generations are
    /// stale.
    pub(super) rebalances: AtomicU64,
    /// Set once the shutdown has committed, before the consumer closes.
    pub(super) closing: AtomicBool,
    pub(super) metrics: Arc<Metrics>,
    pub(super) log: ClientLog,
}

/// The consumer's ends of the channels to and from the producer.
pub struct Links {
    /// Complete epochs, from the producer.
    pub done_rx: Receiver<Epoch>,
    /// Closed epochs, to the producer.
    pub control_tx: Sender<EpochClosed>,
}

impl RebalanceContext {
    pub(super) fn tracker(&self) -> MutexGuard<'_, OffsetTracker> {
        self.tracker.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn links(&self) -> MutexGuard<'_, Links> {
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The receiver of complete epochs (a handle: the channel is the current run's).
    pub(super) fn done_rx(&self) -> Receiver<Epoch> {
        self.links().done_rx.clone()
    }

    /// Connects the consumer to the producer of a new run of the stages.
    pub(super) fn relink(&self, links: Links) {
        *self.links() = links;
    }

    /// Applies the epoch completions that have arrived.
    pub(super) fn absorb_done(&self) {
        let done_rx = self.done_rx();
        let mut tracker = self.tracker();
        while let Ok(epoch) = done_rx.try_recv() {
            tracker.complete(epoch);
        }
    }

    /// Closes the open epoch, tells the producer and the workers; returns the closed epoch.
    pub(super) fn close_epoch(&self) -> Epoch {
        let closed = self.tracker().close_epoch();
        // The producer is gone only at the very end of a shutdown (or of a run that stops for
        // a rewind).
        let _ = self.links().control_tx.send(EpochClosed {
            epoch: closed.epoch,
            records: closed.records,
            positions: closed.positions,
        });
        self.epoch.store(closed.epoch + 1, Ordering::Release);
        closed.epoch
    }

    /// Waits until every epoch up to `epoch` is complete, or `deadline`. Returns whether they are.
    pub(super) fn wait_complete_through(&self, epoch: Epoch, deadline: Instant) -> bool {
        let done_rx = self.done_rx();
        loop {
            self.absorb_done();
            if self.tracker().complete_through(epoch) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.rewinding.load(Ordering::Relaxed) {
                return false;
            }
            match done_rx.recv_timeout(left.min(Duration::from_millis(20))) {
                Ok(e) => {
                    self.tracker().complete(e);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return false,
            }
        }
    }

    /// At-least-once: stores and commits every position that moved. Synchronously: one round
    /// trip per epoch (once per `--commit-interval`), and its result is known here (librdkafka
    /// reports the results of asynchronous manual commits to no callback of a BaseConsumer).
    pub(super) fn commit_moved(&self, consumer: &BaseConsumer<Self>) {
        if self.exactly_once {
            return;
        }
        let moved = self.tracker().take_committable();
        if moved.is_empty() {
            return;
        }
        let tpl = offsets_list(&self.topic, moved.iter().map(|&(p, o)| (p, Some(o))));
        // Stored too, so a commit librdkafka makes on its own (close, unassign) never goes
        // backwards.
        if let Err(e) = consumer.store_offsets(&tpl) {
            log::debug!("storing offsets {}: {e}", describe(&tpl));
        }
        if self.commit_sync(consumer, &tpl).is_err() {
            self.tracker().commit_failed(&moved);
        }
    }

    /// Commits `tpl` synchronously and counts the result.
    pub(super) fn commit_sync(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &TopicPartitionList,
    ) -> KafkaResult<()> {
        let result = self.try_commit(consumer, tpl);
        if let Err(e) = &result {
            self.commit_failed(tpl, e);
        }
        result
    }

    /// Commits `tpl` synchronously, counting a success; a failure is the caller's to count
    /// ([`Self::commit_failed`]) once it gives up (the final commit retries some).
    pub(super) fn try_commit(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &TopicPartitionList,
    ) -> KafkaResult<()> {
        let result = consumer.commit(tpl, CommitMode::Sync);
        if result.is_ok() {
            self.metrics.note_commit();
            log::debug!("committed {}", describe(tpl));
        }
        result
    }

    /// Counts and logs a commit of `tpl` that failed for good.
    pub(super) fn commit_failed(&self, tpl: &TopicPartitionList, e: &KafkaError) {
        self.metrics.commit_failures.fetch_add(1, Ordering::Relaxed);
        log::warn!("offset commit of {} failed: {e}", describe(tpl));
    }

    pub(super) fn on_revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let partitions: Vec<i32> = tpl
            .elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect();
        let lost = consumer.assignment_lost();
        // At close, after the shutdown drained and committed, there is nothing to wait for.
        if !lost && !self.closing.load(Ordering::Relaxed) {
            let epoch = self.close_epoch();
            let deadline = Instant::now() + self.drain_timeout;
            if !self.wait_complete_through(epoch, deadline) {
                log::warn!(
                    "revoke of partitions {partitions:?}: epoch {epoch} not complete after \
                     {:?}; committing the complete prefix, the rest will be read again",
                    self.drain_timeout
                );
            }
        }
        let commit = {
            let mut tracker = self.tracker();
            offsets_list(
                &self.topic,
                partitions.iter().map(|&p| (p, tracker.revoke(p))),
            )
        };
        super::alignment::revoke(consumer, &partitions);
        self.rebalances.fetch_add(1, Ordering::Relaxed);
        self.metrics.revokes.fetch_add(1, Ordering::Relaxed);
        if lost {
            log::warn!("partitions {partitions:?} were lost (session timeout?); their uncommitted records will be read again");
        } else if commit.count() > 0 && !self.exactly_once {
            // Stored as well as committed, so no commit librdkafka makes during the unassign
            // that follows can move the group's position back.
            if let Err(e) = consumer.store_offsets(&commit) {
                log::warn!("storing final offsets of revoked partitions {partitions:?}: {e}");
            }
            if self.commit_sync(consumer, &commit).is_ok() {
                log::info!(
                    "revoked partitions {partitions:?}; committed {}",
                    describe(&commit)
                );
            }
        } else {
            log::info!("revoked partitions {partitions:?}");
        }
    }

    pub(super) fn on_assign(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let partitions: Vec<i32> = tpl
            .elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect();
        {
            let mut tracker = self.tracker();
            for &p in &partitions {
                tracker.assign(p);
                self.clock.assign(p, unix_ms());
            }
        }
        self.rebalances.fetch_add(1, Ordering::Relaxed);
        self.metrics.assigns.fetch_add(1, Ordering::Relaxed);
        log::info!("assigned partitions {partitions:?} of {}", self.topic);
        if self.paused.load(Ordering::Relaxed) {
            if let Err(e) = consumer.pause(tpl) {
                log::warn!("pausing newly assigned partitions: {e}");
            }
        }
    }
}

impl ClientContext for RebalanceContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.log.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log.error(error, reason);
    }

    fn stats_raw(&self, statistics: &[u8]) {
        let Some(ends) = partition_ends(statistics, &self.topic) else {
            return;
        };
        let tracker = self.tracker();
        let lag = ends
            .into_iter()
            .filter(|e| tracker.generation(e.partition).is_some())
            .filter_map(|e| {
                let position = tracker.committable(e.partition).or(e.committed)?;
                Some((e.partition, (e.end - position).max(0)))
            })
            .collect();
        drop(tracker);
        self.metrics.set_lag(lag);
    }
}

/// What a statistics document says of one partition: the end a `read_committed` reader can
/// reach (the last stable offset, else the high watermark), and the group's committed
/// position when the consumer fetched it at assignment (else the log start, where
/// `auto.offset.reset=earliest` starts).
#[derive(Debug, PartialEq, Eq)]
struct PartitionEnd {
    partition: i32,
    end: i64,
    committed: Option<i64>,
}

/// Lag is the pipeline's own: `end` minus the tracker's committable position (or, before the
/// first complete epoch, the committed one), in both modes and from the first statistics of an
/// assignment. (librdkafka's `consumer_lag_stored` stays -1 when offsets are never stored,
/// which is always so under exactly-once, where the transactions commit them.)
fn partition_ends(statistics: &[u8], topic: &str) -> Option<Vec<PartitionEnd>> {
    let stats: serde_json::Value = serde_json::from_slice(statistics).ok()?;
    let partitions = stats
        .get("topics")?
        .get(topic)?
        .get("partitions")?
        .as_object()?;
    let number = |v: &serde_json::Value, key: &str| v.get(key)?.as_i64().filter(|&n| n >= 0);
    let ends = partitions.iter().filter_map(|(p, v)| {
        let partition: i32 = p.parse().ok().filter(|&p| p >= 0)?;
        let end = number(v, "ls_offset").or_else(|| number(v, "hi_offset"))?;
        let committed = number(v, "committed_offset").or_else(|| number(v, "lo_offset"));
        Some(PartitionEnd {
            partition,
            end,
            committed,
        })
    });
    Some(ends.collect())
}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => self.on_revoke(consumer, tpl),
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => log::warn!("rebalance error: {e}"),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.on_assign(consumer, tpl);
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                self.metrics.note_commit();
                log::debug!("committed {}", describe(offsets));
            }
            // Nothing new was stored since the last commit.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                self.metrics.commit_failures.fetch_add(1, Ordering::Relaxed);
                log::warn!("offset commit failed: {e}");
            }
        }
    }
}

/// A partition list of `topic` with the given positions (partitions without one are left out).
pub(super) fn offsets_list(
    topic: &str,
    positions: impl Iterator<Item = (i32, Option<i64>)>,
) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (p, position) in positions {
        if let Some(position) = position {
            // Only fails for an invalid offset value, which a position never is.
            let _ = tpl.add_partition_offset(topic, p, Offset::Offset(position));
        }
    }
    tpl
}

/// The partitions and offsets of a list, as `p0=12 p3=40`.
fn describe(tpl: &TopicPartitionList) -> String {
    let parts: Vec<String> = tpl
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => format!("p{}={o}", e.partition()),
            other => format!("p{}={other:?}", e.partition()),
        })
        .collect();
    parts.join(" ")
}

/// Commit errors that go away once the member has rejoined the group or found its coordinator.
pub(super) fn retriable_commit_error(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::RebalanceInProgress
            | RDKafkaErrorCode::IllegalGeneration
            | RDKafkaErrorCode::NotCoordinator
            | RDKafkaErrorCode::CoordinatorLoadInProgress
            | RDKafkaErrorCode::CoordinatorNotAvailable
            | RDKafkaErrorCode::RequestTimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_ends_read_the_stable_end_and_the_committed_position() {
        let stats = br#"{"topics": {"user-login": {"partitions": {
            "0": {"ls_offset": 120, "hi_offset": 130, "committed_offset": 100, "lo_offset": 0},
            "1": {"ls_offset": -1, "hi_offset": 50, "committed_offset": -1001, "lo_offset": 7},
            "-1": {"ls_offset": 9, "hi_offset": 9}}},
            "other": {"partitions": {"0": {"ls_offset": 5}}}}}"#;
        let mut ends = partition_ends(stats, "user-login").unwrap();
        ends.sort_by_key(|e| e.partition);
        let end = |partition, end, committed| PartitionEnd {
            partition,
            end,
            committed,
        };
        assert_eq!(ends, [end(0, 120, Some(100)), end(1, 50, Some(7))]);
        assert_eq!(partition_ends(stats, "missing"), None);
        assert_eq!(partition_ends(b"not json", "user-login"), None);
    }

    #[test]
    fn offsets_list_leaves_out_partitions_without_a_position() {
        let tpl = offsets_list("t", [(0, Some(5)), (1, None), (3, Some(0))].into_iter());
        assert_eq!(describe(&tpl), "p0=5 p3=0");
    }

    #[test]
    fn only_group_and_coordinator_errors_are_retried() {
        assert!(retriable_commit_error(
            RDKafkaErrorCode::RebalanceInProgress
        ));
        assert!(retriable_commit_error(RDKafkaErrorCode::NotCoordinator));
        assert!(!retriable_commit_error(RDKafkaErrorCode::UnknownMemberId));
        assert!(!retriable_commit_error(RDKafkaErrorCode::OffsetOutOfRange));
    }
}
