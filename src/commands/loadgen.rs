//! Sending generated records to Kafka: one `BaseProducer`, paced to `--rate`, with delivery
//! accounting, a progress line every few seconds and a final [`Summary`].
//!
//! Pacing follows a schedule, not a sleep per message: record `i` is due `i / rate` seconds
//! after the start, so a slow moment (a full queue, a broker hiccup) is made up by sending the
//! records that fell due at once, and the achieved rate does not drift below the target. The time
//! until the next record is spent in `poll`, which serves delivery reports meanwhile.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use log::{info, warn};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use crate::cli::loadgen::LoadgenArgs;
use crate::kafka::admin;
use crate::kafka::client::{client_config, redact_config_error, ClientLog};
use crate::loadgen::{
    Expect, GenOptions, GenRecord, Generator, Profile, EXPECT_HEADER, SEQ_HEADER,
};

/// Interval of the progress line.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

/// Producer settings applied before the `-X` properties (which may override them).
const PRODUCER_DEFAULTS: [(&str, &str); 5] = [
    ("linger.ms", "5"),
    // The largest batch librdkafka builds; it must stay under the broker's 1 MiB message limit.
    ("batch.size", "1000000"),
    // Uncompressed, like the original Python generator: plain kafka-python (the original
    // pipeline's client) cannot read lz4 batches without an extra package.
    ("compression.type", "none"),
    ("acks", "all"),
    ("enable.idempotence", "true"),
];

/// Counts delivery reports; client errors go through the program's log policy
/// ([`ClientLog`]). Runs on the thread that polls the producer.
struct Deliveries {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    log: ClientLog,
}

impl Default for Deliveries {
    fn default() -> Self {
        Deliveries {
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            first_error: Mutex::new(None),
            log: ClientLog::new("loadgen producer"),
        }
    }
}

impl Deliveries {
    fn fail(&self, error: &KafkaError) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            warn!("a record could not be delivered: {error} (further failures are only counted)");
            *first = Some(error.to_string());
        }
    }
}

impl ClientContext for Deliveries {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.log.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log.error(error, reason);
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, _)) => self.fail(error),
        }
    }
}

/// What a load generator run did.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Target topic.
    pub topic: String,
    /// Profile used.
    pub profile: Profile,
    /// Records handed to the producer.
    pub produced: u64,
    /// Records the broker acknowledged.
    pub delivered: u64,
    /// Records that failed (locally or at the broker).
    pub failed: u64,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// From the first send to the end of the final flush.
    pub elapsed: Duration,
    /// Records produced per expectation, indexed by [`Expect::index`].
    pub by_expect: [u64; Expect::COUNT],
}

impl Summary {
    /// Records produced per second, flush included.
    pub fn rate(&self) -> f64 {
        self.produced as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Records produced with this expectation.
    pub fn count(&self, expect: Expect) -> u64 {
        self.by_expect[expect.index()]
    }

    /// An error if any record was not delivered.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.failed > 0 {
            bail!(
                "{} of {} records were not delivered to {}; first error: {}",
                self.failed,
                self.produced,
                self.topic,
                self.first_error.as_deref().unwrap_or("unknown")
            );
        }
        Ok(())
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let valid = self.count(Expect::Valid);
        write!(
            f,
            "loadgen: {} records ({:?} profile) to {} in {:.2} s, {:.0} records/s: {} delivered, {} failed; \
             {} valid, {} invalid",
            self.produced,
            self.profile,
            self.topic,
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.delivered,
            self.failed,
            valid,
            self.produced - valid
        )?;
        let invalid: Vec<String> = (1..Expect::COUNT)
            .filter(|&i| self.by_expect[i] > 0)
            .filter_map(|i| {
                Some(format!(
                    "{} {}",
                    Expect::from_index(i)?.as_str(),
                    self.by_expect[i]
                ))
            })
            .collect();
        if !invalid.is_empty() {
            write!(f, " ({})", invalid.join(", "))?;
        }
        Ok(())
    }
}

/// Produces the records `args` asks for and waits until every one is delivered or failed.
/// Errors only when the producer cannot be set up; failed deliveries are in the summary.
pub fn produce(args: &LoadgenArgs) -> anyhow::Result<Summary> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let options = args.gen_options(now);
    let count = args.count_limit();
    log_start(args, &options, count);
    let created = match args.partitions {
        Some(partitions) => Some(ensure_topic(args, partitions)?),
        None => None,
    };
    let producer = create_producer(args)?;
    if let (Some(false), Some(partitions)) = (created, args.partitions) {
        warn_on_partition_mismatch(&producer, &args.topic, partitions);
    }
    let deliveries = producer.context();
    let mut generator = Generator::new(args.profile, args.seed, options);
    let mut by_expect = [0u64; Expect::COUNT];
    let start = Instant::now();
    let deadline = args.duration.map(|d| start + d);
    let mut next_progress = start + PROGRESS_INTERVAL;
    let mut last_progress = (start, 0u64);
    let mut produced = 0u64;
    loop {
        if count.is_some_and(|c| produced >= c) {
            break;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        if now >= next_progress {
            log_progress(&producer, produced, last_progress, now);
            last_progress = (now, produced);
            next_progress += PROGRESS_INTERVAL;
        }
        if args.rate > 0.0 {
            let due = start + Duration::from_secs_f64(produced as f64 / args.rate);
            if due > now {
                let wake = deadline.map_or(due, |d| d.min(due)).min(next_progress);
                producer.poll(wake.saturating_duration_since(now));
                continue;
            }
        }
        let record = generator.next_record();
        let headers = args.label.then(|| label_headers(&record, produced));
        if let Err(error) = send(&producer, &args.topic, &record, headers) {
            deliveries.fail(&error);
        }
        by_expect[record.expect.index()] += 1;
        produced += 1;
        // One poll per send serves a delivery report event (a whole acknowledged batch).
        producer.poll(Duration::ZERO);
    }
    flush(&producer)?;
    let first_error = deliveries
        .first_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let summary = Summary {
        topic: args.topic.clone(),
        profile: args.profile,
        produced,
        delivered: deliveries.delivered.load(Ordering::Relaxed),
        failed: deliveries.failed.load(Ordering::Relaxed),
        first_error,
        elapsed: start.elapsed(),
        by_expect,
    };
    info!("{summary}");
    Ok(summary)
}

/// The first log line: what is generated, where to, how fast, and the command line.
fn log_start(args: &LoadgenArgs, options: &GenOptions, count: Option<u64>) {
    info!(
        "loadgen {}: {:?} profile, seed {}, base time {} to {} on {}; {}{}; rate {}; {} cores; command: {}",
        env!("CARGO_PKG_VERSION"),
        args.profile,
        args.seed,
        options.base_time,
        args.topic,
        args.kafka.brokers,
        count.map_or_else(|| "no count limit".to_owned(), |c| format!("{c} records")),
        args.duration.map_or_else(String::new, |d| format!(", at most {d:?}")),
        if args.rate > 0.0 { format!("{}/s", args.rate) } else { "unlimited".to_owned() },
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        std::env::args().collect::<Vec<_>>().join(" "),
    );
}

/// The progress line: records sent, the recent rate, and the delivery counts.
fn log_progress(
    producer: &BaseProducer<Deliveries>,
    produced: u64,
    (then, before): (Instant, u64),
    now: Instant,
) {
    let deliveries = producer.context();
    let recent = (produced - before) as f64 / now.duration_since(then).as_secs_f64();
    info!(
        "{produced} records sent ({recent:.0}/s over the last {PROGRESS_INTERVAL:?}); {} delivered, \
         {} failed, {} in flight",
        deliveries.delivered.load(Ordering::Relaxed),
        deliveries.failed.load(Ordering::Relaxed),
        producer.in_flight_count()
    );
}

fn ensure_topic(args: &LoadgenArgs, partitions: i32) -> anyhow::Result<bool> {
    let created = admin::create_topic_if_missing(
        &args.kafka.brokers,
        &args.kafka.properties,
        &args.topic,
        partitions,
        -1,
        &[],
    )?;
    if created {
        info!("created topic {} with {partitions} partitions", args.topic);
    }
    Ok(created)
}

fn warn_on_partition_mismatch(producer: &BaseProducer<Deliveries>, topic: &str, partitions: i32) {
    match producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
    {
        Ok(metadata) => {
            let actual = metadata
                .topics()
                .first()
                .map_or(0, |t| t.partitions().len());
            if actual != partitions as usize {
                warn!("topic {topic} already exists with {actual} partitions, not {partitions}; leaving it as it is");
            }
        }
        Err(e) => warn!("cannot read the metadata of topic {topic}: {e}"),
    }
}

fn create_producer(args: &LoadgenArgs) -> anyhow::Result<BaseProducer<Deliveries>> {
    client_config(
        &args.kafka.brokers,
        "kafka-pipeline-loadgen",
        &PRODUCER_DEFAULTS,
        &args.kafka.properties,
    )
    .create_with_context(Deliveries::default())
    .map_err(redact_config_error)
    .with_context(|| format!("creating a Kafka producer for {}", args.kafka.brokers))
}

fn label_headers(record: &GenRecord, seq: u64) -> OwnedHeaders {
    OwnedHeaders::new_with_capacity(2)
        .insert(Header {
            key: EXPECT_HEADER,
            value: Some(record.expect.as_str()),
        })
        .insert(Header {
            key: SEQ_HEADER,
            value: Some(&seq.to_string()),
        })
}

/// Enqueues one record, waiting while the producer's queue is full.
fn send(
    producer: &BaseProducer<Deliveries>,
    topic: &str,
    record: &GenRecord,
    headers: Option<OwnedHeaders>,
) -> Result<(), KafkaError> {
    let mut base: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
    if let Some(key) = &record.key {
        base = base.key(key.as_slice());
    }
    if let Some(value) = &record.value {
        base = base.payload(value.as_slice());
    }
    if let Some(headers) = headers {
        base = base.headers(headers);
    }
    loop {
        match producer.send(base) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                // The queue drains as batches are acknowledged; serve those reports meanwhile.
                base = back;
                producer.poll(Duration::from_millis(10));
            }
            Err((error, _)) => return Err(error),
        }
    }
}

/// Waits until every record is delivered or has failed (librdkafka fails a record after
/// `message.timeout.ms`, so this ends), with a progress line while it waits.
fn flush(producer: &BaseProducer<Deliveries>) -> anyhow::Result<()> {
    loop {
        match producer.flush(PROGRESS_INTERVAL) {
            Ok(()) => return Ok(()),
            Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut)) => {
                info!("flushing: {} records in flight", producer.in_flight_count());
            }
            Err(error) => return Err(error).context("flushing the producer"),
        }
    }
}

/// Runs `kafka-pipeline loadgen`: produces the records, prints a summary line on stdout, and
/// fails if any record was not delivered.
pub fn run(args: LoadgenArgs) -> anyhow::Result<()> {
    let summary = produce(&args)?;
    println!("{summary}");
    summary.check()
}
