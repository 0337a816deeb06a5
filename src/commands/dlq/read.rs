//! Reads a topic from the beginning to the end offsets found at start, without a group.
//!
//! A `BaseConsumer` is assigned every partition; it never joins a group and never commits, so
//! reading the DLQ changes nothing and any number of readers can run at once. Reading ends when
//! every partition has reached the high watermark found at start (or reported its end). The
//! reader uses `isolation.level=read_committed`: dead letters of an aborted transaction (a
//! pipeline in exactly-once mode) and replays that were rolled back are not there to read.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::letter::DeadLetter;
use crate::cli::kafka::KafkaArgs;
use crate::commands::insights::ReaderContext;

const POLL: Duration = Duration::from_millis(200);

/// A topic being read to its end.
pub struct TopicReader {
    consumer: BaseConsumer<ReaderContext>,
    topic: String,
    /// Per partition with records: the end offset to read up to.
    remaining: BTreeMap<i32, i64>,
    /// Records between the start and end offsets, for a progress bar.
    total: u64,
    timeout: Duration,
    brokers: String,
}

impl TopicReader {
    /// Assigns every partition of `topic` from its start. A missing topic is an error unless
    /// `missing_ok` (then there is nothing to read).
    pub fn open(
        kafka: &KafkaArgs,
        topic: &str,
        timeout: Duration,
        missing_ok: bool,
    ) -> anyhow::Result<TopicReader> {
        let consumer = consumer(kafka)?;
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .with_context(|| {
                format!("fetching metadata of topic {topic} from {}", kafka.brokers)
            })?;
        let partitions: Vec<i32> = match metadata.topics().iter().find(|t| t.name() == topic) {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
                t.partitions().iter().map(|p| p.id()).collect()
            }
            _ if missing_ok => Vec::new(),
            Some(t) if t.error().is_some() => bail!(
                "topic {topic}: {}",
                RDKafkaErrorCode::from(t.error().expect("checked"))
            ),
            _ => bail!("topic {topic} does not exist"),
        };
        let mut assignment = TopicPartitionList::new();
        let mut remaining = BTreeMap::new();
        let mut total = 0;
        for p in partitions {
            let (low, high) = consumer
                .fetch_watermarks(topic, p, timeout)
                .with_context(|| format!("fetching the offsets of {topic}/{p}"))?;
            if high > low {
                remaining.insert(p, high);
                total += (high - low) as u64;
                assignment
                    .add_partition_offset(topic, p, Offset::Offset(low))
                    .with_context(|| format!("assigning {topic}/{p}"))?;
            }
        }
        consumer
            .assign(&assignment)
            .with_context(|| format!("assigning the partitions of {topic}"))?;
        Ok(TopicReader {
            consumer,
            topic: topic.to_owned(),
            remaining,
            total,
            timeout,
            brokers: kafka.brokers.clone(),
        })
    }

    /// Offsets between the start and the end of the partitions (records, transaction markers
    /// and compacted-away offsets included): the length of a progress bar.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The next record, `None` once every partition is read to its end. Fails when the broker
    /// sends nothing for the timeout while records remain.
    pub fn next_record(&mut self) -> anyhow::Result<Option<BorrowedMessage<'_>>> {
        let started = Instant::now();
        while !self.remaining.is_empty() {
            match self.consumer.poll(POLL) {
                Some(Ok(m)) => {
                    let (p, o) = (m.partition(), m.offset());
                    match self.remaining.get(&p) {
                        Some(&end) if o < end => {
                            if o + 1 >= end {
                                self.remaining.remove(&p);
                            }
                            return Ok(Some(m));
                        }
                        // Past the end found at start (written since): not ours to read.
                        _ => {}
                    }
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    self.remaining.remove(&p);
                }
                Some(Err(e)) => log::warn!("reading {}: {e}", self.topic),
                None => {}
            }
            if started.elapsed() > self.timeout {
                bail!(
                    "no data from {} for {:?} while reading topic {} (partitions {:?} unfinished)",
                    self.brokers,
                    self.timeout,
                    self.topic,
                    self.remaining.keys().collect::<Vec<_>>()
                );
            }
        }
        Ok(None)
    }
}

/// Number of partitions of `topic`; 0 when it does not exist.
pub fn partition_count(kafka: &KafkaArgs, topic: &str, timeout: Duration) -> anyhow::Result<usize> {
    let metadata = consumer(kafka)?
        .fetch_metadata(Some(topic), timeout)
        .with_context(|| format!("fetching metadata of topic {topic} from {}", kafka.brokers))?;
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map_or(0, |t| t.partitions().len()))
}

/// The dead letter in a consumed message.
pub fn dead_letter<'a>(m: &'a BorrowedMessage<'a>) -> DeadLetter<'a> {
    DeadLetter {
        partition: m.partition(),
        offset: m.offset(),
        timestamp_ms: m.timestamp().to_millis(),
        key: m.key(),
        value: m.payload(),
        headers: m
            .headers()
            .map(|h| h.iter().map(|h| (h.key, h.value)).collect())
            .unwrap_or_default(),
    }
}

/// A consumer that reads by assignment only: no group membership, no commits.
fn consumer(kafka: &KafkaArgs) -> anyhow::Result<BaseConsumer<ReaderContext>> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.brokers)
        .set("client.id", "kafka-pipeline-dlq")
        // Needed by librdkafka's consumer; assign() never joins the group, and nothing commits.
        .set("group.id", "kafka-pipeline-dlq-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed");
    for (key, value) in &kafka.properties {
        config.set(key, value);
    }
    config
        .create_with_context(ReaderContext)
        .with_context(|| format!("creating a Kafka consumer for {}", kafka.brokers))
}
