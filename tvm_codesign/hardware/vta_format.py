"""VTA's own binary format: the 128-bit instructions and 32-bit micro-ops of ``include/vta/hw_spec.h``.

Source: apache/tvm-vta at d4a15f6 (TVM 0.8-0.18's ``3rdparty/vta-hw``): the bitfield structs VTAMemInsn,
VTAGemInsn, VTAAluInsn and VTAUop, field widths from hw_spec_const.h (opcode, memory type and ALU opcode 3 bits,
SRAM address 16, DRAM address 32, sizes and stride 16, pads 4, loop bounds 14, immediate 16 signed) and from the
config's log2 buffer depths (micro-op range, loop factors, micro-op indices), laid out the way gcc lays out
``uint64_t`` / ``uint32_t`` bitfields: little-endian, packed in declaration order, a field that would cross its
word starting the next one. Checked against VTA's golden vectors (``tests/data/vta_golden``: 200 instruction and
40 micro-op patterns, 36 programs run by VTA's HLS source) and, for other configs, against ctypes' C layout.

**Which configs qualify** (``VtaLayout.for_config``; otherwise ConfigError naming the config field):
every struct fits its word (instructions 128 bits: log2 uop depth <= 13, log2 acc depth <= 11 for the default
widths; micro-op 32 bits: 2 log2(acc depth) + log2(wgt depth) <= 32); inp and acc buffers have the same depth
(hw_spec.h packs the micro-op source index in log2(acc depth) bits, vta.cc reads it as log2(inp depth) bits: they
agree only then); every depth >= 2 (C has no zero-width fields); and this config's own field widths do not
exceed VTA's (loop_iter_bits <= 14, dram_addr_bits <= 32, dram_stride_bits <= 16, pad_bits <= 4, imm_bits <= 16;
the 16-bit SRAM address and sizes hold any depth that fits the structs), so every program valid for the config
has a VTA encoding once lowered. Batch, block sizes and data widths do not enter the format. For a qualifying
config the micro-op words are bit-identical to this package's own (``isa.encode_uops``): DRAM images need no
conversion.

**Semantics mapped at decode** (VTA's HLS design, not a choice of this package): LOAD UOP copies x_size micro-ops
(y_size read as 1, pads dropped); LOAD WGT and STORE ignore pads; STORE reads the out buffer whatever its memory
type (decoded as OUT); ALU ignores reset_reg, and imm when use_imm is 0; SHR shifts by the low log2(acc_bits) bits
of its operand read as signed (imm 16 is a left shift by 16), decoded as that shift; ALU MUL (opcode 4) is not in
VTA's hardware (HLS writes the accumulator back unchanged and undefined out data) and does not decode; neither do
LOAD OUT / ACC_8BIT, which VTA's HLS does not execute. A SHR with a register operand shifts by the full amount here
and by its low bits on VTA: the two agree for amounts in [-16, 15], the range VTA's own implementations agree on.

**Lowering** (``lower_for_vta``, run by ``encode_table``; the normal compile path never pays it): CLIP v -> MAX
-v-1, MIN v (+1 ALU pass); MOV c -> MAX c, MIN c (+1 pass); SHR imm outside VTA's shift range -> a chain of SHRs
(a right shift by 16..31 costs +1 or +2 passes); LOAD UOP with y_size > 1 -> one contiguous load or one per row;
STORE ACC -> STORE OUT when out_bits == acc_bits; a chained ALU instruction (``chain``, simulator/chains.py) runs
unchained, one pass each, with the same results (VTA's ALU has one stage). MUL, CLIP or MOV with a register
operand, STORE ACC of wider accumulators and padded WGT/UOP loads have no VTA equivalent: EncodingError naming the
instruction.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, EncodingError
from .isa import FLAG_NAMES, AluOp, Mem, Opcode, from_fields

INSN_BYTES = 16
UOP_BYTES = 4
# hw_spec.h opcodes and ALU opcodes; memory types are the same numbers as ``isa.Mem`` (ACC_8BIT = 5 unused)
VTA_OPCODE = {Opcode.LOAD: 0, Opcode.STORE: 1, Opcode.GEMM: 2, Opcode.FINISH: 3, Opcode.ALU: 4}
FROM_VTA_OPCODE = {v: k for k, v in VTA_OPCODE.items()}
VTA_ALU_MUL = 4
# fixed widths of hw_spec_const.h
_OPCODE, _MEMOP_ID, _ALU_OPCODE, _SRAM, _DRAM, _SIZE, _STRIDE, _PAD, _ITER, _IMM = 3, 3, 3, 16, 32, 16, 16, 4, 14, 16
_HEADER = [("opcode", _OPCODE, False)] + [(f + "_dep", 1, False) for f in FLAG_NAMES]
# VTA field -> this package's column (``simulator.program.COLUMNS``)
COLUMN = {"memory_type": "mem", "sram_base": "sram_base", "dram_base": "dram_base", "y_size": "y_size",
          "x_size": "x_size", "x_stride": "x_stride", "y_pad_0": "y_pad0", "y_pad_1": "y_pad1", "x_pad_0": "x_pad0",
          "x_pad_1": "x_pad1", "reset_reg": "reset", "uop_bgn": "uop_bgn", "uop_end": "uop_end",
          "iter_out": "iter_out", "iter_in": "iter_in", "dst_factor_out": "dst_out", "dst_factor_in": "dst_in",
          "src_factor_out": "src_out", "src_factor_in": "src_in", "wgt_factor_out": "wgt_out",
          "wgt_factor_in": "wgt_in", "alu_opcode": "op", "use_imm": "use_imm", "imm": "imm",
          **{f + "_dep": f for f in FLAG_NAMES}}
_TABLE_COLUMNS = ("opcode",) + tuple(dict.fromkeys(COLUMN.values()))
_LOOP_OPS = (Opcode.GEMM, Opcode.ALU)


class _Overflow(Exception):
    pass


def _pack(fields, word_bits: int, total_bits: int, what: str):
    """gcc's bitfield placement: [(name, lo, width, signed)]; _Overflow if the struct outgrows total_bits."""
    out, pos = [], 0
    for name, w, signed in fields:
        if pos // word_bits != (pos + w - 1) // word_bits:
            pos = -(-pos // word_bits) * word_bits  # would straddle its word: starts the next one
        if pos + w > total_bits:
            raise _Overflow(f"VTA's {what}.{name} ({w} bits) would end at bit {pos + w} > {total_bits}")
        out.append((name, pos, w, signed))
        pos += w
    return tuple(out)


def _culprit(logs: dict) -> str:
    """The buffer deeper than in VTA's Pynq config, whose layout it exactly fills (8192 micro-ops, 2048 acc and inp
    rows, 1024 weight blocks): smaller depths only shrink fields."""
    for field, pynq in (("uop_buffer_bytes", 13), ("acc_buffer_bytes", 11), ("wgt_buffer_bytes", 10)):
        if logs[field] > pynq:
            return field
    return "acc_buffer_bytes"


@dataclass(frozen=True)
class VtaLayout:
    """Bit positions of VTA's structs for one config: ``fields[vta_opcode]`` = ((name, lo, width, signed), ...)."""
    fields: dict
    uop: tuple
    shr_bits: int

    @classmethod
    def for_config(cls, cfg) -> "VtaLayout":
        if cfg.mode or cfg.gemm_min_bits < 8 or cfg.sparse_2_4:
            raise ConfigError("mode", "VTA's format has no precision / sparsity mode: only int8-only cores "
                              "(gemm_min_bits 8, no sparse_2_4) export")
        lu, li, lw, la = ((d - 1).bit_length() for d in (cfg.uop_depth, cfg.inp_depth, cfg.wgt_depth, cfg.acc_depth))
        logs = {"uop_buffer_bytes": lu, "inp_buffer_bytes": li, "wgt_buffer_bytes": lw, "acc_buffer_bytes": la}
        for f, v in logs.items():
            if v < 1:
                raise ConfigError(f, "a buffer of one row would need a 0-bit VTA field: C has no zero-width field")
        if li != la:
            why = (f"VTA's micro-op packs the source index in log2(acc depth) = {la} bits (hw_spec.h VTAUop) but "
                   f"vta.cc reads it as log2(inp depth) = {li} bits: they agree only when the inp and acc buffers "
                   f"have the same depth (here {cfg.inp_depth} and {cfg.acc_depth} rows)")
            raise ConfigError("inp_buffer_bytes" if li > la else "acc_buffer_bytes", why)
        try:
            uop = _pack([("dst_idx", la, False), ("src_idx", la, False), ("wgt_idx", lw, False)], 32, 32, "VTAUop")
        except _Overflow as e:
            raise ConfigError(_culprit(logs), f"{e}: VTA's micro-op is one 32-bit word (hw_spec.h)") from None
        loop = [("reset_reg", 1, False), ("uop_bgn", lu, False), ("uop_end", lu + 1, False),
                ("iter_out", _ITER, False), ("iter_in", _ITER, False), ("dst_factor_out", la, False),
                ("dst_factor_in", la, False)]
        gemm = _HEADER + loop + [("src_factor_out", li, False), ("src_factor_in", li, False),
                                 ("wgt_factor_out", lw, False), ("wgt_factor_in", lw, False)]
        alu = _HEADER + loop + [("src_factor_out", la, False), ("src_factor_in", la, False),
                                ("alu_opcode", _ALU_OPCODE, False), ("use_imm", 1, False), ("imm", _IMM, True)]
        mem = _HEADER + [("memory_type", _MEMOP_ID, False), ("sram_base", _SRAM, False), ("dram_base", _DRAM, False),
                         ("y_size", _SIZE, False), ("x_size", _SIZE, False), ("x_stride", _STRIDE, False)] + [
            (p, _PAD, False) for p in ("y_pad_0", "y_pad_1", "x_pad_0", "x_pad_1")]
        try:
            packed = {k: _pack(v, 64, 128, n) for k, v, n in (
                (0, mem, "VTAMemInsn"), (2, gemm, "VTAGemInsn"), (4, alu, "VTAAluInsn"))}
        except _Overflow as e:
            raise ConfigError(_culprit(logs), f"{e}: VTA's instructions are 128 bits (hw_spec.h)") from None
        fields = {0: packed[0], 1: packed[0], 2: packed[2], 3: packed[2], 4: packed[4]}  # FINISH: GEMM's layout
        # (depths that fit the structs are below 2^14 rows, so the 16-bit SRAM address and sizes hold them)
        for f, mine, vta in (("loop_iter_bits", cfg.loop_iter_bits, _ITER), ("dram_addr_bits", cfg.dram_addr_bits,
                             _DRAM), ("dram_stride_bits", cfg.dram_stride_bits, _STRIDE),
                             ("pad_bits", cfg.pad_bits, _PAD), ("imm_bits", cfg.imm_bits, _IMM)):
            if mine > vta:
                raise ConfigError(f, f"needs {mine} bits, more than VTA's fixed {vta}-bit field (hw_spec_const.h)")
        return cls(fields, uop, (cfg.acc_bits - 1).bit_length())

    @property
    def shr_range(self) -> tuple[int, int]:
        """Shift amounts VTA's SHR reads from its operand's low bits (signed): [-16, 15] for int32."""
        return -(1 << (self.shr_bits - 1)), (1 << (self.shr_bits - 1)) - 1

    # ----- raw fields <-> bits ------------------------------------------------------------------
    def used_mask(self, vta_opcode: int) -> int:
        """The bits the struct of this opcode defines (the rest are unused; VTA ignores them)."""
        return sum(((1 << w) - 1) << lo for _, lo, w, _ in self.fields[vta_opcode])

    def unpack(self, word: int) -> tuple[int, dict]:
        """One 128-bit word to (VTA opcode, {field: value}) exactly as hw_spec.h's structs read it."""
        op = word & 7
        if op not in self.fields:
            raise EncodingError("opcode", op, "is not a VTA opcode (LOAD 0, STORE 1, GEMM 2, FINISH 3, ALU 4)")
        out = {}
        for name, lo, w, signed in self.fields[op][1:]:
            v = (word >> lo) & ((1 << w) - 1)
            out[name] = v - (1 << w) if signed and v >> (w - 1) else v
        return op, out

    def pack(self, vta_opcode: int, fields: dict) -> int:
        """Inverse of ``unpack``; missing fields are 0, unused bits 0. EncodingError if a value does not fit."""
        word = 0
        for name, lo, w, signed in self.fields[vta_opcode]:
            v = vta_opcode if name == "opcode" else int(fields.get(name, 0))
            lim = (-(1 << (w - 1)), (1 << (w - 1)) - 1) if signed else (0, (1 << w) - 1)
            if not lim[0] <= v <= lim[1]:
                raise EncodingError(name, v, f"does not fit VTA's {w}-bit field {list(lim)}")
            word |= (v & ((1 << w) - 1)) << lo
        return word

    def unpack_uop(self, word: int) -> dict:
        return {name: (int(word) >> lo) & ((1 << w) - 1) for name, lo, w, _ in self.uop}

    # ----- micro-ops ------------------------------------------------------------------------------
    def encode_uops(self, uops) -> np.ndarray:
        """(n, 3) [dst, src, wgt] to VTAUop words (uint32)."""
        u = np.asarray(uops, dtype=np.int64).reshape(-1, 3)
        word = np.zeros(len(u), np.uint64)
        for col, (name, lo, w, _) in enumerate(self.uop):
            bad = np.flatnonzero((u[:, col] < 0) | (u[:, col] >= 1 << w))
            if bad.size:
                raise EncodingError(f"uop.{name}", int(u[bad[0], col]), f"does not fit VTA's {w}-bit field",
                                    int(bad[0]))
            word |= u[:, col].astype(np.uint64) << np.uint64(lo)
        return word.astype(np.uint32)

    def decode_uops(self, words) -> np.ndarray:
        w = np.atleast_1d(np.asarray(words)).astype(np.uint64)
        return np.stack([(w >> np.uint64(lo)) & np.uint64((1 << n) - 1) for _, lo, n, _ in self.uop],
                        axis=1).astype(np.int64)

    # ----- whole programs as columns --------------------------------------------------------------
    def encode_table(self, cfg, table: dict) -> bytes:
        """Columns of a program (``Program.table``) to VTA's binary, lowering first (``lower_for_vta``)."""
        t = lower_for_vta(cfg, table)
        op = np.asarray(t["opcode"], np.int64)
        n = len(op)
        _reject(t, (op == Opcode.ALU) & ~np.isin(t["op"], (AluOp.MIN, AluOp.MAX, AluOp.ADD, AluOp.SHR)),
                "op", "is not a VTA ALU opcode (MIN, MAX, ADD, SHR)")
        lo, hi = self.shr_range
        shr = (op == Opcode.ALU) & (t["op"] == AluOp.SHR) & (t["use_imm"] == 1)
        _reject(t, shr & ((t["imm"] < lo) | (t["imm"] > hi)), "imm",
                f"is outside the shift VTA's SHR reads from its operand [{lo}, {hi}]")
        vop = np.zeros(n, np.int64)
        for mine, vta in VTA_OPCODE.items():
            vop[op == mine] = vta
        words = np.zeros((n, 2), np.uint64)
        for code, fields in self.fields.items():
            sel = np.flatnonzero(vop == code)
            if not sel.size:
                continue
            for name, lo_bit, w, signed in fields:
                if code == 3 and name not in ("opcode",) + tuple(f + "_dep" for f in FLAG_NAMES):
                    continue  # FINISH carries only its opcode and flags
                v = vop[sel] if name == "opcode" else np.asarray(t[COLUMN[name]], np.int64)[sel]
                lim = (-(1 << (w - 1)), (1 << (w - 1)) - 1) if signed else (0, (1 << w) - 1)
                bad = np.flatnonzero((v < lim[0]) | (v > lim[1]))
                if bad.size:
                    raise EncodingError(name, int(v[bad[0]]), f"does not fit VTA's {w}-bit field {list(lim)}",
                                        int(sel[bad[0]]))
                bits = (v & ((1 << w) - 1)).astype(np.uint64) << np.uint64(lo_bit % 64)
                words[sel, lo_bit // 64] |= bits
        return words.astype("<u8").tobytes()

    def decode_table(self, blob: bytes) -> dict:
        """VTA's binary to program columns, with VTA's semantics mapped (module docstring)."""
        if len(blob) % INSN_BYTES:
            raise EncodingError("length", len(blob), f"is not a whole number of {INSN_BYTES}-byte VTA instructions")
        words = np.frombuffer(blob, "<u8").reshape(-1, 2).astype(np.uint64)
        n = len(words)
        vop = (words[:, 0] & np.uint64(7)).astype(np.int64)
        bad = np.flatnonzero(vop > 4)
        if bad.size:
            raise EncodingError("opcode", int(vop[bad[0]]), "is not a VTA opcode (LOAD 0, STORE 1, GEMM 2, "
                                "FINISH 3, ALU 4)", int(bad[0]))
        t = {c: np.zeros(n, np.int64) for c in _TABLE_COLUMNS}
        for code, fields in self.fields.items():
            sel = vop == code
            t["opcode"][sel] = FROM_VTA_OPCODE[code]
            for name, lo_bit, w, signed in fields[1:]:
                v = ((words[sel, lo_bit // 64] >> np.uint64(lo_bit % 64)) & np.uint64((1 << w) - 1)).astype(np.int64)
                if signed:
                    v = np.where(v >> (w - 1) == 1, v - (1 << w), v)
                t[COLUMN[name]][sel] = v
        return _vta_semantics(self, t)


def _reject(t: dict, mask: np.ndarray, field: str, message: str) -> None:
    i = np.flatnonzero(mask)
    if i.size:
        k = int(i[0])
        what = Opcode(int(t["opcode"][k])).name
        if what == "ALU":
            what += " " + _op_name(int(t["op"][k]))
        raise EncodingError(field, int(t[field][k]), f"{message} ({what})", k)


def _op_name(v: int) -> str:
    return AluOp(v).name if v in AluOp._value2member_map_ else str(v)


def _vta_semantics(layout: VtaLayout, t: dict) -> dict:
    """Decoded VTA fields -> this package's instructions with the same effect (stateless part)."""
    op, mem = t["opcode"], t["mem"]
    load, store, alu = op == Opcode.LOAD, op == Opcode.STORE, op == Opcode.ALU
    _reject(t, load & (mem > Mem.ACC), "mem", "is a memory type VTA's LOAD does not execute (UOP 0, WGT 1, INP 2, "
            "ACC 3 only)")
    _reject(t, alu & (t["op"] == VTA_ALU_MUL), "op", "MUL is not implemented by VTA's hardware: HLS writes the "
            "accumulator back unchanged and undefined out data, and Chisel cannot decode it")
    _reject(t, alu & (t["op"] > VTA_ALU_MUL), "op", "is not a VTA ALU opcode")
    pads = ("y_pad0", "y_pad1", "x_pad0", "x_pad1")
    no_pads = store | (load & ((mem == Mem.UOP) | (mem == Mem.WGT)))  # VTA ignores these pads
    for p in pads:
        t[p][no_pads] = 0
    t["y_size"][load & (mem == Mem.UOP)] = 1  # LOAD UOP copies x_size micro-ops
    t["mem"][store] = Mem.OUT                  # STORE reads the out buffer whatever memory_type says
    t["imm"][alu & (t["use_imm"] == 0)] = 0
    shr = alu & (t["op"] == AluOp.SHR) & (t["use_imm"] == 1)
    b = layout.shr_bits
    k = t["imm"][shr] & ((1 << b) - 1)
    t["imm"][shr] = np.where(k >> (b - 1) == 1, k - (1 << b), k)
    t["reset"][~(op == Opcode.GEMM)] = 0  # ALU and FINISH ignore reset_reg
    fin = op == Opcode.FINISH
    for c in _TABLE_COLUMNS[1:]:
        if c not in FLAG_NAMES:
            t[c][fin] = 0
    for c in ("mem", "sram_base", "dram_base", "y_size", "x_size", "x_stride") + pads:
        t[c][~(load | store)] = 0
    for c in ("uop_bgn", "uop_end", "iter_out", "iter_in", "dst_out", "dst_in", "src_out", "src_in"):
        t[c][~np.isin(op, _LOOP_OPS)] = 0
    for c in ("wgt_out", "wgt_in"):
        t[c][op != Opcode.GEMM] = 0
    for c in ("op", "use_imm", "imm"):
        t[c][~alu] = 0
    return t


# ----- lowering this package's ISA to what VTA executes ----------------------------------------------
def lower_for_vta(cfg, table: dict) -> dict:
    """A program (columns) rewritten with VTA's operations only, same results (module docstring).

    Rows that need no rewrite are copied; a rewritten row becomes several, the first carrying its pops and the
    last its pushes. EncodingError names the first instruction with no VTA equivalent.
    """
    t = {c: np.array(table[c], np.int64) if c in table else np.zeros(len(table["opcode"]), np.int64)
         for c in _TABLE_COLUMNS}  # copies: the caller's columns stay as they are
    op = t["opcode"]
    alu, reg = op == Opcode.ALU, t["use_imm"] == 0
    _reject(t, alu & (t["op"] == AluOp.MUL), "op", "MUL is not in VTA's hardware (its HLS ALU has no multiplier "
            "branch, its Chisel ALU cannot decode it): requantise with a shift only, or run this layer elsewhere")
    _reject(t, alu & reg & np.isin(t["op"], (AluOp.CLIP, AluOp.MOV)), "op", "with a register operand has no VTA "
            "equivalent (CLIP needs -v-1 in a register; MOV as MAX then MIN is exact only when no micro-op iteration "
            "reads a row another one wrote): write it as ALU MAX then MIN")
    load, store = op == Opcode.LOAD, op == Opcode.STORE
    pads = t["y_pad0"] + t["y_pad1"] + t["x_pad0"] + t["x_pad1"]
    _reject(t, load & np.isin(t["mem"], (Mem.WGT, Mem.UOP)) & (pads > 0), "mem", "load with padding: VTA ignores "
            "the pad fields of WGT and UOP loads (this package zero-fills them)")
    if cfg.out_bits == cfg.acc_bits:
        t["mem"][store & (t["mem"] == Mem.ACC)] = Mem.OUT  # the out buffer holds whole accumulators
    _reject(t, store & (t["mem"] == Mem.ACC), "mem", f"STORE ACC writes {cfg.acc_bits}-bit accumulators; VTA stores "
            f"only its {cfg.out_bits}-bit out buffer")
    lo, hi = (-(1 << ((cfg.acc_bits - 1).bit_length() - 1)), (1 << ((cfg.acc_bits - 1).bit_length() - 1)) - 1)
    rewrite = np.flatnonzero((alu & ~reg & np.isin(t["op"], (AluOp.CLIP, AluOp.MOV)))
                             | (alu & ~reg & (t["op"] == AluOp.SHR) & ((t["imm"] < lo) | (t["imm"] > hi)))
                             | (load & (t["mem"] == Mem.UOP) & (t["y_size"] > 1)))
    if not rewrite.size:
        return t
    pieces = {int(i): _pieces(cfg, {c: int(v[i]) for c, v in t.items()}, lo, hi) for i in rewrite}
    count = np.ones(len(op), np.int64)
    for i, p in pieces.items():
        count[i] = len(p)
    src = np.repeat(np.arange(len(op)), count)
    out = {c: v[src] for c, v in t.items()}
    starts = np.r_[0, np.cumsum(count)[:-1]]
    for i, p in pieces.items():
        for j, row in enumerate(p):
            k = starts[i] + j
            for c, v in row.items():
                out[c][k] = v
            if j:  # pops on the first piece only
                out["pop_prev"][k] = out["pop_next"][k] = 0
            if j < len(p) - 1:  # pushes on the last piece only
                out["push_prev"][k] = out["push_next"][k] = 0
    return out


def _pieces(cfg, row: dict, lo: int, hi: int) -> list[dict]:
    """The VTA instructions that replace one row: field overrides per piece."""
    if row["opcode"] == Opcode.LOAD:  # LOAD UOP of several rows
        y, x, s = row["y_size"], row["x_size"], row["x_stride"]
        if s == x:
            return [dict(y_size=1, x_size=y * x)]
        return [dict(y_size=1, dram_base=row["dram_base"] + r * s, sram_base=row["sram_base"] + r * x)
                for r in range(y)]
    v = row["imm"]
    if row["op"] == AluOp.CLIP:  # clamp to [-v-1, v]
        return [dict(op=int(AluOp.MAX), imm=-v - 1), dict(op=int(AluOp.MIN), imm=v)]
    if row["op"] == AluOp.MOV:  # max(a, c) >= c, then min(., c) = c
        return [dict(op=int(AluOp.MAX), imm=v), dict(op=int(AluOp.MIN), imm=v)]
    # SHR beyond VTA's range: floor shifts compose; past the accumulator width the result no longer changes
    v = max(-cfg.acc_bits, min(cfg.acc_bits - 1, v))
    out = []
    while v:
        step = min(v, hi) if v > 0 else max(v, lo)
        out.append(dict(imm=step))
        v -= step
    return out


def decode_insn(cfg, word: int):
    """One 128-bit VTA word to this package's instruction (VTA's semantics mapped)."""
    t = VtaLayout.for_config(cfg).decode_table(int(word).to_bytes(INSN_BYTES, "little"))
    return from_fields(t["opcode"][0], {f: v[0] for f, v in t.items()})


def encode_insn(cfg, insn) -> int:
    """One instruction to a 128-bit VTA word (EncodingError if it has no single-word VTA equivalent)."""
    row = {c: np.array([int(getattr(insn, c, 0))], np.int64) for c in _TABLE_COLUMNS[1:]}
    row["opcode"] = np.array([int(insn.opcode)], np.int64)
    blob = VtaLayout.for_config(cfg).encode_table(cfg, row)
    if len(blob) != INSN_BYTES:
        raise EncodingError("op", int(getattr(insn, "op", 0)), f"lowers to {len(blob) // INSN_BYTES} VTA "
                            "instructions: encode the program (encode_table) instead")
    return int.from_bytes(blob, "little")
