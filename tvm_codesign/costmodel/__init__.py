"""Cost models beside the simulator: the roofline bound (and, later, the tuner's analytical model)."""
from .roofline import roofline_cycles

__all__ = ["roofline_cycles"]
