//! tract plans with a concrete batch size (a symbolic batch dimension measured ~5× slower on
//! MobileNetV2): the batch-1 plan is built at load time, other sizes the first time a batch
//! of that size is run, and all are cached.
use super::{Engine, EngineKind};
use crate::error::ModelError;
use crate::manifest::Manifest;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;
use tract_onnx::prelude::*;

/// `into_runnable()` already returns the plan in an `Arc`.
type Plan = TypedRunnableModel;

/// The tract engine: the loaded graph and one optimised plan per batch size, built on first use and cached.
pub struct TractEngine {
    manifest: Manifest,
    /// The loaded graph (input name checked), from which plans of other batch sizes are
    /// built; dropped once calibration settled on batch 1 (no other plan will be needed).
    source: Mutex<Option<InferenceModel>>,
    /// Plans by batch size; batch 1 is always present.
    plans: Mutex<HashMap<usize, Arc<Plan>>>,
    path: PathBuf,
}

impl std::fmt::Debug for TractEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TractEngine")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl TractEngine {
    /// Loads the ONNX file, checks it has one input named as the manifest says, and builds
    /// the batch-1 plan (which checks the output holds one value per label).
    pub fn load(manifest: &Manifest, path: &Path) -> Result<TractEngine, ModelError> {
        let load_err = |reason: &str| {
            let path = path.to_path_buf();
            let reason = reason.to_string();
            move |e: TractError| ModelError::Load {
                path,
                reason,
                source: e.into(),
            }
        };
        let model = tract_onnx::onnx()
            .model_for_path(path)
            .map_err(load_err("not a loadable ONNX model"))?;
        let inputs = model
            .input_outlets()
            .map_err(load_err("no inputs"))?
            .to_vec();
        if inputs.len() != 1 {
            return Err(ModelError::bundle(
                path,
                format!("model has {} inputs; Argus feeds one", inputs.len()),
            ));
        }
        let onnx_input = model.node(inputs[0].node).name.clone();
        if onnx_input != manifest.input.name {
            return Err(ModelError::bundle(
                path,
                format!(
                    "model input is named {onnx_input:?} but the manifest says {:?}",
                    manifest.input.name
                ),
            ));
        }
        // The output the manifest names (a classifier exported by skl2onnx has `label`
        // first and the probabilities second).
        let mut model = model;
        let outputs: Vec<String> = model
            .output_outlets()
            .map_err(load_err("no outputs"))?
            .iter()
            .map(|o| {
                model
                    .outlet_label(*o)
                    .map_or_else(|| model.node(o.node).name.clone(), str::to_string)
            })
            .collect();
        super::check_output(manifest, path, &outputs)?;
        model
            .select_outputs_by_name(manifest.output_names())
            .map_err(load_err("cannot select the outputs"))?;
        let plan = build_plan(&model, manifest, path, 1)?;
        Ok(TractEngine {
            manifest: manifest.clone(),
            source: Mutex::new(Some(model)),
            plans: Mutex::new(HashMap::from([(1, plan)])),
            path: path.to_path_buf(),
        })
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
        let source = source.as_ref().ok_or_else(|| ModelError::Inference {
            source: format!("no plan for a batch of {batch}: the engine was limited to batch 1")
                .into(),
        })?;
        let plan = build_plan(source, &self.manifest, &self.path, batch)?;
        tracing::info!(model = %self.manifest.name, batch, ms = t.elapsed().as_millis() as u64, "built plan for a new batch size");
        metrics::counter!(crate::metrics::PLANS_BUILT).increment(1);
        plans.insert(batch, plan.clone());
        Ok(plan)
    }
}

impl Engine for TractEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Tract
    }

    fn run(&self, batch: usize, input: &[f32]) -> Result<Vec<f32>, ModelError> {
        let mut all = self.run_all(batch, input)?;
        if all.is_empty() {
            return Err(ModelError::Inference {
                source: "model produced no output".into(),
            });
        }
        Ok(all.swap_remove(0))
    }

    fn run_all(&self, batch: usize, input: &[f32]) -> Result<Vec<Vec<f32>>, ModelError> {
        let plan = self.plan(batch)?;
        let mut shape = self.manifest.input.shape.clone();
        shape[0] = batch;
        let tensor = Tensor::from_shape(&shape, input)
            .map_err(|e| ModelError::Inference { source: e.into() })?;
        let outputs = plan
            .run(tvec!(tensor.into()))
            .map_err(|e| ModelError::Inference { source: e.into() })?;
        outputs
            .iter()
            .map(|t| {
                Ok(t.to_plain_array_view::<f32>()
                    .map_err(|e| ModelError::Inference { source: e.into() })?
                    .iter()
                    .copied()
                    .collect())
            })
            .collect()
    }

    fn warm(&self, batch: usize) -> Result<(), ModelError> {
        self.plan(batch.max(1)).map(|_| ())
    }

    fn release_above(&self, batch: usize) {
        if let Ok(mut plans) = self.plans.lock() {
            plans.retain(|&b, _| b <= batch.max(1));
        }
        if batch <= 1 {
            if let Ok(mut source) = self.source.lock() {
                *source = None;
            }
        }
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
    // The file's declared output shapes (often batch 1) must not veto other batch sizes.
    for i in 0..manifest.output_names().len() {
        model
            .set_output_fact(i, InferenceFact::default())
            .map_err(load_err("cannot reset the output shape".into()))?;
    }
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
    // Detection outputs hold as many candidates as the model makes; the classifier checks
    // them by decoding a blank input.
    if manifest.output_len().is_some() && out_len != Some(labels * batch) {
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
