"""tvm-codesign: a simulated VTA-style int8 accelerator as a TVM target, with a co-design autotuner."""
from .errors import (CodesignError, ConfigError, DeadlockError, DramAccessError, EncodingError, ProgramError,
                     SramAccessError)
from .hardware import AcceleratorConfig, preset_names
from .hardware.isa import Alu, AluOp, Finish, Gemm, Load, Mem, Store
from .simulator import Program, ProgramBuilder, SimStats, Simulator

__version__ = "0.1.0"
__all__ = [
    "AcceleratorConfig", "preset_names",
    "Alu", "AluOp", "Finish", "Gemm", "Load", "Mem", "Store",
    "Program", "ProgramBuilder", "SimStats", "Simulator",
    "CodesignError", "ConfigError", "DeadlockError", "DramAccessError", "EncodingError", "ProgramError",
    "SramAccessError",
]
