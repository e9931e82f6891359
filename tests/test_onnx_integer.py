"""QLinearConv / QLinearMatMul / QGemm / ConvInteger / MatMulInteger in the general case (uint8 or zero-pointed
weights, per-channel and per-row parameters, groups, dilation, auto_pad, bias, parameters as graph inputs) are
exact: the int32 sum equals ONNX's reference (or numpy), the requantisation is onnxruntime's
saturate(round_half_even(float32(acc) * float32(float32(x_scale * w_scale) / y_scale)) + y_zp), and int8 x int8
results equal onnxruntime's integer kernels."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import tvm_codesign as tc
from tvm_codesign.frontend.onnx_import import ModelImportError

T = {np.uint8: TensorProto.UINT8, np.int8: TensorProto.INT8, np.int32: TensorProto.INT32,
     np.float32: TensorProto.FLOAT}


def rand8(rng, t, shape):
    return rng.integers(np.iinfo(t).min, np.iinfo(t).max + 1, shape).astype(t)


def model(op, values: dict, graph_inputs: list, out_type, domain="", **attrs):
    """A one-node model: ``values`` (name -> array, in the op's input order) are initializers unless named in
    ``graph_inputs``."""
    node = helper.make_node(op, list(values), ["y"], domain=domain, **attrs)
    inputs = [helper.make_tensor_value_info(n, T[values[n].dtype.type], values[n].shape) for n in graph_inputs]
    inits = [numpy_helper.from_array(v, n) for n, v in values.items() if n not in graph_inputs]
    g = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("y", out_type, None)], inits)
    opsets = [helper.make_opsetid("", 21)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(g, opset_imports=opsets, ir_version=10)


def requantized(acc, m, yz):
    """onnxruntime's requantisation of an exact int32 sum (``m`` the float32 multiplier, broadcastable)."""
    y = np.rint(acc.astype(np.float32) * m) + yz.astype(np.float32)
    info = np.iinfo(yz.dtype)
    return np.clip(y, info.min, info.max).astype(yz.dtype)


def multiplier(xs, ws, ys):
    return ((xs.astype(np.float32) * ws.astype(np.float32)).astype(np.float32) / ys.astype(np.float32)).astype(
        np.float32)


CONVS = [  # x type, w type, per-channel, conv attributes
    (np.uint8, np.uint8, False, dict(pads=[1, 1, 1, 1])),
    (np.uint8, np.int8, True, dict(pads=[1, 1, 1, 1], strides=[2, 2])),
    (np.int8, np.int8, True, dict(pads=[0, 1, 2, 1])),
    (np.int8, np.uint8, True, dict(auto_pad="SAME_UPPER", strides=[2, 2])),
    (np.uint8, np.int8, True, dict(group=2, pads=[1, 1, 1, 1])),
    (np.int8, np.int8, False, dict(dilations=[2, 2], pads=[2, 2, 2, 2])),
]


@pytest.mark.parametrize("consts", [True, False], ids=["constant", "graph-input"])
@pytest.mark.parametrize("xt,wt,per_channel,attrs", CONVS)
def test_qlinearconv_exact(xt, wt, per_channel, attrs, consts):
    rng = np.random.default_rng(len(str(attrs)) + per_channel)
    O, C, g = 12, 8, attrs.get("group", 1)
    x, w = rand8(rng, xt, (2, C, 9, 9)), rand8(rng, wt, (O, C // g, 3, 3))
    xz = np.array(rng.integers(0, 40) if xt == np.uint8 else -7, xt)
    wz = (rand8(rng, wt, (O,)) if per_channel else np.array(np.iinfo(wt).max // 2 + 5, wt))
    xs, ys = np.array(0.02, np.float32), np.array(0.9, np.float32)
    ws = (rng.uniform(0.002, 0.02, O) if per_channel else np.array(0.01)).astype(np.float32)
    yz = np.array(3 if xt == np.uint8 else -2, xt)
    b = rng.integers(-3000, 3000, O).astype(np.int32)
    vals = dict(x=x, xs=xs, xz=xz, w=w, ws=ws, wz=wz, ys=ys, yz=yz, b=b)
    m = model("QLinearConv", vals, list(vals) if not consts else ["x"], T[xt], **attrs)
    cm = tc.compile(m, "vta_default")
    y = cm(*([vals[n] for n in vals] if not consts else [x]))

    acc = ReferenceEvaluator(model("ConvInteger", dict(x=x, w=w, xz=xz, wz=wz), ["x", "w", "xz", "wz"],
                                   TensorProto.INT32, **attrs)).run(None, dict(x=x, w=w, xz=xz, wz=wz))[0]
    acc = acc.astype(np.int64) + b.reshape(1, -1, 1, 1)
    ref = requantized(acc, multiplier(xs, ws, ys).reshape(1, -1, 1, 1) if per_channel else multiplier(xs, ws, ys), yz)
    assert y.dtype == ref.dtype and np.array_equal(y, ref)
    if consts and g == 1 and "dilations" not in attrs and attrs.get("pads", [0])[:2] == attrs.get("pads", [0])[2:]:
        assert [k["workload"]["kind"] for k in cm.kernels] == ["conv2d"]
    if xt == wt == np.int8:  # onnxruntime's s8 x s8 kernels are exact
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        assert np.array_equal(y, sess.run(None, {n: vals[n] for n in ([*vals] if not consts else ["x"])})[0])


@pytest.mark.parametrize("consts", [True, False], ids=["constant", "graph-input"])
@pytest.mark.parametrize("at,bt,a_shape,b_shape", [
    (np.uint8, np.uint8, (5, 40), (40, 24)),
    (np.int8, np.int8, (5, 40), (40, 24)),
    (np.int8, np.uint8, (3, 5, 40), (3, 40, 24)),
])
def test_qlinearmatmul_exact(at, bt, a_shape, b_shape, consts):
    """Per-column b parameters; a per row when it is a graph input (the per-row zero point runs on the CPU)."""
    rng = np.random.default_rng(a_shape[-2] + len(b_shape))
    a, b = rand8(rng, at, a_shape), rand8(rng, bt, b_shape)
    rows = a_shape[-2]
    per_row = not consts and len(a_shape) == 2
    az = (rand8(rng, at, (rows,)) if per_row else np.array([5], at))
    as_ = (rng.uniform(0.01, 0.03, rows) if per_row else np.array([0.02])).astype(np.float32)
    bz, bs = rand8(rng, bt, (b_shape[-1],)), rng.uniform(0.002, 0.01, b_shape[-1]).astype(np.float32)
    ys, yz = np.array([0.3], np.float32), np.array([-4 if at == np.int8 else 120], at)
    vals = dict(a=a, as_=as_, az=az, b=b, bs=bs, bz=bz, ys=ys, yz=yz)
    m = model("QLinearMatMul", vals, list(vals) if not consts else ["a"], T[at])
    cm = tc.compile(m, "vta_default")
    y = cm(*([vals[n] for n in vals] if not consts else [a]))
    rshape = (-1, 1) if per_row else (1, 1)
    acc = (a.astype(np.int64) - az.astype(np.int64).reshape(rshape)) @ (b.astype(np.int64) - bz.astype(np.int64))
    ref = requantized(acc, multiplier(as_.reshape(rshape), bs, ys), yz)
    assert np.array_equal(y, ref)
    if consts:
        assert [k["workload"]["kind"] for k in cm.kernels] == ["dense" if len(a_shape) == 2 else "batch_matmul"]


@pytest.mark.parametrize("consts", [True, False], ids=["constant", "graph-input"])
def test_conv_and_matmul_integer_per_channel_zero_points(consts):
    rng = np.random.default_rng(7)
    x, w, xz, wz = rand8(rng, np.uint8, (1, 6, 8, 8)), rand8(rng, np.uint8, (10, 6, 3, 3)), np.array(9, np.uint8), \
        rand8(rng, np.uint8, (10,))
    vals = dict(x=x, w=w, xz=xz, wz=wz)
    m = model("ConvInteger", vals, list(vals) if not consts else ["x"], TensorProto.INT32, pads=[1, 2, 1, 0])
    y = tc.compile(m, "vta_default")(*([x, w, xz, wz] if not consts else [x]))
    ref = ReferenceEvaluator(model("ConvInteger", vals, list(vals), TensorProto.INT32, pads=[1, 2, 1, 0])).run(
        None, vals)[0]
    assert np.array_equal(y, ref)

    a, b = rand8(rng, np.int8, (6, 30)), rand8(rng, np.uint8, (30, 9))
    az, bz = rand8(rng, np.int8, (6,)), rand8(rng, np.uint8, (9,))  # a per row, b per column
    vals = dict(a=a, b=b, az=az, bz=bz)
    m = model("MatMulInteger", vals, list(vals) if not consts else ["a", "az"], TensorProto.INT32)
    y = tc.compile(m, "vta_default")(*([a, b, az, bz] if not consts else [a, az]))
    assert np.array_equal(y, (a.astype(np.int64) - az.reshape(-1, 1)) @ (b.astype(np.int64) - bz))


@pytest.mark.parametrize("float_out", [False, True])
def test_qgemm_exact(float_out):
    """com.microsoft QGemm with transB, an int32 bias and uint8 weights with per-column zero points."""
    rng = np.random.default_rng(3)
    a, b = rand8(rng, np.int8, (4, 32)), rand8(rng, np.uint8, (20, 32))  # transB: b is N x K
    az, bz = np.array(-3, np.int8), rand8(rng, np.uint8, (20,))
    as_, bs = np.array(0.05, np.float32), rng.uniform(0.001, 0.01, 20).astype(np.float32)
    c = rng.integers(-500, 500, 20).astype(np.int32)
    vals = dict(a=a, as_=as_, az=az, b=b, bs=bs, bz=bz, c=c)
    if not float_out:
        vals.update(ys=np.array(0.2, np.float32), yz=np.array(1, np.int8))
    m = model("QGemm", vals, ["a"], TensorProto.FLOAT if float_out else TensorProto.INT8, domain="com.microsoft",
              transB=1)
    cm = tc.compile(m, "vta_default")
    y = cm(a)
    acc = (a.astype(np.int64) - az) @ (b.astype(np.int64) - bz.reshape(-1, 1)).T + c
    if float_out:
        ref = acc.astype(np.float32) * (as_ * bs).astype(np.float32)
    else:
        ref = requantized(acc, multiplier(as_, bs, vals["ys"]), vals["yz"])
    assert y.dtype == ref.dtype and np.array_equal(y, ref)
    assert [k["workload"]["kind"] for k in cm.kernels] == ["dense"]


def test_non_scalar_output_zero_point_is_refused():
    rng = np.random.default_rng(0)
    vals = dict(a=rand8(rng, np.int8, (2, 4)), as_=np.array(0.1, np.float32), az=np.array(0, np.int8),
                b=rand8(rng, np.int8, (4, 3)), bs=np.array(0.1, np.float32), bz=np.array(0, np.int8),
                ys=np.array([0.1, 0.2], np.float32), yz=np.array([0, 0], np.int8))
    with pytest.raises(ModelImportError, match="y_scale must be a single value"):
        tc.compile(model("QLinearMatMul", vals, ["a"], TensorProto.INT8), "vta_default")


@pytest.mark.parametrize("weight", ["QInt8", "QUInt8"])
def test_dynamic_quantisation_on_the_accelerator(weight, tmp_path):
    """onnxruntime's quantize_dynamic (DynamicQuantizeLinear -> MatMulInteger, the activation's zero point computed
    at run time): every MatMulInteger runs on the accelerator, equal to onnxruntime."""
    import torch
    from onnxruntime import quantization as q

    from tvm_codesign import models
    torch.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((4, 64)).astype(np.float32)
    torch.onnx.export(models.mlp_model(din=64, hidden=64), (torch.as_tensor(x),), str(tmp_path / "f.onnx"),
                      input_names=["x"], opset_version=17, dynamo=False)
    q.quantize_dynamic(str(tmp_path / "f.onnx"), str(tmp_path / "q.onnx"), weight_type=getattr(q.QuantType, weight))
    m = onnx.load(str(tmp_path / "q.onnx"))
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= {n.op_type for n in m.graph.node}
    cm = tc.compile(m, "vta_default")
    assert "relax.matmul" not in cm.cpu_ops and sum(cm.calls[k["name"]] for k in cm.kernels) == 3
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    for i in range(3):
        xi = np.random.default_rng(10 + i).standard_normal((4, 64)).astype(np.float32)
        assert np.array_equal(cm(xi), sess.run(None, {"x": xi})[0])
