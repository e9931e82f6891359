"""Overlap of the load, compute and store modules for the analytical model (vectorised over candidates)."""
from __future__ import annotations

import numpy as np


def overlap_cycles(k: dict) -> np.ndarray:
    """Total cycles from per-candidate counts (``analytical.counts``).

    Steady state per tile (period ``tau``): the busiest of load, compute (with its micro-op and bias
    DMAs), store and the DRAM port, and the dependency rings through ``vthreads`` SRAM contexts
    (load -> GEMM -> the next load into that context; reset -> ALU -> store -> the reset reusing those
    accumulators). The first tile runs alone: its loads and GEMMs pipelined over the reduction steps,
    then ALU and store; the micro-op load comes before everything.
    """
    nt, s, v = k["tiles"], k["steps"], k["vthreads"]
    lt = k["load_busy"] / nt
    ct = k["reset_t"] + s * k["gemm_t"] + k["alu_t"] + k["bias_t"] / nt
    st = k["store_busy"] / nt
    pt = (k["port_load"] + k["port_store"] + k["bias_port"]) / nt
    ls, g = lt / s, k["gemm_t"]
    tau = np.maximum.reduce([lt, ct, st, pt, s * (ls + g) / v, (ct + st) / v])
    step = np.maximum.reduce([ls, g, (ls + g) / v])
    first = ls + (s - 1) * step + g + k["alu_t"] + st
    return k["uop_t"] + first + (nt - 1) * tau
