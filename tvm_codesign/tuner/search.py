"""Search strategies over a ``Pool``: each proposes batches of pool positions and observes their results.

- ``model`` (default): an XGBoost surrogate per measured objective (latency, energy), trained online on every
  evaluated point to predict log(measured / roofline prior); each batch takes, for random weight vectors, the
  candidate minimising the augmented Chebyshev scalarisation of the predicted objectives (ParEGO), plus one
  random pick in eight for exploration.
- ``xgboost``: the same surrogates and batches without the roofline prior (they learn log(measured) from the
  parameters alone; random picks until four configs ran): an ablation showing what the online model adds.
- ``nsga2``: optuna's NSGA-II sampler on the space's parameters (a well-kept multi-objective GA).
- ``random``: uniform without replacement. ``exhaustive``: every feasible point, in index order.

Proposals depend only on the seed and on the results observed so far, never on timing or worker count, so a
run is reproducible and a resumed run replays the same proposals.
"""
from __future__ import annotations

import logging

import numpy as np

from .pool import Pool

OBJECTIVES = ("latency", "energy", "area", "edp", "power")
_KEY = {"latency": "latency_s", "energy": "energy_j", "area": "area_mm2", "edp": "edp", "power": "power_w"}


def objective_values(result: dict, objectives: list[str]) -> list[float]:
    return [float(result[_KEY[o]]) for o in objectives]


class Strategy:
    """Base: ``propose(k)`` -> pool positions not yet proposed; ``observe(positions, results)``."""

    def __init__(self, pool: Pool, objectives: list[str], seed: int, layers=None):
        self.pool, self.objectives, self.seed = pool, list(objectives), seed
        self.taken = np.zeros(len(pool), bool)
        self.observed: list[tuple[int, dict]] = []
        self.rounds = 0

    def _take(self, picks) -> list[int]:
        picks = [int(p) for p in picks]
        self.taken[picks] = True
        return picks

    def propose(self, k: int) -> list[int]:
        raise NotImplementedError

    def observe(self, positions: list[int], results: list[dict]) -> None:
        self.observed += list(zip(positions, results))
        self.rounds += 1


class RandomSearch(Strategy):
    def __init__(self, pool, objectives, seed, layers=None):
        super().__init__(pool, objectives, seed)
        self.order = np.random.default_rng(seed).permutation(len(pool))
        self.next = 0

    def propose(self, k):
        out = self.order[self.next:self.next + k]
        self.next += len(out)
        return self._take(out)


class Exhaustive(Strategy):
    def propose(self, k):
        left = np.flatnonzero(~self.taken)[:k]
        return self._take(left)


class ModelGuided(Strategy):
    """XGBoost surrogates over the pool's features with a roofline prior (see module docstring)."""

    explore = 1 / 8
    blind = False  # True: no prior, so random picks until the surrogates have data

    def __init__(self, pool, objectives, seed, layers=None):
        super().__init__(pool, objectives, seed)
        import xgboost as xgb
        self.X, self.prior = self._features(layers)
        self.digits = pool.space.digits(pool.points)
        self.Xall = xgb.DMatrix(self.X)
        self.pred = dict(self.prior)

    def _features(self, layers):
        """Surrogate inputs and the prior the surrogates correct (log(measured / prior) is learned)."""
        lat, en = self.pool.prior(layers)
        return self.pool.features(lat, en), {"latency_s": lat, "energy_j": en}

    def _fit(self) -> bool:
        import xgboost as xgb
        ok = [(p, r) for p, r in self.observed if r.get("feasible")]
        if len(ok) < 4:
            return False
        pos = np.array([p for p, _ in ok])
        for key in ("latency_s", "energy_j"):
            y = np.log(np.array([r[key] for _, r in ok]) / self.prior[key][pos])
            params = {"max_depth": 4, "eta": 0.15, "objective": "reg:squarederror", "tree_method": "hist",
                      "seed": self.seed, "nthread": 1, "verbosity": 0}
            m = xgb.train(params, xgb.DMatrix(self.X[pos], label=y), num_boost_round=120)
            self.pred[key] = self.prior[key] * np.exp(m.predict(self.Xall))
        # points found infeasible (a layer does not fit) are not proposed again; their neighbours may be fine
        return True

    def _predicted(self) -> np.ndarray:
        lat, en, area = self.pred["latency_s"], self.pred["energy_j"], self.pool.area
        cols = {"latency": lat, "energy": en, "area": area, "edp": lat * en, "power": en / lat}
        f = np.log(np.column_stack([cols[o] for o in self.objectives]))
        lo, hi = f.min(0), f.max(0)
        return (f - lo) / np.where(hi > lo, hi - lo, 1.0)

    def propose(self, k):
        rng = np.random.default_rng([self.seed, self.rounds])
        if not self._fit() and self.blind:
            free = np.flatnonzero(~self.taken)
            return self._take(rng.choice(free, min(k, len(free)), replace=False))
        f = self._predicted()
        free = ~self.taken
        digits = self.digits
        near = np.zeros(len(free), bool)  # within one parameter of a pick of this batch: picked last
        picks = []
        for j in range(k):
            if not free.any():
                break
            if j % 8 == 7 or rng.random() < self.explore / 2:
                p = int(rng.choice(np.flatnonzero(free)))
            else:
                w = rng.dirichlet(np.ones(f.shape[1])) if f.shape[1] > 1 else np.ones(1)
                s = (w * f).max(1) + 0.05 * (w * f).sum(1)
                s = np.where(free, s + 10.0 * near, np.inf)
                p = int(np.argmin(s))
            free[p] = False
            near |= (digits != digits[p]).sum(1) <= 1
            picks.append(p)
        return self._take(picks)


class XGBoostOnly(ModelGuided):
    """``ModelGuided`` without the roofline prior: features are the parameters and the area only."""

    blind = True

    def _features(self, layers):
        one = np.ones(len(self.pool))
        return np.column_stack([np.log2(self.pool.values), np.log(self.pool.area)]), {"latency_s": one,
                                                                                        "energy_j": one}


class NSGA2(Strategy):
    """optuna NSGA-II over the space's parameters; proposals outside the pool (infeasible) or already
    evaluated are answered without an evaluation."""

    def __init__(self, pool, objectives, seed, layers=None, population: int = 24):
        super().__init__(pool, objectives, seed)
        import optuna
        logging.getLogger("optuna").setLevel(logging.WARNING)
        self.optuna = optuna
        sampler = optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
        self.study = optuna.create_study(directions=["minimize"] * len(objectives), sampler=sampler)
        self.choices = {f: list(c) for f, c in pool.space.params.items()}
        self.known: dict[int, list[float]] = {}
        self.pending: dict[int, list] = {}  # position -> trials waiting for its result

    def _point(self, trial) -> int:
        digits = [self.choices[f].index(trial.suggest_categorical(f, self.choices[f])) for f in self.choices]
        idx = 0
        for d, r in zip(digits, self.pool.space.radices):
            idx = idx * int(r) + d
        return idx

    def _tell(self, trial, values, violation):
        trial.set_constraint("feasible", violation)
        self.study.tell(trial, values)

    def propose(self, k):
        picks, asks = [], 0
        worst = [1e30] * len(self.objectives)
        while len(picks) < k and asks < 200 * k and not self.taken.all():
            asks += 1
            trial = self.study.ask()
            pos = self.pool.position.get(self._point(trial))
            if pos is None:
                self._tell(trial, worst, 1.0)
            elif pos in self.known:
                v = self.known[pos]
                self._tell(trial, v if v is not None else worst, 0.0 if v is not None else 1.0)
            elif pos in self.pending or pos in picks:
                self.pending.setdefault(pos, []).append(trial)
            else:
                self.pending.setdefault(pos, []).append(trial)
                picks.append(pos)
        if len(picks) < k:  # the GA keeps revisiting known points: fill up with unexplored ones
            rng = np.random.default_rng([self.seed, self.rounds, 1])
            free = np.flatnonzero(~self.taken & ~np.isin(np.arange(len(self.pool)), picks))
            extra = rng.choice(free, min(k - len(picks), len(free)), replace=False) if len(free) else []
            picks += [int(p) for p in extra]
        return self._take(picks)

    def observe(self, positions, results):
        super().observe(positions, results)
        worst = [1e30] * len(self.objectives)
        for pos, r in zip(positions, results):
            v = objective_values(r, self.objectives) if r.get("feasible") else None
            self.known[pos] = v
            for trial in self.pending.pop(pos, []):
                self._tell(trial, v if v is not None else worst, 0.0 if v is not None else 1.0)


STRATEGIES = {"model": ModelGuided, "nsga2": NSGA2, "random": RandomSearch, "exhaustive": Exhaustive,
              "hw-first": ModelGuided, "xgboost": XGBoostOnly}
