"""Integer requantisation on the accelerator's ALU for post-training quantisation.

A float conv2d / matmul with a constant weight, followed (each used once) by an optional per-channel constant
bias add and an optional ReLU / ReLU6, becomes

    q = clip(((conv(x_q, w_q) + b_q) * M) >> s, lo, 127) as int8      one accelerator kernel (epilogue.py)
    y = float(q) * s_y                                                 on the CPU

with x_q per-tensor symmetric (scale s_x), w_q per-tensor symmetric (s_w: the ALU multiplies by one immediate),
s_y = max|y| / 127 from calibration, b_q = round(b / (s_x s_w)) + round(2^(s-1) / M) (the rounding of the floor
shift folded into the bias), and M / 2^s ~ s_x s_w / s_y with M < 2^15 (the immediate) and the largest s for
which M * (calibrated max |conv + b| / (s_x s_w)) * HEADROOM stays below 2^31: inputs HEADROOM times beyond the
calibrated range would wrap the 32-bit accumulator instead of saturating.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from tvm import relax
from tvm.ir.expr import Constant

HEADROOM = 4
IMM_MAX = (1 << 15) - 1


@dataclasses.dataclass
class Chain:
    bias: np.ndarray | None   # float per output channel
    lo: float | None          # activation clamp (0 for ReLU / ReLU6), None without activation
    hi: float | None
    pre: relax.Var            # conv (+ bias) output: its range bounds the accumulator
    last: relax.Var           # the chain's result, whose binding is replaced


def _op(e) -> str | None:
    return getattr(getattr(e, "op", None), "name", None) if isinstance(e, relax.Call) else None


class Graph:
    """Bindings of ``main`` with their single consumer, to follow a chain forward."""

    def __init__(self, func: relax.Function):
        self.value, self.consumer, uses = {}, {}, {}

        def count(e, by):
            if isinstance(e, relax.Var):
                uses[e] = uses.get(e, 0) + 1
                self.consumer[e] = by

        for block in func.body.blocks:
            for bd in block.bindings:
                self.value[bd.var] = bd.value
                relax.analysis.post_order_visit(bd.value, lambda e, by=bd.var: count(e, by))
        relax.analysis.post_order_visit(func.body.body, lambda e: count(e, None))
        self.single = {v for v, n in uses.items() if n == 1 and self.consumer[v] is not None}

    def next(self, v: relax.Var):
        """The binding var consuming ``v`` and its value, if ``v`` is used exactly once (else None)."""
        if v not in self.single or v not in self.consumer:
            return None, None
        c = self.consumer[v]
        return c, self.value[c]


def chain(g: Graph, var: relax.Var, call: relax.Call) -> Chain:
    """The bias / activation ops after a constant-weight conv2d / matmul ``var = call``."""
    conv = call.op.name == "relax.nn.conv2d"
    o = call.args[1].value.shape[0] if conv else call.args[1].value.shape[-1]
    bias, pre, last, lo, hi = None, var, var, None, None
    nxt, val = g.next(var)
    if _op(val) == "relax.add" and isinstance(val.args[1], Constant) and val.args[0].same_as(var):
        b = val.args[1].value.numpy()
        if b.size == o and str(b.dtype) == "float32" and (b.shape == (1, o, 1, 1) if conv else b.shape[-1] == o):
            bias, pre, last = b.reshape(-1).astype(np.float64), nxt, nxt
            nxt, val = g.next(nxt)
    if _op(val) == "relax.nn.relu":
        lo, last = 0.0, nxt
    elif _op(val) == "relax.clip" and float(val.args[1].value) == 0.0:
        lo, hi, last = 0.0, float(val.args[2].value), nxt
    return Chain(bias, lo, hi, pre, last)


def requantize(xq: relax.Expr, sx: float, call: relax.Call, ch: Chain, amax_y: float,
               amax_pre: float, pow2: bool = False) -> tuple[relax.Expr, float]:
    """The int8 kernel chain for one layer (int8 result) and its scale s_y.

    ``pow2`` (``requant="shift"``, VTA's own scheme): no multiplier, M = 1, so the output scale becomes the power of
    two s_x s_w 2^s with the smallest s >= 0 for which it is at least the calibrated s_y (no more clipping than
    with M; up to 2x coarser steps). The kernel then uses only ALU operations VTA's hardware has (no MUL)."""
    op = relax.op
    w = call.args[1].value.numpy().astype(np.float64)
    conv = call.op.name == "relax.nn.conv2d"
    sw = float(np.abs(w).max()) / 127.0 or 1.0
    wq = np.clip(np.round(w / sw), -127, 127).astype(np.int8)
    sy = amax_y / 127.0 if amax_y > 0 else 1.0
    scale = sx * sw / sy
    acc_max = amax_pre / (sx * sw) * HEADROOM + 1
    s = 0
    if pow2:  # the smallest s with 2^-s <= scale, i.e. s_y' = s_x s_w 2^s >= s_y
        while s < 31 and 2.0 ** -s > scale:
            s += 1
        m, sy = 1, sx * sw * 2.0 ** s
    else:
        while s < 31 and round(scale * 2 ** (s + 1)) <= IMM_MAX and round(scale * 2 ** (s + 1)) * acc_max < 2 ** 31:
            s += 1
        m = max(1, round(scale * 2 ** s))
    o = wq.shape[0] if conv else wq.shape[-1]
    b = np.round(ch.bias / (sx * sw)) if ch.bias is not None else np.zeros(o)
    b = np.clip(b + (round(2 ** (s - 1) / m) if s else 0), -2 ** 31, 2 ** 31 - 1).astype(np.int32)  # no silent wrap
    if conv:
        a = call.attrs
        acc = op.nn.conv2d(xq, relax.const(wq), strides=a.strides, padding=a.padding, dilation=a.dilation,
                           groups=a.groups, data_layout="NCHW", kernel_layout="OIHW", out_dtype="int32")
        b = b.reshape(1, -1, 1, 1)
    else:
        acc = op.matmul(xq, relax.const(wq), out_dtype="int32")
    t = op.add(acc, relax.const(b))
    if not pow2:
        t = op.right_shift(op.multiply(t, relax.const(m, "int32")), relax.const(s, "int32"))
    elif s:  # no multiply: the kernel's epilogue has no ALU MUL
        t = op.right_shift(t, relax.const(s, "int32"))
    lo = -128 if ch.lo is None else 0
    hi = 127 if ch.hi is None else min(127, int(np.floor(ch.hi / sy)))
    return op.astype(op.clip(t, lo, hi), "int8"), sy
