//! Fault injection for tests: compiled only with the `fault-injection` cargo feature (never in
//! a release build), it makes a named stage panic after it has handled a number of batches, so
//! tests and `scripts/chaos.sh panic` can prove that a dead thread stops the pipeline in order
//! (see [`crate::pipeline`], supervision).
//!
//! `KAFKA_PIPELINE_FAULT=STAGE:N` panics the thread named `STAGE` (`consumer`, `producer`,
//! `worker-K`) when it has handled its `N`th batch. Without the feature [`inject`] is empty
//! and inlined away.

/// Called by a stage's thread once per batch it handles; `count` is how many it has handled
/// so far. The stage is the thread's name.
#[cfg(feature = "fault-injection")]
pub fn inject(count: u64) {
    let thread = std::thread::current();
    let stage = thread.name().unwrap_or("");
    use std::sync::OnceLock;
    static PLAN: OnceLock<Option<(String, u64)>> = OnceLock::new();
    let plan = PLAN.get_or_init(|| {
        let spec = std::env::var("KAFKA_PIPELINE_FAULT").ok()?;
        let (name, after) = spec.rsplit_once(':')?;
        Some((name.to_string(), after.parse().ok()?))
    });
    if let Some((name, after)) = plan {
        if name == stage && count == *after {
            panic!("fault injection: {stage} panics at batch {count} (KAFKA_PIPELINE_FAULT)");
        }
    }
}

/// Called by a stage once per batch it handles (no-op: built without `fault-injection`).
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn inject(_count: u64) {}
