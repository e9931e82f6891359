"""Grouped and depthwise convolutions: how many groups share one kernel group (``Workload.merge``).

A conv with G groups of ci -> co channels is G independent GEMM-convs. Run one group per kernel group and
each pads ci and co to whole BLOCK_IN x BLOCK_OUT blocks: a depthwise conv (ci = co = 1) uses 1 of 256
multipliers of a 16 x 16 core. Merging k consecutive groups into one kernel group with a block-diagonal weight
(zeros between the groups) lets one block serve k groups: ceil(G/k) groups of k*ci -> k*co channels. The
core still executes the zeros; ``Workload.macs`` stays the real count, and ``layout.packed_shapes`` (so the
cost model, the roofline and the simulator) counts what runs.

``merge_factor`` picks k by the work the core executes per output pixel: GEMM blocks (each KH*KW cycles),
plus an ALU pass per epilogue stage and a store per output vector, then input blocks (DRAM bytes). It
depends on the block shape and ALU II, not on the schedule.
"""
from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np

from ..hardware.config import AcceleratorConfig
from .layout import fold_kw
from .workload import Workload


@lru_cache(maxsize=4096)
def best_merge(groups: int, ci: int, co: int, taps: int, alu_passes: int, block_in: int, block_out: int,
               alu_ii: int) -> int:
    """The k in 1..groups with the least executed work per output pixel (ties: fewer input blocks, then the
    smallest k)."""
    k = np.arange(1, groups + 1)
    g = -(-groups // k)
    cib, cob = -(-(k * ci) // block_in), -(-(k * co) // block_out)
    work = g * cob * (cib * taps + alu_passes * alu_ii + 1)
    return int(k[np.lexsort((k, g * cib, work))[0]])


def merge_factor(wl: Workload, cfg: AcceleratorConfig) -> int:
    """Groups per kernel group for ``wl`` on ``cfg`` (1 unless a grouped conv2d gains by merging)."""
    if wl.kind != "conv2d" or wl.groups == 1:
        return 1
    return best_merge(wl.groups, wl.ci, wl.co, wl.kh * wl.kw, len(wl.epilogue), cfg.block_in, cfg.block_out,
                      cfg.alu_ii)


def merge_columns(wl: Workload, block_in, block_out, alu_ii) -> np.ndarray:
    """``merge_factor`` over arrays of config fields (one k per config), for the tuner's vectorised prior."""
    bi, bo, ii = (np.asarray(a, np.int64) for a in np.broadcast_arrays(block_in, block_out, alu_ii))
    if wl.kind != "conv2d" or wl.groups == 1:
        return np.ones(bi.shape, np.int64)
    uniq, inv = np.unique((bi << 40) | (bo << 20) | ii, return_inverse=True)  # a few distinct block shapes
    ks = [best_merge(wl.groups, wl.ci, wl.co, wl.kh * wl.kw, len(wl.epilogue), int(u >> 40), int(u >> 20 & 0xFFFFF),
                     int(u & 0xFFFFF)) for u in uniq]
    return np.asarray(ks, np.int64)[inv.reshape(bi.shape)]


def merged(wl: Workload, cfg: AcceleratorConfig, k: int | None = None) -> Workload:
    """``wl`` with ``k`` groups per kernel group (default ``merge_factor``): same results, other kernel."""
    return dataclasses.replace(wl, merge=merge_factor(wl, cfg) if k is None else k)


def kernel_workload(wl: Workload, cfg: AcceleratorConfig) -> Workload:
    """The workload ``compile`` runs for a model's layer ``wl``: an RGB stem's kernel columns folded into
    channels (``layout.fold_kw``), a grouped conv's groups merged by ``merge_factor`` (whatever ``wl.merge``
    says: the merge is the kernel's choice, the results are the same), or ``wl`` itself."""
    return fold_kw(wl, cfg) or (merged(wl, cfg) if wl.kind == "conv2d" and wl.groups > 1 else wl)
