//! `kafka-pipeline insights`: reads the insights topic, merges the records of all instances by
//! window start, and prints one line per window — a compact table for people, or `--json`.
//!
//! Reading ([`crate::kafka::reader`]): every partition from the beginning, without a group, so
//! any number of readers can run. Without `--follow` it reads up to the end offsets found at
//! start (or end-of-partition), prints, and exits; with `--follow` it keeps reading and reprints a window's row whenever a new record
//! changes it (rows come out at most once a second, so the records that all instances publish
//! for a window at about the same time show up as one update).
//!
//! Merging (and what counts as a duplicate) is [`crate::insights::table`]'s.

use std::io;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::message::{BorrowedMessage, Message};

use crate::cli::insights::ReaderArgs;
use crate::insights::table::{Printer, WindowTable};
use crate::kafka::reader::{Reading, TopicReader};

/// How long follow mode collects records before printing the windows they changed.
const PRINT_EVERY: Duration = Duration::from_secs(1);

/// Reads the insights topic and prints merged windows (see the module doc).
pub fn run_reader(args: ReaderArgs) -> anyhow::Result<()> {
    let reading = if args.follow {
        Reading::Follow
    } else {
        Reading::Snapshot
    };
    let mut reader = TopicReader::open(
        &args.kafka,
        "kafka-pipeline-insights",
        &args.topic,
        reading,
        args.timeout,
        false,
    )?;
    let mut table = WindowTable::new(args.last.map(|n| n as usize));
    let mut warned = 0u32;
    let mut ingest = |table: &mut WindowTable, m: &BorrowedMessage<'_>| {
        if let Err(e) = table.add_json(m.payload()) {
            if warned < 3 {
                log::warn!(
                    "skipping record at partition {} offset {}: {e}",
                    m.partition(),
                    m.offset()
                );
                warned += 1;
            }
        }
    };
    while let Some(m) = reader.next_record()? {
        ingest(&mut table, &m);
    }

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
        if let Some(m) = reader.poll() {
            ingest(&mut table, &m);
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
