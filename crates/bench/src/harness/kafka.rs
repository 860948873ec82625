//! Kafka for the harnesses: sending pool frames as `argus produce` sends them (envelope
//! headers from `argus_producer`), awaiting their acknowledgements, and one in-process
//! worker (`argus_worker::run`, or the bare relay of [`crate::harness::relay`]) with the
//! polling wait both harnesses time it with.
use crate::error::{runtime, usage, BenchError};
use crate::harness::relay::{relay, RelayTopics};
use argus_kafka::rdkafka::consumer::StreamConsumer;
use argus_kafka::rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use argus_kafka::{GroupContext, KafkaSettings};
use argus_model::Classifier;
use argus_producer::{envelope_headers, Frame};
use argus_worker::{WorkerConfig, WorkerError, WorkerStats};
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Enqueues one frame as `produce` sends it (key = camera, envelope headers); waits while
/// the producer's queue is full.
pub async fn enqueue(
    producer: &FutureProducer,
    topic: &str,
    frame: &Frame,
    value: &[u8],
    capture_us: i64,
) -> Result<DeliveryFuture, BenchError> {
    let record = FutureRecord::to(topic)
        .key(&frame.key)
        .payload(value)
        .headers(envelope_headers(&frame.envelope.payload, capture_us));
    argus_kafka::send_when_queued(producer, record, Duration::from_millis(5))
        .await
        .map_err(|e| runtime(format!("cannot produce to {topic}: {e}")))
}

/// Sends `n` inputs to `topic` cycling through `pool` (sequence = index, capture time =
/// when sent), waits for every acknowledgement and flushes; fails saying how many of
/// the `n` `what` the broker did not acknowledge. Returns the seconds it took.
pub async fn prefill(
    producer: &FutureProducer,
    topic: &str,
    pool: &[Frame],
    n: u64,
    what: &str,
) -> Result<f64, BenchError> {
    let t = Instant::now();
    let mut deliveries = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    for i in 0..n {
        let frame = &pool[(i % pool.len() as u64) as usize];
        let capture = argus_wire::now_us();
        let value = crate::harness::envelope_bytes(frame, i, capture)?;
        deliveries.push(enqueue(producer, topic, frame, &value, capture).await?);
    }
    let (_, failed) = await_deliveries(deliveries).await;
    argus_kafka::rdkafka::producer::Producer::flush(producer, Duration::from_secs(30))
        .map_err(runtime)?;
    if failed > 0 {
        return Err(runtime(format!(
            "{failed} of {n} {what} were not acknowledged by the broker"
        )));
    }
    Ok(t.elapsed().as_secs_f64())
}

/// (acknowledged, failed).
pub async fn await_deliveries(deliveries: Vec<DeliveryFuture>) -> (u64, u64) {
    let (mut ok, mut failed) = (0, 0);
    for d in deliveries {
        match d.await {
            Ok(Ok(_)) => ok += 1,
            Ok(Err((e, _))) => {
                if failed == 0 {
                    tracing::warn!(error = %e, "frame not delivered");
                }
                failed += 1;
            }
            Err(_) => failed += 1,
        }
    }
    (ok, failed)
}

/// Each delivery's broker timestamp in µs (the append time on a `LogAppendTime` topic;
/// `None` without a timestamp), or the error, in the order given.
pub async fn appended_times(deliveries: Vec<DeliveryFuture>) -> Vec<Result<Option<i64>, String>> {
    let mut out = Vec::with_capacity(deliveries.len());
    for d in deliveries {
        out.push(match d.await {
            Ok(Ok(delivery)) => Ok(delivery.timestamp.to_millis().map(|ms| ms * 1000)),
            Ok(Err((e, _))) => Err(e.to_string()),
            Err(_) => Err("the producer dropped the delivery".into()),
        });
    }
    out
}

/// Inputs the worker finished without a prediction or a DLQ record.
pub fn others(s: &WorkerStats) -> u64 {
    s.stale.load(Ordering::Relaxed)
        + s.abandoned.load(Ordering::Relaxed)
        + s.undelivered.load(Ordering::Relaxed)
}

/// Inputs the worker finished: predicted, dead-lettered or otherwise.
pub fn finished(s: &WorkerStats) -> u64 {
    s.predicted.load(Ordering::Relaxed) + s.dead_lettered.load(Ordering::Relaxed) + others(s)
}

/// One `argus_worker::run` in this process, on a runtime of its own (threads named
/// `argus-worker`), so its CPU can be told apart from the load generator's and the
/// subscriber's: [`BenchWorker::claim_threads`] and [`BenchWorker::owns`].
#[derive(Debug)]
pub struct BenchWorker {
    task: tokio::task::JoinHandle<Result<(), WorkerError>>,
    stop: CancellationToken,
    _runtime: WorkerRuntime,
    /// Threads of the process before the worker's clients were made.
    before: HashSet<u32>,
    /// The threads that appeared between then and [`BenchWorker::claim_threads`].
    claimed: HashSet<u32>,
}

/// The worker's runtime. A runtime must not be dropped where blocking is not allowed (in
/// async code), so this one is told to stop and its threads are left to do so.
#[derive(Debug)]
struct WorkerRuntime(Option<tokio::runtime::Runtime>);

impl Drop for WorkerRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// The name of the worker's runtime threads (workers and blocking pool).
const WORKER_RUNTIME: &str = "argus-worker";

/// Name prefixes of the threads only a worker starts: its runtime (workers and blocking
/// pool), its model threads and its evidence threads.
const WORKER_THREADS: [&str; 3] = [
    WORKER_RUNTIME,
    argus_worker::INFERENCE_THREAD_PREFIX,
    argus_worker::evidence::THREAD_PREFIX,
];

fn thread_ids() -> HashSet<u32> {
    crate::harness::cpu::thread_ticks()
        .into_iter()
        .map(|(tid, _, _)| tid)
        .collect()
}

impl BenchWorker {
    /// Starts a worker in `group` with `config` (validated against the model's labels;
    /// the drain timeout is 10 s) on clients made from `settings`.
    pub fn start(
        mut config: WorkerConfig,
        settings: &KafkaSettings,
        group: &str,
        model: Arc<Classifier>,
        stats: Arc<WorkerStats>,
    ) -> Result<Self, BenchError> {
        config.drain_timeout = Duration::from_secs(10);
        config.validate(model.labels()).map_err(usage)?;
        let worker_id = config.worker_id.clone();
        Self::spawn(settings, group, &worker_id, |consumer, producer, stop| {
            argus_worker::run(config, consumer, producer, model, stats, stop)
        })
    }

    /// Starts the bare relay of [`crate::harness::relay`] in `group` in place of a worker,
    /// on clients made from `settings` as a worker's are.
    pub fn start_relay(
        topics: RelayTopics,
        worker_id: &str,
        settings: &KafkaSettings,
        group: &str,
        stats: Arc<WorkerStats>,
    ) -> Result<Self, BenchError> {
        let id = worker_id.to_owned();
        Self::spawn(settings, group, worker_id, |consumer, producer, stop| {
            relay(consumer, producer, topics, id, stats, stop)
        })
    }

    /// Makes the clients on a runtime of the worker's own and spawns `task` with them.
    fn spawn<F>(
        settings: &KafkaSettings,
        group: &str,
        worker_id: &str,
        task: impl FnOnce(StreamConsumer<GroupContext>, FutureProducer, CancellationToken) -> F,
    ) -> Result<Self, BenchError>
    where
        F: std::future::Future<Output = Result<(), WorkerError>> + Send + 'static,
    {
        let before = thread_ids();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .worker_threads(crate::harness::cores())
            .thread_name(WORKER_RUNTIME)
            .build()
            .map_err(runtime)?;
        // librdkafka's threads start with the clients.
        let guard = rt.enter();
        let consumer = settings
            .consumer(group, worker_id)
            .map_err(|e| usage(e.to_string()))?;
        let producer = settings
            .producer(worker_id)
            .map_err(|e| usage(e.to_string()))?;
        let stop = CancellationToken::new();
        let task = rt.spawn(task(consumer, producer, stop.clone()));
        drop(guard);
        Ok(BenchWorker {
            task,
            stop,
            _runtime: WorkerRuntime(Some(rt)),
            before,
            claimed: HashSet::new(),
        })
    }

    /// Takes the threads that appeared since the worker was started as the worker's: call
    /// it once the worker has joined its group (its librdkafka threads are up) and before
    /// the run starts any other client.
    pub fn claim_threads(&mut self) {
        self.claimed = thread_ids().difference(&self.before).copied().collect();
    }

    /// Whether thread `tid` named `name` is the worker's: claimed, or named as only a
    /// worker's threads are.
    pub fn owns(&self, tid: u32, name: &str) -> bool {
        self.claimed.contains(&tid) || WORKER_THREADS.iter().any(|p| name.starts_with(p))
    }

    /// Whether the worker's task has ended (it should not before [`BenchWorker::stop`]).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Cancels the worker and waits up to 30 s for it; failures are logged.
    pub async fn stop(self) {
        self.stop.cancel();
        match tokio::time::timeout(Duration::from_secs(30), self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "bench worker failed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "bench worker task failed"),
            Err(_) => tracing::warn!("bench worker did not stop within 30 s"),
        }
    }

    /// Why a worker that ended early ended (a configuration error is an options error).
    async fn failure(self) -> BenchError {
        match self.task.await {
            Ok(Err(WorkerError::Config(m))) => usage(m),
            Ok(Err(e)) => runtime(e),
            Err(e) => runtime(e),
            Ok(Ok(())) => runtime("the worker stopped early"),
        }
    }
}

/// Polls `done` every millisecond and returns the instant it first held; fails on timeout,
/// on `interrupted`, if the worker ended (it is taken out of `worker`), or when `check`
/// (called every 100 polls) fails.
pub async fn wait_until(
    worker: &mut Option<BenchWorker>,
    interrupted: &CancellationToken,
    limit: Duration,
    what: &str,
    done: impl Fn() -> bool,
    mut check: impl FnMut() -> Result<(), BenchError>,
) -> Result<Instant, BenchError> {
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        if done() {
            return Ok(Instant::now());
        }
        if interrupted.is_cancelled() {
            return Err(runtime("interrupted"));
        }
        if start.elapsed() > limit {
            return Err(runtime(format!(
                "gave up waiting for {what} after {:.0} s",
                limit.as_secs_f64()
            )));
        }
        if worker.as_ref().is_some_and(BenchWorker::is_finished) {
            return Err(match worker.take() {
                Some(w) => w.failure().await,
                None => runtime("the worker stopped early"),
            });
        }
        n += 1;
        if n % 100 == 0 {
            check()?;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
