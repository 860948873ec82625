//! Detection bundles against a reference pipeline (onnxruntime + the committed Python
//! decoder and NMS, `models/detector/reference_boxes.py` and `make_tiny_yolo.py`): the
//! person detector (`models/person-detector`, SSD-style outputs) and a tiny YOLO-head test
//! model (`tests/fixtures/yolo`), on fixture frames. Boxes after thresholds and NMS equal
//! the reference's to 1e-4 in frame pixels on tract and (with the `onnxruntime` feature) on
//! onnxruntime, stretched and letterboxed.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use argus_model::detection::Detection;
use argus_model::{Classifier, EngineKind, EngineOptions};
use argus_wire::{ImageFormat, Payload};
use serde_json::Value;
use std::path::{Path, PathBuf};

const TOLERANCE: f32 = 1e-4;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixtures(dir: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
}

fn load(bundle: &Path, kind: EngineKind) -> Classifier {
    Classifier::load_with(
        bundle,
        &EngineOptions {
            kind: Some(kind),
            concurrency: 1,
            intra_threads: 1,
            onnxruntime_lib: None,
        },
    )
    .unwrap_or_else(|e| panic!("{}: {e}", bundle.display()))
}

/// The same bundle with `preprocess.resize` set to `fit`, in a temporary directory.
fn refit(bundle: &Path, fit: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let manifest = std::fs::read_to_string(bundle.join("manifest.toml")).unwrap();
    let manifest = manifest
        .replace("resize = \"stretch\"", &format!("resize = \"{fit}\""))
        .replace("resize = \"letterbox\"", &format!("resize = \"{fit}\""));
    std::fs::write(dir.path().join("manifest.toml"), manifest).unwrap();
    std::fs::copy(bundle.join("model.onnx"), dir.path().join("model.onnx")).unwrap();
    dir
}

fn reference(dir: &str) -> Value {
    let path = fixtures(dir).join("reference.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Checks every fixture frame of `dir` on `kind`: the boxes, each matched to the reference
/// box of its class nearest to it, agree to [`TOLERANCE`]; scores to 1e-4.
fn check(dir: &str, bundle: &Path, kind: EngineKind) {
    let r = reference(dir);
    let m = argus_model::Manifest::load(bundle).unwrap();
    assert_eq!(
        r["model_sha256"],
        m.model.sha256.as_str(),
        "fixtures for this model"
    );
    let fitted: std::collections::HashMap<&str, Classifier> = ["stretch", "letterbox"]
        .into_iter()
        .map(|fit| {
            let dir = refit(bundle, fit);
            let c = load(dir.path(), kind);
            (fit, c)
        })
        .collect();
    let mut boxes = 0;
    for frame in r["frames"].as_array().unwrap() {
        let file = frame["file"].as_str().unwrap();
        let model = &fitted[frame["fit"].as_str().unwrap()];
        let payload = Payload::Encoded {
            format: ImageFormat::Png,
            bytes: std::fs::read(fixtures(dir).join(file)).unwrap(),
        };
        let got = model.classify(&payload).unwrap();
        let (w, h) = (
            frame["width"].as_u64().unwrap(),
            frame["height"].as_u64().unwrap(),
        );
        assert_eq!(got.frame, Some((w as u32, h as u32)), "{file}");
        let want = frame["detections"].as_array().unwrap();
        assert_eq!(
            got.detections.len(),
            want.len(),
            "{file} on {kind}: {:?}",
            got.detections
        );
        for wd in want {
            let class = wd["class"].as_u64().unwrap() as usize;
            let corners: Vec<f32> = wd["box"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            let diff = |d: &Detection| {
                [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2]
                    .iter()
                    .zip(&corners)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max)
            };
            let best = got
                .detections
                .iter()
                .filter(|d| d.class == class)
                .min_by(|a, b| diff(a).total_cmp(&diff(b)))
                .unwrap_or_else(|| panic!("{file}: no box of class {class}"));
            assert!(
                diff(best) <= TOLERANCE,
                "{file} on {kind}: box {corners:?} vs {:?} ({} px apart)",
                best.bbox,
                diff(best)
            );
            let score = wd["score"].as_f64().unwrap() as f32;
            assert!(
                (best.score - score).abs() <= 1e-4,
                "{file}: score {} vs {score}",
                best.score
            );
            boxes += 1;
        }
        // A frame's score per label is its best box's.
        for (class, p) in got.probabilities.iter().enumerate() {
            let best = want
                .iter()
                .filter(|d| d["class"].as_u64() == Some(class as u64))
                .map(|d| d["score"].as_f64().unwrap() as f32)
                .fold(0f32, f32::max);
            assert!(
                (p - best).abs() <= 1e-4,
                "{file}: label {class} score {p} vs {best}"
            );
        }
    }
    assert!(boxes >= 10, "{dir}: only {boxes} reference boxes checked");
}

#[test]
fn person_detector_boxes_equal_the_reference_on_tract() {
    check(
        "detector",
        &root().join("models/person-detector"),
        EngineKind::Tract,
    );
}

#[test]
fn yolo_boxes_equal_the_reference_on_tract() {
    check("yolo", &fixtures("yolo"), EngineKind::Tract);
}

#[cfg(feature = "onnxruntime")]
#[test]
fn person_detector_boxes_equal_the_reference_on_onnxruntime() {
    check(
        "detector",
        &root().join("models/person-detector"),
        EngineKind::Onnxruntime,
    );
}

#[cfg(feature = "onnxruntime")]
#[test]
fn yolo_boxes_equal_the_reference_on_onnxruntime() {
    check("yolo", &fixtures("yolo"), EngineKind::Onnxruntime);
}

/// Decoding at reduced scale (the bundle's `preprocess.reduced_decode`) finds the same
/// people as a full decode: vtest frames blown up to 1080p JPEGs (what a 1080p camera of
/// that plaza sends) decode at 1/4 and give the same boxes to within a few pixels.
#[test]
fn reduced_decode_finds_the_people_a_full_decode_finds() {
    let bundle = root().join("models/person-detector");
    assert!(
        argus_model::Manifest::load(&bundle)
            .unwrap()
            .preprocess
            .unwrap()
            .reduced_decode,
        "the shipped detector decodes reduced"
    );
    let reduced = load(&bundle, EngineKind::Tract);
    let whole_dir = tempfile::tempdir().unwrap();
    let manifest = std::fs::read_to_string(bundle.join("manifest.toml")).unwrap();
    std::fs::write(
        whole_dir.path().join("manifest.toml"),
        manifest.replace("reduced_decode = true", "reduced_decode = false"),
    )
    .unwrap();
    std::fs::copy(
        bundle.join("model.onnx"),
        whole_dir.path().join("model.onnx"),
    )
    .unwrap();
    let whole = load(whole_dir.path(), EngineKind::Tract);
    let mut people = 0;
    for file in [
        "vtest-0000.png",
        "vtest-0100.png",
        "vtest-0300.png",
        "vtest-0600.png",
    ] {
        let frame = image::open(fixtures("detector").join(file))
            .unwrap()
            .into_rgb8();
        let big =
            image::imageops::resize(&frame, 1920, 1080, image::imageops::FilterType::Triangle);
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 85)
            .encode_image(&big)
            .unwrap();
        let payload = Payload::Encoded {
            format: ImageFormat::Jpeg,
            bytes,
        };
        let a = reduced.classify(&payload).unwrap();
        let b = whole.classify(&payload).unwrap();
        assert_eq!((a.frame, b.frame), (Some((1920, 1080)), Some((1920, 1080))));
        // Same people: every confident box of one decode has a match in the other
        // (boxes near the score threshold may fall either side of it).
        for (x, y, which) in [(&a, &b, "reduced"), (&b, &a, "whole")] {
            for d in x.detections.iter().filter(|d| d.score >= 0.6) {
                let best = y
                    .detections
                    .iter()
                    .map(|e| e.bbox.iou(&d.bbox))
                    .fold(0f32, f32::max);
                assert!(
                    best >= 0.8,
                    "{file}: {which} box {:?} ({}) has no match (IoU {best}): {:?} vs {:?}",
                    d.bbox,
                    d.score,
                    a.detections,
                    b.detections
                );
                people += 1;
            }
        }
    }
    assert!(people >= 10, "only {people} confident people compared");
}

/// Batches give each frame the boxes it gets alone (the detector's outputs are split per
/// input), whether or not the model can batch.
#[test]
fn a_batch_gives_each_frame_its_own_boxes() {
    let c = load(&root().join("models/person-detector"), EngineKind::Tract);
    let frames: Vec<_> = ["vtest-0000.png", "vtest-0100.png"]
        .iter()
        .map(|f| {
            c.prepare(&Payload::Encoded {
                format: ImageFormat::Png,
                bytes: std::fs::read(fixtures("detector").join(f)).unwrap(),
            })
            .unwrap()
        })
        .collect();
    let alone: Vec<_> = frames
        .iter()
        .map(|p| c.classify_batch(std::slice::from_ref(p)).unwrap().remove(0))
        .collect();
    match c.classify_batch(&frames) {
        Ok(together) => {
            for (a, b) in alone.iter().zip(&together) {
                assert_eq!(a.detections.len(), b.detections.len());
                for (x, y) in a.detections.iter().zip(&b.detections) {
                    assert!(
                        (x.bbox.x1 - y.bbox.x1).abs() < 1e-3 && (x.score - y.score).abs() < 1e-4
                    );
                }
            }
        }
        // The person detector's graph is exported for batch 1 (its outputs have no batch
        // axis) and refuses a batch of 2; the worker's calibration then settles on 1.
        Err(e) => {
            assert!(
                matches!(
                    e,
                    argus_model::ModelError::Load { .. }
                        | argus_model::ModelError::Inference { .. }
                ),
                "{e}"
            );
            assert_eq!(c.best_batch(4, 1).0, 1);
        }
    }
}

/// Occlusion saliency per box on the real person detector (the evidence a detector's alert
/// carries, `Explainer` with grid 6): blanking a cell over a person lowers or removes that
/// person's box, so each explained box's peak cell overlaps the box, the box's largest
/// drop is most of its score, and cells away from it barely move it. On the shipped
/// (stretched) bundle and letterboxed (a 300x224 frame: padding above and below, so the
/// grid covers only the frame's area). 3 frames, 9 boxes, 37 detector calls a frame:
/// ~7 s in a debug build (the dependencies and argus-model are optimised in dev).
///
/// Boxes of people 15 px wide vanish whichever of two to five neighbouring cells is blanked
/// (all tie at the whole score); the peak is the tied cell covering most of the box
/// (before that tie-break it was the last tied cell in row-major order, below or right of
/// the person, for 4 of these 9 boxes).
#[test]
fn each_explained_box_peaks_on_its_person() {
    use argus_model::explain::{ExplainSettings, Explainer};
    let bundle = root().join("models/person-detector");
    let letterboxed = refit(&bundle, "letterbox");
    let settings = ExplainSettings {
        grid: 6,
        max_boxes: 10,
        ..ExplainSettings::default()
    };
    let mut explained = 0;
    for (dir, file) in [
        (bundle.as_path(), "vtest-0000.png"),
        (bundle.as_path(), "vtest-0300.png"),
        (letterboxed.path(), "vtest-0100-300x224.png"),
    ] {
        let t = std::time::Instant::now();
        let c = load(dir, EngineKind::Tract);
        let person = c.labels().iter().position(|l| l == "person").unwrap();
        let payload = Payload::Encoded {
            format: ImageFormat::Png,
            bytes: std::fs::read(fixtures("detector").join(file)).unwrap(),
        };
        let classified = c.classify(&payload).unwrap();
        let (fw, fh) = classified.frame.unwrap();
        let boxes: Vec<Detection> = classified
            .detections
            .into_iter()
            .filter(|d| d.class == person)
            .collect();
        assert!(
            boxes.iter().any(|d| d.score >= 0.8),
            "{file}: a confident person: {boxes:?}"
        );
        let explainer = Explainer::for_model(&c, settings)
            .unwrap()
            .expect("detectors are explained by occlusion");
        let evidence = explainer.explain(&c, &payload, person, &boxes).unwrap();
        println!(
            "{file}: {} boxes explained in {:?}",
            boxes.len(),
            t.elapsed()
        );
        assert_eq!(evidence.saliency.len(), boxes.len());
        for (d, s) in boxes.iter().zip(&evidence.saliency) {
            let b = [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2];
            assert_eq!(s.bbox, Some(b), "{file}: grids in the boxes' order");
            assert_eq!((s.rows, s.cols, s.values.len()), (6, 6, 36));
            let meets = |a: [f32; 4], b: [f32; 4]| {
                a[2].min(b[2]) > a[0].max(b[0]) && a[3].min(b[3]) > a[1].max(b[1])
            };
            // The frame's cells (letterboxing: the frame's area only, not the padding).
            let cell = |i: usize| {
                let (r, c) = ((i / 6) as f32, (i % 6) as f32);
                let (w, h) = (fw as f32 / 6.0, fh as f32 / 6.0);
                [c * w, r * h, (c + 1.0) * w, (r + 1.0) * h]
            };
            let top = s.values.iter().copied().fold(f32::MIN, f32::max);
            // Away from the box: cells not touching it grown by one cell a side.
            let grown = [
                b[0] - fw as f32 / 6.0,
                b[1] - fh as f32 / 6.0,
                b[2] + fw as f32 / 6.0,
                b[3] + fh as f32 / 6.0,
            ];
            let away = (0..36)
                .filter(|&i| !meets(cell(i), grown))
                .map(|i| s.values[i].abs())
                .fold(0f32, f32::max);
            println!(
                "  box {b:?} ({:.2}): peak {:?}, largest drop {top:.3}, largest change away {away:.3}",
                d.score, s.peak
            );
            assert!(
                meets(s.peak, b),
                "{file}: the peak {:?} misses the box {b:?}: {:?}",
                s.peak,
                s.values
            );
            assert!(
                top >= 0.5 * d.score,
                "{file}: blanking no cell halves the box {b:?} ({}): {:?}",
                d.score,
                s.values
            );
            assert!(
                away <= 0.25 * d.score,
                "{file}: cells away from {b:?} move it by {away}: {:?}",
                s.values
            );
            explained += 1;
        }
    }
    assert!(explained >= 8, "only {explained} boxes explained");
}
