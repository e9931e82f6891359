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
    ls, g = lt / s, k["gemm_t"]
    f0 = np.maximum(ls, k["first_load"])  # the first tile's first step; the other tiles share what is left
    rest = np.maximum(nt - 1, 1)
    f1 = f0 + (s - 1) * ls  # the first tile's loads
    lt = np.where(nt > 1, np.maximum(k["load_busy"] - f1, 0) / rest, lt)
    pt = (np.maximum(k["port_load"] - f1, 0) + k["port_store"] + k["bias_port"]) / np.where(nt > 1, rest, 1)
    tau = np.maximum.reduce([lt, ct, st, pt, s * (ls + g) / v, (ct + st) / v])
    step = np.maximum.reduce([ls, g, (ls + g) / v])
    first = f0 + (s - 1) * step + g + k["alu_t"] + st
    return k["uop_t"] + first + (nt - 1) * tau
