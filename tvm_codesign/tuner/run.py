"""``tune``: joint hardware x schedule search for a network over a design space, with logs and outputs.

Pipeline: model -> layers (workloads.py) -> feasible pool of configs (pool.py) -> strategy proposes batches
(search.py) -> each config is evaluated on the whole network with its best schedules (network.py, analytical
model; in a process pool or on Ray) -> records appended to ``autotune_logs/<run>.jsonl`` -> Pareto front ->
the best configs re-verified by compiling and simulating every layer (verify.py) -> ``targets/<run>_<best>.json``,
``schedules/<config>/<layer>.json`` (which ``build`` and ``compile`` then use) and the front as JSON/CSV/PNG.
"""
from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..hardware.config import AcceleratorConfig
from ..hardware.space import DesignSpace
from . import pareto, workloads
from .executor import Executor
from .log import RunLog
from .network import Layer, evaluate
from .pool import Pool
from .search import OBJECTIVES, STRATEGIES, objective_values

SHOWN = {"latency": (1e3, "ms"), "energy": (1e3, "mJ"), "area": (1, "mm2"), "edp": (1e6, "uJ*s"), "power": (1, "W")}
LABELS = {"latency": "latency_s", "energy": "energy_j", "area": "area_mm2", "edp": "edp", "power": "power_w"}


@dataclasses.dataclass
class TuneResult:
    """What a run found. ``front``/``history`` are log records (config values, figures, per-layer knobs)."""

    run: str
    space: DesignSpace
    objectives: list
    layers: list
    history: list
    front: list
    best: dict            # label -> record (best feasible per objective, and EDP)
    baseline: dict        # the space's base config with tuned schedules
    verified: list = dataclasses.field(default_factory=list)
    files: dict = dataclasses.field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def evaluations(self) -> int:
        return len(self.history)

    def config(self, rec_or_label) -> AcceleratorConfig:
        rec = self.best[rec_or_label] if isinstance(rec_or_label, str) else rec_or_label
        return self.space.config(rec["point"])

    def schedules(self, rec_or_label) -> dict:
        """{layer name: Knobs dict} of a record: the fastest measured schedule where the layer was verified,
        else the model's pick."""
        rec = self.best[rec_or_label] if isinstance(rec_or_label, str) else rec_or_label
        measured = {(v["point"], v["key"]): v["best_knobs"] for v in self.verified}
        return {ly["name"]: measured.get((rec["point"], ly["key"]), ly["knobs"]) for ly in rec["layers"]}

    def compare(self, a, b) -> list[dict]:
        """Layer by layer: cycles and energy of two records (or best labels), and b's speed-up over a."""
        ra = self.best[a] if isinstance(a, str) else a
        rb = self.best[b] if isinstance(b, str) else b
        ca, cb = self.config(ra), self.config(rb)
        rows = []
        for la, lb in zip(ra["layers"], rb["layers"]):
            ta, tb = la["cycles"] / ca.clock_mhz, lb["cycles"] / cb.clock_mhz
            rows.append({"layer": la["name"], "count": la["count"], "a_us": ta, "b_us": tb, "speedup": ta / tb,
                         "a_energy_uj": la["energy_pj"] / 1e6, "b_energy_uj": lb["energy_pj"] / 1e6,
                         "a_knobs": la["knobs"], "b_knobs": lb["knobs"]})
        return rows

    def table(self) -> str:
        params = list(self.space.params)
        head = f"{'point':>7s} {'lat ms':>8s} {'mJ':>7s} {'mm2':>5s} {'EDP uJs':>8s}  " + " ".join(params)
        lines = [head]
        mark = {id(r): lbl for lbl, r in self.best.items()}
        for rec in [self.baseline] + self.front:
            r = pareto.row(rec, params) if rec is not self.baseline else {
                **pareto.row({**rec, "point": -1, "config": {p: getattr(self.space.base, p) for p in params}}, params)}
            tag = "base" if rec is self.baseline else str(r["point"])
            vals = " ".join(str(r[p]) for p in params)
            lines.append(f"{tag:>7s} {r['latency_ms']:8.3f} {r['energy_mj']:7.3f} {r['area_mm2']:5.2f} "
                         f"{r['edp_uj_s']:8.2f}  {vals}" + (f"  <- best {mark[id(rec)]}" if id(rec) in mark else ""))
        return "\n".join(lines)

    def plot(self, ax=None, path=None):
        params = list(self.space.params)
        base = {**pareto.row({**self.baseline, "point": -1, "config": {p: 0 for p in params}}, params),
                "label": self.space.base.name}
        return pareto.plot([pareto.row(r, params) for r in self.front], path, base, self.run, ax)


def _space(space) -> DesignSpace:
    if isinstance(space, DesignSpace):
        return space
    if isinstance(space, dict):
        return DesignSpace.from_dict(space)
    return DesignSpace.load(space)


def _space_json(sp: DesignSpace) -> dict:
    return {"name": sp.name, "base": sp.base.key, "params": {f: list(c) for f, c in sp.params.items()},
            "constraints": sp.constraints}


def _record(seq: int, point: int, space: DesignSpace, res: dict, schedules: str, power_max) -> dict:
    d = space.digits(point)[0]
    cfg = {f: c[k] for (f, c), k in zip(space.params.items(), d)}
    rec = {"type": "eval", "seq": seq, "point": int(point), "config": cfg, "schedules": schedules, "source": "model",
           **res}
    if rec["feasible"] and power_max is not None and rec["power_w"] > power_max:
        rec.update(feasible=False, reason=f"average power {rec['power_w']:.3f} W > power_max {power_max} W")
    return rec


def tune(model="resnet18", space="edge", *, objectives=("latency", "energy", "area"), budget: int = 200,
         area_max: float | None = None, power_max: float | None = None, sram_max: float | None = None,
         seed: int = 0, strategy: str = "model",
         batch: int = 8, executor: str = "process", workers: int = 2, ray_address: str | None = None,
         out_dir=".", run: str | None = None, resume: bool = False, verify: int = 1, measure: int = 4,
         write: bool = True, progress: bool = True, input_shape=None) -> TuneResult:
    """Search accelerator configs of ``space`` jointly with every layer's schedule for ``model``.

    ``model``: a built-in name, .onnx or workload-list .json path, torch module (with ``input_shape``) or list
    of Workloads. ``space``: a shipped space name, JSON path, dict or DesignSpace. ``objectives``: from
    latency, energy, area, edp, power (minimised). ``budget``: configs evaluated (each on the whole network).
    ``area_max`` (mm^2), ``sram_max`` (KiB of on-chip SRAM) and ``power_max`` (average W on the network) are
    hard constraints; each defaults to the space's (``area_mm2_max``, ``sram_kib_max``, ``power_w_max``).
    ``strategy``: model (XGBoost-guided), xgboost (the same without the prior), nsga2 (optuna), random,
    exhaustive, hw-first (configs ranked with default schedules, then the front re-tuned). ``verify``: how many
    best configs to compile and simulate; ``measure``: how many of the model's top schedules per layer of those
    configs are compiled and simulated, the fastest measured one being stored.
    Files go under ``out_dir``: autotune_logs/, targets/, schedules/ (``write=False``: the log only).
    """
    t0 = time.perf_counter()
    objectives = [objectives] if isinstance(objectives, str) else list(objectives)
    bad = [o for o in objectives if o not in OBJECTIVES]
    if bad or not objectives or len(set(objectives)) != len(objectives):
        raise ValueError(f"objectives must be distinct names from {OBJECTIVES}, got {objectives}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {list(STRATEGIES)}, got {strategy!r}")
    if not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget must be a positive integer (configs to evaluate), got {budget!r}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if not isinstance(verify, int) or verify < 0:
        raise ValueError(f"verify must be an integer >= 0 (configs to compile and simulate), got {verify!r}")
    if not isinstance(measure, int) or measure < 1:
        raise ValueError(f"measure must be an integer >= 1 (schedules measured per layer), got {measure!r}")
    for name, v in (("area_max", area_max), ("power_max", power_max), ("sram_max", sram_max)):
        if v is not None and not v > 0:
            raise ValueError(f"{name} must be > 0, got {v}")
    sp = _space(space)
    out = Path(out_dir)
    label = model if isinstance(model, str) and "/" not in model and "." not in model else None
    if run is None:
        stem = label or (Path(model).stem if isinstance(model, (str, Path)) else "model")
        run = f"{stem}-{sp.name}-{strategy}-s{seed}"
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", run):
        raise ValueError(f"run name {run!r} may only contain letters, digits, '_', '.', '-'")
    log_path = out / "autotune_logs" / f"{run}.jsonl"
    lim = sp.limits(area_max, sram_max, power_max)
    area_max, sram_max, power_max = lim["area_mm2_max"], lim["sram_kib_max"], lim["power_w_max"]

    layers = None
    if resume and log_path.is_file():
        from .log import read
        old, _ = read(log_path)
        if old and "layers" in old:
            layers = workloads.from_records(old["layers"])
    if layers is None:
        _, layers = workloads.load(model, input_shape)
    schedules = "default" if strategy == "hw-first" else "tuned"
    header = {"version": __version__, "run": run, "layers": workloads.to_json(layers), "space": _space_json(sp),
              "objectives": objectives, "area_max": area_max, "power_max": power_max, "sram_max": sram_max,
              "strategy": strategy, "seed": seed, "batch": batch, "budget": budget,
              "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    log = RunLog(log_path, header, resume)
    cache = {(r["point"], r["schedules"]): r for r in log.records if r.get("type") == "eval"}
    verified_cache = {(r["point"], r["key"]): r for r in log.records if r.get("type") == "verify"}

    pool = Pool(sp, area_max, seed, sram_max)
    if strategy == "exhaustive" and budget < len(pool):
        raise ValueError(f"exhaustive search of {sp.name!r} needs budget >= its {len(pool)} feasible configs")
    strat = STRATEGIES[strategy](pool, objectives, seed, layers)
    ex = None
    history: list[dict] = []

    def run_points(points: list[int], mode: str) -> list[dict]:
        nonlocal ex
        need = [p for p in points if (p, mode) not in cache]
        if need:
            if ex is None:
                ex = Executor(executor, sp, layers, schedules, workers, ray_address)
            if mode != schedules:
                got = [evaluate(sp.config(p), layers, mode) for p in need]
            else:
                got = ex.map(need)
            for p, res in zip(need, got):
                rec = _record(len(cache), p, sp, res, mode, power_max)
                log.append(rec)
                cache[(p, mode)] = rec
        return [cache[(p, mode)] for p in points]

    try:
        from tqdm.auto import tqdm
        bar = tqdm(total=budget, desc=run, disable=not progress, unit="cfg")
        while len(history) < budget:
            pos = strat.propose(min(batch, budget - len(history)))
            if not pos:
                break
            recs = run_points([int(pool.points[j]) for j in pos], schedules)
            strat.observe(pos, recs)
            history += recs
            bar.update(len(recs))
            ok = [r for r in history if r["feasible"]]
            if ok:
                b = min(ok, key=lambda r: objective_values(r, objectives[:1])[0])
                scale, unit = SHOWN[objectives[0]]
                bar.set_postfix_str(f"best {objectives[0]} {objective_values(b, objectives[:1])[0] * scale:.4g} {unit}")
        bar.close()
        feasible = [r for r in history if r["feasible"]]
        if strategy == "hw-first" and feasible:  # then software: tune the schedules of the default-schedule front
            idx = pareto.front(np.array([objective_values(r, objectives) for r in feasible]))
            feasible = [r for r in run_points([feasible[i]["point"] for i in idx], "tuned") if r["feasible"]]
        if not feasible:
            raise ValueError(f"no evaluated config of {sp.name!r} can run every layer within the constraints "
                             f"({len(history)} evaluated); raise the budget or relax the constraints")
        vals = np.array([objective_values(r, objectives) for r in feasible])
        front = [feasible[i] for i in pareto.front(vals)]
        best = {o: min(feasible, key=lambda r, k=LABELS[o]: r[k]) for o in dict.fromkeys([*objectives, "edp"])}
        base_res = evaluate(sp.base, layers, "tuned")
        baseline = {"type": "baseline", "point": -1, "config": {}, **base_res}
        result = TuneResult(run, sp, objectives, layers, history, front, best, baseline)
        if verify:
            from .verify import verify_records
            picks = list({id(r): r for r in best.values()}.values())[:verify]
            result.verified = verify_records(sp, picks, layers, log, verified_cache, measure)
        if write:
            result.files = _write(result, out)
        result.files["log"] = log_path
    finally:
        if ex is not None:
            ex.close()
    result.wall_s = time.perf_counter() - t0
    return result


def _write(res: TuneResult, out: Path) -> dict:
    from ..schedules import store
    from ..schedules.groups import kernel_workload
    from ..schedules.workload import Workload  # noqa: F401  (records carry workloads as dicts)
    from ..schedules.knobs import Knobs
    files: dict = {"targets": {}, "schedules": []}
    measured = {(v["point"], v["key"]): v for v in res.verified}
    for lbl, rec in res.best.items():
        cfg = res.space.config(rec["point"])
        cfg = cfg.replace(name=f"{res.run}_{lbl}", description=(
            f"tvm_codesign.tune run {res.run}: best {lbl} in space {res.space.name} ({rec['latency_s'] * 1e3:.3f} ms, "
            f"{rec['energy_j'] * 1e3:.3f} mJ, {rec['area_mm2']:.3f} mm^2 on the tuned network)"))
        files["targets"][lbl] = cfg.save(out / "targets" / f"{cfg.name}.json")
        by_key = {ly.key: ly for ly in res.layers}
        for row in rec["layers"]:
            wl = by_key[row["key"]].workload
            kwl = kernel_workload(wl, cfg)
            v = measured.get((rec["point"], row["key"]))
            knobs, figs = (row["knobs"], {"cycles": row["cycles"], "energy_pj": row["energy_pj"], "source": "model"}) \
                if v is None else (v["best_knobs"], {"cycles": v["best_sim_cycles"],
                                                     "energy_pj": v["best_sim_energy_pj"], "source": "simulator"})
            files["schedules"].append(store.save(out / "schedules", cfg, kwl, Knobs.from_dict(knobs), figs))
    params = list(res.space.params)
    base = {**pareto.row({**res.baseline, "point": -1, "config": {p: 0 for p in params}}, params),
            "label": res.space.base.name}
    files.update(pareto.write(out / "autotune_logs" / res.run, res.front, params, res.objectives, base, res.run))
    return files


__all__ = ["Layer", "TuneResult", "tune"]
