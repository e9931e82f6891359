"""Built-in trained tasks for measuring accuracy through the simulator.

``load("digits")``: a CNN on scikit-learn's 1,797 real handwritten digits (digits.py); ``load("brackets")``: a
causal transformer deciding whether a string of 24 brackets is balanced (brackets.py). Training is
deterministic, on the CPU, once per machine (weights cached: cache.py); ``Task.accuracy(compiled_model)`` is top-1
on the held-out split. ``python -m tvm_codesign.tasks digits`` prints fp32 and int8 accuracy as one JSON line.
"""
from __future__ import annotations

import time

from . import brackets, cache, digits, train
from .task import Task

TASKS = {"digits": digits, "brackets": brackets}
TRAIN_KEYS = ("epochs", "batch", "lr", "seed", "weight_decay", "clip")


def recipe(name: str) -> dict:
    return dict(_module(name).RECIPE)


def _module(name: str):
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}: the built-in tasks are {sorted(TASKS)}")
    return TASKS[name]


def trained(name: str, r: dict, splits: dict):
    """A freshly built model of recipe ``r`` trained on ``splits["train"]`` (deterministic) and the seconds it
    took."""
    mod = _module(name)
    t0 = time.perf_counter()
    with train.deterministic(r["seed"]):
        net = mod.build(r)
        train.fit(net, *splits["train"], augment=mod.augment(r), **{k: r[k] for k in TRAIN_KEYS if k in r})
    return net, time.perf_counter() - t0


def load(name: str, *, cache_dir=None, retrain: bool = False) -> Task:
    """The trained task ``name`` ("digits" or "brackets"): weights from the cache, else trained (about a minute
    on one CPU core at most) and cached. ``cache_dir`` overrides the cache directory; ``retrain`` ignores a cached
    file and replaces it."""
    mod = _module(name)
    r = mod.RECIPE
    splits = mod.data(r)
    k = cache.key(name, r, mod, train)
    path = cache.directory(cache_dir) / f"{name}-{k}.pt"
    with cache.locked(path):
        blob = None if retrain else cache.read(path, k)
        net = None
        if blob is not None:
            with train.deterministic(r["seed"]):
                net = mod.build(r)
            try:
                net.load_state_dict(blob["state"])
                meta = dict(blob["meta"], trained=False)
            except (RuntimeError, KeyError, TypeError) as e:
                import warnings
                warnings.warn(f"tvm_codesign.tasks: cached weights {path} do not fit the model ({e}); retraining",
                              RuntimeWarning, stacklevel=2)
                net = None
        if net is None:
            net, seconds = trained(name, r, splits)
            meta = {"key": k, "train_s": round(seconds, 2), "torch": str(__import__("torch").__version__)}
            cache.write(path, net.state_dict(), meta)
            meta = dict(meta, trained=True)
    meta["path"] = str(path)
    return Task(name, dict(r), net.eval(), splits, meta)


__all__ = ["Task", "TASKS", "load", "recipe", "trained"]
