"""What the tuner optimises: a network's accelerator layers, from a built-in model, an ONNX file, a PyTorch
module, a workload-list JSON, or Workloads directly.

Models go through the same import and int8 quantisation as ``compile`` (``model.layers``), with seeded random
calibration inputs: the layers' shapes and epilogue stages do not depend on the data, only their immediates do.

A workload list is ``{"layers": [{"workload": {<Workload fields>}, "count": 2, "name": "conv3"}, ...]}``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import CodesignError
from ..schedules.workload import Workload, WorkloadError
from .network import Layer, group

BUILTIN_INPUTS = {"resnet18": (1, 3, 224, 224), "mobilenet_v2": (1, 3, 224, 224), "transformer_encoder": (1, 64, 64),
                  "mlp": (1, 784)}


class ModelSpecError(CodesignError, ValueError):
    """A --model that names nothing usable."""


def _from_json(path: Path) -> list[Layer]:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ModelSpecError(f"cannot read workload list {path}: {e}") from None
    items = d.get("layers") if isinstance(d, dict) else d
    if not isinstance(items, list) or not items:
        raise ModelSpecError(f"{path}: expected {{'layers': [{{'workload': {{...}}, 'count': n}}, ...]}}")
    out = []
    for i, it in enumerate(items):
        try:
            out += from_records([it])
        except (KeyError, TypeError, ValueError, WorkloadError) as e:
            raise ModelSpecError(f"{path}: layer {i}: {e!r}") from None
    return out


def _onnx_inputs(path: Path, input_shape) -> tuple[dict, list]:
    import onnx
    try:
        m = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 (protobuf's DecodeError and friends: not a readable ONNX model)
        raise ModelSpecError(f"cannot read an ONNX model from {str(path)!r}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    inits = {t.name for t in m.graph.initializer}
    shapes, calib = {}, []
    rng = np.random.default_rng(0)
    for inp in (i for i in m.graph.input if i.name not in inits):
        dims = [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
        if None in dims:
            if input_shape is None:
                raise ModelSpecError(f"{path}: input {inp.name!r} has a dynamic dimension {dims}: pass --input-shape")
            dims = list(input_shape)
        shapes[inp.name] = dims
        calib.append(rng.standard_normal(dims).astype(np.float32))
    return shapes, [tuple(calib)]


def load(model, input_shape=None) -> tuple[str, list[Layer]]:
    """(label, grouped layers) of a model spec (see the module docstring)."""
    from .. import model as M
    if isinstance(model, Workload):
        model = [model]
    if isinstance(model, (list, tuple)) and model and all(isinstance(x, (Workload, Layer, tuple)) for x in model):
        items = [(x, 1) if isinstance(x, Workload) else x for x in model]
        return "layers", group(items)
    if isinstance(model, (str, Path)):
        name = str(model)
        p = Path(name)
        if name in BUILTIN_INPUTS:
            from .. import models
            shape = tuple(input_shape) if input_shape else BUILTIN_INPUTS[name]
            x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
            return name, group(M.layers(models.BUILTIN[name](), calibration=[(x,)]))
        if p.suffix == ".json":
            if not p.is_file():
                raise ModelSpecError(f"workload list {p} does not exist")
            return p.stem, group(_from_json(p))
        if p.suffix == ".onnx":
            if not p.is_file():
                raise ModelSpecError(f"ONNX file {p} does not exist")
            shapes, calib = _onnx_inputs(p, input_shape)
            return p.stem, group(M.layers(str(p), input_shapes=shapes, calibration=calib))
        raise ModelSpecError(f"unknown model {name!r}: give a built-in name ({', '.join(BUILTIN_INPUTS)}), "
                             "an .onnx file or a workload-list .json")
    try:
        import torch
        if isinstance(model, torch.nn.Module):
            if input_shape is None:
                raise ModelSpecError("a torch.nn.Module needs input_shape")
            x = np.random.default_rng(0).standard_normal(tuple(input_shape)).astype(np.float32)
            return type(model).__name__.lower(), group(M.layers(model, calibration=[(x,)]))
    except ImportError:
        pass
    raise ModelSpecError(f"cannot tune a {type(model).__name__}: give a built-in model name, an ONNX path, a "
                         "workload-list JSON, a torch.nn.Module or a list of Workloads")


def to_json(layers: list[Layer]) -> list[dict]:
    return [{"workload": ly.workload.to_dict(), "count": ly.count, "name": ly.name} for ly in layers]


def from_records(items: list[dict]) -> list[Layer]:
    out = []
    for it in items:
        w = dict(it["workload"])
        for f in ("stride", "pad", "clip"):
            if w.get(f) is not None:
                w[f] = tuple(w[f])
        out.append(Layer(Workload(**w), int(it.get("count", 1)), str(it.get("name", ""))))
    return out
