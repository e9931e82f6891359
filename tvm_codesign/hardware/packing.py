"""Packed storage of a mode's operands (hardware/modes.py): sub-byte scalars and 2:4 compressed weights.

- Scalars of b < 8 bits: 8 / b per byte, element 0 in the lowest bits, two's complement (a 4-bit weight is
  [-8, 7], a 2-bit one [-2, 1]).
- A 2:4 sparse weight element (block_out x block_in, dense) is stored as its kept values (block_out x block_in / 2
  scalars of the mode's weight width, packed as above) followed by their positions within each group of 4
  (2 bits each, unsigned, packed the same way). A group with fewer than 2 non-zeros keeps its first zero
  positions. A group with more than 2 non-zeros cannot be stored: ValueError naming where.
"""
from __future__ import annotations

import numpy as np

from .modes import GROUP, META_BITS


def pack(values: np.ndarray, bits: int, signed: bool = True) -> np.ndarray:
    """(..., n) integers of ``bits`` bits -> (..., n * bits / 8) uint8. ValueError if a value does not fit."""
    v = np.asarray(values)
    if bits == 8:
        return v.astype(np.int8).view(np.uint8)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if v.size and (v.min() < lo or v.max() > hi):
        bad = v[(v < lo) | (v > hi)].ravel()[0]
        raise ValueError(f"value {int(bad)} does not fit {bits} bits [{lo}, {hi}]")
    per = 8 // bits
    if v.shape[-1] % per:
        raise ValueError(f"{v.shape[-1]} scalars do not fill whole bytes at {bits} bits")
    u = (v.astype(np.int16) & ((1 << bits) - 1)).astype(np.uint8).reshape(v.shape[:-1] + (v.shape[-1] // per, per))
    return np.bitwise_or.reduce(u << (np.arange(per, dtype=np.uint8) * bits), axis=-1).astype(np.uint8)


def unpack(data: np.ndarray, bits: int, signed: bool = True) -> np.ndarray:
    """(..., m) uint8 -> (..., m * 8 / bits) int8, inverse of ``pack``."""
    d = np.asarray(data, np.uint8)
    if bits == 8:
        return d.view(np.int8)
    per = 8 // bits
    v = (d[..., None] >> (np.arange(per, dtype=np.uint8) * bits)) & np.uint8((1 << bits) - 1)
    v = v.reshape(d.shape[:-1] + (d.shape[-1] * per,)).astype(np.int8)
    if signed:
        sign = np.int8(1 << (bits - 1))
        v = (v ^ sign) - sign
    return v.astype(np.int8)


def compress_2_4(dense: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., n) weights, n % 4 == 0, at most 2 non-zeros per group of 4 -> (kept values (..., n / 2), their
    positions (..., n / 2) in [0, 3])."""
    d = np.asarray(dense)
    g = d.reshape(d.shape[:-1] + (d.shape[-1] // GROUP, GROUP))
    nz = (g != 0).sum(-1)
    if nz.size and nz.max() > 2:
        at = np.argwhere(nz > 2)[0]
        raise ValueError(f"weights are not 2:4 sparse: group {tuple(int(i) for i in at)} (4 consecutive weights along "
                         f"the reduction) has {int(nz[tuple(at)])} non-zeros; prune to 2 of every 4 first")
    pos = np.sort(np.argsort(g == 0, axis=-1, kind="stable")[..., :2], axis=-1)  # non-zeros first, then zeros
    vals = np.take_along_axis(g, pos, -1)
    return vals.reshape(d.shape[:-1] + (-1,)), pos.reshape(d.shape[:-1] + (-1,)).astype(np.int8)


def decompress_2_4(vals: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Inverse of ``compress_2_4``: dense (..., 2 * k) with zeros where nothing was kept."""
    v = np.asarray(vals).reshape(vals.shape[:-1] + (-1, 2))
    p = np.asarray(pos).reshape(v.shape).astype(np.int64)
    out = np.zeros(v.shape[:-1] + (GROUP,), np.int8)
    np.put_along_axis(out, p, v.astype(np.int8), -1)
    return out.reshape(vals.shape[:-1] + (-1,))


def encode(cfg, mem: str, elems: np.ndarray) -> np.ndarray:
    """(n, *elem_shape) int8 operand elements of a mode view -> (n, DRAM element bytes) uint8. ``mem``: "inp"/"wgt"."""
    e = np.asarray(elems)
    n, m = e.shape[0], cfg.mode_spec
    if mem == "inp":
        return pack(e.reshape(n, -1), m.a_bits)
    flat = e.reshape(n, cfg.block_out, cfg.block_in)
    if not m.sparse:
        return pack(flat.reshape(n, -1), m.w_bits)
    vals, pos = compress_2_4(flat)
    return np.concatenate([pack(vals.reshape(n, -1), m.w_bits), pack(pos.reshape(n, -1), META_BITS, False)], 1)


def decode(cfg, mem: str, rows: np.ndarray) -> np.ndarray:
    """(..., DRAM element bytes) uint8 of a mode view -> (..., *elem_shape) int8 scalars, inverse of ``encode``."""
    r = np.asarray(rows, np.uint8)
    lead, m = r.shape[:-1], cfg.mode_spec
    if mem == "inp":
        return unpack(r, m.a_bits).reshape(lead + (cfg.batch, cfg.block_in))
    if not m.sparse:
        return unpack(r, m.w_bits).reshape(lead + (cfg.block_out, cfg.block_in))
    k = cfg.wgt_row_bytes
    vals, pos = unpack(r[..., :k], m.w_bits), unpack(r[..., k:], META_BITS, False)
    return decompress_2_4(vals, pos).reshape(lead + (cfg.block_out, cfg.block_in))
