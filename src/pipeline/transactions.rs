//! Exactly-once (`--guarantee exactly-once`): the producer stage's transactions, one per commit
//! epoch. A transaction carries the epoch's outputs, dead letters and insight records, and the
//! epoch's input positions (`send_offsets_to_transaction` with the group metadata taken when
//! the epoch closed). Batches of the next epoch that arrive early are held (at most
//! `hold_limit`) until the transaction commits; everything sent in it is delivered before
//! `commit_transaction`, so that call returns in milliseconds instead of blocking the thread.
//! A failure aborts the transaction and stops the run.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};

use super::messages::{Epoch, OutputBatch};
use super::producer::ProducerStage;
use crate::error::PipelineError;

/// How long transactional calls may block.
pub(super) const TXN_TIMEOUT: Duration = Duration::from_secs(30);

/// An epoch's input positions and the group metadata to commit them with.
pub(super) type EpochOffsets = (Vec<(i32, i64)>, Option<ConsumerGroupMetadata>);

/// The open transaction's state (exactly-once).
#[derive(Default)]
pub(super) struct Transactions {
    /// The epoch the current (or next) transaction carries.
    pub(super) committing: Epoch,
    pub(super) open: bool,
    /// Batches of later epochs, sent once their transaction begins.
    pub(super) held: VecDeque<OutputBatch>,
    /// What the consumer said about each closed epoch: positions and group metadata.
    pub(super) closed: BTreeMap<Epoch, EpochOffsets>,
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
        if let Some(txn) = &mut self.txn {
            if !txn.open {
                // Only fails on a fatal or abortable state, which the next check reports.
                if let Err(e) = self.producer.begin_transaction() {
                    log::warn!("begin transaction for epoch {}: {e}", txn.committing);
                }
                txn.open = true;
            }
        }
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
            let Some((positions, group)) = self.txn.as_mut().and_then(|t| t.closed.remove(&epoch))
            else {
                return Ok(());
            };
            if self.txn.as_ref().is_some_and(|t| t.open) {
                self.commit_transaction(epoch, &positions, group.as_ref())?;
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

    pub(super) fn commit_transaction(
        &mut self,
        epoch: Epoch,
        positions: &[(i32, i64)],
        group: Option<&ConsumerGroupMetadata>,
    ) -> Result<(), PipelineError> {
        let started = Instant::now();
        let result = (|| {
            if let (false, Some(group)) = (positions.is_empty(), group) {
                let mut tpl = TopicPartitionList::new();
                for &(partition, position) in positions {
                    tpl.add_partition_offset(
                        &self.input_topic,
                        partition,
                        Offset::Offset(position),
                    )?;
                }
                self.producer
                    .send_offsets_to_transaction(&tpl, group, TXN_TIMEOUT)?;
            }
            self.producer.commit_transaction(TXN_TIMEOUT)
        })();
        match result {
            Ok(()) => {
                self.metrics().note_commit();
                log::debug!(
                    "committed transaction of epoch {epoch} in {:?}: {positions:?}",
                    started.elapsed()
                );
                Ok(())
            }
            Err(e) => {
                log::error!("transaction of epoch {epoch} failed: {e}; aborting it");
                if let Err(abort) = self.producer.abort_transaction(TXN_TIMEOUT) {
                    log::error!("abort of epoch {epoch}'s transaction failed: {abort}");
                }
                self.metrics().commit_failures.fetch_add(1, Relaxed);
                Err(PipelineError::kafka(
                    format!(
                        "exactly-once transaction of epoch {epoch} aborted (its records are \
                         processed again from the last committed epoch)"
                    ),
                    e,
                ))
            }
        }
    }
}
