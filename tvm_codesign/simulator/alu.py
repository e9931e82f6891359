"""ALU instructions, vectorised per instruction: decoded once into hazard-free runs (``alu_plan``), then run
(``alu_run``) on the accumulator SRAM. Semantics: simulator/functional.py's docstring."""
from __future__ import annotations

import numpy as np

from ..hardware.config import AcceleratorConfig
from ..hardware.isa import AluOp, Module
from .chains import check_members
from .loops import as_slice as _as_slice, check_range as _check_range, indices as _indices, rng as _rng


def _alu_apply(op: int, x: np.ndarray, v) -> np.ndarray:
    if op == AluOp.MIN:
        return np.minimum(x, v)
    if op == AluOp.MAX:
        return np.maximum(x, v)
    if op == AluOp.ADD:
        return x + v
    if op == AluOp.MUL:
        return x * v
    if op == AluOp.SHR and np.ndim(v) == 0 and 0 <= v <= 63:
        return x >> v
    if op == AluOp.SHR:
        v = np.broadcast_to(v, x.shape)
        return np.where(v >= 0, x >> np.clip(v, 0, 63), x << np.clip(-v, 0, 63))
    if op == AluOp.CLIP:
        return np.minimum(np.maximum(x, -v - 1), v)
    return np.broadcast_to(v, x.shape)  # MOV


def alu_plan(cfg: AcceleratorConfig, st, i: int, c) -> tuple:
    """Decode an ALU instruction: (op, imm or None, [(dst, src or None)] hazard-free runs, access)."""
    D, S = _indices(st.uop, c, i, ((0, "dst_out", "dst_in"), (1, "src_out", "src_in")))
    _check_range(D, cfg.acc_depth, i, "dst", "acc")
    use_imm, op = c["use_imm"][i], c["op"][i]
    if not use_imm:
        _check_range(S, cfg.acc_depth, i, "src", "acc")
    if c["chain"][i]:  # runs in its predecessor's pass: only where that equals running after it (chains.py)
        j = chained_to(c, i)
        Dj, Sj = _indices(st.uop, c, j, ((0, "dst_out", "dst_in"), (1, "src_out", "src_in")))
        check_members(i, j, D, None if use_imm else S, Dj, None if c["use_imm"][j] else Sj)
    n = D.size
    # conflict[k] = latest earlier iteration k' < k that wrote what k reads or writes (-1 if none)
    pos = np.arange(n)
    order = np.lexsort((pos, D))
    prev_w = np.full(n, -1)
    same = D[order][1:] == D[order][:-1]
    prev_w[order[1:][same]] = order[:-1][same]
    conflict = prev_w
    if not use_imm:
        keys = D[order] * n + pos[order]            # sorted (D, position) pairs
        j = np.searchsorted(keys, S * n + pos) - 1   # last write with D <= S and position < k
        jj = np.clip(j, 0, n - 1)
        hit = (j >= 0) & (D[order][jj] == S) & (pos[order][jj] < pos)
        conflict = np.maximum(conflict, np.where(hit, pos[order][jj], -1))
    runs, a = [], 0
    while a < n:  # hazard-free runs execute as one vectorised step; without hazards there is one run
        later = np.flatnonzero(conflict[a + 1:] >= a)
        b = a + 1 + int(later[0]) if later.size else n
        runs.append((_as_slice(D[a:b]), None if use_imm else _as_slice(S[a:b])))
        a = b
    reads = [("uop", c["uop_bgn"][i], c["uop_end"][i]), ("acc", *_rng(D))]
    if not use_imm:
        reads.append(("acc", *_rng(S)))
    return op, (np.int64(c["imm"][i]) if use_imm else None), runs, (reads, [("acc", *_rng(D))])


def chained_to(c, i: int) -> int:
    """The compute-module instruction before ``i`` (an ALU instruction: chains.check)."""
    j = i - 1
    while c["module"][j] != Module.COMPUTE:
        j -= 1
    return j


_IN_PLACE = {AluOp.ADD: np.add, AluOp.MUL: np.multiply, AluOp.MIN: np.minimum, AluOp.MAX: np.maximum,
             AluOp.SHR: np.right_shift, AluOp.CLIP: lambda x, v, out: np.clip(x, -v - 1, v, out=out)}
_INT32_SAFE = (AluOp.ADD, AluOp.MUL, AluOp.MIN, AluOp.MAX, AluOp.CLIP)  # wrap-around int32 ufuncs == the ALU


def alu_run(cfg: AcceleratorConfig, st, plan: tuple):
    op, imm, runs, access = plan
    fast = st.acc.dtype == np.int32 and (op in _INT32_SAFE[:4] or (imm is not None and (
        op == AluOp.CLIP or (op == AluOp.SHR and 0 <= imm <= 31))))
    for d, s in runs:
        if fast and isinstance(d, slice) and op in _IN_PLACE:  # a view updated in place (no temporary)
            view = st.acc[d]
            _IN_PLACE[op](view, np.int32(imm) if s is None else st.acc[s], out=view)
            continue
        if fast:  # in int32 directly: two's-complement wrap is the documented ALU arithmetic
            st.acc[d] = _alu_apply(op, st.acc[d], np.int32(imm) if s is None else st.acc[s])
            continue
        x = st.acc[d].astype(np.int64)
        v = imm if s is None else st.acc[s].astype(np.int64)
        st.acc[d] = _alu_apply(op, x, v).astype(st.acc.dtype)
    return access
