//! The merged insight windows of every instance, as `kafka-pipeline insights` prints them: one
//! row per window start, the records of all instances and epochs added up.
//!
//! # Merging and duplicates
//!
//! All records with the same window start are added up ([`super::record::merge_records`]). That
//! is right because every record is an increment: an instance publishes, per commit epoch,
//! what each window gained in that epoch (a delta), and a last, final delta once the window has
//! closed; after a crash the re-processed epochs publish their deltas again (records the
//! at-least-once contract allows to count twice; none in exactly-once mode, whose aborted
//! deltas a read_committed reader never sees). "Last record per instance and window wins" would
//! be wrong: every delta adds to the ones before it.
//!
//! What is dropped is an exact re-send: a record identical in every field (same instance, same
//! publication time to the millisecond, same counts and sketches) to one already read for the
//! window, as a producer retry outside the idempotent producer's protection could write. Records
//! that do not parse or fail the record's consistency checks are skipped and counted.
//!
//! # Memory
//!
//! A window is kept as its merged stats (sketches and histograms start sparse, so a quiet
//! window takes a few hundred bytes). With `--last N` only the N newest windows are kept while
//! reading; records for older windows are skipped.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{self, Write};

use super::hash::xxh64;
use super::record::{InsightRecord, RecordError};
use super::window::WindowStats;
use crate::transform::Rfc3339;

/// What [`WindowTable::add`] did with a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Added {
    /// First record of its window.
    New,
    /// Merged into its window.
    Updated,
    /// Identical to a record already merged: skipped.
    Duplicate,
    /// Its window is older than the windows kept (`--last`): skipped.
    TooOld,
}

/// Counts of what was read, for the closing summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadCounts {
    /// Records merged.
    pub merged: u64,
    /// Exact duplicates skipped.
    pub duplicates: u64,
    /// Records for windows older than the kept ones.
    pub too_old: u64,
    /// Records that were not valid insight records (or were null).
    pub invalid: u64,
}

/// One window being merged.
#[derive(Debug)]
struct Entry {
    stats: WindowStats,
    instances: BTreeSet<String>,
    partitions: BTreeSet<i32>,
    published_at_ms: u64,
    /// Digests of the records merged, to recognize exact re-sends.
    digests: HashSet<u64>,
}

/// The merged windows read so far. Pure: fed records, asked for merged records.
#[derive(Debug, Default)]
pub struct WindowTable {
    windows: BTreeMap<u64, Entry>,
    keep: Option<usize>,
    /// Windows changed since the last [`WindowTable::take_changed`].
    changed: BTreeSet<u64>,
    counts: ReadCounts,
}

impl WindowTable {
    /// A table keeping every window, or only the `keep` newest.
    pub fn new(keep: Option<usize>) -> Self {
        WindowTable {
            keep: keep.map(|n| n.max(1)),
            ..WindowTable::default()
        }
    }

    /// Parses and merges one record value; invalid ones are counted and returned as errors.
    pub fn add_json(&mut self, payload: Option<&[u8]>) -> Result<Added, RecordError> {
        let Some(bytes) = payload else {
            self.counts.invalid += 1;
            return Err(RecordError::Null);
        };
        match InsightRecord::from_json(bytes) {
            Ok(record) => Ok(self.add(record)),
            Err(e) => {
                self.counts.invalid += 1;
                Err(e)
            }
        }
    }

    /// Merges one record into its window (see the module doc for duplicates).
    pub fn add(&mut self, record: InsightRecord) -> Added {
        let start = record.window_start;
        if let Some(keep) = self.keep {
            let full = self.windows.len() >= keep;
            if full && !self.windows.contains_key(&start) {
                match self.windows.first_key_value() {
                    Some((&oldest, _)) if oldest < start => {
                        self.windows.remove(&oldest);
                        self.changed.remove(&oldest);
                    }
                    _ => {
                        self.counts.too_old += 1;
                        return Added::TooOld;
                    }
                }
            }
        }
        let digest = xxh64(record.to_json().as_bytes(), 0);
        let added = match self.windows.get_mut(&start) {
            Some(entry) => {
                if !entry.digests.insert(digest) {
                    self.counts.duplicates += 1;
                    return Added::Duplicate;
                }
                entry.stats.merge(&record.to_stats());
                entry.instances.insert(record.instance);
                entry.partitions.extend(record.partitions);
                entry.published_at_ms = entry.published_at_ms.max(record.published_at_ms);
                Added::Updated
            }
            None => {
                let entry = Entry {
                    stats: record.to_stats(),
                    instances: BTreeSet::from([record.instance]),
                    partitions: record.partitions.into_iter().collect(),
                    published_at_ms: record.published_at_ms,
                    digests: HashSet::from([digest]),
                };
                self.windows.insert(start, entry);
                Added::New
            }
        };
        self.counts.merged += 1;
        self.changed.insert(start);
        added
    }

    /// Number of windows held.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// Whether no window is held.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// What was read so far.
    pub fn counts(&self) -> ReadCounts {
        self.counts
    }

    /// The merged record of the window starting at `start`.
    pub fn merged(&self, start: u64) -> Option<InsightRecord> {
        let entry = self.windows.get(&start)?;
        let instances: BTreeSet<&str> = entry
            .instances
            .iter()
            .flat_map(|i| i.split(','))
            .filter(|i| !i.is_empty())
            .collect();
        let instance = instances.into_iter().collect::<Vec<_>>().join(",");
        let partitions: Vec<i32> = entry.partitions.iter().copied().collect();
        Some(InsightRecord::from_stats(
            entry.stats.clone(),
            &instance,
            &partitions,
            entry.published_at_ms,
        ))
    }

    /// Every window's merged record, in window order.
    pub fn all(&self) -> Vec<InsightRecord> {
        self.windows
            .keys()
            .filter_map(|&start| self.merged(start))
            .collect()
    }

    /// The merged records of the windows changed since the last call, in window order.
    pub fn take_changed(&mut self) -> Vec<InsightRecord> {
        std::mem::take(&mut self.changed)
            .into_iter()
            .filter_map(|start| self.merged(start))
            .collect()
    }
}

/// The table's columns: title, width, right-aligned.
const COLUMNS: [(&str, usize, bool); 9] = [
    ("window", 8, false),
    ("events", 8, true),
    ("rate/s", 8, true),
    ("invalid", 7, true),
    ("devices", 22, false),
    ("top locales", 20, false),
    ("users", 7, true),
    ("lag p99", 7, true),
    ("late", 6, true),
];

/// Lays out one line: every cell cut to its column's width (so nothing shifts the columns after
/// it), columns separated by one space, two before the text columns.
fn layout(cells: [&str; 9]) -> String {
    let mut line = String::with_capacity(110);
    for (i, (cell, &(_, width, right))) in cells.iter().zip(&COLUMNS).enumerate() {
        if i > 0 {
            line.push_str(if right { " " } else { "  " });
        }
        let cell: String = if cell.chars().count() > width {
            cell.chars().take(width - 1).chain(['…']).collect()
        } else {
            (*cell).to_owned()
        };
        if right {
            line.push_str(&format!("{cell:>width$}"));
        } else {
            line.push_str(&format!("{cell:<width$}"));
        }
    }
    line
}

/// The table's header line.
pub fn format_header() -> String {
    layout(COLUMNS.map(|(title, _, _)| title))
}

/// The date line printed before the first row of each UTC day.
pub fn format_date_line(window_start: u64) -> String {
    let start = Rfc3339::from_unix(window_start.min(crate::transform::MAX_TIMESTAMP));
    format!("── {}", &start.as_str()[..10])
}

/// One table row for a merged record: start time of day (UTC), events, events per second,
/// share dead-lettered, the two largest device types and three largest locales with their
/// share of valid events, distinct users, lag p99, late events, and `*` when partial.
pub fn format_row(r: &InsightRecord) -> String {
    let start = Rfc3339::from_unix(r.window_start.min(crate::transform::MAX_TIMESTAMP));
    let seconds = r.window_end.saturating_sub(r.window_start).max(1);
    let invalid = match r.received {
        0 => "-".to_owned(),
        n => format!("{:.1}%", r.dead_lettered as f64 * 100.0 / n as f64),
    };
    let mut devices = shares(&r.by_device_type.top, r.valid, 2);
    if r.by_device_type.top.len() > 2 {
        devices.push_str(&format!(" +{}", r.by_device_type.distinct - 2));
    }
    let mut row = layout([
        &start.as_str()[11..19],
        &format_count(r.received),
        &format_rate(r.received as f64 / seconds as f64),
        &invalid,
        &devices,
        &shares(&r.by_locale.top, r.valid, 3),
        &format_count(r.distinct_users),
        &r.lag_ms.p99.map_or_else(|| "-".to_owned(), format_ms),
        &format_count(r.late_events),
    ]);
    if r.partial {
        row.push_str(" *");
    }
    row
}

/// The first `n` entries of a top list with their share of `total`: `ios 48% android 47%`
/// (keys longer than nine characters are cut).
fn shares(top: &[super::record::KeyCount], total: u64, n: usize) -> String {
    if total == 0 || top.is_empty() {
        return "-".to_owned();
    }
    let parts: Vec<String> = top
        .iter()
        .take(n)
        .map(|kc| {
            let share = kc.count as f64 * 100.0 / total as f64;
            let key: String = if kc.key.chars().count() > 9 {
                kc.key.chars().take(8).chain(['…']).collect()
            } else {
                kc.key.clone()
            };
            if share > 0.0 && share < 1.0 {
                format!("{key} <1%")
            } else {
                format!("{key} {share:.0}%")
            }
        })
        .collect();
    parts.join(" ")
}

/// A count, compact above 100,000: `99999`, `123.4k`, `12.3M`.
pub fn format_count(n: u64) -> String {
    match n {
        0..=99_999 => n.to_string(),
        100_000..=9_999_999 => format!("{:.1}k", n as f64 / 1e3),
        _ if n < 10_000_000_000 => format!("{:.1}M", n as f64 / 1e6),
        _ => format!("{:.1}G", n as f64 / 1e9),
    }
}

/// A rate per second: one decimal below 100, then like [`format_count`].
pub fn format_rate(rate: f64) -> String {
    if rate < 100.0 {
        format!("{rate:.1}")
    } else {
        format_count(rate.round() as u64)
    }
}

/// Milliseconds as the largest sensible unit: `850ms`, `1.2s`, `42s`, `3.5m`, `2.1h`, `4.0d`.
pub fn format_ms(ms: u64) -> String {
    let s = ms as f64 / 1000.0;
    match ms {
        0..=999 => format!("{ms}ms"),
        1_000..=9_999 => format!("{s:.1}s"),
        10_000..=59_999 => format!("{s:.0}s"),
        60_000..=3_599_999 => format!("{:.1}m", s / 60.0),
        3_600_000..=86_399_999 => format!("{:.1}h", s / 3600.0),
        _ => format!("{:.1}d", s / 86_400.0),
    }
}

/// Writes rows or JSON lines, with a date line whenever the UTC day changes.
pub struct Printer<W: Write> {
    out: W,
    json: bool,
    last_day: Option<u64>,
    rows_since_header: usize,
}

/// Rows between repeated headers in follow mode.
const HEADER_EVERY: usize = 40;

impl<W: Write> Printer<W> {
    /// A printer of table rows (or, with `json`, one JSON record per line) to `out`.
    pub fn new(out: W, json: bool) -> Self {
        Printer {
            out,
            json,
            last_day: None,
            rows_since_header: 0,
        }
    }

    /// Prints the rows of `records` (a header first, and a date line when the day changes).
    pub fn print(&mut self, records: &[InsightRecord]) -> io::Result<()> {
        for r in records {
            if self.json {
                writeln!(self.out, "{}", r.to_json())?;
                continue;
            }
            if self.last_day.is_none() || self.rows_since_header >= HEADER_EVERY {
                writeln!(self.out, "{}", format_header())?;
                self.rows_since_header = 0;
            }
            let day = r.window_start / 86_400;
            if self.last_day != Some(day) {
                writeln!(self.out, "{}", format_date_line(r.window_start))?;
                self.last_day = Some(day);
            }
            writeln!(self.out, "{}", format_row(r))?;
            self.rows_since_header += 1;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests;
