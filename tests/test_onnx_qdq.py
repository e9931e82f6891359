"""Already-quantised ONNX models (onnxruntime's QDQ and QOperator formats, ConvInteger / MatMulInteger) run with
integer kernels on the accelerator and match onnxruntime bit for bit."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper
from onnxruntime import quantization as quant

import tvm_codesign as tc

SHAPE = (1, 3, 8, 8)


class CNN(torch.nn.Module):
    """3x3 pad 1, 3x3 stride 2, 1x1, then Gemm: every group kind the quantiser writes."""

    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.c2 = torch.nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.c3 = torch.nn.Conv2d(32, 24, 1)
        self.fc = torch.nn.Linear(24 * 4 * 4, 10)

    def forward(self, x):
        return self.fc(self.c3(torch.relu(self.c2(torch.relu(self.c1(x))))).flatten(1))


def xs(n, first=0):
    return [np.random.default_rng(first + i).standard_normal(SHAPE).astype(np.float32) for i in range(n)]


@pytest.fixture(scope="module")
def float_onnx(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("qdq") / "f.onnx"
    torch.onnx.export(CNN().eval(), (torch.as_tensor(xs(1)[0]),), str(path), input_names=["x"], opset_version=17,
                      dynamo=False)
    return path


def quantized(float_path, fmt, act, per_channel, weight="QInt8", exclude=()):
    class Reader(quant.CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"x": x} for x in xs(8)])

        def get_next(self):
            return next(self.it, None)

    out = float_path.parent / f"q_{fmt}_{act}_{per_channel}_{weight}_{len(exclude)}.onnx"
    quant.quantize_static(str(float_path), str(out), Reader(), quant_format=getattr(quant.QuantFormat, fmt),
                          per_channel=per_channel, activation_type=getattr(quant.QuantType, act),
                          weight_type=getattr(quant.QuantType, weight), nodes_to_exclude=list(exclude))
    return onnx.load(str(out))


def session(model, reference: bool):
    so = ort.SessionOptions()
    if reference:  # the graph as written: onnxruntime's per-op semantics, no fusion
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("act", ["QUInt8", "QInt8"])
def test_qdq_bit_exact_with_onnxruntime(float_onnx, act, per_channel):
    model = quantized(float_onnx, "QDQ", act, per_channel)
    cm = tc.compile(model, "vta_default")
    assert len(cm.kernels) == 4 and cm.offloaded_mac_fraction == 1.0  # 3 convs + the Gemm, integer, offloaded
    ref = session(model, reference=True)
    for x in xs(4, first=100):
        assert np.array_equal(cm(x), ref.run(None, {"x": x})[0])


@pytest.mark.parametrize("per_channel", [False, True])
def test_qoperator_bit_exact_with_onnxruntime(float_onnx, per_channel):
    """QLinearConv / QGemm with int8 activations: equal to onnxruntime's own integer kernels (default options)."""
    model = quantized(float_onnx, "QOperator", "QInt8", per_channel)
    assert {"QLinearConv", "QGemm"} <= {n.op_type for n in model.graph.node}
    cm = tc.compile(model, "vta_default")
    assert len(cm.kernels) == 4
    sess = session(model, reference=False)
    for x in xs(4, first=100):
        assert np.array_equal(cm(x), sess.run(None, {"x": x})[0])


def test_uint8_qoperator_equals_the_exact_qdq_result(float_onnx):
    """uint8 x int8 QLinearConv: ours equals the QDQ reference of the same quantisation. onnxruntime's own u8 x s8
    kernels on AVX2 (no VNNI) deviate from exact arithmetic, so they are not the reference here."""
    qop = quantized(float_onnx, "QOperator", "QUInt8", False)
    qdq = quantized(float_onnx, "QDQ", "QUInt8", False)
    cm = tc.compile(qop, "vta_default")
    ref = session(qdq, reference=True)
    for x in xs(3, first=100):
        assert np.array_equal(cm(x), ref.run(None, {"x": x})[0])


@pytest.mark.parametrize("fmt,per_channel", [("QDQ", False), ("QOperator", True)])
def test_uint8_weights_on_the_accelerator_bit_exact(float_onnx, fmt, per_channel):
    """uint8 weights with zero points (w - w_zp spans up to 255 values) are shifted into int8 per output channel
    (the shift times the input's window sums is subtracted on the CPU): every layer offloaded, equal to
    onnxruntime's u8 x u8 integer kernels and its reference execution."""
    model = quantized(float_onnx, fmt, "QUInt8", per_channel, weight="QUInt8")
    cm = tc.compile(model, "vta_default")
    assert len(cm.kernels) == 4
    ref, opt = session(model, reference=True), session(model, reference=False)
    for x in xs(3, first=100):
        assert np.array_equal(cm(x), opt.run(None, {"x": x})[0])
        assert np.array_equal(cm(x), ref.run(None, {"x": x})[0])


def test_qoperator_model_keeps_its_float_layers_float(float_onnx):
    """A QOperator model with one layer left float (excluded from quantisation) needs no calibration: the
    quantised layers run as integer kernels, the float Gemm stays float on the CPU."""
    gemm = [n.name for n in onnx.load(str(float_onnx)).graph.node if n.op_type == "Gemm"]
    model = quantized(float_onnx, "QOperator", "QInt8", False, exclude=gemm)
    assert "Gemm" in {n.op_type for n in model.graph.node}
    cm = tc.compile(model, "vta_default")
    assert [k["workload"]["kind"] for k in cm.kernels] == ["conv2d"] * 3
    sess = session(model, reference=False)
    for x in xs(2, first=100):
        assert np.allclose(cm(x), sess.run(None, {"x": x})[0], rtol=1e-5, atol=1e-5)


def integer_graph(op, x_type, x_shape, w, xz, wz=None, **attrs):
    """A one-node ConvInteger / MatMulInteger / QLinearMatMul graph with constant weights."""
    np_type = {TensorProto.UINT8: np.uint8, TensorProto.INT8: np.int8}[x_type]
    inits = [helper.make_tensor("w", TensorProto.INT8, w.shape, w.flatten().tolist()),
             helper.make_tensor("xz", x_type, [], [xz])]
    inputs = ["x", "w", "xz"] + (["wz"] if wz is not None else [])
    if wz is not None:
        inits.append(helper.make_tensor("wz", TensorProto.INT8, [], [wz]))
    node = helper.make_node(op, inputs, ["y"], name="the_node", **attrs)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", x_type, x_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.INT32, None)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), np_type


@pytest.mark.parametrize("x_type,xz", [(TensorProto.UINT8, 131), (TensorProto.INT8, -5), (TensorProto.INT8, 0)])
def test_conv_and_matmul_integer(x_type, xz):
    """Exact int32 results (numpy); equal to onnxruntime too, except its u8 x s8 MatMulInteger, whose AVX2 kernel
    saturates int16 pair sums (VPMADDUBSW) on this machine."""
    rng = np.random.default_rng(1)
    w = rng.integers(-127, 128, (8, 5, 3, 3), dtype=np.int8)
    model, t = integer_graph("ConvInteger", x_type, [1, 5, 7, 7], w, xz, pads=[1, 1, 1, 1], strides=[2, 2])
    cm = tc.compile(model, "vta_default")
    assert [k["workload"]["kind"] for k in cm.kernels] == ["conv2d"]
    x = rng.integers(np.iinfo(t).min, np.iinfo(t).max + 1, (1, 5, 7, 7)).astype(t)
    xp = np.pad(x.astype(np.int64) - xz, ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))[:, :, ::2, ::2]
    exact = np.einsum("nchwij,ocij->nohw", win, w.astype(np.int64))
    assert np.array_equal(cm(x), exact)
    assert np.array_equal(cm(x), session(model, reference=False).run(None, {"x": x})[0])

    wm = rng.integers(-127, 128, (40, 12), dtype=np.int8)
    model, t = integer_graph("MatMulInteger", x_type, [6, 40], wm, xz, wz=0)
    cm = tc.compile(model, "vta_default")
    assert [k["workload"]["kind"] for k in cm.kernels] == ["dense"]
    x = rng.integers(np.iinfo(t).min, np.iinfo(t).max + 1, (6, 40)).astype(t)
    assert np.array_equal(cm(x), (x.astype(np.int64) - xz) @ wm.astype(np.int64))
    if t == np.int8:
        assert np.array_equal(cm(x), session(model, reference=False).run(None, {"x": x})[0])
