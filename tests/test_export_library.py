"""``Module.export_library``: the exported operator takes the user's layouts (numpy in, numpy out) like the
in-process Module, in a fresh process with plain TVM (``load_module(path)["main"]``) and with ``tc.load_module``;
bit-exact against ``Workload.reference`` / numpy."""
import subprocess
import sys

import numpy as np
import pytest
import tvm

import tvm_codesign as tc
from prim_funcs import matmul_kn

RNG = np.random.default_rng(3)


def i8(*shape):
    return RNG.integers(-128, 128, shape, dtype=np.int8)


def cases():
    """(name, built module, inputs in the user's order, output position, numpy reference)."""
    conv = tc.Workload.conv2d(3, 20, 9, 9, 24, 3, 2, 1, bias=True, shift=7, relu=True, out_dtype="int8")
    x, w, b = i8(3, 20, 9, 9), i8(24, 20, 3, 3), RNG.integers(-9000, 9000, 24).astype(np.int32)
    bmm = tc.Workload.batch_matmul(2, 5, 40, 24)
    p, q = i8(2, 5, 40), i8(2, 24, 40)
    a, k = i8(20, 40), i8(40, 24)
    return [("conv", tc.build(conv, "vta_batch4"), [x, w, b], 3, conv.reference(x, w, b)),
            ("bmm", tc.build(bmm, "vta_default"), [p, q], 2, bmm.reference(p, q)),
            ("matmul", tc.build(matmul_kn, "edge_tiny"), [a, k], 0, (a.astype(np.int64) @ k).astype(np.int32))]


def test_exported_operator_takes_the_user_layouts_in_a_fresh_process(tmp_path):
    names = []
    for name, m, inputs, out_at, ref in cases():
        assert np.array_equal(m(*inputs), ref)  # the in-process contract
        assert m.export_library(tmp_path / f"{name}.so") == tmp_path / f"{name}.so"
        np.savez(tmp_path / f"{name}.npz", *inputs, ref=ref, out_at=out_at)
        names.append(name)
    code = f"""
import numpy as np, tvm   # plain TVM: 'import tvm' registers the accelerator runtime (entry point)
for name in {names!r}:
    d = np.load({str(tmp_path)!r} + f"/{{name}}.npz")
    ref, inputs = d["ref"], [d[f"arr_{{i}}"] for i in range(len(d.files) - 2)]
    args = [tvm.runtime.tensor(a) for a in inputs]
    out = tvm.runtime.tensor(np.zeros(ref.shape, ref.dtype))
    args.insert(int(d["out_at"]), out)
    tvm.runtime.load_module({str(tmp_path)!r} + f"/{{name}}.so")["main"](*args)
    assert np.array_equal(out.numpy(), ref), name
    import tvm_codesign as tc
    m = tc.load_module({str(tmp_path)!r} + f"/{{name}}.so")
    got = m(*inputs)
    assert got.dtype == ref.dtype and np.array_equal(got, ref), name
    assert m.stats.cycles > 0
    print(name, "ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split() == [w for n in names for w in (n, "ok")]


def test_loaded_operator_rejects_bad_input_by_name(tmp_path):
    wl = tc.Workload.dense(10, 40, 24)
    m = tc.build(wl, "vta_default")
    lm = tc.load_module(m.export_library(tmp_path / "dense.so"))
    x, w = i8(10, 40), i8(24, 40)
    assert np.array_equal(lm(x, w), wl.reference(x, w))
    with pytest.raises(TypeError, match="takes 2 inputs, got 1"):
        lm(x)
    with pytest.raises(TypeError, match=r"input 0 must be int8 of shape \(10, 40\), got int8 of shape \(10, 39\)"):
        lm(i8(10, 39), w)
    with pytest.raises(TypeError, match=r"input 1 must be int8 of shape \(24, 40\), got int32"):
        lm(x, w.astype(np.int32))
    with pytest.raises(TypeError, match=r"(?s)weight.dtype.*expected int8"):  # plain TVM names the parameter
        lm.lib["main"](*[tvm.runtime.tensor(a) for a in (x, w.astype(np.int32), np.zeros((10, 24), np.int32))])
    m.lib.export_library(str(tmp_path / "packed.so"))  # the kernel alone (packed layouts) is not an operator library
    with pytest.raises(ValueError, match="not a tvm_codesign operator library"):
        tc.load_module(tmp_path / "packed.so")
    with pytest.raises(FileNotFoundError, match="no operator library"):
        tc.load_module(tmp_path / "missing.so")


def test_exported_per_channel_requantisation_takes_the_multiplier(tmp_path):
    """A workload with a per-channel requantisation multiplier exports as (data, weight, bias, multiplier, out)."""
    wl = tc.Workload.conv2d(2, 20, 9, 9, 24, 3, 1, 1, bias=True, multiplier="channel", shift=18, relu=True,
                            out_dtype="int8")
    x, w = i8(2, 20, 9, 9), i8(24, 20, 3, 3)
    b, mul = RNG.integers(-9000, 9000, 24).astype(np.int32), RNG.integers(1, 300, 24).astype(np.int32)
    ref = wl.reference(x, w, b, multiplier=mul)
    m = tc.build(wl, "vta_default")
    assert np.array_equal(m(x, w, b, multiplier=mul), ref) and len(np.unique(ref)) > 20
    lm = tc.load_module(m.export_library(tmp_path / "pc.so"))
    assert np.array_equal(lm(x, w, b, mul), ref)
