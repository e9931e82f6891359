"""Physical costs of a config: CACTI-derived SRAMs, DRAM interfaces as named parts, technology node and
voltage-frequency, clock reach, leakage, and the area and energy of MACs, ALU lanes, operand wiring, DMA and
control (``model.costs``). Beside ``hardware`` on the same floor: it reads configs, it imports nothing above."""
from .model import (PhysicalError, area_mm2, costs, energy_pj, static_power_mw, unit_energies_pj,
                    why_infeasible)

__all__ = ["PhysicalError", "area_mm2", "costs", "energy_pj", "static_power_mw", "unit_energies_pj", "why_infeasible"]
