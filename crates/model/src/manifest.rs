//! `manifest.toml`: what a bundle is and how to feed and read its model.
//! The format is described for users in `models/README.md`.
use crate::error::ModelError;
use serde::Deserialize;
use std::path::Path;

/// The manifest schema this build writes in its examples: v2 adds tabular bundles
/// (`task = "tabular"`, `[[features]]`) and the optional `[decision]`.
pub const BUNDLE_SCHEMA: &str = "argus.bundle/v2";
/// v3 adds the optional `[monitoring]` (the drift reference profile shipped with the
/// bundle, the metric the promotion gate judges the model on). Still read by this build;
/// a bundle without `[monitoring]` stays v2 so older builds read it.
pub const BUNDLE_SCHEMA_V3: &str = "argus.bundle/v3";
/// v4 adds detection bundles (`task = "detection"`, `[detection]`), letterbox resizing and
/// `preprocess.pad`. Still read by this build; bundles that need none of them keep v2/v3.
pub const BUNDLE_SCHEMA_V4: &str = "argus.bundle/v4";
/// v5 adds the optional `[explain]` (what the bundle ships for evidence on alerts: tree
/// covers, background rows). Still read by this build; bundles without `[explain]` keep
/// v2–v4 so older builds read them.
pub const BUNDLE_SCHEMA_V5: &str = "argus.bundle/v5";
/// The first schema: image classifiers only. Still read.
pub const BUNDLE_SCHEMA_V1: &str = "argus.bundle/v1";
/// Most values one input tensor may hold (`input.shape`'s product; 1 GiB of f32): far
/// above any image model (a 4096×4096 RGB input is 50 M) or tabular one, and a bound on
/// the blank input loading runs the model on.
pub const MAX_INPUT_VALUES: usize = 1 << 28;

/// A parsed, validated manifest.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`BUNDLE_SCHEMA`] or [`BUNDLE_SCHEMA_V1`].
    pub schema: String,
    /// Model name, reported in every prediction.
    pub name: String,
    /// Model version, reported in every prediction.
    pub version: String,
    /// What the model does.
    pub task: Task,
    /// One line for people browsing bundles; informational.
    #[serde(default)]
    pub description: String,
    /// The ONNX file, its hash and engine.
    pub model: ModelFile,
    /// The model's input tensor.
    pub input: Input,
    /// Image preprocessing (task `classify` only).
    #[serde(default)]
    pub preprocess: Option<Preprocess>,
    /// (v2) The record's features in model input order (task `tabular` only).
    #[serde(default)]
    pub features: Vec<Feature>,
    /// The model's output and its labels.
    pub output: Output,
    /// (v2) The decision the model's score supports: the default alert rule.
    #[serde(default)]
    pub decision: Option<Decision>,
    /// Free-form facts from the training script (metrics, seeds); informational.
    #[serde(default)]
    pub training: Option<toml::Table>,
    /// (v3) How the model is watched and judged in production.
    #[serde(default)]
    pub monitoring: Option<Monitoring>,
    /// (v4) How a detection model's outputs become boxes (task `detection` only).
    #[serde(default)]
    pub detection: Option<DetectionSpec>,
    /// (v5) What the bundle ships for evidence on alerts (tabular bundles).
    #[serde(default)]
    pub explain: Option<ExplainSpec>,
}

/// (v5) `[explain]`: files in the bundle directory that evidence on alerts reads.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainSpec {
    /// Each tree node's training cover (`argus.tree-covers/v1`): exact TreeSHAP for
    /// engine `trees` models.
    #[serde(default)]
    pub covers: Option<String>,
    /// Background rows (`argus.background/v1`, encoded model inputs) the model-agnostic
    /// method (sampling Shapley) measures contributions against.
    #[serde(default)]
    pub background: Option<String>,
}

/// (v4) `[detection]`: how the outputs of a detection model become boxes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionSpec {
    /// How the outputs are laid out.
    pub format: DetectionFormat,
    /// (`ssd`) The scores output: `[candidates]` for one class, `[candidates, classes]`
    /// otherwise (`output.name` is the boxes output).
    #[serde(default)]
    pub scores: Option<String>,
    /// (`ssd`, optional) An output of class indices `[candidates]` (as TensorFlow's
    /// post-processed exports give); without it a candidate's class is its best score's.
    #[serde(default)]
    pub classes: Option<String>,
    /// Boxes scoring below this are dropped (classes not in `thresholds`).
    #[serde(default = "default_score_threshold")]
    pub score_threshold: f32,
    /// Per-label score thresholds, by label (`person = 0.6`).
    #[serde(default)]
    pub thresholds: std::collections::BTreeMap<String, f32>,
    /// Non-maximum suppression: a box overlapping a better box of its class by more than
    /// this IoU is dropped.
    #[serde(default = "default_iou_threshold")]
    pub iou_threshold: f32,
    /// Boxes kept per class and frame, best first.
    #[serde(default = "default_max_detections")]
    pub max_detections: usize,
}

fn default_score_threshold() -> f32 {
    0.5
}
fn default_iou_threshold() -> f32 {
    0.5
}
fn default_max_detections() -> usize {
    100
}

/// (v4) The output layout of a detection model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectionFormat {
    /// Boxes decoded in the graph: `output.name` is `[candidates, 4]` as
    /// `(ymin, xmin, ymax, xmax)` normalised to the input (TensorFlow's SSD exports), with
    /// a `scores` output (and optionally `classes`).
    Ssd,
    /// One output `[1, 4 + classes, candidates]` as YOLOv8 exports it: centre x, centre y,
    /// width, height in input pixels, then one score per class.
    Yolo,
}

/// Names [`Monitoring::gate_metric`] may take (the promotion gate's metrics).
pub const GATE_METRICS: &[&str] = &["accuracy", "f1", "roc_auc"];

/// (v3) `[monitoring]`: what travels with the model for the fleet that watches it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Monitoring {
    /// The drift reference profile (`argus drift profile`), a JSON file in the bundle
    /// directory: a drift sidecar following the registry watches the production version's
    /// stream against it.
    #[serde(default)]
    pub profile: Option<String>,
    /// The metric every evaluation of this model for the promotion gate uses (one of
    /// [`GATE_METRICS`]); fixed with the model so candidates are all judged alike.
    #[serde(default)]
    pub gate_metric: Option<String>,
}

/// What the model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Image classification: one score per label.
    Classify,
    /// (v2) Records of named features (e.g. a customer), assembled as `[[features]]` says;
    /// one score per label.
    Tabular,
    /// (v4) Object detection: boxes with a label and score each, as `[detection]` says;
    /// a frame's score per label is its best box's.
    Detection,
}

/// (v2) One feature of a tabular model, in model input order.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feature {
    /// The record field it is read from.
    pub name: String,
    /// How the value becomes model input (`type` in the file).
    #[serde(rename = "type")]
    pub kind: FeatureKind,
    /// `category` only: the values, in one-hot column order.
    #[serde(default)]
    pub categories: Vec<String>,
}

/// (v2) How a feature's value becomes model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureKind {
    /// A whole number (an integral float is accepted), one input column.
    Int,
    /// A number (an integer is accepted), one input column.
    Float,
    /// true / false (or 1 / 0), one input column of 1.0 / 0.0.
    Bool,
    /// One of `categories`, one-hot: one input column per category.
    Category,
}

impl Feature {
    /// Input columns this feature fills.
    pub fn width(&self) -> usize {
        match self.kind {
            FeatureKind::Category => self.categories.len(),
            _ => 1,
        }
    }
}

/// (v2) When the positive label's probability means "act": alert rules default to it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// The label watched (one of `output.labels`).
    pub positive: String,
    /// Alert when its probability is at least this (0..=1).
    pub threshold: f32,
}

/// The ONNX file and its hash.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// Path relative to the bundle directory.
    pub file: String,
    /// Lowercase hex sha256 of the file.
    pub sha256: String,
    /// The engine to run it on (default: chosen from the graph by
    /// [`crate::engine::rule::default_kind`]; `auto`: the fastest that loads it, measured at
    /// load time); the worker's `--engine` overrides it.
    #[serde(default)]
    pub engine: Option<EngineKind>,
}

/// Which engine runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EngineKind {
    /// Not an engine but a choice: every engine this build has that loads the model is
    /// timed on it at load time and the fastest is kept ([`crate::engine::build`]); a built
    /// engine's [`kind`](crate::engine::Engine::kind) is never `Auto`.
    Auto,
    /// tract (pure Rust).
    #[default]
    Tract,
    /// onnxruntime, loaded dynamically (cargo feature `onnxruntime`).
    #[serde(alias = "ort")]
    Onnxruntime,
    /// Native evaluator for ONNX-ML tree ensembles (see [`crate::engine::trees`]).
    Trees,
}

impl EngineKind {
    /// The name used in flags and manifests (`auto`, `tract`, `onnxruntime`, `trees`).
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Auto => "auto",
            EngineKind::Tract => "tract",
            EngineKind::Onnxruntime => "onnxruntime",
            EngineKind::Trees => "trees",
        }
    }
}

impl std::fmt::Display for EngineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EngineKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(EngineKind::Auto),
            "tract" => Ok(EngineKind::Tract),
            "onnxruntime" | "ort" => Ok(EngineKind::Onnxruntime),
            "trees" => Ok(EngineKind::Trees),
            other => Err(format!(
                "unknown engine {other:?}; use \"auto\", \"tract\", \"onnxruntime\" or \"trees\""
            )),
        }
    }
}

/// The model's input.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// ONNX input name.
    pub name: String,
    /// `[batch, channels, height, width]` for `nchw` images; `[batch, columns]` for tabular.
    pub shape: Vec<usize>,
    /// Images only (required for `classify`).
    #[serde(default)]
    pub layout: Option<Layout>,
    /// Images only (required for `classify`).
    #[serde(default)]
    pub color: Option<Color>,
}

/// Tensor layout of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// Batch, channels, height, width.
    Nchw,
    /// Batch, height, width, channels.
    Nhwc,
}

/// Channel order the model expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Color {
    /// Red, green, blue.
    Rgb,
    /// Blue, green, red (OpenCV's order).
    Bgr,
}

/// How pixels become the input tensor: `((u8 * scale) - mean[c]) / std[c]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    /// How the frame is fitted to the input size.
    pub resize: Resize,
    /// Resampling filter of the resize.
    pub filter: Filter,
    /// (v4, letterbox) The colour of the padding around a letterboxed frame, 8-bit RGB
    /// (default mid-grey 114, as YOLO trains with).
    #[serde(default = "default_pad")]
    pub pad: [u8; 3],
    /// (v4) Decode JPEG frames much larger than the input at 1/2, 1/4 or 1/8 scale in the
    /// DCT domain before resizing ([`crate::preprocess::jpeg_reduction`]; libjpeg-turbo,
    /// [`crate::jpeg`]): pixels a little softer than a full decode and resize, a sixteenth of
    /// the decoded memory at 1/4, and less CPU (example `decode_cost`: a noisy 1080p q85 frame
    /// for a 300x300 input 5.9 ms against 8.5 ms decoded whole and resized). Default off:
    /// classifiers' reference numbers are on full decodes.
    #[serde(default)]
    pub reduced_decode: bool,
    /// Multiplier applied to each 8-bit value first (e.g. `1/255`).
    pub scale: f32,
    /// Per-channel mean, subtracted after scaling.
    pub mean: [f32; 3],
    /// Per-channel standard deviation, divided by last.
    pub std: [f32; 3],
}

/// How the frame is fitted to the input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resize {
    /// Resize to exactly the input's height and width, ignoring aspect ratio.
    Stretch,
    /// (v4) Scale by one factor to fit inside the input, keeping the aspect ratio, and
    /// centre it on a `pad`-coloured canvas.
    Letterbox,
}

fn default_pad() -> [u8; 3] {
    [114, 114, 114]
}

/// Resampling filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    /// Nearest neighbour.
    Nearest,
    /// Bilinear (triangle) filter.
    Triangle,
    /// Bicubic Catmull-Rom filter.
    CatmullRom,
}

/// The model's output and how to read it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    /// ONNX output name.
    pub name: String,
    /// How the output values become probabilities.
    pub kind: OutputKind,
    /// One label per output element, in order.
    pub labels: Vec<String>,
}

/// What the output numbers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// Unnormalised scores: softmax is applied.
    Logits,
    /// Already probabilities: used as they are.
    Probabilities,
}

/// A name of one path segment: not empty, not `.`/`..`, no separators, at most 100 bytes
/// (a ustar name).
pub fn plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && name.len() <= 100
}

impl Manifest {
    /// Reads and validates `dir/manifest.toml`.
    pub fn load(dir: &Path) -> Result<Manifest, ModelError> {
        let path = dir.join("manifest.toml");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ModelError::bundle(&path, format!("cannot read manifest: {e}")))?;
        Manifest::parse(&text, &path)
    }

    /// Parses and validates manifest text; `path` names the file in errors
    /// ([`ModelError::Bundle`]).
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, ModelError> {
        let manifest: Manifest = toml::from_str(text)
            .map_err(|e| ModelError::bundle(path, format!("invalid manifest: {e}")))?;
        manifest
            .validate()
            .map_err(|reason| ModelError::bundle(path, reason))?;
        Ok(manifest)
    }

    /// Cross-field checks; the error says what to fix.
    pub fn validate(&self) -> Result<(), String> {
        if ![
            BUNDLE_SCHEMA_V5,
            BUNDLE_SCHEMA_V4,
            BUNDLE_SCHEMA_V3,
            BUNDLE_SCHEMA,
            BUNDLE_SCHEMA_V1,
        ]
        .contains(&self.schema.as_str())
        {
            return Err(format!(
                "schema is {:?}; this build reads {BUNDLE_SCHEMA_V5:?}, {BUNDLE_SCHEMA_V4:?}, {BUNDLE_SCHEMA_V3:?}, {BUNDLE_SCHEMA:?} and {BUNDLE_SCHEMA_V1:?}",
                self.schema
            ));
        }
        if self.name.is_empty() || self.version.is_empty() {
            return Err("name and version must not be empty".into());
        }
        if self.model.sha256.len() != 64
            || !self
                .model
                .sha256
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err("model.sha256 must be 64 lowercase hex digits".into());
        }
        // Checked first: the classifier multiplies the shape out (found by
        // fuzz_manifest_mutated_real: an overflow panic, or a huge allocation).
        match self
            .input
            .shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
        {
            Some(n) if n <= MAX_INPUT_VALUES => {}
            _ => {
                return Err(format!(
                    "input.shape {:?} holds more than {MAX_INPUT_VALUES} values",
                    self.input.shape
                ))
            }
        }
        if self.task != Task::Detection && self.detection.is_some() {
            return Err("[detection] is for task = \"detection\"; remove it".into());
        }
        if self.task == Task::Detection {
            if self.output.labels.is_empty() {
                return Err("output.labels must name the classes the detector finds".into());
            }
        } else if self.output.labels.len() < 2 {
            return Err("output.labels must name at least two classes".into());
        }
        if let Some(e) = &self.explain {
            self.validate_explain(e)?;
        }
        if self.schema != BUNDLE_SCHEMA_V4 && self.schema != BUNDLE_SCHEMA_V5 {
            let needs_v4 = if self.task == Task::Detection || self.detection.is_some() {
                Some("task \"detection\" and [detection]")
            } else if self.preprocess.as_ref().is_some_and(|p| {
                p.resize == Resize::Letterbox || p.pad != default_pad() || p.reduced_decode
            }) {
                Some("preprocess.resize = \"letterbox\", preprocess.pad and preprocess.reduced_decode")
            } else {
                None
            };
            if let Some(what) = needs_v4 {
                return Err(format!("{what} need schema = {BUNDLE_SCHEMA_V4:?}"));
            }
        }
        if self.schema == BUNDLE_SCHEMA_V1
            && (self.task != Task::Classify || !self.features.is_empty() || self.decision.is_some())
        {
            return Err(format!(
                "task \"tabular\", [[features]] and [decision] need schema = {BUNDLE_SCHEMA:?}"
            ));
        }
        if let Some(m) = &self.monitoring {
            self.validate_monitoring(m)?;
        }
        if let Some(d) = &self.decision {
            if !self.output.labels.contains(&d.positive) {
                return Err(format!(
                    "decision.positive is {:?}, which is not one of output.labels ({})",
                    d.positive,
                    self.output.labels.join(", ")
                ));
            }
            if !(0.0..=1.0).contains(&d.threshold) {
                return Err(format!(
                    "decision.threshold is {}; it must be a probability within 0..=1",
                    d.threshold
                ));
            }
        }
        match self.task {
            Task::Classify => self.validate_image(),
            Task::Tabular => self.validate_tabular(),
            Task::Detection => self
                .validate_image()
                .and_then(|()| self.validate_detection()),
        }
    }

    fn validate_detection(&self) -> Result<(), String> {
        let Some(d) = &self.detection else {
            return Err(
                "task = \"detection\" needs [detection] (format = \"ssd\" or \"yolo\", thresholds)"
                    .into(),
            );
        };
        match d.format {
            DetectionFormat::Ssd if d.scores.is_none() => {
                return Err("detection.format = \"ssd\" needs detection.scores (the scores output; output.name is the boxes output)".into());
            }
            DetectionFormat::Yolo if d.scores.is_some() || d.classes.is_some() => {
                return Err("detection.format = \"yolo\" has one output (output.name); remove detection.scores and detection.classes".into());
            }
            _ => {}
        }
        let names = self.output_names();
        if let Some(dup) = names
            .iter()
            .enumerate()
            .find(|(i, n)| names[..*i].contains(n))
        {
            return Err(format!(
                "output {:?} is named twice among output.name, detection.scores and detection.classes",
                dup.1
            ));
        }
        let probability = |what: &str, t: f32| {
            if (0.0..=1.0).contains(&t) {
                Ok(())
            } else {
                Err(format!("{what} is {t}; it must be within 0..=1"))
            }
        };
        probability("detection.score_threshold", d.score_threshold)?;
        for (label, t) in &d.thresholds {
            if !self.output.labels.contains(label) {
                return Err(format!(
                    "detection.thresholds names {label:?}, which is not one of output.labels ({})",
                    self.output.labels.join(", ")
                ));
            }
            probability(&format!("detection.thresholds.{label}"), *t)?;
        }
        if !(d.iou_threshold > 0.0 && d.iou_threshold <= 1.0) {
            return Err(format!(
                "detection.iou_threshold is {}; it must be within (0, 1]",
                d.iou_threshold
            ));
        }
        if d.max_detections == 0 {
            return Err("detection.max_detections must be at least 1".into());
        }
        Ok(())
    }

    /// The ONNX outputs the engine reads, in order: `output.name`, then (detection) the
    /// scores and classes outputs.
    pub fn output_names(&self) -> Vec<&str> {
        let mut names = vec![self.output.name.as_str()];
        if let Some(d) = &self.detection {
            names.extend(d.scores.as_deref());
            names.extend(d.classes.as_deref());
        }
        names
    }

    /// Values the first output holds per input when that is fixed by the manifest (one per
    /// label); `None` for detection models, whose candidates the model decides.
    pub fn output_len(&self) -> Option<usize> {
        (self.task != Task::Detection).then_some(self.output.labels.len())
    }

    fn validate_explain(&self, e: &ExplainSpec) -> Result<(), String> {
        if self.schema != BUNDLE_SCHEMA_V5 {
            return Err(format!("[explain] needs schema = {BUNDLE_SCHEMA_V5:?}"));
        }
        if self.task != Task::Tabular {
            return Err("[explain] is for task = \"tabular\" (images are explained by occlusion, which needs no files); remove it".into());
        }
        for (key, file) in [("covers", &e.covers), ("background", &e.background)] {
            if let Some(f) = file {
                if !plain_file_name(f) || f == "manifest.toml" || *f == self.model.file {
                    return Err(format!(
                        "explain.{key} {f:?} must be a file name in the bundle directory (no path), not the manifest or the model"
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_monitoring(&self, m: &Monitoring) -> Result<(), String> {
        if ![BUNDLE_SCHEMA_V3, BUNDLE_SCHEMA_V4, BUNDLE_SCHEMA_V5].contains(&self.schema.as_str()) {
            return Err(format!(
                "[monitoring] needs schema = {BUNDLE_SCHEMA_V3:?} (or {BUNDLE_SCHEMA_V4:?}, {BUNDLE_SCHEMA_V5:?})"
            ));
        }
        if let Some(p) = &m.profile {
            if !plain_file_name(p) || p == "manifest.toml" || *p == self.model.file {
                return Err(format!(
                    "monitoring.profile {p:?} must be a file name in the bundle directory (no path), not the manifest or the model"
                ));
            }
        }
        if let Some(g) = &m.gate_metric {
            if !GATE_METRICS.contains(&g.as_str()) {
                return Err(format!(
                    "monitoring.gate_metric is {g:?}; it must be one of {}",
                    GATE_METRICS.join(", ")
                ));
            }
            if g != "accuracy" && self.decision.is_none() {
                return Err(format!(
                    "monitoring.gate_metric {g:?} needs a positive label: add [decision] or use \"accuracy\""
                ));
            }
        }
        Ok(())
    }

    /// The files a bundle directory holds besides `manifest.toml`: the model, then the
    /// drift reference profile if `[monitoring]` names one.
    pub fn files(&self) -> Vec<&str> {
        let mut files = vec![self.model.file.as_str()];
        if let Some(p) = self.monitoring.as_ref().and_then(|m| m.profile.as_deref()) {
            files.push(p);
        }
        if let Some(e) = &self.explain {
            files.extend(e.covers.as_deref());
            files.extend(e.background.as_deref());
        }
        files
    }

    fn validate_image(&self) -> Result<(), String> {
        if !self.features.is_empty() {
            return Err(
                "[[features]] are for task = \"tabular\"; an image classifier has none".into(),
            );
        }
        if self.input.shape.len() != 4 || self.input.shape.contains(&0) {
            return Err(format!(
                "input.shape must be four positive dimensions (batch, then image), got {:?}",
                self.input.shape
            ));
        }
        if self.input.layout.is_none() || self.input.color.is_none() {
            return Err("input.layout (nchw or nhwc) and input.color (rgb or bgr) are required for image tasks (classify, detection)".into());
        }
        if self.channels() != 3 {
            return Err(format!(
                "input must have 3 channels, got {}",
                self.channels()
            ));
        }
        let Some(p) = &self.preprocess else {
            return Err("[preprocess] (resize, filter, scale, mean, std) is required for image tasks (classify, detection)".into());
        };
        if !(p.scale.is_finite() && p.scale > 0.0) {
            return Err("preprocess.scale must be a positive number".into());
        }
        if p.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err("preprocess.std must be positive numbers".into());
        }
        Ok(())
    }

    fn validate_tabular(&self) -> Result<(), String> {
        if self.preprocess.is_some() || self.input.layout.is_some() || self.input.color.is_some() {
            return Err("[preprocess], input.layout and input.color are for images; remove them from a tabular bundle".into());
        }
        if self.input.shape.len() != 2 || self.input.shape.contains(&0) {
            return Err(format!(
                "input.shape of a tabular model must be [batch, columns], got {:?}",
                self.input.shape
            ));
        }
        if self.features.is_empty() {
            return Err("a tabular bundle lists its features: add [[features]] entries (name, type) in model input order".into());
        }
        let mut seen = std::collections::HashSet::new();
        for f in &self.features {
            if f.name.is_empty() {
                return Err("every [[features]] entry needs a name".into());
            }
            if !seen.insert(f.name.as_str()) {
                return Err(format!(
                    "feature {:?} is listed twice in [[features]]",
                    f.name
                ));
            }
            match f.kind {
                FeatureKind::Category => {
                    if f.categories.is_empty() {
                        return Err(format!(
                            "feature {:?} is a category: list its values in `categories` (one-hot column order)",
                            f.name
                        ));
                    }
                    let mut cats = std::collections::HashSet::new();
                    if let Some(dup) = f.categories.iter().find(|c| !cats.insert(c.as_str())) {
                        return Err(format!("feature {:?} lists category {dup:?} twice", f.name));
                    }
                }
                _ if !f.categories.is_empty() => {
                    return Err(format!(
                        "feature {:?} has `categories` but its type is not \"category\"",
                        f.name
                    ));
                }
                _ => {}
            }
        }
        let width = self.feature_width();
        if width != self.input.shape[1] {
            return Err(format!(
                "the features fill {width} input columns (a category one per value) but input.shape says {}",
                self.input.shape[1]
            ));
        }
        Ok(())
    }

    /// Values in one input tensor: the product of `input.shape`.
    pub fn input_values(&self) -> usize {
        self.input.shape.iter().product()
    }

    /// Input columns the `[[features]]` fill (tabular).
    pub fn feature_width(&self) -> usize {
        self.features.iter().map(Feature::width).sum()
    }

    /// Input height and width in pixels.
    pub fn image_size(&self) -> (usize, usize) {
        match self.layout() {
            Layout::Nchw => (self.input.shape[2], self.input.shape[3]),
            Layout::Nhwc => (self.input.shape[1], self.input.shape[2]),
        }
    }

    /// Input channels.
    pub fn channels(&self) -> usize {
        match self.layout() {
            Layout::Nchw => self.input.shape[1],
            Layout::Nhwc => self.input.shape[3],
        }
    }

    /// Image layout (`nchw` if not given; validation requires it for images).
    pub fn layout(&self) -> Layout {
        self.input.layout.unwrap_or(Layout::Nchw)
    }

    /// Channel order (`rgb` if not given; validation requires it for images).
    pub fn color(&self) -> Color {
        self.input.color.unwrap_or(Color::Rgb)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const DETECTOR: &str = include_str!("../../../models/person-detector/manifest.toml");

    fn parse(text: &str) -> Result<Manifest, String> {
        Manifest::parse(text, Path::new("m.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn the_person_detector_reads_its_outputs_in_order() {
        let m = parse(DETECTOR).unwrap();
        assert_eq!(m.task, Task::Detection);
        assert_eq!(m.output_names(), ["boxes", "scores"]);
        assert_eq!(m.output_len(), None);
        let d = m.detection.unwrap();
        assert_eq!(
            (d.format, d.score_threshold, d.iou_threshold),
            (DetectionFormat::Ssd, 0.5, 0.6)
        );
    }

    #[test]
    fn detection_settings_are_checked_with_what_to_fix() {
        let cases = [
            (
                DETECTOR.replace("argus.bundle/v4", "argus.bundle/v3"),
                "need schema = \"argus.bundle/v4\"",
            ),
            (
                DETECTOR.replace("scores = \"scores\"\n", ""),
                "needs detection.scores",
            ),
            (
                DETECTOR.replace("format = \"ssd\"", "format = \"yolo\""),
                "has one output",
            ),
            (
                DETECTOR.replace("iou_threshold = 0.6", "iou_threshold = 0"),
                "iou_threshold",
            ),
            (
                DETECTOR.replace("score_threshold = 0.5", "score_threshold = 1.5"),
                "within 0..=1",
            ),
            (
                DETECTOR.replace("max_detections = 100", "max_detections = 0"),
                "at least 1",
            ),
            (
                DETECTOR.replace(
                    "max_detections = 100",
                    "max_detections = 100\n[detection.thresholds]\ncar = 0.3",
                ),
                "not one of output.labels",
            ),
            (
                DETECTOR.replace("scores = \"scores\"", "scores = \"boxes\""),
                "named twice",
            ),
            (
                DETECTOR.replace("task = \"detection\"", "task = \"classify\""),
                "[detection] is for task",
            ),
        ];
        for (text, want) in cases {
            let err = parse(&text).unwrap_err();
            assert!(err.contains(want), "{want:?} not in {err:?}");
        }
        let no_section = DETECTOR.split("[detection]").next().unwrap().to_string()
            + "[decision]\npositive = \"person\"\nthreshold = 0.5\n";
        assert!(parse(&no_section)
            .unwrap_err()
            .contains("needs [detection]"));
    }

    #[test]
    fn letterbox_needs_v4() {
        let camera = include_str!("../../../models/camera-person/manifest.toml")
            .replace("resize = \"stretch\"", "resize = \"letterbox\"");
        assert!(parse(&camera).unwrap_err().contains("letterbox"));
    }
}

/// Bounded fuzzing of the manifest parser (proptest, fixed seed; `PROPTEST_CASES` /
/// `PROPTEST_RNG_SEED` run a longer campaign, see docs/testing.md): TOML-ish text built
/// from the manifest's own keys and values, and the real manifests under `models/`
/// mutated line by line. Never a panic; every error is a [`ModelError::Bundle`] naming the
/// file; a manifest that passes has the invariants the loader and classifier rely on.
#[cfg(test)]
mod fuzz {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::{select, Index};
    use proptest::test_runner::RngSeed;

    fn fuzz_config(cases: u32) -> ProptestConfig {
        ProptestConfig {
            cases,
            rng_seed: RngSeed::Fixed(0x0A26_0005),
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    const REAL: [&str; 3] = [
        include_str!("../../../models/camera-person/manifest.toml"),
        include_str!("../../../models/churn/manifest.toml"),
        include_str!("../../../models/person-detector/manifest.toml"),
    ];

    /// Parses `text`; on success checks what code after the parser relies on (and calls
    /// the accessors it calls), on failure that the error is typed and names the file.
    fn check(text: &str) -> Result<(), TestCaseError> {
        let path = Path::new("bundle/manifest.toml");
        match Manifest::parse(text, path) {
            Ok(m) => {
                prop_assert!([
                    BUNDLE_SCHEMA_V5,
                    BUNDLE_SCHEMA_V4,
                    BUNDLE_SCHEMA_V3,
                    BUNDLE_SCHEMA,
                    BUNDLE_SCHEMA_V1
                ]
                .contains(&m.schema.as_str()));
                let least = if m.task == Task::Detection { 1 } else { 2 };
                prop_assert!(m.output.labels.len() >= least);
                prop_assert_eq!(m.model.sha256.len(), 64);
                prop_assert!(m.input_values() >= 1);
                match m.task {
                    Task::Classify | Task::Detection => {
                        prop_assert_eq!(m.input.shape.len(), 4);
                        let (h, w) = m.image_size();
                        prop_assert!(h >= 1 && w >= 1 && m.channels() == 3);
                        let p = m.preprocess.as_ref().unwrap();
                        prop_assert!(p.scale > 0.0 && p.std.iter().all(|s| *s > 0.0));
                    }
                    Task::Tabular => {
                        prop_assert_eq!(m.feature_width(), m.input.shape[1]);
                    }
                }
                prop_assert_eq!(m.task == Task::Detection, m.detection.is_some());
                if let Some(d) = &m.decision {
                    prop_assert!(m.output.labels.contains(&d.positive));
                }
            }
            Err(ModelError::Bundle { path: p, reason }) => {
                prop_assert_eq!(p, path);
                prop_assert!(!reason.is_empty());
            }
            Err(other) => return Err(TestCaseError::fail(format!("{other:?}"))),
        }
        Ok(())
    }

    /// Values a manifest line may take: the right kinds, the wrong kinds, extremes.
    fn toml_value() -> impl Strategy<Value = String> {
        prop_oneof![
            select(vec![
                "\"argus.bundle/v2\"",
                "\"argus.bundle/v1\"",
                "\"classify\"",
                "\"tabular\"",
                "\"nchw\"",
                "\"nhwc\"",
                "\"rgb\"",
                "\"bgr\"",
                "\"stretch\"",
                "\"triangle\"",
                "\"logits\"",
                "\"probabilities\"",
                "\"tract\"",
                "\"trees\"",
                "\"ort\"",
                "\"int\"",
                "\"float\"",
                "\"bool\"",
                "\"category\"",
                "\"\"",
                "true",
                "nan",
                "inf",
                "-0.0",
                "1e400",
                "18446744073709551615",
                "9223372036854775807",
                "[]",
                "[1, 3, 32, 32]",
                "[1, 20]",
                "[0, 3, 1, 1]",
                "[\"a\", \"a\"]",
                "[\"a\", \"b\"]",
                "[0.5, 0.5, 0.5]",
                "[1, 2]",
                "{ a = 1 }",
            ])
            .prop_map(str::to_owned),
            "\"[0-9a-f]{64}\"",
            any::<i64>().prop_map(|i| i.to_string()),
            any::<f32>().prop_map(|x| format!("{x:?}")),
            proptest::collection::vec(
                prop_oneof![Just(0u64), Just(1), Just(3), Just(1 << 32), any::<u64>()],
                0..6
            )
            .prop_map(|v| format!("{v:?}")),
            "[ -~]{0,12}",
            // Image shapes with extreme sides.
            (
                select(vec![0u64, 1, 32, 1 << 16, 1 << 32, i64::MAX as u64]),
                select(vec![0u64, 1, 32, 1 << 16, 1 << 32, i64::MAX as u64]),
            )
                .prop_map(|(h, w)| format!("[1, 3, {h}, {w}]")),
        ]
    }

    fn toml_line() -> impl Strategy<Value = String> {
        let key = select(vec![
            "schema",
            "name",
            "version",
            "task",
            "description",
            "file",
            "sha256",
            "engine",
            "shape",
            "layout",
            "color",
            "resize",
            "filter",
            "scale",
            "mean",
            "std",
            "kind",
            "labels",
            "type",
            "categories",
            "positive",
            "threshold",
            "script",
            "unknown",
        ]);
        let table = select(vec![
            "[model]",
            "[input]",
            "[preprocess]",
            "[output]",
            "[decision]",
            "[training]",
            "[[features]]",
            "[input.extra]",
            "[[output]]",
        ]);
        prop_oneof![
            4 => (key, toml_value()).prop_map(|(k, v)| format!("{k} = {v}")),
            1 => table.prop_map(str::to_owned),
            1 => "[ -~]{0,16}",
        ]
    }

    /// One change to a real manifest, line by line.
    #[derive(Debug, Clone)]
    enum Edit {
        Delete(Index),
        Duplicate(Index),
        Replace(Index, String),
        Insert(Index, String),
        /// The line's value (after `=`) replaced.
        Value(Index, String),
        Truncate(Index),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            1 => any::<Index>().prop_map(Edit::Delete),
            1 => any::<Index>().prop_map(Edit::Duplicate),
            1 => (any::<Index>(), toml_line()).prop_map(|(i, l)| Edit::Replace(i, l)),
            1 => (any::<Index>(), toml_line()).prop_map(|(i, l)| Edit::Insert(i, l)),
            3 => (any::<Index>(), toml_value()).prop_map(|(i, v)| Edit::Value(i, v)),
            1 => any::<Index>().prop_map(Edit::Truncate),
        ]
    }

    fn apply(text: &str, edits: &[Edit]) -> String {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        for e in edits {
            let n = lines.len();
            match e {
                Edit::Delete(i) if n > 0 => {
                    lines.remove(i.index(n));
                }
                Edit::Duplicate(i) if n > 0 => {
                    let l = lines[i.index(n)].clone();
                    lines.insert(i.index(n), l);
                }
                Edit::Replace(i, l) if n > 0 => lines[i.index(n)] = l.clone(),
                Edit::Insert(i, l) => lines.insert(i.index(n + 1), l.clone()),
                Edit::Value(i, v) if n > 0 => {
                    let line = &mut lines[i.index(n)];
                    if let Some(eq) = line.find('=') {
                        line.truncate(eq + 1);
                        line.push(' ');
                        line.push_str(v);
                    }
                }
                Edit::Truncate(i) if n > 0 => {
                    let line = &mut lines[i.index(n)];
                    let cut = i.index(line.len() + 1);
                    if line.is_char_boundary(cut) {
                        line.truncate(cut);
                    }
                }
                _ => {}
            }
        }
        lines.join("\n")
    }

    /// Regression (fuzz_manifest_mutated_real): a shape whose product overflows passed
    /// validation, then panicked (debug) or wrapped (release) where the classifier sizes
    /// its input.
    #[test]
    fn fuzz_manifest_regression_shape_product_overflow() {
        for shape in ["[1, 3, 4294967296, 4294967296]", "[1, 3, 65536, 65536]"] {
            let text = REAL[0].replace("[1, 3, 32, 32]", shape);
            match Manifest::parse(&text, Path::new("m.toml")) {
                Err(ModelError::Bundle { reason, .. }) => {
                    assert!(reason.contains("holds more than"), "{reason}")
                }
                other => panic!("{other:?}"),
            }
        }
    }

    /// The churn manifest as a v2 bundle: without its `[explain]` (v5).
    fn without_explain(text: &str) -> String {
        let (head, tail) = text
            .split_once("\n# Evidence on alerts")
            .unwrap_or((text, ""));
        let tail = tail.split_once("\n[training]").map_or("", |(_, t)| t);
        format!("{head}\n[training]{tail}").replace(BUNDLE_SCHEMA_V5, BUNDLE_SCHEMA)
    }

    /// `[explain]` (v5): plain file names, tabular bundles only, v5 only; its files belong
    /// to the bundle (the registry ships them with it).
    #[test]
    fn explain_needs_v5_tabular_and_plain_file_names() {
        let m = Manifest::parse(REAL[1], Path::new("m.toml")).unwrap();
        assert_eq!(
            m.files(),
            vec!["model.onnx", "tree_covers.json", "background.json"]
        );
        let v2 = without_explain(REAL[1]);
        assert!(Manifest::parse(&v2, Path::new("m.toml"))
            .unwrap()
            .explain
            .is_none());
        for (text, why) in [
            (
                REAL[1].replace(BUNDLE_SCHEMA_V5, BUNDLE_SCHEMA),
                "[explain] needs schema",
            ),
            (
                REAL[1].replace("\"tree_covers.json\"", "\"../covers.json\""),
                "must be a file name",
            ),
            (
                REAL[1].replace("\"background.json\"", "\"model.onnx\""),
                "not the manifest or the model",
            ),
            (
                format!(
                    "{}\n[explain]\ncovers = \"c.json\"\n",
                    REAL[0].replace(BUNDLE_SCHEMA, BUNDLE_SCHEMA_V5)
                ),
                "for task = \"tabular\"",
            ),
        ] {
            match Manifest::parse(&text, Path::new("m.toml")) {
                Err(ModelError::Bundle { reason, .. }) => {
                    assert!(reason.contains(why), "{why}: {reason}")
                }
                other => panic!("{why}: {other:?}"),
            }
        }
    }

    #[test]
    fn fuzz_manifest_real_manifests_parse() {
        for text in REAL {
            let m = Manifest::parse(text, Path::new("manifest.toml")).unwrap();
            assert!(m.input_values() >= 1);
        }
    }

    /// `[monitoring]` (v3): a profile file name and a gate metric, each checked with what
    /// to fix; older schemas refuse it so an older build never half-reads a v3 bundle.
    #[test]
    fn monitoring_needs_v3_a_plain_profile_name_and_a_known_metric() {
        let v3 = without_explain(REAL[1]).replace(BUNDLE_SCHEMA, BUNDLE_SCHEMA_V3);
        let with = |base: &str, section: &str| format!("{base}\n[monitoring]\n{section}\n");
        let parse = |text: String| Manifest::parse(&text, Path::new("m.toml"));
        let m = parse(with(
            &v3,
            "profile = \"reference.json\"\ngate_metric = \"f1\"",
        ))
        .unwrap();
        assert_eq!(m.files(), vec!["model.onnx", "reference.json"]);
        assert_eq!(
            m.monitoring.as_ref().and_then(|m| m.gate_metric.as_deref()),
            Some("f1")
        );
        assert_eq!(parse(v3.clone()).unwrap().files(), vec!["model.onnx"]);
        for (text, why) in [
            (
                with(&without_explain(REAL[1]), "gate_metric = \"f1\""),
                "needs schema",
            ),
            (with(&v3, "profile = \"../x.json\""), "no path"),
            (
                with(&v3, "profile = \"model.onnx\""),
                "not the manifest or the model",
            ),
            (
                with(&v3, "gate_metric = \"auc\""),
                "one of accuracy, f1, roc_auc",
            ),
            (with(&v3, "threshold = 1"), "unknown field"),
        ] {
            match parse(text) {
                Err(ModelError::Bundle { reason, .. }) => assert!(reason.contains(why), "{reason}"),
                other => panic!("{why}: {other:?}"),
            }
        }
        let no_decision = REAL[0].replace(BUNDLE_SCHEMA, BUNDLE_SCHEMA_V3);
        let no_decision = no_decision
            .split("[decision]")
            .next()
            .unwrap_or_default()
            .to_string();
        let e = parse(with(&no_decision, "gate_metric = \"roc_auc\"")).unwrap_err();
        assert!(e.to_string().contains("needs a positive label"), "{e}");
    }

    proptest! {
        #![proptest_config(fuzz_config(2000))]

        /// Text assembled from manifest keys, tables and values (and junk).
        #[test]
        fn fuzz_manifest_arbitrary_text(lines in proptest::collection::vec(toml_line(), 0..40)) {
            check(&lines.join("\n"))?;
        }

        /// The real manifests with a few lines deleted, duplicated, replaced or changed.
        #[test]
        fn fuzz_manifest_mutated_real(
            which in 0..REAL.len(),
            edits in proptest::collection::vec(edit(), 1..5),
        ) {
            check(&apply(REAL[which], &edits))?;
        }
    }
}
