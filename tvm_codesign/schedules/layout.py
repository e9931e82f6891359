"""Packing between user layouts (NCHW/OIHW, (M,K)/(N,K), (B,M,K)/(B,N,K)) and the accelerator's packed
layouts, padding batch to BATCH and channels to BLOCK multiples with zeros.

Packed: data (G, N/b, C/BI, H, W, b, BI), weight (G, O/BO, C/BI, KH, KW, BO, BI),
bias (G, O/BO, b, BO) int32 (broadcast over the batch rows), out (G, N/b, O/BO, OH, OW, b, BO).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..hardware.config import AcceleratorConfig
from .workload import Workload, WorkloadError


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def packed_shapes(wl: Workload, cfg: AcceleratorConfig) -> dict:
    B, BI, BO = cfg.batch, cfg.block_in, cfg.block_out
    nb, cib, cob = _ceil(wl.n, B), _ceil(wl.ci, BI), _ceil(wl.co, BO)
    return {"data": (wl.groups, nb, cib, wl.h, wl.w, B, BI),
            "weight": (wl.groups, cob, cib, wl.kh, wl.kw, BO, BI),
            "bias": (wl.groups, cob, B, BO),
            "out": (wl.groups, nb, cob, wl.oh, wl.ow, B, BO)}


def fold_kw(wl: Workload, cfg: AcceleratorConfig) -> Workload | None:
    """A conv with few input channels (an RGB stem) wastes most of each BLOCK_IN-wide GEMM on channel padding.
    Folding the kernel columns into channels (x'[c*KW + j, y, x] = x_pad[c, y, x*SW + j], w'[o, c*KW + j, i, 0]
    = w[o, c, i, j]) gives the same sums with fewer padded blocks: the folded workload, or None if no gain."""
    if wl.kind != "conv2d" or wl.kw == 1:
        return None
    blocks = lambda c: -(-c // cfg.block_in)
    if blocks(wl.ci * wl.kw) >= blocks(wl.ci) * wl.kw:
        return None
    return dataclasses.replace(wl, ci=wl.ci * wl.kw, h=wl.h + 2 * wl.pad[0], w=wl.ow, kw=1, stride=(wl.stride[0], 1),
                               pad=(0, 0))


def _canon(wl: Workload, a: np.ndarray, what: str) -> np.ndarray:
    """User layout -> (G, N, C, H, W)."""
    want = {("conv2d", "data"): (wl.n, wl.ci, wl.h, wl.w), ("conv2d", "weight"): (wl.co, wl.ci, wl.kh, wl.kw),
            ("dense", "data"): (wl.n, wl.ci), ("dense", "weight"): (wl.co, wl.ci),
            ("batch_matmul", "data"): (wl.groups, wl.n, wl.ci),
            ("batch_matmul", "weight"): (wl.groups, wl.co, wl.ci)}[(wl.kind, what)]
    if tuple(a.shape) != want:
        raise WorkloadError(f"{what} of {wl.describe()} must have shape {want}, got {tuple(a.shape)}")
    if wl.kind == "conv2d":
        return a[None]
    if wl.kind == "dense":
        return a[None, :, :, None, None]
    return a[:, :, :, None, None]


def _pack(src: np.ndarray, packed: tuple) -> np.ndarray:
    """Canonical (G, R, C, H, W) -> packed (G, R/r, C/c, H, W, r, c), zero-padding R and C to block multiples."""
    g, nr, nc, h, w, r, c = packed
    out = np.zeros((g, nr * r, nc * c, h, w), np.int8)
    out[:, :src.shape[1], :src.shape[2]] = src
    return np.ascontiguousarray(out.reshape(g, nr, r, nc, c, h, w).transpose(0, 1, 3, 5, 6, 2, 4))


def pack_data(wl: Workload, cfg: AcceleratorConfig, x: np.ndarray) -> np.ndarray:
    return _pack(_canon(wl, np.asarray(x), "data"), packed_shapes(wl, cfg)["data"])


def pack_weight(wl: Workload, cfg: AcceleratorConfig, wt: np.ndarray) -> np.ndarray:
    return _pack(_canon(wl, np.asarray(wt), "weight"), packed_shapes(wl, cfg)["weight"])


def pack_bias(wl: Workload, cfg: AcceleratorConfig, bias: np.ndarray) -> np.ndarray:
    g, cob, b, bo = packed_shapes(wl, cfg)["bias"]
    bias = np.asarray(bias)
    if bias.shape != (wl.co,):
        raise WorkloadError(f"bias of {wl.describe()} must have shape ({wl.co},), got {bias.shape}")
    c = np.zeros(cob * bo, np.int32)
    c[:wl.co] = (bias.astype(np.int64) + wl.bias_offset).astype(np.int32)  # folded rounding, wraps like the ALU
    return np.ascontiguousarray(np.broadcast_to(c.reshape(1, cob, 1, bo), (g, cob, b, bo)))


def unpack_out(wl: Workload, cfg: AcceleratorConfig, out: np.ndarray) -> np.ndarray:
    g, nb, cob, oh, ow, b, bo = out.shape
    c = out.transpose(0, 1, 5, 2, 6, 3, 4).reshape(g, nb * b, cob * bo, oh, ow)[:, :wl.n, :wl.co]
    if wl.kind == "conv2d":
        return np.ascontiguousarray(c[0])
    if wl.kind == "dense":
        return np.ascontiguousarray(c[0, :, :, 0, 0])
    return np.ascontiguousarray(c[:, :, :, 0, 0])
