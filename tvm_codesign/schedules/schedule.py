"""Knobs -> a tensorized ``s_tir.Schedule`` of the packed operator, valid by construction."""
from __future__ import annotations

import json

from tvm import s_tir, te

from ..hardware.config import AcceleratorConfig
from ..backend import intrinsics
from ..backend.intrinsics import ACC, INP, WGT
from .compute import compute
from .knobs import Knobs, check, dims, hoist_level
from .workload import Workload


class _Untensorizable(Exception):
    """TVM rejected a DMA tensorize; the schedule is rebuilt with that copy left as a loop nest."""


def schedule(wl: Workload, cfg: AcceleratorConfig, knobs: Knobs | None = None) -> s_tir.Schedule:
    """Build and schedule the operator; KnobError (with the reason) if the knobs cannot run on ``cfg``."""
    from .knobs import default
    k = knobs if knobs is not None else default(wl, cfg)
    check(wl, cfg, k)
    skip: set = set()
    while True:
        try:
            return _schedule(wl, cfg, k, skip)
        except _Untensorizable as e:
            skip.add(str(e))


def _schedule(wl: Workload, cfg: AcceleratorConfig, k: Knobs, skip: set) -> s_tir.Schedule:
    args, stages = compute(wl, cfg, strided=k.inp_tile != "window")
    func = te.create_prim_func(args).with_attrs({
        "global_symbol": "main", "tvm_codesign.config": json.dumps(cfg.to_dict()),
        "tvm_codesign.vthreads": k.vthreads, "tvm_codesign.workload": json.dumps(wl.to_dict()),
        "tvm_codesign.knobs": json.dumps(k.to_dict())})
    sch = s_tir.Schedule(func)
    d = dims(wl, cfg)

    conv = sch.get_sblock("conv")
    g, n, co, y, x, cb, cobl, ci, kh, kw, bi = sch.get_loops(conv)
    n_o, n_i = sch.split(n, [None, k.tile_n])
    c_o, c_i = sch.split(co, [None, k.tile_co])
    y_o, y_i = sch.split(y, [None, k.tile_h])
    x_o, x_i = sch.split(x, [None, k.tile_w])
    ci_o, ci_i = sch.split(ci, [None, k.tile_ci])
    outer = {"n": n_o, "c": c_o, "h": y_o, "w": x_o}
    sch.reorder(g, *[outer[c] for c in k.order], ci_o, y_i, x_i, n_i, c_i, ci_i, kh, kw, cb, cobl, bi)
    sch.set_scope(conv, 0, ACC)
    levels = [g] + [outer[c] for c in k.order]  # levels[i]: the loop at outer depth i
    anchor = levels[-1]
    for name, _, _ in stages:
        blk = sch.get_sblock(name)
        sch.reverse_compute_at(blk, anchor)
        sch.set_scope(blk, 0, ACC)
    sch.reverse_compute_at(sch.get_sblock("out"), anchor)

    steps = d["ci"] // k.tile_ci
    data_l = sch.cache_read(conv, 0, INP)
    wgt_l = sch.cache_read(conv, 1, WGT)
    if wl.pad != (0, 0):
        sch.compute_inline(sch.get_sblock("data_pad"))
    if k.inp_tile != "window":
        sch.compute_inline(sch.get_sblock("data_step"))
    if k.inp_tile == "strided_hwc":  # pixel-major tile: one DMA per pixel moves all its channel blocks
        sch.transform_layout(data_l, ("write", 0), lambda g, n, c, y, x, b, i: (g, n, y, x, c, b, i))
    if steps > 1:
        sch.compute_at(data_l, ci_o)
        sch.compute_at(wgt_l, ci_o)
    else:  # one reduction step: load each operand where it last changes (resident across inner tiles)
        sch.compute_at(data_l, levels[hoist_level(wl, cfg, k, "inp")])
        sch.compute_at(wgt_l, levels[hoist_level(wl, cfg, k, "wgt")])
    init = sch.decompose_reduction(conv, ci_o)
    tens = cobl if cfg.batch == 1 else cb  # a unit batch axis is dropped from the block
    sch.tensorize(tens, intrinsics.gemm(cfg))
    sch.tensorize(sch.get_loops(init)[-1 if cfg.batch == 1 else -2], intrinsics.reset(cfg))
    for name, op, imm in stages:
        blk = sch.get_sblock(name)
        if imm is None:
            bias_l = sch.cache_read(blk, 1, ACC)
            sch.compute_at(bias_l, levels[hoist_level(wl, cfg, k, "bias")])
            _dma(sch, bias_l, cfg, "load_acc", cfg.batch, skip)
        sch.tensorize(sch.get_loops(blk)[-1 if cfg.batch == 1 else -2], intrinsics.alu(cfg, op, imm))
    # DMA intrinsics for the copies; a zero-padded input tile stays a copy nest (its predicate is lowered)
    if wl.pad == (0, 0):
        _dma(sch, data_l, cfg, "load_inp", cfg.batch, skip)
    _dma(sch, wgt_l, cfg, "load_wgt", cfg.block_out, skip)
    _dma(sch, sch.get_sblock("out"), cfg, "store_out" if wl.out_dtype == "int8" else "store_acc", cfg.batch, skip)
    return sch


def _dma(sch: s_tir.Schedule, blk, cfg: AcceleratorConfig, kind: str, rows: int, skip: set) -> None:
    """Tensorize a copy block's element loops (rows x cols; a unit row loop is dropped) with a DMA intrinsic.

    TVM 0.27's tensorize rejects some copies whose tile spans a whole dimension ("rhs_buffer_map_.count");
    those stay copy loop nests (``skip``), which the lowering turns into the same DMA instructions.
    """
    if kind in skip:
        return
    try:
        sch.tensorize(sch.get_loops(blk)[-1 if rows == 1 else -2], intrinsics.dma(cfg, kind))
    except Exception as e:  # noqa: BLE001 - TVM raises InternalError or ScheduleError
        raise _Untensorizable(kind) from e
