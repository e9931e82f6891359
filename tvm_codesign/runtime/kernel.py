"""CompiledKernel: an accelerator program plus its DRAM layout; runs on numpy arrays or raw pointers.

DRAM image: the function's parameters first (each at a 4 KiB-aligned offset), then constants (micro-op
kernels, zero pages). A kernel serialises to a string blob that the compiled TVM module embeds, so a
module is self-contained.

Image groups: a kernel compiled for one group of images (n = the config's batch) runs ``groups`` of them in one
batched simulator pass (``run_pointers(addrs, groups, batched)``): the parameters whose bit is set in ``batched``
hold every group along axis 1 of their packed layout (G, groups * n_blocks, ...), the others are shared.
"""
from __future__ import annotations

import base64
import ctypes
import json
import zlib
from dataclasses import dataclass, field

import numpy as np

from ..hardware import packing
from ..hardware.config import AcceleratorConfig
from ..hardware.isa import Mem
from ..simulator import Program, Simulator, SimStats
from ..simulator.dram import packed, sram_type


@dataclass
class ParamSpec:
    name: str
    shape: tuple
    dtype: str
    offset: int
    role: str = "unused"   # in | out | unused
    mem: str = ""          # the memory type its DMAs move (INP, WGT, ACC, OUT): packed modes pack INP / WGT

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


@dataclass
class CompiledKernel:
    config: AcceleratorConfig
    program: Program
    params: list
    dram_bytes: int
    consts: list = field(default_factory=list)   # [(offset, bytes)]
    meta: dict = field(default_factory=dict)
    last_stats: SimStats | None = None

    def __post_init__(self):
        self._packed: dict = {}  # param name -> (its last source bytes, their packed form): weights pack once
        self._sim = Simulator(self.config)
        self._image = np.zeros(self.dram_bytes, np.uint8)
        for off, blob in self.consts:
            self._image[off:off + len(blob)] = np.frombuffer(blob, np.uint8)

    @property
    def instructions(self) -> int:
        return len(self.program)

    def disassemble(self) -> str:
        return self.program.disassemble()

    def run(self, *arrays: np.ndarray) -> SimStats:
        """Run on numpy arrays in parameter order; outputs are written in place."""
        if len(arrays) != len(self.params):
            raise TypeError(f"kernel takes {len(self.params)} arrays ({[p.name for p in self.params]}), "
                            f"got {len(arrays)}")
        views = []
        for p, a in zip(self.params, arrays):
            if not isinstance(a, np.ndarray) or tuple(a.shape) != tuple(p.shape) or a.dtype != np.dtype(p.dtype):
                raise TypeError(f"parameter {p.name} must be a {p.dtype} array of shape {tuple(p.shape)}, got "
                                f"{getattr(a, 'dtype', type(a))} {getattr(a, 'shape', '')}")
            if not a.flags.c_contiguous:
                raise TypeError(f"parameter {p.name} must be C-contiguous")
            views.append(a.reshape(-1).view(np.uint8))
        return self._run_views(views)

    def run_pointers(self, addrs: list[int], groups: int = 1, batched: int = 0) -> SimStats:
        """Run on raw parameter addresses (the TVM packed-function entry); ``groups`` image groups in one pass,
        parameter j holding all of them if bit j of ``batched`` is set (module docstring)."""
        if groups < 1:
            raise ValueError(f"groups must be >= 1, got {groups}")
        sizes = [p.nbytes * (groups if batched >> j & 1 else 1) for j, p in enumerate(self.params)]
        views = [np.ctypeslib.as_array((ctypes.c_uint8 * n).from_address(a)) if n else np.zeros(0, np.uint8)
                 for n, a in zip(sizes, addrs)]
        return self._run_views(views, groups, batched)

    def _run_views(self, views, groups: int = 1, batched: int = 0) -> SimStats:
        """One DRAM image per group (2-D when groups > 1): batched parameters split by group, the rest copied to
        every group; stats are the groups' run one after another (``Simulator.run``)."""
        if groups > 1:  # zeros (pages the OS zeroes on first touch), then the constants: the image, per group
            dram = np.zeros((groups, self.dram_bytes), np.uint8)
            for off, blob in self.consts:
                dram[:, off:off + len(blob)] = np.frombuffer(blob, np.uint8)
        else:
            dram = self._image.copy()
        rows = dram.reshape(groups, -1)
        at = lambda p, n: rows[:, p.offset:p.offset + n].reshape(groups, p.shape[0], -1)  # (groups, G, bytes)
        by_group = lambda p, v: v.reshape(p.shape[0], groups, -1).transpose(1, 0, 2)  # full array, by group
        # weights and micro-ops (constants) the same in every group: each group's weights need not be copied
        first = groups > 1 and not any(batched >> j & 1 and p.mem in ("WGT", "UOP") for j, p in enumerate(self.params))
        for j, (p, v) in enumerate(zip(self.params, views)):
            if p.role != "in":
                continue
            b = self._stage(p, v)  # packed modes: every group's elements packed in one go
            if batched >> j & 1:
                at(p, b.size // groups)[...] = by_group(p, b)
            else:  # shared weights: the first group's row only (the simulator reads them there)
                rows[:1 if first and p.mem == "WGT" else groups, p.offset:p.offset + b.size] = b
        self.last_stats = self._sim.run(self.program, dram, shared_in_first=first)
        for j, (p, v) in enumerate(zip(self.params, views)):
            if p.role == "out" and batched >> j & 1:
                by_group(p, v)[...] = at(p, p.nbytes)
            elif p.role == "out":
                v[...] = rows[0, p.offset:p.offset + p.nbytes]
        _LAST[0] = self.last_stats
        return self.last_stats

    def _stage(self, p: ParamSpec, v: np.ndarray) -> np.ndarray:
        """The DRAM bytes of an input parameter: as given, or packed for a narrow / sparse mode
        (hardware/packing.py; a value outside the mode's range raises ValueError naming the parameter)."""
        if not (p.mem and packed(self.config, Mem[p.mem])):
            return v
        hit = self._packed.get(p.name)
        if hit is not None and np.array_equal(hit[0], v):
            return hit[1]
        mem = Mem[p.mem]
        try:
            b = packing.encode(self.config, p.mem.lower(), v.view(np.int8).reshape((-1,) + sram_type(self.config, mem)[1]))
        except ValueError as e:
            raise ValueError(f"parameter {p.name} cannot run in mode {self.config.mode}: {e}") from None
        self._packed[p.name] = (v.copy(), b.reshape(-1))
        return b.reshape(-1)

    def prepare(self) -> None:
        """Decode the program once ahead of the first call: run it on the constant DRAM image (inputs zero), which
        builds the functional plans, times it and checks it for races; those depend only on the instructions and
        micro-ops, so every later run reuses them (``compile`` and ``load`` call this)."""
        self._sim.run(self.program, self._image.copy())

    def time(self) -> SimStats:
        """Timing, energy and area without data."""
        return self._sim.time(self.program)

    # ----- serialisation ----------------------------------------------------------------------
    def to_blob(self) -> str:
        head = {"config": self.config.to_dict(), "dram_bytes": self.dram_bytes, "meta": self.meta,
                "params": [[p.name, list(p.shape), p.dtype, p.offset, p.role, p.mem] for p in self.params],
                "consts": [[off, len(b)] for off, b in self.consts]}
        hb = json.dumps(head).encode()
        body = len(hb).to_bytes(4, "little") + hb + b"".join(b for _, b in self.consts) + self.program.encode()
        return base64.b64encode(zlib.compress(body, 6)).decode()

    @classmethod
    def from_blob(cls, blob: str) -> "CompiledKernel":
        body = zlib.decompress(base64.b64decode(blob))
        n = int.from_bytes(body[:4], "little")
        head = json.loads(body[4:4 + n])
        pos, consts = 4 + n, []
        for off, size in head["consts"]:
            consts.append((off, body[pos:pos + size]))
            pos += size
        cfg = AcceleratorConfig.from_dict(head["config"])
        params = [ParamSpec(nm, tuple(sh), dt, off, role, *rest) for nm, sh, dt, off, role, *rest in head["params"]]
        return cls(cfg, Program.decode(cfg, body[pos:]), params, head["dram_bytes"], consts, head["meta"])


_LAST: list = [None]


def last_stats() -> SimStats | None:
    """Stats of the most recent accelerator kernel run in this process."""
    return _LAST[0]
