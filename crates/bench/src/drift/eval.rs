//! Stage 2, window evaluation: `evaluate` (tests, BH) plus assembling and serialising the
//! `DriftReport`, for windows of numeric features against a large reference, half of them
//! null and half shifted; merging partial summaries, the aggregator on them, and their size
//! on the panes topic.
use super::data::{profile_of, quantiles, window_summary, Quantiles, BENCH_TOPIC};
use super::DriftBenchOptions;
use crate::error::{runtime, BenchError};
use crate::harness::{median, verdict};
use argus_drift::aggregate::{AggregateConfig, Aggregator};
use argus_drift::pane::{PaneMessage, PaneRecord, Partial};
use argus_stats::alarm::ConsecutiveRule;
use argus_stats::evaluate::{evaluate, EvalConfig};
use argus_stats::profile::{Profile, ProfileSettings, SegmentProfile, FLEET};
use argus_stats::report::{rfc3339_us, DriftReport, ModelInfo, OffsetRange, Provenance, Window};
use argus_stats::summary::SegmentSummary;
use serde::Serialize;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

/// Pane length of the evaluated windows and partials.
const PANE_US: i64 = 60_000_000;

/// Stage 2's results.
#[derive(Debug, Clone, Serialize)]
pub(super) struct EvalResult {
    pub features: usize,
    pub reference_rows: u64,
    pub reference_sample: usize,
    pub window_rows: u64,
    pub window_sample: usize,
    pub windows: usize,
    pub passes: usize,
    pub shift_sd: f64,
    /// `evaluate` (tests, effect sizes, BH, dataset decision), ms.
    pub evaluate_ms: Quantiles,
    /// Assembling the `DriftReport` (alarm rule included) and `serde_json::to_string`, ms.
    pub report_json_ms: Quantiles,
    /// Both, per window, ms: the headline.
    pub total_ms: Quantiles,
    /// `evaluate` + JSON of null windows and of shifted windows separately (p50 ms).
    pub null_total_p50_ms: f64,
    pub shifted_total_p50_ms: f64,
    pub report_bytes_p50: f64,
    /// Sanity: mean features with status drift per window.
    pub null_mean_drifted: f64,
    pub shifted_mean_drifted: f64,
    pub null_windows_with_drift: usize,
    pub shifted_windows_with_drift: usize,
    pub merge: MergeResult,
}

/// Merging partials, and their size on the panes topic.
#[derive(Debug, Clone, Serialize)]
pub(super) struct MergeResult {
    pub partials: usize,
    pub rows_per_partial: u64,
    pub reps: usize,
    /// Clone the first partial, merge the others in (as `Aggregator::reports_for`), ms.
    pub merge_ms: Quantiles,
    /// The same, per feature and merge (µs).
    pub merge_us_per_feature_merge: f64,
    /// `Aggregator::reports_for` on the ingested partials: merge + evaluate + report, ms.
    pub aggregator_reports_for_ms: Quantiles,
    /// One partial (the fleet segment only) as JSON on the panes topic.
    pub partial_json_bytes: usize,
    /// Parsing that JSON back (`serde_json::from_slice::<PaneRecord>`), ms.
    pub partial_parse_ms: Quantiles,
    /// Serialising it, ms.
    pub partial_serialise_ms: Quantiles,
}

pub(super) fn stage2(
    args: &DriftBenchOptions,
    full: &SegmentProfile,
    settings: &ProfileSettings,
) -> Result<EvalResult, BenchError> {
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
    let windows = build_windows(args, seg, settings, &shift);
    let t = time_windows(args, &profile, &cfg, &windows)?;
    let (null_drifted, shifted_drifted) = (&t.null_drifted, &t.shifted_drifted);
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
        evaluate_ms: quantiles(&t.ev_ms),
        report_json_ms: quantiles(&t.js_ms),
        total_ms: quantiles(&t.tot),
        null_total_p50_ms: median(&t.null_tot),
        shifted_total_p50_ms: median(&t.shifted_tot),
        report_bytes_p50: median(&t.bytes),
        null_mean_drifted: mean(null_drifted),
        shifted_mean_drifted: mean(shifted_drifted),
        null_windows_with_drift: null_drifted.iter().filter(|d| **d > 0).count(),
        shifted_windows_with_drift: shifted_drifted.iter().filter(|d| **d > 0).count(),
        merge,
    };
    print_eval(&r, f, null_drifted.len(), shifted_drifted.len());
    Ok(r)
}

/// The windows of stage 2, alternately null and shifted by `shift`.
fn build_windows(
    args: &DriftBenchOptions,
    seg: &SegmentProfile,
    settings: &ProfileSettings,
    shift: &[f64],
) -> Vec<(bool, SegmentSummary)> {
    let t = Instant::now();
    let windows: Vec<(bool, SegmentSummary)> = (0..args.windows)
        .map(|w| {
            let shifted = w % 2 == 1;
            let s = window_summary(
                seg,
                settings,
                args.window_rows,
                10_000 + w as u64,
                shifted.then_some(shift),
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
    windows
}

/// Per-window timings over all passes (drift counts from the first pass).
#[derive(Debug, Default)]
struct WindowTimings {
    ev_ms: Vec<f64>,
    js_ms: Vec<f64>,
    tot: Vec<f64>,
    bytes: Vec<f64>,
    null_tot: Vec<f64>,
    shifted_tot: Vec<f64>,
    null_drifted: Vec<usize>,
    shifted_drifted: Vec<usize>,
}

/// Evaluates every window `--eval-passes` times, after one untimed warm-up.
fn time_windows(
    args: &DriftBenchOptions,
    profile: &Profile,
    cfg: &EvalConfig,
    windows: &[(bool, SegmentSummary)],
) -> Result<WindowTimings, BenchError> {
    let mut rule = ConsecutiveRule::new(3, cfg.alpha);
    // Warm-up (allocator, caches), not timed.
    if let Some((_, s)) = windows.first() {
        eval_window(profile, cfg, s, 0, &mut rule)?;
    }
    let mut t = WindowTimings::default();
    for pass in 0..args.eval_passes {
        for (w, (shifted, s)) in windows.iter().enumerate() {
            let (e, j, n, drifted) = eval_window(profile, cfg, s, w, &mut rule)?;
            t.ev_ms.push(e);
            t.js_ms.push(j);
            t.tot.push(e + j);
            t.bytes.push(n as f64);
            if *shifted {
                t.shifted_tot.push(e + j);
            } else {
                t.null_tot.push(e + j);
            }
            if pass == 0 {
                if *shifted {
                    t.shifted_drifted.push(drifted);
                } else {
                    t.null_drifted.push(drifted);
                }
            }
        }
    }
    Ok(t)
}

/// One timed window: `evaluate`, then the report assembled and serialised. Returns
/// (evaluate ms, report + JSON ms, JSON bytes, drifted features).
fn eval_window(
    profile: &Profile,
    cfg: &EvalConfig,
    summary: &SegmentSummary,
    w: usize,
    rule: &mut ConsecutiveRule,
) -> Result<(f64, f64, usize, usize), BenchError> {
    let seg = profile.fleet();
    let pane_us = PANE_US;
    let model = ModelInfo {
        id: "drift-bench".into(),
        version: "-".into(),
    };
    let t0 = Instant::now();
    let ev = evaluate(seg, summary, None, cfg);
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
        model,
        FLEET.to_owned(),
        window,
        profile,
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
}
fn print_eval(r: &EvalResult, f: usize, null_windows: usize, shifted_windows: usize) {
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
        null_windows,
        r.shifted_mean_drifted,
        r.shifted_windows_with_drift,
        shifted_windows
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
}

pub(super) fn merge_bench(
    args: &DriftBenchOptions,
    profile: &Profile,
    settings: &ProfileSettings,
    cfg: &EvalConfig,
) -> Result<MergeResult, BenchError> {
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
    let merge_ms = time_merge(&partials, args.merge_reps);
    let merges = args.partials.saturating_sub(1).max(1);
    let pane = 1_800_000_000_000_000 / PANE_US * PANE_US;
    let messages = pane_messages(profile, &partials, pane);
    let reps = args.merge_reps.min(20);
    let (bytes, ser, parse) = time_partial_json(&messages, reps)?;
    let agg_ms = time_aggregator(profile, cfg, messages, pane, reps)?;
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

/// Clone the first partial, merge the others in, `reps` times (ms).
fn time_merge(partials: &[SegmentSummary], reps: usize) -> Quantiles {
    let mut times = Vec::new();
    for _ in 0..reps {
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
    quantiles(&times)
}

/// The partials as the sidecars put them on the panes topic (one per partition).
fn pane_messages(profile: &Profile, partials: &[SegmentSummary], pane: i64) -> Vec<PaneMessage> {
    partials
        .iter()
        .enumerate()
        .map(|(p, s)| {
            PaneMessage::Partial(Box::new(Partial {
                sidecar: "drift-bench".into(),
                reference_sha256: profile.sha256.clone(),
                topic: BENCH_TOPIC.into(),
                partition: i32::try_from(p).unwrap_or(0),
                pane_start_us: pane,
                pane_us: PANE_US,
                from_offset: 0,
                to_offset: i64::try_from(s.n_records).unwrap_or(1) - 1,
                n_records: s.n_records,
                n_sampled: s.n_records,
                late_records: 0,
                segments: BTreeMap::from([(FLEET.to_owned(), s.clone())]),
                quality: None,
            }))
        })
        .collect()
}

/// The first partial as JSON: (bytes, serialise ms, parse ms) over `reps` round trips.
fn time_partial_json(
    messages: &[PaneMessage],
    reps: usize,
) -> Result<(usize, Vec<f64>, Vec<f64>), BenchError> {
    let record = messages
        .first()
        .cloned()
        .map(PaneRecord::new)
        .ok_or_else(|| runtime("no partials"))?;
    let mut ser = Vec::new();
    let mut parse = Vec::new();
    let mut bytes = 0;
    for _ in 0..reps {
        let t = Instant::now();
        let json = serde_json::to_vec(&record).map_err(runtime)?;
        ser.push(t.elapsed().as_secs_f64() * 1e3);
        bytes = json.len();
        let t = Instant::now();
        let back: PaneRecord = serde_json::from_slice(&json).map_err(runtime)?;
        parse.push(t.elapsed().as_secs_f64() * 1e3);
        black_box(&back);
    }
    Ok((bytes, ser, parse))
}

/// `Aggregator::reports_for` on the ingested partials, `reps` times (ms).
fn time_aggregator(
    profile: &Profile,
    cfg: &EvalConfig,
    messages: Vec<PaneMessage>,
    pane: i64,
    reps: usize,
) -> Result<Vec<f64>, BenchError> {
    let mut agg = Aggregator::new(
        AggregateConfig {
            pane_us: PANE_US,
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
    for _ in 0..reps {
        let t = Instant::now();
        let r = agg.reports_for(pane);
        agg_ms.push(t.elapsed().as_secs_f64() * 1e3);
        if r.is_empty() {
            return Err(runtime("the aggregator made no report"));
        }
        black_box(&r);
    }
    Ok(agg_ms)
}
