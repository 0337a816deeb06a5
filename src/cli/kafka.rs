//! Flags shared by the subcommands that talk to Kafka: the connection, and the topic names
//! (each declared once here and flattened into the commands that name it).

use clap::Args;

use crate::cli::values::parse_property;

/// Connection flags shared by every subcommand that talks to Kafka.
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, comma-separated host:port list.
    #[arg(
        long,
        env = "KAFKA_PIPELINE_BROKERS",
        default_value = "localhost:29092"
    )]
    pub brokers: String,

    /// librdkafka property for every client, as key=value (repeatable; the environment twin
    /// takes a ';'-separated list). See librdkafka's CONFIGURATION.md.
    #[arg(
        short = 'X',
        long = "property",
        value_name = "KEY=VALUE",
        env = "KAFKA_PIPELINE_PROPERTIES",
        value_delimiter = ';',
        value_parser = parse_property,
        hide_env_values = true
    )]
    pub properties: Vec<(String, String)>,
}

/// `--input-topic`.
#[derive(Debug, Clone, Args)]
pub struct InputTopic {
    /// Topic of raw login events (the pipeline's input).
    #[arg(
        id = "input_topic",
        long = "input-topic",
        value_name = "TOPIC",
        env = "KAFKA_PIPELINE_INPUT_TOPIC",
        default_value = "user-login"
    )]
    pub name: String,
}

/// `--output-topic`.
#[derive(Debug, Clone, Args)]
pub struct OutputTopic {
    /// Topic for valid, normalized records (keyed by user_id).
    #[arg(
        id = "output_topic",
        long = "output-topic",
        value_name = "TOPIC",
        env = "KAFKA_PIPELINE_OUTPUT_TOPIC",
        default_value = "processed_data"
    )]
    pub name: String,
}

/// `--dlq-topic`.
#[derive(Debug, Clone, Args)]
pub struct DlqTopic {
    /// Dead-letter topic: every record that cannot be processed, untouched, with error headers.
    #[arg(
        id = "dlq_topic",
        long = "dlq-topic",
        value_name = "TOPIC",
        env = "KAFKA_PIPELINE_DLQ_TOPIC",
        default_value = "user-login-dlq"
    )]
    pub name: String,
}

/// `--insights-topic`.
#[derive(Debug, Clone, Args)]
pub struct InsightsTopic {
    /// Topic for windowed insights.
    #[arg(
        id = "insights_topic",
        long = "insights-topic",
        value_name = "TOPIC",
        env = "KAFKA_PIPELINE_INSIGHTS_TOPIC",
        default_value = "insights"
    )]
    pub name: String,
}

/// The pipeline's four topics (`run`, `topics`).
#[derive(Debug, Clone, Args)]
pub struct Topics {
    /// `--input-topic`.
    #[command(flatten)]
    pub input: InputTopic,
    /// `--output-topic`.
    #[command(flatten)]
    pub output: OutputTopic,
    /// `--dlq-topic`.
    #[command(flatten)]
    pub dlq: DlqTopic,
    /// `--insights-topic`.
    #[command(flatten)]
    pub insights: InsightsTopic,
}

/// `--config FILE`, taken by `run`, `topics`, `sink` and the `dlq` commands.
#[derive(Debug, Clone, Args)]
pub struct ConfigFile {
    /// TOML file with flag values: keys are the long flag names (input-topic = "user-login"),
    /// librdkafka properties go under `[property]`. One file serves run, topics, sink and dlq:
    /// each takes the keys it knows (dlq only the connection and topic names). Precedence:
    /// flag > environment > file > default.
    #[arg(long, value_name = "FILE", env = "KAFKA_PIPELINE_CONFIG")]
    pub config: Option<std::path::PathBuf>,
}
