//! The periodic progress line the consumer thread logs: rates since the last line, dead
//! letters by code, deliveries, in-flight records, lag and positions.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::metrics::{Metrics, Snapshot};
use crate::transform::ErrorCode;

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

/// The periodic progress line.
pub struct Progress {
    interval: Duration,
    last: Instant,
    prev: Snapshot,
}

impl Progress {
    /// A progress line every `interval` (zero: never).
    pub fn new(interval: Duration) -> Self {
        Progress {
            interval,
            last: Instant::now(),
            prev: Snapshot::default(),
        }
    }

    /// Whether the next line is due.
    pub fn due(&self) -> bool {
        !self.interval.is_zero() && self.last.elapsed() >= self.interval
    }

    /// Logs the line: rates since the previous one, and the counts as fields.
    pub fn log(&mut self, metrics: &Metrics, extras: ProgressExtras) {
        let now = metrics.snapshot();
        // The counts again as fields, for --log-format json.
        log::info!(
            received = now.received,
            valid = now.valid,
            dead_lettered = now.dead_lettered.iter().sum::<u64>(),
            delivered = now.delivered,
            in_flight = extras.in_flight,
            lag = extras.lag.unwrap_or(-1),
            paused = extras.paused;
            "{}",
            progress_line(&self.prev, &now, self.last.elapsed(), &extras)
        );
        self.prev = now;
        self.last = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
