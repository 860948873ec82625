"""onnxruntime's µs per row at batch 1 and 64 on a tree model, single-threaded and with its
default threads, on the same kind of rows as benches/trees.rs (for comparing with it).

    python3 crates/model/benches/trees_ort.py [models/churn/model.onnx]
"""
import sys
import time

import numpy as np
import onnxruntime as ort

path = sys.argv[1] if len(sys.argv) > 1 else "models/churn/model.onnx"
for threads in (1, 0):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    out = sess.get_outputs()[-1].name
    width = inp.shape[1]
    x = (np.random.default_rng(0).normal(size=(4096, width)) * 2).astype(np.float32)
    for batch in (1, 64):
        samples = []
        start = time.perf_counter()
        i = 0
        while time.perf_counter() - start < 2 or len(samples) < 20:
            r = (i * batch) % (4096 - batch + 1)
            chunk = x[r : r + batch]
            t = time.perf_counter()
            for _ in range(8):
                sess.run([out], {inp.name: chunk})
            samples.append((time.perf_counter() - t) * 1e6 / (8 * batch))
            i += 1
        print(f"onnxruntime {ort.__version__} threads={threads or 'default'} batch {batch:>2}: "
              f"{np.median(samples):8.3f} µs/row")
