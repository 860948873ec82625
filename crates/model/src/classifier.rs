//! A loaded bundle (image classifier, detector or tabular model): manifest and hash checks,
//! decode → preprocess → [`Engine`] → postprocess (softmax, or boxes for detectors), with
//! timings per stage.
use crate::detection::{Detection, DetectionHead};
use crate::engine::{self, Engine, EngineKind, EngineOptions};
use crate::error::ModelError;
use crate::manifest::{Manifest, Task};
use crate::{postprocess, preprocess, tabular};
use argus_wire::{ModelRef, Payload};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The values of each output the manifest reads, for one input.
pub type ModelOutputs = Vec<Vec<f32>>;

/// A bundle ready to run. `Send + Sync`: share it in an `Arc`.
pub struct Classifier {
    manifest: Manifest,
    model_ref: ModelRef,
    engine: Box<dyn Engine>,
    dir: PathBuf,
    /// Pixels one encoded frame may decode to ([`Classifier::set_max_decoded_pixels`]).
    max_decoded_pixels: u64,
    /// Detection bundles: how outputs become boxes.
    head: Option<DetectionHead>,
}

/// A decoded and preprocessed input, ready to be batched.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// The input tensor for batch 1, in the manifest's layout.
    pub data: Vec<f32>,
    /// Decoding time, µs (0 for raw pixels and records).
    pub decode_us: u64,
    /// Preprocessing time, µs.
    pub preprocess_us: u64,
    /// The decoded frame's size (w, h), images only: detection boxes are mapped back to it.
    pub frame: Option<(u32, u32)>,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("model", &self.model_ref)
            .field("engine", &self.engine.kind())
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Time per stage of one classification, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageTimings {
    /// Payload → image (0 for raw tensors and records).
    pub decode_us: u64,
    /// Image or record → model input tensor.
    pub preprocess_us: u64,
    /// This input's share of its batch's model time: [`StageTimings::batch_inference_us`]
    /// divided by the batch size.
    pub inference_us: u64,
    /// The model call of the whole batch this input ran in (engine time only).
    pub batch_inference_us: u64,
    /// Softmax and ranking.
    pub postprocess_us: u64,
}

/// The answer for one input.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// Probability per label, in the manifest's label order.
    pub probabilities: Vec<f32>,
    /// Label indices, best first (all labels).
    pub ranking: Vec<usize>,
    /// Detection bundles: the boxes found, in frame pixels, best first (empty otherwise).
    /// `probabilities` then holds each label's best box score.
    pub detections: Vec<Detection>,
    /// The frame's size (w, h) for images: the coordinate system of `detections`.
    pub frame: Option<(u32, u32)>,
    /// Time per stage.
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
    /// Loads the bundle in `dir` on the manifest's engine (tract if it names none).
    pub fn load(dir: &Path) -> Result<Classifier, ModelError> {
        Self::load_with(dir, &EngineOptions::default())
    }

    /// Loads the bundle in `dir`: reads and validates the manifest, checks the ONNX file's
    /// sha256, builds the engine `options` asks for and checks on a blank input that the
    /// output has one value per label. Every failure says what to fix.
    pub fn load_with(dir: &Path, options: &EngineOptions) -> Result<Classifier, ModelError> {
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
        let engine = engine::build(&manifest, &path, options)?;
        let head = DetectionHead::from_manifest(&manifest);
        check_blank(&manifest, engine.as_ref(), head.as_ref(), &path)?;
        let model_ref = ModelRef {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            sha256: actual,
        };
        tracing::info!(model = %model_ref.name, version = %model_ref.version, sha256 = %model_ref.sha256, engine = %engine.kind(), "model bundle loaded");
        Ok(Classifier {
            manifest,
            model_ref,
            engine,
            dir: dir.to_path_buf(),
            max_decoded_pixels: preprocess::MAX_DECODED_PIXELS,
            head,
        })
    }

    /// Detection bundles: how the outputs become boxes.
    pub fn detection_head(&self) -> Option<&DetectionHead> {
        self.head.as_ref()
    }

    /// The engine running the model.
    pub fn engine(&self) -> EngineKind {
        self.engine.kind()
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Name, version and hash, as outputs cite them.
    pub fn model_ref(&self) -> &ModelRef {
        &self.model_ref
    }

    /// The bundle's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Labels in output order.
    pub fn labels(&self) -> &[String] {
        &self.manifest.output.labels
    }

    /// Decode → preprocess → infer → postprocess for one payload (an image, or a record
    /// for tabular bundles). Blocking: call it off the async reactor.
    pub fn classify(&self, payload: &Payload) -> Result<Classification, ModelError> {
        let prepared = self.prepare(payload)?;
        let mut out = self.classify_batch(std::slice::from_ref(&prepared))?;
        out.pop().ok_or_else(|| ModelError::Inference {
            source: "model produced no output".into(),
        })
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

    /// Whether [`Classifier::prepare`] is cheap enough (microseconds: records, no image to
    /// decode or resize) to run on the async reactor rather than a blocking thread.
    pub fn cheap_to_prepare(&self) -> bool {
        self.manifest.task == Task::Tabular
    }

    /// Bounds the pixels one encoded frame may decode to (default
    /// [`preprocess::MAX_DECODED_PIXELS`], 16 MP; at most
    /// [`preprocess::MAX_DECODED_PIXELS_LIMIT`]): larger frames are refused from their header
    /// as `shape`, before any pixel is decoded.
    pub fn set_max_decoded_pixels(&mut self, max_pixels: u64) {
        self.max_decoded_pixels = max_pixels.clamp(1, preprocess::MAX_DECODED_PIXELS_LIMIT);
    }

    /// Decode and preprocess one payload (the part that runs before batching): an image
    /// for `classify` bundles, a record's features for `tabular` ones.
    pub fn prepare(&self, payload: &Payload) -> Result<Prepared, ModelError> {
        if self.manifest.task == Task::Tabular {
            return self.prepare_record(payload);
        }
        let t = Instant::now();
        let (h, w) = self.manifest.image_size();
        let input = (
            u32::try_from(w).unwrap_or(u32::MAX),
            u32::try_from(h).unwrap_or(u32::MAX),
        );
        let (img, frame) = preprocess::decode_for_input(
            payload,
            self.max_decoded_pixels,
            input,
            self.manifest
                .preprocess
                .as_ref()
                .is_some_and(|p| p.reduced_decode),
        )?;
        let decode_us = micros(t);
        let mut prepared = self.preprocess(&img, decode_us);
        prepared.frame = Some(frame);
        Ok(prepared)
    }

    fn prepare_record(&self, payload: &Payload) -> Result<Prepared, ModelError> {
        let Payload::Record(record) = payload else {
            return Err(ModelError::Shape {
                reason: "this model scores records; the input is an image".into(),
            });
        };
        let t = Instant::now();
        let mut data = vec![0f32; self.input_len()];
        tabular::assemble(&self.manifest.features, record, &mut data)?;
        Ok(Prepared {
            data,
            decode_us: 0,
            preprocess_us: micros(t),
            frame: None,
        })
    }

    /// The values of the model's features in a record, in manifest order (empty for image
    /// bundles and other payloads): the evidence alerts carry.
    pub fn evidence(&self, payload: &Payload) -> Vec<(String, serde_json::Value)> {
        match payload {
            Payload::Record(r) if self.manifest.task == Task::Tabular => {
                tabular::evidence(&self.manifest.features, r)
            }
            _ => Vec::new(),
        }
    }

    fn preprocess(&self, img: &image::RgbImage, decode_us: u64) -> Prepared {
        let t = Instant::now();
        let mut data = vec![0f32; self.input_len()];
        preprocess::to_tensor(&self.manifest, img, &mut data);
        Prepared {
            data,
            decode_us,
            preprocess_us: micros(t),
            frame: Some(img.dimensions()),
        }
    }

    /// Values in one input tensor (batch 1).
    pub fn input_len(&self) -> usize {
        self.manifest.input_values()
    }

    /// Prepares the engine for batches of `batch` inputs now (tract builds that plan), so
    /// the first batch of that size does not pay for it.
    pub fn warm(&self, batch: usize) -> Result<(), ModelError> {
        self.engine.warm(batch.max(1))
    }

    /// The batch size, up to `max`, with the least inference time per input on this
    /// machine, measured on blank inputs: sizes 1, 2, 4, … ≤ `max`, each warmed once and
    /// then timed `reps` times (the fastest call counts: interference only adds time). A
    /// bigger batch must save ≥ 10 % per input over the best so far to be chosen; the search
    /// stops at a size that costs over 1.5× the best per input, or fails (a model that
    /// cannot batch). Engines differ: tract's convolutions ran batch 2 at twice the
    /// per-input cost of batch 1, an MLP gains from batching, and the trees engine costs
    /// the same at 1 and 2 rows but 4× less per row from 8 on (rows walk a tree together),
    /// so a size that is merely no better does not end the search. Returns the size and the µs per input
    /// measured for each size tried.
    pub fn best_batch(&self, max: usize, reps: usize) -> (usize, Vec<(usize, f64)>) {
        let len = self.input_len();
        let mut measured = Vec::new();
        let mut best = (1usize, f64::INFINITY);
        let mut size = 1usize;
        while size <= max.max(1) {
            let data = vec![0f32; len * size];
            let views: Vec<&[f32]> = data.chunks(len).collect();
            if self.infer(&views).is_err() {
                break;
            }
            let mut fastest = f64::INFINITY;
            for _ in 0..reps.max(1) {
                let t = Instant::now();
                if self.infer(&views).is_err() {
                    fastest = f64::INFINITY;
                    break;
                }
                fastest = fastest.min(t.elapsed().as_secs_f64() * 1e6);
            }
            let per_input = fastest / size as f64;
            if !per_input.is_finite() {
                break;
            }
            measured.push((size, per_input));
            if per_input < best.1 * 0.9 || size == 1 {
                best = (size, per_input);
            } else if per_input > best.1 * 1.5 {
                // Clearly worse (tract's CNNs: twice the cost per input at batch 2):
                // larger sizes will not win and are expensive to measure.
                break;
            }
            size *= 2;
        }
        (best.0, measured)
    }

    /// Promises batches of at most `max` inputs from now on: the engine frees what it
    /// prepared for larger ones (tract: their plans, and at 1 the graph too); larger batches
    /// may fail afterwards.
    pub fn limit_batch(&self, max: usize) {
        self.engine.release_above(max.max(1));
    }

    /// Runs the model on raw input tensors (each of [`Classifier::input_len`] values) as
    /// one batch and returns the raw outputs per input, plus the inference time in µs. A
    /// detector's are its first output's (the boxes); [`Classifier::infer_all`] has all.
    pub fn infer(&self, inputs: &[&[f32]]) -> Result<(Vec<Vec<f32>>, u64), ModelError> {
        let (all, us) = self.infer_all(inputs)?;
        Ok((
            all.into_iter()
                .map(|mut outputs| outputs.swap_remove(0))
                .collect(),
            us,
        ))
    }

    /// As [`Classifier::infer`], with every output the manifest reads per input
    /// ([`Manifest::output_names`] order): `result[input][output]`.
    pub fn infer_all(&self, inputs: &[&[f32]]) -> Result<(Vec<ModelOutputs>, u64), ModelError> {
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
        let mut data = Vec::with_capacity(n * len);
        for x in inputs {
            data.extend_from_slice(x);
        }
        let t = Instant::now();
        let flat = self.engine.run_all(n, &data)?;
        let inference_us = micros(t);
        let mut per_input: Vec<ModelOutputs> = vec![Vec::with_capacity(flat.len()); n];
        for (k, values) in flat.into_iter().enumerate() {
            let per = match self.manifest.output_len() {
                Some(per) if k == 0 => per,
                _ => values.len() / n,
            };
            if values.len() != n * per {
                return Err(ModelError::Inference {
                    source: format!(
                        "model output {k} has {} values for a batch of {n}; expected {}",
                        values.len(),
                        n * per
                    )
                    .into(),
                });
            }
            for (outputs, chunk) in per_input.iter_mut().zip(values.chunks(per.max(1))) {
                outputs.push(chunk.to_vec());
            }
        }
        Ok((per_input, inference_us))
    }

    /// Infer → postprocess for prepared inputs, as one batch. Each classification's
    /// `inference_us` is the batch's time divided by its size.
    pub fn classify_batch(&self, inputs: &[Prepared]) -> Result<Vec<Classification>, ModelError> {
        let views: Vec<&[f32]> = inputs.iter().map(|p| p.data.as_slice()).collect();
        let (raw, inference_us) = self.infer_all(&views)?;
        let share = inference_us / inputs.len().max(1) as u64;
        inputs
            .iter()
            .zip(raw)
            .map(|(p, mut outputs)| {
                let t = Instant::now();
                let (probabilities, detections) = match &self.head {
                    Some(head) => {
                        let views: Vec<&[f32]> = outputs.iter().map(Vec::as_slice).collect();
                        let frame = p.frame.unwrap_or_else(|| head.input_size());
                        let boxes = head.detect(&views, frame)?;
                        (head.scores(&boxes), boxes)
                    }
                    None => (
                        postprocess::probabilities(
                            self.manifest.output.kind,
                            outputs.swap_remove(0),
                        ),
                        Vec::new(),
                    ),
                };
                if probabilities.iter().any(|p| !p.is_finite()) {
                    return Err(ModelError::Inference {
                        source: "model produced non-finite scores".into(),
                    });
                }
                let ranking = postprocess::top_k(&probabilities, probabilities.len());
                Ok(Classification {
                    probabilities,
                    ranking,
                    detections,
                    frame: p.frame,
                    timings: StageTimings {
                        decode_us: p.decode_us,
                        preprocess_us: p.preprocess_us,
                        inference_us: share,
                        batch_inference_us: inference_us,
                        postprocess_us: micros(t),
                    },
                })
            })
            .collect()
    }
}

/// Runs the model once on a blank input and checks its outputs fit the manifest: one value
/// per label for classifiers, outputs a detector's head decodes for detectors.
fn check_blank(
    manifest: &Manifest,
    engine: &dyn Engine,
    head: Option<&DetectionHead>,
    path: &Path,
) -> Result<(), ModelError> {
    let out = engine
        .run_all(1, &vec![0.0; manifest.input_values()])
        .map_err(|e| {
            ModelError::bundle(
                path,
                format!("the model does not run on a blank input: {e}"),
            )
        })?;
    if let Some(head) = head {
        let views: Vec<&[f32]> = out.iter().map(Vec::as_slice).collect();
        return head
            .detect(&views, head.input_size())
            .map(|_| ())
            .map_err(|e| {
                ModelError::bundle(
                    path,
                    format!("the model's outputs do not fit [detection]: {e}"),
                )
            });
    }
    let labels = manifest.output.labels.len();
    let got = out.first().map_or(0, Vec::len);
    if got != labels {
        return Err(ModelError::bundle(
            path,
            format!("model output has {got} values but the manifest lists {labels} labels"),
        ));
    }
    Ok(())
}
