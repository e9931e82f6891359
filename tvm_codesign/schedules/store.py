"""Tuned schedules on disk: ``<dir>/<config name>/<workload key>.json``, applied by compilation.

The tuner writes one file per (config, layer) under ``<out>/tuned/schedules`` and records that directory in
the config it returns and saves (``AcceleratorConfig.schedules``); ``lookup`` finds the file again when
``build`` or ``compile`` meets the same layer on the same hardware, from any working directory. A file is used
only if its ``config_key`` is the config's (so a renamed or edited config never picks up stale schedules) and
its knobs pass ``knobs.check``; otherwise the layer gets the default schedule and a warning says why.
Directories searched, first hit wins: the config's ``schedules``, $TVM_CODESIGN_SCHEDULES, ./schedules,
<repo>/schedules.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from ..hardware.config import AcceleratorConfig
from ..hardware.targets import env_dirs, existing_dirs
from .knobs import KnobError, Knobs, check
from .workload import Workload

_REPO_SCHEDULES = Path(__file__).resolve().parents[2] / "schedules"
_warned: set = set()


def schedule_dirs(cfg: AcceleratorConfig | None = None) -> list[Path]:
    """The directories ``lookup`` searches for ``cfg``'s schedules, in order (existing ones only)."""
    dirs = env_dirs("TVM_CODESIGN_SCHEDULES") + [Path.cwd() / "schedules", _REPO_SCHEDULES]
    if cfg is not None and cfg.schedules:
        own = Path(cfg.schedules)
        if own.is_dir():
            dirs.insert(0, own)
        else:
            _warn(f"config {cfg.name!r}: its schedules directory {own} does not exist; its layers get the "
                  "default schedules unless another directory has them")
    return existing_dirs(dirs)


def workload_key(wl: Workload) -> str:
    """A file name for a layer: its shape and epilogue stages, not the immediates (requantisation multipliers
    change with calibration data; the schedule does not need to). A per-channel multiplier (a vector loaded and
    multiplied as a register operand: another SRAM tile, other costs) is "mulv", apart from the immediate "mul"."""
    ops = "-".join("mulv" if (op, imm) == ("mul", None) else op for op, imm in wl.epilogue) or "none"
    shape = (f"{wl.kind}_g{wl.groups}{f'm{wl.merge}' if wl.merge > 1 else ''}_n{wl.n}_ci{wl.ci}_co{wl.co}"
             f"_{wl.h}x{wl.w}_k{wl.kh}x{wl.kw}_s{wl.stride[0]}x{wl.stride[1]}_p{wl.pad[0]}x{wl.pad[1]}")
    return f"{shape}_{ops}_{wl.out_dtype}"


def save(directory, cfg: AcceleratorConfig, wl: Workload, knobs: Knobs, figures: dict | None = None) -> Path:
    """Write one tuned schedule; returns the file. Written to a temporary name and renamed (never half a file)."""
    d = Path(directory) / cfg.name
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{workload_key(wl)}.json"
    rec = {"config": cfg.name, "config_key": cfg.key, "workload": wl.to_dict(), "knobs": knobs.to_dict(),
           "figures": figures or {}}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(rec, indent=1, default=float))
    os.replace(tmp, path)
    return path


def _warn(msg: str) -> None:
    if msg not in _warned:
        _warned.add(msg)
        warnings.warn(msg, stacklevel=3)


def lookup(wl: Workload, cfg: AcceleratorConfig) -> Knobs | None:
    """The stored schedule of ``wl`` on ``cfg``, or None (no file, another config's file, or knobs that no
    longer fit: warned)."""
    name = f"{workload_key(wl)}.json"
    for d in schedule_dirs(cfg):
        path = d / cfg.name / name
        if not path.is_file():
            continue
        try:
            rec = json.loads(path.read_text())
            k = Knobs.from_dict(rec["knobs"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            _warn(f"ignoring schedule file {path}: unreadable ({e})")
            continue
        if rec.get("config_key") != cfg.key:
            _warn(f"ignoring schedule file {path}: written for other hardware parameters than config {cfg.name!r}")
            continue
        try:
            check(wl, cfg, k)
        except KnobError as e:
            _warn(f"ignoring schedule file {path}: {e}")
            continue
        return k
    return None
