"""The tuned workflow as a user meets it: tuned configs carry their schedules, presets stay presets, scripts
without a main guard, resume, Ctrl-C and kill -9, the result table, errors and progress."""
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import tvm_codesign as tc
from tvm_codesign.hardware.space import DesignSpace
from tvm_codesign.schedules import store
from tvm_codesign.schedules.layout import fold
from tvm_codesign.tuner.log import read

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
from tune_cases import LAYERS, TINY  # noqa: E402


def _tune(out, **kw):
    args = dict(space=TINY, budget=6, executor="local", out_dir=out, progress=False, verify=0, seed=0,
                objectives=["latency"])
    args.update(kw)
    return tc.tune(LAYERS, **args)


def _files(tmp_path):
    """The layers and the space as JSON files, for the CLI and scripts."""
    layers = tmp_path / "layers.json"
    layers.write_text(json.dumps({"layers": [{"workload": w.to_dict(), "count": n} for w, n in LAYERS]}))
    space = tmp_path / "tiny.json"
    space.write_text(json.dumps(TINY))
    return layers, space


# ---- 1. a tuned config carries its schedules, from any working directory ------------------------------------
def test_tuned_config_carries_its_schedules_from_any_directory(tmp_path, monkeypatch):
    out = tmp_path / "out"
    res = _tune(out)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    rec = res.best["latency"]
    path = res.files["configs"]["latency"]
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)  # the JSON finds its schedules relative to itself
    shutil.rmtree(out / "tuned" / "schedules")
    cfgs = {"returned": res.config("latency"), "moved": tc.AcceleratorConfig.load(moved / "tuned" / path.name)}
    restored = tc.AcceleratorConfig.load(path)
    with pytest.warns(UserWarning, match="schedules directory .* does not exist"):  # the original, now deleted
        assert store.lookup(LAYERS[0][0], restored) is None
    shutil.copytree(moved / "tuned" / "schedules", out / "tuned" / "schedules")
    cfgs["loaded"] = tc.AcceleratorConfig.load(path)
    by_key = {ly.key: ly.workload for ly in res.layers}
    for how, cfg in cfgs.items():
        assert cfg.name == f"{res.run}_latency" and cfg.key == res.space.config(rec["point"]).key, how
        for row in rec["layers"]:
            wl = by_key[row["key"]]
            assert store.lookup(fold(wl, cfg) or wl, cfg) == tc.Knobs.from_dict(row["knobs"]), (how, row["name"])
    # and build uses them: the tuned knobs, not the default schedule
    row = rec["layers"][0]
    m = tc.build(by_key[row["key"]], res.config("latency"))
    assert m.knobs.to_dict() == row["knobs"]


def test_tuned_model_compiles_with_its_schedules_from_any_directory(tmp_path, monkeypatch):
    from tvm_codesign import models
    from tvm_codesign.frontend.relax import offloaded
    res = tc.tune("mlp", TINY, budget=4, executor="local", out_dir=tmp_path / "out", progress=False, verify=0,
                  objectives=["latency"])
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    net = models.mlp_model()
    x = np.random.default_rng(0).standard_normal((1, 784)).astype(np.float32)
    stored = sorted(json.dumps(ly["knobs"], sort_keys=True) for ly in res.best["latency"]["layers"])
    for get in (lambda: res.config("latency"), lambda: tc.AcceleratorConfig.load(res.files["configs"]["latency"])):
        cm = tc.compile(net, get(), calibration=[(x,)])
        used = sorted(json.dumps(k["knobs"], sort_keys=True) for k in offloaded(cm.mod))
        assert used == stored


# ---- 2. tuned outputs stay apart from the presets ------------------------------------------------------------
def test_a_tune_leaves_the_presets_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # ./targets is a preset directory: a run here must not write into it
    before = tc.preset_names()
    res = _tune(".")
    assert tc.preset_names() == before
    assert not (tmp_path / "targets").exists()
    assert res.files["configs"]["latency"].resolve().parent == tmp_path / "tuned"
    assert tc.AcceleratorConfig.load(f"{res.run}_latency").key == res.config("latency").key  # by name: ./tuned
    with pytest.raises(tc.ConfigError, match="tuned configs"):
        tc.AcceleratorConfig.load("no_such_run_latency")


def test_gitignore_keeps_tuned_outputs_out_of_git():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    paths = ["tuned/r_latency.json", "tuned/schedules/r_latency/x.json", "autotune_logs/r.jsonl",
             "autotune_logs/r_pareto.png"]
    r = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=ROOT, capture_output=True, text=True)
    assert sorted(r.stdout.split()) == sorted(paths)


# ---- 3. a script without a main guard; a run that failed early blocks nothing ---------------------------------
def test_script_without_main_guard_runs_twice(tmp_path):
    layers, space = _files(tmp_path)
    script = tmp_path / "tune_it.py"
    script.write_text(textwrap.dedent(f"""\
        import tvm_codesign as tc
        res = tc.tune({str(layers)!r}, {str(space)!r}, budget=6, batch=3, executor="process", workers=2,
                      out_dir={str(tmp_path / 'out')!r}, verify=0, progress=False, resume=True)
        print("evaluated", res.evaluations, "best", res.best["latency"]["point"])
        """))
    runs = [subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                           timeout=300) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr[-2000:]
        assert "BrokenProcessPool" not in r.stderr and "Traceback" not in r.stderr
    assert runs[0].stdout == runs[1].stdout and "evaluated 6" in runs[0].stdout


def test_a_run_that_failed_before_evaluating_blocks_nothing(tmp_path, monkeypatch):
    from tvm_codesign.tuner import run as run_mod

    def broken(*a, **k):
        raise RuntimeError("broken before the first evaluation")
    monkeypatch.setattr(run_mod.Executor, "map", broken)
    with pytest.raises(RuntimeError, match="broken before"):
        _tune(tmp_path, run="r", executor="process", workers=2)
    log = tmp_path / "autotune_logs" / "r.jsonl"
    assert not log.exists()
    monkeypatch.undo()
    # a header-only log, as older versions left after such a failure, is started afresh
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(json.dumps({"type": "header", "run": "r", "seed": 99}) + "\n")
    res = _tune(tmp_path, run="r")
    assert res.evaluations == 6
    header, recs = read(log)
    assert header["seed"] == 0 and len([r for r in recs if r["type"] == "eval"]) == 6


def test_an_existing_log_is_refused_before_the_model_is_imported(tmp_path, monkeypatch):
    """Running a tune script a second time without resume=True says so at once (it took ResNet-18's import,
    9 s, to say it)."""
    from tvm_codesign.tuner import run as run_mod
    _tune(tmp_path, run="r")

    def no_import(*a, **k):
        raise AssertionError("the model was imported before the log was checked")
    monkeypatch.setattr(run_mod.workloads, "load", no_import)
    with pytest.raises(tc.tuner.log.LogError, match="already exists: pass resume=True"):
        _tune(tmp_path, run="r")


# ---- 4. resume with a smaller budget keeps what was found ---------------------------------------------------
def test_resume_with_a_smaller_budget_keeps_every_evaluation(tmp_path):
    def written(_):
        return {str(p): p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file() and p.suffix != ".jsonl"}
    full = _tune(tmp_path, run="r", budget=12, batch=4, objectives=["latency", "energy"])
    files = written(full)
    with pytest.warns(UserWarning, match="holds 12 evaluations, more than budget=5"):
        small = _tune(tmp_path, run="r", budget=5, batch=4, objectives=["latency", "energy"], resume=True)
    assert small.evaluations == 12
    assert [r["point"] for r in small.front] == [r["point"] for r in full.front]
    assert {k: r["point"] for k, r in small.best.items()} == {k: r["point"] for k, r in full.best.items()}
    assert written(small) == files  # configs, schedules, Pareto JSON/CSV/PNG: as the full run left them
    more = _tune(tmp_path, run="r", budget=16, batch=4, objectives=["latency", "energy"], resume=True)
    assert more.evaluations == 16  # a larger budget continues the run


# ---- 5. Ctrl-C and kill -9 ----------------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d))
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"  # zombies are gone
    except OSError:
        return False


def _start_cli(tmp_path, budget=400):
    layers, space = _files(tmp_path)
    args = ["--model", str(layers), "--space", str(space), "--budget", str(budget), "--batch", "2", "--executor",
            "process", "--workers", "2", "--out", str(tmp_path / "out"), "--run", "c", "--verify", "0", "--quiet"]
    p = subprocess.Popen([sys.executable, "-m", "tvm_codesign.tune", *args], cwd=tmp_path, env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    log = tmp_path / "out" / "autotune_logs" / "c.jsonl"
    t0 = time.time()
    while time.time() - t0 < 120 and not (log.exists() and log.read_text().count("\n") >= 9):
        time.sleep(0.02)
    workers = _children(p.pid)
    assert p.poll() is None and len(workers) >= 2, "the run should be under way with its workers"
    return p, log, workers


def test_ctrl_c_prints_one_line_with_the_resume_command(tmp_path):
    p, log, workers = _start_cli(tmp_path, budget=TINY_SIZE)
    os.killpg(p.pid, signal.SIGINT)  # as a terminal does: the whole foreground process group
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "interrupted:" in lines[0] and "saved in" in lines[0]
    saved = int(lines[0].split("interrupted: ")[1].split()[0])
    _, recs = read(log)
    assert saved == len({r["point"] for r in recs if r["type"] == "eval"}) >= 8
    assert not any(_alive(w) for w in workers)
    cmd = shlex.split(lines[0].split("resume with: ")[1])
    assert cmd[-1] == "--resume"
    r = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    _, recs = read(log)
    assert len({r["point"] for r in recs if r["type"] == "eval"}) == TINY_SIZE


TINY_SIZE = 44  # feasible configs of TINY (area <= 2.5): the CLI run above evaluates them all when resumed


def test_workers_exit_when_the_parent_is_killed(tmp_path):
    p, _, workers = _start_cli(tmp_path)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    t0 = time.time()
    while time.time() - t0 < 5 and any(_alive(w) for w in workers):
        time.sleep(0.05)
    assert not any(_alive(w) for w in workers), f"workers still running {time.time() - t0:.1f} s after kill -9"


# ---- 6. the result table and the CLI summary -----------------------------------------------------------------
def _rec(point, lat, en, area, **config):
    return {"point": point, "config": config, "latency_s": lat, "energy_j": en, "area_mm2": area,
            "edp": lat * en, "power_w": en / lat, "layers": []}


def test_table_names_every_label_and_picks_units():
    from tvm_codesign.tuner.run import TuneResult
    sp = DesignSpace.from_dict(TINY)
    a = _rec(3, 40e-6, 2e-6, 1.2, block_in=16, block_out=16, inp_buffer_bytes=8192, dram_bandwidth=8.0)
    b = _rec(7, 90e-6, 3e-6, 0.6, block_in=8, block_out=8, inp_buffer_bytes=8192, dram_bandwidth=4.0)
    base = {**_rec(-1, 120e-6, 5e-6, 1.0), "type": "baseline"}
    res = TuneResult("r", sp, ["latency", "energy", "area"], [], [a, b], [a, b],
                     {"latency": a, "energy": a, "area": b, "edp": a}, base)
    lines = res.table().splitlines()
    head = lines[0].split()
    assert head[:11] == ["point", "latency", "us", "energy", "uJ", "area", "mm2", "EDP", "pJ*s", "power", "mW"]
    row = {ln.split()[0]: ln for ln in lines[1:]}
    assert row["3"].endswith("<- best latency, energy, edp") and row["7"].endswith("<- best area")
    cells = row["3"].split()
    assert cells[1:6] == ["40.0", "2.000", "1.200", "80.0", "50.00"]  # us, uJ, mm2, pJ*s, mW: 4 digits at the top
    assert row["base"].split()[1] == "120.0"
    assert res.gains() == ("vs vta_default (tuned schedules): best latency 3.00x faster, best energy 2.50x lower, "
                           "best area 1.67x smaller, best EDP 7.50x lower")
    # a space whose best is worse than the base says so (it read "best latency 0.33x faster")
    worse = {**a, "latency_s": 360e-6, "edp": 360e-6 * 2e-6}
    res3 = TuneResult("r", sp, ["latency"], [], [worse], [worse], {"latency": worse, "edp": worse}, base)
    assert res3.gains() == ("vs vta_default (tuned schedules): best latency 3.00x slower, "
                            "best EDP 1.20x higher")
    # a best record off the front (EDP, not an objective here) still gets its row and label
    res2 = TuneResult("r", sp, ["latency"], [], [a, b], [b], {"latency": b, "edp": a}, base)
    assert any(ln.split()[0] == "3" and ln.endswith("<- best edp (off the front)") for ln in res2.table().splitlines())


def test_cli_summary_prints_only_the_objectives_it_has(tmp_path, capsys):
    from tvm_codesign.tune import main
    layers, space = _files(tmp_path)
    main(["--model", str(layers), "--space", str(space), "--objectives", "edp,power", "--budget", "4",
          "--executor", "local", "--verify", "0", "--quiet", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "nan" not in out and "best latency" not in out
    assert "best EDP" in out and "best power" in out and "<- best edp" in out


def test_cli_warning_is_one_line(tmp_path):
    """The CLI shows a warning as one 'warning: ...' line (it printed tune.py's path and line, then 'main()')."""
    layers, space = _files(tmp_path)
    cmd = [sys.executable, "-m", "tvm_codesign.tune", "--model", str(layers), "--space", str(space), "--budget", "4",
           "--objectives", "latency", "--executor", "local", "--verify", "0", "--quiet", "--out", str(tmp_path)]
    for extra in ([], ["--resume", "--budget", "2"]):
        r = subprocess.run(cmd + extra, env=ENV, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr.splitlines() == [r.stderr.strip()] and r.stderr.startswith("warning: ") \
        and "holds 4 evaluations, more than budget=2" in r.stderr, r.stderr


# ---- 7. errors -------------------------------------------------------------------------------------------------
def test_cli_on_a_corrupt_onnx_file_prints_one_message(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf \x00\xff\x13")
    r = subprocess.run([sys.executable, "-m", "tvm_codesign.tune", "--model", str(bad), "--space", "small",
                        "--budget", "2", "--quiet", "--out", str(tmp_path)], env=ENV, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot read an ONNX model from"), r.stderr


@pytest.mark.parametrize("params, words", [
    ({"block_in": [4096], "block_out": [4096]}, "wgt_buffer_bytes': 262144 B cannot hold one 16777216 B element"),
    ({"block_in": [4096], "block_out": [4096], "wgt_buffer_bytes": [1 << 24], "acc_buffer_bytes": [1 << 30]},
     "insn_bits': ALU needs 146 bits"),
])
def test_space_of_invalid_configs_names_the_field_not_the_area(tmp_path, params, words):
    with pytest.raises(tc.ConfigError, match="no feasible point") as e:
        _tune(tmp_path, space={"name": "big", "params": params, "constraints": {"area_mm2_max": 3.0}})
    assert words in str(e.value) and "area <=" not in str(e.value)
    assert str(e.value).startswith("design space 'big' has no feasible point") and type(e.value).__name__ == "SpaceError"


@pytest.mark.parametrize("field, choice, words", [
    ("inp_buffer_bytes", -8192, "power of two"), ("inp_buffer_bytes", 0, "power of two"),
    ("wgt_buffer_bytes", 1000, "power of two"),
    ("clock_mhz", -100.0, "> 0"), ("dram_latency", -1, ">= 0"), ("batch", 0, "power of two"),
])
def test_space_rejects_bad_sizes_naming_the_field(field, choice, words):
    with pytest.raises(tc.ConfigError, match=f"'{field}'.*{choice}.*{words}"):
        DesignSpace.from_dict({"name": "s", "params": {field: [16 if field != "clock_mhz" else 100.0, choice]}})


def test_a_layer_no_config_can_run_is_named_with_the_reason(tmp_path):
    big = tc.Workload.conv2d(1, 16, 24, 24, 16, 12, 1, 0, out_dtype="int32")  # 12x12 window: 144 input elements
    space = {"name": "s", "params": {"inp_buffer_bytes": [1024, 2048], "dram_bandwidth": [4.0, 8.0]}}
    with pytest.raises(ValueError) as e:
        tc.tune([LAYERS[2][0], big], space, budget=4, executor="local", out_dir=tmp_path, progress=False, verify=0)
    msg = str(e.value)
    assert "layer L1" in msg and "k=12x12" in msg and "cannot run on any" in msg
    assert "inp tiles need 144 elements" in msg and "inp_buffer_bytes" in msg and "raise the budget" not in msg
    wide = tc.Workload.dense(1, 1 << 22, 16)  # a weight row of 2^22 / 32 blocks overflows the 16-bit DRAM stride
    with pytest.raises(ValueError, match=r"layer L0 .*cannot run on any.*dram_stride_bits 16"):
        tc.tune([wide], TINY, budget=4, executor="local", out_dir=tmp_path, run="w", progress=False, verify=0)


# ---- 8. progress ---------------------------------------------------------------------------------------------
def test_setup_and_verification_show_progress(tmp_path, capfd):
    _tune(tmp_path / "a", progress=True, verify=1, measure=1)
    err = capfd.readouterr().err
    assert "feasible configs of tiny" in err and "verify: compile + simulate" in err
    tc.tune("mlp", TINY, budget=2, executor="local", out_dir=tmp_path / "b", progress=True, verify=0)
    assert "importing mlp" in capfd.readouterr().err
    _tune(tmp_path / "c", progress=False, verify=1, measure=1)
    assert capfd.readouterr().err == ""


def test_cli_into_a_file_shows_no_progress_bars(tmp_path):
    """Without --quiet, the CLI draws its bars only when someone watches: stderr redirected to a file (here a pipe)
    stays clean, so a logged run reads as its summary."""
    layers, space = _files(tmp_path)
    r = subprocess.run([sys.executable, "-m", "tvm_codesign.tune", "--model", str(layers), "--space", str(space),
                        "--budget", "4", "--objectives", "latency", "--executor", "local", "--verify", "1",
                        "--measure", "1", "--out", str(tmp_path)], env=ENV, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr == "" and "Pareto front" in r.stdout


def test_verification_logs_no_line_per_kernel(tmp_path, caplog):
    """Verification compiles every layer's top schedules of the best configs (64 kernels for ResNet-18): none of
    them may print build's per-kernel INFO line (the user asked for a tune, and the lines broke the progress bar)."""
    import logging
    caplog.set_level(logging.INFO, logger="tvm_codesign")
    res = _tune(tmp_path, verify=1, measure=2)
    assert len(res.verified) == len(LAYERS)  # the kernels were compiled and simulated
    assert [r.getMessage() for r in caplog.records if r.name.startswith("tvm_codesign")] == []
