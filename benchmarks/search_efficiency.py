"""Search efficiency on ResNet-18: the search itself (no prior) and with the roofline prior, vs random and NSGA-II.

    .venv/bin/python benchmarks/search_efficiency.py --json

Every strategy gets the same number of evaluations (``--budget``, each one config on the whole network with its
tuned schedules). The default ``model`` strategy first scores every feasible config of the space with the
roofline prior (``tuner/pool.py``, numpy, no schedule) and evaluates the prior's best first; those scorings are
not evaluations but are counted here (``prior_scored``) so that "1 of 200 evaluations" is read as "1 of 200
after the prior scored all N" (N printed as ``prior_scored``). The measure of the search itself is ``xgboost``: the same XGBoost
surrogates without the prior, starting from random picks.

(1) edge space, ``--seeds`` seeds, single objectives latency and EDP: for random, nsga2 (optuna NSGA-II),
xgboost (no prior) and model (prior + XGBoost): the best after ``--budget`` evaluations as a gap to the best any
run found (``best_known``; edge is too large to enumerate here), and the evaluations each needs to reach random
search's best (as a fraction of the budget; median and worst seed; never reaching it counts as infinite and
prints null).
(2) iso space (enumerable): exhaustive optimum vs model and xgboost given 2 % of the feasible configs: relative
gap of their best (worst over the two objectives).
(3) the precision co-design space (tuner/precision.py: ``--precision-space`` hardware (iso) x six core kinds x
per-layer w8/4/2 a8/4 dense or 2:4 on ResNet-18's 21 named layers; ``precision_space_size``), accuracy budget 1
point of the per-layer sensitivity estimate (random weights: top-1 agreement with fp32 on 64 random inputs, cached
in /tmp): model (prior-ordered hardware, then an XGBoost surrogate, each with its exact knapsack), random
(rejection on the estimate) and NSGA-II at ``--precision-budget`` network evaluations each (the model search starts no
knapsack its remaining budget cannot pay for), ``--seeds`` seeds: best feasible EDP
and the hypervolume of (latency, energy) of the feasible
points (reference: 1.1 x the worst feasible point any run found, normalised by its box). ``edp_gain_vs_random``:
median over seeds of random's best EDP / model's. Last line with --json: one JSON object.
"""
from __future__ import annotations

import argparse
import json
import math
import tempfile

from _common import resnet18_layers

import tvm_codesign as tc
from tvm_codesign.hardware.space import DesignSpace
from tvm_codesign.tuner.pool import Pool

KEY = {"latency": "latency_s", "edp": "edp"}
STRATEGIES = ("random", "nsga2", "xgboost", "model")


def _run(layers, space, strategy, budget, objectives, seed, out):
    return tc.tune(layers, space, strategy=strategy, budget=budget, objectives=objectives, seed=seed, out_dir=out,
                   progress=False, verify=0, write=False, run=f"{space}-{strategy}-{'-'.join(objectives)}-{seed}")


def _values(res, obj):
    """The objective of every evaluation, in order (infinite where infeasible)."""
    return [r[KEY[obj]] if r["feasible"] else math.inf for r in res.history]


def _median(x):
    s = sorted(x)
    return s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--precision-budget", type=int, default=200)
    ap.add_argument("--precision-space", default="iso", help="hardware space of the precision part (iso_alu: with "
                    "ALU stages)")
    ap.add_argument("--only", choices=["hardware", "precision"], default=None, help="run one part")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.only == "precision":
        res = precision_space(a.precision_budget, a.seeds, a.precision_space)
        print(json.dumps(res))
        return res
    layers = resnet18_layers()
    scored = {sp: len(Pool(DesignSpace.load(sp))) for sp in ("edge", "iso")}  # what the prior scores
    runs = []
    with tempfile.TemporaryDirectory() as out:
        for seed in range(a.seeds):
            rnd = _run(layers, "edge", "random", a.budget, ["latency", "edp"], seed, out)  # one run serves both
            for obj in ("latency", "edp"):
                vals = {"random": _values(rnd, obj)}
                for s in STRATEGIES[1:]:
                    vals[s] = _values(_run(layers, "edge", s, a.budget, [obj], seed, out), obj)
                target = min(vals["random"])
                row = {"objective": obj, "seed": seed, "evaluations": {s: len(v) for s, v in vals.items()},
                       "best": {s: min(v) for s, v in vals.items()},
                       "evals_to_match_random": {s: next((i + 1 for i, v in enumerate(vals[s]) if v <= target), None)
                                                 for s in STRATEGIES[1:]}}
                runs.append(row)
                print(json.dumps(row), flush=True)
        iso = {}
        full = tc.tune(layers, "iso", strategy="exhaustive", budget=10_000, objectives=["latency", "edp"], out_dir=out,
                       progress=False, verify=0, write=False, run="iso-exhaustive")  # one pass serves both
        n = len(full.history)
        k = max(1, int(0.02 * n))
        for obj in ("latency", "edp"):
            opt = full.best[obj][KEY[obj]]
            iso[obj] = {"feasible_configs": n, "evaluations": k, "optimum": opt}
            for s in ("model", "xgboost"):
                got = min(_values(_run(layers, "iso", s, k, [obj], 0, out), obj))
                iso[obj][s] = {"best": got, "gap": got / opt - 1}
            print(json.dumps({obj: iso[obj]}), flush=True)
    best_known = {o: min(min(r["best"].values()) for r in runs if r["objective"] == o) for o in KEY}
    res = {"budget": a.budget, "seeds": a.seeds, "prior_scored": scored["edge"], "best_known": best_known}
    for s in STRATEGIES:
        gaps = [r["best"][s] / best_known[r["objective"]] - 1 for r in runs]
        res[f"{s}_gap_to_best_known_median"], res[f"{s}_gap_to_best_known_worst"] = _median(gaps), max(gaps)
        if s != "random":
            fr = [(r["evals_to_match_random"][s] or math.inf) / a.budget for r in runs]
            fin = lambda x: x if math.isfinite(x) else None  # noqa: E731  (never reached: null, valid JSON)
            res[f"{s}_evals_to_match_random_fraction_median"] = fin(_median(fr))
            res[f"{s}_evals_to_match_random_fraction"] = fin(max(fr))
    res.update({"iso_prior_scored": scored["iso"], "iso_evaluations": max(e["evaluations"] for e in iso.values()),
                "exhaustive_evals_fraction": max(e["evaluations"] / e["feasible_configs"] for e in iso.values()),
                "exhaustive_gap": max(e["model"]["gap"] for e in iso.values()),
                "xgboost_exhaustive_gap": max(e["xgboost"]["gap"] for e in iso.values()),
                "runs": runs, "iso": iso})
    if a.only is None:
        res.update(precision_space(a.precision_budget, a.seeds, a.precision_space))
    print(json.dumps(res))
    return res


def _hypervolume(points: list, ref: tuple) -> float:
    """Area dominated by (latency, energy) points below ``ref``, normalised by the reference box."""
    pts = sorted({(min(x, ref[0]), min(y, ref[1])) for x, y in points})
    hv, best_y = 0.0, ref[1]
    for i, (x, y) in enumerate(pts):
        if y < best_y:
            nxt = ref[0]
            hv += (nxt - x) * (best_y - y)
            best_y = y
    return hv / (ref[0] * ref[1])


def precision_space(budget: int, seeds: int, space_name: str = "iso") -> dict:
    from _common import resnet18_drops
    from tvm_codesign.tuner import precision as P, precision_search as PS
    layers, drops = resnet18_drops()
    space = DesignSpace.load(space_name)
    runs = []
    for seed in range(seeds):
        row = {"seed": seed}
        for s in ("model", "random", "nsga2"):  # a fresh layer-cost cache per run: no run spends another's work
            p = P.Problem(space, layers, drops, 1.0, seed)
            recs, spent = PS.SEARCHES[s](p, budget, seed)
            if spent > budget + 1e-9:
                raise RuntimeError(f"{s} spent {spent} evaluations of {budget}")
            row[s] = {"best_edp": recs[0]["edp"] if recs else None, "feasible": len(recs), "evaluations": spent,
                      "points": [(r["latency_s"], r["energy_j"]) for r in recs]}
        runs.append(row)
        print(json.dumps({"seed": seed, **{s: {k: v for k, v in row[s].items() if k != "points"}
                                           for s in ("model", "random", "nsga2")}}), flush=True)
    allpts = [pt for r in runs for s in ("model", "random", "nsga2") for pt in r[s]["points"]]
    ref = (1.1 * max(x for x, _ in allpts), 1.1 * max(y for _, y in allpts))
    out = {"precision_space_size": P.Problem(space, layers, drops, 1.0).size, "precision_budget": budget,
           "precision_space": space_name,
           "precision_layers": len(layers)}
    for s in ("model", "random", "nsga2"):
        out[f"precision_{s}_hypervolume_median"] = _median([_hypervolume(r[s]["points"], ref) for r in runs])
        out[f"precision_{s}_best_edp_median"] = _median([r[s]["best_edp"] or math.inf for r in runs])
    gains = [(r["random"]["best_edp"] or math.inf) / r["model"]["best_edp"] for r in runs]
    gn = [(r["nsga2"]["best_edp"] or math.inf) / r["model"]["best_edp"] for r in runs]
    fin = lambda x: x if math.isfinite(x) else None  # noqa: E731
    out.update(edp_gain_vs_random=fin(_median(gains)), edp_gain_vs_random_worst=fin(min(gains)),
               edp_gain_vs_nsga2=fin(_median(gn)),
               precision_runs=[{k: (v if k == "seed" else {a: b for a, b in v.items() if a != "points"})
                                for k, v in r.items()} for r in runs])
    return out


if __name__ == "__main__":
    main()
