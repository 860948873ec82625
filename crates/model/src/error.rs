//! Errors of bundle loading and inference.
use argus_wire::FailureKind;
use std::path::PathBuf;

/// Boxed error from a dependency (tract, image).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong loading a bundle or running it on one input.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The manifest is missing, unreadable or invalid; `reason` says what to fix.
    #[error("model bundle {path}: {reason}")]
    Bundle {
        /// The bundle directory or file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The ONNX file's hash differs from the manifest's.
    #[error("model file {path}: sha256 is {actual} but the manifest says {expected}; re-run the bundle script or fix model.sha256")]
    HashMismatch {
        /// The model file.
        path: PathBuf,
        /// sha256 the manifest declares.
        expected: String,
        /// sha256 of the file as read.
        actual: String,
    },
    /// tract could not load or plan the model.
    #[error("model file {path}: {reason}: {source}")]
    Load {
        /// The model file.
        path: PathBuf,
        /// What was being done.
        reason: String,
        /// The engine's error.
        #[source]
        source: BoxError,
    },
    /// The input bytes do not decode as an image.
    #[error("image does not decode: {source}")]
    Decode {
        /// The decoder's error.
        #[source]
        source: BoxError,
    },
    /// The payload is of the wrong kind or dimensions for this model.
    #[error("input does not fit the model: {reason}")]
    Shape {
        /// What the model expects and what it got.
        reason: String,
    },
    /// A record lacks a feature the model needs, or has it with the wrong type or value.
    #[error("{0}")]
    Feature(#[from] crate::tabular::FeatureError),
    /// A detection model's output does not have the shape its manifest declares.
    #[error("{0}")]
    Detection(#[from] crate::detection::DecodeError),
    /// Inference failed.
    #[error("inference failed: {source}")]
    Inference {
        /// The engine's error.
        #[source]
        source: BoxError,
    },
}

impl ModelError {
    /// Which DLQ reason a per-input error maps to.
    pub fn failure_kind(&self) -> FailureKind {
        match self {
            ModelError::Decode { .. } => FailureKind::Decode,
            ModelError::Shape { .. } => FailureKind::Shape,
            ModelError::Feature(_) => FailureKind::Feature,
            _ => FailureKind::Model,
        }
    }

    pub(crate) fn bundle(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        ModelError::Bundle {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
