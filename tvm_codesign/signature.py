"""The inputs a compiled model takes (names, shapes, dtypes), and the check of a call's arguments against them."""
from __future__ import annotations

import numpy as np
from tvm import relax


class Signature:
    """``inputs``: [{"name", "shape" (ints; a dynamic dim is its name), "dtype"}, optionally "index_bound" n
    (an integer input used as a run-time index into an axis of size n: values must lie in [-n, n)) and
    "no_nan" (a float input of a quantised model: NaN has no int8 value)]; non-tensor parameters have
    ``dtype`` None and pass through unchecked."""

    def __init__(self, inputs: list[dict]):
        self.inputs = inputs

    @classmethod
    def of(cls, func: relax.Function, index_bounds: dict | None = None, quantised: bool = False) -> "Signature":
        out = []
        for p in func.params:
            t = p.ty
            if isinstance(t, relax.TensorType) and isinstance(t.shape, relax.ShapeExpr):
                shape = [int(d) if isinstance(d, int) or hasattr(d, "value") else str(d) for d in t.shape.values]
                out.append({"name": p.name, "shape": shape, "dtype": str(t.dtype)})
                if (index_bounds or {}).get(p.name) is not None and np.dtype(str(t.dtype)).kind in "iu":
                    out[-1]["index_bound"] = int(index_bounds[p.name])
                if quantised and np.dtype(str(t.dtype)).kind == "f":
                    out[-1]["no_nan"] = True
            else:
                out.append({"name": p.name, "shape": None, "dtype": None})
        return cls(out)

    @property
    def names(self) -> list[str]:
        return [i["name"] for i in self.inputs]

    def describe(self) -> str:
        return ", ".join(f"{i['name']}: {i['dtype']}{tuple(i['shape'])}" if i["dtype"] else i["name"]
                         for i in self.inputs)

    def bind(self, args: tuple, named: dict) -> list:
        """The call's arguments in parameter order, as C-contiguous arrays of the compiled dtypes (0-d stays 0-d).

        Raises TypeError for a wrong count, unknown or missing names, or a dtype that cannot be converted
        without changing values (floats to a float32 input are cast, float64 included; integers stay integers and
        converted only if every value fits), and ValueError for a shape other than the compiled one."""
        names = self.names
        if named:
            unknown = [n for n in named if n not in names]
            missing = [n for n in names[len(args):] if n not in named]
            twice = [n for n in names[:len(args)] if n in named]
            if unknown or missing or twice:
                raise TypeError(f"the model takes ({self.describe()}): " + "; ".join(
                    m for m in (unknown and f"unknown input(s) {unknown}", missing and f"missing {missing}",
                                twice and f"{twice} given by position and by name") if m))
            args = tuple(args) + tuple(named[n] for n in names[len(args):])
        if len(args) != len(names):
            raise TypeError(f"the model takes {len(names)} input(s) ({self.describe()}), got {len(args)}")
        return [self._check(spec, a) for spec, a in zip(self.inputs, args)]

    @staticmethod
    def _check(spec: dict, a):
        if spec["dtype"] is None:
            return a
        name, want = spec["name"], np.dtype(spec["dtype"])
        if hasattr(a, "detach"):
            a = a.detach().cpu().numpy()  # a torch tensor
        elif hasattr(a, "numpy") and not isinstance(a, (np.ndarray, np.generic)):
            a = a.numpy()  # a TVM tensor
        a = np.asarray(a)
        if a.dtype != want:
            floats = a.dtype.kind == "f" and want == np.float32
            ints = a.dtype.kind in "iu" and want.kind in "iu" and (
                a.size == 0 or np.iinfo(want).min <= a.min() and a.max() <= np.iinfo(want).max)
            if not (floats or ints or np.can_cast(a.dtype, want, "safe")):
                raise TypeError(f"input {name!r}: expected {want} data, got {a.dtype}"
                                + (" with values outside its range" if a.dtype.kind in "iu" and want.kind in "iu"
                                   else ""))
            a = a.astype(want)
        shape = spec["shape"]
        if a.ndim != len(shape) or any(isinstance(d, int) and d != g for d, g in zip(shape, a.shape)):
            raise ValueError(f"input {name!r}: expected shape {_fmt(shape)}, got {tuple(a.shape)}")
        n = spec.get("index_bound")
        if n is not None and a.size and (a.min() < -n or a.max() >= n):
            bad = a[(a < -n) | (a >= n)]
            raise ValueError(f"input {name!r} indexes an axis of size {n}: its values must lie in [{-n}, {n - 1}], "
                             f"got {bad.size} outside (e.g. {bad.flat[0]})")
        if spec.get("no_nan") and np.isnan(a).any():
            raise ValueError(f"input {name!r} has {int(np.isnan(a).sum())} NaN values, which the model's int8 "
                             "quantisation cannot represent")
        return np.asarray(a, order="C")


def _fmt(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
