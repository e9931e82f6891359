"""Program: an instruction stream held as columns (one numpy array per field), checked against a config.

The columnar form is what the simulators and the compiler use; ``Program.insns`` materialises the
instruction objects for reading, disassembly and encoding.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np

from ..errors import EncodingError, ProgramError, SramAccessError
from ..hardware import asm, isa
from ..hardware.config import AcceleratorConfig
from ..hardware.isa import AluOp, Mem, Opcode
from . import chains

COLUMNS = ("opcode", "pop_prev", "pop_next", "push_prev", "push_next", "mem", "sram_base", "dram_base",
           "y_size", "x_size", "x_stride", "y_pad0", "y_pad1", "x_pad0", "x_pad1", "reset", "uop_bgn",
           "uop_end", "iter_out", "iter_in", "dst_out", "dst_in", "src_out", "src_in", "wgt_out", "wgt_in",
           "op", "use_imm", "imm", "mode", "chain")
_FIELDS_OF = {op: tuple(f.name for f in cls.__dataclass_fields__.values()) for op, cls in isa.INSN_CLASSES.items()}


def module_column(t: dict) -> np.ndarray:
    """Module of each instruction: ``isa.module_for`` over whole columns (0 load, 1 compute, 2 store)."""
    op, mem = t["opcode"], t["mem"]
    m = np.ones(len(op), dtype=np.int64)
    m[(op == Opcode.LOAD) & ((mem == Mem.INP) | (mem == Mem.WGT))] = isa.Module.LOAD
    m[op == Opcode.STORE] = isa.Module.STORE
    return m


class Program:
    """An accelerator program for one config; invalid instructions raise on construction."""

    def __init__(self, config: AcceleratorConfig, insns=None, *, table: dict | None = None):
        self.config = AcceleratorConfig.load(config)
        if (insns is None) == (table is None):
            raise TypeError("give exactly one of insns or table")
        if table is None:
            insns = list(insns)
            for i, x in enumerate(insns):
                if not isinstance(x, isa._Insn):
                    raise ProgramError(i, "<insn>", f"not an instruction: {x!r}")
            table = {c: np.fromiter((getattr(x, c, 0) for x in insns), np.int64, len(insns)) for c in COLUMNS}
            table["opcode"] = np.fromiter((int(x.opcode) for x in insns), np.int64, len(insns))
            self.__dict__["insns"] = tuple(insns)
        else:
            n = len(table["opcode"])
            table = {c: np.asarray(table.get(c, np.zeros(n)), dtype=np.int64) for c in COLUMNS}
        self.table = table
        self.table["module"] = module_column(table)
        check(self.config, self.table)

    def __len__(self) -> int:
        return len(self.table["opcode"])

    @cached_property
    def insns(self) -> tuple:
        """The instructions as ``isa`` objects."""
        out, cols = [], {c: self.table[c].tolist() for c in COLUMNS}
        for i, op in enumerate(cols["opcode"]):
            out.append(isa.from_fields(op, {f: cols[f][i] for f in _FIELDS_OF[Opcode(op)]}))
        return tuple(out)

    def encode(self) -> bytes:
        """The binary instruction stream."""
        return self.config.isa_layout.encode_program(self.insns)

    @classmethod
    def decode(cls, config: AcceleratorConfig, blob: bytes) -> "Program":
        config = AcceleratorConfig.load(config)
        return cls(config, config.isa_layout.decode_program(blob))

    def disassemble(self) -> str:
        return asm.disassemble(self.insns)

    def counts(self) -> dict:
        """Instructions per opcode name."""
        ops, n = np.unique(self.table["opcode"], return_counts=True)
        return {Opcode(o).name: int(c) for o, c in zip(ops, n)}

    def __repr__(self) -> str:
        return f"Program({self.config.name}, {len(self)} instructions {self.counts()})"


def _first(mask: np.ndarray) -> int | None:
    idx = np.flatnonzero(mask)
    return int(idx[0]) if idx.size else None


def check(cfg: AcceleratorConfig, t: dict) -> None:
    """Static checks over the whole table: field widths, memory types, SRAM ranges, loop bounds, flags."""
    op = t["opcode"]
    bad = _first((op < 0) | (op > Opcode.FINISH))
    if bad is not None:
        raise EncodingError("opcode", int(op[bad]), "is not an opcode", bad)
    layout = cfg.isa_layout
    for code, fields in layout.fields.items():
        sel = op == code
        if not sel.any():
            continue
        for name, w, signed in fields[1:]:
            lo, hi = (-(1 << (w - 1)), (1 << (w - 1)) - 1) if signed else (0, (1 << w) - 1)
            col = t[name]
            i = _first(sel & ((col < lo) | (col > hi)))
            if i is not None:
                raise EncodingError(name, int(col[i]), f"does not fit {w} bits [{lo}, {hi}] of {code.name}", i)
    dma = (op == Opcode.LOAD) | (op == Opcode.STORE)
    mem = t["mem"]
    i = _first((dma | (op == Opcode.GEMM)) & (t["mode"] != cfg.mode_index))
    if i is not None:
        raise ProgramError(i, "mode", f"instruction runs mode {int(t['mode'][i])} but the program's config runs "
                           f"mode {cfg.mode_index} ({cfg.mode or 'w8a8'}): a program runs one mode")
    _require(t, (op == Opcode.LOAD) & (mem > Mem.ACC), "mem", "LOAD cannot read memory type OUT")
    _require(t, (op == Opcode.STORE) & (mem != Mem.ACC) & (mem != Mem.OUT), "mem", "STORE writes ACC or OUT only")
    pads = t["y_pad0"] + t["y_pad1"] + t["x_pad0"] + t["x_pad1"]
    _require(t, (op == Opcode.STORE) & (pads > 0), "y_pad0", "STORE has no padding")
    _require(t, (op == Opcode.LOAD) & (mem == Mem.UOP) & (pads > 0), "y_pad0", "LOAD UOP has no padding")
    _require(t, dma & (t["y_size"] < 1), "y_size", "must be >= 1")
    _require(t, dma & (t["x_size"] < 1), "x_size", "must be >= 1")
    _require(t, (op == Opcode.STORE) & (t["y_size"] > 1) & (t["x_stride"] < t["x_size"]), "x_stride",
             "STORE rows would overlap in DRAM (x_stride < x_size)")
    depth = np.array([cfg.uop_depth, cfg.wgt_depth, cfg.inp_depth, cfg.acc_depth, cfg.acc_depth])
    rows = t["y_pad0"] + t["y_size"] + t["y_pad1"]
    cols = t["x_pad0"] + t["x_size"] + t["x_pad1"]
    i = _first(dma & (t["sram_base"] + rows * cols > depth[np.clip(mem, 0, 4)]))
    if i is not None:
        raise SramAccessError(i, "sram_base", f"{Mem(mem[i]).name} SRAM range [{t['sram_base'][i]}, "
                              f"{t['sram_base'][i] + rows[i] * cols[i]}) exceeds depth {depth[mem[i]]}")
    loop = (op == Opcode.GEMM) | (op == Opcode.ALU)
    _require(t, loop & (t["uop_end"] <= t["uop_bgn"]), "uop_end", "must be > uop_bgn")
    i = _first(loop & (t["uop_end"] > cfg.uop_depth))
    if i is not None:
        raise SramAccessError(i, "uop_end", f"{t['uop_end'][i]} exceeds micro-op buffer depth {cfg.uop_depth}")
    _require(t, loop & (t["iter_out"] < 1), "iter_out", "must be >= 1")
    _require(t, loop & (t["iter_in"] < 1), "iter_in", "must be >= 1")
    _require(t, (op == Opcode.ALU) & (t["op"] > AluOp.MOV), "op", "is not an ALU opcode")
    _require(t, (op == Opcode.ALU) & (t["use_imm"] == 0) & (t["imm"] != 0), "imm",
             "must be 0 when the operand is a register (use_imm is false)")
    _require(t, (op == Opcode.ALU) & (t["op"] == AluOp.CLIP) & (t["use_imm"] == 1) & (t["imm"] < 0), "imm",
             "CLIP bound must be >= 0")
    m = t["module"]
    _require(t, (m == isa.Module.LOAD) & (t["pop_prev"] == 1), "pop_prev", "the load module has no previous module")
    _require(t, (m == isa.Module.LOAD) & (t["push_prev"] == 1), "push_prev", "the load module has no previous module")
    _require(t, (m == isa.Module.STORE) & (t["pop_next"] == 1), "pop_next", "the store module has no next module")
    _require(t, (m == isa.Module.STORE) & (t["push_next"] == 1), "push_next", "the store module has no next module")
    chains.check(cfg, t)


def _require(t: dict, bad_mask: np.ndarray, field: str, message: str) -> None:
    i = _first(bad_mask)
    if i is not None:
        raise ProgramError(i, field, f"{message} (got {int(t[field][i])}, {Opcode(t['opcode'][i]).name})")
