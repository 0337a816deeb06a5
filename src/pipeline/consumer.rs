//! The consumer stage: one thread owns the `BaseConsumer`, polls it, hands records to the
//! workers in batches, closes commit epochs, and alone touches consumer offsets.
//!
//! - Records are copied once into an [`InputBatch`] (up to [`BATCH_RECORDS`] records, or what
//!   one poll round brings) and handed out with one channel operation and one tracker lock.
//! - It never blocks for long on a full channel. A batch waits at most `BACKPRESSURE_WAIT` (100 ms) for
//!   space; if the workers are still behind, it stays in a small local queue and the assigned
//!   partitions are paused; polling goes on (so heartbeats and rebalances are served and
//!   `max.poll.interval.ms` is never exceeded), and the partitions resume when the workers have
//!   caught up (the channel is half empty).
//! - Every `--commit-interval` it closes the open epoch: it tells the producer how many records
//!   the epoch holds and its positions (with the generation each partition was read under,
//!   for the exactly-once transaction) and publishes the next epoch number to the workers. Complete epochs come back
//!   on the "done" channel; the [`OffsetTracker`] turns them into positions, which are stored
//!   and committed at once (at-least-once; exactly-once commits them in the producer's
//!   transaction). See [`crate::pipeline::offsets`] for the guarantee.
//! - On revoke ([`super::rebalance`]) it closes the epoch, waits (bounded) until every epoch up to it is complete,
//!   commits the revoked partitions' final positions synchronously, and forgets them; records
//!   of theirs that complete later, or that were read but not yet handed out, commit nothing.
//! - On shutdown it stops fetching, closes the last epoch and the work channel (so the workers
//!   and then the producer drain and stop), applies the completions as they arrive, and
//!   commits synchronously at the end.
//! - Exactly-once, when the producer aborts a transaction, the stage stops without draining
//!   and [`ConsumerStage::rewind`]s: it forgets what is not committed and seeks back; the same
//!   consumer (still in the group) serves the next run of the stages.

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, SendTimeoutError, Sender, TrySendError};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientContext, Offset};

use super::rebalance::{
    offsets_list, retriable_commit_error, Links, RebalanceContext, MAX_REVOKE_DRAIN,
};
use crate::cli::run::Guarantee;
use crate::config::Config;
use crate::error::PipelineError;
use crate::kafka::client::{consumer_config, redact_config_error, ClientLog};
use crate::pipeline::messages::{BatchPools, Epoch, Generation, InputBatch, Source};
use crate::pipeline::offsets::{OffsetTracker, TrackError};
use crate::pipeline::watermark::EventClock;
use crate::shutdown::Shutdown;
use crate::telemetry::metrics::{unix_ms, Metrics};
use crate::telemetry::progress::{Progress, ProgressExtras};

/// How long a batch may wait for channel space before the consumer pauses its partitions.
const BACKPRESSURE_WAIT: Duration = Duration::from_millis(100);
/// Most records in one batch.
pub const BATCH_RECORDS: usize = 256;
/// A batch is handed out once its buffer holds this many bytes, whatever its record count.
const BATCH_BYTES: usize = 1 << 20;
/// Records polled in one go before the loop does its bookkeeping again.
const POLL_ROUND: usize = 2048;
/// How long start-up waits for the broker's metadata.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// What a batch holds of one partition: the generation it was read under, its last offset
/// and how many records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Part {
    partition: i32,
    generation: Generation,
    first_offset: i64,
    last_offset: i64,
    count: u64,
}

/// A batch being built or waiting for channel space, with its per-partition summary.
#[derive(Debug, Default)]
struct Pending {
    batch: InputBatch,
    parts: Vec<Part>,
}

impl Pending {
    fn add(&mut self, message: &BorrowedMessage<'_>, generation: Generation, pools: &BatchPools) {
        if self.batch.records.capacity() == 0 {
            self.batch = InputBatch::from_pool(pools, BATCH_RECORDS, BATCH_RECORDS * 256);
        }
        let partition = message.partition();
        let offset = message.offset();
        match self
            .parts
            .iter_mut()
            .rev()
            .find(|p| p.partition == partition)
        {
            Some(part) => {
                part.last_offset = offset;
                part.count += 1;
            }
            None => self.parts.push(Part {
                partition,
                generation,
                first_offset: offset,
                last_offset: offset,
                count: 1,
            }),
        }
        self.batch.push(
            Source { partition, offset },
            message.timestamp().to_millis(),
            message.key(),
            message.payload(),
            message.headers().map(|h| h.detach()),
        );
    }

    fn full(&self) -> bool {
        self.batch.len() >= BATCH_RECORDS || self.batch.data.len() >= BATCH_BYTES
    }

    /// Drops the records of the partitions in `stale` (revoked since they were read).
    fn drop_partitions(&mut self, stale: &[i32]) {
        self.parts.retain(|p| !stale.contains(&p.partition));
        self.batch
            .records
            .retain(|r| !stale.contains(&r.source.partition));
    }
}

/// The consumer thread's state.
pub struct ConsumerStage<'a> {
    /// Shared with the producer stage, which takes the group metadata for each transaction
    /// from it (exactly-once).
    consumer: Arc<BaseConsumer<RebalanceContext>>,
    topic: String,
    shutdown: &'a Shutdown,
    metrics: Arc<Metrics>,
    shutdown_grace: Duration,
    progress_interval: Duration,
    commit_interval: Duration,
    exit_at_end: bool,
    capacity: usize,
    batches: Batcher,
    pending: VecDeque<Pending>,
    pools: &'a BatchPools,
    at_end: BTreeSet<i32>,
    /// Batches handed to the workers.
    dispatched: u64,
}

/// Builds batches from polled records.
#[derive(Debug, Default)]
struct Batcher {
    building: Pending,
    /// Generation of each assigned partition, as of `seen_rebalances`.
    generations: Vec<(i32, Generation)>,
    seen_rebalances: u64,
}

impl Batcher {
    /// The generation of `partition` under the current assignment.
    fn generation(&mut self, context: &RebalanceContext, partition: i32) -> Option<Generation> {
        let seen = context.rebalances.load(Ordering::Relaxed);
        if seen != self.seen_rebalances {
            self.seen_rebalances = seen;
            let tracker = context.tracker();
            self.generations = tracker
                .partitions()
                .filter_map(|p| Some((p, tracker.generation(p)?)))
                .collect();
        }
        self.generations
            .iter()
            .find(|(p, _)| *p == partition)
            .map(|&(_, g)| g)
    }

    /// Moves the batch being built to `pending`.
    fn seal(&mut self, pending: &mut VecDeque<Pending>) {
        if !self.building.batch.is_empty() {
            pending.push_back(std::mem::take(&mut self.building));
        }
    }
}

impl<'a> ConsumerStage<'a> {
    /// Creates the consumer and checks, within `STARTUP_TIMEOUT` (10 s), that the broker answers and
    /// the input topic exists. `epoch` is the open epoch the workers read; `control_tx` goes to
    /// the producer, `done_rx` comes from it; `clock` holds the partitions' watermarks (the
    /// rebalance callbacks assign and revoke them, alignment holds them).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: &Config,
        links: Links,
        rewinding: Arc<AtomicBool>,
        epoch: Arc<AtomicU64>,
        clock: Arc<EventClock>,
        pools: &'a BatchPools,
        metrics: Arc<Metrics>,
        shutdown: &'a Shutdown,
    ) -> Result<Self, PipelineError> {
        let tracker = OffsetTracker::new();
        epoch.store(tracker.open_epoch(), Ordering::Release);
        let context = RebalanceContext {
            topic: config.input_topic.clone(),
            tracker: Mutex::new(tracker),
            links: Mutex::new(links),
            rewinding,
            epoch,
            clock,
            exactly_once: config.guarantee == Guarantee::ExactlyOnce,
            drain_timeout: config.shutdown_timeout.min(MAX_REVOKE_DRAIN),
            paused: AtomicBool::new(false),
            rebalances: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            metrics: Arc::clone(&metrics),
            log: ClientLog::new("consumer"),
        };
        let consumer: BaseConsumer<RebalanceContext> = consumer_config(config)
            .create_with_context(context)
            .map_err(redact_config_error)
            .map_err(|e| PipelineError::Config(format!("consumer: {e}")))?;
        check_topics(&consumer, config)?;
        Ok(ConsumerStage {
            consumer: Arc::new(consumer),
            topic: config.input_topic.clone(),
            shutdown,
            metrics,
            shutdown_grace: config.shutdown_timeout,
            progress_interval: config.progress_interval,
            commit_interval: config.commit_interval,
            exit_at_end: config.exit_at_end,
            capacity: Self::channel_batches(config.channel_capacity),
            batches: Batcher::default(),
            pending: VecDeque::new(),
            pools,
            at_end: BTreeSet::new(),
            dispatched: 0,
        })
    }

    fn context(&self) -> &RebalanceContext {
        self.consumer.context()
    }

    /// The work channel's capacity in batches for `--channel-capacity` records.
    pub fn channel_batches(channel_capacity: usize) -> usize {
        channel_capacity.div_ceil(BATCH_RECORDS).max(2)
    }

    /// The consumer, for the producer stage's group metadata (exactly-once).
    pub fn group(&self) -> std::sync::Weak<BaseConsumer<RebalanceContext>> {
        Arc::downgrade(&self.consumer)
    }

    /// Connects the consumer to the producer of a new run of the stages.
    pub fn relink(&self, links: Links) {
        self.context().relink(links);
    }

    /// Polls and dispatches until shutdown (then drains and commits) or a rewind (exactly-once:
    /// the producer aborted a transaction; see [`ConsumerStage::rewind`]). Consumes the work
    /// sender: dropping it is what tells the workers to finish.
    pub fn run(&mut self, work_tx: Sender<InputBatch>) -> Result<(), PipelineError> {
        if !self.metrics.health.subscribed.load(Ordering::Relaxed) {
            self.consumer
                .subscribe(&[&self.topic])
                .map_err(|e| PipelineError::kafka(format!("subscribing to {}", self.topic), e))?;
            log::info!("subscribed to {}", self.topic);
            self.metrics
                .health
                .subscribed
                .store(true, Ordering::Relaxed);
        }
        let mut last_close = Instant::now();
        let mut progress = Progress::new(self.progress_interval);
        while !self.shutdown.is_requested() {
            if self.context().rewinding.load(Ordering::Relaxed) {
                return Ok(());
            }
            self.context().absorb_done();
            self.context().commit_moved(&self.consumer);
            if !self.dispatch_pending(&work_tx) {
                if self.context().rewinding.load(Ordering::Relaxed) {
                    return Ok(());
                }
                log::error!("workers are gone; stopping");
                self.shutdown.request(self.shutdown_grace);
                break;
            }
            self.update_pause(&work_tx);
            super::alignment::align(&self.consumer, unix_ms());
            let depth = &self.metrics.gauges.workers_channel;
            depth.store((work_tx.len() * BATCH_RECORDS) as u64, Ordering::Relaxed);
            if last_close.elapsed() >= self.commit_interval {
                self.context().close_epoch();
                self.note_in_flight();
                last_close = Instant::now();
            }
            self.poll_round()?;
            if progress.due() {
                progress.log(&self.metrics, self.progress_extras());
            }
            if self.exit_at_end && self.drained(&work_tx) {
                log::info!("input drained (--exit-at-end); shutting down");
                self.shutdown.request(self.shutdown_grace);
            }
        }
        self.finish(work_tx, progress)
    }

    /// Polls up to [`POLL_ROUND`] records into batches; waits up to 100 ms for the first
    /// (10 ms while batches wait for channel space). A batch is sealed when it is full, when
    /// the poll comes back empty, or when a rebalance ran inside the poll.
    fn poll_round(&mut self) -> Result<(), PipelineError> {
        let mut timeout = if self.pending.is_empty() {
            Duration::from_millis(100)
        } else {
            Duration::from_millis(10)
        };
        for _ in 0..POLL_ROUND {
            let rebalances = self.context().rebalances.load(Ordering::Relaxed);
            let Some(result) = self.consumer.poll(timeout) else {
                break;
            };
            timeout = Duration::ZERO;
            let context = self.consumer.context();
            if context.rebalances.load(Ordering::Relaxed) != rebalances {
                self.batches.seal(&mut self.pending);
            }
            match result {
                Ok(message) => {
                    let partition = message.partition();
                    self.at_end.remove(&partition);
                    match self.batches.generation(context, partition) {
                        Some(generation) => {
                            self.batches.building.add(&message, generation, self.pools)
                        }
                        // Not (or no longer) assigned: its next owner reads it.
                        None => {
                            log::debug!("dropping a record of unassigned partition {partition}")
                        }
                    }
                    if self.batches.building.full() {
                        self.batches.seal(&mut self.pending);
                    }
                }
                Err(KafkaError::PartitionEOF(p)) => {
                    self.at_end.insert(p);
                }
                Err(e) => self.on_poll_error(e)?,
            }
        }
        self.batches.seal(&mut self.pending);
        Ok(())
    }

    fn on_poll_error(&self, error: KafkaError) -> Result<(), PipelineError> {
        if let Some((code, reason)) = self.consumer.client().fatal_error() {
            return Err(PipelineError::kafka(
                format!("consumer fatal error ({reason})"),
                KafkaError::MessageConsumption(code),
            ));
        }
        self.context().log.error(error, "while polling");
        Ok(())
    }

    /// Hands pending batches to the workers while the channel has room. Returns false when the
    /// workers are gone.
    fn dispatch_pending(&mut self, work_tx: &Sender<InputBatch>) -> bool {
        while let Some(mut next) = self.pending.pop_front() {
            // Records read under an assignment that has since been revoked are dropped: their
            // partition's position never passes them, so they are read again.
            // Anything the tracker would refuse is dropped before the send, so what the
            // workers get is always tracked (a refusal other than a revoke is a bug: logged,
            // and the records are read again after a restart).
            let (stale, epoch): (Vec<i32>, Epoch) = {
                let tracker = self.context().tracker();
                let mut stale = Vec::new();
                for p in &next.parts {
                    match tracker.check_hand_out(p.partition, p.generation, p.last_offset) {
                        Ok(()) => {}
                        Err(TrackError::StaleGeneration | TrackError::NotAssigned) => {
                            stale.push(p.partition)
                        }
                        Err(e) => {
                            log::error!("offset tracking refused {p:?}: {e:?}; dropping them");
                            stale.push(p.partition);
                        }
                    }
                }
                (stale, tracker.open_epoch())
            };
            if !stale.is_empty() {
                next.drop_partitions(&stale);
                if next.batch.is_empty() {
                    continue;
                }
            }
            next.batch.epoch = epoch;
            let Pending { batch, parts } = next;
            let records = batch.len() as u64;
            // A short wait for space rides out the moments when the workers are briefly full
            // (pausing purges librdkafka's prefetched records and restarts fetching, which is
            // far more expensive); it is well inside max.poll.interval.ms, and callbacks are
            // served by the next poll. Only when the workers stay behind do we pause.
            let sent = match work_tx.try_send(batch) {
                Err(TrySendError::Full(batch))
                    if !self.context().paused.load(Ordering::Relaxed) =>
                {
                    work_tx
                        .send_timeout(batch, BACKPRESSURE_WAIT)
                        .map_err(|e| match e {
                            SendTimeoutError::Timeout(b) => TrySendError::Full(b),
                            SendTimeoutError::Disconnected(b) => TrySendError::Disconnected(b),
                        })
                }
                other => other,
            };
            match sent {
                Ok(()) => {
                    // Recorded after the send (checked before it): only this thread closes
                    // epochs and changes the assignment, so the batch is still in the open
                    // epoch and the check still holds, and its completion can only be applied
                    // later, by this same thread.
                    let mut tracker = self.context().tracker();
                    for p in &parts {
                        let (first, last) = (p.first_offset, p.last_offset);
                        let handed =
                            tracker.hand_out_from(p.partition, p.generation, first, last, p.count);
                        debug_assert!(handed.is_ok(), "checked before the send: {handed:?}");
                    }
                    drop(tracker);
                    self.metrics.note_received(records);
                    self.dispatched += 1;
                    crate::fault::inject(self.dispatched);
                }
                Err(TrySendError::Full(batch)) => {
                    self.pending.push_front(Pending { batch, parts });
                    return true;
                }
                Err(TrySendError::Disconnected(_)) => return false,
            }
        }
        true
    }

    /// Pauses the assignment while batches wait for channel space; resumes when the channel
    /// is at most half full again (hysteresis, so it does not flap).
    fn update_pause(&self, work_tx: &Sender<InputBatch>) {
        let paused = self.context().paused.load(Ordering::Relaxed);
        let want_pause = !self.pending.is_empty();
        let can_resume = self.pending.is_empty() && work_tx.len() <= self.capacity / 2;
        if (want_pause && !paused) || (paused && can_resume) {
            let Ok(assignment) = self.consumer.assignment() else {
                return;
            };
            let result = if want_pause {
                self.consumer.pause(&assignment)
            } else {
                let unheld = super::alignment::unheld(self.context(), &assignment);
                self.consumer.resume(&unheld)
            };
            match result {
                Ok(()) => {
                    self.context().paused.store(want_pause, Ordering::Relaxed);
                    self.metrics
                        .gauges
                        .paused
                        .store(want_pause, Ordering::Relaxed);
                    if want_pause {
                        self.metrics.pauses.fetch_add(1, Ordering::Relaxed);
                        log::debug!("workers behind: paused {} partitions", assignment.count());
                    }
                }
                Err(e) => log::warn!("pause/resume failed: {e}"),
            }
        }
    }

    fn note_in_flight(&self) {
        let in_flight = self.context().tracker().total_in_flight();
        self.metrics
            .gauges
            .in_flight
            .store(in_flight, Ordering::Relaxed);
    }

    /// True when every assigned partition has been read to its end and handed out. (Records
    /// still in flight are finished by the shutdown.)
    fn drained(&self, work_tx: &Sender<InputBatch>) -> bool {
        let tracker = self.context().tracker();
        let mut assigned = tracker.partitions().peekable();
        assigned.peek().is_some()
            && assigned.all(|p| self.at_end.contains(&p))
            && self.pending.is_empty()
            && self.batches.building.batch.is_empty()
            && work_tx.is_empty()
    }

    fn progress_extras(&self) -> ProgressExtras {
        let tracker = self.context().tracker();
        let lag = self.metrics.gauges.lag_sum.load(Ordering::Relaxed);
        ProgressExtras {
            in_flight: tracker.total_in_flight() as usize,
            positions: tracker.positions(),
            lag: (lag >= 0).then_some(lag),
            paused: self.context().paused.load(Ordering::Relaxed),
        }
    }

    /// Shutdown: stop fetching, close the last epoch and the work channel, wait for the
    /// producer to complete what was handed out (until the deadline), commit.
    fn finish(
        &mut self,
        work_tx: Sender<InputBatch>,
        mut progress: Progress,
    ) -> Result<(), PipelineError> {
        if let Ok(assignment) = self.consumer.assignment() {
            let _ = self.consumer.pause(&assignment);
        }
        // Read but never handed out: not tracked, so no committed offset passes them.
        self.pending.clear();
        self.batches.building = Pending::default();
        let last = self.context().close_epoch();
        drop(work_tx);
        log::info!("shutting down: draining in-flight records");
        let done_rx = self.context().done_rx();
        loop {
            // Serve consumer callbacks; records fetched before the pause are not handed out.
            let _ = self.consumer.poll(Duration::ZERO);
            self.context().absorb_done();
            if self.context().tracker().complete_through(last) || self.shutdown.overdue() {
                break;
            }
            match done_rx.recv_timeout(Duration::from_millis(50)) {
                Ok(epoch) => {
                    self.context().tracker().complete(epoch);
                }
                Err(RecvTimeoutError::Timeout) => {}
                // The producer thread has ended: every completion has arrived.
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if progress.due() {
                progress.log(&self.metrics, self.progress_extras());
            }
        }
        self.context().absorb_done();
        let in_flight = self.context().tracker().total_in_flight();
        self.metrics
            .gauges
            .in_flight
            .store(in_flight, Ordering::Relaxed);
        let committed = if self.context().exactly_once {
            self.context().tracker().positions()
        } else {
            self.commit_final()
        };
        progress.log(&self.metrics, self.progress_extras());
        log::info!("committed positions {committed:?}; closing consumer");
        self.at_end.clear();
        // The consumer closes when the stage is dropped, after the other stages have ended.
        self.context().closing.store(true, Ordering::Relaxed);
        if in_flight > 0 {
            return Err(PipelineError::ShutdownTimeout { in_flight });
        }
        Ok(())
    }
}

impl ConsumerStage<'_> {
    /// Exactly-once, after the producer aborted a transaction and the stages stopped: forgets
    /// what was read since the last committed epoch (the tracker starts new generations, the
    /// batches not handed out are dropped) and seeks each partition back to where its reading
    /// resumes (its committed position, else the first offset read since the assignment), so
    /// the next run of the stages reads it again. The group membership stays: no rebalance.
    pub fn rewind(&mut self) -> Result<(), PipelineError> {
        let mut resume: Vec<(i32, Option<i64>)> = self.context().tracker().rewind();
        // Read but never handed out: only these say where a partition with nothing handed out
        // resumes.
        let pending = self
            .pending
            .drain(..)
            .chain(std::iter::once(std::mem::take(&mut self.batches.building)));
        let mut first_pending: Vec<(i32, i64)> = Vec::new();
        for part in pending.flat_map(|p| p.parts) {
            match first_pending.iter_mut().find(|(p, _)| *p == part.partition) {
                Some((_, first)) => *first = (*first).min(part.first_offset),
                None => first_pending.push((part.partition, part.first_offset)),
            }
        }
        for (partition, position) in &mut resume {
            if position.is_none() {
                *position = first_pending
                    .iter()
                    .find(|(p, _)| p == partition)
                    .map(|&(_, o)| o);
            }
        }
        self.context().rebalances.fetch_add(1, Ordering::Relaxed);
        for &(partition, position) in &resume {
            let Some(offset) = position else { continue };
            self.consumer
                .seek(
                    &self.topic,
                    partition,
                    Offset::Offset(offset),
                    STARTUP_TIMEOUT,
                )
                .map_err(|e| {
                    PipelineError::kafka(format!("rewinding partition {partition} to {offset}"), e)
                })?;
        }
        if let Ok(assignment) = self.consumer.assignment() {
            let _ = self.consumer.resume(&assignment);
        }
        self.context().paused.store(false, Ordering::Relaxed);
        self.metrics.gauges.paused.store(false, Ordering::Relaxed);
        self.context().rewinding.store(false, Ordering::Relaxed);
        log::info!("rewound to {resume:?}; reading again from there");
        Ok(())
    }

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
            match self.context().try_commit(&self.consumer, &tpl) {
                Ok(()) => return positions,
                Err(KafkaError::ConsumerCommit(code))
                    if retriable_commit_error(code) && Instant::now() < deadline =>
                {
                    log::info!("final commit: {code} (a rebalance is in progress); retrying");
                    let _ = self.consumer.poll(Duration::from_millis(100));
                }
                Err(e) => {
                    self.context().commit_failed(&tpl, &e);
                    log::warn!(
                        "final commit failed: the next owner may process some records again"
                    );
                    return positions;
                }
            }
        }
    }
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
