"""Chain consecutive ALU instructions into one pass on a chained ALU (``alu_stages`` > 1, simulator/chains.py).

Runs after the dependency tokens are set: an ALU instruction joins the chain of the compute-module instruction
before it when that is an ALU instruction of the same loop over the same accumulator elements, neither writes an
element twice or reads one the chain writes through a register operand, it pops no token, and the chain has a
free stage. A requantising epilogue (bias, multiplier, shift, clamp) on one tile becomes one pass.
"""
from __future__ import annotations

import numpy as np

from ..hardware.config import AcceleratorConfig
from ..hardware.isa import Opcode, module_for

_LOOP = ("iter_out", "iter_in", "dst_out", "dst_in")


def _elements(uops: np.ndarray, d: dict, col: int, out: str, inn: str) -> np.ndarray:
    u = uops[d["uop_bgn"]:d["uop_end"], col]
    a = np.arange(d["iter_out"])[:, None, None] * d[out]
    b = np.arange(d["iter_in"])[None, :, None] * d[inn]
    return (u + a + b).ravel()


def mark(cfg: AcceleratorConfig, insns: list[dict], uops: np.ndarray) -> None:
    """Set ``chain`` in place on the ALU instructions that run in their predecessor's pass."""
    if cfg.alu_stages == 1:
        return
    prev, length, prev_dst = None, 0, None
    for d in insns:
        if int(module_for(d["opcode"], d.get("mem", 0))) != 1:
            continue
        if d["opcode"] != Opcode.ALU:
            prev = None
            continue
        dst = _elements(uops, d, 0, "dst_out", "dst_in")
        ok = np.unique(dst).size == dst.size and (
            d.get("use_imm") or not np.isin(_elements(uops, d, 1, "src_out", "src_in"), dst).any())
        if (ok and prev is not None and length < cfg.alu_stages and not (d["pop_prev"] or d["pop_next"])
                and all(d[f] == prev[f] for f in _LOOP) and np.array_equal(dst, prev_dst)):
            d["chain"], length = 1, length + 1
        else:
            length = 1
        prev, prev_dst = (d, dst) if ok else (None, None)
