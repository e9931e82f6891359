"""Per-layer accuracy sensitivity: the tuner's estimate of what a per-layer precision / 2:4 assignment costs.

``measure`` quantises one layer at a time at each mode of ``QUANT_MODES`` (all other layers at w8a8) in a
fake-quantised torch copy of the model and records the top-1 drop against all-w8a8 and the KL divergence of the
outputs from fp32; ``estimate`` adds the per-layer drops of an assignment (the additive assumption of ZeroQ,
Cai et al., CVPR 2020, and HAWQ-V2 / HAWQ-V3, Dong et al., NeurIPS 2020 / ICML 2021).

The fake quantisation (tuner/fakequant.py) follows the compiled quantiser's numerics; its layers are named as
``profile()`` names them (convs, linears, and matmuls of two activations, whose 2:4 modes are not measured: they
have no weight to prune, the table holds NaN there).
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..hardware.modes import LAYER_MODES, Mode, label, parse
from .fakequant import W8A8, FakeQuant, model_input

QUANT_MODES = LAYER_MODES


def _kl(ref: torch.Tensor, q: torch.Tensor) -> float:
    """Summed KL(softmax(ref) || softmax(q)) over the rows."""
    lp, lq = F.log_softmax(ref.double(), 1), F.log_softmax(q.double(), 1)
    return float((lp.exp() * (lp - lq)).sum())


@dataclasses.dataclass
class Sensitivity:
    """Top-1 drop in points (vs all-w8a8) and KL divergence from fp32 of quantising one layer at one mode."""
    layers: list[str]
    modes: list[str]                 # mode labels, e.g. "w8a8", "w4a4s"
    drop: list[list[float]]          # [layer][mode], points; negative = better than w8a8 on this split
    kl: list[list[float]]            # [layer][mode], mean KL(fp32 || quantised) per image, nats
    int8_accuracy: float             # all-w8a8, percent
    fp32_accuracy: float             # percent
    int8_kl: float
    metric: str                      # "top1" (labels) or "agreement" (top-1 agreement with fp32's argmax)
    n_eval: int
    seconds: float
    weight_scales: str = "channel"   # per-channel or per-tensor weight scales (compile's weight_scales)

    def save(self, path) -> Path:
        """JSON; a mode not measured (NaN) is written as null (standard JSON), read back as NaN."""
        d = dataclasses.asdict(self)
        for k in ("drop", "kl"):
            d[k] = [[None if v != v else v for v in row] for row in d[k]]
        Path(path).write_text(json.dumps(d, indent=1))
        return Path(path)

    @classmethod
    def load(cls, path) -> "Sensitivity":
        d = json.loads(Path(path).read_text())
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
        missing = [n for n in required if not isinstance(d, dict) or n not in d]
        if missing:
            raise ValueError(f"{path}: not a sensitivity table (no {', '.join(missing)})")
        for k in ("drop", "kl"):
            d[k] = [[float("nan") if v is None else v for v in row] for row in d[k]]
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})

    def get(self, layer: str, mode: Mode, what: str = "drop") -> float:
        if layer not in self.layers:
            raise KeyError(f"no layer {layer!r} in the sensitivity table; it has {', '.join(self.layers)}")
        if label(mode.name) not in self.modes:
            raise KeyError(f"mode {label(mode.name)} was not measured; the table has {', '.join(self.modes)}")
        return getattr(self, what)[self.layers.index(layer)][self.modes.index(label(mode.name))]


def measure(model: nn.Module, layers_names=None, calib_x=None, eval_x=None, eval_y=None, modes=QUANT_MODES,
            batch: int = 64, fq: FakeQuant | None = None, threads: int | None = None,
            weight_scales: str = "channel") -> Sensitivity:
    """Quantise each layer of ``layers_names`` (None: all) alone at each mode (others at w8a8) and measure the
    top-1 drop against all-w8a8 on ``eval_x`` (with ``eval_y``: labels; without: agreement with fp32's argmax)
    and the KL divergence of the outputs from fp32. One forward pass per (layer, mode) and batch, the layers
    before the quantised one served from the w8a8 pass's cache. ``threads``: torch's intra-op threads meanwhile
    (1 is far faster for small models on a loaded machine: thread wake-ups dominate). ``weight_scales``: as the
    compiled models will quantise weights, "channel" or "tensor" (the co-design path's, precision_run)."""
    t0, before = time.perf_counter(), torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _measure(model, layers_names, calib_x, eval_x, eval_y, modes, batch, fq, t0, weight_scales)
    finally:
        torch.set_num_threads(before)


def _measure(model, layers_names, calib_x, eval_x, eval_y, modes, batch, fq, t0, weight_scales) -> Sensitivity:
    fq = fq or FakeQuant(model, calib_x, weight_scales=weight_scales)
    if fq.weight_scales != weight_scales:
        raise ValueError(f"the FakeQuant given quantises weights per {fq.weight_scales}, measure was asked for "
                         f"per-{weight_scales} scales")
    names = list(fq.names if layers_names is None else layers_names)
    bad = [n for n in names if n not in fq.names]
    if bad:
        raise ValueError(f"no layer named {', '.join(map(repr, bad))}; the model's layers are {', '.join(fq.names)}")
    modes = [m if isinstance(m, Mode) else parse(m) for m in modes]
    x = model_input(eval_x)
    first = {n: fq.names.index(n) for n in names}
    hits, kls = np.zeros((len(names), len(modes))), np.zeros((len(names), len(modes)))
    fp_hits = base_hits = base_kl = 0.0
    for b in range(0, len(x), batch):
        xb = x[b:b + batch]
        ref = fq.logits(xb, fp32=True)
        y = ref.argmax(1) if eval_y is None else torch.as_tensor(np.asarray(eval_y[b:b + batch]))
        cache = {}
        base = fq.logits(xb, record=cache)
        fp_hits += float((ref.argmax(1) == y).sum())
        base_hits += float((base.argmax(1) == y).sum())
        base_kl += _kl(ref, base)
        for i, n in enumerate(names):
            for j, m in enumerate(modes):
                if m.sparse and fq.layers[first[n]].module is None:  # a matmul of two activations: no weight
                    hits[i, j] = kls[i, j] = np.nan
                    continue
                out = base if m == W8A8 else fq.logits(xb, {n: m}, reuse=cache, upto=first[n])
                hits[i, j] += float((out.argmax(1) == y).sum())
                kls[i, j] += _kl(ref, out)
    pct = 100.0 / len(x)
    return Sensitivity(names, [label(m.name) for m in modes], ((base_hits - hits) * pct).tolist(),
                       (kls / len(x)).tolist(), base_hits * pct, fp_hits * pct, base_kl / len(x),
                       "top1" if eval_y is not None else "agreement", len(x), time.perf_counter() - t0,
                       fq.weight_scales)


def estimate(sens: Sensitivity, assignment: dict) -> float:
    """Estimated top-1 drop in points of ``assignment`` ({layer: Mode or mode name}; absent layers w8a8) against
    all-w8a8: the sum of the layers' measured drops, each clipped at >= 0 (a layer that "helps" on a small split
    is noise). Additivity is the assumption of ZeroQ (Cai et al., CVPR 2020) and HAWQ-V2/V3 (Dong et al.)."""
    total = 0.0
    for n, m in assignment.items():
        m = m if isinstance(m, Mode) else parse(m)
        if m != W8A8:
            total += max(0.0, sens.get(n, m))
    return total
