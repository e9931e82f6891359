"""AcceleratorConfig: the accelerator's parameters as data (``targets/*.json``), validated on construction.

Presets live in ``targets/`` (``preset_names``). Configs written by the tuner live apart from them, under
``<out>/tuned/``: they load by path from anywhere, or by name from the tuned directories (``tuned_dirs``)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from functools import cached_property
from pathlib import Path

from ..errors import ConfigError
from . import isa, modes
from .fields import FIELD_RULES, PHYSICAL_DEFAULTS, RENAMED, field_error, pow2 as _pow2
from .targets import preset_names, target_dirs, tuned_dirs

__all__ = ["AcceleratorConfig", "RENAMED", "field_error", "preset_names", "target_dirs", "tuned_dirs"]

@dataclasses.dataclass(frozen=True)
class AcceleratorConfig:
    """A VTA-style int8 accelerator. Defaults are the original VTA Pynq configuration.

    Sizes in bytes, bandwidth in bytes/cycle, latencies in cycles. The ISA field widths
    (``isa_layout``) are derived from these numbers and checked to fit ``insn_bits``. ``schedules`` is not
    hardware: the directory of this config's tuned schedules (``schedules/store.py``), searched first; in a
    JSON file it is relative to that file.
    """

    name: str = "vta_default"
    description: str = ""
    # GEMM core: (batch x block_in) . (block_out x block_in)^T per cycle
    batch: int = 1
    block_in: int = 16
    block_out: int = 16
    inp_bits: int = 8
    wgt_bits: int = 8
    acc_bits: int = 32
    out_bits: int = 8
    # on-chip SRAMs
    uop_buffer_bytes: int = 32 * 1024
    inp_buffer_bytes: int = 32 * 1024
    wgt_buffer_bytes: int = 256 * 1024
    acc_buffer_bytes: int = 128 * 1024
    # memory system and clock
    dram_bandwidth: float = 8.0
    dram_latency: int = 16
    clock_mhz: float = 100.0
    # DMA: AXI bursts of at most dma_burst_beats beats of dram_bandwidth bytes, each request paying
    # dma_request_cycles on the port, up to dma_outstanding requests in flight (simulator/dma.py cites VTA)
    dma_burst_beats: int = 16
    dma_request_cycles: int = 1
    dma_outstanding: int = 16
    # physical design (physical/): technology node (nm) and DRAM part; "" derives the cheapest listed part that
    # delivers dram_bandwidth x clock (physical/dram.py)
    tech_nm: int = 45
    dram_interface: str = ""
    # pipeline timing
    issue_cycles: int = 4
    gemm_fill_cycles: int = 6
    alu_fill_cycles: int = 4
    # ALU: cycles per micro-op iteration with an immediate / a vector (register) operand, and int32 lanes
    # (None: batch x block_out, one per accumulator of a vector as in VTA); simulator/activity.py cites VTA
    alu_ii_imm: int = 1
    alu_ii_vec: int = 2
    alu_lanes: int | None = None
    # ALU stages: ALU instructions one pass over the accumulators applies in a row (1: VTA's ALU; more: a chained
    # ALU, simulator/chains.py, each stage a whole lane datapath, physical/logic.py)
    alu_stages: int = 1
    queue_depth: int = 8
    # precision and sparsity (hardware/modes.py): the narrowest operand the GEMM core's fusion units multiply
    # (8: int8 only; 4 or 2: Bit Fusion-style fused bricks), 2:4 structured weight sparsity support, and the mode a
    # program runs in ("" = w8a8 dense; a mode view of the hardware, ``with_mode``, sets it)
    gemm_min_bits: int = 8
    sparse_2_4: bool = False
    mode: str = ""
    # instruction encoding
    insn_bits: int = 128
    dram_addr_bits: int = 32
    dram_stride_bits: int = 16
    loop_iter_bits: int = 14
    pad_bits: int = 4
    imm_bits: int = 16
    # where the tuner stored this config's schedules (not hardware: not part of ``key``)
    schedules: str = ""

    def __post_init__(self):
        if self.alu_lanes is None:  # as wide as a vector: batch x block_out (VTA)
            object.__setattr__(self, "alu_lanes", self.full_alu_lanes if _pow2(self.batch) and _pow2(self.block_out)
                               else 1)
        for f in ("dram_bandwidth", "clock_mhz"):  # 8 and 8.0 are the same hardware (and the same key)
            v = getattr(self, f)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                object.__setattr__(self, f, float(v))
        self._validate()
        if self.mode:  # a mode view shares its hardware's instruction layout (checked when the hardware is built)
            return
        _ = self.isa_layout  # raises ConfigError if an opcode does not fit insn_bits
        for m in self.modes[1:]:  # every mode's view must be a valid config too (whole-byte elements, ...)
            try:
                self.with_mode(m)
            except ConfigError as e:
                raise ConfigError(e.field, f"in mode {m}: {e.message}") from None

    # ----- validation -------------------------------------------------------------------------
    def _validate(self):
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError("name", "must be a non-empty string")
        if not isinstance(self.schedules, str):
            raise ConfigError("schedules", f"{self.schedules!r} must be a directory path (a string)")
        for f in FIELD_RULES:
            err = field_error(f, getattr(self, f))
            if err:
                raise ConfigError(f, err)
        if self.out_bits > self.acc_bits:
            raise ConfigError("out_bits", f"{self.out_bits} exceeds acc_bits {self.acc_bits}")
        modes.check(self)
        for f, elem in (("inp_buffer_bytes", self.inp_elem_bytes), ("wgt_buffer_bytes", self.wgt_row_bytes),
                        ("acc_buffer_bytes", self.acc_elem_bytes)):
            v = getattr(self, f)
            if v < elem:
                raise ConfigError(f, f"{v} B cannot hold one {elem} B element (one tile); need >= {elem}")
        if self.imm_bits > self.acc_bits:
            raise ConfigError("imm_bits", f"{self.imm_bits} exceeds acc_bits {self.acc_bits}")
        if self.uop_buffer_bytes < self.uop_bytes:
            raise ConfigError("uop_buffer_bytes", f"{self.uop_buffer_bytes} B cannot hold one "
                              f"{self.uop_bytes} B micro-op")
        if self.alu_lanes > self.full_alu_lanes:
            raise ConfigError("alu_lanes", f"{self.alu_lanes} exceeds batch x block_out = {self.full_alu_lanes}: "
                              "the ALU has at most one int32 lane per accumulator of a vector")
        burst = self.dma_burst_beats * self.dram_bandwidth
        if burst > 4096:
            raise ConfigError("dma_burst_beats", f"{self.dma_burst_beats} beats of {self.dram_bandwidth:g} B = "
                              f"{burst:g} B exceeds 4096 B: an AXI burst may not cross a 4 KiB boundary")

    # ----- derived sizes ----------------------------------------------------------------------
    @cached_property
    def mode_spec(self) -> modes.Mode:
        """The operand precisions and sparsity this config's programs run in (``mode``; "" = w8a8 dense)."""
        return modes.parse(self.mode)

    @property
    def inp_dram_bits(self) -> int:
        """Bits per input scalar in DRAM and SRAM: the mode's activation width (packed below 8 bits)."""
        return self.mode_spec.a_bits if self.mode else self.inp_bits

    @property
    def wgt_dram_bits(self) -> int:
        """Bits per dense weight scalar in DRAM: the mode's weight width; 2:4 sparse keeps half the values plus a
        2-bit position each: (w + 2) / 2."""
        w = self.mode_spec.w_bits if self.mode else self.wgt_bits
        return (w + modes.META_BITS) // 2 if self.mode_spec.sparse else w

    @property
    def inp_elem_bytes(self) -> int:
        """Bytes of one input element: BATCH x BLOCK_IN scalars (packed in a narrow mode)."""
        return self.batch * self.block_in * self.inp_dram_bits // 8

    @property
    def wgt_elem_bytes(self) -> int:
        """DRAM bytes of one weight element: BLOCK_OUT x BLOCK_IN scalars (packed; 2:4 sparse: kept values then
        their positions)."""
        return self.block_out * self.block_in * self.wgt_dram_bits // 8

    @property
    def wgt_row_bytes(self) -> int:
        """Weight SRAM bytes of one element (the kept values; a 2:4 core keeps their positions beside them in a
        metadata SRAM of the same depth, ``wgt_meta_bytes`` per element)."""
        return self.wgt_elem_bytes - self.wgt_meta_bytes

    @property
    def wgt_meta_bytes(self) -> int:
        return self.block_out * self.block_in // 2 * modes.META_BITS // 8 if self.mode_spec.sparse else 0

    @property
    def acc_elem_bytes(self) -> int:
        """Bytes of one accumulator element: BATCH x BLOCK_OUT."""
        return self.batch * self.block_out * self.acc_bits // 8

    @property
    def out_elem_bytes(self) -> int:
        """Bytes of one (narrowed) output element: BATCH x BLOCK_OUT."""
        return self.batch * self.block_out * self.out_bits // 8

    @property
    def inp_depth(self) -> int:
        return self.inp_buffer_bytes // self.inp_elem_bytes

    @property
    def wgt_depth(self) -> int:
        return self.wgt_buffer_bytes // self.wgt_row_bytes

    @property
    def acc_depth(self) -> int:
        return self.acc_buffer_bytes // self.acc_elem_bytes

    @property
    def uop_depth(self) -> int:
        return self.uop_buffer_bytes // self.uop_bytes

    @property
    def uop_fields(self) -> tuple[int, int, int]:
        """Micro-op index widths (dst=acc, src=inp or acc for ALU, wgt) in bits; a mode view uses its hardware's
        (every mode's buffers are at most as deep as w8a8's, so one micro-op format serves them all)."""
        inp, wgt = self.inp_depth, self.wgt_depth
        if self.mode:  # the hardware's (w8a8) depths, from the fields: no hardware object while validating
            bi = self.block_in // self.mode_spec.factor
            inp = self.inp_buffer_bytes // (self.batch * bi * self.inp_bits // 8)
            wgt = self.wgt_buffer_bytes // (self.block_out * bi * self.wgt_bits // 8)
        acc = (self.acc_depth - 1).bit_length()
        src = max((inp - 1).bit_length(), acc)
        return acc, src, (wgt - 1).bit_length()

    @property
    def uop_bytes(self) -> int:
        """Micro-op word size: the index fields rounded up to 4 or 8 bytes."""
        return 4 if sum(self.uop_fields) <= 32 else 8

    @property
    def full_alu_lanes(self) -> int:
        """int32 lanes of an ALU as wide as a vector (batch x block_out): one pass per micro-op iteration."""
        return self.batch * self.block_out

    @property
    def alu_passes(self) -> int:
        """Passes of the ALU over one batch x block_out vector: ceil(vector / alu_lanes)."""
        return -(-self.full_alu_lanes // self.alu_lanes)

    @property
    def macs_per_cycle(self) -> int:
        return self.batch * self.block_in * self.block_out

    @property
    def peak_gops(self) -> float:
        """Peak throughput in GOPS (1 MAC = 2 ops)."""
        return 2 * self.macs_per_cycle * self.clock_mhz / 1e3

    # ----- precision / sparsity modes (hardware/modes.py) --------------------------------------
    @cached_property
    def modes(self) -> tuple[str, ...]:
        """The modes this hardware runs, native first: "" (w8a8 dense), then e.g. "w4a4", "w2a8", "w8a8s"."""
        return modes.supported(self.hardware)

    @cached_property
    def hardware(self) -> "AcceleratorConfig":
        """The physical accelerator behind a mode view (itself when ``mode`` is "")."""
        if not self.mode:
            return self
        m = self.mode_spec
        return dataclasses.replace(self, mode="", block_in=self.block_in // m.factor)

    def with_mode(self, mode: str) -> "AcceleratorConfig":
        """This hardware running in ``mode`` ("w4a4", "w2a8", "w8a8s", ...): a config whose GEMM tile is the
        mode's (block_in x the mode's products per 8-bit multiplier) and whose buffers hold packed scalars.
        Programs, schedules and the cost models work on it unchanged; ``hardware`` gives the physical design back.
        ConfigError if the hardware does not support the mode."""
        hw = self.hardware
        name = modes.canonical(mode)
        if name not in hw.modes:
            raise ConfigError("mode", f"{mode!r} is not a mode of {hw.name} (gemm_min_bits {hw.gemm_min_bits}, "
                              f"sparse_2_4 {hw.sparse_2_4}); its modes: {', '.join(modes.label(m) for m in hw.modes)}")
        if not name:
            return hw
        return dataclasses.replace(hw, mode=name, block_in=hw.block_in * modes.parse(name).factor)

    @property
    def mode_index(self) -> int:
        """The mode's number in the ISA's GEMM/LOAD ``mode`` field (its position in ``hardware.modes``)."""
        return self.hardware.modes.index(self.mode)

    @cached_property
    def isa_layout(self) -> isa.IsaLayout:
        """Per-opcode instruction field widths derived from this config; a mode view uses its hardware's, so every
        mode's instructions decode with one layout (the ``mode`` field at the same position)."""
        return self.hardware.isa_layout if self.mode else isa.IsaLayout.for_config(self)

    # ----- identity and (de)serialisation -----------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "AcceleratorConfig":
        if not isinstance(d, dict):
            raise ConfigError("<root>", f"expected a JSON object, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        for k in d:
            if k in RENAMED:
                raise ConfigError(k, RENAMED[k])
            if k not in known:
                raise ConfigError(k, f"unknown field; known fields: {', '.join(sorted(known))}")
        cfg = cls(**d)
        if cfg.mode and cfg.hardware.with_mode(cfg.mode) != cfg:  # a view must be one its hardware makes
            raise ConfigError("mode", f"{cfg.mode} view with block_in {cfg.block_in} is not a mode of its hardware "
                              f"(block_in {cfg.hardware.block_in}); build views with with_mode")
        return cfg

    def replace(self, **changes) -> "AcceleratorConfig":
        """A copy with some fields changed (validated). An ALU as wide as the vector stays as wide when
        batch or block_out change (unless ``alu_lanes`` is given)."""
        for k in changes:
            if k in RENAMED:
                raise ConfigError(k, RENAMED[k])
        if "alu_lanes" not in changes and self.alu_lanes == self.full_alu_lanes:
            changes["alu_lanes"] = None
        return dataclasses.replace(self, **changes)

    @property
    def hardware_dict(self) -> dict:
        """The fields that define the hardware (everything but name, description and schedules)."""
        d = self.to_dict()
        d.pop("name"), d.pop("description"), d.pop("schedules")
        return d

    @cached_property
    def key(self) -> str:
        """Stable short identity usable in file names, e.g. ``1x16x16-3f9a2c1b``. The physical-design and precision
        fields (``tech_nm``, ``dram_interface``, ``gemm_min_bits``, ``sparse_2_4``, ``mode``) enter it only when they
        differ from their defaults, so the keys (and stored schedules) of configs written before them stay valid."""
        hw = self.hardware_dict
        for f in PHYSICAL_DEFAULTS:
            if hw[f] == PHYSICAL_DEFAULTS[f]:
                del hw[f]
        blob = json.dumps(hw, sort_keys=True).encode()
        return f"{self.batch}x{self.block_in}x{self.block_out}-{hashlib.sha1(blob).hexdigest()[:8]}"

    def save(self, path: str | os.PathLike) -> Path:
        """Write the config as JSON; ``schedules`` is stored relative to the file (absolute if on another
        drive), so a directory holding both can move."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        d = self.to_dict()
        if d["schedules"]:
            sched = Path(d["schedules"]).resolve()
            try:
                d["schedules"] = os.path.relpath(sched, path.parent.resolve())
            except ValueError:
                d["schedules"] = str(sched)
        else:
            del d["schedules"]
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(d, indent=2) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, name_or_path: "str | os.PathLike | AcceleratorConfig") -> "AcceleratorConfig":
        """Load a JSON file by path, or by name a preset (``target_dirs``), else a tuned config (``tuned_dirs``).
        A relative ``schedules`` directory in the file is resolved against the file's directory."""
        if isinstance(name_or_path, AcceleratorConfig):
            return name_or_path
        p = Path(name_or_path)
        if not (p.suffix == ".json" or p.exists()):
            for d in target_dirs() + tuned_dirs():
                if (d / f"{p.name}.json").is_file():
                    p = d / f"{p.name}.json"
                    break
            else:
                raise ConfigError("name", f"no preset named {str(name_or_path)!r}; available: "
                                  f"{', '.join(preset_names()) or '(none)'} in {[str(d) for d in target_dirs()]}"
                                  f" (tuned configs: by path, or by name from {[str(d) for d in tuned_dirs()]})")
        try:
            data = json.loads(p.read_text())
        except FileNotFoundError:
            raise ConfigError("name", f"file {str(p)!r} does not exist") from None
        except json.JSONDecodeError as e:
            raise ConfigError("<file>", f"{p} is not valid JSON: {e}") from None
        if isinstance(data, dict) and isinstance(data.get("schedules"), str) and data["schedules"]:
            data = {**data, "schedules": str((p.resolve().parent / data["schedules"]).resolve())}
        return cls.from_dict(data)

    def __str__(self) -> str:
        return (f"{self.name} [{self.batch}x{self.block_in}x{self.block_out} {self.inp_bits}/{self.wgt_bits}/"
                f"{self.acc_bits}-bit, inp {self.inp_buffer_bytes // 1024} KiB, wgt {self.wgt_buffer_bytes // 1024}"
                f" KiB, acc {self.acc_buffer_bytes // 1024} KiB, {self.dram_bandwidth:g} B/cyc, "
                f"{self.clock_mhz:g} MHz" + (f", mode {self.mode}" if self.mode else "") + "]")


assert set(FIELD_RULES) == {f.name for f in dataclasses.fields(AcceleratorConfig)} - {"name", "description", "schedules"}
