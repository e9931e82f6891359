"""Search efficiency of the XGBoost-guided search on ResNet-18, same budget, vs random search and exhaustive.

    .venv/bin/python benchmarks/search_efficiency.py --json

(1) edge space (30,375 configs), 5 seeds, budget 200, single objectives latency and EDP: evaluations the
model-guided search needs to reach random search's final best, as a fraction of the budget (worst seed).
The same is measured for ``xgboost`` (the XGBoost surrogates without the roofline prior, starting from random
picks) as an ablation: what the online model finds by itself.
(2) iso space (3,375 configs, enumerable): exhaustive optimum vs the model-guided search given 2 % of the
feasible points: relative gap of its best (worst over objectives). Last line with --json: one JSON object.
"""
from __future__ import annotations

import argparse
import json
import math
import tempfile

from _common import resnet18_layers

import tvm_codesign as tc

KEY = {"latency": "latency_s", "edp": "edp"}


def _run(layers, space, strategy, budget, objective, seed, out):
    return tc.tune(layers, space, strategy=strategy, budget=budget, objectives=[objective], seed=seed, out_dir=out,
                   progress=False, verify=0, write=False, run=f"{space}-{strategy}-{objective}-{seed}")


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    layers = resnet18_layers()
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for obj in ("latency", "edp"):
            for seed in range(a.seeds):
                rnd = _run(layers, "edge", "random", a.budget, obj, seed, out)
                target = min(r[KEY[obj]] for r in rnd.history if r["feasible"])
                row = {"objective": obj, "seed": seed, "random_best": target}
                for strategy, prefix in (("model", ""), ("xgboost", "xgboost_only_")):
                    res = _run(layers, "edge", strategy, a.budget, obj, seed, out)
                    vals = [r[KEY[obj]] if r["feasible"] else math.inf for r in res.history]
                    row[f"{prefix or 'model_'}best"] = min(vals)
                    row[f"{prefix}evals_to_match"] = next((i + 1 for i, v in enumerate(vals) if v <= target), None)
                rows.append(row)
                print(json.dumps(rows[-1]), flush=True)
        ex = {}
        full = tc.tune(layers, "iso", strategy="exhaustive", budget=10_000, objectives=["latency", "edp"], out_dir=out,
                       progress=False, verify=0, write=False, run="iso-exhaustive")  # one pass serves both
        for obj in ("latency", "edp"):
            n = len(full.history)
            k = max(1, int(0.02 * n))
            mdl = _run(layers, "iso", "model", k, obj, 0, out)
            opt = full.best[obj][KEY[obj]]
            ex[obj] = {"feasible_points": n, "budget": k, "optimum": opt, "model_best": mdl.best[obj][KEY[obj]],
                       "gap": mdl.best[obj][KEY[obj]] / opt - 1}
            print(json.dumps({obj: ex[obj]}), flush=True)
    fr = [(r["evals_to_match"] or math.inf) / a.budget for r in rows]
    fx = [(r["xgboost_only_evals_to_match"] or math.inf) / a.budget for r in rows]
    res = {"evals_to_match_random_fraction": max(fr), "evals_to_match_random_fraction_median": sorted(fr)[len(fr) // 2],
           "xgboost_only_evals_to_match_random_fraction": max(fx),
           "xgboost_only_evals_to_match_random_fraction_median": sorted(fx)[len(fx) // 2],
           "exhaustive_gap": max(e["gap"] for e in ex.values()),
           "exhaustive_evals_fraction": max(e["budget"] / e["feasible_points"] for e in ex.values()),
           "budget": a.budget, "seeds": a.seeds, "runs": rows, "exhaustive": ex}
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
