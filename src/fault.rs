//! Fault injection for tests: compiled only with the `fault-injection` cargo feature (never in
//! a release build), it makes a named stage panic after it has handled a number of batches, so
//! tests and `scripts/chaos.sh panic` can prove that a dead thread stops the pipeline in order
//! (see [`crate::pipeline`], supervision).
//!
//! `KAFKA_PIPELINE_FAULT=STAGE:N` panics the thread named `STAGE` (`consumer`, `producer`,
//! `worker-K`) when it has handled its `N`th batch. `KAFKA_PIPELINE_FAULT=txn-offsets:MS`
//! sleeps `MS` ms between taking the group metadata and sending a transaction's offsets, the
//! first three times,
//! (exactly-once), so a rebalance lands in between and the commit meets ILLEGAL_GENERATION.
//! Without the feature [`inject`] and [`pause`] are empty and inlined away.

#[cfg(feature = "fault-injection")]
fn plan() -> &'static Option<(String, u64)> {
    use std::sync::OnceLock;
    static PLAN: OnceLock<Option<(String, u64)>> = OnceLock::new();
    PLAN.get_or_init(|| {
        let spec = std::env::var("KAFKA_PIPELINE_FAULT").ok()?;
        let (name, after) = spec.rsplit_once(':')?;
        Some((name.to_string(), after.parse().ok()?))
    })
}

/// Called at a named point of the pipeline; sleeps when the plan names it (its first
/// [`PAUSES`] times, so a test's run then goes on at full speed).
#[cfg(feature = "fault-injection")]
pub fn pause(point: &str) {
    use std::sync::atomic::{AtomicU32, Ordering};
    static PAUSED: AtomicU32 = AtomicU32::new(0);
    if let Some((name, ms)) = plan() {
        if name == point && PAUSED.fetch_add(1, Ordering::Relaxed) < PAUSES {
            log::warn!("fault injection: {point} pauses {ms} ms (KAFKA_PIPELINE_FAULT)");
            std::thread::sleep(std::time::Duration::from_millis(*ms));
        }
    }
}

/// How many times [`pause`] sleeps.
pub const PAUSES: u32 = 3;

/// Called at a named point of the pipeline (no-op: built without `fault-injection`).
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn pause(_point: &str) {}

/// Called by a stage's thread once per batch it handles; `count` is how many it has handled
/// so far. The stage is the thread's name.
#[cfg(feature = "fault-injection")]
pub fn inject(count: u64) {
    let thread = std::thread::current();
    let stage = thread.name().unwrap_or("");
    if let Some((name, after)) = plan() {
        if name == stage && count == *after {
            panic!("fault injection: {stage} panics at batch {count} (KAFKA_PIPELINE_FAULT)");
        }
    }
}

/// Called by a stage once per batch it handles (no-op: built without `fault-injection`).
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn inject(_count: u64) {}
