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
//! The manifest's `model.engine` picks one; the worker's `--engine` flag overrides it. When
//! neither names one, a fixed rule on the model's graph does ([`rule`]): the trees engine
//! for tree ensembles, onnxruntime (when built in) for grouped convolutions, else tract.
//! `auto` (opt-in: timing makes the choice, and so the last digits of the outputs, vary
//! between starts) times every engine of this build that loads the model and keeps the
//! fastest ([`build`]): tract runs a MobileNetV2-size CNN about 3× slower than onnxruntime
//! on this project's machines, a small MLP about as fast, and the trees engine beats both
//! on tree ensembles (docs/bench.md), so no fixed default suits every model.
use crate::error::ModelError;
pub use crate::manifest::EngineKind;
use crate::manifest::Manifest;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[cfg(feature = "onnxruntime")]
pub mod onnxruntime;
pub mod rule;
pub mod tract;
pub mod trees;

/// How to build the engine; [`Default`] takes the manifest's choice (if none, [`rule`]'s).
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

/// The ONNX file at `path` as its protobuf (nothing built): what the trees engine and the
/// default-engine rule read.
pub(crate) fn read_proto(path: &Path) -> Result<tract_onnx::pb::ModelProto, ModelError> {
    use tract_onnx::prelude::Framework;
    tract_onnx::onnx()
        .proto_model_for_path(path)
        .map_err(|e| ModelError::Load {
            path: path.to_path_buf(),
            reason: "not a readable ONNX model".into(),
            source: e.into(),
        })
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

/// Builds the engine `options` (or the manifest) asks for, for the bundle's model file;
/// `auto` builds each engine of [`AUTO_CANDIDATES`] that loads the model,
/// times it ([`time_call`]) and keeps the fastest by [`Choice`]'s rule. When neither names
/// one, [`rule::default_kind`] chooses from the graph, falling back to tract when its
/// choice does not load.
pub fn build(
    manifest: &Manifest,
    path: &Path,
    options: &EngineOptions,
) -> Result<Box<dyn Engine>, ModelError> {
    match options.kind.or(manifest.model.engine) {
        Some(EngineKind::Auto) => build_auto(manifest, path, options),
        Some(kind) => build_kind(kind, manifest, path, options),
        None => build_default(manifest, path, options),
    }
}

/// Whether this build has the onnxruntime engine.
pub const ONNXRUNTIME_BUILT: bool = cfg!(feature = "onnxruntime");

fn build_default(
    manifest: &Manifest,
    path: &Path,
    options: &EngineOptions,
) -> Result<Box<dyn Engine>, ModelError> {
    let traits = rule::GraphTraits::read(path)?;
    let kind = rule::default_kind(&traits, ONNXRUNTIME_BUILT);
    let reason = rule::reason(kind, &traits);
    match build_kind(kind, manifest, path, options) {
        Ok(engine) => {
            tracing::info!(path = %path.display(), chosen = %kind, %reason, nodes = traits.nodes, "engine chosen by the model's graph");
            Ok(engine)
        }
        // tract is the fallback; its own refusal is the answer.
        Err(error) if kind == EngineKind::Tract => Err(error),
        Err(error) => {
            tracing::warn!(
                path = %path.display(),
                wanted = %kind,
                %reason,
                %error,
                "the engine the model's graph calls for does not load it; running on tract \
                 (name an engine in the manifest's model.engine or with --engine to make this an error)"
            );
            build_kind(EngineKind::Tract, manifest, path, options)
        }
    }
}

/// The engines `auto` tries, in order of preference: a later one replaces the kept one only
/// when clearly faster ([`Choice::offer`]). tract first: pure Rust, nothing to load.
pub const AUTO_CANDIDATES: [EngineKind; 3] = [
    EngineKind::Tract,
    EngineKind::Trees,
    EngineKind::Onnxruntime,
];

/// A challenger must be this much faster (its time below this fraction of the kept
/// engine's) to replace it, so that engines within measuring noise of each other keep
/// the earlier, preferred one rather than flip between starts.
pub const AUTO_MARGIN: f64 = 0.9;

/// The `auto` decision: the engine kept so far and its measured time per call.
#[derive(Debug)]
pub struct Choice<E> {
    kept: Option<(EngineKind, Duration, E)>,
}

impl<E> Default for Choice<E> {
    fn default() -> Self {
        Choice { kept: None }
    }
}

impl<E> Choice<E> {
    /// Offers an engine measured at `per_call`; returns whether it is now the one kept
    /// (the first offered is; a later one when under [`AUTO_MARGIN`] of the kept time).
    pub fn offer(&mut self, kind: EngineKind, per_call: Duration, engine: E) -> bool {
        let better = match &self.kept {
            None => true,
            Some((_, kept, _)) => per_call.as_secs_f64() < kept.as_secs_f64() * AUTO_MARGIN,
        };
        if better {
            self.kept = Some((kind, per_call, engine));
        }
        better
    }

    /// The engine kept, its kind and its time per call.
    pub fn into_kept(self) -> Option<(EngineKind, Duration, E)> {
        self.kept
    }
}

/// Median wall time of one batch-1 call on a blank input, after one call to warm up; at
/// most [`TIMED_CALLS`] calls, fewer once [`TIMING_BUDGET`] is spent (at least 3).
pub fn time_call(engine: &dyn Engine, input_values: usize) -> Result<Duration, ModelError> {
    let blank = vec![0.0; input_values];
    engine.run_all(1, &blank)?;
    let started = Instant::now();
    let mut times = Vec::with_capacity(TIMED_CALLS);
    while times.len() < TIMED_CALLS && (times.len() < 3 || started.elapsed() < TIMING_BUDGET) {
        let t = Instant::now();
        engine.run_all(1, &blank)?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2])
}

/// Calls [`time_call`] makes at most per engine.
pub const TIMED_CALLS: usize = 15;
/// Time [`time_call`] spends per engine before it stops (after its first 3 calls).
pub const TIMING_BUDGET: Duration = Duration::from_millis(300);

fn build_auto(
    manifest: &Manifest,
    path: &Path,
    options: &EngineOptions,
) -> Result<Box<dyn Engine>, ModelError> {
    let mut choice = Choice::default();
    let mut timings = Vec::new();
    let mut refusals = Vec::new();
    for kind in AUTO_CANDIDATES {
        let timed = build_kind(kind, manifest, path, options)
            .and_then(|e| Ok((time_call(e.as_ref(), manifest.input_values())?, e)));
        match timed {
            Ok((per_call, engine)) => {
                timings.push(format!("{kind}:{}us", per_call.as_micros()));
                choice.offer(kind, per_call, engine);
            }
            Err(e) => refusals.push(format!("{kind}: {e}")),
        }
    }
    let Some((kind, per_call, engine)) = choice.into_kept() else {
        return Err(ModelError::bundle(
            path,
            format!(
                "no engine of this build runs the model ({}); name one in the manifest's \
                 model.engine or with --engine to see its error alone",
                refusals.join("; ")
            ),
        ));
    };
    tracing::info!(
        path = %path.display(),
        chosen = %kind,
        per_call_us = per_call.as_micros() as u64,
        timed = %timings.join(" "),
        not_loaded = refusals.len(),
        "engine chosen by timing (auto)"
    );
    for refusal in &refusals {
        tracing::debug!(path = %path.display(), %refusal, "engine does not load the model");
    }
    Ok(engine)
}

fn build_kind(
    kind: EngineKind,
    manifest: &Manifest,
    path: &Path,
    options: &EngineOptions,
) -> Result<Box<dyn Engine>, ModelError> {
    match kind {
        EngineKind::Auto => build_auto(manifest, path, options),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn auto_keeps_the_first_engine_unless_another_is_clearly_faster() {
        let mut c = Choice::default();
        assert!(c.offer(EngineKind::Tract, ms(20), "tract"));
        // Within the margin: noise, the preferred engine stays.
        assert!(!c.offer(EngineKind::Trees, ms(19), "trees"));
        // Clearly faster: it replaces it.
        assert!(c.offer(EngineKind::Onnxruntime, ms(7), "ort"));
        assert_eq!(c.into_kept(), Some((EngineKind::Onnxruntime, ms(7), "ort")));
    }

    #[test]
    fn auto_with_nothing_offered_keeps_nothing() {
        assert_eq!(Choice::<()>::default().into_kept(), None);
    }
}
