"""A torch model's accelerator layers as ``compile`` names them, and a deterministic torch context.

``torch_layers``: the ``nn.Conv2d`` / ``nn.Linear`` calls of one forward pass in call order, named ``conv2d_i`` /
``dense_i`` like ``frontend/precision.layer_names`` names the imported graph's (subclasses with their own
``forward`` are not layers). ``deterministic(seed)``: one torch thread, deterministic algorithms, gradients on and
a private RNG seeded with ``seed``; the caller's thread count, flag and RNG state are restored after.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn


def is_layer(m) -> bool:
    return (isinstance(m, nn.Conv2d) and type(m).forward is nn.Conv2d.forward) or \
        (isinstance(m, nn.Linear) and type(m).forward is nn.Linear.forward)


def torch_layers(model: nn.Module, example: torch.Tensor) -> list[tuple[str, nn.Module]]:
    """(conv2d_i / dense_i, module) of the layer calls of one forward pass on ``example``, in order."""
    calls = []
    hooks = [m.register_forward_pre_hook(lambda mod, inp: calls.append(mod)) for m in model.modules() if is_layer(m)]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    seen, out = {}, []
    for m in calls:
        k = "conv2d" if isinstance(m, nn.Conv2d) else "dense"
        out.append((f"{k}_{seen.get(k, 0)}", m))
        seen[k] = seen.get(k, 0) + 1
    return out


@contextlib.contextmanager
def deterministic(seed: int):
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(seed)
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(det)
