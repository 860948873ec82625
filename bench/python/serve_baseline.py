#!/usr/bin/env python3
"""The Python inference server a user would write, the baseline of the serve bench
(`bench/serve`, `argus-bench serve`): FastAPI + uvicorn + onnxruntime serving one Argus
bundle's ONNX model over the same Open Inference Protocol v2 JSON route as `argus serve`,
so one load generator sends both the same requests.

    python serve_baseline.py --model models/churn --port 8601

- POST /v2/models/{name}/infer: inputs[0] is the model's input tensor (FP32, [N, ...],
  preprocessed); answers `probabilities` (softmax of logits for `kind = "logits"`
  bundles) FP32 [N, classes] and `label` BYTES [N].
- GET /v2/health/ready: 200.

One uvicorn worker process, onnxruntime with one intra-op thread (`--threads`), no batching
across requests: what the FastAPI tutorial plus the onnxruntime docs lead to.
"""
import argparse
import tomllib
from pathlib import Path
from typing import Any, List, Optional

import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel


class RequestInput(BaseModel):
    name: str
    shape: List[int]
    datatype: str
    data: Any


class InferRequest(BaseModel):
    id: Optional[str] = None
    inputs: List[RequestInput]


def build(model_dir: Path, threads: int) -> FastAPI:
    manifest = tomllib.loads((model_dir / "manifest.toml").read_text())
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(model_dir / manifest["model"]["file"]), opts, providers=["CPUExecutionProvider"]
    )
    input_name = manifest["input"]["name"]
    output_name = manifest["output"]["name"]
    labels = manifest["output"]["labels"]
    logits = manifest["output"]["kind"] == "logits"
    row_shape = manifest["input"]["shape"][1:]
    name, version = manifest["name"], manifest["version"]
    app = FastAPI()

    @app.get("/v2/health/ready")
    def ready():
        return {}

    @app.post("/v2/models/{model}/infer")
    def infer(model: str, req: InferRequest):
        if model != name:
            raise HTTPException(status_code=404, detail=f"model {model} not found")
        t = req.inputs[0]
        x = np.asarray(t.data, dtype=np.float32).reshape([-1] + row_shape)
        out = session.run([output_name], {input_name: x})[0].reshape(len(x), len(labels))
        if logits:
            e = np.exp(out - out.max(axis=1, keepdims=True))
            out = e / e.sum(axis=1, keepdims=True)
        return {
            "model_name": name,
            "model_version": version,
            "id": req.id,
            "outputs": [
                {
                    "name": "probabilities",
                    "shape": list(out.shape),
                    "datatype": "FP32",
                    "data": out.ravel().tolist(),
                },
                {
                    "name": "label",
                    "shape": [len(out)],
                    "datatype": "BYTES",
                    "data": [labels[i] for i in out.argmax(axis=1)],
                },
            ],
        }

    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True, help="bundle directory")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8601)
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    a = p.parse_args()
    uvicorn.run(build(a.model, a.threads), host=a.host, port=a.port, log_level="warning")


if __name__ == "__main__":
    main()
