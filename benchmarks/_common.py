"""Shared by the tuner benchmarks: ResNet-18's accelerator layers (extracted once, cached in /tmp)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tvm_codesign.tuner import workloads  # noqa: E402

CACHE = Path(os.environ.get("TMPDIR", "/tmp")) / "tvm_codesign_resnet18_layers.json"


def resnet18_layers():
    """ResNet-18 at 224x224 as compile() offloads it (21 layers, 14 distinct schedules)."""
    if CACHE.is_file():
        return workloads.from_records(json.loads(CACHE.read_text()))
    _, layers = workloads.load("resnet18")
    CACHE.write_text(json.dumps(workloads.to_json(layers)))
    return layers


DROPS = Path(os.environ.get("TMPDIR", "/tmp")) / "tvm_codesign_resnet18_drops_tensor.json"  # per-tensor weight scales


def resnet18_drops():
    """ResNet-18 224's named layers [(name, Workload)] and per-layer drops {layer: {quant: points}}: the sensitivity
    estimate (tuner/sensitivity.py) with random weights, so top-1 agreement with fp32 on 64 random inputs (cached)."""
    import numpy as np
    from tvm_codesign import model as Mdl, models
    from tvm_codesign.tuner import precision_run as R, sensitivity as S
    if DROPS.is_file():
        d = json.loads(DROPS.read_text())
        return [(ly.name, ly.workload) for ly in workloads.from_records(d["layers"])], d["drops"]
    net = models.BUILTIN["resnet18"]()
    rng = np.random.default_rng(0)
    calib = [(rng.standard_normal((1, 3, 224, 224)).astype(np.float32),) for _ in range(4)]
    layers = Mdl.named_layers(net, calibration=calib)
    sens = S.measure(net, [n for n, _ in layers], np.concatenate([c[0] for c in calib]),
                     rng.standard_normal((64, 3, 224, 224)).astype(np.float32), None, batch=16, threads=1,
                     weight_scales=R.WEIGHT_SCALES)
    drops = R.drops_of(sens, [n for n, _ in layers])
    DROPS.write_text(json.dumps({"layers": [{"workload": w.to_dict(), "name": n} for n, w in layers], "drops": drops}))
    return layers, drops
