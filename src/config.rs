//! The command line and the validated configuration.
//!
//! Two layers: clap derive structs ([`Cli`], [`RunArgs`], [`KafkaArgs`]) mirror the flags, each
//! with a `KAFKA_PIPELINE_*` environment twin; and [`Config`] holds the resolved values the
//! pipeline runs with. Values that clap can check on its own (numbers, durations, `key=value`
//! pairs) are rejected at parse time; cross-field rules (distinct topics, valid fill values) are
//! checked by [`Config::from_args`].
//!
//! `run --config FILE` adds a TOML file under the flags: precedence is flag > environment >
//! file > default. [`parse_cli`] does it by parsing once, then handing the file's values to
//! clap as extra arguments for exactly the flags that the command line and the environment left
//! at their defaults, and parsing again, so a file value is validated by the same parser as the
//! flag. List flags (`-X`, `--consumer-property`, `--producer-property`, `--optional-field`)
//! combine instead: the file's entries come first and the command line's (or environment's)
//! follow, so for a repeated key the flag wins. `--print-config` prints the resolved values as
//! such a file, with secrets redacted ([`redact`]). `topics` and the `dlq` commands read the
//! same file; `dlq` takes only the keys it shares with `run` and `topics` (brokers,
//! properties, topic names).

use std::ffi::OsString;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{
    ArgAction, ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum,
};

use crate::error::PipelineError;
use crate::transform::{Field, TransformOptions};

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
    Loadgen(crate::loadgen::LoadgenArgs),
    /// Read the insights topic, merge the windows of all instances and print them.
    Insights(crate::insights::ReaderArgs),
    /// Create the input, output, dead-letter and insights topics, or check their partition
    /// count and replication factor (exit 1 on a mismatch).
    Topics(crate::topics::TopicsArgs),
    /// Triage the dead letters (summary, show) and replay them once the cause is fixed.
    Dlq(crate::dlq::DlqArgs),
    /// Keep the insight windows in PostgreSQL: read the insights topic as a consumer group,
    /// merge every instance's records per window, upsert one row per window, exactly once.
    Sink(crate::sink::SinkArgs),
}

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

    /// Topic of raw login events to consume.
    #[arg(long, env = "KAFKA_PIPELINE_INPUT_TOPIC", default_value = "user-login")]
    pub input_topic: String,

    /// Topic for valid, normalized records (keyed by user_id).
    #[arg(
        long,
        env = "KAFKA_PIPELINE_OUTPUT_TOPIC",
        default_value = "processed_data"
    )]
    pub output_topic: String,

    /// Dead-letter topic: every record that cannot be processed, untouched, with error headers.
    #[arg(
        long,
        env = "KAFKA_PIPELINE_DLQ_TOPIC",
        default_value = "user-login-dlq"
    )]
    pub dlq_topic: String,

    /// Topic for windowed insights.
    #[arg(
        long,
        env = "KAFKA_PIPELINE_INSIGHTS_TOPIC",
        default_value = "insights"
    )]
    pub insights_topic: String,

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
    #[arg(long, env = "KAFKA_PIPELINE_INPUT_HEADERS", default_value = "all", value_parser = crate::worker::InputHeaders::parse)]
    pub input_headers: crate::worker::InputHeaders,

    /// Benchmark ceiling: copy each input record (key, value, headers) to the output topic
    /// untouched, with the same clients and settings: no parsing, no dead letters, no insights.
    #[arg(long, env = "KAFKA_PIPELINE_PASSTHROUGH")]
    pub passthrough: bool,

    /// Stop after the input is drained: exit once every assigned partition has been read to its
    /// end offset and all outputs are committed (for batch jobs and tests).
    #[arg(long, env = "KAFKA_PIPELINE_EXIT_AT_END")]
    pub exit_at_end: bool,

    /// Address of the HTTP endpoints /metrics (Prometheus), /health and /ready; "" turns them
    /// off. Use 0.0.0.0:9898 in a container. When the default address is taken (a second
    /// instance on one host) the pipeline warns and runs without them; an address given
    /// explicitly must be free [default: 127.0.0.1:9898].
    #[arg(long, value_name = "HOST:PORT", env = "KAFKA_PIPELINE_METRICS_ADDR")]
    pub metrics_addr: Option<String>,

    /// TOML file with values for any of these flags (keys are the long flag names, e.g.
    /// input-topic = "user-login"; librdkafka properties under [property]). Precedence:
    /// flag > environment > file > default.
    #[arg(long, value_name = "FILE", env = "KAFKA_PIPELINE_CONFIG")]
    pub config: Option<PathBuf>,

    /// Print the resolved configuration (as a config file, secrets redacted) and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// The resolved configuration of `kafka-pipeline run`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Bootstrap servers.
    pub brokers: String,
    /// Input topic.
    pub input_topic: String,
    /// Output topic.
    pub output_topic: String,
    /// Dead-letter topic.
    pub dlq_topic: String,
    /// Insights topic.
    pub insights_topic: String,
    /// Consumer group.
    pub group_id: String,
    /// Number of worker threads, at least 1.
    pub workers: usize,
    /// Validation options (fill values, payload limit).
    pub transform: TransformOptions,
    /// Extra librdkafka properties for the consumer, in the order they apply.
    pub consumer_properties: Vec<(String, String)>,
    /// Extra librdkafka properties for the producer, in the order they apply.
    pub producer_properties: Vec<(String, String)>,
    /// Deadline of a graceful shutdown.
    pub shutdown_timeout: Duration,
    /// Interval of the progress line; zero disables it.
    pub progress_interval: Duration,
    /// Capacity of each inter-stage channel.
    pub channel_capacity: usize,
    /// Exit once the input is drained.
    pub exit_at_end: bool,
    /// Copy records untouched (benchmark ceiling).
    pub passthrough: bool,
    /// Insight window sizes.
    pub windows: crate::insights::window::WindowConfig,
    /// This instance's name in the insight records.
    pub instance_id: String,
    /// Whether `instance_id` was given (then it is also the static group member id).
    pub instance_id_explicit: bool,
    /// At-least-once or exactly-once.
    pub guarantee: Guarantee,
    /// How often a commit epoch closes.
    pub commit_interval: Duration,
    /// Which input headers processed records carry.
    pub input_headers: crate::worker::InputHeaders,
    /// Where /metrics, /health and /ready listen; `None`: off.
    pub metrics_addr: Option<SocketAddr>,
    /// Whether the address was given (flag, environment or file): then failing to bind it is
    /// an error; the default address being taken only costs the endpoints.
    pub metrics_addr_explicit: bool,
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

/// Where the endpoints listen unless `--metrics-addr` says otherwise.
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9898";

impl Config {
    /// Resolves and cross-checks the flags of `run`.
    pub fn from_args(args: RunArgs) -> Result<Config, PipelineError> {
        let config_err = |msg: String| Err(PipelineError::Config(msg));
        for (flag, topic) in [
            ("--input-topic", &args.input_topic),
            ("--output-topic", &args.output_topic),
            ("--dlq-topic", &args.dlq_topic),
            ("--insights-topic", &args.insights_topic),
            ("--group-id", &args.group_id),
        ] {
            if topic.trim().is_empty() {
                return config_err(format!("{flag} must not be empty"));
            }
        }
        for (flag, topic) in [
            ("--output-topic", &args.output_topic),
            ("--dlq-topic", &args.dlq_topic),
            ("--insights-topic", &args.insights_topic),
        ] {
            if *topic == args.input_topic {
                return config_err(format!(
                    "{flag} is the same as --input-topic ({topic}); the pipeline would consume its own output"
                ));
            }
        }
        if args.kafka.brokers.trim().is_empty() {
            return config_err("--brokers must not be empty".into());
        }
        let mut transform = TransformOptions {
            max_payload_bytes: args.max_payload_bytes as usize,
            ..Default::default()
        };
        for (name, value) in &args.optional_fields {
            let field = Field::from_name(name).ok_or_else(|| {
                let known: Vec<_> = Field::ALL.iter().map(|f| f.name()).collect();
                PipelineError::Config(format!(
                    "--optional-field {name}={value}: unknown field {name:?}, expected one of {}",
                    known.join(", ")
                ))
            })?;
            transform.set_fill(field, value).map_err(|e| {
                PipelineError::Config(format!("--optional-field {name}={value}: {e}"))
            })?;
        }
        let common = args.kafka.properties;
        let merged =
            |specific: Vec<(String, String)>| common.iter().cloned().chain(specific).collect();
        let workers = match args.workers {
            Some(n) => usize::from(n),
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let window = args.window.as_secs();
        if window == 0 || args.window.subsec_nanos() != 0 {
            return config_err(format!(
                "--window must be a whole number of seconds, at least 1s (got {:?})",
                args.window
            ));
        }
        let lateness = args.allowed_lateness.map_or(window, |d| d.as_secs());
        let instance_id_explicit = args.instance_id.is_some();
        let instance_id = args.instance_id.unwrap_or_else(default_instance_id);
        if instance_id.trim().is_empty() {
            return config_err("--instance-id must not be empty".into());
        }
        if args.commit_interval < Duration::from_millis(10)
            || args.commit_interval > Duration::from_secs(60)
        {
            return config_err(format!(
                "--commit-interval must be between 10ms and 60s (got {:?})",
                args.commit_interval
            ));
        }
        let metrics_addr_explicit = args.metrics_addr.is_some();
        let metrics_addr =
            resolve_addr(args.metrics_addr.as_deref().unwrap_or(DEFAULT_METRICS_ADDR))?;
        Ok(Config {
            brokers: args.kafka.brokers,
            input_topic: args.input_topic,
            output_topic: args.output_topic,
            dlq_topic: args.dlq_topic,
            insights_topic: args.insights_topic,
            group_id: args.group_id,
            workers,
            transform,
            consumer_properties: merged(args.consumer_properties),
            producer_properties: merged(args.producer_properties),
            shutdown_timeout: args.shutdown_timeout,
            progress_interval: args.progress_interval,
            channel_capacity: args.channel_capacity as usize,
            exit_at_end: args.exit_at_end,
            passthrough: args.passthrough,
            windows: crate::insights::window::WindowConfig::new(window, lateness),
            instance_id,
            instance_id_explicit,
            guarantee: args.guarantee,
            commit_interval: args.commit_interval,
            input_headers: args.input_headers,
            metrics_addr,
            metrics_addr_explicit,
        })
    }
}

/// `--metrics-addr`: empty turns the endpoints off; otherwise HOST:PORT.
fn resolve_addr(addr: &str) -> Result<Option<SocketAddr>, PipelineError> {
    let addr = addr.trim();
    if addr.is_empty() {
        return Ok(None);
    }
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .map(Some)
        .ok_or_else(|| {
            PipelineError::Config(format!(
                "--metrics-addr {addr:?}: expected HOST:PORT such as 127.0.0.1:9898, or \"\" to turn the endpoints off"
            ))
        })
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

fn read_config_file(path: &Path) -> Result<toml::Table, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::File(format!("--config {}: {e}", path.display())))?;
    text.parse::<toml::Table>()
        .map_err(|e| CliError::File(format!("{}: {e}", path.display())))
}

/// Turns the file's entries into extra arguments: list entries to go right after `run` (before
/// the command line's, so those win), single values to go at the end, only for the flags the
/// command line and environment did not set.
fn file_arguments(
    path: &Path,
    table: &toml::Table,
    subcommand: &[&str],
    matches: &ArgMatches,
) -> Result<(Vec<OsString>, Vec<OsString>), CliError> {
    let bad =
        |key: &str, what: String| CliError::File(format!("{}: {key}: {what}", path.display()));
    let command = Cli::command();
    let sub_command = |names: &[&str]| {
        names.iter().fold(&command, |c, name| {
            c.find_subcommand(name)
                .expect("a subcommand that takes --config")
        })
    };
    let this = sub_command(subcommand);
    let known_elsewhere = |key: &str| {
        FILE_KEY_SUBCOMMANDS.iter().any(|&other| {
            sub_command(&[other])
                .get_arguments()
                .any(|a| a.get_long() == Some(key))
        })
    };
    let file_key_here = FILE_KEY_SUBCOMMANDS.contains(&subcommand[0]);
    let (mut front, mut back) = (Vec::new(), Vec::new());
    for (raw_key, value) in table {
        let key = raw_key.replace('_', "-");
        if key == "config" || key == "print-config" {
            return Err(bad(raw_key, "not allowed in a config file".into()));
        }
        // Global flags (log-format) are defined on the top command; clap propagates their
        // values to the subcommand's matches.
        let found = command
            .get_arguments()
            .chain(this.get_arguments())
            .find(|a| a.get_long() == Some(key.as_str()))
            .filter(|a| file_key_here || a.is_global_set() || known_elsewhere(&key));
        let arg =
            match found {
                Some(arg) => arg,
                None if known_elsewhere(&key) => continue,
                None => return Err(bad(
                    raw_key,
                    "unknown key (keys are the long flags of `run`, `topics` and `sink`, e.g. input-topic)"
                        .into(),
                )),
            };
        let id = arg.get_id().as_str();
        let source = matches.value_source(id);
        let set_above = matches!(
            source,
            Some(ValueSource::CommandLine) | Some(ValueSource::EnvVariable)
        );
        if LIST_KEYS.contains(&key.as_str()) {
            for entry in list_entries(value).map_err(|e| bad(raw_key, e))? {
                front.push(format!("--{key}={entry}").into());
            }
            // Values from the environment are only used by clap when the flag is absent from
            // the command line, which it no longer is: carry them over explicitly.
            if source == Some(ValueSource::EnvVariable) {
                for raw in matches.get_raw(id).into_iter().flatten() {
                    let mut a = OsString::from(format!("--{key}="));
                    a.push(raw);
                    front.push(a);
                }
            }
            continue;
        }
        if set_above {
            continue;
        }
        match (arg.get_action(), value) {
            (ArgAction::SetTrue, toml::Value::Boolean(true)) => {
                back.push(format!("--{key}").into())
            }
            (ArgAction::SetTrue, toml::Value::Boolean(false)) => {}
            (ArgAction::SetTrue, _) => return Err(bad(raw_key, "expected true or false".into())),
            (_, v) => {
                back.push(format!("--{key}={}", scalar(v).map_err(|e| bad(raw_key, e))?).into())
            }
        }
    }
    Ok((front, back))
}

/// A single value as its flag text.
fn scalar(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        other => Err(format!(
            "expected a string or number, got {}",
            other.type_str()
        )),
    }
}

/// A list flag's entries: an array of "key=value" strings, or a table (nested tables flatten
/// with dots, so `[property]` with `security.protocol = "ssl"` means `security.protocol=ssl`).
fn list_entries(value: &toml::Value) -> Result<Vec<String>, String> {
    fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<String>) -> Result<(), String> {
        for (k, v) in table {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(t) => flatten(&key, t, out)?,
                v => out.push(format!("{key}={}", scalar(v)?)),
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    match value {
        toml::Value::Array(items) => {
            for item in items {
                match item {
                    toml::Value::String(s) => out.push(s.clone()),
                    other => {
                        return Err(format!(
                            "expected \"key=value\" strings, got {}",
                            other.type_str()
                        ))
                    }
                }
            }
        }
        toml::Value::Table(t) => flatten("", t, &mut out)?,
        other => {
            return Err(format!(
                "expected a table or an array of \"key=value\" strings, got {}",
                other.type_str()
            ))
        }
    }
    Ok(out)
}

/// Whether a librdkafka property holds a secret: keys ending in `password` or `secret`
/// (`sasl.password`, `ssl.key.password`, `ssl.keystore.password`,
/// `sasl.oauthbearer.client.secret`), an inline private key (`ssl.key.pem`) and the OAUTHBEARER
/// config string.
pub fn is_secret(key: &str) -> bool {
    let key = key.trim().to_ascii_lowercase();
    key.ends_with("password")
        || key.ends_with("secret")
        || key == "ssl.key.pem"
        || key == "sasl.oauthbearer.config"
}

/// `value`, or `<redacted>` when `key` names a secret.
pub fn redact<'a>(key: &str, value: &'a str) -> &'a str {
    if is_secret(key) {
        "<redacted>"
    } else {
        value
    }
}

/// The resolved configuration as a TOML config file (usable with `--config`), secrets
/// redacted. `args` supplies the list flags as given; `config` the resolved values.
pub fn print_config(args: &RunArgs, config: &Config, log_format: LogFormat) -> String {
    use std::fmt::Write as _;
    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let d = |d: Duration| {
        if d.subsec_nanos() == 0 {
            q(&format!("{}s", d.as_secs()))
        } else {
            q(&format!("{}ms", d.as_millis()))
        }
    };
    let list = |entries: &[(String, String)]| {
        let items: Vec<String> = entries
            .iter()
            .map(|(k, v)| q(&format!("{k}={}", redact(k, v))))
            .collect();
        format!("[{}]", items.join(", "))
    };
    let mut out = String::new();
    let mut line = |k: &str, v: String| {
        let _ = writeln!(out, "{k} = {v}");
    };
    line("brokers", q(&config.brokers));
    line("input-topic", q(&config.input_topic));
    line("output-topic", q(&config.output_topic));
    line("dlq-topic", q(&config.dlq_topic));
    line("insights-topic", q(&config.insights_topic));
    line("group-id", q(&config.group_id));
    line("workers", config.workers.to_string());
    line("optional-field", list(&args.optional_fields));
    line(
        "max-payload-bytes",
        config.transform.max_payload_bytes.to_string(),
    );
    line("shutdown-timeout", d(config.shutdown_timeout));
    line("progress-interval", d(config.progress_interval));
    line("channel-capacity", config.channel_capacity.to_string());
    line("window", d(Duration::from_secs(config.windows.size_secs)));
    line(
        "allowed-lateness",
        d(Duration::from_secs(config.windows.allowed_lateness_secs)),
    );
    line("instance-id", q(&config.instance_id));
    line("guarantee", q(config.guarantee.as_str()));
    line("commit-interval", d(config.commit_interval));
    line("input-headers", q(&config.input_headers.to_flag()));
    line("passthrough", config.passthrough.to_string());
    line("exit-at-end", config.exit_at_end.to_string());
    line(
        "metrics-addr",
        q(&config.metrics_addr.map_or(String::new(), |a| a.to_string())),
    );
    line(
        "log-format",
        q(match log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }),
    );
    line("property", list(&args.kafka.properties));
    line("consumer-property", list(&args.consumer_properties));
    line("producer-property", list(&args.producer_properties));
    out
}

/// `HOSTNAME-PID`: unique among the instances running at one time.
fn default_instance_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "kafka-pipeline".into());
    format!("{host}-{}", std::process::id())
}

/// Parses `key=value` (the value may itself contain `=`).
pub fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// Parses a duration such as `30s`, `500ms`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("expected a duration like 30s or 500ms, got {s:?}"))?;
    let secs = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("unknown unit {unit:?} in {s:?}; use ms, s, m or h")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kafka-pipeline").chain(args.iter().copied()))
    }

    fn run_config(args: &[&str]) -> Result<Config, PipelineError> {
        let mut full = vec!["run"];
        full.extend_from_slice(args);
        match parse(&full).expect("flags parse").command {
            Command::Run(a) => Config::from_args(a),
            other => panic!("not run: {other:?}"),
        }
    }

    #[test]
    fn defaults_match_the_local_setup() {
        let c = run_config(&[]).unwrap();
        assert_eq!(c.brokers, "localhost:29092");
        assert_eq!(c.input_topic, "user-login");
        assert_eq!(c.output_topic, "processed_data");
        assert_eq!(c.dlq_topic, "user-login-dlq");
        assert_eq!(c.insights_topic, "insights");
        assert_eq!(c.group_id, "kafka-pipeline");
        assert_eq!(c.shutdown_timeout, Duration::from_secs(30));
        assert!(c.workers >= 1);
        assert!(c.transform.fill.iter().all(Option::is_none));
        assert_eq!(
            (c.windows.size_secs, c.windows.allowed_lateness_secs),
            (10, 10)
        );
        assert!(c.instance_id.ends_with(&format!("-{}", std::process::id())));
    }

    #[test]
    fn window_flags() {
        let c = run_config(&[
            "--window",
            "1m",
            "--allowed-lateness",
            "5s",
            "--instance-id",
            "a",
        ])
        .unwrap();
        assert_eq!(
            (c.windows.size_secs, c.windows.allowed_lateness_secs),
            (60, 5)
        );
        assert_eq!(c.instance_id, "a");
        assert!(run_config(&["--window", "0s"]).is_err());
        assert!(run_config(&["--window", "1500ms"]).is_err());
    }

    #[test]
    fn zero_workers_is_rejected_at_parse_time() {
        let err = parse(&["run", "--workers", "0"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
        assert!(err.to_string().contains("--workers"), "{err}");
    }

    #[test]
    fn properties_merge_common_then_specific() {
        let c = run_config(&[
            "-X",
            "client.id=a",
            "--consumer-property",
            "fetch.min.bytes=10",
            "--producer-property",
            "linger.ms=5",
            "-X",
            "sasl.jaas=x=y",
        ])
        .unwrap();
        let kv = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(
            c.consumer_properties,
            vec![
                kv("client.id", "a"),
                kv("sasl.jaas", "x=y"),
                kv("fetch.min.bytes", "10")
            ]
        );
        assert_eq!(
            c.producer_properties,
            vec![
                kv("client.id", "a"),
                kv("sasl.jaas", "x=y"),
                kv("linger.ms", "5")
            ]
        );
    }

    #[test]
    fn malformed_property_is_rejected() {
        assert!(parse(&["run", "-X", "novalue"]).is_err());
        assert!(parse(&["run", "-X", "=v"]).is_err());
    }

    #[test]
    fn optional_field_is_validated() {
        let c = run_config(&["--optional-field", "device_type=unknown"]).unwrap();
        assert_eq!(
            c.transform.fill[Field::DeviceType as usize].as_deref(),
            Some("unknown")
        );
        let err = run_config(&["--optional-field", "colour=red"]).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let err = run_config(&["--optional-field", "locale=nowhere"]).unwrap_err();
        assert!(err.to_string().contains("two-letter"), "{err}");
    }

    #[test]
    fn output_topic_equal_to_input_is_rejected() {
        let err = run_config(&["--output-topic", "user-login"]).unwrap_err();
        assert!(err.to_string().contains("--output-topic"), "{err}");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn metrics_addr_default_explicit_and_off() {
        let c = run_config(&[]).unwrap();
        assert_eq!(c.metrics_addr, Some("127.0.0.1:9898".parse().unwrap()));
        assert!(!c.metrics_addr_explicit);
        let c = run_config(&["--metrics-addr", "0.0.0.0:9100"]).unwrap();
        assert_eq!(c.metrics_addr, Some("0.0.0.0:9100".parse().unwrap()));
        assert!(c.metrics_addr_explicit);
        assert_eq!(
            run_config(&["--metrics-addr", ""]).unwrap().metrics_addr,
            None
        );
        let err = run_config(&["--metrics-addr", "9898"]).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
    }

    #[test]
    fn secrets_are_redacted() {
        for key in [
            "sasl.password",
            "ssl.key.password",
            "ssl.keystore.password",
            "sasl.oauthbearer.client.secret",
            "ssl.key.pem",
            " SASL.PASSWORD",
        ] {
            assert!(is_secret(key), "{key}");
            assert_eq!(redact(key, "hunter2"), "<redacted>");
        }
        for key in [
            "sasl.username",
            "ssl.ca.location",
            "ssl.key.location",
            "client.id",
        ] {
            assert_eq!(redact(key, "visible"), "visible", "{key}");
        }
        let args = match parse(&[
            "run",
            "-X",
            "sasl.password=hunter2",
            "--producer-property",
            "ssl.key.password=k",
        ])
        .unwrap()
        .command
        {
            Command::Run(a) => a,
            other => panic!("{other:?}"),
        };
        let printed = print_config(
            &args,
            &Config::from_args(args.clone()).unwrap(),
            LogFormat::Text,
        );
        assert!(
            printed.contains("property = [\"sasl.password=<redacted>\"]"),
            "{printed}"
        );
        assert!(
            !printed.contains("hunter2") && !printed.contains("=k\""),
            "{printed}"
        );
    }

    #[test]
    fn config_file_sits_under_flags() {
        let path = std::env::temp_dir().join(format!("kp-unit-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "input_topic = \"file-in\"\ngroup-id = \"file-group\"\n[property]\nclient.id = \"f\"\n",
        )
        .unwrap();
        let cli = parse_cli([
            "kafka-pipeline",
            "run",
            "--config",
            path.to_str().unwrap(),
            "--group-id",
            "flag",
            "-X",
            "client.id=x",
        ])
        .unwrap();
        std::fs::remove_file(&path).ok();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(args.input_topic, "file-in");
        assert_eq!(args.group_id, "flag");
        let kv = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(
            args.kafka.properties,
            vec![kv("client.id", "f"), kv("client.id", "x")]
        );
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse(&["run", "--shutdown-timeout", "x"]).is_err());
    }
}
