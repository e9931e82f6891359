"""ONNX's own operator tests for the quantised ops (the cases shipped in ``onnx.backend.test.case.node``) through
``tc.compile``, bit for bit against their expected outputs: (a) as given, every input a graph input (scalars
included), on the CPU; (b) with the weight and every scale and zero point an initializer, on the accelerator."""
import importlib

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import tvm_codesign as tc

OPS = ("QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger")


def node_cases() -> list:
    """The cases ONNX ships for OPS: importing an op's case module registers its cases (what
    ``collect_testcases`` does for every op, in 5 s instead of 0.3 s)."""
    import onnx.backend.test.case.node as N
    for op in OPS:
        importlib.import_module(f"{N.__name__}.{op.lower()}")
    return [c for c in N._NodeTestCases if c.model.graph.node[0].op_type in OPS]


CASES = node_cases()


def test_all_cases_found():
    """The parametrization below cannot silently shrink: the 12 cases onnx 1.23 ships for these ops are there."""
    expected = {"test_qlinearconv", "test_convinteger_without_padding", "test_convinteger_with_padding",
                "test_matmulinteger"} | {f"test_qlinearmatmul_{d}_{q}_{f}" for d in ("2D", "3D")
                                         for q in ("uint8", "int8") for f in ("float32", "float16")}
    assert expected <= {c.name for c in CASES} and len(expected) == 12


def with_constants(model: onnx.ModelProto, inputs: list) -> onnx.ModelProto:
    """Every input but the first (the activation) turned into an initializer holding the case's value."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    for vi, a in zip(list(g.input)[1:], inputs[1:]):
        g.initializer.append(numpy_helper.from_array(np.asarray(a), vi.name))
    first = onnx.ValueInfoProto()
    first.CopyFrom(g.input[0])
    del g.input[:]
    g.input.append(first)
    return m


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_as_given(case):
    (inputs, (expected,)), = case.data_sets
    cm = tc.compile(case.model, "vta_default")
    y = cm(*inputs)
    assert y.dtype == expected.dtype and np.array_equal(y, expected)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_constant_weights_on_the_accelerator(case):
    (inputs, (expected,)), = case.data_sets
    cm = tc.compile(with_constants(case.model, inputs), "vta_default")
    y = cm(inputs[0])
    assert y.dtype == expected.dtype and np.array_equal(y, expected)
    op = case.model.graph.node[0].op_type
    w = inputs[1 if op.endswith("Integer") else 3]
    kind = "conv2d" if "Conv" in op else "dense" if w.ndim == 2 else "batch_matmul"
    assert [k["workload"]["kind"] for k in cm.kernels] == [kind]  # the op itself runs on the accelerator
