//! The validated configuration of `kafka-pipeline run`.
//!
//! [`Config::from_args`] turns the parsed flags ([`RunArgs`], see [`crate::cli`]) into the
//! values the pipeline runs with, checking the rules clap cannot check flag by flag: distinct
//! and non-empty topics, known fields with valid fill values, a whole-second window, an idle
//! timeout of at least 1 s, a commit interval between 10 ms and 60 s, a resolvable metrics
//! address. [`print_config`] prints the
//! result as a config file, secrets redacted ([`redact`]).

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::cli::run::Guarantee;
use crate::cli::run::RunArgs;
use crate::cli::LogFormat;
use crate::error::PipelineError;
use crate::transform::{Field, TransformOptions};

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
    /// How long a partition may go without events before it leaves the watermark's minimum.
    pub idle_timeout: Duration,
    /// This instance's name in the insight records.
    pub instance_id: String,
    /// Whether `instance_id` was given (then it is also the static group member id).
    pub instance_id_explicit: bool,
    /// At-least-once or exactly-once.
    pub guarantee: Guarantee,
    /// How often a commit epoch closes.
    pub commit_interval: Duration,
    /// Which input headers processed records carry.
    pub input_headers: crate::transform::headers::InputHeaders,
    /// Where /metrics, /health and /ready listen; `None`: off.
    pub metrics_addr: Option<SocketAddr>,
    /// Whether the address was given (flag, environment or file): then failing to bind it is
    /// an error; the default address being taken only costs the endpoints.
    pub metrics_addr_explicit: bool,
}

/// Where the endpoints listen unless `--metrics-addr` says otherwise.
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9898";

impl Config {
    /// Resolves and cross-checks the flags of `run`.
    pub fn from_args(args: RunArgs) -> Result<Config, PipelineError> {
        let config_err = |msg: String| Err(PipelineError::Config(msg));
        check_names(&args)?;
        let transform = transform_options(&args)?;
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
        let idle_timeout = args.idle_timeout.unwrap_or(args.window);
        if idle_timeout < Duration::from_secs(1) {
            return config_err(format!(
                "--idle-timeout must be at least 1s (got {idle_timeout:?}): shorter, a partition \
                 would leave the watermark between two of its events"
            ));
        }
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
            input_topic: args.topics.input.name,
            output_topic: args.topics.output.name,
            dlq_topic: args.topics.dlq.name,
            insights_topic: args.topics.insights.name,
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
            idle_timeout,
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

/// Topic and group names: none empty, no output topic the same as the input.
fn check_names(args: &RunArgs) -> Result<(), PipelineError> {
    let topics = &args.topics;
    for (flag, name) in [
        ("--input-topic", &topics.input.name),
        ("--output-topic", &topics.output.name),
        ("--dlq-topic", &topics.dlq.name),
        ("--insights-topic", &topics.insights.name),
        ("--group-id", &args.group_id),
    ] {
        if name.trim().is_empty() {
            return Err(PipelineError::Config(format!("{flag} must not be empty")));
        }
    }
    for (flag, topic) in [
        ("--output-topic", &topics.output.name),
        ("--dlq-topic", &topics.dlq.name),
        ("--insights-topic", &topics.insights.name),
    ] {
        if *topic == topics.input.name {
            return Err(PipelineError::Config(format!(
                "{flag} is the same as --input-topic ({topic}); the pipeline would consume its own output"
            )));
        }
    }
    if args.kafka.brokers.trim().is_empty() {
        return Err(PipelineError::Config("--brokers must not be empty".into()));
    }
    Ok(())
}

/// The payload limit and the fill values of `--optional-field`, each checked against the
/// field's own rules.
fn transform_options(args: &RunArgs) -> Result<TransformOptions, PipelineError> {
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
        transform
            .set_fill(field, value)
            .map_err(|e| PipelineError::Config(format!("--optional-field {name}={value}: {e}")))?;
    }
    Ok(transform)
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

/// Whether a librdkafka property holds a secret: keys ending in `password`, `secret` or
/// `passphrase` (`sasl.password`, `ssl.key.password`, `ssl.keystore.password`,
/// `sasl.oauthbearer.client.secret`, `sasl.oauthbearer.assertion.private.key.passphrase`),
/// an inline private key (`ssl.key.pem`, `sasl.oauthbearer.assertion.private.key.pem`) and the
/// OAUTHBEARER config string.
pub fn is_secret(key: &str) -> bool {
    let key = key.trim().to_ascii_lowercase();
    key.ends_with("password")
        || key.ends_with("secret")
        || key.ends_with("passphrase")
        || key.ends_with("key.pem")
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
    line("idle-timeout", d(config.idle_timeout));
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

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;
    use clap::Parser;

    use super::*;
    use crate::cli::parse_cli;
    use crate::cli::values::parse_duration;
    use crate::cli::Cli;
    use crate::cli::Command;

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
    fn idle_timeout_defaults_to_one_window_and_is_at_least_a_second() {
        assert_eq!(
            run_config(&[]).unwrap().idle_timeout,
            Duration::from_secs(10)
        );
        let c = run_config(&["--window", "1m"]).unwrap();
        assert_eq!(c.idle_timeout, Duration::from_secs(60));
        let c = run_config(&["--idle-timeout", "1500ms"]).unwrap();
        assert_eq!(c.idle_timeout, Duration::from_millis(1500));
        let err = run_config(&["--idle-timeout", "500ms"]).unwrap_err();
        assert!(err.to_string().contains("--idle-timeout"), "{err}");
        assert_eq!(err.exit_code(), 2);
        assert!(parse(&["run", "--idle-timeout", "soon"]).is_err());
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
            "sasl.oauthbearer.config",
            "sasl.oauthbearer.assertion.private.key.passphrase",
            "sasl.oauthbearer.assertion.private.key.pem",
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
            "ssl.certificate.pem",
            "sasl.oauthbearer.client.id",
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
        assert_eq!(args.topics.input.name, "file-in");
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
