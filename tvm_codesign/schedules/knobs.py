"""Schedule knobs: the space, up-front validation (with the reason), and a default choice.

Tiles are in packed units: tile_n batch blocks, tile_co / tile_ci channel blocks, tile_h x tile_w
output pixels. ``order`` lists the outer tile loops outermost first (n, c = output channels, h, w).
``vthreads`` SRAM contexts per buffer let loads of the next tile overlap compute of this one.
``inp_tile``: the input tile is a dense "window", or, for an unpadded conv with a 1-wide strided kernel
dimension (a 1x1 stride-2 downsample), only the pixels the kernel reads: "strided" (channel-block-major,
one DMA per channel block and row) or "strided_hwc" (pixel-major, one DMA per pixel moves its channel
blocks). A window moves more bytes in fewer, longer DMAs; which wins depends on the tile.
When one reduction step covers all input channels (tile_ci = C/BI), each operand is loaded at the
innermost outer loop it depends on, so ``order`` picks what stays resident (weights or inputs).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

from ..errors import CodesignError
from ..hardware.config import AcceleratorConfig
from .layout import packed_shapes
from .workload import Workload

ORDERS = tuple("".join(p) for p in itertools.permutations("nchw"))
VTHREADS = (1, 2, 3, 4)
INP_TILES = ("window", "strided", "strided_hwc")


class KnobError(CodesignError, ValueError):
    """A knob vector that cannot run on the config; names the knob and the limit."""

    def __init__(self, knob: str, message: str):
        self.knob = knob
        super().__init__(f"knob '{knob}': {message}")


@dataclass(frozen=True)
class Knobs:
    tile_n: int = 1
    tile_co: int = 1
    tile_h: int = 1
    tile_w: int = 1
    tile_ci: int = 1
    order: str = "nchw"
    vthreads: int = 2
    inp_tile: str = "window"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Knobs":
        known = set(cls.__dataclass_fields__)
        bad = set(d) - known
        if bad:
            raise KnobError(sorted(bad)[0], f"unknown knob; known: {sorted(known)}")
        return cls(**d)


def dims(wl: Workload, cfg: AcceleratorConfig) -> dict:
    """Extents the tiles divide: batch blocks, output/input channel blocks, output rows/cols."""
    sh = packed_shapes(wl, cfg)
    return {"n": sh["data"][1], "co": sh["weight"][1], "ci": sh["data"][2], "h": wl.oh, "w": wl.ow}


def _divisors(x: int) -> list[int]:
    return [d for d in range(1, x + 1) if x % d == 0]


def space(wl: Workload, cfg: AcceleratorConfig) -> dict:
    """Choices per knob (every combination still has to pass ``check``)."""
    d = dims(wl, cfg)
    inp = INP_TILES if wl.input_step != (1, 1) else INP_TILES[:1]
    return {"tile_n": _divisors(d["n"]), "tile_co": _divisors(d["co"]), "tile_h": _divisors(d["h"]),
            "tile_w": _divisors(d["w"]), "tile_ci": _divisors(d["ci"]), "order": list(ORDERS),
            "vthreads": list(VTHREADS), "inp_tile": list(inp)}


def _fold(extents: list[int]) -> tuple[list[int], int]:
    """Loops of a tensorized nest -> (two folded extents, micro-ops = product of the rest)."""
    nontrivial = [e for e in extents if e > 1]
    return nontrivial[:2], math.prod(nontrivial[2:])


def hoist_level(wl: Workload, cfg: AcceleratorConfig, k: Knobs, operand: str) -> int:
    """Outer-loop depth (0 = above all) at which an operand's tile is loaded when tile_ci covers all CI."""
    deps = {"inp": "nhw", "wgt": "c", "bias": "c"}[operand]
    d = dims(wl, cfg)
    ext = {"n": d["n"] // k.tile_n, "c": d["co"] // k.tile_co, "h": d["h"] // k.tile_h, "w": d["w"] // k.tile_w}
    level = 0
    for i, loop in enumerate(k.order):
        if loop in deps and ext[loop] > 1:
            level = i + 1
    return level


def requirements(wl: Workload, cfg: AcceleratorConfig, k: Knobs) -> dict:
    """SRAM elements, micro-ops and loop extents the lowering will use for these knobs."""
    in_h, in_w = wl.input_tile(k.tile_h, k.tile_w, k.inp_tile != "window")
    v = k.vthreads
    gemm_fold, gemm_uops = _fold([k.tile_h, k.tile_w, k.tile_n, k.tile_co, k.tile_ci, wl.kh, wl.kw])
    reset_fold, reset_uops = _fold([k.tile_h, k.tile_w, k.tile_n, k.tile_co])
    alu_fold, alu_uops = _fold([k.tile_n, k.tile_co, k.tile_h, k.tile_w])
    n_alu = len(wl.epilogue)
    return {
        "inp": k.tile_n * k.tile_ci * in_h * in_w * v,
        "wgt": k.tile_co * k.tile_ci * wl.kh * wl.kw * v,
        "acc": (k.tile_n * k.tile_co * k.tile_h * k.tile_w + k.tile_co * len(wl.vectors)) * v,
        "uop": v * v * gemm_uops + v * reset_uops + n_alu * v * alu_uops,
        "loop_extents": gemm_fold + reset_fold + alu_fold,
    }


def check_workload(wl: Workload, cfg: AcceleratorConfig) -> None:
    """Raise KnobError if no knob vector can run ``wl`` on ``cfg`` (ALU immediates, DMA padding field)."""
    imm_lim = (1 << (cfg.imm_bits - 1)) - 1
    if wl.multiplier is not None and wl.multiplier != "channel" and wl.multiplier > imm_lim:
        raise KnobError("multiplier", f"requantisation multiplier {wl.multiplier} exceeds the ALU immediate "
                        f"({imm_lim}, imm_bits {cfg.imm_bits})")
    pad_lim = (1 << cfg.pad_bits) - 1
    if max(wl.pad) > pad_lim:
        raise KnobError("pad", f"padding {max(wl.pad)} exceeds the DMA pad field ({pad_lim})")


def fits(wl: Workload, cfg: AcceleratorConfig) -> bool:
    """Whether ``default`` finds a schedule: the smallest tiles (two contexts, as ``default`` uses) fit every
    SRAM and ISA field (larger tiles only need more)."""
    return is_valid(wl, cfg, Knobs(1, 1, 1, 1, 1, "nchw", 2, "window"))


def check(wl: Workload, cfg: AcceleratorConfig, k: Knobs) -> None:
    """Raise KnobError unless ``k`` fits every SRAM and ISA field of ``cfg`` for ``wl``."""
    d = dims(wl, cfg)
    for knob, dim in (("tile_n", "n"), ("tile_co", "co"), ("tile_h", "h"), ("tile_w", "w"), ("tile_ci", "ci")):
        t = getattr(k, knob)
        if not isinstance(t, int) or t < 1 or d[dim] % t:
            raise KnobError(knob, f"{t!r} must be a positive divisor of {d[dim]} ({dim})")
    if k.order not in ORDERS:
        raise KnobError("order", f"{k.order!r} must be a permutation of 'nchw'")
    if k.vthreads not in VTHREADS:
        raise KnobError("vthreads", f"{k.vthreads!r} must be one of {VTHREADS}")
    if k.inp_tile not in INP_TILES:
        raise KnobError("inp_tile", f"{k.inp_tile!r} must be one of {INP_TILES}")
    if k.inp_tile != "window" and wl.input_step == (1, 1):
        raise KnobError("inp_tile", f"{k.inp_tile!r} needs an unpadded conv with a 1-wide strided kernel "
                        f"dimension; {wl.describe()} reads every input pixel of its window")
    r = requirements(wl, cfg, k)
    for buf, depth, field in (("inp", cfg.inp_depth, "inp_buffer_bytes"), ("wgt", cfg.wgt_depth, "wgt_buffer_bytes"),
                              ("acc", cfg.acc_depth, "acc_buffer_bytes"), ("uop", cfg.uop_depth, "uop_buffer_bytes")):
        if r[buf] > depth:
            knob = {"inp": "tile_ci", "wgt": "tile_co", "acc": "tile_h", "uop": "tile_ci"}[buf]
            raise KnobError(knob, f"{buf} tiles need {r[buf]} elements ({k.vthreads} contexts) > {depth} "
                            f"({field} of {cfg.name})")
    lim = (1 << cfg.loop_iter_bits) - 1
    if max(r["loop_extents"], default=1) > lim:
        raise KnobError("tile_h", f"a folded loop of {max(r['loop_extents'])} iterations exceeds {lim} "
                        f"(loop_iter_bits {cfg.loop_iter_bits})")
    check_workload(wl, cfg)
    sh = packed_shapes(wl, cfg)
    row = wl.w * (wl.input_step[0] if k.inp_tile != "window" else 1)  # input rows a strided tile skips
    strides = (row, sh["weight"][2] * wl.kh * wl.kw, wl.ow * sh["out"][2])
    if max(strides) >= 1 << cfg.dram_stride_bits:
        raise KnobError("tile_w", f"a DRAM row stride of {max(strides)} elements exceeds dram_stride_bits "
                        f"{cfg.dram_stride_bits}")


def is_valid(wl: Workload, cfg: AcceleratorConfig, k: Knobs) -> bool:
    try:
        check(wl, cfg, k)
        return True
    except KnobError:
        return False


def traffic_bytes(wl: Workload, cfg: AcceleratorConfig, k: Knobs) -> int:
    """DRAM bytes the schedule moves (inputs, weights, bias and multiplier vectors, outputs)."""
    d = dims(wl, cfg)
    ext = {"n": d["n"] // k.tile_n, "c": d["co"] // k.tile_co, "h": d["h"] // k.tile_h, "w": d["w"] // k.tile_w}
    tiles = wl.kernel_groups * math.prod(ext.values())
    steps = d["ci"] // k.tile_ci
    in_h, in_w = wl.input_tile(k.tile_h, k.tile_w, k.inp_tile != "window")
    inp_bytes = k.tile_n * k.tile_ci * min(in_h, wl.h) * min(in_w, wl.w) * cfg.inp_elem_bytes
    wgt_tile = k.tile_co * k.tile_ci * wl.kh * wl.kw * cfg.wgt_elem_bytes
    if steps > 1:
        n_inp = n_wgt = tiles * steps
    else:
        n_inp = wl.kernel_groups * math.prod(ext[c] for c in k.order[:hoist_level(wl, cfg, k, "inp")])
        n_wgt = wl.kernel_groups * math.prod(ext[c] for c in k.order[:hoist_level(wl, cfg, k, "wgt")])
    out_e = cfg.out_elem_bytes if wl.out_dtype == "int8" else cfg.acc_elem_bytes
    bias = (wl.kernel_groups * math.prod(ext[c] for c in k.order[:hoist_level(wl, cfg, k, "bias")]) * k.tile_co
            * cfg.acc_elem_bytes) * len(wl.vectors)  # bias and a per-channel multiplier load alike
    return n_inp * inp_bytes + n_wgt * wgt_tile + bias + tiles * k.tile_n * k.tile_co * k.tile_h * k.tile_w * out_e


def estimate_cycles(wl: Workload, cfg: AcceleratorConfig, k: Knobs) -> float:
    """Rough overlapped estimate for ranking knobs: max(compute, DRAM) plus per-tile overheads."""
    d = dims(wl, cfg)
    blocks = wl.kernel_groups * d["n"] * d["co"] * d["h"] * d["w"] * d["ci"] * wl.kh * wl.kw
    tiles = blocks // (k.tile_n * k.tile_co * k.tile_h * k.tile_w * d["ci"] * wl.kh * wl.kw)
    steps = d["ci"] // k.tile_ci
    dram = traffic_bytes(wl, cfg, k) / cfg.dram_bandwidth
    per_step = 3 * cfg.issue_cycles + cfg.gemm_fill_cycles + 2 * cfg.dram_latency
    overlapped = max(blocks, dram) if k.vthreads > 1 else blocks + dram  # one context serialises them
    return overlapped + tiles * steps * per_step / k.vthreads


def default(wl: Workload, cfg: AcceleratorConfig) -> Knobs:
    """A good valid knob vector: the best of the space by ``estimate_cycles`` (two contexts)."""
    check_workload(wl, cfg)
    sp = space(wl, cfg)
    best = None
    for tn, tc, th, tw, ti in itertools.product(sp["tile_n"], sp["tile_co"], sp["tile_h"], sp["tile_w"],
                                                sp["tile_ci"]):
        for order, inp in itertools.product(("nchw", "nhwc", "ncwh", "hwnc"), sp["inp_tile"]):
            k = Knobs(tn, tc, th, tw, ti, order, 2, inp)
            if not is_valid(wl, cfg, k):
                continue
            score = (estimate_cycles(wl, cfg, k), -th * tw)
            if best is None or score < best[0]:
                best = (score, k)
    if best is None:
        raise KnobError("tile_n", f"no valid schedule of {wl.describe()} fits {cfg.name}")
    return best[1]
