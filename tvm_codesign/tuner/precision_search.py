"""Searches of the precision co-design space (tuner/precision.py) at a budget of network evaluations.

One network evaluation = every layer of the network costed once (``Costs.evals`` / layers: what a random or NSGA-II
point costs without cache hits, and what a knapsack over a hardware config costs per distinct (layer, mode); the
model search starts no knapsack its remaining budget cannot pay for, so it ends within its budget). Each
search returns its evaluated feasible points (least EDP first) and the evaluations it spent.
- ``model``: hardware in the order of the int8 roofline prior's EDP (``Pool.prior``, computed for the whole pool
  before anything is evaluated, as the hardware tuner's prior), every core kind of it, each with its best
  quantisation (``best_assignment``), for a quarter of the budget; then, as the hardware tuner's ``model`` search
  (search.py), an XGBoost surrogate learns log(best EDP / prior EDP) from what was evaluated and its predicted best
  (config, core kind) are evaluated next, with seeded random picks among the prior's better half for exploration.
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
from .precision import Problem, best_assignment, estimate, knapsack_evals
from .search import xgb_params


def _spent(p: Problem, start: int) -> float:
    return (p.costs.evals - start) / len(p.layers)


def model_guided(p: Problem, budget: float, seed: int = 0, head: float = 0.25,
                 batch: int = 4) -> tuple[list[dict], float]:
    """The prior's order for ``head`` of the budget (every core kind of each config), then an XGBoost surrogate of
    log(best EDP / prior EDP) over (config features, core kind) picks the predicted best unvisited (config, core),
    ``batch`` per fit, one pick in eight at random among the prior's better half (seeded exploration)."""
    lat, en = p.pool.prior([Layer(wl, 1, n) for n, wl in p.layers])
    prior = np.log(lat * en)
    n_c = len(p.cores)
    taken = np.zeros(len(prior) * n_c, bool)  # candidate k = position * n_c + core
    start, out, seen = p.costs.evals, [], []
    rng = np.random.default_rng(seed)
    full = False  # a knapsack the remaining budget cannot pay for was met: the search ends within its budget

    def more() -> bool:
        return not full and _spent(p, start) < budget and not taken.all()

    def visit(k: int) -> bool:
        """Evaluate candidate k; False if its hardware is over the limits (known without an evaluation) or its
        knapsack would pass the budget (then ``full``)."""
        nonlocal full
        i, core = divmod(k, n_c)
        hw = p.hardware(i, core)
        if hw is None:
            taken[k] = True
            return False
        if _spent(p, start) + knapsack_evals(p.costs, hw, p.layers, p.drops, p.quant) / len(p.layers) > budget + 1e-9:
            full = True
            return False
        taken[k] = True
        best = best_assignment(p.costs, hw, p.layers, p.drops, p.budget, p.quant)
        if best is not None:
            r = p.evaluate(i, core, best[0])
            out.append(r)
            seen.append((k, np.log(r["edp"]) - prior[i]))
        return True

    for i in np.argsort(prior, kind="stable").tolist():
        if _spent(p, start) >= head * budget:
            break
        for core in range(n_c):
            if more():
                visit(i * n_c + core)
    if more():
        import xgboost as xgb
        feats = p.pool.features(lat, en)
        kinds = np.log2(np.array([[bits, 2 if sparse else 1] for bits, sparse in p.cores], float))
        X = np.column_stack([np.repeat(feats, n_c, axis=0), np.tile(kinds, (len(prior), 1))])
        base = np.repeat(prior, n_c)
        better = np.repeat(prior <= np.median(prior), n_c)
        Xall = xgb.DMatrix(X)  # built once: every fit predicts all candidates
        while more():
            if len(seen) >= 4:
                ks, y = (np.array(v) for v in zip(*seen))
                m = xgb.train(xgb_params(seed), xgb.DMatrix(X[ks], label=y), num_boost_round=120)
                score = base + m.predict(Xall)
            else:
                score = base.copy()
            score[taken] = np.inf
            picks = 0
            while picks < batch and more():
                free = np.flatnonzero(~taken & better) if rng.random() < 1 / 8 else []
                k = int(rng.choice(free)) if len(free) else int(np.argmin(score))
                picks += visit(k)
                score[k] = np.inf
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
