"""The built-in models end to end on one config: float -> PTQ int8 (ALU and CPU requantisation) and
onnxruntime-quantised QDQ, from PyTorch and ONNX.

    python benchmarks/models.py [--json] [--config vta_default]

Per model and path: compile seconds, cosine similarity and top-1 agreement with the float model (onnxruntime
fp32 for ONNX), share of conv/matmul MACs on the accelerator, and for QDQ models the number of output elements
that differ from onnxruntime running the same QDQ graph (its reference execution, optimisations off).
Needs onnxruntime. Last line with --json: one JSON object {model: {path: figures}}.
"""
from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime import quantization as q

import tvm_codesign as tc
from tvm_codesign import models

ZOO = {  # small widths keep compile time low; the structure is the real one
    "resnet18": (lambda: models.resnet18(10, width=16), (1, 3, 32, 32)),
    "mobilenet_v2": (lambda: models.mobilenet_v2(10, width=0.35), (1, 3, 32, 32)),
    "transformer_encoder": (lambda: models.transformer_encoder(dim=32, heads=4, ff=64), (1, 16, 32)),
    "mlp": (lambda: models.mlp_model(din=64, hidden=64), (4, 64)),
}


def inputs(shape, n, first=0):
    return [np.random.default_rng(first + i).standard_normal(shape).astype(np.float32) for i in range(n)]


def agreement(outs, refs) -> dict:
    cos = [float((o * r).sum() / np.linalg.norm(o) / np.linalg.norm(r)) for o, r in zip(outs, refs)]
    top1 = np.mean([np.array_equal(o.argmax(-1), r.argmax(-1)) for o, r in zip(outs, refs)])
    return {"cosine_min": round(min(cos), 5), "top1": round(float(top1), 3)}


def run(name: str, cfg: str, tmp: Path) -> dict:
    build, shape = ZOO[name]
    model = build()
    calib, test = inputs(shape, 4), inputs(shape, 8, first=100)
    buf = io.BytesIO()
    torch.onnx.export(model, (torch.as_tensor(calib[0]),), buf, input_names=["x"], opset_version=17, dynamo=False)
    proto = onnx.load_from_string(buf.getvalue())
    fp32 = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    refs = [fp32.run(None, {"x": x})[0] for x in test]
    out = {}
    for path, src, kw in (("pytorch_ptq_alu", model, {}), ("pytorch_ptq_cpu", model, {"requant": "cpu"}),
                          ("onnx_ptq_alu", proto, {"input_shapes": {"x": list(shape)}})):
        t0 = time.perf_counter()
        cm = tc.compile(src, cfg, calibration=[(x,) for x in calib], **kw)
        out[path] = {"compile_s": round(time.perf_counter() - t0, 2), **agreement([cm(x) for x in test], refs),
                     "offloaded_mac_fraction": round(cm.offloaded_mac_fraction, 4)}

    onnx.save(proto, tmp / f"{name}.onnx")

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"x": x} for x in calib])

        def get_next(self):
            return next(self.it, None)

    q.quantize_static(str(tmp / f"{name}.onnx"), str(tmp / f"{name}_qdq.onnx"), Reader(),
                      quant_format=q.QuantFormat.QDQ, per_channel=True)
    qdq = onnx.load(tmp / f"{name}_qdq.onnx")
    t0 = time.perf_counter()
    cm = tc.compile(qdq, cfg)
    compile_s = time.perf_counter() - t0
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    ref = ort.InferenceSession(qdq.SerializeToString(), so, providers=["CPUExecutionProvider"])
    outs = [cm(x) for x in test]
    differ = sum(int((o != ref.run(None, {"x": x})[0]).sum()) for o, x in zip(outs, test))
    out["onnx_qdq"] = {"compile_s": round(compile_s, 2), **agreement(outs, refs),
                       "offloaded_mac_fraction": round(cm.offloaded_mac_fraction, 4),
                       "elements_differing_from_onnxruntime": differ, "elements": int(sum(o.size for o in outs))}
    return out


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="vta_default")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        res = {name: run(name, args.config, Path(d)) for name in ZOO}
    if not args.json:
        for name, paths in res.items():
            for path, figs in paths.items():
                print(f"{name:20s} {path:16s} {figs}")
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
