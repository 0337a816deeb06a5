//! Watermark alignment on the consumer thread: it pauses the partitions whose watermark runs too
//! far ahead of the instance's and resumes them once the others have caught up. The rule, and
//! why, are in [`super::watermark`] ("Alignment"); this is the part that touches the consumer.
//!
//! Backpressure ([`super::consumer`], which pauses and resumes the whole assignment) and
//! alignment share librdkafka's one application pause flag per partition. So the backpressure
//! resume leaves held partitions paused ([`unheld`]); alignment resumes a partition itself only
//! while backpressure has not paused everything (otherwise it just stops holding it, and the
//! backpressure resume takes it along); and a held partition that is revoked is resumed at once
//! ([`revoke`]), because librdkafka keeps an application's pause across an unassign and a later
//! assign of the same partition.

use std::sync::atomic::Ordering;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::TopicPartitionList;

use super::rebalance::RebalanceContext;

/// Applies what [`super::watermark::EventClock::alignment`] says at wall time `now_ms`.
pub(super) fn align(consumer: &BaseConsumer<RebalanceContext>, now_ms: u64) {
    let context = consumer.context();
    let plan = context.clock.alignment(now_ms);
    if !plan.hold.is_empty() {
        match consumer.pause(&list(&context.topic, &plan.hold)) {
            Ok(()) => {
                for &p in &plan.hold {
                    context.clock.hold(p);
                }
                // One line per hold (a hold lasts while the minimum covers half the skew).
                log::info!(
                    "watermark alignment: holding partitions {:?}, {} s or more ahead of the \
                     watermark, until the others catch up",
                    plan.hold,
                    context.clock.max_skew_secs().unwrap_or(0)
                );
            }
            Err(e) => log::warn!("watermark alignment: pausing {:?}: {e}", plan.hold),
        }
    }
    if !plan.release.is_empty() {
        if !context.paused.load(Ordering::Relaxed) {
            if let Err(e) = consumer.resume(&list(&context.topic, &plan.release)) {
                log::warn!("watermark alignment: resuming {:?}: {e}", plan.release);
                return;
            }
        }
        for &p in &plan.release {
            context.clock.release(p, now_ms);
        }
        log::debug!(
            "watermark alignment: released partitions {:?}",
            plan.release
        );
    }
}

/// `assignment` without the partitions alignment holds: what a backpressure resume resumes.
pub(super) fn unheld(
    context: &RebalanceContext,
    assignment: &TopicPartitionList,
) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for e in assignment.elements() {
        if !(e.topic() == context.topic && context.clock.is_held(e.partition())) {
            tpl.add_partition(e.topic(), e.partition());
        }
    }
    tpl
}

/// Takes revoked partitions out of the watermark, resuming those alignment held.
pub(super) fn revoke(consumer: &BaseConsumer<RebalanceContext>, partitions: &[i32]) {
    let context = consumer.context();
    let held: Vec<i32> = partitions
        .iter()
        .copied()
        .filter(|&p| context.clock.revoke(p))
        .collect();
    if !held.is_empty() {
        if let Err(e) = consumer.resume(&list(&context.topic, &held)) {
            log::warn!("resuming revoked partitions {held:?} that alignment held: {e}");
        }
    }
}

fn list(topic: &str, partitions: &[i32]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        tpl.add_partition(topic, p);
    }
    tpl
}
