"""Simulator demo: an int8 GEMM with requantisation on every preset, checked against numpy, with figures.

    python -m tvm_codesign [--size 512] [--configs vta_default,vta_batch4] [--asm program.s] [--json]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from .hardware.config import AcceleratorConfig, preset_names
from .simulator import Simulator
from .simulator.reference_gemm import pick_tiles, reference, tiled_gemm


def run_one(cfg: AcceleratorConfig, a: np.ndarray, w: np.ndarray, shift: int) -> dict:
    tiles = pick_tiles(cfg, a.shape[0], w.shape[0], a.shape[1])
    g = tiled_gemm(cfg, a, w, *tiles, shift=shift)
    sim = Simulator(cfg)
    t0 = time.perf_counter()
    st = sim.run(g.program, g.dram)
    wall = time.perf_counter() - t0
    exact = bool(np.array_equal(g.result(), reference(a, w, shift)))
    return {"config": cfg.name, "tiles": tiles, "instructions": len(g.program), "bit_exact": exact,
            "cycles": st.cycles, "latency_us": st.latency_us, "utilisation": st.utilisation,
            "energy_uj": st.energy_uj, "area_mm2": st.area_mm2["total"],
            "edp_uj_us": st.energy_uj * st.latency_us, "sim_wall_s": wall, "stats": st, "program": g.program}


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(prog="python -m tvm_codesign", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512, help="M = N = K of the GEMM (multiple of 64)")
    ap.add_argument("--configs", default=",".join(preset_names()), help="comma-separated presets or JSON paths")
    ap.add_argument("--shift", type=int, default=10, help="requantisation shift (round, shift, clip to int8)")
    ap.add_argument("--asm", help="write the first config's program as assembly to this file")
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = ap.parse_args(argv)
    if args.size <= 0 or args.size % 64:
        ap.error(f"--size must be a positive multiple of 64, got {args.size}")
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, (args.size, args.size), dtype=np.int8)
    w = rng.integers(-128, 128, (args.size, args.size), dtype=np.int8)
    print(f"int8 GEMM {args.size}^3 -> int32 -> (round, >> {args.shift}, clip) -> int8, checked against numpy\n")
    rows = []
    for name in args.configs.split(","):
        r = run_one(AcceleratorConfig.load(name.strip()), a, w, args.shift)
        rows.append(r)
        print(r["stats"].summary())
        print(f"  tiles (m, n, k) = {r['tiles']}, {r['instructions']} instructions, "
              f"bit-exact: {r['bit_exact']}, simulated in {r['sim_wall_s']:.2f} s\n")
    print(f"{'config':14s} {'cycles':>12s} {'latency us':>11s} {'util':>6s} {'energy uJ':>10s} {'area mm2':>9s} "
          f"{'EDP uJ*us':>11s}  exact")
    for r in rows:
        print(f"{r['config']:14s} {r['cycles']:12,d} {r['latency_us']:11,.1f} {100 * r['utilisation']:5.1f}% "
              f"{r['energy_uj']:10,.1f} {r['area_mm2']:9.2f} {r['edp_uj_us']:11,.0f}  {r['bit_exact']}")
    if args.asm:
        with open(args.asm, "w") as f:
            f.write(rows[0]["program"].disassemble() + "\n")
        print(f"\nassembly of {rows[0]['config']} written to {args.asm}")
    if args.json:
        print(json.dumps([{k: v for k, v in r.items() if k not in ("stats", "program")} for r in rows]))
    if not all(r["bit_exact"] for r in rows):
        raise SystemExit("MISMATCH against numpy")
    return rows
