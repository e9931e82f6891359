"""A model compiled with a batch N above the config's batch runs each conv2d kernel compiled for one image group
(cfg.batch images) over all groups in one batched simulator pass; dense layers stay one program for the call
(``batch_programs="whole"``: every layer one program). Bit-exact with onnxruntime's integer reference, with
per-image runs and with a numpy interpreter of the quantised graph (packed sub-byte modes too), odd N (a last
partial group zero-padded), honest per-call stats."""
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
    assert len(cm.kernels) == 4 and sum(cm.calls.values()) == 5
    convs = [k for k in cm.kernels if k["workload"]["kind"] == "conv2d"]
    dense = [k for k in cm.kernels if k["workload"]["kind"] == "dense"]
    assert len(convs) == 3 and len(dense) == 1
    assert all(k["workload"]["n"] == groups * config.batch and k["image_groups"] == groups for k in convs)
    assert dense[0]["workload"]["n"] == n and dense[0]["image_groups"] == 1  # one program: weights loaded once
    ref = reference(qdq)
    for x in xs(2, n, first=100):
        y = cm(x)
        assert np.array_equal(y, ref.run(None, {"x": x})[0])
        assert np.array_equal(y, np.concatenate([one(x[i:i + 1]) for i in range(n)]))
    # stats: the groups run one after another, each the one-group program
    for row in cm.profile().rows:
        if row["device"] == "accelerator" and row["op"] == "conv2d":
            program = entry.BY_NAME[row["name"]]
            assert program.meta["workload"]["n"] == config.batch  # the program: one group
            assert row["cycles"] == groups * program.time().cycles
            assert row["dram_bytes"] == groups * program.time().dram_bytes
        elif row["device"] == "accelerator":
            assert row["cycles"] == entry.BY_NAME[row["name"]].time().cycles


def test_whole_batch_programs_and_the_option_error(qdq):
    """batch_programs="whole": one program per layer for all N images, the same outputs as the default's groups,
    fewer simulated cycles (weights reused across images). A bad value is refused, naming the choices."""
    n = 3
    whole = tc.compile(qdq, "vta_default", input_shapes={"x": [n, 3, 8, 8]}, progress=False, batch_programs="whole")
    per = tc.compile(qdq, "vta_default", input_shapes={"x": [n, 3, 8, 8]}, progress=False)
    assert all(k["image_groups"] == 1 and k["workload"]["n"] == n for k in whole.kernels)
    x = xs(1, n, first=300)[0]
    y = whole(x)
    assert np.array_equal(y, reference(qdq).run(None, {"x": x})[0]) and np.array_equal(y, per(x))
    cycles = lambda cm: sum(r["cycles"] * r["calls"] for r in cm.profile().rows if r["device"] == "accelerator")
    assert cycles(whole) < cycles(per)
    with pytest.raises(ValueError, match="batch_programs must be 'per_image' .* or 'whole'.*got 'images'"):
        tc.compile(qdq, "vta_default", input_shapes={"x": [n, 3, 8, 8]}, progress=False, batch_programs="images")


def test_schedules_for_the_reported_workloads_are_used(qdq):
    """Schedules keyed by the workloads compile reports (and tune tunes: the whole batch) are used: each such conv
    is compiled as that one whole-batch program, as it was tuned; outputs unchanged."""
    from tvm_codesign.schedules.knobs import default
    from tvm_codesign.tuner.workloads import from_records
    n, cfg = 3, tc.AcceleratorConfig.load("vta_default")
    per = tc.compile(qdq, cfg, input_shapes={"x": [n, 3, 8, 8]}, progress=False)
    wls = [ly.workload for ly in from_records([{"workload": k["workload"]} for k in per.kernels])]
    assert all(wl.n == n for wl in wls)
    given = tc.compile(qdq, cfg, input_shapes={"x": [n, 3, 8, 8]}, progress=False,
                       schedules={wl: default(wl, cfg) for wl in wls})
    assert set(given.schedule_counts()) == {"user"}
    assert all(k["image_groups"] == 1 for k in given.kernels)
    x = xs(1, n, first=400)[0]
    assert np.array_equal(given(x), per(x))


class Tokens(torch.nn.Module):
    """Dense layers on (N, T, K) activations: rows are tokens."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(16, 32), torch.nn.Linear(32, 8)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def test_dense_on_tokens_stays_one_program():
    """A dense whose rows are N x T tokens is one program for the call (split per image, each image's rows would
    reload the weights): bit-exact with per-image calls and a numpy interpreter of the quantised graph."""
    from test_precision_options import interpret

    from tvm_codesign import model as Mdl
    from tvm_codesign.frontend import quantize as Q
    torch.manual_seed(0)
    net, n = Tokens().eval(), 5
    cal = [np.random.default_rng(i).standard_normal((1, 6, 16)).astype(np.float32) for i in range(4)]
    cm = tc.compile(net, "vta_default", example_inputs=(torch.zeros(n, 6, 16),),
                    calibration=[(np.concatenate([c] * n),) for c in cal], progress=False)
    one = tc.compile(net, "vta_default", example_inputs=(torch.zeros(1, 6, 16),), calibration=[(c,) for c in cal],
                     progress=False)
    assert [(k["workload"]["n"], k["image_groups"]) for k in cm.kernels] == [(n * 6, 1), (n * 6, 1)]
    graph = Q._main(Mdl._quantized(net, None, (torch.zeros(n, 6, 16),), [(np.concatenate([c] * n),) for c in cal],
                                   "alu"))
    x = np.random.default_rng(9).standard_normal((n, 6, 16)).astype(np.float32)
    y = cm(x)
    assert np.array_equal(y, np.concatenate([one(x[i:i + 1]) for i in range(n)]))
    assert np.array_equal(y, interpret(graph, x))


def test_packed_mode_batched():
    """w4a4 on a 4-bit core at N = 3: each conv's packed inputs of every image are decoded in the one batched
    pass (weights packed once); equal to per-image calls, to the int8 core and to the numpy interpreter."""
    from test_precision_options import Small, interpret

    from tvm_codesign import model as Mdl
    from tvm_codesign.frontend import quantize as Q
    from tvm_codesign.hardware import modes as M
    hw = M.flexible(tc.AcceleratorConfig.load("vta_default"), 4, False)
    torch.manual_seed(0)
    net, n = Small().eval(), 3
    cal1 = [np.random.default_rng(i).standard_normal((1, 1, 8, 8)).astype(np.float32) for i in range(8)]
    cal = [(np.concatenate([c] * n),) for c in cal1]
    xn = torch.zeros(n, 1, 8, 8)
    cm = tc.compile(net, hw, example_inputs=(xn,), calibration=cal, precision="w4a4", progress=False)
    one = tc.compile(net, hw, example_inputs=(torch.zeros(1, 1, 8, 8),), calibration=[(c,) for c in cal1],
                     precision="w4a4", progress=False)
    int8 = tc.compile(net, "vta_default", example_inputs=(xn,), calibration=cal, precision="w4a4", progress=False)
    convs = [k for k in cm.kernels if k["workload"]["kind"] == "conv2d"]
    assert convs and all(k["image_groups"] == n and k["mode"] == "w4a4" for k in convs)
    assert {d["hw_mode"] for d in cm.layer_modes.values()} == {"w4a4"}
    graph = Q._main(Mdl._quantized(net, None, (xn,), cal, "alu", {}, "w4a4", None, None))
    for seed in (1, 2):
        x = np.random.default_rng(seed).standard_normal((n, 1, 8, 8)).astype(np.float32)
        y = cm(x)
        assert np.array_equal(y, np.concatenate([one(x[i:i + 1]) for i in range(n)]))
        assert np.array_equal(y, int8(x))
        assert np.array_equal(y, interpret(graph, x))


def test_saved_batched_model_loads_and_runs(qdq, tmp_path):
    cm = tc.compile(qdq, "vta_default", input_shapes={"x": [3, 3, 8, 8]}, progress=False)
    x = xs(1, 3, first=7)[0]
    want = cm(x)
    cm.save(tmp_path / "m")
    assert np.array_equal(tc.load(tmp_path / "m")(x), want)
