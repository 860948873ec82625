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
    else:
        raise ValueError("payload is a record; this worker takes images")
    if r.i != len(value):
        raise ValueError("trailing bytes after the envelope")
    return source_id, sequence, capture_us, img


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
        shape = inp["shape"]
        self.nchw = inp.get("layout", "nchw") == "nchw"
        self.h, self.w = (shape[2], shape[3]) if self.nchw else (shape[1], shape[2])
        self.bgr = inp.get("color", "rgb") == "bgr"
        pre = self.m["preprocess"]
        self.filter = FILTERS.get(pre.get("filter", "triangle"), Image.BILINEAR)
        self.scale = pre.get("scale", 1.0 / 255.0)
        self.mean = np.array(pre.get("mean", [0.0, 0.0, 0.0]), dtype=np.float32)
        self.std = np.array(pre.get("std", [1.0, 1.0, 1.0]), dtype=np.float32)
        self.labels = self.m["output"]["labels"]
        self.logits = self.m["output"].get("kind", "logits") == "logits"
        self.ref = {"name": self.m["name"], "version": str(self.m["version"]),
                    "sha256": self.m["model"]["sha256"]}

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

    done, last_input = 0, time.monotonic()
    while not stop["now"]:
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
        queue_us = max(0, t0 - msg.timestamp()[1] * 1000) if msg.timestamp()[1] > 0 else 0
        try:
            source_id, sequence, capture_us, img = decode_envelope(msg.value())
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
        done += 1
    producer.flush(30)
    consumer.close()  # commits the stored offsets
    print(json.dumps({"worker": args.worker_id, "predictions": done}))


if __name__ == "__main__":
    main()
