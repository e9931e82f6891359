"""Every valid knob vector of a (layer, config) as numpy columns, for the analytical model (no Python loop per
candidate). Validity is ``schedules.knobs.check`` restated over arrays; tests hold the two equal."""
from __future__ import annotations

import numpy as np

from ..costmodel import analytical as A
from ..hardware.config import AcceleratorConfig
from ..schedules import knobs as kn
from ..schedules.workload import Workload


def _fold(ext: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``knobs._fold`` over arrays: the first two non-unit extents (1 if absent) and the product of the rest."""
    e = np.stack(ext, 1)
    real = e > 1
    rank = np.cumsum(real, 1)
    first = np.where(real & (rank == 1), e, 1).prod(1)
    second = np.where(real & (rank == 2), e, 1).prod(1)
    rest = np.where(real & (rank > 2), e, 1).prod(1)
    return first, second, rest


_PERM = np.array([["nchw".index(ch) for ch in o] for o in kn.ORDERS])  # order index, position -> loop


def grid(wl: Workload, cfg: AcceleratorConfig, orders=kn.ORDERS, vthreads=kn.VTHREADS, distinct: bool = True) -> dict:
    """Columns (``analytical.FIELDS``) of every knob vector over ``orders`` x ``vthreads`` that passes
    ``knobs.check``; an empty grid if the workload itself cannot run (``knobs.check_workload``). With
    ``distinct``, vectors that give the same program are kept once: orders that differ only in where single-trip
    loops sit (the first in ORDERS stays), a strided input tile no smaller than the window, and a pixel-major
    one with a single channel block (the same layout as channel-major)."""
    try:
        kn.check_workload(wl, cfg)
    except kn.KnobError:
        return {f: np.zeros(0, np.int64) for f in A.FIELDS}
    sp = kn.space(wl, cfg)
    axes = [np.asarray(sp[t]) for t in ("tile_n", "tile_co", "tile_h", "tile_w", "tile_ci")] + [
        np.asarray(vthreads), np.array([kn.INP_TILES.index(t) for t in sp["inp_tile"]])]
    tn, tc, th, tw, ti, v, it = (m.ravel() for m in np.meshgrid(*axes, indexing="ij"))
    # SRAM, micro-op and loop-field limits do not depend on the loop order: check tilings first
    (wh, ww), (sh_, sw_) = wl.input_tile(th, tw), wl.input_tile(th, tw, True)  # window, strided
    in_h, in_w = np.where(it > 0, sh_, wh), np.where(it > 0, sw_, ww)
    n_alu = len(wl.epilogue)
    one = np.ones_like(tn)
    g_f1, g_f2, g_u = _fold([th, tw, tn, tc, ti, one * wl.kh, one * wl.kw])
    r_f1, r_f2, r_u = _fold([th, tw, tn, tc])
    a_f1, a_f2, a_u = _fold([tn, tc, th, tw])
    ok = (tn * ti * in_h * in_w * v <= cfg.inp_depth)
    ok &= tc * ti * wl.kh * wl.kw * v <= cfg.wgt_depth
    ok &= (tn * tc * th * tw + tc * len(wl.vectors)) * v <= cfg.acc_depth  # bias, per-channel multiplier
    ok &= v * v * g_u + v * r_u + n_alu * v * a_u <= cfg.uop_depth
    lim = (1 << cfg.loop_iter_bits) - 1
    ok &= np.max(np.stack([g_f1, g_f2, r_f1, r_f2, a_f1, a_f2]), 0) <= lim
    # DRAM stride field: a property of the layer and config, as in knobs.check
    sh = kn.packed_shapes(wl, cfg)
    lim = 1 << cfg.dram_stride_bits
    if max(sh["weight"][2] * wl.kh * wl.kw, wl.ow * sh["out"][2]) >= lim:
        ok[:] = False
    ok &= np.where(it > 0, wl.w * wl.input_step[0], wl.w) < lim
    if distinct:
        ok &= (it == 0) | (sh_ * sw_ < wh * ww)
        ok &= (it < 2) | (tn * ti > 1)
    tn, tc, th, tw, ti, v, it = (a[ok] for a in (tn, tc, th, tw, ti, v, it))
    # x orders (row-major: tiling, then order)
    oidx = np.array([kn.ORDERS.index(o) for o in orders])
    row = np.repeat(np.arange(len(tn)), len(oidx))
    order = np.tile(oidx, len(tn))
    if distinct:
        d = kn.dims(wl, cfg)
        trips = np.stack([d["n"] // tn, d["co"] // tc, d["h"] // th, d["w"] // tw], 1)[row]
        perm = _PERM[order]
        multi = np.take_along_axis(trips, perm, 1) > 1
        pos = np.maximum(np.cumsum(multi, 1) - 1, 0)
        code = np.where(multi, (perm + 1) * 5 ** pos, 0).sum(1)  # the sequence of multi-trip loops
        _, first = np.unique(row * 1024 + code, return_index=True)
        first.sort()
        row, order = row[first], order[first]
    tn, tc, th, tw, ti, v, it = (a[row] for a in (tn, tc, th, tw, ti, v, it))
    n = len(row)
    base = A.columns([(wl, cfg, kn.Knobs())])
    cols = {f: np.repeat(base[f], n) for f in A.FIELDS}
    for f, a in zip(A.KNOB_FIELDS, (tn, tc, th, tw, ti, order, v, it)):
        cols[f] = a.astype(np.int64)
    return cols


def knobs_at(cols: dict, i: int) -> kn.Knobs:
    """The Knobs of row ``i`` of a grid."""
    return kn.Knobs(int(cols["tile_n"][i]), int(cols["tile_co"][i]), int(cols["tile_h"][i]), int(cols["tile_w"][i]),
                    int(cols["tile_ci"][i]), kn.ORDERS[int(cols["order"][i])], int(cols["vthreads"][i]),
                    kn.INP_TILES[int(cols["inp_tile"][i])])


def ranked(wl: Workload, cfg: AcceleratorConfig, k: int = 1, objective: str = "cycles") -> list[tuple[kn.Knobs, dict]]:
    """The ``k`` knob vectors the analytical model ranks first for one layer (ties: least energy, then bigger
    output tiles), each with its predicted figures. ``objective``: cycles, energy_pj or edp. Vectors the model
    cannot tell apart (same tiles and the same cycles, energy and DRAM bytes: loop orders or vthreads that
    change nothing) are listed once, so the ``k`` picks are ``k`` different schedules to measure."""
    cols = grid(wl, cfg)
    n = len(cols["tile_n"])
    if n == 0:
        raise kn.KnobError("tile_n", f"no valid schedule of {wl.describe()} fits {cfg.name}")
    r = A.evaluate(cols)
    score = r[objective] if objective != "edp" else r["cycles"] * r["energy_pj"]
    order = np.lexsort((-(cols["tile_h"] * cols["tile_w"]), r["energy_pj"], score))
    key = [r["cycles"], r["energy_pj"], r["dram_bytes"]] + [cols[t] for t in ("tile_n", "tile_co", "tile_h",
                                                                               "tile_w", "tile_ci")]
    _, first = np.unique(np.stack([a[order] for a in key], 1), axis=0, return_index=True)
    order = order[np.sort(first)][:k]
    arrays = {key: v for key, v in r.items() if isinstance(v, np.ndarray) and v.shape == (n,)}
    return [(knobs_at(cols, int(i)), {key: v[i] for key, v in arrays.items()}) for i in order]


def best(wl: Workload, cfg: AcceleratorConfig, objective: str = "cycles") -> tuple[kn.Knobs, dict]:
    """The knob vector the analytical model ranks first for one layer, and its predicted figures."""
    return ranked(wl, cfg, 1, objective)[0]
