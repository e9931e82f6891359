"""compile() options: TVM targets of the package (as tc.build takes them), and the progress bar of long compiles."""
import numpy as np
import pytest
import tvm
from tvm import relax

import tvm_codesign as tc


W = np.random.default_rng(0).integers(-128, 128, (32, 16), dtype=np.int8)


def _module() -> tvm.IRModule:
    x = relax.Var("x", relax.TensorType((8, 32), "int8"))
    w = W
    bb = relax.BlockBuilder()
    with bb.function("main", [x]):
        bb.emit_func_output(bb.emit(relax.op.matmul(x, relax.const(w), out_dtype="int32")))
    return bb.get()


@pytest.mark.parametrize("target,name", [
    (lambda: tc.target("vta_batch4"), "vta_batch4"),
    (lambda: (tc.target("vta_default"), tvm.target.Target("vta/edge_tiny"))[1], "edge_tiny"),  # a preset's tag
    (lambda: "vta/vta_default", "vta_default"),
])
def test_compile_accepts_the_targets_build_accepts(target, name):
    cm = tc.compile(_module(), target())
    assert cm.config.name == name and len(cm.kernels) == 1
    x = np.random.default_rng(1).integers(-128, 128, (8, 32), dtype=np.int8)
    assert np.array_equal(cm(x), x.astype(np.int32) @ W.astype(np.int32))


def test_compile_rejects_a_target_of_another_kind():
    with pytest.raises(ValueError, match="not a tvm_codesign accelerator target"):
        tc.compile(_module(), tvm.target.Target("llvm"))


def test_progress_bar_over_the_compile_steps(monkeypatch, capsys):
    from tvm_codesign import progress
    monkeypatch.setattr(progress, "DELAY_S", 0)  # as if the compile were slow
    tc.compile(_module(), "vta_default", progress=True)
    err = capsys.readouterr().err
    assert "tvm_codesign: compiling IRModule (scheduling dense 8x32 . 16x32^T)" in err
    assert "lowering and building" in err
    tc.compile(_module(), "vta_default", progress=False)
    assert "compiling" not in capsys.readouterr().err
