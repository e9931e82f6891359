"""ResNet-18 conv layers C1-C11 on one config with the default schedule: instructions, simulated cycles,
roofline bound, ratio = bound / cycles, compile and simulation wall seconds.

    python benchmarks/kernels.py [--json] [--config vta_default]

Each layer is int8 in, int8 out with the fused epilogue (bias, round + shift, relu, clip), bit-exactness
checked against numpy. Last line with --json: {"layers": [{"name", "instructions", "cycles",
"roofline_cycles", "ratio", "compile_s", "sim_wall_s"}, ...]}.
"""
from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

import tvm_codesign as tc
from tvm_codesign.costmodel import roofline_cycles
from tvm_codesign.schedules.resnet import resnet18_convs


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="vta_default")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cfg = tc.AcceleratorConfig.load(args.config)
    rng = np.random.default_rng(0)
    tc.build(tc.Workload.dense(16, 16, 16), cfg)  # warm up TVM's JIT so compile_s measures the layer
    rows = []
    for wl in resnet18_convs(bias=True, shift=9, relu=True, out_dtype="int8"):
        t0 = time.perf_counter()
        m = tc.build(wl, cfg)
        compile_s = time.perf_counter() - t0
        x = rng.integers(-128, 128, (wl.n, wl.ci, wl.h, wl.w), dtype=np.int8)
        w = rng.integers(-128, 128, (wl.co, wl.ci, wl.kh, wl.kw), dtype=np.int8)
        b = rng.integers(-5000, 5000, wl.co).astype(np.int32)
        t0 = time.perf_counter()
        out = m(x, w, b)
        sim_s = time.perf_counter() - t0
        if not np.array_equal(out, wl.reference(x, w, b)):
            raise SystemExit(f"{wl.name}: result differs from numpy")
        bound = roofline_cycles(wl, cfg)["bound"]
        rows.append({"name": wl.name, "instructions": m.instructions, "cycles": m.stats.cycles,
                     "roofline_cycles": bound, "ratio": round(bound / m.stats.cycles, 4),
                     "compile_s": round(compile_s, 3), "sim_wall_s": round(sim_s, 3),
                     "utilisation": round(m.stats.utilisation, 4), "knobs": m.knobs.to_dict()})
    if not args.json:
        print(f"{'layer':6s} {'insns':>6s} {'cycles':>10s} {'roofline':>10s} {'ratio':>6s} {'compile s':>9s} {'sim s':>6s}")
        for r in rows:
            print(f"{r['name']:6s} {r['instructions']:6d} {r['cycles']:10,d} {r['roofline_cycles']:10,d} "
                  f"{r['ratio']:6.3f} {r['compile_s']:9.2f} {r['sim_wall_s']:6.2f}")
        g = math.exp(sum(math.log(r["ratio"]) for r in rows[1:]) / len(rows[1:]))
        print(f"geomean ratio C2-C11: {g:.3f}")
    out = {"config": cfg.name, "layers": rows}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
