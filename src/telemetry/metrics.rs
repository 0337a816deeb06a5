//! Counters of what the pipeline did, shared by its threads; the periodic progress line; the
//! Prometheus exposition and the readiness rule served by [`crate::telemetry::http`].
//!
//! Every counter is defined here and named for what it counts. Hot loops (the workers) sum into
//! a [`WorkerTally`] and publish it in batches, so the shared atomics are touched once per batch,
//! not once per record. The consumer and producer threads set their gauges (channel depth,
//! in-flight, lag) at most every few milliseconds. A scrape only loads atomics (and takes the lag
//! lock, written once per statistics interval). Nothing here logs per record.
//!
//! The metric names are a contract with the dashboards and alert rules: see [`render`] and the
//! README's "Metrics" section before renaming anything.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::insights::histogram::LagHistogram;
use crate::pipeline::messages::Destination;
use crate::transform::ErrorCode;

/// Index of a destination in the per-topic counters.
pub fn destination_index(d: Destination) -> usize {
    match d {
        Destination::Processed => 0,
        Destination::DeadLetter => 1,
        Destination::Insights => 2,
    }
}

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
    /// Records acknowledged by the broker per topic, by [`destination_index`] (output, DLQ,
    /// insights).
    pub delivered_by_topic: [AtomicU64; 3],
    /// Deliveries that failed and were queued for a retry.
    pub delivery_failures: AtomicU64,
    /// Failed deliveries per topic, by [`destination_index`].
    pub delivery_failures_by_topic: [AtomicU64; 3],
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
    /// Consumer lag per input partition (high watermark − stored position), from the latest
    /// librdkafka statistics.
    pub lag: Mutex<Vec<(i32, i64)>>,
    /// Sum of `lag`; -1 until statistics arrived.
    pub lag_sum: AtomicI64,
}

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
            lag: Mutex::new(Vec::new()),
            lag_sum: AtomicI64::new(-1),
        }
    }
}

impl Default for Health {
    fn default() -> Self {
        Health {
            subscribed: AtomicBool::new(false),
            producer_brokers_up: AtomicI64::new(-1),
            lag_since_ms: AtomicU64::new(0),
            stall_after_ms: AtomicU64::new(0),
            started_ms: AtomicU64::new(0),
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
        m.health
            .stall_after_ms
            .store(stall_after.as_millis() as u64, Relaxed);
        m.health.started_ms.store(unix_ms(), Relaxed);
        m
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
        for (total, n) in self.dead_lettered.iter().zip(tally.dead_lettered.iter()) {
            if *n > 0 {
                total.fetch_add(*n, Relaxed);
            }
        }
        *tally = WorkerTally::default();
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

/// What the consumer thread knows that the counters don't, for the progress line.
#[derive(Debug, Default)]
pub struct ProgressExtras {
    /// Records handed to workers and not yet confirmed delivered.
    pub in_flight: usize,
    /// Committable position per partition.
    pub positions: Vec<(i32, Option<i64>)>,
    /// Sum over partitions of high watermark − committable position, when known.
    pub lag: Option<i64>,
    /// Whether the partitions are paused for backpressure.
    pub paused: bool,
}

/// Formats the periodic progress line: rates since the previous snapshot, totals, dead letters
/// by code, in-flight, lag and positions.
pub fn progress_line(
    prev: &Snapshot,
    now: &Snapshot,
    elapsed: Duration,
    extras: &ProgressExtras,
) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let rate = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / secs;
    let dlq_total: u64 = now.dead_lettered.iter().sum();
    let mut line = format!(
        "in {} ({:.0}/s) | valid {} | dlq {} ({:.0}/s)",
        now.received,
        rate(prev.received, now.received),
        now.valid,
        dlq_total,
        rate(prev.dead_lettered.iter().sum(), dlq_total),
    );
    if dlq_total > 0 {
        line.push_str(" [");
        let mut first = true;
        for code in ErrorCode::ALL {
            let n = now.dead_lettered[code.index()];
            if n > 0 {
                if !first {
                    line.push(' ');
                }
                first = false;
                let _ = write!(line, "{code}={n}");
            }
        }
        line.push(']');
    }
    let _ = write!(
        line,
        " | delivered {} | in-flight {}",
        now.delivered, extras.in_flight
    );
    if now.delivery_failures > 0 {
        let _ = write!(line, " | delivery failures {}", now.delivery_failures);
    }
    if let Some(lag) = extras.lag {
        let _ = write!(line, " | lag {lag}");
    }
    if extras.paused {
        line.push_str(" | paused (backpressure)");
    }
    if !extras.positions.is_empty() {
        line.push_str(" | positions");
        for (p, pos) in &extras.positions {
            match pos {
                Some(pos) => {
                    let _ = write!(line, " p{p}={pos}");
                }
                None => {
                    let _ = write!(line, " p{p}=-");
                }
            }
        }
    }
    line
}

/// Upper bounds, in seconds, of the processing-latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Processing latency, per batch: from the moment its first record was polled until its last
/// output (processed record or dead letter) was confirmed by the broker. The time travels with
/// the batch, so no sample can pair a record with another record's start; the producer thread
/// observes one value per batch.
#[derive(Debug, Default)]
pub struct Latency {
    /// Observations per bucket (not cumulative); the last slot is +Inf.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Latency {
    /// Adds one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(d.as_micros() as u64, Relaxed);
    }
}

/// What `/ready` decides on, besides the counters.
#[derive(Debug)]
pub struct Health {
    /// The consumer has subscribed (it then has an assignment or waits for one).
    pub subscribed: AtomicBool,
    /// Brokers the producer is connected to per its latest statistics; -1 before the first.
    pub producer_brokers_up: AtomicI64,
    /// Unix ms when the consumer lag last went from zero (or unknown) to positive.
    pub lag_since_ms: AtomicU64,
    stall_after_ms: AtomicU64,
    started_ms: AtomicU64,
}

impl Metrics {
    /// `Ok` when `/ready` answers 200, else the one-line reason for the 503. Ready means: not
    /// shutting down, subscribed, the producer connected to a broker, and — while the consumer
    /// lags — an offset commit within the stall timeout (a stuck pipeline is not ready).
    pub fn readiness(&self, shutting_down: bool, now_ms: u64) -> Result<(), String> {
        let h = &self.health;
        if shutting_down {
            return Err("shutting down".into());
        }
        if !h.subscribed.load(Relaxed) {
            return Err("starting: consumer not subscribed yet".into());
        }
        match self.health.producer_brokers_up.load(Relaxed) {
            -1 => return Err("starting: no producer statistics yet".into()),
            0 => return Err("producer not connected to any broker".into()),
            _ => {}
        }
        let lag = self.gauges.lag_sum.load(Relaxed);
        if lag > 0 {
            let since = self
                .last_commit_ms
                .load(Relaxed)
                .max(h.lag_since_ms.load(Relaxed))
                .max(h.started_ms.load(Relaxed));
            let stalled_for = now_ms.saturating_sub(since);
            let stall_after = h.stall_after_ms.load(Relaxed);
            if stalled_for > stall_after {
                return Err(format!(
                    "stalled: no offset commit for {} s (limit {} s) while consumer lag is {lag}",
                    stalled_for / 1000,
                    stall_after / 1000
                ));
            }
        }
        Ok(())
    }
}

/// Topic names for the `topic` label, by [`destination_index`].
pub type TopicNames<'a> = [&'a str; 3];

/// Renders every metric in the Prometheus text exposition format 0.0.4.
pub fn render(m: &Metrics, topics: TopicNames<'_>, input_topic: &str, ready: bool) -> String {
    let mut out = String::with_capacity(8192);
    header(
        &mut out,
        "build_info",
        "gauge",
        "Version and git revision of the running binary (always 1).",
    );
    let _ = writeln!(
        out,
        "kafka_pipeline_build_info{{version=\"{}\",revision=\"{}\"}} 1",
        label(env!("CARGO_PKG_VERSION")),
        label(option_env!("KAFKA_PIPELINE_REVISION").unwrap_or("unknown"))
    );
    let g = &m.gauges;
    simple(
        &mut out,
        "workers",
        "gauge",
        "Worker threads.",
        g.workers.load(Relaxed),
    );
    simple(
        &mut out,
        "events_received_total",
        "counter",
        "Input records handed to the workers.",
        m.received.load(Relaxed),
    );
    simple(
        &mut out,
        "events_processed_total",
        "counter",
        "Valid input records transformed to the output topic.",
        m.valid.load(Relaxed),
    );
    header(
        &mut out,
        "events_dead_lettered_total",
        "counter",
        "Input records sent to the dead-letter topic, by error code.",
    );
    for code in ErrorCode::ALL {
        let _ = writeln!(
            out,
            "kafka_pipeline_events_dead_lettered_total{{code=\"{code}\"}} {}",
            m.dead_lettered[code.index()].load(Relaxed)
        );
    }
    for (name, help, values) in [
        (
            "records_delivered_total",
            "Records acknowledged by the broker, by topic (output, dead letters, insights).",
            &m.delivered_by_topic,
        ),
        (
            "delivery_failures_total",
            "Deliveries that failed and are retried, by topic.",
            &m.delivery_failures_by_topic,
        ),
    ] {
        header(&mut out, name, "counter", help);
        for (topic, value) in topics.iter().zip(values) {
            let _ = writeln!(
                out,
                "kafka_pipeline_{name}{{topic=\"{}\"}} {}",
                label(topic),
                value.load(Relaxed)
            );
        }
    }
    simple(
        &mut out,
        "commits_total",
        "counter",
        "Offset commits acknowledged by the group coordinator.",
        m.commits.load(Relaxed),
    );
    simple(
        &mut out,
        "commit_failures_total",
        "counter",
        "Offset commits that failed.",
        m.commit_failures.load(Relaxed),
    );
    header(
        &mut out,
        "rebalances_total",
        "counter",
        "Consumer group rebalances served, by kind.",
    );
    let _ = writeln!(
        out,
        "kafka_pipeline_rebalances_total{{kind=\"assign\"}} {}",
        m.assigns.load(Relaxed)
    );
    let _ = writeln!(
        out,
        "kafka_pipeline_rebalances_total{{kind=\"revoke\"}} {}",
        m.revokes.load(Relaxed)
    );
    simple(
        &mut out,
        "in_flight_records",
        "gauge",
        "Input records consumed and not yet committable (output or insight window not delivered).",
        g.in_flight.load(Relaxed),
    );
    header(
        &mut out,
        "channel_depth",
        "gauge",
        "Messages waiting in the bounded channels between the stages.",
    );
    let _ = writeln!(
        out,
        "kafka_pipeline_channel_depth{{channel=\"workers\"}} {}",
        g.workers_channel.load(Relaxed)
    );
    let _ = writeln!(
        out,
        "kafka_pipeline_channel_depth{{channel=\"producer\"}} {}",
        g.producer_channel.load(Relaxed)
    );
    simple(
        &mut out,
        "consumer_paused",
        "gauge",
        "1 while the consumer has paused its partitions because the workers are behind.",
        u64::from(g.paused.load(Relaxed)),
    );
    header(
        &mut out,
        "consumer_lag",
        "gauge",
        "High watermark minus stored position per input partition, from librdkafka statistics.",
    );
    for (partition, lag) in g.lag.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        let _ = writeln!(
            out,
            "kafka_pipeline_consumer_lag{{topic=\"{}\",partition=\"{partition}\"}} {lag}",
            label(input_topic)
        );
    }
    header(
        &mut out,
        "consumer_lag_sum",
        "gauge",
        "Sum of kafka_pipeline_consumer_lag over the assigned partitions (absent until known).",
    );
    let lag_sum = g.lag_sum.load(Relaxed);
    if lag_sum >= 0 {
        let _ = writeln!(out, "kafka_pipeline_consumer_lag_sum {lag_sum}");
    }
    header(
        &mut out,
        "last_commit_timestamp_seconds",
        "gauge",
        "Unix time of the last acknowledged offset commit (0: none yet).",
    );
    let _ = writeln!(
        out,
        "kafka_pipeline_last_commit_timestamp_seconds {}",
        m.last_commit_ms.load(Relaxed) as f64 / 1000.0
    );
    header(
        &mut out,
        "processing_latency_seconds",
        "histogram",
        "Per batch: first record polled to last output delivery confirmed.",
    );
    let mut cumulative = 0;
    for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
        cumulative += m.latency.buckets[i].load(Relaxed);
        let _ = writeln!(
            out,
            "kafka_pipeline_processing_latency_seconds_bucket{{le=\"{le}\"}} {cumulative}"
        );
    }
    cumulative += m.latency.buckets[LATENCY_BUCKETS.len()].load(Relaxed);
    let _ = writeln!(
        out,
        "kafka_pipeline_processing_latency_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
    );
    let _ = writeln!(
        out,
        "kafka_pipeline_processing_latency_seconds_sum {}",
        m.latency.sum_us.load(Relaxed) as f64 / 1e6
    );
    let _ = writeln!(
        out,
        "kafka_pipeline_processing_latency_seconds_count {cumulative}"
    );
    simple(
        &mut out,
        "insights_windows_published_total",
        "counter",
        "Insight records published (one per window, commit epoch and instance).",
        m.windows_published.load(Relaxed),
    );
    simple(
        &mut out,
        "ready",
        "gauge",
        "1 when /ready answers 200.",
        u64::from(ready),
    );
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP kafka_pipeline_{name} {help}");
    let _ = writeln!(out, "# TYPE kafka_pipeline_{name} {kind}");
}

fn simple(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    header(out, name, kind, help);
    let _ = writeln!(out, "kafka_pipeline_{name} {value}");
}

/// Escapes a label value (backslash, quote, newline).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// The names the dashboards and alert rules use (README "Metrics and health").
    const AGREED: [&str; 19] = [
        "build_info",
        "workers",
        "events_received_total",
        "events_processed_total",
        "events_dead_lettered_total",
        "records_delivered_total",
        "delivery_failures_total",
        "commits_total",
        "commit_failures_total",
        "rebalances_total",
        "in_flight_records",
        "channel_depth",
        "consumer_paused",
        "consumer_lag",
        "consumer_lag_sum",
        "last_commit_timestamp_seconds",
        "processing_latency_seconds",
        "insights_windows_published_total",
        "ready",
    ];

    #[test]
    fn exposition_declares_every_agreed_family_and_each_sample_belongs_to_one() {
        let m = Metrics::new(4, Duration::from_secs(60));
        m.set_lag(vec![(1, 7), (0, 3)]);
        m.latency.observe(Duration::from_millis(3));
        m.latency.observe(Duration::from_secs(100));
        m.delivered_by_topic[1].fetch_add(2, Relaxed);
        let text = render(&m, ["out", "dlq", "ins"], "in", true);
        let mut declared = std::collections::BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE kafka_pipeline_") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(
                    declared.insert(name.to_owned(), kind.to_owned()).is_none(),
                    "{name} twice"
                );
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let name = name.strip_prefix("kafka_pipeline_").expect(line);
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| {
                        name.strip_suffix(s)
                            .filter(|f| declared.get(*f).is_some_and(|k| k == "histogram"))
                    })
                    .unwrap_or(name);
                assert!(declared.contains_key(family), "sample without TYPE: {line}");
                let value = line.rsplit(' ').next().unwrap();
                assert!(value.parse::<f64>().is_ok(), "{line}");
            }
        }
        for name in AGREED {
            assert!(declared.contains_key(name), "{name} missing:\n{text}");
        }
        assert_eq!(declared.len(), AGREED.len(), "{declared:?}");
        for line in [
            "kafka_pipeline_workers 4",
            "kafka_pipeline_consumer_lag{topic=\"in\",partition=\"0\"} 3",
            "kafka_pipeline_consumer_lag{topic=\"in\",partition=\"1\"} 7",
            "kafka_pipeline_consumer_lag_sum 10",
            "kafka_pipeline_records_delivered_total{topic=\"dlq\"} 2",
            "kafka_pipeline_processing_latency_seconds_bucket{le=\"0.001\"} 0",
            "kafka_pipeline_processing_latency_seconds_bucket{le=\"0.005\"} 1",
            "kafka_pipeline_processing_latency_seconds_bucket{le=\"60\"} 1",
            "kafka_pipeline_processing_latency_seconds_bucket{le=\"+Inf\"} 2",
            "kafka_pipeline_processing_latency_seconds_count 2",
            "kafka_pipeline_processing_latency_seconds_sum 100.003",
            "kafka_pipeline_events_dead_lettered_total{code=\"too_deep\"} 0",
            "kafka_pipeline_rebalances_total{kind=\"revoke\"} 0",
            "kafka_pipeline_ready 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }

    #[test]
    fn latency_buckets_each_observation_once() {
        let l = Latency::default();
        l.observe(Duration::from_micros(500));
        l.observe(Duration::from_millis(30));
        l.observe(Duration::from_secs(100));
        assert_eq!(l.count.load(Relaxed), 3);
        assert_eq!(l.buckets[0].load(Relaxed), 1, "0.5 ms <= 1 ms");
        assert_eq!(l.buckets[4].load(Relaxed), 1, "30 ms in the 50 ms bucket");
        assert_eq!(l.buckets[LATENCY_BUCKETS.len()].load(Relaxed), 1, "+Inf");
        assert_eq!(l.sum_us.load(Relaxed), 100_030_500);
    }

    #[test]
    fn progress_line_shows_rates_codes_and_positions() {
        let prev = Snapshot {
            received: 100,
            ..Default::default()
        };
        let mut now = Snapshot {
            received: 1100,
            valid: 1000,
            delivered: 1090,
            ..Default::default()
        };
        now.dead_lettered[ErrorCode::InvalidJson.index()] = 60;
        now.dead_lettered[ErrorCode::MissingField.index()] = 40;
        let extras = ProgressExtras {
            in_flight: 10,
            positions: vec![(0, Some(500)), (1, None)],
            lag: Some(7),
            paused: false,
        };
        let line = progress_line(&prev, &now, Duration::from_secs(10), &extras);
        assert_eq!(
            line,
            "in 1100 (100/s) | valid 1000 | dlq 100 (10/s) [invalid_json=60 missing_field=40] \
             | delivered 1090 | in-flight 10 | lag 7 | positions p0=500 p1=-"
        );
    }
}
