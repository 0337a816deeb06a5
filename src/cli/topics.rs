//! Flags of `kafka-pipeline topics`.

use clap::Args;

use crate::cli::kafka::{ConfigFile, KafkaArgs, Topics};

/// Flags of `kafka-pipeline topics`.
#[derive(Debug, Clone, Args)]
pub struct TopicsArgs {
    #[command(flatten)]
    /// Connection flags.
    pub kafka: KafkaArgs,

    /// The topics to create or check.
    #[command(flatten)]
    pub topics: Topics,

    /// Partitions of each topic. Instances of one group share the input's partitions, so this
    /// bounds how far the pipeline scales out.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=100_000))]
    pub partitions: i32,

    /// Replicas of each partition: 1 on a local single broker, 3 in production.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=32))]
    pub replication_factor: i32,

    /// Only check the topics; create nothing (a missing topic is a mismatch).
    #[arg(long)]
    pub check: bool,

    /// `--config FILE`.
    #[command(flatten)]
    pub file: ConfigFile,
}
