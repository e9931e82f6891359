"""Per-layer accuracy sensitivity: the tuner's estimate of what a per-layer precision / 2:4 assignment costs.

``measure`` quantises one layer at a time at each mode of ``QUANT_MODES`` (all other layers at w8a8) in a
fake-quantised torch copy of the model and records the top-1 drop against all-w8a8 and the KL divergence of the
outputs from fp32; ``estimate`` adds the per-layer drops of an assignment (the additive assumption of ZeroQ,
Cai et al., CVPR 2020, and HAWQ-V2 / HAWQ-V3, Dong et al., NeurIPS 2020 / ICML 2021).

The fake quantisation follows the compiled quantiser's numerics (frontend/quantize.py with ``precision=``):
weights 2:4-pruned along input channels (lowbit.prune_2_4) then quantised per output channel with MSE clipping
(lowbit.quantize_weight; or one scale per tensor) and dequantised; each layer's input quantised per tensor at a_bits, clipped at the
calibrated max |x| at 8 bits and at the histogram MSE threshold (lowbit.clip_from_histogram) below, range
[-2^(a-1), 2^(a-1) - 1]. Not bit-exact with the compiled model: that one also requantises each layer's output
to int8 with an integer multiplier and shift and rounds the bias (frontend/requant.py); fake quantisation
keeps outputs and biases in float. Per-channel quantisation and 2:4 masks are invariant to the per-channel
BatchNorm scale the importer folds into the conv, so the unfolded torch weights give the same quantised layer;
per-tensor scales (``weight_scales="tensor"``, the co-design path's) are not, so a BN taking a layer's output
(``bn_scales``) is folded into the weights before quantising and divided out after.

Layers: the i-th ``nn.Conv2d`` / ``nn.Linear`` call in forward order is ``conv2d_i`` / ``dense_i``
(frontend/precision.layer_names); ``FakeQuant`` checks this against the imported Relax graph and raises
``LayerMappingError`` when they differ (functional convs, activation x activation matmuls, unsupported convs).
Single-input models only.
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

from ..frontend import lowbit
from ..frontend import torch_layers as TL
from ..hardware.modes import Mode, label, parse

QUANT_MODES = tuple(Mode(w, a, s) for s in (False, True) for w in (8, 4, 2) for a in (8, 4))
W8A8 = Mode()


class LayerMappingError(ValueError):
    """The model's nn.Conv2d / nn.Linear calls are not the quantised layers of its imported graph."""


@dataclasses.dataclass
class Layer:
    name: str            # conv2d_i / dense_i
    module: nn.Module
    weight: np.ndarray   # float64, torch layout: output channels on axis 0, input channels on axis 1


def torch_layers(model: nn.Module, example: torch.Tensor) -> list[Layer]:
    """The nn.Conv2d / nn.Linear calls of one forward pass in order, named like precision.layer_names."""
    return [Layer(n, m, m.weight.detach().double().numpy()) for n, m in TL.torch_layers(model, example)]


def bn_scales(model: nn.Module, example: torch.Tensor, layers: list[Layer]) -> list:
    """Per layer call, the per-output-channel scale gamma / sqrt(var + eps) of an eval-mode BatchNorm that takes
    the layer's output directly (the BN frontend/fold_bn.py folds into the weights), else None."""
    out_of, found, calls = {}, [None] * len(layers), [0]

    def after(mod, inp, out):
        if calls[0] < len(layers) and layers[calls[0]].module is mod:
            out_of[id(out)] = calls[0]
        calls[0] += 1

    def before(bn, inp):
        i = out_of.get(id(inp[0]))
        if i is not None and not bn.training and bn.running_var is not None:
            g = bn.weight.detach().double() if bn.affine else torch.ones_like(bn.running_var, dtype=torch.float64)
            found[i] = (g / torch.sqrt(bn.running_var.double() + bn.eps)).numpy()

    mods = {id(ly.module): ly.module for ly in layers}.values()
    hooks = [m.register_forward_hook(after) for m in mods] + [
        m.register_forward_pre_hook(before) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    return found


def relax_layers(model: nn.Module, example: torch.Tensor) -> list[tuple[str, tuple | None]]:
    """(name, weight shape in torch layout; None for a matmul of two activations) of the imported graph's
    quantisation targets (frontend/quantize.py)."""
    from ..frontend import precision as PR, quantize as Q
    from ..frontend.torch_import import import_torch
    targets = Q._targets(Q._main(import_torch(model, (example,))))
    out = []
    for n, bd in zip(PR.layer_names(targets), targets):
        w = bd.value.args[1]
        shape = tuple(int(d) for d in w.value.shape) if PR.kind(bd) != "matmul" else None
        out.append((n, shape[::-1] if n.startswith("dense") else shape))  # Relax dense weights are (in, out)
    return out


def check_mapping(ours: list[Layer], theirs: list[tuple[str, tuple | None]]) -> None:
    a = [(l.name, tuple(l.weight.shape)) for l in ours]
    b = list(theirs)
    if a == b:
        return
    k = next((i for i, (p, q) in enumerate(zip(a, b)) if p != q), min(len(a), len(b)))
    fmt = lambda t: f"{t[0]} (weight {t[1]})" if t[1] is not None else f"{t[0]} (two activations)"
    got = fmt(a[k]) if k < len(a) else "(none)"
    want = fmt(b[k]) if k < len(b) else "(none)"
    raise LayerMappingError(
        f"layer {k}: the imported graph has {want} but the model's {k}-th nn.Conv2d / nn.Linear call is {got} "
        f"({len(b)} quantised layers in the graph, {len(a)} module calls). Sensitivity needs every quantised "
        "layer to be an nn.Conv2d / nn.Linear module: no functional conv2d / linear, no matmul of two activations, "
        "no dilated / asymmetrically padded convs (those are not quantised)")


class FakeQuant:
    """A float torch model and its calibration, run with any layers at any Mode (``logits``)."""

    def __init__(self, model: nn.Module, calib_x, check: bool = True, weight_scales: str = "channel"):
        if weight_scales not in ("channel", "tensor"):
            raise ValueError(f"weight_scales must be 'channel' or 'tensor', got {weight_scales!r}")
        self.model, self.weight_scales = model.eval(), weight_scales
        calib = torch.as_tensor(np.asarray(calib_x), dtype=torch.float32)
        self.layers = torch_layers(model, calib[:1])
        if check:
            check_mapping(self.layers, relax_layers(model, calib[:1]))
        self.names = [l.name for l in self.layers]
        # per-tensor scales see the BN-folded weights (per-channel ones are invariant to the folded BN scale)
        self.bn = bn_scales(model, calib[:1], self.layers) if weight_scales == "tensor" else [None] * len(self.layers)
        amax = np.zeros(len(self.layers))
        for o in self._inputs(calib):
            amax = np.maximum(amax, [float(v.abs().max()) for v in o])
        hist = [np.zeros(lowbit.HIST_BINS, np.int64) for _ in self.layers]
        for o in self._inputs(calib):
            for h, v, a in zip(hist, o, amax):
                h += lowbit.histogram(v.numpy(), a)
        self.amax, self.hist = amax, hist
        self._w, self._a = {}, {}

    def _inputs(self, calib, batch: int = 64):
        """Per calibration batch, each layer call's fp32 input."""
        for b in range(0, len(calib), batch):
            seen = []
            hooks = [m.register_forward_pre_hook(lambda mod, inp: seen.append(inp[0].detach()))
                     for m in {id(l.module): l.module for l in self.layers}.values()]
            try:
                with torch.no_grad():
                    self.model(calib[b:b + batch])
            finally:
                for h in hooks:
                    h.remove()
            yield seen

    def weight(self, i: int, m: Mode) -> torch.Tensor:
        """Layer i's weight at mode m: 2:4-pruned, quantised with per-channel (or one per-tensor) scales as
        ``weight_scales`` says (compile's option of the same name), dequantised (float32)."""
        key = (i, m.w_bits, m.sparse)
        if key not in self._w:
            w = self.layers[i].weight
            if m.sparse:
                w = lowbit.prune_2_4(w, 1)[0]
            shape = (-1,) + (1,) * (w.ndim - 1)
            bn = self.bn[i]
            if bn is not None:  # quantise the weights the compiled model quantises: BN-folded, then unfold
                w = w * bn.reshape(shape)
            q, s = lowbit.quantize_weight(w, m.w_bits, 0, per_channel=self.weight_scales == "channel")
            wq = q * s.reshape(shape)
            if bn is not None:
                safe = np.where(bn == 0, 1.0, bn).reshape(shape)
                wq = np.where(bn.reshape(shape) == 0, self.layers[i].weight, wq / safe)
            self._w[key] = torch.from_numpy(wq.astype(np.float32))
        return self._w[key]

    def act(self, i: int, bits: int) -> tuple[float, float, int, int]:
        """(1 / scale as float32, scale, lo, hi) of layer i's input at ``bits``, as quantize._quant computes it."""
        if (i, bits) not in self._a:
            a = float(self.amax[i])
            c = a if bits == 8 else lowbit.clip_from_histogram(self.hist[i], a, bits)
            lo, hi = lowbit.qrange(bits)
            s = c / hi if c > 0 else 1.0
            self._a[i, bits] = (float(np.float32(1.0 / s)), s, lo, hi)
        return self._a[i, bits]

    def logits(self, x, assignment: dict | None = None, fp32: bool = False, record: dict | None = None,
               reuse: dict | None = None, upto: int = 0) -> torch.Tensor:
        """Outputs with each layer at ``assignment[name]`` (w8a8 if absent), or the float model (``fp32``).
        ``record`` (a dict) receives every layer call's output; layer calls before ``upto`` return ``reuse``'s
        instead (valid if they ran at the same modes when it was recorded: a layer never sees a later one)."""
        assignment = assignment or {}
        bad = [n for n in assignment if n not in self.names]
        if bad:
            raise ValueError(f"no layer named {', '.join(map(repr, bad))}; the model's layers are {', '.join(self.names)}")
        x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
        count = [0]
        mods = {id(l.module): l.module for l in self.layers}

        def forward(mod, inp):
            i = count[0]
            count[0] += 1
            if i >= len(self.layers) or self.layers[i].module is not mod:
                raise LayerMappingError("the model calls its nn.Conv2d / nn.Linear modules in a different order "
                                        "from one forward pass to the next (data-dependent control flow)")
            if i < upto:
                return reuse[i]
            if fp32:
                wq, xq = mod.weight, inp
            else:
                m = assignment.get(self.names[i], W8A8)
                inv, s, lo, hi = self.act(i, m.a_bits)
                xq = torch.clamp(torch.round(inp * inv), lo, hi) * s
                wq = self.weight(i, m)
            out = mod._conv_forward(xq, wq, mod.bias) if isinstance(mod, nn.Conv2d) else F.linear(xq, wq, mod.bias)
            if record is not None:
                record[i] = out
            return out

        for mod in mods.values():
            mod.forward = lambda inp, mod=mod: forward(mod, inp)
        try:
            with torch.no_grad():
                return self.model(x)
        finally:
            for mod in mods.values():
                del mod.forward


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
        Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=1))
        return Path(path)

    @classmethod
    def load(cls, path) -> "Sensitivity":
        d = json.loads(Path(path).read_text())
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
        missing = [n for n in required if not isinstance(d, dict) or n not in d]
        if missing:
            raise ValueError(f"{path}: not a sensitivity table (no {', '.join(missing)})")
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
    x = torch.as_tensor(np.asarray(eval_x), dtype=torch.float32)
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
