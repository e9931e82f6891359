"""Whole models: ``compile(model, target)`` for PyTorch modules, ONNX models and Relax IRModules.

Float models are quantised after calibration (quantized.py, frontend/quantize.py); int8 conv2d / matmul go to the
accelerator (frontend/relax.py), everything else runs on the CPU through relax.VirtualMachine.
"""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np
import tvm
from tvm import relax

from . import logs, saved
from . import profile as P
from .frontend import epilogue, macs
from .frontend import quantize as Q
from .frontend.relax import OFFLOADED_OPS, check_batch_programs, fused_epilogues, offload, offloaded, workload_of
from .hardware.config import AcceleratorConfig
from .progress import Progress
from .runtime import entry
from .schedules.knobs import Knobs
from .quantized import _quantized
from .signature import Signature


class CompiledModel:
    """A model compiled for the accelerator: call it on numpy inputs, then ``profile()`` the last run.

    ``cm(x, ...)`` or ``cm(name=x, ...)``: arguments are checked against the compiled inputs (count, names,
    shapes, dtypes; TypeError / ValueError naming the input). Float data for a float32 input is cast to
    float32 (float64 included); integer data stays integer and is converted only if every value fits; 0-d
    (scalar) inputs stay 0-d. ``save(path)`` / ``tvm_codesign.load(path)`` keep it across processes."""

    def __init__(self, executable, cfg: AcceleratorConfig, facts: dict, mod: tvm.IRModule | None = None):
        self.mod = mod  # the Relax module after offload (None for a loaded model)
        self.executable, self.config, self.facts = executable, cfg, facts
        self.name, self.compile_s = facts["name"], facts["compile_s"]
        self.kernels = facts["kernels"]
        self.calls = Counter(facts["calls"])  # a kernel shared by identical layers runs once per layer
        self.cpu_layers = facts["cpu_layers"]  # MAC-bearing ops left on the CPU: op, shape, macs, calls
        self.cpu_ops = Counter(facts["cpu_ops"])
        self.cpu_ops.update({d["op"]: d["calls"] for d in self.cpu_layers})
        self.cpu_macs = Counter()  # MACs left on the CPU, per op
        for d in self.cpu_layers:
            self.cpu_macs[d["op"]] += (d["macs"] or 0) * d["calls"]
        self.total_macs, self.accelerator_macs = facts["total_macs"], facts["accelerator_macs"]
        self.signature = Signature(facts["inputs"])
        # {layer: {"w_bits", "a_bits", "sparse", "kernel"}} of the layers quantised here (layer names as in
        # profile(); kernel: the accelerator kernel running it, None on the CPU)
        self.layer_modes = facts.get("layer_modes", {})
        self.keep_masks = {}  # {layer: boolean 2:4 keep mask in the layer's weight layout} (compile only)
        self.vm = relax.VirtualMachine(executable, tvm.cpu())

    def __call__(self, *inputs, **named):
        args = self.signature.bind(inputs, named)
        out = self.vm["main"](*[tvm.runtime.tensor(a) if isinstance(a, np.ndarray) else a for a in args])
        return out.numpy() if hasattr(out, "numpy") else tuple(o.numpy() for o in out)

    @property
    def offloaded_mac_fraction(self) -> float:
        """Share of the model's real (unpadded) MACs that run on the accelerator: every conv (any dimension, groups,
        dilation, transposed), matmul / dense / batch matmul, einsum and attention counts, wherever it runs (ops
        with dynamic shapes excepted)."""
        return self.accelerator_macs / max(self.total_macs, 1)

    def schedule_counts(self) -> Counter:
        """Accelerator layers (calls) by where their schedule came from: "tuned", "user" or "default"."""
        return Counter({s: n for s in ("tuned", "user", "default")
                        if (n := sum(self.calls.get(k["name"], 0) for k in self.kernels if k.get("source") == s))})

    def summary(self) -> str:
        """One line: layers on the accelerator and where their schedules came from, MAC share, CPU ops, time."""
        what = {"tuned": "tuned schedule", "user": "given", "default": "default"}
        sched = ", ".join(f"{n} {what[s]}{'s' if s == 'tuned' and n != 1 else ''}"
                          for s, n in self.schedule_counts().items())
        n = sum(self.calls[k["name"]] for k in self.kernels)
        return (f"compiled {self.name} for {self.config.name}: {n} layer{'s' * (n != 1)} on the accelerator"
                + (f" ({sched})" if sched else "") + f", {self.offloaded_mac_fraction:.1%} of MACs; "
                f"{sum(self.cpu_ops.values())} ops on the CPU; {self.compile_s:.1f} s")

    def program(self, name: str) -> str:
        """The accelerator program of one offloaded layer, as assembly."""
        return entry.BY_NAME[name].disassemble()

    def profile(self) -> P.ProfileTable:
        """Per accelerator kernel of the last run (op, the user's shapes and real MACs beside the kernel's padded
        ones, calls, cycles, utilisation, DRAM bytes, energy, schedule source), then the CPU layers with MACs and
        one row per other kind of CPU op; ``print`` it for an aligned table with totals, ``.rows`` for code."""
        rows = P.accelerator_rows(self.kernels, self.calls, self.config)
        rows += P.cpu_rows(self.cpu_layers, self.facts["cpu_ops"])
        sched = ", ".join(f"{n} {s}" for s, n in self.schedule_counts().items())
        return P.ProfileTable(rows, f"{self.name} on {self.config.name}",
                              (f"schedules of the accelerator layers: {sched}",) if sched else ())

    def save(self, path) -> Path:
        """Write the compiled model to the directory ``path`` (replacing an earlier save there, nothing else);
        ``tvm_codesign.load(path)`` restores it in any process without compiling."""
        return saved.write(path, self.executable, self.config, self.facts, [k["name"] for k in self.kernels])

    def __repr__(self) -> str:
        return f"CompiledModel({self.summary()})"


def load(path) -> CompiledModel:
    """A model saved with ``CompiledModel.save``, ready to run: no compile, kernels and profile as saved (a save
    holds native code: load only saves you trust)."""
    lib, cfg, facts = saved.read(path)
    return CompiledModel(lib, cfg, facts)


def _call_counts(mod: tvm.IRModule) -> Counter:
    """How many times main calls each PrimFunc."""
    n = Counter()

    def visit(e):
        if isinstance(e, relax.Call) and getattr(e.op, "name", None) == "relax.call_tir":
            n[e.args[0].name_hint] += 1

    relax.analysis.post_order_visit(mod["main"], visit)
    return n


def _census(mod: tvm.IRModule, cfg: AcceleratorConfig, modes: dict | None = None) -> dict:
    """Before offload: real MACs of every MAC-bearing op (on the accelerator exactly when ``workload_of`` takes
    it, alone or as the core of a fused epilogue), the MAC-bearing ops left on the CPU, and the other CPU ops
    (not counting the epilogue ops fused into a kernel)."""
    func = Q._main(mod)
    inside = {v for f in fused_epilogues(mod, cfg, modes).values() for v in f.members}
    total = acc = 0
    cpu_layers: dict = {}
    cpu_ops = Counter()
    for block in func.body.blocks:
        for bd in block.bindings:
            op = macs.op_name(bd.value)
            m = macs.macs(bd.value, mod)
            if op in macs.MAC_OPS or m:
                total += m or 0
                if op in OFFLOADED_OPS and workload_of(bd.value) is not None:
                    acc += m
                    continue
                if op == "relax.call_tir":
                    op = f"{bd.value.args[0].name_hint} (call_tir)"
                shape = " * ".join("x".join(map(str, d or ["?"])) for d in macs.operand_shapes(bd.value))
                shape += " -> " + "x".join(map(str, macs.dims(bd.value) or ["?"]))
                row = cpu_layers.setdefault((op, shape), {"op": op, "shape": shape, "macs": m, "calls": 0})
                row["calls"] += 1
            elif op and bd.var not in inside:
                cpu_ops[op] += 1
    return {"total_macs": total, "accelerator_macs": acc, "cpu_layers": list(cpu_layers.values()),
            "cpu_ops": dict(cpu_ops)}


def _schedule_picker(schedules):
    """``schedules`` (None, a function or a {Workload: Knobs | dict} mapping) as a function for ``offload``."""
    if schedules is None or callable(schedules):
        return schedules
    if not isinstance(schedules, dict):
        raise TypeError(f"schedules must be a function or a dict of Workload -> Knobs, got {type(schedules).__name__}")
    table = {wl: (k if isinstance(k, Knobs) else Knobs.from_dict(k)) for wl, k in schedules.items()}
    return lambda wl, cfg: table.get(wl)


def layers(model, *, input_shapes=None, example_inputs=None, calibration=None, requant="alu", precision=None,
           sparsity=None, weight_scales=None, train=None, qat_epochs=None) -> list:
    """The accelerator layers of a model as ``compile`` would offload them: [(Workload, count), ...] in program
    order, identical layers counted (what the co-design tuner optimises; no kernel is built)."""
    return _layer_counts(Q._main(_quantized(model, input_shapes, example_inputs, calibration, requant,
                                            precision=precision, sparsity=sparsity, weight_scales=weight_scales,
                                            train=train, qat_epochs=qat_epochs)))


def named_layers(model, *, input_shapes=None, example_inputs=None, calibration=None, requant="alu") -> list:
    """[(layer name, Workload), ...] of the accelerator layers, one per layer in program order, named as
    ``compile(precision=...)`` and ``profile()`` name them (frontend/precision.py): what per-layer precision
    search needs (identical shapes stay separate layers; each may get its own precision)."""
    mod = _quantized(model, input_shapes, example_inputs, calibration, requant)
    main = Q._main(mod)
    known = set(map(str, mod.attrs[Q.LAYERS])) if mod.attrs is not None and Q.LAYERS in mod.attrs else set()
    var_of = {bd.value: bd.var for block in main.body.blocks for bd in block.bindings}
    return [(var_of[core].name, wl) for core, wl in _accelerator_layers(main)
            if core in var_of and var_of[core].name in known]


def _accelerator_layers(main: relax.Function) -> list:
    """[(core call, Workload), ...] of each accelerator layer in program order: a fused requantisation chain's
    conv2d / matmul with its epilogue, or a bare target op (frontend/epilogue.py, relax.workload_of)."""
    fused = epilogue.find(main, workload_of)
    cores = {f.core for f in fused.values()}
    out = []
    for block in main.body.blocks:
        for bd in block.bindings:
            if bd.var in fused:
                out.append((fused[bd.var].core, fused[bd.var].workload))
            elif getattr(getattr(bd.value, "op", None), "name", None) in Q.TARGET_OPS and bd.value not in cores:
                wl = workload_of(bd.value)
                if wl is not None:
                    out.append((bd.value, wl))
    return out


def _layer_counts(main: relax.Function) -> list:
    counts: dict = {}
    for _, wl in _accelerator_layers(main):
        counts[wl] = counts.get(wl, 0) + 1
    return list(counts.items())


def _config(target) -> AcceleratorConfig:
    """A preset name, JSON path or AcceleratorConfig; or a TVM target of the package (``tc.target(cfg)``, a tag
    such as ``Target("vta/vta_default")``, or the tag string itself)."""
    if isinstance(target, tvm.target.Target):
        from .backend import config_of
        return config_of(target)
    if isinstance(target, str) and target.startswith("vta/"):
        return AcceleratorConfig.load(target[len("vta/"):])
    return AcceleratorConfig.load(target)


def _name(model) -> str:
    if isinstance(model, (str, Path)) or hasattr(model, "__fspath__"):
        return Path(model).stem
    graph = getattr(model, "graph", None)  # an onnx.ModelProto
    if getattr(graph, "name", None) and not isinstance(model, tvm.IRModule):
        return graph.name
    return type(model).__name__


def compile(model, target="vta_default", *, input_shapes=None, example_inputs=None, calibration=None,
            schedules=None, requant="alu", knobs=None, progress=None, precision=None, sparsity=None,
            weight_scales=None, train=None, qat_epochs=None, batch_programs="per_image") -> CompiledModel:
    """Compile a PyTorch module (with example inputs), ONNX model/path or Relax IRModule for a config.

    ``target``: a preset name, AcceleratorConfig, JSON path, or a TVM target of the package (``tc.target(cfg)``,
    ``Target("vta/vta_default")`` or the string ``"vta/vta_default"``).
    Float conv2d / matmul layers are quantised to int8 with ``calibration`` (a list of input tuples) and, with
    ``requant="alu"``, requantised to int8 on the accelerator (multiply + shift, per-tensor weights, fused bias and
    ReLU); ``requant="shift"`` does the same with power-of-two scales, a shift and no ALU multiply (VTA's own
    scheme: the kernels then encode to VTA's binary format, ``simulator/vta_binary.py``; up to 2x coarser output
    steps); ``requant="cpu"`` keeps per-channel weights and rescales the int32 results on the CPU. ONNX models
    quantised by onnxruntime (QDQ / QOperator) run as they are, bit-exact (frontend/onnx_qdq.py).
    ``schedules``: a function (workload, config) -> Knobs or None, or a dict {Workload: Knobs or knob dict};
    layers it does not cover get the config's tuned schedule if ``schedules/store.py`` finds one, else the
    default schedule (``knobs`` is an older name for the same argument). ``progress``: a progress bar on stderr
    once the compile takes more than a couple of seconds (None: on a terminal or in Jupyter; True: always;
    False: never). Logs one line (``tvm_codesign`` logger, shown by default): layers on the accelerator and how
    many use tuned, given and default schedules.
    ``precision`` / ``sparsity`` (frontend/precision.py): per-layer weight/activation bits and 2:4 pruning of a
    float model, e.g. ``precision={"conv2d_1": (4, 4)}``, ``precision="w4a8"`` (every layer),
    ``sparsity={"conv2d_1": "2:4"}``; layers named as ``profile()`` lists them (``layer_modes`` has them all).
    Weights then get per-output-channel scales (``weight_scales="channel"``, the default but with
    ``requant="shift"``; the requantisation multiplier is then one int32 per channel) or one per tensor
    (``"tensor"``: one ALU immediate), clipped to the least squared error; activations below 8 bits are
    clipped to the least squared error on the calibration data (frontend/lowbit.py). None: today's int8.
    ``train=(x, y)`` (a torch classifier with low-bit or 2:4 layers; x batch-first inputs, y integer labels):
    first a short deterministic quantisation-aware fine-tune of a copy of the model (frontend/qat.py,
    ``qat_epochs`` epochs, default 5), then the same PTQ of the fine-tuned copy; the model itself is unchanged.
    ``batch_programs``, for inputs of more images than the accelerator's ``batch``: "per_image" (default) compiles
    each conv2d for one group of ``batch`` images and simulates all groups of a call in one batched pass (fast to
    simulate; each group reloads the weights); "whole" compiles every layer as one program for all the images
    (weights reused across images: fewer simulated cycles, slower to simulate). Dense / matmul layers are always
    one program for the whole call.
    """
    check_batch_programs(batch_programs)
    cfg = _config(target)
    name = _name(model)
    t0 = time.perf_counter()
    with Progress(progress, name, steps=3) as bar:
        bar.step("importing and quantising")
        info: dict = {}
        mod = _quantized(model, input_shapes, example_inputs, calibration, requant, info, precision, sparsity,
                         weight_scales, train, qat_epochs)
        main = Q._main(mod)
        facts = {"name": name, **_census(mod, cfg, info["modes"]),
                 "inputs": Signature.of(main, info["index_bounds"], info["quantised"]).inputs,
                 "layer_modes": {n: m.to_dict() for n, m in info["modes"].items()}}
        kernels = len({wl for wl, _ in _layer_counts(main)})
        mod = offload(cfg, bar.picker(_schedule_picker(schedules if schedules is not None else knobs), kernels),
                      info["modes"], batch_programs)(mod)
        bar.step("lowering and building")
        executable = tvm.compile(mod, target="llvm")
        kernels = offloaded(mod)
        calls = _call_counts(mod)
        facts.update(kernels=kernels, calls={k["name"]: calls[k["name"]] for k in kernels})
        for k in kernels:  # which kernel runs each layer (None: on the CPU)
            for n in k.get("layers", ()):
                if n in facts["layer_modes"]:
                    facts["layer_modes"][n].update(kernel=k["name"], hw_mode=k["mode"])
        for d in facts["layer_modes"].values():
            d.setdefault("kernel", None)
            d.setdefault("hw_mode", None)
        bar.step("loading")
        for k in kernels:  # decode each program now (plans, timing, race check), not on the first call
            entry.BY_NAME[k["name"]].prepare()
        facts["compile_s"] = 0.0
        cm = CompiledModel(executable, cfg, facts, mod)
        cm.keep_masks = info["masks"]
    cm.compile_s = facts["compile_s"] = round(time.perf_counter() - t0, 3)
    logs.info(cm.summary())
    return cm
