"""``tvm.compile(mod, target=<vta target>)`` runs the offload: a Relax module's int8 conv2d / matmul and a user's
int8 PrimFunc run on the accelerator, bit-exact against numpy; a module with nothing to offload still compiles for
the CPU and says so (``NotOffloadedWarning``)."""
import re
import warnings

import numpy as np
import pytest
import tvm
from tvm import relax, te, topi
from tvm.script import ir as I
from tvm.script import relax as R
from tvm.script import tirx as T
from tvm.target import Target

import tvm_codesign as tc
from prim_funcs import matmul_kn
from tvm_codesign.frontend.relax import offload
from tvm_codesign.frontend.vta_target import NotOffloadedWarning

RNG = np.random.default_rng(7)


def i8(*shape):
    return RNG.integers(-128, 128, shape, dtype=np.int8)


@I.ir_module
class ConvMatmul:
    @R.function
    def main(x: R.Tensor((2, 20, 9, 9), "int8"), w: R.Tensor((24, 20, 3, 3), "int8"),
             m: R.Tensor((600, 10), "int8")):
        with R.dataflow():
            y = R.nn.conv2d(x, w, strides=(2, 2), padding=(1, 1), out_dtype="int32")
            q = R.astype(R.clip(R.right_shift(R.nn.relu(y), R.const(8, "int32")), -128, 127), "int8")
            f = R.reshape(q, (2, 600))
            o = R.matmul(f, m, out_dtype="int32")
            R.output(o)
        return o


def conv_matmul_numpy(x, w, m):
    y = tc.Workload.conv2d(2, 20, 9, 9, 24, 3, 2, 1).reference(x, w).astype(np.int64)
    q = np.clip(np.maximum(y, 0) >> 8, -128, 127).reshape(2, 600)
    return (q @ m.astype(np.int64)).astype(np.int32)


def run_vm(ex, *args):
    return relax.VirtualMachine(ex, tvm.cpu())["main"](*[tvm.runtime.tensor(a) for a in args]).numpy()


def kernels(ex) -> set:
    """Accelerator kernels the VM executable calls (``vta_<kind>_<hash>``, not their pack/unpack helpers)."""
    return {k for k in re.findall(r"vta_(conv2d|dense|batch_matmul)_[0-9a-f]{10}\b", ex.as_text())}


@pytest.mark.parametrize("make_target", [lambda: tc.target("vta_default"), lambda: Target("vta/vta_default"),
                                         lambda: Target("vta/vta_batch4")], ids=["tc.target", "tag", "tag_batch4"])
def test_relax_module_offloads_with_a_vta_target(make_target):
    x, w, m = i8(2, 20, 9, 9), i8(24, 20, 3, 3), i8(600, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotOffloadedWarning)
        ex = tvm.compile(ConvMatmul, target=make_target())
    assert kernels(ex) == {"conv2d", "dense"}
    before = tc.last_stats()
    out = run_vm(ex, x, w, m)
    assert tc.last_stats() is not before and tc.last_stats().macs > 0  # the simulator ran
    assert np.array_equal(out, conv_matmul_numpy(x, w, m))


def test_llvm_target_is_untouched_and_an_offloaded_module_is_not_offloaded_twice():
    x, w, m = i8(2, 20, 9, 9), i8(24, 20, 3, 3), i8(600, 10)
    assert kernels(tvm.compile(ConvMatmul, target="llvm")) == set()
    done = offload("vta_default")(ConvMatmul)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotOffloadedWarning)
        ex = tvm.compile(done, target=tc.target("vta_default"))
    assert kernels(ex) == {"conv2d", "dense"}
    assert np.array_equal(run_vm(ex, x, w, m), conv_matmul_numpy(x, w, m))


@I.ir_module
class FloatMatmul:
    @R.function
    def main(x: R.Tensor((4, 8), "float32"), w: R.Tensor((8, 3), "float32")):
        with R.dataflow():
            o = R.matmul(x, w)
            R.output(o)
        return o


def test_float_module_runs_on_the_cpu_and_says_so():
    x, w = RNG.standard_normal((4, 8)).astype("float32"), RNG.standard_normal((8, 3)).astype("float32")
    with pytest.warns(NotOffloadedWarning, match="nothing runs on the accelerator.*1 conv2d/matmul"):
        ex = tvm.compile(FloatMatmul, target=Target("vta/vta_default"))
    assert kernels(ex) == set()
    out = run_vm(ex, x, w)
    assert np.array_equal(out, run_vm(tvm.compile(FloatMatmul, target="llvm"), x, w))
    np.testing.assert_allclose(out, x @ w, rtol=1e-5, atol=1e-5)


def conv_bias_func():
    """topi conv2d (stride 2, pad 1) + bias, round-half-up >> 7, clip, cast to int8: TE, like a TVM user writes."""
    x = te.placeholder((1, 12, 10, 10), "int8", "x")
    w = te.placeholder((20, 12, 3, 3), "int8", "w")
    b = te.placeholder((20,), "int32", "b")
    c = topi.nn.conv2d_nchw(x, w, 2, 1, 1, out_dtype="int32")
    y = te.compute(c.shape, lambda n, o, i, j: te.max(te.min((c[n, o, i, j] + b[o] + 64) >> 7, 127), -128)
                   .astype("int8"), name="y")
    return te.create_prim_func([x, w, b, y])


@pytest.mark.parametrize("make_target", [lambda: tc.target("vta_default"), lambda: Target("vta/vta_batch4")],
                         ids=["tc.target", "tag_batch4"])
def test_primfunc_with_a_vta_target_runs_on_the_accelerator(make_target):
    a, b = i8(20, 40), i8(40, 24)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotOffloadedWarning)
        lib = tvm.compile(matmul_kn, target=make_target())
        conv = tvm.compile(conv_bias_func(), target=make_target())
    c = tvm.runtime.tensor(np.zeros((20, 24), np.int32))
    before = tc.last_stats()
    lib["main"](c, tvm.runtime.tensor(a), tvm.runtime.tensor(b))  # the user's own signature, output first
    assert tc.last_stats() is not before
    assert np.array_equal(c.numpy(), a.astype(np.int64) @ b.astype(np.int64))

    x, w, bias = i8(1, 12, 10, 10), i8(20, 12, 3, 3), RNG.integers(-5000, 5000, 20).astype(np.int32)
    y = tvm.runtime.tensor(np.zeros((1, 20, 5, 5), np.int8))
    before = tc.last_stats()
    conv["main"](tvm.runtime.tensor(x), tvm.runtime.tensor(w), tvm.runtime.tensor(bias), y)
    assert tc.last_stats() is not before
    acc = tc.Workload.conv2d(1, 12, 10, 10, 20, 3, 2, 1).reference(x, w).astype(np.int64) + bias.reshape(1, -1, 1, 1)
    assert np.array_equal(y.numpy(), np.clip((acc + 64) >> 7, -128, 127).astype(np.int8))


def test_te_batch_matmul_with_k_by_n_weights():
    x, y = te.placeholder((3, 7, 40), "int8", "x"), te.placeholder((3, 40, 20), "int8", "y")
    k = te.reduce_axis((0, 40), "k")
    c = te.compute((3, 7, 20), lambda b, i, j: te.sum(x[b, i, k].astype("int32") * y[b, k, j].astype("int32"), axis=k),
                   name="c")
    lib = tvm.compile(te.create_prim_func([x, y, c]), target=Target("vta/vta_batch4"))
    a, b = i8(3, 7, 40), i8(3, 40, 20)
    out = tvm.runtime.tensor(np.zeros((3, 7, 20), np.int32))
    before = tc.last_stats()
    lib["main"](tvm.runtime.tensor(a), tvm.runtime.tensor(b), out)
    assert tc.last_stats() is not before  # ran on the simulator
    assert np.array_equal(out.numpy(), np.einsum("bik,bkj->bij", a.astype(np.int64), b.astype(np.int64)))


def test_primfunc_the_accelerator_cannot_run_compiles_for_the_cpu_and_says_why():
    @T.prim_func(s_tir=True)
    def add_one(A: T.Buffer((8,), "float32"), B: T.Buffer((8,), "float32")):
        for i in range(8):
            with T.sblock("B"):
                vi = T.axis.remap("S", [i])
                B[vi] = A[vi] + T.float32(1)

    with pytest.warns(NotOffloadedWarning, match="add_one|main.*reduction block"):
        lib = tvm.compile(add_one, target=tc.target("vta_default"))
    a = np.arange(8, dtype=np.float32)
    out = tvm.runtime.tensor(np.zeros(8, np.float32))
    lib["main"](tvm.runtime.tensor(a), out)
    assert np.array_equal(out.numpy(), a + 1)
