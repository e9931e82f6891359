"""Packing between user layouts (NCHW/OIHW, (M,K)/(N,K), (B,M,K)/(B,N,K)) and the accelerator's packed
layouts, padding batch to BATCH and channels to BLOCK multiples with zeros.

Packed: data (G, N/b, C/BI, H, W, b, BI), weight (G, O/BO, C/BI, KH, KW, BO, BI),
bias (G, O/BO, b, BO) int32 (broadcast over the batch rows; a per-channel requantisation multiplier alike),
out (G, N/b, O/BO, OH, OW, b, BO), with G the kernel's groups and C, O its channels per group: for a conv2d
with ``merge`` k, ceil(groups/k) groups of k*ci and k*co channels, the weight block-diagonal (zeros between the k groups; missing groups of the last are zero).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..hardware.config import AcceleratorConfig
from .workload import Workload, WorkloadError


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def packed_shapes(wl: Workload, cfg: AcceleratorConfig) -> dict:
    B, BI, BO, g = cfg.batch, cfg.block_in, cfg.block_out, wl.kernel_groups
    nb, cib, cob = _ceil(wl.n, B), _ceil(wl.merge * wl.ci, BI), _ceil(wl.merge * wl.co, BO)
    return {"data": (g, nb, cib, wl.h, wl.w, B, BI),
            "weight": (g, cob, cib, wl.kh, wl.kw, BO, BI),
            "bias": (g, cob, B, BO),
            "multiplier": (g, cob, B, BO),
            "out": (g, nb, cob, wl.oh, wl.ow, B, BO)}


def _blocks(c: int, cfg: AcceleratorConfig) -> int:
    return -(-c // cfg.block_in)


def fold_kw(wl: Workload, cfg: AcceleratorConfig) -> Workload | None:
    """A conv with few input channels (an RGB stem) wastes most of each BLOCK_IN-wide GEMM on channel padding.
    Folding the kernel columns into channels (x'[c*KW + j, y, x] = x_pad[c, y, x*SW + j], w'[o, c*KW + j, i, 0]
    = w[o, c, i, j]) gives the same sums with fewer padded blocks: the folded workload, or None if no gain
    (or a grouped conv, or a 2:4 sparse mode: its groups of 4 run along the user's input channels)."""
    if wl.kind != "conv2d" or wl.kw == 1 or wl.groups > 1 or cfg.mode_spec.sparse:
        return None
    if _blocks(wl.ci * wl.kw, cfg) >= _blocks(wl.ci, cfg) * wl.kw:
        return None
    return dataclasses.replace(wl, ci=wl.ci * wl.kw, h=wl.h + 2 * wl.pad[0], w=wl.ow, kw=1, stride=(wl.stride[0], 1),
                               pad=(0, 0))


def fold_window(wl: Workload, cfg: AcceleratorConfig) -> Workload | None:
    """The whole kernel window folded into channels (im2col: x'[(c*KH + i)*KW + j, y, x] = x_pad[c, y*SH + i,
    x*SW + j], w'[o, (c*KH + i)*KW + j, 0, 0] = w[o, c, i, j]): a 1x1 conv over the output pixels. Taken only
    where it beats the column fold (``fold_kw``) on both counts: fewer GEMM micro-op iterations (blocks of the
    reduction per output pixel) and no more input vectors to load (each output pixel's window is loaded once,
    against the column-folded input's padded rows): a 1-channel stride-1 stem (1 x 9 channels in one block instead
    of 3 x 1), not a strided RGB stem (whose windows overlap and would be loaded several times). None otherwise, for
    grouped convs and in 2:4 sparse modes (as ``fold_kw``)."""
    if wl.kind != "conv2d" or wl.kh * wl.kw == 1 or wl.groups > 1 or cfg.mode_spec.sparse:
        return None
    col = fold_kw(wl, cfg) or wl
    window, col_blocks = _blocks(wl.ci * wl.kh * wl.kw, cfg), _blocks(col.ci, cfg)
    if window >= col_blocks * col.kh * col.kw or wl.oh * wl.ow * window > col.h * col.w * col_blocks:
        return None
    return dataclasses.replace(wl, ci=wl.ci * wl.kh * wl.kw, h=wl.oh, w=wl.ow, kh=1, kw=1, stride=(1, 1), pad=(0, 0))


def fold(wl: Workload, cfg: AcceleratorConfig) -> Workload | None:
    """The folded workload a conv runs (``fold_window``, else ``fold_kw``), or None if neither gains."""
    return fold_window(wl, cfg) or fold_kw(wl, cfg)


def _canon(wl: Workload, a: np.ndarray, what: str) -> np.ndarray:
    """User layout -> (G, N, C, H, W) of the kernel (merged groups: block-diagonal weights)."""
    want = {("conv2d", "data"): (wl.n, wl.channels_in, wl.h, wl.w),
            ("conv2d", "weight"): (wl.channels_out, wl.ci, wl.kh, wl.kw),
            ("dense", "data"): (wl.n, wl.ci), ("dense", "weight"): (wl.co, wl.ci),
            ("batch_matmul", "data"): (wl.groups, wl.n, wl.ci),
            ("batch_matmul", "weight"): (wl.groups, wl.co, wl.ci)}[(wl.kind, what)]
    if tuple(a.shape) != want:
        raise WorkloadError(f"{what} of {wl.describe()} must have shape {want}, got {tuple(a.shape)}")
    if wl.kind == "conv2d":
        return _conv_groups(wl, a, what)
    if wl.kind == "dense":
        return a[None, :, :, None, None]
    return a[:, :, :, None, None]


def _conv_groups(wl: Workload, a: np.ndarray, what: str) -> np.ndarray:
    """NCHW data / OIHW weight -> (G', N, k*ci, H, W) / (G', k*co, k*ci, KH, KW), k = merge, G' = kernel groups:
    consecutive channel ranges per kernel group; the weight block-diagonal, missing groups zero."""
    g, k = wl.kernel_groups, wl.merge
    if what == "data":
        x = np.zeros((wl.n, g * k * wl.ci, wl.h, wl.w), a.dtype)
        x[:, :wl.channels_in] = a
        return x.reshape(wl.n, g, k * wl.ci, wl.h, wl.w).transpose(1, 0, 2, 3, 4)
    w = np.zeros((g * k, wl.co, wl.ci, wl.kh, wl.kw), a.dtype)
    w[:wl.groups] = a.reshape(wl.groups, wl.co, wl.ci, wl.kh, wl.kw)
    w = w.reshape(g, k, wl.co, 1, wl.ci, wl.kh, wl.kw) * np.eye(k, dtype=a.dtype)[None, :, None, :, None, None, None]
    return w.reshape(g, k * wl.co, k * wl.ci, wl.kh, wl.kw)


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
    return pack_vector(wl, cfg, "bias", bias)


def pack_vector(wl: Workload, cfg: AcceleratorConfig, what: str, values: np.ndarray) -> np.ndarray:
    """One int32 per output channel (``what``: "bias", with the folded rounding constant added, or "multiplier")
    -> the packed (G, O/BO, b, BO) accumulator tensor the kernel loads; padded channels 0."""
    g, cob, b, bo = packed_shapes(wl, cfg)[what]
    values = np.asarray(values)
    if values.shape != (wl.channels_out,):
        raise WorkloadError(f"{what} of {wl.describe()} must have shape ({wl.channels_out},), got {values.shape}")
    if not np.issubdtype(values.dtype, np.integer) or values.min(initial=0) < -2 ** 31 or \
            values.max(initial=0) >= 2 ** 31:
        raise WorkloadError(f"{what} of {wl.describe()} must be int32 values, got {values.dtype}")
    v = (values.astype(np.int64) + (wl.bias_offset if what == "bias" else 0)).astype(np.int32)  # wraps like the ALU
    per = wl.merge * wl.co if wl.kind == "conv2d" else wl.co  # a conv's groups differ; a batch shares one
    c = np.zeros((g if wl.kind == "conv2d" else 1, per), np.int32)
    c.reshape(-1)[:v.size] = v
    out = np.zeros((c.shape[0], cob * bo), np.int32)
    out[:, :per] = c
    return np.ascontiguousarray(np.broadcast_to(out.reshape(-1, cob, 1, bo), (g, cob, b, bo)))


def unpack_out(wl: Workload, cfg: AcceleratorConfig, out: np.ndarray) -> np.ndarray:
    g, nb, cob, oh, ow, b, bo = out.shape
    c = out.transpose(0, 1, 5, 2, 6, 3, 4).reshape(g, nb * b, cob * bo, oh, ow)[:, :wl.n, :wl.merge * wl.co]
    if wl.kind == "conv2d":  # kernel groups hold consecutive channel ranges
        c = c.transpose(1, 0, 2, 3, 4).reshape(wl.n, -1, oh, ow)[:, :wl.channels_out]
        return np.ascontiguousarray(c)
    if wl.kind == "dense":
        return np.ascontiguousarray(c[0, :, :, 0, 0])
    return np.ascontiguousarray(c[:, :, :, 0, 0])
