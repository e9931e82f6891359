"""The ``tvm_codesign`` TIR pipeline: TVM's s_tir pipeline with the accelerator lowering inserted right
after FlattenBuffer, registered by name and chosen by default for targets with the ``vta`` key."""
from __future__ import annotations

import tvm
from tvm import s_tir, tirx
from tvm.tirx import compilation_pipeline as cp

PIPELINE_NAME = "tvm_codesign"


def prefix_passes() -> list:
    """s_tir lowering up to and including FlattenBuffer: loops, 1-D buffers, tensorized calls."""
    return [s_tir.transform.CanonicalizeLoop(), s_tir.transform.LowerCrossThreadReduction(),
            s_tir.transform.LowerInitBlock(), s_tir.transform.PlanAndUpdateBufferAllocationLocation(),
            s_tir.transform.ConvertBlocksToOpaque(), s_tir.transform.LiftThreadBinding(),
            s_tir.transform.ManifestSharedMemoryLocalStage(), s_tir.transform.CompactBufferAllocation(),
            s_tir.transform.LowerAutoCopy(), s_tir.transform.UnifyThreadBinding(),
            s_tir.transform.LowerMatchBuffer(), s_tir.transform.StmtSimplify(),
            s_tir.transform.InjectPermutedLayout(), s_tir.transform.AnnotateIrregularLoop(),
            s_tir.transform.InjectSoftwarePipeline(), s_tir.transform.TransformMmaBufferLayout(),
            s_tir.transform.LowerOpaqueBlock(), tirx.transform.FlattenBuffer()]


def flatten(mod: tvm.IRModule) -> tvm.IRModule:
    """Apply the prefix (for inspection and tests)."""
    return tvm.ir.transform.Sequential(prefix_passes())(mod)


@tvm.tirx.transform.prim_func_pass(opt_level=0, name="tvm_codesign.LowerToAccelerator")
def lower_to_accelerator(func, mod, ctx):
    """Replace each accelerator function's body by one call that runs its program on the simulator."""
    if func.attrs is None or "tvm_codesign.config" not in func.attrs:
        return func
    from ..runtime import entry
    from . import lower
    kernel = lower(func)
    key, blob = entry.add(kernel, str(func.attrs["global_symbol"]) if "global_symbol" in func.attrs else None)
    ptrs = [p.access_ptr("rw") for p in func.params]
    call = tirx.call_packed("tvm_codesign.run", tirx.IntImm("int64", key), blob, *ptrs)
    return func.with_body(tirx.Evaluate(call)).without_attr("tvm_codesign.config")


def _with_lowering(factory):
    """Wrap a pipeline factory so accelerator functions are lowered first (others are untouched)."""
    def wrapped(**kwargs):
        base, finalize_host, finalize_device = factory(**kwargs)

        @tvm.transform.module_pass(opt_level=0, name="tvm_codesign.pipeline")
        def _pipeline(mod, ctx):
            return base(lower_to_accelerator(mod))

        return _pipeline, finalize_host, finalize_device

    wrapped.tvm_codesign = True
    return wrapped


def register() -> None:
    """Register the ``tvm_codesign`` pipeline and put the lowering in front of TVM's default (s_tir) one.

    ``tvm.compile`` asks for the "default" pipeline by name, whatever the target, so the lowering rides
    on it; it only touches functions scheduled for the accelerator (``tvm_codesign.config`` attribute).
    """
    s_tir_factory = cp.PIPELINE_MAP["s_tir"]
    if not getattr(s_tir_factory, "tvm_codesign", False):
        cp.PIPELINE_MAP["s_tir"] = _with_lowering(s_tir_factory)
    cp.register_tir_pipeline(PIPELINE_NAME, cp.PIPELINE_MAP["s_tir"])
