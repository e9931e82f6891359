"""DMA rows as AXI bursts (simulator/dma.py) and the ALU's II by operand and lanes, against cycles counted by hand.

vta_default: 8 B beats (64-bit bus), bursts of 16 beats (128 B, never crossing a multiple of 128 B), 1 request
cycle per burst, 16 requests in flight, DRAM latency 16, issue 4; INP elements are 16 B.
"""
import numpy as np
import pytest

import tvm_codesign as tc
from tvm_codesign import AcceleratorConfig, Alu, AluOp, Load, Mem, Program, Simulator, Store
from tvm_codesign.costmodel import analytical as A
from tvm_codesign.costmodel import dma as D
from tvm_codesign.schedules.workload import Workload

CFG = AcceleratorConfig.load("vta_default")


def load_time(cfg, **kw):
    """(total cycles, DRAM-port cycles) of one LOAD INP alone: issue + port + latency."""
    kw = {"sram_base": 0, "dram_base": 0, "y_size": 1, "x_stride": kw.get("x_size", 1), **kw}
    st = Simulator(cfg).time(Program(cfg, [Load(mem=Mem.INP, **kw)]))
    return st.cycles, st.dram_port_busy


def test_row_straddling_a_burst_boundary_pays_a_second_request():
    # 4 elements = 64 B = 8 beats. At byte 0: one burst, 8 + 1 = 9 port cycles. At element 6 = byte 96, the row
    # [96, 160) crosses the 128 B boundary: beats 12-15 and 16-19, two requests, 8 + 2 = 10.
    assert load_time(CFG, x_size=4) == (4 + 9 + 16, 9)
    assert load_time(CFG, x_size=4, dram_base=6) == (4 + 10 + 16, 10)
    # 24 elements = 384 B = 48 beats from byte 0: bursts end at 128, 256: 3 requests; from byte 64: 4 requests
    assert load_time(CFG, x_size=24)[1] == 48 + 3
    assert load_time(CFG, x_size=24, dram_base=4)[1] == 48 + 4


def test_partial_beats_cost_whole_beats():
    # a 16 B bus and 8 B elements (edge_tiny's 1x8 int8 input): a row of 2 elements at byte 0 is one beat, at
    # byte 8 it touches two beats (each half used); 3 elements at byte 8 = [8, 32): beats 0 and 1.
    cfg = AcceleratorConfig.load("edge_tiny").replace(dram_bandwidth=16.0)
    assert cfg.inp_elem_bytes == 8
    assert load_time(cfg, x_size=2)[1] == 1 + 1
    assert load_time(cfg, x_size=2, dram_base=1)[1] == 2 + 1
    assert load_time(cfg, x_size=3, dram_base=1)[1] == 2 + 1
    # a bus that is not a power of two (3 B): 16 B at byte 0 covers beats 0..5 (the last partial)
    odd = CFG.replace(dram_bandwidth=3.0)
    assert load_time(odd, x_size=1)[1] == 6 + 1


def test_many_short_rows_cost_more_than_one_long_row():
    # the same 256 B: 16 rows of one element (every other element, as a 1x1 stride-2 conv reads its input):
    # 16 x (2 beats + 1 request) = 48; one row of 16 elements: 32 beats in 2 bursts = 34
    many = load_time(CFG, y_size=16, x_size=1, x_stride=2)
    one = load_time(CFG, x_size=16)
    assert many == (4 + 48 + 16, 48) and one == (4 + 34 + 16, 34)
    # without a request overhead, bytes / bandwidth as before
    free = CFG.replace(dma_request_cycles=0)
    assert load_time(free, y_size=16, x_size=1, x_stride=2)[1] == load_time(free, x_size=16)[1] == 32


def test_stores_pay_the_same_bursts():
    # STORE OUT (16 B elements): 3 rows of 9 elements (144 B) at x_stride 9 from byte 0: rows [0,144) 2 bursts,
    # [144, 288) 2 bursts (boundary 256), [288, 432) 2 bursts (384): 3 x (18 beats + 2) = 60; + issue + latency
    st = Simulator(CFG).time(Program(CFG, [Store(mem=Mem.OUT, sram_base=0, dram_base=0, y_size=3, x_size=9,
                                                 x_stride=9)]))
    assert (st.cycles, st.dram_port_busy) == (4 + 60 + 16, 60)


def test_requests_in_flight_limit_hides_latency_only_so_far():
    # latency 40, 2 requests in flight, 6 rows of one element (2 beats + 1 = 3 cycles each):
    # p0 0, p1 3, p2 = max(6, p0 + 3 + 40) = 43, p3 46, p4 = max(49, p2 + 43) = 86, p5 89: port ends at 92
    cfg = CFG.replace(dram_latency=40, dma_outstanding=2)
    assert load_time(cfg, y_size=6, x_size=1, x_stride=2) == (4 + 92 + 40, 92)
    # 16 in flight: 16 x 3 > 3 + 40, never waits: 18 port cycles
    assert load_time(CFG.replace(dram_latency=40), y_size=6, x_size=1, x_stride=2)[1] == 18
    # unequal requests (rows of 64 B at x_stride 96 B: [0,64) one of 8 beats, [96,160) two of 4, then three of 8):
    # t = 9, 5, 5, 9, 9, 9: p = 0, 9, max(14, 0+9+40) = 49, max(54, 9+5+40) = 54, max(63, 49+5+40) = 94,
    # max(103, 54+9+40) = 103 -> 112
    assert load_time(cfg, y_size=5, x_size=4, x_stride=6) == (4 + 112 + 40, 112)
    assert load_time(CFG.replace(dram_latency=40), y_size=5, x_size=4, x_stride=6)[1] == 46
    # one request in flight: each one waits for the previous one's data (t + latency each)
    one = CFG.replace(dma_outstanding=1)
    assert load_time(one, y_size=3, x_size=1, x_stride=2)[1] == 2 * (3 + 16) + 3


@pytest.mark.parametrize("w,elem,burst", [(8.0, 16, 16), (16.0, 8, 16), (4.0, 8, 4), (32.0, 32, 16), (16.0, 8, 2),
                                          (6.0, 16, 16)])
def test_mean_row_cost_over_starts_is_the_brute_force_mean(w, elem, burst):
    """costmodel/dma.py's closed form (Hermite's identity) against counting beats and bursts byte by byte over
    every start a multiple of ``elem`` within one period (power-of-two part of the bus for w = 6)."""
    q = 2
    period = int(np.lcm(int(w) * burst, elem))
    bus = D.Bus(np.array([w]), np.array([burst]), np.array([q]))
    for nbytes in (elem, 3 * elem, 7 * elem, 40 * elem):
        cost, req = [], []
        for a in range(0, period, elem):
            beats = {int(b // w) for b in range(a, a + nbytes)}
            bursts = {bt // burst for bt in beats}
            cost.append(len(beats) + q * len(bursts))
            req.append(len(bursts))
        got = bus.row(np.array([nbytes]), D.alignment(np.array([elem]), np.array([1])))  # any element
        if w == 6.0:  # 2 B is the power of two of a 6 B bus: an estimate, within half a beat
            assert abs(got[0][0] - np.mean(cost)) <= 0.5 * (1 + q)
            continue
        assert got[0][0] == pytest.approx(np.mean(cost)) and got[1][0] == pytest.approx(np.mean(req))


def alu_time(cfg, use_imm, n=6):
    kw = dict(use_imm=True, imm=1) if use_imm else dict(use_imm=False)
    return Simulator(cfg).time(Program(cfg, [Alu(op=AluOp.ADD, uop_bgn=0, uop_end=3, iter_in=n // 3, **kw)])).cycles


def test_alu_ii_depends_on_the_operand():
    # issue 4 + fill 4 + 6 micro-op iterations x II: immediate 1, vector 2 (VTA's TensorAlu)
    assert alu_time(CFG, True) == 4 + 4 + 6 and alu_time(CFG, False) == 4 + 4 + 12
    assert alu_time(CFG.replace(alu_ii_imm=3, alu_ii_vec=5), True) == 8 + 18
    assert alu_time(CFG.replace(alu_ii_imm=3, alu_ii_vec=5), False) == 8 + 30


def test_alu_lanes_take_passes_over_a_vector():
    # a 16-element vector on 4 lanes: 4 passes per micro-op iteration; on 5 lanes ceil(16/5) = 4 as well
    for lanes, passes in ((16, 1), (8, 2), (5, 4), (4, 4), (1, 16)):
        cfg = CFG.replace(alu_lanes=lanes)
        assert alu_time(cfg, True) == 8 + 6 * passes and alu_time(cfg, False) == 8 + 12 * passes
    wide = AcceleratorConfig.load("vta_batch4")  # 4 x 16 = 64 lanes, one pass
    assert alu_time(wide, True) == 8 + 6 and alu_time(wide.replace(alu_lanes=16), True) == 8 + 24


def test_compiled_epilogue_cost_by_operand_and_lanes():
    """A compiled conv with the int8 epilogue (bias add from a vector; shift, relu, clip with immediates):
    64 output vectors (8x8 pixels, 16 channels) -> 64 vector and 192 immediate ALU iterations. The same
    program on configs differing only in the ALU runs that much longer on the compute module."""
    wl = Workload.conv2d(1, 16, 8, 8, 16, 1, bias=True, shift=4, relu=True, out_dtype="int8")
    assert [imm is None for _, imm in wl.epilogue] == [True, False, False, False]

    table = tc.build(wl, CFG, knobs=tc.Knobs(1, 1, 8, 8, 1, "nchw", 1)).kernel.program.table  # timing fields: same code

    def compute_busy(cfg):
        return Simulator(cfg).time(Program(cfg, table=table)).busy["compute"]

    base = compute_busy(CFG)
    assert compute_busy(CFG.replace(alu_ii_imm=2)) - base == 192
    assert compute_busy(CFG.replace(alu_ii_vec=3)) - base == 64
    assert compute_busy(CFG.replace(alu_lanes=8)) - base == 192 * 1 + 64 * 2  # a second pass of each
    # the analytical model's ALU time of the tile: 4 instructions x (issue 4 + fill 4) + 64 x (2 + 1 + 1 + 1)
    k = tc.Knobs(1, 1, 8, 8, 1, "nchw", 1)
    assert A.counts(A.columns([(wl, CFG, k)]))["alu_t"][0] == 32 + 64 * 5
    assert A.counts(A.columns([(wl, CFG.replace(alu_lanes=8), k)]))["alu_t"][0] == 32 + 2 * 64 * 5


def test_tuner_prior_charges_alu_lanes_operands_and_requests():
    """The tuner's prior (tuner/pool.py) over the small space: fewer ALU lanes never make a layer with an
    epilogue faster and make the ALU-heavy one slower by the extra passes; per-request cycles slow a
    memory-bound layer."""
    from tvm_codesign.hardware.space import DesignSpace
    from tvm_codesign.tuner import network
    from tvm_codesign.tuner.pool import Pool
    sp = DesignSpace.load("small")
    pool = Pool(sp)
    ep = dict(bias=True, shift=4, relu=True, out_dtype="int8")
    alu_heavy = network.group([(Workload.conv2d(1, 16, 28, 28, 64, 1, **ep), 1)])
    lat, _ = pool.prior(alu_heavy)
    lanes, bo = pool.column("alu_lanes"), pool.column("block_out")
    others = [f for f in pool.fields if f != "alu_lanes"]
    key = {tuple(pool.values[i, [pool.fields.index(f) for f in others]]): i for i in np.flatnonzero(lanes == bo)}
    narrow = [(i, key[k]) for i in np.flatnonzero(lanes < bo)
              if (k := tuple(pool.values[i, [pool.fields.index(f) for f in others]])) in key]
    assert narrow and all(lat[i] >= lat[j] for i, j in narrow) and any(lat[i] > lat[j] for i, j in narrow)
    # a 1x1 stride-2 layer reading one 16 B row per pixel is memory-bound on 4 B/cycle: request cycles cost
    mem = network.group([(Workload.conv2d(1, 64, 56, 56, 16, 1, stride=2), 1)])
    slow = Pool(DesignSpace.from_dict({"name": "q", "base": "vta_default", "params": {
        "dram_bandwidth": [4.0], "dma_request_cycles": [0, 4]}}))
    a, b = slow.prior(mem)[0]
    assert b > a


def test_pool_skips_exactly_the_configs_with_too_many_lanes():
    """The pool rejects points with more ALU lanes than a vector without building them: the same points the
    config itself rejects, nothing more."""
    from tvm_codesign.errors import ConfigError
    from tvm_codesign.hardware.space import DesignSpace
    from tvm_codesign.tuner.pool import Pool
    sp = DesignSpace.load("small")
    ok = []
    for i in range(sp.size):
        try:
            cfg = sp.config(i)
        except ConfigError:
            continue
        ok += [i] if sp.feasible(cfg) else []
    assert Pool(sp).points.tolist() == ok
