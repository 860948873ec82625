//! Two-sample Kolmogorov–Smirnov test, a port of `scipy.stats.ks_2samp` (scipy 1.17.1,
//! `alternative='two-sided'`), including its exact lattice-path algorithms and its asymptotic
//! branch (`kstwo.sf(D, round(n1·n2/(n1+n2)))`).

use crate::special::kstwo_sf;

/// How the p-value of [`ks_2samp_sorted`] is computed (scipy's `method=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KsMethod {
    /// scipy's `'auto'`: exact when `max(n1, n2) <= 10000`, asymptotic otherwise.
    #[default]
    Auto,
    /// scipy's `'exact'`: exact unless `n1/g >= (2^31 − 1)/(n2/g)` (g = gcd), in which case scipy
    /// switches to asymptotic.
    Exact,
    /// scipy's `'asymp'`.
    Asymp,
}

/// Result of [`ks_2samp_sorted`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KsResult {
    /// Two-sided statistic `D = sup_x |F_a(x) − F_b(x)|`; on the exact branch it is rounded to
    /// the lattice, `round(D·lcm(n1,n2))/lcm(n1,n2)`, exactly as scipy returns it.
    pub statistic: f64,
    /// Two-sided p-value, in `[0, 1]`.
    pub p_value: f64,
    /// Whether the p-value came from the exact path-counting computation (including the
    /// trivial `D = 0 → p = 1` exact case); `false` for the asymptotic branch, for the fallback
    /// to it, and for empty input.
    pub exact: bool,
}

/// scipy's `MAX_AUTO_N`.
const MAX_AUTO_N: usize = 10_000;

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

/// Index of the first element of ascending `l[from..]` for which `pred` is false (absolute
/// index), by galloping from `from`: O(log distance), cache-friendly when successive queries
/// move forward by small amounts.
fn gallop(l: &[f64], from: usize, pred: impl Fn(f64) -> bool) -> usize {
    let n = l.len();
    if from >= n || !pred(l[from]) {
        return from;
    }
    // Invariant: pred(l[lo]) is true.
    let mut lo = from;
    let mut step = 1;
    loop {
        let probe = lo + step;
        if probe >= n {
            break;
        }
        if pred(l[probe]) {
            lo = probe;
            step *= 2;
        } else {
            return lo + 1 + l[lo + 1..probe].partition_point(|&y| pred(y));
        }
    }
    lo + 1 + l[lo + 1..].partition_point(|&y| pred(y))
}

/// `D = max(max_x (F_a − F_b), max_x (F_b − F_a))` with the ECDF differences evaluated exactly
/// as scipy does (`searchsorted(side='right')/n1 − searchsorted(side='right')/n2` at every pooled
/// point), but only at the points where an extremum can occur: the maximum of `F_s − F_l` at the
/// distinct values of the smaller sample `s`, its minimum just before them. Between two values
/// of `s` the difference only decreases, and `i/ns − j/nl` is monotone in `j` in floating point
/// too, so the maxima and minima are the same floats scipy finds. O(n_s log(n_l/n_s)).
fn ks_statistic_sorted(a: &[f64], b: &[f64]) -> f64 {
    // diff(i, j) = i/ns - j/nl, computed as scipy computes cdf1 - cdf2 (or its exact negation).
    let (s, l) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let ns = s.len() as f64;
    let nl = l.len() as f64;
    let mut max_diff = f64::NEG_INFINITY;
    let mut min_diff = f64::INFINITY;
    let mut i = 0_usize; // elements of s consumed (count of s <= previous distinct value)
    let mut lo = 0_usize; // count of l <= previous distinct value of s
    while i < s.len() {
        let v = s[i];
        // Minimum candidate before v: all of l strictly below v, s count i.
        let below = gallop(l, lo, |y| y < v);
        let dmin = i as f64 / ns - below as f64 / nl;
        min_diff = min_diff.min(dmin);
        // Consume the tie group of v in s.
        let mut i2 = i + 1;
        while i2 < s.len() && s[i2] == v {
            i2 += 1;
        }
        let upto = gallop(l, below, |y| y <= v);
        let dmax = i2 as f64 / ns - upto as f64 / nl;
        max_diff = max_diff.max(dmax);
        i = i2;
        lo = upto;
    }
    // The last pooled point: both ECDFs are 1 (difference exactly 0).
    let last = 1.0 - l.len() as f64 / nl;
    min_diff = min_diff.min(last);
    max_diff = max_diff.max(last);
    // scipy: minS = clip(-min, 0, 1), maxS = max; D = minS if minS > maxS else maxS.
    let min_s = (-min_diff).clamp(0.0, 1.0);
    if min_s > max_diff {
        min_s
    } else {
        max_diff
    }
}

/// `_compute_prob_outside_square(n, h)`: `P(D_{n,n} >= h/n)` for equal sample sizes,
/// `2·A0·(1 − A1·(1 − A2·(1 − …)))` evaluated Horner-style as in scipy.
fn prob_outside_square(n: u64, h: u64) -> f64 {
    let mut p = 0.0_f64;
    let mut k = n / h;
    loop {
        let mut p1 = 1.0_f64;
        for j in 0..h {
            let num = n as f64 - (k * h) as f64 - j as f64;
            let den = (n + k * h + j + 1) as f64;
            p1 = num * p1 / den;
        }
        p = p1 * (1.0 - p);
        if k == 0 {
            break;
        }
        k -= 1;
    }
    2.0 * p
}

/// Number of lattice columns advanced together by [`outer_prob_inside`] (6 measured best on
/// x86-64: enough independent division chains to saturate the divider without spilling).
const WAVE: usize = 6;

/// Window of column `i` (1-based) of the lattice recursion: `(minj, maxj)` as scipy computes
/// them, `minj = min(max(⌊(ng·i − h)/mg⌋ + 1, 0), n)`, `maxj = min(⌈(ng·i + h)/mg⌉, n + 1)`.
fn column_window(i: u64, ng: f64, mg: f64, h: f64, n: i64) -> (i64, i64) {
    let ngi = ng * i as f64;
    let minj = (((ngi - h) / mg).floor() as i64 + 1).max(0).min(n);
    let maxj = (((ngi + h) / mg).ceil() as i64).min(n + 1);
    (minj, maxj)
}

/// Up to `WAVE` consecutive lattice columns advanced together. Column `c` computes its cell
/// `jj` at step `lag_c + jj`; `lag_c = lag_{c−1} + off_c + 1` guarantees the cell of column
/// `c − 1` it reads (`jj + off_c`) was finished at an earlier step.
struct Wave {
    cols: usize,
    lag: [usize; WAVE],
    len: [usize; WAVE],
    fi: [f64; WAVE],
    jf: [f64; WAVE],
    val: [f64; WAVE],
    src: [usize; WAVE],
    dst: [usize; WAVE],
}

impl Wave {
    /// The cell of every column that is active at step `s`.
    fn step(&mut self, s: usize, buf: &mut [f64]) {
        for c in 0..self.cols {
            if s >= self.lag[c] && s < self.lag[c] + self.len[c] {
                self.cell(c, buf);
            }
        }
    }

    fn cell(&mut self, c: usize, buf: &mut [f64]) {
        let v =
            (buf[self.src[c]] * self.fi[c] + self.val[c] * self.jf[c]) / (self.fi[c] + self.jf[c]);
        self.val[c] = v;
        buf[self.dst[c]] = v;
        self.src[c] += 1;
        self.dst[c] += 1;
        self.jf[c] += 1.0;
    }

    /// `count` steps during which all `WAVE` columns are active: no per-cell branching, and
    /// `WAVE` independent division chains in flight.
    fn steady(&mut self, count: usize, buf: &mut [f64]) {
        let (mut src, mut dst, mut jf, mut val, fi) =
            (self.src, self.dst, self.jf, self.val, self.fi);
        for _ in 0..count {
            for c in 0..WAVE {
                let v = (buf[src[c]] * fi[c] + val[c] * jf[c]) / (fi[c] + jf[c]);
                val[c] = v;
                buf[dst[c]] = v;
                src[c] += 1;
                dst[c] += 1;
                jf[c] += 1.0;
            }
        }
        (self.src, self.dst, self.jf, self.val) = (src, dst, jf, val);
    }
}

/// `_compute_outer_prob_inside_method(m, n, g, h)` from `scipy/stats/_stats_pythran.py`: the
/// proportion of lattice paths from (0,0) to (m,n) that leave the band `|x/m − y/n| < h/lcm`,
/// computed directly (Viehmann's recursion for `1 − p`) one lattice column `i` at a time over
/// a sliding window `j ∈ [minj, maxj)`:
/// `A_i(j) = (A_{i−1}(j)·i + A_i(j−1)·j) / (i + j)`, cells outside the band being 1.
///
/// Every cell is computed with exactly scipy's floating-point operations, so the result is
/// bit-for-bit scipy's (checked against the straight port in the tests). For speed, `WAVE`
/// consecutive columns are advanced together as a wavefront ([`Wave`]): each column's
/// recurrence is a serial chain of divisions, and interleaving independent chains hides the
/// division latency (about 3.5× faster than column by column).
fn outer_prob_inside(m: u64, n: u64, g: u64, h: u64) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let mg = (m / g) as f64;
    let ng = (n / g) as f64;
    let hf = h as f64;
    let ni = n as i64;
    // One segment per column in flight plus the previous column. A column's cells live at
    // [0, len) of its segment; position `len` holds a 1 for the cell just above the band, the
    // only out-of-window cell the next column can read (maxj grows by at most 1 per column,
    // since ng <= mg). In scipy's in-place buffer every position >= len is 1 as well.
    let stride = n as usize + 3;
    let mut buf = vec![1.0_f64; (WAVE + 1) * stride];
    let maxj0 = ((hf / mg).ceil() as i64).clamp(0, ni + 1) as usize;
    for v in buf.iter_mut().take(maxj0) {
        *v = 0.0;
    }
    let (mut prev_seg, mut prev_minj, mut prev_len) = (0_usize, 0_i64, maxj0);

    let mut i = 1_u64;
    while i <= m {
        let cols = WAVE.min(usize::try_from(m - i + 1).unwrap_or(WAVE));
        let mut wave = Wave {
            cols,
            lag: [0; WAVE],
            len: [0; WAVE],
            fi: [0.0; WAVE],
            jf: [0.0; WAVE],
            val: [0.0; WAVE],
            src: [0; WAVE],
            dst: [0; WAVE],
        };
        let (mut last_minj, mut last_seg) = (prev_minj, prev_seg);
        for c in 0..cols {
            let col = i + c as u64;
            let (minj, maxj) = column_window(col, ng, mg, hf, ni);
            if maxj <= minj {
                return 1.0;
            }
            let off = (minj - last_minj) as usize;
            let seg = (prev_seg + 1 + c) % (WAVE + 1);
            wave.len[c] = (maxj - minj) as usize;
            wave.lag[c] = if c == 0 { 0 } else { wave.lag[c - 1] + off + 1 };
            wave.fi[c] = col as f64;
            wave.jf[c] = minj as f64;
            wave.val[c] = if minj == 0 { 0.0 } else { 1.0 };
            wave.src[c] = last_seg * stride + off;
            wave.dst[c] = seg * stride;
            buf[seg * stride + wave.len[c]] = 1.0;
            (last_minj, last_seg) = (minj, seg);
        }
        let end = (0..cols)
            .map(|c| wave.lag[c] + wave.len[c])
            .max()
            .unwrap_or(0);
        let (steady_lo, steady_hi) = if cols == WAVE {
            let lo = wave.lag[WAVE - 1];
            let hi = (0..WAVE)
                .map(|c| wave.lag[c] + wave.len[c])
                .min()
                .unwrap_or(0);
            (lo, hi.max(lo))
        } else {
            (end, end)
        };
        for s in 0..steady_lo {
            wave.step(s, &mut buf);
        }
        wave.steady(steady_hi - steady_lo, &mut buf);
        for s in steady_hi..end {
            wave.step(s, &mut buf);
        }
        (prev_seg, prev_minj, prev_len) = (last_seg, last_minj, wave.len[cols - 1]);
        i += cols as u64;
    }
    buf[prev_seg * stride + prev_len - 1]
}

#[cfg(test)]
/// Straight port of `_compute_outer_prob_inside_method` (one column at a time, in place), kept
/// to check [`outer_prob_inside`] bit for bit. From `scipy/stats/_stats_pythran.py`: the
/// proportion of lattice paths from (0,0) to (m,n) that leave the band `|x/m − y/n| < h/lcm`,
/// computed directly (Viehmann's recursion for `1 − p`), one column at a time over a sliding
/// window. Bit-for-bit the same floating-point operations as scipy's compiled version.
fn outer_prob_inside_reference(m: u64, n: u64, g: u64, h: u64) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let mg = m / g;
    let ng = n / g;
    let (mg_f, h_f) = (mg as f64, h as f64);
    let n_us = usize::try_from(n).unwrap_or(usize::MAX);

    let ceil_div = |x: f64| -> i64 { (x / mg_f).ceil() as i64 };
    let mut minj: i64 = 0;
    let mut maxj: i64 = ceil_div(h_f).min(n as i64 + 1);
    let mut curlen = maxj - minj;
    // scipy allocates min(2*maxj + 2, n + 1); a longer buffer of ones is equivalent and keeps
    // every index in bounds (positions at or beyond the current window length are always 1).
    let len_a = (2 * maxj + 2).min(n as i64 + 1).max(0) as usize;
    let mut a = vec![1.0_f64; len_a.max(n_us + 2)];
    for v in a.iter_mut().take(maxj as usize) {
        *v = 0.0;
    }
    for i in 1..=m {
        let lastminj = minj;
        let lastlen = curlen;
        let ngi = (ng * i) as f64;
        minj = (((ngi - h_f) / mg_f).floor() as i64 + 1).max(0);
        minj = minj.min(n as i64);
        maxj = ceil_div(ngi + h_f).min(n as i64 + 1);
        if maxj <= minj {
            return 1.0;
        }
        let fi = i as f64;
        let mut val = if minj == 0 { 0.0 } else { 1.0 };
        let off = (minj - lastminj) as usize;
        let len = (maxj - minj) as usize;
        let base = minj as f64;
        for jj in 0..len {
            let j = base + jj as f64;
            val = (a[jj + off] * fi + val * j) / (fi + j);
            a[jj] = val;
        }
        curlen = maxj - minj;
        if lastlen > curlen {
            let start = curlen as usize;
            let end = (start + (lastlen - curlen) as usize).min(a.len());
            for v in &mut a[start..end] {
                *v = 1.0;
            }
        }
    }
    a[(maxj - minj - 1) as usize]
}

/// `_attempt_exact_2kssamp(n1, n2, g, d, 'two-sided')`: rounds `d` to the lattice and returns
/// `(success, d_rounded, p)`.
fn attempt_exact(n1: u64, n2: u64, g: u64, d: f64) -> (bool, f64, f64) {
    let lcm = (n1 / g) * n2;
    let h = (d * lcm as f64).round_ties_even();
    let h_u = h as u64;
    let d = h_u as f64 / lcm as f64;
    if h_u == 0 {
        return (true, d, 1.0);
    }
    let prob = if n1 == n2 {
        prob_outside_square(n1, h_u)
    } else {
        outer_prob_inside(n1, n2, g, h_u)
    };
    if !(0.0..=1.0).contains(&prob) {
        return (false, d, prob);
    }
    (true, d, prob)
}

/// Two-sample two-sided Kolmogorov–Smirnov test on ascending-sorted finite samples: reproduces
/// `scipy.stats.ks_2samp(a, b, alternative='two-sided', method=...)` of scipy 1.17.1.
///
/// - Statistic: `D = max(max_x(F_a − F_b), clip(max_x(F_b − F_a), 0, 1))` with the ECDFs
///   evaluated at every pooled point (`searchsorted(side='right')/n`), so ties are handled as in
///   scipy.
/// - `'auto'` picks exact when `max(n1, n2) <= 10000`; `'exact'` switches to asymptotic when
///   `n1/g >= (2^31−1)/(n2/g)`.
/// - Exact: `h = round_half_even(D·lcm)`, `D ← h/lcm`; `p = 1` if `h = 0`; for `n1 == n2`
///   `_compute_prob_outside_square(n, h)`, otherwise `_compute_outer_prob_inside_method`
///   (Hodges 1958 / Viehmann 2021); a p outside `[0,1]` falls back to asymptotic (with the
///   rounded `D`), like scipy.
/// - Asymptotic: `p = kstwo.sf(D, round_half_even(m·n/(m+n)))` ([`kstwo_sf`]).
/// - `p` is clipped to `[0, 1]`.
///
/// Cost: the statistic is O(n_small·log(n_large/n_small)) (galloping search); the exact branch
/// for `n1 != n2` is O(max(n1,n2) · min(2·D·min(n1,n2), min(n1,n2)+1)) divisions. Measured in
/// release on the shared 2-core dev machine (AMD EPYC): 1024 vs 10000 (exact) 0.8 ms at
/// D ≈ 0.02 (no drift), 1.6 ms at D ≈ 0.05, 5 ms at D ≈ 0.19, 13.5 ms at D ≈ 0.68 (worst case,
/// window saturated); 1024 vs 100000 (asymptotic) 0.02–0.07 ms.
///
/// Deviations from scipy (documented, never NaN): empty `a` or `b` (scipy raises) returns
/// `statistic 0, p 1, exact false`; `n1 = n2 = 1` with `Asymp` (scipy returns NaN because
/// `round(0.5) = 0`) returns p = 1. Inputs must be sorted ascending and finite (not checked).
#[must_use]
pub fn ks_2samp_sorted(a: &[f64], b: &[f64], method: KsMethod) -> KsResult {
    let (n1, n2) = (a.len(), b.len());
    if n1 == 0 || n2 == 0 {
        return KsResult {
            statistic: 0.0,
            p_value: 1.0,
            exact: false,
        };
    }
    let mut d = ks_statistic_sorted(a, b);
    let g = gcd(n1, n2);
    let (n1g, n2g) = (n1 / g, n2 / g);
    let mut use_exact = match method {
        KsMethod::Auto => n1.max(n2) <= MAX_AUTO_N,
        KsMethod::Exact => (n1g as f64) < f64::from(i32::MAX) / n2g as f64,
        KsMethod::Asymp => false,
    };
    let mut prob = f64::NAN;
    if use_exact {
        let (ok, d_lattice, p) = attempt_exact(n1 as u64, n2 as u64, g as u64, d);
        d = d_lattice;
        if ok {
            prob = p;
        } else {
            use_exact = false;
        }
    }
    if !use_exact {
        let (m, n) = (n1.max(n2) as f64, n1.min(n2) as f64);
        let en = m * n / (m + n);
        let n_eff = en.round_ties_even() as u64;
        prob = kstwo_sf(d, n_eff);
        if prob.is_nan() {
            prob = 1.0;
        }
    }
    KsResult {
        statistic: d,
        p_value: prob.clamp(0.0, 1.0),
        exact: use_exact,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn brute_d(a: &[f64], b: &[f64]) -> f64 {
        let mut dmax = f64::NEG_INFINITY;
        let mut dmin = f64::INFINITY;
        for &v in a.iter().chain(b) {
            let c1 = a.iter().filter(|&&x| x <= v).count() as f64 / a.len() as f64;
            let c2 = b.iter().filter(|&&x| x <= v).count() as f64 / b.len() as f64;
            dmax = dmax.max(c1 - c2);
            dmin = dmin.min(c1 - c2);
        }
        let mins = (-dmin).clamp(0.0, 1.0);
        if mins > dmax {
            mins
        } else {
            dmax
        }
    }

    fn sorted_sample(v: Vec<i16>, scale: f64) -> Vec<f64> {
        let mut out: Vec<f64> = v.into_iter().map(|x| f64::from(x) * scale).collect();
        out.sort_by(f64::total_cmp);
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
        #[test]
        fn never_nan_never_panics(
            a in proptest::collection::vec(-20_i16..20, 0..60),
            b in proptest::collection::vec(-20_i16..20, 0..60),
            scale in proptest::prelude::prop_oneof![proptest::prelude::Just(1.0), proptest::prelude::Just(0.37)],
        ) {
            let a = sorted_sample(a, scale);
            let b = sorted_sample(b, scale);
            for m in [KsMethod::Auto, KsMethod::Exact, KsMethod::Asymp] {
                let r = ks_2samp_sorted(&a, &b, m);
                proptest::prop_assert!((0.0..=1.0).contains(&r.statistic), "{r:?}");
                proptest::prop_assert!((0.0..=1.0).contains(&r.p_value), "{r:?}");
                let s = ks_2samp_sorted(&b, &a, m);
                proptest::prop_assert_eq!(r, s);
            }
        }
    }

    #[test]
    fn empty_input_does_not_panic() {
        for m in [KsMethod::Auto, KsMethod::Exact, KsMethod::Asymp] {
            let r = ks_2samp_sorted(&[], &[1.0, 2.0], m);
            assert_eq!(
                r,
                KsResult {
                    statistic: 0.0,
                    p_value: 1.0,
                    exact: false
                }
            );
            let r = ks_2samp_sorted(&[1.0], &[], m);
            assert_eq!(r.p_value, 1.0);
            let r = ks_2samp_sorted(&[], &[], m);
            assert_eq!(r.p_value, 1.0);
        }
    }

    #[test]
    fn constant_and_identical_samples() {
        let a = [3.0; 10];
        let r = ks_2samp_sorted(&a, &a, KsMethod::Auto);
        assert_eq!(r.statistic, 0.0);
        assert_eq!(r.p_value, 1.0);
        assert!(r.exact);
        let b = [3.0; 7];
        let r = ks_2samp_sorted(&a, &b, KsMethod::Asymp);
        assert_eq!(r.statistic, 0.0);
        assert_eq!(r.p_value, 1.0);
        let c = [4.0; 7];
        let r = ks_2samp_sorted(&a, &c, KsMethod::Auto);
        assert_eq!(r.statistic, 1.0);
        assert!(r.p_value > 0.0 && r.p_value < 1e-3);
    }

    #[test]
    fn one_by_one() {
        let r = ks_2samp_sorted(&[1.0], &[2.0], KsMethod::Auto);
        assert_eq!(r.statistic, 1.0);
        assert_eq!(r.p_value, 1.0);
        let r = ks_2samp_sorted(&[1.0], &[2.0], KsMethod::Asymp);
        assert_eq!(r.p_value, 1.0);
        assert!(!r.exact);
    }

    #[test]
    #[ignore = "timing only"]
    fn bench_outer_prob_inside() {
        use std::time::Instant;
        let (m, n) = (10_000_u64, 1024_u64);
        let g = gcd(m as usize, n as usize) as u64;
        let lcm = m / g * n;
        for d in [0.024, 0.05, 0.14, 0.39, 0.68] {
            let h = (lcm as f64 * d) as u64;
            let mut best = f64::INFINITY;
            let mut best_ref = f64::INFINITY;
            for _ in 0..15 {
                let t = Instant::now();
                std::hint::black_box(outer_prob_inside(m, n, g, h));
                best = best.min(t.elapsed().as_secs_f64());
                let t = Instant::now();
                std::hint::black_box(outer_prob_inside_reference(m, n, g, h));
                best_ref = best_ref.min(t.elapsed().as_secs_f64());
            }
            println!(
                "D={d}: wavefront {:.3} ms, column-by-column {:.3} ms",
                best * 1e3,
                best_ref * 1e3
            );
        }
    }

    #[test]
    fn wavefront_matches_column_by_column_bit_for_bit() {
        let mut state = 11_u64;
        let mut next = |k: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % k
        };
        for _ in 0..400 {
            let m = 1 + next(300);
            let n = 1 + next(300);
            if m == n {
                continue;
            }
            let g = gcd(m as usize, n as usize) as u64;
            let lcm = m / g * n;
            let h = 1 + next(lcm);
            let fast = outer_prob_inside(m, n, g, h);
            let slow = outer_prob_inside_reference(m, n, g, h);
            assert_eq!(
                fast.to_bits(),
                slow.to_bits(),
                "m={m} n={n} h={h}: {fast:e} vs {slow:e}"
            );
        }
        for (m, n) in [(1024_u64, 10_000_u64), (999, 1000), (7, 10_000), (2, 3)] {
            let g = gcd(m as usize, n as usize) as u64;
            let lcm = m / g * n;
            for frac in [0.001, 0.02, 0.05, 0.2, 0.7, 1.0] {
                let h = ((lcm as f64 * frac) as u64).max(1);
                let fast = outer_prob_inside(m, n, g, h);
                let slow = outer_prob_inside_reference(m, n, g, h);
                assert_eq!(fast.to_bits(), slow.to_bits(), "m={m} n={n} h={h}");
            }
        }
    }

    #[test]
    fn statistic_matches_brute_force_with_ties() {
        let mut state = 7_u64;
        let mut next = |k: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 33) % k) as f64
        };
        for trial in 0..200 {
            let n1 = 1 + (trial % 13);
            let n2 = 1 + (trial * 7 % 17);
            let mut a: Vec<f64> = (0..n1).map(|_| next(6)).collect();
            let mut b: Vec<f64> = (0..n2).map(|_| next(6)).collect();
            a.sort_by(f64::total_cmp);
            b.sort_by(f64::total_cmp);
            let want = brute_d(&a, &b);
            assert_eq!(ks_statistic_sorted(&a, &b), want, "a={a:?} b={b:?}");
            assert_eq!(ks_statistic_sorted(&b, &a), want, "swapped a={a:?} b={b:?}");
            for m in [KsMethod::Auto, KsMethod::Asymp] {
                let r = ks_2samp_sorted(&a, &b, m);
                assert!((0.0..=1.0).contains(&r.p_value));
                assert!(r.statistic.is_finite());
            }
        }
    }
}
