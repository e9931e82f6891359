"""A hand-scheduled tiled GEMM program, C = A . W^T (int8 -> int32, optional int8 requantisation).

Packed layouts: A as INP elements [M/B, K/BI], W as WGT elements [N/BO, K/BI], C as ACC/OUT elements
[M/B, N/BO]. Tiles of ``tile_m x tile_n`` output elements accumulate over ``tile_k``-element steps.
Input and weight tiles are double-buffered (two SRAM halves, VTA's virtual threads): the load module
fills one half while compute uses the other, synchronised by load->compute / compute->load tokens;
accumulator tiles alternate halves so stores overlap the next tile (compute->store / store->compute).
Used by the demo, the benchmark and the tests.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ProgramError
from ..hardware.config import AcceleratorConfig
from ..hardware.isa import Alu, AluOp, Finish, Gemm, Load, Mem, Store
from .dram import ProgramBuilder
from .program import Program


@dataclass
class GemmProgram:
    program: Program
    dram: np.ndarray
    builder: ProgramBuilder
    out_addr: int
    out_mem: Mem
    shape: tuple[int, int, int]

    def result(self, dram: np.ndarray | None = None) -> np.ndarray:
        """Unpack C (M x N) from a DRAM image after a run."""
        cfg, (m, n, _) = self.builder.config, self.shape
        mb, nb = m // cfg.batch, n // cfg.block_out
        c = self.builder.read(self.dram if dram is None else dram, self.out_addr, mb * nb, self.out_mem)
        return c.reshape(mb, nb, cfg.batch, cfg.block_out).transpose(0, 2, 1, 3).reshape(m, n)


def pack_inp(a: np.ndarray, cfg: AcceleratorConfig) -> np.ndarray:
    m, k = a.shape
    return a.reshape(m // cfg.batch, cfg.batch, k // cfg.block_in, cfg.block_in).transpose(0, 2, 1, 3).reshape(
        -1, cfg.batch, cfg.block_in)


def pack_wgt(w: np.ndarray, cfg: AcceleratorConfig) -> np.ndarray:
    n, k = w.shape
    return w.reshape(n // cfg.block_out, cfg.block_out, k // cfg.block_in, cfg.block_in).transpose(
        0, 2, 1, 3).reshape(-1, cfg.block_out, cfg.block_in)


def reference(a: np.ndarray, w: np.ndarray, shift: int | None = None) -> np.ndarray:
    """numpy reference: int32 wrap-around accumulate; with ``shift``, round-half-up, shift, clip to int8."""
    c = (a.astype(np.int64) @ w.astype(np.int64).T).astype(np.int32)
    if shift is None:
        return c
    r = (c.astype(np.int64) + (1 << (shift - 1)) if shift > 0 else c.astype(np.int64)) >> shift
    return np.clip(r.astype(np.int32), -128, 127).astype(np.int8)


def pick_tiles(cfg: AcceleratorConfig, m: int, n: int, k: int) -> tuple[int, int, int]:
    """Largest double-buffered (tile_m, tile_n, tile_k) that fits the SRAMs: fewest DRAM bytes moved."""
    mb, nb, kb = m // cfg.batch, n // cfg.block_out, k // cfg.block_in
    divs = lambda x: [d for d in range(1, x + 1) if x % d == 0]
    best = None
    for tm in divs(mb):
        for tn in divs(nb):
            if 2 * tm * tn > cfg.acc_depth:
                continue
            for tk in divs(kb):
                if 2 * tm * tk > cfg.inp_depth or 2 * tn * tk > cfg.wgt_depth or tm * tn > (1 << cfg.loop_iter_bits):
                    continue
                traffic = (nb // tn) * mb * kb * cfg.inp_elem_bytes + (mb // tm) * nb * kb * cfg.wgt_elem_bytes
                key = (traffic, -tk)
                if best is None or key < best[0]:
                    best = (key, (tm, tn, tk))
    if best is None:
        raise ProgramError(None, "tile", f"no double-buffered tile fits {cfg.name} for {m}x{n}x{k}")
    return best[1]


def tiled_gemm(cfg: AcceleratorConfig, a: np.ndarray, w: np.ndarray, tile_m: int, tile_n: int, tile_k: int,
               shift: int | None = None) -> GemmProgram:
    """Build the program and DRAM image for ``a`` (M x K) and ``w`` (N x K); tiles in elements."""
    cfg = AcceleratorConfig.load(cfg)
    m, k = a.shape
    n = w.shape[0]
    B, BI, BO = cfg.batch, cfg.block_in, cfg.block_out
    if m % B or k % BI or n % BO or w.shape[1] != k:
        raise ProgramError(None, "shape", f"need M % {B} == K % {BI} == N % {BO} == 0, got {a.shape} x {w.shape}")
    mb, kb, nb = m // B, k // BI, n // BO
    for name, t, tot in (("tile_m", tile_m, mb), ("tile_n", tile_n, nb), ("tile_k", tile_k, kb)):
        if t < 1 or tot % t:
            raise ProgramError(None, name, f"{t} must divide {tot}")
    for buf, need, depth in (("inp", 2 * tile_m * tile_k, cfg.inp_depth), ("wgt", 2 * tile_n * tile_k, cfg.wgt_depth),
                             ("acc", 2 * tile_m * tile_n, cfg.acc_depth)):
        if need > depth:
            raise ProgramError(None, f"tile ({buf})", f"double-buffered {buf} tiles need {need} elements > {depth}")
    bld = ProgramBuilder(cfg)
    a_at, w_at = bld.put(pack_inp(a, cfg), Mem.INP), bld.put(pack_wgt(w, cfg), Mem.WGT)
    out_mem = Mem.ACC if shift is None else Mem.OUT
    c_at = bld.alloc(mb * nb, out_mem)
    ih, wh, ah = tile_m * tile_k, tile_n * tile_k, tile_m * tile_n  # half sizes
    # micro-op kernels: [reset acc half 0, 1] then GEMM for (data half h, acc half p), then ALU (acc half p)
    uops = [(0, 0, 0), (ah, 0, 0)]
    for h in (0, 1):
        for p in (0, 1):
            uops += [(p * ah, h * ih + kk, h * wh + kk) for kk in range(tile_k)]
    alu_at = len(uops)
    uops += [(0, 0, 0), (ah, ah, 0)]
    u_at = bld.put_uops(uops)
    bld.emit(Load(mem=Mem.UOP, sram_base=0, dram_base=u_at, y_size=1, x_size=len(uops), x_stride=len(uops)))

    tiles = [(i, j) for i in range(mb // tile_m) for j in range(nb // tile_n)]
    ksteps = kb // tile_k
    nsteps = len(tiles) * ksteps
    g = 0
    for t, (ti, tj) in enumerate(tiles):
        p = t % 2
        bld.emit(Gemm(reset=True, uop_bgn=p, uop_end=p + 1, iter_out=tile_m, iter_in=tile_n, dst_out=tile_n,
                      dst_in=1, pop_next=t >= 2))
        for ks in range(ksteps):
            h = g % 2
            row0, col0, k0 = ti * tile_m, tj * tile_n, ks * tile_k
            bld.emit(Load(mem=Mem.INP, sram_base=h * ih, dram_base=a_at + row0 * kb + k0, y_size=tile_m,
                          x_size=tile_k, x_stride=kb, pop_next=g >= 2),
                     Load(mem=Mem.WGT, sram_base=h * wh, dram_base=w_at + col0 * kb + k0, y_size=tile_n,
                          x_size=tile_k, x_stride=kb, push_next=True))
            kern = 2 + (2 * h + p) * tile_k
            last = ks == ksteps - 1
            bld.emit(Gemm(uop_bgn=kern, uop_end=kern + tile_k, iter_out=tile_m, iter_in=tile_n, dst_out=tile_n,
                          dst_in=1, src_out=tile_k, wgt_in=tile_k, pop_prev=True, push_prev=g + 2 < nsteps,
                          push_next=last and shift is None))
            g += 1
        if shift is not None:  # requantise in place: round, shift, saturate to int8
            ops = ([(AluOp.ADD, 1 << (shift - 1))] if shift > 0 else []) + [(AluOp.SHR, shift), (AluOp.CLIP, 127)]
            for q, (op, imm) in enumerate(ops):
                bld.emit(Alu(op=op, use_imm=True, imm=imm, uop_bgn=alu_at + p, uop_end=alu_at + p + 1,
                             iter_out=tile_m, iter_in=tile_n, dst_out=tile_n, dst_in=1, src_out=tile_n, src_in=1,
                             push_next=q == len(ops) - 1))
        bld.emit(Store(mem=out_mem, sram_base=p * ah, dram_base=c_at + ti * tile_m * nb + tj * tile_n,
                       y_size=tile_m, x_size=tile_n, x_stride=nb, pop_prev=True, push_prev=t + 2 < len(tiles)))
    bld.emit(Finish())
    return GemmProgram(bld.program(), bld.dram(), bld, c_at, out_mem, (m, n, k))
