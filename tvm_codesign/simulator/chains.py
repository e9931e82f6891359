"""Chained ALU instructions: a pass over the accumulators that applies up to ``alu_stages`` ALU instructions in a row.

VTA's ALU reads an accumulator, applies one operation and writes it back: a requantising epilogue (bias ADD, MUL,
SHR, MAX, MIN) costs five passes over the tile. A chained ALU has ``alu_stages`` stages in each lane, like the
fixed bias / scale / shift / clamp pipelines of NVDLA's SDP and Gemmini's scaled ``mvout``: an ALU instruction
with ``chain`` set runs in the pass of the instruction before it, each element flowing through the stages.

Contract (a chain = a head, chain 0, and the chained ALU instructions after it in the compute module's order):
- static (``check``): a chained instruction is an ALU instruction whose compute-module predecessor is one, with the
  same loop (iter_out, iter_in, dst_out, dst_in) and as many micro-ops; it pops no token (its pass has begun);
  a chain has at most ``alu_stages`` instructions.
- with its micro-ops (``check_members``, when the functional simulator decodes it): the same destination element
  sequence as its predecessor, no element written twice in one instruction, and no register operand reading a
  destination element. Then a pass that applies every stage to an element before moving on computes exactly what
  the instructions compute one after the other, so the functional semantics do not change.
- timing (``pass_cycles``): the head's pass takes the ALU's fill plus, per micro-op iteration, the largest II of
  its chain's instructions (``alu_ii_vec`` if any reads a register operand, else ``alu_ii_imm``) times the lane
  passes; a chained instruction costs only its issue. The fill is ``alu_fill_cycles`` and one cycle per stage
  beyond the first (each stage ends in a register, physical/logic.py prices it), for every pass, chained or not.
  Each element is read and written once per pass.
"""
from __future__ import annotations

import numpy as np

from ..errors import ProgramError
from ..hardware.isa import Module, Opcode

LOOP = ("iter_out", "iter_in", "dst_out", "dst_in")  # the loop a chained instruction shares with its predecessor


def heads(t: dict) -> np.ndarray:
    """Per instruction, the chain head it runs in (itself if it is not chained); vectorised."""
    n = len(t["opcode"])
    idx = np.arange(n)
    head = np.where(t["chain"] == 1, -1, idx)
    comp = np.flatnonzero(t["module"] == Module.COMPUTE)
    h = head[comp]
    h = np.maximum.accumulate(h) if h.size else h  # the latest non-chained compute instruction at or before
    head[comp] = h
    head[head < 0] = idx[head < 0]  # a chained first instruction (refused by ``check``)
    return head


def check(cfg, t: dict) -> None:
    """Static chain rules (module docstring); ProgramError naming the first offending instruction."""
    ch = t["chain"] == 1
    if not ch.any():
        return
    op = t["opcode"]
    bad = np.flatnonzero(ch & (op != Opcode.ALU))
    if bad.size:
        raise ProgramError(int(bad[0]), "chain",
                           f"only an ALU instruction can be chained (got {Opcode(op[bad[0]]).name})")
    comp = np.flatnonzero(t["module"] == Module.COMPUTE)
    prev = np.full(len(op), -1)
    prev[comp[1:]] = comp[:-1]
    ci = np.flatnonzero(ch)
    pj = prev[ci]
    cj = np.maximum(pj, 0)
    n_uop = t["uop_end"] - t["uop_bgn"]
    rules = [((pj < 0) | (op[cj] != Opcode.ALU), lambda i, j: "a chained ALU instruction must follow an ALU "
              "instruction in the compute module")]
    rules += [(t[f][ci] != t[f][cj], lambda i, j, f=f: f"{f} {int(t[f][i])} differs from the chained-to "
               f"instruction {j}'s {int(t[f][j])}: a pass runs one loop") for f in LOOP]
    rules += [(n_uop[ci] != n_uop[cj], lambda i, j: f"{int(n_uop[i])} micro-ops, instruction {j} has "
               f"{int(n_uop[j])}: a pass runs one loop"),
              ((t["pop_prev"][ci] | t["pop_next"][ci]) != 0, lambda i, j: "a chained instruction cannot pop a token "
               "(its pass has already begun): pop on the chain's first instruction")]
    bad = np.column_stack([m for m, _ in rules])  # one row per chained instruction, one column per rule
    rows = np.flatnonzero(bad.any(1))
    if rows.size:
        r = int(rows[0])
        i, j = int(ci[r]), int(cj[r])
        raise ProgramError(i, "chain", rules[int(np.argmax(bad[r]))][1](i, j))
    h = heads(t)
    size = np.bincount(h[ch], minlength=len(op))
    long = np.flatnonzero(size + 1 > cfg.alu_stages)
    if long.size:
        raise ProgramError(int(long[0]), "chain", f"chain of {int(size[long[0]]) + 1} instructions on an ALU of "
                           f"{cfg.alu_stages} stages")


def check_members(i: int, j: int, d_i: np.ndarray, s_i, d_j: np.ndarray, s_j) -> None:
    """Instruction ``i`` chained to ``j``: destination sequences (``d``) equal, each without repeats, and no register
    operand (``s``, None for an immediate) reading a destination: else the pass would not equal the sequence."""
    if not np.array_equal(d_i, d_j):
        raise ProgramError(i, "chain", f"its accumulator elements differ from instruction {j}'s (micro-ops plus "
                           "loop factors): a pass applies its stages to one element sequence")
    if np.unique(d_i).size != d_i.size:
        raise ProgramError(i, "chain", "an accumulator element is written twice in one chained instruction")
    for k, s in ((i, s_i), (j, s_j)):
        if s is not None and np.isin(s, d_i).any():
            raise ProgramError(k, "chain", "a register operand reads an element the chain writes")


def pass_cycles(cfg, t: dict, events: np.ndarray) -> np.ndarray:
    """Execute cycles of each ALU instruction (0 for the others): a head's whole pass, 0 for chained ones."""
    alu = t["opcode"] == Opcode.ALU
    ii = np.where(t["use_imm"] == 1, cfg.alu_ii_imm, cfg.alu_ii_vec)
    h = heads(t)
    worst = np.zeros(len(ii), np.int64)
    np.maximum.at(worst, h[alu], ii[alu])
    head = alu & (t["chain"] == 0)
    return np.where(head, fill_cycles(cfg) + events * worst * cfg.alu_passes, 0)


def fill_cycles(cfg) -> int:
    """The ALU's fill per pass: ``alu_fill_cycles`` plus a cycle per stage register beyond the first."""
    return cfg.alu_fill_cycles + cfg.alu_stages - 1
