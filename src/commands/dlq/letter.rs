//! One dead letter as read from the DLQ topic, and what its headers say.
//!
//! The pipeline writes a dead letter as the input record's key, value and headers followed by
//! its `__pipeline.errors.*` headers (see [`crate::pipeline::worker::dead_letter`]). So the *original*
//! headers are everything before that trailing block; a replayed record also carries
//! `__pipeline.replay.*` headers among them (see [`super::replay`]), which say how often it has
//! been replayed. A record without the error headers is not the pipeline's (a foreign record):
//! it has no code, and is shown as `(none)`.

use rdkafka::message::{BorrowedMessage, Headers, Message};

use crate::cli::dlq::NONE_LABEL;
use crate::transform::headers::{
    HEADER_ERROR_CODE, HEADER_ERROR_FIELD, HEADER_ERROR_MESSAGE, HEADER_ERROR_OFFSET,
    HEADER_ERROR_PARTITION, HEADER_ERROR_STAGE, HEADER_ERROR_TIMESTAMP, HEADER_ERROR_TOPIC,
};

/// Prefix of every header the pipeline adds to a dead letter.
pub const ERROR_HEADER_PREFIX: &str = "__pipeline.errors.";
/// Prefix of the headers `dlq replay` adds to a replayed record.
pub const REPLAY_HEADER_PREFIX: &str = "__pipeline.replay.";
/// Replay header: the DLQ topic the record was replayed from.
pub const HEADER_REPLAY_DLQ_TOPIC: &str = "__pipeline.replay.dlq_topic";
/// Replay header: the dead letter's partition in the DLQ topic (decimal).
pub const HEADER_REPLAY_DLQ_PARTITION: &str = "__pipeline.replay.dlq_partition";
/// Replay header: the dead letter's offset in the DLQ topic (decimal).
pub const HEADER_REPLAY_DLQ_OFFSET: &str = "__pipeline.replay.dlq_offset";
/// Replay header: how many times this record has been replayed, this time included (decimal).
pub const HEADER_REPLAY_COUNT: &str = "__pipeline.replay.count";

/// A header as read: name and value (`None`: a null value).
pub type HeaderRef<'a> = (&'a str, Option<&'a [u8]>);

/// A dead letter, borrowed from the consumer's message (or from a test's literals).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter<'a> {
    /// Partition in the DLQ topic.
    pub partition: i32,
    /// Offset in the DLQ topic.
    pub offset: i64,
    /// The DLQ record's timestamp (when it was dead-lettered), ms since the epoch.
    pub timestamp_ms: Option<i64>,
    /// The original key.
    pub key: Option<&'a [u8]>,
    /// The original value; `None` is a tombstone.
    pub value: Option<&'a [u8]>,
    /// All headers, in order: the original ones, then the pipeline's error headers.
    pub headers: Vec<HeaderRef<'a>>,
}

impl<'a> DeadLetter<'a> {
    /// The value of the last header named `name` (the pipeline's come last, so they win over an
    /// original header of the same name), as text.
    pub fn header_text(&self, name: &str) -> Option<String> {
        last_header(&self.headers, name)
    }

    /// Number of trailing headers that are the pipeline's: the trailing run of
    /// `__pipeline.errors.*` headers if it holds a code, else none.
    fn error_header_count(&self) -> usize {
        let n = self
            .headers
            .iter()
            .rev()
            .take_while(|(k, _)| k.starts_with(ERROR_HEADER_PREFIX))
            .count();
        let block = &self.headers[self.headers.len() - n..];
        if block
            .iter()
            .any(|(k, v)| *k == HEADER_ERROR_CODE && v.is_some())
        {
            n
        } else {
            0
        }
    }

    /// Whether the pipeline wrote this record: it ends in error headers that include a code.
    pub fn is_pipelines(&self) -> bool {
        self.error_header_count() > 0
    }

    /// The value of one of the pipeline's error headers.
    fn error_header(&self, name: &str) -> Option<String> {
        let n = self.error_header_count();
        last_header(&self.headers[self.headers.len() - n..], name)
    }

    /// The error code; `None` for a foreign record.
    pub fn code(&self) -> Option<String> {
        self.error_header(HEADER_ERROR_CODE)
    }

    /// The error code, or [`NONE_LABEL`].
    pub fn code_label(&self) -> String {
        self.code().unwrap_or_else(|| NONE_LABEL.to_owned())
    }

    /// The offending field, when the pipeline named one.
    pub fn field(&self) -> Option<String> {
        self.error_header(HEADER_ERROR_FIELD)
    }

    /// The human-readable reason.
    pub fn message(&self) -> Option<String> {
        self.error_header(HEADER_ERROR_MESSAGE)
    }

    /// The stage that rejected it (`parse` or `validate`).
    pub fn stage(&self) -> Option<String> {
        self.error_header(HEADER_ERROR_STAGE)
    }

    /// Where the input record was: topic, partition, offset, timestamp (ms), as the pipeline
    /// wrote them.
    pub fn source(&self) -> Option<Source> {
        let number = |name| self.error_header(name)?.parse::<i64>().ok();
        Some(Source {
            topic: self.error_header(HEADER_ERROR_TOPIC)?,
            partition: i32::try_from(number(HEADER_ERROR_PARTITION)?).ok()?,
            offset: number(HEADER_ERROR_OFFSET)?,
            timestamp_ms: number(HEADER_ERROR_TIMESTAMP),
        })
    }

    /// The headers the input record had: all but the pipeline's trailing error headers.
    pub fn original_headers(&self) -> &[HeaderRef<'a>] {
        &self.headers[..self.headers.len() - self.error_header_count()]
    }

    /// How many times the record had been replayed before it landed here (0: never): the
    /// `__pipeline.replay.count` among its original headers.
    pub fn replay_count(&self) -> u32 {
        last_header(self.original_headers(), HEADER_REPLAY_COUNT)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// The DLQ position it was last replayed from, if it is a replayed record that failed again.
    pub fn replayed_from(&self) -> Option<(String, i32, i64)> {
        let original = self.original_headers();
        let text = |name| last_header(original, name);
        Some((
            text(HEADER_REPLAY_DLQ_TOPIC)?,
            text(HEADER_REPLAY_DLQ_PARTITION)?.parse().ok()?,
            text(HEADER_REPLAY_DLQ_OFFSET)?.parse().ok()?,
        ))
    }
}

/// The value of the last header named `name` in `headers`, as text (invalid UTF-8 replaced).
fn last_header(headers: &[HeaderRef<'_>], name: &str) -> Option<String> {
    headers
        .iter()
        .rev()
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| *v)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The input record a dead letter came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Input topic.
    pub topic: String,
    /// Input partition.
    pub partition: i32,
    /// Input offset.
    pub offset: i64,
    /// Input record timestamp, ms since the epoch.
    pub timestamp_ms: Option<i64>,
}

/// The dead letter in a consumed message.
pub fn dead_letter<'a>(m: &'a BorrowedMessage<'a>) -> DeadLetter<'a> {
    DeadLetter {
        partition: m.partition(),
        offset: m.offset(),
        timestamp_ms: m.timestamp().to_millis(),
        key: m.key(),
        value: m.payload(),
        headers: m
            .headers()
            .map(|h| h.iter().map(|h| (h.key, h.value)).collect())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A dead letter as the pipeline writes it for a missing `device_type`, with `extra`
    /// original headers.
    pub(crate) fn letter<'a>(offset: i64, extra: &[HeaderRef<'a>]) -> DeadLetter<'a> {
        let mut headers: Vec<HeaderRef<'a>> = extra.to_vec();
        headers.extend([
            (HEADER_ERROR_CODE, Some(&b"missing_field"[..])),
            (
                HEADER_ERROR_MESSAGE,
                Some(&b"field `device_type` is missing"[..]),
            ),
            (HEADER_ERROR_STAGE, Some(&b"validate"[..])),
            (HEADER_ERROR_TOPIC, Some(&b"user-login"[..])),
            (HEADER_ERROR_PARTITION, Some(&b"2"[..])),
            (HEADER_ERROR_OFFSET, Some(&b"345"[..])),
            (HEADER_ERROR_FIELD, Some(&b"device_type"[..])),
            (HEADER_ERROR_TIMESTAMP, Some(&b"1720589697000"[..])),
        ]);
        DeadLetter {
            partition: 0,
            offset,
            timestamp_ms: Some(1_720_589_700_000 + offset),
            key: Some(b"k"),
            value: Some(br#"{"user_id": "u1"}"#),
            headers,
        }
    }

    #[test]
    fn every_error_header_has_the_prefix() {
        for name in [
            HEADER_ERROR_CODE,
            HEADER_ERROR_MESSAGE,
            HEADER_ERROR_FIELD,
            HEADER_ERROR_STAGE,
            HEADER_ERROR_TOPIC,
            HEADER_ERROR_PARTITION,
            HEADER_ERROR_OFFSET,
            HEADER_ERROR_TIMESTAMP,
        ] {
            assert!(name.starts_with(ERROR_HEADER_PREFIX), "{name}");
        }
    }

    #[test]
    fn reads_what_the_pipeline_wrote() {
        let l = letter(7, &[("trace", Some(b"t1"))]);
        assert!(l.is_pipelines());
        assert_eq!(l.code().as_deref(), Some("missing_field"));
        assert_eq!(l.field().as_deref(), Some("device_type"));
        assert_eq!(l.stage().as_deref(), Some("validate"));
        assert_eq!(
            l.source(),
            Some(Source {
                topic: "user-login".into(),
                partition: 2,
                offset: 345,
                timestamp_ms: Some(1_720_589_697_000),
            })
        );
        assert_eq!(l.original_headers(), &[("trace", Some(&b"t1"[..]))]);
        assert_eq!(l.replay_count(), 0);
        assert_eq!(l.replayed_from(), None);
    }

    #[test]
    fn original_headers_named_like_error_headers_stay_original() {
        // An input header that happens to use the prefix, followed by an ordinary one: only
        // the trailing block is the pipeline's.
        let l = letter(
            0,
            &[
                ("__pipeline.errors.code", Some(b"upstream")),
                ("trace", None),
            ],
        );
        assert_eq!(l.original_headers().len(), 2);
        assert_eq!(l.code().as_deref(), Some("missing_field"));
    }

    #[test]
    fn a_foreign_record_has_no_code() {
        let l = DeadLetter {
            partition: 1,
            offset: 3,
            timestamp_ms: None,
            key: None,
            value: Some(b"hello"),
            headers: vec![("trace", Some(b"x")), (HEADER_ERROR_FIELD, Some(b"ip"))],
        };
        assert!(!l.is_pipelines());
        assert_eq!(l.code(), None);
        assert_eq!(l.code_label(), NONE_LABEL);
        assert_eq!(l.field(), None);
        assert_eq!(l.source(), None);
        // Without a code, a trailing prefixed header is not the pipeline's: nothing is stripped.
        assert_eq!(l.original_headers().len(), 2);
        let bare = DeadLetter {
            headers: vec![],
            ..l
        };
        assert!(!bare.is_pipelines());
        assert!(bare.original_headers().is_empty());
    }

    #[test]
    fn replay_count_and_origin_come_from_the_original_headers() {
        let l = letter(
            9,
            &[
                (HEADER_REPLAY_DLQ_TOPIC, Some(b"user-login-dlq")),
                (HEADER_REPLAY_DLQ_PARTITION, Some(b"0")),
                (HEADER_REPLAY_DLQ_OFFSET, Some(b"4")),
                (HEADER_REPLAY_COUNT, Some(b"2")),
            ],
        );
        assert_eq!(l.replay_count(), 2);
        assert_eq!(l.replayed_from(), Some(("user-login-dlq".into(), 0, 4)));
        let garbled = letter(9, &[(HEADER_REPLAY_COUNT, Some(b"many"))]);
        assert_eq!(garbled.replay_count(), 0);
    }
}
