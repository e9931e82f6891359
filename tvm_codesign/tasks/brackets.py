"""``brackets``: is a string of 24 brackets balanced (a Dyck-1 word)? A small causal transformer decides.

Tokens: 1 = "(", 0 = ")". Half of every split is balanced words (random arrangements of 12 "(" and 12 ")",
kept when the depth never drops below 0). The other half is unbalanced: 1/2 near misses (a balanced word with one
"()" at depth 0 turned into ")(", so the depth dips to -1 once and ends at 0; from the words that have one),
1/4 random arrangements of 12 and 12 that are not balanced, 1/4 random strings with unequal counts. Counting
alone decides only the last kind (62.5 % at best); the near misses need the running depth at every position. Train, calibration and held-out splits are drawn with
their own seeds, and held-out and calibration strings that also occur in training are dropped.

The model: token + learned position embeddings (d_model 32), two pre-norm encoder layers (2 heads, causal
mask as an added constant, feed-forward 64, ReLU), final LayerNorm, mean over positions, linear -> 2 classes.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

RECIPE = {"length": 24, "train": 24000, "calibration": 256, "heldout": 1000, "seeds": [0, 1, 2], "dim": 32,
          "heads": 2, "ff": 64, "layers": 2, "epochs": 8, "batch": 128, "lr": 1.5e-3, "weight_decay": 0.01,
          "clip": 1.0, "seed": 0}


def balanced(s: np.ndarray) -> np.ndarray:
    d = np.cumsum(2 * s.astype(np.int64) - 1, axis=1)
    return (d.min(1) >= 0) & (d[:, -1] == 0)


def generate(n: int, length: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n strings (int64 tokens) and labels (1 balanced), shuffled; see the module docstring for the mix."""
    rng = np.random.RandomState(seed)

    def even(m):  # m random arrangements of length/2 opening and length/2 closing brackets
        s = np.zeros((m, length), np.int64)
        np.put_along_axis(s, rng.rand(m, length).argsort(1)[:, :length // 2], 1, 1)
        return s

    pos = np.zeros((0, length), np.int64)
    while len(pos) < n // 2:  # about 1 in 13 arrangements of 12 and 12 is balanced
        s = even(16 * n)
        pos = np.concatenate([pos, s[balanced(s)]])
    pos = pos[:n // 2]
    near = pos[rng.randint(0, len(pos), 4 * n)].copy()
    depth = np.cumsum(2 * near - 1, 1)
    at0 = np.concatenate([np.ones((len(near), 1), bool), depth[:, :-2] == 0], 1)  # depth 0 before position j
    cand = (near[:, :-1] == 1) & (near[:, 1:] == 0) & at0
    near, cand = near[cand.any(1)], cand[cand.any(1)]  # words with a "()" at depth 0 (about half of them)
    j = (rng.rand(*cand.shape) * cand).argmax(1)
    rows = np.arange(len(near))
    near[rows, j], near[rows, j + 1] = 0, 1
    n_near = (n - len(pos)) // 2
    near = near[:n_near]
    ev = even(4 * n)
    ev = ev[~balanced(ev)][:(n - len(pos) - n_near) // 2]
    un = rng.randint(0, 2, (4 * n, length))
    un = un[un.sum(1) != length // 2][:n - len(pos) - n_near - len(ev)]
    x = np.concatenate([pos, near, ev, un]).astype(np.int64)
    y = np.r_[np.ones(len(pos)), np.zeros(len(x) - len(pos))].astype(np.int64)
    p = rng.permutation(len(x))
    return x[p], y[p]


def _without(x, y, seen: set):
    keep = np.array([r.tobytes() not in seen for r in x], bool)
    return x[keep], y[keep]


def data(r: dict) -> dict:
    s_train, s_cal, s_held = r["seeds"]
    train = generate(r["train"], r["length"], s_train)
    seen = {row.tobytes() for row in train[0]}
    cal = _without(*generate(r["calibration"] * 2, r["length"], s_cal), seen)
    held = _without(*generate(r["heldout"] * 2, r["length"], s_held), seen)
    return {"train": train, "calibration": tuple(a[:r["calibration"]] for a in cal),
            "heldout": tuple(a[:r["heldout"]] for a in held)}


class _Layer(nn.Module):
    """Pre-norm encoder layer: causal multi-head attention written out (Linear, batched matmul, softmax)."""

    def __init__(self, dim: int, heads: int, ff: int):
        super().__init__()
        self.heads = heads
        self.qkv, self.o = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.ff1, self.ff2 = nn.Linear(dim, ff), nn.Linear(ff, dim)
        self.n1, self.n2 = nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x, mask):
        b, n, d = x.shape
        h = self.heads
        q, k, v = self.qkv(self.n1(x)).reshape(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4)
        att = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * (d // h) ** -0.5 + mask, dim=-1)
        x = x + self.o(torch.matmul(att, v).permute(0, 2, 1, 3).reshape(b, n, d))
        return x + self.ff2(torch.relu(self.ff1(self.n2(x))))


class BracketTransformer(nn.Module):
    """Token ids (batch, length) int64 -> logits (batch, 2): not balanced / balanced."""

    def __init__(self, length: int = 24, dim: int = 32, heads: int = 2, ff: int = 64, layers: int = 2):
        super().__init__()
        self.emb = nn.Embedding(2, dim)
        self.pos = nn.Parameter(torch.randn(length, dim) * 0.1)
        self.layers = nn.ModuleList(_Layer(dim, heads, ff) for _ in range(layers))
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, 2)
        self.register_buffer("mask", torch.triu(torch.full((length, length), -1e4), 1))

    def forward(self, tokens):
        x = self.emb(tokens) + self.pos
        for layer in self.layers:
            x = layer(x, self.mask)
        return self.head(self.norm(x).mean(1))


def build(r: dict) -> nn.Module:
    return BracketTransformer(r["length"], r["dim"], r["heads"], r["ff"], r["layers"])


def augment(r: dict):
    return None
