//! Operations: the metrics endpoint against a real run, readiness across a broker outage (on a
//! private broker), JSON logs, the config file's precedence and redaction, the `topics`
//! subcommand, TLS.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use kafka_pipeline::testing::Login;

use crate::common::*;

/// Samples of a Prometheus text exposition: `name{labels}` → value.
fn scrape(addr: &str) -> BTreeMap<String, f64> {
    let (status, body) = get(addr, "/metrics").expect("scrape");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').expect("sample line");
            (name.to_owned(), value.parse().expect("sample value"))
        })
        .collect()
}

fn metric(m: &BTreeMap<String, f64>, name: &str) -> f64 {
    *m.get(name)
        .unwrap_or_else(|| panic!("no sample {name} in {m:#?}"))
}

fn event(i: usize, device_type: bool) -> Vec<u8> {
    Login::default()
        .user_id(&format!("u-{i}"))
        .ip(&format!("10.0.0.{}", i % 256))
        .device_id(&format!("d-{i}"))
        .timestamp(1_720_589_697 + i as u64)
        .maybe("device_type", device_type.then_some("android"))
        .to_bytes()
}

/// A run over known traffic: the scraped counters match what was sent (processed +
/// dead-lettered = received, per code, delivered per topic, latency samples per offset), the
/// endpoints answer, and every log line (with `--log-format json`) is a JSON object.
#[test]
fn metrics_match_a_run_and_json_logs_parse() {
    let Some(brokers) = require_broker() else {
        return;
    };
    let input = unique("ops-metrics");
    let group = unique("ops-group");
    create_topic(&brokers, &input, 2, &[]);
    let mut records = Vec::new();
    let mut push = |value: Option<Vec<u8>>, i: usize| {
        let mut r = Rec::new(Some(format!("k{i}").as_bytes()), value.as_deref());
        r.partition = (i % 2) as i32;
        records.push(r);
    };
    let (valid, invalid_json, missing, tombstones, not_object) = (150, 20, 10, 5, 7);
    let mut i = 0;
    for _ in 0..valid {
        push(Some(event(i, true)), i);
        i += 1;
    }
    for _ in 0..invalid_json {
        push(Some(b"{not json".to_vec()), i);
        i += 1;
    }
    for _ in 0..missing {
        push(Some(event(i, false)), i);
        i += 1;
    }
    for _ in 0..tombstones {
        push(None, i);
        i += 1;
    }
    for _ in 0..not_object {
        push(Some(b"[1, 2]".to_vec()), i);
        i += 1;
    }
    let total = i;
    produce(&brokers, &input, &records);

    let mut run = Running::pipeline(
        &brokers,
        &input,
        &group,
        &[
            "--metrics-addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--workers",
            "3",
            "--window",
            "1s",
            "--allowed-lateness",
            "1s",
        ],
    );
    let addr = metrics_addr(&run);
    let out = format!("{input}-out");
    let dlq = format!("{input}-dlq");
    let insights = format!("{input}-insights");
    let end = end_offsets(&brokers, &input, 2);
    let settled = wait_until(Duration::from_secs(60), || {
        let m = scrape(&addr);
        m.get("kafka_pipeline_in_flight_records") == Some(&0.0)
            && m.get("kafka_pipeline_events_received_total") == Some(&(total as f64))
            && m.get("kafka_pipeline_consumer_lag_sum") == Some(&0.0)
            && committed(&brokers, &group, &input, 2) == end
    });
    let m = scrape(&addr);
    assert!(settled, "{m:#?}\nlog:\n{}", run.log_text());

    let received = metric(&m, "kafka_pipeline_events_received_total");
    let processed = metric(&m, "kafka_pipeline_events_processed_total");
    let code = |c: &str| {
        metric(
            &m,
            &format!("kafka_pipeline_events_dead_lettered_total{{code=\"{c}\"}}"),
        )
    };
    let dead: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("kafka_pipeline_events_dead_lettered_total{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(received, total as f64);
    assert_eq!(processed, valid as f64);
    assert_eq!(
        processed + dead,
        received,
        "processed + dead-lettered = received"
    );
    assert_eq!(code("invalid_json"), invalid_json as f64);
    assert_eq!(code("missing_field"), missing as f64);
    assert_eq!(code("tombstone"), tombstones as f64);
    assert_eq!(code("not_an_object"), not_object as f64);
    assert_eq!(code("invalid_type"), 0.0);
    let delivered = |t: &str| {
        metric(
            &m,
            &format!("kafka_pipeline_records_delivered_total{{topic=\"{t}\"}}"),
        )
    };
    assert_eq!(delivered(&out), valid as f64);
    assert_eq!(delivered(&dlq), dead);
    assert!(delivered(&insights) >= 1.0, "{m:#?}");
    let windows = metric(&m, "kafka_pipeline_insights_windows_published_total");
    assert_eq!(
        delivered(&insights),
        windows,
        "every published window delivered"
    );
    assert_eq!(
        metric(
            &m,
            &format!("kafka_pipeline_delivery_failures_total{{topic=\"{out}\"}}")
        ),
        0.0
    );
    assert_eq!(metric(&m, "kafka_pipeline_workers"), 3.0);
    assert!(metric(&m, "kafka_pipeline_commits_total") >= 1.0);
    assert!(metric(&m, "kafka_pipeline_last_commit_timestamp_seconds") > 1.7e9);
    assert!(metric(&m, "kafka_pipeline_rebalances_total{kind=\"assign\"}") >= 1.0);
    assert_eq!(metric(&m, "kafka_pipeline_consumer_paused"), 0.0);
    for p in 0..2 {
        let lag = format!("kafka_pipeline_consumer_lag{{topic=\"{input}\",partition=\"{p}\"}}");
        assert_eq!(metric(&m, &lag), 0.0);
    }
    // One observation per input batch (at most 256 records each, one partition or more).
    let count = metric(&m, "kafka_pipeline_processing_latency_seconds_count");
    let batches_at_least =
        (total as f64 / kafka_pipeline::testing::internals::BATCH_RECORDS as f64).ceil();
    assert!(
        count >= batches_at_least && count <= total as f64,
        "{count} batches for {total} records: {m:#?}"
    );
    assert_eq!(
        metric(
            &m,
            "kafka_pipeline_processing_latency_seconds_bucket{le=\"+Inf\"}"
        ),
        count
    );
    assert!(m
        .keys()
        .any(|k| k.starts_with("kafka_pipeline_build_info{version=\"")));
    assert_eq!(metric(&m, "kafka_pipeline_ready"), 1.0);
    assert_eq!(get(&addr, "/health"), Some((200, "ok\n".into())));
    assert_eq!(get(&addr, "/ready"), Some((200, "ready\n".into())));
    assert_eq!(get(&addr, "/nope").map(|r| r.0), Some(404));

    run.stop("pipeline");
    let log = run.log_text();
    let mut lines = 0;
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        for key in ["ts", "level", "target", "message"] {
            assert!(v[key].is_string(), "{key} in {line}");
        }
        assert!(v["fields"].is_object(), "{line}");
        lines += 1;
    }
    assert!(lines >= 5, "{log}");
    // The progress line carries its counts as fields.
    let progress = log
        .lines()
        .rev()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["fields"]["received"] == total as u64)
        .unwrap_or_else(|| panic!("no progress line with received={total}:\n{log}"));
    assert_eq!(progress["fields"]["valid"], valid as u64, "{progress}");
    assert_eq!(
        progress["fields"]["dead_lettered"],
        (total - valid) as u64,
        "{progress}"
    );
    assert_eq!(progress["fields"]["in_flight"], 0, "{progress}");
    assert!(log.contains("\"message\":\"subscribed to "), "{log}");
    // No payload contents in the logs (the events carry these ids and IPs).
    for needle in ["u-1", "d-1", "10.0.0.", "not json"] {
        assert!(!log.contains(needle), "{needle:?} in the log:\n{log}");
    }
}

fn kafka_sh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka.sh")
}

/// Ports nothing listens on, all different: bound on 127.0.0.1:0 together, then released for
/// the broker to take.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// A broker of this test's own: `scripts/kafka.sh` on free ports (listener, controller and any
/// extra listeners) with a fresh data directory, so it can be stopped without touching the
/// shared one. kafka.sh refuses a port some other process took meanwhile instead of using
/// that process as the broker. Stopped and its data removed when dropped.
struct PrivateBroker {
    env: Vec<(String, String)>,
    data: PathBuf,
}

impl PrivateBroker {
    /// Starts it; each of `extra_ports` (`KAFKA_SSL_PORT`, `KAFKA_SASL_PORT`) gets a free port.
    fn start(extra_ports: &[&str]) -> PrivateBroker {
        let names = [&["KAFKA_PORT", "KAFKA_CONTROLLER_PORT"], extra_ports].concat();
        let data = std::env::temp_dir().join(unique("private-broker"));
        let mut env: Vec<(String, String)> = names
            .iter()
            .zip(free_ports(names.len()))
            .map(|(name, port)| (name.to_string(), port.to_string()))
            .collect();
        env.push(("KAFKA_BROKER_DATA".into(), data.display().to_string()));
        let broker = PrivateBroker { env, data };
        broker.kafka_sh("start");
        broker
    }

    /// The port given to `name` (`KAFKA_PORT`, `KAFKA_SSL_PORT`, ...).
    fn port(&self, name: &str) -> &str {
        let (_, port) = self.env.iter().find(|(k, _)| k == name).expect(name);
        port
    }

    fn command(&self, action: &str) -> Command {
        let mut cmd = Command::new(kafka_sh());
        cmd.arg(action)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("KAFKA_HEAP_OPTS", "-Xms256m -Xmx512m");
        cmd
    }

    fn kafka_sh(&self, action: &str) {
        let status = self.command(action).status().expect("scripts/kafka.sh");
        assert!(status.success(), "kafka.sh {action} with {:?}", self.env);
    }

    fn brokers(&self) -> String {
        format!("localhost:{}", self.port("KAFKA_PORT"))
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = self.command("stop").status();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// `scripts/kafka.sh start` on a port that a process it did not start listens on (here: this
/// test) fails and says so; it used to take that process as the broker, and a private-broker
/// test then ran against whatever it was. A taken controller port fails before Java starts.
/// Needs no broker.
#[test]
fn a_private_broker_refuses_ports_it_did_not_take() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = held.local_addr().unwrap().port().to_string();
    let free = free_ports(1)[0].to_string();
    let data = std::env::temp_dir().join(unique("private-broker"));
    for (listener, controller) in [(&taken, &free), (&free, &taken)] {
        let out = Command::new(kafka_sh())
            .arg("start")
            .env("KAFKA_PORT", listener)
            .env("KAFKA_CONTROLLER_PORT", controller)
            .env("KAFKA_BROKER_DATA", &data)
            .output()
            .expect("scripts/kafka.sh");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        let says = if listener == &taken {
            format!("localhost:{taken} is taken by a process this script did not start")
        } else {
            format!("port {taken} (controller or extra listener) is taken by another process")
        };
        assert!(stderr.contains(&says), "{stderr}");
        assert!(!stderr.contains("starting Apache Kafka"), "{stderr}");
    }
    let _ = std::fs::remove_dir_all(&data);
}

/// `/ready` answers 503 with a reason while the broker is down and 200 again once it is back;
/// `/health` stays 200 throughout. On a private broker, never the shared one.
#[test]
fn ready_follows_the_broker() {
    if require_broker().is_none() {
        return;
    }
    let broker = PrivateBroker::start(&[]);
    let brokers = broker.brokers();
    let input = unique("ops-ready");
    create_topic(&brokers, &input, 1, &[]);
    produce(
        &brokers,
        &input,
        &[Rec::new(Some(b"k"), Some(&event(1, true)))],
    );
    let mut run = Running::pipeline(
        &brokers,
        &input,
        &unique("ops-ready-group"),
        &["--metrics-addr", "127.0.0.1:0", "--workers", "1"],
    );
    let addr = metrics_addr(&run);
    let status = |path: &str| get(&addr, path);
    assert!(
        wait_until(Duration::from_secs(60), || status("/ready")
            .is_some_and(|r| r.0 == 200)),
        "never ready: {:?}\n{}",
        status("/ready"),
        run.log_text()
    );

    broker.kafka_sh("stop");
    let stopped = std::time::Instant::now();
    assert!(
        wait_until(Duration::from_secs(60), || status("/ready")
            .is_some_and(|r| r.0 == 503)),
        "still ready with the broker stopped: {:?}\n{}",
        status("/ready"),
        run.log_text()
    );
    let (code, reason) = status("/ready").unwrap();
    assert_eq!(code, 503);
    assert!(reason.contains("not connected"), "{reason}");
    eprintln!(
        "/ready 503 {:?} after the broker stopped",
        stopped.elapsed()
    );
    assert_eq!(status("/health").map(|r| r.0), Some(200));
    assert_eq!(
        scrape(&addr).get("kafka_pipeline_ready"),
        Some(&0.0),
        "ready gauge"
    );

    broker.kafka_sh("start");
    let started = std::time::Instant::now();
    assert!(
        wait_until(Duration::from_secs(90), || status("/ready")
            .is_some_and(|r| r.0 == 200)),
        "not ready after the broker came back: {:?}\n{}",
        status("/ready"),
        run.log_text()
    );
    eprintln!(
        "/ready 200 {:?} after the broker answered again",
        started.elapsed()
    );
    run.stop("pipeline");
}

/// Runs the binary with `args` and extra environment, returning its output.
fn pipeline_output(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = pipeline();
    for (k, _) in std::env::vars() {
        if k.starts_with("KAFKA_PIPELINE_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run binary")
}

fn config_file(text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("{}.toml", unique("ops-config")));
    std::fs::write(&path, text).unwrap();
    path
}

/// flag > environment > file > default, for single values and for the `-X` lists (file entries
/// first, then the environment's or the command line's), and secrets redacted in the output.
#[test]
fn config_file_precedence_and_redaction() {
    let file = config_file(
        r#"
input-topic = "file-in"
output-topic = "file-out"
group-id = "file-group"
workers = 3
window = "1m"
exit-at-end = true
log-format = "json"
optional-field = ["device_type=unknown"]

[property]
client.id = "from-file"
sasl.password = "hunter2"
security.protocol = "plaintext"

[consumer-property]
"fetch.min.bytes" = 10
"#,
    );
    let out = pipeline_output(
        &[
            "run",
            "--config",
            file.to_str().unwrap(),
            "--print-config",
            "--group-id",
            "flag-group",
            "-X",
            "client.id=from-flag",
        ],
        &[
            ("KAFKA_PIPELINE_OUTPUT_TOPIC", "env-out"),
            ("KAFKA_PIPELINE_GROUP_ID", "env-group"),
            (
                "KAFKA_PIPELINE_PRODUCER_PROPERTIES",
                "ssl.key.password=s3cret;linger.ms=7",
            ),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: toml::Table = text.parse().expect("--print-config prints TOML");
    let s = |k: &str| printed[k].as_str().unwrap().to_owned();
    assert_eq!(s("input-topic"), "file-in", "file over default");
    assert_eq!(s("output-topic"), "env-out", "environment over file");
    assert_eq!(
        s("group-id"),
        "flag-group",
        "flag over environment and file"
    );
    assert_eq!(s("dlq-topic"), "user-login-dlq", "default");
    assert_eq!(printed["workers"].as_integer(), Some(3));
    assert_eq!(s("window"), "60s");
    assert_eq!(printed["exit-at-end"].as_bool(), Some(true));
    assert_eq!(s("log-format"), "json");
    let list = |k: &str| -> Vec<String> {
        printed[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(list("optional-field"), ["device_type=unknown"]);
    assert_eq!(
        list("property"),
        [
            "client.id=from-file",
            "sasl.password=<redacted>",
            "security.protocol=plaintext",
            "client.id=from-flag"
        ]
    );
    assert_eq!(list("consumer-property"), ["fetch.min.bytes=10"]);
    assert_eq!(
        list("producer-property"),
        ["ssl.key.password=<redacted>", "linger.ms=7"]
    );
    assert!(
        !text.contains("hunter2") && !text.contains("s3cret"),
        "{text}"
    );

    // The printed file reads back to the same configuration.
    let again = config_file(&text);
    let out = pipeline_output(
        &["run", "--config", again.to_str().unwrap(), "--print-config"],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reprinted = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        reprinted.replace("<redacted>", ""),
        text.replace("<redacted>", "")
    );

    // Secrets in the environment do not show in --help.
    let out = pipeline_output(
        &["run", "--help"],
        &[("KAFKA_PIPELINE_PROPERTIES", "sasl.password=hunter2")],
    );
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--metrics-addr") && help.contains("--config"),
        "{help}"
    );
    assert!(!help.contains("hunter2"), "{help}");
    std::fs::remove_file(file).ok();
    std::fs::remove_file(again).ok();
}

/// A bad config file is a configuration error: exit 2, naming the file and the key.
#[test]
fn bad_config_file_exits_2() {
    for (text, expect) in [
        ("input-topc = \"x\"\n", "input-topc: unknown key"),
        ("workers = 0\n", "--workers"),
        ("exit-at-end = \"yes\"\n", "expected true or false"),
        ("property = 5\n", "expected a table"),
        ("not toml at all", "TOML"),
    ] {
        let file = config_file(text);
        let out = pipeline_output(&["run", "--config", file.to_str().unwrap()], &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert!(err.contains(file.to_str().unwrap()), "{err}");
        assert!(err.contains(expect), "{text}: expected {expect:?} in {err}");
        std::fs::remove_file(file).ok();
    }
    let out = pipeline_output(&["run", "--config", "/nonexistent/kp.toml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let out = pipeline_output(
        &["run", "--metrics-addr", "nonsense", "--print-config"],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `topics` creates the four topics, then finds them as requested; a different partition count
/// or replication factor, or a missing topic under `--check`, exits 1; no broker exits 3.
#[test]
fn topics_subcommand_creates_and_checks() {
    let Some(brokers) = require_broker() else {
        return;
    };
    let base = unique("ops-topics");
    let names = [
        format!("{base}-in"),
        format!("{base}-out"),
        format!("{base}-dlq"),
        format!("{base}-insights"),
    ];
    let topics = |extra: &[&str]| {
        let mut args = vec![
            "topics",
            "--brokers",
            &brokers,
            "--input-topic",
            &names[0],
            "--output-topic",
            &names[1],
            "--dlq-topic",
            &names[2],
            "--insights-topic",
            &names[3],
        ];
        args.extend_from_slice(extra);
        let out = pipeline_output(&args, &[]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.code(), text)
    };
    let (code, text) = topics(&["--partitions", "2", "--check"]);
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(text.matches("MISSING").count(), 4, "{text}");

    let (code, text) = topics(&["--partitions", "2"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(text.matches("created").count(), 4, "{text}");
    assert_eq!(end_offsets(&brokers, &names[0], 2).len(), 2);

    let (code, text) = topics(&["--partitions", "2", "--replication-factor", "1"]);
    assert_eq!((code, text.matches(" ok").count()), (Some(0), 4), "{text}");

    let (code, text) = topics(&["--partitions", "3", "--check"]);
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(
        text.matches("MISMATCH: 2 partitions, replication factor 1")
            .count(),
        4,
        "{text}"
    );
    let (code, text) = topics(&["--partitions", "2", "--replication-factor", "3"]);
    assert_eq!(code, Some(1), "an existing topic is never changed: {text}");

    // One config file serves `topics` and `run`: each skips the keys only the other knows.
    let file = config_file(&format!(
        "brokers = \"{brokers}\"\ninput-topic = \"{}\"\noutput-topic = \"{}\"\n\
         dlq-topic = \"{}\"\ninsights-topic = \"{}\"\npartitions = 2\nworkers = 2\n\
         [consumer-property]\nfetch.min.bytes = 1\n",
        names[0], names[1], names[2], names[3]
    ));
    let out = pipeline_output(
        &["topics", "--config", file.to_str().unwrap(), "--check"],
        &[],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.matches(" ok").count(), 4, "{text}");
    let out = pipeline_output(
        &["run", "--config", file.to_str().unwrap(), "--print-config"],
        &[],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("input-topic = \"{}\"", names[0])),
        "{text}"
    );
    std::fs::remove_file(file).ok();

    let out = pipeline_output(&["topics", "--brokers", "127.0.0.1:1", "--check"], &[]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for t in &names {
        kafka_pipeline::kafka::admin::delete_topic(&brokers, &[], t).ok();
    }
}

/// The pipeline over TLS, and over SASL_SSL with SCRAM-SHA-256 and with PLAIN, against a
/// private broker with an SSL and a SASL_SSL listener and a self-signed CA from
/// scripts/tls-certs.sh; without the CA it cannot connect and exits 3.
#[test]
fn pipeline_runs_over_tls_and_sasl() {
    if require_broker().is_none() {
        return;
    }
    let broker = PrivateBroker::start(&["KAFKA_SSL_PORT", "KAFKA_SASL_PORT"]);
    let plain = broker.brokers();
    let (ssl_port, sasl_port) = (
        broker.port("KAFKA_SSL_PORT"),
        broker.port("KAFKA_SASL_PORT"),
    );
    let cache = std::env::var("KAFKA_PIPELINE_CACHE")
        .unwrap_or_else(|_| format!("{}/.cache/kafka-pipeline", std::env::var("HOME").unwrap()));
    let ca = format!("ssl.ca.location={cache}/tls/ca.pem");
    let tls: &[&str] = &["-X", "security.protocol=ssl", "-X", &ca];
    let scram: &[&str] = &[
        "-X",
        "security.protocol=sasl_ssl",
        "-X",
        &ca,
        "-X",
        "sasl.mechanism=SCRAM-SHA-256",
        "-X",
        "sasl.username=pipeline",
        "-X",
        "sasl.password=pipeline-secret",
    ];
    let plain_sasl: &[&str] = &[
        "-X",
        "security.protocol=sasl_ssl",
        "-X",
        &ca,
        "-X",
        "sasl.mechanism=PLAIN",
        "-X",
        "sasl.username=pipeline",
        "-X",
        "sasl.password=pipeline-secret",
    ];
    for (name, port, security) in [
        ("tls", ssl_port, tls),
        ("scram", sasl_port, scram),
        ("plain", sasl_port, plain_sasl),
    ] {
        let input = unique(&format!("ops-{name}"));
        create_topic(&plain, &input, 1, &[]);
        let records: Vec<Rec> = (0..20)
            .map(|i| Rec::new(Some(b"k"), Some(&event(i, i % 4 != 0))))
            .collect();
        produce(&plain, &input, &records);
        let mut args = vec!["--metrics-addr", "", "--exit-at-end", "--window", "1s"];
        args.extend_from_slice(security);
        let secure = format!("localhost:{port}");
        let mut run = Running::pipeline(&secure, &input, &unique("ops-tls-group"), &args);
        let status = run.wait(Duration::from_secs(90));
        let log = run.log_text();
        assert!(status.success(), "{name}: {status:?}\n{log}");
        assert!(!log.contains("pipeline-secret"), "{log}");
        let out = read_all(&plain, &format!("{input}-out"), 15, Duration::from_secs(30));
        let dlq = read_all(&plain, &format!("{input}-dlq"), 5, Duration::from_secs(30));
        assert_eq!((out.len(), dlq.len()), (15, 5), "{name}:\n{log}");
    }

    // Without the CA the broker's certificate is not trusted: no connection, exit 3.
    let input = unique("ops-tls-noca");
    create_topic(&plain, &input, 1, &[]);
    let mut run = Running::pipeline(
        &format!("localhost:{ssl_port}"),
        &input,
        &unique("ops-tls-group"),
        &["--metrics-addr", "", "-X", "security.protocol=ssl"],
    );
    let status = run.wait(Duration::from_secs(60));
    assert_eq!(status.code(), Some(3), "{}", run.log_text());
}
