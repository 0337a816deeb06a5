//! The producer's delivery side: the delivery opaque (slot, topic, attempts packed in one
//! number, so a report costs no allocation), the context that queues librdkafka's delivery
//! reports for the producer thread, the slot table of batches in flight, and the retry
//! schedule of failed deliveries.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::ClientContext;

use super::messages::{Destination, Epoch};
use crate::kafka::client::ClientLog;
use crate::telemetry::metrics::Metrics;

pub(super) const FIRST_BACKOFF: Duration = Duration::from_millis(100);

pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(10);

pub(super) const DESTINATIONS: [Destination; 3] = [
    Destination::Processed,
    Destination::DeadLetter,
    Destination::Insights,
];

/// The delivery opaque: slot << 9 | reduced << 8 | destination << 6 | attempts (0–63).
pub(super) fn opaque(slot: usize, destination: Destination, attempts: u32) -> usize {
    slot << 9 | destination.index() << 6 | attempts.min(63) as usize
}

pub(super) fn unpack(opaque: usize) -> (usize, Destination, u32) {
    (
        opaque >> 9,
        DESTINATIONS[(opaque >> 6) & 3],
        (opaque & 63) as u32,
    )
}

/// The opaque of a dead letter written reduced (see [`Failure::Permanent`]): its own failure
/// is the last resort.
pub(super) fn reduced(opaque: usize) -> usize {
    opaque | 1 << 8
}

/// Whether `opaque` is a reduced dead letter's.
pub(super) fn is_reduced(opaque: usize) -> bool {
    opaque & 1 << 8 != 0
}

/// How a record the producer could not write is handled: the classes of librdkafka and Kafka
/// (`rd_kafka_error_is_retriable`; the broker's error table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// Worth sending again (a timeout, a leader change, a broker down, a full queue): retried
    /// with a bounded backoff, and its input offsets stay uncommitted meanwhile.
    Retriable,
    /// The same record would be refused again, however often it is sent (too large for the
    /// client or the topic, an invalid record, no permission): never retried. A processed
    /// record becomes a dead letter (`output_rejected`); a dead letter is written reduced
    /// (value dropped, `__pipeline.errors.truncated`); only when that fails too does the
    /// pipeline stop.
    Permanent,
}

/// The class of a produce error (from `send` or from a delivery report).
pub(super) fn classify(error: &KafkaError) -> Failure {
    use RDKafkaErrorCode::*;
    match error.rdkafka_error_code() {
        Some(
            MessageSizeTooLarge
            | MessageBatchTooLarge
            | InvalidMessageSize
            | InvalidRecord
            | InvalidTimestamp
            | InvalidTopic
            | InvalidRequiredAcks
            | TopicAuthorizationFailed
            | ClusterAuthorizationFailed
            | InvalidArgument,
        ) => Failure::Permanent,
        _ => Failure::Retriable,
    }
}

/// The size in bytes of a record batch holding only this record, as the broker measures it
/// against the topic's `max.message.bytes` (the v2 batch header, and the record's varints at
/// their widest): an upper bound, so a record below a topic's limit by this measure is never
/// refused as too large. Compression is not counted (the bound stays an upper one).
pub(super) fn record_batch_size(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: Option<&OwnedHeaders>,
) -> usize {
    const BATCH_HEADER: usize = 61;
    const RECORD_FIXED: usize = 5 + 1 + 10 + 5 + 5 + 5 + 5;
    let headers = headers.map_or(0, |h| {
        h.iter()
            .map(|h| 10 + h.key.len() + h.value.map_or(0, <[u8]>::len))
            .sum()
    });
    BATCH_HEADER
        + RECORD_FIXED
        + key.map_or(0, <[u8]>::len)
        + value.map_or(0, <[u8]>::len)
        + headers
}

/// A successful delivery report: the opaque and the message timestamp (16 bytes, so the list
/// of a busy poll stays small).
pub(super) type Delivered = (usize, Option<i64>);

/// Receives delivery reports (on the producer thread, inside `poll`) and queues them for the
/// stage.
pub struct DeliveryContext {
    pub(super) delivered: Mutex<Vec<Delivered>>,
    pub(super) failed: Mutex<Vec<(Retry, KafkaError)>>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) log: ClientLog,
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.log.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log.error(error, reason);
    }

    fn stats_raw(&self, statistics: &[u8]) {
        if let Some(up) = brokers_up(statistics) {
            self.metrics.health.producer_brokers_up.store(up, Relaxed);
        }
    }
}

/// Brokers in state `UP` in a librdkafka statistics document (readiness: the producer is
/// connected).
pub(super) fn brokers_up(statistics: &[u8]) -> Option<i64> {
    let stats: serde_json::Value = serde_json::from_slice(statistics).ok()?;
    let brokers = stats.get("brokers")?.as_object()?;
    Some(
        brokers
            .values()
            .filter(|b| b.get("state").and_then(|s| s.as_str()) == Some("UP"))
            .count() as i64,
    )
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        match result {
            Ok(message) => lock(&self.delivered).push((opaque, message.timestamp().to_millis())),
            Err((error, message)) => {
                let (_, destination, _) = unpack(opaque);
                self.metrics.delivery_failures.fetch_add(1, Relaxed);
                self.metrics.delivery_failures_by_topic[destination.index()].fetch_add(1, Relaxed);
                let retry = Retry::new(
                    opaque,
                    message.timestamp().to_millis(),
                    message.key(),
                    message.payload(),
                    message.headers().map(|h| h.detach()),
                );
                lock(&self.failed).push((retry, error.clone()));
            }
        }
    }
}

/// The lock of a list only this thread touches (never poisoned in practice).
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A record to send again.
pub(super) struct Retry {
    pub(super) opaque: usize,
    pub(super) timestamp_ms: Option<i64>,
    pub(super) key: Option<Vec<u8>>,
    pub(super) value: Option<Vec<u8>>,
    pub(super) headers: Option<OwnedHeaders>,
    pub(super) not_before: Instant,
}

impl Retry {
    /// A record to send again (at once, until a retry schedules it), its key and value copied.
    pub(super) fn new(
        opaque: usize,
        timestamp_ms: Option<i64>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: Option<OwnedHeaders>,
    ) -> Self {
        Retry {
            opaque,
            timestamp_ms,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers,
            not_before: Instant::now(),
        }
    }
}

/// One batch of outputs (or one epoch's insight records) in flight.
#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    pub(super) epoch: Epoch,
    /// Outputs sent and not yet delivered.
    pub(super) remaining: u64,
    /// Outputs in the batch.
    pub(super) total: u64,
    /// When the batch's first input record was polled; `None` for insight records.
    pub(super) consumed_at: Option<Instant>,
}

/// The in-flight batches, indexed by the delivery opaque's slot.
#[derive(Debug, Default)]
pub(super) struct Slots {
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
}

impl Slots {
    pub(super) fn insert(&mut self, slot: Slot) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(slot);
                i
            }
            None => {
                self.slots.push(Some(slot));
                self.slots.len() - 1
            }
        }
    }

    /// One output of slot `i` delivered; returns the slot when it was the last.
    pub(super) fn delivered(&mut self, i: usize) -> Option<Slot> {
        let slot = self.slots.get_mut(i)?.as_mut()?;
        slot.remaining -= 1;
        if slot.remaining > 0 {
            return None;
        }
        self.free.push(i);
        self.slots[i].take()
    }
}

/// The backoff before retry number `attempts + 1`.
pub(super) fn retry_backoff(attempts: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1 << attempts.min(10))
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delivery_opaque_round_trips_slot_topic_and_attempts() {
        for (slot, d, attempts) in [
            (0, Destination::Processed, 0),
            (7, Destination::DeadLetter, 5),
            (1 << 40, Destination::Insights, 63),
        ] {
            assert_eq!(unpack(opaque(slot, d, attempts)), (slot, d, attempts));
        }
        assert_eq!(
            unpack(opaque(3, Destination::Processed, 200)).2,
            63,
            "capped"
        );
        let o = reduced(opaque(9, Destination::DeadLetter, 2));
        assert!(is_reduced(o));
        assert!(!is_reduced(opaque(9, Destination::DeadLetter, 2)));
        assert_eq!(unpack(o), (9, Destination::DeadLetter, 2));
    }

    #[test]
    fn too_large_invalid_and_unauthorized_records_are_permanent_the_rest_retriable() {
        use RDKafkaErrorCode::*;
        let produce = KafkaError::MessageProduction;
        for code in [MessageSizeTooLarge, InvalidRecord, TopicAuthorizationFailed] {
            assert_eq!(classify(&produce(code)), Failure::Permanent, "{code:?}");
        }
        for code in [
            MessageTimedOut,
            RequestTimedOut,
            NotLeaderForPartition,
            QueueFull,
            UnknownTopicOrPartition,
            NotEnoughReplicas,
        ] {
            assert_eq!(classify(&produce(code)), Failure::Retriable, "{code:?}");
        }
    }

    #[test]
    fn a_record_batch_is_bounded_above_by_its_parts_and_the_framing() {
        use rdkafka::message::Header;
        let headers = OwnedHeaders::new().insert(Header {
            key: "h",
            value: Some(&b"12345"[..]),
        });
        let size = record_batch_size(Some(b"key"), Some(&[0; 1000]), Some(&headers));
        assert_eq!(size, 61 + 36 + 3 + 1000 + (10 + 1 + 5));
        assert_eq!(record_batch_size(None, None, None), 97);
    }

    #[test]
    fn a_slot_is_returned_once_its_last_output_is_delivered_and_reused() {
        let mut slots = Slots::default();
        let s = |total| Slot {
            epoch: 4,
            remaining: total,
            total,
            consumed_at: None,
        };
        let a = slots.insert(s(2));
        let b = slots.insert(s(1));
        assert!(slots.delivered(a).is_none());
        assert_eq!(slots.delivered(b).map(|s| s.total), Some(1));
        assert_eq!(slots.delivered(a).map(|s| (s.epoch, s.total)), Some((4, 2)));
        assert_eq!(slots.insert(s(1)), a, "freed slots are reused");
        assert!(slots.delivered(99).is_none(), "unknown slot");
    }

    #[test]
    fn retry_backoff_doubles_up_to_ten_seconds() {
        assert_eq!(retry_backoff(0), Duration::from_millis(100));
        assert_eq!(retry_backoff(3), Duration::from_millis(800));
        assert_eq!(retry_backoff(20), Duration::from_secs(10));
    }
}
