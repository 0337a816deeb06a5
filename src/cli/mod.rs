//! The command line: every clap definition, and the `--config` file merge.
//!
//! The clap derive structs mirror the flags, each with a `KAFKA_PIPELINE_*` environment twin:
//! [`Cli`] and [`Command`] here, the flags of each subcommand in a file of its own ([`run`],
//! [`loadgen`], [`insights`], [`topics`], [`dlq`], [`sink`]), and the flags several of them share
//! in [`kafka`] (connection, topic names). Values that clap can check on its own (numbers,
//! durations, `key=value` pairs: [`values`]) are rejected at parse time; cross-field rules
//! (distinct topics, valid fill values) are checked by [`crate::config::Config::from_args`].
//! This module imports no runtime module: only the pure contract types its flags parse into.
//!
//! `run --config FILE` adds a TOML file under the flags: precedence is flag > environment >
//! file > default. [`parse_cli`] does it by parsing once, then handing the file's values to
//! clap as extra arguments for exactly the flags that the command line and the environment left
//! at their defaults, and parsing again, so a file value is validated by the same parser as the
//! flag. List flags (`-X`, `--consumer-property`, `--producer-property`, `--optional-field`)
//! combine instead: the file's entries come first and the command line's (or environment's)
//! follow, so for a repeated key the flag wins. `--print-config` prints the resolved values as
//! such a file, with secrets redacted ([`crate::config::redact`]). `topics` and the `dlq` commands read the
//! same file; `dlq` takes only the keys it shares with `run` and `topics` (brokers,
//! properties, topic names).

pub mod dlq;
mod file;
pub mod insights;
pub mod kafka;
pub mod loadgen;
pub mod run;
pub mod sink;
pub mod topics;
pub mod values;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use self::dlq::DlqArgs;
use self::file::{file_arguments, read_config_file};
use self::insights::ReaderArgs;
use self::loadgen::LoadgenArgs;
use self::run::RunArgs;
use self::sink::SinkArgs;
use self::topics::TopicsArgs;

/// Command line of the `kafka-pipeline` binary.
#[derive(Debug, Parser)]
#[command(name = "kafka-pipeline", version, about, long_about = None)]
pub struct Cli {
    /// Log line format: `text` (human-readable) or `json` (one object per line: ts, level,
    /// target, message, fields). Filter with RUST_LOG as usual.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "KAFKA_PIPELINE_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Format of the log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// env_logger's human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
// Parsed once per process; boxing the run flags would only add noise to every match.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the pipeline: consume login events, write processed records, dead letters and insights.
    Run(RunArgs),
    /// Produce realistic or hostile login traffic to a topic, for demos and load tests.
    Loadgen(LoadgenArgs),
    /// Read the insights topic, merge the windows of all instances and print them.
    Insights(ReaderArgs),
    /// Create the input, output, dead-letter and insights topics, or check their partition
    /// count and replication factor (exit 1 on a mismatch).
    Topics(TopicsArgs),
    /// Triage the dead letters (summary, show) and replay them once the cause is fixed.
    Dlq(DlqArgs),
    /// Keep the insight windows in PostgreSQL: read the insights topic as a consumer group,
    /// merge every instance's records per window, upsert one row per window, exactly once.
    Sink(SinkArgs),
}

/// Why the command line could not be turned into a [`Cli`].
#[derive(Debug)]
pub enum CliError {
    /// clap's own error (also `--help` and `--version`, which exit 0): print it with
    /// [`clap::Error::exit`].
    Clap(clap::Error),
    /// The config file is unreadable or has a bad key or value (exit code 2).
    File(String),
}

impl From<clap::Error> for CliError {
    fn from(e: clap::Error) -> Self {
        CliError::Clap(e)
    }
}

/// Subcommands that take `--config`, by their path of names; one file serves them all (a key
/// that only another of them knows is skipped).
const CONFIG_SUBCOMMANDS: [&[&str]; 6] = [
    &["run"],
    &["topics"],
    &["sink"],
    &["dlq", "summary"],
    &["dlq", "show"],
    &["dlq", "replay"],
];

/// The subcommands whose flags are the file's keys. The others take from the file only the
/// keys they share with these (connection and topic names); their own flags are per
/// invocation (`dlq replay --dry-run` in a file would be a trap).
const FILE_KEY_SUBCOMMANDS: [&str; 3] = ["run", "topics", "sink"];

/// Keys of the config file that hold lists (`key=value` entries); the rest hold one value.
const LIST_KEYS: [&str; 4] = [
    "property",
    "consumer-property",
    "producer-property",
    "optional-field",
];

/// Parses the command line and, for `run --config FILE`, merges the file under the flags and
/// the environment (see the module doc for the precedence).
pub fn parse_cli<I, T>(args: I) -> Result<Cli, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let matches = Cli::command().try_get_matches_from(&args)?;
    let (mut names, mut sub) = (Vec::new(), &matches);
    while let Some((name, inner)) = sub.subcommand() {
        names.push(name);
        sub = inner;
    }
    let file = CONFIG_SUBCOMMANDS
        .into_iter()
        .find(|path| *path == names.as_slice())
        .and_then(|path| sub.get_one::<PathBuf>("config").map(|f| (path, f.clone())));
    let Some((names, path)) = file else {
        return Ok(Cli::from_arg_matches(&matches)?);
    };
    let table = read_config_file(&path)?;
    let (front, back) = file_arguments(&path, &table, names, sub)?;
    // Right after the subcommand's names (global flags may precede them).
    let at = names.iter().fold(1, |from, name| {
        args[from..]
            .iter()
            .position(|a| a == name)
            .map_or(args.len(), |i| from + i + 1)
    });
    let merged: Vec<OsString> = args[..at]
        .iter()
        .cloned()
        .chain(front)
        .chain(args[at..].iter().cloned())
        .chain(back)
        .collect();
    Cli::try_parse_from(merged).map_err(|e| {
        let first = e.to_string();
        let first = first
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("error: ");
        CliError::File(format!("{}: {first}", path.display()))
    })
}
