//! The worker loop. See the crate docs for the offset rule.
use crate::config::WorkerConfig;
use crate::drain::{DrainSignal, PartitionInputs};
use crate::infer::{BatchPolicy, InferenceStage};
use crate::job::{prepare, Classified, Failure, Job, Prepare};
use crate::metrics as m;
use crate::publish::{Finished, Outcome, Publisher, Undelivered};
use crate::tracker::{Tp, Tracker};
use crate::txn::Transactions;
use argus_kafka::rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use argus_kafka::rdkafka::producer::{FutureProducer, Producer};
use argus_kafka::rdkafka::{Offset, TopicPartitionList};
use argus_kafka::GroupContext;
use argus_model::Classifier;
use argus_wire::FailureKind;
use futures::FutureExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;

/// Live counters of one worker (shared with the caller, e.g. the demo's summary).
#[derive(Debug, Default)]
pub struct WorkerStats {
    pub consumed: AtomicU64,
    pub predicted: AtomicU64,
    pub alerts: AtomicU64,
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
}

/// Errors that stop a worker.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("invalid worker configuration: {0}")]
    Config(String),
    #[error("cannot subscribe to {topics:?}: {source}")]
    Subscribe {
        topics: Vec<String>,
        #[source]
        source: argus_kafka::rdkafka::error::KafkaError,
    },
    #[error("cannot start inference threads: {0}")]
    Threads(#[source] std::io::Error),
    /// Exactly-once: a transaction failed; restart the worker (it resumes from the last
    /// committed transaction).
    #[error("transaction failed, restart the worker: {0}")]
    Transaction(String),
    /// At-least-once: an input's outputs could not be delivered (e.g. the DLQ refuses
    /// them); its partition cannot commit past it. Restart the worker once the cause is
    /// fixed; the input is redone.
    #[error("stopped: {0}; fix the output topic and restart the worker (the input is redone)")]
    Undeliverable(String),
}

/// A finished job, reported to the loop.
struct Report {
    tp: Tp,
    offset: i64,
    outcome: Result<Finished, String>,
}

/// How long a revoke waits for outputs already handed to the producer. The wait blocks the
/// polling thread, and the jobs it waits for need a runtime thread: run each worker's loop
/// on its own thread (as `argus work` does) or give the runtime a spare worker thread per
/// worker running in it.
const REVOKE_GRACE: Duration = Duration::from_secs(2);

/// Runs a worker until `shutdown` is cancelled, then drains in-flight work (up to
/// `config.drain_timeout`), stores and commits offsets, and leaves the group.
///
/// Exactly-once (`config.exactly_once`): `producer` must have a `transactional.id` (see
/// [`crate::txn::transactional_id`]) and `consumer` must not auto-commit
/// (`KafkaSettings::transactional_consumer`).
pub async fn run(
    config: WorkerConfig,
    consumer: StreamConsumer<GroupContext>,
    producer: FutureProducer,
    model: Arc<Classifier>,
    stats: Arc<WorkerStats>,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    config
        .validate(model.labels())
        .map_err(WorkerError::Config)?;
    let config = Arc::new(config);
    let tracker = Arc::new(Tracker::new());
    let txn = if config.exactly_once {
        let p = producer.clone();
        let t = tokio::task::spawn_blocking(move || Transactions::init(p, Duration::from_secs(30)))
            .await
            .map_err(|e| WorkerError::Transaction(format!("init task failed: {e}")))?
            .map_err(|e| {
                WorkerError::Transaction(format!(
                    "cannot initialise transactions (is the producer transactional, and is the \
                 worker id unique in the group?): {e}"
                ))
            })?;
        Some(Arc::new(t))
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
    // Batches only as large as pay off on this engine and machine (measured now); a model
    // that cannot batch runs batch 1 rather than failing every batch.
    let mut max_batch = config.max_batch;
    if max_batch > 1 {
        let m = model.clone();
        let limit = max_batch;
        let calibrated = tokio::task::spawn_blocking(move || {
            let (best, measured) = m.best_batch(limit, 3);
            m.limit_batch(best);
            (best, measured)
        })
        .await;
        max_batch = match calibrated {
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
        };
    }
    metrics::gauge!(m::MAX_BATCH).set(max_batch as f64);
    let stage = Arc::new(
        InferenceStage::start(
            model.clone(),
            config.inference_threads,
            BatchPolicy {
                max_batch,
                max_wait: config.max_wait,
                inject_delay: config.inject_delay,
            },
        )
        .map_err(WorkerError::Threads)?,
    );
    // Deliveries keep retrying until the drain deadline, not merely until shutdown.
    let give_up = CancellationToken::new();
    let publisher = Publisher::new(
        producer.clone(),
        config.clone(),
        &model,
        give_up.clone(),
        tracker.clone(),
        txn.clone(),
    );
    let decode_permits = Arc::new(Semaphore::new(config.decode_threads));
    // Payload bytes of the jobs spawned and not yet reported.
    let held_bytes = Arc::new(AtomicUsize::new(0));
    // Inputs taken from the consumer and not yet through the model, at most: the worker
    // takes a message only with one of these slots, so a slow model leaves the backlog in
    // librdkafka's (capped) prefetch queue rather than as decoded tensors (0.6 MB each for
    // a 224x224 CNN) or payloads in ours — enough to keep every decode and inference thread
    // fed. Inputs waiting for their outputs' acks hold no slot (`max_in_flight` bounds them).
    let ahead_permits = Arc::new(Semaphore::new(
        4 * config.decode_threads + 4 * config.inference_threads * max_batch,
    ));
    // A slot acquired for the next message.
    let mut slot: Option<tokio::sync::OwnedSemaphorePermit> = None;
    let (report_tx, mut reports) = mpsc::unbounded_channel::<Report>();
    // Per input partition, the signal that the latest job has queued its outputs.
    let mut gates: HashMap<Tp, oneshot::Receiver<()>> = HashMap::new();
    let highs: Arc<Mutex<HashMap<Tp, Watermarks>>> = Arc::default();
    let watermarks_stop = shutdown.child_token();
    let watermarks = tokio::spawn(watch_watermarks(
        consumer.clone(),
        highs.clone(),
        watermarks_stop.clone(),
    ));
    let mut drain = DrainSignal::new(config.stuck_after);
    let mut paused = false;
    // Since when in-flight work has been full (not paused yet).
    let mut full_since: Option<Instant> = None;
    let mut last_commit = Instant::now();
    let committing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let committed = Arc::new(tokio::sync::Notify::new());
    let mut last_drain = Instant::now();
    tracing::info!(worker = %config.worker_id, topics = ?config.input_topics, exactly_once = config.exactly_once, max_batch, inference_threads = config.inference_threads, "worker started");

    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failure = None;
    // Jobs spawned and not yet reported.
    let mut outstanding: usize = 0;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(report) = reports.recv() => {
                let mut undelivered = account(report, &stats);
                outstanding -= 1;
                while let Ok(r) = reports.try_recv() {
                    undelivered = undelivered.or(account(r, &stats));
                    outstanding -= 1;
                }
                if let Some(e) = undelivered {
                    // The partition can never commit past this input, so its later inputs
                    // would pile up and stall the worker: stop instead, and let the
                    // supervisor restart it from the last commit (the input is redone).
                    if let Some(t) = &txn {
                        t.fail(format!("outputs undeliverable: {e}"));
                    }
                    failure = Some(format!("outputs undeliverable: {e}"));
                    break;
                }
                if txn.is_none() {
                    store_finished(&consumer, &tracker);
                    maybe_commit(&consumer, &tracker, &mut last_commit, &committing, &committed, config.max_in_flight);
                } else if paused {
                    // Finished inputs stay in flight until committed: commit now.
                    if let Err(e) = commit_txn(&consumer, &tracker, txn.as_deref()) {
                        failure = Some(e);
                        break;
                    }
                    last_commit = Instant::now();
                }
            }
            _ = committed.notified() => {
                // A commit finished; maybe another is due.
                if txn.is_none() {
                    maybe_commit(&consumer, &tracker, &mut last_commit, &committing, &committed, config.max_in_flight);
                }
            }
            _ = tick.tick() => {
                stats.last_poll_us.store(argus_wire::now_us().max(0) as u64, Ordering::Relaxed);
                if txn.is_none() {
                    maybe_commit(&consumer, &tracker, &mut last_commit, &committing, &committed, config.max_in_flight);
                }
                if let Some(t) = &txn {
                    if let Some(reason) = t.failure() {
                        failure = Some(reason);
                        break;
                    }
                    if last_commit.elapsed() >= config.transaction_interval {
                        if let Err(e) = commit_txn(&consumer, &tracker, Some(t)) {
                            failure = Some(e);
                            break;
                        }
                        last_commit = Instant::now();
                    }
                }
                if paused {
                    // Partitions assigned while paused must be paused too.
                    if let Ok(a) = consumer.assignment() {
                        let _ = consumer.pause(&a);
                    }
                }
                if last_drain.elapsed() >= Duration::from_secs(1) {
                    last_drain = Instant::now();
                    update_drain(&consumer, &tracker, &highs, &mut drain);
                }
            }
            // Polled whenever there is room, and always while paused: polling keeps the
            // member in the group (max.poll.interval.ms) and serves rebalances.
            permit = ahead_permits.clone().acquire_owned(), if slot.is_none() => {
                slot = permit.ok();
            }
            msg = consumer.recv(), if paused || (full_since.is_none() && slot.is_some()) => {
                stats.last_poll_us.store(argus_wire::now_us().max(0) as u64, Ordering::Relaxed);
                match msg {
                    Ok(msg) => {
                        let job = Job::from_message(&msg);
                        drop(msg);
                        let tp: Tp = (job.topic.clone(), job.partition);
                        let Some(generation) = consumer.context().generation(&tp.0, tp.1) else {
                            // Revoked between fetch and now; the next owner has it.
                            continue;
                        };
                        stats.consumed.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!(m::INPUTS, "topic" => job.topic.clone()).increment(1);
                        tracker.start_at(&tp, generation, job.offset, job.timestamp_ms);
                        let (then, gate) = oneshot::channel();
                        let after = gates.insert(tp.clone(), gate);
                        let offset = job.offset;
                        let bytes = job.value.len();
                        let task = process(ProcessArgs {
                            job,
                            generation,
                            model: model.clone(),
                            stage: stage.clone(),
                            publisher: publisher.clone(),
                            decode_permits: decode_permits.clone(),
                            ahead: slot.take(),
                            ahead_permits: ahead_permits.clone(),
                            config: config.clone(),
                            after,
                            then,
                        });
                        let report_tx = report_tx.clone();
                        outstanding += 1;
                        held_bytes.fetch_add(bytes, Ordering::Relaxed);
                        let held = held_bytes.clone();
                        tokio::spawn(async move {
                            let outcome = match std::panic::AssertUnwindSafe(task).catch_unwind().await {
                                Ok(r) => r.map_err(|e: Undelivered| e.to_string()),
                                Err(_) => Err("job panicked".to_string()),
                            };
                            held.fetch_sub(bytes, Ordering::Relaxed);
                            let _ = report_tx.send(Report { tp, offset, outcome });
                        });
                    }
                    Err(e) => {
                        metrics::counter!(m::CONSUMER_ERRORS).increment(1);
                        tracing::warn!(worker = %config.worker_id, error = %e, "consumer error");
                    }
                }
            }
        }
        // Backpressure. Full for a moment: take no more messages. Full for longer than
        // `pause_after` (a slow model, a stalled output): pause every assigned partition
        // and keep polling, so the member stays in the group however long the stall lasts.
        // Resume once half the in-flight work has finished. (Pausing drops librdkafka's
        // prefetched messages and resuming refetches them, which costs up to a second, so
        // short stalls are better ridden out without it.)
        let in_flight = tracker.in_flight();
        let bytes = held_bytes.load(Ordering::Relaxed);
        metrics::gauge!(m::IN_FLIGHT).set(in_flight as f64);
        metrics::gauge!(m::IN_FLIGHT_BYTES).set(bytes as f64);
        if paused {
            if in_flight <= config.max_in_flight / 2 && bytes <= config.max_in_flight_bytes / 2 {
                if let Ok(a) = consumer.assignment() {
                    if consumer.resume(&a).is_ok() {
                        paused = false;
                        full_since = None;
                        metrics::gauge!(m::PAUSED).set(0.0);
                        tracing::info!(worker = %config.worker_id, in_flight, "partitions resumed");
                    }
                }
            }
        } else if in_flight >= config.max_in_flight || bytes >= config.max_in_flight_bytes {
            let since = *full_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= config.pause_after {
                if let Ok(a) = consumer.assignment() {
                    if consumer.pause(&a).is_ok() {
                        paused = true;
                        stats.pauses.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!(m::PAUSES).increment(1);
                        metrics::gauge!(m::PAUSED).set(1.0);
                        tracing::info!(worker = %config.worker_id, in_flight, "in-flight work full; partitions paused, polling continues");
                    }
                }
            }
        } else {
            full_since = None;
        }
    }

    tracing::info!(worker = %config.worker_id, in_flight = tracker.in_flight(), "draining");
    if paused {
        if let Ok(a) = consumer.assignment() {
            let _ = consumer.resume(&a);
        }
    }
    let deadline = tokio::time::sleep(if failure.is_some() {
        Duration::ZERO
    } else {
        config.drain_timeout
    });
    tokio::pin!(deadline);
    let mut drain_tick =
        tokio::time::interval(config.transaction_interval.max(Duration::from_millis(10)));
    while outstanding > 0 {
        tokio::select! {
            Some(report) = reports.recv() => {
                if let Some(e) = account(report, &stats) {
                    if let Some(t) = &txn {
                        t.fail(format!("outputs undeliverable: {e}"));
                    }
                }
                outstanding -= 1;
                if txn.is_none() {
                    store_finished(&consumer, &tracker);
                }
            }
            // Exactly-once: keep committing while draining, so a long drain does not
            // outlive transaction.timeout.ms.
            _ = drain_tick.tick(), if txn.is_some() && failure.is_none() => {
                if let Err(e) = commit_txn(&consumer, &tracker, txn.as_deref()) {
                    failure = Some(e);
                    give_up.cancel();
                    break;
                }
            }
            _ = &mut deadline => {
                tracing::warn!(worker = %config.worker_id, abandoned = outstanding, "drain deadline passed; abandoned inputs will be redelivered");
                give_up.cancel();
                break;
            }
        }
    }
    // The watermark task holds the consumer: let it finish (≤ one fetch) so the consumer
    // is gone when `run` returns.
    watermarks_stop.cancel();
    let _ = watermarks.await;
    metrics::gauge!(m::IN_FLIGHT).set(0.0);
    let result = if let Some(t) = &txn {
        let r = match failure.map_or_else(|| commit_txn(&consumer, &tracker, Some(t)), Err) {
            Ok(()) => Ok(()),
            Err(reason) => {
                t.abort();
                if shutdown.is_cancelled() && group_moved_on(&reason) {
                    // Stopping while other members come and go: the group took the
                    // partitions before the last commit. Its outputs are aborted (never
                    // visible) and the next owners redo those inputs: a clean stop.
                    tracing::warn!(worker = %config.worker_id, error = %reason, "last transaction aborted: the group moved on while this worker was stopping; the next owners redo its inputs");
                    Ok(())
                } else {
                    Err(WorkerError::Transaction(reason))
                }
            }
        };
        if r.is_ok() {
            tracing::info!(worker = %config.worker_id, "final transaction committed");
        }
        r
    } else {
        store_finished(&consumer, &tracker);
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => tracing::info!(worker = %config.worker_id, "offsets committed"),
            // Everything stored was already committed in the background.
            Err(argus_kafka::rdkafka::error::KafkaError::ConsumerCommit(
                argus_kafka::rdkafka::types::RDKafkaErrorCode::NoOffset,
            )) => tracing::info!(worker = %config.worker_id, "offsets already committed"),
            Err(e) => {
                tracing::warn!(worker = %config.worker_id, error = %e, "final commit failed")
            }
        }
        match failure {
            Some(reason) => Err(WorkerError::Undeliverable(reason)),
            None => Ok(()),
        }
    };
    if let Err(e) = producer.flush(Duration::from_secs(10)) {
        tracing::warn!(worker = %config.worker_id, error = %e, "producer flush failed");
    }
    consumer.unsubscribe();
    tracing::info!(worker = %config.worker_id, consumed = stats.consumed.load(Ordering::Relaxed), "worker stopped");
    result
}

/// Whether a transaction failed because the consumer group had already moved on (a
/// rebalance fenced this member's generation), rather than for a broker or data problem.
pub fn group_moved_on(reason: &str) -> bool {
    [
        "generation id is not valid",
        "IllegalGeneration",
        "member id is not valid",
        "UnknownMemberId",
        "rebalance in progress",
        "RebalanceInProgress",
    ]
    .iter()
    .any(|s| reason.contains(s))
}

/// On revoke: stop new outputs for the revoked partitions, wait briefly for outputs already
/// handed over, then store (or transactionally commit) what finished contiguously.
fn install_revoke_hook(
    consumer: &StreamConsumer<GroupContext>,
    tracker: &Arc<Tracker>,
    txn: Option<Arc<Transactions>>,
) {
    let tracker = tracker.clone();
    consumer
        .context()
        .set_revoke_hook(Box::new(move |revoked, base, group| {
            let tps: Vec<Tp> = revoked.to_vec();
            let abandoned = match &txn {
                Some(t) => match t.revoke_and_commit(&tracker, &tps, group.as_ref()) {
                    Ok(abandoned) => abandoned,
                    Err(e) => {
                        tracing::error!(error = %e, "transaction commit on revoke failed; the worker stops");
                        0
                    }
                },
                None => {
                    let (finished, abandoned) = tracker.revoke(&tps, REVOKE_GRACE);
                    for ((topic, partition), next) in finished {
                        // `store_offset` stores offset + 1.
                        if let Err(e) = base.store_offset(&topic, partition, next - 1) {
                            metrics::counter!(m::OFFSET_STORE_FAILURES).increment(1);
                            tracing::warn!(topic = %topic, partition, error = %e, "offset not stored on revoke");
                        }
                    }
                    abandoned
                }
            };
            if abandoned > 0 {
                metrics::counter!(m::ABANDONED).increment(abandoned as u64);
                tracing::info!(abandoned, "in-flight inputs of revoked partitions abandoned; their next owner redoes them");
            }
        }));
}

/// Counts a finished job; returns the error if its outputs could not be delivered.
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

/// Stores, per partition, the offset after its contiguous finished prefix.
fn store_finished(consumer: &StreamConsumer<GroupContext>, tracker: &Tracker) {
    for ((topic, partition), next) in tracker.advance_all() {
        // `store_offset` stores offset + 1. Fails if the partition was revoked meanwhile:
        // the next owner redoes those inputs.
        if let Err(e) = consumer.store_offset(&topic, partition, next - 1) {
            metrics::counter!(m::OFFSET_STORE_FAILURES).increment(1);
            tracing::debug!(topic = %topic, partition, error = %e, "offset not stored");
        }
    }
}

/// At-least-once: commits finished offsets every 100 ms, or sooner when a quarter of the
/// in-flight bound is finished but uncommitted. Finished inputs count as in flight until
/// the commit is confirmed, so a crash redoes at most `max_in_flight` inputs. One commit
/// at a time, synchronous on the blocking pool, with explicit offsets: its result is the
/// confirmation (librdkafka skips re-committing offsets it believes committed, so its
/// commit callbacks alone cannot confirm everything).
fn maybe_commit(
    consumer: &Arc<StreamConsumer<GroupContext>>,
    tracker: &Arc<Tracker>,
    last_commit: &mut Instant,
    committing: &Arc<std::sync::atomic::AtomicBool>,
    committed: &Arc<tokio::sync::Notify>,
    max_in_flight: usize,
) {
    let uncommitted = tracker.uncommitted();
    if uncommitted == 0 || committing.load(Ordering::Acquire) {
        return;
    }
    let since = last_commit.elapsed();
    let due = since >= Duration::from_millis(100)
        || (uncommitted as usize >= (max_in_flight / 4).max(1)
            && since >= Duration::from_millis(5));
    if !due {
        return;
    }
    let points = tracker.commit_points();
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), next) in &points {
        if tpl
            .add_partition_offset(topic, *partition, Offset::Offset(*next))
            .is_err()
        {
            return;
        }
    }
    *last_commit = Instant::now();
    committing.store(true, Ordering::Release);
    let (consumer, tracker, committing, committed) = (
        consumer.clone(),
        tracker.clone(),
        committing.clone(),
        committed.clone(),
    );
    tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        let result = consumer.commit(&tpl, CommitMode::Sync);
        metrics::histogram!(m::COMMIT_SECONDS).record(t.elapsed().as_secs_f64());
        tracing::trace!(ms = t.elapsed().as_secs_f64() * 1e3, "offsets committed");
        match result {
            Ok(()) => {
                for (tp, next) in &points {
                    tracker.committed(tp, *next);
                }
            }
            Err(e) => {
                metrics::counter!(argus_kafka::metrics::COMMIT_FAILURES).increment(1);
                tracing::warn!(error = %e, "offset commit failed; retrying");
            }
        }
        committing.store(false, Ordering::Release);
        // In-flight room may have opened: wake the loop.
        committed.notify_one();
    });
}

fn commit_txn(
    consumer: &StreamConsumer<GroupContext>,
    tracker: &Tracker,
    txn: Option<&Transactions>,
) -> Result<(), String> {
    let Some(t) = txn else { return Ok(()) };
    t.commit(tracker, Vec::new(), consumer.group_metadata().as_ref())
        .map(|_| ())
}

fn update_drain(
    consumer: &StreamConsumer<GroupContext>,
    tracker: &Tracker,
    highs: &Mutex<HashMap<Tp, Watermarks>>,
    drain: &mut DrainSignal,
) {
    let Ok(positions) = consumer.position() else {
        return;
    };
    let highs = highs.lock().map(|h| h.clone()).unwrap_or_default();
    let assigned: HashMap<Tp, PartitionInputs> = positions
        .elements()
        .iter()
        .map(|e| {
            let tp = (e.topic().to_string(), e.partition());
            let position = match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            };
            let w = highs.get(&tp);
            let inputs = PartitionInputs {
                position,
                high: w.map(|w| (w.high, w.at)),
                start: w.and_then(|w| w.committed.or(Some(w.low))),
            };
            (tp, inputs)
        })
        .collect();
    let signals = drain.update(
        Instant::now(),
        argus_wire::now_us() / 1000,
        &assigned,
        &tracker.snapshot(),
    );
    drain.publish(&signals);
}

/// What the broker said about one partition.
#[derive(Debug, Clone, Copy)]
struct Watermarks {
    low: i64,
    high: i64,
    /// The group's committed offset, if any.
    committed: Option<i64>,
    at: Instant,
}

/// Keeps the watermarks and committed offsets of the assigned partitions fresh (every 2 s);
/// cached values from fetches would go stale while partitions are paused.
async fn watch_watermarks(
    consumer: Arc<StreamConsumer<GroupContext>>,
    highs: Arc<Mutex<HashMap<Tp, Watermarks>>>,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let consumer = consumer.clone();
        let stop = shutdown.clone();
        let fetched = tokio::task::spawn_blocking(move || {
            let committed: HashMap<Tp, i64> = consumer
                .committed(Duration::from_secs(1))
                .map(|tpl| {
                    tpl.elements()
                        .iter()
                        .filter_map(|e| match e.offset() {
                            Offset::Offset(o) => Some(((e.topic().to_string(), e.partition()), o)),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            let assigned: Vec<Tp> = consumer
                .assignment()
                .map(|a: TopicPartitionList| {
                    a.elements()
                        .iter()
                        .map(|e| (e.topic().to_string(), e.partition()))
                        .collect()
                })
                .unwrap_or_default();
            assigned
                .into_iter()
                .take_while(|_| !stop.is_cancelled())
                .map(|(t, p)| {
                    let w = consumer
                        .fetch_watermarks(&t, p, Duration::from_secs(1))
                        .ok()
                        .filter(|(_, high)| *high >= 0)
                        .map(|(low, high)| Watermarks {
                            low,
                            high,
                            committed: committed.get(&(t.clone(), p)).copied(),
                            at: Instant::now(),
                        });
                    ((t, p), w)
                })
                .collect::<Vec<(Tp, Option<Watermarks>)>>()
        })
        .await;
        if let (Ok(fetched), Ok(mut h)) = (fetched, highs.lock()) {
            // Keep the last known value when a fetch failed; forget revoked partitions.
            let assigned: std::collections::HashSet<&Tp> =
                fetched.iter().map(|(tp, _)| tp).collect();
            h.retain(|tp, _| assigned.contains(tp));
            for (tp, w) in &fetched {
                if let Some(w) = w {
                    h.insert(tp.clone(), *w);
                }
            }
        }
    }
}

struct ProcessArgs {
    job: Job,
    generation: u64,
    model: Arc<Classifier>,
    stage: Arc<InferenceStage>,
    publisher: Publisher,
    decode_permits: Arc<Semaphore>,
    /// The slot the main loop took this input with (none if it came while paused).
    ahead: Option<tokio::sync::OwnedSemaphorePermit>,
    ahead_permits: Arc<Semaphore>,
    config: Arc<WorkerConfig>,
    after: Option<oneshot::Receiver<()>>,
    then: oneshot::Sender<()>,
}

/// One input: decode and preprocess on the bounded blocking pool, infer on the batching
/// stage, publish in partition order.
async fn process(a: ProcessArgs) -> Result<Finished, Undelivered> {
    let ProcessArgs {
        job,
        generation,
        model,
        stage,
        publisher,
        decode_permits,
        ahead,
        ahead_permits,
        config,
        after,
        then,
    } = a;
    // Held from before decoding until the model has run.
    let ahead = match ahead {
        Some(p) => Ok(p),
        None => ahead_permits.acquire_owned().await,
    };
    let prepared = if model.cheap_to_prepare() {
        // Records: a few µs of envelope decoding and feature assembly, less than handing
        // them to a blocking thread would cost (profile of a churn drain: thread hand-offs
        // were the largest cost per record).
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            prepare(&job, &model, config.max_input_bytes, config.max_age)
        }))
        .unwrap_or_else(|_| {
            Prepare::Failed(Failure {
                kind: FailureKind::Model,
                detail: "preparing the record panicked".into(),
            })
        })
    } else {
        let _permit = decode_permits.acquire_owned().await;
        let job = job.clone();
        let (max_bytes, max_age) = (config.max_input_bytes, config.max_age);
        tokio::task::spawn_blocking(move || prepare(&job, &model, max_bytes, max_age))
            .await
            .unwrap_or_else(|e| {
                Prepare::Failed(Failure {
                    kind: FailureKind::Model,
                    detail: format!("decode task failed: {e}"),
                })
            })
    };
    let outcome = match prepared {
        Prepare::Ready(ready) => match stage.submit(ready.prepared).await {
            Ok(Ok(classification)) => {
                let t = classification.timings;
                let total = t.decode_us
                    + ready.envelope_us
                    + t.preprocess_us
                    + t.inference_us
                    + t.postprocess_us;
                metrics::histogram!(m::PROCESSING_SECONDS).record(total as f64 / 1e6);
                Outcome::Classified(Classified {
                    envelope: ready.envelope,
                    classification,
                    queue_us: ready.queue_us,
                    envelope_us: ready.envelope_us,
                })
            }
            Ok(Err(f)) => Outcome::Failed(f),
            Err(_) => Outcome::Failed(Failure {
                kind: FailureKind::Model,
                detail: "inference stage stopped".into(),
            }),
        },
        Prepare::Stale(stale) => Outcome::Stale(stale),
        Prepare::Failed(f) => Outcome::Failed(f),
    };
    drop(ahead);
    publisher
        .publish(&job, generation, outcome, after, then)
        .await
}
