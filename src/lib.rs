//! kafka-pipeline: a stream processor that turns a Kafka topic of raw JSON login events into
//! clean records, dead letters and windowed insights, at least once (or exactly once), without stalling on bad
//! input.
//!
//! # Shape
//!
//! ```text
//!              +-----------------+   bounded     +-------------+  bounded    +------------------+
//!  user-login  | consumer thread |  crossbeam    | worker 1..N |  crossbeam  | producer thread  |--> processed_data
//!  ----------->| BaseConsumer    |==============>| simd-json   |============>| BaseProducer     |--> user-login-dlq
//!              | poll, pause,    |  InputBatch   | validate,   | OutputBatch | epoch merger,    |--> insights
//!              | close epochs,   |  (≤256 recs,  | transform,  | WorkerDelta | delivery reports,|
//!              | commit          |   epoch k)    | aggregate   |             | transactions     |
//!              +-----------------+               +-------------+             +--------+---------+
//!                 |      ^                                                            |
//!                 |      +------------------ epoch k complete (unbounded) ------------+
//!                 +------------------------- epoch k closed: n records ------------->-+
//! ```
//!
//! - [`consumer`]: polls, copies records into batches, hands them out, pauses when the workers
//!   fall behind, closes a commit epoch every `--commit-interval` and commits the positions of
//!   complete epochs ([`offsets::OffsetTracker`]).
//! - [`worker`]: parses with simd-json ([`transform`]), builds the output or dead-letter record,
//!   counts the event in its own insight windows ([`insights::window`]), and reports what the
//!   windows gained per epoch.
//! - [`producer`]: sends, merges the workers' deltas into one insight record per window and
//!   epoch ([`merger`]), serves delivery reports, retries failed deliveries (or, exactly-once,
//!   runs one transaction per epoch), and reports each complete epoch to the consumer thread.
//! - [`record`] holds the messages between the threads and the recycled batch buffers.
//! - [`config`], [`error`], [`metrics`], [`shutdown`], [`clients`], [`admin`]: the plumbing;
//!   [`loadgen`] and [`insights`] also back the `loadgen` and `insights` subcommands,
//!   [`topics`] the `topics` subcommand, [`dlq`] the `dlq` subcommand (dead letters summarized,
//!   shown and replayed), [`sink`] the `sink` subcommand (insight windows into PostgreSQL).
//! - [`http`] serves `/metrics`, `/health` and `/ready` from a thread of its own (the counters
//!   are atomics the stages update per batch); [`logging`] writes text or JSON log lines.
//!
//! Lifecycle follows channel ownership: the consumer thread owns the only work sender; when it
//! stops (shutdown or error) it closes the last epoch and drops the sender, the workers drain,
//! send their last deltas and drop their output senders, the producer completes the last
//! epochs, flushes and drops the done sender, and the consumer commits and closes.

pub mod cli;
pub mod commands;
pub mod config;
pub mod error;
pub mod insights;
pub mod kafka;
pub mod loadgen;
pub mod pipeline;
pub mod shutdown;
pub mod telemetry;
pub mod testing;
pub mod transform;

pub use pipeline::run;
