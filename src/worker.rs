//! The worker stage: input records in, output records (processed or dead letter) out.
//!
//! Each worker owns a [`Transformer`] (and so its parse buffers) and a [`WorkerTally`]; nothing
//! is shared on the hot path but the channels. A valid record becomes a `processed_data` record
//! keyed by `user_id` with source headers; anything else becomes a dead letter carrying the
//! original key, value and headers byte-for-byte plus the `__pipeline.errors.*` headers.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rdkafka::message::{Header, OwnedHeaders};

use crate::insights::window::{
    lag_ms, Observation, ObservationKind, WindowAggregator, WindowConfig,
};
use crate::metrics::{unix_ms, Metrics, WorkerTally};
use crate::record::*;
use crate::transform::{Rejection, Transformer};
use crate::watermark::EventClock;

/// Publish the tally and check the insight windows after this many records, or when the input
/// is idle this long.
const BATCH: u64 = 256;
const IDLE_TICK: Duration = Duration::from_millis(100);
/// Records between two reads of the wall clock (~0.3 ms apart at full speed).
const CLOCK_EVERY: u64 = 32;
/// Events further in the future than this (clock skew, bad data) are counted in the window of
/// now + this, so they cannot hold a window open, or push the watermark, far ahead.
const MAX_FUTURE_SECS: u64 = 60;

/// What a worker shares with the rest of the pipeline.
pub struct WorkerShared<'a> {
    /// Input topic name (for headers).
    pub input_topic: &'a str,
    /// Counters.
    pub metrics: &'a Metrics,
    /// The event-time watermark.
    pub clock: &'a EventClock,
    /// Bumped by the consumer thread when open windows must be flushed (partition revoke).
    pub flush_request: &'a AtomicU64,
    /// Window sizes.
    pub windows: WindowConfig,
    /// Copy records untouched (`--passthrough`, the benchmark ceiling).
    pub passthrough: bool,
}

/// One worker's insight state: its own window aggregator, no shared locks.
pub struct WorkerWindows {
    id: usize,
    aggregator: WindowAggregator,
    config: WindowConfig,
    flushed: u64,
    reported_closed_before: u64,
}

impl WorkerWindows {
    /// The window state of worker `id`.
    pub fn new(id: usize, config: WindowConfig) -> Self {
        WorkerWindows {
            id,
            aggregator: WindowAggregator::new(config),
            config,
            flushed: 0,
            reported_closed_before: 0,
        }
    }

    /// Closes what the watermark (or a flush request) allows; returns a report when there is
    /// something new to tell the producer thread.
    fn tick(&mut self, shared: &WorkerShared<'_>, now_ms: u64) -> Option<WindowReport> {
        let request = shared.flush_request.load(Relaxed);
        if request > self.flushed {
            // Flush early (partial) so the records counted so far can be committed before the
            // partitions move; later events start fresh windows (a new part of the same window).
            let closed = self.aggregator.flush();
            self.aggregator = WindowAggregator::new(self.config);
            self.flushed = request;
            self.reported_closed_before = 0;
            return Some(self.report(closed, 0));
        }
        let watermark = shared.clock.watermark(now_ms)?;
        let closed = self.aggregator.advance(watermark);
        let closed_before = self.aggregator.closed_before();
        if closed.is_empty() && closed_before == self.reported_closed_before {
            return None;
        }
        self.reported_closed_before = closed_before;
        Some(self.report(closed, closed_before))
    }

    /// Closes every window (shutdown).
    fn finish(&mut self) -> WindowReport {
        let closed = self.aggregator.flush();
        self.report(closed, u64::MAX)
    }

    fn report(
        &self,
        closed: Vec<crate::insights::window::WindowStats>,
        closed_before: u64,
    ) -> WindowReport {
        WindowReport {
            worker: self.id,
            closed,
            closed_before,
            flushed: self.flushed,
        }
    }
}

/// Runs one worker until the input channel is closed and drained, or the output channel closes.
pub fn run(
    rx: Receiver<InputRecord>,
    tx: Sender<ToProducer>,
    mut transformer: Transformer,
    mut windows: WorkerWindows,
    shared: &WorkerShared<'_>,
) {
    let mut tally = WorkerTally::default();
    let mut since_tick = 0u64;
    let mut now_ms = unix_ms();
    loop {
        // try_recv first: recv_timeout reads the clock on every call, which showed up in
        // profiles at a few hundred thousand records per second.
        let record = match rx.try_recv() {
            Ok(record) => Some(record),
            Err(_) => match rx.recv_timeout(IDLE_TICK) {
                Ok(record) => Some(record),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            },
        };
        // The wall clock (for lag and future-clamping) is read every CLOCK_EVERY records.
        if since_tick % CLOCK_EVERY == 0 || record.is_none() {
            now_ms = unix_ms();
        }
        if let Some(record) = record {
            let output = process(
                &mut transformer,
                &mut windows.aggregator,
                record,
                shared,
                now_ms,
                &mut tally,
            );
            if tx.send(ToProducer::Record(output)).is_err() {
                log::debug!("output channel closed; worker stops");
                return;
            }
            since_tick += 1;
            if since_tick < BATCH {
                continue;
            }
        }
        since_tick = 0;
        shared.metrics.publish(&mut tally);
        if let Some(report) = windows.tick(shared, now_ms) {
            if tx.send(ToProducer::Windows(report)).is_err() {
                return;
            }
        }
    }
    shared.metrics.publish(&mut tally);
    let _ = tx.send(ToProducer::Windows(windows.finish()));
}

/// Turns one input record into its output record, and counts it in its insight window.
pub fn process(
    transformer: &mut Transformer,
    aggregator: &mut WindowAggregator,
    record: InputRecord,
    shared: &WorkerShared<'_>,
    now_ms: u64,
    tally: &mut WorkerTally,
) -> OutputRecord {
    let input_topic = shared.input_topic;
    if shared.passthrough {
        tally.valid += 1;
        return OutputRecord {
            origin: Origin {
                source: Some(record.source),
                destination: Destination::Processed,
                window: None,
                part: 0,
                input_timestamp_ms: record.timestamp_ms,
            },
            key: record.key,
            value: record.payload,
            headers: record.headers,
        };
    }
    let verdict = match transformer.process(record.payload.as_deref()) {
        Ok(event) => {
            let mut value = Vec::with_capacity(256);
            event.write_json(&mut value);
            let window_time = event.timestamp.min(now_ms / 1000 + MAX_FUTURE_SECS);
            shared.clock.observe(window_time, now_ms);
            let window = aggregator.observe(&Observation {
                event_time: window_time,
                lag_ms: lag_ms(now_ms, event.timestamp),
                kind: ObservationKind::valid(&event),
            });
            Ok((event.user_id.as_bytes().to_vec(), value, window))
        }
        Err(rejection) => Err(rejection),
    };
    match verdict {
        Ok((key, value, window)) => {
            tally.valid += 1;
            OutputRecord {
                origin: Origin {
                    source: Some(record.source),
                    destination: Destination::Processed,
                    window: Some(window),
                    part: 0,
                    input_timestamp_ms: record.timestamp_ms,
                },
                key: Some(key),
                value: Some(value),
                headers: Some(source_headers(input_topic, &record.source)),
            }
        }
        Err(rejection) => {
            tally.dead_lettered[rejection.code.index()] += 1;
            // A bad record is counted at its own timestamp when it has a valid one; otherwise
            // at the current event time (so replays of old data keep their dead letters in the
            // right windows), or at its Kafka timestamp before any valid event was seen.
            let event_time = match (rejection.event_time, shared.clock.max_event()) {
                (Some(t), _) => t.min(now_ms / 1000 + MAX_FUTURE_SECS),
                (None, Some(t)) => t,
                (None, None) => {
                    let t = record.timestamp_ms.map_or(now_ms, |ms| ms.max(0) as u64) / 1000;
                    shared.clock.observe_fallback(t, now_ms);
                    t
                }
            };
            let window = aggregator.observe(&Observation {
                event_time,
                lag_ms: 0,
                kind: ObservationKind::invalid(&rejection),
            });
            dead_letter(record, &rejection, input_topic, window)
        }
    }
}

fn source_headers(topic: &str, source: &Source) -> OwnedHeaders {
    OwnedHeaders::new_with_capacity(3)
        .insert(Header {
            key: HEADER_SOURCE_TOPIC,
            value: Some(topic),
        })
        .insert(Header {
            key: HEADER_SOURCE_PARTITION,
            value: Some(Decimal::new(source.partition as u64).as_bytes()),
        })
        .insert(Header {
            key: HEADER_SOURCE_OFFSET,
            value: Some(Decimal::new(source.offset as u64).as_bytes()),
        })
}

/// The dead letter for `record`: its key, value and headers untouched, then the error headers.
pub fn dead_letter(
    record: InputRecord,
    rejection: &Rejection,
    input_topic: &str,
    window: u64,
) -> OutputRecord {
    let source = record.source;
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
            value: Some(&source.partition.to_string()),
        })
        .insert(Header {
            key: HEADER_ERROR_OFFSET,
            value: Some(&source.offset.to_string()),
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
        origin: Origin {
            source: Some(source),
            destination: Destination::DeadLetter,
            window: Some(window),
            part: 0,
            input_timestamp_ms: record.timestamp_ms,
        },
        key: record.key,
        value: record.payload,
        headers: Some(headers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::{ErrorCode, TransformOptions};
    use rdkafka::message::Headers;

    const NOW_MS: u64 = 1_720_589_700_000;

    struct Fixture {
        metrics: Metrics,
        clock: EventClock,
        flush: AtomicU64,
    }

    impl Fixture {
        fn new() -> Self {
            Fixture {
                metrics: Metrics::default(),
                clock: EventClock::new(),
                flush: AtomicU64::new(0),
            }
        }

        fn shared(&self, topic: &'static str) -> WorkerShared<'_> {
            WorkerShared {
                input_topic: topic,
                metrics: &self.metrics,
                clock: &self.clock,
                flush_request: &self.flush,
                windows: WindowConfig::new(10, 10),
                passthrough: false,
            }
        }
    }

    fn process(
        t: &mut Transformer,
        record: InputRecord,
        topic: &'static str,
        tally: &mut WorkerTally,
    ) -> OutputRecord {
        let f = Fixture::new();
        let mut aggregator = WindowAggregator::new(WindowConfig::new(10, 10));
        super::process(t, &mut aggregator, record, &f.shared(topic), NOW_MS, tally)
    }

    fn input(payload: Option<&[u8]>, headers: Option<OwnedHeaders>) -> InputRecord {
        InputRecord {
            source: Source {
                partition: 2,
                offset: 41,
                epoch: 1,
            },
            timestamp_ms: Some(1_720_589_697_123),
            key: Some(b"k-1".to_vec()),
            payload: payload.map(<[u8]>::to_vec),
            headers,
        }
    }

    fn header_map(h: &OwnedHeaders) -> Vec<(String, Option<Vec<u8>>)> {
        h.iter()
            .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
            .collect()
    }

    #[test]
    fn valid_record_is_keyed_by_user_with_source_headers() {
        let mut t = Transformer::new(TransformOptions::default());
        let mut tally = WorkerTally::default();
        let payload = br#"{"user_id": "u1", "app_version": "2.3.0", "ip": "10.0.0.1", "locale": "ca", "device_id": "d1", "timestamp": "1720589697", "device_type": "Android"}"#;
        let out = process(&mut t, input(Some(payload), None), "user-login", &mut tally);
        assert_eq!(out.origin.destination, Destination::Processed);
        assert_eq!(
            out.origin.window,
            Some(1_720_589_690),
            "counted in the window of its event time"
        );
        assert_eq!(out.key.as_deref(), Some(&b"u1"[..]));
        let value: serde_json::Value =
            serde_json::from_slice(out.value.as_deref().unwrap()).unwrap();
        assert_eq!(value["device_type"], "android");
        assert_eq!(value["locale"], "CA");
        assert_eq!(value["ip_class"], "private");
        assert_eq!(
            header_map(out.headers.as_ref().unwrap()),
            vec![
                (HEADER_SOURCE_TOPIC.into(), Some(b"user-login".to_vec())),
                (HEADER_SOURCE_PARTITION.into(), Some(b"2".to_vec())),
                (HEADER_SOURCE_OFFSET.into(), Some(b"41".to_vec())),
            ]
        );
        assert_eq!(tally.valid, 1);
    }

    #[test]
    fn dead_letter_keeps_key_value_and_headers_byte_for_byte() {
        let mut t = Transformer::new(TransformOptions::default());
        let mut tally = WorkerTally::default();
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
        let out = process(
            &mut t,
            input(Some(payload), Some(original)),
            "user-login",
            &mut tally,
        );
        assert_eq!(out.origin.destination, Destination::DeadLetter);
        assert_eq!(out.key.as_deref(), Some(&b"k-1"[..]));
        assert_eq!(out.value.as_deref(), Some(&payload[..]));
        let headers = header_map(out.headers.as_ref().unwrap());
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
        assert!(
            get(HEADER_ERROR_MESSAGE).unwrap().contains("UTF-8"),
            "{:?}",
            get(HEADER_ERROR_MESSAGE)
        );
        assert_eq!(tally.dead_lettered[ErrorCode::InvalidUtf8.index()], 1);
    }

    #[test]
    fn tombstone_dead_letter_keeps_the_null_value_and_names_the_field_when_known() {
        let mut t = Transformer::new(TransformOptions::default());
        let mut tally = WorkerTally::default();
        let out = process(&mut t, input(None, None), "in", &mut tally);
        assert_eq!(out.origin.destination, Destination::DeadLetter);
        assert_eq!(out.value, None);
        let payload = br#"{"user_id": "u1", "app_version": "2.3.0", "ip": "10.0.0.1", "locale": "ca", "device_id": "d1", "timestamp": 1}"#;
        let out = process(&mut t, input(Some(payload), None), "in", &mut tally);
        let headers = header_map(out.headers.as_ref().unwrap());
        assert!(headers.contains(&(HEADER_ERROR_FIELD.into(), Some(b"device_type".to_vec()))));
        assert!(headers.contains(&(HEADER_ERROR_CODE.into(), Some(b"missing_field".to_vec()))));
    }

    #[test]
    fn worker_drains_its_input_then_reports_its_windows_and_stops() {
        let (in_tx, in_rx) = crossbeam_channel::bounded(16);
        let (out_tx, out_rx) = crossbeam_channel::bounded(16);
        for offset in 0..5 {
            let mut r = input(Some(b"[]"), None);
            r.source.offset = offset;
            in_tx.send(r).unwrap();
        }
        drop(in_tx);
        let f = Fixture::new();
        let windows = WorkerWindows::new(3, WindowConfig::new(10, 10));
        run(
            in_rx,
            out_tx,
            Transformer::new(TransformOptions::default()),
            windows,
            &f.shared("in"),
        );
        let mut offsets = Vec::new();
        let mut reports = Vec::new();
        for message in out_rx.iter() {
            match message {
                ToProducer::Record(o) => offsets.push(o.origin.source.unwrap().offset),
                ToProducer::Windows(r) => reports.push(r),
            }
        }
        assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
        assert_eq!(f.metrics.dead_lettered_total(), 5);
        let last = reports.last().expect("a final report");
        assert_eq!((last.worker, last.closed_before), (3, u64::MAX));
        let counted: u64 = reports
            .iter()
            .flat_map(|r| &r.closed)
            .map(|w| w.received)
            .sum();
        assert_eq!(counted, 5, "every record counted in a window");
        assert!(
            last.closed.iter().all(|w| w.partial),
            "flushed at shutdown: partial"
        );
    }

    #[test]
    fn a_flush_request_closes_open_windows_early() {
        let f = Fixture::new();
        let shared = f.shared("in");
        let mut windows = WorkerWindows::new(0, WindowConfig::new(10, 10));
        let mut t = Transformer::new(TransformOptions::default());
        let mut tally = WorkerTally::default();
        let payload = br#"{"user_id": "u1", "app_version": "2.3.0", "ip": "10.0.0.1", "locale": "ca", "device_id": "d1", "timestamp": 1720589697, "device_type": "iOS"}"#;
        let mut observe_one = |windows: &mut WorkerWindows| {
            let record = input(Some(payload), None);
            super::process(
                &mut t,
                &mut windows.aggregator,
                record,
                &shared,
                NOW_MS,
                &mut tally,
            );
        };
        observe_one(&mut windows);
        let report = windows.tick(&shared, NOW_MS).expect("closed_before moved");
        assert!(
            report.closed.is_empty(),
            "the window is still open at this watermark"
        );
        f.flush.store(1, Relaxed);
        let report = windows.tick(&shared, NOW_MS).expect("flush report");
        assert_eq!(report.flushed, 1);
        assert_eq!(report.closed.len(), 1);
        assert!(report.closed[0].partial);
        // Without a flush, a watermark past the window's end + lateness closes it.
        observe_one(&mut windows);
        let report = windows
            .tick(&shared, NOW_MS + 60_000)
            .expect("closing report");
        assert_eq!((report.closed.len(), report.closed[0].partial), (1, false));
    }
}
