"""Exact integer lowering of ONNX's quantised operators, as onnxruntime's integer kernels compute them.

QLinearConv, QLinearMatMul, com.microsoft QGemm, ConvInteger and MatMulInteger become

    acc = sum (x - x_zp) * (w - w_zp) [+ b]                      int32, exact (wraps in 32 bits, as the spec allows)
    y   = saturate(round_half_even(float32(acc) * M) + y_zp)      M = float32(float32(x_scale * w_scale) / y_scale)

The sum is the int8 x int8 conv/matmul the accelerator takes (``onnx_qdq.integer_op``, which shifts uint8 or
zero-pointed weights into int8 per output channel) when the weight is a constant, x is 8-bit and x_zp a single
value (constant, or for a matmul computed at run time: DynamicQuantizeLinear); otherwise (the weight a graph
input, x_zp per row) it is an int32 conv/matmul on the CPU. Either way
the result is exact: never a float approximation, never a calibration demand. Scales and zero points may be
graph inputs (M is then computed at run time, in float32, like a constant M).
"""
from __future__ import annotations

import math

import numpy as np
from tvm import relax
from tvm.ir.expr import Constant

from .onnx_qdq import int8_shift, integer_op

_8BIT = ("uint8", "int8")


def _np(e) -> np.ndarray | None:
    return e.value.numpy() if isinstance(e, Constant) else None


def _dims(e) -> list[int] | None:
    try:
        return [int(d) for d in e.ty.shape]
    except (TypeError, AttributeError):
        return None


def _dtype(e) -> str:
    return str(getattr(e.ty, "dtype", ""))


def _i32(e):
    return relax.op.astype(e, "int32")


def _zp(zp, like) -> relax.Expr:
    """A zero point, 0 of ``like``'s dtype when the optional input is absent."""
    return relax.const(0, _dtype(like)) if zp is None else zp


def _normalized(bb, *es):
    """The importer's inputs may be unnormalized calls: give them their types (None stays None)."""
    return [None if e is None else bb.normalize(e) for e in es]


def _per(e, shape: list[int]) -> relax.Expr:
    """A 1-D per-channel (or per-row) parameter reshaped to broadcast along that axis; other ranks as they are."""
    d = _dims(e)
    return relax.op.reshape(e, shape) if d is not None and len(d) == 1 else e


def explicit_pads(attr: dict, x: list[int], w: list[int]) -> list[int] | None:
    """ONNX conv padding (begins, then ends) with auto_pad resolved for static shapes; None if it cannot be."""
    n = len(x) - 2
    mode = attr.get("auto_pad", b"NOTSET")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    if mode == "NOTSET":
        return [int(p) for p in attr.get("pads", [0] * 2 * n)]
    if mode == "VALID":
        return [0] * 2 * n
    if mode not in ("SAME_UPPER", "SAME_LOWER"):
        return None
    strides, dil = list(attr.get("strides", [1] * n)), list(attr.get("dilations", [1] * n))
    begin, end = [], []
    for i in range(n):
        out = math.ceil(x[2 + i] / strides[i])
        total = max((out - 1) * strides[i] + (w[2 + i] - 1) * dil[i] + 1 - x[2 + i], 0)
        lo = total // 2 if mode == "SAME_UPPER" else total - total // 2
        begin.append(lo), end.append(total - lo)
    return begin + end


def conv_sum(bb, x, x_zp, w, w_zp, attr: dict) -> relax.Expr:
    """int32 sum (x - x_zp) * (w - w_zp) of an ONNX conv (any rank, padding, stride, dilation, group)."""
    import tvm.relax.frontend.onnx.onnx_frontend as OF
    x, x_zp, w, w_zp = _normalized(bb, x, x_zp, w, w_zp)
    xd, wd = _dims(x), _dims(w)
    wc, xzc = _np(w), (np.zeros(1) if x_zp is None else _np(x_zp))
    wzc = np.zeros(1, np.int64) if w_zp is None else _np(w_zp)
    pads = explicit_pads(attr, xd, wd) if xd is not None and wd is not None else None
    if len(wd or []) == 4 and pads is not None and wc is not None and xzc is not None and xzc.size == 1 \
            and wzc is not None and _dtype(x) in _8BIT:
        wz = wzc.astype(np.int64).reshape(-1, 1, 1, 1) if wzc.size > 1 else int(wzc.reshape(-1)[0])
        wi = wc.astype(np.int64) - wz
        if int8_shift(wi, True) is not None:
            return bb.normalize(integer_op(x, int(xzc.reshape(-1)[0]), wi, {
                "strides": list(attr.get("strides", [1, 1])), "padding": pads,
                "dilation": list(attr.get("dilations", [1, 1])), "groups": int(attr.get("group", 1))}))
    xi = bb.normalize(relax.op.subtract(_i32(x), _i32(_zp(x_zp, x))))
    wi = bb.normalize(relax.op.subtract(_i32(w), _i32(_per(_zp(w_zp, w), [-1] + [1] * (len(wd) - 1)))))
    # TVM's Conv converter (any rank, auto_pad); its zero padding is the real zero of x - x_zp
    return bb.normalize(OF.Conv._impl_v11(bb, [xi, wi, None], dict(attr), None))


def matmul_sum(bb, a, a_zp, b, b_zp) -> relax.Expr:
    """int32 sum (a - a_zp) @ (b - b_zp), numpy matmul semantics; a_zp per tensor or per row, b_zp per column."""
    a, a_zp, b, b_zp = _normalized(bb, a, a_zp, b, b_zp)
    bc, azc = _np(b), (np.zeros(1) if a_zp is None else _np(a_zp))
    bzc = np.zeros(1, np.int64) if b_zp is None else _np(b_zp)
    zd = [1] if a_zp is None else _dims(a_zp)
    one_zp = zd is not None and math.prod(zd) == 1  # per tensor, maybe computed at run time
    if bc is not None and bc.ndim >= 2 and len(_dims(a) or []) >= 2 and one_zp and bzc is not None \
            and _dtype(a) in _8BIT:
        wi = bc.astype(np.int64) - bzc.astype(np.int64)  # per column (N,) or [..., 1, N]: numpy broadcasting
        if int8_shift(wi, False) is not None:
            return bb.normalize(integer_op(a, int(azc.reshape(-1)[0]) if azc is not None else a_zp, wi))
    azp = _zp(a_zp, a)
    ai = relax.op.subtract(_i32(a), _i32(_per(azp, [-1, 1]) if len(_dims(a) or [1, 1]) >= 2 else azp))
    bi = relax.op.subtract(_i32(b), _i32(_zp(b_zp, b)))
    return bb.normalize(relax.op.matmul(bb.normalize(ai), bb.normalize(bi), out_dtype="int32"))


def _f32(e):
    return relax.op.astype(e, "float32")


def requantize(bb, acc, x_scale, w_scale, y_scale, y_zp, out_dtype: str, scale_shape: list[int],
               x_scale_shape: list[int] | None = None) -> relax.Expr:
    """saturate(round_half_even(float32(acc) * float32(float32(x_scale * w_scale) / y_scale)) + y_zp); a 1-D
    w_scale (x_scale) is reshaped to ``scale_shape`` (``x_scale_shape``) to broadcast along its channels."""
    x_scale, w_scale, y_scale, y_zp = _normalized(bb, x_scale, w_scale, y_scale, y_zp)
    for name, e in (("y_scale", y_scale), ("y_zero_point", y_zp)):
        d = _dims(e)
        if d is None or math.prod(d) != 1:
            raise ValueError(f"{name} must be a single value (per-tensor output quantisation), got shape {d}")
    xs = _f32(_per(x_scale, x_scale_shape) if x_scale_shape else x_scale)
    m = relax.op.divide(relax.op.multiply(xs, _f32(_per(w_scale, scale_shape))), _f32(y_scale))
    scaled = relax.op.multiply(_f32(acc), bb.normalize(m))
    return relax.op.quantize(bb.normalize(scaled), relax.const(np.float32(1.0)), y_zp, axis=-1, out_dtype=out_dtype)


def bias_add(bb, acc, b, rank: int) -> relax.Expr:
    """acc + an int32 per-output-channel bias (axis 1 of a conv result, ``rank`` dims)."""
    b = bb.normalize(_i32(bb.normalize(b)))
    return bb.normalize(relax.op.add(acc, bb.normalize(relax.op.reshape(b, [1, -1] + [1] * (rank - 2)))))
