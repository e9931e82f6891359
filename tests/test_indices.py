"""frontend/indices.py on hand-built Relax modules, against numpy's indexing (Python's negative-index rule), and
on ONNX imports."""
import io
import itertools

import numpy as np
import onnx
import pytest
import torch
import tvm
from tvm import relax

import tvm_codesign as tc
from tvm_codesign.frontend.indices import normalize_indices
from tvm_codesign.frontend.onnx_import import ModelImportError

X = np.arange(2 * 5 * 3, dtype=np.float32).reshape(2, 5, 3)


def _module(build, *params):
    bb = relax.BlockBuilder()
    with bb.function("main", list(params)):
        with bb.dataflow():
            out = build(bb)
            out = bb.emit_output(relax.Tuple(out) if isinstance(out, list) else out)
        bb.emit_func_output(out)
    return bb.get()


def _run(mod, *args):
    vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    out = vm["main"](*[tvm.runtime.tensor(a) for a in args])
    return [out.numpy()] if hasattr(out, "numpy") else [o.numpy() for o in out]


def _x(shape=X.shape):
    return relax.Var("x", relax.TensorType(shape, "float32"))


def test_strided_slice_matches_python_slices():
    """Every begin/end in [-7, 7] (and open ends) with steps 1..3 on a dim of 5, as numpy slices it."""
    x = _x()
    ends = list(range(-7, 8)) + [None]
    cases = list(itertools.product(ends, ends, [1, 2, 3]))
    big = 2 ** 63 - 1  # what torch.export passes for an open end

    def build(bb):
        return [bb.emit(relax.op.strided_slice(x, [1], [0 if b is None else b], [big if e is None else e], [s]))
                for b, e, s in cases]
    outs = _run(normalize_indices(_module(build, x)), X)
    for (b, e, s), o in zip(cases, outs):
        np.testing.assert_array_equal(o, X[:, b:e:s], err_msg=f"[{b}:{e}:{s}]")


def test_constant_take_indices_are_normalised():
    x = _x()
    idx = np.array([[-1, 0], [-5, 4]])
    mod = normalize_indices(_module(lambda bb: [bb.emit(relax.op.take(x, relax.const(idx), axis=1)),
                                                bb.emit(relax.op.take(x, relax.const(np.int64(-1)), axis=-1)),
                                                bb.emit(relax.op.take(bb.emit(relax.op.reshape(x, (30,))),
                                                                      relax.const(np.array([-30, 29]))))], x))
    a, b, c = _run(mod, X)
    np.testing.assert_array_equal(a, np.take(X, idx, axis=1))
    np.testing.assert_array_equal(b, X[..., -1])
    np.testing.assert_array_equal(c, X.ravel()[[-30, 29]])


def test_runtime_indices_follow_python_semantics():
    """Indices only known at run time: take wraps, index_tensor / gather_elements use floor_mod."""
    x = _x()
    i = relax.Var("i", relax.TensorType((3,), "int64"))
    g = relax.Var("g", relax.TensorType((2, 5, 2), "int64"))

    def build(bb):
        return [bb.emit(relax.op.take(x, i, axis=1)), bb.emit(relax.op.index_tensor(x, [i])),
                bb.emit(relax.op.gather_elements(x, g, axis=2))]
    mod = normalize_indices(_module(build, x, i, g))
    iv = np.array([-1, 1, -2])
    gv = np.random.default_rng(0).integers(-3, 3, (2, 5, 2))
    a, b, c = _run(mod, X, iv, gv)
    np.testing.assert_array_equal(a, np.take(X, iv, axis=1))
    np.testing.assert_array_equal(b, X[iv])
    np.testing.assert_array_equal(c, np.take_along_axis(X, gv, axis=2))


@pytest.mark.parametrize("op, build", [
    ("take", lambda x: relax.op.take(x, relax.const(np.array([0, 5])), axis=1)),
    ("take", lambda x: relax.op.take(x, relax.const(np.array([-6])), axis=1)),
    ("gather_elements", lambda x: relax.op.gather_elements(x, relax.const(np.full((2, 5, 1), 3)), axis=2)),
    ("index_tensor", lambda x: relax.op.index_tensor(x, [relax.const(np.array([1])), relax.const(np.array([-6]))])),
])
def test_constant_index_out_of_range_names_the_op(op, build):
    x = _x()
    with pytest.raises(ModelImportError, match=rf"{op}: index -?\d+ is out of range for axis \d of shape"):
        normalize_indices(_module(lambda bb: bb.emit(build(x)), x))


def test_runtime_index_into_a_symbolic_dim_is_refused():
    n = tvm.tirx.Var("n", "int64")
    x = relax.Var("x", relax.TensorType((2, n), "float32"))
    g = relax.Var("g", relax.TensorType((2, 1), "int64"))
    with pytest.raises(ModelImportError, match="gather_elements: an index into axis 1 .* not static"):
        normalize_indices(_module(lambda bb: bb.emit(relax.op.gather_elements(x, g, axis=1)), x, g))


def test_onnx_gathers_are_normalised_too(capfd):
    """ONNX Gather imports as a fast-mode take as well: compiled quietly (no "Fast mode segfaults" log), right."""
    class M(torch.nn.Module):
        def forward(self, x, i):
            return x[:, -1] * 2 + x[..., 1].sum(-1, keepdim=True), x.index_select(1, i)

    x, i = X.copy(), np.array([4, 0, 2])
    buf = io.BytesIO()
    torch.onnx.export(M(), (torch.as_tensor(x), torch.as_tensor(i)), buf, input_names=["x", "i"], opset_version=17,
                      dynamo=False)
    capfd.readouterr()
    cm = tc.compile(onnx.load_from_string(buf.getvalue()), "vta_default")
    assert "Fast mode" not in capfd.readouterr().err
    i = np.array([-1, 0, -5])  # ONNX Gather takes indices in [-n, n) at run time
    a, b = cm(x, i)
    np.testing.assert_allclose(a, x[:, -1] * 2 + x[..., 1].sum(-1, keepdims=True), rtol=1e-6)
    np.testing.assert_array_equal(b, np.take(x, i, axis=1))
