"""TIR frontend: recognise a user's int8 matmul / batch matmul / NCHW conv2d PrimFunc as a Workload.

Recognised: one reduction block ``C[...] += cast(int32, P[...]) * cast(int32, Q[...])`` (int8 P, Q);
matmul weights as (N, K) or (K, N); conv2d with an optional zero-padding block, any stride, no
dilation; then an optional elementwise epilogue chain: + bias[o], + 2^(s-1) (rounding), >> s, max/min
with constants (clip, relu), cast to int8. Anything else raises UnsupportedOp naming the block and why.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tvm
from tvm import s_tir, tirx
from tvm.ir import Call, TensorLoad

from ..errors import CodesignError
from ..lowering.affine import coefficients, compile_expr
from ..schedules.workload import Workload


class UnsupportedOp(CodesignError, ValueError):
    """A PrimFunc the accelerator cannot run; the message says which block and why."""


@dataclass
class Recognised:
    workload: Workload
    roles: dict               # "data"/"weight"/"bias" -> position among the function's inputs
    weight_kn: bool = False   # matmul weight given as (K, N) (or (B, K, N))
    out: int = -1             # position of the output among all the function's parameters

    def canonical(self, inputs):
        """The function's inputs (in its parameter order) -> (data, weight, bias)."""
        if len(inputs) != len(self.roles):
            raise TypeError(f"expected {len(self.roles)} inputs ({', '.join(sorted(self.roles, key=self.roles.get))}),"
                            f" got {len(inputs)}")
        w = np.asarray(inputs[self.roles["weight"]])
        if self.weight_kn:
            w = np.swapaxes(w, -1, -2)
        b = inputs[self.roles["bias"]] if "bias" in self.roles else None
        return np.asarray(inputs[self.roles["data"]]), np.ascontiguousarray(w), b


def _func(op) -> tirx.PrimFunc:
    if isinstance(op, tirx.PrimFunc):
        return op
    if isinstance(op, tvm.IRModule):
        funcs = [f for f in op.functions.values() if isinstance(f, tirx.PrimFunc)]
        if len(funcs) == 1:
            return funcs[0]
        raise UnsupportedOp(f"expected one PrimFunc in the IRModule, found {len(funcs)}")
    raise UnsupportedOp(f"expected a tvm PrimFunc, IRModule or Workload, got {type(op).__name__}")


def _strip(e):
    return e.value if isinstance(e, tirx.Cast) else e


def _int(e) -> int | None:
    e = _strip(e)
    return int(e.value) if isinstance(e, tirx.IntImm) else None


def recognise(op) -> Recognised:
    func = _func(op)
    try:
        sch = s_tir.Schedule(func)
        blocks = [sch.get(b) for b in sch.get_child_blocks(sch.get_sblock("root"))]
    except Exception as e:
        raise UnsupportedOp(f"cannot read the function's blocks (write it with @T.prim_func(s_tir=True) or TE): "
                            f"{str(e).splitlines()[0]}") from None
    params = list(func.params)
    red = [b for b in blocks if any(int(iv.iter_type) == 2 for iv in b.iter_vars)]
    if len(red) != 1:
        raise UnsupportedOp(f"expected exactly one reduction block, found {len(red)} "
                            f"({[b.name_hint for b in red]})")
    red = red[0]
    exprs, pad = {}, {}
    for b in blocks:
        if b.same_as(red):
            break
        pad[b.body.buffer] = _pad_block(b)
    kind, dims, data_buf, weight_buf, kn = _reduction(red, pad)
    acc = red.body.buffer
    exprs[acc] = ("acc",)
    out_buf = acc
    for b in blocks[blocks.index(red) + 1:]:
        st = b.body
        if not isinstance(st, tirx.BufferStore):
            raise UnsupportedOp(f"block {b.name_hint}: not a single elementwise store")
        exprs[st.buffer] = _epi(st.value, exprs, b.name_hint)
        out_buf = st.buffer
    tree = exprs[out_buf]
    epi = _match_epilogue(tree)
    bias_buf = epi.pop("bias_buf", None)
    inputs = [p for p in params if not p.same_as(out_buf)]
    if len(inputs) + 1 != len(params):
        raise UnsupportedOp("the last block must write one of the function's parameters")
    pos = {}
    for role, buf in (("data", data_buf), ("weight", weight_buf), ("bias", bias_buf)):
        if buf is None:
            continue
        idx = [i for i, p in enumerate(inputs) if p.same_as(buf)]
        if not idx:
            raise UnsupportedOp(f"the {role} operand is not a parameter of the function")
        pos[role] = idx[0]
    if len(pos) != len(inputs):
        raise UnsupportedOp("the function has parameters that are not data, weight or bias")
    if kind == "conv2d":
        wl = Workload.conv2d(dims["n"], dims["ci"], dims["h"], dims["w"], dims["co"], (dims["kh"], dims["kw"]),
                             dims["stride"], dims["pad"], **epi)
    elif kind == "dense":
        wl = Workload.dense(dims["m"], dims["k"], dims["n"], **epi)
    else:
        wl = Workload.batch_matmul(dims["b"], dims["m"], dims["k"], dims["n"], **epi)
    if tuple(int(s) for s in out_buf.shape) != _out_shape(wl):
        raise UnsupportedOp(f"output shape {tuple(out_buf.shape)} does not match {wl.describe()}")
    return Recognised(wl, pos, kn, next(i for i, p in enumerate(params) if p.same_as(out_buf)))


def _out_shape(wl: Workload) -> tuple:
    if wl.kind == "conv2d":
        return (wl.n, wl.co, wl.oh, wl.ow)
    if wl.kind == "dense":
        return (wl.n, wl.co)
    return (wl.groups, wl.n, wl.co)


def _pad_block(b):
    """A zero-padding block: P[n, c, y, x] = if_then_else(cond, X[n, c, y - ph, x - pw], 0)."""
    st = b.body
    v = st.value
    if isinstance(v, TensorLoad) and len(v.indices) == 4 and all(
            isinstance(a, tirx.Var) and a.same_as(c) for a, c in zip(v.indices, st.indices)):
        return v.source, (0, 0)  # a plain copy (e.g. topi's pad_temp with padding 0)
    if not (isinstance(v, Call) and v.op.name == "prim.if_then_else" and isinstance(v.args[1], TensorLoad)
            and _int(v.args[2]) == 0):
        raise UnsupportedOp(f"block {b.name_hint} before the reduction is not a zero-padding block")
    src = v.args[1]
    offs = []
    for dst_i, src_i in zip(st.indices, src.indices):
        c = coefficients(src_i - dst_i, [iv.var for iv in b.iter_vars])
        if c is None or any(c):
            raise UnsupportedOp(f"block {b.name_hint}: padding indices are not shifts")
        offs.append(compile_expr(src_i - dst_i)({iv.var: 0 for iv in b.iter_vars}))
    if len(offs) != 4 or offs[0] or offs[1] or offs[2] > 0 or offs[3] > 0:
        raise UnsupportedOp(f"block {b.name_hint}: only spatial (H, W) zero padding of NCHW data is supported")
    return src.source, (-offs[2], -offs[3])


def _reduction(b, pad):
    st = b.body
    v = st.value
    if not (isinstance(v, tirx.Add) and isinstance(_strip(v.a), TensorLoad) and v.a.source.same_as(st.buffer)
            and isinstance(v.b, tirx.Mul)):
        raise UnsupportedOp(f"block {b.name_hint}: expected C[...] = C[...] + P[...] * Q[...]")
    if str(st.buffer.dtype) != "int32":
        raise UnsupportedOp(f"block {b.name_hint}: accumulates in {st.buffer.dtype}, the accelerator uses int32")
    loads = []
    for x in (v.b.a, v.b.b):
        x = _strip(x)
        if not isinstance(x, TensorLoad) or str(x.source.dtype) != "int8":
            raise UnsupportedOp(f"block {b.name_hint}: operands must be int8 buffer loads cast to int32")
        loads.append(x)
    spatial = [iv.var for iv in b.iter_vars if int(iv.iter_type) == 0]
    reduce_ = [iv.var for iv in b.iter_vars if int(iv.iter_type) == 2]
    allv = spatial + reduce_
    ext = {iv.var: int(iv.dom.extent) for iv in b.iter_vars}
    same = lambda a, v: isinstance(a, tirx.Var) and a.same_as(v)
    pos = lambda v: next(i for i, u in enumerate(allv) if u.same_as(v))
    if not all(any(same(i, s_) for s_ in spatial) for i in st.indices):
        raise UnsupportedOp(f"block {b.name_hint}: output indices must be the spatial loop variables")
    P, Q = loads if any(same(i, st.indices[0]) for i in loads[0].indices) else loads[::-1]
    rank = len(st.indices)
    if rank in (2, 3) and len(reduce_) == 1:
        k = reduce_[0]
        *bat, i, j = st.indices
        batch_ok = lambda load: len(load.indices) == rank and all(same(a, c) for a, c in zip(load.indices[:-2], bat))
        if batch_ok(P) and same(P.indices[-1], k) and same(P.indices[-2], i) and batch_ok(Q):
            kn = same(Q.indices[-2], k) and same(Q.indices[-1], j)
            if kn or (same(Q.indices[-1], k) and same(Q.indices[-2], j)):
                d = {"m": ext[i], "n": ext[j], "k": ext[k]}
                if rank == 3:
                    d["b"] = ext[bat[0]]
                return ("dense" if rank == 2 else "batch_matmul"), d, P.source, Q.source, kn
        raise UnsupportedOp(f"block {b.name_hint}: not a matmul C[i,j] += A[i,k] * B[j,k] (or B[k,j])")
    if rank == 4 and len(reduce_) == 3:
        n, o, y, x = st.indices
        if len(Q.indices) != 4 or not same(Q.indices[0], o) or \
                not all(any(same(q, r) for r in reduce_) for q in Q.indices[1:]):
            raise UnsupportedOp(f"block {b.name_hint}: weights must be indexed [o, c, kh, kw]")
        c, kh, kw = Q.indices[1:]
        cy = coefficients(P.indices[2], allv)
        cx = coefficients(P.indices[3], allv)
        if not (same(P.indices[0], n) and same(P.indices[1], c)) or cy is None or cx is None:
            raise UnsupportedOp(f"block {b.name_hint}: data must be indexed [n, c, y*s + kh, x*s + kw]")
        sy, sx = cy[pos(y)], cx[pos(x)]
        if cy[pos(kh)] != 1 or cx[pos(kw)] != 1:
            raise UnsupportedOp(f"block {b.name_hint}: dilated convolution is not supported")
        src, padding = P.source, (0, 0)
        for buf, (orig, p) in pad.items():
            if buf.same_as(src):
                src, padding = orig, p
        shape = [int(s_) for s_ in src.shape]
        d = {"n": ext[n], "ci": ext[c], "h": shape[2], "w": shape[3], "co": ext[o], "kh": ext[kh], "kw": ext[kw],
             "stride": (sy, sx), "pad": padding}
        return "conv2d", d, src, Q.source, False
    raise UnsupportedOp(f"block {b.name_hint}: rank-{rank} output with {len(reduce_)} reduction axes is neither "
                        f"a matmul, batch matmul nor conv2d")


def _epi(e, exprs, name):
    """TIR elementwise expression -> a small tree over ("acc",), ("imm", v), ("bias", buf)."""
    if isinstance(e, tirx.Cast):
        return ("cast", str(e.ty), _epi(e.value, exprs, name))
    if isinstance(e, TensorLoad):
        for buf, t in exprs.items():
            if e.source.same_as(buf):
                return t
        if len(e.indices) == 1:
            return ("bias", e.source)
        raise UnsupportedOp(f"block {name}: reads {e.source.name}, which is neither the result nor a 1-D bias")
    if _int(e) is not None:
        return ("imm", _int(e))
    for cls, op in ((tirx.Add, "add"), (tirx.Max, "max"), (tirx.Min, "min")):
        if isinstance(e, cls):
            return (op, _epi(e.a, exprs, name), _epi(e.b, exprs, name))
    if isinstance(e, tirx.RShift):
        return ("shr", _epi(e.a, exprs, name), _epi(e.b, exprs, name))
    raise UnsupportedOp(f"block {name}: epilogue expression {e} is not add / shift / clip / cast")


def _match_epilogue(t) -> dict:
    """Outside-in: cast, clip (min/max), shift (with rounding add), bias add, accumulator."""
    out = {}
    if t[0] == "cast":
        if t[1] != "int8":
            raise UnsupportedOp(f"output cast to {t[1]}: the accelerator stores int8 or int32")
        out["out_dtype"], t = "int8", t[2]
    lo = hi = None
    while t[0] in ("min", "max") and t[2][0] == "imm":
        if t[0] == "min":
            hi = t[2][1] if hi is None else min(hi, t[2][1])
        else:
            lo = t[2][1] if lo is None else max(lo, t[2][1])
        t = t[1]
    if lo is not None or hi is not None:
        out["clip"] = (lo, hi)
    elif out.get("out_dtype") == "int8":
        out["saturate"] = False  # a bare cast truncates
    if t[0] == "shr" and t[2][0] == "imm":
        s, t = t[2][1], t[1]
        if s > 0 and t[0] == "add" and t[2] == ("imm", 1 << (s - 1)):
            t = t[1]
        elif s > 0:
            raise UnsupportedOp(f">> {s} without the round-half-up add of {1 << (s - 1)} before it")
        out["shift"] = s
    if t[0] == "add" and t[2][0] == "bias":
        out["bias"], out["bias_buf"], t = True, t[2][1], t[1]
    if t != ("acc",):
        raise UnsupportedOp(f"epilogue not of the form cast(clip((acc + bias + 2^(s-1)) >> s)): left with {t}")
    return out
