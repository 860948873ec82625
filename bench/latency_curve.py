"""Latency against load (issue 19), for `bench/run --cases curve`.

For each model and engine, one `argus-bench worker` run: the engine alone (batch 1), the
offline pipeline, a drain of a pre-filled topic (the capacity), then a fixed-rate load
generator at each fraction of that capacity in --curve-loads for --curve-seconds each.
Latency = the prediction's receipt by the bench's subscriber − the input's intended send
time; it is split by broker append times (both topics use LogAppendTime) into the load
generator's, the worker's and the subscriber's parts (docs/bench.md, "Latency against
load"). Writes a Markdown table and an SVG picture of p99 against load.

The worker runs inside the bench process with the load generator and the subscriber, and
the broker runs on the same cores: every curve here shares the machine four ways. The
Kafka floor (RELAY_OF) sends the same rates through a bare relay in place of the worker.
"""
import json
import os
import subprocess
import tempfile

# (case, engine, drained inputs, extra flags); engine "relay" is the Kafka floor below.
RUNS = [
    ("cnn", "tract", 600, []),
    ("cnn", "onnxruntime", 1500, []),
    ("small", "tract", 5000, []),
    ("small", "relay", 5000, []),
    ("small", "onnxruntime", 5000, []),
    ("churn", "trees", 100000, ["--max-batch", "64"]),
    ("churn", "relay", 100000, []),
    ("churn", "onnxruntime", 100000, ["--max-batch", "64"]),
]

# The Kafka floor: `argus-bench worker --relay` runs a bare consume → produce relay (decode
# the envelope, write a minimal prediction, store the offset; no model) in place of the
# worker, with --capacity set to the drain of the run named here, so it is sent the same
# rates. Its latency at a rate is what the machine and broker cost before any model.
RELAY_OF = {"small": "tract", "churn": "trees"}

WORKER_PART = "the worker's part: input appended → prediction appended"
TOTAL = "total: capture (intended send) → received"


def run_one(args, env, case, bundle, engine, frames, extra, log):
    """One `argus-bench worker` run; returns its JSON report."""
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        cmd = [env["ARGUS_BENCH_BIN"], "worker", "--brokers", args.brokers, "--model", bundle,
               "--engine", engine, "--frames", str(frames), "--loads", args.curve_loads,
               "--latency-duration", f"{args.curve_seconds:g}s", "--batch-sizes", "1",
               "--tract-duration", "500ms", "--inference-threads", str(args.inference_threads),
               "--json", f.name] + extra
        if case == "churn":
            cmd += ["--records", args.curve_records, "--key", "customer_id"]
        if engine == "onnxruntime":
            cmd += ["--onnxruntime-lib", env["ORT_DYLIB_PATH"],
                    "--onnxruntime-threads", str(args.ort_threads)]
        e = dict(os.environ)
        e.pop("RUST_BACKTRACE", None)
        log(f"   curve {case}/{engine}: {' '.join(cmd[1:])}")
        subprocess.run(cmd, check=True, env=e, stdout=subprocess.DEVNULL)
        return json.load(open(f.name))


def summary(report):
    """What the table and the picture need from one run's report."""
    b1 = next(b for b in report["tract"] if b["batch"] == 1)
    levels = []
    for lv in report["latency"]:
        st = {s["stage"]: s for s in lv["stages"]}
        levels.append({
            "load": lv["load"], "rate": lv["rate_per_s"], "sent": lv["sent"],
            "received": lv["received"], "p50": lv["p50_ms"], "p99": lv["p99_ms"],
            "p999": st[TOTAL]["p999_ms"],
            "worker_p50": st[WORKER_PART]["p50_ms"], "worker_p99": st[WORKER_PART]["p99_ms"],
            "busy": lv.get("machine_cpu_busy"),
            "broker_cpu_ms": lv["cpu"].get("broker_cpu_ms_per_input"),
            "stages": {s["stage"]: [s["p50_ms"], s["p99_ms"], s["slowest_1pct_median_ms"]]
                       for s in lv["stages"]},
            "worker_cpu_ms": lv["worker_cpu"]["cpu_ms_per_input"],
            "worker_model_cpu_ms": lv["worker_cpu"]["model_threads_ms_per_input"],
        })
    return {"model_p50_ms": b1["p50_call_us"] / 1e3, "capacity": report["worker"]["inputs_per_s"],
            "offline": report["offline"]["inputs_per_s"],
            "drain_worker_cpu_ms": report["worker"]["worker_cpu"]["cpu_ms_per_input"],
            "drain_worker_model_cpu_ms": report["worker"]["worker_cpu"]["model_threads_ms_per_input"],
            "engine_cpu_ms": b1.get("cpu_ms_per_input"),
            "levels": levels}


def run_curves(args, env, bundles, log):
    out = {}
    for case, engine, frames, extra in RUNS:
        if case not in args.curve_cases.split(","):
            continue
        if engine == "relay":
            base = out.get(f"{case}/{RELAY_OF[case]}")
            if base is None:
                continue
            rep = run_one(args, env, case, bundles[case][1], RELAY_OF[case], frames,
                          extra + ["--relay", "--capacity", f"{base['capacity']:.1f}"], log)
            out[f"{case}/{engine}"] = dict(summary(rep), model_p50_ms=0.0, relay=True)
        else:
            rep = run_one(args, env, case, bundles[case][1], engine, frames, extra, log)
            out[f"{case}/{engine}"] = summary(rep)
        log(f"   curve {case}/{engine}: {json.dumps(out[f'{case}/{engine}'])}")
    return out


def _f(x, fmt="{:.1f}"):
    return "n/a" if x is None else fmt.format(x)


def write_curves(out, args, curves, svg_path):
    link = os.path.relpath(svg_path, os.path.dirname(os.path.abspath(args.out)))
    out.append("\n## Latency against load (issue 19)\n")
    out.append(
        "One `argus-bench worker` run per model and engine (`bench/latency_curve.py`): capacity "
        "= its drain of a pre-filled topic; then a fixed-rate load generator at "
        f"{args.curve_loads} of that capacity, {args.curve_seconds:g} s each. Latency = receipt "
        "of the prediction by a read_committed subscriber − the input's intended send time. "
        "*Worker part* = the input's broker append time → the prediction's (both topics use "
        "`LogAppendTime`, ms resolution): the worker's fetch, queue, decode, model, publish. "
        "Target: p99 ≤ model p50 + 10 ms. The load generator, the subscriber and the worker "
        "share one process; the broker shares the cores. *busy* = the machine's CPU. "
        "*CPU ms/input* = the worker's own threads (of which its model threads), and the "
        "broker. Rows `…/relay` are the Kafka floor: a bare relay in place of the worker, "
        "sent the rates of the run above it (its capacity column is its own drain). "
        f"Picture: [`{link}`]({link}).\n")
    out.append("| model/engine | capacity/s | model p50 ms | load | rate/s | p50 ms | p99 ms | "
               "p99.9 ms | worker part p50 / p99 ms | p99 − model p50 ≤ 10 ms | busy | "
               "CPU ms/input: worker (model threads), broker |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for name, c in curves.items():
        for i, lv in enumerate(c["levels"]):
            head = (f"| {name} | {c['capacity']:.0f} | {c['model_p50_ms']:.3f} |" if i == 0
                    else "| | | |")
            ok = lv["p99"] - c["model_p50_ms"] <= 10.0
            lost = "" if lv["received"] >= lv["sent"] else f" ({lv['sent'] - lv['received']} lost)"
            out.append(
                f"{head} {lv['load'] * 100:.0f}% | {lv['rate']:.0f} | {lv['p50']:.1f} | "
                f"{lv['p99']:.1f}{lost} | {lv['p999']:.1f} | {lv['worker_p50']:.1f} / "
                f"{lv['worker_p99']:.1f} | {'yes' if ok else 'no'} | "
                f"{_f(lv['busy'], '{:.0%}')} | {_f(lv['worker_cpu_ms'], '{:.3f}')} "
                f"({_f(lv['worker_model_cpu_ms'], '{:.3f}')}), "
                f"{_f(lv['broker_cpu_ms'], '{:.3f}')} |")
    out.append("\nCPU per input outside the model: the worker's threads during the drain minus "
               "its model threads, against the engine alone (batch 1, one thread, CPU):\n")
    out.append("| model/engine | drain: worker CPU ms/input | of it model threads | the rest | "
               "engine alone CPU ms/input | the rest ÷ engine alone |")
    out.append("|---|---:|---:|---:|---:|---:|")
    for name, c in curves.items():
        rest = c["drain_worker_cpu_ms"] - c["drain_worker_model_cpu_ms"]
        eng = None if c.get("relay") else c.get("engine_cpu_ms")
        ratio = f"{rest / eng:.2f}" if eng else "n/a"
        out.append(f"| {name} | {c['drain_worker_cpu_ms']:.4f} | "
                   f"{c['drain_worker_model_cpu_ms']:.4f} | {rest:.4f} | {_f(eng, '{:.4f}')} | "
                   f"{ratio} |")
    floor(out, curves)
    split(out, curves, 0, "the lowest load")
    split(out, curves, -1, "the highest load (where the tail is when the machine is busiest)")
    svg(curves, svg_path)


def split(out, curves, level, which):
    """One level's latency split into its parts, per model and engine."""
    out.append(f"\nWhere the time goes at {which} (p50 / p99 / median of the slowest 1 %, "
               "ms; append times have ms resolution):\n")
    names = list(next(iter(curves.values()))["levels"][level]["stages"]) if curves else []
    out.append("| part | " + " | ".join(curves) + " |")
    out.append("|---|" + "---:|" * len(curves))
    for n in names:
        cells = []
        for c in curves.values():
            v = c["levels"][level]["stages"].get(n)
            cells.append("n/a" if v is None else " / ".join(f"{x:.2f}" for x in v))
        out.append(f"| {n} | " + " | ".join(cells) + " |")


def floor(out, curves):
    """The worker against the bare relay at the same rates (the Kafka floor)."""
    pairs = [(f"{case}/{engine}", curves[f"{case}/{engine}"], curves[f"{case}/relay"])
             for case, engine in RELAY_OF.items()
             if f"{case}/{engine}" in curves and f"{case}/relay" in curves]
    if not pairs:
        return
    out.append("\nThe Kafka floor: the same rates sent to a bare consume → produce relay "
               "(`argus-bench worker --relay`: decode the envelope, write a minimal prediction, "
               "store the offset; no model) in place of the worker. p50 / p99 ms, the machine's "
               "CPU busy, and CPU ms per input of the relay's or worker's threads and of the "
               "broker:\n")
    out.append("| model | load | rate/s | relay p50 / p99 | worker p50 / p99 | relay p99 ≤ 10 ms "
               "| busy: relay, worker | CPU ms/input relay, worker; broker with relay, worker |")
    out.append("|---|---:|---:|---:|---:|---|---:|---:|")
    for name, c, r in pairs:
        for i, (w, f) in enumerate(zip(c["levels"], r["levels"])):
            head = f"| {name} |" if i == 0 else "| |"
            out.append(
                f"{head} {w['load'] * 100:.0f}% | {w['rate']:.0f} | {f['p50']:.1f} / "
                f"{f['p99']:.1f} | {w['p50']:.1f} / {w['p99']:.1f} | "
                f"{'yes' if f['p99'] <= 10.0 else 'no'} | {_f(f['busy'], '{:.0%}')}, "
                f"{_f(w['busy'], '{:.0%}')} | {_f(f['worker_cpu_ms'], '{:.3f}')}, "
                f"{_f(w['worker_cpu_ms'], '{:.3f}')}; {_f(f['broker_cpu_ms'], '{:.3f}')}, "
                f"{_f(w['broker_cpu_ms'], '{:.3f}')} |")


def svg(curves, path):
    """p99 against load, one panel per model, log-scale y; the target as a dashed line."""
    cases = []
    for name in curves:
        case = name.split("/")[0]
        if case not in cases:
            cases.append(case)
    pw, ph, ml, mt, mb = 300, 240, 72, 58, 40
    w, h = max(ml + len(cases) * (pw + 30), 700), mt + ph + mb
    ys = [lv[k] for c in curves.values() for lv in c["levels"] for k in ("p99", "worker_p99")
          if lv[k] and lv[k] > 0]
    import math
    lo, hi = 1.0, max(100.0, 10 ** math.ceil(math.log10(max(ys or [100.0]))))
    xmax = max([lv["load"] for c in curves.values() for lv in c["levels"]] + [0.8])

    def y(v):
        v = min(max(v, lo), hi)
        return mt + ph - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * ph

    colours = {"tract": "#1f77b4", "trees": "#1f77b4", "onnxruntime": "#d62728"}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
             f'font-family="sans-serif" font-size="11">',
             f'<rect width="{w}" height="{h}" fill="white"/>',
             f'<text x="{ml}" y="16" font-size="13">Argus worker: p99 latency against load</text>',
             f'<text x="{ml}" y="32">solid: capture → subscriber; dashed: the worker\'s part '
             '(input appended → prediction appended); dotted: target (model p50 + 10 ms)</text>']
    for i, case in enumerate(cases):
        x0 = ml + i * (pw + 30)

        def x(v, x0=x0):
            return x0 + v / xmax * pw
        parts.append(f'<rect x="{x0}" y="{mt}" width="{pw}" height="{ph}" fill="none" '
                     'stroke="#888"/>')
        parts.append(f'<text x="{x0 + pw / 2}" y="{mt - 6}" text-anchor="middle">{case}</text>')
        d = 1.0
        while d <= hi:
            parts.append(f'<line x1="{x0}" x2="{x0 + pw}" y1="{y(d):.1f}" y2="{y(d):.1f}" '
                         'stroke="#eee"/>')
            if i == 0:
                parts.append(f'<text x="{x0 - 6}" y="{y(d) + 4:.1f}" text-anchor="end">'
                             f'{d:g} ms</text>')
            d *= 10
        for t in [0.2, 0.4, 0.6, 0.8]:
            if t <= xmax:
                parts.append(f'<text x="{x(t):.1f}" y="{mt + ph + 14}" text-anchor="middle">'
                             f'{t:.0%}</text>')
        parts.append(f'<text x="{x0 + pw / 2}" y="{mt + ph + 30}" text-anchor="middle">'
                     'load (fraction of the drain rate)</text>')
        ly = mt + 12
        for name, c in curves.items():
            if name.split("/")[0] != case:
                continue
            engine = name.split("/")[1]
            col = colours.get(engine, "#2ca02c")
            target = c["model_p50_ms"] + 10.0
            parts.append(f'<line x1="{x0}" x2="{x0 + pw}" y1="{y(target):.1f}" '
                         f'y2="{y(target):.1f}" stroke="#999" stroke-dasharray="2,3"/>')
            for key, dash in (("p99", ""), ("worker_p99", ' stroke-dasharray="5,3"')):
                pts = " ".join(f"{x(lv['load']):.1f},{y(lv[key]):.1f}" for lv in c["levels"]
                               if lv[key] and lv[key] > 0)
                parts.append(f'<polyline points="{pts}" fill="none" stroke="{col}" '
                             f'stroke-width="1.8"{dash}/>')
            label = ("relay: the Kafka floor, same rates" if c.get("relay")
                     else f'{engine} (capacity {c["capacity"]:.0f}/s)')
            parts.append(f'<text x="{x0 + 8}" y="{ly}" fill="{col}">{label}</text>')
            ly += 14
    parts.append("</svg>")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")
