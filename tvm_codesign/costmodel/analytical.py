"""Fast analytical model of one compiled operator: cycles, DRAM bytes, energy, area, vectorised in numpy.

A candidate is (config, layer, knobs) as columns of equal-length arrays (``CONFIG_FIELDS``,
``LAYER_FIELDS``, ``KNOB_FIELDS``; build them with ``columns``). No TIR is built: the counts follow
the lowering (schedules/schedule.py -> lowering/emit.py) in closed form:

- tiles = G x the four outer tile loops; each tile: a GEMM reset, ``steps = CI/tile_ci`` reduction
  steps (input and weight loads, one GEMM), one ALU instruction per epilogue stage (immediates split as
  the emitter does), one store. With one step, operands and the per-channel vectors (bias, multiplier:
  ``vectors``) are loaded where their loops change
  (``knobs.hoist_level``). A copy is 2-D DMAs: loops merge while contiguous in DRAM (padded loops never
  merge), the innermost contiguous group is x, the next y, the rest unrolled (``_dma_shape``; a strided
  input tile, knob ``inp_tile``, has no contiguous x); padded input tiles are clipped per tile position,
  summed exactly over edge windows (``_clipped_sums``).
- Per instruction cycles as simulator/activity.py: issue, fill + micro-op iterations (ALU: x ``alu_ii_imm`` or
  ``alu_ii_vec`` by operand, x passes of ``alu_lanes``; a chain of ``alu_stages`` instructions is one pass at its
  largest II, each pass filling a cycle longer per stage beyond the first), DRAM latency, one cycle per padding element. DMA port
  cycles as simulator/dma.py: per row whole beats + ``dma_request_cycles`` per burst, averaged over where its
  rows start (costmodel/dma.py: tensors are 4 KiB-aligned, rows start at multiples of the row pitch and tile
  steps), and the stall of ``dma_outstanding`` requests in flight.
- Overlap (pipeline.py ``overlap_cycles``): a tile period bounded by each module's and the DRAM port's
  busy time and by the dependency cycles through ``vthreads`` SRAM contexts, plus prologue/epilogue.
"""
from __future__ import annotations

import numpy as np

from .. import physical
from ..errors import CodesignError
from ..schedules import knobs as kn
from ..schedules.groups import chain_runs
from ..schedules.layout import packed_shapes
from . import dma as D
from .pipeline import overlap_cycles


class CostModelError(CodesignError, ValueError):
    """Bad input to the analytical model (missing column, wrong length, invalid value)."""


# inp_dram_bits / wgt_dram_bits: bits per scalar as stored (the mode's packed widths; 2:4 weights with positions)
CONFIG_FIELDS = ("batch", "block_in", "block_out", "inp_dram_bits", "wgt_dram_bits", "acc_bits", "out_bits",
                 "uop_bytes", "uop_buffer_bytes", "inp_buffer_bytes", "wgt_buffer_bytes", "acc_buffer_bytes",
                 "imm_bits", "dram_bandwidth", "dram_latency", "dma_burst_beats", "dma_request_cycles",
                 "dma_outstanding", "issue_cycles", "gemm_fill_cycles", "alu_fill_cycles", "alu_ii_imm", "alu_ii_vec",
                 "alu_lanes", "alu_stages", "queue_depth")
LAYER_FIELDS = ("g", "nb", "cib", "cob", "h", "w", "oh", "ow", "kh", "kw", "sh", "sw", "ph", "pw", "qh", "qw",
                "vectors", "out_int8", "alu_insns", "alu_reg_insns", "alu_mul_insns", "alu_chains_imm",
                "alu_chains_reg", "alu_chains_mixed")
KNOB_FIELDS = ("tile_n", "tile_co", "tile_h", "tile_w", "tile_ci", "order", "vthreads", "inp_tile")
# per-config physical costs (physical.costs, computed once per config in ``columns``; NaN if it cannot be built):
# pJ per event / per byte at the operating voltage, leakage and DRAM background power mW, clock, area
COST_FIELDS = ("e_mac", "e_alu", "e_alu_mul", "e_alu_reg", "e_wire", "e_dma", "e_dram_rd", "e_dram_wr", "e_uop_rd",
               "e_uop_wr", "e_inp_rd", "e_inp_wr", "e_wgt_rd", "e_wgt_wr", "e_acc_rd", "e_acc_wr", "p_leak_mw", "p_bg_mw",
               "clock_mhz", "area_total_mm2")
FIELDS = CONFIG_FIELDS + LAYER_FIELDS + KNOB_FIELDS + COST_FIELDS
_FLOAT_FIELDS = frozenset(("dram_bandwidth",) + COST_FIELDS)
_LOOPS = "nchw"


def _alu_counts(wl, cfg) -> tuple[int, ...]:
    """ALU instructions per tile (all, register-operand, MUL), splitting immediates like lowering/emit.py, and its
    chains (lowering/chain.py: runs of ``alu_stages`` instructions, one pass over the accumulators each) with
    immediates only, register operands only, and both."""
    hi = (1 << (cfg.imm_bits - 1)) - 1
    regs, mul = [], 0
    for op, imm in wl.epilogue:
        k = 1 if imm is None or op != "add" or -hi - 1 <= imm <= hi else -(-abs(imm) // hi)
        regs += [imm is None] * k
        mul += k * (op == "mul")
    return (len(regs), sum(regs), mul, *chain_runs(regs, cfg.alu_stages))


def cost_row(cfg) -> list:
    """The ``COST_FIELDS`` of one config (NaN where ``physical`` says it cannot be built)."""
    try:
        c = physical.costs(cfg)
    except physical.PhysicalError:
        return [float("nan")] * (len(COST_FIELDS) - 2) + [cfg.clock_mhz, float("nan")]
    u = c["unit_pj"]
    return [u["mac"], u["alu_lane_op"], u["alu_mul_lane_op"], u["alu_stage_reg_write"], u["wiring_per_gemm_cycle"],
            u["dma_per_dram_byte"], u["dram_read_byte"], u["dram_write_byte"]] + [
        u[f"{b}_{rw}_byte"] for b in ("uop", "inp", "wgt", "acc") for rw in ("read", "write")] + [
        c["leakage_mw"], c["dram_background_mw"], cfg.clock_mhz, c["area_mm2"]["total"]]


def columns(points) -> dict:
    """[(Workload, AcceleratorConfig, Knobs), ...] -> dict of int64/float64 column arrays (``FIELDS``)."""
    rows, costs = [], {}
    for wl, cfg, k in points:
        sh = packed_shapes(wl, cfg)
        alu = _alu_counts(wl, cfg)
        rows.append([getattr(cfg, f) for f in CONFIG_FIELDS] + [
            sh["data"][0], sh["data"][1], sh["data"][2], sh["weight"][1], wl.h, wl.w, wl.oh, wl.ow, wl.kh, wl.kw,
            wl.stride[0], wl.stride[1], wl.pad[0], wl.pad[1], *wl.input_step, len(wl.vectors), int(wl.out_dtype == "int8"),
            *alu, k.tile_n, k.tile_co, k.tile_h, k.tile_w, k.tile_ci, kn.ORDERS.index(k.order),
            k.vthreads, kn.INP_TILES.index(k.inp_tile)] + (costs.get(id(cfg)) or costs.setdefault(id(cfg), cost_row(cfg))))
    a = np.array(rows, dtype=np.float64).reshape(len(rows), len(FIELDS))
    return {f: (a[:, i] if f in _FLOAT_FIELDS else a[:, i].astype(np.int64)) for i, f in enumerate(FIELDS)}


def _check(cols: dict) -> int:
    missing = [f for f in FIELDS if f not in cols]
    if missing:
        raise CostModelError(f"missing candidate columns: {missing}")
    lens = {f: np.shape(cols[f]) for f in FIELDS}
    n = lens[FIELDS[0]]
    bad = [f for f in FIELDS if lens[f] != n or len(n) != 1]
    if bad:
        raise CostModelError(f"columns must be 1-D of equal length {n}; {bad[0]} has shape {lens[bad[0]]}")
    for f in FIELDS:
        if f in COST_FIELDS:  # per-config physical costs: NaN marks a config that cannot be built
            continue
        lo = 0 if f in ("ph", "pw", "vectors", "out_int8", "alu_insns", "alu_reg_insns", "alu_mul_insns",
                        "alu_chains_imm", "alu_chains_reg", "alu_chains_mixed", "order",
                        "inp_tile", "dram_latency", "issue_cycles", "gemm_fill_cycles", "alu_fill_cycles",
                        "dma_request_cycles") else 1
        v = np.asarray(cols[f])
        if v.size and (not np.all(np.isfinite(v)) or v.min() < lo):
            raise CostModelError(f"column {f} must be >= {lo} (got min {v.min()})")
    if n[0] and cols["order"].max() >= len(kn.ORDERS):
        raise CostModelError(f"column order indexes knobs.ORDERS (0..{len(kn.ORDERS) - 1})")
    if n[0] and cols["inp_tile"].max() >= len(kn.INP_TILES):
        raise CostModelError(f"column inp_tile indexes knobs.INP_TILES (0..{len(kn.INP_TILES) - 1})")
    for t, d in (("tile_n", "nb"), ("tile_co", "cob"), ("tile_h", "oh"), ("tile_w", "ow"), ("tile_ci", "cib")):
        if n[0] and np.any(np.asarray(cols[d]) % np.asarray(cols[t])):
            raise CostModelError(f"{t} must divide {d} for every candidate")
    return n[0]


def _dma_shape(loops):
    """Loops [(extent, DRAM stride in elements)] outermost first (N-arrays) -> (DMAs per copy, x, y, pitch).

    As lowering/emit.py: unit loops dropped, a loop merges into the group inside it when its stride is
    the group's outermost stride x extent; x is the innermost group when DRAM-contiguous, y the next.
    ``pitch``: the lowest set bit common to the strides of the groups outside x, in elements (0: one row).
    """
    n = len(loops[0][0])
    L = len(loops)
    gext = np.ones((n, L), np.int64)     # group extents, innermost first
    gstr = np.zeros((n, L), np.int64)    # stride of each group's innermost loop
    ng = np.zeros(n, np.int64)
    ob_str = np.zeros(n, np.int64)       # outermost loop of the current group: stride, extent
    ob_ext = np.ones(n, np.int64)
    rest = np.full(n, D.ALIGNED, np.int64)
    rows = np.arange(n)
    for ext, st in reversed(loops):
        ext, st = np.broadcast_to(ext, (n,)), np.broadcast_to(st, (n,))
        real = ext > 1
        merge = real & (ng > 0) & (st == ob_str * ob_ext)
        new = real & ~merge
        idx = np.where(merge, ng - 1, ng)
        cur = gext[rows, np.minimum(idx, L - 1)]
        gext[rows, np.minimum(idx, L - 1)] = np.where(real, np.where(merge, cur * ext, ext), cur)
        gstr[rows, np.minimum(idx, L - 1)] = np.where(new, st, gstr[rows, np.minimum(idx, L - 1)])
        rest = np.minimum(rest, np.where(new & (ng > 0), st & -st, D.ALIGNED))  # groups after the first
        ng = ng + new
        ob_str, ob_ext = np.where(real, st, ob_str), np.where(real, ext, ob_ext)
    has_x = (ng > 0) & (gstr[:, 0] == 1)
    x = np.where(has_x, gext[:, 0], 1)
    yi = np.where(has_x, 1, 0)
    has_y = ng > yi
    y = np.where(has_y, gext[rows, np.minimum(yi, L - 1)], 1)
    count = np.prod(gext, axis=1) // (x * y)
    g0 = gstr[:, 0]
    pitch = np.where(has_x | (ng == 0), rest, np.minimum(rest, g0 & -g0))
    return count, x, y, np.where(pitch == D.ALIGNED, 0, pitch)


def _clipped_sums(J, T, p, size, limit, cost=None):
    """Over tile positions j < J of a window [j*T - p, j*T - p + size) clipped to [0, limit):
    (sum of valid lengths, sum of ``cost(valid)``; cost maps an (n, k) array of lengths to an (n, k) array,
    0 for 0). Edge windows are evaluated, the interior counted."""
    K = int(p.max(initial=0)) + 2
    j = np.concatenate([np.arange(K), -1 - np.arange(K)])[None, :] + np.where(np.arange(2 * K) < K, 0, J[:, None])
    first = np.arange(2 * K)[None, :] < K
    use = (j >= 0) & (j < J[:, None]) & (first | (j >= K))
    lo = np.maximum(j * T[:, None] - p[:, None], 0)
    hi = np.minimum(j * T[:, None] - p[:, None] + size[:, None], limit[:, None])
    v = np.maximum(hi - lo, 0)
    interior = np.maximum(J - 2 * K, 0)
    sv = np.where(use, v, 0).sum(1) + interior * size
    if cost is None:
        return sv, None
    return sv, np.where(use, cost(v), 0).sum(1) + interior * cost(size[:, None])[:, 0]


def _fold_uops(extents):
    """Micro-ops of a tensorized nest (knobs._fold): product of the non-unit extents after the first two."""
    seen = np.zeros(len(extents[0]), np.int64)
    uops = np.ones(len(extents[0]), np.int64)
    for e in extents:
        e = np.asarray(e)
        uops = np.where((e > 1) & (seen >= 2), uops * e, uops)
        seen = seen + (e > 1)
    return uops


def counts(cols: dict) -> dict:
    """Per candidate: instruction counts, per-module busy cycles, DRAM port cycles, bytes and activity."""
    n = _check(cols)
    c = {f: np.asarray(cols[f]) for f in FIELDS}
    bw = c["dram_bandwidth"].astype(np.float64)
    iss, lat = c["issue_cycles"], c["dram_latency"]
    nout = c["dma_outstanding"]

    bus = D.Bus(bw, c["dma_burst_beats"], c["dma_request_cycles"])

    row = bus.row  # mean (port cycles, requests) of a DMA row (simulator/dma.py)

    def dma(rows, nbytes, align):  # port cycles of one DMA of ``rows`` rows of ``nbytes``, in-flight stall included
        p, r = row(nbytes, align)
        return rows * p + D.stall(rows, p, r, nout, lat)

    e_inp = c["batch"] * c["block_in"] * c["inp_dram_bits"] // 8
    e_wgt = c["block_out"] * c["block_in"] * c["wgt_dram_bits"] // 8
    e_acc = c["batch"] * c["block_out"] * c["acc_bits"] // 8
    e_out = np.where(c["out_int8"] == 1, c["batch"] * c["block_out"] * c["out_bits"] // 8, e_acc)
    tn, tco, th, tw, tci, v = (c[k] for k in ("tile_n", "tile_co", "tile_h", "tile_w", "tile_ci", "vthreads"))
    ext = np.stack([c["nb"] // tn, c["cob"] // tco, c["oh"] // th, c["ow"] // tw], 1)
    nt = c["g"] * ext.prod(1)
    steps = c["cib"] // tci
    # a strided input tile loads every qh-th row / qw-th column (Workload.input_step)
    strided = c["inp_tile"] > 0
    qh, qw = np.where(strided, c["qh"], 1), np.where(strided, c["qw"], 1)
    in_h, in_w = (th - 1) * (c["sh"] // qh) + c["kh"], (tw - 1) * (c["sw"] // qw) + c["kw"]
    perm = np.array([[_LOOPS.index(ch) for ch in o] for o in kn.ORDERS])[c["order"]]  # position -> loop
    ext_pos = np.take_along_axis(ext, perm, 1)
    cum = np.concatenate([np.ones((n, 1), np.int64), np.cumprod(ext_pos, 1)], 1)  # cum[:, i]: loops above depth i

    def events(deps):  # loads of an operand hoisted to the innermost outer loop it depends on
        dep = np.isin(perm, [_LOOPS.index(d) for d in deps]) & (ext_pos > 1)
        level = np.where(dep.any(1), 4 - np.argmax(dep[:, ::-1], 1), 0)
        return c["g"] * cum[np.arange(n), level]

    multi = steps > 1
    n_inp = np.where(multi, nt * steps, events("nhw"))
    n_wgt = np.where(multi, nt * steps, events("c"))
    n_bias = c["vectors"] * events("c")  # LOAD ACC of each per-channel vector (bias, multiplier) where c changes
    # input tiles: clipped per tile position when padded (h/w loops never merge), else _dma_shape
    padded = (c["ph"] > 0) | (c["pw"] > 0)
    # where rows start: tile steps of the n, ci (and group) loops, the h and w tiles, and each copy's row pitch
    hw, one = c["h"] * c["w"], np.ones(n, np.int64)
    big = [(ext[:, 0] > 1) * tn * c["cib"] * hw, (steps > 1) * tci * hw, (c["g"] > 1) * c["nb"] * c["cib"] * hw]
    al_pad = D.alignment(e_inp, *big, (in_h > 1) * c["w"] * qh, (ext[:, 3] > 1) * tw * c["sw"], c["pw"])
    sy, sx, cx = np.ones(n), np.ones(n), np.ones(n)  # valid rows, columns, column port cycles over positions
    P = np.flatnonzero(padded)
    if P.size:
        sy[P] = _clipped_sums(ext[P, 2], (th * c["sh"])[P], c["ph"][P], in_h[P], c["h"][P])[0]
        bp, ep, ap = bus.take(P).column(), e_inp[P][:, None], al_pad[P][:, None]
        sx[P], cx[P] = _clipped_sums(ext[P, 3], (tw * c["sw"])[P], c["pw"][P], in_w[P], c["w"][P],
                                     lambda v: bp.row(v * ep, ap)[0])
    pos = ext[:, 2] * ext[:, 3]
    ln, lc, ly, lx = ((tn, c["cib"] * hw), (tci, hw), (in_h, c["w"] * qh), (in_w, qw))
    cnt_u, x_u, y_u, pt_u = _dma_shape([ln, lc, ly, lx])
    cnt_p, x_p, y_p, pt_p = _dma_shape([ln, ly, lx, lc])  # "strided_hwc": pixel-major tile
    inner = c["inp_tile"] == 2
    cnt_u, x_u, y_u = np.where(inner, cnt_p, cnt_u), np.where(inner, x_p, x_u), np.where(inner, y_p, y_u)
    al_u = D.alignment(e_inp, *big, np.where(inner, pt_p, pt_u), (ext[:, 2] > 1) * th * c["sh"] * c["w"],
                       (ext[:, 3] > 1) * tw * c["sw"])
    inp_dmas = np.where(padded, tn * tci, cnt_u) * n_inp
    p_win, r_win = row(in_w * e_inp, al_pad)  # a whole window row: the in-flight stall of a padded tile
    inp_port = np.where(padded, tn * tci * (sy * cx / pos + D.stall(in_h, p_win, r_win, nout, lat)),
                        cnt_u * dma(y_u, x_u * e_inp, al_u)) * n_inp
    inp_valid = np.where(padded, tn * tci * sy * sx / pos, tn * tci * in_h * in_w) * n_inp  # elements from DRAM
    inp_pad = tn * tci * in_h * in_w * n_inp - inp_valid
    taps = c["kh"] * c["kw"]
    cnt_w, x_w, y_w, pt_w = _dma_shape([(tco, c["cib"] * taps), (tci, taps), (c["kh"], c["kw"]), (c["kw"], one)])
    al_w = D.alignment(e_wgt, pt_w, (ext[:, 1] > 1) * tco * c["cib"] * taps, (steps > 1) * tci * taps,
                       (c["g"] > 1) * c["cob"] * c["cib"] * taps)
    wgt_dma = dma(y_w, x_w * e_wgt, al_w)
    wgt_port = n_wgt * cnt_w * wgt_dma
    ohw = c["oh"] * c["ow"]
    cnt_o, x_o, y_o, pt_o = _dma_shape([(tn, c["cob"] * ohw), (tco, ohw), (th, c["ow"]), (tw, one)])
    al_o = D.alignment(e_out, pt_o, (ext[:, 0] > 1) * tn * c["cob"] * ohw, (ext[:, 1] > 1) * tco * ohw,
                       (ext[:, 2] > 1) * th * c["ow"], (ext[:, 3] > 1) * tw, (c["g"] > 1) * c["nb"] * c["cob"] * ohw)
    out_port = nt * cnt_o * dma(y_o, x_o * e_out, al_o)
    bias_port = n_bias * dma(1, tco * e_acc, D.alignment(e_acc, (ext[:, 1] > 1) * tco, (c["g"] > 1) * c["cob"]))
    # micro-ops: one kernel per SRAM context combination in use (bounded by how often it occurs)
    gemm_u = _fold_uops([th, tw, tn, tco, tci, c["kh"], c["kw"]])
    reset_u = _fold_uops([th, tw, tn, tco])
    alu_u = _fold_uops([tn, tco, th, tw])
    va = np.minimum(v, nt)
    vi = np.minimum(v, np.maximum(n_inp, n_wgt))
    n_uops = va * reset_u + np.minimum(va * vi, nt * steps) * gemm_u + \
        np.where(c["alu_insns"] > 0, va * alu_u, 0) + c["vectors"] * va * alu_u  # a kernel per vector operand
    uop_port = dma(1, n_uops * c["uop_bytes"], D.ALIGNED)  # one kernel after another from an aligned constant
    # compute module
    gemm_ev = th * tw * tn * tco * tci * c["kh"] * c["kw"]
    tile_ev = th * tw * tn * tco
    gemm_t = iss + c["gemm_fill_cycles"] + gemm_ev
    reset_t = iss + c["gemm_fill_cycles"] + tile_ev
    passes = -(-(c["batch"] * c["block_out"]) // c["alu_lanes"])
    chains = c["alu_chains_imm"] + c["alu_chains_reg"] + c["alu_chains_mixed"]  # a chain is one pass
    alu_ii = c["alu_chains_imm"] * c["alu_ii_imm"] + c["alu_chains_reg"] * c["alu_ii_vec"] + \
        c["alu_chains_mixed"] * np.maximum(c["alu_ii_imm"], c["alu_ii_vec"])
    alu_fill = c["alu_fill_cycles"] + c["alu_stages"] - 1  # simulator/chains.py fill_cycles
    alu_t = c["alu_insns"] * iss + chains * alu_fill + tile_ev * alu_ii * passes
    load_dmas = inp_dmas + n_wgt * cnt_w       # LOAD INP/WGT run on the load module,
    port_load = inp_port + wgt_port            # LOAD UOP/ACC (bias) on the compute module
    bias_t = n_bias * (iss + lat) + bias_port
    # one load event of each operand: what the first tile waits for even when the load is hoisted out of
    # the tile loops (a weight tile loaded once for every output tile still arrives before the first GEMM)
    inp_ev_t = (inp_dmas * (iss + lat) + inp_port + inp_pad) / np.maximum(n_inp, 1)
    wgt_ev_t = cnt_w * (iss + lat + wgt_dma)
    return dict(
        n=n, tiles=nt, steps=steps, vthreads=v, iss=iss, lat=lat, queue_depth=c["queue_depth"],
        first_load=inp_ev_t + wgt_ev_t,
        load_busy=load_dmas * (iss + lat) + port_load + inp_pad, load_dmas=load_dmas, port_load=port_load,
        uop_t=iss + lat + uop_port, uop_port=uop_port, bias_t=bias_t, bias_port=bias_port, inp_port=inp_port, wgt_port=wgt_port,
        n_inp=n_inp, n_wgt=n_wgt, n_bias=n_bias,
        gemm_t=gemm_t, reset_t=reset_t, alu_t=alu_t,
        store_busy=nt * cnt_o * (iss + lat) + out_port, store_dmas=nt * cnt_o, port_store=out_port,
        dram_read={"UOP": n_uops * c["uop_bytes"], "INP": inp_valid * e_inp,
                   "WGT": n_wgt * tco * tci * c["kh"] * c["kw"] * e_wgt, "ACC": n_bias * tco * e_acc},
        dram_write=nt * tn * tco * th * tw * e_out,
        mac_ev=nt * steps * gemm_ev, reset_ev=nt * tile_ev, alu_ev=nt * c["alu_insns"] * tile_ev,
        pass_ev=nt * chains * tile_ev,
        alu_reg_ev=nt * c["alu_reg_insns"] * tile_ev, alu_mul_ev=nt * c["alu_mul_insns"] * tile_ev,
        n_uops=n_uops, sram_inp_written=n_inp * tn * tci * in_h * in_w * e_inp, e_acc=e_acc,
    )


def evaluate(cols: dict) -> dict:
    """Cycles, DRAM bytes, energy (pJ) and area (mm^2) of every candidate (arrays of length N). Energy and area
    are NaN for candidates whose config cannot be built (``physical.why_infeasible``)."""
    k = counts(cols)
    c = {f: np.asarray(cols[f]) for f in FIELDS}
    cycles = overlap_cycles(k)
    # ----- energy: the activity of simulator/activity.py in closed form, priced with the config's COST_FIELDS -----
    macs_pc = c["batch"] * c["block_in"] * c["block_out"]
    lanes = c["batch"] * c["block_out"]
    read = sum(k["dram_read"].values())
    dram = read + k["dram_write"]
    mac, reset, alu = k["mac_ev"], k["reset_ev"], k["alu_ev"]
    e_acc, e_inp = k["e_acc"], c["batch"] * c["block_in"] * c["inp_dram_bits"] // 8
    e_wgt = c["block_out"] * c["block_in"] * c["wgt_dram_bits"] // 8
    st_acc = k["dram_write"] // np.where(c["out_int8"] == 1, c["batch"] * c["block_out"] * c["out_bits"] // 8,
                                         e_acc) * e_acc
    sram_read = {"uop": (mac + reset + alu) * c["uop_bytes"], "inp": mac * e_inp, "wgt": mac * e_wgt,
                 "acc": (mac + k["pass_ev"] + k["alu_reg_ev"]) * e_acc + st_acc}
    sram_write = {"uop": k["dram_read"]["UOP"], "inp": k["sram_inp_written"], "wgt": k["dram_read"]["WGT"],
                  "acc": k["dram_read"]["ACC"] + (mac + reset + k["pass_ev"]) * e_acc}
    energy = {"mac": mac * macs_pc * c["e_mac"],
              "alu": (alu - k["alu_mul_ev"]) * lanes * c["e_alu"] + k["alu_mul_ev"] * lanes * c["e_alu_mul"],
              "alu_stage_regs": k["pass_ev"] * lanes * (c["alu_stages"] - 1) * c["e_alu_reg"]}  # every pass crosses every stage
    for b in ("uop", "inp", "wgt", "acc"):
        energy[f"{b}_sram"] = sram_read[b] * c[f"e_{b}_rd"] + sram_write[b] * c[f"e_{b}_wr"]
    energy["wiring"] = mac * c["e_wire"]
    energy["dma"] = dram * c["e_dma"]
    energy["dram"] = read * c["e_dram_rd"] + k["dram_write"] * c["e_dram_wr"]
    us = cycles / c["clock_mhz"]
    energy["static"] = us * 1e3 * c["p_leak_mw"]                     # mW x us = 1e3 pJ
    energy["dram_background"] = us * 1e3 * c["p_bg_mw"]
    energy["total"] = sum(energy.values())
    return {"cycles": cycles, "dram_read_bytes": read, "dram_write_bytes": k["dram_write"],
            "dram_bytes": dram, "dram_read_by_mem": k["dram_read"], "macs": mac * macs_pc,
            "energy_pj": energy["total"], "energy_by_part_pj": energy, "area_mm2": c["area_total_mm2"]}


def predict(wl, cfg, knobs=None) -> dict:
    """Scalar convenience: the model's figures for one (Workload, AcceleratorConfig, Knobs) as plain floats."""
    k = knobs if knobs is not None else kn.default(wl, cfg)
    if isinstance(k, dict):
        k = kn.Knobs.from_dict(k)
    kn.check(wl, cfg, k)
    r = evaluate(columns([(wl, cfg, k)]))
    flat = lambda d: {m: float(a[0]) for m, a in d.items()}
    return {"cycles": float(r["cycles"][0]), "dram_bytes": float(r["dram_bytes"][0]),
            "dram_read_bytes": flat(r["dram_read_by_mem"]), "dram_write_bytes": float(r["dram_write_bytes"][0]),
            "macs": float(r["macs"][0]), "energy_pj": flat(r["energy_by_part_pj"]), "area_mm2": float(r["area_mm2"][0])}
