"""SRAM placement for one lowered function: a static region per allocation, times ``vthreads`` contexts.

Each execution of an allocation statement takes the next context (round robin), so consecutive tiles
use different SRAM and their loads can overlap compute. An ALU stage's output buffer is placed on its
input's SRAM (the ALU works in place), so epilogues cost no extra accumulator space.
"""
from __future__ import annotations

from dataclasses import dataclass

from tvm import tirx
from tvm.ir import Call

from ..hardware.config import AcceleratorConfig
from ..hardware.isa import Mem
from .affine import LoweringError

SCOPE_MEM = {"global.vta.inp": Mem.INP, "global.vta.wgt": Mem.WGT, "global.vta.acc": Mem.ACC}


@dataclass
class SramBuf:
    name: str
    mem: Mem
    elem: int          # scalars per SRAM element
    size: int          # elements per context
    region: int = 0
    count: int = 0     # allocations executed so far
    alias: object = None


def walk(stmt, fn) -> None:
    """Call fn on every statement and every packed call under ``stmt``."""
    fn(stmt)
    if isinstance(stmt, tirx.SeqStmt):
        for s in stmt.seq:
            walk(s, fn)
    elif isinstance(stmt, (tirx.For, tirx.AttrStmt)):
        walk(stmt.body, fn)
    elif isinstance(stmt, tirx.IfThenElse):
        walk(stmt.then_case, fn)
        if stmt.else_case is not None:
            walk(stmt.else_case, fn)


class SramPlan:
    def __init__(self, cfg: AcceleratorConfig, body, vthreads: int):
        self.v = vthreads
        self.bufs: dict = {}
        elem = {Mem.INP: cfg.batch * cfg.block_in, Mem.WGT: cfg.block_out * cfg.block_in,
                Mem.ACC: cfg.batch * cfg.block_out}
        aliases = {}

        def visit(s):
            if isinstance(s, tirx.AllocBuffer) and s.buffer.scope() in SCOPE_MEM:
                b = s.buffer
                mem = SCOPE_MEM[b.scope()]
                n = int(b.shape[0])
                if n % elem[mem]:
                    raise LoweringError(f"{b.name}: {n} scalars is not a whole number of {elem[mem]}-scalar elements")
                self.bufs[b] = SramBuf(b.name, mem, elem[mem], n // elem[mem])
            elif isinstance(s, tirx.Evaluate) and isinstance(s.value, Call) and s.value.op.name == \
                    "tirx.tvm_call_packed" and s.value.args[0].value in ("tvm_codesign.alu", "tvm_codesign.alu_imm"):
                ptrs = [a for a in s.value.args if isinstance(a, Call) and a.op.name == "tirx.tvm_access_ptr"]
                aliases[ptrs[0].args[1].args[0]] = ptrs[1].args[1].args[0]  # buffer_data(var) -> var

        walk(body, visit)
        for dst, src in aliases.items():
            self.bufs[dst].alias = src
        used = {Mem.INP: 0, Mem.WGT: 0, Mem.ACC: 0}
        depth = {Mem.INP: cfg.inp_depth, Mem.WGT: cfg.wgt_depth, Mem.ACC: cfg.acc_depth}
        for b in self.bufs.values():
            if b.alias is None:
                b.region = used[b.mem]
                used[b.mem] += b.size * vthreads
        for mem, n in used.items():
            if n > depth[mem]:
                raise LoweringError(f"{mem.name} SRAM needs {n} elements ({vthreads} contexts) > depth {depth[mem]}")
        self.used = used

    def known(self, data) -> bool:
        return data in self.bufs

    def lookup(self, data) -> SramBuf:
        try:
            return self.bufs[data]
        except KeyError:
            raise LoweringError(f"buffer {data} is not an accelerator SRAM buffer") from None

    def allocate(self, buffer) -> None:
        if buffer in self.bufs:
            self.bufs[buffer].count += 1

    def address(self, data) -> int:
        b = self.lookup(data)
        while b.alias is not None:
            b = self.lookup(b.alias)
        if b.count == 0:
            raise LoweringError(f"{b.name} used before its allocation")
        return b.region + ((b.count - 1) % self.v) * b.size
