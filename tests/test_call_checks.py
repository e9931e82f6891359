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
