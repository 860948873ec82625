//! Test-set evaluation (`argus model evaluate`) and the paired comparison of two evaluations
//! (`argus model compare`, the promotion gate). Operator's view: `docs/promotion-gate.md`.
//!
//! **Same outputs as the worker.** Every item goes through the worker's pipeline core
//! ([`Pipeline::prepare`] on an envelope encoded as a producer would send it, then
//! [`Pipeline::infer`] in batches), so its scores are the scores a worker would publish.
//! An item the worker would send to the DLQ is an error naming it: a test set must score.
//!
//! **Predicted label.** A bundle with a `[decision]` predicts its positive label iff the
//! positive label's score reaches the threshold (the worker's and `argus score`'s rule), else
//! the best other label; a bundle without one predicts its top label.
//!
//! **Determinism.** The evaluation holds no time, host or path (only the test set's file
//! name and hash); floats are written by `serde_json` (shortest round-trip form), an item's
//! score as the exact `f64` of the model's `f32`. The same bundle and test set give the same
//! bytes ([`Evaluation::to_json`]).
//!
//! **Pairing.** The evaluation keeps each item's id, true label, predicted label and positive
//! score, so [`compare`] runs the paired test from two evaluations without re-scoring; it
//! refuses evaluations of different test sets, items, metrics or positive labels.
use crate::config::WorkerConfig;
use crate::pipeline::{Job, Outcome, Pipeline, Prepare};
pub use crate::testset::{read_test_set, LabelMap, TestItem, TestSet, TestSetKind, TestSetSpec};
use argus_model::Classifier;
use argus_stats::gate::{decide, GateConfig, GateDecision, Metric, Outcomes};
use argus_stats::quality::{self, Estimate, QualityError};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Schema id of an evaluation (`schemas/model-evaluation.v1.schema.json`).
pub const EVALUATION_SCHEMA: &str = "argus.model-evaluation/v1";
/// The JSON Schema of an evaluation.
pub const EVALUATION_JSON_SCHEMA: &str =
    include_str!("../../../schemas/model-evaluation.v1.schema.json");

/// Why a test set cannot be evaluated, or two evaluations cannot be compared. All are the
/// user's input to fix (exit 64).
#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    /// A file cannot be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The test set has no items.
    #[error("{}: the test set has no items", path.display())]
    Empty {
        /// The test set.
        path: PathBuf,
    },
    /// A column the evaluation needs is not in the test set.
    #[error("{}: no column {column:?}; its columns are: {}; name the label column with --label-column", path.display(), columns.join(", "))]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// The columns it has.
        columns: Vec<String>,
    },
    /// A row that cannot be read.
    #[error("{}: {detail}", path.display())]
    BadRow {
        /// The file.
        path: PathBuf,
        /// What is wrong, with its line.
        detail: String,
    },
    /// A label that is not one of the bundle's.
    #[error("item {item}: label {value:?} is not one of the bundle's labels ({}), an index of one, or true/false", labels.join(", "))]
    UnknownLabel {
        /// The item's id.
        item: String,
        /// The label value.
        value: String,
        /// The bundle's labels.
        labels: Vec<String>,
    },
    /// The worker could not score an item.
    #[error("item {item}: the worker cannot score it ({kind}): {detail}")]
    Item {
        /// The item's id.
        item: String,
        /// The failure kind (as in the DLQ).
        kind: String,
        /// Why.
        detail: String,
    },
    /// The metric needs a positive label, which the bundle does not declare.
    #[error("metric {metric} needs a positive label: the bundle has no [decision] (use --metric accuracy)")]
    NoPositive {
        /// The metric.
        metric: Metric,
    },
    /// A metric other than the one the bundle fixes for its gate was asked for.
    #[error("the bundle fixes the gate metric to {fixed} ([monitoring] gate_metric); drop --metric {asked} or use --metric {fixed}")]
    MetricFixed {
        /// The metric asked for.
        asked: Metric,
        /// The bundle's metric.
        fixed: Metric,
    },
    /// The metric has no value on this test set (e.g. AUC with one class).
    #[error("{0}")]
    Quality(#[from] QualityError),
    /// Two evaluations that cannot be paired.
    #[error("the evaluations cannot be compared: {0}")]
    Unpaired(String),
    /// An evaluation file that is not an evaluation.
    #[error("{}: not an {EVALUATION_SCHEMA} evaluation: {detail}", path.display())]
    NotAnEvaluation {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
}

/// How to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluateOptions {
    /// The metric the model is judged on [default: [`default_metric`]].
    pub metric: Option<Metric>,
    /// Items per model call.
    pub batch: usize,
    /// Bootstrap resamples and seed (F1 interval).
    pub resamples: usize,
    /// Bootstrap seed.
    pub seed: u64,
}

impl Default for EvaluateOptions {
    fn default() -> Self {
        EvaluateOptions {
            metric: None,
            batch: 64,
            resamples: quality::DEFAULT_RESAMPLES,
            seed: quality::DEFAULT_SEED,
        }
    }
}

/// The metric fixed with the model (`[monitoring] gate_metric`, v3 bundles) or, for a
/// bundle that fixes none, `roc_auc` for a two-label bundle with a `[decision]`, else
/// `accuracy`.
pub fn default_metric(model: &Classifier) -> Metric {
    if let Some(fixed) = fixed_metric(model) {
        return fixed;
    }
    match (&model.manifest().decision, model.labels().len()) {
        (Some(_), 2) => Metric::RocAuc,
        _ => Metric::Accuracy,
    }
}

/// The metric the bundle's manifest fixes for the gate, if any (validated when the
/// manifest loaded: one of [`argus_model::manifest::GATE_METRICS`]).
pub fn fixed_metric(model: &Classifier) -> Option<Metric> {
    let name = model
        .manifest()
        .monitoring
        .as_ref()?
        .gate_metric
        .as_deref()?;
    name.parse().ok()
}

/// The metric an evaluation uses: the one asked for, which must be the bundle's fixed
/// metric when it fixes one (candidates of one model are all judged alike).
pub fn chosen_metric(model: &Classifier, asked: Option<Metric>) -> Result<Metric, EvaluateError> {
    match (asked, fixed_metric(model)) {
        (Some(a), Some(f)) if a != f => Err(EvaluateError::MetricFixed { asked: a, fixed: f }),
        (Some(a), _) => Ok(a),
        (None, _) => Ok(default_metric(model)),
    }
}

/// The model an evaluation is of.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluatedModel {
    /// Bundle name.
    pub name: String,
    /// Bundle version.
    pub version: String,
    /// sha256 of the model file.
    pub sha256: String,
}

/// The test set an evaluation ran on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSetRef {
    /// Records or frames.
    pub kind: TestSetKind,
    /// File or folder name.
    pub name: String,
    /// sha256 (see [`crate::testset`]).
    pub sha256: String,
    /// The label column (records).
    pub label_column: Option<String>,
}

/// A metric's value and 95 % interval.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricValue {
    /// The value.
    pub value: f64,
    /// Lower bound.
    pub ci_low: f64,
    /// Upper bound.
    pub ci_high: f64,
    /// `wilson`, `bootstrap_percentile` or `delong`.
    pub ci_method: String,
}

/// One scored item.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemOutcome {
    /// The item's id.
    pub id: String,
    /// True label.
    pub label: String,
    /// Predicted label.
    pub predicted: String,
    /// Score of the positive label (exact `f64` of the model's `f32`); absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

/// Bootstrap settings used for intervals (and to be used by the paired test).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapSpec {
    /// Always `splitmix64`.
    pub generator: String,
    /// Seed.
    pub seed: u64,
    /// Resamples.
    pub resamples: usize,
}

/// An evaluation (`argus.model-evaluation/v1`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evaluation {
    /// [`EVALUATION_SCHEMA`].
    pub schema: String,
    /// The bundle.
    pub model: EvaluatedModel,
    /// The test set.
    pub test_set: TestSetRef,
    /// The metric the model is judged on.
    pub metric: Metric,
    /// Its value.
    pub value: f64,
    /// Lower bound of its 95 % interval.
    pub ci_low: f64,
    /// Upper bound of its 95 % interval.
    pub ci_high: f64,
    /// Items.
    pub n: usize,
    /// The bundle's labels.
    pub labels: Vec<String>,
    /// The positive label (bundles with a `[decision]`).
    pub positive_label: Option<String>,
    /// The decision threshold.
    pub threshold: Option<f64>,
    /// Every metric that has a value, by name.
    pub metrics: BTreeMap<String, MetricValue>,
    /// Bootstrap settings.
    pub bootstrap: BootstrapSpec,
    /// Per-item outcomes, in test-set order.
    pub items: Vec<ItemOutcome>,
}

impl Evaluation {
    /// Pretty JSON with a final newline: the file `argus model evaluate` writes.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Parses an evaluation file's text (`path` names it in errors).
    pub fn from_json(text: &str, path: &std::path::Path) -> Result<Evaluation, EvaluateError> {
        let e: Evaluation =
            serde_json::from_str(text).map_err(|e| EvaluateError::NotAnEvaluation {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?;
        if e.schema != EVALUATION_SCHEMA || e.items.len() != e.n {
            return Err(EvaluateError::NotAnEvaluation {
                path: path.to_path_buf(),
                detail: format!(
                    "schema {:?} with {} items for n = {}",
                    e.schema,
                    e.items.len(),
                    e.n
                ),
            });
        }
        Ok(e)
    }
}

/// Scores `model` on `test_set` through the worker pipeline and measures it. Blocking.
pub fn evaluate(
    model: Arc<Classifier>,
    test_set: &TestSet,
    label_column: Option<&str>,
    options: &EvaluateOptions,
) -> Result<Evaluation, EvaluateError> {
    let metric = chosen_metric(&model, options.metric)?;
    let decision = model.manifest().decision.clone();
    let labels = model.labels().to_vec();
    let positive = decision
        .as_ref()
        .and_then(|d| labels.iter().position(|l| *l == d.positive));
    if metric.needs_positive() && positive.is_none() {
        return Err(EvaluateError::NoPositive { metric });
    }
    let scored = score_items(&model, test_set, options.batch.max(1))?;
    let threshold = decision.as_ref().map(|d| d.threshold);
    let items: Vec<ItemOutcome> = test_set
        .items
        .iter()
        .zip(&scored)
        .map(|(item, probs)| {
            let predicted = predict(probs, positive, threshold);
            ItemOutcome {
                id: item.id.clone(),
                label: labels[item.label].clone(),
                predicted: labels.get(predicted).cloned().unwrap_or_default(),
                score: positive.map(|p| f64::from(probs.get(p).copied().unwrap_or(0.0))),
            }
        })
        .collect();
    let mut evaluation = Evaluation {
        schema: EVALUATION_SCHEMA.into(),
        model: EvaluatedModel {
            name: model.model_ref().name.clone(),
            version: model.model_ref().version.clone(),
            sha256: model.model_ref().sha256.clone(),
        },
        test_set: TestSetRef {
            kind: test_set.kind,
            name: test_set.name.clone(),
            sha256: test_set.sha256.clone(),
            label_column: label_column.map(str::to_string),
        },
        metric,
        value: 0.0,
        ci_low: 0.0,
        ci_high: 0.0,
        n: items.len(),
        labels,
        positive_label: decision.as_ref().map(|d| d.positive.clone()),
        threshold: threshold.map(f64::from),
        metrics: BTreeMap::new(),
        bootstrap: BootstrapSpec {
            generator: "splitmix64".into(),
            seed: options.seed,
            resamples: options.resamples,
        },
        items,
    };
    evaluation.metrics = measure(&evaluation, options)?;
    let chosen = evaluation.metrics.get(metric.as_str()).cloned();
    let chosen = match chosen {
        Some(m) => m,
        // Only AUC can be missing (one class); say why.
        None => {
            let p = outcomes(&evaluation);
            quality::roc_auc(&p.labels, &p.scores)?;
            return Err(EvaluateError::NoPositive { metric });
        }
    };
    evaluation.value = chosen.value;
    evaluation.ci_low = chosen.ci_low;
    evaluation.ci_high = chosen.ci_high;
    Ok(evaluation)
}

/// The predicted label index of probabilities `probs` (see the module doc).
fn predict(probs: &[f32], positive: Option<usize>, threshold: Option<f32>) -> usize {
    let best_of = |skip: Option<usize>| {
        (0..probs.len())
            .filter(|i| Some(*i) != skip)
            .fold(None::<usize>, |best, i| match best {
                Some(b) if probs[b] >= probs[i] => Some(b),
                _ => Some(i),
            })
            .unwrap_or(0)
    };
    match (positive, threshold) {
        (Some(p), Some(t)) if probs.get(p).copied().unwrap_or(0.0) >= t => p,
        (Some(p), Some(_)) => best_of(Some(p)),
        _ => best_of(None),
    }
}

/// Runs every item through the worker pipeline; the probabilities per item, in order.
fn score_items(
    model: &Arc<Classifier>,
    test_set: &TestSet,
    batch: usize,
) -> Result<Vec<Vec<f32>>, EvaluateError> {
    const TOPIC: &str = "argus-evaluate";
    let mut config = WorkerConfig::new("argus-evaluate", vec![TOPIC.into()]);
    config.max_age = None;
    let pipeline = Pipeline::without_evidence(model.clone(), &config);
    let mut out = Vec::with_capacity(test_set.items.len());
    for (chunk_no, chunk) in test_set.items.chunks(batch).enumerate() {
        let mut ready = Vec::with_capacity(chunk.len());
        for (i, item) in chunk.iter().enumerate() {
            let offset = (chunk_no * batch + i) as i64;
            let job = job_of(TOPIC, offset, item)?;
            match pipeline.prepare(&job) {
                Prepare::Ready(r) => ready.push((job, r)),
                Prepare::Failed(f) => return Err(item_failed(item, f.kind.as_str(), f.detail)),
                Prepare::Stale(_) => return Err(item_failed(item, "stale", String::new())),
            }
        }
        for ((_, outcome), item) in pipeline.infer(ready).into_iter().zip(chunk) {
            match outcome {
                Outcome::Classified(c) => out.push(c.classification.probabilities),
                Outcome::Failed(f) => return Err(item_failed(item, f.kind.as_str(), f.detail)),
                Outcome::Stale(_) => return Err(item_failed(item, "stale", String::new())),
            }
        }
    }
    Ok(out)
}

fn item_failed(item: &TestItem, kind: &str, detail: String) -> EvaluateError {
    EvaluateError::Item {
        item: item.id.clone(),
        kind: kind.to_string(),
        detail,
    }
}

/// The item as the input message a producer would send.
fn job_of(topic: &str, offset: i64, item: &TestItem) -> Result<Job, EvaluateError> {
    let envelope = argus_wire::Envelope {
        schema_version: argus_wire::SCHEMA_VERSION,
        source_id: item.id.clone(),
        sequence: u64::try_from(offset).unwrap_or_default(),
        capture_time_us: argus_wire::now_us(),
        payload: item.payload.clone(),
    };
    let value = argus_wire::encode_envelope(&envelope)
        .map_err(|e| item_failed(item, "oversize", e.to_string()))?;
    Ok(Job {
        topic: topic.into(),
        partition: 0,
        offset,
        key: Some(item.id.clone().into_bytes()),
        value: Arc::from(value),
        headers: argus_kafka::RawHeaders::new(),
        timestamp_ms: None,
        received: std::time::Instant::now(),
    })
}

/// Per-item vectors of an evaluation, owned.
struct Owned {
    labels: Vec<bool>,
    scores: Vec<f64>,
    predicted: Vec<bool>,
    correct: Vec<bool>,
}

impl Owned {
    fn view(&self) -> Outcomes<'_> {
        Outcomes {
            labels: &self.labels,
            scores: &self.scores,
            predicted: &self.predicted,
            correct: &self.correct,
        }
    }
}

fn outcomes(e: &Evaluation) -> Owned {
    let positive = e.positive_label.as_deref().unwrap_or_default();
    Owned {
        labels: e.items.iter().map(|i| i.label == positive).collect(),
        scores: e.items.iter().map(|i| i.score.unwrap_or(0.0)).collect(),
        predicted: e.items.iter().map(|i| i.predicted == positive).collect(),
        correct: e.items.iter().map(|i| i.label == i.predicted).collect(),
    }
}

fn metric_value(e: Estimate, method: &str) -> MetricValue {
    MetricValue {
        value: e.value,
        ci_low: e.low,
        ci_high: e.high,
        ci_method: method.into(),
    }
}

/// Accuracy always; F1 and ROC AUC with a positive label (AUC only with both classes).
fn measure(
    e: &Evaluation,
    options: &EvaluateOptions,
) -> Result<BTreeMap<String, MetricValue>, EvaluateError> {
    let o = outcomes(e);
    let mut m = BTreeMap::new();
    m.insert(
        "accuracy".into(),
        metric_value(quality::accuracy_estimate(&o.correct)?, "wilson"),
    );
    if e.positive_label.is_some() {
        let f1 = quality::f1_estimate(&o.labels, &o.predicted, options.resamples, options.seed)?;
        m.insert("f1".into(), metric_value(f1, "bootstrap_percentile"));
        if let Ok(auc) = quality::roc_auc_estimate(&o.labels, &o.scores) {
            m.insert("roc_auc".into(), metric_value(auc, "delong"));
        }
    }
    Ok(m)
}

/// The promotion gate for `candidate` replacing `production` (each `(name, version, model
/// sha256)` as the registry records them): the evaluations must be of exactly these bundles
/// (an evaluation of another version or a rebuilt model file is refused), then [`compare`].
pub fn promotion_gate(
    candidate: &Evaluation,
    production: &Evaluation,
    candidate_id: (&str, &str, &str),
    production_id: (&str, &str, &str),
    config: &GateConfig,
) -> Result<GateDecision, EvaluateError> {
    for (what, e, (name, version, sha256)) in [
        ("candidate", candidate, candidate_id),
        ("production", production, production_id),
    ] {
        if e.model.name != name || e.model.version != version || e.model.sha256 != sha256 {
            return Err(EvaluateError::Unpaired(format!(
                "the {what} evaluation is of {}@{} (model sha256 {}), not of {name}@{version} (sha256 {sha256}) as the registry records it",
                e.model.name, e.model.version, e.model.sha256
            )));
        }
    }
    compare(candidate, production, config)
}

/// The gate: `candidate` against `production` on the candidate's metric, paired on items.
pub fn compare(
    candidate: &Evaluation,
    production: &Evaluation,
    config: &GateConfig,
) -> Result<GateDecision, EvaluateError> {
    let unpaired = |why: String| Err(EvaluateError::Unpaired(why));
    if candidate.test_set.sha256 != production.test_set.sha256 {
        return unpaired(format!(
            "different test sets (sha256 {} vs {})",
            candidate.test_set.sha256, production.test_set.sha256
        ));
    }
    if candidate.metric != production.metric {
        return unpaired(format!(
            "different metrics ({} vs {})",
            candidate.metric, production.metric
        ));
    }
    if candidate.positive_label != production.positive_label {
        return unpaired("different positive labels".into());
    }
    if candidate.n != production.n {
        return unpaired(format!("{} items vs {}", candidate.n, production.n));
    }
    let differs = candidate
        .items
        .iter()
        .zip(&production.items)
        .position(|(a, b)| a.id != b.id || a.label != b.label);
    if let Some(i) = differs {
        return unpaired(format!("item {} differs (id or true label)", i + 1));
    }
    let (c, p) = (outcomes(candidate), outcomes(production));
    Ok(decide(candidate.metric, &c.view(), &p.view(), config)?)
}
