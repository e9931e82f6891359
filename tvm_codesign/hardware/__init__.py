"""The hardware model: configuration and ISA (physical costs: ``tvm_codesign.physical``)."""
from . import isa
from .config import AcceleratorConfig, preset_names
from .isa import Alu, AluOp, Finish, Gemm, IsaLayout, Load, Mem, Module, Opcode, Store

__all__ = ["AcceleratorConfig", "preset_names", "isa", "Alu", "AluOp", "Finish", "Gemm", "IsaLayout",
           "Load", "Mem", "Module", "Opcode", "Store"]
