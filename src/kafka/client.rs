//! librdkafka client settings, and the one log policy every client of the program uses.
//!
//! Every client is configured by [`client_config`]: the brokers, a client id, the caller's
//! defaults, then the user's properties (`-X`, and for `run` also `--consumer-property` and
//! `--producer-property`), so the user's win. The pipeline's consumer and producer defaults are
//! [`consumer_config`] and [`producer_config`]. [`ClientLog`] is how librdkafka's log lines and
//! client errors reach the log, for the pipeline's clients and the subcommands' alike.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use crate::cli::run::Guarantee;
use crate::config::{is_secret, Config};

/// Consumer settings: manual offset store (only delivered records are stored), auto-commit of
/// what is stored, cooperative-sticky assignment, and a bounded prefetch.
pub fn consumer_config(config: &Config) -> ClientConfig {
    let mut c = client_config(&config.brokers, "kafka-pipeline", &[], &[]);
    c.set("group.id", &config.group_id)
        // The delivery contract: the consumer thread commits the positions of complete commit
        // epochs itself (at-least-once), or the producer's transactions carry them
        // (exactly-once); librdkafka never stores or commits on its own.
        .set("enable.auto.offset.store", "false")
        .set("enable.auto.commit", "false")
        // Transactional outputs of upstream producers: only committed ones (librdkafka's
        // default, stated because exactly-once depends on it).
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "cooperative-sticky")
        // Prefetch at most ~32 MB per client instead of librdkafka's 64 MB default.
        .set("queued.max.messages.kbytes", "32768")
        // Once the prefetch queue passes its threshold, librdkafka waits this long before it
        // fetches that partition again (default 1000 ms): on a backlog the queue drains in a
        // fraction of that and the pipeline then idles. 10 ms keeps fetching continuous; an
        // idle input never passes the threshold, so it costs nothing there (README, librdkafka
        // settings; scripts/bench.sh measures it).
        .set("fetch.queue.backoff.ms", "10")
        .set(
            "enable.partition.eof",
            if config.exit_at_end { "true" } else { "false" },
        )
        // Statistics feed the lag in the progress line and in the metrics.
        .set("statistics.interval.ms", statistics_interval_ms(config));
    if config.instance_id_explicit {
        // Static membership (KIP-345): a restarted instance with the same id gets its
        // partitions back at once instead of after the session timeout. Only an explicit id:
        // the default changes with every process and would leave stale members behind.
        c.set("group.instance.id", &config.instance_id);
    }
    apply(&mut c, &config.consumer_properties);
    c
}

/// Producer settings: idempotent (ordered, no duplicates from internal retries, acks=all),
/// batched, uncompressed, Java-compatible key partitioning, and sized to the output topics'
/// `max.message.bytes` (`limits`: the smallest and the largest): records up to the largest
/// (librdkafka's own default, 1,000,000, is below Kafka's 1,048,588, so a record the topic
/// would take was refused by the client), and batches no larger than the smallest (the broker
/// measures the whole batch against the topic's limit and refuses every record of a batch
/// above it; librdkafka, unlike the Java client, does not split such a batch).
pub fn producer_config(config: &Config, limits: (usize, usize)) -> ClientConfig {
    let (smallest, largest) = limits;
    let mut c = client_config(&config.brokers, "kafka-pipeline", &[], &[]);
    c.set("enable.idempotence", "true")
        .set("message.max.bytes", largest.to_string())
        .set("batch.size", smallest.min(1_000_000).to_string())
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        // No compression by default: plain kafka-python (the original pipeline's client) can
        // read only uncompressed or gzip batches without extra packages (lz4, zstandard).
        .set("compression.type", "none")
        .set("queue.buffering.max.messages", "100000")
        .set("queue.buffering.max.kbytes", "65536")
        // Same key → same partition as Java clients (murmur2), so readers in either language agree.
        .set("partitioner", "murmur2_random");
    if config.guarantee == Guarantee::ExactlyOnce {
        c.set("transactional.id", transactional_id(config))
            .set("transaction.timeout.ms", transaction_timeout_ms(config));
    }
    if config.metrics_addr.is_some() {
        // Broker connection states feed /ready.
        c.set("statistics.interval.ms", statistics_interval_ms(config));
    }
    apply(&mut c, &config.producer_properties);
    c
}

/// How long the broker lets a transaction stay open before it aborts it: 10 s (Kafka
/// Streams' value under exactly-once, librdkafka's default is 60 s), longer only when the
/// commit interval needs it (an epoch's transaction is open for about one interval plus its
/// deliveries). It is also how long a crashed instance's open transaction holds
/// `read_committed` readers of the outputs when no restart with the same `--instance-id`
/// fences it first.
pub fn transaction_timeout_ms(config: &Config) -> String {
    let needed = config.commit_interval * 3 + std::time::Duration::from_secs(5);
    needed
        .max(std::time::Duration::from_secs(10))
        .as_millis()
        .to_string()
}

/// The producer's `transactional.id`: stable for an explicit `--instance-id` (a restarted
/// instance fences its predecessor's open transaction at once), per process otherwise (the
/// group generation in each transaction's offset commit still fences a zombie, KIP-447).
pub fn transactional_id(config: &Config) -> String {
    format!("kafka-pipeline-{}-{}", config.group_id, config.instance_id)
}

/// Every second while the metrics endpoint is on (lag and readiness stay fresh; that is one
/// JSON document per client per second, parsed by the thread that polls it), else the
/// progress interval (0 turns statistics off).
fn statistics_interval_ms(config: &Config) -> String {
    if config.metrics_addr.is_some() {
        "1000".into()
    } else {
        config.progress_interval.as_millis().min(60_000).to_string()
    }
}

/// A client's configuration: `bootstrap.servers` and `client.id`, then `defaults`, then the
/// user's `properties` (`-X key=value`), each later setting winning over an earlier one.
pub fn client_config(
    brokers: &str,
    client_id: &str,
    defaults: &[(&str, &str)],
    properties: &[(String, String)],
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("client.id", client_id);
    for (k, v) in defaults {
        c.set(*k, *v);
    }
    apply(&mut c, properties);
    c
}

/// Refuses user properties (`-X`, `--consumer-property`, `--producer-property`) that would
/// silently break what the chosen guarantee relies on: the pipeline stores and commits offsets
/// itself, reads only committed upstream records, writes with `acks=all`, and (exactly-once)
/// owns the producer's idempotence and `transactional.id`. A property set to the value the
/// pipeline uses anyway is accepted; `enable.idempotence=false` is only warned about under
/// at-least-once (it stays at least once, with duplicates and reordering on retries).
pub fn check_guarantee_properties(config: &Config) -> Result<(), String> {
    let exactly_once = config.guarantee == Guarantee::ExactlyOnce;
    let refuse = |key: &str, value: &str, why: &str| {
        Err(format!(
            "{key}={value} would break the {} guarantee: {why}",
            config.guarantee.as_str()
        ))
    };
    for (key, value) in &config.consumer_properties {
        let v = value.to_ascii_lowercase();
        match key.as_str() {
            "enable.auto.commit" | "enable.auto.offset.store" if v != "false" => {
                return refuse(
                    key,
                    value,
                    "the pipeline commits only delivered records' offsets",
                )
            }
            "isolation.level" if v != "read_committed" => {
                return refuse(key, value, "aborted upstream records would be processed")
            }
            _ => {}
        }
    }
    for (key, value) in &config.producer_properties {
        let v = value.to_ascii_lowercase();
        match key.as_str() {
            "transactional.id" => {
                return refuse(
                    key,
                    value,
                    "the pipeline sets it (exactly-once) or needs none",
                )
            }
            "acks" | "request.required.acks" if v != "all" && v != "-1" => {
                return refuse(
                    key,
                    value,
                    "an acknowledged record could be lost on failover",
                )
            }
            "enable.idempotence" if v != "true" && exactly_once => {
                return refuse(key, value, "transactions need the idempotent producer")
            }
            "enable.idempotence" if v != "true" => log::warn!(
                "enable.idempotence={value}: the producer's own retries may now duplicate and \
                 reorder records (still at least once)"
            ),
            _ => {}
        }
    }
    Ok(())
}

fn apply(c: &mut ClientConfig, properties: &[(String, String)]) {
    for (k, v) in properties {
        c.set(k, v);
    }
}

/// A client-creation error without the value of a secret property ([`is_secret`]), for every
/// `create_with_context` of the program. librdkafka's configuration error names the property
/// and its value (`Client config error: <why> sasl.oauthbearer.client.secret <value>`), so an
/// OIDC property on a build without OIDC support, or a secret property librdkafka rejects,
/// would otherwise put the secret into the log.
pub fn redact_config_error(e: KafkaError) -> KafkaError {
    match e {
        KafkaError::ClientConfig(res, desc, key, value) if is_secret(&key) => {
            let desc = if value.is_empty() {
                desc
            } else {
                desc.replace(&value, "<redacted>")
            };
            KafkaError::ClientConfig(res, desc, key, "<redacted>".to_owned())
        }
        other => other,
    }
}

/// The log policy of every client: librdkafka's own log lines at debug level (critical ones
/// at error: its errors reach us through the error callback too), client errors at warn, each
/// distinct error at most once per 30 s with the count of repeats, and end-of-partition (news,
/// not an error: it only arrives where a reader asked for it) not at all.
///
/// It is itself the context of clients that need nothing more (readers, admin clients); the
/// pipeline's and the sink's contexts hold one and hand it their log and error callbacks.
#[derive(Debug)]
pub struct ClientLog {
    client: &'static str,
    last: Mutex<HashMap<String, (Instant, u64)>>,
}

const REPEAT_AFTER: Duration = Duration::from_secs(30);
/// Most distinct errors remembered (see [`ClientLog`]).
const MAX_KEYS: usize = 256;

/// `text` with every run of digits replaced by `#`.
fn mask_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_number = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('#');
            }
            in_number = true;
        } else {
            out.push(c);
            in_number = false;
        }
    }
    out
}

#[cfg(test)]
mod log_tests {
    use super::*;

    #[test]
    fn the_same_error_with_other_numbers_is_one_key_and_the_keys_stay_bounded() {
        assert_eq!(
            mask_numbers("localhost:29092/1: Disconnected (after 600123ms in state UP)"),
            mask_numbers("localhost:29092/1: Disconnected (after 7ms in state UP)")
        );
        assert_eq!(mask_numbers("a12b3"), "a#b#");
        let log = ClientLog::new("test");
        for i in 0..(3 * MAX_KEYS) {
            log.error(
                KafkaError::Global(RDKafkaErrorCode::AllBrokersDown),
                &format!("broker {i} down"),
            );
            log.error(
                KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure),
                &format!("x{}y", "z".repeat(i % 300)),
            );
        }
        assert!(log.last.lock().unwrap().len() <= MAX_KEYS);
    }
}

impl ClientLog {
    /// The policy for one client, named in its warnings (`consumer`, `dlq reader`, ...).
    pub fn new(client: &'static str) -> Self {
        ClientLog {
            client,
            last: Mutex::new(HashMap::new()),
        }
    }
}

impl ClientContext for ClientLog {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical => {
                log::error!(target: "librdkafka", "{fac} {message}")
            }
            _ => log::debug!(target: "librdkafka", "{fac} {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(error, KafkaError::PartitionEOF(_))
            || matches!(error, KafkaError::Global(RDKafkaErrorCode::PartitionEOF))
        {
            return;
        }
        let text = format!("{}: {error}: {reason}", self.client);
        // Keyed by the text with its numbers masked ("after 600123ms in state UP"), so the
        // same error with a new number is a repeat; and bounded, so a process that runs for
        // months keeps only the errors of the last REPEAT_AFTER (and at most MAX_KEYS).
        let key = mask_numbers(&text);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if last.len() >= MAX_KEYS {
            last.retain(|_, (at, _)| now.duration_since(*at) < REPEAT_AFTER);
            if last.len() >= MAX_KEYS {
                last.clear();
            }
        }
        match last.get_mut(&key) {
            Some((at, suppressed)) if now.duration_since(*at) < REPEAT_AFTER => *suppressed += 1,
            Some((at, suppressed)) => {
                log::warn!("{text} (repeated {} times)", *suppressed + 1);
                *at = now;
                *suppressed = 0;
            }
            None => {
                log::warn!("{text}");
                last.insert(key, (now, 0));
            }
        }
    }
}

impl ConsumerContext for ClientLog {}

#[cfg(test)]
mod tests {
    use rdkafka::types::RDKafkaConfRes;

    use super::*;

    /// The error names the secret property but not its value; other properties' values stay,
    /// they say what was wrong.
    #[test]
    fn config_errors_do_not_show_secret_values() {
        // What librdkafka says for an OIDC property in a build without libcurl (this one).
        let oidc = KafkaError::ClientConfig(
            RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
            "not supported in this build (value hunter2)".into(),
            "sasl.oauthbearer.client.secret".into(),
            "hunter2".into(),
        );
        let shown = redact_config_error(oidc).to_string();
        assert!(
            shown.contains("sasl.oauthbearer.client.secret") && !shown.contains("hunter2"),
            "{shown}"
        );
        let c = client_config("localhost:9", "test", &[("acks", "several")], &[]);
        let error = c
            .create_native_config()
            .err()
            .expect("acks=several is invalid");
        let shown = redact_config_error(error).to_string();
        assert!(shown.contains("several"), "{shown}");
    }
}
