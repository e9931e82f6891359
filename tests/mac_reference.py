"""MACs per layer computed independently of tvm_codesign: from a torch model's forward (module hooks for
Conv*/ConvTranspose*/Linear, a TorchFunctionMode for matmul/bmm/einsum/attention called as functions) and from
an ONNX graph's inferred shapes (Conv, ConvTranspose, Gemm, MatMul, Einsum)."""
from __future__ import annotations

import math

import numpy as np
import onnx
import torch
from onnx import shape_inference
from torch import nn
from torch.overrides import TorchFunctionMode


def _module_macs(m: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    if isinstance(m, nn.Linear):
        return out.numel() * m.in_features
    k = math.prod(m.kernel_size)
    if isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        return inp.numel() * (m.out_channels // m.groups) * k  # every input element meets its weight slice
    return out.numel() * (m.in_channels // m.groups) * k


class _Functions(TorchFunctionMode):
    """matmul-like calls made outside the hooked modules."""

    def __init__(self, layers: list):
        super().__init__()
        self.layers = layers

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in (torch.matmul, torch.bmm, torch.Tensor.matmul, torch.Tensor.__matmul__):
            self.layers.append(("matmul", out.numel() * args[0].shape[-1]))
        elif func is torch.einsum:
            spec, ops = args[0], args[1] if isinstance(args[1], (list, tuple)) else args[1:]
            ext = {}
            for s, t in zip(spec.split("->")[0].split(","), ops):
                ext.update(zip(s, t.shape))
            self.layers.append(("einsum", math.prod(ext.values()) * (len(ops) - 1)))
        elif func is nn.functional.scaled_dot_product_attention:
            q, k, v = args[:3]  # two matmuls: scores = q . k^T, then scores . v
            self.layers += [("attention q.k", math.prod(q.shape[:-1]) * k.shape[-2] * q.shape[-1]),
                            ("attention p.v", math.prod(q.shape[:-1]) * k.shape[-2] * v.shape[-1])]
        return out


def torch_layers(model: nn.Module, *inputs) -> list[tuple[str, int]]:
    """(kind, MACs) of every MAC-bearing layer call in one forward pass."""
    layers: list = []
    kinds = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    hooks = [m.register_forward_hook(lambda m, i, o: layers.append((type(m).__name__, _module_macs(m, i[0], o))))
             for m in model.modules() if isinstance(m, kinds)]
    try:
        with torch.no_grad(), _Functions(layers):
            model(*[torch.as_tensor(np.asarray(x)) for x in inputs])
    finally:
        for h in hooks:
            h.remove()
    return layers


def onnx_layers(proto: onnx.ModelProto) -> list[tuple[str, int]]:
    """(op, MACs) of every Conv / ConvTranspose / Gemm / MatMul / Einsum node, from inferred static shapes."""
    g = shape_inference.infer_shapes(proto, data_prop=True).graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*g.input, *g.value_info, *g.output]}
    shapes.update({t.name: list(t.dims) for t in g.initializer})

    def shape(name):
        s = shapes[name]
        assert min(s, default=1) > 0, f"ONNX shape inference left {name} unknown: {s}"
        return s

    out = []
    for n in g.node:
        sh = lambda i: shape(n.input[i])
        y = math.prod(shape(n.output[0])) if n.output else 0
        if n.op_type in ("Conv", "ConvInteger", "QLinearConv"):
            out.append((n.op_type, y * math.prod(sh(3 if n.op_type == "QLinearConv" else 1)[1:])))
        elif n.op_type == "ConvTranspose":
            out.append((n.op_type, math.prod(sh(0)) * math.prod(sh(1)[1:])))
        elif n.op_type == "Gemm":
            trans_a = next((a.i for a in n.attribute if a.name == "transA"), 0)
            out.append((n.op_type, y * sh(0)[0 if trans_a else 1]))
        elif n.op_type in ("MatMul", "MatMulInteger", "QLinearMatMul"):
            out.append((n.op_type, y * sh(0)[-1]))
        elif n.op_type == "Einsum":
            eq = next(a.s.decode() for a in n.attribute if a.name == "equation")
            ext = {}
            for spec, i in zip(eq.split("->")[0].split(","), range(len(n.input))):
                ext.update(zip(spec.strip(), sh(i)))
            out.append((n.op_type, math.prod(ext.values()) * (len(n.input) - 1)))
    return out


def compiled_layers(cm) -> list[int]:
    """MACs of every layer call of a compiled model, from its profile rows (accelerator and CPU)."""
    return sorted(r["macs"] for r in cm.profile().rows if r["macs"] for _ in range(r["calls"]))


def check_macs(cm, ref_layers) -> None:
    """A compiled model's total and per-layer MACs equal the reference's, and its offloaded fraction is the share
    of the layers its profile puts on the accelerator (the kernels the offload pass emitted)."""
    ref = sorted(m for _, m in ref_layers)
    assert cm.total_macs == sum(ref)
    assert compiled_layers(cm) == ref  # every layer once, with its own MACs, on whichever device it runs
    acc = sum(r["macs"] * r["calls"] for r in cm.profile() if r["device"] == "accelerator")
    assert cm.accelerator_macs == acc
    assert cm.offloaded_mac_fraction == acc / sum(ref)
