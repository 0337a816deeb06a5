//! Supervision: a stage that dies stops the pipeline in order, `/health` says so meanwhile, and
//! nothing is committed past records whose outputs were not delivered. The panics come from the
//! test-only fault hook (`--features fault-injection`, `KAFKA_PIPELINE_FAULT`), which
//! scripts/test.sh enables.

use std::time::{Duration, Instant};

use kafka_pipeline::testing::Login;

use crate::common::*;

fn events(n: usize) -> Vec<Rec> {
    (0..n)
        .map(|i| {
            let value = Login::default()
                .user_id(&format!("u{i}"))
                .device_id(&format!("d{i}"))
                .to_bytes();
            Rec::new(Some(format!("k{i}").as_bytes()), Some(&value))
        })
        .collect()
}

/// Input offsets that reached the output topic, from the lineage header.
#[cfg(feature = "fault-injection")]
fn delivered_offsets(
    brokers: &str,
    output: &str,
    at_least: usize,
) -> std::collections::BTreeSet<i64> {
    read_all(brokers, output, at_least, Duration::from_secs(20))
        .iter()
        .filter_map(|r| {
            let source = r.header("__pipeline.source")?;
            source.rsplit('/').next()?.parse().ok()
        })
        .collect()
}

/// For a worker other than worker-0, the producer and the consumer: the process exits 4 within
/// two commit intervals of the panic (plus start-up slack), `/health` answers 503 naming the
/// stage meanwhile, the committed offset passes no record whose output is missing, and a
/// restart completes the input.
#[cfg(feature = "fault-injection")]
#[test]
fn a_panic_in_any_stage_stops_the_pipeline_in_order() {
    let Some(brokers) = require_broker() else {
        return;
    };
    let total = 30_000;
    for stage in ["worker-1", "producer", "consumer"] {
        let input = unique("it-panic");
        let output = format!("{input}-out");
        let group = unique("it-group");
        create_topic(&brokers, &input, 1, &[]);
        create_topic(&brokers, &output, 1, &[]);
        produce(&brokers, &input, &events(total));
        let args = run_args(
            &brokers,
            &input,
            &group,
            &[
                "--workers",
                "2",
                "--commit-interval",
                "2s",
                "--metrics-addr",
                "127.0.0.1:0",
            ],
        );
        let fault = format!("{stage}:3");
        let mut run = Running::start_with_env(&args, &[("KAFKA_PIPELINE_FAULT", &fault)]);
        let addr = metrics_addr(&run);
        let mut health_503 = None;
        let mut panicked_at = None;
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = run.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "{stage}: no exit; log:\n{}",
                run.log_text()
            );
            if panicked_at.is_none() && run.log_text().contains("fault injection") {
                panicked_at = Some(Instant::now());
            }
            if let Some((503, body)) = get(&addr, "/health") {
                if body.contains(stage) {
                    health_503.get_or_insert(body);
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let text = run.log_text();
        assert_eq!(status.code(), Some(4), "{stage}; log:\n{text}");
        let took = panicked_at.map(|t| t.elapsed());
        assert!(
            took.is_some_and(|t| t < Duration::from_secs(6)),
            "{stage}: exit {took:?} after the panic (limit: 2 commit intervals of 2 s + 2 s); log:\n{text}"
        );
        // Without a consumer nothing is left to drain: the process may be gone before a probe
        // sees the 503 (within a second of the panic).
        match health_503 {
            Some(body) => assert!(body.contains("panicked"), "{stage}: /health said {body:?}"),
            None if stage == "consumer" && took.is_some_and(|t| t < Duration::from_secs(1)) => {}
            None => panic!("{stage}: /health never 503 naming it; log:\n{text}"),
        }
        assert!(
            text.contains(&format!("pipeline stage {stage} panicked")),
            "{stage}: the log does not name the stage:\n{text}"
        );

        let committed = committed(&brokers, &group, &input, 1)
            .get(&0)
            .copied()
            .unwrap_or(0);
        let delivered = delivered_offsets(&brokers, &output, committed as usize);
        let missing: Vec<i64> = (0..committed).filter(|o| !delivered.contains(o)).collect();
        assert!(
            missing.is_empty(),
            "{stage}: committed {committed} past {} undelivered records (first {:?})",
            missing.len(),
            missing.first()
        );

        let mut again = Running::pipeline(&brokers, &input, &group, &["--exit-at-end"]);
        assert!(
            again.wait(Duration::from_secs(90)).success(),
            "{}",
            again.log_text()
        );
        let delivered = delivered_offsets(&brokers, &output, total);
        assert_eq!(delivered.len(), total, "{stage}: records lost");
    }
}

/// Exactly-once across a rebalance that lands between taking the group metadata and sending a
/// transaction's offsets (the fault hook holds the first three commits there for 4 s): the commit meets
/// ILLEGAL_GENERATION (or REBALANCE_IN_PROGRESS), which is abortable, so the instance aborts,
/// reads again from its committed positions and goes on in-process, without leaving the group.
/// Neither instance exits by itself; a read_committed reader sees every record exactly once.
#[cfg(feature = "fault-injection")]
#[test]
fn exactly_once_survives_a_rebalance_between_metadata_and_commit() {
    let Some(brokers) = require_broker() else {
        return;
    };
    let input = unique("it-eos-rebalance");
    let output = format!("{input}-out");
    let group = unique("it-group");
    let partitions = 4;
    create_topic(&brokers, &input, partitions, &[]);
    create_topic(&brokers, &output, partitions, &[]);
    create_topic(&brokers, &format!("{input}-dlq"), 1, &[]);
    create_topic(&brokers, &format!("{input}-insights"), 1, &[]);
    let total = 4_000;
    let mut records = events(total);
    for (i, r) in records.iter_mut().enumerate() {
        r.partition = (i % partitions as usize) as i32;
    }
    // A steady trickle, so that every epoch has a transaction to commit (and to hold).
    let feeder = {
        let (brokers, input) = (brokers.clone(), input.clone());
        std::thread::spawn(move || {
            for chunk in records.chunks(100) {
                produce(&brokers, &input, chunk);
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };
    let eos = ["--guarantee", "exactly-once", "--commit-interval", "500ms"];
    let args = run_args(&brokers, &input, &group, &eos);
    let mut held = Running::start_with_env(&args, &[("KAFKA_PIPELINE_FAULT", "txn-offsets:4000")]);
    assert!(
        wait_until(Duration::from_secs(30), || held
            .log_text()
            .contains("txn-offsets pauses")),
        "no commit reached the hook; log:\n{}",
        held.log_text()
    );
    // Joins while the held instance sits between its metadata and its offsets (its first
    // three commits are held 4 s each).
    let mut other = Running::pipeline(&brokers, &input, &group, &eos);
    assert!(
        wait_until(Duration::from_secs(60), || held
            .log_text()
            .contains("aborting the transaction")),
        "the rebalance never aborted a transaction; log:\n{}",
        held.log_text()
    );
    feeder.join().unwrap();
    let end = end_offsets(&brokers, &input, partitions);
    assert!(
        wait_until(Duration::from_secs(120), || committed(
            &brokers, &group, &input, partitions
        ) == end),
        "not committed to the end; held log:\n{}\nother log:\n{}",
        held.log_text(),
        other.log_text()
    );
    for (who, run) in [("held", &mut held), ("other", &mut other)] {
        assert!(
            run.child.try_wait().unwrap().is_none(),
            "{who} exited by itself; log:\n{}",
            run.log_text()
        );
    }
    other.stop("other");
    held.stop("held");
    let out = read_all(&brokers, &output, total, Duration::from_secs(30));
    let mut seen = std::collections::BTreeMap::new();
    for r in &out {
        *seen
            .entry(r.header("__pipeline.source").expect("lineage"))
            .or_insert(0) += 1;
    }
    let duplicates = seen.values().filter(|&&n| n > 1).count();
    assert_eq!((seen.len(), duplicates), (total, 0), "lost or duplicated");
    assert!(
        held.log_text().contains("rewound to"),
        "no in-process rewind; log:\n{}",
        held.log_text()
    );
}

/// A pipeline whose output cannot be written (the topic is missing and may not be created)
/// reports the stall on `/ready` within three commit intervals (plus one statistics interval)
/// in both modes, from its own positions: under exactly-once librdkafka's stored-offset lag is
/// never known, and the old rule could not fire there.
#[test]
fn ready_reports_a_stall_within_three_commit_intervals_in_both_modes() {
    let Some(brokers) = require_broker() else {
        return;
    };
    for guarantee in ["at-least-once", "exactly-once"] {
        let input = unique("it-stall");
        let group = unique("it-group");
        create_topic(&brokers, &input, 1, &[]);
        create_topic(&brokers, &format!("{input}-dlq"), 1, &[]);
        create_topic(&brokers, &format!("{input}-insights"), 1, &[]);
        produce(&brokers, &input, &events(500));
        let extra = [
            &[
                "--guarantee",
                guarantee,
                "--commit-interval",
                "1s",
                "--metrics-addr",
                "127.0.0.1:0",
            ][..],
            OUTPUT_MISSING,
        ]
        .concat();
        let run = Running::pipeline(&brokers, &input, &group, &extra);
        let addr = metrics_addr(&run);
        assert!(
            wait_until(Duration::from_secs(30), || run
                .log_text()
                .contains("assigned partitions [0]")),
            "{guarantee}: no assignment; log:\n{}",
            run.log_text()
        );
        let assigned = Instant::now();
        let mut reason = None;
        let stalled = wait_until(Duration::from_secs(20), || {
            reason = get(&addr, "/ready").map(|(_, body)| body);
            reason.as_deref().is_some_and(|r| r.starts_with("stalled"))
        });
        let took = assigned.elapsed();
        assert!(
            stalled,
            "{guarantee}: /ready said {reason:?}; log:\n{}",
            run.log_text()
        );
        assert!(
            took < Duration::from_secs(6),
            "{guarantee}: stall reported {took:?} after the assignment (3 intervals of 1 s + 1 s of statistics + slack)"
        );
        // Undeliverable records cannot drain: the process is killed when `run` drops.
    }
}
