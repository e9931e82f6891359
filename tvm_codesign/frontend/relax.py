"""Relax offload: int8 conv2d / matmul (int32 out) legalize to accelerator kernels, the rest to the CPU.

``offload(config)`` is a pass a TVM user applies to their own IRModule before ``tvm.compile``:

    mod = tvm_codesign.frontend.relax.offload("vta_default")(mod)
    vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())

Each offloaded op becomes three ``call_tir``s: pack (CPU TIR: channel padding, packed layout), the
tensorized accelerator kernel, unpack (CPU TIR). Packing of constant weights is folded at compile time.
Ops the accelerator does not take (dilation, asymmetric padding, non-NCHW, non-int8) keep TVM's
default CPU legalization; ``offloaded(mod)`` lists what went where.

Image groups (``batch_programs``): with "per_image" (the default) a conv2d whose user batch N (leading axis)
exceeds the config's batch is compiled for one group of ``cfg.batch`` images and runs all ceil(N / batch) groups
in one batched simulator pass (``_image_groups``, ``runtime/kernel.py``); the packed layouts keep each group
contiguous along their batch-block axis, a last partial group is zero-padded. The accelerator runs the groups one
after another: a call's stats are the group program's times the groups. Dense / matmul / batch_matmul always
stay one program (their rows are often tokens: split, each would reload its weights). With "whole" every layer is
one program for the whole batch (weights reused across images: fewer simulated cycles, slower to simulate). A conv
whose whole-batch workload has a given (``schedules=``) or tuned schedule (``tune`` tunes the model's workloads,
batch included) is compiled as that one program, as it was tuned.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math

import numpy as np
import tvm
from tvm import relax, te, tirx

from ..hardware.config import AcceleratorConfig
from ..schedules.choice import pick
from ..schedules.groups import kernel_workload
from ..schedules.knobs import fits
from ..schedules.layout import pack_vector, packed_shapes
from ..schedules.schedule import schedule
from ..schedules.store import lookup
from ..schedules.workload import Workload
from ..hardware import modes as M
from . import epilogue, macs

OFFLOADED_OPS = ("relax.nn.conv2d", "relax.matmul")  # the ops whose calls ``workload_of`` may take
LAYERS = "tvm_codesign.layers"  # module attr: named layers (frontend/quantize.py); kernel attr: the ones it runs


def _dims(e) -> list[int] | None:
    try:
        return [int(s) for s in e.ty.shape]
    except (TypeError, AttributeError):
        return None  # dynamic shape: stays on the CPU


def _int8(e) -> bool:
    return str(getattr(e.ty, "dtype", "")) == "int8"


def _unflat(i, dims: list[int]) -> list:
    """Flat index over ``dims`` (row-major) -> one index per dim (leading batch dims folded into one)."""
    out = []
    for d in reversed(dims):
        out.append(i % d)
        i = i // d
    return out[::-1]


def _pack_data(wl: Workload, cfg: AcceleratorConfig, shape: list[int], kwl: Workload | None = None) -> tirx.PrimFunc:
    """User data (NCHW; (..., M, K) for dense; (..., M, K) for batch matmul) -> packed
    (G, N/b, C/BI, H, W, b, BI) of the kernel's workload ``kwl`` (default ``wl``; ``layout.fold(wl)`` or merged
    groups, ``schedules/groups.py``), zero-padded."""
    kwl = kwl or wl
    x = te.placeholder(shape, "int8", name="x")
    B, BI = cfg.batch, cfg.block_in
    zero = tirx.const(0, "int8")

    def at(g, n, c, h, w):
        if kwl.kh != wl.kh:  # folded window: channel c = (ci * KH + i) * KW + j reads row h * SH + i, column w * SW + j
            ci, i, j = c // (wl.kh * wl.kw), c // wl.kw % wl.kh, c % wl.kw
            row, col = h * wl.stride[0] + i - wl.pad[0], w * wl.stride[1] + j - wl.pad[1]
        elif kwl.kw != wl.kw:  # folded kernel columns: channel c = ci * KW + j reads column w * SW + j
            ci, col, row = c // wl.kw, w * wl.stride[1] + c % wl.kw - wl.pad[1], h - wl.pad[0]
        if (kwl.kh, kwl.kw) != (wl.kh, wl.kw):
            inside = tirx.all(row >= 0, row < wl.h, col >= 0, col < wl.w)
            return tirx.if_then_else(inside, x[n, ci, tirx.max(tirx.min(row, wl.h - 1), 0),
                                               tirx.max(tirx.min(col, wl.w - 1), 0)], zero)
        if wl.kind == "conv2d":  # kernel group g holds channels [g * C, (g + 1) * C), C = merge * ci
            if kwl.kernel_groups == 1:
                return x[n, c, h, w]
            ch = g * (kwl.merge * wl.ci) + c
            return tirx.if_then_else(ch < wl.channels_in, x[n, tirx.min(ch, wl.channels_in - 1), h, w], zero)
        if wl.kind == "dense":
            return x[(*_unflat(n, shape[:-1]), c)]
        return x[(*_unflat(g, shape[:-2]), n, c)]

    out = te.compute(packed_shapes(kwl, cfg)["data"], lambda g, n, c, h, w, b, i: tirx.if_then_else(
        tirx.all(n * B + b < wl.n, c * BI + i < kwl.merge * kwl.ci), at(g, n * B + b, c * BI + i, h, w), zero),
        name="packed")
    return te.create_prim_func([x, out])


def _pack_weight(wl: Workload, cfg: AcceleratorConfig, shape: list[int], kn: bool,
                 kwl: Workload | None = None) -> tirx.PrimFunc:
    """User weights (OIHW, or K x N / ... x K x N for matmul) -> packed (G, O/BO, C/BI, KH, KW, BO, BI) of the
    kernel's workload ``kwl`` (default ``wl``; ``layout.fold(wl)`` or merged groups: block-diagonal)."""
    kwl = kwl or wl
    w = te.placeholder(shape, "int8", name="w")
    BI, BO = cfg.block_in, cfg.block_out
    zero = tirx.const(0, "int8")

    def at(g, o, c, kh, kw):
        if kwl.kh != wl.kh:  # folded window
            return w[o, c // (wl.kh * wl.kw), c // wl.kw % wl.kh, c % wl.kw]
        if kwl.kw != wl.kw:
            return w[o, c // wl.kw, kh, c % wl.kw]
        if wl.kind == "conv2d":  # merged groups: group j of kernel group g is block (j, j), zero elsewhere
            if wl.groups == 1:
                return w[o, c, kh, kw]
            j, grp = o // wl.co, g * kwl.merge + o // wl.co
            ok = tirx.all(c // wl.ci == j, grp < wl.groups)
            return tirx.if_then_else(ok, w[tirx.min(grp * wl.co + o % wl.co, wl.channels_out - 1), c % wl.ci, kh, kw],
                                     zero)
        if wl.kind == "dense":
            return w[c, o] if kn else w[o, c]
        lead = _unflat(g, shape[:-2])
        return w[(*lead, c, o)] if kn else w[(*lead, o, c)]

    out = te.compute(packed_shapes(kwl, cfg)["weight"], lambda g, o, c, kh, kw, bo, bi: tirx.if_then_else(
        tirx.all(o * BO + bo < kwl.merge * kwl.co, c * BI + bi < kwl.merge * kwl.ci),
        at(g, o * BO + bo, c * BI + bi, kh, kw), zero), name="packed")
    return te.create_prim_func([w, out])


def _unpack(wl: Workload, cfg: AcceleratorConfig, user_shape: list[int]) -> tirx.PrimFunc:
    p = te.placeholder(packed_shapes(wl, cfg)["out"], wl.out_dtype, name="p")
    B, BO = cfg.batch, cfg.block_out
    if wl.kind == "conv2d" and wl.kernel_groups > 1:  # kernel group g holds channels [g * C, (g + 1) * C)
        C = wl.merge * wl.co
        f = lambda n, o, y, x: p[o // C, n // B, o % C // BO, y, x, n % B, o % C % BO]
    elif wl.kind == "conv2d":
        f = lambda n, o, y, x: p[0, n // B, o // BO, y, x, n % B, o % BO]
    elif wl.kind == "dense":
        def f(*i):
            n = 0
            for idx, d in zip(i[:-1], user_shape[:-1]):
                n = n * d + idx
            return p[0, n // B, i[-1] // BO, 0, 0, n % B, i[-1] % BO]
    else:
        def f(*i):
            g = 0
            for idx, d in zip(i[:-2], user_shape[:-2]):
                g = g * d + idx
            n, o = i[-2], i[-1]
            return p[g, n // B, o // BO, 0, 0, n % B, o % BO]
    return te.create_prim_func([p, te.compute(user_shape, f, name="out")])


BATCH_PROGRAMS = ("per_image", "whole")


def check_batch_programs(batch_programs: str) -> str:
    if batch_programs not in BATCH_PROGRAMS:
        raise ValueError(f"batch_programs must be 'per_image' (a conv2d over more images than the accelerator's "
                         f"batch runs one program per image group, all groups in one simulator pass) or 'whole' "
                         f"(one program for the whole batch), got {batch_programs!r}")
    return batch_programs


def _image_groups(wl: Workload, cfg: AcceleratorConfig, dx: list[int], batch_programs: str) -> int:
    """Image groups of ``cfg.batch`` images the layer runs one program over: a conv2d whose leading (image) axis
    exceeds the config's batch, with ``batch_programs="per_image"``; 0: one kernel for the whole call."""
    if batch_programs != "per_image" or wl.kind != "conv2d" or len(dx) != 4 or dx[0] <= cfg.batch:
        return 0
    return -(-dx[0] // cfg.batch)


def _grouped(kernel: tirx.PrimFunc, kwl: Workload, cfg: AcceleratorConfig, groups: int, name: str) -> tirx.PrimFunc:
    """The one-group ``kernel`` lowered now, behind a function taking all ``groups`` (the packed data and output
    of ``kwl``, weights, bias and multiplier shared) that runs them in one batched pass (``tvm_codesign.run_groups``)."""
    from ..lowering import lower
    from ..runtime import entry
    compiled = lower(kernel)
    compiled.meta["image_groups"] = groups  # its own key: per-call stats differ from the one-group kernel's
    key, blob = entry.add(compiled, name)
    sh = packed_shapes(kwl, cfg)
    full = [sh["data"], sh["weight"]] + [sh[v] for v in kwl.vectors] + [sh["out"]]
    if len(full) != len(compiled.params):
        raise AssertionError(f"{name}: kernel parameters {[p.name for p in compiled.params]} are not "
                             f"{', '.join(['data', 'weight', *kwl.vectors, 'out'])}")
    bufs = [tirx.decl_buffer(s, p.dtype, p.name) for s, p in zip(full, compiled.params)]
    batched = 1 | 1 << (len(bufs) - 1)  # data and out hold every group
    call = tirx.call_packed("tvm_codesign.run_groups", tirx.IntImm("int64", key), blob, groups, batched,
                            *[b.access_ptr("rw") for b in bufs])
    attrs = {k: v for k, v in kernel.attrs.items() if k not in ("tvm_codesign.config", "tvm_codesign.vthreads")}
    attrs.update({"tvm_codesign.workload": json.dumps(kwl.to_dict()), "tvm_codesign.image_groups": groups,
                  "tvm_codesign.mode": cfg.mode})  # the config attribute would send it to the lowering again
    return tirx.PrimFunc(bufs, tirx.Evaluate(call)).with_attrs(attrs)


def _emit(bb: relax.BlockBuilder, cfg, wl: Workload, x, w, kn: bool, call, knobs, cache: dict,
          bias: np.ndarray | None = None, batch_programs: str = "per_image",
          multiplier: np.ndarray | None = None) -> relax.Expr:
    key = (hash(bb), wl, kn, cfg.mode)  # hash: the C++ builder (each callback gets a new Python wrapper)
    if key not in cache:  # identical layers (ResNet repeats shapes) share one schedule and kernel
        split = _image_groups(wl, cfg, _dims(x), batch_programs)
        whole = kernel_workload(wl, cfg)  # the workload of one program for the whole call (folded stem, groups)
        given = knobs(whole, cfg) if callable(knobs) else None
        if split and (given is not None or lookup(whole, cfg) is not None):
            split = 0  # a schedule given or tuned for the whole batch (tune's workload): compiled as tuned
        # the workload the kernel runs (one image group if split) and the packed tensors' (all groups)
        kwl = kernel_workload(dataclasses.replace(wl, n=cfg.batch) if split else wl, cfg)
        kall = dataclasses.replace(kwl, n=split * cfg.batch) if split else kwl
        k, source = pick(kwl, cfg, None if split else given)
        dx, dw, dout = _dims(x), _dims(w), _dims(call)  # the user's shapes and real MACs beside the kernel's
        real = macs.conv(dout, dw) if wl.kind == "conv2d" else macs.matmul(dout, dx)
        layer = json.dumps({"data": dx, "weight": dw, "out": dout, "macs": real})
        ident = json.dumps([wl.to_dict(), kwl.to_dict(), cfg.key, k.to_dict(), kn], sort_keys=True).encode()
        name = f"vta_{wl.kind}_{hashlib.sha1(ident).hexdigest()[:10]}"  # stable across processes
        add = lambda f, suffix: bb.add_func(f.with_attr("global_symbol", name + suffix), name + suffix)
        kernel = schedule(kwl, cfg, k).mod["main"].with_attrs({"tvm_codesign.schedule_source": source,
                                                              "tvm_codesign.layer": layer})
        if split:
            kernel = _grouped(kernel.with_attr("global_symbol", name), kall, cfg, split, name)
        cache[key] = (add(kernel, ""),
                      add(_pack_data(wl, cfg, _dims(x), kall), "_pack_x"),
                      add(_pack_weight(wl, cfg, _dims(w), kn, kall), "_pack_w"),
                      add(_unpack(kall, cfg, _dims(call)), "_unpack"), kall)
    gk, gd, gw, gu, kall = cache[key]
    sh = packed_shapes(kall, cfg)
    px = bb.emit(relax.call_tir(gd, [x], relax.TensorType(sh["data"], "int8")))
    pw = bb.emit(relax.call_tir(gw, [w], relax.TensorType(sh["weight"], "int8")))
    values = {"bias": bias, "multiplier": multiplier}  # per-channel constants, packed like the bias
    args = [px, pw] + [relax.const(pack_vector(kall, cfg, v, values[v])) for v in wl.vectors]
    po = bb.emit(relax.call_tir(gk, args, relax.TensorType(sh["out"], wl.out_dtype)))
    return relax.call_tir(gu, [po], call.ty)


def workload_of(call: relax.Call) -> Workload | None:
    """The accelerator workload of an int8 x int8 -> int32 conv2d / matmul call, or None if it stays on the CPU
    (dilation, asymmetric padding, other layouts or dtypes, dynamic shapes, broadcast batch dims). A grouped or
    depthwise conv2d is the user's workload (``groups``, real MACs); ``_emit`` runs its merged kernel."""
    x, w = call.args[0], call.args[1]
    dx, dw = _dims(x), _dims(w)
    if not (_int8(x) and _int8(w) and str(call.attrs.out_dtype) == "int32" and dx and dw):
        return None
    if call.op.name == "relax.nn.conv2d":
        a = call.attrs
        pt, pl, pb, pr = (int(p) for p in a.padding)
        g = int(a.groups)
        if not (tuple(int(d) for d in a.dilation) == (1, 1) and str(a.data_layout) == "NCHW"
                and str(a.kernel_layout) == "OIHW" and (pt, pl) == (pb, pr) and g >= 1 and dx[1] == dw[1] * g
                and dw[0] % g == 0 and len(dx) == len(dw) == 4):
            return None
        return Workload.conv2d(dx[0], dx[1], dx[2], dx[3], dw[0], (dw[2], dw[3]), tuple(int(s) for s in a.strides),
                               (pt, pl), groups=g)
    if len(dx) >= 2 and len(dw) == 2:  # (..., M, K) x (K, N): leading dims fold into the rows
        return Workload.dense(math.prod(dx[:-1]), dx[-1], dw[1])
    if len(dx) >= 3 and len(dw) == len(dx) and dx[:-2] == dw[:-2]:  # batch dims fold into groups
        return Workload.batch_matmul(math.prod(dx[:-2]), dx[-2], dx[-1], dw[-1])
    return None  # vectors, broadcast batch dims


def _layer_names(mod: tvm.IRModule) -> dict:
    """(data, weight) of each named layer's conv/matmul in ``main`` -> its name (module attr LAYERS)."""
    known = set(map(str, mod.attrs[LAYERS])) if mod.attrs is not None and LAYERS in mod.attrs else set()
    return {(hash(bd.value.args[0]), hash(bd.value.args[1])): bd.var.name for block in mod["main"].body.blocks
            for bd in block.bindings if bd.var.name in known and getattr(bd.value, "op", None) is not None}


def _mode_view(cfg: AcceleratorConfig, modes: dict, names: dict, core) -> AcceleratorConfig:
    """The mode view a named layer runs on: the fastest mode of the hardware that computes its quantisation
    exactly (hardware/modes.py: runnable); unnamed and int8 layers run w8a8."""
    need = modes.get(names.get((hash(core.args[0]), hash(core.args[1]))))
    return cfg if need is None else cfg.with_mode(M.runnable(cfg, need))


def _fusable(mod: tvm.IRModule, cfg: AcceleratorConfig, modes: dict, names: dict) -> dict:
    """``epilogue.find`` on ``main`` with the offload's test: a chain whose kernel has no schedule stays on the CPU."""
    def fits_here(core, wl):
        view = _mode_view(cfg, modes, names, core)
        return fits(kernel_workload(wl, view), view)
    return epilogue.find(mod["main"], workload_of, fits_here)


def fused_epilogues(mod: tvm.IRModule, config: "AcceleratorConfig | str", modes: dict | None = None) -> dict:
    """The epilogue chains ``offload(config, modes=modes)`` fuses into accelerator kernels (``epilogue.find``'s
    result): what runs on the accelerator, for counting what stays on the CPU before offloading."""
    return _fusable(mod, AcceleratorConfig.load(config), modes or {}, _layer_names(mod))


def offload(config: "AcceleratorConfig | str" = "vta_default", knobs=None, modes: dict | None = None,
            batch_programs: str = "per_image") -> tvm.transform.Pass:
    """The pass: accelerator legalization for int8 conv2d/matmul, TVM's for everything else, then
    constant folding (packs constant weights at compile time). ``knobs(wl, cfg)`` may pick a layer's schedule
    (a Knobs, or None for the default). ``batch_programs``: "per_image" or "whole" (module docstring)."""
    cfg = AcceleratorConfig.load(config)
    batch_programs = check_batch_programs(batch_programs)
    cache: dict = {}
    modes = modes or {}

    def cfg_of(core):
        return _mode_view(cfg, modes, names, core)

    fused: dict = {}  # astype input var -> epilogue.Fused, for the module being legalized
    cores: set = set()  # (data, weight) of fused convs/matmuls: emitted with their epilogue instead
    names: dict = {}  # (data, weight) of a named layer's conv/matmul -> its name (module attr LAYERS)
    layers: dict = {}  # kernel name -> the named layers it runs

    def named(core, out):
        """Record that the kernel called in ``out`` runs the layer of ``core`` (if it has a name)."""
        name = names.get((hash(core.args[0]), hash(core.args[1])))
        if name is not None:
            kernels = []
            relax.analysis.post_order_visit(out, lambda e: kernels.append(e.args[0].name_hint) if isinstance(
                e, relax.Call) and getattr(e.op, "name", None) == "relax.call_tir" else None)
            for k in kernels:
                if k.endswith("_unpack"):
                    layers.setdefault(k[:-len("_unpack")], []).append(name)
        return out

    def legalize_op(bb, call):
        wl = workload_of(call)
        if wl is None or (hash(call.args[0]), hash(call.args[1])) in cores:
            return call  # TVM's default CPU legalization (dead code once the fused epilogue replaces it)
        return named(call, _emit(bb, cfg_of(call), wl, call.args[0], call.args[1], call.op.name == "relax.matmul",
                                 call, knobs, cache, batch_programs=batch_programs))

    def legalize_astype(bb, call):
        f = fused.get(call.args[0])
        if f is None:
            return call
        return named(f.core, _emit(bb, cfg_of(f.core), f.workload, f.core.args[0], f.core.args[1],
                                   f.core.op.name == "relax.matmul", call, knobs, cache, f.bias, batch_programs,
                                   f.multiplier))

    legalize = relax.transform.LegalizeOps(customize_legalize_map={
        **{op: legalize_op for op in OFFLOADED_OPS}, "relax.astype": legalize_astype})

    @tvm.transform.module_pass(opt_level=0, name="tvm_codesign.offload")
    def _offload(mod, ctx):
        cache.clear()  # GlobalVars belong to one application of the pass
        fused.clear(), cores.clear(), names.clear(), layers.clear()
        if "main" in [gv.name_hint for gv in mod.functions]:
            names.update(_layer_names(mod))
            fused.update(_fusable(mod, cfg, modes, names))
            cores.update((hash(f.core.args[0]), hash(f.core.args[1])) for f in fused.values())
        out = legalize(mod)
        for k, ls in layers.items():
            out[k] = out[k].with_attr(LAYERS, json.dumps(ls))
        if fused:
            out = relax.transform.DeadCodeElimination()(out)
        return relax.transform.FoldConstant()(out)

    return _offload


def offloaded(mod: tvm.IRModule) -> list[dict]:
    """The accelerator kernels in a module after ``offload``: name, workload (the kernel's), schedule knobs,
    where the knobs came from (``source``: "user", "tuned" from schedules/, or "default") and the user's
    ``layer`` (data, weight and output shapes, real MACs per call)."""
    out = []
    for gv, f in mod.functions.items():
        if isinstance(f, tirx.PrimFunc) and f.attrs is not None and "tvm_codesign.workload" in f.attrs:
            a = f.attrs
            out.append({"name": gv.name_hint, "workload": json.loads(str(a["tvm_codesign.workload"])),
                        "knobs": json.loads(str(a["tvm_codesign.knobs"])),
                        "source": str(a["tvm_codesign.schedule_source"]) if "tvm_codesign.schedule_source" in a
                        else None,
                        "layer": json.loads(str(a["tvm_codesign.layer"])) if "tvm_codesign.layer" in a else None,
                        "layers": json.loads(str(a[LAYERS])) if LAYERS in a else [],
                        "mode": M.label(json.loads(str(a["tvm_codesign.config"])).get("mode", ""))
                        if "tvm_codesign.config" in a else M.label(str(a["tvm_codesign.mode"]) if "tvm_codesign.mode" in a else ""),
                        "image_groups": int(a["tvm_codesign.image_groups"]) if "tvm_codesign.image_groups" in a
                        else 1})
    return out
