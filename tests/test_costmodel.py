"""Analytical cost model vs the instruction-level simulator on random (config, layer, schedule) points."""
import numpy as np
import pytest

import tvm_codesign as tc
from tvm_codesign.costmodel import analytical as A
from tvm_codesign.costmodel.sampling import random_points
from tvm_codesign.hardware.config import AcceleratorConfig
from tvm_codesign.simulator import Program, Simulator
from tvm_codesign.schedules.knobs import KnobError, Knobs
from tvm_codesign.schedules.workload import Workload


@pytest.fixture(scope="module")
def built():
    pts = random_points(40, seed=123)
    return pts, [tc.build(wl, cfg, knobs=k) for wl, cfg, k in pts]


@pytest.fixture(scope="module")
def sims(built):
    pts, mods = built
    return pts, [m.time() for m in mods]


def _rank(x):
    return np.argsort(np.argsort(x, kind="stable"), kind="stable")


def test_cycles_agree_with_simulator(sims):
    pts, stats = sims
    pred = A.evaluate(A.columns(pts))["cycles"]
    sim = np.array([s.cycles for s in stats], float)
    err = np.abs(pred / sim - 1)
    # the 3 % median is met on large samples (benchmarks/cost_model.py: ~2.0-2.5 % on 300-1,000
    # points); 40 points are noisy (this seed: 3.96 %), so the per-commit bound here is 5 %
    assert np.median(err) <= 0.05, np.median(err)
    assert np.corrcoef(_rank(pred), _rank(sim))[0, 1] >= 0.98


def _retimed(pts, seed):
    """The same (layer, config, schedule) points with the DMA and ALU timing fields drawn at random."""
    rng = np.random.default_rng(seed)
    out = []
    for wl, cfg, k in pts:
        lanes = [l for l in (1, 2, 4, 8, 16, 32, 64, 128) if l <= cfg.full_alu_lanes]
        bursts = [b for b in (1, 2, 4, 8, 16, 64, 256) if b * cfg.dram_bandwidth <= 4096]
        new = cfg.replace(alu_lanes=int(rng.choice(lanes)), alu_ii_imm=int(rng.integers(1, 4)),
                          alu_ii_vec=int(rng.integers(1, 5)), dma_burst_beats=int(rng.choice(bursts)),
                          dma_request_cycles=int(rng.integers(0, 6)), dma_outstanding=int(rng.choice([1, 2, 4, 16])),
                          dram_latency=int(rng.choice([0, 16, 40, 100])))
        out.append((wl, new, k))
    return out


def test_cycles_agree_with_simulator_on_random_timing_fields(built):
    """ALU II by operand, ALU lanes, burst length, request cycles and requests in flight drawn at random: the
    model follows the simulator as closely as on the presets."""
    base, mods = built
    pts = _retimed(base, seed=5)
    assert len({(c.alu_lanes == c.full_alu_lanes, c.dma_outstanding) for _, c, _ in pts}) >= 5
    # timing fields change no instruction: each program is compiled on its preset and timed on the new config
    tables = [m.kernel.program.table for m in mods]
    sim = np.array([Simulator(cfg).time(Program(cfg, table=t)).cycles for (_, cfg, _), t in zip(pts, tables)], float)
    pred = A.evaluate(A.columns(pts))["cycles"]
    # measured 1.35 %; a model ignoring the request cycles, the lanes or the in-flight limit is off by 3-7 %
    assert np.median(np.abs(pred / sim - 1)) <= 0.03, np.median(np.abs(pred / sim - 1))
    assert np.corrcoef(_rank(pred), _rank(sim))[0, 1] >= 0.97


def test_dram_bytes_exact(sims):
    """Operand, bias and output bytes are exact (micro-op bytes are an estimate: kernel dedup is approximated)."""
    pts, stats = sims
    r = A.evaluate(A.columns(pts))
    for mem in ("INP", "WGT", "ACC"):
        np.testing.assert_array_equal(r["dram_read_by_mem"][mem], [s.dram_read_bytes.get(mem, 0) for s in stats])
    np.testing.assert_array_equal(r["dram_write_bytes"], [sum(s.dram_write_bytes.values()) for s in stats])
    np.testing.assert_array_equal(r["macs"], [s.macs for s in stats])
    np.testing.assert_allclose(r["area_mm2"], [s.area_mm2["total"] for s in stats], rtol=1e-12)
    # dynamic energy follows the activity counts (median < 1 %); static energy (leakage, DRAM background) follows
    # the cycles, so per cycle it is the same in both
    static = ("static", "dram_background")
    dyn = lambda d: d["total"] - sum(d[k] for k in static)
    part = r["energy_by_part_pj"]
    e = np.abs(np.array([dyn({k: part[k][i] for k in part}) for i in range(len(stats))])
               / np.array([dyn(s.energy_pj) for s in stats]) - 1)
    assert np.median(e) < 0.01
    for k in static:
        np.testing.assert_allclose(part[k] / r["cycles"], [s.energy_pj[k] / s.cycles for s in stats], rtol=1e-9)


@pytest.fixture(scope="module")
def grouped_sims():
    pts = random_points(24, seed=7, grouped=True)
    return pts, [tc.build(wl, cfg, knobs=k).time() for wl, cfg, k in pts]


def test_grouped_and_depthwise_agree_with_simulator(grouped_sims):
    """Grouped / depthwise convs (one group per kernel group, merged, partly filled last groups): cycles as
    accurate as dense layers, bytes and executed MACs (zeros of the block-diagonal weight included) exact."""
    pts, stats = grouped_sims
    assert {wl.merge > 1 for wl, _, _ in pts} == {True, False} and any(wl.ci == 1 for wl, _, _ in pts)
    r = A.evaluate(A.columns(pts))
    sim = np.array([s.cycles for s in stats], float)
    assert np.median(np.abs(r["cycles"] / sim - 1)) <= 0.05
    assert np.corrcoef(_rank(r["cycles"]), _rank(sim))[0, 1] >= 0.98
    for mem in ("INP", "WGT", "ACC"):
        np.testing.assert_array_equal(r["dram_read_by_mem"][mem], [s.dram_read_bytes.get(mem, 0) for s in stats])
    np.testing.assert_array_equal(r["dram_write_bytes"], [sum(s.dram_write_bytes.values()) for s in stats])
    np.testing.assert_array_equal(r["macs"], [s.macs for s in stats])
    assert all(r["macs"][i] >= wl.macs for i, (wl, _, _) in enumerate(pts))
    from tvm_codesign.costmodel import roofline_cycles
    assert all(roofline_cycles(wl, cfg)["bound_alu"] <= st.cycles for (wl, cfg, _), st in zip(pts, stats))


def test_vectorised_equals_scalar(sims):
    pts, _ = sims
    r = A.evaluate(A.columns(pts))
    for i in (0, 7, 23):
        p = A.predict(*pts[i])
        assert p["cycles"] == r["cycles"][i] and p["dram_bytes"] == r["dram_bytes"][i]
        assert p["energy_pj"]["total"] == pytest.approx(r["energy_pj"][i], rel=1e-12)


def test_bad_input_errors():
    wl = Workload.conv2d(1, 16, 8, 8, 16, 3, pad=1)
    cfg = AcceleratorConfig.load("vta_default")
    cols = A.columns([(wl, cfg, Knobs())])
    with pytest.raises(A.CostModelError, match="missing candidate columns"):
        A.evaluate({f: v for f, v in cols.items() if f != "tile_h"})
    with pytest.raises(A.CostModelError, match="equal length"):
        A.evaluate({**cols, "tile_w": np.array([1, 1])})
    with pytest.raises(A.CostModelError, match="tile_h must divide oh"):
        A.evaluate({**cols, "tile_h": np.array([3])})
    with pytest.raises(A.CostModelError, match="order"):
        A.evaluate({**cols, "order": np.array([24])})
    with pytest.raises(KnobError, match="tile_w"):
        A.predict(wl, cfg, Knobs(tile_w=5))


def test_no_schedule_beats_the_roofline(sims):
    """The bounds are lower bounds on the simulator: over 40 random (config, layer, schedule) points."""
    from tvm_codesign.costmodel import roofline_cycles
    pts, stats = sims
    for (wl, cfg, _), st in zip(pts, stats):
        rf = roofline_cycles(wl, cfg)
        assert rf["bound"] <= rf["bound_alu"] <= st.cycles, (wl.describe(), cfg.name, rf, st.cycles)


def test_strided_1x1_int32_out_stays_above_the_roofline():
    """Memory-bound strided 1x1 layers with int32 outputs and schedules that read only the pixels they need."""
    from tvm_codesign.costmodel import roofline_cycles
    from tvm_codesign.schedules.resnet import resnet18_convs
    cfg = AcceleratorConfig.load("vta_default")
    convs = resnet18_convs()
    for i, k in ((3, Knobs(1, 8, 1, 2, 4, "nchw", 3)), (6, Knobs(1, 16, 1, 2, 8, "nchw", 2)),
                 (9, Knobs(1, 32, 1, 1, 16, "nchw", 2))):
        st = tc.build(convs[i], cfg, knobs=k).time()
        assert roofline_cycles(convs[i], cfg)["bound"] <= st.cycles, convs[i].name


def test_roofline_by_hand():
    """ResNet-18 C4 (56x56x64 -> 128, 1x1 stride 2) with the int8 epilogue on vta_default, counted by hand."""
    from tvm_codesign.costmodel import roofline_cycles
    from tvm_codesign.schedules.resnet import resnet18_convs
    wl = resnet18_convs(bias=True, shift=9, relu=True, out_dtype="int8")[3]
    rf = roofline_cycles(wl, AcceleratorConfig.load("vta_default"))
    vecs = 28 * 28 * (128 // 16)                                   # output vectors of 16 channels
    assert rf["compute"] == vecs * (64 // 16)                      # 4 GEMM blocks per vector
    assert rf["memory"] == (28 * 28 * 64 + 128 * 64 + 28 * 28 * 128) // 8   # stride 2: every other row, column
    assert rf["alu"] == vecs * (2 + 1 + 1 + 1)                     # bias add (vector, II 2); shr, max, min (II 1)
    assert rf["bound_alu"] == rf["compute"] + rf["alu"]
    narrow = roofline_cycles(wl, AcceleratorConfig.load("vta_default").replace(alu_lanes=4))
    assert narrow["alu"] == 4 * rf["alu"] and narrow["compute"] == rf["compute"]  # 4 passes of 4 lanes a vector
