"""The Relax offload pass: int8 conv2d / matmul on the accelerator, everything else on the CPU, run on
relax.VirtualMachine and compared with numpy (offloaded) or TVM's own CPU build (not offloaded)."""
import numpy as np
import pytest
import tvm
from tvm import relax
from tvm.script import ir as I
from tvm.script import relax as R

import tvm_codesign as tc
from tvm_codesign.frontend.relax import offload, offloaded

RNG = np.random.default_rng(0)


def i8(*shape):
    return RNG.integers(-128, 128, shape, dtype=np.int8)


def run(mod, *args):
    vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    return vm["main"](*[tvm.runtime.tensor(a) for a in args]).numpy()


@I.ir_module
class ConvMLP:
    @R.function
    def main(x: R.Tensor((1, 20, 9, 9), "int8"), w: R.Tensor((24, 20, 3, 3), "int8"),
             m: R.Tensor((600, 10), "int8")):
        with R.dataflow():
            y = R.nn.conv2d(x, w, strides=(2, 2), padding=(1, 1), out_dtype="int32")
            z = R.nn.relu(y)
            q = R.astype(R.clip(R.right_shift(z, R.const(8, "int32")), -128, 127), "int8")
            f = R.reshape(q, (1, 600))
            o = R.matmul(f, m, out_dtype="int32")
            R.output(o)
        return o


@pytest.mark.parametrize("cfg", ["vta_default", "vta_batch4", "edge_tiny"])
def test_conv_and_matmul_offloaded_rest_on_cpu(cfg):
    x, w, m = i8(1, 20, 9, 9), i8(24, 20, 3, 3), i8(600, 10)
    mod = offload(cfg)(ConvMLP)
    kinds = sorted(k["workload"]["kind"] for k in offloaded(mod))
    assert kinds == ["conv2d", "dense"]
    out = run(mod, x, w, m)
    y = tc.Workload.conv2d(1, 20, 9, 9, 24, 3, 2, 1).reference(x, w).astype(np.int64)
    q = np.clip(np.maximum(y, 0) >> 8, -128, 127).astype(np.int8).reshape(1, 600)
    assert np.array_equal(out, q.astype(np.int32) @ m.astype(np.int32))
    assert np.array_equal(out, run(ConvMLP, x, w, m))  # same as TVM on the CPU alone
    assert tc.last_stats() is not None and tc.last_stats().macs > 0


def test_constant_weights_are_packed_at_compile_time():
    wv = i8(32, 16, 3, 3)
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 16, 8, 8), "int8"))
    with bb.function("main", [x]):
        with bb.dataflow():
            y = bb.emit(relax.op.nn.conv2d(x, relax.const(wv), padding=(1, 1), out_dtype="int32"))
            out = bb.emit_output(y)
        bb.emit_func_output(out)
    mod = offload("vta_default")(bb.get())
    main = mod["main"].script()
    assert "_pack_w" not in main and "_pack_x" in main  # the weight pack was folded into a constant
    xv = i8(1, 16, 8, 8)
    assert np.array_equal(run(mod, xv), tc.Workload.conv2d(1, 16, 8, 8, 32, 3, 1, 1).reference(xv, wv))


def test_batch_matmul_offloaded():
    @I.ir_module
    class BMM:
        @R.function
        def main(a: R.Tensor((3, 10, 40), "int8"), b: R.Tensor((3, 40, 24), "int8")):
            with R.dataflow():
                o = R.matmul(a, b, out_dtype="int32")
                R.output(o)
            return o

    mod = offload("vta_default")(BMM)
    assert [k["workload"]["kind"] for k in offloaded(mod)] == ["batch_matmul"]
    a, b = i8(3, 10, 40), i8(3, 40, 24)
    assert np.array_equal(run(mod, a, b), np.einsum("bmk,bkn->bmn", a.astype(np.int32), b.astype(np.int32)))


@pytest.mark.parametrize("cfg", ["vta_default", "vta_batch4"])
def test_leading_dims_fold_into_rows_and_groups(cfg):
    """(..., M, K) x (K, N) is one dense (as ONNX exports Linear on 3-D input); 4-D attention matmuls
    (B, heads, S, D) x (B, heads, D, S) are one batch matmul over B*heads groups."""
    @I.ir_module
    class ND:
        @R.function
        def main(x: R.Tensor((2, 3, 5, 40), "int8"), w: R.Tensor((40, 20), "int8"),
                 a: R.Tensor((2, 3, 5, 40), "int8"), b: R.Tensor((2, 3, 40, 7), "int8")):
            with R.dataflow():
                y = R.matmul(x, w, out_dtype="int32")
                z = R.matmul(a, b, out_dtype="int32")
                R.output(y, z)
            return (y, z)

    mod = offload(cfg)(ND)
    assert [(k["workload"]["kind"], k["workload"]["n"], k["workload"]["groups"]) for k in offloaded(mod)] == \
        [("dense", 30, 1), ("batch_matmul", 5, 6)]
    x, w, a, b = i8(2, 3, 5, 40), i8(40, 20), i8(2, 3, 5, 40), i8(2, 3, 40, 7)
    vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    y, z = vm["main"](*[tvm.runtime.tensor(t) for t in (x, w, a, b)])
    assert np.array_equal(y.numpy(), x.astype(np.int32) @ w.astype(np.int32))
    assert np.array_equal(z.numpy(), a.astype(np.int32) @ b.astype(np.int32))


@pytest.mark.parametrize("cfg", ["vta_default", "vta_batch4"])
def test_rgb_stem_folds_kernel_columns_into_channels(cfg):
    """3 input channels x 7 kernel columns -> 21 channels: 2 BLOCK_IN blocks per kernel row instead of 7."""
    @I.ir_module
    class Stem:
        @R.function
        def main(x: R.Tensor((2, 3, 19, 17), "int8"), w: R.Tensor((24, 3, 7, 7), "int8")):
            with R.dataflow():
                o = R.nn.conv2d(x, w, strides=(2, 2), padding=(3, 3), out_dtype="int32")
                R.output(o)
            return o

    mod = offload(cfg)(Stem)
    (k,) = offloaded(mod)
    assert (k["workload"]["ci"], k["workload"]["kh"], k["workload"]["kw"], tuple(k["workload"]["pad"])) == \
        (21, 7, 1, (0, 0))
    x, w = i8(2, 3, 19, 17), i8(24, 3, 7, 7)
    wl = tc.Workload.conv2d(2, 3, 19, 17, 24, 7, 2, 3)
    assert np.array_equal(run(mod, x, w), wl.reference(x, w))


@pytest.mark.parametrize("cfg", ["vta_default", "vta_batch4"])
def test_requantisation_epilogue_fuses_into_the_kernel(cfg):
    """conv/matmul -> + bias -> * M -> >> s -> clip -> int8 is one kernel with an int8 store, equal to TVM's CPU
    build of the same ops (32-bit wrapping included)."""
    rng = np.random.default_rng(3)
    b1 = rng.integers(-5000, 5000, (1, 24, 1, 1)).astype(np.int32)
    b2 = rng.integers(-5000, 5000, (10,)).astype(np.int32)

    @I.ir_module
    class Requant:
        @R.function
        def main(x: R.Tensor((1, 20, 9, 9), "int8"), w: R.Tensor((24, 20, 3, 3), "int8"),
                 m: R.Tensor((600, 10), "int8")):
            with R.dataflow():
                y = R.nn.conv2d(x, w, strides=(2, 2), padding=(1, 1), out_dtype="int32")
                y = R.add(y, R.const(b1))
                y = R.multiply(y, R.const(150, "int32"))
                y = R.right_shift(y, R.const(17, "int32"))
                q = R.astype(R.clip(y, 0, 127), "int8")
                f = R.reshape(q, (1, 600))
                o = R.matmul(f, m, out_dtype="int32")
                o = R.add(o, R.const(b2))
                o = R.right_shift(o, R.const(11, "int32"))
                o = R.astype(R.clip(o, -128, 127), "int8")
                R.output(o)
            return o

    mod = offload(cfg)(Requant)
    wls = [k["workload"] for k in offloaded(mod)]
    assert [(w["kind"], w["bias"], w["multiplier"], w["shift"], tuple(w["clip"]), w["out_dtype"]) for w in wls] == \
        [("conv2d", True, 150, 17, (0, 127), "int8"), ("dense", True, 1, 11, (-128, 127), "int8")]
    args = i8(1, 20, 9, 9), i8(24, 20, 3, 3), i8(600, 10)
    assert np.array_equal(run(mod, *args), run(Requant, *args))


def test_what_the_accelerator_does_not_take_stays_on_the_cpu():
    @I.ir_module
    class Other:
        @R.function
        def main(x: R.Tensor((1, 16, 8, 8), "int8"), w: R.Tensor((16, 8, 3, 3), "int8"),
                 v: R.Tensor((16, 16, 3, 3), "int8"), f: R.Tensor((4, 8), "float32"), g: R.Tensor((8, 4), "float32")):
            with R.dataflow():
                grouped = R.nn.conv2d(x, w, padding=(1, 1), groups=2, out_dtype="int32")
                dilated = R.nn.conv2d(x, v, padding=(2, 2), dilation=(2, 2), out_dtype="int32")
                asym = R.nn.conv2d(x, v, padding=(0, 0, 1, 1), out_dtype="int32")
                fm = R.matmul(f, g)
                R.output(grouped, dilated, asym, fm)
            return (grouped, dilated, asym, fm)

    mod = offload("vta_default")(Other)
    assert [k["workload"]["groups"] for k in offloaded(mod)] == [2]  # only the grouped conv is offloaded
    args = [i8(1, 16, 8, 8), i8(16, 8, 3, 3), i8(16, 16, 3, 3), RNG.random((4, 8), np.float32),
            RNG.random((8, 4), np.float32)]
    vm = lambda m: relax.VirtualMachine(tvm.compile(m, target="llvm"), tvm.cpu())
    got = vm(mod)["main"](*[tvm.runtime.tensor(a) for a in args])
    ref = vm(Other)["main"](*[tvm.runtime.tensor(a) for a in args])
    for a, b in zip(got, ref):
        assert np.array_equal(a.numpy(), b.numpy())
