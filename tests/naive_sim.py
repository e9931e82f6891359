"""A deliberately naive interpreter of the documented semantics: Python loops per element, micro-op and
iteration, Python ints for ALU arithmetic. Independent of tvm_codesign.simulator; used as the oracle."""
import numpy as np

from tvm_codesign.hardware.isa import Alu, AluOp, Gemm, Load, Mem, Store, decode_uops
from tvm_codesign.simulator.dram import elem_bytes, elem_type


def wrap(v: int, bits: int) -> int:
    return ((v + (1 << (bits - 1))) % (1 << bits)) - (1 << (bits - 1))


def alu(op, x: int, v: int) -> int:
    if op == AluOp.MIN:
        return min(x, v)
    if op == AluOp.MAX:
        return max(x, v)
    if op == AluOp.ADD:
        return x + v
    if op == AluOp.MUL:
        return x * v
    if op == AluOp.SHR:
        return x >> v if v >= 0 else x << min(-v, 64)  # shifts past 32 bits are 0 after the wrap anyway
    if op == AluOp.CLIP:
        return min(max(x, -v - 1), v)
    return v  # MOV


def run(cfg, insns, dram: np.ndarray):
    """Returns (uop, inp, wgt, acc) SRAM contents; modifies dram in place."""
    uop = np.zeros((cfg.uop_depth, 3), np.int64)
    sram = {Mem.INP: np.zeros((cfg.inp_depth, cfg.batch, cfg.block_in), np.int64),
            Mem.WGT: np.zeros((cfg.wgt_depth, cfg.block_out, cfg.block_in), np.int64),
            Mem.ACC: np.zeros((cfg.acc_depth, cfg.batch, cfg.block_out), np.int64)}
    acc = sram[Mem.ACC]

    def elem(mem, e):
        dt, shape = elem_type(cfg, mem)
        n = elem_bytes(cfg, mem)
        return np.frombuffer(dram[e * n:(e + 1) * n].tobytes(), dtype=dt).reshape(shape)

    for x in insns:
        if isinstance(x, Load):
            k = x.sram_base
            for r in range(x.rows):
                for c in range(x.cols):
                    y, xx = r - x.y_pad0, c - x.x_pad0
                    inside = 0 <= y < x.y_size and 0 <= xx < x.x_size
                    if x.mem == Mem.UOP:
                        uop[k] = decode_uops(elem(Mem.UOP, x.dram_base + y * x.x_stride + xx), cfg)[0]
                    else:
                        sram[x.mem][k] = elem(x.mem, x.dram_base + y * x.x_stride + xx) if inside else 0
                    k += 1
        elif isinstance(x, Store):
            dt, _ = elem_type(cfg, x.mem)
            n = elem_bytes(cfg, x.mem)
            bits = dt.itemsize * 8
            for y in range(x.y_size):
                for xx in range(x.x_size):
                    v = np.array([[wrap(int(a), bits) for a in row] for row in acc[x.sram_base + y * x.x_size + xx]],
                                 dtype=dt)
                    e = x.dram_base + y * x.x_stride + xx
                    dram[e * n:(e + 1) * n] = np.frombuffer(v.tobytes(), np.uint8)
        elif isinstance(x, (Gemm, Alu)):
            for i in range(x.iter_out):
                for j in range(x.iter_in):
                    for u in range(x.uop_bgn, x.uop_end):
                        d = uop[u, 0] + i * x.dst_out + j * x.dst_in
                        s = uop[u, 1] + i * x.src_out + j * x.src_in
                        if isinstance(x, Gemm):
                            w = uop[u, 2] + i * x.wgt_out + j * x.wgt_in
                            if x.reset:
                                acc[d] = 0
                            else:
                                prod = sram[Mem.INP][s] @ sram[Mem.WGT][w].T
                                acc[d] = [[wrap(int(a) + int(b), cfg.acc_bits) for a, b in zip(r0, r1)]
                                          for r0, r1 in zip(acc[d], prod)]
                        else:
                            src = acc[s].copy()
                            acc[d] = [[wrap(alu(x.op, int(a), x.imm if x.use_imm else int(b)), cfg.acc_bits)
                                       for a, b in zip(r0, r1)] for r0, r1 in zip(acc[d], src)]
    return uop, sram[Mem.INP], sram[Mem.WGT], acc
