//! Stage 1, the cost of one alert's evidence, offline (no broker), on one thread, each next
//! to the model's own work on the same inputs in the same run (a pass per kind of call):
//!
//! - **TreeSHAP** (the churn bundle, `[explain] covers`): `Explainer::explain` per record
//!   against `Classifier::infer` at batch 1 on the same record (the trees engine), and
//!   `Classifier::classify` (record → tensor → model → probabilities).
//! - **sampling Shapley** (the same bundle copied without `covers`, so the background rows
//!   are used; the worker's default permutations) against the same baselines.
//! - **occlusion** (image bundles): per synthetic frame against one `classify` of the frame
//!   (decode, resize, model) — or per image of a folder ([`dir_frames`]); detectors explain
//!   the label's boxes, frames without one are left out.
use crate::error::{runtime, usage, BenchError};
use crate::harness::{micros, percentile};
use argus_model::detection::Detection;
use argus_model::explain::{ExplainSettings, Explainer};
use argus_model::Classifier;
use argus_producer::Frame;
use serde::Serialize;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Untimed calls of each kind before the timed ones.
const WARM_UP: usize = 5;

/// Times of one kind of call, µs.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Timing {
    pub samples: usize,
    pub p50_us: f64,
    pub mean_us: f64,
    pub p99_us: f64,
}

impl Timing {
    pub(super) fn of(mut us: Vec<f64>) -> Timing {
        us.sort_by(f64::total_cmp);
        Timing {
            samples: us.len(),
            p50_us: percentile(&us, 0.5),
            mean_us: us.iter().sum::<f64>() / us.len().max(1) as f64,
            p99_us: percentile(&us, 0.99),
        }
    }
}

/// One tabular method against the model's own cost per record.
#[derive(Debug, Clone, Serialize)]
pub(super) struct TabularCost {
    /// `tree_shap` or `sampling_shapley`.
    pub method: String,
    pub bundle: String,
    /// `[explain]` settings used (permutations matter for sampling only).
    pub permutations: usize,
    /// `Explainer::explain` per record (the evidence an alert carries, summary included).
    pub explain: Timing,
    /// `Classifier::infer` of the record's tensor alone, batch 1.
    pub infer_batch1: Timing,
    /// `Classifier::classify`: record → tensor → model → probabilities.
    pub classify: Timing,
    /// explain ÷ infer at batch 1, of the medians and of the means.
    pub explain_vs_infer_p50: f64,
    pub explain_vs_infer_mean: f64,
    /// Largest |evidence output − the model's probability| (probability-space evidence):
    /// the evidence explains the number the alert carries.
    pub max_output_difference: Option<f64>,
    /// Mean of the evidence's largest 99 % error bound (sampled methods).
    pub mean_error_bound: Option<f64>,
}

/// Occlusion on one image bundle against one classification of the frame.
#[derive(Debug, Clone, Serialize)]
pub(super) struct ImageCost {
    pub bundle: String,
    pub label: String,
    pub grid: u32,
    /// Model runs per explanation: the unoccluded input, then one per cell.
    pub model_runs: u32,
    pub frames: usize,
    /// Frames explained (detectors: those with a box of the label).
    pub explained: usize,
    /// Boxes per explained frame, mean (detectors; explained at most `max_boxes`).
    pub mean_boxes: f64,
    pub occlusion: Timing,
    pub classify: Timing,
    pub occlusion_vs_classify_p50: f64,
    pub occlusion_vs_classify_mean: f64,
}

/// Stage 1's results.
#[derive(Debug, Clone, Serialize)]
pub(super) struct CostResult {
    pub tree_shap: TabularCost,
    pub sampling_shapley: TabularCost,
    pub occlusion: Vec<ImageCost>,
    /// CPU over the stage: one core for the bench; other processes' use makes the times
    /// above longer than a quiet machine's.
    pub cpu: Option<crate::harness::cpu::CpuUse>,
}

/// The explainer `model` gets with `settings` (an options error if none).
pub(super) fn explainer(
    model: &Classifier,
    settings: ExplainSettings,
) -> Result<Explainer, BenchError> {
    Explainer::for_model(model, settings)
        .map_err(|e| usage(e.to_string()))?
        .ok_or_else(|| {
            usage(format!(
                "{}: the bundle ships no [explain] covers or background",
                model.dir().display()
            ))
        })
}

/// µs per call of `f` on each item, in one pass after [`WARM_UP`] untimed calls (each kind
/// of call gets its own pass: interleaved, a TreeSHAP call evicts the model's trees from the
/// caches and the next inference pays for it), and what each call returned.
fn timed_pass<T, R>(
    items: &[T],
    mut f: impl FnMut(&T) -> Result<R, BenchError>,
) -> Result<(Vec<f64>, Vec<R>), BenchError> {
    for item in items.iter().take(WARM_UP) {
        black_box(f(item)?);
    }
    let (mut times, mut out) = (
        Vec::with_capacity(items.len()),
        Vec::with_capacity(items.len()),
    );
    for item in items {
        let t = Instant::now();
        let r = black_box(f(item)?);
        times.push(micros(t.elapsed()));
        out.push(r);
    }
    Ok((times, out))
}

/// Explains `label` on each record with the model's explainer; the model's own inference
/// (batch 1) and classification of the same records in passes of their own.
pub(super) fn tabular_cost(
    model: &Classifier,
    records: &[Frame],
    label: usize,
    settings: ExplainSettings,
) -> Result<TabularCost, BenchError> {
    let explainer = explainer(model, settings)?;
    let tensors: Vec<Vec<f32>> = records
        .iter()
        .map(|r| model.prepare(&r.envelope.payload).map(|p| p.data))
        .collect::<Result<_, _>>()
        .map_err(runtime)?;
    let (infer, _) = timed_pass(&tensors, |x| {
        model.infer(&[x.as_slice()]).map(|_| ()).map_err(runtime)
    })?;
    let (classify, classified) = timed_pass(records, |r| {
        model.classify(&r.envelope.payload).map_err(runtime)
    })?;
    let (explain, evidence) = timed_pass(records, |r| {
        explainer
            .explain(model, &r.envelope.payload, label, &[])
            .map_err(runtime)
    })?;
    let mut max_diff: Option<f64> = None;
    for (e, c) in evidence.iter().zip(&classified) {
        if let (Some("probability"), Some(out)) = (e.space.as_deref(), e.output) {
            let d = (out - f64::from(c.probability(label))).abs();
            max_diff = Some(max_diff.map_or(d, |m| m.max(d)));
        }
    }
    let bounds: Vec<f64> = evidence.iter().filter_map(|e| e.error_bound).collect();
    let (explain, infer) = (Timing::of(explain), Timing::of(infer));
    Ok(TabularCost {
        method: explainer.method().as_str().to_owned(),
        bundle: model.dir().display().to_string(),
        permutations: settings.permutations,
        explain_vs_infer_p50: explain.p50_us / infer.p50_us,
        explain_vs_infer_mean: explain.mean_us / infer.mean_us,
        explain,
        infer_batch1: infer,
        classify: Timing::of(classify),
        max_output_difference: max_diff,
        mean_error_bound: (!bounds.is_empty())
            .then(|| bounds.iter().sum::<f64>() / bounds.len() as f64),
    })
}

/// Occlusion of `label` on each frame (detectors: on the label's boxes; frames without one
/// are left out), and one classification of each frame in a pass of its own.
pub(super) fn image_cost(
    model: &Classifier,
    frames: &[Frame],
    label: usize,
    settings: ExplainSettings,
) -> Result<ImageCost, BenchError> {
    let explainer = explainer(model, settings)?;
    let detector = model.detection_head().is_some();
    let (classify, classified) = timed_pass(frames, |f| {
        model.classify(&f.envelope.payload).map_err(runtime)
    })?;
    let targets: Vec<(&Frame, Vec<Detection>)> = frames
        .iter()
        .zip(&classified)
        .map(|(f, c)| {
            let boxes = c.detections.iter().filter(|d| d.class == label).copied();
            (f, boxes.collect::<Vec<_>>())
        })
        .filter(|(_, boxes)| !(detector && boxes.is_empty()))
        .collect();
    let (occlusion, _) = timed_pass(&targets, |(f, boxes)| {
        explainer
            .explain(model, &f.envelope.payload, label, boxes)
            .map_err(runtime)
    })?;
    let boxes: Vec<f64> = targets
        .iter()
        .map(|(_, b)| b.len().min(settings.max_boxes) as f64)
        .collect();
    let explained = occlusion.len();
    let (occlusion, classify) = (Timing::of(occlusion), Timing::of(classify));
    let grid = settings
        .grid
        .clamp(1, argus_model::explain::occlusion::MAX_GRID);
    Ok(ImageCost {
        bundle: model.dir().display().to_string(),
        label: model.labels().get(label).cloned().unwrap_or_default(),
        grid,
        model_runs: grid * grid + 1,
        frames: frames.len(),
        explained,
        mean_boxes: if detector {
            boxes.iter().sum::<f64>() / explained.max(1) as f64
        } else {
            0.0
        },
        occlusion_vs_classify_p50: occlusion.p50_us / classify.p50_us,
        occlusion_vs_classify_mean: occlusion.mean_us / classify.mean_us,
        occlusion,
        classify,
    })
}

/// `n` frames from the image files of `dir` in name order (cycled), read as `argus produce
/// --dir` reads them; an options error if the folder has none.
pub(super) fn dir_frames(dir: &Path, n: usize) -> Result<Vec<Frame>, BenchError> {
    let source = argus_producer::DirSource {
        path: dir.to_path_buf(),
        camera: "dir".into(),
        fps: 1.0,
        looped: true,
    };
    let files = source.files().map_err(usage)?;
    files
        .iter()
        .cycle()
        .take(n)
        .enumerate()
        .map(|(i, (path, format))| {
            source
                .frame(path, *format, i as u64, argus_wire::now_us())
                .map_err(|e| usage(format!("{}: {e}", path.display())))
        })
        .collect()
}

/// A copy of the tabular bundle in `dir` without its tree covers (the manifest's
/// `covers = …` line dropped, every other top-level file copied), in a new folder under
/// `into`: its explainer falls back to sampling Shapley against the background rows.
pub(super) fn without_covers(dir: &Path, into: &Path) -> Result<PathBuf, BenchError> {
    let copy = into.join("bundle-without-covers");
    std::fs::create_dir_all(&copy).map_err(runtime)?;
    let manifest = std::fs::read_to_string(dir.join("manifest.toml"))
        .map_err(|e| usage(format!("{}: {e}", dir.join("manifest.toml").display())))?;
    let kept: Vec<&str> = manifest
        .lines()
        .filter(|l| !l.trim_start().starts_with("covers"))
        .collect();
    if kept.len() == manifest.lines().count() {
        return Err(usage(format!(
            "{}: the manifest has no [explain] covers to remove",
            dir.display()
        )));
    }
    for entry in std::fs::read_dir(dir).map_err(runtime)? {
        let entry = entry.map_err(runtime)?;
        let name = entry.file_name();
        if entry.file_type().map_err(runtime)?.is_file() && name != "manifest.toml" {
            std::fs::copy(entry.path(), copy.join(&name)).map_err(runtime)?;
        }
    }
    std::fs::write(copy.join("manifest.toml"), kept.join("\n") + "\n").map_err(runtime)?;
    Ok(copy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_take_the_median_and_the_mean() {
        let t = Timing::of(vec![3.0, 1.0, 2.0, 10.0]);
        assert_eq!(t.samples, 4);
        assert_eq!(t.p50_us, 3.0);
        assert!((t.mean_us - 4.0).abs() < 1e-12);
    }

    #[test]
    fn the_churn_bundle_without_covers_explains_by_sampling() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let tmp = std::env::temp_dir().join(format!("argus-bench-covers-{}", std::process::id()));
        let copy =
            without_covers(&root.join("models/churn"), &tmp).unwrap_or_else(|e| panic!("{e}"));
        let model = Classifier::load(&copy).unwrap_or_else(|e| panic!("{e}"));
        let e = explainer(&model, ExplainSettings::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.method(), argus_model::explain::Method::SamplingShapley);
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
