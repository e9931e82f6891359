"""Whole-ResNet-18 co-design over the edge space (30,375 configs) to a Pareto front: wall time.

    .venv/bin/python benchmarks/tune_wall.py --budget 1000 --json

Counts everything the CLI does: model import and quantisation, the feasible pool, the search (2 worker
processes), the front, verification of the best-latency config by compile + simulate, and the output files.
Last line with --json: {"wall_s", "configs_in_space", "evaluations", "front", "verified_layers", ...}.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import tvm_codesign as tc  # noqa: E402


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=1000)
    ap.add_argument("--space", default="edge")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        res = tc.tune("resnet18", a.space, budget=a.budget, workers=a.workers, out_dir=out, progress=False, verify=1)
        wall = time.perf_counter() - t0
    errs = sorted(abs(v["error"]) for v in res.verified)
    r = {"wall_s": round(wall, 1), "configs_in_space": res.space.size, "evaluations": res.evaluations,
         "front": len(res.front), "verified_layers": len(errs),
         "verify_median_abs_err": round(errs[len(errs) // 2], 4) if errs else None,
         "best_latency_ms": round(res.best["latency"]["latency_s"] * 1e3, 3),
         "baseline_latency_ms": round(res.baseline["latency_s"] * 1e3, 3)}
    if not a.json:
        print(res.table())
    print(json.dumps(r))
    return r


if __name__ == "__main__":
    main()
