//! Flags of `kafka-pipeline sink`.

use std::time::Duration;

use crate::cli::kafka::{ConfigFile, InsightsTopic, KafkaArgs};
use crate::cli::values::parse_duration;

/// Flags of `kafka-pipeline sink`.
#[derive(Debug, Clone, clap::Args)]
pub struct SinkArgs {
    /// Connection flags (`--brokers`, `-X`; TLS and SASL through `-X`).
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// PostgreSQL to write to: a URL (postgres://user:password@host:port/dbname) or a libpq
    /// key=value string. Required.
    #[arg(
        long,
        value_name = "URL",
        env = "KAFKA_PIPELINE_POSTGRES_URL",
        hide_env_values = true
    )]
    pub postgres_url: Option<String>,

    /// The topic of insight records to read.
    #[command(flatten)]
    pub insights: InsightsTopic,

    /// Consumer group of the sink (its offsets are committed there for lag monitoring; the
    /// offsets it resumes from are in PostgreSQL).
    #[arg(
        long,
        env = "KAFKA_PIPELINE_SINK_GROUP_ID",
        default_value = "kafka-pipeline-sink"
    )]
    pub sink_group_id: String,

    /// Write what was read at least this often (one transaction per batch).
    #[arg(long, env = "KAFKA_PIPELINE_SINK_FLUSH_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub flush_interval: Duration,

    /// Write as soon as this many records are held.
    #[arg(long, env = "KAFKA_PIPELINE_SINK_MAX_BATCH", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_batch: u32,

    /// How long a graceful shutdown may take to write the held batch.
    #[arg(long, env = "KAFKA_PIPELINE_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Interval of the progress log line (0s turns it off).
    #[arg(long, env = "KAFKA_PIPELINE_PROGRESS_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub progress_interval: Duration,

    /// Stop once every partition of the topic is assigned, read to its end and written (for
    /// batch jobs and tests; one sink per group, or it never holds every partition).
    #[arg(long, env = "KAFKA_PIPELINE_EXIT_AT_END")]
    pub exit_at_end: bool,

    /// `--config FILE`.
    #[command(flatten)]
    pub file: ConfigFile,
}
