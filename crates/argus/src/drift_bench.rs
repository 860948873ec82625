//! `argus drift bench`: one run that measures the drift side (see `docs/drift-bench.md`).
//!
//! 1. **Ingest**: numeric values into a `SegmentSummary` the way the sidecar adds them
//!    (`record_hash` per row, `SegmentSummary::add` per feature), on one thread, against a
//!    plain loop summing the same values; per-value breakdown; the sidecar's own pane path
//!    (`PartitionPanes::admit` + `add`) and its record → cells mapping.
//! 2. **Window evaluation**: `evaluate` (tests, BH) plus assembling and serialising the
//!    `DriftReport`, for windows of 100 numeric features against a 100k-row reference, half of
//!    them null and half shifted; merging partial summaries and their size on the panes topic.
//! 3. **Worker with and without the sidecar** on a real broker: one in-process worker (the
//!    path `argus bench` uses) drains a pre-filled topic alone, or while an `argus drift watch`
//!    child process reads the same topic and the predictions; alternated over rounds.
//!
//! Nothing here passes or fails on absolute time: rates are reported with a baseline measured
//! in the same run, and the targets of the issue are printed next to them.
use crate::bench::{self as b};
use crate::cli::KafkaArgs;
use crate::work::load_model;
use crate::CliError;
use anyhow::anyhow;
use argus_drift::aggregate::{AggregateConfig, Aggregator};
use argus_drift::features::{field_cell, frame_values};
use argus_drift::pane::{PaneConfig, PaneMessage, PaneRecord, Partial, PartitionPanes};
use argus_kafka::rdkafka::producer::Producer;
use argus_kafka::{KafkaSettings, TopicSpec};
use argus_model::Classifier;
use argus_producer::{Frame, SyntheticSource};
use argus_stats::alarm::ConsecutiveRule;
use argus_stats::evaluate::{evaluate, EvalConfig};
use argus_stats::hash::{record_hash, Sampler};
use argus_stats::image::ImageHistograms;
use argus_stats::numeric::{Binning, BottomK, NumericSummary, Welford};
use argus_stats::profile::{
    FeatureKind, FeatureProfile, Profile, ProfileSettings, SegmentProfile, StreamKind, FLEET,
};
use argus_stats::report::{rfc3339_us, DriftReport, ModelInfo, OffsetRange, Provenance, Window};
use argus_stats::summary::{Cell, SegmentSummary};
use argus_wire::{decode_envelope, encode_envelope, now_us, Envelope, Field, Payload, Value};
use argus_worker::{AlertRule, WorkerConfig, WorkerStats};
use clap::Args;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// `argus drift bench` flags.
#[derive(Debug, Args)]
pub struct DriftBenchArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Stages to run: 1 ingest, 2 window evaluation, 3 worker with/without the sidecar.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub stages: Vec<u8>,

    /// Stage 1: rows fed into the summary per profile (values = rows × features).
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// Stage 1: numeric features of the profiles fed.
    #[arg(long, value_delimiter = ',', default_value = "20,100")]
    pub ingest_features: Vec<usize>,
    /// Stage 1: timed passes per loop (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub ingest_passes: usize,

    /// Stage 2: numeric features of the evaluated windows.
    #[arg(long, default_value_t = 100)]
    pub eval_features: usize,
    /// Rows of the synthetic reference (stages 1 and 2; its samples keep up to 100k rows).
    #[arg(long, default_value_t = 100_000)]
    pub reference_rows: usize,
    /// Stage 2: rows per evaluated window (and per partial summary).
    #[arg(long, default_value_t = 5000)]
    pub window_rows: u64,
    /// Stage 2: windows evaluated (alternately null and shifted).
    #[arg(long, default_value_t = 60)]
    pub windows: usize,
    /// Stage 2: times each window is evaluated (more samples for p99).
    #[arg(long, default_value_t = 2)]
    pub eval_passes: usize,
    /// Stage 2: shift of every feature in the shifted windows, in reference standard deviations.
    #[arg(long, default_value_t = 0.3)]
    pub shift: f64,
    /// Stage 2: partial summaries merged into one window.
    #[arg(long, default_value_t = 8)]
    pub partials: usize,
    /// Stage 2: timed repetitions of the merge.
    #[arg(long, default_value_t = 50)]
    pub merge_reps: usize,

    /// Stage 3: model bundle directory of the worker.
    #[arg(long, default_value = "models/camera-person")]
    pub model: PathBuf,
    /// Stage 3: frames pre-filled and drained per run.
    #[arg(long, default_value_t = 5000)]
    pub frames: u64,
    /// Stage 3: rounds; each runs the worker alone and once per --sidecar-max-fps (order
    /// reversed every other round).
    #[arg(long, default_value_t = 4)]
    pub rounds: usize,
    /// Stage 3: the sidecar's --max-fps in the runs with a sidecar (1 is its default; 0 =
    /// analyse every frame).
    #[arg(long, value_delimiter = ',', default_value = "1,0")]
    pub sidecar_max_fps: Vec<f64>,
    /// Stage 3: frames per second per camera in the capture times of the pre-filled frames.
    #[arg(long, default_value_t = 5.0)]
    pub fps: f64,
    /// Stage 3: a profile for the sidecar (default: made with `argus drift profile
    /// --synthetic` from the stream's seed and frame size).
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Stage 3: synthetic frames of the profile made when --profile is not given.
    #[arg(long, default_value_t = 400)]
    pub profile_frames: u64,
    /// Stage 3: skip the untimed warm-up drain before the first round.
    #[arg(long)]
    pub no_warmup: bool,
    /// Stage 3: before each drain, wait up to this long for the machine to be ≥ 85% idle for
    /// 2 s (other sessions' builds skew a drain); 0 = do not wait.
    #[arg(long, value_parser = crate::cli::parse_duration, default_value = "15s")]
    pub quiet_wait: Duration,
    /// Stage 3: distinct synthetic frames rendered up front and cycled through.
    #[arg(long, default_value_t = 128)]
    pub distinct_frames: usize,
    /// Stage 3: synthetic cameras.
    #[arg(long, default_value_t = 4)]
    pub cameras: u32,
    #[arg(long, default_value_t = 640)]
    pub width: u32,
    #[arg(long, default_value_t = 480)]
    pub height: u32,
    /// Stage 3: scene seed of the stream (and of the profile made for it).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value_t = 85, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub jpeg_quality: u8,
    /// Stage 3: partitions of the input topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// Pid of the Kafka broker whose CPU time is reported [default: every local process with
    /// `kafka.Kafka` on its command line].
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Leave the benchmark's topics on the broker.
    #[arg(long)]
    pub keep_topics: bool,
    /// Write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

fn runtime(e: impl Into<anyhow::Error>) -> CliError {
    CliError::Runtime(e.into())
}

fn usage(m: &str) -> Result<(), CliError> {
    Err(CliError::Usage(m.to_owned()))
}

fn check_args(a: &DriftBenchArgs) -> Result<(), CliError> {
    if a.stages.is_empty() || a.stages.iter().any(|s| !(1..=3).contains(s)) {
        return usage("--stages takes 1, 2 and/or 3");
    }
    if a.rows == 0 || a.ingest_passes == 0 {
        return usage("--rows and --ingest-passes must be at least 1");
    }
    if a.ingest_features.iter().any(|f| *f == 0 || *f > 10_000) || a.ingest_features.is_empty() {
        return usage("--ingest-features must be within 1..=10000");
    }
    if a.eval_features == 0 || a.eval_features > 10_000 {
        return usage("--eval-features must be within 1..=10000");
    }
    if a.reference_rows < 100 || a.window_rows < 30 {
        return usage("--reference-rows must be ≥ 100 and --window-rows ≥ 30");
    }
    if a.windows < 2 || a.eval_passes == 0 || a.partials == 0 || a.merge_reps == 0 {
        return usage("--windows ≥ 2, --eval-passes, --partials and --merge-reps ≥ 1");
    }
    if !a.shift.is_finite() {
        return usage("--shift must be a number");
    }
    if a.frames == 0 || a.rounds == 0 || a.distinct_frames == 0 || a.profile_frames == 0 {
        return usage("--frames, --rounds, --distinct-frames and --profile-frames must be ≥ 1");
    }
    if a.sidecar_max_fps.iter().any(|f| !f.is_finite() || *f < 0.0) {
        return usage("--sidecar-max-fps values must be ≥ 0");
    }
    if !(a.fps.is_finite() && a.fps > 0.0) {
        return usage("--fps must be > 0");
    }
    if a.cameras == 0 || a.width < 32 || a.height < 32 || a.partitions < 1 {
        return usage("--cameras ≥ 1, frames at least 32x32 and --partitions ≥ 1");
    }
    if let Some(path) = &a.json {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
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

// ---------------------------------------------------------------------------------------
// Deterministic data.

/// 64-bit LCG (Knuth's MMIX constants) with an output mix, so the low bits are usable too.
#[derive(Debug, Clone)]
struct Lcg(u64);

impl Lcg {
    fn new(seed: u64) -> Self {
        let mut l = Lcg(seed ^ 0x9e37_79b9_7f4a_7c15);
        l.next_u64();
        l
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let mut z = self.0;
        z = (z ^ (z >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        z ^ (z >> 33)
    }

    /// Uniform in (0, 1).
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// Standard normal (Box–Muller, one of the pair).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// One value of feature `j`: four shapes (normal, log-normal, uniform, exponential) with
/// scales varying by `j`, all continuous, so every feature is profiled as numeric.
fn draw(rng: &mut Lcg, j: usize) -> f64 {
    let s = (j % 7 + 1) as f64;
    match j % 4 {
        0 => 10.0 * j as f64 + s * rng.normal(),
        1 => (0.5 * rng.normal()).exp() * s,
        2 => rng.uniform() * 10.0 * s,
        _ => -rng.uniform().ln() * s,
    }
}

const BENCH_TOPIC: &str = "drift-bench";
const CAMERAS: [&str; 4] = ["cam-0", "cam-1", "cam-2", "cam-3"];

/// A reference segment of `features` numeric features over `rows` rows, built with
/// `FeatureProfile::numeric` (what `argus drift profile --records` does per column).
fn reference_segment(features: usize, rows: usize, settings: &ProfileSettings) -> SegmentProfile {
    let hashes: Vec<u64> = (0..rows)
        .map(|i| record_hash(settings.seed, "reference", 0, i as i64))
        .collect();
    let features = (0..features)
        .map(|j| {
            let mut rng = Lcg::new(1000 + j as u64);
            let values: Vec<Option<f64>> = (0..rows).map(|_| Some(draw(&mut rng, j))).collect();
            FeatureProfile::numeric(
                &format!("f{j:03}"),
                FeatureKind::Numeric,
                &values,
                &hashes,
                settings,
            )
        })
        .collect();
    SegmentProfile {
        n: rows as u64,
        features,
        histograms: None,
    }
}

/// A sealed records profile whose fleet segment has the first `features` of `full`.
fn profile_of(
    full: &SegmentProfile,
    features: usize,
    settings: &ProfileSettings,
) -> Result<Profile, CliError> {
    let seg = SegmentProfile {
        n: full.n,
        features: full.features[..features.min(full.features.len())].to_vec(),
        histograms: None,
    };
    Profile::seal(
        format!("drift-bench-{features}"),
        StreamKind::Records,
        format!("LCG, {} rows", full.n),
        settings.clone(),
        BTreeMap::from([(FLEET.to_owned(), seg)]),
        None,
        format!("argus {}", env!("CARGO_PKG_VERSION")),
    )
    .map_err(runtime)
}

/// A window's summary of `rows` fresh rows; `shift[j]` is added to feature j.
fn window_summary(
    seg: &SegmentProfile,
    settings: &ProfileSettings,
    rows: u64,
    seed: u64,
    shift: Option<&[f64]>,
    partition: i32,
) -> SegmentSummary {
    let mut rng = Lcg::new(seed);
    let mut s = SegmentSummary::new(seg, None, settings.sample_k);
    for r in 0..rows {
        let h = record_hash(settings.seed, BENCH_TOPIC, partition, r as i64);
        s.n_records += 1;
        for j in 0..seg.features.len() {
            let mut x = draw(&mut rng, j);
            if let Some(d) = shift.and_then(|s| s.get(j)) {
                x += d;
            }
            s.add(seg, j, Cell::Num(x), h);
        }
    }
    s
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    b::percentile(&v, 0.5)
}

/// Median wall seconds of `passes` runs of `f`.
fn median_secs(passes: usize, mut f: impl FnMut()) -> f64 {
    let v: Vec<f64> = (0..passes.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    median(&v)
}

// ---------------------------------------------------------------------------------------
// Stage 1.

#[derive(Debug, Clone, Serialize)]
struct IngestBreakdown {
    /// Reading the values and adding them to per-feature accumulators (the baseline loop).
    read_floor: f64,
    /// `record_hash` once per row, divided by the row's features.
    record_hash: f64,
    /// `Binning::bin` (binary search on the reference's fine edges), beyond the floor.
    binning: f64,
    /// `Welford::add`, beyond the floor.
    welford: f64,
    /// `BottomK::add` with the row's hash, beyond the floor.
    bottom_k: f64,
    /// The rest of `NumericSummary::add`: min/max, counters, range checks (its loop, net of
    /// the floor, minus binning, Welford and bottom-k).
    numeric_rest: f64,
    /// `SegmentSummary::add` over `NumericSummary::add`: the per-value dispatch (feature
    /// and reference lookup, `Cell` match) and `n_records`.
    dispatch: f64,
}

#[derive(Debug, Clone, Serialize)]
struct IngestResult {
    features: usize,
    rows: u64,
    values: u64,
    passes: usize,
    /// Plain loop summing the same values into per-feature accumulators.
    baseline_values_per_s: f64,
    /// `record_hash` per row + `SegmentSummary::add` per feature, one thread.
    summary_values_per_s: f64,
    summary_ns_per_value: f64,
    /// summary rate ÷ baseline rate.
    summary_over_baseline: f64,
    /// ns per value of each part (medians of separate loops over the same data).
    breakdown_ns_per_value: IngestBreakdown,
    /// `PartitionPanes::admit` + `PartitionPanes::add` per row (the sidecar's own code; each
    /// row goes to the fleet `*` and to its camera's summary, so every value is summarised
    /// twice), values offered per second.
    pane_path_values_per_s: f64,
    /// A records stream's per-row work before the summaries, per value: `decode_envelope` of
    /// a `Payload::Record` with `features` float fields ...
    record_decode_ns_per_value: f64,
    /// ... and the field → feature-index mapping of `sidecar.rs` (replicated here: a HashMap
    /// lookup per field plus a linear search of the row's cells, then a sort).
    record_mapping_ns_per_value: f64,
    record_rows_measured: u64,
}

fn stage1(
    args: &DriftBenchArgs,
    full: &SegmentProfile,
    settings: &ProfileSettings,
) -> Result<Vec<IngestResult>, CliError> {
    println!();
    println!(
        "stage 1  ingest: record_hash per row + SegmentSummary::add per feature, one thread, {} rows, median of {} passes",
        args.rows, args.ingest_passes
    );
    let mut out = Vec::new();
    for &f in &args.ingest_features {
        out.push(ingest_one(args, full, settings, f)?);
    }
    println!(
        "  {:>8} {:>12} {:>12} {:>10} {:>9} {:>12} | ns/value: {:>5} {:>5} {:>5} {:>5} {:>5} {:>5} {:>5} | {:>12} {:>8} {:>8}",
        "features", "baseline v/s", "summary v/s", "ns/value", "sum/base", "target 5M/s",
        "read", "hash", "bin", "welf", "botk", "rest", "disp",
        "pane path v/s", "rec dec", "rec map"
    );
    for r in &out {
        let bd = &r.breakdown_ns_per_value;
        println!(
            "  {:>8} {:>12} {:>12} {:>10.2} {:>9.3} {:>12} | {:>15.2} {:>5.2} {:>5.2} {:>5.2} {:>5.2} {:>5.2} {:>5.2} | {:>12} {:>8.1} {:>8.1}",
            r.features,
            millions(r.baseline_values_per_s),
            millions(r.summary_values_per_s),
            r.summary_ns_per_value,
            r.summary_over_baseline,
            verdict(r.summary_values_per_s >= 5e6).trim(),
            bd.read_floor,
            bd.record_hash,
            bd.binning,
            bd.welford,
            bd.bottom_k,
            bd.numeric_rest,
            bd.dispatch,
            millions(r.pane_path_values_per_s),
            r.record_decode_ns_per_value,
            r.record_mapping_ns_per_value,
        );
    }
    println!("  (v/s = numeric values per second; breakdown parts are separate loops, each net of the read floor; rest = NumericSummary::add's min/max/counters; disp = SegmentSummary::add's dispatch over NumericSummary::add; pane path = PartitionPanes::admit+add, fleet + camera summary per row; rec dec/map = a records stream's decode_envelope and field mapping per value, before any summary)");
    Ok(out)
}

fn millions(v: f64) -> String {
    format!("{:.1}M", v / 1e6)
}

fn ingest_one(
    args: &DriftBenchArgs,
    full: &SegmentProfile,
    settings: &ProfileSettings,
    f: usize,
) -> Result<IngestResult, CliError> {
    let profile = profile_of(full, f, settings)?;
    let seg = profile.fleet();
    let f = seg.features.len();
    let rows = args.rows;
    let passes = args.ingest_passes;
    let seed = settings.seed;
    let k = settings.sample_k;
    // At most 16M values (128 MB) are held; longer runs cycle through them.
    let block_rows = usize::try_from(rows)
        .unwrap_or(usize::MAX)
        .min((16 << 20) / f)
        .max(1);
    let mut rng = Lcg::new(7);
    let block: Vec<f64> = (0..block_rows * f).map(|i| draw(&mut rng, i % f)).collect();
    let row = |r: u64| {
        let i = (r % block_rows as u64) as usize * f;
        &block[i..i + f]
    };
    let hashes: Vec<u64> = (0..rows)
        .map(|r| record_hash(seed, BENCH_TOPIC, 0, r as i64))
        .collect();
    let binnings: Vec<&Binning> = seg
        .features
        .iter()
        .filter_map(|p| p.numeric.as_ref().map(|n| &n.binning))
        .collect();
    if binnings.len() != f {
        return Err(runtime(anyhow!(
            "a synthetic feature was not profiled as numeric"
        )));
    }
    let values = rows * f as u64;
    let per_value = |secs: f64| secs * 1e9 / values as f64;

    let floor = median_secs(passes, || {
        let mut acc = vec![0.0f64; f];
        for r in 0..rows {
            for (a, x) in acc.iter_mut().zip(black_box(row(r))) {
                *a += x;
            }
        }
        black_box(&acc);
    });
    let summary = median_secs(passes, || {
        let mut s = SegmentSummary::new(seg, None, k);
        for r in 0..rows {
            let h = record_hash(seed, BENCH_TOPIC, 0, r as i64);
            s.n_records += 1;
            for (j, x) in black_box(row(r)).iter().enumerate() {
                s.add(seg, j, Cell::Num(*x), h);
            }
        }
        black_box(&s);
    });
    let hash = median_secs(passes, || {
        let mut acc = 0u64;
        for r in 0..rows {
            acc ^= record_hash(seed, BENCH_TOPIC, 0, black_box(r as i64));
        }
        black_box(acc);
    });
    let binning = median_secs(passes, || {
        let mut acc = 0usize;
        for r in 0..rows {
            for (bn, x) in binnings.iter().zip(black_box(row(r))) {
                acc = acc.wrapping_add(bn.bin(*x));
            }
        }
        black_box(acc);
    });
    let welford = median_secs(passes, || {
        let mut w = vec![Welford::default(); f];
        for r in 0..rows {
            for (w, x) in w.iter_mut().zip(black_box(row(r))) {
                w.add(*x);
            }
        }
        black_box(&w);
    });
    let bottom_k = median_secs(passes, || {
        let mut bk = vec![BottomK::new(k); f];
        for (r, h) in hashes.iter().enumerate() {
            for (s, x) in bk.iter_mut().zip(black_box(row(r as u64))) {
                s.add(*h, *x);
            }
        }
        black_box(&bk);
    });
    let numeric = median_secs(passes, || {
        let mut ns: Vec<NumericSummary> = binnings
            .iter()
            .map(|bn| NumericSummary::new(bn, k))
            .collect();
        for r in 0..rows {
            let h = record_hash(seed, BENCH_TOPIC, 0, r as i64);
            for ((s, bn), x) in ns.iter_mut().zip(&binnings).zip(black_box(row(r))) {
                s.add(bn, Some(*x), h);
            }
        }
        black_box(&ns);
    });
    let cfg = PaneConfig {
        pane_us: 3_600_000_000,
        lateness_us: 0,
        sampler: Sampler::new(1.0),
        max_fps: 0.0,
        max_segments: 200,
        seed,
    };
    let pane_path = median_secs(passes, || {
        let mut pp = PartitionPanes::new(BENCH_TOPIC, 0, None);
        for r in 0..rows {
            let offset = r as i64;
            let camera = CAMERAS[(r % 4) as usize];
            // One row per millisecond of event time: every row lands in the first pane.
            let (_, pane) = pp.admit(&cfg, offset, offset * 1000, Some(camera), true);
            let cells: Vec<(usize, Cell<'_>)> = black_box(row(r))
                .iter()
                .enumerate()
                .map(|(j, x)| (j, Cell::Num(*x)))
                .collect();
            pp.add(
                &profile,
                &cfg,
                pane,
                offset,
                Some(camera),
                &cells,
                None,
                None,
            );
        }
        black_box(&pp);
    });

    // A records stream: decode + field mapping, as sidecar.rs does before `PartitionPanes::add`.
    let names: Vec<String> = seg.features.iter().map(|p| p.name.clone()).collect();
    let encoded: Vec<Vec<u8>> = (0..block_rows.min(1024))
        .map(|r| {
            encode_envelope(&Envelope {
                schema_version: argus_wire::SCHEMA_VERSION,
                source_id: CAMERAS[r % 4].to_owned(),
                sequence: r as u64,
                capture_time_us: r as i64 * 1000,
                payload: Payload::Record(argus_wire::Record {
                    fields: names
                        .iter()
                        .zip(row(r as u64))
                        .map(|(n, x)| Field {
                            name: n.clone(),
                            value: Value::Float(*x),
                        })
                        .collect(),
                }),
            })
            .map_err(runtime)
        })
        .collect::<Result<_, _>>()?;
    let layout: HashMap<String, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), i))
        .collect();
    let record_rows = rows.min(200_000);
    let record_values = record_rows * f as u64;
    let decode = median_secs(passes, || {
        for r in 0..record_rows {
            let e = decode_envelope(black_box(&encoded[(r % encoded.len() as u64) as usize]));
            black_box(&e);
        }
    });
    let decode_and_map = median_secs(passes, || {
        for r in 0..record_rows {
            let Ok(env) = decode_envelope(black_box(&encoded[(r % encoded.len() as u64) as usize]))
            else {
                continue;
            };
            let Payload::Record(rec) = &env.payload else {
                continue;
            };
            // sidecar.rs, handle_record, StreamKind::Records (before its index-based mapping).
            let mut values: Vec<(usize, Cell<'_>)> =
                layout.values().map(|i| (*i, Cell::Null)).collect();
            for fl in &rec.fields {
                if let Some(i) = layout.get(&fl.name) {
                    if let Some(slot) = values.iter_mut().find(|(j, _)| j == i) {
                        slot.1 = field_cell(&fl.value);
                    }
                }
            }
            values.sort_by_key(|v| v.0);
            black_box(&values);
        }
    });

    let floor_ns = per_value(floor);
    let net = |secs: f64| (per_value(secs) - floor_ns).max(0.0);
    let summary_ns = per_value(summary);
    let hash_ns = per_value(hash);
    let (bin_ns, welford_ns, bottom_ns) = (net(binning), net(welford), net(bottom_k));
    let numeric_ns = per_value(numeric);
    Ok(IngestResult {
        features: f,
        rows,
        values,
        passes,
        baseline_values_per_s: values as f64 / floor,
        summary_values_per_s: values as f64 / summary,
        summary_ns_per_value: summary_ns,
        summary_over_baseline: floor / summary,
        breakdown_ns_per_value: IngestBreakdown {
            read_floor: floor_ns,
            record_hash: hash_ns,
            binning: bin_ns,
            welford: welford_ns,
            bottom_k: bottom_ns,
            numeric_rest: numeric_ns - floor_ns - hash_ns - bin_ns - welford_ns - bottom_ns,
            dispatch: summary_ns - numeric_ns,
        },
        pane_path_values_per_s: values as f64 / pane_path,
        record_decode_ns_per_value: decode * 1e9 / record_values as f64,
        record_mapping_ns_per_value: (decode_and_map - decode).max(0.0) * 1e9
            / record_values as f64,
        record_rows_measured: record_rows,
    })
}

// ---------------------------------------------------------------------------------------
// Stage 2.

#[derive(Debug, Clone, Serialize)]
struct Quantiles {
    p50: f64,
    p99: f64,
    max: f64,
}

fn quantiles(v: &[f64]) -> Quantiles {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    Quantiles {
        p50: b::percentile(&v, 0.5),
        p99: b::percentile(&v, 0.99),
        max: v.last().copied().unwrap_or(f64::NAN),
    }
}

#[derive(Debug, Clone, Serialize)]
struct EvalResult {
    features: usize,
    reference_rows: u64,
    reference_sample: usize,
    window_rows: u64,
    window_sample: usize,
    windows: usize,
    passes: usize,
    shift_sd: f64,
    /// `evaluate` (tests, effect sizes, BH, dataset decision), ms.
    evaluate_ms: Quantiles,
    /// Assembling the `DriftReport` (alarm rule included) and `serde_json::to_string`, ms.
    report_json_ms: Quantiles,
    /// Both, per window, ms: the headline.
    total_ms: Quantiles,
    /// `evaluate` + JSON of null windows and of shifted windows separately (p50 ms).
    null_total_p50_ms: f64,
    shifted_total_p50_ms: f64,
    report_bytes_p50: f64,
    /// Sanity: mean features with status drift per window.
    null_mean_drifted: f64,
    shifted_mean_drifted: f64,
    null_windows_with_drift: usize,
    shifted_windows_with_drift: usize,
    merge: MergeResult,
}

#[derive(Debug, Clone, Serialize)]
struct MergeResult {
    partials: usize,
    rows_per_partial: u64,
    reps: usize,
    /// Clone the first partial, merge the others in (as `Aggregator::reports_for`), ms.
    merge_ms: Quantiles,
    /// The same, per feature and merge (µs).
    merge_us_per_feature_merge: f64,
    /// `Aggregator::reports_for` on the ingested partials: merge + evaluate + report, ms.
    aggregator_reports_for_ms: Quantiles,
    /// One partial (the fleet segment only) as JSON on the panes topic.
    partial_json_bytes: usize,
    /// Parsing that JSON back (`serde_json::from_slice::<PaneRecord>`), ms.
    partial_parse_ms: Quantiles,
    /// Serialising it, ms.
    partial_serialise_ms: Quantiles,
}

fn stage2(
    args: &DriftBenchArgs,
    full: &SegmentProfile,
    settings: &ProfileSettings,
) -> Result<EvalResult, CliError> {
    let profile = profile_of(full, args.eval_features, settings)?;
    let seg = profile.fleet();
    let f = seg.features.len();
    let cfg = EvalConfig::default();
    let shift: Vec<f64> = seg
        .features
        .iter()
        .map(|p| p.numeric.as_ref().map_or(0.0, |n| n.std * args.shift))
        .collect();
    println!();
    println!(
        "stage 2  window evaluation: {f} numeric features, windows of {} rows (bottom-k {}), reference of {} rows (samples of {}), {} windows (null/shifted by {} sd alternately) × {} passes",
        args.window_rows,
        settings.sample_k,
        seg.n,
        seg.features
            .first()
            .and_then(|p| p.numeric.as_ref())
            .map_or(0, |n| n.sample.len()),
        args.windows,
        args.shift,
        args.eval_passes
    );
    let t = Instant::now();
    let windows: Vec<(bool, SegmentSummary)> = (0..args.windows)
        .map(|w| {
            let shifted = w % 2 == 1;
            let s = window_summary(
                seg,
                settings,
                args.window_rows,
                10_000 + w as u64,
                shifted.then_some(shift.as_slice()),
                i32::try_from(w).unwrap_or(i32::MAX),
            );
            (shifted, s)
        })
        .collect();
    println!(
        "  {} window summaries built in {:.2} s",
        windows.len(),
        t.elapsed().as_secs_f64()
    );
    let pane_us = 60_000_000i64;
    let model = ModelInfo {
        id: "drift-bench".into(),
        version: "-".into(),
    };
    let mut rule = ConsecutiveRule::new(3, cfg.alpha);
    let one = |summary: &SegmentSummary,
               w: usize,
               rule: &mut ConsecutiveRule|
     -> Result<(f64, f64, usize, usize), CliError> {
        let t0 = Instant::now();
        let ev = evaluate(seg, summary, None, &cfg);
        let t1 = Instant::now();
        let end = 1_800_000_000_000_000 + w as i64 * pane_us;
        let start = end - 5 * pane_us;
        let alarm = rule.observe(ev.decision());
        let n_drifted = ev.dataset.n_drifted;
        let window = Window {
            start: rfc3339_us(start),
            end: rfc3339_us(end),
            start_us: start,
            end_us: end,
            panes: 5,
            pane_seconds: pane_us as f64 / 1e6,
            n_records: summary.n_records,
            n_sampled: summary.n_records,
            sample_rate: 1.0,
            late_records: 0,
        };
        let provenance = Provenance {
            sidecars_merged: 1,
            partials: 5,
            offsets: vec![OffsetRange {
                topic: BENCH_TOPIC.to_owned(),
                partition: 0,
                from: 0,
                to: i64::try_from(summary.n_records).unwrap_or(i64::MAX) - 1,
            }],
        };
        let report = DriftReport::assemble(
            model.clone(),
            FLEET.to_owned(),
            window,
            &profile,
            provenance,
            ev,
            alarm,
        );
        let json = serde_json::to_string(&report).map_err(runtime)?;
        let t2 = Instant::now();
        black_box(&json);
        Ok((
            (t1 - t0).as_secs_f64() * 1e3,
            (t2 - t1).as_secs_f64() * 1e3,
            json.len(),
            n_drifted,
        ))
    };
    // Warm-up (allocator, caches), not timed.
    if let Some((_, s)) = windows.first() {
        one(s, 0, &mut rule)?;
    }
    let (mut ev_ms, mut js_ms, mut tot, mut bytes) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut null_tot, mut shifted_tot) = (Vec::new(), Vec::new());
    let (mut null_drifted, mut shifted_drifted) = (Vec::new(), Vec::new());
    for pass in 0..args.eval_passes {
        for (w, (shifted, s)) in windows.iter().enumerate() {
            let (e, j, n, drifted) = one(s, w, &mut rule)?;
            ev_ms.push(e);
            js_ms.push(j);
            tot.push(e + j);
            bytes.push(n as f64);
            if *shifted {
                shifted_tot.push(e + j);
            } else {
                null_tot.push(e + j);
            }
            if pass == 0 {
                if *shifted {
                    shifted_drifted.push(drifted);
                } else {
                    null_drifted.push(drifted);
                }
            }
        }
    }
    let mean = |v: &[usize]| v.iter().sum::<usize>() as f64 / v.len().max(1) as f64;
    let merge = merge_bench(args, &profile, settings, &cfg)?;
    let r = EvalResult {
        features: f,
        reference_rows: seg.n,
        reference_sample: seg
            .features
            .first()
            .and_then(|p| p.numeric.as_ref())
            .map_or(0, |n| n.sample.len()),
        window_rows: args.window_rows,
        window_sample: windows
            .first()
            .and_then(|(_, s)| match s.features.first() {
                Some(argus_stats::summary::FeatureSummary::Numeric(n)) => Some(n.sample.len()),
                _ => None,
            })
            .unwrap_or(0),
        windows: windows.len(),
        passes: args.eval_passes,
        shift_sd: args.shift,
        evaluate_ms: quantiles(&ev_ms),
        report_json_ms: quantiles(&js_ms),
        total_ms: quantiles(&tot),
        null_total_p50_ms: median(&null_tot),
        shifted_total_p50_ms: median(&shifted_tot),
        report_bytes_p50: median(&bytes),
        null_mean_drifted: mean(&null_drifted),
        shifted_mean_drifted: mean(&shifted_drifted),
        null_windows_with_drift: null_drifted.iter().filter(|d| **d > 0).count(),
        shifted_windows_with_drift: shifted_drifted.iter().filter(|d| **d > 0).count(),
        merge,
    };
    println!(
        "  {:<44} {:>9} {:>9} {:>9}",
        "per window (ms)", "p50", "p99", "max"
    );
    for (what, q) in [
        ("evaluate (tests + BH)", &r.evaluate_ms),
        ("DriftReport assembly + serde_json", &r.report_json_ms),
        ("evaluate + report JSON", &r.total_ms),
    ] {
        println!("  {what:<44} {:>9.2} {:>9.2} {:>9.2}", q.p50, q.p99, q.max);
    }
    println!(
        "  null windows p50 {:.2} ms, shifted p50 {:.2} ms; report {:.0} kB; drifted features per window: null {:.2} (windows with any: {}/{}), shifted {:.1} (windows with any: {}/{})",
        r.null_total_p50_ms,
        r.shifted_total_p50_ms,
        r.report_bytes_p50 / 1e3,
        r.null_mean_drifted,
        r.null_windows_with_drift,
        null_drifted.len(),
        r.shifted_mean_drifted,
        r.shifted_windows_with_drift,
        shifted_drifted.len()
    );
    let m = &r.merge;
    println!(
        "  merge {} partials of {f} features ({} rows each, full bottom-k): p50 {:.2} ms, p99 {:.2} ms (spec target ≤ 5 ms){}; {:.1} µs per feature and merge",
        m.partials, m.rows_per_partial, m.merge_ms.p50, m.merge_ms.p99, verdict(m.merge_ms.p50 <= 5.0), m.merge_us_per_feature_merge
    );
    println!(
        "  Aggregator::reports_for on those {} partials (merge + evaluate + report, no JSON): p50 {:.2} ms, p99 {:.2} ms",
        m.partials, m.aggregator_reports_for_ms.p50, m.aggregator_reports_for_ms.p99
    );
    println!(
        "  one partial on the panes topic (fleet segment only): {:.0} kB of JSON ({:.1} kB per feature; librdkafka's message.max.bytes default is 1000 kB); serialise p50 {:.2} ms, parse p50 {:.2} ms",
        m.partial_json_bytes as f64 / 1e3,
        m.partial_json_bytes as f64 / 1e3 / f as f64,
        m.partial_serialise_ms.p50,
        m.partial_parse_ms.p50
    );
    Ok(r)
}

fn merge_bench(
    args: &DriftBenchArgs,
    profile: &Profile,
    settings: &ProfileSettings,
    cfg: &EvalConfig,
) -> Result<MergeResult, CliError> {
    let seg = profile.fleet();
    let f = seg.features.len();
    let partials: Vec<SegmentSummary> = (0..args.partials)
        .map(|p| {
            window_summary(
                seg,
                settings,
                args.window_rows,
                50_000 + p as u64,
                None,
                1000 + i32::try_from(p).unwrap_or(0),
            )
        })
        .collect();
    let mut times = Vec::new();
    for _ in 0..args.merge_reps {
        let t = Instant::now();
        let mut it = partials.iter();
        let mut merged = it.next().cloned();
        if let Some(m) = merged.as_mut() {
            for p in it {
                m.merge(p);
            }
        }
        times.push(t.elapsed().as_secs_f64() * 1e3);
        black_box(&merged);
    }
    let merge_ms = quantiles(&times);
    let merges = args.partials.saturating_sub(1).max(1);
    let pane_us = 60_000_000i64;
    let pane = 1_800_000_000_000_000 / pane_us * pane_us;
    let messages: Vec<PaneMessage> = partials
        .iter()
        .enumerate()
        .map(|(p, s)| {
            PaneMessage::Partial(Box::new(Partial {
                sidecar: "drift-bench".into(),
                reference_sha256: profile.sha256.clone(),
                topic: BENCH_TOPIC.into(),
                partition: i32::try_from(p).unwrap_or(0),
                pane_start_us: pane,
                pane_us,
                from_offset: 0,
                to_offset: i64::try_from(s.n_records).unwrap_or(1) - 1,
                n_records: s.n_records,
                n_sampled: s.n_records,
                late_records: 0,
                segments: BTreeMap::from([(FLEET.to_owned(), s.clone())]),
            }))
        })
        .collect();
    let record = messages
        .first()
        .cloned()
        .map(PaneRecord::new)
        .ok_or_else(|| runtime(anyhow!("no partials")))?;
    let mut ser = Vec::new();
    let mut parse = Vec::new();
    let mut bytes = 0;
    for _ in 0..args.merge_reps.min(20) {
        let t = Instant::now();
        let json = serde_json::to_vec(&record).map_err(runtime)?;
        ser.push(t.elapsed().as_secs_f64() * 1e3);
        bytes = json.len();
        let t = Instant::now();
        let back: PaneRecord = serde_json::from_slice(&json).map_err(runtime)?;
        parse.push(t.elapsed().as_secs_f64() * 1e3);
        black_box(&back);
    }
    let mut agg = Aggregator::new(
        AggregateConfig {
            pane_us,
            window_panes: 1,
            alarm_k: 3,
            eval: cfg.clone(),
            model: ModelInfo {
                id: "drift-bench".into(),
                version: "-".into(),
            },
            sample_rate: 1.0,
            input_topic: BENCH_TOPIC.into(),
        },
        Arc::new(profile.clone()),
    );
    for m in messages {
        agg.ingest(m);
    }
    let mut agg_ms = Vec::new();
    for _ in 0..args.merge_reps.min(20) {
        let t = Instant::now();
        let r = agg.reports_for(pane);
        agg_ms.push(t.elapsed().as_secs_f64() * 1e3);
        if r.is_empty() {
            return Err(runtime(anyhow!("the aggregator made no report")));
        }
        black_box(&r);
    }
    Ok(MergeResult {
        partials: args.partials,
        rows_per_partial: args.window_rows,
        reps: args.merge_reps,
        merge_us_per_feature_merge: merge_ms.p50 * 1e3 / (f * merges) as f64,
        merge_ms,
        aggregator_reports_for_ms: quantiles(&agg_ms),
        partial_json_bytes: bytes,
        partial_parse_ms: quantiles(&parse),
        partial_serialise_ms: quantiles(&ser),
    })
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "  met"
    } else {
        "  NOT MET"
    }
}

// ---------------------------------------------------------------------------------------
// Stage 3.

#[derive(Debug, Clone, Serialize)]
struct FrameCosts {
    frames: usize,
    /// `decode_envelope` of one 640×480 JPEG envelope (the sidecar does it for every frame).
    decode_envelope_us_p50: f64,
    /// `features::frame_values`: JPEG decode, downscale to ≤ 256 px, features + histograms
    /// (the sidecar does it for every analysed frame).
    frame_values_us_p50: f64,
    /// Its parts: JPEG decode (`argus_model::preprocess::decode`), downscale
    /// (`features::downscale`), features + histograms on the downscaled frame.
    jpeg_decode_us_p50: f64,
    downscale_us_p50: f64,
    features_us_p50: f64,
    /// `Classifier::classify` (the worker's decode, preprocess, infer, postprocess).
    worker_classify_us_p50: f64,
}

#[derive(Debug, Clone, Serialize)]
struct DrainRun {
    round: usize,
    /// "alone" or "sidecar --max-fps F".
    variant: String,
    max_fps: Option<f64>,
    frames: u64,
    group_join_seconds: f64,
    seconds: f64,
    frames_per_s: f64,
    predicted: u64,
    not_predicted: u64,
    pauses: u64,
    /// CPU over the drain (first consumed → last finished).
    worker_process_cpu_seconds: Option<f64>,
    broker_cpu_seconds: Option<f64>,
    sidecar_cpu_seconds: Option<f64>,
    machine_busy: Option<f64>,
    /// Machine busy time not accounted to the worker process, the broker or the sidecar
    /// (other processes) ...
    other_cpu_seconds: Option<f64>,
    /// ... above 10% of the machine: the run is left out of the summary's ratios.
    contended: bool,
    /// Waited for a quiet machine before the run (s), and whether it got quiet.
    quiet_wait_seconds: f64,
    quiet: bool,
    /// Sidecar CPU from its start to when it had read every frame and prediction (or gave
    /// up waiting), and per frame.
    sidecar_cpu_total_seconds: Option<f64>,
    sidecar_cpu_ms_per_frame: Option<f64>,
    /// Input records the sidecar had read when the worker consumed its first input, and at
    /// the end of the drain; predictions read at the end of the drain.
    sidecar_input_read_at_start: Option<u64>,
    sidecar_input_read_at_end: Option<u64>,
    sidecar_predictions_read_at_end: Option<u64>,
    /// Input frames the sidecar analysed (sampled) in all.
    sidecar_frames_analysed: Option<u64>,
    /// After the drain, until the sidecar had read everything (None: it had already, or the
    /// wait timed out — see `sidecar_caught_up`).
    sidecar_catch_up_seconds: Option<f64>,
    sidecar_caught_up: Option<bool>,
    /// Windows the sidecar evaluated and their mean time (its own histogram).
    sidecar_windows_evaluated: Option<u64>,
    sidecar_eval_mean_ms: Option<f64>,
    /// Lines at WARN or ERROR in the sidecar's log, other than ...
    sidecar_log_warnings: Option<usize>,
    /// ... librdkafka's PartitionEOF, which `argus_kafka::context` logs at ERROR.
    sidecar_log_partition_eof_errors: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
struct VariantSummary {
    variant: String,
    runs: usize,
    frames_per_s_median: f64,
    frames_per_s_min: f64,
    frames_per_s_max: f64,
    /// Median over rounds of (this variant's rate ÷ the alone rate of the same round).
    ratio_median: Option<f64>,
    ratio_min: Option<f64>,
    ratio_max: Option<f64>,
    /// Median of this variant ÷ median of alone.
    ratio_of_medians: Option<f64>,
    sidecar_cpu_ms_per_frame_median: Option<f64>,
    /// Sidecar CPU seconds during the drain ÷ drain seconds.
    sidecar_cores_during_drain_median: Option<f64>,
    worker_cpu_ms_per_frame_median: Option<f64>,
    machine_idle_median: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
struct ThroughputResult {
    frames: u64,
    partitions: i32,
    camera_fps: f64,
    cameras: u32,
    event_time_span_seconds: f64,
    mean_frame_bytes: f64,
    profile: String,
    profile_seconds: Option<f64>,
    prefill_seconds: f64,
    frame_costs: FrameCosts,
    runs: Vec<DrainRun>,
    summary: Vec<VariantSummary>,
    sidecar_logs: String,
}

/// CPU counters at one instant.
#[derive(Debug, Clone)]
struct Snap {
    bench: Option<u64>,
    broker: Option<u64>,
    sidecar: Option<u64>,
    machine: Option<(u64, u64)>,
}

impl Snap {
    fn now(brokers: &[u32], sidecar: Option<u32>) -> Self {
        let ticks = |pid: u32| b::stat_ticks(&format!("/proc/{pid}")).map(|t| t.1);
        Snap {
            bench: b::stat_ticks("/proc/self").map(|t| t.1),
            broker: (!brokers.is_empty()).then(|| brokers.iter().filter_map(|p| ticks(*p)).sum()),
            sidecar: sidecar.and_then(ticks),
            machine: b::cpu_snapshot(),
        }
    }
}

fn secs(a: Option<u64>, b: Option<u64>) -> Option<f64> {
    Some(b?.saturating_sub(a?) as f64 / b::TICKS_PER_S)
}

fn busy(a: Option<(u64, u64)>, b: Option<(u64, u64)>) -> Option<f64> {
    let ((b0, t0), (b1, t1)) = (a?, b?);
    let total = t1.checked_sub(t0).filter(|t| *t > 0)?;
    Some(b1.saturating_sub(b0) as f64 / total as f64)
}

/// A running `argus drift watch` child process; killed if dropped while running.
#[derive(Debug)]
struct Sidecar {
    child: Child,
    port: u16,
    log: PathBuf,
    input: String,
    predictions: String,
}

impl Sidecar {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM (graceful), then SIGKILL after 15 s.
    fn stop(&mut self) {
        if !self.running() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if !self.running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        if self.running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What the sidecar's /metrics said.
#[derive(Debug, Clone, Default)]
struct SidecarMetrics {
    input_read: u64,
    input_sampled: u64,
    predictions_read: u64,
    eval_count: u64,
    eval_sum_seconds: f64,
}

fn scrape(port: u16) -> Option<String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.contains("HTTP/1").then_some(body)
}

fn parse_metrics(text: &str, input: &str, predictions: &str) -> SidecarMetrics {
    let mut m = SidecarMetrics::default();
    for line in text.lines() {
        let Some((key, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.trim().parse::<f64>() else {
            continue;
        };
        if key.starts_with("argus_drift_records_total{") {
            let n = v as u64;
            if key.contains(&format!("topic=\"{input}\"")) {
                m.input_read += n;
                if key.contains("outcome=\"sampled\"") {
                    m.input_sampled += n;
                }
            } else if key.contains(&format!("topic=\"{predictions}\"")) {
                m.predictions_read += n;
            }
        } else if key == "argus_drift_window_eval_seconds_count" {
            m.eval_count = v as u64;
        } else if key == "argus_drift_window_eval_seconds_sum" {
            m.eval_sum_seconds = v;
        }
    }
    m
}

async fn sidecar_metrics(s: &Sidecar) -> Option<SidecarMetrics> {
    let (port, input, predictions) = (s.port, s.input.clone(), s.predictions.clone());
    tokio::task::spawn_blocking(move || {
        scrape(port).map(|t| parse_metrics(&t, &input, &predictions))
    })
    .await
    .ok()
    .flatten()
}

fn free_port() -> Result<u16, CliError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(runtime)?;
    Ok(l.local_addr().map_err(runtime)?.port())
}

/// Topics of one drain run (the input topic is shared).
#[derive(Debug, Clone)]
struct RunTopics {
    predictions: String,
    alerts: String,
    dlq: String,
    panes: String,
    reports: String,
}

type WorkerTask = tokio::task::JoinHandle<Result<(), argus_worker::WorkerError>>;

struct Stage3<'a> {
    args: &'a DriftBenchArgs,
    settings: KafkaSettings,
    model: Arc<Classifier>,
    run_id: String,
    input: String,
    exe: PathBuf,
    profile: PathBuf,
    dir: PathBuf,
    brokers: Vec<u32>,
    interrupted: CancellationToken,
    topics: Vec<String>,
}

impl Stage3<'_> {
    fn start_worker(
        &self,
        tag: &str,
        topics: &RunTopics,
        stats: Arc<WorkerStats>,
    ) -> Result<(WorkerTask, CancellationToken), CliError> {
        // As `argus bench` stage 3 starts it: `argus work`'s defaults, one alert rule.
        let worker_id = format!("argus-drift-bench-worker-{tag}");
        let mut config = WorkerConfig::new(worker_id.clone(), vec![self.input.clone()]);
        config.topics.predictions = topics.predictions.clone();
        config.topics.alerts = topics.alerts.clone();
        config.topics.dlq = topics.dlq.clone();
        config.drain_timeout = Duration::from_secs(10);
        if self.model.labels().iter().any(|l| l == "person") {
            config.rules = vec![AlertRule {
                name: "person".into(),
                label: "person".into(),
                threshold: 0.5,
            }];
        }
        config
            .validate(self.model.labels())
            .map_err(CliError::Usage)?;
        let group = format!("argus-drift-bench-{tag}");
        let consumer = self
            .settings
            .consumer(&group, &worker_id)
            .map_err(|e| CliError::Usage(e.to_string()))?;
        let producer = self
            .settings
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
        Ok((task, stop))
    }

    fn spawn_sidecar(
        &self,
        tag: &str,
        topics: &RunTopics,
        max_fps: f64,
    ) -> Result<Sidecar, CliError> {
        let port = free_port()?;
        let log = self.dir.join(format!("sidecar-{tag}.log"));
        let file = std::fs::File::create(&log).map_err(runtime)?;
        let err = file.try_clone().map_err(runtime)?;
        let mut cmd = Command::new(&self.exe);
        cmd.args(["drift", "watch", "--brokers", &self.args.kafka.brokers])
            .arg("--profile")
            .arg(&self.profile)
            .args([
                "--input",
                &self.input,
                "--predictions",
                &topics.predictions,
                "--reports-topic",
                &topics.reports,
                "--panes-topic",
                &topics.panes,
                "--group",
                &format!("argus-drift-bench-sidecar-{tag}"),
                "--sidecar-id",
                &format!("drift-bench-{tag}"),
                "--metrics-addr",
                &format!("127.0.0.1:{port}"),
                "--max-fps",
                &max_fps.to_string(),
            ]);
        for (k, v) in &self.args.kafka.kafka_option {
            cmd.arg("-X").arg(format!("{k}={v}"));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .map_err(|e| runtime(anyhow!("cannot start {}: {e}", self.exe.display())))?;
        Ok(Sidecar {
            child,
            port,
            log,
            input: self.input.clone(),
            predictions: topics.predictions.clone(),
        })
    }

    /// One drain of the pre-filled topic by a fresh worker, with or without a sidecar.
    async fn drain(
        &mut self,
        index: usize,
        round: usize,
        max_fps: Option<f64>,
    ) -> Result<DrainRun, CliError> {
        let tag = format!("{}-{index}", self.run_id);
        let base = format!("argus-drift-bench-{tag}");
        let topics = RunTopics {
            predictions: format!("{base}.predictions"),
            alerts: format!("{base}.alerts"),
            dlq: format!("{base}.dlq"),
            panes: format!("{base}.panes"),
            reports: format!("{base}.reports"),
        };
        self.topics.extend([
            topics.predictions.clone(),
            topics.alerts.clone(),
            topics.dlq.clone(),
        ]);
        if max_fps.is_some() {
            // The sidecar creates these.
            self.topics
                .extend([topics.panes.clone(), topics.reports.clone()]);
        }
        argus_kafka::ensure_topics(
            &self.settings,
            &[
                TopicSpec::new(&topics.predictions, 4),
                TopicSpec::new(&topics.alerts, 4),
                TopicSpec::new(&topics.dlq, 1),
            ],
        )
        .await
        .map_err(runtime)?;
        let (quiet_wait_seconds, quiet) = quiet_machine(self.args.quiet_wait).await;
        let frames = self.args.frames;
        // The sidecar and the worker are started together; the worker is timed from its first
        // consumed input, as in `argus bench`.
        let mut sidecar = match max_fps {
            Some(f) => Some(self.spawn_sidecar(&tag, &topics, f)?),
            None => None,
        };
        let sidecar_pid = sidecar.as_ref().map(Sidecar::pid);
        let before_sidecar = Snap::now(&self.brokers, sidecar_pid);
        let stats = Arc::new(WorkerStats::default());
        let (task, stop) = self.start_worker(&tag, &topics, stats.clone())?;
        let mut worker = Some((task, stop));
        let t = Instant::now();
        let result = self
            .drain_inner(
                &mut worker,
                &mut sidecar,
                &stats,
                &before_sidecar,
                t,
                round,
                max_fps,
                frames,
            )
            .await;
        if let Some((task, stop)) = worker.take() {
            stop.cancel();
            match tokio::time::timeout(Duration::from_secs(30), task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "bench worker failed"),
                Ok(Err(e)) => tracing::warn!(error = %e, "bench worker task failed"),
                Err(_) => tracing::warn!("bench worker did not stop within 30 s"),
            }
        }
        if let Some(mut s) = sidecar.take() {
            tokio::task::spawn_blocking(move || s.stop())
                .await
                .map_err(runtime)?;
        }
        result.map(|mut r| {
            r.quiet_wait_seconds = quiet_wait_seconds;
            r.quiet = quiet;
            r
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn drain_inner(
        &mut self,
        worker: &mut Option<(WorkerTask, CancellationToken)>,
        sidecar: &mut Option<Sidecar>,
        stats: &WorkerStats,
        before_sidecar: &Snap,
        t: Instant,
        round: usize,
        max_fps: Option<f64>,
        frames: u64,
    ) -> Result<DrainRun, CliError> {
        let sidecar_pid = sidecar.as_ref().map(Sidecar::pid);
        self.wait(
            worker,
            sidecar,
            Duration::from_secs(60),
            "the worker to join",
            || stats.consumed.load(Ordering::Relaxed) >= 1,
        )
        .await?;
        let first = Instant::now();
        let start = Snap::now(&self.brokers, sidecar_pid);
        let at_start = match sidecar.as_ref() {
            Some(s) => sidecar_metrics(s).await,
            None => None,
        };
        let finished = || {
            stats.predicted.load(Ordering::Relaxed)
                + stats.dead_lettered.load(Ordering::Relaxed)
                + b::others(stats)
        };
        let limit = Duration::from_secs(60 + frames / 50);
        self.wait(
            worker,
            sidecar,
            limit,
            "the worker to drain the topic",
            || finished() >= frames,
        )
        .await?;
        let last = Instant::now();
        let end = Snap::now(&self.brokers, sidecar_pid);
        let seconds = (last - first).as_secs_f64();
        let predicted = stats.predicted.load(Ordering::Relaxed);
        let mut run = DrainRun {
            round,
            variant: variant_name(max_fps),
            max_fps,
            frames,
            group_join_seconds: (first - t).as_secs_f64(),
            seconds,
            frames_per_s: frames as f64 / seconds,
            predicted,
            not_predicted: finished().saturating_sub(predicted),
            pauses: stats.pauses.load(Ordering::Relaxed),
            worker_process_cpu_seconds: secs(start.bench, end.bench),
            broker_cpu_seconds: secs(start.broker, end.broker),
            sidecar_cpu_seconds: secs(start.sidecar, end.sidecar),
            machine_busy: busy(start.machine, end.machine),
            other_cpu_seconds: None,
            contended: false,
            quiet_wait_seconds: 0.0,
            quiet: true,
            sidecar_cpu_total_seconds: None,
            sidecar_cpu_ms_per_frame: None,
            sidecar_input_read_at_start: at_start.as_ref().map(|m| m.input_read),
            sidecar_input_read_at_end: None,
            sidecar_predictions_read_at_end: None,
            sidecar_frames_analysed: None,
            sidecar_catch_up_seconds: None,
            sidecar_caught_up: None,
            sidecar_windows_evaluated: None,
            sidecar_eval_mean_ms: None,
            sidecar_log_warnings: None,
            sidecar_log_partition_eof_errors: None,
        };
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get()) as f64;
        run.other_cpu_seconds = run.machine_busy.map(|b| {
            b * seconds * cores
                - run.worker_process_cpu_seconds.unwrap_or(0.0)
                - run.broker_cpu_seconds.unwrap_or(0.0)
                - run.sidecar_cpu_seconds.unwrap_or(0.0)
        });
        run.contended = run
            .other_cpu_seconds
            .is_some_and(|o| o > 0.1 * seconds * cores);
        if let Some(s) = sidecar.as_mut() {
            let at_end = sidecar_metrics(s).await;
            run.sidecar_input_read_at_end = at_end.as_ref().map(|m| m.input_read);
            run.sidecar_predictions_read_at_end = at_end.as_ref().map(|m| m.predictions_read);
            // Let it finish reading what the worker produced, to charge it its whole cost.
            let caught =
                |m: &SidecarMetrics| m.input_read >= frames && m.predictions_read >= predicted;
            let mut latest = at_end;
            let wait_from = Instant::now();
            let deadline = wait_from + Duration::from_secs(30);
            let mut waited = false;
            while !latest.as_ref().is_some_and(caught) && Instant::now() < deadline && s.running() {
                waited = true;
                tokio::time::sleep(Duration::from_millis(250)).await;
                latest = sidecar_metrics(s).await;
            }
            let done = Snap::now(&self.brokers, sidecar_pid);
            run.sidecar_caught_up = latest.as_ref().map(caught);
            if waited {
                run.sidecar_catch_up_seconds = Some(wait_from.elapsed().as_secs_f64());
            }
            run.sidecar_cpu_total_seconds = secs(before_sidecar.sidecar.or(Some(0)), done.sidecar);
            run.sidecar_cpu_ms_per_frame = run
                .sidecar_cpu_total_seconds
                .map(|c| c * 1e3 / frames as f64);
            run.sidecar_frames_analysed = latest.as_ref().map(|m| m.input_sampled);
            run.sidecar_windows_evaluated = latest.as_ref().map(|m| m.eval_count);
            run.sidecar_eval_mean_ms = latest
                .as_ref()
                .filter(|m| m.eval_count > 0)
                .map(|m| m.eval_sum_seconds * 1e3 / m.eval_count as f64);
            if !s.running() {
                return Err(runtime(anyhow!(
                    "the sidecar exited during the run; see {}",
                    s.log.display()
                )));
            }
            if let Ok(text) = std::fs::read_to_string(&s.log) {
                let bad: Vec<&str> = text
                    .lines()
                    .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                    .collect();
                let eof = bad.iter().filter(|l| l.contains("PartitionEOF")).count();
                run.sidecar_log_warnings = Some(bad.len() - eof);
                run.sidecar_log_partition_eof_errors = Some(eof);
            }
        }
        Ok(run)
    }

    /// Polls `done` every millisecond; fails on timeout, Ctrl-C, or if the worker or the
    /// sidecar stopped.
    async fn wait(
        &self,
        worker: &mut Option<(WorkerTask, CancellationToken)>,
        sidecar: &mut Option<Sidecar>,
        limit: Duration,
        what: &str,
        done: impl Fn() -> bool,
    ) -> Result<(), CliError> {
        let start = Instant::now();
        let mut n = 0u64;
        loop {
            if done() {
                return Ok(());
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
            if worker.as_ref().is_some_and(|(t, _)| t.is_finished()) {
                let result = match worker.take() {
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
            n += 1;
            if n % 100 == 0 {
                if let Some(s) = sidecar.as_mut() {
                    if !s.running() {
                        return Err(runtime(anyhow!(
                            "the sidecar exited; see {}",
                            s.log.display()
                        )));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Checks that the written profile loads (content hash included) before a sidecar is
/// started with it.
fn check_profile_loads(path: &Path) -> Result<(), CliError> {
    let text = std::fs::read_to_string(path).map_err(runtime)?;
    Profile::from_json(&text)
        .map_err(|e| runtime(anyhow!("the profile {} does not load: {e}", path.display())))?;
    Ok(())
}

/// Waits until the machine has been ≥ 85% idle for 2 s (sampled every 250 ms), at most
/// `limit`; returns the time waited and whether it got quiet.
async fn quiet_machine(limit: Duration) -> (f64, bool) {
    let start = Instant::now();
    if limit.is_zero() {
        return (0.0, true);
    }
    let mut quiet_since: Option<Instant> = None;
    let mut last = b::cpu_snapshot();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = b::cpu_snapshot();
        let idle = busy(last, now).is_some_and(|b| b <= 0.15);
        last = now;
        match (idle, quiet_since) {
            (true, None) => quiet_since = Some(Instant::now()),
            (true, Some(t)) if t.elapsed() >= Duration::from_secs(2) => {
                return (start.elapsed().as_secs_f64(), true)
            }
            (false, _) => quiet_since = None,
            _ => {}
        }
        if start.elapsed() >= limit {
            return (start.elapsed().as_secs_f64(), false);
        }
    }
}

fn variant_name(max_fps: Option<f64>) -> String {
    match max_fps {
        None => "alone".to_owned(),
        Some(f) => format!("sidecar --max-fps {f}"),
    }
}

fn frame_costs(model: &Classifier, pool: &[Frame]) -> Result<FrameCosts, CliError> {
    let bytes: Vec<Vec<u8>> = pool
        .iter()
        .enumerate()
        .map(|(i, f)| b::envelope_bytes(f, i as u64, now_us()))
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
                .map_err(|e| runtime(anyhow!("{}: {}", e.0, e.1)))?;
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
            .map_err(|e| runtime(anyhow!("{e}")))?;
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

async fn stage3(args: &DriftBenchArgs) -> Result<ThroughputResult, CliError> {
    println!();
    println!(
        "stage 3  worker throughput with and without the drift sidecar: {} frames {}x{} JPEG q{} from {} cameras at {} fps (capture times), {} partitions; in-process worker (as `argus bench`), sidecar = `argus drift watch` child process",
        args.frames, args.width, args.height, args.jpeg_quality, args.cameras, args.fps, args.partitions
    );
    crate::telemetry::metrics_handle();
    let interrupted = crate::shutdown::on_signal();
    let model = load_model(&args.model, &Default::default())?;
    let source = SyntheticSource {
        seed: args.seed,
        cameras: args.cameras,
        fps: args.fps,
        width: args.width,
        height: args.height,
        jpeg_quality: args.jpeg_quality,
        brighten: None,
    };
    let pool = Arc::new(b::render_pool(&source, args.distinct_frames).await?);
    let mean_bytes = pool
        .iter()
        .map(|f| match &f.envelope.payload {
            Payload::Encoded { bytes, .. } => bytes.len() as f64,
            _ => 0.0,
        })
        .sum::<f64>()
        / pool.len() as f64;
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
    let exe = std::env::current_exe().map_err(runtime)?;
    let (profile, profile_seconds) = match &args.profile {
        Some(p) => (p.clone(), None),
        None => {
            let out = dir.join("profile.json");
            let mut cmd = Command::new(&exe);
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
                &args.seed.to_string(),
                "--cameras",
                &args.cameras.to_string(),
                "--width",
                &args.width.to_string(),
                "--height",
                &args.height.to_string(),
            ])
            .arg("--out")
            .arg(&out);
            println!(
                "  profile: {} drift profile --synthetic {} --model {} --seed {} --cameras {} --width {} --height {} --out {}",
                exe.display(), args.profile_frames, args.model.display(), args.seed, args.cameras, args.width, args.height, out.display()
            );
            let t = Instant::now();
            let output = tokio::task::spawn_blocking(move || cmd.output())
                .await
                .map_err(runtime)?
                .map_err(runtime)?;
            if !output.status.success() {
                return Err(runtime(anyhow!(
                    "argus drift profile failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                )));
            }
            let s = t.elapsed().as_secs_f64();
            println!("  profile made in {s:.1} s");
            (out, Some(s))
        }
    };
    check_profile_loads(&profile)?;

    let settings = args.kafka.settings();
    let input = format!("argus-drift-bench-{run_id}.frames");
    argus_kafka::ensure_topics(&settings, &[TopicSpec::new(&input, args.partitions)])
        .await
        .map_err(runtime)?;
    let brokers = b::broker_pids(args.broker_pid);
    let mut ctx = Stage3 {
        args,
        settings: settings.clone(),
        model,
        run_id: run_id.clone(),
        input: input.clone(),
        exe,
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
        if let Err(e) = b::delete_topics(&settings, &topics).await {
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
        cameras: args.cameras,
        event_time_span_seconds: (args.frames / u64::from(args.cameras)) as f64 / args.fps,
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

async fn stage3_runs(
    ctx: &mut Stage3<'_>,
    pool: &[Frame],
) -> Result<(f64, Vec<DrainRun>), CliError> {
    let args = ctx.args;
    // Pre-fill: capture times as `--cameras` cameras at `--fps` each, ending now.
    let producer = ctx
        .settings
        .producer(&format!("argus-drift-bench-producer-{}", ctx.run_id))
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let cameras = u64::from(args.cameras);
    let step_us = 1e6 / args.fps;
    let span_us = ((args.frames / cameras) as f64 * step_us) as i64;
    let t0_us = now_us() - span_us;
    let t = Instant::now();
    let mut deliveries = Vec::with_capacity(usize::try_from(args.frames).unwrap_or(0));
    for i in 0..args.frames {
        let frame = &pool[(i % pool.len() as u64) as usize];
        let capture = t0_us + ((i / cameras) as f64 * step_us) as i64;
        let value = b::envelope_bytes(frame, i, capture)?;
        deliveries.push(b::enqueue(&producer, &ctx.input, frame, &value, capture).await?);
    }
    let (ok, failed) = b::await_deliveries(deliveries).await;
    producer.flush(Duration::from_secs(30)).map_err(runtime)?;
    if failed > 0 {
        return Err(runtime(anyhow!(
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
            let opt =
                |v: Option<f64>, p: usize| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.p$}"));
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
            runs.push(r);
        }
    }
    Ok((prefill_seconds, runs))
}

fn summarise(runs: &[DrainRun], args: &DriftBenchArgs) -> Vec<VariantSummary> {
    let mut variants: Vec<Option<f64>> = vec![None];
    variants.extend(args.sidecar_max_fps.iter().map(|f| Some(*f)));
    // Runs taken into the summary: uncontended ones (all of them if none is).
    let clean: Vec<&DrainRun> = runs.iter().filter(|r| !r.contended).collect();
    let runs: Vec<&DrainRun> = if clean.is_empty() {
        runs.iter().collect()
    } else {
        clean
    };
    let alone_rate = |round: usize| {
        runs.iter()
            .find(|r| r.round == round && r.max_fps.is_none())
            .map(|r| r.frames_per_s)
    };
    let alone: Vec<f64> = runs
        .iter()
        .filter(|r| r.max_fps.is_none())
        .map(|r| r.frames_per_s)
        .collect();
    let opt_median = |v: Vec<f64>| (!v.is_empty()).then(|| median(&v));
    variants
        .iter()
        .map(|v| {
            let mine: Vec<&DrainRun> = runs.iter().copied().filter(|r| r.max_fps == *v).collect();
            let rates: Vec<f64> = mine.iter().map(|r| r.frames_per_s).collect();
            let ratios: Vec<f64> = if v.is_some() {
                mine.iter()
                    .filter_map(|r| Some(r.frames_per_s / alone_rate(r.round)?))
                    .collect()
            } else {
                Vec::new()
            };
            let fold = |f: fn(f64, f64) -> f64, v: &[f64]| v.iter().copied().reduce(f);
            VariantSummary {
                variant: variant_name(*v),
                runs: mine.len(),
                frames_per_s_median: median(&rates),
                frames_per_s_min: fold(f64::min, &rates).unwrap_or(f64::NAN),
                frames_per_s_max: fold(f64::max, &rates).unwrap_or(f64::NAN),
                ratio_median: opt_median(ratios.clone()),
                ratio_min: fold(f64::min, &ratios),
                ratio_max: fold(f64::max, &ratios),
                ratio_of_medians: v
                    .is_some()
                    .then(|| median(&rates) / median(&alone))
                    .filter(|r| r.is_finite()),
                sidecar_cpu_ms_per_frame_median: opt_median(
                    mine.iter()
                        .filter_map(|r| r.sidecar_cpu_ms_per_frame)
                        .collect(),
                ),
                sidecar_cores_during_drain_median: opt_median(
                    mine.iter()
                        .filter_map(|r| r.sidecar_cpu_seconds.map(|c| c / r.seconds))
                        .collect(),
                ),
                worker_cpu_ms_per_frame_median: opt_median(
                    mine.iter()
                        .filter_map(|r| {
                            r.worker_process_cpu_seconds
                                .map(|c| c * 1e3 / r.frames as f64)
                        })
                        .collect(),
                ),
                machine_idle_median: opt_median(
                    mine.iter()
                        .filter_map(|r| r.machine_busy.map(|b| 1.0 - b))
                        .collect(),
                ),
            }
        })
        .collect()
}

fn print_stage3(runs: &[DrainRun], summary: &[VariantSummary], args: &DriftBenchArgs) {
    println!();
    let contended = runs.iter().filter(|r| r.contended).count();
    if contended > 0 {
        println!(
            "  {contended} of {} runs were contended by other processes and are left out below{}",
            runs.len(),
            if contended == runs.len() {
                " (all were: none left out)"
            } else {
                ""
            }
        );
    }
    println!(
        "  {:<22} {:>4} {:>20} {:>22} {:>9} {:>12} {:>13} {:>11} {:>6}",
        "variant",
        "runs",
        "frames/s med (range)",
        "÷ alone, med (range)",
        "÷ medians",
        "sidecar ms/f",
        "sidecar cores",
        "worker ms/f",
        "idle"
    );
    let o = |v: Option<f64>, p: usize| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.p$}"));
    for s in summary {
        println!(
            "  {:<22} {:>4} {:>20} {:>22} {:>9} {:>12} {:>13} {:>11} {:>6}",
            s.variant,
            s.runs,
            format!(
                "{:.1} ({:.0}–{:.0})",
                s.frames_per_s_median, s.frames_per_s_min, s.frames_per_s_max
            ),
            match (s.ratio_median, s.ratio_min, s.ratio_max) {
                (Some(m), Some(a), Some(b)) => format!("{m:.3} ({a:.3}–{b:.3})"),
                _ => "-".to_owned(),
            },
            o(s.ratio_of_medians, 3),
            o(s.sidecar_cpu_ms_per_frame_median, 3),
            o(s.sidecar_cores_during_drain_median, 2),
            o(s.worker_cpu_ms_per_frame_median, 2),
            s.machine_idle_median
                .map_or_else(|| "-".to_owned(), |i| format!("{:.0}%", i * 100.0)),
        );
    }
    if let Some(d) = summary
        .iter()
        .find(|s| s.variant == variant_name(Some(1.0)))
        .and_then(|s| s.ratio_median)
    {
        println!(
            "  sidecar with its defaults (--max-fps 1): median worker throughput ratio {d:.3} (target ≥ 0.97){}",
            verdict(d >= 0.97)
        );
    }
    let analysed: Vec<String> = runs
        .iter()
        .filter(|r| r.max_fps.is_some())
        .filter_map(|r| {
            Some(format!(
                "{}: {}{}",
                r.variant,
                r.sidecar_frames_analysed?,
                if r.sidecar_caught_up == Some(false) {
                    " (had not caught up)"
                } else {
                    ""
                }
            ))
        })
        .collect();
    if !analysed.is_empty() {
        println!(
            "  frames analysed by the sidecar per run (of {}): {}",
            args.frames,
            analysed.join(", ")
        );
    }
    let evals: Vec<String> = runs
        .iter()
        .filter(|r| r.sidecar_windows_evaluated.is_some_and(|n| n > 0))
        .filter_map(|r| {
            Some(format!(
                "{} windows, mean {:.1} ms",
                r.sidecar_windows_evaluated?, r.sidecar_eval_mean_ms?
            ))
        })
        .collect();
    if evals.is_empty() {
        println!("  no window was complete in the sidecars before they were stopped (window evaluation is stage 2's subject)");
    } else {
        println!(
            "  sidecar window evaluations (its own histogram): {}",
            evals.join("; ")
        );
    }
    let warnings: usize = runs.iter().filter_map(|r| r.sidecar_log_warnings).sum();
    let eof: usize = runs
        .iter()
        .filter_map(|r| r.sidecar_log_partition_eof_errors)
        .sum();
    if warnings > 0 {
        println!("  WARNING: the sidecar logs have {warnings} WARN/ERROR lines");
    }
    if eof > 0 {
        println!(
            "  the sidecar logs have {eof} ERROR lines that are only librdkafka's PartitionEOF (logged by argus_kafka::context)"
        );
    }
}

// ---------------------------------------------------------------------------------------

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

fn cpu_model() -> Option<String> {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()?
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
}

pub async fn run(args: DriftBenchArgs) -> Result<(), CliError> {
    check_args(&args)?;
    let started = Instant::now();
    let loadavg_start = b::loadavg();
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let settings = ProfileSettings::default();
    println!(
        "argus drift bench: {cores} cores ({}); load average {}; profile settings: {} fine bins, bottom-k {}, reference samples ≤ {}",
        cpu_model().unwrap_or_else(|| "unknown CPU".into()),
        loadavg_start.as_deref().unwrap_or("n/a"),
        settings.fine_bins,
        settings.sample_k,
        settings.reference_sample_max
    );
    let args = Arc::new(args);
    let (mut ingest, mut evaluation, mut reference_seconds) = (Vec::new(), None, None);
    if args.stages.contains(&1) || args.stages.contains(&2) {
        let a = args.clone();
        let s = settings.clone();
        let (i, e, secs) = tokio::task::spawn_blocking(move || -> Result<_, CliError> {
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
            Ok((ingest, eval, secs))
        })
        .await
        .map_err(runtime)??;
        ingest = i;
        evaluation = e;
        reference_seconds = Some(secs);
    }
    let throughput = if args.stages.contains(&3) {
        Some(stage3(&args).await?)
    } else {
        None
    };
    let loadavg_end = b::loadavg();
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
        let json = serde_json::to_string_pretty(&report).map_err(runtime)?;
        std::fs::write(path, json + "\n")
            .map_err(|e| runtime(anyhow!("cannot write {}: {e}", path.display())))?;
        println!("results written to {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lcg_is_deterministic_and_roughly_uniform() {
        let (mut a, mut b) = (Lcg::new(3), Lcg::new(3));
        let xs: Vec<f64> = (0..10_000).map(|_| a.uniform()).collect();
        assert!(xs
            .iter()
            .zip((0..10_000).map(|_| b.uniform()))
            .all(|(x, y)| *x == y));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
        assert!(xs.iter().all(|x| *x > 0.0 && *x < 1.0));
    }

    #[test]
    fn metrics_text_parses() {
        let text = "argus_drift_records_total{topic=\"in\",outcome=\"sampled\"} 12\n\
                    argus_drift_records_total{topic=\"in\",outcome=\"skipped\"} 30\n\
                    argus_drift_records_total{topic=\"pred\",outcome=\"sampled\"} 7\n\
                    argus_drift_window_eval_seconds_sum 0.5\n\
                    argus_drift_window_eval_seconds_count 4\n";
        let m = parse_metrics(text, "in", "pred");
        assert_eq!(m.input_read, 42);
        assert_eq!(m.input_sampled, 12);
        assert_eq!(m.predictions_read, 7);
        assert_eq!(m.eval_count, 4);
        assert!((m.eval_sum_seconds - 0.5).abs() < 1e-12);
    }

    #[test]
    fn synthetic_features_are_numeric() {
        let settings = ProfileSettings::default();
        let seg = reference_segment(8, 2000, &settings);
        assert!(seg.features.iter().all(|f| f.numeric.is_some()));
        let w = window_summary(&seg, &settings, 100, 1, None, 0);
        assert_eq!(w.n_records, 100);
    }
}
