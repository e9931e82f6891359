"""Programs in VTA's binary format (``hardware/vta_format.py``) to and from this simulator, with VTA's out buffer.

VTA's GEMM and ALU write every result twice: the int32 accumulator and, narrowed, a separate out buffer; STORE
reads only the out buffer (vta.cc, apache/tvm-vta d4a15f6). This package has one accumulator SRAM and STORE OUT
narrows it. The two agree whenever the last write of each stored row was a GEMM or ALU. They differ after

- a LOAD ACC, which writes the accumulators but not the out buffer (VTA stores the older out data), and
- a GEMM with reset, which writes zero accumulators but the narrowed acc + inp.wgt to the out buffer.

``from_vta`` maps a reset whose out value is stored: the reset GEMM runs as a plain GEMM (the accumulators hold
the value VTA's out buffer has) and a reset GEMM is re-issued just before the next instruction that touches those
accumulators (or FINISH), taking that instruction's token pops. A program storing out data that this cannot
express (rows of a LOAD ACC, or reset rows stored after the re-issued reset) raises ProgramError naming the STORE.
``to_vta`` checks the other way: no STORE of a compiled program may read rows VTA's out buffer would hold stale.
Both need the micro-ops, so both take the DRAM image (micro-op words are the same bits in both formats).
"""
from __future__ import annotations

import numpy as np

from ..errors import ProgramError
from ..hardware.config import AcceleratorConfig
from ..hardware.isa import Mem, Opcode, decode_uops
from ..hardware.vta_format import VtaLayout, lower_for_vta
from .dram import typed_view
from .program import COLUMNS, Program

_OK, _RESET, _LOADED = 0, 1, 2  # per accumulator row: out buffer == narrowed acc, or last written by what


def to_vta(program: Program, dram: np.ndarray | None = None) -> bytes:
    """VTA's binary of ``program`` (lowered: ``vta_format.lower_for_vta``). With ``dram`` (the image the program
    runs on, for its micro-ops), also checks that VTA's out buffer holds what every STORE reads here."""
    cfg = program.config
    layout = VtaLayout.for_config(cfg)
    if dram is not None:
        _analyse(cfg, program.table, dram, decoding=False)
    return layout.encode_table(cfg, program.table)


def lowered(program: Program) -> Program:
    """The program VTA runs (``lower_for_vta``) as a Program of the same config."""
    return Program(program.config, table=lower_for_vta(program.config, program.table))


def from_vta(config, blob: bytes, dram: np.ndarray) -> Program:
    """A Program with the effect of VTA binary ``blob`` run on ``dram`` (module docstring). Without the DRAM image
    (micro-ops), ``Program(cfg, table=VtaLayout.for_config(cfg).decode_table(blob))`` decodes all but the out
    buffer."""
    cfg = AcceleratorConfig.load(config)
    program = Program(cfg, table=VtaLayout.for_config(cfg).decode_table(blob))
    table = _analyse(program.config, program.table, dram, decoding=True)
    return program if table is None else Program(program.config, table=table)


def _rows(uop: np.ndarray, t: dict, i: int, col: int, fo: str, fi: str) -> np.ndarray:
    u = uop[t["uop_bgn"][i]:t["uop_end"][i], col]
    idx = u[None, None, :] + np.arange(t["iter_out"][i])[:, None, None] * t[fo][i] + \
        np.arange(t["iter_in"][i])[None, :, None] * t[fi][i]
    return np.unique(idx)


def _analyse(cfg, t: dict, dram: np.ndarray, decoding: bool):
    """Track, per accumulator row, whether VTA's out buffer equals the narrowed accumulator. Encoding: raise at a
    STORE that reads a row where they differ. Decoding: return the table with stored resets deferred (or None)."""
    n = len(t["opcode"])
    op, mem = t["opcode"].tolist(), t["mem"].tolist()
    uop = np.zeros((cfg.uop_depth, 3), np.int64)
    words = typed_view(dram, cfg, Mem.UOP)
    kind = np.zeros(cfg.acc_depth, np.int8)
    who = np.full(cfg.acc_depth, -1, np.int64)
    owner = np.full(cfg.acc_depth, -1, np.int64)  # untouched reset whose rows these are
    reset_rows, first_touch, needed = {}, {}, set()

    def touch(i, rows):
        js = np.unique(owner[rows])
        for j in js[js >= 0].tolist():
            first_touch[j] = i
            owner[reset_rows[j]] = -1

    for i in range(n):
        o = op[i]
        if o == Opcode.LOAD and mem[i] == Mem.UOP:
            b, xs, ys = t["dram_base"][i], t["x_size"][i], t["y_size"][i]
            src = (b + np.arange(ys)[:, None] * t["x_stride"][i] + np.arange(xs)[None, :]).ravel()  # rows as DMA'd
            if src.size and src.max() >= len(words):
                return _unknown(decoding, i, "dram_base", f"micro-ops up to {src.max()} outside the DRAM image")
            uop[t["sram_base"][i]:t["sram_base"][i] + src.size] = decode_uops(words[src], cfg)
        elif o == Opcode.LOAD and mem[i] == Mem.ACC:
            lo = t["sram_base"][i]
            rows = np.arange(lo, lo + (t["y_pad0"][i] + t["y_size"][i] + t["y_pad1"][i]) *
                             (t["x_pad0"][i] + t["x_size"][i] + t["x_pad1"][i]))
            touch(i, rows)
            kind[rows], who[rows] = _LOADED, i
        elif o in (Opcode.GEMM, Opcode.ALU):
            d = _rows(uop, t, i, 0, "dst_out", "dst_in")
            if d.size and d[-1] >= cfg.acc_depth:
                return _unknown(decoding, i, "dst", f"acc row {d[-1]} >= depth {cfg.acc_depth}")
            rows = d
            if o == Opcode.ALU and not t["use_imm"][i]:
                s = _rows(uop, t, i, 1, "src_out", "src_in")
                if s.size and s[-1] >= cfg.acc_depth:
                    return _unknown(decoding, i, "src", f"acc row {s[-1]} >= depth {cfg.acc_depth}")
                rows = np.union1d(d, s)
            touch(i, rows)
            if o == Opcode.GEMM and t["reset"][i]:
                kind[d], who[d], owner[d] = _RESET, i, i
                reset_rows[i] = d
            else:
                kind[d] = _OK
        elif o == Opcode.FINISH:
            touch(i, np.flatnonzero(owner >= 0))
        elif o == Opcode.STORE:
            lo = t["sram_base"][i]
            hi = min(lo + t["y_size"][i] * t["x_size"][i], cfg.acc_depth)
            k, w = kind[lo:hi], who[lo:hi]
            for r in np.flatnonzero(k != _OK).tolist():
                j = int(w[r])
                if k[r] == _LOADED or not decoding:
                    what = "a LOAD ACC" if k[r] == _LOADED else "a GEMM with reset"
                    fix = "" if decoding else " (insert an ALU SHR 0 over them first: VTA's copy to its out buffer)"
                    raise ProgramError(i, "sram_base", f"STORE reads accumulator row {lo + r}, last written by {what} "
                                       f"(instruction {j}): VTA's STORE reads its out buffer, which that does not "
                                       f"write, so VTA would store other data than this simulator{fix}")
                if j in first_touch:
                    raise ProgramError(i, "sram_base", f"STORE reads row {lo + r} of the reset GEMM {j}, whose out "
                                       f"value VTA keeps after instruction {first_touch[j]} touched the accumulators:"
                                       f" not expressible with one accumulator SRAM")
                needed.add(j)
    if not needed:
        return None
    return _defer(t, n, needed, first_touch)


def _unknown(decoding: bool, i: int, field: str, why: str):
    """A program whose accesses cannot be followed: decoding leaves it to the run to report (None); encoding
    refuses it here, as the out buffer could not be checked."""
    if decoding:
        return None
    raise ProgramError(i, field, f"{why}: the program cannot run, so its out buffer cannot be checked")


def _defer(t: dict, n: int, needed: set, first_touch: dict) -> dict:
    """Rows in the new order: each needed reset GEMM as a plain GEMM, re-issued before its first toucher (which
    hands its token pops to the first re-issued reset), or at the end."""
    before: dict = {}
    for j in sorted(needed):
        before.setdefault(first_touch.get(j, n), []).append(j)
    src, reset, pops = [], [], []  # source row, reset flag, (pop_prev, pop_next) or None to keep
    for i in range(n + 1):
        group = before.get(i, [])
        for k, j in enumerate(group):
            src.append(j)
            reset.append(1)
            pops.append((t["pop_prev"][i], t["pop_next"][i]) if k == 0 and i < n else (0, 0))
        if i < n:
            src.append(i)
            reset.append(0 if i in needed else t["reset"][i])
            pops.append((0, 0) if group else None)
    idx = np.array(src)
    out = {c: np.asarray(t[c])[idx].copy() for c in COLUMNS}
    out["reset"] = np.array(reset, np.int64)
    reissue = np.array([p is not None and s in needed and r == 1 for s, r, p in zip(src, reset, pops)])
    for f in ("push_prev", "push_next"):
        out[f][reissue] = 0  # a re-issued reset pushes nothing: its original (now plain) GEMM did
    for k, p in enumerate(pops):
        if p is not None:
            out["pop_prev"][k], out["pop_next"][k] = p
    return out
