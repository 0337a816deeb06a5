//! The messages that travel between the stages, and the header names the pipeline writes.
//!
//! Records move in batches: the consumer hands the workers an [`InputBatch`] (keys and payloads
//! copied once into one buffer), a worker hands the producer an [`OutputBatch`] (keys and values
//! written into one buffer), so a channel operation, a tracker lock and a metrics update happen
//! per batch, not per record. Every batch carries the commit epoch it was handed out in (see
//! [`crate::pipeline::offsets`]); workers report their insight deltas per epoch ([`WorkerDelta`]), and the
//! consumer tells the producer what each epoch holds ([`EpochClosed`]).

use std::ops::Range;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use rdkafka::message::OwnedHeaders;

use crate::insights::window::WindowStats;

/// A commit epoch: the records handed out during one `--commit-interval`, numbered from 1.
pub type Epoch = u64;
/// One assignment of a partition to this consumer (see [`crate::pipeline::offsets`]).
pub type Generation = u64;

/// Where an input record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// Input partition.
    pub partition: i32,
    /// Input offset.
    pub offset: i64,
}

/// One input record inside an [`InputBatch`]; its key and payload are ranges of the batch's
/// buffer.
#[derive(Debug)]
pub struct InputRecord {
    /// Where it came from.
    pub source: Source,
    /// The record timestamp in milliseconds, if the broker set one.
    pub timestamp_ms: Option<i64>,
    /// The record key.
    pub key: Option<Range<usize>>,
    /// The record value; `None` is a tombstone.
    pub payload: Option<Range<usize>>,
    /// The record headers, copied.
    pub headers: Option<OwnedHeaders>,
}

/// Records handed from the consumer to one worker in one channel operation.
#[derive(Debug)]
pub struct InputBatch {
    /// The commit epoch the batch was handed out in.
    pub epoch: Epoch,
    /// When its first record was polled (for the processing-latency histogram).
    pub consumed_at: Instant,
    /// Keys and payloads, back to back.
    pub data: Vec<u8>,
    /// The records, in the order they were polled.
    pub records: Vec<InputRecord>,
}

impl InputBatch {
    /// An empty batch (epoch 0 until it is handed out).
    pub fn new() -> Self {
        InputBatch {
            epoch: 0,
            consumed_at: Instant::now(),
            data: Vec::new(),
            records: Vec::new(),
        }
    }

    /// An empty batch on recycled buffers (or new ones with room for `records` records of
    /// about `bytes` bytes in all).
    pub fn from_pool(pools: &BatchPools, records: usize, bytes: usize) -> Self {
        InputBatch {
            epoch: 0,
            consumed_at: Instant::now(),
            data: pools
                .input_data
                .take()
                .unwrap_or_else(|| Vec::with_capacity(bytes)),
            records: pools
                .input_records
                .take()
                .unwrap_or_else(|| Vec::with_capacity(records)),
        }
    }

    /// Appends a record, copying its key and payload into the batch buffer.
    pub fn push(
        &mut self,
        source: Source,
        timestamp_ms: Option<i64>,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: Option<OwnedHeaders>,
    ) {
        if self.records.is_empty() {
            self.consumed_at = Instant::now();
        }
        let key = key.map(|k| append(&mut self.data, k));
        let payload = payload.map(|p| append(&mut self.data, p));
        self.records.push(InputRecord {
            source,
            timestamp_ms,
            key,
            payload,
            headers,
        });
    }

    /// The bytes of a range of the buffer.
    pub fn bytes(&self, range: &Option<Range<usize>>) -> Option<&[u8]> {
        range.as_ref().map(|r| &self.data[r.clone()])
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

impl Default for InputBatch {
    fn default() -> Self {
        Self::new()
    }
}

/// Appends `bytes` to `buf` and returns where they are.
pub fn append(buf: &mut Vec<u8>, bytes: &[u8]) -> Range<usize> {
    let start = buf.len();
    buf.extend_from_slice(bytes);
    start..buf.len()
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

impl Destination {
    /// Its index in the per-topic counters and topic names (output, dead letters, insights).
    pub fn index(self) -> usize {
        match self {
            Destination::Processed => 0,
            Destination::DeadLetter => 1,
            Destination::Insights => 2,
        }
    }
}

/// One output record inside an [`OutputBatch`].
#[derive(Debug)]
pub struct OutputRecord {
    /// Which topic.
    pub destination: Destination,
    /// The input record's timestamp (Unix ms), which the output keeps (as Kafka Streams does).
    pub timestamp_ms: Option<i64>,
    /// Key bytes (a range of the batch buffer).
    pub key: Option<Range<usize>>,
    /// Value bytes (a range of the batch buffer).
    pub value: Option<Range<usize>>,
    /// Headers.
    pub headers: Option<OwnedHeaders>,
}

/// One worker's outputs for one [`InputBatch`]: one output per input record.
#[derive(Debug)]
pub struct OutputBatch {
    /// The commit epoch of the input batch.
    pub epoch: Epoch,
    /// When the input batch's first record was polled.
    pub consumed_at: Instant,
    /// Keys and values, back to back.
    pub data: Vec<u8>,
    /// The outputs, one per input record.
    pub records: Vec<OutputRecord>,
}

impl OutputBatch {
    /// The bytes of a range of the buffer.
    pub fn bytes(&self, range: &Option<Range<usize>>) -> Option<&[u8]> {
        range.as_ref().map(|r| &self.data[r.clone()])
    }
}

/// A worker's insight deltas: what it counted in `epoch`, sent once it can no longer receive a
/// record of any epoch up to `finished_through`.
#[derive(Debug)]
pub struct WorkerDelta {
    /// Which worker (0-based).
    pub worker: usize,
    /// The epoch whose records these windows count.
    pub epoch: Epoch,
    /// The worker will receive no more records of this epoch or any earlier one.
    pub finished_through: Epoch,
    /// What each window gained in `epoch` (windows without news are left out).
    pub windows: Vec<WindowStats>,
    /// Input partitions of the records counted.
    pub partitions: Vec<i32>,
    /// Every window of this worker starting before this time is closed: it will count nothing
    /// more in them.
    pub closed_before: u64,
}

/// What workers send to the producer thread.
#[derive(Debug)]
pub enum ToProducer {
    /// Outputs and dead letters.
    Batch(OutputBatch),
    /// Insight deltas.
    Delta(WorkerDelta),
}

/// What the consumer tells the producer when it closes an epoch.
#[derive(Debug)]
pub struct EpochClosed {
    /// The epoch.
    pub epoch: Epoch,
    /// Input records handed out in it.
    pub records: u64,
    /// Each partition handed out in it: partition, generation, next offset to read (for the
    /// transaction's offsets, exactly-once).
    pub positions: Vec<(i32, Generation, i64)>,
}

/// Recycles batch buffers between the threads: a thread that is done with a batch gives its
/// (emptied) buffers back, the thread that builds the next batch takes them. A buffer of a
/// batch is 50–100 KB; freeing one in glibc consolidates the allocator's free lists, and a
/// buffer allocated on one thread and freed on another crosses arenas, which showed up as the
/// largest cost of the consumer and producer threads in `perf` (README, Benchmarks). Bounded:
/// a full pool drops the buffer.
#[derive(Debug)]
pub struct Pool<T> {
    tx: Sender<T>,
    rx: Receiver<T>,
}

impl<T> Pool<T> {
    /// A pool holding at most `capacity` buffers.
    pub fn new(capacity: usize) -> Self {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        Pool { tx, rx }
    }

    /// A recycled buffer, if one is waiting.
    pub fn take(&self) -> Option<T> {
        self.rx.try_recv().ok()
    }

    /// Gives a buffer back (dropped when the pool is full).
    pub fn give(&self, buffer: T) {
        let _ = self.tx.try_send(buffer);
    }
}

/// Buffers larger than this are not pooled: a batch of realistic events is 50–100 KB; one with
/// a record of a megabyte is rare, and its buffer is freed instead of kept.
pub const MAX_POOLED_BYTES: usize = 512 * 1024;

/// The buffers the stages pass around, recycled.
#[derive(Debug)]
pub struct BatchPools {
    /// Key and payload buffers of input batches.
    pub input_data: Pool<Vec<u8>>,
    /// Record lists of input batches.
    pub input_records: Pool<Vec<InputRecord>>,
    /// Key and value buffers of output batches.
    pub output_data: Pool<Vec<u8>>,
    /// Record lists of output batches.
    pub output_records: Pool<Vec<OutputRecord>>,
}

impl BatchPools {
    /// Pools for channels of up to `batches` batches each.
    pub fn new(batches: usize) -> Self {
        let capacity = 2 * batches + 16;
        BatchPools {
            input_data: Pool::new(capacity),
            input_records: Pool::new(capacity),
            output_data: Pool::new(capacity),
            output_records: Pool::new(capacity),
        }
    }

    /// Empties an input batch's buffers and gives them back (a buffer grown far beyond a
    /// batch's usual size by a big record is dropped, so the pools do not keep every buffer at
    /// the largest size they ever reached).
    pub fn recycle_input(&self, mut data: Vec<u8>, mut records: Vec<InputRecord>) {
        if data.capacity() > MAX_POOLED_BYTES {
            return;
        }
        data.clear();
        records.clear();
        self.input_data.give(data);
        self.input_records.give(records);
    }

    /// Empties an output batch's buffers and gives them back (oversized ones are dropped, as
    /// in [`BatchPools::recycle_input`]).
    pub fn recycle_output(&self, mut data: Vec<u8>, mut records: Vec<OutputRecord>) {
        if data.capacity() > MAX_POOLED_BYTES {
            return;
        }
        data.clear();
        records.clear();
        self.output_data.give(data);
        self.output_records.give(records);
    }
}

impl Default for BatchPools {
    fn default() -> Self {
        BatchPools::new(16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pools_drop_buffers_grown_by_a_big_record() {
        let pools = BatchPools::new(4);
        pools.recycle_input(Vec::with_capacity(MAX_POOLED_BYTES + 1), Vec::new());
        assert!(pools.input_data.take().is_none(), "dropped");
        pools.recycle_output(Vec::with_capacity(100_000), Vec::new());
        assert!(pools.output_data.take().is_some(), "kept");
    }

    #[test]
    fn a_batch_keeps_each_key_and_payload_apart() {
        let mut b = InputBatch::new();
        let s = |offset| Source {
            partition: 0,
            offset,
        };
        b.push(s(0), None, Some(b"k0"), Some(b"{}"), None);
        b.push(s(1), Some(5), None, None, None);
        b.push(s(2), None, Some(b""), Some(b"xyz"), None);
        assert_eq!(b.len(), 3);
        assert_eq!(b.bytes(&b.records[0].key), Some(&b"k0"[..]));
        assert_eq!(b.bytes(&b.records[0].payload), Some(&b"{}"[..]));
        assert_eq!(b.bytes(&b.records[1].key), None);
        assert_eq!(b.bytes(&b.records[1].payload), None);
        assert_eq!(b.bytes(&b.records[2].key), Some(&b""[..]));
        assert_eq!(b.bytes(&b.records[2].payload), Some(&b"xyz"[..]));
    }
}
