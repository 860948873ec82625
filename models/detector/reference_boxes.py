#!/usr/bin/env python3
"""Reference detections for the Rust detection path: onnxruntime + a float32 numpy mirror of
`crates/model/src/detection.rs` (decode, thresholds, class-aware NMS, box -> frame pixels) and
of the tensor step of `crates/model/src/preprocess.rs`.

Usage:
  python reference_boxes.py MODEL.onnx FRAME.png... --out reference.json
         [--format ssd|yolo] [--score-threshold 0.5] [--iou-threshold 0.6] [--max-detections 100]
         [--scale 0.00392156862745098] [--mean 0.5 0.5 0.5] [--std 0.5 0.5 0.5] [--pad 114 114 114]

Defaults are the person-detector bundle's (`models/person-detector/manifest.toml`): SSD outputs
`boxes` [N, 4] + `scores` [N], scale 1/255, mean 0.5, std 0.5, threshold 0.5, IoU 0.6, 100 boxes.

What this mirrors, step by step (all arithmetic in float32 unless said otherwise):

1. Frame: the PNG is decoded to 8-bit RGB (PIL, `convert("RGB")`). No resizing is done here,
   ever: a frame whose size differs from the model input must fit in it unscaled (then it is
   letterboxed, see 2); anything else is refused, because PIL's and fast_image_resize's
   resamplers are not bit-identical. The fixtures were resized once, offline, and the PNGs are
   what both pipelines read.
2. Fit (`Fit` / `letterbox_placement` / `preprocess::letterbox`): a frame of the input's size is
   used as is and reported as "stretch" (the manifest's mode; stretch of an equal size is the
   identity). A smaller frame is "letterbox": `letterbox_placement` (f64, Rust `round()` = half
   away from zero) gives the placed size and top-left offset ((iw - w) / 2, (ih - h) / 2, integer
   division); the frame is pasted there over a canvas filled with `--pad` (default 114,114,114).
3. Tensor (`preprocess::to_tensor`): NCHW, RGB order. The pinned formula
   `((px * scale) - mean[c]) / std[c]` is computed in float32 (scale, mean, std rounded to float32
   first, as the manifest's `f32` fields are). The Rust code evaluates the algebraically equal affine
   form `px * (scale / std[c]) + (-mean[c] / std[c])` in f32; the script evaluates both for all 256
   byte values and records in the JSON whether they agree bit for bit (they do for the
   person-detector's 1/255, 0.5, 0.5: dividing by 0.5 is exact and commutes with rounding, and for
   mean 0 / std 1). The pinned form is the one fed to the model.
4. Inference: onnxruntime, CPUExecutionProvider, 1 intra-op thread, default graph optimisations.
5. Decode: `decode_ssd` (boxes [N,4] = ymin, xmin, ymax, xmax normalised; scores [N] for one class
   or [N, C]) -> `BBox::new(xmin*iw, ymin*ih, xmax*iw, ymax*ih)`; `decode_yolo` ([4 + C, N] rows
   cx, cy, w, h, class scores, input pixels) -> `BBox::new(cx - w/2, cy - h/2, cx + w/2, cy + h/2)`.
   A candidate's class is its best finite score (ties: the lower class, i.e. a strictly greater score
   is needed to move on); it is kept when `score >= threshold` (Rust skips `score < threshold`), and
   only when its four box values are finite. `BBox::new` orders the corners (min/max).
6. NMS (`nms`): order by score descending (`total_cmp`), ties by earlier candidate index; walk it,
   skip a candidate whose class already has `max_detections` kept boxes (the limit is per class, as in
   Rust; the person detector has one class, so it is also the total), drop it when its IoU with any
   already kept box of the same class is `> iou_threshold`, else keep it. IoU: `w = max(0,
   min(x2) - max(x1))`, same for h, `inter = w*h`, `union = area(kept) + area(cand) - inter` with
   `area = max(0, x2-x1) * max(0, y2-y1)`, `iou = inter / union` if `union > 0` else 0. Output in
   keep order (best first).
7. To frame pixels (`Geometry::new` + `to_frame`): scale = placed size / frame size (f32), pad = the
   placement offset; `x -> ((x - pad_x) / scale_x).clamp(0, frame_w)`, same for y, then `BBox::new`.
   For the fixtures this is the identity (stretch, frame == input) or `y - 38` (300x224 letterbox).

JSON (thresholds and preprocessing parameters as given, read them as f32 like the manifest; scores and
boxes are the exact float32 values, printed as the shortest double that reads back to them):
  {"model_sha256", "onnxruntime", "numpy", "format", "input": [w, h], "score_threshold",
   "iou_threshold", "max_detections", "preprocess": {...},
   "frames": [{"file", "png_sha256", "fit", "width", "height", "input_sha256" (the float32 tensor's
   little-endian bytes), "detections": [{"class", "score", "box": [x1, y1, x2, y2] (frame px),
   "box_input": [...] (input px)}], "candidates" (count >= threshold before NMS),
   "top5": [{"index", "class", "score"}] (best raw scores, for debugging),
   "margins": {"score": min |best-class score - threshold| over all candidates,
               "iou": min |IoU - iou_threshold| over the pairs NMS compared (null if none),
               "suppression": min score gap between a kept box and a candidate it suppressed
                              (null if none; a tie here would swap which box survives),
               "class": min best-minus-runner-up class score over the candidates >= threshold
                        (null with one class)}}]}
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

F32 = np.float32


# ----------------------------------------------------------------------------------------------
# detection.rs mirror
# ----------------------------------------------------------------------------------------------
@dataclass
class BBox:
    x1: np.float32
    y1: np.float32
    x2: np.float32
    y2: np.float32

    @staticmethod
    def new(xa, ya, xb, yb) -> "BBox":
        xa, ya, xb, yb = F32(xa), F32(ya), F32(xb), F32(yb)
        return BBox(min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb))

    def area(self) -> np.float32:
        return max(self.x2 - self.x1, F32(0)) * max(self.y2 - self.y1, F32(0))

    def iou(self, other: "BBox") -> np.float32:
        w = max(min(self.x2, other.x2) - max(self.x1, other.x1), F32(0))
        h = max(min(self.y2, other.y2) - max(self.y1, other.y1), F32(0))
        inter = w * h
        union = self.area() + other.area() - inter
        return inter / union if union > F32(0) else F32(0)

    def as_list(self) -> list[float]:
        return [float(self.x1), float(self.y1), float(self.x2), float(self.y2)]


@dataclass
class Detection:
    cls: int
    score: np.float32
    bbox: BBox
    index: int  # candidate index in the model output (not in Rust's struct; for debugging)
    gap: float | None = None  # best minus runner-up class score (for the margins)


def class_gap(scores) -> float | None:
    """Best minus runner-up finite score (None with fewer than two classes)."""
    v = sorted((float(s) for s in scores if math.isfinite(s)), reverse=True)
    return v[0] - v[1] if len(v) > 1 else None


def _best_class(scores) -> tuple[int, np.float32] | None:
    best = None
    for c, s in enumerate(scores):
        s = F32(s)
        if math.isfinite(s) and (best is None or s > best[1]):
            best = (c, s)
    return best


def decode_ssd(boxes: np.ndarray, scores: np.ndarray, input_wh: tuple[int, int],
               threshold: float) -> tuple[list[Detection], list[tuple[int, int, np.float32]]]:
    """`decode_ssd` without a `classes` output. Returns (kept candidates, all (index, class, score))."""
    boxes = np.asarray(boxes, F32).reshape(-1, 4)
    n = boxes.shape[0]
    scores = np.asarray(scores, F32).reshape(n, -1)
    iw, ih = F32(input_wh[0]), F32(input_wh[1])
    thr = F32(threshold)
    dets, every = [], []
    for i in range(n):
        best = _best_class(scores[i])
        if best is None:
            continue
        c, s = best
        every.append((i, c, s))
        if s < thr:
            continue
        b = boxes[i]
        if not all(math.isfinite(v) for v in b):
            continue
        dets.append(Detection(c, s, BBox.new(b[1] * iw, b[0] * ih, b[3] * iw, b[2] * ih), i,
                              class_gap(scores[i])))
    return dets, every


def decode_yolo(out: np.ndarray, classes: int,
                threshold: float) -> tuple[list[Detection], list[tuple[int, int, np.float32]]]:
    """`decode_yolo`: `out` is [4 + classes, n] (a leading batch of 1 is dropped)."""
    out = np.asarray(out, F32).reshape(4 + classes, -1)
    n = out.shape[1]
    thr = F32(threshold)
    two = F32(2)
    dets, every = [], []
    for i in range(n):
        best = _best_class(out[4:, i])
        if best is None:
            continue
        c, s = best
        every.append((i, c, s))
        if s < thr:
            continue
        cx, cy, w, h = (F32(v) for v in out[:4, i])
        if not all(math.isfinite(v) for v in (cx, cy, w, h)):
            continue
        dets.append(Detection(c, s, BBox.new(cx - w / two, cy - h / two, cx + w / two, cy + h / two), i,
                              class_gap(out[4:, i])))
    return dets, every


def nms(dets: list[Detection], iou_threshold: float, max_per_class: int):
    """`nms`; also returns the margins: min |IoU - threshold| over the pairs compared and min score
    gap between a kept box and a candidate it suppressed (None if none)."""
    thr = F32(iou_threshold)
    # total_cmp descending, then index ascending (scores here are finite and >= threshold)
    order = sorted(range(len(dets)), key=lambda i: (-float(dets[i].score), i))
    kept: list[int] = []
    per_class: dict[int, int] = {}
    margin = None
    order_gap = None
    for i in order:
        d = dets[i]
        if per_class.get(d.cls, 0) >= max_per_class:
            continue
        overlaps = False
        for k in kept:
            if dets[k].cls != d.cls:
                continue
            iou = dets[k].bbox.iou(d.bbox)
            m = abs(float(iou) - float(thr))
            margin = m if margin is None else min(margin, m)
            if iou > thr:
                overlaps = True  # Rust's any() stops here; the margin scan goes on (conservative)
                g = float(dets[k].score) - float(d.score)
                order_gap = g if order_gap is None else min(order_gap, g)
        if not overlaps:
            per_class[d.cls] = per_class.get(d.cls, 0) + 1
            kept.append(i)
    return [dets[i] for i in kept], {"iou": margin, "suppression": order_gap}


def rust_round(v: float) -> float:
    """f64::round: half away from zero."""
    return math.floor(v + 0.5) if v >= 0 else -math.floor(-v + 0.5)


def letterbox_placement(frame: tuple[int, int], input_wh: tuple[int, int]):
    fw, fh = float(max(frame[0], 1)), float(max(frame[1], 1))
    iw, ih = max(input_wh[0], 1), max(input_wh[1], 1)
    s = min(iw / fw, ih / fh)
    w = min(max(int(rust_round(fw * s)), 1), iw)
    h = min(max(int(rust_round(fh * s)), 1), ih)
    return w, h, (iw - w) // 2, (ih - h) // 2


@dataclass
class Geometry:
    scale_x: np.float32
    scale_y: np.float32
    pad_x: np.float32
    pad_y: np.float32
    frame_w: np.float32
    frame_h: np.float32

    @staticmethod
    def new(fit: str, frame: tuple[int, int], input_wh: tuple[int, int]) -> "Geometry":
        fw, fh = F32(max(frame[0], 1)), F32(max(frame[1], 1))
        iw, ih = F32(max(input_wh[0], 1)), F32(max(input_wh[1], 1))
        if fit == "stretch":
            return Geometry(iw / fw, ih / fh, F32(0), F32(0), fw, fh)
        w, h, x0, y0 = letterbox_placement(frame, input_wh)
        return Geometry(F32(w) / fw, F32(h) / fh, F32(x0), F32(y0), fw, fh)

    def to_frame(self, b: BBox) -> BBox:
        def x(v):
            return min(max((v - self.pad_x) / self.scale_x, F32(0)), self.frame_w)

        def y(v):
            return min(max((v - self.pad_y) / self.scale_y, F32(0)), self.frame_h)

        return BBox.new(x(b.x1), y(b.y1), x(b.x2), y(b.y2))


# ----------------------------------------------------------------------------------------------
# preprocess.rs mirror
# ----------------------------------------------------------------------------------------------
def normalise_table(scale: float, mean, std) -> tuple[np.ndarray, bool]:
    """[3, 256] float32: channel c's value for each byte, by the pinned formula; and whether the
    Rust affine form gives the same bits."""
    px = np.arange(256, dtype=F32)
    sc = F32(scale)
    pinned = np.stack([((px * sc) - F32(m)) / F32(s) for m, s in zip(mean, std)])
    affine = np.stack([px * (sc / F32(s)) + (-F32(m) / F32(s)) for m, s in zip(mean, std)])
    return pinned.astype(F32), bool(np.array_equal(pinned.view(np.uint32), affine.view(np.uint32)))


def load_rgb(path: Path) -> np.ndarray:
    from PIL import Image
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def fit_frame(rgb: np.ndarray, input_wh: tuple[int, int], pad) -> tuple[str, np.ndarray]:
    """(fit, HxWx3 uint8 canvas of the input's size). No resampling (see the docstring)."""
    fh, fw = rgb.shape[:2]
    iw, ih = input_wh
    if (fw, fh) == (iw, ih):
        return "stretch", rgb
    w, h, x0, y0 = letterbox_placement((fw, fh), input_wh)
    if (w, h) != (fw, fh):
        raise SystemExit(f"a {fw}x{fh} frame would be resampled to {w}x{h} for a {iw}x{ih} input; "
                         "give frames of the input's size or ones that fit in it unscaled")
    canvas = np.empty((ih, iw, 3), np.uint8)
    canvas[:, :] = np.asarray(pad, np.uint8)
    canvas[y0:y0 + h, x0:x0 + w] = rgb
    return "letterbox", canvas


def to_tensor(canvas: np.ndarray, table: np.ndarray) -> np.ndarray:
    """NCHW RGB float32 [1, 3, H, W]."""
    chw = canvas.transpose(2, 0, 1)
    return np.stack([table[c][chw[c]] for c in range(3)])[None].astype(F32)


# ----------------------------------------------------------------------------------------------
def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def session(model: Path):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])


def input_size(sess) -> tuple[int, int]:
    shape = sess.get_inputs()[0].shape  # [1, 3, H, W]
    return int(shape[3]), int(shape[2])


def run_frames(model: Path, frames: list[Path], *, fmt: str, classes: int | None,
               score_threshold: float, iou_threshold: float, max_detections: int,
               scale: float, mean, std, pad) -> dict:
    import onnxruntime as ort
    sess = session(model)
    in_name = sess.get_inputs()[0].name
    iw, ih = input_size(sess)
    table, forms_agree = normalise_table(scale, mean, std)
    if not forms_agree:
        print("warning: the pinned and affine normalisation forms differ in the last bit for these "
              "parameters; the pinned form is used", file=sys.stderr)
    result = {
        "model_sha256": sha256(model.read_bytes()),
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "format": fmt,
        "input": [iw, ih],
        "score_threshold": score_threshold,
        "iou_threshold": iou_threshold,
        "max_detections": max_detections,
        "preprocess": {"scale": scale, "mean": list(mean), "std": list(std), "pad": list(pad),
                       "pinned_and_affine_forms_agree": forms_agree},
        "frames": [],
    }
    for path in frames:
        rgb = load_rgb(path)
        fh, fw = rgb.shape[:2]
        fit, canvas = fit_frame(rgb, (iw, ih), pad)
        x = to_tensor(canvas, table)
        outs = sess.run(None, {in_name: x})
        if fmt == "ssd":
            names = [o.name for o in sess.get_outputs()]
            boxes, scores = outs[names.index("boxes")], outs[names.index("scores")]
            dets, every = decode_ssd(boxes, scores, (iw, ih), score_threshold)
        else:
            out = outs[0]
            c = classes if classes is not None else out.reshape(-1, out.shape[-1]).shape[0] - 4
            dets, every = decode_yolo(out, c, score_threshold)
        kept, nms_margins = nms(dets, iou_threshold, max_detections)
        g = Geometry.new(fit, (fw, fh), (iw, ih))
        top = sorted(every, key=lambda t: (-float(t[2]), t[0]))[:5]
        result["frames"].append({
            "file": path.name,
            "png_sha256": sha256(path.read_bytes()),
            "fit": fit,
            "width": fw,
            "height": fh,
            "input_sha256": sha256(x.astype("<f4").tobytes()),
            "detections": [{"class": d.cls, "score": float(d.score),
                            "box": g.to_frame(d.bbox).as_list(), "box_input": d.bbox.as_list()}
                           for d in kept],
            "candidates": len(dets),
            "top5": [{"index": i, "class": c, "score": float(s)} for i, c, s in top],
            "margins": {"score": min(abs(float(s) - float(F32(score_threshold))) for _, _, s in every),
                        "iou": nms_margins["iou"],
                        "suppression": nms_margins["suppression"],
                        "class": min((d.gap for d in dets if d.gap is not None), default=None)},
        })
    return result


def summary(result: dict) -> str:
    def g(v):
        return "-" if v is None else f"{v:.4g}"

    lines = []
    for f in result["frames"]:
        dets = ", ".join(f"c{d['class']} {d['score']:.4f} [{', '.join(f'{v:.1f}' for v in d['box'])}]"
                         for d in f["detections"])
        m = f["margins"]
        lines.append(f"{f['file']} ({f['fit']} {f['width']}x{f['height']}): {len(f['detections'])} boxes "
                     f"of {f['candidates']} candidates; margins score {g(m['score'])} iou {g(m['iou'])} "
                     f"class {g(m['class'])} suppression {g(m['suppression'])}\n    {dets}")
    return "\n".join(lines)


def dumps(v, indent: str = "") -> str:
    """JSON with one key per line and lists of numbers / flat objects on one line (diffable)."""
    inner = indent + " "
    if isinstance(v, dict):
        if all(not isinstance(x, (dict, list)) or (isinstance(x, list) and
               all(not isinstance(y, (dict, list)) for y in x)) for x in v.values()) and len(v) <= 4:
            return json.dumps(v)
        return "{\n" + ",\n".join(f"{inner}{json.dumps(k)}: {dumps(x, inner)}" for k, x in v.items()) \
            + "\n" + indent + "}"
    if isinstance(v, list):
        if all(not isinstance(x, (dict, list)) for x in v):
            return json.dumps(v)
        return "[\n" + ",\n".join(inner + dumps(x, inner) for x in v) + "\n" + indent + "]"
    return json.dumps(v)


def write_json(result: dict, out: Path) -> None:
    assert json.loads(dumps(result)) == result
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(dumps(result) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("frames", type=Path, nargs="+")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--format", choices=["ssd", "yolo"], default="ssd")
    ap.add_argument("--classes", type=int, default=None, help="YOLO: number of classes (default 4+C from the output)")
    ap.add_argument("--score-threshold", type=float, default=0.5)
    ap.add_argument("--iou-threshold", type=float, default=0.6)
    ap.add_argument("--max-detections", type=int, default=100)
    ap.add_argument("--scale", type=float, default=0.00392156862745098)
    ap.add_argument("--mean", type=float, nargs=3, default=[0.5, 0.5, 0.5])
    ap.add_argument("--std", type=float, nargs=3, default=[0.5, 0.5, 0.5])
    ap.add_argument("--pad", type=int, nargs=3, default=[114, 114, 114])
    a = ap.parse_args(argv)
    result = run_frames(a.model, a.frames, fmt=a.format, classes=a.classes,
                        score_threshold=a.score_threshold, iou_threshold=a.iou_threshold,
                        max_detections=a.max_detections, scale=a.scale, mean=a.mean, std=a.std,
                        pad=a.pad)
    write_json(result, a.out)
    print(summary(result))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
