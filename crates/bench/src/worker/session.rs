//! Stage 3 on the broker: pre-fill a fresh topic, then one in-process worker (or, with
//! `--relay`, the bare relay) drains it, timed from its first consumed input (group join
//! excluded). Stage 4 ([`super::latency`]) reuses the same worker and producer.
use super::report::{histogram_totals, internals, LatencyResult, WorkerCpu, WorkerResult};
use super::{WorkerBenchOptions, WorkerShape};
use crate::error::{runtime, usage, BenchError};
use crate::harness::cpu::{cpu_busy, percent, thread_groups, thread_ticks, CpuMark, ThreadSample};
use crate::harness::kafka::{finished, others, prefill, wait_until, BenchWorker};
use crate::harness::relay::RelayTopics;
use argus_kafka::rdkafka::producer::FutureProducer;
use argus_kafka::{KafkaSettings, TopicSpec};
use argus_model::Classifier;
use argus_producer::Frame;
use argus_worker::{WorkerConfig, WorkerStats};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The run's topics, named after the run id.
#[derive(Debug)]
pub(crate) struct BenchTopics {
    pub input: String,
    pub predictions: String,
    pub alerts: String,
    pub dlq: String,
}

impl BenchTopics {
    pub(crate) fn new(run_id: &str) -> Self {
        BenchTopics {
            input: format!("argus-bench-{run_id}.frames"),
            predictions: format!("argus-bench-{run_id}.predictions"),
            alerts: format!("argus-bench-{run_id}.alerts"),
            dlq: format!("argus-bench-{run_id}.dlq"),
        }
    }

    /// Creates them. The input and predictions topics stamp records with the broker's
    /// append time, which splits the way in (the load generator's producer, the worker's
    /// fetch) and the way out (the worker's producer, the subscriber's fetch).
    pub(crate) async fn create(
        &self,
        settings: &KafkaSettings,
        partitions: i32,
    ) -> Result<(), BenchError> {
        argus_kafka::ensure_topics(
            settings,
            &[
                TopicSpec::new(&self.predictions, 4)
                    .with_config("message.timestamp.type", "LogAppendTime"),
                TopicSpec::new(&self.input, partitions)
                    .with_config("message.timestamp.type", "LogAppendTime"),
                TopicSpec::new(&self.alerts, 4),
                TopicSpec::new(&self.dlq, 1),
            ],
        )
        .await
        .map_err(runtime)
    }

    pub(crate) fn all(&self) -> Vec<String> {
        vec![
            self.input.clone(),
            self.predictions.clone(),
            self.alerts.clone(),
            self.dlq.clone(),
        ]
    }
}

/// The broker stages (3 and 4), which share one worker and one producer.
#[derive(Debug)]
pub(crate) struct KafkaSession<'a> {
    pub options: &'a WorkerBenchOptions,
    pub topics: &'a BenchTopics,
    pub model: Arc<Classifier>,
    pub pool: Arc<Vec<Frame>>,
    pub shape: WorkerShape,
    pub run_id: String,
    pub interrupted: CancellationToken,
    pub worker: Option<BenchWorker>,
}

impl KafkaSession<'_> {
    /// Stage 3, then stage 4 at fractions of the capacity stage 3 measured (or of
    /// `--capacity`).
    pub(crate) async fn run(
        &mut self,
        offline_rate: f64,
    ) -> Result<(WorkerResult, Vec<LatencyResult>), BenchError> {
        let producer = self
            .options
            .kafka
            .producer(&format!("argus-bench-producer-{}", self.run_id))
            .map_err(|e| usage(e.to_string()))?;
        let prefill_seconds = self.prefill(&producer).await?;
        let stats = Arc::new(WorkerStats::default());
        let worker = self.drain(&stats, prefill_seconds, offline_rate).await?;
        print_drain(&worker);
        // 4. Latency at fractions of that capacity, same worker (its group is joined).
        let capacity = match self.options.capacity {
            Some(given) => {
                println!(
                    "  load levels: fractions of --capacity {given:.0} inputs/s, not of this drain's {:.0}",
                    worker.inputs_per_s
                );
                given
            }
            None => worker.inputs_per_s,
        };
        let latency = self
            .latency(&producer, &stats, capacity, worker.predicted)
            .await?;
        Ok((worker, latency))
    }

    /// Sends `--frames` pool frames (capture time = now) and waits for their
    /// acknowledgements; returns the seconds it took.
    async fn prefill(&self, producer: &FutureProducer) -> Result<f64, BenchError> {
        let frames = self.options.frames;
        println!();
        println!(
            "stage 3  {} draining a pre-filled topic: {frames} frames in {} ({} partitions), fresh group",
            if self.options.relay {
                "the bare relay (--relay: no model, in place of the worker)"
            } else {
                "one in-process worker"
            },
            self.topics.input,
            self.options.partitions
        );
        let prefill_seconds =
            prefill(producer, &self.topics.input, &self.pool, frames, "frames").await?;
        println!(
            "  pre-filled {frames} frames in {prefill_seconds:.2} s ({:.0} frames/s)",
            frames as f64 / prefill_seconds
        );
        Ok(prefill_seconds)
    }

    /// Starts the worker and times its drain of the pre-filled topic.
    async fn drain(
        &mut self,
        stats: &Arc<WorkerStats>,
        prefill_seconds: f64,
        offline_rate: f64,
    ) -> Result<WorkerResult, BenchError> {
        let frames = self.options.frames;
        self.start_worker(stats.clone())?;
        let t = Instant::now();
        let first = self
            .wait_for(
                Duration::from_secs(60),
                "the worker to join the group",
                || stats.consumed.load(Ordering::Relaxed) >= 1,
            )
            .await?;
        if let Some(w) = self.worker.as_mut() {
            w.claim_threads();
        }
        let mark = CpuMark::now(self.options.broker_pid);
        let threads_before = thread_ticks();
        let hist = histogram_totals();
        // Generous: a quarter of the offline speed, plus a minute.
        let limit = Duration::from_secs_f64(60.0 + 4.0 * frames as f64 / offline_rate.max(1.0));
        let last = self
            .wait_for(limit, "the worker to finish the pre-filled frames", || {
                finished(stats) >= frames
            })
            .await?;
        let end = CpuMark::now(self.options.broker_pid);
        let threads_after = thread_ticks();
        let threads = thread_groups(&threads_before, &threads_after, frames);
        let worker_cpu = self.worker_cpu(&threads_before, &threads_after, frames);
        let seconds = (last - first).as_secs_f64();
        Ok(WorkerResult {
            frames,
            partitions: self.options.partitions,
            prefill_seconds,
            group_join_seconds: (first - t).as_secs_f64(),
            seconds,
            predicted: stats.predicted.load(Ordering::Relaxed),
            dead_lettered: stats.dead_lettered.load(Ordering::Relaxed),
            other: others(stats),
            inputs_per_s: frames as f64 / seconds,
            pauses: stats.pauses.load(Ordering::Relaxed),
            machine_cpu_busy: cpu_busy(mark.machine, end.machine),
            cpu: mark.until(&end, frames),
            threads,
            worker_cpu,
            internals: internals(&hist, &histogram_totals()),
        })
    }

    /// The worker's threads' CPU between two samples.
    pub(crate) fn worker_cpu(
        &self,
        before: &ThreadSample,
        after: &ThreadSample,
        inputs: u64,
    ) -> WorkerCpu {
        let worker = self.worker.as_ref();
        WorkerCpu::of(before, after, inputs, |tid, name| {
            worker.is_some_and(|w| w.owns(tid, name))
        })
    }

    fn start_worker(&mut self, stats: Arc<WorkerStats>) -> Result<(), BenchError> {
        let worker_id = format!("argus-bench-worker-{}", self.run_id);
        let group = format!("argus-bench-{}", self.run_id);
        let mut settings = self.options.kafka.clone();
        for (k, v) in &self.options.worker_options {
            settings.options.insert(k.clone(), v.clone());
        }
        if self.options.relay {
            let topics = RelayTopics {
                input: self.topics.input.clone(),
                predictions: self.topics.predictions.clone(),
            };
            let relay = BenchWorker::start_relay(topics, &worker_id, &settings, &group, stats)?;
            self.worker = Some(relay);
            return Ok(());
        }
        let mut config = WorkerConfig::new(worker_id, vec![self.topics.input.clone()]);
        config.topics = argus_worker::OutputTopics {
            predictions: self.topics.predictions.clone(),
            alerts: self.topics.alerts.clone(),
            dlq: self.topics.dlq.clone(),
            ..Default::default()
        };
        config.inference_threads = self.shape.inference_threads;
        config.decode_threads = self.shape.decode_threads;
        config.max_batch = self.shape.max_batch;
        config.max_in_flight = self.shape.max_in_flight;
        // As `argus work` runs by default, so alerts are published too.
        config.rules = argus_worker::AlertRule::from_bundle(&self.model);
        let worker = BenchWorker::start(config, &settings, &group, self.model.clone(), stats)?;
        self.worker = Some(worker);
        Ok(())
    }

    pub(crate) async fn stop_worker(&mut self) {
        if let Some(w) = self.worker.take() {
            w.stop().await;
        }
    }

    /// Polls `done` every millisecond; returns the instant it first held. Fails on timeout,
    /// Ctrl-C, or if the worker stopped.
    async fn wait_for(
        &mut self,
        limit: Duration,
        what: &str,
        done: impl Fn() -> bool,
    ) -> Result<Instant, BenchError> {
        wait_until(
            &mut self.worker,
            &self.interrupted,
            limit,
            what,
            done,
            || Ok(()),
        )
        .await
    }
}

fn print_drain(worker: &WorkerResult) {
    println!(
        "  group join {:.2} s (excluded); {} inputs in {:.2} s = {:.1} inputs/s; predicted {}, dead-lettered {}, stale/abandoned/undelivered {}; pauses {}; machine CPU busy {}",
        worker.group_join_seconds,
        worker.frames,
        worker.seconds,
        worker.inputs_per_s,
        worker.predicted,
        worker.dead_lettered,
        worker.other,
        worker.pauses,
        percent(worker.machine_cpu_busy)
    );
    println!("  {}", worker.cpu.line());
    println!("  {}", worker.internals.line());
    println!("  {}", worker.worker_cpu.line());
    if let Some(w) = worker.cpu.contention() {
        println!("  {w}");
    }
    let groups: Vec<String> = worker
        .threads
        .iter()
        .filter(|g| g.share >= 0.005)
        .map(|g| {
            let busiest: Vec<String> = g
                .busiest
                .iter()
                .map(|s| format!("{:.0}%", 100.0 * s / worker.seconds.max(1e-9)))
                .collect();
            format!(
                "{} ×{} {:.2} ms ({:.0}%; busiest {})",
                g.name,
                g.threads,
                g.cpu_ms_per_input,
                g.share * 100.0,
                busiest.join(" ")
            )
        })
        .collect();
    println!(
        "  bench-process threads, CPU-ms per input (share; busiest threads' % of one core): {}",
        groups.join(", ")
    );
    if worker.dead_lettered + worker.other > 0 {
        println!("  WARNING: some frames were not predicted; the rate above includes them");
    }
}
