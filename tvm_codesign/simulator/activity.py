"""Activity counts of a program (no data needed): DRAM bytes, SRAM bytes, MACs, ALU ops, per-insn cycles."""
from __future__ import annotations

import numpy as np

from ..hardware.config import AcceleratorConfig
from ..hardware.isa import AluOp, Mem, Opcode
from .program import Program


def elem_bytes_by_mem(cfg: AcceleratorConfig) -> np.ndarray:
    """Element bytes indexed by Mem: UOP, WGT, INP, ACC, OUT."""
    return np.array([cfg.uop_bytes, cfg.wgt_elem_bytes, cfg.inp_elem_bytes, cfg.acc_elem_bytes,
                     cfg.out_elem_bytes], dtype=np.int64)


def insn_cycles(cfg: AcceleratorConfig, t: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per instruction: (execute cycles after issue, DRAM-port cycles, DRAM latency), vectorised.

    DMA: y_size bursts of ceil(x_size * elem / bandwidth) port cycles, plus the DRAM latency once, plus
    one cycle per zero-padding element written. GEMM: fill + one micro-op per cycle per iteration.
    ALU: fill + alu_ii cycles per micro-op per iteration. FINISH: 0.
    """
    op = t["opcode"]
    e = elem_bytes_by_mem(cfg)[np.clip(t["mem"], 0, 4)]
    dma = (op == Opcode.LOAD) | (op == Opcode.STORE)
    port = np.where(dma, t["y_size"] * np.ceil(t["x_size"] * e / cfg.dram_bandwidth).astype(np.int64), 0)
    area = (t["y_pad0"] + t["y_size"] + t["y_pad1"]) * (t["x_pad0"] + t["x_size"] + t["x_pad1"])
    pad = np.where(op == Opcode.LOAD, area - t["y_size"] * t["x_size"], 0)
    events = t["iter_out"] * t["iter_in"] * (t["uop_end"] - t["uop_bgn"])
    exe = np.select([op == Opcode.GEMM, op == Opcode.ALU, dma],
                    [cfg.gemm_fill_cycles + events, cfg.alu_fill_cycles + events * cfg.alu_ii, pad], 0)
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
        "sram_read_bytes": {
            "uop": (mac_ev + reset_ev + alu_ev) * cfg.uop_bytes,
            "inp": mac_ev * cfg.inp_elem_bytes,
            "wgt": mac_ev * cfg.wgt_elem_bytes,
            "acc": (mac_ev + alu_ev + alu_reg_ev) * acc_e + st_acc,
        },
        "sram_write_bytes": {
            "uop": int(sram_written[load & (mem == Mem.UOP)].sum()),
            "inp": int(sram_written[load & (mem == Mem.INP)].sum()),
            "wgt": int(sram_written[load & (mem == Mem.WGT)].sum()),
            "acc": int(sram_written[load & (mem == Mem.ACC)].sum()) + (mac_ev + reset_ev + alu_ev) * acc_e,
        },
    }
