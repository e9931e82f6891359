"""FakeQuant: a float torch model run with any of its accelerator layers at any Mode, fake-quantised.

It follows the compiled quantiser's numerics (frontend/quantize.py with ``precision=``): weights 2:4-pruned along
input channels (lowbit.prune_2_4), then quantised per output channel with MSE clipping (lowbit.quantize_weight) or
with one scale per tensor (``weight_scales="tensor"``), and dequantised; each layer's input quantised per tensor at
a_bits, clipped at the calibrated max |x| at 8 bits and at the histogram MSE threshold (lowbit.clip_from_histogram)
below, range [-2^(a-1), 2^(a-1) - 1]; a matmul of two activations (attention) quantises its first operand at
a_bits and its second at w_bits (it has no weight to prune). Not bit-exact with the compiled model: that one also
requantises each layer's output to int8 with an integer multiplier and shift and rounds the bias
(frontend/requant.py); fake quantisation keeps outputs and biases in float. Per-channel quantisation and 2:4
masks are invariant to the per-channel BatchNorm scale the importer folds into the conv, so the unfolded torch
weights give the same quantised layer; per-tensor scales are not, so the scale of a BN the import folded into a
layer (``folded_scales``: the imported graph's weight against the torch one) multiplies the weights before
quantising and is divided out after.

Layers: the layer calls of one forward pass in order, each ``nn.Conv2d`` / ``nn.Linear`` module call
``conv2d_i`` / ``dense_i`` and each ``torch.matmul`` / ``@`` / ``bmm`` of two activations (neither a parameter
nor a buffer) ``matmul_i``, as frontend/precision.layer_names names the imported graph's; ``FakeQuant`` checks
this against the imported Relax graph and raises ``LayerMappingError`` when they differ (functional convs or
linears, unsupported convs). Single-input models; token ids (integer inputs) stay integers.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..frontend import lowbit
from ..frontend.torch_layers import is_layer
from ..hardware.modes import Mode

W8A8 = Mode()
MATMULS = (torch.matmul, torch.Tensor.matmul, torch.bmm, torch.Tensor.bmm)


class LayerMappingError(ValueError):
    """The model's layer calls are not the quantised layers of its imported graph."""


@dataclasses.dataclass
class Layer:
    name: str                  # conv2d_i / dense_i / matmul_i
    module: nn.Module | None   # None: a matmul of two activations
    weight: np.ndarray | None  # float64, torch layout: output channels on axis 0, input channels on axis 1


def model_input(x) -> torch.Tensor:
    """The model's input as a tensor: floats as float32, integers (token ids) and booleans as they are."""
    a = np.asarray(x)
    return torch.as_tensor(a, dtype=torch.float32) if a.dtype.kind in "fc" else torch.as_tensor(a)


class _Matmuls(TorchFunctionMode):
    """Hands every matmul of two activations (no operand a parameter or buffer of the model) to ``on_call``."""

    def __init__(self, consts: set, on_call):
        super().__init__()
        self.consts, self.on_call = consts, on_call

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in MATMULS:
            rest = dict(kwargs or {})
            names = ("input", "mat2") if func in (torch.bmm, torch.Tensor.bmm) else ("input", "other")
            ops = list(args) + [rest.pop(n) for n in names[len(args):] if n in rest]  # torch.matmul(input=, other=)
            if len(ops) == 2 and not rest and all(isinstance(a, torch.Tensor) and id(a) not in self.consts
                                                  for a in ops):
                return self.on_call(func, *ops)
        return func(*args, **(kwargs or {}))


def run_calls(model: nn.Module, x: torch.Tensor, on_module, on_matmul):
    """``model(x)`` without gradients, every nn.Conv2d / nn.Linear layer call answered by ``on_module(mod, inp)``
    and every matmul of two activations by ``on_matmul(func, a, b)``."""
    consts = {id(t) for t in model.parameters()} | {id(t) for t in model.buffers()}
    mods = [m for m in model.modules() if is_layer(m)]
    for mod in mods:
        mod.forward = lambda inp, mod=mod: on_module(mod, inp)
    try:
        with torch.no_grad(), _Matmuls(consts, on_matmul):
            return model(x)
    finally:
        for mod in mods:
            del mod.forward


def torch_layers(model: nn.Module, example: torch.Tensor) -> list[Layer]:
    """The layer calls of one forward pass in order, named like precision.layer_names."""
    calls = []

    def on_module(mod, inp):
        calls.append(mod)
        return type(mod).forward(mod, inp)

    def on_matmul(func, a, b):
        calls.append(None)
        return func(a, b)

    run_calls(model, example, on_module, on_matmul)
    seen, out = {}, []
    for m in calls:
        k = "matmul" if m is None else "conv2d" if isinstance(m, nn.Conv2d) else "dense"
        out.append(Layer(f"{k}_{seen.get(k, 0)}", m, None if m is None else m.weight.detach().double().numpy()))
        seen[k] = seen.get(k, 0) + 1
    return out


def graph_layers(model: nn.Module, example: torch.Tensor) -> list[tuple[str, np.ndarray | None]]:
    """(name, weight in torch layout as the compiled model quantises it, BatchNorm folded (frontend/fold_bn.py);
    None for a matmul of two activations) of the imported graph's quantisation targets (frontend/quantize.py)."""
    from ..frontend import precision as PR, quantize as Q
    from ..frontend.torch_import import import_torch
    targets = Q._targets(Q._main(import_torch(model, (example,))))
    out = []
    for n, bd in zip(PR.layer_names(targets), targets):
        w = None if PR.kind(bd) == "matmul" else bd.value.args[1].value.numpy().astype(np.float64)
        out.append((n, w.T if n.startswith("dense") else w))  # Relax dense weights are (in, out)
    return out


def _shapes(graph: list[tuple[str, np.ndarray | None]]) -> list[tuple[str, tuple | None]]:
    return [(n, None if w is None else tuple(w.shape)) for n, w in graph]


def relax_layers(model: nn.Module, example: torch.Tensor) -> list[tuple[str, tuple | None]]:
    """(name, weight shape in torch layout; None for a matmul of two activations) of the imported graph's
    quantisation targets."""
    return _shapes(graph_layers(model, example))


def _called(layers: list[Layer], i: int, mod: nn.Module | None) -> None:
    """Check that the i-th layer call of a forward pass is the i-th of the first one (``mod``; None: a matmul)."""
    if i >= len(layers) or layers[i].module is not mod:
        raise LayerMappingError("the model calls its layers in a different order from one forward pass to the "
                                "next (data-dependent control flow)")


def folded_scales(ours: list[Layer], theirs: list[tuple[str, np.ndarray | None]]) -> list:
    """Per layer, the per-output-channel scale s of a BatchNorm the import folded into its weights (graph weight =
    torch weight x s along the output channels, least squares per channel), else None."""
    out = []
    for ly, (_, g) in zip(ours, theirs):
        if ly.weight is None or g is None or g.shape != ly.weight.shape:
            out.append(None)
            continue
        w, g = ly.weight.reshape(len(ly.weight), -1), g.reshape(len(g), -1)
        den = (w * w).sum(1)
        s = np.where(den > 0, (w * g).sum(1) / np.where(den > 0, den, 1.0), 1.0)
        out.append(None if np.allclose(s, 1.0, rtol=1e-6, atol=0) else s)
    return out


def check_mapping(ours: list[Layer], theirs: list[tuple[str, tuple | None]]) -> None:
    a = [(ly.name, None if ly.weight is None else tuple(ly.weight.shape)) for ly in ours]
    b = list(theirs)
    if a == b:
        return
    k = next((i for i, (p, q) in enumerate(zip(a, b)) if p != q), min(len(a), len(b)))
    fmt = lambda t: f"{t[0]} (weight {t[1]})" if t[1] is not None else f"{t[0]} (two activations)"
    got = fmt(a[k]) if k < len(a) else "(none)"
    want = fmt(b[k]) if k < len(b) else "(none)"
    raise LayerMappingError(
        f"layer {k}: the imported graph has {want} but the model's {k}-th layer call is {got} "
        f"({len(b)} quantised layers in the graph, {len(a)} layer calls). Sensitivity needs every quantised "
        "layer to be an nn.Conv2d / nn.Linear module or a torch.matmul / @ / bmm of two activations: no "
        "functional conv2d / linear, no dilated / asymmetrically padded convs (those are not quantised)")


def _fake(x: torch.Tensor, q: tuple) -> torch.Tensor:
    inv, s, lo, hi = q
    return torch.clamp(torch.round(x * inv), lo, hi) * s


class FakeQuant:
    """A float torch model and its calibration, run with any layers at any Mode (``logits``)."""

    def __init__(self, model: nn.Module, calib_x, check: bool = True, weight_scales: str = "channel"):
        if weight_scales not in ("channel", "tensor"):
            raise ValueError(f"weight_scales must be 'channel' or 'tensor', got {weight_scales!r}")
        self.model, self.weight_scales = model.eval(), weight_scales
        calib = model_input(calib_x)
        self.layers = torch_layers(model, calib[:1])
        graph = graph_layers(model, calib[:1]) if check or weight_scales == "tensor" else None
        if check:
            check_mapping(self.layers, _shapes(graph))
        self.names = [ly.name for ly in self.layers]
        # per-tensor scales see the BN-folded weights the import made (per-channel ones are invariant to the scale)
        self.bn = folded_scales(self.layers, graph) if weight_scales == "tensor" else [None] * len(self.layers)
        amax = [np.zeros(1 if ly.module is not None else 2) for ly in self.layers]
        for ops in self._operands(calib):
            amax = [np.maximum(a, [float(v.abs().max()) for v in o]) for a, o in zip(amax, ops)]
        hist = [[np.zeros(lowbit.HIST_BINS, np.int64) for _ in a] for a in amax]
        for ops in self._operands(calib):
            for hs, o, a in zip(hist, ops, amax):
                for h, v, m in zip(hs, o, a):
                    h += lowbit.histogram(v.numpy(), m)
        self.amax, self.hist = amax, hist
        self._w, self._a = {}, {}

    def _operands(self, calib, batch: int = 64):
        """Per calibration batch, each layer call's fp32 operands: [input] of a module, [a, b] of a matmul."""
        for b in range(0, len(calib), batch):
            seen = []

            def on_module(mod, inp):
                _called(self.layers, len(seen), mod)
                seen.append([inp.detach()])
                return type(mod).forward(mod, inp)

            def on_matmul(func, a, b):
                _called(self.layers, len(seen), None)
                seen.append([a.detach(), b.detach()])
                return func(a, b)

            run_calls(self.model, calib[b:b + batch], on_module, on_matmul)
            yield seen

    def weight(self, i: int, m: Mode) -> torch.Tensor:
        """Layer i's weight at mode m: 2:4-pruned, quantised with per-channel (or one per-tensor) scales as
        ``weight_scales`` says (compile's option of the same name), dequantised (float32)."""
        key = (i, m.w_bits, m.sparse)
        if key not in self._w:
            w = self.layers[i].weight
            if m.sparse:
                w = lowbit.prune_2_4(w, 1)[0]
            shape = (-1,) + (1,) * (w.ndim - 1)
            bn = self.bn[i]
            if bn is not None:  # quantise the weights the compiled model quantises: BN-folded, then unfold
                w = w * bn.reshape(shape)
            q, s = lowbit.quantize_weight(w, m.w_bits, 0, per_channel=self.weight_scales == "channel")
            wq = q * s.reshape(shape)
            if bn is not None:
                safe = np.where(bn == 0, 1.0, bn).reshape(shape)
                wq = np.where(bn.reshape(shape) == 0, self.layers[i].weight, wq / safe)
            self._w[key] = torch.from_numpy(wq.astype(np.float32))
        return self._w[key]

    def act(self, i: int, bits: int, operand: int = 0) -> tuple[float, float, int, int]:
        """(1 / scale as float32, scale, lo, hi) of layer i's input (a matmul's ``operand`` 0 or 1) at ``bits``,
        as quantize._quant computes it."""
        key = (i, bits, operand)
        if key not in self._a:
            a = float(self.amax[i][operand])
            c = a if bits == 8 else lowbit.clip_from_histogram(self.hist[i][operand], a, bits)
            lo, hi = lowbit.qrange(bits)
            s = c / hi if c > 0 else 1.0
            self._a[key] = (float(np.float32(1.0 / s)), s, lo, hi)
        return self._a[key]

    def logits(self, x, assignment: dict | None = None, fp32: bool = False, record: dict | None = None,
               reuse: dict | None = None, upto: int = 0) -> torch.Tensor:
        """Outputs with each layer at ``assignment[name]`` (w8a8 if absent), or the float model (``fp32``).
        ``record`` (a dict) receives every layer call's output; layer calls before ``upto`` return ``reuse``'s
        instead (valid if they ran at the same modes when it was recorded: a layer never sees a later one)."""
        assignment = assignment or {}
        bad = [n for n in assignment if n not in self.names]
        if bad:
            raise ValueError(f"no layer named {', '.join(map(repr, bad))}; the model's layers are {', '.join(self.names)}")
        sparse = [n for n, m in assignment.items() if m.sparse and self.layers[self.names.index(n)].module is None]
        if sparse:
            raise ValueError(f"{sparse[0]} is a matmul of two activations: it has no weight to prune (2:4)")
        count = [0]

        def next_call(mod):
            i = count[0]
            count[0] += 1
            _called(self.layers, i, mod)
            return i

        def done(i, out):
            if record is not None:
                record[i] = out
            return out

        def on_module(mod, inp):
            i = next_call(mod)
            if i < upto:
                return reuse[i]
            if fp32:
                wq, xq = mod.weight, inp
            else:
                m = assignment.get(self.names[i], W8A8)
                xq, wq = _fake(inp, self.act(i, m.a_bits)), self.weight(i, m)
            return done(i, mod._conv_forward(xq, wq, mod.bias) if isinstance(mod, nn.Conv2d) else F.linear(xq, wq, mod.bias))

        def on_matmul(func, a, b):
            i = next_call(None)
            if i < upto:
                return reuse[i]
            if not fp32:
                m = assignment.get(self.names[i], W8A8)
                a, b = _fake(a, self.act(i, m.a_bits, 0)), _fake(b, self.act(i, m.w_bits, 1))
            return done(i, func(a, b))

        return run_calls(self.model, model_input(x), on_module, on_matmul)
