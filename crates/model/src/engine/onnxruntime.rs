//! onnxruntime through the `ort` crate, loading `libonnxruntime` at run time (API level 20,
//! onnxruntime ≥ 1.20: the library in PyPI's `onnxruntime` wheel works).
//!
//! `ort` runs a session through `&mut`, so the engine keeps one session per call slot
//! ([`EngineOptions::concurrency`]) and a call takes any free one, or waits for the first
//! to come back (not for one in particular: a session held by a low-priority evidence
//! thread must not stall a model thread while another is free).
//!
//! Memory and CPU: the sessions share one container of prepacked weights and keep
//! onnxruntime's CPU arena, without memory patterns. Without the arena every intermediate
//! tensor of every call is a fresh `malloc`/`free`: in a worker (two model threads beside
//! decoding and librdkafka) that cost the CNN's model threads 12 % more CPU per frame
//! (7.6 against 6.7 ms; the drain 5–10 % slower) although onnxruntime alone in one Python
//! process showed no difference. The arena's memory patterns (one block planned per input
//! shape) cost a worker's peak RSS 35 MB more than the arena alone, for no CPU: the CNN's
//! worker peaks at about 203 MB with the arena alone, 162 MB with neither, 237 MB with
//! both (docs/bench.md, "The onnxruntime arena, in a worker"). The arena keeps for good
//! what its session's largest call needed, batch calibration's largest trial included;
//! the search skips a trial that would grow memory past
//! [`crate::classifier::TRIAL_MEMORY_BUDGET`] after a size that did not pay. librdkafka's
//! prefetch and glibc's malloc held more, and were cut elsewhere (`KafkaSettings`,
//! `crate::memory`; docs/bench.md, "Memory with onnxruntime").
use super::{Engine, EngineKind, EngineOptions};
use crate::error::ModelError;
use crate::manifest::Manifest;
use ort::session::builder::{GraphOptimizationLevel, PrepackedWeights};
use ort::session::Session;
use ort::value::TensorRef;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

/// The process's onnxruntime environment: the library is opened once (a failed attempt is
/// not remembered); an engine asking for another library file later gets an error rather
/// than a silent mix.
static ENVIRONMENT: Mutex<Option<(PathBuf, ort::environment::Environment)>> = Mutex::new(None);

fn library(options: &EngineOptions) -> PathBuf {
    options
        .onnxruntime_lib
        .clone()
        .or_else(|| std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("libonnxruntime.so"))
}

fn environment(options: &EngineOptions) -> Result<ort::environment::Environment, String> {
    let wanted = library(options);
    let mut env = ENVIRONMENT
        .lock()
        .map_err(|_| "onnxruntime environment poisoned".to_string())?;
    if let Some((loaded, env)) = env.as_ref() {
        return if *loaded == wanted {
            Ok(env.clone())
        } else {
            Err(format!(
                "onnxruntime is already loaded from {}; one process uses one library (asked for {})",
                loaded.display(),
                wanted.display()
            ))
        };
    }
    let builder = ort::init_from(&wanted).map_err(|e| {
        format!(
            "cannot load the onnxruntime library {}: {e}; point --onnxruntime-lib or \
             ORT_DYLIB_PATH at libonnxruntime.so (pip install onnxruntime ships one in \
             site-packages/onnxruntime/capi/)",
            wanted.display()
        )
    })?;
    let built = builder
        .with_name("argus")
        .build()
        .map_err(|e| format!("cannot start onnxruntime: {e}"))?;
    *env = Some((wanted, built.clone()));
    Ok(built)
}

/// The onnxruntime engine: a pool of sessions on the dynamically loaded library.
pub struct OrtEngine {
    /// The model declares a fixed batch size (1): batches run input by input.
    fixed_batch: bool,
    /// The free sessions; a call takes one and puts it back.
    sessions: Mutex<Vec<Session>>,
    /// Signalled when a session is put back.
    returned: Condvar,
    /// Sessions in all (free or in use).
    session_count: usize,
    shape: Vec<i64>,
    input_name: String,
    /// The outputs read, in [`Manifest::output_names`] order.
    output_names: Vec<String>,
}

impl std::fmt::Debug for OrtEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtEngine")
            .field("sessions", &self.session_count)
            .field("input", &self.input_name)
            .field("outputs", &self.output_names)
            .finish_non_exhaustive()
    }
}

impl OrtEngine {
    /// Opens one session per call slot (`options.concurrency`) on the model file `path`,
    /// with the library and intra-op threads `options` name.
    pub fn load(
        manifest: &Manifest,
        path: &Path,
        options: &EngineOptions,
    ) -> Result<OrtEngine, ModelError> {
        let env = environment(options).map_err(|reason| ModelError::bundle(path, reason))?;
        let load_err = |reason: &'static str| {
            let path = path.to_path_buf();
            move |e: ort::Error| ModelError::Load {
                path,
                reason: reason.into(),
                source: e.to_string().into(),
            }
        };
        let mut sessions = Vec::new();
        let shared_weights = PrepackedWeights::new();
        for _ in 0..options.concurrency.max(1) {
            let mut b = Session::builder(&env)
                .map_err(load_err("cannot create an onnxruntime session"))?
                .with_optimization_level(GraphOptimizationLevel::All)
                .map_err(|e| load_err("cannot set the optimisation level")(e.into()))?
                .with_memory_pattern(false)
                .map_err(|e| load_err("cannot turn off memory patterns")(e.into()))?
                .with_prepacked_weights(&shared_weights)
                .map_err(|e| load_err("cannot share prepacked weights")(e.into()))?
                // Idle intra-op threads sleep instead of spinning: in a worker they share
                // the cores with decoding, and spinning burnt a core's worth of CPU between
                // calls (argus-bench worker, person detector: see docs/cameras.md).
                .with_intra_op_spinning(false)
                .map_err(|e| load_err("cannot turn off intra-op spinning")(e.into()))?;
            if options.intra_threads > 0 {
                b = b
                    .with_intra_threads(options.intra_threads)
                    .map_err(|e| load_err("cannot set intra-op threads")(e.into()))?;
            }
            let session = b
                .commit_from_file(path)
                .map_err(load_err("onnxruntime cannot load the model"))?;
            sessions.push(session);
        }
        let first = &sessions[0];
        let inputs: Vec<String> = first.inputs().iter().map(|i| i.name().to_owned()).collect();
        if inputs.len() != 1 || inputs[0] != manifest.input.name {
            return Err(ModelError::bundle(
                path,
                format!(
                    "model inputs are {inputs:?}; the manifest says one input named {:?}",
                    manifest.input.name
                ),
            ));
        }
        let outputs: Vec<String> = first
            .outputs()
            .iter()
            .map(|o| o.name().to_owned())
            .collect();
        super::check_output(manifest, path, &outputs)?;
        let output_names = manifest
            .output_names()
            .into_iter()
            .map(str::to_owned)
            .collect();
        // A model exported with a fixed batch of 1 cannot take batches: run them one by one.
        let batch_dim = first.inputs()[0]
            .dtype()
            .tensor_shape()
            .and_then(|s| s.first().copied());
        let fixed_batch = batch_dim.is_some_and(|d| d > 0);
        if fixed_batch {
            tracing::info!(path = %path.display(), "the model's batch dimension is fixed: onnxruntime runs batches input by input");
        }
        Ok(OrtEngine {
            fixed_batch,
            session_count: sessions.len(),
            sessions: Mutex::new(sessions),
            returned: Condvar::new(),
            shape: manifest.input.shape.iter().map(|&d| d as i64).collect(),
            input_name: manifest.input.name.clone(),
            output_names,
        })
    }
}

impl Engine for OrtEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Onnxruntime
    }

    fn run(&self, batch: usize, input: &[f32]) -> Result<Vec<f32>, ModelError> {
        let mut all = self.run_all(batch, input)?;
        Ok(all.swap_remove(0))
    }

    fn run_all(&self, batch: usize, input: &[f32]) -> Result<Vec<Vec<f32>>, ModelError> {
        if self.fixed_batch && batch > 1 {
            let per = input.len() / batch.max(1);
            let mut out = vec![Vec::new(); self.output_names.len()];
            for x in input.chunks(per.max(1)) {
                for (all, one) in out.iter_mut().zip(self.run_one(1, x)?) {
                    all.extend(one);
                }
            }
            return Ok(out);
        }
        self.run_one(batch, input)
    }
}

impl OrtEngine {
    fn run_one(&self, batch: usize, input: &[f32]) -> Result<Vec<Vec<f32>>, ModelError> {
        let err = |e: ort::Error| ModelError::Inference {
            source: e.to_string().into(),
        };
        let mut shape = self.shape.clone();
        shape[0] = batch as i64;
        let tensor = TensorRef::from_array_view((shape, input)).map_err(err)?;
        let mut lease = self.take()?;
        let Some(session) = lease.session.as_mut() else {
            return Err(ModelError::Inference {
                source: "onnxruntime session lease is empty".into(),
            });
        };
        let outputs = session
            .run(ort::inputs![self.input_name.as_str() => tensor])
            .map_err(err)?;
        self.output_names
            .iter()
            .map(|name| {
                let (_, values) = outputs[name.as_str()]
                    .try_extract_tensor::<f32>()
                    .map_err(err)?;
                Ok(values.to_vec())
            })
            .collect()
    }

    /// A free session: the first one put back if all are in use.
    fn take(&self) -> Result<Lease<'_>, ModelError> {
        let poisoned = |_| ModelError::Inference {
            source: "onnxruntime session pool poisoned".into(),
        };
        let mut free = self.sessions.lock().map_err(poisoned)?;
        loop {
            if let Some(session) = free.pop() {
                return Ok(Lease {
                    engine: self,
                    session: Some(session),
                });
            }
            free = self.returned.wait(free).map_err(poisoned)?;
        }
    }
}

/// A session taken from the pool; dropping it puts it back (also when a call fails or
/// unwinds), so waiting callers are never left without one.
struct Lease<'a> {
    engine: &'a OrtEngine,
    session: Option<Session>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            self.engine
                .sessions
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(session);
            self.engine.returned.notify_one();
        }
    }
}
