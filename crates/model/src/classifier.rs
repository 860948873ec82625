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
use std::time::{Duration, Instant};

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
        if manifest.task != Task::Tabular {
            crate::jpeg::warn_without_simd();
        }
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
    /// then timed `reps` times (the fastest call counts: interference only adds time).
    /// Size 1, the first measured, is warmed for [`CALIBRATION_WARM_UP`] (at most
    /// [`CALIBRATION_WARM_UP_CALLS`] calls) first: the process's first calls run slower,
    /// and a size 1 timed cold made batch 2 look 35 % cheaper per input on a MobileNetV2
    /// where it is 7 % dearer (docs/bench.md, "Batch calibration timed cold").
    /// [`BatchSearch`] decides which size wins and when to stop; each trial's growth of
    /// the resident set is measured for it, and the memory freed before a trial goes back
    /// to the operating system first. The last trial's goes back with
    /// [`Classifier::limit_batch`], which every caller follows this with. Returns the size
    /// and the µs per input measured for each size tried.
    pub fn best_batch(&self, max: usize, reps: usize) -> (usize, Vec<(usize, f64)>) {
        let len = self.input_len();
        let mut search = BatchSearch::default();
        let mut size = 1usize;
        while size <= max.max(1) {
            crate::memory::release_freed();
            let resident = crate::memory::resident_bytes();
            let data = vec![0f32; len * size];
            let views: Vec<&[f32]> = data.chunks(len).collect();
            if self.infer(&views).is_err() {
                break;
            }
            if size == 1 {
                let warm_up = Instant::now();
                let mut calls = 0;
                while warm_up.elapsed() < CALIBRATION_WARM_UP && calls < CALIBRATION_WARM_UP_CALLS {
                    if self.infer(&views).is_err() {
                        break;
                    }
                    calls += 1;
                }
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
            let grew = match (resident, crate::memory::resident_bytes()) {
                (Some(before), Some(after)) => after.saturating_sub(before),
                _ => 0,
            };
            drop(views);
            drop(data);
            tracing::debug!(
                size,
                per_input_us = fastest / size as f64,
                grew_mb = grew >> 20,
                "batch size trial"
            );
            if !search.offer(size, fastest / size as f64, grew) {
                break;
            }
            size *= 2;
        }
        (search.best.0, search.measured)
    }

    /// Promises batches of at most `max` inputs from now on: the engine frees what it
    /// prepared for larger ones (tract: their plans, and at 1 the graph too), and the
    /// memory the larger batches used goes back to the operating system
    /// ([`crate::memory::release_freed`]); larger batches may fail afterwards.
    pub fn limit_batch(&self, max: usize) {
        self.engine.release_above(max.max(1));
        crate::memory::release_freed();
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

/// The memory a batch-size trial may take when the last doubling did not pay: a larger
/// trial is skipped if twice the last one's growth of the resident set exceeds it. On a
/// CNN the batch-8 trial alone took 100–140 MB (MobileNetV2 on onnxruntime: peak RSS
/// after calibration 88 MB at batch 1, 115 at 2, 144 at 4, 207–226 at 8), more than the
/// worker needs to run; record models and small MLPs grow by well under 1 MB.
pub const TRIAL_MEMORY_BUDGET: u64 = 64 << 20;

/// How long batch calibration runs size 1 before timing it: the process's first calls
/// are slower than later ones (caches, the CPU's clock), and size 1 is timed first.
pub const CALIBRATION_WARM_UP: Duration = Duration::from_millis(150);

/// At most this many size-1 calls in the [`CALIBRATION_WARM_UP`]: a model of a few µs per
/// call (the churn forest) is warm long before 150 ms and need not spin through them.
pub const CALIBRATION_WARM_UP_CALLS: usize = 200;

/// The rule of [`Classifier::best_batch`], offered one measured size at a time (1, 2,
/// 4, …). A bigger batch must save ≥ 10 % per input over the best so far to be chosen.
/// The search stops at a size that fails, that costs over 1.5× the best per input, or
/// that was no better and whose double would take more than [`TRIAL_MEMORY_BUDGET`].
/// Engines differ: tract's convolutions ran batch 2 at twice the per-input cost of batch
/// 1, an MLP gains from batching, and the trees engine costs the same at 1, 2 and 4 rows
/// but 4× less per row from 8 on (rows walk a tree together), so a size that is merely
/// no better does not end the search by itself.
#[derive(Debug, Clone)]
pub struct BatchSearch {
    /// The size chosen so far and its µs per input.
    pub best: (usize, f64),
    /// Every size offered and its µs per input.
    pub measured: Vec<(usize, f64)>,
}

impl Default for BatchSearch {
    fn default() -> Self {
        BatchSearch {
            best: (1, f64::INFINITY),
            measured: Vec::new(),
        }
    }
}

impl BatchSearch {
    /// Takes `size`'s µs per input (not finite: the size failed) and how many bytes the
    /// resident set grew while it ran; returns whether to try the next size.
    pub fn offer(&mut self, size: usize, per_input: f64, grew: u64) -> bool {
        if !per_input.is_finite() {
            return false;
        }
        self.measured.push((size, per_input));
        if size == 1 || per_input < self.best.1 * 0.9 {
            self.best = (size, per_input);
            return true;
        }
        // Clearly worse (tract's CNNs: twice the cost per input at batch 2): larger sizes
        // will not win and are expensive to measure.
        per_input <= self.best.1 * 1.5 && grew.saturating_mul(2) <= TRIAL_MEMORY_BUDGET
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    /// Offers `trials` (size, µs per input, MB grown) in order; the sizes tried and the choice.
    fn search(trials: &[(usize, f64, u64)]) -> (Vec<usize>, usize) {
        let mut s = BatchSearch::default();
        let mut tried = Vec::new();
        for &(size, per_input, grew) in trials {
            tried.push(size);
            if !s.offer(size, per_input, grew * MB) {
                break;
            }
        }
        (tried, s.best.0)
    }

    #[test]
    fn a_cnn_stops_where_the_next_trial_costs_more_memory_than_it_may() {
        // MobileNetV2 on onnxruntime: 4 is only 7 % better than 2, and took 50 MB.
        let trials = [
            (1, 7868.0, 20),
            (2, 5132.0, 27),
            (4, 4769.0, 50),
            (8, 6283.0, 110),
        ];
        assert_eq!(search(&trials), (vec![1, 2, 4], 2));
    }

    #[test]
    fn trees_search_on_past_sizes_that_are_no_better() {
        let trials = [
            (1, 4.0, 0),
            (2, 4.0, 0),
            (4, 4.0, 0),
            (8, 1.0, 0),
            (16, 0.8, 0),
            (32, 0.8, 0),
            (64, 0.8, 1),
        ];
        assert_eq!(search(&trials), (vec![1, 2, 4, 8, 16, 32, 64], 16));
    }

    #[test]
    fn a_size_that_pays_is_followed_whatever_it_took() {
        let trials = [
            (1, 100.0, 10),
            (2, 50.0, 60),
            (4, 30.0, 120),
            (8, 29.0, 240),
        ];
        assert_eq!(search(&trials), (vec![1, 2, 4, 8], 4));
    }

    #[test]
    fn a_clearly_worse_or_failed_size_ends_the_search() {
        // tract's CNNs: batch 2 at twice the per-input cost.
        assert_eq!(
            search(&[(1, 20.0, 1), (2, 40.0, 1), (4, 10.0, 1)]),
            (vec![1, 2], 1)
        );
        assert_eq!(
            search(&[(1, 20.0, 1), (2, f64::INFINITY, 0), (4, 1.0, 0)]),
            (vec![1, 2], 1)
        );
    }
}
