"""What precision-flexible and 2:4-sparse GEMM cores cost (hardware/modes.py), relative to an int8 MAC array.

Sources:
- [BF] Bit Fusion's own synthesis results (Sharma et al., ISCA 2018; the authors' artifact, github.com/hsharma35/
  bitfusion, ``results/systolic_array_synth.csv``: 45 nm, 500 MHz, systolic arrays of N x M PEs by max and min
  operand precision). For the 4 x 4 array: fixed 8-bit 8171.7 um^2 / 1885.2 uW; 8-bit max with 2-bit bricks
  27752.8 um^2 / 4622.8 uW (x3.396 area, x2.452 power); 4-bit max with 2-bit bricks 5670.2 um^2 / 1117.4 uW vs
  fixed 4-bit 3066.0 um^2 / 744.4 uW (x1.849, x1.501). The table has no 8-bit max / 4-bit brick row: this project
  charges it one fusion level, the 4 -> 2 step's x1.849 / x1.501 (two levels, 1.849^2 = 3.42, match the measured
  8 -> 2 step's x3.396 within 1 %).
- Energy per product: a fusion unit's power is drawn whatever its mode (every brick busy), so a W x A product costs
  the unit's energy per cycle x (W * A / 64) [BF's premise: 64 / (W * A) products per unit and cycle].
- [NG45] NanGate FreePDK45 Open Cell Library: MUX2_X1 1.862 um^2. 2:4 sparsity selects, for every product, the
  activation that matches a kept weight among 4 (a 4:1 multiplexer = 3 MUX2 per activation bit, as in NVIDIA's
  sparse tensor cores, Mishra et al. arXiv:2104.08378): 64 / gemm_min_bits bits per 8-bit multiplier slot (its
  most products x their activation bits). Mux energy per switching output: the area-scaled energy density of
  [H14]'s 8-bit adder (0.03 pJ / 36 um^2) - a modelling choice; charged in sparse modes only (dense modes hold
  the select).
- [LE99] Sutherland, Sproull, Harris, "Logical Effort" (1999), Table 4.2: a 2-input multiplexer has logical
  effort 2 and parasitic delay 4 (units of tau; an FO4 inverter is 5 tau), so driving a fan-out of 4 it takes
  2 x 4 + 4 = 12 tau = 2.4 FO4; the 2:4 select (a 4:1 multiplexer, two levels) adds 4.8 FO4 to the MAC stage.
- Storage: ports and buffers are sized for the widest mode (``sram.banking``); 2:4 positions live in a metadata
  SRAM beside the weight buffer, as deep as the deepest sparse mode needs, priced from the CACTI table.
"""
from __future__ import annotations

from functools import lru_cache

from ..hardware import modes

# gemm_min_bits -> (area, power) of a fusion-unit array relative to the fixed 8-bit one [BF]
FUSION = {8: (1.0, 1.0), 4: (5670.2 / 3066.0, 1117.4 / 744.4), 2: (27752.8 / 8171.7, 4622.8 / 1885.2)}
MUX2_UM2 = 1.862              # [NG45] MUX2_X1 at 45 nm
MUX2_PER_BIT = 3              # a 4:1 multiplexer
H14_ADD8 = (0.03, 36.0)       # pJ, um^2 [H14]
SELECT_FO4 = 2 * (2 * 4 + 4) / 5  # [LE99]: two MUX2 levels at fan-out 4, 4.8 FO4


def select_bits(hw) -> int:
    """Activation bits selected per 8-bit multiplier slot by a 2:4 core (0 without sparsity)."""
    return 64 // hw.gemm_min_bits if hw.sparse_2_4 else 0


def select_fo4(hw) -> float:
    """FO4 delays the 2:4 select adds to a MAC stage (0 without sparsity) [LE99]."""
    return SELECT_FO4 if hw.sparse_2_4 else 0.0


def select_um2_per_slot(hw) -> float:
    return select_bits(hw) * MUX2_PER_BIT * MUX2_UM2


def select_pj_per_slot_cycle(hw) -> float:
    from .logic import TOGGLE  # the share of outputs that switch per cycle (logic imports this module)
    return select_um2_per_slot(hw) * H14_ADD8[0] / H14_ADD8[1] * TOGGLE


def product_fraction(view) -> float:
    """A mode's energy per dense-equivalent MAC as a fraction of one 8-bit multiplier slot's cycle."""
    m = view.mode_spec
    return m.w_bits * m.a_bits / 64 / (2 if m.sparse else 1)


@lru_cache(maxsize=4096)
def _views(hw):
    return [hw.with_mode(m) for m in hw.modes]


def ports(hw) -> dict:
    """Widest row in bits of each operand buffer over the hardware's modes, and the 2:4 metadata SRAM: its
    widest row (bits) and the most bytes a sparse mode keeps in it (its weight depth x its row; 0 without)."""
    vs = _views(hw)
    sparse = [v for v in vs if v.mode_spec.sparse]
    return {"inp": max(v.inp_elem_bytes for v in vs) * 8, "wgt": max(v.wgt_row_bytes for v in vs) * 8,
            "meta_bits": max((v.wgt_meta_bytes * 8 for v in sparse), default=0),
            "meta_bytes": max((v.wgt_depth * v.wgt_meta_bytes for v in sparse), default=0)}


__all__ = ["FUSION", "ports", "product_fraction", "select_bits", "modes"]
