//! What the evidence harness prints and writes: stage 1's costs per alert, stage 2's drains
//! one line each, then per variant their means and the on ÷ off ratios.
use super::cost::{CostResult, ImageCost, TabularCost};
use super::drain::{DrainRun, Variant};
use super::records::AlertRate;
use crate::harness::{cores, verdict};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Throughput with evidence on ÷ off at this alert rate, at least (issue 18).
pub(super) const TARGET_RATIO: f64 = 0.95;

/// The drains of one variant, summarised (uncontended drains only, unless all were).
#[derive(Debug, Clone, Serialize)]
pub(super) struct VariantSummary {
    pub variant: String,
    pub threshold: f32,
    pub evidence: bool,
    pub runs: usize,
    /// Every drain of this variant was contended by other processes; they are kept, so its
    /// means are not a quiet machine's.
    pub includes_contended: bool,
    pub records_per_s_mean: f64,
    pub records_per_s_min: f64,
    pub records_per_s_max: f64,
    pub alerts: u64,
    pub alert_share: f64,
    pub evidence_ok: u64,
    pub evidence_skipped: BTreeMap<String, u64>,
    /// Alerts without evidence ÷ alerts.
    pub skipped_share: f64,
    pub evidence_mean_ms: Option<f64>,
    /// Alerts that went to the pool (evidence, or skipped at the deadline) waited this long
    /// on average: how late they went out after their prediction (their input stays
    /// uncommitted meanwhile; the inputs behind it go on).
    pub queued_alert_mean_wait_ms: Option<f64>,
    /// Bench-process (worker) CPU-ms per record, and the evidence threads' share of it.
    pub worker_cpu_ms_per_record: Option<f64>,
    pub evidence_cpu_ms_per_record: f64,
    /// Evidence threads' CPU per alert with evidence, ms.
    pub evidence_cpu_ms_per_alert: Option<f64>,
    /// Cores used on average over the drains: worker process, broker; machine idle.
    pub worker_cores: Option<f64>,
    pub broker_cores: Option<f64>,
    pub machine_idle: Option<f64>,
}

/// Records/s of one variant ÷ another's.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Ratio {
    pub name: String,
    pub numerator: String,
    pub denominator: String,
    /// Mean records/s ÷ mean records/s.
    pub ratio_of_means: f64,
    /// The same within each round.
    pub per_round: Vec<f64>,
    pub target: Option<f64>,
}

fn mean(v: impl IntoIterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = v.into_iter().collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The worker's bounds the drains ran with.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// The evidence deadline.
    pub deadline: Duration,
}

/// `variant`'s summary over `runs`.
fn summarise(variant: &Variant, runs: &[DrainRun], limits: Limits) -> VariantSummary {
    let all: Vec<&DrainRun> = runs.iter().filter(|r| r.variant == variant.name).collect();
    let calm: Vec<&DrainRun> = all.iter().copied().filter(|r| !r.contended).collect();
    let includes_contended = calm.is_empty() && !all.is_empty();
    let rs = if includes_contended { all } else { calm };
    let rate = |f: fn(f64, f64) -> f64, init| rs.iter().map(|r| r.records_per_s).fold(init, f);
    let sum = |f: fn(&DrainRun) -> u64| rs.iter().map(|r| f(r)).sum::<u64>();
    let (records, alerts, ok) = (
        sum(|r| r.records),
        sum(|r| r.alerts),
        sum(|r| r.seen.evidence_ok),
    );
    let mut skipped: BTreeMap<String, u64> = BTreeMap::new();
    for (k, v) in rs.iter().flat_map(|r| &r.seen.evidence_skipped) {
        *skipped.entry(k.clone()).or_default() += v;
    }
    let evidence_cpu: f64 = rs.iter().map(|r| r.seen.evidence_thread_cpu_seconds).sum();
    let ok_ms: f64 = rs
        .iter()
        .filter_map(|r| {
            r.seen
                .evidence_mean_ms
                .map(|m| m * r.seen.evidence_ok as f64)
        })
        .sum();
    let deadlines = skipped.get("deadline").copied().unwrap_or(0);
    let queued = ok + deadlines;
    let queued_wait_ms = (queued > 0)
        .then(|| (ok_ms + deadlines as f64 * limits.deadline.as_secs_f64() * 1e3) / queued as f64);
    VariantSummary {
        queued_alert_mean_wait_ms: queued_wait_ms,
        variant: variant.name.clone(),
        threshold: variant.threshold,
        evidence: variant.evidence,
        runs: rs.len(),
        includes_contended,
        records_per_s_mean: mean(rs.iter().map(|r| r.records_per_s)).unwrap_or(f64::NAN),
        records_per_s_min: rate(f64::min, f64::INFINITY),
        records_per_s_max: rate(f64::max, 0.0),
        alerts,
        alert_share: alerts as f64 / records.max(1) as f64,
        evidence_ok: ok,
        skipped_share: skipped.values().sum::<u64>() as f64 / alerts.max(1) as f64,
        evidence_skipped: skipped,
        evidence_mean_ms: (ok > 0).then(|| ok_ms / ok as f64),
        worker_cpu_ms_per_record: mean(
            rs.iter()
                .filter_map(|r| r.cpu.bench_process_cpu_ms_per_input),
        ),
        evidence_cpu_ms_per_record: evidence_cpu * 1e3 / records.max(1) as f64,
        evidence_cpu_ms_per_alert: (ok > 0).then(|| evidence_cpu * 1e3 / ok as f64),
        worker_cores: mean(
            rs.iter()
                .filter_map(|r| r.cpu.cores(r.cpu.bench_process_cpu_seconds)),
        ),
        broker_cores: mean(
            rs.iter()
                .filter_map(|r| r.cpu.cores(r.cpu.broker_cpu_seconds)),
        ),
        machine_idle: mean(rs.iter().filter_map(|r| r.cpu.machine_idle)),
    }
}

/// `num` ÷ `den` of the summaries, and per round (uncontended pairs only).
fn ratio(
    name: &str,
    num: &VariantSummary,
    den: &VariantSummary,
    runs: &[DrainRun],
    target: Option<f64>,
) -> Ratio {
    let rounds: Vec<usize> = runs.iter().filter_map(|r| r.round).collect();
    let rate = |round: usize, v: &str| {
        runs.iter()
            .find(|r| r.round == Some(round) && r.variant == v && !r.contended)
            .map(|r| r.records_per_s)
    };
    let last = rounds.iter().copied().max().map_or(0, |m| m + 1);
    let per_round = (0..last)
        .filter_map(|k| Some(rate(k, &num.variant)? / rate(k, &den.variant)?))
        .collect();
    Ratio {
        name: name.to_owned(),
        numerator: num.variant.clone(),
        denominator: den.variant.clone(),
        ratio_of_means: num.records_per_s_mean / den.records_per_s_mean,
        per_round,
        target,
    }
}

/// Every variant's summary (in `variants`' order: off, on, demo on, demo off) and the two
/// ratios: on ÷ off at the chosen rate (target [`TARGET_RATIO`]), and at the demo's rate.
pub(super) fn summarise_all(
    variants: &[Variant],
    runs: &[DrainRun],
    (rate, demo): (&AlertRate, &AlertRate),
    limits: Limits,
) -> (Vec<VariantSummary>, Vec<Ratio>) {
    let summary: Vec<VariantSummary> = variants
        .iter()
        .map(|v| summarise(v, runs, limits))
        .collect();
    let mut ratios = Vec::new();
    if let [off, on, demo_on, demo_off] = summary.as_slice() {
        let name = |what: &str, r: &AlertRate| {
            format!("{what} at {:.1} % alerting", r.expected_share * 100.0)
        };
        ratios.push(ratio(
            &name("on ÷ off", rate),
            on,
            off,
            runs,
            Some(TARGET_RATIO),
        ));
        let demo_name = name("demo on ÷ demo off", demo);
        ratios.push(ratio(&demo_name, demo_on, demo_off, runs, None));
    }
    (summary, ratios)
}

fn tabular_line(c: &TabularCost) {
    println!(
        "  {:<17} {:>10.1} {:>10.1} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>9.0}× {:>6.0}×",
        c.method,
        c.explain.p50_us,
        c.explain.mean_us,
        c.infer_batch1.p50_us,
        c.infer_batch1.mean_us,
        c.classify.p50_us,
        c.classify.mean_us,
        c.explain_vs_infer_p50,
        c.explain_vs_infer_mean,
    );
}

fn image_line(c: &ImageCost) {
    println!(
        "  {:<28} {:>4} {:>6} {:>8} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>7.1}× {:>6.1}×",
        c.bundle,
        c.grid,
        c.model_runs,
        format!("{}/{}", c.explained, c.frames),
        c.occlusion.p50_us / 1e3,
        c.occlusion.mean_us / 1e3,
        c.classify.p50_us / 1e3,
        c.classify.mean_us / 1e3,
        c.occlusion_vs_classify_p50,
        c.occlusion_vs_classify_mean,
    );
}

/// Stage 1's tables.
pub(super) fn print_costs(c: &CostResult) {
    println!(
        "  per record, µs        explain p50       mean  infer(b1) p50   mean  classify p50   mean   vs infer p50  mean"
    );
    tabular_line(&c.tree_shap);
    tabular_line(&c.sampling_shapley);
    for t in [&c.tree_shap, &c.sampling_shapley] {
        let diff = t
            .max_output_difference
            .map_or_else(|| "n/a".to_owned(), |d| format!("{d:.1e}"));
        let bound = t
            .mean_error_bound
            .map_or_else(String::new, |b| format!("; mean 99 % error bound {b:.4}"));
        let permutations = match t.method.as_str() {
            "sampling_shapley" => format!(", {} permutations", t.permutations),
            _ => String::new(),
        };
        println!(
            "    {}: {} records{permutations}; max |evidence output − model probability| {diff}{bound}",
            t.method, t.explain.samples
        );
    }
    if !c.occlusion.is_empty() {
        print_occlusion(&c.occlusion);
    }
    if let Some(w) = c.cpu.as_ref().and_then(|u| u.contention()) {
        println!("  stage 1: {w}");
    }
}

fn print_occlusion(costs: &[ImageCost]) {
    println!(
        "  occlusion, ms per frame        grid  runs  frames   occl p50       mean  classify p50   mean  vs classify p50 mean"
    );
    for i in costs {
        if i.explained == 0 {
            println!(
                "  {:<28} none of the {} frames has a box of {:?}: nothing to explain",
                i.bundle, i.frames, i.label
            );
            continue;
        }
        image_line(i);
        if i.mean_boxes > 0.0 {
            println!(
                "    {:.2} boxes of {:?} per explained frame",
                i.mean_boxes, i.label
            );
        }
    }
}

/// One drain's line.
pub(super) fn print_run(r: &DrainRun) {
    let round = r.round.map_or_else(|| "warm".to_owned(), |k| k.to_string());
    let skipped: Vec<String> = r
        .seen
        .evidence_skipped
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
    println!(
        "  {:>5} {:<14} {:>9.1} {:>7.2} {:>7} {:>6.2}% {:>7} {:>8} {:>9} {:>10} {:>8.2} {:>6} {:>6}",
        round,
        r.variant,
        r.records_per_s,
        r.seconds,
        r.alerts,
        r.alert_share * 100.0,
        r.seen.evidence_ok,
        if skipped.is_empty() { "-".to_owned() } else { skipped.join(",") },
        ms(r.seen.evidence_mean_ms),
        ms(r.cpu.bench_process_cpu_ms_per_input),
        r.seen.evidence_thread_cpu_seconds,
        ms(r.cpu.cores(r.cpu.broker_cpu_seconds)),
        crate::harness::cpu::percent(r.cpu.machine_idle),
    );
    if r.contended {
        if let Some(w) = r.cpu.contention() {
            println!("        {w} (left out of the summary)");
        }
    }
    if !r.quiet {
        println!(
            "        the machine was not quiet before this drain (waited {:.0} s)",
            r.quiet_wait_seconds
        );
    }
    if r.not_predicted > 0 {
        println!(
            "        WARNING: {} records were not predicted",
            r.not_predicted
        );
    }
}

/// The header of the drains' lines.
pub(super) fn print_run_header() {
    println!(
        "  {:>5} {:<14} {:>9} {:>7} {:>7} {:>7} {:>7} {:>8} {:>9} {:>10} {:>8} {:>6} {:>6}",
        "round",
        "variant",
        "records/s",
        "drain s",
        "alerts",
        "share",
        "evid ok",
        "skipped",
        "evid ms",
        "CPU-ms/rec",
        "evid CPU",
        "broker",
        "idle"
    );
}

/// The summary per variant and the ratios.
pub(super) fn print_summary(summaries: &[VariantSummary], ratios: &[Ratio]) {
    println!();
    println!("  variant        threshold evidence runs  records/s mean (min–max)  alert share  skipped  evidence CPU-ms/alert  worker cores  idle");
    for s in summaries {
        println!(
            "  {:<14} {:>9.4} {:>8} {:>4}  {:>9.1} ({:.1}–{:.1}) {:>10.2}% {:>7.1}% {:>21} {:>13} {:>5}{}",
            s.variant,
            s.threshold,
            if s.evidence { "on" } else { "off" },
            s.runs,
            s.records_per_s_mean,
            s.records_per_s_min,
            s.records_per_s_max,
            s.alert_share * 100.0,
            s.skipped_share * 100.0,
            s.evidence_cpu_ms_per_alert.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}")),
            s.worker_cores.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}")),
            crate::harness::cpu::percent(s.machine_idle),
            if s.includes_contended { "  (contended drains)" } else { "" },
        );
    }
    for s in summaries.iter().filter(|s| s.evidence) {
        if let Some(wait) = s.queued_alert_mean_wait_ms {
            println!(
                "  {}: alerts that went to the evidence pool waited {wait:.0} ms on average for it (or the deadline) after their prediction went out",
                s.variant
            );
        }
    }
    for r in ratios {
        let rounds: Vec<String> = r.per_round.iter().map(|x| format!("{x:.3}")).collect();
        let target = r.target.map_or_else(String::new, |t| {
            format!(" (target ≥ {t}){}", verdict(r.ratio_of_means >= t))
        });
        println!(
            "  {} = {:.3}{target}; per round {}",
            r.name,
            r.ratio_of_means,
            rounds.join(", ")
        );
    }
    println!("  ({} cores; CPU-ms per record and cores are the bench process, i.e. the worker with its evidence pool)", cores());
}

#[cfg(test)]
mod tests {
    use super::super::drain::EvidenceSeen;
    use super::*;
    use crate::harness::cpu::CpuUse;

    fn run(round: usize, variant: &Variant, rate: f64, contended: bool) -> DrainRun {
        DrainRun {
            round: Some(round),
            variant: variant.name.clone(),
            threshold: variant.threshold,
            evidence: variant.evidence,
            records: 1000,
            group_join_seconds: 0.0,
            seconds: 1000.0 / rate,
            records_per_s: rate,
            predicted: 1000,
            not_predicted: 0,
            alerts: 50,
            alert_share: 0.05,
            seen: EvidenceSeen {
                evidence_ok: if variant.evidence { 10 } else { 0 },
                evidence_mean_ms: variant.evidence.then_some(100.0),
                evidence_skipped: if variant.evidence {
                    BTreeMap::from([("saturated".to_owned(), 30), ("deadline".to_owned(), 10)])
                } else {
                    BTreeMap::new()
                },
                evidence_thread_cpu_seconds: if variant.evidence { 0.5 } else { 0.0 },
            },
            pauses: 0,
            cpu: CpuUse {
                wall_seconds: 1000.0 / rate,
                inputs: 1000,
                bench_process_cpu_seconds: Some(1.0),
                bench_process_cpu_ms_per_input: Some(1.0),
                broker_pids: Vec::new(),
                broker_cpu_seconds: None,
                broker_cpu_ms_per_input: None,
                other_cpu_seconds: None,
                other_cpu_ms_per_input: None,
                machine_cpu_seconds: None,
                machine_idle: None,
            },
            quiet_wait_seconds: 0.0,
            quiet: true,
            contended,
        }
    }

    #[test]
    fn ratios_leave_contended_drains_out_and_waits_count_the_deadline() {
        let v = |name: &str, evidence| Variant {
            name: name.into(),
            threshold: 0.5,
            evidence,
        };
        let variants = [
            v("off", false),
            v("on", true),
            v("demo on", true),
            v("demo off", false),
        ];
        let mut runs = Vec::new();
        for round in 0..2 {
            runs.push(run(round, &variants[0], 1000.0, false));
            runs.push(run(
                round,
                &variants[1],
                500.0 + 100.0 * round as f64,
                false,
            ));
            runs.push(run(round, &variants[2], 400.0, false));
            runs.push(run(round, &variants[3], 800.0, false));
        }
        runs.push(run(2, &variants[0], 10.0, true));
        let rate = AlertRate::at(0.5, &[0.4, 0.6], 2);
        let limits = Limits {
            deadline: Duration::from_millis(500),
        };
        let (s, ratios) = summarise_all(&variants, &runs, (&rate, &rate), limits);
        assert_eq!(s[0].runs, 2, "the contended drain is left out");
        assert!((s[1].records_per_s_mean - 550.0).abs() < 1e-9);
        assert!((ratios[0].ratio_of_means - 0.55).abs() < 1e-9);
        assert_eq!(ratios[0].per_round.len(), 2);
        assert!((ratios[0].per_round[1] - 0.6).abs() < 1e-9);
        assert!((ratios[1].ratio_of_means - 0.5).abs() < 1e-9);
        // 10 with evidence after 100 ms and 10 at the 500 ms deadline, per drain.
        assert_eq!(s[1].queued_alert_mean_wait_ms, Some(300.0));
        assert!((s[1].skipped_share - 0.8).abs() < 1e-12);
        assert_eq!(s[1].evidence_cpu_ms_per_alert, Some(50.0));
    }
}
