"""Logic and wires: MACs, ALU lanes, the GEMM core's operand wiring, DMA engines and control, at a node's nominal Vdd.

Sources:
- [H14] M. Horowitz, "Computing's Energy Problem (and what we can do about it)", ISSCC 2014, 45 nm 0.9 V:
  8-bit int add 0.03 pJ / 36 um^2, 32-bit int add 0.1 pJ / 137 um^2, 8-bit int mult 0.2 pJ / 282 um^2,
  32-bit int mult 3.1 pJ / 3495 um^2. Widths between the points follow the power law through both points.
  A MAC is one inp_bits x wgt_bits multiply and one acc_bits add.
- [Chisel ALU] VTA's Chisel ALU lane: an acc-width adder, a comparator (min/max) and a shifter (each priced as an
  acc-width adder) plus an imm_bits multiplier (this project's MUL). ``alu_lanes`` lanes (int32 lanes processed
  per cycle; default batch * block_out, VTA's width). A chained ALU (``alu_stages`` > 1, simulator/chains.py) has
  that datapath once per stage, so any stage runs any operation, and an acc_bits register between stages.
- [NanGate45] NanGate FreePDK45 Open Cell Library: DFF_X1 4.522 um^2, FA_X1 4.256 um^2: a register bit is priced
  as an [H14] adder bit at that ratio (the stage registers; one-stage lanes keep VTA's price). Its write energy
  likewise: per bit the [H14] 32-bit adder's energy per bit x that ratio, taking switched capacitance proportional
  to cell area within one library (a modelling choice, not a published register energy). Every lane element of
  a pass crosses all stages (the fill is one cycle longer per stage on every pass, chained or not), writing each
  of the alu_stages - 1 registers once.
- [CACTI-W] CACTI 7 wire model at the node (delay-optimal repeated semi-global wires, printed with every CACTI
  run of ``physical/cacti.py``): 32 nm 0.1927 ns/mm, 0.350 pJ/mm per transition, 0.0281 mW/mm leakage,
  0.064 um pitch; 45 nm 0.1618 ns/mm, 0.438 pJ/mm, 0.0302 mW/mm, 0.090 um pitch; 65 nm 0.1569 ns/mm, 0.622 pJ/mm,
  0.0283 mW/mm, 0.130 um pitch (pitch = wire width + spacing).
- Operand wiring (model): the GEMM core is a square of MACs, side S = sqrt(MAC area). Every GEMM cycle the input
  vector (batch * block_in * inp_bits) is broadcast across the whole side, every weight bit (block_in * block_out *
  wgt_bits) and every accumulator bit read and written (2 * batch * block_out * acc_bits) travels half a side
  from its SRAM bank at the array's edge. Energy per cycle: bit-mm x [CACTI-W] energy per transition x 0.5 (random
  data toggles half the bits); area: bit-mm x pitch over two routing layers (one per direction); leakage: the
  repeaters' mW/mm. Wide cores pay twice: more bits, and a longer side.
- DMA engines and control (VTA's structure: a fetch module feeding load / compute / store instruction queues of
  ``queue_depth`` instructions; load, compute and store each own a DMA engine with x/y address counters and a
  burst buffer of ``dma_burst_beats`` beats of ``dram_bandwidth`` bytes, 16 in VTA's RTL): queues and burst buffers are SRAMs priced from the
  CACTI table at the smallest table capacity (>= 512 B, power of two) that holds them and that CACTI builds at
  their width (``sram.smallest``), address logic as four 32-bit adders per
  engine [H14] (x and y address and count: a modelling choice from VTA's 2-D DMA, not a published count). The
  requests in flight (``dma_outstanding``) are not priced: their tag table is a few registers per request. Their dynamic energy per byte moved is the burst buffer's write + read per beat; control's
  per-instruction energy (one queue write + read of insn_bits) is below 0.1 % of a GEMM instruction's and is not
  charged.
"""
from __future__ import annotations

import math

from . import precision, sram
from .tech import node

ADD_PJ = {8: 0.03, 32: 0.1}
ADD_UM2 = {8: 36.0, 32: 137.0}
MUL_PJ = {8: 0.2, 32: 3.1}
MUL_UM2 = {8: 282.0, 32: 3495.0}
DFF_PER_FA = 4.522 / 4.256         # [NanGate45] register bit / full-adder bit area
H14_VDD = 0.9                      # [H14] figures are at 0.9 V; scaled to the node's nominal Vdd by V^2
# [CACTI-W]: node -> (ns/mm, pJ/mm per transition, leakage mW/mm, pitch um)
WIRE = {32: (0.1927, 0.350, 0.0281, 0.064), 45: (0.1618, 0.438, 0.0302, 0.090), 65: (0.1569, 0.622, 0.0283, 0.130)}
TOGGLE = 0.5
ROUTING_LAYERS = 2
DMA_ENGINES = 3                    # load, compute (micro-op and bias loads), store
QUEUES = 3                         # load, compute, store instruction queues
ADDERS_PER_ENGINE = 4


def power_law(points: dict, bits) -> float:
    """Value at ``bits`` on the power law through the two published (bits, value) points."""
    (b0, v0), (b1, v1) = sorted(points.items())
    return v0 * (bits / b0) ** (math.log(v1 / v0) / math.log(b1 / b0))


def _e(nm) -> float:
    """[H14] 45 nm / 0.9 V energies -> node nm at its nominal Vdd."""
    n = node(nm)
    return n.logic_energy_scale() * (node(45).vdd / H14_VDD) ** 2


def mac_pj(cfg, nm) -> float:
    return (power_law(MUL_PJ, max(cfg.inp_bits, cfg.wgt_bits)) + power_law(ADD_PJ, cfg.acc_bits)) * _e(nm)


def mac_um2(cfg, nm) -> float:
    return (power_law(MUL_UM2, max(cfg.inp_bits, cfg.wgt_bits)) + power_law(ADD_UM2, cfg.acc_bits)) * node(nm).logic_area_scale()


def alu_lanes(cfg) -> int:
    return int(cfg.alu_lanes)


def alu_lane_um2(cfg, nm) -> float:
    """One lane: ``alu_stages`` datapaths ([Chisel ALU]) and the registers between them ([NanGate45])."""
    stage = 3 * power_law(ADD_UM2, cfg.acc_bits) + power_law(MUL_UM2, cfg.imm_bits)
    reg = power_law(ADD_UM2, cfg.acc_bits) * DFF_PER_FA
    return (cfg.alu_stages * stage + (cfg.alu_stages - 1) * reg) * node(nm).logic_area_scale()


def alu_op_pj(cfg, nm) -> tuple[float, float]:
    """(add/min/max/shift lane op, MUL lane op) in pJ."""
    return power_law(ADD_PJ, cfg.acc_bits) * _e(nm), power_law(MUL_PJ, cfg.imm_bits) * _e(nm)


def alu_stage_reg_pj(cfg, nm) -> float:
    """Writing one acc_bits-wide stage register ([NanGate45]) in pJ: acc_bits x [H14]'s 32-bit adder energy per bit
    x DFF_PER_FA."""
    return cfg.acc_bits * ADD_PJ[32] / 32 * DFF_PER_FA * _e(nm)


def core_um2(cfg, nm) -> float:
    """The GEMM core of the hardware behind ``cfg``: its 8-bit multiplier slots as fusion units of
    ``gemm_min_bits`` bricks, plus the 2:4 activation select (physical/precision.py)."""
    hw = cfg.hardware
    fuse = precision.FUSION[hw.gemm_min_bits][0]
    return hw.macs_per_cycle * (mac_um2(hw, nm) * fuse + precision.select_um2_per_slot(hw) * node(nm).logic_area_scale())


def core_side_mm(cfg, nm) -> float:
    return math.sqrt(core_um2(cfg, nm) / 1e6)


def wiring(cfg, nm) -> dict:
    """Operand wiring of the GEMM core: pJ per GEMM cycle, mm^2, leakage mW, longest wire delay (s). Wires are as
    wide as the hardware's widest mode (area, leakage); a cycle toggles the bits ``cfg``'s mode moves (energy)."""
    ns_mm, pj_mm, mw_mm, pitch_um = WIRE[int(nm)]
    hw = cfg.hardware
    s = core_side_mm(hw, nm)
    p = precision.ports(hw)
    acc = 2 * hw.batch * hw.block_out * hw.acc_bits
    built = p["inp"] * s + (p["wgt"] + p["meta_bits"] + acc) * s / 2
    used = cfg.inp_elem_bytes * 8 * s + (cfg.wgt_elem_bytes * 8 + acc) * s / 2
    return {"pj_per_cycle": used * pj_mm * TOGGLE, "area_mm2": built * pitch_um * 1e-3 / ROUTING_LAYERS,
            "leakage_mw": built * mw_mm, "delay_s": s * ns_mm * 1e-9}


def dma_control(cfg, nm) -> dict:
    """DMA engines and instruction queues: mm^2, leakage mW, pJ per DRAM byte moved."""
    q = sram.smallest(nm, cfg.queue_depth * cfg.insn_bits // 8, cfg.insn_bits, "instruction queue")
    beat_bits = max(16, math.ceil(cfg.dram_bandwidth * 8))
    b = sram.smallest(nm, math.ceil(cfg.dram_bandwidth * cfg.dma_burst_beats), beat_bits, "DMA burst buffer")
    adders = DMA_ENGINES * ADDERS_PER_ENGINE * ADD_UM2[32] * node(nm).logic_area_scale() / 1e6
    return {"area_mm2": QUEUES * q["area_mm2"] + DMA_ENGINES * b["area_mm2"] + adders,
            "leakage_mw": QUEUES * q["leakage_mw"] + DMA_ENGINES * b["leakage_mw"],
            "pj_per_dram_byte": (b["read_pj"] + b["write_pj"]) / cfg.dram_bandwidth,
            "adder_mm2": adders}
