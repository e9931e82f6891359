"""An accelerator operator as one PrimFunc in the user's layouts: pack (CPU TIR) -> kernel -> unpack (CPU TIR).

``user_layout_func`` has the parameters of the user's operator (its inputs and its output, destination-passing,
in the user's order), so a library compiled from it is called like any TVM-compiled operator and runs in a
fresh process with plain TVM: the kernel is embedded (``tvm_codesign.run`` with the encoded program, which
``import tvm`` registers through the entry point). ``Module.export_library`` compiles it, and ``tvm.compile``
builds it for a recognised PrimFunc compiled with a ``vta`` target.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from tvm import te, tirx

from ..hardware.config import AcceleratorConfig
from ..runtime import entry
from ..runtime.kernel import CompiledKernel
from ..schedules import layout_te
from ..schedules.knobs import Knobs
from ..schedules.layout import packed_shapes
from ..schedules.workload import Workload
from .tir import Recognised, _out_shape


@dataclass(frozen=True)
class Signature:
    """An operator's parameters in the user's order: names, shapes, dtypes, and which one is data, weight, bias,
    multiplier and out (``roles``: role -> parameter index)."""
    names: tuple
    shapes: tuple
    dtypes: tuple
    roles: dict
    weight_kn: bool = False  # matmul weight given as (K, N)

    @classmethod
    def of_workload(cls, wl: Workload) -> "Signature":
        """``Workload.reference``'s layouts: (data, weight[, bias][, multiplier], out); the multiplier (one int32
        per output channel) when the workload's is "channel"."""
        data = {"conv2d": (wl.n, wl.ci, wl.h, wl.w), "dense": (wl.n, wl.ci)}.get(wl.kind, (wl.groups, wl.n, wl.ci))
        weight = {"conv2d": (wl.co, wl.ci, wl.kh, wl.kw), "dense": (wl.co, wl.ci)}.get(wl.kind,
                                                                                       (wl.groups, wl.co, wl.ci))
        params = [("data", data, "int8"), ("weight", weight, "int8")] + \
            [(v, (wl.co,), "int32") for v in wl.vectors] + [("out", _out_shape(wl), wl.out_dtype)]
        names, shapes, dtypes = zip(*params)
        return cls(names, shapes, dtypes, {n: i for i, n in enumerate(names)})

    @classmethod
    def of_func(cls, func: tirx.PrimFunc, rec: Recognised) -> "Signature":
        """A recognised PrimFunc's own parameters (a parameter is its buffer in TVM 0.27)."""
        params = list(func.params)
        inputs = [i for i in range(len(params)) if i != rec.out]
        roles = {role: inputs[i] for role, i in rec.roles.items()} | {"out": rec.out}
        return cls(tuple(p.name for p in params), tuple(tuple(int(s) for s in p.shape) for p in params),
                   tuple(str(p.dtype) for p in params), roles, rec.weight_kn)


def user_layout_func(wl: Workload, cfg: AcceleratorConfig, knobs: Knobs, kernel: CompiledKernel,
                     sig: Signature) -> tirx.PrimFunc:
    """One PrimFunc with ``sig``'s parameters that packs the inputs, runs ``kernel`` (``wl`` compiled for ``cfg``
    with ``knobs``) and unpacks its output."""
    out_i = sig.roles["out"]
    if tuple(sig.shapes[out_i]) != _out_shape(wl) or sig.dtypes[out_i] != wl.out_dtype:
        raise ValueError(f"output {sig.names[out_i]}: {sig.dtypes[out_i]}{list(sig.shapes[out_i])} is not the output "
                         f"of {wl.describe()}")
    ph = {i: te.placeholder(s, d, n) for i, (n, s, d) in enumerate(zip(sig.names, sig.shapes, sig.dtypes))
          if i != out_i}
    packed = [layout_te.pack(wl, cfg, ph[sig.roles["data"]], "data"),
              layout_te.pack(wl, cfg, ph[sig.roles["weight"]], "weight", sig.weight_kn)]
    packed += [layout_te.pack_vector(wl, cfg, ph[sig.roles[v]], v) for v in wl.vectors]  # bias, multiplier
    shapes = [tuple(int(s) for s in t.shape) for t in packed] + [packed_shapes(wl, cfg)["out"]]
    if [tuple(p.shape) for p in kernel.params] != shapes:
        raise ValueError(f"kernel parameters {[tuple(p.shape) for p in kernel.params]} are not the packed "
                         f"layouts {shapes} of {wl.describe()} on {cfg.name}")
    key, blob = entry.add(kernel)
    run = lambda ins, outs: tirx.call_packed("tvm_codesign.run", tirx.IntImm("int64", key), blob,
                                             *[b.access_ptr("r") for b in ins], outs[0].access_ptr("w"))
    po = te.extern(shapes[-1], packed, run, name="accelerator", dtype=wl.out_dtype,  # buffers at offset 0
                   in_buffers=[tirx.decl_buffer(t.shape, t.dtype, f"{t.op.name}_buf") for t in packed])
    out = layout_te.unpack(wl, cfg, po, sig.names[out_i])
    func = te.create_prim_func([ph.get(i, out) for i in range(len(sig.names))])
    return func.with_attrs({"tvm_codesign.workload": json.dumps(wl.to_dict()),
                            "tvm_codesign.knobs": json.dumps(knobs.to_dict())})
