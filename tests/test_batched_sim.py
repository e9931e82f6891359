"""Batched functional simulation: a 2-D (images, bytes) DRAM runs every image in one pass of the program,
bit-exact per image against numpy and the naive interpreter; stats are the per-image run's times the images."""
import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import naive_sim
from test_functional import TINY, random_program
from tvm_codesign import AcceleratorConfig, Alu, AluOp, Finish, Load, Mem, Simulator, Store
from tvm_codesign.simulator.dram import ProgramBuilder
from tvm_codesign.simulator.reference_gemm import pack_inp, reference, tiled_gemm


def _images(g, cfg, rows):
    """A (images, bytes) DRAM: ``g``'s image with each image's A written over the INP data."""
    dram = np.repeat(g.dram[None], len(rows), 0)
    at = g.builder._chunks[0][0]  # put order: A, then W
    for k, a in enumerate(rows):
        blob = pack_inp(a, cfg).reshape(-1).view(np.uint8)
        dram[k, at:at + blob.size] = blob
    return dram


@pytest.mark.parametrize("name,images,shift", [("vta_default", 3, None), ("vta_default", 5, 7),
                                               ("vta_batch4", 3, 9), ("edge_tiny", 4, None)])
def test_batched_tiled_gemm_matches_numpy_per_image(name, images, shift):
    cfg = AcceleratorConfig.load(name)
    rng = np.random.default_rng(images)
    m, n, k = 4 * cfg.batch, 2 * cfg.block_out, 3 * cfg.block_in
    w = rng.integers(-128, 128, (n, k), dtype=np.int8)
    rows = [rng.integers(-128, 128, (m, k), dtype=np.int8) for _ in range(images)]
    g = tiled_gemm(cfg, rows[0], w, tile_m=2, tile_n=1, tile_k=1, shift=shift)
    dram = _images(g, cfg, rows)
    sim = Simulator(cfg)
    stats = sim.run(g.program, dram)
    one = Simulator(cfg).run(g.program, g.dram.copy())
    for kk, a in enumerate(rows):
        assert np.array_equal(g.result(dram[kk]), reference(a, w, shift)), kk
    assert stats.cycles == images * one.cycles and stats.macs == images * one.macs
    assert stats.dram_read_bytes == {m_: images * v for m_, v in one.dram_read_bytes.items()}
    assert stats.energy_pj["total"] == pytest.approx(images * one.energy_pj["total"])
    assert stats.utilisation == pytest.approx(one.utilisation)


def test_images_with_different_weights_run_one_by_one():
    """Weights differ between the rows of the DRAM: each image still gets its own exact result."""
    cfg = AcceleratorConfig.load("vta_default")
    rng = np.random.default_rng(5)
    a = [rng.integers(-128, 128, (4, 32), dtype=np.int8) for _ in range(2)]
    w = [rng.integers(-128, 128, (32, 32), dtype=np.int8) for _ in range(2)]
    gs = [tiled_gemm(cfg, a[k], w[k], tile_m=2, tile_n=1, tile_k=1) for k in range(2)]
    dram = np.stack([g.dram for g in gs])
    Simulator(cfg).run(gs[0].program, dram)
    for k in range(2):
        assert np.array_equal(gs[0].result(dram[k]), reference(a[k], w[k]))


def test_batched_dram_must_be_c_contiguous():
    cfg = AcceleratorConfig.load("vta_default")
    g = tiled_gemm(cfg, np.ones((4, 32), np.int8), np.ones((32, 32), np.int8), tile_m=2, tile_n=1, tile_k=1)
    dram = np.repeat(g.dram[None], 4, 0)[::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        Simulator(cfg).run(g.program, dram)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_program(), st.integers(2, 4), st.integers(0, 2**32 - 1))
def test_batched_random_programs_match_naive_interpreter_per_image(b, images, seed):
    """Random GEMM/ALU programs (overlapping destinations, read-after-write inside an instruction) on edge_tiny,
    each image with its own INP and ACC data: the one batched pass equals the naive interpreter per image."""
    rng = np.random.default_rng(seed)
    prog, base = b.program(), b.dram()
    dram = np.repeat(base[None], images, 0)
    for off, blob in (b._chunks[0], b._chunks[2]):  # put order: INP, WGT, ACC, micro-ops
        dram[1:, off:off + len(blob)] = rng.integers(0, 256, (images - 1, len(blob)), dtype=np.uint8)
    want = [row.copy() for row in dram]  # each image's DRAM before the run
    sim = Simulator(TINY)
    sim.run(prog, dram, check_races=False)
    bt = TINY.batch
    for k in range(images):
        _, _, _, acc = naive_sim.run(TINY, prog.insns, want[k])
        assert np.array_equal(sim.srams.acc[:, k * bt:(k + 1) * bt], acc), k
        assert np.array_equal(dram[k], want[k]), k


@pytest.mark.parametrize("mode", ["w4a4", "w2a8s"])
def test_batched_packed_mode_decodes_every_image(mode, monkeypatch):
    """A packed mode's INP LOAD decodes each image's own packed inputs in the one batched pass (weights packed
    once, shared): every image equals numpy's product of its unpacked values."""
    from tvm_codesign.hardware import modes as M
    from tvm_codesign.hardware import packing

    cfg = M.flexible(AcceleratorConfig.load("vta_default")).with_mode(mode)
    spec, rng = cfg.mode_spec, np.random.default_rng(11)
    lim = lambda b: (-(1 << (b - 1)), 1 << (b - 1))
    m, n, k = 4 * cfg.batch, 2 * cfg.block_out, 2 * cfg.block_in
    w = rng.integers(*lim(spec.w_bits), (n, k)).astype(np.int8)
    if spec.sparse:  # keep 2 of every 4 along the reduction
        w.reshape(n, -1, 4)[..., :2] = 0
    rows = [rng.integers(*lim(spec.a_bits), (m, k)).astype(np.int8) for _ in range(3)]
    emit = ProgramBuilder.emit  # tiled_gemm's instructions, every DMA and GEMM in the mode
    monkeypatch.setattr(ProgramBuilder, "emit", lambda b, *insns: emit(b, *[
        dataclasses.replace(i, mode=cfg.mode_index) if "mode" in i.__dataclass_fields__ else i for i in insns]))
    g = tiled_gemm(cfg, rows[0], w, tile_m=2, tile_n=1, tile_k=1)
    dram = np.repeat(g.dram[None], len(rows), 0)
    at = g.builder._chunks[0][0]
    for i, a in enumerate(rows):
        blob = packing.encode(cfg, "inp", pack_inp(a, cfg)).reshape(-1)
        assert blob.size * 8 == a.size * spec.a_bits  # packed: a_bits per value
        dram[i, at:at + blob.size] = blob
    Simulator(cfg).run(g.program, dram)
    for i, a in enumerate(rows):
        assert np.array_equal(g.result(dram[i]), reference(a, w)), i


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.integers(2, 3), st.sampled_from([1, 2]))
def test_batched_padded_loads_and_strided_stores_match_naive_interpreter(seed, images, batch):
    """Padded 2-D LOADs of INP and ACC, ALU on the loaded rows, then strided STORE OUT (narrowed) and STORE ACC, on
    a config of ``batch`` rows per element: every image of the one batched pass equals the naive interpreter
    (the batched DMA moves each image's element whole; this checks the transposition and the narrowing)."""
    cfg = TINY.replace(batch=batch, alu_lanes=batch * TINY.block_out)
    rng = np.random.default_rng(seed)
    b = ProgramBuilder(cfg)
    ia = b.put(rng.integers(-128, 128, (30, batch, 8)).astype(np.int8), Mem.INP)
    ic = b.put(rng.integers(-(1 << 20), 1 << 20, (30, batch, 8)).astype(np.int32), Mem.ACC)
    iu = b.put_uops([(k, 0, 0) for k in range(8)])
    io, ix = b.alloc(64, Mem.OUT), b.alloc(64, Mem.ACC)
    y, x = int(rng.integers(1, 4)), int(rng.integers(1, 5))
    pads = {k: int(rng.integers(0, 2)) for k in ("y_pad0", "y_pad1", "x_pad0", "x_pad1")}
    rows, cols = y + pads["y_pad0"] + pads["y_pad1"], x + pads["x_pad0"] + pads["x_pad1"]
    stride = x + int(rng.integers(0, 3))
    b.emit(Load(mem=Mem.UOP, sram_base=0, dram_base=iu, y_size=1, x_size=8, x_stride=8),
           Load(mem=Mem.INP, sram_base=0, dram_base=ia, y_size=y, x_size=x, x_stride=stride, **pads),
           Load(mem=Mem.ACC, sram_base=1, dram_base=ic + 2, y_size=y, x_size=x, x_stride=stride, **pads),
           Alu(op=AluOp.SHR, use_imm=True, imm=int(rng.integers(0, 12)), uop_bgn=0, uop_end=min(8, rows * cols)),
           Alu(op=AluOp.ADD, use_imm=True, imm=int(rng.integers(-300, 300)), uop_bgn=0, uop_end=min(8, rows * cols)),
           Store(mem=Mem.OUT, sram_base=1, dram_base=io, y_size=2, x_size=3, x_stride=5),
           Store(mem=Mem.ACC, sram_base=0, dram_base=ix + 1, y_size=3, x_size=2, x_stride=4), Finish())
    prog, base = b.program(), b.dram()
    dram = np.repeat(base[None], images, 0)
    for off, blob in (b._chunks[0], b._chunks[1]):  # put order: INP, ACC, micro-ops: each image its own data
        dram[1:, off:off + len(blob)] = rng.integers(0, 256, (images - 1, len(blob)), dtype=np.uint8)
    want = [row.copy() for row in dram]
    sim = Simulator(cfg)
    sim.run(prog, dram, check_races=False)
    for k in range(images):
        _, inp, _, acc = naive_sim.run(cfg, prog.insns, want[k])
        assert np.array_equal(sim.srams.inp[:, k * batch:(k + 1) * batch], inp), k
        assert np.array_equal(sim.srams.acc[:, k * batch:(k + 1) * batch], acc), k
        assert np.array_equal(dram[k], want[k]), k
