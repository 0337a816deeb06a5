//! The subcommands besides `run` (which is [`crate::pipeline`]): each does its Kafka (or
//! PostgreSQL) I/O and printing here, over the pure modules it shares with the pipeline.
//!
//! - [`loadgen`]: produces the generator's traffic ([`crate::loadgen`]) to a topic.
//! - [`insights`]: reads the insights topic into the merged table ([`crate::insights::table`]).
//! - [`topics`]: creates or checks the pipeline's topics.
//! - [`dlq`]: summarizes, shows and replays dead letters.
//! - [`sink`]: keeps the insight windows in PostgreSQL.

pub mod dlq;
pub mod insights;
pub mod loadgen;
pub mod sink;
pub mod topics;
