"""Post-training quantisation of float Relax models for the accelerator.

Targets: float32 conv2d (any groups, depthwise included; no dilation, symmetric padding, NCHW) and matmul
whose weight is a constant, and matmul of two activations with equal batch dims (attention: both operands are
quantised per tensor like x). ``calibrate`` runs the float model on the CPU over sample inputs and records max |x|
of each target's activation operands; ``quantize`` rewrites each target as
    x_q = clip(round(x / s_x), -127, 127) as int8          (per-tensor symmetric, s_x = amax / 127)
    w_q = round(w / s_w) as int8, constant                 (per output channel, s_w = max|w_o| / 127)
    y   = float(conv_or_matmul_int8(x_q, w_q) -> int32) * (s_x * s_w)
so the integer conv/matmul can be offloaded and the float rescale (and everything else) runs on the CPU.
"""
from __future__ import annotations

import numpy as np
import tvm
from tvm import relax
from tvm.ir.expr import Constant

from . import inputs, requant
from .fold_bn import fold_bn

TARGET_OPS = ("relax.nn.conv2d", "relax.matmul")


def _is_float(e) -> bool:
    return str(getattr(e.ty, "dtype", "")) == "float32"


def _activation_matmul(v: relax.Call) -> bool:
    """matmul of two float activations with equal batch dims (attention): both operands quantised."""
    try:
        dx, dw = [int(d) for d in v.args[0].ty.shape], [int(d) for d in v.args[1].ty.shape]
    except (TypeError, AttributeError):
        return False
    return _is_float(v.args[1]) and len(dx) == len(dw) >= 3 and dx[:-2] == dw[:-2]


def _targets(func: relax.Function) -> list:
    """Bindings (in order) whose value is a quantisable float conv2d / matmul: a constant weight, or (matmul)
    two activations."""
    out = []
    for block in func.body.blocks:
        for bd in block.bindings:
            v = bd.value
            if not (isinstance(v, relax.Call) and getattr(v.op, "name", None) in TARGET_OPS):
                continue
            x, w = v.args[0], v.args[1]
            if not _is_float(x):
                continue
            if v.op.name == "relax.nn.conv2d":
                a = v.attrs
                pt, pl, pb, pr = (int(p) for p in a.padding)
                if not isinstance(w, Constant) or tuple(int(d) for d in a.dilation) != (1, 1) \
                        or (pt, pl) != (pb, pr) or str(a.data_layout) != "NCHW" or str(a.kernel_layout) != "OIHW":
                    continue
            elif not (isinstance(w, Constant) and w.value.numpy().ndim == 2) and not _activation_matmul(v):
                continue
            out.append(bd)
    return out


def _calibrated(g: requant.Graph, b) -> list:
    """What calibration measures for a target: its input and, for activation x activation, the second operand;
    for a constant weight, the output of its bias/activation chain and the pre-activation (requant.py)."""
    v = b.value
    if not isinstance(v.args[1], Constant):
        return [v.args[0], v.args[1]]
    ch = requant.chain(g, b.var, v)
    return [v.args[0], ch.last, ch.pre]


_PREPARED = "tvm_codesign.prepared"


def prepare(mod: tvm.IRModule) -> tvm.IRModule:
    """Fold constants (e.g. transposed linear weights) and inference-mode batch norms (into the conv / dense
    before them), and leave dataflow blocks; done once per model."""
    if mod.attrs is not None and _PREPARED in mod.attrs:
        return mod
    mod = relax.transform.ToNonDataflow()(fold_bn(relax.transform.FoldConstant()(mod)))
    return mod.with_attr(_PREPARED, True)


def _main(mod: tvm.IRModule) -> relax.Function:
    return prepare(mod)["main"]


def calibrate(mod: tvm.IRModule, samples) -> list[list[float]]:
    """max |operand| of every quantisation target over ``samples`` (a list of input tuples, each checked and cast
    to the declared input dtypes by inputs.convert): per target, the input's and (activation x activation
    matmul) the second operand's."""
    mod = prepare(mod)
    func = mod["main"]
    targets = _targets(func)
    if not targets:
        return []
    g = requant.Graph(func)
    probes = [e for b in targets for e in _calibrated(g, b)]
    body = relax.SeqExpr(func.body.blocks, relax.Tuple(probes))
    probe = tvm.IRModule({gv: f for gv, f in mod.functions.items() if gv.name_hint != "main"})
    probe["main"] = relax.Function(func.params, body, relax.TupleType([e.ty for e in probes]))  # keeps the
    probe = relax.transform.Normalize()(probe)  # PrimFuncs the importer made (ONNX Clip)
    vm = relax.VirtualMachine(tvm.compile(probe, target="llvm"), tvm.cpu())
    amax = np.zeros(len(probes))
    for k, s in enumerate(samples):
        outs = vm["main"](*[tvm.runtime.tensor(a) for a in inputs.convert(func.params, s, f"calibration sample {k}")])
        amax = np.maximum(amax, [np.abs(o.numpy()).max() for o in outs])  # NaN propagates
    bad = np.flatnonzero(~np.isfinite(amax))
    if bad.size:  # finite inputs, but NaN/Inf inside the model: every output would be NaN
        b = [b for b in targets for _ in _calibrated(g, b)][bad[0]]
        raise ValueError(f"calibration: the model computes non-finite values (NaN/Inf) around "
                         f"{b.value.op.name} '{b.var.name}'")
    out, i = [], 0
    for b in targets:
        n = len(_calibrated(g, b))
        out.append(amax[i:i + n].tolist())
        i += n
    return out


def quantize(mod: tvm.IRModule, amax: list[list[float]], requant_on: str = "alu") -> tvm.IRModule:
    """Rewrite the float targets (same order as ``calibrate``) into int8 ops. ``requant_on="alu"``: constant-weight
    layers requantise to int8 on the accelerator (requant.py, per-tensor weights); ``"shift"``: the same with a
    power-of-two scale (a shift, no ALU multiply: VTA's scheme and hardware); ``"cpu"``: per-channel weights
    and a float rescale on the CPU. Activation x activation matmuls always rescale on the CPU."""
    if requant_on not in ("alu", "shift", "cpu"):
        raise ValueError(f"requant_on must be 'alu', 'shift' or 'cpu', got {requant_on!r}")
    func = _main(mod)
    targets = _targets(func)
    if len(targets) != len(amax):
        raise ValueError(f"calibration has {len(amax)} entries but the model has {len(targets)} targets")
    g = requant.Graph(func)
    replace = {}  # binding var -> [new bindings]
    ints = {}  # float var -> (int8 var, scale) of layers requantised on the accelerator
    for b, a in zip(targets, amax):
        if requant_on in ("alu", "shift") and isinstance(b.value.args[1], Constant):
            ch = requant.chain(g, b.var, b.value)
            x = b.value.args[0]  # the previous layer's int8 result feeds this one directly (same tensor, scale)
            xq, sx = ints[x] if x in ints else _quant(x, a[0])
            q, sy = requant.requantize(xq, sx, b.value, ch, a[1], a[2], pow2=requant_on == "shift")
            qv = relax.Var(ch.last.name + "_q", relax.TensorType(ch.last.ty.shape, "int8"))
            replace[ch.last] = [relax.VarBinding(qv, q), relax.VarBinding(
                ch.last, relax.op.multiply(relax.op.astype(qv, "float32"), relax.const(np.float32(sy))))]
            ints[ch.last] = (qv, sy)
        else:
            replace[b.var] = [relax.VarBinding(b.var, _rewrite(
                b.value, a[:2] if not isinstance(b.value.args[1], Constant) else a[:1]))]
    new_blocks = [relax.BindingBlock([n for bd in block.bindings for n in replace.get(bd.var, [bd])])
                  for block in func.body.blocks]
    out = tvm.IRModule({gv: f for gv, f in mod.functions.items() if gv.name_hint != "main"})
    out["main"] = relax.Function(func.params, relax.SeqExpr(new_blocks, func.body.body), func.ret_ty,
                                 attrs=func.attrs)
    out = relax.transform.DeadCodeElimination()(relax.transform.Normalize()(out))
    return out.with_attr(_PREPARED, True)


def _quant(x: relax.Expr, amax: float) -> tuple[relax.Expr, float]:
    """x -> clip(round(x / s), -127, 127) as int8 with s = amax / 127 (per tensor, symmetric)."""
    s = (amax / 127.0) if amax > 0 else 1.0
    op = relax.op
    return op.astype(op.clip(op.round(op.multiply(x, relax.const(np.float32(1.0 / s)))), -127, 127), "int8"), s


def _rewrite(call: relax.Call, amax: list[float]) -> relax.Expr:
    op = relax.op
    xq, sx = _quant(call.args[0], amax[0])
    if len(amax) == 2:  # activation x activation
        wq, sw = _quant(call.args[1], amax[1])
        acc = op.matmul(xq, wq, out_dtype="int32")
        return op.multiply(op.astype(acc, "float32"), relax.const(np.float32(sx * sw)))
    w = call.args[1].value.numpy().astype(np.float64)
    conv = call.op.name == "relax.nn.conv2d"
    axis = (1, 2, 3) if conv else (0,)
    ws = np.abs(w).max(axis=axis) / 127.0
    ws[ws == 0] = 1.0
    wq = np.clip(np.round(w / (ws.reshape(-1, 1, 1, 1) if conv else ws.reshape(1, -1))), -127, 127).astype(np.int8)
    if conv:
        a = call.attrs
        acc = op.nn.conv2d(xq, relax.const(wq), strides=a.strides, padding=a.padding, dilation=a.dilation,
                           groups=a.groups, data_layout="NCHW", kernel_layout="OIHW", out_dtype="int32")
        scale = (sx * ws).astype(np.float32).reshape(1, -1, 1, 1)
    else:
        acc = op.matmul(xq, relax.const(wq), out_dtype="int32")
        scale = (sx * ws).astype(np.float32)
    return op.multiply(op.astype(acc, "float32"), relax.const(scale))
