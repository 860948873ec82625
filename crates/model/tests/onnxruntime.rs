//! The onnxruntime engine (cargo feature `onnxruntime`) against tract on the same inputs:
//! raw outputs agree to 1e-5, batches too, and a missing library is a clear load error.
//! Needs `libonnxruntime` (scripts/test points `ORT_DYLIB_PATH` at the one in PyPI's
//! `onnxruntime` wheel, installing it when missing).
#![cfg(feature = "onnxruntime")]
#![allow(clippy::unwrap_used, clippy::expect_used)]
use argus_model::{Classifier, EngineKind, EngineOptions};
use argus_wire::{ImageFormat, Payload};
use std::path::PathBuf;

fn bundle_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/camera-person")
}

fn engines() -> (Classifier, Classifier) {
    let tract = Classifier::load_with(
        &bundle_dir(),
        &EngineOptions {
            kind: Some(EngineKind::Tract),
            ..Default::default()
        },
    )
    .unwrap();
    let ort = Classifier::load_with(
        &bundle_dir(),
        &EngineOptions {
            kind: Some(EngineKind::Onnxruntime),
            concurrency: 2,
            intra_threads: 1,
            onnxruntime_lib: None,
        },
    )
    .unwrap_or_else(|e| panic!("onnxruntime engine: {e} (set ORT_DYLIB_PATH)"));
    assert_eq!(tract.engine(), EngineKind::Tract);
    assert_eq!(ort.engine(), EngineKind::Onnxruntime);
    (tract, ort)
}

/// Deterministic inputs in the model's normalised range (LCG), plus the fixture frames.
fn inputs(c: &Classifier) -> Vec<Vec<f32>> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut out: Vec<Vec<f32>> = (0..16)
        .map(|_| {
            (0..c.input_len())
                .map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    ((state >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
                })
                .collect()
        })
        .collect();
    let dir = bundle_dir().join("fixtures");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "jpg") {
            let p = c
                .prepare(&Payload::Encoded {
                    format: ImageFormat::Jpeg,
                    bytes: std::fs::read(&path).unwrap(),
                })
                .unwrap();
            out.push(p.data);
        }
    }
    out
}

#[test]
fn onnxruntime_and_tract_agree_to_1e_5_single_and_batched() {
    let (tract, ort) = engines();
    let xs = inputs(&tract);
    assert!(xs.len() > 16);
    let mut worst = 0f32;
    for x in &xs {
        let (a, _) = tract.infer(&[x.as_slice()]).unwrap();
        let (b, _) = ort.infer(&[x.as_slice()]).unwrap();
        for (p, q) in a[0].iter().zip(&b[0]) {
            worst = worst.max((p - q).abs() / q.abs().max(1.0));
        }
    }
    assert!(worst <= 1e-5, "worst difference {worst}");
    for n in [2, 8] {
        let views: Vec<&[f32]> = xs.iter().take(n).map(Vec::as_slice).collect();
        let (a, _) = tract.infer(&views).unwrap();
        let (b, _) = ort.infer(&views).unwrap();
        assert_eq!(b.len(), n);
        for (ra, rb) in a.iter().zip(&b) {
            for (p, q) in ra.iter().zip(rb) {
                assert!(
                    (p - q).abs() <= 1e-5 * q.abs().max(1.0),
                    "batch {n}: {p} vs {q}"
                );
            }
        }
    }
}

#[test]
fn onnxruntime_sessions_serve_concurrent_calls() {
    let (tract, ort) = engines();
    let xs = inputs(&tract);
    let want: Vec<Vec<f32>> = xs
        .iter()
        .map(|x| tract.infer(&[x.as_slice()]).unwrap().0.remove(0))
        .collect();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (ort, xs, want) = (&ort, &xs, &want);
            s.spawn(move || {
                for (i, x) in xs.iter().enumerate().skip(t) {
                    let got = ort.infer(&[x.as_slice()]).unwrap().0.remove(0);
                    for (p, q) in got.iter().zip(&want[i]) {
                        assert!((p - q).abs() <= 1e-5 * q.abs().max(1.0));
                    }
                }
            });
        }
    });
}

#[test]
fn a_missing_library_says_where_to_find_one() {
    // The library is loaded once per process; asking for another file is refused clearly
    // whichever test loaded it first.
    let e = Classifier::load_with(
        &bundle_dir(),
        &EngineOptions {
            kind: Some(EngineKind::Onnxruntime),
            onnxruntime_lib: Some("/nonexistent/libonnxruntime.so".into()),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("ORT_DYLIB_PATH") || e.contains("already loaded"),
        "{e}"
    );
}

/// With no engine named, a model with depthwise convolutions (the person detector) runs on
/// onnxruntime in a build that has it (`engine::rule`), and its boxes are tract's.
#[test]
fn depthwise_convolutions_go_to_onnxruntime_when_no_engine_is_named() {
    let dir = bundle_dir().join("../person-detector");
    let chosen = Classifier::load_with(
        &dir,
        &EngineOptions {
            concurrency: 1,
            intra_threads: 1,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(chosen.engine(), EngineKind::Onnxruntime);
    let tract = Classifier::load_with(
        &dir,
        &EngineOptions {
            kind: Some(EngineKind::Tract),
            ..Default::default()
        },
    )
    .unwrap();
    let x: Vec<f32> = (0..tract.input_len())
        .map(|i| (i % 251) as f32 / 251.0)
        .collect();
    let (a, _) = chosen.infer(&[x.as_slice()]).unwrap();
    let (b, _) = tract.infer(&[x.as_slice()]).unwrap();
    assert_eq!(a.len(), b.len());
    for (a, b) in a.iter().flatten().zip(b.iter().flatten()) {
        assert!(
            (a - b).abs() < 1e-3 * (1.0 + b.abs()),
            "onnxruntime {a} vs tract {b}"
        );
    }
}

/// The graph's choice falls back to tract when onnxruntime does not load (here a library
/// path that does not exist, refused whether or not another test loaded one first): the
/// model still runs, as it did before the rule, and the log says why.
#[test]
fn the_graphs_choice_falls_back_to_tract_when_onnxruntime_does_not_load() {
    let c = Classifier::load_with(
        &bundle_dir().join("../person-detector"),
        &EngineOptions {
            concurrency: 1,
            onnxruntime_lib: Some("/nonexistent/libonnxruntime.so".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(c.engine(), EngineKind::Tract);
}
