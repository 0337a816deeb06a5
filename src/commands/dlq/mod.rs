//! `kafka-pipeline dlq`: the dead-letter topic triaged (`summary`, `show`) and, once the cause
//! is fixed, replayed (`replay`).
//!
//! All three read the DLQ topic from the beginning to its end offsets with a group-less
//! consumer ([`crate::kafka::reader`]), so they change nothing there and can run at any time, next to the
//! pipeline. Each record is looked at as a [`DeadLetter`] ([`letter`]): code, field, reason,
//! source position and replay count come from its headers, and a record without the pipeline's
//! error headers is reported as code `(none)` rather than failing the command. [`filter`]
//! selects letters by code, field and time; [`summary`] groups and counts them; [`show`] and
//! [`render`] print them safely; [`replay`] sends them back, exactly once per target thanks to
//! the transactional [`ledger`].
//!
//! The connection flags are those of `run` (`--brokers`, `-X`, `--dlq-topic`, `--config` and
//! the `KAFKA_PIPELINE_*` variables), so the same file and environment that configure the
//! pipeline point `dlq` at its dead letters.

pub(crate) mod filter;
pub(crate) mod ledger;
pub(crate) mod letter;
pub(crate) mod render;
pub(crate) mod replay;
pub(crate) mod show;
pub(crate) mod summary;

use std::io::Write as _;

use anyhow::Context as _;

use self::filter::Filter;
use self::letter::dead_letter;
pub use self::letter::DeadLetter;
use self::summary::Summary;
use crate::cli::dlq::{DlqArgs, DlqCommand, ShowArgs, SourceArgs, SummaryArgs};
use crate::kafka::reader::{Reading, TopicReader};

/// Opens a snapshot reader of `topic` (the dead letters, or the replay ledger) with the
/// connection and timeout of `source`.
fn open_reader(source: &SourceArgs, topic: &str, missing_ok: bool) -> anyhow::Result<TopicReader> {
    let client = "kafka-pipeline-dlq";
    TopicReader::open(
        &source.kafka,
        client,
        topic,
        Reading::Snapshot,
        source.timeout,
        missing_ok,
    )
}

/// Runs a `dlq` subcommand.
pub fn run(args: DlqArgs) -> anyhow::Result<()> {
    let now = unix_ms();
    match args.command {
        DlqCommand::Summary(a) => summarize(&a, now),
        DlqCommand::Show(a) => show_letters(&a, now),
        DlqCommand::Replay(a) => replay::run(&a, now),
    }
}

/// `dlq summary`.
fn summarize(args: &SummaryArgs, now_ms: i64) -> anyhow::Result<()> {
    let source = &args.source;
    let filter = Filter::new(&args.filter, now_ms);
    let mut reader = open_reader(source, &source.dlq.name, false)?;
    let mut summary = Summary::new(args.by);
    while let Some(m) = reader.next_record()? {
        let letter = dead_letter(&m);
        if filter.matches(&letter) {
            summary.add(&letter);
        }
    }
    let text = if args.json {
        summary.to_json(&source.dlq.name).to_string() + "\n"
    } else {
        summary.to_table(&source.dlq.name)
    };
    print_out(&text)?;
    Ok(())
}

/// `dlq show`: prints while reading, then how many matched.
fn show_letters(args: &ShowArgs, now_ms: i64) -> anyhow::Result<()> {
    let source = &args.source;
    let filter = Filter::new(&args.filter, now_ms);
    let mut reader = open_reader(source, &source.dlq.name, false)?;
    let (mut read, mut matched) = (0u64, 0u64);
    while let Some(m) = reader.next_record()? {
        read += 1;
        let letter = dead_letter(&m);
        if !filter.matches(&letter) {
            continue;
        }
        matched += 1;
        if matched <= args.limit && !print_out(&show::render(&letter, &source.dlq.name))? {
            return Ok(());
        }
    }
    print_out(&format!(
        "{} of {matched} matching dead letters shown ({read} read from {}, selection: {})\n",
        matched.min(args.limit),
        source.dlq.name,
        filter.describe()
    ))?;
    Ok(())
}

/// Writes to stdout; `Ok(false)` when stdout was closed (`| head`), which ends the command
/// quietly.
fn print_out(text: &str) -> anyhow::Result<bool> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e).context("writing to stdout"),
    }
}

/// Milliseconds since the epoch, now.
pub(crate) fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
