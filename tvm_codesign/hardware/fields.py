"""The rule of each hardware field on its own (cross-field limits are the config's): ``field_error``."""
from __future__ import annotations

import math

from ..physical import dram as _dram, tech as _tech
from . import modes

FIELD_RULES: dict = {}  # field -> (kind, allowed values or lower bound)

# Fields that no longer exist: what replaced them (a JSON file or design space naming one gets this as its error)
RENAMED = {"alu_ii": "no longer a field: the ALU's initiation interval depends on its operand (VTA's TensorAlu). "
                     "Write \"alu_ii_imm\" (immediate operand; VTA: 1) and \"alu_ii_vec\" (vector operand; VTA: 2), "
                     "or both = the old alu_ii to keep this file's old timing"}


def pow2(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0 and (v & (v - 1)) == 0


def field_error(field: str, value) -> str | None:
    """What is wrong with one value of a hardware field on its own (None: nothing); cross-field limits
    (an element per buffer, out_bits <= acc_bits, ISA widths) are checked by the config."""
    kind, rule = FIELD_RULES[field]
    if kind == "pow2":
        return None if pow2(value) else f"{value!r} must be a power of two " + ("number of bytes" if rule else ">= 1")
    if kind == "choice":
        return None if value in rule and not isinstance(value, bool) else f"{value!r} not supported; allowed: {rule}"
    if kind == "names":
        return None if isinstance(value, str) and value in rule else (
            f"{value!r} is not a listed DRAM part; allowed: '' (derive the cheapest that delivers the bandwidth) or "
            f"{sorted(n for n in rule if n)}")
    if kind == "bool":
        return None if isinstance(value, bool) else f"{value!r} must be true or false"
    if kind == "mode":
        return modes.error(value)
    if kind == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf
        return None if ok else f"{value!r} must be a finite number > 0{rule}"
    if not isinstance(value, int) or isinstance(value, bool) or value < rule:
        return f"{value!r} must be an integer >= {rule}"
    if field == "insn_bits" and value % 64:
        return f"{value} must be a multiple of 64"
    if field == "alu_stages" and value > 8:
        return f"{value} exceeds 8, more stages than a requantising epilogue has instructions"
    if field == "dma_burst_beats" and value > 256:
        return f"{value} exceeds 256, the longest AXI4 burst"
    return None


FIELD_RULES.update({f: ("pow2", False) for f in ("batch", "block_in", "block_out")})
FIELD_RULES.update({f: ("pow2", True) for f in ("uop_buffer_bytes", "inp_buffer_bytes", "wgt_buffer_bytes",
                                                 "acc_buffer_bytes")})
FIELD_RULES.update({"inp_bits": ("choice", (8, 16)), "wgt_bits": ("choice", (8, 16)), "acc_bits": ("choice", (16, 32)),
                     "out_bits": ("choice", (8, 16, 32)), "dram_bandwidth": ("float", " bytes/cycle"),
                     "clock_mhz": ("float", " MHz"), "tech_nm": ("choice", tuple(_tech.NODES)),
                     "dram_interface": ("names", ("",) + tuple(_dram.INTERFACES)),
                     "gemm_min_bits": ("choice", modes.BITS), "sparse_2_4": ("bool", None), "mode": ("mode", None)})
PHYSICAL_DEFAULTS = {"tech_nm": 45, "dram_interface": "", "gemm_min_bits": 8, "sparse_2_4": False, "mode": "",
                     "alu_stages": 1}
FIELD_RULES.update({f: ("int", lo) for f, lo in (
    ("dram_latency", 0), ("issue_cycles", 0), ("gemm_fill_cycles", 0), ("alu_fill_cycles", 0), ("alu_ii_imm", 1),
    ("alu_ii_vec", 1), ("alu_lanes", 1), ("alu_stages", 1), ("dma_burst_beats", 1), ("dma_request_cycles", 0),
    ("dma_outstanding", 1),
    ("queue_depth", 1), ("insn_bits", 64), ("dram_addr_bits", 8), ("dram_stride_bits", 1), ("loop_iter_bits", 1),
    ("pad_bits", 0), ("imm_bits", 2))})
