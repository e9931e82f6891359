"""Dependency tokens from SRAM hazards, so the three modules can overlap safely.

For each instruction, the latest conflicting instruction of another module is found from per-address
last-access arrays (RAW: compute reads what load wrote, store reads what compute wrote; WAR: load
overwrites what compute read, compute overwrites what store read). If it is newer than what this
module already synchronised with, the producer pushes and this instruction pops. Pushes and pops then
pair one-to-one in each FIFO, and every token points backwards in program order (no deadlock).
"""
from __future__ import annotations

import numpy as np

from ..hardware.config import AcceleratorConfig
from ..hardware.isa import Mem, Opcode, module_for

LOAD, COMPUTE, STORE = 0, 1, 2


def _module(d: dict) -> int:
    return int(module_for(d["opcode"], d.get("mem", 0)))


def _span(u: np.ndarray, d: dict, col: int, out: str, inn: str) -> tuple[int, int]:
    """[lo, hi) of the SRAM indices a GEMM/ALU touches through micro-op column ``col``."""
    k = u[d["uop_bgn"]:d["uop_end"], col]
    hi = int(k.max()) + (d["iter_out"] - 1) * d[out] + (d["iter_in"] - 1) * d[inn]
    return int(k.min()), hi + 1


def insert(cfg: AcceleratorConfig, insns: list[dict], uops: np.ndarray) -> None:
    """Set pop/push flags in place."""
    depth = {"inp": cfg.inp_depth, "wgt": cfg.wgt_depth, "acc": cfg.acc_depth}
    w = {b: np.full(n, -1, np.int64) for b, n in depth.items()}   # last writer (load for inp/wgt, compute acc)
    r = {b: np.full(n, -1, np.int64) for b, n in depth.items()}   # last reader (compute inp/wgt, store acc)
    synced = {}  # (consumer module, producer module) -> newest producer instruction already waited for

    def wait(i, d, producer, spans):
        """One pop per producer module: on the newest conflicting instruction over all ``spans``."""
        j = max((int(arr[lo:hi].max()) for arr, lo, hi in spans if hi > lo), default=-1)
        key = (_module(d), producer)
        if j > synced.get(key, -1):
            synced[key] = j
            me, p = _module(d), insns[j]
            # a module earlier in the pipeline is "prev": load < compute < store
            if producer < me:
                d["pop_prev"], p["push_next"] = 1, 1
            else:
                d["pop_next"], p["push_prev"] = 1, 1

    for i, d in enumerate(insns):
        op = d["opcode"]
        if op == Opcode.LOAD and d["mem"] in (Mem.INP, Mem.WGT):
            b = "inp" if d["mem"] == Mem.INP else "wgt"
            lo = d["sram_base"]
            hi = lo + (d["y_pad0"] + d["y_size"] + d["y_pad1"]) * (d["x_pad0"] + d["x_size"] + d["x_pad1"])
            wait(i, d, COMPUTE, [(r[b], lo, hi)])     # WAR: compute must be done reading
            w[b][lo:hi] = i
        elif op == Opcode.LOAD and d["mem"] == Mem.ACC:
            lo = d["sram_base"]
            hi = lo + (d["y_pad0"] + d["y_size"] + d["y_pad1"]) * (d["x_pad0"] + d["x_size"] + d["x_pad1"])
            wait(i, d, STORE, [(r["acc"], lo, hi)])
            w["acc"][lo:hi] = i
        elif op == Opcode.GEMM:
            lo, hi = _span(uops, d, 0, "dst_out", "dst_in")
            wait(i, d, STORE, [(r["acc"], lo, hi)])   # WAR on the accumulators
            w["acc"][lo:hi] = i
            if not d.get("reset"):
                spans = [(b, *_span(uops, d, col, o, n)) for b, col, o, n in
                         (("inp", 1, "src_out", "src_in"), ("wgt", 2, "wgt_out", "wgt_in"))]
                wait(i, d, LOAD, [(w[b], blo, bhi) for b, blo, bhi in spans])  # RAW on the loaded tiles
                for b, blo, bhi in spans:
                    r[b][blo:bhi] = i
        elif op == Opcode.ALU:
            lo, hi = _span(uops, d, 0, "dst_out", "dst_in")
            wait(i, d, STORE, [(r["acc"], lo, hi)])
            w["acc"][lo:hi] = i
        elif op == Opcode.STORE:
            lo = d["sram_base"]
            hi = lo + d["y_size"] * d["x_size"]
            wait(i, d, COMPUTE, [(w["acc"], lo, hi)])  # RAW: results must be final
            r["acc"][lo:hi] = i
