"""Roofline ratio of tuned schedules: ResNet-18 C2-C11 on vta_default, roofline bound / simulated cycles.

    .venv/bin/python benchmarks/roofline.py --json

Each layer: int8 in and out with the fused epilogue (bias, round + shift, relu, clip), as benchmarks/kernels.py.
The schedule is the tuner's: the analytical model ranks the layer's whole knob grid (tuner/knob_grid.py), its
top picks are compiled and timed, the fastest is kept and checked bit-exactly against numpy. Bound:
costmodel/roofline.py (padded block MACs at one per cycle, or inputs + weights read once and outputs written
once at the DRAM bandwidth); ``alu_ratio`` also counts the epilogue's ALU passes, which share the compute
module with the GEMM. ``int32_out`` repeats it without an epilogue. Last line with --json:
{"geomean", "min", "alu_geomean", "alu_min", "int32_out", "layers": [...]}.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

import tvm_codesign as tc  # noqa: E402
from tvm_codesign.costmodel import roofline_cycles  # noqa: E402
from tvm_codesign.schedules.resnet import resnet18_convs  # noqa: E402
from tvm_codesign.tuner import knob_grid  # noqa: E402


def tune_layer(wl, cfg, top: int) -> tuple:
    """The tuner's schedule for one layer: the model's ``top`` picks compiled and timed, the fastest kept."""
    best = None
    for k, pred in knob_grid.ranked(wl, cfg, top):
        st = tc.build(wl, cfg, knobs=k).time()
        if best is None or st.cycles < best[2]:
            best = (k, pred, st.cycles)
    return best


def layer_rows(cfg, epilogue: bool, top: int, verbose: bool) -> list[dict]:
    rng = np.random.default_rng(0)
    kw = dict(bias=True, shift=9, relu=True, out_dtype="int8") if epilogue else {}
    rows = []
    for wl in resnet18_convs(**kw)[1:]:
        k, pred, _ = tune_layer(wl, cfg, top)
        m = tc.build(wl, cfg, knobs=k)
        x = rng.integers(-128, 128, (wl.n, wl.ci, wl.h, wl.w), dtype=np.int8)
        w = rng.integers(-128, 128, (wl.co, wl.ci, wl.kh, wl.kw), dtype=np.int8)
        args = (x, w, rng.integers(-5000, 5000, wl.co).astype(np.int32)) if wl.bias else (x, w)
        if not np.array_equal(m(*args), wl.reference(*args)):
            raise SystemExit(f"{wl.name}: result differs from numpy")
        st, rf = m.stats, roofline_cycles(wl, cfg)
        rows.append({"name": wl.name, "cycles": st.cycles, "roofline_cycles": rf["bound"],
                     "ratio": round(rf["bound"] / st.cycles, 4), "alu_bound_cycles": rf["bound_alu"],
                     "alu_ratio": round(rf["bound_alu"] / st.cycles, 4), "predicted_cycles": round(float(pred["cycles"])),
                     "bound_by": "compute" if rf["compute"] >= rf["memory"] else "memory", "knobs": k.to_dict()})
        if verbose:
            r = rows[-1]
            print(f"{wl.name:4s} {st.cycles:9,d}  roofline {rf['bound']:9,d} ratio {r['ratio']:.3f}  "
                  f"with ALU {rf['bound_alu']:9,d} ratio {r['alu_ratio']:.3f}", flush=True)
    return rows


def geomean(xs) -> float:
    return round(math.exp(sum(map(math.log, xs)) / len(xs)), 4)


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="vta_default")
    ap.add_argument("--top", type=int, default=8, help="model picks compiled and timed per layer")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    cfg = tc.AcceleratorConfig.load(a.config)
    rows = layer_rows(cfg, True, a.top, not a.json)
    plain = layer_rows(cfg, False, a.top, not a.json)
    ratios = [r["ratio"] for r in rows]
    out = {"config": cfg.name, "top": a.top, "geomean": geomean(ratios), "min": min(ratios),
           "alu_geomean": geomean([r["alu_ratio"] for r in rows]), "alu_min": min(r["alu_ratio"] for r in rows),
           "int32_out": {"geomean": geomean([r["ratio"] for r in plain]), "min": min(r["ratio"] for r in plain),
                         "layers": plain},
           "layers": rows}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
