"""A chained ALU (``alu_stages``): an epilogue in one pass over the accumulators (simulator/chains.py,
lowering/chain.py), exact against numpy, timed by hand, refused where a pass would differ, priced, modelled."""
import numpy as np
import pytest

import tvm_codesign as tc
from tvm_codesign import AcceleratorConfig, Alu, AluOp, Program, Simulator
from tvm_codesign.costmodel import analytical as A
from tvm_codesign.costmodel.roofline import roofline_cycles
from tvm_codesign.costmodel.sampling import random_points
from tvm_codesign.errors import EncodingError, ProgramError
from tvm_codesign.hardware.isa import Gemm, Load, Mem, Store
from tvm_codesign.schedules.groups import alu_cycles, alu_cycles_per_vector
from tvm_codesign.schedules.workload import Workload
from tvm_codesign.simulator.dram import ProgramBuilder, typed_view

CFG = AcceleratorConfig.load("vta_default")
EPI = [dict(bias=True, shift=9, relu=True, out_dtype="int8"),                     # ADD(bias) SHR MAX MIN
       dict(bias=True, multiplier=3, shift=7, clip=(-100, 90), out_dtype="int8"),  # + MUL imm
       dict(bias=True, multiplier="channel", shift=12, relu=True, out_dtype="int8"),  # MUL by a vector
       dict(bias=False, shift=3, out_dtype="int8")]


def operands(wl, seed):
    rng = np.random.default_rng(seed)
    r = lambda shape: rng.integers(-128, 128, shape, dtype=np.int8)
    x = r((wl.n, wl.ci, wl.h, wl.w)) if wl.kind == "conv2d" else r((wl.n, wl.ci))
    w = r((wl.co, wl.ci, wl.kh, wl.kw)) if wl.kind == "conv2d" else r((wl.co, wl.ci))
    bias = rng.integers(-20000, 20000, wl.co).astype(np.int32) if wl.bias else None
    mul = rng.integers(1, 60, wl.co).astype(np.int32) if wl.multiplier == "channel" else None
    return x, w, bias, mul


@pytest.mark.parametrize("stages", [2, 3, 5])
@pytest.mark.parametrize("epi", range(len(EPI)))
@pytest.mark.parametrize("preset", ["vta_default", "edge_tiny", "vta_batch4"])
def test_chained_epilogues_are_exact(preset, epi, stages):
    cfg = AcceleratorConfig.load(preset).replace(alu_stages=stages)
    for wl in (Workload.conv2d(2 if cfg.batch > 1 else 1, 19, 7, 9, 24, 3, pad=1, **EPI[epi]),
               Workload.dense(3, 40, 33, **EPI[epi])):
        m = tc.build(wl, cfg)
        t = m.kernel.program.table
        if len(wl.epilogue) > 1:  # consecutive ALU instructions of one tile run in one pass
            assert t["chain"].sum() > 0
        assert (t["chain"].sum() == 0) == (len(wl.epilogue) <= 1)
        x, w, bias, mul = operands(wl, epi)
        out = m(*(a for a in (x, w, bias) if a is not None), multiplier=mul)
        assert np.array_equal(out, wl.reference(x, w, bias, mul)), (preset, epi, stages, wl.kind)


def test_one_stage_alu_is_vtas_and_has_no_chain_field():
    """alu_stages 1 (the default): no chain bit in the instruction (VTA's layout), no instruction chained, same
    key as before the field existed (stored schedules stay valid)."""
    assert [f for f, *_ in CFG.isa_layout.fields[3]][-1] == "chain" and dict(
        (f, w) for f, w, _ in CFG.isa_layout.fields[3])["chain"] == 0
    assert dict((f, w) for f, w, _ in CFG.replace(alu_stages=2).isa_layout.fields[3])["chain"] == 1
    # the presets' keys as the package computed them before alu_stages existed (e22e8e7)
    old = {"edge_tiny": "1x8x8-c5bcd208", "vta_1x32x32": "1x32x32-0a9249c0", "vta_batch4": "4x16x16-c6598f68",
           "vta_default": "1x16x16-f26f8017", "vta_ultra96": "1x16x16-f27324ab"}
    assert {n: AcceleratorConfig.load(n).key for n in old} == old
    assert CFG.key != CFG.replace(alu_stages=2).key
    wl = Workload.conv2d(1, 16, 8, 8, 16, 1, bias=True, shift=4, relu=True, out_dtype="int8")
    assert tc.build(wl, CFG).kernel.program.table["chain"].sum() == 0
    with pytest.raises(EncodingError, match="chain"):  # a 0-bit field holds 0 only
        Program(CFG, _hand(3)[0].insns)


def _hand(stages, *, reg_src=(8, 9, 10, 11), second_dst=None, repeat=False, chain=True, seed=0):
    """A hand-built program: LOAD UOP, LOAD ACC of 12 random accumulator rows, then ADD 5, ADD rows ``reg_src``
    (a register operand), SHR 1 over accumulators 0..3 (one iteration of 4 micro-ops), the last two chained to
    the first; STORE ACC of the 12 rows. Returns (program, dram, initial rows, result address)."""
    cfg = CFG.replace(alu_stages=stages)
    b = ProgramBuilder(cfg)
    dst = np.array([0, 1, 2, 2 if repeat else 3])
    dst2 = dst if second_dst is None else np.asarray(second_dst)
    uops = np.concatenate([np.stack([dst, dst, 0 * dst], 1), np.stack([dst2, np.asarray(reg_src), 0 * dst], 1)])
    ua = b.put_uops(uops)
    init = np.random.default_rng(seed).integers(-1000, 1000, (12, 1, 16)).astype(np.int32)
    aa = b.put(init, Mem.ACC)
    out = b.alloc(12, Mem.ACC)
    b.emit(Load(mem=Mem.UOP, sram_base=0, dram_base=ua, y_size=1, x_size=8, x_stride=8),
           Load(mem=Mem.ACC, sram_base=0, dram_base=aa, y_size=1, x_size=12, x_stride=12),
           Alu(op=AluOp.ADD, use_imm=True, imm=5, uop_bgn=0, uop_end=4),
           Alu(op=AluOp.ADD, uop_bgn=4, uop_end=8, chain=chain),
           Alu(op=AluOp.SHR, use_imm=True, imm=1, uop_bgn=0, uop_end=4, chain=chain),
           Store(mem=Mem.ACC, sram_base=0, dram_base=out, y_size=1, x_size=12, x_stride=12))
    return Program(cfg, b.insns), b.dram(), init, out


def test_a_chain_is_one_pass_at_its_largest_ii():
    # vta_default: issue 4, ALU fill 4, II 1 immediate / 2 register, 16 lanes (one lane pass); a 3-stage ALU fills
    # 2 cycles longer (a register per stage). 3 instructions of 4 micro-op iterations, one reading a register:
    # unchained 3 x (4 + 4 + 2) + 4 x (1 + 2 + 1) = 46 compute cycles; chained: 3 issues + one fill + 4 iterations
    # x II 2 = 12 + 6 + 8 = 26
    chained, *_ = _hand(3)
    unchained, *_ = _hand(3, chain=False)
    busy = {k: Simulator(p.config).time(p).busy["compute"] for k, p in (("c", chained), ("u", unchained))}
    assert busy["u"] - busy["c"] == 46 - 26
    one, *_ = _hand(1, chain=False)  # VTA's one-stage ALU: each pass fills 2 cycles less
    assert busy["u"] - Simulator(one.config).time(one).busy["compute"] == 3 * 2


def test_chain_survives_encoding_and_assembly():
    from tvm_codesign.hardware.asm import assemble
    p = _hand(3)[0]
    assert Program.decode(p.config, p.encode()).table["chain"].tolist() == p.table["chain"].tolist() == \
        [0, 0, 0, 1, 1, 0]
    text = p.disassemble()
    assert text.count(" chain") == 2
    assert Program(p.config, assemble(text)).table["chain"].tolist() == p.table["chain"].tolist()


def test_legal_hand_chain_equals_numpy():
    p, dram, init, out = _hand(3)
    Simulator(p.config).run(p, dram, check_races=False)
    got = typed_view(dram, p.config, Mem.ACC)[out:out + 12]
    want = init.copy()
    want[:4] = (init[:4] + 5 + init[8:12]) >> 1
    assert np.array_equal(got, want)


def test_static_chain_rules_name_the_problem():
    cfg = CFG.replace(alu_stages=2)
    alu = dict(op=AluOp.ADD, use_imm=True, imm=1, uop_bgn=0, uop_end=2)
    with pytest.raises(ProgramError, match="chain of 3 instructions on an ALU of 2 stages"):
        Program(cfg, [Alu(**alu), Alu(**alu, chain=True), Alu(**alu, chain=True)])
    with pytest.raises(ProgramError, match="must follow an ALU instruction"):
        Program(cfg, [Gemm(uop_bgn=0, uop_end=2), Alu(**alu, chain=True)])
    with pytest.raises(ProgramError, match="must follow an ALU instruction"):
        Program(cfg, [Alu(**alu, chain=True)])
    with pytest.raises(ProgramError, match="iter_in 2 differs"):
        Program(cfg, [Alu(**alu), Alu(**alu, chain=True, iter_in=2)])
    with pytest.raises(ProgramError, match="2 micro-ops"):
        Program(cfg, [Alu(**{**alu, "uop_end": 3}), Alu(**alu, chain=True)])
    with pytest.raises(ProgramError, match="cannot pop a token"):
        Program(cfg, [Alu(**alu), Alu(**alu, chain=True, pop_next=True)])
    # a LOAD UOP (compute module) between them breaks the chain; a LOAD INP (load module) does not
    with pytest.raises(ProgramError, match="must follow an ALU instruction"):
        Program(cfg, [Alu(**alu), Load(mem=Mem.UOP, sram_base=0, dram_base=0, y_size=1, x_size=1, x_stride=1),
                      Alu(**alu, chain=True)])
    Program(cfg, [Alu(**alu), Load(mem=Mem.INP, sram_base=0, dram_base=0, y_size=1, x_size=1, x_stride=1),
                  Alu(**alu, chain=True)])
    t = Program(cfg, [Alu(**alu), Gemm(uop_bgn=0, uop_end=2)]).table  # a chain bit in a table on a GEMM row
    t["chain"] = np.array([0, 1])
    with pytest.raises(ProgramError, match="only an ALU instruction can be chained"):
        Program(cfg, table=t)


@pytest.mark.parametrize("case,match", [
    (dict(second_dst=[0, 1, 3, 2]), "accumulator elements differ"),
    (dict(reg_src=[8, 9, 3, 10]), "register operand reads an element the chain writes"),
    (dict(repeat=True), "written twice"),
])
def test_chains_a_pass_would_compute_differently_are_refused(case, match):
    """Run by the functional simulator: a pass applies all stages to one element before the next, so it equals
    the instructions one after the other only if they walk the same elements once each and no register operand
    reads what the chain writes. Otherwise ProgramError, never a silently different result."""
    p, dram, *_ = _hand(3, **case)  # statically fine
    with pytest.raises(ProgramError, match=match):
        Simulator(p.config).run(p, dram, check_races=False)
    q, dram, *_ = _hand(3, chain=False, **case)  # the same instructions unchained run
    Simulator(q.config).run(q, dram, check_races=False)


def test_analytical_model_follows_the_simulator_on_chained_alus():
    """Random (layer, preset, schedule) points, each compiled with 1-8 ALU stages: the model's median error stays
    within the issue's 3 %, its energy follows the simulator's, and the chained programs are faster where the
    epilogue has several instructions."""
    pts = random_points(30, seed=11)
    rng = np.random.default_rng(3)
    pts = [(wl, cfg.replace(alu_stages=int(rng.choice([1, 2, 3, 5, 8]))), k) for wl, cfg, k in pts]
    st = [tc.build(wl, cfg, knobs=k).time() for wl, cfg, k in pts]
    sim = np.array([s.cycles for s in st], float)
    r = A.evaluate(A.columns(pts))
    pred = r["cycles"]
    assert np.median(np.abs(pred / sim - 1)) <= 0.03, np.median(np.abs(pred / sim - 1))
    # energy: the stage registers exactly (the same chained lane ops, priced the same), the dynamic energy within
    # the dense layers' 1 % median (tests/test_costmodel.py)
    part = r["energy_by_part_pj"]
    regs = np.array([s.energy_pj["alu_stage_regs"] for s in st])
    assert (regs > 0).sum() >= 10
    np.testing.assert_allclose(part["alu_stage_regs"], regs, rtol=1e-9)
    dyn = lambda d: d["total"] - d["static"] - d["dram_background"]
    err = np.abs(np.array([dyn({p: part[p][i] for p in part}) for i in range(len(st))]) /
                 np.array([dyn(s.energy_pj) for s in st]) - 1)
    assert np.median(err) < 0.01, np.median(err)
    # an ALU-bound layer (1x1 conv, 16 channels, a 5-instruction epilogue): the simulator and the model agree on
    # the gain of each stage count
    wl = Workload.conv2d(1, 16, 14, 14, 16, 1, bias=True, multiplier=3, shift=6, relu=True, out_dtype="int8")
    k = tc.Knobs(1, 1, 14, 14, 1, "nchw", 1)
    cyc = {s: tc.build(wl, CFG.replace(alu_stages=s), knobs=k).time().cycles for s in (1, 2, 5)}
    model = {s: A.evaluate(A.columns([(wl, CFG.replace(alu_stages=s), k)]))["cycles"][0] for s in (1, 2, 5)}
    assert cyc[5] < cyc[2] < cyc[1] and cyc[1] / cyc[5] > 1.4  # measured 2513 / 1717 = 1.46
    for s in (2, 5):  # the model's gain from chaining follows the simulator's
        assert model[1] / model[s] == pytest.approx(cyc[1] / cyc[s], rel=0.03)


def test_energy_counts_one_accumulator_read_and_write_per_pass():
    wl = Workload.conv2d(1, 16, 14, 14, 16, 1, bias=True, multiplier=3, shift=6, relu=True, out_dtype="int8")
    k = tc.Knobs(1, 1, 14, 14, 1, "nchw", 1)
    st = {s: tc.build(wl, CFG.replace(alu_stages=s), knobs=k).time() for s in (1, 5)}
    act = {s: st[s].activity for s in st}
    n = len(wl.epilogue)  # 5 instructions, one register operand, on 196 vectors of 64 B accumulators
    assert n == 5
    saved = (n - 1) * 196 * CFG.acc_elem_bytes
    assert act[1]["sram_read_bytes"]["acc"] - act[5]["sram_read_bytes"]["acc"] == saved
    assert act[1]["sram_write_bytes"]["acc"] - act[5]["sram_write_bytes"]["acc"] == saved
    assert act[1]["alu_lane_ops"] == act[5]["alu_lane_ops"]  # the same operations
    e = {s: A.predict(wl, CFG.replace(alu_stages=s), k)["energy_pj"]["acc_sram"] for s in (1, 5)}
    assert e[5] < e[1]
    for s in e:  # the model's accumulator-SRAM energy is the simulator's activity, priced the same
        assert e[s] == pytest.approx(st[s].energy_pj["acc_sram"], rel=1e-6)


def test_stage_registers_charge_every_pass_through_every_stage():
    """Every lane element of a pass crosses all stages (the fill is a cycle longer per stage on every pass), writing
    each of the alu_stages - 1 acc_bits registers once, priced per bit as Horowitz's 32-bit adder (0.1 pJ / 32 bits
    at 0.9 V) x the NanGate45 DFF/FA area ratio 4.522/4.256, at vta_default's 0.7 V. One stage: no register."""
    c = tc.physical.costs(CFG.replace(alu_stages=3))
    assert c["vdd"] == 0.7 and c["tech_nm"] == 45  # vta_default's clock runs at the 45 nm LOP supply
    unit = 32 * 0.1 / 32 * 4.522 / 4.256 * (0.7 / 0.9) ** 2
    assert c["unit_pj"]["alu_stage_reg_write"] == pytest.approx(unit, rel=1e-12)
    assert c["unit_pj"]["alu_lane_op"] == pytest.approx(0.1 * (0.7 / 0.9) ** 2, rel=1e-12)
    # _hand: ADD imm, ADD reg, SHR imm, each one iteration of 4 micro-ops on 16 lanes; chained: one pass, unchained
    # three, through 2 registers each (3 stages)
    st = {k: Simulator(p.config).time(p) for k, p in (("chained", _hand(3)[0]), ("unchained", _hand(3, chain=False)[0]),
                                                      ("one", _hand(1, chain=False)[0]))}
    for k, writes in (("chained", 1 * 4 * 16 * 2), ("unchained", 3 * 4 * 16 * 2), ("one", 0)):
        assert st[k].activity["alu_stage_reg_writes"] == writes, k
        assert st[k].energy_pj["alu_stage_regs"] == pytest.approx(writes * unit, rel=1e-12)
        # the operations themselves are priced as before: 3 x 4 x 16 adder lane ops
        assert st[k].energy_pj["alu"] == pytest.approx(3 * 4 * 16 * 0.1 * (0.7 / 0.9) ** 2, rel=1e-12)
        e = st[k].energy_pj
        assert e["total"] == pytest.approx(sum(v for p, v in e.items() if p != "total"), rel=1e-12)
    # a 1x1 conv, 16 channels on 14x14 (196 vectors, one tile), epilogue ADD(vec) MUL SHR MAX MIN: 2 stages chain
    # [2, 2, 1] (3 passes), 5 and 8 stages one chain of 5 (1 pass)
    wl = Workload.conv2d(1, 16, 14, 14, 16, 1, bias=True, multiplier=3, shift=6, relu=True, out_dtype="int8")
    k = tc.Knobs(1, 1, 14, 14, 1, "nchw", 1)
    for s, passes in ((1, 5), (2, 3), (5, 1), (8, 1)):
        cfg = CFG.replace(alu_stages=s)
        writes = passes * 196 * 16 * (s - 1)
        r = tc.build(wl, cfg, knobs=k).time()
        assert r.activity["alu_stage_reg_writes"] == writes
        assert r.energy_pj["alu_stage_regs"] == pytest.approx(writes * unit, rel=1e-12)
        assert A.predict(wl, cfg, k)["energy_pj"]["alu_stage_regs"] == pytest.approx(writes * unit, rel=1e-12)


def test_stages_cost_area_and_leakage():
    area = [tc.physical.costs(CFG.replace(alu_stages=s))["area_mm2"]["alu"] for s in (1, 2, 4)]
    assert area[0] < area[1] < area[2]
    # two stages: twice the datapath plus one acc_bits register per lane ([NanGate45] DFF/FA 4.522/4.256)
    from tvm_codesign.physical import logic
    one = area[0]
    reg = logic.power_law(logic.ADD_UM2, 32) * 4.522 / 4.256 * 16 * tc.physical.tech.node(45).logic_area_scale() / 1e6
    assert area[1] == pytest.approx(2 * one + reg)
    leak = [tc.physical.costs(CFG.replace(alu_stages=s))["leakage_mw"] for s in (1, 4)]
    assert leak[1] > leak[0]


def test_bound_and_prior_count_passes():
    wl = Workload.conv2d(1, 16, 14, 14, 16, 1, bias=True, multiplier=3, shift=6, relu=True, out_dtype="int8")
    # ADD(vec) MUL SHR MAX MIN: one stage 2+1+1+1+1 = 6; two stages: [vec, imm] [imm, imm] [imm] = 2 + 1 + 1 = 4;
    # five: one pass at II 2 = 2
    assert [alu_cycles_per_vector(wl, CFG.replace(alu_stages=s)) for s in (1, 2, 5, 8)] == [6, 4, 2, 2]
    got = alu_cycles(wl, np.array([1, 1, 3]), np.array([2, 2, 1]), np.array([1, 2, 1]), np.array([1, 5, 2]))
    assert got.tolist() == [6, 4, 3 + 3 + 3]  # last: [vec, imm] at max(3, 1), then [imm, imm], [imm] at 3
    for s in (1, 2, 5):
        cfg = CFG.replace(alu_stages=s)
        sim = tc.build(wl, cfg, knobs=tc.Knobs(1, 1, 14, 14, 1, "nchw", 1)).time().cycles
        assert roofline_cycles(wl, cfg)["bound_alu"] <= sim


def test_bad_alu_stages_name_the_field():
    from tvm_codesign.errors import ConfigError
    for bad in (0, 9, 2.5, True):
        with pytest.raises(ConfigError, match="alu_stages"):
            CFG.replace(alu_stages=bad)


def test_tuner_prior_sees_stages_and_their_area():
    """A space searching only alu_stages: the prior's latency of an epilogue-bound network falls with the stages
    (as the simulator's), its area rises: nothing the tuner can choose is free."""
    from tvm_codesign.hardware.space import DesignSpace
    from tvm_codesign.tuner import network
    from tvm_codesign.tuner.pool import Pool
    pool = Pool(DesignSpace.from_dict({"name": "stages", "base": "vta_default",
                                       "params": {"alu_stages": [1, 2, 4, 8]}}))
    wl = Workload.conv2d(1, 16, 28, 28, 16, 1, bias=True, multiplier=3, shift=6, relu=True, out_dtype="int8")
    lat, _ = pool.prior(network.group([(wl, 1)]))
    stages = pool.column("alu_stages")
    order = np.argsort(stages)
    assert stages[order].tolist() == [1, 2, 4, 8]
    # 5 instructions (ADD vec, MUL, SHR, MAX, MIN) per vector: 6, 4, 3 and 2 ALU cycles
    assert lat[order][0] > lat[order][1] > lat[order][2] > lat[order][3]
    area = [tc.physical.costs(pool.space.config(int(p)))["area_mm2"]["total"] for p in pool.points[order]]
    assert area == sorted(area) and len(set(area)) == 4


def test_vta_export_runs_a_chain_unchained_with_the_same_results():
    """VTA's ALU has one stage: its binary drops the chain bit (CLIP becomes MAX, MIN there) and computes the same."""
    from tvm_codesign.hardware.isa import Finish
    from tvm_codesign.simulator.vta_binary import from_vta, lowered, to_vta
    cfg = CFG.replace(alu_stages=3)
    acc = np.random.default_rng(5).integers(-2 ** 20, 2 ** 20, (6, 1, 16)).astype(np.int32)
    b = ProgramBuilder(cfg)
    ia, iu, io = b.put(acc, Mem.ACC), b.put_uops([(0, 0, 0)]), b.alloc(len(acc), Mem.OUT)
    loop = dict(use_imm=True, uop_bgn=0, uop_end=1, iter_out=6, dst_out=1, src_out=1)
    b.emit(Load(mem=Mem.UOP, sram_base=0, dram_base=iu, y_size=1, x_size=1, x_stride=1),
           Load(mem=Mem.ACC, sram_base=0, dram_base=ia, y_size=1, x_size=6, x_stride=6),
           Alu(op=AluOp.ADD, imm=512, **loop), Alu(op=AluOp.SHR, imm=10, chain=True, **loop),
           Alu(op=AluOp.CLIP, imm=127, chain=True, push_next=True, **loop),
           Store(mem=Mem.OUT, sram_base=0, dram_base=io, y_size=1, x_size=6, x_stride=6, pop_prev=True,
                 push_prev=True), Finish(pop_next=True))
    prog, dram = Program(cfg, b.insns), b.dram()
    want = np.clip((acc.astype(np.int64) + 512) >> 10, -128, 127).astype(np.int8)
    low = lowered(prog)
    assert prog.table["chain"].sum() == 2 and low.table["chain"].sum() == 0 and len(low) == len(prog) + 1
    for p in (prog, low, from_vta(cfg, to_vta(prog, dram), dram)):
        d = dram.copy()
        Simulator(cfg).run(p, d)
        assert np.array_equal(typed_view(d, cfg, Mem.OUT)[io:io + 6], want)
    assert Simulator(cfg).time(prog).cycles < Simulator(cfg).time(low).cycles
