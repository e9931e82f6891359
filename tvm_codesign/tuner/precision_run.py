"""A precision co-design run: search (tuner/precision_search.py) under an accuracy budget, then verify.

    python -m tvm_codesign.tune --model digits --space iso --max-accuracy-drop 1.0 --budget 200

The model is a built-in trained task (``tvm_codesign.tasks``: ``digits``, ``brackets``). Per-layer sensitivity is
measured once on the task's training data (tuner/sensitivity.py); the search ranks points by that estimate; then
the least-EDP point is compiled with its precision and sparsity on its hardware and its top-1 measured through the
bit-exact simulator on the first half of the held-out split, backing off to fewer quantised layers on that hardware
while the drop exceeds the budget (``verify``); the second half, never used to choose, gives the reported accuracy.
Every feasible point the search costed goes to the log with ``source: estimate``, every verified one again with
``source: simulator``. Drops are against w8a8 quantised as this path quantises (per-tensor weight scales; int8
numerics do not depend on the hardware).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

from ..hardware import modes as M
from ..hardware.space import DesignSpace
from . import precision as P
from .precision_search import SEARCHES


def drops_of(sens, names: list[str]) -> dict:
    """{layer: {quant label: drop points}} of a ``Sensitivity`` for the searched layers; a mode the table could
    not measure (NaN: 2:4 on a matmul of two activations) is left out, so the search never offers it."""
    out = {n: {P.qname(q): float(sens.get(n, q)) for q in P.QUANT} for n in names}
    return {n: {q: d for q, d in v.items() if not math.isnan(d)} for n, v in out.items()}


# Images per simulator call when measuring accuracy: each image's result is the same at any batch (convs run one
# program per image group in one simulator pass, dense rows are independent); digits: 0.15 s per 360 images at 32
# against 1.06 s at 1.
VERIFY_BATCH = 32
# Weight scales of the co-design path: compiled (compile_options) and estimated (sensitivity.measure) alike.
WEIGHT_SCALES = "tensor"


def compile_options(assign: dict, weight_scales: str | None = WEIGHT_SCALES) -> dict:
    """``compile``'s precision / sparsity arguments for an assignment {layer: Mode or label like "w4a4s"}. Weight
    scales are per tensor by default (``WEIGHT_SCALES``): the requantisation multiplies by one ALU immediate, as the
    layer costs assume; per-channel scales (None: compile's default) also fuse, but load a multiplier vector per
    channel tile and multiply it at ``alu_ii_vec`` (frontend/requant.py)."""
    prec, sp = {}, {}
    for n, q in assign.items():
        m = q if isinstance(q, M.Mode) else M.parse(q)
        prec[n] = (m.w_bits, m.a_bits)
        if m.sparse:
            sp[n] = "2:4"
    out = {"precision": prec, "sparsity": sp or None}
    return out | ({"weight_scales": weight_scales} if weight_scales else {})


def int8_baseline(space: DesignSpace, layers: list, budget: float, costs: P.Costs, seed: int = 0) -> tuple[dict, P.Problem]:
    """The best uniform-int8 co-design (int8-only cores, every layer w8a8) by EDP, with the same search."""
    p = P.Problem(space, layers, {n: {"w8a8": 0.0} for n, _ in layers}, 0.0, seed, cores=((8, False),),
                  quant=(M.Mode(),), costs=costs)
    recs, _ = SEARCHES["model"](p, budget, seed)
    if not recs:
        raise ValueError(f"no feasible int8 design in space {space.name!r}")
    return recs[0], p


def search(space: DesignSpace, layers: list, drops: dict, max_drop: float, budget: float, strategy: str = "model",
           seed: int = 0, area_max: float | None = None, costs: P.Costs | None = None) -> tuple[list, P.Problem]:
    p = P.Problem(space, layers, drops, max_drop, seed, area_max=area_max, costs=costs)
    recs, spent = SEARCHES[strategy](p, budget, seed)
    for r in recs:
        r["evaluations"] = spent
    return recs, p


def halves(task, model, limit: int | None = None) -> tuple[float, float]:
    """Top-1 (points) of ``model`` on the held-out split's first half (selection) and second half (report)."""
    y = task.heldout[1][:limit]
    hit = task.predict(model, limit) == y
    h = len(y) // 2
    return 100.0 * float(hit[:h].mean()), 100.0 * float(hit[h:].mean())


def verify(task, problem: P.Problem, records: list, reference: tuple, max_drop: float, log=None,
           limit: int | None = None, tries: int = 5) -> dict | None:
    """Compile candidates on their hardware and measure them through the simulator until one is within
    ``max_drop`` of ``reference`` (the int8 model's (selection, report) top-1, ``halves``) on the held-out split's
    first half; that record, with ``accuracy`` / ``drop`` on the second half (not used to choose), the selection
    half's figures and ``verified_tries``; None after ``tries``.

    The first candidate is ``records[0]`` (least EDP). When the measured drop exceeds the budget the additive
    estimate missed interactions between layers, so the next candidate is the same hardware re-quantised
    (``best_assignment``) under the estimate budget scaled by budget / measured drop (at most half the last one, and
    below the failed assignment's own estimate, so it is never tried again; every quantised layer counted at least
    ``P.RESOLUTION``, so a zero estimate still backs off), and the last try
    is w8a8 on that hardware: int8 numerics do not depend on the hardware, so it is within any budget."""
    if not records:
        return None
    r, est_budget = records[0], max_drop
    i, core = problem.position(r["point"]), problem.cores.index(tuple(r["core"]))
    hw = problem.hardware(i, core)
    floored = {n: {q: d if q == "w8a8" else max(d, P.RESOLUTION) for q, d in v.items()} for n, v in problem.drops.items()}
    for n in range(1, tries + 1):
        cm = task.compile(hw, batch=VERIFY_BATCH, progress=False, **compile_options(r["assign"]))
        sel, rep = halves(task, cm, limit)
        r.update(accuracy_selection=sel, drop_selection=reference[0] - sel, accuracy=rep, drop=reference[1] - rep,
                 verified_tries=n, source="simulator", estimate_budget=est_budget)
        if log is not None:
            log.write(r)
        if r["drop_selection"] <= max_drop + 1e-9:
            return r
        if n == tries:
            return None
        if n == tries - 1:
            est_budget, assign = 0.0, {}
        else:
            # below the failed assignment's own (floored) estimate, so the knapsack cannot pick it again
            failed = P.estimate(floored, {k: M.parse(q) for k, q in r["assign"].items()})
            est_budget = min(est_budget * min(0.5, max_drop / r["drop_selection"]), failed - P.RESOLUTION)
            best = P.best_assignment(problem.costs, hw, problem.layers, floored, max(est_budget, 0.0), problem.quant)
            assign = best[0] if best is not None else {}
        r = problem.evaluate(i, core, assign)
    return None


class Log:
    """JSON lines: one per evaluated point (``source: estimate``) and per verified one (``source: simulator``)."""

    def __init__(self, path: Path | None):
        self.path = Path(path) if path else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("")

    def write(self, r: dict) -> None:
        if self.path:
            row = {k: v for k, v in r.items() if k != "hw_modes"} | {"time": round(time.time(), 3)}
            row.setdefault("source", "estimate")
            with self.path.open("a") as f:
                f.write(json.dumps(row, default=float) + "\n")


def tune_precision(task_name: str, space="iso", max_drop: float = 1.0, budget: float = 200, strategy: str = "model",
                   seed: int = 0, out_dir=".", run: str | None = None, verify_tries: int = 5,
                   limit: int | None = None, area_max: float | None = None) -> dict:
    """The CLI's precision co-design (``--max-accuracy-drop``): returns a summary (also the log's last lines)."""
    from .. import model as Mdl, tasks
    from . import pareto, sensitivity as S
    import numpy as np
    t0 = time.perf_counter()
    if task_name not in tasks.TASKS:
        raise ValueError(f"--max-accuracy-drop needs a model with labelled data to measure accuracy on: a built-in "
                         f"task ({', '.join(tasks.TASKS)}), got {task_name!r}")
    sp = space if isinstance(space, DesignSpace) else DesignSpace.load(space)
    run = run or f"{task_name}-{sp.name}-precision-{strategy}-s{seed}"
    logdir = Path(out_dir) / "autotune_logs"
    if (logdir / f"{run}.jsonl").exists():
        raise ValueError(f"{logdir / f'{run}.jsonl'} exists: give another --run or remove it")
    log = Log(logdir / f"{run}.jsonl")
    task = tasks.load(task_name)
    layers = Mdl.named_layers(task.model, example_inputs=(task.example_input,), calibration=task.calibration)
    names = [n for n, _ in layers]
    xt, yt = task.splits["train"]
    sens = S.measure(task.model, names, np.concatenate([c[0] for c in task.calibration]), xt[:512], yt[:512], threads=1,
                     weight_scales=WEIGHT_SCALES)
    sens.save(logdir / f"{run}_sensitivity.json")
    recs, prob = search(sp, layers, drops_of(sens, names), max_drop, budget, strategy, seed, area_max=area_max)
    for r in recs:
        log.write(r)
    # the reference: w8a8 quantised as this path quantises (per-tensor weights); int8 numerics: any hardware
    int8_acc = halves(task, task.compile("vta_default", batch=VERIFY_BATCH, progress=False, **compile_options({})), limit)
    best = verify(task, prob, recs, int8_acc, max_drop, log, limit, verify_tries) if recs else None
    vals = np.array([[r["edp"], r["drop_estimate"]] for r in recs]) if recs else np.zeros((0, 2))
    front = [recs[i] for i in pareto.front(vals)] if len(recs) else []
    summary = {"run": run, "task": task_name, "space": sp.name, "strategy": strategy, "max_accuracy_drop": max_drop,
               "space_size": prob.size, "evaluations": recs[0]["evaluations"] if recs else budget,
               "feasible": len(recs), "front": len(front), "int8_accuracy": int8_acc[1],
               "int8_accuracy_selection": int8_acc[0],
               "sensitivity_s": round(sens.seconds, 1), "wall_s": round(time.perf_counter() - t0, 1),
               "log": str(log.path)}
    if best is not None:
        summary.update(best={k: best[k] for k in ("point", "core", "latency_s", "energy_j", "edp", "area_mm2",
                                                  "drop_estimate", "accuracy", "drop", "accuracy_selection",
                                                  "drop_selection", "verified_tries", "assign")},
                       config=prob.hardware(prob.position(best["point"]), prob.cores.index(tuple(best["core"]))).to_dict())
    return summary
