//! Windowed insights: what the login stream did in each window of event time, computed in the
//! workers, merged across workers and instances, published to the insights topic, and read
//! back by `kafka-pipeline insights`.
//!
//! ```text
//!  worker 1..N                    producer side                 insights topic        reader
//!  WindowAggregator::observe ──▶  WindowStats::merge      ──▶   InsightRecord   ──▶   merge by
//!  (one per worker, no locks)     (one window per instance)     key = start           window start
//!  advance(watermark) / flush     InsightRecord::from_stats     JSON, sketches        table / --json
//! ```
//!
//! - [`window`]: tumbling event-time windows. [`WindowAggregator`] is a pure state machine (event
//!   time and watermark are arguments; it never reads a clock): `observe` counts an event,
//!   `advance` closes windows the watermark has passed (end + allowed lateness), `flush` closes
//!   everything (shutdown, marked partial). Late events are counted, never dropped, and never
//!   re-open a closed window. [`WindowStats`] is what a window saw; its `merge` is associative
//!   and commutative.
//! - [`sketch`]: HyperLogLog (precision 12, ±1.6%) for distinct users and devices; merging is
//!   exact, so windows of several instances add up as sketches.
//! - [`histogram`]: log-scale lag histogram (±1.6% quantiles), mergeable.
//! - [`counts`]: exact per-key counts with a cap on distinct keys (hostile input cannot blow up
//!   memory).
//! - [`record`]: the JSON record published per window per instance (documented field by field
//!   with an example) and [`merge_records`].
//! - [`table`]: the merged windows of every instance as `kafka-pipeline insights` prints them
//!   (its Kafka I/O is in `commands::insights`).
//! - [`hash`]: the stable hashes (XXH3, XXH64) that sketch registers and record digests depend
//!   on, pinned by tests so sketches from any build merge.
//!
//! Semantics in one place: window `[start, start + size)` holds events with
//! `start <= event time < start + size`; it closes when the watermark reaches
//! `start + size + lateness`; an event whose window is closed is late and counted in
//! `late_events` of the oldest open window; every published record is an increment, and a
//! reader adds up all records with the same window start.

mod codec;
pub mod counts;
pub mod hash;
pub mod histogram;
pub mod record;
pub mod sketch;
pub mod table;
pub mod window;

pub use record::{merge_by_window, merge_records, InsightRecord};
pub use sketch::Hll;
pub use window::{
    lag_ms, Observation, ObservationKind, WindowAggregator, WindowConfig, WindowStats,
};
