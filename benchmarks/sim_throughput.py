"""Simulator throughput: functional GMAC/s on a large tiled int8 GEMM, timing-only instructions/s.

    python benchmarks/sim_throughput.py [--json] [--config vta_default] [--size 1024] [--repeat 3]

Targets (issue "The accelerator itself", 2-core machine): functional >= 5 GMAC/s, timing >= 100,000 insn/s.
The last line printed with --json is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

from tvm_codesign import AcceleratorConfig, Simulator
from tvm_codesign.simulator.program import Program
from tvm_codesign.simulator.reference_gemm import reference, tiled_gemm


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="vta_default")
    ap.add_argument("--size", type=int, default=1024, help="M = N = K of the functional GEMM")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cfg = AcceleratorConfig.load(args.config)
    rng = np.random.default_rng(0)
    s = args.size
    a = rng.integers(-128, 128, (s, s), dtype=np.int8)
    w = rng.integers(-128, 128, (s, s), dtype=np.int8)

    # functional: large tiles (few, big instructions), like a compiled layer
    big = tiled_gemm(cfg, a, w, tile_m=32, tile_n=32, tile_k=16)
    sim = Simulator(cfg)
    fresh = iter([Program.decode(cfg, big.program.encode()) for _ in range(args.repeat)])  # nothing decoded yet
    cold_s = best_of(lambda: sim.run(next(fresh), big.dram.copy()), args.repeat)
    func_s = best_of(lambda: sim.run(big.program, big.dram.copy()), args.repeat)  # re-runs reuse decoded plans
    dram = big.dram.copy()
    stats = sim.run(big.program, dram)
    exact = bool(np.array_equal(big.result(dram), reference(a, w)))

    # timing only: small tiles give a long instruction stream
    small = tiled_gemm(cfg, a, w, tile_m=4, tile_n=4, tile_k=8)
    n_small = len(small.program)
    # a fresh copy each time: a program is timed once and its timeline reused, which would time a cache hit
    copies = iter([Program.decode(cfg, small.program.encode()) for _ in range(args.repeat)])
    time_s = best_of(lambda: sim.time(next(copies)), args.repeat)

    out = {
        "config": cfg.name,
        "gemm": [s, s, s],
        "functional_instructions": len(big.program),
        "functional_wall_s": round(func_s, 4),
        "functional_gmacs_per_s": round(stats.macs / func_s / 1e9, 2),
        "functional_first_run_gmacs_per_s": round(stats.macs / cold_s / 1e9, 2),
        "functional_bit_exact": exact,
        "timing_instructions": n_small,
        "timing_wall_s": round(time_s, 4),
        "timing_instructions_per_s": round(n_small / time_s),
        "simulated_cycles_functional_program": stats.cycles,
        "machine": f"{platform.machine()} {platform.python_version()}",
    }
    if not args.json:
        for k, v in out.items():
            print(f"{k:40s} {v}")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
