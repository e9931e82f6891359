"""The feasible points of a design space as arrays: what the search strategies choose from.

Each point carries its parameter values, its exact area, and a roofline-style prior of the network's latency
and energy, computed in numpy for the whole pool at once: padded GEMM blocks + ALU passes (II by operand, per
ALU lanes) + per-tile instruction overhead vs. DRAM bytes at the bandwidth less the per-burst request cycles
of long rows (simulator/dma.py), where an operand that does not fit in half its SRAM
(double buffering) makes the other one stream again; energy is MACs, DRAM bytes, SRAM accesses and static power
over the latency, priced per config by ``physical.costs``. It knows no schedule;
the XGBoost surrogates (``search.py``) learn the rest from evaluated points.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError, SpaceError
from .. import physical
from ..hardware.space import DesignSpace, sram_kib
from ..schedules.groups import alu_cycles, merge_columns
from .network import Layer

MAX_POOL = 1 << 18  # larger spaces are searched through a seeded sample of this many points


_TOO_WIDE = "config field 'alu_lanes': exceeds batch x block_out (one int32 lane per accumulator of a vector at most)"


def _too_wide(space: DesignSpace, idx: np.ndarray) -> np.ndarray:
    """Which points of ``idx`` have more ALU lanes than batch x block_out (vectorised; AcceleratorConfig
    rejects them the same way, this only spares building half of a space that searches alu_lanes)."""
    if "alu_lanes" not in space.params:
        return np.zeros(len(idx), bool)
    d = space.digits(idx)
    col = {f: np.asarray(c)[d[:, j]] for j, (f, c) in enumerate(space.params.items())}
    vector = col.get("batch", space.base.batch) * col.get("block_out", space.base.block_out)
    return col["alu_lanes"] > vector


class Pool:
    def __init__(self, space: DesignSpace, area_max: float | None = None, seed: int = 0,
                 sram_max: float | None = None, progress: bool = False):
        self.space = space
        self.limits = space.limits(area_max, sram_max)
        if space.size <= MAX_POOL:
            idx = np.arange(space.size)
        else:
            idx = np.unique(np.random.default_rng(seed).integers(0, space.size, MAX_POOL))
        self.fields = list(space.params)
        points, values, area, units, self.infeasible = [], [], [], [], 0
        invalid: dict = {}     # ConfigError / PhysicalError text -> (count, an example point's values)
        over = {"area": [0, np.inf], "sram": [0, np.inf]}  # count, smallest value seen
        too_wide = _too_wide(space, idx)  # more ALU lanes than a vector: invalid, known without building the config
        from tqdm.auto import tqdm
        with tqdm(total=len(idx), desc=f"feasible configs of {space.name}", unit="cfg", disable=not progress,
                  leave=False, mininterval=0.5) as bar:
            for n, (i, d) in enumerate(zip(idx.tolist(), space.digits(idx))):
                if n % 4096 == 4095:
                    bar.update(4096)
                vals = {f: c[k] for (f, c), k in zip(space.params.items(), d)}
                if too_wide[n]:
                    self.infeasible += 1
                    c, ex = invalid.get(_TOO_WIDE, (0, vals))
                    invalid[_TOO_WIDE] = (c + 1, ex)
                    continue
                try:
                    cfg = space.base.replace(name=f"{space.name}_{i}", **vals)
                except ConfigError as e:
                    self.infeasible += 1
                    c, ex = invalid.get(str(e), (0, vals))
                    invalid[str(e)] = (c + 1, ex)
                    continue
                try:
                    pc = physical.costs(cfg)
                except physical.PhysicalError as e:
                    self.infeasible += 1
                    c, ex = invalid.get(str(e), (0, vals))
                    invalid[str(e)] = (c + 1, ex)
                    continue
                a = pc["area_mm2"]["total"]
                if not space.feasible(cfg, self.limits, a):
                    self.infeasible += 1
                    amax = self.limits["area_mm2_max"]
                    kind, v = ("area", a) if amax is not None and a > amax else ("sram", sram_kib(cfg))
                    over[kind][0] += 1
                    over[kind][1] = min(over[kind][1], v)
                    continue
                points.append(i)
                values.append([float(vals[f]) for f in self.fields])
                area.append(a)
                u = pc["unit_pj"]
                units.append([u["mac"], (u["dram_read_byte"] + u["dram_write_byte"]) / 2 + u["dma_per_dram_byte"],
                              u["inp_read_byte"], u["inp_write_byte"], u["wgt_read_byte"], u["acc_read_byte"],
                              u["acc_write_byte"], u["wiring_per_gemm_cycle"], pc["leakage_mw"] + pc["dram_background_mw"]])
        if not points:
            raise SpaceError(self._none_feasible(len(idx), invalid, over))
        self.points = np.array(points, np.int64)
        self.values = np.array(values, np.float64).reshape(len(points), len(self.fields))
        self.area = np.array(area)
        # per point: MAC, DRAM byte (+ DMA), inp read/write, wgt read, acc read/write byte, wiring per GEMM cycle (pJ),
        # static power (mW)
        self.units = np.array(units, np.float64).reshape(len(points), 9)
        self.position = {p: j for j, p in enumerate(points)}

    def _none_feasible(self, n: int, invalid: dict, over: dict) -> str:
        """Why no point of the space is feasible: invalid configs (the ConfigError naming the field or ISA
        opcode that overflows) and limits broken, each with a count."""
        said = []
        for msg, (c, vals) in sorted(invalid.items(), key=lambda kv: -kv[1][0])[:3]:
            ex = ", ".join(f"{f}={v:g}" if isinstance(v, float) else f"{f}={v}" for f, v in vals.items())
            said.append(f"{c} {'is not a valid or buildable config' if c == 1 else 'are not valid or buildable configs'} "
                        f"({msg}; e.g. {ex})")
        if len(invalid) > 3:
            said.append(f"{sum(c for c, _ in list(invalid.values())[3:])} more are invalid for other reasons")
        amax, smax = self.limits["area_mm2_max"], self.limits["sram_kib_max"]
        if over["area"][0]:
            said.append(f"{over['area'][0]} exceed{'s' * (over['area'][0] == 1)} area <= {amax} mm^2 (the smallest is {over['area'][1]:.3g} mm^2)")
        if over["sram"][0]:
            said.append(f"{over['sram'][0]} exceed{'s' * (over['sram'][0] == 1)} on-chip SRAM <= {smax} KiB (the smallest has "
                        f"{over['sram'][1]:g} KiB)")
        return f"design space {self.space.name!r} has no feasible point: of its {n} points, " + "; ".join(said)

    def __len__(self) -> int:
        return len(self.points)

    def column(self, field: str) -> np.ndarray:
        if field in self.fields:
            return self.values[:, self.fields.index(field)]
        base = self.space.base
        if field == "alu_lanes" and base.alu_lanes == base.full_alu_lanes:  # stays as wide as the vector
            return self.column("batch") * self.column("block_out")
        return np.full(len(self), float(getattr(base, field)))

    def prior(self, layers: list[Layer]) -> tuple[np.ndarray, np.ndarray]:
        """(latency s, energy J) roofline estimates of the network on every point."""
        c = self.column
        B, BI, BO = c("batch"), c("block_in"), c("block_out")
        ib, wb, ab, ob = c("inp_bits") / 8, c("wgt_bits") / 8, c("acc_bits") / 8, c("out_bits") / 8
        cycles = np.zeros(len(self))
        dram = np.zeros(len(self))
        macs = np.zeros(len(self))
        half = {b: c(f"{b}_buffer_bytes") / 2 for b in ("inp", "wgt", "acc")}  # double-buffered
        per_insn = c("issue_cycles") + c("dram_latency")
        passes = np.ceil(B * BO / c("alu_lanes"))
        # long rows: every burst of dma_burst_beats beats also pays dma_request_cycles on the port
        bw = c("dram_bandwidth") * c("dma_burst_beats") / (c("dma_burst_beats") + c("dma_request_cycles"))
        u_mac, u_dram, inp_rd, inp_wr, wgt_rd, acc_rd, acc_wr, u_wire, static_mw = self.units.T
        sram_pj = np.zeros(len(self))
        for ly in layers:
            wl = ly.workload
            ac = alu_cycles(wl, c("alu_ii_imm"), c("alu_ii_vec"), passes, c("alu_stages"))  # per output vector
            k = merge_columns(wl, BI, BO, ac)  # groups per kernel group (schedules/groups.py)
            g = np.ceil(wl.groups / k)
            nb, cib, cob = np.ceil(wl.n / B), np.ceil(k * wl.ci / BI), np.ceil(k * wl.co / BO)
            vec = g * nb * cob * wl.oh * wl.ow
            gemm = vec * cib * wl.kh * wl.kw
            alu = vec * (ac + 1)
            out_b = ob if wl.out_dtype == "int8" else ab
            rh, rw = wl.input_read  # a 1x1 strided conv reads every stride-th input
            in_b = g * nb * cib * rh * rw * B * BI * ib
            w_b = g * cob * cib * wl.kh * wl.kw * BO * BI * wb
            # what does not fit on chip is streamed again: the cheaper of keeping weights or inputs resident
            b = np.minimum(w_b + in_b * np.ceil(w_b / half["wgt"]), in_b + w_b * np.ceil(in_b / half["inp"]))
            b = b + vec * B * BO * out_b
            tiles = np.ceil(vec * B * BO * ab / half["acc"]) * np.ceil(np.minimum(w_b / half["wgt"], in_b / half["inp"]))
            overhead = tiles * (6 + len(wl.epilogue)) * per_insn
            cycles += ly.count * np.maximum(gemm + alu + overhead, b / bw)
            dram += ly.count * b
            # SRAM traffic: every GEMM cycle reads an input and a weight block and updates an accumulator
            # block; every ALU pass reads and writes the accumulator tile; DRAM loads are written on chip
            acc_vec = B * BO * ab
            sram_pj += ly.count * (gemm * (B * BI * ib * inp_rd + BO * BI * wb * wgt_rd + acc_vec * (acc_rd + acc_wr)
                                           + u_wire)
                                   + vec * len(wl.epilogue) * acc_vec * (acc_rd + acc_wr) + b * inp_wr)
            macs += ly.count * gemm * B * BI * BO
        latency = cycles / (c("clock_mhz") * 1e6)
        joules = (macs * u_mac + dram * u_dram + sram_pj) * 1e-12 + static_mw * 1e-3 * latency
        return latency, joules

    def features(self, lat: np.ndarray, en: np.ndarray) -> np.ndarray:
        """Surrogate inputs: log2 parameter values, the log prior (``prior``'s latency and energy) and log area."""
        return np.column_stack([np.log2(self.values), np.log(lat), np.log(en), np.log(self.area)])
