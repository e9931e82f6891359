"""Operator libraries with the in-process contract: ``export_library(module, path)`` writes a shared library
whose ``main`` takes the user's layouts (``frontend/composite.py``), ``load_module(path)`` loads one in any
process as a numpy-in, numpy-out callable. With plain TVM the same file is
``tvm.runtime.load_module(path)["main"](*inputs, out)`` with the operator's own parameters."""
from __future__ import annotations

from functools import reduce
from pathlib import Path

import numpy as np
import tvm
from tvm import te, tirx

from .backend import target
from .frontend.composite import Signature, user_layout_func
from .runtime.kernel import last_stats

SPEC = "tvm_codesign_signature"  # writes [parameters, output index, then per parameter: int bits, rank, 4 dims]
_RANK, _SPEC_LEN = 4, 2 + 5 * 6  # up to 5 parameters: data, weight, bias, multiplier, out
_SPEC_LENS = (_SPEC_LEN, 2 + 4 * 6)  # libraries written before the multiplier describe 4


def _spec(sig: Signature) -> tirx.PrimFunc:
    vals = [len(sig.names), sig.roles["out"]]
    for shape, dtype in zip(sig.shapes, sig.dtypes):
        if not dtype.startswith("int") or len(shape) > _RANK:
            raise ValueError(f"cannot describe parameter {dtype}{list(shape)} (int, rank <= {_RANK})")
        vals += [np.dtype(dtype).itemsize * 8, len(shape), *shape, *[0] * (_RANK - len(shape))]
    if len(vals) > _SPEC_LEN:
        raise ValueError(f"{len(sig.names)} parameters: at most {(_SPEC_LEN - 2) // 6}")
    vals += [0] * (_SPEC_LEN - len(vals))
    spec = te.compute((_SPEC_LEN,), lambda i: reduce(
        lambda acc, kv: tirx.Select(i == kv[0], tirx.const(kv[1], "int64"), acc), enumerate(vals),
        tirx.const(0, "int64")), name="spec")
    return te.create_prim_func([spec])


def library(module) -> tvm.runtime.Module:
    """The compiled user-layout library of a ``tc.build`` Module: ``main`` and its signature (``SPEC``)."""
    sig = module.signature
    main = user_layout_func(module.workload, module.config, module.knobs, module.kernel, sig)
    mod = tvm.IRModule({"main": main.with_attr("global_symbol", "main"),
                        SPEC: _spec(sig).with_attr("global_symbol", SPEC)})
    return tvm.compile(mod, target=target(module.config))


def export_library(module, path) -> Path:
    """Write ``module`` as a shared library (``.so``) taking the user's layouts; returns the path."""
    path = Path(path)
    library(module).export_library(str(path))
    return path


class LoadedModule:
    """An operator library from ``export_library``: ``m(*inputs)`` takes numpy arrays in the user's layouts
    and returns the output array; ``lib`` is the TVM module, ``stats`` the last run's figures."""

    def __init__(self, lib: tvm.runtime.Module, path: str = ""):
        self.lib, self.path = lib, path
        try:
            fspec = lib[SPEC]
        except Exception:  # noqa: BLE001 - TVM raises AttributeError or its own error for a missing function
            raise ValueError(f"{path or lib} is not a tvm_codesign operator library (no {SPEC}: "
                             f"write it with Module.export_library)") from None
        for n in _SPEC_LENS:
            spec = tvm.runtime.tensor(np.zeros(n, np.int64))
            try:
                fspec(spec)
                break
            except Exception:  # noqa: BLE001 - the library's spec has the other length (TVM checks the shape)
                if n == _SPEC_LENS[-1]:
                    raise
        v = [int(x) for x in spec.numpy()]
        params = [(tuple(v[i + 2:i + 2 + v[i + 1]]), f"int{v[i]}") for i in range(2, 2 + 6 * v[0], 6)]
        self.out_index = v[1]
        self.out_shape, self.out_dtype = params.pop(self.out_index)
        self.inputs = params  # [(shape, dtype)] in call order

    def __call__(self, *inputs) -> np.ndarray:
        if len(inputs) != len(self.inputs):
            raise TypeError(f"{self.path or 'the operator'} takes {len(self.inputs)} inputs, got {len(inputs)}")
        args = []
        for i, (a, (shape, dtype)) in enumerate(zip(inputs, self.inputs)):
            a = np.asarray(a)
            if a.shape != shape or a.dtype != np.dtype(dtype):
                raise TypeError(f"input {i} must be {dtype} of shape {shape}, got {a.dtype} of shape {a.shape}")
            args.append(tvm.runtime.tensor(np.ascontiguousarray(a)))
        out = tvm.runtime.tensor(np.zeros(self.out_shape, self.out_dtype))
        args.insert(self.out_index, out)
        self.lib["main"](*args)
        return out.numpy()

    @property
    def stats(self):
        return last_stats()

    def __repr__(self) -> str:
        ins = ", ".join(f"{d}{list(s)}" for s, d in self.inputs)
        return f"LoadedModule({self.path!r}: ({ins}) -> {self.out_dtype}{list(self.out_shape)})"


def load_module(path) -> LoadedModule:
    """Load a library written by ``Module.export_library`` (any process; ``import tvm`` registers the runtime)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no operator library at {p}")
    return LoadedModule(tvm.runtime.load_module(str(p)), str(p))
