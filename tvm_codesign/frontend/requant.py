"""Integer requantisation on the accelerator's ALU for post-training quantisation.

A float conv2d / matmul with a constant weight, followed (each used once) by an optional per-channel constant
bias add (either operand order) and an optional ReLU / ReLU6, becomes

    q = clip(((conv(x_q, w_q) + b_q) * M) >> s, lo, 127) as int8      one accelerator kernel (epilogue.py)
    y = float(q) * s_y                                                 on the CPU

with x_q per-tensor symmetric (scale s_x), w_q symmetric per tensor (s_w: the ALU multiplies by one immediate) or,
with the precision options, per output channel (M one int32 per channel: a vector operand of the ALU's MUL),
s_y = max|y| / 127 from calibration, b_q = round(b / (s_x s_w)) + round(2^(s-1) / M) (the rounding of the floor
shift folded into the bias), and M / 2^s ~ s_x s_w / s_y with M < 2^15 (the immediate) and the largest s for
which M * (calibrated max |conv + b| / (s_x s_w)) * HEADROOM stays below 2^31: inputs HEADROOM times beyond the
calibrated range would wrap the 32-bit accumulator instead of saturating. A layer for which no s qualifies (its
output range or bias is so large against s_x s_w that the bias or (acc + b) * M leaves 32 bits even on the
calibration data's range) raises ``RangeError``: frontend/quantize.py then rescales it in float on the CPU.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from tvm import relax
from tvm.ir.expr import Constant

HEADROOM = 4
IMM_MAX = (1 << 15) - 1


class RangeError(ValueError):
    """The requantisation of a layer does not fit the 32-bit integer epilogue (module docstring)."""


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
        self.uses = uses  # var -> how many times the bindings and the result read it

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
    if _op(val) == "relax.add" and any(isinstance(c, Constant) and v.same_as(var)  # either order: torch's
                                       for v, c in (val.args, val.args[::-1])):  # addmm gives add(bias, mm)
        b = (val.args[1] if val.args[0].same_as(var) else val.args[0]).value.numpy()
        ok = b.shape == (1, o, 1, 1) if conv else b.shape[-1] == o and b.ndim <= len(call.ty.shape)
        if b.size == o and str(b.dtype) == "float32" and ok:
            bias, pre, last = b.reshape(-1).astype(np.float64), nxt, nxt
            nxt, val = g.next(nxt)
    if _op(val) == "relax.nn.relu":
        lo, last = 0.0, nxt
    elif _op(val) == "relax.clip" and float(val.args[1].value) == 0.0:
        lo, hi, last = 0.0, float(val.args[2].value), nxt
    return Chain(bias, lo, hi, pre, last)


def weight_int8(w: np.ndarray) -> tuple[np.ndarray, float]:
    """Today's int8 weights: one symmetric scale for the tensor, s_w = max|w| / 127."""
    sw = float(np.abs(w).max()) / 127.0 or 1.0
    return np.clip(np.round(w / sw), -127, 127).astype(np.int8), sw


def core(xq: relax.Expr, wq: np.ndarray, call: relax.Call) -> relax.Call:
    """The int8 x int8 -> int32 conv2d / matmul replacing the float ``call``."""
    op = relax.op
    if call.op.name == "relax.nn.conv2d":
        a = call.attrs
        return op.nn.conv2d(xq, relax.const(wq), strides=a.strides, padding=a.padding, dilation=a.dilation,
                            groups=a.groups, data_layout="NCHW", kernel_layout="OIHW", out_dtype="int32")
    return op.matmul(xq, relax.const(wq), out_dtype="int32")


def requantize(acc: relax.Expr, sx: float, sw, call: relax.Call, ch: Chain, amax_y: float, amax_pre: float,
               pow2: bool = False, out_bits: int = 8) -> tuple[relax.Expr, float]:
    """The requantisation of one layer's int32 result ``acc`` = conv(x_q, w_q) to int8, and its scale s_y.

    ``sw``: the weight scale, one float (per tensor: M is one ALU immediate) or one per output channel (then M
    is a per-channel int32 constant with one shift for all channels, and the bias folds each channel's
    rounding). ``amax_y``: the clipping threshold of the result, whose values then lie in the ``out_bits``
    range (the next layer's input range): s_y = amax_y / (2^(out_bits-1) - 1), clip to [-2^(out_bits-1),
    2^(out_bits-1) - 1] (0 below with ReLU).
    ``pow2`` (``requant="shift"``, VTA's own scheme, per-tensor ``sw`` only): no multiplier, M = 1, so the output
    scale becomes the power of two s_x s_w 2^s with the smallest s >= 0 for which it is at least the calibrated
    s_y (no more clipping than with M; up to 2x coarser steps). The kernel then uses only ALU operations VTA's
    hardware has (no MUL)."""
    op = relax.op
    conv = call.op.name == "relax.nn.conv2d"
    hi_b = (1 << (out_bits - 1)) - 1
    sw = np.asarray(sw, np.float64)
    sy = amax_y / hi_b if amax_y > 0 else 1.0
    scale = sx * sw / sy
    acc_max = amax_pre / (sx * sw) * HEADROOM + 1
    s = 0
    if pow2:  # the smallest s with 2^-s <= scale, i.e. s_y' = s_x s_w 2^s >= s_y
        if sw.ndim:
            raise ValueError("requant='shift' needs one weight scale per tensor")
        while s < 31 and 2.0 ** -s > scale:
            s += 1
        m, sy = 1, sx * float(sw) * 2.0 ** s
    else:
        fits = lambda s: (np.round(scale * 2 ** s) <= IMM_MAX).all() and (np.round(scale * 2 ** s) * acc_max < 2 ** 31).all()
        while s < 31 and fits(s + 1):
            s += 1
        m = np.maximum(1, np.round(scale * 2 ** s)).astype(np.int64)
        m = int(m.flat[0]) if (m == m.flat[0]).all() else m  # one multiplier (any channel count): an ALU immediate
    o = call.args[1].value.shape[0] if conv else call.args[1].value.shape[-1]
    b = np.round(ch.bias / (sx * sw)) if ch.bias is not None else np.zeros(o)
    b = b + (np.round(2 ** (s - 1) / np.asarray(m, np.float64)) if s else 0)
    if (np.abs(b) >= 2 ** 31).any() or (np.asarray(m) * acc_max >= 2 ** 31).any():
        big = "its bias" if (np.abs(b) >= 2 ** 31).any() else "(accumulator + bias) x multiplier"
        raise RangeError(f"{big} leaves 32 bits: the output range ({amax_pre:.3g} before the activation) is "
                         f"{amax_pre / (sx * float(np.min(sw))):.3g} accumulator steps (input x weight scale "
                         f"{sx * float(np.min(sw)):.3g})")
    b = b.astype(np.int32)
    shape = (1, -1, 1, 1) if conv else (-1,)
    t = op.add(acc, relax.const(b.reshape(shape)))
    if not pow2:
        mc = relax.const(m, "int32") if isinstance(m, int) else relax.const(m.astype(np.int32).reshape(shape))
        t = op.right_shift(op.multiply(t, mc), relax.const(s, "int32"))
    elif s:  # no multiply: the kernel's epilogue has no ALU MUL
        t = op.right_shift(t, relax.const(s, "int32"))
    lo = -(hi_b + 1) if ch.lo is None else 0
    hi = hi_b if ch.hi is None else min(hi_b, int(np.floor(ch.hi / sy)))
    return op.astype(op.clip(t, lo, hi), "int8"), sy
