"""Peer model: ZigZag (zigzag-dse) beside this package's analytical model, on ResNet-18 as ``compile`` offloads it.

    pip install -e '.[bench]'   # zigzag-dse, six; CACTI is built once from zigzag-dse's sources (needs make, g++)
    .venv/bin/python benchmarks/peer_zigzag.py --json [--configs 50] [--seed 0] [--workers 2] [--lpf 6]

Both models get the same thing: every distinct kernel of ResNet-18 (``kernel_workload``: what compile builds for
the config) on an equivalent architecture (benchmarks/zigzag_arch.py: the config's GEMM core as ZigZag's
operational array, its SRAM sizes with CACTI 7 costs, DRAM at its bandwidth with our per-byte energy, the same
MAC energy). Each model picks its own mapping per layer by the same rule, fastest first then least energy: ours
over the layer's knob grid (tuner/network.py, as the tuner does), ZigZag over its temporal mappings (LOMA, the
spatial mapping fixed to our core). Whole-network figures weight each layer by how often ResNet-18 runs it.

Reported: per layer on ``vta_default`` (``per_layer``: cycles and energy of both, by component, with the parts one
model counts and the other does not), and over ``--configs`` configs sampled from ``--space`` (seeded) the
Spearman rank correlation of whole-network latency (``spearman_latency``, seconds: the tuner's objective; the
clock is common to both, so ``spearman_cycles`` gives it without the clock) and energy (``spearman_energy``: our
total against ZigZag's dynamic energy plus the architecture's static power over ZigZag's latency, see
``network_totals``; ``spearman_energy_comparable``: dynamic energy of only the components ZigZag models, on both
sides; ``spearman_energy_vs_zigzag_dynamic``: our total against ZigZag's dynamic energy alone). ZigZag's mapping
search runs at its default of 6 loop prime factors; ``--lpf`` cuts it (faster), and ``--check-lpf`` configs are
then re-run at 6 and the largest change is reported (``lpf_check``: at 2, a layer's latency moved by up to 140 %,
so the cut is not the default). Last line with --json: one JSON object.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import logging
import math
import multiprocessing as mp
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import zigzag_arch as Z  # noqa: E402
from _common import resnet18_layers  # noqa: E402

ZIGZAG_PARTS = ("mac", "inp_sram", "wgt_sram", "acc_sram", "dram")  # what ZigZag's cost model counts
ZIGZAG_DEFAULT_LPF = 6


# ----- statistics -----------------------------------------------------------------------------------------
def ranks(x) -> np.ndarray:
    """Ranks 1..n of ``x``, ties sharing their average rank."""
    x = np.asarray(x, np.float64)
    order = np.argsort(x, kind="mergesort")
    r = np.empty(len(x), np.float64)
    r[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        tie = x == v
        if tie.sum() > 1:
            r[tie] = r[tie].mean()
    return r


def spearman(a, b) -> float:
    """Spearman's rank correlation: Pearson's correlation of the ranks (ties averaged)."""
    if len(a) != len(b) or len(a) < 3:
        raise ValueError(f"spearman needs two sequences of equal length >= 3, got {len(a)} and {len(b)}")
    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / den) if den else float("nan")


# ----- our side ---------------------------------------------------------------------------------------------
def unit_costs(cfg) -> tuple[float, float, float]:
    """(pJ per MAC, pJ per DRAM byte read, pJ per DRAM byte written) of our energy model (``physical``) for ``cfg``."""
    from tvm_codesign import physical
    u = physical.unit_energies_pj(cfg)
    return float(u["mac"]), float(u["dram_read_byte"]), float(u["dram_write_byte"])


def without_epilogue(wl):
    """The same kernel with no ALU stage (no bias, requantisation or clip; the store narrows as it is): what
    ZigZag models of a layer."""
    import dataclasses
    return dataclasses.replace(wl, bias=False, shift=None, multiplier=None, relu=False, clip=None, saturate=False)


def ours(cfg, layers, bare: bool = False) -> dict:
    """Our model per distinct layer (tuner/network.py's pick: fastest schedule, ties least energy): cycles,
    energy by component, and with ``bare`` the cycles of the same kernel without its epilogue (the per-layer
    table reads them; the sampled configs do not)."""
    from tvm_codesign.costmodel import analytical as A
    from tvm_codesign.schedules.groups import kernel_workload
    from tvm_codesign.tuner import network
    res = network.evaluate(cfg, layers)
    if not res["feasible"]:
        return {"feasible": False, "reason": res["reason"]}
    out = {}
    for ly, row in zip(layers, res["layers"]):
        wl = kernel_workload(ly.workload, cfg)
        parts = {k: float(v) for k, v in A.predict(wl, cfg, row["knobs"])["energy_pj"].items()}
        b = network.evaluate(cfg, [network.Layer(without_epilogue(ly.workload), 1, ly.name)]) if bare else None
        out[ly.key] = {"cycles": row["cycles"], "energy_pj": row["energy_pj"], "parts": parts,
                       "cycles_no_epilogue": b["layers"][0]["cycles"] if b and b["feasible"] else None,
                       "knobs": row["knobs"]}
    return {"feasible": True, "layers": out}


# ----- ZigZag side ------------------------------------------------------------------------------------------
def _zigzag_layer(wl, cfg, acc_yaml, map_yaml, lpf, reuse_at_pins: bool = False) -> dict:
    """ZigZag on one kernel: its best temporal mapping by latency, ties least energy (``MinimalLatencyStage``).

    ZigZag's API assumes an operand read again at the same address from the innermost memory costs nothing (it
    stays at the memory's output pins); VTA's GEMM core has no such latch and reads its SRAMs every cycle, so
    the pipeline is built here with that assumption off (``reuse_at_pins`` turns it back on). The stages are
    ZigZag's own, as its API chains them, minus the ones that write result files."""
    from zigzag.stages.evaluation.cost_model_evaluation import CostModelStage
    from zigzag.stages.main import MainStage
    from zigzag.stages.mapping.spatial_mapping_generation import SpatialMappingGeneratorStage
    from zigzag.stages.mapping.temporal_mapping_generator_stage import TemporalMappingGeneratorStage
    from zigzag.stages.parser.accelerator_parser import AcceleratorParserStage
    from zigzag.stages.parser.workload_parser import WorkloadParserStage
    from zigzag.stages.results.reduce_stages import MinimalLatencyStage
    from zigzag.stages.workload_iterator import WorkloadStage
    from zigzag.mapping.temporal_mapping import TemporalMappingType
    stages = [WorkloadParserStage, AcceleratorParserStage, WorkloadStage, MinimalLatencyStage,
              SpatialMappingGeneratorStage, MinimalLatencyStage, TemporalMappingGeneratorStage, CostModelStage]
    cmes = MainStage(list_of_callables=stages, accelerator=acc_yaml, workload=[Z.layer(wl, cfg)], mapping=map_yaml,
                     loma_lpf_limit=lpf, loma_show_progress_bar=False, nb_mappings_generated=1,
                     enable_mix_spatial_mapping_generation=False, temporal_mapping_type=TemporalMappingType.UNEVEN,
                     access_same_data_considered_as_no_access=reuse_at_pins).run()
    c = cmes[0][0]
    by_op = {str(k): v for k, v in c.mem_energy_breakdown.items()}  # per operand: [SRAM level, DRAM level]
    parts = {"mac": float(c.mac_energy), "inp_sram": float(by_op["I"][0]), "wgt_sram": float(by_op["W"][0]),
             "acc_sram": float(by_op["O"][0]), "dram": float(sum(v[-1] for v in by_op.values()))}
    return {"cycles": float(c.latency_total2), "ideal_cycles": float(c.ideal_cycle),
            "energy_pj": float(c.energy_total), "parts": parts}


def zigzag_config(task) -> dict:
    """ZigZag on every distinct kernel of one config (run in a worker process)."""
    cfg_dict, kernels, costs, mac_pj, dram_rd, dram_wr, lpf = task
    from tvm_codesign.hardware.config import AcceleratorConfig
    from tvm_codesign.schedules.workload import Workload
    logging.disable(logging.CRITICAL)  # ZigZag logs every mapping at INFO
    cfg = AcceleratorConfig.from_dict(cfg_dict)
    t0 = time.perf_counter()
    out = {}
    with tempfile.TemporaryDirectory() as d:
        acc, mp_ = Z.write(d, cfg, {k: tuple(v) for k, v in costs.items()}, mac_pj, dram_rd, dram_wr)
        for key, wd in kernels:
            wd = {**wd, "stride": tuple(wd["stride"]), "pad": tuple(wd["pad"]),
                  "clip": None if wd.get("clip") is None else tuple(wd["clip"])}
            try:
                out[key] = _zigzag_layer(Workload(**wd), cfg, acc, mp_, lpf)
            except Exception as e:  # noqa: BLE001 (ZigZag raises many kinds; the config is reported, not counted)
                return {"error": f"{key}: {type(e).__name__}: {e}", "wall_s": time.perf_counter() - t0}
    return {"layers": out, "wall_s": time.perf_counter() - t0}


def kernels_of(cfg, layers) -> list:
    """(layer key, kernel Workload as a dict) per distinct layer: the kernel compile builds on ``cfg``."""
    from tvm_codesign.schedules.groups import kernel_workload
    return [(ly.key, kernel_workload(ly.workload, cfg).to_dict()) for ly in layers]


def task_of(cfg, layers, lpf) -> tuple:
    return (cfg.to_dict(), kernels_of(cfg, layers), Z.sram_costs(cfg), *unit_costs(cfg), lpf)


# ----- comparison -------------------------------------------------------------------------------------------
def static_mw(cfg) -> float:
    """Power that flows for the whole run whatever the mapping (``physical``): leakage + DRAM background, mW."""
    from tvm_codesign import physical
    c = physical.costs(cfg)
    return float(c["leakage_mw"] + c["dram_background_mw"])


def network_totals(layers, o: dict, z: dict, cfg) -> dict:
    """Whole-network cycles, latency and energy of both models (each layer times its count).

    ZigZag counts dynamic energy only; the equivalent architecture leaks the same power (``static_mw``: CACTI's
    leakage, the DRAM part's background), so ZigZag's total is its dynamic energy plus that power over its own
    latency (``zigzag_energy_total_pj``), as ours is over ours."""
    tot = lambda side, f: sum(ly.count * f(side[ly.key]) for ly in layers)
    comp = lambda r: sum(v for k, v in r["parts"].items() if k in ZIGZAG_PARTS)
    res = {"ours_cycles": tot(o, lambda r: r["cycles"]), "zigzag_cycles": tot(z, lambda r: r["cycles"]),
           "ours_energy_pj": tot(o, lambda r: r["energy_pj"]), "zigzag_energy_pj": tot(z, lambda r: r["energy_pj"]),
           "ours_energy_comparable_pj": tot(o, comp)}
    res["ours_latency_s"] = res["ours_cycles"] / (cfg.clock_mhz * 1e6)
    res["zigzag_latency_s"] = res["zigzag_cycles"] / (cfg.clock_mhz * 1e6)
    res["static_mw"] = static_mw(cfg)
    res["zigzag_energy_total_pj"] = res["zigzag_energy_pj"] + res["static_mw"] * 1e9 * res["zigzag_latency_s"]
    return res


def per_layer_rows(layers, o: dict, z: dict) -> list[dict]:
    rows = []
    for ly in layers:
        a, b = o[ly.key], z[ly.key]
        comp = sum(v for k, v in a["parts"].items() if k in ZIGZAG_PARTS)
        rows.append({
            "name": ly.name, "count": ly.count, "shape": ly.workload.describe(),
            "ours_cycles": a["cycles"], "ours_cycles_no_epilogue": a["cycles_no_epilogue"],
            "zigzag_cycles": b["cycles"], "zigzag_ideal_cycles": b["ideal_cycles"],
            "latency_diff": a["cycles"] / b["cycles"] - 1,
            "latency_diff_no_epilogue": (a["cycles_no_epilogue"] / b["cycles"] - 1
                                         if a["cycles_no_epilogue"] else None),
            "ours_energy_pj": a["energy_pj"], "ours_energy_comparable_pj": comp, "zigzag_energy_pj": b["energy_pj"],
            "energy_diff": a["energy_pj"] / b["energy_pj"] - 1, "energy_diff_comparable": comp / b["energy_pj"] - 1,
            "ours_parts_pj": a["parts"], "zigzag_parts_pj": b["parts"],
            "not_in_zigzag_pj": {k: v for k, v in a["parts"].items() if k not in ZIGZAG_PARTS and k != "total"},
            "over_25pct": abs(a["cycles"] / b["cycles"] - 1) > 0.25 or abs(a["energy_pj"] / b["energy_pj"] - 1) > 0.25,
            "knobs": a["knobs"]})
    return rows


def _run_all(tasks, workers):
    if workers <= 1:
        return [zigzag_config(t) for t in tasks]
    with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as ex:
        return list(ex.map(zigzag_config, tasks))


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="edge")
    ap.add_argument("--configs", type=int, default=50, help="configs sampled from the space")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--config", default="vta_default", help="the config of the per-layer table")
    ap.add_argument("--lpf", type=int, default=ZIGZAG_DEFAULT_LPF,
                    help="ZigZag's loop-prime-factor limit (its default, 6; lower is faster and cuts its mapping space)")
    ap.add_argument("--check-lpf", type=int, default=0, help="with --lpf below 6: sampled configs re-run at 6 to "
                                                              "measure what the cut changes")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    import tvm_codesign as tc
    from tvm_codesign.hardware.space import DesignSpace

    t_start = time.perf_counter()
    layers = resnet18_layers()
    base = tc.AcceleratorConfig.load(a.config)
    space = DesignSpace.load(a.space)
    say = (lambda *m: None) if a.json else (lambda *m: print(*m, flush=True))
    first = ours(base, layers, bare=True)
    if not first["feasible"]:
        raise SystemExit(f"{base.name}: {first['reason']}")
    cfgs, ours_res, skipped = [base], [first], 0
    for _, cfg in space.sample(4 * a.configs, a.seed):  # the first --configs that run all of ResNet-18
        if len(cfgs) > a.configs:
            break
        r = ours(cfg, layers)
        if r["feasible"]:
            cfgs.append(cfg)
            ours_res.append(r)
        else:
            skipped += 1
    say(f"our model: {len(cfgs) - 1} configs ({skipped} skipped: a layer does not fit) "
        f"({time.perf_counter() - t_start:.1f} s)")
    t0 = time.perf_counter()
    tasks = [task_of(c, layers, a.lpf) for c in cfgs]  # CACTI runs here, one process (cached)
    check = list(range(1, min(len(cfgs), 1 + a.check_lpf))) if a.lpf < ZIGZAG_DEFAULT_LPF else []
    tasks += [tasks[i][:-1] + (ZIGZAG_DEFAULT_LPF,) for i in check]  # the same inputs at ZigZag's default
    cacti_s = time.perf_counter() - t0
    say(f"CACTI costs: {cacti_s:.1f} s; ZigZag on {len(tasks)} (config, lpf) runs x {len(layers)} layers ...")
    t0 = time.perf_counter()
    zz = _run_all(tasks, a.workers)
    zig_s = time.perf_counter() - t0
    zz_main, zz_check = zz[:len(cfgs)], zz[len(cfgs):]

    failed = [{"config": c.name, "error": z["error"]} for c, z in zip(cfgs, zz_main) if "error" in z]
    if "error" in zz_main[0]:
        raise SystemExit(f"ZigZag failed on {base.name}: {zz_main[0]['error']}")
    per_cfg = []
    for i, z in enumerate(zz_main):
        if "error" in z:
            continue
        tot = network_totals(layers, ours_res[i]["layers"], z["layers"], cfgs[i])
        per_cfg.append({"config": cfgs[i].name, "key": cfgs[i].key, **tot, "zigzag_wall_s": round(z["wall_s"], 1)})
    rows = per_layer_rows(layers, ours_res[0]["layers"], zz_main[0]["layers"])
    samp = per_cfg[1:]
    col = lambda k: [r[k] for r in samp]
    lpf_rows = []
    for i, z6 in zip(check, zz_check):
        if "error" in z6 or "error" in zz_main[i]:
            continue
        z2 = zz_main[i]["layers"]
        for key, r6 in z6["layers"].items():
            lpf_rows.append({"config": cfgs[i].name, "key": key,
                             "latency_change": z2[key]["cycles"] / r6["cycles"] - 1,
                             "energy_change": z2[key]["energy_pj"] / r6["energy_pj"] - 1})
    wall6 = [z["wall_s"] for z in zz_check]
    wall2 = [zz_main[i]["wall_s"] for i in check]
    ratio = lambda num, den: [n / d for n, d in zip(col(num), col(den))]
    out = {
        "spearman_latency": round(spearman(col("ours_latency_s"), col("zigzag_latency_s")), 4),
        "spearman_energy": round(spearman(col("ours_energy_pj"), col("zigzag_energy_total_pj")), 4),
        "spearman_energy_vs_zigzag_dynamic": round(spearman(col("ours_energy_pj"), col("zigzag_energy_pj")), 4),
        "spearman_cycles": round(spearman(col("ours_cycles"), col("zigzag_cycles")), 4),
        "spearman_energy_comparable": round(spearman(col("ours_energy_comparable_pj"), col("zigzag_energy_pj")), 4),
        "configs": len(samp), "zigzag_failed": failed, "skipped_infeasible": skipped,
        "space": a.space, "seed": a.seed, "config": base.name,
        "latency_ratio_median": round(float(np.median(ratio("ours_cycles", "zigzag_cycles"))), 4),
        "energy_ratio_median": round(float(np.median(ratio("ours_energy_pj", "zigzag_energy_total_pj"))), 4),
        "energy_comparable_ratio_median": round(float(np.median(ratio("ours_energy_comparable_pj",
                                                                      "zigzag_energy_pj"))), 4),
        "network": per_cfg[0], "per_layer": rows,
        "lpf": a.lpf, "lpf_check": {
            "configs": len(check), "layers": len(lpf_rows),
            "max_abs_latency_change": max((abs(r["latency_change"]) for r in lpf_rows), default=None),
            "max_abs_energy_change": max((abs(r["energy_change"]) for r in lpf_rows), default=None),
            "wall_s_at_lpf": round(sum(wall2), 1), "wall_s_at_6": round(sum(wall6), 1)},
        "wall_s": round(time.perf_counter() - t_start, 1), "zigzag_wall_s": round(zig_s, 1),
        "cacti_wall_s": round(cacti_s, 1), "workers": a.workers, "per_config": per_cfg}
    if not a.json:
        print(f"{'layer':5s} {'n':>2s} {'ours cyc':>10s} {'no epi':>10s} {'zigzag':>10s} {'dlat':>7s}"
              f" {'ours uJ':>8s} {'comp uJ':>8s} {'zz uJ':>8s} {'dE':>7s}")
        for r in rows:
            print(f"{r['name']:5s} {r['count']:2d} {r['ours_cycles']:10,.0f} {r['ours_cycles_no_epilogue'] or 0:10,.0f} "
                  f"{r['zigzag_cycles']:10,.0f} {r['latency_diff']:+7.1%} {r['ours_energy_pj'] / 1e6:8.1f} "
                  f"{r['ours_energy_comparable_pj'] / 1e6:8.1f} {r['zigzag_energy_pj'] / 1e6:8.1f} {r['energy_diff']:+7.1%}")
        print({k: out[k] for k in ("spearman_latency", "spearman_energy", "spearman_cycles",
                                   "spearman_energy_comparable", "configs", "wall_s")})
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
