//! `dlq replay`: sends selected dead letters back, so a pipeline whose configuration or
//! upstream was fixed processes them again — each at most once per target topic.
//!
//! # What is sent
//!
//! Each replayed record is the dead letter's original key and value, byte for byte, with its
//! original headers minus the pipeline's trailing `__pipeline.errors.*` block and minus any
//! earlier `__pipeline.replay.*` headers, followed by new replay headers:
//! `__pipeline.replay.dlq_topic`, `__pipeline.replay.dlq_partition`,
//! `__pipeline.replay.dlq_offset` (the dead letter's position) and `__pipeline.replay.count`
//! (1 on the first replay). It is keyed like any record (murmur2, as the pipeline's producer
//! and Java clients partition), with a new timestamp. A replayed record that fails again is
//! dead-lettered again with these headers among its originals, so its count shows in `dlq
//! show` and the next replay sends it with the count raised; a letter whose count has reached
//! `--max-replays` is not replayed, which ends a loop.
//!
//! # Exactly once per target
//!
//! Which letters went to which target is kept in the replay ledger ([`super::ledger`]). The
//! replayed records and the ledger entries that name them are written in one Kafka
//! transaction per chunk of at most [`CHUNK_LETTERS`] letters (or [`CHUNK_MAX_AGE`]), so a
//! letter counts as replayed exactly when its record is committed: a replay that crashes or
//! fails part-way leaves the committed chunks recorded and the open one rolled back, and
//! running it again sends exactly the rest. The pipeline reads `read_committed` (librdkafka's
//! default), so it never sees an aborted replay.
//!
//! The transactional id is derived from the DLQ topic alone, so any two replays from one DLQ
//! fence each other (the older one fails, its open chunk rolled back; run again, it resumes).
//! The ledger is read only after the producer's `init_transactions`, which completes or aborts
//! any earlier transaction of that id. Both matter because a `read_committed` reader stops at
//! the first open transaction in the ledger: with one id per DLQ, none of this DLQ's replays
//! has one open then, so every committed entry is read. (Hence one ledger per DLQ topic, as the
//! default names it.)
//!
//! Not replayed: letters the filters do not select, foreign records (no error headers: there is
//! no reason to think they belong on the input), letters already in the ledger for this target,
//! and letters at the replay limit. `--dry-run` reads the DLQ and the ledger, counts, and writes
//! nothing.

use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use serde_json::json;

use super::filter::Filter;
use super::ledger::Ledger;
use super::letter::dead_letter;
use super::letter::{
    DeadLetter, HEADER_REPLAY_COUNT, HEADER_REPLAY_DLQ_OFFSET, HEADER_REPLAY_DLQ_PARTITION,
    HEADER_REPLAY_DLQ_TOPIC, REPLAY_HEADER_PREFIX,
};
use super::open_reader;
use crate::cli::dlq::ReplayArgs;
use crate::cli::dlq::SourceArgs;
use crate::kafka::client::{client_config, redact_config_error, ClientLog};
use crate::kafka::reader::{partition_count, TopicReader};

/// Letters per transaction at most.
pub const CHUNK_LETTERS: u64 = 10_000;
/// A transaction is committed once it has been open this long (well inside the broker's
/// default `transaction.timeout.ms` of 60 s).
pub const CHUNK_MAX_AGE: Duration = Duration::from_secs(10);

/// Why a letter is not replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The filters do not select it.
    NotSelected,
    /// It has no error headers: not the pipeline's dead letter.
    NotPipelines,
    /// The ledger has it for this target.
    AlreadyReplayed,
    /// It has been replayed `--max-replays` times.
    AtReplayLimit,
}

/// Whether to replay `letter`: `Ok(())`, or why not.
pub fn decide(
    letter: &DeadLetter<'_>,
    filter: &Filter,
    ledger: &Ledger,
    max_replays: u32,
) -> Result<(), Skip> {
    if !filter.matches(letter) {
        Err(Skip::NotSelected)
    } else if !letter.is_pipelines() {
        Err(Skip::NotPipelines)
    } else if ledger.contains(letter.partition, letter.offset) {
        Err(Skip::AlreadyReplayed)
    } else if letter.replay_count() >= max_replays {
        Err(Skip::AtReplayLimit)
    } else {
        Ok(())
    }
}

/// The headers of the replayed record (see the module doc).
pub fn replay_headers(letter: &DeadLetter<'_>, dlq_topic: &str) -> OwnedHeaders {
    let original = letter.original_headers();
    let mut headers = OwnedHeaders::new_with_capacity(original.len() + 4);
    for &(key, value) in original {
        if !key.starts_with(REPLAY_HEADER_PREFIX) {
            headers = headers.insert(Header { key, value });
        }
    }
    let partition = letter.partition.to_string();
    let (mut offset, mut count) = (itoa::Buffer::new(), itoa::Buffer::new());
    let offset = offset.format(letter.offset.max(0));
    let count = count.format(u64::from(letter.replay_count()) + 1);
    for (key, value) in [
        (HEADER_REPLAY_DLQ_TOPIC, dlq_topic.as_bytes()),
        (HEADER_REPLAY_DLQ_PARTITION, partition.as_bytes()),
        (HEADER_REPLAY_DLQ_OFFSET, offset.as_bytes()),
        (HEADER_REPLAY_COUNT, count.as_bytes()),
    ] {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    headers
}

/// What a replay did (or, with `--dry-run`, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayCounts {
    /// DLQ records read.
    pub read: u64,
    /// Letters replayed (or that would be).
    pub replayed: u64,
    /// Not selected by the filters.
    pub not_selected: u64,
    /// Foreign records among the selected.
    pub not_pipelines: u64,
    /// Selected letters the ledger has.
    pub already_replayed: u64,
    /// Selected letters at the replay limit.
    pub at_replay_limit: u64,
    /// Transactions committed.
    pub transactions: u64,
}

impl ReplayCounts {
    fn count(&mut self, decision: Result<(), Skip>) {
        self.read += 1;
        *match decision {
            Ok(()) => &mut self.replayed,
            Err(Skip::NotSelected) => &mut self.not_selected,
            Err(Skip::NotPipelines) => &mut self.not_pipelines,
            Err(Skip::AlreadyReplayed) => &mut self.already_replayed,
            Err(Skip::AtReplayLimit) => &mut self.at_replay_limit,
        } += 1;
    }
}

/// Where a replay reads from and writes to, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// DLQ topic.
    pub dlq_topic: String,
    /// Target topic.
    pub target: String,
    /// Ledger topic.
    pub ledger_topic: String,
    /// The selection, described.
    pub selection: String,
    /// Count only.
    pub dry_run: bool,
    /// The replay limit.
    pub max_replays: u32,
}

impl Plan {
    /// The closing line: one sentence, or one JSON object with `--json`.
    pub fn report(&self, c: &ReplayCounts, as_json: bool) -> String {
        if as_json {
            return json!({
                "dry_run": self.dry_run,
                "dlq_topic": self.dlq_topic,
                "target": self.target,
                "selection": self.selection,
                "read": c.read,
                "replayed": c.replayed,
                "not_selected": c.not_selected,
                "not_pipelines": c.not_pipelines,
                "already_replayed": c.already_replayed,
                "at_replay_limit": c.at_replay_limit,
                "max_replays": self.max_replays,
                "transactions": c.transactions,
            })
            .to_string();
        }
        let verb = if self.dry_run {
            "dry run: would replay"
        } else {
            "replayed"
        };
        format!(
            "{verb} {} of {} dead letters from {} to {} (selection: {}); skipped: {} not selected, \
             {} already replayed to {}, {} at the limit of {} replays, {} not the pipeline's",
            c.replayed,
            c.read,
            self.dlq_topic,
            self.target,
            self.selection,
            c.not_selected,
            c.already_replayed,
            self.target,
            c.at_replay_limit,
            self.max_replays,
            c.not_pipelines
        )
    }
}

impl Plan {
    /// The plan of a replay; a target or ledger that would feed the DLQ back into itself is an
    /// error.
    fn new(args: &ReplayArgs, filter: &Filter) -> anyhow::Result<Plan> {
        let dlq_topic = args.source.dlq.name.clone();
        let plan = Plan {
            target: args.to.clone().unwrap_or_else(|| args.input.name.clone()),
            ledger_topic: args
                .ledger_topic
                .clone()
                .unwrap_or_else(|| format!("{dlq_topic}-replays")),
            dlq_topic,
            selection: filter.describe(),
            dry_run: args.dry_run,
            max_replays: args.max_replays,
        };
        if plan.target == plan.dlq_topic || plan.ledger_topic == plan.dlq_topic {
            bail!(
                "replaying {} into itself: pass --to or --input-topic with the pipeline's input topic",
                plan.dlq_topic
            );
        }
        if plan.ledger_topic == plan.target {
            bail!(
                "--ledger-topic must differ from the replay target {}",
                plan.target
            );
        }
        Ok(plan)
    }
}

/// Runs `dlq replay` and prints its closing line.
pub fn run(args: &ReplayArgs, now_ms: i64) -> anyhow::Result<()> {
    let source = &args.source;
    let filter = Filter::new(&args.filter, now_ms);
    let plan = Plan::new(args, &filter)?;
    if partition_count(&source.kafka, &plan.target, source.timeout)? == 0 {
        bail!("replay target topic {} does not exist", plan.target);
    }
    let mut replayer = if plan.dry_run {
        None
    } else {
        Some(Replayer::start(source, &plan)?)
    };
    // After init_transactions (see the module doc).
    let ledger = read_ledger(source, &plan)?;
    let mut reader = open_reader(source, &plan.dlq_topic, false)?;
    let mut counts = ReplayCounts::default();
    let selected = |letter: &DeadLetter<'_>| decide(letter, &filter, &ledger, plan.max_replays);
    let result = replay_letters(&mut reader, selected, replayer.as_mut(), &mut counts);
    if let Some(r) = replayer.as_mut() {
        counts.transactions = r.transactions;
        if result.is_err() {
            r.abort();
        }
    }
    result?;
    println!("{}", plan.report(&counts, args.json));
    Ok(())
}

/// Reads the DLQ to its end, sending the letters `decide` lets through (none with `--dry-run`,
/// when there is no replayer), and commits the last chunk; a progress bar follows on a terminal.
fn replay_letters(
    reader: &mut TopicReader,
    decide: impl Fn(&DeadLetter<'_>) -> Result<(), Skip>,
    mut replayer: Option<&mut Replayer>,
    counts: &mut ReplayCounts,
) -> anyhow::Result<()> {
    let bar = progress_bar(reader.total());
    while let Some(m) = reader.next_record()? {
        let letter = dead_letter(&m);
        let decision = decide(&letter);
        match (decision, replayer.as_deref_mut()) {
            (Ok(()), Some(r)) => r.send(&letter)?,
            // A long stretch of letters that are not replayed must not outlive the open
            // transaction's timeout.
            (Err(_), Some(r)) => r.commit_if_old()?,
            (_, None) => {}
        }
        counts.count(decision);
        bar.inc(1);
        if counts.read % 256 == 0 {
            bar.set_message(format!("{} replayed", counts.replayed));
        }
    }
    bar.finish_and_clear();
    match replayer {
        Some(r) => r.commit(),
        None => Ok(()),
    }
}

/// The ledger's entries for this DLQ and target (none when the ledger topic does not exist).
fn read_ledger(source: &SourceArgs, plan: &Plan) -> anyhow::Result<Ledger> {
    let mut ledger = Ledger::default();
    let mut reader = open_reader(source, &plan.ledger_topic, true)?;
    while let Some(m) = reader.next_record()? {
        use rdkafka::message::Message as _;
        ledger.add_json(m.payload(), &plan.dlq_topic, &plan.target);
    }
    if ledger.skipped() > 0 {
        log::warn!(
            "{}: skipped {} records that are not ledger entries",
            plan.ledger_topic,
            ledger.skipped()
        );
    }
    log::debug!(
        "{}: {} letters already replayed to {}",
        plan.ledger_topic,
        ledger.len(),
        plan.target
    );
    Ok(ledger)
}

/// A progress bar over the DLQ's offsets on stderr, hidden when stderr is not a terminal.
fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{elapsed_precise} {wide_bar} {pos}/{len} read, {msg}")
    {
        bar.set_style(style);
    }
    bar
}

/// The transactional producer of a replay, with the chunk being written.
struct Replayer {
    producer: BaseProducer<ReplayContext>,
    plan: Plan,
    /// Letters sent in the open transaction; `None` when none is open.
    chunk: Option<(Ledger, Instant)>,
    transactions: u64,
    timeout: Duration,
}

impl Replayer {
    /// Creates the ledger topic if needed and initializes the transactional producer.
    fn start(source: &SourceArgs, plan: &Plan) -> anyhow::Result<Replayer> {
        let kafka = &source.kafka;
        // One partition is plenty (a few records per transaction); kept forever, since a
        // forgotten entry would let its letters be replayed again.
        crate::kafka::admin::create_topic_if_missing(
            &kafka.brokers,
            &kafka.properties,
            &plan.ledger_topic,
            1,
            -1,
            &[("retention.ms", "-1"), ("cleanup.policy", "delete")],
        )
        .with_context(|| format!("creating the replay ledger topic {}", plan.ledger_topic))?;
        let transactional_id = format!("kafka-pipeline-dlq-replay.{}", plan.dlq_topic);
        let producer: BaseProducer<ReplayContext> = client_config(
            &kafka.brokers,
            "kafka-pipeline-dlq-replay",
            &[
                ("transactional.id", transactional_id.as_str()),
                ("linger.ms", "5"),
                ("partitioner", "murmur2_random"),
            ],
            &kafka.properties,
        )
        .create_with_context(ReplayContext::default())
        .map_err(redact_config_error)
        .with_context(|| format!("creating a Kafka producer for {}", kafka.brokers))?;
        producer
            .init_transactions(source.timeout)
            .context("initializing the replay transaction")?;
        Ok(Replayer {
            producer,
            plan: plan.clone(),
            chunk: None,
            transactions: 0,
            timeout: source.timeout,
        })
    }

    /// Sends one letter in the open transaction (beginning one if needed); commits the chunk
    /// when it is full or old.
    fn send(&mut self, letter: &DeadLetter<'_>) -> anyhow::Result<()> {
        if self.chunk.is_none() {
            self.producer
                .begin_transaction()
                .context("beginning a replay transaction")?;
            self.chunk = Some((Ledger::default(), Instant::now()));
        }
        let at = (letter.partition, letter.offset);
        let mut record = BaseRecord::with_opaque_to(&self.plan.target, Box::new(at))
            .headers(replay_headers(letter, &self.plan.dlq_topic));
        if let Some(key) = letter.key {
            record = record.key(key);
        }
        if let Some(value) = letter.value {
            record = record.payload(value);
        }
        self.produce(record)
            .with_context(|| format!("replaying dead letter {}/{}", at.0, at.1))?;
        let (ledger, started) = self.chunk.as_mut().expect("a transaction is open");
        ledger.insert(at.0, at.1);
        if ledger.len() >= CHUNK_LETTERS || started.elapsed() >= CHUNK_MAX_AGE {
            self.commit()?;
        }
        Ok(())
    }

    /// Commits the open transaction once it is [`CHUNK_MAX_AGE`] old.
    fn commit_if_old(&mut self) -> anyhow::Result<()> {
        match &self.chunk {
            Some((_, started)) if started.elapsed() >= CHUNK_MAX_AGE => self.commit(),
            _ => Ok(()),
        }
    }

    /// Sends a record, waiting while the producer's queue is full.
    fn produce(
        &self,
        mut record: BaseRecord<'_, [u8], [u8], Box<(i32, i64)>>,
    ) -> Result<(), KafkaError> {
        loop {
            match self.producer.send(record) {
                Ok(()) => {
                    self.producer.poll(Duration::ZERO);
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(100));
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Writes the chunk's ledger entries and commits the open transaction, if any.
    fn commit(&mut self) -> anyhow::Result<()> {
        let Some((ledger, _)) = self.chunk.take() else {
            return Ok(());
        };
        let plan = &self.plan;
        let now = super::unix_ms();
        for entry in ledger.entries(&plan.dlq_topic, &plan.target, now, &plan.selection) {
            let value = serde_json::to_vec(&entry).context("encoding a ledger entry")?;
            let record = BaseRecord::with_opaque_to(&plan.ledger_topic, Box::new((-1, -1)))
                .key(plan.target.as_bytes())
                .payload(&value[..]);
            self.produce(record)
                .with_context(|| format!("writing the replay ledger {}", plan.ledger_topic))?;
        }
        if let Err(e) = self.producer.commit_transaction(self.timeout) {
            // Not left open: an open transaction holds read_committed readers of the target
            // until its timeout.
            if let Err(abort) = self.producer.abort_transaction(self.timeout) {
                log::warn!("aborting the failed replay transaction: {abort}");
            }
            return Err(match self.producer.context().first_failure() {
                Some(failure) => anyhow!("committing the replay: {e} ({failure})"),
                None => anyhow!("committing the replay: {e}"),
            });
        }
        self.transactions += 1;
        log::debug!("committed a replay transaction of {} letters", ledger.len());
        Ok(())
    }

    /// Rolls back the open transaction after an error (best effort: the error is what counts).
    fn abort(&mut self) {
        if self.chunk.take().is_some() {
            if let Err(e) = self.producer.abort_transaction(self.timeout) {
                log::warn!("aborting the replay transaction: {e}");
            }
        }
    }
}

/// Remembers the first failed delivery, to say which letter could not be replayed.
struct ReplayContext {
    first_failure: Mutex<Option<String>>,
    log: ClientLog,
}

impl Default for ReplayContext {
    fn default() -> Self {
        ReplayContext {
            first_failure: Mutex::new(None),
            log: ClientLog::new("replay producer"),
        }
    }
}

impl ReplayContext {
    fn first_failure(&self) -> Option<String> {
        self.first_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ClientContext for ReplayContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.log.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log.error(error, reason);
    }
}

impl ProducerContext for ReplayContext {
    type DeliveryOpaque = Box<(i32, i64)>;

    fn delivery(&self, result: &DeliveryResult<'_>, at: Self::DeliveryOpaque) {
        if let Err((e, _)) = result {
            let mut first = self.first_failure.lock().unwrap_or_else(|e| e.into_inner());
            if first.is_none() {
                *first = Some(match *at {
                    (-1, -1) => format!("ledger entry: {e}"),
                    (p, o) => format!("dead letter {p}/{o}: {e}"),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::message::Headers as _;

    use super::super::letter::tests::letter;
    use super::*;

    fn headers(h: &OwnedHeaders) -> Vec<(String, Option<String>)> {
        h.iter()
            .map(|h| {
                (
                    h.key.to_owned(),
                    h.value.map(|v| String::from_utf8_lossy(v).into_owned()),
                )
            })
            .collect()
    }

    #[test]
    fn replay_headers_drop_error_headers_and_count_up() {
        let l = letter(41, &[("trace", Some(b"t1")), ("empty", None)]);
        let h = headers(&replay_headers(&l, "user-login-dlq"));
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            h,
            vec![
                ("trace".into(), s("t1")),
                ("empty".into(), None),
                (HEADER_REPLAY_DLQ_TOPIC.into(), s("user-login-dlq")),
                (HEADER_REPLAY_DLQ_PARTITION.into(), s("0")),
                (HEADER_REPLAY_DLQ_OFFSET.into(), s("41")),
                (HEADER_REPLAY_COUNT.into(), s("1")),
            ]
        );
        // A replayed record that failed again: its old replay headers are replaced.
        let again = letter(
            99,
            &[
                ("trace", Some(b"t1")),
                (HEADER_REPLAY_DLQ_TOPIC, Some(b"user-login-dlq")),
                (HEADER_REPLAY_DLQ_PARTITION, Some(b"0")),
                (HEADER_REPLAY_DLQ_OFFSET, Some(b"41")),
                (HEADER_REPLAY_COUNT, Some(b"1")),
            ],
        );
        let h = headers(&replay_headers(&again, "user-login-dlq"));
        assert_eq!(h.len(), 5, "{h:?}");
        assert_eq!(h[3], (HEADER_REPLAY_DLQ_OFFSET.into(), s("99")));
        assert_eq!(h[4], (HEADER_REPLAY_COUNT.into(), s("2")));
    }

    #[test]
    fn decide_in_order_filter_foreign_ledger_limit() {
        let all = Filter::default();
        let mut ledger = Ledger::default();
        let l = letter(5, &[]);
        assert_eq!(decide(&l, &all, &ledger, 3), Ok(()));
        let other_code = Filter {
            codes: vec!["invalid_json".into()],
            ..Filter::default()
        };
        assert_eq!(decide(&l, &other_code, &ledger, 3), Err(Skip::NotSelected));
        ledger.insert(0, 5);
        assert_eq!(decide(&l, &all, &ledger, 3), Err(Skip::AlreadyReplayed));
        assert_eq!(decide(&letter(6, &[]), &all, &ledger, 3), Ok(()));
        let tired = letter(7, &[(HEADER_REPLAY_COUNT, Some(b"3"))]);
        assert_eq!(decide(&tired, &all, &ledger, 3), Err(Skip::AtReplayLimit));
        assert_eq!(decide(&tired, &all, &ledger, 4), Ok(()));
        let foreign = DeadLetter {
            headers: vec![],
            ..letter(8, &[])
        };
        assert_eq!(decide(&foreign, &all, &ledger, 3), Err(Skip::NotPipelines));
    }

    #[test]
    fn report_says_what_was_skipped() {
        let plan = Plan {
            dlq_topic: "dlq".into(),
            target: "in".into(),
            ledger_topic: "dlq-replays".into(),
            selection: "--code missing_field".into(),
            dry_run: true,
            max_replays: 3,
        };
        let mut c = ReplayCounts::default();
        for d in [
            Ok(()),
            Ok(()),
            Err(Skip::NotSelected),
            Err(Skip::NotPipelines),
            Err(Skip::AlreadyReplayed),
            Err(Skip::AtReplayLimit),
        ] {
            c.count(d);
        }
        assert_eq!(
            plan.report(&c, false),
            "dry run: would replay 2 of 6 dead letters from dlq to in (selection: --code \
             missing_field); skipped: 1 not selected, 1 already replayed to in, 1 at the limit \
             of 3 replays, 1 not the pipeline's"
        );
        let j: serde_json::Value = serde_json::from_str(&plan.report(&c, true)).unwrap();
        assert_eq!(j["replayed"], 2);
        assert_eq!(j["read"], 6);
        assert_eq!(j["dry_run"], true);
    }
}
