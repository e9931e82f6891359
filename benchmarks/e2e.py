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
    first_s, sim_s, y = _sim_times(cm, x, 3)  # the first call links the module, decodes every instruction once
    cycles = sum(r["cycles"] * r["calls"] for r in cm.profile() if r["device"] == "accelerator")
    ref, ort_s = _ort_times(model, x, 10)
    out = {"config": args.config, "input": [1, 3, s, s], "requant": args.requant, "compile_s": round(compile_s, 2),
           "sim_wall_s": round(sim_s, 3), "first_call_wall_s": round(first_s, 3), "ort_fp32_wall_s": round(ort_s, 4), "ratio": round(sim_s / ort_s, 1),
           "simulated_latency_ms": round(cycles / cm.config.clock_mhz / 1e3, 3),
           "offloaded_mac_fraction": round(cm.offloaded_mac_fraction, 4),
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
           "cosine_to_float": round(float((y * ref).sum() / np.linalg.norm(y) / np.linalg.norm(ref)), 5),
           "top1_agrees": bool(y.argmax() == ref.argmax()), "first_call_ratio": round(first_s / sim_s, 2)}
    if args.batch:
        out.update(_batched(model, args, calib, x, y))
    if not args.json:
        for k, v in out.items():
            print(f"{k:24s} {v}")
    print(json.dumps(out))
    return out


def _sim_times(cm, x, n: int) -> tuple[float, float, np.ndarray]:
    """(first call's wall s, median of ``n`` later calls, the output) of a compiled model on ``x``."""
    t0 = time.perf_counter()
    cm(x)
    first_s, times = time.perf_counter() - t0, []
    for _ in range(n):
        t0 = time.perf_counter()
        y = cm(x)
        times.append(time.perf_counter() - t0)
    return first_s, float(np.median(times)), y


def _ort_times(model, x, n: int) -> tuple[np.ndarray, float]:
    """(onnxruntime fp32's output, median wall s of ``n`` runs with 2 threads) of the torch model on ``x``."""
    buf = io.BytesIO()
    torch.onnx.export(model, (torch.as_tensor(x),), buf, input_names=["x"], opset_version=17, dynamo=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])
    ref, times = sess.run(None, {"x": x})[0], []
    for _ in range(n):
        t0 = time.perf_counter()
        sess.run(None, {"x": x})
        times.append(time.perf_counter() - t0)
    return ref, float(np.median(times))


def _batched(model, args, calib, x, y) -> dict:
    """The model compiled for ``args.batch`` images (calibrated on the same images, so the quantisation is the
    single-image model's): per-image wall times beside onnxruntime's at the same batch, and the simulated latency
    per image of the default (per-image programs) and of ``batch_programs="whole"`` (timed, not run)."""
    B, s = args.batch, args.size
    xb = np.concatenate([x] + [np.random.default_rng(50 + i).standard_normal((1, 3, s, s)).astype(np.float32)
                               for i in range(B - 1)])
    cal = [(np.concatenate([c] * B),) for c in calib]
    t0 = time.perf_counter()
    cm = tc.compile(model, args.config, calibration=cal, requant=args.requant)
    compile_s = time.perf_counter() - t0
    first_s, sim_call_s, yb = _sim_times(cm, xb, 2)
    per_cycles = sum(r["cycles"] * r["calls"] for r in cm.profile() if r["device"] == "accelerator") / B
    whole = tc.compile(model, args.config, calibration=cal, requant=args.requant, batch_programs="whole")
    whole_cycles = sum(entry.BY_NAME[k["name"]].time().cycles * whole.calls[k["name"]] for k in whole.kernels) / B
    _, ort_call_s = _ort_times(model, xb, 5)
    sim_s, ort_s, ms = sim_call_s / B, ort_call_s / B, lambda c: round(c / cm.config.clock_mhz / 1e3, 3)
    return {"batch": B, "batch_compile_s": round(compile_s, 1), "batch_sim_wall_s": round(sim_s, 4),
            "batch_ort_fp32_wall_s": round(ort_s, 5), "ratio_batch16": round(sim_s / ort_s, 1),
            "batch_first_call_ratio": round(first_s / sim_call_s, 2),
            "batch_matches_single": bool(np.array_equal(yb[:1], y)),
            "batch_simulated_latency_ms": ms(per_cycles), "batch_simulated_latency_ms_whole": ms(whole_cycles)}


if __name__ == "__main__":
    main()
