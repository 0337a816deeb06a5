//! Flags of `kafka-pipeline run`.

use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::cli::kafka::{ConfigFile, KafkaArgs, Topics};
use crate::cli::values::{parse_duration, parse_property};
use crate::transform::headers::InputHeaders;

/// Flags of `kafka-pipeline run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    /// Connection flags.
    pub kafka: KafkaArgs,

    /// librdkafka property for the consumer only, as key=value (repeatable).
    #[arg(
        long = "consumer-property",
        value_name = "KEY=VALUE",
        env = "KAFKA_PIPELINE_CONSUMER_PROPERTIES",
        value_delimiter = ';',
        value_parser = parse_property,
        hide_env_values = true
    )]
    pub consumer_properties: Vec<(String, String)>,

    /// librdkafka property for the producer only, as key=value (repeatable).
    #[arg(
        long = "producer-property",
        value_name = "KEY=VALUE",
        env = "KAFKA_PIPELINE_PRODUCER_PROPERTIES",
        value_delimiter = ';',
        value_parser = parse_property,
        hide_env_values = true
    )]
    pub producer_properties: Vec<(String, String)>,

    /// The input, output, dead-letter and insights topics.
    #[command(flatten)]
    pub topics: Topics,

    /// Consumer group; instances with the same group share the input partitions.
    #[arg(
        long,
        env = "KAFKA_PIPELINE_GROUP_ID",
        default_value = "kafka-pipeline"
    )]
    pub group_id: String,

    /// Worker threads that parse and transform [default: number of cores].
    #[arg(long, env = "KAFKA_PIPELINE_WORKERS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,

    /// Make a field optional: when missing or null it takes VALUE (repeatable), e.g.
    /// device_type=unknown. By default every field is required and a missing one is a dead letter.
    #[arg(
        long = "optional-field",
        value_name = "FIELD=VALUE",
        env = "KAFKA_PIPELINE_OPTIONAL_FIELDS",
        value_delimiter = ';',
        value_parser = parse_property
    )]
    pub optional_fields: Vec<(String, String)>,

    /// Payloads larger than this many bytes are dead-lettered as too_large without parsing.
    #[arg(long, env = "KAFKA_PIPELINE_MAX_PAYLOAD_BYTES", default_value_t = crate::transform::DEFAULT_MAX_PAYLOAD_BYTES as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_payload_bytes: u64,

    /// How long a graceful shutdown may take (drain, flush, commit), e.g. 30s, 500ms, 2m.
    #[arg(long, env = "KAFKA_PIPELINE_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Interval of the progress log line (0s turns it off).
    #[arg(long, env = "KAFKA_PIPELINE_PROGRESS_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub progress_interval: Duration,

    /// Capacity of each channel between stages, in records; bounds memory and in-flight work.
    #[arg(long, env = "KAFKA_PIPELINE_CHANNEL_CAPACITY", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub channel_capacity: u32,

    /// Length of the tumbling event-time windows of the insights, e.g. 10s, 1m.
    #[arg(long, env = "KAFKA_PIPELINE_WINDOW", default_value = "10s", value_parser = parse_duration)]
    pub window: Duration,

    /// How long after a window's end (in event time) late events still count in it
    /// [default: one window].
    #[arg(long, env = "KAFKA_PIPELINE_ALLOWED_LATENESS", value_parser = parse_duration)]
    pub allowed_lateness: Option<Duration>,

    /// How long an input partition may go without events before its watermark leaves the
    /// instance's minimum, so a quiet partition does not hold every window open; it enters
    /// again with its next event. At least 1s [default: one window].
    #[arg(long, env = "KAFKA_PIPELINE_IDLE_TIMEOUT", value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,

    /// Name of this instance in the insight records [default: HOSTNAME-PID]. When given, it is
    /// also the consumer's group.instance.id (static membership: a restarted instance takes its
    /// partitions back at once) and names the transactional id; give each instance its own
    /// stable id (a StatefulSet pod name, say).
    #[arg(long, env = "KAFKA_PIPELINE_INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// Delivery guarantee: at-least-once (commit offsets after outputs are delivered) or
    /// exactly-once (one Kafka transaction per commit epoch carries the outputs, dead letters,
    /// insights and input offsets; readers use isolation.level=read_committed).
    #[arg(long, env = "KAFKA_PIPELINE_GUARANTEE", value_enum, default_value_t = Guarantee::AtLeastOnce)]
    pub guarantee: Guarantee,

    /// How often the consumer closes a commit epoch, e.g. 1s, 500ms: committed offsets trail
    /// the input by about this much, and a crash reprocesses about this much.
    #[arg(long, env = "KAFKA_PIPELINE_COMMIT_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub commit_interval: Duration,

    /// Which input headers processed records carry: all, none, or a comma-separated list of
    /// names (dead letters always keep all of them). The lineage header comes after them.
    #[arg(long, env = "KAFKA_PIPELINE_INPUT_HEADERS", default_value = "all", value_parser = InputHeaders::parse)]
    pub input_headers: crate::transform::headers::InputHeaders,

    /// Benchmark ceiling: copy each input record (key, value, headers) to the output topic
    /// untouched, with the same clients and settings: no parsing, no dead letters, no insights.
    #[arg(long, env = "KAFKA_PIPELINE_PASSTHROUGH")]
    pub passthrough: bool,

    /// Stop after the input is drained: exit once every assigned partition has been read to its
    /// end offset and all outputs are committed (for batch jobs and tests).
    #[arg(long, env = "KAFKA_PIPELINE_EXIT_AT_END")]
    pub exit_at_end: bool,

    /// Address of the HTTP endpoints /metrics (Prometheus), /health and /ready; "" turns them
    /// off. Use 0.0.0.0:9898 in a container. When the default port is taken (a second
    /// instance on one host) the instance takes the next free one of 9898-9913 and logs it;
    /// with none free, or an explicit address taken, it refuses to start [default:
    /// 127.0.0.1:9898].
    #[arg(long, value_name = "HOST:PORT", env = "KAFKA_PIPELINE_METRICS_ADDR")]
    pub metrics_addr: Option<String>,

    /// `--config FILE`.
    #[command(flatten)]
    pub file: ConfigFile,

    /// Print the resolved configuration (as a config file, secrets redacted) and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// The delivery guarantee of `run` (`--guarantee`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Guarantee {
    /// Offsets are committed after every output of their epoch is delivered; a crash
    /// reprocesses the uncommitted epochs.
    AtLeastOnce,
    /// One transaction per epoch carries its outputs and input offsets.
    ExactlyOnce,
}

impl Guarantee {
    /// The flag value.
    pub fn as_str(self) -> &'static str {
        match self {
            Guarantee::AtLeastOnce => "at-least-once",
            Guarantee::ExactlyOnce => "exactly-once",
        }
    }
}
