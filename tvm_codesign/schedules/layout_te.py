"""``layout.py``'s packing as TE, for compiled code (``frontend/composite.py``): the user's layouts (NCHW/OIHW,
(M,K)/(N,K) or (K,N), (B,M,K)/(B,N,K) or (B,K,N)) <-> the packed 7-D layouts, zero-padded to BATCH / BLOCK
multiples."""
from __future__ import annotations

from tvm import te, tirx

from ..hardware.config import AcceleratorConfig
from .layout import packed_shapes
from .workload import Workload


def pack(wl: Workload, cfg: AcceleratorConfig, t: te.Tensor, what: str, kn: bool = False) -> te.Tensor:
    """``what`` "data" or "weight" (``kn``: a matmul weight given as (K, N)) -> its packed layout."""
    rows, nrows = (cfg.batch, wl.n) if what == "data" else (cfg.block_out, wl.co)
    BI = cfg.block_in

    def at(g, r, c, h, w):
        if wl.kind == "conv2d":
            return t[r, c, h, w]
        if wl.kind == "dense":
            return t[c, r] if kn else t[r, c]
        return t[g, c, r] if kn else t[g, r, c]

    return te.compute(packed_shapes(wl, cfg)[what], lambda g, ro, co, h, w, ri, ci: tirx.if_then_else(
        tirx.all(ro * rows + ri < nrows, co * BI + ci < wl.ci), at(g, ro * rows + ri, co * BI + ci, h, w),
        tirx.const(0, t.dtype)), name=f"packed_{what}")


def pack_vector(wl: Workload, cfg: AcceleratorConfig, b: te.Tensor, what: str = "bias") -> te.Tensor:
    """A per-channel int32 vector (``what``: "bias", plus the folded rounding constant, wrapping to int32, or
    "multiplier"), broadcast over groups and batch rows."""
    BO, off = cfg.block_out, wl.bias_offset if what == "bias" else 0
    return te.compute(packed_shapes(wl, cfg)[what], lambda g, o, r, i: tirx.if_then_else(
        o * BO + i < wl.co, (b[o * BO + i].astype("int64") + off).astype("int32"),
        tirx.const(0, "int32")), name=f"packed_{what}")


def unpack(wl: Workload, cfg: AcceleratorConfig, p: te.Tensor, name: str = "out") -> te.Tensor:
    """Packed output -> NCHW, (M, N) or (B, M, N)."""
    B, BO = cfg.batch, cfg.block_out
    if wl.kind == "conv2d":
        return te.compute((wl.n, wl.co, wl.oh, wl.ow), lambda n, o, y, x: p[0, n // B, o // BO, y, x, n % B, o % BO],
                          name=name)
    if wl.kind == "dense":
        return te.compute((wl.n, wl.co), lambda n, o: p[0, n // B, o // BO, 0, 0, n % B, o % BO], name=name)
    return te.compute((wl.groups, wl.n, wl.co), lambda g, n, o: p[g, n // B, o // BO, 0, 0, n % B, o % BO],
                      name=name)
