"""Physical costs (tvm_codesign.physical) against references written elsewhere: a live CACTI 7 run, DRAM datasheet
currents, the alpha-power law, Horowitz's ISSCC'14 figures; and the simulator's energy split."""
import math
import random
import tempfile

import numpy as np
import pytest

from tvm_codesign import AcceleratorConfig, Simulator, preset_names
from tvm_codesign import physical
from tvm_codesign.errors import ConfigError
from tvm_codesign.physical import dram, logic, sram, tech
from tvm_codesign.simulator.reference_gemm import tiled_gemm

CFG = AcceleratorConfig.load("vta_default")


def test_table_holds_the_published_cacti_figures():
    # issue 14 / shared/cacti_notes.md: CACTI 7 at 45 nm, one read + one write port
    big = sram.entry(45, 256 << 10, 2048)
    assert big["read_pj"] == pytest.approx(606.3, abs=0.1) and big["area_mm2"] == pytest.approx(2.858, abs=1e-3)
    assert big["write_pj"] == pytest.approx(1166.3, abs=0.1)
    assert sram.entry(45, 8 << 10, 64)["read_pj"] == pytest.approx(7.47, abs=0.01)
    assert sram.entry(45, 128 << 10, 512)["read_pj"] == pytest.approx(122.6, abs=0.1)
    # Horowitz ISSCC'14 (45 nm, 64-bit access): 10 pJ at 8 KB, 100 pJ at 1 MB; CACTI within 30 %
    assert sram.entry(45, 8 << 10, 64)["read_pj"] == pytest.approx(10, rel=0.3)
    assert sram.entry(45, 1 << 20, 64)["read_pj"] == pytest.approx(100, rel=0.3)


def test_table_matches_a_live_cacti_run():
    pytest.importorskip("zigzag", reason="zigzag-dse (CACTI 7 sources) is not installed: pip install zigzag-dse six")
    from tvm_codesign.physical import cacti
    if not cacti.shutil.which("make") or not cacti.shutil.which("g++"):
        pytest.skip("no make / g++ to build CACTI")
    rng = random.Random(0)
    small = sorted(k for k in sram.table() if k[1] <= 32 << 10)
    points = [(45, 256 << 10, 2048), (45, 8 << 10, 64)] + rng.sample(small, 2)
    with tempfile.TemporaryDirectory() as tmp:
        d = cacti.build(tmp)
        for nm, cap, w in points:
            live = cacti.run_point(d, cap, w, nm)
            assert live is not None, (nm, cap, w)
            for k in ("read_pj", "write_pj", "area_mm2", "leakage_mw", "cycle_ns"):
                assert sram.entry(nm, cap, w)[k] == pytest.approx(live[k], rel=1e-4), (nm, cap, w, k)


def test_buffers_are_banked_as_vta_builds_them():
    b = sram.buffer_costs(CFG, 45)
    assert (b["wgt"]["banks"], b["wgt"]["bank_bytes"], b["wgt"]["bank_bits"]) == (16, 16 << 10, 128)
    assert (b["acc"]["banks"], b["acc"]["bank_bits"]) == (1, 512) and b["inp"]["bank_bits"] == 128
    e = sram.entry(45, 16 << 10, 128)
    assert b["wgt"]["read_pj"] == pytest.approx(16 * e["read_pj"]) and b["wgt"]["area_mm2"] == pytest.approx(16 * e["area_mm2"])
    # per byte: one access reads the whole 256 B weight block
    u = physical.unit_energies_pj(CFG)
    v = physical.costs(CFG)["vdd"]
    assert u["wgt_read_byte"] == pytest.approx(16 * e["read_pj"] / 256 * v ** 2)


def test_buffer_off_the_grid_is_a_clear_error():
    cfg = CFG.replace(acc_buffer_bytes=2 << 20, insn_bits=192)  # one 2 MiB bank: beyond the table's 1 MiB
    with pytest.raises(physical.PhysicalError, match=r"acc buffer \(1 bank of 2097152 B x 512 bit\).*capacities 2\^9"):
        physical.costs(cfg)
    assert "acc buffer" in physical.why_infeasible(cfg)
    st = Simulator(cfg).time(tiled_gemm(cfg, *_ops(), 8, 2, 4).program)
    assert math.isnan(st.energy_pj["total"]) and "acc buffer" in st.physical and "not buildable" in st.summary()


def _ops():
    rng = np.random.default_rng(0)
    return rng.integers(-128, 128, (64, 128), dtype=np.int8), rng.integers(-128, 128, (64, 128), dtype=np.int8)


@pytest.mark.parametrize("name,mts,width,rfc,refi", [("DDR3-1600 x16", 1600, 16, 208, 6240),
                                                    ("DDR4-3200 x64", 3200, 64, 560, 12480),
                                                    ("LPDDR4-3200 x32", 3200, 32, 448, 6246)])
def test_interface_delivers_its_pin_rate_less_refresh(name, mts, width, rfc, refi):
    i = dram.INTERFACES[name]
    assert i.delivered_gbs == pytest.approx(mts * 1e6 * width / 8 * (1 - rfc / refi) / 1e9)


def test_dram_energy_from_datasheet_currents():
    # Micron DDR3L-1600 x16 (DRAMsim3 config): (IDD4R - IDD3N) x VDD / (1.6 Gb/s x 16) = 9.91 pJ/bit,
    # background IDD3N x VDD = 63.45 mW plus refresh
    assert dram.DDR3_1600.read_pj_bit == pytest.approx((235 - 47) * 1.35 / 25.6)
    assert dram.DDR3_1600.background_mw == pytest.approx(47 * 1.35 + (235 - 47) * 1.35 * 208 / 6240)
    # per byte at 45 nm: device 8 x 9.91 + activation + McPAT's PHY 10 pJ/bit at 90 nm scaled to 5 pJ/bit
    rd, _ = dram.INTERFACES["DDR3-1600 x16"].pj_per_byte(45)
    assert rd == pytest.approx(8 * (9.914 + 0.0933 + 5.0), rel=1e-3)
    # Horowitz ISSCC'14: a 64-bit DRAM access 1.3-2.6 nJ = 20-40 pJ/bit; DDR3 here (device + PHY, no termination)
    assert 10 < rd / 8 < 40


def test_interface_is_the_cheapest_that_delivers():
    c = physical.costs(CFG)                               # 8 B x 100 MHz = 0.8 GB/s
    assert c["dram_interface"] == "LPDDR4-3200 x16" and c["dram_demand_gbs"] == pytest.approx(0.8)
    wide = physical.costs(CFG.replace(dram_bandwidth=64.0, clock_mhz=200.0))  # 12.8 GB/s: two x16 too few
    assert wide["dram_interface"] == "LPDDR4-3200 x64"
    assert wide["area_mm2"]["dram_phy"] == pytest.approx(4 * c["area_mm2"]["dram_phy"])
    assert wide["dram_background_mw"] == pytest.approx(4 * c["dram_background_mw"])


def test_bandwidth_no_interface_delivers_is_infeasible():
    cfg = CFG.replace(dram_bandwidth=128.0, clock_mhz=333.0)
    with pytest.raises(physical.PhysicalError, match=r"128 B/cycle x 333 MHz = 42.62 GB/s: no listed DRAM interface "
                                                     r"delivers it \(the best, DDR4-3200 x64, delivers 24.45 GB/s\)"):
        physical.costs(cfg)
    slow = CFG.replace(dram_interface="DDR3-1600 x16", dram_bandwidth=32.0, clock_mhz=200.0)
    with pytest.raises(physical.PhysicalError, match="DDR3-1600 x16 delivers 3.09 GB/s, below the demand 6.40 GB/s"):
        physical.costs(slow)
    with pytest.raises(ConfigError, match="dram_interface"):
        CFG.replace(dram_interface="GDDR9")
    assert physical.costs(CFG.replace(dram_interface="DDR4-3200 x16"))["dram_interface"] == "DDR4-3200 x16"


def test_alpha_power_law_and_supply():
    n = tech.node(45)
    assert n.speed(n.vdd) == pytest.approx(1.0)
    # Sakurai-Newton: speed ~ (V - Vth)^alpha / V
    assert n.speed(0.8) == pytest.approx(((0.8 - n.vth) ** 1.3 / 0.8) / ((1.0 - n.vth) ** 1.3 / 1.0))
    assert n.voltage_for(1.0) == n.vdd and n.voltage_for(1e6) == n.vmin
    v = n.voltage_for(1.25)
    assert n.vmin < v < n.vdd and n.speed(v) == pytest.approx(1 / 1.25, rel=1e-6)
    # a faster clock never lowers the supply; dynamic energy scales with V^2
    fmax = physical.costs(CFG)["fmax_mhz"]
    vs = [physical.costs(CFG.replace(clock_mhz=f))["vdd"] for f in (100.0, 0.6 * fmax, 0.9 * fmax, fmax)]
    assert vs == sorted(vs) and vs[-1] == pytest.approx(n.vdd) and vs[0] == n.vmin
    hi, lo = physical.costs(CFG.replace(clock_mhz=fmax)), physical.costs(CFG)
    assert hi["unit_pj"]["mac"] / lo["unit_pj"]["mac"] == pytest.approx((hi["vdd"] / lo["vdd"]) ** 2)
    assert hi["leakage_mw"] / lo["leakage_mw"] == pytest.approx(hi["vdd"] / lo["vdd"])


def test_clock_above_reach_is_infeasible():
    # FO4 = 500 ps/um x 45 nm (Ho, Mai, Horowitz 2001); DianNao's 65 nm stage 1.02 ns = 31.4 FO4
    assert tech.node(45).fo4_s == pytest.approx(22.5e-12)
    assert tech.mac_stage_s(65) == pytest.approx(1.02e-9)
    c = physical.costs(CFG)
    assert c["fmax_mhz"] < 1e3 / (tech.mac_stage_s(45) * 1e9)
    with pytest.raises(physical.PhysicalError, match=r"clock_mhz.*above the \d+ MHz this core reaches at 45 nm "
                                                     r"\(critical path: "):
        physical.costs(CFG.replace(clock_mhz=math.ceil(c["fmax_mhz"]) + 1.0))
    # a bigger accumulator bank is slower (CACTI cycle time): a 1 MiB x 512-bit bank lowers the reach
    assert physical.costs(CFG.replace(acc_buffer_bytes=1 << 20, insn_bits=192))["fmax_mhz"] < c["fmax_mhz"]


def test_area_and_energy_grow_the_obvious_ways():
    a = physical.area_mm2(CFG)
    assert a["total"] == pytest.approx(sum(v for k, v in a.items() if k != "total"))
    base = CFG.replace(insn_bits=192)  # room in the instruction for every doubled buffer's indices
    for f in ("inp_buffer_bytes", "wgt_buffer_bytes", "acc_buffer_bytes", "uop_buffer_bytes"):
        assert physical.area_mm2(base.replace(**{f: 2 * getattr(CFG, f)}))["total"] > physical.area_mm2(base)["total"], f
    wide = AcceleratorConfig.load("vta_1x32x32")
    aw = physical.area_mm2(wide)
    assert aw["gemm_core"] == pytest.approx(4 * a["gemm_core"])           # 1,024 vs 256 MACs
    # wiring: 4x the weight bits over a 2x longer side
    assert aw["wiring"] > 6 * a["wiring"]
    assert physical.unit_energies_pj(wide)["wiring_per_gemm_cycle"] > 6 * physical.unit_energies_pj(CFG)["wiring_per_gemm_cycle"]
    # Horowitz ISSCC'14 at 45 nm, 0.9 V: an int8 MAC with int32 accumulation = 0.2 + 0.1 pJ, here at the supply used
    v = physical.costs(CFG)["vdd"]
    assert physical.unit_energies_pj(CFG)["mac"] == pytest.approx(0.3 * (v / 0.9) ** 2)
    # larger SRAMs cost more per byte
    assert (physical.unit_energies_pj(CFG.replace(wgt_buffer_bytes=512 << 10))["wgt_read_byte"]
            > physical.unit_energies_pj(CFG)["wgt_read_byte"])


def test_alu_lanes_are_priced_per_lane():
    narrow = CFG.replace(alu_lanes=4)
    a16, a4 = physical.area_mm2(CFG)["alu"], physical.area_mm2(narrow)["alu"]
    assert a16 == pytest.approx(4 * a4)
    # one lane: an int32 adder, comparator and shifter (3 x 137 um^2) + a 16-bit multiplier (Horowitz power law)
    assert a4 == pytest.approx(4 * (3 * 137 + logic.power_law(logic.MUL_UM2, 16)) / 1e6)


def test_run_energy_is_the_sum_of_its_counts():
    g = tiled_gemm(CFG, *_ops(), 8, 2, 4)
    st = Simulator(CFG).time(g.program)
    u, c = physical.unit_energies_pj(CFG), physical.costs(CFG)
    assert st.energy_pj["mac"] == pytest.approx(64 * 64 * 128 * u["mac"])
    rd, wr = sum(st.dram_read_bytes.values()), sum(st.dram_write_bytes.values())
    assert st.energy_pj["dram"] == pytest.approx(rd * u["dram_read_byte"] + wr * u["dram_write_byte"])
    seconds = st.cycles / (CFG.clock_mhz * 1e6)
    assert st.energy_pj["static"] == pytest.approx(c["leakage_mw"] * 1e-3 * seconds * 1e12)
    assert st.energy_pj["dram_background"] == pytest.approx(c["dram_background_mw"] * 1e-3 * seconds * 1e12)
    assert st.energy_pj["total"] == pytest.approx(sum(v for k, v in st.energy_pj.items() if k != "total"))
    assert st.activity["sram_read_bytes"]["wgt"] == 64 * 64 * 128 // 16 * 256 // 16
    assert math.isclose(st.power_mw, st.energy_pj["total"] / st.latency_us / 1e3)


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_is_buildable_with_positive_figures(name):
    cfg = AcceleratorConfig.load(name)
    assert physical.why_infeasible(cfg) is None
    assert cfg.tech_nm == 45 and cfg.dram_interface == ""
    assert all(v > 0 for v in physical.area_mm2(cfg).values())
    assert all(v > 0 for v in physical.unit_energies_pj(cfg).values())


@pytest.mark.parametrize("nm", [32, 65])
def test_other_nodes(nm):
    cfg = CFG.replace(tech_nm=nm)
    c, base = physical.costs(cfg), physical.costs(CFG)
    # smaller node: smaller and cheaper per op (Dennard scaling of the logic, CACTI for the SRAMs)
    assert (c["area_mm2"]["gemm_core"] < base["area_mm2"]["gemm_core"]) == (nm < 45)
    assert (c["area_mm2"]["wgt_sram"] < base["area_mm2"]["wgt_sram"]) == (nm < 45)
    with pytest.raises(ConfigError, match="tech_nm"):
        CFG.replace(tech_nm=7)


def test_physical_fields_are_hardware():
    assert CFG.replace(tech_nm=32).key != CFG.key and CFG.replace(dram_interface="DDR4-3200 x16").key != CFG.key
    d = CFG.hardware_dict
    assert "tech_nm" in d and "dram_interface" in d
