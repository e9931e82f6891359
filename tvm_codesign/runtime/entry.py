"""Packed functions the compiled modules call. ``tvm_codesign.run(key, blob, *ptrs)`` runs a kernel,
``tvm_codesign.run_groups(key, blob, groups, batched, *ptrs)`` runs it on ``groups`` image groups in one pass;
the per-intrinsic names only exist to fail loudly if a tensorized function skipped the lowering."""
from __future__ import annotations

import hashlib

import tvm_ffi

from .kernel import CompiledKernel

_KERNELS: dict[int, CompiledKernel] = {}
LAST: list = [None]  # the kernel lowered most recently (build() reads it right after tvm.compile)
BY_NAME: dict[str, CompiledKernel] = {}  # global symbol -> kernel (per-layer profiles of whole models)


def add(kernel: CompiledKernel, name: str | None = None) -> tuple[int, str]:
    """Keep a kernel for this process; returns (key, blob) to embed in the compiled function."""
    blob = kernel.to_blob()
    key = key_of(blob)
    kernel = _KERNELS.setdefault(key, kernel)  # the same program under another name: the object its calls reach
    LAST[0] = kernel
    if name:
        BY_NAME[name] = kernel
    return key, blob


def key_of(blob: str) -> int:
    """The key a compiled function passes with ``blob`` to ``tvm_codesign.run``."""
    return int.from_bytes(hashlib.sha1(blob.encode()).digest()[:7], "little")


def restore(name: str, blob: str) -> CompiledKernel:
    """Register a saved kernel under its name (``tvm_codesign.load``): a loaded module's calls reach this object,
    so its stats and program are there for ``profile()`` and ``program()``."""
    kernel = BY_NAME[name] = get(key_of(blob), blob)
    return kernel


def get(key: int, blob: str | None = None) -> CompiledKernel:
    k = _KERNELS.get(key)
    if k is None:
        if blob is None:
            raise KeyError(f"no accelerator kernel {key} in this process")
        k = _KERNELS[key] = CompiledKernel.from_blob(blob)
    return k


def _run(key, blob, *ptrs):
    _run_groups(key, blob, 1, 0, *ptrs)


def _run_groups(key, blob, groups, batched, *ptrs):
    kernel = get(int(key), str(blob))
    kernel.run_pointers([p.value if hasattr(p, "value") else int(p) for p in ptrs], int(groups), int(batched))


def _not_lowered(*args):
    raise RuntimeError("a tensorized tvm_codesign intrinsic reached the CPU: compile with "
                       "tvm.compile(mod, target=tvm_codesign.target(cfg)) or tir_pipeline='tvm_codesign'")


def register() -> None:
    tvm_ffi.register_global_func("tvm_codesign.run", _run, override=True)
    tvm_ffi.register_global_func("tvm_codesign.run_groups", _run_groups, override=True)
    for name in ("gemm", "reset", "alu", "alu_imm"):
        tvm_ffi.register_global_func(f"tvm_codesign.{name}", _not_lowered, override=True)
