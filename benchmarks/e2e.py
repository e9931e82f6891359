"""ResNet-18 end to end on one config: compile, simulate one inference, compare with onnxruntime fp32.

    python benchmarks/e2e.py [--json] [--config vta_default] [--size 224] [--requant alu|cpu]

Needs onnxruntime (pip install onnxruntime). Last line with --json: one JSON object with compile_s,
sim_wall_s (median of 3 inferences after the first: functional + timing; the first call also decodes every
instruction and checks races, reported as first_call_wall_s), ort_fp32_wall_s (median of 10), ratio = sim / ort
(target <= 10), simulated_latency_ms (accelerator cycles at the config's clock), offloaded_mac_fraction
(target >= 0.95), peak_rss_mb, and the cosine similarity to the float model. With --batch B (default 16; 0: skip)
also the same model compiled for B images (the default batch_programs="per_image": each conv2d one program per
image, all B images in one batched simulator pass; the dense one program): batch_sim_wall_s and
batch_ort_fp32_wall_s per image, ratio_batch16 = their ratio (issue 15's goal <= 3), batch_first_call_ratio,
batch_matches_single (each image's output equals the single-image model's), first_call_ratio = first call / later
call, and the simulated latency per image at batch B: batch_simulated_latency_ms (the default) and
batch_simulated_latency_ms_whole (batch_programs="whole": every layer one program for the B images, weights
reused across images; compiled, timed, not run).
"""
from __future__ import annotations

import argparse
import io
import json
import resource
import time

import numpy as np
import onnxruntime as ort
import torch

import tvm_codesign as tc
from tvm_codesign.models import resnet18
from tvm_codesign.runtime import entry


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="vta_default")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--calibration", type=int, default=4)
    ap.add_argument("--requant", default="alu", choices=["alu", "cpu"], help="where int8 requantisation runs")
    ap.add_argument("--batch", type=int, default=16, help="images of the batched run (0: skip it)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    s = args.size
    model = resnet18(1000)
    calib = [np.random.default_rng(i).standard_normal((1, 3, s, s)).astype(np.float32)
             for i in range(args.calibration)]
    x = np.random.default_rng(1234).standard_normal((1, 3, s, s)).astype(np.float32)

    t0 = time.perf_counter()
    cm = tc.compile(model, args.config, calibration=[(c,) for c in calib], requant=args.requant)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    cm(x)  # first call: links the module, decodes every instruction once
    first_s = time.perf_counter() - t0
    sims = []
    for _ in range(3):
        t0 = time.perf_counter()
        y = cm(x)
        sims.append(time.perf_counter() - t0)
    sim_s = float(np.median(sims))
    acc = [r for r in cm.profile() if r["device"] == "accelerator"]
    cycles = sum(r["cycles"] * r["calls"] for r in acc)

    buf = io.BytesIO()
    torch.onnx.export(model, (torch.as_tensor(x),), buf, input_names=["x"], opset_version=17, dynamo=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"x": x})[0]
    times = []
    for _ in range(10):
        t0 = time.perf_counter()
        sess.run(None, {"x": x})
        times.append(time.perf_counter() - t0)
    ort_s = float(np.median(times))
    out = {"config": args.config, "input": [1, 3, s, s], "requant": args.requant, "compile_s": round(compile_s, 2),
           "sim_wall_s": round(sim_s, 3), "first_call_wall_s": round(first_s, 3), "ort_fp32_wall_s": round(ort_s, 4), "ratio": round(sim_s / ort_s, 1),
           "simulated_latency_ms": round(cycles / cm.config.clock_mhz / 1e3, 3),
           "offloaded_mac_fraction": round(cm.offloaded_mac_fraction, 4),
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
           "cosine_to_float": round(float((y * ref).sum() / np.linalg.norm(y) / np.linalg.norm(ref)), 5),
           "top1_agrees": bool(y.argmax() == ref.argmax()), "first_call_ratio": round(first_s / sim_s, 2)}
    if args.batch:
        out.update(_batched(model, args, calib, x, y, sess_bytes=buf.getvalue()))
    if not args.json:
        for k, v in out.items():
            print(f"{k:24s} {v}")
    print(json.dumps(out))
    return out


def _batched(model, args, calib, x, y, sess_bytes) -> dict:
    """The model compiled for ``args.batch`` images (calibrated on the same images, so the quantisation is the
    single-image model's): per-image wall times beside onnxruntime's at the same batch."""
    B, s = args.batch, args.size
    xb = np.concatenate([x] + [np.random.default_rng(50 + i).standard_normal((1, 3, s, s)).astype(np.float32)
                               for i in range(B - 1)])
    cal = [(np.concatenate([c] * B),) for c in calib]
    t0 = time.perf_counter()
    cm = tc.compile(model, args.config, calibration=cal, requant=args.requant)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    cm(xb)
    first_s = time.perf_counter() - t0
    sims = []
    for _ in range(2):
        t0 = time.perf_counter()
        yb = cm(xb)
        sims.append(time.perf_counter() - t0)
    per_ms = sum(r["cycles"] * r["calls"] for r in cm.profile() if r["device"] == "accelerator") / B
    whole = tc.compile(model, args.config, calibration=cal, requant=args.requant, batch_programs="whole")
    whole_ms = sum(entry.BY_NAME[k["name"]].time().cycles * whole.calls[k["name"]] for k in whole.kernels) / B
    bufb = io.BytesIO()
    torch.onnx.export(model, (torch.as_tensor(xb),), bufb, input_names=["x"], opset_version=17, dynamo=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(bufb.getvalue(), opts, providers=["CPUExecutionProvider"])
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        sess.run(None, {"x": xb})
        times.append(time.perf_counter() - t0)
    sim_s, ort_s = float(np.median(sims)) / B, float(np.median(times)) / B
    return {"batch": B, "batch_compile_s": round(compile_s, 1), "batch_sim_wall_s": round(sim_s, 4),
            "batch_ort_fp32_wall_s": round(ort_s, 5), "ratio_batch16": round(sim_s / ort_s, 1),
            "batch_first_call_ratio": round(first_s / float(np.median(sims)), 2),
            "batch_matches_single": bool(np.array_equal(yb[:1], y)),
            "batch_simulated_latency_ms": round(per_ms / cm.config.clock_mhz / 1e3, 3),
            "batch_simulated_latency_ms_whole": round(whole_ms / cm.config.clock_mhz / 1e3, 3)}


if __name__ == "__main__":
    main()
