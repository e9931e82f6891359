"""``python -m tvm_codesign.tune``: co-design an accelerator and its schedules for a network.

    python -m tvm_codesign.tune --model resnet18 --space edge --objectives latency,energy,area \\
        --budget 300 --seed 0

Prints a summary table and leaves autotune_logs/<run>.jsonl (+ _pareto.json/.csv/.png), tuned/<run>_<best>.json
and tuned/schedules/<config>/<layer>.json behind (under --out; never in targets/, the presets).
``tvm_codesign.tune(...)`` is the same as a function. Ctrl-C stops it with one line: what is saved, and the
command that resumes.
"""
from __future__ import annotations

import argparse
import json
import sys
import types
import warnings

from .errors import CodesignError
from .tuner.run import TuneInterrupted, TuneResult, resume_command, tune  # noqa: F401


def _shape(s: str):
    try:
        return tuple(int(v) for v in s.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None


def main(argv=None) -> TuneResult:
    ap = argparse.ArgumentParser(prog="python -m tvm_codesign.tune", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet18",
                    help="built-in (resnet18, mobilenet_v2, transformer_encoder, mlp), an .onnx file, or a "
                         "workload-list .json (default resnet18)")
    ap.add_argument("--input-shape", type=_shape, default=None, help="e.g. 1,3,224,224 (built-ins have defaults)")
    ap.add_argument("--space", default="edge", help="a space in targets/spaces/ (edge, iso, small) or a JSON path")
    ap.add_argument("--objectives", default="latency,energy,area",
                    help="comma-separated, minimised: latency, energy, area, edp, power")
    ap.add_argument("--budget", type=int, default=200, help="configs to evaluate, each on the whole network")
    ap.add_argument("--area-max", type=float, default=None, help="mm^2 (default: the space's constraint)")
    ap.add_argument("--power-max", type=float, default=None, help="average W over the network (default: the "
                    "space's constraint)")
    ap.add_argument("--sram-max", type=float, default=None, help="KiB of on-chip SRAM: micro-op + input + weight "
                    "+ accumulator buffers (default: the space's constraint)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--strategy", default="model",
                    choices=["model", "nsga2", "random", "exhaustive", "hw-first", "xgboost"],
                    help="model: XGBoost-guided with a roofline prior (default); nsga2: optuna; xgboost: the "
                         "model without the prior (an ablation); the rest are baselines")
    ap.add_argument("--batch", type=int, default=8, help="configs proposed per round (results do not depend "
                                                          "on --workers)")
    ap.add_argument("--executor", default="process", choices=["local", "process", "ray"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--ray-address", default=None, help="an existing Ray cluster (default: start a local one)")
    ap.add_argument("--out", default=".", help="root for autotune_logs/ (log, Pareto front) and tuned/ (configs, "
                    "schedules)")
    ap.add_argument("--run", default=None, help="run name (default <model>-<space>-<strategy>-s<seed>)")
    ap.add_argument("--resume", action="store_true", help="continue the run's log instead of refusing to overwrite")
    ap.add_argument("--verify", type=int, default=1, help="best configs to compile and simulate (0: none)")
    ap.add_argument("--measure", type=int, default=4, help="per layer of the verified configs: how many of the "
                    "model's top schedules to compile and simulate; the fastest is stored (1: the model's pick)")
    ap.add_argument("--no-write", action="store_true", help="keep only the log (no tuned/ configs or schedules, no "
                    "plots)")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    ap.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    ap.add_argument("--max-accuracy-drop", type=float, default=None, metavar="POINTS",
                    help="co-design per-layer precision and 2:4 sparsity too (tuner/precision_run.py), keeping the "
                         "held-out top-1 within POINTS of int8: --model must be a built-in task (digits, brackets); "
                         "--strategy model, random or nsga2; --budget counts network evaluations")
    argv = sys.argv[1:] if argv is None else list(argv)
    a = ap.parse_args(argv)
    if a.max_accuracy_drop is not None:
        return _precision(ap, a)
    shown = warnings.showwarning  # a warning is one "warning: ..." line, not a source location and a code line
    warnings.showwarning = lambda message, *_, **__: print(f"warning: {message}", file=sys.stderr)
    try:
        res = tune(a.model, a.space, objectives=[o.strip() for o in a.objectives.split(",") if o.strip()],
                   budget=a.budget, area_max=a.area_max, power_max=a.power_max, sram_max=a.sram_max,
                   seed=a.seed, strategy=a.strategy,
                   batch=a.batch, executor=a.executor, workers=a.workers, ray_address=a.ray_address, out_dir=a.out,
                   run=a.run, resume=a.resume, verify=a.verify, measure=a.measure, write=not a.no_write,
                   progress=False if a.quiet else None, input_shape=a.input_shape, resume_hint=resume_command(argv))
    except TuneInterrupted:  # tune printed what is saved and how to resume
        sys.exit(130)
    except (CodesignError, ValueError, OSError) as e:
        ap.exit(2, f"error: {e}\n")
    finally:
        warnings.showwarning = shown
    print(f"\n{res.run}: {res.evaluations} configs evaluated in {res.wall_s:.1f} s; Pareto front "
          f"({len(res.front)} configs, objectives {', '.join(res.objectives)}):")
    print(res.table())
    b, base = res.best, res.baseline
    print("\n" + res.gains())
    if res.verified:
        errs = [abs(v["error"]) for v in res.verified]
        print(f"verified {len(errs)} layers by compile + simulate: model cycles within "
              f"{100 * max(errs):.1f}% (median {100 * sorted(errs)[len(errs) // 2]:.1f}%)")
        gain = sum(v["sim_cycles"] for v in res.verified) / sum(v["best_sim_cycles"] for v in res.verified)
        if gain > 1:
            print(f"measuring the model's top {res.verified[0]['top']} schedules per layer made them "
                  f"{gain:.3f}x faster in simulation (layer cycles summed once per distinct layer)")
    for k, v in res.files.items():
        if k == "schedules":
            print(f"  schedules: {len(v)} files under {v[0].parents[1] if v else '-'}")
        elif isinstance(v, dict):
            for lbl, p in v.items():
                print(f"  config ({lbl}): {p}")
        else:
            print(f"  {k}: {v}")
    if a.json:
        print(json.dumps({"run": res.run, "evaluations": res.evaluations, "wall_s": res.wall_s,
                          "front": len(res.front), "configs_in_space": res.space.size,
                          "best": {k: {f: r[f] for f in ("point", "latency_s", "energy_j", "area_mm2", "edp")}
                                   for k, r in b.items()},
                          "baseline": {f: base[f] for f in ("latency_s", "energy_j", "area_mm2", "edp")}}))
    return res


def _precision(ap, a) -> dict:
    from .tuner.precision_run import tune_precision
    if a.strategy not in ("model", "random", "nsga2"):
        ap.exit(2, f"error: --max-accuracy-drop searches with --strategy model, random or nsga2, not {a.strategy}\n")
    if a.max_accuracy_drop < 0:
        ap.exit(2, f"error: --max-accuracy-drop must be >= 0 points, got {a.max_accuracy_drop}\n")
    ignored = [f"--{k.replace('_', '-')}" for k, default in (
        ("objectives", "latency,energy,area"), ("power_max", None), ("sram_max", None), ("resume", False),
        ("no_write", False), ("input_shape", None), ("executor", "process"), ("ray_address", None))
        if getattr(a, k) != default]
    if ignored:
        ap.exit(2, f"error: {', '.join(ignored)} not supported with --max-accuracy-drop (it minimises EDP under the "
                   "accuracy budget; --area-max, --budget, --strategy, --seed, --out, --run apply)\n")
    try:
        res = tune_precision(a.model, a.space, a.max_accuracy_drop, a.budget, a.strategy, a.seed, a.out, a.run,
                             area_max=a.area_max)
    except (CodesignError, ValueError, OSError) as e:
        ap.exit(2, f"error: {e}\n")
    b = res.get("best")
    print(f"{res['run']}: {res['feasible']} feasible points of a {res['space_size']:.3g}-point space "
          f"({res['evaluations']:.0f} network evaluations, {res['wall_s']:.0f} s); int8 top-1 {res['int8_accuracy']:.2f} %")
    if b:
        print(f"best verified: EDP {b['edp']:.3g} J s, latency {b['latency_s'] * 1e3:.3f} ms, energy "
              f"{b['energy_j'] * 1e6:.2f} uJ, area {b['area_mm2']:.2f} mm^2, core {tuple(b['core'])}; top-1 "
              f"{b['accuracy']:.2f} % on held-out images not used to choose (drop {b['drop']:.2f}; chosen at "
              f"{b['drop_selection']:.2f} on the other half, estimated {b['drop_estimate']:.2f}); modes {b['assign']}")
    print(f"  log: {res['log']}")
    if a.json:
        print(json.dumps(res, default=float))
    if not b:
        print("no verified point within the accuracy budget (see the log)", file=sys.stderr)
        sys.exit(1)
    return res


class _CallableModule(types.ModuleType):
    """``tvm_codesign.tune`` is this module once imported; calling it runs ``tune``."""

    def __call__(self, *args, **kwargs) -> TuneResult:
        return tune(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    main()
