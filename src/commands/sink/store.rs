//! The PostgreSQL side of the sink: connection, migrations, and the one transaction per batch
//! that makes each insight record count exactly once.
//!
//! A batch is applied in a single transaction that
//! 1. takes a transaction-scoped advisory lock, so sink runs that share a database (a restart
//!    that overlaps the old process, two instances in one group during a rebalance) apply
//!    batches one after the other;
//! 2. reads the stored next offset of each partition and drops the batch's records below it
//!    (applied before);
//! 3. reads the stored state of every window the rest touch, merges the records into it
//!    ([`super::state`]), and writes the state and the window's row;
//! 4. writes the new next offsets and the skipped records, and commits.
//!
//! So the rows, the window states and the offsets always move together: a crash before the
//! commit leaves all three as they were and the records are read again; after it, they are
//! not applied again whatever Kafka's committed offsets say.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use postgres::{Client, NoTls, Transaction};

use super::row::{clean_text, WindowRow};
use super::state::{merge_into, plan, Batch, Skip, WindowState};
use crate::insights::InsightRecord;

/// The migrations in the repository, in order: (version, file name, SQL).
pub const MIGRATIONS: [(i32, &str, &str); 1] = [(
    1,
    "0001_insights.sql",
    include_str!("../../../migrations/0001_insights.sql"),
)];

/// Advisory lock key of the sink's writers (and of migrations): "kpsink" in ASCII.
const LOCK_KEY: i64 = 0x6b70_7369_6e6b;

/// Why the store could not do something.
#[derive(Debug)]
pub enum StoreError {
    /// PostgreSQL cannot be reached, the connection broke, or the server asks to retry
    /// (SQLSTATE classes 08, 40, 53, 55, 57, 58): retry with backoff, commit nothing.
    Unavailable(String),
    /// PostgreSQL refused the data of the batch (classes 22, 23): apply it record by record,
    /// skipping a record that is refused on its own.
    Refused(String),
    /// Anything else: the schema, permissions, a stored state that does not parse. Stop.
    Fatal(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(e) => write!(f, "PostgreSQL unavailable: {e}"),
            StoreError::Refused(e) => write!(f, "PostgreSQL refused the batch: {e}"),
            StoreError::Fatal(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        let text = match e.as_db_error() {
            Some(db) => format!("{} ({})", db.message(), db.code().code()),
            None => match std::error::Error::source(&e) {
                Some(cause) => format!("{e}: {cause}"),
                None => e.to_string(),
            },
        };
        match e.code().map(|c| &c.code()[..2]) {
            None | Some("08" | "40" | "53" | "55" | "57" | "58") => StoreError::Unavailable(text),
            Some("22" | "23") => StoreError::Refused(text),
            Some(_) => StoreError::Fatal(format!("PostgreSQL: {text}")),
        }
    }
}

/// What one applied batch did.
#[derive(Debug, Default)]
pub struct Applied {
    /// Records merged into windows.
    pub merged: u64,
    /// Windows whose row was written.
    pub windows: usize,
    /// Exact re-sends dropped.
    pub duplicates: u64,
    /// Records that were not insight records.
    pub skipped: Vec<Skip>,
    /// Records applied before (below the stored offset).
    pub replayed: u64,
    /// The next offsets now stored, per partition.
    pub offsets: BTreeMap<i32, i64>,
}

/// A connection (made on demand, again after it breaks) to the sink's database.
pub struct Store {
    config: postgres::Config,
    client: Option<Client>,
    topic: String,
}

impl Store {
    /// A store for the records of `topic` in the database `url` names (not connected yet).
    pub fn new(url: &str, topic: &str) -> Result<Store, StoreError> {
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Fatal(format!("--postgres-url: {e}")))?;
        config
            .application_name("kafka-pipeline-sink")
            .connect_timeout(Duration::from_secs(5));
        Ok(Store {
            config,
            client: None,
            topic: topic.to_owned(),
        })
    }

    /// Where the store writes, without the password: `user@host:port/dbname`.
    pub fn describe(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(h)) => h.clone(),
            Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        format!(
            "{}@{host}:{port}/{}",
            self.config.get_user().unwrap_or("?"),
            self.config.get_dbname().unwrap_or("?")
        )
    }

    fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        if self.client.is_none() {
            let mut client = self.config.connect(NoTls)?;
            client.batch_execute("SET statement_timeout = '60s'")?;
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected just above"))
    }

    /// Drops the connection (after an error), so the next call connects afresh.
    pub fn disconnect(&mut self) {
        self.client = None;
    }

    /// Applies the migrations not applied yet (under the advisory lock, so concurrent starts
    /// apply each once) and checks that the database belongs to this topic.
    pub fn prepare(&mut self) -> Result<(), StoreError> {
        let topic = self.topic.clone();
        let client = self.client()?;
        client.execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])?;
        let result = migrate(client).and_then(|()| check_topic(client, &topic));
        client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])?;
        result
    }

    /// The stored next offset of each partition of the topic.
    pub fn offsets(&mut self) -> Result<BTreeMap<i32, i64>, StoreError> {
        let topic = self.topic.clone();
        let client = self.client()?;
        let rows = client.query(
            "SELECT partition, next_offset FROM sink_offsets WHERE topic = $1",
            &[&topic],
        )?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Applies a batch in one transaction (see the module doc); records named in `reject` are
    /// stored as skipped.
    pub fn apply(
        &mut self,
        batch: &Batch,
        reject: &BTreeMap<(i32, i64), String>,
    ) -> Result<Applied, StoreError> {
        let topic = self.topic.clone();
        let client = self.client()?;
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])?;
        let stored: BTreeMap<i32, i64> = tx
            .query(
                "SELECT partition, next_offset FROM sink_offsets WHERE topic = $1",
                &[&topic],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let plan = plan(batch, &stored, reject);
        let merged = plan.fresh.len() as u64;
        let starts: BTreeSet<i64> = plan.fresh.iter().map(|r| r.window_start as i64).collect();
        let mut windows = load_states(&mut tx, &starts.into_iter().collect::<Vec<_>>())?;
        let (changed, duplicates) = merge_into(&mut windows, plan.fresh);
        let upsert_row = tx.prepare(&upsert_row_sql())?;
        for start in &changed {
            let state = &windows[start];
            write_state(&mut tx, state)?;
            write_row(&mut tx, &upsert_row, &WindowRow::of(state))?;
        }
        for (&partition, &next) in &plan.offsets {
            if stored.get(&partition) != Some(&next) {
                tx.execute(
                    "INSERT INTO sink_offsets (topic, partition, next_offset) VALUES ($1, $2, $3)
                     ON CONFLICT (topic, partition)
                     DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()",
                    &[&topic, &partition, &next],
                )?;
            }
        }
        for skip in &plan.skipped {
            tx.execute(
                "INSERT INTO sink_skipped (topic, partition, \"offset\", reason)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[
                    &topic,
                    &skip.partition,
                    &skip.offset,
                    &clean_text(&skip.reason),
                ],
            )?;
        }
        tx.commit()?;
        Ok(Applied {
            merged: merged - duplicates,
            windows: changed.len(),
            duplicates,
            skipped: plan.skipped,
            replayed: plan.replayed,
            offsets: plan.offsets,
        })
    }
}

fn migrate(client: &mut Client) -> Result<(), StoreError> {
    client.batch_execute(
        "CREATE TABLE IF NOT EXISTS sink_schema_version (
             version    integer     PRIMARY KEY,
             name       text        NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )?;
    let current: i32 = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM sink_schema_version",
            &[],
        )?
        .get(0);
    let latest = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > latest {
        return Err(StoreError::Fatal(format!(
            "the database's schema is at version {current}, newer than this build knows ({latest}): run a newer kafka-pipeline"
        )));
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        let mut tx = client.transaction()?;
        let applied = tx.batch_execute(sql).and_then(|()| {
            tx.execute(
                "INSERT INTO sink_schema_version (version, name) VALUES ($1, $2)",
                &[version, name],
            )
        });
        if let Err(e) = applied {
            return Err(match StoreError::from(e) {
                StoreError::Unavailable(e) => StoreError::Unavailable(e),
                StoreError::Refused(e) | StoreError::Fatal(e) => {
                    StoreError::Fatal(migration_failed(name, &e))
                }
            });
        }
        tx.commit()?;
        log::info!("applied migration {name} (schema version {version})");
    }
    Ok(())
}

/// The error of a failed migration, with the fix when it is the missing hll extension.
fn migration_failed(name: &str, error: &str) -> String {
    let hint = if error.contains("hll") {
        "; the hll extension must be installed on the server (Debian: apt-get install postgresql-15-hll) \
         and created by a role allowed to (CREATE EXTENSION hll)"
    } else {
        ""
    };
    format!("migration {name} failed: {error}{hint}")
}

/// One database holds the windows of one insights topic: offsets of another topic mean the
/// rows are that topic's, and mixing would add up two feeds.
fn check_topic(client: &mut Client, topic: &str) -> Result<(), StoreError> {
    let other = client.query_opt(
        "SELECT topic FROM sink_offsets WHERE topic <> $1 LIMIT 1",
        &[&topic],
    )?;
    match other {
        Some(row) => Err(StoreError::Fatal(format!(
            "this database holds the insights of topic {:?}, not {topic:?}: use another database (or schema) per topic",
            row.get::<_, String>(0)
        ))),
        None => Ok(()),
    }
}

fn load_states(
    tx: &mut Transaction<'_>,
    starts: &[i64],
) -> Result<BTreeMap<u64, WindowState>, StoreError> {
    let rows = tx.query(
        "SELECT window_start, record, digests FROM sink_window_state WHERE window_start = ANY($1)",
        &[&starts],
    )?;
    let mut states = BTreeMap::new();
    for row in rows {
        let start: i64 = row.get(0);
        let text: String = row.get(1);
        let digests: Vec<i64> = row.get(2);
        let record = InsightRecord::from_json(text.as_bytes()).map_err(|e| {
            StoreError::Fatal(format!(
                "stored state of window {start} in sink_window_state does not parse: {e}"
            ))
        })?;
        let digests = digests.into_iter().map(|d| d as u64).collect();
        states.insert(start as u64, WindowState { record, digests });
    }
    Ok(states)
}

fn write_state(tx: &mut Transaction<'_>, state: &WindowState) -> Result<(), StoreError> {
    let digests: Vec<i64> = state.digests.iter().map(|&d| d as i64).collect();
    tx.execute(
        "INSERT INTO sink_window_state (window_start, record, digests) VALUES ($1, $2, $3)
         ON CONFLICT (window_start) DO UPDATE SET record = EXCLUDED.record, digests = EXCLUDED.digests",
        &[
            &(state.record.window_start as i64),
            &state.record.to_json(),
            &digests,
        ],
    )?;
    Ok(())
}

/// The columns of `insight_windows` the sink writes, in parameter order, with the SQL type a
/// parameter is cast through where the client cannot name it (`hll` arrives as bytea).
const ROW_COLUMNS: [(&str, &str); 29] = [
    ("window_start", ""),
    ("window_end", ""),
    ("received", ""),
    ("valid", ""),
    ("dead_lettered", ""),
    ("missing_device_type", ""),
    ("late_events", ""),
    ("dead_lettered_by_code", ""),
    ("by_device_type", ""),
    ("by_app_version", ""),
    ("by_locale", ""),
    ("ip_classes", ""),
    ("distinct_users", ""),
    ("distinct_devices", ""),
    ("users_hll", "::bytea::hll"),
    ("devices_hll", "::bytea::hll"),
    ("users_sketch", ""),
    ("devices_sketch", ""),
    ("lag_count", ""),
    ("lag_max_ms", ""),
    ("lag_p50_ms", ""),
    ("lag_p95_ms", ""),
    ("lag_p99_ms", ""),
    ("instances", ""),
    ("partitions", ""),
    ("records", ""),
    ("partial", ""),
    ("final", ""),
    ("published_at", ""),
];

fn upsert_row_sql() -> String {
    let names: Vec<&str> = ROW_COLUMNS.iter().map(|c| c.0).collect();
    let values: Vec<String> = ROW_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("${}{}", i + 1, c.1))
        .collect();
    let updates: Vec<String> = names[1..]
        .iter()
        .map(|n| format!("{n} = EXCLUDED.{n}"))
        .collect();
    format!(
        "INSERT INTO insight_windows ({}) VALUES ({}) ON CONFLICT (window_start) DO UPDATE SET {}, updated_at = now()",
        names.join(", "),
        values.join(", "),
        updates.join(", ")
    )
}

fn write_row(
    tx: &mut Transaction<'_>,
    statement: &postgres::Statement,
    row: &WindowRow,
) -> Result<(), StoreError> {
    let [received, valid, dead_lettered, missing, late] = &row.totals;
    let [by_code, devices, versions, locales, ip_classes] = &row.maps;
    let [users, device_ids] = &row.distinct;
    let [users_hll, devices_hll] = &row.hll;
    let [users_sketch, devices_sketch] = &row.sketches;
    let [lag_count, lag_max] = &row.lag;
    let [p50, p95, p99] = &row.lag_quantiles;
    tx.execute(
        statement,
        &[
            &row.start_time(),
            &row.end_time(),
            received,
            valid,
            dead_lettered,
            missing,
            late,
            by_code,
            devices,
            versions,
            locales,
            ip_classes,
            users,
            device_ids,
            users_hll,
            devices_hll,
            users_sketch,
            devices_sketch,
            lag_count,
            lag_max,
            p50,
            p95,
            p99,
            &row.instances,
            &row.partitions,
            &row.records,
            &row.partial,
            &row.final_,
            &row.published_at(),
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsert_names_every_column_once() {
        let sql = upsert_row_sql();
        assert!(sql.contains("$15::bytea::hll, $16::bytea::hll"), "{sql}");
        assert!(sql.contains("$29)"), "{sql}");
        assert!(!sql.contains("window_start = EXCLUDED"));
        let migration = MIGRATIONS[0].2;
        for (name, _) in ROW_COLUMNS {
            assert!(
                migration.contains(&format!("\n    {name} ")),
                "{name} not in the migration"
            );
        }
    }

    #[test]
    fn a_missing_hll_extension_names_the_package() {
        assert!(
            migration_failed("0001_insights.sql", "extension \"hll\" is not available")
                .contains("postgresql-15-hll")
        );
    }
}
