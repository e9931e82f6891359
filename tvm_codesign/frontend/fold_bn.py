"""Fold inference-mode batch normalisation into the conv or dense layer before it.

TVM 0.27's ONNX importer (BatchNormalization) and PyTorch importer (``torch.export`` of an eval-mode
BatchNorm1d/2d/3d) both emit ``t = relax.nn.batch_norm(y, gamma, beta, mean, var, axis=1, training=False)``
and use ``t[0]``. When ``y`` is a float conv1d/2d/3d (any stride, padding, dilation or groups: the scale is
per output channel) or a matmul with a constant 2-D weight, optionally plus a constant bias, each used only on
the way to the BN, and the BN's parameters are constants, the BN becomes part of the layer:

    s  = gamma / sqrt(var + eps)                      per output channel (in float64, stored as float32)
    W' = W * s  (along the output channels)           b' = (b - mean) * s + beta

so the quantiser sees conv/dense + bias (+ ReLU), which requantises and fuses on the accelerator. Any other BN
(after a graph input, an op with other users, a non-constant parameter) stays as it is, on the CPU.
"""
from __future__ import annotations

import numpy as np
import tvm
from tvm import relax
from tvm.ir.expr import Constant

from .requant import Graph

_CONVS = ("relax.nn.conv1d", "relax.nn.conv2d", "relax.nn.conv3d")


def _op(e) -> str | None:
    return getattr(getattr(e, "op", None), "name", None) if isinstance(e, relax.Call) else None


def _f32_const(e) -> np.ndarray | None:
    if isinstance(e, Constant) and str(e.value.dtype) == "float32":
        return e.value.numpy().astype(np.float64)
    return None


def _layer(g: Graph, y: relax.Expr):
    """(core var, core call, bias ndarray or None, bias var or None) if ``y`` is conv/matmul (+ constant bias)
    with a constant float32 weight, each intermediate used once; else None."""
    if not isinstance(y, relax.Var) or y not in g.single:
        return None
    v, bias, bias_var = g.value.get(y), None, None
    if _op(v) == "relax.add":
        a, b = v.args
        core, c = (a, b) if isinstance(b, Constant) else (b, a)
        bias = _f32_const(c)
        if bias is None or not isinstance(core, relax.Var) or core not in g.single:
            return None
        bias_var, y, v = y, core, g.value.get(core)
    if _op(v) not in _CONVS + ("relax.matmul",) or _f32_const(v.args[1]) is None \
            or str(getattr(v.args[0].ty, "dtype", "")) != "float32":
        return None
    return y, v, bias, bias_var


def _channels(call: relax.Call, axis: int) -> int | None:
    """The number of output channels if ``axis`` of the call's output is its output-channel axis, else None."""
    w = call.args[1].value.shape
    rank = len(call.ty.shape)
    axis = axis % rank
    if _op(call) == "relax.matmul":
        return int(w[1]) if len(w) == 2 and axis == rank - 1 else None
    a = call.attrs
    if not (str(a.data_layout).startswith("NC") and str(a.kernel_layout).startswith("OI")
            and str(a.out_layout).startswith("NC") and axis == 1):
        return None
    return int(w[0])


def _fold(g: Graph, bn: relax.Call):
    """The folded (core var, new core call, new bias) for one batch_norm call, or None."""
    a = bn.attrs
    gamma, beta, mean, var = (_f32_const(e) for e in bn.args[1:5])
    layer = _layer(g, bn.args[0])
    if bool(a.training) or any(p is None for p in (gamma, beta, mean, var)) or layer is None:
        return None
    core_var, core, bias, bias_var = layer
    o = _channels(core, int(a.axis))
    if o is None or any(p.size != o for p in (gamma, beta, mean, var)):
        return None
    rank = len(core.ty.shape)
    per_channel = [_bias_shape(core, o, rank)] + ([(1, o)] if _op(core) == "relax.matmul" else [])
    if bias is not None and bias.size != 1 and bias.shape not in per_channel:
        return None  # a bias along another axis
    s = (gamma if bool(a.scale) else np.ones(o)) / np.sqrt(var + float(a.epsilon))
    b = np.zeros(o) if bias is None else np.broadcast_to(bias.reshape(-1), (o,))
    b_new = (b - mean) * s + (beta if bool(a.center) else 0.0)
    w = core.args[1].value.numpy().astype(np.float64)
    w_new = w * (s.reshape(-1, *[1] * (w.ndim - 1)) if _op(core) in _CONVS else s.reshape(1, -1))
    new_core = relax.Call(core.op, [core.args[0], relax.const(w_new.astype(np.float32))], core.attrs)
    return core_var, new_core, b_new.astype(np.float32).reshape(_bias_shape(core, o, rank)), bias_var


def _bias_shape(core: relax.Call, o: int, rank: int) -> tuple:
    return (o,) if _op(core) == "relax.matmul" else (1, o) + (1,) * (rank - 2)


def fold_bn(mod: tvm.IRModule) -> tvm.IRModule:
    """``mod`` with every foldable inference-mode batch_norm of ``main`` folded into its conv / dense."""
    if "main" not in [gv.name_hint for gv in mod.functions]:
        return mod
    func = mod["main"]
    g = Graph(func)
    replace, drop = {}, set()
    for bn_var, v in g.value.items():
        if _op(v) != "relax.nn.batch_norm":
            continue
        item = g.consumer.get(bn_var) if bn_var in g.single else None  # the only use must be t[0]
        tgi = g.value.get(item)
        if not (isinstance(tgi, relax.TupleGetItem) and int(tgi.index) == 0):
            continue
        folded = _fold(g, v)
        if folded is None:
            continue
        core_var, new_core, bias, bias_var = folded
        replace[core_var] = new_core
        replace[item] = relax.op.add(core_var, relax.const(bias))
        drop.update({bn_var} | ({bias_var} if bias_var is not None else set()))
    if not replace:
        return mod
    blocks = []
    for block in func.body.blocks:
        bindings = [relax.VarBinding(bd.var, replace[bd.var]) if bd.var in replace else bd
                    for bd in block.bindings if bd.var not in drop]
        blocks.append(relax.DataflowBlock(bindings) if isinstance(block, relax.DataflowBlock)
                      else relax.BindingBlock(bindings))
    out = tvm.IRModule({gv: f for gv, f in mod.functions.items() if gv.name_hint != "main"}, attrs=mod.attrs)
    out["main"] = relax.Function(func.params, relax.SeqExpr(blocks, func.body.body), func.ret_ty, attrs=func.attrs)
    return relax.transform.Normalize()(out)
