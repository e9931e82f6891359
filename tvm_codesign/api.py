"""``build``: an operator (Workload or a user's TIR PrimFunc) -> a Module that runs on the accelerator."""
from __future__ import annotations

import time

import numpy as np
import tvm

from .hardware.config import AcceleratorConfig
from .runtime import entry
from .runtime.kernel import CompiledKernel
from .schedules import layout
from .frontend.composite import Signature
from .schedules.choice import announce, pick
from .schedules.knobs import Knobs
from .schedules.schedule import schedule
from .schedules.workload import Workload
from .simulator import SimStats
from .backend import config_of, target


class Module:
    """A compiled accelerator operator. Call it on arrays in the user's layout; read ``stats`` after.

    ``lib`` is the kernel alone (VTA's packed layouts, see ``run_packed``); ``export_library(path)`` writes a
    library in the user's layouts. ``schedule_source``: "user" (knobs given), "tuned" or "default"."""

    def __init__(self, wl: Workload, cfg: AcceleratorConfig, knobs: Knobs, lib, kernel: CompiledKernel,
                 compile_s: float, recognised=None, signature: Signature | None = None,
                 schedule_source: str = "user"):
        self.workload, self.config, self.knobs = wl, cfg, knobs
        self.lib, self.kernel, self.compile_s = lib, kernel, compile_s
        self.recognised = recognised
        self.signature = signature or Signature.of_workload(wl)
        self.schedule_source = schedule_source

    def __call__(self, *args, multiplier=None) -> np.ndarray:
        """(data, weight[, bias]) for a Workload (``multiplier=``: its int32 per output channel if
        ``multiplier="channel"``); the function's own inputs, in order, for a PrimFunc."""
        if self.recognised is not None:
            data, weight, bias = self.recognised.canonical(args)
        elif len(args) in (2, 3):
            data, weight, bias = (*args, None) if len(args) == 2 else args
        else:
            raise TypeError(f"call with (data, weight[, bias]), got {len(args)} arguments")
        wl, cfg = self.workload, self.config
        if wl.bias and bias is None:
            raise TypeError(f"{wl.describe()} has a bias: call module(data, weight, bias)")
        if not wl.bias and bias is not None:
            raise TypeError(f"{wl.describe()} has no bias parameter")
        if ("multiplier" in wl.vectors) != (multiplier is not None):
            raise TypeError(f"{wl.describe()}: pass multiplier= (one int32 per output channel) exactly when the "
                            f"workload's multiplier is 'channel' (it is {wl.multiplier!r})")
        for name, a, dt in (("data", data, "int8"), ("weight", weight, "int8")):
            if np.asarray(a).dtype != np.dtype(dt):
                raise TypeError(f"{name} must be {dt}, got {np.asarray(a).dtype}")
        args = [layout.pack_data(wl, cfg, data), layout.pack_weight(wl, cfg, weight)]
        if wl.bias:
            args.append(layout.pack_bias(wl, cfg, np.asarray(bias, np.int32)))
        if multiplier is not None:
            args.append(layout.pack_vector(wl, cfg, "multiplier", np.asarray(multiplier)))
        out = np.zeros(layout.packed_shapes(wl, cfg)["out"], wl.out_dtype)
        self.run_packed(*args, out)
        return layout.unpack_out(wl, cfg, out)

    def run_packed(self, *arrays: np.ndarray) -> SimStats:
        """Run on packed-layout arrays (data, weight, [bias], out) through the TVM module; out in place."""
        tensors = [tvm.runtime.tensor(np.ascontiguousarray(a)) for a in arrays]
        self.lib["main"](*tensors)
        arrays[-1][...] = tensors[-1].numpy()
        return self.kernel.last_stats

    @property
    def stats(self) -> SimStats | None:
        """Cycles, busy/idle per module, bytes, energy of the last call."""
        return self.kernel.last_stats

    def time(self) -> SimStats:
        """Timing-only run: no data needed."""
        return self.kernel.time()

    @property
    def instructions(self) -> int:
        return self.kernel.instructions

    def disassemble(self) -> str:
        return self.kernel.disassemble()

    def export_library(self, path):
        """Write a shared library whose ``main`` takes this operator's own parameters in the user's layouts
        (a PrimFunc's signature; (data, weight[, bias], out) for a Workload). Load it with
        ``tc.load_module(path)`` (numpy in, numpy out) or ``tvm.runtime.load_module(path)["main"]``."""
        from .export import export_library
        return export_library(self, path)

    def __repr__(self) -> str:
        return (f"Module({self.workload.describe()} on {self.config.name}, {self.instructions} instructions, "
                f"knobs {self.knobs.to_dict()})")


def build(op, target_=None, *, knobs: "Knobs | dict | None" = None, config=None) -> Module:
    """Compile ``op`` (a Workload, or a TIR PrimFunc/IRModule of an int8 matmul or NCHW conv2d) for a config.

    ``target_``/``config``: a preset name, AcceleratorConfig, JSON path or tvm_codesign target (default
    ``vta_default``). ``knobs``: a schedule (None = the config's tuned one if ``schedules/store.py`` finds it, else
    the default schedule for this layer); the Module's ``schedule_source`` says which, and so does an INFO line on
    the ``tvm_codesign`` logger.
    """
    spec = config if config is not None else target_
    if isinstance(spec, tvm.target.Target):
        cfg = config_of(spec)
    else:
        cfg = AcceleratorConfig.load(spec if spec is not None else "vta_default")
    rec = sig = None
    if isinstance(op, Workload):
        wl = op
    else:
        from .frontend.tir import _func, recognise
        rec = recognise(op)
        wl, sig = rec.workload, Signature.of_func(_func(op), rec)
    k, source = pick(wl, cfg, knobs)
    m = build_workload(wl, cfg, k, source, rec, sig)
    announce(wl, cfg, k, source)  # after the knobs were checked: no line for a build that fails
    return m


def build_workload(wl: Workload, cfg: AcceleratorConfig, knobs: Knobs, source: str = "user", recognised=None,
                   signature: Signature | None = None) -> Module:
    """``build`` of a Workload with the given schedule, logging nothing (the tuner compiles many)."""
    t0 = time.perf_counter()
    sch = schedule(wl, cfg, knobs)
    entry.LAST[0] = None
    lib = tvm.compile(sch.mod, target=target(cfg))
    kernel = entry.LAST[0]
    return Module(wl, cfg, knobs, lib, kernel, time.perf_counter() - t0, recognised, signature, source)
