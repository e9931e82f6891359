"""compile(precision=, sparsity=) on models the other suites do not show: one-output layers, layers whose integer
requantisation leaves 32 bits, and malformed bit widths.

References: torch fp32 within quantisation tolerance, and TVM's own CPU build (llvm, no offload) of the quantised
Relax graph (bit-exact: the accelerator kernels in the simulator must compute the same integers).
"""
import warnings

import numpy as np
import pytest
import torch
import tvm
from torch import nn
from tvm import relax

import tvm_codesign as tc
from tvm_codesign.hardware import modes as HM
from tvm_codesign.hardware.config import AcceleratorConfig
from tvm_codesign.quantized import _quantized

FLEX4 = HM.flexible(AcceleratorConfig.load("vta_default"), 4, True)


def cpu_build(model, cal, x, **kw) -> np.ndarray:
    """The quantised graph compile runs, built by TVM for the CPU with nothing offloaded."""
    mod = _quantized(model, None, None, cal, kw.get("requant", "alu"), {}, kw.get("precision"), kw.get("sparsity"),
                     kw.get("weight_scales"))
    vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    return vm["main"](tvm.runtime.tensor(x)).numpy()


def fp32(model, x) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


class Head(nn.Module):
    """A regression head: the last layer has one output channel."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(16, 8), nn.Linear(8, 1)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


class SameScales(nn.Module):
    """Convs whose output channels all get the same weight scale (constant-initialised weights)."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 1, 1)
        with torch.no_grad():
            self.c1.weight.fill_(0.25), self.c1.bias.fill_(0.1), self.c2.weight.fill_(-0.5)

    def forward(self, x):
        return self.c2(torch.relu(self.c1(x)))


@pytest.mark.parametrize("net,shape,prec,ws", [
    (Head, (4, 16), "w8a8", None), (Head, (4, 16), {"dense_1": "w4a4"}, None), (Head, (4, 16), "w4a8", "tensor"),
    (SameScales, (2, 1, 5, 7), "w4a4", None), (SameScales, (2, 1, 5, 7), {"conv2d_1": (2, 8)}, None)])
def test_one_multiplier_for_every_channel(net, shape, prec, ws):
    """Per-channel weight scales that give one multiplier for all channels (a single output channel, or equal
    scales) run as one ALU immediate: compiled (was a TypeError from int() of a 1-D array), bit-exact with the
    quantised graph on the CPU and within quantisation error of fp32."""
    m = net().eval()
    rng = np.random.default_rng(0)
    cal = [(rng.standard_normal(shape).astype(np.float32),) for _ in range(4)]
    x = cal[1][0]  # inside the calibrated range (outputs beyond it saturate, as PTQ does)
    kw = dict(precision=prec, weight_scales=ws)
    cm = tc.compile(m, FLEX4, calibration=cal, progress=False, **kw)
    y = cm(x)
    assert np.array_equal(y, cpu_build(m, cal, x, **kw))
    f = fp32(m, x)
    assert np.abs(y - f).max() <= 0.35 * np.abs(f).max()
    assert all(d["kernel"] is not None for d in cm.layer_modes.values())


class TinyInput(nn.Module):
    """Inputs ~1e-7 against biases ~0.1 (a sensor in SI units): the first layer's bias is ~1e10 accumulator
    steps."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.a, self.b = nn.Linear(16, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


class NearlyDead(nn.Module):
    """A ReLU whose calibrated output is 1e-7 against a pre-activation range of 1: (acc + b) * M leaves 32 bits."""

    def __init__(self):
        super().__init__()
        self.c, self.c2 = nn.Conv2d(1, 4, 1), nn.Conv2d(4, 3, 1)
        with torch.no_grad():
            self.c.weight.fill_(1.0), self.c.bias.fill_(-1 + 1e-7)

    def forward(self, x):
        return self.c2(torch.relu(self.c(x)))


@pytest.mark.parametrize("net,shape,prec,layer", [
    (TinyInput, (4, 16), None, "dense_0"), (TinyInput, (4, 16), "w4a8", "dense_0"),
    (NearlyDead, (1, 1, 4, 4), None, "conv2d_0"), (NearlyDead, (1, 1, 4, 4), "w8a8", "conv2d_0")])
def test_requantisation_out_of_int32_range_rescaled_on_cpu(net, shape, prec, layer):
    """A layer whose bias or (accumulator + bias) x multiplier cannot fit the 32-bit epilogue is rescaled in float
    on the CPU with a warning naming it (it used to saturate the bias or wrap the product: outputs far from
    fp32, bit-exact with nothing). The model then matches fp32 within quantisation error."""
    m = net().eval()
    if net is NearlyDead:  # the calibration and the inputs: one ramp over [-1, 1]
        cal = [(np.linspace(-1, 1, 16, dtype=np.float32).reshape(shape),)]
        x = cal[0][0]
    else:
        rng = np.random.default_rng(2)
        cal = [(1e-7 * rng.standard_normal(shape).astype(np.float32),) for _ in range(4)]
        x = cal[1][0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cm = tc.compile(m, FLEX4, calibration=cal, precision=prec, progress=False)
    said = [str(w.message) for w in caught if "requantisation cannot represent" in str(w.message)]
    assert said and said[0].startswith(layer + ":"), said
    y, f = cm(x), fp32(m, x)
    assert np.abs(y - f).max() <= 0.05 * np.abs(f).max(), (y, f)
    assert np.array_equal(y, cpu_build(m, cal, x, precision=prec))
    assert cm.layer_modes[layer]["kernel"] is not None  # the int8 conv / matmul still runs on the accelerator


@pytest.mark.parametrize("bits", [(4.5, 8), (4, 8.0), ("4", "8"), (True, 8), {"w": 4, "a": 8}])
def test_precision_bits_must_be_whole_numbers(bits):
    """(4.5, 8) used to be truncated to w4a8 silently."""
    m = Head().eval()
    cal = [(np.ones((4, 16), np.float32),)]
    with pytest.raises(ValueError, match="precision of dense_0: (bits must be whole numbers|weight bits)"):
        tc.compile(m, calibration=cal, precision={"dense_0": bits}, progress=False)


class MLP(nn.Module):
    """nn.Linear on 2-D inputs: torch.export gives addmm, imported as add(bias, matmul)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.a, self.b, self.c = nn.Linear(12, 9), nn.Linear(9, 7), nn.Linear(7, 4)

    def forward(self, x):
        return self.c(torch.nn.functional.relu6(self.b(torch.relu(self.a(x)))))


@pytest.mark.parametrize("prec", [None, {"dense_1": "w4a4"}])
def test_linear_bias_and_relu_fuse_into_the_kernel(prec):
    """add(bias, matmul) fuses like add(matmul, bias): every layer is one kernel with its bias and ReLU / ReLU6 (the
    bias adds and activations used to run on the CPU in float; the one CPU clip left quantises the input), bit-exact with the CPU build of the same graph."""
    m = MLP().eval()
    rng = np.random.default_rng(4)
    cal = [(rng.standard_normal((5, 12)).astype(np.float32),) for _ in range(4)]
    x = cal[2][0]
    cm = tc.compile(m, FLEX4, calibration=cal, precision=prec, progress=False)
    wls = [k["workload"] for k in cm.kernels]
    assert len(wls) == 3 and all(w["bias"] for w in wls)
    assert sorted(w["clip"][0] for w in wls) == [-128, 0, 0]  # ReLU, ReLU6 (and the plain last layer)
    assert not {"relax.add", "relax.nn.relu"} & set(cm.cpu_ops) and cm.cpu_ops["relax.clip"] == 1, cm.cpu_ops
    y = cm(x)
    assert np.array_equal(y, cpu_build(m, cal, x, precision=prec))
    f = fp32(m, x)
    assert np.abs(y - f).max() <= (0.05 if prec is None else 0.25) * np.abs(f).max()


class Branches(nn.Module):
    """conv2d_0's output is read by conv2d_1, conv2d_2 and the residual add; conv2d_3's only by conv2d_4."""

    def __init__(self, c=16):
        super().__init__()
        torch.manual_seed(0)
        self.c0, self.c1, self.c2 = nn.Conv2d(3, c, 3, 1, 1), nn.Conv2d(c, c, 3, 1, 1), nn.Conv2d(c, c, 1)
        self.c3, self.c4, self.fc = nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 1), nn.Linear(c, 5)

    def forward(self, x):
        x = torch.relu(self.c0(x))
        x = torch.relu(x + torch.relu(self.c1(x)) + torch.relu(self.c2(x)))
        return self.fc(torch.relu(self.c4(torch.relu(self.c3(x)))).mean((2, 3)))


def test_a_narrow_reader_does_not_narrow_a_shared_tensor():
    """conv2d_1 at 4-bit activations: conv2d_0's result, also read by the 8-bit conv2d_2 and the residual add,
    stays 8-bit (its kernel clips to [0, 127]; it used to saturate to conv2d_1's [0, 7], so conv2d_2, reported as
    a8, and the skip connection silently got 4-bit values) and conv2d_1 quantises it again; conv2d_3, read only
    by the 4-bit conv2d_4, still saturates to [0, 7]. Bit-exact with the CPU build of the quantised graph."""
    m = Branches().eval()
    rng = np.random.default_rng(0)
    cal = [(rng.standard_normal((2, 3, 8, 8)).astype(np.float32),) for _ in range(4)]
    prec = {"conv2d_1": "w8a4", "conv2d_4": "w8a4"}
    cm = tc.compile(m, FLEX4, calibration=cal, precision=prec, progress=False)
    clip = {k["name"]: tuple(k["workload"]["clip"]) for k in cm.kernels}
    assert clip[cm.layer_modes["conv2d_0"]["kernel"]] == (0, 127)
    assert clip[cm.layer_modes["conv2d_3"]["kernel"]] == (0, 7)
    assert cm.layer_modes["conv2d_1"]["hw_mode"] == "w8a4" and cm.layer_modes["conv2d_2"]["hw_mode"] == "w8a8"
    x = cal[1][0]
    assert np.array_equal(cm(x), cpu_build(m, cal, x, precision=prec))
    f = fp32(m, x)
    assert np.abs(cm(x) - f).max() <= 0.1 * np.abs(f).max()
