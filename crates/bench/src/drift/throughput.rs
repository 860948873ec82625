//! Stage 3, worker throughput with and without the sidecar on a real broker: one
//! in-process worker (as `argus-bench worker` runs it) drains a pre-filled topic alone, or
//! while an `argus drift watch` child process reads the same topic and the predictions;
//! alternated over rounds. The drains themselves are in [`super::drain`].
use super::summary::{print_stage3, summarise};
use super::DriftBenchOptions;
use crate::error::{runtime, BenchError};
use crate::harness::cpu::broker_pids;
use crate::harness::kafka::{await_deliveries, enqueue};
use crate::harness::{
    envelope_bytes, load_model, mean_frame_bytes, median, metrics_handle, on_signal, render_pool,
};
use argus_drift::features::frame_values;
use argus_kafka::rdkafka::producer::Producer;
use argus_kafka::{KafkaSettings, TopicSpec};
use argus_model::Classifier;
use argus_producer::Frame;
use argus_stats::image::ImageHistograms;
use argus_stats::profile::Profile;
use argus_wire::{decode_envelope, now_us};
use serde::Serialize;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Per-frame costs from memory, one thread (p50).
#[derive(Debug, Clone, Serialize)]
pub(super) struct FrameCosts {
    pub frames: usize,
    /// `decode_envelope` of one 640×480 JPEG envelope (the sidecar does it for every frame).
    pub decode_envelope_us_p50: f64,
    /// `features::frame_values`: JPEG decode, downscale to ≤ 256 px, features + histograms
    /// (the sidecar does it for every analysed frame).
    pub frame_values_us_p50: f64,
    /// Its parts: JPEG decode (`argus_model::preprocess::decode`), downscale
    /// (`features::downscale`), features + histograms on the downscaled frame.
    pub jpeg_decode_us_p50: f64,
    pub downscale_us_p50: f64,
    pub features_us_p50: f64,
    /// `Classifier::classify` (the worker's decode, preprocess, infer, postprocess).
    pub worker_classify_us_p50: f64,
}

/// One drain of the pre-filled topic, alone or with a sidecar.
#[derive(Debug, Clone, Serialize)]
pub(super) struct DrainRun {
    pub round: usize,
    /// "alone" or "sidecar --max-fps F".
    pub variant: String,
    pub max_fps: Option<f64>,
    pub frames: u64,
    pub group_join_seconds: f64,
    pub seconds: f64,
    pub frames_per_s: f64,
    pub predicted: u64,
    pub not_predicted: u64,
    pub pauses: u64,
    /// CPU over the drain (first consumed → last finished).
    pub worker_process_cpu_seconds: Option<f64>,
    pub broker_cpu_seconds: Option<f64>,
    pub sidecar_cpu_seconds: Option<f64>,
    pub machine_busy: Option<f64>,
    /// Machine busy time not accounted to the worker process, the broker or the sidecar
    /// (other processes) ...
    pub other_cpu_seconds: Option<f64>,
    /// ... above 10% of the machine: the run is left out of the summary's ratios.
    pub contended: bool,
    /// Waited for a quiet machine before the run (s), and whether it got quiet.
    pub quiet_wait_seconds: f64,
    pub quiet: bool,
    /// Sidecar CPU from its start to when it had read every frame and prediction (or gave
    /// up waiting), and per frame.
    pub sidecar_cpu_total_seconds: Option<f64>,
    pub sidecar_cpu_ms_per_frame: Option<f64>,
    /// Input records the sidecar had read when the worker consumed its first input, and at
    /// the end of the drain; predictions read at the end of the drain.
    pub sidecar_input_read_at_start: Option<u64>,
    pub sidecar_input_read_at_end: Option<u64>,
    pub sidecar_predictions_read_at_end: Option<u64>,
    /// Input frames the sidecar analysed (sampled) in all.
    pub sidecar_frames_analysed: Option<u64>,
    /// After the drain, until the sidecar had read everything (None: it had already, or the
    /// wait timed out — see `sidecar_caught_up`).
    pub sidecar_catch_up_seconds: Option<f64>,
    pub sidecar_caught_up: Option<bool>,
    /// Windows the sidecar evaluated and their mean time (its own histogram).
    pub sidecar_windows_evaluated: Option<u64>,
    pub sidecar_eval_mean_ms: Option<f64>,
    /// Lines at WARN or ERROR in the sidecar's log, other than ...
    pub sidecar_log_warnings: Option<usize>,
    /// ... librdkafka's PartitionEOF, which `argus_kafka::context` logs at ERROR.
    pub sidecar_log_partition_eof_errors: Option<usize>,
}

/// The runs of one variant, summarised.
#[derive(Debug, Clone, Serialize)]
pub(super) struct VariantSummary {
    pub variant: String,
    pub runs: usize,
    pub frames_per_s_median: f64,
    pub frames_per_s_min: f64,
    pub frames_per_s_max: f64,
    /// Median over rounds of (this variant's rate ÷ the alone rate of the same round).
    pub ratio_median: Option<f64>,
    pub ratio_min: Option<f64>,
    pub ratio_max: Option<f64>,
    /// Median of this variant ÷ median of alone.
    pub ratio_of_medians: Option<f64>,
    pub sidecar_cpu_ms_per_frame_median: Option<f64>,
    /// Sidecar CPU seconds during the drain ÷ drain seconds.
    pub sidecar_cores_during_drain_median: Option<f64>,
    pub worker_cpu_ms_per_frame_median: Option<f64>,
    pub machine_idle_median: Option<f64>,
}

/// Stage 3's results.
#[derive(Debug, Clone, Serialize)]
pub(super) struct ThroughputResult {
    pub frames: u64,
    pub partitions: i32,
    pub camera_fps: f64,
    pub cameras: u32,
    pub event_time_span_seconds: f64,
    pub mean_frame_bytes: f64,
    pub profile: String,
    pub profile_seconds: Option<f64>,
    pub prefill_seconds: f64,
    pub frame_costs: FrameCosts,
    pub runs: Vec<DrainRun>,
    pub summary: Vec<VariantSummary>,
    pub sidecar_logs: String,
}

#[derive(Debug, Clone)]
pub(super) struct RunTopics {
    pub predictions: String,
    pub alerts: String,
    pub dlq: String,
    pub panes: String,
    pub reports: String,
}

#[derive(Debug)]
pub(super) struct Stage3<'a> {
    pub args: &'a DriftBenchOptions,
    pub settings: KafkaSettings,
    pub model: Arc<Classifier>,
    pub run_id: String,
    pub input: String,
    pub argus: PathBuf,
    pub profile: PathBuf,
    pub dir: PathBuf,
    pub brokers: Vec<u32>,
    pub interrupted: CancellationToken,
    pub topics: Vec<String>,
}

pub(super) fn check_profile_loads(path: &Path) -> Result<(), BenchError> {
    let text = std::fs::read_to_string(path).map_err(runtime)?;
    Profile::from_json(&text)
        .map_err(|e| runtime(format!("the profile {} does not load: {e}", path.display())))?;
    Ok(())
}

pub(super) fn variant_name(max_fps: Option<f64>) -> String {
    match max_fps {
        None => "alone".to_owned(),
        Some(f) => format!("sidecar --max-fps {f}"),
    }
}

pub(super) fn frame_costs(model: &Classifier, pool: &[Frame]) -> Result<FrameCosts, BenchError> {
    let bytes: Vec<Vec<u8>> = pool
        .iter()
        .enumerate()
        .map(|(i, f)| envelope_bytes(f, i as u64, now_us()))
        .collect::<Result<_, _>>()?;
    let (mut dec, mut feat, mut cls) = (Vec::new(), Vec::new(), Vec::new());
    let (mut jpeg, mut down, mut only) = (Vec::new(), Vec::new(), Vec::new());
    for pass in 0..3 {
        for e in &bytes {
            let t = Instant::now();
            let env = decode_envelope(black_box(e)).map_err(runtime)?;
            let d = t.elapsed();
            let t = Instant::now();
            let mut hist = ImageHistograms::default();
            let v = frame_values(&env.payload, &mut hist)
                .map_err(|e| runtime(format!("{}: {}", e.0, e.1)))?;
            let fv = t.elapsed();
            black_box(&v);
            let t = Instant::now();
            let c = model.classify(&env.payload).map_err(runtime)?;
            let cl = t.elapsed();
            black_box(&c);
            let t = Instant::now();
            let img = argus_model::preprocess::decode(&env.payload).map_err(runtime)?;
            let j = t.elapsed();
            let t = Instant::now();
            let small = argus_drift::features::downscale(img);
            let ds = t.elapsed();
            let t = Instant::now();
            let mut hist = ImageHistograms::default();
            let ff = argus_stats::image::frame_features_with_histograms(
                small.as_raw(),
                small.width(),
                small.height(),
                &mut hist,
            )
            .map_err(|e| runtime(format!("{e}")))?;
            let fo = t.elapsed();
            black_box(&ff);
            if pass > 0 {
                dec.push(d.as_secs_f64() * 1e6);
                feat.push(fv.as_secs_f64() * 1e6);
                cls.push(cl.as_secs_f64() * 1e6);
                jpeg.push(j.as_secs_f64() * 1e6);
                down.push(ds.as_secs_f64() * 1e6);
                only.push(fo.as_secs_f64() * 1e6);
            }
        }
    }
    Ok(FrameCosts {
        frames: pool.len(),
        decode_envelope_us_p50: median(&dec),
        frame_values_us_p50: median(&feat),
        jpeg_decode_us_p50: median(&jpeg),
        downscale_us_p50: median(&down),
        features_us_p50: median(&only),
        worker_classify_us_p50: median(&cls),
    })
}

pub(super) async fn stage3(args: &DriftBenchOptions) -> Result<ThroughputResult, BenchError> {
    println!();
    println!(
        "stage 3  worker throughput with and without the drift sidecar: {} frames {}x{} JPEG q{} from {} cameras at {} fps (capture times), {} partitions; in-process worker (as `argus-bench worker`), sidecar = `argus drift watch` child process",
        args.frames, args.frames_spec.width, args.frames_spec.height, args.frames_spec.jpeg_quality, args.frames_spec.cameras, args.fps, args.partitions
    );
    metrics_handle();
    let interrupted = on_signal();
    let model = load_model(&args.model, &Default::default())?;
    let pool = Arc::new(
        render_pool(
            &args.frames_spec.source(args.fps),
            args.frames_spec.distinct_frames,
        )
        .await?,
    );
    let mean_bytes = mean_frame_bytes(&pool);
    let costs = {
        let (model, pool) = (model.clone(), pool.clone());
        tokio::task::spawn_blocking(move || frame_costs(&model, &pool))
            .await
            .map_err(runtime)??
    };
    println!(
        "  per frame, one thread, from memory (p50): decode_envelope {:.1} µs; sidecar frame_values {:.0} µs (JPEG decode {:.0}, downscale to ≤ 256 px {:.0}, features + histograms {:.0}); worker classify {:.0} µs; mean frame {:.1} kB",
        costs.decode_envelope_us_p50, costs.frame_values_us_p50, costs.jpeg_decode_us_p50, costs.downscale_us_p50, costs.features_us_p50, costs.worker_classify_us_p50, mean_bytes / 1e3
    );

    let run_id = format!("{}-{}", std::process::id(), now_us() / 1_000_000);
    let dir = std::env::temp_dir().join(format!("argus-drift-bench-{run_id}"));
    std::fs::create_dir_all(&dir).map_err(runtime)?;
    let (profile, profile_seconds) = make_profile(args, &dir).await?;
    check_profile_loads(&profile)?;

    let settings = args.kafka.clone();
    let input = format!("argus-drift-bench-{run_id}.frames");
    argus_kafka::ensure_topics(&settings, &[TopicSpec::new(&input, args.partitions)])
        .await
        .map_err(runtime)?;
    let brokers = broker_pids(args.broker_pid);
    let mut ctx = Stage3 {
        args,
        settings: settings.clone(),
        model,
        run_id: run_id.clone(),
        input: input.clone(),
        argus: args.argus.clone(),
        profile: profile.clone(),
        dir: dir.clone(),
        brokers,
        interrupted,
        topics: vec![input.clone()],
    };
    let outcome = stage3_runs(&mut ctx, &pool).await;
    let topics = ctx.topics.clone();
    if args.keep_topics {
        println!("  topics kept: {}", topics.join(", "));
    } else {
        tokio::time::sleep(Duration::from_secs(3)).await;
        if let Err(e) = argus_kafka::delete_topics(&settings, &topics).await {
            tracing::warn!(error = %e, "could not delete the benchmark's topics");
        }
    }
    let (prefill_seconds, runs) = outcome?;
    let summary = summarise(&runs, args);
    print_stage3(&runs, &summary, args);
    println!("  sidecar logs and the profile: {}", dir.display());
    Ok(ThroughputResult {
        frames: args.frames,
        partitions: args.partitions,
        camera_fps: args.fps,
        cameras: args.frames_spec.cameras,
        event_time_span_seconds: (args.frames / u64::from(args.frames_spec.cameras)) as f64
            / args.fps,
        mean_frame_bytes: mean_bytes,
        profile: profile.display().to_string(),
        profile_seconds,
        prefill_seconds,
        frame_costs: costs,
        runs,
        summary,
        sidecar_logs: dir.display().to_string(),
    })
}

pub(super) async fn stage3_runs(
    ctx: &mut Stage3<'_>,
    pool: &[Frame],
) -> Result<(f64, Vec<DrainRun>), BenchError> {
    let args = ctx.args;
    let prefill_seconds = prefill(ctx, pool).await?;
    let mut variants: Vec<Option<f64>> = vec![None];
    variants.extend(args.sidecar_max_fps.iter().map(|f| Some(*f)));
    let mut index = 0;
    if !args.no_warmup {
        let r = ctx.drain(index, 0, None).await?;
        index += 1;
        println!(
            "  warm-up drain (not counted): {:.1} frames/s",
            r.frames_per_s
        );
    }
    println!(
        "  {:>5} {:<22} {:>9} {:>7} {:>8} {:>10} {:>9} {:>10} {:>12} {:>14} {:>9}",
        "round",
        "variant",
        "frames/s",
        "join s",
        "drain s",
        "worker ms/f",
        "broker s",
        "sidecar s",
        "sidecar ms/f",
        "sc read@end",
        "CPU busy"
    );
    let mut runs = Vec::new();
    for round in 0..args.rounds {
        let order: Vec<Option<f64>> = if round % 2 == 0 {
            variants.clone()
        } else {
            variants.iter().rev().copied().collect()
        };
        for v in order {
            let r = ctx.drain(index, round, v).await?;
            index += 1;
            print_run(&r);
            runs.push(r);
        }
    }
    Ok((prefill_seconds, runs))
}

/// The sidecar's profile: `--profile`, or one made with `argus drift profile --synthetic`
/// from the stream's seed and frame size (and the seconds that took).
async fn make_profile(
    args: &DriftBenchOptions,
    dir: &Path,
) -> Result<(PathBuf, Option<f64>), BenchError> {
    let exe = &args.argus;
    Ok(match &args.profile {
        Some(p) => (p.clone(), None),
        None => {
            let out = dir.join("profile.json");
            let mut cmd = Command::new(exe);
            cmd.args([
                "drift",
                "profile",
                "--synthetic",
                &args.profile_frames.to_string(),
            ])
            .arg("--model")
            .arg(&args.model)
            .args([
                "--seed",
                &args.frames_spec.seed.to_string(),
                "--cameras",
                &args.frames_spec.cameras.to_string(),
                "--width",
                &args.frames_spec.width.to_string(),
                "--height",
                &args.frames_spec.height.to_string(),
            ])
            .arg("--out")
            .arg(&out);
            println!(
            "  profile: {} drift profile --synthetic {} --model {} --seed {} --cameras {} --width {} --height {} --out {}",
            exe.display(), args.profile_frames, args.model.display(), args.frames_spec.seed, args.frames_spec.cameras, args.frames_spec.width, args.frames_spec.height, out.display()
        );
            let t = Instant::now();
            let output = tokio::task::spawn_blocking(move || cmd.output())
                .await
                .map_err(runtime)?
                .map_err(runtime)?;
            if !output.status.success() {
                return Err(runtime(format!(
                    "argus drift profile failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                )));
            }
            let s = t.elapsed().as_secs_f64();
            println!("  profile made in {s:.1} s");
            (out, Some(s))
        }
    })
}

/// Pre-fill: capture times as `--cameras` cameras at `--fps` each, ending now; returns the
/// seconds it took.
async fn prefill(ctx: &Stage3<'_>, pool: &[Frame]) -> Result<f64, BenchError> {
    let args = ctx.args;
    let producer = ctx
        .settings
        .producer(&format!("argus-drift-bench-producer-{}", ctx.run_id))
        .map_err(|e| BenchError::Usage(e.to_string()))?;
    let cameras = u64::from(args.frames_spec.cameras);
    let step_us = 1e6 / args.fps;
    let span_us = ((args.frames / cameras) as f64 * step_us) as i64;
    let t0_us = now_us() - span_us;
    let t = Instant::now();
    let mut deliveries = Vec::with_capacity(usize::try_from(args.frames).unwrap_or(0));
    for i in 0..args.frames {
        let frame = &pool[(i % pool.len() as u64) as usize];
        let capture = t0_us + ((i / cameras) as f64 * step_us) as i64;
        let value = envelope_bytes(frame, i, capture)?;
        deliveries.push(enqueue(&producer, &ctx.input, frame, &value, capture).await?);
    }
    let (ok, failed) = await_deliveries(deliveries).await;
    producer.flush(Duration::from_secs(30)).map_err(runtime)?;
    if failed > 0 {
        return Err(runtime(format!(
            "{failed} of {} frames were not acknowledged by the broker",
            args.frames
        )));
    }
    let prefill_seconds = t.elapsed().as_secs_f64();
    println!(
        "  pre-filled {ok} frames into {} in {prefill_seconds:.2} s; event time spans {:.0} s",
        ctx.input,
        span_us as f64 / 1e6
    );
    Ok(prefill_seconds)
}

fn print_run(r: &DrainRun) {
    let opt = |v: Option<f64>, p: usize| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.p$}"));
    println!(
        "  {:>5} {:<22} {:>9.1} {:>7.2} {:>8.2} {:>10} {:>9} {:>10} {:>12} {:>14} {:>9}",
        r.round,
        r.variant,
        r.frames_per_s,
        r.group_join_seconds,
        r.seconds,
        opt(
            r.worker_process_cpu_seconds
                .map(|c| c * 1e3 / r.frames as f64),
            2
        ),
        opt(r.broker_cpu_seconds, 2),
        opt(r.sidecar_cpu_seconds, 2),
        opt(r.sidecar_cpu_ms_per_frame, 3),
        match (
            r.sidecar_input_read_at_end,
            r.sidecar_predictions_read_at_end
        ) {
            (Some(i), Some(p)) => format!("{i}/{p}"),
            _ => "-".to_owned(),
        },
        r.machine_busy
            .map_or_else(|| "-".to_owned(), |b| format!("{:.0}%", b * 100.0)),
    );
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get()) as f64;
    if let Some(o) = r.other_cpu_seconds.filter(|_| r.contended) {
        println!(
            "        contended: other processes used {:.0}% of the machine during this drain (left out of the ratios)",
            100.0 * o / (r.seconds * cores)
        );
    }
    if !r.quiet {
        println!(
            "        the machine was not quiet before this drain (waited {:.0} s)",
            r.quiet_wait_seconds
        );
    }
    if r.not_predicted > 0 {
        println!(
            "        WARNING: {} frames were not predicted",
            r.not_predicted
        );
    }
}
