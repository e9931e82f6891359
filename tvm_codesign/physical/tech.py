"""Technology nodes: supply and threshold voltages, gate delay, the voltage-frequency relation, logic scaling.

Sources:
- [CT] CACTI 7 technology files (``tech_params/<node>nm.dat`` in zigzag-dse's CACTI sources), ITRS high-performance
  (HP) devices, the flavour of the SRAM table: nominal Vdd / Vth 32 nm 0.9 / 0.2184 V, 45 nm 1.0 / 0.1804 V,
  65 nm 1.1 / 0.1949 V. The lowest supply used is the node's ITRS low-operating-power (LOP) Vdd from the same
  files (32 nm 0.6, 45 nm 0.7, 65 nm 0.8 V).
- [SN90] T. Sakurai, A. R. Newton, "Alpha-power law MOSFET model and its applications to CMOS inverter delay and
  other formulas", IEEE JSSC 25(2), 1990: gate delay ~ C*V / (V - Vth)^alpha, so f_max(V) ~ (V - Vth)^alpha / V;
  alpha = 1.3 (velocity-saturated short-channel devices lie between 1 and 2; 1.3 is the fit the paper reports for
  its sub-micron devices). Dynamic energy per operation ~ C*V^2; leakage power ~ I_off * V (linear in V: DIBL's
  extra leakage at higher V is ignored, which undercharges leakage at nominal V).
- [HMH01] R. Ho, K. W. Mai, M. A. Horowitz, "The Future of Wires", Proc. IEEE 89(4), 2001: a fanout-of-4 inverter
  delay of about 500 ps per um of drawn gate length (worst-case corner): 22.5 ps at 45 nm.
- [DN14] T. Chen et al., "DianNao", ASPLOS 2014: a 65 nm pipelined NFU (16-bit multipliers, adder tree, 3 stages)
  at 0.98 GHz: 1.02 ns = 31.4 FO4 at 65 nm per stage. Used as the logic depth of a MAC-plus-adder pipeline stage
  (VTA's Chisel GEMM registers the multiply-add and every adder-tree level), so a stage takes 31.4 FO4 at any node.
- [D74] R. H. Dennard et al., "Design of ion-implanted MOSFETs with very small physical dimensions", IEEE JSSC
  9(5), 1974: logic area scales with F^2 and switched capacitance with F, so energy per operation with F * Vdd^2.
  Only used to carry the 45 nm logic figures (Horowitz) to the other nodes of the table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

ALPHA = 1.3                 # [SN90]
FO4_PS_PER_UM = 500.0       # [HMH01]
MAC_STAGE_FO4 = 1.02e-9 / (FO4_PS_PER_UM * 0.065 * 1e-12)   # [DN14]: 31.4 FO4


@dataclass(frozen=True)
class Node:
    nm: int
    vdd: float       # nominal (HP) supply, V [CT]
    vth: float       # HP threshold, V [CT]
    vmin: float      # lowest supply used: the node's LOP Vdd [CT]

    @property
    def fo4_s(self) -> float:
        """Fanout-of-4 inverter delay in seconds at nominal Vdd [HMH01]."""
        return FO4_PS_PER_UM * self.nm / 1000 * 1e-12

    def speed(self, v):
        """Relative gate speed at supply ``v`` (1 at nominal Vdd) [SN90]."""
        g = lambda x: (x - self.vth) ** ALPHA / x
        return g(v) / g(self.vdd)

    def voltage_for(self, slowdown: float) -> float:
        """The lowest supply in [vmin, vdd] at which paths run ``slowdown`` (>= 1) times slower than at nominal Vdd:
        speed(V) = 1 / slowdown, solved by bisection (speed rises monotonically with V above Vth)."""
        if slowdown <= 1:
            return self.vdd
        target = 1 / slowdown
        if self.speed(self.vmin) >= target:
            return self.vmin
        lo, hi = self.vmin, self.vdd
        for _ in range(50):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if self.speed(mid) < target else (lo, mid)
        return hi

    def logic_energy_scale(self) -> float:
        """Energy per logic operation relative to 45 nm at each node's nominal Vdd [D74]: F * Vdd^2."""
        ref = NODES[45]
        return (self.nm / ref.nm) * (self.vdd / ref.vdd) ** 2

    def logic_area_scale(self) -> float:
        """Logic area relative to 45 nm [D74]: F^2."""
        return (self.nm / 45) ** 2


NODES = {n.nm: n for n in (Node(32, 0.9, 0.21835, 0.6), Node(45, 1.0, 0.18035, 0.7), Node(65, 1.1, 0.19491, 0.8))}


def node(nm) -> Node:
    """The node record of ``nm`` (ValueError naming the known nodes)."""
    try:
        return NODES[int(nm)]
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"tech_nm {nm!r} is not a modelled node; known: {sorted(NODES)}") from None


def mac_stage_s(nm) -> float:
    """Delay of one MAC / adder-tree pipeline stage at nominal Vdd, seconds [DN14, HMH01]."""
    return MAC_STAGE_FO4 * node(nm).fo4_s


assert math.isclose(MAC_STAGE_FO4, 31.38, rel_tol=1e-3)
