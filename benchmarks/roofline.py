"""Roofline ratio of tuned schedules: ResNet-18 C2-C11 on vta_default, roofline bound / simulated cycles.

    .venv/bin/python benchmarks/roofline.py --json

The schedule is the tuner's: the analytical model ranks the layer's whole knob grid (tuner/knob_grid.py), its
top picks are compiled and timed, the fastest is kept and checked bit-exactly against numpy. Bound:
costmodel/roofline.py (padded block MACs at one per cycle, or the input pixels some output reads + the weights
read once and the outputs written once at the DRAM bandwidth).

The headline keys (``geomean``, ``min``, ``layers``) are the convolutions exactly as that bound counts them:
int8 x int8 -> int32, no epilogue. ``int8_epilogue`` repeats the run with the fused bias, round + shift, relu
and clip, stored as int8: those ALU passes run on the compute module between GEMMs (as in VTA), which the
bound does not count, so ``ceiling`` (bound / ALU-aware bound) is the best ratio any schedule can reach there,
and ``alu_ratio`` measures against the ALU-aware bound. Last line with --json: one JSON object.
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
    plain = layer_rows(cfg, False, a.top, not a.json)
    epi = layer_rows(cfg, True, a.top, not a.json)
    for r in epi:
        r["ceiling"] = round(r["roofline_cycles"] / r["alu_bound_cycles"], 4)
    ratios = [r["ratio"] for r in plain]
    out = {"config": cfg.name, "top": a.top, "workload": "conv2d int8 x int8 -> int32",
           "geomean": geomean(ratios), "min": min(ratios), "layers": plain,
           "int8_epilogue": {"geomean": geomean([r["ratio"] for r in epi]), "min": min(r["ratio"] for r in epi),
                             "ceiling_geomean": geomean([r["ceiling"] for r in epi]),
                             "ceiling_min": min(r["ceiling"] for r in epi),
                             "alu_geomean": geomean([r["alu_ratio"] for r in epi]),
                             "alu_min": min(r["alu_ratio"] for r in epi), "layers": epi}}
    if not a.json:
        e = out["int8_epilogue"]
        print(f"conv -> int32: geomean {out['geomean']:.3f}, min {out['min']:.3f}  (target >= 0.90, >= 0.80)")
        print(f"int8 epilogue: geomean {e['geomean']:.3f}, min {e['min']:.3f}; ceiling {e['ceiling_geomean']:.3f}"
              f" / {e['ceiling_min']:.3f}; vs ALU-aware bound {e['alu_geomean']:.3f} / {e['alu_min']:.3f}")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
