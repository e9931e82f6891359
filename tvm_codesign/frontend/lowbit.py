"""Low-bit numerics for post-training quantisation: weights at 8/4/2 bits, activations at 8/4 bits, 2:4 pruning.

All values live in int8 containers: b bits are the signed range [-2^(b-1), 2^(b-1) - 1] (4 bits: [-8, 7],
2 bits: [-2, 1]). A value x with scale s quantises to clip(round(x / s), lo, hi).

- ``quantize_weight``: symmetric scales per output channel (or per tensor), each channel's clipping threshold
  chosen from ``RATIOS`` x max|w| to minimise that channel's squared quantisation error (one numpy pass per
  ratio over the whole tensor).
- ``clip_from_histogram``: the activation clipping threshold that minimises the squared error of quantising
  the calibration data, from a histogram of its values (``HIST_BINS`` bins over [-max|x|, max|x|]).
- ``prune_2_4``: in every group of 4 consecutive values along the GEMM reduction dimension (a conv's input
  channels at each output channel and kernel position, a matmul's K), keep the 2 largest magnitudes.
"""
from __future__ import annotations

import numpy as np

RATIOS = np.linspace(0.1, 1.0, 46)  # clipping threshold / max|x|, step 0.02
HIST_BINS = 2048


def qrange(bits: int) -> tuple[int, int]:
    """The signed integer range of ``bits`` bits."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _best_scales(m: np.ndarray, bits: int) -> np.ndarray:
    """Per row of ``m`` (rows x values), the scale from ``RATIOS`` x max|row| / hi with the least squared error."""
    lo, hi = qrange(bits)
    amax = np.abs(m).max(axis=1)
    amax[amax == 0] = 1.0  # an all-zero row quantises to zeros at any scale
    best, err = amax / hi, np.full(m.shape[0], np.inf)
    for r in RATIOS:
        s = (r * amax / hi)[:, None]
        e = ((np.clip(np.round(m / s), lo, hi) * s - m) ** 2).sum(axis=1)
        better = e < err
        best[better], err[better] = s[better, 0], e[better]
    return best


def quantize_weight(w: np.ndarray, bits: int, axis: int, per_channel: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``w`` (float) -> (int8 values in the ``bits`` range, float64 scale per channel along ``axis``); with
    ``per_channel=False`` one scale for the whole tensor, repeated per channel."""
    w = np.asarray(w, np.float64)
    m = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    s = _best_scales(m if per_channel else m.reshape(1, -1), bits)
    s = np.broadcast_to(s, (w.shape[axis],)).copy()
    shape = [1] * w.ndim
    shape[axis] = -1
    lo, hi = qrange(bits)
    return np.clip(np.round(w / s.reshape(shape)), lo, hi).astype(np.int8), s


def histogram(x: np.ndarray, amax: float) -> np.ndarray:
    """Counts of ``x`` in ``HIST_BINS`` equal bins over [-amax, amax] (values outside land in the end bins)."""
    if amax <= 0:
        return np.zeros(HIST_BINS, np.int64)
    i = np.floor((np.asarray(x, np.float64).ravel() / amax + 1.0) * (HIST_BINS / 2)).astype(np.int64)
    return np.bincount(np.clip(i, 0, HIST_BINS - 1), minlength=HIST_BINS)


def clip_from_histogram(hist: np.ndarray, amax: float, bits: int) -> float:
    """The clipping threshold c (scale c / hi) from ``RATIOS`` x amax with the least squared error over the
    histogram ``hist`` of values in [-amax, amax] (``histogram``)."""
    if amax <= 0 or hist.sum() == 0:
        return float(amax)
    lo, hi = qrange(bits)
    centres = (np.arange(HIST_BINS) + 0.5) / (HIST_BINS / 2) * amax - amax
    s = (RATIOS * amax / hi)[:, None]
    err = (hist[None, :] * (np.clip(np.round(centres / s), lo, hi) * s - centres) ** 2).sum(axis=1)
    return float(RATIOS[int(np.argmin(err))] * amax)


def prune_2_4(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """(w with 2 of every 4 consecutive values along ``axis`` zeroed, boolean keep mask of w's shape). The axis
    is zero-padded to a multiple of 4 (padding counts as values of magnitude 0); ties keep the earlier value."""
    w = np.asarray(w)
    a = np.moveaxis(w, axis, -1)
    k = a.shape[-1]
    pad = -k % 4
    g = np.abs(np.concatenate([a, np.zeros(a.shape[:-1] + (pad,), a.dtype)], axis=-1)) if pad else np.abs(a)
    g = g.reshape(a.shape[:-1] + (-1, 4))
    top = np.argsort(-g, axis=-1, kind="stable")[..., :2]
    keep = np.zeros(g.shape, bool)
    np.put_along_axis(keep, top, True, axis=-1)
    keep = np.moveaxis(keep.reshape(a.shape[:-1] + (k + pad,))[..., :k], -1, axis)
    return np.where(keep, w, 0).astype(w.dtype), keep
