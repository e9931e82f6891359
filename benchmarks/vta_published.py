"""VTA's published ResNet-18 results and which of our layers each one describes (benchmarks/fidelity_vta.py).

Per layer: the VTA paper's roofline (T. Moreau et al., "A Hardware-Software Blueprint for Flexible Deep Learning
Specialization", IEEE Micro 2019, arXiv:1807.04188; Pynq-Z1, 100 MHz, 51.2 GOPS roof), read as "implied cycles"
= ops / achieved GOPS x 100 MHz. The board's wall time includes the host's share (the JIT runtime building the
instruction stream, cache flushes, the synchronous wait), so each figure is an upper bound on VTA's own cycles.
The list is the TVM paper's ResNet-18 operator table (OSDI'18, C1-C12 with C1 on the CPU), which has one layer
ResNet-18 does not: 56x56 64->64 1x1 stride 1 (VTA's own tuning script lists it with "this layer does not appear
in ResNet", tmoreau89/tvm vta/scripts/tune_conv.py); the other ten are VTA's C2-C11
(apache/tvm vta/tests/python/integration/test_benchmark_topi_conv2d.py, ``resnet_wkls``).

Whole network without the first layer (VTA's ``graph_pack`` offloads from the max-pool to the global average pool:
C2-C11 with their ResNet-18 repeats, the residual additions and requantisation on VTA's ALU; C1 and the classifier
on the CPU): 7.3 M cycles on the Pynq (0.073 s of convolution at 100 MHz, the VTA paper) and 7,729,601 cycles
in VTA's cycle-accurate Chisel simulation (tsim, resnet18_v1 with the pipelined GEMM: apache/tvm-vta PR #30,
"Chisel Pipelined GEMM", 2021, measured with vta/tutorials/frontend/deploy_classification.py).
"""
from __future__ import annotations

import dataclasses

from tvm_codesign.schedules.resnet import LAYERS


@dataclasses.dataclass(frozen=True)
class PublishedLayer:
    label: str
    h: int            # input height = width
    oh: int           # output height = width
    ci: int
    co: int
    k: int            # kernel height = width
    cycles: int       # implied cycles at 100 MHz (upper bound: host overhead included)

    @property
    def stride(self) -> int:
        return self.h // self.oh

    @property
    def ops(self) -> int:
        """2 x MACs of the layer."""
        return 2 * self.oh * self.oh * self.co * self.ci * self.k * self.k


PUBLISHED_LAYERS = (
    PublishedLayer("56x56 64->64 3x3", 56, 56, 64, 64, 3, 618_000),
    PublishedLayer("56x56 64->64 1x1", 56, 56, 64, 64, 1, 177_000),
    PublishedLayer("56x56->28x28 64->128 3x3 s2", 56, 28, 64, 128, 3, 299_000),
    PublishedLayer("56x56->28x28 64->128 1x1 s2", 56, 28, 64, 128, 1, 138_000),
    PublishedLayer("28x28 128->128 3x3", 28, 28, 128, 128, 3, 551_000),
    PublishedLayer("28x28->14x14 128->256 3x3 s2", 28, 14, 128, 256, 3, 269_000),
    PublishedLayer("28x28->14x14 128->256 1x1 s2", 28, 14, 128, 256, 1, 85_000),
    PublishedLayer("14x14 256->256 3x3", 14, 14, 256, 256, 3, 513_000),
    PublishedLayer("14x14->7x7 256->512 3x3 s2", 14, 7, 256, 512, 3, 380_000),
    PublishedLayer("14x14->7x7 256->512 1x1 s2", 14, 7, 256, 512, 1, 87_000),
    PublishedLayer("7x7 512->512 3x3", 7, 7, 512, 512, 3, 716_000),
)

PUBLISHED_NETWORK = {
    "pynq": {"cycles": 7_300_000, "what": "Pynq-Z1 board, 0.073 s of convolution at 100 MHz (VTA paper)"},
    "chisel_tsim": {"cycles": 7_729_601, "what": "VTA Chisel RTL in tsim, resnet18_v1 (apache/tvm-vta PR #30)"},
}

# VTA's names for the ResNet-18 layers (schedules/resnet.py's LAYERS): (H_in, H_out, Cin, Cout, K) -> name
VTA_NAMES = {(hw, hw // s, ci, co, k): n for n, hw, ci, co, k, _, s in LAYERS if n != "C1"}


def layer_shape(layer: dict) -> tuple | None:
    """(H_in, H_out, Cin, Cout, K) of a compiled conv2d layer (``CompiledModel.kernels[i]["layer"]``: the user's
    data, weight and output shapes), or None if it is not a square, ungrouped 2-D convolution."""
    d, w, o = layer.get("data"), layer.get("weight"), layer.get("out")
    if not (d and w and o) or len(d) != 4 or len(w) != 4 or len(o) != 4:
        return None
    if d[2] != d[3] or o[2] != o[3] or w[2] != w[3] or w[1] != d[1]:
        return None
    return (d[2], o[2], d[1], w[0], w[2])


def match(layers: list[dict]) -> list[dict]:
    """Map each published layer to the compiled layers it describes.

    ``layers``: [{"name", "shape": (H_in, H_out, Cin, Cout, K) or None, "calls", ...}]. Returns one entry per
    published layer: {"published": PublishedLayer, "vta_name": C2..C11 or None, "matches": [layers]} — an entry
    whose shape no layer has keeps an empty match list (it is reported, never paired with a neighbour)."""
    out = []
    for p in PUBLISHED_LAYERS:
        key = (p.h, p.oh, p.ci, p.co, p.k)
        out.append({"published": p, "vta_name": VTA_NAMES.get(key),
                    "matches": [ly for ly in layers if ly.get("shape") == key]})
    return out


def network_cycles(matched: list[dict]) -> int:
    """Cycles of the layers the published whole-network figures count: every compiled layer that matches a
    published ResNet-18 layer (C2-C11), each call counted (cycles per call x calls). A layer has one shape, so
    it is in at most one entry's matches."""
    return sum(ly["cycles"] * ly["calls"] for m in matched for ly in m["matches"])


def dev(simulated: float, published: float) -> float:
    """Signed relative deviation: simulated / published - 1."""
    return simulated / published - 1
