#!/usr/bin/env python3
"""Where each engine spends one model call, by operator (issue 19, "tract on the CNN").

tract: `cargo run --release -p argus-model --example tract_profile` (the plan the tract engine
builds, each node timed); onnxruntime: PyPI's onnxruntime with the options of Argus's
onnxruntime engine (1 intra-op thread, no CPU arena, no memory patterns, all graph
optimisations) and its own profiler. Both on a blank input, after 2 warm-up calls.

    python bench/op_profile.py BUNDLE_DIR [--batch 1] [--runs 30] [--out FILE.md]

Needs: numpy, onnxruntime (pip install -r models/requirements.txt).
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def manifest(bundle):
    import tomllib
    with open(os.path.join(bundle, "manifest.toml"), "rb") as f:
        return tomllib.load(f)


def onnxruntime_profile(bundle, batch, runs):
    m = manifest(bundle)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.enable_cpu_mem_arena = False
    so.enable_mem_pattern = False
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    with tempfile.TemporaryDirectory() as tmp:
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(tmp, "ort")
        s = ort.InferenceSession(os.path.join(bundle, m["model"]["file"]), so,
                                 providers=["CPUExecutionProvider"])
        shape = list(m["input"]["shape"])
        shape[0] = batch
        x = {m["input"]["name"]: np.zeros(shape, np.float32)}
        for _ in range(2):
            s.run(None, x)
        t = time.perf_counter()
        for _ in range(runs):
            s.run(None, x)
        wall = (time.perf_counter() - t) * 1e3 / runs
        path = s.end_profiling()
        with open(path) as f:
            events = json.load(f)
    # Node events of every run; the first two runs are the warm-up.
    runs_seen = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    skip_before = runs_seen[2]["ts"] if len(runs_seen) > 2 else 0
    ops = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= skip_before:
            ops[op_kind(e["args"])] += e["dur"] / 1e3 / runs
    return {"per_call_ms": wall, "ops": dict(ops)}


def op_kind(args):
    """onnxruntime's operator name; a Conv told apart by its weights' shape (out, in per
    group, kh, kw), as tract names its depthwise convolutions apart."""
    op = args["op_name"]
    shapes = [next(iter(t.values())) for t in args.get("input_type_shape", [])]
    if op == "Conv" and len(shapes) > 1 and len(shapes[1]) == 4:
        _, per_group, kh, kw = shapes[1]
        if per_group == 1 and kh * kw > 1:
            return f"Conv depthwise {kh}x{kw}"
        return f"Conv {kh}x{kw}"
    return op


def tract_profile(bundle, batch, runs):
    # Built with the features bench/run builds argus with, so tract compiles once for both.
    subprocess.run(
        ["cargo", "build", "-q", "--release", "-p", "argus", "-p", "argus-bench", "-p",
         "argus-model", "--features", "argus/onnxruntime,argus-bench/onnxruntime",
         "--example", "tract_profile"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    out = subprocess.run(
        [os.path.join(target, "release", "examples", "tract_profile"), bundle, str(batch),
         str(runs)],
        check=True, capture_output=True, text=True,
        env={k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(name, prof, top=8):
    total = sum(prof["ops"].values())
    rows = sorted(prof["ops"].items(), key=lambda kv: -kv[1])
    lines = [f"**{name}**: {prof['per_call_ms']:.2f} ms per call "
             f"({total:.2f} ms in operators)", "",
             "| operator | ms per call | share |", "|---|---:|---:|"]
    for op, ms in rows[:top]:
        lines.append(f"| {op} | {ms:.2f} | {100 * ms / total:.0f} % |")
    rest = sum(ms for _, ms in rows[top:])
    if rest:
        lines.append(f"| {len(rows) - top} others | {rest:.2f} | {100 * rest / total:.0f} % |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--out")
    a = ap.parse_args()
    bundle = os.path.abspath(a.bundle)
    tr = tract_profile(bundle, a.batch, a.runs)
    ox = onnxruntime_profile(bundle, a.batch, a.runs)
    text = "\n\n".join([
        f"`python bench/op_profile.py {a.bundle} --batch {a.batch} --runs {a.runs}`: one call "
        f"at batch {a.batch} on one thread, mean of {a.runs} after 2 warm-up calls; "
        f"tract ÷ onnxruntime {tr['per_call_ms'] / ox['per_call_ms']:.2f}×.",
        table("tract", tr), table("onnxruntime", ox)])
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
