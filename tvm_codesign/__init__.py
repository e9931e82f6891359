"""tvm-codesign: a simulated VTA-style int8 accelerator as a TVM target, with a co-design autotuner."""
from . import logs  # noqa: F401 - the tvm_codesign logger at INFO from the first import, not the first compile
from .errors import (CodesignError, ConfigError, DeadlockError, DramAccessError, EncodingError, ProgramError,
                     RaceError, SpaceError, SramAccessError)
from .hardware import AcceleratorConfig, preset_names
from .hardware.isa import Alu, AluOp, Finish, Gemm, Load, Mem, Store
from .simulator import Program, ProgramBuilder, SimStats, Simulator

__version__ = "0.1.0"

# TVM-dependent parts load on first use (``import tvm`` takes seconds).
_LAZY = {"target": ("backend", "target"), "config_of": ("backend", "config_of"), "build": ("api", "build"),
         "Module": ("api", "Module"), "Workload": ("schedules.workload", "Workload"),
         "Knobs": ("schedules.knobs", "Knobs"), "KnobError": ("schedules.knobs", "KnobError"),
         "WorkloadError": ("schedules.workload", "WorkloadError"), "LoweringError": ("lowering.affine", "LoweringError"),
         "last_stats": ("runtime.kernel", "last_stats"), "compile": ("model", "compile"),
         "CompiledModel": ("model", "CompiledModel"),
         "load": ("model", "load"), "tune": ("tuner.run", "tune"),
         "TuneResult": ("tuner.run", "TuneResult"), "DesignSpace": ("hardware.space", "DesignSpace"),
         "load_module": ("export", "load_module")}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        mod, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{mod}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tvm_codesign' has no attribute {name!r}")
__all__ = [
    "AcceleratorConfig", "preset_names",
    "Alu", "AluOp", "Finish", "Gemm", "Load", "Mem", "Store",
    "Program", "ProgramBuilder", "SimStats", "Simulator",
    "CodesignError", "ConfigError", "DeadlockError", "RaceError", "DramAccessError", "EncodingError", "ProgramError",
    "SpaceError", "SramAccessError", *_LAZY,
]
