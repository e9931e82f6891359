"""Progress of a long compile: a tqdm bar on stderr over its steps (import and quantise, one step per kernel
scheduled, build), shown only once the compile has taken ``DELAY_S`` seconds and cleared when it ends.
``enabled``: True, False, or None for "when someone watches" (stderr is a terminal, or a Jupyter kernel)."""
from __future__ import annotations

import sys

from tqdm import tqdm

DELAY_S = 2.0


def watched(enabled: bool | None = None) -> bool:
    """``enabled``, or for None: does someone watch (stderr is a terminal, or this is a Jupyter kernel)?"""
    return (sys.stderr.isatty() or "ipykernel" in sys.modules) if enabled is None else bool(enabled)


class Progress:
    def __init__(self, enabled: bool | None, name: str, steps: int):
        enabled = watched(enabled)
        self.name = name
        self.bar = tqdm(total=steps, desc=f"tvm_codesign: compiling {name}", delay=DELAY_S, leave=False,
                        disable=not enabled, bar_format="{l_bar}{bar}| {n}/{total} [{elapsed}]")
        self.started = False

    def step(self, what: str) -> None:
        """Start ``what``; the step before it is done."""
        if self.bar.disable:
            return
        if self.started:
            self.bar.update(1)
        self.started = True
        self.bar.total = max(self.bar.total, self.bar.n + 1)
        self.bar.set_description_str(f"tvm_codesign: compiling {self.name} ({what})")

    def picker(self, pick, kernels: int):
        """Wrap ``offload``'s schedule picker (a function or None): one step per kernel it schedules."""
        if self.bar.disable:
            return pick
        self.bar.total += kernels

        def wrapped(wl, cfg):
            self.step(f"scheduling {wl.describe()}")
            return pick(wl, cfg) if pick is not None else None

        return wrapped

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()
