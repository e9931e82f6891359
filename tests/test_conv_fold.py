"""Folding a conv's kernel into its input channels (schedules/layout.py): the column fold of an RGB stem and the
whole-window fold (im2col) of a 1-channel stride-1 stem, chosen where they cut GEMM micro-op iterations; bit-exact
against the workload's numpy reference through the offload pass, and the choice seen from the timing simulator."""
import dataclasses

import numpy as np
import pytest
from tvm import relax

import tvm_codesign as tc
from tvm_codesign.frontend.relax import offload, offloaded
from tvm_codesign.hardware import modes as M
from tvm_codesign.schedules.groups import kernel_workload
from tvm_codesign.schedules.layout import fold_kw, fold_window

from test_frontend_relax import i8, run

CFG = tc.AcceleratorConfig.load("vta_default")


def conv_module(n, ci, h, w, co, kh, kw, stride, pad):
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((n, ci, h, w), "int8"))
    wt = relax.Var("wt", relax.TensorType((co, ci, kh, kw), "int8"))
    with bb.function("main", [x, wt]):
        with bb.dataflow():
            o = bb.emit_output(relax.op.nn.conv2d(x, wt, strides=stride, padding=pad, out_dtype="int32"))
        bb.emit_func_output(o)
    return bb.get()


@pytest.mark.parametrize("shape, folded", [
    # (n, ci, h, w, co, kh, kw, stride, pad) -> the kernel's (ci, h, w, kh, kw)
    ((1, 1, 32, 32, 16, 3, 3, 1, 1), (9, 32, 32, 1, 1)),     # the digits stem: one block instead of three
    ((2, 1, 11, 9, 20, 3, 3, 2, 1), (9, 6, 5, 1, 1)),        # strided, odd sizes, two blocks of outputs
    ((1, 2, 9, 10, 8, 5, 1, 1, (2, 0)), (10, 9, 10, 1, 1)),  # a 5x1 kernel: rows fold too
    ((1, 1, 7, 7, 16, 2, 3, 1, (0, 1)), (6, 6, 7, 1, 1)),    # uneven kernel, padding on columns only
    ((1, 3, 19, 17, 24, 7, 7, 2, 3), (21, 25, 9, 7, 1)),     # RGB 7x7/2: windows overlap, columns only
    ((1, 3, 12, 12, 16, 3, 3, 1, 1), (9, 14, 12, 3, 1)),     # RGB 3x3/1: 27 channels would load 2 blocks per pixel
])
@pytest.mark.parametrize("cfg", ["vta_default", "vta_batch4"])
def test_folded_conv_is_exact(shape, folded, cfg):
    n, ci, h, w, co, kh, kw, s, p = shape
    pad = p if isinstance(p, tuple) else (p, p)
    mod = offload(cfg)(conv_module(n, ci, h, w, co, kh, kw, (s, s), pad))
    (k,) = offloaded(mod)
    got = k["workload"]
    assert (got["ci"], got["h"], got["w"], got["kh"], got["kw"]) == folded
    x, wt = i8(n, ci, h, w), i8(co, ci, kh, kw)
    ref = tc.Workload.conv2d(n, ci, h, w, co, (kh, kw), s, pad).reference(x, wt)
    assert np.array_equal(run(mod, x, wt), ref)


def test_window_fold_needs_a_gain_on_both_counts():
    """None where the window does not cut micro-ops (16 channels already fill a block) or would load more input
    vectors (the strided RGB stem's overlapping windows), in 2:4 modes and for grouped convs."""
    rgb = tc.Workload.conv2d(1, 3, 224, 224, 64, 7, 2, 3)
    assert fold_window(rgb, CFG) is None and fold_kw(rgb, CFG) is not None
    assert fold_window(tc.Workload.conv2d(1, 16, 16, 16, 32, 3, 1, 1), CFG) is None
    stem = tc.Workload.conv2d(1, 1, 32, 32, 16, 3, 1, 1)
    assert fold_window(stem, CFG).ci == 9
    sparse = M.flexible(CFG, 8, True).with_mode("w8a8s")
    assert fold_window(stem, sparse) is None and kernel_workload(stem, sparse) == stem
    grouped = dataclasses.replace(tc.Workload.conv2d(1, 2, 8, 8, 2, 3, 1, 1), groups=2, ci=1, co=1)
    assert fold_window(grouped, CFG) is None


def test_window_fold_cuts_the_stems_cycles():
    """The digits stem through the timing simulator, each fold with its best schedule: the window-folded kernel
    runs a third of the column-folded one's GEMM micro-op iterations and takes fewer cycles."""
    from tvm_codesign.tuner import network
    stem = tc.Workload.conv2d(1, 1, 32, 32, 16, 3, 1, 1)
    cyc = {}
    for name, kwl in (("window", fold_window(stem, CFG)), ("columns", fold_kw(stem, CFG))):
        k, _ = network._pick(kwl, CFG, "tuned")
        cyc[name] = tc.build(kwl, CFG, knobs=k).time().cycles
    assert cyc["window"] < cyc["columns"], cyc
