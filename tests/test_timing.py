"""Timing microbenchmarks with cycle counts derived by hand from the model in simulator/timing.py."""
import numpy as np
import pytest

from tvm_codesign import (AcceleratorConfig, Alu, AluOp, DeadlockError, Finish, Gemm, Load, Mem, Program, Simulator,
                          Store)
from tvm_codesign.simulator.reference_gemm import tiled_gemm

# issue 4, gemm fill 6, alu fill 4, ALU II 1 (immediate) / 2 (vector), 8 B/cycle, 16-beat bursts with 1 request
# cycle each, latency 16
CFG = AcceleratorConfig.load("vta_default")
# No overheads: every cycle below is transfer or compute.
BARE = CFG.replace(name="bare", issue_cycles=0, gemm_fill_cycles=0, alu_fill_cycles=0, dram_latency=0,
                   dma_request_cycles=0)


def ld(mem, n=1, **kw):
    return Load(mem=mem, sram_base=0, dram_base=0, y_size=1, x_size=n, x_stride=n, **kw)


def test_lone_gemm():
    # GEMM: issue 4 + fill 6 + 3*5 iterations * 4 micro-ops = 70; FINISH (fetched at 1) starts at 70, ends 74
    st = Simulator(CFG).time(Program(CFG, [Gemm(uop_bgn=0, uop_end=4, iter_out=3, iter_in=5), Finish()]))
    assert st.cycles == 74
    assert st.busy == {"load": 0, "compute": 74, "store": 0}
    assert st.macs == 60 * 256 and st.utilisation == pytest.approx(60 / 74)


def test_lone_alu():
    # ALU with an immediate: issue 4 + fill 4 + 2 iterations * 3 micro-ops * II 1 = 14
    st = Simulator(CFG).time(Program(CFG, [Alu(op=AluOp.ADD, use_imm=True, imm=1, uop_bgn=0, uop_end=3, iter_in=2)]))
    assert st.cycles == 14


def test_load_compute_store_chain():
    prog = Program(CFG, [
        Load(mem=Mem.INP, sram_base=0, dram_base=0, y_size=2, x_size=8, x_stride=8, push_next=True),
        Gemm(uop_bgn=0, uop_end=1, pop_prev=True, push_next=True),
        Store(mem=Mem.OUT, sram_base=0, dram_base=0, y_size=1, x_size=1, x_stride=1, pop_prev=True),
        Finish(),
    ])
    # LOAD: issue 4, port 2 rows of 128 B at bytes 0 and 128, each one 16-beat burst + 1 request cycle = 34,
    # latency 16 -> ends 54, pushes load->compute
    # GEMM: starts 54 (token), 4 + 6 + 1 -> 65, pushes compute->store
    # STORE: starts 65, issue 4 -> port at 69 for 2 beats + 1 request cycle = 3, latency 16 -> 88
    # FINISH: compute free at 65 -> 69
    sim = Simulator(CFG)
    st = sim.time(prog)
    assert sim.timeline.start.tolist() == [0, 54, 65, 65] and sim.timeline.end.tolist() == [54, 65, 88, 69]
    assert st.cycles == 88
    assert st.busy == {"load": 54, "compute": 15, "store": 23} and st.idle["load"] == 34
    assert st.dram_port_busy == 37
    assert st.dram_read_bytes == {"INP": 256} and st.dram_write_bytes == {"OUT": 16}


def _ping_pong(n):
    """n steps: LOAD WGT into half g%2 (32 port cycles), GEMM on it (32 cycles); VTA virtual-thread tokens."""
    insns = []
    for g in range(n):
        insns.append(Load(mem=Mem.WGT, sram_base=g % 2, dram_base=g, y_size=1, x_size=1, x_stride=1,
                          pop_next=g >= 2, push_next=True))
        insns.append(Gemm(uop_bgn=0, uop_end=1, iter_in=32, pop_prev=True, push_prev=g + 2 < n))
    return Program(BARE, insns + [Finish()])


def test_double_buffering_overlaps_load_and_compute():
    # load g ends 32(g+1); GEMM g runs [32(g+1), 32(g+2)): total = 32 + 4 * 32 = 160, not 4 * 64 = 256
    st = Simulator(BARE).time(_ping_pong(4))
    assert st.cycles == 160
    assert st.busy == {"load": 128, "compute": 128, "store": 0}
    # serialised (every load waits for the previous GEMM): the sum
    serial = [Load(mem=Mem.WGT, sram_base=0, dram_base=g, y_size=1, x_size=1, x_stride=1, pop_next=g > 0,
                   push_next=True) if k == 0 else
              Gemm(uop_bgn=0, uop_end=1, iter_in=32, pop_prev=True, push_prev=g < 3)
              for g in range(4) for k in range(2)]
    assert Simulator(BARE).time(Program(BARE, serial)).cycles == 256
    # and on a long run the overlapped time approaches max(load, compute) per step
    long = Simulator(BARE).time(_ping_pong(64))
    assert long.cycles == 32 + 64 * 32


def test_reference_gemm_overlaps_on_default_config():
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, (256, 256), dtype=np.int8)
    w = rng.integers(-128, 128, (256, 256), dtype=np.int8)
    sim = Simulator(CFG)
    st = sim.time(tiled_gemm(CFG, a, w, 16, 8, 8).program)
    busy_sum = st.busy["load"] + st.busy["compute"] + st.busy["store"]
    assert max(st.busy.values()) <= st.cycles < 0.8 * busy_sum


def test_shared_dram_port_serialises_transfers():
    # LOAD INP (load module) and LOAD ACC (compute module), both 64 port cycles: the second waits for the port
    prog = Program(BARE, [ld(Mem.INP, 32), ld(Mem.ACC, 8)])
    sim = Simulator(BARE)
    assert sim.time(prog).cycles == 128
    assert sim.timeline.end.tolist() == [64, 128]
    # with latency, the port is free again after the transfer, so latencies overlap
    lat = BARE.replace(dram_latency=100)
    sim = Simulator(lat)
    sim.time(Program(lat, [ld(Mem.INP, 32), ld(Mem.ACC, 8)]))
    assert sim.timeline.end.tolist() == [164, 228]


def test_padding_costs_a_cycle_per_element():
    p = Load(mem=Mem.INP, sram_base=0, dram_base=0, y_size=2, x_size=2, x_stride=2, y_pad0=1, y_pad1=1, x_pad0=1,
             x_pad1=1)
    # port 2 rows * ceil(32 B / 8) = 8, pads 16 - 4 = 12
    assert Simulator(BARE).time(Program(BARE, [p])).cycles == 20


def test_full_command_queue_stalls_fetch():
    gemms = [Gemm(uop_bgn=0, uop_end=1, iter_in=10) for _ in range(4)]
    prog = lambda cfg: Program(cfg, gemms + [ld(Mem.INP)])
    sim = Simulator(BARE)
    sim.time(prog(BARE))
    assert sim.timeline.start[-1] == 4  # depth 8: the load is fetched at cycle 4 and starts at once
    shallow = BARE.replace(queue_depth=2)
    sim = Simulator(shallow)
    sim.time(prog(shallow))
    # depth 2: GEMM 3 waits for GEMM 1 to leave the queue (starts at 10), so the load is fetched at 11
    assert sim.timeline.fetch.tolist() == [0, 1, 2, 10, 11] and sim.timeline.start[-1] == 11


def test_deadlock_pop_never_pushed():
    prog = Program(CFG, [ld(Mem.UOP), Gemm(uop_bgn=0, uop_end=1, pop_prev=True), Finish()])
    with pytest.raises(DeadlockError, match="never pushed") as e:
        Simulator(CFG).time(prog)
    assert e.value.index == 1 and e.value.field == "pop_prev"


def test_deadlock_cycle_between_modules():
    prog = Program(CFG, [ld(Mem.INP, pop_next=True, push_next=True),
                         Gemm(uop_bgn=0, uop_end=1, pop_prev=True, push_prev=True)])
    with pytest.raises(DeadlockError, match="instruction 0 .*compute->load token") as e:
        Simulator(CFG).time(prog)
    assert e.value.index == 0 and e.value.field == "pop_next"


def test_deadlock_through_a_full_queue():
    # compute waits for a load that fetch cannot reach: the compute queue (depth 1) is full of blocked GEMMs
    cfg = BARE.replace(queue_depth=1)
    prog = Program(cfg, [Gemm(uop_bgn=0, uop_end=1, pop_prev=True), Gemm(uop_bgn=0, uop_end=1),
                         ld(Mem.INP, push_next=True)])
    with pytest.raises(DeadlockError, match="queue") as e:
        Simulator(cfg).time(prog)
    assert e.value.field in ("pop_prev", "queue_depth")


def test_functional_run_refuses_deadlocked_program_before_touching_dram():
    prog = Program(CFG, [Gemm(uop_bgn=0, uop_end=1, pop_prev=True),
                         Store(mem=Mem.OUT, sram_base=0, dram_base=0, y_size=1, x_size=1, x_stride=1)])
    dram = np.full(64, 7, np.uint8)
    with pytest.raises(DeadlockError):
        Simulator(CFG).run(prog, dram)
    assert (dram == 7).all()


def test_a_program_is_timed_once_and_every_run_reports_the_same_timing(monkeypatch):
    """Timing depends on the instructions only: later runs of a program (other data, another Simulator) reuse
    its timeline and report the cycles of a fresh timing run, while each computes its own data (numpy matmul)."""
    from tvm_codesign.simulator import simulator as S
    calls = []
    real = S.timing.simulate
    monkeypatch.setattr(S.timing, "simulate", lambda p: calls.append(p) or real(p))
    rng = np.random.default_rng(1)
    ops = [[rng.integers(-128, 128, (64, 64), dtype=np.int8) for _ in range(2)] for _ in range(3)]
    gs = [tiled_gemm(CFG, a, w, 4, 2, 2) for a, w in ops]  # same instructions and layout, other data
    prog, cycles = gs[0].program, []
    for g, (a, w) in zip(gs, ops):
        dram = g.dram.copy()
        cycles.append(Simulator(CFG).run(prog, dram).cycles)
        assert np.array_equal(g.result(dram), a.astype(np.int32) @ w.astype(np.int32).T)
    assert len(calls) == 1 and cycles == [real(prog).cycles] * 3
    # a program changed after its run is timed again (its columns are public arrays)
    before = Simulator(CFG).time(prog)
    before.busy["load"] = -1  # a run's stats are its own: editing them changes no later run
    prog.table["x_size"][prog.table["opcode"] == 0] *= 2  # every LOAD moves twice the elements per row
    after = Simulator(CFG).time(prog)
    assert len(calls) == 2 and after.cycles == real(prog).cycles != before.cycles and after.busy["load"] > 0
    # a program that deadlocks keeps raising: nothing is kept for it
    bad = Program(CFG, [ld(Mem.UOP), Gemm(uop_bgn=0, uop_end=1, pop_prev=True), Finish()])
    for _ in range(2):
        with pytest.raises(DeadlockError):
            Simulator(CFG).time(bad)
