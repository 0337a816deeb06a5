//! The worker stage: input records in, output records (processed or dead letter) out.
//!
//! Each worker owns a [`Transformer`] (and so its parse buffers) and a [`WorkerTally`]; nothing
//! is shared on the hot path but the channels. A valid record becomes a `processed_data` record
//! keyed by `user_id` with source headers; anything else becomes a dead letter carrying the
//! original key, value and headers byte-for-byte plus the `__pipeline.errors.*` headers.

use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rdkafka::message::{Header, OwnedHeaders};

use crate::metrics::{Metrics, WorkerTally};
use crate::record::*;
use crate::transform::{Rejection, Transformer};

/// Publish the tally after this many records, or when the input is idle this long.
const PUBLISH_EVERY: u64 = 256;
const IDLE_PUBLISH: Duration = Duration::from_millis(200);

/// Runs one worker until the input channel is closed and drained, or the output channel closes.
pub fn run(
    rx: Receiver<InputRecord>,
    tx: Sender<OutputRecord>,
    mut transformer: Transformer,
    input_topic: &str,
    metrics: &Metrics,
) {
    let mut tally = WorkerTally::default();
    loop {
        let record = match rx.recv_timeout(IDLE_PUBLISH) {
            Ok(record) => record,
            Err(RecvTimeoutError::Timeout) => {
                metrics.publish(&mut tally);
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let output = process(&mut transformer, record, input_topic, &mut tally);
        if tx.send(output).is_err() {
            log::debug!("output channel closed; worker stops");
            break;
        }
        if tally.total() >= PUBLISH_EVERY {
            metrics.publish(&mut tally);
        }
    }
    metrics.publish(&mut tally);
}

/// Turns one input record into its output record.
pub fn process(
    transformer: &mut Transformer,
    record: InputRecord,
    input_topic: &str,
    tally: &mut WorkerTally,
) -> OutputRecord {
    let verdict = match transformer.process(record.payload.as_deref()) {
        Ok(event) => {
            let mut value = Vec::with_capacity(256);
            event.write_json(&mut value);
            Ok((event.user_id.as_bytes().to_vec(), value))
        }
        Err(rejection) => Err(rejection),
    };
    match verdict {
        Ok((key, value)) => {
            tally.valid += 1;
            OutputRecord {
                source: record.source,
                destination: Destination::Processed,
                key: Some(key),
                value: Some(value),
                headers: Some(source_headers(input_topic, &record.source)),
            }
        }
        Err(rejection) => {
            tally.dead_lettered[rejection.code.index()] += 1;
            dead_letter(record, &rejection, input_topic)
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
            value: Some(&source.partition.to_string()),
        })
        .insert(Header {
            key: HEADER_SOURCE_OFFSET,
            value: Some(&source.offset.to_string()),
        })
}

/// The dead letter for `record`: its key, value and headers untouched, then the error headers.
pub fn dead_letter(record: InputRecord, rejection: &Rejection, input_topic: &str) -> OutputRecord {
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
        source,
        destination: Destination::DeadLetter,
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
        assert_eq!(out.destination, Destination::Processed);
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
        assert_eq!(out.destination, Destination::DeadLetter);
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
        assert_eq!(out.destination, Destination::DeadLetter);
        assert_eq!(out.value, None);
        let payload = br#"{"user_id": "u1", "app_version": "2.3.0", "ip": "10.0.0.1", "locale": "ca", "device_id": "d1", "timestamp": 1}"#;
        let out = process(&mut t, input(Some(payload), None), "in", &mut tally);
        let headers = header_map(out.headers.as_ref().unwrap());
        assert!(headers.contains(&(HEADER_ERROR_FIELD.into(), Some(b"device_type".to_vec()))));
        assert!(headers.contains(&(HEADER_ERROR_CODE.into(), Some(b"missing_field".to_vec()))));
    }

    #[test]
    fn worker_drains_its_input_then_stops() {
        let (in_tx, in_rx) = crossbeam_channel::bounded(16);
        let (out_tx, out_rx) = crossbeam_channel::bounded(16);
        for offset in 0..5 {
            let mut r = input(Some(b"[]"), None);
            r.source.offset = offset;
            in_tx.send(r).unwrap();
        }
        drop(in_tx);
        let metrics = Metrics::default();
        run(
            in_rx,
            out_tx,
            Transformer::new(TransformOptions::default()),
            "in",
            &metrics,
        );
        let offsets: Vec<i64> = out_rx.iter().map(|o| o.source.offset).collect();
        assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
        assert_eq!(metrics.dead_lettered_total(), 5);
    }
}
