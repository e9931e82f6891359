import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import naive_sim
from tvm_codesign import (AcceleratorConfig, Alu, AluOp, Finish, Gemm, Load, Mem, ProgramBuilder, Simulator,
                          Store, preset_names)
from tvm_codesign.simulator.reference_gemm import reference, tiled_gemm

CFG = AcceleratorConfig.load("vta_default")
TINY = AcceleratorConfig.load("edge_tiny")


def run(cfg, prog, dram):
    """Semantics tests: hand-written programs without dependency tokens, so no race check."""
    sim = Simulator(cfg)
    stats = sim.run(prog, dram, check_races=False)
    return sim, stats


def rand(rng, shape, dtype=np.int8):
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


def load(mem, sram, dram, y=1, x=1, stride=None, **kw):
    return Load(mem=mem, sram_base=sram, dram_base=dram, y_size=y, x_size=x, x_stride=x if stride is None else stride,
                **kw)


def store(mem, sram, dram, y=1, x=1, stride=None, **kw):
    return Store(mem=mem, sram_base=sram, dram_base=dram, y_size=y, x_size=x,
                 x_stride=x if stride is None else stride, **kw)


def test_one_gemm_tile():
    rng = np.random.default_rng(1)
    a, w = rand(rng, (1, 1, 16)), rand(rng, (1, 16, 16))
    b = ProgramBuilder(CFG)
    ia, iw, iu, io = b.put(a, Mem.INP), b.put(w, Mem.WGT), b.put_uops([(0, 0, 0)]), b.alloc(1, Mem.ACC)
    b.emit(load(Mem.UOP, 0, iu), load(Mem.INP, 0, ia), load(Mem.WGT, 0, iw),
           Gemm(uop_bgn=0, uop_end=1, reset=True), Gemm(uop_bgn=0, uop_end=1), store(Mem.ACC, 0, io), Finish())
    dram = b.dram()
    _, st = run(CFG, b.program(), dram)
    assert np.array_equal(b.read(dram, io, 1, Mem.ACC)[0], a[0].astype(np.int32) @ w[0].astype(np.int32).T)
    assert st.macs == 256 and st.dram_read_bytes == {"UOP": 4, "WGT": 256, "INP": 16}


def test_multi_tile_gemm_reset_and_accumulate():
    """C (4 x 2 blocks) = A (4 x 3 k-blocks) . W^T accumulated over three GEMMs, one k-block each."""
    rng = np.random.default_rng(2)
    M, N, K = 4, 32, 48
    a, w = rand(rng, (M, K)), rand(rng, (N, K))
    b = ProgramBuilder(CFG)
    ia = b.put(a.reshape(M, 1, 3, 16).transpose(0, 2, 1, 3).reshape(12, 1, 16), Mem.INP)  # [m, kb]
    iw = b.put(w.reshape(2, 16, 3, 16).transpose(0, 2, 1, 3).reshape(6, 16, 16), Mem.WGT)  # [nb, kb]
    # one micro-op per k-block: dst row m, output block n via the loop: dst = m*2 + n
    iu = b.put_uops([(0, 0, 0)] + [(0, kk, kk) for kk in range(3)])
    io = b.alloc(8, Mem.ACC)
    b.emit(load(Mem.UOP, 0, iu, x=4), load(Mem.INP, 0, ia, x=12), load(Mem.WGT, 0, iw, x=6),
           Gemm(uop_bgn=0, uop_end=1, iter_out=4, iter_in=2, dst_out=2, dst_in=1, reset=True))
    for kk in range(3):  # three accumulating GEMMs over the k-blocks
        b.emit(Gemm(uop_bgn=1 + kk, uop_end=2 + kk, iter_out=4, iter_in=2, dst_out=2, dst_in=1, src_out=3,
                    wgt_in=3))
    b.emit(store(Mem.ACC, 0, io, x=8), Finish())
    dram = b.dram()
    run(CFG, b.program(), dram)
    got = b.read(dram, io, 8, Mem.ACC).reshape(4, 2, 16).reshape(4, 32)
    assert np.array_equal(got, reference(a, w))


def test_2d_dma_with_padding_and_strides():
    rng = np.random.default_rng(3)
    img = rand(rng, (5, 7, 1, 16))  # 5 rows x 7 columns of INP elements in DRAM
    b = ProgramBuilder(CFG)
    at = b.put(img.reshape(35, 1, 16), Mem.INP)
    # rows 1..3, columns 2..5 (y=3, x=4, stride 7), padded top 1, bottom 2, left 2, right 1
    b.emit(load(Mem.INP, 10, at + 1 * 7 + 2, y=3, x=4, stride=7, y_pad0=1, y_pad1=2, x_pad0=2, x_pad1=1))
    sim, _ = run(CFG, b.program(), b.dram())
    exp = np.zeros((6, 7, 1, 16), np.int8)
    exp[1:4, 2:6] = img[1:4, 2:6]
    assert np.array_equal(sim.srams.inp[10:10 + 42].reshape(6, 7, 1, 16), exp)
    assert not sim.srams.inp[:10].any() and not sim.srams.inp[52:].any()


def test_acc_dma_roundtrip_with_strides():
    rng = np.random.default_rng(4)
    acc = rand(rng, (4, 6, 1, 16), np.int32)
    b = ProgramBuilder(CFG)
    src = b.put(acc.reshape(24, 1, 16), Mem.ACC)
    dst = b.alloc(4 * 9, Mem.ACC)
    # load a 3x4 window (stride 6), store it as 3 rows of 4 with DRAM stride 9
    b.emit(load(Mem.ACC, 0, src + 6 + 1, y=3, x=4, stride=6), store(Mem.ACC, 0, dst, y=3, x=4, stride=9))
    dram = b.dram()
    run(CFG, b.program(), dram)
    out = b.read(dram, dst, 36, Mem.ACC).reshape(4, 9, 1, 16)
    assert np.array_equal(out[:3, :4], acc[1:4, 1:5]) and not out[:, 4:].any() and not out[3].any()


def test_alu_requantisation_chain():
    """int32 acc + bias (register ADD), round (ADD 2^(s-1)), SHR s, CLIP 127, store int8."""
    rng = np.random.default_rng(5)
    x = rng.integers(-(1 << 20), 1 << 20, (8, 1, 16)).astype(np.int32)
    bias = rng.integers(-(1 << 12), 1 << 12, (8, 1, 16)).astype(np.int32)
    s = 10
    b = ProgramBuilder(CFG)
    ix, ib, iu, io = b.put(x, Mem.ACC), b.put(bias, Mem.ACC), b.put_uops([(0, 8, 0), (0, 0, 0)]), b.alloc(8, Mem.OUT)
    loop = dict(iter_out=1, iter_in=8, dst_in=1, src_in=1)
    b.emit(load(Mem.UOP, 0, iu, x=2), load(Mem.ACC, 0, ix, x=8), load(Mem.ACC, 8, ib, x=8),
           Alu(op=AluOp.ADD, uop_bgn=0, uop_end=1, **loop),
           Alu(op=AluOp.ADD, use_imm=True, imm=1 << (s - 1), uop_bgn=1, uop_end=2, **loop),
           Alu(op=AluOp.SHR, use_imm=True, imm=s, uop_bgn=1, uop_end=2, **loop),
           Alu(op=AluOp.CLIP, use_imm=True, imm=127, uop_bgn=1, uop_end=2, **loop),
           store(Mem.OUT, 0, io, x=8), Finish())
    dram = b.dram()
    run(CFG, b.program(), dram)
    exp = np.clip((x.astype(np.int64) + bias + (1 << (s - 1))) >> s, -128, 127).astype(np.int8)
    assert np.array_equal(b.read(dram, io, 8, Mem.OUT), exp)
    assert (np.abs(exp) == 128).any() or (exp == 127).any()  # the clip was exercised


def test_store_narrowing_keeps_low_bits():
    vals = np.array([0, 127, 128, 255, 256, 300, -1, -128, -129, -300, 2**31 - 1, -2**31, 1 << 20, 77, -77, 5],
                    np.int32).reshape(1, 1, 16)
    b = ProgramBuilder(CFG)
    iv, io = b.put(vals, Mem.ACC), b.alloc(1, Mem.OUT)
    b.emit(load(Mem.ACC, 0, iv), store(Mem.OUT, 0, io))
    dram = b.dram()
    run(CFG, b.program(), dram)
    assert b.read(dram, io, 1, Mem.OUT).ravel().tolist() == vals.astype(np.int8).ravel().tolist()
    assert b.read(dram, io, 1, Mem.OUT).ravel()[:6].tolist() == [0, 127, -128, -1, 0, 44]


@pytest.mark.parametrize("op", list(AluOp))
@pytest.mark.parametrize("use_imm", [True, False])
def test_each_alu_op_matches_python_ints(op, use_imm):
    rng = np.random.default_rng(int(op) * 2 + use_imm)
    big = 1 << 31
    x = rng.integers(-big, big, (4, 1, 16)).astype(np.int32)
    x[0, 0, :4] = [big - 1, -big, 0, -1]
    v = rng.integers(-40, 40, (4, 1, 16)).astype(np.int32) if op == AluOp.SHR else rand(rng, (4, 1, 16), np.int32)
    if op == AluOp.CLIP:
        v = np.abs(v.astype(np.int64)).clip(0, big - 1).astype(np.int32)
    imm = {AluOp.SHR: -3, AluOp.CLIP: 1000}.get(op, -12345)
    b = ProgramBuilder(CFG)
    ix, iv, iu = b.put(x, Mem.ACC), b.put(v, Mem.ACC), b.put_uops([(0, 4, 0)])
    io = b.alloc(4, Mem.ACC)
    b.emit(load(Mem.UOP, 0, iu), load(Mem.ACC, 0, ix, x=4), load(Mem.ACC, 4, iv, x=4),
           Alu(op=op, use_imm=use_imm, imm=imm if use_imm else 0, uop_bgn=0, uop_end=1, iter_in=4, dst_in=1,
               src_in=1),
           store(Mem.ACC, 0, io, x=4))
    dram = b.dram()
    run(CFG, b.program(), dram)
    got = b.read(dram, io, 4, Mem.ACC).ravel().tolist()
    operand = [imm] * 64 if use_imm else v.ravel().tolist()
    exp = [naive_sim.wrap(naive_sim.alu(op, a, o), 32) for a, o in zip(x.ravel().tolist(), operand)]
    assert got == exp


def test_alu_reads_see_earlier_writes_in_the_same_instruction():
    """acc[k] += acc[k-1] over k = 1..7: a running sum (read-after-write inside one ALU instruction)."""
    x = np.arange(1, 9, dtype=np.int32).repeat(16).reshape(8, 1, 16)
    b = ProgramBuilder(CFG)
    ix, iu, io = b.put(x, Mem.ACC), b.put_uops([(1, 0, 0)]), b.alloc(8, Mem.ACC)
    b.emit(load(Mem.UOP, 0, iu), load(Mem.ACC, 0, ix, x=8),
           Alu(op=AluOp.ADD, uop_bgn=0, uop_end=1, iter_in=7, dst_in=1, src_in=1), store(Mem.ACC, 0, io, x=8))
    dram = b.dram()
    run(CFG, b.program(), dram)
    assert b.read(dram, io, 8, Mem.ACC)[:, 0, 0].tolist() == np.cumsum(np.arange(1, 9)).tolist()


def test_gemm_accumulation_wraps_at_32_bits():
    a = np.full((1, 1, 16), -128, np.int8)
    w = np.full((1, 16, 16), -128, np.int8)  # each product 16384, a row sums to 262144
    start = np.full((1, 1, 16), 2**31 - 100000, np.int32)
    b = ProgramBuilder(CFG)
    ia, iw, ic, iu = b.put(a, Mem.INP), b.put(w, Mem.WGT), b.put(start, Mem.ACC), b.put_uops([(0, 0, 0)])
    b.emit(load(Mem.UOP, 0, iu), load(Mem.INP, 0, ia), load(Mem.WGT, 0, iw), load(Mem.ACC, 0, ic),
           Gemm(uop_bgn=0, uop_end=1, iter_out=3), store(Mem.ACC, 0, ic))  # adds 3 * 262144
    dram = b.dram()
    run(CFG, b.program(), dram)
    assert b.read(dram, ic, 1, Mem.ACC).ravel()[0] == naive_sim.wrap(2**31 - 100000 + 3 * 262144, 32)


@pytest.mark.parametrize("name", preset_names())
@pytest.mark.parametrize("shift", [None, 8])
def test_tiled_gemm_bit_exact_on_every_preset(name, shift):
    cfg = AcceleratorConfig.load(name)
    rng = np.random.default_rng(6)
    m, n, k = 8 * cfg.batch, 4 * cfg.block_out, 6 * cfg.block_in
    a, w = rand(rng, (m, k)), rand(rng, (n, k))
    g = tiled_gemm(cfg, a, w, tile_m=4, tile_n=2, tile_k=3, shift=shift)
    st = Simulator(cfg).run(g.program, g.dram)
    assert np.array_equal(g.result(), reference(a, w, shift))
    assert st.macs == m * n * k


# ----- property-based: random programs vs the naive interpreter ------------------------------------
@st.composite
def random_program(draw):
    """Random loads, GEMMs (any micro-ops and loop factors, overlapping dsts) and ALU ops on edge_tiny."""
    cfg = TINY
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    b = ProgramBuilder(cfg)
    n_inp, n_wgt, n_acc = 24, 12, 24
    ia = b.put(rand(rng, (n_inp, 1, 8)), Mem.INP)
    iw = b.put(rand(rng, (n_wgt, 8, 8)), Mem.WGT)
    ic = b.put(rng.integers(-(1 << 31), 1 << 31, (n_acc, 1, 8)).astype(np.int32), Mem.ACC)
    nu = draw(st.integers(1, 6))
    uops = [(draw(st.integers(0, 7)), draw(st.integers(0, 7)), draw(st.integers(0, 3))) for _ in range(nu)]
    iu = b.put_uops(uops)
    io = b.alloc(n_acc, Mem.ACC)
    b.emit(load(Mem.UOP, 0, iu, x=nu), load(Mem.INP, 0, ia, x=n_inp), load(Mem.WGT, 0, iw, x=n_wgt),
           load(Mem.ACC, 0, ic, x=n_acc))
    for _ in range(draw(st.integers(1, 4))):
        bgn = draw(st.integers(0, nu - 1))
        end = draw(st.integers(bgn + 1, nu))
        io_, ii_ = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        f = lambda: draw(st.integers(0, 3))
        if draw(st.booleans()):
            b.emit(Gemm(uop_bgn=bgn, uop_end=end, iter_out=io_, iter_in=ii_, dst_out=f(), dst_in=f(), src_out=f(),
                        src_in=f(), wgt_out=f() % 3, wgt_in=f() % 3, reset=draw(st.booleans())))
        else:
            op = draw(st.sampled_from(list(AluOp)))
            use_imm = draw(st.booleans())
            imm = draw(st.integers(0, 20) if op in (AluOp.SHR, AluOp.CLIP) else st.integers(-(1 << 15), (1 << 15) - 1))
            b.emit(Alu(op=op, use_imm=use_imm, imm=imm if use_imm else 0, uop_bgn=bgn, uop_end=end, iter_out=io_,
                       iter_in=ii_, dst_out=f(), dst_in=f(), src_out=f(), src_in=f()))
    b.emit(store(Mem.ACC, 0, io, x=n_acc), Finish())
    return b


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_program())
def test_random_programs_match_naive_interpreter(b):
    prog, dram = b.program(), b.dram()
    ref_dram = dram.copy()
    sim, _ = run(TINY, prog, dram)
    uop, inp, wgt, acc = naive_sim.run(TINY, prog.insns, ref_dram)
    assert np.array_equal(sim.srams.acc, acc)
    assert np.array_equal(dram, ref_dram)


def test_large_accumulation_uses_float64_path_exactly():
    """K * BLOCK_IN > 1024 per destination in one instruction: still exact."""
    rng = np.random.default_rng(7)
    a, w = rand(rng, (16, 2048)), rand(rng, (16, 2048))
    a[0], w[0] = -128, -128  # worst-case magnitude: sum = 2048 * 16384 = 2**25
    g = tiled_gemm(CFG, a, w, tile_m=4, tile_n=1, tile_k=128)
    Simulator(CFG).run(g.program, g.dram)
    assert np.array_equal(g.result(), reference(a, w))


def test_rerun_with_other_micro_ops_rebuilds_the_decoded_plans():
    """The simulator reuses each program's decoded GEMM/ALU plans across runs; new micro-ops in DRAM (the same
    instructions) must be decoded again, not served from the first run."""
    rng = np.random.default_rng(7)
    a, w = rand(rng, (2, 1, 16)), rand(rng, (2, 16, 16))
    b = ProgramBuilder(CFG)
    ia, iw, iu, io = b.put(a, Mem.INP), b.put(w, Mem.WGT), b.put_uops([(0, 0, 0)]), b.alloc(1, Mem.ACC)
    b.emit(load(Mem.UOP, 0, iu), load(Mem.INP, 0, ia, x=2), load(Mem.WGT, 0, iw, x=2),
           Gemm(uop_bgn=0, uop_end=1, reset=True), Gemm(uop_bgn=0, uop_end=1), store(Mem.ACC, 0, io), Finish())
    prog, first = b.program(), b.dram()
    other = first.copy()
    alt = ProgramBuilder(CFG)
    alt.put(a, Mem.INP), alt.put(w, Mem.WGT)
    alt.put_uops([(0, 1, 1)])  # same place in DRAM: reads the second input and weight blocks
    other[:len(alt.dram())] = alt.dram()
    for dram, k in ((first, 0), (other, 1), (first.copy(), 0)):
        run(CFG, prog, dram)
        assert np.array_equal(b.read(dram, io, 1, Mem.ACC)[0], a[k].astype(np.int32) @ w[k].astype(np.int32).T)


def test_int8_matmul_path_matches_numpy_and_the_float_path(monkeypatch):
    """GEMMs run as torch's exact int8 matmul (int32 sums) when torch is there, the float32 chunked path
    otherwise: both give numpy's int64 result, on a dot length of 4096 (past float32's exact 2**24 in one sum);
    torch's thread count is restored after a run."""
    import torch

    from tvm_codesign.simulator import functional as F
    rng = np.random.default_rng(3)
    a = rng.integers(-128, 128, (32, 4096), dtype=np.int8)
    w = rng.integers(-128, 128, (32, 4096), dtype=np.int8)
    want = a.astype(np.int64) @ w.astype(np.int64).T
    calls = []
    real = F._accumulate_int
    monkeypatch.setattr(F, "_accumulate_int", lambda *x: calls.append(1) or real(*x))
    threads = torch.get_num_threads()
    torch.set_num_threads(3)  # not the one thread a run uses, so a missing restore shows
    got = {}
    for path, mm in (("int8", F._int_mm), ("float32", lambda: None)):
        monkeypatch.setattr(F, "_int_mm", mm)
        g = tiled_gemm(CFG, a, w, tile_m=2, tile_n=1, tile_k=128)
        Simulator(CFG).run(g.program, g.dram)
        got[path] = g.result()
        assert np.array_equal(got[path], want), path
        assert (len(calls) > 0) == (path == "int8")
        calls.clear()
    assert torch.get_num_threads() == 3
    torch.set_num_threads(threads)
