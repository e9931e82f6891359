"""The TVM side: target and tags, intrinsics, the pipeline, self-contained compiled modules."""
import subprocess
import sys

import numpy as np
import pytest
import tvm

import tvm_codesign as tc
from tvm_codesign.lowering import lower
from tvm_codesign.runtime.kernel import CompiledKernel
from tvm_codesign.schedules.schedule import schedule
from tvm_codesign.backend import intrinsics


def test_target_carries_the_config():
    for name in tc.preset_names():
        cfg = tc.AcceleratorConfig.load(name)
        t = tc.target(cfg)
        assert t.kind.name == "llvm" and "vta" in list(t.keys)
        assert tc.config_of(t).key == cfg.key
        assert tc.config_of(f"vta/{name}").key == cfg.key  # registered tag
    custom = tc.AcceleratorConfig(name="mine", dram_bandwidth=3.0)
    assert tc.config_of(tc.target(custom)) == custom
    with pytest.raises(ValueError, match="not a tvm_codesign accelerator target"):
        tc.config_of(tvm.target.Target("llvm"))


def test_intrinsics_are_per_config():
    a, b = tc.AcceleratorConfig.load("vta_default"), tc.AcceleratorConfig.load("vta_1x32x32")
    assert intrinsics.gemm(a) != intrinsics.gemm(b)
    assert intrinsics.alu(a, "shr", 8) != intrinsics.alu(a, "shr", 9)
    from tvm.s_tir import TensorIntrin
    assert TensorIntrin.get(intrinsics.reset(b), allow_missing=True) is not None
    with pytest.raises(ValueError, match="unknown ALU op"):
        intrinsics.alu(a, "div", 2)
    for kind in ("load_inp", "load_wgt", "load_acc", "store_acc", "store_out"):
        assert TensorIntrin.get(intrinsics.dma(b, kind), allow_missing=True) is not None
        assert intrinsics.dma(a, kind) != intrinsics.dma(b, kind)
    with pytest.raises(ValueError, match="unknown DMA kind"):
        intrinsics.dma(a, "load_uop")


def test_schedule_uses_the_dma_intrinsics():
    cfg = tc.AcceleratorConfig.load("vta_default")
    script = schedule(tc.Workload.dense(32, 64, 48, bias=True), cfg).mod.script()
    for kind in ("load_inp", "load_wgt", "load_acc", "store_acc"):
        assert f'"tvm_codesign.dma", "{kind}"' in script, kind
    padded = schedule(tc.Workload.conv2d(1, 16, 8, 8, 16, 3, 1, 1), cfg).mod.script()
    assert '"load_inp"' not in padded and "if_then_else" in padded  # padded tiles stay copy nests


def test_import_tvm_registers_through_the_entry_point():
    code = ("import tvm, sys; t = tvm.target.Target('vta/edge_tiny'); "
            "assert 'vta' in list(t.keys), t; assert 'tvm_codesign' in sys.modules; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-2000:]


def test_plain_llvm_compile_also_lowers_and_explicit_pipeline_name():
    wl = tc.Workload.dense(16, 32, 16)
    cfg = tc.AcceleratorConfig.load("vta_default")
    x = np.arange(16 * 32, dtype=np.int64).reshape(16, 32).astype(np.int8)
    w = (np.arange(16 * 32, dtype=np.int64).reshape(16, 32) * 7).astype(np.int8)
    for kwargs in (dict(target="llvm"), dict(target="llvm", tir_pipeline="tvm_codesign")):
        lib = tvm.compile(schedule(wl, cfg).mod, **kwargs)
        from tvm_codesign.schedules import layout
        args = [layout.pack_data(wl, cfg, x), layout.pack_weight(wl, cfg, w),
                np.zeros(layout.packed_shapes(wl, cfg)["out"], np.int32)]
        t = [tvm.runtime.tensor(a) for a in args]
        lib["main"](*t)
        assert np.array_equal(layout.unpack_out(wl, cfg, t[-1].numpy()), wl.reference(x, w))


def test_exported_module_runs_in_a_fresh_process(tmp_path):
    wl = tc.Workload.conv2d(1, 16, 6, 6, 16, 3, 1, 1, bias=True, shift=5, out_dtype="int8")
    m = tc.build(wl, "edge_tiny")
    so = tmp_path / "conv.so"
    m.lib.export_library(str(so))
    x = np.random.default_rng(0).integers(-128, 128, (1, 16, 6, 6), dtype=np.int8)
    w = np.random.default_rng(1).integers(-128, 128, (16, 16, 3, 3), dtype=np.int8)
    b = np.arange(16, dtype=np.int32) * 100
    np.savez(tmp_path / "io.npz", x=x, w=w, b=b, ref=wl.reference(x, w, b))
    code = f"""
import numpy as np, tvm, tvm_codesign as tc
from tvm_codesign.schedules import layout
wl = tc.Workload(**{wl.to_dict()!r})
cfg = tc.AcceleratorConfig.load("edge_tiny")
d = np.load({str(tmp_path / 'io.npz')!r})
lib = tvm.runtime.load_module({str(so)!r})
args = [layout.pack_data(wl, cfg, d["x"]), layout.pack_weight(wl, cfg, d["w"]), layout.pack_bias(wl, cfg, d["b"]),
        np.zeros(layout.packed_shapes(wl, cfg)["out"], np.int8)]
t = [tvm.runtime.tensor(a) for a in args]
lib["main"](*t)
assert np.array_equal(layout.unpack_out(wl, cfg, t[-1].numpy()), d["ref"])
print("ok", tc.last_stats().cycles)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-3000:]


def test_kernel_blob_roundtrip_and_inspection():
    m = tc.build(tc.Workload.conv2d(1, 32, 8, 8, 32, 3, 1, 1, relu=True), "vta_default")
    k2 = CompiledKernel.from_blob(m.kernel.to_blob())
    assert k2.program.encode() == m.kernel.program.encode() and k2.params == m.kernel.params
    asm = m.disassemble()
    assert asm.count("\n") + 1 == m.instructions and "GEMM" in asm and "pop_prev" in asm and "pad=" in asm
    t = m.time()  # timing-only: no data
    x = np.ones((1, 32, 8, 8), np.int8)
    m(x, np.ones((32, 32, 3, 3), np.int8))
    assert t.cycles == m.stats.cycles == tc.last_stats().cycles  # timing does not depend on data
    assert m.stats.busy["compute"] > 0 and m.stats.dram_read_bytes["WGT"] > 0


def test_intrinsic_that_skipped_lowering_fails_loudly():
    from tvm_codesign.runtime import entry
    entry.register()
    with pytest.raises(Exception, match="reached the CPU"):
        tvm.get_global_func("tvm_codesign.gemm")(1, 2, 3)


def test_lowering_rejects_a_function_without_config():
    from tvm.script import tirx as T

    @T.prim_func
    def f(A: T.Buffer((4,), "int8")):
        A[0] = T.int8(1)

    with pytest.raises(tc.LoweringError, match="no tvm_codesign.config attribute"):
        lower(f)
