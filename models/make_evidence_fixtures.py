#!/usr/bin/env python3
"""Tree covers and reference SHAP values for Argus's tree-ensemble ONNX models.

Path-dependent TreeSHAP needs, for every node of every tree, its *cover*: the (weighted)
number of training samples that reached it. An ONNX TreeEnsemble does not store it, so this
script retrains the scikit-learn models behind the committed ONNX files (deterministically, with
the original generators' own code), proves they are the same models, and writes the covers
plus reference SHAP values from `shap.TreeExplainer` for the Rust implementation to match.

Run from anywhere; no arguments; deterministic (running it twice gives byte-identical files):

    python3 models/make_evidence_fixtures.py

Needs numpy, scikit-learn 1.6.1, skl2onnx 1.20.0, onnx, onnxruntime 1.20.1 and shap 0.51.0.
Nothing it reads is changed (models/churn/model.onnx and the fixture .onnx/.json stay as
they are). It fails (non-zero exit) on any mismatch.

Models: the churn forest (`models/make_churn_model.py`, imported) and the seven scikit-learn
fixtures of `crates/model/tests/fixtures/trees/make_fixtures.py` (imported and run with its
ONNX export and file writing intercepted, so the estimators are exactly the ones it trains):
rf_binary, rf_multiclass, extratrees_binary, gbt_binary, gbt_multiclass, rf_regressor,
gbt_regressor. The synthetic `syn_*` models have no scikit-learn model and get nothing.

For each model it first checks the committed ONNX against the retrained estimator:
  * every ONNX tree (nodes_treeids 0..n-1) matches exactly one scikit-learn tree
    (`estimators_[i]` for forests, `estimators_[i, k]` for gradient boosting, found by
    matching, not assumed), with ONNX node id == scikit-learn node index: same children,
    same feature, mode BRANCH_LEQ for splits and LEAF for leaves, and the float32 threshold
    is the largest float32 <= scikit-learn's float64 threshold (what skl2onnx writes; so
    both send every float32 input the same way, which is also checked for every row used);
  * the leaf weights are scikit-learn's leaf values (over n_estimators for forests,
    times learning_rate for boosting) for the classes/targets the ONNX graph scores. For
    binary classifiers skl2onnx writes class id 0 only, holding scikit-learn's *class-1*
    value (P(class 1) / n_estimators, or the class-1 margin for boosting); onnxruntime's
    binary rule makes the scores [1 - s, s] (forests) or sigmoid(base + s) (boosting);
  * boosting's base_values are the initial raw scores (`_raw_predict_init`), forests have none;
  * onnxruntime's output equals predict_proba / predict to 1e-5 on the rows used
    (churn: the first 2000 customers of customers-10k.csv; fixtures: the NaN-free rows).

Files written (all JSON):

  models/churn/tree_covers.json, crates/model/tests/fixtures/trees/<name>.covers.json
      {"schema": "argus.tree-covers/v1", "source": "<sentence>",
       "trees": [[cover of node id 0, cover of node id 1, ...], ...]}
      outer index = ONNX tree id (nodes_treeids), inner index = ONNX node id; the cover is
      scikit-learn's `tree_.weighted_n_node_samples` of the matching tree (an integer when
      integral: forests count bootstrap draws, boosting counts training rows). Compact.

  models/churn/fixtures/shap.json, crates/model/tests/fixtures/trees/<name>.shap.json
      {"model": "<onnx file name>", "generator": "models/make_evidence_fixtures.py",
       "shap_version": "...", "sklearn_version": "...",
       "space": "probability" | "log_odds" | "value",
       "columns": [ONNX scores column of explained output k, ...],
       "expected_value": [e_k, ...],
       "rows": [[x_0, ..., x_{d-1}], ...],          float32 values written as floats
       "shap": [[[phi_{row,k,j} for j] for k] for row],
       "raw": [[scikit-learn's output k for the row] for row]}
      Path-dependent TreeSHAP (`shap.TreeExplainer(model)`, no background data) of the
      retrained estimator. space: random forests explain probabilities (predict_proba),
      gradient-boosted classifiers the raw margin (decision_function; binary: one output, the
      class-1 margin, ONNX column 1), regressors predict. For every row and output,
      expected_value[k] + sum_j phi[row][k][j] == raw[row][k] to 1e-6 (checked).
      shap 0.51 refuses multiclass GradientBoostingClassifier, so gbt_multiclass is explained
      one class at a time: shap.TreeExplainer on a model dict holding estimators_[:, k]
      exactly as shap builds a binary GradientBoostingClassifier (values * learning_rate,
      base offset = the class's initial raw score); that construction is checked on
      gbt_binary against shap's own handling of the estimator.
      Rows: churn, the first 50 customers of tests/fixtures/churn/customers-10k.csv encoded
      as make_churn_model.py encodes them (20 inputs); fixtures, 15 "data" and 5 "threshold"
      rows (values exactly on float32 split thresholds) of the fixture's own <name>.json.
      One top-level key per line and one row per line.

  models/churn/background.json
      {"schema": "argus.background/v1", "source": "<sentence>", "rows": [[20 inputs], ...]}
      100 customers drawn without replacement (seed BACKGROUND_SEED, in index order) from the
      VALID customers of make_churn_model.py (VALID_SEED), encoded like the model input: a
      background sample for model-agnostic Shapley values.
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path

sys.dont_write_bytecode = True  # importing the generators must not leave __pycache__ behind

import numpy as np
import onnx
import onnxruntime as ort
import shap
import sklearn

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"
TREES = REPO / "crates" / "model" / "tests" / "fixtures" / "trees"
CHURN_CSV = REPO / "tests" / "fixtures" / "churn" / "customers-10k.csv"
GENERATOR = "models/make_evidence_fixtures.py"

sys.path.insert(0, str(MODELS))
sys.path.insert(0, str(TREES))
import make_churn_model as churn  # noqa: E402
import make_fixtures as tree_fixtures  # noqa: E402

COVERS_SCHEMA = "argus.tree-covers/v1"
BACKGROUND_SCHEMA = "argus.background/v1"
CHURN_SHAP_ROWS = 50
CHURN_ORT_ROWS = 2000
BACKGROUND_SEED, BACKGROUND_N = 20250101, 100
FIXTURE_DATA_ROWS, FIXTURE_THRESHOLD_ROWS = 15, 5
ORT_TOLERANCE = 1e-5
LEAF_TOLERANCE = 1e-6
ADDITIVITY_TOLERANCE = 1e-6


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def fail(msg: str) -> None:
    raise SystemExit(f"make_evidence_fixtures: {msg}")


@dataclass
class Case:
    """One scikit-learn model and what to write for it."""
    name: str
    est: object                 # the retrained scikit-learn estimator
    onnx_path: Path
    covers_path: Path
    shap_path: Path
    rows: np.ndarray            # float32 [n, d]: the rows to explain
    check_rows: np.ndarray      # float32 [m, d]: more rows for the onnxruntime check


# --------------------------------------------------------------------------
# Retraining


def churn_case() -> Case:
    """The churn forest exactly as make_churn_model.build() trains it, and its rows."""
    train = churn.generate_customers(churn.N_TRAIN, churn.TRAIN_SEED)
    clf = churn.make_forest().fit(churn.encode(train), train["churned"])
    clf.set_params(n_jobs=1)  # as build(): summation order of predict_proba fixed
    with open(CHURN_CSV, newline="") as f:
        records = list(csv.DictReader(f))
    x = np.asarray([churn.encode_row(r) for r in records[:CHURN_ORT_ROWS]], dtype=np.float32)
    bundle = churn.BUNDLE
    return Case("churn", clf, bundle / "model.onnx", bundle / "tree_covers.json",
                bundle / "fixtures" / "shap.json", x[:CHURN_SHAP_ROWS], x)


def fixture_estimators() -> dict[str, tuple[object, np.ndarray]]:
    """Run make_fixtures.sklearn_models() with skl2onnx's to_onnx and its `write` intercepted:
    name -> (the fitted estimator it converted, the rows it would have written)."""
    fitted, rows = [], {}
    real_to_onnx, real_write = tree_fixtures.to_onnx, tree_fixtures.write

    def to_onnx(est, *args, **kwargs):
        fitted.append(est)
        return real_to_onnx(est, *args, **kwargs)

    def write(name, model, X, *args, **kwargs):
        rows[name] = np.asarray(X, dtype=np.float32)

    tree_fixtures.to_onnx, tree_fixtures.write = to_onnx, write
    try:
        tree_fixtures.sklearn_models()
    finally:
        tree_fixtures.to_onnx, tree_fixtures.write = real_to_onnx, real_write
    if len(fitted) != len(rows):
        fail("make_fixtures.sklearn_models() converted and wrote different numbers of models")
    return {name: (est, rows[name]) for est, name in zip(fitted, rows)}


def fixture_cases() -> list[Case]:
    cases = []
    for name, (est, regenerated) in fixture_estimators().items():
        fixture = json.loads((TREES / f"{name}.json").read_text())
        x = np.asarray([[np.nan if v is None else v for v in r] for r in fixture["x"]], dtype=np.float32)
        if not np.array_equal(x, regenerated, equal_nan=True):
            fail(f"{name}: make_fixtures.py now draws other rows than {name}.json holds")
        kind = fixture["kind"]
        data = [i for i, k in enumerate(kind) if k == "data"]
        edge = [i for i, k in enumerate(kind) if k == "threshold"]
        clean = [i for i in data + edge if not np.isnan(x[i]).any()]
        pick = data[:FIXTURE_DATA_ROWS] + edge[:FIXTURE_THRESHOLD_ROWS]
        if np.isnan(x[pick]).any():
            fail(f"{name}: a chosen row has NaN")
        cases.append(Case(name, est, TREES / f"{name}.onnx", TREES / f"{name}.covers.json",
                          TREES / f"{name}.shap.json", x[pick], x[clean]))
    return cases


# --------------------------------------------------------------------------
# The committed ONNX graph against the retrained estimator


@dataclass
class OnnxTrees:
    op: str
    post_transform: str
    base_values: list[float]
    trees: list[dict]            # per ONNX tree id: arrays indexed by node id
    leaf_weights: list[dict]     # per ONNX tree id: node id -> {class/target id: weight}
    scored_ids: list[int]        # class / target ids that have any leaf weight
    n_outputs: int


def read_onnx_trees(path: Path) -> OnnxTrees:
    model = onnx.load(str(path))
    nodes = [n for n in model.graph.node if n.op_type in ("TreeEnsembleClassifier", "TreeEnsembleRegressor")]
    if len(nodes) != 1:
        fail(f"{path}: expected one TreeEnsemble node, found {len(nodes)}")
    node = nodes[0]
    a = {x.name: onnx.helper.get_attribute_value(x) for x in node.attribute}
    tree_ids = np.asarray(a["nodes_treeids"])
    n_trees = int(tree_ids.max()) + 1
    if sorted(set(tree_ids.tolist())) != list(range(n_trees)):
        fail(f"{path}: nodes_treeids are not 0..{n_trees - 1}")
    if any(a.get("nodes_missing_value_tracks_true", [])):
        fail(f"{path}: nodes_missing_value_tracks_true set (skl2onnx never does)")
    trees = []
    for t in range(n_trees):
        idx = np.nonzero(tree_ids == t)[0]
        ids = np.asarray(a["nodes_nodeids"])[idx]
        if sorted(ids.tolist()) != list(range(len(idx))):
            fail(f"{path}: node ids of tree {t} are not 0..{len(idx) - 1}")
        order = idx[np.argsort(ids)]
        trees.append({
            "mode": [a["nodes_modes"][i].decode() for i in order],
            "feature": np.asarray(a["nodes_featureids"])[order],
            "value": np.asarray(a["nodes_values"], dtype=np.float32)[order],
            "true": np.asarray(a["nodes_truenodeids"])[order],
            "false": np.asarray(a["nodes_falsenodeids"])[order],
        })
    prefix = "class" if node.op_type == "TreeEnsembleClassifier" else "target"
    leaf_weights = [dict() for _ in range(n_trees)]
    for t, n, k, w in zip(a[f"{prefix}_treeids"], a[f"{prefix}_nodeids"], a[f"{prefix}_ids"], a[f"{prefix}_weights"]):
        if trees[t]["mode"][n] != "LEAF":
            fail(f"{path}: weight on non-leaf node {n} of tree {t}")
        leaf_weights[t].setdefault(n, {})[int(k)] = float(np.float32(w))
    n_outputs = len(a["classlabels_int64s"]) if prefix == "class" else int(a["n_targets"])
    return OnnxTrees(node.op_type, a.get("post_transform", b"NONE").decode(), list(a.get("base_values", [])),
                     trees, leaf_weights, sorted(set(int(k) for k in a[f"{prefix}_ids"])), n_outputs)


def sklearn_trees(est, g: OnnxTrees) -> list[tuple[str, object, dict]]:
    """(label, sklearn Tree, {ONNX class/target id: per-node leaf value}) for every tree.

    A binary classifier's graph scores only class id 0, and its weights are the sklearn
    class-1 value (onnxruntime's binary rule then gives [1 - s, s]); gradient boosting's
    single estimator column is that class-1 margin anyway."""
    binary = g.op == "TreeEnsembleClassifier" and g.n_outputs == 2 and g.scored_ids == [0]
    out = []
    if hasattr(est, "learning_rate"):  # gradient boosting: estimators_[i, k]
        lr = est.learning_rate
        for i in range(est.estimators_.shape[0]):
            for k in range(est.estimators_.shape[1]):
                tree = est.estimators_[i, k].tree_
                out.append((f"estimators_[{i}, {k}]", tree, {k: tree.value[:, 0, 0] * lr}))
    else:  # forest: estimators_[i]; value holds class fractions (sklearn >= 1.4) or the mean
        n = len(est.estimators_)
        for i, e in enumerate(est.estimators_):
            tree = e.tree_
            values = {c: tree.value[:, 0, c] / n for c in range(tree.value.shape[2])}
            out.append((f"estimators_[{i}]", tree, {0: values[1]} if binary else values))
    return out


def largest_float32_le(t: np.ndarray) -> np.ndarray:
    s = t.astype(np.float32)
    return np.where(s.astype(np.float64) > t, np.nextafter(s, np.float32(-np.inf)), s)


def same_tree(o: dict, tree) -> bool:
    """Structure, features, thresholds and modes, with ONNX node id == sklearn node index."""
    n = tree.node_count
    if len(o["mode"]) != n:
        return False
    split = tree.children_left != -1
    modes = np.asarray(o["mode"])
    if not (np.all(modes[split] == "BRANCH_LEQ") and np.all(modes[~split] == "LEAF")):
        return False
    return bool(
        np.array_equal(o["true"][split], tree.children_left[split])
        and np.array_equal(o["false"][split], tree.children_right[split])
        and np.array_equal(o["feature"][split], tree.feature[split])
        and np.array_equal(o["value"][split], largest_float32_le(tree.threshold[split]))
    )


def same_leaves(weights: dict, tree, expected: dict, scored: list[int]) -> bool:
    """ONNX leaf weights == the sklearn leaf values, for the ids the graph scores at all."""
    for node in np.nonzero(tree.children_left == -1)[0]:
        got = weights.get(int(node), {})
        if set(got) - set(expected):
            return False
        for k in scored:
            want = float(expected[k][node]) if k in expected else 0.0
            if abs(got.get(k, 0.0) - want) > LEAF_TOLERANCE:
                return False
    return True


def match_trees(case: Case, g: OnnxTrees) -> list[tuple[str, object]]:
    """ONNX tree id -> (label, sklearn Tree), each sklearn tree used exactly once."""
    candidates = sklearn_trees(case.est, g)
    if len(candidates) != len(g.trees):
        fail(f"{case.name}: {len(g.trees)} ONNX trees but {len(candidates)} scikit-learn trees")
    mapping, used = [], set()
    for t, o in enumerate(g.trees):
        hits = [j for j, (_, tree, expected) in enumerate(candidates)
                if same_tree(o, tree) and same_leaves(g.leaf_weights[t], tree, expected, g.scored_ids)]
        if len(hits) != 1:
            fail(f"{case.name}: ONNX tree {t} matches {len(hits)} scikit-learn trees "
                 f"({[candidates[j][0] for j in hits]})")
        if hits[0] in used:
            fail(f"{case.name}: {candidates[hits[0]][0]} matches two ONNX trees")
        used.add(hits[0])
        mapping.append(candidates[hits[0]][:2])
    return mapping


def describe_mapping(mapping: list[tuple[str, object]]) -> str:
    labels = [label for label, _ in mapping]
    head = ", ".join(f"{t}->{label}" for t, label in enumerate(labels[:7]))
    return f"{head}, ... {len(labels) - 1}->{labels[-1]}" if len(labels) > 7 else head


def check_paths(case: Case, mapping: list[tuple[str, object]], g: OnnxTrees, x: np.ndarray) -> None:
    """Every split sends every row the same way with sklearn's float64 threshold (shap, sklearn)
    as with the graph's float32 one (onnxruntime, Argus)."""
    for t, (label, tree) in enumerate(mapping):
        split = np.nonzero(tree.children_left != -1)[0]
        v = x[:, tree.feature[split]]
        if not np.array_equal(v.astype(np.float64) <= tree.threshold[split], v <= g.trees[t]["value"][split]):
            fail(f"{case.name}: a row goes another way in ONNX tree {t} ({label}) than in scikit-learn")


def check_base_values(case: Case, g: OnnxTrees) -> None:
    """Boosting: base_values == the initial raw score(s) (float32); forests: none."""
    est = case.est
    want = (est._raw_predict_init(np.zeros((1, est.n_features_in_), dtype=np.float32))[0]
            if hasattr(est, "learning_rate") else np.zeros(0))
    got = np.asarray(g.base_values, dtype=np.float64)
    if got.shape != want.shape or not np.allclose(got, want, rtol=0, atol=LEAF_TOLERANCE):
        fail(f"{case.name}: ONNX base_values {got.tolist()} != scikit-learn's initial scores {want.tolist()}")


def sklearn_scores(est, x: np.ndarray) -> np.ndarray:
    """What the ONNX scores output holds: predict_proba, or predict for regressors."""
    if hasattr(est, "predict_proba"):
        return est.predict_proba(x)
    return est.predict(x).reshape(len(x), -1)


def check_onnxruntime(case: Case, x: np.ndarray) -> float:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(case.onnx_path), opts, providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: x})
    scores = np.asarray(out[-1], dtype=np.float64).reshape(len(x), -1)
    diff = float(np.abs(scores - sklearn_scores(case.est, x)).max())
    if not diff <= ORT_TOLERANCE:
        fail(f"{case.name}: onnxruntime vs scikit-learn max |diff| {diff!r} > {ORT_TOLERANCE}")
    return diff


def verify(case: Case) -> tuple[OnnxTrees, list[tuple[str, object]]]:
    g = read_onnx_trees(case.onnx_path)
    mapping = match_trees(case, g)
    check_paths(case, mapping, g, case.check_rows)
    check_base_values(case, g)
    diff = check_onnxruntime(case, case.check_rows)
    binary = g.op == "TreeEnsembleClassifier" and g.n_outputs == 2 and g.scored_ids == [0]
    log(f"{case.name}: {len(g.trees)} ONNX trees == scikit-learn ({describe_mapping(mapping)}); "
        f"{g.op} post_transform {g.post_transform}, base_values {g.base_values}, leaf weights for ids "
        f"{g.scored_ids}" + (" only (holding sklearn's class-1 value)" if binary else "")
        + f"; onnxruntime vs sklearn on {len(case.check_rows)} rows: {diff:.3g}")
    return g, mapping


# --------------------------------------------------------------------------
# Covers


def number(v: float) -> int | float:
    v = float(v)
    return int(v) if v.is_integer() else v


def write_covers(case: Case, mapping: list[tuple[str, object]]) -> None:
    trees = []
    for label, tree in mapping:
        w = tree.weighted_n_node_samples
        split = np.nonzero(tree.children_left != -1)[0]
        sums = w[tree.children_left[split]] + w[tree.children_right[split]]
        if not np.allclose(w[split], sums, rtol=1e-12, atol=0):
            fail(f"{case.name}: {label}: a node's cover is not the sum of its children's")
        trees.append([number(v) for v in w])
    doc = {
        "schema": COVERS_SCHEMA,
        "source": (f"scikit-learn {sklearn.__version__} tree_.weighted_n_node_samples of the estimator "
                   f"behind each ONNX tree, retrained and matched by {GENERATOR}"),
        "trees": trees,
    }
    write_text(case.covers_path, json.dumps(doc, separators=(",", ":"), allow_nan=False) + "\n")


# --------------------------------------------------------------------------
# Reference SHAP values


def per_class_gbt_model(est, k: int) -> dict:
    """shap's model dict for class k's margin of a GradientBoostingClassifier: the trees
    estimators_[:, k] exactly as shap's own sklearn GBT branch reads them."""
    trees = []
    for e in est.estimators_[:, k]:
        t = e.tree_
        left = t.children_left.astype(np.int32)
        trees.append({
            "children_left": left,
            "children_right": t.children_right.astype(np.int32),
            "children_default": np.where(t.missing_go_to_left, left, t.children_right).astype(np.int32),
            "features": t.feature.astype(np.int32),
            "thresholds": t.threshold.astype(np.float64),
            "values": t.value.reshape(t.value.shape[0], -1) * est.learning_rate,
            "node_sample_weight": t.weighted_n_node_samples.astype(np.float64),
        })
    init = est._raw_predict_init(np.zeros((1, est.n_features_in_), dtype=np.float32))[0, k]
    return {"trees": trees, "base_offset": float(init), "tree_output": "log_odds",
            "input_dtype": np.float32, "internal_dtype": np.float64}


def as_outputs(values, expected, n: int) -> tuple[np.ndarray, np.ndarray]:
    """shap's (n, d) or (n, d, k) -> (n, k, d); expected value -> (k,)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 2:
        values = values[:, :, None]
    assert values.shape[0] == n
    return values.transpose(0, 2, 1), np.atleast_1d(np.asarray(expected, dtype=np.float64))


def explain(case: Case, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    est = case.est
    if hasattr(est, "learning_rate") and hasattr(est, "predict_proba") and est.estimators_.shape[1] > 1:
        parts = []
        for k in range(est.estimators_.shape[1]):
            explainer = shap.TreeExplainer(per_class_gbt_model(est, k))
            parts.append(as_outputs(explainer.shap_values(x), explainer.expected_value, len(x)))
        return np.concatenate([p[0] for p in parts], axis=1), np.concatenate([p[1] for p in parts])
    explainer = shap.TreeExplainer(est)
    if explainer.feature_perturbation != "tree_path_dependent":
        fail(f"{case.name}: shap chose {explainer.feature_perturbation}")
    return as_outputs(explainer.shap_values(x), explainer.expected_value, len(x))


def check_per_class_construction(case: Case, x: np.ndarray) -> float:
    """The dict construction used for gbt_multiclass, on a binary GBT: equal to shap's own."""
    phi, expected = explain(case, x)
    explainer = shap.TreeExplainer(per_class_gbt_model(case.est, 0))
    phi2, expected2 = as_outputs(explainer.shap_values(x), explainer.expected_value, len(x))
    diff = max(float(np.abs(phi - phi2).max()), float(np.abs(expected - expected2).max()))
    if diff > 1e-12:
        fail(f"{case.name}: per-class shap model differs from shap's GBT handling by {diff!r}")
    return diff


def space_and_raw(case: Case, x32: np.ndarray, g: OnnxTrees) -> tuple[str, list[int], np.ndarray]:
    est = case.est
    if not hasattr(est, "predict_proba"):
        return "value", [0], est.predict(x32).reshape(len(x32), 1)
    if hasattr(est, "learning_rate"):
        margin = est.decision_function(x32).reshape(len(x32), -1)
        return "log_odds", ([1] if margin.shape[1] == 1 and g.n_outputs == 2 else list(range(margin.shape[1]))), margin
    proba = est.predict_proba(x32)
    return "probability", list(range(proba.shape[1])), proba


def write_shap(case: Case, g: OnnxTrees) -> float:
    x32 = case.rows.astype(np.float32)
    x = x32.astype(np.float64)
    phi, expected = explain(case, x)
    space, columns, raw = space_and_raw(case, x32, g)
    if phi.shape[1] != raw.shape[1] or len(columns) != raw.shape[1]:
        fail(f"{case.name}: shap gives {phi.shape[1]} outputs, the model {raw.shape[1]}")
    err = float(np.abs(expected[None, :] + phi.sum(axis=2) - raw).max())
    if not err <= ADDITIVITY_TOLERANCE:
        fail(f"{case.name}: expected_value + sum(phi) misses the model output by {err!r}")
    doc = {
        "model": case.onnx_path.name,
        "generator": GENERATOR,
        "shap_version": shap.__version__,
        "sklearn_version": sklearn.__version__,
        "space": space,
        "columns": columns,
        "expected_value": [float(v) for v in expected],
        "rows": [[float(v) for v in r] for r in x32],
        "shap": [[[float(v) for v in out] for out in r] for r in phi],
        "raw": [[float(v) for v in r] for r in raw],
    }
    write_text(case.shap_path, lines_json(doc, ("rows", "shap", "raw")))
    log(f"{case.name}: shap {space} columns {columns}, {len(x32)} rows, max |E + sum(phi) - raw| = {err:.3g}")
    return err


# --------------------------------------------------------------------------
# Background sample (churn)


def write_background() -> None:
    valid = churn.generate_customers(churn.N_VALID, churn.VALID_SEED)
    idx = np.sort(np.random.default_rng(BACKGROUND_SEED).choice(churn.N_VALID, BACKGROUND_N, replace=False))
    x = churn.encode(valid)[idx]
    records = churn.csv_rows(valid)
    x_text = np.asarray([churn.encode_row(dict(zip(churn.COLUMNS, records[i]))) for i in idx], np.float32)
    if not np.array_equal(x, x_text):
        fail("background: vectorised and per-record encodings differ")
    doc = {
        "schema": BACKGROUND_SCHEMA,
        "source": (f"{BACKGROUND_N} of the {churn.N_VALID} validation customers of models/make_churn_model.py "
                   f"(seed {churn.VALID_SEED}), drawn without replacement with numpy default_rng({BACKGROUND_SEED}) "
                   f"and kept in index order, encoded as the model input by {GENERATOR}"),
        "rows": [[float(v) for v in r] for r in x],
    }
    write_text(churn.BUNDLE / "background.json", lines_json(doc, ("rows",)))


# --------------------------------------------------------------------------
# Output


def lines_json(doc: dict, row_keys: tuple[str, ...]) -> str:
    """One top-level key per line; the lists under row_keys one element per line."""
    compact = dict(separators=(",", ":"), allow_nan=False)
    parts = []
    for key, value in doc.items():
        if key in row_keys:
            body = ",\n".join(json.dumps(v, **compact) for v in value)
            parts.append(f"{json.dumps(key)}: [\n{body}\n]")
        else:
            parts.append(f"{json.dumps(key)}: {json.dumps(value, **compact)}")
    text = "{\n" + ",\n".join(parts) + "\n}\n"
    if json.loads(text) != doc:
        fail("JSON round trip changed the document")
    return text


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    log(f"wrote {path.relative_to(REPO)} ({len(text.encode())} bytes)")


def main() -> None:
    if len(sys.argv) > 1:
        fail("takes no arguments")
    worst = 0.0
    cases = [churn_case()] + fixture_cases()
    for case in cases:
        g, mapping = verify(case)
        # The shap rows must follow the same paths in shap/sklearn as in the graph.
        check_paths(case, mapping, g, case.rows)
        if case.name == "gbt_binary":
            check_per_class_construction(case, case.rows.astype(np.float64))
        write_covers(case, mapping)
        worst = max(worst, write_shap(case, g))
    write_background()
    log(f"done: {len(cases)} models; worst additivity error {worst:.3g}")


if __name__ == "__main__":
    main()
