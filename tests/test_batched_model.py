"""A model compiled with a batch N above the config's batch runs each conv/dense kernel compiled for one image
group (cfg.batch images) over all groups in one batched simulator pass: bit-exact with onnxruntime's integer
reference and with per-image runs, odd N (a last partial group zero-padded), honest per-call stats."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnxruntime import quantization as quant

import tvm_codesign as tc
from tvm_codesign.runtime import entry


class ResNetStyle(torch.nn.Module):
    """Stem conv, a residual block (3x3, 3x3 + identity), a strided 1x1 downsample, global pool, dense."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.a, self.b = torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.Conv2d(16, 16, 3, padding=1)
        self.down = torch.nn.Conv2d(16, 32, 1, stride=2)
        self.fc = torch.nn.Linear(32, 10)

    def forward(self, x):
        y = torch.relu(self.stem(x))
        y = torch.relu(y + self.b(torch.relu(self.a(y))))
        return self.fc(torch.relu(self.down(y)).mean((2, 3)))


def xs(n, batch, first=0):
    return [np.random.default_rng(first + i).standard_normal((batch, 3, 8, 8)).astype(np.float32) for i in range(n)]


@pytest.fixture(scope="module")
def qdq(tmp_path_factory):
    """The model quantised by onnxruntime (QDQ, int8), with a dynamic batch axis."""
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("batched")
    torch.onnx.export(ResNetStyle().eval(), (torch.as_tensor(xs(1, 1)[0]),), str(d / "f.onnx"), input_names=["x"],
                      dynamic_axes={"x": {0: "n"}}, opset_version=17, dynamo=False)

    class Reader(quant.CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"x": x} for x in xs(8, 1)])

        def get_next(self):
            return next(self.it, None)

    quant.quantize_static(str(d / "f.onnx"), str(d / "q.onnx"), Reader(), quant_format=quant.QuantFormat.QDQ,
                          activation_type=quant.QuantType.QInt8, weight_type=quant.QuantType.QInt8)
    return onnx.load(str(d / "q.onnx"))


def reference(model):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # onnxruntime's per-op semantics
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("cfg,n", [("vta_default", 3), ("vta_default", 5), ("vta_batch4", 5), ("vta_batch4", 8)])
def test_batched_model_bit_exact_with_onnxruntime_and_per_image(qdq, cfg, n):
    cm = tc.compile(qdq, cfg, input_shapes={"x": [n, 3, 8, 8]}, progress=False)
    one = tc.compile(qdq, cfg, input_shapes={"x": [1, 3, 8, 8]}, progress=False)
    config = tc.AcceleratorConfig.load(cfg)
    groups = -(-n // config.batch)
    assert len(cm.kernels) == 4 and sum(cm.calls.values()) == 5 and all(k["workload"]["n"] == groups * config.batch for k in cm.kernels)
    ref = reference(qdq)
    for x in xs(2, n, first=100):
        y = cm(x)
        assert np.array_equal(y, ref.run(None, {"x": x})[0])
        assert np.array_equal(y, np.concatenate([one(x[i:i + 1]) for i in range(n)]))
    # stats: the groups run one after another, each the one-group program
    for row in cm.profile().rows:
        if row["device"] == "accelerator":
            assert entry.BY_NAME[row["name"]].meta["workload"]["n"] == config.batch  # the program: one group
            assert row["cycles"] == groups * entry.BY_NAME[row["name"]].time().cycles
            assert row["dram_bytes"] == groups * entry.BY_NAME[row["name"]].time().dram_bytes


def test_saved_batched_model_loads_and_runs(qdq, tmp_path):
    cm = tc.compile(qdq, "vta_default", input_shapes={"x": [3, 3, 8, 8]}, progress=False)
    x = xs(1, 3, first=7)[0]
    want = cm(x)
    cm.save(tmp_path / "m")
    assert np.array_equal(tc.load(tmp_path / "m")(x), want)
