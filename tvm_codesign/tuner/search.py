"""Search strategies over a ``Pool``: each proposes batches of pool positions and observes their results.

- ``model`` (default): first the roofline prior's best candidates, then an XGBoost surrogate per measured
  objective (latency, energy), trained online on every evaluated point to predict log(measured / roofline
  prior). The prior scores the whole pool before anything is evaluated; the search evaluates, in this order:
  (1) the head: the prior's ``top`` best configs by each objective of the run, taken round-robin over the
  objectives (ties broken by the other objectives), before any other pick; (2) the rest of the prior's
  non-dominated front over the run's objectives, farthest-point first (each next one the farthest, in
  normalised log objectives, from those already chosen, so any prefix covers the front evenly), at most one
  pick in two (``prior_share``) once the head is done, the others being the learned model's. Model picks take,
  for random weight vectors, the candidate minimising the augmented Chebyshev scalarisation of the predicted
  objectives (ParEGO), plus one random pick in eight for exploration. The prior only orders candidates: what is
  kept is what was evaluated.
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


def xgb_params(seed: int) -> dict:
    """The surrogates' XGBoost settings (120 rounds of depth-4 trees), shared with precision_search.py."""
    return {"max_depth": 4, "eta": 0.15, "objective": "reg:squarederror", "tree_method": "hist", "seed": seed,
            "nthread": 1, "verbosity": 0}


class ModelGuided(Strategy):
    """XGBoost surrogates over the pool's features with a roofline prior, whose best candidates are evaluated
    first (see module docstring)."""

    explore = 1 / 8
    blind = False  # True: no prior, so no seeds, and random picks until the surrogates have data
    top = 2  # the prior's best configs per objective evaluated before anything else
    prior_share = 1 / 2  # after those, the prior's front takes at most this share of the picks

    def __init__(self, pool, objectives, seed, layers=None):
        super().__init__(pool, objectives, seed)
        import xgboost as xgb
        self.X, self.prior = self._features(layers)
        self.digits = pool.space.digits(pool.points)
        self.Xall = xgb.DMatrix(self.X)
        self.pred = dict(self.prior)
        self.head, self.tail = (np.zeros(0, np.int64),) * 2 if self.blind else self._seeds()
        self.picked = {"tail": 0, "other": 0}  # picks since the head: the prior's front vs the rest

    def _features(self, layers):
        """Surrogate inputs and the prior the surrogates correct (log(measured / prior) is learned)."""
        lat, en = self.pool.prior(layers)
        return self.pool.features(lat, en), {"latency_s": lat, "energy_j": en}

    def _objectives(self, pred: dict) -> np.ndarray:
        """log of the run's objectives for every point, from predicted latency and energy (area is exact)."""
        lat, en, area = pred["latency_s"], pred["energy_j"], self.pool.area
        cols = {"latency": lat, "energy": en, "area": area, "edp": lat * en, "power": en / lat}
        return np.log(np.column_stack([cols[o] for o in self.objectives]))

    @staticmethod
    def _normalised(f: np.ndarray) -> np.ndarray:
        lo, hi = f.min(0), f.max(0)
        return (f - lo) / np.where(hi > lo, hi - lo, 1.0)

    def _seeds(self) -> tuple[np.ndarray, np.ndarray]:
        """(head, tail) pool positions from the prior alone: the head is the prior's ``top`` best per objective
        (round-robin over the objectives; a tie goes to the better sum of the other normalised objectives),
        the tail the rest of the prior's non-dominated front, farthest-point first."""
        from .pareto import front
        f = self._normalised(self._objectives(self.prior))
        total = f.sum(1)
        orders = [np.lexsort((np.arange(len(f)), total - f[:, i], f[:, i])) for i in range(f.shape[1])]
        head: list[int] = []
        cursor = [0] * len(orders)
        for _ in range(self.top):
            for i, order in enumerate(orders):
                while cursor[i] < len(order) and int(order[cursor[i]]) in head:
                    cursor[i] += 1
                if cursor[i] < len(order):
                    head.append(int(order[cursor[i]]))
        rest = np.array([p for p in front(f) if p not in head], np.int64)
        tail = []
        if len(rest):
            d = np.linalg.norm(f[rest, None, :] - f[None, head, :], axis=2).min(1)
            for _ in range(len(rest)):
                j = int(np.argmax(d))  # the farthest from every chosen one (first on a tie)
                tail.append(int(rest[j]))
                d = np.minimum(d, np.linalg.norm(f[rest] - f[rest[j]], axis=1))
                d[j] = -1.0
        return np.array(head, np.int64), np.array(tail, np.int64)

    def _next_seed(self, free: np.ndarray) -> int | None:
        """The next seed to evaluate, if this pick is one: the head's next, else the tail's while it has had
        less than ``prior_share`` of the picks made since the head."""
        left = [int(p) for p in self.head if free[p]]
        if left:
            return left[0]
        after = self.picked["tail"] + self.picked["other"]
        if self.picked["tail"] < self.prior_share * (after + 1):
            left = (int(p) for p in self.tail if free[p])
            return next(left, None)
        return None

    def _fit(self) -> bool:
        import xgboost as xgb
        ok = [(p, r) for p, r in self.observed if r.get("feasible")]
        if len(ok) < 4:
            return False
        pos = np.array([p for p, _ in ok])
        for key in ("latency_s", "energy_j"):
            y = np.log(np.array([r[key] for _, r in ok]) / self.prior[key][pos])
            m = xgb.train(xgb_params(self.seed), xgb.DMatrix(self.X[pos], label=y), num_boost_round=120)
            self.pred[key] = self.prior[key] * np.exp(m.predict(self.Xall))
        # points found infeasible (a layer does not fit) are not proposed again; their neighbours may be fine
        return True

    def _predicted(self) -> np.ndarray:
        return self._normalised(self._objectives(self.pred))

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
            p = self._next_seed(free)
            if p is not None:
                self.picked["tail"] += p not in self.head  # a head pick is not counted
            else:
                self.picked["other"] += 1
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
