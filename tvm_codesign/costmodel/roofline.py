"""Roofline bound of a layer on a config: no schedule can beat it.

compute: padded block multiplies, one per cycle (BATCH x BLOCK_IN x BLOCK_OUT MACs each);
memory: the input pixels some output needs (a 1x1 stride-2 conv reads a quarter of its input) and the weights
read once, outputs written once, at the DRAM bandwidth.
``bound_alu`` also counts the epilogue: per stage, every output vector takes ``alu_passes`` passes (ALU lanes)
of ``alu_ii_imm`` cycles with an immediate or ``alu_ii_vec`` with a vector operand (the bias), on the same
compute module as the GEMM (VTA's ALU and GEMM core never overlap). The memory bound stays bytes / bandwidth:
burst and request overheads (simulator/dma.py) only add to it.
"""
from __future__ import annotations

import math

import numpy as np

from ..hardware.config import AcceleratorConfig
from ..schedules.groups import alu_cycles_per_vector
from ..schedules.layout import packed_shapes
from ..schedules.workload import Workload


def _used(size: int, out: int, k: int, stride: int, pad: int) -> int:
    """How many of ``size`` input rows (or columns) some output position reads."""
    taps = np.add.outer(np.arange(out) * stride - pad, np.arange(k))
    return len(np.unique(taps[(taps >= 0) & (taps < size)]))


def roofline_cycles(wl: Workload, cfg: AcceleratorConfig) -> dict:
    sh = packed_shapes(wl, cfg)
    g, nb, cib, _, _, _, _ = sh["data"]
    h = _used(wl.h, wl.oh, wl.kh, wl.stride[0], wl.pad[0])
    w = _used(wl.w, wl.ow, wl.kw, wl.stride[1], wl.pad[1])
    cob = sh["weight"][1]
    compute = g * nb * cob * wl.oh * wl.ow * cib * wl.kh * wl.kw
    out_e = cfg.out_elem_bytes if wl.out_dtype == "int8" else cfg.acc_elem_bytes
    dram_bytes = (g * nb * cib * h * w * cfg.inp_elem_bytes + g * cob * cib * wl.kh * wl.kw * cfg.wgt_elem_bytes
                  + g * nb * cob * wl.oh * wl.ow * out_e)
    memory = math.ceil(dram_bytes / cfg.dram_bandwidth)
    alu = g * nb * cob * wl.oh * wl.ow * alu_cycles_per_vector(wl, cfg)
    return {"compute": compute, "memory": memory, "bound": max(compute, memory), "dram_bytes": dram_bytes,
            "alu": alu, "bound_alu": max(compute + alu, memory)}
