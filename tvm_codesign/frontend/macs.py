"""Multiply-accumulates of Relax ops, from their static shapes: the real (unpadded) work of a layer.

Convolutions of any dimension, groups and dilation (output elements x input channels per group x kernel
size), transposed convolutions (input elements x output channels per group x kernel size), matmul with any
batch broadcasting (output elements x K), einsum (naive evaluation: the product of every index extent, once per
operand after the first) and fused attention (Q.K^T and the weighted sum of V). Padding zeros are counted like
any other input (one MAC per kernel tap per output), channel padding of the accelerator's packed layout is not.
"""
from __future__ import annotations

import math

import tvm_ffi
from tvm import relax, s_tir, tirx

CONV = ("relax.nn.conv1d", "relax.nn.conv2d", "relax.nn.conv3d")
CONV_T = ("relax.nn.conv1d_transpose", "relax.nn.conv2d_transpose", "relax.nn.conv3d_transpose")
MAC_OPS = (*CONV, *CONV_T, "relax.matmul", "relax.einsum", "relax.nn.attention", "relax.nn.attention_bias")


def dims(e) -> list[int] | None:
    """Static shape of a tensor expression, or None (dynamic or not a tensor)."""
    return _shape(getattr(e, "ty", None))


def _shape(t) -> list[int] | None:
    try:
        return [int(s) for s in t.shape]
    except (TypeError, AttributeError, ValueError):
        return None


def operand_shapes(call) -> list:
    """Static shapes of a call's tensor operands (einsum's tuple expanded), None for a dynamic one."""
    out = []
    for a in call.args:
        t = a.ty
        out += [_shape(f) for f in t.fields] if isinstance(t, relax.TupleType) else \
            [_shape(t)] if isinstance(t, relax.TensorType) else []
    return out


def op_name(e) -> str | None:
    return getattr(getattr(e, "op", None), "name", None) if isinstance(e, relax.Call) else None


def _per_channel(w: list[int], layout: str, channel: str) -> int:
    """Weight elements per index of the ``channel`` axis (O or I; a split axis such as OIHW16o counts whole)."""
    return math.prod(w) // math.prod(d for d, c in zip(w, layout) if c.upper() == channel)


def conv(out: list[int], weight: list[int], kernel_layout: str = "OIHW") -> int:
    """Output elements x (input channels per group x kernel taps) = out x weight elements per output channel."""
    return math.prod(out) * _per_channel(weight, kernel_layout, "O")


def conv_transpose(data: list[int], weight: list[int], kernel_layout: str = "IOHW") -> int:
    """Input elements x (output channels per group x kernel taps): every input element meets its slice of W."""
    return math.prod(data) * _per_channel(weight, kernel_layout, "I")


def matmul(out: list[int], x: list[int]) -> int:
    """Output elements x K (batch dims broadcast; a 1-d operand is a vector)."""
    return math.prod(out) * x[-1]


def einsum(subscripts: str, shapes: list[list[int]]) -> int:
    """Naive evaluation: one MAC per combination of all index values, per operand after the first."""
    if len(shapes) < 2:
        return 0  # a trace / diagonal / transpose: sums, no products
    extent: dict = {}
    for spec, shape in zip(subscripts.split("->")[0].split(","), shapes):
        spec = spec.strip()
        if "..." in spec:  # the ellipsis dims, labelled by their distance from its right end (broadcast)
            a, b = spec.split("...")
            n = len(shape) - len(a) - len(b)
            labels = [*a, *(f"...{n - 1 - i}" for i in range(n)), *b]
        else:
            labels = list(spec)
        for lb, d in zip(labels, shape):
            extent[lb] = max(extent.get(lb, 1), d)  # broadcast dims of extent 1
    return math.prod(extent.values()) * (len(shapes) - 1)


def tir(func: tirx.PrimFunc) -> int | None:
    """MACs of a TE-style PrimFunc (an importer's ``call_tir``, e.g. ONNX Einsum as ``topi.einsum``): per reduction
    block whose update is ``acc + a * b [* c ...]``, its instances (the product of its iteration domains) times
    the multiplications of one update; None if a domain is dynamic."""
    total = [0]

    def block(b):
        v = b.body.value if isinstance(b.body, tirx.BufferStore) else None
        if b.init is None or not isinstance(v, tirx.Add) or not any(iv.iter_type == 2 for iv in b.iter_vars):
            return
        muls = [0]
        tvm_ffi.structural_walk(v, [(tirx.Mul, lambda m: muls.__setitem__(0, muls[0] + 1))])
        try:
            total[0] += math.prod(int(iv.dom.extent) for iv in b.iter_vars) * muls[0]
        except TypeError:
            total[0] = None

    tvm_ffi.structural_walk(func.body, [(s_tir.SBlock, lambda b: block(b) if total[0] is not None else None)])
    return total[0]


def macs(call, mod=None) -> int | None:
    """MACs of one call (0 for an op without multiply-accumulates), or None if a shape is dynamic. A ``call_tir``
    counts the MACs of its PrimFunc in ``mod`` (``tir``)."""
    name = op_name(call)
    if name == "relax.call_tir" and mod is not None and call.args[0] in mod.functions:
        f = mod[call.args[0]]
        return tir(f) if isinstance(f, tirx.PrimFunc) else 0
    if name not in MAC_OPS:
        return 0
    out, shapes = dims(call), operand_shapes(call)
    if out is None or any(s is None for s in shapes):
        return None
    if name == "relax.einsum":
        return einsum(str(call.attrs.subscripts), shapes)
    x, w = shapes[0], shapes[1]
    if name in CONV:
        return conv(out, w, str(call.attrs.kernel_layout))
    if name in CONV_T:
        return conv_transpose(x, w, str(call.attrs.kernel_layout))
    if name == "relax.matmul":
        return matmul(out, x)
    v = shapes[2]  # attention: q (B, S, N, H), k (B, Skv, N, H), v (B, Skv, N, Hv)
    b, s, n, h = x
    return b * n * s * w[1] * (h + v[3])
