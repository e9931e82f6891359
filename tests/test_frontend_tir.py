"""A user's own TIR (TVMScript or TE) is recognised and offloaded; TVM's CPU build of the same function is
the reference. What cannot be offloaded gets UnsupportedOp naming the reason."""
import numpy as np
import pytest
import tvm
from tvm import te, topi
from tvm.script import tirx as T

import tvm_codesign as tc
from tvm_codesign.frontend.tir import UnsupportedOp, recognise

RNG = np.random.default_rng(0)


def i8(*shape):
    return RNG.integers(-128, 128, shape, dtype=np.int8)


def cpu(func, *inputs, out_shape, out_dtype):
    lib = tvm.compile(func, target="llvm")
    out = tvm.runtime.tensor(np.zeros(out_shape, out_dtype))
    lib["main"](*[tvm.runtime.tensor(np.asarray(a)) for a in inputs], out)
    return out.numpy()


def offload_matches_cpu(func, inputs, cfg="vta_default"):
    m = tc.build(func, cfg)
    got = m(*inputs)
    ref = cpu(func, *inputs, out_shape=got.shape, out_dtype=got.dtype)
    assert np.array_equal(got, ref)
    return m


@T.prim_func(s_tir=True)
def matmul_kn(A: T.Buffer((20, 30), "int8"), B: T.Buffer((30, 40), "int8"), C: T.Buffer((20, 40), "int32")):
    for i, j, k in T.grid(20, 40, 30):
        with T.sblock("C"):
            vi, vj, vk = T.axis.remap("SSR", [i, j, k])
            with T.init():
                C[vi, vj] = 0
            C[vi, vj] = C[vi, vj] + T.Cast("int32", A[vi, vk]) * T.Cast("int32", B[vk, vj])


@T.prim_func(s_tir=True)
def matmul_nk(A: T.Buffer((33, 17), "int8"), B: T.Buffer((5, 17), "int8"), C: T.Buffer((33, 5), "int32")):
    for i, j, k in T.grid(33, 5, 17):
        with T.sblock("C"):
            vi, vj, vk = T.axis.remap("SSR", [i, j, k])
            with T.init():
                C[vi, vj] = 0
            C[vi, vj] = C[vi, vj] + T.Cast("int32", A[vi, vk]) * T.Cast("int32", B[vj, vk])


@pytest.mark.parametrize("func, shapes", [(matmul_kn, [(20, 30), (30, 40)]), (matmul_nk, [(33, 17), (5, 17)])])
def test_tvmscript_matmul(func, shapes):
    m = offload_matches_cpu(func, [i8(*s) for s in shapes])
    assert m.workload.kind == "dense"


def _conv_requant(n, ci, hw, co, k, stride, pad, relu=True, cast_only=False):
    x = te.placeholder((n, ci, hw, hw), "int8", name="x")
    w = te.placeholder((co, ci, k, k), "int8", name="w")
    b = te.placeholder((co,), "int32", name="b")
    conv = topi.nn.conv2d_nchw(x, w, stride=stride, padding=pad, dilation=1, out_dtype="int32")
    if cast_only:  # truncating store, no clip
        out = te.compute(conv.shape, lambda *i: conv(*i).astype("int8"), name="out")
        return te.create_prim_func([x, w, out]), [i8(n, ci, hw, hw), i8(co, ci, k, k)]
    y = te.compute(conv.shape, lambda nn, o, h, ww: conv[nn, o, h, ww] + b[o], name="bias")
    r = te.compute(conv.shape, lambda *i: (y(*i) + 128) >> 8, name="shift")
    lo = 0 if relu else -128
    out = te.compute(conv.shape, lambda *i: te.max(te.min(r(*i), 127), lo).astype("int8"), name="out")
    return te.create_prim_func([x, w, b, out]), [i8(n, ci, hw, hw), i8(co, ci, k, k),
                                                 RNG.integers(-9000, 9000, co).astype(np.int32)]


@pytest.mark.parametrize("args", [(1, 3, 16, 16, 7, 2, 3), (2, 20, 9, 24, 3, 2, 1), (1, 32, 8, 40, 1, 1, 0),
                                  (1, 16, 7, 16, 3, 1, 1, False)])
@pytest.mark.parametrize("cfg", ["vta_default", "vta_batch4"])
def test_te_conv2d_with_requantisation(args, cfg):
    func, inputs = _conv_requant(*args)
    m = offload_matches_cpu(func, inputs, cfg)
    assert m.workload.kind == "conv2d" and m.workload.bias and m.workload.shift == 8


def test_truncating_cast_is_kept():
    func, inputs = _conv_requant(1, 16, 6, 16, 3, 1, 1, cast_only=True)
    m = offload_matches_cpu(func, inputs)
    assert not m.workload.saturate and m.workload.clip is None


def test_te_batch_matmul():
    x = te.placeholder((3, 10, 40), "int8", name="x")
    y = te.placeholder((3, 24, 40), "int8", name="y")
    out = topi.nn.batch_matmul(x, y, out_dtype="int32")
    m = offload_matches_cpu(te.create_prim_func([x, y, out]), [i8(3, 10, 40), i8(3, 24, 40)])
    assert m.workload.kind == "batch_matmul" and m.workload.groups == 3


def test_unsupported_ops_say_why():
    a = te.placeholder((8, 8), "float32", name="a")
    b = te.placeholder((8, 8), "float32", name="b")
    k = te.reduce_axis((0, 8), "k")
    fmm = te.compute((8, 8), lambda i, j: te.sum(a[i, k] * b[j, k], axis=k), name="fmm")
    with pytest.raises(UnsupportedOp, match="int8|int32"):
        recognise(te.create_prim_func([a, b, fmm]))
    x = te.placeholder((1, 16, 8, 8), "int8", name="x")
    w = te.placeholder((16, 16, 3, 3), "int8", name="w")
    dil = topi.nn.conv2d_nchw(x, w, 1, 1, 2, out_dtype="int32")
    with pytest.raises(UnsupportedOp, match="dilated"):
        recognise(te.create_prim_func([x, w, dil]))
    add = te.compute((8, 8), lambda i, j: a[i, j] + b[i, j], name="add")
    with pytest.raises(UnsupportedOp, match="exactly one reduction block"):
        recognise(te.create_prim_func([a, b, add]))
    conv = topi.nn.conv2d_nchw(x, w, 1, 1, 1, out_dtype="int32")
    noround = te.compute(conv.shape, lambda *i: (conv(*i) >> 4).astype("int8"), name="noround")
    with pytest.raises(UnsupportedOp, match="round-half-up"):
        recognise(te.create_prim_func([x, w, noround]))
    with pytest.raises(UnsupportedOp, match="expected a tvm PrimFunc"):
        tc.build("not a function")
