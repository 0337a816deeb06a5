//! The event-time watermark the workers share.
//!
//! The watermark is the largest valid event time any worker has seen, plus the wall-clock time
//! since it last moved: while events flow it follows event time (so a replay of old data closes
//! its windows at replay speed), and while the input is idle it advances with the wall clock,
//! so the last windows still close and their records can be committed.
//!
//! Until the first valid event, the Kafka timestamps of the dead-lettered records stand in for
//! event time (so windows holding only dead letters close too); before any record at all there
//! is no watermark. (A replay of old data whose first records are all invalid for more than a
//! tick therefore counts its first valid events as late.) Times are passed in; nothing here
//! reads a clock.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A maximum time and the wall time when it last moved.
#[derive(Debug, Default)]
struct Track {
    max_secs: AtomicU64,
    moved_at_ms: AtomicU64,
}

impl Track {
    fn observe(&self, secs: u64, now_ms: u64) {
        if secs > self.max_secs.load(Relaxed) {
            let previous = self.max_secs.fetch_max(secs, Relaxed);
            if secs > previous {
                self.moved_at_ms.store(now_ms, Relaxed);
            }
        }
    }

    fn max(&self) -> Option<u64> {
        match self.max_secs.load(Relaxed) {
            0 => None,
            t => Some(t),
        }
    }

    fn watermark(&self, now_ms: u64) -> Option<u64> {
        let max = self.max()?;
        let idle_secs = now_ms.saturating_sub(self.moved_at_ms.load(Relaxed)) / 1000;
        Some(max.saturating_add(idle_secs))
    }
}

/// See the module doc. Shared by the workers; one atomic read per query, one atomic update
/// only when a maximum moves (about once per second of event time).
#[derive(Debug, Default)]
pub struct EventClock {
    valid: Track,
    fallback: Track,
}

impl EventClock {
    /// A clock that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes a valid event's time (seconds) seen at wall time `now_ms`.
    pub fn observe(&self, event_secs: u64, now_ms: u64) {
        self.valid.observe(event_secs, now_ms);
    }

    /// Notes a dead-lettered record's Kafka timestamp (seconds): used only until a valid
    /// event has been seen.
    pub fn observe_fallback(&self, record_secs: u64, now_ms: u64) {
        self.fallback.observe(record_secs, now_ms);
    }

    /// The largest valid event time seen, if any.
    pub fn max_event(&self) -> Option<u64> {
        self.valid.max()
    }

    /// The watermark at wall time `now_ms`; `None` before any record.
    pub fn watermark(&self, now_ms: u64) -> Option<u64> {
        self.valid
            .watermark(now_ms)
            .or_else(|| self.fallback.watermark(now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_event_time_then_wall_time_when_idle() {
        let c = EventClock::new();
        assert_eq!(c.watermark(5_000), None, "no watermark before any record");
        c.observe(1_000, 10_000);
        c.observe(990, 10_100); // older: no change
        assert_eq!(c.watermark(10_500), Some(1_000));
        c.observe(1_003, 11_000);
        assert_eq!(c.watermark(11_000), Some(1_003));
        // Idle for 25 s of wall time: the watermark moves on by 25 s.
        assert_eq!(c.watermark(36_000), Some(1_028));
        assert_eq!(c.max_event(), Some(1_003));
    }

    #[test]
    fn dead_letter_timestamps_stand_in_until_a_valid_event() {
        let c = EventClock::new();
        c.observe_fallback(5_000, 1_000);
        assert_eq!(c.watermark(3_000), Some(5_002));
        assert_eq!(c.max_event(), None);
        c.observe(1_000, 4_000);
        assert_eq!(c.watermark(4_000), Some(1_000), "a valid event takes over");
        c.observe_fallback(9_000, 4_000);
        assert_eq!(c.watermark(4_000), Some(1_000));
    }
}
