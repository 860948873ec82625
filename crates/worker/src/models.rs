//! The versions a worker serves, swappable while it runs: production, an optional canary
//! (a share of the keys) and an optional shadow (scores a copy of every input; its
//! predictions go to their own topic and never raise alerts).
//!
//! [`Models`] holds the current [`Serving`] set. Every input takes the set once, when the
//! worker takes it from the consumer (in offset order, so per partition the switch is a
//! single point), and is routed by its key ([`Serving::route`]); it is prepared, inferred and
//! rendered by that version's [`Pipeline`] even if a swap happens meanwhile, so an input is
//! scored exactly once and its prediction names the version that made it. The inference
//! threads close a batch where the model changes, so a swap takes effect between batches.
//!
//! Canary routing hashes the key (xxh3, fixed seed): a camera or customer stays on one
//! version for the whole canary, and the same share keeps the same keys when the canary's
//! version changes. Inputs without a key go to production.
use crate::pipeline::Pipeline;
use argus_model::Classification;
use std::sync::{Arc, RwLock};
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The seed of the canary hash. Changing it moves keys between versions.
const CANARY_SEED: u64 = 0x6172_6775_7363_616e;

/// Why an input went to a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The production version.
    Production,
    /// The canary version (the key's hash fell in the canary share).
    Canary,
    /// The shadow version (a copy of the input; outputs to the shadow topic only).
    Shadow,
}

impl Role {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Production => "production",
            Role::Canary => "canary",
            Role::Shadow => "shadow",
        }
    }
}

/// A canary: `pipeline` serves the keys whose hash falls in `share` (0 < share < 1).
#[derive(Debug, Clone)]
pub struct Canary {
    /// The canary version.
    pub pipeline: Arc<Pipeline>,
    /// Share of the key space it serves.
    pub share: f64,
}

/// The versions serving at one moment.
#[derive(Debug, Clone)]
pub struct Serving {
    /// Serves every input not in the canary.
    pub production: Arc<Pipeline>,
    /// Serves a share of the keys.
    pub canary: Option<Canary>,
    /// Scores a copy of every input.
    pub shadow: Option<Arc<Pipeline>>,
    /// The registry revision this set comes from (0: the bundle given at start).
    pub revision: u64,
}

/// Where one input goes.
#[derive(Debug, Clone)]
pub struct Route {
    /// The version whose outputs (prediction, alerts) the input publishes.
    pub primary: Arc<Pipeline>,
    /// Production or canary.
    pub role: Role,
    /// A version that also scores the input, to the shadow topic.
    pub shadow: Option<Arc<Pipeline>>,
}

impl Serving {
    /// Production only.
    pub fn production(pipeline: Arc<Pipeline>) -> Self {
        Serving {
            production: pipeline,
            canary: None,
            shadow: None,
            revision: 0,
        }
    }

    /// The version for an input with `key`.
    pub fn route(&self, key: Option<&[u8]>) -> Route {
        let (primary, role) = match (&self.canary, key) {
            (Some(c), Some(k)) if in_canary(k, c.share) => (c.pipeline.clone(), Role::Canary),
            _ => (self.production.clone(), Role::Production),
        };
        Route {
            primary,
            role,
            shadow: self.shadow.clone(),
        }
    }

    /// Every pipeline of the set, production first.
    pub fn pipelines(&self) -> impl Iterator<Item = (Role, &Arc<Pipeline>)> {
        std::iter::once((Role::Production, &self.production))
            .chain(self.canary.iter().map(|c| (Role::Canary, &c.pipeline)))
            .chain(self.shadow.iter().map(|s| (Role::Shadow, s)))
    }
}

/// Whether `key` falls in a canary serving `share` of the keys: its hash, as a fraction of
/// the 64-bit range, is below `share`.
pub fn in_canary(key: &[u8], share: f64) -> bool {
    let h = xxh3_64_with_seed(key, CANARY_SEED);
    // 53 high bits: exact in an f64, uniform in [0, 1).
    ((h >> 11) as f64 / (1u64 << 53) as f64) < share
}

/// The current [`Serving`] set, replaced whole by [`Models::swap`].
#[derive(Debug)]
pub struct Models {
    current: RwLock<Arc<Serving>>,
}

impl Models {
    /// Starts with `serving`.
    pub fn new(serving: Serving) -> Arc<Self> {
        Arc::new(Models {
            current: RwLock::new(Arc::new(serving)),
        })
    }

    /// The set serving now; inputs keep the set they took.
    pub fn current(&self) -> Arc<Serving> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the set; inputs that took the old one finish on it. Returns the old set.
    pub fn swap(&self, serving: Serving) -> Arc<Serving> {
        let new = Arc::new(serving);
        match self.current.write() {
            Ok(mut g) => std::mem::replace(&mut *g, new),
            Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), new),
        }
    }
}

/// How a shadow version's answer compares with the primary's on one input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// Both put the same label first.
    pub agree: bool,
    /// |primary − shadow| probability of the primary's top label (`None` if the shadow
    /// has no such label).
    pub score_difference: Option<f64>,
}

/// Compares two classifications by label name (versions may order labels differently).
pub fn compare(
    primary: &Classification,
    primary_labels: &[String],
    shadow: &Classification,
    shadow_labels: &[String],
) -> Comparison {
    let top = |c: &Classification, labels: &[String]| {
        c.ranking.first().and_then(|&i| labels.get(i)).cloned()
    };
    let p_top = top(primary, primary_labels);
    let agree = p_top.is_some() && p_top == top(shadow, shadow_labels);
    let score_difference = p_top.as_ref().and_then(|label| {
        let p = primary_labels.iter().position(|l| l == label)?;
        let s = shadow_labels.iter().position(|l| l == label)?;
        Some(f64::from(
            (primary.probability(p) - shadow.probability(s)).abs(),
        ))
    });
    Comparison {
        agree,
        score_difference,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn canary_share_of_keys_is_within_binomial_bounds() {
        let n = 20_000u32;
        for share in [0.05, 0.2, 0.5] {
            let k = (0..n)
                .filter(|i| in_canary(format!("cam{i}").as_bytes(), share))
                .count() as f64;
            let n = f64::from(n);
            let sd = (n * share * (1.0 - share)).sqrt();
            assert!(
                (k - n * share).abs() < 4.0 * sd,
                "share {share}: {k} of {n} keys"
            );
        }
    }

    #[test]
    fn a_key_stays_on_its_version_and_a_larger_share_keeps_the_smaller_ones_keys() {
        for i in 0..1000 {
            let key = format!("customer-{i}");
            let a = in_canary(key.as_bytes(), 0.1);
            assert_eq!(a, in_canary(key.as_bytes(), 0.1));
            if a {
                assert!(in_canary(key.as_bytes(), 0.3));
            }
        }
        assert!(!in_canary(b"x", 0.0));
        assert!(in_canary(b"x", 1.0));
    }

    fn classification(p: &[f32]) -> Classification {
        let mut ranking: Vec<usize> = (0..p.len()).collect();
        ranking.sort_by(|a, b| p[*b].total_cmp(&p[*a]));
        Classification {
            probabilities: p.to_vec(),
            ranking,
            detections: Vec::new(),
            frame: None,
            timings: Default::default(),
        }
    }

    #[test]
    fn shadow_comparison_goes_by_label_name() {
        let labels = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let c = compare(
            &classification(&[0.8, 0.2]),
            &labels(&["stay", "churn"]),
            &classification(&[0.3, 0.7]),
            &labels(&["churn", "stay"]),
        );
        assert!(c.agree);
        assert!((c.score_difference.unwrap() - 0.1).abs() < 1e-6);
        let c = compare(
            &classification(&[0.8, 0.2]),
            &labels(&["stay", "churn"]),
            &classification(&[0.4, 0.6]),
            &labels(&["stay", "churn"]),
        );
        assert!(!c.agree);
        assert!((c.score_difference.unwrap() - 0.4).abs() < 1e-6);
        let c = compare(
            &classification(&[0.8, 0.2]),
            &labels(&["stay", "churn"]),
            &classification(&[1.0]),
            &labels(&["other"]),
        );
        assert_eq!(
            c,
            Comparison {
                agree: false,
                score_difference: None
            }
        );
    }
}
