//! The fault-injection suite's helper (`scripts/chaos.sh`): accounts for every input record of
//! a pipeline run, and the small broker chores the suite needs.
//!
//! ```text
//! chaos account --input IN --output OUT --dlq DLQ [--brokers B] [--group G]
//!               [--max-duplicates N] [--require-committed] [--committed-only] [--show N]
//!               [--output-rejected]
//! chaos create-topic TOPIC PARTITIONS [key=value …]   [--brokers B] [--replication-factor N]
//! chaos alter-topic TOPIC key=value …                 [--brokers B]
//! chaos delete-topic TOPIC …                          [--brokers B]
//! chaos lag --group G --topic T                       [--brokers B]
//!     (prints `LAG <total lag> committed=<sum of committed offsets> p0=<lag> …`)
//! chaos wait-lag --group G --topic T --timeout SECS   [--brokers B]  (exit 1 on timeout)
//! chaos wait-stable --topic T … --timeout SECS        [--brokers B]  (exit 1 on timeout)
//!     (until no transaction is open on T: every partition's last stable offset is its high
//!     watermark, so a read_committed reader can read all of it; `STABLE after N ms`)
//! chaos produce-corpus --topic T --dir tests/data [--big] [--brokers B]
//! chaos produce-poison --topic T --sizes 1020000,1048400 [--rounds N] [--interval-ms MS]
//!     (records of those value sizes, invalid JSON, labelled `too_large`; see below)
//! chaos leaders --topic T                             [--brokers B]
//!     (one `partition leader end` line per partition; leader -1: none)
//! chaos watch-ends --topic T [--interval-ms 200]      [--brokers B]
//!     (until killed: `unix_ms partition end` lines, one thread per partition)
//! chaos recovery --ends FILE --at UNIX_MS [--until UNIX_MS]
//!     (from watch-ends lines: how long the output took to flow again after UNIX_MS)
//! ```
//!
//! Every reader here uses `isolation.level=read_committed` (librdkafka's default, stated):
//! records of aborted or open transactions are not read, and the end offsets are the last
//! stable offsets, so exactly-once runs are accounted as downstream readers see them.
//!
//! ## `recovery`
//!
//! For a fault injected at `--at` (a `kill -9` of a broker), from the output topic's end
//! offsets sampled by `watch-ends`: `first` is the time to the first output delivered on any
//! partition afterwards (often output that was in flight), `recover` the time until output
//! flows again on every partition that stalled (went over 1 s without growing; named in `slow`
//! with their longest stall), and `gap` the longest time without any output on any partition
//! between `--at` and `--until`. Printed as `RECOVERY first_ms=… recover_ms=… gap_ms=…
//! slow=p:ms,…`; a partition that never grows again gives `recover_ms=never`.
//!
//! ## `account`
//!
//! Every input record has a unique id, its (partition, offset). The pipeline writes that id into
//! each record it derives: `__pipeline.source` (`topic/partition/offset`) on `processed_data`,
//! `__pipeline.errors.partition`/`offset` on dead letters. What each input record *should*
//! become is taken from the input itself, not from the pipeline's code: the `loadgen.expect`
//! header that `kafka-pipeline loadgen --label` (and the suite's corpus producer) writes, built
//! from how the record was made (`valid` or the expected error code). Records without that
//! header are only checked for being routed exactly once.
//!
//! Two kinds of dead letter come from the producer, not from the input:
//! - an **`output_rejected`** letter (code `output_rejected`) is a processed record that the
//!   output topic refused for good (too large for its `max.message.bytes`): its value is the
//!   processed record, its `__pipeline.errors.*` headers the input's coordinates. With
//!   `--output-rejected` such a letter routes a valid record (the run made the output refuse
//!   it on purpose); without, it is a misrouted valid record. Counted as `rejected`.
//! - a **reduced** letter (header `__pipeline.errors.truncated`) is a dead letter the
//!   dead-letter topic refused whole, written without its value: it is accounted by its
//!   `__pipeline.errors.*` headers like any other. Counted as `reduced`.
//!
//! Counts, per run:
//! - **lost**: an input record with no output and no dead letter;
//! - **misrouted**: a record expected valid that reached the DLQ, or expected invalid that
//!   reached the output;
//! - **wrong code**: a dead letter whose `__pipeline.errors.code` differs from the expected code;
//! - **duplicates**: derived records beyond the first, summed over input records;
//! - **phantoms**: derived records that point at no input record (wrong topic or offset);
//! - **committed vs end**: with `--group`, the group's committed offset of every input partition
//!   against the partition's end offset (lag).
//!
//! The last line is machine-readable (`ACCOUNT key=value …`). Exit code 1 when anything was
//! lost, misrouted, wrongly coded or phantom, when duplicates exceed `--max-duplicates`, or when
//! `--require-committed` is given and a partition's committed offset is not its end offset.
//! Reading is one `BaseConsumer` assigned to every partition (no group, nothing committed); a
//! million records take a few seconds. `--committed-only` accounts only for the input records
//! below the group's committed offsets (read first), so it can run while pipelines are still
//! running: a committed record with no output is lost for good.
//!
//! ## `produce-poison`
//!
//! Poison records for the `poison` scenario: `--rounds` times (spread `--interval-ms` apart),
//! one record of each of `--sizes` value bytes, invalid JSON (an object that never closes),
//! labelled `too_large` (over the pipeline's `--max-payload-bytes`). The producer allows
//! 2,000,000-byte records, so a size up to what the topic takes (a default topic: 1,048,588
//! bytes for the whole batch, ~1,048,450 of value) reaches the broker; a record the topic
//! refuses fails the command.
//!
//! ## `produce-corpus`
//!
//! Sends the bad-input corpus (`DIR/invalid/<code>--<what>`, `DIR/valid.jsonl`) with a
//! `loadgen.expect` header from the file name, plus cases generated here rather than committed:
//! a tombstone, and with `--big` a 1 MB payload (`too_large`) and 100,000-deep nesting under the
//! size limit (`too_deep`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};
use kafka_pipeline::cli::values::parse_property;
use kafka_pipeline::kafka::{admin, client::client_config};
use kafka_pipeline::testing::{read_corpus, Login};
use kafka_pipeline::transform::headers::HEADER_ERROR_TRUNCATED;
use kafka_pipeline::transform::ErrorCode;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

/// Expectation byte for a record without a label.
const UNKNOWN: u8 = u8::MAX;
/// Expectation byte for a valid record; error codes are `1 + ErrorCode::index()`.
const VALID: u8 = 0;

/// Per input partition: the first offset read and one [`Fate`] per offset from there.
type Fates = BTreeMap<i32, (i64, Vec<Fate>)>;

/// What became of one input record.
#[derive(Clone, Copy, Default)]
struct Fate {
    present: bool,
    /// Outside the accounted range (`--committed-only`: at or after the committed offset);
    /// derived records pointing here are neither counted nor phantoms.
    out_of_scope: bool,
    expect: u8,
    outputs: u32,
    dead_letters: u32,
    /// Of the dead letters, `output_rejected` ones.
    rejected: u32,
    wrong_code: bool,
}

/// The helper's command line: one subcommand per chore, `--brokers` anywhere.
#[derive(Parser)]
#[command(
    name = "chaos",
    about = "The fault-injection suite's helper",
    arg_required_else_help = true
)]
struct Cli {
    /// Kafka bootstrap servers, comma-separated host:port list.
    #[arg(long, global = true, default_value = "localhost:29092")]
    brokers: String,

    #[command(subcommand)]
    chore: Chore,
}

#[derive(Subcommand)]
enum Chore {
    /// Accounts for every input record of a run: lost, misrouted, wrong code, duplicates,
    /// phantoms, committed offsets (see the module doc).
    Account(AccountArgs),
    /// Creates TOPIC with PARTITIONS partitions and the given topic configs, unless it exists.
    CreateTopic {
        topic: String,
        partitions: i32,
        /// Topic configs.
        #[arg(value_name = "KEY=VALUE", value_parser = parse_property)]
        configs: Vec<(String, String)>,
        #[arg(long, default_value_t = 1)]
        replication_factor: i32,
    },
    /// Sets topic configs of TOPIC, keeping its other dynamic configs.
    AlterTopic {
        topic: String,
        #[arg(value_name = "KEY=VALUE", value_parser = parse_property)]
        configs: Vec<(String, String)>,
    },
    /// Deletes the topics (one that does not exist is no error).
    DeleteTopic { topics: Vec<String> },
    /// Prints `LAG <total lag> committed=<sum of committed offsets> p0=<lag> …`.
    Lag(LagArgs),
    /// Waits until the lag is 0 and prints the `lag` line; exit 1 on timeout.
    WaitLag {
        #[command(flatten)]
        lag: LagArgs,
        #[arg(long, value_name = "SECS")]
        timeout: u64,
    },
    /// Waits until no transaction is open on the topics (last stable offset = high watermark
    /// on every partition) and prints `STABLE after N ms`; exit 1 on timeout.
    WaitStable {
        #[arg(long = "topic", required = true)]
        topics: Vec<String>,
        #[arg(long, value_name = "SECS")]
        timeout: u64,
    },
    /// Sends the corpus in DIR with a `loadgen.expect` header per record (see the module doc).
    ProduceCorpus {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        dir: PathBuf,
        /// Also a 1 MB payload and 100,000-deep nesting.
        #[arg(long)]
        big: bool,
    },
    /// Sends records of the given value sizes, invalid JSON, labelled `too_large`.
    ProducePoison {
        #[arg(long)]
        topic: String,
        /// Value sizes in bytes, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        sizes: Vec<usize>,
        /// How many times to send one record of each size.
        #[arg(long, default_value_t = 1)]
        rounds: u32,
        /// Pause between rounds.
        #[arg(long, value_name = "MS", default_value_t = 0)]
        interval_ms: u64,
    },
    /// One `partition leader end` line per partition (leader -1: none).
    Leaders {
        #[arg(long)]
        topic: String,
    },
    /// Until killed: `unix_ms partition end` lines, one thread per partition.
    WatchEnds {
        #[arg(long)]
        topic: String,
        #[arg(long, default_value_t = 200)]
        interval_ms: u64,
    },
    /// From watch-ends lines: how long the output took to flow again after UNIX_MS.
    Recovery {
        /// The output of `watch-ends`.
        #[arg(long, value_name = "FILE")]
        ends: PathBuf,
        #[arg(long, value_name = "UNIX_MS")]
        at: u64,
        #[arg(long, value_name = "UNIX_MS")]
        until: Option<u64>,
    },
}

#[derive(Args)]
struct AccountArgs {
    #[arg(long)]
    input: String,
    #[arg(long)]
    output: String,
    #[arg(long)]
    dlq: String,
    /// The pipeline's group: its committed offsets are checked against the end offsets.
    #[arg(long)]
    group: Option<String>,
    /// Exit 1 when the duplicates exceed N.
    #[arg(long, value_name = "N")]
    max_duplicates: Option<u64>,
    /// Exit 1 unless every input partition's committed offset is its end offset.
    #[arg(long)]
    require_committed: bool,
    /// Account only for the input records below the group's committed offsets.
    #[arg(long, requires = "group")]
    committed_only: bool,
    /// Examples to print per problem.
    #[arg(long, value_name = "N", default_value_t = 5)]
    show: usize,
    /// A valid record may be routed by an `output_rejected` dead letter (the output topic
    /// refused the processed record for good) instead of an output.
    #[arg(long)]
    output_rejected: bool,
}

#[derive(Args)]
struct LagArgs {
    #[arg(long)]
    group: String,
    #[arg(long)]
    topic: String,
}

/// The client id of every client here.
const CLIENT_ID: &str = "kafka-pipeline-chaos";

/// Reads every record of `topic` up to the end offsets seen at the start, calling `f` on each.
/// Returns the end offsets (partition → high watermark).
fn read_topic(
    brokers: &str,
    topic: &str,
    mut f: impl FnMut(&BorrowedMessage<'_>),
) -> anyhow::Result<BTreeMap<i32, (i64, i64)>> {
    let defaults = [
        ("group.id", "kafka-pipeline-account"),
        ("isolation.level", "read_committed"),
        ("enable.auto.commit", "false"),
        ("enable.partition.eof", "false"),
        ("fetch.message.max.bytes", "10485760"),
        ("fetch.max.bytes", "104857600"),
        ("queued.max.messages.kbytes", "262144"),
    ];
    let consumer: BaseConsumer = client_config(brokers, CLIENT_ID, &defaults, &[])
        .create()
        .context("consumer")?;
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .with_context(|| format!("metadata of {topic}"))?;
    let partitions = md
        .topics()
        .first()
        .map(|t| t.partitions().len() as i32)
        .unwrap_or(0);
    if partitions == 0 {
        bail!("topic {topic} does not exist or has no partitions");
    }
    let mut marks = BTreeMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .with_context(|| format!("watermarks of {topic}/{p}"))?;
        marks.insert(p, (low, high));
        if high > low {
            tpl.add_partition_offset(topic, p, Offset::Offset(low))?;
        }
    }
    if tpl.count() == 0 {
        return Ok(marks);
    }
    consumer.assign(&tpl)?;
    // Next offset to read, per partition still being read.
    let mut pending: BTreeMap<i32, i64> = marks
        .iter()
        .filter(|(_, (low, high))| high > low)
        .map(|(&p, &(low, _))| (p, low))
        .collect();
    let mut idle_since = Instant::now();
    while !pending.is_empty() {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                idle_since = Instant::now();
                let (p, o) = (m.partition(), m.offset());
                let high = marks[&p].1;
                if o < high {
                    f(&m);
                }
                if o + 1 >= high {
                    pending.remove(&p);
                } else if let Some(next) = pending.get_mut(&p) {
                    *next = o + 1;
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                pending.remove(&p);
            }
            Some(Err(e)) => bail!("reading {topic}: {e}"),
            None => {
                // Transaction markers or compaction can leave the last offsets without a
                // record: the consumer's position tells when a partition is really done.
                if let Ok(pos) = consumer.position() {
                    for e in pos.elements_for_topic(topic) {
                        if let Offset::Offset(o) = e.offset() {
                            if o >= marks[&e.partition()].1 {
                                pending.remove(&e.partition());
                            }
                        }
                    }
                }
                if idle_since.elapsed() > Duration::from_secs(30) {
                    bail!("reading {topic}: no progress for 30 s; still pending {pending:?}");
                }
            }
        }
    }
    Ok(marks)
}

fn header<'a>(m: &'a BorrowedMessage<'_>, name: &str) -> Option<&'a [u8]> {
    m.headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
}

fn header_num(m: &BorrowedMessage<'_>, name: &str) -> Option<i64> {
    std::str::from_utf8(header(m, name)?).ok()?.parse().ok()
}

/// The input record a derived record points at, if it exists.
fn locate(fates: &mut Fates, p: Option<i64>, o: Option<i64>) -> Option<&mut Fate> {
    let (low, list) = fates.get_mut(&i32::try_from(p?).ok()?)?;
    let index = usize::try_from(o? - *low).ok()?;
    list.get_mut(index).filter(|f| f.present)
}

fn expect_byte(label: Option<&[u8]>) -> u8 {
    match label.and_then(|l| std::str::from_utf8(l).ok()) {
        Some("valid") => VALID,
        Some(code) => ErrorCode::parse(code).map_or(UNKNOWN, |c| 1 + c.index() as u8),
        None => UNKNOWN,
    }
}

fn expect_name(e: u8) -> &'static str {
    match e {
        VALID => "valid",
        UNKNOWN => "unlabelled",
        code => ErrorCode::ALL[code as usize - 1].as_str(),
    }
}

#[derive(Default)]
struct Tally {
    events: u64,
    expected_valid: u64,
    expected_invalid: u64,
    unlabelled: u64,
    outputs: u64,
    dead_letters: u64,
    lost: u64,
    misrouted: u64,
    wrong_code: u64,
    duplicates: u64,
    duplicated_records: u64,
    phantoms: u64,
    /// `output_rejected` dead letters read.
    rejected: u64,
    /// Reduced dead letters read (`__pipeline.errors.truncated`).
    reduced: u64,
    examples: Vec<String>,
}

impl Tally {
    fn example(&mut self, show: usize, text: String) {
        if self.examples.len() < show {
            self.examples.push(text);
        }
    }
}

fn account(brokers: &str, args: AccountArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    // Committed offsets first: with --committed-only, everything below them must be done, and
    // its outputs were delivered before the commit, so they are below the output end offsets
    // read afterwards.
    let committed_before = match &args.group {
        Some(group) => Some(committed(brokers, group, &args.input)?),
        None => None,
    };

    // Input: one Fate per offset, per partition, starting at the low watermark.
    let mut fates: Fates = BTreeMap::new();
    let limit = |p: i32| match (&committed_before, args.committed_only) {
        (Some(c), true) => c.get(&p).copied().unwrap_or(0),
        _ => i64::MAX,
    };
    let input_marks = read_topic(brokers, &args.input, |m| {
        let (low, list) = fates
            .entry(m.partition())
            .or_insert_with(|| (m.offset(), vec![]));
        let index = (m.offset() - *low) as usize;
        if list.len() <= index {
            list.resize(
                index + 1,
                Fate {
                    expect: UNKNOWN,
                    ..Fate::default()
                },
            );
        }
        list[index].present = true;
        list[index].out_of_scope = m.offset() >= limit(m.partition());
        list[index].expect = expect_byte(header(m, "loadgen.expect"));
    })?;
    let input_read = started.elapsed();

    let mut tally = Tally::default();
    // With --committed-only, records derived from input past the committed offsets (which may
    // be past the input's end as read above) are not accounted for.
    let beyond = |p: Option<i64>, o: Option<i64>| match (p.and_then(|p| i32::try_from(p).ok()), o) {
        (Some(p), Some(o)) => o >= limit(p),
        _ => false,
    };
    let mut phantom_out = 0u64;
    let mut outputs = 0u64;
    read_topic(brokers, &args.output, |m| {
        outputs += 1;
        let source = header(m, kafka_pipeline::transform::headers::HEADER_SOURCE)
            .and_then(kafka_pipeline::transform::headers::parse_source);
        let topic_ok = source.is_some_and(|(t, _, _)| t == args.input);
        let p = source.map(|(_, p, _)| i64::from(p));
        let o = source.map(|(_, _, o)| o);
        if beyond(p, o) {
            return;
        }
        match locate(&mut fates, p, o).filter(|_| topic_ok) {
            Some(fate) => fate.outputs += 1,
            None => phantom_out += 1,
        }
    })?;
    let mut phantom_dlq = 0u64;
    let mut dead_letters = 0u64;
    let (mut rejected, mut reduced) = (0u64, 0u64);
    read_topic(brokers, &args.dlq, |m| {
        dead_letters += 1;
        let topic_ok = header(m, "__pipeline.errors.topic") == Some(args.input.as_bytes());
        let p = header_num(m, "__pipeline.errors.partition");
        let o = header_num(m, "__pipeline.errors.offset");
        if beyond(p, o) {
            return;
        }
        let code = header(m, "__pipeline.errors.code");
        let is_rejected = code == Some(ErrorCode::OutputRejected.as_str().as_bytes());
        rejected += u64::from(is_rejected);
        if header(m, HEADER_ERROR_TRUNCATED).is_some() {
            reduced += 1;
        }
        match locate(&mut fates, p, o).filter(|_| topic_ok) {
            Some(fate) => {
                fate.dead_letters += 1;
                fate.rejected += u32::from(is_rejected);
                if fate.expect != VALID
                    && fate.expect != UNKNOWN
                    && code != Some(expect_name(fate.expect).as_bytes())
                {
                    fate.wrong_code = true;
                }
            }
            None => phantom_dlq += 1,
        }
    })?;
    tally.outputs = outputs;
    tally.dead_letters = dead_letters;
    tally.phantoms = phantom_out + phantom_dlq;
    tally.rejected = rejected;
    tally.reduced = reduced;

    let mut by_expect: BTreeMap<&'static str, u64> = BTreeMap::new();
    for (&partition, (low, list)) in &fates {
        for (i, fate) in list.iter().enumerate() {
            if !fate.present || fate.out_of_scope {
                // An offset with no record (a transaction marker), or not accounted for.
                continue;
            }
            let id = format!("{}/{}", partition, low + i as i64);
            tally.events += 1;
            *by_expect.entry(expect_name(fate.expect)).or_default() += 1;
            match fate.expect {
                VALID => tally.expected_valid += 1,
                UNKNOWN => tally.unlabelled += 1,
                _ => tally.expected_invalid += 1,
            }
            let routed = fate.outputs + fate.dead_letters;
            if routed == 0 {
                tally.lost += 1;
                tally.example(
                    args.show,
                    format!("lost {id} ({})", expect_name(fate.expect)),
                );
                continue;
            }
            if routed > 1 {
                tally.duplicates += u64::from(routed - 1);
                tally.duplicated_records += 1;
            }
            // A valid record's output_rejected letter routes it, when the run allows them.
            let allowed = if args.output_rejected {
                fate.rejected
            } else {
                0
            };
            let misrouted = match fate.expect {
                VALID => fate.dead_letters > allowed,
                UNKNOWN => fate.outputs > 0 && fate.dead_letters > 0,
                _ => fate.outputs > 0,
            };
            if misrouted {
                tally.misrouted += 1;
                tally.example(
                    args.show,
                    format!(
                        "misrouted {id} ({}): {} outputs, {} dead letters",
                        expect_name(fate.expect),
                        fate.outputs,
                        fate.dead_letters
                    ),
                );
            }
            if fate.wrong_code {
                tally.wrong_code += 1;
                tally.example(
                    args.show,
                    format!("wrong code {id} (expected {})", expect_name(fate.expect)),
                );
            }
        }
    }
    let mut committed_ok = true;
    let mut lag_total = 0i64;
    let mut committed_text = String::from("-");
    if let Some(group) = &args.group {
        let committed = committed(brokers, group, &args.input)?;
        let mut parts = Vec::new();
        for (&p, &(low, high)) in &input_marks {
            // Nothing committed: fine only for an empty partition.
            let at = committed.get(&p).copied().unwrap_or(low);
            let lag = high - at;
            lag_total += lag.max(0);
            if lag != 0 {
                committed_ok = false;
            }
            parts.push(format!("p{p}={at}/{high}"));
        }
        committed_text = parts.join(",");
        println!("committed/end: {} (lag {lag_total})", parts.join(" "));
    }

    let scope = if args.committed_only {
        " (committed only)"
    } else {
        ""
    };
    println!(
        "input{scope} {} events ({} valid, {} invalid, {} unlabelled; {:?}) read in {:.1}s; \
         output {}, dlq {}; total {:.1}s",
        tally.events,
        tally.expected_valid,
        tally.expected_invalid,
        tally.unlabelled,
        by_expect,
        input_read.as_secs_f64(),
        tally.outputs,
        tally.dead_letters,
        started.elapsed().as_secs_f64()
    );
    println!(
        "lost {} | misrouted {} | wrong code {} | duplicates {} (on {} records) | phantoms {} \
         | output_rejected letters {} | reduced letters {}",
        tally.lost,
        tally.misrouted,
        tally.wrong_code,
        tally.duplicates,
        tally.duplicated_records,
        tally.phantoms,
        tally.rejected,
        tally.reduced
    );
    for e in &tally.examples {
        println!("  {e}");
    }
    let dup_ok = args
        .max_duplicates
        .is_none_or(|max| tally.duplicates <= max);
    let ok = tally.lost == 0
        && tally.misrouted == 0
        && tally.wrong_code == 0
        && tally.phantoms == 0
        && dup_ok
        && (committed_ok || !args.require_committed);
    println!(
        "ACCOUNT events={} valid={} invalid={} unlabelled={} outputs={} dlq={} lost={} \
         misrouted={} wrong_code={} duplicates={} phantoms={} rejected={} reduced={} lag={} \
         committed={} ok={}",
        tally.events,
        tally.expected_valid,
        tally.expected_invalid,
        tally.unlabelled,
        tally.outputs,
        tally.dead_letters,
        tally.lost,
        tally.misrouted,
        tally.wrong_code,
        tally.duplicates,
        tally.phantoms,
        tally.rejected,
        tally.reduced,
        if args.group.is_some() {
            lag_total.to_string()
        } else {
            "-".into()
        },
        committed_text,
        ok
    );
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}

/// The committed offsets of `group` on every partition of `topic` (absent: nothing committed).
fn committed(brokers: &str, group: &str, topic: &str) -> anyhow::Result<BTreeMap<i32, i64>> {
    let consumer: BaseConsumer =
        client_config(brokers, CLIENT_ID, &[("group.id", group)], &[]).create()?;
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    for p in md.topics().iter().flat_map(|t| t.partitions()) {
        tpl.add_partition(topic, p.id());
    }
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
    Ok(committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect())
}

/// End offset minus committed offset, per partition of `topic` (nothing committed: the whole
/// partition from its low watermark), and the sum of the committed offsets.
fn lag(brokers: &str, group: &str, topic: &str) -> anyhow::Result<(BTreeMap<i32, i64>, i64)> {
    let committed = committed(brokers, group, topic)?;
    let consumer: BaseConsumer = client_config(brokers, CLIENT_ID, &[], &[]).create()?;
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut lag = BTreeMap::new();
    for p in md.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
        let at = committed.get(&p.id()).copied().unwrap_or(low);
        lag.insert(p.id(), (high - at).max(0));
    }
    Ok((lag, committed.values().sum()))
}

/// `LAG <total> committed=<sum> p0=<lag> …`
fn lag_line((lag, committed): &(BTreeMap<i32, i64>, i64)) -> String {
    let parts: Vec<String> = lag.iter().map(|(p, l)| format!("p{p}={l}")).collect();
    format!(
        "LAG {} committed={committed} {}",
        lag.values().sum::<i64>(),
        parts.join(" ")
    )
}

fn pairs(configs: &[(String, String)]) -> Vec<(&str, &str)> {
    configs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// One corpus record: key, value, expected outcome (`valid` or an error code).
type CorpusRecord = (Vec<u8>, Option<Vec<u8>>, String);

fn corpus(dir: &Path, big: bool) -> anyhow::Result<Vec<CorpusRecord>> {
    let mut out: Vec<CorpusRecord> = read_corpus(dir)
        .map_err(anyhow::Error::msg)?
        .into_iter()
        .map(|case| {
            let expect = case.expectation().to_owned();
            (case.name.into_bytes(), Some(case.payload), expect)
        })
        .collect();
    out.push((b"generated:tombstone".to_vec(), None, "tombstone".into()));
    if big {
        // A 1 MB object: over the pipeline's default --max-payload-bytes (256 KiB).
        let mut mega = br#"{"padding": ""#.to_vec();
        mega.resize(1_000_000, b'x');
        mega.extend_from_slice(br#"", "user_id": "u"}"#);
        out.push((b"generated:1MB".to_vec(), Some(mega), "too_large".into()));
        // 100,000-deep nesting in an unknown field of an otherwise valid event (200 KB).
        let mut nesting = vec![b'['; 100_000];
        nesting.extend(std::iter::repeat_n(b']', 100_000));
        let deep = Login::default().append("nested", nesting).to_bytes();
        out.push((
            b"generated:100000-deep".to_vec(),
            Some(deep),
            "too_deep".into(),
        ));
    }
    Ok(out)
}

fn produce_corpus(brokers: &str, topic: &str, dir: &Path, big: bool) -> anyhow::Result<()> {
    let records = corpus(dir, big)?;
    let defaults = [
        ("message.max.bytes", "2000000"),
        ("enable.idempotence", "true"),
    ];
    let producer: BaseProducer = client_config(brokers, CLIENT_ID, &defaults, &[]).create()?;
    for (key, value, expect) in &records {
        let headers = OwnedHeaders::new().insert(Header {
            key: "loadgen.expect",
            value: Some(expect.as_bytes()),
        });
        let mut record: BaseRecord<'_, [u8], [u8]> =
            BaseRecord::to(topic).key(key.as_slice()).headers(headers);
        if let Some(v) = value {
            record = record.payload(v.as_slice());
        }
        producer
            .send(record)
            .map_err(|(e, _)| anyhow::anyhow!("producing to {topic}: {e}"))?;
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60))?;
    println!("produced {} corpus records to {topic}", records.len());
    Ok(())
}

/// Counts the deliveries that failed (and keeps the first error).
#[derive(Default)]
struct Deliveries {
    failed: AtomicU64,
    first: Mutex<Option<String>>,
}

impl rdkafka::ClientContext for Deliveries {}

impl rdkafka::producer::ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &rdkafka::producer::DeliveryResult<'_>, (): ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Relaxed);
            let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
            first.get_or_insert_with(|| e.to_string());
        }
    }
}

/// The poison records of `produce-poison` (see the module doc).
fn produce_poison(
    brokers: &str,
    topic: &str,
    sizes: &[usize],
    rounds: u32,
    interval: Duration,
) -> anyhow::Result<()> {
    let defaults = [
        ("message.max.bytes", "2000000"),
        ("enable.idempotence", "true"),
    ];
    let producer: BaseProducer<Deliveries> = client_config(brokers, CLIENT_ID, &defaults, &[])
        .create_with_context(Deliveries::default())?;
    let mut sent = 0usize;
    for round in 0..rounds {
        if round > 0 {
            std::thread::sleep(interval);
        }
        for &size in sizes {
            // An object that never closes: invalid JSON, but over --max-payload-bytes first.
            let mut value = br#"{"user_id": "poison", "padding": ""#.to_vec();
            value.resize(size.max(value.len()), b'x');
            let key = format!("poison-{round}-{size}");
            let headers = OwnedHeaders::new().insert(Header {
                key: "loadgen.expect",
                value: Some(&b"too_large"[..]),
            });
            producer
                .send(
                    BaseRecord::to(topic)
                        .key(key.as_bytes())
                        .payload(value.as_slice())
                        .headers(headers),
                )
                .map_err(|(e, _)| anyhow::anyhow!("producing to {topic}: {e}"))?;
            sent += 1;
        }
        producer.flush(Duration::from_secs(60))?;
    }
    let failed = producer.context().failed.load(Relaxed);
    if failed > 0 {
        let first = producer.context().first.lock().ok().and_then(|f| f.clone());
        bail!(
            "{failed} of {sent} poison records were not delivered to {topic}: {}",
            first.unwrap_or_default()
        );
    }
    println!("produced {sent} poison records ({sizes:?} bytes, {rounds} rounds) to {topic}");
    Ok(())
}

/// A consumer for metadata and end offsets (no group, read_committed end offsets).
fn offsets_client(brokers: &str) -> anyhow::Result<BaseConsumer> {
    let defaults = [("isolation.level", "read_committed")];
    Ok(client_config(brokers, CLIENT_ID, &defaults, &[]).create()?)
}

fn partition_count(consumer: &BaseConsumer, topic: &str) -> anyhow::Result<i32> {
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    match md.topics().first().map(|t| t.partitions().len() as i32) {
        Some(n) if n > 0 => Ok(n),
        _ => bail!("topic {topic} does not exist or has no partitions"),
    }
}

/// `partition leader end`, one line per partition of `topic`.
fn leaders(brokers: &str, topic: &str) -> anyhow::Result<()> {
    let consumer = offsets_client(brokers)?;
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let t = md.topics().first().context("no metadata")?;
    for p in t.partitions() {
        let (_, end) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
        println!("{} {} {end}", p.id(), p.leader());
    }
    Ok(())
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// Samples the end offset of every partition of `topic` every `interval`, one thread per
/// partition (a partition whose leader is dead only delays its own samples), until killed.
fn watch_ends(brokers: &str, topic: &str, interval: Duration) -> anyhow::Result<()> {
    let consumer = offsets_client(brokers)?;
    let partitions = partition_count(&consumer, topic)?;
    let consumer = &consumer;
    std::thread::scope(|scope| {
        for p in 0..partitions {
            scope.spawn(move || loop {
                let started = Instant::now();
                if let Ok((_, end)) = consumer.fetch_watermarks(topic, p, Duration::from_secs(1)) {
                    println!("{} {p} {end}", unix_ms());
                }
                std::thread::sleep(interval.saturating_sub(started.elapsed()));
            });
        }
    });
    Ok(())
}

/// What `recovery` reports for one fault.
#[derive(Debug, PartialEq)]
struct Recovery {
    /// Fault → first growth of any partition.
    first_ms: Option<u64>,
    /// Fault → output flowing again on every partition that stalled (`None`: one never grew
    /// again); 0 when none stalled.
    recover_ms: Option<u64>,
    /// Longest time without growth anywhere in [at, until].
    gap_ms: u64,
    /// Partitions that stalled (a gap over [`STALL_MS`]), with their longest gap.
    slow: Vec<(i32, u64)>,
}

/// A partition without growth for longer than this stalled (at 3,000 events/s over 6
/// partitions each grows at every 200 ms sample).
const STALL_MS: u64 = 1000;

/// Computes [`Recovery`] from `(unix_ms, partition, end)` samples in time order. Output that
/// was already in flight lands right after a fault, so "recovered" is not the first growth
/// but the end of each partition's longest stall in the window.
fn recovery(samples: &[(u64, i32, i64)], at: u64, until: u64) -> Recovery {
    let mut previous: BTreeMap<i32, i64> = BTreeMap::new();
    // Per partition: last growth (or the fault), longest gap, when that gap ended.
    let mut stalls: BTreeMap<i32, (u64, u64, Option<u64>)> = BTreeMap::new();
    let (mut first, mut last_growth, mut gap) = (None, at, 0u64);
    for &(t, p, end) in samples {
        if t > until {
            break;
        }
        let grew = previous.get(&p).is_some_and(|&before| end > before);
        previous.insert(p, end);
        if t <= at {
            stalls.insert(p, (at, 0, None));
            continue;
        }
        if grew {
            first.get_or_insert(t - at);
            gap = gap.max(t - last_growth);
            last_growth = t;
            if let Some((last, longest, ended)) = stalls.get_mut(&p) {
                if t - *last > *longest {
                    *longest = t - *last;
                    *ended = Some(t);
                }
                *last = t;
            }
        }
    }
    gap = gap.max(until.saturating_sub(last_growth));
    let mut recover_ms = Some(0);
    let mut slow = Vec::new();
    for (&p, &(last, longest, ended)) in &stalls {
        let open = until.saturating_sub(last);
        if open > STALL_MS && open >= longest {
            // Still stalled at the end of the window.
            recover_ms = None;
            slow.push((p, open));
        } else if longest > STALL_MS {
            let ended = ended.unwrap_or(at);
            recover_ms = recover_ms.map(|r: u64| r.max(ended - at));
            slow.push((p, longest));
        }
    }
    Recovery {
        first_ms: first,
        recover_ms,
        gap_ms: gap,
        slow,
    }
}

fn recovery_command(ends: &Path, at: u64, until: Option<u64>) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(ends).with_context(|| format!("reading {}", ends.display()))?;
    let until = until.unwrap_or(u64::MAX);
    let mut samples = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        if let (Some(t), Some(p), Some(end)) = (fields.next(), fields.next(), fields.next()) {
            if let (Ok(t), Ok(p), Ok(end)) = (t.parse(), p.parse(), end.parse()) {
                samples.push((t, p, end));
            }
        }
    }
    samples.sort_by_key(|s| s.0);
    let until = until.min(samples.last().map_or(at, |s| s.0));
    let r = recovery(&samples, at, until);
    let ms = |v: Option<u64>| v.map_or("never".to_string(), |v| v.to_string());
    let slow: Vec<String> = r.slow.iter().map(|(p, ms)| format!("p{p}:{ms}")).collect();
    println!(
        "RECOVERY first_ms={} recover_ms={} gap_ms={} slow={}",
        ms(r.first_ms),
        ms(r.recover_ms),
        r.gap_ms,
        if slow.is_empty() {
            "-".into()
        } else {
            slow.join(",")
        }
    );
    Ok(())
}

/// Waits until every partition's lag is 0 (printing the lag line), or exits 1 after `timeout`.
fn wait_lag(brokers: &str, group: &str, topic: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let lag = lag(brokers, group, topic)?;
        if lag.0.values().all(|&l| l == 0) {
            println!("{}", lag_line(&lag));
            return Ok(());
        }
        if Instant::now() > deadline {
            println!("{}", lag_line(&lag));
            eprintln!("lag did not reach 0 within {timeout:?}");
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Waits until every partition of `topics` has its last stable offset (a read_committed
/// client's end offset) at its high watermark (a read_uncommitted client's), or exits 1 after
/// `timeout`. Meaningful once nothing writes to the topics: an open transaction (a producer
/// killed with one open holds it until `transaction.timeout.ms`) keeps the two apart.
fn wait_stable(brokers: &str, topics: &[String], timeout: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    let committed = offsets_client(brokers)?;
    let uncommitted: BaseConsumer = client_config(
        brokers,
        CLIENT_ID,
        &[("isolation.level", "read_uncommitted")],
        &[],
    )
    .create()?;
    let mut partitions = Vec::new();
    for topic in topics {
        for p in 0..partition_count(&committed, topic)? {
            partitions.push((topic.as_str(), p));
        }
    }
    loop {
        let mut open = Vec::new();
        for &(topic, p) in &partitions {
            let (_, stable) = committed.fetch_watermarks(topic, p, Duration::from_secs(10))?;
            let (_, high) = uncommitted.fetch_watermarks(topic, p, Duration::from_secs(10))?;
            if stable < high {
                open.push(format!("{topic}/{p}: {stable} < {high}"));
            }
        }
        if open.is_empty() {
            println!("STABLE after {} ms", started.elapsed().as_millis());
            return Ok(());
        }
        if started.elapsed() > timeout {
            println!(
                "NOT STABLE after {} ms: {}",
                started.elapsed().as_millis(),
                open.join(", ")
            );
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn main() -> anyhow::Result<()> {
    let Cli { brokers, chore } = Cli::parse();
    let brokers = brokers.as_str();
    match chore {
        Chore::Account(args) => account(brokers, args),
        Chore::CreateTopic {
            topic,
            partitions,
            configs,
            replication_factor,
        } => {
            admin::create_topic_if_missing(
                brokers,
                &[],
                &topic,
                partitions,
                replication_factor,
                &pairs(&configs),
            )?;
            Ok(())
        }
        Chore::AlterTopic { topic, configs } => {
            admin::alter_topic_config(brokers, &[], &topic, &pairs(&configs))
        }
        Chore::DeleteTopic { topics } => {
            for topic in &topics {
                admin::delete_topic(brokers, &[], topic)?;
            }
            Ok(())
        }
        Chore::Lag(LagArgs { group, topic }) => {
            println!("{}", lag_line(&lag(brokers, &group, &topic)?));
            Ok(())
        }
        Chore::WaitLag {
            lag: LagArgs { group, topic },
            timeout,
        } => wait_lag(brokers, &group, &topic, Duration::from_secs(timeout)),
        Chore::WaitStable { topics, timeout } => {
            wait_stable(brokers, &topics, Duration::from_secs(timeout))
        }
        Chore::ProduceCorpus { topic, dir, big } => produce_corpus(brokers, &topic, &dir, big),
        Chore::ProducePoison {
            topic,
            sizes,
            rounds,
            interval_ms,
        } => produce_poison(
            brokers,
            &topic,
            &sizes,
            rounds,
            Duration::from_millis(interval_ms),
        ),
        Chore::Leaders { topic } => leaders(brokers, &topic),
        Chore::WatchEnds { topic, interval_ms } => {
            watch_ends(brokers, &topic, Duration::from_millis(interval_ms))
        }
        Chore::Recovery { ends, at, until } => recovery_command(&ends, at, until),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_is_the_end_of_the_stall_not_the_first_output() {
        // Partition 0 grows every 200 ms except between 1400 and 2000 (a short pause);
        // partition 1 grows once right after the fault (in-flight output), then stalls until
        // 4000; nothing at all grows between 1400 and 2000.
        let mut samples = vec![];
        for t in (0..=6000).step_by(200) {
            let p0 = if (1400..2000).contains(&t) {
                1200
            } else {
                t as i64
            };
            samples.push((t, 0, p0));
            let p1 = if (1200..4000).contains(&t) {
                1200
            } else {
                t as i64
            };
            samples.push((t, 1, p1));
        }
        let r = recovery(&samples, 1000, 6000);
        assert_eq!(r.first_ms, Some(200));
        assert_eq!(r.recover_ms, Some(3000), "{r:?}");
        assert_eq!(r.gap_ms, 800);
        assert_eq!(r.slow, vec![(1, 2800)]);
    }

    #[test]
    fn a_partition_that_never_grows_again_is_never_recovered() {
        let samples = [(0, 0, 5), (500, 0, 6), (1000, 0, 6), (3000, 0, 6)];
        let r = recovery(&samples, 600, 3000);
        assert_eq!(r.recover_ms, None);
        assert_eq!(r.first_ms, None);
        assert_eq!(r.gap_ms, 2400);
        assert_eq!(r.slow, vec![(0, 2400)]);
    }

    #[test]
    fn no_stall_recovers_at_once() {
        let samples: Vec<_> = (0..=20).map(|i| (i * 200, 0, i as i64)).collect();
        let r = recovery(&samples, 1000, 4000);
        assert_eq!((r.recover_ms, r.gap_ms, r.slow), (Some(0), 200, vec![]));
    }
}
