"""A user's model as an int8 Relax module: import (PyTorch, ONNX, Relax), rewrite already-quantised groups,
and quantise float conv2d / matmul layers after calibration (post-training; first a quantisation-aware
fine-tune of a torch model when ``train`` is given). ``model.py`` compiles the result."""
from __future__ import annotations

import time
import warnings

import numpy as np
import tvm

from . import logs
from .frontend import onnx_qdq
from .frontend import precision as PR
from .frontend import quantize as Q


def _import(model, input_shapes, example_inputs, bounds: dict | None = None) -> tvm.IRModule:
    """``bounds`` receives the inputs used as run-time indices (frontend/indices.py)."""
    if isinstance(model, tvm.IRModule):
        return model
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None and isinstance(model, torch.nn.Module):
        from .frontend.torch_import import import_torch
        return import_torch(model, example_inputs, bounds)
    import onnx
    if isinstance(model, (str, onnx.ModelProto)) or hasattr(model, "__fspath__"):
        from .frontend.indices import normalize_indices
        from .frontend.onnx_import import import_onnx
        return normalize_indices(import_onnx(model, input_shapes), bounds)  # its Gathers are fast-mode takes too
    raise TypeError(f"cannot compile a {type(model).__name__}: give a torch.nn.Module, an ONNX model or path, "
                    "or a Relax IRModule")


def _samples(calibration) -> list | None:
    """``calibration`` as a list of samples: any iterable of them (a list, a generator, a DataLoader's batches)
    but not one array, whose first axis could be samples or the batch."""
    if calibration is None:
        return None
    if isinstance(calibration, np.ndarray) or hasattr(calibration, "detach") or hasattr(calibration, "numpy") \
            or not hasattr(calibration, "__iter__") or isinstance(calibration, (str, bytes, dict)):
        raise TypeError(f"calibration must be a list of samples (each an input tuple, or one array for a one-input "
                        f"model), e.g. [(x,) for x in batch]; got a {type(calibration).__name__}")
    return list(calibration)


def _is_torch(model) -> bool:
    try:
        import torch
    except ImportError:
        return False
    return isinstance(model, torch.nn.Module)


def _check_qat(model, train, qat_epochs) -> None:
    """The options of the quantisation-aware fine-tune, before anything is imported."""
    if qat_epochs is not None:
        if train is None:
            raise ValueError("qat_epochs= needs train=(x, y): the training data of the quantisation-aware fine-tune")
        if isinstance(qat_epochs, bool) or not isinstance(qat_epochs, (int, np.integer)) or qat_epochs < 1:
            raise ValueError(f"qat_epochs must be a whole number >= 1, got {qat_epochs!r}")
    if train is not None and not _is_torch(model):
        raise TypeError(f"train= fine-tunes a torch.nn.Module (quantisation-aware training); this model is a "
                        f"{type(model).__name__}: quantise it without train=, or fine-tune it in its framework")


def _finetuned(model, targets, modes, calibration, example_inputs, train, qat_epochs, per_channel):
    """The fine-tuned copy of ``model`` (frontend/qat.py) if any conv2d / dense layer is low-bit or sparse, else
    None (with a warning that ``train`` is unused)."""
    from .frontend import qat
    from .frontend.torch_import import example_tensors
    ex = example_tensors(model, example_inputs)
    if len(ex) != 1:
        raise ValueError(f"train= fine-tunes single-input classifiers; this model takes {len(ex)} inputs")
    x, y = qat.check_train(train, ex[0])
    names = PR.layer_names(targets)
    if all(modes is None or modes[n] == PR.INT8 for n in names if not n.startswith("matmul")):
        warnings.warn("train= is unused: no conv2d / dense layer is below 8 bits or 2:4-sparse (give precision= or "
                      "sparsity=); the model is quantised without fine-tuning", UserWarning, stacklevel=4)
        return None
    float_mm = [n for n in names if n.startswith("matmul") and modes[n] != PR.INT8]
    if float_mm:
        warnings.warn(f"train=: {', '.join(float_mm)} (matmuls of two activations, no module) stay float in the "
                      "fine-tune; only the PTQ quantises them", UserWarning, stacklevel=4)
    graph = [(n, tuple(int(d) for d in bd.value.args[1].value.shape)[::1 if n.startswith("conv") else -1])
             for n, bd in zip(names, targets) if not n.startswith("matmul")]  # Relax dense weights are (in, out)
    qat.check_layers(qat.torch_layers(model, ex[0]), graph)
    calib = [s[0] if isinstance(s, (tuple, list)) else s for s in calibration]
    calib = np.concatenate([c.detach().cpu().numpy() if hasattr(c, "detach") else np.asarray(c) for c in calib])
    t0 = time.perf_counter()
    tuned = qat.finetune(model, modes, calib, x, y, epochs=qat_epochs or qat.EPOCHS, per_channel=per_channel)
    logs.info(f"quantisation-aware fine-tune: {qat_epochs or qat.EPOCHS} epochs on {len(y)} samples, "
              f"{time.perf_counter() - t0:.1f} s")
    return tuned


def _quantized(model, input_shapes, example_inputs, calibration, requant, info: dict | None = None,
               precision=None, sparsity=None, weight_scales=None, train=None, qat_epochs=None) -> tvm.IRModule:
    """Import, rewrite already-quantised groups, and quantise float conv2d / matmul layers (PTQ), after a
    quantisation-aware fine-tune of a torch model when ``train`` is given. ``info``
    receives "index_bounds" (inputs used as run-time indices), "quantised" (float data becomes int8), "modes"
    ({layer: precision.Mode} of the quantised layers) and "masks" ({layer: 2:4 keep mask})."""
    info = {} if info is None else info
    info.update(index_bounds={}, quantised=False, modes={}, masks={})
    _check_qat(model, train, qat_epochs)
    if weight_scales not in (None, "channel", "tensor"):
        raise ValueError(f"weight_scales must be 'channel' or 'tensor', got {weight_scales!r}")
    if weight_scales == "channel" and requant == "shift":
        raise ValueError("requant='shift' has one power-of-two scale per layer: use weight_scales='tensor'")
    if requant not in ("alu", "shift", "cpu"):
        raise ValueError(f"requant must be 'alu' (on the accelerator), 'shift' (on the accelerator, power-of-two "
                         f"scales: VTA's scheme) or 'cpu', got {requant!r}")
    calibration = _samples(calibration)
    if example_inputs is None and calibration:
        first = calibration[0]
        example_inputs = first if isinstance(first, (tuple, list)) else (first,)
    mod, n_qdq = onnx_qdq.rewrite(_import(model, input_shapes, example_inputs, info["index_bounds"]))
    mod = Q.prepare(mod)
    info["quantised"] = bool(n_qdq)  # QDQ groups quantise float data on the CPU
    func = mod["main"]
    targets = Q._targets(func)
    float_model = not n_qdq and not onnx_qdq.integer_layers(mod) and targets
    if train is not None and not float_model:
        raise ValueError("train= fine-tunes float models before quantising them; this model "
                         + ("is already quantised" if targets or n_qdq else "has no float conv2d/matmul layers"))
    if (precision is not None or sparsity is not None) and not float_model:
        raise ValueError("precision= and sparsity= apply to float models quantised here (post-training); this model "
                         + ("is already quantised" if targets or n_qdq else "has no float conv2d/matmul layers"))
    if float_model:  # a quantised model says itself what is quantised (QDQ groups, QLinearConv, ...): its float
        # ops stay float
        modes = PR.modes(targets, precision, sparsity)  # checks the options before calibrating
        if not calibration:
            raise ValueError("the model has float conv2d/matmul layers: pass calibration=[inputs, ...] for "
                             "post-training int8 quantisation")
        per_channel = weight_scales != "tensor" and requant != "shift"
        tuned = None if train is None else _finetuned(model, targets, modes, calibration, example_inputs,
                                                       train, qat_epochs, per_channel)
        if tuned is not None:  # quantise the fine-tuned copy: the same graph with new weights
            info["index_bounds"] = {}
            mod = Q.prepare(onnx_qdq.rewrite(_import(tuned, input_shapes, example_inputs, info["index_bounds"]))[0])
            targets = Q._targets(mod["main"])
        if modes is None:
            mod = Q.quantize(mod, Q.calibrate(mod, calibration), requant)
        else:
            low = any(m.a_bits < 8 for m in modes.values())  # activations clipped by their histograms
            amax, hists = Q.calibrate(mod, calibration, histograms=True) if low else \
                (Q.calibrate(mod, calibration), None)
            mod = Q.quantize(mod, amax, requant, modes, hists, per_channel=per_channel, masks=info["masks"])
        info["modes"] = modes or dict.fromkeys(PR.layer_names(targets), PR.INT8)
        info["quantised"] = True
    return mod
