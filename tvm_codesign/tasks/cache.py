"""Trained weights on disk, one file per task and recipe: training runs once per machine.

Files live in ``$TVM_CODESIGN_CACHE/tasks`` (else ``$XDG_CACHE_HOME/tvm_codesign/tasks``, else
``~/.cache/tvm_codesign/tasks``), named ``<task>-<key>.pt``; the key hashes the recipe, the source of the task's
module and of the training loop, and the torch version, so a changed recipe or code trains anew. Writes go to
a temporary file renamed into place; a file lock keeps concurrent processes from training the same task twice.
A file that cannot be read or does not match is retrained with a warning; a cache that cannot be written
warns and the trained weights are used without being kept.
"""
from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import tempfile
import warnings
from pathlib import Path

import torch


def directory(root=None) -> Path:
    if root is not None:
        return Path(root)
    base = os.environ.get("TVM_CODESIGN_CACHE")
    if base:
        return Path(base) / "tasks"
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "tvm_codesign" / "tasks"


def key(name: str, recipe: dict, *modules) -> str:
    h = hashlib.sha256(json.dumps({"task": name, "recipe": recipe, "torch": torch.__version__},
                                  sort_keys=True).encode())
    for m in modules:
        try:
            h.update(inspect.getsource(m).encode())
        except (OSError, TypeError):  # no source shipped (bytecode only): the recipe and versions decide
            h.update(m.__name__.encode())
    return h.hexdigest()[:16]


def read(path: Path, want_key: str) -> dict | None:
    """The saved {"state", "meta"} at ``path``, or None if there is none; a damaged or foreign file warns."""
    if not path.exists():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if not (isinstance(blob, dict) and blob.get("meta", {}).get("key") == want_key
                and isinstance(blob.get("state"), dict)):
            raise ValueError("not a weights file of this recipe")
        return blob
    except Exception as e:  # noqa: BLE001 - any unreadable file is retrained, never a crash
        why = (str(e).splitlines() or [""])[0][:200]
        warnings.warn(f"tvm_codesign.tasks: cached weights {path} unusable ({type(e).__name__}: {why}); retraining",
                      RuntimeWarning, stacklevel=3)
        return None


def write(path: Path, state: dict, meta: dict) -> bool:
    """Save atomically; False (with a warning) if the directory cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    except OSError as e:
        warnings.warn(f"tvm_codesign.tasks: cannot write the weights cache {path.parent} ({e}); the trained weights "
                      "are used but not kept (set $TVM_CODESIGN_CACHE to a writable directory)", RuntimeWarning,
                      stacklevel=3)
        return False
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"state": state, "meta": meta}, f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide the cache from other users of the machine
        os.replace(tmp, path)
        return True
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive lock on ``path``.lock (POSIX), so concurrent loads of one task train it once."""
    try:
        import fcntl
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(str(path) + ".lock", "a")
    except (ImportError, OSError):  # not POSIX or not writable: no lock (``write`` warns if it cannot write)
        yield
        return
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
