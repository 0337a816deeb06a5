//! End-to-end tests of `kafka-pipeline run` against the real broker: every record accounted
//! for, dead letters byte-identical with the right code, offsets committed only after delivery.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use kafka_pipeline::testing::{self, Login};

use crate::common::*;

const HEADER_CODE: &str = "__pipeline.errors.code";

/// A fixture from tests/data: key, value, and the expected error code (None: valid).
type Fixture = (Vec<u8>, Option<Vec<u8>>, Option<String>);

/// The fixtures in tests/data, plus the two that are not files (tombstone, oversize).
fn corpus() -> Vec<Fixture> {
    let mut out: Vec<Fixture> = testing::corpus()
        .into_iter()
        .map(|case| match case.expected {
            Some(code) => (
                format!("bad:{}", case.name).into_bytes(),
                Some(case.payload),
                Some(code.as_str().to_owned()),
            ),
            None => (
                format!("fixture-{}", case.name).into_bytes(),
                Some(case.payload),
                None,
            ),
        })
        .collect();
    out.push((b"bad:tombstone".to_vec(), None, Some("tombstone".into())));
    out.push((
        b"bad:too-large".to_vec(),
        Some(vec![b' '; 300_000]),
        Some("too_large".into()),
    ));
    out
}

fn valid_event(i: usize) -> Vec<u8> {
    Login::default()
        .user_id(&format!("user-{i}"))
        .ip(&format!("25.67.{}.{}", i % 256, (i * 7) % 256))
        .device_id(&format!("dev-{i}"))
        .timestamp(1_720_589_697 + i as u64)
        .device_type(if i % 2 == 0 { "iOS" } else { "android" })
        .to_bytes()
}

/// Mixed traffic on 3 partitions with 4 workers: every valid record lands in processed_data
/// exactly once, every invalid one in the DLQ byte-identical with the right code, and after
/// SIGTERM the committed offsets equal the end offsets. A second run reprocesses nothing.
#[test]
fn mixed_traffic_is_routed_exactly_and_committed_after_sigterm() {
    let Some(brokers) = require_broker() else {
        return;
    };
    let input = unique("it-mixed");
    let (output, dlq, group) = (
        format!("{input}-out"),
        format!("{input}-dlq"),
        unique("it-group"),
    );
    create_topic(&brokers, &input, 3, &[]);
    create_topic(&brokers, &output, 3, &[]);
    create_topic(&brokers, &dlq, 1, &[("max.message.bytes", "2000000")]);

    let mut records = Vec::new();
    let mut expected_valid = BTreeSet::new();
    for i in 0..600 {
        let mut r = Rec::new(Some(format!("valid:{i}").as_bytes()), Some(&valid_event(i)));
        r.partition = (i % 3) as i32;
        records.push(r);
        expected_valid.insert(format!("user-{i}"));
    }
    let mut expected_dlq = BTreeMap::new();
    for (n, (key, value, code)) in corpus().into_iter().enumerate() {
        let mut r = Rec {
            key: Some(key.clone()),
            value,
            headers: vec![],
            partition: (n % 3) as i32,
            offset: -1,
        };
        // Original headers must survive byte-for-byte into the DLQ.
        r.headers.push((
            "trace-id".into(),
            Some(format!("t-{n}\u{0}\u{ff}").into_bytes()),
        ));
        r.headers.push(("empty".into(), None));
        match code {
            Some(code) => {
                expected_dlq.insert(key, (r.clone(), code));
            }
            None => {
                let user: serde_json::Value =
                    serde_json::from_slice(r.value.as_ref().unwrap()).unwrap();
                expected_valid.insert(user["user_id"].as_str().unwrap().trim().to_owned());
            }
        }
        records.push(r);
    }
    produce(&brokers, &input, &records);

    let args = [
        "--workers",
        "4",
        "--producer-property",
        "message.max.bytes=2000000",
    ];
    let mut run = Running::pipeline(&brokers, &input, &group, &args);
    let total = records.len();
    let done = wait_until(Duration::from_secs(60), || {
        let out = read_all(
            &brokers,
            &output,
            expected_valid.len(),
            Duration::from_secs(5),
        )
        .len();
        let dl = read_all(&brokers, &dlq, expected_dlq.len(), Duration::from_secs(5)).len();
        out + dl >= total
    });
    assert!(
        done,
        "pipeline did not route all {total} records; log:\n{}",
        run.log_text()
    );
    run.stop("pipeline");

    // processed_data: every valid record exactly once, keyed by user_id, with source headers.
    let out = read_all(
        &brokers,
        &output,
        expected_valid.len(),
        Duration::from_secs(30),
    );
    let mut seen = BTreeMap::new();
    for r in &out {
        let v = r.json();
        let user = v["user_id"].as_str().unwrap().to_owned();
        assert_eq!(r.key.as_deref(), Some(user.as_bytes()), "keyed by user_id");
        let source = r.header("__pipeline.source").expect("lineage header");
        let (topic, _, _) =
            kafka_pipeline::transform::headers::parse_source(source.as_bytes()).unwrap();
        assert_eq!(topic, input.as_str());
        assert!(
            ["ios", "android"].contains(&v["device_type"].as_str().unwrap()),
            "{v}"
        );
        *seen.entry(user).or_insert(0) += 1;
    }
    let seen_users: BTreeSet<String> = seen.keys().cloned().collect();
    assert_eq!(seen_users, expected_valid, "valid records in the output");
    assert!(
        seen.values().all(|&n| n == 1),
        "duplicates: {:?}",
        seen.iter().filter(|(_, &n)| n > 1).collect::<Vec<_>>()
    );

    // DLQ: byte-identical key, value and original headers, plus the right code.
    let dead = read_all(&brokers, &dlq, expected_dlq.len(), Duration::from_secs(30));
    assert_eq!(dead.len(), expected_dlq.len(), "dead letters");
    for d in &dead {
        let key = d.key.clone().expect("DLQ record keeps its key");
        let (original, code) = expected_dlq
            .get(&key)
            .unwrap_or_else(|| panic!("unexpected DLQ key {key:?}"));
        assert_eq!(
            d.value,
            original.value,
            "{}: value must be untouched",
            String::from_utf8_lossy(&key)
        );
        assert_eq!(
            d.headers[..2],
            original.headers[..],
            "original headers first, untouched"
        );
        assert_eq!(
            d.header(HEADER_CODE).as_deref(),
            Some(code.as_str()),
            "{}",
            String::from_utf8_lossy(&key)
        );
        assert_eq!(
            d.header("__pipeline.errors.topic").as_deref(),
            Some(input.as_str())
        );
        for h in ["message", "stage", "partition", "offset", "timestamp"] {
            assert!(
                d.header(&format!("__pipeline.errors.{h}")).is_some(),
                "missing header {h}"
            );
        }
    }

    // Committed offsets equal the end offsets.
    assert_eq!(
        committed(&brokers, &group, &input, 3),
        end_offsets(&brokers, &input, 3)
    );

    // The original pipeline's kafka-python consumer snippet reads the output.
    let python = std::process::Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/python-env.sh"))
        .output()
        .expect("scripts/python-env.sh");
    assert!(
        python.status.success(),
        "python-env.sh: {}",
        String::from_utf8_lossy(&python.stderr)
    );
    let py = String::from_utf8(python.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_owned();
    let read = std::process::Command::new(py)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/read_topic.py"))
        .args([
            "--topic",
            &output,
            "--bootstrap",
            &brokers,
            "--expect",
            &expected_valid.len().to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        read.status.success(),
        "kafka-python snippet: {}",
        String::from_utf8_lossy(&read.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&read.stdout).lines().count(),
        expected_valid.len()
    );

    // A second run of the same group reprocesses nothing: every record it handed to a worker
    // would come out in the output or the DLQ, so neither topic grows, and the group's
    // committed offsets stay at the end.
    let written = (
        end_offsets(&brokers, &output, 3),
        end_offsets(&brokers, &dlq, 1),
    );
    let mut again = Running::pipeline(
        &brokers,
        &input,
        &group,
        &[&args[..], &["--exit-at-end"]].concat(),
    );
    let status = again.wait(Duration::from_secs(60));
    assert!(
        status.success(),
        "second run: {status:?}\n{}",
        again.log_text()
    );
    assert_eq!(
        (
            end_offsets(&brokers, &output, 3),
            end_offsets(&brokers, &dlq, 1)
        ),
        written,
        "the second run wrote records (output, DLQ end offsets):\n{}",
        again.log_text()
    );
    assert_eq!(
        committed(&brokers, &group, &input, 3),
        end_offsets(&brokers, &input, 3)
    );
}

/// A delivery that keeps failing (the output topic rejects the records) does not advance the
/// committed offset; once the topic accepts them, the records arrive and the offset moves.
#[test]
fn failed_delivery_holds_the_committed_offset_until_it_succeeds() {
    let Some(brokers) = require_broker() else {
        return;
    };
    let input = unique("it-fail");
    let (output, dlq, group) = (
        format!("{input}-out"),
        format!("{input}-dlq"),
        unique("it-group"),
    );
    create_topic(&brokers, &input, 1, &[]);
    // No output topic until later: every delivery fails with a retriable error.
    create_topic(&brokers, &dlq, 1, &[]);
    create_topic(&brokers, &format!("{input}-insights"), 1, &[]);
    let records: Vec<Rec> = (0..20)
        .map(|i| Rec::new(Some(b"k"), Some(&valid_event(i))))
        .collect();
    produce(&brokers, &input, &records);

    let mut run = Running::pipeline(
        &brokers,
        &input,
        &group,
        &[&["--workers", "2"], OUTPUT_MISSING].concat(),
    );
    assert!(
        wait_until(Duration::from_secs(30), || run
            .log_text()
            .contains("delivery to")),
        "no delivery failure reported; log:\n{}",
        run.log_text()
    );
    // Several auto-commit intervals pass while every delivery fails.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        committed(&brokers, &group, &input, 1)
            .get(&0)
            .copied()
            .unwrap_or(0),
        0,
        "offset advanced past undelivered records"
    );
    assert!(read_all(&brokers, &output, 0, Duration::from_secs(3)).is_empty());

    create_topic(&brokers, &output, 1, &[]);
    assert!(
        wait_until(Duration::from_secs(60), || committed(
            &brokers, &group, &input, 1
        )
        .get(&0)
            == Some(&20)),
        "offset did not reach the end after the topic became writable; log:\n{}",
        run.log_text()
    );
    run.stop("run");
    let out = read_all(&brokers, &output, 20, Duration::from_secs(30));
    let users: BTreeSet<String> = out
        .iter()
        .map(|r| r.json()["user_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        users,
        (0..20)
            .map(|i| format!("user-{i}"))
            .collect::<BTreeSet<_>>()
    );
}

/// Bad configuration and unreachable infrastructure: one clear error line, distinct non-zero
/// exit codes, no hang.
#[test]
fn startup_errors_exit_non_zero_with_one_clear_line() {
    let out = pipeline().args(["run", "--workers", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--workers"));

    let out = pipeline()
        .args(["run", "--output-topic", "user-login"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = pipeline()
        .args(["run", "--optional-field", "colour=red"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let started = std::time::Instant::now();
    let out = pipeline()
        .args(["run", "--brokers", "127.0.0.1:1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("cannot reach Kafka at 127.0.0.1:1"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(
        stderr.lines().filter(|l| l.contains("ERROR")).count(),
        1,
        "{stderr}"
    );

    let Some(brokers) = require_broker() else {
        return;
    };
    let missing = unique("it-missing");
    let out = pipeline()
        .args(["run", "--brokers", &brokers, "--input-topic", &missing])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!("input topic {missing:?} does not exist")),
        "{stderr}"
    );
}

/// A shutdown that cannot finish (the output topic rejects every record) ends at
/// `--shutdown-timeout` with exit code 4; a second signal exits at once with 130. Neither
/// commits past the undelivered records.
#[test]
fn shutdown_deadline_and_second_signal() {
    let Some(brokers) = require_broker() else {
        return;
    };
    let input = unique("it-stop");
    let dlq = format!("{input}-dlq");
    create_topic(&brokers, &input, 1, &[]);
    create_topic(&brokers, &dlq, 1, &[]);
    create_topic(&brokers, &format!("{input}-insights"), 1, &[]);
    produce(
        &brokers,
        &input,
        &[Rec::new(Some(b"k"), Some(&valid_event(1)))],
    );

    for (signals, expected_code) in [(1, 4), (2, 130)] {
        let group = unique("it-group");
        let mut run = Running::pipeline(
            &brokers,
            &input,
            &group,
            &[&["--shutdown-timeout", "3s"], OUTPUT_MISSING].concat(),
        );
        assert!(
            wait_until(Duration::from_secs(30), || run
                .log_text()
                .contains("delivery to")),
            "no delivery failure; log:\n{}",
            run.log_text()
        );
        let started = std::time::Instant::now();
        run.signal("TERM");
        if signals == 2 {
            std::thread::sleep(Duration::from_millis(300));
            run.signal("INT");
        }
        let status = run.wait(Duration::from_secs(30));
        assert_eq!(
            status.code(),
            Some(expected_code),
            "log:\n{}",
            run.log_text()
        );
        let limit = if signals == 2 {
            Duration::from_secs(2)
        } else {
            Duration::from_secs(10)
        };
        assert!(started.elapsed() < limit, "took {:?}", started.elapsed());
        assert_eq!(
            committed(&brokers, &group, &input, 1)
                .get(&0)
                .copied()
                .unwrap_or(0),
            0
        );
    }
}

/// Flags have environment twins, and a flag beats its twin.
#[test]
fn environment_twins_and_precedence() {
    let out = pipeline()
        .args(["run"])
        .env("KAFKA_PIPELINE_WORKERS", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--workers"));

    let Some(brokers) = require_broker() else {
        return;
    };
    let missing = unique("it-env-missing");
    let out = pipeline()
        .args(["run", "--workers", "1"])
        .env("KAFKA_PIPELINE_WORKERS", "0")
        .env("KAFKA_PIPELINE_BROKERS", &brokers)
        .env("KAFKA_PIPELINE_INPUT_TOPIC", &missing)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(&missing), "{stderr}");
}

/// Two instances in one group while traffic flows: a second instance joins (cooperative
/// rebalance moves some partitions), then the first leaves with SIGTERM. Graceful hand-offs
/// drain and commit before the partitions move, so every valid record is in the output exactly
/// once and the group's committed offsets reach the end.
#[test]
fn graceful_rebalances_lose_and_duplicate_nothing() {
    let Some(brokers) = require_broker() else {
        return;
    };
    let input = unique("it-rebalance");
    let (output, dlq, group) = (
        format!("{input}-out"),
        format!("{input}-dlq"),
        unique("it-group"),
    );
    create_topic(&brokers, &input, 4, &[]);
    create_topic(&brokers, &output, 4, &[]);
    create_topic(&brokers, &dlq, 1, &[]);
    // The original feed: a fresh user_id per event, so a duplicate is visible.
    let mut feeder = pipeline()
        .args([
            "loadgen",
            "--brokers",
            &brokers,
            "--topic",
            &input,
            "--profile",
            "original",
        ])
        .args(["--rate", "4000", "--count", "40000", "--seed", "7"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let args = ["--workers", "2"];
    let mut first = Running::pipeline(&brokers, &input, &group, &args);
    std::thread::sleep(Duration::from_secs(3));
    let mut second = Running::pipeline(&brokers, &input, &group, &args);
    std::thread::sleep(Duration::from_secs(4));
    first.stop("first");
    assert!(feeder.wait().unwrap().success(), "load generator failed");
    let ends = end_offsets(&brokers, &input, 4);
    assert_eq!(ends.values().sum::<i64>(), 40_000);
    assert!(
        wait_committed_to_end(&brokers, &group, &input, 4, Duration::from_secs(60)),
        "second instance did not catch up; log:\n{}",
        second.log_text()
    );
    second.stop("second");
    assert!(
        second.log_text().contains("assigned partitions"),
        "{}",
        second.log_text()
    );

    let inputs = read_all(&brokers, &input, 40_000, Duration::from_secs(60));
    let mut transformer = kafka_pipeline::transform::Transformer::new(Default::default());
    let expected: BTreeSet<String> = inputs
        .iter()
        .filter_map(|r| {
            transformer
                .process(r.value.as_deref())
                .ok()
                .map(|e| e.user_id.into_owned())
        })
        .collect();
    let out = read_all(&brokers, &output, expected.len(), Duration::from_secs(60));
    let users: Vec<String> = out
        .iter()
        .map(|r| r.json()["user_id"].as_str().unwrap().to_owned())
        .collect();
    let distinct: BTreeSet<String> = users.iter().cloned().collect();
    assert_eq!(distinct, expected, "lost records");
    if users.len() != distinct.len() {
        // Where the duplicates came from: (partition, first offset, last offset, count).
        let mut seen = BTreeSet::new();
        let mut dups: BTreeMap<String, (i64, i64, usize)> = BTreeMap::new();
        for r in &out {
            if !seen.insert(r.json()["user_id"].as_str().unwrap().to_owned()) {
                let source = r.header("__pipeline.source").unwrap();
                let (_, p, o) =
                    kafka_pipeline::transform::headers::parse_source(source.as_bytes()).unwrap();
                let p = p.to_string();
                let e = dups.entry(p).or_insert((o, o, 0));
                e.0 = e.0.min(o);
                e.1 = e.1.max(o);
                e.2 += 1;
            }
        }
        panic!(
            "{} duplicates after graceful hand-offs: {dups:?}\nfirst:\n{}\nsecond:\n{}",
            users.len() - distinct.len(),
            first.log_text(),
            second.log_text()
        );
    }
    let dead = read_all(
        &brokers,
        &dlq,
        40_000 - expected.len(),
        Duration::from_secs(30),
    );
    assert_eq!(dead.len() + out.len(), 40_000);
}

/// `--passthrough` (the benchmark ceiling) copies every record untouched, valid or not, and
/// still commits only what was delivered; the exit summary reports the count.
#[test]
fn passthrough_copies_records_untouched() {
    let Some(brokers) = require_broker() else {
        return;
    };
    let input = unique("it-pass");
    let group = unique("it-group");
    create_topic(&brokers, &input, 2, &[]);
    let mut records = vec![
        Rec::new(Some(b"a"), Some(&valid_event(1))),
        Rec::new(Some(b"b"), Some(b"not json \xff")),
        Rec::new(None, None),
    ];
    records[0]
        .headers
        .push(("h".into(), Some(b"\x00v".to_vec())));
    produce(&brokers, &input, &records);
    let mut run = Running::pipeline(
        &brokers,
        &input,
        &group,
        &["--passthrough", "--exit-at-end"],
    );
    assert!(
        run.wait(Duration::from_secs(60)).success(),
        "log:\n{}",
        run.log_text()
    );
    let out = read_all(
        &brokers,
        &format!("{input}-out"),
        3,
        Duration::from_secs(20),
    );
    let strip = |r: &Rec| (r.key.clone(), r.value.clone(), r.headers.clone());
    let mut got: Vec<_> = out.iter().map(strip).collect();
    let mut want: Vec<_> = records.iter().map(strip).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert!(read_all(&brokers, &format!("{input}-dlq"), 0, Duration::from_secs(3)).is_empty());
    assert!(
        run.log_text().contains("summary: 3 records in "),
        "log:\n{}",
        run.log_text()
    );
    // An empty partition has nothing to commit.
    let mut ends = end_offsets(&brokers, &input, 2);
    ends.retain(|_, end| *end > 0);
    assert_eq!(committed(&brokers, &group, &input, 2), ends);
}

/// Exactly-once: each commit epoch is one transaction carrying its outputs, dead letters,
/// insight deltas and the input offsets. A read_committed reader sees every record once, the
/// group's offsets end at the input's end although the consumer itself never commits, and the
/// output partitions hold transaction markers beside the records (so the writes were
/// transactional). The headers of the input travel to the output (`--input-headers all`).
#[test]
fn exactly_once_commits_outputs_and_offsets_in_transactions() {
    let Some(brokers) = require_broker() else {
        return;
    };
    let input = unique("it-eos");
    let group = unique("it-group");
    create_topic(&brokers, &input, 3, &[]);
    create_topic(&brokers, &format!("{input}-out"), 3, &[]);
    create_topic(&brokers, &format!("{input}-dlq"), 1, &[]);
    let mut records = Vec::new();
    for i in 0..600 {
        let mut r = if i % 10 == 9 {
            Rec::new(Some(b"k"), Some(b"[1, 2]"))
        } else {
            Rec::new(Some(b"k"), Some(&valid_event(i)))
        };
        r.partition = (i % 3) as i32;
        r.headers.push((
            "traceparent".into(),
            Some(format!("00-{i:032x}-01").into_bytes()),
        ));
        records.push(r);
    }
    produce(&brokers, &input, &records);
    let instance = unique("eos");
    let mut run = Running::pipeline(
        &brokers,
        &input,
        &group,
        &[
            "--guarantee",
            "exactly-once",
            "--instance-id",
            &instance,
            "--commit-interval",
            "200ms",
            "--exit-at-end",
        ],
    );
    assert!(
        run.wait(Duration::from_secs(90)).success(),
        "log:\n{}",
        run.log_text()
    );
    let out = read_all(
        &brokers,
        &format!("{input}-out"),
        540,
        Duration::from_secs(30),
    );
    let users: BTreeSet<String> = out
        .iter()
        .map(|r| r.json()["user_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        (out.len(), users.len()),
        (540, 540),
        "each valid record once"
    );
    assert!(out.iter().all(|r| r.header("traceparent").is_some()));
    let dlq = read_all(
        &brokers,
        &format!("{input}-dlq"),
        60,
        Duration::from_secs(20),
    );
    assert_eq!(dlq.len(), 60);
    assert_eq!(
        committed(&brokers, &group, &input, 3),
        end_offsets(&brokers, &input, 3),
        "the transactions committed the input offsets"
    );
    let out_end: i64 = end_offsets(&brokers, &format!("{input}-out"), 3)
        .values()
        .sum();
    assert!(
        out_end > 540,
        "transaction markers take offsets beside the 540 records (end offsets sum {out_end})"
    );
    assert!(run.log_text().contains("exactly-once (epochs of 200ms)"));
}

/// Records whose outputs the topics refuse for good never stall the pipeline: a record of
/// 1,020,000 bytes (above librdkafka's own 1,000,000 default, below Kafka's 1,048,588) is
/// dead-lettered whole; one of 1,048,400 bytes, whose dead letter is above the topic's limit, is
/// dead-lettered reduced; with an output topic that takes no processed record and a DLQ topic
/// that takes no big letter, valid records become `output_rejected` letters and the big
/// letters reduced ones. Every run, in both guarantees, commits to the end and exits 0 with
/// `--exit-at-end`.
#[test]
fn records_the_topics_refuse_are_dead_lettered_or_reduced_and_everything_commits() {
    let Some(brokers) = require_broker() else {
        return;
    };
    let big = |len: usize| Rec::new(Some(b"big"), Some(&vec![b'x'; len]));
    let valid = |range: std::ops::Range<usize>| {
        range
            .map(|i| Rec::new(Some(b"k"), Some(&valid_event(i))))
            .collect::<Vec<_>>()
    };
    type Configs<'a> = &'a [(&'a str, &'a str)];
    // (output topic configs, DLQ topic configs, processed records, whole letters, reduced)
    let cases: [(Configs<'_>, Configs<'_>, usize, usize, usize); 2] = [
        (&[], &[], 300, 1, 1),
        (
            &[("max.message.bytes", "300")],
            &[("max.message.bytes", "1500")],
            0,
            300,
            2,
        ),
    ];
    let runs = cases
        .iter()
        .flat_map(|c| ["at-least-once", "exactly-once"].map(|g| (g, c)));
    for (guarantee, &(out_configs, dlq_configs, processed, whole, reduced)) in runs {
        let input = unique("it-poison");
        let (output, dlq, group) = (
            format!("{input}-out"),
            format!("{input}-dlq"),
            unique("it-group"),
        );
        create_topic(&brokers, &input, 1, &[]);
        create_topic(&brokers, &output, 1, out_configs);
        create_topic(&brokers, &dlq, 1, dlq_configs);
        let mut records = valid(0..100);
        records.push(big(1_020_000));
        records.extend(valid(100..200));
        records.push(big(1_048_400));
        records.extend(valid(200..300));
        produce(&brokers, &input, &records);

        let args = ["--exit-at-end", "--guarantee", guarantee];
        let mut run = Running::pipeline(&brokers, &input, &group, &args);
        let status = run.wait(Duration::from_secs(90));
        let log = run.log_text();
        assert_eq!(status.code(), Some(0), "{guarantee}; log:\n{log}");
        assert_eq!(
            committed(&brokers, &group, &input, 1).get(&0),
            Some(&302),
            "not committed to the end; log:\n{log}"
        );
        let out = read_all(&brokers, &output, processed, Duration::from_secs(20));
        assert_eq!(out.len(), processed, "processed records");
        let letters = read_all(&brokers, &dlq, whole + reduced, Duration::from_secs(30));
        let truncated: Vec<&Rec> = letters
            .iter()
            .filter(|l| l.header("__pipeline.errors.truncated").is_some())
            .collect();
        assert_eq!(letters.len(), whole + reduced, "dead letters; log:\n{log}");
        assert_eq!(truncated.len(), reduced, "reduced letters");
        for letter in &truncated {
            assert_eq!(letter.value, None, "a reduced letter has no value");
            assert_eq!(
                letter.header("__pipeline.errors.code").as_deref(),
                Some("too_large")
            );
            assert!(letter.header("__pipeline.errors.offset").is_some());
            assert!(letter.header("__pipeline.errors.write_error").is_some());
        }
        let rejected = letters
            .iter()
            .filter(|l| l.header("__pipeline.errors.code").as_deref() == Some("output_rejected"))
            .count();
        assert_eq!(rejected, 300 - processed, "output_rejected letters");
        if processed == 300 {
            let first = letters
                .iter()
                .find(|l| truncated.iter().all(|t| t.offset != l.offset));
            assert_eq!(
                first.and_then(|l| l.value.as_ref()).map(Vec::len),
                Some(1_020_000),
                "the 1,020,000-byte record's letter is whole"
            );
        }
    }
}
