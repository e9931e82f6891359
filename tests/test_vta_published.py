"""benchmarks/vta_published.py: which of ResNet-18's layers each of VTA's published figures describes.

The reference is ResNet-18's architecture itself (He et al., CVPR 2016, Table 1: a 7x7 stride-2 stem, four stages
of two basic blocks at 64/128/256/512 channels, stages 2-4 opening with a stride-2 3x3 and a 1x1 stride-2
projection), written out here independently of the package's model and frontend.
"""
from __future__ import annotations

import os
import sys
from collections import Counter

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks"))

import vta_published as V  # noqa: E402


def resnet18_convs() -> list[tuple]:
    """(H_in, H_out, Cin, Cout, K) of every conv of ResNet-18 at 224x224, one entry per layer instance."""
    convs = [(224, 112, 3, 64, 7)]
    h, c = 56, 64  # after the 3x3 stride-2 max-pool
    for co in (64, 128, 256, 512):
        for block in range(2):
            s = 2 if block == 0 and co != 64 else 1
            oh = h // s
            convs += [(h, oh, c, co, 3), (oh, oh, co, co, 3)]
            if s == 2:
                convs.append((h, oh, c, co, 1))
            h, c = oh, co
    return convs


def _layers(cycles=lambda shape: 1000) -> list[dict]:
    """One compiled layer per distinct shape with its instance count as calls (as compile's kernels share)."""
    n = Counter(resnet18_convs())
    return [{"name": f"k{i}", "shape": s, "calls": c, "cycles": cycles(s)} for i, (s, c) in enumerate(n.items())]


def test_reference_resnet18_has_twenty_convs():
    assert len(resnet18_convs()) == 20  # the 7x7 stem, 16 3x3 convs, 3 1x1 projections (+ the FC: 18 weight layers deep)


def test_each_published_layer_maps_to_the_resnet18_layer_of_its_shape():
    matched = V.match(_layers())
    got = {m["published"].label: (m["vta_name"], sum(x["calls"] for x in m["matches"])) for m in matched}
    assert got == {
        "56x56 64->64 3x3": ("C2", 4), "56x56 64->64 1x1": (None, 0),
        "56x56->28x28 64->128 3x3 s2": ("C3", 1), "56x56->28x28 64->128 1x1 s2": ("C4", 1),
        "28x28 128->128 3x3": ("C5", 3), "28x28->14x14 128->256 3x3 s2": ("C6", 1),
        "28x28->14x14 128->256 1x1 s2": ("C7", 1), "14x14 256->256 3x3": ("C8", 3),
        "14x14->7x7 256->512 3x3 s2": ("C9", 1), "14x14->7x7 256->512 1x1 s2": ("C10", 1),
        "7x7 512->512 3x3": ("C11", 3)}


def test_the_unmatched_entry_is_not_paired_with_a_neighbour():
    """The 56x56 64->64 1x1 entry has no ResNet-18 layer: no match, even though C2 has its size and channels."""
    (m,) = [m for m in V.match(_layers()) if m["published"].k == 1 and m["published"].stride == 1]
    assert m["matches"] == [] and m["vta_name"] is None


def test_network_cycles_count_c2_to_c11_with_every_repeat():
    """C1 (on VTA's CPU) is left out; every other conv counts once per instance: 19 instances."""
    cyc = lambda s: 1000 * s[4] + s[2]  # distinct per shape
    layers = _layers(cyc)
    want = sum(cyc(s) for s in resnet18_convs() if s != (224, 112, 3, 64, 7))
    assert V.network_cycles(V.match(layers)) == want
    # kernels that split a shape (relu / no relu variants) are each counted by their calls
    split = [dict(ly, calls=1, name=ly["name"] + "a") for ly in layers if ly["calls"] > 1]
    split += [dict(ly, calls=ly["calls"] - 1) if ly["calls"] > 1 else ly for ly in layers]
    assert V.network_cycles(V.match(split)) == want


def test_published_implied_cycles_are_ops_over_throughput():
    """Each figure is an achieved throughput under VTA's 51.2 GOPS roof (implied cycles >= MACs / 256)."""
    for p in V.PUBLISHED_LAYERS:
        gops = p.ops / (p.cycles / 100e6) / 1e9
        assert 0 < gops <= 51.2, (p.label, gops)
        assert p.cycles >= p.ops / 2 / 256


def test_layer_shape_of_a_compiled_layer_record():
    assert V.layer_shape({"data": [1, 64, 56, 56], "weight": [128, 64, 3, 3], "out": [1, 128, 28, 28]}) == \
        (56, 28, 64, 128, 3)
    assert V.layer_shape({"data": [1, 64, 56, 56], "weight": [64, 1, 3, 3], "out": [1, 64, 56, 56]}) is None  # grouped
    assert V.layer_shape({"data": [1, 512], "weight": [1000, 512], "out": [1, 1000]}) is None  # dense


def test_compile_records_the_shapes_the_mapping_reads():
    """The contract with compile: a model's conv layer is recorded with the user's shapes (data, weight, output),
    which is what the mapping reads (a one-layer model, compiled)."""
    torch = pytest.importorskip("torch")
    import tvm_codesign as tc

    class One(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(16, 32, 3, stride=2, padding=1)

        def forward(self, x):
            return torch.relu(self.conv(x))

    x = np.random.default_rng(0).standard_normal((1, 16, 8, 8)).astype(np.float32)
    cm = tc.compile(One().eval(), "vta_default", calibration=[(x,)], progress=False)
    (k,) = cm.kernels
    assert V.layer_shape(k["layer"]) == (8, 4, 16, 32, 3)
