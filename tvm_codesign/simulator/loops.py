"""Index arithmetic shared by the GEMM and ALU executors: a micro-op loop nest's flattened indices, range checks."""
from __future__ import annotations

import numpy as np

from ..errors import SramAccessError


def rng(a: np.ndarray) -> tuple[int, int]:
    return int(a.min()), int(a.max()) + 1


def indices(uop: np.ndarray, c, i, fields) -> list[np.ndarray]:
    """Flattened (iter_out, iter_in, uop) index arrays of instruction ``i`` (columns ``c``), one per (uop column,
    out factor, in factor); ``uop``: the micro-op table, (depth, 3)."""
    u = uop[c["uop_bgn"][i]:c["uop_end"][i]]
    a = np.arange(c["iter_out"][i])[:, None, None]
    b = np.arange(c["iter_in"][i])[None, :, None]
    return [(u[:, col] + a * c[fo][i] + b * c[fi][i]).ravel() for col, fo, fi in fields]


def check_range(idx: np.ndarray, depth: int, i: int, field: str, buf: str):
    hi = int(idx.max())
    if hi >= depth:
        raise SramAccessError(i, field, f"{buf} index {hi} >= depth {depth} (micro-op plus loop factors)")


def as_slice(idx: np.ndarray):
    """A contiguous ascending index run as a slice (a view instead of a gather/scatter), else the array."""
    if idx.size and idx[-1] - idx[0] == idx.size - 1 and np.all(np.diff(idx) == 1):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx
