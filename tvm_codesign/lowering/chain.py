"""Chain consecutive ALU instructions into one pass on a chained ALU (``alu_stages`` > 1, simulator/chains.py).

Runs on the program's columns once the dependency tokens are set: an ALU instruction joins the chain of the
compute-module instruction before it when that is an ALU instruction of the same loop over the same accumulator
elements, neither writes an element twice or reads one the chain writes through a register operand, it pops no
token, and the chain has a free stage. A requantising epilogue (bias, multiplier, shift, clamp) on one tile becomes
one pass.
"""
from __future__ import annotations

import numpy as np

from ..hardware.config import AcceleratorConfig
from ..hardware.isa import Module, Opcode
from ..simulator.chains import LOOP
from ..simulator.loops import indices
from ..simulator.program import module_column

_DST_SRC = ((0, "dst_out", "dst_in"), (1, "src_out", "src_in"))


def mark(cfg: AcceleratorConfig, t: dict, uops: np.ndarray) -> None:
    """Set the ``chain`` column in place on the ALU instructions that run in their predecessor's pass."""
    if cfg.alu_stages == 1:
        return
    prev, length, prev_dst = None, 0, None
    for i in np.flatnonzero(module_column(t) == Module.COMPUTE).tolist():
        if t["opcode"][i] != Opcode.ALU:
            prev = None
            continue
        dst, src = indices(uops, t, i, _DST_SRC)
        ok = np.unique(dst).size == dst.size and (t["use_imm"][i] or not np.isin(src, dst).any())
        if (ok and prev is not None and length < cfg.alu_stages and not (t["pop_prev"][i] or t["pop_next"][i])
                and all(t[f][i] == t[f][prev] for f in LOOP) and np.array_equal(dst, prev_dst)):
            t["chain"][i], length = 1, length + 1
        else:
            length = 1
        prev, prev_dst = (i, dst) if ok else (None, None)
