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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Result<DlqCommand, clap::Error> {
        let cli = Cli::try_parse_from(
            ["kafka-pipeline", "dlq"]
                .into_iter()
                .chain(args.iter().copied()),
        )?;
        match cli.command {
            Command::Dlq(a) => Ok(a.command),
            other => panic!("not dlq: {other:?}"),
        }
    }

    #[test]
    fn summary_flags_and_defaults() {
        let DlqCommand::Summary(a) = parse(&["summary", "--since", "1h", "--json"]).unwrap() else {
            panic!()
        };
        assert_eq!(a.source.dlq.name, "user-login-dlq");
        assert_eq!(a.source.kafka.brokers, "localhost:29092");
        assert_eq!(a.by, crate::cli::dlq::GroupBy::default());
        assert!(a.json);
        assert_eq!(
            a.filter.since,
            Some(crate::cli::dlq::TimeBound::Ago(Duration::from_secs(3600)))
        );
        let DlqCommand::Summary(a) = parse(&["summary", "--by", "field"]).unwrap() else {
            panic!()
        };
        assert!(!a.by.code && a.by.field);
        assert!(parse(&["summary", "--by", "partition"]).is_err());
    }

    #[test]
    fn config_file_gives_connection_and_topics_but_not_dlq_flags() {
        let path = std::env::temp_dir().join(format!("kp-dlq-unit-{}.toml", std::process::id()));
        let file = |text: &str| {
            std::fs::write(&path, text).unwrap();
            crate::cli::parse_cli([
                "kafka-pipeline",
                "dlq",
                "replay",
                "--config",
                path.to_str().unwrap(),
                "--brokers",
                "flag:9092",
            ])
        };
        let cli = file(
            "brokers = \"file:9092\"\ndlq-topic = \"file-dlq\"\ninput-topic = \"file-in\"\n\
             workers = 3\n[property]\nclient.id = \"f\"\n",
        )
        .unwrap();
        let Command::Dlq(DlqArgs {
            command: DlqCommand::Replay(a),
        }) = cli.command
        else {
            panic!("not dlq replay")
        };
        assert_eq!(a.source.kafka.brokers, "flag:9092", "flag over file");
        assert_eq!(a.source.dlq.name, "file-dlq");
        assert_eq!(a.input.name, "file-in");
        assert_eq!(
            a.source.kafka.properties,
            vec![("client.id".to_owned(), "f".to_owned())]
        );
        // A replay's own flags are per invocation, not file keys.
        for key in ["dry-run = true", "max-replays = 9", "timeout = \"1s\""] {
            let err = file(key).unwrap_err();
            let crate::cli::CliError::File(msg) = err else {
                panic!("{key}: {err:?}")
            };
            assert!(msg.contains("unknown key"), "{key}: {msg}");
        }
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn replay_flags_are_checked_at_parse_time() {
        let DlqCommand::Replay(a) = parse(&[
            "replay",
            "--code",
            "missing_field,none",
            "--to",
            "staging",
            "--dry-run",
            "--dlq-topic",
            "d",
            "-X",
            "security.protocol=ssl",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            a.filter.code,
            vec!["missing_field", crate::cli::dlq::NONE_LABEL]
        );
        assert_eq!(a.to.as_deref(), Some("staging"));
        assert!(a.dry_run);
        assert_eq!(a.max_replays, 3);
        assert_eq!(a.input.name, "user-login");
        assert_eq!(a.source.dlq.name, "d");
        assert_eq!(a.source.kafka.properties.len(), 1);
        for bad in [
            &["replay", "--code", "missing_fields"][..],
            &["replay", "--field", "colour"],
            &["replay", "--max-replays", "0"],
            &["replay", "--since", "yesterday"],
            &["show", "--limit", "0"],
        ] {
            let err = parse(bad).unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{bad:?}: {err}"
            );
        }
    }
}
