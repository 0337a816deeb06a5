//! The insight record: one JSON object per window per pipeline instance on the insights topic,
//! keyed by the window start (decimal string), and how records of one window merge.
//!
//! # Fields
//!
//! | field | meaning |
//! |---|---|
//! | `format` | record format version, `1` |
//! | `window_start`, `window_end` | the window `[start, end)`, Unix seconds |
//! | `window_start_time`, `window_end_time` | the same in RFC 3339 UTC |
//! | `instance` | id of the publishing pipeline instance (merged records: the ids, sorted, comma-separated) |
//! | `partitions` | input partitions whose records are counted, sorted |
//! | `partial` | more records for this window may follow from this instance (merged: from some instance) |
//! | `final` | the last record of the window from this instance: `!partial` |
//! | `epoch` | the instance's commit epoch that published it (0 in older records) |
//! | `published_at_ms`, `published_at_time` | when it was published: Unix milliseconds, RFC 3339 |
//! | `received` | events counted in this window: `valid + dead_lettered` |
//! | `valid` | events written to `processed_data` |
//! | `dead_lettered` | events written to the dead-letter topic |
//! | `dead_lettered_by_code` | the same by error code (non-zero codes only) |
//! | `missing_device_type` | events without `device_type`: dead-lettered for it, or filled in |
//! | `late_events` | events that arrived after their own window had closed, counted here instead and in no other field |
//! | `by_device_type`, `by_app_version`, `by_locale` | valid events by value: `top` (ten largest, `{key, count}`, largest first), `distinct` (values counted by name), `counts` (every value; at most 1000 per window, the rest under `"(other)"`) |
//! | `distinct_users`, `distinct_devices` | HyperLogLog estimates (±1.6%) of distinct ids among valid events |
//! | `users_sketch`, `devices_sketch` | the sketches, base64 (see [`super::sketch`]), so readers can merge windows exactly |
//! | `ip_classes` | valid events by address class (non-zero classes only) |
//! | `lag_ms` | processing time minus event time of valid events: `count`, `p50`, `p95`, `p99` (±1.6%, `null` when no valid event), `max` (exact), `negative` (events from the future, counted as 0), `histogram` (base64, see [`super::histogram`]) |
//!
//! `top`, `distinct`, the estimates and the percentiles are derived: a reader that merges
//! records recomputes them from `counts`, the sketches and the histogram. Unknown fields are
//! ignored on reading, so fields can be added without breaking older readers.
//!
//! # Example
//!
//! A 10-second window of a feed at two events per second (the load generator's realistic
//! profile), published by one instance; `src/insights/record/example.json`, checked by a test:
//!
#![doc = concat!("```json\n", include_str!("record/example.json"), "```")]
//!
//! # Merging
//!
//! Each record is an increment: an instance publishes, per commit epoch, what each window gained
//! in it (a delta), and marks the window's last delta final once every worker has closed it;
//! so the records of a window add up. [`merge_records`] sums the counts, merges the sketches and
//! the histograms, unions the instances and partitions, and is partial until every contributing
//! instance has published its final record. Which
//! records to merge (duplicates) is the reader's business: see [`super::table`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::counts::CappedCounts;
use super::histogram::LagHistogram;
use super::sketch::Hll;
use super::window::{labeled, WindowStats};
use crate::transform::{ErrorCode, IpClass, Rfc3339, MAX_TIMESTAMP};

/// Version in the `format` field.
pub const FORMAT_VERSION: u32 = 1;
/// Entries in each `top` list.
pub const TOP_N: usize = 10;

/// One window's insights from one instance (or merged from several). See the module doc.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InsightRecord {
    /// Record format version ([`FORMAT_VERSION`]).
    pub format: u32,
    /// Window start, Unix seconds (the record key).
    pub window_start: u64,
    /// Window end (exclusive), Unix seconds.
    pub window_end: u64,
    /// `window_start` in RFC 3339.
    pub window_start_time: String,
    /// `window_end` in RFC 3339.
    pub window_end_time: String,
    /// Publishing instance id (merged: sorted ids, comma-separated).
    pub instance: String,
    /// Input partitions covered, sorted.
    pub partitions: Vec<i32>,
    /// More records for the window may follow from this instance (every delta but the last).
    pub partial: bool,
    /// The last record of the window from this instance: `!partial`, spelled out for readers.
    #[serde(rename = "final", default)]
    pub is_final: bool,
    /// The publishing instance's commit epoch (0 in records of older versions).
    #[serde(default)]
    pub epoch: u64,
    /// Publication time, Unix milliseconds (merged: the latest).
    pub published_at_ms: u64,
    /// `published_at_ms` in RFC 3339 with milliseconds.
    pub published_at_time: String,
    /// Events counted in the window.
    pub received: u64,
    /// Valid events.
    pub valid: u64,
    /// Dead-lettered events.
    pub dead_lettered: u64,
    /// Dead-lettered events by error code.
    #[serde(with = "labeled::codes")]
    pub dead_lettered_by_code: [u64; ErrorCode::ALL.len()],
    /// Events without `device_type`.
    pub missing_device_type: u64,
    /// Late events counted here.
    pub late_events: u64,
    /// Valid events by device type.
    pub by_device_type: Breakdown,
    /// Valid events by app version.
    pub by_app_version: Breakdown,
    /// Valid events by locale.
    pub by_locale: Breakdown,
    /// Estimated distinct users.
    pub distinct_users: u64,
    /// Estimated distinct devices.
    pub distinct_devices: u64,
    /// Users sketch.
    pub users_sketch: Hll,
    /// Devices sketch.
    pub devices_sketch: Hll,
    /// Valid events by IP address class.
    #[serde(with = "labeled::ip_classes")]
    pub ip_classes: [u64; IpClass::ALL.len()],
    /// Lag of valid events.
    pub lag_ms: LagSummary,
}

/// Counts by value: the top entries, the number of distinct values and every count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breakdown {
    /// The [`TOP_N`] largest counts, largest first (ties by key), `(other)` excluded.
    pub top: Vec<KeyCount>,
    /// Values counted by name (a lower bound when `counts` has `"(other)"`).
    pub distinct: u64,
    /// Every count (capped, see [`CappedCounts`]).
    pub counts: CappedCounts,
}

/// One entry of a top list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCount {
    /// The value.
    pub key: String,
    /// How many events had it.
    pub count: u64,
}

/// Lag percentiles and the histogram they come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LagSummary {
    /// Number of lags recorded (valid events).
    pub count: u64,
    /// Median, milliseconds.
    pub p50: Option<u64>,
    /// 95th percentile.
    pub p95: Option<u64>,
    /// 99th percentile.
    pub p99: Option<u64>,
    /// Maximum (exact).
    pub max: u64,
    /// Negative lags (counted as 0).
    pub negative: u64,
    /// The histogram.
    pub histogram: LagHistogram,
}

/// Why bytes are not a usable insight record.
#[derive(Debug)]
pub enum RecordError {
    /// The record value is null (a tombstone).
    Null,
    /// Not JSON, or not the record's shape (the sketch and histogram are checked here too).
    Json(serde_json::Error),
    /// A format version this build does not know.
    Format(u32),
    /// Fields that contradict each other.
    Inconsistent(&'static str),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Null => f.write_str("null record value"),
            RecordError::Json(e) => write!(f, "not an insight record: {e}"),
            RecordError::Format(v) => write!(f, "insight record format {v} is not supported"),
            RecordError::Inconsistent(what) => write!(f, "inconsistent insight record: {what}"),
        }
    }
}

impl std::error::Error for RecordError {}

/// RFC 3339 of Unix seconds (times past year 9999 are written as its last second).
fn rfc3339(secs: u64) -> String {
    Rfc3339::from_unix(secs.min(MAX_TIMESTAMP))
        .as_str()
        .to_owned()
}

/// RFC 3339 with milliseconds of Unix milliseconds.
fn rfc3339_ms(ms: u64) -> String {
    let seconds = rfc3339(ms / 1000);
    format!("{}.{:03}Z", seconds.trim_end_matches('Z'), ms % 1000)
}

impl Breakdown {
    fn of(counts: CappedCounts) -> Breakdown {
        Breakdown {
            top: counts
                .top(TOP_N)
                .into_iter()
                .map(|(key, count)| KeyCount { key, count })
                .collect(),
            distinct: counts.distinct() as u64,
            counts,
        }
    }
}

impl InsightRecord {
    /// The record of `stats` as published by `instance`, covering input `partitions` (sorted and
    /// de-duplicated here) at `published_at_ms`; partial exactly when `stats` is.
    pub fn from_stats(
        stats: WindowStats,
        instance: &str,
        partitions: &[i32],
        published_at_ms: u64,
    ) -> InsightRecord {
        let partitions: BTreeSet<i32> = partitions.iter().copied().collect();
        let lag = stats.lag;
        InsightRecord {
            format: FORMAT_VERSION,
            window_start: stats.start,
            window_end: stats.end,
            window_start_time: rfc3339(stats.start),
            window_end_time: rfc3339(stats.end),
            instance: instance.to_owned(),
            partitions: partitions.into_iter().collect(),
            partial: stats.partial,
            is_final: !stats.partial,
            epoch: 0,
            published_at_ms,
            published_at_time: rfc3339_ms(published_at_ms),
            received: stats.received,
            valid: stats.valid,
            dead_lettered: stats
                .dead_lettered
                .iter()
                .fold(0, |sum: u64, &n| sum.saturating_add(n)),
            dead_lettered_by_code: stats.dead_lettered,
            missing_device_type: stats.missing_device_type,
            late_events: stats.late_events,
            by_device_type: Breakdown::of(stats.device_types),
            by_app_version: Breakdown::of(stats.app_versions),
            by_locale: Breakdown::of(stats.locales),
            distinct_users: stats.users.estimate(),
            distinct_devices: stats.devices.estimate(),
            users_sketch: stats.users,
            devices_sketch: stats.devices,
            ip_classes: stats.ip_classes,
            lag_ms: LagSummary {
                count: lag.count(),
                p50: lag.quantile(0.50),
                p95: lag.quantile(0.95),
                p99: lag.quantile(0.99),
                max: lag.max(),
                negative: lag.negative(),
                histogram: lag,
            },
        }
    }

    /// The mergeable content back as window stats (derived fields dropped).
    pub fn to_stats(&self) -> WindowStats {
        WindowStats {
            start: self.window_start,
            end: self.window_end,
            partial: self.partial,
            received: self.received,
            valid: self.valid,
            dead_lettered: self.dead_lettered_by_code,
            missing_device_type: self.missing_device_type,
            device_types: self.by_device_type.counts.clone(),
            app_versions: self.by_app_version.counts.clone(),
            locales: self.by_locale.counts.clone(),
            users: self.users_sketch.clone(),
            devices: self.devices_sketch.clone(),
            ip_classes: self.ip_classes,
            lag: self.lag_ms.histogram.clone(),
            late_events: self.late_events,
        }
    }

    /// The Kafka key: the window start in decimal.
    pub fn key(&self) -> String {
        self.window_start.to_string()
    }

    /// The JSON value of the record (one line).
    pub fn to_json(&self) -> String {
        // Every map in the record has string keys and every number is an integer, so
        // serialization cannot fail.
        serde_json::to_string(self).expect("an insight record always serializes")
    }

    /// Parses and checks a record: the format version, the sketch and histogram encodings, and
    /// that the totals agree (`received = valid + dead_lettered`, the per-code counts sum to
    /// `dead_lettered`, the window is not empty).
    pub fn from_json(bytes: &[u8]) -> Result<InsightRecord, RecordError> {
        let mut record: InsightRecord = serde_json::from_slice(bytes).map_err(RecordError::Json)?;
        if record.format != FORMAT_VERSION {
            return Err(RecordError::Format(record.format));
        }
        if record.window_end <= record.window_start {
            return Err(RecordError::Inconsistent(
                "window_end is not after window_start",
            ));
        }
        let by_code = record
            .dead_lettered_by_code
            .iter()
            .try_fold(0u64, |sum, &n| sum.checked_add(n));
        if by_code != Some(record.dead_lettered) {
            return Err(RecordError::Inconsistent(
                "dead_lettered_by_code does not sum to dead_lettered",
            ));
        }
        if record.valid.checked_add(record.dead_lettered) != Some(record.received) {
            return Err(RecordError::Inconsistent(
                "received is not valid + dead_lettered",
            ));
        }
        record.partitions.sort_unstable();
        record.partitions.dedup();
        // Older records have no `final`: a record that is not partial is the last.
        record.is_final = !record.partial;
        Ok(record)
    }
}

/// Merges records of one window (see the module doc); `None` when there are none. Derived
/// fields are recomputed from the merged counts, sketches and histogram.
pub fn merge_records<'a>(
    records: impl IntoIterator<Item = &'a InsightRecord>,
) -> Option<InsightRecord> {
    let mut records = records.into_iter();
    let first = records.next()?;
    let mut stats = first.to_stats();
    let mut parts = vec![first];
    for record in records {
        stats.merge(&record.to_stats());
        parts.push(record);
    }
    let instances: BTreeSet<&str> = parts
        .iter()
        .flat_map(|r| r.instance.split(','))
        .filter(|i| !i.is_empty())
        .collect();
    let partitions: BTreeSet<i32> = parts
        .iter()
        .flat_map(|r| r.partitions.iter().copied())
        .collect();
    let published_at_ms = parts.iter().map(|r| r.published_at_ms).max().unwrap_or(0);
    // Final once every instance that contributed has published its final record.
    let finished: BTreeSet<&str> = parts
        .iter()
        .filter(|r| !r.partial)
        .flat_map(|r| r.instance.split(','))
        .collect();
    let partial = instances.iter().any(|i| !finished.contains(i));
    let instance = instances.into_iter().collect::<Vec<_>>().join(",");
    let partitions: Vec<i32> = partitions.into_iter().collect();
    stats.partial = partial;
    Some(InsightRecord::from_stats(
        stats,
        &instance,
        &partitions,
        published_at_ms,
    ))
}

/// Groups records by window start and merges each group, in window order.
pub fn merge_by_window<'a>(
    records: impl IntoIterator<Item = &'a InsightRecord>,
) -> BTreeMap<u64, InsightRecord> {
    let mut groups: BTreeMap<u64, Vec<&InsightRecord>> = BTreeMap::new();
    for record in records {
        groups.entry(record.window_start).or_default().push(record);
    }
    groups
        .into_iter()
        .filter_map(|(start, group)| merge_records(group).map(|merged| (start, merged)))
        .collect()
}

#[cfg(test)]
mod tests;
