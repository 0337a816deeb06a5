//! Flags of `kafka-pipeline dlq summary|show|replay`, and the parsers of their selections.

use std::time::Duration;

use clap::{Args, Subcommand};

use crate::cli::kafka::{ConfigFile, DlqTopic, InputTopic, KafkaArgs};
use crate::cli::values::parse_duration;
use crate::transform::time::parse_rfc3339_ms;
use crate::transform::{ErrorCode, Field};

/// Flags of `kafka-pipeline dlq`.
#[derive(Debug, Clone, Args)]
pub struct DlqArgs {
    /// What to do with the dead letters.
    #[command(subcommand)]
    pub command: DlqCommand,
}

/// `dlq` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum DlqCommand {
    /// Count the dead letters by error code and field: first and last seen, rate, an example.
    Summary(SummaryArgs),
    /// Print dead letters with their reason, source position and value.
    Show(ShowArgs),
    /// Send dead letters back to the input (or --to) once the cause is fixed; each letter is
    /// replayed at most once per target.
    Replay(ReplayArgs),
}

/// Where the dead letters are: connection flags, topic, config file.
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// Connection flags.
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// The dead-letter topic to read.
    #[command(flatten)]
    pub dlq: DlqTopic,

    /// `--config FILE`.
    #[command(flatten)]
    pub file: ConfigFile,

    /// Give up when the broker answers nothing for this long.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// Flags of `kafka-pipeline dlq summary`.
#[derive(Debug, Clone, Args)]
pub struct SummaryArgs {
    /// Connection and topic flags.
    #[command(flatten)]
    pub source: SourceArgs,

    /// Which dead letters.
    #[command(flatten)]
    pub filter: FilterArgs,

    /// Group by `code`, `field` or `code,field`.
    #[arg(long, value_name = "code|field|code,field", default_value = "code,field",
          value_parser = parse_group_by)]
    pub by: GroupBy,

    /// Print one JSON object (total, by_code, groups) instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `kafka-pipeline dlq show`.
#[derive(Debug, Clone, Args)]
pub struct ShowArgs {
    /// Connection and topic flags.
    #[command(flatten)]
    pub source: SourceArgs,

    /// Which dead letters.
    #[command(flatten)]
    pub filter: FilterArgs,

    /// Print at most this many (the oldest first, per partition).
    #[arg(long, value_name = "N", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: u64,
}

/// Flags of `kafka-pipeline dlq replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// Connection and topic flags.
    #[command(flatten)]
    pub source: SourceArgs,

    /// Which dead letters.
    #[command(flatten)]
    pub filter: FilterArgs,

    /// The pipeline's input topic: where letters are replayed to unless --to says otherwise.
    #[command(flatten)]
    pub input: InputTopic,

    /// Replay to this topic instead of --input-topic (for example a staging pipeline's input).
    #[arg(long, value_name = "TOPIC")]
    pub to: Option<String>,

    /// Count what would be replayed; write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Letters that have already been replayed this many times are not replayed again.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_replays: u32,

    /// Topic of the replay ledger (created when missing) [default: DLQ-TOPIC-replays].
    #[arg(long, value_name = "TOPIC")]
    pub ledger_topic: Option<String>,

    /// Print the closing counts as one JSON object instead of a sentence.
    #[arg(long)]
    pub json: bool,
}

/// Selection flags shared by `summary`, `show` and `replay`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FilterArgs {
    /// Only dead letters with this error code (repeatable or comma-separated; `none`: records
    /// without the pipeline's error headers).
    #[arg(long, value_name = "CODE", value_delimiter = ',', value_parser = parse_code)]
    pub code: Vec<String>,

    /// Only dead letters blaming this field (repeatable or comma-separated; `none`: no field).
    #[arg(long, value_name = "FIELD", value_delimiter = ',', value_parser = parse_field)]
    pub field: Vec<String>,

    /// Only dead letters written at or after this time: a duration back from now (15m, 2h, 7d)
    /// or an RFC 3339 time or date (2024-07-10T05:34:57Z, 2024-07-10).
    #[arg(long, value_name = "DURATION|TIME", value_parser = parse_time_bound)]
    pub since: Option<TimeBound>,

    /// Only dead letters written before this time (same forms as --since).
    #[arg(long, value_name = "DURATION|TIME", value_parser = parse_time_bound)]
    pub until: Option<TimeBound>,
}

/// A point in time as given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBound {
    /// That long before now.
    Ago(Duration),
    /// That time, ms since the epoch.
    At(i64),
}

impl TimeBound {
    /// The time in ms since the epoch, with `now_ms` for relative bounds.
    pub fn resolve(self, now_ms: i64) -> i64 {
        match self {
            TimeBound::Ago(d) => now_ms.saturating_sub(d.as_millis().min(i64::MAX as u128) as i64),
            TimeBound::At(ms) => ms,
        }
    }
}

/// `--code`: one of the pipeline's error codes, or `none`.
pub fn parse_code(s: &str) -> Result<String, String> {
    let known: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    parse_label(s, &known, "error code")
}

/// `--field`: one of the schema's fields, or `none`.
pub fn parse_field(s: &str) -> Result<String, String> {
    let known: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
    parse_label(s, &known, "field")
}

/// `s` if it is one of `known`; [`NONE_LABEL`] for `none`.
fn parse_label(s: &str, known: &[&str], what: &str) -> Result<String, String> {
    let s = s.trim();
    if s == "none" || s == NONE_LABEL {
        Ok(NONE_LABEL.to_owned())
    } else if known.contains(&s) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "unknown {what} {s:?}; expected none or one of {}",
            known.join(", ")
        ))
    }
}

/// `--since`/`--until`: a duration back from now, or an RFC 3339 time or date.
pub fn parse_time_bound(s: &str) -> Result<TimeBound, String> {
    let s = s.trim();
    if let Some(days) = s.strip_suffix('d') {
        if let Ok(n) = days.parse::<u64>() {
            return Ok(TimeBound::Ago(Duration::from_secs(
                n.saturating_mul(86_400),
            )));
        }
    }
    if s.contains('-') {
        return parse_rfc3339_ms(s).map(TimeBound::At).ok_or_else(|| {
            format!("expected an RFC 3339 time such as 2024-07-10T05:34:57Z or a date such as 2024-07-10, got {s:?}")
        });
    }
    parse_duration(s)
        .map(TimeBound::Ago)
        .map_err(|_| format!("expected a duration back from now (15m, 2h, 7d) or an RFC 3339 time (2024-07-10T05:34:57Z), got {s:?}"))
}

/// What the groups are: `--by code`, `--by field` or `--by code,field`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupBy {
    /// Group by error code.
    pub code: bool,
    /// Group by field.
    pub field: bool,
}

impl Default for GroupBy {
    fn default() -> Self {
        GroupBy {
            code: true,
            field: true,
        }
    }
}

/// Parses `--by`: `code`, `field`, or both comma-separated in either order.
pub fn parse_group_by(s: &str) -> Result<GroupBy, String> {
    let mut by = GroupBy {
        code: false,
        field: false,
    };
    for part in s.split(',').map(str::trim) {
        match part {
            "code" if !by.code => by.code = true,
            "field" if !by.field => by.field = true,
            _ => return Err(format!("expected code, field or code,field, got {s:?}")),
        }
    }
    Ok(by)
}

/// How a missing code or field is labelled in tables, `by_code` and the `--code`/`--field`
/// filters (`none` on the command line).
pub const NONE_LABEL: &str = "(none)";

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    #[test]
    fn codes_and_fields_are_checked() {
        assert_eq!(parse_code("missing_field").unwrap(), "missing_field");
        assert_eq!(parse_code("none").unwrap(), NONE_LABEL);
        let err = parse_code("missing_fields").unwrap_err();
        assert!(err.contains("invalid_json"), "{err}");
        assert_eq!(parse_field("device_type").unwrap(), "device_type");
        assert_eq!(parse_field("none").unwrap(), NONE_LABEL);
        assert!(parse_field("colour").is_err());
    }

    #[test]
    fn time_bounds_parse() {
        let at = |s| match parse_time_bound(s) {
            Ok(TimeBound::At(ms)) => ms,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(at("2024-07-10T05:34:57Z"), 1_720_589_697_000);
        assert_eq!(at("2024-07-10t05:34:57.25z"), 1_720_589_697_250);
        assert_eq!(at("2024-07-10 07:34:57+02:00"), 1_720_589_697_000);
        assert_eq!(at("2024-07-10T00:04:57-05:30"), 1_720_589_697_000);
        assert_eq!(at("1970-01-01"), 0);
        assert_eq!(at("2024-02-29"), 1_709_164_800_000);
        assert_eq!(
            parse_time_bound("15m"),
            Ok(TimeBound::Ago(Duration::from_secs(900)))
        );
        assert_eq!(
            parse_time_bound("7d"),
            Ok(TimeBound::Ago(Duration::from_secs(7 * 86_400)))
        );
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-7-10",
            "2024-07-10T25:00:00Z",
            "2024-07-10T05:34Z",
            "2024-07-10T05:34:57",
            "2024-07-10T05:34:57+2",
            "yesterday",
            "-5m",
        ] {
            assert!(parse_time_bound(bad).is_err(), "{bad}");
        }
    }

    fn parse(args: &[&str]) -> Result<DlqCommand, clap::Error> {
        let cli = Cli::try_parse_from(
            ["kafka-pipeline", "dlq"]
                .into_iter()
                .chain(args.iter().copied()),
        )?;
        match cli.command {
            Command::Dlq(a) => Ok(a.command),
            other => panic!("not dlq: {other:?}"),
        }
    }

    #[test]
    fn summary_flags_and_defaults() {
        let DlqCommand::Summary(a) = parse(&["summary", "--since", "1h", "--json"]).unwrap() else {
            panic!()
        };
        assert_eq!(a.source.dlq.name, "user-login-dlq");
        assert_eq!(a.source.kafka.brokers, "localhost:29092");
        assert_eq!(a.by, GroupBy::default());
        assert!(a.json);
        assert_eq!(
            a.filter.since,
            Some(TimeBound::Ago(Duration::from_secs(3600)))
        );
        let DlqCommand::Summary(a) = parse(&["summary", "--by", "field"]).unwrap() else {
            panic!()
        };
        assert!(!a.by.code && a.by.field);
        assert!(parse(&["summary", "--by", "partition"]).is_err());
    }

    #[test]
    fn config_file_gives_connection_and_topics_but_not_dlq_flags() {
        let path = std::env::temp_dir().join(format!("kp-dlq-unit-{}.toml", std::process::id()));
        let file = |text: &str| {
            std::fs::write(&path, text).unwrap();
            crate::cli::parse_cli([
                "kafka-pipeline",
                "dlq",
                "replay",
                "--config",
                path.to_str().unwrap(),
                "--brokers",
                "flag:9092",
            ])
        };
        let cli = file(
            "brokers = \"file:9092\"\ndlq-topic = \"file-dlq\"\ninput-topic = \"file-in\"\n\
             workers = 3\n[property]\nclient.id = \"f\"\n",
        )
        .unwrap();
        let Command::Dlq(DlqArgs {
            command: DlqCommand::Replay(a),
        }) = cli.command
        else {
            panic!("not dlq replay")
        };
        assert_eq!(a.source.kafka.brokers, "flag:9092", "flag over file");
        assert_eq!(a.source.dlq.name, "file-dlq");
        assert_eq!(a.input.name, "file-in");
        assert_eq!(
            a.source.kafka.properties,
            vec![("client.id".to_owned(), "f".to_owned())]
        );
        // A replay's own flags are per invocation, not file keys.
        for key in ["dry-run = true", "max-replays = 9", "timeout = \"1s\""] {
            let err = file(key).unwrap_err();
            let crate::cli::CliError::File(msg) = err else {
                panic!("{key}: {err:?}")
            };
            assert!(msg.contains("unknown key"), "{key}: {msg}");
        }
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn replay_flags_are_checked_at_parse_time() {
        let DlqCommand::Replay(a) = parse(&[
            "replay",
            "--code",
            "missing_field,none",
            "--to",
            "staging",
            "--dry-run",
            "--dlq-topic",
            "d",
            "-X",
            "security.protocol=ssl",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(a.filter.code, vec!["missing_field", NONE_LABEL]);
        assert_eq!(a.to.as_deref(), Some("staging"));
        assert!(a.dry_run);
        assert_eq!(a.max_replays, 3);
        assert_eq!(a.input.name, "user-login");
        assert_eq!(a.source.dlq.name, "d");
        assert_eq!(a.source.kafka.properties.len(), 1);
        for bad in [
            &["replay", "--code", "missing_fields"][..],
            &["replay", "--field", "colour"],
            &["replay", "--max-replays", "0"],
            &["replay", "--since", "yesterday"],
            &["show", "--limit", "0"],
        ] {
            let err = parse(bad).unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{bad:?}: {err}"
            );
        }
    }
}
