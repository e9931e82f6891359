"""Roofline ratio of tuned schedules: ResNet-18 C2-C11 on vta_default, roofline bound / simulated cycles.

    .venv/bin/python benchmarks/roofline.py --json

The schedule is the tuner's: the analytical model ranks the layer's whole knob grid (tuner/knob_grid.py), its
top picks are compiled and timed, the fastest is kept and checked bit-exactly against numpy. Bound:
costmodel/roofline.py (padded block MACs at one per cycle, or the input pixels some output reads + the weights
read once and the outputs written once at the DRAM bandwidth).

The headline keys (``geomean``, ``min``, ``layers``) are what ``compile`` runs by default: ResNet-18's C2-C11
kernels exactly as compile offloads them (benchmarks/_common.py: int8 out with the fused requantisation, bias,
multiply, shift and clip on the ALU; a layer whose instances differ in their clip, relu or not, is one kernel per
variant, 14 in all). Those ALU passes run on the compute module between GEMMs (as in VTA), which the bound does
not count: ``geomean_alu_aware`` / ``min_alu_aware`` measure against the bound that does (``bound_alu``), and
``ceiling`` (bound / ALU-aware bound) is the best ratio any schedule can reach. ``geomean_int32`` /
``min_int32`` (``int32.layers``) repeat the run on the convolutions alone, int8 x int8 -> int32 with no
epilogue (what ``compile(..., requant="cpu")`` offloads). Last line with --json: one JSON object.
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
from _common import resnet18_layers  # noqa: E402
from tvm_codesign.costmodel import roofline_cycles  # noqa: E402
from tvm_codesign.schedules.groups import kernel_workload  # noqa: E402
from tvm_codesign.schedules.resnet import LAYERS, resnet18_convs  # noqa: E402
from tvm_codesign.tuner import knob_grid  # noqa: E402

# (H, Cin, Cout, K, stride) -> VTA's name of the ResNet-18 layer (schedules/resnet.py)
_NAMES = {(hw, ci, co, k, s): name for name, hw, ci, co, k, _, s in LAYERS}


def tune_layer(wl, cfg, top: int) -> tuple:
    """The tuner's schedule for one layer: the model's ``top`` picks compiled and timed, the fastest kept."""
    best = None
    for k, pred in knob_grid.ranked(wl, cfg, top):
        st = tc.build(wl, cfg, knobs=k).time()
        if best is None or st.cycles < best[2]:
            best = (k, pred, st.cycles)
    return best


def compile_kernels(cfg) -> list:
    """C2-C11 as compile offloads ResNet-18 on ``cfg``: (name, kernel Workload), one per distinct kernel."""
    out = []
    for ly in resnet18_layers():
        wl = ly.workload
        name = _NAMES.get((wl.h, wl.ci, wl.co, wl.kh, wl.stride[0])) if wl.kind == "conv2d" else None
        if name and name != "C1":
            out.append((f"{name}{' relu' if wl.bounds[0] == 0 else ''}", kernel_workload(wl, cfg)))
    return sorted(out, key=lambda t: (int(t[0].split()[0][1:]), t[0]))


def layer_rows(cfg, kernels: list, top: int, verbose: bool) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for name, wl in kernels:
        k, pred, _ = tune_layer(wl, cfg, top)
        m = tc.build(wl, cfg, knobs=k)
        x = rng.integers(-128, 128, (wl.n, wl.ci, wl.h, wl.w), dtype=np.int8)
        w = rng.integers(-128, 128, (wl.co, wl.ci, wl.kh, wl.kw), dtype=np.int8)
        args = (x, w, rng.integers(-5000, 5000, wl.co).astype(np.int32)) if wl.bias else (x, w)
        if not np.array_equal(m(*args), wl.reference(*args)):
            raise SystemExit(f"{name}: result differs from numpy")
        st, rf = m.stats, roofline_cycles(wl, cfg)
        alu = rf.get("bound_alu")
        rows.append({"name": name, "cycles": st.cycles, "roofline_cycles": rf["bound"],
                     "ratio": round(rf["bound"] / st.cycles, 4), "alu_bound_cycles": alu,
                     "alu_ratio": round(alu / st.cycles, 4) if alu else None,
                     "ceiling": round(rf["bound"] / alu, 4) if alu else None,
                     "predicted_cycles": round(float(pred["cycles"])), "epilogue": [list(e) for e in wl.epilogue],
                     "bound_by": "compute" if rf["compute"] >= rf["memory"] else "memory", "knobs": k.to_dict()})
        if verbose:
            r = rows[-1]
            print(f"{name:8s} {st.cycles:9,d}  roofline {rf['bound']:9,d} ratio {r['ratio']:.3f}  "
                  f"with ALU {alu or 0:9,d} ratio {r['alu_ratio'] or 0:.3f}", flush=True)
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
    rows = layer_rows(cfg, compile_kernels(cfg), a.top, not a.json)
    plain = layer_rows(cfg, [(wl.name, wl) for wl in resnet18_convs()[1:]], a.top, not a.json)
    col = lambda rs, k: [r[k] for r in rs if r[k] is not None]
    out = {"config": cfg.name, "top": a.top,
           "workload": "ResNet-18 C2-C11 as compile offloads it (int8 out, fused bias, multiply, shift, clip)",
           "geomean": geomean(col(rows, "ratio")), "min": min(col(rows, "ratio")),
           "geomean_alu_aware": geomean(col(rows, "alu_ratio")) if col(rows, "alu_ratio") else None,
           "min_alu_aware": min(col(rows, "alu_ratio"), default=None),
           "ceiling_geomean": geomean(col(rows, "ceiling")) if col(rows, "ceiling") else None,
           "ceiling_min": min(col(rows, "ceiling"), default=None),
           "geomean_int32": geomean(col(plain, "ratio")), "min_int32": min(col(plain, "ratio")),
           "layers": rows, "int32": {"workload": "conv2d int8 x int8 -> int32, no epilogue", "layers": plain}}
    if not a.json:
        print(f"compile's default (int8, fused epilogue): geomean {out['geomean']:.3f}, min {out['min']:.3f}; "
              f"vs the ALU-aware bound {out['geomean_alu_aware']:.3f} / {out['min_alu_aware']:.3f}; ceiling "
              f"{out['ceiling_geomean']:.3f} / {out['ceiling_min']:.3f}")
        print(f"conv -> int32: geomean {out['geomean_int32']:.3f}, min {out['min_int32']:.3f}")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
