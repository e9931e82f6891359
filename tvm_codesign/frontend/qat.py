"""Quantisation-aware fine-tuning of a float torch classifier before post-training quantisation.

``finetune(model, modes, calib_x, train_x, train_y)`` trains a deep copy of ``model`` for a few epochs with the
quantiser of frontend/quantize.py (with ``precision=``) simulated in the forward pass, and returns the copy as a
float model, which the PTQ then quantises as usual (so the compiled model stays bit-exact to its quantised graph).
Layer ``conv2d_i`` / ``dense_i`` is the i-th ``nn.Conv2d`` / ``nn.Linear`` call of a forward pass
(precision.layer_names); ``check_layers`` compares them with the imported graph's. Matmuls of two activations
(``matmul_i``) are not modules: they stay float here (the PTQ still quantises them).

- Weights: 2:4-pruned with a mask fixed from the float weights (lowbit.prune_2_4 along input channels, as the PTQ
  prunes); the pruned weights get no gradient and are zero in the returned model, so the PTQ's own pruning of it
  keeps the same values. Then quantised at w bits per output channel (or per tensor) with the scales recomputed
  every step by the PTQ's rule (lowbit.RATIOS x max|w|, least squared error): the network trains against exactly
  the quantiser the PTQ will apply to its final weights, which fixed scales from the float weights would not be
  once the weights move. Straight-through estimator (identity gradient).
- Each layer's input: quantised at a bits per tensor with the clip the PTQ calibrates on the float model (max|x|
  at 8 bits, lowbit.clip_from_histogram below), kept fixed; straight-through inside the clip, zero gradient
  outside it.
- Cross-entropy on (train_x, train_y), Adam, minibatches in a seeded order; the copy runs in eval mode
  (BatchNorm statistics frozen, no dropout), on one thread with deterministic algorithms and a private RNG
  stream (``deterministic``): the same inputs give bit-identical weights, and torch's global state is restored.
  Biases and BatchNorm stay float (the PTQ folds BatchNorm into the conv; per-channel quantisation and the 2:4
  mask do not change under that per-channel scale, per-tensor scales only approximately).
"""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import lowbit
from .torch_layers import deterministic, torch_layers

EPOCHS, BATCH, LR = 5, 32, 3e-4  # defaults: see README (digits CNN, w2a4: the recovery and the time)


def check_layers(layers: list, graph: list[tuple[str, tuple]]) -> None:
    """``graph``: (name, weight shape in torch layout) of the imported graph's conv2d / dense layers; a
    ValueError names the first difference from the model's nn.Conv2d / nn.Linear calls."""
    ours = [(n, tuple(m.weight.shape)) for n, m in layers]
    if ours == list(graph):
        return
    k = next((i for i, (p, q) in enumerate(zip(ours, graph)) if p != q), min(len(ours), len(graph)))
    fmt = lambda t: f"{t[0]} (weight {'x'.join(map(str, t[1]))})" if t else "(none)"
    raise ValueError(
        f"train=: layer {k} of the imported graph is {fmt(graph[k] if k < len(graph) else None)} but the model's "
        f"{k}-th nn.Conv2d / nn.Linear call is {fmt(ours[k] if k < len(ours) else None)}. Quantisation-aware "
        "fine-tuning needs every quantised conv2d / dense layer to be an nn.Conv2d / nn.Linear module (no "
        "functional conv2d / linear or matmul with a weight tensor, no dilated or asymmetrically padded convs)")


def _scales(w: torch.Tensor, bits: int, per_channel: bool) -> torch.Tensor:
    """lowbit._best_scales in torch (float64): per output channel (or one for the tensor), the scale from
    lowbit.RATIOS x max|w| / hi with the least squared quantisation error; shape broadcastable to ``w``."""
    lo, hi = lowbit.qrange(bits)
    m = w.detach().double().reshape(w.shape[0] if per_channel else 1, -1)
    amax = m.abs().amax(1)
    amax = torch.where(amax == 0, torch.ones_like(amax), amax)
    s = torch.as_tensor(lowbit.RATIOS, dtype=torch.float64)[:, None] * amax / hi  # (ratios, rows)
    err = ((torch.clamp(torch.round(m / s[..., None]), lo, hi) * s[..., None] - m) ** 2).sum(2)
    best = s.gather(0, err.argmin(0, keepdim=True))[0]  # first minimum, as lowbit's strict "<" keeps
    best = best.expand(w.shape[0]) if not per_channel else best
    return best.reshape((-1,) + (1,) * (w.ndim - 1)).to(w.dtype)


def fake_weight(w: torch.Tensor, bits: int, per_channel: bool = True) -> torch.Tensor:
    """``w`` quantised at ``bits`` and dequantised, with an identity straight-through gradient."""
    lo, hi = lowbit.qrange(bits)
    s = _scales(w, bits, per_channel)
    return w + (torch.clamp(torch.round(w / s), lo, hi) * s - w).detach()


def fake_act(x: torch.Tensor, clip: float, bits: int) -> torch.Tensor:
    """``x`` quantised per tensor at ``bits`` with threshold ``clip`` (as quantize._quant: s = clip / hi) and
    dequantised; straight-through inside [lo * s, hi * s], zero gradient outside."""
    lo, hi = lowbit.qrange(bits)
    s = clip / hi if clip > 0 else 1.0
    inv = float(np.float32(1.0 / s))
    xc = torch.clamp(x, lo * s, hi * s)
    return xc + (torch.clamp(torch.round(x * inv), lo, hi) * s - xc).detach()


def _clips(model, layers, modes, calib: torch.Tensor, batch: int = 64) -> list[float]:
    """Per layer call, the PTQ's activation clip on the calibration inputs of the float model."""
    mods = {id(m): m for _, m in layers}.values()
    amax = np.zeros(len(layers))
    hists = [np.zeros(lowbit.HIST_BINS, np.int64) for _ in layers]
    for second in (False, True):  # max|x| first, then the histograms over [-max, max]
        for b in range(0, len(calib), batch):
            seen = []
            hooks = [m.register_forward_pre_hook(lambda mod, inp, seen=seen: seen.append(inp[0].detach()))
                     for m in mods]
            try:
                with torch.no_grad():
                    model(calib[b:b + batch])
            finally:
                for h in hooks:
                    h.remove()
            for i, v in enumerate(seen[:len(layers)]):
                if second:
                    hists[i] += lowbit.histogram(v.double().numpy(), amax[i])
                else:
                    amax[i] = max(amax[i], float(v.abs().max()))
    out = []
    for i, (n, _) in enumerate(layers):
        bits = modes[n].a_bits
        out.append(float(amax[i]) if bits == 8 else lowbit.clip_from_histogram(hists[i], float(amax[i]), bits))
    return out


def _tensor(x, what: str) -> torch.Tensor:
    try:
        return x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    except (TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"train=: {what} cannot be made a tensor ({e})") from e


def check_train(train, example: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``train`` = (x, y) as tensors: x samples shaped like the example input's samples (cast to its dtype), y
    integer class indices, one per sample."""
    if not isinstance(train, (tuple, list)) or len(train) != 2:
        raise TypeError(f"train must be a pair (x, y) of inputs and integer class labels, got a "
                        f"{type(train).__name__}" + (f" of {len(train)} items" if isinstance(train, (tuple, list))
                                                      else ""))
    x, y = _tensor(train[0], "x"), _tensor(train[1], "y")
    if y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
        raise ValueError(f"train=: the labels y must be integer class indices, got dtype {y.dtype}")
    if y.ndim != 1:
        raise ValueError(f"train=: the labels y must be one class index per sample (1-D), got shape {tuple(y.shape)}")
    if x.ndim < 1 or len(x) != len(y) or len(y) == 0:
        raise ValueError(f"train=: x has {len(x) if x.ndim else 'no'} samples (shape {tuple(x.shape)}) but y has "
                         f"{len(y)} labels; give one label per sample, at least one sample")
    if tuple(x.shape[1:]) != tuple(example.shape[1:]):
        raise ValueError(f"train=: each sample of x has shape {tuple(x.shape[1:])} but the model's input samples "
                         f"have {tuple(example.shape[1:])} (input shape {tuple(example.shape)}, batch first)")
    if x.is_floating_point() != example.is_floating_point():
        raise ValueError(f"train=: x has dtype {x.dtype} but the model's input is {example.dtype}")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ValueError("train=: x has non-finite values (NaN/Inf)")
    return x.to(example.dtype).contiguous(), y.long().contiguous()


def finetune(model: nn.Module, modes: dict, calib_x, train_x, train_y, *, epochs: int = EPOCHS,
             batch: int = BATCH, lr: float = LR, seed: int = 0, per_channel: bool = True) -> nn.Module:
    """A fine-tuned deep copy of ``model`` (never changed): ``modes`` {layer: Mode with w_bits, a_bits, sparse}
    for the conv2d_i / dense_i layers (absent: w8a8), ``calib_x`` the calibration inputs (batch first, as the
    PTQ calibrates), ``train_x`` / ``train_y`` (checked by ``check_train``) the training inputs and integer
    labels; see the module docstring for the numerics."""
    if int(epochs) != epochs or epochs < 1:
        raise ValueError(f"qat_epochs must be a whole number >= 1, got {epochs!r}")
    if int(batch) != batch or batch < 1:
        raise ValueError(f"the fine-tune batch must be a whole number >= 1, got {batch!r}")
    with deterministic(seed):
        net = copy.deepcopy(model).eval()
        calib = _tensor(calib_x, "calibration").to(train_x.dtype)
        layers = torch_layers(net, calib[:1])
        from ..hardware.modes import Mode
        modes = {n: modes.get(n, Mode()) for n, _ in layers}
        sparse_of: dict = {}
        for n, m in layers:
            sparse_of.setdefault(id(m), set()).add(modes[n].sparse)
        masks = {}  # module id -> 2:4 keep mask (fixed from the float weights)
        for n, m in layers:
            if len(sparse_of[id(m)]) > 1:
                raise ValueError(f"train=: {n} shares its module with another layer of a different sparsity; give "
                                 "the calls of one nn.Conv2d / nn.Linear the same 2:4 setting")
            if modes[n].sparse and id(m) not in masks:
                keep = lowbit.prune_2_4(m.weight.detach().numpy(), 1)[1]
                masks[id(m)] = torch.from_numpy(keep).to(m.weight.dtype)
        clips = _clips(net, layers, modes, calib)
        params = [p for p in net.parameters() if p.requires_grad]
        if not params:
            raise ValueError("train=: the model has no parameters with requires_grad=True to fine-tune")
        with torch.no_grad():
            out = net(train_x[:2])
        if not isinstance(out, torch.Tensor) or out.ndim != 2:
            raise ValueError("train=: fine-tuning needs a classifier whose output is (batch, classes) logits; got "
                             + (f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__))
        if int(train_y.min()) < 0 or int(train_y.max()) >= out.shape[1]:
            raise ValueError(f"train=: labels must be class indices in [0, {out.shape[1] - 1}] (the model has "
                             f"{out.shape[1]} outputs); got {int(train_y.min())}..{int(train_y.max())}")
        _train(net, layers, modes, masks, clips, train_x, train_y, epochs, batch, lr, seed, per_channel)
        with torch.no_grad():
            for _, m in layers:
                if id(m) in masks:
                    m.weight.mul_(masks[id(m)])
    return net.eval()


def _train(net, layers, modes, masks, clips, x, y, epochs, batch, lr, seed, per_channel) -> None:
    count = [0]

    def forward(mod, inp):
        i = count[0]
        count[0] += 1
        if i >= len(layers) or layers[i][1] is not mod:
            raise ValueError("train=: the model calls its nn.Conv2d / nn.Linear modules in a different order from "
                             "one forward pass to the next (data-dependent control flow)")
        mode = modes[layers[i][0]]
        w = mod.weight * masks[id(mod)] if id(mod) in masks else mod.weight
        wq, xq = fake_weight(w, mode.w_bits, per_channel), fake_act(inp, clips[i], mode.a_bits)
        return mod._conv_forward(xq, wq, mod.bias) if isinstance(mod, nn.Conv2d) else F.linear(xq, wq, mod.bias)

    mods = {id(m): m for _, m in layers}.values()
    for mod in mods:
        mod.forward = lambda inp, mod=mod: forward(mod, inp)
    try:
        opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=gen)
            for b in range(0, len(x), batch):
                idx = order[b:b + batch]
                count[0] = 0
                loss = F.cross_entropy(net(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    finally:
        for mod in mods:
            del mod.forward
