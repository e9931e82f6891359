"""Precision and sparsity co-design: hardware, per-layer quantisation and schedules searched together, with an
accuracy budget.

A point is a hardware config (a design-space point whose GEMM core is made precision-flexible and/or 2:4 sparse,
``CORES``, ``modes.flexible``) and a quantisation per named layer (``QUANT``: weight bits 8/4/2, activation bits
8/4, dense or 2:4; what ``compile(precision=, sparsity=)`` accepts). A layer quantised as q runs in the fastest mode
of the hardware that computes it exactly (``modes.runnable``) with its best schedule (``network._pick``: the
analytical model over the whole knob grid), so a point's latency and energy are sums over layers; its accuracy
drop is estimated by ``drops`` (tuner/sensitivity.py: per-layer drops, added). A point is feasible when the
estimate is within the budget and the hardware within the space's limits.

Because the cost is a sum over layers once the hardware is fixed, the best quantisation for a hardware config under
an accuracy budget is a multiple-choice knapsack (``knapsack``: exact dynamic programming over the drop budget in
steps of ``RESOLUTION`` points). EDP, a product, is not a sum: ``least_edp`` finds it exactly (on that grid) among
the knapsacks of the latency / energy weightings along the lower-left hull of the feasible sums. Searches
(``search``) spend a budget of network evaluations (one = every layer of the network costed once; a knapsack over
a hardware config costs its distinct (layer, mode) evaluations / layers):
- ``model``: hardware in the order of the int8 roofline prior's EDP (``Pool.prior``), each core kind, the
  knapsack's quantisation; ``random``: uniform hardware, core and per-layer quantisation; ``nsga2``: optuna's
  NSGA-II over the same parameters (objectives EDP and estimated drop, infeasible points penalised).
"""
from __future__ import annotations

import math

import numpy as np

from .. import physical
from ..hardware import modes as M
from ..hardware.space import DesignSpace
from ..schedules.groups import kernel_workload
from ..schedules.store import workload_key
from . import network
from .pool import Pool

QUANT = M.LAYER_MODES
CORES = ((8, False), (4, False), (2, False), (8, True), (4, True), (2, True))  # (gemm_min_bits, sparse_2_4)
RESOLUTION = 0.01  # knapsack step of the accuracy budget, points


def qname(q: M.Mode) -> str:
    return M.label(q.name)


class Costs:
    """Best-schedule latency / energy of (hardware, layer workload, hardware mode), cached; ``evals`` counts
    layer evaluations actually computed."""

    def __init__(self):
        self.cache: dict = {}
        self.evals = 0

    def layer(self, hw, wl, mode: str) -> dict | None:
        key = (hw.key, workload_key(wl), mode)
        if key not in self.cache:
            view = hw.with_mode(mode)
            k, fig = network._pick(kernel_workload(wl, view), view, "tuned")
            self.evals += 1
            self.cache[key] = fig if k is not None else None
        return self.cache[key]

    def network(self, hw, layers: list, assign: dict) -> dict:
        """Latency (s), energy (J), EDP, area of ``hw`` running ``layers`` [(name, Workload)] quantised as
        ``assign`` {name: Mode} (missing: w8a8)."""
        cycles = pj = 0.0
        ran = {}
        for name, wl in layers:
            mode = M.runnable(hw, assign.get(name, M.Mode()))
            fig = self.layer(hw, wl, mode)
            if fig is None:
                return {"feasible": False, "reason": f"{name} has no schedule in mode {M.label(mode)}"}
            cycles, pj, ran[name] = cycles + fig["cycles"], pj + fig["energy_pj"], M.label(mode)
        lat = cycles / (hw.clock_mhz * 1e6)
        return {"feasible": True, "latency_s": lat, "energy_j": pj * 1e-12, "edp": lat * pj * 1e-12,
                "area_mm2": physical.costs(hw)["area_mm2"]["total"], "hw_modes": ran}


def allowed(drops: dict, layer: str, q: M.Mode) -> bool:
    """Whether ``layer`` may take quantisation ``q``: w8a8 always, others when ``drops`` has its estimate (a
    matmul of two activations has no 2:4 entry: it has no weight to prune)."""
    return qname(q) == "w8a8" or qname(q) in drops[layer]


def estimate(drops: dict, assign: dict) -> float:
    """Estimated top-1 drop (points) of an assignment: per-layer drops added, each clipped at 0."""
    return sum(max(0.0, drops[n][qname(q)]) for n, q in assign.items() if qname(q) != "w8a8")


def knapsack(costs: np.ndarray, drops: np.ndarray, budget: float) -> np.ndarray | None:
    """Per row (layer) the column (choice) minimising the summed cost with summed drop <= budget (drops in
    ``RESOLUTION`` steps, rounded up); None if nothing fits. Exact dynamic programming, O(layers x choices x steps)."""
    steps = int(math.floor(budget / RESOLUTION + 1e-9))
    units = np.ceil(np.maximum(drops, 0) / RESOLUTION - 1e-9).astype(np.int64)
    best = np.zeros(steps + 1)               # best[b]: least cost of the layers so far within b units
    picks = []
    for c, u in zip(costs, units):
        cand = np.full((len(c), steps + 1), np.inf)
        for j, (cj, uj) in enumerate(zip(c, u)):
            if uj <= steps and np.isfinite(cj):
                cand[j, uj:] = best[:steps + 1 - uj] + cj
        picks.append(np.argmin(cand, 0))
        best = cand.min(0)
    if not np.isfinite(best[steps]):
        return None
    out, b = [], steps
    for c, u, p in zip(costs[::-1], units[::-1], picks[::-1]):
        j = int(p[b])
        out.append(j)
        b -= int(u[j])
    return np.array(out[::-1])


def least_edp(lat: np.ndarray, en: np.ndarray, drops: np.ndarray, budget: float) -> np.ndarray | None:
    """Per row (layer) the column (choice) minimising (summed latency) x (summed energy) with summed drop <= budget
    (``knapsack``'s grid); None if nothing fits. Exact: log L + log E is concave, so its minimum over the convex hull
    of the feasible (L, E) sums lies at a vertex of the hull's lower-left chain, which is the optimum of a weighting
    a L + b E (a, b >= 0). The chain's vertices are found as in Aneja & Nair's bicriteria method (Management Science
    25(1), 1979): from the least-latency and least-energy ends, each segment's normal is the next weighting, a knapsack
    each, until no point lies below a segment."""
    ok = np.isfinite(lat) & np.isfinite(en)
    rows = np.arange(len(lat))

    def solve(a: float, b: float):
        with np.errstate(invalid="ignore"):  # 0 x inf where a choice has no schedule: masked to inf
            pick = knapsack(np.where(ok, a * lat + b * en, np.inf), drops, budget)
        return None if pick is None else (float(lat[rows, pick].sum()), float(en[rows, pick].sum()), pick)

    first = solve(1.0, 0.0)
    if first is None:
        return None
    l0, e0 = first[0], first[1]
    lat, en = lat / l0, en / e0  # both ends near 1: one tolerance serves every weighting
    tie = 1e-9
    ends = [solve(1.0, tie), solve(tie, 1.0)]  # least latency (ties: least energy), least energy (ties: latency)
    chain, todo = list(ends), [tuple(ends)]
    while todo:
        a, b = todo.pop()
        if a[0] >= b[0] or a[1] <= b[1]:
            continue  # one point, or no trade between them
        wa, wb = a[1] - b[1], b[0] - a[0]  # the segment's normal
        p = solve(wa, wb)
        if wa * p[0] + wb * p[1] < (wa * a[0] + wb * a[1]) * (1 - 1e-12):
            chain.append(p)
            todo += [(a, p), (p, b)]
    return min(chain, key=lambda v: v[0] * v[1])[2]


def knapsack_evals(costs: Costs, hw, layers: list, drops: dict, quant: tuple = QUANT) -> int:
    """Layer evaluations ``best_assignment`` would compute on ``hw``: its distinct (layer, mode) pairs not cached."""
    keys = {(hw.key, workload_key(wl), M.runnable(hw, q))
            for name, wl in layers for q in quant if allowed(drops, name, q)}
    return sum(k not in costs.cache for k in keys)


def best_assignment(costs: Costs, hw, layers: list, drops: dict, budget: float,
                    quant: tuple = QUANT) -> tuple[dict, dict] | None:
    """The quantisation of ``layers`` (each one of ``quant``) with the least EDP on ``hw`` whose estimated drop is
    within ``budget`` (``least_edp``): (assignment, network result), or None if no layer has a schedule."""
    lat = np.full((len(layers), len(quant)), np.inf)
    en = np.full_like(lat, np.inf)
    d = np.array([[drops[n].get(qname(q), 0.0) if qname(q) != "w8a8" else 0.0 for q in quant] for n, _ in layers])
    for i, (name, wl) in enumerate(layers):
        for j, q in enumerate(quant):
            if not allowed(drops, name, q):
                continue
            fig = costs.layer(hw, wl, M.runnable(hw, q))
            if fig is not None:
                lat[i, j], en[i, j] = fig["cycles"], fig["energy_pj"]
    base = quant.index(M.Mode())
    if not np.isfinite(lat[:, base]).all():
        return None
    pick = least_edp(lat, en, d, budget)
    if pick is None:
        return None
    assign = {n: quant[j] for (n, _), j in zip(layers, pick)}
    r = costs.network(hw, layers, assign)
    return (assign, r) if r["feasible"] else None


class Problem:
    """A precision co-design problem: hardware from ``space`` (its feasible points, ``Pool``) x ``CORES``, the
    named ``layers`` of one network, per-layer ``drops`` and an accuracy ``budget`` (points)."""

    def __init__(self, space: DesignSpace, layers: list, drops: dict, budget: float, seed: int = 0,
                 cores: tuple = CORES, quant: tuple = QUANT, area_max: float | None = None, costs: Costs | None = None):
        bad = [(n, q) for n, d in drops.items() for q, v in d.items() if not np.isfinite(v)]
        if bad:
            raise ValueError(f"accuracy drops must be finite numbers: {bad[0][0]} at {bad[0][1]} is not")
        self.pool = Pool(space, seed=seed)
        self.layers, self.drops, self.budget = layers, drops, budget
        self.cores, self.quant = tuple(cores), tuple(quant)
        self.costs = costs or Costs()
        self.area_max = area_max if area_max is not None else self.pool.limits["area_mm2_max"]
        self._hw: dict = {}
        self._choices: dict = {}

    def choices(self, layer: str) -> tuple:
        """The quantisations ``layer`` may take (``allowed``)."""
        if layer not in self._choices:
            self._choices[layer] = tuple(q for q in self.quant if allowed(self.drops, layer, q))
        return self._choices[layer]

    @property
    def size(self) -> float:
        return len(self.pool) * len(self.cores) * math.prod(float(len(self.choices(n))) for n, _ in self.layers)

    def position(self, point: int) -> int:
        """Pool position of a space point."""
        return self.pool.position[int(point)]

    def hardware(self, i: int, core: int):
        """The flexible config of pool position ``i`` with core kind ``core`` (None if invalid or over limits)."""
        key = (i, core)
        if key not in self._hw:
            base = self.pool.space.config(int(self.pool.points[i]))
            try:
                hw = M.flexible(base, *self.cores[core])
                ok = physical.why_infeasible(hw) is None and (
                    self.area_max is None or physical.costs(hw)["area_mm2"]["total"] <= self.area_max)
            except Exception as e:  # noqa: BLE001 - a ConfigError of this combination: infeasible point
                if not isinstance(e, ValueError):
                    raise
                ok = False
            self._hw[key] = hw if ok else None
        return self._hw[key]

    def evaluate(self, i: int, core: int, assign: dict) -> dict:
        hw = self.hardware(i, core)
        if hw is None:
            return {"feasible": False, "reason": "hardware over the space's limits or not buildable"}
        r = self.costs.network(hw, self.layers, assign)
        r["drop_estimate"] = estimate(self.drops, assign)
        r["feasible"] = r["feasible"] and r["drop_estimate"] <= self.budget + 1e-9
        r.update(point=int(self.pool.points[i]), core=self.cores[core],
                 assign={n: qname(q) for n, q in assign.items()})
        return r
