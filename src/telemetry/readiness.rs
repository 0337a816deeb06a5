//! The readiness rule of `/ready`: what [`Health`] records, and when the pipeline is ready
//! ([`Health::check`]).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64};
use std::sync::Mutex;
use std::time::Duration;

impl Default for Health {
    fn default() -> Self {
        Health {
            subscribed: AtomicBool::new(false),
            producer_brokers_up: AtomicI64::new(-1),
            lag_since_ms: AtomicU64::new(0),
            stall_after_ms: AtomicU64::new(0),
            started_ms: AtomicU64::new(0),
            failed_stage: Mutex::new(None),
        }
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
    /// The first pipeline stage that ended while the pipeline was running, and how: `/health`
    /// answers 503 from then on (a liveness probe restarts the process).
    failed_stage: Mutex<Option<String>>,
}

impl Health {
    /// Records that a stage ended while the pipeline was running (the first one stays).
    pub fn stage_failed(&self, what: String) {
        let mut failed = self.failed_stage.lock().unwrap_or_else(|e| e.into_inner());
        failed.get_or_insert(what);
    }

    /// The first stage that ended while running, and how; `None` while every stage lives.
    pub fn failed_stage(&self) -> Option<String> {
        let failed = self.failed_stage.lock().unwrap_or_else(|e| e.into_inner());
        failed.clone()
    }

    /// Starts the clock at `now_ms`: lag without a commit for `stall_after` from then on is a
    /// stall.
    pub fn start(&self, stall_after: Duration, now_ms: u64) {
        self.stall_after_ms
            .store(stall_after.as_millis() as u64, Relaxed);
        self.started_ms.store(now_ms, Relaxed);
    }

    /// `Ok` when `/ready` answers 200, else the one-line reason for the 503. Ready means: not
    /// shutting down, subscribed, the producer connected to a broker, and — while the consumer
    /// lags (`lag_sum`, -1 unknown) — an offset commit (the last at `last_commit_ms`) within
    /// the stall timeout: a stuck pipeline is not ready.
    pub fn check(
        &self,
        shutting_down: bool,
        lag_sum: i64,
        last_commit_ms: u64,
        now_ms: u64,
    ) -> Result<(), String> {
        if shutting_down {
            return Err("shutting down".into());
        }
        if !self.subscribed.load(Relaxed) {
            return Err("starting: consumer not subscribed yet".into());
        }
        match self.producer_brokers_up.load(Relaxed) {
            -1 => return Err("starting: no producer statistics yet".into()),
            0 => return Err("producer not connected to any broker".into()),
            _ => {}
        }
        if lag_sum > 0 {
            let since = last_commit_ms
                .max(self.lag_since_ms.load(Relaxed))
                .max(self.started_ms.load(Relaxed));
            let stalled_for = now_ms.saturating_sub(since);
            let stall_after = self.stall_after_ms.load(Relaxed);
            if stalled_for > stall_after {
                return Err(format!(
                    "stalled: no offset commit for {} s (limit {} s) while consumer lag is {lag_sum}",
                    stalled_for / 1000,
                    stall_after / 1000
                ));
            }
        }
        Ok(())
    }
}
