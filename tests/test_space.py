"""Hardware design spaces (hardware/space.py): shipped spaces, indexing, sampling, constraints, clear errors."""
import json

import numpy as np
import pytest

import tvm_codesign as tc
from tvm_codesign.errors import ConfigError
from tvm_codesign import physical
from tvm_codesign.hardware.space import DesignSpace, sram_kib


def test_shipped_spaces():
    edge, small = DesignSpace.load("edge"), DesignSpace.load("small")
    assert edge.size >= 10_000 and edge.params["inp_buffer_bytes"] == (8192, 16384, 32768, 65536, 131072)
    assert small.size == 729  # enumerable: exhaustive baselines
    assert edge.base.name == "vta_default" and edge.constraints == {"area_mm2_max": 7.5}


@pytest.mark.parametrize("name", ["edge", "iso", "iso_alu", "small"])
def test_shipped_spaces_search_alu_lanes(name):
    """ALU lanes are a searched field: powers of two from 8 up to the widest vector; a point with more lanes
    than its batch x block_out vector is an invalid config (ConfigError naming alu_lanes), never a silent one."""
    sp = DesignSpace.load(name)
    lanes = sp.params["alu_lanes"]
    widest = max(sp.params.get("batch", (sp.base.batch,))) * max(sp.params["block_out"])
    assert lanes == tuple(1 << e for e in range(3, widest.bit_length()))
    digits = sp.digits(np.arange(sp.size))
    vals = {f: np.asarray(c)[digits[:, j]] for j, (f, c) in enumerate(sp.params.items())}
    vector = vals.get("batch", sp.base.batch) * vals["block_out"]
    too_wide, fits = np.flatnonzero(vals["alu_lanes"] > vector), np.flatnonzero(vals["alu_lanes"] < vector)
    assert too_wide.size and fits.size
    with pytest.raises(ConfigError, match="alu_lanes.*exceeds batch x block_out"):
        sp.config(int(too_wide[0]))
    cfg = sp.config(int(fits[0]))
    assert cfg.alu_passes == cfg.batch * cfg.block_out // cfg.alu_lanes > 1


def test_index_round_trip_and_config():
    sp = DesignSpace.load("small")
    d = sp.digits(np.arange(sp.size))
    assert len({tuple(r) for r in d}) == sp.size and (d < sp.radices).all()
    i = int(np.ravel_multi_index(tuple(d[100]), tuple(sp.radices)))
    assert i == 100
    cfg = sp.config(100)
    for (field, choices), k in zip(sp.params.items(), d[100]):
        assert getattr(cfg, field) == choices[k]
    assert cfg.queue_depth == sp.base.queue_depth  # everything else from the base


def test_sampling_is_seeded_distinct_and_feasible():
    sp = DesignSpace.load("edge")
    a, b = sp.sample(300, seed=3), sp.sample(300, seed=3)
    assert [i for i, _ in a] == [i for i, _ in b] and len({i for i, _ in a}) == 300
    assert all(physical.area_mm2(c)["total"] <= 7.5 and physical.why_infeasible(c) is None for _, c in a)
    assert [i for i, _ in sp.sample(300, seed=4)] != [i for i, _ in a]


@pytest.mark.parametrize("constraint,measure", [
    ({"area_mm2_max": 3.7}, lambda c: physical.area_mm2(c)["total"]),
    ({"sram_kib_max": 320}, lambda c: sram_kib(c)),
])
def test_constraint_excludes_points(constraint, measure):
    params = {k: list(v) for k, v in DesignSpace.load("small").params.items()}
    free = DesignSpace.from_dict({"params": params})
    tight = DesignSpace.from_dict({"params": params, "constraints": constraint})
    kept = tight.sample(free.size)
    assert 0 < len(kept) < len(free.sample(free.size))
    assert all(measure(c) <= next(iter(constraint.values())) for _, c in kept)


def test_points_physical_cannot_build_are_infeasible():
    """A clock above the core's reach, or a bandwidth x clock no DRAM part delivers, is not a feasible point."""
    sp = DesignSpace.from_dict({"params": {"clock_mhz": [100.0, 5000.0], "dram_bandwidth": [8.0, 256.0]}})
    kept = {(c.clock_mhz, c.dram_bandwidth) for _, c in sp.sample(sp.size)}
    assert kept == {(100.0, 8.0)}
    assert "reaches" in physical.why_infeasible(sp.config(2)) and "GB/s" in physical.why_infeasible(sp.config(1))


def test_sram_counts_every_buffer():
    assert sram_kib(tc.AcceleratorConfig.load("vta_default")) == 32 + 32 + 256 + 128  # uop, inp, wgt, acc


@pytest.mark.parametrize("spec,field", [
    ({"params": {"bogus": [1]}}, "bogus"),
    ({"params": {"block_in": []}}, "block_in"),
    ({"params": {"block_in": [16.5]}}, "block_in"),
    ({"params": {"inp_buffer_bytes": {"pow2": [17, 13]}}}, "inp_buffer_bytes"),
    ({"params": {"block_in": [16]}, "constraints": {"power_max": 1}}, "power_max"),
    ({"params": {"block_in": [16]}, "constraints": {"sram_kib_max": -4}}, "sram_kib_max"),
    ({"params": {"block_in": [16]}, "constraints": {"area_mm2_max": "3"}}, "area_mm2_max"),
    ({"params": {"block_in": [16]}, "extra": 1}, "extra"),
    ({}, "params"),
])
def test_bad_spaces_name_the_field(spec, field):
    with pytest.raises(ConfigError) as e:
        DesignSpace.from_dict(spec)
    assert e.value.field == field


def test_load_errors(tmp_path):
    with pytest.raises(ConfigError, match="no design space named 'nope'"):
        DesignSpace.load("nope")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        DesignSpace.load(bad)
    good = tmp_path / "g.json"
    good.write_text(json.dumps({"name": "g", "params": {"dram_bandwidth": [4, 8]}}))
    assert DesignSpace.load(good).config(1).dram_bandwidth == 8.0
    with pytest.raises(ConfigError, match="point indices"):
        DesignSpace.load(good).config(2)
