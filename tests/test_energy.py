import math

import numpy as np
import pytest

from tvm_codesign import AcceleratorConfig, Simulator, preset_names
from tvm_codesign.hardware import energy
from tvm_codesign.simulator.reference_gemm import tiled_gemm

CFG = AcceleratorConfig.load("vta_default")


def test_published_points_are_reproduced():
    # Horowitz ISSCC'14 45 nm: 8-bit mult 0.2 pJ + 32-bit add 0.1 pJ per int8 MAC with int32 accumulation
    assert energy.mac_pj(CFG) == pytest.approx(0.3)
    assert energy.mac_pj(CFG.replace(inp_bits=16, wgt_bits=16)) > energy.mac_pj(CFG)
    assert energy._power_law(energy.MUL_PJ, 32) == pytest.approx(3.1)
    # SRAM: 10 pJ / 64-bit at 8 KB, 20 pJ at 32 KB; ~100 pJ at 1 MB
    assert energy.sram_pj_per_byte(8 << 10) * 8 == pytest.approx(10)
    assert energy.sram_pj_per_byte(32 << 10) * 8 == pytest.approx(20)
    assert 90 < energy.sram_pj_per_byte(1 << 20) * 8 < 120
    assert energy.DRAM_PJ_PER_BYTE * 8 == pytest.approx(1300)


def test_area_breakdown_and_scaling():
    a = energy.area_mm2(CFG)
    assert a["total"] == pytest.approx(sum(v for k, v in a.items() if k != "total"))
    # 256 MACs of (282 + 137) um^2
    assert a["gemm_core"] == pytest.approx(256 * 419e-6)
    # 448 KiB of SRAM at 0.346 um^2 / 70 % per bit
    assert sum(a[k] for k in ("uop_sram", "inp_sram", "wgt_sram", "acc_sram")) == pytest.approx(
        448 * 1024 * 8 * 0.346 / 0.7 / 1e6)
    assert energy.area_mm2(CFG.replace(wgt_buffer_bytes=512 << 10))["total"] > a["total"]
    assert energy.area_mm2(AcceleratorConfig.load("vta_1x32x32"))["gemm_core"] == pytest.approx(4 * a["gemm_core"])


def test_run_energy_is_the_sum_of_its_counts():
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, (64, 128), dtype=np.int8)
    w = rng.integers(-128, 128, (64, 128), dtype=np.int8)
    g = tiled_gemm(CFG, a, w, 8, 2, 4)
    st = Simulator(CFG).time(g.program)
    u = energy.unit_energies_pj(CFG)
    assert st.energy_pj["mac"] == pytest.approx(64 * 64 * 128 * u["mac"])
    dram = sum(st.dram_read_bytes.values()) + sum(st.dram_write_bytes.values())
    assert st.energy_pj["dram"] == pytest.approx(dram * u["dram_byte"])
    assert st.energy_pj["total"] == pytest.approx(sum(v for k, v in st.energy_pj.items() if k != "total"))
    # every input byte crosses DRAM at least once, every output once (int32 here)
    assert st.dram_read_bytes["INP"] >= a.size and st.dram_read_bytes["WGT"] >= w.size
    assert st.dram_write_bytes["ACC"] == 64 * 64 * 4
    assert st.activity["sram_read_bytes"]["wgt"] == 64 * 64 * 128 // 16 * 256 // 16
    assert math.isclose(st.power_mw, st.energy_pj["total"] / st.latency_us / 1e3)


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_reports_positive_figures(name):
    cfg = AcceleratorConfig.load(name)
    a = energy.area_mm2(cfg)
    assert all(v > 0 for v in a.values())
    assert all(v > 0 for v in energy.unit_energies_pj(cfg).values())
