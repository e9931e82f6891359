"""PyTorch -> Relax: ``torch.export`` and TVM's importer, with the indices it gets wrong made right.

``import_torch(model, example_inputs)`` checks the example inputs (finite; float data cast to the model's float
dtype, integer data kept integer), exports the model, imports it with TVM's ``from_exported_program`` and
rewrites its indexing ops (frontend/indices.py: negative indices, which the importer passes to a "fast"
``take`` that reads out of bounds). Advanced indexing with several index tensors and a slice between or
around them (``x[i, :, j]``, ``x[:, i, j]``), which the importer turns into an outer product, is converted
here with torch's rule. A failure names the model, the aten op and the line of the model's source.
Two torch warnings every such import raised (the ``LeafSpec`` FutureWarning of ``torch.export``'s
decompositions, and the RNN modules' ``_flat_weights`` "assigned during export") are silenced around these calls
only.
"""
from __future__ import annotations

import inspect
import warnings

import numpy as np
import tvm
from tvm import relax

from .indices import normalize_indices
from .onnx_import import ModelImportError

_NOISE = [  # torch's own warnings on every import of a model that does nothing wrong
    (FutureWarning, r".*isinstance\(treespec, LeafSpec\)"),  # torch 2.13's pytree, inside run_decompositions
    (UserWarning, r"The tensor attributes (self\.[\w.]*_flat_weights\[\d+\](, )?)+ were assigned during export"),
]  # the second: nn.LSTM/GRU's internal weight list, not the user's attributes (those still warn)


def _float_dtype(model):
    """The floating dtype of the model's parameters and buffers (torch's default if it has none)."""
    import torch
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            return t.dtype
    return torch.get_default_dtype()


def example_tensors(model, example_inputs) -> tuple:
    """The example inputs as torch tensors: finite, float data in the model's float dtype, integers kept."""
    import torch
    fdt = _float_dtype(model)
    try:
        names = list(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):
        names = []
    out = []
    for i, a in enumerate(example_inputs):
        what = f"example input {i}" + (f" ('{names[i]}')" if i < len(names) else "")
        try:
            t = a.detach() if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a))
        except (TypeError, ValueError, RuntimeError) as e:
            raise ValueError(f"{what}: cannot be made a tensor ({e})") from e
        if t.is_complex():
            raise ValueError(f"{what}: dtype {t.dtype} is not supported (give float or integer data)")
        if t.is_floating_point():
            bad = int((~torch.isfinite(t)).sum())
            if bad:
                raise ValueError(f"{what} has {bad} non-finite values (NaN/Inf); without example_inputs it is "
                                 "from the first calibration sample")
            t = t.to(fdt)
        out.append(t)
    return tuple(out)


def _index_tensor(node, importer):
    """aten.index.Tensor with torch's advanced-indexing rule; the importer's own conversion where it is right
    (one index tensor: take; no slices: index_tensor)."""
    data, indices = importer.retrieve_args(node)[:2]
    axes = [k for k, t in enumerate(indices) if t is not None]
    if len(axes) <= 1 or len(axes) == len(indices):
        return importer._index_tensor(node)
    bb, op = importer.block_builder, relax.op
    rest = [k for k in range(data.ty.ndim) if k not in axes]
    y = bb.emit(op.index_tensor(bb.emit(op.permute_dims(data, axes + rest)), [indices[k] for k in axes]))
    if axes != list(range(axes[0], axes[0] + len(axes))) or axes[0] == 0:
        return y  # index tensors apart (or leading): their broadcast dims come first
    nb = y.ty.ndim - len(rest)  # adjacent: the broadcast dims replace them in place
    perm = list(range(nb, nb + axes[0])) + list(range(nb)) + list(range(nb + axes[0], y.ty.ndim))
    return bb.emit(op.permute_dims(y, perm))


def _failed_node(exc: BaseException) -> str:
    """' at aten.op (file:line: source)': the FX node the importer was converting when ``exc`` was raised."""
    tb, node = exc.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "_translate_fx_graph":
            node = tb.tb_frame.f_locals.get("node", node)
        tb = tb.tb_next
    if node is None:
        return ""
    where = ""
    trace = [ln.strip() for ln in str(node.meta.get("stack_trace") or "").splitlines() if ln.strip()]
    if len(trace) >= 2 and trace[-2].startswith("File "):
        where = f" ({trace[-2][5:].split(', in ')[0]}: {trace[-1]})"
    return f" at {node.target}{where}"


def import_torch(model, example_inputs, bounds: dict | None = None) -> tvm.IRModule:
    """A torch.nn.Module as a Relax IRModule (parameters bound as constants, indices normalised), exported in
    eval mode (BatchNorm's running statistics, no dropout); the module's own train/eval flags are left as they were.
    ``bounds``: see ``normalize_indices``."""
    import torch
    from tvm.relax.frontend.torch import from_exported_program
    if example_inputs is None:
        raise ValueError("a torch.nn.Module needs example_inputs (or calibration) to be exported")
    name = type(model).__name__
    ex = example_tensors(model, example_inputs)
    with warnings.catch_warnings():
        for category, message in _NOISE:
            warnings.filterwarnings("ignore", message=message, category=category)
        modes = {m: m.training for m in model.modules()}  # exported for inference, handed back as it came
        try:
            ep = torch.export.export(model.eval(), ex)
        except Exception as e:
            raise ModelImportError(f"torch.export of {name} failed: {str(e).splitlines()[0]}") from e
        finally:
            for m, training in modes.items():
                m.training = training
        try:
            mod = from_exported_program(ep, keep_params_as_input=False, unwrap_unit_return_tuple=True,
                                        custom_convert_map={"index.Tensor": _index_tensor})
        except Exception as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelImportError(f"TVM's PyTorch importer failed on {name}{_failed_node(e)}: {msg}") from e
    try:
        return normalize_indices(mod, bounds)
    except ModelImportError as e:
        raise ModelImportError(f"{name}: {e}") from e
