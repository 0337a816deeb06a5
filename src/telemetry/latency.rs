//! The processing-latency histogram: one observation per batch, in fixed buckets.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

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
    /// Observations in bucket `i` (not cumulative); `LATENCY_BUCKETS.len()` is +Inf.
    pub fn bucket(&self, i: usize) -> u64 {
        self.buckets[i].load(Relaxed)
    }

    /// Sum of the observations, in seconds.
    pub fn sum_secs(&self) -> f64 {
        self.sum_us.load(Relaxed) as f64 / 1e6
    }

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
