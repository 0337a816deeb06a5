//! The worker stage: input batches in, output batches (processed records and dead letters) and
//! insight deltas out.
//!
//! Each worker owns a [`Transformer`] (and so its parse buffers), its insight windows and a
//! [`WorkerTally`]; nothing is shared on the hot path but the channels, one operation per batch.
//! A valid record becomes a `processed_data` record keyed by `user_id`, carrying the input's
//! headers (`--input-headers`) and then the [`HEADER_SOURCE`] lineage header; anything else
//! becomes a dead letter carrying the original key, value and headers byte-for-byte plus the
//! `__pipeline.errors.*` headers. Outputs keep the input record's timestamp.
//!
//! # Epochs
//!
//! Batches carry the commit epoch they were handed out in (see [`crate::pipeline::offsets`]). A worker
//! counts the records of one epoch into its open windows; when it receives a batch of a newer
//! epoch it first sends a [`WorkerDelta`]: what each window gained, and that it will receive
//! no record of an older epoch again (the work channel is FIFO, so every older batch has been
//! taken). An idle worker does the same on a tick once the consumer has moved to a newer epoch
//! and the channel is empty (read in that order, so no batch of the older epoch can still be
//! waiting). The producer needs these reports from every worker to complete an epoch.
//!
//! # Event time
//!
//! A worker tells the [`EventClock`] the largest event time of each run of one partition's
//! records in a batch (one update per run, not per record), and after each batch closes the
//! windows the instance's watermark allows (see [`crate::pipeline::watermark`]); it publishes
//! the watermark, the partitions' states and its late events by cause with its counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rdkafka::message::{Header, OwnedHeaders};

use crate::insights::window::{
    lag_ms, Observation, ObservationKind, WindowAggregator, WindowConfig, WindowStats,
};
use crate::pipeline::messages::*;
use crate::pipeline::watermark::EventClock;
use crate::telemetry::metrics::{unix_ms, Metrics, WorkerTally};
use crate::transform::headers::{
    write_source, InputHeaders, HEADER_ERROR_CODE, HEADER_ERROR_FIELD, HEADER_ERROR_MESSAGE,
    HEADER_ERROR_OFFSET, HEADER_ERROR_PARTITION, HEADER_ERROR_STAGE, HEADER_ERROR_TIMESTAMP,
    HEADER_ERROR_TOPIC, HEADER_SOURCE,
};
use crate::transform::{Rejection, Transformer};

/// How often an idle worker checks whether the consumer has closed an epoch.
const IDLE_TICK: Duration = Duration::from_millis(50);
/// Events further in the future than this (clock skew, bad data) are counted in the window of
/// now + this, so they cannot hold a window open, or push the watermark, far ahead.
const MAX_FUTURE_SECS: u64 = 60;

/// What a worker shares with the rest of the pipeline.
pub struct WorkerShared<'a> {
    /// Input topic name (for headers).
    pub input_topic: &'a str,
    /// Counters.
    pub metrics: &'a Metrics,
    /// The per-partition watermarks.
    pub clock: &'a EventClock,
    /// The consumer's open epoch.
    pub epoch: &'a AtomicU64,
    /// Window sizes.
    pub windows: WindowConfig,
    /// Which input headers processed records carry.
    pub input_headers: InputHeaders,
    /// Copy records untouched (`--passthrough`, the benchmark ceiling).
    pub passthrough: bool,
    /// Recycled batch buffers.
    pub pools: &'a BatchPools,
}

/// One worker's insight state: its own window aggregator, no shared locks.
pub struct WorkerWindows {
    id: usize,
    aggregator: WindowAggregator,
    /// The epoch whose records are being counted (0 before the first batch).
    open_epoch: Epoch,
    /// Input partitions of the records counted since the last delta.
    partitions: Vec<i32>,
    /// Windows closed by the watermark since the last delta.
    closed: Vec<WindowStats>,
}

impl WorkerWindows {
    /// The window state of worker `id`.
    pub fn new(id: usize, config: WindowConfig) -> Self {
        WorkerWindows {
            id,
            aggregator: WindowAggregator::new(config),
            open_epoch: 0,
            partitions: Vec::new(),
            closed: Vec::new(),
        }
    }

    /// The aggregator (for benches and tests).
    pub fn aggregator(&mut self) -> &mut WindowAggregator {
        &mut self.aggregator
    }

    fn note_partition(&mut self, partition: i32) {
        if !self.partitions.contains(&partition) {
            self.partitions.push(partition);
        }
    }

    /// Closes what the watermark allows at wall time `now_ms` (kept for the next delta), and
    /// publishes the watermark's state and the late events.
    fn advance(&mut self, shared: &WorkerShared<'_>, now_ms: u64, tally: &mut WorkerTally) {
        let status = shared.clock.status(now_ms);
        shared.metrics.note_watermark(
            status.watermark,
            [status.active, status.idle, status.held, status.waiting],
        );
        if let Some(watermark) = status.watermark {
            let closed = self.aggregator.advance(watermark);
            self.closed.extend(closed);
        }
        for (sum, n) in tally.late.iter_mut().zip(self.aggregator.take_late()) {
            *sum += n;
        }
    }

    /// The delta of the open epoch, declaring the worker finished with every epoch up to
    /// `finished_through`; the next records count in epoch `next`.
    fn delta(&mut self, finished_through: Epoch, next: Epoch) -> WorkerDelta {
        let mut windows = std::mem::take(&mut self.closed);
        windows.extend(self.aggregator.take_deltas());
        windows.sort_by_key(|w| w.start);
        let delta = WorkerDelta {
            worker: self.id,
            epoch: self.open_epoch,
            finished_through,
            windows,
            partitions: std::mem::take(&mut self.partitions),
            closed_before: self.aggregator.closed_before(),
        };
        self.open_epoch = next;
        delta
    }

    /// The last delta (shutdown): every window, none of them final.
    fn finish(&mut self) -> WorkerDelta {
        let closed_before = self.aggregator.closed_before();
        let mut windows = std::mem::take(&mut self.closed);
        windows.extend(self.aggregator.flush());
        WorkerDelta {
            worker: self.id,
            epoch: self.open_epoch,
            finished_through: Epoch::MAX,
            windows,
            partitions: std::mem::take(&mut self.partitions),
            closed_before,
        }
    }
}

/// Runs one worker until the input channel is closed and drained, or the output channel closes.
pub fn run(
    rx: Receiver<InputBatch>,
    tx: Sender<ToProducer>,
    mut transformer: Transformer,
    mut windows: WorkerWindows,
    shared: &WorkerShared<'_>,
) {
    let mut tally = WorkerTally::default();
    let mut batches = 0u64;
    loop {
        let batch = match rx.recv_timeout(IDLE_TICK) {
            Ok(batch) => {
                batches += 1;
                crate::fault::inject(batches);
                batch
            }
            Err(RecvTimeoutError::Timeout) => {
                // Epoch first, then the channel: see the module doc.
                let epoch = shared.epoch.load(Ordering::Acquire);
                if epoch > windows.open_epoch && rx.is_empty() {
                    windows.advance(shared, unix_ms(), &mut tally);
                    shared.metrics.publish(&mut tally);
                    if tx
                        .send(ToProducer::Delta(windows.delta(epoch - 1, epoch)))
                        .is_err()
                    {
                        return;
                    }
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if batch.epoch > windows.open_epoch {
            let delta = windows.delta(batch.epoch - 1, batch.epoch);
            if tx.send(ToProducer::Delta(delta)).is_err() {
                return;
            }
        }
        let now_ms = unix_ms();
        let output = process_batch(
            &mut transformer,
            &mut windows,
            batch,
            shared,
            now_ms,
            &mut tally,
        );
        windows.advance(shared, now_ms, &mut tally);
        shared.metrics.publish(&mut tally);
        if tx.send(ToProducer::Batch(output)).is_err() {
            log::debug!("output channel closed; worker stops");
            return;
        }
    }
    shared.metrics.publish(&mut tally);
    let _ = tx.send(ToProducer::Delta(windows.finish()));
}

/// Turns an input batch into its output batch (one output per input, in order), counting each
/// record in its insight window.
pub fn process_batch(
    transformer: &mut Transformer,
    windows: &mut WorkerWindows,
    batch: InputBatch,
    shared: &WorkerShared<'_>,
    now_ms: u64,
    tally: &mut WorkerTally,
) -> OutputBatch {
    let pools = shared.pools;
    let mut out = OutputBatch {
        epoch: batch.epoch,
        consumed_at: batch.consumed_at,
        data: pools
            .output_data
            .take()
            .unwrap_or_else(|| Vec::with_capacity(batch.data.len() + batch.records.len() * 96)),
        records: pools
            .output_records
            .take()
            .unwrap_or_else(|| Vec::with_capacity(batch.records.len())),
    };
    let InputBatch {
        data, mut records, ..
    } = batch;
    let mut run = PartitionRun::new(records.first().map_or(0, |r| r.source.partition));
    if !records.is_empty() {
        windows.note_partition(run.partition);
    }
    for record in records.drain(..) {
        if run.partition != record.source.partition {
            run.finish(shared.clock, now_ms);
            run = PartitionRun::new(record.source.partition);
            windows.note_partition(run.partition);
        }
        let output = if shared.passthrough {
            tally.valid += 1;
            OutputRecord {
                destination: Destination::Processed,
                timestamp_ms: record.timestamp_ms,
                key: copy(&data, &record.key, &mut out.data),
                value: copy(&data, &record.payload, &mut out.data),
                headers: record.headers,
            }
        } else {
            process(
                transformer,
                &mut windows.aggregator,
                &data,
                record,
                shared,
                now_ms,
                tally,
                &mut out.data,
                &mut run,
            )
        };
        out.records.push(output);
    }
    run.finish(shared.clock, now_ms);
    pools.recycle_input(data, records);
    out
}

/// Consecutive records of one partition in a batch: the largest valid event time among them,
/// told to the clock once at the end of the run.
#[derive(Debug)]
pub struct PartitionRun {
    partition: i32,
    /// Largest window time of the run's valid events (0: none yet).
    max_secs: u64,
}

impl PartitionRun {
    /// A run of `partition` with no event yet.
    pub fn new(partition: i32) -> Self {
        PartitionRun {
            partition,
            max_secs: 0,
        }
    }

    /// Tells the clock what the run saw.
    fn finish(&self, clock: &EventClock, now_ms: u64) {
        if self.max_secs > 0 {
            clock.observe(self.partition, self.max_secs, now_ms);
        }
    }

    /// The partition's current event time (what it and this run have seen), or before its
    /// first event the largest of any partition.
    fn event_time(&self, clock: &EventClock) -> Option<u64> {
        let own = clock
            .partition_time(self.partition)
            .unwrap_or(0)
            .max(self.max_secs);
        if own > 0 {
            Some(own)
        } else {
            clock.max_event()
        }
    }
}

fn copy(
    from: &[u8],
    range: &Option<std::ops::Range<usize>>,
    to: &mut Vec<u8>,
) -> Option<std::ops::Range<usize>> {
    range.as_ref().map(|r| append(to, &from[r.clone()]))
}

/// Turns one input record into its output record (key and value appended to `out`), and
/// counts it in its insight window.
#[allow(clippy::too_many_arguments)]
pub fn process(
    transformer: &mut Transformer,
    aggregator: &mut WindowAggregator,
    data: &[u8],
    record: InputRecord,
    shared: &WorkerShared<'_>,
    now_ms: u64,
    tally: &mut WorkerTally,
    out: &mut Vec<u8>,
    run: &mut PartitionRun,
) -> OutputRecord {
    let payload = record.payload.as_ref().map(|r| &data[r.clone()]);
    let rejection = match transformer.process(payload) {
        Ok(event) => {
            let key = append(out, event.user_id.as_bytes());
            let start = out.len();
            event.write_json(out);
            let value = start..out.len();
            let window_time = event.timestamp.min(now_ms / 1000 + MAX_FUTURE_SECS);
            run.max_secs = run.max_secs.max(window_time);
            aggregator.observe(&Observation {
                event_time: window_time,
                lag_ms: lag_ms(now_ms, event.timestamp),
                kind: ObservationKind::valid(&event),
            });
            tally.valid += 1;
            // The lineage value is written after the value and cut off again once librdkafka
            // has copied it into the header: no allocation of its own.
            let lineage = out.len();
            write_source(
                out,
                shared.input_topic,
                record.source.partition,
                record.source.offset,
            );
            let headers = shared.input_headers.carried(record.headers).insert(Header {
                key: HEADER_SOURCE,
                value: Some(&out[lineage..]),
            });
            out.truncate(lineage);
            return OutputRecord {
                destination: Destination::Processed,
                timestamp_ms: record.timestamp_ms,
                key: Some(key),
                value: Some(value),
                headers: Some(headers),
            };
        }
        Err(rejection) => rejection,
    };
    tally.dead_lettered[rejection.code.index()] += 1;
    // A bad record is counted at its own timestamp when it has a valid one; otherwise at its
    // partition's current event time (so replays of old data keep their dead letters in the
    // right windows), or at its Kafka timestamp before any valid event was seen.
    let event_time = match (rejection.event_time, run.event_time(shared.clock)) {
        (Some(t), _) => t.min(now_ms / 1000 + MAX_FUTURE_SECS),
        (None, Some(t)) => t,
        (None, None) => {
            let t = record.timestamp_ms.map_or(now_ms, |ms| ms.max(0) as u64) / 1000;
            shared.clock.observe_fallback(t, now_ms);
            t
        }
    };
    aggregator.observe(&Observation {
        event_time,
        lag_ms: 0,
        kind: ObservationKind::invalid(&rejection),
    });
    dead_letter(data, record, &rejection, shared.input_topic, out)
}

/// The dead letter for `record`: its key, value and headers untouched, then the error headers.
pub fn dead_letter(
    data: &[u8],
    record: InputRecord,
    rejection: &Rejection,
    input_topic: &str,
    out: &mut Vec<u8>,
) -> OutputRecord {
    let source = record.source;
    let (mut partition, mut offset) = (itoa::Buffer::new(), itoa::Buffer::new());
    let mut headers = record
        .headers
        .unwrap_or_else(|| OwnedHeaders::new_with_capacity(8))
        .insert(Header {
            key: HEADER_ERROR_CODE,
            value: Some(rejection.code.as_str()),
        })
        .insert(Header {
            key: HEADER_ERROR_MESSAGE,
            value: Some(rejection.message.as_str()),
        })
        .insert(Header {
            key: HEADER_ERROR_STAGE,
            value: Some(rejection.code.stage()),
        })
        .insert(Header {
            key: HEADER_ERROR_TOPIC,
            value: Some(input_topic),
        })
        .insert(Header {
            key: HEADER_ERROR_PARTITION,
            value: Some(partition.format(source.partition.max(0)).as_bytes()),
        })
        .insert(Header {
            key: HEADER_ERROR_OFFSET,
            value: Some(offset.format(source.offset.max(0)).as_bytes()),
        });
    if let Some(field) = rejection.field {
        headers = headers.insert(Header {
            key: HEADER_ERROR_FIELD,
            value: Some(field),
        });
    }
    if let Some(ts) = record.timestamp_ms {
        headers = headers.insert(Header {
            key: HEADER_ERROR_TIMESTAMP,
            value: Some(&ts.to_string()),
        });
    }
    OutputRecord {
        destination: Destination::DeadLetter,
        timestamp_ms: record.timestamp_ms,
        key: copy(data, &record.key, out),
        value: copy(data, &record.payload, out),
        headers: Some(headers),
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::message::Headers;

    use super::*;
    use crate::testing::Login;
    use crate::transform::{ErrorCode, TransformOptions};

    const NOW_MS: u64 = 1_720_589_700_000;

    /// A valid event whose locale, device type and timestamp (a string) need normalizing.
    fn valid() -> Vec<u8> {
        Login::default()
            .locale("ca")
            .raw("timestamp", r#""1720589697""#)
            .device_type("Android")
            .to_bytes()
    }

    struct Fixture {
        metrics: Metrics,
        clock: EventClock,
        epoch: AtomicU64,
        pools: BatchPools,
    }

    impl Fixture {
        fn new() -> Self {
            Fixture {
                metrics: Metrics::default(),
                clock: EventClock::default(),
                epoch: AtomicU64::new(1),
                pools: BatchPools::default(),
            }
        }

        fn shared(&self, topic: &'static str, input_headers: InputHeaders) -> WorkerShared<'_> {
            WorkerShared {
                input_topic: topic,
                metrics: &self.metrics,
                clock: &self.clock,
                epoch: &self.epoch,
                windows: WindowConfig::new(10, 10),
                input_headers,
                passthrough: false,
                pools: &self.pools,
            }
        }
    }

    type Spec<'a> = (i64, Option<&'a [u8]>, Option<OwnedHeaders>);

    fn batch(epoch: Epoch, records: &[Spec<'_>]) -> InputBatch {
        let mut b = InputBatch::new();
        b.epoch = epoch;
        for (offset, payload, headers) in records {
            let source = Source {
                partition: 2,
                offset: *offset,
            };
            b.push(
                source,
                Some(1_720_589_697_123),
                Some(b"k-1"),
                *payload,
                headers.clone(),
            );
        }
        b
    }

    fn one(
        payload: Option<&[u8]>,
        headers: Option<OwnedHeaders>,
        policy: InputHeaders,
    ) -> (OutputBatch, WorkerTally) {
        let f = Fixture::new();
        let mut t = Transformer::new(TransformOptions::default());
        let mut w = WorkerWindows::new(0, WindowConfig::new(10, 10));
        let mut tally = WorkerTally::default();
        let out = process_batch(
            &mut t,
            &mut w,
            batch(1, &[(41, payload, headers)]),
            &f.shared("user-login", policy),
            NOW_MS,
            &mut tally,
        );
        (out, tally)
    }

    fn header_map(h: &OwnedHeaders) -> Vec<(String, Option<Vec<u8>>)> {
        h.iter()
            .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
            .collect()
    }

    fn traced() -> OwnedHeaders {
        OwnedHeaders::new()
            .insert(Header {
                key: "traceparent",
                value: Some(&b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"[..]),
            })
            .insert(Header {
                key: "tenant",
                value: Some(&b"\x00\xff"[..]),
            })
    }

    #[test]
    fn valid_record_is_keyed_by_user_with_the_lineage_header_and_its_timestamp() {
        let (out, tally) = one(Some(valid().as_slice()), None, InputHeaders::All);
        let r = &out.records[0];
        assert_eq!(r.destination, Destination::Processed);
        assert_eq!(r.timestamp_ms, Some(1_720_589_697_123));
        assert_eq!(out.bytes(&r.key), Some(&b"u1"[..]));
        let value: serde_json::Value =
            serde_json::from_slice(out.bytes(&r.value).unwrap()).unwrap();
        assert_eq!(value["device_type"], "android");
        assert_eq!(value["locale"], "CA");
        assert_eq!(value["ip_class"], "private");
        assert_eq!(
            header_map(r.headers.as_ref().unwrap()),
            vec![(HEADER_SOURCE.into(), Some(b"user-login/2/41".to_vec()))]
        );
        assert_eq!(tally.valid, 1);
    }

    #[test]
    fn input_headers_are_carried_before_the_lineage_header_as_configured() {
        let (out, _) = one(Some(valid().as_slice()), Some(traced()), InputHeaders::All);
        let headers = header_map(out.records[0].headers.as_ref().unwrap());
        let keys: Vec<&str> = headers.iter().map(|h| h.0.as_str()).collect();
        assert_eq!(keys, ["traceparent", "tenant", HEADER_SOURCE]);
        assert_eq!(headers[1].1.as_deref(), Some(&b"\x00\xff"[..]));

        let (out, _) = one(Some(valid().as_slice()), Some(traced()), InputHeaders::None);
        let keys: Vec<String> = header_map(out.records[0].headers.as_ref().unwrap())
            .into_iter()
            .map(|h| h.0)
            .collect();
        assert_eq!(keys, [HEADER_SOURCE]);

        let only = InputHeaders::parse("traceparent, other").unwrap();
        let (out, _) = one(Some(valid().as_slice()), Some(traced()), only);
        let keys: Vec<String> = header_map(out.records[0].headers.as_ref().unwrap())
            .into_iter()
            .map(|h| h.0)
            .collect();
        assert_eq!(keys, ["traceparent", HEADER_SOURCE]);
        assert!(InputHeaders::parse(" ").is_err());
    }

    #[test]
    fn dead_letter_keeps_key_value_and_headers_byte_for_byte() {
        let original = OwnedHeaders::new()
            .insert(Header {
                key: "trace",
                value: Some(&b"\x00\xffabc"[..]),
            })
            .insert::<[u8]>(Header {
                key: "empty",
                value: None,
            });
        let payload = b"{\"user_id\": \"\xff\"";
        let (out, tally) = one(Some(payload), Some(original), InputHeaders::None);
        let r = &out.records[0];
        assert_eq!(r.destination, Destination::DeadLetter);
        assert_eq!(out.bytes(&r.key), Some(&b"k-1"[..]));
        assert_eq!(out.bytes(&r.value), Some(&payload[..]));
        let headers = header_map(r.headers.as_ref().unwrap());
        assert_eq!(headers[0], ("trace".into(), Some(b"\x00\xffabc".to_vec())));
        assert_eq!(headers[1], ("empty".into(), None));
        let get = |k: &str| {
            headers
                .iter()
                .find(|(key, _)| key == k)
                .and_then(|(_, v)| v.clone())
                .map(|v| String::from_utf8(v).unwrap())
        };
        assert_eq!(get(HEADER_ERROR_CODE).as_deref(), Some("invalid_utf8"));
        assert_eq!(get(HEADER_ERROR_STAGE).as_deref(), Some("parse"));
        assert_eq!(get(HEADER_ERROR_TOPIC).as_deref(), Some("user-login"));
        assert_eq!(get(HEADER_ERROR_PARTITION).as_deref(), Some("2"));
        assert_eq!(get(HEADER_ERROR_OFFSET).as_deref(), Some("41"));
        assert_eq!(
            get(HEADER_ERROR_TIMESTAMP).as_deref(),
            Some("1720589697123")
        );
        assert!(get(HEADER_ERROR_MESSAGE).unwrap().contains("UTF-8"));
        assert_eq!(tally.dead_lettered[ErrorCode::InvalidUtf8.index()], 1);
    }

    #[test]
    fn tombstone_dead_letter_keeps_the_null_value_and_names_the_missing_field() {
        let (out, _) = one(None, None, InputHeaders::All);
        assert_eq!(out.records[0].destination, Destination::DeadLetter);
        assert_eq!(out.bytes(&out.records[0].value), None);
        let payload = Login::default()
            .locale("ca")
            .timestamp(1)
            .without("device_type")
            .to_bytes();
        let (out, _) = one(Some(&payload), None, InputHeaders::All);
        let headers = header_map(out.records[0].headers.as_ref().unwrap());
        assert!(headers.contains(&(HEADER_ERROR_FIELD.into(), Some(b"device_type".to_vec()))));
        assert!(headers.contains(&(HEADER_ERROR_CODE.into(), Some(b"missing_field".to_vec()))));
    }

    #[test]
    fn each_partition_of_a_batch_moves_its_own_watermark_and_a_future_event_not_past_now() {
        let f = Fixture::new();
        let now = NOW_MS / 1000;
        let mut b = InputBatch::new();
        b.epoch = 1;
        let at = |t: u64| Login::default().timestamp(t).to_bytes();
        for (partition, offset, t) in [
            (0, 0, now - 300),
            (0, 1, now - 290),
            (1, 0, now - 5),
            (0, 2, now - 280),
            (1, 1, now + 55), // a device 55 s fast
        ] {
            b.push(Source { partition, offset }, None, None, Some(&at(t)), None);
        }
        let mut w = WorkerWindows::new(0, WindowConfig::new(10, 10));
        let mut tally = WorkerTally::default();
        let mut t = Transformer::new(TransformOptions::default());
        process_batch(
            &mut t,
            &mut w,
            b,
            &f.shared("in", InputHeaders::All),
            NOW_MS,
            &mut tally,
        );
        assert_eq!(f.clock.partition_time(0), Some(now - 280));
        assert_eq!(f.clock.partition_time(1), Some(now), "clamped to now");
        assert_eq!(f.clock.watermark(NOW_MS), Some(now - 280));
        // The future event still counts in its own window.
        let windows = w.aggregator().take_deltas();
        let future = (now + 55) - (now + 55) % 10;
        assert_eq!(
            windows.last().map(|w| (w.start, w.valid)),
            Some((future, 1))
        );
        assert_eq!(windows.iter().map(|w| w.valid).sum::<u64>(), 5);
    }

    /// Runs a worker over `batches` (channel closed after them) and returns what it sent.
    fn run_worker(f: &Fixture, batches: Vec<InputBatch>) -> Vec<ToProducer> {
        let (in_tx, in_rx) = crossbeam_channel::bounded(16);
        let (out_tx, out_rx) = crossbeam_channel::bounded(64);
        for b in batches {
            in_tx.send(b).unwrap();
        }
        drop(in_tx);
        run(
            in_rx,
            out_tx,
            Transformer::new(TransformOptions::default()),
            WorkerWindows::new(3, WindowConfig::new(10, 10)),
            &f.shared("in", InputHeaders::All),
        );
        out_rx.iter().collect()
    }

    #[test]
    fn a_newer_epoch_sends_the_older_epochs_delta_before_its_records() {
        let f = Fixture::new();
        let sent = run_worker(
            &f,
            vec![
                batch(
                    1,
                    &[(0, Some(valid().as_slice()), None), (1, Some(b"[]"), None)],
                ),
                batch(1, &[(2, Some(valid().as_slice()), None)]),
                batch(3, &[(3, Some(valid().as_slice()), None)]),
            ],
        );
        let summary: Vec<String> = sent
            .iter()
            .map(|m| match m {
                ToProducer::Batch(b) => format!("batch e{} n{}", b.epoch, b.records.len()),
                ToProducer::Delta(d) => format!(
                    "delta e{} through {} received {}",
                    d.epoch,
                    d.finished_through,
                    d.windows.iter().map(|w| w.received).sum::<u64>()
                ),
            })
            .collect();
        assert_eq!(
            summary,
            [
                "delta e0 through 0 received 0",
                "batch e1 n2",
                "batch e1 n1",
                "delta e1 through 2 received 3",
                "batch e3 n1",
                format!("delta e3 through {} received 1", Epoch::MAX).as_str(),
            ]
        );
        let ToProducer::Delta(d) = &sent[3] else {
            unreachable!()
        };
        assert_eq!((d.worker, d.partitions.as_slice()), (3, &[2][..]));
        assert_eq!(f.metrics.dead_lettered_total(), 1);
    }

    #[test]
    fn an_idle_worker_reports_a_closed_epoch_once_the_channel_is_empty() {
        let f = Fixture::new();
        let (in_tx, in_rx) = crossbeam_channel::bounded(4);
        let (out_tx, out_rx) = crossbeam_channel::bounded(16);
        in_tx
            .send(batch(1, &[(0, Some(valid().as_slice()), None)]))
            .unwrap();
        let shared = f.shared("in", InputHeaders::All);
        std::thread::scope(|s| {
            s.spawn(|| {
                run(
                    in_rx,
                    out_tx,
                    Transformer::new(TransformOptions::default()),
                    WorkerWindows::new(0, WindowConfig::new(10, 10)),
                    &shared,
                )
            });
            let first_batch = out_rx.recv().unwrap();
            assert!(matches!(first_batch, ToProducer::Delta(ref d) if d.epoch == 0));
            assert!(matches!(out_rx.recv().unwrap(), ToProducer::Batch(_)));
            // The consumer closes epoch 1: the idle worker reports it without a new batch.
            f.epoch.store(2, Ordering::Release);
            match out_rx.recv_timeout(Duration::from_secs(5)).unwrap() {
                ToProducer::Delta(d) => {
                    assert_eq!((d.epoch, d.finished_through), (1, 1));
                    assert_eq!(d.windows.iter().map(|w| w.received).sum::<u64>(), 1);
                }
                other => panic!("expected a delta, got {other:?}"),
            }
            drop(in_tx);
        });
    }
}
