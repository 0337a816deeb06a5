//! The records that travel between the stages, and the header names the pipeline writes.

use rdkafka::message::OwnedHeaders;

use crate::offsets::Epoch;

/// Header on every output record: the input topic it came from.
pub const HEADER_SOURCE_TOPIC: &str = "__pipeline.source.topic";
/// Header on every output record: the input partition it came from (decimal).
pub const HEADER_SOURCE_PARTITION: &str = "__pipeline.source.partition";
/// Header on every output record: the input offset it came from (decimal).
pub const HEADER_SOURCE_OFFSET: &str = "__pipeline.source.offset";

/// Dead-letter header: the error code (see [`crate::transform::ErrorCode`]).
pub const HEADER_ERROR_CODE: &str = "__pipeline.errors.code";
/// Dead-letter header: a human-readable reason that names the field.
pub const HEADER_ERROR_MESSAGE: &str = "__pipeline.errors.message";
/// Dead-letter header: the offending field, when one field is to blame.
pub const HEADER_ERROR_FIELD: &str = "__pipeline.errors.field";
/// Dead-letter header: the stage that rejected the record (`parse` or `validate`).
pub const HEADER_ERROR_STAGE: &str = "__pipeline.errors.stage";
/// Dead-letter header: the input topic.
pub const HEADER_ERROR_TOPIC: &str = "__pipeline.errors.topic";
/// Dead-letter header: the input partition (decimal).
pub const HEADER_ERROR_PARTITION: &str = "__pipeline.errors.partition";
/// Dead-letter header: the input offset (decimal).
pub const HEADER_ERROR_OFFSET: &str = "__pipeline.errors.offset";
/// Dead-letter header: the input record's timestamp, milliseconds since the epoch (decimal).
pub const HEADER_ERROR_TIMESTAMP: &str = "__pipeline.errors.timestamp";

/// Where an input record came from, and under which assignment it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// Input partition.
    pub partition: i32,
    /// Input offset.
    pub offset: i64,
    /// Assignment epoch (see [`crate::offsets`]).
    pub epoch: Epoch,
}

/// One input record as the consumer hands it to a worker: owned copies of everything the
/// workers need, so the consumer's buffers are not held.
#[derive(Debug)]
pub struct InputRecord {
    /// Where it came from.
    pub source: Source,
    /// The record timestamp in milliseconds, if the broker set one.
    pub timestamp_ms: Option<i64>,
    /// The record key.
    pub key: Option<Vec<u8>>,
    /// The record value; `None` is a tombstone.
    pub payload: Option<Vec<u8>>,
    /// The record headers, copied.
    pub headers: Option<OwnedHeaders>,
}

/// Which output topic a record goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// `--output-topic`.
    Processed,
    /// `--dlq-topic`.
    DeadLetter,
    /// `--insights-topic`.
    Insights,
}

/// What an output record is, for its delivery report: the input record it derives from (none
/// for an insight record) and the insight window part that counts it (see [`crate::merger`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The input record; `None` for an insight record.
    pub source: Option<Source>,
    /// Which topic.
    pub destination: Destination,
    /// Start of the window the input was counted in, or that the insight record describes;
    /// `None` for a record not counted in any window (`--passthrough`).
    pub window: Option<u64>,
    /// The part of that window (set by the producer thread).
    pub part: u32,
    /// The input record's timestamp (Unix ms), for the end-to-end latency measured at delivery.
    pub input_timestamp_ms: Option<i64>,
}

/// One record for the producer thread.
#[derive(Debug)]
pub struct OutputRecord {
    /// Where it comes from and goes to.
    pub origin: Origin,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes.
    pub value: Option<Vec<u8>>,
    /// Headers.
    pub headers: Option<OwnedHeaders>,
}

/// A worker's report of the insight windows it closed.
#[derive(Debug)]
pub struct WindowReport {
    /// Which worker (0-based).
    pub worker: usize,
    /// Windows it closed since its last report.
    pub closed: Vec<crate::insights::window::WindowStats>,
    /// Every window of this worker starting before this time is closed.
    pub closed_before: u64,
    /// The latest flush request it has carried out.
    pub flushed: u64,
}

/// What workers send to the producer thread.
#[derive(Debug)]
pub enum ToProducer {
    /// An output record (processed or dead letter).
    Record(OutputRecord),
    /// Closed insight windows.
    Windows(WindowReport),
}

/// A number formatted in decimal on the stack (header values and JSON without an allocation).
#[derive(Debug, Clone, Copy)]
pub struct Decimal {
    buf: [u8; 20],
    start: usize,
}

impl Decimal {
    /// Formats `n`.
    pub fn new(mut n: u64) -> Self {
        let mut buf = [0u8; 20];
        let mut start = buf.len();
        loop {
            start -= 1;
            buf[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        Decimal { buf, start }
    }

    /// The digits.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

#[cfg(test)]
mod tests {
    use super::Decimal;

    #[test]
    fn decimal_matches_to_string() {
        for n in [0, 7, 10, 41, 1_720_589_697, u64::MAX] {
            assert_eq!(Decimal::new(n).as_bytes(), n.to_string().as_bytes());
        }
    }
}
