#!/usr/bin/env python3
"""Independent checks of the ONNX built by make_person_detector.py.

1. Anchors two ways: the numpy generator in make_person_detector.py vs. evaluating the TF graph's own
   const-only `MultipleGridAnchorGenerator` subgraph (-> `Concatenate/concat`) with a small numpy
   interpreter of TF ops (no TensorFlow).
2. Whole network: the same numpy interpreter runs the *original* TF graph (NHWC, unfolded BatchNorm,
   TF's own Decode / Sigmoid nodes) from `Preprocessor/sub` to `Postprocessor/Reshape_2` (decoded boxes)
   and `Postprocessor/convert_scores`, and this is compared with onnxruntime on the same input.
3. Images: runs onnxruntime on the given images (default: frame 100 of vtest.avi if extracted, and
   scikit-image's astronaut.png), prints the top boxes after a simple NMS (score > 0.5, IoU 0.6) and
   the time per frame, and writes an annotated PNG next to each image (in --outdir).

Usage: python check_person_detector.py MODEL.onnx [--cache DIR] [--outdir DIR] [IMAGE ...]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_person_detector as mpd  # noqa: E402


# --------------------------------------------------------------------------------------------
# A small numpy interpreter of the TF ops used by this graph (inference only, batch 1)
# --------------------------------------------------------------------------------------------
def _same_pad(x, kh, kw, s):
    _, h, w, _ = x.shape
    oh, pt, pb = mpd.same_pads(h, kh, s)
    ow, pl, pr = mpd.same_pads(w, kw, s)
    return np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0))), oh, ow


def tf_conv2d(x, w, s):
    kh, kw, ci, co = w.shape
    xp, oh, ow = _same_pad(x, kh, kw, s)
    out = np.zeros((x.shape[0], oh, ow, co), np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s, :]
            out += patch @ w[i, j]
    return out


def tf_depthwise(x, w, s):
    kh, kw, ci, m = w.shape
    xp, oh, ow = _same_pad(x, kh, kw, s)
    out = np.zeros((x.shape[0], oh, ow, ci, m), np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s, :]
            out += patch[..., None] * w[i, j]
    return out.reshape(x.shape[0], oh, ow, ci * m)


def tf_strided_slice(x, begin, end, strides, attr):
    bm, em, sm = attr["begin_mask"].i, attr["end_mask"].i, attr["shrink_axis_mask"].i
    assert attr["ellipsis_mask"].i == 0 and attr["new_axis_mask"].i == 0
    idx = []
    for d, (b, e, st) in enumerate(zip(begin, end, strides)):
        if sm >> d & 1:
            idx.append(int(b))
            continue
        idx.append(slice(None if bm >> d & 1 else int(b), None if em >> d & 1 else int(e), int(st)))
    return np.asarray(x[tuple(idx)])


class TFInterp:
    def __init__(self, tg: mpd.TFGraph, feed: dict[str, np.ndarray] | None = None):
        self.tg = tg
        self.cache: dict[str, list] = {}
        for k, v in (feed or {}).items():
            self.cache[k] = [v]

    def get(self, ref: str):
        name, _, port = ref.partition(":")
        return self.eval(name)[int(port or 0)]

    def eval(self, name: str):
        if name in self.cache:
            return self.cache[name]
        stack = [name]
        while stack:  # iterative DFS (the graph is deep)
            top = stack[-1]
            if top in self.cache:
                stack.pop()
                continue
            n = self.tg.nodes[top]
            deps = [i.split(":")[0] for i in n.input if not i.startswith("^")]
            missing = [d for d in deps if d not in self.cache]
            if missing:
                stack.extend(missing)
                continue
            self.cache[top] = self.run(n)
            stack.pop()
        return self.cache[name]

    def run(self, n):
        op, a = n.op, n.attr
        ins = [self.get(i) for i in n.input if not i.startswith("^")]
        f = np.float64
        if op == "Const":
            v = mpd.const_value(n)
            return [v.astype(f) if v.dtype == np.float32 else v]
        if op == "Identity":
            return [ins[0]]
        if op == "Squeeze":
            dims = list(a["squeeze_dims"].list.i)
            return [np.squeeze(ins[0], axis=tuple(dims) if dims else None)]
        if op == "Cast":
            dst = a["DstT"].type
            return [ins[0].astype(f if dst == 1 else mpd.TF_DTYPES[dst])]
        binops = {"RealDiv": np.divide, "Mul": np.multiply, "Add": np.add, "Sub": np.subtract,
                  "Minimum": np.minimum, "Maximum": np.maximum, "Equal": np.equal}
        if op in binops:
            return [binops[op](ins[0], ins[1])]
        if op == "Sqrt":
            return [np.sqrt(ins[0])]
        if op == "Exp":
            return [np.exp(ins[0])]
        if op == "Sigmoid":
            return [1.0 / (1.0 + np.exp(-ins[0]))]
        if op == "Relu6":
            return [np.clip(ins[0], 0.0, 6.0)]
        if op == "Range":
            return [np.arange(ins[0], ins[1], ins[2]).astype(np.int32)]
        if op == "Reshape":
            return [ins[0].reshape([int(v) for v in np.ravel(ins[1])])]
        if op == "Tile":
            return [np.tile(ins[0], [int(v) for v in ins[1]])]
        if op == "Fill":
            return [np.full([int(v) for v in ins[0]], ins[1])]
        if op == "ExpandDims":
            return [np.expand_dims(ins[0], int(ins[1]))]
        if op == "Pack":
            return [np.stack(ins, axis=a["axis"].i)]
        if op == "Unpack":
            return list(np.moveaxis(ins[0], a["axis"].i, 0))
        if op == "ConcatV2":
            return [np.concatenate(ins[:-1], axis=int(ins[-1]))]
        if op == "Shape":
            return [np.array(ins[0].shape, np.int32)]
        if op == "Size":
            return [np.int32(ins[0].size)]
        if op == "Rank":
            return [np.int32(ins[0].ndim)]
        if op == "All":
            return [np.all(ins[0])]
        if op == "Assert":
            assert bool(ins[0]), n.name
            return [None]
        if op == "Transpose":
            return [np.transpose(ins[0], [int(v) for v in ins[1]])]
        if op == "Slice":
            begin, size = [int(v) for v in ins[1]], [int(v) for v in ins[2]]
            idx = tuple(slice(b, None if s == -1 else b + s) for b, s in zip(begin, size))
            return [ins[0][idx]]
        if op == "StridedSlice":
            return [tf_strided_slice(ins[0], ins[1], ins[2], ins[3], a)]
        if op == "Conv2D":
            return [tf_conv2d(ins[0], ins[1], a["strides"].list.i[1])]
        if op == "DepthwiseConv2dNative":
            return [tf_depthwise(ins[0], ins[1], a["strides"].list.i[1])]
        if op == "FusedBatchNorm":
            x, g, b, m, v = ins
            return [(x - m) / np.sqrt(v + a["epsilon"].f) * g + b, None, None, None, None]
        if op == "BiasAdd":
            return [ins[0] + ins[1]]
        raise NotImplementedError(f"{op} ({n.name})")


# --------------------------------------------------------------------------------------------
def preprocess(path: Path, filt=Image.BILINEAR) -> np.ndarray:
    """RGB, resized (stretched) to 300x300, x/127.5 - 1, NCHW float32."""
    img = Image.open(path).convert("RGB").resize((mpd.IMAGE_SIZE, mpd.IMAGE_SIZE), filt)
    x = np.asarray(img, np.float32) / 127.5 - 1.0
    return x.transpose(2, 0, 1)[None]


def iou(b, bs):
    y0 = np.maximum(b[0], bs[:, 0]); x0 = np.maximum(b[1], bs[:, 1])
    y1 = np.minimum(b[2], bs[:, 2]); x1 = np.minimum(b[3], bs[:, 3])
    inter = np.clip(y1 - y0, 0, None) * np.clip(x1 - x0, 0, None)
    area = lambda z: (z[..., 2] - z[..., 0]) * (z[..., 3] - z[..., 1])  # noqa: E731
    return inter / np.maximum(area(b) + area(bs) - inter, 1e-12)


def nms(boxes, scores, score_thr=0.5, iou_thr=0.6, max_out=100):
    order = np.argsort(-scores, kind="stable")
    order = order[scores[order] > score_thr]
    keep = []
    while order.size and len(keep) < max_out:
        i = order[0]
        keep.append(i)
        order = order[1:][iou(boxes[i], boxes[order[1:]]) <= iou_thr]
    return keep


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=Path)
    ap.add_argument("images", nargs="*", type=Path)
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "argus-person-detector")
    ap.add_argument("--outdir", type=Path, default=Path("/tmp/det-out"))
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_intermixed_args(argv)
    args.outdir.mkdir(parents=True, exist_ok=True)

    tg = mpd.TFGraph(mpd.load_graph(mpd.fetch_wheel(args.cache)))

    # 1. anchors two ways
    ours = mpd.make_anchors().astype(np.float64)
    tf_anchors = TFInterp(tg).eval("Concatenate/concat")[0]
    d = np.abs(ours - tf_anchors).max()
    print(f"anchors: numpy generator {ours.shape} vs TF subgraph {tf_anchors.shape}: max |diff| = {d:.2e}")
    assert tf_anchors.shape == (mpd.NUM_ANCHORS, 4) and d < 1e-6

    sess = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])

    images = list(args.images)
    if not images:
        import skimage
        images = [p for p in [Path("/tmp/det-out/vtest_f100.png"),
                              Path(skimage.__file__).parent / "data" / "astronaut.png"] if p.exists()]

    # 2. whole network vs. the TF graph interpreted in numpy (first image)
    x = preprocess(images[0])
    t0 = time.perf_counter()
    it = TFInterp(tg, {mpd.INPUT_TENSOR: x.transpose(0, 2, 3, 1).astype(np.float64)})
    tf_boxes = np.clip(it.eval("Postprocessor/Reshape_2")[0][0], 0.0, 1.0)
    tf_scores = it.eval("Postprocessor/convert_scores")[0][0][:, mpd.PERSON]
    t_ref = time.perf_counter() - t0
    boxes, scores = sess.run(["boxes", "scores"], {"image": x})
    db, ds = np.abs(boxes - tf_boxes).max(), np.abs(scores - tf_scores).max()
    top = np.argsort(-tf_scores)[:20]
    print(f"onnxruntime vs numpy-interpreted TF graph on {images[0].name} ({t_ref:.1f}s reference): "
          f"max |dbox| = {db:.2e}, max |dscore| = {ds:.2e}, top-20 anchors identical: "
          f"{bool(np.array_equal(top, np.argsort(-scores)[:20]))}")
    assert db < 1e-3 and ds < 1e-3

    # 3. detections + timing
    for path in images:
        img = Image.open(path).convert("RGB")
        W, H = img.size
        x = preprocess(path)
        for _ in range(3):
            sess.run(None, {"image": x})
        ts = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            boxes, scores = sess.run(["boxes", "scores"], {"image": x})
            ts.append(time.perf_counter() - t0)
        keep = nms(boxes, scores)
        print(f"\n{path} ({W}x{H}): onnxruntime {np.median(ts) * 1e3:.1f} ms/frame median "
              f"(min {min(ts) * 1e3:.1f}, {args.runs} runs); {len(keep)} boxes with score > 0.5 after "
              f"NMS IoU 0.6; max score {scores.max():.3f}")
        draw = ImageDraw.Draw(img)
        for i in keep:
            y0, x0, y1, x1 = boxes[i]
            px = (round(x0 * W), round(y0 * H), round(x1 * W), round(y1 * H))
            print(f"  score {scores[i]:.3f}  box(ymin,xmin,ymax,xmax) "
                  f"{y0:.3f} {x0:.3f} {y1:.3f} {x1:.3f}  pixels x0,y0,x1,y1 = {px}")
            draw.rectangle(px, outline=(255, 0, 0), width=2)
            draw.text((px[0] + 2, px[1] + 2), f"{scores[i]:.2f}", fill=(255, 0, 0))
        out = args.outdir / f"{path.stem}_detections.png"
        img.save(out)
        print(f"  annotated: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
