//! The native tree-ensemble engine against onnxruntime's and scikit-learn's outputs stored in
//! `tests/fixtures/trees` (written by `make_fixtures.py` there): |Δ| ≤ 1e-6 at batch 1, 7 and
//! 64, NaN inputs and inputs exactly on split thresholds included; plus load-time refusals.
//! PROBIT (never written by skl2onnx) agrees to 1e-5 only: onnxruntime's float erf-inverse
//! approximation rounds differently from the same formula evaluated here.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use argus_model::engine::trees::TreesEngine;
use argus_model::engine::Engine;
use argus_model::{EngineKind, ModelError};
use serde::Deserialize;
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trees")
}

#[derive(Deserialize)]
struct Fixture {
    model: String,
    input: String,
    output: String,
    n_features: usize,
    kind: Vec<String>,
    x: Vec<Vec<Option<f64>>>,
    onnxruntime: Vec<Vec<Option<f64>>>,
    #[serde(default)]
    sklearn: Option<Vec<Vec<Option<f64>>>>,
    #[serde(default)]
    sklearn_rows: Vec<usize>,
    #[serde(default)]
    sklearn_tol: Option<f64>,
}

const NAMES: &[&str] = &[
    "rf_binary",
    "rf_multiclass",
    "extratrees_binary",
    "gbt_binary",
    "gbt_multiclass",
    "rf_regressor",
    "gbt_regressor",
    "syn_reg_modes_sum",
    "syn_reg_average",
    "syn_reg_min",
    "syn_reg_max",
    "syn_reg_probit",
    "syn_reg_softmax_2t",
    "syn_cls3_softmax_zero",
    "syn_cls3_logistic",
    "syn_cls4_probit_strings",
    "syn_bin_class1_positive",
    "syn_bin_class0_mixed_none",
    "syn_bin_class0_mixed_logistic",
    "syn_bin_two_base_values",
    "syn_bin_both_classes_softmax",
];

fn load(name: &str) -> (Fixture, TreesEngine) {
    let text = std::fs::read_to_string(dir().join(format!("{name}.json"))).unwrap();
    let f: Fixture = serde_json::from_str(&text).unwrap();
    let engine = TreesEngine::from_onnx(&dir().join(&f.model), &f.input, &f.output, f.n_features)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    (f, engine)
}

fn rows(f: &Fixture) -> Vec<f32> {
    f.x.iter()
        .flatten()
        .map(|v| v.map_or(f32::NAN, |v| v as f32))
        .collect()
}

fn values(t: &[Vec<Option<f64>>]) -> Vec<Vec<f64>> {
    t.iter()
        .map(|r| r.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
        .collect()
}

/// Runs all rows in batches of `batch` (the last one shorter).
fn run_all(e: &TreesEngine, x: &[f32], batch: usize) -> Vec<f32> {
    let nf = e.n_features();
    let mut out = Vec::new();
    for chunk in x.chunks(batch * nf) {
        out.extend(e.run(chunk.len() / nf, chunk).unwrap());
    }
    out
}

#[test]
fn matches_onnxruntime_to_1e_6_at_batch_1_7_and_64() {
    for name in NAMES {
        let (f, e) = load(name);
        assert_eq!(e.kind(), EngineKind::Trees);
        let want = values(&f.onnxruntime);
        assert_eq!(e.n_outputs(), want[0].len(), "{name}");
        let x = rows(&f);
        let tol = if name.contains("probit") { 1e-5 } else { 1e-6 };
        for batch in [1, 7, 64, 100] {
            let got = run_all(&e, &x, batch);
            assert_eq!(got.len(), want.len() * e.n_outputs(), "{name}");
            for (i, (g, w)) in got.chunks(e.n_outputs()).zip(&want).enumerate() {
                for (a, b) in g.iter().zip(w) {
                    assert!(
                        (f64::from(*a) - b).abs() <= tol || (a.is_nan() && b.is_nan()),
                        "{name} batch {batch} row {i} ({}): got {g:?}, onnxruntime {w:?}",
                        f.kind[i]
                    );
                }
            }
        }
    }
}

#[test]
fn matches_scikit_learn_on_data_rows() {
    for name in NAMES {
        let (f, e) = load(name);
        let Some(skl) = &f.sklearn else { continue };
        let skl = values(skl);
        let tol = f.sklearn_tol.unwrap();
        let got = run_all(&e, &rows(&f), 64);
        let mut worst = 0f64;
        for &i in &f.sklearn_rows {
            let g = &got[i * e.n_outputs()..(i + 1) * e.n_outputs()];
            for (a, b) in g.iter().zip(&skl[i]) {
                worst = worst.max((f64::from(*a) - b).abs());
            }
        }
        assert!(f.sklearn_rows.len() >= 50, "{name}");
        assert!(worst <= tol, "{name}: worst |Δ| vs scikit-learn {worst}");
    }
}

#[test]
fn fixtures_cover_nans_and_thresholds() {
    let (f, _) = load("rf_binary");
    assert!(f.kind.iter().filter(|k| *k == "nan").count() >= 10);
    assert!(f.kind.iter().filter(|k| *k == "threshold").count() >= 10);
    assert!(f.x.iter().flatten().any(Option::is_none));
}

#[test]
fn batches_agree_with_single_rows_exactly() {
    let (f, e) = load("gbt_multiclass");
    let x = rows(&f);
    assert_eq!(run_all(&e, &x, 1), run_all(&e, &x, 33));
}

fn err(path: &Path, input: &str, output: &str, n: usize) -> String {
    let e: ModelError = TreesEngine::from_onnx(path, input, output, n).unwrap_err();
    e.to_string()
}

#[test]
fn refuses_a_model_that_is_not_a_tree_ensemble() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/camera-person/model.onnx");
    let onnx_input = {
        // The camera model's input name, whatever it is: read it from the error.
        let e = err(&path, "?", "?", 1);
        assert!(e.contains("expected one input named"), "{e}");
        e
    };
    let name = onnx_input
        .split('"')
        .nth(1)
        .expect("input name in the message")
        .to_string();
    let out =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/camera-person/manifest.toml");
    let text = std::fs::read_to_string(out).unwrap();
    let output = text
        .lines()
        .skip_while(|l| !l.starts_with("[output]"))
        .find_map(|l| l.strip_prefix("name = "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    let e = err(&path, &name, &output, 3 * 224 * 224);
    assert!(
        e.contains("trees engine") && e.contains("onnxruntime") && e.contains("op "),
        "{e}"
    );
}

#[test]
fn refuses_a_wrong_input_width_or_names() {
    let path = dir().join("rf_binary.onnx");
    let e = err(&path, "X", "probabilities", 9);
    assert!(e.contains("8 features per row, expected 9"), "{e}");
    let e = err(&path, "features", "probabilities", 8);
    assert!(e.contains("expected one input named \"features\""), "{e}");
    let e = err(&path, "X", "proba", 8);
    assert!(e.contains("there is no \"proba\""), "{e}");
    let e = err(&path, "X", "label", 8);
    assert!(e.contains("label output"), "{e}");
    let e = err(&dir().join("missing.onnx"), "X", "probabilities", 8);
    assert!(e.contains("not a readable ONNX model"), "{e}");
}

#[test]
fn rejects_a_batch_of_the_wrong_size_without_panicking() {
    let (_, e) = load("rf_regressor");
    assert!(matches!(
        e.run(2, &[0.0; 15]).unwrap_err(),
        ModelError::Shape { .. }
    ));
    assert!(e.run(0, &[]).unwrap().is_empty());
    let weird = [
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -0.0,
        1e38,
        -1e38,
        0.0,
        f32::MIN_POSITIVE,
    ];
    assert_eq!(e.run(1, &weird).unwrap().len(), 1);
}

#[test]
fn engine_kind_parses() {
    assert_eq!("trees".parse::<EngineKind>().unwrap(), EngineKind::Trees);
    assert_eq!(EngineKind::Trees.as_str(), "trees");
}

#[test]
fn is_send_and_sync_and_serves_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TreesEngine>();
    let (f, e) = load("rf_multiclass");
    let x = rows(&f);
    let want = run_all(&e, &x, 64);
    std::thread::scope(|s| {
        for b in [1, 5, 64] {
            let (e, x, want) = (&e, &x, &want);
            s.spawn(move || assert_eq!(&run_all(e, x, b), want));
        }
    });
}
