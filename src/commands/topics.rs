//! `kafka-pipeline topics`: creates the pipeline's four topics (input, output, dead letters,
//! insights) with a given partition count and replication factor, or checks existing ones.
//!
//! With a replication factor of 3 or more, topics are created with `min.insync.replicas=2`
//! (in general [`required_min_insync_replicas`]: `min(2, rf - 1)`, at least 1). The producer
//! writes with `acks=all` and idempotence, so a write is acknowledged once that many replicas
//! have it: with rf 3 and 2 in sync, one broker may be down (or be restarted) and writes go on,
//! and an acknowledged record survives the loss of any one broker. An existing topic whose
//! effective `min.insync.replicas` (its own setting or the broker default) is lower is
//! reported as a mismatch, like a wrong partition count.
//!
//! Existing topics are never changed: a partition count or replication factor that differs
//! from the one asked for is reported as a mismatch (exit code [`EXIT_MISMATCH`]), because
//! adding partitions moves keys between partitions and changing replication is a reassignment,
//! both decisions for an operator. With `--check` nothing is created and a missing topic is a
//! mismatch too. A broker that cannot be reached is [`crate::error::EXIT_STARTUP`].

use std::fmt;
use std::time::Duration;

use rdkafka::admin::{AdminOptions, ResourceSpecifier};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::metadata::Metadata;

use crate::cli::kafka::KafkaArgs;
use crate::cli::topics::TopicsArgs;
use crate::error::PipelineError;
use crate::kafka::admin::{admin_client, block_on, create_topic_if_missing, OPERATION_TIMEOUT};
use crate::kafka::client::{client_config, redact_config_error, ClientLog};

/// Exit code of `topics` when a topic is missing (with `--check`) or differs from the request.
pub const EXIT_MISMATCH: i32 = 1;

/// How long to wait for the broker's metadata.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// Exists as requested, but fewer replicas than [`required_min_insync_replicas`] need to
    /// acknowledge a write.
    WeakMinInsync {
        /// The topic's effective `min.insync.replicas`.
        found: i32,
        /// What its replication factor calls for.
        required: i32,
    },
}

/// The `min.insync.replicas` a topic with `replication_factor` replicas should have:
/// `min(2, rf - 1)`, at least 1. Two in-sync replicas make an acknowledged write survive the
/// loss of a broker; leaving one replica of slack keeps the topic writable while a broker is
/// down. A single replica (rf 1 or 2) is Kafka's default and needs no topic setting.
pub fn required_min_insync_replicas(replication_factor: i32) -> i32 {
    (replication_factor - 1).clamp(1, 2)
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
            Status::WeakMinInsync { found, required } => write!(
                f,
                "MISMATCH: min.insync.replicas {found}, below {required} for its replication factor"
            ),
        }
    }
}

/// Creates or checks the topics; returns one report per topic.
pub fn run(args: &TopicsArgs) -> Result<Vec<TopicReport>, PipelineError> {
    let brokers = &args.kafka.brokers;
    let metadata = fetch_metadata(&args.kafka)?;
    let required = required_min_insync_replicas(args.replication_factor);
    let min_isr = required.to_string();
    let create_configs: &[(&str, &str)] = if required > 1 {
        &[("min.insync.replicas", &min_isr)]
    } else {
        &[]
    };
    let mut reports = Vec::new();
    let mut seen = Vec::new();
    for (role, topic) in [
        ("input", &args.topics.input.name),
        ("output", &args.topics.output.name),
        ("dlq", &args.topics.dlq.name),
        ("insights", &args.topics.insights.name),
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
                    match min_insync_replicas(&args.kafka, topic)? {
                        found if found < required => Status::WeakMinInsync { found, required },
                        _ => Status::Ok,
                    }
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
                    create_configs,
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

/// The effective `min.insync.replicas` of `topic` (its own setting or the broker default).
fn min_insync_replicas(kafka: &KafkaArgs, topic: &str) -> Result<i32, PipelineError> {
    let admin_error = |e: String| {
        PipelineError::Admin(format!("reading the configuration of topic {topic}: {e}"))
    };
    let admin = admin_client(&kafka.brokers, &kafka.properties)
        .map_err(|e| PipelineError::Config(format!("Kafka client: {e:#}")))?;
    let options = AdminOptions::new().request_timeout(Some(OPERATION_TIMEOUT));
    let described = block_on(admin.describe_configs([&ResourceSpecifier::Topic(topic)], &options))
        .map_err(|e| admin_error(e.to_string()))?;
    let resource = match described.into_iter().next() {
        Some(Ok(resource)) => resource,
        Some(Err(code)) => return Err(admin_error(code.to_string())),
        None => return Err(admin_error("empty response".into())),
    };
    let value = resource
        .get("min.insync.replicas")
        .and_then(|entry| entry.value.as_deref())
        .ok_or_else(|| admin_error("no min.insync.replicas in the response".into()))?;
    value
        .parse()
        .map_err(|_| admin_error(format!("min.insync.replicas {value:?} is not a number")))
}

fn fetch_metadata(kafka: &KafkaArgs) -> Result<Metadata, PipelineError> {
    let consumer: BaseConsumer<ClientLog> = client_config(
        &kafka.brokers,
        "kafka-pipeline-topics",
        &[],
        &kafka.properties,
    )
    .create_with_context(ClientLog::new("metadata client"))
    .map_err(redact_config_error)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_insync_replicas_leaves_one_replica_of_slack_up_to_two() {
        let required: Vec<i32> = (1..=5).map(required_min_insync_replicas).collect();
        assert_eq!(required, [1, 1, 2, 2, 2]);
    }

    #[test]
    fn weak_min_insync_is_not_ok_and_says_why() {
        let report = TopicReport {
            role: "input",
            topic: "user-login".into(),
            status: Status::WeakMinInsync {
                found: 1,
                required: 2,
            },
        };
        assert!(!report.is_ok());
        assert!(
            report
                .to_string()
                .ends_with("MISMATCH: min.insync.replicas 1, below 2 for its replication factor"),
            "{report}"
        );
    }
}
