//! Operations: the metrics endpoint against a real run, readiness across a broker outage (on a
//! private broker), JSON logs, the config file's precedence and redaction, the `topics`
//! subcommand, TLS.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::*;

/// `GET path` on `addr`: status and body.
fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut c = TcpStream::connect(addr).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(c, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    c.read_to_string(&mut text).ok()?;
    let status = text.get(9..12)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// Samples of a Prometheus text exposition: `name{labels}` → value.
fn scrape(addr: &str) -> BTreeMap<String, f64> {
    let (status, body) = get(addr, "/metrics").expect("scrape");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').expect("sample line");
            (name.to_owned(), value.parse().expect("sample value"))
        })
        .collect()
}

fn metric(m: &BTreeMap<String, f64>, name: &str) -> f64 {
    *m.get(name)
        .unwrap_or_else(|| panic!("no sample {name} in {m:#?}"))
}

/// The address the pipeline logged for its endpoints (it listens on port 0 in the tests).
fn metrics_addr(run: &Running) -> String {
    let mut found = None;
    wait_until(Duration::from_secs(30), || {
        let log = run.log_text();
        found = log
            .split("serving http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next().map(str::to_owned));
        found.is_some()
    });
    found.unwrap_or_else(|| panic!("no metrics address in the log:\n{}", run.log_text()))
}

fn event(i: usize, device_type: bool) -> Vec<u8> {
    let dt = if device_type {
        r#", "device_type": "android""#
    } else {
        ""
    };
    format!(
        r#"{{"user_id": "u-{i}", "app_version": "2.3.0", "ip": "10.0.0.{}", "locale": "WA", "device_id": "d-{i}", "timestamp": {}{dt}}}"#,
        i % 256,
        1_720_589_697 + i
    )
    .into_bytes()
}

/// A run over known traffic: the scraped counters match what was sent (processed +
/// dead-lettered = received, per code, delivered per topic, latency samples per offset), the
/// endpoints answer, and every log line (with `--log-format json`) is a JSON object.
#[test]
fn metrics_match_a_run_and_json_logs_parse() {
    let Some(brokers) = require_broker() else {
        return;
    };
    let input = unique("ops-metrics");
    let group = unique("ops-group");
    create_topic(&brokers, &input, 2, &[]);
    let mut records = Vec::new();
    let mut push = |value: Option<Vec<u8>>, i: usize| {
        let mut r = Rec::new(Some(format!("k{i}").as_bytes()), value.as_deref());
        r.partition = (i % 2) as i32;
        records.push(r);
    };
    let (valid, invalid_json, missing, tombstones, not_object) = (150, 20, 10, 5, 7);
    let mut i = 0;
    for _ in 0..valid {
        push(Some(event(i, true)), i);
        i += 1;
    }
    for _ in 0..invalid_json {
        push(Some(b"{not json".to_vec()), i);
        i += 1;
    }
    for _ in 0..missing {
        push(Some(event(i, false)), i);
        i += 1;
    }
    for _ in 0..tombstones {
        push(None, i);
        i += 1;
    }
    for _ in 0..not_object {
        push(Some(b"[1, 2]".to_vec()), i);
        i += 1;
    }
    let total = i;
    produce(&brokers, &input, &records);

    let mut run = Running::pipeline(
        &brokers,
        &input,
        &group,
        &[
            "--metrics-addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--workers",
            "3",
            "--window",
            "1s",
            "--allowed-lateness",
            "1s",
        ],
    );
    let addr = metrics_addr(&run);
    let out = format!("{input}-out");
    let dlq = format!("{input}-dlq");
    let insights = format!("{input}-insights");
    let end = end_offsets(&brokers, &input, 2);
    let settled = wait_until(Duration::from_secs(60), || {
        let m = scrape(&addr);
        m.get("kafka_pipeline_in_flight_records") == Some(&0.0)
            && m.get("kafka_pipeline_events_received_total") == Some(&(total as f64))
            && m.get("kafka_pipeline_consumer_lag_sum") == Some(&0.0)
            && committed(&brokers, &group, &input, 2) == end
    });
    let m = scrape(&addr);
    assert!(settled, "{m:#?}\nlog:\n{}", run.log_text());

    let received = metric(&m, "kafka_pipeline_events_received_total");
    let processed = metric(&m, "kafka_pipeline_events_processed_total");
    let code = |c: &str| {
        metric(
            &m,
            &format!("kafka_pipeline_events_dead_lettered_total{{code=\"{c}\"}}"),
        )
    };
    let dead: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("kafka_pipeline_events_dead_lettered_total{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(received, total as f64);
    assert_eq!(processed, valid as f64);
    assert_eq!(
        processed + dead,
        received,
        "processed + dead-lettered = received"
    );
    assert_eq!(code("invalid_json"), invalid_json as f64);
    assert_eq!(code("missing_field"), missing as f64);
    assert_eq!(code("tombstone"), tombstones as f64);
    assert_eq!(code("not_an_object"), not_object as f64);
    assert_eq!(code("invalid_type"), 0.0);
    let delivered = |t: &str| {
        metric(
            &m,
            &format!("kafka_pipeline_records_delivered_total{{topic=\"{t}\"}}"),
        )
    };
    assert_eq!(delivered(&out), valid as f64);
    assert_eq!(delivered(&dlq), dead);
    assert!(delivered(&insights) >= 1.0, "{m:#?}");
    let windows = metric(&m, "kafka_pipeline_insights_windows_published_total");
    assert_eq!(
        delivered(&insights),
        windows,
        "every published window delivered"
    );
    assert_eq!(
        metric(
            &m,
            &format!("kafka_pipeline_delivery_failures_total{{topic=\"{out}\"}}")
        ),
        0.0
    );
    assert_eq!(metric(&m, "kafka_pipeline_workers"), 3.0);
    assert!(metric(&m, "kafka_pipeline_commits_total") >= 1.0);
    assert!(metric(&m, "kafka_pipeline_last_commit_timestamp_seconds") > 1.7e9);
    assert!(metric(&m, "kafka_pipeline_rebalances_total{kind=\"assign\"}") >= 1.0);
    assert_eq!(metric(&m, "kafka_pipeline_consumer_paused"), 0.0);
    for p in 0..2 {
        let lag = format!("kafka_pipeline_consumer_lag{{topic=\"{input}\",partition=\"{p}\"}}");
        assert_eq!(metric(&m, &lag), 0.0);
    }
    // One offset in 64 is timed: offsets 0, 64, 128, … of each partition.
    let sampled: i64 = end.values().map(|&e| (e + 63) / 64).sum();
    let count = metric(&m, "kafka_pipeline_processing_latency_seconds_count");
    assert_eq!(count, sampled as f64, "{m:#?}");
    assert_eq!(
        metric(
            &m,
            "kafka_pipeline_processing_latency_seconds_bucket{le=\"+Inf\"}"
        ),
        count
    );
    assert!(m
        .keys()
        .any(|k| k.starts_with("kafka_pipeline_build_info{version=\"")));
    assert_eq!(metric(&m, "kafka_pipeline_ready"), 1.0);
    assert_eq!(get(&addr, "/health"), Some((200, "ok\n".into())));
    assert_eq!(get(&addr, "/ready"), Some((200, "ready\n".into())));
    assert_eq!(get(&addr, "/nope").map(|r| r.0), Some(404));

    run.stop("pipeline");
    let log = run.log_text();
    let mut lines = 0;
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        for key in ["ts", "level", "target", "message"] {
            assert!(v[key].is_string(), "{key} in {line}");
        }
        assert!(v["fields"].is_object(), "{line}");
        lines += 1;
    }
    assert!(lines >= 5, "{log}");
    assert!(log.contains("\"message\":\"subscribed to "), "{log}");
    // No payload contents in the logs (the events carry these ids and IPs).
    for needle in ["u-1", "d-1", "10.0.0.", "not json"] {
        assert!(!log.contains(needle), "{needle:?} in the log:\n{log}");
    }
}
