//! `kafka-pipeline insights`: reads the insights topic, merges the records of all instances by
//! window start, and prints one line per window — a compact table for people, or `--json`.
//!
//! Reading: a `BaseConsumer` is assigned every partition of the topic from the beginning; it
//! never joins a group and never commits, so any number of readers can run. Without
//! `--follow` it reads up to the end offsets found at start (or end-of-partition), prints, and
//! exits; with `--follow` it keeps reading and reprints a window's row whenever a new record
//! changes it (rows come out at most once a second, so the records that all instances publish
//! for a window at about the same time show up as one update).
//!
//! Merging (and what counts as a duplicate) is [`crate::insights::table`]'s.

use std::collections::BTreeMap;
use std::io::{self};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::cli::insights::ReaderArgs;
use crate::cli::kafka::KafkaArgs;
use crate::insights::table::{Printer, WindowTable};

/// How long follow mode collects records before printing the windows they changed.
const PRINT_EVERY: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(200);

/// Reads the insights topic and prints merged windows (see the module doc).
pub fn run_reader(args: ReaderArgs) -> anyhow::Result<()> {
    let consumer = consumer(&args.kafka)?;
    let remaining = assign_all(&consumer, &args.topic, args.timeout)?;
    let mut table = WindowTable::new(args.last.map(|n| n as usize));
    let mut warned = 0u32;
    let mut ingest = |table: &mut WindowTable, payload: Option<&[u8]>, at: (i32, i64)| {
        if let Err(e) = table.add_json(payload) {
            if warned < 3 {
                log::warn!("skipping record at partition {} offset {}: {e}", at.0, at.1);
                warned += 1;
            }
        }
    };

    catch_up(&consumer, &args, remaining, &mut table, &mut ingest)?;

    let mut printer = Printer::new(io::stdout().lock(), args.json);
    table.take_changed();
    if table.is_empty() && !args.follow {
        log::info!("no insight windows in topic {}", args.topic);
    }
    if let Err(e) = printer.print(&table.all()) {
        return quiet_broken_pipe(e);
    }
    if !args.follow {
        summarize(&table, &args.topic);
        return Ok(());
    }

    let mut last_print = Instant::now();
    loop {
        match consumer.poll(POLL) {
            Some(Ok(m)) => ingest(&mut table, m.payload(), (m.partition(), m.offset())),
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(e)) => log::warn!("reading {}: {e}", args.topic),
        }
        if last_print.elapsed() >= PRINT_EVERY {
            let changed = table.take_changed();
            if let Err(e) = printer.print(&changed) {
                return quiet_broken_pipe(e);
            }
            last_print = Instant::now();
        }
    }
}

/// Reads until every partition in `remaining` has reached the end offset found at start (or
/// reported its end); fails when nothing arrives for `--timeout`.
fn catch_up(
    consumer: &BaseConsumer<ReaderContext>,
    args: &ReaderArgs,
    mut remaining: BTreeMap<i32, i64>,
    table: &mut WindowTable,
    ingest: &mut impl FnMut(&mut WindowTable, Option<&[u8]>, (i32, i64)),
) -> anyhow::Result<()> {
    let mut last_progress = Instant::now();
    while !remaining.is_empty() {
        match consumer.poll(POLL) {
            Some(Ok(m)) => {
                ingest(table, m.payload(), (m.partition(), m.offset()));
                if remaining
                    .get(&m.partition())
                    .is_some_and(|&end| m.offset() + 1 >= end)
                {
                    remaining.remove(&m.partition());
                }
                last_progress = Instant::now();
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                remaining.remove(&p);
                last_progress = Instant::now();
            }
            Some(Err(e)) => log::warn!("reading {}: {e}", args.topic),
            None => {}
        }
        if last_progress.elapsed() > args.timeout {
            bail!(
                "no data from {} for {:?} while reading topic {} (partitions {:?} unfinished)",
                args.kafka.brokers,
                args.timeout,
                args.topic,
                remaining.keys().collect::<Vec<_>>()
            );
        }
    }
    Ok(())
}

/// A closed stdout (`| head`) ends the reader quietly; other write errors are errors.
fn quiet_broken_pipe(e: io::Error) -> anyhow::Result<()> {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(e).context("writing to stdout")
    }
}

fn summarize(table: &WindowTable, topic: &str) {
    let c = table.counts();
    log::info!(
        "{topic}: {} windows from {} records ({} duplicates, {} older than the windows kept, {} invalid skipped)",
        table.len(),
        c.merged,
        c.duplicates,
        c.too_old,
        c.invalid
    );
}

/// The reader's client context: end-of-partition is how catching up ends, not an error, so it
/// is not logged (librdkafka also reports it through the error callback). `dlq` reads the same
/// way.
pub(crate) struct ReaderContext;

impl ClientContext for ReaderContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let eof = matches!(error, KafkaError::PartitionEOF(_))
            || matches!(error, KafkaError::Global(RDKafkaErrorCode::PartitionEOF));
        if !eof {
            log::warn!("librdkafka: {error}: {reason}");
        }
    }
}

impl ConsumerContext for ReaderContext {}

/// A consumer that reads by assignment only: no group membership, no commits.
fn consumer(kafka: &KafkaArgs) -> anyhow::Result<BaseConsumer<ReaderContext>> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.brokers)
        .set("client.id", "kafka-pipeline-insights")
        // Needed by librdkafka's consumer; assign() never joins the group, and nothing commits.
        .set("group.id", "kafka-pipeline-insights-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest");
    for (key, value) in &kafka.properties {
        config.set(key, value);
    }
    config
        .create_with_context(ReaderContext)
        .with_context(|| format!("creating a Kafka consumer for {}", kafka.brokers))
}

/// Assigns every partition of `topic` from the beginning; returns, per partition that has
/// records, the end offset to read up to.
fn assign_all(
    consumer: &BaseConsumer<ReaderContext>,
    topic: &str,
    timeout: Duration,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .with_context(|| format!("fetching metadata of topic {topic}"))?;
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        bail!("topic {topic} not found");
    };
    if let Some(error) = t.error() {
        bail!(
            "topic {topic}: {}",
            rdkafka::types::RDKafkaErrorCode::from(error)
        );
    }
    if t.partitions().is_empty() {
        bail!("topic {topic} does not exist (no partitions)");
    }
    let mut assignment = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for p in t.partitions() {
        let (low, high) = consumer
            .fetch_watermarks(topic, p.id(), timeout)
            .with_context(|| format!("fetching the offsets of {topic}/{}", p.id()))?;
        if high > low {
            ends.insert(p.id(), high);
        }
        assignment
            .add_partition_offset(topic, p.id(), Offset::Beginning)
            .with_context(|| format!("assigning {topic}/{}", p.id()))?;
    }
    consumer
        .assign(&assignment)
        .with_context(|| format!("assigning the partitions of {topic}"))?;
    Ok(ends)
}
