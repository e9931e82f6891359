"""CompiledModel.profile(): a table object (aligned text with totals, ``.rows`` for code) with the layers' real MACs
and shapes beside the kernels' padded ones, MACs of CPU layers, and the schedule each kernel used."""
import numpy as np
import pytest
import torch

import tvm_codesign as tc
from tvm_codesign.profile import ProfileTable


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.c2 = torch.nn.Conv2d(16, 16, 3, padding=1, groups=16)  # depthwise
        self.c3 = torch.nn.Conv2d(16, 24, 3, stride=2, padding=1)
        self.c1d = torch.nn.Conv1d(24, 8, 3)
        self.fc = torch.nn.Linear(8 * 14, 10)

    def forward(self, x):
        y = torch.relu(self.c3(torch.relu(self.c2(torch.relu(self.c1(x))))))  # (1, 24, 4, 4)
        return self.fc(self.c1d(y.flatten(2)).flatten(1))  # conv1d over the 16 pixels


@pytest.fixture(scope="module")
def cm():
    torch.manual_seed(0)
    xs = [np.random.default_rng(i).standard_normal((1, 3, 8, 8)).astype(np.float32) for i in range(4)]
    cm = tc.compile(Net().eval(), "vta_default", calibration=[(x,) for x in xs])
    cm(xs[0])
    return cm


def test_rows_hold_real_and_padded_work(cm):
    p = cm.profile()
    assert isinstance(p, ProfileTable) and isinstance(p.rows, list) and all(isinstance(r, dict) for r in p.rows)
    assert list(p) == p.rows and len(p) == len(p.rows) and p[0] is p.rows[0]  # reads like the old list of dicts
    by_shape = {r["shape"]: r for r in p.rows if r["shape"]}
    c1 = by_shape["1x3x8x8 * 16x3x3x3 -> 1x16x8x8"]  # the user's shapes
    assert c1["device"] == "accelerator" and c1["calls"] == 1 and c1["schedule"] == "default"
    assert c1["macs"] == 8 * 8 * 16 * 3 * 9  # real MACs; the kernel pads 3 input channels up to a block
    assert c1["padded_macs"] > c1["macs"] and c1["padded"].startswith("1x16x")
    fc = by_shape["1x112 * 112x10 -> 1x10"]
    assert fc["macs"] == 112 * 10 and fc["padded"] == "1x112 * 112x16" and fc["padded_macs"] == 112 * 16
    for r in p.rows:
        if r["device"] == "accelerator":
            assert r["cycles"] > 0 and 0 < r["utilisation"] <= 1 and r["dram_bytes"] > 0 and r["energy_uj"] > 0
    conv1d = next(r for r in p.rows if r["op"] == "relax.nn.conv1d")  # MACs of a layer left on the CPU
    assert conv1d["device"] == "cpu" and conv1d["macs"] == 8 * 14 * 24 * 3 and conv1d["calls"] == 1
    assert conv1d["shape"] == "1x24x16 * 8x24x3 -> 1x8x14"
    dw = next(r for r in p.rows if r["shape"] and "16x1x3x3" in r["shape"])  # depthwise: wherever it runs
    assert dw["macs"] == 8 * 8 * 16 * 9


def test_padded_shape_of_merged_groups(cm):
    """A depthwise conv of 16 channels runs as one kernel group with a block-diagonal 16x16 weight (merged
    groups): its padded shape says so, and the MACs the accelerator ran are that shape's."""
    dw = next(r for r in cm.profile().rows if r["shape"] == "1x16x8x8 * 16x1x3x3 -> 1x16x8x8")
    assert dw["device"] == "accelerator"
    assert dw["padded"] == "1x16x8x8 * 16x16x3x3"
    assert dw["padded_macs"] == 8 * 8 * 16 * 16 * 9


def test_table_prints_aligned_with_totals(cm):
    p = cm.profile()
    lines = str(p).splitlines()
    assert lines[0] == "Net on vta_default" and repr(p) == str(p)
    header = lines[1]
    body = lines[3:3 + len(p.rows)]
    for col, key in (("device", "device"), ("schedule", "schedule")):  # left-aligned columns start together
        at = header.index(col)
        assert all(line[at:].startswith(r[key] or "") for line, r in zip(body, p.rows))
    end = header.index("MACs/call") + len("MACs/call")  # right-aligned numbers end together
    assert all(line[:end].endswith(f"{r['macs']:,}") for line, r in zip(body, p.rows) if r["macs"])
    total = lines[4 + len(p.rows)]
    acc = [r for r in p.rows if r["device"] == "accelerator"]
    cycles = sum(r["cycles"] * r["calls"] for r in acc)
    macs = sum(r["macs"] * r["calls"] for r in p.rows if r["macs"])
    assert total.startswith("total (all calls)") and f"{cycles:,}" in total and f"{macs:,}" in total
    share = sum(r["macs"] * r["calls"] for r in acc) / macs
    assert f"MACs on the accelerator: {share:.1%}" in str(p) and share == cm.offloaded_mac_fraction


def test_profile_before_any_run_says_so():
    """Before the first call the per-run figures are unknown: no '0 cycles' totals, a line saying why."""
    torch.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    cm = tc.compile(torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1)).eval(), "vta_default",
                    calibration=[(x,)])
    before = str(cm.profile())
    assert "cycles/call" not in before and "not run yet: call the model" in before
    assert cm.profile().totals()["cycles"] is None
    cm(x)
    after = cm.profile()
    assert "cycles/call" in str(after) and "not run yet" not in str(after) and after.totals()["cycles"] > 0
