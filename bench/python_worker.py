#!/usr/bin/env python3
"""The Python worker a competent team would write instead of Argus — the baseline of
`bench/` (issue 5). confluent-kafka consumer (at-least-once: offsets stored only after the
prediction is acknowledged, committed in the background), Pillow decode, onnxruntime,
predictions in Argus's own JSON format (schemas/prediction.schema.json, v1), same model
bundle (manifest.toml + model.onnx), same topics.

    pip install confluent-kafka onnxruntime pillow numpy
    python3 bench/python_worker.py --brokers 127.0.0.1:9092 --input frames.lobby \
        --predictions predictions --model models/camera-person [--exit-when-idle 5]

Input: the bincode Envelope of schemas/envelope.md (decoded here with struct). Inputs it
cannot decode are logged and skipped (this baseline has no dead-letter topic).

Tabular bundles (manifest `task = "tabular"`, e.g. models/churn): the input is a Record
envelope (payload variant 2); the float32 feature vector is assembled as the manifest's
[[features]] say (models/README.md "Tabular bundles": int/float -> float32, bool -> 1/0,
category -> one-hot over `categories`). A record with a missing, null, ill-typed,
non-finite or unlisted feature is not scored: it is counted (`skipped_feature`, the
DLQ-like counter printed at exit), logged, and its offset stored. Records are batched:
`consumer.consume(64, ...)` returns what is already fetched (up to 64, no waiting beyond
the poll timeout once something arrived) and the valid ones go to onnxruntime as one
[n, 20] call on the `probabilities` output. Images stay at batch 1, one message per loop.
"""
import argparse
import io
import json
import os
import signal
import socket
import struct
import sys
import time
import tomllib

import numpy as np
import onnxruntime as ort
from confluent_kafka import Consumer, KafkaError, Producer
from PIL import Image

FILTERS = {"nearest": Image.NEAREST, "triangle": Image.BILINEAR, "catmullrom": Image.BICUBIC,
           "gaussian": Image.BILINEAR, "lanczos3": Image.LANCZOS}


TABULAR_BATCH = 64  # records per onnxruntime call, at most (what consume() returns)


def now_us():
    return time.time_ns() // 1000


class Reader:
    """Little-endian fixed-int bincode reader (schemas/envelope.md)."""

    def __init__(self, b):
        self.b, self.i = b, 0

    def take(self, n):
        if self.i + n > len(self.b):
            raise ValueError("truncated envelope")
        v = self.b[self.i:self.i + n]
        self.i += n
        return v

    def u(self, fmt):
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))[0]

    def bytes_(self):
        n = self.u("Q")
        if n > 64 * 1024 * 1024:
            raise ValueError("length prefix too large")
        return self.take(n)


def decode_envelope(value):
    r = Reader(value)
    version = r.u("H")
    if version != 1:
        raise ValueError(f"unsupported envelope version {version}")
    source_id = r.bytes_().decode("utf-8")
    sequence = r.u("Q")
    capture_us = r.u("q")
    variant = r.u("I")
    if variant == 0:
        r.u("I")  # format: JPEG or PNG, Pillow sniffs it
        img = Image.open(io.BytesIO(r.bytes_()))
    elif variant == 1:
        w, h, layout = r.u("I"), r.u("I"), r.u("I")
        data = r.bytes_()
        mode = {0: "RGB", 1: "RGB", 2: "L"}[layout]
        img = Image.frombytes(mode, (w, h), bytes(data))
        if layout == 1:
            b, g, rr = img.split()
            img = Image.merge("RGB", (rr, g, b))
    elif variant == 2:
        img = decode_record_fields(r)  # for a record: {name: value}
    else:
        raise ValueError(f"unknown payload variant {variant}")
    if r.i != len(value):
        raise ValueError("trailing bytes after the envelope")
    return source_id, sequence, capture_us, img


def decode_record_fields(r):
    """`fields: list<Field>`, Field = name: string, value: Value (Null, Bool, Int, Float,
    Text) -> {name: None | bool | int | float | str}."""
    n = r.u("Q")
    if n > 1 << 20:
        raise ValueError("field count too large")
    fields = {}
    for _ in range(n):
        name = r.bytes_().decode("utf-8")
        tag = r.u("I")
        if tag == 0:
            v = None
        elif tag == 1:
            b = r.u("B")
            if b > 1:
                raise ValueError(f"bool byte {b} in field {name!r}")
            v = b == 1
        elif tag == 2:
            v = r.u("q")
        elif tag == 3:
            v = r.u("d")
        elif tag == 4:
            v = r.bytes_().decode("utf-8")
        else:
            raise ValueError(f"unknown value variant {tag} in field {name!r}")
        fields[name] = v
    return fields


class FeatureError(ValueError):
    pass


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _finite_float(v):
    return isinstance(v, float) and np.isfinite(v)


def assemble(features, fields, out):
    """Writes one record's encoded features into `out` (float32, len = columns); raises
    FeatureError naming the feature (models/README.md, "Tabular bundles")."""
    j = 0
    for f in features:
        name, kind = f["name"], f["type"]
        if name not in fields or fields[name] is None:
            raise FeatureError(f"feature {name!r} is missing or null")
        v = fields[name]
        if kind == "float":
            if not (_is_int(v) or _finite_float(v)):
                raise FeatureError(f"feature {name!r} = {v!r} is not a finite number")
            out[j] = v  # numpy rounds to the nearest float32
            j += 1
        elif kind == "int":
            if not (_is_int(v) or (_finite_float(v) and float(v).is_integer())):
                raise FeatureError(f"feature {name!r} = {v!r} is not an integer")
            out[j] = v
            j += 1
        elif kind == "bool":
            if isinstance(v, bool):
                out[j] = 1.0 if v else 0.0
            elif _is_int(v) and v in (0, 1):
                out[j] = float(v)
            else:
                raise FeatureError(f"feature {name!r} = {v!r} is not a boolean")
            j += 1
        elif kind == "category":
            cats = f["categories"]
            if _is_int(v):
                v = str(v)
            if not isinstance(v, str) or v not in cats:
                raise FeatureError(f"feature {name!r} = {v!r} is not one of {cats}")
            out[j:j + len(cats)] = 0.0
            out[j + cats.index(v)] = 1.0
            j += len(cats)
        else:
            raise FeatureError(f"feature {name!r} has unknown type {kind!r}")


class Model:
    def __init__(self, bundle, threads):
        with open(os.path.join(bundle, "manifest.toml"), "rb") as f:
            self.m = tomllib.load(f)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        path = os.path.join(bundle, self.m["model"]["file"])
        self.session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        inp = self.m["input"]
        self.input_name = inp["name"]
        self.labels = self.m["output"]["labels"]
        self.logits = self.m["output"].get("kind", "logits") == "logits"
        self.ref = {"name": self.m["name"], "version": str(self.m["version"]),
                    "sha256": self.m["model"]["sha256"]}
        self.tabular = self.m.get("task") == "tabular"
        if self.tabular:
            self.features = self.m["features"]
            self.width = sum(len(f["categories"]) if f["type"] == "category" else 1
                             for f in self.features)
            if inp["shape"][-1] != self.width:
                raise SystemExit(f"manifest: input shape {inp['shape']} but the features "
                                 f"fill {self.width} columns")
            self.output_name = self.m["output"]["name"]  # "probabilities" (2nd output)
            return
        shape = inp["shape"]
        self.nchw = inp.get("layout", "nchw") == "nchw"
        self.h, self.w = (shape[2], shape[3]) if self.nchw else (shape[1], shape[2])
        self.bgr = inp.get("color", "rgb") == "bgr"
        pre = self.m["preprocess"]
        self.filter = FILTERS.get(pre.get("filter", "triangle"), Image.BILINEAR)
        self.scale = pre.get("scale", 1.0 / 255.0)
        self.mean = np.array(pre.get("mean", [0.0, 0.0, 0.0]), dtype=np.float32)
        self.std = np.array(pre.get("std", [1.0, 1.0, 1.0]), dtype=np.float32)

    def preprocess(self, img):
        img = img.convert("RGB").resize((self.w, self.h), self.filter)
        x = np.asarray(img, dtype=np.float32)
        if self.bgr:
            x = x[:, :, ::-1]
        x = (x * self.scale - self.mean) / self.std
        if self.nchw:
            x = x.transpose(2, 0, 1)
        return x[np.newaxis].astype(np.float32)

    def infer(self, x):
        out = self.session.run(None, {self.input_name: x})[0][0].astype(np.float64)
        if self.logits:
            out = np.exp(out - out.max())
            out /= out.sum()
        return out

    def infer_rows(self, x):
        """Tabular: x float32 [n, width] -> probabilities float64 [n, classes]."""
        out = self.session.run([self.output_name], {self.input_name: x})[0].astype(np.float64)
        if self.logits:
            out = np.exp(out - out.max(axis=1, keepdims=True))
            out /= out.sum(axis=1, keepdims=True)
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--brokers", default="127.0.0.1:9092")
    ap.add_argument("--input", default="frames.default")
    ap.add_argument("--predictions", default="predictions")
    ap.add_argument("--group", default="python-workers")
    ap.add_argument("--model", default="models/camera-person")
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    ap.add_argument("--worker-id", default=f"{socket.gethostname()}-{os.getpid()}-py")
    ap.add_argument("--exit-when-idle", type=float, default=0.0,
                    help="exit after this many seconds without input (0 = run until SIGTERM)")
    args = ap.parse_args()

    model = Model(args.model, args.threads)
    consumer = Consumer({
        "bootstrap.servers": args.brokers, "group.id": args.group,
        "enable.auto.commit": True, "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
    })
    producer = Producer({"bootstrap.servers": args.brokers, "enable.idempotence": True,
                         "acks": "all", "linger.ms": 2, "compression.type": "lz4"})
    consumer.subscribe([args.input])
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))

    def delivered(msg_in):
        def cb(err, _msg):
            if err is None:
                # At-least-once: the input's offset is stored only once its output is acked.
                consumer.store_offsets(message=msg_in)
            else:
                print(f"prediction not delivered: {err}", file=sys.stderr)
        return cb

    def publish(msg, source_id, sequence, capture_us, probs, t0, t1, t2, t3, queue_us):
        order = np.argsort(-probs, kind="stable")[: max(1, args.top_k)]
        top = [{"label": model.labels[i], "index": int(i), "score": float(np.float32(probs[i]))}
               for i in order]
        t4 = now_us()
        key = msg.key().decode("utf-8", "replace") if msg.key() is not None else None
        pred = {
            "schema": "argus.prediction/v1",
            "id": f"{msg.topic()}/{msg.partition()}/{msg.offset()}",
            "input": {"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset(),
                      "key": key, "source_id": source_id, "sequence": sequence,
                      "capture_time_us": capture_us},
            "model": model.ref,
            "outcome": "ok",
            "label": top[0]["label"],
            "score": top[0]["score"],
            "top": top,
            "timings": {"queue_us": queue_us, "decode_us": t1 - t0, "preprocess_us": t2 - t1,
                        "inference_us": t3 - t2, "postprocess_us": t4 - t3,
                        "capture_to_output_us": max(0, t4 - capture_us)},
            "worker": args.worker_id,
            "produced_at_us": t4,
        }
        while True:
            try:
                producer.produce(args.predictions, key=msg.key(), value=json.dumps(pred),
                                 on_delivery=delivered(msg))
                break
            except BufferError:
                producer.poll(0.05)

    def queue_us_of(msg, t0):
        ts = msg.timestamp()[1]
        return max(0, t0 - ts * 1000) if ts > 0 else 0

    done, skipped, last_input = 0, 0, time.monotonic()
    x_buf = np.zeros((TABULAR_BATCH, model.width), dtype=np.float32) if model.tabular else None
    while model.tabular and not stop["now"]:
        # Records: whatever is already fetched, up to TABULAR_BATCH, as one model call.
        msgs = consumer.consume(TABULAR_BATCH, 0.1)
        producer.poll(0)
        if not msgs:
            if args.exit_when_idle and time.monotonic() - last_input > args.exit_when_idle:
                break
            continue
        last_input = time.monotonic()
        t0 = now_us()
        ok = []  # (msg, source_id, sequence, capture_us, queue_us)
        for msg in msgs:
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    print(f"consumer error: {msg.error()}", file=sys.stderr)
                continue
            q = queue_us_of(msg, t0)
            try:
                source_id, sequence, capture_us, fields = decode_envelope(msg.value())
                if not isinstance(fields, dict):
                    raise FeatureError("payload is an image; this bundle takes records")
                assemble(model.features, fields, x_buf[len(ok)])
            except Exception as e:  # noqa: BLE001 - a bad input must not stop the worker
                skipped += 1  # the DLQ-like counter (reason: decode or feature)
                print(f"skipped {msg.topic()}/{msg.partition()}/{msg.offset()}: {e}",
                      file=sys.stderr)
                consumer.store_offsets(message=msg)
                continue
            ok.append((msg, source_id, sequence, capture_us, q))
        if not ok:
            continue
        t1 = t2 = now_us()  # decode and feature assembly are one step here
        probs = model.infer_rows(x_buf[:len(ok)])
        t3 = now_us()
        for (msg, source_id, sequence, capture_us, q), p in zip(ok, probs):
            publish(msg, source_id, sequence, capture_us, p, t0, t1, t2, t3, q)
        done += len(ok)
    while not model.tabular and not stop["now"]:
        msg = consumer.poll(0.1)
        producer.poll(0)
        if msg is None:
            if args.exit_when_idle and time.monotonic() - last_input > args.exit_when_idle:
                break
            continue
        if msg.error():
            if msg.error().code() != KafkaError._PARTITION_EOF:
                print(f"consumer error: {msg.error()}", file=sys.stderr)
            continue
        last_input = time.monotonic()
        t0 = now_us()
        queue_us = queue_us_of(msg, t0)
        try:
            source_id, sequence, capture_us, img = decode_envelope(msg.value())
            if isinstance(img, dict):
                raise ValueError("payload is a record; this bundle takes images")
            img.load()
        except Exception as e:  # noqa: BLE001 - a bad input must not stop the worker
            print(f"undecodable input {msg.topic()}/{msg.partition()}/{msg.offset()}: {e}",
                  file=sys.stderr)
            consumer.store_offsets(message=msg)
            continue
        t1 = now_us()
        x = model.preprocess(img)
        t2 = now_us()
        probs = model.infer(x)
        t3 = now_us()
        publish(msg, source_id, sequence, capture_us, probs, t0, t1, t2, t3, queue_us)
        done += 1
    producer.flush(30)
    consumer.close()  # commits the stored offsets
    print(json.dumps({"worker": args.worker_id, "predictions": done,
                      "skipped_feature": skipped}))


if __name__ == "__main__":
    main()
