//! Flags of `kafka-pipeline insights`.

use std::time::Duration;

use crate::cli::kafka::KafkaArgs;

/// Flags of `kafka-pipeline insights`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReaderArgs {
    /// Connection flags (`--brokers`, `-X`).
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Topic of insight records.
    #[arg(
        long,
        env = "KAFKA_PIPELINE_INSIGHTS_TOPIC",
        default_value = "insights"
    )]
    pub topic: String,

    /// Keep reading and print windows as they are published or updated (Ctrl-C to stop).
    #[arg(short, long)]
    pub follow: bool,

    /// Print one merged JSON record per window per line instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Print every window in the topic (the default; the opposite of --last).
    #[arg(long, conflicts_with = "last")]
    pub from_beginning: bool,

    /// Print only the N most recent windows.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub last: Option<u32>,

    /// Give up when the broker answers nothing for this long while reading up to the end.
    #[arg(long, default_value = "30s", value_parser = crate::cli::values::parse_duration)]
    pub timeout: Duration,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::ReaderArgs;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Result<ReaderArgs, clap::Error> {
        let mut argv = vec!["kafka-pipeline", "insights"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Insights(args) => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn flags_parse_with_defaults() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.topic, "insights");
        assert_eq!(a.kafka.brokers, "localhost:29092");
        assert!(!a.follow && !a.json && !a.from_beginning);
        assert_eq!(a.last, None);
        assert_eq!(a.timeout, Duration::from_secs(30));
        let a = parse(&[
            "--topic",
            "t",
            "-f",
            "--json",
            "--last",
            "5",
            "-X",
            "debug=all",
        ])
        .unwrap();
        assert_eq!(
            (a.topic.as_str(), a.follow, a.json, a.last),
            ("t", true, true, Some(5))
        );
        assert_eq!(a.kafka.properties, [("debug".to_owned(), "all".to_owned())]);
        assert!(parse(&["--last", "0"]).is_err());
        assert!(parse(&["--last", "3", "--from-beginning"]).is_err());
    }
}
