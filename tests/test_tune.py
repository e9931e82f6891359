"""The co-design tuner (tvm_codesign.tune): search, Pareto front, logs and resume, outputs used by compilation."""
import json
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

import tvm_codesign as tc
from tvm_codesign.hardware.space import DesignSpace
from tvm_codesign.tuner import network, pareto
from tvm_codesign.tuner.log import LogError
from tvm_codesign.tuner.pool import Pool

from tune_cases import LAYERS, TINY  # noqa: E402


def _tune(tmp_path, **kw):
    args = dict(space=TINY, budget=12, executor="local", out_dir=tmp_path, progress=False, verify=0, seed=0)
    args.update(kw)
    return tc.tune(LAYERS, **args)


def _brute_force(objectives):
    sp = DesignSpace.from_dict(TINY)
    layers = network.group(LAYERS)
    pool = Pool(sp)
    recs = [network.evaluate(sp.config(int(p)), layers) for p in pool.points]
    return pool, recs


def test_exhaustive_front_is_the_true_front(tmp_path):
    res = _tune(tmp_path, strategy="exhaustive", budget=100, objectives=["latency", "energy"])
    pool, recs = _brute_force(["latency", "energy"])
    assert res.evaluations == len(pool) and len(res.history) == len(pool)
    vals = np.array([[r["latency_s"], r["energy_j"]] for r in recs])
    want = {int(pool.points[i]) for i in pareto.front(vals)}
    assert {r["point"] for r in res.front} == want
    # the front is non-dominated and every evaluated point is dominated by (or on) it
    f = np.array([[r["latency_s"], r["energy_j"]] for r in res.front])
    for v in vals:
        assert np.any(np.all(f <= v + 1e-15, axis=1))
    assert res.best["latency"]["latency_s"] == vals[:, 0].min()


@pytest.mark.parametrize("strategy", ["model", "xgboost", "nsga2", "random", "hw-first"])
def test_strategies_respect_budget_and_constraints(tmp_path, strategy):
    res = _tune(tmp_path, strategy=strategy, budget=10, area_max=4.7, objectives="latency,energy,area".split(","))
    assert 1 <= res.evaluations <= 10 + (len(res.front) if strategy == "hw-first" else 0)
    assert all(r["area_mm2"] <= 4.7 for r in res.history)
    assert len({r["point"] for r in res.history if r["schedules"] == "tuned" or strategy == "hw-first"}) == \
        len([r for r in res.history if r["schedules"] == res.history[0]["schedules"]])  # no config evaluated twice
    assert res.front and all(r["feasible"] for r in res.front)


def test_sram_and_power_constraints_are_hard(tmp_path):
    from tvm_codesign.hardware.space import sram_kib
    sp = DesignSpace.from_dict(TINY)
    res = _tune(tmp_path / "s", budget=8, sram_max=440)  # vta_default SRAMs with 8 or 16 KiB of input
    assert res.history and all(sram_kib(sp.config(r["point"])) <= 440 for r in res.history)
    assert {sp.config(r["point"]).inp_buffer_bytes for r in res.history} == {8192, 16384}
    free = _tune(tmp_path / "f", budget=8, objectives=["latency"])
    cap = float(np.median([r["power_w"] for r in free.history]))
    spaced = {**TINY, "constraints": {**TINY["constraints"], "power_w_max": cap}}  # from the space file
    res = _tune(tmp_path / "p", space=spaced, budget=8, objectives=["latency"])
    assert all(r["feasible"] == (r["power_w"] <= cap) for r in res.history)
    assert any(not r["feasible"] and "power" in r["reason"] for r in res.history)
    assert all(r["power_w"] <= cap for r in res.front)
    with pytest.raises(ValueError, match="sram_max"):
        _tune(tmp_path, sram_max=0)


def test_same_seed_same_result_and_workers_do_not_matter(tmp_path):
    a = _tune(tmp_path / "a", budget=16, batch=4)
    b = _tune(tmp_path / "b", budget=16, batch=4, executor="process", workers=2)
    c = _tune(tmp_path / "c", budget=16, batch=4, seed=1)
    strip = lambda res: [(r["point"], r["latency_s"], r["energy_j"]) for r in res.history]
    assert strip(a) == strip(b)
    assert strip(a) != strip(c)


def _prior_columns(pool, layers):
    """The run's objectives as the roofline prior scores them, computed here from ``Pool.prior`` directly."""
    lat, en = pool.prior(layers)
    return {"latency": lat, "energy": en, "area": pool.area, "edp": lat * en, "power": en / lat}


@pytest.mark.parametrize("objectives", [["latency", "energy", "area"], ["edp", "power"], ["latency"]])
def test_model_guided_evaluates_the_priors_best_first(tmp_path, objectives):
    """The prior's best config per objective are the first evaluations, its top ``top`` per objective come before
    anything else, and its whole non-dominated front follows within the share the learned model leaves it; no
    config is evaluated twice. (The main job on edge missed the prior's two best latency configs.)"""
    from tvm_codesign.tuner.search import ModelGuided
    sp = DesignSpace.load("small")
    pool = Pool(sp)
    prior = _prior_columns(pool, network.group(LAYERS))
    cols = np.column_stack([prior[o] for o in objectives])
    fr = {int(pool.points[i]) for i in pareto.front(cols)}
    m, top = len(objectives), ModelGuided.top
    budget = top * m + 2 * len(fr) + 2
    res = _tune(tmp_path, space="small", budget=budget, batch=4, objectives=objectives)
    points = [r["point"] for r in res.history]
    assert len(points) == budget and len(set(points)) == budget  # no config evaluated twice
    value = {o: {int(p): v for p, v in zip(pool.points, prior[o])} for o in objectives}
    for o in objectives:
        ranked = np.sort(prior[o])
        # the prior's best by o (any of its ties) is among the first m evaluations
        assert min(value[o][p] for p in points[:m]) == ranked[0], o
        # and its top `top` by o (values, so ties count as either) are all evaluated before anything else
        got = sorted(value[o][p] for p in points[:top * m])
        assert sum(v <= ranked[top - 1] for v in got) >= top, o
    assert fr <= set(points)  # the prior's front, all of it, within the budget given
    # the prior only orders candidates: the front kept is the measured front of what was evaluated
    key = {"latency": "latency_s", "energy": "energy_j", "area": "area_mm2", "edp": "edp", "power": "power_w"}
    ok = [r for r in res.history if r["feasible"]]
    measured = np.array([[r[key[o]] for o in objectives] for r in ok])
    assert {r["point"] for r in res.front} <= set(points)
    assert ({tuple(measured[i]) for i in pareto.front(measured)}
            == {tuple(r[key[o]] for o in objectives) for r in res.front})


def test_model_guided_beats_random_on_latency(tmp_path):
    space = "small"
    got = {s: _tune(tmp_path / s, space=space, strategy=s, budget=16, objectives=["latency"]) for s in ("model", "random")}
    assert got["model"].best["latency"]["latency_s"] <= got["random"].best["latency"]["latency_s"]


def test_log_refuses_overwrite_and_other_settings(tmp_path):
    _tune(tmp_path, run="r1", budget=4)
    with pytest.raises(LogError, match="already exists"):
        _tune(tmp_path, run="r1", budget=4)
    with pytest.raises(LogError, match="other settings.*seed"):
        _tune(tmp_path, run="r1", budget=4, seed=5, resume=True)


def test_resume_after_a_cut_record_gives_the_uninterrupted_result(tmp_path):
    full = _tune(tmp_path / "full", run="r", budget=16, batch=4)
    part = _tune(tmp_path / "cut", run="r", budget=9, batch=4)
    log = tmp_path / "cut" / "autotune_logs" / "r.jsonl"
    text = log.read_bytes()
    log.write_bytes(text[:-40])  # the last record cut mid-write, as by kill -9
    lines = text.decode().splitlines()
    assert len(lines) == 1 + part.evaluations
    with pytest.warns(UserWarning, match="corrupt or truncated"):
        resumed = _tune(tmp_path / "cut", run="r", budget=16, batch=4, resume=True)
    strip = lambda res: [(r["point"], r["latency_s"]) for r in res.history]
    assert strip(resumed) == strip(full)
    # a corrupt line in the middle is skipped with a warning, the rest is kept
    with open(log, "a") as f:
        f.write("{not json\n")
    with pytest.warns(UserWarning, match=r"r\.jsonl:\d+: skipping"):
        again = _tune(tmp_path / "cut", run="r", budget=16, batch=4, resume=True)
    assert strip(again) == strip(full)


def test_kill_9_mid_run_loses_at_most_the_record_in_flight(tmp_path):
    wl = tmp_path / "layers.json"
    wl.write_text(json.dumps({"layers": [{"workload": w.to_dict(), "count": n} for w, n in LAYERS]}))
    cmd = [sys.executable, "-m", "tvm_codesign.tune", "--model", str(wl), "--space", "small", "--budget", "120",
           "--executor", "local", "--batch", "1", "--out", str(tmp_path), "--run", "k", "--verify", "0", "--quiet",
           "--no-write"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = tmp_path / "autotune_logs" / "k.jsonl"
    t0 = time.time()
    while time.time() - t0 < 120 and not (log.exists() and log.read_text().count("\n") >= 12):
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    n_before = sum(1 for line in log.read_text().splitlines() if line.strip())
    assert 12 <= n_before < 121, "the run should have been killed mid-way"
    subprocess.run(cmd + ["--resume"], check=True, capture_output=True, timeout=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from tvm_codesign.tuner.log import read
        _, recs = read(log)
    evals = [r for r in recs if r["type"] == "eval"]
    assert len({r["point"] for r in evals}) == 120
    # every record written before the kill survives unchanged in the resumed log
    assert len(evals) >= n_before - 2


def test_outputs_are_applied_by_build(tmp_path, monkeypatch):
    res = _tune(tmp_path, budget=6, verify=1, measure=3, objectives=["latency"])
    cfg_path = res.files["configs"]["latency"]
    assert cfg_path.parent == tmp_path / "tuned"
    assert res.files["png"].stat().st_size > 1000 and res.files["csv"].read_text().startswith("point,")
    assert res.verified and all(v["source"] == "simulator" and abs(v["error"]) < 0.15 for v in res.verified)
    monkeypatch.chdir(tmp_path)  # ./tuned is searched by name
    cfg = tc.AcceleratorConfig.load(cfg_path.stem)
    row = res.best["latency"]["layers"][0]
    v = next(v for v in res.verified if v["key"] == row["key"])
    # the model's pick was measured with its next two, and the fastest in simulation is what gets stored
    assert v["measured"][0]["knobs"] == row["knobs"] and len(v["measured"]) == 3
    assert v["best_sim_cycles"] == min(t["sim_cycles"] for t in v["measured"]) <= v["sim_cycles"]
    wl = LAYERS[0][0]
    m = tc.build(wl, cfg)
    assert m.knobs.to_dict() == v["best_knobs"] == res.schedules("latency")[row["name"]]
    x = np.random.default_rng(0).integers(-128, 128, (1, 64, 28, 28), dtype=np.int8)
    w = np.random.default_rng(1).integers(-128, 128, (64, 64, 3, 3), dtype=np.int8)
    b = np.random.default_rng(2).integers(-999, 999, 64).astype(np.int32)
    assert np.array_equal(m(x, w, b), wl.reference(x, w, b))
    assert m.time().cycles == v["best_sim_cycles"]


def test_store_ignores_schedules_of_other_hardware(tmp_path, monkeypatch):
    from tvm_codesign.schedules import store
    wl = LAYERS[0][0]
    cfg = tc.AcceleratorConfig.load("vta_default")
    k = tc.Knobs(1, 2, 7, 14, 4, "nchw", 2)
    store.save(tmp_path / "schedules", cfg.replace(block_in=32), wl, k)  # same name, other hardware
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning, match="other hardware parameters"):
        assert store.lookup(wl, cfg) is None
    store.save(tmp_path / "schedules", cfg, wl, tc.Knobs(1, 4, 28, 28, 4, "nchw", 4))  # does not fit the SRAMs
    with pytest.warns(UserWarning, match="ignoring schedule file"):
        assert store.lookup(wl, cfg) is None
    store.save(tmp_path / "schedules", cfg, wl, k)
    assert store.lookup(wl, cfg) == k


def test_bad_input_is_named(tmp_path):
    with pytest.raises(ValueError, match="objectives"):
        _tune(tmp_path, objectives=["speed"])
    with pytest.raises(ValueError, match="strategy"):
        _tune(tmp_path, strategy="bayes")
    with pytest.raises(ValueError, match="budget"):
        _tune(tmp_path, budget=0)
    with pytest.raises(ValueError, match="exhaustive.*budget"):
        _tune(tmp_path, strategy="exhaustive", budget=3)
    with pytest.raises(tc.ConfigError, match="no feasible point"):
        _tune(tmp_path, area_max=0.01)
    with pytest.raises(ValueError, match="unknown model"):
        tc.tune("resnet99", TINY, out_dir=tmp_path, progress=False)
    with pytest.raises(tc.ConfigError, match="no design space named"):
        _tune(tmp_path, space="nowhere")
    with pytest.raises(ValueError, match="run name"):
        _tune(tmp_path, run="a/b")
    with pytest.raises(ValueError, match="measure"):
        _tune(tmp_path, measure=0)
    with pytest.raises(ValueError, match="verify"):
        _tune(tmp_path, verify=-1)
    r = subprocess.run([sys.executable, "-m", "tvm_codesign.tune", "--objectives", "speed", "--out", str(tmp_path),
                        "--model", "nothing.onnx"], capture_output=True, text=True)
    assert r.returncode == 2 and "error:" in r.stderr


def test_plot_to_file_leaves_matplotlib_alone(tmp_path):
    """Writing the front's PNG must not switch the user's backend (it broke inline plots in notebooks)."""
    import matplotlib
    import matplotlib.pyplot as plt
    from tvm_codesign.tuner import pareto
    old = matplotlib.get_backend()
    plt.switch_backend("svg")  # a backend that is not Agg, as a notebook's inline one
    before, figs = matplotlib.get_backend(), plt.get_fignums()
    rows = [{"latency_ms": 1.0 + i, "energy_mj": 2.0 - 0.5 * i, "area_mm2": 1.0} for i in range(3)]
    pareto.plot(rows, tmp_path / "f.png", {"latency_ms": 3.0, "energy_mj": 3.0, "label": "base"}, "t")
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    after = matplotlib.get_backend()
    plt.switch_backend(old)
    assert after == before and plt.get_fignums() == figs


def test_cli_help():
    r = subprocess.run([sys.executable, "-m", "tvm_codesign.tune", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--budget" in r.stdout and "--executor" in r.stdout and "--resume" in r.stdout


def test_ray_executor_gives_the_process_pool_result(tmp_path):
    pytest.importorskip("ray")
    import ray
    a = _tune(tmp_path / "p", budget=12, batch=4, executor="process", workers=2, strategy="nsga2")
    try:
        b = _tune(tmp_path / "r", budget=12, batch=4, executor="ray", workers=2, strategy="nsga2")
        assert ray.is_initialized()
    finally:
        ray.shutdown()
    strip = lambda res: [(r["point"], r["latency_s"], r["energy_j"]) for r in res.history]
    assert strip(a) == strip(b) and len(strip(a)) == 12


def test_builtin_model_tuned_then_compiled_with_its_schedules(tmp_path, monkeypatch):
    """Whole-model path: the tuned config's schedules are picked up by compile(), results stay bit-exact."""
    import torch
    from tvm_codesign import models
    res = tc.tune("mlp", TINY, budget=4, executor="local", out_dir=tmp_path, progress=False, verify=0,
                  objectives=["latency"])
    assert [ly.workload.kind for ly in res.layers] == ["dense"] * 3
    monkeypatch.chdir(tmp_path)
    cfg = tc.AcceleratorConfig.load(f"{res.run}_latency")
    net = models.mlp_model()
    x = np.random.default_rng(0).standard_normal((1, 784)).astype(np.float32)
    cm = tc.compile(net, cfg, calibration=[(x,)])
    stored = {json.dumps(ly["knobs"], sort_keys=True) for ly in res.best["latency"]["layers"]}
    used = {json.dumps(k["knobs"], sort_keys=True) for k in cm.kernels}
    assert used == stored and len(cm.kernels) == 3
    ref = tc.compile(net, "vta_default", calibration=[(x,)])
    np.testing.assert_array_equal(cm(x), ref(x))  # same int8 arithmetic, other hardware and schedules
    with torch.no_grad():
        fp = net(torch.from_numpy(x)).numpy()
    assert np.argmax(cm(x)) == np.argmax(fp)
