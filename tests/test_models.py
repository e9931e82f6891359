"""The built-in models (tvm_codesign/models.py) end to end: PyTorch and ONNX, float -> PTQ int8 on the accelerator
(compared with torch / onnxruntime fp32: cosine similarity, top-1 agreement), and onnxruntime-quantised QDQ models
(compared bit for bit with onnxruntime running the same QDQ graph)."""
import io

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import tvm_codesign as tc
from mac_reference import check_macs, onnx_layers, torch_layers
from tvm_codesign import models

# name -> (constructor, input shape); small widths keep compile time low, the structure is the real one
ZOO = {
    "resnet18": (lambda: models.resnet18(10, width=16), (1, 3, 32, 32)),
    "mobilenet_v2": (lambda: models.mobilenet_v2(10, width=0.35), (1, 3, 32, 32)),
    "transformer_encoder": (lambda: models.transformer_encoder(dim=32, heads=4, ff=64, layers=2), (1, 16, 32)),
    "mlp": (lambda: models.mlp_model(din=64, hidden=64), (4, 64)),
}


def inputs(shape, n, first=0):
    return [np.random.default_rng(first + i).standard_normal(shape).astype(np.float32) for i in range(n)]


def to_onnx(model, shape) -> onnx.ModelProto:
    buf = io.BytesIO()
    torch.onnx.export(model, (torch.as_tensor(inputs(shape, 1)[0]),), buf, input_names=["x"], opset_version=17,
                      dynamo=False)
    return onnx.load_from_string(buf.getvalue())


def agreement(outs, refs):
    cos = min(float((o * r).sum() / np.linalg.norm(o) / np.linalg.norm(r)) for o, r in zip(outs, refs))
    top1 = np.mean([np.array_equal(o.argmax(-1), r.argmax(-1)) for o, r in zip(outs, refs)])
    return cos, top1


@pytest.mark.parametrize("name", sorted(ZOO))
@pytest.mark.parametrize("source", ["pytorch", "onnx"])
def test_zoo_ptq(name, source):
    build, shape = ZOO[name]
    model = build()
    calib, test = inputs(shape, 4), inputs(shape, 6, first=100)
    if source == "pytorch":
        cm = tc.compile(model, "vta_default", calibration=[(x,) for x in calib])
        refs = [model(torch.as_tensor(x)).detach().numpy() for x in test]
    else:
        proto = to_onnx(model, shape)
        cm = tc.compile(proto, "vta_default", input_shapes={"x": list(shape)}, calibration=[(x,) for x in calib])
        sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        refs = [sess.run(None, {"x": x})[0] for x in test]
    cos, top1 = agreement([cm(x) for x in test], refs)
    assert cos > 0.995 and top1 >= 5 / 6, (cos, top1)
    rows = cm.profile()
    acc = [r for r in rows if r["device"] == "accelerator"]
    assert acc and all(r["cycles"] > 0 for r in acc)
    check_macs(cm, torch_layers(model, calib[0]) if source == "pytorch" else onnx_layers(proto))
    assert not any(r["device"] == "cpu" and "conv" in r["op"] for r in rows)  # depthwise convs included


def test_builtin_table():
    assert set(models.BUILTIN) == {"resnet18", "mobilenet_v2", "transformer_encoder", "mlp"}
    m = models.BUILTIN["mobilenet_v2"](10, width=0.35)
    dw = [c for c in m.modules() if isinstance(c, torch.nn.Conv2d) and c.groups > 1]
    assert len(dw) == 17 and all(c.groups == c.in_channels == c.out_channels for c in dw)
    assert models.transformer_encoder()(torch.zeros(2, 8, 64)).shape == (2, 10)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_qdq_bit_exact(name, tmp_path):
    from onnxruntime import quantization as q
    build, shape = ZOO[name]
    model = build()
    onnx.save(to_onnx(model, shape), tmp_path / "f.onnx")

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"x": x} for x in inputs(shape, 4)])

        def get_next(self):
            return next(self.it, None)

    q.quantize_static(str(tmp_path / "f.onnx"), str(tmp_path / "q.onnx"), Reader(), quant_format=q.QuantFormat.QDQ,
                      per_channel=True)
    qdq = onnx.load(tmp_path / "q.onnx")
    cm = tc.compile(qdq, "vta_default")  # no calibration: the model carries its own scales
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the graph's own semantics
    sess = ort.InferenceSession(qdq.SerializeToString(), so, providers=["CPUExecutionProvider"])
    for x in inputs(shape, 3, first=100):
        assert np.array_equal(cm(x), sess.run(None, {"x": x})[0])
    check_macs(cm, onnx_layers(qdq))
    assert not any(r["device"] == "cpu" and "conv" in r["op"] for r in cm.profile())  # depthwise convs included
