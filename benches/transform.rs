//! Worker-stage benchmarks on realistic events (`loadgen --profile realistic`, seed 1):
//! parse + validate + transform + serialize per event, with simd-json (the pipeline's parser,
//! buffers reused) and with serde_json into the same borrowed fields, so the parser choice rests
//! on numbers for our event size; the cost of counting events in insight windows; the whole
//! worker step (output record with key and headers, insights); and the offset tracker.
//! Reported in elements (events) per second.
//!
//! `cargo bench --bench transform` measures; `cargo test --benches` (CI) runs each once.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use kafka_pipeline::insights::window::{
    lag_ms, Observation, ObservationKind, WindowAggregator, WindowConfig,
};
use kafka_pipeline::testing::internals::OffsetTracker;
use kafka_pipeline::testing::internals::WorkerTally;
use kafka_pipeline::testing::internals::{process_batch, WorkerWindows};
use kafka_pipeline::transform::{process_with_serde_json, TransformOptions, Transformer};

mod common;
use common::{input_batches, realistic_payloads, Owned, WorkerFixture, NOW_MS};

/// One pass of the transform alone over `payloads`, as a worker does it.
fn transform_pass(transformer: &mut Transformer, payloads: &[Vec<u8>], out: &mut Vec<u8>) {
    for p in payloads {
        out.clear();
        if let Ok(event) = transformer.process(Some(p)) {
            event.write_json(out);
        }
        black_box(&*out);
    }
}

fn parsers(c: &mut Criterion) {
    let payloads = realistic_payloads();
    let mean = payloads.iter().map(Vec::len).sum::<usize>() / payloads.len();
    let mut group = c.benchmark_group(format!("transform/{mean}-byte realistic events"));
    group.throughput(Throughput::Elements(payloads.len() as u64));

    let mut transformer = Transformer::new(TransformOptions::default());
    let mut out = Vec::with_capacity(512);
    group.bench_function("simd-json, buffers reused", |b| {
        b.iter(|| transform_pass(&mut transformer, &payloads, &mut out))
    });

    // The same, plus counting each event in its insight window (what a worker adds for the
    // insights): the difference is the cost of aggregation. A fresh aggregator per pass, so
    // every pass fills and closes real windows (10,000 events span 10 s of event time).
    group.bench_function("simd-json, buffers reused, + insight aggregation", |b| {
        b.iter(|| {
            let mut aggregator = WindowAggregator::new(WindowConfig::new(10, 10));
            for p in &payloads {
                out.clear();
                if let Ok(event) = transformer.process(Some(p)) {
                    event.write_json(&mut out);
                    aggregator.observe(&Observation {
                        event_time: event.timestamp,
                        lag_ms: lag_ms(NOW_MS, event.timestamp),
                        kind: ObservationKind::valid(&event),
                    });
                }
                black_box(&out);
            }
            black_box(aggregator.advance(u64::MAX / 2))
        })
    });

    // The first function of a run measures faster than the same code later in the run (8 % on
    // this machine), so the transform is measured again after the aggregation variant: compare
    // the aggregation against this repeat as well as against the first.
    group.bench_function("simd-json, buffers reused (repeat)", |b| {
        b.iter(|| transform_pass(&mut transformer, &payloads, &mut out))
    });

    let options = TransformOptions::default();
    group.bench_function("serde_json, borrowed fields", |b| {
        b.iter(|| {
            for p in &payloads {
                out.clear();
                if let Ok(event) = process_with_serde_json(Some(p), &options) {
                    event.write_json(&mut out);
                }
                black_box(&out);
            }
        })
    });
    group.finish();
}

/// Aggregation alone, on events already transformed: its cost per event, to set against the
/// transform's.
fn aggregation(c: &mut Criterion) {
    let payloads = realistic_payloads();
    let mut transformer = Transformer::new(TransformOptions::default());
    let events = Owned::all(&mut transformer, &payloads);
    let mut group = c.benchmark_group("insights");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("observe (fresh windows every 10,000 events)", |b| {
        b.iter(|| {
            let mut aggregator = WindowAggregator::new(WindowConfig::new(10, 10));
            for e in &events {
                aggregator.observe(&e.observation());
            }
            black_box(aggregator.advance(u64::MAX / 2))
        })
    });
    group.finish();
}

fn worker_step(c: &mut Criterion) {
    let payloads = realistic_payloads();
    let mut group = c.benchmark_group("worker");
    group.throughput(Throughput::Elements(payloads.len() as u64));
    let mut transformer = Transformer::new(TransformOptions::default());
    let mut tally = WorkerTally::default();
    let fixture = WorkerFixture::default();
    let shared = fixture.shared();
    let mut windows = WorkerWindows::new(0, shared.windows);
    group.bench_function("input batch to output batch (with insights)", |b| {
        b.iter_batched(
            || input_batches(&payloads),
            |inputs| {
                for input in inputs {
                    black_box(process_batch(
                        &mut transformer,
                        &mut windows,
                        input,
                        &shared,
                        NOW_MS,
                        &mut tally,
                    ));
                }
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn offset_tracker(c: &mut Criterion) {
    let n = 100_000i64;
    let mut group = c.benchmark_group("offsets");
    group.throughput(Throughput::Elements(n as u64));
    // Batches of 256 records over 6 partitions, an epoch closed every 4,096 records and the
    // epochs completing two at a time in reverse, like a producer thread racing.
    group.bench_function("hand out batches + complete epochs", |b| {
        b.iter(|| {
            let mut t = OffsetTracker::new();
            let generations: Vec<_> = (0..6).map(|p| t.assign(p)).collect();
            let mut next = [0i64; 6];
            let mut closed = Vec::new();
            for batch in 0..(n / 256) {
                let p = (batch % 6) as usize;
                next[p] += 256;
                t.hand_out(p as i32, generations[p], next[p] - 1, 256)
                    .unwrap();
                if batch % 16 == 15 {
                    closed.push(t.close_epoch().epoch);
                    if closed.len() == 2 {
                        t.complete(closed[1]);
                        t.complete(closed[0]);
                        closed.clear();
                    }
                }
            }
            black_box(t.committable(0))
        })
    });
    group.finish();
}

criterion_group!(benches, parsers, aggregation, worker_step, offset_tracker);
criterion_main!(benches);
