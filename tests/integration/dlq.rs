//! `kafka-pipeline dlq` against the real broker and the real pipeline: dead letters counted,
//! shown, replayed once the pipeline is fixed, and never replayed twice.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

const HEADER_REPLAY_COUNT: &str = "__pipeline.replay.count";

/// A login event; without `device_type` when `device` is `None`.
fn event(user: &str, device: Option<&str>) -> Vec<u8> {
    login(user, 1_720_589_697, device, "WA")
}

/// Runs `kafka-pipeline dlq ARGS` (no `KAFKA_PIPELINE_*` from the test's environment) and
/// asserts it succeeded.
fn dlq(args: &[&str]) -> Output {
    let mut cmd = pipeline();
    for (k, _) in std::env::vars() {
        if k.starts_with("KAFKA_PIPELINE_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.arg("dlq").args(args).output().expect("run dlq");
    assert!(
        out.status.success(),
        "dlq {args:?}: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `dlq ARGS` whose stdout is one JSON object.
fn dlq_json(args: &[&str]) -> Value {
    let out = dlq(args);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "dlq {args:?} printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Runs the pipeline over its input until drained (`--exit-at-end`) and asserts a clean exit.
fn run_pipeline(brokers: &str, input: &str, group: &str, extra: &[&str]) {
    let args = [&["--exit-at-end", "--metrics-addr", ""][..], extra].concat();
    let mut run = Running::pipeline(brokers, input, group, &args);
    let status = run.wait(Duration::from_secs(60));
    assert!(status.success(), "pipeline: {status:?}\n{}", run.log_text());
}

fn total(offsets: &BTreeMap<i32, i64>) -> i64 {
    offsets.values().sum()
}

/// The brief's scenario: 1,000 good events and 200 without `device_type`. The pipeline
/// dead-letters the 200; the summary counts them; a replay puts them back; the pipeline, now
/// with `device_type` optional, writes them; a second replay adds nothing; and the output holds
/// every one of the 1,200 users exactly once.
#[test]
fn replay_after_the_fix_writes_every_event_exactly_once() {
    let Some(brokers) = require_broker() else {
        return;
    };
    let input = unique("it-dlq");
    let (output, dead, group) = (
        format!("{input}-out"),
        format!("{input}-dlq"),
        unique("it-dlq-group"),
    );
    create_topic(&brokers, &input, 2, &[]);
    create_topic(&brokers, &output, 2, &[]);
    create_topic(&brokers, &dead, 2, &[]);
    let mut records = Vec::new();
    let mut users = BTreeSet::new();
    for i in 0..1200 {
        let (user, device) = if i % 6 == 5 {
            (format!("missing-{i}"), None)
        } else {
            (format!("good-{i}"), Some("iOS"))
        };
        let mut r = Rec::new(Some(user.as_bytes()), Some(&event(&user, device)));
        r.headers
            .push(("trace-id".into(), Some(format!("t-{i}").into_bytes())));
        records.push(r);
        users.insert(user);
    }
    produce(&brokers, &input, &records);
    run_pipeline(&brokers, &input, &group, &[]);

    let source = ["--brokers", &brokers, "--dlq-topic", &dead];
    let summary = dlq_json(&[&["summary", "--json"][..], &source].concat());
    assert_eq!(summary["total"], 200, "{summary}");
    assert_eq!(
        summary["by_code"],
        serde_json::json!({"missing_field": 200})
    );
    assert_eq!(summary["groups"][0]["field"], "device_type");
    assert_eq!(summary["groups"][0]["count"], 200);

    let replay = [
        &["replay", "--json", "--code", "missing_field"][..],
        &source,
        &["--input-topic", &input],
    ]
    .concat();
    let before = end_offsets(&brokers, &input, 2);
    let first = dlq_json(&replay);
    assert_eq!(first["replayed"], 200, "{first}");
    assert_eq!(first["target"], input.as_str());
    run_pipeline(
        &brokers,
        &input,
        &group,
        &["--optional-field", "device_type=unknown"],
    );

    let after_first = end_offsets(&brokers, &input, 2);
    let second = dlq_json(&replay);
    assert_eq!(second["replayed"], 0, "{second}");
    assert_eq!(second["already_replayed"], 200, "{second}");
    assert_eq!(
        end_offsets(&brokers, &input, 2),
        after_first,
        "a second replay writes nothing"
    );
    // 200 records plus one commit marker per partition written to.
    let added = total(&after_first) - total(&before);
    assert!((200..=202).contains(&added), "{added} offsets added");

    let out = read_all(&brokers, &output, users.len(), Duration::from_secs(30));
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for r in &out {
        let v = r.json();
        let user = v["user_id"].as_str().unwrap().to_owned();
        let expected_device = if user.starts_with("missing-") {
            "unknown"
        } else {
            "ios"
        };
        assert_eq!(v["device_type"], expected_device, "{v}");
        *seen.entry(user).or_default() += 1;
    }
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), users);
    let twice: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "written more than once: {twice:?}");
    // The pipeline's DLQ got nothing new: the replays went through.
    assert_eq!(
        total(&end_offsets(&brokers, &dead, 2)),
        200,
        "dead letters after the fix"
    );
}

/// The other paths: a record in the DLQ that is not the pipeline's is reported, not crashed on;
/// `--dry-run` writes nothing; `--to` replays to another topic with the original key, value and
/// headers plus the replay headers; a replay that fails again comes back with its count, and
/// `--max-replays` stops it; `--config` supplies the connection and topic.
#[test]
fn foreign_records_dry_run_other_targets_and_the_replay_limit() {
    let Some(brokers) = require_broker() else {
        return;
    };
    let input = unique("it-dlq2");
    let (dead, other, group) = (
        format!("{input}-dlq"),
        format!("{input}-staging"),
        unique("it-dlq2-group"),
    );
    for t in [&input, &format!("{input}-out"), &dead, &other] {
        create_topic(&brokers, t, 1, &[]);
    }
    let mut records: Vec<Rec> = (0..10)
        .map(|i| {
            let user = format!("missing-{i}");
            let mut r = Rec::new(Some(user.as_bytes()), Some(&event(&user, None)));
            r.headers
                .push(("trace-id".into(), Some(vec![b't', 0, 0xff, i])));
            r.headers.push(("empty".into(), None));
            r
        })
        .collect();
    records.push(Rec::new(
        Some(b"good"),
        Some(&event("good", Some("android"))),
    ));
    produce(&brokers, &input, &records);
    run_pipeline(&brokers, &input, &group, &["--workers", "1"]);
    let mut foreign = Rec::new(None, Some(b"not ours \x1b[31m\xff"));
    foreign
        .headers
        .push(("origin".into(), Some(b"someone else".to_vec())));
    produce(&brokers, &dead, &[foreign]);

    // --config: brokers and topic from the file; `workers` is a `run` key and is skipped.
    let config = std::env::temp_dir().join(format!("{}.toml", unique("dlq-config")));
    std::fs::write(
        &config,
        format!("brokers = \"{brokers}\"\ndlq-topic = \"{dead}\"\ninput-topic = \"{input}\"\nworkers = 2\n[property]\nclient.id = \"dlq-test\"\n"),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let summary = dlq_json(&["summary", "--json", "--config", &config]);
    assert_eq!(summary["total"], 11, "{summary}");
    assert_eq!(
        summary["by_code"],
        serde_json::json!({"(none)": 1, "missing_field": 10})
    );
    let table = String::from_utf8(dlq(&["summary", "--config", &config]).stdout).unwrap();
    assert!(table.lines().any(|l| l.starts_with("(none) ")), "{table}");
    let shown =
        String::from_utf8(dlq(&["show", "--code", "none", "--config", &config]).stdout).unwrap();
    assert!(
        shown.contains("code     (none): not the pipeline's dead letter"),
        "{shown}"
    );
    assert!(
        shown.contains("value    not ours \\u{1b}[31m\\xff"),
        "{shown}"
    );
    assert!(
        shown.contains("1 of 1 matching dead letters shown (11 read"),
        "{shown}"
    );

    // --dry-run: counts, writes nothing, creates no ledger.
    let source = ["--config", config.as_str()];
    let before = end_offsets(&brokers, &input, 1);
    let dry = dlq_json(&[&["replay", "--json", "--dry-run"][..], &source].concat());
    assert_eq!(
        (dry["replayed"].as_u64(), dry["not_pipelines"].as_u64()),
        (Some(10), Some(1)),
        "{dry}"
    );
    assert_eq!(end_offsets(&brokers, &input, 1), before);
    assert!(read_all(
        &brokers,
        &format!("{dead}-replays"),
        1,
        Duration::from_secs(2)
    )
    .is_empty());

    // --to: the originals, byte for byte, with the replay headers instead of the error headers.
    let staged = dlq_json(&[&["replay", "--json", "--to", &other][..], &source].concat());
    assert_eq!(staged["replayed"], 10, "{staged}");
    let copies = read_all(&brokers, &other, 10, Duration::from_secs(20));
    assert_eq!(copies.len(), 10);
    let letters = read_all(&brokers, &dead, 11, Duration::from_secs(20));
    for copy in &copies {
        let offset: i64 = copy
            .header("__pipeline.replay.dlq_offset")
            .unwrap()
            .parse()
            .unwrap();
        let letter = &letters[offset as usize];
        let original = records
            .iter()
            .find(|r| r.key == copy.key)
            .expect("a replayed key");
        assert_eq!(letter.key, copy.key, "dlq_offset names the dead letter");
        assert_eq!(copy.value, original.value);
        assert_eq!(
            copy.headers[..2],
            original.headers[..],
            "original headers first"
        );
        let names: Vec<&str> = copy.headers[2..].iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "__pipeline.replay.dlq_topic",
                "__pipeline.replay.dlq_partition",
                "__pipeline.replay.dlq_offset",
                HEADER_REPLAY_COUNT
            ]
        );
        assert_eq!(
            copy.header("__pipeline.replay.dlq_topic").as_deref(),
            Some(dead.as_str())
        );
        assert_eq!(copy.header(HEADER_REPLAY_COUNT).as_deref(), Some("1"));
    }
    // Replaying to the staging topic did not count as replaying to the input.
    let to_input = dlq_json(&[&["replay", "--json"][..], &source].concat());
    assert_eq!(to_input["replayed"], 10, "{to_input}");

    // Without the fix the replays fail again and come back with their count.
    run_pipeline(&brokers, &input, &group, &["--workers", "1"]);
    let summary = dlq_json(&[
        "summary",
        "--json",
        "--config",
        &config,
        "--code",
        "missing_field",
    ]);
    assert_eq!(summary["total"], 20, "{summary}");
    assert_eq!(summary["groups"][0]["replayed_before"], 10, "{summary}");
    let again = read_all(&brokers, &dead, 21, Duration::from_secs(20));
    let counts: Vec<Option<String>> = again[11..]
        .iter()
        .map(|r| r.header(HEADER_REPLAY_COUNT))
        .collect();
    assert_eq!(counts, vec![Some("1".to_owned()); 10]);
    let shown =
        String::from_utf8(dlq(&["show", "--config", &config, "--limit", "100"]).stdout).unwrap();
    assert_eq!(
        shown.matches("\nreplayed 1 time, last from ").count(),
        10,
        "{shown}"
    );

    let limited = dlq_json(&[&["replay", "--json", "--max-replays", "1"][..], &source].concat());
    assert_eq!(
        (
            limited["replayed"].as_u64(),
            limited["at_replay_limit"].as_u64(),
            limited["already_replayed"].as_u64()
        ),
        (Some(0), Some(10), Some(10)),
        "{limited}"
    );
    let _ = std::fs::remove_file(&config);
}
