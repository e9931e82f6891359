"""Precision and sparsity modes of the GEMM core: what a mode name means and which modes a config runs.

A mode is ``w{W}a{A}`` (weight and activation bits, each 8, 4 or 2) with an optional ``s`` for 2:4 structured
weight sparsity, e.g. ``w4a4``, ``w2a8``, ``w8a8s``; "" is the native w8a8 dense mode.

- Precision (Bit Fusion, Sharma et al., ISCA 2018): the core's multipliers are fusion units of bricks of
  ``gemm_min_bits`` x ``gemm_min_bits`` bits; an 8 x 8 product fuses all of a unit's bricks, a W x A product
  (W, A >= gemm_min_bits) uses W * A / 64 of them, so one unit computes 64 / (W * A) products per cycle. Those
  products extend the reduction: a mode's GEMM tile is batch x (block_in * factor) x block_out.
- 2:4 sparsity (NVIDIA A100 sparse tensor cores, "Accelerating Sparse Deep Neural Networks", Mishra et al.,
  arXiv:2104.08378): in every group of 4 consecutive weights along the reduction at most 2 are non-zero; only
  those are stored (values plus a 2-bit position each) and the core multiplies only them, selecting the matching
  activation of the 4 with a multiplexer: twice the reduction per cycle (factor x 2).

Storage (``hardware/packing.py``): scalars narrower than 8 bits are packed little-endian within bytes in DRAM and
SRAM, so a 4-bit weight buffer holds twice the elements.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ..errors import ConfigError

BITS = (8, 4, 2)      # operand widths a fusion unit composes (Bit Fusion: 2-bit bricks fuse to 4 and 8 bits)
META_BITS = 2         # position of a kept weight within its group of 4
GROUP = 4             # 2:4: groups of 4 along the reduction, 2 kept
_RE = re.compile(r"^w([248])a([248])(s?)$")


@dataclass(frozen=True)
class Mode:
    w_bits: int = 8
    a_bits: int = 8
    sparse: bool = False

    @property
    def factor(self) -> int:
        """Products per 8-bit multiplier slot per cycle: (8 / W) * (8 / A), x 2 when 2:4 sparse."""
        return (8 // self.w_bits) * (8 // self.a_bits) * (2 if self.sparse else 1)

    def to_dict(self) -> dict:
        return {"w_bits": self.w_bits, "a_bits": self.a_bits, "sparse": self.sparse}

    @property
    def name(self) -> str:
        return "" if (self.w_bits, self.a_bits, self.sparse) == (8, 8, False) else \
            f"w{self.w_bits}a{self.a_bits}" + ("s" if self.sparse else "")


# Every quantisation a layer may take (compile's precision= / sparsity=): weights 8/4/2 bits, activations 8/4, dense
# or 2:4; dense first, then by weight and activation bits, w8a8 first.
LAYER_MODES = tuple(Mode(w, a, s) for s in (False, True) for w in BITS for a in (8, 4))


def error(value) -> str | None:
    """What is wrong with a mode name (None: nothing)."""
    if not isinstance(value, str) or not (value == "" or _RE.match(value)):
        return (f"{value!r} is not a mode: write w<bits>a<bits> with bits 8, 4 or 2, and a trailing 's' for 2:4 "
                "weight sparsity (e.g. 'w4a4', 'w2a8', 'w8a8s'), or '' for w8a8 dense")
    return None


@lru_cache(maxsize=None)
def parse(name: str) -> Mode:
    if error(name):
        raise ConfigError("mode", error(name))
    if not name:
        return Mode()
    m = _RE.match(name)
    return Mode(int(m.group(1)), int(m.group(2)), bool(m.group(3)))


def canonical(name: str) -> str:
    """The stored form of a mode name: "w8a8" is the native mode ""."""
    return parse(name).name


def label(name: str) -> str:
    return name or "w8a8"


@lru_cache(maxsize=None)
def _supported(min_bits: int, sparse: bool) -> tuple[str, ...]:
    widths = [b for b in BITS if b >= min_bits]
    out = [Mode(w, a, s).name for s in ((False, True) if sparse else (False,)) for w in widths for a in widths]
    return tuple(out)


def supported(hw) -> tuple[str, ...]:
    """Every mode of the hardware behind ``hw`` (a view's hardware has the same ``gemm_min_bits`` and
    ``sparse_2_4``): all W, A >= gemm_min_bits, each also 2:4 sparse if supported."""
    return _supported(hw.gemm_min_bits, hw.sparse_2_4)


def runnable(hw, need: Mode) -> str:
    """The fastest mode of hardware ``hw`` that computes a layer quantised as ``need`` exactly: weights and
    activations at least as wide, 2:4 sparse only if the layer's weights are. "" (w8a8) always qualifies."""
    ok = [m for m in supported(hw) if parse(m).w_bits >= need.w_bits and parse(m).a_bits >= need.a_bits
          and (need.sparse or not parse(m).sparse)]
    return max(ok, key=lambda m: (parse(m).factor, -parse(m).w_bits - parse(m).a_bits))


def check(cfg) -> None:
    """Cross-field rules of precision / sparsity (ConfigError naming the field)."""
    if cfg.gemm_min_bits < 8 and (cfg.inp_bits, cfg.wgt_bits) != (8, 8):
        raise ConfigError("gemm_min_bits", f"fusion units compose 8-bit multipliers: needs inp_bits = wgt_bits = 8, "
                          f"got {cfg.inp_bits}/{cfg.wgt_bits}")
    if cfg.sparse_2_4 and ((cfg.inp_bits, cfg.wgt_bits) != (8, 8) or cfg.block_in < 2):
        raise ConfigError("sparse_2_4", "2:4 sparsity needs inp_bits = wgt_bits = 8 and block_in >= 2 (a group of 4 "
                          "weights spans the doubled reduction tile)")
    if not cfg.mode:
        return
    m = parse(cfg.mode)
    if min(m.w_bits, m.a_bits) < cfg.gemm_min_bits or (m.sparse and not cfg.sparse_2_4):
        raise ConfigError("mode", f"{cfg.mode!r} needs gemm_min_bits <= {min(m.w_bits, m.a_bits)}"
                          + (" and sparse_2_4" if m.sparse else "") + f"; this hardware has gemm_min_bits "
                          f"{cfg.gemm_min_bits}, sparse_2_4 {cfg.sparse_2_4}")
    for what, bits in (("input", cfg.batch * cfg.block_in * m.a_bits),
                       ("weight", cfg.block_out * cfg.block_in * ((m.w_bits + META_BITS) // 2 if m.sparse else m.w_bits)),
                       ("2:4 position", cfg.block_out * cfg.block_in // 2 * META_BITS if m.sparse else 0)):
        if bits % 8:
            raise ConfigError("mode", f"in mode {cfg.mode} a {what} element is {bits} bits, not whole bytes: "
                              "make batch / block_in / block_out larger")
    if cfg.block_in % m.factor:
        raise ConfigError("mode", f"block_in {cfg.block_in} of a {cfg.mode} view must be a multiple of its factor "
                          f"{m.factor} (build views with AcceleratorConfig.with_mode)")


def flexible(cfg, gemm_min_bits: int = 2, sparse_2_4: bool = True):
    """``cfg``'s hardware with precision / sparsity support, its instructions widened to the next multiple of 64
    bits that holds every mode's fields (the ``mode`` field and deeper narrow-mode buffers need bits)."""
    hw = cfg.hardware
    last = None
    for bits in range(hw.insn_bits, 513, 64):
        try:
            return hw.replace(gemm_min_bits=gemm_min_bits, sparse_2_4=sparse_2_4, insn_bits=bits)
        except ConfigError as e:
            if e.field != "insn_bits":
                raise
            last = e
    raise last
