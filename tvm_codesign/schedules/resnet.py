"""ResNet-18 conv layers (batch 1) as Workloads: C1 (7x7 stride 2) and VTA's C2-C11."""
from __future__ import annotations

from .workload import Workload

# (name, H=W, Cin, Cout, kernel, pad, stride)
LAYERS = [("C1", 224, 3, 64, 7, 3, 2), ("C2", 56, 64, 64, 3, 1, 1), ("C3", 56, 64, 128, 3, 1, 2),
          ("C4", 56, 64, 128, 1, 0, 2), ("C5", 28, 128, 128, 3, 1, 1), ("C6", 28, 128, 256, 3, 1, 2),
          ("C7", 28, 128, 256, 1, 0, 2), ("C8", 14, 256, 256, 3, 1, 1), ("C9", 14, 256, 512, 3, 1, 2),
          ("C10", 14, 256, 512, 1, 0, 2), ("C11", 7, 512, 512, 3, 1, 1)]


def resnet18_convs(batch: int = 1, **epilogue) -> list[Workload]:
    """The eleven ResNet-18 conv workloads; ``epilogue`` (bias, shift, relu, out_dtype) applies to each."""
    return [Workload.conv2d(batch, ci, hw, hw, co, k, stride, pad, name=name, **epilogue)
            for name, hw, ci, co, k, pad, stride in LAYERS]
