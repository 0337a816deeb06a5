//! Counters and gauges of what the pipeline did, shared by its threads. The progress line
//! ([`super::progress`]), the exposition ([`super::exposition`]) and the readiness rule
//! ([`super::readiness`]) read them.
//!
//! Every counter is defined here and named for what it counts. Hot loops (the workers) sum into
//! a [`WorkerTally`] and publish it in batches, so the shared atomics are touched once per batch,
//! not once per record. The consumer and producer threads set their gauges (channel depth,
//! in-flight, lag) at most every few milliseconds. A scrape only loads atomics (and takes the lag
//! lock, written once per statistics interval). Nothing here logs per record.
//!
//! The metric names are a contract with the dashboards and alert rules: see
//! [`super::exposition`] and the README's "Metrics" section before renaming anything.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::latency::Latency;
use super::readiness::Health;
use crate::insights::histogram::LagHistogram;
use crate::insights::window::LateCause;
use crate::transform::ErrorCode;

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Pipeline-wide counters. All are monotonic totals since start.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Input records handed to the workers.
    pub received: AtomicU64,
    /// Input records that were valid and produced to the output topic.
    pub valid: AtomicU64,
    /// Input records dead-lettered, by [`ErrorCode::index`].
    pub dead_lettered: [AtomicU64; ErrorCode::ALL.len()],
    /// Output and dead-letter records acknowledged by the broker.
    pub delivered: AtomicU64,
    /// Records acknowledged by the broker per topic, by destination index (output, DLQ,
    /// insights).
    pub delivered_by_topic: [AtomicU64; 3],
    /// Deliveries that failed and were queued for a retry.
    pub delivery_failures: AtomicU64,
    /// Failed deliveries per topic, by destination index.
    pub delivery_failures_by_topic: [AtomicU64; 3],
    /// Dead letters the dead-letter topic refused whole, written reduced (value dropped).
    pub dead_letters_truncated: AtomicU64,
    /// Exactly-once: transactions aborted on an abortable error and read again in-process.
    pub rewinds: AtomicU64,
    /// Times the consumer paused its partitions because the workers were behind.
    pub pauses: AtomicU64,
    /// Partition assignments served.
    pub assigns: AtomicU64,
    /// Partition revocations served.
    pub revokes: AtomicU64,
    /// Offset commits that the broker acknowledged.
    pub commits: AtomicU64,
    /// Offset commits that failed.
    pub commit_failures: AtomicU64,
    /// Unix time in ms of the last acknowledged commit (0: none yet).
    pub last_commit_ms: AtomicU64,
    /// Insight records (window deltas) handed to the producer for publication.
    pub windows_published: AtomicU64,
    /// Events counted as late in the insights, by [`LateCause::index`].
    pub late_events: [AtomicU64; LateCause::ALL.len()],
    /// When the first input record was handed to the workers.
    pub first_received: OnceLock<Instant>,
    /// When the last output or dead letter was delivered, in µs after `first_received`.
    pub last_delivered_us: AtomicU64,
    /// End-to-end latency of delivered outputs and dead letters: delivery time minus the
    /// input record's timestamp, in ms. Only the producer thread writes it, once per batch of
    /// delivery reports.
    pub e2e_latency: Mutex<LagHistogram>,
    /// Gauges set by the stages.
    pub gauges: Gauges,
    /// Consume → delivery confirmed, for a sample of the records.
    pub latency: Latency,
    /// What `/ready` decides on.
    pub health: Health,
}

/// Point-in-time values the stages set.
#[derive(Debug)]
pub struct Gauges {
    /// Worker threads.
    pub workers: AtomicU64,
    /// Input records handed out and not yet committable.
    pub in_flight: AtomicU64,
    /// Records waiting in the consumer → workers channel.
    pub workers_channel: AtomicU64,
    /// Messages waiting in the workers → producer channel.
    pub producer_channel: AtomicU64,
    /// Whether the consumer has paused its partitions for backpressure.
    pub paused: AtomicBool,
    /// Records waiting for a retry after a retriable delivery failure.
    pub retry_backlog: AtomicU64,
    /// Consumer lag per input partition (high watermark − stored position), from the latest
    /// librdkafka statistics.
    pub lag: Mutex<Vec<(i32, i64)>>,
    /// Sum of `lag`; -1 until statistics arrived.
    pub lag_sum: AtomicI64,
    /// The instance's event-time watermark, Unix seconds (0: none yet), as of the latest
    /// batch a worker finished.
    pub watermark_secs: AtomicU64,
    /// Input partitions by watermark state, by [`PARTITION_STATES`] index.
    pub watermark_partitions: [AtomicU64; PARTITION_STATES.len()],
}

/// Labels of [`Gauges::watermark_partitions`]: in the minimum, silent for the idle timeout,
/// paused by alignment (held partitions are active too), assigned and waiting for a first
/// event.
pub const PARTITION_STATES: [&str; 4] = ["active", "idle", "held", "waiting"];

/// Lag and broker counts start as "unknown" (-1) until the first statistics arrive, whether the
/// counters come from [`Metrics::new`] or [`Default`].
impl Default for Gauges {
    fn default() -> Self {
        Gauges {
            workers: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            workers_channel: AtomicU64::new(0),
            producer_channel: AtomicU64::new(0),
            paused: AtomicBool::new(false),
            retry_backlog: AtomicU64::new(0),
            lag: Mutex::new(Vec::new()),
            lag_sum: AtomicI64::new(-1),
            watermark_secs: AtomicU64::new(0),
            watermark_partitions: Default::default(),
        }
    }
}

impl Metrics {
    /// Total dead letters over all codes.
    pub fn dead_lettered_total(&self) -> u64 {
        self.dead_lettered.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// Notes that `n` input records were handed to the workers.
    pub fn note_received(&self, n: u64) {
        self.first_received.get_or_init(Instant::now);
        self.received.fetch_add(n, Relaxed);
    }

    /// Creates the counters of a pipeline with `workers` workers, declaring it stalled when no
    /// commit lands for `stall_after` while there is lag.
    pub fn new(workers: usize, stall_after: Duration) -> Self {
        let m = Metrics::default();
        m.gauges.workers.store(workers as u64, Relaxed);
        m.health.start(stall_after, unix_ms());
        m
    }

    /// `Ok` when `/ready` answers 200, else the reason for the 503 ([`Health::check`]).
    pub fn readiness(&self, shutting_down: bool, now_ms: u64) -> Result<(), String> {
        let lag_sum = self.gauges.lag_sum.load(Relaxed);
        let last_commit_ms = self.last_commit_ms.load(Relaxed);
        self.health
            .check(shutting_down, lag_sum, last_commit_ms, now_ms)
    }

    /// Replaces the per-partition consumer lag (called once per statistics interval).
    pub fn set_lag(&self, mut lag: Vec<(i32, i64)>) {
        lag.sort_unstable();
        let sum = lag.iter().map(|l| l.1).sum::<i64>();
        let before = self.gauges.lag_sum.swap(sum, Relaxed);
        if sum > 0 && before <= 0 {
            self.health.lag_since_ms.store(unix_ms(), Relaxed);
        }
        *self.gauges.lag.lock().unwrap_or_else(|e| e.into_inner()) = lag;
    }

    /// Notes an acknowledged offset commit.
    pub fn note_commit(&self) {
        self.commits.fetch_add(1, Relaxed);
        self.last_commit_ms.store(unix_ms(), Relaxed);
    }

    /// Notes that `n` output records or dead letters were delivered.
    pub fn note_delivered(&self, n: u64) {
        self.delivered.fetch_add(n, Relaxed);
        if let Some(first) = self.first_received.get() {
            self.last_delivered_us
                .fetch_max(first.elapsed().as_micros() as u64, Relaxed);
        }
    }

    /// Adds a batch of end-to-end latencies (see [`Metrics::e2e_latency`]).
    pub fn note_latencies(&self, batch: &LagHistogram) {
        if batch.count() > 0 {
            self.e2e_latency
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .merge(batch);
        }
    }

    /// `latency p50 … p99 … max … ms`, or `None` before the first delivery.
    pub fn latency_summary(&self) -> Option<String> {
        let latency = self.e2e_latency.lock().unwrap_or_else(|e| e.into_inner());
        Some(format!(
            "latency p50 {} ms, p99 {} ms, max {} ms",
            latency.quantile(0.5)?,
            latency.quantile(0.99)?,
            latency.max()
        ))
    }

    /// The line logged at exit: records, time from the first consume to the last delivery,
    /// rate, and the end-to-end latency. `None` when nothing was received.
    pub fn summary(&self) -> Option<String> {
        self.first_received.get()?;
        let n = self.received.load(Relaxed);
        let secs = self.last_delivered_us.load(Relaxed) as f64 / 1e6;
        let rate = if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let latency = self
            .latency_summary()
            .unwrap_or_else(|| "no latency".into());
        Some(format!(
            "summary: {n} records in {secs:.3} s (first consume to last delivery): {rate:.0} records/s; \
             valid {}, dead letters {}; {latency} (input record timestamp to delivery)",
            self.valid.load(Relaxed),
            self.dead_lettered_total()
        ))
    }

    /// Adds a worker's batch of counts.
    pub fn publish(&self, tally: &mut WorkerTally) {
        if tally.valid > 0 {
            self.valid.fetch_add(tally.valid, Relaxed);
        }
        let counts = self.dead_lettered.iter().zip(tally.dead_lettered.iter());
        for (total, n) in counts.chain(self.late_events.iter().zip(tally.late.iter())) {
            if *n > 0 {
                total.fetch_add(*n, Relaxed);
            }
        }
        *tally = WorkerTally::default();
    }

    /// Sets the watermark gauges (a worker, once per batch): the instance's watermark (kept
    /// while there is none, so its lag grows while it waits) and the partitions by state, in
    /// [`PARTITION_STATES`] order. Written only when they change, so workers that agree do not
    /// take the cache line from each other.
    pub fn note_watermark(
        &self,
        watermark_secs: Option<u64>,
        partitions: [u64; PARTITION_STATES.len()],
    ) {
        let store = |gauge: &AtomicU64, value: u64| {
            if gauge.load(Relaxed) != value {
                gauge.store(value, Relaxed);
            }
        };
        if let Some(watermark) = watermark_secs {
            store(&self.gauges.watermark_secs, watermark);
        }
        for (gauge, n) in self.gauges.watermark_partitions.iter().zip(partitions) {
            store(gauge, n);
        }
    }

    /// A snapshot for the progress line.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            received: self.received.load(Relaxed),
            valid: self.valid.load(Relaxed),
            dead_lettered: std::array::from_fn(|i| self.dead_lettered[i].load(Relaxed)),
            delivered: self.delivered.load(Relaxed),
            delivery_failures: self.delivery_failures.load(Relaxed),
        }
    }
}

/// Counts a worker accumulates between publications.
#[derive(Debug, Default)]
pub struct WorkerTally {
    /// Valid records since the last publication.
    pub valid: u64,
    /// Dead letters since the last publication, by code index.
    pub dead_lettered: [u64; ErrorCode::ALL.len()],
    /// Late events since the last publication, by [`LateCause::index`].
    pub late: [u64; LateCause::ALL.len()],
}

impl WorkerTally {
    /// Records processed since the last publication.
    pub fn total(&self) -> u64 {
        self.valid + self.dead_lettered.iter().sum::<u64>()
    }
}

/// Counter values at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// See [`Metrics::received`].
    pub received: u64,
    /// See [`Metrics::valid`].
    pub valid: u64,
    /// See [`Metrics::dead_lettered`].
    pub dead_lettered: [u64; ErrorCode::ALL.len()],
    /// See [`Metrics::delivered`].
    pub delivered: u64,
    /// See [`Metrics::delivery_failures`].
    pub delivery_failures: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::exposition::render;

    #[test]
    fn default_and_new_both_start_with_lag_and_brokers_unknown() {
        for m in [Metrics::default(), Metrics::new(2, Duration::from_secs(60))] {
            assert_eq!(m.gauges.lag_sum.load(Relaxed), -1);
            m.health.subscribed.store(true, Relaxed);
            assert_eq!(
                m.readiness(false, unix_ms()),
                Err("starting: no producer statistics yet".into()),
                "not 'connected to no broker'"
            );
            let text = render(&m, ["o", "d", "i"], "in", false);
            assert!(
                !text
                    .lines()
                    .any(|l| l.starts_with("kafka_pipeline_consumer_lag_sum ")),
                "an unknown lag is not rendered as 0"
            );
            assert!(
                !text
                    .lines()
                    .any(|l| l.starts_with("kafka_pipeline_watermark_lag_seconds ")),
                "no watermark lag before the first event"
            );
        }
    }

    #[test]
    fn publish_adds_and_resets_the_tally() {
        let m = Metrics::default();
        let mut t = WorkerTally {
            valid: 3,
            ..Default::default()
        };
        t.dead_lettered[ErrorCode::MissingField.index()] = 2;
        assert_eq!(t.total(), 5);
        m.publish(&mut t);
        assert_eq!(t.total(), 0);
        m.publish(&mut WorkerTally {
            valid: 1,
            ..Default::default()
        });
        let s = m.snapshot();
        assert_eq!(s.valid, 4);
        assert_eq!(s.dead_lettered[ErrorCode::MissingField.index()], 2);
        assert_eq!(m.dead_lettered_total(), 2);
    }

    #[test]
    fn summary_needs_a_record_and_reports_counts() {
        let m = Metrics::default();
        assert_eq!(m.summary(), None);
        m.note_received(1);
        m.publish(&mut WorkerTally {
            valid: 1,
            ..Default::default()
        });
        std::thread::sleep(Duration::from_millis(2));
        m.note_delivered(1);
        let line = m.summary().unwrap();
        assert!(line.starts_with("summary: 1 records in 0.0"), "{line}");
        assert!(
            line.contains("valid 1, dead letters 0; no latency"),
            "{line}"
        );
        let mut batch = LagHistogram::new();
        for ms in [10, 20, 30, 1000] {
            batch.record(ms);
        }
        m.note_latencies(&batch);
        let line = m.summary().unwrap();
        assert!(
            line.ends_with(
                "valid 1, dead letters 0; latency p50 20 ms, p99 1000 ms, max 1000 ms \
                 (input record timestamp to delivery)"
            ),
            "{line}"
        );
    }
}
