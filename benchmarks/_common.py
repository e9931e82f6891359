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
