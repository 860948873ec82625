#!/usr/bin/env python3
"""A tiny, deterministic YOLOv8-head-style ONNX test model (no trained weights: our own
construction, seeded integer weights) and its reference detections.

Graph (opset 13, IR 8 so tract 0.23 reads it), input `images` f32 [1, 3, 64, 64] (RGB, x/255):
  Conv 3->8, 3x3, stride 2, pad 1 -> Relu -> AveragePool 4x4 stride 4      [1, 8, 8, 8]  (8x8 grid)
  minus its GlobalAveragePool (per channel: each frame's cells are scored against that frame's mean,
  so every frame, dim or bright, has some cells well above and some well below the threshold)
  three 1x1 Conv heads (8->2 each) on that centred feature map:
    xy  = (Sigmoid(head_xy) + grid) * 8        box centre, inside its cell (stride 8), input pixels
    wh  = Sigmoid(head_wh) * 32                box width / height, 0..32 input pixels
    cls = Sigmoid(head_cls)                    2 class scores
  Concat(xy, wh, cls) on channels -> [1, 6, 8, 8] -> Reshape -> output `output0` [1, 4 + 2, 64]
so candidate i = gy * 8 + gx, rows cx, cy, w, h, score(class 0), score(class 1): the layout
`decode_yolo` in crates/model/src/detection.rs reads. The weights are integers / 16 from
numpy's PCG64 with a fixed seed (class biases shifted by -3), stored as float32: the bytes are the
same on every run.

Usage:
  python make_tiny_yolo.py OUT.onnx                                  # the model
  python make_tiny_yolo.py OUT.onnx --make-frames DIR [--vtest AVI]  # + the fixture PNGs (needs ffmpeg)
  python make_tiny_yolo.py OUT.onnx --reference OUT.json FRAME.png... # + reference detections
The reference uses reference_boxes.py (onnxruntime, float32 decode_yolo + NMS + letterbox mirror)
with THRESHOLD / IOU_THRESHOLD below, preprocessing scale 1/255, mean 0, std 1, pad 114, and
cross-checks onnxruntime against a numpy evaluation of the same graph.
"""
from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reference_boxes as rb  # noqa: E402

VERSION = "1"
SEED = 20240680
FRAME_SEED = 20240618  # the synthetic fixture frames (independent of the model's seed)
SIZE = 64
GRID = 8
STRIDE = SIZE // GRID
FEAT = 8
CLASSES = 2
N = GRID * GRID
MAX_WH = 32.0
CLS_BIAS = 3.0
# Reference decoding (and the test manifest's [detection]): chosen so that every fixture frame
# gives 2-10 boxes and no score is within 1e-3 of the threshold (see FINDINGS.md).
THRESHOLD = 0.7
IOU_THRESHOLD = 0.3
MAX_DETECTIONS = 100
SCALE, MEAN, STD, PAD = 0.00392156862745098, [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [114, 114, 114]

VTEST = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"


def weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED)

    def q(shape, lo=-8, hi=8):
        return (rng.integers(lo, hi + 1, size=shape) / 16.0).astype(np.float32)

    w = {
        "conv1/W": q((FEAT, 3, 3, 3)),
        "conv1/B": q((FEAT,)),
        "head_xy/W": q((2, FEAT, 1, 1)),
        "head_xy/B": q((2,)),
        "head_wh/W": q((2, FEAT, 1, 1), -16, 16),
        "head_wh/B": q((2,)),
        # steep class logits (weights up to +-8) and a bias of -3: a few cells per frame score
        # near 1, most near 0, few in between (so thresholds are not borderline)
        "head_cls/W": q((CLASSES, FEAT, 1, 1), -128, 128),
        "head_cls/B": q((CLASSES,)) - np.float32(CLS_BIAS),
    }
    gy, gx = np.meshgrid(np.arange(GRID), np.arange(GRID), indexing="ij")
    w["grid"] = np.stack([gx, gy])[None].astype(np.float32)  # [1, 2, 8, 8]: channel 0 x, 1 y
    w["stride"] = np.array(STRIDE, np.float32)
    w["max_wh"] = np.array(MAX_WH, np.float32)
    w["out_shape"] = np.array([1, 4 + CLASSES, N], np.int64)
    return w


def build() -> onnx.ModelProto:
    w = weights()
    mk = helper.make_node
    nodes = [
        mk("Conv", ["images", "conv1/W", "conv1/B"], ["conv1"], name="conv1", kernel_shape=[3, 3],
           strides=[2, 2], pads=[1, 1, 1, 1]),
        mk("Relu", ["conv1"], ["relu1"], name="relu1"),
        mk("AveragePool", ["relu1"], ["feat"], name="feat", kernel_shape=[4, 4], strides=[4, 4]),
        mk("GlobalAveragePool", ["feat"], ["feat_mean"], name="feat_mean"),
        mk("Sub", ["feat", "feat_mean"], ["feat_c"], name="feat_c"),
    ]
    for h in ("head_xy", "head_wh", "head_cls"):
        nodes.append(mk("Conv", ["feat_c", f"{h}/W", f"{h}/B"], [h], name=h, kernel_shape=[1, 1]))
        nodes.append(mk("Sigmoid", [h], [f"{h}/sig"], name=f"{h}/sig"))
    nodes += [
        mk("Add", ["head_xy/sig", "grid"], ["xy_cells"], name="xy_cells"),
        mk("Mul", ["xy_cells", "stride"], ["xy"], name="xy"),
        mk("Mul", ["head_wh/sig", "max_wh"], ["wh"], name="wh"),
        mk("Concat", ["xy", "wh", "head_cls/sig"], ["head"], name="head", axis=1),
        mk("Reshape", ["head", "out_shape"], ["output0"], name="output0"),
    ]
    graph = helper.make_graph(
        nodes, "tiny_yolo_test",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + CLASSES, N])],
        initializer=[numpy_helper.from_array(v, k) for k, v in w.items()])
    model = helper.make_model(graph, producer_name="argus/make_tiny_yolo.py", producer_version=VERSION,
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # tract 0.23 reads IR <= 8
    model.doc_string = ("Argus test model: YOLOv8-style head [1, 4+2, 64] (cx, cy, w, h in input pixels, "
                        "2 sigmoid class scores) from seeded integer/16 weights; not trained.")
    onnx.checker.check_model(model, full_check=True)
    return model


def numpy_forward(x: np.ndarray) -> np.ndarray:
    """The same graph in numpy float64 (independent of onnxruntime), [1, 6, 64]."""
    w = {k: v.astype(np.float64) for k, v in weights().items()}
    xp = np.pad(x[0].astype(np.float64), ((0, 0), (1, 1), (1, 1)))
    W = w["conv1/W"]
    out = np.zeros((FEAT, SIZE // 2, SIZE // 2))
    for i in range(3):
        for j in range(3):
            patch = xp[:, i:i + SIZE:2, j:j + SIZE:2]  # [3, 32, 32]
            out += np.einsum("oc,chw->ohw", W[:, :, i, j], patch)
    out = np.maximum(out + w["conv1/B"][:, None, None], 0)
    feat = out.reshape(FEAT, GRID, 4, GRID, 4).mean(axis=(2, 4))
    feat = feat - feat.mean(axis=(1, 2), keepdims=True)
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731

    def head(h):
        return sig(np.einsum("oc,chw->ohw", w[f"{h}/W"][:, :, 0, 0], feat) + w[f"{h}/B"][:, None, None])
    xy = (head("head_xy") + w["grid"][0]) * STRIDE
    wh = head("head_wh") * MAX_WH
    return np.concatenate([xy, wh, head("head_cls")]).reshape(1, 4 + CLASSES, N)


# ----------------------------------------------------------------------------------------------
# fixture frames
# ----------------------------------------------------------------------------------------------
def vtest_frame(avi: str, n: int, tmp: Path):
    from PIL import Image
    out = tmp / f"f{n}.png"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", avi, "-vf", f"select=eq(n\\,{n})",
                    "-vsync", "0", "-vframes", "1", str(out)], check=True)
    return Image.open(out).convert("RGB")


def make_frames(outdir: Path, avi: str) -> list[Path]:
    """Seeded synthetic frames and downsized vtest.avi crops, 64x64 (one 64x48 for letterbox)."""
    from PIL import Image
    outdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(FRAME_SEED)
    written = []

    def save(img, name):
        p = outdir / name
        img.save(p)
        written.append(p)

    blocks = rng.integers(0, 256, size=(GRID, GRID, 3), dtype=np.uint8)
    save(Image.fromarray(blocks).resize((SIZE, SIZE), Image.NEAREST), "blocks.png")
    blobs = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    save(Image.fromarray(blobs).resize((SIZE, SIZE), Image.BILINEAR), "blobs.png")
    with tempfile.TemporaryDirectory() as td:
        f100 = vtest_frame(avi, 100, Path(td))
        f300 = vtest_frame(avi, 300, Path(td))
        f0 = vtest_frame(avi, 0, Path(td))
    # 768x576 frames: 256x256 crops around the walkers, then the whole frame 0 at 64x48.
    save(f100.crop((320, 96, 576, 352)).resize((SIZE, SIZE), Image.BILINEAR), "vtest-0100-crop.png")
    save(f300.crop((128, 128, 384, 384)).resize((SIZE, SIZE), Image.BILINEAR), "vtest-0300-crop.png")
    save(f0.resize((SIZE, 48), Image.BILINEAR), "vtest-0000-64x48.png")
    return written


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--make-frames", type=Path, metavar="DIR", help="write the fixture PNGs to DIR")
    ap.add_argument("--vtest", default=VTEST)
    ap.add_argument("--reference", type=Path, metavar="OUT.json")
    ap.add_argument("frames", type=Path, nargs="*")
    a = ap.parse_intermixed_args(argv)
    model = build()
    data = model.SerializeToString()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_bytes(data)
    print(f"wrote {a.out} ({len(data)} bytes, sha256 {sha256(data)})")
    if a.make_frames:
        for p in make_frames(a.make_frames, a.vtest):
            print(f"wrote {p} ({p.stat().st_size} bytes)")
    if a.reference:
        if not a.frames:
            ap.error("--reference needs FRAME arguments")
        sess = rb.session(a.out)
        table, _ = rb.normalise_table(SCALE, MEAN, STD)
        worst = 0.0
        for f in a.frames:
            fit, canvas = rb.fit_frame(rb.load_rgb(f), (SIZE, SIZE), PAD)
            x = rb.to_tensor(canvas, table)
            (y,) = sess.run(None, {"images": x})
            worst = max(worst, float(np.abs(y - numpy_forward(x)).max()))
        print(f"onnxruntime vs numpy float64 forward: max |diff| {worst:.3g}")
        assert worst < 1e-4, worst
        result = rb.run_frames(a.out, a.frames, fmt="yolo", classes=CLASSES,
                               score_threshold=THRESHOLD, iou_threshold=IOU_THRESHOLD,
                               max_detections=MAX_DETECTIONS, scale=SCALE, mean=MEAN, std=STD, pad=PAD)
        rb.write_json(result, a.reference)
        print(rb.summary(result))
        print(f"wrote {a.reference}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
