"""Precision and sparsity co-design vs the best uniform-int8 co-design, at equal area and equal clock / DRAM interface.

    python benchmarks/precision_gain.py [--json] [--space iso_alu] [--budget 120] [--max-drop 1.0] [--plot out.png]

Both searches run on the same design space (``iso_alu``: vta_default's 100 MHz and 8 B/cycle interface, so clock and
DRAM interface are equal; the core shape, ALU lanes and stages and SRAM sizes searched; ``--space iso`` keeps VTA's
one-stage ALU) with the same model-guided search and budget (tuner/precision_search.py). The int8
co-design: int8-only cores, every layer w8a8; its best EDP design sets the area budget of the mixed search (equal
area: the mixed design's area <= it). The mixed co-design: six core kinds (gemm_min_bits 8/4/2, 2:4 or not) and
per-layer w8/4/2 a8/4 dense or 2:4, under an accuracy budget.
- digits (tvm_codesign.tasks): per-layer sensitivity measured on 512 training images (tuner/sensitivity.py); the
  least-EDP mixed points are compiled and their top-1 measured through the bit-exact simulator on the first half
  of the held-out split until one is within --max-drop of the int8 design's; ``accuracy_drop_points``,
  ``int8_accuracy``, ``best_accuracy`` are measured on the second half, not used to choose. Latency and energy are
  the analytical model's (within ~2 % median of the timing simulator, cost_model.py).
- ResNet-18 224 (random weights, as every ResNet-18 figure here): latency and energy gains; its accuracy is the
  sensitivity estimate only (top-1 agreement with fp32 on 64 random inputs: there is no labelled data). With random
  weights that estimate sees almost no drop at any mode, so the searched figure is an upper bound; the same search
  with a fixed conservative policy (w4a8 dense but the first and last layer w8a8) is reported beside it.
Keys (last line): latency_gain, energy_gain, edp_gain, accuracy_drop_points, int8_accuracy, best_accuracy (digits),
int8_cycles_split / best_cycles_split (digits: simulated cycles, GEMM and ALU-epilogue execute cycles of each design),
resnet18_latency_gain, resnet18_energy_gain, resnet18_drop_estimate, areas, the chosen hardware and modes, and the
accuracy-vs-EDP front (digits, measured: uniform quantisations and the searched one on the searched hardware).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from tvm_codesign import model as Mdl
from tvm_codesign import tasks
from tvm_codesign.hardware import modes as M
from tvm_codesign.hardware.space import DesignSpace
from tvm_codesign.tuner import precision as P, precision_run as R, precision_search as PS, sensitivity as S


def _gains(b8: dict, bm: dict) -> dict:
    return {"latency_gain": b8["latency_s"] / bm["latency_s"], "energy_gain": b8["energy_j"] / bm["energy_j"],
            "edp_gain": b8["edp"] / bm["edp"], "int8_area_mm2": b8["area_mm2"], "best_area_mm2": bm["area_mm2"]}


FRONT = tuple(M.Mode(w, a, sp) for w, a, sp in ((8, 8, False), (4, 8, False), (4, 4, False), (8, 8, True),
                                                 (4, 4, True), (2, 8, False), (2, 4, False), (2, 4, True)))


def digits(space, budget, max_drop, seed, limit=None) -> dict:
    t0 = time.perf_counter()
    task = tasks.load("digits")
    layers = Mdl.named_layers(task.model, example_inputs=(task.example_input,), calibration=task.calibration)
    names = [n for n, _ in layers]
    xt, yt = task.splits["train"]
    calib_x = np.concatenate([c[0] for c in task.calibration])
    sens = S.measure(task.model, names, calib_x, xt[:512], yt[:512], threads=1, weight_scales=R.WEIGHT_SCALES)
    drops = R.drops_of(sens, names)
    b8, p8 = R.int8_baseline(space, layers, budget, P.Costs(), seed)  # each search its own layer-cost cache
    hw8 = p8.hardware(p8.position(b8["point"]), 0)
    int8_acc = R.halves(task, task.compile(hw8, batch=R.VERIFY_BATCH, progress=False, **R.compile_options({})), limit)
    recs, pm = R.search(space, layers, drops, max_drop, budget, "model", seed, area_max=b8["area_mm2"])
    best = R.verify(task, pm, recs, int8_acc, max_drop, limit=limit)
    front = []  # accuracy vs EDP: uniform quantisations and the searched one on the searched hardware, measured
    if best is not None:
        i, core = pm.position(best["point"]), pm.cores.index(tuple(best["core"]))
        for q in FRONT:
            r = pm.evaluate(i, core, {n: q for n in names})
            if "edp" in r:
                R.verify(task, pm, [r], int8_acc, float("inf"), limit=limit, tries=1)  # report half: accuracy
                front.append({"policy": P.qname(q), **{k: r[k] for k in ("accuracy", "edp", "latency_s", "energy_j")}})
        front.append({"policy": "searched", **{k: best[k] for k in ("accuracy", "edp", "latency_s", "energy_j")}})
    out = {"int8_accuracy": int8_acc[1], "int8_accuracy_selection": int8_acc[0], "sensitivity_s": sens.seconds,
           "int8": _row(b8), "front": front, "layers": len(layers), "space_size_log10": float(np.log10(pm.size))}
    if best is None:
        out.update(best=None, accuracy_drop_points=None, best_accuracy=None, latency_gain=None, energy_gain=None)
    else:
        out.update(_gains(b8, best), best=_row(best), accuracy_drop_points=best["drop"],
                   best_accuracy=best["accuracy"], drop_estimate=best["drop_estimate"],
                   accuracy_drop_points_selection=best["drop_selection"], verified_tries=best["verified_tries"])
        core = pm.hardware(pm.position(best["point"]), pm.cores.index(tuple(best["core"])))
        out.update(int8_cycles_split=where_cycles_go(task, hw8, {}), best_cycles_split=where_cycles_go(task, core, best["assign"]))
    out["wall_s"] = time.perf_counter() - t0
    return out


def where_cycles_go(task, hw, assign: dict) -> dict:
    """The compiled digits model on ``hw`` quantised as ``assign``, one held-out image through the simulator: its
    accelerator cycles and the compute module's GEMM and ALU execute cycles (simulator/activity.py), summed over
    layers. The ALU runs the requantisation epilogue (bias ADD, MUL, SHR, MAX/MIN per batch x block_out vector of
    int32 accumulators): the same work in every operand mode."""
    from tvm_codesign.hardware.isa import Opcode
    from tvm_codesign.runtime import entry
    from tvm_codesign.simulator.activity import insn_cycles
    cm = task.compile(hw, progress=False, **R.compile_options(assign))
    cm(task.heldout[0][:1])
    out = {"cycles": 0, "gemm_cycles": 0, "alu_cycles": 0}
    for r in cm.profile():
        if r["device"] == "accelerator":
            prog = entry.BY_NAME[r["name"]].program
            exe, _, _ = insn_cycles(prog.config, prog.table)
            op = prog.table["opcode"]
            out["cycles"] += r["cycles"] * r["calls"]
            out["gemm_cycles"] += int(exe[op == Opcode.GEMM].sum()) * r["calls"]
            out["alu_cycles"] += int(exe[op == Opcode.ALU].sum()) * r["calls"]
    return out


def resnet18(space, budget, max_drop, seed) -> dict:
    """ResNet-18 224 with random weights: (a) the search under the sensitivity estimate (top-1 agreement with fp32 on
    64 random inputs; with random weights it sees almost no drop at any mode, so this is the hardware's gain when
    every layer may take any mode: an upper bound), (b) a conservative fixed policy searched the same way: w4a8
    dense in every layer but the first and the last (w8a8), the practice of Bit Fusion and HAQ's baselines."""
    from _common import resnet18_drops
    t0 = time.perf_counter()
    layers, drops = resnet18_drops()
    names = [n for n, _ in layers]
    b8, _ = R.int8_baseline(space, layers, budget, P.Costs(), seed)
    recs, _ = R.search(space, layers, drops, max_drop, budget, "model", seed, area_max=b8["area_mm2"])
    bm = recs[0]
    w4 = M.Mode(4, 8)
    policy = {n: {"w8a8": 0.0, "w4a8": 0.0 if 0 < i < len(names) - 1 else 1e9} for i, n in enumerate(names)}
    p = P.Problem(space, layers, policy, 0.0, seed, quant=(M.Mode(), w4), area_max=b8["area_mm2"])
    rp, _ = PS.model_guided(p, budget, seed)
    out = {"resnet18_" + k: v for k, v in _gains(b8, bm).items()}
    out.update({"resnet18_w4a8_" + k: v for k, v in _gains(b8, rp[0]).items()})
    return out | {"resnet18_drop_estimate": bm["drop_estimate"], "resnet18_metric": "agreement (random weights)",
                  "resnet18_int8": _row(b8), "resnet18_best": _row(bm), "resnet18_w4a8_best": _row(rp[0]),
                  "resnet18_wall_s": time.perf_counter() - t0}


def _row(r: dict) -> dict:
    keep = ("point", "core", "latency_s", "energy_j", "edp", "area_mm2", "drop_estimate", "accuracy", "drop",
            "assign", "hw_modes")
    return {k: r[k] for k in keep if k in r}


def plot(front: list, int8: dict, int8_acc: float, path: str, space: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tvm_codesign.tuner import pareto
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    pts = np.array([[f["edp"], -f["accuracy"]] for f in front])
    keep = sorted(pareto.front(pts), key=lambda i: front[i]["edp"])
    ax.plot([f["edp"] * 1e9 for f in front], [f["accuracy"] for f in front], "o", color="0.6", label="points")
    ax.plot([front[i]["edp"] * 1e9 for i in keep], [front[i]["accuracy"] for i in keep], "o-", label="Pareto front")
    for f in front:
        ax.annotate(f["policy"], (f["edp"] * 1e9, f["accuracy"]), fontsize=7, xytext=(4, -8),
                    textcoords="offset points")
    ax.plot([int8["edp"] * 1e9], [int8_acc], "s", color="k", label="best int8 co-design")
    ax.set_title("held-out second half (180 images): not used to choose", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel(f"EDP (nJ s), digits CNN, {space} space")
    ax.set_ylabel("top-1 (%), simulator")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", default="iso_alu")
    ap.add_argument("--budget", type=float, default=120, help="network evaluations per search")
    ap.add_argument("--max-drop", type=float, default=1.0, help="top-1 points vs the int8 design")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-resnet", action="store_true")
    ap.add_argument("--plot", default=None, help="write the accuracy-vs-EDP front here (png)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    space = DesignSpace.load(a.space)
    out = {"space": a.space, "budget": a.budget, "max_drop": a.max_drop}
    out.update(digits(space, a.budget, a.max_drop, a.seed))
    if not a.no_resnet:
        out.update(resnet18(space, a.budget, a.max_drop, a.seed))
    if a.plot and out["front"]:
        plot(out["front"], out["int8"], out["int8_accuracy"], a.plot, a.space)
    if not a.json:
        for k, v in out.items():
            print(f"{k:28s} {v}")
    print(json.dumps(out, default=float))
    return out


if __name__ == "__main__":
    main()
