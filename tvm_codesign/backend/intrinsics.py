"""Tensor intrinsics of the accelerator, one desc/impl pair per (config, operation).

Registered under config-derived names (``vta_<key>_gemm``, ``..._reset``, ``..._alu_<op>[_<imm>]``) so
several configs live in one process. Impls emit ``tvm_codesign.*`` calls on SRAM access pointers;
the lowering (``tvm_codesign.lowering``) turns the loop nests around them into instructions.
"""
from __future__ import annotations

from functools import cache

import tvm
from tvm.s_tir import TensorIntrin
from tvm.script import tirx as T

from ..hardware.config import AcceleratorConfig

INP, WGT, ACC = "global.vta.inp", "global.vta.wgt", "global.vta.acc"
SCOPES = (INP, WGT, ACC)

# The ALU operations as TIR expressions; the operator definitions build their epilogues with these.
ALU_EXPR = {
    "add": lambda x, v: x + v,
    "mul": lambda x, v: x * v,
    "min": lambda x, v: tvm.tirx.min(x, v),
    "max": lambda x, v: tvm.tirx.max(x, v),
    "shr": lambda x, v: x >> v,
    "clip": lambda x, v: tvm.tirx.min(tvm.tirx.max(x, -v - 1), v),
}


def _prefix(cfg: AcceleratorConfig) -> str:
    return f"vta_{cfg.key}"


def _register(name: str, desc, impl) -> str:
    if TensorIntrin.get(name, allow_missing=True) is None:
        TensorIntrin.register(name, desc, impl)
    return name


@cache  # parsing TVMScript costs ~70 ms (inspect.stack); once per (config, op)
def gemm(cfg: AcceleratorConfig) -> str:
    """acc[b, o] += inp[b, i] * wgt[o, i] over (BATCH, BLOCK_OUT, BLOCK_IN), int8 x int8 -> int32."""
    B, BI, BO = cfg.batch, cfg.block_in, cfg.block_out
    it, wt = f"int{cfg.inp_bits}", f"int{cfg.wgt_bits}"

    @T.prim_func(s_tir=True)
    def desc(a: T.handle, w: T.handle, c: T.handle):
        A = T.match_buffer(a, (B, BI), it, offset_factor=1, scope=INP)
        W = T.match_buffer(w, (BO, BI), wt, offset_factor=1, scope=WGT)
        C = T.match_buffer(c, (B, BO), "int32", offset_factor=1, scope=ACC)
        with T.sblock("root"):
            T.reads(C[0:B, 0:BO], A[0:B, 0:BI], W[0:BO, 0:BI])
            T.writes(C[0:B, 0:BO])
            if B == 1:
                for j, k in T.grid(BO, BI):
                    with T.sblock("update"):
                        vj, vk = T.axis.remap("SR", [j, k])
                        C[0, vj] = C[0, vj] + T.Cast("int32", A[0, vk]) * T.Cast("int32", W[vj, vk])
            else:
                for i, j, k in T.grid(B, BO, BI):
                    with T.sblock("update"):
                        vi, vj, vk = T.axis.remap("SSR", [i, j, k])
                        C[vi, vj] = C[vi, vj] + T.Cast("int32", A[vi, vk]) * T.Cast("int32", W[vj, vk])

    @T.prim_func(s_tir=True)
    def impl(a: T.handle, w: T.handle, c: T.handle):
        A = T.match_buffer(a, (B, BI), it, offset_factor=1, scope=INP)
        W = T.match_buffer(w, (BO, BI), wt, offset_factor=1, scope=WGT)
        C = T.match_buffer(c, (B, BO), "int32", offset_factor=1, scope=ACC)
        with T.sblock("root"):
            T.reads(C[0:B, 0:BO], A[0:B, 0:BI], W[0:BO, 0:BI])
            T.writes(C[0:B, 0:BO])
            T.evaluate(T.call_packed("tvm_codesign.gemm", C.access_ptr("rw"), A.access_ptr("r"), W.access_ptr("r")))

    return _register(f"{_prefix(cfg)}_gemm", desc, impl)


@cache
def reset(cfg: AcceleratorConfig) -> str:
    """acc[b, o] = 0 over (BATCH, BLOCK_OUT): the GEMM reset."""
    B, BO = cfg.batch, cfg.block_out

    @T.prim_func(s_tir=True)
    def desc(c: T.handle):
        C = T.match_buffer(c, (B, BO), "int32", offset_factor=1, scope=ACC)
        with T.sblock("root"):
            T.reads()
            T.writes(C[0:B, 0:BO])
            if B == 1:
                for j in T.serial(BO):
                    with T.sblock("init"):
                        vj = T.axis.remap("S", [j])
                        C[0, vj] = T.int32(0)
            else:
                for i, j in T.grid(B, BO):
                    with T.sblock("init"):
                        vi, vj = T.axis.remap("SS", [i, j])
                        C[vi, vj] = T.int32(0)

    @T.prim_func(s_tir=True)
    def impl(c: T.handle):
        C = T.match_buffer(c, (B, BO), "int32", offset_factor=1, scope=ACC)
        with T.sblock("root"):
            T.reads()
            T.writes(C[0:B, 0:BO])
            T.evaluate(T.call_packed("tvm_codesign.reset", C.access_ptr("w")))

    return _register(f"{_prefix(cfg)}_reset", desc, impl)


@cache
def alu(cfg: AcceleratorConfig, op: str, imm: int | None = None) -> str:
    """dst = op(src, imm) (immediate) or dst = op(src, operand) (register) over (BATCH, BLOCK_OUT).

    dst and src are separate buffers in TIR; the lowering places dst on src's SRAM (in place). Immediate
    forms are one parsed template per (config, op), specialised to each immediate (parsing costs ~0.15 s).
    """
    if op not in ALU_EXPR:
        raise ValueError(f"unknown ALU op {op!r}; known: {sorted(ALU_EXPR)}")
    if imm is None:
        return _alu_register(cfg, op)
    imm = int(imm)
    name = f"{_prefix(cfg)}_alu_{op}_{imm}".replace("-", "m")
    if TensorIntrin.get(name, allow_missing=True) is None:
        desc, impl = _alu_imm_template(cfg, op)
        const = lambda f: {f.params[-2]: tvm.tirx.IntImm("int32", imm), f.params[-1]: tvm.tirx.IntImm("int32", -imm - 1)}
        TensorIntrin.register(name, desc.specialize(const(desc)), impl.specialize(const(impl)))
    return name


@cache
def _alu_imm_template(cfg: AcceleratorConfig, op: str):
    """desc/impl of op(src, v) with the immediate v (and w = -v - 1, CLIP's lower bound) as parameters."""
    B, BO = cfg.batch, cfg.block_out
    fn = (lambda x, v, w: tvm.tirx.min(tvm.tirx.max(x, w), v)) if op == "clip" else \
        (lambda x, v, w: ALU_EXPR[op](x, v))  # the same expression ALU_EXPR builds from a Python immediate

    @T.prim_func(s_tir=True)
    def desc(d: T.handle, s: T.handle, v: T.int32, w: T.int32):
        D = T.match_buffer(d, (B, BO), "int32", offset_factor=1, scope=ACC)
        S = T.match_buffer(s, (B, BO), "int32", offset_factor=1, scope=ACC)
        with T.sblock("root"):
            T.reads(S[0:B, 0:BO])
            T.writes(D[0:B, 0:BO])
            if B == 1:
                for j in T.serial(BO):
                    with T.sblock("alu"):
                        vj = T.axis.remap("S", [j])
                        D[0, vj] = fn(S[0, vj], v, w)
            else:
                for i, j in T.grid(B, BO):
                    with T.sblock("alu"):
                        vi, vj = T.axis.remap("SS", [i, j])
                        D[vi, vj] = fn(S[vi, vj], v, w)

    @T.prim_func(s_tir=True)
    def impl(d: T.handle, s: T.handle, v: T.int32, w: T.int32):
        D = T.match_buffer(d, (B, BO), "int32", offset_factor=1, scope=ACC)
        S = T.match_buffer(s, (B, BO), "int32", offset_factor=1, scope=ACC)
        with T.sblock("root"):
            T.reads(S[0:B, 0:BO])
            T.writes(D[0:B, 0:BO])
            T.evaluate(T.call_packed("tvm_codesign.alu_imm", op, v, D.access_ptr("w"), S.access_ptr("r")))

    return desc, impl


def _alu_register(cfg: AcceleratorConfig, op: str) -> str:
    B, BO, fn = cfg.batch, cfg.block_out, ALU_EXPR[op]

    @T.prim_func(s_tir=True)
    def desc_r(d: T.handle, s: T.handle, r: T.handle):
        D = T.match_buffer(d, (B, BO), "int32", offset_factor=1, scope=ACC)
        S = T.match_buffer(s, (B, BO), "int32", offset_factor=1, scope=ACC)
        R = T.match_buffer(r, (B, BO), "int32", offset_factor=1, scope=ACC)
        with T.sblock("root"):
            T.reads(S[0:B, 0:BO], R[0:B, 0:BO])
            T.writes(D[0:B, 0:BO])
            if B == 1:
                for j in T.serial(BO):
                    with T.sblock("alu"):
                        vj = T.axis.remap("S", [j])
                        D[0, vj] = fn(S[0, vj], R[0, vj])
            else:
                for i, j in T.grid(B, BO):
                    with T.sblock("alu"):
                        vi, vj = T.axis.remap("SS", [i, j])
                        D[vi, vj] = fn(S[vi, vj], R[vi, vj])

    @T.prim_func(s_tir=True)
    def impl_r(d: T.handle, s: T.handle, r: T.handle):
        D = T.match_buffer(d, (B, BO), "int32", offset_factor=1, scope=ACC)
        S = T.match_buffer(s, (B, BO), "int32", offset_factor=1, scope=ACC)
        R = T.match_buffer(r, (B, BO), "int32", offset_factor=1, scope=ACC)
        with T.sblock("root"):
            T.reads(S[0:B, 0:BO], R[0:B, 0:BO])
            T.writes(D[0:B, 0:BO])
            T.evaluate(T.call_packed("tvm_codesign.alu", op, D.access_ptr("w"), S.access_ptr("r"),
                                     R.access_ptr("r")))

    return _register(f"{_prefix(cfg)}_alu_{op}", desc_r, impl_r)


_DMA = {  # kind -> (source scope, destination scope, element shape (rows, cols) name, dtypes)
    "load_inp": ("global", INP, "inp"), "load_wgt": ("global", WGT, "wgt"), "load_acc": ("global", ACC, "acc"),
    "store_acc": (ACC, "global", "acc"), "store_out": (ACC, "global", "out"),
}


@cache
def dma(cfg: AcceleratorConfig, kind: str) -> str:
    """Copy one element between DRAM (a parameter) and an SRAM: load_inp/wgt/acc, store_acc/out.

    The lowering folds the loops around it into 2-D DMA instructions (strided, merged where contiguous).
    """
    if kind not in _DMA:
        raise ValueError(f"unknown DMA kind {kind!r}; known: {sorted(_DMA)}")
    src_scope, dst_scope, what = _DMA[kind]
    rows, cols = {"inp": (cfg.batch, cfg.block_in), "wgt": (cfg.block_out, cfg.block_in),
                  "acc": (cfg.batch, cfg.block_out), "out": (cfg.batch, cfg.block_out)}[what]
    sdt = {"inp": f"int{cfg.inp_bits}", "wgt": f"int{cfg.wgt_bits}", "acc": "int32", "out": "int32"}[what]
    ddt = f"int{cfg.out_bits}" if what == "out" else sdt
    cast = (lambda v: T.Cast(ddt, v)) if ddt != sdt else (lambda v: v)

    @T.prim_func(s_tir=True)
    def desc(d: T.handle, s: T.handle):
        D = T.match_buffer(d, (rows, cols), ddt, offset_factor=1, scope=dst_scope)
        S = T.match_buffer(s, (rows, cols), sdt, offset_factor=1, scope=src_scope)
        with T.sblock("root"):
            T.reads(S[0:rows, 0:cols])
            T.writes(D[0:rows, 0:cols])
            if rows == 1:
                for j in T.serial(cols):
                    with T.sblock("copy"):
                        vj = T.axis.remap("S", [j])
                        D[0, vj] = cast(S[0, vj])
            else:
                for i, j in T.grid(rows, cols):
                    with T.sblock("copy"):
                        vi, vj = T.axis.remap("SS", [i, j])
                        D[vi, vj] = cast(S[vi, vj])

    @T.prim_func(s_tir=True)
    def impl(d: T.handle, s: T.handle):
        D = T.match_buffer(d, (rows, cols), ddt, offset_factor=1, scope=dst_scope)
        S = T.match_buffer(s, (rows, cols), sdt, offset_factor=1, scope=src_scope)
        with T.sblock("root"):
            T.reads(S[0:rows, 0:cols])
            T.writes(D[0:rows, 0:cols])
            T.evaluate(T.call_packed("tvm_codesign.dma", kind, D.access_ptr("w"), S.access_ptr("r")))

    return _register(f"{_prefix(cfg)}_{kind}", desc, impl)
