//! The producer stage: one thread owns the `BaseProducer`, sends what the workers made, merges
//! the workers' insight windows and publishes them, serves delivery reports and reports each
//! done input record back to the consumer thread.
//!
//! - An input record is done when its output is delivered and the insight window part that
//!   counts it is delivered ([`WindowMerger`] decides); its [`Source`] then goes to the consumer
//!   thread (the "done" channel), and only then may its offset be committed.
//! - A record whose delivery fails (after librdkafka's own retries) is resent by this thread with
//!   exponential backoff, for as long as it takes; its input offset stays uncommitted meanwhile.
//!   When more than [`MAX_RETRY_BACKLOG`] records wait for a retry the thread stops taking new
//!   work, the channels fill up and the consumer pauses: an unwritable topic stops consumption
//!   rather than skipping records.
//! - `QueueFull` hands the record back: poll (which serves delivery reports and frees the
//!   queue), then send again.
//! - On shutdown it drains the channel, waits for outstanding deliveries and retries until the
//!   deadline, and flushes before the producer is dropped (dropping purges the queue).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use crate::clients::{producer_config, ClientLog};
use crate::config::Config;
use crate::error::PipelineError;
use crate::insights::histogram::LagHistogram;
use crate::insights::record::InsightRecord;
use crate::merger::{Publication, WindowMerger};
use crate::metrics::{destination_index, unix_ms, Metrics};
use crate::record::{Destination, Origin, OutputRecord, Source, ToProducer};
use crate::shutdown::Shutdown;

/// Records waiting for a retry beyond which no new work is taken.
pub const MAX_RETRY_BACKLOG: usize = 10_000;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
const RETRY_PASS_INTERVAL: Duration = Duration::from_millis(20);

/// Delivery opaque: what the message was, and how many times it was sent before (so a failed
/// delivery backs off longer each time).
type Opaque = Box<(Origin, u32)>;

/// What a delivery report said.
enum Delivery {
    Delivered(Origin),
    Failed(OutputRecord, KafkaError, u32),
}

/// Receives delivery reports (on the producer thread, inside `poll`) and queues them for the
/// stage, which owns the window merger.
pub struct DeliveryContext {
    reports: Mutex<Vec<Delivery>>,
    metrics: Arc<Metrics>,
    log: ClientLog,
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.log.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log.error("producer", &error, reason);
    }

    fn stats_raw(&self, statistics: &[u8]) {
        if let Some(up) = brokers_up(statistics) {
            self.metrics.health.producer_brokers_up.store(up, Relaxed);
        }
    }
}

/// Brokers in state `UP` in a librdkafka statistics document (readiness: the producer is
/// connected).
fn brokers_up(statistics: &[u8]) -> Option<i64> {
    let stats: serde_json::Value = serde_json::from_slice(statistics).ok()?;
    let brokers = stats.get("brokers")?.as_object()?;
    Some(
        brokers
            .values()
            .filter(|b| b.get("state").and_then(|s| s.as_str()) == Some("UP"))
            .count() as i64,
    )
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Opaque;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Opaque) {
        let (origin, attempts) = *opaque;
        let report = match result {
            Ok(_) => Delivery::Delivered(origin),
            Err((error, message)) => {
                self.metrics.delivery_failures.fetch_add(1, Relaxed);
                self.metrics.delivery_failures_by_topic[destination_index(origin.destination)]
                    .fetch_add(1, Relaxed);
                let record = OutputRecord {
                    origin,
                    key: message.key().map(<[u8]>::to_vec),
                    value: message.payload().map(<[u8]>::to_vec),
                    headers: message.headers().map(|h| h.detach()),
                };
                Delivery::Failed(record, error.clone(), attempts)
            }
        };
        self.reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(report);
    }
}

struct Retry {
    record: OutputRecord,
    attempts: u32,
    not_before: Instant,
}

/// The producer thread's state.
pub struct ProducerStage<'a> {
    producer: BaseProducer<DeliveryContext>,
    output_topic: String,
    dlq_topic: String,
    insights_topic: String,
    instance: String,
    merger: WindowMerger,
    flush_request: &'a AtomicU64,
    done_tx: Sender<Source>,
    retries: VecDeque<Retry>,
    shutdown: &'a Shutdown,
    last_failure_log: Option<Instant>,
    last_retry_pass: Instant,
}

impl<'a> ProducerStage<'a> {
    /// Creates the producer. A bad `-X`/`--producer-property` is a configuration error.
    pub fn new(
        config: &Config,
        done_tx: Sender<Source>,
        metrics: Arc<Metrics>,
        flush_request: &'a AtomicU64,
        shutdown: &'a Shutdown,
    ) -> Result<Self, PipelineError> {
        let context = DeliveryContext {
            reports: Mutex::default(),
            metrics,
            log: ClientLog::default(),
        };
        let producer = producer_config(config)
            .create_with_context(context)
            .map_err(|e| PipelineError::Config(format!("producer: {e}")))?;
        Ok(ProducerStage {
            producer,
            output_topic: config.output_topic.clone(),
            dlq_topic: config.dlq_topic.clone(),
            insights_topic: config.insights_topic.clone(),
            instance: config.instance_id.clone(),
            merger: WindowMerger::new(config.workers),
            flush_request,
            done_tx,
            retries: VecDeque::new(),
            shutdown,
            last_failure_log: None,
            last_retry_pass: Instant::now(),
        })
    }

    /// Runs until the workers are gone and everything is delivered, or the shutdown deadline.
    pub fn run(mut self, rx: Receiver<ToProducer>) -> Result<(), PipelineError> {
        let mut received = 0u64;
        loop {
            self.producer.poll(Duration::ZERO);
            self.apply_delivery_reports();
            self.resend_due();
            self.check_fatal()?;
            if self.shutdown.overdue() {
                break;
            }
            if self.retries.len() >= MAX_RETRY_BACKLOG {
                // Backpressure: leave new work in the channel until retries get through.
                self.producer.poll(Duration::from_millis(50));
                continue;
            }
            // BaseProducer::poll waits out its whole timeout even when events arrive, so the
            // wait for work happens on the channel (wakes at once) and poll(ZERO) above serves
            // the delivery reports at least every millisecond.
            let next = match rx.try_recv() {
                Ok(message) => {
                    received += 1;
                    if received % 1024 == 0 {
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
                Ok(ToProducer::Record(record)) => self.send_output(record),
                Ok(ToProducer::Windows(report)) => {
                    log::trace!(
                        "worker {} closed {} windows, all before {}, flushed {}",
                        report.worker,
                        report.closed.len(),
                        report.closed_before,
                        report.flushed
                    );
                    self.merger.report(
                        report.worker,
                        report.closed,
                        report.closed_before,
                        report.flushed,
                    );
                    self.publish_ready();
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.finish()
    }

    fn note_channel_depth(&self, rx: &Receiver<ToProducer>) {
        let depth = &self.producer.context().metrics.gauges.producer_channel;
        depth.store(rx.len() as u64, Relaxed);
    }

    /// Tags an input-derived record with its window part, then sends it.
    fn send_output(&mut self, mut record: OutputRecord) {
        if let (Some(source), Some(window)) = (record.origin.source, record.origin.window) {
            record.origin.part = self.merger.record_received(window, source.partition);
        }
        self.send(record, 0);
    }

    /// Publishes every window the merger says is ready.
    fn publish_ready(&mut self) {
        for publication in self.merger.ready(self.flush_request.load(Relaxed)) {
            log::debug!(
                "publishing window {} part {} ({} events, partial: {})",
                publication.window,
                publication.part,
                publication.stats.received,
                publication.stats.partial
            );
            let record = self.insight_record(publication);
            self.producer
                .context()
                .metrics
                .windows_published
                .fetch_add(1, Relaxed);
            self.send(record, 0);
        }
    }

    fn insight_record(&self, p: Publication) -> OutputRecord {
        let published_at_ms = unix_ms();
        let record =
            InsightRecord::from_stats(p.stats, &self.instance, &p.partitions, published_at_ms);
        OutputRecord {
            origin: Origin {
                source: None,
                destination: Destination::Insights,
                window: Some(p.window),
                part: p.part,
                input_timestamp_ms: None,
            },
            key: Some(p.window.to_string().into_bytes()),
            value: Some(record.to_json().into_bytes()),
            headers: None,
        }
    }

    /// Applies the delivery reports queued by the context: done records go to the consumer
    /// thread, failures to the retry queue.
    fn apply_delivery_reports(&mut self) {
        let reports = std::mem::take(
            &mut *self
                .producer
                .context()
                .reports
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        if reports.is_empty() {
            return;
        }
        let metrics = &self.producer.context().metrics;
        // One clock read per batch of delivery reports.
        let now_ms = unix_ms();
        let mut delivered = 0;
        let mut latency = LagHistogram::new();
        let mut by_topic = [0u64; 3];
        for report in &reports {
            if let Delivery::Delivered(origin) = report {
                by_topic[destination_index(origin.destination)] += 1;
                if let Some(source) = origin.source {
                    delivered += 1;
                    metrics.latency.delivered(source.partition, source.offset);
                    if let Some(ts) = origin.input_timestamp_ms {
                        latency.record(now_ms as i64 - ts);
                    }
                }
            }
        }
        if delivered > 0 {
            metrics.note_delivered(delivered);
        }
        metrics.note_latencies(&latency);
        for (total, n) in metrics.delivered_by_topic.iter().zip(by_topic) {
            if n > 0 {
                total.fetch_add(n, Relaxed);
            }
        }
        for report in reports {
            match report {
                // The consumer thread may already be gone at the very end of a shutdown, so
                // sends to it may fail.
                Delivery::Delivered(origin) => match (origin.source, origin.window) {
                    (Some(source), Some(window)) => {
                        if let Some(done) =
                            self.merger.output_delivered(window, origin.part, source)
                        {
                            let _ = self.done_tx.send(done);
                        }
                    }
                    // Not counted in any window (--passthrough): done when delivered.
                    (Some(source), None) => {
                        let _ = self.done_tx.send(source);
                    }
                    (None, Some(window)) => {
                        for done in self.merger.insight_delivered(window, origin.part) {
                            let _ = self.done_tx.send(done);
                        }
                    }
                    (None, None) => {}
                },
                Delivery::Failed(record, error, attempts) => {
                    self.schedule_retry(record, attempts, &error)
                }
            }
        }
    }

    /// Waits for outstanding deliveries and retries until the deadline, then flushes.
    fn finish(mut self) -> Result<(), PipelineError> {
        while self.producer.in_flight_count() > 0 || !self.retries.is_empty() {
            if self.shutdown.overdue() {
                log::warn!(
                    "shutdown deadline reached with {} messages queued and {} waiting for a retry",
                    self.producer.in_flight_count(),
                    self.retries.len()
                );
                break;
            }
            self.producer.poll(Duration::from_millis(20));
            self.apply_delivery_reports();
            self.resend_due();
            self.check_fatal()?;
        }
        let grace = self.shutdown.remaining().unwrap_or(Duration::from_secs(5));
        if let Err(e) = self.producer.flush(grace) {
            log::warn!("producer flush: {e}");
        }
        Ok(())
    }

    fn topic(&self, destination: Destination) -> &str {
        match destination {
            Destination::Processed => &self.output_topic,
            Destination::DeadLetter => &self.dlq_topic,
            Destination::Insights => &self.insights_topic,
        }
    }

    fn send(&mut self, mut record: OutputRecord, attempts: u32) {
        let topic = self.topic(record.origin.destination).to_owned();
        let mut base: BaseRecord<'_, [u8], [u8], Opaque> =
            BaseRecord::with_opaque_to(&topic, Box::new((record.origin, attempts)));
        if let Some(key) = &record.key {
            base = base.key(key.as_slice());
        }
        if let Some(value) = &record.value {
            base = base.payload(value.as_slice());
        }
        if let Some(headers) = record.headers.take() {
            base = base.headers(headers);
        }
        loop {
            match self.producer.send(base) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    if self.shutdown.overdue() {
                        // Not delivered, so its input offset is never committed: it is read
                        // again after the restart.
                        return;
                    }
                    base = back;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((error, back)) => {
                    let metrics = &self.producer.context().metrics;
                    metrics.delivery_failures.fetch_add(1, Relaxed);
                    metrics.delivery_failures_by_topic
                        [destination_index(record.origin.destination)]
                    .fetch_add(1, Relaxed);
                    let headers = back.headers;
                    record.headers = headers;
                    self.schedule_retry(record, attempts, &error);
                    return;
                }
            }
        }
    }

    fn schedule_retry(&mut self, record: OutputRecord, attempts: u32, error: &KafkaError) {
        let backoff = FIRST_BACKOFF
            .saturating_mul(1 << attempts.min(10))
            .min(MAX_BACKOFF);
        let now = Instant::now();
        if self
            .last_failure_log
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(5))
        {
            self.last_failure_log = Some(now);
            log::warn!(
                "delivery to {} failed ({error}); retrying in {backoff:?} (attempt {}); \
                 {} records wait for a retry and their input offsets stay uncommitted",
                self.topic(record.origin.destination),
                attempts + 1,
                self.retries.len() + 1
            );
        }
        self.retries.push_back(Retry {
            record,
            attempts: attempts + 1,
            not_before: now + backoff,
        });
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
            if retry.not_before <= now {
                self.send(retry.record, retry.attempts);
            } else {
                waiting.push_back(retry);
            }
        }
        // Records rescheduled by `send` during this pass are already in `self.retries`.
        waiting.append(&mut self.retries);
        self.retries = waiting;
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
