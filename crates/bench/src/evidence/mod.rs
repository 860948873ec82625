//! The evidence harness (`argus-bench evidence`): what evidence on alerts (issue 18) costs,
//! in one run (see `docs/bench.md`, "Evidence on alerts").
//!
//! 1. **Cost per alert, offline** (`cost`, no broker, one thread): exact TreeSHAP on the
//!    churn bundle per record next to the model's own inference of the record (trees
//!    engine, batch 1); sampling Shapley on the same bundle without its tree covers; and
//!    occlusion on image bundles per synthetic frame next to one classification of it.
//! 2. **Worker throughput with evidence on and off** (`drain`, on a real broker): the
//!    records (the churn fixture, read as `argus produce` reads it, cycled) pre-filled once,
//!    then drained by one in-process worker per variant: an alert rule at the threshold
//!    that makes `alert_share` of the records alert (their probability's quantile, computed
//!    offline) with evidence off and on, and at the bundle's own `[decision]` threshold (the
//!    demo's rate) with evidence on and off. Evidence is the worker's default
//!    `[worker.evidence]` but `enabled`. Rounds alternate the order of the variants.
//!
//! Rates are compared within the run only; the target (on ÷ off ≥ 0.95 at 5 % alerting) is
//! printed next to the ratio, never enforced.
mod cost;
mod drain;
mod live;
mod records;
mod report;

use crate::error::{runtime, usage, BenchError};
use crate::harness::cpu::{quiet_machine, CpuMark};
use crate::harness::read_records;
use crate::harness::{
    check_json_path, cores, cpu_model, load_model, loadavg, metrics_handle, on_signal, render_pool,
    write_json, FrameSpec,
};
use argus_kafka::KafkaSettings;
use argus_model::Classifier;
use argus_producer::Frame;
use argus_wire::now_us;
use argus_worker::config::EvidenceSettings;
use argus_worker::WorkerConfig;
use cost::{dir_frames, image_cost, tabular_cost, without_covers, CostResult};
use drain::{DrainRun, Drains, Variant};
use records::{decision, label_index, probabilities, AlertRate};
use report::{Ratio, VariantSummary};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one evidence-harness run does (the `argus-bench evidence` flags, typed).
#[derive(Debug, Clone)]
pub struct EvidenceBenchOptions {
    /// Brokers and librdkafka properties (stage 2).
    pub kafka: KafkaSettings,
    /// Stages to run: 1 cost per alert (offline), 2 worker throughput on the broker, 3 a
    /// live stream at `live_rate` on the broker.
    pub stages: Vec<u8>,
    /// The tabular bundle with `[explain] covers` and `background` (churn).
    pub model: PathBuf,
    /// The records (CSV or JSON lines) for both stages.
    pub records: PathBuf,
    /// Their key column.
    pub key: String,
    /// Stage 1: records explained with TreeSHAP.
    pub explain_rows: usize,
    /// Stage 1: records explained by sampling Shapley.
    pub sampling_rows: usize,
    /// Stage 1: image bundles explained by occlusion.
    pub image_models: Vec<PathBuf>,
    /// Stage 1: the synthetic frames of the image bundles (`distinct_frames` of them).
    pub frames_spec: FrameSpec,
    /// Stage 1: image files explained instead of synthetic frames (`distinct_frames` of
    /// them, the folder cycled).
    pub image_dir: Option<PathBuf>,
    /// Stage 2: records pre-filled and drained per run (the file cycled).
    pub drain_records: u64,
    /// Stage 2: the share of the records the alert rule's threshold is chosen to alert on.
    pub alert_share: f64,
    /// Stage 2: rounds of the four drains.
    pub rounds: usize,
    /// Stage 2: skip the untimed warm-up drain.
    pub no_warmup: bool,
    /// Before stage 1 and each drain of stage 2, wait up to this long for a quiet machine
    /// (0: don't).
    pub quiet_wait: Duration,
    /// Stage 2: partitions of the input topic.
    pub partitions: i32,
    /// The `[worker.evidence]` of the drains with evidence on (`enabled` is set per drain;
    /// `EvidenceSettings::default()` is the worker's default); its explain settings are
    /// stage 1's too.
    pub evidence: EvidenceSettings,
    /// Stage 3: records per second sent, and for how long.
    pub live_rate: f64,
    pub live_seconds: f64,
    /// Stage 2: the worker's bound on inputs in flight (`None`: the worker's default).
    pub max_in_flight: Option<usize>,
    /// Pid of the broker whose CPU time is reported (`None`: every local `kafka.Kafka`).
    pub broker_pid: Option<u32>,
    /// Leave the run's topics on the broker.
    pub keep_topics: bool,
    /// Write the results as JSON to this file.
    pub json: Option<PathBuf>,
}

/// Stage 2's results.
#[derive(Debug, Clone, Serialize)]
struct DrainResult {
    records: String,
    distinct_records: usize,
    drain_records: u64,
    partitions: i32,
    alert_share_asked: f64,
    /// The rule that alerts on about `alert_share` of the records, and the bundle's own.
    rate: AlertRate,
    demo: AlertRate,
    evidence_settings: String,
    /// The worker's bound on inputs in flight.
    max_in_flight: usize,
    prefill_seconds: f64,
    warm_up: Option<DrainRun>,
    runs: Vec<DrainRun>,
    summary: Vec<VariantSummary>,
    ratios: Vec<Ratio>,
    /// Stage 3: evidence off, then on, at `--live-rate`.
    live: Vec<live::LiveRun>,
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
    costs: Option<CostResult>,
    drains: Option<DrainResult>,
    total_seconds: f64,
}

/// Runs the evidence harness and prints its results (and writes them with `json`).
pub async fn run(options: EvidenceBenchOptions) -> Result<(), BenchError> {
    check(&options)?;
    let started = Instant::now();
    let loadavg_start = loadavg();
    let model = load_model(&options.model, &Default::default())?;
    let records = Arc::new(read_records(&options.records, &options.key)?);
    let (label, demo_threshold) = decision(&model);
    let label_at = label_index(&model, &label)?;
    println!(
        "argus-bench evidence: {} cores ({}); load average {}; model {} v{} on {}, label {label:?}; {} records from {}",
        cores(),
        cpu_model().unwrap_or_else(|| "unknown CPU".into()),
        loadavg_start.as_deref().unwrap_or("n/a"),
        model.model_ref().name,
        model.model_ref().version,
        model.engine(),
        records.len(),
        options.records.display()
    );
    let costs = if options.stages.contains(&1) {
        Some(stage1(&options, &model, &records, label_at).await?)
    } else {
        None
    };
    let drains = if options.stages.contains(&2) || options.stages.contains(&3) {
        let demo = (label.as_str(), demo_threshold);
        Some(stage2(&options, &model, &records, demo).await?)
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
    if let Some(path) = &options.json {
        let report = Report {
            time_us: now_us(),
            command: std::env::args().collect(),
            cores: cores(),
            cpu: cpu_model(),
            loadavg_start,
            loadavg_end,
            costs,
            drains,
            total_seconds: started.elapsed().as_secs_f64(),
        };
        write_json(path, &report)?;
        println!("results written to {}", path.display());
    }
    Ok(())
}

/// Stage 1 on a blocking thread: TreeSHAP, sampling Shapley, occlusion.
async fn stage1(
    options: &EvidenceBenchOptions,
    model: &Arc<Classifier>,
    records: &Arc<Vec<Frame>>,
    label: usize,
) -> Result<CostResult, BenchError> {
    let settings = options.evidence.explain_settings();
    println!();
    let spec = &options.frames_spec;
    let frames_are = match &options.image_dir {
        Some(dir) => format!("images of {}", dir.display()),
        None => format!(
            "synthetic {}x{} JPEG q{} frames",
            spec.width, spec.height, spec.jpeg_quality
        ),
    };
    println!(
        "stage 1  cost per alert, offline, one thread: {} records (TreeSHAP), {} (sampling Shapley, bundle copied without [explain] covers), {} {frames_are} per image bundle; explain settings {} permutations, grid {}",
        options.explain_rows,
        options.sampling_rows,
        spec.distinct_frames,
        settings.permutations,
        settings.grid
    );
    let mut images = Vec::new();
    for path in &options.image_models {
        let image = load_model(path, &Default::default())?;
        let (name, _) = decision(&image);
        let at = label_index(&image, &name)?;
        images.push((image, at));
    }
    let frames = match &options.image_dir {
        _ if images.is_empty() => Vec::new(),
        Some(dir) => dir_frames(dir, spec.distinct_frames)?,
        None => render_pool(&spec.source(1.0), spec.distinct_frames).await?,
    };
    let (waited, quiet) = quiet_machine(options.quiet_wait).await;
    if !quiet {
        println!("  the machine was not quiet before stage 1 (waited {waited:.0} s)");
    }
    let mark = CpuMark::now(options.broker_pid);
    let (o, model, records) = (options.clone(), model.clone(), records.clone());
    let mut costs = tokio::task::spawn_blocking(move || {
        let rows = |n: usize| -> Vec<Frame> { records.iter().cycle().take(n).cloned().collect() };
        let tree_shap = tabular_cost(&model, &rows(o.explain_rows), label, settings)?;
        let dir = std::env::temp_dir().join(format!(
            "argus-evidence-bench-{}-{}",
            std::process::id(),
            now_us()
        ));
        // The explainer reads the copy's background rows when it is made.
        let sampling_shapley = sampling_model(model.dir(), &dir)
            .and_then(|m| tabular_cost(&m, &rows(o.sampling_rows), label, settings));
        let _ = std::fs::remove_dir_all(&dir);
        let sampling_shapley = sampling_shapley?;
        let occlusion = images
            .iter()
            .map(|(m, at)| image_cost(m, &frames, *at, settings))
            .collect::<Result<Vec<_>, _>>()?;
        Ok::<_, BenchError>(CostResult {
            tree_shap,
            sampling_shapley,
            occlusion,
            cpu: None,
        })
    })
    .await
    .map_err(runtime)??;
    costs.cpu = Some(mark.until(&CpuMark::now(options.broker_pid), 0));
    report::print_costs(&costs);
    Ok(costs)
}

/// The bundle in `dir` without its tree covers (copied into `tmp`), loaded.
fn sampling_model(dir: &Path, tmp: &Path) -> Result<Classifier, BenchError> {
    let copy = without_covers(dir, tmp)?;
    Classifier::load(&copy).map_err(|e| usage(format!("{} without covers: {e}", dir.display())))
}

/// The drains of stage 2: off and on at `alert_share`, on and off at the demo's rate.
fn variants(rate: &AlertRate, demo: &AlertRate) -> Vec<Variant> {
    let v = |name: &str, threshold: f32, evidence: bool| Variant {
        name: name.to_owned(),
        threshold,
        evidence,
    };
    vec![
        v("off", rate.threshold, false),
        v("on", rate.threshold, true),
        v("demo on", demo.threshold, true),
        v("demo off", demo.threshold, false),
    ]
}

/// Stage 2: thresholds offline, then the drains on the broker (topics deleted after).
async fn stage2(
    options: &EvidenceBenchOptions,
    model: &Arc<Classifier>,
    records: &Arc<Vec<Frame>>,
    (label, demo_threshold): (&str, f32),
) -> Result<DrainResult, BenchError> {
    metrics_handle();
    let at = label_index(model, label)?;
    let probs = {
        let (m, r) = (model.clone(), records.clone());
        tokio::task::spawn_blocking(move || probabilities(&m, &r, at))
            .await
            .map_err(runtime)??
    };
    let n = options.drain_records;
    let rate = AlertRate::for_share(options.alert_share, &probs, n);
    let demo = AlertRate::at(demo_threshold, &probs, n);
    let evidence = EvidenceSettings {
        enabled: true,
        ..options.evidence.clone()
    };
    print_stage2_header(options, label, &rate, &demo, &evidence);
    let run_id = format!("{}-{}", std::process::id(), now_us() / 1_000_000);
    let mut drains = Drains {
        options,
        model: model.clone(),
        label: label.to_owned(),
        input: format!("argus-evidence-bench-{run_id}.records"),
        run_id,
        topics: Vec::new(),
        interrupted: on_signal(),
        worker: None,
    };
    let variants = variants(&rate, &demo);
    let outcome = if options.stages.contains(&2) {
        drain_all(&mut drains, records, &variants).await
    } else {
        Ok((0.0, None, Vec::new()))
    };
    let live = match (&outcome, options.stages.contains(&3)) {
        (Ok(_), true) => live_all(&mut drains, records, &variants[..2]).await,
        _ => Ok(Vec::new()),
    };
    if let Some(w) = drains.worker.take() {
        w.stop().await;
    }
    clean_up(options, &drains.topics).await;
    let (prefill_seconds, warm_up, runs) = outcome?;
    let live = live?;
    let limits = report::Limits {
        deadline: evidence.deadline,
    };
    let (summary, ratios) = report::summarise_all(&variants, &runs, (&rate, &demo), limits);
    report::print_summary(&summary, &ratios);
    Ok(DrainResult {
        records: options.records.display().to_string(),
        distinct_records: records.len(),
        drain_records: n,
        partitions: options.partitions,
        alert_share_asked: options.alert_share,
        rate,
        demo,
        evidence_settings: format!("{evidence:?}"),
        max_in_flight: max_in_flight(options),
        prefill_seconds,
        warm_up,
        runs,
        summary,
        ratios,
        live,
    })
}

/// Stage 3: `variants` (evidence off, then on, at the alert share's rule) on a live
/// stream each.
async fn live_all(
    drains: &mut Drains<'_>,
    records: &[Frame],
    variants: &[Variant],
) -> Result<Vec<live::LiveRun>, BenchError> {
    let o = drains.options;
    println!();
    println!(
        "stage 3  a live stream: {} records/s for {} s to a fresh {}-partition topic, one worker per run",
        o.live_rate, o.live_seconds, o.partitions
    );
    let mut runs = Vec::new();
    for (i, v) in variants.iter().enumerate() {
        let _ = quiet_machine(o.quiet_wait).await;
        let r = drains
            .live(i, v, records, (o.live_rate, o.live_seconds))
            .await?;
        live::print_live(&r);
        runs.push(r);
    }
    if let [off, on] = &runs[..] {
        if let (Some(a), Some(b)) = (off.cpu_us_per_record(), on.cpu_us_per_record()) {
            println!(
                "  evidence on: {:+.1} µs of bench-process CPU per record ({:.2}x off); {} of alerts explained",
                b - a,
                b / a,
                on.explained().map_or("–".into(), |s| format!("{:.1}%", s * 100.0))
            );
        }
    }
    Ok(runs)
}

/// Pre-fill, then the warm-up drain and the rounds.
async fn drain_all(
    drains: &mut Drains<'_>,
    records: &[Frame],
    variants: &[Variant],
) -> Result<(f64, Option<DrainRun>, Vec<DrainRun>), BenchError> {
    let prefill = drains.prefill(records).await?;
    report::print_run_header();
    let warm_up = (!drains.options.no_warmup).then(|| &variants[1]);
    let (warm, runs) = drains.rounds(variants, warm_up, report::print_run).await?;
    Ok((prefill, warm, runs))
}

fn print_stage2_header(
    o: &EvidenceBenchOptions,
    label: &str,
    rate: &AlertRate,
    demo: &AlertRate,
    evidence: &EvidenceSettings,
) {
    println!();
    println!(
        "stage 2  worker throughput, evidence on and off: {} records (the file cycled) pre-filled into {} partitions, drained by one in-process worker per run ({} rounds of: off, on, demo on, demo off — reversed every other round{})",
        o.drain_records,
        o.partitions,
        o.rounds,
        if o.no_warmup { "" } else { "; an untimed warm-up drain with evidence on first" }
    );
    println!(
        "  alert rule {label}>={:.4}: the {:.0}th percentile of the {label} probability over the records, {} alerts expected ({:.2} %); demo rate: the bundle's {label}>={}, {} alerts ({:.2} %)",
        rate.threshold,
        (1.0 - o.alert_share) * 100.0,
        rate.expected_alerts,
        rate.expected_share * 100.0,
        demo.threshold,
        demo.expected_alerts,
        demo.expected_share * 100.0
    );
    let defaults = EvidenceSettings {
        enabled: true,
        ..EvidenceSettings::default()
    };
    println!(
        "  evidence: {} [worker.evidence] with enabled = true: {} thread(s) at {:?} priority, queue {}, deadline {} ms, skipped for inputs older than {} ms, {} permutations, grid {}; worker: {}",
        if *evidence == defaults { "the worker's default" } else { "NOT the worker's default" },
        evidence.threads,
        evidence.priority,
        evidence.queue,
        evidence.deadline.as_millis(),
        evidence.skip_older_than.as_millis(),
        evidence.permutations,
        evidence.grid,
        match o.max_in_flight {
            None => format!("its defaults (max in flight {})", max_in_flight(o)),
            Some(m) => format!("its defaults but max in flight {m}"),
        }
    );
}

/// The drains' worker's bound on inputs in flight.
fn max_in_flight(o: &EvidenceBenchOptions) -> usize {
    o.max_in_flight
        .unwrap_or_else(|| WorkerConfig::new("bench", Vec::new()).max_in_flight)
}

/// Deletes the run's topics (unless kept), after a pause for the last commits.
async fn clean_up(options: &EvidenceBenchOptions, topics: &[String]) {
    if topics.is_empty() {
        return;
    }
    if options.keep_topics {
        println!("  topics kept: {}", topics.join(", "));
        return;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    if let Err(e) = argus_kafka::delete_topics(&options.kafka, topics).await {
        tracing::warn!(error = %e, "could not delete the benchmark's topics");
    }
}

fn check(o: &EvidenceBenchOptions) -> Result<(), BenchError> {
    let fail = |m: &str| Err(usage(m));
    if o.stages.is_empty() || o.stages.iter().any(|s| !(1..=3).contains(s)) {
        return fail("--stages takes 1, 2 and/or 3");
    }
    if o.explain_rows == 0 || o.sampling_rows == 0 || o.frames_spec.distinct_frames == 0 {
        return fail("--explain-rows, --sampling-rows and --image-frames must be at least 1");
    }
    if !(o.live_rate > 0.0 && o.live_seconds > 0.0) {
        return fail("--live-rate and --live-seconds must be above 0");
    }
    if o.drain_records == 0 || o.rounds == 0 || o.partitions < 1 {
        return fail("--drain-records, --rounds and --partitions must be at least 1");
    }
    let e = &o.evidence;
    if e.threads == 0 || e.deadline.is_zero() || o.max_in_flight == Some(0) {
        return fail("--evidence-threads, --evidence-deadline and --max-in-flight must be above 0");
    }
    if !(o.alert_share > 0.0 && o.alert_share < 1.0) {
        return fail("--alert-share must be within 0 and 1 (exclusive)");
    }
    let s = &o.frames_spec;
    if s.width < 32 || s.height < 32 {
        return fail("frames must be at least 32x32");
    }
    check_json_path(o.json.as_deref())
}
