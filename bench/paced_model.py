#!/usr/bin/env python3
"""One model call at a time with the machine idle in between: how much slower is a call
that comes alone than one of a back-to-back loop? (issue 19, docs/bench.md, "A lone call
runs slower")

The latency target of issue 19 is p99 within 10 ms of the model's p50, and the bench takes
that p50 from a back-to-back loop (`argus-bench worker`'s engine-alone stage). At a light
fixed rate the worker calls the model once every 40-400 ms instead. This script times
onnxruntime alone (the wheel's library, the one the bench's worker loads through
ORT_DYLIB_PATH; no Kafka, no worker) the same way with a sleep of each --gaps value before
every call, rounds alternating, and prints wall and thread-CPU time per call. If a lone
call is slower here too, the difference is the machine's (CPU frequency, caches), not the
worker's, and the Python worker meets it as well.

    python3 bench/paced_model.py ~/.cache/argus-release/bench-models/mobilenetv2/model.onnx
"""
import argparse
import time

import numpy as np
import onnxruntime as ort


def session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def feed(sess, seed):
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    return {inp.name: np.random.default_rng(seed).random(shape, dtype=np.float32)}


def timed_calls(sess, x, gap_s, n):
    """(wall ms, thread-CPU ms) per call, each call after sleeping gap_s."""
    wall, cpu = [], []
    for _ in range(n):
        if gap_s:
            time.sleep(gap_s)
        t, c = time.perf_counter(), time.thread_time()
        sess.run(None, x)
        cpu.append((time.thread_time() - c) * 1e3)
        wall.append((time.perf_counter() - t) * 1e3)
    return sorted(wall), sorted(cpu)


def pick(xs, q):
    return xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="an .onnx file with one float32 input")
    ap.add_argument("--gaps", default="0,5,30,125",
                    help="idle ms before each call, comma-separated (0: back to back; the "
                         "ratio column is against the first)")
    ap.add_argument("--calls", type=int, default=100, help="calls per gap and round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    args = ap.parse_args()
    sess = session(args.model, args.threads)
    x = feed(sess, 1)
    for _ in range(20):
        sess.run(None, x)
    gaps = [float(g) for g in args.gaps.split(",")]
    print("| round | idle before each call, ms | wall p50 ms | wall p99 ms | CPU p50 ms "
          "| CPU p50 ÷ the first gap's |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in range(1, args.rounds + 1):
        base = None
        for g in gaps:
            wall, cpu = timed_calls(sess, x, g / 1e3, args.calls)
            if base is None:
                base = pick(cpu, 0.5)
            print(f"| {r} | {g:g} | {pick(wall, 0.5):.2f} | {pick(wall, 0.99):.2f} | "
                  f"{pick(cpu, 0.5):.2f} | {pick(cpu, 0.5) / base:.2f} |", flush=True)


if __name__ == "__main__":
    main()
