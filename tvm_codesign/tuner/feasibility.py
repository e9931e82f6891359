"""Why a layer cannot run on a config, and why a search found no config that runs a whole network.

A layer runs on a config iff some knob vector passes ``knobs.check``. The smallest tiles with one context
need the least of every SRAM, so they decide it and their ``KnobError`` says which limit is hit; only the
folded-loop limit can prefer bigger tiles, so a failing smallest tile is confirmed on the exact knob grid.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from ..hardware.config import AcceleratorConfig
from ..hardware.space import sram_kib
from ..schedules import knobs as kn
from ..schedules.groups import kernel_workload
from ..schedules.workload import Workload
from . import knob_grid

# fields that change timing only, never whether a schedule fits (configs differing only in them are one case)
TIMING = ("dram_bandwidth", "dram_latency", "clock_mhz", "issue_cycles", "gemm_fill_cycles", "alu_fill_cycles",
          "alu_ii_imm", "alu_ii_vec", "alu_lanes", "alu_stages", "dma_burst_beats", "dma_request_cycles", "dma_outstanding",
          "queue_depth")


def _text(e: kn.KnobError) -> str:
    return str(e).split(": ", 1)[-1]


def why_not(wl: Workload, cfg: AcceleratorConfig) -> str | None:
    """None if some schedule of ``wl`` runs on ``cfg``, else the reason (the limit its smallest tile breaks)."""
    try:
        kn.check_workload(wl, cfg)
    except kn.KnobError as e:
        return _text(e)
    reason = None
    for tile in kn.INP_TILES:
        try:
            kn.check(wl, cfg, kn.Knobs(1, 1, 1, 1, 1, kn.ORDERS[0], 1, tile))
            return None
        except kn.KnobError as e:
            reason = reason or _text(e)  # the dense window's reason
    if len(knob_grid.grid(wl, cfg, orders=kn.ORDERS[:1], vthreads=(1,), distinct=False)["tile_n"]):
        return None
    return reason


def explain(history: list[dict], layers: list, pool) -> str:
    """Why none of the evaluated configs (``history``) runs the network within the limits: a layer no
    config of the pool can run, layers no single config can run together, or what the evaluated ones broke."""
    fields = pool.fields
    keep = [j for j, f in enumerate(fields) if f not in TIMING]
    _, first = np.unique(pool.values[:, keep], axis=0, return_index=True)
    cfgs = [pool.space.config(int(pool.points[i])) for i in sorted(first)]
    runs = np.zeros((len(layers), len(cfgs)), bool)
    biggest = max(range(len(cfgs)), key=lambda i: sram_kib(cfgs[i]))
    for i, ly in enumerate(layers):
        for j, cfg in enumerate(cfgs):
            runs[i, j] = why_not(kernel_workload(ly.workload, cfg), cfg) is None
        if not runs[i].any():
            cfg = cfgs[biggest]
            wl = kernel_workload(ly.workload, cfg)
            return (f"layer {ly.name} ({wl.describe()}) cannot run on any of the {len(pool)} feasible configs of "
                    f"space {pool.space.name!r}: even on {cfg.name}, the one with the most on-chip SRAM "
                    f"({sram_kib(cfg):g} KiB), {why_not(wl, cfg)}. A larger budget cannot help: widen the space "
                    "(or its constraints) or make the layer smaller")
    if not runs.all(0).any():
        names = [ly.name for ly in layers]
        return (f"no config of space {pool.space.name!r} runs every layer: each of its {len(pool)} feasible "
                f"configs fails one of {', '.join(names[i] for i in np.flatnonzero(~runs.all(1)))}. A larger budget "
                "cannot help: widen the space or relax its constraints")
    kinds = Counter(("power" if "power_max" in r["reason"] else r["reason"].split(":", 1)[0] + " does not fit")
                    for r in history if not r["feasible"])
    said = ", ".join(f"{n} {'exceed power_max' if k == 'power' else k}" for k, n in kinds.most_common(4))
    return (f"none of the {len(history)} evaluated configs of space {pool.space.name!r} runs every layer within "
            f"the constraints ({said}), though {int(runs.all(0).sum())} of its {len(cfgs)} distinct SRAM/core "
            "shapes can run every layer: raise the budget or relax the constraints")
