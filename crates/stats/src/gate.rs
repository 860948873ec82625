//! The promotion gate: paired tests of a candidate against production on the same test items,
//! and the decision. Operator's view: `docs/promotion-gate.md`. Pinned to statsmodels and a
//! numpy DeLong by `fixtures/gate.json` (`fixtures/make_gate_reference.py`).
//!
//! - **accuracy** → McNemar's exact test: `b` = items only the candidate gets right, `c` =
//!   items only production gets right, `p = min(1, 2·BinomCDF(min(b, c); b + c, ½))`
//!   (= `statsmodels mcnemar(table, exact=True)`); the χ² version with continuity correction
//!   is [`mcnemar_chi2`] (`exact=False, correction=True`). Interval of the difference: Wald
//!   for paired proportions, `(b − c)/n ± z·√((b + c) − (b − c)²/n)/n`.
//! - **roc_auc** → DeLong's test for correlated AUCs: `z = Δ / √(var₁ + var₂ − 2 cov)`,
//!   `p = 2·Φ̄(|z|)`; interval `Δ ± z₀.₉₇₅·σ`.
//! - **f1** (or any metric) → paired bootstrap: `B` resamples of item indices from
//!   [`SplitMix64`] (seeded, unbiased [`SplitMix64::below`]), each scoring both models on the
//!   same resample; `Δ*` sorted, interval = its 2.5 %/97.5 % percentiles, and
//!   `p = min(1, 2·(1 + min(#{Δ* ≤ 0}, #{Δ* ≥ 0}))/(B + 1))`.
//!
//! **Decision rule.** Every p-value is two-sided. The candidate passes only if it is better
//! (`Δ = candidate − production > 0`) **and** `p < α`, i.e. a one-sided test at level α/2:
//! conservative, and the same p-values statsmodels reports. Degenerate cases (no discordant
//! pairs, zero variance) give `p = 1`, never NaN.
use crate::quality::{
    self, bootstrap_indices, check_len, percentile, Components, QualityError, SplitMix64, Z_95,
};
use crate::special::{ln_gamma, normal_sf};

/// The metric a model is judged on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Share of items labelled correctly.
    Accuracy,
    /// F1 of the positive class.
    F1,
    /// Area under the ROC curve of the positive-class score.
    RocAuc,
}

impl Metric {
    /// The name used in flags and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::F1 => "f1",
            Metric::RocAuc => "roc_auc",
        }
    }

    /// Whether the metric needs a positive class (binary bundles).
    pub fn needs_positive(self) -> bool {
        !matches!(self, Metric::Accuracy)
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "accuracy" => Ok(Metric::Accuracy),
            "f1" => Ok(Metric::F1),
            "roc_auc" | "auc" => Ok(Metric::RocAuc),
            other => Err(format!(
                "unknown metric {other:?}; use accuracy, f1 or roc_auc"
            )),
        }
    }
}

/// One model's outcomes on the test items, in item order. For a multi-class model `labels`,
/// `scores` and `predicted` refer to the positive class if it has one (else they are unused).
#[derive(Debug, Clone, Copy)]
pub struct Outcomes<'a> {
    /// The item's true label is the positive class.
    pub labels: &'a [bool],
    /// The model's score of the positive class.
    pub scores: &'a [f64],
    /// The model predicted the positive class.
    pub predicted: &'a [bool],
    /// The model's predicted label is the true label.
    pub correct: &'a [bool],
}

impl Outcomes<'_> {
    fn check(&self) -> Result<usize, QualityError> {
        let n = self.labels.len();
        check_len(
            n,
            &[
                ("scores", self.scores.len()),
                ("predicted", self.predicted.len()),
                ("correct", self.correct.len()),
            ],
        )?;
        Ok(n)
    }

    /// The metric's value on the items `idx` (all if `None`); `None` where it has none (AUC
    /// of a resample with one class).
    fn value(&self, metric: Metric, idx: Option<&[usize]>) -> Option<f64> {
        match (metric, idx) {
            (Metric::Accuracy, None) => Some(quality::accuracy(self.correct)),
            (Metric::Accuracy, Some(idx)) => {
                let k = idx.iter().filter(|&&i| self.correct[i]).count();
                Some(k as f64 / idx.len().max(1) as f64)
            }
            (Metric::F1, idx) => Some(quality::f1_over(self.labels, self.predicted, idx)),
            (Metric::RocAuc, None) => quality::roc_auc(self.labels, self.scores).ok(),
            (Metric::RocAuc, Some(idx)) => {
                let l: Vec<bool> = idx.iter().map(|&i| self.labels[i]).collect();
                let s: Vec<f64> = idx.iter().map(|&i| self.scores[i]).collect();
                quality::roc_auc(&l, &s).ok()
            }
        }
    }
}

/// A paired test's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedTest {
    /// The test statistic (McNemar: `min(b, c)` exact or χ²; DeLong: z; bootstrap: Δ).
    pub statistic: f64,
    /// Two-sided p-value in [0, 1].
    pub p_value: f64,
}

/// `P(X ≤ k)` for `X ~ Binomial(n, ½)`, summed term by term from `C(n, k)/2ⁿ` downwards.
pub fn binom_cdf_half(k: u64, n: u64) -> f64 {
    if k >= n {
        return 1.0;
    }
    let (kf, nf) = (k as f64, n as f64);
    let mut term = (ln_gamma(nf + 1.0)
        - ln_gamma(kf + 1.0)
        - ln_gamma(nf - kf + 1.0)
        - nf * std::f64::consts::LN_2)
        .exp();
    let mut sum = 0.0;
    for j in (0..=k).rev() {
        sum += term;
        // C(n, j−1) = C(n, j)·j/(n − j + 1).
        term *= j as f64 / (n - j + 1) as f64;
    }
    sum.min(1.0)
}

/// McNemar's exact test on the discordant counts `b`, `c` (statsmodels `exact=True`).
pub fn mcnemar_exact(b: u64, c: u64) -> PairedTest {
    let k = b.min(c);
    PairedTest {
        statistic: k as f64,
        p_value: (2.0 * binom_cdf_half(k, b + c)).min(1.0),
    }
}

/// McNemar's χ² test with continuity correction (statsmodels `exact=False,
/// correction=True`): `(|b − c| − 1)²/(b + c)` on 1 degree of freedom; p = 1 if `b + c = 0`.
pub fn mcnemar_chi2(b: u64, c: u64) -> PairedTest {
    if b + c == 0 {
        return PairedTest {
            statistic: 0.0,
            p_value: 1.0,
        };
    }
    let d = (b as f64 - c as f64).abs() - 1.0;
    let statistic = d * d / (b + c) as f64;
    PairedTest {
        statistic,
        p_value: crate::special::chi2_sf(statistic, 1.0).clamp(0.0, 1.0),
    }
}

/// DeLong's paired test of two AUCs on the same items.
#[derive(Debug, Clone, PartialEq)]
pub struct DeLongPaired {
    /// Candidate AUC.
    pub auc_a: f64,
    /// Production AUC.
    pub auc_b: f64,
    /// Variance of `auc_a − auc_b`.
    pub variance: f64,
    /// z and two-sided p (p = 1 when the variance is 0).
    pub test: PairedTest,
}

/// DeLong's test for `scores_a` against `scores_b` on the same `labels`.
pub fn delong_paired(
    labels: &[bool],
    scores_a: &[f64],
    scores_b: &[f64],
) -> Result<DeLongPaired, QualityError> {
    let a: Components = quality::delong(labels, scores_a)?;
    let b: Components = quality::delong(labels, scores_b)?;
    let variance = a.variance() + b.variance() - 2.0 * a.covariance(&b);
    let diff = a.auc - b.auc;
    let test = if variance > 0.0 && variance.is_finite() {
        let z = diff / variance.sqrt();
        PairedTest {
            statistic: z,
            p_value: (2.0 * normal_sf(z.abs())).min(1.0),
        }
    } else {
        PairedTest {
            statistic: 0.0,
            p_value: 1.0,
        }
    };
    Ok(DeLongPaired {
        auc_a: a.auc,
        auc_b: b.auc,
        variance: variance.max(0.0),
        test,
    })
}

/// Settings of the gate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateConfig {
    /// Significance level of the two-sided test.
    pub alpha: f64,
    /// Bootstrap resamples (F1).
    pub resamples: usize,
    /// Bootstrap seed.
    pub seed: u64,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            alpha: 0.05,
            resamples: quality::DEFAULT_RESAMPLES,
            seed: quality::DEFAULT_SEED,
        }
    }
}

/// The paired bootstrap of `candidate − production` on `metric`: the sorted differences of
/// the resamples where both have a value (AUC needs both classes in the resample).
pub fn paired_bootstrap(
    metric: Metric,
    candidate: &Outcomes<'_>,
    production: &Outcomes<'_>,
    resamples: usize,
    seed: u64,
) -> Vec<f64> {
    let n = candidate.labels.len();
    let mut rng = SplitMix64::new(seed);
    let mut idx = Vec::with_capacity(n);
    let mut diffs: Vec<f64> = (0..resamples)
        .filter_map(|_| {
            bootstrap_indices(&mut rng, n, &mut idx);
            Some(candidate.value(metric, Some(&idx))? - production.value(metric, Some(&idx))?)
        })
        .collect();
    diffs.sort_by(f64::total_cmp);
    diffs
}

/// Two-sided bootstrap p-value of sorted differences (see the module doc); 1 if empty.
pub fn bootstrap_p(sorted_diffs: &[f64]) -> f64 {
    let le = sorted_diffs.iter().filter(|d| **d <= 0.0).count();
    let ge = sorted_diffs.iter().filter(|d| **d >= 0.0).count();
    let b = sorted_diffs.len() as f64;
    (2.0 * (1.0 + le.min(ge) as f64) / (b + 1.0)).min(1.0)
}

/// Which paired test decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateTest {
    /// McNemar's exact binomial test (accuracy).
    McnemarExact,
    /// DeLong's test for correlated AUCs.
    Delong,
    /// Paired percentile bootstrap.
    PairedBootstrap,
}

/// The gate's decision, every number finite.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GateDecision {
    /// The metric judged.
    pub metric: Metric,
    /// The paired test used.
    pub test: GateTest,
    /// Candidate's metric on the test set.
    pub candidate_value: f64,
    /// Production's metric on the test set.
    pub production_value: f64,
    /// `candidate − production`.
    pub difference: f64,
    /// 95 % interval of the difference.
    pub ci: [f64; 2],
    /// The test statistic (see [`PairedTest::statistic`]).
    pub statistic: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// Significance level.
    pub alpha: f64,
    /// Items in the test set.
    pub n: usize,
    /// The candidate scores higher than production.
    pub better: bool,
    /// `better && p_value < alpha`: the candidate may be promoted.
    pub passed: bool,
    /// One sentence saying why.
    pub reason: String,
}

/// Judges `candidate` against `production` on `metric` (same items, same truth).
pub fn decide(
    metric: Metric,
    candidate: &Outcomes<'_>,
    production: &Outcomes<'_>,
    config: &GateConfig,
) -> Result<GateDecision, QualityError> {
    let n = candidate.check()?;
    check_len(n, &[("production items", production.check()?)])?;
    if let Some(index) = (0..n).find(|&i| candidate.labels[i] != production.labels[i]) {
        return Err(QualityError::Unpaired { index });
    }
    let Tested {
        test,
        candidate: cand,
        production: prod,
        ci,
        result: t,
    } = run_test(metric, candidate, production, config)?;
    let difference = cand - prod;
    let better = difference > 0.0;
    let passed = better && t.p_value < config.alpha;
    let reason = match (better, passed) {
        (true, true) => format!(
            "candidate {metric} {cand:.4} beats production {prod:.4} by {difference:+.4}, significant (p = {:.3e} < α = {})",
            t.p_value, config.alpha
        ),
        (true, false) => format!(
            "candidate {metric} {cand:.4} is above production {prod:.4} by {difference:+.4} but not significantly (p = {:.3e} ≥ α = {})",
            t.p_value, config.alpha
        ),
        (false, _) => format!(
            "candidate {metric} {cand:.4} is not above production {prod:.4} (difference {difference:+.4}, p = {:.3e})",
            t.p_value
        ),
    };
    Ok(GateDecision {
        metric,
        test,
        candidate_value: cand,
        production_value: prod,
        difference,
        ci,
        statistic: t.statistic,
        p_value: t.p_value,
        alpha: config.alpha,
        n,
        better,
        passed,
        reason,
    })
}

/// One metric's paired test: which, both values, the interval of the difference, the result.
struct Tested {
    test: GateTest,
    candidate: f64,
    production: f64,
    ci: [f64; 2],
    result: PairedTest,
}

fn run_test(
    metric: Metric,
    candidate: &Outcomes<'_>,
    production: &Outcomes<'_>,
    config: &GateConfig,
) -> Result<Tested, QualityError> {
    let n = candidate.labels.len();
    let (test, cand, prod, ci, result) = match metric {
        Metric::Accuracy => {
            let b = (0..n)
                .filter(|&i| candidate.correct[i] && !production.correct[i])
                .count() as u64;
            let c = (0..n)
                .filter(|&i| !candidate.correct[i] && production.correct[i])
                .count() as u64;
            let nf = n as f64;
            let d = (b as f64 - c as f64) / nf;
            let se = ((b + c) as f64 - (b as f64 - c as f64).powi(2) / nf)
                .max(0.0)
                .sqrt()
                / nf;
            let (cand, prod) = (
                quality::accuracy(candidate.correct),
                quality::accuracy(production.correct),
            );
            let ci = [d - Z_95 * se, d + Z_95 * se];
            (GateTest::McnemarExact, cand, prod, ci, mcnemar_exact(b, c))
        }
        Metric::RocAuc => {
            let r = delong_paired(candidate.labels, candidate.scores, production.scores)?;
            let d = r.auc_a - r.auc_b;
            let half = Z_95 * r.variance.sqrt();
            let ci = [d - half, d + half];
            (GateTest::Delong, r.auc_a, r.auc_b, ci, r.test)
        }
        Metric::F1 => {
            let cand = quality::f1_over(candidate.labels, candidate.predicted, None);
            let prod = quality::f1_over(production.labels, production.predicted, None);
            let diffs =
                paired_bootstrap(metric, candidate, production, config.resamples, config.seed);
            let ci = [percentile(&diffs, 0.025), percentile(&diffs, 0.975)];
            let t = PairedTest {
                statistic: cand - prod,
                p_value: bootstrap_p(&diffs),
            };
            (GateTest::PairedBootstrap, cand, prod, ci, t)
        }
    };
    Ok(Tested {
        test,
        candidate: cand,
        production: prod,
        ci,
        result,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn no_discordant_pairs_give_p_one() {
        assert_eq!(mcnemar_exact(0, 0).p_value, 1.0);
        assert_eq!(mcnemar_chi2(0, 0).p_value, 1.0);
    }

    #[test]
    fn binomial_cdf_small_cases() {
        // n = 3: P(X ≤ 0) = 1/8, P(X ≤ 1) = 4/8.
        assert!((binom_cdf_half(0, 3) - 0.125).abs() < 1e-13);
        assert!((binom_cdf_half(1, 3) - 0.5).abs() < 1e-13);
        assert_eq!(binom_cdf_half(3, 3), 1.0);
    }

    #[test]
    fn identical_models_do_not_pass() {
        let labels = [true, false, true, false, true];
        let scores = [0.9, 0.2, 0.4, 0.6, 0.7];
        let predicted = [true, false, false, true, true];
        let correct = [true, true, false, false, true];
        let o = Outcomes {
            labels: &labels,
            scores: &scores,
            predicted: &predicted,
            correct: &correct,
        };
        for m in [Metric::Accuracy, Metric::F1, Metric::RocAuc] {
            let d = decide(m, &o, &o, &GateConfig::default()).unwrap();
            assert!(!d.better && !d.passed, "{m}");
            assert_eq!(d.p_value, 1.0, "{m}");
            assert!(d.ci.iter().all(|x| x.is_finite()));
        }
    }

    #[test]
    fn different_truth_is_refused() {
        let s = [0.1, 0.9];
        let b = [false, true];
        let a = Outcomes {
            labels: &[false, true],
            scores: &s,
            predicted: &b,
            correct: &b,
        };
        let c = Outcomes {
            labels: &[true, true],
            ..a
        };
        assert_eq!(
            decide(Metric::Accuracy, &a, &c, &GateConfig::default()),
            Err(QualityError::Unpaired { index: 0 })
        );
    }

    #[test]
    fn metric_names_round_trip() {
        for m in [Metric::Accuracy, Metric::F1, Metric::RocAuc] {
            assert_eq!(m.as_str().parse::<Metric>().unwrap(), m);
        }
        assert!("precision".parse::<Metric>().is_err());
    }
}
