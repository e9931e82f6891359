"""CompiledModel.save / tvm_codesign.load: a saved model runs in a fresh process without compiling, bit-identical,
with its kernels' programs and profile; anything else at the path is refused, never overwritten."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import tvm_codesign as tc
from tvm_codesign import saved

ROOT = Path(__file__).resolve().parents[1]


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.c2 = torch.nn.Conv2d(16, 32, 3, stride=2, padding=1, groups=2)  # grouped: wherever it runs
        self.fc = torch.nn.Linear(32 * 4 * 4, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.c2(torch.relu(self.c1(x)))).flatten(1))


def _x(i):
    return np.random.default_rng(i).standard_normal((1, 3, 8, 8)).astype(np.float32)


@pytest.fixture(scope="module")
def cm():
    torch.manual_seed(0)
    return tc.compile(Net().eval(), "vta_default", calibration=[(_x(i),) for i in range(4)])


@pytest.fixture(scope="module")
def save(cm, tmp_path_factory):
    return cm.save(tmp_path_factory.mktemp("saves") / "net")


CHILD = """
import json, sys, time
import numpy as np, tvm
import tvm_codesign as tc
import tvm_codesign.model as M
from tvm_codesign import lowering, frontend
from tvm_codesign.frontend import relax as R, quantize as Q

def compiled(*a, **k):
    raise AssertionError("a compile step ran after load")

tvm.compile = M.offload = R.offload = M._quantized = Q.quantize = lowering.lower = compiled
t = time.perf_counter()
cm = tc.load(sys.argv[1])
y = cm(np.load(sys.argv[2]))
np.save(sys.argv[3], y)
json.dump({"rows": cm.profile().rows, "programs": [cm.program(k["name"]) for k in cm.kernels],
           "fraction": cm.offloaded_mac_fraction, "total_macs": cm.total_macs, "config": cm.config.to_dict(),
           "inputs": cm.signature.inputs, "summary": cm.summary(), "seconds": time.perf_counter() - t},
          open(sys.argv[4], "w"))
"""


def test_saved_model_runs_in_a_fresh_process_without_compiling(cm, save, tmp_path):
    x = _x(99)
    np.save(tmp_path / "x.npy", x)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", CHILD, str(save), str(tmp_path / "x.npy"),
                        str(tmp_path / "y.npy"), str(tmp_path / "out.json")], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stderr == "", r.stderr  # loading prints nothing
    y = cm(x)
    assert np.array_equal(np.load(tmp_path / "y.npy"), y)  # bit-identical
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["rows"] == json.loads(json.dumps(cm.profile().rows))  # same kernels, shapes, MACs and cycles
    assert all(r["cycles"] for r in out["rows"] if r["device"] == "accelerator")
    assert out["programs"] == [cm.program(k["name"]) for k in cm.kernels]
    assert (out["fraction"], out["total_macs"], out["config"]) == (cm.offloaded_mac_fraction, cm.total_macs,
                                                                  cm.config.to_dict())
    assert out["inputs"] == cm.signature.inputs and out["summary"] == cm.summary()


def test_loaded_model_checks_its_inputs(cm, save):
    loaded = tc.load(save)
    assert np.array_equal(loaded(_x(5).astype(np.float64)), cm(_x(5)))
    with pytest.raises(ValueError, match=r"input 'x': expected shape \(1, 3, 8, 8\), got \(1, 3, 8, 9\)"):
        loaded(np.zeros((1, 3, 8, 9), np.float32))


def test_load_refuses_what_is_not_a_save(save, tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved model at"):
        tc.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is not a saved tvm_codesign model"):
        tc.load(tmp_path / "empty")
    path = Path(shutil.copytree(save, tmp_path / "net"))
    head = json.loads((path / saved.HEAD).read_text())
    for key, value, match in (("format", 99, "format 99; this tvm_codesign reads format"),
                              ("tvm", "0.1.0", "saved with tvm 0.1.0, this is tvm"),
                              ("tvm_codesign", "9.9", "saved with tvm_codesign 9.9")):
        (path / saved.HEAD).write_text(json.dumps({**head, key: value}))
        with pytest.raises(ValueError, match=match):
            tc.load(path)
    (path / saved.HEAD).write_text("{not json")
    with pytest.raises(ValueError, match="unreadable saved model"):
        tc.load(path)


def test_save_replaces_a_save_but_nothing_else(cm, tmp_path):
    other = tmp_path / "data"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="exists and is not a saved tvm_codesign model"):
        cm.save(other)
    (tmp_path / "file").write_text("mine")
    with pytest.raises(FileExistsError):
        cm.save(tmp_path / "file")
    assert (other / "keep.txt").read_text() == "mine" and (tmp_path / "file").read_text() == "mine"
    path = cm.save(tmp_path / "net")
    (path / "stale").write_text("from before")
    cm.save(path)  # a second save replaces the first
    assert not (path / "stale").exists() and np.array_equal(tc.load(path)(_x(1)), cm(_x(1)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "file", "net"]  # no temporary left
