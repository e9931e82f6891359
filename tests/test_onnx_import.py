"""Model import errors name the node or input, and never fall through to a crash."""
import numpy as np
import pytest
import torch
from onnx import TensorProto, helper

import tvm_codesign as tc
from tvm_codesign.frontend.onnx_import import ModelImportError


def graph(nodes, x_dims, inits=()):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_dims)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_unsupported_op_names_the_node():
    m = graph([helper.make_node("Relu", ["x"], ["r"], name="ok"),
               helper.make_node("NoSuchOp", ["r"], ["y"], name="layer7/custom")], [1, 4])
    with pytest.raises(ModelImportError, match=r"'layer7/custom' uses op 'NoSuchOp'"):
        tc.compile(m, "vta_default")


def test_dynamic_dims_must_be_given():
    m = graph([helper.make_node("Relu", ["x"], ["y"], name="r")], ["batch", 4])
    with pytest.raises(ModelImportError, match=r"input 'x' has a dynamic dimension 0 \(batch\)"):
        tc.compile(m, "vta_default")
    cm = tc.compile(m, "vta_default", input_shapes={"x": [2, 4]})
    x = np.array([[-1, 2, -3, 4], [5, -6, 7, -8]], np.float32)
    assert np.array_equal(cm(x), np.maximum(x, 0))


def test_unreadable_file(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a protobuf")
    with pytest.raises(ModelImportError, match="cannot read an ONNX model"):
        tc.compile(str(bad), "vta_default")


def test_torch_export_failure_names_the_model():
    class DataDependent(torch.nn.Module):
        def forward(self, x):
            return x[x > 0]  # data-dependent output shape

    with pytest.raises(ModelImportError, match="DataDependent"):
        tc.compile(DataDependent(), "vta_default", example_inputs=(np.ones((2, 3), np.float32),))
