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
    tau = np.maximum.reduce([lt, ct, st, pt, s * (ls + g) / v, (ct + st) / v, *_port_sharing(k, lt, st)])
    step = np.maximum.reduce([ls, g, (ls + g) / v])
    first = f0 + (s - 1) * step + g + k["alu_t"] + st
    return k["uop_t"] + first + (nt - 1) * tau


def _port_sharing(k: dict, lt, st):
    """Per-tile cycles of the load and the store module when they share the DRAM port.

    A module waits out each DMA (issue, transfer, latency), and the port is granted in request order, so
    while one module's DMA transfers the other one's request waits. Only a module's gap between two of its
    transfers (issue + latency) can be filled by the other module, and by one DMA each time (its own gap
    follows). Each module's period is then its own busy time plus the other's transfers that do not fit
    into its gaps: a tile with many short input DMAs behind one long store runs them nearly one after another.
    """
    nt = k["tiles"]
    nl, ns = k["load_dmas"] / nt, k["store_dmas"] / nt
    al = k["port_load"] / np.maximum(k["load_dmas"], 1)
    as_ = k["port_store"] / np.maximum(k["store_dmas"], 1)
    gap = k["iss"] + k["lat"]
    m = np.minimum(nl, ns)
    return lt + ns * as_ - m * np.minimum(gap, as_), st + nl * al - m * np.minimum(gap, al)
