//! The drift harness (`argus-bench drift`, formerly `argus drift bench`): one run that
//! measures the drift side (see `docs/drift-bench.md`).
//!
//! 1. **Ingest** (`ingest`): numeric values into a `SegmentSummary` the way the sidecar
//!    adds them, against a plain loop summing the same values; per-value breakdown; the
//!    sidecar's own pane path and a records stream's decode and field mapping.
//! 2. **Window evaluation** (`eval`): `evaluate` (tests, BH) plus assembling and
//!    serialising the `DriftReport`, for windows of 100 numeric features against a 100k-row
//!    reference, half of them null and half shifted; merging partial summaries and their
//!    size on the panes topic.
//! 3. **Worker with and without the sidecar** (`throughput`, `drain`) on a real broker:
//!    one in-process worker (the path `argus-bench worker` uses) drains a pre-filled topic
//!    alone, or while an `argus drift watch` child process (`sidecar`) reads the same
//!    topic and the predictions; alternated over rounds.
//!
//! Nothing here passes or fails on absolute time: rates are reported with a baseline measured
//! in the same run, and the targets of the issue are printed next to them.
mod data;
mod drain;
mod eval;
mod ingest;
mod sidecar;
mod summary;
mod throughput;

use crate::error::{runtime, usage, BenchError};
use crate::harness::{check_json_path, cores, cpu_model, loadavg, write_json, FrameSpec};
use argus_kafka::KafkaSettings;
use argus_stats::profile::ProfileSettings;
use argus_wire::now_us;
use data::reference_segment;
use eval::{stage2, EvalResult};
use ingest::{stage1, IngestResult};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use throughput::{stage3, ThroughputResult};

/// What one drift-harness run does (the `argus-bench drift` flags, typed).
#[derive(Debug, Clone)]
pub struct DriftBenchOptions {
    /// Brokers and librdkafka properties (stage 3; passed on to the sidecar as `-X`).
    pub kafka: KafkaSettings,
    /// Stages to run: 1 ingest, 2 window evaluation, 3 worker with/without the sidecar.
    pub stages: Vec<u8>,
    /// Stage 1: rows fed into the summary per profile (values = rows × features).
    pub rows: u64,
    /// Stage 1: numeric features of the profiles fed.
    pub ingest_features: Vec<usize>,
    /// Stage 1: timed passes per loop (the median is reported).
    pub ingest_passes: usize,
    /// Stage 2: numeric features of the evaluated windows.
    pub eval_features: usize,
    /// Rows of the synthetic reference (stages 1 and 2).
    pub reference_rows: usize,
    /// Stage 2: rows per evaluated window (and per partial summary).
    pub window_rows: u64,
    /// Stage 2: windows evaluated (alternately null and shifted).
    pub windows: usize,
    /// Stage 2: times each window is evaluated.
    pub eval_passes: usize,
    /// Stage 2: shift of every feature in the shifted windows, in reference standard
    /// deviations.
    pub shift: f64,
    /// Stage 2: partial summaries merged into one window.
    pub partials: usize,
    /// Stage 2: timed repetitions of the merge.
    pub merge_reps: usize,
    /// Stage 3: model bundle directory of the worker.
    pub model: PathBuf,
    /// Stage 3: frames pre-filled and drained per run.
    pub frames: u64,
    /// Stage 3: rounds; each runs the worker alone and once per `sidecar_max_fps`.
    pub rounds: usize,
    /// Stage 3: the sidecar's `--max-fps` in the runs with a sidecar.
    pub sidecar_max_fps: Vec<f64>,
    /// Stage 3: frames per second per camera in the capture times of the pre-filled frames.
    pub fps: f64,
    /// Stage 3: a profile for the sidecar (`None`: made with `argus drift profile
    /// --synthetic` from the stream's seed and frame size).
    pub profile: Option<PathBuf>,
    /// Stage 3: synthetic frames of the profile made when `profile` is `None`.
    pub profile_frames: u64,
    /// Stage 3: skip the untimed warm-up drain before the first round.
    pub no_warmup: bool,
    /// Stage 3: before each drain, wait up to this long for the machine to be ≥ 85% idle
    /// for 2 s; zero = do not wait.
    pub quiet_wait: Duration,
    /// Stage 3: the stream's synthetic frames.
    pub frames_spec: FrameSpec,
    /// Stage 3: partitions of the input topic.
    pub partitions: i32,
    /// Stage 3: the `argus` binary the sidecar (`argus drift watch`) and the profile
    /// (`argus drift profile`) are run with.
    pub argus: PathBuf,
    /// Pid of the broker whose CPU time is reported (`None`: every local `kafka.Kafka`).
    pub broker_pid: Option<u32>,
    /// Leave the run's topics on the broker.
    pub keep_topics: bool,
    /// Write the results as JSON to this file.
    pub json: Option<PathBuf>,
}

/// The `--json` file.
#[derive(Debug, Clone, Serialize)]
struct Report {
    time_us: i64,
    command: Vec<String>,
    cores: usize,
    cpu: Option<String>,
    loadavg_start: Option<String>,
    loadavg_end: Option<String>,
    profile_settings: String,
    reference_seconds: Option<f64>,
    ingest: Vec<IngestResult>,
    evaluation: Option<EvalResult>,
    throughput: Option<ThroughputResult>,
    total_seconds: f64,
}

/// Runs the drift harness's stages and prints their results (and writes them with `json`).
pub async fn run(args: DriftBenchOptions) -> Result<(), BenchError> {
    check(&args)?;
    let started = Instant::now();
    let loadavg_start = loadavg();
    let cores = cores();
    let settings = ProfileSettings::default();
    println!(
        "argus-bench drift: {cores} cores ({}); load average {}; profile settings: {} fine bins, bottom-k {}, reference samples ≤ {}",
        cpu_model().unwrap_or_else(|| "unknown CPU".into()),
        loadavg_start.as_deref().unwrap_or("n/a"),
        settings.fine_bins,
        settings.sample_k,
        settings.reference_sample_max
    );
    let args = Arc::new(args);
    let (ingest, evaluation, reference_seconds) = offline_stages(&args, &settings).await?;
    let throughput = if args.stages.contains(&3) {
        Some(stage3(&args).await?)
    } else {
        None
    };
    let loadavg_end = loadavg();
    println!();
    println!(
        "total run time {:.1} s; load average {}",
        started.elapsed().as_secs_f64(),
        loadavg_end.as_deref().unwrap_or("n/a")
    );
    if let Some(path) = &args.json {
        let report = Report {
            time_us: now_us(),
            command: std::env::args().collect(),
            cores,
            cpu: cpu_model(),
            loadavg_start,
            loadavg_end,
            profile_settings: format!("{settings:?}"),
            reference_seconds,
            ingest,
            evaluation,
            throughput,
            total_seconds: started.elapsed().as_secs_f64(),
        };
        write_json(path, &report)?;
        println!("results written to {}", path.display());
    }
    Ok(())
}

/// Stages 1 and 2 (no Kafka) on a blocking thread, over one reference built for both.
async fn offline_stages(
    args: &Arc<DriftBenchOptions>,
    settings: &ProfileSettings,
) -> Result<(Vec<IngestResult>, Option<EvalResult>, Option<f64>), BenchError> {
    if !(args.stages.contains(&1) || args.stages.contains(&2)) {
        return Ok((Vec::new(), None, None));
    }
    let a = args.clone();
    let s = settings.clone();
    tokio::task::spawn_blocking(move || {
        let mut features = 0;
        if a.stages.contains(&1) {
            features = a.ingest_features.iter().copied().max().unwrap_or(0);
        }
        if a.stages.contains(&2) {
            features = features.max(a.eval_features);
        }
        let t = Instant::now();
        let full = reference_segment(features, a.reference_rows, &s);
        let secs = t.elapsed().as_secs_f64();
        println!(
            "reference: {features} numeric features × {} rows (LCG) profiled in {secs:.1} s",
            a.reference_rows
        );
        let ingest = if a.stages.contains(&1) {
            stage1(&a, &full, &s)?
        } else {
            Vec::new()
        };
        let eval = if a.stages.contains(&2) {
            Some(stage2(&a, &full, &s)?)
        } else {
            None
        };
        Ok((ingest, eval, Some(secs)))
    })
    .await
    .map_err(runtime)?
}

fn check(a: &DriftBenchOptions) -> Result<(), BenchError> {
    let fail = |m: &str| Err(usage(m));
    if a.stages.is_empty() || a.stages.iter().any(|s| !(1..=3).contains(s)) {
        return fail("--stages takes 1, 2 and/or 3");
    }
    if a.rows == 0 || a.ingest_passes == 0 {
        return fail("--rows and --ingest-passes must be at least 1");
    }
    if a.ingest_features.iter().any(|f| *f == 0 || *f > 10_000) || a.ingest_features.is_empty() {
        return fail("--ingest-features must be within 1..=10000");
    }
    if a.eval_features == 0 || a.eval_features > 10_000 {
        return fail("--eval-features must be within 1..=10000");
    }
    if a.reference_rows < 100 || a.window_rows < 30 {
        return fail("--reference-rows must be ≥ 100 and --window-rows ≥ 30");
    }
    if a.windows < 2 || a.eval_passes == 0 || a.partials == 0 || a.merge_reps == 0 {
        return fail("--windows ≥ 2, --eval-passes, --partials and --merge-reps ≥ 1");
    }
    if !a.shift.is_finite() {
        return fail("--shift must be a number");
    }
    let s = &a.frames_spec;
    if a.frames == 0 || a.rounds == 0 || s.distinct_frames == 0 || a.profile_frames == 0 {
        return fail("--frames, --rounds, --distinct-frames and --profile-frames must be ≥ 1");
    }
    if a.sidecar_max_fps.iter().any(|f| !f.is_finite() || *f < 0.0) {
        return fail("--sidecar-max-fps values must be ≥ 0");
    }
    if !(a.fps.is_finite() && a.fps > 0.0) {
        return fail("--fps must be > 0");
    }
    if s.cameras == 0 || s.width < 32 || s.height < 32 || a.partitions < 1 {
        return fail("--cameras ≥ 1, frames at least 32x32 and --partitions ≥ 1");
    }
    check_json_path(a.json.as_deref())
}
