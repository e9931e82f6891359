"""Built-in models defined in code (no downloads): ResNet-18 and an MLP, as torch modules."""
from __future__ import annotations

import torch
from torch import nn


class _Basic(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.down = nn.Conv2d(cin, cout, 1, stride, 0) if stride != 1 or cin != cout else None

    def forward(self, x):
        y = self.c2(torch.relu(self.c1(x)))
        return torch.relu(y + (self.down(x) if self.down is not None else x))


class ResNet18(nn.Module):
    """ResNet-18 (BatchNorm folded into the convolutions' biases, as after inference-time fusion)."""

    def __init__(self, num_classes: int = 1000, width: int = 64):
        super().__init__()
        w = width
        self.stem = nn.Conv2d(3, w, 7, 2, 3)
        self.pool = nn.MaxPool2d(3, 2, 1)
        chans = [(w, w, 1), (w, w, 1), (w, 2 * w, 2), (2 * w, 2 * w, 1), (2 * w, 4 * w, 2), (4 * w, 4 * w, 1),
                 (4 * w, 8 * w, 2), (8 * w, 8 * w, 1)]
        self.blocks = nn.Sequential(*[_Basic(a, b, s) for a, b, s in chans])
        self.fc = nn.Linear(8 * w, num_classes)

    def forward(self, x):
        x = self.pool(torch.relu(self.stem(x)))
        x = self.blocks(x)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def mlp(din: int = 784, hidden: int = 256, classes: int = 10) -> nn.Module:
    return nn.Sequential(nn.Linear(din, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, classes))


def resnet18(num_classes: int = 1000, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return ResNet18(num_classes).eval()
