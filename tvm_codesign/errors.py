"""Exceptions raised by tvm-codesign. Each names the offending field (and instruction) and the limit."""
from __future__ import annotations


class CodesignError(Exception):
    """Base class of every tvm-codesign error."""


class ConfigError(CodesignError, ValueError):
    """An accelerator configuration that is invalid or cannot be encoded."""

    def __init__(self, field: str, message: str):
        self.field, self.message = field, message
        super().__init__(f"config field '{field}': {message}")


class SpaceError(ConfigError):
    """A design space that cannot be read, or has no feasible point (the message says which and why)."""

    def __init__(self, message: str):
        self.field = "space"
        CodesignError.__init__(self, message)


class ProgramError(CodesignError, ValueError):
    """An instruction that is invalid for the configuration or fails at run time."""

    def __init__(self, index: int | None, field: str, message: str):
        self.index, self.field = index, field
        where = f"instruction {index}" if index is not None else "program"
        super().__init__(f"{where}, field '{field}': {message}")


class EncodingError(ProgramError):
    """A value that does not fit its instruction (or micro-op) field."""

    def __init__(self, field: str, value: int, message: str, index: int | None = None):
        self.value = value
        super().__init__(index, field, f"value {value} {message}")


class SramAccessError(ProgramError):
    """An access outside an on-chip buffer."""


class DramAccessError(ProgramError):
    """An access outside the DRAM image."""


class DeadlockError(ProgramError):
    """A dependency-token pop (or a full instruction queue) that can never be satisfied."""


class RaceError(ProgramError):
    """Two modules touch the same SRAM without a dependency token ordering them (hardware would race)."""
