#!/usr/bin/env python3
"""A MobileNetV2-size bundle for the side-by-side bench (issue 5, case a).

MobileNetV2 (width 1.0, 224x224, 1000 classes; Sandler et al. 2018) built layer by layer
with onnx.helper — batch-norm folded into the convolutions as exported models have it —
with seeded He-initialised random weights: the cost of every layer is the real network's
(300 MMACs, 3.5M parameters), the classes are meaningless. No download: PyPI's `onnx` and
`numpy` only. The batch dimension is symbolic so both engines can batch.

    python3 bench/make_mobilenet.py OUT_DIR      # writes OUT_DIR/{model.onnx,manifest.toml}
"""
import hashlib
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SEED = 20261129
# (expansion t, output channels c, repeats n, first stride s) — the paper's table 2.
BLOCKS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
          (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def build():
    rng = np.random.default_rng(SEED)
    nodes, inits = [], []
    counter = [0]

    def name(prefix):
        counter[0] += 1
        return f"{prefix}{counter[0]}"

    def const(arr, prefix):
        n = name(prefix)
        inits.append(numpy_helper.from_array(arr.astype(np.float32), n))
        return n

    zero = const(np.array(0.0), "c")
    six = const(np.array(6.0), "c")

    def conv(x, cin, cout, k, stride, groups=1, relu6=True):
        fan_in = (cin // groups) * k * k
        w = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(cout, cin // groups, k, k))
        b = rng.normal(0.0, 0.01, size=(cout,))
        y = name("conv")
        nodes.append(helper.make_node(
            "Conv", [x, const(w, "w"), const(b, "b")], [y],
            kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4, group=groups))
        if relu6:
            z = name("relu6_")
            nodes.append(helper.make_node("Clip", [y, zero, six], [z]))
            return z
        return y

    x = conv("image", 3, 32, 3, 2)
    cin = 32
    for t, c, n, s in BLOCKS:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = cin * t
            h = conv(x, cin, hidden, 1, 1) if t != 1 else x
            h = conv(h, hidden, hidden, 3, stride, groups=hidden)
            h = conv(h, hidden, c, 1, 1, relu6=False)
            if stride == 1 and cin == c:
                y = name("add")
                nodes.append(helper.make_node("Add", [x, h], [y]))
                h = y
            x, cin = h, c
    x = conv(x, cin, 1280, 1, 1)
    pooled = name("pool")
    nodes.append(helper.make_node("GlobalAveragePool", [x], [pooled]))
    flat = name("flat")
    nodes.append(helper.make_node("Flatten", [pooled], [flat], axis=1))
    w = rng.normal(0.0, np.sqrt(1.0 / 1280), size=(1000, 1280))
    b = np.zeros(1000)
    nodes.append(helper.make_node("Gemm", [flat, const(w, "fc_w"), const(b, "fc_b")],
                                  ["logits"], transB=1))
    graph = helper.make_graph(
        nodes, "mobilenetv2_random",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="argus bench/make_mobilenet.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    data = build().SerializeToString()
    with open(os.path.join(out, "model.onnx"), "wb") as f:
        f.write(data)
    labels = ", ".join(f'"class_{i}"' for i in range(1000))
    manifest = f'''schema = "argus.bundle/v1"
name = "mobilenetv2-random"
version = "1"
task = "classify"
description = "MobileNetV2 (224x224, 1000 classes) with seeded random weights: real cost, meaningless classes (bench/make_mobilenet.py)"

[model]
file = "model.onnx"
sha256 = "{hashlib.sha256(data).hexdigest()}"

[input]
name = "image"
shape = [1, 3, 224, 224]
layout = "nchw"
color = "rgb"

[preprocess]
resize = "stretch"
filter = "triangle"
scale = 0.00392156862745098
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]

[output]
name = "logits"
kind = "logits"
labels = [{labels}]
'''
    with open(os.path.join(out, "manifest.toml"), "w") as f:
        f.write(manifest)
    print(f"{out}: model.onnx {len(data) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
