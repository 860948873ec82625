//! A loaded image-classification bundle: the tract plan is built once, for a fixed batch
//! size, and shared.
use crate::error::ModelError;
use crate::manifest::Manifest;
use crate::{postprocess, preprocess};
use argus_wire::{ModelRef, Payload};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tract_onnx::prelude::*;

/// `into_runnable()` already returns the plan in an `Arc`.
type Plan = TypedRunnableModel;

/// A bundle ready to run. `Send + Sync`: share it in an `Arc`.
pub struct Classifier {
    manifest: Manifest,
    model_ref: ModelRef,
    plan: Arc<Plan>,
    dir: PathBuf,
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
        let mut model = tract_onnx::onnx()
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
        model
            .set_input_fact(0, f32::fact(manifest.input.shape.clone()).into())
            .map_err(load_err(
                "input shape from the manifest does not fit the model",
            ))?;
        let typed = model.into_optimized().map_err(load_err(
            "cannot optimise the model for the manifest's input shape",
        ))?;
        let outputs = typed
            .output_outlets()
            .map_err(load_err("no outputs"))?
            .to_vec();
        let out_fact = typed
            .outlet_fact(outputs[0])
            .map_err(load_err("cannot read output shape"))?;
        let out_len: Option<usize> = out_fact
            .shape
            .as_concrete()
            .map(|dims| dims.iter().product());
        if out_len != Some(manifest.output.labels.len()) {
            return Err(ModelError::bundle(
                &path,
                format!(
                    "model output has shape {:?} but the manifest lists {} labels",
                    out_fact.shape,
                    manifest.output.labels.len()
                ),
            ));
        }
        let plan = typed
            .into_runnable()
            .map_err(load_err("cannot build an execution plan"))?;
        let model_ref = ModelRef {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            sha256: actual,
        };
        tracing::info!(model = %model_ref.name, version = %model_ref.version, sha256 = %model_ref.sha256, "model bundle loaded");
        Ok(Classifier {
            manifest,
            model_ref,
            plan,
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
        let t = Instant::now();
        let shape = &self.manifest.input.shape;
        let mut data = vec![0f32; shape.iter().product()];
        preprocess::to_tensor(&self.manifest, img, &mut data);
        let tensor = Tensor::from_shape(shape, &data)
            .map_err(|e| ModelError::Inference { source: e.into() })?;
        let preprocess_us = micros(t);

        let t = Instant::now();
        let outputs = self
            .plan
            .run(tvec!(tensor.into()))
            .map_err(|e| ModelError::Inference { source: e.into() })?;
        let inference_us = micros(t);

        let t = Instant::now();
        let raw: Vec<f32> = outputs
            .first()
            .ok_or_else(|| ModelError::Inference {
                source: "model produced no output".into(),
            })?
            .to_plain_array_view::<f32>()
            .map_err(|e| ModelError::Inference { source: e.into() })?
            .iter()
            .copied()
            .collect();
        let probabilities = postprocess::probabilities(self.manifest.output.kind, raw);
        if probabilities.iter().any(|p| !p.is_finite()) {
            return Err(ModelError::Inference {
                source: "model produced non-finite scores".into(),
            });
        }
        let ranking = postprocess::top_k(&probabilities, probabilities.len());
        let postprocess_us = micros(t);
        Ok(Classification {
            probabilities,
            ranking,
            timings: StageTimings {
                decode_us,
                preprocess_us,
                inference_us,
                postprocess_us,
            },
        })
    }
}
