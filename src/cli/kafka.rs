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
