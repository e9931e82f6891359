"""``digits``: scikit-learn's 1,797 real handwritten digits (8x8, 16 grey levels, 10 classes) and a small CNN.

Split (deterministic, stratified): every class's images are shuffled with ``RandomState(seed)`` and ranked by
(position in class + U(0,1)) / class size; images sorted by that rank are cut into held-out (the first 360),
calibration (the next 96) and training (the remaining 1,341). Every prefix of the held-out split has nearly
the class mix of the whole set, so ``accuracy(limit=n)`` is a fair sample.

Preparation (data, not model): pixels 0..16 scaled to [-1, 1] (x / 8 - 1), then upsampled 8x8 -> 32x32 with
torch's bilinear interpolation (``align_corners=False``). The CNN: three conv3x3-ReLU-maxpool2 blocks (1 -> 16 ->
32 -> 64 channels, 32 -> 4 pixels) and one linear layer (1024 -> 10); no BatchNorm. Training: AdamW,
one-cycle lr, minibatches shifted together by up to 2 pixels (``torch.roll``).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

RECIPE = {"seed": 0, "heldout": 360, "calibration": 96, "size": 32, "channels": [16, 32, 64], "epochs": 30,
          "batch": 64, "lr": 3e-3, "weight_decay": 0.0, "shift": 2}


def split(y: np.ndarray, seed: int, sizes: list[int]) -> list[np.ndarray]:
    """Stratified split of the indices of labels ``y`` into parts of ``sizes`` (the rest goes to a last part)."""
    rng = np.random.RandomState(seed)
    rank = np.empty(len(y))
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rank[idx[rng.permutation(len(idx))]] = (np.arange(len(idx)) + rng.rand(len(idx))) / len(idx)
    order = np.argsort(rank, kind="stable")
    return np.split(order, np.cumsum(sizes))


def prepare(images: np.ndarray, size: int) -> np.ndarray:
    """8x8 images with values 0..16 -> (n, 1, size, size) float32 in [-1, 1], bilinear upsampling."""
    t = torch.from_numpy(np.asarray(images, np.float32))[:, None] / 8 - 1
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False).numpy()


def data(r: dict) -> dict:
    from sklearn.datasets import load_digits
    d = load_digits()
    x, y = prepare(d.images, r["size"]), d.target.astype(np.int64)
    held, cal, train = split(y, r["seed"], [r["heldout"], r["calibration"]])
    return {"train": (x[train], y[train]), "calibration": (x[cal], y[cal]), "heldout": (x[held], y[held])}


class DigitsCNN(nn.Module):
    """conv3x3-ReLU-maxpool2 blocks and a linear classifier (no BatchNorm)."""

    def __init__(self, channels=(16, 32, 64), size: int = 32, classes: int = 10):
        super().__init__()
        chans = [1, *channels]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, 1, 1) for a, b in zip(chans, chans[1:]))
        self.fc = nn.Linear(chans[-1] * (size >> len(channels)) ** 2, classes)

    def forward(self, x):
        for conv in self.convs:
            x = F.max_pool2d(torch.relu(conv(x)), 2)
        return self.fc(torch.flatten(x, 1))


def build(r: dict) -> nn.Module:
    return DigitsCNN(r["channels"], r["size"])


def augment(r: dict):
    s = r["shift"]

    def shift(xb, gen):
        dy, dx = torch.randint(-s, s + 1, (2,), generator=gen).tolist()
        return torch.roll(xb, (dy, dx), (2, 3))
    return shift
