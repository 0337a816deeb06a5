//! Event time: a watermark per input partition, and the instance's watermark (the minimum over
//! the active partitions), which decides when the workers' windows close.
//!
//! # The rule
//!
//! - Each assigned partition has a watermark: the largest event time seen on it, never beyond
//!   the wall clock. An event stamped in the future still counts in its own (clamped) window
//!   (see [`crate::pipeline::worker`]) but moves its partition's watermark only up to now.
//! - The instance's watermark is the minimum over the *active* partitions: those that have had
//!   an event since they were assigned, within the idle timeout (`--idle-timeout`). A partition
//!   silent for longer is *idle* and leaves the minimum until its next event; a revoked
//!   partition leaves it at once. A newly assigned partition enters at its first event; until
//!   then (or until it has been silent for the idle timeout since the assignment) it is
//!   *waiting*, and the watermark does not move: otherwise the first partition to deliver (on a
//!   backlog, 1 MB of one partition can span minutes of event time) would close the windows
//!   that another partition's first events belong to. A partition held back by alignment
//!   (below) stays in the minimum while it is paused: it is silent because it is paused, not
//!   because it has nothing to read.
//! - When no partition is active (the input is idle), the watermark advances with the wall
//!   clock: the largest event time seen plus the wall time since it last moved, so the last
//!   windows still close and their records are committed. It never passes now either.
//! - Until the first valid event, the Kafka timestamps of dead-lettered records stand in (so
//!   windows holding only dead letters close too); before any record there is no watermark.
//!
//! So a backlog read partition by partition, a hot partition that falls behind the others in
//! event time, or one device whose clock is a minute fast never turns on-time events into late
//! ones. The watermark of one instance can go down (a partition enters, or comes back from
//! idle, behind the others); a window closed before stays closed
//! ([`crate::insights::window::WindowAggregator::advance`]), so what arrives for it then is
//! counted late, as a window already closed.
//!
//! # Alignment
//!
//! On a backlog librdkafka fetches about the same number of bytes from each partition, so a
//! partition with less traffic races ahead in event time, and every window between the slowest
//! and the fastest partition stays open: open windows, and their memory, would grow with the
//! backlog, up to the open-window limit, which then closes windows early. So a partition whose
//! watermark runs [`EventClock::max_skew_secs`] ahead of the instance's is *held*: the consumer
//! thread pauses it until the minimum has come within half that distance
//! ([`EventClock::alignment`]; the pausing is in [`crate::pipeline::alignment`]). Flink calls
//! this watermark alignment (FLIP-217).
//!
//! # Where the state lives, and why
//!
//! In one table of per-partition atomics, [`EventClock`], shared by the threads.
//! - The workers write it: only they parse events, so only they know event times, and a
//!   partition's batches go to any worker. A worker takes the largest event time of each run of
//!   one partition's records in a batch and updates that partition's slot once (a load and a
//!   compare; a `fetch_max` when it moves), and reads the instance's watermark once per batch
//!   (one pass over the partitions, three loads each). Nothing is locked; per record the cost is
//!   one comparison, as with the shared maximum this replaces.
//! - The consumer thread's rebalance callbacks reset a slot on assign and take it out on revoke
//!   (only that thread knows the assignment), and its alignment step marks slots held.
//!
//! The consumer thread publishing the watermark with each epoch would need the workers'
//! per-partition maxima sent back to it on another channel, and would move the watermark once
//! per commit interval instead of once per batch; the consumer does not parse events.
//!
//! Races the table accepts: a worker finishing a batch of a partition just revoked and assigned
//! again may raise the fresh slot to what that batch saw (records of the old assignment, just
//! before the new one's first), and the minimum is read slot by slot while the workers move
//! them (each slot only forward; the result is at most one batch stale).
//!
//! Times are passed in; nothing here reads a clock. Partitions are numbered up to
//! [`MAX_PARTITIONS`]; a record of a higher partition moves only the idle watermark.

use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Duration;

use crate::insights::window::WindowConfig;

/// Partitions per chunk of the table (chunks are allocated on first use).
const CHUNK: usize = 64;
/// Partitions the table can hold (0 to this − 1).
pub const MAX_PARTITIONS: usize = CHUNK * 1024;
/// Default idle timeout when none is configured (one default window).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How many windows (plus the allowed lateness) a partition may run ahead of the instance's
/// watermark before alignment holds it.
pub const ALIGNMENT_WINDOWS: u64 = 16;

/// Slot flag: the partition was revoked (and not assigned again).
const REVOKED: u8 = 1;
/// Slot flag: paused by alignment.
const HELD: u8 = 2;

/// A maximum time and the wall time when it last moved.
#[derive(Debug, Default)]
struct Track {
    max_secs: AtomicU64,
    moved_at_ms: AtomicU64,
}

impl Track {
    fn observe(&self, secs: u64, now_ms: u64) {
        // `fetch_max` on both: an update of an older observation that lands later moves
        // neither back (storing `moved_at_ms` could, and add idle time that never was).
        if secs > self.max_secs.load(Relaxed) && self.max_secs.fetch_max(secs, Relaxed) < secs {
            self.moved_at_ms.fetch_max(now_ms, Relaxed);
        }
    }

    fn max(&self) -> Option<u64> {
        match self.max_secs.load(Relaxed) {
            0 => None,
            t => Some(t),
        }
    }

    fn watermark(&self, now_ms: u64) -> Option<u64> {
        let max = self.max()?;
        let idle_secs = now_ms.saturating_sub(self.moved_at_ms.load(Relaxed)) / 1000;
        Some(max.saturating_add(idle_secs))
    }
}

/// One partition's watermark. 64-byte aligned so that workers updating different partitions do
/// not share a cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Slot {
    /// Largest event time seen (clamped to now), 0 before the first event.
    max_secs: AtomicU64,
    /// Wall time of the last event.
    seen_at_ms: AtomicU64,
    /// [`REVOKED`], [`HELD`].
    flags: AtomicU8,
}

impl Slot {
    fn observe(&self, secs: u64, now_ms: u64) {
        if secs > self.max_secs.load(Relaxed) {
            self.max_secs.fetch_max(secs, Relaxed);
        }
        if now_ms > self.seen_at_ms.load(Relaxed) {
            self.seen_at_ms.fetch_max(now_ms, Relaxed);
        }
    }

    fn reset(&self, flags: u8) {
        self.max_secs.store(0, Relaxed);
        self.seen_at_ms.store(0, Relaxed);
        self.flags.store(flags, Relaxed);
    }
}

/// What one partition's slot says at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    /// Revoked, never assigned, or assigned without an event for the idle timeout: not in the
    /// minimum.
    Absent,
    /// Assigned, no event yet, within the idle timeout: the watermark waits for it.
    Waiting,
    /// In the minimum with this watermark; `held` when paused by alignment.
    Active { watermark: u64, held: bool },
    /// Silent for the idle timeout: not in the minimum.
    Idle,
}

/// The instance's watermark and how many partitions are in which state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Status {
    /// The instance's watermark, Unix seconds; `None` before any record, and while a
    /// partition is waiting for its first event (nothing may close then).
    pub watermark: Option<u64>,
    /// Assigned partitions without an event yet, within the idle timeout.
    pub waiting: u64,
    /// Partitions in the minimum (held ones included).
    pub active: u64,
    /// Partitions silent for the idle timeout.
    pub idle: u64,
    /// Partitions paused by alignment.
    pub held: u64,
}

/// What alignment should do now ([`EventClock::alignment`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Alignment {
    /// Partitions to pause: their watermark is `max_skew_secs` or more ahead of the instance's.
    pub hold: Vec<i32>,
    /// Held partitions to resume: the instance's watermark is within half of that.
    pub release: Vec<i32>,
}

/// See the module doc. Shared by the workers and the consumer thread.
#[derive(Debug)]
pub struct EventClock {
    idle_timeout_ms: u64,
    max_skew_secs: Option<u64>,
    chunks: Box<[OnceLock<Box<[Slot]>>]>,
    /// One more than the highest partition with a slot.
    span: AtomicUsize,
    /// Every valid event, whatever its partition: the watermark when every partition is idle.
    all: Track,
    /// Dead letters' Kafka timestamps, until a valid event has been seen.
    fallback: Track,
}

impl Default for EventClock {
    /// The default idle timeout, alignment for the default windows.
    fn default() -> Self {
        EventClock::new(
            DEFAULT_IDLE_TIMEOUT,
            Some(alignment_skew(&WindowConfig::default())),
        )
    }
}

/// How far ahead of the instance's watermark a partition may run before alignment holds it:
/// [`ALIGNMENT_WINDOWS`] windows plus the allowed lateness.
pub fn alignment_skew(windows: &WindowConfig) -> u64 {
    (ALIGNMENT_WINDOWS * windows.size_secs.max(1)).saturating_add(windows.allowed_lateness_secs)
}

impl EventClock {
    /// A clock that has seen nothing: partitions go idle after `idle_timeout` without events,
    /// and are held when `max_skew_secs` ahead (`None`: never).
    pub fn new(idle_timeout: Duration, max_skew_secs: Option<u64>) -> Self {
        EventClock {
            idle_timeout_ms: idle_timeout.as_millis().max(1) as u64,
            max_skew_secs,
            chunks: (0..MAX_PARTITIONS / CHUNK)
                .map(|_| OnceLock::new())
                .collect(),
            span: AtomicUsize::new(0),
            all: Track::default(),
            fallback: Track::default(),
        }
    }

    /// The skew at which alignment holds a partition, if it does.
    pub fn max_skew_secs(&self) -> Option<u64> {
        self.max_skew_secs
    }

    /// The slot of `partition` if it has one (nothing is allocated).
    fn get(&self, partition: i32) -> Option<&Slot> {
        let p = usize::try_from(partition)
            .ok()
            .filter(|&p| p < MAX_PARTITIONS)?;
        Some(&self.chunks[p / CHUNK].get()?[p % CHUNK])
    }

    /// The slot of `partition`, allocated if needed; `None` outside the table.
    fn slot(&self, partition: i32) -> Option<&Slot> {
        let p = usize::try_from(partition)
            .ok()
            .filter(|&p| p < MAX_PARTITIONS)?;
        let chunk = self.chunks[p / CHUNK]
            .get_or_init(|| (0..CHUNK).map(|_| Slot::default()).collect::<Box<[Slot]>>());
        if p >= self.span.load(Relaxed) {
            self.span.fetch_max(p + 1, Relaxed);
        }
        Some(&chunk[p % CHUNK])
    }

    /// Every allocated slot below the span, with its partition.
    fn slots(&self) -> impl Iterator<Item = (i32, &Slot)> {
        let span = self.span.load(Relaxed);
        self.chunks[..span.div_ceil(CHUNK)]
            .iter()
            .enumerate()
            .filter_map(|(c, chunk)| Some((c, chunk.get()?)))
            .flat_map(move |(c, chunk)| {
                chunk
                    .iter()
                    .enumerate()
                    .map(move |(i, slot)| ((c * CHUNK + i) as i32, slot))
            })
            .take_while(move |&(p, _)| (p as usize) < span)
    }

    fn state(&self, slot: &Slot, now_ms: u64) -> SlotState {
        let flags = slot.flags.load(Relaxed);
        if flags & REVOKED != 0 {
            return SlotState::Absent;
        }
        let watermark = slot.max_secs.load(Relaxed);
        let held = flags & HELD != 0;
        // A slot never assigned has `seen_at_ms` 0: absent, not waiting.
        let silent = now_ms.saturating_sub(slot.seen_at_ms.load(Relaxed)) >= self.idle_timeout_ms;
        match (watermark, silent) {
            (0, false) => SlotState::Waiting,
            (0, true) => SlotState::Absent,
            (_, true) if !held => SlotState::Idle,
            _ => SlotState::Active { watermark, held },
        }
    }

    /// A partition was assigned at wall time `now_ms`: the watermark waits for its first event
    /// (at most the idle timeout), then it is in the minimum.
    pub fn assign(&self, partition: i32, now_ms: u64) {
        if let Some(slot) = self.slot(partition) {
            slot.reset(0);
            slot.seen_at_ms.store(now_ms, Relaxed);
        }
    }

    /// A partition was revoked: it leaves the minimum at once. Returns whether alignment was
    /// holding it (then it is still paused in the consumer, which should resume it).
    pub fn revoke(&self, partition: i32) -> bool {
        match self.slot(partition) {
            Some(slot) => {
                let held = slot.flags.swap(REVOKED, Relaxed) & HELD != 0;
                slot.reset(REVOKED);
                held
            }
            None => false,
        }
    }

    /// Notes valid events of `partition` up to `event_secs` (their largest time, already
    /// clamped for the window) seen at wall time `now_ms`. Events of a revoked partition move
    /// only the idle watermark.
    pub fn observe(&self, partition: i32, event_secs: u64, now_ms: u64) {
        let secs = event_secs.min(now_ms / 1000);
        self.all.observe(secs, now_ms);
        if let Some(slot) = self.slot(partition) {
            if slot.flags.load(Relaxed) & REVOKED == 0 {
                slot.observe(secs, now_ms);
            }
        }
    }

    /// Notes a dead-lettered record's Kafka timestamp (seconds): used only until a valid
    /// event has been seen.
    pub fn observe_fallback(&self, record_secs: u64, now_ms: u64) {
        self.fallback
            .observe(record_secs.min(now_ms / 1000), now_ms);
    }

    /// The largest valid event time seen on any partition, if any.
    pub fn max_event(&self) -> Option<u64> {
        self.all.max()
    }

    /// The watermark of `partition`, if it has had an event since it was assigned.
    pub fn partition_time(&self, partition: i32) -> Option<u64> {
        match self.get(partition)?.max_secs.load(Relaxed) {
            0 => None,
            t => Some(t),
        }
    }

    /// The instance's watermark at wall time `now_ms`; `None` before any record.
    pub fn watermark(&self, now_ms: u64) -> Option<u64> {
        self.status(now_ms).watermark
    }

    /// The instance's watermark and the partitions' states at wall time `now_ms`.
    pub fn status(&self, now_ms: u64) -> Status {
        let mut status = Status::default();
        let mut min: Option<u64> = None;
        for (_, slot) in self.slots() {
            match self.state(slot, now_ms) {
                SlotState::Absent => {}
                SlotState::Waiting => status.waiting += 1,
                SlotState::Idle => status.idle += 1,
                SlotState::Active { watermark, held } => {
                    status.active += 1;
                    status.held += u64::from(held);
                    min = Some(min.map_or(watermark, |m| m.min(watermark)));
                }
            }
        }
        status.watermark = match status.waiting {
            0 => min
                .or_else(|| self.all.watermark(now_ms))
                .or_else(|| self.fallback.watermark(now_ms)),
            _ => None,
        };
        status
    }

    /// Which partitions alignment should pause and which it should resume at wall time
    /// `now_ms`: active partitions at least `max_skew_secs` ahead of the instance's watermark
    /// are held; held ones within half of that are released (hysteresis, so a partition is not
    /// paused and resumed at every step: pausing drops librdkafka's prefetched records for it).
    /// A held partition stays in the minimum, so the partition holding the minimum is never
    /// held, and the held ones are released as it catches up (or goes idle, or is revoked).
    pub fn alignment(&self, now_ms: u64) -> Alignment {
        let mut plan = Alignment::default();
        let Some(skew) = self.max_skew_secs else {
            return plan;
        };
        // Two passes, nothing allocated unless there is something to do: the consumer thread
        // runs this every poll round. A slot moved between the passes is judged by its newer
        // state, which is at most one step stale either way. While a partition is waiting for
        // its first event nothing changes.
        let status = self.status(now_ms);
        let (Some(min), 0) = (status.watermark, status.waiting) else {
            return plan;
        };
        for (p, slot) in self.slots() {
            let SlotState::Active { watermark, held } = self.state(slot, now_ms) else {
                continue;
            };
            let ahead = watermark.saturating_sub(min);
            if !held && ahead >= skew {
                plan.hold.push(p);
            } else if held && ahead < skew.div_ceil(2) {
                plan.release.push(p);
            }
        }
        plan
    }

    /// Alignment paused `partition`.
    pub fn hold(&self, partition: i32) {
        if let Some(slot) = self.get(partition) {
            slot.flags.fetch_or(HELD, Relaxed);
        }
    }

    /// Alignment resumed `partition` at wall time `now_ms`: it has a full idle timeout from
    /// now to deliver its next event before it counts as idle.
    pub fn release(&self, partition: i32, now_ms: u64) {
        if let Some(slot) = self.get(partition) {
            slot.seen_at_ms.fetch_max(now_ms, Relaxed);
            slot.flags.fetch_and(!HELD, Relaxed);
        }
    }

    /// Whether alignment holds `partition`.
    pub fn is_held(&self, partition: i32) -> bool {
        self.get(partition)
            .is_some_and(|slot| slot.flags.load(Relaxed) & HELD != 0)
    }
}

#[cfg(test)]
mod tests;
