//! Inputs shared by the benchmarks: the same realistic events, as payloads, as transformed
//! fields, and as input records.

use std::sync::atomic::AtomicU64;

use kafka_pipeline::insights::window::{lag_ms, Observation, ObservationKind, WindowConfig};
use kafka_pipeline::loadgen::{GenOptions, Generator, Profile};
use kafka_pipeline::testing::internals::EventClock;
use kafka_pipeline::testing::internals::Metrics;
use kafka_pipeline::testing::internals::WorkerShared;
use kafka_pipeline::testing::internals::BATCH_RECORDS;
use kafka_pipeline::testing::internals::{BatchPools, InputBatch, Source};
use kafka_pipeline::transform::headers::InputHeaders;
use kafka_pipeline::transform::{IpClass, Transformer};

/// Events per pass.
pub const EVENTS: usize = 10_000;
/// Processing time for lags: 5 s after the generator's first event time.
pub const NOW_MS: u64 = 1_720_589_697_000 + 5_000;

/// `EVENTS` records of `loadgen --profile realistic --seed 1`, their values.
pub fn realistic_payloads() -> Vec<Vec<u8>> {
    Generator::new(Profile::Realistic, 1, GenOptions::default())
        .take(EVENTS)
        .filter_map(|r| r.value)
        .collect()
}

/// A transformed event's fields, owned, so aggregation can be measured without the transform.
pub struct Owned {
    user: String,
    device: String,
    device_type: String,
    version: String,
    locale: String,
    ip_class: IpClass,
    timestamp: u64,
}

impl Owned {
    /// The valid events among `payloads`, transformed.
    pub fn all(transformer: &mut Transformer, payloads: &[Vec<u8>]) -> Vec<Owned> {
        payloads
            .iter()
            .filter_map(|p| {
                transformer.process(Some(p)).ok().map(|e| Owned {
                    user: e.user_id.to_string(),
                    device: e.device_id.to_string(),
                    device_type: e.device_type.to_string(),
                    version: e.app_version.to_string(),
                    locale: e.locale.as_str().to_owned(),
                    ip_class: e.ip_class,
                    timestamp: e.timestamp,
                })
            })
            .collect()
    }

    /// What a worker passes to the aggregator for this event.
    pub fn observation(&self) -> Observation<'_> {
        Observation {
            event_time: self.timestamp,
            lag_ms: lag_ms(NOW_MS, self.timestamp),
            kind: ObservationKind::Valid {
                user_id: &self.user,
                device_id: &self.device,
                device_type: &self.device_type,
                app_version: &self.version,
                locale: &self.locale,
                ip_class: self.ip_class,
                device_type_filled: false,
            },
        }
    }
}

/// The payloads as input batches of partition 0 (of the consumer's batch size), as the
/// consumer thread makes them.
pub fn input_batches(payloads: &[Vec<u8>]) -> Vec<InputBatch> {
    payloads
        .chunks(BATCH_RECORDS)
        .enumerate()
        .map(|(c, chunk)| {
            let mut batch = InputBatch::new();
            batch.epoch = 1;
            for (i, p) in chunk.iter().enumerate() {
                batch.push(
                    Source {
                        partition: 0,
                        offset: (c * BATCH_RECORDS + i) as i64,
                    },
                    Some(1_720_589_697_000),
                    Some(b"0b5c1c5e-6d0e-4b8a-9d7c-1d2e3f4a5b6c"),
                    Some(p),
                    None,
                );
            }
            batch
        })
        .collect()
}

/// What a worker shares with the pipeline, for one benchmark's worker.
#[derive(Default)]
pub struct WorkerFixture {
    metrics: Metrics,
    clock: EventClock,
    epoch: AtomicU64,
    pools: BatchPools,
}

impl WorkerFixture {
    /// The worker's view: input topic `user-login`, 10 s windows with 10 s of lateness.
    pub fn shared(&self) -> WorkerShared<'_> {
        WorkerShared {
            input_topic: "user-login",
            metrics: &self.metrics,
            clock: &self.clock,
            epoch: &self.epoch,
            windows: WindowConfig::new(10, 10),
            input_headers: InputHeaders::All,
            passthrough: false,
            pools: &self.pools,
        }
    }
}
