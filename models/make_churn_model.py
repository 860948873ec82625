#!/usr/bin/env python3
"""Generate Argus's synthetic telecom customers and train the `churn` bundle on them.

Re-runnable and deterministic (fixed seeds throughout); ~10 seconds on 2 cores:

    pip install -r models/requirements.txt
    python3 models/make_churn_model.py                       # = `build`: bundle + fixtures
    python3 models/make_churn_model.py customers --n 10000 --seed 7 [--labels] > out.csv

The project owns the data: `generate_customers(n, seed)` draws synthetic
customers whose relationship to churn is known exactly (the logit below), so
tests and alerts have a ground truth and nothing depends on a downloaded data set.

Customers (CSV columns, in this order; header row; `\\n` line endings):

    customer_id                  text key "C<seed>-<index, 7 digits>" (unique per seed + index)
    tenure_months                int 0..72 (exponential, longer for longer contracts)
    monthly_charges              float 18.00..120.00, exactly 2 decimals (by plan + noise)
    total_charges                float, 2 decimals, tenure * monthly * N(1, 0.05) (no effect on churn)
    complaints_90d               int 0..8 (Poisson; rate driven by a hidden dissatisfaction)
    support_calls_30d            int 0..10 (Poisson; more with complaints and dissatisfaction)
    days_since_last_interaction  int 0..365 (exponential, mean ~60)
    region                       north | south | east | west | central
    plan                         basic | standard | premium | unlimited
    contract                     month_to_month | one_year | two_year
    autopay                      bool, written `true` / `false`
    senior                       bool, written `true` / `false`
    churned                      0 / 1 (only with --labels)

Churn is Bernoulli(sigmoid(logit)) with, using only the observed columns
(the hidden dissatisfaction acts only through complaints and support calls):

    logit = -2.2
          + 1.4 [contract = month_to_month] + 0.3 [contract = one_year]
          - 0.04 * tenure_months
          + 0.02 * max(0, monthly_charges - 60)
          + 0.45 * complaints_90d
          + 0.15 * support_calls_30d
          + 0.004 * days_since_last_interaction
          - 0.6 [autopay] + 0.3 [senior]
          + region: south +0.2, east -0.1, west +0.3 (north, central 0)
          + plan: basic +0.2, premium -0.3, unlimited +0.4 (standard 0)

The intercept (-2.2) puts the churn rate at ~25 %. Each column is drawn from
its own numpy stream (SeedSequence(seed).spawn), element by element, so the
first k customers of a seed are the same whatever n is.

Model input (what the Rust worker rebuilds from manifest.toml, exactly): every
feature except customer_id, in column order; int and float features as their
value cast to float32, bools as 1.0 / 0.0, each category one-hot over its
declared categories in declared order. 6 numeric + 5 region + 4 plan +
3 contract + 2 bool = 20 float32 inputs.

Steps of `build`:
  1. Draw TRAIN (seed TRAIN_SEED), VALID (VALID_SEED) and TEST (TEST_SEED)
     customers; encode them as above (from the values as written in the CSV).
  2. Train RandomForestClassifier(n_estimators=100, max_depth=10,
     min_samples_leaf=5, random_state=MODEL_SEED, n_jobs=-1) on TRAIN.
  3. Alert threshold: the 0.01-grid value maximising F1 (churn if p >= t) on VALID.
  4. Test metrics on TEST; oracle AUC from the true probabilities for reference.
  5. Export with skl2onnx (TreeEnsembleClassifier, zipmap off, outputs `label`
     and `probabilities`), check it, and assert onnxruntime == sklearn
     predict_proba to 1e-6 on TEST.
  6. Write models/churn/{model.onnx, manifest.toml, README.md, fixtures/parity.csv}
     and tests/fixtures/churn/{customers-10k.csv, expected-10k.csv, bad-rows.csv,
     bad-rows-expected.csv, README.md}.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import re
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

REPO = Path(__file__).resolve().parent.parent
BUNDLE = REPO / "models" / "churn"
BUNDLE_FIXTURES = BUNDLE / "fixtures"
TEST_FIXTURES = REPO / "tests" / "fixtures" / "churn"

NAME = "churn"
VERSION = "1"
LABELS = ["stay", "churn"]

TRAIN_SEED, VALID_SEED, TEST_SEED = 1001, 1002, 1003
N_TRAIN, N_VALID, N_TEST = 40000, 20000, 20000
MODEL_SEED = 0
N_ESTIMATORS, MAX_DEPTH, MIN_SAMPLES_LEAF = 100, 10, 5
MAX_ONNX_BYTES = 8 * 1024 * 1024
ORT_TOLERANCE = 1e-6
RUN_SECONDS, TRAIN_SECONDS = 10, 3  # measured, for the README (kept constant: byte-identical output)

FIXTURE_SEED, FIXTURE_N = 7, 10000  # = `customers --n 10000 --seed 7`
BAD_SEED, BAD_N = 8, 20
PARITY_ROWS, PARITY_EDGE_BASES, PARITY_BATCH = 200, 12, 64

# --------------------------------------------------------------------------
# Schema and the data-generating process

REGIONS = ["north", "south", "east", "west", "central"]
PLANS = ["basic", "standard", "premium", "unlimited"]
CONTRACTS = ["month_to_month", "one_year", "two_year"]

# (name, type, categories): model input order, = CSV column order after customer_id.
FEATURES: list[tuple[str, str, list[str] | None]] = [
    ("tenure_months", "int", None),
    ("monthly_charges", "float", None),
    ("total_charges", "float", None),
    ("complaints_90d", "int", None),
    ("support_calls_30d", "int", None),
    ("days_since_last_interaction", "int", None),
    ("region", "category", REGIONS),
    ("plan", "category", PLANS),
    ("contract", "category", CONTRACTS),
    ("autopay", "bool", None),
    ("senior", "bool", None),
]
COLUMNS = ["customer_id"] + [f[0] for f in FEATURES]
N_INPUTS = sum(len(c) if t == "category" else 1 for _, t, c in FEATURES)
assert N_INPUTS == 20

REGION_P = [0.22, 0.20, 0.20, 0.18, 0.20]
PLAN_P = [0.30, 0.35, 0.20, 0.15]
CONTRACT_P = [0.50, 0.25, 0.25]
TENURE_SCALE = [14.0, 30.0, 44.0]          # mean months by contract (before the cap at 72)
PLAN_BASE_CENTS = [2500, 5500, 8000, 10000]
CHARGE_SD_CENTS = 800
AUTOPAY_P = [0.30, 0.60, 0.70]             # by contract
SENIOR_P = 0.16
DAYS_SCALE = 60.0

INTERCEPT = -2.2
W_CONTRACT = [1.4, 0.3, 0.0]
W_TENURE = -0.04
W_CHARGES_OVER_60 = 0.02
W_COMPLAINTS = 0.45
W_SUPPORT = 0.15
W_DAYS = 0.004
W_AUTOPAY = -0.6
W_SENIOR = 0.3
W_REGION = [0.0, 0.2, -0.1, 0.3, 0.0]
W_PLAN = [0.2, 0.0, -0.3, 0.4]

# One independent stream per column, spawned in this order (append only!).
STREAMS = ["contract", "tenure", "plan", "charges", "total", "region", "dissatisfaction",
           "complaints", "support", "days", "autopay", "senior", "churn"]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def true_logit(c: dict) -> np.ndarray:
    """The documented churn logit, from the observed columns (charges as written)."""
    return (
        INTERCEPT
        + np.asarray(W_CONTRACT)[c["contract"]]
        + W_TENURE * c["tenure_months"]
        + W_CHARGES_OVER_60 * np.maximum(0.0, c["monthly_charges"] - 60.0)
        + W_COMPLAINTS * c["complaints_90d"]
        + W_SUPPORT * c["support_calls_30d"]
        + W_DAYS * c["days_since_last_interaction"]
        + W_AUTOPAY * c["autopay"]
        + W_SENIOR * c["senior"]
        + np.asarray(W_REGION)[c["region"]]
        + np.asarray(W_PLAN)[c["plan"]]
    )


def generate_customers(n: int, seed: int) -> dict:
    """n synthetic customers for `seed`: a dict of numpy columns.

    Categories are indices into REGIONS / PLANS / CONTRACTS, money is in integer
    cents (`*_cents`) and as float (cents / 100, exactly what the CSV text parses
    to), bools are bool arrays. Also `p_churn` (the true probability) and `churned`.
    """
    if not 0 <= n <= 10_000_000:
        raise ValueError("n must be in 0..10^7 (customer ids have 7 index digits)")
    rng = dict(zip(STREAMS, (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(STREAMS)))))
    c: dict = {"seed": seed, "n": n}
    contract = rng["contract"].choice(3, size=n, p=CONTRACT_P)
    c["contract"] = contract
    scale = np.asarray(TENURE_SCALE)[contract]
    c["tenure_months"] = np.minimum(72, np.floor(rng["tenure"].standard_exponential(n) * scale)).astype(np.int64)
    plan = rng["plan"].choice(4, size=n, p=PLAN_P)
    c["plan"] = plan
    cents = np.asarray(PLAN_BASE_CENTS)[plan] + rng["charges"].standard_normal(n) * CHARGE_SD_CENTS
    monthly = np.clip(np.rint(cents), 1800, 12000).astype(np.int64)
    c["monthly_charges_cents"] = monthly
    noise = np.clip(1.0 + 0.05 * rng["total"].standard_normal(n), 0.85, 1.15)
    total = np.rint(c["tenure_months"] * monthly * noise).astype(np.int64)
    c["total_charges_cents"] = total
    c["monthly_charges"] = monthly / 100.0
    c["total_charges"] = total / 100.0
    c["region"] = rng["region"].choice(5, size=n, p=REGION_P)
    dissatisfaction = rng["dissatisfaction"].standard_normal(n)
    lam = np.exp(-1.0 + 0.6 * dissatisfaction)
    c["complaints_90d"] = np.minimum(8, rng["complaints"].poisson(lam)).astype(np.int64)
    lam_calls = 0.7 + 0.5 * c["complaints_90d"] + 0.3 * np.maximum(dissatisfaction, 0.0)
    c["support_calls_30d"] = np.minimum(10, rng["support"].poisson(lam_calls)).astype(np.int64)
    days = np.floor(rng["days"].standard_exponential(n) * DAYS_SCALE)
    c["days_since_last_interaction"] = np.minimum(365, days).astype(np.int64)
    c["autopay"] = rng["autopay"].random(n) < np.asarray(AUTOPAY_P)[contract]
    c["senior"] = rng["senior"].random(n) < SENIOR_P
    c["p_churn"] = 1.0 / (1.0 + np.exp(-true_logit(c)))
    c["churned"] = (rng["churn"].random(n) < c["p_churn"]).astype(np.int64)
    return c


def customer_id(seed: int, i: int) -> str:
    return f"C{seed}-{i:07d}"


def money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def csv_rows(c: dict, labels: bool = False) -> list[list[str]]:
    """Customers as CSV fields (no header), exactly as written by `customers`."""
    rows = []
    for i in range(c["n"]):
        row = [
            customer_id(c["seed"], i),
            str(int(c["tenure_months"][i])),
            money(int(c["monthly_charges_cents"][i])),
            money(int(c["total_charges_cents"][i])),
            str(int(c["complaints_90d"][i])),
            str(int(c["support_calls_30d"][i])),
            str(int(c["days_since_last_interaction"][i])),
            REGIONS[c["region"][i]],
            PLANS[c["plan"][i]],
            CONTRACTS[c["contract"][i]],
            "true" if c["autopay"][i] else "false",
            "true" if c["senior"][i] else "false",
        ]
        if labels:
            row.append(str(int(c["churned"][i])))
        rows.append(row)
    return rows


def csv_text(c: dict, labels: bool = False) -> str:
    header = COLUMNS + (["churned"] if labels else [])
    return "".join(",".join(r) + "\n" for r in [header] + csv_rows(c, labels))


def encode_row(fields: dict[str, str]) -> list[float]:
    """One CSV record (column -> text) -> the model's 20 inputs, as the Rust worker does it.

    Raises ValueError on unparseable numbers, bad bools and unknown categories.
    """
    out: list[float] = []
    for name, kind, cats in FEATURES:
        text = fields[name]
        if kind == "int":
            out.append(float(np.float32(int(text))))
        elif kind == "float":
            out.append(float(np.float32(float(text))))
        elif kind == "bool":
            if text not in ("true", "false"):
                raise ValueError(f"{name}: not a bool: {text!r}")
            out.append(1.0 if text == "true" else 0.0)
        else:
            if text not in cats:
                raise ValueError(f"{name}: unknown category {text!r}")
            out.extend(1.0 if text == cat else 0.0 for cat in cats)
    return out


def encode(c: dict) -> np.ndarray:
    """Vectorised encode_row over generated customers: float32 [n, 20]."""
    cols = []
    for name, kind, cats in FEATURES:
        v = c[name]
        if kind == "category":
            cols.extend((v == k).astype(np.float64) for k in range(len(cats)))
        else:
            cols.append(v.astype(np.float64))
    return np.stack(cols, axis=1).astype(np.float32)


def input_names() -> list[str]:
    names = []
    for name, kind, cats in FEATURES:
        if kind == "category":
            names.extend(f"{name}={cat}" for cat in cats)
        else:
            names.append(name)
    return names


# --------------------------------------------------------------------------
# Model


def make_forest() -> RandomForestClassifier:
    return RandomForestClassifier(
        n_estimators=N_ESTIMATORS, max_depth=MAX_DEPTH, min_samples_leaf=MIN_SAMPLES_LEAF,
        random_state=MODEL_SEED, n_jobs=-1,
    )


def to_onnx(clf: RandomForestClassifier) -> onnx.ModelProto:
    model = convert_sklearn(
        clf,
        initial_types=[("features", FloatTensorType([None, N_INPUTS]))],
        options={id(clf): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    # skl2onnx lists the default domain twice in opset_import; keep one entry per domain.
    seen: dict[str, int] = {}
    for op in model.opset_import:
        seen[op.domain] = max(seen.get(op.domain, 0), op.version)
    del model.opset_import[:]
    for domain, version in sorted(seen.items()):
        model.opset_import.append(onnx.helper.make_opsetid(domain, version))
    model.graph.name = "argus_churn_forest"  # skl2onnx names it with a random uuid
    model.producer_name = "argus/make_churn_model.py (skl2onnx 1.20.0)"
    model.producer_version = VERSION
    model.doc_string = "Argus churn: P(stay), P(churn) from 20 encoded customer features (random forest)."
    outputs = [o.name for o in model.graph.output]
    assert outputs == ["label", "probabilities"], outputs
    assert [i.name for i in model.graph.input] == ["features"]
    assert model.ir_version <= 8, model.ir_version  # tract 0.23 reads IR <= 8
    onnx.checker.check_model(model, full_check=True)
    return model


def ort_session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # fixed summation order: byte-identical fixtures
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def ort_probs(session: ort.InferenceSession, x: np.ndarray, batch: int) -> np.ndarray:
    parts = [session.run(["probabilities"], {"features": x[i:i + batch]})[0] for i in range(0, len(x), batch)]
    return np.concatenate(parts)


def best_threshold(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """Threshold on the 0.01 grid maximising F1 of `p >= t` (lowest on ties)."""
    best_t, best_f1 = 0.5, -1.0
    for k in range(1, 100):
        t = round(k / 100, 2)
        f1 = f1_score(y, (p >= t).astype(int), zero_division=0)
        if f1 > best_f1 + 1e-12:
            best_t, best_f1 = t, float(f1)
    return best_t, best_f1


def metrics_of(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    pred = (p >= threshold).astype(int)
    return {
        "accuracy": round(float(accuracy_score(y, pred)), 4),
        "precision": round(float(precision_score(y, pred, zero_division=0)), 4),
        "recall": round(float(recall_score(y, pred, zero_division=0)), 4),
        "f1": round(float(f1_score(y, pred, zero_division=0)), 4),
        "roc_auc": round(float(roc_auc_score(y, p)), 4),
        "churn_rate": round(float(y.mean()), 4),
    }


def stored_thresholds(model: onnx.ModelProto) -> dict[tuple[int, int], np.float32]:
    """(tree, node) -> the float32 threshold the graph holds for that split."""
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in model.graph.node[0].attribute}
    values = np.asarray(attrs["nodes_values"], dtype=np.float32)
    return {(int(t), int(n)): values[i]
            for i, (t, n, m) in enumerate(zip(attrs["nodes_treeids"], attrs["nodes_nodeids"], attrs["nodes_modes"]))
            if m == b"BRANCH_LEQ"}


def threshold_stats(clf: RandomForestClassifier, stored: dict) -> dict:
    """How the graph's float32 thresholds relate to scikit-learn's float64 ones."""
    exact = below = above = largest_below = 0
    for k, est in enumerate(clf.estimators_):
        tree = est.tree_
        for node in np.nonzero(tree.children_left != -1)[0]:
            t, s = float(tree.threshold[node]), stored[(k, int(node))]
            exact += float(s) == t
            below += float(s) < t
            above += float(s) > t
            largest_below += float(s) <= t < float(np.nextafter(s, np.float32(np.inf)))
    return {"splits": len(stored), "exact": exact, "below": below, "above": above,
            "largest_float32_le": largest_below}


def graph_summary(model: onnx.ModelProto) -> dict:
    node = model.graph.node[0]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    modes = attrs["nodes_modes"]
    return {
        "ops": [f"{n.domain or 'ai.onnx'}:{n.op_type}" for n in model.graph.node],
        "nodes": len(modes),
        "leaves": sum(1 for m in modes if m == b"LEAF"),
        "class_ids": sorted(set(attrs["class_ids"])),
        "classlabels": list(attrs["classlabels_int64s"]),
        "post_transform": attrs["post_transform"].decode(),
        "opsets": {op.domain or "ai.onnx": op.version for op in model.opset_import},
        "ir_version": model.ir_version,
    }


# --------------------------------------------------------------------------
# Fixtures


def r(x) -> str:
    return repr(float(x))


def parity_rows(clf: RandomForestClassifier, stored: dict, x_test: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """PARITY_ROWS encoded rows: test rows, then pairs pinned on a split threshold.

    For edge base j (test row j): a split on that row's path in tree j (or the next
    tree that has a suitable one): for j % 3 != 2 the first split on a numeric
    feature; for j % 3 == 2 the first split on a money feature whose float64
    threshold t is not a float32 (the graph stores a float32 s != t). The feature
    is set to s (the graph's value: goes left) and to the next float32 above s
    (goes right).
    """
    numeric = set(range(6))  # the int and float features are inputs 0..5
    money = {1, 2}
    edge, notes = [], []
    for j in range(PARITY_EDGE_BASES):
        inexact = j % 3 == 2
        found = None
        for k in range(j, len(clf.estimators_)):
            tree = clf.estimators_[k].tree_
            for node in clf.estimators_[k].decision_path(x_test[j:j + 1]).indices:
                if tree.children_left[node] == -1:
                    continue
                f, t, s = int(tree.feature[node]), float(tree.threshold[node]), stored[(k, int(node))]
                if (not inexact and f in numeric) or (inexact and f in money and float(s) != t):
                    found = (k, int(node), f, t, s)
                    break
            if found:
                break
        assert found, f"no suitable split for edge base {j}"
        k, node, f, t, s = found
        above = np.nextafter(s, np.float32(np.inf))
        for v, what in ((s, "= the graph's float32 threshold"), (above, "= the next float32 above it")):
            row = x_test[j].copy()
            row[f] = v
            edge.append(row)
            notes.append(f"test row {j}, tree {k} node {node}: `{FEATURES[f][0]}` (f{f}) {what}, "
                         f"{float(v)!r} (scikit-learn threshold {t!r})")
    n_plain = PARITY_ROWS - len(edge)
    x = np.concatenate([x_test[:n_plain], np.stack(edge)]).astype(np.float32)
    return x, [f"test row {i}" for i in range(n_plain)] + notes


def write_parity(session: ort.InferenceSession, clf, stored: dict, x_test: np.ndarray) -> dict:
    x, notes = parity_rows(clf, stored, x_test)
    p_b1 = ort_probs(session, x, 1)
    p_b64 = ort_probs(session, x, PARITY_BATCH)
    p_sk = clf.predict_proba(x)[:, 1]
    header = [f"f{i}" for i in range(N_INPUTS)] + ["p0_b1", "p1_b1", "p0_b64", "p1_b64", "p1_sklearn"]
    lines = [",".join(header)]
    for i in range(len(x)):
        vals = [r(v) for v in x[i]] + [r(p_b1[i, 0]), r(p_b1[i, 1]), r(p_b64[i, 0]), r(p_b64[i, 1]), r(p_sk[i])]
        lines.append(",".join(vals))
    BUNDLE_FIXTURES.mkdir(parents=True, exist_ok=True)
    (BUNDLE_FIXTURES / "parity.csv").write_text("\n".join(lines) + "\n")
    n_edge = 2 * PARITY_EDGE_BASES
    edge_diff = np.abs(p_b1[-n_edge:, 1] - p_sk[-n_edge:])
    return {
        "b1_vs_b64": float(np.abs(p_b1 - p_b64).max()),
        "p0_plus_p1_minus_1": float(np.abs(p_b1.astype(np.float64).sum(axis=1) - 1).max()),
        "ort_vs_sklearn_plain": float(np.abs(p_b1[:-n_edge, 1] - p_sk[:-n_edge]).max()),
        "ort_vs_sklearn_edge": float(edge_diff.max()),
        "edge_rows_differing": [PARITY_ROWS - n_edge + int(i) for i in np.nonzero(edge_diff > 1e-6)[0]],
        "notes": notes,
    }


def write_test_fixtures(clf, session) -> dict:
    TEST_FIXTURES.mkdir(parents=True, exist_ok=True)
    c = generate_customers(FIXTURE_N, FIXTURE_SEED)
    (TEST_FIXTURES / "customers-10k.csv").write_text(csv_text(c))
    # Encode from the CSV text, as the worker does, and check the vectorised encoder agrees.
    x_text = np.asarray([encode_row(dict(zip(COLUMNS, row))) for row in csv_rows(c)], np.float32)
    x = encode(c)
    assert np.array_equal(x, x_text)
    p = clf.predict_proba(x)[:, 1]
    lines = ["customer_id,p_churn"] + [f"{customer_id(FIXTURE_SEED, i)},{r(p[i])}" for i in range(FIXTURE_N)]
    (TEST_FIXTURES / "expected-10k.csv").write_text("\n".join(lines) + "\n")
    p_ort = ort_probs(session, x, 256)[:, 1]
    ids = [customer_id(FIXTURE_SEED, i) for i in range(FIXTURE_N)]
    assert len(set(ids)) == FIXTURE_N

    # bad-rows.csv: BAD_N customers of BAD_SEED with 4 of them broken.
    b = generate_customers(BAD_N, BAD_SEED)
    rows = csv_rows(b)
    col = {name: k for k, name in enumerate(COLUMNS)}
    bad = {
        3: "too few fields (the last two, autopay and senior, are missing)",
        7: 'non-numeric tenure_months ("ten")',
        12: "empty monthly_charges",
        17: 'unknown region ("atlantis")',
    }
    rows[3] = rows[3][:-2]
    rows[7][col["tenure_months"]] = "ten"
    rows[12][col["monthly_charges"]] = ""
    rows[17][col["region"]] = "atlantis"
    (TEST_FIXTURES / "bad-rows.csv").write_text("".join(",".join(row) + "\n" for row in [COLUMNS] + rows))
    good = [i for i in range(BAD_N) if i not in bad]
    for i in bad:
        fields = rows[i]
        try:
            if len(fields) != len(COLUMNS):
                raise ValueError("field count")
            encode_row(dict(zip(COLUMNS, fields)))
        except ValueError:
            continue
        raise AssertionError(f"bad row {i} encodes")
    x_good = np.asarray([encode_row(dict(zip(COLUMNS, rows[i]))) for i in good], np.float32)
    p_good = clf.predict_proba(x_good)[:, 1]
    lines = ["customer_id,p_churn"] + [f"{rows[i][0]},{r(p)}" for i, p in zip(good, p_good)]
    (TEST_FIXTURES / "bad-rows-expected.csv").write_text("\n".join(lines) + "\n")
    return {
        "ort_vs_sklearn_10k": float(np.abs(p_ort - p).max()),
        "p_10k": p,
        "churned_10k": c["churned"],
        "bad_lines": {i + 2: why for i, why in bad.items()},
        "n_good": len(good),
    }


# --------------------------------------------------------------------------
# Text outputs


def manifest_text(sha256: str, threshold: float, metrics: dict, max_diff: float) -> str:
    feats = []
    for name, kind, cats in FEATURES:
        block = f'[[features]]\nname = "{name}"\ntype = "{kind}"\n'
        if cats:
            block += "categories = [" + ", ".join(f'"{k}"' for k in cats) + "]\n"
        feats.append(block)
    return f"""schema = "argus.bundle/v5"
name = "{NAME}"
version = "{VERSION}"
task = "tabular"
description = "Telecom customer churn risk (random forest, {N_ESTIMATORS} trees, {N_INPUTS} encoded inputs)"

[model]
file = "model.onnx"
sha256 = "{sha256}"
engine = "trees"

[input]
name = "features"
shape = [1, {N_INPUTS}]

# Encoding: features in this order; int/float -> value as float32; bool -> 1.0/0.0;
# category -> one-hot over `categories`, in order (an unlisted value is an error).
{chr(10).join(feats)}
[output]
name = "probabilities"
kind = "probabilities"
labels = ["{LABELS[0]}", "{LABELS[1]}"]

[decision]
positive = "churn"
threshold = {threshold}

# Evidence on alerts: each tree node's training cover (exact TreeSHAP) and background
# rows (sampling Shapley with another engine); written by models/make_evidence_fixtures.py.
[explain]
covers = "tree_covers.json"
background = "background.json"

[training]
script = "models/make_churn_model.py"
train_seed = {TRAIN_SEED}
valid_seed = {VALID_SEED}
test_seed = {TEST_SEED}
model_seed = {MODEL_SEED}
n_train = {N_TRAIN}
n_valid = {N_VALID}
n_test = {N_TEST}
algorithm = "sklearn.ensemble.RandomForestClassifier"
n_estimators = {N_ESTIMATORS}
max_depth = {MAX_DEPTH}
min_samples_leaf = {MIN_SAMPLES_LEAF}
accuracy = {metrics["accuracy"]}
precision = {metrics["precision"]}
recall = {metrics["recall"]}
f1 = {metrics["f1"]}
roc_auc = {metrics["roc_auc"]}
churn_rate = {metrics["churn_rate"]}
max_abs_diff_onnxruntime_vs_sklearn = {max_diff!r}
"""


def formula_md() -> str:
    return f"""```
logit = {INTERCEPT}
      + 1.4 [contract = month_to_month] + 0.3 [contract = one_year]
      - 0.04 * tenure_months
      + 0.02 * max(0, monthly_charges - 60)
      + 0.45 * complaints_90d
      + 0.15 * support_calls_30d
      + 0.004 * days_since_last_interaction
      - 0.6 [autopay] + 0.3 [senior]
      + region: south +0.2, east -0.1, west +0.3 (north, central 0)
      + plan:   basic +0.2, premium -0.3, unlimited +0.4 (standard 0)
churned ~ Bernoulli(sigmoid(logit))
```"""


def readme_text(sha256: str, size: int, threshold: float, valid_f1: float, metrics: dict,
                extra: dict) -> str:
    g = extra["graph"]
    inputs = "\n".join(f"| f{i} | `{n}` |" for i, n in enumerate(input_names()))
    feature_rows = "\n".join(
        f"| `{n}` | {t} | {', '.join(f'`{c}`' for c in cats) if cats else ''} |" for n, t, cats in FEATURES)
    par = extra["parity"]
    th = extra["thresholds"]
    same = (", so the graph and scikit-learn take the same branch for every float32 input"
            if th["largest_float32_le"] == th["splits"] else "")
    return f"""# churn

Telecom customer churn risk for Argus: given one customer record (a CSV row or
its JSON equivalent), the probability that the customer leaves
(`probabilities[1]`, label **churn**) or stays (`probabilities[0]`, **stay**).
An alert is raised when `P(churn) >= {threshold}` (`[decision]` in `manifest.toml`).

The data is Argus's own: `models/make_churn_model.py` draws synthetic customers
with a known, documented relationship to churn (below), so the model's
behaviour and the tests' expectations have a ground truth.
`python3 models/make_churn_model.py customers --n 10000 --seed 7 [--labels]`
prints such customers as CSV.

## Features (model input order)

| feature | type | categories (one-hot, in order) |
|---|---|---|
{feature_rows}

`customer_id` (first CSV column, `C<seed>-<index>`) is a key, not an input.
Encoding, exactly as the Rust worker must reproduce it: int and float values
cast to float32, bools 1.0 / 0.0, each category one-hot over its list in order
(an unlisted value is an error) — {N_INPUTS} float32 inputs:

| input | meaning |
|---|---|
{inputs}

Money is written with exactly 2 decimals. For every such value from 0.00 to
12000.00, `f64 as f32` of the parsed text equals the correctly rounded float32
of the text (checked exhaustively), so parsing as f32 or as f64-then-f32 gives
the same inputs.

## Data-generating process

Per customer (each column from its own numpy stream, seeded with
`SeedSequence(seed).spawn`, so the first k customers of a seed do not depend on n):
contract month_to_month / one_year / two_year with p = {CONTRACT_P};
tenure = min(72, floor(Exp(mean {TENURE_SCALE} by contract)));
plan basic / standard / premium / unlimited with p = {PLAN_P};
monthly charges = base {[b / 100 for b in PLAN_BASE_CENTS]} by plan + N(0, {CHARGE_SD_CENTS / 100}),
rounded to cents, clipped to 18.00..120.00;
total charges = tenure × monthly × clip(N(1, 0.05), 0.85, 1.15) in cents;
region with p = {REGION_P}; a hidden dissatisfaction d ~ N(0, 1);
complaints_90d = min(8, Poisson(exp(-1 + 0.6 d)));
support_calls_30d = min(10, Poisson(0.7 + 0.5 complaints + 0.3 max(d, 0)));
days_since_last_interaction = min(365, floor(Exp(mean {DAYS_SCALE:g})));
autopay with p = {AUTOPAY_P} by contract; senior with p = {SENIOR_P}.

Churn depends only on observed columns (d acts through complaints and calls;
total_charges has no direct effect):

{formula_md()}

The intercept puts the churn rate at ~{metrics["churn_rate"]:.0%}. The true probabilities
reach ROC AUC {extra["oracle_auc"]} on the test set: no model can do much better.

## Model

| | |
|---|---|
| file | `model.onnx` ({size} bytes, sha256 `{sha256}`) |
| opset / IR | {", ".join(f"{k} {v}" for k, v in g["opsets"].items())} / IR {g["ir_version"]} |
| input | `features`, float32 `[N, {N_INPUTS}]` (the manifest pins `[1, {N_INPUTS}]`) |
| outputs | `label` int64 `[N]` (argmax, 0 = stay, 1 = churn); `probabilities` float32 `[N, 2]` = [P(stay), P(churn)] |
| graph | one `ai.onnx.ml` `TreeEnsembleClassifier`: {N_ESTIMATORS} trees, {g["nodes"]} nodes ({g["leaves"]} leaves), `BRANCH_LEQ` splits (`x <= threshold` goes to the true/left child), thresholds stored as float32 |
| scores | `post_transform = "{g["post_transform"]}"`, `classlabels_int64s = {g["classlabels"]}`, `class_ids` = {g["class_ids"]} only: each leaf carries P(churn) / {N_ESTIMATORS}. This is onnxruntime's binary case (2 labels, one class id): it sums the weights to s = P(churn) and outputs `[1 - s, s]`, label = `s > 0.5`. Reading `class_ids` literally (index 0 = "stay") would put s in the wrong column; a Rust evaluator must special-case it like onnxruntime |

Training: scikit-learn `RandomForestClassifier(n_estimators={N_ESTIMATORS}, max_depth={MAX_DEPTH},
min_samples_leaf={MIN_SAMPLES_LEAF}, random_state={MODEL_SEED}, n_jobs=-1)` on {N_TRAIN} customers
(seed {TRAIN_SEED}), as specified (the ONNX file is {size / 1e6:.1f} MB, under the 8 MB budget,
so nothing had to be cut). Exported with skl2onnx 1.20.0 (`zipmap` off, target opsets
ai.onnx 17 / ai.onnx.ml 3; the duplicate default-domain opset entry skl2onnx writes is
removed), checked with `onnx.checker`. onnxruntime vs `predict_proba` on the float32
test inputs: max |Δ P| = {extra["max_diff"]:.3g} (asserted ≤ {ORT_TOLERANCE:g}).

Split edges: scikit-learn sends a float32 input x left when `x <= t` with a
float64 threshold t (midpoints of float32 data values); the graph holds float32
thresholds s and sends x left when `x <= s`. Of the {th["splits"]} splits, {th["exact"]} have
s == t and {th["below"]} have s < t ({th["above"]} have s > t); s is the largest float32 <= t for
{th["largest_float32_le"]} of them{same}. `fixtures/parity.csv` pins inputs exactly on s and one
float32 above it.

## Threshold and metrics

The threshold is the 0.01-grid value maximising F1 of `P(churn) >= t` on
{N_VALID} validation customers (seed {VALID_SEED}): **{threshold}** (validation F1 {valid_f1:.4f}).
Test set: {N_TEST} customers (seed {TEST_SEED}), class "churn" positive:

| metric | value |
|---|---|
| accuracy | {metrics["accuracy"]} |
| precision | {metrics["precision"]} |
| recall | {metrics["recall"]} |
| F1 | {metrics["f1"]} |
| ROC AUC | {metrics["roc_auc"]} (true probabilities: {extra["oracle_auc"]}) |
| churn rate | {metrics["churn_rate"]} |
| at threshold 0.5: accuracy / precision / recall / F1 | {extra["at_half"]["accuracy"]} / {extra["at_half"]["precision"]} / {extra["at_half"]["recall"]} / {extra["at_half"]["f1"]} |

## Fixtures

`fixtures/parity.csv`: {PARITY_ROWS} encoded rows (`f0`..`f{N_INPUTS - 1}`, float32 values
written as `repr(float(x))`, so they parse back exactly) with onnxruntime's
`probabilities` computed one row per `session.run` (`p0_b1`, `p1_b1`) and in
batches of {PARITY_BATCH} (`p0_b64`, `p1_b64`), plus scikit-learn's P(churn)
(`p1_sklearn`). Rows 0..{PARITY_ROWS - 2 * PARITY_EDGE_BASES - 1} are the first test-set
customers; rows {PARITY_ROWS - 2 * PARITY_EDGE_BASES}..{PARITY_ROWS - 1} come in pairs pinned on a split:
for test row j, a split on its path in tree j (or the next tree with a suitable one):
the first split on a numeric feature, or (every third pair) the first split on a
money feature whose scikit-learn threshold is not a float32; the feature is set to
the float32 threshold the graph stores (goes left) and to the next float32 above it
(goes right). onnxruntime single-threaded:
batch 1 vs batch 64 max |Δ| = {par["b1_vs_b64"]:.3g}; |p0 + p1 - 1| ≤ {par["p0_plus_p1_minus_1"]:.3g};
vs scikit-learn {par["ort_vs_sklearn_plain"]:.3g} on the plain rows and {par["ort_vs_sklearn_edge"]:.3g}
on the edge rows (rows where sklearn takes the other branch: {par["edge_rows_differing"] or "none"}).

Edge rows:

{chr(10).join(f"- row {PARITY_ROWS - 2 * PARITY_EDGE_BASES + k}: {n}" for k, n in enumerate(par["notes"][-2 * PARITY_EDGE_BASES:]))}

`tests/fixtures/churn/` has the 10k-customer CSV fixtures (see its README).

## Regenerate

```sh
pip install -r models/requirements.txt
python3 models/make_churn_model.py
```

Takes ~{RUN_SECONDS} s on 2 cores (~{TRAIN_SECONDS} s of it training). Deterministic: the CSVs, the manifest
and the ONNX bytes are identical from run to run on the same platform
(sha256 recomputed each run).
"""


def fixtures_readme(fx: dict, threshold: float) -> str:
    bad = "\n".join(f"| {line} | {why} |" for line, why in sorted(fx["bad_lines"].items()))
    return f"""# churn fixtures

Generated by `python3 models/make_churn_model.py` (see `models/churn/README.md`
for the data-generating process, the encoding and the model). Do not edit by hand.

| file | what |
|---|---|
| `customers-10k.csv` | {FIXTURE_N} customers, seed {FIXTURE_SEED}, no `churned` column: byte-identical to `python3 models/make_churn_model.py customers --n {FIXTURE_N} --seed {FIXTURE_SEED}`. Ids `C{FIXTURE_SEED}-0000000`..`C{FIXTURE_SEED}-{FIXTURE_N - 1:07d}`, unique. |
| `expected-10k.csv` | `customer_id,p_churn`: scikit-learn `predict_proba(x)[:, 1]` (float64, `repr`) on the float32-encoded rows of `customers-10k.csv`. onnxruntime (float32) agrees to {fx["ort_vs_sklearn_10k"]:.3g}; compare with a tolerance of ~1e-5. {int((fx["p_10k"] >= threshold).sum())} rows have `p_churn >= {threshold}` (the manifest threshold; the closest is {float(np.abs(fx["p_10k"] - threshold).min()):.2g} away from it). |
| `bad-rows.csv` | {BAD_N} customers of seed {BAD_SEED} (same header), {len(fx["bad_lines"])} of them malformed (below). |
| `bad-rows-expected.csv` | `customer_id,p_churn` for the {fx["n_good"]} well-formed rows of `bad-rows.csv`, as in `expected-10k.csv`. |

Malformed lines of `bad-rows.csv` (1-based, header = line 1):

| line | problem |
|---|---|
{bad}

All files use `\\n` line endings, no quoting (no field contains a comma), bools
as `true`/`false`, money with exactly 2 decimals.
"""


# --------------------------------------------------------------------------


def build() -> None:
    t0 = time.time()
    train, valid, test = (generate_customers(n, s) for n, s in
                          ((N_TRAIN, TRAIN_SEED), (N_VALID, VALID_SEED), (N_TEST, TEST_SEED)))
    x_train, x_valid, x_test = encode(train), encode(valid), encode(test)
    y_train, y_valid, y_test = train["churned"], valid["churned"], test["churned"]
    log(f"churn rate: train {y_train.mean():.4f}, valid {y_valid.mean():.4f}, test {y_test.mean():.4f}")

    t1 = time.time()
    clf = make_forest().fit(x_train, y_train)
    clf.set_params(n_jobs=1)  # threaded predict_proba sums trees in a racy order: last-bit noise
    log(f"trained in {time.time() - t1:.1f}s; {sum(e.tree_.node_count for e in clf.estimators_)} nodes")

    threshold, valid_f1 = best_threshold(y_valid, clf.predict_proba(x_valid)[:, 1])
    p_test = clf.predict_proba(x_test)[:, 1]
    metrics = metrics_of(y_test, p_test, threshold)
    oracle_auc = round(float(roc_auc_score(y_test, test["p_churn"])), 4)
    log(f"threshold {threshold} (valid F1 {valid_f1:.4f}); test {metrics}; oracle AUC {oracle_auc}")

    model = to_onnx(clf)
    model_bytes = model.SerializeToString()
    if len(model_bytes) > MAX_ONNX_BYTES:
        raise SystemExit(f"model.onnx is {len(model_bytes)} bytes, over {MAX_ONNX_BYTES}")
    BUNDLE.mkdir(parents=True, exist_ok=True)
    model_path = BUNDLE / "model.onnx"
    model_path.write_bytes(model_bytes)
    sha256 = hashlib.sha256(model_bytes).hexdigest()

    session = ort_session(model_path)
    probs = ort_probs(session, x_test, 1024)
    sk = clf.predict_proba(x_test.astype(np.float32))
    max_diff = float(np.abs(probs.astype(np.float64) - sk).max())
    labels = session.run(["label"], {"features": x_test[:1024]})[0]
    print(f"onnxruntime vs sklearn predict_proba on {N_TEST} test rows: max |diff| = {max_diff!r}",
          file=sys.stderr)
    assert max_diff <= ORT_TOLERANCE, max_diff
    assert np.array_equal(labels, np.argmax(probs[:1024], axis=1)), "label != argmax(probabilities)"

    stored = stored_thresholds(model)
    thresholds = threshold_stats(clf, stored)
    parity = write_parity(session, clf, stored, x_test)
    fx = write_test_fixtures(clf, session)
    graph = graph_summary(model)
    log(f"thresholds: {thresholds}")
    log(f"graph: {graph}; parity: { {k: v for k, v in parity.items() if k != 'notes'} }; "
        f"10k ort vs sklearn {fx['ort_vs_sklearn_10k']!r}")

    manifest = manifest_text(sha256, threshold, metrics, max_diff)
    parsed = tomllib.loads(manifest)
    assert parsed["model"]["sha256"] == sha256 and parsed["input"]["shape"] == [1, N_INPUTS]
    assert sum(len(f.get("categories", [0])) for f in parsed["features"]) == N_INPUTS
    (BUNDLE / "manifest.toml").write_text(manifest)
    extra = {
        "graph": graph, "thresholds": thresholds, "max_diff": max_diff, "oracle_auc": oracle_auc, "parity": parity,
        "at_half": metrics_of(y_test, p_test, 0.5),
    }
    (BUNDLE / "README.md").write_text(readme_text(sha256, len(model_bytes), threshold, valid_f1, metrics, extra))
    (TEST_FIXTURES / "README.md").write_text(fixtures_readme(fx, threshold))
    log(f"wrote {model_path} ({len(model_bytes)} bytes, sha256 {sha256}) in {time.time() - t0:.1f}s total")


def write_explain_files(clf, out: Path, rows: np.ndarray) -> None:
    """The retrained bundle's `[explain]` files: its trees' covers (checked against its
    ONNX file by make_evidence_fixtures) and the parent bundle's background rows."""
    import shutil
    import make_evidence_fixtures as ev  # imports this module: import here, not at the top
    case = ev.Case("retrained churn", clf, out / "model.onnx", out / "tree_covers.json",
                   out / "shap.json", rows[:50], rows[:2000])
    _, mapping = ev.verify(case)
    ev.write_covers(case, mapping)
    shutil.copyfile(BUNDLE / "background.json", out / "background.json")


def retrain(export: Path, out: Path, version: str) -> None:
    """Retrain on verified samples: the `samples.csv` of `argus export-training` (the
    record's fields, `label` = the verified class). Every fifth row is held out to choose
    the threshold and measure; the bundle is models/churn's manifest with the new version,
    model hash, threshold and a [training] section naming the export."""
    with open(export, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise SystemExit(f"{export}: no samples")
    unknown = {r["label"] for r in rows} - set(LABELS)
    if unknown:
        raise SystemExit(f"{export}: labels {sorted(unknown)} are not the model's {LABELS}")
    x = np.array([encode_row(r) for r in rows], dtype=np.float32)
    y = np.array([1 if r["label"] == "churn" else 0 for r in rows])
    valid = np.arange(len(rows)) % 5 == 0
    clf = make_forest().fit(x[~valid], y[~valid])
    clf.set_params(n_jobs=1)
    p = clf.predict_proba(x[valid])[:, 1]
    threshold, _ = best_threshold(y[valid], p)
    metrics = metrics_of(y[valid], p, threshold)
    model_bytes = to_onnx(clf).SerializeToString()
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.onnx").write_bytes(model_bytes)
    sha256 = hashlib.sha256(model_bytes).hexdigest()
    probs = ort_probs(ort_session(out / "model.onnx"), x[valid], 1024)
    max_diff = float(np.abs(probs.astype(np.float64) - clf.predict_proba(x[valid])).max())
    assert max_diff <= ORT_TOLERANCE, max_diff
    head = (BUNDLE / "manifest.toml").read_text().split("[training]")[0]
    for key, value in (("version", f'"{version}"'), ("sha256", f'"{sha256}"'), ("threshold", str(threshold))):
        head = re.sub(rf"^{key} = .*$", f"{key} = {value}", head, count=1, flags=re.M)
    facts = {"export": export.name, "export_sha256": hashlib.sha256(export.read_bytes()).hexdigest(),
             "parent_version": VERSION, "n_train": int((~valid).sum()), "n_valid": int(valid.sum())}
    lines = ['script = "models/make_churn_model.py retrain"']
    lines += [f"{k} = {v!r}" if isinstance(v, int) else f'{k} = "{v}"' for k, v in facts.items()]
    lines += [f"{k} = {v}" for k, v in metrics.items()]
    manifest = head + "[training]\n" + "\n".join(lines) + "\n"
    parsed = tomllib.loads(manifest)
    assert parsed["version"] == version and parsed["model"]["sha256"] == sha256
    (out / "manifest.toml").write_text(manifest)
    write_explain_files(clf, out, x[valid])
    log(f"retrained on {len(rows)} verified samples ({int(valid.sum())} held out): threshold "
        f"{threshold}, held-out {metrics}; wrote {out} (version {version}, sha256 {sha256})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("build", help="train the model, write models/churn/ and the fixtures (default)")
    cust = sub.add_parser("customers", help="write synthetic customers as CSV to stdout")
    cust.add_argument("--n", type=int, default=1000, help="number of customers (default 1000)")
    cust.add_argument("--seed", type=int, default=FIXTURE_SEED, help=f"seed (default {FIXTURE_SEED})")
    cust.add_argument("--labels", action="store_true", help="append the `churned` 0/1 column")
    re_ = sub.add_parser("retrain", help="train a new version on an `argus export-training` samples.csv")
    re_.add_argument("export", type=Path, help="samples.csv written by argus export-training")
    re_.add_argument("--out", type=Path, required=True, help="bundle directory to write")
    re_.add_argument("--version", required=True, help="the new version")
    args = parser.parse_args()
    if args.command == "retrain":
        retrain(args.export, args.out, args.version)
    elif args.command == "customers":
        if args.seed < 0:
            parser.error("--seed must be >= 0")
        sys.stdout.write(csv_text(generate_customers(args.n, args.seed), labels=args.labels))
    else:
        build()


if __name__ == "__main__":
    main()
