"""compile() says which layers used a tuned schedule (schedules/ store), a given one or the default: per kernel,
in profile(), and in one log line that a user who configured no logging sees (and nothing else)."""
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import tvm_codesign as tc
from tvm_codesign.schedules import knobs as K
from tvm_codesign.schedules import store

ROOT = Path(__file__).resolve().parents[1]


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(16, 16, 3, padding=1)
        self.c2 = torch.nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.c3 = torch.nn.Conv2d(32, 32, 3, padding=1)
        self.c4 = torch.nn.Conv2d(32, 32, 3, padding=1)  # the same layer as c3: one kernel, two calls
        self.fc = torch.nn.Linear(32 * 4 * 4, 10)

    def forward(self, x):
        y = torch.relu(self.c2(torch.relu(self.c1(x))))
        return self.fc(torch.relu(self.c4(torch.relu(self.c3(y)))).flatten(1))


def _compile(**kw):
    torch.manual_seed(0)
    xs = [np.random.default_rng(i).standard_normal((1, 16, 8, 8)).astype(np.float32) for i in range(2)]
    return tc.compile(Net().eval(), "vta_default", calibration=[(x,) for x in xs], requant="cpu",
                      **kw)  # int32 kernels: c3 and c4 are the same kernel


def test_tuned_given_and_default_schedules_are_counted(tmp_path, monkeypatch, caplog):
    base = _compile()
    assert {k["source"] for k in base.kernels} == {"default"}
    cfg = base.config
    wl = {k["name"]: tc.Workload(**k["workload"]) for k in base.kernels}
    calls = base.calls
    shared = next(n for n in wl if calls[n] == 2)  # c3 and c4
    dense = next(n for n in wl if wl[n].kind == "dense")
    c1 = next(n for n in wl if wl[n].ci == 16 and wl[n].co == 16)
    tuned = K.Knobs(tile_h=2, tile_w=4, vthreads=1)  # not the default
    K.check(wl[shared], cfg, tuned)
    store.save(tmp_path, cfg, wl[shared], tuned)  # as the tuner stores a schedule
    monkeypatch.setenv("TVM_CODESIGN_SCHEDULES", str(tmp_path))
    given = K.default(wl[c1], cfg)
    caplog.clear()
    cm = _compile(schedules={wl[c1]: given})

    by_wl = {tc.Workload(**k["workload"]): k for k in cm.kernels}
    assert by_wl[wl[shared]]["source"] == "tuned" and by_wl[wl[shared]]["knobs"] == tuned.to_dict()
    assert by_wl[wl[c1]]["source"] == "user" and by_wl[wl[c1]]["knobs"] == given.to_dict()
    assert by_wl[wl[dense]]["source"] == "default"
    assert cm.schedule_counts() == {"tuned": 2, "user": 1, "default": 2}  # layers: c3 and c4 share the tuned one
    rows = {r["name"]: r for r in cm.profile()}
    assert rows[by_wl[wl[shared]]["name"]]["schedule"] == "tuned"
    assert "schedules of the accelerator layers: 2 tuned, 1 user, 2 default" in str(cm.profile())
    lines = [r.getMessage() for r in caplog.records if r.name == "tvm_codesign"]
    assert len(lines) == 1 and lines[0].startswith(
        "compiled Net for vta_default: 5 layers on the accelerator (2 tuned schedules, 1 given, 2 default), 100.0% of MACs")


CHILD = """
import logging, sys
import numpy as np, tvm
from tvm import relax
import tvm_codesign as tc
if sys.argv[1] == "configured":
    logging.basicConfig(level=logging.WARNING)  # the application's format: our line in it
if sys.argv[1] == "silenced":
    logging.getLogger("tvm_codesign").setLevel(logging.WARNING)
x = relax.Var("x", relax.TensorType((8, 32), "int8"))
bb = relax.BlockBuilder()
with bb.function("main", [x]):
    w = relax.const(np.ones((32, 16), np.int8))
    bb.emit_func_output(bb.emit(relax.op.matmul(x, w, out_dtype="int32")))
cm = tc.compile(bb.get(), "vta_default")
assert (cm(np.ones((8, 32), np.int8)) == 32).all()
"""

LINE = "compiled IRModule for vta_default: 1 layer on the accelerator (1 default), 100.0% of MACs; 0 ops on the CPU; "


@pytest.mark.parametrize("logging_setup,prefix", [("none", "tvm_codesign: "), ("configured", "INFO:tvm_codesign:"),
                                                  ("silenced", None)])
def test_one_log_line_by_default_and_nothing_else(logging_setup, prefix):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", CHILD, logging_setup], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout == ""
    if prefix is None:
        assert r.stderr == ""
    else:
        assert r.stderr.startswith(prefix + LINE) and r.stderr.count("\n") == 1 and r.stderr.endswith(" s\n")


def test_the_logger_is_at_info_from_the_first_import():
    """The level is set by ``import tvm_codesign``, not by the first compile: pytest's caplog (or anything that
    saves and restores the level around a block) used to restore NOTSET, dropping every later compile's line."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    code = "import logging, tvm_codesign; print(logging.getLogger('tvm_codesign').level)"
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == str(logging.INFO), r.stderr[-2000:]
