//! The benchmark ceiling (`scripts/bench.sh`): the least a Rust program with the same librdkafka
//! can do to move a topic. One thread polls a `BaseConsumer` and sends each record's key, value
//! and headers with a `BaseProducer`, with the pipeline's client settings (`clients.rs`, the
//! same flags as `run`); no worker threads, no channels, no parsing, no offset tracking, no
//! commits. It stops when every assigned partition has reached its end and everything is
//! delivered, and prints a `summary:` line in the pipeline's format, so the bench reads both
//! the same way.
//!
//! ```text
//! cargo run --release --example copy -- --input-topic IN --output-topic OUT --group-id G [run flags…]
//! ```

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use kafka_pipeline::cli::{parse_cli, Command};
use kafka_pipeline::config::Config;
use kafka_pipeline::kafka::admin::DEFAULT_MAX_MESSAGE_BYTES;
use kafka_pipeline::kafka::client::{consumer_config, producer_config};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

/// Counts delivered and failed messages.
#[derive(Default)]
struct Counting {
    delivered: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.delivered.fetch_add(1, Relaxed),
            Err(_) => self.failed.fetch_add(1, Relaxed),
        };
    }
}

fn main() -> anyhow::Result<()> {
    let args = std::iter::once("kafka-pipeline".into())
        .chain(std::iter::once("run".into()))
        .chain(std::env::args_os().skip(1))
        .chain(["--exit-at-end".into(), "--metrics-addr".into(), "".into()]);
    let cli = parse_cli(args).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let Command::Run(run) = cli.command else {
        bail!("expected the flags of `run`");
    };
    let config = Config::from_args(run).map_err(|e| anyhow::anyhow!("{e}"))?;
    let consumer: BaseConsumer = consumer_config(&config).create().context("consumer")?;
    let producer: BaseProducer<Counting> = producer_config(
        &config,
        (DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_MESSAGE_BYTES),
    )
    .create_with_context(Counting::default())
    .context("producer")?;
    consumer.subscribe(&[&config.input_topic])?;

    let mut at_end = BTreeSet::new();
    let mut first = None;
    let mut copied = 0u64;
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                first.get_or_insert_with(Instant::now);
                at_end.remove(&m.partition());
                let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&config.output_topic);
                if let Some(key) = m.key() {
                    record = record.key(key);
                }
                if let Some(value) = m.payload() {
                    record = record.payload(value);
                }
                if let Some(headers) = m.headers() {
                    record = record.headers(headers.detach());
                }
                loop {
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                            record = back;
                            producer.poll(Duration::from_millis(1));
                        }
                        Err((e, _)) => bail!("send: {e}"),
                    }
                }
                copied += 1;
                producer.poll(Duration::ZERO);
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
                let assignment = consumer.assignment()?;
                let assigned: BTreeSet<i32> = assignment
                    .elements()
                    .iter()
                    .map(|e| e.partition())
                    .collect();
                if !assigned.is_empty() && assigned.is_subset(&at_end) && first.is_some() {
                    break;
                }
            }
            Some(Err(e)) => eprintln!("copy: poll: {e}"),
            None => {}
        }
    }
    producer.flush(Duration::from_secs(120))?;
    let secs = first.map_or(0.0, |t| t.elapsed().as_secs_f64());
    let ctx = producer.context();
    let (delivered, failed) = (ctx.delivered.load(Relaxed), ctx.failed.load(Relaxed));
    if delivered != copied || failed > 0 {
        bail!("copied {copied}, delivered {delivered}, failed {failed}");
    }
    println!(
        "summary: {copied} records in {secs:.3} s (first consume to last delivery): {:.0} records/s; valid {copied}, dead letters 0",
        copied as f64 / secs.max(1e-9)
    );
    Ok(())
}
