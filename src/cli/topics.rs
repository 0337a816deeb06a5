//! Flags of `kafka-pipeline topics`.

use clap::Args;

use crate::cli::kafka::KafkaArgs;

/// Flags of `kafka-pipeline topics`.
#[derive(Debug, Clone, Args)]
pub struct TopicsArgs {
    #[command(flatten)]
    /// Connection flags.
    pub kafka: KafkaArgs,

    /// Input topic.
    #[arg(long, env = "KAFKA_PIPELINE_INPUT_TOPIC", default_value = "user-login")]
    pub input_topic: String,

    /// Output topic.
    #[arg(
        long,
        env = "KAFKA_PIPELINE_OUTPUT_TOPIC",
        default_value = "processed_data"
    )]
    pub output_topic: String,

    /// Dead-letter topic.
    #[arg(
        long,
        env = "KAFKA_PIPELINE_DLQ_TOPIC",
        default_value = "user-login-dlq"
    )]
    pub dlq_topic: String,

    /// Insights topic.
    #[arg(
        long,
        env = "KAFKA_PIPELINE_INSIGHTS_TOPIC",
        default_value = "insights"
    )]
    pub insights_topic: String,

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

    /// The pipeline's TOML config file (as for `run --config`): brokers, -X properties and
    /// topic names come from it unless given as flags or environment; keys only `run` knows
    /// are skipped.
    #[arg(long, value_name = "FILE", env = "KAFKA_PIPELINE_CONFIG")]
    pub config: Option<std::path::PathBuf>,
}
