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
//!
//! # Supervision and runs
//!
//! Every stage's thread reports its end to [`run_stages`]'s supervisor, whatever ends it: a
//! return, an error, or a panic (a drop guard reports it while the thread unwinds). The first
//! stage that ends while the pipeline runs is logged by name, turns `/health` to 503, and
//! stops the others within two commit intervals (what is complete is committed; the rest is
//! read again after the restart); the exit code is its error's, 4 for a panic. Exactly-once,
//! a transaction aborted on an abortable error ends only the current *run* of the stages:
//! the consumer rewinds to the committed positions, and new workers and a new producer start
//! around it (see [`transactions`]).

pub(crate) mod alignment;
pub(crate) mod consumer;
pub(crate) mod delivery;
pub(crate) mod merger;
pub(crate) mod messages;
pub(crate) mod offsets;
pub(crate) mod producer;
pub(crate) mod rebalance;
pub(crate) mod reroute;
pub(crate) mod transactions;
pub(crate) mod watermark;
pub(crate) mod worker;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use self::consumer::ConsumerStage;
use self::messages::BatchPools;
use self::messages::{Epoch, EpochClosed};
use self::producer::{ProducerLinks, ProducerStage};
use self::rebalance::Links;
use self::watermark::EventClock;
use self::worker::{WorkerShared, WorkerWindows};
use crate::config::Config;
use crate::error::PipelineError;
use crate::shutdown::Shutdown;
use crate::telemetry::http::{MetricsServer, View};
use crate::telemetry::metrics::Metrics;
use crate::transform::Transformer;
use crossbeam_channel::{Receiver, Sender};

/// Runs the pipeline until `shutdown` is requested (or, with `--exit-at-end`, the input is
/// drained), then drains, flushes and commits within the shutdown timeout. With
/// `--metrics-addr`, the HTTP endpoints answer from before the broker is contacted until the
/// pipeline has stopped.
pub fn run(config: Config, shutdown: &Shutdown) -> Result<(), PipelineError> {
    crate::kafka::client::check_guarantee_properties(&config).map_err(PipelineError::Config)?;
    let metrics = Arc::new(Metrics::new(config.workers, stall_timeout(&config)));
    let server = match config.metrics_addr {
        Some(addr) if !config.metrics_addr_explicit => Some(bind_default(addr)?),
        Some(addr) => Some(MetricsServer::bind(addr)?),
        None => None,
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

/// Ports after the default metrics port that an instance takes when the default is taken.
const DEFAULT_PORTS: u16 = 16;

/// Binds the default metrics address, or, when another instance on the host has it, the next
/// free port of the [`DEFAULT_PORTS`] after it (logged, so a scrape config can list the range):
/// several instances on one host each serve `/health`, `/ready` and `/metrics`. When every one
/// is taken, the instance refuses to start rather than run unseen.
fn bind_default(addr: SocketAddr) -> Result<MetricsServer, PipelineError> {
    let mut first_error = None;
    for port in addr.port()..addr.port().saturating_add(DEFAULT_PORTS) {
        match MetricsServer::bind(SocketAddr::new(addr.ip(), port)) {
            Ok(server) => {
                if port != addr.port() {
                    log::warn!(
                        "the default metrics address {addr} is taken (another instance?); \
                         serving on port {port} instead"
                    );
                }
                return Ok(server);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(PipelineError::Config(format!(
        "no metrics port free in {}-{} ({}); pass --metrics-addr HOST:PORT, or an empty \
         --metrics-addr to run without the endpoints",
        addr.port(),
        addr.port().saturating_add(DEFAULT_PORTS - 1),
        first_error.map_or_else(String::new, |e| e.to_string())
    )))
}

/// How long `/ready` tolerates records waiting (lag) with no epoch completing: three commit
/// intervals. An epoch completes about one interval after it closes while records flow, so
/// this is a stall, not a slow pipeline (a broker outage of more than a few seconds is one
/// too: the pipeline is then not ready).
pub fn stall_timeout(config: &Config) -> Duration {
    config.commit_interval * 3
}

fn run_stages(
    config: &Config,
    shutdown: &Shutdown,
    metrics: &Arc<Metrics>,
) -> Result<(), PipelineError> {
    let batches = ConsumerStage::channel_batches(config.channel_capacity);
    let epoch = Arc::new(AtomicU64::new(0));
    let skew = watermark::alignment_skew(&config.windows);
    let clock = Arc::new(EventClock::new(config.idle_timeout, Some(skew)));
    let pools = BatchPools::new(batches);
    let rewinding = Arc::new(AtomicBool::new(false));
    let (mut links, mut producer_ends) = epoch_channels();
    let mut consumer = ConsumerStage::new(
        config,
        links,
        Arc::clone(&rewinding),
        Arc::clone(&epoch),
        Arc::clone(&clock),
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
    // Rewinds in a row with no transaction committed between them (the same fault each time).
    let mut fruitless = 0u32;
    let result = loop {
        let commits = metrics.commits.load(Ordering::Relaxed);
        let (control_rx, done_tx) = producer_ends;
        let producer = ProducerStage::new(
            config,
            ProducerLinks {
                control_rx,
                done_tx,
                first_epoch: epoch.load(Ordering::Acquire),
                group: consumer.group(),
                rewinding: Arc::clone(&rewinding),
            },
            &pools,
            Arc::clone(metrics),
            shutdown,
        )?;
        let result = run_once(
            config,
            shutdown,
            metrics,
            &rewinding,
            &mut consumer,
            producer,
            &shared,
        );
        if !rewinding.load(Ordering::Relaxed) || shutdown.is_requested() {
            break result;
        }
        fruitless = if metrics.commits.load(Ordering::Relaxed) == commits {
            fruitless + 1
        } else {
            0
        };
        metrics.rewinds.fetch_add(1, Ordering::Relaxed);
        if fruitless > 0 {
            // The same fault again (an output still unwritable): back off, as at-least-once
            // does, instead of exiting into a crash loop; /ready reports the stall.
            let wait = REWIND_BACKOFF
                .saturating_mul(1 << fruitless.min(5))
                .min(MAX_REWIND_BACKOFF);
            log::warn!(
                "{fruitless} rewinds in a row with nothing committed; reading again in {wait:?}"
            );
            sleep_unless_shutdown(shutdown, wait);
        }
        consumer.rewind()?;
        (links, producer_ends) = epoch_channels();
        consumer.relink(links);
    };
    if let Some(summary) = metrics.summary() {
        log::info!("{summary}");
    }
    drop(consumer);
    result
}

/// The first wait before a rewind that follows a fruitless one; it doubles up to
/// [`MAX_REWIND_BACKOFF`].
const REWIND_BACKOFF: Duration = Duration::from_millis(500);
const MAX_REWIND_BACKOFF: Duration = Duration::from_secs(15);

fn sleep_unless_shutdown(shutdown: &Shutdown, wait: Duration) {
    let until = std::time::Instant::now() + wait;
    while !shutdown.is_requested() && std::time::Instant::now() < until {
        thread::sleep(Duration::from_millis(50));
    }
}

/// The epoch channels of one run of the stages: the consumer's ends, and the producer's
/// (closed epochs in, complete epochs out). Unbounded on purpose: one message per epoch each
/// way, and neither the producer nor the consumer thread may block on them.
fn epoch_channels() -> (Links, (Receiver<EpochClosed>, Sender<Epoch>)) {
    let (done_tx, done_rx) = crossbeam_channel::unbounded();
    let (control_tx, control_rx) = crossbeam_channel::unbounded();
    (
        Links {
            done_rx,
            control_tx,
        },
        (control_rx, done_tx),
    )
}

/// One run of the stages: the workers and the producer (new each run) around the consumer
/// (kept across runs, so a rewind does not leave the group), supervised until every stage has
/// ended.
#[allow(clippy::too_many_arguments)]
fn run_once<'a>(
    config: &Config,
    shutdown: &'a Shutdown,
    metrics: &Metrics,
    rewinding: &AtomicBool,
    consumer: &mut ConsumerStage<'a>,
    producer: ProducerStage<'a>,
    shared: &WorkerShared<'_>,
) -> Result<(), PipelineError> {
    let batches = ConsumerStage::channel_batches(config.channel_capacity);
    let (work_tx, work_rx) = crossbeam_channel::bounded(batches);
    // Room for the deltas too: a worker sends at most one per batch.
    let (out_tx, out_rx) = crossbeam_channel::bounded(batches + 2 * config.workers);
    let grace = config.shutdown_timeout;
    // A stage that dies leaves epochs that can never complete, so the drain runs to its
    // deadline: the others get one commit interval to commit what is complete (not the whole
    // shutdown timeout), and with the close the process is gone within two
    // (scripts/chaos.sh panic measures it).
    let fault_grace = grace.min(config.commit_interval);
    let (ended_tx, ended_rx) = crossbeam_channel::unbounded();
    let supervisor = Supervisor {
        ended: ended_tx,
        shutdown,
        rewinding,
    };
    thread::scope(|scope| {
        let mut handles = Vec::new();
        for i in 0..config.workers {
            let (rx, tx) = (work_rx.clone(), out_tx.clone());
            let transformer = Transformer::new(config.transform.clone());
            let windows = WorkerWindows::new(i, config.windows);
            let name = format!("worker-{i}");
            let handle = supervisor.spawn(scope, name.clone(), move || {
                worker::run(rx, tx, transformer, windows, shared);
                Ok(())
            })?;
            handles.push((name, handle));
        }
        drop((work_rx, out_tx));
        let producer = supervisor.spawn(scope, "producer".into(), move || producer.run(out_rx))?;
        handles.push(("producer".into(), producer));
        let consumer = supervisor.spawn(scope, "consumer".into(), move || consumer.run(work_tx))?;
        handles.push(("consumer".into(), consumer));
        let failure = supervise(&ended_rx, handles.len(), metrics, shutdown, fault_grace);
        join_all(handles, failure)
    })
}

/// Where every stage's end is reported, whatever ends it: a return, an error or a panic (a
/// drop guard in the thread reports it while unwinding).
struct Supervisor<'a> {
    ended: Sender<StageEnd>,
    shutdown: &'a Shutdown,
    /// Set when the stages stop for a rewind: their ends are then expected.
    rewinding: &'a AtomicBool,
}

/// How a stage ended.
struct StageEnd {
    stage: String,
    /// `None`: returned `Ok` after the shutdown began (the normal end).
    failure: Option<String>,
}

/// Reports its stage's end when dropped: at the return, or while a panic unwinds the thread.
struct EndGuard<'a> {
    stage: String,
    /// How the stage returned (a stop for a rewind counts as `Ok`); `None` while it runs.
    outcome: Option<Result<(), String>>,
    supervisor: &'a Supervisor<'a>,
}

impl Drop for EndGuard<'_> {
    fn drop(&mut self) {
        let rewinding = self.supervisor.rewinding.load(Ordering::Relaxed);
        let failure = match self.outcome.take() {
            None => Some("panicked".to_string()),
            Some(Err(e)) => Some(format!("failed: {e}")),
            Some(Ok(())) if self.supervisor.shutdown.is_requested() || rewinding => None,
            Some(Ok(())) => Some("returned while the pipeline was running".to_string()),
        };
        let _ = self.supervisor.ended.send(StageEnd {
            stage: std::mem::take(&mut self.stage),
            failure,
        });
    }
}

impl<'a> Supervisor<'a> {
    /// Spawns one stage's thread in `scope`, named `name`, its end reported by an
    /// [`EndGuard`]. On failure the caller's `?` returns from the scope, dropping the channel
    /// ends it holds (and the closure's), so the threads already running drain and end before
    /// it returns.
    fn spawn<'scope, 'env, F>(
        &'scope self,
        scope: &'scope thread::Scope<'scope, 'env>,
        name: String,
        f: F,
    ) -> Result<StageHandle<'scope>, PipelineError>
    where
        F: FnOnce() -> Result<(), PipelineError> + Send + 'scope,
        'a: 'scope,
    {
        let stage = name.clone();
        thread::Builder::new()
            .name(name.clone())
            .spawn_scoped(scope, move || {
                let mut guard = EndGuard {
                    stage,
                    outcome: None,
                    supervisor: self,
                };
                let result = f();
                // An abortable error has set `rewinding`: the stage stopped for a rewind.
                guard.outcome = Some(match &result {
                    Ok(()) | Err(PipelineError::Abortable(_)) => Ok(()),
                    Err(e) => Err(e.to_string()),
                });
                result
            })
            .map_err(|e| PipelineError::System(format!("cannot spawn thread {name}: {e}")))
    }
}

type StageHandle<'scope> = thread::ScopedJoinHandle<'scope, Result<(), PipelineError>>;

/// Waits for the `stages` ends. The first stage that fails (panics, errs, or returns before
/// the shutdown) starts an orderly shutdown at once with `fault_grace`, marks `/health`, and is
/// the result. A stage that returns early because its neighbour died (a worker whose output
/// channel closed when the producer panicked) usually reports first, so an early return is
/// held for [`CAUSE_WAIT`] in case the cause follows.
fn supervise(
    ended: &Receiver<StageEnd>,
    stages: usize,
    metrics: &Metrics,
    shutdown: &Shutdown,
    fault_grace: Duration,
) -> Option<PipelineError> {
    let mut first: Option<PipelineError> = None;
    let mut early: Option<StageEnd> = None;
    let mut left = stages;
    loop {
        let next = if left == 0 {
            None
        } else if first.is_none() && early.is_some() {
            // None: no cause followed in time.
            ended.recv_timeout(CAUSE_WAIT).ok()
        } else {
            ended.recv().ok()
        };
        let cause = match next {
            // Every stage has ended (or no cause followed): a held early return is the failure.
            None => match early.take() {
                Some(held) if first.is_none() => held,
                _ => break,
            },
            Some(end) => {
                left -= 1;
                let Some(how) = &end.failure else { continue };
                let returned_early = !how.starts_with("panicked") && !how.starts_with("failed");
                if first.is_some() || (returned_early && early.is_some()) {
                    log::warn!("pipeline stage {} {how}", end.stage);
                    continue;
                }
                if returned_early {
                    early = Some(end);
                    continue;
                }
                if let Some(held) = early.take() {
                    let how = held.failure.as_deref().unwrap_or("");
                    log::warn!("pipeline stage {} {how}", held.stage);
                }
                end
            }
        };
        let how = cause.failure.unwrap_or_default();
        log::error!(
            "pipeline stage {} {how}; stopping the pipeline (what is complete is committed, the \
             rest is read again on restart)",
            cause.stage
        );
        metrics
            .health
            .stage_failed(format!("{} {how}", cause.stage));
        shutdown.request_within(fault_grace);
        first = Some(PipelineError::StageEnded {
            stage: cause.stage,
            how,
        });
    }
    first
}

/// How long an early return waits for the failure that caused it (see [`supervise`]).
const CAUSE_WAIT: Duration = Duration::from_millis(200);

/// Joins every stage. The result is the first failure the supervisor saw (the stage's own
/// error when it returned one), else the first error of a join.
fn join_all(
    handles: Vec<(String, StageHandle<'_>)>,
    failure: Option<PipelineError>,
) -> Result<(), PipelineError> {
    let mut errors = Vec::new();
    for (stage, handle) in handles {
        if let Ok(Err(e)) = handle.join() {
            errors.push((stage, e));
        }
    }
    let own_error = |stage: &str, errors: &mut Vec<(String, PipelineError)>| {
        let i = errors.iter().position(|(s, _)| s == stage)?;
        Some(errors.remove(i).1)
    };
    let result = match failure {
        Some(PipelineError::StageEnded { stage, how }) => {
            own_error(&stage, &mut errors).unwrap_or(PipelineError::StageEnded { stage, how })
        }
        Some(other) => other,
        None if errors.is_empty() => return Ok(()),
        None => errors.remove(0).1,
    };
    Err(result)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn end(stage: &str, failure: Option<&str>) -> StageEnd {
        StageEnd {
            stage: stage.into(),
            failure: failure.map(str::to_string),
        }
    }

    fn failed_stage(ends: Vec<StageEnd>) -> (Option<String>, Option<String>, bool) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let stages = ends.len();
        for e in ends {
            tx.send(e).unwrap();
        }
        let (metrics, shutdown) = (Metrics::default(), Shutdown::new());
        let failure = supervise(&rx, stages, &metrics, &shutdown, Duration::from_secs(2));
        let stage = match failure {
            Some(PipelineError::StageEnded { stage, .. }) => Some(stage),
            _ => None,
        };
        (
            stage,
            metrics.health.failed_stage(),
            shutdown.is_requested(),
        )
    }

    #[test]
    fn the_panic_is_the_cause_even_when_a_neighbour_returns_first() {
        let early = "returned while the pipeline was running";
        let (stage, health, stopped) = failed_stage(vec![
            end("worker-0", Some(early)),
            end("worker-1", Some(early)),
            end("producer", Some("panicked")),
            end("consumer", None),
        ]);
        assert_eq!(stage.as_deref(), Some("producer"));
        assert_eq!(health.as_deref(), Some("producer panicked"));
        assert!(stopped);
    }

    #[test]
    fn an_early_return_with_no_cause_is_the_failure_and_normal_ends_are_none() {
        let (stage, _, _) = failed_stage(vec![
            end("worker-1", Some("returned while the pipeline was running")),
            end("worker-0", None),
        ]);
        assert_eq!(stage.as_deref(), Some("worker-1"));
        let (stage, health, stopped) =
            failed_stage(vec![end("worker-0", None), end("consumer", None)]);
        assert_eq!((stage, health, stopped), (None, None, false));
    }
}
