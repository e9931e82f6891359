"""MAC counting (frontend/macs.py, CompiledModel.offloaded_mac_fraction): every conv / transposed conv / matmul /
einsum / attention counts, wherever it runs, against MACs computed independently (torch forward hooks, the ONNX
graph's inferred shapes)."""
import io

import numpy as np
import onnx
import pytest
import torch
import tvm
from torch import nn
from tvm import relax

import tvm_codesign as tc
from tvm_codesign.frontend import macs
from mac_reference import check_macs, onnx_layers, torch_layers


class Mixed(nn.Module):
    """conv1d, transposed 1-d and 2-d convs, a grouped dilated conv2d, conv3d, einsum, attention, Linear."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(4, 8, 3, padding=1)
        self.c1t = nn.ConvTranspose1d(8, 6, 4, stride=2, padding=1)
        self.c2 = nn.Conv2d(6, 12, 3, padding=2, dilation=2, groups=3)
        self.c2t = nn.ConvTranspose2d(12, 8, 3, stride=2, padding=1, output_padding=1, groups=2)
        self.c3 = nn.Conv3d(8, 4, (1, 3, 3), padding=(0, 1, 1))
        self.dense = nn.Conv2d(4, 16, 1)
        self.fc = nn.Linear(16 * 8 * 8, 5)

    def forward(self, x):  # (1, 4, 16)
        y = self.c1t(torch.relu(self.c1(x)))  # (1, 6, 32)
        y = self.c2t(self.c2(y.reshape(1, 6, 4, 8)))  # (1, 8, 8, 16)
        y = self.c3(y.reshape(1, 8, 2, 8, 8)).mean(2)  # (1, 4, 8, 8)
        y = torch.relu(self.dense(y))  # groups 1: the accelerator's
        e = torch.einsum("bcij,bcjk->bcik", y, y)
        a = nn.functional.scaled_dot_product_attention(y, y, y)
        return self.fc((e + a).flatten(1))


def _inputs(n, shape=(1, 4, 16)):
    return [np.random.default_rng(i).standard_normal(shape).astype(np.float32) for i in range(n)]


@pytest.fixture(scope="module")
def mixed():
    torch.manual_seed(0)
    return Mixed().eval()


def test_every_mac_bearing_layer_counts_against_torch_hooks(mixed):
    xs = _inputs(4)
    cm = tc.compile(mixed, "vta_default", calibration=[(x,) for x in xs])
    check_macs(cm, torch_layers(mixed, xs[0]))
    cpu = {r["op"] for r in cm.profile() if r["device"] == "cpu" and r["macs"]}
    assert {"relax.nn.conv1d", "relax.nn.conv1d_transpose", "relax.nn.conv2d_transpose", "relax.nn.conv3d"} <= cpu
    assert 0 < cm.offloaded_mac_fraction < 1


def test_every_mac_bearing_layer_counts_against_onnx_shapes(mixed):
    buf = io.BytesIO()
    xs = _inputs(4)
    torch.onnx.export(mixed, (torch.as_tensor(xs[0]),), buf, input_names=["x"], opset_version=17, dynamo=False)
    proto = onnx.load_from_string(buf.getvalue())
    cm = tc.compile(proto, "vta_default", calibration=[(x,) for x in xs])
    check_macs(cm, onnx_layers(proto))


def test_depthwise_counted_once_per_group():
    """A depthwise conv does (C/groups) x k x k = k x k MACs per output, not divided by groups again."""
    m = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1, groups=32),
                      nn.ReLU(), nn.Conv2d(32, 16, 1)).eval()
    xs = _inputs(2, (1, 3, 8, 8))
    cm = tc.compile(m, "vta_default", calibration=[(x,) for x in xs])
    ref = torch_layers(m, xs[0])
    assert [v for _, v in ref] == [8 * 8 * 32 * 3 * 9, 8 * 8 * 32 * 9, 8 * 8 * 16 * 32]
    check_macs(cm, ref)


def _call(op, *shapes, **attrs):
    args = [relax.Var(f"a{i}", relax.TensorType(s, "float32")) for i, s in enumerate(shapes)]
    bb = relax.BlockBuilder()
    with bb.function("main", args):
        out = bb.emit(op(*args, **attrs) if op is not relax.op.einsum else op(args, **attrs))
        bb.emit_func_output(out)
    return bb.get()["main"].body.blocks[0].bindings[0].value


@pytest.mark.parametrize("op,shapes,attrs,expected", [
    (relax.op.matmul, [(5, 1, 3, 4), (2, 4, 6)], {}, 5 * 2 * 3 * 6 * 4),  # broadcast batch dims
    (relax.op.matmul, [(4,), (4, 6)], {}, 6 * 4),  # a vector
    (relax.op.einsum, [(2, 3), (3, 4)], {"subscripts": "ij,jk->ik"}, 2 * 3 * 4),
    (relax.op.einsum, [(7, 2, 3), (3, 4)], {"subscripts": "...ij,jk->...ik"}, 7 * 2 * 3 * 4),
    (relax.op.einsum, [(4, 4)], {"subscripts": "ii->i"}, 0),  # a diagonal: no products
    (relax.op.nn.attention, [(2, 5, 3, 8), (2, 7, 3, 8), (2, 7, 3, 6)], {}, 2 * 3 * 5 * 7 * (8 + 6)),
    (relax.op.nn.conv2d, [(1, 8, 9, 9), (8, 2, 3, 3)], {"groups": 4, "dilation": 2}, 8 * 5 * 5 * 2 * 9),
    (relax.op.nn.conv2d_transpose, [(1, 8, 5, 5), (8, 3, 3, 3)], {"groups": 2, "strides": 2},
     8 * 5 * 5 * 3 * 9),
    (relax.op.nn.conv1d, [(2, 4, 10), (6, 4, 3)], {}, 2 * 6 * 8 * 4 * 3),
])
def test_macs_of_relax_ops(op, shapes, attrs, expected):
    assert macs.macs(_call(op, *shapes, **attrs)) == expected


def test_dynamic_shapes_are_not_guessed():
    n = tvm.tirx.Var("n", "int64")
    x = relax.Var("x", relax.TensorType((n, 4), "float32"))
    w = relax.Var("w", relax.TensorType((4, 6), "float32"))
    bb = relax.BlockBuilder()
    with bb.function("main", [x, w]):
        bb.emit_func_output(bb.emit(relax.op.matmul(x, w)))
    assert macs.macs(bb.get()["main"].body.blocks[0].bindings[0].value) is None
