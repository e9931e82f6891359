"""benchmarks/zigzag_arch.py: ZigZag's accelerator, mapping and layer for one of our configs, and the peer
benchmark's statistics (benchmarks/peer_zigzag.py). The live parts (ZigZag accepting and evaluating the YAML, one
CACTI run) are small and skip when zigzag-dse or its CACTI binary is missing."""
from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks"))

import zigzag_arch as Z  # noqa: E402

from tvm_codesign.hardware.config import AcceleratorConfig  # noqa: E402
from tvm_codesign.schedules.workload import Workload  # noqa: E402

TINY = AcceleratorConfig(name="tiny", batch=2, block_in=8, block_out=8, inp_buffer_bytes=8192,
                         wgt_buffer_bytes=32768, acc_buffer_bytes=16384, uop_buffer_bytes=8192, dram_bandwidth=4.0)
FAKE_COSTS = {"inp_sram": (3.0, 4.0, 0.05), "wgt_sram": (20.0, 30.0, 0.2), "acc_sram": (10.0, 15.0, 0.1)}


def test_accelerator_is_the_configs_core_and_memories():
    acc = Z.accelerator(TINY, FAKE_COSTS, mac_pj=0.3, dram_pj_per_byte=100.0)
    arr = acc["operational_array"]
    assert arr["sizes"] == [8, 8, 2] and arr["dimensions"] == ["D1", "D2", "D3"] and arr["unit_energy"] == 0.3
    m = acc["memories"]
    assert m["inp_sram"]["size"] == 8192 * 8 and m["wgt_sram"]["size"] == 32768 * 8 and m["acc_sram"]["size"] == 16384 * 8
    widths = {k: {p["bandwidth_max"] for p in v["ports"]} for k, v in m.items()}
    # per cycle the core reads batch x block_in inputs (8 bit), block_out x block_in weights, batch x block_out sums
    assert widths == {"inp_sram": {2 * 8 * 8}, "wgt_sram": {8 * 8 * 8}, "acc_sram": {2 * 8 * 32}, "dram": {4 * 8}}
    assert (m["wgt_sram"]["r_cost"], m["wgt_sram"]["w_cost"], m["wgt_sram"]["area"]) == FAKE_COSTS["wgt_sram"]
    assert m["dram"]["r_cost"] == m["dram"]["w_cost"] == 400.0  # 100 pJ/B x a 4-byte port word
    assert m["inp_sram"]["operands"] == ["I1"] and m["wgt_sram"]["operands"] == ["I2"] and m["acc_sram"]["operands"] == ["O"]
    assert all(v["served_dimensions"] == ["D1", "D2", "D3"] for v in m.values())


def test_dram_read_and_write_energies_can_differ():
    m = Z.accelerator(TINY, FAKE_COSTS, 0.3, 100.0, 150.0)["memories"]["dram"]
    assert (m["r_cost"], m["w_cost"]) == (400.0, 600.0)


def test_sram_costs_price_every_bank_at_the_supply(monkeypatch):
    """A buffer of n banks costs n bank accesses (and n bank areas), scaled by (V / V_nominal)^2."""
    seen = []

    def fake_cacti(size_bits, width_bits, node):
        seen.append((size_bits, width_bits, node))
        return size_bits / 1e4, width_bits / 10, 0.5

    monkeypatch.setattr(Z, "cacti_sram", fake_cacti)
    monkeypatch.setattr(Z, "banking", lambda cfg, m: (4, Z.sram_ports(cfg)[m][0] // 4, Z.sram_ports(cfg)[m][1] // 4))
    monkeypatch.setattr(Z, "dynamic_scale", lambda cfg: 0.81)
    c = Z.sram_costs(TINY)
    size, width = Z.sram_ports(TINY)["wgt_sram"]
    assert (size // 4, width // 4, 45.0) in seen
    assert c["wgt_sram"] == pytest.approx((4 * size / 4 / 1e4 * 0.81, 4 * width / 4 / 10 * 0.81, 2.0))


def test_batch_one_core_has_two_dimensions():
    acc = Z.accelerator(AcceleratorConfig(), {k: FAKE_COSTS[k] for k in FAKE_COSTS}, 0.3, 100.0)
    assert acc["operational_array"]["sizes"] == [16, 16]
    assert Z.mapping(AcceleratorConfig())[0]["spatial_mapping"] == {"D1": ["K, 16"], "D2": ["C, 16"]}


def test_bad_inputs_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="dram_bandwidth"):
        Z.accelerator(TINY.replace(dram_bandwidth=2.3), FAKE_COSTS, 0.3, 100.0)
    with pytest.raises(ValueError, match="costs must give"):
        Z.accelerator(TINY, {"inp_sram": (1.0, 1.0, 1.0)}, 0.3, 100.0)


def test_layer_pads_channels_and_batch_to_the_core():
    wl = Workload.conv2d(1, 3, 9, 9, 12, 3, stride=2, pad=1, bias=True, shift=8, out_dtype="int8")
    ly = Z.layer(wl, TINY, 7)
    size = dict(zip(ly["loop_dims"], ly["loop_sizes"]))
    assert size == {"B": 2, "K": 16, "G": 1, "OX": 5, "OY": 5, "C": 8, "FX": 3, "FY": 3}
    assert ly["dimension_relations"] == ["ix=2*ox+1*fx", "iy=2*oy+1*fy"]
    assert ly["padding"] == [[1, 1], [1, 1]] and ly["pr_loop_sizes"] == [9, 9]
    assert ly["operand_precision"] == {"W": 8, "I": 8, "O": 32, "O_final": 8}
    assert Z.layer(wl.__class__.dense(4, 64, 10), TINY)["operand_precision"]["O_final"] == 32  # int32 out


def test_spearman_matches_the_textbook_formula():
    """Without ties Spearman's rho is 1 - 6 sum d^2 / (n (n^2 - 1)); with ties, ranks are averaged."""
    import peer_zigzag as P
    rng = np.random.default_rng(0)
    a, b = rng.permutation(20).astype(float), rng.permutation(20).astype(float)
    d = P.ranks(a) - P.ranks(b)
    assert P.spearman(a, b) == pytest.approx(1 - 6 * (d * d).sum() / (20 * (20 * 20 - 1)))
    assert list(P.ranks([10, 20, 20, 5])) == [2.0, 3.5, 3.5, 1.0]
    assert P.spearman([1, 2, 3, 4], [10, 20, 30, 45]) == pytest.approx(1.0)
    assert P.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="equal length"):
        P.spearman([1, 2, 3], [1, 2])


def test_without_epilogue_leaves_no_alu_stage():
    import peer_zigzag as P
    wl = Workload.conv2d(1, 16, 8, 8, 16, 3, pad=1, bias=True, shift=8, multiplier=3, relu=True, out_dtype="int8")
    bare = P.without_epilogue(wl)
    assert wl.epilogue and bare.epilogue == [] and bare.out_dtype == "int8" and bare.macs == wl.macs


def test_zigzag_accepts_and_evaluates_the_architecture(tmp_path):
    """ZigZag parses the written YAML and maps a small 1x1 conv on it (loop-prime-factor limit 1, four temporal
    loops: seconds).
    Independent checks: its ideal cycles are the padded MACs over the array, its MAC energy the unit energy
    times those MACs, and its DRAM energy at least the compulsory traffic (each operand once) at 100 pJ/B."""
    pytest.importorskip("zigzag")
    import logging

    import peer_zigzag as P
    logging.disable(logging.CRITICAL)
    try:
        acc, mp = Z.write(tmp_path, TINY, FAKE_COSTS, 0.3, 100.0)
        wl = Workload.conv2d(2, 16, 4, 4, 16, 1, bias=True, shift=8, out_dtype="int8")
        t0 = time.perf_counter()
        r = P._zigzag_layer(wl, TINY, acc, mp, lpf=1)
        assert time.perf_counter() - t0 < 60
    finally:
        logging.disable(logging.NOTSET)
    macs = 2 * 16 * 16 * 4 * 4
    assert r["ideal_cycles"] == macs / (8 * 8 * 2)
    assert r["cycles"] >= r["ideal_cycles"]
    assert r["parts"]["mac"] == pytest.approx(0.3 * macs)
    compulsory = 2 * 16 * 4 * 4 + 16 * 16 + 2 * 16 * 4 * 4  # input, weights, int8 output bytes
    assert r["parts"]["dram"] >= 100.0 * compulsory * 0.999
    assert r["energy_pj"] == pytest.approx(sum(r["parts"].values()))


def test_cacti_sram_matches_a_published_cacti_run():
    """One live CACTI 7 run (about 2 s, cached): 8 KiB, 64-bit port, 1R1W, 45 nm gives 7.47 pJ read, 9.23 pJ
    write, 0.060 mm^2 (the same CACTI, run by hand: ../shared/cacti_notes.md)."""
    pytest.importorskip("zigzag")
    try:
        r, w, a = Z.cacti_sram(8192 * 8, 64, 45)
    except RuntimeError as e:
        pytest.skip(str(e))
    assert r == pytest.approx(7.47, rel=0.01) and w == pytest.approx(9.23, rel=0.01) and a == pytest.approx(0.060, abs=0.001)


def test_zigzag_total_energy_adds_the_static_power_over_its_own_latency():
    """ZigZag counts dynamic energy only; its total adds the architecture's leakage and DRAM background power
    (vta_default: 553.7 + 37.9 mW, README's physical table) over ZigZag's latency, not ours."""
    import types

    import peer_zigzag as P
    cfg = AcceleratorConfig.load("vta_default")
    ly = [types.SimpleNamespace(key="a", count=2), types.SimpleNamespace(key="b", count=1)]
    o = {"a": {"cycles": 1e6, "energy_pj": 5e9, "parts": {"mac": 1e8, "static": 4e9}},
         "b": {"cycles": 2e6, "energy_pj": 9e9, "parts": {"mac": 2e8}}}
    z = {"a": {"cycles": 5e5, "energy_pj": 3e8}, "b": {"cycles": 1e6, "energy_pj": 4e8}}
    r = P.network_totals(ly, o, z, cfg)
    assert r["static_mw"] == pytest.approx(553.7 + 37.9, abs=0.2)
    assert r["zigzag_latency_s"] == pytest.approx(2e6 / 100e6) and r["ours_latency_s"] == pytest.approx(4e6 / 100e6)
    assert r["zigzag_energy_pj"] == pytest.approx(1e9)
    assert r["zigzag_energy_total_pj"] == pytest.approx(1e9 + r["static_mw"] * 1e-3 * 0.02 * 1e12)
    assert r["ours_energy_comparable_pj"] == pytest.approx(4e8)
