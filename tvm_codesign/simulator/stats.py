"""SimStats: what one simulated run reports (cycles, module busy/idle, bytes, MACs, energy, area)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .. import physical
from ..hardware.config import AcceleratorConfig
from .activity import activity
from .program import Program
from .timing import Timeline


@dataclass
class SimStats:
    config: str
    clock_mhz: float
    cycles: int
    busy: dict
    idle: dict
    dram_port_busy: int
    instructions: dict
    dram_read_bytes: dict
    dram_write_bytes: dict
    macs: int
    utilisation: float
    energy_pj: dict
    area_mm2: dict
    activity: dict
    physical: str = ""    # why the config cannot be built (clock, DRAM part, SRAM grid): energy and area are NaN


    @classmethod
    def from_timeline(cls, program: Program, tl: Timeline) -> "SimStats":
        cfg: AcceleratorConfig = program.config
        act = activity(program)
        cyc = max(tl.cycles, 1)
        reason = physical.why_infeasible(cfg) or ""
        nan = {"total": float("nan")}
        return cls(cfg.name, cfg.clock_mhz, tl.cycles, dict(tl.busy), {m: tl.cycles - b for m, b in tl.busy.items()},
                   tl.dram_port_busy, program.counts(), act["dram_read_bytes"], act["dram_write_bytes"],
                   act["macs"], act["macs"] / (cyc * cfg.macs_per_cycle),
                   nan if reason else physical.energy_pj(cfg, act, tl.cycles),
                   nan if reason else physical.area_mm2(cfg), act, reason)

    @property
    def latency_us(self) -> float:
        return self.cycles / self.clock_mhz

    @property
    def energy_uj(self) -> float:
        return self.energy_pj["total"] / 1e6

    @property
    def power_mw(self) -> float:
        return self.energy_pj["total"] / max(self.latency_us, 1e-12) / 1e3

    @property
    def dram_bytes(self) -> int:
        return sum(self.dram_read_bytes.values()) + sum(self.dram_write_bytes.values())

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(latency_us=self.latency_us, energy_uj=self.energy_uj, power_mw=self.power_mw)
        return d

    def summary(self) -> str:
        pct = lambda v: f"{100 * v / max(self.cycles, 1):5.1f}%"
        lines = [
            f"config {self.config}: {self.cycles:,} cycles = {self.latency_us:,.1f} us at {self.clock_mhz:g} MHz",
            f"  MACs {self.macs:,}  utilisation {100 * self.utilisation:.1f}%  instructions "
            + " ".join(f"{k}={v}" for k, v in self.instructions.items()),
            "  busy  " + "  ".join(f"{m} {b:,} ({pct(b)})" for m, b in self.busy.items())
            + f"  dram-port {self.dram_port_busy:,} ({pct(self.dram_port_busy)})",
            "  DRAM read  " + " ".join(f"{k} {v:,} B" for k, v in self.dram_read_bytes.items())
            + " | write " + " ".join(f"{k} {v:,} B" for k, v in self.dram_write_bytes.items()),
            f"  energy {self.energy_uj:,.2f} uJ (" + ", ".join(
                f"{k} {100 * v / max(self.energy_pj['total'], 1e-12):.0f}%" for k, v in self.energy_pj.items()
                if k != "total") + f")  power {self.power_mw:,.1f} mW  area {self.area_mm2['total']:.2f} mm2",
        ]
        if self.physical:
            lines.append(f"  not buildable, energy and area unknown: {self.physical}")
        return "\n".join(lines)
