"""Index normalisation: a Relax rewrite that gives every indexing op Python's negative-index semantics.

TVM's PyTorch importer passes torch's indices through unchecked: ``x[:, -1]`` becomes
``take(x, -1, axis=1, mode="fast")``, which reads out of bounds (and TVM warns "Fast mode segfaults" at build).
``normalize_indices`` rewrites, for take, index_tensor, index_put, gather_elements, scatter_elements and
strided_slice:
- a constant index: ``i < 0`` becomes ``i + n`` (n the size of the indexed dimension); an index still outside
  ``[0, n)`` raises ``ModelImportError`` naming the op;
- an index computed at run time: ``take`` wraps (``mode="wrap"``), the others index with ``floor_mod(i, n)``,
  which is ``i + n`` for ``-n <= i < 0`` and never reads outside the tensor;
- strided_slice's constant begin/end (positive strides): ``b < 0`` becomes ``b + n``, then both clamp to
  ``[0, n]``, as torch slices;
- slice_scatter (bounds already normalised by the importer): a ``where`` over a constant mask and a ``take`` of
  the source, because TVM's legalization takes from the source in fast mode with indices past its end.

A run-time index that is a model input (or a cast or reshape of one: token ids into an embedding) is
recorded in ``bounds`` ({input name: size of the smallest axis it indexes}), so a compiled model refuses ids
outside ``[-n, n)`` at call time instead of wrapping them into a wrong row.
"""
from __future__ import annotations

import math

import numpy as np
import tvm
from tvm import relax
from tvm.ir.expr import Constant

from .onnx_import import ModelImportError


def _dims(e) -> list | None:
    """Static shape of a tensor expression, None where any dim is symbolic."""
    try:
        return [int(d) for d in e.ty.shape]
    except (TypeError, AttributeError):
        return None


def _shape(e) -> str:
    return "(" + ", ".join(str(d) for d in e.ty.shape) + ")"


def _axis(axis, ndim: int) -> int:
    return int(axis) + ndim if int(axis) < 0 else int(axis)


class _Rewrite:
    """The per-op fixes; ``bb`` emits the extra bindings a run-time index needs."""

    def __init__(self, mutator):
        self.m = mutator

    def const(self, e) -> np.ndarray | None:
        """The value of an index known at import time: a constant, or an astype of one."""
        if isinstance(e, relax.Var):
            b = self.m.lookup_binding(e)
            if isinstance(b, relax.Call) and getattr(b.op, "name", None) == "relax.astype" \
                    and isinstance(b.args[0], Constant):
                return b.args[0].value.numpy().astype(str(b.attrs.dtype))
            return None
        return e.value.numpy() if isinstance(e, Constant) else None

    def index(self, op: str, idx, n: int | None, what: str, wrap_ok: bool = False):
        """``idx`` made non-negative for a dimension of size ``n``."""
        c = self.const(idx)
        if c is not None and n is not None:
            bad = c[(c < -n) | (c >= n)]
            if bad.size:
                raise ModelImportError(f"{op}: index {int(bad.flat[0])} is out of range for {what} (size {n})")
            return relax.const(np.where(c < 0, c + n, c).astype(str(idx.ty.dtype)))
        if n is not None:
            self.bound(idx, n)
        if wrap_ok:
            return None  # the caller wraps
        if n is None:
            raise ModelImportError(f"{op}: an index into {what}, whose size is not static, cannot be checked; "
                                   "give static input shapes")
        return self.m.builder_.emit(relax.op.floor_mod(idx, relax.const(n, str(idx.ty.dtype))))

    def bound(self, idx, n: int) -> None:
        """Record ``n`` for the model input ``idx`` holds (directly, or cast / reshaped), if it holds one."""
        while isinstance(idx, relax.Var) and idx.name not in self.m.params:
            b = self.m.lookup_binding(idx)
            name = getattr(b.op, "name", None) if isinstance(b, relax.Call) else None
            if name in _SAME_VALUES:
                idx = b.args[0]
            elif name == "relax.where" and self._negative(b.args[0], b.args[2]) \
                    and self._plus_n(b.args[1], b.args[2]):
                idx = b.args[2]  # where(i < 0, i + n, i): ONNX Gather's own negative-index fix
            else:
                return
        if isinstance(idx, relax.Var) and self.m.lookup_binding(idx) is None:
            self.m.bounds[idx.name] = min(n, self.m.bounds.get(idx.name, n))

    def take(self, call):
        x, idx = call.args
        shape = _dims(x)
        axis = None if call.attrs.axis is None else _axis(call.attrs.axis, x.ty.ndim)
        n = None if shape is None else (math.prod(shape) if axis is None else shape[axis])
        what = "the flattened tensor" if axis is None else f"axis {axis} of shape {_shape(x)}"
        new = self.index("take", idx, n, what, wrap_ok=True)
        if new is None:  # a run-time index: wrap it (fast mode reads out of bounds)
            mode = "wrap" if str(call.attrs.mode) == "fast" else str(call.attrs.mode)
            return relax.op.take(x, idx, call.attrs.axis, mode=mode)
        return relax.op.take(x, new, call.attrs.axis, mode="clip")  # in range now; clip is free of fast's warning

    def _bound_to(self, v, op: str, i):
        """The binding of ``v`` if it is ``op(i, other)``, else None."""
        b = self.m.lookup_binding(v) if isinstance(v, relax.Var) else None
        ok = isinstance(b, relax.Call) and getattr(b.op, "name", None) == op and b.args[0].same_as(i)
        return b if ok else None

    def _plus_n(self, a, i) -> bool:
        return self._bound_to(a, "relax.add", i) is not None

    def _negative(self, c, i) -> bool:
        """``c`` is ``i < 0``."""
        b = self._bound_to(c, "relax.less", i)
        return b is not None and (k := self.const(b.args[1])) is not None and k.size == 1 and int(k) == 0

    def _per_axis(self, op: str, x, indices) -> list:
        shape = _dims(x)
        return [self.index(op, t, None if shape is None else shape[k], f"axis {k} of shape {_shape(x)}")
                for k, t in enumerate(indices)]

    def index_tensor(self, call):
        x, ind = call.args
        return relax.op.index_tensor(x, self._per_axis("index_tensor", x, list(ind.fields)))

    def index_put(self, call):
        x, ind, values = call.args
        new = self._per_axis("index_put", x, list(ind.fields))
        return relax.op.index_put(x, relax.Tuple(new), values, bool(call.attrs.accumulate))

    def _elements(self, op: str, call):
        x, idx = call.args[0], call.args[1]
        axis = _axis(call.attrs.axis, x.ty.ndim)
        shape = _dims(x)
        return axis, self.index(op, idx, None if shape is None else shape[axis],
                                f"axis {axis} of shape {_shape(x)}")

    def gather_elements(self, call):
        axis, idx = self._elements("gather_elements", call)
        return relax.op.gather_elements(call.args[0], idx, axis)

    def scatter_elements(self, call):
        axis, idx = self._elements("scatter_elements", call)
        return relax.op.scatter_elements(call.args[0], idx, call.args[2], axis, str(call.attrs.reduction))

    def strided_slice(self, call):
        x, axes, begin, end, strides = call.args
        shape = _dims(x)
        try:
            axes, begin, end, strides = ([int(v) for v in t.fields] for t in (axes, begin, end, strides))
        except (TypeError, AttributeError):
            return call  # symbolic bounds: TVM canonicalises them
        if shape is None or any(s <= 0 for s in strides):
            return call
        b2, e2 = [], []
        for a, b, e in zip(axes, begin, end):
            n = shape[_axis(a, len(shape))]
            b = min(max(b + n if b < 0 else b, 0), n)
            e = min(max(e + n if e < 0 else e, 0), n)
            b2.append(b), e2.append(max(e, b))
        return relax.op.strided_slice(x, axes, b2, e2, strides, assume_inbound=True)

    def slice_scatter(self, call):
        """x with src written to [start:end:step] along an axis, as where(mask, take(src, j), x): TVM's own
        legalization takes from src in fast mode with indices up to the size of x."""
        x, src = call.args[0], call.args[1]
        shape, src_shape = _dims(x), _dims(src)
        try:
            start, end, step = (int(a.value) for a in call.args[2:5])
        except (TypeError, AttributeError):
            start = None
        if start is None or shape is None or src_shape is None:
            raise ModelImportError(f"slice_scatter of {_shape(src)} into {_shape(x)}: shapes and bounds must be static")
        axis = _axis(call.attrs.axis, len(shape))
        pos = np.arange(shape[axis])
        j, m = (pos - start) // step, src_shape[axis]
        mask = (pos >= start) & (pos < end) & ((pos - start) % step == 0)
        if int(mask.sum()) != m:
            raise ModelImportError(f"slice_scatter: the slice {start}:{end}:{step} of axis {axis} of {_shape(x)} has "
                                   f"{int(mask.sum())} elements, the source {m}")
        bb, op = self.m.builder_, relax.op
        taken = bb.emit(op.take(src, relax.const(np.clip(j, 0, m - 1).astype("int64")), axis, mode="clip"))
        view = [1] * len(shape)
        view[axis] = shape[axis]
        return op.where(relax.const(mask.reshape(view)), taken, x)


_SAME_VALUES = {f"relax.{k}" for k in ("astype", "reshape", "permute_dims", "expand_dims", "squeeze", "flatten")}
_OPS = {f"relax.{k}" for k in ("take", "index_tensor", "index_put", "gather_elements", "scatter_elements",
                               "strided_slice", "slice_scatter")}


@relax.expr_functor.mutator
class _Mutator(relax.PyExprMutator):
    def __init__(self, mod):
        super().__init__(mod)
        self.fix = _Rewrite(self)
        self.error = None
        self.params: set = set()  # parameter names of the function being rewritten
        self.bounds: dict = {}

    def visit_call_(self, call):
        call = self.visit_expr_post_order(call)
        name = getattr(call.op, "name", None)
        if name not in _OPS or self.error:
            return call
        try:
            return getattr(self.fix, name[len("relax."):])(call)
        except ModelImportError as e:  # raised again outside: through TVM's FFI it would become a RuntimeError
            self.error = e
            return call


def normalize_indices(mod: tvm.IRModule, bounds: dict | None = None) -> tvm.IRModule:
    """Every Relax function of ``mod`` with its indices normalised (see the module docstring); ``bounds``, if
    given, receives main's inputs used as run-time indices: {name: axis size}."""
    m = _Mutator(mod)
    for gv, f in mod.functions.items():
        if isinstance(f, relax.Function):
            m.params, m.bounds = {p.name for p in f.params}, {}
            m.builder_.update_func(gv, m.visit_expr(f))
            if bounds is not None and gv.name_hint == "main":
                bounds.update(m.bounds)
        if m.error:
            raise m.error
    return m.builder_.get()
