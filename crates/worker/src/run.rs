//! The worker loop: a [`Worker`] state machine driven by one `select!` that only dispatches.
//! Events: a message ([`Worker::on_message`]), a finished input ([`Worker::on_report`]), a
//! finished background commit, the clock ([`Worker::on_tick`]); after each,
//! [`Worker::backpressure`]. Then [`Worker::drain`] and [`Worker::finish`]. What commits and
//! when is the [`Commits`] strategy's; when to pause is [`Backpressure`]'s. See the crate
//! docs for the offset rule.
use crate::backpressure::{Action, Backpressure, Load};
use crate::commit::{install_revoke_hook, AckCommits, Commits, Stop, TxnCommits};
use crate::config::WorkerConfig;
use crate::drain::DrainSignal;
use crate::infer::{BatchPolicy, InferenceStage};
use crate::job::Job;
use crate::metrics as m;
use crate::models::{Models, Serving};
use crate::outputs::Finished;
use crate::pipeline::Pipeline;
use crate::process::{Input, Shared};
use crate::publish::{Publisher, Undelivered};
use crate::tracker::{Tp, Tracker};
use crate::txn::{Transactions, TxnError, TxnErrorKind};
use crate::watermarks::{update_drain, watch_watermarks, Highs};
use argus_kafka::rdkafka::consumer::{Consumer, StreamConsumer};
use argus_kafka::rdkafka::error::KafkaError;
use argus_kafka::rdkafka::message::BorrowedMessage;
use argus_kafka::rdkafka::producer::{FutureProducer, Producer};
use argus_kafka::GroupContext;
use argus_model::Classifier;
use futures::FutureExt;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Live counters of one worker (shared with the caller, e.g. the demo's summary).
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Inputs consumed.
    pub consumed: AtomicU64,
    /// Inputs predicted.
    pub predicted: AtomicU64,
    /// Alerts published.
    pub alerts: AtomicU64,
    /// Inputs sent to the DLQ.
    pub dead_lettered: AtomicU64,
    /// Inputs skipped as stale.
    pub stale: AtomicU64,
    /// Inputs abandoned because their partition was revoked first.
    pub abandoned: AtomicU64,
    /// Inputs whose outputs could not be delivered (left uncommitted).
    pub undelivered: AtomicU64,
    /// Times the partitions were paused for backpressure.
    pub pauses: AtomicU64,
    /// Microseconds since the Unix epoch of the last poll; for health checks.
    pub last_poll_us: AtomicU64,
    /// Partitions stalled (records wait, none returned) for `stuck_after` or longer at the
    /// last drain update; for readiness.
    pub stalled_partitions: AtomicU64,
    /// Whether the consumer is in its group (see `argus_kafka::Membership`) at the last
    /// poll; for readiness.
    pub in_group: AtomicBool,
}

/// A worker that has not polled Kafka for this long is not alive (`/healthz`).
pub const POLL_STALE_AFTER: Duration = Duration::from_secs(60);

impl WorkerStats {
    /// Liveness: polled Kafka within 60 s (`POLL_STALE_AFTER`) of `now_us`, or not started
    /// polling yet (loading a model may take a while).
    pub fn live(&self, now_us: i64) -> bool {
        let last = self.last_poll_us.load(Ordering::Relaxed);
        last == 0
            || (now_us.max(0) as u64).saturating_sub(last) <= POLL_STALE_AFTER.as_micros() as u64
    }

    /// Readiness: polling (so the model is loaded), a member of the consumer group (an idle
    /// member, with no partitions, is ready: it takes partitions over when another leaves),
    /// and no partition stalled for
    /// `stuck_after` (records wait that the consumer does not return: a batch it cannot
    /// decompress or parse). Slow inputs do not make a worker unready. `Err` says why not.
    pub fn readiness(&self, now_us: i64) -> Result<(), String> {
        if self.last_poll_us.load(Ordering::Relaxed) == 0 {
            return Err("not polling yet".into());
        }
        if !self.live(now_us) {
            return Err("not polling".into());
        }
        if !self.in_group.load(Ordering::Relaxed) {
            return Err(
                "not a member of the consumer group (joining, or the coordinator is unreachable)"
                    .into(),
            );
        }
        match self.stalled_partitions.load(Ordering::Relaxed) {
            0 => Ok(()),
            n => Err(format!(
                "{n} partition(s) whose records the consumer does not return (see argus_worker_partition_stuck)"
            )),
        }
    }
}

/// Errors that stop a worker.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The configuration is inconsistent (the message says what to fix).
    #[error("invalid worker configuration: {0}")]
    Config(String),
    /// The consumer could not subscribe.
    #[error("cannot subscribe to {topics:?}: {source}")]
    Subscribe {
        /// The input topics.
        topics: Vec<String>,
        /// Why.
        #[source]
        source: KafkaError,
    },
    /// The inference threads could not be started.
    #[error("cannot start inference threads: {0}")]
    Threads(#[source] std::io::Error),
    /// Exactly-once: a transaction failed; restart the worker (it resumes from the last
    /// committed transaction), or rejoin with new clients if the group moved on
    /// ([`WorkerError::rejoin`]).
    #[error("transaction failed, restart the worker: {0}")]
    Transaction(TxnError),
    /// The input is not what the configuration says (e.g. the topic to score does not
    /// exist).
    #[error("{0}")]
    Input(String),
    /// A Kafka call failed (`what` says which).
    #[error("{what}: {source}")]
    Kafka {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: KafkaError,
    },
    /// A report file cannot be written.
    #[error("cannot write the report {}: {source}", path.display())]
    Report {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// At-least-once: an input's outputs could not be delivered (e.g. the DLQ refuses
    /// them); its partition cannot commit past it. Restart the worker once the cause is
    /// fixed; the input is redone.
    #[error("stopped: {0}; fix the output topic and restart the worker (the input is redone)")]
    Undeliverable(String),
}

impl WorkerError {
    /// Whether the worker should be run again at once with new clients rather than stop: an
    /// exactly-once transaction the group refused because it moved on while the transaction
    /// was open (a member joined or left). Its outputs were aborted; the new clients rejoin
    /// and redo its inputs from the committed offsets, as a restart would.
    pub fn rejoin(&self) -> bool {
        matches!(self, WorkerError::Transaction(e) if e.group_moved_on())
    }
}

/// A finished input, reported to the loop.
#[derive(Debug)]
struct Report {
    tp: Tp,
    offset: i64,
    outcome: Result<Finished, String>,
}

/// Runs a worker until `shutdown` is cancelled, then drains in-flight work (up to
/// `config.drain_timeout`), stores and commits offsets, and leaves the group.
///
/// Exactly-once (`config.exactly_once`): `producer` must have a `transactional.id` (see
/// [`crate::transactional_id`]) and `consumer` must not auto-commit
/// (`KafkaSettings::transactional_consumer`).
pub async fn run(
    config: WorkerConfig,
    consumer: StreamConsumer<GroupContext>,
    producer: FutureProducer,
    model: Arc<Classifier>,
    stats: Arc<WorkerStats>,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    let models = Models::new(Serving::production(Arc::new(Pipeline::new(model, &config))));
    run_models(config, consumer, producer, models, stats, shutdown).await
}

/// The zone rules' runner when zones are configured; warns when the model serving cannot
/// feed them (not a detector) or their state cannot be rebuilt after a rebalance.
fn zone_runner(
    config: &WorkerConfig,
    models: &Models,
) -> Option<Arc<crate::zone_state::ZoneRunner>> {
    let runner = crate::zone_state::ZoneRunner::new(
        config.zones.clone(),
        &config.topics.predictions,
        &config.worker_id,
    )?;
    let production = models.current().production.clone();
    if production.model().detection_head().is_none() {
        tracing::warn!(model = %production.model().model_ref().name, zones = config.zones.zones.len(), "zones are configured but the model is not a detector: no zone rule will fire");
    }
    if config.zones.history.is_none() {
        tracing::warn!("zone rule state is not rebuilt after a rebalance (no history reader): dwell times and cooldowns start again");
    }
    Some(Arc::new(runner))
}

/// [`run`] on the versions `models` holds, which may be swapped while it runs (see
/// [`crate::models`]; [`crate::follow`] swaps them as the registry says).
pub async fn run_models(
    config: WorkerConfig,
    consumer: StreamConsumer<GroupContext>,
    producer: FutureProducer,
    models: Arc<Models>,
    stats: Arc<WorkerStats>,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    // Every log line of the worker (the commit strategy's and the revoke hook's too) names it.
    let span = tracing::info_span!("worker", id = %config.worker_id);
    // The loop only dispatches events to the [`Worker`].
    async move {
        let mut w = Worker::start(config, consumer, producer, models, stats).await?;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let consumer = w.consumer.clone();
        let ahead_permits = w.shared.ahead_permits.clone();
        let committed = w.committed.clone();
        loop {
            let flow = tokio::select! {
                biased;
                _ = shutdown.cancelled() => ControlFlow::Break(()),
                Some(report) = w.reports.recv() => w.on_report(report),
                _ = committed.notified() => w.on_committed(),
                _ = tick.tick() => w.on_tick(),
                permit = ahead_permits.clone().acquire_owned(), if w.slot.is_none() => {
                    w.slot = permit.ok();
                    ControlFlow::Continue(())
                }
                // Polled whenever there is room, and always while paused: polling keeps the
                // member in the group (max.poll.interval.ms) and serves rebalances.
                msg = consumer.recv(), if w.wants_message() => w.on_message(msg),
            };
            if flow.is_break() {
                break;
            }
            w.backpressure();
        }
        w.drain().await;
        w.finish(shutdown.is_cancelled())
    }
    .instrument(span)
    .await
}

/// One worker's state between events.
struct Worker {
    config: Arc<WorkerConfig>,
    consumer: Arc<StreamConsumer<GroupContext>>,
    producer: FutureProducer,
    stats: Arc<WorkerStats>,
    shared: Shared,
    commits: Commits,
    /// Notified when a background commit finishes (at-least-once).
    committed: Arc<Notify>,
    pressure: Backpressure,
    /// A read-ahead slot acquired for the next message.
    slot: Option<OwnedSemaphorePermit>,
    report_tx: mpsc::UnboundedSender<Report>,
    reports: mpsc::UnboundedReceiver<Report>,
    /// Per input partition, the signal that its latest input has queued its outputs.
    gates: HashMap<Tp, oneshot::Receiver<()>>,
    /// Input tasks spawned and not yet reported.
    outstanding: usize,
    /// Payload bytes of the input tasks spawned and not yet reported.
    held_bytes: Arc<AtomicUsize>,
    /// Deliveries retry until the drain deadline, not merely until shutdown.
    give_up: CancellationToken,
    highs: Highs,
    watermarks: tokio::task::JoinHandle<()>,
    watermarks_stop: CancellationToken,
    drain: DrainSignal,
    last_drain: Instant,
    failure: Option<Stop>,
    /// Consumer errors repeat on every poll while a broker is away: logged once per cause
    /// and window, counted every time.
    consumer_errors: argus_kafka::LogThrottle,
    loop_metrics: m::LoopMetrics,
}

impl Worker {
    /// Validates, initialises transactions (exactly-once), installs the rebalance hooks,
    /// subscribes, calibrates the batch size and starts the inference threads.
    async fn start(
        config: WorkerConfig,
        consumer: StreamConsumer<GroupContext>,
        producer: FutureProducer,
        models: Arc<Models>,
        stats: Arc<WorkerStats>,
    ) -> Result<Worker, WorkerError> {
        let serving = models.current();
        let model = serving.production.model().clone();
        for (_, p) in serving.pipelines() {
            config
                .validate(p.model().labels())
                .map_err(WorkerError::Config)?;
        }
        argus_model::metrics::record_model_info(&model);
        let config = Arc::new(config);
        let tracker = Arc::new(Tracker::new());
        let txn = if config.exactly_once {
            Some(Arc::new(init_transactions(&producer).await?))
        } else {
            None
        };
        install_revoke_hook(&consumer, &tracker, txn.clone());
        {
            let tracker = tracker.clone();
            consumer
                .context()
                .set_commit_hook(Box::new(move |committed| {
                    for (topic, partition, next) in committed {
                        tracker.committed(&(topic.clone(), *partition), *next);
                    }
                }));
        }
        let consumer = Arc::new(consumer);
        let topics: Vec<&str> = config.input_topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|source| WorkerError::Subscribe {
                topics: config.input_topics.clone(),
                source,
            })?;
        let max_batch = calibrate(&model, &config).await;
        let stage = Arc::new(
            InferenceStage::start(
                config.inference_threads,
                BatchPolicy {
                    max_batch,
                    max_wait: config.max_wait,
                    inject_delay: config.inject_delay,
                },
            )
            .map_err(WorkerError::Threads)?,
        );
        let give_up = CancellationToken::new();
        let publisher = Publisher::new(producer.clone(), &config, give_up.clone());
        let committed = Arc::new(Notify::new());
        let commits = match &txn {
            Some(t) => Commits::ExactlyOnce(TxnCommits::new(
                consumer.clone(),
                tracker.clone(),
                t.clone(),
                config.transaction_interval,
            )),
            None => Commits::AtLeastOnce(AckCommits::new(
                consumer.clone(),
                tracker.clone(),
                config.max_in_flight,
                committed.clone(),
            )),
        };
        let zones = zone_runner(&config, &models);
        let shared = Shared {
            models,
            stage,
            publisher,
            tracker,
            txn,
            decode_permits: Arc::new(Semaphore::new(config.decode_threads)),
            // Inputs taken from the consumer and not yet through the model, at most: the
            // worker takes a message only with one of these slots, so a slow model leaves
            // the backlog in librdkafka's (capped) prefetch queue rather than as decoded
            // tensors (0.6 MB each for a 224x224 CNN) or payloads in ours — enough to keep
            // every decode and inference thread fed. Inputs waiting for their outputs' acks
            // hold no slot (`max_in_flight` bounds them).
            ahead_permits: Arc::new(Semaphore::new(
                4 * config.decode_threads + 4 * config.inference_threads * max_batch,
            )),
            zones,
            evidence: config
                .evidence
                .enabled
                .then(|| crate::evidence::EvidencePool::start(&config.evidence)),
        };
        let highs: Highs = Arc::default();
        let watermarks_stop = CancellationToken::new();
        let watermarks = tokio::spawn(watch_watermarks(
            consumer.clone(),
            highs.clone(),
            watermarks_stop.clone(),
        ));
        let (report_tx, reports) = mpsc::unbounded_channel();
        tracing::info!(worker = %config.worker_id, topics = ?config.input_topics, exactly_once = config.exactly_once, max_batch, inference_threads = config.inference_threads, "worker started");
        Ok(Worker {
            pressure: Backpressure::new(
                Load {
                    in_flight: config.max_in_flight,
                    bytes: config.max_in_flight_bytes,
                    uncommitted: config.max_uncommitted,
                },
                config.pause_after,
            ),
            drain: DrainSignal::new(config.stuck_after),
            config,
            consumer,
            producer,
            stats,
            shared,
            commits,
            committed,
            slot: None,
            report_tx,
            reports,
            gates: HashMap::new(),
            outstanding: 0,
            held_bytes: Arc::new(AtomicUsize::new(0)),
            give_up,
            highs,
            watermarks,
            watermarks_stop,
            last_drain: Instant::now(),
            failure: None,
            consumer_errors: argus_kafka::LogThrottle::default(),
            loop_metrics: m::LoopMetrics::new(),
        })
    }

    /// Whether to poll now: while paused always (paused partitions yield nothing, and
    /// polling keeps the member in the group), else when in-flight work has room and a
    /// read-ahead slot is held.
    fn wants_message(&self) -> bool {
        self.pressure.paused() || (self.pressure.taking() && self.slot.is_some())
    }

    fn mark_poll(&self) {
        self.stats
            .last_poll_us
            .store(argus_wire::now_us().max(0) as u64, Ordering::Relaxed);
        self.stats
            .in_group
            .store(self.consumer.context().in_group(), Ordering::Relaxed);
    }

    /// A message (or a consumer error) arrived: start its input task.
    fn on_message(&mut self, msg: Result<BorrowedMessage<'_>, KafkaError>) -> ControlFlow<()> {
        self.mark_poll();
        let msg = match msg {
            Ok(msg) => msg,
            Err(e) => {
                metrics::counter!(m::CONSUMER_ERRORS).increment(1);
                self.consumer.context().note_error(&e);
                if let Some(suppressed) = self.consumer_errors.admit_error(&e) {
                    tracing::warn!(worker = %self.config.worker_id, error = %e, suppressed, "consumer error");
                }
                return ControlFlow::Continue(());
            }
        };
        let job = Job::from_message(&msg);
        drop(msg);
        let tp: Tp = (job.topic.clone(), job.partition);
        let Some(generation) = self.consumer.context().generation(&tp.0, tp.1) else {
            // Revoked between fetch and now; the next owner has it.
            return ControlFlow::Continue(());
        };
        self.stats.consumed.fetch_add(1, Ordering::Relaxed);
        self.loop_metrics.input(&job.topic);
        self.shared
            .tracker
            .start_at(&tp, generation, job.offset, job.timestamp_ms);
        let (then, gate) = oneshot::channel();
        // The partition's gate is replaced in place: its key is cloned only the first time.
        let after = match self.gates.get_mut(&tp) {
            Some(previous) => Some(std::mem::replace(previous, gate)),
            None => self.gates.insert(tp.clone(), gate),
        };
        let (offset, bytes) = (job.offset, job.value.len());
        // Routed here, in offset order: once a partition's input takes a new version, no
        // later input of the partition takes the old one.
        let route = self.shared.models.current().route(job.key.as_deref());
        let input = Input {
            job,
            route,
            generation,
            ahead: self.slot.take(),
            after,
            then,
        };
        let shared = self.shared.clone();
        let report_tx = self.report_tx.clone();
        let held = self.held_bytes.clone();
        self.outstanding += 1;
        held.fetch_add(bytes, Ordering::Relaxed);
        // The job's future is boxed: inline, its state (4.4 kB in a release build; 5.7 kB
        // before the retry, dead-letter and shadow paths were boxed) was copied into the
        // task on spawn and again on completion, for every input (perf on a churn drain:
        // about 3 % of the worker's CPU in those copies).
        tokio::spawn(async move {
            let outcome = match std::panic::AssertUnwindSafe(Box::pin(shared.process(input)))
                .catch_unwind()
                .await
            {
                Ok(r) => r.map_err(|e: Undelivered| e.to_string()),
                Err(_) => Err("job panicked".to_string()),
            };
            held.fetch_sub(bytes, Ordering::Relaxed);
            let _ = report_tx.send(Report {
                tp,
                offset,
                outcome,
            });
        });
        ControlFlow::Continue(())
    }

    /// Input tasks finished: count them (and every other report already waiting) and let
    /// the commit strategy act. An input whose outputs cannot be delivered stops the worker:
    /// its partition could never commit past it, so later inputs would pile up and stall
    /// it; the supervisor restarts it from the last commit and the input is redone.
    fn on_report(&mut self, report: Report) -> ControlFlow<()> {
        let mut undelivered = self.account(report);
        while let Ok(r) = self.reports.try_recv() {
            undelivered = undelivered.or(self.account(r));
        }
        if let Some(e) = undelivered {
            self.failure = Some(
                self.commits
                    .undeliverable(format!("outputs undeliverable: {e}")),
            );
            return ControlFlow::Break(());
        }
        let committed = self.commits.on_finished(self.pressure.paused());
        self.stop_on(committed)
    }

    /// A background commit finished; another may be due.
    fn on_committed(&mut self) -> ControlFlow<()> {
        self.commits.on_committed();
        ControlFlow::Continue(())
    }

    /// Every 100 ms: health stamp, due commits, pause newly assigned partitions while
    /// paused, and the drain signal every second.
    fn on_tick(&mut self) -> ControlFlow<()> {
        self.mark_poll();
        let committed = self.commits.on_tick();
        if self.stop_on(committed).is_break() {
            return ControlFlow::Break(());
        }
        if self.pressure.paused() {
            // Partitions assigned while paused must be paused too.
            if let Ok(a) = self.consumer.assignment() {
                let _ = self.consumer.pause(&a);
            }
        }
        if self.last_drain.elapsed() >= Duration::from_secs(1) {
            self.last_drain = Instant::now();
            // Positions move only while the worker reads: paused, or busy with what it has
            // read (no read-ahead slot), a still position says nothing.
            let reading = !self.pressure.paused() && self.pressure.taking() && self.slot.is_some();
            let stalled = update_drain(
                &self.consumer,
                &self.shared.tracker,
                &self.highs,
                &mut self.drain,
                !reading,
                &self.config.worker_id,
            );
            self.stats
                .stalled_partitions
                .store(stalled as u64, Ordering::Relaxed);
        }
        ControlFlow::Continue(())
    }

    fn stop_on(&mut self, result: Result<(), Stop>) -> ControlFlow<()> {
        match result {
            Ok(()) => ControlFlow::Continue(()),
            Err(stop) => {
                self.failure = Some(stop);
                ControlFlow::Break(())
            }
        }
    }

    /// Applies the backpressure decision for the in-flight work now.
    fn backpressure(&mut self) {
        let load = Load {
            in_flight: self.shared.tracker.in_flight(),
            bytes: self.held_bytes.load(Ordering::Relaxed),
            uncommitted: self.shared.tracker.uncommitted_window(),
        };
        let in_flight = load.in_flight;
        self.loop_metrics.in_flight.set(in_flight as f64);
        self.loop_metrics.in_flight_bytes.set(load.bytes as f64);
        self.loop_metrics.uncommitted.set(load.uncommitted as f64);
        match self.pressure.decide(Instant::now(), load) {
            Action::Keep => {}
            Action::Resume => {
                if let Ok(a) = self.consumer.assignment() {
                    if self.consumer.resume(&a).is_ok() {
                        self.pressure.did_resume();
                        metrics::gauge!(m::PAUSED).set(0.0);
                        tracing::info!(worker = %self.config.worker_id, in_flight, "partitions resumed");
                    }
                }
            }
            Action::Pause => {
                if let Ok(a) = self.consumer.assignment() {
                    if self.consumer.pause(&a).is_ok() {
                        self.pressure.did_pause();
                        self.stats.pauses.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!(m::PAUSES).increment(1);
                        metrics::gauge!(m::PAUSED).set(1.0);
                        tracing::info!(worker = %self.config.worker_id, in_flight, "in-flight work full; partitions paused, polling continues");
                    }
                }
            }
        }
    }

    /// Counts a finished input; returns the error if its outputs could not be delivered.
    fn account(&mut self, report: Report) -> Option<String> {
        self.outstanding -= 1;
        account(report, &self.stats)
    }

    /// Waits for the input tasks still running (up to the drain deadline; none after a
    /// failure), committing as the strategy says meanwhile.
    async fn drain(&mut self) {
        tracing::info!(worker = %self.config.worker_id, in_flight = self.shared.tracker.in_flight(), "draining");
        if self.pressure.paused() {
            if let Ok(a) = self.consumer.assignment() {
                let _ = self.consumer.resume(&a);
            }
        }
        let deadline = tokio::time::sleep(if self.failure.is_some() {
            Duration::ZERO
        } else {
            self.config.drain_timeout
        });
        tokio::pin!(deadline);
        let drain_interval = self.commits.drain_interval();
        let mut drain_tick =
            tokio::time::interval(drain_interval.unwrap_or(Duration::from_secs(3600)));
        while self.outstanding > 0 {
            tokio::select! {
                Some(report) = self.reports.recv() => {
                    if let Some(e) = self.account(report) {
                        // Exactly-once: the open transaction cannot commit any more.
                        let _ = self.commits.undeliverable(format!("outputs undeliverable: {e}"));
                    }
                    self.commits.on_drained();
                }
                _ = drain_tick.tick(), if drain_interval.is_some() && self.failure.is_none() => {
                    if let Err(stop) = self.commits.on_drain_tick() {
                        self.failure = Some(stop);
                        self.give_up.cancel();
                        break;
                    }
                }
                _ = &mut deadline => {
                    tracing::warn!(worker = %self.config.worker_id, abandoned = self.outstanding, "drain deadline passed; abandoned inputs will be redelivered");
                    self.give_up.cancel();
                    break;
                }
            }
        }
        // The watermark task holds the consumer: let it finish (≤ one fetch) so the
        // consumer is gone when `run` returns.
        self.watermarks_stop.cancel();
        let _ = (&mut self.watermarks).await;
        metrics::gauge!(m::IN_FLIGHT).set(0.0);
    }

    /// The last commit, producer flush, leaving the group. `stopping`: asked to stop.
    fn finish(mut self, stopping: bool) -> Result<(), WorkerError> {
        let result = self.commits.finish(self.failure.take(), stopping);
        if let Err(e) = self.producer.flush(Duration::from_secs(10)) {
            tracing::warn!(worker = %self.config.worker_id, error = %e, "producer flush failed");
        }
        self.consumer.unsubscribe();
        tracing::info!(worker = %self.config.worker_id, consumed = self.stats.consumed.load(Ordering::Relaxed), "worker stopped");
        result
    }
}

/// Initialises transactions on the blocking pool.
async fn init_transactions(producer: &FutureProducer) -> Result<Transactions, WorkerError> {
    let p = producer.clone();
    let init = |detail: String| {
        WorkerError::Transaction(TxnError {
            kind: TxnErrorKind::Broker,
            detail,
        })
    };
    tokio::task::spawn_blocking(move || Transactions::init(p, Duration::from_secs(30)))
        .await
        .map_err(|e| init(format!("init task failed: {e}")))?
        .map_err(|e| {
            WorkerError::Transaction(TxnError::kafka(
                "cannot initialise transactions (is the producer transactional, and is the \
                 worker id unique in the group?)",
                &e,
            ))
        })
}

/// Batches only as large as pay off on this engine and machine (measured now); a model
/// that cannot batch runs batch 1 rather than failing every batch.
async fn calibrate(model: &Arc<Classifier>, config: &WorkerConfig) -> usize {
    let limit = config.max_batch;
    let chosen = if limit > 1 {
        let m = model.clone();
        let calibrated = tokio::task::spawn_blocking(move || {
            let (best, measured) = m.best_batch(limit, 3);
            m.limit_batch(best);
            (best, measured)
        })
        .await;
        match calibrated {
            Ok((best, measured)) => {
                let per_input: Vec<String> = measured
                    .iter()
                    .map(|(b, us)| format!("{b}:{us:.0}us"))
                    .collect();
                tracing::info!(worker = %config.worker_id, configured = limit, chosen = best, per_input = %per_input.join(" "), "batch size calibrated");
                best
            }
            Err(e) => {
                tracing::warn!(worker = %config.worker_id, error = %e, "batch calibration failed; running one input per call");
                1
            }
        }
    } else {
        limit
    };
    metrics::gauge!(m::MAX_BATCH).set(chosen as f64);
    chosen
}

/// Counts a finished input in `stats`; returns the error if its outputs could not be
/// delivered.
fn account(report: Report, stats: &WorkerStats) -> Option<String> {
    let Report {
        tp: (topic, partition),
        offset,
        outcome,
    } = report;
    match outcome {
        Ok(Finished::Predicted { alerts }) => {
            stats.predicted.fetch_add(1, Ordering::Relaxed);
            stats.alerts.fetch_add(alerts as u64, Ordering::Relaxed);
        }
        Ok(Finished::Stale) => {
            stats.stale.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(m::STALE).increment(1);
        }
        Ok(Finished::DeadLettered(_)) => {
            stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Finished::Abandoned) => {
            stats.abandoned.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            stats.undelivered.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(m::OFFSET_STORE_FAILURES).increment(1);
            tracing::error!(topic = %topic, partition, offset, error = %e, "outputs undeliverable; no later offset of this partition is committed");
            return Some(format!("{topic}/{partition}/{offset}: {e}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcome: Result<Finished, String>) -> Report {
        Report {
            tp: ("in".into(), 3),
            offset: 42,
            outcome,
        }
    }

    #[test]
    fn reports_are_counted_by_what_became_of_the_input() {
        let stats = WorkerStats::default();
        assert_eq!(
            account(report(Ok(Finished::Predicted { alerts: 2 })), &stats),
            None
        );
        assert_eq!(account(report(Ok(Finished::Stale)), &stats), None);
        assert_eq!(
            account(
                report(Ok(Finished::DeadLettered(argus_wire::FailureKind::Decode))),
                &stats
            ),
            None
        );
        assert_eq!(account(report(Ok(Finished::Abandoned)), &stats), None);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        assert_eq!(
            [
                load(&stats.predicted),
                load(&stats.alerts),
                load(&stats.stale),
                load(&stats.dead_lettered),
                load(&stats.abandoned),
                load(&stats.undelivered)
            ],
            [1, 2, 1, 1, 1, 0]
        );
    }

    #[test]
    fn an_undeliverable_input_names_itself_and_stops_the_worker() {
        let stats = WorkerStats::default();
        let e = account(report(Err("dlq refused".into())), &stats);
        assert_eq!(e.as_deref(), Some("in/3/42: dlq refused"));
        assert_eq!(stats.undelivered.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn only_a_group_that_moved_on_rejoins() {
        let moved = WorkerError::Transaction(TxnError {
            kind: TxnErrorKind::GroupMovedOn,
            detail: "x".into(),
        });
        assert!(moved.rejoin());
        for kind in [
            TxnErrorKind::Fenced,
            TxnErrorKind::Broker,
            TxnErrorKind::Outputs,
        ] {
            let e = WorkerError::Transaction(TxnError {
                kind,
                detail: "Specified group generation id is not valid".into(),
            });
            assert!(!e.rejoin(), "{kind:?}");
        }
        assert!(!WorkerError::Undeliverable("x".into()).rejoin());
    }
}
