"""Which schedule a layer compiles with, and where it came from: the caller's knobs ("user"), the tuned
schedule on disk (``store.lookup``: "tuned") or ``knobs.default`` ("default"). One INFO line per choice on the
``tvm_codesign`` logger."""
from __future__ import annotations

from ..hardware.config import AcceleratorConfig
from ..logs import logger as log
from .knobs import Knobs, default
from .store import lookup
from .workload import Workload


def pick(wl: Workload, cfg: AcceleratorConfig, knobs: "Knobs | dict | None" = None) -> tuple[Knobs, str]:
    """(knobs, source) with source "user", "tuned" or "default"; nothing logged."""
    if knobs is not None:
        return (Knobs.from_dict(knobs) if isinstance(knobs, dict) else knobs), "user"
    tuned = lookup(wl, cfg)
    return (tuned, "tuned") if tuned is not None else (default(wl, cfg), "default")


def announce(wl: Workload, cfg: AcceleratorConfig, knobs: Knobs, source: str) -> None:
    """The INFO line saying which schedule the layer got."""
    log.info("%s on %s: %s schedule %s", wl.describe(), cfg.name, source, knobs.to_dict())


def choose(wl: Workload, cfg: AcceleratorConfig, knobs: "Knobs | dict | None" = None) -> tuple[Knobs, str]:
    """``pick``, and ``announce`` it."""
    k, source = pick(wl, cfg, knobs)
    announce(wl, cfg, k, source)
    return k, source
