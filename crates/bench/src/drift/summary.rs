//! Stage 3's summary: per variant, the rate and its ratio to the worker alone in the same
//! round (medians and ranges over uncontended runs), sidecar cost, and what the sidecars
//! saw.
use super::throughput::{variant_name, DrainRun, VariantSummary};
use super::DriftBenchOptions;
use crate::harness::{median, verdict};

pub(super) fn summarise(runs: &[DrainRun], args: &DriftBenchOptions) -> Vec<VariantSummary> {
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

pub(super) fn print_stage3(
    runs: &[DrainRun],
    summary: &[VariantSummary],
    args: &DriftBenchOptions,
) {
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
    print_sidecar_notes(runs, args);
}

/// What the sidecars analysed and evaluated, and their log warnings.
fn print_sidecar_notes(runs: &[DrainRun], args: &DriftBenchOptions) {
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
