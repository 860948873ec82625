//! Exact TreeSHAP against the `shap` package's `TreeExplainer` (reference values written by
//! `models/make_evidence_fixtures.py` from the scikit-learn models behind the ONNX files):
//! the churn forest and the tree fixtures, every explained output, to 1e-6; the values add
//! up to the model's own output minus the base value to 1e-6; and the bundle's explainer
//! reports per manifest feature (a category's one-hot columns summed) in plain words.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use argus_model::engine::trees::shap::TreeShap;
use argus_model::engine::trees::TreesEngine;
use argus_model::engine::Engine;
use argus_model::explain::{ExplainSettings, Explainer, Method};
use argus_model::Classifier;
use argus_wire::{EvidenceStatus, Payload};
use serde::Deserialize;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[derive(Deserialize)]
struct Reference {
    model: String,
    columns: Vec<usize>,
    expected_value: Vec<f64>,
    rows: Vec<Vec<f64>>,
    shap: Vec<Vec<Vec<f64>>>,
    raw: Vec<Vec<f64>>,
}

#[derive(Deserialize)]
struct Fixture {
    input: String,
    output: String,
    n_features: usize,
}

/// Checks TreeSHAP on `engine` (with `covers`) against `reference`; returns the largest
/// difference seen.
fn check(name: &str, engine: TreesEngine, covers: &Path, reference: &Reference) -> f64 {
    let probe = engine
        .run(1, &vec![0.0; engine.n_features()])
        .unwrap()
        .len();
    let shap = TreeShap::load(engine, covers).unwrap();
    let mut worst = 0.0f64;
    for (r, row) in reference.rows.iter().enumerate() {
        let x: Vec<f32> = row.iter().map(|&v| v as f32).collect();
        let out = shap.engine().run(1, &x).unwrap();
        assert_eq!(out.len(), probe);
        for (k, &column) in reference.columns.iter().enumerate() {
            let a = shap.explain(&x, column).unwrap();
            let want = &reference.shap[r][k];
            assert_eq!(a.values.len(), want.len());
            for (j, (got, want)) in a.values.iter().zip(want).enumerate() {
                let d = (got - want).abs();
                worst = worst.max(d);
                assert!(
                    d <= 1e-6,
                    "{name} row {r} output {k} feature {j}: {got} vs shap {want}"
                );
            }
            let d = (a.base - reference.expected_value[k]).abs();
            assert!(
                d <= 1e-6,
                "{name}: base {} vs shap {}",
                a.base,
                reference.expected_value[k]
            );
            // Additivity against the reference model's raw output …
            let d = (a.output() - reference.raw[r][k]).abs();
            assert!(
                d <= 1e-6,
                "{name} row {r}: {} vs raw {}",
                a.output(),
                reference.raw[r][k]
            );
            // … and against this engine's own output (through the transform, if any).
            let model = f64::from(out[column]);
            let explained = match a.space {
                argus_model::engine::trees::shap::Space::LogOdds if out.len() == 2 => {
                    1.0 / (1.0 + (-a.output()).exp())
                }
                argus_model::engine::trees::shap::Space::Probability
                | argus_model::engine::trees::shap::Space::Value => a.output(),
                _ => continue,
            };
            assert!(
                (explained - model).abs() <= 1e-5,
                "{name} row {r} column {column}: explained {explained} vs engine {model}"
            );
        }
    }
    worst
}

#[test]
fn tree_shap_equals_shap_tree_explainer_on_the_tree_fixtures() {
    let dir = root().join("crates/model/tests/fixtures/trees");
    let names = [
        "rf_binary",
        "rf_multiclass",
        "rf_regressor",
        "extratrees_binary",
        "gbt_binary",
        "gbt_multiclass",
        "gbt_regressor",
    ];
    for name in names {
        let f: Fixture = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap(),
        )
        .unwrap();
        let reference: Reference = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{name}.shap.json"))).unwrap(),
        )
        .unwrap();
        let engine = TreesEngine::from_onnx(
            &dir.join(&reference.model),
            &f.input,
            &f.output,
            f.n_features,
        )
        .unwrap();
        let worst = check(
            name,
            engine,
            &dir.join(format!("{name}.covers.json")),
            &reference,
        );
        eprintln!("{name}: largest |TreeSHAP - shap| {worst:.2e}");
    }
}

#[test]
fn tree_shap_equals_shap_tree_explainer_on_the_churn_forest() {
    let bundle = root().join("models/churn");
    let manifest = argus_model::Manifest::load(&bundle).unwrap();
    let reference: Reference =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("fixtures/shap.json")).unwrap())
            .unwrap();
    let engine = TreesEngine::load(&manifest, &bundle.join("model.onnx")).unwrap();
    let worst = check(
        "churn",
        engine,
        &bundle.join("tree_covers.json"),
        &reference,
    );
    eprintln!("churn: largest |TreeSHAP - shap| {worst:.2e}");
}

fn customer(fields: &[(&str, argus_wire::Value)]) -> Payload {
    Payload::Record(argus_wire::Record {
        fields: fields
            .iter()
            .map(|(n, v)| argus_wire::Field {
                name: (*n).into(),
                value: v.clone(),
            })
            .collect(),
    })
}

fn risky() -> Payload {
    use argus_wire::Value::{Bool, Float, Int, Text};
    customer(&[
        ("tenure_months", Int(2)),
        ("monthly_charges", Float(95.5)),
        ("total_charges", Float(190.0)),
        ("complaints_90d", Int(4)),
        ("support_calls_30d", Int(5)),
        ("days_since_last_interaction", Int(120)),
        ("region", Text("west".into())),
        ("plan", Text("unlimited".into())),
        ("contract", Text("month_to_month".into())),
        ("autopay", Bool(false)),
        ("senior", Bool(true)),
    ])
}

#[test]
fn the_churn_bundle_explains_an_alert_per_feature_in_plain_words() {
    let model = Classifier::load(&root().join("models/churn")).unwrap();
    let explainer = Explainer::for_model(&model, ExplainSettings::default())
        .unwrap()
        .unwrap();
    assert_eq!(explainer.method(), Method::TreeShap);
    let payload = risky();
    let p = model.classify(&payload).unwrap().probability(1);
    let e = explainer.explain(&model, &payload, 1, &[]).unwrap();
    assert_eq!(e.status, EvidenceStatus::Ok);
    assert_eq!(e.space.as_deref(), Some("probability"));
    assert_eq!(e.attributions.len(), 11, "one per manifest feature");
    let total: f64 = e.attributions.iter().map(|a| a.contribution).sum();
    let (base, output) = (e.base_value.unwrap(), e.output.unwrap());
    assert!((base + total - output).abs() < 1e-9);
    assert!((output - f64::from(p)).abs() < 1e-6, "{output} vs {p}");
    // Largest first; the strongest drivers of this synthetic risk are among the top.
    for w in e.attributions.windows(2) {
        assert!(w[0].contribution.abs() >= w[1].contribution.abs());
    }
    let top: Vec<&str> = e.attributions[..4]
        .iter()
        .map(|a| a.feature.as_str())
        .collect();
    assert!(
        top.contains(&"contract")
            || top.contains(&"complaints_90d")
            || top.contains(&"tenure_months"),
        "{top:?}"
    );
    assert_eq!(e.summary.len(), 3);
    let contract = e
        .attributions
        .iter()
        .find(|a| a.feature == "contract")
        .unwrap();
    assert_eq!(contract.value, serde_json::json!("month_to_month"));
    assert!(
        contract.contribution > 0.0,
        "a month-to-month contract raises the risk"
    );
    eprintln!("{:#?}", e.summary);
}

#[test]
fn sampling_shapley_on_the_churn_bundle_agrees_with_tree_shap_within_its_bound() {
    // The same bundle without covers falls back to the model-agnostic method against its
    // background rows. The two answer different questions (path-dependent vs
    // interventional expectations), so they agree on direction and rough size, not digits:
    // what is checked here is that the estimate is additive and its bound is honest about
    // the sampling error (two seeds agree within their bounds).
    let dir = tempfile::tempdir().unwrap();
    let src = root().join("models/churn");
    for f in ["model.onnx", "background.json"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let manifest = std::fs::read_to_string(src.join("manifest.toml"))
        .unwrap()
        .replace("covers = \"tree_covers.json\"\n", "");
    std::fs::write(dir.path().join("manifest.toml"), manifest).unwrap();
    let model = Classifier::load(dir.path()).unwrap();
    let settings = |seed| ExplainSettings {
        permutations: 200,
        seed,
        ..ExplainSettings::default()
    };
    let a = Explainer::for_model(&model, settings(1)).unwrap().unwrap();
    assert_eq!(a.method(), Method::SamplingShapley);
    let b = Explainer::for_model(&model, settings(2)).unwrap().unwrap();
    let payload = risky();
    let (ea, eb) = (
        a.explain(&model, &payload, 1, &[]).unwrap(),
        b.explain(&model, &payload, 1, &[]).unwrap(),
    );
    let p = f64::from(model.classify(&payload).unwrap().probability(1));
    for e in [&ea, &eb] {
        let total: f64 = e.attributions.iter().map(|a| a.contribution).sum();
        assert!((e.base_value.unwrap() + total - p).abs() < 1e-6);
        assert!(e.error_bound.unwrap() < 0.05, "bound {:?}", e.error_bound);
    }
    for x in &ea.attributions {
        let y = eb
            .attributions
            .iter()
            .find(|y| y.feature == x.feature)
            .unwrap();
        let both = x.bound.unwrap() + y.bound.unwrap();
        assert!(
            (x.contribution - y.contribution).abs() <= both,
            "{}: {} vs {} (bounds {both})",
            x.feature,
            x.contribution,
            y.contribution
        );
    }
}
