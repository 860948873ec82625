//! Special functions behind the two-sample tests, pinned to scipy 1.17.1.
//!
//! - [`chi2_sf`]: `scipy.stats.chi2.sf` (cephes `chdtrc`), via a regularised upper incomplete
//!   gamma computed in log space, accurate in relative terms far into the tail.
//! - [`normal_sf`]: `scipy.stats.norm.sf` (= cephes `ndtr(-z)`), a port of cephes `ndtr`/`erfc`.
//! - [`kolmogorov_sf`]: `scipy.special.kolmogorov`, a port of xsf `cephes/kolmogorov.h`.
//! - [`kstwo_sf`]: `scipy.stats.kstwo.sf` (`scipy/stats/_ksstats.py::_kolmogn`, Simard &
//!   L'Ecuyer 2011), used by `ks_2samp(method='asymp')`.
//! - [`smirnov_sf`]: `scipy.special.smirnov`, the one-sided one-sample KS survival function.
//! - [`ln_gamma`]: `scipy.special.gammaln` for positive arguments.
//!
//! All functions are pure `f64` arithmetic, never panic, and document what they return outside
//! their domain.

use std::f64::consts::PI;

/// `ln(2π)`.
const LN_2PI: f64 = 1.837_877_066_409_345_3;
/// cephes `MAXLOG` = ln(DBL_MAX).
const MAXLOG: f64 = 7.097_827_128_933_84e2;
/// cephes `MINLOG` = ln(2^-1022).
const MINLOG: f64 = -7.083_964_185_322_641e2;

// ---------------------------------------------------------------------------------------------
// Gamma function helpers
// ---------------------------------------------------------------------------------------------

/// Stirling-series coefficients B_{2k} / (2k (2k-1)), k = 1..8.
const STIRLING: [f64; 8] = [
    1.0 / 12.0,
    -1.0 / 360.0,
    1.0 / 1260.0,
    -1.0 / 1680.0,
    1.0 / 1188.0,
    -691.0 / 360_360.0,
    1.0 / 156.0,
    -3617.0 / 122_400.0,
];

/// `ln Γ(x)` for `x > 0` (= `scipy.special.gammaln` on the positive axis).
///
/// For `x >= 15` the Stirling series `(x-½)ln x − x + ½ln 2π + Σ_{k=1}^{8} B_{2k}/(2k(2k−1)x^{2k−1})`
/// (truncation error below 1e-19); smaller arguments are shifted up with
/// `ln Γ(x) = ln Γ(x+k) − ln(x(x+1)…(x+k−1))`. The absolute error is a few ulps of
/// `max(1, |ln Γ(x)|)`, which is what matters when it is used inside an exponent.
/// Returns `+inf` for `x <= 0` (the poles and the negative axis are not needed here) and NaN for
/// NaN.
#[must_use]
pub fn ln_gamma(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x <= 0.0 {
        return f64::INFINITY;
    }
    if x.is_infinite() {
        return f64::INFINITY;
    }
    let mut y = x;
    let mut prod = 1.0;
    while y < 15.0 {
        prod *= y;
        y += 1.0;
    }
    let stirling = (y - 0.5) * y.ln() - y + 0.5 * LN_2PI + stirling_series(y);
    if prod == 1.0 {
        stirling
    } else {
        stirling - prod.ln()
    }
}

/// `ln Γ(y) − ((y − ½) ln y − y + ½ ln 2π)` by the Stirling series, for `y >= 15`.
fn stirling_series(y: f64) -> f64 {
    let inv = 1.0 / y;
    let inv2 = inv * inv;
    let mut series = 0.0;
    for c in STIRLING.iter().rev() {
        series = series * inv2 + c;
    }
    series * inv
}

/// `ln(1 + t) − t`, accurate in relative terms for small `|t|`.
fn log1pmx(t: f64) -> f64 {
    if t.abs() < 0.5 {
        // -t²/2 + t³/3 - t⁴/4 + ...
        let mut term = t;
        let mut sum = 0.0;
        let mut k = 2.0_f64;
        loop {
            term *= -t;
            let add = term / k;
            sum += add;
            if add.abs() <= 1e-17 * sum.abs() || k > 200.0 {
                break;
            }
            k += 1.0;
        }
        sum
    } else {
        t.ln_1p() - t
    }
}

/// `ln(x^a e^{−x} / Γ(a))`. For `a >= 15` it is rearranged with Stirling's series as
/// `a·(ln(1+t) − t) − ½ ln(2π/a) − S(a)`, `t = (x − a)/a`, so the large terms `a ln x`, `x`
/// and `ln Γ(a)` never cancel in floating point (absolute error ~ulp of the result).
fn ln_gamma_prefactor(a: f64, x: f64) -> f64 {
    if a >= 15.0 {
        let t = (x - a) / a;
        a * log1pmx(t) - 0.5 * (2.0 * PI / a).ln() - stirling_series(a)
    } else {
        a * x.ln() - x - ln_gamma(a)
    }
}

/// Regularised upper incomplete gamma `Q(a, x) = Γ(a, x) / Γ(a)` (= `scipy.special.gammaincc`),
/// accurate in relative terms deep into the upper tail.
///
/// The prefactor `x^a e^{−x} / Γ(a)` is formed in log space
/// (`a ln x − x − ln Γ(a)`, rearranged for large `a`) and only exponentiated at the end. For `x < a + 1` the power series
/// `P = pref · Σ_k x^k / (a(a+1)…(a+k))` is summed and `Q = 1 − P` (here `Q ≳ 0.08`, so no
/// relative accuracy is lost); otherwise the Legendre continued fraction
/// `Q = pref · 1/(x+1−a− 1·(1−a)/(x+3−a− 2·(2−a)/(x+5−a− …)))` is evaluated with the modified
/// Lentz algorithm and its logarithm added to the prefactor's.
///
/// Edge cases: `x <= 0` → 1, `x = +inf` → 0, `a <= 0` or NaN input → NaN.
#[must_use]
pub fn gamma_q(a: f64, x: f64) -> f64 {
    if a.is_nan() || x.is_nan() || a <= 0.0 {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 1.0;
    }
    if x.is_infinite() {
        return 0.0;
    }
    let ln_pref = ln_gamma_prefactor(a, x);
    if x < a + 1.0 {
        // Series for P(a, x).
        let mut ap = a;
        let mut del = 1.0 / a;
        let mut sum = del;
        for _ in 0..100_000 {
            ap += 1.0;
            del *= x / ap;
            sum += del;
            if del.abs() < sum.abs() * 1e-17 {
                break;
            }
        }
        let p = (ln_pref + sum.ln()).exp();
        (1.0 - p).clamp(0.0, 1.0)
    } else {
        // Modified Lentz for the continued fraction of Q(a, x).
        const TINY: f64 = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / TINY;
        let mut d = 1.0 / b;
        let mut h = d;
        let mut i = 1.0_f64;
        loop {
            let an = -i * (i - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < TINY {
                d = TINY;
            }
            c = b + an / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < 1e-16 || i > 100_000.0 {
                break;
            }
            i += 1.0;
        }
        (ln_pref + h.ln()).exp().clamp(0.0, 1.0)
    }
}

/// Chi-square survival function `P(χ²_dof > x)` (= `scipy.stats.chi2.sf(x, dof)` =
/// `scipy.special.chdtrc(dof, x)`, scipy 1.17.1) computed as `Q(dof/2, x/2)` with [`gamma_q`].
///
/// Accurate in relative terms deep into the tail (e.g. `chi2_sf(453.4, 4) ≈ 8.0e-97` to ~1e-14
/// relative). `x <= 0` → 1, `x = +inf` → 0; `dof <= 0` or NaN → NaN (scipy also returns NaN).
#[must_use]
pub fn chi2_sf(x: f64, dof: f64) -> f64 {
    if dof.is_nan() || x.is_nan() || dof <= 0.0 {
        return f64::NAN;
    }
    gamma_q(0.5 * dof, 0.5 * x)
}

// ---------------------------------------------------------------------------------------------
// Normal distribution (port of cephes ndtr.h as shipped in xsf / scipy 1.17.1)
// ---------------------------------------------------------------------------------------------

const NDTR_P: [f64; 9] = [
    2.461969814735305e-10,
    0.5641895648310689,
    7.463210564422699,
    48.63719709856814,
    196.5208329560771,
    526.4451949954773,
    934.5285271719576,
    1027.5518868951572,
    557.5353353693994,
];
const NDTR_Q: [f64; 8] = [
    13.228195115474499,
    86.70721408859897,
    354.9377788878199,
    975.7085017432055,
    1823.9091668790973,
    2246.3376081871097,
    1656.6630919416134,
    557.5353408177277,
];
const NDTR_R: [f64; 6] = [
    0.5641895835477551,
    1.275366707599781,
    5.019050422511805,
    6.160210979930536,
    7.4097426995044895,
    2.9788666537210022,
];
const NDTR_S: [f64; 6] = [
    2.2605286322011726,
    9.396035249380015,
    12.048953980809666,
    17.08144507475659,
    9.608968090632859,
    3.369076451000815,
];
const NDTR_T: [f64; 5] = [
    9.604973739870516,
    90.02601972038427,
    2232.005345946843,
    7003.325141128051,
    55592.30130103949,
];
const NDTR_U: [f64; 5] = [
    33.56171416475031,
    521.3579497801527,
    4594.323829709801,
    22629.000061389095,
    49267.39426086359,
];

/// cephes `polevl`: `c[0] x^N + … + c[N]`.
fn polevl(x: f64, c: &[f64]) -> f64 {
    let mut ans = 0.0;
    for &ci in c {
        ans = ans * x + ci;
    }
    ans
}

/// cephes `p1evl`: like `polevl` with an implicit leading coefficient 1.
fn p1evl(x: f64, c: &[f64]) -> f64 {
    let mut ans = 1.0;
    for &ci in c {
        ans = ans * x + ci;
    }
    ans
}

/// Complementary error function, a port of cephes `erfc` (scipy 1.17.1 / xsf).
#[must_use]
pub fn erfc(a: f64) -> f64 {
    if a.is_nan() {
        return f64::NAN;
    }
    let x = a.abs();
    if x < 1.0 {
        return 1.0 - erf(a);
    }
    let z = -a * a;
    if z < -MAXLOG {
        return if a < 0.0 { 2.0 } else { 0.0 };
    }
    let z = z.exp();
    let (p, q) = if x < 8.0 {
        (polevl(x, &NDTR_P), p1evl(x, &NDTR_Q))
    } else {
        (polevl(x, &NDTR_R), p1evl(x, &NDTR_S))
    };
    let mut y = (z * p) / q;
    if a < 0.0 {
        y = 2.0 - y;
    }
    if y != 0.0 {
        return y;
    }
    if a < 0.0 {
        2.0
    } else {
        0.0
    }
}

/// Error function, a port of cephes `erf` (scipy 1.17.1 / xsf).
#[must_use]
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 0.0 {
        return -erf(-x);
    }
    if x > 1.0 {
        return 1.0 - erfc(x);
    }
    let z = x * x;
    x * polevl(z, &NDTR_T) / p1evl(z, &NDTR_U)
}

/// Standard normal CDF, a port of cephes `ndtr` (= `scipy.special.ndtr`, scipy 1.17.1):
/// `½(1 + erf(a/√2))` for `|a/√2| < 1`, else `½ erfc(|a|/√2)` (reflected for positive `a`).
#[must_use]
pub fn ndtr(a: f64) -> f64 {
    if a.is_nan() {
        return f64::NAN;
    }
    let x = a * std::f64::consts::FRAC_1_SQRT_2;
    let z = x.abs();
    if z < 1.0 {
        0.5 + 0.5 * erf(x)
    } else {
        let y = 0.5 * erfc(z);
        if x > 0.0 {
            1.0 - y
        } else {
            y
        }
    }
}

/// Standard normal survival function `P(Z > z)` (= `scipy.stats.norm.sf(z)` = `ndtr(-z)`,
/// scipy 1.17.1), erfc-based so it keeps relative accuracy in the upper tail (about 1e-13 at
/// `z = 30`, where the value is 4.9e-198; 0 beyond `z ≈ 37.5`). NaN → NaN.
#[must_use]
pub fn normal_sf(z: f64) -> f64 {
    ndtr(-z)
}

// ---------------------------------------------------------------------------------------------
// Kolmogorov limiting distribution (port of xsf cephes/kolmogorov.h `_kolmogorov`)
// ---------------------------------------------------------------------------------------------

/// Survival function of the limiting Kolmogorov distribution,
/// `K̄(x) = 2 Σ_{k≥1} (−1)^{k−1} e^{−2k²x²}` (= `scipy.special.kolmogorov(x)`, scipy 1.17.1; a
/// port of xsf `cephes::kolmogorov`, which switches at `x = 0.82` to the theta-transformed
/// series `1 − √(2π)/x Σ_{k≥1} e^{−(2k−1)²π²/(8x²)}`).
///
/// `x <= 0.0406` → 1 (as scipy); NaN → NaN.
#[must_use]
pub fn kolmogorov_sf(x: f64) -> f64 {
    const KOLMOG_CUTOVER: f64 = 0.82;
    const MIN_EXPABLE: f64 = -708.0 - 38.0;
    if x.is_nan() {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 1.0;
    }
    if x <= PI / (-MIN_EXPABLE * 8.0).sqrt() {
        return 1.0;
    }
    let sf;
    if x <= KOLMOG_CUTOVER {
        let w = (2.0 * PI).sqrt() / x;
        let logu8 = -PI * PI / (x * x);
        let u = (logu8 / 8.0).exp();
        let p = if u == 0.0 {
            let log_p = logu8 / 8.0 + w.ln();
            log_p.exp()
        } else {
            let u8 = logu8.exp();
            let u8cub = u8.powf(3.0);
            let mut p = 1.0;
            p = 1.0 + u8cub * p;
            p = 1.0 + u8 * u8 * p;
            p = 1.0 + u8 * p;
            w * u * p
        };
        sf = 1.0 - p;
    } else {
        let logv = -2.0 * x * x;
        let v = logv.exp();
        let vsq = v * v;
        let v3 = v.powf(3.0);
        let mut p = 1.0;
        let mut vpwr = v3 * v3 * v;
        p = 1.0 - vpwr * p;
        vpwr = v3 * vsq;
        p = 1.0 - vpwr * p;
        vpwr = v3;
        p = 1.0 - vpwr * p;
        sf = 2.0 * v * p;
    }
    sf.clamp(0.0, 1.0)
}

// ---------------------------------------------------------------------------------------------
// Modified Bessel function of the second kind
// ---------------------------------------------------------------------------------------------

/// Modified Bessel function of the second kind `K_ν(x)` for real `ν` and `x > 0`
/// (= `scipy.special.kv(nu, x)`; scipy uses AMOS, this uses the integral representation
/// `K_ν(x) = ∫_0^∞ e^{−x cosh t} cosh(νt) dt`).
///
/// The integrand is analytic and decays doubly exponentially, so the trapezoidal rule converges
/// geometrically; the step `h = min(0.1, 0.3/√x)` keeps the discretisation error below ~1e-37
/// relative for all `x` (the strip-width trade-off gives `exp(−2π²/(h²x))` for large `x`), and
/// the sum stops once the terms are decreasing and below 1e-18 of the total. Agrees with scipy
/// to ~1e-13 relative for `|ν| <= 2`, `1e-3 <= x <= 700` (against mpmath this is ~1e-15; AMOS
/// itself is off by up to ~7e-14, e.g. `kv(0.25, 2)`). Like AMOS, values below
/// `e^{−700.92}` ≈ 3.9e-305 (x ≈ 697.9) are flushed to 0. `x <= 0` → `+inf`; NaN → NaN.
#[must_use]
pub fn bessel_k(nu: f64, x: f64) -> f64 {
    if nu.is_nan() || x.is_nan() {
        return f64::NAN;
    }
    if x <= 0.0 {
        return f64::INFINITY;
    }
    if x.is_infinite() {
        return 0.0;
    }
    let nu = nu.abs();
    let h = (0.3 / x.sqrt()).min(0.1);
    // Scaled integrand e^{-x (cosh t - 1)} cosh(νt), with cosh t - 1 = 2 sinh²(t/2).
    let mut sum = 0.5;
    let mut k = 1.0_f64;
    while k < 1.0e6 {
        let t = k * h;
        let sh = (0.5 * t).sinh();
        let term = (-2.0 * x * sh * sh).exp() * (nu * t).cosh();
        sum += term;
        if term <= 1e-18 * sum && x * t.sinh() > nu {
            break;
        }
        k += 1.0;
    }
    let scaled = h * sum; // e^x K_ν(x) (scipy's kve)
                          // AMOS (scipy's kv) flushes results below e^{-ELIM} ≈ 3.9e-305 to zero.
    const ELIM: f64 = 2.303 * (1021.0 * std::f64::consts::LOG10_2 - 3.0);
    if scaled.ln() - x < -ELIM {
        return 0.0;
    }
    scaled * (-x).exp()
}

// ---------------------------------------------------------------------------------------------
// Smirnov one-sided distribution
// ---------------------------------------------------------------------------------------------

/// `n·x` as an unevaluated sum `hi + lo` (exact), its floor and the fractional part, as xsf's
/// `modNX` does with double-double arithmetic.
fn mod_nx(n: u64, x: f64) -> (f64, f64, u64, f64) {
    let nf = n as f64;
    let hi = nf * x;
    let lo = nf.mul_add(x, -hi);
    let mut fl = hi.floor();
    let mut alpha = (hi - fl) + lo;
    if alpha < 0.0 {
        fl -= 1.0;
        alpha += 1.0;
    }
    if alpha >= 1.0 {
        fl += 1.0;
        alpha = 0.0;
    }
    (hi, lo, fl as u64, alpha)
}

/// One-sided one-sample Kolmogorov–Smirnov survival function `P(D⁺_n ≥ x)`
/// (= `scipy.special.smirnov(n, x)`, scipy 1.17.1).
///
/// Birnbaum–Tingey / Smirnov formula
/// `P(D⁺_n ≥ x) = x Σ_{j=0}^{⌊n(1−x)⌋} C(n,j) (1 − x − j/n)^{n−j} (x + j/n)^{j−1}`,
/// every term formed in log space (exact `n·x` via an FMA split, `C(n,j)` by a running sum of
/// logs) and summed with scipy's early-termination rule. Special cases follow xsf:
/// `n = 1` → `1 − x`; `x ≤ 1/n` → `1 − x(1+x)^{n−1}`; `2nx² > 708.4` → 0;
/// `x ≥ 1 − 1/n` → `(1−x)^n`. scipy uses double-double arithmetic; this agrees with it to
/// ~1e-12 relative for `n ≤ 1e5`. Outside `0 ≤ x ≤ 1` or `n = 0` → NaN.
#[must_use]
pub fn smirnov_sf(n: u64, x: f64) -> f64 {
    if n == 0 || x.is_nan() || !(0.0..=1.0).contains(&x) {
        return f64::NAN;
    }
    if n == 1 {
        return 1.0 - x;
    }
    if x == 0.0 {
        return 1.0;
    }
    if x == 1.0 {
        return 0.0;
    }
    let nf = n as f64;
    let (nx_hi, nx_lo, nxfl, alpha) = mod_nx(n, x);
    // Special case: x <= 1/n.
    if nxfl == 0 || (nxfl == 1 && alpha == 0.0) {
        let t = ((n - 1) as f64 * x.ln_1p()).exp();
        return (1.0 - x * t).clamp(0.0, 1.0);
    }
    if -2.0 * nf * x * x < MINLOG {
        return 0.0;
    }
    if nxfl >= n - 1 {
        return (nf * (-x).ln_1p()).exp().clamp(0.0, 1.0);
    }
    // Lower sum over j = 0 .. j_max, the terms with 1 - x - j/n > 0.
    let mut j_max = n - nxfl - u64::from(alpha != 0.0);
    if alpha == 0.0 {
        j_max -= 1;
    }
    let n_terms = j_max + 1;
    let ln_x = x.ln();
    // ln C(n, j) as a compensated running sum of ln((n - k)/(k + 1)): the partial sums reach
    // ~1e4 for n ~ 1e5, so plain accumulation would lose ~1e-9 relative in the terms.
    let (mut ln_c, mut ln_c_lo) = (0.0_f64, 0.0_f64);
    let mut sum = 0.0_f64;
    let mut comp = 0.0_f64; // Neumaier compensation of the term sum
    for j in 0..n_terms {
        let jf = j as f64;
        // 1 - x - j/n = (n - j - nx) / n and x + j/n = (j + nx) / n, with nx = hi + lo exact.
        let upper = ((nf - jf) - nx_hi) - nx_lo; // n - j - nx > 0
        let lower = (jf + nx_hi) + nx_lo; // j + nx
        let r = lower / nf;
        let t2 = (nf - jf)
            * if r < 0.5 {
                (-r).ln_1p()
            } else {
                (upper / nf).ln()
            };
        let t1 = (jf - 1.0) * r.ln();
        let term = ((((ln_c + t2) + t1) + ln_x) + ln_c_lo).exp();
        let s = sum + term;
        if sum.abs() >= term.abs() {
            comp += (sum - s) + term;
        } else {
            comp += (term - s) + sum;
        }
        sum = s;
        if term != 0.0 {
            if 4.0 * (n_terms - j) as f64 * term < f64::EPSILON * (sum + comp) && j != n_terms - 1 {
                break;
            }
        } else if j > n / 2 {
            break;
        }
        let inc = ((nf - jf) / (jf + 1.0)).ln();
        let t = ln_c + inc;
        if ln_c.abs() >= inc.abs() {
            ln_c_lo += (ln_c - t) + inc;
        } else {
            ln_c_lo += (inc - t) + ln_c;
        }
        ln_c = t;
    }
    (sum + comp).clamp(0.0, 1.0)
}

// ---------------------------------------------------------------------------------------------
// Two-sided one-sample KS distribution for finite n (port of scipy/stats/_ksstats.py)
// ---------------------------------------------------------------------------------------------

const E128: i32 = 128;
/// 2^128 and 2^-128, the rescaling factors of `_ksstats.py`.
const EP128: f64 = f64::from_bits((1023 + 128) << 52);
const EM128: f64 = f64::from_bits((1023 - 128) << 52);

/// `x · 2^e` (numpy `ldexp`), exact unless the result is subnormal or overflows.
fn ldexp(mut x: f64, mut e: i32) -> f64 {
    const TWO_P500: f64 = f64::from_bits((1023 + 500) << 52);
    const TWO_M500: f64 = f64::from_bits((1023 - 500) << 52);
    while e > 500 {
        x *= TWO_P500;
        e -= 500;
    }
    while e < -500 {
        x *= TWO_M500;
        e += 500;
    }
    x * 2.0_f64.powi(e)
}

/// `ln(n! / n^n)` by Stirling, as `_log_nfactorial_div_n_pow_n`.
fn log_nfactorial_div_n_pow_n(n: f64) -> f64 {
    const COEFFS: [f64; 8] = [
        -0.029550653594771242,
        0.00641025641025641,
        -0.0019175269175269176,
        0.0008417508417508417,
        -0.0005952380952380953,
        0.0007936507936507937,
        -0.002777777777777778,
        0.08333333333333333,
    ];
    let rn = 1.0 / n;
    let t = rn / n;
    let mut poly = 0.0;
    for c in COEFFS {
        poly = poly * t + c;
    }
    n.ln() / 2.0 - n + LN_2PI / 2.0 + rn * poly
}

/// `Pr(D_n <= d)` by the Durbin matrix algorithm in the Marsaglia–Tsang–Wang form
/// (`_kolmogn_DMTW`).
fn kolmogn_dmtw_cdf(n: u64, d: f64) -> f64 {
    if d >= 1.0 {
        return 1.0;
    }
    let nf = n as f64;
    let nd = nf * d;
    if nd <= 0.5 {
        return 0.0;
    }
    let k = nd.ceil() as usize;
    let h = k as f64 - nd;
    let m = 2 * k - 1;

    let mut v: Vec<f64> = (1..=m).map(|j| 1.0 - h.powf(j as f64)).collect();
    let mut w = vec![0.0; m];
    let mut fac = 1.0;
    for j in 1..=m {
        w[j - 1] = fac;
        fac /= j as f64;
        v[j - 1] *= fac;
    }
    let tt = (2.0 * h - 1.0).max(0.0).powf(m as f64) - 2.0 * h.powf(m as f64);
    v[m - 1] = (1.0 + tt) * fac;

    let mut hm = vec![0.0; m * m]; // row-major
    for i in 1..m {
        for (r, row) in (i - 1..m).enumerate() {
            hm[row * m + i] = w[r];
        }
    }
    for row in 0..m {
        hm[row * m] = v[row];
    }
    for col in 0..m {
        hm[(m - 1) * m + col] = v[m - 1 - col];
    }

    let matmul = |a: &[f64], b: &[f64]| -> Vec<f64> {
        let mut c = vec![0.0; m * m];
        for i in 0..m {
            for l in 0..m {
                let ail = a[i * m + l];
                if ail == 0.0 {
                    continue;
                }
                let brow = &b[l * m..(l + 1) * m];
                let crow = &mut c[i * m..(i + 1) * m];
                for (cj, bj) in crow.iter_mut().zip(brow) {
                    *cj += ail * bj;
                }
            }
        }
        c
    };

    let mut hpwr: Vec<f64> = (0..m * m)
        .map(|idx| if idx / m == idx % m { 1.0 } else { 0.0 })
        .collect();
    let mut nn = n;
    let mut expnt: i32 = 0;
    let mut hexpnt: i32 = 0;
    while nn > 0 {
        if nn % 2 == 1 {
            hpwr = matmul(&hpwr, &hm);
            expnt += hexpnt;
        }
        nn /= 2;
        if nn == 0 {
            break;
        }
        hm = matmul(&hm, &hm);
        hexpnt *= 2;
        if hm[(k - 1) * m + (k - 1)].abs() > EP128 {
            for e in &mut hm {
                *e /= EP128;
            }
            hexpnt += E128;
        }
    }
    let mut p = hpwr[(k - 1) * m + (k - 1)];
    for i in 1..=n {
        p = i as f64 * p / nf;
        if p.abs() < EM128 {
            p *= EP128;
            expnt -= E128;
        }
    }
    if expnt != 0 {
        p = ldexp(p, expnt);
    }
    p.clamp(0.0, 1.0)
}

/// Row interval endpoints for the Pomeranz recursion (`_pomeranz_compute_j1j2`).
fn pomeranz_j1j2(i: i64, n: i64, ll: i64, ceilf: i64, roundf: i64) -> (i64, i64) {
    let (j1, j2) = if i == 0 {
        (-ll - ceilf - 1, ll + ceilf - 1)
    } else {
        let ip1div2 = (i + 1) / 2;
        let ip1mod2 = (i + 1) % 2;
        if ip1mod2 == 0 {
            if ip1div2 == n + 1 {
                (n - ll - ceilf - 1, n + ll + ceilf - 1)
            } else {
                (ip1div2 - 1 - ll - roundf - 1, ip1div2 + ll - 1 + ceilf - 1)
            }
        } else {
            (ip1div2 - 1 - ll - 1, ip1div2 + ll + roundf - 1)
        }
    };
    ((j1 + 2).max(0), j2.min(n))
}

/// `Pr(D_n <= x)` by the Pomeranz recursion (`_kolmogn_Pomeranz`), used for `n <= 140`.
fn kolmogn_pomeranz_cdf(n: u64, x: f64) -> f64 {
    let nf = n as f64;
    let ni = n as i64;
    let t = nf * x;
    let ll = t.floor() as i64;
    let f = t - ll as f64;
    let g = f.min(1.0 - f);
    let ceilf = i64::from(f > 0.0);
    let roundf = i64::from(f > 0.5);
    let npwrs = (2 * (ll + 1)) as usize;
    let mut gpower = vec![0.0; npwrs];
    let mut twogpower = vec![0.0; npwrs];
    let mut onem2gpower = vec![0.0; npwrs];
    gpower[0] = 1.0;
    twogpower[0] = 1.0;
    onem2gpower[0] = 1.0;
    let mut expnt: i32 = 0;
    let (g_over_n, two_g_over_n, one_minus_two_g_over_n) =
        (g / nf, 2.0 * g / nf, (1.0 - 2.0 * g) / nf);
    for m in 1..npwrs {
        let mf = m as f64;
        gpower[m] = gpower[m - 1] * g_over_n / mf;
        twogpower[m] = twogpower[m - 1] * two_g_over_n / mf;
        onem2gpower[m] = onem2gpower[m - 1] * one_minus_two_g_over_n / mf;
    }
    let mut v0 = vec![0.0; npwrs];
    let mut v1 = vec![0.0; npwrs];
    v1[0] = 1.0;
    let (mut v0s, mut v1s): (i64, i64) = (0, 0);
    let (mut j1, mut _j2) = pomeranz_j1j2(0, ni, ll, ceilf, roundf);
    let mut conv = Vec::with_capacity(2 * npwrs);
    for i in 1..(2 * ni + 2) {
        let k1 = j1;
        std::mem::swap(&mut v0, &mut v1);
        std::mem::swap(&mut v0s, &mut v1s);
        v1.fill(0.0);
        let (nj1, nj2) = pomeranz_j1j2(i, ni, ll, ceilf, roundf);
        j1 = nj1;
        let j2 = nj2;
        let pwrs = if i == 1 || i == 2 * ni + 1 {
            &gpower
        } else if i % 2 == 1 {
            &twogpower
        } else {
            &onem2gpower
        };
        let ln2 = j2 - k1 + 1;
        if ln2 > 0 {
            // a = V0[k1-V0s : k1-V0s+ln2] (clamped like a Python slice), b = pwrs[:ln2].
            let start = (k1 - v0s).clamp(0, npwrs as i64) as usize;
            let end = (k1 - v0s + ln2).clamp(0, npwrs as i64) as usize;
            let a = &v0[start..end.max(start)];
            let b = &pwrs[..(ln2 as usize).min(npwrs)];
            conv.clear();
            if !a.is_empty() && !b.is_empty() {
                conv.resize(a.len() + b.len() - 1, 0.0);
                for (ia, &av) in a.iter().enumerate() {
                    for (ib, &bv) in b.iter().enumerate() {
                        conv[ia + ib] += av * bv;
                    }
                }
            }
            let conv_start = (j1 - k1).max(0) as usize;
            let conv_len = (j2 - j1 + 1).max(0) as usize;
            for (dst, src) in v1
                .iter_mut()
                .zip(conv.iter().skip(conv_start).take(conv_len))
            {
                *dst = *src;
            }
            let vmax = v1.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if 0.0 < vmax && vmax < EM128 {
                for e in &mut v1 {
                    *e *= EP128;
                }
                expnt -= E128;
            }
            v1s = v0s + j1 - k1;
        }
    }
    let idx = (ni - v1s).clamp(0, npwrs as i64 - 1) as usize;
    let mut ans = v1[idx];
    for m in 1..=n {
        if ans.abs() > EP128 {
            ans *= EM128;
            expnt += E128;
        }
        ans *= m as f64;
    }
    if expnt != 0 {
        ans = ldexp(ans, expnt);
    }
    ans.clamp(0.0, 1.0)
}

/// Pelz–Good approximation to `Pr(D_n <= x)` (`_kolmogn_PelzGood`).
fn kolmogn_pelz_good_cdf(n: u64, x: f64) -> f64 {
    const MIN_LOG: f64 = -708.0;
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let nf = n as f64;
    let pi2 = PI.powf(2.0);
    let pi4 = PI.powf(4.0);
    let pi6 = PI.powf(6.0);
    let sqrt2pi = (2.0 * PI).sqrt();
    let sqrt3 = 3.0_f64.sqrt();

    let z = nf.sqrt() * x;
    let (zsquared, zthree, zfour, zsix) = (z.powf(2.0), z.powf(3.0), z.powf(4.0), z.powf(6.0));
    let qlog = -pi2 / 8.0 / zsquared;
    if qlog < MIN_LOG {
        return 0.0;
    }
    let q = qlog.exp();

    let k1a = -zsquared;
    let k1b = pi2 / 4.0;
    let k2a = 6.0 * zsix + 2.0 * zfour;
    let k2b = (2.0 * zfour - 5.0 * zsquared) * pi2 / 4.0;
    let k2c = pi4 * (1.0 - 2.0 * zsquared) / 16.0;
    let k3d = pi6 * (5.0 - 30.0 * zsquared) / 64.0;
    let k3c = pi4 * (-60.0 * zsquared + 212.0 * zfour) / 16.0;
    let k3b = pi2 * (135.0 * zfour - 96.0 * zsix) / 4.0;
    let k3a = -30.0 * zsix - 90.0 * z.powf(8.0);

    let mut kk = [0.0_f64; 4];
    let maxk = (16.0 * z / PI).ceil() as i64;
    for k in (1..=maxk).rev() {
        let m = (2 * k - 1) as f64;
        let (msquared, mfour, msix) = (m.powf(2.0), m.powf(4.0), m.powf(6.0));
        let qpower = q.powf((8 * k) as f64);
        let coeffs = [
            1.0,
            k1a + k1b * msquared,
            k2a + k2b * msquared + k2c * mfour,
            k3a + k3b * msquared + k3c * mfour + k3d * msix,
        ];
        for (kv, c) in kk.iter_mut().zip(coeffs) {
            *kv *= qpower;
            *kv += c;
        }
    }
    let denoms = [z, 6.0 * zfour, 72.0 * z.powf(7.0), 6480.0 * z.powf(10.0)];
    for (kv, d) in kk.iter_mut().zip(denoms) {
        *kv *= q;
        *kv *= sqrt2pi;
        *kv /= d;
    }
    let q = (-pi2 / 2.0 / zsquared).exp();
    let sqrt3z = sqrt3 * z;
    let mut k2extra = 0.0;
    let mut k3extra = 0.0;
    for k in (1..=maxk).rev() {
        let ksq = (k * k) as f64;
        let qp = q.powf(ksq);
        let kspi = PI * k as f64;
        k2extra += ksq * qp;
        k3extra += (sqrt3z + kspi) * (sqrt3z - kspi) * ksq * qp;
    }
    k2extra *= pi2 * sqrt2pi / (-36.0 * zthree);
    kk[2] += k2extra;
    k3extra *= pi2 * sqrt2pi / (216.0 * zsix);
    kk[3] += k3extra;
    for (i, kv) in kk.iter_mut().enumerate() {
        *kv /= nf.powf(i as f64 / 2.0);
    }
    kk.iter().sum()
}

/// Survival function of the two-sided one-sample Kolmogorov–Smirnov statistic for finite `n`,
/// `P(D_n > x)` (= `scipy.stats.kstwo.sf(x, n)`, scipy 1.17.1): a port of
/// `scipy/stats/_ksstats.py::_kolmogn(n, x, cdf=False)` (Simard & L'Ecuyer 2011) including the
/// `rv_continuous` support rule (`x <= 0.5/n` → 1, `x >= 1` → 0).
///
/// Branches, as scipy: Ruben–Gambino for `nx <= 1` and `nx >= n−1`; `2·smirnov(n, x)` for
/// `x >= 0.5`; for `n <= 140`: Durbin/MTW if `nx² <= 0.754693`, Pomeranz if `nx² <= 4`, else
/// `2·smirnov`; for `n > 140`: 0 if `nx² >= 370`, `2·smirnov` if `nx² >= 2.2`, else `1 − cdf` with
/// the cdf from Durbin/MTW (`n <= 100000` and `n x^{1.5} <= 1.4`) or Pelz–Good.
/// `n = 0` or NaN → NaN.
#[must_use]
pub fn kstwo_sf(x: f64, n: u64) -> f64 {
    if n == 0 || x.is_nan() {
        return f64::NAN;
    }
    let nf = n as f64;
    if x <= 0.5 / nf {
        return 1.0;
    }
    if x >= 1.0 {
        return 0.0;
    }
    let t = nf * x;
    if t <= 1.0 {
        if t <= 0.5 {
            return 1.0;
        }
        let prob = if n <= 140 {
            let mut p = 1.0;
            let inv_n = 1.0 / nf;
            for k in 1..=n {
                p *= (k as f64 * inv_n) * (2.0 * t - 1.0);
            }
            p
        } else {
            (log_nfactorial_div_n_pow_n(nf) + nf * (2.0 * t - 1.0).ln()).exp()
        };
        return (1.0 - prob).clamp(0.0, 1.0);
    }
    if t >= nf - 1.0 {
        let prob = 2.0 * (1.0 - x).powf(nf);
        return prob.clamp(0.0, 1.0);
    }
    if x >= 0.5 {
        return (2.0 * smirnov_sf(n, x)).clamp(0.0, 1.0);
    }
    let nxsquared = t * x;
    if n <= 140 {
        if nxsquared <= 0.754_693 {
            return (1.0 - kolmogn_dmtw_cdf(n, x)).clamp(0.0, 1.0);
        }
        if nxsquared <= 4.0 {
            return (1.0 - kolmogn_pomeranz_cdf(n, x)).clamp(0.0, 1.0);
        }
        return (2.0 * smirnov_sf(n, x)).clamp(0.0, 1.0);
    }
    if nxsquared >= 370.0 {
        return 0.0;
    }
    if nxsquared >= 2.2 {
        return (2.0 * smirnov_sf(n, x)).clamp(0.0, 1.0);
    }
    let cdf = if n <= 100_000 && nf * x.powf(1.5) <= 1.4 {
        kolmogn_dmtw_cdf(n, x)
    } else {
        kolmogn_pelz_good_cdf(n, x)
    };
    (1.0 - cdf).clamp(0.0, 1.0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ln_gamma_known_values() {
        // scipy.special.gammaln reference values; absolute error within a few ulps of
        // ln Γ(x + k) where the shift k brings the argument to >= 15.
        let cases: [(f64, f64); 12] = [
            (0.5, 0.5723649429247),
            (1.0, 0.0),
            (2.0, 0.0),
            (11.0, 15.104412573075516),
            (1e-5, 11.512919692895826),
            (0.1, 2.252712651734206),
            (3.7, 1.428072326665388),
            (14.9, 24.924132002217277),
            (15.0, 25.191221182738683),
            (20.5, 40.8315009745308),
            (100.0, 359.1342053695754),
            (1e5, 1051287.7089736569),
        ];
        for (x, want) in cases {
            let tol = 8.0 * f64::EPSILON * want.abs().max(25.0);
            assert!(
                (ln_gamma(x) - want).abs() <= tol,
                "ln_gamma({x}) = {}",
                ln_gamma(x)
            );
        }
        assert!(ln_gamma(0.0).is_infinite());
        assert!(ln_gamma(-1.0).is_infinite());
        assert!(ln_gamma(f64::NAN).is_nan());
    }

    #[test]
    fn chi2_sf_edges() {
        assert_eq!(chi2_sf(0.0, 3.0), 1.0);
        assert_eq!(chi2_sf(-1.0, 3.0), 1.0);
        assert_eq!(chi2_sf(f64::INFINITY, 3.0), 0.0);
        assert!(chi2_sf(1.0, 0.0).is_nan());
        // dof = 2: sf = exp(-x/2) exactly.
        for x in [0.1, 1.0, 5.0, 50.0, 500.0] {
            let want = (-x / 2.0_f64).exp();
            assert!(((chi2_sf(x, 2.0) - want) / want).abs() < 1e-13, "x={x}");
        }
    }

    #[test]
    fn normal_and_kolmogorov_edges() {
        assert_eq!(normal_sf(0.0), 0.5);
        assert_eq!(normal_sf(f64::INFINITY), 0.0);
        assert_eq!(normal_sf(f64::NEG_INFINITY), 1.0);
        assert_eq!(kolmogorov_sf(0.0), 1.0);
        assert_eq!(kolmogorov_sf(-1.0), 1.0);
        assert_eq!(kolmogorov_sf(f64::INFINITY), 0.0);
        assert!(kolmogorov_sf(f64::NAN).is_nan());
    }

    #[test]
    fn kstwo_edges() {
        assert_eq!(kstwo_sf(0.0, 10), 1.0);
        assert_eq!(kstwo_sf(1.0, 10), 0.0);
        assert!(kstwo_sf(0.5, 0).is_nan());
        for n in [1_u64, 2, 5, 50, 141, 1000, 200_000] {
            let mut prev = 1.0;
            for i in 1..100 {
                let x = f64::from(i) / 100.0;
                let p = kstwo_sf(x, n);
                assert!((0.0..=1.0).contains(&p), "n={n} x={x} p={p}");
                assert!(
                    p <= prev + 1e-9,
                    "not monotone n={n} x={x} p={p} prev={prev}"
                );
                prev = p;
            }
        }
    }

    #[test]
    fn smirnov_edges() {
        assert_eq!(smirnov_sf(1, 0.3), 0.7);
        assert_eq!(smirnov_sf(5, 0.0), 1.0);
        assert_eq!(smirnov_sf(5, 1.0), 0.0);
        assert!(smirnov_sf(5, 1.5).is_nan());
    }
}
