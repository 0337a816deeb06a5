//! `kafka-pipeline topics`: creates the pipeline's four topics (input, output, dead letters,
//! insights) with a given partition count and replication factor, or checks existing ones.
//!
//! Existing topics are never changed: a partition count or replication factor that differs
//! from the one asked for is reported as a mismatch (exit code [`EXIT_MISMATCH`]), because
//! adding partitions moves keys between partitions and changing replication is a reassignment,
//! both decisions for an operator. With `--check` nothing is created and a missing topic is a
//! mismatch too. A broker that cannot be reached is [`crate::error::EXIT_STARTUP`].

use std::fmt;
use std::time::Duration;

use clap::Args;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::metadata::Metadata;

use crate::admin::create_topic_if_missing;
use crate::config::KafkaArgs;
use crate::error::PipelineError;

/// Exit code of `topics` when a topic is missing (with `--check`) or differs from the request.
pub const EXIT_MISMATCH: i32 = 1;

/// How long to wait for the broker's metadata.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

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

/// What was found or done for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Exists with the requested settings.
    Ok,
    /// Did not exist and was created.
    Created,
    /// Does not exist (`--check`).
    Missing,
    /// Exists with other settings.
    Mismatch {
        /// Partition count found.
        partitions: i32,
        /// Smallest replica count over its partitions.
        replication: i32,
    },
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicReport {
    /// Which of the pipeline's topics (`input`, `output`, `dlq`, `insights`).
    pub role: &'static str,
    /// Topic name.
    pub topic: String,
    /// Outcome.
    pub status: Status,
}

impl TopicReport {
    /// Whether this topic is as requested (or now is).
    pub fn is_ok(&self) -> bool {
        matches!(self.status, Status::Ok | Status::Created)
    }
}

impl fmt::Display for TopicReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<8} {:<31} ", self.role, self.topic)?;
        match &self.status {
            Status::Ok => write!(f, "ok"),
            Status::Created => write!(f, "created"),
            Status::Missing => write!(f, "MISSING"),
            Status::Mismatch {
                partitions,
                replication,
            } => write!(
                f,
                "MISMATCH: {partitions} partitions, replication factor {replication}"
            ),
        }
    }
}

/// Creates or checks the topics; returns one report per topic.
pub fn run(args: &TopicsArgs) -> Result<Vec<TopicReport>, PipelineError> {
    let brokers = &args.kafka.brokers;
    let metadata = fetch_metadata(&args.kafka)?;
    let mut reports = Vec::new();
    let mut seen = Vec::new();
    for (role, topic) in [
        ("input", &args.input_topic),
        ("output", &args.output_topic),
        ("dlq", &args.dlq_topic),
        ("insights", &args.insights_topic),
    ] {
        if seen.contains(topic) {
            return Err(PipelineError::Config(format!(
                "topic {topic:?} is named twice; the pipeline's topics must be distinct"
            )));
        }
        seen.push(topic.clone());
        let status = match describe(&metadata, topic) {
            Some((partitions, replication)) => {
                if partitions == args.partitions && replication == args.replication_factor {
                    Status::Ok
                } else {
                    Status::Mismatch {
                        partitions,
                        replication,
                    }
                }
            }
            None if args.check => Status::Missing,
            None => {
                create_topic_if_missing(
                    brokers,
                    &args.kafka.properties,
                    topic,
                    args.partitions,
                    args.replication_factor,
                    &[],
                )
                .map_err(|e| PipelineError::Admin(format!("{e:#}")))?;
                Status::Created
            }
        };
        reports.push(TopicReport {
            role,
            topic: topic.clone(),
            status,
        });
    }
    Ok(reports)
}

/// Partition count and smallest replica count of `topic`, if it exists.
fn describe(metadata: &Metadata, topic: &str) -> Option<(i32, i32)> {
    let t = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())?;
    let replication = t
        .partitions()
        .iter()
        .map(|p| p.replicas().len() as i32)
        .min()
        .unwrap_or(0);
    Some((t.partitions().len() as i32, replication))
}

fn fetch_metadata(kafka: &KafkaArgs) -> Result<Metadata, PipelineError> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &kafka.brokers);
    for (k, v) in &kafka.properties {
        config.set(k, v);
    }
    let consumer: BaseConsumer = config
        .create()
        .map_err(|e| PipelineError::Config(format!("Kafka client: {e}")))?;
    consumer
        .fetch_metadata(None, METADATA_TIMEOUT)
        .map_err(|e| {
            PipelineError::Startup(format!(
                "cannot reach Kafka at {} within {METADATA_TIMEOUT:?}: {e}",
                kafka.brokers
            ))
        })
}
