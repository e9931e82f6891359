"""The hardware model: configuration, ISA, energy and area."""
from . import energy, isa
from .config import AcceleratorConfig, preset_names
from .isa import Alu, AluOp, Finish, Gemm, IsaLayout, Load, Mem, Module, Opcode, Store

__all__ = ["AcceleratorConfig", "preset_names", "energy", "isa", "Alu", "AluOp", "Finish", "Gemm", "IsaLayout",
           "Load", "Mem", "Module", "Opcode", "Store"]
