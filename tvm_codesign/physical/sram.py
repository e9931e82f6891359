"""On-chip SRAM buffers priced from the committed CACTI 7 table (``data/cacti_sram.csv``), no compiler needed.

Sources:
- [CACTI] CACTI 7 as shipped in zigzag-dse, run by ``physical/cacti.py`` with ZigZag's configuration (ITRS-HP,
  360 K, one read and one write port): per (node, capacity, port width) the energy of one read and one write
  access, area, standby leakage and random cycle time. Reference entries (45 nm): 256 KiB x 2048 bit: 606.3 pJ
  per read, 2.858 mm^2; 8 KiB x 64 bit: 7.47 pJ per read.
- [VTA] VTA's Chisel hardware (``TensorLoad``/``TensorGemm``): a tensor buffer is ``tensorLength`` memories of
  ``tensorWidth`` elements side by side, all read in the same cycle: input batch banks of block_in * inp_bits,
  weight block_out banks of block_in * wgt_bits, accumulator batch banks of block_out * acc_bits; the micro-op
  buffer is one memory of one micro-op.

Banking (decided here): a buffer is built as VTA builds it [VTA]: ``banks`` equal memories, each holding
capacity / banks bytes behind a port of port_bits / banks bits; one buffer access reads (or writes) every bank
once. Every capacity and width a valid config can produce is a power of two, so a bank is always a table entry
when the config is inside the grid (no interpolation); outside it (or where CACTI found no organisation, e.g.
fewer rows than a subarray) the lookup raises ``SramGridError`` naming the buffer, the bank and the grid.
"""
from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

from .cacti import CAPACITY_LOG2, NODES_NM, WIDTH_LOG2

TABLE = Path(__file__).parent / "data" / "cacti_sram.csv"
BUFFERS = ("uop", "inp", "wgt", "acc")
META = "wgt_meta"  # 2:4 weight positions (physical/precision.py), only on a sparse core


class SramGridError(ValueError):
    """A buffer's bank is not in the CACTI table."""


@lru_cache(maxsize=1)
def table() -> dict:
    """(node_nm, capacity_bytes, width_bits) -> entry dict (floats), read once."""
    out = {}
    with TABLE.open() as f:
        rows = csv.DictReader(line for line in f if not line.startswith("#"))
        for r in rows:
            k = (int(r["node_nm"]), int(r["capacity_bytes"]), int(r["width_bits"]))
            out[k] = {c: float(v) for c, v in r.items() if c not in ("node_nm", "capacity_bytes", "width_bits")}
    return out


def banking(cfg, buf: str) -> tuple[int, int, int]:
    """(banks, bank capacity bytes, bank port bits) of buffer ``buf`` of the hardware behind ``cfg`` [VTA]; the
    input and weight ports are as wide as the widest row of the hardware's modes (physical/precision.py)."""
    from .precision import ports
    hw = cfg.hardware
    if buf == "uop":
        return 1, hw.uop_buffer_bytes, hw.uop_bytes * 8
    p = ports(hw)
    if buf == META:
        return hw.block_out, p["meta_bytes"] // hw.block_out, p["meta_bits"] // hw.block_out
    banks, width = {"inp": (hw.batch, p["inp"] // hw.batch), "wgt": (hw.block_out, p["wgt"] // hw.block_out),
                    "acc": (hw.batch, hw.block_out * hw.acc_bits)}[buf]
    return banks, getattr(hw, f"{buf}_buffer_bytes") // banks, width


def entry(node_nm: int, capacity_bytes: int, width_bits: int, what: str = "") -> dict:
    """The table entry of one memory (SramGridError naming ``what`` and the grid if absent)."""
    e = table().get((int(node_nm), int(capacity_bytes), int(width_bits)))
    if e is None:
        grid = (f"nodes {list(NODES_NM)} nm, capacities 2^{CAPACITY_LOG2[0]}..2^{CAPACITY_LOG2[1]} B, port widths "
                f"2^{WIDTH_LOG2[0]}..2^{WIDTH_LOG2[1]} bits (powers of two, port <= capacity)")
        raise SramGridError(f"{what or 'SRAM'}: a {capacity_bytes} B memory with a {width_bits}-bit port at {node_nm} nm "
                            f"is not in the CACTI table ({grid}; CACTI builds no organisation for some tiny or "
                            f"very shallow points); regenerate with python -m tvm_codesign.physical.cacti")
    return e


def smallest(node_nm: int, min_bytes: int, width_bits: int, what: str) -> dict:
    """The entry of the smallest power-of-two memory of at least ``min_bytes`` (and 512 B) with a port of
    ``width_bits`` (rounded up to a power of two) that CACTI builds: small queues and burst buffers."""
    w = 1 << (max(int(width_bits), 1) - 1).bit_length()
    cap = 1 << (max(int(min_bytes), 512) - 1).bit_length()
    t = table()
    while (node_nm, cap, w) not in t and cap < 1 << CAPACITY_LOG2[1]:
        cap *= 2
    return entry(node_nm, cap, w, what)


def buffer_costs(cfg, node_nm: int) -> dict:
    """Per buffer: banks, bank geometry and the whole buffer's read/write pJ per access, area, leakage, cycle."""
    out = {}
    for b in BUFFERS + ((META,) if cfg.hardware.sparse_2_4 else ()):
        n, cap, w = banking(cfg, b)
        e = entry(node_nm, cap, w, f"{b} buffer ({n} bank{'s' * (n > 1)} of {cap} B x {w} bit)")
        out[b] = {"banks": n, "bank_bytes": cap, "bank_bits": w, "access_bytes": n * w // 8,
                  "read_pj": n * e["read_pj"], "write_pj": n * e["write_pj"], "area_mm2": n * e["area_mm2"],
                  "leakage_mw": n * e["leakage_mw"], "cycle_ns": e["cycle_ns"]}
    return out
