//! The consumer stage: one thread owns the `BaseConsumer`, polls it, hands records to the
//! workers, and alone touches consumer offsets.
//!
//! - It never blocks for long on a full channel. A record waits at most
//!   [`BACKPRESSURE_WAIT`] for space; if the workers are still behind, it stays in a small local
//!   queue and the assigned partitions are paused; polling goes on (so heartbeats and
//!   rebalances are served and `max.poll.interval.ms` is never exceeded), and the partitions
//!   resume when the workers have caught up (the channel is half empty).
//! - Delivered records come back on the "done" channel; the [`OffsetTracker`] turns them into
//!   committable positions, which are stored (`store_offsets`) every 100 ms and committed by
//!   librdkafka's auto-commit. See [`crate::offsets`] for the guarantee.
//! - On revoke it waits (bounded) for the revoked partitions' in-flight records, commits their
//!   final positions synchronously, and forgets them; records of theirs that complete later, or
//!   that were read but not yet handed out, store nothing.
//! - On shutdown it stops fetching, closes the work channel (so the workers and then the
//!   producer drain and stop), keeps storing positions as deliveries confirm, and commits
//!   synchronously at the end.

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, SendTimeoutError, Sender, TrySendError};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::clients::{consumer_config, ClientLog};
use crate::config::Config;
use crate::error::PipelineError;
use crate::metrics::{progress_line, Metrics, ProgressExtras, Snapshot};
use crate::offsets::OffsetTracker;
use crate::record::{InputRecord, Source};
use crate::shutdown::Shutdown;

/// How long a record may wait for channel space before the consumer pauses its partitions.
const BACKPRESSURE_WAIT: Duration = Duration::from_millis(100);
/// How often positions are stored while running.
const STORE_INTERVAL: Duration = Duration::from_millis(100);
/// Records polled in one go before the loop does its bookkeeping again.
const POLL_BATCH: usize = 512;
/// Longest wait for a revoked partition's in-flight records.
const MAX_REVOKE_DRAIN: Duration = Duration::from_secs(10);
/// How long start-up waits for the broker's metadata.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// State shared between the poll loop and the rebalance callbacks, which librdkafka runs
/// inside `poll` on the same thread (so the lock is never contended; it is never held across
/// a poll).
pub struct RebalanceContext {
    topic: String,
    tracker: Mutex<OffsetTracker>,
    done_rx: Receiver<Source>,
    drain_timeout: Duration,
    paused: AtomicBool,
    /// Bumped on every revoke; the workers flush their open insight windows when it moves.
    flush_request: Arc<AtomicU64>,
    /// Sum of `consumer_lag_stored` over the input partitions from the latest librdkafka
    /// statistics (high watermark − stored position); -1 until known.
    lag: AtomicI64,
    metrics: Arc<Metrics>,
    log: ClientLog,
}

impl RebalanceContext {
    fn tracker(&self) -> MutexGuard<'_, OffsetTracker> {
        self.tracker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies the delivery confirmations that have arrived.
    fn absorb_done(&self) {
        let mut tracker = self.tracker();
        while let Ok(source) = self.done_rx.try_recv() {
            tracker.mark_done(source.partition, source.epoch, source.offset);
        }
    }

    fn on_revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        // Records are done only once their insight window is published: ask the workers to
        // flush their open windows now, so the revoked partitions' records can be committed.
        self.flush_request.fetch_add(1, Relaxed);
        let partitions: Vec<i32> = tpl
            .elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect();
        let lost = consumer.assignment_lost();
        let deadline = Instant::now() + self.drain_timeout;
        loop {
            self.absorb_done();
            let in_flight: usize = partitions
                .iter()
                .map(|&p| self.tracker().in_flight(p))
                .sum();
            if in_flight == 0 || lost {
                break;
            }
            if Instant::now() >= deadline {
                log::warn!(
                    "revoke of partitions {partitions:?}: {in_flight} records still in flight after \
                     {:?}; committing the delivered prefix, the rest will be read again",
                    self.drain_timeout
                );
                break;
            }
            match self.done_rx.recv_timeout(Duration::from_millis(20)) {
                Ok(s) => {
                    self.tracker().mark_done(s.partition, s.epoch, s.offset);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let commit = {
            let mut tracker = self.tracker();
            offsets_list(
                &self.topic,
                partitions.iter().map(|&p| (p, tracker.revoke(p))),
            )
        };
        self.metrics.revokes.fetch_add(1, Relaxed);
        if lost {
            log::warn!("partitions {partitions:?} were lost (session timeout?); their uncommitted records will be read again");
        } else if commit.count() > 0 {
            // Store as well as commit: with auto-commit on, librdkafka commits the *stored*
            // offsets of revoked partitions during the unassign that follows this callback; a
            // stored offset older than this commit would move the group's position back and
            // the next owner would process the difference again.
            if let Err(e) = consumer.store_offsets(&commit) {
                log::warn!("storing final offsets of revoked partitions {partitions:?}: {e}");
            }
            match consumer.commit(&commit, CommitMode::Sync) {
                Ok(()) => log::info!(
                    "revoked partitions {partitions:?}; committed {}",
                    describe(&commit)
                ),
                Err(e) => log::warn!("revoked partitions {partitions:?}; commit failed: {e}"),
            }
        } else {
            log::info!("revoked partitions {partitions:?}");
        }
    }

    fn on_assign(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let partitions: Vec<i32> = tpl
            .elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect();
        {
            let mut tracker = self.tracker();
            for &p in &partitions {
                tracker.assign(p);
            }
        }
        self.metrics.assigns.fetch_add(1, Relaxed);
        log::info!("assigned partitions {partitions:?} of {}", self.topic);
        if self.paused.load(Relaxed) {
            if let Err(e) = consumer.pause(tpl) {
                log::warn!("pausing newly assigned partitions: {e}");
            }
        }
    }
}

impl ClientContext for RebalanceContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.log.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log.error("consumer", &error, reason);
    }

    fn stats_raw(&self, statistics: &[u8]) {
        if let Some(lag) = stored_lag(statistics, &self.topic) {
            self.lag.store(lag.iter().map(|l| l.1).sum(), Relaxed);
            self.metrics.set_lag(lag);
        }
    }
}

/// `consumer_lag_stored` of each assigned partition of `topic` in a librdkafka statistics
/// document (partitions this client does not consume report -1 and are skipped).
fn stored_lag(statistics: &[u8], topic: &str) -> Option<Vec<(i32, i64)>> {
    let stats: serde_json::Value = serde_json::from_slice(statistics).ok()?;
    let partitions = stats
        .get("topics")?
        .get(topic)?
        .get("partitions")?
        .as_object()?;
    let lags = partitions
        .iter()
        .filter_map(|(p, v)| Some((p.parse().ok()?, v.get("consumer_lag_stored")?.as_i64()?)))
        .filter(|&(p, lag): &(i32, i64)| p >= 0 && lag >= 0);
    Some(lags.collect())
}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => self.on_revoke(consumer, tpl),
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => log::warn!("rebalance error: {e}"),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.on_assign(consumer, tpl);
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                self.metrics.note_commit();
                log::debug!("committed {}", describe(offsets));
            }
            // Nothing new was stored since the last commit.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                self.metrics.commit_failures.fetch_add(1, Relaxed);
                log::warn!("offset commit failed: {e}");
            }
        }
    }
}

/// A partition list of `topic` with the given positions (partitions without one are left out).
fn offsets_list(
    topic: &str,
    positions: impl Iterator<Item = (i32, Option<i64>)>,
) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (p, position) in positions {
        if let Some(position) = position {
            // Only fails for an invalid offset value, which a position never is.
            let _ = tpl.add_partition_offset(topic, p, Offset::Offset(position));
        }
    }
    tpl
}

fn describe(tpl: &TopicPartitionList) -> String {
    let parts: Vec<String> = tpl
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => format!("p{}={o}", e.partition()),
            other => format!("p{}={other:?}", e.partition()),
        })
        .collect();
    parts.join(" ")
}

/// The consumer thread's state.
pub struct ConsumerStage<'a> {
    consumer: BaseConsumer<RebalanceContext>,
    topic: String,
    shutdown: &'a Shutdown,
    metrics: Arc<Metrics>,
    shutdown_grace: Duration,
    progress_interval: Duration,
    exit_at_end: bool,
    capacity: usize,
    pending: VecDeque<InputRecord>,
    at_end: BTreeSet<i32>,
}

impl<'a> ConsumerStage<'a> {
    /// Creates the consumer and checks, within [`STARTUP_TIMEOUT`], that the broker answers and
    /// the input topic exists.
    pub fn new(
        config: &Config,
        done_rx: Receiver<Source>,
        metrics: Arc<Metrics>,
        flush_request: Arc<AtomicU64>,
        shutdown: &'a Shutdown,
    ) -> Result<Self, PipelineError> {
        let context = RebalanceContext {
            topic: config.input_topic.clone(),
            tracker: Mutex::new(OffsetTracker::new()),
            done_rx,
            drain_timeout: config.shutdown_timeout.min(MAX_REVOKE_DRAIN),
            paused: AtomicBool::new(false),
            flush_request,
            lag: AtomicI64::new(-1),
            metrics: Arc::clone(&metrics),
            log: ClientLog::default(),
        };
        let consumer: BaseConsumer<RebalanceContext> = consumer_config(config)
            .create_with_context(context)
            .map_err(|e| PipelineError::Config(format!("consumer: {e}")))?;
        check_topics(&consumer, config)?;
        Ok(ConsumerStage {
            consumer,
            topic: config.input_topic.clone(),
            shutdown,
            metrics,
            shutdown_grace: config.shutdown_timeout,
            progress_interval: config.progress_interval,
            exit_at_end: config.exit_at_end,
            capacity: config.channel_capacity,
            pending: VecDeque::new(),
            at_end: BTreeSet::new(),
        })
    }

    fn context(&self) -> &RebalanceContext {
        self.consumer.context()
    }

    /// Polls and dispatches until shutdown, then drains and commits. Consumes the work sender:
    /// dropping it is what tells the workers to finish.
    pub fn run(mut self, work_tx: Sender<InputRecord>) -> Result<(), PipelineError> {
        self.consumer
            .subscribe(&[&self.topic])
            .map_err(|e| PipelineError::kafka(format!("subscribing to {}", self.topic), e))?;
        log::info!("subscribed to {}", self.topic);
        self.metrics.health.subscribed.store(true, Relaxed);
        let mut last_store = Instant::now();
        let mut progress = Progress::new(self.progress_interval);
        while !self.shutdown.is_requested() {
            self.context().absorb_done();
            if !self.dispatch_pending(&work_tx) {
                log::error!("workers are gone; stopping");
                self.shutdown.request(self.shutdown_grace);
                break;
            }
            self.update_pause(&work_tx);
            let depth = &self.metrics.gauges.workers_channel;
            depth.store(work_tx.len() as u64, Relaxed);
            if last_store.elapsed() >= STORE_INTERVAL {
                self.store_positions();
                last_store = Instant::now();
            }
            self.poll_batch()?;
            if progress.due() {
                progress.log(&self.metrics, self.progress_extras());
            }
            if self.exit_at_end && self.drained(&work_tx) {
                log::info!("input drained (--exit-at-end); shutting down");
                self.shutdown.request(self.shutdown_grace);
            }
        }
        drop(work_tx);
        self.finish(progress)
    }

    /// Polls up to [`POLL_BATCH`] records into the pending queue; waits up to 100 ms for the
    /// first (10 ms while records are waiting for channel space).
    fn poll_batch(&mut self) -> Result<(), PipelineError> {
        let mut timeout = if self.pending.is_empty() {
            Duration::from_millis(100)
        } else {
            Duration::from_millis(10)
        };
        for _ in 0..POLL_BATCH {
            let Some(result) = self.consumer.poll(timeout) else {
                break;
            };
            timeout = Duration::ZERO;
            match result {
                Ok(message) => {
                    let record = self.to_input(&message);
                    self.at_end.remove(&record.source.partition);
                    self.pending.push_back(record);
                }
                Err(KafkaError::PartitionEOF(p)) => {
                    self.at_end.insert(p);
                }
                Err(e) => self.on_poll_error(e)?,
            }
        }
        Ok(())
    }

    fn on_poll_error(&self, error: KafkaError) -> Result<(), PipelineError> {
        if let Some((code, reason)) = self.consumer.client().fatal_error() {
            return Err(PipelineError::kafka(
                format!("consumer fatal error ({reason})"),
                KafkaError::MessageConsumption(code),
            ));
        }
        self.context()
            .log
            .error("consumer", &error, "while polling");
        Ok(())
    }

    fn to_input(&self, message: &BorrowedMessage<'_>) -> InputRecord {
        let partition = message.partition();
        // Read under the current assignment; if the partition is revoked and reassigned before
        // this record is handed out, the epoch no longer matches and the record is dropped.
        let epoch = self.context().tracker().epoch(partition).unwrap_or(0);
        InputRecord {
            source: Source {
                partition,
                offset: message.offset(),
                epoch,
            },
            timestamp_ms: message.timestamp().to_millis(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers: message.headers().map(|h| h.detach()),
        }
    }

    /// Hands pending records to the workers while the channel has room. Returns false when the
    /// workers are gone.
    fn dispatch_pending(&mut self, work_tx: &Sender<InputRecord>) -> bool {
        while let Some(record) = self.pending.pop_front() {
            let source = record.source;
            // Tracked before the send (one lock for the check and the tracking), taken back if
            // the send does not happen; its completion can only be applied later, by this same
            // thread.
            let tracked =
                self.context()
                    .tracker()
                    .track_read(source.partition, source.epoch, source.offset);
            if let Err(e) = tracked {
                // Read under an assignment that has since been revoked (or out of order): the
                // record's partition position never passes it, so it is read again later.
                log::debug!("not handing out {source:?}: {e:?}");
                continue;
            }
            // A short wait for space rides out the moments when the workers are briefly full
            // (pausing purges librdkafka's prefetched records and restarts fetching, which is
            // far more expensive); it is well inside max.poll.interval.ms, and callbacks are
            // served by the next poll. Only when the workers stay behind do we pause.
            let sent = match work_tx.try_send(record) {
                Err(TrySendError::Full(record)) if !self.context().paused.load(Relaxed) => work_tx
                    .send_timeout(record, BACKPRESSURE_WAIT)
                    .map_err(|e| match e {
                        SendTimeoutError::Timeout(r) => TrySendError::Full(r),
                        SendTimeoutError::Disconnected(r) => TrySendError::Disconnected(r),
                    }),
                other => other,
            };
            match sent {
                Ok(()) => {
                    self.metrics.note_received();
                    self.metrics
                        .latency
                        .consumed(source.partition, source.offset);
                }
                Err(TrySendError::Full(record)) => {
                    self.context()
                        .tracker()
                        .untrack(source.partition, source.offset);
                    self.pending.push_front(record);
                    return true;
                }
                Err(TrySendError::Disconnected(_)) => return false,
            }
        }
        true
    }

    /// Pauses the assignment while records wait for channel space; resumes when the channel
    /// is at most half full again (hysteresis, so it does not flap).
    fn update_pause(&self, work_tx: &Sender<InputRecord>) {
        let paused = self.context().paused.load(Relaxed);
        let want_pause = !self.pending.is_empty();
        let can_resume = self.pending.is_empty() && work_tx.len() <= self.capacity / 2;
        if (want_pause && !paused) || (paused && can_resume) {
            let Ok(assignment) = self.consumer.assignment() else {
                return;
            };
            let result = if want_pause {
                self.consumer.pause(&assignment)
            } else {
                self.consumer.resume(&assignment)
            };
            match result {
                Ok(()) => {
                    self.context().paused.store(want_pause, Relaxed);
                    self.metrics.gauges.paused.store(want_pause, Relaxed);
                    if want_pause {
                        self.metrics.pauses.fetch_add(1, Relaxed);
                        log::debug!("workers behind: paused {} partitions", assignment.count());
                    }
                }
                Err(e) => log::warn!("pause/resume failed: {e}"),
            }
        }
    }

    /// Stores every position that moved.
    fn store_positions(&self) {
        let moved = {
            let mut tracker = self.context().tracker();
            let in_flight = tracker.total_in_flight() as u64;
            self.metrics.gauges.in_flight.store(in_flight, Relaxed);
            tracker.take_committable()
        };
        if moved.is_empty() {
            return;
        }
        let tpl = offsets_list(&self.topic, moved.into_iter().map(|(p, o)| (p, Some(o))));
        if let Err(e) = self.consumer.store_offsets(&tpl) {
            log::debug!("storing offsets {}: {e}", describe(&tpl));
        }
    }

    /// True when every assigned partition has been read to its end and handed out. (Records
    /// still in flight, or waiting for their insight window, are finished by the shutdown.)
    fn drained(&self, work_tx: &Sender<InputRecord>) -> bool {
        let tracker = self.context().tracker();
        let assigned: Vec<i32> = tracker.partitions().collect();
        !assigned.is_empty()
            && assigned.iter().all(|p| self.at_end.contains(p))
            && self.pending.is_empty()
            && work_tx.is_empty()
    }

    fn progress_extras(&self) -> ProgressExtras {
        let tracker = self.context().tracker();
        let positions = tracker.positions();
        let lag = self.context().lag.load(Relaxed);
        ProgressExtras {
            in_flight: tracker.total_in_flight(),
            positions,
            lag: (lag >= 0).then_some(lag),
            paused: self.context().paused.load(Relaxed),
        }
    }

    /// Shutdown: stop fetching, wait for the workers and producer to confirm what was handed
    /// out (until the deadline), store and commit.
    fn finish(mut self, mut progress: Progress) -> Result<(), PipelineError> {
        if let Ok(assignment) = self.consumer.assignment() {
            let _ = self.consumer.pause(&assignment);
        }
        // Read but never handed out: not tracked, so no stored offset passes them.
        self.pending.clear();
        log::info!("shutting down: draining in-flight records");
        loop {
            // Serve consumer callbacks; records fetched before the pause are not tracked.
            let _ = self.consumer.poll(Duration::ZERO);
            match self
                .context()
                .done_rx
                .recv_timeout(Duration::from_millis(50))
            {
                Ok(s) => {
                    self.context()
                        .tracker()
                        .mark_done(s.partition, s.epoch, s.offset);
                    self.context().absorb_done();
                }
                Err(RecvTimeoutError::Timeout) => {}
                // The producer thread has ended: every confirmation has arrived.
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if self.shutdown.overdue() {
                break;
            }
            if progress.due() {
                progress.log(&self.metrics, self.progress_extras());
            }
        }
        self.context().absorb_done();
        self.store_positions();
        let in_flight = self.context().tracker().total_in_flight() as u64;
        let committed = self.commit_final();
        progress.log(&self.metrics, self.progress_extras());
        log::info!("committed positions {committed:?}; closing consumer");
        self.at_end.clear();
        drop(self.consumer);
        if in_flight > 0 {
            return Err(PipelineError::ShutdownTimeout { in_flight });
        }
        Ok(())
    }
}

impl ConsumerStage<'_> {
    /// Commits the tracker's positions synchronously at shutdown. While the group is
    /// rebalancing (another member joining or leaving) the coordinator rejects commits from
    /// this member until it has rejoined, so a retriable rejection is answered by polling
    /// (which lets librdkafka rejoin and serves the callbacks) and trying again, until the
    /// shutdown deadline. Giving up here would make the next owner process the difference
    /// again.
    fn commit_final(&self) -> Vec<(i32, Option<i64>)> {
        let deadline = self.shutdown.deadline().unwrap_or_else(Instant::now);
        loop {
            let positions = self.context().tracker().positions();
            let tpl = offsets_list(&self.topic, positions.iter().copied());
            if tpl.count() == 0 {
                return positions;
            }
            // Stored too, so the commit librdkafka makes when it closes cannot go backwards.
            let _ = self.consumer.store_offsets(&tpl);
            match self.consumer.commit(&tpl, CommitMode::Sync) {
                Ok(()) => return positions,
                Err(KafkaError::ConsumerCommit(code))
                    if retriable_commit_error(code) && Instant::now() < deadline =>
                {
                    log::info!("final commit: {code} (a rebalance is in progress); retrying");
                    let _ = self.consumer.poll(Duration::from_millis(100));
                }
                Err(e) => {
                    log::warn!(
                        "final commit failed: {e}; the next owner may process some records again"
                    );
                    return positions;
                }
            }
        }
    }
}

/// Commit errors that go away once the member has rejoined the group or found its coordinator.
fn retriable_commit_error(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::RebalanceInProgress
            | RDKafkaErrorCode::IllegalGeneration
            | RDKafkaErrorCode::NotCoordinator
            | RDKafkaErrorCode::CoordinatorLoadInProgress
            | RDKafkaErrorCode::CoordinatorNotAvailable
            | RDKafkaErrorCode::RequestTimedOut
    )
}

/// Checks that the broker answers and the input topic exists; warns about missing outputs.
fn check_topics(
    consumer: &BaseConsumer<RebalanceContext>,
    config: &Config,
) -> Result<(), PipelineError> {
    let metadata = consumer
        .fetch_metadata(None, STARTUP_TIMEOUT)
        .map_err(|e| {
            PipelineError::Startup(format!(
                "cannot reach Kafka at {} within {STARTUP_TIMEOUT:?}: {e}",
                config.brokers
            ))
        })?;
    let exists = |name: &str| {
        metadata
            .topics()
            .iter()
            .any(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty())
    };
    if !exists(&config.input_topic) {
        return Err(PipelineError::Startup(format!(
            "input topic {:?} does not exist on {} (create it, or pass --input-topic)",
            config.input_topic, config.brokers
        )));
    }
    for (flag, topic) in [
        ("--output-topic", &config.output_topic),
        ("--dlq-topic", &config.dlq_topic),
    ] {
        if !exists(topic) {
            log::warn!(
                "{flag} {topic:?} does not exist yet; writes will wait until it is created \
                 (automatically, if the broker allows auto-creation)"
            );
        }
    }
    Ok(())
}

/// The periodic progress line.
struct Progress {
    interval: Duration,
    last: Instant,
    prev: Snapshot,
}

impl Progress {
    fn new(interval: Duration) -> Self {
        Progress {
            interval,
            last: Instant::now(),
            prev: Snapshot::default(),
        }
    }

    fn due(&self) -> bool {
        !self.interval.is_zero() && self.last.elapsed() >= self.interval
    }

    fn log(&mut self, metrics: &Metrics, extras: ProgressExtras) {
        let now = metrics.snapshot();
        // The counts again as fields, for --log-format json.
        log::info!(
            received = now.received,
            valid = now.valid,
            dead_lettered = now.dead_lettered.iter().sum::<u64>(),
            delivered = now.delivered,
            in_flight = extras.in_flight,
            lag = extras.lag.unwrap_or(-1),
            paused = extras.paused;
            "{}",
            progress_line(&self.prev, &now, self.last.elapsed(), &extras)
        );
        self.prev = now;
        self.last = Instant::now();
    }
}
