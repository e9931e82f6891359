"""Random (config, layer, schedule) points for validating the analytical model against the simulator."""
from __future__ import annotations

import dataclasses

import numpy as np

from ..hardware import modes as M
from ..hardware.config import AcceleratorConfig, preset_names
from ..schedules import groups
from ..schedules import knobs as kn
from ..schedules.workload import Workload


def random_workload(rng: np.random.Generator) -> Workload:
    """A small random layer: conv 1x1/3x3/7x7 (strides 1/2, padding), dense or batch matmul, random epilogue."""
    kind = rng.choice(["conv2d", "conv2d", "conv2d", "dense", "batch_matmul"])
    out = str(rng.choice(["int8", "int32"]))
    ep = dict(bias=bool(rng.random() < 0.5), relu=bool(rng.random() < 0.4), out_dtype=out)
    if rng.random() < 0.5:
        ep["shift"] = int(rng.integers(1, 9))
    ch = lambda: int(rng.choice([8, 16, 24, 32, 48, 64]))
    if kind == "conv2d":
        k = int(rng.choice([1, 3, 3, 7]))
        s = int(rng.choice([1, 2]))
        p = int(rng.choice([0, k // 2])) if k > 1 else 0
        hw = int(rng.choice([7, 8, 12, 14, 16]))
        hw = max(hw, k)
        return Workload.conv2d(int(rng.choice([1, 1, 2, 4])), ch(), hw, hw, ch(), k, stride=s, pad=p, **ep)
    if kind == "dense":
        return Workload.dense(int(rng.choice([1, 4, 8, 16, 32])), ch() * 2, ch() * 2, **ep)
    return Workload.batch_matmul(int(rng.integers(1, 4)), int(rng.choice([4, 8, 16])), ch(), ch(), **ep)


def random_grouped_workload(rng: np.random.Generator, cfg: AcceleratorConfig) -> Workload:
    """A small random grouped conv (2-4 groups, or depthwise with channel multiplier 1-2), 1x1 to 7x7, random
    epilogue; one group per kernel group, the merge ``compile`` picks, or a random merge."""
    out = str(rng.choice(["int8", "int32"]))
    ep = dict(bias=bool(rng.random() < 0.5), relu=bool(rng.random() < 0.4), out_dtype=out)
    if rng.random() < 0.5:
        ep["shift"] = int(rng.integers(1, 9))
    k = int(rng.choice([1, 3, 3, 5, 7]))
    s = int(rng.choice([1, 2]))
    p = int(rng.choice([0, k // 2])) if k > 1 else 0
    hw = max(int(rng.choice([4, 7, 8, 12, 14])), k)
    if rng.random() < 0.5:  # depthwise
        c = int(rng.choice([8, 12, 24, 32, 40, 64]))
        g, ci, co = c, c, c * int(rng.choice([1, 1, 2]))
    else:
        g = int(rng.choice([2, 3, 4]))
        ci, co = g * int(rng.choice([4, 8, 12, 16, 24])), g * int(rng.choice([4, 8, 12, 16, 24]))
    wl = Workload.conv2d(int(rng.choice([1, 1, 2])), ci, hw, hw, co, k, stride=s, pad=p, groups=g, **ep)
    m = rng.random()
    return groups.merged(wl, cfg, 1 if m < 0.25 else None if m < 0.75 else int(rng.integers(1, g + 1)))


def random_knobs(wl: Workload, cfg: AcceleratorConfig, rng: np.random.Generator, tries: int = 200):
    """A uniformly drawn valid knob vector (rejection sampling over ``knobs.space``), or None."""
    sp = kn.space(wl, cfg)
    for _ in range(tries):
        k = kn.Knobs(*(int(rng.choice(sp[f])) for f in ("tile_n", "tile_co", "tile_h", "tile_w", "tile_ci")),
                     str(rng.choice(sp["order"])), int(rng.choice(sp["vthreads"])),
                     str(rng.choice(sp["inp_tile"])))
        if kn.is_valid(wl, cfg, k):
            return k
    return None


def random_points(n: int, seed: int = 0, max_tiles: int = 256, grouped: bool = False, modes: bool = False) -> list:
    """``n`` (Workload, AcceleratorConfig, Knobs) triples over all presets; at most ``max_tiles`` reduction steps.
    ``grouped``: grouped and depthwise convs (``random_grouped_workload``) instead of ``random_workload``'s.
    ``modes``: each preset made precision-flexible and 2:4 sparse (``modes.flexible``), run in a random mode; the
    layer's input channels scale with the mode's reduction tile (a w4a4 tile reduces 4x the channels), so every
    mode sees layers of the same size in tiles as int8 does."""
    rng = np.random.default_rng(seed)
    cfgs = [AcceleratorConfig.load(p) for p in preset_names()]
    if modes:
        flex = [M.flexible(c) for c in cfgs]
        cfgs = [f.with_mode(m) for f in flex for m in f.modes]
    out = []
    while len(out) < n:
        cfg = cfgs[int(rng.integers(len(cfgs)))]
        wl = random_grouped_workload(rng, cfg) if grouped else random_workload(rng)
        if cfg.mode:
            wl = dataclasses.replace(wl, ci=wl.ci * (cfg.block_in // cfg.hardware.block_in))
        try:
            kn.check_workload(wl, cfg)
        except kn.KnobError:
            continue
        k = random_knobs(wl, cfg, rng)
        if k is None:
            continue
        d = kn.dims(wl, cfg)
        steps = wl.kernel_groups * (d["n"] // k.tile_n) * (d["co"] // k.tile_co) * (d["h"] // k.tile_h) * \
            (d["w"] // k.tile_w) * (d["ci"] // k.tile_ci)
        if steps > max_tiles:
            continue
        out.append((wl, cfg, k))
    return out
