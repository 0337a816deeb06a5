//! `kafka-pipeline sink`: keeps the insight windows in PostgreSQL for analysis — one row per
//! window in `insight_windows`, every instance's and every part's records merged exactly as
//! `kafka-pipeline insights` merges them.
//!
//! ```text
//!  insights topic ──▶ BaseConsumer (group, read_committed) ──▶ Batch ──▶ one PostgreSQL transaction:
//!                     offsets from PostgreSQL at assignment          advisory lock, stored offsets,
//!                     ◀── commit offsets (after the PG commit)        window states + rows, offsets
//! ```
//!
//! # Exactly once
//!
//! PostgreSQL, not Kafka, holds the truth: the next offset to apply per partition is stored in
//! `sink_offsets` in the same transaction as the rows and window states it produced
//! ([`store`]). When partitions are assigned, the consumer starts each at its stored offset
//! (from the beginning when none is stored), whatever the group has committed; the offsets are
//! committed to the Kafka group only after PostgreSQL has committed, so that `kafka-consumer-groups`
//! shows the sink's lag. Inside the transaction, records below the stored offset are dropped,
//! so a restart, a second sink over the same topic and database, or a rebalance that hands a
//! partition over mid-batch never count a record twice. Re-reading the topic into the same
//! database changes no row.
//!
//! # Failures
//!
//! - A record that is not an insight record (not JSON, not the shape, a sketch that does not
//!   decode, counts or times out of range, a tombstone) is skipped: counted, logged (the first
//!   few per batch), and kept in `sink_skipped` with its partition, offset and reason; its
//!   offset advances like any other.
//! - PostgreSQL refusing a batch's data (SQLSTATE 22, 23) splits the batch: each record is
//!   applied alone and one refused alone is skipped with the server's message.
//! - PostgreSQL unreachable: nothing is committed (to PostgreSQL or Kafka); the sink pauses its
//!   partitions, keeps polling (group membership stays), and retries the held batch with a
//!   backoff from 200 ms to 30 s. No window is lost: the records stay held or unread.
//! - Anything else (schema, permissions, a stored state that does not parse) stops the sink.
//!
//! On SIGINT/SIGTERM the held batch is applied (within `--shutdown-timeout`; past it the
//! batch is dropped uncommitted and read again on the next start) and the sink leaves the group.

pub(crate) mod hll;
pub(crate) mod row;
pub(crate) mod state;
pub(crate) mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use state::Batch;
use store::{Applied, Store, StoreError};

use crate::cli::sink::SinkArgs;
use crate::kafka::client::client_config;
use crate::kafka::client::{redact_config_error, ClientLog};
use crate::shutdown::Shutdown;

/// What the poll loop and the rebalance callback share.
#[derive(Debug, Default)]
struct Positions {
    /// Next offset to apply per partition, as last committed to PostgreSQL.
    applied: BTreeMap<i32, i64>,
    /// Partitions assigned now.
    assigned: BTreeSet<i32>,
    /// Assigned partitions read to their end (with `--exit-at-end`).
    at_end: BTreeSet<i32>,
}

/// The consumer's context: starts assigned partitions at the offsets PostgreSQL holds.
struct SinkContext {
    positions: Arc<Mutex<Positions>>,
    log: ClientLog,
}

fn lock(positions: &Mutex<Positions>) -> MutexGuard<'_, Positions> {
    positions.lock().unwrap_or_else(|e| e.into_inner())
}

impl ClientContext for SinkContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.log.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log.error(error, reason);
    }
}

impl ConsumerContext for SinkContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let mut positions = lock(&self.positions);
        match rebalance {
            Rebalance::Assign(tpl) => {
                // The list handed to assign: setting an element's offset makes the partition
                // start there instead of at the group's committed offset.
                let mut starts = Vec::new();
                for mut element in tpl.elements() {
                    let p = element.partition();
                    let start = positions
                        .applied
                        .get(&p)
                        .map_or(Offset::Beginning, |&o| Offset::Offset(o));
                    if let Err(e) = element.set_offset(start) {
                        log::warn!("cannot set the start of partition {p}: {e}");
                    }
                    positions.assigned.insert(p);
                    positions.at_end.remove(&p);
                    starts.push(format!("{p}@{}", describe(start)));
                }
                log::info!("assigned {}", starts.join(", "));
            }
            Rebalance::Revoke(tpl) => {
                for element in tpl.elements() {
                    positions.assigned.remove(&element.partition());
                    positions.at_end.remove(&element.partition());
                }
                log::info!("revoked {} partitions", tpl.count());
            }
            Rebalance::Error(e) => log::warn!("rebalance error: {e}"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        match result {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            // Only the group's view of the lag is behind: PostgreSQL holds the offsets.
            Err(e) => log::debug!("offset commit to the group failed: {e}"),
        }
    }
}

fn describe(offset: Offset) -> String {
    match offset {
        Offset::Offset(o) => o.to_string(),
        _ => "beginning".into(),
    }
}

/// Running totals for the progress line.
#[derive(Debug, Default)]
struct Totals {
    merged: u64,
    rows: u64,
    duplicates: u64,
    skipped: u64,
    replayed: u64,
    retries: u64,
}

/// Most skipped records logged per batch (the rest are counted).
const LOG_SKIPS: usize = 5;
const POLL: Duration = Duration::from_millis(100);
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Reads the insights topic into PostgreSQL until shutdown (or, with `--exit-at-end`, the end
/// of the topic). See the module doc.
pub fn run_sink(args: SinkArgs, shutdown: &Shutdown) -> anyhow::Result<()> {
    let url = args
        .postgres_url
        .as_deref()
        .filter(|u| !u.trim().is_empty())
        .context("--postgres-url is required (or KAFKA_PIPELINE_POSTGRES_URL, or postgres-url in --config)")?;
    if args.insights.name.trim().is_empty() || args.sink_group_id.trim().is_empty() {
        bail!("--insights-topic and --sink-group-id must not be empty");
    }
    let mut store = Store::new(url, &args.insights.name)?;
    log::info!(
        "kafka-pipeline {} sink: {} -> PostgreSQL {}, group {}",
        env!("CARGO_PKG_VERSION"),
        args.insights.name,
        store.describe(),
        args.sink_group_id
    );
    let mut backoff = BACKOFF_MIN;
    let applied = loop {
        match store.prepare().and_then(|()| store.offsets()) {
            Ok(offsets) => break offsets,
            Err(StoreError::Unavailable(e)) if !shutdown.is_requested() => {
                log::warn!("PostgreSQL unavailable ({e}); retrying in {backoff:?}");
                store.disconnect();
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            Err(e) => return Err(e.into()),
        }
    };
    let positions = Arc::new(Mutex::new(Positions {
        applied,
        ..Positions::default()
    }));
    let consumer = consumer(&args, Arc::clone(&positions))?;
    let partitions = partition_count(&consumer, &args)?;
    consumer
        .subscribe(&[&args.insights.name])
        .with_context(|| format!("subscribing to {}", args.insights.name))?;
    let mut sink = Sink {
        consumer,
        store,
        positions,
        batch: Batch::default(),
        totals: Totals::default(),
        topic: args.insights.name.clone(),
        partitions,
    };
    sink.run(&args, shutdown)
}

fn consumer(
    args: &SinkArgs,
    positions: Arc<Mutex<Positions>>,
) -> anyhow::Result<BaseConsumer<SinkContext>> {
    let config = client_config(
        &args.kafka.brokers,
        "kafka-pipeline-sink",
        &[
            ("group.id", args.sink_group_id.as_str()),
            // Offsets are committed by hand, after PostgreSQL has committed.
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            // Insight records of an exactly-once pipeline are written in transactions: count
            // only committed ones.
            ("isolation.level", "read_committed"),
            ("partition.assignment.strategy", "cooperative-sticky"),
            (
                "enable.partition.eof",
                if args.exit_at_end { "true" } else { "false" },
            ),
        ],
        &args.kafka.properties,
    );
    let context = SinkContext {
        positions,
        log: ClientLog::new("sink consumer"),
    };
    config
        .create_with_context(context)
        .map_err(redact_config_error)
        .with_context(|| format!("creating a Kafka consumer for {}", args.kafka.brokers))
}

/// The topic's partition count (it must exist: the sink does not create it).
fn partition_count(consumer: &BaseConsumer<SinkContext>, args: &SinkArgs) -> anyhow::Result<usize> {
    let topic = &args.insights.name;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .with_context(|| {
            format!(
                "fetching metadata of topic {topic} from {}",
                args.kafka.brokers
            )
        })?;
    match metadata.topics().iter().find(|t| t.name() == topic) {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(t.partitions().len()),
        _ => bail!("topic {topic} does not exist (create it with `kafka-pipeline topics`)"),
    }
}

struct Sink {
    consumer: BaseConsumer<SinkContext>,
    store: Store,
    positions: Arc<Mutex<Positions>>,
    batch: Batch,
    totals: Totals,
    topic: String,
    partitions: usize,
}

impl Sink {
    fn run(&mut self, args: &SinkArgs, shutdown: &Shutdown) -> anyhow::Result<()> {
        let mut last_flush = Instant::now();
        let mut last_progress = Instant::now();
        let max_batch = args.max_batch as usize;
        while !shutdown.is_requested() {
            self.poll(POLL);
            let at_end = args.exit_at_end && self.at_end();
            let due = self.batch.len() >= max_batch
                || last_flush.elapsed() >= args.flush_interval
                || at_end;
            if due && !self.batch.is_empty() {
                self.flush(shutdown)?;
                last_flush = Instant::now();
            }
            if at_end && self.batch.is_empty() {
                log::info!(
                    "every partition of {} read to its end and written",
                    self.topic
                );
                break;
            }
            if !args.progress_interval.is_zero()
                && last_progress.elapsed() >= args.progress_interval
            {
                self.progress();
                last_progress = Instant::now();
            }
        }
        if !self.batch.is_empty() {
            self.flush(shutdown)?;
        }
        self.progress();
        Ok(())
    }

    /// One poll: a record joins the batch, an end of partition is noted.
    fn poll(&mut self, timeout: Duration) {
        match self.consumer.poll(timeout) {
            Some(Ok(m)) => {
                self.batch.insert(m.partition(), m.offset(), m.payload());
                lock(&self.positions).at_end.remove(&m.partition());
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                lock(&self.positions).at_end.insert(p);
            }
            Some(Err(e)) => log::warn!("reading {}: {e}", self.topic),
            None => {}
        }
    }

    /// Whether every partition of the topic is assigned and read to its end.
    fn at_end(&self) -> bool {
        let p = lock(&self.positions);
        p.assigned.len() == self.partitions && p.assigned.is_subset(&p.at_end)
    }

    /// Applies the held batch, retrying while PostgreSQL is unavailable (see the module doc).
    fn flush(&mut self, shutdown: &Shutdown) -> anyhow::Result<()> {
        let mut backoff = BACKOFF_MIN;
        let mut paused = false;
        loop {
            match self.store.apply(&self.batch, &BTreeMap::new()) {
                Ok(applied) => {
                    self.applied(applied);
                    self.batch.clear();
                    if paused {
                        self.set_paused(false);
                    }
                    return Ok(());
                }
                Err(StoreError::Unavailable(e)) => {
                    self.store.disconnect();
                    self.totals.retries += 1;
                    if shutdown.overdue() {
                        bail!("PostgreSQL unavailable ({e}); shutdown deadline reached with {} records not written (they are read again on the next start)", self.batch.len());
                    }
                    log::warn!(
                        "PostgreSQL unavailable ({e}); holding {} records, retrying in {backoff:?}",
                        self.batch.len()
                    );
                    if !paused {
                        self.set_paused(true);
                        paused = true;
                    }
                    self.wait(backoff, shutdown);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
                Err(StoreError::Refused(e)) => {
                    log::warn!("{e}; writing the {} records one by one", self.batch.len());
                    self.isolate()?;
                }
                Err(e @ StoreError::Fatal(_)) => return Err(e.into()),
            }
        }
    }

    /// Applies each held record alone, in order; one that PostgreSQL refuses alone is applied
    /// as skipped, with the server's reason, before the next (so offsets stay in order). Stops
    /// early when PostgreSQL goes away: the caller retries the batch, and what was applied
    /// here is then dropped as applied.
    fn isolate(&mut self) -> anyhow::Result<()> {
        for (at, one) in self.batch.singles() {
            let mut result = self.store.apply(&one, &BTreeMap::new());
            if let Err(StoreError::Refused(e)) = &result {
                let reject = BTreeMap::from([(at, format!("refused by PostgreSQL: {e}"))]);
                result = self.store.apply(&one, &reject);
            }
            match result {
                Ok(applied) => self.applied(applied),
                Err(e @ StoreError::Fatal(_)) => return Err(e.into()),
                Err(e) => {
                    log::warn!("{e} while writing records one by one");
                    break;
                }
            }
        }
        Ok(())
    }

    /// Polls (serving the group) for `duration` while PostgreSQL is away; records that arrive
    /// (from partitions assigned meanwhile) join the batch, and those partitions are paused too.
    fn wait(&mut self, duration: Duration, shutdown: &Shutdown) {
        let until = Instant::now() + duration;
        while Instant::now() < until && !shutdown.overdue() {
            let before = self.batch.len();
            self.poll(POLL);
            if self.batch.len() != before {
                self.set_paused(true);
            }
        }
    }

    fn set_paused(&self, paused: bool) {
        let Ok(assignment) = self.consumer.assignment() else {
            return;
        };
        let result = if paused {
            self.consumer.pause(&assignment)
        } else {
            self.consumer.resume(&assignment)
        };
        if let Err(e) = result {
            log::debug!("pause/resume {}: {e}", self.topic);
        }
    }

    /// Books an applied batch: totals, skipped records logged, offsets to the group.
    fn applied(&mut self, applied: Applied) {
        let t = &mut self.totals;
        t.merged += applied.merged;
        t.rows += applied.windows as u64;
        t.duplicates += applied.duplicates;
        t.skipped += applied.skipped.len() as u64;
        t.replayed += applied.replayed;
        for skip in applied.skipped.iter().take(LOG_SKIPS) {
            log::warn!(
                "skipped the record at {}/{} offset {}: {}",
                self.topic,
                skip.partition,
                skip.offset,
                skip.reason
            );
        }
        if applied.skipped.len() > LOG_SKIPS {
            log::warn!(
                "skipped {} more records (see table sink_skipped)",
                applied.skipped.len() - LOG_SKIPS
            );
        }
        let mut tpl = TopicPartitionList::new();
        {
            let mut positions = lock(&self.positions);
            for (&p, &next) in &applied.offsets {
                let entry = positions.applied.entry(p).or_insert(next);
                *entry = (*entry).max(next);
                let next = *entry;
                if positions.assigned.contains(&p) {
                    let _ = tpl.add_partition_offset(&self.topic, p, Offset::Offset(next));
                }
            }
        }
        if tpl.count() > 0 {
            if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
                log::debug!("offset commit to the group: {e}");
            }
        }
    }

    fn progress(&self) {
        let t = &self.totals;
        log::info!(
            "sink: {} records merged, {} window rows written, {} exact re-sends dropped, {} skipped, {} already applied, {} PostgreSQL retries",
            t.merged, t.rows, t.duplicates, t.skipped, t.replayed, t.retries
        );
    }
}
