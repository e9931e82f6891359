"""Depthwise convolutions on the GEMM core: merged groups (block-diagonal weights) vs one group per block, and
an optimistic estimate of the ALU alternative.

    python benchmarks/grouped.py [--json] [--model mobilenet_v2] [--input-shape 1,3,224,224] [--config vta_default]

For every grouped layer of the model as ``compile`` offloads it (``tuner.workloads.load``), with the analytical
model's best schedule for each kernel, simulated (timing run): cycles with ``merge = 1`` and with the merge
``compile`` picks (``schedules/groups.py``). ``alu_bound`` is a lower bound for running the same layer on the
ALU instead (no such schedule exists): per tap a multiply by the weight vector and an add, each a pass of
``alu_ii_vec`` cycles (vector operands) per ``alu_lanes`` of a BATCH x BLOCK_OUT vector, plus the epilogue
passes (``groups.alu_cycles_per_vector``); inputs and weights moved into the
accumulator SRAM as int32 at the DRAM bandwidth; compute and DRAM fully overlapped, no instruction overhead.
Last line with --json: {"layers": [...], "total": {...}}.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import tvm_codesign as tc  # noqa: E402
from tvm_codesign.schedules.groups import alu_cycles_per_vector  # noqa: E402
from tvm_codesign.schedules import groups as G  # noqa: E402
from tvm_codesign.tuner import knob_grid  # noqa: E402
from tvm_codesign.tuner.workloads import load  # noqa: E402


def alu_bound(wl: tc.Workload, cfg: tc.AcceleratorConfig) -> float:
    vecs = math.ceil(wl.n / cfg.batch) * math.ceil(wl.channels_out / cfg.block_out) * wl.oh * wl.ow
    compute = vecs * (2 * wl.kh * wl.kw * cfg.alu_ii_vec * cfg.alu_passes + alu_cycles_per_vector(wl, cfg))
    acc_b = cfg.acc_bits // 8
    out_b = cfg.out_bits // 8 if wl.out_dtype == "int8" else acc_b
    dram = (wl.n * wl.channels_in * wl.h * wl.w * acc_b + wl.channels_out * wl.ci * wl.kh * wl.kw * acc_b
            + wl.n * wl.channels_out * wl.oh * wl.ow * out_b)
    return max(compute, dram / cfg.dram_bandwidth)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mobilenet_v2")
    ap.add_argument("--input-shape", default="1,3,224,224")
    ap.add_argument("--config", default="vta_default")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    cfg = tc.AcceleratorConfig.load(a.config)
    _, layers = load(a.model, [int(s) for s in a.input_shape.split(",")])
    rows = []
    for ly in layers:
        wl = ly.workload
        if wl.kind != "conv2d" or wl.groups == 1:
            continue
        row = {"layer": wl.describe(), "count": ly.count, "macs": wl.macs, "alu_bound": alu_bound(wl, cfg)}
        for label, k in (("one", 1), ("merged", None)):
            kwl = G.merged(wl, cfg, k)
            knobs, fig = knob_grid.best(kwl, cfg)
            row[label] = tc.build(kwl, cfg, knobs=knobs).time().cycles
            row[f"{label}_model"] = float(fig["cycles"])
            row["merge"] = kwl.merge
        rows.append(row)
        if not a.json:
            print(f"{row['layer']:48s} x{ly.count}  merge {row['merge']:3d}: {row['merged']:>9,} cycles, one group "
                  f"per block {row['one']:>10,} ({row['one'] / row['merged']:.1f}x), ALU bound "
                  f"{row['alu_bound']:>9,.0f} ({row['alu_bound'] / row['merged']:.2f}x)")
    tot = {f: sum(r[f] * r["count"] for r in rows) for f in ("one", "merged", "alu_bound", "macs")}
    out = {"config": cfg.name, "model": a.model, "input_shape": a.input_shape, "layers": rows, "total": tot}
    if not a.json:
        print(f"total: merged {tot['merged']:,} cycles, one group per block {tot['one']:,} "
              f"({tot['one'] / tot['merged']:.1f}x), ALU bound {tot['alu_bound']:,.0f}")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
