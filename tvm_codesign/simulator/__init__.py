"""Programs and the simulator: functional (bit-exact), timing, activity and stats."""
from .dram import ProgramBuilder, elem_type, typed_view
from .program import Program
from .simulator import Simulator
from .stats import SimStats

__all__ = ["Program", "ProgramBuilder", "Simulator", "SimStats", "elem_type", "typed_view"]
