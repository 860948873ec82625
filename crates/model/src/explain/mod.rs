//! Evidence for alerts: why the model said so, in a form a person can read.
//!
//! - **Records, tree ensembles** with `[explain] covers`: exact TreeSHAP
//!   ([`crate::engine::trees::shap`]), the Shapley values `shap.TreeExplainer` computes.
//! - **Records, any other model** with `[explain] background`: Shapley values estimated by
//!   permutation sampling against the background rows ([`sampling`]), each with a 99 %
//!   error bound.
//! - **Images**: occlusion saliency ([`occlusion`]): how much the label's score drops when
//!   each cell of a coarse grid over the frame is blanked; per box for detection models
//!   (the boxes are the first evidence, the grid says what inside and around them counted).
//!
//! A category's one-hot inputs count as one feature: their attributions are summed (Shapley
//! values add up), so an alert names `contract = month_to_month`, not three columns.
//! [`Explainer::explain`] is blocking and costs up to a few hundred model calls: the worker
//! runs it on a bounded pool of its own, for alerts only, under a deadline.
pub mod occlusion;
pub mod sampling;

use crate::classifier::Classifier;
use crate::detection::Detection;
use crate::engine::trees::shap::{Space, TreeShap};
use crate::engine::trees::TreesEngine;
use crate::error::ModelError;
use crate::manifest::{Feature, Task};
use crate::postprocess;
use argus_wire::{Attribution, Evidence, Payload};
use serde::Deserialize;
use std::ops::Range;
use std::path::Path;

/// The `schema` of a background rows file.
pub const BACKGROUND_SCHEMA: &str = "argus.background/v1";
/// Contributions named in an alert's plain-words summary.
pub const SUMMARY_TOP: usize = 3;

/// How much work one explanation may take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExplainSettings {
    /// Sampled permutations (sampling Shapley).
    pub permutations: usize,
    /// Occlusion grid cells per side.
    pub grid: u32,
    /// Boxes explained per detector alert (best first).
    pub max_boxes: usize,
    /// Background rows used, at most.
    pub max_background: usize,
    /// Seed of the permutation sampling (the same alert gets the same estimate).
    pub seed: u64,
}

impl Default for ExplainSettings {
    fn default() -> Self {
        ExplainSettings {
            permutations: 64,
            grid: 6,
            max_boxes: 3,
            max_background: 100,
            seed: 0,
        }
    }
}

/// The method a bundle is explained with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Exact TreeSHAP.
    TreeShap,
    /// Permutation-sampled Shapley values against background rows.
    SamplingShapley,
    /// Occlusion saliency.
    Occlusion,
}

impl Method {
    /// The method's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::TreeShap => "tree_shap",
            Method::SamplingShapley => "sampling_shapley",
            Method::Occlusion => "occlusion",
        }
    }
}

enum Kind {
    Trees(Box<TreeShap>),
    Sampling(Vec<Vec<f32>>),
    Occlusion,
}

/// Computes evidence for one bundle. `Send + Sync`.
pub struct Explainer {
    kind: Kind,
    settings: ExplainSettings,
}

impl std::fmt::Debug for Explainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Explainer")
            .field("method", &self.method())
            .field("settings", &self.settings)
            .finish()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackgroundFile {
    schema: String,
    #[serde(default)]
    #[allow(dead_code)]
    source: String,
    rows: Vec<Vec<f32>>,
}

/// Reads a [`BACKGROUND_SCHEMA`] file of rows `width` values wide; at most `max` rows.
pub fn load_background(path: &Path, width: usize, max: usize) -> Result<Vec<Vec<f32>>, ModelError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ModelError::bundle(path, format!("cannot read the background rows: {e}")))?;
    let file: BackgroundFile = serde_json::from_str(&text).map_err(|e| {
        ModelError::bundle(
            path,
            format!("not a background file ({BACKGROUND_SCHEMA}): {e}"),
        )
    })?;
    if file.schema != BACKGROUND_SCHEMA {
        return Err(ModelError::bundle(
            path,
            format!(
                "schema is {:?}; this build reads {BACKGROUND_SCHEMA:?}",
                file.schema
            ),
        ));
    }
    if file.rows.is_empty() {
        return Err(ModelError::bundle(path, "the background has no rows"));
    }
    if let Some((i, r)) = file
        .rows
        .iter()
        .enumerate()
        .find(|(_, r)| r.len() != width || r.iter().any(|v| !v.is_finite()))
    {
        return Err(ModelError::bundle(
            path,
            format!(
                "background row {i} has {} values (or a non-finite one); the model takes {width}",
                r.len()
            ),
        ));
    }
    let mut rows = file.rows;
    rows.truncate(max.max(1));
    Ok(rows)
}

impl Explainer {
    /// The explainer `model`'s bundle supports: TreeSHAP when it ships tree covers,
    /// sampling Shapley when it ships background rows, occlusion for image models; `None`
    /// for a tabular bundle with neither. Errors are the bundle's files being wrong.
    pub fn for_model(
        model: &Classifier,
        settings: ExplainSettings,
    ) -> Result<Option<Explainer>, ModelError> {
        let m = model.manifest();
        let kind = match m.task {
            Task::Classify | Task::Detection => Kind::Occlusion,
            Task::Tabular => {
                let spec = m.explain.clone().unwrap_or_default();
                if let Some(covers) = &spec.covers {
                    let engine = TreesEngine::load(m, &model.dir().join(&m.model.file))?;
                    Kind::Trees(Box::new(TreeShap::load(engine, &model.dir().join(covers))?))
                } else if let Some(bg) = &spec.background {
                    Kind::Sampling(load_background(
                        &model.dir().join(bg),
                        model.input_len(),
                        settings.max_background,
                    )?)
                } else {
                    return Ok(None);
                }
            }
        };
        Ok(Some(Explainer { kind, settings }))
    }

    /// The method used.
    pub fn method(&self) -> Method {
        match self.kind {
            Kind::Trees(_) => Method::TreeShap,
            Kind::Sampling(_) => Method::SamplingShapley,
            Kind::Occlusion => Method::Occlusion,
        }
    }

    /// The evidence for `model`'s output `label` on `payload` (for detection models, on
    /// `boxes`: the alert's boxes, in frame pixels). Blocking.
    pub fn explain(
        &self,
        model: &Classifier,
        payload: &Payload,
        label: usize,
        boxes: &[Detection],
    ) -> Result<Evidence, ModelError> {
        match &self.kind {
            Kind::Occlusion => {
                let boxes = &boxes[..boxes.len().min(self.settings.max_boxes)];
                let grids = occlusion::occlusion(model, payload, label, boxes, self.settings.grid)?;
                Ok(Evidence {
                    space: Some(grids.space.into()),
                    saliency: grids.saliency,
                    ..Evidence::ok(Method::Occlusion.as_str())
                })
            }
            Kind::Trees(shap) => {
                let row = model.prepare(payload)?.data;
                let a = shap
                    .explain(&row, label)
                    .map_err(|reason| ModelError::Shape {
                        reason: format!("TreeSHAP: {reason}"),
                    })?;
                let contributions = Contributions {
                    base: a.base,
                    output: a.output(),
                    values: per_feature(&model.manifest().features, &a.values),
                    bounds: None,
                    space: a.space,
                };
                Ok(self.attributions(model, payload, label, contributions))
            }
            Kind::Sampling(background) => {
                let row = model.prepare(payload)?.data;
                let groups = feature_ranges(&model.manifest().features);
                let kind = model.manifest().output.kind;
                let e = sampling::sampling_shapley(
                    &row,
                    &groups,
                    background,
                    self.settings.permutations,
                    self.settings.seed,
                    |rows, n| label_outputs(model, kind, rows, n, label),
                )?;
                Ok(self.attributions(model, payload, label, e.into()))
            }
        }
    }

    /// What an alert on `payload` would carry, computed offline (`argus explain`): the
    /// model's answer, the label explained — `label`, else the bundle's `[decision]` label,
    /// else the top label — and its evidence (detectors: on that label's boxes).
    pub fn explain_input(
        &self,
        model: &Classifier,
        payload: &Payload,
        label: Option<&str>,
    ) -> Result<Offline, ModelError> {
        let classification = model.classify(payload)?;
        let labels = model.labels();
        let index = match label {
            Some(l) => labels
                .iter()
                .position(|x| x == l)
                .ok_or_else(|| ModelError::Shape {
                    reason: format!(
                        "label {l:?} is not one of the model's ({})",
                        labels.join(", ")
                    ),
                })?,
            None => model
                .manifest()
                .decision
                .as_ref()
                .and_then(|d| labels.iter().position(|x| *x == d.positive))
                .or_else(|| classification.ranking.first().copied())
                .unwrap_or(0),
        };
        let boxes: Vec<Detection> = classification
            .detections
            .iter()
            .filter(|d| d.class == index)
            .copied()
            .collect();
        let evidence = self.explain(model, payload, index, &boxes)?;
        Ok(Offline {
            label: labels
                .get(index)
                .cloned()
                .unwrap_or_else(|| index.to_string()),
            score: classification.probability(index),
            boxes: boxes.len(),
            evidence,
        })
    }

    /// The evidence of `label` on `payload` from per-feature `contributions`: attributions
    /// named and valued as the alert shows the record, largest first, and their summary.
    fn attributions(
        &self,
        model: &Classifier,
        payload: &Payload,
        label: usize,
        contributions: Contributions,
    ) -> Evidence {
        let Contributions {
            base,
            output,
            values,
            bounds,
            space,
        } = contributions;
        let shown = model.evidence(payload);
        let mut attributions: Vec<Attribution> = values
            .iter()
            .enumerate()
            .map(|(i, &c)| Attribution {
                feature: shown.get(i).map_or_else(|| i.to_string(), |s| s.0.clone()),
                value: shown
                    .get(i)
                    .map_or(serde_json::Value::Null, |s| s.1.clone()),
                contribution: c,
                bound: bounds.as_ref().map(|b| b[i]),
            })
            .collect();
        attributions.sort_by(|a, b| b.contribution.abs().total_cmp(&a.contribution.abs()));
        let name = model
            .labels()
            .get(label)
            .cloned()
            .unwrap_or_else(|| label.to_string());
        let summary = attributions
            .iter()
            .take(SUMMARY_TOP)
            .map(|a| plain_words(a, &name, space))
            .collect();
        Evidence {
            space: Some(space.as_str().into()),
            base_value: Some(base),
            output: Some(output),
            error_bound: bounds.map(|b| b.into_iter().fold(0.0, f64::max)),
            attributions,
            summary,
            ..Evidence::ok(self.method().as_str())
        }
    }
}

/// A tabular explanation before it is named: per feature of the manifest, what each
/// contributed to `output - base`, with error bounds when estimated.
#[derive(Debug, Clone, PartialEq)]
struct Contributions {
    base: f64,
    output: f64,
    values: Vec<f64>,
    /// Per feature: half-width of the 99 % interval (estimates only).
    bounds: Option<Vec<f64>>,
    space: Space,
}

impl From<sampling::Estimate> for Contributions {
    /// Sampling Shapley explains the label's probability.
    fn from(e: sampling::Estimate) -> Self {
        Contributions {
            base: e.base,
            output: e.output,
            values: e.values,
            bounds: Some(e.bounds),
            space: Space::Probability,
        }
    }
}

/// An offline explanation ([`Explainer::explain_input`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Offline {
    /// The label explained.
    pub label: String,
    /// Its score.
    pub score: f32,
    /// Boxes of the label explained (detectors).
    pub boxes: usize,
    /// The evidence an alert would carry.
    pub evidence: Evidence,
}

/// Each manifest feature's columns in the model input (a category spans its one-hot
/// columns).
pub fn feature_ranges(features: &[Feature]) -> Vec<Range<usize>> {
    let mut at = 0;
    features
        .iter()
        .map(|f| {
            let r = at..at + f.width();
            at = r.end;
            r
        })
        .collect()
}

/// Per-input attributions summed per manifest feature.
pub fn per_feature(features: &[Feature], per_input: &[f64]) -> Vec<f64> {
    feature_ranges(features)
        .into_iter()
        .map(|r| per_input.get(r).map_or(0.0, |v| v.iter().sum()))
        .collect()
}

/// `label`'s probability for `n` rows laid end to end (one batch; one row at a time if
/// the engine refuses the batch).
fn label_outputs(
    model: &Classifier,
    kind: crate::manifest::OutputKind,
    rows: &[f32],
    n: usize,
    label: usize,
) -> Result<Vec<f64>, ModelError> {
    let width = rows.len() / n.max(1);
    let views: Vec<&[f32]> = rows.chunks(width.max(1)).collect();
    let raw = match model.infer(&views) {
        Ok((raw, _)) => raw,
        Err(_) => {
            let mut raw = Vec::with_capacity(n);
            for v in &views {
                raw.extend(model.infer(std::slice::from_ref(v))?.0);
            }
            raw
        }
    };
    Ok(raw
        .into_iter()
        .map(|r| {
            f64::from(
                postprocess::probabilities(kind, r)
                    .get(label)
                    .copied()
                    .unwrap_or(0.0),
            )
        })
        .collect())
}

/// "complaints_90d = 4 raised the churn probability by 0.21".
pub fn plain_words(a: &Attribution, label: &str, space: Space) -> String {
    let value = match &a.value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "(missing)".into(),
        v => v.to_string(),
    };
    let verb = if a.contribution >= 0.0 {
        "raised"
    } else {
        "lowered"
    };
    let what = match space {
        Space::Probability => "probability",
        Space::LogOdds => "log-odds",
        Space::Logit => "logit",
        Space::Margin => "score",
        Space::Value => "value",
    };
    let size = a.contribution.abs();
    let digits = if size >= 0.01 { 2 } else { 4 };
    format!(
        "{} = {value} {verb} the {label} {what} by {size:.digits$}",
        a.feature
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_name_the_feature_its_value_and_the_effect() {
        let a = Attribution {
            feature: "complaints_90d".into(),
            value: 4.into(),
            contribution: 0.2134,
            bound: None,
        };
        assert_eq!(
            plain_words(&a, "churn", Space::Probability),
            "complaints_90d = 4 raised the churn probability by 0.21"
        );
        let b = Attribution {
            feature: "contract".into(),
            value: "two_year".into(),
            contribution: -0.004,
            bound: None,
        };
        assert_eq!(
            plain_words(&b, "churn", Space::LogOdds),
            "contract = two_year lowered the churn log-odds by 0.0040"
        );
    }

    #[test]
    fn one_hot_columns_count_as_one_feature() {
        use crate::manifest::FeatureKind;
        let f = |name: &str, kind, categories: &[&str]| Feature {
            name: name.into(),
            kind,
            categories: categories.iter().map(|c| (*c).to_string()).collect(),
        };
        let features = vec![
            f("tenure", FeatureKind::Int, &[]),
            f("region", FeatureKind::Category, &["a", "b", "c"]),
            f("autopay", FeatureKind::Bool, &[]),
        ];
        assert_eq!(feature_ranges(&features), vec![0..1, 1..4, 4..5]);
        let got = per_feature(&features, &[0.5, 0.1, -0.2, 0.3, 1.0]);
        for (g, want) in got.iter().zip([0.5, 0.2, 1.0]) {
            assert!((g - want).abs() < 1e-12, "{got:?}");
        }
    }
}
