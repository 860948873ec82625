//! Model-agnostic Shapley values by permutation sampling (Štrumbelj & Kononenko, 2014) for
//! models the exact tree algorithm cannot read: each sample walks the features in a random
//! order from a background row to the explained row, switching one feature (group) at a
//! time, and credits each feature with the change in the model's output when it switched.
//!
//! - The value of a coalition is the model's output with the coalition's features from the
//!   row and the others from a background row (interventional Shapley values, as
//!   `shap.KernelExplainer`/`shap.PermutationExplainer` estimate against background data).
//! - Permutations come in antithetic pairs (an order and its reverse, on the same background
//!   row), which cancels much of the variance; background rows are taken in turn.
//! - Within one permutation the changes add up to `f(row) - f(background)`, so the estimates
//!   add up *exactly* to the output minus the base value (the mean output over the
//!   background rows used), whatever the number of samples.
//! - Each estimate comes with an error bound: [`Z_99`] standard errors of the mean over the
//!   pairs (a 99 % normal interval), so a reader knows how far to trust the digits.
//!
//! Cost: `permutations × (groups + 1)` model evaluations, made as one batch per
//! [`CHUNK`] permutations.
use rand::seq::SliceRandom;
use rand::{rngs::StdRng, SeedableRng};
use std::ops::Range;

/// Standard errors in the reported bound: the two-sided 99 % normal quantile.
pub const Z_99: f64 = 2.575_829_303_548_901;
/// Permutations evaluated per model call.
pub const CHUNK: usize = 16;

/// Shapley value estimates for one row.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// The mean output over the background rows the samples started from.
    pub base: f64,
    /// The output for the explained row.
    pub output: f64,
    /// One estimate per feature group; they add up to `output - base`.
    pub values: Vec<f64>,
    /// Per group: half-width of the 99 % interval around its estimate.
    pub bounds: Vec<f64>,
    /// Permutations sampled.
    pub permutations: usize,
}

/// Estimates the Shapley values of `x`'s feature `groups` (ranges of input columns that
/// switch together, e.g. a category's one-hot columns) against `background` rows, from
/// `permutations` sampled orders (rounded up to an even number, at least 2). `model` takes
/// rows laid end to end and returns one output per row. Deterministic for a given `seed`.
pub fn sampling_shapley<E>(
    x: &[f32],
    groups: &[Range<usize>],
    background: &[Vec<f32>],
    permutations: usize,
    seed: u64,
    mut model: impl FnMut(&[f32], usize) -> Result<Vec<f64>, E>,
) -> Result<Estimate, E> {
    let g = groups.len();
    let width = x.len();
    let pairs = permutations.div_ceil(2).max(1);
    let mut rng = StdRng::seed_from_u64(seed);
    // Per group: the sum and the sum of squares of each pair's mean contribution.
    let mut sum = vec![0.0f64; g];
    let mut sum_sq = vec![0.0f64; g];
    let mut base_sum = 0.0;
    let mut output = f64::NAN;
    let mut order: Vec<usize> = (0..g).collect();
    let mut pair = 0;
    let mut rows: Vec<f32> = Vec::new();
    let mut orders: Vec<Vec<usize>> = Vec::new();
    while pair < pairs {
        let n = (pairs - pair).clamp(1, CHUNK / 2);
        rows.clear();
        orders.clear();
        for k in 0..n {
            order.shuffle(&mut rng);
            let forward = order.clone();
            let mut reverse = order.clone();
            reverse.reverse();
            let b: &[f32] = background
                .get((pair + k) % background.len().max(1))
                .map_or(x, Vec::as_slice);
            for o in [forward, reverse] {
                let mut z = b.to_vec();
                rows.extend_from_slice(&z);
                for &gi in &o {
                    let r = groups[gi].clone();
                    z[r.clone()].copy_from_slice(&x[r]);
                    rows.extend_from_slice(&z);
                }
                orders.push(o);
            }
        }
        let out = model(&rows, rows.len() / width.max(1))?;
        let per = g + 1;
        for k in 0..n {
            let mut contrib = vec![0.0f64; g];
            for half in 0..2 {
                let o = &orders[2 * k + half];
                let chain = &out[(2 * k + half) * per..(2 * k + half + 1) * per];
                for (step, &gi) in o.iter().enumerate() {
                    contrib[gi] += (chain[step + 1] - chain[step]) / 2.0;
                }
                base_sum += chain[0] / 2.0;
                output = chain[g];
            }
            for (i, c) in contrib.iter().enumerate() {
                sum[i] += c;
                sum_sq[i] += c * c;
            }
        }
        pair += n;
    }
    let p = pairs as f64;
    let values: Vec<f64> = sum.iter().map(|s| s / p).collect();
    let bounds = sum
        .iter()
        .zip(&sum_sq)
        .map(|(s, sq)| {
            if pairs < 2 {
                return f64::INFINITY;
            }
            let mean = s / p;
            let var = ((sq - p * mean * mean) / (p - 1.0)).max(0.0);
            Z_99 * (var / p).sqrt()
        })
        .collect();
    Ok(Estimate {
        base: base_sum / p,
        output,
        values,
        bounds,
        permutations: 2 * pairs,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::needless_range_loop)]
    use super::*;
    use std::convert::Infallible;

    /// A small non-additive model over 5 inputs (interactions, a threshold, a product).
    fn f(r: &[f32]) -> f64 {
        let v: Vec<f64> = r.iter().map(|&x| f64::from(x)).collect();
        (1.5 * v[0] * v[1] + (v[2] > 0.3) as u8 as f64 - 0.7 * v[3] + v[4] * v[4] * v[0]).tanh()
    }

    fn batch(rows: &[f32], n: usize) -> Result<Vec<f64>, Infallible> {
        Ok(rows.chunks(rows.len() / n).map(f).collect())
    }

    /// Exact interventional Shapley values: every coalition, averaged over the background.
    fn brute_force(x: &[f32], groups: &[Range<usize>], background: &[Vec<f32>]) -> Vec<f64> {
        let g = groups.len();
        let value = |s: u32| -> f64 {
            background
                .iter()
                .map(|b| {
                    let mut z = b.clone();
                    for (i, r) in groups.iter().enumerate() {
                        if s & (1 << i) != 0 {
                            z[r.clone()].copy_from_slice(&x[r.clone()]);
                        }
                    }
                    f(&z)
                })
                .sum::<f64>()
                / background.len() as f64
        };
        let fact = |k: usize| (1..=k).product::<usize>() as f64;
        (0..g)
            .map(|i| {
                (0u32..1 << g)
                    .filter(|s| s & (1 << i) == 0)
                    .map(|s| {
                        let k = s.count_ones() as usize;
                        fact(k) * fact(g - k - 1) / fact(g) * (value(s | 1 << i) - value(s))
                    })
                    .sum()
            })
            .collect()
    }

    fn background() -> Vec<Vec<f32>> {
        let mut rng = StdRng::seed_from_u64(3);
        (0..8)
            .map(|_| (0..5).map(|_| rand::Rng::random::<f32>(&mut rng)).collect())
            .collect()
    }

    fn groups() -> Vec<Range<usize>> {
        (0..5).map(|i| i..i + 1).collect()
    }

    #[test]
    fn estimates_add_up_exactly_to_the_output_minus_the_base() {
        let x = [0.9f32, 0.8, 0.7, 0.1, 0.6];
        let bg = background();
        let e = sampling_shapley(&x, &groups(), &bg, 10, 1, batch).unwrap();
        assert!((e.output - f(&x)).abs() < 1e-12);
        let total: f64 = e.values.iter().sum();
        assert!((e.base + total - e.output).abs() < 1e-12);
        assert_eq!(e.permutations, 10);
    }

    #[test]
    fn estimates_agree_with_brute_force_shapley_values_within_their_bound() {
        let x = [0.9f32, 0.8, 0.7, 0.1, 0.6];
        let bg = background();
        let exact = brute_force(&x, &groups(), &bg);
        // 256 permutations: every background row starts 16 pairs.
        let e = sampling_shapley(&x, &groups(), &bg, 256, 7, batch).unwrap();
        for i in 0..5 {
            assert!(
                (e.values[i] - exact[i]).abs() <= e.bounds[i],
                "feature {i}: {} vs exact {} (bound {})",
                e.values[i],
                exact[i],
                e.bounds[i]
            );
            assert!(e.bounds[i] < 0.05, "bound {} is loose", e.bounds[i]);
        }
        // Over many seeds the 99 % bounds hold nearly always (a bound is not a promise for
        // one draw: about 1 in 100 may miss).
        let (mut inside, mut total) = (0, 0);
        for seed in 0..100 {
            let e = sampling_shapley(&x, &groups(), &bg, 64, seed, batch).unwrap();
            for i in 0..5 {
                total += 1;
                inside += usize::from((e.values[i] - exact[i]).abs() <= e.bounds[i]);
            }
        }
        assert!(
            inside * 100 >= total * 95,
            "{inside} of {total} within the bound"
        );
    }

    #[test]
    fn a_group_switches_its_columns_together() {
        // Columns 1..3 are one feature (a one-hot group): one value for the pair.
        let x = [1.0f32, 0.0, 1.0];
        let bg = vec![vec![0.0f32, 1.0, 0.0]];
        let model = |rows: &[f32], n: usize| -> Result<Vec<f64>, Infallible> {
            Ok(rows
                .chunks(rows.len() / n)
                .map(|r| f64::from(r[0]) + 2.0 * f64::from(r[2]))
                .collect())
        };
        let e = sampling_shapley(&x, &[0..1, 1..3], &bg, 4, 0, model).unwrap();
        assert!((e.values[0] - 1.0).abs() < 1e-12);
        assert!((e.values[1] - 2.0).abs() < 1e-12);
        assert!(e.bounds.iter().all(|b| *b < 1e-12));
    }
}
