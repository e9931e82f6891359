"""The TVM target: ``target(cfg)`` (llvm kind, ``vta`` key, config in ``model``), tags, the TIR pipeline
and the runtime entry points. ``register()`` runs once, from the ``tvm.backends`` entry point or import."""
from __future__ import annotations

_PENDING = [False]  # the entry point ran while this module was still importing


def _autoload() -> None:
    """``tvm.backends`` entry point, called at the end of ``import tvm``. Defined before this module imports
    tvm: when that import is the first one in the process, TVM calls back into this half-imported module, which
    then registers at its own end instead."""
    if "register" in globals():
        register()
    else:
        _PENDING[0] = True


import tvm  # noqa: E402 - after _autoload, see its docstring
from tvm.target import Target  # noqa: E402

from ..hardware.config import AcceleratorConfig, preset_names  # noqa: E402
from . import intrinsics  # noqa: E402

_CONFIGS: dict[str, AcceleratorConfig] = {}
_REGISTERED = [False]


def target(config: "AcceleratorConfig | str" = "vta_default") -> Target:
    """A TVM target for an accelerator config: compiles with the tvm_codesign pipeline, runs on CPU tensors."""
    register()
    cfg = AcceleratorConfig.load(config)
    _CONFIGS[cfg.key] = cfg
    return Target({"kind": "llvm", "keys": ["vta", "cpu"], "model": f"vta-{cfg.key}", "tag": f"vta/{cfg.name}"})


def config_of(t: "Target | str") -> AcceleratorConfig:
    """The config a target (or tag such as ``vta/vta_default``) was made for."""
    t = Target(t) if isinstance(t, str) else t
    model = str(t.attrs.get("model", ""))
    if "vta" not in list(t.keys) or not model.startswith("vta-"):
        raise ValueError(f"target {t} is not a tvm_codesign accelerator target (no 'vta' key / model)")
    try:
        return _CONFIGS[model[4:]]
    except KeyError:
        raise ValueError(f"target model {model} names a config not registered in this process; "
                         f"call tvm_codesign.target(config) first") from None


def register() -> None:
    """Register tags for the presets, the TIR pipeline (lowering), the offload for ``tvm.compile`` with a vta
    target, and the runtime functions (idempotent)."""
    if _REGISTERED[0]:
        return
    _REGISTERED[0] = True
    for name in preset_names():
        cfg = AcceleratorConfig.load(name)
        _CONFIGS[cfg.key] = cfg
        tvm.target.register_tag(f"vta/{name}", {"kind": "llvm", "keys": ["vta", "cpu"],
                                                "model": f"vta-{cfg.key}", "tag": f"vta/{name}"}, override=True)
    from ..lowering import pipeline
    from ..runtime import entry
    from . import compile_hooks
    pipeline.register()
    compile_hooks.register()
    entry.register()


if _PENDING[0]:
    register()

__all__ = ["target", "config_of", "register", "intrinsics"]
