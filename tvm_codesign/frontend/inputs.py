"""Sample inputs checked against a Relax function's parameters and converted to their declared dtypes.

Float parameters take float or integer data (cast to the declared float dtype, e.g. float64 -> float32) and
refuse NaN/Inf; integer parameters (embedding ids) take integer data that fits the declared dtype, never
floats; static dims must match. Every error names the sample, the input and what was expected.
"""
from __future__ import annotations

import numpy as np
from tvm import relax


def _declared(p: relax.Var) -> tuple[np.dtype, list]:
    dims = [int(d) if hasattr(d, "value") or isinstance(d, int) else None for d in p.ty.shape]
    return np.dtype(str(p.ty.dtype)), dims


def convert(params, sample, where: str) -> list[np.ndarray]:
    """One input tuple for ``params`` (a function's parameters), each input as a contiguous array of the
    declared dtype; ``where`` names the sample in errors (e.g. "calibration sample 3")."""
    sample = sample if isinstance(sample, (tuple, list)) else (sample,)
    names = [p.name for p in params]
    if len(sample) != len(params):
        raise ValueError(f"{where}: {len(sample)} inputs given, the model takes {len(params)} ({', '.join(names)})")
    out = []
    for p, a in zip(params, sample):
        what = f"{where}, input '{p.name}'"
        try:
            a = np.asarray(a.detach().cpu().numpy() if hasattr(a, "detach") else a)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{what}: cannot be read as an array ({e})") from e
        want, dims = _declared(p)
        if a.ndim != len(dims) or any(d is not None and d != s for d, s in zip(dims, a.shape)):
            shape = tuple("?" if d is None else d for d in dims)
            raise ValueError(f"{what} has shape {a.shape}, the model expects {shape}")
        kind = a.dtype.kind
        if want.kind == "f":
            if kind not in "fiu":
                raise ValueError(f"{what} is {a.dtype}, the model expects {want} (float data)")
            if kind == "f" and not np.isfinite(a).all():
                raise ValueError(f"{what} has {int((~np.isfinite(a)).sum())} non-finite values (NaN/Inf)")
        elif want.kind in "iu":
            if kind not in "iu":
                raise ValueError(f"{what} is {a.dtype}, the model expects {want} (integer data)")
            info = np.iinfo(want)
            if a.size and (a.min() < info.min or a.max() > info.max):
                raise ValueError(f"{what} has values outside {want}'s range [{info.min}, {info.max}]")
        elif want != a.dtype:
            raise ValueError(f"{what} is {a.dtype}, the model expects {want}")
        out.append(np.ascontiguousarray(a, dtype=want))
    return out
