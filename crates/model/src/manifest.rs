//! `manifest.toml`: what a bundle is and how to feed and read its model.
//! The format is described for users in `models/README.md`.
use crate::error::ModelError;
use serde::Deserialize;
use std::path::Path;

/// The only manifest schema this build reads.
pub const BUNDLE_SCHEMA: &str = "argus.bundle/v1";

/// A parsed, validated manifest.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub schema: String,
    pub name: String,
    pub version: String,
    pub task: Task,
    #[serde(default)]
    pub description: String,
    pub model: ModelFile,
    pub input: Input,
    pub preprocess: Preprocess,
    pub output: Output,
    /// Free-form facts from the training script (metrics, seeds); informational.
    #[serde(default)]
    pub training: Option<toml::Table>,
}

/// What the model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Image classification: one score per label.
    Classify,
}

/// The ONNX file and its hash.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// Path relative to the bundle directory.
    pub file: String,
    /// Lowercase hex sha256 of the file.
    pub sha256: String,
    /// The engine to run it on (default tract); the worker's `--engine` overrides it.
    #[serde(default)]
    pub engine: Option<crate::engine::EngineKind>,
}

/// The model's image input.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// ONNX input name.
    pub name: String,
    /// `[batch, channels, height, width]` for `nchw`.
    pub shape: Vec<usize>,
    pub layout: Layout,
    pub color: Color,
}

/// Tensor layout of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    Nchw,
    Nhwc,
}

/// Channel order the model expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Color {
    Rgb,
    Bgr,
}

/// How pixels become the input tensor: `((u8 * scale) - mean[c]) / std[c]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    pub resize: Resize,
    pub filter: Filter,
    pub scale: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// How the frame is fitted to the input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resize {
    /// Resize to exactly the input's height and width, ignoring aspect ratio.
    Stretch,
}

/// Resampling filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    Nearest,
    Triangle,
    CatmullRom,
}

/// The model's output and how to read it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    /// ONNX output name.
    pub name: String,
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

impl Manifest {
    /// Reads and validates `dir/manifest.toml`.
    pub fn load(dir: &Path) -> Result<Manifest, ModelError> {
        let path = dir.join("manifest.toml");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ModelError::bundle(&path, format!("cannot read manifest: {e}")))?;
        let manifest: Manifest = toml::from_str(&text)
            .map_err(|e| ModelError::bundle(&path, format!("invalid manifest: {e}")))?;
        manifest
            .validate()
            .map_err(|reason| ModelError::bundle(&path, reason))?;
        Ok(manifest)
    }

    /// Cross-field checks; the error says what to fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.schema != BUNDLE_SCHEMA {
            return Err(format!(
                "schema is {:?}; this build reads {BUNDLE_SCHEMA:?}",
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
        if self.input.shape.len() != 4 || self.input.shape.contains(&0) {
            return Err(format!(
                "input.shape must be four positive dimensions (batch, then image), got {:?}",
                self.input.shape
            ));
        }
        if self.channels() != 3 {
            return Err(format!(
                "input must have 3 channels, got {}",
                self.channels()
            ));
        }
        if self.output.labels.len() < 2 {
            return Err("output.labels must name at least two classes".into());
        }
        if !(self.preprocess.scale.is_finite() && self.preprocess.scale > 0.0) {
            return Err("preprocess.scale must be a positive number".into());
        }
        if self
            .preprocess
            .std
            .iter()
            .any(|s| !(s.is_finite() && *s > 0.0))
        {
            return Err("preprocess.std must be positive numbers".into());
        }
        Ok(())
    }

    /// Input height and width in pixels.
    pub fn image_size(&self) -> (usize, usize) {
        match self.input.layout {
            Layout::Nchw => (self.input.shape[2], self.input.shape[3]),
            Layout::Nhwc => (self.input.shape[1], self.input.shape[2]),
        }
    }

    /// Input channels.
    pub fn channels(&self) -> usize {
        match self.input.layout {
            Layout::Nchw => self.input.shape[1],
            Layout::Nhwc => self.input.shape[3],
        }
    }
}
