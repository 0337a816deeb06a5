//! Instruction counts of the worker stage, for comparisons that a busy machine cannot blur.
//!
//! Wall-clock benchmarks (`benches/transform.rs`) on a shared 2-core machine move by 10-25 %
//! between runs, which hides a cost of 10 %. Instructions executed do not move: this binary runs
//! each variant once over the same realistic events, and `scripts/bench-instructions.sh` runs it
//! under `valgrind --tool=callgrind`, collecting each variant's function separately, and prints
//! instructions per event and the ratios. Run alone (`cargo bench --bench instructions`) it just
//! times one pass of each, as a smoke test.
//!
//! Variants (each one `#[inline(never)]` function, the name callgrind collects):
//! - `transform_only`: parse + validate + normalize + serialize (the transform benchmark);
//! - `transform_and_aggregate`: the same plus counting each event in its insight window;
//! - `aggregate_only`: counting already-transformed events (the aggregation's own cost);
//! - `worker_steps`: `process_batch`, input batch to output batch, insights included.

use std::hint::black_box;
use std::time::Instant;

use kafka_pipeline::insights::window::{
    lag_ms, Observation, ObservationKind, WindowAggregator, WindowConfig,
};
use kafka_pipeline::testing::internals::InputBatch;
use kafka_pipeline::testing::internals::WorkerTally;
use kafka_pipeline::testing::internals::{process_batch, WorkerShared, WorkerWindows};
use kafka_pipeline::transform::{TransformOptions, Transformer};

mod common;
use common::{input_batches, realistic_payloads, Owned, WorkerFixture, NOW_MS};

#[inline(never)]
fn transform_only(transformer: &mut Transformer, payloads: &[Vec<u8>], out: &mut Vec<u8>) {
    for p in payloads {
        out.clear();
        if let Ok(event) = transformer.process(Some(p)) {
            event.write_json(out);
        }
        black_box(&*out);
    }
}

#[inline(never)]
fn transform_and_aggregate(
    transformer: &mut Transformer,
    payloads: &[Vec<u8>],
    out: &mut Vec<u8>,
) -> usize {
    let mut aggregator = WindowAggregator::new(WindowConfig::new(10, 10));
    for p in payloads {
        out.clear();
        if let Ok(event) = transformer.process(Some(p)) {
            event.write_json(out);
            aggregator.observe(&Observation {
                event_time: event.timestamp,
                lag_ms: lag_ms(NOW_MS, event.timestamp),
                kind: ObservationKind::valid(&event),
            });
        }
        black_box(&*out);
    }
    black_box(aggregator.advance(u64::MAX / 2)).len()
}

#[inline(never)]
fn aggregate_only(events: &[Owned]) -> usize {
    let mut aggregator = WindowAggregator::new(WindowConfig::new(10, 10));
    for e in events {
        aggregator.observe(&e.observation());
    }
    black_box(aggregator.advance(u64::MAX / 2)).len()
}

#[inline(never)]
fn worker_steps(
    transformer: &mut Transformer,
    windows: &mut WorkerWindows,
    inputs: Vec<InputBatch>,
    shared: &WorkerShared<'_>,
    tally: &mut WorkerTally,
) {
    for input in inputs {
        black_box(process_batch(
            transformer,
            windows,
            input,
            shared,
            NOW_MS,
            tally,
        ));
    }
}

fn main() {
    let payloads = realistic_payloads();
    let n = payloads.len();
    let mut transformer = Transformer::new(TransformOptions::default());
    let mut out = Vec::with_capacity(512);
    let events_owned = Owned::all(&mut transformer, &payloads);
    let fixture = WorkerFixture::default();
    let shared = fixture.shared();
    let mut windows = WorkerWindows::new(0, shared.windows);
    let mut tally = WorkerTally::default();

    // One pass warms the transformer's buffers, the allocator and the caches, as in a
    // long-running worker; then the variants named on the command line (all by default) run
    // once each inside `measured`, the function the instruction count collects.
    transform_only(&mut transformer, &payloads, &mut out);
    let named: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    for variant in VARIANTS {
        if !named.is_empty() && !named.iter().any(|n| n == variant) {
            continue;
        }
        let events = if variant == "aggregate_only" {
            events_owned.len()
        } else {
            n
        };
        // Input records are built outside: the consumer thread makes them.
        let records = if variant == "worker_steps" {
            input_batches(&payloads)
        } else {
            Vec::new()
        };
        let start = Instant::now();
        measured(
            variant,
            &mut transformer,
            &payloads,
            &mut out,
            &events_owned,
            records,
            &mut windows,
            &shared,
            &mut tally,
        );
        let ns = start.elapsed().as_nanos() as f64 / events as f64;
        println!("{variant}: {events} events, {ns:.0} ns/event");
    }
}

/// The variants, in the order they run.
const VARIANTS: [&str; 4] = [
    "transform_only",
    "transform_and_aggregate",
    "aggregate_only",
    "worker_steps",
];

/// Runs one variant; everything the instruction count sees happens in here.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn measured(
    variant: &str,
    transformer: &mut Transformer,
    payloads: &[Vec<u8>],
    out: &mut Vec<u8>,
    events: &[Owned],
    records: Vec<InputBatch>,
    windows: &mut WorkerWindows,
    shared: &WorkerShared<'_>,
    tally: &mut WorkerTally,
) {
    match variant {
        "transform_only" => transform_only(transformer, payloads, out),
        "transform_and_aggregate" => {
            transform_and_aggregate(transformer, payloads, out);
        }
        "aggregate_only" => {
            aggregate_only(events);
        }
        "worker_steps" => worker_steps(transformer, windows, records, shared, tally),
        _ => unreachable!("a variant from VARIANTS"),
    }
}
