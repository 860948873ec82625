//! The worker loop. See the crate docs for the offset rule.
use crate::config::WorkerConfig;
use crate::job::{classify, Job};
use crate::metrics as m;
use crate::publish::{Finished, Publisher, Undelivered};
use argus_kafka::rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use argus_kafka::rdkafka::producer::{FutureProducer, Producer};
use argus_kafka::GroupContext;
use argus_model::Classifier;
use futures::stream::{FuturesOrdered, StreamExt};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Live counters of one worker (shared with the caller, e.g. the demo's summary).
#[derive(Debug, Default)]
pub struct WorkerStats {
    pub consumed: AtomicU64,
    pub predicted: AtomicU64,
    pub alerts: AtomicU64,
    pub dead_lettered: AtomicU64,
    /// Inputs whose outputs could not be delivered (left uncommitted).
    pub undelivered: AtomicU64,
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
}

/// (topic, partition, offset, outcome); an error means the outputs were not all delivered.
type JobOutcome = (String, i32, i64, Result<Finished, String>);
type Tracked = std::pin::Pin<Box<dyn std::future::Future<Output = JobOutcome> + Send>>;

/// Runs a worker until `shutdown` is cancelled, then drains in-flight work (up to
/// `config.drain_timeout`), stores and commits offsets, and leaves the group.
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
    let topics: Vec<&str> = config.input_topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|source| WorkerError::Subscribe {
            topics: config.input_topics.clone(),
            source,
        })?;
    let config = Arc::new(config);
    // Deliveries keep retrying until the drain deadline, not merely until shutdown.
    let give_up = CancellationToken::new();
    let publisher = Publisher::new(
        producer.clone(),
        config.clone(),
        model.model_ref().clone(),
        model.labels().to_vec(),
        give_up.clone(),
    );
    let permits = Arc::new(Semaphore::new(config.inference_threads));
    let mut in_flight: FuturesOrdered<Tracked> = FuturesOrdered::new();
    let mut broken: HashSet<(String, i32)> = HashSet::new();
    // Per input partition, the signal that the latest job has queued its outputs.
    let mut gates: HashMap<(String, i32), tokio::sync::oneshot::Receiver<()>> = HashMap::new();
    tracing::info!(worker = %config.worker_id, topics = ?config.input_topics, "worker started");

    let mut heartbeat = tokio::time::interval(Duration::from_secs(1));
    loop {
        metrics::gauge!(m::IN_FLIGHT).set(in_flight.len() as f64);
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = heartbeat.tick() => {
                // Alive and able to poll (not saturated by undelivered work); `/healthz`
                // reads this.
                if in_flight.len() < config.max_in_flight {
                    stats.last_poll_us.store(crate::publish::now_us().max(0) as u64, Ordering::Relaxed);
                }
            }
            Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                finish(&consumer, done, &stats, &mut broken);
            }
            msg = consumer.recv(), if in_flight.len() < config.max_in_flight => {
                stats.last_poll_us.store(crate::publish::now_us().max(0) as u64, Ordering::Relaxed);
                match msg {
                    Ok(msg) => {
                        let job = Job::from_message(&msg);
                        drop(msg);
                        stats.consumed.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!(m::INPUTS, "topic" => job.topic.clone()).increment(1);
                        let (topic, partition, offset) = (job.topic.clone(), job.partition, job.offset);
                        let (then, gate) = tokio::sync::oneshot::channel();
                        let after = gates.insert((topic.clone(), partition), gate);
                        let handle = tokio::spawn(process(job, model.clone(), publisher.clone(), permits.clone(), config.max_input_bytes, after, then));
                        in_flight.push_back(Box::pin(async move {
                            let outcome = match handle.await {
                                Ok(r) => r.map_err(|e: Undelivered| e.to_string()),
                                Err(e) => Err(format!("job task failed: {e}")),
                            };
                            (topic, partition, offset, outcome)
                        }));
                    }
                    Err(e) => {
                        metrics::counter!(m::CONSUMER_ERRORS).increment(1);
                        tracing::warn!(worker = %config.worker_id, error = %e, "consumer error");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
    }

    tracing::info!(worker = %config.worker_id, in_flight = in_flight.len(), "draining");
    let deadline = tokio::time::sleep(config.drain_timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            done = in_flight.next() => match done {
                Some(done) => finish(&consumer, done, &stats, &mut broken),
                None => break,
            },
            _ = &mut deadline => {
                tracing::warn!(worker = %config.worker_id, abandoned = in_flight.len(), "drain deadline passed; abandoned inputs will be redelivered");
                give_up.cancel();
                break;
            }
        }
    }
    metrics::gauge!(m::IN_FLIGHT).set(0.0);
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => tracing::info!(worker = %config.worker_id, "offsets committed"),
        // Everything stored was already committed in the background.
        Err(argus_kafka::rdkafka::error::KafkaError::ConsumerCommit(
            argus_kafka::rdkafka::types::RDKafkaErrorCode::NoOffset,
        )) => tracing::info!(worker = %config.worker_id, "offsets already committed"),
        Err(e) => tracing::warn!(worker = %config.worker_id, error = %e, "final commit failed"),
    }
    if let Err(e) = producer.flush(Duration::from_secs(10)) {
        tracing::warn!(worker = %config.worker_id, error = %e, "producer flush failed");
    }
    consumer.unsubscribe();
    tracing::info!(worker = %config.worker_id, consumed = stats.consumed.load(Ordering::Relaxed), "worker stopped");
    Ok(())
}

async fn process(
    job: Job,
    model: Arc<Classifier>,
    publisher: Publisher,
    permits: Arc<Semaphore>,
    max_input_bytes: usize,
    after: Option<tokio::sync::oneshot::Receiver<()>>,
    then: tokio::sync::oneshot::Sender<()>,
) -> Result<Finished, Undelivered> {
    let result = {
        let _permit = permits.acquire_owned().await;
        let job = job.clone();
        match tokio::task::spawn_blocking(move || {
            let r = classify(&job, &model, max_input_bytes);
            (job, r)
        })
        .await
        {
            Ok((_, r)) => r,
            Err(e) => Err(crate::job::Failure {
                kind: argus_wire::FailureKind::Model,
                detail: format!("inference task failed: {e}"),
            }),
        }
    };
    if let Ok(c) = &result {
        let t = c.classification.timings;
        metrics::histogram!(m::INFERENCE_SECONDS).record(t.inference_us as f64 / 1e6);
        let total = t.decode_us + t.preprocess_us + t.inference_us + t.postprocess_us;
        metrics::histogram!(m::PROCESSING_SECONDS).record(total as f64 / 1e6);
    }
    publisher.publish(&job, result, after, then).await
}

fn finish(
    consumer: &StreamConsumer<GroupContext>,
    done: JobOutcome,
    stats: &WorkerStats,
    broken: &mut HashSet<(String, i32)>,
) {
    let (topic, partition, offset, outcome) = done;
    match outcome {
        Ok(Finished::Predicted { alerts }) => {
            stats.predicted.fetch_add(1, Ordering::Relaxed);
            stats.alerts.fetch_add(alerts as u64, Ordering::Relaxed);
        }
        Ok(Finished::DeadLettered(_)) => {
            stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            stats.undelivered.fetch_add(1, Ordering::Relaxed);
            tracing::error!(topic = %topic, partition, offset, error = %e, "outputs undeliverable; no further offsets of this partition are stored");
            broken.insert((topic, partition));
            metrics::counter!(m::OFFSET_STORE_FAILURES).increment(1);
            return;
        }
    }
    if broken.contains(&(topic.clone(), partition)) {
        metrics::counter!(m::OFFSET_STORE_FAILURES).increment(1);
        return;
    }
    if let Err(e) = consumer.store_offset(&topic, partition, offset) {
        // Normal after a revoke: the new owner will redo this input.
        metrics::counter!(m::OFFSET_STORE_FAILURES).increment(1);
        tracing::debug!(topic = %topic, partition, offset, error = %e, "offset not stored");
    }
}
