//! Reference profiles for image streams: frames (from a folder, or synthetic scenes) go
//! through the same decode → downscale → features path as the sidecar, and — with a model —
//! through the same classifier as the workers, so the score and class references are the
//! model's own outputs on reference data. With ground truth (synthetic scenes) the isotonic
//! calibration map for CBPE is fitted too.
use crate::features::{frame_values, image_feature_names, PREDICTED_CLASS, SCORE};
use argus_model::Classifier;
use argus_stats::calibration::fit_isotonic;
use argus_stats::hash::record_hash;
use argus_stats::image::ImageHistograms;
use argus_stats::profile::{
    FeatureKind, FeatureProfile, Profile, ProfileError, ProfileSettings, SegmentProfile,
    StreamKind, FLEET,
};
use argus_wire::Payload;
use std::collections::BTreeMap;

/// Segments with fewer reference frames than this get no reference of their own.
pub const MIN_SEGMENT_FRAMES: usize = 100;

#[derive(Debug, Default)]
struct Columns {
    image: Vec<Vec<Option<f64>>>,
    hashes: Vec<u64>,
    score: Vec<Option<f64>>,
    class: Vec<Option<String>>,
    histograms: ImageHistograms,
}

/// Collects reference frames, then builds the profile.
#[derive(Debug)]
pub struct ImageProfileBuilder<'m> {
    settings: ProfileSettings,
    model: Option<(&'m Classifier, String)>,
    segments: BTreeMap<String, Columns>,
    truth: Vec<(f64, bool)>,
    n: i64,
    /// Reference frames that did not decode (skipped).
    pub decode_errors: u64,
}

impl<'m> ImageProfileBuilder<'m> {
    /// `model`: the classifier and the label whose probability is the `score` feature.
    pub fn new(settings: ProfileSettings, model: Option<(&'m Classifier, String)>) -> Self {
        Self {
            settings,
            model,
            segments: BTreeMap::new(),
            truth: Vec::new(),
            n: 0,
            decode_errors: 0,
        }
    }

    /// Add one frame of `segment` (a camera id; frames also count for the fleet `*`).
    /// `positive`: ground truth for calibration, when known.
    pub fn add(
        &mut self,
        segment: &str,
        payload: &Payload,
        positive: Option<bool>,
    ) -> Result<(), String> {
        let hash = record_hash(self.settings.seed, "reference", 0, self.n);
        self.n += 1;
        let mut hist = ImageHistograms::default();
        let values = match frame_values(payload, &mut hist) {
            Ok(v) => v.into_iter().map(Some).collect::<Vec<_>>(),
            Err(_) => {
                self.decode_errors += 1;
                vec![None; image_feature_names().len()]
            }
        };
        let outputs = match self.model {
            Some((model, ref positive_label)) => match model.classify(payload) {
                Ok(c) => {
                    let labels = model.labels();
                    let pos = labels.iter().position(|l| l == positive_label);
                    let score = pos.map(|i| f64::from(c.probability(i)));
                    let class = c.ranking.first().and_then(|i| labels.get(*i)).cloned();
                    if let (Some(s), Some(t)) = (score, positive) {
                        self.truth.push((s, t));
                    }
                    Some((score, class))
                }
                Err(_) => Some((None, None)),
            },
            None => None,
        };
        for seg in [FLEET, segment] {
            if seg == FLEET && segment == FLEET {
                continue;
            }
            let cols = self.segments.entry(seg.to_owned()).or_default();
            if cols.image.is_empty() {
                cols.image = vec![Vec::new(); values.len()];
            }
            for (c, v) in cols.image.iter_mut().zip(&values) {
                c.push(*v);
            }
            cols.hashes.push(hash);
            cols.histograms.merge(&hist);
            if let Some((score, class)) = &outputs {
                cols.score.push(*score);
                cols.class.push(class.clone());
            }
        }
        Ok(())
    }

    /// Build and seal the profile. Fails if no frame was added.
    pub fn build(self, id: &str, source: &str, created_by: &str) -> Result<Profile, ProfileError> {
        if self.n == 0 {
            return Err(ProfileError::Invalid("no reference frames".into()));
        }
        let names = image_feature_names();
        let mut segments = BTreeMap::new();
        for (seg, cols) in &self.segments {
            if seg != FLEET && cols.hashes.len() < MIN_SEGMENT_FRAMES {
                continue;
            }
            let mut features: Vec<FeatureProfile> = names
                .iter()
                .zip(&cols.image)
                .map(|(name, values)| {
                    FeatureProfile::numeric(
                        name,
                        FeatureKind::ImageDerived,
                        values,
                        &cols.hashes,
                        &self.settings,
                    )
                })
                .collect();
            if self.model.is_some() {
                features.push(FeatureProfile::numeric(
                    SCORE,
                    FeatureKind::Score,
                    &cols.score,
                    &cols.hashes,
                    &self.settings,
                ));
                features.push(FeatureProfile::categorical(
                    PREDICTED_CLASS,
                    FeatureKind::PredictedClass,
                    &cols.class,
                    &self.settings,
                ));
            }
            segments.insert(
                seg.clone(),
                SegmentProfile {
                    n: cols.hashes.len() as u64,
                    features,
                    histograms: Some(cols.histograms.clone()),
                },
            );
        }
        let calibration = match &self.model {
            Some((_, positive_label)) if !self.truth.is_empty() => {
                let scores: Vec<f64> = self.truth.iter().map(|t| t.0).collect();
                let labels: Vec<bool> = self.truth.iter().map(|t| t.1).collect();
                fit_isotonic(&scores, &labels, positive_label, 0.5)
            }
            _ => None,
        };
        let profile = Profile::seal(
            id.to_owned(),
            StreamKind::Images,
            source.to_owned(),
            self.settings,
            segments,
            calibration,
            created_by.to_owned(),
        )?;
        match &self.model {
            Some((_, label)) => profile.with_score_label(label),
            None => Ok(profile),
        }
    }
}
