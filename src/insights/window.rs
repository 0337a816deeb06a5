//! Tumbling event-time windows: what one window saw ([`WindowStats`], mergeable), and the pure
//! state machine that assigns events to windows and decides when a window closes
//! ([`WindowAggregator`]).
//!
//! # Windows
//!
//! Window `[start, start + size)` holds the events whose event time `t` (Unix seconds) has
//! `start = t - t % size`; an event exactly at a window's end belongs to the next window. The
//! aggregator never reads a clock: the caller passes each event's time and lag in
//! [`Observation`]s, and the event-time watermark to [`WindowAggregator::advance`] (for the
//! pipeline: the minimum over its partitions' watermarks, see `pipeline/watermark.rs`).
//!
//! # Closing, lateness, late events
//!
//! A window closes when the watermark reaches its end plus the allowed lateness
//! (`start + size + lateness <= watermark`). Closed windows form a prefix of time: everything
//! before [`WindowAggregator::closed_before`]. An event whose window is in that prefix is
//! *late*: it is counted in the `late_events` of the oldest open window (opening the first
//! window after the prefix if none is open), and nowhere else — a closed window is never
//! re-opened, so each window is published once per aggregator, and every published record is an
//! increment that a reader can add up. So over all windows, `received + late_events` is every
//! event observed.
//!
//! A late event has one of two causes ([`LateCause`], counted by [`WindowAggregator::take_late`]):
//! it is *behind the watermark* (its window's end plus the lateness is at or before the
//! watermark of the latest [`WindowAggregator::advance`]: truly late), or its window was closed
//! although that watermark would still accept it (*window closed*: by the open-window limit, or
//! by a higher watermark earlier, which a partition entering behind the others then lowered).
//!
//! Which time an invalid event (no usable timestamp) uses is the caller's choice; the pipeline
//! passes the Kafka record timestamp. Lag is recorded for valid events only: it is processing
//! time minus the event's own `timestamp`, which only a valid event has.
//!
//! # Bounded memory
//!
//! Events with timestamps far apart (a replay of an old backlog, clients with broken clocks,
//! hostile data) can each open a window. At most [`WindowConfig::max_open_windows`] are open at
//! once: opening one more closes the oldest early, as if the watermark had passed it (it is
//! returned by the next [`WindowAggregator::advance`]); an event older than every open window
//! when the limit is reached is counted as late. Sketches and histograms start sparse, so a
//! window with a handful of events costs a few hundred bytes.
//!
//! # Merging
//!
//! [`WindowStats::merge`] adds counts, merges sketches register-wise and histograms
//! bucket-wise: the merge of the stats of the parts of a split is the stats of the whole, in any
//! order (exactly for counts, sketches and histograms; see [`CappedCounts`] for maps that
//! overflow their key cap). That is how per-worker windows become one window per instance, and
//! per-instance records one window for a reader.

use serde::{Deserialize, Serialize};

use super::counts::CappedCounts;
use super::histogram::LagHistogram;
use super::sketch::Hll;
use crate::transform::{ErrorCode, IpClass, LoginEvent, Rejection};

/// Window sizes and limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowConfig {
    /// Length of a window in seconds (at least 1; 0 is treated as 1).
    pub size_secs: u64,
    /// How long after a window's end (in event time) it still accepts events.
    pub allowed_lateness_secs: u64,
    /// Most windows open at once (at least 1); see the module doc, "Bounded memory".
    pub max_open_windows: usize,
}

/// Default [`WindowConfig::max_open_windows`]: far more than the two or three a live stream
/// keeps open, few enough that a flood of scattered timestamps stays in the megabytes.
pub const DEFAULT_MAX_OPEN_WINDOWS: usize = 1024;

impl WindowConfig {
    /// Windows of `size_secs` accepting events until `allowed_lateness_secs` after their end.
    pub fn new(size_secs: u64, allowed_lateness_secs: u64) -> Self {
        WindowConfig {
            size_secs,
            allowed_lateness_secs,
            max_open_windows: DEFAULT_MAX_OPEN_WINDOWS,
        }
    }
}

impl Default for WindowConfig {
    /// 10 s windows, 10 s of allowed lateness.
    fn default() -> Self {
        WindowConfig::new(10, 10)
    }
}

/// One event as the aggregator sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation<'a> {
    /// Event time, Unix seconds: the event's `timestamp` when valid, otherwise whatever time
    /// the caller assigns (the Kafka record timestamp).
    pub event_time: u64,
    /// Processing time minus event time, in milliseconds (see [`lag_ms`]); negative when the
    /// event claims to come from the future. Recorded for valid events only.
    pub lag_ms: i64,
    /// What the event was.
    pub kind: ObservationKind<'a>,
}

/// A valid event's fields, or an invalid event's error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObservationKind<'a> {
    /// Processed into `processed_data`.
    Valid {
        /// Normalized `user_id`.
        user_id: &'a str,
        /// Normalized `device_id`.
        device_id: &'a str,
        /// Lowercased `device_type` (the fill value when it was missing).
        device_type: &'a str,
        /// `app_version`.
        app_version: &'a str,
        /// Uppercased `locale`.
        locale: &'a str,
        /// Class of the `ip` address.
        ip_class: IpClass,
        /// Whether `device_type` was missing and filled in (`--optional-field`).
        device_type_filled: bool,
    },
    /// Dead-lettered.
    Invalid {
        /// Why.
        code: ErrorCode,
        /// The field to blame, if one is.
        field: Option<&'static str>,
    },
}

impl<'a> ObservationKind<'a> {
    /// The observation of a valid, normalized event.
    #[inline]
    pub fn valid(event: &'a LoginEvent<'_>) -> Self {
        ObservationKind::Valid {
            user_id: &event.user_id,
            device_id: &event.device_id,
            device_type: &event.device_type,
            app_version: &event.app_version,
            locale: event.locale.as_str(),
            ip_class: event.ip_class,
            device_type_filled: event.filled.contains(&"device_type"),
        }
    }

    /// The observation of a rejected record.
    pub fn invalid(rejection: &Rejection) -> Self {
        ObservationKind::Invalid {
            code: rejection.code,
            field: rejection.field,
        }
    }
}

/// Processing time (Unix milliseconds) minus event time (Unix seconds), in milliseconds,
/// saturating at the ends of `i64`.
pub fn lag_ms(processing_time_ms: u64, event_time_secs: u64) -> i64 {
    let event_ms = event_time_secs.saturating_mul(1000);
    if processing_time_ms >= event_ms {
        i64::try_from(processing_time_ms - event_ms).unwrap_or(i64::MAX)
    } else {
        i64::try_from(event_ms - processing_time_ms).map_or(i64::MIN, |d| -d)
    }
}

/// Everything one window saw (from one worker, one instance, or merged).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowStats {
    /// Window start, Unix seconds (inclusive).
    pub start: u64,
    /// Window end, Unix seconds (exclusive).
    pub end: u64,
    /// Closed before its time (shutdown): more events for it may be published later.
    pub partial: bool,
    /// Events counted in this window: `valid` plus every dead-lettered count.
    pub received: u64,
    /// Valid events.
    pub valid: u64,
    /// Dead-lettered events by error code, indexed by [`ErrorCode::index`].
    #[serde(with = "labeled::codes")]
    pub dead_lettered: [u64; ErrorCode::ALL.len()],
    /// Events without `device_type`: dead-lettered for it, or valid with the fill value.
    pub missing_device_type: u64,
    /// Valid events by device type.
    pub device_types: CappedCounts,
    /// Valid events by app version.
    pub app_versions: CappedCounts,
    /// Valid events by locale.
    pub locales: CappedCounts,
    /// Distinct `user_id`s of valid events.
    pub users: Hll,
    /// Distinct `device_id`s of valid events.
    pub devices: Hll,
    /// Valid events by IP address class, indexed by position in [`IpClass::ALL`].
    #[serde(with = "labeled::ip_classes")]
    pub ip_classes: [u64; IpClass::ALL.len()],
    /// Lag of valid events.
    pub lag: LagHistogram,
    /// Late events counted here because their own window had closed (not in any other field).
    pub late_events: u64,
}

impl WindowStats {
    /// Empty stats for the window `[start, end)`.
    pub fn new(start: u64, end: u64) -> Self {
        WindowStats {
            start,
            end,
            ..WindowStats::default()
        }
    }

    /// Whether nothing was counted (neither events nor late events).
    pub fn is_empty(&self) -> bool {
        self.received == 0 && self.late_events == 0
    }

    /// Total dead-lettered events.
    pub fn dead_lettered_total(&self) -> u64 {
        self.dead_lettered
            .iter()
            .fold(0, |sum: u64, &n| sum.saturating_add(n))
    }

    /// Counts one event in this window.
    #[inline]
    pub fn add(&mut self, kind: &ObservationKind<'_>, lag_ms: i64) {
        self.received += 1;
        match *kind {
            ObservationKind::Valid {
                user_id,
                device_id,
                device_type,
                app_version,
                locale,
                ip_class,
                device_type_filled,
            } => {
                self.valid += 1;
                self.device_types.add(device_type);
                self.app_versions.add(app_version);
                self.locales.add(locale);
                self.users.insert(user_id.as_bytes());
                self.devices.insert(device_id.as_bytes());
                self.ip_classes[ip_class as usize] += 1;
                self.lag.record(lag_ms);
                if device_type_filled {
                    self.missing_device_type += 1;
                }
            }
            ObservationKind::Invalid { code, field } => {
                self.dead_lettered[code.index()] += 1;
                if code == ErrorCode::MissingField && field == Some("device_type") {
                    self.missing_device_type += 1;
                }
            }
        }
    }

    /// Adds `other` to `self`. Meant for stats of the same window; otherwise the result spans
    /// both (earliest start, latest end). Associative and commutative (see the module doc).
    pub fn merge(&mut self, other: &WindowStats) {
        fn add(a: &mut u64, b: u64) {
            *a = a.saturating_add(b);
        }
        self.start = self.start.min(other.start);
        self.end = self.end.max(other.end);
        self.partial |= other.partial;
        add(&mut self.received, other.received);
        add(&mut self.valid, other.valid);
        for (a, &b) in self.dead_lettered.iter_mut().zip(&other.dead_lettered) {
            add(a, b);
        }
        add(&mut self.missing_device_type, other.missing_device_type);
        self.device_types.merge(&other.device_types);
        self.app_versions.merge(&other.app_versions);
        self.locales.merge(&other.locales);
        self.users.merge(&other.users);
        self.devices.merge(&other.devices);
        for (a, &b) in self.ip_classes.iter_mut().zip(&other.ip_classes) {
            add(a, b);
        }
        self.lag.merge(&other.lag);
        add(&mut self.late_events, other.late_events);
    }
}

/// Assigns events to tumbling windows and closes them as the watermark passes. One per worker;
/// pure (see the module doc).
#[derive(Debug)]
pub struct WindowAggregator {
    config: WindowConfig,
    /// Open windows, sorted by start (usually one to three; searched from the newest).
    open: Vec<WindowStats>,
    /// Every window starting before this is closed.
    closed_before: u64,
    /// Windows closed early by the open-window limit, returned by the next advance or flush.
    evicted: Vec<WindowStats>,
    /// Start of the window of the last event: most events fall in it, and checking costs less
    /// than the 64-bit division of [`WindowAggregator::window_start`].
    recent: u64,
    /// The first window the latest advance's watermark leaves open (unlike `closed_before`, it
    /// can go down): tells a late event's cause.
    watermark_boundary: u64,
    /// Late events since the last [`WindowAggregator::take_late`], by [`LateCause::index`].
    late: [u64; LateCause::ALL.len()],
}

/// Why an event was counted late (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LateCause {
    /// Its window's end plus the allowed lateness is behind the current watermark.
    BehindWatermark,
    /// Its window was closed although the current watermark would still accept it.
    WindowClosed,
}

impl LateCause {
    /// Every cause, in index order.
    pub const ALL: [LateCause; 2] = [LateCause::BehindWatermark, LateCause::WindowClosed];

    /// Its label in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            LateCause::BehindWatermark => "behind_watermark",
            LateCause::WindowClosed => "window_closed",
        }
    }

    /// Its position in [`LateCause::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl WindowAggregator {
    /// An aggregator with no open window. A size of 0 is taken as 1, a window limit of 0 as 1.
    pub fn new(config: WindowConfig) -> Self {
        WindowAggregator {
            config: WindowConfig {
                size_secs: config.size_secs.max(1),
                max_open_windows: config.max_open_windows.max(1),
                ..config
            },
            open: Vec::new(),
            closed_before: 0,
            evicted: Vec::new(),
            // 0 is the start of a window whatever the size, so the cache is valid from the start.
            recent: 0,
            watermark_boundary: 0,
            late: [0; LateCause::ALL.len()],
        }
    }

    /// The configuration in force (after the clamping of [`WindowAggregator::new`]).
    pub fn config(&self) -> &WindowConfig {
        &self.config
    }

    /// Start of the window holding event time `t`.
    pub fn window_start(&self, t: u64) -> u64 {
        t - t % self.config.size_secs
    }

    /// Every window starting before this has been closed; an event for one of them is late.
    pub fn closed_before(&self) -> u64 {
        self.closed_before
    }

    /// Counts one event; returns the start of the window it was counted in (its own window, or
    /// for a late event the oldest open window, whose `late_events` it increments).
    #[inline]
    pub fn observe(&mut self, obs: &Observation<'_>) -> u64 {
        let start = if obs
            .event_time
            .checked_sub(self.recent)
            .is_some_and(|offset| offset < self.config.size_secs)
        {
            self.recent
        } else {
            self.recent = self.window_start(obs.event_time);
            self.recent
        };
        // Nearly every event goes to the newest window, so search from the back.
        if let Some(stats) = self.open.iter_mut().rev().find(|w| w.start == start) {
            stats.add(&obs.kind, obs.lag_ms);
            return start;
        }
        if start < self.closed_before {
            return self.count_late(start);
        }
        if self.open.len() >= self.config.max_open_windows {
            match self.open.first() {
                Some(oldest) if oldest.start < start => self.evict_oldest(),
                _ => return self.count_late(start),
            }
        }
        self.open_window(start).add(&obs.kind, obs.lag_ms);
        start
    }

    /// The open window starting at `start`, opened if it is not.
    fn open_window(&mut self, start: u64) -> &mut WindowStats {
        let at = match self.open.binary_search_by_key(&start, |w| w.start) {
            Ok(at) => at,
            Err(at) => {
                let end = start.saturating_add(self.config.size_secs);
                self.open.insert(at, WindowStats::new(start, end));
                at
            }
        };
        &mut self.open[at]
    }

    /// Counts a late event of the window starting at `own` in the oldest open window, opening
    /// the first window after the closed prefix if none is open.
    fn count_late(&mut self, own: u64) -> u64 {
        let cause = if own < self.watermark_boundary {
            LateCause::BehindWatermark
        } else {
            LateCause::WindowClosed
        };
        self.late[cause.index()] += 1;
        let start = match self.open.first() {
            Some(oldest) => oldest.start,
            None => self.closed_before,
        };
        self.open_window(start).late_events += 1;
        start
    }

    /// Closes the oldest open window ahead of the watermark.
    fn evict_oldest(&mut self) {
        if !self.open.is_empty() {
            let stats = self.open.remove(0);
            self.closed_before = self.closed_before.max(stats.end);
            self.evicted.push(stats);
        }
    }

    /// Closes every window whose end plus the allowed lateness is at or before `watermark_secs`
    /// and returns them, with any closed early by the window limit, in start order. A watermark
    /// lower than an earlier one closes nothing more.
    pub fn advance(&mut self, watermark_secs: u64) -> Vec<WindowStats> {
        let size = self.config.size_secs;
        // The first window not closed: the smallest start with start + size + lateness > wm.
        let boundary = match watermark_secs.checked_sub(self.config.allowed_lateness_secs) {
            Some(t) => t - t % size,
            None => 0,
        };
        self.watermark_boundary = boundary;
        self.closed_before = self.closed_before.max(boundary);
        let mut closed = std::mem::take(&mut self.evicted);
        let done = self.open.partition_point(|w| w.start < self.closed_before);
        closed.extend(self.open.drain(..done));
        closed.retain(|w| !w.is_empty());
        closed
    }

    /// Closes every window (shutdown) and returns them in start order; those that were still
    /// open are marked partial. Events observed afterwards for these windows count as late.
    pub fn flush(&mut self) -> Vec<WindowStats> {
        let mut closed = std::mem::take(&mut self.evicted);
        if let Some(last) = self.open.last() {
            self.closed_before = self.closed_before.max(last.end);
        }
        closed.extend(self.open.drain(..).map(|mut w| {
            w.partial = true;
            w
        }));
        closed.retain(|w| !w.is_empty());
        closed
    }

    /// What each open window gained since the last call (windows without news are left out),
    /// leaving them open and empty: the per-epoch deltas of the pipeline. Adding up a window's
    /// deltas and its closing stats gives exactly what it would have counted without them.
    pub fn take_deltas(&mut self) -> Vec<WindowStats> {
        let mut deltas = Vec::new();
        for window in &mut self.open {
            if !window.is_empty() {
                let fresh = WindowStats::new(window.start, window.end);
                deltas.push(std::mem::replace(window, fresh));
            }
        }
        deltas
    }

    /// Number of open windows.
    pub fn open_windows(&self) -> usize {
        self.open.len()
    }

    /// Late events since the last call, by [`LateCause::index`], and resets them.
    pub fn take_late(&mut self) -> [u64; LateCause::ALL.len()] {
        std::mem::take(&mut self.late)
    }
}

/// Serde for per-code and per-class counter arrays: a JSON object of the non-zero counts by
/// label, in the enum's order; reading rejects unknown labels.
pub(crate) mod labeled {
    use std::collections::HashMap;

    use serde::de::Error as _;
    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serializer};

    fn serialize<S: Serializer>(counts: &[u64], labels: &[&str], s: S) -> Result<S::Ok, S::Error> {
        let nonzero = counts.iter().filter(|&&n| n != 0).count();
        let mut map = s.serialize_map(Some(nonzero))?;
        for (label, &n) in labels.iter().zip(counts) {
            if n != 0 {
                map.serialize_entry(label, &n)?;
            }
        }
        map.end()
    }

    fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
        labels: &[&str; N],
    ) -> Result<[u64; N], D::Error> {
        let map = HashMap::<String, u64>::deserialize(d)?;
        let mut counts = [0u64; N];
        for (label, n) in map {
            let i = labels
                .iter()
                .position(|&l| l == label)
                .ok_or_else(|| D::Error::custom(format!("unknown label `{label}`")))?;
            counts[i] = n;
        }
        Ok(counts)
    }

    /// Dead-letter counts by [`crate::transform::ErrorCode`].
    pub mod codes {
        use super::*;
        use crate::transform::ErrorCode;

        const N: usize = ErrorCode::ALL.len();

        fn labels() -> [&'static str; N] {
            ErrorCode::ALL.map(ErrorCode::as_str)
        }

        /// Writes the non-zero counts by code.
        pub fn serialize<S: Serializer>(counts: &[u64; N], s: S) -> Result<S::Ok, S::Error> {
            super::serialize(counts, &labels(), s)
        }

        /// Reads counts by code.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u64; N], D::Error> {
            super::deserialize(d, &labels())
        }
    }

    /// Counts by [`crate::transform::IpClass`].
    pub mod ip_classes {
        use super::*;
        use crate::transform::IpClass;

        const N: usize = IpClass::ALL.len();

        fn labels() -> [&'static str; N] {
            IpClass::ALL.map(IpClass::as_str)
        }

        /// Writes the non-zero counts by class.
        pub fn serialize<S: Serializer>(counts: &[u64; N], s: S) -> Result<S::Ok, S::Error> {
            super::serialize(counts, &labels(), s)
        }

        /// Reads counts by class.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u64; N], D::Error> {
            super::deserialize(d, &labels())
        }
    }
}

#[cfg(test)]
mod tests;
