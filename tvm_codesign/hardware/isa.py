"""The instruction set: opcodes, instructions, config-derived field layout, binary encoding, micro-ops.

Every instruction word is ``insn_bits`` wide (little-endian): opcode (3 bits), the four dependency
flags (pop_prev, pop_next, push_prev, push_next), then the opcode's fields in ``IsaLayout.fields[op]``
order. Field widths come from the config (buffer depths, loop bounds), unlike VTA's fixed widths.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Union

import numpy as np

from ..errors import ConfigError, EncodingError

if TYPE_CHECKING:
    from .config import AcceleratorConfig


class Opcode(IntEnum):
    LOAD = 0
    STORE = 1
    GEMM = 2
    ALU = 3
    FINISH = 4


class Mem(IntEnum):
    """Memory type of a LOAD/STORE. STORE takes ACC (raw accumulators) or OUT (narrowed to out_bits)."""
    UOP = 0
    WGT = 1
    INP = 2
    ACC = 3
    OUT = 4


class AluOp(IntEnum):
    """ALU operations; operand v is the immediate or the source accumulator element.

    MIN/MAX/ADD/MUL: dst = op(dst, v), wrapping at acc_bits. SHR: arithmetic (floor) shift right by v,
    left by -v. CLIP: clamp dst to [-v-1, v]. MOV: dst = v.
    """
    MIN = 0
    MAX = 1
    ADD = 2
    SHR = 3
    MUL = 4
    CLIP = 5
    MOV = 6


class Module(IntEnum):
    LOAD = 0
    COMPUTE = 1
    STORE = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class _Insn:
    pop_prev: bool = False
    pop_next: bool = False
    push_prev: bool = False
    push_next: bool = False

    @property
    def flags(self) -> tuple[bool, bool, bool, bool]:
        return (self.pop_prev, self.pop_next, self.push_prev, self.push_next)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Dma(_Insn):
    """2-D DMA: y_size rows of x_size elements, DRAM rows x_stride elements apart; SRAM side is
    contiguous, (y_pad0 + y_size + y_pad1) x (x_pad0 + x_size + x_pad1) elements, pads zero-filled."""
    mem: Mem
    sram_base: int
    dram_base: int
    y_size: int
    x_size: int
    x_stride: int
    y_pad0: int = 0
    y_pad1: int = 0
    x_pad0: int = 0
    x_pad1: int = 0
    mode: int = 0  # precision/sparsity mode (hardware/modes.py, the config's ``modes`` index): packed INP/WGT rows

    @property
    def rows(self) -> int:
        return self.y_pad0 + self.y_size + self.y_pad1

    @property
    def cols(self) -> int:
        return self.x_pad0 + self.x_size + self.x_pad1


@dataclass(frozen=True, slots=True, kw_only=True)
class Load(_Dma):
    opcode = Opcode.LOAD


@dataclass(frozen=True, slots=True, kw_only=True)
class Store(_Dma):
    opcode = Opcode.STORE


@dataclass(frozen=True, slots=True, kw_only=True)
class _Loop(_Insn):
    """Two-level loop over micro-ops [uop_bgn, uop_end): index = uop field + i*X_out + j*X_in."""
    uop_bgn: int
    uop_end: int
    iter_out: int = 1
    iter_in: int = 1
    dst_out: int = 0
    dst_in: int = 0
    src_out: int = 0
    src_in: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Gemm(_Loop):
    """acc[dst] += inp[src] . wgt[wgt]^T per micro-op and iteration; ``reset`` writes zeros instead."""
    opcode = Opcode.GEMM
    reset: bool = False
    wgt_out: int = 0
    wgt_in: int = 0
    mode: int = 0  # precision/sparsity mode the core runs (hardware/modes.py, the config's ``modes`` index)


@dataclass(frozen=True, slots=True, kw_only=True)
class Alu(_Loop):
    """acc[dst] = op(acc[dst], imm if use_imm else acc[src]) per micro-op and iteration. ``chain``: runs in the
    same pass over the accumulators as the ALU instruction before it (a chained ALU of ``alu_stages`` stages,
    simulator/chains.py); the field has 0 bits, so is always 0, on a one-stage ALU (VTA's)."""
    opcode = Opcode.ALU
    op: AluOp
    use_imm: bool = False
    imm: int = 0
    chain: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Finish(_Insn):
    opcode = Opcode.FINISH


Insn = Union[Load, Store, Gemm, Alu, Finish]
INSN_CLASSES = {Opcode.LOAD: Load, Opcode.STORE: Store, Opcode.GEMM: Gemm, Opcode.ALU: Alu, Opcode.FINISH: Finish}
FLAG_NAMES = ("pop_prev", "pop_next", "push_prev", "push_next")


def from_fields(opcode: int, fields) -> "Load | Store | Gemm | Alu | Finish":
    """An instruction from integer field values (a decoded column row): flags to bool, enums typed; fields the
    opcode's class does not have are ignored."""
    op = Opcode(int(opcode))
    cls = INSN_CLASSES[op]
    kw = {f: int(fields[f]) for f in cls.__dataclass_fields__  # mode, chain: 0 if absent
          if f not in ("mode", "chain") or f in fields}
    for f in FLAG_NAMES + ("reset", "use_imm", "chain"):
        if f in kw:
            kw[f] = bool(kw[f])
    if "mem" in kw:
        kw["mem"] = Mem(kw["mem"])
    if "op" in kw:
        kw["op"] = AluOp(kw["op"])
    return cls(**kw)


def module_for(opcode: int, mem: int = 0) -> Module:
    """Which module executes an instruction (VTA routing): STORE -> store, LOAD INP/WGT -> load, else compute."""
    if opcode == Opcode.STORE:
        return Module.STORE
    if opcode == Opcode.LOAD and mem in (Mem.INP, Mem.WGT):
        return Module.LOAD
    return Module.COMPUTE


@dataclass(frozen=True)
class IsaLayout:
    """Field widths per opcode, derived from a config. ``fields[op]`` is [(name, bits, signed)]."""
    insn_bits: int
    fields: dict
    uop_fields: tuple[int, int, int]

    HEADER = (("opcode", 3, False),) + tuple((f, 1, False) for f in FLAG_NAMES)

    @classmethod
    def for_config(cls, cfg: "AcceleratorConfig") -> "IsaLayout":
        acc_w, src_w, wgt_w = cfg.uop_fields
        inp_w = (cfg.inp_depth - 1).bit_length()
        max_depth = max(cfg.uop_depth, cfg.inp_depth, cfg.wgt_depth, cfg.acc_depth)
        sram_w, size_w = (max_depth - 1).bit_length(), max_depth.bit_length()
        uop_w = (cfg.uop_depth - 1).bit_length()
        it = cfg.loop_iter_bits
        from .modes import supported  # 0 bits on an int8-only core: VTA's fields unchanged
        mode_w = (len(supported(cfg)) - 1).bit_length()
        dma = [("mem", 3, False), ("sram_base", sram_w, False), ("dram_base", cfg.dram_addr_bits, False),
               ("y_size", size_w, False), ("x_size", size_w, False), ("x_stride", cfg.dram_stride_bits, False)]
        dma += [(p, cfg.pad_bits, False) for p in ("y_pad0", "y_pad1", "x_pad0", "x_pad1")] + [("mode", mode_w, False)]
        loop = [("uop_bgn", uop_w, False), ("uop_end", uop_w + 1, False), ("iter_out", it, False),
                ("iter_in", it, False), ("dst_out", acc_w, False), ("dst_in", acc_w, False)]
        gemm = [("reset", 1, False)] + loop + [("src_out", inp_w, False), ("src_in", inp_w, False),
                                               ("wgt_out", wgt_w, False), ("wgt_in", wgt_w, False),
                                               ("mode", mode_w, False)]
        chain_w = 1 if cfg.alu_stages > 1 else 0  # 0 bits on a one-stage ALU: VTA's fields unchanged
        alu = [("op", 3, False), ("use_imm", 1, False)] + loop + [
            ("src_out", acc_w, False), ("src_in", acc_w, False), ("imm", cfg.imm_bits, True), ("chain", chain_w, False)]
        fields = {Opcode.LOAD: cls.HEADER + tuple(dma), Opcode.STORE: cls.HEADER + tuple(dma),
                  Opcode.GEMM: cls.HEADER + tuple(gemm), Opcode.ALU: cls.HEADER + tuple(alu),
                  Opcode.FINISH: cls.HEADER}
        for op, fs in fields.items():
            total = sum(w for _, w, _ in fs)
            if total > cfg.insn_bits:
                widths = ", ".join(f"{n} {w}" for n, w, _ in fs)
                raise ConfigError("insn_bits", f"{op.name} needs {total} bits ({widths}) but instructions are "
                                  f"{cfg.insn_bits} bits; raise insn_bits or shrink the buffers/loop bounds")
        if sum(cfg.uop_fields) > 64:
            raise ConfigError("uop_buffer_bytes", f"micro-op index fields need {sum(cfg.uop_fields)} bits > 64")
        return cls(cfg.insn_bits, fields, cfg.uop_fields)

    def bits_used(self, op: Opcode) -> int:
        return sum(w for _, w, _ in self.fields[op])

    def field_range(self, op: Opcode, name: str) -> tuple[int, int]:
        """Inclusive (min, max) value a field can encode."""
        for n, w, signed in self.fields[op]:
            if n == name:
                return (-(1 << (w - 1)), (1 << (w - 1)) - 1) if signed else (0, (1 << w) - 1)
        raise KeyError(name)

    # ----- encoding ---------------------------------------------------------------------------
    def encode(self, insn: Insn, index: int | None = None) -> int:
        """One instruction to an integer of insn_bits bits; EncodingError if a field does not fit."""
        word, pos = 0, 0
        for name, w, signed in self.fields[insn.opcode]:
            v = int(insn.opcode) if name == "opcode" else int(getattr(insn, name))
            lo, hi = (-(1 << (w - 1)), (1 << (w - 1)) - 1) if signed else (0, (1 << w) - 1)
            if not lo <= v <= hi:
                raise EncodingError(name, v, f"does not fit {w} bits [{lo}, {hi}] of {insn.opcode.name}", index)
            word |= (v & ((1 << w) - 1)) << pos
            pos += w
        return word

    def decode(self, word: int, index: int | None = None) -> Insn:
        """Inverse of ``encode``."""
        try:
            op = Opcode(word & 7)
        except ValueError:
            raise EncodingError("opcode", word & 7, "unknown opcode", index) from None
        vals, pos = {}, 0
        for name, w, signed in self.fields[op]:
            v = (word >> pos) & ((1 << w) - 1)
            if signed and w and v >> (w - 1):
                v -= 1 << w
            vals[name] = v
            pos += w
        if word >> pos:
            raise EncodingError("reserved", word >> pos, f"bits above {pos} must be zero in {op.name}", index)
        del vals["opcode"]
        cls = INSN_CLASSES[op]
        for k in FLAG_NAMES + ("reset", "use_imm", "chain"):
            if k in vals:
                vals[k] = bool(vals[k])
        if "mem" in vals:
            try:
                vals["mem"] = Mem(vals["mem"])
            except ValueError:
                raise EncodingError("mem", vals["mem"], "unknown memory type", index) from None
        if "op" in vals:
            try:
                vals["op"] = AluOp(vals["op"])
            except ValueError:
                raise EncodingError("op", vals["op"], "unknown ALU opcode", index) from None
        return cls(**vals)

    def encode_program(self, insns) -> bytes:
        """Instructions to a little-endian binary, insn_bits/8 bytes each."""
        n = self.insn_bits // 8
        return b"".join(self.encode(x, i).to_bytes(n, "little") for i, x in enumerate(insns))

    def decode_program(self, blob: bytes) -> list:
        n = self.insn_bits // 8
        if len(blob) % n:
            raise EncodingError("length", len(blob), f"binary is not a whole number of {n}-byte instructions")
        return [self.decode(int.from_bytes(blob[i:i + n], "little"), i // n) for i in range(0, len(blob), n)]


# ----- micro-ops -------------------------------------------------------------------------------
def encode_uops(uops, cfg: "AcceleratorConfig") -> np.ndarray:
    """(n, 3) [dst, src, wgt] indices to micro-op words (uint32 or uint64 per ``cfg.uop_bytes``)."""
    u = np.asarray(uops, dtype=np.int64).reshape(-1, 3)
    widths = cfg.uop_fields
    for col, (name, w) in enumerate(zip(("dst", "src", "wgt"), widths)):
        if u.size and (u[:, col].min() < 0 or u[:, col].max() >= (1 << w)):
            bad = int(u[:, col][(u[:, col] < 0) | (u[:, col] >= (1 << w))][0])
            raise EncodingError(f"uop.{name}", bad, f"does not fit {w} bits")
    word = u[:, 0] | (u[:, 1] << widths[0]) | (u[:, 2] << (widths[0] + widths[1]))
    return word.astype(np.uint32 if cfg.uop_bytes == 4 else np.uint64)


def decode_uops(words, cfg: "AcceleratorConfig") -> np.ndarray:
    """Micro-op words to (n, 3) int64 [dst, src, wgt]."""
    w = np.atleast_1d(np.asarray(words)).astype(np.uint64)
    a, s, g = cfg.uop_fields
    cols = [w & np.uint64((1 << a) - 1), (w >> np.uint64(a)) & np.uint64((1 << s) - 1),
            (w >> np.uint64(a + s)) & np.uint64((1 << g) - 1)]
    return np.stack(cols, axis=1).astype(np.int64)
