"""A compiled model's call arguments are checked against what it was compiled for (count, names, shapes, dtypes),
with errors naming the input; floats are cast to a float32 input, integers stay integers, 0-d inputs stay 0-d."""
import numpy as np
import pytest
import tvm
from tvm import relax

import tvm_codesign as tc

RNG = np.random.default_rng(0)
W = RNG.integers(-128, 128, (32, 16), dtype=np.int8)
TABLE = RNG.standard_normal((10, 16)).astype(np.float32)


def _module() -> tvm.IRModule:
    """y = float(x @ W) * s + TABLE[ids]: an int8 input (the matmul goes to the accelerator), a 0-d float32 input
    and an int64 index input."""
    x = relax.Var("x", relax.TensorType((4, 32), "int8"))
    s = relax.Var("s", relax.TensorType((), "float32"))
    ids = relax.Var("ids", relax.TensorType((4,), "int64"))
    bb = relax.BlockBuilder()
    with bb.function("main", [x, s, ids]):
        acc = bb.emit(relax.op.matmul(x, relax.const(W), out_dtype="int32"))
        y = bb.emit(relax.op.multiply(relax.op.astype(acc, "float32"), s))
        bb.emit_func_output(bb.emit(relax.op.add(y, relax.op.take(relax.const(TABLE), ids, axis=0))))
    return bb.get()


def _reference(x, s, ids):
    acc = x.astype(np.int32) @ W.astype(np.int32)
    return acc.astype(np.float32) * np.float32(s) + TABLE[np.asarray(ids)]


@pytest.fixture(scope="module")
def cm():
    return tc.compile(_module(), "vta_default")


X = RNG.integers(-128, 128, (4, 32), dtype=np.int8)
IDS = np.array([3, 0, 9, 3], np.int64)


def test_scalar_and_integer_inputs(cm):
    assert len(cm.kernels) == 1
    ref = _reference(X, 0.5, IDS)
    assert np.array_equal(cm(X, np.float32(0.5), IDS), ref)  # a 0-d input stays 0-d
    assert np.array_equal(cm(X, np.array(0.5, np.float32), IDS), ref)
    assert np.array_equal(cm(X, 0.5, IDS.tolist()), ref)  # Python scalars and lists
    assert np.array_equal(cm(X, np.float64(0.5), IDS.astype(np.int32)), ref)  # float64 cast, int32 ids widened
    assert np.array_equal(cm(X.astype(np.int16), 0.5, IDS), ref)  # integers that fit int8 stay exact
    assert np.array_equal(cm(x=X, s=0.5, ids=IDS), ref)
    assert np.array_equal(cm(X, s=0.5, ids=IDS), ref)


def test_wrong_count_names_and_dtypes_are_type_errors(cm):
    with pytest.raises(TypeError, match=r"takes 3 input\(s\) \(x: int8\(4, 32\), s: float32\(\), ids: int64\(4,\)\), got 2"):
        cm(X, 0.5)
    with pytest.raises(TypeError, match=r"unknown input\(s\) \['y'\]"):
        cm(X, 0.5, ids=IDS, y=1)
    with pytest.raises(TypeError, match=r"missing \['ids'\]"):
        cm(x=X, s=0.5)
    with pytest.raises(TypeError, match="input 'x': expected int8 data, got float32"):
        cm(X.astype(np.float32), 0.5, IDS)
    with pytest.raises(TypeError, match="input 'x': expected int8 data, got int16 with values outside its range"):
        cm(X.astype(np.int16) * 3, 0.5, IDS)
    with pytest.raises(TypeError, match="input 'ids': expected int64 data, got float64"):
        cm(X, 0.5, IDS.astype(np.float64))


def test_wrong_shapes_are_value_errors(cm):
    with pytest.raises(ValueError, match=r"input 'x': expected shape \(4, 32\), got \(4, 31\)"):
        cm(X[:, :31], 0.5, IDS)
    with pytest.raises(ValueError, match=r"input 's': expected shape \(\), got \(1,\)"):
        cm(X, np.array([0.5], np.float32), IDS)
    with pytest.raises(ValueError, match=r"input 'ids': expected shape \(4,\), got \(2, 2\)"):
        cm(X, 0.5, IDS.reshape(2, 2))


def _gather_onnx():
    """ONNX: y = Gather(TABLE, ids) with the ids a graph input (run-time indices)."""
    from onnx import TensorProto, helper, numpy_helper
    g = helper.make_graph([helper.make_node("Gather", ["table", "ids"], ["y"], axis=0)], "gather",
                          [helper.make_tensor_value_info("ids", TensorProto.INT64, [3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 16])],
                          [numpy_helper.from_array(TABLE, "table")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def test_index_inputs_out_of_range_are_refused(tmp_path):
    """Ids that are a model input and index an axis at run time (an embedding, a Gather) are checked at the
    call: [-n, n) runs (negative from the end, as torch's x[ids] and ONNX's Gather), anything else is a
    ValueError naming the input, instead of silently wrapping into another row (TABLE[60 % 10])."""
    import torch
    cm = tc.compile(_gather_onnx(), "vta_default")
    ids = np.array([0, 9, -10])
    assert np.array_equal(cm(ids), TABLE[ids])
    for bad in ([0, 10, 1], [-11, 0, 0]):
        with pytest.raises(ValueError, match=r"input 'ids' indexes an axis of size 10: its values must lie in "
                                             r"\[-10, 9\]"):
            cm(np.array(bad))
    cm.save(tmp_path / "g")
    with pytest.raises(ValueError, match="indexes an axis of size 10"):  # the check is saved with the model
        tc.load(tmp_path / "g")(np.array([60, 0, 0]))

    class Embed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.e, self.fc = torch.nn.Embedding(20, 8), torch.nn.Linear(8, 3)

        def forward(self, ids):
            return self.fc(self.e(ids).mean(1))
    torch.manual_seed(0)
    cal = [RNG.integers(0, 20, (2, 5)) for _ in range(3)]
    cm = tc.compile(Embed().eval(), "vta_default", calibration=cal)
    cm(cal[0])
    with pytest.raises(ValueError, match=r"input 'ids' indexes an axis of size 20: .* got 1 outside \(e\.g\. 20\)"):
        cm(np.where(np.arange(10).reshape(2, 5) == 7, 20, cal[0]))


def test_nan_into_a_quantised_model_is_refused():
    """NaN has no int8 value: a post-training-quantised model refuses it by name (it returned finite garbage);
    a model without quantisation (float on the CPU) passes it through as torch would."""
    import torch
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU()).eval()
    x = RNG.standard_normal((1, 8)).astype(np.float32)
    cm = tc.compile(mlp, "vta_default", calibration=[(x,)])
    float_model = tc.compile(torch.nn.Softmax(-1).eval(), "vta_default", example_inputs=(x,))
    x[0, 3] = np.nan
    with pytest.raises(ValueError, match="input 'input' has 1 NaN values"):
        cm(x)
    assert np.isnan(float_model(x)).all()
