"""Precision-flexible and 2:4-sparse GEMM modes (hardware/modes.py, hardware/packing.py): bit-exact against numpy
in every mode, packed storage, the ISA's mode field, config errors, costs and the analytical model per mode."""
import numpy as np
import pytest
import torch

import tvm_codesign as tc
from tvm_codesign.costmodel import analytical as A
from tvm_codesign.costmodel.sampling import random_points
from tvm_codesign.errors import ConfigError, ProgramError
from tvm_codesign.hardware import modes as M
from tvm_codesign.hardware import packing as P
from tvm_codesign.hardware.config import AcceleratorConfig
from tvm_codesign.hardware.isa import Gemm, Load, Mem, Opcode
from tvm_codesign.physical import model as phys
from tvm_codesign.schedules.workload import Workload
from tvm_codesign.simulator import Program
from tvm_codesign.simulator.dram import ProgramBuilder

HW = M.flexible(AcceleratorConfig.load("vta_default"))
RNG = np.random.default_rng(2024)


def _rand(shape, bits):
    return RNG.integers(-(1 << (bits - 1)), 1 << (bits - 1), shape).astype(np.int8)


def _prune_2_4(w: np.ndarray, axis: int) -> np.ndarray:
    """Zero 2 random positions of every group of 4 along ``axis`` (zero-padded to a multiple of 4 by the layout)."""
    x = np.moveaxis(w, axis, -1).copy()
    n = x.shape[-1]
    pad = -n % 4
    g = np.concatenate([x, np.zeros(x.shape[:-1] + (pad,), x.dtype)], -1).reshape(x.shape[:-1] + (-1, 4))
    drop = np.argsort(RNG.random(g.shape), -1)[..., :2]
    np.put_along_axis(g, drop, 0, -1)
    return np.moveaxis(g.reshape(x.shape[:-1] + (-1,))[..., :n], -1, axis).copy()


def test_modes_of_a_flexible_core():
    assert AcceleratorConfig.load("vta_default").modes == ("",)
    assert len(HW.modes) == 18 and HW.modes[0] == "" and "w4a4" in HW.modes and "w2a8s" in HW.modes
    v = HW.with_mode("w4a4")
    assert (v.block_in, v.hardware, v.mode_index) == (64, HW, HW.modes.index("w4a4"))
    assert HW.with_mode("w8a8") is HW
    # a 4-bit weight buffer holds twice the elements of an 8-bit one (same bytes)
    assert HW.with_mode("w4a8").wgt_depth * HW.with_mode("w4a8").block_in == 2 * HW.wgt_depth * HW.block_in
    # 2:4: kept values + 2-bit positions per element in DRAM, values only in the weight SRAM
    s = HW.with_mode("w8a8s")
    assert s.wgt_elem_bytes == 16 * 32 // 2 + 16 * 32 // 2 * 2 // 8 and s.wgt_row_bytes == 16 * 32 // 2


@pytest.mark.parametrize("bad,field,msg", [
    (dict(mode="w3a8"), "mode", "not a mode"),
    (dict(gemm_min_bits=3), "gemm_min_bits", "not supported"),
    (dict(gemm_min_bits=2), "insn_bits", "mode 4"),      # the 4-bit mode field needs > 128 bits
    (dict(sparse_2_4=1), "sparse_2_4", "true or false"),
])
def test_config_errors(bad, field, msg):
    with pytest.raises(ConfigError, match=msg) as e:
        AcceleratorConfig.load("vta_default").replace(**bad)
    assert e.value.field == field


def test_unsupported_mode_names_the_modes():
    with pytest.raises(ConfigError, match="w8a8"):
        AcceleratorConfig.load("vta_default").with_mode("w4a4")
    with pytest.raises(ConfigError, match="sparse_2_4"):
        M.flexible(AcceleratorConfig.load("vta_default"), 4, False).with_mode("w4a4s")
    with pytest.raises(ConfigError, match="w2a8"):
        M.flexible(AcceleratorConfig.load("vta_default"), 4, False).with_mode("w2a8")


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_pack_round_trip_and_layout(bits):
    v = _rand((5, 16), bits)
    b = P.pack(v, bits)
    assert b.shape == (5, 16 * bits // 8) and b.dtype == np.uint8
    np.testing.assert_array_equal(P.unpack(b, bits), v)
    # element 0 in the lowest bits of byte 0 (independent recomputation)
    per = 8 // bits
    expect = sum((v[0, i].astype(np.int64) & ((1 << bits) - 1)) << (bits * i) for i in range(per))
    assert int(b[0, 0]) == int(expect)
    if bits < 8:
        with pytest.raises(ValueError, match=f"value {1 << (bits - 1)} does not fit {bits} bits"):
            P.pack(np.array([1 << (bits - 1)] * per), bits)


def test_2_4_compression_round_trip_and_errors():
    w = _prune_2_4(_rand((3, 16, 32), 8), -1)
    vals, pos = P.compress_2_4(w)
    assert vals.shape == (3, 16, 16) and pos.min() >= 0 and pos.max() <= 3
    np.testing.assert_array_equal(P.decompress_2_4(vals, pos), w)
    w[1, 2, 4:7] = 5  # three non-zeros in group 1 of row (1, 2)
    with pytest.raises(ValueError, match=r"not 2:4 sparse: group \(1, 2, 1\)"):
        P.compress_2_4(w)


CONV = Workload.conv2d(1, 24, 9, 7, 20, 3, 1, 1)       # odd shapes: 24 channels pad to a 64/128/512-wide tile
DENSE = Workload.dense(3, 136, 40)


@pytest.mark.parametrize("mode", ["", "w8a4", "w4a8", "w4a4", "w2a8", "w2a2", "w8a8s", "w4a4s", "w2a8s", "w2a2s"])
@pytest.mark.parametrize("wl", [CONV, DENSE], ids=["conv", "dense"])
def test_bit_exact_in_every_mode(mode, wl):
    cfg = HW.with_mode(mode)
    m = cfg.mode_spec
    x = _rand((1, 24, 9, 7) if wl.kind == "conv2d" else (3, 136), m.a_bits)
    w = _rand((20, 24, 3, 3) if wl.kind == "conv2d" else (40, 136), m.w_bits)
    if m.sparse:
        w = _prune_2_4(w, 1)
    mod = tc.build(wl, config=cfg)
    out = mod(x, w)
    if wl.kind == "conv2d":
        ref = torch.nn.functional.conv2d(torch.tensor(x, dtype=torch.int64), torch.tensor(w, dtype=torch.int64),
                                         padding=1).numpy()
    else:
        ref = x.astype(np.int64) @ w.astype(np.int64).T
    np.testing.assert_array_equal(out.astype(np.int64), ref)
    # the program names its mode in every DMA and GEMM
    t = mod.kernel.program.table
    sel = (t["opcode"] == Opcode.GEMM) | (t["opcode"] == Opcode.LOAD) | (t["opcode"] == Opcode.STORE)
    assert (t["mode"][sel] == cfg.mode_index).all()


def test_values_outside_the_mode_are_refused():
    mod = tc.build(DENSE, config=HW.with_mode("w4a4"))
    with pytest.raises(ValueError, match="cannot run in mode w4a4.*does not fit 4 bits"):
        mod(_rand((3, 136), 8) * 0 + 9, _rand((40, 136), 4))
    sp = tc.build(DENSE, config=HW.with_mode("w8a8s"))
    with pytest.raises(ValueError, match="not 2:4 sparse"):
        sp(_rand((3, 136), 8), np.ones((40, 136), np.int8))


def test_narrow_modes_are_faster_and_cheaper_per_mac():
    base = Workload.conv2d(1, 64, 14, 14, 64, 3, 1, 1)
    stats = {}
    for mode in ("", "w4a4", "w2a2", "w8a8s"):
        cfg = HW.with_mode(mode)
        f = cfg.block_in // HW.block_in
        wl = Workload.conv2d(1, 64 * f, 14, 14, 64, 3, 1, 1)  # same tiles, f x the channels
        stats[mode] = tc.build(wl, config=cfg).time()
        assert stats[mode].macs == f * tc.build(base, config=HW).time().macs
    per_mac = {m: s.energy_pj["mac"] / s.macs for m, s in stats.items()}
    assert per_mac["w4a4"] == pytest.approx(per_mac[""] / 4) and per_mac["w2a2"] == pytest.approx(per_mac[""] / 16)
    assert per_mac[""] / 2 < per_mac["w8a8s"] < per_mac[""] * 0.6   # half the products, plus the select muxes


def test_a_program_runs_one_mode():
    cfg = HW.with_mode("w4a4")
    b = ProgramBuilder(cfg)
    a = b.put(np.zeros((1, 1, 64), np.int8), Mem.INP)
    with pytest.raises(ProgramError, match="runs mode 0 but the program's config runs mode"):
        Program(cfg, [Load(mem=Mem.INP, sram_base=0, dram_base=a, y_size=1, x_size=1, x_stride=1)])
    b.emit(Load(mem=Mem.INP, sram_base=0, dram_base=a, y_size=1, x_size=1, x_stride=1, mode=cfg.mode_index))
    assert len(b.program()) == 1


def test_isa_encodes_the_mode():
    cfg = HW.with_mode("w2a2s")
    g = Gemm(uop_bgn=0, uop_end=1, wgt_in=3, mode=cfg.mode_index)
    lay = cfg.isa_layout
    assert dict((n, w) for n, w, _ in lay.fields[Opcode.GEMM])["mode"] == (len(HW.modes) - 1).bit_length()
    # every mode's instructions and micro-ops decode with the hardware's one layout: the mode is readable first
    d = HW.isa_layout.decode(lay.encode(g))
    assert (d.mode, d.wgt_in) == (cfg.mode_index, 3) and cfg.uop_fields == HW.uop_fields
    # an int8-only core spends no bits on it
    assert dict((n, w) for n, w, _ in AcceleratorConfig.load("vta_default").isa_layout.fields[Opcode.GEMM])["mode"] == 0


def test_physical_costs_follow_bit_fusion():
    base = AcceleratorConfig.load("vta_default").replace(insn_bits=192)
    core = {b: phys.costs(M.flexible(base, b, False))["area_mm2"]["gemm_core"] for b in (8, 4, 2)}
    assert core[8] < core[4] < core[2]
    assert core[2] / core[8] == pytest.approx(27752.8 / 8171.7, rel=1e-6)   # Bit Fusion's 4x4 synthesis ratio
    sparse = phys.costs(M.flexible(base, 8, True))["area_mm2"]
    assert sparse["wgt_meta_sram"] > 0 and sparse["gemm_core"] > core[8]


def test_analytical_model_agrees_with_simulator_in_modes():
    pts = random_points(24, seed=5, modes=True)
    stats = [tc.build(wl, cfg, knobs=k).time() for wl, cfg, k in pts]
    r = A.evaluate(A.columns(pts))
    sim = np.array([s.cycles for s in stats], float)
    assert np.median(np.abs(r["cycles"] / sim - 1)) <= 0.05
    for mem in ("INP", "WGT", "ACC"):  # packed and compressed bytes exact
        np.testing.assert_array_equal(r["dram_read_by_mem"][mem], [s.dram_read_bytes.get(mem, 0) for s in stats])
    np.testing.assert_array_equal(r["macs"], [s.macs for s in stats])


def test_compiled_models_run_each_layer_in_its_mode():
    """compile(precision=, sparsity=) on a flexible core: every layer runs in the fastest mode that computes its
    quantisation exactly, with the same outputs as the int8 core (the quantised graph is the same; that graph is
    checked against a numpy interpreter in tests/test_precision_options.py)."""
    from test_precision_options import Small, interpret

    torch.manual_seed(0)
    net = Small().eval()
    x = torch.randn(1, 1, 8, 8)
    cal = [(torch.randn(1, 1, 8, 8).numpy(),) for _ in range(8)]
    prec, sp = {"conv2d_1": (2, 8), "conv2d_2": (4, 4), "dense_0": (4, 8)}, {"conv2d_2": "2:4", "dense_0": "2:4"}
    flex = tc.compile(net, HW, example_inputs=(x,), calibration=cal, precision=prec, sparsity=sp, progress=False)
    int8 = tc.compile(net, "vta_default", example_inputs=(x,), calibration=cal, precision=prec, sparsity=sp,
                      progress=False)
    got = {n: d["hw_mode"] for n, d in flex.layer_modes.items()}
    assert got == {"conv2d_0": "w8a8", "conv2d_1": "w2a8", "conv2d_2": "w4a4s", "dense_0": "w4a8s"}
    assert {d["hw_mode"] for d in int8.layer_modes.values()} == {"w8a8"}
    from tvm_codesign import model as Mdl
    from tvm_codesign.frontend import quantize as Q
    graph = Q._main(Mdl._quantized(net, None, (x,), cal, "alu", {}, prec, sp, None))  # what both compiled
    for _ in range(2):
        xi = torch.randn(1, 1, 8, 8).numpy()
        y = flex(xi)
        np.testing.assert_array_equal(y, int8(xi))
        np.testing.assert_array_equal(y, interpret(graph, xi))


def test_2_4_storage_layout_is_pinned():
    """Kept values first (row-major), then their 2-bit positions, little-endian within bytes."""
    from types import SimpleNamespace
    cfg = SimpleNamespace(block_out=2, block_in=4, batch=1, mode_spec=M.parse("w8a8s"), wgt_row_bytes=4)
    w = np.zeros((1, 2, 4), np.int8)
    w[0, 0, 0] = 5
    assert P.encode(cfg, "wgt", w).tolist() == [[5, 0, 0, 0, 0b01000100]]  # positions (0, 1), (0, 1)
    w[0, 1, 3], w[0, 1, 1] = -2, 7
    assert P.encode(cfg, "wgt", w).tolist() == [[5, 0, 7, 254, 0b11010100]]  # (0, 1), (1, 3)
    np.testing.assert_array_equal(P.decode(cfg, "wgt", P.encode(cfg, "wgt", w)), w)


@pytest.mark.parametrize("wl,shape,axis", [
    (Workload.conv2d(1, 6, 7, 5, 8, 3, 1, 1), ((1, 6, 7, 5), (8, 6, 3, 3)), 1),           # groups of 4 padded
    (Workload.conv2d(1, 24, 6, 6, 32, 3, 1, 1, groups=4), ((1, 24, 6, 6), (32, 6, 3, 3)), 1),  # 6 per group
    (Workload.dense(2, 10, 12), ((2, 10), (12, 10)), 1)])
def test_sparse_odd_shapes(wl, shape, axis):
    from tvm_codesign.frontend.lowbit import prune_2_4
    cfg = HW.with_mode("w4a8s")
    x, w = _rand(shape[0], 8), _rand(shape[1], 4)
    w = prune_2_4(w.astype(np.float64), axis)[0].astype(np.int8)
    out = tc.build(wl, config=cfg)(x, w)
    if wl.kind == "conv2d":
        ref = torch.nn.functional.conv2d(torch.tensor(x, dtype=torch.float64), torch.tensor(w, dtype=torch.float64),
                                         padding=1, groups=wl.groups).numpy()
    else:
        ref = x.astype(np.int64) @ w.astype(np.int64).T
    np.testing.assert_array_equal(out.astype(np.int64), ref.astype(np.int64))


def test_mode_programs_do_not_export_to_vta():
    from tvm_codesign.hardware.vta_format import VtaLayout
    with pytest.raises(ConfigError, match="VTA's format has no precision"):
        VtaLayout.for_config(HW.with_mode("w8a4"))


def test_a_narrow_row_on_a_wide_port_costs_a_whole_access():
    """The flexible core's w8a8 reads a quarter of its widened input port per GEMM cycle and pays the whole access:
    its SRAM energy per MAC is not below the int8-only core's."""
    wl = Workload.conv2d(1, 64, 14, 14, 64, 3, 1, 1)
    int8 = tc.build(wl, config=AcceleratorConfig.load("vta_default").replace(insn_bits=192)).time()
    flex = tc.build(wl, config=HW).time()
    for b in ("inp_sram", "wgt_sram"):
        assert flex.energy_pj[b] / flex.macs >= int8.energy_pj[b] / int8.macs


def test_a_sparse_weight_read_pays_the_metadata_sram_too():
    """A 2:4 mode's weight row is its kept values (weight SRAM) and their positions (metadata SRAM): each weight
    access reads both memories, priced from the CACTI table's entries of their banks (physical/sram.py)."""
    from tvm_codesign.physical import sram
    hw = M.flexible(AcceleratorConfig.load("vta_default"), 8, True)
    view = hw.with_mode("w8a8s")
    c = phys.costs(view)
    dyn = (c["vdd"] / c["vdd_nominal"]) ** 2

    def access_pj(buf, rw):
        n, cap, bits = sram.banking(view, buf)
        return n * sram.entry(view.tech_nm, cap, bits)[f"{rw}_pj"]

    for rw in ("read", "write"):
        both = (access_pj("wgt", rw) + access_pj(sram.META, rw)) * dyn / view.wgt_elem_bytes
        assert c["unit_pj"][f"wgt_{rw}_byte"] == pytest.approx(both, rel=1e-12)
    assert access_pj(sram.META, "read") > 0
    dense = phys.costs(hw.with_mode("w8a8"))["unit_pj"]  # a dense mode on the same core reads no positions
    assert dense["wgt_read_byte"] == pytest.approx(access_pj("wgt", "read") * dyn / hw.with_mode("w8a8").wgt_elem_bytes)
