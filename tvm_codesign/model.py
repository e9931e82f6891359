"""Whole models: ``compile(model, target)`` for PyTorch modules, ONNX models and Relax IRModules.

Float models are quantised after calibration (frontend/quantize.py); int8 conv2d / matmul go to the
accelerator (frontend/relax.py), everything else runs on the CPU through relax.VirtualMachine.
"""
from __future__ import annotations

import time
from collections import Counter

import numpy as np
import tvm
from tvm import relax

from .frontend import epilogue, onnx_qdq
from .frontend import quantize as Q
from .frontend.relax import offload, offloaded, workload_of
from .hardware.config import AcceleratorConfig
from .runtime import entry
from .schedules.knobs import Knobs
from .schedules.workload import Workload


def _import(model, input_shapes, example_inputs) -> tvm.IRModule:
    if isinstance(model, tvm.IRModule):
        return model
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None and isinstance(model, torch.nn.Module):
        from .frontend.torch_import import import_torch
        return import_torch(model, example_inputs)
    import onnx
    if isinstance(model, (str, onnx.ModelProto)) or hasattr(model, "__fspath__"):
        from .frontend.indices import normalize_indices
        from .frontend.onnx_import import import_onnx
        return normalize_indices(import_onnx(model, input_shapes))  # its Gathers are fast-mode takes too
    raise TypeError(f"cannot compile a {type(model).__name__}: give a torch.nn.Module, an ONNX model or path, "
                    "or a Relax IRModule")


class CompiledModel:
    """A model compiled for the accelerator: call it on numpy inputs, then ``profile()`` the last run."""

    def __init__(self, mod: tvm.IRModule, cfg: AcceleratorConfig, cpu_ops: Counter, total_macs: int,
                 compile_s: float, cpu_macs: Counter | None = None):
        self.mod, self.config, self.cpu_ops, self.compile_s = mod, cfg, cpu_ops, compile_s
        self.kernels = offloaded(mod)
        self.calls = _call_counts(mod)  # a kernel shared by identical layers runs once per layer
        self.total_macs = total_macs
        self.cpu_macs = cpu_macs or Counter()  # conv2d / matmul MACs left on the CPU, per op
        self.accelerator_macs = sum(Workload(**k["workload"]).macs * self.calls.get(k["name"], 0)
                                    for k in self.kernels)
        self.vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())

    def __call__(self, *inputs, **named):
        if named:
            names = [p.name for p in self.mod["main"].params]
            missing = [n for n in names if n not in named]
            if missing or inputs:
                raise TypeError(f"pass all inputs by name ({names}) or all by position; missing {missing}")
            inputs = tuple(named[n] for n in names)
        out = self.vm["main"](*[tvm.runtime.tensor(np.asarray(a, order="C")) for a in inputs])
        return out.numpy() if hasattr(out, "numpy") else tuple(o.numpy() for o in out)

    @property
    def offloaded_mac_fraction(self) -> float:
        """Share of the model's conv/matmul MACs (unpadded) that run on the accelerator."""
        return self.accelerator_macs / max(self.total_macs, 1)

    def program(self, name: str) -> str:
        """The accelerator program of one offloaded layer, as assembly."""
        return entry.BY_NAME[name].disassemble()

    def profile(self) -> list[dict]:
        """Per offloaded layer of the last run: op, shape, device, MACs, cycles, utilisation, bytes, energy;
        then one row per kind of op that ran on the CPU."""
        rows = []
        for k in self.kernels:
            st = entry.BY_NAME[k["name"]].last_stats
            wl = k["workload"]
            rows.append({"name": k["name"], "op": wl["kind"], "device": "accelerator",
                         "calls": self.calls.get(k["name"], 0),
                         "shape": f"n={wl['n']} {wl['ci']}->{wl['co']} {wl['h']}x{wl['w']} k={wl['kh']}",
                         "macs": st.macs if st else None, "cycles": st.cycles if st else None,
                         "utilisation": st.utilisation if st else None,
                         "dram_bytes": st.dram_bytes if st else None, "energy_uj": st.energy_uj if st else None})
        for op, n in sorted(self.cpu_ops.items()):
            rows.append({"name": op, "op": op, "device": "cpu", "count": n, "macs": self.cpu_macs.get(op) or None})
        return rows


def _call_counts(mod: tvm.IRModule) -> Counter:
    """How many times main calls each PrimFunc."""
    n = Counter()

    def visit(e):
        if isinstance(e, relax.Call) and getattr(e.op, "name", None) == "relax.call_tir":
            n[e.args[0].name_hint] += 1

    relax.analysis.post_order_visit(mod["main"], visit)
    return n


def _macs(call) -> int:
    """MACs of a conv2d / matmul call from its static shapes (0 if dynamic)."""
    try:
        out = [int(s) for s in call.ty.shape]
        w = [int(s) for s in call.args[1].ty.shape]
    except (TypeError, AttributeError):
        return 0
    if call.op.name == "relax.nn.conv2d":
        return int(np.prod(out, dtype=np.int64)) * int(np.prod(w[1:], dtype=np.int64)) // max(int(call.attrs.groups), 1)
    return int(np.prod(out, dtype=np.int64)) * w[-2]


def _schedule_picker(schedules):
    """``schedules`` (None, a function or a {Workload: Knobs | dict} mapping) as a function for ``offload``."""
    if schedules is None or callable(schedules):
        return schedules
    if not isinstance(schedules, dict):
        raise TypeError(f"schedules must be a function or a dict of Workload -> Knobs, got {type(schedules).__name__}")
    table = {wl: (k if isinstance(k, Knobs) else Knobs.from_dict(k)) for wl, k in schedules.items()}
    return lambda wl, cfg: table.get(wl)


def _quantized(model, input_shapes, example_inputs, calibration, requant) -> tvm.IRModule:
    """Import, rewrite already-quantised groups, and quantise float conv2d / matmul layers (PTQ)."""
    if requant not in ("alu", "cpu"):
        raise ValueError(f"requant must be 'alu' (on the accelerator) or 'cpu', got {requant!r}")
    if example_inputs is None and calibration:
        first = calibration[0]
        example_inputs = first if isinstance(first, (tuple, list)) else (first,)
    mod, n_qdq = onnx_qdq.rewrite(_import(model, input_shapes, example_inputs))  # already-quantised groups
    mod = Q.prepare(mod)
    func = mod["main"]
    if not n_qdq and not onnx_qdq.integer_layers(mod) and Q._targets(func):  # a quantised model says itself
        # what is quantised (QDQ groups, QLinearConv, ...): its float ops stay float
        if not calibration:
            raise ValueError("the model has float conv2d/matmul layers: pass calibration=[inputs, ...] for "
                             "post-training int8 quantisation")
        mod = Q.quantize(mod, Q.calibrate(mod, calibration), requant)
    return mod


def layers(model, *, input_shapes=None, example_inputs=None, calibration=None, requant="alu") -> list:
    """The accelerator layers of a model as ``compile`` would offload them: [(Workload, count), ...] in program
    order, identical layers counted (what the co-design tuner optimises; no kernel is built)."""
    mod = _quantized(model, input_shapes, example_inputs, calibration, requant)
    main = Q._main(mod)
    fused = epilogue.find(main, workload_of)
    cores = {f.core for f in fused.values()}
    counts: dict = {}
    for block in main.body.blocks:
        for bd in block.bindings:
            wl = None
            if bd.var in fused:
                wl = fused[bd.var].workload
            elif getattr(getattr(bd.value, "op", None), "name", None) in Q.TARGET_OPS and bd.value not in cores:
                wl = workload_of(bd.value)
            if wl is not None:
                counts[wl] = counts.get(wl, 0) + 1
    return list(counts.items())


def compile(model, target="vta_default", *, input_shapes=None, example_inputs=None, calibration=None,
            schedules=None, requant="alu", knobs=None) -> CompiledModel:
    """Compile a PyTorch module (with example inputs), ONNX model/path or Relax IRModule for a config.

    Float conv2d / matmul layers are quantised to int8 with ``calibration`` (a list of input tuples) and, with
    ``requant="alu"``, requantised to int8 on the accelerator (multiply + shift, per-tensor weights, fused bias and
    ReLU); ``requant="cpu"`` keeps per-channel weights and rescales the int32 results on the CPU. ONNX models
    quantised by onnxruntime (QDQ / QOperator) run as they are, bit-exact (frontend/onnx_qdq.py).
    ``schedules``: a function (workload, config) -> Knobs or None, or a dict {Workload: Knobs or knob dict};
    layers it does not cover get the default schedule (``knobs`` is an older name for the same argument).
    """
    cfg = AcceleratorConfig.load(target)
    t0 = time.perf_counter()
    mod = _quantized(model, input_shapes, example_inputs, calibration, requant)
    cpu_ops, cpu_macs, total_macs = Counter(), Counter(), 0
    inside = {v for f in epilogue.find(Q._main(mod), workload_of).values() for v in f.members}  # fused epilogues
    for block in Q._main(mod).body.blocks:
        for bd in block.bindings:
            op = getattr(getattr(bd.value, "op", None), "name", None)
            if bd.var in inside and op not in Q.TARGET_OPS:
                continue
            if op in Q.TARGET_OPS:
                total_macs += _macs(bd.value)
                if workload_of(bd.value) is None:  # e.g. depthwise conv2d: stays on the CPU, listed as such
                    cpu_ops[op] += 1
                    cpu_macs[op] += _macs(bd.value)
            elif op:
                cpu_ops[op] += 1
    mod = offload(cfg, _schedule_picker(schedules if schedules is not None else knobs))(mod)
    cm = CompiledModel(mod, cfg, cpu_ops, total_macs, 0.0, cpu_macs)
    cm.compile_s = time.perf_counter() - t0
    return cm
