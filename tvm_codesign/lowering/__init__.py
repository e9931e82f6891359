"""Lowering: tensorized TIR -> a CompiledKernel (instructions, micro-ops, DRAM layout, tokens)."""
from __future__ import annotations

import json

import numpy as np
import tvm

from ..hardware.config import AcceleratorConfig
from ..hardware.isa import Mem, Opcode, encode_uops
from ..runtime.kernel import CompiledKernel, ParamSpec
from ..simulator import Program
from ..simulator.dram import elem_bytes, packed
from ..simulator.program import COLUMNS
from . import chain, deps
from .affine import LoweringError
from .emit import Emitter
from .pipeline import flatten

ALIGN = 4096

__all__ = ["lower", "LoweringError"]


class _Param:
    def __init__(self, spec: ParamSpec, itemsize: int, cfg: AcceleratorConfig):
        self.spec, self.itemsize, self.cfg = spec, itemsize, cfg

    def elem_base(self, mem: Mem, scalars: int) -> int:
        eb = scalars * self.itemsize
        if packed(self.cfg, mem):  # packed in DRAM (runtime/kernel.py packs the param)
            eb = elem_bytes(self.cfg, mem)
        if self.spec.offset % eb:
            raise LoweringError(f"{self.spec.name}: DRAM offset {self.spec.offset} not aligned to {eb} B elements")
        return self.spec.offset // eb


def lower(func: tvm.tirx.PrimFunc) -> CompiledKernel:
    """Lower one scheduled, tensorized PrimFunc (carrying ``tvm_codesign.config``) to a kernel."""
    if func.attrs is None or "tvm_codesign.config" not in func.attrs:
        raise LoweringError("the function has no tvm_codesign.config attribute: build it with "
                            "tvm_codesign.build() or schedule it with tvm_codesign.schedules.schedule.schedule()")
    cfg = AcceleratorConfig.from_dict(json.loads(str(func.attrs["tvm_codesign.config"])))
    v = int(func.attrs["tvm_codesign.vthreads"]) if "tvm_codesign.vthreads" in func.attrs else 1
    flat = flatten(tvm.IRModule({"main": func}))["main"]
    params, specs, off = {}, [], 0
    align = int(np.lcm.reduce([ALIGN, cfg.inp_elem_bytes, cfg.wgt_elem_bytes, cfg.acc_elem_bytes]))
    for p in flat.params:  # in TVM 0.27 a parameter is its buffer
        b = p
        shape = tuple(int(s) for s in b.shape)
        spec = ParamSpec(b.name, shape, str(b.dtype), off)
        specs.append(spec)
        params[b] = _Param(spec, np.dtype(str(b.dtype)).itemsize, cfg)
        off += -(-spec.nbytes // align) * align
    em = Emitter(cfg, flat, params, v)
    em.run(flat.body)
    insns = em.insns
    uops = np.concatenate(em.uops) if em.uops else np.zeros((0, 3), np.int64)
    # constants: micro-op words, then zero pages
    consts = []
    uop_elem = cfg.uop_bytes
    uop_off = off
    words = encode_uops(uops, cfg)
    consts.append((uop_off, words.tobytes()))
    off += -(-max(words.nbytes, 1) // align) * align
    zero_at = {}
    for mem, n in em.zero_elems.items():
        eb = {Mem.INP: cfg.inp_elem_bytes, Mem.WGT: cfg.wgt_elem_bytes, Mem.ACC: cfg.acc_elem_bytes}[mem]
        zero_at[mem] = off // eb
        off += -(-(n * eb) // align) * align
    for d in insns:
        if isinstance(d.get("dram_base"), tuple):
            d["dram_base"] = zero_at[d["dram_base"][1]]
    head = [dict(opcode=int(Opcode.LOAD), mem=int(Mem.UOP), sram_base=0, dram_base=uop_off // uop_elem, y_size=1,
                 x_size=len(uops), x_stride=len(uops), pop_prev=0, pop_next=0, push_prev=0, push_next=0)] \
        if len(uops) else []
    insns = head + insns + [dict(opcode=int(Opcode.FINISH), pop_prev=0, pop_next=0, push_prev=0, push_next=0)]
    for d in insns:  # the ISA names the mode every DMA and GEMM runs in
        if d["opcode"] != Opcode.ALU and d["opcode"] != Opcode.FINISH:
            d["mode"] = cfg.mode_index
    deps.insert(cfg, insns, uops)
    table = {c: np.fromiter((d.get(c, 0) for d in insns), np.int64, len(insns)) for c in COLUMNS}
    chain.mark(cfg, table, uops)
    program = Program(cfg, table=table)
    _set_roles(program, specs, cfg)
    meta = {k: json.loads(str(func.attrs[f"tvm_codesign.{k}"])) for k in ("workload", "knobs")
            if f"tvm_codesign.{k}" in func.attrs}
    return CompiledKernel(cfg, program, specs, off, consts, meta)


def _set_roles(program: Program, specs: list, cfg: AcceleratorConfig) -> None:
    """Mark each parameter as read (in) or written (out) by the program's DMAs."""
    from ..simulator.activity import elem_bytes_by_mem
    t = program.table
    e = elem_bytes_by_mem(cfg)
    for op, mem, base in zip(t["opcode"].tolist(), t["mem"].tolist(), t["dram_base"].tolist()):
        if op not in (Opcode.LOAD, Opcode.STORE) or mem == Mem.UOP:
            continue
        addr = base * int(e[mem])
        for s in specs:
            if s.offset <= addr < s.offset + max(s.nbytes, 1):
                s.role = "out" if op == Opcode.STORE else ("in" if s.role != "out" else s.role)
                if cfg.mode and s.mem and s.mem != Mem(mem).name and {s.mem, Mem(mem).name} & {"INP", "WGT"}:
                    raise LoweringError(f"{s.name} is moved both as {s.mem} and as {Mem(mem).name}: in mode "
                                        f"{cfg.mode} those are stored differently (packed / raw)")
                s.mem = Mem(mem).name
