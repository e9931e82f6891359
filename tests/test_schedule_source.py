"""``tc.build`` says which schedule a layer got: the caller's knobs, the tuned one on disk, or the default."""
import logging

import numpy as np
import pytest

import tvm_codesign as tc
from tvm_codesign.schedules import store
from tvm_codesign.schedules.knobs import check, default


def test_build_says_where_its_schedule_came_from(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TVM_CODESIGN_SCHEDULES", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO, logger="tvm_codesign")
    wl = tc.Workload.conv2d(1, 32, 10, 10, 32, 3, 1, 1, relu=True)
    cfg = tc.AcceleratorConfig.load("vta_default")
    x = np.random.default_rng(0).integers(-128, 128, (1, 32, 10, 10), dtype=np.int8)
    w = np.random.default_rng(1).integers(-128, 128, (32, 32, 3, 3), dtype=np.int8)

    m = tc.build(wl, cfg)
    assert (m.schedule_source, m.knobs) == ("default", default(wl, cfg))
    tuned = tc.Knobs(1, 1, 5, 10, 1, "nhwc", 1)
    check(wl, cfg, tuned)
    assert tuned != default(wl, cfg)
    store.save(tmp_path, cfg, wl, tuned)
    m = tc.build(wl, cfg)
    assert (m.schedule_source, m.knobs) == ("tuned", tuned)
    assert np.array_equal(m(x, w), wl.reference(x, w))
    m = tc.build(wl, cfg, knobs=default(wl, cfg).to_dict())
    assert (m.schedule_source, m.knobs) == ("user", default(wl, cfg))

    lines = [r.getMessage() for r in caplog.records if r.name == "tvm_codesign"]
    assert len(lines) == 3, lines
    for line, source in zip(lines, ("default", "tuned", "user")):
        assert f"on vta_default: {source} schedule" in line and "conv2d n=1 32->32 10x10" in line


def test_a_build_that_fails_logs_nothing(caplog):
    """Knobs that do not fit raise KnobError naming the knob, and no line claims the layer got them."""
    caplog.set_level(logging.INFO, logger="tvm_codesign")
    with pytest.raises(tc.KnobError, match="tile_ci"):
        tc.build(tc.Workload.dense(16, 64, 64), "vta_default", knobs=dict(tile_ci=1000))
    assert [r.getMessage() for r in caplog.records if r.name == "tvm_codesign"] == []
