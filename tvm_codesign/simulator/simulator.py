"""Simulator: functional (bit-exact) plus timing runs of a Program, or timing only (no data).

Timing depends on the instruction stream alone, never on the data, so a program is timed once and its timeline
reused by every later run while the program's columns are unchanged (a changed program is timed again).
A batched run (a 2-D DRAM, one row per image group) is one functional pass; on the hardware the groups run one
after another, so its stats are the program's figures times the number of groups (``repeated``).
"""
from __future__ import annotations

import dataclasses
import weakref

import numpy as np

from ..errors import ProgramError
from ..hardware.config import AcceleratorConfig
from . import functional, timing
from .program import COLUMNS, Program
from .races import RaceChecker
from .stats import SimStats


_TIMELINES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _timeline(program: Program) -> timing.Timeline:
    """``timing.simulate`` once per program and content (a deadlock raises every time: nothing is kept)."""
    seen = _TIMELINES.get(program)
    stamp = b"".join(program.table[c].tobytes() for c in COLUMNS)  # the content, compared exactly
    if seen is None or seen[0] != stamp:
        seen = _TIMELINES[program] = (stamp, timing.simulate(program))
    return seen[1]


def _scaled(v, k: int):
    return {n: _scaled(x, k) for n, x in v.items()} if isinstance(v, dict) else v * k


def repeated(stats: SimStats, k: int) -> SimStats:
    """The stats of ``k`` back-to-back runs of one program: cycles, busy/idle, DRAM, instructions, MACs and
    energy times ``k`` (energy is linear in the activity counts and cycles), utilisation and area unchanged."""
    if k == 1:
        return stats
    return dataclasses.replace(
        stats, cycles=stats.cycles * k, busy=_scaled(stats.busy, k), idle=_scaled(stats.idle, k),
        dram_port_busy=stats.dram_port_busy * k, instructions=_scaled(stats.instructions, k),
        dram_read_bytes=_scaled(stats.dram_read_bytes, k), dram_write_bytes=_scaled(stats.dram_write_bytes, k),
        macs=stats.macs * k, energy_pj=_scaled(stats.energy_pj, k), activity=_scaled(stats.activity, k))


class Simulator:
    """Runs programs for one accelerator config. ``srams`` and ``timeline`` keep the last run's state."""

    def __init__(self, config: "AcceleratorConfig | str" = "vta_default"):
        self.config = AcceleratorConfig.load(config)
        self.srams: functional.Srams | None = None
        self.timeline: timing.Timeline | None = None

    def _check(self, program: Program) -> None:
        if not isinstance(program, Program):
            raise TypeError(f"expected a Program, got {type(program).__name__}")
        if program.config.key != self.config.key:
            raise ProgramError(None, "config", f"program built for {program.config.name} "
                               f"({program.config.key}), simulator is {self.config.name} ({self.config.key})")

    def run(self, program: Program, dram: np.ndarray, check_races: bool = True, shared_in_first: bool = False) -> SimStats:
        """Execute bit-exactly on ``dram`` (uint8, modified in place) and time the run. A 2-D ``dram``
        (groups, bytes) runs every group in one functional pass; the stats are those of the groups run one after
        another on the accelerator (``repeated``).

        The timing model runs first, so a deadlocked program raises before touching DRAM. With
        ``check_races``, SRAM accesses of different modules not ordered by tokens raise RaceError.
        ``shared_in_first``: the caller wrote the weights (and micro-ops) of every group in the first row only
        (``functional.execute``).
        """
        self._check(program)
        self.timeline = _timeline(program)
        checker = RaceChecker(self.config, program, self.timeline) if check_races else None
        self.srams = functional.execute(program, dram, races=checker, shared_in_first=shared_in_first)
        stats = SimStats.from_timeline(program, self.timeline)
        return repeated(stats, dram.shape[0]) if dram.ndim == 2 else stats

    def time(self, program: Program) -> SimStats:
        """Timing, activity, energy and area only: no data, no DRAM image."""
        self._check(program)
        self.timeline = _timeline(program)
        return SimStats.from_timeline(program, self.timeline)
