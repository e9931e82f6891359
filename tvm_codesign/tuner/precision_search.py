"""Searches of the precision co-design space (tuner/precision.py) at a budget of network evaluations.

One network evaluation = every layer of the network costed once (``Costs.evals`` / layers: what a random or NSGA-II
point costs without cache hits, and what a knapsack over a hardware config costs per distinct (layer, mode)). Each
search returns its evaluated feasible points (least EDP first) and the evaluations it spent.
- ``model``: hardware in the order of the int8 roofline prior's EDP (``Pool.prior``, computed for the whole pool
  before anything is evaluated, as the hardware tuner's prior), then every core kind of it, each with its best
  quantisation (``best_assignment``), until the budget is spent.
- ``random``: uniform pool position and core kind among those within the space's limits, per-layer quantisation
  uniform among the assignments whose estimated drop is within the budget (rejection sampling on the area check and
  the estimate, which cost no evaluation; w8a8 everywhere after 1,000 rejections).
- ``nsga2``: optuna's NSGA-II sampler over (pool position, core kind, per-layer quantisation), minimising EDP and
  the estimated drop, with the accuracy budget and the space's limits as optuna constraints (a trial whose hardware
  is over the limits is told so and not counted).
The model search's prior (the int8 roofline over the whole pool, numpy, no schedule) is not counted, as in the
hardware tuner's search_efficiency figures.
"""
from __future__ import annotations

import logging

import numpy as np

from .network import Layer
from .precision import Problem, best_assignment, estimate


def _spent(p: Problem, start: int) -> float:
    return (p.costs.evals - start) / len(p.layers)


def model_guided(p: Problem, budget: float, seed: int = 0) -> tuple[list[dict], float]:
    lat, en = p.pool.prior([Layer(wl, 1, n) for n, wl in p.layers])
    order = np.argsort(lat * en, kind="stable")
    start, out = p.costs.evals, []
    for i in order.tolist():
        for core in range(len(p.cores)):
            if _spent(p, start) >= budget:
                return sorted(out, key=lambda r: r["edp"]), _spent(p, start)
            hw = p.hardware(i, core)
            if hw is None:
                continue
            best = best_assignment(p.costs, hw, p.layers, p.drops, p.budget, p.quant)
            if best is not None:
                out.append(p.evaluate(i, core, best[0]))
    return sorted(out, key=lambda r: r["edp"]), _spent(p, start)


def _pick(choices: tuple, rng):
    return choices[int(rng.integers(len(choices)))]


def random_search(p: Problem, budget: float, seed: int = 0) -> tuple[list[dict], float]:
    rng = np.random.default_rng(seed)
    out, n = [], 0
    start = p.costs.evals
    while n < budget:
        i, core = int(rng.integers(len(p.pool))), int(rng.integers(len(p.cores)))
        if p.hardware(i, core) is None:  # over the limits: known without an evaluation, drawn again for free
            continue
        for _ in range(1000):
            assign = {name: _pick(p.choices(name), rng) for name, _ in p.layers}
            if estimate(p.drops, assign) <= p.budget:
                break
        else:
            assign = {}
        r = p.evaluate(i, core, assign)
        n += 1  # a network evaluation, whatever the cache saved
        if r["feasible"]:
            out.append(r)
    return sorted(out, key=lambda r: r["edp"]), max(n, _spent(p, start))


def nsga2(p: Problem, budget: float, seed: int = 0) -> tuple[list[dict], float]:
    import optuna
    logging.getLogger("optuna").setLevel(logging.WARNING)
    sampler = optuna.samplers.NSGAIISampler(seed=seed)
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    out, n, trials = [], 0, 0
    while n < int(budget) and trials < 20 * int(budget):  # trials whose hardware is over the limits cost nothing
        trials += 1
        t = study.ask()
        i = t.suggest_int("hw", 0, len(p.pool) - 1)
        core = t.suggest_int("core", 0, len(p.cores) - 1)
        assign = {name: (c := p.choices(name))[t.suggest_int(name, 0, len(c) - 1)] for name, _ in p.layers}
        r = p.evaluate(i, core, assign)
        drop = estimate(p.drops, assign)
        built = "edp" in r  # hardware within the limits and every layer scheduled
        n += p.hardware(i, core) is not None
        t.set_constraint("accuracy", drop - p.budget)
        t.set_constraint("hardware", 0.0 if built else 1.0)
        if r["feasible"]:
            out.append(r)
        study.tell(t, [r["edp"] if built else 1e9, drop])
    return sorted(out, key=lambda r: r["edp"]), float(n)


SEARCHES = {"model": model_guided, "random": random_search, "nsga2": nsga2}
