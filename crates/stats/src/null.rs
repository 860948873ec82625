//! Null tables for the effect sizes: how large W1_norm, PSI and JS get from sampling noise
//! alone. A window of M values drawn from the reference itself still shows W1_norm ≈ 0.1 at
//! M ≈ 100 — Evidently's fixed 0.1 threshold — so fixed materiality thresholds call small
//! windows "material" by chance. At profile time, for each M of a grid, 200 windows are
//! resampled (with replacement, a fixed LCG) from the reference and the 95th percentile of
//! each effect size is stored; evaluation then requires an effect to reach
//! `max(fixed threshold, q95_null(M))`, interpolated in log M (clamped at the grid's ends).
use crate::distance;
use crate::reference::{CategoricalReference, NumericReference};
use serde::{Deserialize, Serialize};

/// Window sizes of the tables.
pub const NULL_GRID: [u64; 8] = [30, 50, 100, 200, 500, 1000, 2000, 5000];
/// Resampled windows per size.
pub const NULL_RESAMPLES: usize = 200;
/// At most this many reference values stand in for the reference in W1 (an evenly spaced
/// subsample of the sorted sample: the same distribution, a cheaper walk).
const W1_REFERENCE_MAX: usize = 10_000;

/// 95th percentiles of the effect sizes under H0, per window size in [`NULL_GRID`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NullTable {
    /// Window sizes, [`NULL_GRID`].
    pub m: Vec<u64>,
    /// Normalised Wasserstein-1 (numeric only; empty for categorical).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wasserstein_norm: Vec<f64>,
    /// PSI (deciles for numeric, categories otherwise), ε = 1e-4.
    pub psi: Vec<f64>,
    /// Jensen–Shannon distance, base 2.
    pub js_base2: Vec<f64>,
}

/// 95th percentile of `values` (sorted in place): the ⌈0.95·n⌉-th smallest.
fn q95(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_unstable_by(f64::total_cmp);
    let i = ((0.95 * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1;
    values[i]
}

struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (((self.0 >> 32) * n as u64) >> 32) as usize
    }
    fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }
}

fn proportions(counts: &[f64]) -> Vec<f64> {
    let t: f64 = counts.iter().sum();
    counts
        .iter()
        .map(|c| if t > 0.0 { c / t } else { 0.0 })
        .collect()
}

impl NullTable {
    /// The table for a numeric reference (deterministic from `seed`). Each resampled window
    /// is compared with the reference as stored when the reference is large (> 10 000
    /// values), and with a resampled reference of the same size otherwise, so the noise of a
    /// small reference (1/N besides 1/M) is in the table too.
    pub fn numeric(r: &NumericReference, seed: u64) -> Option<Self> {
        let n = r.sample.len();
        if n < 2 {
            return None;
        }
        let small = n <= W1_REFERENCE_MAX;
        let sub: Vec<f64> = r
            .sample
            .iter()
            .step_by(n.div_ceil(W1_REFERENCE_MAX))
            .copied()
            .collect();
        let fixed_dec = proportions(&r.to_deciles(&r.bin_counts));
        let scale = r.std.max(1e-3);
        let mut rng = Lcg(seed);
        let mut t = NullTable {
            m: NULL_GRID.to_vec(),
            ..Default::default()
        };
        let (mut window, mut boot) = (Vec::new(), Vec::with_capacity(if small { n } else { 0 }));
        let (mut fine, mut boot_fine) = (
            vec![0u64; r.binning.n_bins()],
            vec![0u64; r.binning.n_bins()],
        );
        let draw = |out: &mut Vec<f64>, bins: &mut Vec<u64>, count: usize, rng: &mut Lcg| {
            out.clear();
            bins.iter_mut().for_each(|c| *c = 0);
            for _ in 0..count {
                let x = r.sample[rng.below(n)];
                out.push(x);
                bins[r.binning.bin(x)] += 1;
            }
            out.sort_unstable_by(f64::total_cmp);
        };
        for &m in &NULL_GRID {
            let (mut w1, mut psi, mut js) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..NULL_RESAMPLES {
                draw(&mut window, &mut fine, m as usize, &mut rng);
                let cur = proportions(&r.to_deciles(&fine));
                let (reference, ref_dec) = if small {
                    draw(&mut boot, &mut boot_fine, n, &mut rng);
                    (&boot, proportions(&r.to_deciles(&boot_fine)))
                } else {
                    (&sub, fixed_dec.clone())
                };
                w1.push(distance::wasserstein_sorted(&window, reference) / scale);
                psi.push(distance::psi(&ref_dec, &cur, distance::DEFAULT_PSI_EPS));
                js.push(distance::js_distance(&ref_dec, &cur, 2.0));
            }
            t.wasserstein_norm.push(q95(&mut w1));
            t.psi.push(q95(&mut psi));
            t.js_base2.push(q95(&mut js));
        }
        Some(t)
    }

    /// The table for a categorical reference: windows drawn from the reference's category
    /// proportions (a new-category column of zero is included, as in evaluation).
    pub fn categorical(r: &CategoricalReference, seed: u64) -> Option<Self> {
        let mut counts: Vec<f64> = r.counts.iter().map(|c| *c as f64).collect();
        let total: f64 = counts.iter().sum();
        if total <= 0.0 {
            return None;
        }
        counts.push(0.0);
        let p = proportions(&counts);
        let mut cumulative = Vec::with_capacity(p.len());
        let mut acc = 0.0;
        for x in &p {
            acc += x;
            cumulative.push(acc);
        }
        let mut rng = Lcg(seed);
        let mut t = NullTable {
            m: NULL_GRID.to_vec(),
            ..Default::default()
        };
        // A small reference is resampled too (its own noise), a large one used as it is.
        let n_ref = total as u64;
        let small = n_ref <= W1_REFERENCE_MAX as u64;
        let draw = |count: u64, rng: &mut Lcg| {
            let mut c = vec![0.0; p.len()];
            for _ in 0..count {
                let u = rng.uniform();
                c[cumulative.partition_point(|x| *x <= u).min(p.len() - 2)] += 1.0;
            }
            proportions(&c)
        };
        for &m in &NULL_GRID {
            let (mut psi, mut js) = (Vec::new(), Vec::new());
            for _ in 0..NULL_RESAMPLES {
                let q = draw(m, &mut rng);
                let reference = if small {
                    draw(n_ref, &mut rng)
                } else {
                    p.clone()
                };
                psi.push(distance::psi(&reference, &q, distance::DEFAULT_PSI_EPS));
                js.push(distance::js_distance(&reference, &q, 2.0));
            }
            t.psi.push(q95(&mut psi));
            t.js_base2.push(q95(&mut js));
        }
        Some(t)
    }

    /// The tabulated 95th percentile at window size `m`, linear in log m between grid
    /// points, clamped at the ends; 0 if the column is empty.
    pub fn at(&self, column: &[f64], m: u64) -> f64 {
        if column.is_empty() || column.len() != self.m.len() {
            return 0.0;
        }
        let m = (m.max(1)) as f64;
        let grid: Vec<f64> = self.m.iter().map(|x| *x as f64).collect();
        if m <= grid[0] {
            return column[0];
        }
        for i in 1..grid.len() {
            if m <= grid[i] {
                let f = (m.ln() - grid[i - 1].ln()) / (grid[i].ln() - grid[i - 1].ln());
                return column[i - 1] + f * (column[i] - column[i - 1]);
            }
        }
        column[column.len() - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{FeatureKind, FeatureProfile, ProfileSettings};

    #[test]
    fn null_quantiles_shrink_with_window_size() {
        let s = ProfileSettings::default();
        let mut rng = Lcg(3);
        let v: Vec<Option<f64>> = (0..5000)
            .map(|_| Some((0..12).map(|_| rng.uniform()).sum::<f64>() - 6.0))
            .collect();
        let h: Vec<u64> = (0..5000u64).collect();
        let f = FeatureProfile::numeric("x", FeatureKind::Numeric, &v, &h, &s);
        let t = NullTable::numeric(f.numeric.as_ref().expect("numeric"), 1).expect("table");
        assert!(t.wasserstein_norm.windows(2).all(|w| w[0] > w[1]), "{t:?}");
        // W1 of n standard-normal draws ~ 1/sqrt(n): about 0.2 at 30, below 0.05 at 2000.
        assert!(
            t.wasserstein_norm[0] > 0.15 && t.wasserstein_norm[6] < 0.06,
            "{t:?}"
        );
        assert!(t.at(&t.psi, 30) == t.psi[0] && t.at(&t.psi, 100_000) == t.psi[7]);
        let mid = t.at(&t.psi, 70);
        assert!(mid < t.psi[1] && mid > t.psi[2]);
    }
}
