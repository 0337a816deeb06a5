//! Exactly-once (`--guarantee exactly-once`): the producer stage's transactions, one per commit
//! epoch. A transaction carries the epoch's outputs, dead letters and insight records, and the
//! epoch's input positions (`send_offsets_to_transaction` with the consumer's group metadata
//! taken at commit time, so it carries the current group generation). Batches of the next
//! epoch that arrive early are held (at most `hold_limit`) until the transaction commits;
//! everything sent in it is delivered before `commit_transaction`, so that call returns in
//! milliseconds instead of blocking the thread.
//!
//! Errors are classified as librdkafka classifies them (`rd_kafka_error_is_fatal`,
//! `txn_requires_abort`; `rdkafka_txnmgr.c`):
//! - *fatal* (fenced by a newer instance with the same `transactional.id`, no authorization):
//!   the run stops (exit 4);
//! - anything else (ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID after a
//!   rebalance, a timeout, a failed delivery, or a partition of the epoch revoked or lost
//!   before the commit): the transaction is aborted and the stage returns
//!   [`PipelineError::Abortable`]; the stages start again in-process from the committed
//!   positions ([`crate::pipeline`]), the consumer keeps its group membership, and nothing of
//!   the aborted epoch was ever visible to `read_committed` readers.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};

use super::messages::{Epoch, Generation, OutputBatch};
use super::producer::ProducerStage;
use super::rebalance::RebalanceContext;
use crate::error::PipelineError;

/// How long transactional calls may block.
pub(super) const TXN_TIMEOUT: Duration = Duration::from_secs(30);

/// An epoch's input positions: partition, the generation they were read under, next offset.
pub(super) type EpochOffsets = Vec<(i32, Generation, i64)>;

/// The open transaction's state (exactly-once).
#[derive(Default)]
pub(super) struct Transactions {
    /// The epoch the current (or next) transaction carries.
    pub(super) committing: Epoch,
    pub(super) open: bool,
    /// Batches of later epochs, sent once their transaction begins.
    pub(super) held: VecDeque<OutputBatch>,
    /// What the consumer said about each closed epoch: its positions.
    pub(super) closed: BTreeMap<Epoch, EpochOffsets>,
    /// The consumer: group metadata at commit time, and which partitions it still owns.
    pub(super) group: Weak<BaseConsumer<RebalanceContext>>,
    /// Set before the stage returns [`PipelineError::Abortable`].
    pub(super) rewinding: Arc<AtomicBool>,
}

impl ProducerStage<'_> {
    /// Exactly-once: whether enough of the next epoch is held while the open transaction's
    /// epoch is fully received and published (so nothing it still needs is in the channel).
    pub(super) fn holding_enough(&self) -> bool {
        self.txn.as_ref().is_some_and(|txn| {
            txn.held.len() >= self.hold_limit
                && self.merger.published_through() >= txn.committing
                && self.merger.fully_received(txn.committing)
        })
    }

    pub(super) fn begin_transaction_if_needed(&mut self) {
        let Some(txn) = &mut self.txn else { return };
        if txn.open {
            return;
        }
        txn.open = true;
        let epoch = txn.committing;
        if let Err(e) = self.producer.begin_transaction() {
            // Only in a fatal or abortable state: the next round ends the run or rewinds.
            let error = self.classified(format!("begin transaction of epoch {epoch}"), e);
            self.fatal.get_or_insert(error);
        }
    }

    /// A transactional call's error: fatal ones end the run; any other aborts the open
    /// transaction (see the module doc).
    fn classified(&mut self, what: String, e: KafkaError) -> PipelineError {
        let fatal = match &e {
            KafkaError::Transaction(rd) => rd.is_fatal(),
            _ => self.producer.client().fatal_error().is_some(),
        };
        if fatal {
            log::error!("{what}: {e} (fatal: another instance with this transactional.id, or no permission)");
            return PipelineError::kafka(format!("exactly-once: {what} failed fatally"), e);
        }
        self.abort(format!("{what}: {e}"))
    }

    /// Aborts the open transaction and tells the stages to start again from the committed
    /// positions; returns the error the stage ends with.
    pub(super) fn abort(&mut self, why: String) -> PipelineError {
        log::warn!("exactly-once: {why}; aborting the transaction and reading again from the committed positions");
        if let Err(e) = self.producer.abort_transaction(TXN_TIMEOUT) {
            log::error!("abort of the transaction failed: {e}");
        }
        self.metrics().commit_failures.fetch_add(1, Relaxed);
        if let Some(txn) = &mut self.txn {
            txn.open = false;
            txn.rewinding.store(true, Ordering::Relaxed);
        }
        PipelineError::Abortable(why)
    }

    /// Exactly-once: ends the open transaction once its epoch is fully received and published:
    /// adds the input positions, commits, tells the consumer, and sends the held batches of the
    /// next epoch.
    pub(super) fn end_transaction_if_ready(&mut self) -> Result<(), PipelineError> {
        loop {
            let Some(txn) = &self.txn else { return Ok(()) };
            let epoch = txn.committing;
            let published = self.merger.published_through() >= epoch;
            if !(published && self.merger.fully_received(epoch) && self.retries.is_empty()) {
                return Ok(());
            }
            // Everything sent in the transaction is delivered before it is committed, while
            // this loop keeps taking (and holding) the next epoch's batches: commit_transaction
            // would flush too, but it blocks the thread, the channels fill up and the consumer
            // pauses, which purges its prefetch (measured: 3× slower at 1 s epochs).
            if self.producer.in_flight_count() > 0 {
                return Ok(());
            }
            let Some(positions) = self.txn.as_mut().and_then(|t| t.closed.remove(&epoch)) else {
                return Ok(());
            };
            if self.txn.as_ref().is_some_and(|t| t.open) {
                self.commit_transaction(epoch, &positions)?;
            }
            self.merger.forget(epoch);
            let _ = self.done_tx.send(epoch);
            let txn = self.txn.as_mut().expect("exactly-once");
            txn.open = false;
            txn.committing = epoch + 1;
            let next = epoch + 1;
            let mut later = VecDeque::new();
            let mut now = Vec::new();
            for batch in std::mem::take(&mut txn.held) {
                if batch.epoch == next {
                    now.push(batch);
                } else {
                    later.push_back(batch);
                }
            }
            txn.held = later;
            for batch in now {
                self.send_batch(batch);
            }
            self.publish_ready()?;
        }
    }

    /// Commits epoch `epoch`'s transaction with its input positions, under the group
    /// metadata taken now: only when every partition of the epoch is still owned under the
    /// generation its records were read with (a revoke waits for this commit; a lost partition
    /// does not, and its records may already be another member's).
    pub(super) fn commit_transaction(
        &mut self,
        epoch: Epoch,
        positions: &[(i32, Generation, i64)],
    ) -> Result<(), PipelineError> {
        let started = Instant::now();
        let group = self.txn.as_ref().and_then(|t| t.group.upgrade());
        let Some(consumer) = group else {
            return Err(self.abort(format!("epoch {epoch}: the consumer is gone")));
        };
        let lost: Vec<i32> = {
            let tracker = consumer.context().tracker();
            positions
                .iter()
                .filter(|&&(p, g, _)| tracker.generation(p) != Some(g))
                .map(|&(p, _, _)| p)
                .collect()
        };
        if !lost.is_empty() {
            return Err(self.abort(format!(
                "partitions {lost:?} of epoch {epoch} were revoked or lost before it committed"
            )));
        }
        let metadata = consumer.group_metadata();
        crate::fault::pause("txn-offsets");
        if metadata.is_none() && !positions.is_empty() {
            return Err(self.abort(format!(
                "epoch {epoch}: the consumer has no group metadata (not in the group)"
            )));
        }
        let result = (|| {
            if let (false, Some(metadata)) = (positions.is_empty(), &metadata) {
                let mut tpl = TopicPartitionList::new();
                for &(partition, _, position) in positions {
                    tpl.add_partition_offset(
                        &self.input_topic,
                        partition,
                        Offset::Offset(position),
                    )?;
                }
                self.producer
                    .send_offsets_to_transaction(&tpl, metadata, TXN_TIMEOUT)?;
            }
            self.producer.commit_transaction(TXN_TIMEOUT)
        })();
        drop(consumer);
        match result {
            Ok(()) => {
                self.metrics().note_commit();
                log::debug!(
                    "committed transaction of epoch {epoch} in {:?}: {positions:?}",
                    started.elapsed()
                );
                Ok(())
            }
            Err(e) => Err(self.classified(format!("transaction of epoch {epoch}"), e)),
        }
    }
}
