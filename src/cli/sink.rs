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

#[cfg(test)]
mod tests {
    use crate::cli::{parse_cli, Command};

    fn sink_args(args: &[&str]) -> super::SinkArgs {
        let cli = parse_cli(["kafka-pipeline", "sink"].iter().chain(args)).expect("parses");
        match cli.command {
            Command::Sink(a) => a,
            other => panic!("not sink: {other:?}"),
        }
    }

    #[test]
    fn defaults_and_bad_values() {
        let a = sink_args(&[]);
        assert_eq!(a.insights.name, "insights");
        assert_eq!(a.sink_group_id, "kafka-pipeline-sink");
        assert_eq!(a.max_batch, 1000);
        assert_eq!(a.flush_interval, std::time::Duration::from_secs(1));
        assert!(!a.exit_at_end);
        assert!(parse_cli(["kafka-pipeline", "sink", "--max-batch", "0"]).is_err());
        assert!(parse_cli(["kafka-pipeline", "sink", "--flush-interval", "soon"]).is_err());
    }

    #[test]
    fn the_pipeline_config_file_serves_the_sink() {
        let path = std::env::temp_dir().join(format!("kp-sink-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "insights-topic = \"ins\"\ngroup-id = \"pipeline-group\"\nwindow = \"1m\"\n\
             postgres-url = \"postgres://u@h/db\"\n[property]\nclient.id = \"f\"\n",
        )
        .unwrap();
        let a = sink_args(&["--config", path.to_str().unwrap(), "--max-batch", "5"]);
        std::fs::remove_file(&path).ok();
        assert_eq!(a.insights.name, "ins");
        assert_eq!(a.postgres_url.as_deref(), Some("postgres://u@h/db"));
        // The pipeline's group (a `run` key) is not the sink's.
        assert_eq!(a.sink_group_id, "kafka-pipeline-sink");
        assert_eq!(a.max_batch, 5);
        assert_eq!(
            a.kafka.properties,
            [("client.id".to_owned(), "f".to_owned())]
        );
    }
}
