"""A config's physical costs: operating point (clock reach, supply, DRAM part), area, unit energies, static power.

Everything is a pure function of the config, computed once per config (``costs``, cached by its hardware key).
Per-component sources are in the docstrings of ``sram`` (CACTI table, banking), ``logic`` (MACs, ALU lanes,
operand wiring, DMA and control), ``dram`` (interfaces) and ``tech`` (nodes, voltage-frequency, gate delay).
Here:

- Clock reach: a cycle must fit the slowest of (a) one MAC / adder-tree pipeline stage plus the operand wire
  across the core (``tech.mac_stage_s`` + ``logic.wiring``'s delay), (b) every SRAM bank's random cycle time
  [CACTI]. Above that clock the config is infeasible (``PhysicalError`` names the limiting path).
- Supply: the lowest voltage in [the node's LOP Vdd, nominal Vdd] whose alpha-power-law slowdown still meets
  the config's clock (``tech.Node.voltage_for``); dynamic energies scale with (V / Vnom)^2, leakage with V / Vnom.
- Leakage: SRAMs, wires and queues their CACTI leakage; logic (MACs, ALU lanes, DMA adders) at the leakage
  density of the node's CACTI SRAMs (median mW per mm^2 over the table, ITRS-HP at 360 K: the table's flavour),
  [CACTI]. Static energy = leakage power x the run's latency; the DRAM part's background power is charged over
  the same latency.
"""
from __future__ import annotations

import dataclasses
from functools import lru_cache
from statistics import median

from ..errors import ConfigError
from . import dram, logic, precision, sram
from .tech import mac_stage_s, node

DEFAULT_NM = 45
BUFFERS = sram.BUFFERS


class PhysicalError(ConfigError):
    """A config no physical design can build: clock above reach, no DRAM part for its bandwidth, SRAM off the grid."""

    def __init__(self, field: str, msg: str):
        super().__init__(field, msg)


def tech_nm(cfg) -> int:
    return int(getattr(cfg, "tech_nm", DEFAULT_NM))


@lru_cache(maxsize=None)
def logic_leakage_mw_mm2(nm: int) -> float:
    """[CACTI] median leakage density of the table's SRAMs at node ``nm``."""
    return median(e["leakage_mw"] / e["area_mm2"] for (n, _, _), e in sram.table().items() if n == nm)


_NOT_HARDWARE = ("name", "description", "schedules")


@lru_cache(maxsize=None)
def _fields(cls) -> tuple:
    return tuple(f.name for f in dataclasses.fields(cls) if f.name not in _NOT_HARDWARE)


def _key(cfg):
    """The hardware fields' values (a config is a dataclass): what the costs depend on, cheap to build."""
    return (type(cfg),) + tuple(getattr(cfg, f) for f in _fields(type(cfg)))


_CACHE: dict = {}


def costs(cfg) -> dict:
    """Operating point, area breakdown (mm^2), unit energies (pJ, at the operating voltage), static power (mW).
    Raises ``PhysicalError`` if the config cannot be built (clock, DRAM interface, SRAM grid)."""
    k = _key(cfg)
    c = _CACHE.get(k)
    if c is None:
        if len(_CACHE) > 4096:
            _CACHE.clear()
        c = _CACHE[k] = _costs(cfg)
    if isinstance(c, Exception):
        raise c
    return c


def _costs(cfg):
    try:
        return _compute(cfg)
    except PhysicalError as e:
        return e
    except dram.DramError as e:
        return PhysicalError("dram_bandwidth", str(e))
    except sram.SramGridError as e:
        return PhysicalError("buffer", str(e))


def _compute(cfg) -> dict:
    view, cfg = cfg, cfg.hardware  # a mode view runs on its hardware: priced as built, energies per the mode
    nm = tech_nm(cfg)
    n = node(nm)
    bufs = sram.buffer_costs(cfg, nm)
    wires = logic.wiring(view, nm)
    dma = logic.dma_control(cfg, nm)
    select_s = precision.select_fo4(cfg) * n.fo4_s  # a 2:4 core's activation select sits in the MAC stage
    paths = {"MAC stage + operand wires" + (" + 2:4 select" if select_s else ""):
             mac_stage_s(nm) + select_s + wires["delay_s"]}
    paths.update({f"{b} SRAM bank ({v['bank_bytes']} B x {v['bank_bits']} bit)": v["cycle_ns"] * 1e-9
                  for b, v in bufs.items()})
    limit = max(paths, key=paths.get)
    fmax = 1e-6 / paths[limit]
    if cfg.clock_mhz > fmax:
        raise PhysicalError("clock_mhz", f"{cfg.clock_mhz:g} MHz is above the {fmax:.0f} MHz this core reaches at {nm} nm "
                            f"(critical path: {limit}, {paths[limit] * 1e9:.2f} ns at {n.vdd:g} V)")
    v = n.voltage_for(fmax / cfg.clock_mhz)
    dyn, leak = (v / n.vdd) ** 2, v / n.vdd
    part = dram.choose(cfg, nm)
    dram_rd, dram_wr = part.pj_per_byte(nm)
    add_pj, mul_pj = logic.alu_op_pj(cfg, nm)
    lanes = logic.alu_lanes(cfg)
    area = {"gemm_core": logic.core_um2(cfg, nm) / 1e6,
            "alu": lanes * logic.alu_lane_um2(cfg, nm) / 1e6,
            **{f"{b}_sram": x["area_mm2"] for b, x in bufs.items()},
            "wiring": wires["area_mm2"], "dma_control": dma["area_mm2"],
            "dram_phy": part.phy_area_mm2(nm)}
    area["total"] = sum(area.values())
    logic_mm2 = area["gemm_core"] + area["alu"] + dma["adder_mm2"]
    leak_mw = {"sram": sum(b["leakage_mw"] for b in bufs.values()), "wiring": wires["leakage_mw"],
               "dma_control": dma["leakage_mw"], "logic": logic_mm2 * logic_leakage_mw_mm2(nm)}
    # per dense-equivalent MAC of the mode: the fusion unit's energy per cycle shared by its products, plus the
    # 2:4 select per 8-bit slot and cycle spread over the slot's products (physical/precision.py)
    slot_pj = logic.mac_pj(cfg, nm) * precision.FUSION[cfg.gemm_min_bits][1]
    used = (64 / view.mode_spec.w_bits) / max(precision.select_bits(cfg), 1)  # the mode's share of the select bits
    select = precision.select_pj_per_slot_cycle(cfg) * used * logic._e(nm) / view.mode_spec.factor \
        if view.mode_spec.sparse else 0.0
    unit = {"mac": (slot_pj * precision.product_fraction(view) + select) * dyn, "alu_lane_op": add_pj * dyn, "alu_mul_lane_op": mul_pj * dyn,
            "alu_stage_reg_write": logic.alu_stage_reg_pj(cfg, nm) * dyn,
            "wiring_per_gemm_cycle": wires["pj_per_cycle"] * dyn, "dma_per_dram_byte": dma["pj_per_dram_byte"] * dyn,
            "dram_read_byte": dram_rd, "dram_write_byte": dram_wr}
    # per byte: one access moves the whole port (every bank once); a mode's input / weight row may be narrower than
    # the port (built for the widest mode) but still costs a whole access: per byte of the mode's row. A 2:4 mode's
    # weight row is its kept values (weight SRAM) and their positions (metadata SRAM): both are accessed per row.
    row = {"inp": view.inp_elem_bytes, "wgt": view.wgt_elem_bytes}
    meta = bufs.get(sram.META) if view.wgt_meta_bytes else None
    for b, x in bufs.items():
        moved = row.get(b, x["access_bytes"])
        rd, wr = x["read_pj"], x["write_pj"]
        if b == "wgt" and meta is not None:
            rd, wr = rd + meta["read_pj"], wr + meta["write_pj"]
        unit[f"{b}_read_byte"] = rd * dyn / moved
        unit[f"{b}_write_byte"] = wr * dyn / moved
    return {"tech_nm": nm, "fmax_mhz": fmax, "critical_path": limit, "vdd": v, "vdd_nominal": n.vdd,
            "dram_interface": part.name, "dram_demand_gbs": dram.demand_gbs(cfg), "dram_delivered_gbs": part.delivered_gbs,
            "area_mm2": area, "unit_pj": unit, "leakage_mw": sum(leak_mw.values()) * leak,
            "leakage_by_part_mw": {k: x * leak for k, x in leak_mw.items()},
            "dram_background_mw": part.background_mw, "buffers": bufs}


def why_infeasible(cfg) -> str | None:
    """None if the config can be built, else the reason (clock, DRAM interface, SRAM grid)."""
    try:
        costs(cfg)
    except PhysicalError as e:
        return str(e)
    return None


def area_mm2(cfg) -> dict:
    """Area breakdown in mm^2 (``total`` included)."""
    return dict(costs(cfg)["area_mm2"])


def unit_energies_pj(cfg) -> dict:
    """Per-event energies in pJ at the config's operating voltage."""
    return dict(costs(cfg)["unit_pj"])


def static_power_mw(cfg) -> float:
    """Leakage (at the operating voltage) plus the DRAM part's background power, mW."""
    c = costs(cfg)
    return c["leakage_mw"] + c["dram_background_mw"]


def energy_pj(cfg, act: dict, cycles: float) -> dict:
    """Energy breakdown in pJ (``total`` included) from ``simulator.activity`` counts and the run's cycles."""
    c = costs(cfg)
    u = c["unit_pj"]
    rd, wr = sum(act["dram_read_bytes"].values()), sum(act["dram_write_bytes"].values())
    seconds = cycles / (cfg.clock_mhz * 1e6)
    out = {"mac": act["macs"] * u["mac"],
           "alu": (act["alu_lane_ops"] - act["alu_mul_lane_ops"]) * u["alu_lane_op"]
           + act["alu_mul_lane_ops"] * u["alu_mul_lane_op"],
           "alu_stage_regs": act["alu_stage_reg_writes"] * u["alu_stage_reg_write"]}
    for b in BUFFERS:
        out[f"{b}_sram"] = act["sram_read_bytes"][b] * u[f"{b}_read_byte"] + act["sram_write_bytes"][b] * u[f"{b}_write_byte"]
    out["wiring"] = act["macs"] / cfg.macs_per_cycle * u["wiring_per_gemm_cycle"]
    out["dma"] = (rd + wr) * u["dma_per_dram_byte"]
    out["dram"] = rd * u["dram_read_byte"] + wr * u["dram_write_byte"]
    out["static"] = c["leakage_mw"] * 1e9 * seconds          # mW x s = 1e9 pJ
    out["dram_background"] = c["dram_background_mw"] * 1e9 * seconds
    out["total"] = sum(out.values())
    return out
