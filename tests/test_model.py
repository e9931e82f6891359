"""Whole models: PyTorch and ONNX float models, post-training quantised, conv/matmul on the accelerator."""
import io

import numpy as np
import onnx
import pytest
import torch

import tvm_codesign as tc


class CNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.c2 = torch.nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.fc = torch.nn.Linear(32 * 4 * 4, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.c2(torch.relu(self.c1(x)))).flatten(1))


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64),
                                       torch.nn.ReLU(), torch.nn.Linear(64, 10))

    def forward(self, x):
        return self.net(x)


def samples(shape, n=8):
    return [np.random.default_rng(i).standard_normal(shape).astype(np.float32) for i in range(n)]


def agreement(cm, model, xs):
    cos, top1 = [], 0
    for x in xs:
        out = cm(x)
        ref = model(torch.as_tensor(x)).detach().numpy()
        cos.append(float((out * ref).sum() / np.linalg.norm(out) / np.linalg.norm(ref)))
        top1 += int(out.argmax() == ref.argmax())
    return min(cos), top1 / len(xs)


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    return CNN().eval()


@pytest.mark.parametrize("cfg", ["vta_default", "vta_batch4"])
def test_pytorch_cnn_ptq(cnn, cfg):
    xs = samples((1, 3, 8, 8))
    cm = tc.compile(cnn, cfg, calibration=[(x,) for x in xs])
    cos, top1 = agreement(cm, cnn, samples((1, 3, 8, 8), 16)[8:])
    assert cos > 0.999 and top1 >= 0.875
    prof = cm.profile()
    acc = [r for r in prof if r["device"] == "accelerator"]
    assert sorted(r["op"] for r in acc) == ["conv2d", "conv2d", "dense"]
    assert all(r["cycles"] > 0 and r["macs"] > 0 and r["energy_uj"] > 0 for r in acc)
    cpu = {r["op"] for r in prof if r["device"] == "cpu"}
    assert "relax.reshape" in cpu and "relax.nn.relu" not in cpu  # ReLU and requantisation run on the ALU
    assert [k["workload"]["out_dtype"] for k in cm.kernels] == ["int8"] * 3  # requantised on the accelerator
    assert "GEMM" in cm.program(acc[0]["name"])


def test_onnx_cnn_ptq(cnn):
    buf = io.BytesIO()
    x0 = samples((1, 3, 8, 8), 1)[0]
    torch.onnx.export(cnn, (torch.as_tensor(x0),), buf, input_names=["x"], opset_version=17, dynamo=False)
    xs = samples((1, 3, 8, 8))
    cm = tc.compile(onnx.load_from_string(buf.getvalue()), "vta_default", input_shapes={"x": [1, 3, 8, 8]},
                    calibration=[(x,) for x in xs])
    cos, top1 = agreement(cm, cnn, xs)
    assert cos > 0.999 and top1 >= 0.875 and len(cm.kernels) == 3
    assert np.array_equal(cm(x=xs[0]), cm(xs[0]))  # named inputs


def test_pytorch_mlp_ptq():
    torch.manual_seed(1)
    mlp = MLP().eval()
    xs = samples((4, 64))
    cm = tc.compile(mlp, "edge_tiny", calibration=[(x,) for x in xs])
    assert [k["workload"]["kind"] for k in cm.kernels] == ["dense"] * 3
    cos, _ = agreement(cm, mlp, xs)
    assert cos > 0.999


def test_errors_say_what_to_do(cnn):
    with pytest.raises(ValueError, match="pass calibration"):
        tc.compile(cnn, "vta_default", example_inputs=(samples((1, 3, 8, 8), 1)[0],))
    with pytest.raises(ValueError, match="example_inputs"):
        tc.compile(cnn, "vta_default")
    with pytest.raises(TypeError, match="cannot compile a dict"):
        tc.compile({"not": "a model"}, "vta_default")
    with pytest.raises(ValueError, match="requant must be"):
        tc.compile(cnn, "vta_default", calibration=samples((1, 3, 8, 8), 1), requant="gpu")


def test_resnet18_ptq_every_conv_and_fc_offloaded():
    from tvm_codesign.models import resnet18
    model = resnet18(10)
    xs = samples((1, 3, 32, 32), 4)
    cm = tc.compile(model, "vta_default", calibration=[(x,) for x in xs])
    cos, top1 = agreement(cm, model, xs)  # per-tensor weights, requantised by the ALU (multiply + shift)
    assert cos > 0.997 and top1 >= 0.75
    assert cm.offloaded_mac_fraction == 1.0
    cpu = tc.compile(model, "vta_default", calibration=[(x,) for x in xs], requant="cpu")
    cos_cpu, _ = agreement(cpu, model, xs)  # per-channel weights, float rescale on the CPU
    assert cos_cpu > 0.999 and {k["workload"]["out_dtype"] for k in cpu.kernels} == {"int32"}
    acc = [r for r in cm.profile() if r["device"] == "accelerator"]
    assert sum(r["calls"] for r in acc) == 21  # 20 convolutions + the classifier
    assert {"relax.nn.max_pool2d", "relax.add"} <= set(cm.cpu_ops)


def test_schedules_pick_a_layers_knobs(cnn):
    xs = samples((1, 3, 8, 8))
    base = tc.compile(cnn, "vta_default", calibration=[(x,) for x in xs])
    conv1 = tc.Workload(**base.kernels[0]["workload"])
    mine = tc.Knobs(tile_h=2, tile_w=8, vthreads=1)
    cm = tc.compile(cnn, "vta_default", calibration=[(x,) for x in xs], schedules={conv1: mine})
    assert np.array_equal(cm(xs[0]), base(xs[0]))  # a schedule changes time, never results
    import json
    picked = [json.loads(str(cm.mod[k["name"]].attrs["tvm_codesign.knobs"])) for k in cm.kernels]
    assert mine.to_dict() in picked
    with pytest.raises(TypeError, match="schedules must be"):
        tc.compile(cnn, "vta_default", calibration=[(x,) for x in xs], schedules=[mine])
