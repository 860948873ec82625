//! Classification quality on a labelled test set: accuracy, F1 of the positive class and ROC
//! AUC, each with a 95 % confidence interval, pinned to scikit-learn / statsmodels by the
//! committed fixture `fixtures/gate.json` (`fixtures/make_gate_reference.py`).
//!
//! - **Accuracy**: share of items whose predicted label is the true label; CI by Wilson's
//!   score interval (= `statsmodels.stats.proportion.proportion_confint(method="wilson")`).
//! - **F1** of the positive class: `2·tp / (2·tp + fp + fn)`, 0 when that denominator is 0
//!   (= `sklearn.metrics.f1_score(zero_division=0)`); CI by percentile bootstrap over items
//!   ([`bootstrap_indices`], [`percentile`]).
//! - **ROC AUC**: the Mann–Whitney statistic with midranks for ties (= `roc_auc_score`); CI by
//!   DeLong's variance (Sun & Xu 2014 fast algorithm, [`delong`]), `auc ± z·σ` clipped to
//!   [0, 1].
//!
//! Intervals are 95 % (`z` = [`Z_95`] = `scipy.stats.norm.ppf(0.975)`). Every function returns
//! finite numbers; what has no value (AUC with one class only) is a [`QualityError`].

/// `scipy.stats.norm.ppf(0.975)`: the two-sided 95 % normal quantile.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// Bootstrap resamples used for percentile intervals unless told otherwise.
pub const DEFAULT_RESAMPLES: usize = 2000;

/// Seed of the bootstrap generator unless told otherwise.
pub const DEFAULT_SEED: u64 = 20_261_204;

/// Why a metric has no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QualityError {
    /// No items.
    #[error("the test set has no items")]
    Empty,
    /// Slices of different lengths.
    #[error("{what}: {got} values for {n} items")]
    Length {
        /// Which input.
        what: &'static str,
        /// Its length.
        got: usize,
        /// The number of items.
        n: usize,
    },
    /// ROC AUC needs both classes.
    #[error("ROC AUC needs both classes; the test set has {positives} positive and {negatives} negative items")]
    OneClass {
        /// Positive items.
        positives: usize,
        /// Negative items.
        negatives: usize,
    },
    /// A score that is NaN or infinite.
    #[error("score of item {index} is not finite")]
    NotFinite {
        /// 0-based item index.
        index: usize,
    },
    /// Two evaluations paired on different items.
    #[error("the two evaluations differ in their truth at item {index}: not the same test set")]
    Unpaired {
        /// 0-based item index.
        index: usize,
    },
}

/// A metric and its 95 % confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The metric on the test set.
    pub value: f64,
    /// Lower bound of the 95 % interval.
    pub low: f64,
    /// Upper bound of the 95 % interval.
    pub high: f64,
}

/// `splitmix64` (Steele, Lea & Flood 2014): the bootstrap's generator, chosen because a
/// few lines of Python reproduce it bit for bit.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator whose first output is `splitmix64(seed + γ)`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform index in `0..n` (`n > 0`), unbiased: outputs at or above the largest
    /// multiple of `n` that fits in 2^64 are drawn again, the rest taken modulo `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        let n = n.max(1);
        // Accept x < 2^64 − (2^64 mod n), i.e. x ≤ u64::MAX − (2^64 mod n).
        let accept_to = u64::MAX - (u64::MAX % n + 1) % n;
        loop {
            let x = self.next_u64();
            if x <= accept_to {
                return x % n;
            }
        }
    }
}

/// Fills `out` with `n` indices drawn with replacement from `0..n`: one bootstrap resample.
pub fn bootstrap_indices(rng: &mut SplitMix64, n: usize, out: &mut Vec<usize>) {
    out.clear();
    out.extend((0..n).map(|_| rng.below(n as u64) as usize));
}

/// The `q`-quantile (0 ≤ q ≤ 1) of sorted `v` by linear interpolation between order
/// statistics at `h = (len − 1)·q`: `v[⌊h⌋] + (h − ⌊h⌋)·(v[⌊h⌋+1] − v[⌊h⌋])` (numpy's default
/// method). 0 for an empty slice.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return 0.0;
    };
    let h = last as f64 * q.clamp(0.0, 1.0);
    let lo = (h.floor() as usize).min(last);
    let hi = (lo + 1).min(last);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Checks that every slice has `n` items and `n > 0`.
pub(crate) fn check_len(n: usize, parts: &[(&'static str, usize)]) -> Result<(), QualityError> {
    if n == 0 {
        return Err(QualityError::Empty);
    }
    match parts.iter().find(|(_, got)| *got != n) {
        Some((what, got)) => Err(QualityError::Length { what, got: *got, n }),
        None => Ok(()),
    }
}

/// Share of `true` in `correct`; 0 when empty.
pub fn accuracy(correct: &[bool]) -> f64 {
    if correct.is_empty() {
        return 0.0;
    }
    correct.iter().filter(|c| **c).count() as f64 / correct.len() as f64
}

/// Wilson's score interval for `k` successes in `n` trials at normal quantile `z`
/// (`(0, 1)` for `n = 0`).
pub fn wilson(k: u64, n: u64, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n = n as f64;
    let p = k as f64 / n;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Accuracy with Wilson's 95 % interval.
pub fn accuracy_estimate(correct: &[bool]) -> Result<Estimate, QualityError> {
    check_len(correct.len(), &[])?;
    let k = correct.iter().filter(|c| **c).count() as u64;
    let (low, high) = wilson(k, correct.len() as u64, Z_95);
    Ok(Estimate {
        value: accuracy(correct),
        low,
        high,
    })
}

/// F1 of the positive class from counts: `2tp / (2tp + fp + fn)`, 0 if the denominator is 0.
pub fn f1_counts(tp: u64, fp: u64, fn_: u64) -> f64 {
    let denom = 2 * tp + fp + fn_;
    if denom == 0 {
        0.0
    } else {
        (2 * tp) as f64 / denom as f64
    }
}

/// F1 of the positive class over the items `idx` (all items if `None`).
pub fn f1_over(labels: &[bool], predicted: &[bool], idx: Option<&[usize]>) -> f64 {
    let (mut tp, mut fp, mut fn_) = (0u64, 0u64, 0u64);
    let mut count = |i: usize| match (labels[i], predicted[i]) {
        (true, true) => tp += 1,
        (false, true) => fp += 1,
        (true, false) => fn_ += 1,
        (false, false) => {}
    };
    match idx {
        Some(idx) => idx.iter().for_each(|&i| count(i)),
        None => (0..labels.len()).for_each(count),
    }
    f1_counts(tp, fp, fn_)
}

/// F1 of the positive class.
pub fn f1(labels: &[bool], predicted: &[bool]) -> Result<f64, QualityError> {
    check_len(labels.len(), &[("predicted", predicted.len())])?;
    Ok(f1_over(labels, predicted, None))
}

/// F1 with a percentile-bootstrap 95 % interval: `resamples` resamples of the items drawn by
/// [`bootstrap_indices`] from `SplitMix64::new(seed)`, interval = the 2.5 % and 97.5 %
/// [`percentile`]s of the resampled F1s.
pub fn f1_estimate(
    labels: &[bool],
    predicted: &[bool],
    resamples: usize,
    seed: u64,
) -> Result<Estimate, QualityError> {
    let value = f1(labels, predicted)?;
    let mut rng = SplitMix64::new(seed);
    let mut idx = Vec::with_capacity(labels.len());
    let mut stats: Vec<f64> = (0..resamples)
        .map(|_| {
            bootstrap_indices(&mut rng, labels.len(), &mut idx);
            f1_over(labels, predicted, Some(&idx))
        })
        .collect();
    stats.sort_by(f64::total_cmp);
    Ok(Estimate {
        value,
        low: percentile(&stats, 0.025),
        high: percentile(&stats, 0.975),
    })
}

/// Midranks (1-based, ties share their mean rank) of `x`.
pub(crate) fn midranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut ranks = vec![0.0; x.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && x[order[j + 1]] == x[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = rank;
        }
        i = j + 1;
    }
    ranks
}

/// DeLong's structural components of one model's scores: the AUC and, per positive item,
/// `V10` (share of negatives it outranks, ties ½) and per negative item `V01` (share of
/// positives that outrank it), computed with midranks (Sun & Xu 2014).
#[derive(Debug, Clone, PartialEq)]
pub struct Components {
    /// The Mann–Whitney AUC.
    pub auc: f64,
    /// One value per positive item, in item order.
    pub v10: Vec<f64>,
    /// One value per negative item, in item order.
    pub v01: Vec<f64>,
}

/// DeLong components of `scores` against `labels` (both classes needed; scores finite).
pub fn delong(labels: &[bool], scores: &[f64]) -> Result<Components, QualityError> {
    check_len(labels.len(), &[("scores", scores.len())])?;
    if let Some(index) = scores.iter().position(|s| !s.is_finite()) {
        return Err(QualityError::NotFinite { index });
    }
    let pos: Vec<f64> = (0..labels.len())
        .filter(|&i| labels[i])
        .map(|i| scores[i])
        .collect();
    let neg: Vec<f64> = (0..labels.len())
        .filter(|&i| !labels[i])
        .map(|i| scores[i])
        .collect();
    let (m, n) = (pos.len(), neg.len());
    if m == 0 || n == 0 {
        return Err(QualityError::OneClass {
            positives: m,
            negatives: n,
        });
    }
    let all: Vec<f64> = pos.iter().chain(neg.iter()).copied().collect();
    let (tx, ty, tz) = (midranks(&pos), midranks(&neg), midranks(&all));
    let (mf, nf) = (m as f64, n as f64);
    let auc = tz[..m].iter().sum::<f64>() / (mf * nf) - (mf + 1.0) / (2.0 * nf);
    let v10 = (0..m).map(|i| (tz[i] - tx[i]) / nf).collect();
    let v01 = (0..n).map(|j| 1.0 - (tz[m + j] - ty[j]) / mf).collect();
    Ok(Components { auc, v10, v01 })
}

/// Sample covariance (divisor `len − 1`; 0 for fewer than two values).
pub(crate) fn covariance(a: &[f64], b: &[f64]) -> f64 {
    let k = a.len().min(b.len());
    if k < 2 {
        return 0.0;
    }
    let ma = a.iter().sum::<f64>() / k as f64;
    let mb = b.iter().sum::<f64>() / k as f64;
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - ma) * (y - mb))
        .sum::<f64>()
        / (k - 1) as f64
}

impl Components {
    /// DeLong's variance of the AUC: `var(V10)/m + var(V01)/n`.
    pub fn variance(&self) -> f64 {
        covariance(&self.v10, &self.v10) / self.v10.len() as f64
            + covariance(&self.v01, &self.v01) / self.v01.len() as f64
    }

    /// DeLong's covariance of this AUC with `other`'s on the same items.
    pub fn covariance(&self, other: &Components) -> f64 {
        covariance(&self.v10, &other.v10) / self.v10.len() as f64
            + covariance(&self.v01, &other.v01) / self.v01.len() as f64
    }
}

/// ROC AUC (Mann–Whitney, ties ½) of `scores` against `labels`.
pub fn roc_auc(labels: &[bool], scores: &[f64]) -> Result<f64, QualityError> {
    delong(labels, scores).map(|c| c.auc)
}

/// ROC AUC with DeLong's 95 % interval `auc ± z·√var`, clipped to [0, 1].
pub fn roc_auc_estimate(labels: &[bool], scores: &[f64]) -> Result<Estimate, QualityError> {
    let c = delong(labels, scores)?;
    let half = Z_95 * c.variance().max(0.0).sqrt();
    Ok(Estimate {
        value: c.auc,
        low: (c.auc - half).max(0.0),
        high: (c.auc + half).min(1.0),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn splitmix_matches_the_reference_sequence() {
        // Vigna's splitmix64.c with seed 0: first outputs.
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut r = SplitMix64::new(7);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let i = r.below(7) as usize;
            seen[i] = true;
        }
        assert!(seen.iter().all(|s| *s));
        assert_eq!(r.below(1), 0);
    }

    #[test]
    fn auc_counts_ties_as_half() {
        let labels = [true, false, true, false];
        let scores = [0.5, 0.5, 0.9, 0.1];
        // Pairs (pos, neg): (0.5,0.5)=½, (0.5,0.1)=1, (0.9,0.5)=1, (0.9,0.1)=1 → 3.5/4.
        assert!((roc_auc(&labels, &scores).unwrap() - 0.875).abs() < 1e-15);
    }

    #[test]
    fn one_class_is_an_error_not_nan() {
        assert_eq!(
            roc_auc(&[true, true], &[0.1, 0.2]),
            Err(QualityError::OneClass {
                positives: 2,
                negatives: 0
            })
        );
        assert_eq!(accuracy_estimate(&[]), Err(QualityError::Empty));
    }

    #[test]
    fn f1_without_positives_is_zero() {
        assert_eq!(f1(&[false, false], &[false, false]).unwrap(), 0.0);
    }

    #[test]
    fn wilson_is_inside_unit_interval() {
        let (lo, hi) = wilson(10, 10, Z_95);
        assert!(lo > 0.6 && (hi - 1.0).abs() < 1e-12);
        assert_eq!(wilson(0, 0, Z_95), (0.0, 1.0));
    }

    #[test]
    fn percentile_interpolates() {
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.5);
        assert_eq!(percentile(&[], 0.5), 0.0);
        assert_eq!(percentile(&[3.0], 0.975), 3.0);
    }
}
