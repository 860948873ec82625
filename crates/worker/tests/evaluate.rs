//! Test-set evaluation and the promotion gate on real bundles (no broker): the churn bundle
//! (v1) and the gate fixtures (`models/gate/`: test set, v2 weak forest, v3 close to v1),
//! and the camera-person bundle on a folder of frames.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use argus_model::Classifier;
use argus_stats::gate::{GateConfig, GateTest, Metric};
use argus_worker::evaluate::{
    compare, evaluate, promotion_gate, read_test_set, EvaluateError, EvaluateOptions, Evaluation,
    LabelMap, TestSetSpec, EVALUATION_JSON_SCHEMA,
};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bundle(dir: &str) -> Arc<Classifier> {
    Arc::new(Classifier::load(&repo().join(dir)).unwrap())
}

fn spec(path: PathBuf, label: &str) -> TestSetSpec {
    TestSetSpec {
        path,
        label_column: label.into(),
        id_column: None,
    }
}

fn run(
    model: Arc<Classifier>,
    spec: &TestSetSpec,
    metric: Option<Metric>,
) -> Result<Evaluation, EvaluateError> {
    let labels = model.labels().to_vec();
    let positive = model
        .manifest()
        .decision
        .as_ref()
        .and_then(|d| labels.iter().position(|l| *l == d.positive));
    let set = read_test_set(
        spec,
        &LabelMap {
            labels: &labels,
            positive,
        },
    )?;
    let options = EvaluateOptions {
        metric,
        ..EvaluateOptions::default()
    };
    evaluate(model, &set, Some(&spec.label_column), &options)
}

fn churn_test() -> TestSetSpec {
    let mut s = spec(repo().join("models/gate/churn-test.csv"), "churned");
    s.id_column = Some("customer_id".into());
    s
}

/// v1, v2, v3 on the churn test set (AUC), evaluated once for the whole file.
fn churn_evaluations() -> &'static [Evaluation; 3] {
    static E: OnceLock<[Evaluation; 3]> = OnceLock::new();
    E.get_or_init(|| {
        [
            "models/churn",
            "models/gate/churn-v2",
            "models/gate/churn-v3",
        ]
        .map(|b| run(bundle(b), &churn_test(), None).unwrap())
    })
}

#[test]
fn evaluation_is_byte_identical_and_valid() {
    let first = churn_evaluations()[0].to_json();
    let again = run(bundle("models/churn"), &churn_test(), None)
        .unwrap()
        .to_json();
    assert_eq!(
        first, again,
        "two evaluations of the same bundle and test set differ"
    );
    let schema: serde_json::Value = serde_json::from_str(EVALUATION_JSON_SCHEMA).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for e in churn_evaluations() {
        let json: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&json)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
        // Round trip through the file format.
        assert_eq!(
            &Evaluation::from_json(&e.to_json(), Path::new("e.json")).unwrap(),
            e
        );
    }
    let v1 = &churn_evaluations()[0];
    assert_eq!(v1.n, 2000);
    assert_eq!(v1.metric, Metric::RocAuc);
    assert_eq!(v1.items[0].id, "C1003-0000000");
    assert!(v1.ci_low < v1.value && v1.value < v1.ci_high);
    assert!(v1.value > 0.75 && v1.value < 0.9, "AUC {}", v1.value);
}

#[test]
fn gate_accepts_a_better_model_and_refuses_others() {
    let [v1, v2, v3] = churn_evaluations();
    let cfg = GateConfig::default();
    // v1 (100 trees, depth 10) against the weak v2 (8 trees, depth 3): better, significant.
    let d = compare(v1, v2, &cfg).unwrap();
    assert_eq!(d.test, GateTest::Delong);
    assert!(d.passed, "{}", d.reason);
    // The weak model as a candidate against v1: refused, not better.
    let d = compare(v2, v1, &cfg).unwrap();
    assert!(!d.better && !d.passed, "{}", d.reason);
    // v1 against itself: no difference, p = 1.
    let d = compare(v1, v1, &cfg).unwrap();
    assert!(!d.passed && d.p_value == 1.0, "{}", d.reason);
    // v3 (40 trees, depth 8) against v1: close; the gate must not pass it unless significant.
    let d = compare(v3, v1, &cfg).unwrap();
    assert!(!d.better && !d.passed, "{}", d.reason);
    // v1 against v3: better, but not significantly (AUC 0.8172 vs 0.8152).
    let d = compare(v1, v3, &cfg).unwrap();
    assert!(d.better && !d.passed && d.p_value > 0.1, "{}", d.reason);
}

#[test]
fn promotion_gate_needs_evaluations_of_the_registered_bundles() {
    let [v1, v2, _] = churn_evaluations();
    let cfg = GateConfig::default();
    let id = |e: &Evaluation| {
        (
            e.model.name.clone(),
            e.model.version.clone(),
            e.model.sha256.clone(),
        )
    };
    let (i1, i2) = (id(v1), id(v2));
    fn as_ref(i: &(String, String, String)) -> (&str, &str, &str) {
        (i.0.as_str(), i.1.as_str(), i.2.as_str())
    }
    let d = promotion_gate(v1, v2, as_ref(&i1), as_ref(&i2), &cfg).unwrap();
    assert!(d.passed, "{}", d.reason);
    // Swapped evaluations: the candidate's file is production's.
    let e = promotion_gate(v2, v1, as_ref(&i1), as_ref(&i2), &cfg).unwrap_err();
    assert!(matches!(e, EvaluateError::Unpaired(_)), "{e}");
    // The registry's model file differs from the evaluated one (a rebuilt bundle).
    let other = (i1.0.clone(), i1.1.clone(), "0".repeat(64));
    let e = promotion_gate(v1, v2, as_ref(&other), as_ref(&i2), &cfg).unwrap_err();
    assert!(e.to_string().contains("sha256"), "{e}");
}

#[test]
fn accuracy_and_f1_use_mcnemar_and_the_bootstrap() {
    let acc = |b: &str| run(bundle(b), &churn_test(), Some(Metric::Accuracy)).unwrap();
    let (v1, v2) = (acc("models/churn"), acc("models/gate/churn-v2"));
    let d = compare(&v1, &v2, &GateConfig::default()).unwrap();
    assert_eq!(d.test, GateTest::McnemarExact);
    assert!(d.p_value.is_finite() && d.ci[0] <= d.difference && d.difference <= d.ci[1]);
    let f1 = |b: &str| run(bundle(b), &churn_test(), Some(Metric::F1)).unwrap();
    let d = compare(
        &f1("models/churn"),
        &f1("models/gate/churn-v2"),
        &GateConfig::default(),
    )
    .unwrap();
    assert_eq!(d.test, GateTest::PairedBootstrap);
    // Different metrics are not compared.
    assert!(matches!(
        compare(&v1, &churn_evaluations()[1], &GateConfig::default()),
        Err(EvaluateError::Unpaired(_))
    ));
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn bad_test_sets_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let head = std::fs::read_to_string(repo().join("models/gate/churn-test.csv")).unwrap();
    let mut lines = head.lines();
    let header = lines.next().unwrap();
    let row = lines.next().unwrap();
    // Missing label column.
    let p = write(&dir, "nolabel.csv", &format!("{header}\n{row}\n"));
    let e = run(bundle("models/churn"), &spec(p, "label"), None).unwrap_err();
    assert!(
        matches!(e, EvaluateError::MissingColumn { ref column, .. } if column == "label"),
        "{e}"
    );
    // Unknown label.
    let p = write(
        &dir,
        "unknown.csv",
        &format!("{header}\n{}maybe\n", &row[..row.len() - 1]),
    );
    let e = run(bundle("models/churn"), &spec(p, "churned"), None).unwrap_err();
    assert!(
        matches!(e, EvaluateError::UnknownLabel { ref value, .. } if value == "maybe"),
        "{e}"
    );
    // Empty: no file content, and a header without rows.
    let p = write(&dir, "empty.csv", "");
    let e = run(bundle("models/churn"), &spec(p, "churned"), None).unwrap_err();
    assert!(matches!(e, EvaluateError::Empty { .. }), "{e}");
    let p = write(&dir, "header.csv", &format!("{header}\n"));
    let e = run(bundle("models/churn"), &spec(p, "churned"), None).unwrap_err();
    assert!(matches!(e, EvaluateError::Empty { .. }), "{e}");
    // One class only: no AUC.
    let p = write(&dir, "one.csv", &format!("{header}\n{row}\n"));
    let e = run(bundle("models/churn"), &spec(p, "churned"), None).unwrap_err();
    assert!(matches!(e, EvaluateError::Quality(_)), "{e}");
    // A different test set is not compared.
    let p = write(&dir, "two.jsonl", &two_jsonl(&head));
    let small = run(bundle("models/churn"), &spec(p, "churned"), None).unwrap();
    assert_eq!(small.n, 2);
    let e = compare(&small, &churn_evaluations()[0], &GateConfig::default()).unwrap_err();
    assert!(matches!(e, EvaluateError::Unpaired(_)), "{e}");
}

/// The first churner and the first stayer of the CSV as JSON lines (labels as numbers).
fn two_jsonl(csv: &str) -> String {
    let mut lines = csv.lines();
    let cols: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mut out = String::new();
    for want in ["1", "0"] {
        let row: Vec<&str> = lines
            .clone()
            .map(|l| l.split(',').collect::<Vec<_>>())
            .find(|r| r.last() == Some(&want))
            .unwrap();
        let obj: serde_json::Map<String, serde_json::Value> = cols
            .iter()
            .zip(&row)
            .map(|(c, v)| {
                let v = match (*c, v.parse::<f64>()) {
                    ("customer_id" | "region" | "plan" | "contract", _) => serde_json::json!(v),
                    ("autopay" | "senior", _) => serde_json::json!(*v == "true"),
                    (_, Ok(x)) if v.contains('.') => serde_json::json!(x),
                    (_, _) => serde_json::json!(v.parse::<i64>().unwrap()),
                };
                ((*c).to_string(), v)
            })
            .collect();
        out.push_str(&serde_json::Value::Object(obj).to_string());
        out.push('\n');
    }
    out
}

#[test]
fn a_folder_of_frames_is_evaluated() {
    let fixtures = repo().join("models/camera-person/fixtures");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("reference.json")).unwrap())
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut labels = String::from("file,label\n");
    for f in reference["frames"].as_array().unwrap() {
        let file = f["file"].as_str().unwrap();
        std::fs::copy(fixtures.join(file), dir.path().join(file)).unwrap();
        let label = if f["person"].as_bool().unwrap() {
            "person"
        } else {
            "empty"
        };
        labels.push_str(&format!("{file},{label}\n"));
    }
    std::fs::write(dir.path().join("labels.csv"), labels).unwrap();
    let e = run(
        bundle("models/camera-person"),
        &spec(dir.path().to_path_buf(), "label"),
        None,
    )
    .unwrap();
    assert_eq!(e.n, 16);
    assert_eq!(e.metric, Metric::RocAuc);
    assert_eq!(e.value, 1.0, "the fixtures are frames the model gets right");
    assert_eq!(e.metrics["accuracy"].value, 1.0);
    // Scores are the worker's: within the fixture's tolerance of Pillow/onnxruntime's.
    let tolerance = reference["tolerance"].as_f64().unwrap();
    for f in reference["frames"].as_array().unwrap() {
        let item = e
            .items
            .iter()
            .find(|i| i.id == f["file"].as_str().unwrap())
            .unwrap();
        let want = f["p_person"].as_f64().unwrap();
        assert!(
            (item.score.unwrap() - want).abs() < tolerance,
            "{}: {:?} vs {want}",
            item.id,
            item.score
        );
    }
    let again = run(
        bundle("models/camera-person"),
        &spec(dir.path().to_path_buf(), "label"),
        None,
    )
    .unwrap();
    assert_eq!(e.to_json(), again.to_json());
}

/// A v3 bundle fixes its gate metric: evaluations use it without being told, and asking
/// for another is refused with what to do; the manifest's names are the gate's metrics.
#[test]
fn the_bundle_fixes_the_gate_metric() {
    for name in argus_model::manifest::GATE_METRICS {
        let m: Metric = name.parse().unwrap();
        assert_eq!(m.as_str(), *name);
    }
    let tmp = tempfile::tempdir().unwrap();
    for f in ["manifest.toml", "model.onnx"] {
        std::fs::copy(repo().join("models/churn").join(f), tmp.path().join(f)).unwrap();
    }
    let text = std::fs::read_to_string(tmp.path().join("manifest.toml")).unwrap();
    let text = text.replace("argus.bundle/v2", "argus.bundle/v3")
        + "\n[monitoring]\ngate_metric = \"accuracy\"\n";
    std::fs::write(tmp.path().join("manifest.toml"), text).unwrap();
    let model = Arc::new(Classifier::load(tmp.path()).unwrap());
    assert_eq!(
        argus_worker::evaluate::default_metric(&model),
        Metric::Accuracy
    );
    let e = run(model.clone(), &churn_test(), None).unwrap();
    assert_eq!(e.metric, Metric::Accuracy);
    assert_eq!(
        run(model.clone(), &churn_test(), Some(Metric::Accuracy))
            .unwrap()
            .metric,
        Metric::Accuracy
    );
    let err = run(model, &churn_test(), Some(Metric::RocAuc)).unwrap_err();
    assert!(
        matches!(err, EvaluateError::MetricFixed { .. }) && err.to_string().contains("gate_metric"),
        "{err}"
    );
}
