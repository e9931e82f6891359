"""Analytical cost model: evaluations per second (one vectorised call) and agreement with the simulator.

    .venv/bin/python benchmarks/cost_model.py --points 1000 --seed 0 --json

Points: random (preset, layer, valid knobs) from ``costmodel.sampling.random_points``; the simulator
runs each compiled program (``tc.build(...).time()``). Last line with --json: one JSON object with
``evals_per_s``, ``median_abs_err``, ``p90_abs_err``, ``max_abs_err``, ``spearman``, ``points``; with
``--mode-points N`` (default 300) also ``modes_median_abs_err`` / ``modes_p90_abs_err`` / ``modes_spearman`` and
``modes_median_abs_err_by_mode`` on N points of precision-flexible, 2:4-capable presets run in a random mode
(``random_points(modes=True)``: the layer's input channels scale with the mode's reduction tile).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

import tvm_codesign as tc  # noqa: E402
from tvm_codesign.costmodel import analytical  # noqa: E402
from tvm_codesign.costmodel.sampling import random_points  # noqa: E402


def spearman(a, b) -> float:
    ra, rb = (np.argsort(np.argsort(x, kind="stable"), kind="stable").astype(float) for x in (a, b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1000, help="random points simulated for agreement")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--candidates", type=int, default=200_000, help="candidates in the timed vectorised call")
    ap.add_argument("--mode-points", type=int, default=300, help="random points in precision / sparsity modes")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    pts = random_points(a.points, a.seed)
    t0 = time.perf_counter()
    sim = np.array([tc.build(wl, cfg, knobs=k).time().cycles for wl, cfg, k in pts], float)
    t_sim = time.perf_counter() - t0
    cols = analytical.columns(pts)
    pred = analytical.evaluate(cols)["cycles"]
    err = np.abs(pred / sim - 1)
    reps = -(-a.candidates // len(pts))
    big = {f: np.tile(v, reps)[:a.candidates] for f, v in cols.items()}
    analytical.evaluate({f: v[:1000] for f, v in big.items()})  # warm-up
    best = min(_timed(big) for _ in range(3))
    out = {"evals_per_s": a.candidates / best, "candidates": a.candidates, "median_abs_err": float(np.median(err)),
           "p90_abs_err": float(np.percentile(err, 90)), "max_abs_err": float(err.max()),
           "spearman": spearman(pred, sim), "points": len(pts), "seed": a.seed, "simulate_s": t_sim}
    if a.mode_points:
        mp = random_points(a.mode_points, a.seed, modes=True)
        ms = np.array([tc.build(wl, cfg, knobs=k).time().cycles for wl, cfg, k in mp], float)
        mpred = analytical.evaluate(analytical.columns(mp))["cycles"]
        merr = np.abs(mpred / ms - 1)
        by = {}
        for (_, cfg, _), e in zip(mp, merr):
            by.setdefault(cfg.mode or "w8a8", []).append(e)
        out.update(modes_median_abs_err=float(np.median(merr)), modes_p90_abs_err=float(np.percentile(merr, 90)),
                   modes_spearman=spearman(mpred, ms), mode_points=len(mp),
                   modes_median_abs_err_by_mode={m: float(np.median(v)) for m, v in sorted(by.items())})
    if not a.json:
        print(f"{a.candidates:,} candidates in {best:.3f} s = {out['evals_per_s']:,.0f} evals/s; "
              f"{len(pts)} points: median |err| {out['median_abs_err']:.2%}, p90 {out['p90_abs_err']:.2%}, "
              f"max {out['max_abs_err']:.2%}, Spearman {out['spearman']:.4f}")
    print(json.dumps(out))
    return out


def _timed(cols) -> float:
    t = time.perf_counter()
    analytical.evaluate(cols)
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
