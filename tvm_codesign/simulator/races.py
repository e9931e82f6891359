"""Race detection: instructions of different modules that touch the same SRAM element (one writing)
must be ordered by the timing model's tokens: the later one (in program order) starts only after the
earlier one ends. The functional run reports each instruction's exact ranges; a violation raises
RaceError naming both instructions (a program that is right in simulation but would race on hardware).
"""
from __future__ import annotations

import numpy as np

from ..errors import RaceError
from ..hardware.isa import Module, Opcode


class RaceChecker:
    def __init__(self, cfg, program, timeline):
        self.start, self.end = timeline.start.tolist(), timeline.end.tolist()
        self.module = program.table["module"].tolist()
        self.opcode = program.table["opcode"].tolist()
        depth = {"uop": cfg.uop_depth, "inp": cfg.inp_depth, "wgt": cfg.wgt_depth, "acc": cfg.acc_depth}
        # per module: latest end time (and instruction) of a write / read of each element
        self.w = {b: np.full((3, n), -1, np.int64) for b, n in depth.items()}
        self.r = {b: np.full((3, n), -1, np.int64) for b, n in depth.items()}
        self.wi = {b: np.full((3, n), -1, np.int64) for b, n in depth.items()}
        self.ri = {b: np.full((3, n), -1, np.int64) for b, n in depth.items()}

    def _conflict(self, i, buf, lo, hi, tables, what):
        m, s = self.module[i], self.start[i]
        ends, idx = tables
        for other in range(3):
            if other == m or hi <= lo:
                continue
            seg = ends[buf][other, lo:hi]
            k = int(seg.argmax())
            if seg[k] > s:
                j = int(idx[buf][other, lo + k])
                raise RaceError(i, "deps", f"{Opcode(self.opcode[i]).name} on the {Module(m).name.lower()} module "
                                f"{what} {buf}[{lo + k}] at cycle {s}, but instruction {j} "
                                f"({Opcode(self.opcode[j]).name}, {Module(other).name.lower()} module) uses it until "
                                f"cycle {seg[k]}: a dependency token is missing between them")

    def access(self, i: int, reads: list, writes: list) -> None:
        """reads / writes: [(buffer name, lo, hi)] element ranges of instruction i."""
        m, e = self.module[i], self.end[i]
        for buf, lo, hi in reads:
            self._conflict(i, buf, lo, hi, (self.w, self.wi), "reads")
        for buf, lo, hi in writes:
            self._conflict(i, buf, lo, hi, (self.w, self.wi), "writes")
            self._conflict(i, buf, lo, hi, (self.r, self.ri), "writes")
        for buf, lo, hi in reads:
            np.maximum(self.r[buf][m, lo:hi], e, out=self.r[buf][m, lo:hi])
            self.ri[buf][m, lo:hi] = i
        for buf, lo, hi in writes:
            self.w[buf][m, lo:hi] = e
            self.wi[buf][m, lo:hi] = i
