//! The producer stage: one thread owns the `BaseProducer`, sends what the workers made,
//! publishes the merged insight deltas of each commit epoch, serves delivery reports and tells
//! the consumer thread which epochs are complete.
//!
//! - Outputs arrive in batches and are sent from the batch buffer (librdkafka copies key and
//!   value); a batch is one entry in a small slot table, and each message's delivery opaque is
//!   a plain number (slot, topic, attempts), so a delivery report costs no allocation. When a
//!   batch's last output is delivered, its epoch's count moves ([`EpochMerger`]); an epoch is
//!   complete when all of its outputs and its insight records are delivered, and only then does
//!   the consumer commit its positions (see [`crate::pipeline::offsets`]).
//! - A record that cannot be written is handled by its class ([`super::delivery::Failure`]):
//!   a *permanent* refusal (too large for the topic, which is checked before the send against
//!   the topics' `max.message.bytes`; an invalid record; no permission) is never retried: a
//!   processed record becomes an `output_rejected` dead letter, a dead letter is written
//!   reduced ([`super::reroute`]), and only when that fails too does the run stop. A
//!   *retriable* failure is resent by this thread with exponential backoff (100 ms doubling
//!   to 10 s), for as long as it takes; its epoch stays incomplete meanwhile. When more than
//!   [`MAX_RETRY_BACKLOG`] records wait for a retry the thread stops taking new work, the
//!   channels fill up and the consumer pauses: an unwritable topic stops consumption rather
//!   than skipping records.
//! - Exactly-once (`--guarantee exactly-once`): the producer is transactional, and each epoch
//!   is one transaction: its outputs, dead letters and insight records, and the input positions
//!   ([`super::transactions`]). Batches of the next epoch that arrive early wait here until the
//!   transaction commits. An abortable error aborts the transaction and ends this run of the
//!   stages with [`PipelineError::Abortable`]: the stages start again from the committed
//!   positions in-process ([`crate::pipeline`]); a fatal one ends the run (exit 4).
//! - `QueueFull` hands the record back: poll (which serves delivery reports and frees the
//!   queue), then send again.
//! - On shutdown it drains the channel, completes the last epochs until the deadline, and
//!   flushes before the producer is dropped (dropping purges the queue).

use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::delivery::{
    classify, is_reduced, lock, opaque, record_batch_size, reduced, retry_backoff, unpack,
    Delivered, DeliveryContext, Failure, Retry, Slot, Slots,
};
use super::rebalance::RebalanceContext;
use super::reroute::{reduced_letter, rejected_output, Letter};
use super::transactions::{Transactions, TXN_TIMEOUT};
use crate::cli::run::Guarantee;
use crate::config::Config;
use crate::error::PipelineError;
use crate::insights::histogram::LagHistogram;
use crate::insights::record::InsightRecord;
use crate::kafka::admin::{max_message_bytes, DEFAULT_MAX_MESSAGE_BYTES};
use crate::kafka::client::{producer_config, redact_config_error, ClientLog};
use crate::pipeline::merger::{EpochMerger, Publication};
use crate::pipeline::messages::{
    BatchPools, Destination, Epoch, EpochClosed, OutputBatch, ToProducer,
};
use crate::shutdown::Shutdown;
use crate::telemetry::metrics::{unix_ms, Metrics};
use crate::transform::ErrorCode;

/// Records waiting for a retry beyond which no new work is taken.
pub const MAX_RETRY_BACKLOG: usize = 10_000;
const RETRY_PASS_INTERVAL: Duration = Duration::from_millis(20);

/// What connects one run of the producer stage to the consumer: the epoch channels, the first
/// epoch it will see, and (exactly-once) the consumer whose group metadata each transaction
/// commits with, and the flag that stops the stages for a rewind.
pub struct ProducerLinks {
    /// Closed epochs, from the consumer.
    pub control_rx: Receiver<EpochClosed>,
    /// Complete epochs, to the consumer.
    pub done_tx: Sender<Epoch>,
    /// The consumer's open epoch when this run starts.
    pub first_epoch: Epoch,
    /// The consumer (its group metadata, and which partitions it still owns).
    pub group: Weak<BaseConsumer<RebalanceContext>>,
    /// Set (before the stage returns) when a transaction is aborted and the stages must stop
    /// and start again from the committed positions.
    pub rewinding: Arc<AtomicBool>,
}

/// The producer thread's state.
pub struct ProducerStage<'a> {
    pub(super) producer: BaseProducer<DeliveryContext>,
    pub(super) pools: &'a BatchPools,
    /// The delivery report list of the last round, kept for its capacity.
    pub(super) reports: Vec<Delivered>,
    /// Exactly-once: most batches of the next epoch held while a transaction completes.
    pub(super) hold_limit: usize,
    pub(super) topics: [String; 3],
    pub(super) input_topic: String,
    pub(super) instance: String,
    pub(super) merger: EpochMerger,
    pub(super) slots: Slots,
    pub(super) control_rx: Receiver<EpochClosed>,
    pub(super) done_tx: Sender<Epoch>,
    pub(super) retries: VecDeque<Retry>,
    pub(super) txn: Option<Transactions>,
    pub(super) shutdown: &'a Shutdown,
    pub(super) last_failure_log: Option<Instant>,
    pub(super) last_reroute_log: Option<Instant>,
    pub(super) last_retry_pass: Instant,
    /// The largest record batch each output topic accepts (by destination index): a record
    /// above it is refused before it is sent.
    pub(super) limits: [usize; 3],
    /// Set when even a reduced dead letter could not be written: the run stops with it.
    pub(super) fatal: Option<PipelineError>,
}

impl<'a> ProducerStage<'a> {
    /// Creates the producer (and, exactly-once, registers its transactional id). A bad
    /// `-X`/`--producer-property` is a configuration error.
    pub fn new(
        config: &Config,
        links: ProducerLinks,
        pools: &'a BatchPools,
        metrics: Arc<Metrics>,
        shutdown: &'a Shutdown,
    ) -> Result<Self, PipelineError> {
        let context = DeliveryContext {
            delivered: Mutex::default(),
            failed: Mutex::default(),
            metrics,
            log: ClientLog::new("producer"),
        };
        let limits = record_limits(config);
        let smallest = limits
            .iter()
            .copied()
            .min()
            .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES);
        let largest = limits
            .iter()
            .copied()
            .max()
            .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES);
        let producer: BaseProducer<DeliveryContext> = producer_config(config, (smallest, largest))
            .create_with_context(context)
            .map_err(redact_config_error)
            .map_err(|e| PipelineError::Config(format!("producer: {e}")))?;
        let txn = match config.guarantee {
            Guarantee::AtLeastOnce => None,
            Guarantee::ExactlyOnce => {
                producer.init_transactions(TXN_TIMEOUT).map_err(|e| {
                    PipelineError::kafka("initializing the transactional producer", e)
                })?;
                Some(Transactions {
                    committing: links.first_epoch,
                    group: links.group,
                    rewinding: links.rewinding,
                    ..Default::default()
                })
            }
        };
        Ok(ProducerStage {
            producer,
            pools,
            reports: Vec::new(),
            hold_limit: 2 * crate::pipeline::consumer::ConsumerStage::channel_batches(
                config.channel_capacity,
            ),
            topics: [
                config.output_topic.clone(),
                config.dlq_topic.clone(),
                config.insights_topic.clone(),
            ],
            input_topic: config.input_topic.clone(),
            instance: config.instance_id.clone(),
            merger: EpochMerger::starting_at(config.workers, links.first_epoch),
            slots: Slots::default(),
            control_rx: links.control_rx,
            done_tx: links.done_tx,
            retries: VecDeque::new(),
            txn,
            shutdown,
            last_failure_log: None,
            last_reroute_log: None,
            last_retry_pass: Instant::now(),
            limits,
            fatal: None,
        })
    }

    pub(super) fn metrics(&self) -> &Metrics {
        &self.producer.context().metrics
    }

    /// Runs until the workers are gone and everything is delivered, or the shutdown deadline.
    pub fn run(mut self, rx: Receiver<ToProducer>) -> Result<(), PipelineError> {
        let mut received = 0u64;
        loop {
            self.serve()?;
            if self.shutdown.overdue() {
                break;
            }
            if self.retries.len() >= MAX_RETRY_BACKLOG {
                // Backpressure: leave new work in the channel until retries get through.
                self.producer.poll(Duration::from_millis(50));
                continue;
            }
            if self.holding_enough() {
                // Exactly-once: the open transaction only waits for its deliveries now, and
                // enough of the next epoch is held; leave the rest in the channel.
                self.producer.poll(Duration::from_millis(1));
                continue;
            }
            // BaseProducer::poll waits out its whole timeout even when events arrive, so the
            // wait for work happens on the channel (wakes at once) and poll(ZERO) in `serve`
            // handles the delivery reports at least every millisecond.
            let next = match rx.try_recv() {
                Ok(message) => {
                    received += 1;
                    if received % 64 == 0 {
                        self.note_channel_depth(&rx);
                    }
                    Ok(message)
                }
                Err(_) => {
                    self.note_channel_depth(&rx);
                    rx.recv_timeout(Duration::from_millis(1))
                }
            };
            match next {
                Ok(ToProducer::Batch(batch)) => {
                    crate::fault::inject(received);
                    self.take_batch(batch)
                }
                Ok(ToProducer::Delta(delta)) => self.merger.delta(delta),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.finish()
    }

    /// One round of bookkeeping: delivery reports, retries, closed epochs, publications,
    /// transactions, completed epochs.
    fn serve(&mut self) -> Result<(), PipelineError> {
        self.producer.poll(Duration::ZERO);
        self.apply_delivery_reports()?;
        self.resend_due();
        self.check_fatal()?;
        if let Some(fatal) = self.fatal.take() {
            return Err(fatal);
        }
        while let Ok(closed) = self.control_rx.try_recv() {
            self.merger.closed(closed.epoch, closed.records);
            if let Some(txn) = &mut self.txn {
                txn.closed.insert(closed.epoch, closed.positions);
            }
        }
        self.publish_ready()?;
        if self.txn.is_some() {
            self.end_transaction_if_ready()?;
        } else {
            for epoch in self.merger.take_complete() {
                // The consumer thread may already be gone at the very end of a shutdown.
                let _ = self.done_tx.send(epoch);
            }
        }
        Ok(())
    }

    fn note_channel_depth(&self, rx: &Receiver<ToProducer>) {
        let depth = &self.metrics().gauges.producer_channel;
        depth.store(rx.len() as u64, Relaxed);
    }

    /// A batch from a worker: counted for its epoch, then sent (exactly-once: held while an
    /// earlier epoch's transaction is open).
    fn take_batch(&mut self, batch: OutputBatch) {
        self.merger
            .received(batch.epoch, batch.records.len() as u64);
        if let Some(txn) = &mut self.txn {
            if batch.epoch > txn.committing {
                txn.held.push_back(batch);
                return;
            }
        }
        self.send_batch(batch);
    }

    pub(super) fn send_batch(&mut self, mut batch: OutputBatch) {
        if batch.records.is_empty() {
            return;
        }
        self.begin_transaction_if_needed();
        let slot = self.slots.insert(Slot {
            epoch: batch.epoch,
            remaining: batch.records.len() as u64,
            total: batch.records.len() as u64,
            consumed_at: Some(batch.consumed_at),
        });
        let mut records = std::mem::take(&mut batch.records);
        for record in records.drain(..) {
            self.send_or_retry(
                opaque(slot, record.destination, 0),
                batch.bytes(&record.key),
                batch.bytes(&record.value),
                record.headers,
                record.timestamp_ms,
            );
        }
        self.pools.recycle_output(batch.data, records);
    }

    /// Publishes every epoch the merger says is ready (exactly-once: only the epoch of the
    /// open transaction).
    pub(super) fn publish_ready(&mut self) -> Result<(), PipelineError> {
        while let Some(epoch) = self.merger.next_publishable() {
            if self.txn.as_ref().is_some_and(|t| t.committing != epoch) {
                break;
            }
            let publications = self.merger.publish(epoch);
            if publications.is_empty() {
                continue;
            }
            self.begin_transaction_if_needed();
            let slot = self.slots.insert(Slot {
                epoch,
                remaining: publications.len() as u64,
                total: publications.len() as u64,
                consumed_at: None,
            });
            let published_at_ms = unix_ms();
            self.metrics()
                .windows_published
                .fetch_add(publications.len() as u64, Relaxed);
            for publication in publications {
                let key = publication.window.to_string();
                let value = self.insight_record(publication, epoch, published_at_ms);
                self.send_or_retry(
                    opaque(slot, Destination::Insights, 0),
                    Some(key.as_bytes()),
                    Some(value.as_bytes()),
                    None,
                    None,
                );
            }
        }
        Ok(())
    }

    fn insight_record(&self, p: Publication, epoch: Epoch, published_at_ms: u64) -> String {
        let mut stats = p.stats;
        stats.partial = !p.is_final;
        let mut record =
            InsightRecord::from_stats(stats, &self.instance, &p.partitions, published_at_ms);
        record.epoch = epoch;
        record.to_json()
    }

    /// Applies the delivery reports queued by the context: slots and epochs advance, failures
    /// go to the retry queue (exactly-once: a failure ends the run).
    fn apply_delivery_reports(&mut self) -> Result<(), PipelineError> {
        // Swapped with a list kept from the last round, so neither side reallocates.
        let mut reports = std::mem::take(&mut self.reports);
        std::mem::swap(&mut reports, &mut *lock(&self.producer.context().delivered));
        let failed = std::mem::take(&mut *lock(&self.producer.context().failed));
        if reports.is_empty() && failed.is_empty() {
            self.reports = reports;
            return Ok(());
        }
        // One clock read per batch of delivery reports.
        let now_ms = unix_ms() as i64;
        let mut delivered = 0;
        let mut latency = LagHistogram::new();
        let mut by_topic = [0u64; 3];
        for &(opaque, timestamp_ms) in &reports {
            let (slot, destination, _) = unpack(opaque);
            by_topic[destination.index()] += 1;
            if destination != Destination::Insights {
                delivered += 1;
                if let Some(ts) = timestamp_ms {
                    latency.record(now_ms - ts);
                }
            }
            if let Some(done) = self.slots.delivered(slot) {
                match done.consumed_at {
                    Some(at) => {
                        self.merger.delivered(done.epoch, done.total);
                        self.metrics().latency.observe(at.elapsed());
                    }
                    None => self.merger.insights_delivered(done.epoch, done.total),
                }
            }
        }
        reports.clear();
        self.reports = reports;
        for (retry, error) in failed {
            if self.txn.is_some() {
                // librdkafka has made the transaction abortable: abort, and read the epoch
                // again.
                return Err(self.abort(format!(
                    "a delivery to {} failed inside the transaction of epoch {}: {error}",
                    self.topics[unpack(retry.opaque).1.index()],
                    self.txn.as_ref().map_or(0, |t| t.committing)
                )));
            }
            self.failed(retry, error);
        }
        let metrics = self.metrics();
        if delivered > 0 {
            metrics.note_delivered(delivered);
        }
        metrics.note_latencies(&latency);
        for (total, n) in metrics.delivered_by_topic.iter().zip(by_topic) {
            if n > 0 {
                total.fetch_add(n, Relaxed);
            }
        }
        Ok(())
    }

    /// Drains the control channel, publishes, ends the last transactions and waits for
    /// outstanding deliveries and retries until the deadline, then flushes.
    fn finish(mut self) -> Result<(), PipelineError> {
        loop {
            self.serve()?;
            let idle = self.merger.open_epochs() == 0
                && self.producer.in_flight_count() == 0
                && self.retries.is_empty()
                && self
                    .txn
                    .as_ref()
                    .is_none_or(|t| !t.open && t.held.is_empty());
            if idle {
                break;
            }
            if self.shutdown.overdue() {
                log::warn!(
                    "shutdown deadline reached with {} messages queued, {} waiting for a retry \
                     and {} epochs incomplete",
                    self.producer.in_flight_count(),
                    self.retries.len(),
                    self.merger.open_epochs()
                );
                break;
            }
            self.producer.poll(Duration::from_millis(5));
        }
        if let Some(txn) = &self.txn {
            if txn.open {
                let _ = self.producer.abort_transaction(Duration::from_secs(5));
            }
        }
        let grace = self.shutdown.remaining().unwrap_or(Duration::from_secs(5));
        if let Err(e) = self.producer.flush(grace) {
            log::warn!("producer flush: {e}");
        }
        Ok(())
    }

    /// Sends one message; QueueFull is answered by polling and sending again. Returns the
    /// record and the error when it could not be queued.
    fn send(
        &self,
        opaque: usize,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: Option<OwnedHeaders>,
        timestamp_ms: Option<i64>,
    ) -> Option<(Retry, KafkaError)> {
        let (_, destination, _) = unpack(opaque);
        let topic = &self.topics[destination.index()];
        if self.too_large(destination, key, value, headers.as_ref()) {
            let retry = Retry::new(opaque, timestamp_ms, key, value, headers);
            let error = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
            return Some((retry, error));
        }
        let mut record: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(topic, opaque);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(value) = value {
            record = record.payload(value);
        }
        if let Some(headers) = headers {
            record = record.headers(headers);
        }
        if let Some(ts) = timestamp_ms {
            record = record.timestamp(ts);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return None,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if !self.shutdown.overdue() =>
                {
                    record = back;
                    self.producer.poll(Duration::from_millis(1));
                }
                Err((error, back)) => {
                    let metrics = self.metrics();
                    metrics.delivery_failures.fetch_add(1, Relaxed);
                    metrics.delivery_failures_by_topic[destination.index()].fetch_add(1, Relaxed);
                    let retry = Retry::new(opaque, timestamp_ms, key, value, back.headers);
                    return Some((retry, error));
                }
            }
        }
    }

    /// Sends one message; one that could not be queued is handled by its [`Failure`] class.
    fn send_or_retry(
        &mut self,
        opaque: usize,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: Option<OwnedHeaders>,
        timestamp_ms: Option<i64>,
    ) {
        if let Some((retry, error)) = self.send(opaque, key, value, headers, timestamp_ms) {
            self.failed(retry, error);
        }
    }

    /// Whether a record is above its topic's `max.message.bytes` (dead letters and records
    /// with several headers are measured whole; a processed record's one lineage header is
    /// small, so its key and value decide).
    fn too_large(
        &self,
        destination: Destination,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: Option<&OwnedHeaders>,
    ) -> bool {
        let limit = self.limits[destination.index()];
        let bare = record_batch_size(key, value, None);
        let measure_headers = destination != Destination::Processed
            || headers.is_some_and(|h| rdkafka::message::Headers::count(h) > 1)
            || bare + 4096 > limit;
        let size = if measure_headers {
            record_batch_size(key, value, headers)
        } else {
            bare + 4096
        };
        size > limit
    }

    /// A record that could not be written: retried (retriable), or written in its fallback
    /// form (permanent; see [`Failure::Permanent`]).
    pub(super) fn failed(&mut self, retry: Retry, error: KafkaError) {
        match classify(&error) {
            Failure::Retriable => self.schedule_retry(retry, &error),
            Failure::Permanent => self.reroute(retry, &error),
        }
    }

    /// Writes a permanently refused record's fallback (in the same slot, so its batch and
    /// epoch complete once the fallback is delivered); when there is none left, stops the run.
    fn reroute(&mut self, retry: Retry, error: &KafkaError) {
        let (slot, destination, _) = unpack(retry.opaque);
        let topic = self.topics[destination.index()].clone();
        let record = Letter {
            key: retry.key,
            value: retry.value,
            headers: retry.headers,
            timestamp_ms: retry.timestamp_ms,
        };
        let why = error.to_string();
        let (fallback, opaque, what) = match destination {
            Destination::Processed => {
                let metrics = self.metrics();
                metrics.dead_lettered[ErrorCode::OutputRejected.index()].fetch_add(1, Relaxed);
                metrics.valid.fetch_sub(1, Relaxed);
                (
                    rejected_output(record, &why),
                    opaque(slot, Destination::DeadLetter, 0),
                    "dead-lettering it as output_rejected",
                )
            }
            Destination::DeadLetter if !is_reduced(retry.opaque) => {
                self.metrics().dead_letters_truncated.fetch_add(1, Relaxed);
                (
                    reduced_letter(record, &why),
                    reduced(opaque(slot, Destination::DeadLetter, 0)),
                    "writing it reduced (value dropped, __pipeline.errors.truncated)",
                )
            }
            _ => {
                log::error!("{topic} refused a record for good ({error}), and it has no fallback");
                self.fatal.get_or_insert(PipelineError::kafka(
                    format!(
                        "{topic} refuses the pipeline's records for good (even a reduced dead                          letter); stopping with nothing committed past them"
                    ),
                    error.clone(),
                ));
                return;
            }
        };
        let now = Instant::now();
        if self
            .last_reroute_log
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(5))
        {
            self.last_reroute_log = Some(now);
            log::warn!("{topic} refused a record for good ({error}); {what}");
        }
        let Letter {
            key,
            value,
            headers,
            timestamp_ms,
        } = fallback;
        self.send_or_retry(
            opaque,
            key.as_deref(),
            value.as_deref(),
            headers,
            timestamp_ms,
        );
    }

    fn schedule_retry(&mut self, mut retry: Retry, error: &KafkaError) {
        let (slot, destination, attempts) = unpack(retry.opaque);
        let backoff = retry_backoff(attempts);
        let now = Instant::now();
        if self
            .last_failure_log
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(5))
        {
            self.last_failure_log = Some(now);
            log::warn!(
                "delivery to {} failed ({error}); retrying in {backoff:?} (attempt {}); \
                 {} records wait for a retry and their input offsets stay uncommitted",
                self.topics[destination.index()],
                attempts + 1,
                self.retries.len() + 1
            );
        }
        let reduced_bit = retry.opaque & reduced(0);
        retry.opaque = opaque(slot, destination, attempts + 1) | reduced_bit;
        retry.not_before = now + backoff;
        self.retries.push_back(retry);
        self.note_retry_backlog();
    }

    fn note_retry_backlog(&self) {
        let backlog = &self.metrics().gauges.retry_backlog;
        backlog.store(self.retries.len() as u64, Relaxed);
    }

    fn resend_due(&mut self) {
        if self.retries.is_empty() {
            return;
        }
        let now = Instant::now();
        // A full pass over the backlog at most every 20 ms, not once per record sent.
        if now.duration_since(self.last_retry_pass) < RETRY_PASS_INTERVAL {
            return;
        }
        self.last_retry_pass = now;
        let mut waiting = VecDeque::with_capacity(self.retries.len());
        while let Some(retry) = self.retries.pop_front() {
            if retry.not_before > now {
                waiting.push_back(retry);
                continue;
            }
            self.send_or_retry(
                retry.opaque,
                retry.key.as_deref(),
                retry.value.as_deref(),
                retry.headers,
                retry.timestamp_ms,
            );
        }
        // Records rescheduled during this pass are already in `self.retries`.
        waiting.append(&mut self.retries);
        self.retries = waiting;
        self.note_retry_backlog();
    }

    fn check_fatal(&self) -> Result<(), PipelineError> {
        match self.producer.client().fatal_error() {
            Some((code, reason)) => Err(PipelineError::kafka(
                format!("producer fatal error ({reason})"),
                KafkaError::MessageProduction(code),
            )),
            None => Ok(()),
        }
    }
}

/// The largest record batch each output topic accepts (output, dead letters, insights): its
/// `max.message.bytes`, or Kafka's default for a topic that does not exist yet (it is created
/// with the default) or when the configuration cannot be read.
fn record_limits(config: &Config) -> [usize; 3] {
    let topics = [
        config.output_topic.as_str(),
        config.dlq_topic.as_str(),
        config.insights_topic.as_str(),
    ];
    let mut limits = [DEFAULT_MAX_MESSAGE_BYTES; 3];
    match max_message_bytes(&config.brokers, &config.producer_properties, &topics) {
        Ok(found) => {
            for (limit, found) in limits.iter_mut().zip(found) {
                *limit = found.unwrap_or(DEFAULT_MAX_MESSAGE_BYTES);
            }
        }
        Err(e) => log::warn!(
            "{e:#}; assuming the default max.message.bytes ({DEFAULT_MAX_MESSAGE_BYTES}) for the \
             output topics"
        ),
    }
    log::debug!("largest record batch per output topic: {limits:?}");
    limits
}
