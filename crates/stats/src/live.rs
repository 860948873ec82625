//! Live model quality from ground truth: the metrics of a window of joined items (the
//! model's positive-class score and decision, and the verified label), and the one-sided
//! tests that say a realised metric is significantly below the value recorded with the
//! model on its test set. Pinned to scikit-learn / scipy by `fixtures/live.json`
//! (`fixtures/make_live_reference.py`).
//!
//! - accuracy, precision, recall, F1 of the positive class from the confusion counts
//!   (= sklearn's `*_score(zero_division=0)`);
//! - ROC AUC (Mann–Whitney with midranks, = `roc_auc_score`; [`crate::quality::delong`]);
//! - PR AUC as average precision, `Σ (Rₖ − Rₖ₋₁)·Pₖ` over the distinct scores in decreasing
//!   order (= `average_precision_score`);
//! - expected calibration error over `bins` equal-width bins of the score,
//!   `Σ (n_b/N)·|mean(label)_b − mean(score)_b|`, bin `min(⌊s·bins⌋, bins − 1)`.
//!
//! Degradation tests, one-sided (H₁: the live metric is below the reference value `r`):
//! accuracy, precision and recall are binomial proportions over the window's items,
//! predicted positives and positives — exact `P(X ≤ k | n, r)` (= scipy
//! `binomtest(k, n, r, alternative="less")`); ROC AUC by DeLong's standard error,
//! `Φ((auc − r)/se)`. F1, PR AUC and calibration error have no test here: a floor only.
use crate::quality::{delong, QualityError};
use crate::special::{ln_gamma, ndtr};

/// One prediction joined with its label.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Joined {
    /// The model's probability of the positive label.
    pub score: f64,
    /// The model decided positive (its alert rule fired).
    pub predicted: bool,
    /// The verified truth is the positive label.
    pub label: bool,
}

/// Confusion counts of the positive class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Confusion {
    /// Predicted positive, truly positive.
    pub tp: u64,
    /// Predicted positive, truly negative.
    pub fp: u64,
    /// Predicted negative, truly positive (`fn` on the wire).
    #[serde(rename = "fn")]
    pub fn_: u64,
    /// Predicted negative, truly negative.
    pub tn: u64,
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

impl Confusion {
    /// The counts of `items`.
    pub fn of(items: &[Joined]) -> Confusion {
        let mut c = Confusion::default();
        for j in items {
            match (j.predicted, j.label) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, true) => c.fn_ += 1,
                (false, false) => c.tn += 1,
            }
        }
        c
    }

    /// Items counted.
    pub fn n(&self) -> u64 {
        self.tp + self.fp + self.fn_ + self.tn
    }

    /// Share labelled correctly (0 with no items).
    pub fn accuracy(&self) -> f64 {
        ratio(self.tp + self.tn, self.n())
    }

    /// `tp / (tp + fp)`, 0 when nothing was predicted positive.
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    /// `tp / (tp + fn)`, 0 when nothing is truly positive.
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// `2·tp / (2·tp + fp + fn)`, 0 when that denominator is 0.
    pub fn f1(&self) -> f64 {
        ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }
}

/// Average precision of `scores` against `labels` (= sklearn `average_precision_score`);
/// needs a positive item.
pub fn average_precision(labels: &[bool], scores: &[f64]) -> Result<f64, QualityError> {
    check(labels, scores)?;
    let positives = labels.iter().filter(|l| **l).count();
    if positives == 0 {
        return Err(QualityError::OneClass {
            positives,
            negatives: labels.len(),
        });
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp, mut ap, mut last_recall) = (0u64, 0u64, 0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        // Every item at this score passes the threshold together.
        let s = scores[order[i]];
        while i < order.len() && scores[order[i]] == s {
            if labels[order[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        let recall = tp as f64 / positives as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - last_recall) * precision;
        last_recall = recall;
    }
    Ok(ap)
}

/// Expected calibration error of `scores` over `bins` equal-width bins of [0, 1] (scores
/// outside are clamped into the end bins); 0 with no items.
pub fn expected_calibration_error(
    labels: &[bool],
    scores: &[f64],
    bins: usize,
) -> Result<f64, QualityError> {
    check(labels, scores)?;
    let bins = bins.max(1);
    let mut count = vec![0u64; bins];
    let mut positive = vec![0u64; bins];
    let mut score_sum = vec![0.0f64; bins];
    for (&l, &s) in labels.iter().zip(scores) {
        let b = ((s * bins as f64).floor().max(0.0) as usize).min(bins - 1);
        count[b] += 1;
        positive[b] += u64::from(l);
        score_sum[b] += s;
    }
    let n = labels.len() as f64;
    Ok((0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| {
            let c = count[b] as f64;
            c / n * (positive[b] as f64 / c - score_sum[b] / c).abs()
        })
        .sum())
}

fn check(labels: &[bool], scores: &[f64]) -> Result<(), QualityError> {
    if labels.len() != scores.len() {
        return Err(QualityError::Length {
            what: "scores",
            got: scores.len(),
            n: labels.len(),
        });
    }
    match scores.iter().position(|s| !s.is_finite()) {
        Some(index) => Err(QualityError::NotFinite { index }),
        None => Ok(()),
    }
}

/// `P(X ≤ k)` for `X ~ Binomial(n, p)`, summed exactly (terms in log space).
pub fn binom_cdf(k: u64, n: u64, p: f64) -> f64 {
    if k >= n || p <= 0.0 {
        return 1.0;
    }
    if p >= 1.0 {
        return 0.0;
    }
    let (lp, lq) = (p.ln(), (-p).ln_1p());
    let ln_n = ln_gamma(n as f64 + 1.0);
    let sum: f64 = (0..=k)
        .map(|i| {
            let (i, r) = (i as f64, (n - i) as f64);
            (ln_n - ln_gamma(i + 1.0) - ln_gamma(r + 1.0) + i * lp + r * lq).exp()
        })
        .sum();
    sum.min(1.0)
}

/// A live metric (the labels of quality reports and gauges).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LiveMetric {
    /// Share labelled correctly.
    Accuracy,
    /// Positive predictive value.
    Precision,
    /// True positive rate.
    Recall,
    /// F1 of the positive class.
    F1,
    /// Area under the ROC curve.
    RocAuc,
    /// Average precision.
    PrAuc,
}

impl LiveMetric {
    /// Every metric.
    pub const ALL: [LiveMetric; 6] = [
        Self::Accuracy,
        Self::Precision,
        Self::Recall,
        Self::F1,
        Self::RocAuc,
        Self::PrAuc,
    ];

    /// The name in reports, flags and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accuracy => "accuracy",
            Self::Precision => "precision",
            Self::Recall => "recall",
            Self::F1 => "f1",
            Self::RocAuc => "roc_auc",
            Self::PrAuc => "pr_auc",
        }
    }
}

/// A window's quality.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LiveQuality {
    /// Joined items.
    pub n: u64,
    /// Confusion counts.
    pub confusion: Confusion,
    /// Accuracy.
    pub accuracy: f64,
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1.
    pub f1: f64,
    /// ROC AUC (`None` with one class only).
    pub roc_auc: Option<f64>,
    /// DeLong's standard error of the ROC AUC.
    pub roc_auc_se: Option<f64>,
    /// Average precision (`None` without positives).
    pub pr_auc: Option<f64>,
    /// Expected calibration error.
    pub ece: f64,
}

impl LiveQuality {
    /// The metrics of `items` (ECE over `ece_bins` bins). Scores must be finite.
    pub fn of(items: &[Joined], ece_bins: usize) -> Result<LiveQuality, QualityError> {
        let labels: Vec<bool> = items.iter().map(|j| j.label).collect();
        let scores: Vec<f64> = items.iter().map(|j| j.score).collect();
        let ece = expected_calibration_error(&labels, &scores, ece_bins)?;
        let c = Confusion::of(items);
        let auc = delong(&labels, &scores).ok();
        Ok(LiveQuality {
            n: c.n(),
            confusion: c,
            accuracy: c.accuracy(),
            precision: c.precision(),
            recall: c.recall(),
            f1: c.f1(),
            roc_auc: auc.as_ref().map(|a| a.auc),
            roc_auc_se: auc.as_ref().map(|a| a.variance().max(0.0).sqrt()),
            pr_auc: average_precision(&labels, &scores).ok(),
            ece,
        })
    }

    /// The value of `metric` (`None` when it has none in this window).
    pub fn value(&self, metric: LiveMetric) -> Option<f64> {
        match metric {
            LiveMetric::Accuracy => Some(self.accuracy),
            LiveMetric::Precision => Some(self.precision),
            LiveMetric::Recall => Some(self.recall),
            LiveMetric::F1 => Some(self.f1),
            LiveMetric::RocAuc => self.roc_auc,
            LiveMetric::PrAuc => self.pr_auc,
        }
    }

    /// One-sided p-value that `metric` is below `reference` (its test-set value) at this
    /// window's size; `None` for metrics without a test (F1, PR AUC) or without the items
    /// the test needs (no predicted positives for precision, …).
    pub fn below(&self, metric: LiveMetric, reference: f64) -> Option<f64> {
        let c = &self.confusion;
        let binomial = |k: u64, n: u64| (n > 0).then(|| binom_cdf(k, n, reference));
        match metric {
            LiveMetric::Accuracy => binomial(c.tp + c.tn, c.n()),
            LiveMetric::Precision => binomial(c.tp, c.tp + c.fp),
            LiveMetric::Recall => binomial(c.tp, c.tp + c.fn_),
            LiveMetric::RocAuc => {
                let (auc, se) = (self.roc_auc?, self.roc_auc_se?);
                Some(if se > 0.0 {
                    ndtr((auc - reference) / se)
                } else if auc < reference {
                    0.0
                } else {
                    1.0
                })
            }
            LiveMetric::F1 | LiveMetric::PrAuc => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn items(v: &[(f64, bool)], threshold: f64) -> Vec<Joined> {
        v.iter()
            .map(|&(score, label)| Joined {
                score,
                predicted: score >= threshold,
                label,
            })
            .collect()
    }

    #[test]
    fn confusion_metrics_follow_sklearn_zero_division() {
        let c = Confusion::of(&items(&[(0.1, true), (0.2, false)], 0.5));
        assert_eq!((c.precision(), c.recall(), c.f1()), (0.0, 0.0, 0.0));
        assert_eq!(c.accuracy(), 0.5);
        assert_eq!(Confusion::default().accuracy(), 0.0);
    }

    #[test]
    fn average_precision_of_a_perfect_and_a_tied_ranking() {
        let labels = [true, true, false, false];
        assert_eq!(average_precision(&labels, &[0.9, 0.8, 0.2, 0.1]), Ok(1.0));
        // All tied: one threshold, precision = prevalence.
        assert_eq!(average_precision(&labels, &[0.5; 4]), Ok(0.5));
        assert!(average_precision(&[false, false], &[0.1, 0.2]).is_err());
    }

    #[test]
    fn binomial_tails_at_the_edges() {
        assert_eq!(binom_cdf(10, 10, 0.3), 1.0);
        assert_eq!(binom_cdf(3, 10, 1.0), 0.0);
        assert_eq!(binom_cdf(0, 10, 0.0), 1.0);
        // P(X ≤ 0 | 3, ½) = ⅛.
        assert!((binom_cdf(0, 3, 0.5) - 0.125).abs() < 1e-15);
    }

    #[test]
    fn tests_say_none_where_they_have_nothing_to_test() {
        let q = LiveQuality::of(&items(&[(0.1, false), (0.2, false)], 0.5), 10).unwrap();
        assert_eq!(q.roc_auc, None);
        assert_eq!(q.below(LiveMetric::RocAuc, 0.8), None);
        assert_eq!(q.below(LiveMetric::Precision, 0.8), None);
        assert_eq!(q.below(LiveMetric::F1, 0.8), None);
        assert!(q.below(LiveMetric::Accuracy, 0.8).is_some());
    }
}
