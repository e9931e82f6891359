"""One co-design evaluation: a hardware config on a whole network, each layer with its best schedule.

A network is a list of ``Layer`` (a Workload and how often it runs). Layers with the same ``workload_key``
(same shape and epilogue stages) share one schedule search. For every layer the analytical model ranks the
layer's complete knob grid (``knob_grid.grid``: every schedule ``knobs.check`` accepts) and keeps the fastest
(ties: least energy); ``schedules="default"`` uses ``knobs.default`` instead (the "hardware first" baseline).
Totals weight each layer by its count. Each layer's energy includes leakage and the DRAM part's background power
over that layer's cycles, so the network's energy carries static energy over the network's latency, and power is
energy / latency. A config ``physical`` cannot build (clock above reach, no DRAM part for its bandwidth, SRAM off
the CACTI grid) is infeasible with that reason. No TIR is built, so this runs in worker processes without TVM.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..costmodel import analytical as A
from .. import physical
from ..hardware.config import AcceleratorConfig
from ..schedules import knobs as kn
from ..schedules.groups import kernel_workload
from ..schedules.store import workload_key
from ..schedules.workload import Workload
from . import knob_grid
from .feasibility import why_not


@dataclasses.dataclass(frozen=True)
class Layer:
    workload: Workload
    count: int = 1
    name: str = ""

    @property
    def key(self) -> str:
        return workload_key(self.workload)


def group(layers: list) -> list[Layer]:
    """Merge layers with the same schedule key (counts add; the first one's workload represents them)."""
    out: dict = {}
    for ly in layers:
        if not isinstance(ly, Layer):
            wl, n = ly
            ly = Layer(wl, int(n), wl.name)
        if ly.count < 1:
            raise ValueError(f"layer {ly.name or ly.key}: count must be >= 1, got {ly.count}")
        prev = out.get(ly.key)
        out[ly.key] = ly if prev is None else dataclasses.replace(prev, count=prev.count + ly.count)
    return [dataclasses.replace(ly, name=ly.name or f"L{i}") for i, ly in enumerate(out.values())]


def _pick(wl: Workload, cfg: AcceleratorConfig, schedules: str):
    """(knobs dict, figures) of one layer, or (None, reason) if no schedule fits."""
    if schedules == "tuned":
        cols = knob_grid.grid(wl, cfg)
        if len(cols["tile_n"]) == 0:
            return None, f"{wl.describe()} has no schedule on this config: {why_not(wl, cfg)}"
        r = A.evaluate(cols)
        i = int(np.lexsort((r["energy_pj"], r["cycles"]))[0])
        k = knob_grid.knobs_at(cols, i)
    else:
        try:
            k = kn.default(wl, cfg)
        except kn.KnobError as e:
            return None, str(e)
        r, i = A.evaluate(A.columns([(wl, cfg, k)])), 0
    return k.to_dict(), {"cycles": float(r["cycles"][i]), "energy_pj": float(r["energy_pj"][i]),
                         "dram_bytes": float(r["dram_bytes"][i])}


def evaluate(cfg: AcceleratorConfig, layers: list[Layer], schedules: str = "tuned") -> dict:
    """Latency (s), energy (J), area (mm^2), EDP, average power (W) and per-layer schedules of ``cfg``.
    ``feasible`` is False (with ``reason``) if some layer cannot run on it."""
    if schedules not in ("tuned", "default"):
        raise ValueError(f"schedules must be 'tuned' or 'default', got {schedules!r}")
    why = physical.why_infeasible(cfg)
    if why:
        return {"feasible": False, "reason": f"not buildable: {why}", "area_mm2": float("nan")}
    pc = physical.costs(cfg)
    area = pc["area_mm2"]["total"]
    rows, cycles, pj = [], 0.0, 0.0
    for ly in layers:
        wl = kernel_workload(ly.workload, cfg)  # the kernel compile() builds for this config
        k, fig = _pick(wl, cfg, schedules)
        if k is None:
            return {"feasible": False, "reason": f"{ly.name}: {fig}", "area_mm2": area}
        rows.append({"name": ly.name, "key": ly.key, "count": ly.count, "folded": wl != ly.workload, "knobs": k,
                     **fig})
        cycles += ly.count * fig["cycles"]
        pj += ly.count * fig["energy_pj"]
    latency = cycles / (cfg.clock_mhz * 1e6)
    return {"feasible": True, "cycles": cycles, "latency_s": latency, "energy_j": pj * 1e-12, "area_mm2": area,
            "edp": latency * pj * 1e-12, "power_w": pj * 1e-12 / latency if latency else 0.0, "layers": rows,
            "dram_interface": pc["dram_interface"], "vdd": pc["vdd"], "fmax_mhz": pc["fmax_mhz"]}
