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

import warnings

import numpy as np
import tvm
from tvm import relax
from tvm.ir.expr import Constant

from . import inputs, lowbit, requant
from .precision import layer_names
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


def _probes(mod: tvm.IRModule):
    """(main, targets, [(target index, probed expr)], run) where run(sample, k) gives the probes' values."""
    mod = prepare(mod)
    func = mod["main"]
    targets = _targets(func)
    g = requant.Graph(func)
    probes = [(i, e) for i, b in enumerate(targets) for e in _calibrated(g, b)]
    body = relax.SeqExpr(func.body.blocks, relax.Tuple([e for _, e in probes]))
    probe = tvm.IRModule({gv: f for gv, f in mod.functions.items() if gv.name_hint != "main"})
    probe["main"] = relax.Function(func.params, body, relax.TupleType([e.ty for _, e in probes]))  # keeps the
    probe = relax.transform.Normalize()(probe)  # PrimFuncs the importer made (ONNX Clip)
    vm = relax.VirtualMachine(tvm.compile(probe, target="llvm"), tvm.cpu())

    def run(s, k):
        args = inputs.convert(func.params, s, f"calibration sample {k}")
        return [o.numpy() for o in vm["main"](*[tvm.runtime.tensor(a) for a in args])]
    return func, targets, probes, run


def _per_target(values: list, probes: list, n: int) -> list[list]:
    out = [[] for _ in range(n)]
    for (i, _), v in zip(probes, values):
        out[i].append(v)
    return out


def calibrate(mod: tvm.IRModule, samples, histograms: bool = False):
    """max |operand| of every quantisation target over ``samples`` (a list of input tuples, each checked and cast
    to the declared input dtypes by inputs.convert): per target, the input's and (activation x activation
    matmul) the second operand's; for a constant weight, the output of its bias/activation chain and the
    pre-activation (requant.py). ``histograms``: also (a second pass) each value's histogram over
    [-max, max] (lowbit.histogram): returns (amax, hists) in the same nesting."""
    if not _targets(_main(mod)):
        return ([], []) if histograms else []
    func, targets, probes, run = _probes(mod)
    amax = np.zeros(len(probes))
    for k, s in enumerate(samples):
        amax = np.maximum(amax, [np.abs(o).max() for o in run(s, k)])  # NaN propagates
    bad = np.flatnonzero(~np.isfinite(amax))
    if bad.size:  # finite inputs, but NaN/Inf inside the model: every output would be NaN
        b = targets[probes[bad[0]][0]]
        raise ValueError(f"calibration: the model computes non-finite values (NaN/Inf) around "
                         f"{b.value.op.name} '{b.var.name}'")
    out = _per_target(amax.tolist(), probes, len(targets))
    if not histograms:
        return out
    hist = [np.zeros(lowbit.HIST_BINS, np.int64) for _ in probes]
    for k, s in enumerate(samples):
        for j, o in enumerate(run(s, k)):
            hist[j] += lowbit.histogram(o, amax[j])
    return out, _per_target(hist, probes, len(targets))


def quantize(mod: tvm.IRModule, amax: list[list[float]], requant_on: str = "alu", modes: dict | None = None,
             hists: list | None = None, per_channel: bool = True, masks: dict | None = None) -> tvm.IRModule:
    """Rewrite the float targets (same order as ``calibrate``) into int8 ops. ``requant_on="alu"``: constant-weight
    layers requantise to int8 on the accelerator (requant.py; per-tensor weights, per-channel with ``modes``);
    ``"shift"``: the same with a power-of-two scale (a shift, no ALU multiply: VTA's scheme and hardware);
    ``"cpu"``: per-channel weights and a float rescale on the CPU. Activation x activation matmuls always rescale on the CPU.

    ``modes`` ({layer name: precision.Mode}, with ``hists`` from ``calibrate(..., histograms=True)``): each
    layer's weights at w_bits (per output channel if ``per_channel``, else per tensor; clipping by least squared
    error, lowbit.py), 2:4-pruned first if sparse (``masks`` receives each pruned layer's keep mask), its input
    at a_bits (clipping by least squared error on the calibration histogram below 8 bits); a requantising
    layer's result saturates to the input range of the layers that read it when they are all its readers and
    agree (else it stays 8-bit and a narrower reader quantises it again). None: today's int8 quantiser.
    The int32 result of each layer is bound to a variable named after the layer (precision.layer_names)."""
    if requant_on not in ("alu", "shift", "cpu"):
        raise ValueError(f"requant_on must be 'alu', 'shift' or 'cpu', got {requant_on!r}")
    func = _main(mod)
    targets = _targets(func)
    if len(targets) != len(amax):
        raise ValueError(f"calibration has {len(amax)} entries but the model has {len(targets)} targets")
    names = layer_names(targets)
    g = requant.Graph(func)
    on_acc = lambda b: requant_on in ("alu", "shift") and isinstance(b.value.args[1], Constant)
    chains = {b.var: requant.chain(g, b.var, b.value) for b in targets if on_acc(b)}
    reads: dict = {}  # float var -> the input bits of each requantising layer reading it
    for b, n in zip(targets, names):
        if on_acc(b):
            reads.setdefault(b.value.args[0], []).append(8 if modes is None else modes[n].a_bits)
    # chain result -> the input range of its readers when they are all requantising layers at the same bits;
    # else 8 bits, so that other readers (a residual add, a wider layer) do not see a narrower layer's range
    out_bits = {x: bits[0] for x, bits in reads.items() if len(set(bits)) == 1 and len(bits) == g.uses.get(x)}
    clip = lambda a, h, bits: a if bits == 8 or h is None else lowbit.clip_from_histogram(h, a, bits)
    replace = {}  # binding var -> [new bindings]
    ints = {}  # float var -> (int8 var, scale, bits) of layers requantised on the accelerator
    for i, (b, a) in enumerate(zip(targets, amax)):
        m = modes[names[i]] if modes is not None else None
        h = hists[i] if hists is not None else [None] * len(a)
        v = b.value
        acc_ty = relax.TensorType(v.ty.shape, "int32")
        core = relax.Var(names[i], acc_ty)
        if not isinstance(v.args[1], Constant):  # activation x activation
            bits = (8, 8) if m is None else (m.a_bits, m.w_bits)
            xq, sx = _quant(v.args[0], clip(a[0], h[0], bits[0]), bits[0], m is None)
            wq, sw = _quant(v.args[1], clip(a[1], h[1], bits[1]), bits[1], m is None)
            replace[b.var] = [relax.VarBinding(core, relax.op.matmul(xq, wq, out_dtype="int32")),
                              relax.VarBinding(b.var, _rescale(core, np.float32(sx * sw)))]
            continue
        w = v.args[1].value.numpy().astype(np.float64)
        conv = v.op.name == "relax.nn.conv2d"
        if m is not None and m.sparse:
            w, keep = lowbit.prune_2_4(w, 1 if conv else 0)
            if masks is not None:
                masks[names[i]] = keep
        x = v.args[0]
        if on_acc(b):
            ch = chains[b.var]
            if x in ints and ints[x][2] <= (8 if m is None else m.a_bits):  # the previous layer's int8 result
                xq, sx, _ = ints[x]  # feeds this one directly (same tensor, scale, within its input range)
            else:
                xq, sx = _quant(x, clip(a[0], h[0], 8 if m is None else m.a_bits), 8 if m is None else m.a_bits,
                                m is None)
            if m is None:
                wq, sw = requant.weight_int8(w)
            else:
                wq, sw = lowbit.quantize_weight(w, m.w_bits, 0 if conv else 1,
                                                per_channel and requant_on == "alu")
                sw = sw if per_channel and requant_on == "alu" else float(sw[0])
            ob = out_bits.get(ch.last, 8)
            try:
                q, sy = requant.requantize(core, sx, sw, v, ch, clip(a[1], h[1], ob), a[2],
                                           pow2=requant_on == "shift", out_bits=ob)
            except requant.RangeError as e:  # exact in float on the CPU instead (the int8 conv stays a kernel)
                warnings.warn(f"{names[i]}: the integer requantisation cannot represent this layer ({e}); its "
                              "int32 result is rescaled in float on the CPU", UserWarning, stacklevel=2)
                scale = (sx * np.broadcast_to(sw, (w.shape[0 if conv else 1],))).astype(np.float32)
                replace[b.var] = [relax.VarBinding(core, requant.core(xq, wq, v)), relax.VarBinding(
                    b.var, _rescale(core, scale.reshape(1, -1, 1, 1) if conv else scale))]
                continue
            qv = relax.Var(ch.last.name + "_q", relax.TensorType(ch.last.ty.shape, "int8"))
            replace[ch.last] = [relax.VarBinding(core, requant.core(xq, wq, v)), relax.VarBinding(qv, q),
                                relax.VarBinding(ch.last, _rescale(qv, np.float32(sy)))]
            ints[ch.last] = (qv, sy, ob)
        else:  # per-channel weights, float rescale on the CPU
            bits = 8 if m is None else m.a_bits
            xq, sx = _quant(x, clip(a[0], h[0], bits), bits, m is None)
            if m is None:
                ws = np.abs(w).max(axis=(1, 2, 3) if conv else (0,)) / 127.0
                ws[ws == 0] = 1.0
                wq = np.clip(np.round(w / (ws.reshape(-1, 1, 1, 1) if conv else ws.reshape(1, -1))), -127,
                             127).astype(np.int8)
            else:
                wq, ws = lowbit.quantize_weight(w, m.w_bits, 0 if conv else 1, per_channel)
            scale = (sx * ws).astype(np.float32)
            replace[b.var] = [relax.VarBinding(core, requant.core(xq, wq, v)),
                              relax.VarBinding(b.var, _rescale(core, scale.reshape(1, -1, 1, 1) if conv else scale))]
    new_blocks = [relax.BindingBlock([n for bd in block.bindings for n in replace.get(bd.var, [bd])])
                  for block in func.body.blocks]
    out = tvm.IRModule({gv: f for gv, f in mod.functions.items() if gv.name_hint != "main"})
    out["main"] = relax.Function(func.params, relax.SeqExpr(new_blocks, func.body.body), func.ret_ty,
                                 attrs=func.attrs)
    out = relax.transform.DeadCodeElimination()(relax.transform.Normalize()(out))
    return out.with_attr(_PREPARED, True).with_attr(LAYERS, names)


LAYERS = "tvm_codesign.layers"  # module attribute: the layer names quantize gave the int32 results


def _rescale(acc: relax.Expr, scale) -> relax.Expr:
    return relax.op.multiply(relax.op.astype(acc, "float32"), relax.const(scale))


def _quant(x: relax.Expr, amax: float, bits: int = 8, int8: bool = True) -> tuple[relax.Expr, float]:
    """x -> clip(round(x / s), lo, hi) as int8 with s = amax / hi (per tensor, symmetric). ``int8``: today's
    range [-127, 127]; else the ``bits`` range [-2^(bits-1), 2^(bits-1) - 1]."""
    lo, hi = (-127, 127) if int8 else lowbit.qrange(bits)
    s = (amax / hi) if amax > 0 else 1.0
    op = relax.op
    return op.astype(op.clip(op.round(op.multiply(x, relax.const(np.float32(1.0 / s)))), lo, hi), "int8"), s
