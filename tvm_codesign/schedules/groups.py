"""Grouped and depthwise convolutions: how many groups share one kernel group (``Workload.merge``).

A conv with G groups of ci -> co channels is G independent GEMM-convs. Run one group per kernel group and
each pads ci and co to whole BLOCK_IN x BLOCK_OUT blocks: a depthwise conv (ci = co = 1) uses 1 of 256
multipliers of a 16 x 16 core. Merging k consecutive groups into one kernel group with a block-diagonal weight
(zeros between the groups) lets one block serve k groups: ceil(G/k) groups of k*ci -> k*co channels. The
core still executes the zeros; ``Workload.macs`` stays the real count, and ``layout.packed_shapes`` (so the
cost model, the roofline and the simulator) counts what runs.

``merge_factor`` picks k by the work the core executes per output pixel: GEMM blocks (each KH*KW cycles),
plus the epilogue's ALU cycles (a pass per stage at the II of its operand, per ALU lanes) and a store per
output vector, then input blocks (DRAM bytes). It depends on the block shape and the ALU, not on the schedule.
"""
from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np

from ..hardware.config import AcceleratorConfig
from .layout import fold
from .workload import Workload


@lru_cache(maxsize=4096)
def best_merge(groups: int, ci: int, co: int, taps: int, alu_cycles: int, block_in: int, block_out: int) -> int:
    """The k in 1..groups with the least executed work per output pixel (ties: fewer input blocks, then the
    smallest k); ``alu_cycles``: the epilogue's ALU cycles per output vector."""
    k = np.arange(1, groups + 1)
    g = -(-groups // k)
    cib, cob = -(-(k * ci) // block_in), -(-(k * co) // block_out)
    work = g * cob * (cib * taps + alu_cycles + 1)
    return int(k[np.lexsort((k, g * cib, work))[0]])


def alu_cycles_per_vector(wl: Workload, cfg: AcceleratorConfig) -> int:
    """ALU cycles the epilogue spends on one batch x block_out output vector: a pass per run of ``alu_stages``
    stages and per ``alu_lanes`` lanes, at the largest II of its operands (a large ADD immediate split in several
    is counted once)."""
    return int(alu_cycles(wl, cfg.alu_ii_imm, cfg.alu_ii_vec, cfg.alu_passes, cfg.alu_stages))


def merge_factor(wl: Workload, cfg: AcceleratorConfig) -> int:
    """Groups per kernel group for ``wl`` on ``cfg`` (1 unless a grouped conv2d gains by merging)."""
    if wl.kind != "conv2d" or wl.groups == 1:
        return 1
    return best_merge(wl.groups, wl.ci, wl.co, wl.kh * wl.kw, alu_cycles_per_vector(wl, cfg), cfg.block_in,
                      cfg.block_out)


def chain_runs(regs: list[bool], stages: int) -> tuple[int, int, int]:
    """An epilogue's ALU instructions (True: a register operand) in runs of ``stages``, one pass each on a chained
    ALU (lowering/chain.py chains them in order): the runs with immediates only, register operands only, both."""
    runs = [regs[i:i + stages] for i in range(0, len(regs), stages)]
    n_imm, n_reg = sum(not any(r) for r in runs), sum(all(r) for r in runs)
    return n_imm, n_reg, len(runs) - n_imm - n_reg


def alu_cycles(wl: Workload, ii_imm, ii_vec, passes, stages=1):
    """The epilogue's ALU cycles per output vector (arrays broadcast): its stages in runs of ``stages`` (one pass
    each on a chained ALU, lowering/chain.py), each ``passes`` lane passes at the largest II of the run's operands
    (``ii_imm`` immediate, ``ii_vec`` the bias or multiplier vector)."""
    ii_imm, ii_vec, passes, stages = np.broadcast_arrays(*(np.asarray(a) for a in (ii_imm, ii_vec, passes, stages)))
    regs = [imm is None for _, imm in wl.epilogue]
    out = np.zeros(ii_imm.shape)
    for s in np.unique(stages):
        n_imm, n_reg, n_mixed = chain_runs(regs, int(s))
        cyc = n_imm * ii_imm + n_reg * ii_vec + n_mixed * np.maximum(ii_imm, ii_vec)
        out = np.where(stages == s, cyc * passes, out)
    return out if out.ndim else out[()]


def merge_columns(wl: Workload, block_in, block_out, alu_cycles) -> np.ndarray:
    """``merge_factor`` over arrays of config fields (one k per config; ``alu_cycles``: the epilogue's ALU cycles
    per output vector of each config, from ``alu_cycles``), for the tuner's vectorised prior."""
    bi, bo, ac = (np.asarray(a, np.int64) for a in np.broadcast_arrays(block_in, block_out, alu_cycles))
    if wl.kind != "conv2d" or wl.groups == 1:
        return np.ones(bi.shape, np.int64)
    uniq, inv = np.unique((bi << 40) | (bo << 20) | ac, return_inverse=True)  # a few distinct block shapes
    ks = [best_merge(wl.groups, wl.ci, wl.co, wl.kh * wl.kw, int(u & 0xFFFFF), int(u >> 40), int(u >> 20 & 0xFFFFF))
          for u in uniq]
    return np.asarray(ks, np.int64)[inv.reshape(bi.shape)]


def merged(wl: Workload, cfg: AcceleratorConfig, k: int | None = None) -> Workload:
    """``wl`` with ``k`` groups per kernel group (default ``merge_factor``): same results, other kernel."""
    return dataclasses.replace(wl, merge=merge_factor(wl, cfg) if k is None else k)


def kernel_workload(wl: Workload, cfg: AcceleratorConfig) -> Workload:
    """The workload ``compile`` runs for a model's layer ``wl``: a stem's kernel columns or whole window folded
    into channels (``layout.fold``), a grouped conv's groups merged by ``merge_factor`` (whatever ``wl.merge``
    says: the merge is the kernel's choice, the results are the same), or ``wl`` itself. In a 2:4 mode groups
    whose channels are not a multiple of 4 stay unmerged: merged, a group of 4 along the reduction would span two
    of the user's groups (pruned apart)."""
    if wl.kind == "conv2d" and wl.groups > 1 and cfg.mode_spec.sparse and wl.ci % 4:
        return merged(wl, cfg, 1)
    return fold(wl, cfg) or (merged(wl, cfg) if wl.kind == "conv2d" and wl.groups > 1 else wl)
