//! `kafka-pipeline sink` end to end against the real broker and a real PostgreSQL
//! (`scripts/postgres.sh start`): known traffic in three windows through two pipeline
//! instances, then the sink. The rows equal the known counts exactly (distinct users within the
//! sketch's error); a second run changes no row; a sink killed with -9 mid-way and restarted,
//! two sinks writing one database at once, and a sink whose PostgreSQL is stopped for 10 s all
//! end with the same rows; bad records are skipped with their reason.
//!
//! Every test database is new (random name). Without PostgreSQL the tests skip loudly, and
//! fail when CI=true. The PostgreSQL URL comes from KAFKA_PIPELINE_TEST_POSTGRES or the file
//! scripts/postgres.sh writes; the outage test needs the script's server (it stops it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kafka_pipeline::insights::{merge_by_window, InsightRecord};
use postgres::{Client, NoTls};

use crate::common::*;

/// Window starts (10 s windows).
const T0: u64 = 1_700_000_000;
/// Copies of the pipeline's records shifted into other windows, so that a sink has enough
/// records (one transaction each with --max-batch 1) to be killed mid-way.
const EXTRA_WINDOWS: u64 = 150;

/// The tests share one PostgreSQL server, and one of them stops it.
static SERVER: Mutex<()> = Mutex::new(());

/// Expected counts of one window.
#[derive(Debug, Default)]
struct Expected {
    received: i64,
    valid: i64,
    missing_device_type: i64,
    by_code: BTreeMap<String, i64>,
    by_device: BTreeMap<String, i64>,
    by_locale: BTreeMap<String, i64>,
    users: BTreeSet<String>,
}

const LOCALES: [&str; 5] = ["CA", "NY", "TX", "WA", "IN"];

/// Three windows: 400, 800 and 1200 users with two valid events each, some events without
/// device_type and some with a bad locale (dead letters with a valid timestamp). Returned in
/// two halves (alternate events), one per pipeline instance, so both count in every window.
fn traffic() -> ([Vec<Rec>; 2], BTreeMap<u64, Expected>) {
    let mut halves = [Vec::new(), Vec::new()];
    let mut expected = BTreeMap::new();
    let mut n = 0usize;
    let mut push = |halves: &mut [Vec<Rec>; 2], value: Vec<u8>| {
        let key = format!("k-{n}");
        halves[n % 2].push(Rec::new(Some(key.as_bytes()), Some(&value)));
        n += 1;
    };
    for k in 0..3u64 {
        let start = T0 + 10 * k;
        let e: &mut Expected = expected.entry(start).or_default();
        for u in 0..400 * (k + 1) {
            let user = format!("user-{k}-{u}");
            let device = if u % 3 == 0 { "android" } else { "iOS" };
            let locale = LOCALES[(u % 5) as usize];
            for repeat in 0..2 {
                push(
                    &mut halves,
                    login(&user, start + (u + repeat) % 10, Some(device), locale),
                );
                e.valid += 1;
                e.received += 1;
                *e.by_device.entry(device.to_lowercase()).or_default() += 1;
                *e.by_locale.entry(locale.into()).or_default() += 1;
            }
            e.users.insert(user);
        }
        for i in 0..10 * (k + 1) {
            push(
                &mut halves,
                login(&format!("m-{k}-{i}"), start + 3, None, "WA"),
            );
            e.received += 1;
            e.missing_device_type += 1;
            *e.by_code.entry("missing_field".into()).or_default() += 1;
        }
        for i in 0..5 {
            push(
                &mut halves,
                login(&format!("b-{k}-{i}"), start + 4, Some("ios"), "WAS"),
            );
            e.received += 1;
            *e.by_code.entry("invalid_value".into()).or_default() += 1;
        }
    }
    (halves, expected)
}

/// The PostgreSQL URL, or None (skipping loudly; panics in CI).
fn require_postgres() -> Option<String> {
    let url = std::env::var("KAFKA_PIPELINE_TEST_POSTGRES")
        .ok()
        .or_else(|| {
            std::fs::read_to_string(cache().join("postgres/url"))
                .ok()
                .map(|s| s.trim().to_owned())
        });
    if let Some(url) = url.filter(|u| Client::connect(u, NoTls).is_ok()) {
        return Some(url);
    }
    let msg = "no PostgreSQL: start one with `scripts/postgres.sh start` (or set KAFKA_PIPELINE_TEST_POSTGRES)";
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("\n!!!!!!!! SKIPPING PostgreSQL test: {msg} !!!!!!!!\n");
    None
}

fn cache() -> PathBuf {
    std::env::var("KAFKA_PIPELINE_CACHE").map_or_else(
        |_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/kafka-pipeline"),
        PathBuf::from,
    )
}

/// A new database on the server of `url`; returns its URL.
fn new_database(url: &str) -> String {
    let name = format!("{TEST_DB_PREFIX}{}", unique("").replace('-', "_"));
    let mut admin = Client::connect(url, NoTls).expect("connect");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create database");
    let (base, _) = url.rsplit_once('/').expect("URL with a database");
    format!("{base}/{name}")
}

/// Names of the test databases: [`drop_test_databases`] removes them after a passing run (a
/// failing run leaves its databases to look at, until the next passing one).
const TEST_DB_PREFIX: &str = "sink_test";

fn drop_test_databases(url: &str) {
    let mut admin = Client::connect(url, NoTls).expect("connect");
    let names: Vec<String> = admin
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE $1",
            &[&format!("{TEST_DB_PREFIX}%")],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for name in names {
        admin
            .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .unwrap();
    }
}

/// The pipeline's topics and records, shared by the tests: input (2 partitions) through
/// instance `a` (first half) and `b` (second half), then the insights topic completed with
/// shifted copies and bad records.
struct Fixture {
    brokers: String,
    insights: String,
    expected: BTreeMap<u64, Expected>,
    /// The valid insight records in the topic (the re-send once).
    records: Vec<InsightRecord>,
    /// Bad records added: their number.
    bad: usize,
}

fn fixture(brokers: &str) -> Fixture {
    let input = unique("it-sink");
    let insights = format!("{input}-insights");
    create_topic(brokers, &input, 2, &[]);
    create_topic(brokers, &insights, 2, &[]);
    let (halves, expected) = traffic();
    let group = unique("it-sink-group");
    for (half, instance) in halves.iter().zip(["a", "b"]) {
        produce(brokers, &input, half);
        let mut run = Running::pipeline(
            brokers,
            &input,
            &group,
            &[
                "--workers",
                "2",
                "--instance-id",
                instance,
                // An explicit instance id makes a static group member, which keeps its
                // partitions after it exits until its session times out: 6 s (the broker's
                // minimum) instead of 45 s before instance b gets them.
                "--consumer-property",
                "session.timeout.ms=6000",
                "--exit-at-end",
                "--metrics-addr",
                "",
                // The windows are written one after another: none may close before its last
                // event arrives (that event would count as late in a later window).
                "--allowed-lateness",
                "1m",
            ],
        );
        let status = run.wait(Duration::from_secs(60));
        assert!(
            status.success(),
            "pipeline {instance}: {status:?}\n{}",
            run.log_text()
        );
    }
    let published = read_all(brokers, &insights, 6, Duration::from_secs(20));
    let mut records: Vec<InsightRecord> = published
        .iter()
        .map(|r| InsightRecord::from_json(r.value.as_deref().unwrap()).unwrap())
        .collect();
    let instances: BTreeSet<&str> = records.iter().map(|r| r.instance.as_str()).collect();
    assert_eq!(instances, BTreeSet::from(["a", "b"]));

    let mut extra = Vec::new();
    for k in 1..=EXTRA_WINDOWS {
        let r = &records[k as usize % records.len()];
        let mut v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        v["window_start"] = (r.window_start + 1000 * k).into();
        v["window_end"] = (r.window_end + 1000 * k).into();
        let bytes = serde_json::to_vec(&v).unwrap();
        extra.push(Rec::new(
            Some(v["window_start"].to_string().as_bytes()),
            Some(&bytes),
        ));
        records.push(InsightRecord::from_json(&bytes).unwrap());
    }
    let mut bad_sketch: serde_json::Value = serde_json::from_str(&records[0].to_json()).unwrap();
    bad_sketch["users_sketch"] = "AgwB".into();
    let bad = [
        Rec::new(Some(b"x"), Some(b"not an insight record")),
        Rec::new(Some(b"x"), None),
        Rec::new(Some(b"x"), Some("[".repeat(100_000).as_bytes())),
        Rec::new(Some(b"x"), Some(bad_sketch.to_string().as_bytes())),
    ];
    // An exact re-send of a real record: dropped by digest, as the reader drops it.
    let resend = Rec::new(Some(b"resend"), Some(records[0].to_json().as_bytes()));
    produce(
        brokers,
        &insights,
        &[&extra[..], &bad[..], &[resend]].concat(),
    );
    Fixture {
        brokers: brokers.to_owned(),
        insights,
        expected,
        records,
        bad: bad.len(),
    }
}

/// A running `kafka-pipeline sink`; killed if the test panics.
fn start_sink(f: &Fixture, topic: &str, db: &str, extra: &[&str]) -> Running {
    let log = std::env::temp_dir().join(format!("{}.log", unique("sink")));
    let file = std::fs::File::create(&log).unwrap();
    let child = pipeline()
        .args(["sink", "--brokers", &f.brokers, "--insights-topic", topic])
        .args([
            "--postgres-url",
            db,
            "--sink-group-id",
            &unique("it-sink-g"),
        ])
        .args(["--progress-interval", "1s"])
        .args(extra)
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .expect("start sink");
    Running { child, log }
}

/// Runs a sink to the end of the topic and asserts a clean exit.
fn sink_to_end(f: &Fixture, topic: &str, db: &str, extra: &[&str]) -> String {
    let mut sink = start_sink(f, topic, db, &[&["--exit-at-end"], extra].concat());
    let status = sink.wait(Duration::from_secs(60));
    let log = sink.log_text();
    assert!(status.success(), "sink: {status:?}\n{log}");
    log
}

/// Every row as JSON text, in window order; `updated_at` left out unless asked for.
fn rows(db: &str, with_updated_at: bool) -> Vec<String> {
    let drop = if with_updated_at {
        ""
    } else {
        " - 'updated_at'"
    };
    let mut c = Client::connect(db, NoTls).unwrap();
    c.query(
        &format!("SELECT (to_jsonb(w){drop})::text FROM insight_windows w ORDER BY window_start"),
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

fn json_counts(v: &serde_json::Value) -> BTreeMap<String, i64> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, n)| (k.clone(), n.as_i64().unwrap()))
        .collect()
}

/// The three real windows' rows equal the known counts; every row equals the library's merge
/// of its records.
fn check_rows(f: &Fixture, db: &str) {
    let mut c = Client::connect(db, NoTls).unwrap();
    let merged = merge_by_window(&f.records);
    let rows = c
        .query(
            "SELECT extract(epoch FROM window_start)::bigint, received, valid, missing_device_type,
                    dead_lettered_by_code, by_device_type, by_locale, distinct_users,
                    hll_cardinality(users_hll)::bigint, instances, records
             FROM insight_windows ORDER BY window_start",
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), merged.len());
    for row in &rows {
        let start = row.get::<_, i64>(0) as u64;
        let m = &merged[&start];
        assert_eq!(row.get::<_, i64>(1), m.received as i64, "window {start}");
        assert_eq!(
            row.get::<_, i64>(7),
            m.distinct_users as i64,
            "window {start}"
        );
        let Some(e) = f.expected.get(&start) else {
            continue;
        };
        assert_eq!(row.get::<_, i64>(1), e.received, "window {start}");
        assert_eq!(row.get::<_, i64>(2), e.valid, "window {start}");
        assert_eq!(
            row.get::<_, i64>(3),
            e.missing_device_type,
            "window {start}"
        );
        assert_eq!(json_counts(&row.get(4)), e.by_code, "window {start}");
        assert_eq!(json_counts(&row.get(5)), e.by_device, "window {start}");
        assert_eq!(json_counts(&row.get(6)), e.by_locale, "window {start}");
        let truth = e.users.len() as f64;
        for (what, estimate) in [("sketch", row.get::<_, i64>(7)), ("hll", row.get(8))] {
            let error = (estimate as f64 - truth).abs() / truth;
            // Three standard errors of precision 12 (1.04 / 64).
            assert!(
                error < 0.049,
                "window {start}: {what} {estimate} for {truth} users"
            );
        }
        assert_eq!(row.get::<_, Vec<String>>(9), ["a", "b"], "window {start}");
        // One record per instance (the re-send of the first is not counted).
        assert_eq!(row.get::<_, i64>(10), 2, "window {start}");
    }
    // SQL unions the three windows' sketches: their users are disjoint.
    let total: f64 = f.expected.values().map(|e| e.users.len() as f64).sum();
    let union: f64 = c
        .query_one(
            "SELECT hll_cardinality(hll_union_agg(users_hll)) FROM insight_windows
             WHERE window_start < to_timestamp($1)",
            &[&((T0 + 30) as f64)],
        )
        .unwrap()
        .get(0);
    assert!(
        (union - total).abs() / total < 0.049,
        "union {union} for {total} users"
    );
    let skipped: i64 = c
        .query_one("SELECT count(*) FROM sink_skipped", &[])
        .unwrap()
        .get(0);
    assert_eq!(skipped as usize, f.bad);
}

/// Every SQL query of the insights dashboard and of the alert rule runs on the real schema
/// (Grafana's macros replaced as Grafana expands them), and each dashboard query finds rows.
fn check_grafana_queries(db: &str) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("dashboards/insights.json")).unwrap(),
    )
    .unwrap();
    let range = "BETWEEN '2023-11-14T00:00:00Z' AND '2023-11-16T00:00:00Z'";
    let expand = |sql: &str| {
        let mut sql = sql.to_owned();
        while let Some(at) = sql.find("$__timeFilter(") {
            let end = at + sql[at..].find(')').unwrap();
            let column = sql[at + "$__timeFilter(".len()..end].to_owned();
            sql.replace_range(at..=end, &format!("{column} {range}"));
        }
        sql
    };
    let mut c = Client::connect(db, NoTls).unwrap();
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let sql = expand(target["rawSql"].as_str().unwrap());
            let found = c
                .query(&sql, &[])
                .unwrap_or_else(|e| panic!("{}: {e}\n{sql}", panel["title"]));
            let skipped_panel = sql.contains("sink_skipped");
            assert!(
                !found.is_empty() || skipped_panel,
                "{}: no rows\n{sql}",
                panel["title"]
            );
            checked += 1;
        }
    }
    assert!(checked >= 10);
    // The alert's query: the block under `rawSql: |-`.
    let alert = std::fs::read_to_string(root.join("provisioning/alerting/insights.yml")).unwrap();
    let lines: Vec<&str> = alert.lines().collect();
    let at = lines.iter().position(|l| l.trim() == "rawSql: |-").unwrap();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let sql: Vec<&str> = lines[at + 1..]
        .iter()
        .take_while(|l| indent(l) > indent(lines[at]))
        .copied()
        .collect();
    let share: f64 = c.query_one(&sql.join("\n"), &[]).unwrap().get(0);
    assert_eq!(share, 0.0, "2023's windows are not in the last 15 minutes");
}

fn applied_offsets(db: &str) -> i64 {
    Client::connect(db, NoTls)
        .ok()
        .and_then(|mut c| {
            c.query_one(
                "SELECT coalesce(sum(next_offset), 0)::bigint FROM sink_offsets",
                &[],
            )
            .ok()
        })
        .map_or(0, |r| r.get(0))
}

fn end_total(brokers: &str, topic: &str) -> i64 {
    end_offsets(brokers, topic, 2).values().sum()
}

fn postgres_script(command: &str) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/postgres.sh");
    let status = Command::new(script)
        .arg(command)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "scripts/postgres.sh {command}");
}

#[test]
fn sink_writes_each_window_once_through_reruns_kills_and_outages() {
    let Some(brokers) = require_broker() else {
        return;
    };
    let Some(url) = require_postgres() else {
        return;
    };
    let _server = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let f = fixture(&brokers);
    eprintln!("fixture ready after {:?}", started.elapsed());

    // The reference run: known counts, skipped bad records.
    let db = new_database(&url);
    let log = sink_to_end(&f, &f.insights, &db, &[]);
    check_rows(&f, &db);
    assert!(log.contains("skipped the record at"), "{log}");
    let reference = rows(&db, false);
    assert_eq!(reference.len() as u64, 3 + EXTRA_WINDOWS);
    check_grafana_queries(&db);

    // Again over the same topic and database, in another group: nothing changes, not even
    // updated_at.
    let before = rows(&db, true);
    let log = sink_to_end(&f, &f.insights, &db, &[]);
    assert!(
        log.contains("0 records merged, 0 window rows written"),
        "{log}"
    );
    assert_eq!(rows(&db, true), before);
    // One database, one topic: another topic's sink is refused before it writes anything.
    let mut other = start_sink(&f, &format!("{}-other", f.insights), &db, &[]);
    assert!(!other.wait(Duration::from_secs(30)).success());
    assert!(
        other.log_text().contains("use another database"),
        "{}",
        other.log_text()
    );
    eprintln!("reference and re-run done after {:?}", started.elapsed());

    // Killed with -9 mid-way (one transaction per record), then restarted.
    let db_killed = new_database(&url);
    let total = end_total(&brokers, &f.insights);
    let mut sink = start_sink(&f, &f.insights, &db_killed, &["--max-batch", "1"]);
    let midway = wait_until(Duration::from_secs(30), || {
        applied_offsets(&db_killed) >= 10
    });
    sink.signal("KILL");
    sink.wait(Duration::from_secs(10));
    let at_kill = applied_offsets(&db_killed);
    assert!(
        midway && at_kill < total,
        "killed at {at_kill} of {total}\n{}",
        sink.log_text()
    );
    eprintln!("killed with -9 after {at_kill} of {total} records");
    sink_to_end(&f, &f.insights, &db_killed, &[]);
    assert_eq!(
        rows(&db_killed, false),
        reference,
        "killed at {at_kill} of {total}"
    );

    // Two sinks writing one database at once, each reading every record.
    let db_two = new_database(&url);
    let mut first = start_sink(
        &f,
        &f.insights,
        &db_two,
        &["--exit-at-end", "--max-batch", "7"],
    );
    sink_to_end(&f, &f.insights, &db_two, &["--max-batch", "5"]);
    assert!(
        first.wait(Duration::from_secs(60)).success(),
        "{}",
        first.log_text()
    );
    assert_eq!(rows(&db_two, false), reference);
    eprintln!(
        "kill and concurrent runs done after {:?}",
        started.elapsed()
    );

    // PostgreSQL refusing a window's row (here a CHECK constraint): the batch is written record
    // by record and the record that is refused alone is skipped with the server's reason.
    let db_refusing = new_database(&url);
    let mut c = Client::connect(&db_refusing, NoTls).unwrap();
    c.batch_execute(include_str!("../../migrations/0001_insights.sql"))
        .unwrap();
    c.batch_execute(
        "CREATE TABLE sink_schema_version (version integer PRIMARY KEY, name text NOT NULL,
                                           applied_at timestamptz NOT NULL DEFAULT now());
         INSERT INTO sink_schema_version (version, name) VALUES (1, '0001_insights.sql');
         ALTER TABLE insight_windows ADD CONSTRAINT below_2000 CHECK (received < 2000)",
    )
    .unwrap();
    let log = sink_to_end(&f, &f.insights, &db_refusing, &[]);
    assert!(
        log.contains("writing the") && log.contains("one by one"),
        "{log}"
    );
    let refused: Vec<String> = c
        .query(
            "SELECT reason FROM sink_skipped WHERE reason LIKE 'refused%'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].contains("below_2000"), "{refused:?}");
    let third: i64 = c
        .query_one(
            "SELECT received FROM insight_windows WHERE window_start = to_timestamp($1)",
            &[&((T0 + 20) as f64)],
        )
        .unwrap()
        .get(0);
    assert!(
        third < 2000 && third > 1000,
        "one of the two records: {third}"
    );

    // PostgreSQL stopped for 10 s while records arrive: the sink holds them and retries.
    if std::env::var("KAFKA_PIPELINE_TEST_POSTGRES").is_ok() {
        eprintln!("external PostgreSQL: the outage test needs scripts/postgres.sh's server");
        drop_test_databases(&url);
        return;
    }
    let topic = format!("{}-again", f.insights);
    create_topic(&brokers, &topic, 2, &[]);
    let copies = read_all(
        &brokers,
        &f.insights,
        total as usize,
        Duration::from_secs(20),
    );
    let db_outage = new_database(&url);
    let mut sink = start_sink(&f, &topic, &db_outage, &[]);
    assert!(wait_until(Duration::from_secs(20), || sink
        .log_text()
        .contains("assigned")));
    postgres_script("stop");
    let outage = Instant::now();
    produce(&brokers, &topic, &copies);
    std::thread::sleep(Duration::from_secs(10).saturating_sub(outage.elapsed()));
    postgres_script("start");
    let done = wait_until(Duration::from_secs(40), || {
        applied_offsets(&db_outage) == total
    });
    sink.stop("sink");
    let log = sink.log_text();
    assert!(done, "{log}");
    assert!(log.contains("PostgreSQL unavailable"), "{log}");
    assert_eq!(rows(&db_outage, false), reference);
    eprintln!("outage done after {:?}", started.elapsed());
    drop_test_databases(&url);
}
