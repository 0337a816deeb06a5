//! Reading a topic from the beginning without a group: what `insights` and the `dlq` commands
//! read with.
//!
//! A `BaseConsumer` is assigned every partition from its start; it never joins a group and
//! never commits, so reading changes nothing and any number of readers can run at once.
//! [`TopicReader::next_record`] returns records until every partition has reached the end
//! offset found at start (or reported its end), failing when the broker sends nothing for the
//! timeout meanwhile. A [`Reading::Snapshot`] reader skips what was written after it opened;
//! a [`Reading::Follow`] reader returns it, and after catching up [`TopicReader::poll`] goes on
//! with what arrives. Readers use `isolation.level=read_committed`: records of an aborted
//! transaction (a pipeline in exactly-once mode, a rolled-back replay) are not there to read.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::client::{client_config, redact_config_error, ClientLog};
use crate::cli::kafka::KafkaArgs;

const POLL: Duration = Duration::from_millis(200);

/// What a reader does with records written after it opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Skips them: the topic as it was at the start (`dlq`).
    Snapshot,
    /// Returns them too, and goes on reading after catching up (`insights --follow`).
    Follow,
}

/// A topic being read from its start.
pub struct TopicReader {
    consumer: BaseConsumer<ClientLog>,
    topic: String,
    reading: Reading,
    /// Per partition not yet caught up: the end offset found at start.
    remaining: BTreeMap<i32, i64>,
    /// Records between the start and end offsets, for a progress bar.
    total: u64,
    timeout: Duration,
    brokers: String,
}

impl TopicReader {
    /// Assigns every partition of `topic` from its start; `client` names the reader (its
    /// client id and log lines). A missing topic is an error unless `missing_ok` (then there is
    /// nothing to read).
    pub fn open(
        kafka: &KafkaArgs,
        client: &'static str,
        topic: &str,
        reading: Reading,
        timeout: Duration,
        missing_ok: bool,
    ) -> anyhow::Result<TopicReader> {
        let consumer = consumer(kafka, client)?;
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
            }
            // An empty partition is read too when following: records may arrive in it.
            if high > low || reading == Reading::Follow {
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
            reading,
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

    /// The next record, `None` once every partition is read to the end found at start. Fails
    /// when the broker sends nothing for the timeout while records remain.
    pub fn next_record(&mut self) -> anyhow::Result<Option<BorrowedMessage<'_>>> {
        let mut started = Instant::now();
        while !self.remaining.is_empty() {
            match self.consumer.poll(POLL) {
                Some(Ok(m)) => {
                    let (p, o) = (m.partition(), m.offset());
                    let end = self.remaining.get(&p).copied();
                    if end.is_some_and(|end| o + 1 >= end) {
                        self.remaining.remove(&p);
                    }
                    if end.is_some_and(|end| o < end) || self.reading == Reading::Follow {
                        return Ok(Some(m));
                    }
                    // Written since the start: not part of the snapshot.
                    started = Instant::now();
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

    /// After catching up (following): the next record that arrives within a short poll.
    pub fn poll(&self) -> Option<BorrowedMessage<'_>> {
        match self.consumer.poll(POLL) {
            Some(Ok(m)) => Some(m),
            Some(Err(KafkaError::PartitionEOF(_))) | None => None,
            Some(Err(e)) => {
                log::warn!("reading {}: {e}", self.topic);
                None
            }
        }
    }
}

/// Number of partitions of `topic`; 0 when it does not exist.
pub fn partition_count(kafka: &KafkaArgs, topic: &str, timeout: Duration) -> anyhow::Result<usize> {
    let metadata = consumer(kafka, "kafka-pipeline-metadata")?
        .fetch_metadata(Some(topic), timeout)
        .with_context(|| format!("fetching metadata of topic {topic} from {}", kafka.brokers))?;
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map_or(0, |t| t.partitions().len()))
}

/// A consumer that reads by assignment only: no group membership, no commits.
fn consumer(kafka: &KafkaArgs, client: &'static str) -> anyhow::Result<BaseConsumer<ClientLog>> {
    // A group id is needed by librdkafka's consumer; assign() never joins the group, and
    // nothing commits.
    let group = format!("{client}-reader");
    client_config(
        &kafka.brokers,
        client,
        &[
            ("group.id", group.as_str()),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", "true"),
            ("auto.offset.reset", "earliest"),
            ("isolation.level", "read_committed"),
        ],
        &kafka.properties,
    )
    .create_with_context(ClientLog::new(client))
    .map_err(redact_config_error)
    .with_context(|| format!("creating a Kafka consumer for {}", kafka.brokers))
}
