"""ONNX -> Relax with the quantised operators TVM 0.27 lacks, and errors that name the node.

``import_onnx(model, input_shapes)`` checks the graph first (every op known, every input dim static or
given), then runs TVM's importer with converters for QLinearConv, QLinearMatMul, QGemm, ConvInteger and
MatMulInteger: exact integer arithmetic (``onnx_integer``), on the accelerator where the weight allows it.
"""
from __future__ import annotations

import contextlib

import onnx
from tvm import relax

from ..errors import CodesignError
from . import onnx_integer as I


class ModelImportError(CodesignError, ValueError):
    """A model that cannot be imported; the message names the node or input."""


def _converters():
    import tvm.relax.frontend.onnx.onnx_frontend as OF

    def rank(e) -> int:
        return len(e.ty.shape)  # of a normalized input (I._normalized)

    class QLinearConv(OF.OnnxOpConverter):
        @classmethod
        def _impl_v10(cls, bb, inputs, attr, params):
            x, xs, xz, w, ws, wz, ys, yz = I._normalized(bb, *inputs[:8])
            acc = I.conv_sum(bb, x, xz, w, wz, attr)
            if len(inputs) > 8 and inputs[8] is not None:  # int32 bias quantised with x_scale * w_scale (spec)
                acc = I.bias_add(bb, acc, inputs[8], rank(x))
            return I.requantize(bb, acc, xs, ws, ys, yz, str(yz.ty.dtype), [1, -1] + [1] * (rank(x) - 2))

    class QLinearMatMul(OF.OnnxOpConverter):
        @classmethod
        def _impl_v10(cls, bb, inputs, attr, params):
            a, as_, az, b, bs, bz, ys, yz = I._normalized(bb, *inputs[:8])
            acc = I.matmul_sum(bb, a, az, b, bz)  # a's parameters per tensor or per row, b's per column
            return I.requantize(bb, acc, as_, bs, ys, yz, str(yz.ty.dtype), [-1],
                                [-1, 1] if rank(a) >= 2 else None)

    class QGemm(OF.OnnxOpConverter):  # com.microsoft QGemm (onnxruntime's QOperator Gemm)
        @classmethod
        def _impl_v1(cls, bb, inputs, attr, params):
            a, as_, az, b, bs, bz, c, ys, yz = I._normalized(bb, *(list(inputs[:9]) + [None] * 9)[:9])
            if attr.get("transA", 0) or float(attr.get("alpha", 1.0)) != 1.0:
                raise ModelImportError("QGemm with transA or alpha != 1 is not supported")
            if attr.get("transB", 0):
                b = relax.const(I._np(b).T) if I._np(b) is not None else bb.normalize(relax.op.permute_dims(b))
            acc = I.matmul_sum(bb, a, az, b, bz)
            if c is not None:  # int32, quantised with a_scale * b_scale: added to the sum
                acc = relax.op.add(acc, relax.op.astype(c, "int32"))
            if ys is None:  # float output: float32(acc) * float32(a_scale * b_scale)
                return relax.op.multiply(relax.op.astype(acc, "float32"), relax.op.multiply(
                    relax.op.astype(as_, "float32"), relax.op.astype(bs, "float32")))
            return I.requantize(bb, acc, as_, bs, ys, yz, str(yz.ty.dtype), [-1])

    def integer(kind):
        class Integer(OF.OnnxOpConverter):
            @classmethod
            def _impl_v10(cls, bb, inputs, attr, params):
                x, w = inputs[0], inputs[1]
                xz = inputs[2] if len(inputs) > 2 else None
                wz = inputs[3] if len(inputs) > 3 else None
                if kind == "conv":
                    return I.conv_sum(bb, x, xz, w, wz, attr)
                return I.matmul_sum(bb, x, xz, w, wz)
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
