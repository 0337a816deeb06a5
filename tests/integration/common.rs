//! Helpers for integration tests against the real broker started by `scripts/kafka.sh`.
//!
//! Each test makes its own topics and group (random names). Without a broker a test skips with
//! a loud message on a laptop, and fails when `CI=true`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kafka_pipeline::kafka::client::client_config;
use kafka_pipeline::testing::Login;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

/// The client id of the tests' own clients.
pub const CLIENT_ID: &str = "kafka-pipeline-test";

/// The broker the tests should use (`KAFKA_PIPELINE_TEST_BROKERS`, default `localhost:29092`)
/// if it accepts connections. Otherwise a test skips with a loud message on a laptop, and fails
/// when `CI=true` (a CI run must never skip its broker tests).
pub fn require_broker() -> Option<String> {
    let brokers =
        std::env::var("KAFKA_PIPELINE_TEST_BROKERS").unwrap_or_else(|_| "localhost:29092".into());
    let reachable = brokers.split(',').any(|b| {
        b.to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok())
    });
    if reachable {
        return Some(brokers);
    }
    let msg = format!(
        "no Kafka broker at {brokers}: start one with `scripts/kafka.sh start` \
         (or set KAFKA_PIPELINE_TEST_BROKERS)"
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("\n!!!!!!!! SKIPPING broker test: {msg} !!!!!!!!\n");
    None
}

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates a topic and waits until it is usable.
pub fn create_topic(brokers: &str, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    kafka_pipeline::kafka::admin::create_topic_if_missing(
        brokers,
        &[],
        topic,
        partitions,
        1,
        configs,
    )
    .expect("create topic");
}

/// One record to produce or as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub partition: i32,
    pub offset: i64,
}

impl Rec {
    pub fn new(key: Option<&[u8]>, value: Option<&[u8]>) -> Self {
        Rec {
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: vec![],
            partition: -1,
            offset: -1,
        }
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_ref())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(self.value.as_deref().expect("value")).expect("JSON value")
    }
}

/// A login event of `user` at `time` from a public address, without `device_type` when it is
/// `None`.
pub fn login(user: &str, time: u64, device_type: Option<&str>, locale: &str) -> Vec<u8> {
    Login::default()
        .user_id(user)
        .ip("25.67.1.2")
        .locale(locale)
        .device_id(&format!("d-{user}"))
        .timestamp(time)
        .maybe("device_type", device_type)
        .to_bytes()
}

/// The `run` flags of a test whose output topic is missing for a while, the outage a test can
/// stage on the single test broker with a retriable error: the producer may not create it
/// (the broker would), and librdkafka reports an undeliverable record after one second (its
/// default, 300 s, would hide the outage from a test). A record refused for good (one too
/// large for the topic) is dead-lettered instead, so it cannot stand in for an outage; and
/// `min.insync.replicas` above the replication factor no longer refuses writes (Kafka 4 caps it
/// at the replication factor, KIP-966).
pub const OUTPUT_MISSING: &[&str] = &[
    "--producer-property",
    "allow.auto.create.topics=false",
    "--producer-property",
    "message.timeout.ms=1000",
];

/// Produces records (to `partition` when given, else by key) and waits for every delivery.
pub fn produce(brokers: &str, topic: &str, records: &[Rec]) {
    let defaults = [("linger.ms", "5"), ("message.max.bytes", "10000000")];
    let producer: BaseProducer = client_config(brokers, CLIENT_ID, &defaults, &[])
        .create()
        .expect("producer");
    for r in records {
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
        if let Some(k) = &r.key {
            record = record.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            record = record.payload(v.as_slice());
        }
        if r.partition >= 0 {
            record = record.partition(r.partition);
        }
        if !r.headers.is_empty() {
            let mut h = OwnedHeaders::new();
            for (k, v) in &r.headers {
                h = h.insert(Header {
                    key: k,
                    value: v.as_deref(),
                });
            }
            record = record.headers(h);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, back)) => {
                    assert!(format!("{e}").contains("Queue full"), "produce: {e}");
                    record = back;
                    producer.poll(Duration::from_millis(50));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
    assert_eq!(producer.in_flight_count(), 0);
}

/// Reads `topic` from the beginning until `expect` records arrived (or `timeout`), then a
/// little longer to catch extras.
pub fn read_all(brokers: &str, topic: &str, expect: usize, timeout: Duration) -> Vec<Rec> {
    let group = unique("reader");
    let defaults = [
        ("group.id", group.as_str()),
        ("enable.auto.commit", "false"),
        ("fetch.message.max.bytes", "10000000"),
    ];
    let consumer: BaseConsumer = client_config(brokers, CLIENT_ID, &defaults, &[])
        .create()
        .expect("consumer");
    let deadline = Instant::now() + timeout;
    let partitions = loop {
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .expect("metadata");
        let n = md.topics().first().map_or(0, |t| t.partitions().len());
        if n > 0 || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut extra_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if now > deadline || extra_until.is_some_and(|t| now > t) {
            break;
        }
        if out.len() >= expect && extra_until.is_none() {
            extra_until = Some(now + Duration::from_millis(1500));
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push(Rec {
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default(),
                partition: m.partition(),
                offset: m.offset(),
            }),
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    out
}

/// Committed offsets of `group` on `topic`, by partition (absent = nothing committed).
pub fn committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = client_config(brokers, CLIENT_ID, &[("group.id", group)], &[])
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let tpl = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    tpl.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// High watermarks of `topic`, by partition.
pub fn end_offsets(brokers: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = client_config(brokers, CLIENT_ID, &[], &[])
        .create()
        .expect("consumer");
    (0..partitions)
        .map(|p| {
            (
                p,
                consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(10))
                    .expect("watermarks")
                    .1,
            )
        })
        .collect()
}

/// The pipeline binary under test.
pub fn pipeline() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kafka-pipeline"));
    cmd.env("RUST_LOG", "info,librdkafka=warn")
        .stdin(Stdio::null());
    cmd
}

/// A running pipeline process; killed if the test panics.
pub struct Running {
    pub child: Child,
    pub log: PathBuf,
}

impl Running {
    /// Starts `kafka-pipeline run` for a test: [`run_args`] plus `extra`.
    pub fn pipeline(brokers: &str, input: &str, group: &str, extra: &[&str]) -> Running {
        Running::start(&run_args(brokers, input, group, extra))
    }

    /// Sends SIGTERM and asserts a clean exit within 40 s.
    pub fn stop(&mut self, who: &str) {
        self.signal("TERM");
        let status = self.wait(Duration::from_secs(40));
        assert!(
            status.success(),
            "{who} exited with {status:?}; log:\n{}",
            self.log_text()
        );
    }

    /// Starts `kafka-pipeline run` with the given arguments, logging to a temp file.
    pub fn start<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Running {
        Running::start_with_env(args, &[])
    }

    /// [`Running::start`] with extra environment variables.
    pub fn start_with_env<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &str)]) -> Running {
        let log = std::env::temp_dir().join(format!("{}.log", unique("pipeline")));
        let file = std::fs::File::create(&log).unwrap();
        let child = pipeline()
            .arg("run")
            .args(args)
            .envs(env.iter().copied())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start pipeline");
        Running { child, log }
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "pipeline did not exit within {timeout:?}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `GET path` on `addr`: status and body.
pub fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut c = TcpStream::connect(addr).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(c, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    c.read_to_string(&mut text).ok()?;
    let status = text.get(9..12)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// The address the pipeline logged for its endpoints (the tests listen on port 0).
pub fn metrics_addr(run: &Running) -> String {
    let mut found = None;
    wait_until(Duration::from_secs(30), || {
        let log = run.log_text();
        found = log
            .split("serving http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next().map(str::to_owned));
        found.is_some()
    });
    found.unwrap_or_else(|| panic!("no metrics address in the log:\n{}", run.log_text()))
}

/// The arguments of `kafka-pipeline run` for a test's own topics (`{input}-out`, `{input}-dlq`,
/// `{input}-insights`) and group, with a progress line every second, followed by `extra`.
pub fn run_args(brokers: &str, input: &str, group: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--brokers",
        brokers,
        "--input-topic",
        input,
        "--output-topic",
        &format!("{input}-out"),
        "--dlq-topic",
        &format!("{input}-dlq"),
        "--insights-topic",
        &format!("{input}-insights"),
        "--group-id",
        group,
        "--progress-interval",
        "1s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Waits until `group` has committed the end offset of every partition of `topic`.
pub fn wait_committed_to_end(
    brokers: &str,
    group: &str,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> bool {
    let end = end_offsets(brokers, topic, partitions);
    wait_until(timeout, || {
        committed(brokers, group, topic, partitions) == end
    })
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    f()
}
