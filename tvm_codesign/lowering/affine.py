"""Integer TIR expressions as Python: compiled evaluators and affine coefficient extraction.

``compile_expr(e)`` turns an index/predicate expression into a closure over an environment
``{Var: int}``; ``coefficients(e, vars)`` returns the constant coefficient of each var when ``e`` is
affine in them (None otherwise). Lowering evaluates constants per enumerated tile and folds the
affine loops into instruction fields.
"""
from __future__ import annotations

from typing import Callable

from tvm import tirx

from ..errors import CodesignError

Env = dict


class LoweringError(CodesignError, ValueError):
    """The tensorized TIR has a shape the accelerator lowering does not handle; says where and why."""


def _floordiv(a: int, b: int) -> int:
    return a // b


_BIN = {
    tirx.Add: lambda a, b: a + b,
    tirx.Sub: lambda a, b: a - b,
    tirx.Mul: lambda a, b: a * b,
    tirx.FloorDiv: _floordiv,
    tirx.FloorMod: lambda a, b: a % b,
    tirx.Div: lambda a, b: int(a / b),  # truncating division
    tirx.Mod: lambda a, b: a - b * int(a / b),
    tirx.Min: min,
    tirx.Max: max,
    tirx.LT: lambda a, b: a < b,
    tirx.LE: lambda a, b: a <= b,
    tirx.GT: lambda a, b: a > b,
    tirx.GE: lambda a, b: a >= b,
    tirx.EQ: lambda a, b: a == b,
    tirx.NE: lambda a, b: a != b,
    tirx.And: lambda a, b: a and b,
    tirx.Or: lambda a, b: a or b,
}


def compile_expr(e) -> Callable[[Env], int]:
    """A closure evaluating an integer/boolean TIR expression in an environment of loop values."""
    if isinstance(e, int):
        return lambda env: e
    if isinstance(e, tirx.IntImm):
        v = int(e.value)
        return lambda env: v
    if isinstance(e, tirx.Var):
        def var(env, e=e):
            try:
                return env[e]
            except KeyError:
                raise LoweringError(f"variable {e.name} is not bound to a loop here") from None
        return var
    if isinstance(e, tirx.Cast):
        return compile_expr(e.value)
    for cls, fn in _BIN.items():
        if isinstance(e, cls):
            a, b = compile_expr(e.a), compile_expr(e.b)
            return lambda env: fn(a(env), b(env))
    if isinstance(e, tirx.Not):
        a = compile_expr(e.a)
        return lambda env: not a(env)
    if isinstance(e, tirx.Select):
        c, t, f = compile_expr(e.condition), compile_expr(e.true_value), compile_expr(e.false_value)
        return lambda env: t(env) if c(env) else f(env)
    raise LoweringError(f"cannot evaluate {type(e).__name__} expression {e}")


def coefficients(e, loop_vars) -> list[int] | None:
    """Integer coefficient of each loop var if ``e`` is affine in them with constant coefficients."""
    try:
        lin = _linear(e, {v: i for i, v in enumerate(loop_vars)})
    except _NonAffine:
        return None
    out = [0] * len(loop_vars)
    for i, c in lin.items():
        out[i] = c
    return out


class _NonAffine(Exception):
    pass


def _uses(e, index: dict) -> bool:
    if isinstance(e, tirx.Var):
        return e in index
    if isinstance(e, (tirx.IntImm, int)):
        return False
    if isinstance(e, tirx.Cast):
        return _uses(e.value, index)
    if hasattr(e, "a") and hasattr(e, "b"):
        return _uses(e.a, index) or _uses(e.b, index)
    return True  # unknown node: assume it may depend on the loop vars


def _const(e) -> int | None:
    if isinstance(e, tirx.IntImm):
        return int(e.value)
    if isinstance(e, tirx.Cast):
        return _const(e.value)
    return None


def _linear(e, index: dict) -> dict:
    """{var position: coefficient} of the loop-var part of e; the rest must not involve loop vars."""
    if not _uses(e, index):
        return {}
    if isinstance(e, tirx.Var):
        return {index[e]: 1}
    if isinstance(e, tirx.Cast):
        return _linear(e.value, index)
    if isinstance(e, (tirx.Add, tirx.Sub)):
        a, b = _linear(e.a, index), _linear(e.b, index)
        s = 1 if isinstance(e, tirx.Add) else -1
        out = dict(a)
        for k, v in b.items():
            out[k] = out.get(k, 0) + s * v
        return {k: v for k, v in out.items() if v}
    if isinstance(e, tirx.Mul):
        ca, cb = _const(e.a), _const(e.b)
        if cb is not None:
            return {k: v * cb for k, v in _linear(e.a, index).items() if v * cb}
        if ca is not None:
            return {k: v * ca for k, v in _linear(e.b, index).items() if v * ca}
    raise _NonAffine()
