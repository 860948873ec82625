//! Distances between samples and between discrete distributions, pinned to scipy 1.17.1 /
//! numpy 2.2.

/// Default proportion floor for [`psi`] when a non-positive `eps` is passed.
pub const DEFAULT_PSI_EPS: f64 = 1e-4;

/// Neumaier (compensated) running sum.
#[derive(Debug, Default, Clone, Copy)]
struct CompensatedSum {
    sum: f64,
    comp: f64,
}

impl CompensatedSum {
    fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.comp += (self.sum - t) + x;
        } else {
            self.comp += (x - t) + self.sum;
        }
        self.sum = t;
    }

    fn value(self) -> f64 {
        self.sum + self.comp
    }
}

/// First-order Wasserstein (earth mover's) distance between the empirical distributions of two
/// ascending-sorted finite samples: reproduces `scipy.stats.wasserstein_distance(a, b)` (scipy
/// 1.17.1, unweighted), `W1 = ∫ |F_a(x) − F_b(x)| dx = Σ_k |F_a(z_k) − F_b(z_k)| (z_{k+1} − z_k)`
/// over the pooled sorted values `z`, with `F = count(<= z)/n` as scipy computes it.
///
/// One O(n + m) merge walk, no allocation, compensated summation (scipy sums with a BLAS dot
/// product; the two agree to ~1e-15 relative). Returns 0 if either sample is empty (scipy
/// raises). Inputs must be sorted ascending and finite (not checked).
#[must_use]
pub fn wasserstein_sorted(a: &[f64], b: &[f64]) -> f64 {
    let (n, m) = (a.len(), b.len());
    if n == 0 || m == 0 {
        return 0.0;
    }
    let (nf, mf) = (n as f64, m as f64);
    let (mut i, mut j) = (0_usize, 0_usize);
    let mut x = a[0].min(b[0]);
    let mut acc = CompensatedSum::default();
    loop {
        while i < n && a[i] == x {
            i += 1;
        }
        while j < m && b[j] == x {
            j += 1;
        }
        let next = match (a.get(i), b.get(j)) {
            (Some(&u), Some(&v)) => u.min(v),
            (Some(&u), None) => u,
            (None, Some(&v)) => v,
            (None, None) => break,
        };
        let diff = (i as f64 / nf - j as f64 / mf).abs();
        acc.add(diff * (next - x));
        x = next;
    }
    acc.value()
}

/// `scipy.special.rel_entr(x, y)` (xsf, scipy 1.17.1) for `x, y >= 0`: `x ln(x/y)`, evaluated
/// as `x log1p((x − y)/y)` when `0.5 < x/y < 2`; 0 when `x = 0`; `+inf` when `y = 0 < x`.
fn rel_entr(x: f64, y: f64) -> f64 {
    if x <= 0.0 || y <= 0.0 {
        return if x == 0.0 && y >= 0.0 {
            0.0
        } else {
            f64::INFINITY
        };
    }
    let ratio = x / y;
    if 0.5 < ratio && ratio < 2.0 {
        x * ((x - y) / y).ln_1p()
    } else if f64::MIN_POSITIVE < ratio && ratio < f64::INFINITY {
        x * ratio.ln()
    } else {
        x * (x.ln() - y.ln())
    }
}

fn clean(v: f64) -> f64 {
    if v.is_finite() && v > 0.0 {
        v
    } else {
        0.0
    }
}

/// Jensen–Shannon distance between two discrete distributions: reproduces
/// `scipy.spatial.distance.jensenshannon(p, q, base)` (scipy 1.17.1), which first normalises
/// `p` and `q` to sum to 1: with `m = (p + q)/2`,
/// `JS = √((Σ rel_entr(p, m) + Σ rel_entr(q, m)) / (2 ln base))`.
///
/// `base = e` (or any `base` that is not finite and > 1) gives natural-log units, like scipy's
/// `base=None`; `base = 2` bounds the distance by 1. Vectors of different lengths are
/// zero-padded; negative or non-finite entries count as 0. Never NaN: two all-zero vectors →
/// 0; exactly one all-zero vector → the maximum `√(ln 2 / ln base)` (disjoint supports);
/// rounding below zero is clamped to 0.
#[must_use]
pub fn js_distance(p: &[f64], q: &[f64], base: f64) -> f64 {
    let k = p.len().max(q.len());
    let get = |v: &[f64], i: usize| clean(v.get(i).copied().unwrap_or(0.0));
    let sp: f64 = (0..k).map(|i| get(p, i)).sum();
    let sq: f64 = (0..k).map(|i| get(q, i)).sum();
    let ln_base = if base.is_finite() && base > 1.0 {
        base.ln()
    } else {
        1.0
    };
    if sp == 0.0 && sq == 0.0 {
        return 0.0;
    }
    if sp == 0.0 || sq == 0.0 {
        return (std::f64::consts::LN_2 / ln_base).sqrt();
    }
    let mut left = 0.0;
    let mut right = 0.0;
    for i in 0..k {
        let pi = get(p, i) / sp;
        let qi = get(q, i) / sq;
        let mi = (pi + qi) / 2.0;
        left += rel_entr(pi, mi);
        right += rel_entr(qi, mi);
    }
    let mut js = left + right;
    js /= ln_base;
    (js / 2.0).max(0.0).sqrt()
}

/// Population stability index between two proportion vectors (not renormalised), each
/// proportion floored at `eps`: `PSI = Σ_i (c_i − r_i) · ln(c_i / r_i)` with
/// `r_i = max(reference_i, eps)`, `c_i = max(current_i, eps)`, summed in index order.
///
/// Vectors of different lengths are zero-padded (the missing proportions become `eps`); a
/// non-positive or NaN `eps` is replaced by [`DEFAULT_PSI_EPS`]. Never NaN for finite input.
#[must_use]
pub fn psi(reference: &[f64], current: &[f64], eps: f64) -> f64 {
    let eps = if eps > 0.0 { eps } else { DEFAULT_PSI_EPS };
    let k = reference.len().max(current.len());
    let mut total = 0.0;
    for i in 0..k {
        let r = reference.get(i).copied().unwrap_or(0.0).max(eps);
        let c = current.get(i).copied().unwrap_or(0.0).max(eps);
        total += (c - r) * (c / r).ln();
    }
    total
}

/// Total variation distance between two probability vectors (not renormalised):
/// `TV = ½ Σ_i |p_i − q_i|`, zero-padding the shorter vector.
#[must_use]
pub fn total_variation(p: &[f64], q: &[f64]) -> f64 {
    let k = p.len().max(q.len());
    let mut total = 0.0;
    for i in 0..k {
        let a = p.get(i).copied().unwrap_or(0.0);
        let b = q.get(i).copied().unwrap_or(0.0);
        total += (a - b).abs();
    }
    0.5 * total
}

/// Quantile of an ascending-sorted finite sample with numpy's default `'linear'` method
/// (Hyndman & Fan type 7): reproduces `numpy.quantile(x, q)` (numpy 2.2) bit for bit.
///
/// `v = (n − 1)·q`, `k = ⌊v⌋`, `γ = v − k`; with `a = x[k]`, `b = x[k+1]`, `d = b − a`:
/// `a + d·γ` if `γ < 0.5`, else `b − d·(1 − γ)` (numpy's `_lerp`); `v >= n − 1` gives the
/// maximum. `q` is clamped to `[0, 1]`; an empty sample returns 0 (numpy raises); NaN `q` → NaN.
#[must_use]
pub fn quantile_linear(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return 0.0;
    }
    if q.is_nan() {
        return f64::NAN;
    }
    let q = q.clamp(0.0, 1.0);
    let v = (n - 1) as f64 * q;
    if v >= (n - 1) as f64 {
        return sorted[n - 1];
    }
    let k = v.floor();
    let gamma = v - k;
    let k = k as usize;
    let a = sorted[k];
    let b = sorted[k + 1];
    let d = b - a;
    if gamma >= 0.5 {
        b - d * (1.0 - gamma)
    } else {
        a + d * gamma
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
        #[test]
        fn never_nan_never_panics(
            a in proptest::collection::vec(-50_i16..50, 0..50),
            b in proptest::collection::vec(-50_i16..50, 0..50),
        ) {
            let p: Vec<f64> = a.iter().map(|&x| f64::from(x.max(0))).collect();
            let q: Vec<f64> = b.iter().map(|&x| f64::from(x.max(0))).collect();
            let mut sa: Vec<f64> = a.iter().map(|&x| f64::from(x)).collect();
            let mut sb: Vec<f64> = b.iter().map(|&x| f64::from(x)).collect();
            sa.sort_by(f64::total_cmp);
            sb.sort_by(f64::total_cmp);
            let w = wasserstein_sorted(&sa, &sb);
            proptest::prop_assert!(w.is_finite() && w >= 0.0);
            proptest::prop_assert!((w - wasserstein_sorted(&sb, &sa)).abs() <= 1e-12 * (1.0 + w));
            for base in [2.0, std::f64::consts::E] {
                let js = js_distance(&p, &q, base);
                proptest::prop_assert!(js.is_finite() && js >= 0.0, "{js}");
                proptest::prop_assert!(js <= (std::f64::consts::LN_2 / base.ln()).sqrt() + 1e-12);
            }
            proptest::prop_assert!(psi(&p, &q, 1e-4).is_finite());
            proptest::prop_assert!(total_variation(&p, &q).is_finite());
            if !sa.is_empty() {
                for qq in [0.0, 0.1, 0.5, 0.9, 1.0] {
                    let v = quantile_linear(&sa, qq);
                    proptest::prop_assert!(v >= sa[0] && v <= sa[sa.len() - 1]);
                }
            }
        }
    }

    #[test]
    fn wasserstein_edges() {
        assert_eq!(wasserstein_sorted(&[], &[1.0]), 0.0);
        assert_eq!(wasserstein_sorted(&[1.0], &[]), 0.0);
        assert_eq!(wasserstein_sorted(&[2.0, 2.0], &[2.0]), 0.0);
        assert_eq!(wasserstein_sorted(&[0.0], &[3.0]), 3.0);
        assert_eq!(wasserstein_sorted(&[0.0, 1.0, 3.0], &[5.0, 6.0, 8.0]), 5.0);
        assert_eq!(wasserstein_sorted(&[1.0, 1.0, 1.0], &[1.0, 2.0]), 0.5);
    }

    #[test]
    fn js_edges() {
        assert_eq!(js_distance(&[], &[], 2.0), 0.0);
        assert_eq!(js_distance(&[0.0, 0.0], &[0.0, 0.0], 2.0), 0.0);
        assert!((js_distance(&[0.0, 0.0], &[1.0, 0.0], 2.0) - 1.0).abs() < 1e-15);
        assert!((js_distance(&[1.0, 0.0], &[0.0, 1.0], 2.0) - 1.0).abs() < 1e-15);
        let e = js_distance(&[1.0, 0.0], &[0.0, 1.0], std::f64::consts::E);
        assert!((e - std::f64::consts::LN_2.sqrt()).abs() < 1e-15);
        assert_eq!(js_distance(&[1.0, 2.0], &[2.0, 4.0], 2.0), 0.0);
        assert!(!js_distance(&[1.0, f64::NAN, -1.0], &[1.0, 2.0], 2.0).is_nan());
        // Padding.
        assert_eq!(
            js_distance(&[1.0, 2.0], &[1.0, 2.0, 0.0], 2.0),
            js_distance(&[1.0, 2.0, 0.0], &[1.0, 2.0, 0.0], 2.0)
        );
    }

    #[test]
    fn psi_and_tv_edges() {
        assert_eq!(psi(&[], &[], 1e-4), 0.0);
        assert_eq!(psi(&[0.5, 0.5], &[0.5, 0.5], 1e-4), 0.0);
        assert!(psi(&[1.0, 0.0], &[0.0, 1.0], 1e-4).is_finite());
        assert!(psi(&[1.0, 0.0], &[0.0, 1.0], 0.0).is_finite());
        assert!(psi(&[1.0, 0.0], &[0.0, 1.0], f64::NAN).is_finite());
        assert_eq!(psi(&[0.5, 0.5], &[0.5, 0.5, 0.0], 1e-4), 0.0);
        assert_eq!(total_variation(&[1.0, 0.0], &[0.0, 1.0]), 1.0);
        assert_eq!(total_variation(&[0.5, 0.5], &[0.5]), 0.25);
        assert_eq!(total_variation(&[], &[]), 0.0);
    }

    #[test]
    fn quantile_edges() {
        assert_eq!(quantile_linear(&[], 0.5), 0.0);
        assert_eq!(quantile_linear(&[4.0], 0.3), 4.0);
        assert_eq!(quantile_linear(&[1.0, 2.0], 0.5), 1.5);
        assert_eq!(quantile_linear(&[1.0, 2.0], -1.0), 1.0);
        assert_eq!(quantile_linear(&[1.0, 2.0], 2.0), 2.0);
        assert_eq!(quantile_linear(&[1.0, 2.0, 3.0, 4.0], 1.0 / 3.0), 2.0);
        assert!(quantile_linear(&[1.0], f64::NAN).is_nan());
    }
}
