//! Counters of what the pipeline did, shared by its threads, and the periodic progress line.
//!
//! Every counter is defined here and named for what it counts. Hot loops (the workers) sum into
//! a [`WorkerTally`] and publish it in batches, so the shared atomics are touched once per batch,
//! not once per record. Nothing here logs per record.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::insights::histogram::LagHistogram;
use crate::transform::ErrorCode;

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
    /// Deliveries that failed and were queued for a retry.
    pub delivery_failures: AtomicU64,
    /// Times the consumer paused its partitions because the workers were behind.
    pub pauses: AtomicU64,
    /// Rebalances (assignments and revocations) served.
    pub rebalances: AtomicU64,
    /// Offset commits that the broker acknowledged.
    pub commits: AtomicU64,
    /// Offset commits that failed.
    pub commit_failures: AtomicU64,
    /// When the first input record was handed to the workers.
    pub first_received: OnceLock<Instant>,
    /// When the last output or dead letter was delivered, in µs after `first_received`.
    pub last_delivered_us: AtomicU64,
    /// End-to-end latency of delivered outputs and dead letters: delivery time minus the
    /// input record's timestamp, in ms. Only the producer thread writes it, once per batch of
    /// delivery reports.
    pub latency: Mutex<LagHistogram>,
}

impl Metrics {
    /// Total dead letters over all codes.
    pub fn dead_lettered_total(&self) -> u64 {
        self.dead_lettered.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// Notes that an input record was handed to the workers.
    pub fn note_received(&self) {
        self.first_received.get_or_init(Instant::now);
        self.received.fetch_add(1, Relaxed);
    }

    /// Notes that `n` output records or dead letters were delivered.
    pub fn note_delivered(&self, n: u64) {
        self.delivered.fetch_add(n, Relaxed);
        if let Some(first) = self.first_received.get() {
            self.last_delivered_us
                .fetch_max(first.elapsed().as_micros() as u64, Relaxed);
        }
    }

    /// Adds a batch of end-to-end latencies (see [`Metrics::latency`]).
    pub fn note_latencies(&self, batch: &LagHistogram) {
        if batch.count() > 0 {
            self.latency
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .merge(batch);
        }
    }

    /// `latency p50 … p99 … max … ms`, or `None` before the first delivery.
    pub fn latency_summary(&self) -> Option<String> {
        let latency = self.latency.lock().unwrap_or_else(|e| e.into_inner());
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

#[cfg(test)]
mod tests {
    use super::*;

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
        m.note_received();
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
