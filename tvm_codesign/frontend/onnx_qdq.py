"""Already-quantised ONNX models (QDQ format) onto the accelerator with integer kernels.

onnxruntime's quantiser writes ``DequantizeLinear -> Conv / Gemm / MatMul (+ bias) -> QuantizeLinear``
groups, which onnxruntime executes as integer kernels (QLinearConv / QGemm / QLinearMatMul).
``rewrite(mod)`` finds those groups in the imported Relax module and reproduces that integer arithmetic:

    acc   = sum (x_q - x_zp) * (w_q - w_zp) + b_q                 int32, exact (the accelerator)
    y_q   = saturate(round_half_even(float32(acc) * M[o]) + y_zp)  on the CPU
    M[o]  = float32(float32(x_scale * w_scale[o]) / y_scale)       per output channel (or per tensor)

The accelerator multiplies int8 x int8, so operands are offset into int8: x' = x_q - c with c = 128 for
uint8 activations (0 for int8), padding is applied on the CPU with the value x_zp - c (the real zero), and
the offset's contribution (x_zp - c) * sum(w') is folded into the int32 bias. Weights w' = w_q - w_zp that
leave int8 (uint8 weights, zero-pointed int8) are shifted into it per output channel, w' + d, and d times the
input's window sums is subtracted on the CPU. Groups whose conv the accelerator does not take (dilation)
keep onnxruntime's float QDQ semantics on the CPU. (QLinearConv & co. are lowered by onnx_integer.)

Rounding rules: the int32 sum is exact; requantisation rounds half to even in float32, as onnxruntime's
integer kernels do. onnxruntime's reference execution (DequantizeLinear, float32 conv, QuantizeLinear) sums in
float32, so on large layers an element can round the other way (one step; ResNet-18 at 64x64: 1 in 65,536 in
the first layer, 0.9 % of all intermediate elements after propagation). On AVX2 machines without VNNI its
u8 x s8 kernels sum pairs of products in int16 with saturation (VPMADDUBSW) and differ much more.
"""
from __future__ import annotations

import numpy as np
import tvm
from tvm import relax
from tvm.ir.expr import Constant

_OPS = ("relax.nn.conv2d", "relax.matmul")


def _op(e) -> str | None:
    return getattr(getattr(e, "op", None), "name", None) if isinstance(e, relax.Call) else None


def _const(e) -> np.ndarray | None:
    return e.value.numpy() if isinstance(e, Constant) else None


class _Graph:
    """Var -> bound value for the main function, to walk producers."""

    def __init__(self, func: relax.Function):
        self.value = {}
        for block in func.body.blocks:
            for bd in block.bindings:
                self.value[bd.var] = bd.value

    def resolve(self, e):
        while isinstance(e, relax.Var) and e in self.value:
            e = self.value[e]
        return e

    def dequantize(self, e):
        """(data expr, scale ndarray, zero point ndarray, axis) if ``e`` is a dequantize with constant params."""
        e = self.resolve(e)
        if _op(e) != "relax.dequantize":
            return None
        s, z = _const(e.args[1]), _const(e.args[2])
        if s is None or z is None:
            return None
        return e.args[0], s.astype(np.float32), z.astype(np.int64), int(e.attrs.axis)

    def const_weight(self, e) -> tuple[np.ndarray, np.ndarray] | None:
        """Integer weight (w_q - w_zp, int64) and its float32 scale per output channel, through an optional
        permute_dims (Gemm's transposed weight) of a dequantized constant."""
        e = self.resolve(e)
        perm = False
        if _op(e) == "relax.permute_dims":
            perm = [int(a) for a in e.attrs.axes] if e.attrs.axes is not None else None  # None: reverse
            e = self.resolve(e.args[0])
        dq = self.dequantize(e)
        if dq is None or _const(dq[0]) is None:
            return None
        wq, s, z, axis = dq
        w = _const(wq).astype(np.int64)
        shape = [1] * w.ndim
        if s.size > 1:
            shape[axis] = -1
        w = w - z.reshape(shape) if z.size > 1 else w - z.reshape(())
        s = np.broadcast_to(s.reshape(shape), w.shape) if s.size > 1 else s.reshape(())
        if perm is not False:
            w = np.transpose(w, perm)
            s = np.transpose(s, perm) if s.ndim else s
        return w, s


def _out_scale(w: np.ndarray, s: np.ndarray, conv: bool) -> np.ndarray:
    """The per-output-channel weight scale vector (length O) from a broadcast scale array."""
    if s.ndim == 0:
        return np.full(w.shape[0] if conv else w.shape[-1], s, np.float32)
    return (s[:, 0, 0, 0] if conv else s[0, :]).astype(np.float32)


def rewrite(mod: tvm.IRModule) -> tuple[tvm.IRModule, int]:
    """Integer execution of QDQ conv/matmul groups in ``main``; returns (module, number of groups)."""
    func = mod["main"]
    g = _Graph(func)
    new_blocks, n = [], 0
    for block in func.body.blocks:
        bindings = []
        for bd in block.bindings:
            v = bd.value
            if _op(v) == "relax.quantize":
                r = _integer_group(g, v)
                if r is not None:
                    bd, n = relax.VarBinding(bd.var, r), n + 1
            bindings.append(bd)
        new_blocks.append(relax.DataflowBlock(bindings) if isinstance(block, relax.DataflowBlock)
                          else relax.BindingBlock(bindings))
    if not n:
        return mod, 0
    out = tvm.IRModule({gv: f for gv, f in mod.functions.items() if gv.name_hint != "main"})
    out["main"] = relax.Function(func.params, relax.SeqExpr(new_blocks, func.body.body), func.ret_ty,
                                 attrs=func.attrs)
    out = relax.transform.Normalize()(out)
    return relax.transform.DeadCodeElimination()(out), n


def integer_layers(mod: tvm.IRModule) -> int:
    """conv2d / matmul ops of ``main`` with integer operands: layers the model brought already quantised (e.g.
    QLinearConv, ConvInteger), so its remaining float layers are meant to stay float."""
    n = [0]

    def visit(e):
        if _op(e) in _OPS and str(getattr(e.args[0].ty, "dtype", "")).startswith(("int", "uint")):
            n[0] += 1

    relax.analysis.post_order_visit(mod["main"], visit)
    return n[0]


def _integer_group(g: _Graph, q: relax.Call):
    """The integer replacement of ``quantize(op(dequantize(x), dequantize(w)) [+ bias])``, or None."""
    ys, yz = _const(q.args[1]), _const(q.args[2])
    if ys is None or yz is None or ys.size != 1 or yz.size != 1:
        return None
    y = g.resolve(q.args[0])
    bias = None
    if _op(y) == "relax.add":
        a, b = g.resolve(y.args[0]), g.resolve(y.args[1])
        core, bexpr = (a, b) if _op(a) in _OPS else (b, a)
        bexpr = g.resolve(bexpr)
        if _op(bexpr) == "relax.reshape":
            bexpr = g.resolve(bexpr.args[0])
        bdq = g.dequantize(bexpr)
        if bdq is None or _const(bdq[0]) is None or np.any(bdq[2] != 0):
            return None
        bias, bias_scale = _const(bdq[0]).astype(np.int64).reshape(-1), bdq[1].reshape(-1)
        y = core
    if _op(y) not in _OPS:
        return None
    conv = _op(y) == "relax.nn.conv2d"
    xdq = g.dequantize(y.args[0])
    wts = g.const_weight(y.args[1])
    if xdq is None or xdq[1].size != 1 or xdq[2].size != 1:
        return None
    xq, xs, xz = xdq[0], xdq[1].reshape(()), int(xdq[2].reshape(()))
    if wts is None and not conv and bias is None:  # activation x activation (attention)
        return _activation_matmul(g, xq, xs, xz, y.args[1], ys, yz, str(q.attrs.out_dtype))
    if wts is None:
        return None
    w, wsb = wts
    cp = conv_params(y.attrs) if conv else None
    if str(xq.ty.dtype) not in ("uint8", "int8") or not fits(w, conv) or (conv and cp is None):
        return None  # e.g. w - w_zp does not fit int8, or a dilated conv: stays float QDQ on the CPU
    ws = _out_scale(w, wsb, conv)
    O = ws.size
    if bias is None:
        bias = np.zeros(O, np.int64)
    elif bias.size != O or not np.allclose(bias_scale, xs * ws, rtol=1e-6):
        return None  # a bias not quantised with x_scale * w_scale: not an integer group

    acc = integer_op(xq, xz, w, cp)
    bshape = (1, O, 1, 1) if conv else (O,)
    if np.any(bias != 0):
        acc = relax.op.add(acc, relax.const(bias.astype(np.int32).reshape(bshape)))
    m = (np.float32(xs) * ws).astype(np.float32) / np.float32(ys.reshape(()))
    return _requantize(acc, m.reshape(bshape), yz, 1 if conv else -1, str(q.attrs.out_dtype))


def _requantize(acc, m: np.ndarray, yz: np.ndarray, axis: int, out_dtype: str) -> relax.Expr:
    """saturate(round_half_even(float32(acc) * m) + y_zp): onnxruntime's requantisation, on the CPU."""
    op = relax.op
    scaled = op.multiply(op.astype(acc, "float32"), relax.const(m.astype(np.float32)))
    return op.quantize(scaled, relax.const(np.float32(1.0)), relax.const(yz.reshape(()).astype(yz.dtype)),
                       axis=axis, out_dtype=out_dtype)


def _activation_matmul(g: _Graph, aq, as_, az: int, b, ys, yz, out_dtype: str):
    """quantize(matmul(dequantize(a), dequantize(b))) with both operands activations (per-tensor params):
    sum (a - az)(b - bz) = sum a'b' - oa * colsum(b') - ob * rowsum(a') + K * oa * ob, with a' = a - ca,
    b' = b - cb int8 (c = 128 for uint8) and oa = az - ca, ob = bz - cb; the sums run on the CPU in int32."""
    bdq = g.dequantize(b)
    if bdq is None or bdq[1].size != 1 or bdq[2].size != 1:
        return None
    bq, bs, bz = bdq[0], bdq[1].reshape(()), int(bdq[2].reshape(()))
    try:
        da, db = [int(d) for d in aq.ty.shape], [int(d) for d in bq.ty.shape]
    except (TypeError, AttributeError):
        return None
    if str(aq.ty.dtype) not in ("uint8", "int8") or str(bq.ty.dtype) not in ("uint8", "int8") \
            or len(da) != len(db) or len(da) < 3 or da[:-2] != db[:-2]:
        return None
    op = relax.op

    def offset(q, z):
        c = 128 if str(q.ty.dtype) == "uint8" else 0
        q8 = op.astype(op.subtract(op.astype(q, "int32"), relax.const(c, "int32")), "int8") if c else q
        return q8, z - c

    a8, oa = offset(aq, az)
    b8, ob = offset(bq, bz)
    acc = op.matmul(a8, b8, out_dtype="int32")
    if oa:
        acc = op.subtract(acc, op.multiply(relax.const(oa, "int32"), op.sum(op.astype(b8, "int32"), axis=[-2],
                                                                          keepdims=True)))
    if ob:
        acc = op.subtract(acc, op.multiply(relax.const(ob, "int32"), op.sum(op.astype(a8, "int32"), axis=[-1],
                                                                          keepdims=True)))
    if oa and ob:
        acc = op.add(acc, relax.const(da[-1] * oa * ob, "int32"))
    m = np.float32(np.float32(as_) * np.float32(bs)) / np.float32(ys.reshape(()))
    return _requantize(acc, np.asarray(m, np.float32), yz, -1, out_dtype)


def conv_params(attrs) -> dict | None:
    """strides/padding/groups of a relax conv2d the accelerator takes (NCHW/OIHW, no dilation), else None."""
    if tuple(int(d) for d in attrs.dilation) != (1, 1) or str(attrs.data_layout) != "NCHW" \
            or str(attrs.kernel_layout) != "OIHW":
        return None
    return {"strides": [int(s) for s in attrs.strides], "padding": [int(p) for p in attrs.padding],
            "groups": int(attrs.groups)}


def int8_shift(w: np.ndarray, conv: bool) -> np.ndarray | None:
    """Per output channel d (broadcastable to w, 0 where w already fits) with w + d in int8, or None if a
    channel spans more than 256 values. Output channels: axis 0 of a conv weight, the last axis of a matmul's."""
    axes = tuple(range(1, w.ndim)) if conv else (w.ndim - 2,)
    lo, hi = w.min(axis=axes, keepdims=True), w.max(axis=axes, keepdims=True)
    if np.any(hi - lo > 255):
        return None
    return np.where(hi > 127, 127 - hi, np.where(lo < -128, -128 - lo, 0)).astype(np.int64)


def fits(w: np.ndarray, conv: bool) -> bool:
    """w - w_zp shifts into int8 per output channel (always true for 8-bit weights) and has the rank of a conv
    (OIHW) or matmul (K x N) weight."""
    return w.ndim == (4 if conv else 2) and int8_shift(w, conv) is not None


def integer_op(xq: relax.Expr, xz, w: np.ndarray, conv: dict | None = None) -> relax.Expr:
    """int32 sum (x_q - x_zp) * w as an int8 x int8 conv2d (``conv``: strides, padding, optional dilation and
    groups) or matmul (w: K x N, or batched ... x K x N) the accelerator takes (``offload`` decides per layer).

    x_q (uint8 or int8) is offset to int8 x' = x_q - c (c = 128 for uint8); padding is done on the CPU with
    x_zp - c when that is not 0; the offset's share (x_zp - c) * sum(w) is subtracted as an int32 constant.
    x_zp is an int, or a one-element run-time tensor (DynamicQuantizeLinear; not with padding), whose share is
    subtracted at run time. A weight outside int8 (uint8 weights, or int8 with a zero point) is shifted per
    output channel, w8 = w + d (``int8_shift``), and d times the window (row) sums of x_q - x_zp is subtracted.
    """
    op = relax.op
    d = int8_shift(w, conv is not None)
    if d is None:
        raise ValueError("integer_op: an output channel of the weight spans more than 256 values")
    static = isinstance(xz, (int, np.integer))
    if not static and conv is not None and any(conv["padding"]):
        raise ValueError("integer_op: a run-time input zero point with padding")
    c = 128 if str(xq.ty.dtype) == "uint8" else 0
    xi = op.astype(op.subtract(op.astype(xq, "int32"), relax.const(c, "int32")), "int8") if c else xq
    off = int(xz) - c if static else op.subtract(_zero_point(xz), relax.const(c, "int32"))  # x_q - x_zp = x' - off
    w, w_orig = w.astype(np.int64) + d, w
    w8 = relax.const(w.astype(np.int8))
    if conv is not None:
        pt, pl, pb, pr = pads = conv["padding"]
        if static and off and any(pads):  # pad with the real zero on the CPU, convolve without padding
            xi = op.nn.pad(xi, [0, 0, 0, 0, pt, pb, pl, pr], pad_value=float(off))
            pads = [0, 0, 0, 0]
        acc = op.nn.conv2d(xi, w8, strides=conv["strides"], padding=pads, dilation=conv.get("dilation", 1),
                           groups=conv.get("groups", 1), out_dtype="int32")
        wsum = w.sum(axis=(1, 2, 3)).reshape(1, -1, 1, 1)
    else:
        acc = op.matmul(xi, w8, out_dtype="int32")
        wsum = w.sum(axis=-2, keepdims=w.ndim > 2)
    if not static:
        acc = op.subtract(acc, op.multiply(off, relax.const(wsum.astype(np.int32))))
    elif off:
        acc = op.subtract(acc, relax.const((off * wsum).astype(np.int32)))
    if np.any(d):
        acc = op.subtract(acc, op.multiply(_window_sums(xq, xz, w_orig.shape, conv),
                                           relax.const(d.reshape(d.shape if conv is None else (1, -1, 1, 1))
                                                       .astype(np.int32))))
    return acc


def _zero_point(xz) -> relax.Expr:
    """An int or a one-element tensor zero point as an int32 scalar expression."""
    if isinstance(xz, (int, np.integer)):
        return relax.const(int(xz), "int32")
    return relax.op.reshape(relax.op.astype(xz, "int32"), [])


def _window_sums(xq: relax.Expr, xz, wshape: tuple, conv: dict | None) -> relax.Expr:
    """int32 sums of x_q - x_zp over each output's reduction window (zero padded): (N, O or 1, OH, OW) for a
    conv, (..., M, 1) for a matmul."""
    op = relax.op
    xd = op.subtract(op.astype(xq, "int32"), _zero_point(xz))
    if conv is None:
        return op.sum(xd, axis=[-1], keepdims=True)
    g = int(conv.get("groups", 1))
    n, c, h, w = (int(v) for v in xq.ty.shape)
    xg = op.sum(op.reshape(xd, [n, g, c // g, h, w]), axis=[2])  # channel sums per group, then the window
    ones = relax.const(np.ones((g, 1, wshape[2], wshape[3]), np.int32))
    s = op.nn.conv2d(xg, ones, strides=conv["strides"], padding=conv["padding"], dilation=conv.get("dilation", 1),
                     groups=g, out_dtype="int32")
    return op.repeat(s, wshape[0] // g, axis=1) if g > 1 else s
