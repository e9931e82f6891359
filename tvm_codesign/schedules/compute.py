"""The packed operator in TE: pad or subsample (inlined into the input DMA), GEMM-conv, ALU epilogue stages, store."""
from __future__ import annotations

from tvm import te, tirx

from ..hardware.config import AcceleratorConfig
from ..backend.intrinsics import ALU_EXPR
from .layout import packed_shapes
from .workload import Workload


def compute(wl: Workload, cfg: AcceleratorConfig, strided: bool = False):
    """Returns (args, stage names): args are the TE tensors of the PrimFunc (data, weight, [bias], [multiplier],
    out): a register-operand stage (op, None) reads the next of ``wl.vectors``.
    ``strided``: the conv reads a subsampled view of the input (``Workload.input_step``), inlined into the
    input tile's copy so the tile holds only the pixels the kernel reads."""
    sh = packed_shapes(wl, cfg)
    data = te.placeholder(sh["data"], f"int{cfg.inp_bits}", name="data")
    weight = te.placeholder(sh["weight"], f"int{cfg.wgt_bits}", name="weight")
    ph, pw = wl.pad
    src = data
    if ph or pw:
        g_, n_, c_, h_, w_, b_, i_ = sh["data"]
        zero = tirx.const(0, data.dtype)
        src = te.compute(
            (g_, n_, c_, h_ + 2 * ph, w_ + 2 * pw, b_, i_),
            lambda g, n, c, y, x, b, i: tirx.if_then_else(
                tirx.all(y >= ph, y < h_ + ph, x >= pw, x < w_ + pw), data[g, n, c, y - ph, x - pw, b, i], zero),
            name="data_pad")
    sy, sx = wl.stride
    qy, qx = wl.input_step if strided else (1, 1)
    if (qy, qx) != (1, 1):  # 1-wide strided kernel dims read every stride-th input: a subsampled view
        g_, n_, c_, h_, w_, b_, i_ = sh["data"]
        src = te.compute((g_, n_, c_, *wl.input_read, b_, i_),
                         lambda g, n, c, y, x, b, i: data[g, n, c, y * qy, x * qx, b, i], name="data_step")
        sy, sx = sy // qy, sx // qx
    ci = te.reduce_axis((0, sh["data"][2]), "ci")
    kh = te.reduce_axis((0, wl.kh), "kh")
    kw = te.reduce_axis((0, wl.kw), "kw")
    bi = te.reduce_axis((0, cfg.block_in), "bi")
    x = te.compute(
        sh["out"],
        lambda g, n, co, y, xx, b, o: te.sum(
            src[g, n, ci, y * sy + kh, xx * sx + kw, b, bi].astype("int32")
            * weight[g, co, ci, kh, kw, o, bi].astype("int32"), axis=[ci, kh, kw, bi]),
        name="conv")
    args, stages, vectors = [data, weight], [], iter(wl.vectors)
    for k, (op, imm) in enumerate(wl.epilogue):
        vec = None
        if imm is None:  # bias / multiplier: a register operand per channel, broadcast over n, y, x
            what = next(vectors)
            vec = te.placeholder(sh[what], "int32", name=what)
            args.append(vec)
        x = te.compute(sh["out"], _alu_stage(ALU_EXPR[op], x, imm, vec), name=f"alu{k}")
        stages.append((f"alu{k}", op, imm))
    last = x
    out = te.compute(sh["out"], lambda *i: last(*i).astype(wl.out_dtype), name="out")
    return args + [out], stages


def _alu_stage(fn, prev, imm, vec):
    """The element function of one epilogue stage: fn(prev, imm) or fn(prev, vec[g, co, b, o])."""
    if vec is None:
        return lambda *i: fn(prev(*i), imm)
    return lambda g, n, co, y, x, b, o: fn(prev[g, n, co, y, x, b, o], vec[g, co, b, o])
