"""Deterministic CPU training: one thread, torch's deterministic algorithms, a private RNG stream.

``deterministic(seed)`` sets the process-wide torch state for the duration of a training run and restores it
after (thread count, deterministic-algorithms flag, global RNG), so loading a task never changes the caller's
torch settings. The same recipe on the same machine and torch build gives bit-identical weights.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..frontend.torch_layers import deterministic  # noqa: F401 (tasks train under it)


def fit(net: torch.nn.Module, x: np.ndarray, y: np.ndarray, *, epochs: int, batch: int, lr: float, seed: int,
        weight_decay: float = 0.0, clip: float | None = None, augment=None) -> torch.nn.Module:
    """Train ``net`` in place with AdamW and a one-cycle learning rate on (x, y) (cross-entropy), minibatches in a
    seeded order; ``augment(xb, generator)`` may transform each minibatch. Returns ``net`` in eval mode.
    Call inside ``deterministic(seed)`` (as ``Task`` does) for reproducible weights."""
    xt, yt = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(net.parameters(), lr, weight_decay=weight_decay)
    steps = epochs * -(-len(xt) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), batch):
            idx = order[i:i + batch]
            xb = xt[idx] if augment is None else augment(xt[idx], gen)
            loss = F.cross_entropy(net(xb), yt[idx])
            opt.zero_grad()
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
            opt.step()
            sched.step()
    return net.eval()


def predict(net: torch.nn.Module, x: np.ndarray, batch: int = 512) -> np.ndarray:
    """Top-1 class of every row of ``x`` in fp32."""
    with torch.no_grad():
        return np.concatenate([net(torch.from_numpy(x[i:i + batch])).argmax(1).numpy()
                               for i in range(0, len(x), batch)])
