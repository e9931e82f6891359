"""Inference-mode BatchNorm folds into the conv / dense before it (frontend/fold_bn.py): the float folded graph
matches onnxruntime / torch, and after int8 compilation no batch_norm runs on the CPU and the ReLU behind it is in
the accelerator kernel's epilogue. A BN that cannot be folded stays and is still right."""
import numpy as np
import onnxruntime as ort
import pytest
import torch
import tvm
from onnx import TensorProto, helper, numpy_helper
from tvm import relax

import tvm_codesign as tc
from tvm_codesign.frontend import quantize as Q
from tvm_codesign.frontend.onnx_import import import_onnx

RNG = np.random.default_rng(0)


def bn_params(name, c, rng):
    """Non-trivial scale, shift, running mean and variance."""
    return [numpy_helper.from_array(rng.uniform(0.5, 2.0, c).astype(np.float32), f"{name}_scale"),
            numpy_helper.from_array(rng.standard_normal(c).astype(np.float32), f"{name}_bias"),
            numpy_helper.from_array(rng.standard_normal(c).astype(np.float32), f"{name}_mean"),
            numpy_helper.from_array(rng.uniform(0.1, 3.0, c).astype(np.float32), f"{name}_var")]


def bn(name, x, y, eps=1e-2):
    return helper.make_node("BatchNormalization", [x] + [f"{name}_{p}" for p in ("scale", "bias", "mean", "var")],
                            [y], epsilon=eps)


def onnx_model(kind, x_shape):
    """``kind``: conv (with bias) / conv_nobias / depthwise / gemm -> BN -> Relu; input_bn: BN on the graph input
    -> conv -> Relu; shared: a conv feeding both a BN and an Add."""
    rng = np.random.default_rng(len(kind))
    c_in = x_shape[1]
    inits, nodes = [], []
    if kind == "gemm":
        inits += [numpy_helper.from_array(rng.standard_normal((24, c_in)).astype(np.float32) * 0.2, "w"),
                  numpy_helper.from_array(rng.standard_normal(24).astype(np.float32), "b")]
        nodes.append(helper.make_node("Gemm", ["x", "w", "b"], ["c"], transB=1))
    else:
        groups = c_in if kind == "depthwise" else 1
        co = c_in if kind == "depthwise" else 24
        inits.append(numpy_helper.from_array(rng.standard_normal((co, c_in // groups, 3, 3)).astype(np.float32) * .2,
                                             "w"))
        ins = ["x", "w"]
        if kind != "conv_nobias":
            inits.append(numpy_helper.from_array(rng.standard_normal(co).astype(np.float32), "b"))
            ins.append("b")
        if kind == "input_bn":
            inits += bn_params("in", c_in, rng)
            nodes.append(bn("in", "x", "xn"))
            ins[0] = "xn"
        nodes.append(helper.make_node("Conv", ins, ["c"], pads=[1, 1, 1, 1], group=groups))
    if kind == "input_bn":
        nodes.append(helper.make_node("Relu", ["c"], ["y"]))
    else:
        co = 24 if kind in ("gemm", "conv", "conv_nobias", "shared") else c_in
        inits += bn_params("bn", co, rng)
        nodes += [bn("bn", "c", "n", eps=1e-3 if kind == "gemm" else 1e-2), helper.make_node("Relu", ["n"], ["r"])]
        nodes.append(helper.make_node("Add", ["r", "c"], ["y"]) if kind == "shared" else
                     helper.make_node("Identity", ["r"], ["y"]))
    g = helper.make_graph(nodes, kind, [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def run_float(mod, x):
    vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    return vm["main"](tvm.runtime.tensor(x)).numpy()


def ops(mod) -> set:
    found = set()
    relax.analysis.post_order_visit(mod["main"], lambda e: found.add(e.op.name) if isinstance(e, relax.Call)
                                    and isinstance(e.op, tvm.ir.Op) else None)
    return found


def cosine(a, b):
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return a @ b / (np.linalg.norm(a) * np.linalg.norm(b))


CASES = {"conv": [1, 16, 10, 10], "conv_nobias": [2, 16, 9, 9], "gemm": [4, 40]}


@pytest.mark.parametrize("kind", CASES)
def test_onnx_bn_folds_into_the_layer(kind):
    shape = CASES[kind]
    model = onnx_model(kind, shape)
    xs = [RNG.standard_normal(shape).astype(np.float32) for _ in range(6)]
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    folded = Q.prepare(import_onnx(model))  # the float graph the quantiser sees, built for llvm
    assert "relax.nn.batch_norm" not in ops(folded)
    for x in xs[:2]:
        np.testing.assert_allclose(run_float(folded, x), sess.run(None, {"x": x})[0], rtol=1e-4, atol=1e-4)

    cm = tc.compile(model, "vta_default", calibration=[(x,) for x in xs])
    assert not {"relax.nn.batch_norm", "relax.nn.relu"} & set(cm.cpu_ops)
    (k,) = cm.kernels
    assert k["workload"]["bias"] and k["workload"]["clip"][0] == 0  # bias and ReLU in the fused epilogue
    for x in xs[:2]:
        assert cosine(cm(x), sess.run(None, {"x": x})[0]) >= 0.999


@pytest.mark.parametrize("kind,shape", [("input_bn", [1, 16, 8, 8]), ("shared", [1, 16, 8, 8]),
                                        ("depthwise", [1, 16, 8, 8])])
def test_other_bns_stay_correct(kind, shape):
    """A BN on the graph input or after a conv with another user stays; after a depthwise conv it folds (per
    output channel). Either way the float graph equals onnxruntime and the int8 model stays close."""
    model = onnx_model(kind, shape)
    xs = [RNG.standard_normal(shape).astype(np.float32) for _ in range(6)]
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    prepared = Q.prepare(import_onnx(model))
    assert ("relax.nn.batch_norm" in ops(prepared)) == (kind != "depthwise")
    for x in xs[:2]:
        np.testing.assert_allclose(run_float(prepared, x), sess.run(None, {"x": x})[0], rtol=1e-4, atol=1e-4)
    cm = tc.compile(model, "vta_default", calibration=[(x,) for x in xs])
    for x in xs[:2]:
        assert cosine(cm(x), sess.run(None, {"x": x})[0]) >= 0.999


class ConvBN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(8, 16, 3, padding=1, bias=False)
        self.b1 = torch.nn.BatchNorm2d(16, affine=False)
        self.c2, self.b2 = torch.nn.Conv2d(16, 32, 3, stride=2, padding=1), torch.nn.BatchNorm2d(32, eps=1e-3)
        self.fc, self.b3 = torch.nn.Linear(32 * 4 * 4, 20), torch.nn.BatchNorm1d(20)

    def forward(self, x):
        x = torch.relu(self.b2(self.c2(torch.relu(self.b1(self.c1(x))))))
        return torch.relu(self.b3(self.fc(x.flatten(1))))


def test_torch_batchnorm_in_eval_mode_folds():
    """Conv (no bias) -> BN without affine, conv -> BN, Linear -> BatchNorm1d, each followed by a ReLU."""
    torch.manual_seed(0)
    net = ConvBN()
    with torch.no_grad():  # non-trivial running statistics and affine parameters
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.2, 3)
                if m.affine:
                    m.weight.uniform_(0.5, 2), m.bias.uniform_(-1, 1)
    net.eval()
    xs = [RNG.standard_normal((2, 8, 8, 8)).astype(np.float32) for _ in range(6)]
    from tvm.relax.frontend.torch import from_exported_program
    ep = torch.export.export(net, (torch.as_tensor(xs[0]),))
    folded = Q.prepare(from_exported_program(ep, keep_params_as_input=False, unwrap_unit_return_tuple=True))
    assert "relax.nn.batch_norm" not in ops(folded)
    with torch.no_grad():
        np.testing.assert_allclose(run_float(folded, xs[1]), net(torch.as_tensor(xs[1])).numpy(), rtol=1e-4, atol=1e-4)

    cm = tc.compile(net, "vta_default", calibration=[(x,) for x in xs])
    assert not {"relax.nn.batch_norm", "relax.nn.relu"} & set(cm.cpu_ops)
    assert len(cm.kernels) == 3 and all(k["workload"]["clip"][0] == 0 for k in cm.kernels)
    for x in xs[:2]:
        with torch.no_grad():
            ref = net(torch.as_tensor(x)).numpy()
        assert cosine(cm(x), ref) >= 0.999
