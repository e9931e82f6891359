"""Which schedule a layer compiles with, and where it came from: the caller's knobs ("user"), the tuned
schedule on disk (``store.lookup``: "tuned") or ``knobs.default`` ("default"). One INFO line per choice on the
``tvm_codesign`` logger."""
from __future__ import annotations

import logging

from ..hardware.config import AcceleratorConfig
from .knobs import Knobs, default
from .store import lookup
from .workload import Workload

log = logging.getLogger("tvm_codesign")


def choose(wl: Workload, cfg: AcceleratorConfig, knobs: "Knobs | dict | None" = None) -> tuple[Knobs, str]:
    """(knobs, source) with source "user", "tuned" or "default"."""
    if knobs is not None:
        k, source = (Knobs.from_dict(knobs) if isinstance(knobs, dict) else knobs), "user"
    else:
        tuned = lookup(wl, cfg)
        k, source = (tuned, "tuned") if tuned is not None else (default(wl, cfg), "default")
    log.info("%s on %s: %s schedule %s", wl.describe(), cfg.name, source, k.to_dict())
    return k, source
