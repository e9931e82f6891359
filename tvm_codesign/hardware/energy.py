"""Energy and area model: pure functions of the config (and of activity counts for energy). 45 nm.

Sources:
- [H14] M. Horowitz, "Computing's Energy Problem (and what we can do about it)", ISSCC 2014, 45 nm 0.9 V:
  8-bit int add 0.03 pJ / 36 um^2, 32-bit int add 0.1 pJ / 137 um^2, 8-bit int mult 0.2 pJ / 282 um^2,
  32-bit int mult 3.1 pJ / 3495 um^2; SRAM 64-bit access 10 pJ (8 KB), 20 pJ (32 KB), 100 pJ (1 MB);
  DRAM 1.3-2.6 nJ per 64-bit access (we take the low end: 162.5 pJ/byte).
- Widths between the published points use the power law through both points (e.g. mult energy
  ~ bits^1.98). SRAM access energy scales with sqrt(capacity) through [H14]'s points (CACTI-style
  wire-dominated scaling; 8 KB -> 32 KB doubles, 32 KB -> 1 MB is 5.7x vs the reported 5x).
- [M07] K. Mistry et al., "A 45nm Logic Technology ...", IEDM 2007: 6T SRAM cell 0.346 um^2. With a
  70% array efficiency (periphery: decoders, sense amps; CACTI's typical range) that is 0.494 um^2/bit.
- ALU lane: an acc-width adder, a comparator and a barrel shifter (three acc-width adders' area) plus an
  imm_bits multiplier. Dynamic energy only: leakage is not modelled.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import AcceleratorConfig

ADD_PJ = {8: 0.03, 32: 0.1}
ADD_UM2 = {8: 36.0, 32: 137.0}
MUL_PJ = {8: 0.2, 32: 3.1}
MUL_UM2 = {8: 282.0, 32: 3495.0}
SRAM_64BIT_PJ_AT_8KB = 10.0
DRAM_PJ_PER_BYTE = 1300.0 / 8
SRAM_CELL_UM2 = 0.346
SRAM_ARRAY_EFFICIENCY = 0.70


def _power_law(points: dict, bits: int) -> float:
    """Value at ``bits`` on the power law through the two published (bits, value) points."""
    (b0, v0), (b1, v1) = sorted(points.items())
    return v0 * (bits / b0) ** (math.log(v1 / v0) / math.log(b1 / b0))


def sram_pj_per_byte(capacity_bytes: int) -> float:
    """Energy of one byte of SRAM access, scaling with sqrt(capacity) [H14]."""
    return SRAM_64BIT_PJ_AT_8KB / 8 * math.sqrt(capacity_bytes / 8192)


def sram_area_mm2(capacity_bytes: int) -> float:
    return capacity_bytes * 8 * SRAM_CELL_UM2 / SRAM_ARRAY_EFFICIENCY / 1e6


def mac_pj(cfg: "AcceleratorConfig") -> float:
    """One multiply (inp_bits x wgt_bits) plus one acc_bits add."""
    return _power_law(MUL_PJ, max(cfg.inp_bits, cfg.wgt_bits)) + _power_law(ADD_PJ, cfg.acc_bits)


def area_mm2(cfg: "AcceleratorConfig") -> dict:
    """Area breakdown in mm^2 (``total`` included)."""
    mac_um2 = _power_law(MUL_UM2, max(cfg.inp_bits, cfg.wgt_bits)) + _power_law(ADD_UM2, cfg.acc_bits)
    lane_um2 = 3 * _power_law(ADD_UM2, cfg.acc_bits) + _power_law(MUL_UM2, cfg.imm_bits)
    out = {
        "gemm_core": cfg.macs_per_cycle * mac_um2 / 1e6,
        "alu": cfg.batch * cfg.block_out * lane_um2 / 1e6,
        "uop_sram": sram_area_mm2(cfg.uop_buffer_bytes),
        "inp_sram": sram_area_mm2(cfg.inp_buffer_bytes),
        "wgt_sram": sram_area_mm2(cfg.wgt_buffer_bytes),
        "acc_sram": sram_area_mm2(cfg.acc_buffer_bytes),
    }
    out["total"] = sum(out.values())
    return out


def unit_energies_pj(cfg: "AcceleratorConfig") -> dict:
    """Per-event energies in pJ: MAC, ALU lane op, MUL lane op, DRAM byte, SRAM byte per buffer."""
    return {
        "mac": mac_pj(cfg),
        "alu_lane_op": _power_law(ADD_PJ, cfg.acc_bits),
        "alu_mul_lane_op": _power_law(MUL_PJ, cfg.imm_bits),
        "dram_byte": DRAM_PJ_PER_BYTE,
        "uop_byte": sram_pj_per_byte(cfg.uop_buffer_bytes),
        "inp_byte": sram_pj_per_byte(cfg.inp_buffer_bytes),
        "wgt_byte": sram_pj_per_byte(cfg.wgt_buffer_bytes),
        "acc_byte": sram_pj_per_byte(cfg.acc_buffer_bytes),
    }


def energy_pj(cfg: "AcceleratorConfig", act: dict) -> dict:
    """Energy breakdown in pJ (``total`` included) from ``simulator.activity`` counts."""
    u = unit_energies_pj(cfg)
    dram = sum(act["dram_read_bytes"].values()) + sum(act["dram_write_bytes"].values())
    out = {
        "mac": act["macs"] * u["mac"],
        "alu": (act["alu_lane_ops"] - act["alu_mul_lane_ops"]) * u["alu_lane_op"]
        + act["alu_mul_lane_ops"] * u["alu_mul_lane_op"],
        "dram": dram * u["dram_byte"],
    }
    for buf in ("uop", "inp", "wgt", "acc"):
        out[f"{buf}_sram"] = (act["sram_read_bytes"][buf] + act["sram_write_bytes"][buf]) * u[f"{buf}_byte"]
    out["total"] = sum(out.values())
    return out
