//! Tests of the watermark table: the minimum over partitions, idleness, revoke and assign, the
//! future clamp, the idle wall-clock advance, the dead-letter stand-in, alignment, and a
//! property test over random interleavings of partitions against a naive model.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

/// Wall time of the tests: 2024-07-10T05:35:00Z.
const NOW_MS: u64 = 1_720_589_700_000;
const NOW: u64 = NOW_MS / 1000;
const IDLE: Duration = Duration::from_secs(10);

fn clock() -> EventClock {
    EventClock::new(IDLE, Some(100))
}

#[test]
fn the_watermark_is_the_minimum_over_the_partitions() {
    let c = clock();
    assert_eq!(c.watermark(NOW_MS), None, "no watermark before any record");
    c.observe(0, NOW - 300, NOW_MS);
    c.observe(1, NOW - 100, NOW_MS);
    c.observe(2, NOW - 200, NOW_MS);
    assert_eq!(c.watermark(NOW_MS), Some(NOW - 300));
    c.observe(0, NOW - 350, NOW_MS + 1); // older: no change
    assert_eq!(c.watermark(NOW_MS + 1), Some(NOW - 300));
    c.observe(0, NOW - 150, NOW_MS + 2);
    assert_eq!(
        c.watermark(NOW_MS + 2),
        Some(NOW - 200),
        "partition 2 is behind now"
    );
    let s = c.status(NOW_MS + 2);
    assert_eq!((s.active, s.idle, s.held), (3, 0, 0));
    assert_eq!(c.max_event(), Some(NOW - 100));
    assert_eq!(c.partition_time(2), Some(NOW - 200));
    assert_eq!(c.partition_time(7), None);
}

#[test]
fn a_future_event_moves_no_watermark_past_now() {
    let c = clock();
    c.observe(0, NOW - 1, NOW_MS);
    c.observe(1, NOW - 1, NOW_MS);
    // One device 55 s fast on partition 1.
    c.observe(1, NOW + 55, NOW_MS);
    assert_eq!(c.partition_time(1), Some(NOW));
    assert_eq!(c.watermark(NOW_MS), Some(NOW - 1));
    c.observe(0, NOW + 2, NOW_MS + 500);
    assert_eq!(
        c.watermark(NOW_MS + 500),
        Some(NOW),
        "never beyond the wall clock"
    );
    // Idle for a minute: the watermark follows the wall clock, still not beyond it.
    assert_eq!(c.watermark(NOW_MS + 60_000), Some(NOW + 60));
    assert!(c.watermark(NOW_MS + 60_000).unwrap() <= (NOW_MS + 60_000) / 1000);
}

#[test]
fn a_silent_partition_leaves_the_minimum_and_comes_back_with_its_next_event() {
    let c = clock();
    c.observe(0, NOW - 50, NOW_MS);
    c.observe(1, NOW - 10, NOW_MS);
    // Partition 1 keeps receiving, partition 0 falls silent.
    for s in 1..=10 {
        c.observe(1, NOW - 10 + s, NOW_MS + s * 1000);
    }
    assert_eq!(c.watermark(NOW_MS + 9_999), Some(NOW - 50), "not idle yet");
    let s = c.status(NOW_MS + 10_000);
    assert_eq!(s.watermark, Some(NOW), "partition 0 idle: out");
    assert_eq!((s.active, s.idle), (1, 1));
    c.observe(0, NOW - 45, NOW_MS + 12_000);
    assert_eq!(
        c.watermark(NOW_MS + 12_000),
        Some(NOW - 45),
        "back in the minimum, even though it is lower now"
    );
}

#[test]
fn when_every_partition_is_idle_the_watermark_follows_the_wall_clock() {
    let c = clock();
    c.observe(0, 1_000, NOW_MS);
    c.observe(1, 1_003, NOW_MS + 1_000);
    assert_eq!(c.watermark(NOW_MS + 1_000), Some(1_000));
    // Both silent for the idle timeout: the largest event time plus the wall time since it
    // last moved (today's rule for an idle input).
    let s = c.status(NOW_MS + 11_000);
    assert_eq!((s.watermark, s.active, s.idle), (Some(1_013), 0, 2));
    assert_eq!(c.watermark(NOW_MS + 36_000), Some(1_038));
}

#[test]
fn a_revoked_partition_leaves_at_once_and_an_assigned_one_enters_at_its_first_event() {
    let c = clock();
    c.observe(0, NOW - 60, NOW_MS);
    c.observe(1, NOW - 5, NOW_MS);
    assert_eq!(c.watermark(NOW_MS), Some(NOW - 60));
    assert!(!c.revoke(0));
    assert_eq!(c.watermark(NOW_MS), Some(NOW - 5));
    // A worker still finishing a batch of the revoked partition does not bring it back.
    c.observe(0, NOW - 59, NOW_MS + 10);
    assert_eq!(c.watermark(NOW_MS + 10), Some(NOW - 5));
    assert_eq!(c.status(NOW_MS + 10).active, 1);
    // Assigned again, and a new partition: the watermark waits for their first events …
    c.assign(0, NOW_MS + 20);
    c.assign(2, NOW_MS + 20);
    let s = c.status(NOW_MS + 20);
    assert_eq!((s.watermark, s.active, s.waiting), (None, 1, 2));
    assert_eq!(c.alignment(NOW_MS + 20), Alignment::default());
    // … then takes them in, one with a backlog 60 s old.
    c.observe(2, NOW - 60, NOW_MS + 30);
    c.observe(1, NOW - 4, NOW_MS + 30);
    assert_eq!(c.watermark(NOW_MS + 30), None, "partition 0 still waiting");
    c.observe(0, NOW - 30, NOW_MS + 40);
    assert_eq!(c.watermark(NOW_MS + 40), Some(NOW - 60));
}

#[test]
fn an_assigned_partition_without_events_is_waited_for_only_the_idle_timeout() {
    let c = clock();
    c.assign(0, NOW_MS);
    c.assign(1, NOW_MS);
    c.observe(1, NOW - 30, NOW_MS + 1_000);
    assert_eq!(c.status(NOW_MS + 9_999).waiting, 1);
    assert_eq!(c.watermark(NOW_MS + 9_999), None);
    // Partition 0 has had nothing to read for the idle timeout: no longer waited for.
    let s = c.status(NOW_MS + 10_000);
    assert_eq!((s.watermark, s.active, s.waiting), (Some(NOW - 30), 1, 0));
    // A slot never assigned (no consumer: the worker's tests) is not waited for.
    let c = clock();
    c.observe(3, NOW - 1, NOW_MS);
    assert_eq!(c.watermark(NOW_MS), Some(NOW - 1));
}

#[test]
fn dead_letter_timestamps_stand_in_until_a_valid_event() {
    let c = clock();
    c.observe_fallback(NOW - 100, NOW_MS);
    assert_eq!(c.watermark(NOW_MS + 2_000), Some(NOW - 98));
    assert_eq!(c.max_event(), None);
    c.observe(3, NOW - 300, NOW_MS + 4_000);
    assert_eq!(
        c.watermark(NOW_MS + 4_000),
        Some(NOW - 300),
        "a valid event takes over"
    );
    c.observe_fallback(NOW, NOW_MS + 4_000);
    assert_eq!(c.watermark(NOW_MS + 4_000), Some(NOW - 300));
}

#[test]
fn partitions_of_any_chunk_count_and_those_beyond_the_table_only_move_the_idle_watermark() {
    let c = clock();
    c.observe(5_000, NOW - 30, NOW_MS);
    c.observe(70, NOW - 20, NOW_MS);
    c.observe(-1, NOW - 90, NOW_MS);
    c.observe(MAX_PARTITIONS as i32, NOW - 90, NOW_MS);
    let s = c.status(NOW_MS);
    assert_eq!((s.watermark, s.active), (Some(NOW - 30), 2));
    assert!(!c.revoke(MAX_PARTITIONS as i32));
}

#[test]
fn alignment_holds_a_partition_far_ahead_until_the_minimum_catches_up() {
    let c = clock(); // skew 100 s
    c.observe(0, NOW - 3_600, NOW_MS);
    c.observe(1, NOW - 3_550, NOW_MS);
    c.observe(2, NOW - 3_510, NOW_MS);
    assert_eq!(c.alignment(NOW_MS), Alignment::default(), "within the skew");
    c.observe(2, NOW - 3_400, NOW_MS + 100);
    let plan = c.alignment(NOW_MS + 100);
    assert_eq!((plan.hold, plan.release), (vec![2], vec![]));
    c.hold(2);
    assert!(c.is_held(2));
    assert_eq!(c.alignment(NOW_MS + 100), Alignment::default());
    // Paused, partition 2 gets no events but stays in the minimum: it is not idle.
    for s in 1..=20 {
        c.observe(0, NOW - 3_600 + 2 * s, NOW_MS + s * 1000);
        c.observe(1, NOW - 3_550 + 2 * s, NOW_MS + s * 1000);
    }
    let s = c.status(NOW_MS + 20_000);
    assert_eq!((s.active, s.idle, s.held), (3, 0, 1));
    // The minimum is 160 s behind partition 2: it stays held …
    assert_eq!(c.alignment(NOW_MS + 20_000), Alignment::default());
    // … until the minimum is within half the skew, 50 s.
    c.observe(0, NOW - 3_440, NOW_MS + 21_000);
    c.observe(1, NOW - 3_440, NOW_MS + 21_000);
    let plan = c.alignment(NOW_MS + 21_000);
    assert_eq!((plan.hold, plan.release), (vec![], vec![2]));
    c.release(2, NOW_MS + 21_000);
    assert!(!c.is_held(2));
    // Released, it has a full idle timeout to deliver its next event.
    assert_eq!(c.status(NOW_MS + 30_000).idle, 0);
    assert_eq!(c.status(NOW_MS + 31_000).idle, 3);
}

#[test]
fn a_held_partition_is_released_when_the_minimum_goes_idle_or_it_is_revoked() {
    let c = clock();
    c.observe(0, NOW - 1_000, NOW_MS);
    c.observe(1, NOW - 800, NOW_MS);
    c.observe(2, NOW - 800, NOW_MS);
    c.hold(1);
    c.hold(2);
    // Partition 0 drained: silent, it leaves; the held ones are the minimum and are released.
    let plan = c.alignment(NOW_MS + 10_000);
    assert_eq!((plan.hold, plan.release), (vec![], vec![1, 2]));
    assert!(c.revoke(2), "revoke says it was held");
    assert!(!c.is_held(2));
    assert!(!c.revoke(0));
    assert_eq!(
        EventClock::new(IDLE, None).alignment(NOW_MS),
        Alignment::default()
    );
}

#[test]
fn alignment_skew_is_sixteen_windows_plus_the_lateness() {
    assert_eq!(alignment_skew(&WindowConfig::new(10, 10)), 170);
    assert_eq!(alignment_skew(&WindowConfig::new(60, 0)), 960);
    assert_eq!(EventClock::default().max_skew_secs(), Some(170));
}

/// One step of the property test.
#[derive(Debug, Clone)]
enum Step {
    /// The wall clock moves on by this many ms, then partition `p`'s next event: its event
    /// time moves on by `dt` seconds (each partition is in event-time order), `future` of them
    /// stamped up to a minute ahead.
    Event {
        p: i32,
        dt: u64,
        wall_ms: u64,
        future: bool,
    },
    Revoke(i32),
    Assign(i32),
    /// Only the wall clock moves.
    Wait(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        12 => (0i32..4, 0u64..4, 0u64..1_500, prop::bool::weighted(0.05))
            .prop_map(|(p, dt, wall_ms, future)| Step::Event { p, dt, wall_ms, future }),
        1 => (0i32..4).prop_map(Step::Revoke),
        1 => (0i32..4).prop_map(Step::Assign),
        1 => (0u64..15_000).prop_map(Step::Wait),
    ]
}

/// The rule of the module doc, written naively.
#[derive(Debug, Default)]
struct Model {
    /// Per partition: revoked, largest event time (clamped), wall time of the last event (or of
    /// the assignment).
    partitions: BTreeMap<i32, (bool, Option<u64>, u64)>,
    /// Largest event time and when it last moved.
    all: Option<(u64, u64)>,
}

impl Model {
    fn observe(&mut self, p: i32, t: u64, now_ms: u64) {
        let t = t.min(now_ms / 1000);
        if self.all.is_none_or(|(max, _)| t > max) {
            self.all = Some((t, now_ms));
        }
        let entry = self.partitions.entry(p).or_default();
        if !entry.0 {
            entry.1 = Some(entry.1.map_or(t, |m| m.max(t)));
            entry.2 = now_ms;
        }
    }

    /// Whether `p` is in the minimum.
    fn active(&self, p: i32, now_ms: u64) -> bool {
        self.partitions
            .get(&p)
            .is_some_and(|&(revoked, max, seen)| {
                !revoked && max.is_some() && now_ms - seen < IDLE.as_millis() as u64
            })
    }

    /// Whether a partition is assigned, without an event yet, within the idle timeout.
    fn waiting(&self, now_ms: u64) -> bool {
        self.partitions.values().any(|&(revoked, max, seen)| {
            !revoked && max.is_none() && now_ms - seen < IDLE.as_millis() as u64
        })
    }

    fn watermark(&self, now_ms: u64) -> Option<u64> {
        if self.waiting(now_ms) {
            return None;
        }
        let min = self
            .partitions
            .iter()
            .filter(|(&p, _)| self.active(p, now_ms))
            .filter_map(|(_, e)| e.1)
            .min();
        min.or_else(|| {
            self.all
                .map(|(max, moved)| max + now_ms.saturating_sub(moved) / 1000)
        })
    }
}

proptest! {
    /// Whatever the interleaving of partitions, revokes, assigns and silences: the watermark is
    /// the model's, never beyond now, and an event of a partition in the minimum, in order on
    /// its partition, is never behind the watermark (so never late).
    #[test]
    fn the_watermark_follows_the_rule_over_random_interleavings(
        steps in proptest::collection::vec(step(), 1..200),
        lags in proptest::array::uniform4(0u64..4_000),
    ) {
        let c = EventClock::new(IDLE, None);
        let mut model = Model::default();
        let mut now_ms = NOW_MS;
        // Each partition's next event time: starts up to ~an hour behind now.
        let mut next: [u64; 4] = lags.map(|lag| NOW - lag);
        // Partitions that saw an event from the future since they were assigned: their
        // watermark is now, ahead of their own next events by their lag (within the lateness).
        let mut fast = [false; 4];
        for step in steps {
            match step {
                Step::Event { p, dt, wall_ms, future } => {
                    now_ms += wall_ms;
                    let i = p as usize;
                    next[i] = (next[i] + dt).min(now_ms / 1000);
                    let t = if future { now_ms / 1000 + 55 } else { next[i] };
                    fast[i] |= future;
                    if !fast[i] && model.active(p, now_ms) {
                        if let Some(before) = c.watermark(now_ms) {
                            prop_assert!(before <= t, "on-time event at {t} behind watermark {before}");
                        }
                    }
                    c.observe(p, t, now_ms);
                    model.observe(p, t, now_ms);
                }
                Step::Revoke(p) => {
                    c.revoke(p);
                    fast[p as usize] = false;
                    let entry = model.partitions.entry(p).or_default();
                    *entry = (true, None, 0);
                }
                Step::Assign(p) => {
                    c.assign(p, now_ms);
                    fast[p as usize] = false;
                    model.partitions.insert(p, (false, None, now_ms));
                }
                Step::Wait(ms) => now_ms += ms,
            }
            let status = c.status(now_ms);
            prop_assert_eq!(status.watermark, model.watermark(now_ms));
            if let Some(w) = status.watermark {
                prop_assert!(w <= now_ms / 1000, "watermark {} beyond now {}", w, now_ms / 1000);
            }
            let active = (0..4).filter(|&p| model.active(p, now_ms)).count() as u64;
            prop_assert_eq!(status.active, active);
            prop_assert_eq!(status.waiting > 0, model.waiting(now_ms));
        }
    }
}
