"""Find int8 requantisation epilogues in Relax that the accelerator's ALU can run fused with the GEMM.

The chain (each intermediate used once, constants as shown):

    acc = conv2d / matmul(x_int8, w_int8) -> int32      (an accelerator workload, ``relax.workload_of``)
    t   = add(acc, bias)                                 optional, int32 constant per output channel
    t   = multiply(t, M)                                 optional, int32 constant: scalar or per output channel
    t   = right_shift(t, s)                              optional, int32 scalar constant
    t   = clip(t, lo, hi)
    q   = astype(t, "int8")

is the Workload epilogue bias -> * M -> >> s (floor) -> clip -> int8 store, with the same 32-bit wrapping
arithmetic as TVM's CPU build of these ops, so fusing it changes no result. A scalar M is an ALU immediate; a
per-channel M (per-channel weight scales) is a vector in the accumulator SRAM like the bias
(``Workload.multiplier == "channel"``). ``fits(core, workload)`` (given by the offload, which knows the
config) may refuse a chain whose kernel has no schedule: it then stays on the CPU, unfused.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from tvm import relax
from tvm.ir.expr import Constant

from ..schedules.workload import CHANNEL, Workload


@dataclasses.dataclass(frozen=True)
class Fused:
    core: relax.Call          # the conv2d / matmul
    workload: Workload        # with the epilogue
    bias: np.ndarray | None   # int32, length co
    members: tuple = ()       # the bound vars of the chain (core ... clip), now inside the kernel
    multiplier: np.ndarray | None = None  # int32, length co, when workload.multiplier == "channel"


def _op(e) -> str | None:
    return getattr(getattr(e, "op", None), "name", None) if isinstance(e, relax.Call) else None


def _scalar(e) -> int | None:
    if isinstance(e, Constant) and e.value.numpy().size == 1 and str(e.value.dtype) == "int32":
        return int(e.value.numpy().reshape(()))
    return None


def _per_channel(c: Constant, wl: Workload, ndim: int) -> np.ndarray | None:
    """An int32 constant holding one value per output channel of ``wl``, shaped to broadcast along the channel
    axis of the ``ndim``-D result without changing its shape (conv (1, C, 1, 1), matmul (..., C)): the values."""
    v = c.value.numpy()
    if str(v.dtype) != "int32" or v.ndim > ndim:
        return None
    ok = v.shape == (1, wl.channels_out, 1, 1) if wl.kind == "conv2d" else \
        (v.ndim >= 1 and v.shape[-1] == wl.co == v.size)
    return v.reshape(-1) if ok else None


def find(func: relax.Function, workload_of, fits=None) -> dict:
    """astype's input var (the clip) -> Fused, for every fusable chain in ``func``; ``fits(core, workload)``:
    False keeps that chain on the CPU (module docstring)."""
    value, uses = {}, {}
    for block in func.body.blocks:
        for bd in block.bindings:
            value[bd.var] = bd.value
    relax.analysis.post_order_visit(func, lambda e: uses.__setitem__(e, uses.get(e, 0) + 1)
                                    if isinstance(e, relax.Var) else None)
    out = {}
    for var, v in value.items():
        if _op(v) != "relax.astype" or str(v.attrs.dtype) != "int8":
            continue
        fused = _match(v.args[0], value, uses, workload_of)
        if fused is not None and (fits is None or fits(fused.core, fused.workload)):
            out[v.args[0]] = dataclasses.replace(fused, members=fused.members + (var,))
    return out


def _match(clip_var, value, uses, workload_of) -> Fused | None:
    def producer(v, op):
        e = value.get(v) if isinstance(v, relax.Var) else None
        return e if _op(e) == op and uses.get(v, 0) == 1 else None

    c = producer(clip_var, "relax.clip")
    if c is None:
        return None
    lo, hi = int(c.args[1].value), int(c.args[2].value)
    t, shift, mult, bias, members = c.args[0], None, None, None, [clip_var]  # bias, mult: Constants
    if (e := producer(t, "relax.right_shift")) is not None and _scalar(e.args[1]) is not None:
        members.append(t)
        t, shift = e.args[0], _scalar(e.args[1])
    if (e := producer(t, "relax.multiply")) is not None and isinstance(e.args[1], Constant):
        members.append(t)
        t, mult = e.args[0], e.args[1]
    if (e := producer(t, "relax.add")) is not None and isinstance(e.args[1], Constant):
        members.append(t)
        t, bias = e.args[0], e.args[1]
    members.append(t)
    core = value.get(t) if isinstance(t, relax.Var) and uses.get(t, 0) == 1 else None
    if core is None or _op(core) not in ("relax.nn.conv2d", "relax.matmul"):
        return None
    wl = workload_of(core)
    if wl is None or (shift is not None and not 0 <= shift <= 31) or not -128 <= lo <= hi <= 127:
        return None  # a wider clip would let astype wrap: not the saturating store
    ndim = len(core.ty.shape)
    if bias is not None and (bias := _per_channel(bias, wl, ndim)) is None:
        return None
    vec = None
    if mult is not None:  # one int (an ALU immediate, >= 1) or one int32 per output channel (a register operand)
        m = _scalar(mult)
        if m is None and (vec := _per_channel(mult, wl, ndim)) is None:
            return None
        if m is not None and m < 1:
            return None
        mult = m if m is not None else CHANNEL
    wl = dataclasses.replace(wl, bias=bias is not None, multiplier=1 if mult is None and shift else mult,
                             shift=shift, clip=(max(lo, -128), min(hi, 127)), out_dtype="int8")
    return Fused(core, wl, bias, tuple(members), vec)
