"""Per-layer precision and 2:4 sparsity options of ``compile``: layer names and the mode of every layer.

A layer is a quantisation target (frontend/quantize.py): a float conv2d, a matmul with a constant weight
(``dense``) or a matmul of two activations (``matmul``), named ``<kind>_<i>`` with i counting that kind in
program order (``conv2d_0``, ``conv2d_1``, ``dense_0``); ``CompiledModel.profile()`` lists each kernel's layers
under these names. ``precision``: None (int8 everywhere, today's quantiser), a string ``"w4a8"`` or a pair
``(w_bits, a_bits)`` for every layer, or ``{layer: (w_bits, a_bits) | "w4a8"}`` (unnamed layers stay
``w8a8``). Weights take 8, 4 or 2 bits, activations 8 or 4 (a matmul of two activations: its first operand
at a_bits, its second at w_bits). ``sparsity``: None, ``"2:4"`` for every layer with a constant weight, or
``{layer: "2:4" | None}``.
"""
from __future__ import annotations

import numbers
import re

from tvm.ir.expr import Constant

from ..hardware.modes import Mode  # noqa: F401 (a layer's mode: weight / activation bits, 2:4)

W_BITS = (8, 4, 2)
A_BITS = (8, 4)
SPARSITY = ("2:4",)


INT8 = Mode()


def kind(bd) -> str:
    """``conv2d``, ``dense`` (constant weight) or ``matmul`` (two activations) of a quantisation target."""
    v = bd.value
    if v.op.name == "relax.nn.conv2d":
        return "conv2d"
    return "dense" if isinstance(v.args[1], Constant) else "matmul"


def layer_names(targets: list) -> list[str]:
    """``<kind>_<i>`` for each quantisation target binding, in order."""
    seen: dict = {}
    out = []
    for bd in targets:
        k = kind(bd)
        out.append(f"{k}_{seen.get(k, 0)}")
        seen[k] = seen.get(k, 0) + 1
    return out


def _bits(v, layer: str) -> tuple[int, int]:
    if isinstance(v, str):
        m = re.fullmatch(r"w(\d+)a(\d+)", v.strip().lower())
        if not m:
            raise ValueError(f"precision of {layer}: {v!r} is not of the form 'w<bits>a<bits>', e.g. 'w4a8'")
        v = (int(m.group(1)), int(m.group(2)))
    try:
        w, a = v
    except (TypeError, ValueError):
        raise ValueError(f"precision of {layer}: give (w_bits, a_bits) or a string like 'w4a8', got {v!r}") from None
    if not all(isinstance(b, numbers.Integral) and not isinstance(b, bool) for b in (w, a)):
        raise ValueError(f"precision of {layer}: bits must be whole numbers, e.g. (4, 8); got {v!r}")
    w, a = int(w), int(a)
    if w not in W_BITS:
        raise ValueError(f"precision of {layer}: weight bits must be one of {W_BITS}, got {w}")
    if a not in A_BITS:
        raise ValueError(f"precision of {layer}: activation bits must be one of {A_BITS}, got {a}")
    return w, a


def _per_layer(option, what: str, names: list[str]) -> dict:
    """``option`` as {layer: value}: one value for all layers, or a dict whose keys must be layer names."""
    if not isinstance(option, dict):
        return dict.fromkeys(names, option)
    bad = [k for k in option if k not in names]
    if bad:
        raise ValueError(f"{what}: no layer named {', '.join(map(repr, bad))}; the model's layers are "
                         f"{', '.join(names) if names else '(none)'} (CompiledModel.profile() lists them)")
    return dict(option)


def modes(targets: list, precision=None, sparsity=None) -> dict | None:
    """{layer name: Mode} for every target, or None when neither option is given (today's int8 quantiser)."""
    if precision is None and sparsity is None:
        return None
    names = layer_names(targets)
    bits = {n: _bits(v, n) for n, v in _per_layer(precision, "precision", names).items() if v is not None}
    sparse = {}
    for n, v in _per_layer(sparsity, "sparsity", names).items():
        if v is None:
            continue
        if v not in SPARSITY:
            raise ValueError(f"sparsity of {n}: only '2:4' is supported, got {v!r}")
        sparse[n] = True
    out = {}
    for n, bd in zip(names, targets):
        if sparse.get(n) and kind(bd) == "matmul":
            if not isinstance(sparsity, dict):
                sparse[n] = False  # "2:4" for all layers: those with a constant weight
            else:
                raise ValueError(f"sparsity of {n}: a matmul of two activations has no constant weight to prune")
        w, a = bits.get(n, (8, 8))
        out[n] = Mode(w, a, bool(sparse.get(n)))
    return out
