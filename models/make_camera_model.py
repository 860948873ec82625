#!/usr/bin/env python3
"""Train the `camera-person` classifier bundle on Argus's synthetic camera scenes.

Re-runnable and deterministic (fixed seeds throughout); ~6 minutes on 2 cores,
~5 GB of RAM:

    pip install -r models/requirements.txt
    python3 models/make_camera_model.py            # plain MLP (default)
    python3 models/make_camera_model.py --arch conv  # random-conv features + MLP head

Steps:
  1. Render frames with the Rust scene generator (the `dump_scenes` example of
     argus-producer): TRAIN_SEED for training (one frame per camera, so every
     training frame has a fresh background; most at 160x120 because rendering,
     JPEG-encoding and decoding them is ~15x cheaper, plus some at the
     producer's default 640x480), TEST_SEED for testing (unseen cameras, at
     640x480 like `argus produce synthetic`, and the same scenes at 160x120).
  2. Preprocess exactly as the Rust worker does: decode to RGB, stretch-resize
     to 32x32 (Pillow BILINEAR == image's Triangle filter), x = u8 * (1/255),
     (x - 0.5) / 0.25 per channel, NCHW.
  3. Train an sklearn MLPClassifier on the flattened tensors plus their
     left-right mirror images (or, with --arch conv, on fixed random
     convolutional features of them).
  4. Write the ONNX graph by hand with onnx.helper, check it, and verify
     onnxruntime == sklearn to 1e-5 on the whole test set.
  5. Write models/camera-person/{model.onnx, manifest.toml, README.md} and
     fixtures/ (16 test-seed 160x120 JPEGs + reference.json) for the Rust tests.

The example is built with `cargo build --release` (CARGO_TARGET_DIR is
honoured); set DUMP_SCENES_BIN=/path/to/dump_scenes to use a prebuilt binary.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from PIL import Image
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
from sklearn.neural_network import MLPClassifier

REPO = Path(__file__).resolve().parent.parent
BUNDLE = REPO / "models" / "camera-person"
FIXTURES = BUNDLE / "fixtures"

NAME = "camera-person"
VERSION = "1"
LABELS = ["empty", "person"]
INPUT_SIZE = 32
SCALE = 1.0 / 255.0
MEAN = [0.5, 0.5, 0.5]
STD = [0.25, 0.25, 0.25]

TRAIN_SEED = 20240611
TEST_SEED = 777001
# Training frames: (count, width, height); cameras are disjoint across parts and
# every frame is seq 0 of its own camera (background diversity is what matters:
# four frames per camera instead of one cost ~2 points of accuracy).
TRAIN_PARTS = [(72000, 160, 120), (8000, 640, 480)]
N_TRAIN = sum(n for n, _, _ in TRAIN_PARTS)
N_TEST = 1500
TEST_CAMERAS = N_TEST
WIDTH, HEIGHT = 640, 480  # the producer's default frame size: the headline test set
SMALL_WIDTH, SMALL_HEIGHT = 160, 120
# A 4-camera stream like the end-to-end tests' (tests/pipeline.rs uses seed 7).
STREAM_SEED, STREAM_CAMERAS, STREAM_FRAMES = 7, 4, 2000
MODEL_SEED = 0
HIDDEN = 64

FIXTURE_PER_CLASS = 8
MEMORY_GB = 5  # peak RSS of a run (measured ~5.0 GB), for the README
FIXTURE_TOLERANCE = 0.05


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Frames


_DUMP_BIN: str | None = None


def dump_binary() -> str:
    """Path of the dump_scenes example, built with cargo (release) unless DUMP_SCENES_BIN is set."""
    global _DUMP_BIN
    if _DUMP_BIN is None:
        binary = os.environ.get("DUMP_SCENES_BIN")
        if not binary:
            cmd = ["cargo", "build", "--release", "-p", "argus-producer", "--example", "dump_scenes"]
            log("$ " + " ".join(cmd))
            subprocess.run(cmd, check=True, cwd=REPO)
            meta = subprocess.run(
                ["cargo", "metadata", "--format-version", "1", "--no-deps"],
                check=True, cwd=REPO, capture_output=True, text=True,
            )
            target = Path(json.loads(meta.stdout)["target_directory"])
            binary = str(target / "release" / "examples" / "dump_scenes")
        _DUMP_BIN = binary
    return _DUMP_BIN


def dump_scenes(*jobs: tuple) -> None:
    """Runs the dump example once per (out, count, seed, cameras, width, height[, first_camera]),
    all in parallel."""
    procs = []
    for out, count, seed, cameras, width, height, *first in jobs:
        cmd = [
            dump_binary(), str(out), str(count),
            "--seed", str(seed), "--cameras", str(cameras),
            "--width", str(width), "--height", str(height),
            "--first-camera", str(first[0] if first else 0),
        ]
        log("$ " + " ".join(cmd))
        procs.append(subprocess.Popen(cmd, cwd=REPO))
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"dump_scenes failed with exit code {p.returncode}")


def read_labels(directory: Path) -> list[dict]:
    with open(directory / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["camera"] = int(r["camera"])
        r["seq"] = int(r["seq"])
        r["person"] = int(r["person"])
    return rows


def preprocess(path: Path) -> np.ndarray:
    """JPEG file -> float32 [3, 32, 32] tensor, exactly as the manifest says."""
    with Image.open(path) as im:
        im = im.convert("RGB").resize((INPUT_SIZE, INPUT_SIZE), Image.BILINEAR)
        x = np.asarray(im, dtype=np.float32) * np.float32(SCALE)  # HWC
    x = (x - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)  # CHW


def _preprocess_flat(path: Path) -> np.ndarray:
    return preprocess(path).reshape(-1)


def load_set(directory: Path) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    rows = read_labels(directory)
    files = [directory / r["file"] for r in rows]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        x = np.stack(list(pool.map(_preprocess_flat, files, chunksize=256)))
    y = np.asarray([r["person"] for r in rows], dtype=np.int64)
    return x, y, rows


def hflip(x: np.ndarray) -> np.ndarray:
    """Mirror flattened NCHW vectors left-right (a mirrored scene is still a scene)."""
    n = x.shape[0]
    return x.reshape(n, 3, INPUT_SIZE, INPUT_SIZE)[:, :, :, ::-1].reshape(n, -1).copy()


# --arch conv: random convolutional features, fixed random 5x5 filters, ReLU, global max and
# mean pooling, then a trained MLP head. The pooling makes the features translation invariant
# (a person anywhere in the frame excites the same filters). About as accurate as the plain
# MLP on the current scenes (0.986 vs 0.985 on the 640x480 test set in our runs), ~10x smaller,
# but ~25x more inference FLOPs; the plain MLP is the default, as specified.
N_FILTERS = 96
KERNEL = 5
FILTER_SEED = 1


class ConvFeatureMLP:
    """Fixed random conv features + standardisation + a trained sklearn MLP head."""

    def __init__(self) -> None:
        rng = np.random.default_rng(FILTER_SEED)
        w = rng.normal(size=(N_FILTERS, 3, KERNEL, KERNEL)).astype(np.float32)
        self.conv_w = w / np.sqrt((w ** 2).sum(axis=(1, 2, 3), keepdims=True))
        self.conv_b = rng.normal(scale=0.5, size=N_FILTERS).astype(np.float32)
        self.mlp = make_mlp()

    def features(self, x: np.ndarray) -> np.ndarray:
        """Flattened NCHW tensors -> [n, 2 * N_FILTERS] (max pool, then mean pool), as ONNX computes."""
        out = []
        for i in range(0, len(x), 500):
            xi = x[i:i + 500].reshape(-1, 3, INPUT_SIZE, INPUT_SIZE)
            win = np.lib.stride_tricks.sliding_window_view(xi, (KERNEL, KERNEL), axis=(2, 3))
            c = np.einsum("ncxyij,fcij->nfxy", win, self.conv_w, optimize=True)
            c = np.maximum(c + self.conv_b[None, :, None, None], 0)
            out.append(np.concatenate([c.max(axis=(2, 3)), c.mean(axis=(2, 3))], axis=1))
        return np.concatenate(out).astype(np.float64)

    def fit(self, x: np.ndarray, y: np.ndarray) -> "ConvFeatureMLP":
        f = self.features(x)
        self.mu = f.mean(axis=0)
        self.sd = f.std(axis=0) + 1e-6
        self.mlp.fit((f - self.mu) / self.sd, y)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.mlp.predict_proba((self.features(x) - self.mu) / self.sd)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return (self.predict_proba(x)[:, 1] >= 0.5).astype(np.int64)

    @property
    def n_iter_(self) -> int:
        return self.mlp.n_iter_

    @property
    def best_validation_score_(self) -> float:
        return self.mlp.best_validation_score_


def make_mlp() -> MLPClassifier:
    return MLPClassifier(
        hidden_layer_sizes=(HIDDEN,), activation="relu", solver="adam", alpha=1e-3,
        batch_size=256, learning_rate_init=1e-3, max_iter=200, early_stopping=True,
        validation_fraction=0.1, n_iter_no_change=10, random_state=MODEL_SEED,
    )


# --------------------------------------------------------------------------
# ONNX


def two_logits(w2: np.ndarray, b2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sklearn's single output unit z -> logits [0, z], so softmax(logits)[1] == sigmoid(z)."""
    assert w2.shape[1] == 1, "binary MLP has one output unit"
    w2_two = np.concatenate([np.zeros_like(w2), w2], axis=1).astype(np.float32)  # [hidden, 2]
    b2_two = np.asarray([0.0, b2[0]], np.float32)
    return w2_two, b2_two


def io_info() -> tuple[list, list]:
    return (
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, INPUT_SIZE, INPUT_SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2])],
    )


def finish_model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(
        graph,
        producer_name="argus/make_camera_model.py",
        producer_version=VERSION,
        opset_imports=[helper.make_opsetid("", 13)],
    )
    model.ir_version = 8  # tract 0.23 reads IR <= 8
    model.doc_string = "Argus camera-person: 'empty' vs 'person' on synthetic camera frames (logits)."
    onnx.checker.check_model(model, full_check=True)
    return model


def build_mlp_onnx(clf: MLPClassifier) -> onnx.ModelProto:
    """image [1,3,32,32] -> Flatten -> Gemm(W1^T, b1) -> Relu -> Gemm(W2, b2) -> logits [1,2]."""
    (w1, w2), (b1, b2) = clf.coefs_, clf.intercepts_
    assert w1.shape == (3 * INPUT_SIZE * INPUT_SIZE, HIDDEN)
    w2_two, b2_two = two_logits(w2, b2)
    init = [
        # B stored as [hidden, in] with transB=1 (the usual Linear layout).
        numpy_helper.from_array(np.ascontiguousarray(w1.T, np.float32), "fc1.weight"),
        numpy_helper.from_array(b1.astype(np.float32), "fc1.bias"),
        numpy_helper.from_array(w2_two, "fc2.weight"),
        numpy_helper.from_array(b2_two, "fc2.bias"),
    ]
    nodes = [
        helper.make_node("Flatten", ["image"], ["flat"], axis=1, name="flatten"),
        helper.make_node("Gemm", ["flat", "fc1.weight", "fc1.bias"], ["fc1"], transB=1, name="fc1"),
        helper.make_node("Relu", ["fc1"], ["hidden"], name="relu"),
        helper.make_node("Gemm", ["hidden", "fc2.weight", "fc2.bias"], ["logits"], name="fc2"),
    ]
    inputs, outputs = io_info()
    graph = helper.make_graph(nodes, "camera_person_mlp", inputs, outputs, initializer=init)
    return finish_model(graph)


def build_conv_onnx(clf: ConvFeatureMLP) -> onnx.ModelProto:
    (w1, w2), (b1, b2) = clf.mlp.coefs_, clf.mlp.intercepts_
    assert w2.shape[1] == 1, "binary MLP has one output unit"
    # Fold the standardisation into the first Gemm: ((f - mu) / sd) W1 + b1.
    w1_f = (w1 / clf.sd[:, None]).astype(np.float32)
    b1_f = (b1 - (clf.mu / clf.sd) @ w1).astype(np.float32)
    w2_two, b2_two = two_logits(w2, b2)
    init = [
        numpy_helper.from_array(clf.conv_w, "conv.weight"),
        numpy_helper.from_array(clf.conv_b, "conv.bias"),
        numpy_helper.from_array(w1_f, "fc1.weight"),
        numpy_helper.from_array(b1_f, "fc1.bias"),
        numpy_helper.from_array(w2_two, "fc2.weight"),
        numpy_helper.from_array(b2_two, "fc2.bias"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "conv.weight", "conv.bias"], ["conv"],
                         kernel_shape=[KERNEL, KERNEL], name="conv"),
        helper.make_node("Relu", ["conv"], ["conv_relu"], name="conv_relu"),
        helper.make_node("GlobalMaxPool", ["conv_relu"], ["gmax"], name="gmax"),
        helper.make_node("GlobalAveragePool", ["conv_relu"], ["gavg"], name="gavg"),
        helper.make_node("Concat", ["gmax", "gavg"], ["pooled"], axis=1, name="concat"),
        helper.make_node("Flatten", ["pooled"], ["features"], axis=1, name="flatten"),
        helper.make_node("Gemm", ["features", "fc1.weight", "fc1.bias"], ["fc1"], name="fc1"),
        helper.make_node("Relu", ["fc1"], ["hidden"], name="relu"),
        helper.make_node("Gemm", ["hidden", "fc2.weight", "fc2.bias"], ["logits"], name="fc2"),
    ]
    inputs, outputs = io_info()
    graph = helper.make_graph(nodes, "camera_person_cnn", inputs, outputs, initializer=init)
    return finish_model(graph)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def ort_person_probs(session: ort.InferenceSession, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    logits = np.stack([
        session.run(["logits"], {"image": v.reshape(1, 3, INPUT_SIZE, INPUT_SIZE)})[0][0]
        for v in x
    ])
    return softmax(logits.astype(np.float64))[:, 1], logits


# --------------------------------------------------------------------------
# Outputs


ARCH_TEXT = {
    "mlp": {
        "description": "Person vs empty on Argus synthetic security-camera frames (32x32 RGB MLP, logits)",
        "graph": f"Flatten → Gemm(3072→{HIDDEN}) → Relu → Gemm({HIDDEN}→2)",
        "training": (
            "trains a scikit-learn `MLPClassifier(hidden_layer_sizes=({hidden},), activation=\"relu\", "
            "solver=\"adam\", alpha=1e-3, batch_size=256, early_stopping=True, random_state={seed})` "
            "on the flattened tensors"
        ),
    },
    "conv": {
        "description": "Person vs empty on Argus synthetic security-camera frames "
                       "(32x32 RGB, random-conv features + MLP, logits)",
        "graph": f"Conv({N_FILTERS}×{KERNEL}×{KERNEL}, fixed random) → Relu → GlobalMaxPool ‖ "
                 f"GlobalAveragePool → Gemm({2 * N_FILTERS}→{HIDDEN}) → Relu → Gemm({HIDDEN}→2)",
        "training": (
            f"computes random convolutional features ({N_FILTERS} fixed {KERNEL}×{KERNEL} filters drawn "
            f"with seed {FILTER_SEED}, ReLU, global max and mean pooling), standardises them, and "
            "trains a scikit-learn `MLPClassifier(hidden_layer_sizes=({hidden},), activation=\"relu\", "
            "solver=\"adam\", alpha=1e-3, batch_size=256, early_stopping=True, random_state={seed})` on them"
        ),
    },
}


def manifest_text(arch: str, sha256: str, metrics: dict) -> str:
    def floats(values: list[float]) -> str:
        return "[" + ", ".join(repr(float(v)) for v in values) + "]"

    labels = "[" + ", ".join(f'"{label}"' for label in LABELS) + "]"
    return f"""schema = "argus.bundle/v2"
name = "{NAME}"
version = "{VERSION}"
task = "classify"
description = "{ARCH_TEXT[arch]["description"]}"

[model]
file = "model.onnx"
sha256 = "{sha256}"

[input]
name = "image"
shape = [1, 3, {INPUT_SIZE}, {INPUT_SIZE}]
layout = "nchw"
color = "rgb"

[preprocess]
resize = "stretch"
filter = "triangle"
scale = {SCALE!r}
mean = {floats(MEAN)}
std = {floats(STD)}

[output]
name = "logits"
kind = "logits"
labels = {labels}

[decision]
positive = "person"
threshold = 0.5

[training]
script = "models/make_camera_model.py"
train_seed = {TRAIN_SEED}
test_seed = {TEST_SEED}
n_train = {N_TRAIN}
n_test = {N_TEST}
accuracy = {metrics["accuracy"]}
precision = {metrics["precision"]}
recall = {metrics["recall"]}
f1 = {metrics["f1"]}
"""


def readme_text(arch: str, sha256: str, size: int, metrics: dict, extra: dict) -> str:
    text = ARCH_TEXT[arch]
    parts = ", ".join(f"{n} at {w}×{h}" for n, w, h in TRAIN_PARTS)
    training = text["training"].format(hidden=HIDDEN, seed=MODEL_SEED)
    flag = "" if arch == "mlp" else f" --arch {arch}"
    return f"""# camera-person

Binary image classifier for Argus: does a synthetic security-camera frame
contain a **person** (class 1) or is it **empty** (class 0)?

It is trained only on the frames of Argus's own deterministic scene generator
(`crates/producer/src/scene.rs`, the source behind `argus produce synthetic`),
so alerts raised by workers running it are meaningful and end-to-end tests know
the ground truth (`argus_producer::scene::has_person(seed, camera, seq)`).
It is not a general-purpose person detector, and it must be retrained whenever
the scene generator's look changes (`scene::tests::pixels_are_pinned` guards that).

## Model

| | |
|---|---|
| file | `model.onnx` ({size} bytes, sha256 `{sha256}`) |
| opset / IR | 13 / 8 (readable by tract 0.23) |
| input | `image`, float32 `[1, 3, 32, 32]`, NCHW, RGB |
| output | `logits`, float32 `[1, 2]`: `[0, z]`; `softmax(logits)[1] = sigmoid(z) = P(person)` |
| graph | {text["graph"]} |

Preprocessing (see `manifest.toml`): decode the JPEG to RGB, stretch-resize to
32×32 with a triangle (bilinear, antialiased) filter, `x = u8 / 255`, then
`(x - 0.5) / 0.25` per channel.

## Training

`models/make_camera_model.py{flag}` renders {N_TRAIN} training frames with seed
{TRAIN_SEED} ({parts}; JPEG quality 85; every frame from its own camera, so every
one has a fresh background) and {N_TEST} test frames with seed {TEST_SEED}
({N_TEST} cameras never seen in training, at {WIDTH}×{HEIGHT} like the producer's
default, and the same scenes again at {SMALL_WIDTH}×{SMALL_HEIGHT}). It preprocesses
them with Pillow exactly as above, {training} (plus left-right mirrored copies of
the training frames), stopping after {extra["epochs"]} epochs. The ONNX graph is
written by hand with `onnx.helper`, checked with `onnx.checker`, and verified
against scikit-learn with onnxruntime (max |Δ P(person)| = {extra["max_abs_diff"]:.2e}
over the test set).

Why so many frames: a one-hidden-layer MLP on raw pixels has no translation
invariance, so it must see people at every position over many backgrounds. With
6000 frames from 300 cameras (and an earlier, busier scene design) it reached only
0.57 test accuracy: it memorised the backgrounds. One camera per frame and {N_TRAIN}
frames bring it to the accuracy below.

## Metrics (test seed, unseen cameras, class "person" positive, threshold 0.5)

| metric | value |
|---|---|
| accuracy | {metrics["accuracy"]} |
| precision | {metrics["precision"]} |
| recall | {metrics["recall"]} |
| F1 | {metrics["f1"]} |
| test frames (person / empty) | {extra["test_pos"]} / {N_TEST - extra["test_pos"]} |
| train accuracy | {extra["train_accuracy"]} |
| accuracy, same test scenes at {SMALL_WIDTH}×{SMALL_HEIGHT} | {extra["small_accuracy"]} |
| accuracy, {STREAM_CAMERAS}-camera stream (seed {STREAM_SEED}, {STREAM_FRAMES} frames at {SMALL_WIDTH}×{SMALL_HEIGHT}), per camera | {extra["stream_accuracy"]} ({", ".join(str(a) for a in extra["stream_per_camera"])}) |

## Fixtures

`fixtures/` holds {2 * FIXTURE_PER_CLASS} test-seed frames rendered at
{SMALL_WIDTH}×{SMALL_HEIGHT} (JPEG q85) and `reference.json` with, for each, the
ground truth and the onnxruntime `P(person)` computed from the
Pillow-preprocessed tensor (plus the logits, the tensor's per-channel means and
first pixel, to debug preprocessing). Rust implementations of the preprocessing
should agree within ~{FIXTURE_TOLERANCE} (resize implementations differ slightly).
Only frames the model gets right with some margin are chosen.

## Regenerate

```sh
pip install -r models/requirements.txt
python3 models/make_camera_model.py{flag}
```

Takes ~6 minutes on 2 cores and ~{MEMORY_GB} GB of RAM. Deterministic: same seeds, same
data, same weights on the same platform (the sha256 in `manifest.toml` is
recomputed on every run; other BLAS builds may differ in the last bits).
"""


def write_fixtures(small_dir: Path, x: np.ndarray, y: np.ndarray, rows: list[dict],
                   probs: np.ndarray, logits: np.ndarray, clf) -> None:
    if FIXTURES.exists():
        shutil.rmtree(FIXTURES)
    FIXTURES.mkdir(parents=True)
    picked: dict[int, list[int]] = {0: [], 1: []}
    for i, r in enumerate(rows):
        label = r["person"]
        confident_and_right = (probs[i] >= 0.8) if label else (probs[i] <= 0.2)
        if confident_and_right and len(picked[label]) < FIXTURE_PER_CLASS:
            picked[label].append(i)
    chosen = sorted(picked[0] + picked[1])
    frames = []
    for i in chosen:
        r = rows[i]
        shutil.copyfile(small_dir / r["file"], FIXTURES / r["file"])
        t = x[i].reshape(3, INPUT_SIZE, INPUT_SIZE)
        frames.append({
            "file": r["file"],
            "camera": r["camera"],
            "seq": r["seq"],
            "person": bool(r["person"]),
            "p_person": round(float(probs[i]), 6),
            "logits": [round(float(v), 6) for v in logits[i]],
            "sklearn_p_person": round(float(clf.predict_proba(x[i:i + 1])[0, 1]), 6),
            "input_channel_mean": [round(float(v), 6) for v in t.mean(axis=(1, 2))],
            "input_first_pixel": [round(float(v), 6) for v in t[:, 0, 0]],
        })
    reference = {
        "model": NAME,
        "version": VERSION,
        "seed": TEST_SEED,
        "cameras": TEST_CAMERAS,
        "width": SMALL_WIDTH,
        "height": SMALL_HEIGHT,
        "jpeg_quality": 85,
        "tolerance": FIXTURE_TOLERANCE,
        "preprocess": "Pillow: convert('RGB').resize((32, 32), Image.BILINEAR); "
                      "x = u8 * (1/255); (x - 0.5) / 0.25; NCHW float32",
        "selection": f"first {FIXTURE_PER_CLASS} frames per class (in dump order) that the "
                     "model classifies correctly with P >= 0.8 / P <= 0.2",
        "frames": frames,
    }
    (FIXTURES / "reference.json").write_text(json.dumps(reference, indent=2) + "\n")
    log(f"fixtures: {len(frames)} frames")


def metrics_of(y: np.ndarray, p: np.ndarray) -> dict:
    pred = (p >= 0.5).astype(int)
    return {
        "accuracy": round(float(accuracy_score(y, pred)), 4),
        "precision": round(float(precision_score(y, pred, zero_division=0)), 4),
        "recall": round(float(recall_score(y, pred, zero_division=0)), 4),
        "f1": round(float(f1_score(y, pred, zero_division=0)), 4),
    }


# --------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", choices=sorted(ARCH_TEXT), default="mlp",
                        help="mlp: plain MLP on pixels (default); conv: random-conv features + MLP head")
    parser.add_argument("--keep", type=Path, help="render frames into this directory and keep them")
    args = parser.parse_args()

    tmp_ctx = tempfile.TemporaryDirectory(prefix="argus-camera-model-")
    tmp = args.keep if args.keep else Path(tmp_ctx.name)
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.time()
        train_dirs = []
        jobs = []
        first_camera = 0
        for count, w, h in TRAIN_PARTS:
            d = tmp / f"train_{w}x{h}"
            train_dirs.append(d)
            jobs.append((d, count, TRAIN_SEED, count, w, h, first_camera))
            first_camera += count
        test_dir = tmp / f"test_{WIDTH}x{HEIGHT}"
        small_dir = tmp / f"test_{SMALL_WIDTH}x{SMALL_HEIGHT}"
        stream_dir = tmp / "stream"
        jobs += [
            (test_dir, N_TEST, TEST_SEED, TEST_CAMERAS, WIDTH, HEIGHT),
            (small_dir, N_TEST, TEST_SEED, TEST_CAMERAS, SMALL_WIDTH, SMALL_HEIGHT),
            (stream_dir, STREAM_FRAMES, STREAM_SEED, STREAM_CAMERAS, SMALL_WIDTH, SMALL_HEIGHT),
        ]
        dump_scenes(*jobs)
        loaded = [load_set(d) for d in train_dirs]
        x_train = np.concatenate([x for x, _, _ in loaded])
        y_train = np.concatenate([y for _, y, _ in loaded])
        del loaded
        x_test, y_test, _ = load_set(test_dir)
        x_small, y_small, small_rows = load_set(small_dir)
        x_stream, y_stream, stream_rows = load_set(stream_dir)
        log(f"loaded {len(y_train)} train ({y_train.mean():.3f} person) and "
            f"{len(y_test)} test ({y_test.mean():.3f} person) frames in {time.time() - t0:.0f}s")

        x_fit = np.concatenate([x_train, hflip(x_train)])
        y_fit = np.concatenate([y_train, y_train])
        clf = make_mlp() if args.arch == "mlp" else ConvFeatureMLP()
        t1 = time.time()
        clf.fit(x_fit, y_fit)
        del x_fit, y_fit
        log(f"trained {args.arch} in {time.time() - t1:.0f}s, {clf.n_iter_} epochs, "
            f"best validation score {clf.best_validation_score_:.4f}")

        p_sklearn = clf.predict_proba(x_test)[:, 1]
        metrics = metrics_of(y_test, p_sklearn)
        train_accuracy = round(float((clf.predict(x_train) == y_train).mean()), 4)
        del x_train
        log(f"test metrics ({WIDTH}x{HEIGHT}): {metrics}; train accuracy {train_accuracy}")
        if metrics["accuracy"] < 0.97:
            log("WARNING: test accuracy below the 0.97 target")

        model = build_mlp_onnx(clf) if args.arch == "mlp" else build_conv_onnx(clf)
        BUNDLE.mkdir(parents=True, exist_ok=True)
        model_path = BUNDLE / "model.onnx"
        model_bytes = model.SerializeToString()
        model_path.write_bytes(model_bytes)
        sha256 = hashlib.sha256(model_bytes).hexdigest()

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        session = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
        p_onnx, _ = ort_person_probs(session, x_test)
        max_abs_diff = float(np.abs(p_onnx - p_sklearn).max())
        log(f"onnxruntime vs sklearn: max |dP| = {max_abs_diff:.2e}")
        if max_abs_diff > 1e-5:
            raise SystemExit(f"ONNX model disagrees with sklearn: {max_abs_diff}")

        p_small, logits_small = ort_person_probs(session, x_small)
        small_accuracy = metrics_of(y_small, p_small)["accuracy"]
        p_stream, _ = ort_person_probs(session, x_stream)
        right = (p_stream >= 0.5) == y_stream
        cams = np.asarray([r["camera"] for r in stream_rows])
        per_camera = [round(float(right[cams == c].mean()), 4) for c in range(STREAM_CAMERAS)]
        log(f"accuracy at {SMALL_WIDTH}x{SMALL_HEIGHT}: {small_accuracy}; "
            f"stream: {right.mean():.4f} {per_camera}")
        write_fixtures(small_dir, x_small, y_small, small_rows, p_small, logits_small, clf)

        extra = {
            "epochs": clf.n_iter_,
            "max_abs_diff": max_abs_diff,
            "train_accuracy": train_accuracy,
            "test_pos": int(y_test.sum()),
            "small_accuracy": small_accuracy,
            "stream_accuracy": round(float(right.mean()), 4),
            "stream_per_camera": per_camera,
        }
        manifest = manifest_text(args.arch, sha256, metrics)
        parsed = tomllib.loads(manifest)
        assert parsed["model"]["sha256"] == sha256 and parsed["preprocess"]["scale"] == SCALE
        (BUNDLE / "manifest.toml").write_text(manifest)
        (BUNDLE / "README.md").write_text(readme_text(args.arch, sha256, len(model_bytes), metrics, extra))
        log(f"wrote {model_path} ({len(model_bytes)} bytes, sha256 {sha256}) "
            f"in {time.time() - t0:.0f}s total")
    finally:
        tmp_ctx.cleanup()


if __name__ == "__main__":
    main()
