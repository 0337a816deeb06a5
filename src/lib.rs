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
//! - [`pipeline::consumer`]: polls, copies records into batches, hands them out, pauses when
//!   the workers fall behind, closes a commit epoch every `--commit-interval` and commits the
//!   positions of complete epochs ([`pipeline::offsets::OffsetTracker`]); its group side
//!   (rebalances, synchronous commits) is [`pipeline::rebalance`].
//! - [`pipeline::worker`]: parses with simd-json ([`transform`]), builds the output or
//!   dead-letter record, counts the event in its own insight windows ([`insights::window`]),
//!   and reports what the windows gained per epoch.
//! - [`pipeline::producer`]: sends, merges the workers' deltas into one insight record per
//!   window and epoch ([`pipeline::merger`]), serves delivery reports and retries
//!   ([`pipeline::delivery`]) or, exactly-once, runs one transaction per epoch, and reports each
//!   complete epoch to the consumer thread. [`pipeline::messages`] holds what the threads hand
//!   each other and the recycled batch buffers.
//!
//! # The tree
//!
//! | module | what it is | I/O |
//! |---|---|---|
//! | [`cli`] | every clap definition and the `--config` file merge | none |
//! | [`config`] | the validated configuration of `run` | none |
//! | [`pipeline`] | the `run` command: the threads and their state machines | Kafka |
//! | [`transform`] | the login-event contract: schema, parsing, validation, output JSON, headers | none |
//! | [`insights`] | windows, sketches, histograms, the insight record, the merged table | none |
//! | [`loadgen`] | the reproducible traffic generator | none |
//! | [`kafka`] | client configuration, the log policy, admin, reading a topic without a group | Kafka |
//! | [`telemetry`] | metrics, readiness, exposition, HTTP endpoints, progress line, logging | HTTP |
//! | [`commands`] | `loadgen`, `insights`, `topics`, `dlq`, `sink`: their I/O and printing | Kafka, PostgreSQL |
//! | [`error`], [`shutdown`] | exit codes; the shutdown signal and deadline | none |
//!
//! Imports run down this table's layers and never back: the pure modules (`transform`,
//! `insights`, `loadgen`) import none of the others, `cli` only the pure ones, `commands` and
//! `pipeline` not each other, and nothing imports them. A unit test (`src/layering.rs`) holds
//! the code to it.
//!
//! Lifecycle follows channel ownership: the consumer thread owns the only work sender; when it
//! stops (shutdown or error) it closes the last epoch and drops the sender, the workers drain,
//! send their last deltas and drop their output senders, the producer completes the last
//! epochs, flushes and drops the done sender, and the consumer commits and closes.

// The docs are the developers': `cargo doc --document-private-items` renders the crate's
// internals (the pipeline's stages, the telemetry, the subcommands' parts), which the public
// module docs link to.
#![allow(rustdoc::private_intra_doc_links)]

pub mod cli;
pub mod commands;
pub mod config;
pub mod error;
pub mod fault;
pub mod insights;
pub mod kafka;
pub mod loadgen;
pub mod pipeline;
pub mod shutdown;
pub mod telemetry;
pub mod testing;
pub mod transform;

pub use pipeline::run;

#[cfg(test)]
mod layering;
