//! Window evaluation: a window's summary against the segment's reference, per feature
//! (tests, effect sizes, status), across features (Benjamini–Hochberg, Bonferroni, share
//! rule) and, with a calibration map, a label-free performance estimate (CBPE).
//!
//! Decision per feature: `significant` = some test of the feature in the family has BH
//! q < α; `material` = an effect size reaches its materiality threshold; status `drift` if
//! both, `warn` if one, `ok` if neither, `insufficient_data` below the minimum sample size
//! (never "no drift"). A new-category alarm is its own test and makes the status `drift`.
//! Every number is finite: a degenerate case returns p = 1 or a zero statistic, never NaN.
use crate::categorical::CategoricalSummary;
use crate::numeric::NumericSummary;
use crate::profile::{
    Calibration, CategoricalReference, FeatureKind, FeatureProfile, NumericReference,
    SegmentProfile,
};
pub use crate::report::Evaluation;
use crate::report::{
    DatasetReport, Effects, FeatureReport, HistogramDistance, HistogramReport, NewValues,
    PerformanceEstimate, ShareRule, Status, TestReport,
};
use crate::summary::{FeatureSummary, SegmentSummary};
use crate::{chi2, cvm, distance, fdr, ks, special};

/// Thresholds of the evaluation. Defaults follow `DRIFT_SPEC.md` §5.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalConfig {
    /// Per-feature level before FDR.
    pub alpha: f64,
    /// Minimum finite values for KS/CvM/Wasserstein/binned tests.
    pub min_n_numeric: u64,
    /// Minimum present values for categorical tests.
    pub min_n_categorical: u64,
    /// Materiality: normalised Wasserstein-1.
    pub w1_material: f64,
    /// Materiality: PSI on deciles / categories.
    pub psi_material: f64,
    /// Materiality: Jensen–Shannon distance, base 2.
    pub js_material: f64,
    /// Evidently's dataset rule: drift if this share of features drifted.
    pub share_rule: f64,
    /// ε floor of PSI proportions.
    pub psi_eps: f64,
    /// Cells with expected count below this are merged into `__other__` for χ².
    pub chi2_min_expected: f64,
    /// The χ²-calibrated PSI test runs only with at least this many window values per
    /// decile bin (its χ² approximation is anti-conservative below: 11 % false alarms at
    /// M = 50 in `tests/drift_checks.rs`); the PSI effect size is reported regardless.
    pub psi_min_per_bin: f64,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            min_n_numeric: 30,
            min_n_categorical: 30,
            w1_material: 0.1,
            psi_material: 0.1,
            js_material: 0.1,
            share_rule: 0.5,
            psi_eps: 1e-4,
            chi2_min_expected: 5.0,
            psi_min_per_bin: 10.0,
        }
    }
}

/// Evaluate one window of one segment.
pub fn evaluate(
    reference: &SegmentProfile,
    window: &SegmentSummary,
    calibration: Option<&Calibration>,
    cfg: &EvalConfig,
) -> Evaluation {
    let mut features: Vec<FeatureReport> = reference
        .features
        .iter()
        .zip(&window.features)
        .map(|(r, s)| match (s, &r.numeric, &r.categorical) {
            (FeatureSummary::Numeric(s), Some(num), _) => numeric_feature(r, num, s, cfg),
            (FeatureSummary::Categorical(s), _, Some(cat)) => categorical_feature(r, cat, s, cfg),
            _ => insufficient(r, 0, "summary does not match the reference"),
        })
        .collect();

    // Benjamini–Hochberg over every test that takes part in the family.
    let mut family: Vec<(usize, usize, f64)> = Vec::new();
    for (fi, f) in features.iter().enumerate() {
        for (ti, t) in f.tests.iter().enumerate() {
            if t.in_family {
                if let Some(p) = t.p_value {
                    family.push((fi, ti, p));
                }
            }
        }
    }
    let ps: Vec<f64> = family.iter().map(|e| e.2).collect();
    let qs = fdr::benjamini_hochberg(&ps);
    let bonferroni = fdr::bonferroni_threshold(cfg.alpha, ps.len().max(1));
    for ((fi, ti, _), q) in family.iter().zip(&qs) {
        features[*fi].tests[*ti].q_value = Some(*q);
    }
    for f in &mut features {
        if f.status == Status::InsufficientData {
            continue;
        }
        let by_q = f
            .tests
            .iter()
            .any(|t| t.q_value.is_some_and(|q| q < cfg.alpha));
        let new_alarm = f.new_values.as_ref().is_some_and(|n| n.alarm);
        f.significant = by_q || new_alarm;
        f.material = f.material || new_alarm;
        f.status = match (f.significant, f.material) {
            (true, true) => Status::Drift,
            (false, false) => Status::Ok,
            _ => Status::Warn,
        };
    }

    let n_features = features.len();
    let n_insufficient = features
        .iter()
        .filter(|f| f.status == Status::InsufficientData)
        .count();
    let n_tested = n_features - n_insufficient;
    let n_drifted = features
        .iter()
        .filter(|f| f.status == Status::Drift)
        .count();
    let share_drifted = if n_tested == 0 {
        0.0
    } else {
        n_drifted as f64 / n_tested as f64
    };
    let dataset = DatasetReport {
        n_features,
        n_tested,
        n_insufficient,
        n_significant_bh: features.iter().filter(|f| f.significant).count(),
        any_drift_bh: qs.iter().any(|q| *q < cfg.alpha),
        bonferroni_threshold: bonferroni,
        any_drift_bonferroni: ps.iter().any(|p| *p < bonferroni),
        n_drifted,
        share_drifted,
        evidently_share_rule: ShareRule {
            threshold: cfg.share_rule,
            drift: n_tested > 0 && share_drifted >= cfg.share_rule,
        },
        drift: n_drifted > 0,
        status: if n_tested == 0 {
            Status::InsufficientData
        } else if n_drifted > 0 {
            Status::Drift
        } else if features.iter().any(|f| f.status == Status::Warn) {
            Status::Warn
        } else {
            Status::Ok
        },
    };
    let performance_estimate =
        calibration.and_then(|c| window.cbpe.as_ref().map(|counts| cbpe(c, counts, cfg)));
    let histograms = match (&reference.histograms, &window.histograms) {
        (Some(r), Some(w)) if !r.is_empty() && !w.is_empty() => {
            let distance = |rp: Vec<f64>, wp: Vec<f64>| {
                let js = distance::js_distance(&rp, &wp, 2.0);
                HistogramDistance {
                    pixels: w.pixel_count(),
                    js_base2: js,
                    psi: distance::psi(&rp, &wp, cfg.psi_eps),
                    material: js >= cfg.js_material,
                }
            };
            Some(HistogramReport {
                luma: distance(r.luma_proportions(), w.luma_proportions()),
                hue_sat: distance(r.hue_sat_proportions(), w.hue_sat_proportions()),
            })
        }
        _ => None,
    };
    Evaluation {
        features,
        dataset,
        performance_estimate,
        histograms,
    }
}

/// A feature's report before any test ran: status ok, nothing significant or material.
fn blank(r: &FeatureProfile, n: u64, n_null: u64, n_nonfinite: u64) -> FeatureReport {
    FeatureReport {
        name: r.name.clone(),
        kind: r.kind,
        n,
        n_null,
        n_nonfinite,
        share_out_of_ref_range: None,
        tests: Vec::new(),
        effects: Effects::default(),
        new_values: None,
        status: Status::Ok,
        significant: false,
        material: false,
        material_thresholds: None,
        reason: None,
    }
}

fn insufficient(r: &FeatureProfile, n: u64, reason: &str) -> FeatureReport {
    FeatureReport {
        status: Status::InsufficientData,
        reason: Some(reason.to_owned()),
        ..blank(r, n, 0, 0)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// χ² (Yates only at dof 1) on the 2×2 table of "null vs present" — only when either side
/// has nulls, so clean columns do not dilute the family.
fn null_share_test(ref_null: u64, ref_n: u64, cur_null: u64, cur_n: u64) -> Option<TestReport> {
    if ref_null + cur_null == 0 || ref_n == 0 || cur_n == 0 {
        return None;
    }
    let r = [ref_null as f64, (ref_n - ref_null) as f64];
    let c = [cur_null as f64, (cur_n - cur_null) as f64];
    let t = chi2::chi2_homogeneity(&r, &c, true);
    Some(TestReport {
        dof: Some(t.dof),
        in_family: true,
        ..TestReport::new("null_share", t.statistic, Some(t.p_value))
    })
}

fn numeric_feature(
    r: &FeatureProfile,
    num: &NumericReference,
    s: &NumericSummary,
    cfg: &EvalConfig,
) -> FeatureReport {
    let n = s.n_finite();
    let mut report = FeatureReport {
        share_out_of_ref_range: Some(ratio(s.n_below_ref_min + s.n_above_ref_max, n)),
        ..blank(r, n, s.n_null, s.n_nonfinite)
    };
    if s.n < cfg.min_n_numeric {
        report.status = Status::InsufficientData;
        report.reason = Some(format!("{} rows < minimum {}", s.n, cfg.min_n_numeric));
        return report;
    }
    report.tests.extend(null_share_test(
        r.n_null + r.n_nonfinite,
        r.n,
        s.n_null + s.n_nonfinite,
        s.n,
    ));
    if n < cfg.min_n_numeric || num.sample.is_empty() {
        report.reason = Some(format!("{n} finite values < minimum {}", cfg.min_n_numeric));
        if report.tests.is_empty() {
            report.status = Status::InsufficientData;
        }
        return report;
    }
    let cur = s.sample.sorted_values();
    let k = ks::ks_2samp_sorted(&cur, &num.sample, ks::KsMethod::Auto);
    report.tests.push(TestReport {
        sample_n: Some([cur.len() as u64, num.sample.len() as u64]),
        exact: Some(k.exact),
        in_family: true,
        ..TestReport::new("ks", k.statistic, Some(k.p_value))
    });
    let c = cvm::cramervonmises_2samp_sorted(&cur, &num.sample);
    report.tests.push(TestReport {
        sample_n: Some([cur.len() as u64, num.sample.len() as u64]),
        ..TestReport::new("cvm", c.statistic, Some(c.p_value))
    });
    let ref_dec = num.to_deciles(&num.bin_counts);
    let cur_dec = num.to_deciles(&s.bins);
    let (nn, mm) = (ref_dec.iter().sum::<f64>(), cur_dec.iter().sum::<f64>());
    let bins = ref_dec.len();
    if bins >= 2 && nn > 0.0 && mm > 0.0 {
        let psi = distance::psi(&proportions(&ref_dec), &proportions(&cur_dec), cfg.psi_eps);
        let scale = 1.0 / nn + 1.0 / mm;
        let dof = (bins - 1) as f64;
        if mm >= cfg.psi_min_per_bin * bins as f64 {
            report.tests.push(TestReport {
                bins: Some(bins),
                threshold: Some(chi2_isf(cfg.alpha, dof) * scale),
                threshold_kind: Some("chi2".to_owned()),
                alpha: Some(cfg.alpha),
                ..TestReport::new("psi", psi, Some(special::chi2_sf(psi / scale, dof)))
            });
        }
        let t = chi2::chi2_homogeneity(&ref_dec, &cur_dec, true);
        report.tests.push(TestReport {
            bins: Some(bins),
            dof: Some(t.dof),
            ..TestReport::new("chi2_binned", t.statistic, Some(t.p_value))
        });
        report.effects.psi_10 = Some(psi);
        report.effects.js_base2 = Some(distance::js_distance(&ref_dec, &cur_dec, 2.0));
    }
    let w1 = distance::wasserstein_sorted(&cur, &num.sample);
    // Finite even for values near f64::MAX (JSON has no infinity).
    report.effects.wasserstein_norm = Some((w1 / num.std.max(1e-3)).min(f64::MAX));
    // Materiality thresholds: the fixed ones, raised to what sampling noise alone reaches at
    // this window size (the profile's null tables), so small windows are not material by chance.
    let thresholds = Effects {
        wasserstein_norm: Some(null_threshold(
            r,
            cfg.w1_material,
            |t| &t.wasserstein_norm,
            cur.len() as u64,
        )),
        psi_10: Some(null_threshold(r, cfg.psi_material, |t| &t.psi, n)),
        js_base2: Some(null_threshold(r, cfg.js_material, |t| &t.js_base2, n)),
        ..Effects::default()
    };
    report.material = exceeds(
        &report.effects.wasserstein_norm,
        &thresholds.wasserstein_norm,
    ) || exceeds(&report.effects.psi_10, &thresholds.psi_10)
        || exceeds(&report.effects.js_base2, &thresholds.js_base2);
    report.material_thresholds = Some(thresholds);
    report
}

/// `max(fixed, q95 of the effect under H0 at window size m)`; the fixed threshold alone
/// when the profile has no null table.
fn null_threshold(
    r: &FeatureProfile,
    fixed: f64,
    column: impl Fn(&crate::null::NullTable) -> &Vec<f64>,
    m: u64,
) -> f64 {
    r.null
        .as_ref()
        .map_or(fixed, |t| fixed.max(t.at(column(t), m)))
}

fn exceeds(effect: &Option<f64>, threshold: &Option<f64>) -> bool {
    matches!((effect, threshold), (Some(e), Some(t)) if e >= t)
}

fn proportions(counts: &[f64]) -> Vec<f64> {
    let total: f64 = counts.iter().sum();
    counts
        .iter()
        .map(|c| if total > 0.0 { c / total } else { 0.0 })
        .collect()
}

/// Upper-tail χ² quantile by bisection on `chi2_sf` (monotone), to 1e-12 relative.
pub fn chi2_isf(p: f64, dof: f64) -> f64 {
    let (mut lo, mut hi) = (0.0_f64, dof.max(1.0));
    while special::chi2_sf(hi, dof) > p {
        hi *= 2.0;
        if hi > 1e12 {
            break;
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if special::chi2_sf(mid, dof) > p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-12 * hi {
            break;
        }
    }
    0.5 * (lo + hi)
}

fn categorical_feature(
    r: &FeatureProfile,
    cat: &CategoricalReference,
    s: &CategoricalSummary,
    cfg: &EvalConfig,
) -> FeatureReport {
    let m = s.n_present();
    let mut report = blank(r, m, s.n_null, 0);
    if s.n < cfg.min_n_categorical {
        report.status = Status::InsufficientData;
        report.reason = Some(format!("{} rows < minimum {}", s.n, cfg.min_n_categorical));
        return report;
    }
    report
        .tests
        .extend(null_share_test(r.n_null, r.n, s.n_null, s.n));
    if m < cfg.min_n_categorical {
        report.reason = Some(format!(
            "{m} present values < minimum {}",
            cfg.min_n_categorical
        ));
        if report.tests.is_empty() {
            report.status = Status::InsufficientData;
        }
        return report;
    }
    // Columns: reference categories, __other_ref__, then everything new as one column.
    let mut rc: Vec<f64> = cat.counts.iter().map(|c| *c as f64).collect();
    let mut cc: Vec<f64> = s.counts.iter().map(|c| *c as f64).collect();
    cc.resize(rc.len(), 0.0);
    rc.push(0.0);
    cc.push(s.n_new_total as f64);
    let ref_total: f64 = rc.iter().sum();
    report.effects.js_base2 = Some(distance::js_distance(&rc, &cc, 2.0));
    report.effects.psi = Some(distance::psi(
        &proportions(&rc),
        &proportions(&cc),
        cfg.psi_eps,
    ));
    report.effects.tvd = Some(distance::total_variation(
        &proportions(&rc),
        &proportions(&cc),
    ));
    let thresholds = Effects {
        js_base2: Some(null_threshold(r, cfg.js_material, |t| &t.js_base2, m)),
        psi: Some(null_threshold(r, cfg.psi_material, |t| &t.psi, m)),
        ..Effects::default()
    };
    report.material = exceeds(&report.effects.js_base2, &thresholds.js_base2)
        || exceeds(&report.effects.psi, &thresholds.psi);
    report.material_thresholds = Some(thresholds);
    if ref_total > 0.0 {
        let (mr, mc, merged) = merge_sparse(&rc, &cc, cfg.chi2_min_expected);
        let t = chi2::chi2_homogeneity(&mr, &mc, true);
        report.tests.push(TestReport {
            dof: Some(t.dof),
            merged_categories: (merged > 0).then_some(merged),
            in_family: true,
            ..TestReport::new("chi2", t.statistic, Some(t.p_value))
        });
        if rc.iter().filter(|c| **c > 0.0).count() == 2 && matches!(r.kind, FeatureKind::Binary) {
            // Two-proportion z on the first reference category (= χ² without Yates).
            let (x1, x2) = (rc[0], cc[0]);
            let (n1, n2) = (ref_total, m as f64);
            let pooled = (x1 + x2) / (n1 + n2);
            let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
            let z = if se > 0.0 {
                (x2 / n2 - x1 / n1) / se
            } else {
                0.0
            };
            report.tests.push(TestReport::new(
                "z",
                z,
                Some((2.0_f64 * special::normal_sf(z.abs())).min(1.0)),
            ));
        }
    }
    let share = ratio(s.n_new_total, m);
    let se = (share * (1.0 - share) / m as f64).sqrt();
    report.new_values = Some(NewValues {
        n_new_total: s.n_new_total,
        share,
        threshold: 0.01_f64.max(3.0 * se),
        alarm: share > 0.01_f64.max(3.0 * se),
        top: s.top_new(10),
    });
    report
}

/// Merge columns whose expected count (in either row) is below `min_expected` into one
/// `__other__` column; if that column is still sparse, fold it into the smallest remaining one.
/// Returns the reduced rows and how many columns were merged.
fn merge_sparse(r: &[f64], c: &[f64], min_expected: f64) -> (Vec<f64>, Vec<f64>, usize) {
    let (rt, ct) = (r.iter().sum::<f64>(), c.iter().sum::<f64>());
    let total = rt + ct;
    if total == 0.0 {
        return (r.to_vec(), c.to_vec(), 0);
    }
    let (mut kr, mut kc) = (Vec::new(), Vec::new());
    let (mut or, mut oc, mut merged) = (0.0, 0.0, 0usize);
    for (a, b) in r.iter().zip(c) {
        let col = a + b;
        if col == 0.0 {
            continue;
        }
        if col * rt / total < min_expected || col * ct / total < min_expected {
            or += a;
            oc += b;
            merged += 1;
        } else {
            kr.push(*a);
            kc.push(*b);
        }
    }
    if merged > 0 {
        let col = or + oc;
        let sparse = col * rt / total < min_expected || col * ct / total < min_expected;
        if sparse && !kr.is_empty() {
            let smallest = (0..kr.len())
                .min_by(|i, j| (kr[*i] + kc[*i]).total_cmp(&(kr[*j] + kc[*j])))
                .unwrap_or(0);
            kr[smallest] += or;
            kc[smallest] += oc;
        } else {
            kr.push(or);
            kc.push(oc);
        }
    }
    (kr, kc, merged)
}

/// CBPE: expected confusion matrix from calibrated probabilities (sums over the calibration
/// levels in a fixed order, so the result does not depend on how the window was merged).
fn cbpe(c: &Calibration, counts: &[[u64; 2]], cfg: &EvalConfig) -> PerformanceEstimate {
    let (mut tp, mut fp, mut tn, mut fn_, mut var, mut n) = (0.0, 0.0, 0.0, 0.0, 0.0, 0u64);
    for (p, [neg, pos]) in c.levels.iter().zip(counts) {
        let (neg, pos) = (*neg as f64, *pos as f64);
        tp += pos * p;
        fp += pos * (1.0 - p);
        tn += neg * (1.0 - p);
        fn_ += neg * p;
        var += (neg + pos) * p * (1.0 - p);
    }
    for [a, b] in counts {
        n += a + b;
    }
    let nf = n as f64;
    let sufficient = n >= cfg.min_n_numeric;
    let div = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let accuracy = div(tp + tn, nf);
    let accuracy_se = div(var.sqrt(), nf);
    let precision = div(tp, tp + fp);
    let recall = div(tp, tp + fn_);
    PerformanceEstimate {
        method: "cbpe".to_owned(),
        n,
        sufficient,
        accuracy,
        accuracy_se,
        accuracy_lower: (accuracy - 3.0 * accuracy_se).max(0.0),
        accuracy_upper: (accuracy + 3.0 * accuracy_se).min(1.0),
        precision,
        recall,
        f1: div(2.0 * precision * recall, precision + recall),
        reference_accuracy: c.reference_accuracy,
        reference_estimated_accuracy: c.reference_estimated_accuracy,
        degraded: sufficient && c.reference_estimated_accuracy > accuracy + 3.0 * accuracy_se,
    }
}
