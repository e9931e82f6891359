"""A compiled model on disk: a directory with the VM executable as a shared library (``vm.so``; the quantisation
parameters and packed weights are constants inside it), the accelerator programs (``kernels.json``) and
``tvm_codesign_model.json`` (format and versions, config, kernels and layers, MAC counts, input signature).

``write`` replaces an earlier save at the same path but no other file or directory; ``read`` refuses anything
that is not a save of this format by this TVM and tvm_codesign version. A save runs native code when read:
read only saves you trust.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from pathlib import Path

import tvm

from . import __version__
from .backend import register
from .hardware.config import AcceleratorConfig
from .runtime import entry

FORMAT = 1
HEAD = "tvm_codesign_model.json"


def write(path, executable, cfg: AcceleratorConfig, facts: dict, kernel_names: list[str]) -> Path:
    path = Path(path)
    if path.exists() and not (path / HEAD).is_file() and not (path.is_dir() and not any(path.iterdir())):
        raise FileExistsError(f"{path} exists and is not a saved tvm_codesign model: not overwriting it")
    tmp = path.with_name(f".{path.name}.saving-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with _native_stderr_quiet():
            executable.export_library(str(tmp / "vm.so"))
        (tmp / "kernels.json").write_text(json.dumps({n: entry.BY_NAME[n].to_blob() for n in kernel_names}))
        head = {"format": FORMAT, "tvm_codesign": __version__, "tvm": tvm.__version__, "config": cfg.to_dict(),
                **facts}
        (tmp / HEAD).write_text(json.dumps(head, indent=1))
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        if path.exists():
            path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read(path) -> tuple:
    """(VM module, config, facts) of a save; its kernels are registered in this process."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no saved model at {path}")
    if not (path / HEAD).is_file():
        raise ValueError(f"{path} is not a saved tvm_codesign model (no {HEAD}); save one with CompiledModel.save")
    try:
        head = json.loads((path / HEAD).read_text())
        blobs = json.loads((path / "kernels.json").read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: unreadable saved model ({e})") from None
    if head.get("format") != FORMAT:
        raise ValueError(f"{path} is a saved model of format {head.get('format')}; this tvm_codesign reads format "
                         f"{FORMAT}: compile the model again")
    for what, now in (("tvm", tvm.__version__), ("tvm_codesign", __version__)):
        if head.get(what) != now:
            raise ValueError(f"{path} was saved with {what} {head.get(what)}, this is {what} {now}: compile the "
                             "model again")
    register()  # the runtime function the kernels call
    for name, blob in blobs.items():
        entry.restore(name, blob).prepare()  # decoded now, not on the first call
    with _native_stderr_quiet():
        lib = tvm.runtime.load_module(str(path / "vm.so"))
    cfg = AcceleratorConfig.from_dict(head.pop("config"))
    return lib, cfg, {k: v for k, v in head.items() if k not in ("format", "tvm", "tvm_codesign")}


@contextlib.contextmanager
def _native_stderr_quiet():
    """TVM 0.27 writes a "Scope Saving" / "Scope Loaded" warning per VM memory scope straight to std::cerr when
    an executable is saved or loaded; failures still raise, with their messages."""
    sys.stderr.flush()
    keep = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(keep, 2)
        os.close(keep)
