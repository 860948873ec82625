//! Multiple-testing corrections across the features of a window.

/// Benjamini–Hochberg adjusted p-values (q-values) in input order: reproduces
/// `scipy.stats.false_discovery_control(p, method='bh')` (scipy 1.17.1).
///
/// With `p_(1) <= … <= p_(n)` sorted ascending, `q_(i) = min_{j >= i} p_(j) · (n / j)` (scipy
/// multiplies by `n/j` computed first), clipped to `[0, 1]`, then scattered back to the input
/// positions. As in scipy, with fewer than two p-values the input is returned unchanged.
/// Inputs are expected in `[0, 1]`; a NaN p-value is treated as 1 (scipy raises), so the result
/// is never NaN for n >= 2.
#[must_use]
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let n = p.len();
    if n <= 1 {
        return p.to_vec();
    }
    let clean: Vec<f64> = p
        .iter()
        .map(|&v| if v.is_nan() { 1.0 } else { v })
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| clean[a].total_cmp(&clean[b]));
    let nf = n as f64;
    let mut adjusted: Vec<f64> = order
        .iter()
        .enumerate()
        .map(|(rank, &idx)| clean[idx] * (nf / (rank + 1) as f64))
        .collect();
    for k in (0..n - 1).rev() {
        if adjusted[k + 1] < adjusted[k] {
            adjusted[k] = adjusted[k + 1];
        }
    }
    let mut out = vec![0.0; n];
    for (rank, &idx) in order.iter().enumerate() {
        out[idx] = adjusted[rank].clamp(0.0, 1.0);
    }
    out
}

/// Bonferroni per-test significance threshold `alpha / n` for `n` simultaneous tests
/// (`n = 0` returns `alpha`).
#[must_use]
pub fn bonferroni_threshold(alpha: f64, n: usize) -> f64 {
    if n == 0 {
        alpha
    } else {
        alpha / n as f64
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn edges() {
        assert!(benjamini_hochberg(&[]).is_empty());
        assert_eq!(benjamini_hochberg(&[0.3]), vec![0.3]);
        let q = benjamini_hochberg(&[f64::NAN, 0.01]);
        assert_eq!(q, vec![1.0, 0.02]);
        assert_eq!(bonferroni_threshold(0.05, 0), 0.05);
        assert_eq!(bonferroni_threshold(0.05, 5), 0.01);
    }

    #[test]
    fn monotone_in_sorted_order() {
        let p = [0.5, 0.01, 0.02, 0.03, 0.9, 0.04];
        let q = benjamini_hochberg(&p);
        let mut pairs: Vec<(f64, f64)> = p.iter().copied().zip(q.iter().copied()).collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        for w in pairs.windows(2) {
            assert!(w[0].1 <= w[1].1);
        }
        for (pi, qi) in p.iter().zip(&q) {
            assert!(qi >= pi && *qi <= 1.0);
        }
    }
}
