"""``Task``: a trained model with its data splits, and its top-1 accuracy in fp32 or through a compiled model."""
from __future__ import annotations

import numpy as np
import torch

from . import train


def _whole(name: str, v, what: str = "") -> int | None:
    """``v`` checked: None or a whole number >= 1 (a negative ``limit`` would drop samples from the end instead)."""
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
        raise ValueError(f"{name} must be a whole number >= 1{what} or None, got {v!r}")
    return v


def _limit(limit) -> int | None:
    return _whole("limit", limit, " (the first N held-out samples)")


def _compiled_batch(model) -> int | None:
    """The batch a compiled model was built for (its first input's leading dimension), if it says."""
    sig = getattr(model, "signature", None)
    inputs = getattr(sig, "inputs", None) or []
    shape = inputs[0].get("shape") if inputs else None
    return shape[0] if shape and isinstance(shape[0], int) else None


class Task:
    """A built-in trained task (``tvm_codesign.tasks.load(name)``).

    ``model``: the trained torch module (eval mode); ``heldout``: (x, y) numpy arrays, never seen in training or
    calibration; ``calibration``: a few dozen samples of the calibration split as ``compile`` takes them
    ([(x,), ...], batch 1); ``example_input``: one sample, batch 1; ``meta``: the cache key, training time, file."""

    N_CALIBRATION = 32

    def __init__(self, name: str, recipe: dict, model: torch.nn.Module, splits: dict, meta: dict):
        self.name, self.recipe, self.model, self.splits, self.meta = name, recipe, model, splits, meta
        self.heldout = splits["heldout"]
        xc = splits["calibration"][0]
        self.calibration = [(xc[i:i + 1],) for i in range(min(self.N_CALIBRATION, len(xc)))]
        self.example_input = xc[:1]

    def inputs(self, batch: int = 1) -> np.ndarray:
        """An example input of ``batch`` samples (from the calibration split)."""
        return self._stack(self.splits["calibration"][0], batch)

    def calibration_batches(self, batch: int = 1) -> list[tuple]:
        """The calibration samples regrouped into inputs of ``batch`` samples (the last one filled from the
        start), for a model compiled at that batch."""
        x = np.concatenate([c[0] for c in self.calibration])
        return [(self._stack(np.roll(x, -i, 0), batch),) for i in range(0, len(x), batch)]

    @staticmethod
    def _stack(x: np.ndarray, batch: int) -> np.ndarray:
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        return np.resize(x, (batch, *x.shape[1:])).astype(x.dtype)

    def compile(self, target="vta_default", batch: int = 1, **options):
        """``tvm_codesign.compile`` of the trained model at ``batch``, calibrated on the calibration samples;
        ``options`` go to compile (requant, schedules, ...)."""
        from ..model import compile as compile_model
        return compile_model(self.model, target, example_inputs=(torch.from_numpy(self.inputs(batch)),),
                             calibration=self.calibration_batches(batch), **options)

    def fp32_accuracy(self, limit: int | None = None) -> float:
        """Top-1 of the torch model in fp32 on the held-out split (its first ``limit`` samples)."""
        x, y = (a[:_limit(limit)] for a in self.heldout)
        return float((train.predict(self.model, x) == y).mean())

    def predict(self, model, limit: int | None = None, batch: int | None = None) -> np.ndarray:
        """Top-1 classes of ``model`` (a compiled model, or any callable numpy batch -> logits) on the held-out
        split. Inputs go in ``batch`` samples per call: by default the batch a compiled model was built for
        (read from its signature), else 1; the last call is filled up with the split's first samples."""
        x = self.heldout[0][:_limit(limit)]
        b = _whole("batch", batch) or _compiled_batch(model) or 1
        out = []
        for i in range(0, len(x), b):
            chunk = x[i:i + b]
            if len(chunk) < b:
                chunk = np.concatenate([chunk, self._stack(x, b - len(chunk))])
            logits = np.asarray(model(chunk))
            out.append(logits.reshape(b, -1).argmax(1)[:min(b, len(x) - i)])
        return np.concatenate(out) if out else np.zeros(0, np.int64)

    def accuracy(self, model, limit: int | None = None, batch: int | None = None) -> float:
        """Top-1 accuracy (a fraction) of ``model`` on the held-out split, e.g. a ``tvm_codesign.compile``d model
        run bit-exactly on the simulator; see ``predict`` for ``limit`` and ``batch``."""
        y = self.heldout[1][:_limit(limit)]
        return float((self.predict(model, limit, batch) == y).mean()) if len(y) else float("nan")

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k} {len(v[1])}" for k, v in self.splits.items())
        return f"Task({self.name!r}: {sizes})"
