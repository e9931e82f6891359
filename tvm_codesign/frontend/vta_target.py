"""What ``tvm.compile(mod, target=<vta target>)`` does before TVM's own pipelines (``backend/compile_hooks.py``
runs these when the target has the ``vta`` key).

Relax: ``offload(config_of(target))``, then TVM's default pipeline (the rest legalizes to llvm). TIR alone (a
user's PrimFunc): each recognised int8 conv2d / matmul becomes ``user_layout_func`` (same parameters, run on the
accelerator). Nothing offloaded warns with ``NotOffloadedWarning`` (CPU code for an accelerator target is never
silent); the counts go to the ``tvm_codesign`` logger.
"""
from __future__ import annotations

import logging
import warnings

import tvm
from tvm import relax, tirx

from ..backend import config_of
from ..lowering import lower
from ..schedules.choice import choose
from ..schedules.schedule import schedule
from .composite import Signature, user_layout_func
from .relax import offload, offloaded
from .tir import UnsupportedOp, recognise

log = logging.getLogger("tvm_codesign")
MARK = "tvm_codesign.offloaded"  # IRModule attribute: the Relax step ran (the TIR step leaves the module alone)
_ACC_ATTRS = ("tvm_codesign.config", "tvm_codesign.workload")


class NotOffloadedWarning(UserWarning):
    """A module compiled for an accelerator target runs entirely on the CPU."""


def _name(t: tvm.target.Target) -> str:
    return str(t.tag) or str(t.attrs.get("model", ""))


def _count_ops(mod: tvm.IRModule) -> int:
    n = [0]

    def visit(e):
        if isinstance(e, relax.Call) and isinstance(e.op, tvm.ir.Op) and e.op.name in ("relax.nn.conv2d",
                                                                                      "relax.matmul"):
            n[0] += 1
    for f in mod.functions.values():
        if isinstance(f, relax.Function):
            relax.analysis.post_order_visit(f, visit)
    return n[0]


def offload_relax(mod: tvm.IRModule, t: tvm.target.Target) -> tvm.IRModule:
    """The Relax step: accelerator kernels for the int8 conv2d / matmul layers, marked as done."""
    ops = _count_ops(mod)
    out = offload(config_of(t))(mod)
    n = len(offloaded(out))
    left = _count_ops(out)
    if n == 0:
        warnings.warn(f"tvm.compile for {_name(t)}: nothing runs on the accelerator (it takes int8 x int8 -> int32 "
                      f"conv2d / matmul; the module's {ops} conv2d/matmul run on the CPU). Quantize first, e.g. "
                      f"tvm_codesign.compile(model, config, calibration=...)", NotOffloadedWarning, stacklevel=2)
    log.info("tvm.compile for %s: %d accelerator kernels, %d conv2d/matmul on the CPU", _name(t), n, left)
    return out.with_attr(MARK, n)


def _vta(f: tirx.PrimFunc) -> tvm.target.Target | None:
    t = f.attrs.get("target") if f.attrs is not None else None
    return t if t is not None and "vta" in list(t.keys) else None


def offload_tir(mod: tvm.IRModule) -> tvm.IRModule:
    """The TIR step, for a TIR module compiled on its own: recognised PrimFuncs run on the accelerator."""
    if mod.attrs is not None and MARK in mod.attrs:
        return mod
    funcs = [(gv, f) for gv, f in mod.functions.items() if isinstance(f, tirx.PrimFunc)]
    if any(f.attrs is not None and any(a in f.attrs for a in _ACC_ATTRS) for _, f in funcs):
        return mod  # already scheduled for the accelerator (tc.build, export_library)
    todo = [(gv, f, t) for gv, f in funcs if (t := _vta(f)) is not None]
    if not todo:
        return mod
    why, mod = [], mod.clone()
    for gv, f, t in todo:
        try:
            rec = recognise(f)
        except UnsupportedOp as e:
            why.append(f"{gv.name_hint}: {e}")
            continue
        cfg = config_of(t)
        k, _ = choose(rec.workload, cfg)
        kernel = lower(schedule(rec.workload, cfg, k).mod["main"])
        new = user_layout_func(rec.workload, cfg, k, kernel, Signature.of_func(f, rec))
        mod.update_func(gv, new.with_attrs(dict(f.attrs.items())))
    if len(why) == len(todo):
        warnings.warn(f"tvm.compile for {_name(todo[0][2])}: nothing runs on the accelerator, the PrimFuncs "
                      f"compile for the CPU ({'; '.join(why)})", NotOffloadedWarning, stacklevel=2)
    log.info("tvm.compile for %s: %d of %d PrimFuncs on the accelerator", _name(todo[0][2]),
             len(todo) - len(why), len(todo))
    return mod
