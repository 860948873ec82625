//! The bundled churn model (`models/churn`, made by `models/make_churn_model.py`): records
//! are assembled as the manifest says and scored as scikit-learn scores them (reference
//! `predict_proba` in `tests/fixtures/churn/expected-10k.csv`); manifest mistakes stop the
//! load with a message naming them.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use argus_model::manifest::FeatureKind;
use argus_model::{Classifier, EngineKind};
use argus_wire::{Field, Payload, Record, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The first `n` customers of the 10k fixture as records typed by the manifest, with the
/// reference probability of churn.
fn customers(model: &Classifier, n: usize) -> Vec<(String, Record, f64)> {
    let kinds: HashMap<&str, FeatureKind> = model
        .manifest()
        .features
        .iter()
        .map(|f| (f.name.as_str(), f.kind))
        .collect();
    let dir = root().join("tests/fixtures/churn");
    let expected: HashMap<String, f64> = std::fs::read_to_string(dir.join("expected-10k.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let (k, p) = l.split_once(',').unwrap();
            (k.to_string(), p.parse().unwrap())
        })
        .collect();
    let text = std::fs::read_to_string(dir.join("customers-10k.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .take(n)
        .map(|l| {
            let fields: Vec<Field> = header
                .iter()
                .zip(l.split(','))
                .map(|(name, v)| Field {
                    name: (*name).into(),
                    value: match kinds.get(name) {
                        Some(FeatureKind::Int) => Value::Int(v.parse().unwrap()),
                        Some(FeatureKind::Float) => Value::Float(v.parse().unwrap()),
                        Some(FeatureKind::Bool) => Value::Bool(v == "true"),
                        _ => Value::Text(v.into()),
                    },
                })
                .collect();
            let id = l.split(',').next().unwrap().to_string();
            let p = expected[&id];
            (id, Record { fields }, p)
        })
        .collect()
}

#[test]
fn churn_bundle_scores_records_as_scikit_learn_does() {
    let model = Classifier::load(&root().join("models/churn")).unwrap();
    assert_eq!(model.engine(), EngineKind::Trees);
    assert_eq!(model.labels(), ["stay", "churn"]);
    let rows = customers(&model, 2000);
    let mut worst = 0f64;
    // One at a time, and in batches of 64 (as the worker batches).
    for (_, record, p) in &rows {
        let c = model.classify(&Payload::Record(record.clone())).unwrap();
        worst = worst.max((f64::from(c.probability(1)) - p).abs());
        assert!((c.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }
    for chunk in rows.chunks(64) {
        let prepared: Vec<_> = chunk
            .iter()
            .map(|(_, r, _)| model.prepare(&Payload::Record(r.clone())).unwrap())
            .collect();
        for (c, (id, _, p)) in model.classify_batch(&prepared).unwrap().iter().zip(chunk) {
            let d = (f64::from(c.probability(1)) - p).abs();
            assert!(d <= 1e-6, "{id}: {} vs scikit-learn {p}", c.probability(1));
        }
    }
    assert!(worst <= 1e-6, "worst |Δ| {worst}");
}

#[test]
fn evidence_lists_the_features_in_manifest_order() {
    let model = Classifier::load(&root().join("models/churn")).unwrap();
    let (_, record, _) = customers(&model, 1).pop().unwrap();
    let evidence = model.evidence(&Payload::Record(record));
    let names: Vec<&str> = evidence.iter().map(|(n, _)| n.as_str()).collect();
    let manifest: Vec<&str> = model
        .manifest()
        .features
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(names, manifest);
    assert!(!names.contains(&"customer_id"));
}

#[test]
fn an_image_is_no_record_and_a_record_is_no_image() {
    let churn = Classifier::load(&root().join("models/churn")).unwrap();
    let e = churn
        .classify(&Payload::Encoded {
            format: argus_wire::ImageFormat::Jpeg,
            bytes: vec![0xff, 0xd8],
        })
        .unwrap_err();
    assert!(e.to_string().contains("scores records"), "{e}");
    let camera = Classifier::load(&root().join("models/camera-person")).unwrap();
    let e = camera
        .classify(&Payload::Record(Record::default()))
        .unwrap_err();
    assert_eq!(e.failure_kind(), argus_wire::FailureKind::Shape);
}

fn copy_bundle(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in ["manifest.toml", "model.onnx"] {
        std::fs::copy(root().join("models/churn").join(f), to.join(f)).unwrap();
    }
}

#[test]
fn manifest_mistakes_are_named() {
    let cases: [(&str, &str, &str); 8] = [
        (
            "shape = [1, 20]",
            "shape = [1, 21]",
            "fill 20 input columns",
        ),
        (
            "categories = [\"north\", \"south\", \"east\", \"west\", \"central\"]",
            "categories = []",
            "list its values in `categories`",
        ),
        (
            "positive = \"churn\"",
            "positive = \"leave\"",
            "not one of output.labels",
        ),
        ("threshold = 0.3", "threshold = 1.3", "within 0..=1"),
        ("type = \"int\"", "type = \"integer\"", "unknown variant"),
        (
            "schema = \"argus.bundle/v5\"",
            "schema = \"argus.bundle/v1\"",
            "needs schema",
        ),
        ("name = \"features\"", "name = \"x\"", "\"features\""),
        (
            "covers = \"tree_covers.json\"",
            "covers = \"../tree_covers.json\"",
            "must be a file name in the bundle directory",
        ),
    ];
    for (from, to, words) in cases {
        let dir = tempfile::tempdir().unwrap();
        copy_bundle(dir.path());
        let path = dir.path().join("manifest.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "manifest has no {from:?}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
        let e = Classifier::load(dir.path()).expect_err(to).to_string();
        assert!(e.contains(words), "{to}: {e}");
    }
}
