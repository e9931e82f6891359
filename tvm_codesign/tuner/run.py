"""``tune``: joint hardware x schedule search for a network over a design space, with logs and outputs.

Pipeline: model -> layers (workloads.py) -> feasible pool of configs (pool.py) -> strategy proposes batches
(search.py) -> each config is evaluated on the whole network with its best schedules (network.py, analytical
model; in worker processes or on Ray) -> records appended to ``autotune_logs/<run>.jsonl`` -> Pareto front ->
the best configs re-verified by compiling and simulating every layer (verify.py) -> ``tuned/<run>_<best>.json``
and ``tuned/schedules/<config>/<layer>.json`` (the config records where its schedules are, so ``build`` and
``compile`` use them from any directory), and the front as JSON/CSV/PNG. Nothing is written to ``targets/``:
the shipped presets stay what they are.
"""
from __future__ import annotations

import contextlib
import re
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .. import __version__
from ..progress import watched
from ..hardware.space import DesignSpace
from . import pareto, workloads
from .executor import Executor
from .log import RunLog, exists_error, read
from .network import Layer, evaluate
from .pool import Pool
from .result import LABELS, TuneResult, si_scale
from .search import OBJECTIVES, STRATEGIES, objective_values

UNITS = {"latency": "s", "energy": "J", "area": "mm2", "edp": "J*s", "power": "W"}


class TuneInterrupted(KeyboardInterrupt):
    """Ctrl-C (or another KeyboardInterrupt) during ``tune``: ``saved`` evaluations are in the log ``log``, and
    the same call with ``resume=True`` (``--resume``) continues from them."""

    def __init__(self, saved: int, log: Path, resume: str):
        self.saved, self.log, self.resume = saved, log, resume
        said = (f"{saved} evaluated config{'s' * (saved != 1)} saved in {log}" if saved else
                "before any config was evaluated (nothing saved)")
        super().__init__(f"interrupted: {said}; resume with: {resume}")


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
         write: bool = True, progress: bool | None = None, input_shape=None, resume_hint: str | None = None) -> TuneResult:
    """Search accelerator configs of ``space`` jointly with every layer's schedule for ``model``.

    ``model``: a built-in name, .onnx or workload-list .json path, torch module (with ``input_shape``) or list
    of Workloads. ``space``: a shipped space name, JSON path, dict or DesignSpace. ``objectives``: from
    latency, energy, area, edp, power (minimised). ``budget``: configs evaluated (each on the whole network);
    resuming with a smaller budget than the log holds keeps every logged evaluation.
    ``area_max`` (mm^2), ``sram_max`` (KiB of on-chip SRAM) and ``power_max`` (average W on the network) are
    hard constraints; each defaults to the space's (``area_mm2_max``, ``sram_kib_max``, ``power_w_max``).
    ``strategy``: model (XGBoost-guided), xgboost (the same without the prior), nsga2 (optuna), random,
    exhaustive, hw-first (configs ranked with default schedules, then the front re-tuned). ``verify``: how many
    best configs to compile and simulate; ``measure``: how many of the model's top schedules per layer of those
    configs are compiled and simulated, the fastest measured one being stored.
    Files go under ``out_dir``: autotune_logs/ (log, Pareto front) and tuned/ (configs and their schedules;
    ``write=False``: the log only). On Ctrl-C, one line says how many evaluations are saved and how to resume
    (``resume_hint``: the command to show, default this call with ``resume=True``); then ``TuneInterrupted``
    (a KeyboardInterrupt) is raised. ``progress``: bars for import, pool, search and verification (None: when
    stderr is a terminal or in Jupyter).
    """
    t0 = time.perf_counter()
    progress = watched(progress)
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
    stem = label or (Path(model).stem if isinstance(model, (str, Path)) else "model")
    if run is None:
        run = f"{stem}-{sp.name}-{strategy}-s{seed}"
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", run):
        raise ValueError(f"run name {run!r} may only contain letters, digits, '_', '.', '-'")
    log_path = out / "autotune_logs" / f"{run}.jsonl"
    lim = sp.limits(area_max, sram_max, power_max)
    area_max, sram_max, power_max = lim["area_mm2_max"], lim["sram_kib_max"], lim["power_w_max"]
    cache: dict = {}  # (point, schedule mode) -> eval record, logged ones included
    with _interrupts(log_path, resume_hint or f"tc.tune(..., run={run!r}, resume=True) with the same arguments"):
        layers = None
        if not resume and log_path.is_file() and read(log_path)[1]:
            raise exists_error(log_path)  # before importing the model (seconds), not after
        if resume and log_path.is_file():
            old, old_recs = read(log_path)
            if old and "layers" in old and old_recs:
                layers = workloads.from_records(old["layers"])
        if layers is None:
            with tqdm(total=1, desc=f"importing {stem}", disable=not progress, leave=False,
                      bar_format="{desc}...") as bar:
                _, layers = workloads.load(model, input_shape)
                bar.update()
        schedules = "default" if strategy == "hw-first" else "tuned"
        header = {"version": __version__, "run": run, "layers": workloads.to_json(layers), "space": _space_json(sp),
                  "objectives": objectives, "area_max": area_max, "power_max": power_max, "sram_max": sram_max,
                  "strategy": strategy, "seed": seed, "batch": batch, "budget": budget,
                  "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        log = RunLog(log_path, header, resume)
        cache.update({(r["point"], r["schedules"]): r for r in log.records if r.get("type") == "eval"})
        verified_cache = {(r["point"], r["key"]): r for r in log.records if r.get("type") == "verify"}
        logged = sum(1 for (_, m) in cache if m == schedules)
        if logged > budget:
            warnings.warn(f"{log_path} already holds {logged} evaluations, more than budget={budget}: all {logged} are "
                          "kept (a smaller budget never shrinks a run; a larger one continues it)", stacklevel=3)

        pool = Pool(sp, area_max, seed, sram_max, progress=progress)
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

        ok = True
        try:
            with tqdm(total=budget, desc=run, disable=not progress, unit="cfg") as bar:
                while len(history) < budget:
                    pos = strat.propose(min(batch, budget - len(history)))
                    if not pos:
                        break
                    recs = run_points([int(pool.points[j]) for j in pos], schedules)
                    strat.observe(pos, recs)
                    history += recs
                    bar.update(len(recs))
                    good = [r for r in history if r["feasible"]]
                    if good:
                        b = min(good, key=lambda r: objective_values(r, objectives[:1])[0])
                        v = objective_values(b, objectives[:1])[0]
                        f, pre = (1.0, "") if objectives[0] == "area" else si_scale([v])
                        bar.set_postfix_str(f"best {objectives[0]} {v / f:.4g} {pre}{UNITS[objectives[0]]}")
            # every evaluation the log holds counts, also those a longer earlier run made beyond this budget
            seen = {id(r) for r in history}
            history += sorted((r for (_, m), r in cache.items() if m == schedules and id(r) not in seen),
                              key=lambda r: r["seq"])
            feasible = [r for r in history if r["feasible"]]
            if strategy == "hw-first" and feasible:  # then software: tune the schedules of the default-schedule front
                idx = pareto.front(np.array([objective_values(r, objectives) for r in feasible]))
                feasible = [r for r in run_points([feasible[i]["point"] for i in idx], "tuned") if r["feasible"]]
            if not feasible:
                from .feasibility import explain
                raise ValueError(explain(history, layers, pool))
            vals = np.array([objective_values(r, objectives) for r in feasible])
            front = [feasible[i] for i in pareto.front(vals)]
            best = {o: min(feasible, key=lambda r, k=LABELS[o]: r[k]) for o in dict.fromkeys([*objectives, "edp"])}
            base_res = evaluate(sp.base, layers, "tuned")
            baseline = {"type": "baseline", "point": -1, "config": {}, **base_res}
            result = TuneResult(run, sp, objectives, layers, history, front, best, baseline)
            if verify:
                from .verify import verify_records
                picks = list({id(r): r for r in best.values()}.values())[:verify]
                result.verified = verify_records(sp, picks, layers, log, verified_cache, measure, progress)
            if write:
                result.files = _write(result, out)
            result.files["log"] = log_path
        except BaseException:
            ok = False
            raise
        finally:
            if ex is not None:
                ex.close(kill=not ok)
    result.wall_s = time.perf_counter() - t0
    return result


@contextlib.contextmanager
def _interrupts(log_path: Path, resume: str):
    """A KeyboardInterrupt inside becomes one line on stderr (evaluations saved in the log, how to resume)
    and ``TuneInterrupted``."""
    try:
        yield
    except KeyboardInterrupt:
        saved = 0
        if log_path.is_file():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a record cut by the interrupt is not saved; no need to say it
                saved = len({(r["point"], r["schedules"]) for r in read(log_path)[1] if r.get("type") == "eval"})
        e = TuneInterrupted(saved, log_path, resume)
        print(str(e), file=sys.stderr, flush=True)
        raise e from None


def _write(res: TuneResult, out: Path) -> dict:
    """The best configs (``tuned/<run>_<label>.json``, each recording where its schedules are), their schedules
    (``tuned/schedules/<config>/<layer>.json``) and the front's JSON/CSV/PNG; sets ``res.configs``."""
    from ..schedules import store
    from ..schedules.groups import kernel_workload
    from ..schedules.knobs import Knobs
    files: dict = {"configs": {}, "schedules": []}
    sched_dir = (out / "tuned" / "schedules").resolve()
    measured = {(v["point"], v["key"]): v for v in res.verified}
    by_key = {ly.key: ly for ly in res.layers}
    for lbl, rec in res.best.items():
        cfg = res.space.config(rec["point"]).replace(name=f"{res.run}_{lbl}", schedules=str(sched_dir), description=(
            f"tvm_codesign.tune run {res.run}: best {lbl} in space {res.space.name} ({rec['latency_s'] * 1e3:.3f} ms, "
            f"{rec['energy_j'] * 1e3:.3f} mJ, {rec['area_mm2']:.3f} mm^2 on the tuned network)"))
        for row in rec["layers"]:
            wl = by_key[row["key"]].workload
            kwl = kernel_workload(wl, cfg)
            v = measured.get((rec["point"], row["key"]))
            knobs, figs = (row["knobs"], {"cycles": row["cycles"], "energy_pj": row["energy_pj"], "source": "model"}) \
                if v is None else (v["best_knobs"], {"cycles": v["best_sim_cycles"],
                                                     "energy_pj": v["best_sim_energy_pj"], "source": "simulator"})
            files["schedules"].append(store.save(sched_dir, cfg, kwl, Knobs.from_dict(knobs), figs))
        # the config last: a config file on disk always has its schedules beside it
        files["configs"][lbl] = cfg.save(out / "tuned" / f"{cfg.name}.json")
        res.configs[lbl] = cfg
    params = list(res.space.params)
    base = {**pareto.row({**res.baseline, "point": -1, "config": {p: 0 for p in params}}, params),
            "label": res.space.base.name}
    files.update(pareto.write(out / "autotune_logs" / res.run, res.front, params, res.objectives, base, res.run))
    return files


def resume_command(argv: list[str]) -> str:
    """The shell command that continues a CLI run given its arguments."""
    import shutil
    py = "python" if shutil.which("python") == sys.executable else sys.executable
    args = list(argv) + ([] if "--resume" in argv else ["--resume"])
    return shlex.join([py, "-m", "tvm_codesign.tune", *args])


__all__ = ["Layer", "TuneInterrupted", "TuneResult", "tune"]
