//! Deterministic data for stages 1 and 2: an LCG, synthetic numeric features of four
//! shapes, the reference profile built from them, and window summaries (null or shifted).
use crate::error::{runtime, BenchError};
use crate::harness::{median, percentile};
use argus_stats::hash::record_hash;
use argus_stats::profile::{
    FeatureKind, FeatureProfile, Profile, ProfileSettings, SegmentProfile, StreamKind, FLEET,
};
use argus_stats::summary::{Cell, SegmentSummary};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

/// 64-bit LCG (Knuth's MMIX constants) with an output mix, so the low bits are usable too.
#[derive(Debug, Clone)]
pub(super) struct Lcg(u64);

impl Lcg {
    pub(super) fn new(seed: u64) -> Self {
        let mut l = Lcg(seed ^ 0x9e37_79b9_7f4a_7c15);
        l.next_u64();
        l
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let mut z = self.0;
        z = (z ^ (z >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        z ^ (z >> 33)
    }

    /// Uniform in (0, 1).
    pub(super) fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// Standard normal (Box–Muller, one of the pair).
    pub(super) fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// One value of feature `j`: four shapes (normal, log-normal, uniform, exponential) with
/// scales varying by `j`, all continuous, so every feature is profiled as numeric.
pub(super) fn draw(rng: &mut Lcg, j: usize) -> f64 {
    let s = (j % 7 + 1) as f64;
    match j % 4 {
        0 => 10.0 * j as f64 + s * rng.normal(),
        1 => (0.5 * rng.normal()).exp() * s,
        2 => rng.uniform() * 10.0 * s,
        _ => -rng.uniform().ln() * s,
    }
}

pub(super) const BENCH_TOPIC: &str = "drift-bench";
pub(super) const CAMERAS: [&str; 4] = ["cam-0", "cam-1", "cam-2", "cam-3"];

/// A reference segment of `features` numeric features over `rows` rows, built with
/// `FeatureProfile::numeric` (what `argus drift profile --records` does per column).
pub(super) fn reference_segment(
    features: usize,
    rows: usize,
    settings: &ProfileSettings,
) -> SegmentProfile {
    let hashes: Vec<u64> = (0..rows)
        .map(|i| record_hash(settings.seed, "reference", 0, i as i64))
        .collect();
    let features = (0..features)
        .map(|j| {
            let mut rng = Lcg::new(1000 + j as u64);
            let values: Vec<Option<f64>> = (0..rows).map(|_| Some(draw(&mut rng, j))).collect();
            FeatureProfile::numeric(
                &format!("f{j:03}"),
                FeatureKind::Numeric,
                &values,
                &hashes,
                settings,
            )
        })
        .collect();
    SegmentProfile {
        n: rows as u64,
        features,
        histograms: None,
    }
}

/// A sealed records profile whose fleet segment has the first `features` of `full`.
pub(super) fn profile_of(
    full: &SegmentProfile,
    features: usize,
    settings: &ProfileSettings,
) -> Result<Profile, BenchError> {
    let seg = SegmentProfile {
        n: full.n,
        features: full.features[..features.min(full.features.len())].to_vec(),
        histograms: None,
    };
    Profile::seal(
        format!("drift-bench-{features}"),
        StreamKind::Records,
        format!("LCG, {} rows", full.n),
        settings.clone(),
        BTreeMap::from([(FLEET.to_owned(), seg)]),
        None,
        format!("argus {}", env!("CARGO_PKG_VERSION")),
    )
    .map_err(runtime)
}

/// A window's summary of `rows` fresh rows; `shift[j]` is added to feature j.
pub(super) fn window_summary(
    seg: &SegmentProfile,
    settings: &ProfileSettings,
    rows: u64,
    seed: u64,
    shift: Option<&[f64]>,
    partition: i32,
) -> SegmentSummary {
    let mut rng = Lcg::new(seed);
    let mut s = SegmentSummary::new(seg, None, settings.sample_k);
    for r in 0..rows {
        let h = record_hash(settings.seed, BENCH_TOPIC, partition, r as i64);
        s.n_records += 1;
        for j in 0..seg.features.len() {
            let mut x = draw(&mut rng, j);
            if let Some(d) = shift.and_then(|s| s.get(j)) {
                x += d;
            }
            s.add(seg, j, Cell::Num(x), h);
        }
    }
    s
}

/// Median wall seconds of `passes` runs of `f`.
pub(super) fn median_secs(passes: usize, mut f: impl FnMut()) -> f64 {
    let v: Vec<f64> = (0..passes.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    median(&v)
}

/// p50, p99 and max of a set of timings.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Quantiles {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

pub(super) fn quantiles(v: &[f64]) -> Quantiles {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    Quantiles {
        p50: percentile(&v, 0.5),
        p99: percentile(&v, 0.99),
        max: v.last().copied().unwrap_or(f64::NAN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lcg_is_deterministic_and_roughly_uniform() {
        let (mut a, mut b) = (Lcg::new(3), Lcg::new(3));
        let xs: Vec<f64> = (0..10_000).map(|_| a.uniform()).collect();
        assert!(xs
            .iter()
            .zip((0..10_000).map(|_| b.uniform()))
            .all(|(x, y)| *x == y));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
        assert!(xs.iter().all(|x| *x > 0.0 && *x < 1.0));
    }

    #[test]
    fn synthetic_features_are_numeric() {
        let settings = ProfileSettings::default();
        let seg = reference_segment(8, 2000, &settings);
        assert!(seg.features.iter().all(|f| f.numeric.is_some()));
        let w = window_summary(&seg, &settings, 100, 1, None, 0);
        assert_eq!(w.n_records, 100);
    }
}
