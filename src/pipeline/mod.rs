//! The `run` command: the three stages and the channels between them.
//!
//! [`run`] wires the threads: one consumer thread ([`consumer`], with its rebalance callbacks in
//! [`rebalance`]), `--workers` worker threads ([`worker`]) and one producer thread
//! ([`producer`], with its delivery reports and retries in [`delivery`] and, exactly-once,
//! its transactions in [`transactions`]). What they hand each other is in [`messages`]; the pure state machines they
//! drive are [`offsets`] (which input offsets may be committed), [`merger`] (the workers'
//! insight deltas merged per window and epoch) and [`watermark`] (event time per partition, and
//! when a window closes; the consumer's pausing for it is [`alignment`]). The state machines do
//! no I/O and are tested without a broker.

pub(crate) mod alignment;
pub(crate) mod consumer;
pub(crate) mod delivery;
pub(crate) mod merger;
pub(crate) mod messages;
pub(crate) mod offsets;
pub(crate) mod producer;
pub(crate) mod rebalance;
pub(crate) mod transactions;
pub(crate) mod watermark;
pub(crate) mod worker;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use self::consumer::ConsumerStage;
use self::messages::BatchPools;
use self::producer::ProducerStage;
use self::watermark::EventClock;
use self::worker::{WorkerShared, WorkerWindows};
use crate::config::Config;
use crate::error::PipelineError;
use crate::shutdown::Shutdown;
use crate::telemetry::http::{MetricsServer, View};
use crate::telemetry::metrics::Metrics;
use crate::transform::Transformer;

/// Runs the pipeline until `shutdown` is requested (or, with `--exit-at-end`, the input is
/// drained), then drains, flushes and commits within the shutdown timeout. With
/// `--metrics-addr`, the HTTP endpoints answer from before the broker is contacted until the
/// pipeline has stopped.
pub fn run(config: Config, shutdown: &Shutdown) -> Result<(), PipelineError> {
    let metrics = Arc::new(Metrics::new(config.workers, stall_timeout(&config)));
    let server = match config.metrics_addr.map(MetricsServer::bind) {
        Some(Err(e)) if !config.metrics_addr_explicit => {
            log::warn!("{e}; running without the metrics endpoints (pass --metrics-addr to pick another address)");
            None
        }
        other => other.transpose()?,
    };
    let stop = AtomicBool::new(false);
    let view = View {
        metrics: &metrics,
        shutdown,
        topics: [
            &config.output_topic,
            &config.dlq_topic,
            &config.insights_topic,
        ],
        input_topic: &config.input_topic,
    };
    thread::scope(|scope| {
        if let Some(server) = &server {
            thread::Builder::new()
                .name("metrics".into())
                .spawn_scoped(scope, || server.serve(&view, &stop))
                .map_err(|e| {
                    PipelineError::System(format!("cannot spawn the metrics thread: {e}"))
                })?;
            if let Some(addr) = server.local_addr() {
                log::info!("serving http://{addr}/metrics, /health and /ready");
            }
        }
        let result = run_stages(&config, shutdown, &metrics);
        stop.store(true, Ordering::Relaxed);
        result
    })
}

/// How long `/ready` tolerates lag without a commit: a commit follows every commit interval
/// while records flow, so thirty intervals, and at least a minute (a broker restart or a slow
/// rebalance should not restart the pod).
pub fn stall_timeout(config: &Config) -> Duration {
    (config.commit_interval * 30).max(Duration::from_secs(60))
}

fn run_stages(
    config: &Config,
    shutdown: &Shutdown,
    metrics: &Arc<Metrics>,
) -> Result<(), PipelineError> {
    let batches = ConsumerStage::channel_batches(config.channel_capacity);
    let (work_tx, work_rx) = crossbeam_channel::bounded(batches);
    // Room for the deltas too: a worker sends at most one per batch.
    let (out_tx, out_rx) = crossbeam_channel::bounded(batches + 2 * config.workers);
    // Unbounded on purpose: one message per epoch each way, and neither the producer nor the
    // consumer thread may block on them.
    let (done_tx, done_rx) = crossbeam_channel::unbounded();
    let (control_tx, control_rx) = crossbeam_channel::unbounded();

    let epoch = Arc::new(AtomicU64::new(0));
    let skew = watermark::alignment_skew(&config.windows);
    let clock = Arc::new(EventClock::new(config.idle_timeout, Some(skew)));
    let pools = BatchPools::new(batches);
    let consumer = ConsumerStage::new(
        config,
        done_rx,
        control_tx,
        Arc::clone(&epoch),
        Arc::clone(&clock),
        &pools,
        Arc::clone(metrics),
        shutdown,
    )?;
    let producer = ProducerStage::new(
        config,
        control_rx,
        done_tx,
        &pools,
        Arc::clone(metrics),
        shutdown,
    )?;
    let shared = WorkerShared {
        input_topic: &config.input_topic,
        metrics,
        clock: &clock,
        epoch: &epoch,
        windows: config.windows,
        input_headers: config.input_headers.clone(),
        passthrough: config.passthrough,
        pools: &pools,
    };
    log_start(config);

    let grace = config.shutdown_timeout;
    thread::scope(|scope| {
        let mut handles = Vec::new();
        for i in 0..config.workers {
            let (rx, tx, shared) = (work_rx.clone(), out_tx.clone(), &shared);
            let transformer = Transformer::new(config.transform.clone());
            let windows = WorkerWindows::new(i, config.windows);
            handles.push((
                "worker",
                spawn(scope, format!("worker-{i}"), move || {
                    worker::run(rx, tx, transformer, windows, shared);
                    Ok(())
                })?,
            ));
        }
        drop((work_rx, out_tx));
        handles.push((
            "producer",
            spawn(scope, "producer".into(), move || {
                let result = producer.run(out_rx);
                if result.is_err() {
                    shutdown.request(grace);
                }
                result
            })?,
        ));
        handles.push((
            "consumer",
            spawn(scope, "consumer".into(), move || consumer.run(work_tx))?,
        ));

        let result = join_all(handles, shutdown, grace);
        if let Some(summary) = metrics.summary() {
            log::info!("{summary}");
        }
        result
    })
}

/// Spawns one stage's thread in `scope`. On failure the caller's `?` returns from the scope,
/// dropping the channel ends it holds (and the closure's), so the threads already running
/// drain and end before it returns.
fn spawn<'scope, 'env, F>(
    scope: &'scope thread::Scope<'scope, 'env>,
    name: String,
    f: F,
) -> Result<StageHandle<'scope>, PipelineError>
where
    F: FnOnce() -> Result<(), PipelineError> + Send + 'scope,
{
    thread::Builder::new()
        .name(name.clone())
        .spawn_scoped(scope, f)
        .map_err(|e| PipelineError::System(format!("cannot spawn thread {name}: {e}")))
}

type StageHandle<'scope> = thread::ScopedJoinHandle<'scope, Result<(), PipelineError>>;

/// Joins every stage; the first error (or panic) requests the shutdown of the others and is
/// the result.
fn join_all(
    handles: Vec<(&'static str, StageHandle<'_>)>,
    shutdown: &Shutdown,
    grace: Duration,
) -> Result<(), PipelineError> {
    let mut first_error = None;
    for (name, handle) in handles {
        let result = handle
            .join()
            .unwrap_or(Err(PipelineError::ThreadPanicked(name)));
        if let Err(e) = result {
            shutdown.request(grace);
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn log_start(config: &Config) {
    log::info!(
        "kafka-pipeline {}: {} -> {} / {} with {} workers, group {}, {} (epochs of {:?})",
        env!("CARGO_PKG_VERSION"),
        config.input_topic,
        config.output_topic,
        config.dlq_topic,
        config.workers,
        config.group_id,
        config.guarantee.as_str(),
        config.commit_interval
    );
}
