"""``tvm.compile`` with a ``vta`` target runs the accelerator offload: TVM picks the Relax pipeline "default" (and
the TIR pipeline "s_tir") by name for every CPU-kind target, with no per-target registry, so the factories in
those two maps are wrapped, like ``lowering/pipeline.py`` does for the lowering. The wrappers do nothing unless
the target has the ``vta`` key; then they run ``frontend/vta_target.py``, imported when it runs (the frontend
sits above this floor)."""
from __future__ import annotations

import tvm
from tvm.relax import pipeline as relax_pipeline
from tvm.tirx import compilation_pipeline as cp

RELAX_NAMES = ("default", "default_build")  # the names tvm.compile / relax.build resolve for llvm targets


def _is_vta(t) -> bool:
    return t is not None and "vta" in list(t.keys)


def _relax(factory):
    def wrapped(*args, **kwargs):
        base = factory(*args, **kwargs)

        @tvm.transform.module_pass(opt_level=0, name="tvm_codesign.relax_offload")
        def _pipeline(mod, ctx):
            t = tvm.target.Target.current(allow_none=True)  # relax.build runs the pipeline under `with target`
            if _is_vta(t):
                from ..frontend.vta_target import offload_relax
                mod = offload_relax(mod, t)
            return base(mod)

        return _pipeline

    wrapped.tvm_codesign_offload = True
    return wrapped


def _tir(factory):
    def wrapped(*args, **kwargs):
        base, finalize_host, finalize_device = factory(*args, **kwargs)

        @tvm.transform.module_pass(opt_level=0, name="tvm_codesign.tir_offload")
        def _pipeline(mod, ctx):  # tirx.build has bound each function's target (BindTarget) before this
            if any(_is_vta(f.attrs.get("target")) for f in mod.functions.values() if f.attrs is not None):
                from ..frontend.vta_target import offload_tir
                mod = offload_tir(mod)
            return base(mod)

        return _pipeline, finalize_host, finalize_device

    wrapped.tvm_codesign_offload = True
    wrapped.tvm_codesign = getattr(factory, "tvm_codesign", False)  # the lowering inside (lowering/pipeline.py)
    return wrapped


def register() -> None:
    """Wrap the Relax "default"/"default_build" and the TIR "s_tir" pipeline factories (idempotent; call after
    ``lowering.pipeline.register`` so the offload runs before the lowering)."""
    for name in RELAX_NAMES:
        f = relax_pipeline.PIPELINE_MAP[name]
        if not getattr(f, "tvm_codesign_offload", False):
            relax_pipeline.PIPELINE_MAP[name] = _relax(f)
    f = cp.PIPELINE_MAP["s_tir"]
    if not getattr(f, "tvm_codesign_offload", False):
        cp.PIPELINE_MAP["s_tir"] = _tir(f)
    cp.register_tir_pipeline("tvm_codesign", cp.PIPELINE_MAP["s_tir"])
