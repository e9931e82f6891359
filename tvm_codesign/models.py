"""Built-in models defined in code (no downloads), as torch modules in eval mode with fixed seeds.

ResNet-18 and MobileNetV2 have BatchNorm folded into their convolutions' biases (as after inference-time
fusion); the transformer encoder is written out op by op (Linear, batched matmul, softmax, LayerNorm) so
its attention matmuls are visible to the importers.
"""
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


class _InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand + ReLU6, 3x3 depthwise + ReLU6, 1x1 project, residual if shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hid = cin * expand
        self.expand = nn.Conv2d(cin, hid, 1) if expand != 1 else None
        self.dw = nn.Conv2d(hid, hid, 3, stride, 1, groups=hid)
        self.project = nn.Conv2d(hid, cout, 1)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = nn.functional.relu6(self.expand(x)) if self.expand is not None else x
        y = self.project(nn.functional.relu6(self.dw(y)))
        return x + y if self.residual else y


class MobileNetV2(nn.Module):
    """MobileNetV2 (Sandler et al. 2018, BatchNorm folded); ``width`` scales every channel count."""

    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1)]  # (expansion t, channels c, repeats n, first stride s)

    def __init__(self, num_classes: int = 1000, width: float = 1.0):
        super().__init__()
        ch = lambda c: max(8, int(c * width + 4) // 8 * 8)
        cin = ch(32)
        layers: list[nn.Module] = [nn.Conv2d(3, cin, 3, 2, 1), nn.ReLU6()]
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(_InvertedResidual(cin, ch(c), s if i == 0 else 1, t))
                cin = ch(c)
        last = max(1280, ch(1280))
        layers += [nn.Conv2d(cin, last, 1), nn.ReLU6()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(last, num_classes)

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


class _EncoderLayer(nn.Module):
    """Post-norm transformer encoder layer with explicit multi-head attention."""

    def __init__(self, dim: int, heads: int, ff: int):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.ff1, self.ff2 = nn.Linear(dim, ff), nn.Linear(ff, dim)
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x):
        b, s, d = x.shape
        h, dh = self.heads, d // self.heads
        split = lambda t: t.reshape(b, s, h, dh).permute(0, 2, 1, 3)  # (b, h, s, dh)
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        att = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * dh ** -0.5, dim=-1)
        y = torch.matmul(att, v).permute(0, 2, 1, 3).reshape(b, s, d)
        x = self.ln1(x + self.o(y))
        return self.ln2(x + self.ff2(torch.relu(self.ff1(x))))


class TransformerEncoder(nn.Module):
    """A small BERT-style encoder over (batch, seq, dim) float inputs, mean-pooled into class logits."""

    def __init__(self, dim: int = 64, heads: int = 4, ff: int = 256, layers: int = 2, num_classes: int = 10):
        super().__init__()
        self.layers = nn.Sequential(*[_EncoderLayer(dim, heads, ff) for _ in range(layers)])
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        return self.head(self.layers(x).mean(dim=1))


def mlp(din: int = 784, hidden: int = 256, classes: int = 10) -> nn.Module:
    return nn.Sequential(nn.Linear(din, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, classes))


def resnet18(num_classes: int = 1000, width: int = 64, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return ResNet18(num_classes, width).eval()


def mobilenet_v2(num_classes: int = 1000, width: float = 1.0, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return MobileNetV2(num_classes, width).eval()


def transformer_encoder(dim: int = 64, heads: int = 4, ff: int = 256, layers: int = 2, num_classes: int = 10,
                        seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return TransformerEncoder(dim, heads, ff, layers, num_classes).eval()


def mlp_model(seed: int = 0, **kw) -> nn.Module:
    torch.manual_seed(seed)
    return mlp(**kw).eval()


BUILTIN = {"resnet18": resnet18, "mobilenet_v2": mobilenet_v2, "transformer_encoder": transformer_encoder,
           "mlp": mlp_model}
