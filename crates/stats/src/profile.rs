//! Reference profiles: what "training data" looked like, precomputed once by
//! `argus drift profile` with the same code the sidecar summarises windows with.
//!
//! A profile is JSON, versioned (`argus.drift-profile/v1`) and content-hashed: `sha256` is the
//! SHA-256 of the profile serialised with `sha256` set to the empty string, so any edit is
//! detected on load. `schema_sha256` hashes only the feature names and kinds (and the stream
//! kind); the sidecar refuses a stream whose schema hash differs.
use crate::categorical::Vocabulary;
use crate::hash::value_hash;
use crate::numeric::{Binning, BottomK};
pub use crate::reference::{CategoricalReference, NumericReference};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// `schema` value of every [`Profile`] this build writes.
pub const PROFILE_SCHEMA: &str = "argus.drift-profile/v1";
/// The fleet segment, used for every camera without a reference of its own.
pub const FLEET: &str = "*";

/// How a feature is summarised and tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureKind {
    /// Continuous numbers: binned on reference quantiles, sampled, KS/CvM/W1/PSI.
    Numeric,
    /// Numeric with ≤ 20 distinct reference values: tested as categorical.
    NumericDiscrete,
    /// Categories: counted, χ², JS, PSI and the new-category alarm.
    Categorical,
    /// Numeric with at most two distinct reference values: tested as categorical.
    Binary,
    /// Model score (probability).
    Score,
    /// The model's predicted class: tested as categorical.
    PredictedClass,
    /// Numeric feature computed by the sidecar from an image.
    ImageDerived,
}

impl FeatureKind {
    /// Whether values are summarised as numbers (bins + sample) or as categories.
    pub fn is_numeric(self) -> bool {
        matches!(self, Self::Numeric | Self::Score | Self::ImageDerived)
    }
    /// The name in profiles and reports (`numeric`, `numeric_discrete`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Numeric => "numeric",
            Self::NumericDiscrete => "numeric_discrete",
            Self::Categorical => "categorical",
            Self::Binary => "binary",
            Self::Score => "score",
            Self::PredictedClass => "predicted_class",
            Self::ImageDerived => "image_derived",
        }
    }
}

/// What a stream carries, and so where features come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    /// Feature records (CSV / JSON lines / `Payload::Record`).
    Records,
    /// Encoded or raw images; features are computed by the sidecar.
    Images,
}

/// Knobs that shape summaries; the sidecar uses the profile's, so both sides agree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileSettings {
    /// Percentile edges for the fine bins: 1..fine_bins-1 (100 → percentiles 1..99).
    pub fine_bins: u32,
    /// Bottom-k sample size per numeric feature in a window of the streaming sidecar
    /// (`argus drift compare` keeps every row of the current file instead).
    pub sample_k: usize,
    /// Largest reference sample stored per numeric feature.
    pub reference_sample_max: usize,
    /// Seed of all record and value hashes.
    pub seed: u64,
}

/// The largest `reference_sample_max` a profile may hold (a loaded profile above it is refused).
pub const REFERENCE_SAMPLE_MAX_LIMIT: usize = 10_000_000;

impl Default for ProfileSettings {
    fn default() -> Self {
        Self {
            fine_bins: 100,
            sample_k: crate::numeric::DEFAULT_SAMPLE_K,
            reference_sample_max: 100_000,
            seed: 0x_a5_67_75_73,
        }
    }
}

/// One feature's reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureProfile {
    /// Feature name (a record field, or an image feature).
    pub name: String,
    /// How it is summarised and tested.
    pub kind: FeatureKind,
    /// Reference values (finite numbers, or present categories).
    pub n: u64,
    /// Null (missing) reference values.
    pub n_null: u64,
    /// Non-finite reference numbers.
    pub n_nonfinite: u64,
    /// The reference distribution (numeric kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numeric: Option<NumericReference>,
    /// The reference distribution (categorical kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categorical: Option<CategoricalReference>,
    /// Effect sizes' 95th percentiles under H0 per window size (made by [`Profile::seal`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null: Option<crate::null::NullTable>,
}

/// Largest number of reference categories with a counter of their own (K_ref).
pub const VOCAB_K: usize = 256;
/// Reference categories beyond `VOCAB_K` remembered (by hash) as "not new".
pub const OTHER_HASHES_MAX: usize = 100_000;
/// At most this many distinct values makes a numeric column `numeric_discrete`.
pub const DISCRETE_MAX: usize = 20;

/// Canonical text of a discrete numeric value (shared by profile and sidecar).
pub fn discrete_label(x: f64) -> String {
    if x == 0.0 {
        "0".to_owned()
    } else {
        format!("{x}")
    }
}

impl FeatureProfile {
    /// Profile a numeric column. `hashes[i]` is row i's record hash (for the sample).
    /// A column with ≤ 20 distinct finite values becomes `numeric_discrete` (2 → `binary`)
    /// unless `kind` is `Score` or `ImageDerived`.
    pub fn numeric(
        name: &str,
        kind: FeatureKind,
        values: &[Option<f64>],
        hashes: &[u64],
        settings: &ProfileSettings,
    ) -> Self {
        let mut finite: Vec<f64> = values
            .iter()
            .flatten()
            .copied()
            .filter(|x| x.is_finite())
            .collect();
        let n_null = values.iter().filter(|v| v.is_none()).count() as u64;
        let n_nonfinite = values.iter().flatten().filter(|x| !x.is_finite()).count() as u64;
        finite.sort_unstable_by(f64::total_cmp);
        let mut distinct = finite.clone();
        distinct.dedup();
        if kind == FeatureKind::Numeric && !finite.is_empty() && distinct.len() <= DISCRETE_MAX {
            let labels: Vec<Option<String>> = values
                .iter()
                .map(|v| v.filter(|x| x.is_finite()).map(discrete_label))
                .collect();
            let kind = if distinct.len() <= 2 {
                FeatureKind::Binary
            } else {
                FeatureKind::NumericDiscrete
            };
            let mut p = Self::categorical(name, kind, &labels, settings);
            p.n_nonfinite = n_nonfinite;
            return p;
        }
        let q = |p: f64| crate::distance::quantile_linear(&finite, p);
        let mut edges: Vec<f64> = if finite.is_empty() {
            Vec::new()
        } else {
            (1..settings.fine_bins)
                .map(|i| q(f64::from(i) / f64::from(settings.fine_bins)))
                .collect()
        };
        edges.dedup();
        let mut decile_edges: Vec<f64> = if finite.is_empty() || settings.fine_bins % 10 != 0 {
            Vec::new()
        } else {
            let step = settings.fine_bins / 10;
            (1..10)
                .map(|j| q(f64::from(j * step) / f64::from(settings.fine_bins)))
                .collect()
        };
        decile_edges.dedup();
        let binning = Binning {
            edges,
            ref_min: finite.first().copied().unwrap_or(0.0),
            ref_max: finite.last().copied().unwrap_or(0.0),
        };
        let mut bin_counts = vec![0u64; binning.n_bins()];
        for x in &finite {
            bin_counts[binning.bin(*x)] += 1;
        }
        let mut moments = crate::numeric::Welford::default();
        finite.iter().for_each(|x| moments.add(*x));
        let mut sample = BottomK::new(settings.reference_sample_max);
        for (v, h) in values.iter().zip(hashes) {
            if let Some(x) = v.filter(|x| x.is_finite()) {
                sample.add(*h, x);
            }
        }
        Self {
            name: name.to_owned(),
            kind,
            n: values.len() as u64,
            n_null,
            n_nonfinite,
            numeric: Some(NumericReference {
                binning,
                decile_edges,
                bin_counts,
                mean: moments.mean,
                std: moments.std(),
                sample: sample.sorted_values(),
            }),
            categorical: None,
            null: None,
        }
    }

    /// Profile a categorical column: the `VOCAB_K` most frequent values get counters (ties by
    /// value), the rest count as `__other_ref__` and are remembered by hash.
    pub fn categorical(
        name: &str,
        kind: FeatureKind,
        values: &[Option<String>],
        settings: &ProfileSettings,
    ) -> Self {
        let mut freq: BTreeMap<&str, u64> = BTreeMap::new();
        for v in values.iter().flatten() {
            *freq.entry(v.as_str()).or_default() += 1;
        }
        let kind = if kind == FeatureKind::Categorical && freq.len() == 2 {
            FeatureKind::Binary
        } else {
            kind
        };
        let mut ranked: Vec<(&str, u64)> = freq.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let split = ranked.len().min(VOCAB_K);
        let (kept, rest) = ranked.split_at(split);
        let mut other_hashes: Vec<u64> = rest
            .iter()
            .take(OTHER_HASHES_MAX)
            .map(|(v, _)| value_hash(settings.seed, v))
            .collect();
        other_hashes.sort_unstable();
        let mut counts: Vec<u64> = kept.iter().map(|e| e.1).collect();
        counts.push(rest.iter().map(|e| e.1).sum());
        Self {
            name: name.to_owned(),
            kind,
            n: values.len() as u64,
            n_null: values.iter().filter(|v| v.is_none()).count() as u64,
            n_nonfinite: 0,
            numeric: None,
            categorical: Some(CategoricalReference {
                vocab: Vocabulary {
                    values: kept.iter().map(|e| e.0.to_owned()).collect(),
                    other_hashes,
                    seed: settings.seed,
                },
                counts,
            }),
            null: None,
        }
    }
}

/// The reference of one segment (a camera, or `*` for the fleet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentProfile {
    /// Reference records in this segment.
    pub n: u64,
    /// Per feature, in the stream's feature order.
    pub features: Vec<FeatureProfile>,
    /// Pixel histograms (image streams).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histograms: Option<crate::image::ImageHistograms>,
}

impl SegmentProfile {
    /// Index of the feature named `name`.
    pub fn feature_index(&self, name: &str) -> Option<usize> {
        self.features.iter().position(|f| f.name == name)
    }
}

/// Isotonic calibration map for label-free performance estimation (CBPE): a score `s`
/// calibrates to `levels[i]` for the first `i` with `s <= upper[i]` (last level above).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// The class whose probability `score` is.
    pub positive_label: String,
    /// Decision threshold: predicted positive iff score ≥ threshold.
    pub threshold: f64,
    /// Upper score bound of each level, increasing.
    pub upper: Vec<f64>,
    /// Calibrated probability of the positive label per level.
    pub levels: Vec<f64>,
    /// Reference accuracy measured with labels, for comparison.
    pub reference_accuracy: f64,
    /// The CBPE estimate on the reference itself (calibrated levels, no labels): what a
    /// window's estimate is compared with to call it degraded.
    #[serde(default)]
    pub reference_estimated_accuracy: f64,
}

/// A reference profile: what the training data looked like, per segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// [`PROFILE_SCHEMA`].
    pub schema: String,
    /// Profile id (given at `argus drift profile`), reported in every drift report.
    pub id: String,
    /// Records or images.
    pub stream: StreamKind,
    /// Where the reference came from (file names, record counts).
    pub source: String,
    /// The settings it was built with (bins, samples, seed).
    pub settings: ProfileSettings,
    /// Hash of the feature names and kinds: the sidecar refuses a stream whose schema differs.
    pub schema_sha256: String,
    /// `*` (fleet) and one per camera/segment that had its own reference data.
    pub segments: BTreeMap<String, SegmentProfile>,
    /// CBPE calibration, when the reference had labels and scores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
    /// The label whose probability the `score` feature is (model-output profiles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_label: Option<String>,
    /// `argus <version>` that wrote it.
    pub created_by: String,
    /// SHA-256 of the profile serialised with this field empty: detects any edit.
    pub sha256: String,
}

/// Why a profile cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file is not valid profile JSON.
    #[error("not a drift profile: {0}")]
    Parse(#[from] serde_json::Error),
    /// A schema version this build does not read.
    #[error("profile schema is {found:?}; this argus reads {PROFILE_SCHEMA:?}")]
    Version {
        /// The file's `schema`.
        found: String,
    },
    /// The content hash does not match the content.
    #[error("profile content hash mismatch: file says {stated}, content is {actual} (edited or truncated?)")]
    Hash {
        /// The hash the file states.
        stated: String,
        /// The hash of its content.
        actual: String,
    },
    /// The fleet segment `*` is missing.
    #[error("profile has no fleet segment \"*\"")]
    NoFleet,
    /// The content contradicts itself.
    #[error("profile is inconsistent: {0}")]
    Invalid(String),
}

/// Hash of the feature names and kinds (and stream kind): what must match the stream.
pub fn schema_hash(stream: StreamKind, features: &[(String, FeatureKind)]) -> String {
    let mut h = Sha256::new();
    h.update(format!("{stream:?}\n"));
    for (name, kind) in features {
        h.update(format!("{name}:{}\n", kind.as_str()));
    }
    hex::encode(h.finalize())
}

impl Profile {
    /// Assemble, hash and seal a profile. `segments` must contain `*`.
    pub fn seal(
        id: String,
        stream: StreamKind,
        source: String,
        settings: ProfileSettings,
        segments: BTreeMap<String, SegmentProfile>,
        calibration: Option<Calibration>,
        created_by: String,
    ) -> Result<Self, ProfileError> {
        if !segments.contains_key(FLEET) {
            return Err(ProfileError::NoFleet);
        }
        let mut segments = segments;
        for (seg, profile) in segments.iter_mut() {
            for f in &mut profile.features {
                if f.null.is_none() {
                    let seed = settings.seed
                        ^ crate::hash::value_hash(settings.seed, &format!("{seg}/{}", f.name));
                    f.null = match (&f.numeric, &f.categorical) {
                        (Some(n), _) => crate::null::NullTable::numeric(n, seed),
                        (None, Some(c)) => crate::null::NullTable::categorical(c, seed),
                        _ => None,
                    };
                }
            }
        }
        let fleet = segments.get(FLEET).ok_or(ProfileError::NoFleet)?;
        let schema_sha256 = schema_hash(
            stream,
            &fleet
                .features
                .iter()
                .map(|f| (f.name.clone(), f.kind))
                .collect::<Vec<_>>(),
        );
        let mut p = Profile {
            schema: PROFILE_SCHEMA.to_owned(),
            id,
            stream,
            source,
            settings,
            schema_sha256,
            segments,
            calibration,
            score_label: None,
            created_by,
            sha256: String::new(),
        };
        p.sha256 = p.content_hash()?;
        Ok(p)
    }

    /// Name the label whose probability `score` is, and re-seal.
    pub fn with_score_label(mut self, label: &str) -> Result<Self, ProfileError> {
        self.score_label = Some(label.to_owned());
        self.sha256 = self.content_hash()?;
        Ok(self)
    }

    fn content_hash(&self) -> Result<String, ProfileError> {
        let mut copy = self.clone();
        copy.sha256 = String::new();
        let bytes = serde_json::to_vec(&copy)?;
        Ok(hex::encode(Sha256::digest(&bytes)))
    }

    /// The profile as compact JSON.
    pub fn to_json(&self) -> Result<String, ProfileError> {
        Ok(serde_json::to_string(self)?)
    }

    /// Parse and verify version, content hash and internal consistency.
    pub fn from_json(text: &str) -> Result<Self, ProfileError> {
        let value: serde_json::Value = serde_json::from_str(text)?;
        if let Some(found) = value.get("schema").and_then(|s| s.as_str()) {
            if found != PROFILE_SCHEMA {
                return Err(ProfileError::Version {
                    found: found.to_owned(),
                });
            }
        }
        let p: Profile = serde_json::from_value(value)?;
        let actual = p.content_hash()?;
        if actual != p.sha256 {
            return Err(ProfileError::Hash {
                stated: p.sha256.clone(),
                actual,
            });
        }
        let fleet = p.segments.get(FLEET).ok_or(ProfileError::NoFleet)?;
        let s = &p.settings;
        if s.sample_k == 0
            || s.sample_k > 65_536
            || s.reference_sample_max > REFERENCE_SAMPLE_MAX_LIMIT
            || s.fine_bins < 2
            || s.fine_bins > 10_000
        {
            return Err(ProfileError::Invalid(format!(
                "settings out of range: sample_k {} (1..=65536), reference_sample_max {}, fine_bins {}",
                s.sample_k, s.reference_sample_max, s.fine_bins
            )));
        }
        if let Some(c) = &p.calibration {
            if c.upper.len() != c.levels.len()
                || c.levels.is_empty()
                || c.levels.iter().any(|l| !(0.0..=1.0).contains(l))
            {
                return Err(ProfileError::Invalid(
                    "calibration map: upper and levels must be equally long, levels in [0, 1]"
                        .into(),
                ));
            }
        }
        for (name, seg) in &p.segments {
            let names: Vec<_> = seg.features.iter().map(|f| (&f.name, f.kind)).collect();
            let fleet_names: Vec<_> = fleet.features.iter().map(|f| (&f.name, f.kind)).collect();
            if names != fleet_names {
                return Err(ProfileError::Invalid(format!(
                    "segment {name:?} has other features than \"*\""
                )));
            }
            for f in &seg.features {
                if let Some(num) = &f.numeric {
                    let sorted = num.sample.windows(2).all(|w| w[0] <= w[1])
                        && num.sample.iter().all(|x| x.is_finite());
                    let edges_sorted = num.binning.edges.windows(2).all(|w| w[0] < w[1]);
                    if !sorted || !edges_sorted || num.bin_counts.len() != num.binning.n_bins() {
                        return Err(ProfileError::Invalid(format!(
                            "feature {:?} of segment {name:?}: reference sample or bin edges not sorted, or bin counts do not match the edges",
                            f.name
                        )));
                    }
                }
                if let Some(cat) = &f.categorical {
                    if cat.counts.len() != cat.vocab.values.len() + 1 {
                        return Err(ProfileError::Invalid(format!(
                            "feature {:?} of segment {name:?}: counts do not match the vocabulary",
                            f.name
                        )));
                    }
                }
                if f.kind.is_numeric() != f.numeric.is_some()
                    || f.kind.is_numeric() == f.categorical.is_some()
                {
                    return Err(ProfileError::Invalid(format!(
                        "feature {:?} of segment {name:?} does not match its kind",
                        f.name
                    )));
                }
            }
        }
        Ok(p)
    }

    /// The reference for a segment: its own, else the fleet's.
    pub fn segment(&self, name: &str) -> &SegmentProfile {
        self.segments
            .get(name)
            .or_else(|| self.segments.get(FLEET))
            .unwrap_or_else(|| unreachable!("from_json and seal guarantee the fleet segment"))
    }

    /// The name of the reference a segment is compared with (its own, else `*`) and the
    /// reference itself.
    pub fn reference_for<'a>(&'a self, segment: &'a str) -> (&'a str, &'a SegmentProfile) {
        match self.segments.get_key_value(segment) {
            Some((name, seg)) => (name.as_str(), seg),
            None => (FLEET, self.fleet()),
        }
    }

    /// The fleet segment `*` (every profile has one).
    pub fn fleet(&self) -> &SegmentProfile {
        self.segment(FLEET)
    }
}
