"""Where accelerator configs are found: presets by name in the targets directories, tuned configs apart from them."""
from __future__ import annotations

import os
from pathlib import Path

# Where presets are looked up by name, first hit wins: $TVM_CODESIGN_TARGETS, ./targets, <repo>/targets.
_REPO_TARGETS = Path(__file__).resolve().parents[2] / "targets"


def existing_dirs(dirs: list[Path]) -> list[Path]:
    """``dirs`` that exist, resolved, each once, in order."""
    seen, out = set(), []
    for d in dirs:
        r = d.resolve()
        if r not in seen and r.is_dir():
            seen.add(r)
            out.append(r)
    return out


def env_dirs(var: str) -> list[Path]:
    """The directories listed in environment variable ``var`` (os.pathsep-separated)."""
    return [Path(p) for p in os.environ.get(var, "").split(os.pathsep) if p]


def target_dirs() -> list[Path]:
    """Directories of the presets, searched first by ``AcceleratorConfig.load(name)``, in order."""
    return existing_dirs(env_dirs("TVM_CODESIGN_TARGETS") + [Path.cwd() / "targets", _REPO_TARGETS])


def tuned_dirs() -> list[Path]:
    """Directories of tuned configs, searched by ``AcceleratorConfig.load(name)`` after the presets:
    $TVM_CODESIGN_TUNED, ./tuned (where ``tune`` writes them). Never part of ``preset_names``."""
    return existing_dirs(env_dirs("TVM_CODESIGN_TUNED") + [Path.cwd() / "tuned"])


def preset_names() -> list[str]:
    """Names of the presets found in the targets directories (never the tuner's outputs in ``tuned_dirs``)."""
    names = set()
    for d in target_dirs():
        names.update(p.stem for p in d.glob("*.json"))
    return sorted(names)
