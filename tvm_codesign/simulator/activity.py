"""Activity counts of a program (no data needed): DRAM bytes, SRAM bytes, MACs, ALU ops, per-insn cycles.

ALU timing: a micro-op iteration takes ``alu_ii_imm`` cycles with an immediate operand and ``alu_ii_vec`` with a
vector (register) operand, per pass of ``alu_lanes`` int32 lanes over the batch x block_out vector. Source of
VTA's values (1, 2, batch x block_out): the Chisel ALU (apache/tvm-vta, hardware/chisel/src/main/scala/core/
TensorAlu.scala): ``TensorAluIndexGenerator`` advances one micro-op iteration per cycle when ``alu_use_imm``
and otherwise "stutters" a cycle to read the second operand from the accumulator scratchpad (``advance =
io.dec.alu_use_imm || stutter``); ``AluVector`` instantiates one ``AluReg`` per element of the block_out
vector (VTA's batch is 1), so one pass covers a whole vector.
"""
from __future__ import annotations

import numpy as np

from ..hardware.config import AcceleratorConfig
from ..hardware.isa import AluOp, Mem, Opcode
from . import chains
from .dma import elem_bytes_by_mem, port_cycles  # noqa: F401 (elem_bytes_by_mem: lowering uses it)
from .program import Program


def insn_cycles(cfg: AcceleratorConfig, t: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per instruction: (execute cycles after issue, DRAM-port cycles, DRAM latency), vectorised.

    DMA: the port cycles of its AXI requests (``dma.port_cycles``: whole beats, a request overhead per burst,
    bounded requests in flight), plus the DRAM latency once, plus one cycle per zero-padding element written.
    GEMM: fill + one micro-op per cycle per iteration. ALU: fill + per micro-op per iteration ``alu_passes``
    passes of ``alu_ii_imm`` (immediate) or ``alu_ii_vec`` (vector operand) cycles; a chain (chains.py) is one
    pass at its largest II, charged to its first instruction. FINISH: 0.
    """
    op = t["opcode"]
    dma = (op == Opcode.LOAD) | (op == Opcode.STORE)
    port, _ = port_cycles(cfg, t)
    area = (t["y_pad0"] + t["y_size"] + t["y_pad1"]) * (t["x_pad0"] + t["x_size"] + t["x_pad1"])
    pad = np.where(op == Opcode.LOAD, area - t["y_size"] * t["x_size"], 0)
    events = t["iter_out"] * t["iter_in"] * (t["uop_end"] - t["uop_bgn"])
    exe = np.select([op == Opcode.GEMM, op == Opcode.ALU, dma],
                    [cfg.gemm_fill_cycles + events, chains.pass_cycles(cfg, t, events), pad], 0)
    lat = np.where(dma, cfg.dram_latency, 0)
    return exe.astype(np.int64), port, lat


def activity(program: Program) -> dict:
    """Totals used by the stats and the energy model (plain ints)."""
    cfg, t = program.config, program.table
    op, mem = t["opcode"], t["mem"]
    e = elem_bytes_by_mem(cfg)[np.clip(mem, 0, 4)]
    load, store = op == Opcode.LOAD, op == Opcode.STORE
    moved = t["y_size"] * t["x_size"] * e
    sram_written = (t["y_pad0"] + t["y_size"] + t["y_pad1"]) * (t["x_pad0"] + t["x_size"] + t["x_pad1"]) * e
    events = t["iter_out"] * t["iter_in"] * (t["uop_end"] - t["uop_bgn"])
    gemm, alu = op == Opcode.GEMM, op == Opcode.ALU
    mac_ev = int(events[gemm & (t["reset"] == 0)].sum())
    reset_ev = int(events[gemm & (t["reset"] == 1)].sum())
    alu_ev = int(events[alu].sum())
    pass_ev = int(events[alu & (t["chain"] == 0)].sum())  # passes over the accumulators (a chain is one)
    alu_reg_ev = int(events[alu & (t["use_imm"] == 0)].sum())
    alu_mul_ev = int(events[alu & (t["op"] == AluOp.MUL)].sum())
    lanes = cfg.batch * cfg.block_out
    acc_e = cfg.acc_elem_bytes

    def by(mask, what):
        return {m.name: int(what[mask & (mem == m)].sum()) for m in Mem if (mask & (mem == m)).any()}

    st_acc = int((t["y_size"] * t["x_size"])[store].sum()) * acc_e
    return {
        "dram_read_bytes": by(load, moved),
        "dram_write_bytes": by(store, moved),
        "macs": mac_ev * cfg.macs_per_cycle,
        "gemm_uop_iterations": mac_ev + reset_ev,
        "alu_lane_ops": alu_ev * lanes,
        "alu_mul_lane_ops": alu_mul_ev * lanes,
        "alu_stage_reg_writes": pass_ev * lanes * (cfg.alu_stages - 1),  # a pass crosses every stage (chains.py)
        "sram_read_bytes": {
            "uop": (mac_ev + reset_ev + alu_ev) * cfg.uop_bytes,
            "inp": mac_ev * cfg.inp_elem_bytes,
            "wgt": mac_ev * cfg.wgt_elem_bytes,
            "acc": (mac_ev + pass_ev + alu_reg_ev) * acc_e + st_acc,
        },
        "sram_write_bytes": {
            "uop": int(sram_written[load & (mem == Mem.UOP)].sum()),
            "inp": int(sram_written[load & (mem == Mem.INP)].sum()),
            "wgt": int(sram_written[load & (mem == Mem.WGT)].sum()),
            "acc": int(sram_written[load & (mem == Mem.ACC)].sum()) + (mac_ev + reset_ev + pass_ev) * acc_e,
        },
    }
