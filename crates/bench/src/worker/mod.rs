//! The worker harness (`argus-bench worker`, formerly `argus bench`): one run on a real
//! broker that measures where a worker's time goes, so the worker can be compared with what
//! the model and the pipeline allow on the same machine.
//!
//! 1. **engine alone**: `Classifier::infer` on preprocessed tensors in memory, one thread,
//!    for several batch sizes (cost per input, to choose a default batch size).
//! 2. **offline pipeline**: envelope bytes → `decode_envelope` → `Classifier::classify`
//!    (decode, preprocess, infer, postprocess) from memory, on as many threads as the worker
//!    infers with.
//! 3. **worker**: one in-process `argus_worker::run` draining a pre-filled, freshly created
//!    topic; timed from the first consumed input to the last finished one (group join
//!    excluded).
//! 4. **end-to-end latency** at fractions of the capacity measured in 3 (`latency`).
//!
//! Synthetic frames are rendered and JPEG-encoded once (a pool of distinct frames) and
//! cycled, so rendering does not compete with the measured work.
mod latency;
mod offline;
mod report;
mod session;

use crate::error::{runtime, usage, BenchError};
use crate::harness::cpu::{broker_pids, percent};
use crate::harness::{
    check_json_path, cores, load_model, loadavg, mean_frame_bytes, metrics_handle, on_signal,
    read_records, render_pool, verdict, write_json, FrameSpec,
};
use argus_kafka::KafkaSettings;
use argus_model::{Classifier, EngineOptions};
use argus_producer::Frame;
use argus_wire::now_us;
use argus_worker::WorkerConfig;
use report::{BatchResult, LatencyResult, OfflineResult, Ratios, Report, WorkerResult};
use session::{BenchTopics, KafkaSession};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one worker-harness run does (the `argus-bench worker` flags, typed).
#[derive(Debug, Clone)]
pub struct WorkerBenchOptions {
    /// Brokers and the librdkafka properties of every client of the run (`-X`).
    pub kafka: KafkaSettings,
    /// librdkafka properties for the worker's consumer and producer only, applied after
    /// `kafka.options`.
    pub worker_options: Vec<(String, String)>,
    /// The engine; its `concurrency` is set by the harness.
    pub engine: EngineOptions,
    /// Model bundle directory.
    pub model: PathBuf,
    /// Frames run through the offline pipeline and pre-filled into the worker's topic.
    pub frames: u64,
    /// How long the fixed-rate producer runs at each load level.
    pub latency_duration: Duration,
    /// Load levels of stage 4, as fractions of the measured worker capacity.
    pub loads: Vec<f64>,
    /// What the load levels are fractions of, if not the capacity measured in stage 3.
    pub capacity: Option<f64>,
    /// Batch sizes of stage 1 (1 is always measured).
    pub batch_sizes: Vec<usize>,
    /// Time spent per batch size in stage 1.
    pub tract_duration: Duration,
    /// The worker's model threads (`None`: the worker's default).
    pub inference_threads: Option<usize>,
    /// The worker's decode/preprocess threads (`None`: the worker's default).
    pub decode_threads: Option<usize>,
    /// The worker's largest batch per model call (`None`: the worker's default).
    pub max_batch: Option<usize>,
    /// The worker's bound on inputs in flight (`None`: the worker's default).
    pub max_in_flight: Option<usize>,
    /// Threads of the offline pipeline (`None`: the worker's decode or inference threads,
    /// whichever is more).
    pub offline_threads: Option<usize>,
    /// Records to send instead of synthetic frames: the file and its key column.
    pub records: Option<(PathBuf, String)>,
    /// The synthetic frames (unused with `records`).
    pub frames_spec: FrameSpec,
    /// Partitions of the input topic.
    pub partitions: i32,
    /// Write the results as JSON to this file.
    pub json: Option<PathBuf>,
    /// Leave the run's topics on the broker.
    pub keep_topics: bool,
    /// Pid of the broker whose CPU time is reported (`None`: every local `kafka.Kafka`).
    pub broker_pid: Option<u32>,
    /// Run stages 1 and 2 only (no Kafka).
    pub offline_only: bool,
    /// Stages 3 and 4 run the bare relay of [`crate::harness::relay`] in place of the
    /// worker: the Kafka floor at the same rates (with `capacity`, the same load levels).
    pub relay: bool,
}

/// The worker's thread and batch settings: its defaults, overridden by the options.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WorkerShape {
    pub inference_threads: usize,
    pub decode_threads: usize,
    pub max_batch: usize,
    pub max_in_flight: usize,
}

impl WorkerShape {
    fn of(o: &WorkerBenchOptions) -> Self {
        let defaults = WorkerConfig::new("bench", Vec::new());
        WorkerShape {
            inference_threads: o.inference_threads.unwrap_or(defaults.inference_threads),
            decode_threads: o.decode_threads.unwrap_or(defaults.decode_threads),
            max_batch: o.max_batch.unwrap_or(defaults.max_batch),
            max_in_flight: o.max_in_flight.unwrap_or(defaults.max_in_flight),
        }
    }
}

/// What stages 1 and 2 share with the rest of the run.
#[derive(Debug)]
struct Setup {
    started: Instant,
    loadavg_start: Option<String>,
    shape: WorkerShape,
    threads: usize,
    model: Arc<Classifier>,
    pool: Arc<Vec<Frame>>,
    /// What the pool is, for the header and the report.
    inputs: String,
    mean_bytes: f64,
}

/// Runs the worker harness and prints its results (and writes them with `json`).
pub async fn run(options: WorkerBenchOptions) -> Result<(), BenchError> {
    let setup = setup(&options).await?;
    let tract = stage_engine(&options, &setup).await?;
    let offline = stage_offline(&options, &setup).await?;
    if options.offline_only {
        if let Some(path) = &options.json {
            let report = serde_json::json!({
                "time_us": now_us(),
                "model": setup.model.model_ref().name,
                "engine": setup.model.engine().as_str(),
                "offline_threads": setup.threads,
                "engine_alone": tract,
                "offline": offline,
            });
            write_json(path, &report)?;
        }
        return Ok(());
    }
    let (worker, latency) = stages_on_broker(&options, &setup, offline.inputs_per_s).await?;
    let model_p50_us = tract
        .iter()
        .find(|b| b.batch == 1)
        .map(|b| b.p50_call_us)
        .unwrap_or(f64::NAN);
    let ratios = Ratios::of(&tract, &offline, &worker, &latency, model_p50_us);
    print_ratios(&ratios, &tract, &offline, &worker, &latency);
    let loadavg_end = loadavg();
    println!(
        "total run time {:.1} s; load average {}",
        setup.started.elapsed().as_secs_f64(),
        loadavg_end.as_deref().unwrap_or("n/a")
    );
    if let Some(path) = &options.json {
        let report = Report::new(
            &options,
            &setup,
            loadavg_end,
            tract,
            offline,
            worker,
            latency,
            ratios,
        );
        write_json(path, &report)?;
        println!("results written to {}", path.display());
    }
    Ok(())
}

/// Checks the options, loads the model, renders the frame pool and prints the run's header.
async fn setup(options: &WorkerBenchOptions) -> Result<Setup, BenchError> {
    let started = Instant::now();
    let loadavg_start = loadavg();
    let shape = WorkerShape::of(options);
    let threads = options
        .offline_threads
        .unwrap_or(shape.decode_threads.max(shape.inference_threads));
    check(options, threads)?;
    let mut engine = options.engine.clone();
    engine.concurrency = shape.inference_threads.max(threads);
    let model = load_model(&options.model, &engine)?;
    let (pool, inputs) = input_pool(options).await?;
    let pool = Arc::new(pool);
    let mean_bytes = mean_frame_bytes(&pool);
    println!(
        "argus-bench worker: model {} v{} on {} (input {:?}), {inputs} (mean {:.1} kB); worker: {} decode threads, {} inference threads, max batch {}, max in flight {}; offline pipeline: {} threads; broker {}",
        model.model_ref().name,
        model.model_ref().version,
        model.engine(),
        model.manifest().input.shape,
        mean_bytes / 1e3,
        shape.decode_threads,
        shape.inference_threads,
        shape.max_batch,
        shape.max_in_flight,
        threads,
        options.kafka.brokers,
    );
    let kv = |o: &mut dyn Iterator<Item = (&String, &String)>| {
        o.map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let brokers = broker_pids(options.broker_pid);
    println!(
        "  -X (every client): [{}]; --worker-option (worker only): [{}]; {} cores; load average {}; broker CPU from {}",
        kv(&mut options.kafka.options.iter()),
        kv(&mut options.worker_options.iter().map(|(k, v)| (k, v))),
        cores(),
        loadavg_start.as_deref().unwrap_or("n/a"),
        if brokers.is_empty() {
            "nowhere: no local kafka.Kafka process found (--broker-pid)".to_string()
        } else {
            format!("pid {brokers:?}")
        }
    );
    Ok(Setup {
        started,
        loadavg_start,
        shape,
        threads,
        model,
        pool,
        inputs,
        mean_bytes,
    })
}

/// The inputs cycled through every stage: the records of `--records`, else rendered
/// synthetic frames; and a description of them for the header.
async fn input_pool(options: &WorkerBenchOptions) -> Result<(Vec<Frame>, String), BenchError> {
    let t = Instant::now();
    if let Some((path, key)) = &options.records {
        let pool = read_records(path, key)?;
        let what = format!("{} records from {} (key {key})", pool.len(), path.display());
        return Ok((pool, what));
    }
    let spec = &options.frames_spec;
    let pool = render_pool(&spec.source(1.0), spec.distinct_frames).await?;
    let what = format!(
        "{} distinct {}x{} JPEG q{} frames from {} synthetic cameras (seed {}), rendered in {:.1} s",
        pool.len(),
        spec.width,
        spec.height,
        spec.jpeg_quality,
        spec.cameras,
        spec.seed,
        t.elapsed().as_secs_f64()
    );
    Ok((pool, what))
}

/// Stage 1: the engine alone, per batch size.
async fn stage_engine(
    options: &WorkerBenchOptions,
    setup: &Setup,
) -> Result<Vec<BatchResult>, BenchError> {
    let mut sizes = options.batch_sizes.clone();
    if !sizes.contains(&1) {
        sizes.insert(0, 1);
    }
    let (model, pool, dur) = (
        setup.model.clone(),
        setup.pool.clone(),
        options.tract_duration,
    );
    let tract =
        tokio::task::spawn_blocking(move || offline::bench_tract(&model, &pool, &sizes, dur))
            .await
            .map_err(runtime)??;
    offline::print_tract(&tract);
    Ok(tract)
}

/// Stage 2: the offline pipeline; fails if any frame failed in it.
async fn stage_offline(
    options: &WorkerBenchOptions,
    setup: &Setup,
) -> Result<OfflineResult, BenchError> {
    let (model, pool, frames, broker, threads) = (
        setup.model.clone(),
        setup.pool.clone(),
        options.frames,
        options.broker_pid,
        setup.threads,
    );
    let offline = tokio::task::spawn_blocking(move || {
        offline::bench_offline(&model, &pool, frames, threads, broker)
    })
    .await
    .map_err(runtime)??;
    println!();
    println!(
        "stage 2  offline pipeline: envelope bytes → decode_envelope → classify (JPEG decode, preprocess, infer, postprocess) from memory, {} threads",
        offline.threads
    );
    println!(
        "  {} inputs in {:.2} s = {:.1} inputs/s; p50 per input {:.0} µs (one thread's view); errors {}; machine CPU busy {}",
        offline.inputs, offline.seconds, offline.inputs_per_s, offline.p50_per_input_us, offline.errors, percent(offline.machine_cpu_busy)
    );
    println!("  {}", offline.cpu.line());
    if let Some(w) = offline.cpu.contention() {
        println!("  {w}");
    }
    if offline.errors > 0 {
        return Err(runtime(format!(
            "{} of {} frames failed in the offline pipeline",
            offline.errors, offline.inputs
        )));
    }
    Ok(offline)
}

/// Stages 3 and 4 on fresh topics, which are deleted afterwards unless kept.
async fn stages_on_broker(
    options: &WorkerBenchOptions,
    setup: &Setup,
    offline_rate: f64,
) -> Result<(WorkerResult, Vec<LatencyResult>), BenchError> {
    metrics_handle();
    let interrupted = on_signal();
    let run_id = format!("{}-{}", std::process::id(), now_us() / 1_000_000);
    let topics = BenchTopics::new(&run_id);
    topics.create(&options.kafka, options.partitions).await?;
    let mut session = KafkaSession {
        options,
        topics: &topics,
        model: setup.model.clone(),
        pool: setup.pool.clone(),
        shape: setup.shape,
        run_id,
        interrupted,
        worker: None,
    };
    let outcome = session.run(offline_rate).await;
    session.stop_worker().await;
    if options.keep_topics {
        println!("topics kept: {}", topics.all().join(", "));
    } else {
        // The worker's consumer can outlive `run` for a moment (a blocking watermark fetch
        // still holds it); deleting its topic under it makes librdkafka log errors.
        tokio::time::sleep(Duration::from_secs(3)).await;
        if let Err(e) = argus_kafka::delete_topics(&options.kafka, &topics.all()).await {
            tracing::warn!(error = %e, "could not delete the benchmark's topics");
        }
    }
    outcome
}

impl Ratios {
    fn of(
        tract: &[BatchResult],
        offline: &OfflineResult,
        worker: &WorkerResult,
        latency: &[LatencyResult],
        model_p50_us: f64,
    ) -> Self {
        let tract1 = tract.iter().find(|b| b.batch == 1);
        let cpu_efficiency = offline
            .cpu
            .bench_process_cpu_ms_per_input
            .zip(worker.cpu.bench_process_cpu_ms_per_input)
            .filter(|(_, w)| *w > 0.0)
            .map(|(o, w)| o / w);
        Ratios {
            worker_over_offline: worker.inputs_per_s / offline.inputs_per_s,
            cpu_efficiency_offline_over_worker: cpu_efficiency,
            offline_over_tract_batch_1: offline.inputs_per_s
                / tract1.map(|b| b.inputs_per_s).unwrap_or(f64::NAN),
            e2e_p99_minus_model_p50_ms: latency.first().map(|l| l.p99_ms - model_p50_us / 1e3),
            worker_cpu_over_inference: worker
                .cpu
                .bench_process_cpu_ms_per_input
                .zip(tract1.and_then(|b| b.cpu_ms_per_input))
                .filter(|(_, e)| *e > 0.0)
                .map(|(w, e)| w / e),
        }
    }
}

fn print_ratios(
    ratios: &Ratios,
    tract: &[BatchResult],
    offline: &OfflineResult,
    worker: &WorkerResult,
    latency: &[LatencyResult],
) {
    let cores = cores();
    println!();
    println!("ratios");
    println!(
        "  worker/offline = {:.3} (target ≥ 0.95){}",
        ratios.worker_over_offline,
        verdict(ratios.worker_over_offline >= 0.95)
    );
    if let (Some(e), Some(o), Some(w)) = (
        ratios.cpu_efficiency_offline_over_worker,
        offline.cpu.bench_process_cpu_ms_per_input,
        worker.cpu.bench_process_cpu_ms_per_input,
    ) {
        println!(
            "  CPU efficiency = offline CPU-ms per input ÷ worker-process CPU-ms per input = {o:.2} ÷ {w:.2} = {e:.3} (not the target: 1.0 = no CPU per input beyond the offline pipeline's)"
        );
    }
    if let (Some(wc), Some(oc), Some(e)) = (
        worker.cpu.cores(worker.cpu.bench_process_cpu_seconds),
        offline.cpu.cores(offline.cpu.bench_process_cpu_seconds),
        ratios.cpu_efficiency_offline_over_worker,
    ) {
        println!(
            "  worker/offline = (cores the worker process used {wc:.2} ÷ cores the offline pipeline used {oc:.2}) × CPU efficiency {e:.3} = {:.3}",
            wc / oc * e
        );
    }
    if let (Some(r), Some(w)) = (
        ratios.worker_cpu_over_inference,
        worker.cpu.bench_process_cpu_ms_per_input,
    ) {
        let wall = tract
            .iter()
            .find(|b| b.batch == 1)
            .map_or(f64::NAN, |b| b.p50_per_input_us / 1e3);
        println!(
            "  worker CPU per input ÷ inference CPU = {w:.2} ms ÷ {:.2} ms (engine alone, batch 1; p50 wall {wall:.2} ms) = {r:.2} (target ≤ 1.5){}",
            w / r,
            verdict(r <= 1.5)
        );
    }
    if let Some(idle) = worker.cpu.machine_idle {
        let c = |v: Option<f64>| {
            worker
                .cpu
                .cores(v)
                .map_or_else(|| "n/a".into(), |c| format!("{c:.2}"))
        };
        println!(
            "  during the drain the machine's {cores} cores went to: worker process {}, broker {}, other {}, idle {:.2}",
            c(worker.cpu.bench_process_cpu_seconds),
            c(worker.cpu.broker_cpu_seconds),
            c(worker.cpu.other_cpu_seconds),
            idle * cores as f64
        );
    }
    if let Some(d) = ratios.e2e_p99_minus_model_p50_ms {
        let load = latency.first().map(|l| l.load * 100.0).unwrap_or(f64::NAN);
        println!(
            "  e2e p99 − model p50 at {load:.0}% load = {d:.1} ms (target ≤ 10 ms){}",
            verdict(d <= 10.0)
        );
    }
    println!(
        "  offline/tract (batch 1, 1 thread) = {:.4}: the pipeline runs at {:.1}% of the model's single-thread speed",
        ratios.offline_over_tract_batch_1,
        ratios.offline_over_tract_batch_1 * 100.0
    );
    if let Some(best) = tract
        .iter()
        .min_by(|a, b| a.p50_per_input_us.total_cmp(&b.p50_per_input_us))
    {
        println!(
            "  cheapest per input in tract: batch {} at {:.1} µs/input = {:.2}× batch 1",
            best.batch, best.p50_per_input_us, best.relative_to_batch_1
        );
    }
}

impl Report {
    #[allow(clippy::too_many_arguments)]
    fn new(
        options: &WorkerBenchOptions,
        setup: &Setup,
        loadavg_end: Option<String>,
        tract: Vec<BatchResult>,
        offline: OfflineResult,
        worker: WorkerResult,
        latency: Vec<LatencyResult>,
        ratios: Ratios,
    ) -> Self {
        Report {
            time_us: now_us(),
            model: setup.model.model_ref().name.clone(),
            model_version: setup.model.model_ref().version.clone(),
            frame: setup.inputs.clone(),
            distinct_frames: setup.pool.len(),
            mean_frame_bytes: setup.mean_bytes,
            worker_decode_threads: setup.shape.decode_threads,
            worker_inference_threads: setup.shape.inference_threads,
            worker_max_batch: setup.shape.max_batch,
            worker_max_in_flight: setup.shape.max_in_flight,
            offline_threads: setup.threads,
            load_capacity_per_s: options.capacity,
            relay: options.relay,
            brokers: options.kafka.brokers.clone(),
            kafka_options: options
                .kafka
                .options
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            worker_kafka_options: options.worker_options.clone(),
            cores: cores(),
            loadavg_start: setup.loadavg_start.clone(),
            loadavg_end,
            tract,
            offline,
            worker,
            latency,
            ratios,
        }
    }
}

fn check(o: &WorkerBenchOptions, threads: usize) -> Result<(), BenchError> {
    if o.frames == 0 {
        return Err(usage("--frames must be at least 1"));
    }
    if o.frames_spec.distinct_frames == 0 {
        return Err(usage("--distinct-frames must be at least 1"));
    }
    if threads == 0 {
        return Err(usage("--offline-threads must be at least 1"));
    }
    let s = &o.frames_spec;
    if s.cameras == 0 || s.width < 32 || s.height < 32 {
        return Err(usage(
            "synthetic frames need --cameras ≥ 1 and at least 32x32 pixels",
        ));
    }
    if o.partitions < 1 {
        return Err(usage("--partitions must be at least 1"));
    }
    if o.batch_sizes.iter().any(|&b| b == 0 || b > 1024) {
        return Err(usage("--batch-sizes must be within 1..=1024"));
    }
    if o.loads.iter().any(|l| !l.is_finite() || *l <= 0.0) {
        return Err(usage(
            "--loads must be positive fractions of capacity, e.g. 0.5,0.8",
        ));
    }
    if o.capacity.is_some_and(|c| !c.is_finite() || c <= 0.0) {
        return Err(usage("--capacity must be a positive number of inputs/s"));
    }
    if o.latency_duration.is_zero() || o.tract_duration.is_zero() {
        return Err(usage(
            "--latency-duration and --tract-duration must be positive",
        ));
    }
    check_json_path(o.json.as_deref())
}
