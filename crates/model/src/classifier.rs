//! A loaded image-classification bundle. Inference runs on tract plans with a concrete
//! batch size (a symbolic batch dimension measured ~5× slower on MobileNetV2): the batch-1
//! plan is built at load time, other sizes the first time a batch of that size is run, and
//! all are cached.
use crate::error::ModelError;
use crate::manifest::Manifest;
use crate::{postprocess, preprocess};
use argus_wire::{ModelRef, Payload};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;
use tract_onnx::prelude::*;

/// `into_runnable()` already returns the plan in an `Arc`.
type Plan = TypedRunnableModel;

/// A bundle ready to run. `Send + Sync`: share it in an `Arc`.
pub struct Classifier {
    manifest: Manifest,
    model_ref: ModelRef,
    /// The loaded graph (input name checked), from which plans of other batch sizes are built.
    source: Mutex<InferenceModel>,
    /// Plans by batch size; batch 1 is always present.
    plans: Mutex<HashMap<usize, Arc<Plan>>>,
    path: PathBuf,
    dir: PathBuf,
}

/// A decoded and preprocessed input, ready to be batched.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// The input tensor for batch 1, in the manifest's layout.
    pub data: Vec<f32>,
    pub decode_us: u64,
    pub preprocess_us: u64,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("model", &self.model_ref)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Time per stage of one classification, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageTimings {
    pub decode_us: u64,
    pub preprocess_us: u64,
    pub inference_us: u64,
    pub postprocess_us: u64,
}

/// The answer for one input.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// Probability per label, in the manifest's label order.
    pub probabilities: Vec<f32>,
    /// Label indices, best first (all labels).
    pub ranking: Vec<usize>,
    pub timings: StageTimings,
}

impl Classification {
    /// Probability of label index `i` (0 if out of range).
    pub fn probability(&self, i: usize) -> f32 {
        self.probabilities.get(i).copied().unwrap_or(0.0)
    }
}

fn micros(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// sha256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let bytes = std::fs::read(path)?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

impl Classifier {
    /// Loads the bundle in `dir`: reads and validates the manifest, checks the ONNX file's
    /// sha256, fixes the input shape (batch included), optimises the graph and checks that
    /// the output has one value per label. Every failure says what to fix.
    pub fn load(dir: &Path) -> Result<Classifier, ModelError> {
        let manifest = Manifest::load(dir)?;
        let path = dir.join(&manifest.model.file);
        let actual = sha256_file(&path).map_err(|e| {
            ModelError::bundle(
                &path,
                format!("cannot read model file named in manifest: {e}"),
            )
        })?;
        if actual != manifest.model.sha256 {
            return Err(ModelError::HashMismatch {
                path,
                expected: manifest.model.sha256.clone(),
                actual,
            });
        }
        if manifest.input.shape[0] != 1 {
            return Err(ModelError::bundle(
                dir.join("manifest.toml"),
                format!(
                    "input.shape batch is {}; this worker runs batch 1",
                    manifest.input.shape[0]
                ),
            ));
        }
        let load_err = |reason: &str| {
            let path = path.clone();
            let reason = reason.to_string();
            move |e: TractError| ModelError::Load {
                path,
                reason,
                source: e.into(),
            }
        };
        let model = tract_onnx::onnx()
            .model_for_path(&path)
            .map_err(load_err("not a loadable ONNX model"))?;
        let inputs = model
            .input_outlets()
            .map_err(load_err("no inputs"))?
            .to_vec();
        if inputs.len() != 1 {
            return Err(ModelError::bundle(
                &path,
                format!(
                    "model has {} inputs; an image classifier takes one",
                    inputs.len()
                ),
            ));
        }
        let onnx_input = model.node(inputs[0].node).name.clone();
        if onnx_input != manifest.input.name {
            return Err(ModelError::bundle(
                &path,
                format!(
                    "model input is named {onnx_input:?} but the manifest says {:?}",
                    manifest.input.name
                ),
            ));
        }
        let plan = build_plan(&model, &manifest, &path, 1)?;
        let model_ref = ModelRef {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            sha256: actual,
        };
        tracing::info!(model = %model_ref.name, version = %model_ref.version, sha256 = %model_ref.sha256, "model bundle loaded");
        Ok(Classifier {
            manifest,
            model_ref,
            source: Mutex::new(model),
            plans: Mutex::new(HashMap::from([(1, plan)])),
            path,
            dir: dir.to_path_buf(),
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Name, version and hash, as outputs cite them.
    pub fn model_ref(&self) -> &ModelRef {
        &self.model_ref
    }

    /// Labels in output order.
    pub fn labels(&self) -> &[String] {
        &self.manifest.output.labels
    }

    /// Decode → preprocess → infer → postprocess for one payload. Blocking: call it off the
    /// async reactor.
    pub fn classify(&self, payload: &Payload) -> Result<Classification, ModelError> {
        let t = Instant::now();
        let img = preprocess::decode(payload)?;
        let decode_us = micros(t);
        self.classify_image(&img, decode_us)
    }

    /// Preprocess → infer → postprocess for an already decoded image.
    pub fn classify_image(
        &self,
        img: &image::RgbImage,
        decode_us: u64,
    ) -> Result<Classification, ModelError> {
        let prepared = self.preprocess(img, decode_us);
        let mut out = self.classify_batch(std::slice::from_ref(&prepared))?;
        out.pop().ok_or_else(|| ModelError::Inference {
            source: "model produced no output".into(),
        })
    }

    /// Decode and preprocess one payload (the part that runs before batching).
    pub fn prepare(&self, payload: &Payload) -> Result<Prepared, ModelError> {
        let t = Instant::now();
        let img = preprocess::decode(payload)?;
        let decode_us = micros(t);
        Ok(self.preprocess(&img, decode_us))
    }

    fn preprocess(&self, img: &image::RgbImage, decode_us: u64) -> Prepared {
        let t = Instant::now();
        let mut data = vec![0f32; self.input_len()];
        preprocess::to_tensor(&self.manifest, img, &mut data);
        Prepared {
            data,
            decode_us,
            preprocess_us: micros(t),
        }
    }

    /// Values in one input tensor (batch 1).
    pub fn input_len(&self) -> usize {
        self.manifest.input.shape.iter().product()
    }

    /// The plan for `batch` inputs, built on first use.
    fn plan(&self, batch: usize) -> Result<Arc<Plan>, ModelError> {
        let mut plans = self.plans.lock().map_err(|_| ModelError::Inference {
            source: "plan cache poisoned".into(),
        })?;
        if let Some(p) = plans.get(&batch) {
            return Ok(p.clone());
        }
        let t = Instant::now();
        let source = self.source.lock().map_err(|_| ModelError::Inference {
            source: "model graph poisoned".into(),
        })?;
        let plan = build_plan(&source, &self.manifest, &self.path, batch)?;
        tracing::info!(model = %self.model_ref.name, batch, ms = t.elapsed().as_millis() as u64, "built plan for a new batch size");
        metrics::counter!("argus_model_plans_built_total").increment(1);
        plans.insert(batch, plan.clone());
        Ok(plan)
    }

    /// Builds (or reuses) the plan for `batch` inputs now, so the first batch of that size
    /// does not pay for it.
    pub fn warm(&self, batch: usize) -> Result<(), ModelError> {
        self.plan(batch.max(1)).map(|_| ())
    }

    /// Runs the model on raw input tensors (each of [`Classifier::input_len`] values) as
    /// one batch and returns the raw outputs per input, plus the inference time in µs.
    pub fn infer(&self, inputs: &[&[f32]]) -> Result<(Vec<Vec<f32>>, u64), ModelError> {
        let n = inputs.len();
        if n == 0 {
            return Ok((Vec::new(), 0));
        }
        let len = self.input_len();
        if let Some(bad) = inputs.iter().find(|x| x.len() != len) {
            return Err(ModelError::Shape {
                reason: format!(
                    "input tensor has {} values, the model takes {len}",
                    bad.len()
                ),
            });
        }
        let plan = self.plan(n)?;
        let mut shape = self.manifest.input.shape.clone();
        shape[0] = n;
        let mut data = Vec::with_capacity(n * len);
        for x in inputs {
            data.extend_from_slice(x);
        }
        let tensor = Tensor::from_shape(&shape, &data)
            .map_err(|e| ModelError::Inference { source: e.into() })?;
        let t = Instant::now();
        let outputs = plan
            .run(tvec!(tensor.into()))
            .map_err(|e| ModelError::Inference { source: e.into() })?;
        let inference_us = micros(t);
        let flat: Vec<f32> = outputs
            .first()
            .ok_or_else(|| ModelError::Inference {
                source: "model produced no output".into(),
            })?
            .to_plain_array_view::<f32>()
            .map_err(|e| ModelError::Inference { source: e.into() })?
            .iter()
            .copied()
            .collect();
        let per = self.manifest.output.labels.len();
        if flat.len() != n * per {
            return Err(ModelError::Inference {
                source: format!(
                    "model produced {} values for a batch of {n}; expected {}",
                    flat.len(),
                    n * per
                )
                .into(),
            });
        }
        Ok((
            flat.chunks(per).map(<[f32]>::to_vec).collect(),
            inference_us,
        ))
    }

    /// Infer → postprocess for prepared inputs, as one batch. Each classification's
    /// `inference_us` is the batch's time divided by its size.
    pub fn classify_batch(&self, inputs: &[Prepared]) -> Result<Vec<Classification>, ModelError> {
        let views: Vec<&[f32]> = inputs.iter().map(|p| p.data.as_slice()).collect();
        let (raw, inference_us) = self.infer(&views)?;
        let share = inference_us / inputs.len().max(1) as u64;
        inputs
            .iter()
            .zip(raw)
            .map(|(p, raw)| {
                let t = Instant::now();
                let probabilities = postprocess::probabilities(self.manifest.output.kind, raw);
                if probabilities.iter().any(|p| !p.is_finite()) {
                    return Err(ModelError::Inference {
                        source: "model produced non-finite scores".into(),
                    });
                }
                let ranking = postprocess::top_k(&probabilities, probabilities.len());
                Ok(Classification {
                    probabilities,
                    ranking,
                    timings: StageTimings {
                        decode_us: p.decode_us,
                        preprocess_us: p.preprocess_us,
                        inference_us: share,
                        postprocess_us: micros(t),
                    },
                })
            })
            .collect()
    }
}

/// Fixes the input shape to `batch` inputs, optimises and plans; checks the output holds
/// one value per label per input.
fn build_plan(
    model: &InferenceModel,
    manifest: &Manifest,
    path: &Path,
    batch: usize,
) -> Result<Arc<Plan>, ModelError> {
    let load_err = |reason: String| {
        let path = path.to_path_buf();
        move |e: TractError| ModelError::Load {
            path,
            reason,
            source: e.into(),
        }
    };
    let mut model = model.clone();
    let mut shape = manifest.input.shape.clone();
    shape[0] = batch;
    model
        .set_input_fact(0, f32::fact(shape.clone()).into())
        .map_err(load_err(format!(
            "input shape {shape:?} (manifest shape, batch {batch}) does not fit the model"
        )))?;
    // The file's declared output shape (often batch 1) must not veto other batch sizes.
    model
        .set_output_fact(0, InferenceFact::default())
        .map_err(load_err("cannot reset the output shape".into()))?;
    let typed = model.into_optimized().map_err(load_err(format!(
        "cannot optimise the model for input shape {shape:?}"
    )))?;
    let outputs = typed
        .output_outlets()
        .map_err(load_err("no outputs".into()))?
        .to_vec();
    let out_fact = typed
        .outlet_fact(outputs[0])
        .map_err(load_err("cannot read output shape".into()))?;
    let out_len: Option<usize> = out_fact
        .shape
        .as_concrete()
        .map(|dims| dims.iter().product());
    let labels = manifest.output.labels.len();
    if out_len != Some(labels * batch) {
        return Err(ModelError::bundle(
            path,
            if batch == 1 {
                format!(
                    "model output has shape {:?} but the manifest lists {labels} labels",
                    out_fact.shape
                )
            } else {
                format!(
                    "for a batch of {batch} the model output has shape {:?}, not {batch}x{labels}; this model cannot batch (use max_batch = 1)",
                    out_fact.shape
                )
            },
        ));
    }
    typed
        .into_runnable()
        .map_err(load_err("cannot build an execution plan".into()))
}
