//! Bundle loading and inference on the bundled camera model: checks that say what is wrong,
//! agreement with onnxruntime (reference values computed by `models/make_camera_model.py`).
#![allow(clippy::unwrap_used, clippy::expect_used)]
use argus_model::{Classifier, EngineKind, EngineOptions, ModelError};
use argus_wire::{ImageFormat, Payload, PixelLayout, RawImage};
use std::path::{Path, PathBuf};

fn bundle_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/camera-person")
}

fn copy_bundle(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in ["manifest.toml", "model.onnx"] {
        std::fs::copy(bundle_dir().join(f), to.join(f)).unwrap();
    }
}

fn edit_manifest(dir: &Path, from: &str, to: &str) {
    let path = dir.join("manifest.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "manifest has no {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

fn load_err(dir: &Path) -> String {
    Classifier::load(dir)
        .expect_err("load must fail")
        .to_string()
}

#[test]
fn bundled_model_loads_and_cites_its_hash() {
    let c = Classifier::load(&bundle_dir()).unwrap();
    assert_eq!(c.labels(), ["empty", "person"]);
    assert_eq!(c.model_ref().sha256, c.manifest().model.sha256);
    assert_eq!(c.model_ref().name, "camera-person");
}

#[test]
fn broken_bundles_fail_with_a_message_that_says_what_to_fix() {
    let tmp = tempfile::tempdir().unwrap();

    let missing = tmp.path().join("missing");
    assert!(load_err(&missing).contains("cannot read manifest"));

    let d = tmp.path().join("hash");
    copy_bundle(&d);
    std::fs::write(d.join("model.onnx"), b"garbage").unwrap();
    let e = Classifier::load(&d).unwrap_err();
    assert!(matches!(e, ModelError::HashMismatch { .. }), "{e}");
    assert!(e.to_string().contains("sha256"));

    let d = tmp.path().join("labels");
    copy_bundle(&d);
    edit_manifest(
        &d,
        r#"labels = ["empty", "person"]"#,
        r#"labels = ["empty", "person", "dog"]"#,
    );
    let e = load_err(&d);
    assert!(e.contains("3 labels"), "{e}");

    let d = tmp.path().join("channels");
    copy_bundle(&d);
    edit_manifest(&d, "shape = [1, 3, 32, 32]", "shape = [1, 4, 32, 32]");
    assert!(load_err(&d).contains("3 channels"));

    let d = tmp.path().join("name");
    copy_bundle(&d);
    edit_manifest(&d, r#"name = "image""#, r#"name = "pixels""#);
    let e = load_err(&d);
    assert!(e.contains("\"image\"") && e.contains("\"pixels\""), "{e}");

    let d = tmp.path().join("unknown-key");
    copy_bundle(&d);
    edit_manifest(
        &d,
        "task = \"classify\"",
        "task = \"classify\"\ncolour = \"blue\"",
    );
    let e = load_err(&d);
    assert!(e.contains("colour"), "{e}");

    let d = tmp.path().join("std");
    copy_bundle(&d);
    edit_manifest(&d, "std = [0.25, 0.25, 0.25]", "std = [0.25, 0.0, 0.25]");
    assert!(load_err(&d).contains("preprocess.std"));
}

#[derive(serde::Deserialize)]
struct Reference {
    tolerance: f32,
    frames: Vec<RefFrame>,
}

#[derive(serde::Deserialize)]
struct RefFrame {
    file: String,
    person: bool,
    p_person: f32,
}

/// Frames preprocessed by Pillow and scored by onnxruntime vs ours (image-crate resize and
/// tract): resize filters differ slightly, so the tolerance is the fixture's.
#[test]
fn agrees_with_onnxruntime_on_reference_frames() {
    let c = Classifier::load(&bundle_dir()).unwrap();
    let dir = bundle_dir().join("fixtures");
    let r: Reference =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    assert!(!r.frames.is_empty());
    for f in &r.frames {
        let bytes = std::fs::read(dir.join(&f.file)).unwrap();
        let out = c
            .classify(&Payload::Encoded {
                format: ImageFormat::Jpeg,
                bytes,
            })
            .unwrap();
        let p = out.probability(1);
        assert!(
            (p - f.p_person).abs() <= r.tolerance,
            "{}: ours {p} vs onnxruntime {}",
            f.file,
            f.p_person
        );
        assert_eq!(p >= 0.5, f.person, "{}: class", f.file);
        let sum: f32 = out.probabilities.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5);
    }
}

#[test]
fn raw_payloads_and_bad_payloads() {
    let c = Classifier::load(&bundle_dir()).unwrap();
    // Raw BGR equals the same pixels as RGB with channels swapped.
    let (w, h) = (40u32, 30u32);
    let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i * 7 % 251) as u8).collect();
    let bgr: Vec<u8> = rgb
        .chunks_exact(3)
        .flat_map(|p| [p[2], p[1], p[0]])
        .collect();
    let a = c
        .classify(&Payload::Raw(RawImage {
            width: w,
            height: h,
            layout: PixelLayout::Rgb8,
            data: rgb,
        }))
        .unwrap();
    let b = c
        .classify(&Payload::Raw(RawImage {
            width: w,
            height: h,
            layout: PixelLayout::Bgr8,
            data: bgr,
        }))
        .unwrap();
    assert_eq!(a.probabilities, b.probabilities);

    let short = Payload::Raw(RawImage {
        width: w,
        height: h,
        layout: PixelLayout::Rgb8,
        data: vec![0; 10],
    });
    let e = c.classify(&short).unwrap_err();
    assert_eq!(e.failure_kind(), argus_wire::FailureKind::Shape, "{e}");
    let zero = Payload::Raw(RawImage {
        width: 0,
        height: 5,
        layout: PixelLayout::Gray8,
        data: vec![],
    });
    assert_eq!(
        c.classify(&zero).unwrap_err().failure_kind(),
        argus_wire::FailureKind::Shape
    );
    let record = Payload::Record(argus_wire::Record::default());
    assert_eq!(
        c.classify(&record).unwrap_err().failure_kind(),
        argus_wire::FailureKind::Shape
    );
    let jpeg = Payload::Encoded {
        format: ImageFormat::Jpeg,
        bytes: vec![0xFF, 0xD8, 0, 1, 2],
    };
    assert_eq!(
        c.classify(&jpeg).unwrap_err().failure_kind(),
        argus_wire::FailureKind::Decode
    );
    let png = Payload::Encoded {
        format: ImageFormat::Png,
        bytes: b"\x89PNG\r\n\x1a\n".to_vec(),
    };
    assert_eq!(
        c.classify(&png).unwrap_err().failure_kind(),
        argus_wire::FailureKind::Decode
    );
}

/// A batch of N gives each input the same answer as N single calls (plans of every size are
/// built on demand from the same graph), and a wrongly sized tensor is refused.
#[test]
fn batches_of_any_size_agree_with_single_inputs() {
    let c = Classifier::load(&bundle_dir()).unwrap();
    let dir = bundle_dir().join("fixtures");
    let r: Reference =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let prepared: Vec<_> = r
        .frames
        .iter()
        .map(|f| {
            c.prepare(&Payload::Encoded {
                format: ImageFormat::Jpeg,
                bytes: std::fs::read(dir.join(&f.file)).unwrap(),
            })
            .unwrap()
        })
        .collect();
    let single: Vec<Vec<f32>> = prepared
        .iter()
        .map(|p| {
            c.classify_batch(std::slice::from_ref(p)).unwrap()[0]
                .probabilities
                .clone()
        })
        .collect();
    for n in [2, 3, 8] {
        let batch: Vec<_> = prepared.iter().cycle().take(n).cloned().collect();
        let out = c.classify_batch(&batch).unwrap();
        assert_eq!(out.len(), n);
        for (i, o) in out.iter().enumerate() {
            let want = &single[i % single.len()];
            for (a, b) in o.probabilities.iter().zip(want) {
                assert!((a - b).abs() < 1e-5, "batch {n} input {i}: {a} vs {b}");
            }
        }
    }
    let short = vec![0f32; c.input_len() - 1];
    let err = c.infer(&[short.as_slice()]).unwrap_err().to_string();
    assert!(err.contains("3071 values"), "{err}");
}

/// Batch calibration measures sizes 1, 2, 4, … up to the limit, stops at the first that
/// does not pay, and only ever picks a size it measured.
#[test]
fn batch_calibration_picks_a_measured_size_within_the_limit() {
    let c = Classifier::load(&bundle_dir()).unwrap();
    let (one, measured) = c.best_batch(1, 2);
    assert_eq!(one, 1);
    assert_eq!(measured.iter().map(|m| m.0).collect::<Vec<_>>(), [1]);
    let (best, measured) = c.best_batch(8, 3);
    assert_eq!(measured[0].0, 1);
    let sizes: Vec<usize> = measured.iter().map(|m| m.0).collect();
    assert_eq!(sizes[0], 1);
    assert!(sizes.windows(2).all(|w| w[1] == 2 * w[0]), "{sizes:?}");
    assert!(sizes.iter().all(|&s| s <= 8));
    assert!(sizes.contains(&best));
    assert!(measured.iter().all(|m| m.1.is_finite() && m.1 > 0.0));
    // The chosen size is the cheapest per input among those measured (within the 10 % rule).
    let chosen = measured.iter().find(|m| m.0 == best).unwrap().1;
    assert!(measured.iter().all(|m| chosen <= m.1 / 0.9 + 1e-9));
}

/// The bundle on the engine `kind`, other options default.
fn load_on(kind: EngineKind) -> Classifier {
    let options = EngineOptions {
        kind: Some(kind),
        ..EngineOptions::default()
    };
    Classifier::load_with(&bundle_dir(), &options).unwrap_or_else(|e| panic!("{kind}: {e}"))
}

/// After `limit_batch(1)` tract keeps only what batch 1 needs: single inputs still run
/// (same answers), a larger batch fails with an error rather than a panic.
#[test]
fn limiting_to_batch_1_keeps_single_inputs_working() {
    let c = load_on(EngineKind::Tract);
    let x = vec![0.25f32; c.input_len()];
    let (before, _) = c.infer(&[x.as_slice()]).unwrap();
    c.limit_batch(1);
    let (after, _) = c.infer(&[x.as_slice()]).unwrap();
    assert_eq!(before, after);
    let err = c
        .infer(&[x.as_slice(), x.as_slice()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("batch"), "{err}");
}

/// `auto` times the engines of this build that load the model and runs the fastest: the
/// answers are those of an engine named outright, and the engine reported is a real one.
#[test]
fn auto_runs_a_real_engine_with_the_same_answers() {
    let auto = load_on(EngineKind::Auto);
    assert_ne!(auto.engine(), EngineKind::Auto);
    let named = load_on(auto.engine());
    let tract = load_on(EngineKind::Tract);
    let x = vec![0.25f32; auto.input_len()];
    let (a, _) = auto.infer(&[x.as_slice()]).unwrap();
    let (n, _) = named.infer(&[x.as_slice()]).unwrap();
    let (t, _) = tract.infer(&[x.as_slice()]).unwrap();
    assert_eq!(a, n);
    for (a, t) in a[0].iter().zip(&t[0]) {
        assert!((a - t).abs() < 1e-5, "auto {a} vs tract {t}");
    }
}

/// With no engine named, the model's graph chooses (`engine::rule`): the camera model (an
/// MLP) runs on tract; the churn forest, its manifest's `engine = "trees"` removed, on the
/// trees engine, with the answers of the bundle as shipped.
#[test]
fn with_no_engine_named_the_graph_chooses() {
    assert_eq!(
        Classifier::load(&bundle_dir()).unwrap().engine(),
        EngineKind::Tract
    );
    let churn = bundle_dir().join("../churn");
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&churn).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, tmp.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    edit_manifest(tmp.path(), "engine = \"trees\"\n", "");
    let unnamed = Classifier::load(tmp.path()).unwrap();
    assert_eq!(unnamed.engine(), EngineKind::Trees);
    let shipped = Classifier::load(&churn).unwrap();
    let x: Vec<f32> = (0..unnamed.input_len()).map(|i| i as f32 * 0.5).collect();
    assert_eq!(
        unnamed.infer(&[x.as_slice()]).unwrap().0,
        shipped.infer(&[x.as_slice()]).unwrap().0
    );
}
