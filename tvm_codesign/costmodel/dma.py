"""DMA rows for the analytical model, vectorised: the port cycles of simulator/dma.py in closed form.

A row of B bytes costs its whole beats plus ``dma_request_cycles`` per burst; where a row starts decides how
many partial beats and burst boundaries it has. The compiled program puts every tensor at a 4 KiB-aligned
offset (runtime/kernel.py), and a row starts at the tensor's base plus a multiple of the element size times
the row pitch and the tile steps (``alignment``). Beats and bursts are powers of two bytes on a real bus, so
only the power-of-two part of that alignment matters: ``alignment`` returns it (min of the lowest set bits; a
gcd per candidate would cost 50 multiplies). Over the starts, every multiple ``a`` of the alignment within a
beat or a burst is taken as equally likely: Hermite's identity (sum over j < M of floor(x + j/M) = floor(M x))
gives the mean beats 1 + (ceil(B/g) - 1) g/w with g = gcd(a, w) and the mean bursts
1 + floor((B - 1)/g') g'/(burst w) with g' = gcd(a, burst w), exact over whole periods of starts. A bus width
that is not a power of two is taken by the power of two dividing it; one that is not a whole number of bytes
has no byte alignment (rows are then taken as beat- and burst-aligned). ``stall`` is the in-flight limit of
simulator/dma.py for equal requests.
"""
from __future__ import annotations

import numpy as np

ALIGNED = 1 << 40  # alignment of a copy whose rows all start at the tensor's (4 KiB-aligned) base


def _lowbit(x):
    x = np.asarray(x, np.int64)
    return np.where(x > 0, x & -x, ALIGNED)


def alignment(elem_bytes, *steps) -> np.ndarray:
    """The power of two every row start of a copy is a multiple of (bytes): the element size times the lowest
    set bit common to the steps in elements (row pitch, tile offsets; 0 for a step that never moves)."""
    low = np.full(np.shape(elem_bytes), ALIGNED, np.int64)
    for s in steps:
        low = np.minimum(low, _lowbit(s))
    return np.minimum(low * _lowbit(elem_bytes), ALIGNED)


class Bus:
    """Per-candidate bus (``w`` bytes per beat, ``burst`` beats per request, ``q`` request cycles), arrays."""

    def __init__(self, w, burst, q):
        self.w = np.asarray(w, np.float64)
        self.whole = self.w == np.round(self.w)
        wi = np.where(self.whole, np.round(self.w), 1).astype(np.int64)
        self.beat_low, self.burst_low = _lowbit(wi), _lowbit(wi * np.asarray(burst, np.int64))
        self.burst_bytes = self.w * np.asarray(burst)
        self.q = np.asarray(q, np.float64)

    def _map(self, f) -> "Bus":
        b = Bus.__new__(Bus)
        for k, v in vars(self).items():
            setattr(b, k, f(v))
        return b

    def column(self) -> "Bus":
        """The same bus shaped (n, 1), to broadcast over (n, k) rows."""
        return self._map(lambda v: v[:, None])

    def take(self, idx) -> "Bus":
        """The bus of the candidates ``idx``."""
        return self._map(lambda v: v[idx])

    def row(self, nbytes, align) -> tuple[np.ndarray, np.ndarray]:
        """Mean (port cycles, AXI requests) of one DMA row of ``nbytes`` bytes starting at a multiple of
        ``align`` (a power of two, ``alignment``); 0 for 0 bytes."""
        b = np.asarray(nbytes, np.float64)
        g = np.where(self.whole, np.minimum(align, self.beat_low), self.w)
        gb = np.where(self.whole, np.minimum(align, self.burst_low), self.burst_bytes)
        beats = 1 + (np.ceil(b / g) - 1) * (g / self.w)
        bursts = 1 + np.floor(np.maximum(b - 1, 0) / gb) * (gb / self.burst_bytes)
        some = b > 0
        return np.where(some, beats + self.q * bursts, 0), np.where(some, bursts, 0)


def stall(rows, port_row, req_row, n, lat):
    """Extra port cycles of one DMA of ``rows`` rows (mean ``port_row`` cycles and ``req_row`` requests each)
    with at most ``n`` requests in flight, as for R equal requests of t cycles in simulator/dma.py:
    floor((R - 1)/n) * max(lat - (n - 1) t, 0)."""
    R = rows * req_row
    t = port_row / np.maximum(req_row, 1e-9)
    return np.where(R > n, np.floor(np.maximum(R - 1, 0) / n) * np.maximum(lat - (n - 1) * t, 0), 0)
