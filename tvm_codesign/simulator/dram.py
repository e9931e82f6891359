"""The DRAM image (a flat uint8 array) and its typed element views, plus a builder for hand-written programs.

Instructions address DRAM in elements of their memory type: element ``e`` of type INP occupies bytes
``[e * inp_elem_bytes, (e + 1) * inp_elem_bytes)``. Micro-ops are ``uop_bytes``-wide words.
"""
from __future__ import annotations

import numpy as np

from ..errors import ProgramError
from ..hardware import packing
from ..hardware.config import AcceleratorConfig
from ..hardware.isa import Mem, encode_uops
from .program import Program

_INT = {8: np.int8, 16: np.int16, 32: np.int32}


def packed(cfg: AcceleratorConfig, mem: Mem) -> bool:
    """Whether ``mem``'s DRAM elements are packed bytes (a narrow or sparse mode's INP / WGT, hardware/packing.py)."""
    return bool(cfg.mode) and mem in (Mem.INP, Mem.WGT)


def sram_type(cfg: AcceleratorConfig, mem: Mem) -> tuple[np.dtype, tuple[int, ...]]:
    """(dtype, shape) of one element as the simulator holds it on chip: scalars (packed modes unpacked)."""
    if packed(cfg, mem):
        return np.dtype(np.int8), ((cfg.batch, cfg.block_in) if mem == Mem.INP else (cfg.block_out, cfg.block_in))
    return elem_type(cfg, mem)


def elem_type(cfg: AcceleratorConfig, mem: Mem) -> tuple[np.dtype, tuple[int, ...]]:
    """(dtype, shape) of one element of a memory type in DRAM (packed modes: its bytes)."""
    if packed(cfg, mem):
        return np.dtype(np.uint8), ((cfg.inp_elem_bytes if mem == Mem.INP else cfg.wgt_elem_bytes),)
    if mem == Mem.UOP:
        return np.dtype(np.uint32 if cfg.uop_bytes == 4 else np.uint64), ()
    if mem == Mem.INP:
        return np.dtype(_INT[cfg.inp_bits]), (cfg.batch, cfg.block_in)
    if mem == Mem.WGT:
        return np.dtype(_INT[cfg.wgt_bits]), (cfg.block_out, cfg.block_in)
    if mem == Mem.ACC:
        return np.dtype(_INT[cfg.acc_bits]), (cfg.batch, cfg.block_out)
    return np.dtype(_INT[cfg.out_bits]), (cfg.batch, cfg.block_out)


def elem_bytes(cfg: AcceleratorConfig, mem: Mem) -> int:
    dt, shape = elem_type(cfg, mem)
    return dt.itemsize * int(np.prod(shape, dtype=np.int64))


def typed_view(data: np.ndarray, cfg: AcceleratorConfig, mem: Mem) -> np.ndarray:
    """Zero-copy view of a uint8 DRAM image (bytes,) as (n_elements, *elem_shape) of the memory type; of a batch of
    images (images, bytes) as (images, n_elements, *elem_shape)."""
    dt, shape = elem_type(cfg, mem)
    e = elem_bytes(cfg, mem)
    n = data.shape[-1] // e
    return data[..., : n * e].view(dt).reshape(data.shape[:-1] + (n,) + shape)


class ProgramBuilder:
    """Collects instructions and a DRAM image: ``put`` tensors, ``put_uops``, ``emit`` instructions."""

    def __init__(self, config, align: int = 64):
        self.config = AcceleratorConfig.load(config)
        self.align = align
        self.insns: list = []
        self._chunks: list[tuple[int, bytes]] = []
        self.size = 0

    def alloc(self, n_elems: int, mem: Mem) -> int:
        """Reserve zeroed space; returns the element address for ``mem``."""
        e = elem_bytes(self.config, mem)
        step = np.lcm(e, self.align)
        start = -(-self.size // step) * step
        self.size = start + n_elems * e
        return start // e

    def put(self, array, mem: Mem) -> int:
        """Place elements of ``mem`` type (shape (n, *elem_shape)); returns their element address. In a packed
        mode, INP / WGT elements may be given as int8 scalars (n, *sram shape): they are packed here."""
        dt, shape = elem_type(self.config, mem)
        a = np.asarray(array)
        if packed(self.config, mem) and a.dtype == np.int8 and a.shape[1:] == sram_type(self.config, mem)[1]:
            a = packing.encode(self.config, "inp" if mem == Mem.INP else "wgt", a)
        if a.shape[1:] != shape or a.dtype != dt:
            raise ProgramError(None, "put", f"{mem.name} data must be {dt} of shape (n, {shape}), "
                               f"got {a.dtype} {a.shape}")
        addr = self.alloc(a.shape[0], mem)
        self._chunks.append((addr * elem_bytes(self.config, mem), np.ascontiguousarray(a).tobytes()))
        return addr

    def put_uops(self, uops) -> int:
        """Place micro-ops [(dst, src, wgt), ...]; returns their element (word) address."""
        return self.put(encode_uops(uops, self.config), Mem.UOP)

    def emit(self, *insns) -> "ProgramBuilder":
        self.insns.extend(insns)
        return self

    def dram(self, extra_bytes: int = 0) -> np.ndarray:
        """The DRAM image: everything put so far, plus ``extra_bytes`` of zeros."""
        out = np.zeros(self.size + extra_bytes, dtype=np.uint8)
        for off, blob in self._chunks:
            out[off:off + len(blob)] = np.frombuffer(blob, dtype=np.uint8)
        return out

    def read(self, dram: np.ndarray, addr: int, n_elems: int, mem: Mem) -> np.ndarray:
        """Copy of ``n_elems`` elements of ``mem`` at element address ``addr``."""
        return typed_view(dram, self.config, mem)[addr:addr + n_elems].copy()

    def program(self) -> Program:
        return Program(self.config, self.insns)
