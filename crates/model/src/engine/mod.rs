//! Inference engines behind one trait. The [`Classifier`](crate::Classifier) owns the
//! bundle (manifest, hash, pre- and postprocessing); an [`Engine`] only turns a batch of
//! input tensors into a batch of output values.
//!
//! - [`tract`]: pure Rust, always built, the default.
//! - `onnxruntime` (cargo feature `onnxruntime`): the `ort` crate with `load-dynamic`: the
//!   `libonnxruntime` shared library is opened at run time from `--onnxruntime-lib`,
//!   `ORT_DYLIB_PATH` or the loader's search path (PyPI's `onnxruntime` wheel ships one in
//!   `onnxruntime/capi/`). Nothing is downloaded at build or run time.
//!
//! The manifest's `model.engine` picks one; the worker's `--engine` flag overrides it.
use crate::error::ModelError;
pub use crate::manifest::EngineKind;
use crate::manifest::Manifest;
use std::path::{Path, PathBuf};

#[cfg(feature = "onnxruntime")]
pub mod onnxruntime;
pub mod tract;
pub mod trees;

/// How to build the engine; [`Default`] takes the manifest's choice (tract if none).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineOptions {
    /// Overrides the manifest's `model.engine`.
    pub kind: Option<EngineKind>,
    /// Calls that may run at once (the worker's inference threads). onnxruntime keeps one
    /// session per call slot; tract plans are shared and need none.
    pub concurrency: usize,
    /// onnxruntime's intra-op threads per session; 0 = onnxruntime's default (one per core).
    pub intra_threads: usize,
    /// The `libonnxruntime` shared library; else `ORT_DYLIB_PATH`, else the loader's path.
    pub onnxruntime_lib: Option<PathBuf>,
}

/// Runs a model on batches of input tensors. `Send + Sync`: called from several threads.
pub trait Engine: Send + Sync {
    /// Which engine this is.
    fn kind(&self) -> EngineKind;
    /// Runs `batch` inputs laid out one after the other in `input` (each the manifest's
    /// input shape with batch 1) and returns the first output's values for all of them.
    fn run(&self, batch: usize, input: &[f32]) -> Result<Vec<f32>, ModelError>;
    /// As [`Engine::run`], with the values of every output the manifest reads
    /// ([`Manifest::output_names`], in that order): detection models have several.
    fn run_all(&self, batch: usize, input: &[f32]) -> Result<Vec<Vec<f32>>, ModelError> {
        Ok(vec![self.run(batch, input)?])
    }
    /// Prepares for batches of `batch` inputs (tract builds a plan per batch size).
    fn warm(&self, _batch: usize) -> Result<(), ModelError> {
        Ok(())
    }
    /// Frees what was prepared for batches larger than `batch` (tract's plans, and at
    /// batch 1 the graph plans are built from), after calibration decided they are not
    /// used; larger batches fail afterwards.
    fn release_above(&self, _batch: usize) {}
}

/// Checks that the model produces the outputs the manifest names (`outputs`: the model's
/// output names), so an engine reads those rather than the first.
pub(crate) fn check_output(
    manifest: &Manifest,
    path: &Path,
    outputs: &[String],
) -> Result<(), ModelError> {
    match manifest
        .output_names()
        .into_iter()
        .find(|n| !outputs.iter().any(|o| o == n))
    {
        None => Ok(()),
        Some(missing) => Err(ModelError::bundle(
            path,
            format!(
                "the manifest names the output {missing:?} but the model's outputs are {outputs:?}"
            ),
        )),
    }
}

/// Builds the engine `options` (or the manifest) asks for, for the bundle's model file.
pub fn build(
    manifest: &Manifest,
    path: &Path,
    options: &EngineOptions,
) -> Result<Box<dyn Engine>, ModelError> {
    let kind = options
        .kind
        .or(manifest.model.engine)
        .unwrap_or(EngineKind::Tract);
    match kind {
        EngineKind::Tract => Ok(Box::new(tract::TractEngine::load(manifest, path)?)),
        EngineKind::Trees => Ok(Box::new(trees::TreesEngine::load(manifest, path)?)),
        #[cfg(feature = "onnxruntime")]
        EngineKind::Onnxruntime => Ok(Box::new(onnxruntime::OrtEngine::load(
            manifest, path, options,
        )?)),
        #[cfg(not(feature = "onnxruntime"))]
        EngineKind::Onnxruntime => Err(ModelError::bundle(
            path,
            "the onnxruntime engine is not in this build; rebuild with `--features onnxruntime` \
             (cargo build --release -p argus --features onnxruntime) or use engine \"tract\"",
        )),
    }
}
