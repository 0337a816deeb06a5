//! What the producer writes instead of a record that is refused for good (a
//! [`Failure::Permanent`](super::delivery::Failure) error): the two fallbacks, as pure
//! functions of the refused record.
//!
//! - A processed record becomes a dead letter with code `output_rejected`: its key, processed
//!   value and headers, plus the `__pipeline.errors.*` headers, the input coordinates read from
//!   its lineage header, and [`HEADER_ERROR_WRITE`] (the client's or broker's error).
//! - A dead letter becomes a *reduced* one: no value, the key only when it is short, only the
//!   pipeline's own `__pipeline.*` headers, no timestamp (the broker sets it, so a timestamp
//!   the topic refuses cannot refuse it again), and [`HEADER_ERROR_TRUNCATED`] naming what was
//!   dropped. What is left is a few hundred bytes that still say where the record was and why
//!   it was rejected, so `dlq show` can find it and the original can be read at its offset.

use rdkafka::message::{Header, Headers, OwnedHeaders};

use crate::transform::headers::{
    parse_source, HEADER_ERROR_CODE, HEADER_ERROR_MESSAGE, HEADER_ERROR_OFFSET,
    HEADER_ERROR_PARTITION, HEADER_ERROR_STAGE, HEADER_ERROR_TIMESTAMP, HEADER_ERROR_TOPIC,
    HEADER_ERROR_TRUNCATED, HEADER_ERROR_WRITE, HEADER_SOURCE,
};
use crate::transform::ErrorCode;

/// Keys longer than this are dropped from a reduced dead letter.
pub const MAX_REDUCED_KEY: usize = 1024;

/// A record to write: key, value, headers, timestamp.
#[derive(Debug, Default)]
pub struct Letter {
    /// The record key.
    pub key: Option<Vec<u8>>,
    /// The record value.
    pub value: Option<Vec<u8>>,
    /// The record headers.
    pub headers: Option<OwnedHeaders>,
    /// The record timestamp (Unix ms); `None` lets the broker set it.
    pub timestamp_ms: Option<i64>,
}

/// The `output_rejected` dead letter of a processed record the output topic refused with
/// `error`.
pub fn rejected_output(record: Letter, error: &str) -> Letter {
    let code = ErrorCode::OutputRejected;
    let source = record
        .headers
        .as_ref()
        .and_then(|h| h.iter().find(|h| h.key == HEADER_SOURCE))
        .and_then(|h| h.value)
        .and_then(parse_source)
        .map(|(topic, partition, offset)| {
            (topic.to_string(), partition.to_string(), offset.to_string())
        });
    let message = format!("the output topic refused the processed record: {error}");
    let mut headers = record
        .headers
        .unwrap_or_default()
        .insert(text(HEADER_ERROR_CODE, code.as_str()))
        .insert(text(HEADER_ERROR_MESSAGE, &message))
        .insert(text(HEADER_ERROR_STAGE, code.stage()))
        .insert(text(HEADER_ERROR_WRITE, error));
    if let Some((topic, partition, offset)) = &source {
        headers = headers
            .insert(text(HEADER_ERROR_TOPIC, topic))
            .insert(text(HEADER_ERROR_PARTITION, partition))
            .insert(text(HEADER_ERROR_OFFSET, offset));
    }
    if let Some(ts) = record.timestamp_ms {
        headers = headers.insert(text(HEADER_ERROR_TIMESTAMP, &ts.to_string()));
    }
    Letter {
        headers: Some(headers),
        ..record
    }
}

/// The reduced form of a dead letter the dead-letter topic refused with `error`.
pub fn reduced_letter(letter: Letter, error: &str) -> Letter {
    let mut dropped = Vec::new();
    if letter.value.is_some() {
        dropped.push("value");
    }
    let key = match letter.key {
        Some(key) if key.len() > MAX_REDUCED_KEY => {
            dropped.push("key");
            None
        }
        key => key,
    };
    let mut kept = OwnedHeaders::new();
    let mut user_headers = false;
    if let Some(headers) = &letter.headers {
        for h in headers.iter() {
            if h.key.starts_with("__pipeline.") && h.key != HEADER_ERROR_WRITE {
                kept = kept.insert(h);
            } else if h.key != HEADER_ERROR_WRITE {
                user_headers = true;
            }
        }
    }
    if user_headers {
        dropped.push("headers");
    }
    let headers = kept
        .insert(text(HEADER_ERROR_TRUNCATED, &dropped.join(",")))
        .insert(text(HEADER_ERROR_WRITE, error));
    Letter {
        key,
        value: None,
        headers: Some(headers),
        timestamp_ms: None,
    }
}

fn text<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a [u8]> {
    Header {
        key,
        value: Some(value.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(headers: &'a OwnedHeaders, key: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|h| h.key == key)
            .and_then(|h| h.value)
            .map(|v| std::str::from_utf8(v).unwrap())
    }

    #[test]
    fn a_refused_processed_record_becomes_an_output_rejected_letter_with_its_source() {
        let record = Letter {
            key: Some(b"user-1".to_vec()),
            value: Some(b"{\"user_id\":\"user-1\"}".to_vec()),
            headers: Some(OwnedHeaders::new().insert(text(HEADER_SOURCE, "user-login/3/41"))),
            timestamp_ms: Some(1_720_589_697_000),
        };
        let letter = rejected_output(record, "Broker: Message size too large");
        let h = letter.headers.as_ref().unwrap();
        assert_eq!(header(h, HEADER_ERROR_CODE), Some("output_rejected"));
        assert_eq!(header(h, HEADER_ERROR_STAGE), Some("produce"));
        assert_eq!(header(h, HEADER_ERROR_TOPIC), Some("user-login"));
        assert_eq!(header(h, HEADER_ERROR_PARTITION), Some("3"));
        assert_eq!(header(h, HEADER_ERROR_OFFSET), Some("41"));
        assert_eq!(header(h, HEADER_ERROR_TIMESTAMP), Some("1720589697000"));
        assert_eq!(
            header(h, HEADER_ERROR_WRITE),
            Some("Broker: Message size too large")
        );
        assert_eq!(header(h, HEADER_SOURCE), Some("user-login/3/41"), "kept");
        assert_eq!(letter.key.as_deref(), Some(&b"user-1"[..]));
        assert_eq!(
            letter.value.as_deref(),
            Some(&b"{\"user_id\":\"user-1\"}"[..])
        );
    }

    #[test]
    fn a_reduced_letter_keeps_only_the_pipeline_headers_and_says_what_it_dropped() {
        let letter = Letter {
            key: Some(vec![b'k'; MAX_REDUCED_KEY + 1]),
            value: Some(vec![0; 1_048_000]),
            headers: Some(
                OwnedHeaders::new()
                    .insert(text("trace-id", "abc"))
                    .insert(text(HEADER_ERROR_CODE, "too_large"))
                    .insert(text(HEADER_ERROR_OFFSET, "7")),
            ),
            timestamp_ms: Some(5),
        };
        let reduced = reduced_letter(letter, "Broker: Message size too large");
        let h = reduced.headers.as_ref().unwrap();
        assert_eq!(reduced.value, None);
        assert_eq!(reduced.key, None, "a long key is dropped");
        assert_eq!(reduced.timestamp_ms, None);
        assert_eq!(header(h, "trace-id"), None);
        assert_eq!(header(h, HEADER_ERROR_CODE), Some("too_large"));
        assert_eq!(header(h, HEADER_ERROR_OFFSET), Some("7"));
        assert_eq!(header(h, HEADER_ERROR_TRUNCATED), Some("value,key,headers"));
        assert_eq!(h.count(), 4);

        let short = Letter {
            key: Some(b"k".to_vec()),
            value: Some(vec![1]),
            headers: None,
            timestamp_ms: None,
        };
        let reduced = reduced_letter(short, "refused");
        assert_eq!(reduced.key.as_deref(), Some(&b"k"[..]));
        let h = reduced.headers.as_ref().unwrap();
        assert_eq!(header(h, HEADER_ERROR_TRUNCATED), Some("value"));
    }
}
