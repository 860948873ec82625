//! `argus bench`: one run on a real broker that measures where a worker's time goes, so the
//! worker can be compared with what the model and the pipeline allow on the same machine.
//!
//! 1. **tract alone**: `Classifier::infer` on preprocessed tensors in memory, one thread,
//!    for several batch sizes (cost per input, to choose a default batch size).
//! 2. **offline pipeline**: envelope bytes → `decode_envelope` → `Classifier::classify`
//!    (decode, preprocess, infer, postprocess) from memory, on as many threads as the worker
//!    infers with.
//! 3. **worker**: one in-process `argus_worker::run` draining a pre-filled, freshly created
//!    topic; timed from the first consumed input to the last finished one (group join
//!    excluded).
//! 4. **end-to-end latency** at fractions of the capacity measured in 3: a fixed-rate
//!    producer stamps each frame with its *intended* send time (so a late send counts as
//!    latency: no coordinated omission) and a `read_committed` subscriber on the
//!    predictions topic measures receive time − capture time.
//!
//! Synthetic frames are rendered and JPEG-encoded once (a pool of distinct frames) and
//! cycled, so rendering does not compete with the measured work.
use crate::cli::{parse_duration, KafkaArgs};
use crate::work::load_model;
use crate::CliError;
use anyhow::anyhow;
use argus_kafka::rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use argus_kafka::rdkafka::client::DefaultClientContext;
use argus_kafka::rdkafka::consumer::{Consumer, StreamConsumer};
use argus_kafka::rdkafka::error::KafkaError;
use argus_kafka::rdkafka::message::{Header, OwnedHeaders};
use argus_kafka::rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use argus_kafka::rdkafka::types::RDKafkaErrorCode;
use argus_kafka::rdkafka::{Message, Timestamp};
use argus_kafka::{KafkaSettings, TopicSpec};
use argus_model::{Classifier, Prepared};
use argus_producer::{Frame, SyntheticSource};
use argus_wire::{
    decode_envelope, encode_envelope, headers as h, now_us, Prediction, ENVELOPE_SCHEMA,
};
use argus_worker::{WorkerConfig, WorkerStats};
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// `argus bench` flags.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Model bundle directory (manifest.toml + model.onnx).
    #[arg(long, default_value = "models/camera-person")]
    pub model: PathBuf,
    /// Frames run through the offline pipeline and pre-filled into the worker's topic.
    #[arg(long, default_value_t = 5000)]
    pub frames: u64,
    /// How long the fixed-rate producer runs at each load level.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub latency_duration: Duration,
    /// Load levels for the latency stage, as fractions of the measured worker capacity.
    #[arg(long, value_delimiter = ',', default_value = "0.5,0.8")]
    pub loads: Vec<f64>,
    /// Batch sizes for the tract-alone stage (1 is always measured).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16")]
    pub batch_sizes: Vec<usize>,
    /// Time spent per batch size in the tract-alone stage.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub tract_duration: Duration,
    /// The worker's model threads [default: the worker's default].
    #[arg(long)]
    pub inference_threads: Option<usize>,
    /// The worker's decode/preprocess threads [default: the worker's default].
    #[arg(long)]
    pub decode_threads: Option<usize>,
    /// The worker's largest batch per model call [default: the worker's default].
    #[arg(long)]
    pub max_batch: Option<usize>,
    /// The worker's bound on inputs in flight [default: the worker's default].
    #[arg(long)]
    pub max_in_flight: Option<usize>,
    /// Threads of the offline pipeline, each decoding and inferring whole inputs [default:
    /// the worker's decode or inference threads, whichever is more].
    #[arg(long)]
    pub offline_threads: Option<usize>,
    /// Distinct synthetic frames rendered up front and cycled through.
    #[arg(long, default_value_t = 128)]
    pub distinct_frames: usize,
    /// Synthetic cameras (Kafka keys).
    #[arg(long, default_value_t = 4)]
    pub cameras: u32,
    /// Frame width in pixels.
    #[arg(long, default_value_t = 640)]
    pub width: u32,
    /// Frame height in pixels.
    #[arg(long, default_value_t = 480)]
    pub height: u32,
    /// Scenes are deterministic from this seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// JPEG quality of the frames.
    #[arg(long, default_value_t = 85, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub jpeg_quality: u8,
    /// Partitions of the benchmark's input topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// Write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Leave the benchmark's topics on the broker (they are deleted by default).
    #[arg(long)]
    pub keep_topics: bool,
    /// librdkafka property for the worker's consumer and producer only (after `-X`), e.g.
    /// `--worker-option linger.ms=0` (repeatable). `-X` applies to every client of the run:
    /// the worker's, the load generator and the predictions subscriber.
    #[arg(long = "worker-option", value_name = "KEY=VALUE", value_parser = parse_option)]
    pub worker_options: Vec<(String, String)>,
    /// Pid of the Kafka broker whose CPU time is reported [default: every local process
    /// with `kafka.Kafka` on its command line].
    #[arg(long)]
    pub broker_pid: Option<u32>,
    #[command(flatten)]
    pub engine: crate::cli::EngineArgs,
    /// Run only the stages without Kafka (engine alone, offline pipeline); with `--json`,
    /// write those (`bench/run` uses this for "the engine's own speed").
    #[arg(long)]
    pub offline_only: bool,
}

fn parse_option(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// One batch size of the tract-alone stage.
#[derive(Debug, Clone, Serialize)]
struct BatchResult {
    batch: usize,
    calls: usize,
    inputs_per_s: f64,
    p50_call_us: f64,
    p50_per_input_us: f64,
    /// p50 per input relative to batch 1.
    relative_to_batch_1: f64,
}

#[derive(Debug, Clone, Serialize)]
struct OfflineResult {
    threads: usize,
    inputs: u64,
    errors: u64,
    seconds: f64,
    inputs_per_s: f64,
    /// Decode + preprocess + infer + postprocess of one input, one thread's view.
    p50_per_input_us: f64,
    /// Whole machine (all processes, the broker too), from /proc/stat.
    machine_cpu_busy: Option<f64>,
    /// CPU time by process over the timed part.
    cpu: CpuUse,
}

#[derive(Debug, Clone, Serialize)]
struct WorkerResult {
    frames: u64,
    partitions: i32,
    prefill_seconds: f64,
    group_join_seconds: f64,
    seconds: f64,
    predicted: u64,
    dead_lettered: u64,
    /// Stale, abandoned (partition revoked) or undelivered: none is expected.
    other: u64,
    inputs_per_s: f64,
    /// Times the worker paused its partitions (backpressure).
    pauses: u64,
    machine_cpu_busy: Option<f64>,
    /// CPU time by process over the drain; the bench process is the worker (the bench
    /// itself only polls a counter every millisecond meanwhile).
    cpu: CpuUse,
    /// CPU time of the bench process's threads over the drain, grouped by thread name.
    threads: Vec<ThreadGroup>,
    internals: WorkerInternals,
}

#[derive(Debug, Clone, Serialize)]
struct LatencyResult {
    load: f64,
    rate_per_s: f64,
    sent: u64,
    received: u64,
    /// Largest delay of a send behind its schedule (already counted in the latencies).
    producer_max_behind_ms: f64,
    /// Medians of the worker's own timings in the received predictions.
    worker_p50: WorkerTimings,
    /// Where the latency goes: medians over all predictions, and over the slowest 1%.
    breakdown_p50: Breakdown,
    breakdown_slowest: Breakdown,
    /// Times the worker paused its partitions while this level was sent.
    pauses: u64,
    /// While this level was sent; the load generator and subscriber run on the same machine.
    machine_cpu_busy: Option<f64>,
    /// While this level was sent; the bench process is the worker plus the load generator
    /// and the subscriber.
    cpu: CpuUse,
    /// From the start of sending to the last of this level's predictions received.
    internals: WorkerInternals,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// Medians of a prediction's `timings`, ms.
#[derive(Debug, Clone, Serialize)]
struct WorkerTimings {
    /// Consumed → decoding started.
    queue_ms: f64,
    decode_preprocess_ms: f64,
    /// The batch's model call divided by the batch size.
    inference_ms: f64,
    /// Capture → prediction built (before it is produced and acknowledged).
    capture_to_output_ms: f64,
}

/// One prediction's latency split by its `timings` and the broker's append time (medians of
/// each part over a set of predictions, so the parts need not add up exactly).
#[derive(Debug, Clone, Serialize)]
struct Breakdown {
    records: usize,
    latency_ms: f64,
    /// capture → prediction built, minus queue, decode, preprocess, inference and
    /// postprocess: the input's way into the worker (load generator's linger, broker,
    /// fetch) plus waits for the inference thread and for partition order.
    before_ms: f64,
    /// Consumed → decoding started (includes waiting for a decode thread).
    queue_ms: f64,
    decode_preprocess_ms: f64,
    /// Prediction built → received by the subscriber.
    after_ms: f64,
    /// Prediction built → appended by the broker (the worker's producer: linger, request,
    /// broker queueing); ms resolution.
    built_to_appended_ms: f64,
    /// Appended → received by the subscriber (its fetch, read_committed).
    appended_to_received_ms: f64,
}

/// Medians over the records at or above the `from` quantile of latency.
fn breakdown(records: &[Record], from: f64) -> Breakdown {
    let mut sorted: Vec<&Record> = records.iter().collect();
    sorted.sort_by(|a, b| a.latency_ms.total_cmp(&b.latency_ms));
    let skip = ((sorted.len() as f64) * from).floor() as usize;
    let set = &sorted[skip.min(sorted.len())..];
    let median = |f: &dyn Fn(&Record) -> Option<f64>| {
        let mut v: Vec<f64> = set.iter().filter_map(|r| f(r)).collect();
        v.sort_by(f64::total_cmp);
        percentile(&v, 0.5)
    };
    let ms = |us: i64| us as f64 / 1e3;
    let built = |r: &Record| {
        r.capture_us
            + i64::try_from(r.timings.capture_to_output_us.unwrap_or(0)).unwrap_or(i64::MAX / 2)
    };
    Breakdown {
        records: set.len(),
        latency_ms: median(&|r| Some(r.latency_ms)),
        before_ms: median(&|r| {
            let t = &r.timings;
            let inside =
                t.queue_us + t.decode_us + t.preprocess_us + t.inference_us + t.postprocess_us;
            Some(ms(
                i64::try_from(t.capture_to_output_us?).ok()? - i64::try_from(inside).ok()?
            ))
        }),
        queue_ms: median(&|r| Some(r.timings.queue_us as f64 / 1e3)),
        decode_preprocess_ms: median(&|r| {
            Some((r.timings.decode_us + r.timings.preprocess_us) as f64 / 1e3)
        }),
        after_ms: median(&|r| Some(ms(r.received_us - built(r)))),
        built_to_appended_ms: median(&|r| Some(ms(r.appended_us? - built(r)))),
        appended_to_received_ms: median(&|r| Some(ms(r.received_us - r.appended_us?))),
    }
}

/// What the predictions subscriber saw of one record.
#[derive(Debug)]
struct Seen {
    received_us: i64,
    capture_us: Option<i64>,
    timings: Option<argus_wire::Timings>,
    /// The broker's append time (the predictions topic has `LogAppendTime`), µs.
    appended_us: Option<i64>,
}

/// One received prediction of a latency level.
#[derive(Debug, Clone, Copy)]
struct Record {
    latency_ms: f64,
    capture_us: i64,
    received_us: i64,
    appended_us: Option<i64>,
    timings: argus_wire::Timings,
}

#[derive(Debug, Clone, Serialize)]
struct Ratios {
    worker_over_offline: f64,
    /// Offline CPU-ms per input ÷ the worker process's CPU-ms per input during the drain:
    /// 1.0 means the worker spends no CPU per input beyond the offline pipeline's.
    cpu_efficiency_offline_over_worker: Option<f64>,
    offline_over_tract_batch_1: f64,
    /// e2e p99 at the first load level minus the model's p50 inference (batch 1), ms.
    e2e_p99_minus_model_p50_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
struct Report {
    time_us: i64,
    model: String,
    model_version: String,
    frame: String,
    distinct_frames: usize,
    mean_frame_bytes: f64,
    worker_decode_threads: usize,
    worker_inference_threads: usize,
    worker_max_batch: usize,
    worker_max_in_flight: usize,
    offline_threads: usize,
    brokers: String,
    /// `-X` (every client) and `--worker-option` (worker only) librdkafka properties.
    kafka_options: Vec<(String, String)>,
    worker_kafka_options: Vec<(String, String)>,
    cores: usize,
    /// /proc/loadavg when the run started and when it ended.
    loadavg_start: Option<String>,
    loadavg_end: Option<String>,
    tract: Vec<BatchResult>,
    offline: OfflineResult,
    worker: WorkerResult,
    latency: Vec<LatencyResult>,
    ratios: Ratios,
}

fn runtime(e: impl Into<anyhow::Error>) -> CliError {
    CliError::Runtime(e.into())
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

pub async fn run(args: BenchArgs) -> Result<(), CliError> {
    let started = Instant::now();
    let loadavg_start = loadavg();
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let shape = worker_shape(&args);
    let threads = args
        .offline_threads
        .unwrap_or(shape.decode_threads.max(shape.inference_threads));
    check_args(&args, threads)?;
    let mut batch_sizes = args.batch_sizes.clone();
    if !batch_sizes.contains(&1) {
        batch_sizes.insert(0, 1);
    }
    let model = load_model(
        &args.model,
        &args.engine.options(shape.inference_threads.max(threads)),
    )?;
    let source = SyntheticSource {
        seed: args.seed,
        cameras: args.cameras,
        fps: 1.0,
        width: args.width,
        height: args.height,
        jpeg_quality: args.jpeg_quality,
        brighten: None,
    };
    let t = Instant::now();
    let pool = Arc::new(render_pool(&source, args.distinct_frames).await?);
    let mean_bytes = pool
        .iter()
        .map(|f| match &f.envelope.payload {
            argus_wire::Payload::Encoded { bytes, .. } => bytes.len() as f64,
            _ => 0.0,
        })
        .sum::<f64>()
        / pool.len() as f64;
    println!(
        "argus bench: model {} v{} on {} (input {:?}), {} distinct {}x{} JPEG q{} frames from {} synthetic cameras (mean {:.1} kB, rendered in {:.1} s); worker: {} decode threads, {} inference threads, max batch {}, max in flight {}; offline pipeline: {} threads; broker {}",
        model.model_ref().name,
        model.model_ref().version,
        model.engine(),
        model.manifest().input.shape,
        pool.len(),
        args.width,
        args.height,
        args.jpeg_quality,
        args.cameras,
        mean_bytes / 1e3,
        t.elapsed().as_secs_f64(),
        shape.decode_threads,
        shape.inference_threads,
        shape.max_batch,
        shape.max_in_flight,
        threads,
        args.kafka.brokers,
    );
    let kv = |o: &[(String, String)]| {
        o.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let brokers = broker_pids(args.broker_pid);
    println!(
        "  -X (every client): [{}]; --worker-option (worker only): [{}]; {cores} cores; load average {}; broker CPU from {}",
        kv(&args.kafka.kafka_option),
        kv(&args.worker_options),
        loadavg_start.as_deref().unwrap_or("n/a"),
        if brokers.is_empty() {
            "nowhere: no local kafka.Kafka process found (--broker-pid)".to_string()
        } else {
            format!("pid {brokers:?}")
        }
    );

    // 1. tract alone.
    let tract = {
        let (model, pool, sizes, dur) = (
            model.clone(),
            pool.clone(),
            batch_sizes.clone(),
            args.tract_duration,
        );
        tokio::task::spawn_blocking(move || bench_tract(&model, &pool, &sizes, dur))
            .await
            .map_err(runtime)??
    };
    let model_p50_us = tract
        .iter()
        .find(|b| b.batch == 1)
        .map(|b| b.p50_call_us)
        .unwrap_or(f64::NAN);
    print_tract(&tract);

    // 2. offline pipeline.
    let offline = {
        let (model, pool, frames, broker) =
            (model.clone(), pool.clone(), args.frames, args.broker_pid);
        tokio::task::spawn_blocking(move || bench_offline(&model, &pool, frames, threads, broker))
            .await
            .map_err(runtime)??
    };
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
        return Err(runtime(anyhow!(
            "{} of {} frames failed in the offline pipeline",
            offline.errors,
            offline.inputs
        )));
    }

    if args.offline_only {
        if let Some(path) = &args.json {
            let report = serde_json::json!({
                "time_us": now_us(),
                "model": model.model_ref().name,
                "engine": model.engine().as_str(),
                "offline_threads": threads,
                "engine_alone": tract,
                "offline": offline,
            });
            let json = serde_json::to_string_pretty(&report).map_err(runtime)?;
            std::fs::write(path, json + "\n")
                .map_err(|e| runtime(anyhow!("cannot write {}: {e}", path.display())))?;
        }
        return Ok(());
    }

    // 3 and 4 on the broker.
    crate::telemetry::metrics_handle();
    let interrupted = crate::shutdown::on_signal();
    let settings = args.kafka.settings();
    let run_id = format!("{}-{}", std::process::id(), now_us() / 1_000_000);
    let topics = BenchTopics {
        input: format!("argus-bench-{run_id}.frames"),
        predictions: format!("argus-bench-{run_id}.predictions"),
        alerts: format!("argus-bench-{run_id}.alerts"),
        dlq: format!("argus-bench-{run_id}.dlq"),
    };
    // The predictions topic stamps records with the broker's append time, which splits
    // "prediction built → received" into the worker's producer and the subscriber's side.
    create_topic(
        &settings,
        &topics.predictions,
        4,
        &[("message.timestamp.type", "LogAppendTime")],
    )
    .await
    .map_err(|e| runtime(anyhow!("cannot create {}: {e}", topics.predictions)))?;
    argus_kafka::ensure_topics(
        &settings,
        &[
            TopicSpec::new(&topics.input, args.partitions),
            TopicSpec::new(&topics.predictions, 4),
            TopicSpec::new(&topics.alerts, 4),
            TopicSpec::new(&topics.dlq, 1),
        ],
    )
    .await
    .map_err(runtime)?;
    let mut session = KafkaSession {
        args: &args,
        settings: &settings,
        topics: &topics,
        model: model.clone(),
        pool: pool.clone(),
        shape,
        run_id: run_id.clone(),
        interrupted,
        worker: None,
    };
    let outcome = session.run(offline.inputs_per_s).await;
    session.stop_worker().await;
    if args.keep_topics {
        println!("topics kept: {}", topics.all().join(", "));
    } else {
        // The worker's consumer can outlive `run` for a moment (a blocking watermark fetch
        // still holds it); deleting its topic under it makes librdkafka log errors.
        tokio::time::sleep(Duration::from_secs(3)).await;
        if let Err(e) = delete_topics(&settings, &topics.all()).await {
            tracing::warn!(error = %e, "could not delete the benchmark's topics");
        }
    }
    let (worker, latency) = outcome?;

    // Ratios.
    let tract1 = tract.iter().find(|b| b.batch == 1);
    let cpu_efficiency = offline
        .cpu
        .bench_process_cpu_ms_per_input
        .zip(worker.cpu.bench_process_cpu_ms_per_input)
        .filter(|(_, w)| *w > 0.0)
        .map(|(o, w)| o / w);
    let ratios = Ratios {
        worker_over_offline: worker.inputs_per_s / offline.inputs_per_s,
        cpu_efficiency_offline_over_worker: cpu_efficiency,
        offline_over_tract_batch_1: offline.inputs_per_s
            / tract1.map(|b| b.inputs_per_s).unwrap_or(f64::NAN),
        e2e_p99_minus_model_p50_ms: latency.first().map(|l| l.p99_ms - model_p50_us / 1e3),
    };
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
        cpu_efficiency,
    ) {
        println!(
            "  worker/offline = (cores the worker process used {wc:.2} ÷ cores the offline pipeline used {oc:.2}) × CPU efficiency {e:.3} = {:.3}",
            wc / oc * e
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
    let loadavg_end = loadavg();
    println!(
        "total run time {:.1} s; load average {}",
        started.elapsed().as_secs_f64(),
        loadavg_end.as_deref().unwrap_or("n/a")
    );

    if let Some(path) = &args.json {
        let report = Report {
            time_us: now_us(),
            model: model.model_ref().name.clone(),
            model_version: model.model_ref().version.clone(),
            frame: format!(
                "{}x{} JPEG q{}, {} cameras, seed {}",
                args.width, args.height, args.jpeg_quality, args.cameras, args.seed
            ),
            distinct_frames: pool.len(),
            mean_frame_bytes: mean_bytes,
            worker_decode_threads: shape.decode_threads,
            worker_inference_threads: shape.inference_threads,
            worker_max_batch: shape.max_batch,
            worker_max_in_flight: shape.max_in_flight,
            offline_threads: threads,
            brokers: args.kafka.brokers.clone(),
            kafka_options: args.kafka.kafka_option.clone(),
            worker_kafka_options: args.worker_options.clone(),
            cores,
            loadavg_start,
            loadavg_end,
            tract,
            offline,
            worker,
            latency,
            ratios,
        };
        let json = serde_json::to_string_pretty(&report).map_err(runtime)?;
        std::fs::write(path, json + "\n")
            .map_err(|e| runtime(anyhow!("cannot write {}: {e}", path.display())))?;
        println!("results written to {}", path.display());
    }
    Ok(())
}

/// Inputs the worker finished without a prediction or a DLQ record.
pub(crate) fn others(s: &WorkerStats) -> u64 {
    s.stale.load(Ordering::Relaxed)
        + s.abandoned.load(Ordering::Relaxed)
        + s.undelivered.load(Ordering::Relaxed)
}

/// The worker's thread and batch settings: its defaults, overridden by flags.
#[derive(Debug, Clone, Copy)]
struct WorkerShape {
    inference_threads: usize,
    decode_threads: usize,
    max_batch: usize,
    max_in_flight: usize,
}

fn worker_shape(args: &BenchArgs) -> WorkerShape {
    let defaults = WorkerConfig::new("bench", Vec::new());
    WorkerShape {
        inference_threads: args.inference_threads.unwrap_or(defaults.inference_threads),
        decode_threads: args.decode_threads.unwrap_or(defaults.decode_threads),
        max_batch: args.max_batch.unwrap_or(defaults.max_batch),
        max_in_flight: args.max_in_flight.unwrap_or(defaults.max_in_flight),
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "  met"
    } else {
        "  NOT MET"
    }
}

fn check_args(args: &BenchArgs, threads: usize) -> Result<(), CliError> {
    let usage = |m: &str| Err(CliError::Usage(m.to_string()));
    if args.frames == 0 {
        return usage("--frames must be at least 1");
    }
    if args.distinct_frames == 0 {
        return usage("--distinct-frames must be at least 1");
    }
    if threads == 0 {
        return usage("--offline-threads must be at least 1");
    }
    if args.cameras == 0 || args.width < 32 || args.height < 32 {
        return usage("synthetic frames need --cameras ≥ 1 and at least 32x32 pixels");
    }
    if args.partitions < 1 {
        return usage("--partitions must be at least 1");
    }
    if args.batch_sizes.iter().any(|&b| b == 0 || b > 1024) {
        return usage("--batch-sizes must be within 1..=1024");
    }
    if args.loads.iter().any(|l| !l.is_finite() || *l <= 0.0) {
        return usage("--loads must be positive fractions of capacity, e.g. 0.5,0.8");
    }
    if args.latency_duration.is_zero() || args.tract_duration.is_zero() {
        return usage("--latency-duration and --tract-duration must be positive");
    }
    if let Some(path) = &args.json {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        if !dir.is_dir() {
            return Err(CliError::Usage(format!(
                "--json {}: folder {} does not exist",
                path.display(),
                dir.display()
            )));
        }
    }
    Ok(())
}

/// Renders and encodes `n` distinct frames on every core.
pub(crate) async fn render_pool(
    source: &SyntheticSource,
    n: usize,
) -> Result<Vec<Frame>, CliError> {
    let source = source.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Frame>> {
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        let results: Vec<Vec<(usize, Result<Frame, String>)>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..cores)
                .map(|t| {
                    let source = &source;
                    s.spawn(move || {
                        (t..n)
                            .step_by(cores)
                            .map(|i| {
                                let f = source.frame(i as u64, now_us()).map_err(|e| e.to_string());
                                (i, f)
                            })
                            .collect()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        });
        let mut frames: Vec<(usize, Frame)> = Vec::with_capacity(n);
        for (i, f) in results.into_iter().flatten() {
            frames.push((i, f.map_err(|e| anyhow!("JPEG encoding failed: {e}"))?));
        }
        if frames.len() != n {
            return Err(anyhow!("frame rendering thread failed"));
        }
        frames.sort_by_key(|(i, _)| *i);
        Ok(frames.into_iter().map(|(_, f)| f).collect())
    })
    .await
    .map_err(runtime)?
    .map_err(CliError::Runtime)
}

/// The bincode envelope of pool frame `frame` as message `sequence`, captured at `capture_us`.
pub(crate) fn envelope_bytes(
    frame: &Frame,
    sequence: u64,
    capture_us: i64,
) -> Result<Vec<u8>, CliError> {
    let mut envelope = frame.envelope.clone();
    envelope.sequence = sequence;
    envelope.capture_time_us = capture_us;
    encode_envelope(&envelope).map_err(runtime)
}

fn bench_tract(
    model: &Classifier,
    pool: &[Frame],
    sizes: &[usize],
    per_size: Duration,
) -> Result<Vec<BatchResult>, CliError> {
    let prepared: Vec<Prepared> = pool
        .iter()
        .map(|f| model.prepare(&f.envelope.payload))
        .collect::<Result<_, _>>()
        .map_err(runtime)?;
    let mut out: Vec<BatchResult> = Vec::new();
    for &n in sizes {
        model.warm(n).map_err(runtime)?;
        let batch = |k: usize| {
            (0..n)
                .map(|j| prepared[(k + j) % prepared.len()].data.as_slice())
                .collect::<Vec<&[f32]>>()
        };
        for k in 0..3 {
            model.infer(&batch(k * n)).map_err(runtime)?;
        }
        let mut calls: Vec<f64> = Vec::new();
        let start = Instant::now();
        let mut k = 0;
        while start.elapsed() < per_size || calls.len() < 10 {
            let inputs = batch(k);
            k += n;
            let t = Instant::now();
            model.infer(&inputs).map_err(runtime)?;
            calls.push(micros(t.elapsed()));
        }
        let total_us: f64 = calls.iter().sum();
        let count = calls.len();
        calls.sort_by(f64::total_cmp);
        let p50 = percentile(&calls, 0.5);
        let per_input = p50 / n as f64;
        let base = out
            .iter()
            .find(|b| b.batch == 1)
            .map_or(per_input, |b| b.p50_per_input_us);
        out.push(BatchResult {
            batch: n,
            calls: count,
            inputs_per_s: (count * n) as f64 / (total_us / 1e6),
            p50_call_us: p50,
            p50_per_input_us: per_input,
            relative_to_batch_1: per_input / base,
        });
    }
    Ok(out)
}

fn print_tract(tract: &[BatchResult]) {
    println!();
    println!(
        "stage 1  engine alone: Classifier::infer on preprocessed tensors in memory, 1 thread"
    );
    println!(
        "  {:>5} {:>8} {:>11} {:>12} {:>13} {:>11}",
        "batch", "calls", "inputs/s", "p50/call µs", "p50/input µs", "vs batch 1"
    );
    for b in tract {
        println!(
            "  {:>5} {:>8} {:>11.0} {:>12.1} {:>13.2} {:>11.2}",
            b.batch,
            b.calls,
            b.inputs_per_s,
            b.p50_call_us,
            b.p50_per_input_us,
            b.relative_to_batch_1
        );
    }
}

fn bench_offline(
    model: &Classifier,
    pool: &[Frame],
    frames: u64,
    threads: usize,
    broker_pid: Option<u32>,
) -> Result<OfflineResult, CliError> {
    let envelopes: Vec<Vec<u8>> = pool
        .iter()
        .enumerate()
        .map(|(i, f)| envelope_bytes(f, i as u64, now_us()))
        .collect::<Result<_, _>>()?;
    // Warm-up outside the timing: caches, allocator.
    for e in envelopes.iter().take(8) {
        let env = decode_envelope(e).map_err(runtime)?;
        model.classify(&env.payload).map_err(runtime)?;
    }
    let next = AtomicU64::new(0);
    let errors = AtomicU64::new(0);
    let mark = CpuMark::now(broker_pid);
    let cpu = mark.machine;
    let start = Instant::now();
    let mut per_input: Vec<f64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut times = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= frames {
                            break;
                        }
                        let bytes = &envelopes[(i % envelopes.len() as u64) as usize];
                        let t = Instant::now();
                        let ok = decode_envelope(bytes)
                            .ok()
                            .and_then(|e| model.classify(&e.payload).ok())
                            .is_some();
                        times.push(micros(t.elapsed()));
                        if !ok {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    times
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let seconds = start.elapsed().as_secs_f64();
    let end = CpuMark::now(broker_pid);
    let machine_cpu_busy = cpu_busy(cpu, end.machine);
    per_input.sort_by(f64::total_cmp);
    if per_input.len() as u64 != frames {
        return Err(runtime(anyhow!("an offline pipeline thread failed")));
    }
    Ok(OfflineResult {
        threads,
        inputs: frames,
        errors: errors.load(Ordering::Relaxed),
        seconds,
        inputs_per_s: frames as f64 / seconds,
        p50_per_input_us: percentile(&per_input, 0.5),
        machine_cpu_busy,
        cpu: mark.until(&end, frames),
    })
}

struct BenchTopics {
    input: String,
    predictions: String,
    alerts: String,
    dlq: String,
}

impl BenchTopics {
    fn all(&self) -> Vec<String> {
        vec![
            self.input.clone(),
            self.predictions.clone(),
            self.alerts.clone(),
            self.dlq.clone(),
        ]
    }
}

type WorkerTask = tokio::task::JoinHandle<Result<(), argus_worker::WorkerError>>;

/// The broker stages (3 and 4), which share one worker and one producer.
struct KafkaSession<'a> {
    args: &'a BenchArgs,
    settings: &'a KafkaSettings,
    topics: &'a BenchTopics,
    model: Arc<Classifier>,
    pool: Arc<Vec<Frame>>,
    shape: WorkerShape,
    run_id: String,
    interrupted: CancellationToken,
    worker: Option<(WorkerTask, CancellationToken)>,
}

impl KafkaSession<'_> {
    async fn run(
        &mut self,
        offline_rate: f64,
    ) -> Result<(WorkerResult, Vec<LatencyResult>), CliError> {
        let producer = self
            .settings
            .producer(&format!("argus-bench-producer-{}", self.run_id))
            .map_err(|e| CliError::Usage(e.to_string()))?;

        // 3. Pre-fill, then one worker drains the topic.
        let frames = self.args.frames;
        println!();
        println!(
            "stage 3  worker draining a pre-filled topic: {frames} frames in {} ({} partitions), one in-process worker, fresh group",
            self.topics.input, self.args.partitions
        );
        let t = Instant::now();
        let mut deliveries = Vec::with_capacity(usize::try_from(frames).unwrap_or(0));
        for i in 0..frames {
            let frame = &self.pool[(i % self.pool.len() as u64) as usize];
            let capture = now_us();
            let value = envelope_bytes(frame, i, capture)?;
            deliveries.push(enqueue(&producer, &self.topics.input, frame, &value, capture).await?);
        }
        let (ok, failed) = await_deliveries(deliveries).await;
        producer.flush(Duration::from_secs(30)).map_err(runtime)?;
        if failed > 0 {
            return Err(runtime(anyhow!(
                "{failed} of {frames} frames were not acknowledged by the broker"
            )));
        }
        let prefill_seconds = t.elapsed().as_secs_f64();
        println!(
            "  pre-filled {ok} frames in {prefill_seconds:.2} s ({:.0} frames/s)",
            ok as f64 / prefill_seconds
        );

        let stats = Arc::new(WorkerStats::default());
        self.start_worker(stats.clone())?;
        let t = Instant::now();
        let first = self
            .wait_for(
                Duration::from_secs(60),
                "the worker to join the group",
                || stats.consumed.load(Ordering::Relaxed) >= 1,
            )
            .await?;
        let mark = CpuMark::now(self.args.broker_pid);
        let threads_before = thread_ticks();
        let hist = histogram_totals();
        let cpu = mark.machine;
        let group_join_seconds = (first - t).as_secs_f64();
        let finished = |s: &WorkerStats| {
            s.predicted.load(Ordering::Relaxed)
                + s.dead_lettered.load(Ordering::Relaxed)
                + others(s)
        };
        // Generous: a quarter of the offline speed, plus a minute.
        let limit = Duration::from_secs_f64(60.0 + 4.0 * frames as f64 / offline_rate.max(1.0));
        let last = self
            .wait_for(limit, "the worker to finish the pre-filled frames", || {
                finished(&stats) >= frames
            })
            .await?;
        let end = CpuMark::now(self.args.broker_pid);
        let threads = thread_groups(&threads_before, &thread_ticks(), frames);
        let machine_cpu_busy = cpu_busy(cpu, end.machine);
        let seconds = (last - first).as_secs_f64();
        let worker = WorkerResult {
            frames,
            partitions: self.args.partitions,
            prefill_seconds,
            group_join_seconds,
            seconds,
            predicted: stats.predicted.load(Ordering::Relaxed),
            dead_lettered: stats.dead_lettered.load(Ordering::Relaxed),
            other: others(&stats),
            inputs_per_s: frames as f64 / seconds,
            pauses: stats.pauses.load(Ordering::Relaxed),
            machine_cpu_busy,
            cpu: mark.until(&end, frames),
            threads,
            internals: internals(&hist, &histogram_totals()),
        };
        println!(
            "  group join {:.2} s (excluded); {} inputs in {:.2} s = {:.1} inputs/s; predicted {}, dead-lettered {}, stale/abandoned/undelivered {}; pauses {}; machine CPU busy {}",
            worker.group_join_seconds,
            frames,
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

        // 4. Latency at fractions of that capacity, same worker (its group is joined).
        let latency = self
            .latency(&producer, &stats, worker.inputs_per_s, worker.predicted)
            .await?;
        Ok((worker, latency))
    }

    fn start_worker(&mut self, stats: Arc<WorkerStats>) -> Result<(), CliError> {
        let worker_id = format!("argus-bench-worker-{}", self.run_id);
        let mut config = WorkerConfig::new(worker_id.clone(), vec![self.topics.input.clone()]);
        config.topics.predictions = self.topics.predictions.clone();
        config.topics.alerts = self.topics.alerts.clone();
        config.topics.dlq = self.topics.dlq.clone();
        config.inference_threads = self.shape.inference_threads;
        config.decode_threads = self.shape.decode_threads;
        config.max_batch = self.shape.max_batch;
        config.max_in_flight = self.shape.max_in_flight;
        config.drain_timeout = Duration::from_secs(10);
        // As `argus work` runs by default, so alerts are published too.
        config.rules = crate::work::alert_rules(&[], &self.model);
        config
            .validate(self.model.labels())
            .map_err(CliError::Usage)?;
        let group = format!("argus-bench-{}", self.run_id);
        let mut settings = self.settings.clone();
        for (k, v) in &self.args.worker_options {
            settings.options.insert(k.clone(), v.clone());
        }
        let consumer = settings
            .consumer(&group, &worker_id)
            .map_err(|e| CliError::Usage(e.to_string()))?;
        let producer = settings
            .producer(&worker_id)
            .map_err(|e| CliError::Usage(e.to_string()))?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(argus_worker::run(
            config,
            consumer,
            producer,
            self.model.clone(),
            stats,
            stop.clone(),
        ));
        self.worker = Some((task, stop));
        Ok(())
    }

    async fn stop_worker(&mut self) {
        if let Some((task, stop)) = self.worker.take() {
            stop.cancel();
            match tokio::time::timeout(Duration::from_secs(30), task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "bench worker failed"),
                Ok(Err(e)) => tracing::warn!(error = %e, "bench worker task failed"),
                Err(_) => tracing::warn!("bench worker did not stop within 30 s"),
            }
        }
    }

    /// Polls `done` every millisecond; returns the instant it first held. Fails on timeout,
    /// Ctrl-C, or if the worker stopped.
    async fn wait_for(
        &mut self,
        limit: Duration,
        what: &str,
        done: impl Fn() -> bool,
    ) -> Result<Instant, CliError> {
        let start = Instant::now();
        loop {
            if done() {
                return Ok(Instant::now());
            }
            if self.interrupted.is_cancelled() {
                return Err(runtime(anyhow!("interrupted")));
            }
            if start.elapsed() > limit {
                return Err(runtime(anyhow!(
                    "gave up waiting for {what} after {:.0} s",
                    limit.as_secs_f64()
                )));
            }
            if self.worker.as_ref().is_some_and(|(t, _)| t.is_finished()) {
                let result = match self.worker.take() {
                    Some((task, _)) => task.await,
                    None => Ok(Ok(())),
                };
                return Err(match result {
                    Ok(Err(argus_worker::WorkerError::Config(m))) => CliError::Usage(m),
                    Ok(Err(e)) => runtime(e),
                    Err(e) => runtime(e),
                    Ok(Ok(())) => runtime(anyhow!("the worker stopped early")),
                });
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    async fn latency(
        &mut self,
        producer: &FutureProducer,
        stats: &WorkerStats,
        capacity: f64,
        already_predicted: u64,
    ) -> Result<Vec<LatencyResult>, CliError> {
        println!();
        println!(
            "stage 4  end-to-end latency: fixed-rate producer (capture time = intended send time) → worker → read_committed subscriber on {}; latency = receive time − capture time",
            self.topics.predictions
        );
        // The subscriber reads the predictions of stage 3 first, so once it has seen them
        // all it is assigned and positioned at the end.
        let tap: StreamConsumer = self
            .settings
            .consumer_config(
                &format!("argus-bench-tap-{}", self.run_id),
                "argus-bench-tap",
            )
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            // The lag statistics are the worker's business; the default context would log
            // them at info level every 5 s.
            .set("statistics.interval.ms", "0")
            .create()
            .map_err(|e| CliError::Usage(e.to_string()))?;
        tap.subscribe(&[&self.topics.predictions])
            .map_err(runtime)?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Seen>();
        let tap_stop = CancellationToken::new();
        let tap_task = {
            let stop = tap_stop.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        m = tap.recv() => match m {
                            Ok(m) => {
                                let received_us = now_us();
                                let p = m
                                    .payload()
                                    .and_then(|p| serde_json::from_slice::<Prediction>(p).ok());
                                let appended_us = match m.timestamp() {
                                    Timestamp::LogAppendTime(ms) => Some(ms * 1000),
                                    _ => None,
                                };
                                let seen = Seen {
                                    received_us,
                                    appended_us,
                                    capture_us: p.as_ref().and_then(|p| p.input.capture_time_us),
                                    timings: p.map(|p| p.timings),
                                };
                                if tx.send(seen).is_err() {
                                    break;
                                }
                            }
                            Err(e) => tracing::warn!(error = %e, "bench subscriber error"),
                        },
                    }
                }
            })
        };
        let result = self
            .latency_levels(producer, stats, capacity, already_predicted, &mut rx)
            .await;
        tap_stop.cancel();
        let _ = tap_task.await;
        result
    }

    async fn latency_levels(
        &mut self,
        producer: &FutureProducer,
        stats: &WorkerStats,
        capacity: f64,
        already_predicted: u64,
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<Seen>,
    ) -> Result<Vec<LatencyResult>, CliError> {
        let mut seen = 0u64;
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen < already_predicted {
            match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
                Ok(Some(_)) => seen += 1,
                Ok(None) | Err(_) => {
                    return Err(runtime(anyhow!(
                        "the predictions subscriber saw {seen} of the {already_predicted} stage-3 predictions within 60 s"
                    )))
                }
            }
        }
        println!(
            "  {:>5} {:>8} {:>6} {:>8} {:>9} {:>9} {:>9} {:>13} {:>7} {:>9}",
            "load",
            "rate/s",
            "sent",
            "received",
            "p50 ms",
            "p99 ms",
            "max ms",
            "send late ms",
            "pauses",
            "CPU busy"
        );
        let mut out = Vec::new();
        let mut sequence = self.args.frames;
        for &load in &self.args.loads {
            let rate = load * capacity;
            let n = ((rate * self.args.latency_duration.as_secs_f64()).round() as u64).max(1);
            let pauses = stats.pauses.load(Ordering::Relaxed);
            let mark = CpuMark::now(self.args.broker_pid);
            let hist = histogram_totals();
            let cpu = mark.machine;
            let t0 = tokio::time::Instant::now();
            let t0_us = now_us();
            let mut deliveries = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
            let mut max_behind = Duration::ZERO;
            for i in 0..n {
                if self.interrupted.is_cancelled() {
                    return Err(runtime(anyhow!("interrupted")));
                }
                let offset = Duration::from_secs_f64(i as f64 / rate);
                let due = t0 + offset;
                tokio::time::sleep_until(due).await;
                max_behind = max_behind.max(due.elapsed());
                let capture = t0_us + i64::try_from(offset.as_micros()).unwrap_or(i64::MAX);
                let frame = &self.pool[(sequence % self.pool.len() as u64) as usize];
                let value = envelope_bytes(frame, sequence, capture)?;
                sequence += 1;
                deliveries
                    .push(enqueue(producer, &self.topics.input, frame, &value, capture).await?);
            }
            let end = CpuMark::now(self.args.broker_pid);
            let machine_cpu_busy = cpu_busy(cpu, end.machine);
            let pauses = stats.pauses.load(Ordering::Relaxed) - pauses;
            let window_end = t0_us
                + i64::try_from(Duration::from_secs_f64(n as f64 / rate).as_micros())
                    .unwrap_or(i64::MAX);
            let mut latencies: Vec<f64> = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
            let mut timings_seen: Vec<argus_wire::Timings> = Vec::new();
            // (latency ms, that prediction's timings) for the breakdown.
            let mut records: Vec<Record> = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(30);
            while (latencies.len() as u64) < n {
                match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
                    Ok(Some(Seen {
                        received_us,
                        capture_us: Some(c),
                        timings,
                        appended_us,
                    })) if c >= t0_us && c < window_end => {
                        let latency = (received_us - c) as f64 / 1e3;
                        latencies.push(latency);
                        if let Some(t) = timings {
                            records.push(Record {
                                latency_ms: latency,
                                capture_us: c,
                                received_us,
                                appended_us,
                                timings: t,
                            });
                            timings_seen.push(t);
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            let (_, failed) = await_deliveries(deliveries).await;
            if failed > 0 {
                tracing::warn!(failed, "latency frames not acknowledged by the broker");
            }
            latencies.sort_by(f64::total_cmp);
            let r = LatencyResult {
                load,
                rate_per_s: rate,
                sent: n,
                received: latencies.len() as u64,
                producer_max_behind_ms: max_behind.as_secs_f64() * 1e3,
                p50_ms: percentile(&latencies, 0.5),
                p99_ms: percentile(&latencies, 0.99),
                max_ms: latencies.last().copied().unwrap_or(f64::NAN),
                worker_p50: worker_timings(&timings_seen),
                breakdown_p50: breakdown(&records, 0.0),
                breakdown_slowest: breakdown(&records, 0.99),
                pauses,
                machine_cpu_busy,
                cpu: mark.until(&end, n),
                internals: internals(&hist, &histogram_totals()),
            };
            println!(
                "  {:>4.0}% {:>8.1} {:>6} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>13.1} {:>7} {:>9}",
                r.load * 100.0,
                r.rate_per_s,
                r.sent,
                r.received,
                r.p50_ms,
                r.p99_ms,
                r.max_ms,
                r.producer_max_behind_ms,
                r.pauses,
                percent(r.machine_cpu_busy)
            );
            let w = &r.worker_p50;
            println!(
                "         worker's own p50: queue {:.2} ms, decode+preprocess {:.2} ms, inference {:.3} ms, capture → prediction built {:.2} ms",
                w.queue_ms, w.decode_preprocess_ms, w.inference_ms, w.capture_to_output_ms
            );
            for (what, b) in [
                ("all predictions", &r.breakdown_p50),
                ("slowest 1%", &r.breakdown_slowest),
            ] {
                println!(
                    "         medians, {what} ({}): capture → consumed + waits for model/order {:.2} ms | queue {:.2} | decode+preprocess {:.2} | built → received {:.2} (→ broker append {:.1}, append → subscriber {:.1}) | total {:.2}",
                    b.records, b.before_ms, b.queue_ms, b.decode_preprocess_ms, b.after_ms, b.built_to_appended_ms, b.appended_to_received_ms, b.latency_ms
                );
            }
            println!(
                "         {} (bench process = worker + load generator + subscriber)",
                r.cpu.line()
            );
            println!("         {}", r.internals.line());
            if r.received < r.sent {
                println!(
                    "  WARNING: {} predictions of this level did not arrive within 30 s",
                    r.sent - r.received
                );
            }
            out.push(r);
            // Let the queue empty before the next level.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Ok(out)
    }
}

/// (busy, total) jiffies of the whole machine from the first line of /proc/stat (Linux).
pub(crate) fn cpu_snapshot() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// The unit of CPU times in /proc (`USER_HZ`, 100 on every Linux the project targets).
pub(crate) const TICKS_PER_S: f64 = 100.0;

/// utime + stime of one process (all its threads, also those that have exited) or, with a
/// `/proc/<pid>/task/<tid>` path, of one thread, in ticks.
pub(crate) fn stat_ticks(dir: &str) -> Option<(String, u64)> {
    parse_stat(&std::fs::read_to_string(format!("{dir}/stat")).ok()?)
}

/// (name, utime + stime) from the text of a /proc stat file.
fn parse_stat(stat: &str) -> Option<(String, u64)> {
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_string();
    // After the name: state is field 3, utime field 14, stime field 15.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// Local Kafka broker processes: `--broker-pid`, or every process whose command line has
/// the argument `kafka.Kafka` (the broker's main class).
pub(crate) fn broker_pids(pinned: Option<u32>) -> Vec<u32> {
    if let Some(pid) = pinned {
        return vec![pid];
    }
    let own = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != own)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|arg| arg == b"kafka.Kafka"))
        })
        .collect()
}

/// CPU counters at one instant.
#[derive(Debug, Clone)]
struct CpuMark {
    at: Instant,
    bench: Option<u64>,
    /// (pid, ticks) per broker process.
    brokers: Vec<(u32, u64)>,
    /// (busy, total) ticks of the whole machine.
    machine: Option<(u64, u64)>,
}

impl CpuMark {
    fn now(broker_pid: Option<u32>) -> Self {
        let brokers = broker_pids(broker_pid)
            .into_iter()
            .filter_map(|pid| Some((pid, stat_ticks(&format!("/proc/{pid}"))?.1)))
            .collect();
        CpuMark {
            at: Instant::now(),
            bench: stat_ticks("/proc/self").map(|(_, t)| t),
            brokers,
            machine: cpu_snapshot(),
        }
    }

    /// CPU used from `self` to `end`, per input for `inputs` inputs.
    fn until(&self, end: &CpuMark, inputs: u64) -> CpuUse {
        let secs = |a: u64, b: u64| b.saturating_sub(a) as f64 / TICKS_PER_S;
        let per_input = |s: Option<f64>| s.map(|s| s * 1e3 / inputs.max(1) as f64);
        let bench = self.bench.zip(end.bench).map(|(a, b)| secs(a, b));
        // Only processes seen at both ends (a broker restarted meanwhile is not counted).
        let pairs: Vec<(u64, u64)> = self
            .brokers
            .iter()
            .filter_map(|(pid, a)| {
                let b = end.brokers.iter().find(|(p, _)| p == pid)?.1;
                Some((*a, b))
            })
            .collect();
        let broker = (!pairs.is_empty()).then(|| pairs.iter().map(|&(a, b)| secs(a, b)).sum());
        let machine = self
            .machine
            .zip(end.machine)
            .and_then(|((b0, t0), (b1, t1))| {
                let total = t1.checked_sub(t0).filter(|t| *t > 0)?;
                Some((secs(b0, b1), total as f64 / TICKS_PER_S))
            });
        let other = machine.map(|(busy, _)| busy - bench.unwrap_or(0.0) - broker.unwrap_or(0.0));
        CpuUse {
            wall_seconds: (end.at - self.at).as_secs_f64(),
            inputs,
            bench_process_cpu_seconds: bench,
            bench_process_cpu_ms_per_input: per_input(bench),
            broker_pids: self.brokers.iter().map(|(p, _)| *p).collect(),
            broker_cpu_seconds: broker,
            broker_cpu_ms_per_input: per_input(broker),
            other_cpu_seconds: other,
            other_cpu_ms_per_input: per_input(other),
            machine_cpu_seconds: machine.map(|(_, total)| total),
            machine_idle: machine.map(|(busy, total)| (1.0 - busy / total).max(0.0)),
        }
    }
}

/// CPU time used over one timed stage.
#[derive(Debug, Clone, Serialize)]
struct CpuUse {
    wall_seconds: f64,
    inputs: u64,
    /// utime + stime of the `argus bench` process (/proc/self/stat).
    bench_process_cpu_seconds: Option<f64>,
    bench_process_cpu_ms_per_input: Option<f64>,
    /// Local broker processes measured (empty: none found).
    broker_pids: Vec<u32>,
    broker_cpu_seconds: Option<f64>,
    broker_cpu_ms_per_input: Option<f64>,
    /// Machine busy time not accounted to the bench or the broker: other processes, and
    /// interrupt time the kernel charges to no process.
    other_cpu_seconds: Option<f64>,
    other_cpu_ms_per_input: Option<f64>,
    /// CPU time the machine had (wall time × cores), from /proc/stat.
    machine_cpu_seconds: Option<f64>,
    machine_idle: Option<f64>,
}

impl CpuUse {
    /// CPU seconds per wall second: cores used on average.
    fn cores(&self, seconds: Option<f64>) -> Option<f64> {
        seconds
            .filter(|_| self.wall_seconds > 0.0)
            .map(|s| s / self.wall_seconds)
    }

    /// A warning when processes other than the bench and the broker used more than a tenth
    /// of the machine: rates measured meanwhile are not comparable with a quiet machine's.
    fn contention(&self) -> Option<String> {
        let (other, machine) = (self.other_cpu_seconds?, self.machine_cpu_seconds?);
        (other > 0.1 * machine).then(|| {
            format!(
                "WARNING: other processes used {:.0}% of the machine meanwhile; this rate is not comparable with a quiet machine's",
                100.0 * other / machine
            )
        })
    }

    fn line(&self) -> String {
        let ms = |v: Option<f64>| v.map_or_else(|| "n/a".into(), |v| format!("{v:.2}"));
        let broker = if self.broker_pids.is_empty() {
            "n/a (no local kafka.Kafka process found)".to_string()
        } else {
            ms(self.broker_cpu_ms_per_input)
        };
        format!(
            "CPU-ms per input: bench process {}, broker {}, other {}; machine idle {} (over {:.2} s wall)",
            ms(self.bench_process_cpu_ms_per_input),
            broker,
            ms(self.other_cpu_ms_per_input),
            percent(self.machine_idle),
            self.wall_seconds
        )
    }
}

/// CPU time of the bench process's threads over a stage, grouped by name.
#[derive(Debug, Clone, Serialize)]
struct ThreadGroup {
    /// Thread name with trailing digits replaced by `*` (`argus` is the tokio runtime: its
    /// workers and its blocking pool, where the worker decodes; `argus-infer-*` the model
    /// threads; `rdk:*` librdkafka's).
    name: String,
    threads: usize,
    cpu_seconds: f64,
    cpu_ms_per_input: f64,
    /// Of the whole process's CPU over the stage (threads that exited meanwhile are missing).
    share: f64,
    /// CPU seconds of the busiest threads of this group, most first (at most 4).
    busiest: Vec<f64>,
}

/// (tid, name, ticks) of every live thread of this process.
fn thread_ticks() -> Vec<(u32, String, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let tid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let (name, ticks) = stat_ticks(&format!("/proc/self/task/{tid}"))?;
        Some((tid, name, ticks))
    })
    .collect()
}

fn thread_groups(
    before: &[(u32, String, u64)],
    after: &[(u32, String, u64)],
    inputs: u64,
) -> Vec<ThreadGroup> {
    let mut groups: Vec<(String, Vec<f64>)> = Vec::new();
    for (tid, name, ticks) in after {
        let start = before
            .iter()
            .find(|(t, n, _)| t == tid && n == name)
            .map_or(0, |b| b.2);
        let secs = ticks.saturating_sub(start) as f64 / TICKS_PER_S;
        let base = name.trim_end_matches(|c: char| c.is_ascii_digit());
        let key = if base.len() < name.len() {
            format!("{base}*")
        } else {
            name.clone()
        };
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(secs),
            None => groups.push((key, vec![secs])),
        }
    }
    let total: f64 = groups.iter().flat_map(|(_, v)| v).sum();
    let mut out: Vec<ThreadGroup> = groups
        .into_iter()
        .map(|(name, mut v)| {
            v.sort_by(|a, b| b.total_cmp(a));
            let cpu: f64 = v.iter().sum();
            ThreadGroup {
                name,
                threads: v.len(),
                cpu_seconds: cpu,
                cpu_ms_per_input: cpu * 1e3 / inputs.max(1) as f64,
                share: if total > 0.0 { cpu / total } else { 0.0 },
                busiest: v.into_iter().take(4).collect(),
            }
        })
        .collect();
    out.sort_by(|a, b| b.cpu_seconds.total_cmp(&a.cpu_seconds));
    out
}

/// Sums, counts and buckets of the worker's histograms, from the process's Prometheus
/// recorder (they accumulate over the run; stages use differences).
fn histogram_totals() -> std::collections::HashMap<String, f64> {
    crate::telemetry::metrics_handle()
        .render()
        .lines()
        .filter(|l| {
            l.starts_with("argus_worker_commit_seconds") || l.starts_with("argus_worker_batch_size")
        })
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// What the worker's own metrics say about a stage.
#[derive(Debug, Clone, Serialize)]
struct WorkerInternals {
    /// Offset commits (at-least-once: synchronous, explicit).
    commits: u64,
    commit_mean_ms: f64,
    /// Commits that took more than 50 ms.
    commits_over_50ms: u64,
    model_calls: u64,
    mean_batch: f64,
}

fn internals(
    a: &std::collections::HashMap<String, f64>,
    b: &std::collections::HashMap<String, f64>,
) -> WorkerInternals {
    let d = |k: &str| b.get(k).copied().unwrap_or(0.0) - a.get(k).copied().unwrap_or(0.0);
    let commits = d("argus_worker_commit_seconds_count");
    let calls = d("argus_worker_batch_size_count");
    WorkerInternals {
        commits: commits.max(0.0) as u64,
        commit_mean_ms: d("argus_worker_commit_seconds_sum") * 1e3 / commits.max(1.0),
        commits_over_50ms: (commits - d("argus_worker_commit_seconds_bucket{le=\"0.05\"}")).max(0.0)
            as u64,
        model_calls: calls.max(0.0) as u64,
        mean_batch: d("argus_worker_batch_size_sum") / calls.max(1.0),
    }
}

impl WorkerInternals {
    fn line(&self) -> String {
        format!(
            "worker metrics: {} model calls (mean batch {:.2}), {} offset commits (mean {:.1} ms, {} over 50 ms)",
            self.model_calls, self.mean_batch, self.commits, self.commit_mean_ms, self.commits_over_50ms
        )
    }
}

pub(crate) fn loadavg() -> Option<String> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

/// Busy fraction of the machine between two snapshots.
fn cpu_busy(a: Option<(u64, u64)>, b: Option<(u64, u64)>) -> Option<f64> {
    let ((busy0, total0), (busy1, total1)) = (a?, b?);
    let total = total1.checked_sub(total0).filter(|t| *t > 0)?;
    Some(busy1.saturating_sub(busy0) as f64 / total as f64)
}

fn percent(f: Option<f64>) -> String {
    f.map_or_else(|| "n/a".into(), |f| format!("{:.0}%", f * 100.0))
}

fn worker_timings(seen: &[argus_wire::Timings]) -> WorkerTimings {
    let p50 = |f: &dyn Fn(&argus_wire::Timings) -> Option<u64>| {
        let mut v: Vec<f64> = seen
            .iter()
            .filter_map(f)
            .map(|us| us as f64 / 1e3)
            .collect();
        v.sort_by(f64::total_cmp);
        percentile(&v, 0.5)
    };
    WorkerTimings {
        queue_ms: p50(&|t| Some(t.queue_us)),
        decode_preprocess_ms: p50(&|t| Some(t.decode_us + t.preprocess_us)),
        inference_ms: p50(&|t| Some(t.inference_us)),
        capture_to_output_ms: p50(&|t| t.capture_to_output_us),
    }
}

/// Enqueues one frame as `produce` sends it (key = camera, envelope headers); waits while
/// the producer's queue is full.
pub(crate) async fn enqueue(
    producer: &FutureProducer,
    topic: &str,
    frame: &Frame,
    value: &[u8],
    capture_us: i64,
) -> Result<DeliveryFuture, CliError> {
    let capture = capture_us.to_string();
    loop {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: h::SCHEMA,
                value: Some(ENVELOPE_SCHEMA),
            })
            .insert(Header {
                key: h::CONTENT_TYPE,
                value: Some(frame.envelope.payload.content_type()),
            })
            .insert(Header {
                key: h::CAPTURE_TIME_US,
                value: Some(&capture),
            });
        let record = FutureRecord::to(topic)
            .key(&frame.key)
            .payload(value)
            .headers(headers);
        match producer.send_result(record) {
            Ok(f) => return Ok(f),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err((e, _)) => return Err(runtime(anyhow!("cannot produce to {topic}: {e}"))),
        }
    }
}

/// (acknowledged, failed).
pub(crate) async fn await_deliveries(deliveries: Vec<DeliveryFuture>) -> (u64, u64) {
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

fn admin_client(settings: &KafkaSettings) -> Result<AdminClient<DefaultClientContext>, String> {
    let mut config = argus_kafka::rdkafka::config::ClientConfig::new();
    config.set("bootstrap.servers", &settings.brokers);
    for (k, v) in &settings.options {
        config.set(k, v);
    }
    config.create().map_err(|e| e.to_string())
}

async fn create_topic(
    settings: &KafkaSettings,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> Result<(), String> {
    let admin = admin_client(settings)?;
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics([&topic], &opts)
        .await
        .map_err(|e| e.to_string())?;
    for r in results {
        if let Err((topic, code)) = r {
            return Err(format!("{topic}: {code}"));
        }
    }
    Ok(())
}

pub(crate) async fn delete_topics(
    settings: &KafkaSettings,
    topics: &[String],
) -> Result<(), String> {
    let admin = admin_client(settings)?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .delete_topics(&names, &opts)
        .await
        .map_err(|e| e.to_string())?;
    for r in results {
        if let Err((topic, code)) = r {
            return Err(format!("{topic}: {code}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_despite_odd_names() {
        let line = "17215 (java) S 1 17215 17215 0 -1 4194304 103352 0 30 0 1073 136 0 0 20 0 96";
        assert_eq!(parse_stat(line), Some(("java".to_string(), 1209)));
        let odd = "42 (rdk:broker) 1)) R 1 2 3 0 -1 0 0 0 0 0 7 5 0 0";
        assert_eq!(parse_stat(odd), Some(("rdk:broker) 1)".to_string(), 12)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn threads_group_by_name_without_trailing_digits() {
        let before = vec![
            (1, "argus".to_string(), 10),
            (2, "rdk:broker1".to_string(), 5),
        ];
        let after = vec![
            (1, "argus".to_string(), 110),
            (2, "rdk:broker1".to_string(), 15),
            (3, "rdk:broker2".to_string(), 40),
        ];
        let g = thread_groups(&before, &after, 100);
        assert_eq!(g[0].name, "argus");
        assert!((g[0].cpu_seconds - 1.0).abs() < 1e-9);
        assert_eq!(g[1].name, "rdk:broker*");
        assert_eq!(g[1].threads, 2);
        assert!((g[1].cpu_seconds - 0.5).abs() < 1e-9);
        assert!((g[1].cpu_ms_per_input - 5.0).abs() < 1e-9);
    }

    #[test]
    fn breakdown_of_the_slowest_records() {
        let records: Vec<Record> = (1..=100)
            .map(|i| Record {
                latency_ms: f64::from(i),
                capture_us: 0,
                received_us: i64::from(i) * 1000,
                appended_us: Some(i64::from(i) * 1000 - 500),
                timings: argus_wire::Timings {
                    queue_us: 100,
                    decode_us: 200,
                    capture_to_output_us: Some(u64::from(i as u32) * 500),
                    ..Default::default()
                },
            })
            .collect();
        let all = breakdown(&records, 0.0);
        assert_eq!(all.records, 100);
        let slow = breakdown(&records, 0.99);
        assert_eq!(slow.records, 1);
        assert_eq!(slow.latency_ms, 100.0);
        assert_eq!(slow.after_ms, 50.0);
        assert_eq!(slow.before_ms, 49.7);
        assert_eq!(slow.appended_to_received_ms, 0.5);
    }

    #[test]
    fn percentiles_pick_ranks() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 51.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert!(percentile(&[], 0.5).is_nan());
    }
}
