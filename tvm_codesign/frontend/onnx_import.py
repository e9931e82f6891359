"""ONNX -> Relax with the quantised operators TVM 0.27 lacks, and errors that name the node.

``import_onnx(model, input_shapes)`` checks the graph first (every op known, every input dim static or
given), then runs TVM's importer with converters for QLinearConv / QLinearMatMul (written as their QDQ
equivalent, which ``onnx_qdq.rewrite`` turns into integer kernels) and ConvInteger / MatMulInteger with a
constant weight (int8-offset conv/matmul the accelerator takes; otherwise int32 ops on the CPU).
"""
from __future__ import annotations

import contextlib

import numpy as np
import onnx
from tvm import relax
from tvm.ir.expr import Constant

from ..errors import CodesignError
from .onnx_qdq import fits, integer_op


class ModelImportError(CodesignError, ValueError):
    """A model that cannot be imported; the message names the node or input."""


def _dq(x, scale, zp, axis):
    if zp is None:
        zp = relax.const(0, str(x.ty.dtype))
    return relax.op.dequantize(x, scale, zp, axis=axis, out_dtype="float32")


def _np(e):
    return e.value.numpy() if isinstance(e, Constant) else None


def _converters():
    import tvm.relax.frontend.onnx.onnx_frontend as OF

    class QLinearConv(OF.OnnxOpConverter):
        @classmethod
        def _impl_v10(cls, bb, inputs, attr, params):
            x, xs, xz, w, ws, wz, ys, yz = inputs[:8]
            b = inputs[8] if len(inputs) > 8 else None
            xf, wf = _dq(x, xs, xz, 1), _dq(w, ws, wz, 0)
            bias = None
            if b is not None:  # int32 bias quantised with x_scale * w_scale (ONNX spec)
                if _np(xs) is None or _np(ws) is None:
                    raise ModelImportError("QLinearConv with a bias needs constant x_scale and w_scale")
                bs = (np.float32(_np(xs)) * _np(ws).astype(np.float32)).reshape(-1).astype(np.float32)
                bias = _dq(b, relax.const(bs if bs.size > 1 else bs.reshape(())), relax.const(0, "int32"), 0)
            y = OF.Conv._impl_v11(bb, [bb.normalize(xf), bb.normalize(wf), None if bias is None else bb.normalize(bias)], attr,
                                  params)
            return relax.op.quantize(y, ys, yz, axis=1, out_dtype=str(x.ty.dtype))

    class QLinearMatMul(OF.OnnxOpConverter):
        @classmethod
        def _impl_v10(cls, bb, inputs, attr, params):
            a, as_, az, b, bs, bz, ys, yz = inputs[:8]
            af = _dq(a, as_, az, 1)
            bf = _dq(b, bs, bz, 1 if _np(bs) is not None and _np(bs).size > 1 else 0)
            y = relax.op.matmul(bb.normalize(af), bb.normalize(bf))
            return relax.op.quantize(y, ys, yz, axis=-1, out_dtype=str(a.ty.dtype))

    class QGemm(OF.OnnxOpConverter):  # com.microsoft QGemm (onnxruntime's QOperator Gemm)
        @classmethod
        def _impl_v1(cls, bb, inputs, attr, params):
            a, as_, az, b, bs, bz = inputs[:6]
            c = inputs[6] if len(inputs) > 6 else None
            ys = inputs[7] if len(inputs) > 7 else None
            yz = inputs[8] if len(inputs) > 8 else None
            if attr.get("transA", 0) or float(attr.get("alpha", 1.0)) != 1.0:
                raise ModelImportError("QGemm with transA or alpha != 1 is not supported")
            tb = int(attr.get("transB", 0))
            bsc = _np(bs)
            af = bb.normalize(_dq(a, as_, az, 1))
            bf = bb.normalize(_dq(b, bs, bz, (0 if tb else 1) if bsc is not None and bsc.size > 1 else 1))
            y = relax.op.matmul(af, bb.normalize(relax.op.permute_dims(bf, [1, 0])) if tb else bf)
            if c is not None:
                if _np(as_) is None or bsc is None:
                    raise ModelImportError("QGemm with a bias needs constant a_scale and b_scale")
                cs = (np.float32(_np(as_)) * bsc.astype(np.float32)).reshape(-1).astype(np.float32)
                y = relax.op.add(bb.normalize(y), bb.normalize(
                    _dq(c, relax.const(cs if cs.size > 1 else cs.reshape(())), relax.const(0, "int32"), 0)))
            if ys is None:
                return y  # float output
            return relax.op.quantize(bb.normalize(y), ys, yz, axis=-1, out_dtype=str(yz.ty.dtype))

    def integer(kind):
        class Integer(OF.OnnxOpConverter):
            @classmethod
            def _impl_v10(cls, bb, inputs, attr, params):
                x, w = inputs[0], inputs[1]
                xz = inputs[2] if len(inputs) > 2 else None
                wz = inputs[3] if len(inputs) > 3 else None
                wc = _np(w)
                xzc = np.zeros(1) if xz is None else _np(xz)
                wzc = np.zeros(1) if wz is None else _np(wz)
                conv = None
                if kind == "conv":
                    dil, grp = list(attr.get("dilations", [1, 1])), int(attr.get("group", 1))
                    pads = list(attr.get("pads", [0, 0, 0, 0]))
                    if dil == [1, 1] and grp == 1 and "auto_pad" not in attr and len(pads) == 4:
                        conv = {"strides": list(attr.get("strides", [1, 1])), "padding": pads}
                if wc is not None and xzc is not None and wzc is not None and xzc.size == 1 \
                        and (kind == "matmul" or conv is not None):
                    wzb = wzc.astype(np.int64).reshape((-1, 1, 1, 1) if kind == "conv" and wzc.size > 1 else -1
                                                        if wzc.size > 1 else ())
                    wi = wc.astype(np.int64) - wzb
                    if fits(wi, kind == "conv"):
                        return integer_op(x, int(xzc.reshape(())), wi, conv)
                xi, wi_ = relax.op.astype(x, "int32"), relax.op.astype(w, "int32")  # otherwise: int32 on the CPU
                if xz is not None:
                    xi = relax.op.subtract(xi, relax.op.astype(xz, "int32"))
                if wz is not None:
                    wi_ = relax.op.subtract(wi_, relax.op.astype(wz, "int32"))
                if kind == "conv":
                    return relax.op.nn.conv2d(xi, wi_, strides=attr.get("strides", 1), padding=attr.get("pads", 0),
                                              dilation=attr.get("dilations", 1), groups=attr.get("group", 1),
                                              out_dtype="int32")
                return relax.op.matmul(xi, wi_, out_dtype="int32")
        return Integer

    return {"QLinearConv": QLinearConv, "QLinearMatMul": QLinearMatMul, "ConvInteger": integer("conv"),
            "MatMulInteger": integer("matmul"), "QGemm": QGemm}


@contextlib.contextmanager
def _extended_convert_map():
    """TVM's from_onnx has no custom_convert_map: patch its table for the duration of one import."""
    import tvm.relax.frontend.onnx.onnx_frontend as OF
    orig = OF._get_convert_map
    extra = _converters()
    OF._get_convert_map = lambda: {**orig(), **extra}
    try:
        yield {**orig(), **extra}
    finally:
        OF._get_convert_map = orig


def import_onnx(model, input_shapes: dict | None = None):
    """An ONNX path or ModelProto -> Relax IRModule; ModelImportError names what cannot be imported."""
    from tvm.relax.frontend.onnx import from_onnx
    if not isinstance(model, onnx.ModelProto):
        try:
            model = onnx.load(str(model))
        except Exception as e:
            raise ModelImportError(f"cannot read an ONNX model from {str(model)!r}: {e}") from e
    g = model.graph
    given = dict(input_shapes or {})
    inits = {t.name for t in g.initializer}
    for inp in g.input:
        if inp.name in inits:
            continue
        unknown = [i for i, d in enumerate(inp.type.tensor_type.shape.dim) if not d.HasField("dim_value")]
        if unknown and inp.name not in given:
            d = inp.type.tensor_type.shape.dim[unknown[0]]
            raise ModelImportError(f"input {inp.name!r} has a dynamic dimension {unknown[0]} "
                                   f"({d.dim_param or '?'}); give it: input_shapes={{{inp.name!r}: [...]}}")
    with _extended_convert_map() as table:
        for node in g.node:
            if node.op_type not in table and node.op_type not in ("Constant", "If"):
                raise ModelImportError(f"ONNX node {node.name or '(unnamed)'!r} uses op {node.op_type!r}, which "
                                       "neither the accelerator nor TVM's CPU importer supports")
        try:
            return from_onnx(model, shape_dict=given or None)
        except Exception as e:
            raise ModelImportError(f"TVM's ONNX importer failed: {e}") from e
